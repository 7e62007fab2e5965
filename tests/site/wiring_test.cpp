// [[bus]], [[listener]], [[device]] with its wire and site metadata, and the references between them.
#include "site_test_support.hpp"

using namespace site_test;
using firelink::site::wire_config;

namespace {

const std::string rs485 = "[[bus]]\nid = \"rs485-1\"\nkind = \"rs485\"\npath = \"/dev/ttyUSB0\"\n";  // lines 1-4
const std::string serial = "[[bus]]\nid = \"com1\"\nkind = \"serial\"\npath = \"/dev/ttyS0\"\n";     // lines 1-4
const std::string uitd = "[[listener]]\nid = \"uitd\"\nlisten = \"0.0.0.0:9000\"\n";                 // lines 1-3

// A [[device]] of 4 lines; `extra` lines follow.
std::string device(const std::string &id, const std::string &extra = "", const std::string &cls = "fire_panel") {
    return "[[device]]\nid = \"" + id + "\"\ndriver = \"panel\"\nclass = \"" + cls + "\"\n" + extra;
}

const std::string device_keys = "id, driver, plugin, class, enabled, heartbeat_s, wire, site, tags, config";

}  // namespace

// ---- [[bus]] -------------------------------------------------------------------------------------------------

TEST(Bus, Defaults) {
    const auto c = snippet_loads(rs485);
    ASSERT_EQ(c.buses.size(), 1u);
    const auto &b = c.buses[0];
    EXPECT_EQ(b.id, "rs485-1");
    EXPECT_TRUE(b.shared);
    EXPECT_EQ(b.serial.path, "/dev/ttyUSB0");
    EXPECT_EQ(b.serial.baud, 9600u);
    EXPECT_EQ(b.serial.data_bits, 8u);
    EXPECT_EQ(b.serial.parity, 'N');
    EXPECT_EQ(b.serial.stop_bits, 1u);
    EXPECT_EQ(b.request_timeout, 500ms);
    EXPECT_EQ(b.inter_frame_gap, 5ms);
    EXPECT_EQ(b.where.line, 1);
    EXPECT_EQ(b.where.column, 1);
    EXPECT_EQ(c.find_bus("rs485-1"), &c.buses[0]);
    EXPECT_EQ(c.find_bus("nope"), nullptr);
}

TEST(Bus, AllValues) {
    const auto c = snippet_loads(serial + "baud = 115200\ndata_bits = 7\nparity = \"even\"\nstop_bits = 2\n"
                                          "request_timeout_ms = 60000\ninter_frame_gap_ms = 0\n");
    const auto &b = c.buses.at(0);
    EXPECT_FALSE(b.shared);
    EXPECT_EQ(b.serial.baud, 115200u);
    EXPECT_EQ(b.serial.data_bits, 7u);
    EXPECT_EQ(b.serial.parity, 'E');
    EXPECT_EQ(b.serial.stop_bits, 2u);
    EXPECT_EQ(b.request_timeout, 60000ms);
    EXPECT_EQ(b.inter_frame_gap, 0ms);
    EXPECT_EQ(snippet_loads(serial + "parity = \"odd\"\n").buses.at(0).serial.parity, 'O');
    EXPECT_EQ(snippet_loads(serial + "baud = 1200\n").buses.at(0).serial.baud, 1200u);
}

TEST(Bus, MissingKeys) {
    EXPECT_THAT(snippet_errors("[[bus]]\n"),
                ElementsAre("site.toml:1:1: bus[0].id: missing (expected a string)",
                            "site.toml:1:1: bus[0].kind: missing (expected one of \"rs485\", \"serial\")",
                            "site.toml:1:1: bus[0].path: missing (expected a non-empty string)"));
}

