// firelink-conform can fail, and fails for the right reason: every deliberately broken plugin of conformance/broken
// fails exactly the checks meant for it (and passes every other), and the reference plugins pass `standard`,
// including the class scenarios against firelink-sim, which can fail too.
// The suite is run as a certifier runs it, as a process, and judged by its exit code and its JSON report.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "broken_paths.h"

namespace fs = std::filesystem;

namespace {

struct run {
    int exit_code = -1;
    std::string console, json, junit;
    std::map<std::string, std::string> status;   // check id -> status
    std::map<std::string, std::string> message;  // check id -> message
};

std::string slurp(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Runs firelink-conform on `plugin` with `args`, and reads back its JSON report.
run conform(const std::string &plugin, const std::string &args) {
    static int n = 0;
    const fs::path dir = fs::temp_directory_path() / ("conformance_test." + std::to_string(getpid()) + "." + std::to_string(++n));
    fs::create_directories(dir);
    const fs::path json = dir / "report.json", junit = dir / "report.xml";
    const std::string cmd = std::string(FIRELINK_CONFORM_EXE) + " '" + plugin + "' --json '" + json.string() +
                            "' --junit '" + junit.string() + "' " + args + " 2>&1";
    run r;
    FILE *p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    std::size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) r.console.append(buf, got);
    const int st = pclose(p);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.json = slurp(json);
    r.junit = slurp(junit);
    static const std::regex line(R"re(\{"id": "([^"]+)", "status": "([a-z]+)".*"message": "((?:[^"\\]|\\.)*)")re");
    std::istringstream in(r.json);
    std::string l;
    while (std::getline(in, l)) {
        std::smatch m;
        if (std::regex_search(l, m, line)) {
            r.status[m[1]] = m[2];
            r.message[m[1]] = m[3];
        }
    }
    fs::remove_all(dir);
    return r;
}

// The checks that did not pass (nor were skipped), with their statuses.
std::map<std::string, std::string> not_passed(const run &r) {
    std::map<std::string, std::string> out;
    for (const auto &[id, st] : r.status)
        if (st != "passed" && st != "skipped") out[id] = st;
    return out;
}

std::map<std::string, std::string> all(const std::set<std::string> &ids, const std::string &status) {
    std::map<std::string, std::string> out;
    for (const auto &id : ids) out[id] = status;
    return out;
}

struct broken_case {
    const char *name;
    const char *path;
    std::map<std::string, std::string> expected;  // exactly these checks do not pass
    const char *message_has = nullptr;            // a word the first expected check's message must contain
};

// A hang is found by the per-check timeout; 3 s is many times what any passing check of these plugins takes.
const char *const args = "--seed 42 --timeout 3";

std::vector<broken_case> broken_cases() {
    return {
        {"good", BROKEN_GOOD, {}},
        {"crash_init", BROKEN_CRASH_INIT,
         all({"library.descriptor", "lifecycle.plugin_misuse", "extension.unknown", "library.init_cycles",
              "library.reload_cycles", "device.create", "device.misuse", "device.destroy_any_state",
              "device.config_garbage", "device.emit_valid", "device.callback_time", "device.quiet_after_stop",
              "device.chunked_input", "device.garbage_input", "device.leaks"},
             "crashed"),
         "SIGSEGV"},
        {"hang_data", BROKEN_HANG_DATA,
         all({"device.emit_valid", "device.callback_time", "device.chunked_input", "device.garbage_input",
              "device.leaks"},
             "timeout"),
         "hangs"},
        {"leak", BROKEN_LEAK, all({"device.leaks", "library.init_cycles"}, "failed"), "file descriptor"},
        {"bad_events", BROKEN_BAD_EVENTS, all({"device.emit_valid"}, "failed"), "not a pyrolysis_detector code"},
        {"restore_no_ends", BROKEN_RESTORE_NO_ENDS, all({"device.emit_valid"}, "failed"), "ends"},
        {"restore_unraised", BROKEN_RESTORE_UNRAISED, all({"device.emit_valid"}, "failed"), "never-raised"},
        {"extra_exports", BROKEN_EXTRA_EXPORTS, all({"library.exports"}, "failed"), "broken_helper_everyone_can_see"},
        {"wrong_major", BROKEN_WRONG_MAJOR, all({"library.load"}, "failed"), "incompatible_major"},
        {"ignores_misuse", BROKEN_IGNORES_MISUSE, all({"device.misuse"}, "failed"), "a second start returned FL_OK"},
        {"blocks_host", BROKEN_BLOCKS_HOST, all({"device.callback_time"}, "failed"), "command took"},
        {"split_decode", BROKEN_SPLIT_DECODE, all({"device.chunked_input"}, "failed"), "split input differently"},
        {"emits_after_stop", BROKEN_EMITS_AFTER_STOP, all({"device.quiet_after_stop"}, "failed"), "after stop"},
    };
}

