#include "firelink/http_access/escapes.hpp"

#include <charconv>
#include <system_error>

namespace firelink::http_access {

namespace {

std::optional<std::string> decode(std::string_view in, bool plus_is_space) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '+' && plus_is_space) {
            out += ' ';
            continue;
        }
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        unsigned value = 0;
        if (in.size() - i < 3) return std::nullopt;
        auto [end, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
        if (ec != std::errc{} || end != in.data() + i + 3) return std::nullopt;
        out += static_cast<char>(value);
        i += 2;
    }
    return out;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in) { return decode(in, false); }
std::optional<std::string> form_decode(std::string_view in) { return decode(in, true); }

}  // namespace firelink::http_access
