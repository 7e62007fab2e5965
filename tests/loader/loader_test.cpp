// The plugin loader: every refusal reason of docs/abi.md, negotiation across versions, and the firelink-host
// `plugins` listing. Fixture plugins come from tests/fixtures (one source, many variants).
#include <array>
#include <cstdio>
#include <memory>
#include <string>
#include <variant>

#include <gtest/gtest.h>

#include <firelink/core/plugin_loader.hpp>

#include "fixture_paths.h"

using firelink::core::load_error;
using firelink::core::load_result;
using firelink::core::plugin;
using firelink::core::plugin_loader;
using firelink::core::refusal;

namespace {

std::unique_ptr<plugin> expect_loaded(load_result r) {
    if (!r) {
        ADD_FAILURE() << "refused: " << r.error().what();
        return nullptr;
    }
    return std::move(r).value();
}

load_error expect_refused(load_result r, refusal expected) {
    if (r) {
        ADD_FAILURE() << "loaded, expected refusal " << firelink::core::to_string(expected);
        return {};
    }
    auto e = r.error();
    EXPECT_EQ(e.reason, expected) << e.what();
    EXPECT_FALSE(e.detail.empty());
    return e;
}

}  // namespace

// FL-PLUGIN rules that the loader checks, one fixture each.
struct refusal_case {
    const char *file;
    refusal reason;
    const char *detail_contains;
};

class LoaderRefuses : public ::testing::TestWithParam<refusal_case> {};

TEST_P(LoaderRefuses, WithOneClearReason) {
    plugin_loader loader;
    auto e = expect_refused(loader.load(GetParam().file), GetParam().reason);
    EXPECT_NE(e.detail.find(GetParam().detail_contains), std::string::npos) << e.detail;
}

INSTANTIATE_TEST_SUITE_P(
    EveryReason, LoaderRefuses,
    ::testing::Values(
        refusal_case{FIXTURE_DIR "/no_such_file.so", refusal::not_found, "no such file"},
        refusal_case{FIXTURE_DIR, refusal::not_found, "not a regular file"},
        refusal_case{FIXTURE_NOT_A_LIBRARY, refusal::not_a_shared_library, "not an ELF shared object"},
        refusal_case{FIXTURE_UNDEFINED_SYMBOL, refusal::load_failed, "fixture_symbol_that_does_not_exist"},
        refusal_case{FIXTURE_NO_ENTRY, refusal::no_entry_symbol, "firelink_plugin_entry"},
        refusal_case{FIXTURE_SMALL_ENTRY, refusal::entry_too_small, "struct_size 16"},
        refusal_case{FIXTURE_NEWER_MAJOR, refusal::incompatible_major, "plugin speaks ABI 2.0.0"},
        refusal_case{FIXTURE_REFUSES, refusal::negotiation_refused, "returned -3"},
        refusal_case{FIXTURE_BAD_NEGOTIATION, refusal::negotiation_invalid, "answered 1.999.0"},
        refusal_case{FIXTURE_NULL_DESCRIPTOR, refusal::invalid_descriptor, "NULL"},
        refusal_case{FIXTURE_SMALL_DESCRIPTOR, refusal::invalid_descriptor, "struct_size 16"},
        refusal_case{FIXTURE_EMPTY_ID, refusal::invalid_descriptor, "empty plugin id"},
        refusal_case{FIXTURE_BAD_ID, refusal::invalid_descriptor, "NotReverseDns"},
        refusal_case{FIXTURE_EMPTY_VENDOR, refusal::invalid_descriptor, "empty vendor"},
        refusal_case{FIXTURE_NO_DRIVERS, refusal::invalid_descriptor, "no drivers"},
        refusal_case{FIXTURE_NULL_DRIVER, refusal::invalid_descriptor, "driver #0 is NULL"},
        refusal_case{FIXTURE_SMALL_DRIVER, refusal::invalid_descriptor, "struct_size 8"},
        refusal_case{FIXTURE_UNKNOWN_CLASS, refusal::invalid_descriptor, "unknown device class 'smoke_detector'"},
        refusal_case{FIXTURE_DUP_DRIVER, refusal::invalid_descriptor, "duplicate driver id 'panel'"},
        // Declared commands (FL-PLUGIN-36): each refusal names the plugin, the driver and the command.
        refusal_case{FIXTURE_COMMANDS_BAD_NAME, refusal::invalid_descriptor,
                     "plugin 'org.firelink.test.good': driver 'panel': command #1: command name 'Trip Now' is not"},
        refusal_case{FIXTURE_COMMANDS_LONG_NAME, refusal::invalid_descriptor, "is longer than 64 bytes"},
        refusal_case{FIXTURE_COMMANDS_DUP, refusal::invalid_descriptor, "driver 'panel': duplicate command name 'trip'"},
        refusal_case{FIXTURE_COMMANDS_UNKNOWN_FLAG, refusal::invalid_descriptor,
                     "driver 'panel': command 'trip': unknown flag bits 0x80"},
        refusal_case{FIXTURE_COMMANDS_RESTORES_ONLY, refusal::invalid_descriptor,
                     "command 'open_valve': FL_COMMAND_RESTORES without FL_COMMAND_ACTUATES"},
        refusal_case{FIXTURE_COMMANDS_BAD_UTF8, refusal::invalid_descriptor,
                     "command 'trip': the description is not UTF-8"},
        refusal_case{FIXTURE_COMMANDS_NO_NAME, refusal::invalid_descriptor, "command #0: no name"},
        refusal_case{FIXTURE_COMMANDS_LONG_DESCRIPTION, refusal::invalid_descriptor,
                     "command 'trip': the description is longer than 256 bytes"},
        refusal_case{FIXTURE_COMMANDS_SMALL, refusal::invalid_descriptor, "command #0: struct_size 8 is smaller"},
        refusal_case{FIXTURE_COMMANDS_TOO_MANY, refusal::invalid_descriptor, "declares more than 64 commands"}));

