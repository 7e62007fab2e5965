// [device.config] reaches the driver as one msgpack map: decoded here with msgpack-c and compared value by value.
#include "site_test_support.hpp"

#include <msgpack.hpp>

#include <map>
#include <string>
#include <vector>

using namespace site_test;

namespace {

// The decoded config of the site's first device, as a map from key to value.
struct decoded {
    msgpack::object_handle handle;
    std::map<std::string, msgpack::object> map;
};

decoded decode_config(const std::string &config_lines) {
    const auto c = snippet_loads("[[device]]\nid = \"d\"\ndriver = \"x\"\nclass = \"fire_panel\"\n[device.config]\n" +
                                 config_lines);
    decoded out;
    if (c.devices.empty()) return out;
    const auto &bytes = c.devices[0].driver_config;
    out.handle = msgpack::unpack(reinterpret_cast<const char *>(bytes.data()), bytes.size());
    EXPECT_EQ(out.handle.get().type, msgpack::type::MAP);
    out.map = out.handle.get().as<std::map<std::string, msgpack::object>>();
    return out;
}

}  // namespace

TEST(DriverConfig, ScalarsKeepTheirTypes) {
    const auto d = decode_config(R"(
text = "电气火灾"
negative = -5
big = 5000000000
zero = 0
ratio = 1.5
on = true
off = false
)");
    ASSERT_EQ(d.map.size(), 7u);
    EXPECT_EQ(d.map.at("text").type, msgpack::type::STR);
    EXPECT_EQ(d.map.at("text").as<std::string>(), "电气火灾");
    EXPECT_EQ(d.map.at("negative").type, msgpack::type::NEGATIVE_INTEGER);
    EXPECT_EQ(d.map.at("negative").as<std::int64_t>(), -5);
    EXPECT_EQ(d.map.at("big").type, msgpack::type::POSITIVE_INTEGER);
    EXPECT_EQ(d.map.at("big").as<std::int64_t>(), 5000000000);
    EXPECT_EQ(d.map.at("zero").as<std::int64_t>(), 0);
    EXPECT_EQ(d.map.at("ratio").type, msgpack::type::FLOAT64);
    EXPECT_EQ(d.map.at("ratio").as<double>(), 1.5);
    EXPECT_EQ(d.map.at("on").type, msgpack::type::BOOLEAN);
    EXPECT_TRUE(d.map.at("on").as<bool>());
    EXPECT_FALSE(d.map.at("off").as<bool>());
}

TEST(DriverConfig, ArraysAndNestedTables) {
    const auto d = decode_config(R"(
mixed = [1, "two", 3.0, [true]]
nested = { k = "v", inner = { n = 1 } }

[[device.config.registers]]
name = "current"
address = 100

[[device.config.registers]]
name = "leakage"
address = 101
)");
    const auto mixed = d.map.at("mixed").as<std::vector<msgpack::object>>();
    ASSERT_EQ(mixed.size(), 4u);
    EXPECT_EQ(mixed[0].as<int>(), 1);
    EXPECT_EQ(mixed[1].as<std::string>(), "two");
    EXPECT_EQ(mixed[2].as<double>(), 3.0);
    EXPECT_EQ(mixed[3].as<std::vector<bool>>(), std::vector<bool>{true});

    const auto nested = d.map.at("nested").as<std::map<std::string, msgpack::object>>();
    EXPECT_EQ(nested.at("k").as<std::string>(), "v");
    EXPECT_EQ((nested.at("inner").as<std::map<std::string, int>>()), (std::map<std::string, int>{{"n", 1}}));

    const auto registers = d.map.at("registers").as<std::vector<std::map<std::string, msgpack::object>>>();
    ASSERT_EQ(registers.size(), 2u);
    EXPECT_EQ(registers[0].at("name").as<std::string>(), "current");
    EXPECT_EQ(registers[0].at("address").as<int>(), 100);
    EXPECT_EQ(registers[1].at("name").as<std::string>(), "leakage");
    EXPECT_EQ(registers[1].at("address").as<int>(), 101);
}

