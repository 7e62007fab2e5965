#include "address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace firelink::site::detail {

std::optional<std::string> canonical_ip(std::string_view text) {
    const std::string s(text);
    unsigned char bytes[16];
    char out[INET6_ADDRSTRLEN];
    if (inet_pton(AF_INET, s.c_str(), bytes) == 1) return std::string(inet_ntop(AF_INET, bytes, out, sizeof out));
    if (inet_pton(AF_INET6, s.c_str(), bytes) == 1) return std::string(inet_ntop(AF_INET6, bytes, out, sizeof out));
    return std::nullopt;
}

namespace {

bool is_host_name(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == '_';
    });
}

}  // namespace

std::optional<host_port> parse_host_port(std::string_view text, unsigned min_port, std::string &expected) {
    expected = "\"HOST:PORT\" (an IPv6 address in brackets: \"[::1]:9180\")";
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view host = text.substr(0, colon);
    const std::string_view port_text = text.substr(colon + 1);

    host_port out;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        if (host.find(':') == std::string_view::npos || !canonical_ip(host)) return std::nullopt;
    } else if (!is_host_name(host)) {
        return std::nullopt;
    }
    out.host = std::string(host);

    expected = "\"HOST:PORT\" with a port from " + std::to_string(min_port) + " to 65535";
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port < min_port ||
        port > 65535)
        return std::nullopt;
    out.port = static_cast<std::uint16_t>(port);
    return out;
}

}  // namespace firelink::site::detail