TEST(Loader, CopiesTheCommandsADriverDeclares) {
    plugin_loader loader;
    auto p = expect_loaded(loader.load(FIXTURE_COMMANDS));
    ASSERT_TRUE(p);
    const auto &d = p->info().drivers.at(0);
    EXPECT_TRUE(d.declares_commands);
    ASSERT_EQ(d.commands.size(), 3u);
    EXPECT_EQ(d.commands[0].name, "emit3");
    EXPECT_EQ(d.commands[0].description, "Emits three events");
    EXPECT_FALSE(d.commands[0].actuates);
    ASSERT_NE(d.find_command("trip"), nullptr);
    EXPECT_TRUE(d.find_command("trip")->actuates);
    EXPECT_FALSE(d.find_command("trip")->restores);
    ASSERT_NE(d.find_command("close"), nullptr);
    EXPECT_TRUE(d.find_command("close")->actuates && d.find_command("close")->restores);
    EXPECT_EQ(d.find_command("Trip"), nullptr);
}

// A 1.0 driver (struct_size without `commands`) declares none: what lies past its struct is never read, though here
// it points at a list the loader would refuse.
TEST(Loader, ADriverOfA1_0PluginDeclaresNoCommands) {
    plugin_loader loader;
    auto p = expect_loaded(loader.load(FIXTURE_COMMANDS_V1_0));
    ASSERT_TRUE(p);
    EXPECT_FALSE(p->info().drivers.at(0).declares_commands);
    EXPECT_TRUE(p->info().drivers.at(0).commands.empty());
    auto good = expect_loaded(plugin_loader().load(FIXTURE_GOOD));
    ASSERT_TRUE(good);
    EXPECT_FALSE(good->info().drivers.at(0).declares_commands) << "commands NULL: declares none";
    auto none = expect_loaded(plugin_loader().load(FIXTURE_COMMANDS_NONE));
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->info().drivers.at(0).declares_commands) << "an empty list declares that it takes none";
    EXPECT_TRUE(none->info().drivers.at(0).commands.empty());
}