TEST(Bus, Rules) {
    EXPECT_EQ(snippet_error("[[bus]]\nid = \"rs 485\"\nkind = \"rs485\"\npath = \"/dev/x\"\n"),
              "site.toml:2:6: bus[0].id: expected 1 to 64 characters from A-Z a-z 0-9 _ . : -, got \"rs 485\"");
    EXPECT_EQ(snippet_error("[[bus]]\nid = \"b\"\nkind = \"rs232\"\npath = \"/dev/x\"\n"),
              "site.toml:3:8: bus[0].kind: expected one of \"rs485\", \"serial\", got \"rs232\"");
    EXPECT_EQ(snippet_error("[[bus]]\nid = \"b\"\nkind = \"rs485\"\npath = \"\"\n"),
              "site.toml:4:8: bus[0].path: expected a non-empty string, got \"\"");
    EXPECT_EQ(
        snippet_error(rs485 + "baud = 9601\n"),
        "site.toml:5:8: bus[0].baud: expected one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, got 9601");
    EXPECT_EQ(snippet_error(rs485 + "baud = \"9600\"\n"),
              "site.toml:5:8: bus[0].baud: expected one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, got a "
              "string");
    EXPECT_EQ(snippet_error(rs485 + "data_bits = 9\n"),
              "site.toml:5:13: bus[0].data_bits: expected an integer from 5 to 8, got 9");
    EXPECT_EQ(snippet_error(rs485 + "data_bits = 4\n"),
              "site.toml:5:13: bus[0].data_bits: expected an integer from 5 to 8, got 4");
    EXPECT_EQ(snippet_error(rs485 + "parity = \"mark\"\n"),
              "site.toml:5:10: bus[0].parity: expected one of \"none\", \"even\", \"odd\", got \"mark\"");
    EXPECT_EQ(snippet_error(rs485 + "stop_bits = 3\n"), "site.toml:5:13: bus[0].stop_bits: expected 1 or 2, got 3");
    EXPECT_EQ(snippet_error(rs485 + "stop_bits = 1.5\n"),
              "site.toml:5:13: bus[0].stop_bits: expected 1 or 2, got a float");
    EXPECT_EQ(snippet_error(rs485 + "request_timeout_ms = 0\n"),
              "site.toml:5:22: bus[0].request_timeout_ms: expected an integer from 1 to 60000, got 0");
    EXPECT_EQ(snippet_error(rs485 + "request_timeout_ms = 60001\n"),
              "site.toml:5:22: bus[0].request_timeout_ms: expected an integer from 1 to 60000, got 60001");
    EXPECT_EQ(snippet_error(rs485 + "inter_frame_gap_ms = 10001\n"),
              "site.toml:5:22: bus[0].inter_frame_gap_ms: expected an integer from 0 to 10000, got 10001");
    EXPECT_EQ(snippet_error(rs485 + "inter_frame_gap_ms = -1\n"),
              "site.toml:5:22: bus[0].inter_frame_gap_ms: expected an integer from 0 to 10000, got -1");
    EXPECT_EQ(snippet_error(rs485 + "speed = 9600\n"),
              "site.toml:5:1: bus[0].speed: unknown key (expected one of: id, kind, path, baud, data_bits, parity, "
              "stop_bits, request_timeout_ms, inter_frame_gap_ms)");
}

TEST(Bus, DuplicateIdAndPath) {
    EXPECT_EQ(snippet_error(rs485 + "[[bus]]\nid = \"rs485-1\"\nkind = \"rs485\"\npath = \"/dev/ttyUSB1\"\n"),
              "site.toml:6:6: bus[1].id: duplicate bus id 'rs485-1' (first at site.toml:1:1)");
    EXPECT_EQ(snippet_error(rs485 + "[[bus]]\nid = \"rs485-2\"\nkind = \"rs485\"\npath = \"/dev/ttyUSB0\"\n"),
              "site.toml:8:8: bus[1].path: device path \"/dev/ttyUSB0\" is already used by bus 'rs485-1' (first at "
              "site.toml:1:1)");
}

// ---- [[listener]] --------------------------------------------------------------------------------------------