TEST(DriverConfig, DatesAndTimesBecomeIsoStrings) {
    const auto d = decode_config(R"(
date = 1979-05-27
time = 07:32:00
time_ms = 07:32:00.250
local = 1979-05-27T07:32:00
utc = 1979-05-27T07:32:00Z
offset = 1979-05-27T00:32:00.5-07:00
)");
    EXPECT_EQ(d.map.at("date").as<std::string>(), "1979-05-27");
    EXPECT_EQ(d.map.at("time").as<std::string>(), "07:32:00");
    EXPECT_EQ(d.map.at("time_ms").as<std::string>(), "07:32:00.25");
    EXPECT_EQ(d.map.at("local").as<std::string>(), "1979-05-27T07:32:00");
    EXPECT_EQ(d.map.at("utc").as<std::string>(), "1979-05-27T07:32:00Z");
    EXPECT_EQ(d.map.at("offset").as<std::string>(), "1979-05-27T00:32:00.5-07:00");
}

TEST(DriverConfig, ExactBytesOfASmallMap) {
    const auto c = snippet_loads("[[device]]\nid = \"d\"\ndriver = \"x\"\nclass = \"fire_panel\"\n"
                                 "config = { period_ms = 1000, name = \"a\" }\n");
    // fixmap(2) "name" "a" "period_ms" uint16 1000 (keys in order: toml++ keeps tables sorted)
    const std::vector<std::uint8_t> expected = {0x82, 0xa4, 'n', 'a', 'm', 'e', 0xa1, 'a',  0xa9, 'p', 'e',
                                                'r',  'i',  'o', 'd', '_', 'm', 's',  0xcd, 0x03, 0xe8};
    EXPECT_EQ(c.devices.at(0).driver_config, expected);
}

TEST(DriverConfig, EmptyOrAbsentIsAnEmptyMap) {
    const auto c = snippet_loads("[[device]]\nid = \"a\"\ndriver = \"x\"\nclass = \"fire_panel\"\nconfig = {}\n"
                                 "[[device]]\nid = \"b\"\ndriver = \"x\"\nclass = \"fire_panel\"\n");
    EXPECT_EQ(c.devices.at(0).driver_config, std::vector<std::uint8_t>{0x80});
    EXPECT_EQ(c.devices.at(1).driver_config, std::vector<std::uint8_t>{0x80});
}

TEST(DriverConfig, KeysInsideAreTheDriversOwn) {
    // No unknown-key check inside config: any key is the driver's business.
    const auto d = decode_config("anything_at_all = 1\nid = \"not the device id\"\n");
    EXPECT_EQ(d.map.at("anything_at_all").as<int>(), 1);
    EXPECT_EQ(d.map.at("id").as<std::string>(), "not the device id");
}

// A driver's refusal points at the config key it names (the SDK writes "config key '<key>': ..."), at its value.
TEST(DriverConfig, ARefusalPointsAtTheKeyTheDriverNames) {
    const auto c = snippet_loads("[[device]]\nid = \"a\"\ndriver = \"x\"\nclass = \"fire_panel\"\n\n"
                                 "[[device]]\nid = \"b\"\ndriver = \"x\"\nclass = \"fire_panel\"\n"
                                 "config = { telemetry_ms = 0, poll_ms = 5 }\n\n"
                                 "[[device]]\nid = \"c\"\ndriver = \"x\"\nclass = \"fire_panel\"\n"
                                 "[device.config]\nregisters = { gas = 3 }\n");
    ASSERT_EQ(c.devices.size(), 3u);
    const auto &b = c.devices[1];
    EXPECT_EQ(firelink::site::driver_config_error(b, "create: config key 'poll_ms': 5 is outside 10..3600000").str(),
              "site.toml:10:40: device[1].config.poll_ms: create: config key 'poll_ms': 5 is outside 10..3600000");
    // Words that name no key of the table point at the table.
    EXPECT_EQ(firelink::site::driver_config_error(b, "create: no point to poll").str(),
              "site.toml:10:10: device[1].config: create: no point to poll");
    EXPECT_EQ(firelink::site::driver_config_error(b, "config key 'nope': unknown key").str(),
              "site.toml:10:10: device[1].config: config key 'nope': unknown key");
    // A nested key is pointed at by its top-level table; a [device.config] table has a line of its own.
    EXPECT_EQ(firelink::site::driver_config_error(c.devices[2], "config key 'registers.gas': 3 is taken").str(),
              "site.toml:17:13: device[2].config.registers: config key 'registers.gas': 3 is taken");
    EXPECT_EQ(firelink::site::driver_config_error(c.devices[2], "bad").str(), "site.toml:16:1: device[2].config: bad");
    // A device without [config]: its own table.
    EXPECT_EQ(firelink::site::driver_config_error(c.devices[0], "bad").str(), "site.toml:1:1: device[0].config: bad");
}
