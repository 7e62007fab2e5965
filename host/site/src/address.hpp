// Network addresses as a site file writes them: "HOST:PORT" and bare IP addresses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace firelink::site::detail {

struct host_port {
    std::string host;  // a name, an IPv4 address, or an IPv6 address (without its brackets)
    std::uint16_t port = 0;
};

// Parses "HOST:PORT" with a port from min_port to 65535. HOST is a host name or IPv4 address, or an IPv6 address in
// brackets ("[::1]:9180"). On failure returns nullopt and sets `expected` to what the value should have been.
std::optional<host_port> parse_host_port(std::string_view text, unsigned min_port, std::string &expected);

// The canonical text of an IPv4 or IPv6 address ("::0001" -> "::1"), or nullopt when `text` is not one.
std::optional<std::string> canonical_ip(std::string_view text);

}  // namespace firelink::site::detail
