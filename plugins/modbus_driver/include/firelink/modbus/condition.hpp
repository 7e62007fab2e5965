// One alarm, pre-alarm or fault condition of a device, with debouncing and hysteresis, so that a value wobbling at
// a threshold raises it once and restores it once.
//
//   - A condition is raised after `debounce` consecutive samples that meet its raise test, and ended after
//     `debounce` consecutive samples that meet its clear test. A sample that meets neither (a value inside the
//     hysteresis band) resets both counts: the condition keeps its state.
//   - For a threshold, the raise test is `value >= on` and the clear test `value < on - hysteresis` (for a low
//     threshold, `value <= on` and `value > on + hysteresis`).
//   - Each raise gets a new event_id (`<base>-<n>`); its restore ends exactly that id.
//   - A condition still active when the device starts again is reported again, once, with the same event_id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <firelink/payload.hpp>

namespace firelink::modbus_driver {

class condition {
public:
    enum class change { none, raised, cleared };

    condition(event_kind kind, std::string code, std::string id_base, unsigned debounce = 1)
        : kind_(kind), code_(std::move(code)), id_base_(std::move(id_base)), debounce_(debounce ? debounce : 1) {}

    // One sample: `raise` says the raise test holds, `clear` that the clear test holds (never both).
    change update(bool raise, bool clear) {
        if (!active_) {
            clear_count_ = 0;
            raise_count_ = raise ? raise_count_ + 1 : 0;
            if (raise_count_ >= debounce_) {
                active_ = true;
                raise_count_ = 0;
                event_id_ = id_base_ + "-" + std::to_string(++raised_);
                return change::raised;
            }
        } else {
            raise_count_ = 0;
            clear_count_ = clear ? clear_count_ + 1 : 0;
            if (clear_count_ >= debounce_) {
                active_ = false;
                clear_count_ = 0;
                return change::cleared;
            }
        }
        return change::none;
    }

    // A high threshold with hysteresis below it.
    change above(double value, double on, double hysteresis) { return update(value >= on, value < on - hysteresis); }
    // A low threshold with hysteresis above it.
    change below(double value, double on, double hysteresis) { return update(value <= on, value > on + hysteresis); }
    // A flag (a status bit): raise while set, clear while not set.
    change flag(bool set) { return update(set, !set); }

    // Ends the condition now (a confirmed reset of a latching alarm); returns whether it was active.
    bool force_clear() {
        const bool was = active_;
        active_ = false;
        raise_count_ = clear_count_ = 0;
        return was;
    }

    bool active() const noexcept { return active_; }
    // Whether this active condition has not been reported since the device's `start`-th start (FL-PLUGIN-29: after
    // a stop and start, every condition still active is reported again, with its event_id).
    bool needs_report(std::uint64_t start) const noexcept { return active_ && reported_in_ != start; }
    void reported(std::uint64_t start) const noexcept { reported_in_ = start; }
    const std::string &code() const noexcept { return code_; }
    const std::string &event_id() const noexcept { return event_id_; }

    // The event for a raise (kind, code, id) and for its restore (code, ends).
    event raise_event() const { return event{kind_, code_}.id(event_id_); }
    event restore_event() const { return event{event_kind::restore, code_}.ends(event_id_); }

private:
    event_kind kind_;
    std::string code_, id_base_, event_id_;
    unsigned debounce_;
    unsigned raise_count_ = 0, clear_count_ = 0;
    std::uint64_t raised_ = 0;
    mutable std::uint64_t reported_in_ = 0;
    bool active_ = false;
};

}  // namespace firelink::modbus_driver