TEST(Listener, Values) {
    const auto c = snippet_loads(uitd + "[[listener]]\nid = \"v6\"\nlisten = \"[::]:0\"\n");
    ASSERT_EQ(c.listeners.size(), 2u);
    EXPECT_EQ(c.listeners[0].id, "uitd");
    EXPECT_EQ(c.listeners[0].address, "0.0.0.0");
    EXPECT_EQ(c.listeners[0].port, 9000);
    EXPECT_EQ(c.listeners[0].where.line, 1);
    EXPECT_EQ(c.listeners[1].address, "::");
    EXPECT_EQ(c.listeners[1].port, 0);
    EXPECT_EQ(c.find_listener("v6"), &c.listeners[1]);
}

TEST(Listener, Rules) {
    EXPECT_THAT(snippet_errors("[[listener]]\n"),
                ElementsAre("site.toml:1:1: listener[0].id: missing (expected a string)",
                            "site.toml:1:1: listener[0].listen: missing (expected a string)"));
    EXPECT_EQ(snippet_error("[[listener]]\nid = \"uitd\"\nlisten = \"0.0.0.0\"\n"),
              "site.toml:3:10: listener[0].listen: expected \"HOST:PORT\" (an IPv6 address in brackets: "
              "\"[::1]:9180\"), got \"0.0.0.0\"");
    EXPECT_EQ(snippet_error("[[listener]]\nid = \"uitd\"\nlisten = \"localhost:5000\"\n"),
              "site.toml:3:10: listener[0].listen: expected an IP address to listen on (e.g. \"0.0.0.0:5000\" or "
              "\"127.0.0.1:5000\"), got \"localhost:5000\"");
    EXPECT_EQ(snippet_error("[[listener]]\nid = \"uitd\"\nlisten = \"0.0.0.0:65536\"\n"),
              "site.toml:3:10: listener[0].listen: expected \"HOST:PORT\" with a port from 0 to 65535, got "
              "\"0.0.0.0:65536\"");
    EXPECT_EQ(snippet_error(uitd + "backlog = 5\n"),
              "site.toml:4:1: listener[0].backlog: unknown key (expected one of: id, listen, max_unbound, "
              "identify_timeout_ms)");
}

TEST(Listener, LimitsForConnectionsNotYetBound) {
    const auto plain = snippet_loads(uitd);
    EXPECT_EQ(plain.listeners[0].max_unbound, 64u);
    EXPECT_EQ(plain.listeners[0].identify_timeout, std::chrono::milliseconds(10000));
    const auto set = snippet_loads(uitd + "max_unbound = 8\nidentify_timeout_ms = 2500\n");
    EXPECT_EQ(set.listeners[0].max_unbound, 8u);
    EXPECT_EQ(set.listeners[0].identify_timeout, std::chrono::milliseconds(2500));
    EXPECT_EQ(snippet_error(uitd + "max_unbound = 0\n"),
              "site.toml:4:15: listener[0].max_unbound: expected an integer from 1 to 4096, got 0");
    EXPECT_EQ(snippet_error(uitd + "identify_timeout_ms = \"10s\"\n"),
              "site.toml:4:23: listener[0].identify_timeout_ms: expected an integer from 100 to 600000, got a string");
}

TEST(Listener, DuplicateIdAndAddress) {
    EXPECT_EQ(snippet_error(uitd + "[[listener]]\nid = \"uitd\"\nlisten = \"0.0.0.0:9001\"\n"),
              "site.toml:5:6: listener[1].id: duplicate listener id 'uitd' (first at site.toml:1:1)");
    EXPECT_EQ(snippet_error(uitd + "[[listener]]\nid = \"uitd2\"\nlisten = \"0.0.0.0:9000\"\n"),
              "site.toml:6:10: listener[1].listen: address \"0.0.0.0:9000\" is already used by listener 'uitd' (first "
              "at site.toml:1:1)");
    // Port 0 asks for any free port: two such listeners never collide.
    snippet_loads(
        "[[listener]]\nid = \"a\"\nlisten = \"127.0.0.1:0\"\n[[listener]]\nid = \"b\"\nlisten = \"127.0.0.1:0\"\n");
}

