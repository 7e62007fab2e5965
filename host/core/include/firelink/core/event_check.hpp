// The boundary check of an emitted event against the v1 event schema (docs/events.md), and a JSON rendering of
// msgpack payloads for logs and command-line tools. Shared by the host and the conformance suite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <firelink/result.hpp>

namespace firelink::core {

// The largest event the host accepts, in bytes.
inline constexpr std::size_t max_event_bytes = 64 * 1024;

// What the check learnt about a valid event.
struct event_summary {
    std::string kind;
    std::string code;
    std::string event_id;  // empty when absent
    std::string ends;      // empty when absent
};

// Returns the summary of a valid event, or FL_INVALID_ARGUMENT with the first reason it is invalid.
result<event_summary> check_event(const std::uint8_t *data, std::size_t size);

// Checks a valid event's code against its device class (docs/events.md, "Codes"): for a standard class, the codes
// of alarm, pre_alarm, fault, restore and status events must be the class's own, a code every class shares, or a
// vendor-namespaced code ("x.<vendor>.<name>"); telemetry, command_result, offline and gap codes are free. A vendor
// class ("vendor:...") may use any code. FL_INVALID_ARGUMENT with the reason when the code is not allowed.
result<> check_code_for_class(const event_summary &event, const std::string &device_class);

// Both checks, as every boundary that takes a device's events makes them: the event, then its code for the class.
result<event_summary> check_event(const std::uint8_t *data, std::size_t size, const std::string &device_class);

// Renders any msgpack bytes as one line of JSON (binary as base16 strings; invalid input as {"invalid_msgpack":…}).
std::string msgpack_to_json(const std::uint8_t *data, std::size_t size);

}  // namespace firelink::core
