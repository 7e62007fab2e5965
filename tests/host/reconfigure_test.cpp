// A reload's plan (host/cli/reconfigure.hpp), without a process: which devices a new site file adds, changes, removes
// and keeps on their previous definition, and what then runs. The trial is a stand-in that refuses what a test names.
#include <set>
#include <variant>

#include <gtest/gtest.h>

#include "reconfigure.hpp"

namespace site = firelink::site;
using firelink::cli::plan_reload;

namespace {

site::site_config parse(const std::string &devices) {
    auto r = site::parse_site_config("[gateway]\nid = \"gw\"\n[plugins]\ndirs = [\"p\"]\n" + devices, "/site.toml");
    if (!r) {
        ADD_FAILURE() << (r.error().empty() ? "?" : r.error().front().str());
        return {};
    }
    return std::move(r).value();
}

std::string device(const std::string &id, const std::string &config, const std::string &wire = "") {
    return "[[device]]\nid = \"" + id + "\"\ndriver = \"gas\"\nclass = \"gas_shutoff_valve\"\n" +
           (wire.empty() ? "" : "wire = " + wire + "\n") + "config = { " + config + " }\n";
}

const std::string bus_9600 = "[[bus]]\nid = \"b1\"\nkind = \"rs485\"\npath = \"/dev/ttyS1\"\nbaud = 9600\n";
const std::string bus_19200 = "[[bus]]\nid = \"b1\"\nkind = \"rs485\"\npath = \"/dev/ttyS1\"\nbaud = 19200\n";

firelink::cli::running_devices running_of(const site::site_config &cfg) {
    firelink::cli::running_devices out;
    for (const auto &d : cfg.devices)
        if (d.enabled) out[d.id] = site::definition_of(cfg, d);
    return out;
}

const std::string refusal = "create: config key 'poll_ms': 5 is outside 10..3600000";

// Refuses any definition whose config holds poll_ms = 5, as the gas driver does; remembers whom it was asked about.
struct trial_recorder {
    std::vector<std::string> asked;
    firelink::cli::trial_fn fn() {
        return [this](const site::site_config &, const site::device_config &d) -> std::optional<site::config_error> {
            asked.push_back(d.id);
            const std::string poll_5 = {'\xa7', 'p', 'o', 'l', 'l', '_', 'm', 's', '\x05'};
            const std::string bytes(d.driver_config.begin(), d.driver_config.end());
            if (bytes.find(poll_5) == std::string::npos) return std::nullopt;
            return site::driver_config_error(d, "device '" + d.id + "': " + refusal);
        };
    }
};

}  // namespace

TEST(ReloadPlan, OnlyChangedRunningDevicesAreTriedAndARefusedOneKeepsItsDefinition) {
    const auto running = parse(device("a", "poll_ms = 50") + device("b", "poll_ms = 50") + device("c", "poll_ms = 50"));
    // a: refused change; b: accepted change; c: unchanged; d: new (even with a refused config: nothing to keep).
    const auto next = parse(device("a", "poll_ms = 5") + device("b", "poll_ms = 60") + device("c", "poll_ms = 50") +
                            device("d", "poll_ms = 5"));
    trial_recorder trial;
    auto plan = plan_reload(running, next, running_of(running), trial.fn());
    EXPECT_EQ(trial.asked, (std::vector<std::string>{"a", "b"}));
    ASSERT_EQ(plan.kept.size(), 1u);
    EXPECT_EQ(plan.kept[0].device_id, "a");
    EXPECT_EQ(plan.kept[0].refusal.str(), "/site.toml:9:22: device[0].config.poll_ms: device 'a': create: config key "
                                          "'poll_ms': 5 is outside 10..3600000");
    EXPECT_EQ(plan.changed, std::vector<std::string>{"b"});
    EXPECT_EQ(plan.added, std::vector<std::string>{"d"});
    EXPECT_TRUE(plan.removed.empty());
    // What runs: a on its previous definition, the others as the file says.
    EXPECT_EQ(site::definition_of(plan.effective, *plan.effective.find_device("a")), running_of(running).at("a"));
    EXPECT_EQ(plan.effective.find_device("b")->driver_config, next.find_device("b")->driver_config);
}