// ---- [[device]] ----------------------------------------------------------------------------------------------

TEST(Device, MinimalAndDefaults) {
    const auto c = snippet_loads(device("panel-1"));
    ASSERT_EQ(c.devices.size(), 1u);
    const auto &d = c.devices[0];
    EXPECT_EQ(d.id, "panel-1");
    EXPECT_EQ(d.driver, "panel");
    EXPECT_EQ(d.plugin, "");
    EXPECT_EQ(d.device_class, "fire_panel");
    EXPECT_TRUE(d.enabled);
    EXPECT_FALSE(d.heartbeat.has_value());
    EXPECT_EQ(d.wire.type, wire_config::kind::none);
    EXPECT_EQ(d.wire.unit, -1);
    EXPECT_EQ(d.driver_config, std::vector<std::uint8_t>{0x80});  // {}
    EXPECT_EQ(d.meta.sector, "");
    EXPECT_EQ(d.where.line, 1);
    EXPECT_EQ(d.where.column, 1);
    EXPECT_EQ(c.find_device("panel-1"), &d);
    EXPECT_EQ(c.find_device("nope"), nullptr);
}

TEST(Device, AllValues) {
    const auto c = snippet_loads(
        device("gas-3", "plugin = \"com.acme.gas\"\nenabled = false\nheartbeat_s = 0\n", "gas_shutoff_valve") +
        device("v-1", "heartbeat_s = 86400\n", "vendor:com.acme.sprinkler"));
    const auto &d = c.devices.at(0);
    EXPECT_EQ(d.plugin, "com.acme.gas");
    EXPECT_EQ(d.device_class, "gas_shutoff_valve");
    EXPECT_FALSE(d.enabled);
    EXPECT_EQ(d.heartbeat, std::optional<std::chrono::milliseconds>(0ms));
    EXPECT_EQ(c.devices.at(1).heartbeat, std::optional<std::chrono::milliseconds>(86400s));
    EXPECT_EQ(c.devices.at(1).device_class, "vendor:com.acme.sprinkler");
}

TEST(Device, MissingKeys) {
    EXPECT_THAT(snippet_errors("[[device]]\n"),
                ElementsAre("site.toml:1:1: device[0].id: missing (expected a string)",
                            "site.toml:1:1: device[0].driver: missing (expected a string)",
                            "site.toml:1:1: device[0].class: missing (expected a string)"));
}

TEST(Device, Rules) {
    EXPECT_EQ(snippet_error("[[device]]\nid = \"a b\"\ndriver = \"panel\"\nclass = \"fire_panel\"\n"),
              "site.toml:2:6: device[0].id: expected 1 to 64 characters from A-Z a-z 0-9 _ . : -, got \"a b\"");
    EXPECT_EQ(snippet_error("[[device]]\nid = \"d\"\ndriver = \"Panel\"\nclass = \"fire_panel\"\n"),
              "site.toml:3:10: device[0].driver: expected a driver id (1 to 64 characters from a-z 0-9 _ . -, starting "
              "with a letter or digit), got \"Panel\"");
    EXPECT_EQ(
        snippet_error(device("d", "plugin = \"acme\"\n")),
        "site.toml:5:10: device[0].plugin: expected a lower-case reverse-DNS plugin id (e.g. \"com.acme.breakers\"), "
        "got \"acme\"");
    EXPECT_EQ(
        snippet_error(device("d", "", "smoke")),
        "site.toml:4:9: device[0].class: expected one of arc_fault_breaker, gas_shutoff_valve, pyrolysis_detector, "
        "fire_panel, vendor:<reverse-dns>, got \"smoke\"");
    EXPECT_EQ(
        snippet_error(device("d", "", "vendor:Acme")),
        "site.toml:4:9: device[0].class: expected one of arc_fault_breaker, gas_shutoff_valve, pyrolysis_detector, "
        "fire_panel, vendor:<reverse-dns>, got \"vendor:Acme\"");
    EXPECT_EQ(snippet_error(device("d", "enabled = \"yes\"\n")),
              "site.toml:5:11: device[0].enabled: expected a boolean (true or false), got a string");
    EXPECT_EQ(snippet_error(device("d", "heartbeat_s = -1\n")),
              "site.toml:5:15: device[0].heartbeat_s: expected an integer from 0 to 86400, got -1");
    EXPECT_EQ(snippet_error(device("d", "heartbeat_s = 86401\n")),
              "site.toml:5:15: device[0].heartbeat_s: expected an integer from 0 to 86400, got 86401");
    EXPECT_EQ(snippet_error(device("d", "config = 3\n")),
              "site.toml:5:10: device[0].config: expected a table, got an integer");
    EXPECT_EQ(snippet_error(device("d", "poll_ms = 5\n")),
              "site.toml:5:1: device[0].poll_ms: unknown key (expected one of: " + device_keys + ")");
}