TEST(DescriptorRules, CommandNamesAndDescriptions) {
    using firelink::core::is_command_description;
    using firelink::core::is_command_name;
    for (const std::string ok : {"trip", "close_valve", "read-uitd.status", "0", "a"})
        EXPECT_TRUE(is_command_name(ok)) << ok;
    EXPECT_TRUE(is_command_name(std::string(64, 'a')));
    for (const std::string bad : {"", "Trip", "_trip", "-x", "trip now", "trip\n", "阀"})
        EXPECT_FALSE(is_command_name(bad)) << bad;
    EXPECT_FALSE(is_command_name(std::string(65, 'a')));
    EXPECT_TRUE(is_command_description(""));
    EXPECT_TRUE(is_command_description("关闭燃气阀 (close the valve)"));
    EXPECT_TRUE(is_command_description(std::string(256, 'd')));
    EXPECT_FALSE(is_command_description(std::string(257, 'd')));
    EXPECT_FALSE(is_command_description("two\nlines"));
    EXPECT_FALSE(is_command_description("\xc0\xaf"));           // overlong '/'
    EXPECT_FALSE(is_command_description("\xed\xa0\x80"));       // a surrogate
    EXPECT_FALSE(is_command_description("\xe6\x96"));            // cut short
    EXPECT_FALSE(is_command_description(std::string("a\0b", 3)));
}

TEST(Loader, LoadsAGoodPluginAndCopiesItsDescriptor) {
    plugin_loader loader;
    auto p = expect_loaded(loader.load(FIXTURE_GOOD));
    ASSERT_TRUE(p);
    const auto &info = p->info();
    EXPECT_EQ(info.id, "org.firelink.test.good");
    EXPECT_EQ(info.vendor, "firelink tests");
    EXPECT_EQ(info.version, "0.0.1");
    EXPECT_EQ(info.built_abi_version, FL_ABI_VERSION);
    EXPECT_EQ(info.agreed_abi_version, FL_ABI_VERSION);
    ASSERT_EQ(info.drivers.size(), 1u);
    EXPECT_EQ(info.drivers[0].id, "panel");
    EXPECT_EQ(info.drivers[0].device_class, "fire_panel");
    EXPECT_EQ(info.drivers[0].wires, FL_WIRE_TCP_ACCEPTED);
    EXPECT_TRUE(info.extra_exports.empty()) << "the version script must hide everything but the entry";
}

TEST(Loader, ANewerMinorPluginLoadsAndSpeaksTheHostsVersion) {
    plugin_loader loader;
    auto p = expect_loaded(loader.load(FIXTURE_NEWER_MINOR));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->info().built_abi_version, FL_MAKE_VERSION(1, 99, 0));
    EXPECT_EQ(p->info().agreed_abi_version, FL_ABI_VERSION);
}

TEST(Loader, ANewerMinorHostAgreesOnThePluginsOlderVersion) {
    plugin_loader loader(FL_MAKE_VERSION(1, 5, 0));
    auto p = expect_loaded(loader.load(FIXTURE_GOOD));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->info().agreed_abi_version, FL_ABI_VERSION);
}

TEST(Loader, AHostOfAnotherMajorRefusesAVersion1Plugin) {
    plugin_loader loader(FL_MAKE_VERSION(2, 0, 0));
    expect_refused(loader.load(FIXTURE_GOOD), refusal::incompatible_major);
}

TEST(Loader, RefusesASecondFileWithAnIdAlreadyLoaded) {
    plugin_loader loader;
    auto first = expect_loaded(loader.load(FIXTURE_GOOD));
    ASSERT_TRUE(first);
    auto e = expect_refused(loader.load(FIXTURE_DUP_PLUGIN_ID), refusal::duplicate_plugin_id);
    EXPECT_NE(e.detail.find("org.firelink.test.good"), std::string::npos);
    // Once forgotten (unloaded), the id may be loaded again.
    loader.forget(first->info().id);
    first.reset();
    EXPECT_TRUE(expect_loaded(loader.load(FIXTURE_DUP_PLUGIN_ID)));
}

TEST(Loader, ReportsExtraExportsWithoutRefusing) {
    plugin_loader loader;
    auto p = expect_loaded(loader.load(FIXTURE_EXTRA_EXPORTS));
    ASSERT_TRUE(p);
    ASSERT_FALSE(p->info().extra_exports.empty());
    EXPECT_NE(std::find(p->info().extra_exports.begin(), p->info().extra_exports.end(), "fixture_extra_export"),
              p->info().extra_exports.end());
}

