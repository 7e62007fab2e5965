// An operator's command, as POSTed to /api/devices/{id}/commands, turned into the msgpack command a driver reads
// (docs/events.md, "Commands"):
//
//     {"name": "close_valve", "args": {"confirm_ms": 5000}}        (JSON, "id" optional)
//  -> {"id": "<id or generated_id>", "name": "close_valve", "args": {"confirm_ms": 5000}}   (msgpack map)
//
// JSON values map onto msgpack one to one: integers (signed or unsigned), floats, booleans, strings, arrays, objects
// and null. A missing "args" becomes an empty map.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <firelink/result.hpp>

namespace firelink::admin {

// The longest command id the host accepts (the event check takes a command_id of 1-64 bytes).
inline constexpr std::size_t max_command_id = 64;

// The msgpack command, or FL_INVALID_ARGUMENT with a one-line reason for a 400 answer: the body is not JSON, not an object, has an unknown
// key, has no string "name", has an "id" that is not a string of 1-64 bytes, has "args" that is not an object, or
// nests deeper than 32 levels. `generated_id` is used when the body has no "id".
firelink::result<std::vector<std::uint8_t>> command_from_json(const std::string &body,
                                                              const std::string &generated_id);

}  // namespace firelink::admin