void PrintTo(const broken_case &c, std::ostream *os) { *os << c.name; }

class broken_plugin : public ::testing::TestWithParam<broken_case> {};

TEST_P(broken_plugin, fails_exactly_the_checks_meant_for_it) {
    const auto &c = GetParam();
    run r = conform(c.path, args);
    ASSERT_FALSE(r.status.empty()) << "no JSON report; console:\n" << r.console;
    EXPECT_EQ(not_passed(r), c.expected) << r.console;
    EXPECT_EQ(r.exit_code, c.expected.empty() ? 0 : 1) << r.console;
    if (c.message_has) {
        const std::string &first = c.expected.begin()->first;
        EXPECT_NE(r.message.at(first).find(c.message_has), std::string::npos) << first << ": " << r.message.at(first);
    }
    // Every failure prints the one line that reproduces it.
    for (const auto &[id, st] : c.expected) {
        std::string re = id;
        re = std::regex_replace(re, std::regex(R"(\.)"), R"(\.)");
        EXPECT_NE(r.console.find("--only '^" + re + "$' --seed 42 --timeout 3"), std::string::npos) << id << "\n" << r.console;
    }
}

INSTANTIATE_TEST_SUITE_P(variants, broken_plugin, ::testing::ValuesIn(broken_cases()),
                         [](const auto &info) { return std::string(info.param.name); });

TEST(broken_plugin_extra, a_plugin_that_does_not_load_skips_every_other_check) {
    run r = conform(BROKEN_WRONG_MAJOR, args);
    for (const auto &[id, st] : r.status) {
        if (id != "library.load") {
            EXPECT_EQ(st, "skipped") << id;
        }
    }
    EXPECT_NE(r.json.find("\"refusal\": \"incompatible_major\""), std::string::npos) << r.json;
}

TEST(broken_plugin_extra, the_reproduce_line_reproduces_the_failure_alone) {
    run r = conform(BROKEN_SPLIT_DECODE, "--only '^device\\.chunked_input$' --seed 42");
    EXPECT_EQ(r.exit_code, 1) << r.console;
    EXPECT_EQ(r.status.size(), 1u) << r.console;
    EXPECT_EQ(r.status["device.chunked_input"], "failed");
    // The same seed makes the same bytes, hence the same message.
    run again = conform(BROKEN_SPLIT_DECODE, "--only '^device\\.chunked_input$' --seed 42");
    EXPECT_EQ(again.message["device.chunked_input"], r.message["device.chunked_input"]);
}

TEST(broken_plugin_extra, the_good_variant_passes_strict) {
    run r = conform(BROKEN_GOOD, "--level strict --seed 42");
    EXPECT_EQ(r.exit_code, 0) << r.console;
    EXPECT_EQ(r.status["device.null_arguments"], "passed") << r.console;
}

TEST(report, json_and_junit_carry_what_a_certificate_needs) {
    run r = conform(BROKEN_LEAK, "--seed 7 --skip '^device\\.'");
    EXPECT_TRUE(std::regex_search(r.json, std::regex(R"("sha256": "[0-9a-f]{64}")"))) << r.json;
    for (const char *key : {"\"file\": \"leak.so\"", "\"id\": \"org.firelink.conformance.leak\"", "\"version\": \"1.0.0\"",
                            "\"abi_version\": \"1.0.0\"", "\"suite\": {\"name\": \"firelink-conform\"", "\"level\": \"standard\"",
                            "\"seed\": 7", "\"host\": \"Linux", "\"started\": \"20", "\"ended\": \"20",
                            "\"requirements\": [\"FL-PLUGIN-22\"]", "\"verdict\": \"fail\""})
        EXPECT_NE(r.json.find(key), std::string::npos) << key << "\n" << r.json;
    for (const auto &[id, st] : r.status) EXPECT_EQ(id.rfind("device.", 0), std::string::npos) << "--skip ignored: " << id;
    EXPECT_NE(r.junit.find("<testcase classname=\"org.firelink.conformance.leak\" name=\"library.init_cycles\""),
              std::string::npos) << r.junit;
    EXPECT_NE(r.junit.find("<failure message="), std::string::npos) << r.junit;
    EXPECT_EQ(r.exit_code, 1);
}

// ---- the reference plugins and examples pass the standard level ----------------------------------------------

class reference_plugin : public ::testing::TestWithParam<const char *> {};