TEST(ReloadPlan, RemovedAndDisabledDevicesAreRemovedWithoutATrial) {
    const auto running = parse(device("a", "poll_ms = 50") + device("b", "poll_ms = 50"));
    const auto next = parse(device("b", "poll_ms = 5") + "enabled = false\n");
    trial_recorder trial;
    auto plan = plan_reload(running, next, running_of(running), trial.fn());
    EXPECT_TRUE(trial.asked.empty());
    EXPECT_EQ(plan.removed, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(plan.kept.empty());
}

TEST(ReloadPlan, ABusAKeptDeviceIsOnKeepsItsSettingsForEveryDeviceOnIt) {
    const auto running = parse(bus_9600 + device("a", "poll_ms = 50", "{ bus = \"b1\", unit = 1 }") +
                               device("b", "poll_ms = 50", "{ bus = \"b1\", unit = 2 }"));
    // The bus changes (both devices would be recreated on it), and a's own change is refused.
    const auto next = parse(bus_19200 + device("a", "poll_ms = 5", "{ bus = \"b1\", unit = 1 }") +
                            device("b", "poll_ms = 50", "{ bus = \"b1\", unit = 2 }"));
    trial_recorder trial;
    auto plan = plan_reload(running, next, running_of(running), trial.fn());
    ASSERT_EQ(plan.kept.size(), 1u);
    EXPECT_EQ(plan.kept[0].device_id, "a");
    EXPECT_EQ(plan.effective.find_bus("b1")->serial.baud, 9600u) << "one port, one definition: the one a runs on";
    EXPECT_TRUE(plan.changed.empty()) << "b is unchanged once its bus is";
    ASSERT_EQ(plan.notes.size(), 1u);
    EXPECT_EQ(plan.notes[0], "bus 'b1' keeps its previous settings: device 'a' on it runs on its previous definition");
    EXPECT_EQ(running_of(plan.effective), running_of(running));
}

TEST(ReloadPlan, AKeptDeviceKeepsTheLivenessBudgetItRunsWith) {
    const auto running = parse(device("a", "poll_ms = 50"));
    const auto next = parse("[liveness]\ngas_shutoff_valve = 5\n" + device("a", "poll_ms = 5"));
    trial_recorder trial;
    auto plan = plan_reload(running, next, running_of(running), trial.fn());
    ASSERT_EQ(plan.kept.size(), 1u);
    EXPECT_TRUE(plan.changed.empty());
    const auto &a = *plan.effective.find_device("a");
    EXPECT_EQ(plan.effective.heartbeat_of(a), running.heartbeat_of(*running.find_device("a")));
    // So the next reload of the same file sees it unchanged from what runs, and tries it again.
    trial_recorder again;
    auto second = plan_reload(plan.effective, next, running_of(plan.effective), again.fn());
    EXPECT_EQ(again.asked, std::vector<std::string>{"a"});
    EXPECT_EQ(second.kept.size(), 1u);
}

TEST(ReloadPlan, NothingRunningMeansEverythingIsAddedAndNothingTried) {
    const auto cfg = parse(device("a", "poll_ms = 5") + device("b", "poll_ms = 50"));
    auto plan = plan_reload(cfg, cfg, {}, {});
    EXPECT_EQ(plan.added, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(plan.kept.empty() && plan.changed.empty() && plan.removed.empty());
}

// A definition is every field a device is made from: changing any one of them recreates the device, and moving the
// device's table elsewhere in the file does not. Text fields are compared as values, not joined, so a building/floor
// pair that would read the same joined ("A|B" + "C" and "A" + "B|C") is a change.
TEST(ReloadPlan, EveryFieldOfTheDefinitionCountsAndItsPlaceInTheFileDoesNot) {
    const std::string listener = "[[listener]]\nid = \"l1\"\nlisten = \"127.0.0.1:9000\"\n";
    const std::string base_meta = "site = \"s\"\nbuilding = \"A|B\"\nfloor = \"C\"\nlocation = \"kitchen\"\n";
    auto file = [&](const std::string &top, const std::string &wire, const std::string &config,
                    const std::string &meta, const std::string &extra) {
        return top + "[[device]]\nid = \"a\"\ndriver = \"gas\"\nclass = \"gas_shutoff_valve\"\n" + extra +
               "wire = " + wire + "\nconfig = { " + config + " }\n[device.site]\n" + meta;
    };
    const std::string bus_wire = "{ bus = \"b1\", unit = 1 }";
    const auto running = parse(file(bus_9600, bus_wire, "poll_ms = 50", base_meta, ""));
    ASSERT_EQ(running.devices.size(), 1u);
    struct variant {
        const char *what;
        std::string text;
        bool changed;
    };
    const std::vector<variant> variants = {
        {"the same file", file(bus_9600, bus_wire, "poll_ms = 50", base_meta, ""), false},
        {"its table further down the file", "\n\n\n# moved\n" + file(bus_9600, bus_wire, "poll_ms = 50", base_meta, ""),
         false},
        {"its driver config", file(bus_9600, bus_wire, "poll_ms = 60", base_meta, ""), true},
        {"its unit", file(bus_9600, "{ bus = \"b1\", unit = 2 }", "poll_ms = 50", base_meta, ""), true},
        {"its bus's baud rate", file(bus_19200, bus_wire, "poll_ms = 50", base_meta, ""), true},
        {"its wire kind", file(listener, "{ listener = \"l1\", peer = \"10.0.0.5\" }", "poll_ms = 50", base_meta, ""),
         true},
        {"its plugin", file(bus_9600, bus_wire, "poll_ms = 50", base_meta, "plugin = \"org.other\"\n"), true},
        {"its liveness budget", file(bus_9600, bus_wire, "poll_ms = 50", base_meta, "heartbeat_s = 30\n"), true},
        {"building and floor that join alike",
         file(bus_9600, bus_wire, "poll_ms = 50", "site = \"s\"\nbuilding = \"A\"\nfloor = \"B|C\"\nlocation = \"kitchen\"\n", ""),
         true},
        {"its location", file(bus_9600, bus_wire, "poll_ms = 50",
                              "site = \"s\"\nbuilding = \"A|B\"\nfloor = \"C\"\nlocation = \"hall\"\n", ""),
         true},
    };
    for (const auto &v : variants) {
        const auto next = parse(v.text);
        if (next.devices.size() != 1u) {
            ADD_FAILURE() << v.what << ": the variant did not parse";
            continue;
        }
        trial_recorder trial;  // accepts every definition here: none holds poll_ms = 5
        auto plan = plan_reload(running, next, running_of(running), trial.fn());
        EXPECT_EQ(plan.changed.size(), v.changed ? 1u : 0u) << v.what;
    }
}
