// payload.hpp: events pack to the schema-1 map (checked by decoding with msgpack-c), configs and commands are read
// with errors that name the key, and out-of-range or mistyped values are refused rather than truncated.
#include <firelink/payload.hpp>

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "msgpack_c_bytes.hpp"

namespace {

using bytes = std::vector<std::uint8_t>;
using firelink::test::packed_by_msgpack_c;
using firelink::config;
using firelink::config_error;
using firelink::event;
using firelink::event_kind;

// The top-level map of a packed event, decoded by msgpack-c; fails when bytes are left over.
struct decoded {
    msgpack::object_handle handle;
    std::map<std::string, msgpack::object> fields;

    explicit decoded(const bytes &b) {
        std::size_t offset = 0;
        handle = msgpack::unpack(reinterpret_cast<const char *>(b.data()), b.size(), offset);
        EXPECT_EQ(offset, b.size()) << "map count and entries disagree";
        EXPECT_EQ(handle.get().type, msgpack::type::MAP);
        const auto &m = handle.get().via.map;
        for (std::uint32_t i = 0; i < m.size; ++i) {
            auto key = m.ptr[i].key.as<std::string>();
            EXPECT_TRUE(fields.emplace(key, m.ptr[i].val).second) << "duplicate key " << key;
        }
    }
    bool has(const std::string &k) const { return fields.count(k) != 0; }
    std::string str(const std::string &k) const { return fields.at(k).as<std::string>(); }
};

// ---- event ------------------------------------------------------------------------------------------------------

TEST(Event, MinimalEventHasSchemaKindAndCodeOnly) {
    decoded d(event{event_kind::alarm, "arc_fault"}.pack());
    ASSERT_EQ(d.fields.size(), 3u);
    ASSERT_EQ(d.fields.at("schema").type, msgpack::type::POSITIVE_INTEGER);
    EXPECT_EQ(d.fields.at("schema").as<int>(), 1);
    EXPECT_EQ(firelink::event_schema_version, 1);
    EXPECT_EQ(d.str("kind"), "alarm");
    EXPECT_EQ(d.str("code"), "arc_fault");
}

TEST(Event, EveryKindAndSeverityHasItsSchemaName) {
    const std::pair<event_kind, const char *> kinds[] = {
        {event_kind::alarm, "alarm"},         {event_kind::pre_alarm, "pre_alarm"},
        {event_kind::fault, "fault"},         {event_kind::restore, "restore"},
        {event_kind::status, "status"},       {event_kind::telemetry, "telemetry"},
        {event_kind::offline, "offline"},     {event_kind::command_result, "command_result"},
        {event_kind::gap, "gap"}};
    for (auto [kind, name] : kinds) {
        decoded d(event{kind, "x"}.pack());
        EXPECT_EQ(d.str("kind"), name);
    }
    const std::pair<firelink::severity, const char *> severities[] = {
        {firelink::severity::critical, "critical"}, {firelink::severity::major, "major"},
        {firelink::severity::minor, "minor"},       {firelink::severity::warning, "warning"},
        {firelink::severity::info, "info"}};
    for (auto [s, name] : severities) {
        decoded d(event{event_kind::fault, "x"}.level(s).pack());
        EXPECT_EQ(d.str("severity"), name);
    }
}

TEST(Event, OptionalFieldsAppearWithTheirValues) {
    event ev{event_kind::alarm, "gas_level_2"};
    ev.id("ev-17").ends("ev-16").level(firelink::severity::critical).message("valve closing").device_time_ms(
        1718000000123);
    decoded d(ev.pack());
    EXPECT_EQ(d.fields.size(), 8u);
    EXPECT_EQ(d.str("event_id"), "ev-17");
    EXPECT_EQ(d.str("ends"), "ev-16");
    EXPECT_EQ(d.str("severity"), "critical");
    EXPECT_EQ(d.str("message"), "valve closing");
    EXPECT_EQ(d.fields.at("device_time").as<std::int64_t>(), 1718000000123);
    EXPECT_FALSE(d.has("values"));
    EXPECT_FALSE(d.has("command_id"));
    EXPECT_FALSE(d.has("ok"));
}

TEST(Event, DeviceTimeZeroIsStillPresent) {
    decoded d(event{event_kind::status, "x"}.device_time_ms(0).pack());
    ASSERT_TRUE(d.has("device_time"));
    EXPECT_EQ(d.fields.at("device_time").as<std::int64_t>(), 0);
}

TEST(Event, ValuesKeepNameTypeAndUnit) {
    event ev{event_kind::telemetry, "sample"};
    ev.value("residual_current", 312, "mA")
        .value("lel", 27.5, "%LEL")
        .value("energy", std::int64_t{5'000'000'000}, "Wh")
        .value("tripped", true)
        .value("mode", std::string("auto"))
        .value("unitless", 3);
    decoded d(ev.pack());
    ASSERT_TRUE(d.has("values"));
    const auto &arr = d.fields.at("values");
    ASSERT_EQ(arr.type, msgpack::type::ARRAY);
    ASSERT_EQ(arr.via.array.size, 6u);

    auto point = [&](std::uint32_t i) {
        std::map<std::string, msgpack::object> p;
        arr.via.array.ptr[i].convert(p);
        return p;
    };
    auto p0 = point(0);
    EXPECT_EQ(p0.size(), 3u);
    EXPECT_EQ(p0.at("name").as<std::string>(), "residual_current");
    EXPECT_EQ(p0.at("value").type, msgpack::type::POSITIVE_INTEGER);
    EXPECT_EQ(p0.at("value").as<int>(), 312);
    EXPECT_EQ(p0.at("unit").as<std::string>(), "mA");

    auto p1 = point(1);
    EXPECT_EQ(p1.at("value").type, msgpack::type::FLOAT64);
    EXPECT_EQ(p1.at("value").as<double>(), 27.5);
    EXPECT_EQ(p1.at("unit").as<std::string>(), "%LEL");

    EXPECT_EQ(point(2).at("value").as<std::int64_t>(), 5'000'000'000);

    auto p3 = point(3);
    EXPECT_EQ(p3.at("value").type, msgpack::type::BOOLEAN);
    EXPECT_TRUE(p3.at("value").as<bool>());
    EXPECT_EQ(p3.count("unit"), 0u) << "an empty unit is left out";

    auto p4 = point(4);
    EXPECT_EQ(p4.at("value").type, msgpack::type::STR);
    EXPECT_EQ(p4.at("value").as<std::string>(), "auto");

    auto p5 = point(5);
    EXPECT_EQ(p5.size(), 2u);
    EXPECT_EQ(p5.at("value").as<int>(), 3);
}

// A string literal is a string, not a pointer that converts to true.
TEST(Event, StringLiteralValueIsAString) {
    decoded d(event{event_kind::status, "valve"}.value("position", "closed").pack());
    std::map<std::string, msgpack::object> p;
    d.fields.at("values").via.array.ptr[0].convert(p);
    ASSERT_EQ(p.at("value").type, msgpack::type::STR);
    EXPECT_EQ(p.at("value").as<std::string>(), "closed");
}

TEST(Event, NegativeValuesAndDeviceTimesStayNegative) {
    decoded d(event{event_kind::telemetry, "t"}.value("temp", -40, "degC").device_time_ms(-5).pack());
    std::map<std::string, msgpack::object> p;
    d.fields.at("values").via.array.ptr[0].convert(p);
    EXPECT_EQ(p.at("value").as<int>(), -40);
    EXPECT_EQ(d.fields.at("device_time").as<std::int64_t>(), -5);
}

TEST(Event, CommandResultCarriesIdOkAndMessage) {
    decoded ok(event::command_result("cmd-42", true, "read back: closed").pack());
    EXPECT_EQ(ok.str("kind"), "command_result");
    EXPECT_EQ(ok.str("code"), "command_succeeded");
    EXPECT_EQ(ok.str("command_id"), "cmd-42");
    ASSERT_EQ(ok.fields.at("ok").type, msgpack::type::BOOLEAN);
    EXPECT_TRUE(ok.fields.at("ok").as<bool>());
    EXPECT_EQ(ok.str("message"), "read back: closed");

    decoded failed(event::command_result("cmd-43", false).pack());
    EXPECT_EQ(failed.str("code"), "command_failed");
    EXPECT_EQ(failed.str("command_id"), "cmd-43");
    EXPECT_FALSE(failed.fields.at("ok").as<bool>());
    EXPECT_FALSE(failed.has("message")) << "an empty message is left out";
    EXPECT_EQ(failed.fields.size(), 5u);
}

// The map's declared count must equal its entries for every combination of optional fields.
TEST(Event, MapCountMatchesEntriesForEveryCombinationOfFields) {
    for (unsigned mask = 0; mask < (1u << 7); ++mask) {
        SCOPED_TRACE(mask);
        event ev = (mask & 64) ? event::command_result("c", true) : event{event_kind::fault, "f"};
        std::size_t expected = (mask & 64) ? 5 : 3;
        if (mask & 1) ev.id("i"), ++expected;
        if (mask & 2) ev.ends("e"), ++expected;
        if (mask & 4) ev.level(firelink::severity::minor), ++expected;
        if (mask & 8) ev.message("m"), ++expected;
        if (mask & 16) ev.device_time_ms(1), ++expected;
        if (mask & 32) ev.value("v", 1.0), ++expected;
        auto b = ev.pack();
        decoded d(b);  // fails on a wrong count (missing or trailing bytes)
        EXPECT_EQ(d.fields.size(), expected);
    }
}

// ---- config -----------------------------------------------------------------------------------------------------

bytes sample_config() {
    return packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(9);
        pk.pack("period_ms"); pk.pack(1500);
        pk.pack("name"); pk.pack("breaker-3");
        pk.pack("enabled"); pk.pack(true);
        pk.pack("threshold"); pk.pack(30.5);
        pk.pack("small"); pk.pack(255);
        pk.pack("negative"); pk.pack(-1);
        pk.pack("huge"); pk.pack(std::numeric_limits<std::uint64_t>::max());
        pk.pack("modbus");
        pk.pack_map(2);
        pk.pack("slave"); pk.pack(7);
        pk.pack("registers"); pk.pack_map(1); pk.pack("lel"); pk.pack(40001);
        pk.pack("list"); pk.pack_array(2); pk.pack(1); pk.pack(2);
    });
}

// Runs `f` and returns the config_error's message; fails when f does not throw config_error.
std::string error_of(const std::function<void()> &f) {
    try {
        f();
    } catch (const config_error &e) {
        return e.what();
    } catch (const std::exception &e) {
        ADD_FAILURE() << "threw something other than config_error: " << e.what();
        return {};
    }
    ADD_FAILURE() << "did not throw";
    return {};
}

TEST(Config, GetReadsEachTypeAndFallsBackWhenAbsent) {
    auto b = sample_config();
    config cfg{b.data(), b.size()};
    EXPECT_EQ(cfg.get<std::int64_t>("period_ms", 1000), 1500);
    EXPECT_EQ(cfg.get<std::uint32_t>("period_ms", 1000), 1500u);
    EXPECT_EQ(cfg.get<std::string>("name", "x"), "breaker-3");
    EXPECT_TRUE(cfg.get<bool>("enabled", false));
    EXPECT_EQ(cfg.get<double>("threshold", 0.0), 30.5);
    EXPECT_EQ(cfg.get<double>("period_ms", 0.0), 1500.0) << "an integer reads as a number";
    EXPECT_EQ(cfg.get<double>("negative", 0.0), -1.0);
    EXPECT_EQ(cfg.get<std::int64_t>("absent", 1000), 1000);
    EXPECT_EQ(cfg.get<std::string>("absent", "fallback"), "fallback");
    EXPECT_TRUE(cfg.has("name"));
    EXPECT_FALSE(cfg.has("absent"));
    EXPECT_FALSE(cfg.has("slave")) << "nested keys are not top-level keys";
}

TEST(Config, MistypedValueNamesTheKeyAndBothTypes) {
    auto b = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(2);
        pk.pack("period_ms"); pk.pack("fast");
        pk.pack("enabled"); pk.pack(1);
    });
    config cfg{b.data(), b.size()};
    EXPECT_EQ(error_of([&] { cfg.get<std::int64_t>("period_ms", 1000); }),
              "config key 'period_ms': expected an integer, got a string");
    EXPECT_EQ(error_of([&] { cfg.get<bool>("enabled", false); }),
              "config key 'enabled': expected a boolean, got an integer");
    EXPECT_EQ(error_of([&] { cfg.get<double>("period_ms", 0.0); }),
              "config key 'period_ms': expected a number, got a string");
    EXPECT_EQ(error_of([&] { cfg.get<std::string>("enabled", ""); }),
              "config key 'enabled': expected a string, got an integer");
}

