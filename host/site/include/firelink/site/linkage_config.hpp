// [[linkage]] rules as the site file states them (docs/linkage.md): what a rule watches, what it moves, and how it
// ends. host/linkage runs them; `firelink-host check-config` checks their commands against the drivers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <firelink/site/source_position.hpp>

namespace firelink::site {

struct device_config;

// Devices picked by where they are and what they are: every key given must match (an empty one matches any).
struct device_selector {
    std::string device;        // one device id (triggers only; an action names one with linkage_action::device)
    std::string device_class;  // "gas_shutoff_valve", "vendor:com.acme.x"
    std::string site, building, floor, sector;
    std::vector<std::string> tags;  // every one of these on the device

    bool matches(const device_config &d) const;
    // "class gas_shutoff_valve, building A" for people; "any device" when nothing is given.
    std::string describe() const;
    bool operator==(const device_selector &) const = default;
};

// One signal a trigger takes: a device's condition of this kind (and code, when given).
struct trigger_condition : device_selector {
    std::string kind = "alarm";  // alarm, pre_alarm or fault
    std::string code;            // empty: any code of that kind
    bool operator==(const trigger_condition &) const = default;
};

struct linkage_trigger {
    bool all = false;  // false: any one matching signal fires; true: `count` independent sources within the window
    std::vector<trigger_condition> conditions;
    unsigned count = 2;
    bool independent_conditions = false;  // independence by device (false) or by each condition of a device (true)
    std::chrono::milliseconds window{120'000};
    std::chrono::milliseconds min_duration{0};
    bool operator==(const linkage_trigger &) const = default;
};

struct linkage_action {
    std::string device;       // one device, or
    device_selector select;   // a group (when device is empty)
    std::string command;
    std::vector<std::uint8_t> args;  // a msgpack map ({} when none)
    std::chrono::milliseconds delay{0};
    std::chrono::milliseconds timeout{10'000};
    std::string path;  // "linkage[0].action[1]", for messages
    source_position where;
    // What it does, not where the file says it (a line added above it changes nothing).
    bool operator==(const linkage_action &o) const {
        return device == o.device && select == o.select && command == o.command && args == o.args &&
               delay == o.delay && timeout == o.timeout;
    }
};

struct linkage_rule {
    std::string id, name;
    std::string mode = "auto";  // auto, manual or inhibit
    bool latching = true;       // ends = "reset" (true) or "restore" (false)
    bool parallel = false;      // order = "parallel" (true) or "sequence" (false)
    std::chrono::milliseconds confirm_within{120'000};
    linkage_trigger trigger;
    std::vector<linkage_action> actions;
    std::string path;  // "linkage[0]"
    source_position where;
    bool operator==(const linkage_rule &o) const {
        return id == o.id && name == o.name && mode == o.mode && latching == o.latching && parallel == o.parallel &&
               confirm_within == o.confirm_within && trigger == o.trigger && actions == o.actions;
    }
};

}  // namespace firelink::site