TEST(Device, DuplicateId) {
    EXPECT_EQ(snippet_error(device("panel-1") + device("panel-2") + device("panel-1")),
              "site.toml:10:6: device[2].id: duplicate device id 'panel-1' (first at site.toml:1:1)");
}

TEST(Device, SiteMetadata) {
    const auto c = snippet_loads(device("d", "site = { site = \"St. Mary's\", building = \"B2\", floor = \"3F\", "
                                             "location = \"boiler room\", sector = \"religious_site\" }\n"));
    const auto &m = c.devices.at(0).meta;
    EXPECT_EQ(m.site, "St. Mary's");
    EXPECT_EQ(m.building, "B2");
    EXPECT_EQ(m.floor, "3F");
    EXPECT_EQ(m.location, "boiler room");
    EXPECT_EQ(m.sector, "religious_site");
    for (const auto &s : firelink::site::sectors())
        EXPECT_EQ(snippet_loads(device("d", "site.sector = \"" + s + "\"\n")).devices.at(0).meta.sector, s);
    EXPECT_EQ(firelink::site::sectors().size(), 11u);
}

TEST(Device, SiteMetadataRules) {
    EXPECT_EQ(snippet_error(device("d", "[device.site]\nsector = \"church\"\n")),
              "site.toml:6:10: device[0].site.sector: expected one of religious_site, elderly_care, hospital, school, "
              "rental_housing, high_rise, enterprise, residential, commercial, public_venue, other, got \"church\"");
    EXPECT_EQ(
        snippet_error(device("d", "[device.site]\nroom = \"101\"\n")),
        "site.toml:6:1: device[0].site.room: unknown key (expected one of: site, building, floor, location, sector)");
    EXPECT_EQ(snippet_error(device("d", "[device.site]\nfloor = 3\n")),
              "site.toml:6:9: device[0].site.floor: expected a string, got an integer");
    EXPECT_EQ(snippet_error(device("d", "site = \"x\"\n")),
              "site.toml:5:8: device[0].site: expected a table, got a string");
}

// ---- wire ----------------------------------------------------------------------------------------------------

TEST(Wire, NoneWhenAbsentOrEmpty) {
    EXPECT_EQ(snippet_loads(device("d", "wire = {}\n")).devices.at(0).wire.type, wire_config::kind::none);
}

TEST(Wire, Bus) {
    // The device comes before its bus in the file: references do not depend on order.
    const auto c = snippet_loads(device("d", "wire = { bus = \"rs485-1\", unit = 247 }\n") + rs485);
    const auto &w = c.devices.at(0).wire;
    EXPECT_EQ(w.type, wire_config::kind::bus);
    EXPECT_EQ(w.bus, "rs485-1");
    EXPECT_EQ(w.unit, 247);
}