TEST(Config, RequireNamesTheMissingKeyAndTheExpectedType) {
    auto b = sample_config();
    config cfg{b.data(), b.size()};
    EXPECT_EQ(cfg.require<std::string>("name"), "breaker-3");
    EXPECT_EQ(error_of([&] { cfg.require<std::int64_t>("slave_id"); }),
              "config key 'slave_id': missing (expected an integer)");
    EXPECT_EQ(error_of([&] { cfg.require<std::string>("port"); }), "config key 'port': missing (expected a string)");
}

TEST(Config, IntegersOutsideTheTargetTypeAreRefused) {
    auto b = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(7);
        pk.pack("neg"); pk.pack(-1);
        pk.pack("u8max"); pk.pack(255);
        pk.pack("u8over"); pk.pack(256);
        pk.pack("i8min"); pk.pack(-128);
        pk.pack("i8under"); pk.pack(-129);
        pk.pack("u64max"); pk.pack(std::numeric_limits<std::uint64_t>::max());
        pk.pack("i64min"); pk.pack(std::numeric_limits<std::int64_t>::min());
    });
    config cfg{b.data(), b.size()};
    EXPECT_EQ(error_of([&] { cfg.get<std::uint32_t>("neg", 0); }), "config key 'neg': -1 must not be negative");
    EXPECT_EQ(error_of([&] { cfg.get<std::uint64_t>("neg", 0); }), "config key 'neg': -1 must not be negative");
    EXPECT_EQ(cfg.get<std::uint8_t>("u8max", 0), 255);
    EXPECT_EQ(error_of([&] { cfg.get<std::uint8_t>("u8over", 0); }), "config key 'u8over': 256 is out of range");
    EXPECT_EQ(cfg.get<std::int8_t>("i8min", 0), -128);
    EXPECT_EQ(error_of([&] { cfg.get<std::int8_t>("i8under", 0); }), "config key 'i8under': -129 is out of range");
    EXPECT_EQ(error_of([&] { cfg.get<std::int8_t>("u8max", 0); }), "config key 'u8max': 255 is out of range");
    EXPECT_EQ(cfg.get<std::uint64_t>("u64max", 0), std::numeric_limits<std::uint64_t>::max());
    EXPECT_EQ(error_of([&] { cfg.get<std::int64_t>("u64max", 0); }),
              "config key 'u64max': 18446744073709551615 is out of range");
    EXPECT_EQ(cfg.get<std::int64_t>("i64min", 0), std::numeric_limits<std::int64_t>::min());
    EXPECT_EQ(error_of([&] { cfg.get<std::int32_t>("i64min", 0); }),
              "config key 'i64min': -9223372036854775808 is out of range");
    EXPECT_EQ(cfg.get<std::int16_t>("neg", 0), -1);
}

