// The channel's messages, typed: one struct per message, one encoder and one decoder for each direction. Nothing
// else reads or writes a message's fields, so arity and types are checked in exactly one place.
//
// A decoder throws `malformed` (with the message type and what is wrong) for anything outside the rules: a wrong
// arity, a field of the wrong type or out of range, an unknown type. The host kills a runner that sends one and logs
// the reason; the runner exits on one from the host. Decoded strings and byte fields are views into the frame: they
// live as long as the msgpack object they came from.
//
// Flow control (docs/abi.md, "Drivers out of process", FL-HOST-30..32): nothing crosses in bulk without a bound.
//   - Up, events: not on this channel but in the runner's event rings (event_ring.hpp), one per lane; a full ring is
//     FL_BUSY in the runner, and `room` tells a runner that found one full that the host has taken from it. So the
//     host never has to stop reading the channel, and an alarm is read as soon as it is written.
//   - Down, wire bytes: the host sends at most `data_credit` bytes of a device's wire data that the runner has not
//     consumed (`consumed` gives them back); beyond, the host pauses that device's wire (the device's own flow
//     control holds the rest).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <msgpack.hpp>

#include <firelink/core/lanes.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/firelink.h>

#include "firelink/isolation/channel.hpp"

namespace firelink::isolation {

struct malformed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The uplink's lanes (core/lanes.hpp), which the event rings keep apart too.
using core::lane;
using core::lane_count;
using core::lane_of;
using core::to_string;

// ---- runner -> host -----------------------------------------------------------------------------------------------
struct hello_msg {
    core::plugin_info info;
    bool can_identify = false;
};
struct refused_msg {
    std::string_view reason, detail;
};
struct reply_msg {
    std::uint64_t call = 0;
    fl_status status = FL_OK;
    std::string_view text;
};
struct log_msg {
    std::uint64_t device = 0;  // 0: the plugin
    std::int32_t level = 0;
    std::string_view text;
};
struct wire_msg {
    std::uint64_t device = 0;
    wire_op op = wire_op::open;
    std::string_view bytes;
    std::uint32_t timeout_ms = 0;
};
struct pong_msg {
    std::uint64_t n = 0;
};
struct slow_msg {
    std::uint64_t device = 0;
    std::string_view what;
    std::int64_t ms = 0;
};
struct consumed_msg {  // the driver has been given this many more of the device's wire bytes
    std::uint64_t device = 0;
    std::uint64_t bytes = 0;
};
using runner_message =
    std::variant<hello_msg, refused_msg, reply_msg, log_msg, wire_msg, pong_msg, slow_msg, consumed_msg>;

// ---- host -> runner -----------------------------------------------------------------------------------------------
struct condition_msg {  // an open condition of the device (firelink.conditions/1)
    std::string_view event_id, kind, code, event;
    std::int64_t raised_wall_ms = 0;
};
struct create_msg {
    std::uint64_t call = 0, device = 0;
    std::string_view driver_id, device_id, config;
    std::int32_t wire_kind = 0, unit = -1;
    std::vector<condition_msg> conditions;
};
struct lifecycle_msg {  // start, stop, destroy
    msg type = msg::start;
    std::uint64_t call = 0, device = 0;
};
struct command_msg {
    std::uint64_t call = 0, device = 0;
    std::string_view command;
};
struct identify_msg {
    std::uint64_t call = 0;
    std::string_view driver_id, bytes;
};
struct data_msg {
    std::uint64_t device = 0;
    std::string_view bytes;
};
struct state_msg {
    std::uint64_t device = 0;
    std::int32_t state = 0;
    fl_status reason = FL_OK;
};
struct ping_msg {
    std::uint64_t n = 0;
};
struct admit_msg {
    std::vector<std::string_view> busy_kinds;
};
struct room_msg {  // the host has taken events from a ring the runner found full
    lane l = lane::event;
};
struct committed_msg {  // events 1..through of the device's runner-side instance are committed
    std::uint64_t device = 0, through = 0;
};
using host_message = std::variant<create_msg, lifecycle_msg, command_msg, identify_msg, data_msg, state_msg, ping_msg,
                                  admit_msg, room_msg, committed_msg>;

// Decoders: throw malformed.
runner_message decode_runner_message(const msgpack::object &m);
host_message decode_host_message(const msgpack::object &m);

// Encoders: each fills a fresh frame (call finish() or pass it to a frame_writer).
void encode(frame &f, const hello_msg &m);
void encode(frame &f, const refused_msg &m);
void encode(frame &f, const reply_msg &m);
void encode(frame &f, const log_msg &m);
void encode(frame &f, const wire_msg &m);
void encode(frame &f, const pong_msg &m);
void encode(frame &f, const slow_msg &m);
void encode(frame &f, const consumed_msg &m);
void encode(frame &f, const create_msg &m);
void encode(frame &f, const lifecycle_msg &m);
void encode(frame &f, const command_msg &m);
void encode(frame &f, const identify_msg &m);
void encode(frame &f, const data_msg &m);
void encode(frame &f, const state_msg &m);
void encode(frame &f, const ping_msg &m);
void encode(frame &f, const admit_msg &m);
void encode(frame &f, const room_msg &m);
void encode(frame &f, const committed_msg &m);

template <class M>
frame encoded(const M &m) {
    frame f;
    encode(f, m);
    return f;
}

// The frame sizes each side accepts: an event is at most 64 KiB (events.md), a hello carries the descriptor; down,
// a device's config or a command may be larger.
inline constexpr std::uint32_t max_runner_frame = 1u << 20;
inline constexpr std::uint32_t max_host_frame = 16u << 20;

}  // namespace firelink::isolation