TEST(Wire, BusRules) {
    // rs485 lines 1-4, the device from line 5, its wire on line 9.
    EXPECT_EQ(snippet_error(rs485 + device("d", "wire = { bus = \"rs485-1\", unit = 248 }\n")),
              "site.toml:9:34: device[0].wire.unit: expected an integer from 0 to 247, got 248");
    EXPECT_EQ(snippet_error(rs485 + device("d", "wire = { bus = \"rs485-1\", unit = \"3\" }\n")),
              "site.toml:9:34: device[0].wire.unit: expected an integer from 0 to 247, got a string");
    EXPECT_EQ(snippet_error(rs485 + device("d", "wire = { bus = \"rs485-9\", unit = 3 }\n")),
              "site.toml:9:16: device[0].wire.bus: bus 'rs485-9' is not defined (did you mean 'rs485-1'?)");
    EXPECT_EQ(snippet_error(rs485 + device("d", "wire = { bus = \"rs485-1\" }\n")),
              "site.toml:9:8: device[0].wire.unit: missing (expected an integer from 0 to 247: the device's address on "
              "rs485 bus 'rs485-1')");
    EXPECT_EQ(snippet_error(rs485 + device("d", "wire = { bus = \"rs485-1\", unit = 1, peer = \"10.0.0.1\" }\n")),
              "site.toml:9:44: device[0].wire.peer: not used by a bus wire (it takes: bus, unit)");
}

TEST(Wire, SharedBusUnitsAreUnique) {
    EXPECT_EQ(snippet_error(rs485 + device("a", "wire = { bus = \"rs485-1\", unit = 3 }\n") +
                            device("b", "wire = { bus = \"rs485-1\", unit = 3 }\n")),
              "site.toml:14:34: device[1].wire.unit: unit 3 on bus 'rs485-1' is already device 'a' (first at "
              "site.toml:5:1)");
    const auto c = snippet_loads(rs485 + device("a", "wire = { bus = \"rs485-1\", unit = 3 }\n") +
                                 device("b", "wire = { bus = \"rs485-1\", unit = 4 }\n"));
    EXPECT_EQ(c.devices.size(), 2u);
}

TEST(Wire, SerialBusCarriesOneDevice) {
    const auto c = snippet_loads(serial + device("a", "wire = { bus = \"com1\" }\n", "pyrolysis_detector"));
    EXPECT_EQ(c.devices.at(0).wire.type, wire_config::kind::bus);
    EXPECT_EQ(c.devices.at(0).wire.unit, -1);
    EXPECT_EQ(snippet_error(serial + device("a", "wire = { bus = \"com1\", unit = 1 }\n") +
                            device("b", "wire = { bus = \"com1\", unit = 2 }\n")),
              "site.toml:14:16: device[1].wire.bus: bus 'com1' is a serial (point-to-point) bus and already carries "
              "device 'a' (first at site.toml:5:1)");
}

TEST(Wire, Tcp) {
    auto c = snippet_loads(device("d", "wire = { tcp = \"10.0.0.7:502\", unit = 255 }\n"));
    auto w = c.devices.at(0).wire;
    EXPECT_EQ(w.type, wire_config::kind::tcp_client);
    EXPECT_EQ(w.host, "10.0.0.7");
    EXPECT_EQ(w.port, 502);
    EXPECT_EQ(w.unit, 255);
    w = snippet_loads(device("d", "wire = { tcp = \"[fe80::1]:1\" }\n")).devices.at(0).wire;
    EXPECT_EQ(w.host, "fe80::1");
    EXPECT_EQ(w.port, 1);
    EXPECT_EQ(w.unit, -1);
}

TEST(Wire, TcpRules) {
    EXPECT_EQ(snippet_error(device("d", "wire = { tcp = \"10.0.0.7:0\" }\n")),
              "site.toml:5:16: device[0].wire.tcp: expected \"HOST:PORT\" with a port from 1 to 65535, got "
              "\"10.0.0.7:0\"");
    EXPECT_EQ(
        snippet_error(device("d", "wire = { tcp = \"10.0.0.7\" }\n")),
        "site.toml:5:16: device[0].wire.tcp: expected \"HOST:PORT\" (an IPv6 address in brackets: \"[::1]:9180\"), "
        "got \"10.0.0.7\"");
    EXPECT_EQ(snippet_error(device("d", "wire = { tcp = \"h:502\", unit = 256 }\n")),
              "site.toml:5:32: device[0].wire.unit: expected an integer from 0 to 255, got 256");
    EXPECT_EQ(snippet_error(device("d", "wire = { tcp = 502 }\n")),
              "site.toml:5:16: device[0].wire.tcp: expected a string, got an integer");
}