TEST(Config, SectionReadsNestedMapsAndLabelsErrorsWithTheDottedPath) {
    auto b = sample_config();
    config cfg{b.data(), b.size()};
    config modbus = cfg.section("modbus");
    EXPECT_EQ(modbus.get<int>("slave", 0), 7);
    EXPECT_EQ(modbus.section("registers").get<std::uint16_t>("lel", 0), 40001);
    EXPECT_EQ(error_of([&] { modbus.get<std::string>("slave", ""); }),
              "config key 'modbus.slave': expected a string, got an integer");
    EXPECT_EQ(error_of([&] { modbus.section("registers").require<int>("co"); }),
              "config key 'modbus.registers.co': missing (expected an integer)");
    EXPECT_EQ(error_of([&] { modbus.section("registers").get<std::int8_t>("lel", 0); }),
              "config key 'modbus.registers.lel': 40001 is out of range");
}

TEST(Config, AbsentSectionIsEmptyAndNonMapSectionIsRefused) {
    auto b = sample_config();
    config cfg{b.data(), b.size()};
    config none = cfg.section("serial");
    EXPECT_FALSE(none.has("baud"));
    EXPECT_EQ(none.get<int>("baud", 9600), 9600);
    EXPECT_TRUE(none.keys().empty());
    EXPECT_EQ(error_of([&] { cfg.section("list"); }), "config key 'list': expected a map");
    EXPECT_EQ(error_of([&] { cfg.section("name"); }), "config key 'name': expected a map");
}

