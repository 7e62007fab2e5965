// The example sites in examples/sites/ load without error, and heartbeat_of() picks the right budget.
#include "site_test_support.hpp"

#include <filesystem>
#include <map>
#include <set>

using namespace site_test;
using firelink::site::device_config;
using firelink::site::site_config;

namespace {

const std::filesystem::path sites_dir = FIRELINK_EXAMPLE_SITES_DIR;

site_config load_example(const std::string &name) {
    const auto r = firelink::site::load_site_config(sites_dir / name);
    if (!r) {
        std::string all;
        for (const auto &e : r.error()) all += e.str() + "\n";
        ADD_FAILURE() << name << " has errors:\n" << all;
        return {};
    }
    return r.value();
}

}  // namespace

TEST(Examples, HelloLoads) {
    const auto c = load_example("hello.toml");
    EXPECT_THAT(c.plugin_dirs, ElementsAre((sites_dir / "../../build/plugins").lexically_normal()));
    ASSERT_EQ(c.devices.size(), 2u);
    for (const auto &d : c.devices) {
        EXPECT_EQ(d.driver, "hello");
        EXPECT_EQ(d.device_class, "vendor:org.firelink.examples.hello");
    }
    EXPECT_EQ(c.devices[0].plugin, "org.firelink.examples.hello-c");
    EXPECT_EQ(c.devices[1].plugin, "org.firelink.examples.hello-cpp");
}

TEST(Examples, ReferenceLoadsAndUsesEveryWireForm) {
    const auto c = load_example("reference.toml");
    EXPECT_TRUE(c.uplink.configured);
    EXPECT_FALSE(c.buses.empty());
    EXPECT_FALSE(c.listeners.empty());
    std::set<firelink::site::wire_config::kind> kinds;
    std::set<std::string> classes;
    for (const auto &d : c.devices) {
        kinds.insert(d.wire.type);
        classes.insert(d.device_class.rfind("vendor:", 0) == 0 ? "vendor" : d.device_class);
    }
    using k = firelink::site::wire_config::kind;
    EXPECT_EQ(kinds, (std::set<k>{k::none, k::bus, k::tcp_client, k::listener, k::udp}));
    EXPECT_EQ(classes, (std::set<std::string>{"arc_fault_breaker", "gas_shutoff_valve", "pyrolysis_detector",
                                              "fire_panel", "vendor"}));
}

// ---- heartbeat_of: the device's own, else its class default, else the vendor default -------------------------

TEST(Heartbeat, DeviceThenClassThenVendor) {
    const auto c = snippet_loads(R"(
[liveness]
fire_panel = 300
vendor = 90

[[device]]
id = "panel-default"
driver = "panel"
class = "fire_panel"

[[device]]
id = "panel-own"
driver = "panel"
class = "fire_panel"
heartbeat_s = 30

[[device]]
id = "breaker"
driver = "breaker"
class = "arc_fault_breaker"

[[device]]
id = "sprinkler"
driver = "sprinkler"
class = "vendor:com.acme.sprinkler"

[[device]]
id = "quiet"
driver = "sprinkler"
class = "vendor:com.acme.sprinkler"
heartbeat_s = 0
)");
    EXPECT_EQ(c.heartbeat_of(*c.find_device("panel-default")), 300s);
    EXPECT_EQ(c.heartbeat_of(*c.find_device("panel-own")), 30s);
    EXPECT_EQ(c.heartbeat_of(*c.find_device("breaker")), 60s);
    EXPECT_EQ(c.heartbeat_of(*c.find_device("sprinkler")), 90s);
    EXPECT_EQ(c.heartbeat_of(*c.find_device("quiet")), 0s);  // liveness off
}

TEST(Heartbeat, DefaultsWithoutLivenessTable) {
    const auto c = snippet_loads("");
    device_config d;
    for (const auto &[cls, budget] : std::map<std::string, std::chrono::milliseconds>{{"arc_fault_breaker", 60s},
                                                                                      {"gas_shutoff_valve", 60s},
                                                                                      {"pyrolysis_detector", 60s},
                                                                                      {"fire_panel", 180s},
                                                                                      {"vendor:com.acme.x", 120s}}) {
        d.device_class = cls;
        EXPECT_EQ(c.heartbeat_of(d), budget) << cls;
        // A site_config not made by the loader (empty liveness map) gives the same defaults.
        EXPECT_EQ(site_config{}.heartbeat_of(d), budget) << cls;
    }
}
