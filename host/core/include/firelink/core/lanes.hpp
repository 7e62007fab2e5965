// The uplink's lanes, alarm > event > telemetry (docs/uplink-protocol.md, "Lanes"): the durable queue keeps them
// apart, and so do a runner's event rings on the way to it (host/isolation/event_ring.hpp). One mapping for both.
#pragma once

#include <string_view>

namespace firelink::core {

enum class lane : int { alarm = 0, event = 1, telemetry = 2 };
inline constexpr int lane_count = 3;

inline lane lane_of(std::string_view kind) {
    if (kind == "alarm" || kind == "pre_alarm") return lane::alarm;
    if (kind == "telemetry") return lane::telemetry;
    return lane::event;
}

inline const char *to_string(lane l) {
    switch (l) {
    case lane::alarm: return "alarm";
    case lane::event: return "event";
    case lane::telemetry: return "telemetry";
    }
    return "event";
}

}  // namespace firelink::core