TEST(Config, SectionOutlivesItsParentAndTheInputBytes) {
    config modbus;
    {
        auto b = sample_config();
        config cfg{b.data(), b.size()};
        modbus = cfg.section("modbus");
        std::fill(b.begin(), b.end(), std::uint8_t{0xc1});  // the config owns a copy: scribbling must not matter
        EXPECT_EQ(cfg.get<std::string>("name", ""), "breaker-3");
    }
    EXPECT_EQ(modbus.get<int>("slave", 0), 7);
    EXPECT_EQ(modbus.section("registers").get<int>("lel", 0), 40001);
}

TEST(Config, RejectUnknownNamesTheFirstUnknownKey) {
    auto b = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(3);
        pk.pack("period_ms"); pk.pack(1);
        pk.pack("perod_ms"); pk.pack(2);
        pk.pack("other"); pk.pack(3);
    });
    config cfg{b.data(), b.size()};
    EXPECT_EQ(error_of([&] { cfg.reject_unknown({"period_ms", "other"}); }), "config key 'perod_ms': unknown key");
    EXPECT_NO_THROW(cfg.reject_unknown({"period_ms", "perod_ms", "other"}));
    EXPECT_NO_THROW(cfg.reject_unknown({"other", "x", "perod_ms", "period_ms"}));

    auto c = sample_config();
    config full{c.data(), c.size()};
    EXPECT_EQ(error_of([&] { full.section("modbus").reject_unknown({"slave"}); }),
              "config key 'modbus.registers': unknown key");

    auto nk = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(1);
        pk.pack(5); pk.pack(1);
    });
    config non_string{nk.data(), nk.size()};
    EXPECT_EQ(error_of([&] { non_string.reject_unknown({"a"}); }), "config key '<non-string>': unknown key");
}

