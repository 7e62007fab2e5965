// A device's [config] table, handed to its driver as one msgpack map (the driver's own schema, not checked here).
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <vector>

namespace firelink::site::detail {

// Tables become maps (keys in the table's order, which toml++ keeps sorted), arrays become arrays, strings, integers,
// floats and booleans keep their type, and dates, times and date-times become ISO-8601 strings as TOML writes them
// ("1979-05-27", "07:32:00", "1979-05-27T07:32:00Z").
std::vector<std::uint8_t> to_msgpack(const toml::table &table);

}  // namespace firelink::site::detail