TEST(Loader, InitFailureIsReportedAndDeinitIsNotCalled) {
    plugin_loader loader;
    auto p = expect_loaded(loader.load(FIXTURE_INIT_FAILS));
    ASSERT_TRUE(p);
    fl_host host{};
    host.struct_size = sizeof host;
    EXPECT_EQ(p->init(&host), FL_ERROR);
    EXPECT_FALSE(p->initialized());
}

TEST(Loader, RepeatedLoadInitDeinitUnloadCycles) {
    plugin_loader loader;
    fl_host host{};
    host.struct_size = sizeof host;
    for (int i = 0; i < 50; ++i) {
        auto p = expect_loaded(loader.load(FIXTURE_GOOD));
        ASSERT_TRUE(p) << "cycle " << i;
        ASSERT_EQ(p->init(&host), FL_OK) << "cycle " << i;
        p->deinit();
        ASSERT_EQ(p->init(&host), FL_OK) << "second init, cycle " << i;
        loader.forget(p->info().id);
    }
}

TEST(Loader, CandidatesOfADirectoryAreItsSoFilesSorted) {
    auto files = plugin_loader::candidates(FIXTURE_DIR);
    ASSERT_GE(files.size(), 20u);
    EXPECT_TRUE(std::is_sorted(files.begin(), files.end()));
    for (const auto &f : files) EXPECT_EQ(f.extension(), ".so");
}

TEST(DescriptorRules, ReverseDnsDriverIdsAndClasses) {
    using namespace firelink::core;
    EXPECT_TRUE(is_reverse_dns("com.acme.breakers"));
    EXPECT_TRUE(is_reverse_dns("cn.gov.fire-119.panel_v2"));
    EXPECT_FALSE(is_reverse_dns("acme"));
    EXPECT_FALSE(is_reverse_dns("Com.Acme"));
    EXPECT_FALSE(is_reverse_dns("com..acme"));
    EXPECT_FALSE(is_reverse_dns(".com.acme"));
    EXPECT_FALSE(is_reverse_dns("com.acme."));
    EXPECT_FALSE(is_reverse_dns("com.-acme"));
    EXPECT_TRUE(is_driver_id("ab100"));
    EXPECT_TRUE(is_driver_id("modbus.rtu-v2_x"));
    EXPECT_FALSE(is_driver_id(""));
    EXPECT_FALSE(is_driver_id("Upper"));
    EXPECT_FALSE(is_driver_id("-lead"));
    EXPECT_FALSE(is_driver_id(std::string(65, 'a')));
    EXPECT_TRUE(is_device_class("arc_fault_breaker"));
    EXPECT_TRUE(is_device_class("gas_shutoff_valve"));
    EXPECT_TRUE(is_device_class("pyrolysis_detector"));
    EXPECT_TRUE(is_device_class("fire_panel"));
    EXPECT_TRUE(is_device_class("vendor:com.acme.sprinkler"));
    EXPECT_FALSE(is_device_class("vendor:"));
    EXPECT_FALSE(is_device_class("vendor:acme"));
    EXPECT_FALSE(is_device_class("smoke_detector"));
    EXPECT_FALSE(is_device_class("Fire_Panel"));
}

// ---- the command line -----------------------------------------------------------------------------------------

namespace {
struct run_result {
    int exit_code;
    std::string output;
};

run_result run(const std::string &args) {
    const std::string cmd = std::string(FIRELINK_HOST_EXE) + " " + args + " 2>&1";
    run_result r{-1, {}};
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf{};
    while (auto n = fread(buf.data(), 1, buf.size(), p)) r.output.append(buf.data(), n);
    const int status = pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}
}  // namespace