TEST(Config, KeysListsTopLevelKeysInOrder) {
    auto b = sample_config();
    config cfg{b.data(), b.size()};
    EXPECT_EQ(cfg.keys(), (std::vector<std::string>{"period_ms", "name", "enabled", "threshold", "small", "negative",
                                                    "huge", "modbus", "list"}));
}

TEST(Config, EmptyInputIsAnEmptyMap) {
    config a{nullptr, 0};
    EXPECT_TRUE(a.keys().empty());
    EXPECT_EQ(a.get<int>("x", 4), 4);
    std::uint8_t dummy = 0xc1;
    config b{&dummy, 0};
    EXPECT_TRUE(b.keys().empty());
    EXPECT_NO_THROW(b.reject_unknown({}));
}

TEST(Config, BadBytesThrowConfigError) {
    auto valid = sample_config();
    bytes truncated(valid.begin(), valid.end() - 1);
    EXPECT_NE(error_of([&] { config{truncated.data(), truncated.size()}; }).find("config: not valid msgpack"),
              std::string::npos);
    bytes never_used = {0xc1};
    EXPECT_FALSE(error_of([&] { config{never_used.data(), never_used.size()}; }).empty());
    bytes array = packed_by_msgpack_c([](auto &pk) { pk.pack_array(1); pk.pack(1); });
    EXPECT_EQ(error_of([&] { config{array.data(), array.size()}; }), "config: expected a map at the top level");
    bytes scalar = {0x05};
    EXPECT_EQ(error_of([&] { config{scalar.data(), scalar.size()}; }), "config: expected a map at the top level");
    bytes trailing = valid;
    trailing.push_back(0xc0);
    EXPECT_EQ(error_of([&] { config{trailing.data(), trailing.size()}; }), "config: trailing bytes after the map");
    bytes claims_more = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01};
    EXPECT_FALSE(error_of([&] { config{claims_more.data(), claims_more.size()}; }).empty());
}