TEST(Wire, Udp) {
    const auto w = snippet_loads(device("d", "wire = { udp = \"sensor.local:5000\" }\n")).devices.at(0).wire;
    EXPECT_EQ(w.type, wire_config::kind::udp);
    EXPECT_EQ(w.host, "sensor.local");
    EXPECT_EQ(w.port, 5000);
    EXPECT_EQ(snippet_error(device("d", "wire = { udp = \"h:5000\", unit = 1 }\n")),
              "site.toml:5:33: device[0].wire.unit: not used by a udp wire (it takes: udp)");
}

TEST(Wire, ListenerByPeerOrIdentity) {
    const auto c = snippet_loads(uitd + device("p1", "wire = { listener = \"uitd\", peer = \"10.0.0.5\" }\n") +
                                 device("p2", "wire = { listener = \"uitd\", peer = \"0:0::1\" }\n") +
                                 device("p3", "wire = { listener = \"uitd\", identity = \"UITD-0042\" }\n"));
    const auto &w1 = c.devices.at(0).wire;
    EXPECT_EQ(w1.type, wire_config::kind::listener);
    EXPECT_EQ(w1.listener, "uitd");
    EXPECT_EQ(w1.peer, "10.0.0.5");
    EXPECT_EQ(w1.identity, "");
    EXPECT_EQ(c.devices.at(1).wire.peer, "::1");  // canonical form
    EXPECT_EQ(c.devices.at(2).wire.identity, "UITD-0042");
    EXPECT_EQ(c.devices.at(2).wire.peer, "");
}

TEST(Wire, ListenerRules) {
    // uitd lines 1-3, the device from line 4, its wire on line 8.
    EXPECT_EQ(snippet_error(uitd + device("p", "wire = { listener = \"uitd2\", peer = \"10.0.0.5\" }\n")),
              "site.toml:8:21: device[0].wire.listener: listener 'uitd2' is not defined (did you mean 'uitd'?)");
    EXPECT_EQ(snippet_error(uitd + device("p", "wire = { listener = \"uitd\", peer = \"panel-1\" }\n")),
              "site.toml:8:36: device[0].wire.peer: expected an IP address, got \"panel-1\"");
    EXPECT_EQ(
        snippet_error(uitd + device("p", "wire = { listener = \"uitd\", peer = \"10.0.0.5\", identity = \"X\" }\n")),
        "site.toml:8:8: device[0].wire: expected peer (an IP address) or identity (a string), got both");
    EXPECT_EQ(snippet_error(uitd + device("p", "wire = { listener = \"uitd\" }\n")),
              "site.toml:8:8: device[0].wire: expected peer (an IP address) or identity (a string), got neither");
    EXPECT_EQ(snippet_error(uitd + device("p", "wire = { listener = \"uitd\", identity = \"\" }\n")),
              "site.toml:8:40: device[0].wire.identity: expected a non-empty string, got \"\"");
    EXPECT_EQ(snippet_error(uitd + device("p", "wire = { listener = \"uitd\", peer = \"10.0.0.5\", unit = 1 }\n")),
              "site.toml:8:55: device[0].wire.unit: not used by a listener wire (it takes: listener, peer, identity, "
              "allow_peers)");
}