TEST(HostPluginsCommand, ListsTheExamplesAndExitsZero) {
    auto r = run(std::string("plugins ") + EXAMPLE_HELLO_C + " " + EXAMPLE_HELLO_CPP);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("org.firelink.examples.hello-c 1.0.0  (ABI 1.1.0, agreed 1.1.0)"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("org.firelink.examples.hello-cpp 1.0.0"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("driver hello | class vendor:org.firelink.examples.hello"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("2 plugin(s) loaded, 0 refused"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
    // Their declared commands: hello-c takes none, hello-cpp's ping moves nothing.
    EXPECT_NE(r.output.find("    commands: none (it takes no command)\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("    command ping | does not actuate | Answers pong with the tick count\n"), std::string::npos)
        << r.output;
}

TEST(HostPluginsCommand, ListsEachDeclaredCommandWithItsFlags) {
    auto r = run(std::string("plugins ") + FIXTURE_COMMANDS + " " + FIXTURE_COMMANDS_V1_0);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    for (const char *expected : {"    command emit3 | does not actuate | Emits three events\n",
                                 "    command trip | actuates | Moves something\n",
                                 "    command close | actuates, restores | Re-energises\n",
                                 "    commands: none declared (every command is treated as actuating and restoring)\n"})
        EXPECT_NE(r.output.find(expected), std::string::npos) << "missing '" << expected << "' in:\n" << r.output;
}

TEST(HostPluginsCommand, GivesOneReasonPerRefusedFileAndExitsNonZero) {
    auto r = run(std::string("plugins ") + FIXTURE_DIR);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    for (const char *expected :
         {"not_a_library.so: not_a_shared_library:", "no_entry.so: no_entry_symbol:", "small_entry.so: entry_too_small:",
          "newer_major.so: incompatible_major:", "refuses.so: negotiation_refused:",
          "bad_negotiation.so: negotiation_invalid:", "unknown_class.so: invalid_descriptor:",
          "dup_driver.so: invalid_descriptor:", "undefined_symbol.so: load_failed:",
          "init_fails.so: init_failed:", "good.so: duplicate_plugin_id:"}) {
        EXPECT_NE(r.output.find(expected), std::string::npos) << "missing '" << expected << "' in:\n" << r.output;
    }
    // dup_plugin_id.so sorts before good.so, so good.so is the later file with the same id.
    EXPECT_NE(r.output.find("org.firelink.test.newer-minor 0.0.1  (ABI 1.99.0, agreed 1.1.0)"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("warning: exports"), std::string::npos) << r.output;
}

TEST(HostPluginsCommand, UsageErrorsExitTwo) {
    EXPECT_EQ(run("plugins").exit_code, 2);
    EXPECT_EQ(run("no-such-command").exit_code, 2);
}

// ---- `firelink-host try`: the command ./scripts/demo runs --------------------------------------------------------

TEST(HostTryCommand, RunsTheExamplesAndMeetsItsExpectations) {
    auto r = run(std::string("try ") + EXAMPLE_HELLO_C + " " + EXAMPLE_HELLO_CPP +
                 " --set period_ms=5 --set alarm_every=2 --for 1 --expect-events 3");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("{\"device\":\"hello-c.hello\",\"seq\":1,\"event\":{\"schema\":1,\"kind\":\"telemetry\""),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("\"kind\":\"alarm\""), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("summary: 2 plugin(s) loaded, 0 refused, 2 device(s)"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("expectations: met"), std::string::npos) << r.output;
}

TEST(HostTryCommand, FailsWhenADeviceCannotBeCreated) {
    auto r = run(std::string("try ") + FIXTURE_NEEDS_TRANSPORT + " --for 0.1");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    // A driver that needs a wire is told the three ways to give it one (tests/loader/try_wires_test.py runs them).
    EXPECT_NE(r.output.find("driver 'panel' needs a wire: give it one with --connect HOST:PORT"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("--listen HOST:PORT"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--serial DEV"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("expectations: NOT met"), std::string::npos) << r.output;
}

TEST(HostTryCommand, FailsWhenADeviceEmitsTooFewOrInvalidEvents) {
    auto few = run(std::string("try ") + FIXTURE_GOOD + " --for 0.1 --expect-events 1000 --quiet");
    EXPECT_EQ(few.exit_code, 1) << few.output;
    EXPECT_NE(few.output.find("expected at least 1000"), std::string::npos) << few.output;

    auto bad = run(std::string("try ") + FIXTURE_BAD_EVENTS + " --for 0.1 --quiet");
    EXPECT_EQ(bad.exit_code, 1) << bad.output;
    EXPECT_NE(bad.output.find("emitted 6 invalid event(s)"), std::string::npos) << bad.output;
}

TEST(HostTryCommand, RefusesAMalformedSetting) {
    auto r = run(std::string("try ") + EXAMPLE_HELLO_C + " --set period_ms --for 0.1");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("expected key=value"), std::string::npos) << r.output;
}