// A few bytes claiming millions of entries must be refused before anything is allocated for them: checked under an
// address-space limit of 128 MiB more than the process uses now, which a 512 MiB allocation would hit.
TEST(Config, HugeClaimedCountsAreRefusedWithoutAllocatingForThem) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer reserves address space of its own";
#else
    long pages = 0;
    {
        std::FILE *statm = std::fopen("/proc/self/statm", "r");
        if (!statm) GTEST_SKIP() << "no /proc/self/statm";
        if (std::fscanf(statm, "%ld", &pages) != 1) pages = 0;
        std::fclose(statm);
    }
    ASSERT_GT(pages, 0);
    rlimit before{};
    ASSERT_EQ(getrlimit(RLIMIT_AS, &before), 0);
    rlimit tight = before;
    tight.rlim_cur = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + (rlim_t{128} << 20);
    if (before.rlim_cur != RLIM_INFINITY && before.rlim_cur < tight.rlim_cur) tight.rlim_cur = before.rlim_cur;
    ASSERT_EQ(setrlimit(RLIMIT_AS, &tight), 0);

    const bytes claims[] = {
        {0xdf, 0x00, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01},                    // map32: 16 M pairs (512 MiB)
        {0x81, 0xa1, 'a', 0xdd, 0x01, 0xff, 0xff, 0xff, 0x01},              // array32: 33 M items (512 MiB)
        {0x81, 0xa1, 'a', 0xdb, 0x3f, 0xff, 0xff, 0xff, 'x'},               // str32: 1 GiB
        {0x81, 0xa1, 'a', 0xc6, 0x3f, 0xff, 0xff, 0xff, 'x'},               // bin32: 1 GiB
    };
    std::vector<std::string> errors;
    for (const auto &b : claims) {
        try {
            config cfg{b.data(), b.size()};
            errors.emplace_back("accepted");
        } catch (const config_error &e) {
            errors.emplace_back(e.what());
        } catch (const std::exception &e) {
            errors.emplace_back(std::string("not a config_error: ") + e.what());
        }
    }
    ASSERT_EQ(setrlimit(RLIMIT_AS, &before), 0);
    for (const auto &e : errors) {
        EXPECT_EQ(e.rfind("config: not valid msgpack", 0), 0u) << e;
        EXPECT_EQ(e.find("bad_alloc"), std::string::npos) << "allocated for a claim the bytes cannot hold: " << e;
    }
#endif
}

TEST(Config, EveryPrefixOfAValidConfigIsRefusedCleanly) {
    auto valid = sample_config();
    for (std::size_t len = 1; len < valid.size(); ++len) {
        bytes prefix(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(len));
        EXPECT_THROW((config{prefix.data(), prefix.size()}), config_error) << "prefix " << len;
    }
}

// ---- command ----------------------------------------------------------------------------------------------------

TEST(Command, ParsesIdNameAndArgs) {
    auto b = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(3);
        pk.pack("id"); pk.pack("cmd-1");
        pk.pack("name"); pk.pack("close_valve");
        pk.pack("args"); pk.pack_map(1); pk.pack("timeout_ms"); pk.pack(5000);
    });
    firelink::command cmd{b.data(), b.size()};
    EXPECT_EQ(cmd.id(), "cmd-1");
    EXPECT_EQ(cmd.name(), "close_valve");
    EXPECT_EQ(cmd.args().get<std::uint32_t>("timeout_ms", 0), 5000u);
    EXPECT_EQ(error_of([&] { cmd.args().get<std::string>("timeout_ms", ""); }),
              "config key 'args.timeout_ms': expected a string, got an integer");
}

TEST(Command, ArgsMayBeAbsent) {
    auto b = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(2);
        pk.pack("name"); pk.pack("trip");
        pk.pack("id"); pk.pack("cmd-2");
    });
    firelink::command cmd{b.data(), b.size()};
    EXPECT_EQ(cmd.id(), "cmd-2");
    EXPECT_EQ(cmd.name(), "trip");
    EXPECT_TRUE(cmd.args().keys().empty());
}

TEST(Command, MissingOrMistypedIdOrNameThrows) {
    struct malformed { bytes command; const char *error; };
    const malformed cases[] = {
        {packed_by_msgpack_c([](auto &pk) { pk.pack_map(1); pk.pack("name"); pk.pack("trip"); }),
         "config key 'id': missing (expected a string)"},
        {packed_by_msgpack_c([](auto &pk) { pk.pack_map(1); pk.pack("id"); pk.pack("c"); }),
         "config key 'name': missing (expected a string)"},
        {packed_by_msgpack_c([](auto &pk) {
             pk.pack_map(2);
             pk.pack("id"); pk.pack(7);
             pk.pack("name"); pk.pack("trip");
         }),
         "config key 'id': expected a string, got an integer"},
        {packed_by_msgpack_c([](auto &pk) {
             pk.pack_map(3);
             pk.pack("id"); pk.pack("c");
             pk.pack("name"); pk.pack("trip");
             pk.pack("args"); pk.pack_array(0);
         }),
         "config key 'args': expected a map"},
    };
    for (const auto &c : cases)
        EXPECT_EQ(error_of([&] { firelink::command{c.command.data(), c.command.size()}; }), c.error);
    bytes garbage = {0x82, 0xa2, 'i', 'd'};
    EXPECT_THROW((firelink::command{garbage.data(), garbage.size()}), config_error);
    EXPECT_THROW((firelink::command{nullptr, 0}), config_error) << "an empty command has no id";
}

}  // namespace