TEST(Wire, ListenerAllowPeers) {
    const auto c = snippet_loads(
        uitd + device("p", "wire = { listener = \"uitd\", identity = \"U1\", allow_peers = [\"10.0.0.7\", "
                           "\"10.0.1.0/24\", \"0:0::1/128\"] }\n"));
    EXPECT_EQ(c.devices.at(0).wire.allow_peers, (std::vector<std::string>{"10.0.0.7", "10.0.1.0/24", "::1/128"}));
    EXPECT_EQ(snippet_error(uitd + device("p", "wire = { listener = \"uitd\", identity = \"U1\", allow_peers = "
                                               "[\"10.0.1.0/33\"] }\n")),
              "site.toml:8:61: device[0].wire.allow_peers[0]: expected an IP address or a network (ADDRESS/PREFIX), "
              "got \"10.0.1.0/33\"");
    EXPECT_EQ(snippet_error(uitd + device("p", "wire = { listener = \"uitd\", identity = \"U1\", allow_peers = "
                                               "[\"gateway.local\"] }\n")),
              "site.toml:8:61: device[0].wire.allow_peers[0]: expected an IP address or a network (ADDRESS/PREFIX), "
              "got \"gateway.local\"");
    EXPECT_EQ(snippet_error(uitd + device("p", "wire = { listener = \"uitd\", peer = \"10.0.0.5\", allow_peers = "
                                               "[\"10.0.0.5\"] }\n")),
              "site.toml:8:62: device[0].wire.allow_peers: not used with peer (the peer is the only address a "
              "peer-bound device takes)");
}

TEST(Wire, ListenerBindingsAreUnique) {
    EXPECT_EQ(snippet_error(uitd + device("p1", "wire = { listener = \"uitd\", peer = \"10.0.0.5\" }\n") +
                            device("p2", "wire = { listener = \"uitd\", peer = \"10.0.0.5\" }\n")),
              "site.toml:13:36: device[1].wire.peer: peer 10.0.0.5 on listener 'uitd' is already device 'p1' (first at "
              "site.toml:4:1)");
    EXPECT_EQ(snippet_error(uitd + device("p1", "wire = { listener = \"uitd\", identity = \"U1\" }\n") +
                            device("p2", "wire = { listener = \"uitd\", identity = \"U1\" }\n")),
              "site.toml:13:40: device[1].wire.identity: identity \"U1\" on listener 'uitd' is already device 'p1' "
              "(first at site.toml:4:1)");
    // The same peer on two listeners is two different bindings.
    snippet_loads(uitd + "[[listener]]\nid = \"uitd-b\"\nlisten = \"0.0.0.0:9001\"\n" +
                  device("p1", "wire = { listener = \"uitd\", peer = \"10.0.0.5\" }\n") +
                  device("p2", "wire = { listener = \"uitd-b\", peer = \"10.0.0.5\" }\n"));
}

TEST(Wire, ExactlyOneForm) {
    EXPECT_EQ(snippet_error(rs485 + device("d", "wire = { bus = \"rs485-1\", tcp = \"h:502\", unit = 1 }\n")),
              "site.toml:9:8: device[0].wire: expected exactly one of bus, tcp, udp, listener, got bus and tcp");
    EXPECT_EQ(snippet_error(device("d", "wire = { tcp = \"h:1\", udp = \"h:2\", bus = \"b\" }\n")),
              "site.toml:5:8: device[0].wire: expected exactly one of bus, tcp, udp, listener, got bus, tcp and udp");
    EXPECT_EQ(snippet_error(device("d", "wire = { unit = 1 }\n")),
              "site.toml:5:8: device[0].wire: expected one of the keys bus, tcp, udp, listener (or {} for no wire)");
    EXPECT_EQ(snippet_error(device("d", "wire = { tcp = \"h:1\", port = 2 }\n")),
              "site.toml:5:23: device[0].wire.port: unknown key (expected one of: bus, tcp, udp, listener, unit, peer, "
              "identity, allow_peers)");
    EXPECT_EQ(snippet_error(device("d", "wire = \"rs485-1\"\n")),
              "site.toml:5:8: device[0].wire: expected a table ({ bus = ... }, { tcp = ... }, { udp = ... } or "
              "{ listener = ... }), got a string");
}

TEST(Wire, AsASubTable) {
    const auto c = snippet_loads(device("d", "[device.wire]\ntcp = \"h:502\"\n"));
    EXPECT_EQ(c.devices.at(0).wire.type, wire_config::kind::tcp_client);
}
