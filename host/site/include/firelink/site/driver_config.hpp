// A device's [config] table, handed to its driver as one msgpack map (the driver's own schema, not checked here).
// One conversion for every config a driver gets from TOML: a site's [device.config], a linkage action's args, and a
// device script's [device] config in the conformance suite.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <vector>

namespace firelink::site {

// Tables become maps (keys in the table's order, which toml++ keeps sorted), arrays become arrays, strings, integers,
// floats and booleans keep their type, and dates, times and date-times become ISO-8601 strings as TOML writes them
// ("1979-05-27", "07:32:00", "1979-05-27T07:32:00Z").
std::vector<std::uint8_t> to_msgpack(const toml::table &table);

}  // namespace firelink::site
