// Host-kept active conditions (firelink.conditions/1, docs/events.md "Host-kept conditions"): per device id, the
// alarms, pre-alarms and faults its driver raised with an event_id and no restore has ended yet.
//
// The runtime keeps one condition_list per device id, for the life of the runtime (not of a device instance), so a
// driver restarted in a new runner or recreated by a reload still finds what its predecessor raised. Each accepted
// driver event that changes the list carries a condition_change to the sinks; the durable queue commits the change
// in the same transaction as the event's record, so after a crash the stored list and the committed events agree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace firelink::core {

struct open_condition {
    std::string device_id;
    std::string event_id;
    std::string kind;  // alarm, pre_alarm or fault
    std::string code;
    std::vector<std::uint8_t> event;  // the raising event's msgpack bytes, as the driver emitted it
    std::int64_t raised_wall_ms = 0;  // when the host accepted it
};

// What one accepted event did to its device's open conditions.
struct condition_change {
    std::string device_id;
    std::optional<open_condition> opened;  // raised, replacing an open one with the same event_id
    std::vector<std::string> closed;       // no longer open: ended by a restore, or dropped at the bound
    // The open one it replaced had the same kind and code: the event is a re-report of a condition already raised
    // (FL-PLUGIN-29: a driver emits what is active on every start), not a new one. The platform must show it once
    // (docs/events.md "Re-reports"); a durable sink names the record that first raised it.
    bool rereport = false;
};

// Whether an event of this kind, from a driver, opens a condition when it carries an event_id.
inline bool is_condition_kind(std::string_view kind) {
    return kind == "alarm" || kind == "pre_alarm" || kind == "fault";
}

// One device's open conditions, oldest first, at most `max_open`. Thread-safe: the emitting thread changes it, the
// admin thread and the driver (from any thread) read it.
class condition_list {
public:
    // Beyond this many open conditions the oldest is dropped from the list (its events were delivered; only the
    // host's memory of it is gone) and `dropped` counts it. A device with hundreds of simultaneous alarms that all
    // stay open is a driver that never restores, and the list must not grow without end.
    static constexpr std::size_t max_open = 256;

    // Applies a driver event the host accepted. Returns the change to store, or nullopt when the list is unchanged
    // (a kind that opens nothing, no event_id, a restore of an id that is not open). A raise of an open id of the same
    // kind and code is a re-report (condition_change::rereport): it replaces the open one, and opens nothing more.
    std::optional<condition_change> apply(const std::string &device_id, std::string_view kind, std::string_view code,
                                          std::string_view event_id, std::string_view ends,
                                          const std::vector<std::uint8_t> &event, std::int64_t wall_ms);

    // Replaces the whole list (host start: the conditions the durable queue had stored for this device).
    void load(std::vector<open_condition> stored);

    std::vector<open_condition> snapshot() const;
    std::size_t size() const;
    std::uint64_t dropped() const;

private:
    mutable std::mutex mutex_;
    std::deque<open_condition> open_;  // oldest first
    std::uint64_t dropped_ = 0;
};

}  // namespace firelink::core
