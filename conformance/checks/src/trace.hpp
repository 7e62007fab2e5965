// Internal: the trace of wire bytes a scenario can be replayed from (docs/certifiers-guide.md, "Traces").
//
//   # firelink-conform trace 1
//   # class gas_shutoff_valve           the device class it was recorded from
//   # scenario alarm                    the scenario (the last part of the check id) it replays
//   # framing modbus-tcp                modbus-tcp: a reply's first two bytes echo its request's (transaction id)
//                                       raw: requests and replies are matched byte for byte
//   0 out 000100000006010300000004      <ms since the start> <out: host to device | in: device to host> <hex>
//   12 in 00010000000b010308000000000000000000
//   # action gas 30                     a scenario step begins: the lines that follow answer it
//
// Every `out` line is one request (a modbus-tcp line holding several frames is split by their MBAP lengths); the
// `in` lines up to the next `out` are its reply (none: the device did not answer). Other `#` lines are comments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace firelink::conform {

struct trace {
    struct turn {
        std::vector<std::uint8_t> request, reply;
    };
    struct section {
        std::string action;  // "" for the part before the first action
        std::vector<turn> turns;
    };
    std::string device_class, scenario, framing = "modbus-tcp";
    std::vector<section> sections;

    // Parses a trace; false with `why` ("line 12: ...") when it is not one.
    static bool parse(const std::string &text, trace &out, std::string &why);
    // The key a request is looked up by: the modbus-tcp transaction id does not count.
    std::vector<std::uint8_t> key(const std::vector<std::uint8_t> &request) const;
    // Splits bytes from the driver into requests (modbus-tcp: by MBAP length; raw: as they came). Consumes what it
    // returns from `buf`.
    std::vector<std::vector<std::uint8_t>> split(std::vector<std::uint8_t> &buf) const;
};

std::string to_hex(const std::uint8_t *data, std::size_t size);

}  // namespace firelink::conform