TEST_P(reference_plugin, passes_standard) {
    const fs::path file = fs::path(FIRELINK_PLUGIN_DIR) / (std::string(GetParam()) + ".so");
    if (!fs::exists(file)) GTEST_SKIP() << file << " is not built in this tree";
    run r = conform(file.string(), "--seed 42");
    EXPECT_EQ(not_passed(r).size(), [&] {
        std::size_t warnings = 0;  // a warning is not a failure
        for (const auto &[id, st] : r.status) warnings += st == "warning";
        return warnings;
    }()) << r.console;
    EXPECT_EQ(r.exit_code, 0) << r.console;
    EXPECT_EQ(r.status["library.load"], "passed");
    EXPECT_EQ(r.status["device.emit_valid"] == "passed" || r.status["device.emit_valid"] == "warning", true);
    // A Modbus reference plugin runs its class's scenarios against firelink-sim, and passes every one.
    static const std::map<std::string, std::string> classes = {{"modbus-arc-breaker", "arc_fault_breaker"},
                                                               {"modbus-gas-valve", "gas_shutoff_valve"},
                                                               {"modbus-pyrolysis", "pyrolysis_detector"}};
    std::size_t scenarios = 0;
    for (const auto &[id, st] : r.status) {
        if (id.rfind("scenario.", 0) != 0 || id == "scenario.other") continue;
        const auto it = classes.find(GetParam());
        if (it != classes.end() && id.rfind("scenario." + it->second + ".", 0) == 0) {
            ++scenarios;
            EXPECT_EQ(st, "passed") << id << ": " << r.message[id];
        } else {
            EXPECT_EQ(st, "skipped") << id;
        }
    }
    if (classes.count(GetParam())) {
        EXPECT_EQ(scenarios, 7u) << r.console;  // alarm, silence, garbage, command, busy, restart, stuck
    }
    if (std::string(GetParam()) == "fire_panel") {
        EXPECT_NE(r.message["scenario.other"].find("no device source"), std::string::npos) << r.message["scenario.other"];
    }
}

INSTANTIATE_TEST_SUITE_P(plugins, reference_plugin,
                         ::testing::Values("hello-c", "hello-cpp", "modbus-arc-breaker", "modbus-gas-valve",
                                           "modbus-pyrolysis", "fire_panel"),
                         [](const auto &info) {
                             std::string n = info.param;
                             for (auto &ch : n)
                                 if (ch == '-') ch = '_';
                             return n;
                         });

// ---- the class scenarios can fail ------------------------------------------------------------------------------

#ifdef FIRELINK_SIM_EXE
// A device source that is the wrong device: the gas valve's driver polls an arc breaker simulator, which ignores
// "gas 30", so the gas alarm never comes and the scenario fails within its latency budget.
TEST(class_scenarios, fail_when_the_device_never_raises) {
    const fs::path file = fs::path(FIRELINK_PLUGIN_DIR) / "modbus-gas-valve.so";
    if (!fs::exists(file)) GTEST_SKIP() << file << " is not built in this tree";
    const fs::path script = fs::temp_directory_path() / ("conformance_test.wrong-sim." + std::to_string(getpid()));
    {
        std::ofstream out(script);
        out << "#!/bin/sh\nshift\nexec '" << FIRELINK_SIM_EXE << "' arc-breaker \"$@\"\n";
    }
    fs::permissions(script, fs::perms::owner_all);
    run r = conform(file.string(), "--seed 42 --only '^scenario\\.gas_shutoff_valve\\.alarm$' --sim '" + script.string() + "'");
    fs::remove(script);
    EXPECT_EQ(r.exit_code, 1) << r.console;
    EXPECT_EQ(r.status["scenario.gas_shutoff_valve.alarm"], "failed") << r.console;
    EXPECT_NE(r.message["scenario.gas_shutoff_valve.alarm"].find("no alarm gas_level_1 within 5000 ms"),
              std::string::npos) << r.message["scenario.gas_shutoff_valve.alarm"];
    EXPECT_NE(r.console.find("--sim " + script.string()), std::string::npos) << "the reproduce line keeps --sim\n"
                                                                             << r.console;
}
#endif

TEST(class_scenarios, are_skipped_without_a_device_source) {
    const fs::path file = fs::path(FIRELINK_PLUGIN_DIR) / "modbus-pyrolysis.so";
    if (!fs::exists(file)) GTEST_SKIP() << file << " is not built in this tree";
    run r = conform(file.string(), "--seed 42 --only '^scenario\\.' --sim /nonexistent/firelink-sim");
    EXPECT_EQ(r.exit_code, 0) << r.console;
    for (const auto &[id, st] : r.status) EXPECT_EQ(st, "skipped") << id;
    EXPECT_NE(r.message["scenario.pyrolysis_detector.alarm"].find("no device source"), std::string::npos)
        << r.message["scenario.pyrolysis_detector.alarm"];
}

}  // namespace
