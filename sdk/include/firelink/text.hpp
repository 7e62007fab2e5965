// Text as the host and the tools write it: UTF-8 made valid, cut at a character boundary, quoted as a JSON string,
// and hex read and written one way. Header-only, the standard library only: the SDK depends on nothing.
//
//     std::string line = "{\"reason\":";
//     firelink::text::append_json_string(line, reason);      // "...", escaped; bad bytes become U+FFFD
//     auto shown = firelink::text::utf8_prefix(reason, 200);  // at most 200 bytes, never half a character
//     auto bytes = firelink::text::parse_hex("68 68 0x01 ff", why);
//
// Device text (a GBK name a driver did not decode, a garbled frame) and a platform's error body need not be UTF-8,
// and JSON must be: everything that writes JSON in firelink goes through append_json_string, or, for nlohmann
// values in the host, through a dump that replaces invalid bytes the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace firelink::text {

// The length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when p does not start one: a stray continuation
// byte, an overlong form, a surrogate, a code point past U+10FFFF, or a sequence cut by the end (`left` bytes).
inline std::size_t utf8_sequence(const unsigned char *p, std::size_t left) {
    if (left == 0) return 0;
    const unsigned char c = p[0];
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
    else return 0;
    if (left < n) return 0;
    for (std::size_t i = 1; i < n; ++i) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

// Appends the character of `s` at byte `i` (U+FFFD when no well-formed sequence starts there); the next index.
inline std::size_t append_character(std::string &out, std::string_view s, std::size_t i) {
    const std::size_t n = utf8_sequence(reinterpret_cast<const unsigned char *>(s.data()) + i, s.size() - i);
    if (n == 0) {
        out += "\xef\xbf\xbd";
        return i + 1;
    }
    out.append(s.data() + i, n);
    return i + n;
}

// `s` with each byte that does not start a well-formed sequence replaced by U+FFFD.
inline std::string valid_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) i = append_character(out, s, i);
    return out;
}

// The longest prefix of `s` of at most `max_bytes` that does not end inside a UTF-8 sequence: text cut at a byte
// limit (a reason kept in 200 bytes) stays whole characters. Bytes that are not UTF-8 count as one character each.
inline std::string_view utf8_prefix(std::string_view s, std::size_t max_bytes) {
    if (s.size() <= max_bytes) return s;
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    std::size_t end = 0;
    while (end < max_bytes) {
        std::size_t n = utf8_sequence(p + end, s.size() - end);
        if (n == 0) n = 1;
        if (end + n > max_bytes) break;
        end += n;
    }
    return s.substr(0, end);
}

// `s` as a JSON string, quoted and escaped, appended to `out`; bytes that are not UTF-8 become U+FFFD.
inline void append_json_string(std::string &out, std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    out += '"';
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = p[i];
        switch (c) {
        case '"': out += "\\\""; ++i; continue;
        case '\\': out += "\\\\"; ++i; continue;
        case '\n': out += "\\n"; ++i; continue;
        case '\r': out += "\\r"; ++i; continue;
        case '\t': out += "\\t"; ++i; continue;
        default: break;
        }
        if (c < 0x20) {
            out += "\\u00";
            out += digits[c >> 4];
            out += digits[c & 15];
            ++i;
            continue;
        }
        i = append_character(out, s, i);
    }
    out += '"';
}

// A JSON value of a library like nlohmann::json (the host's, the tools') as text, with what is not UTF-8 replaced by
// U+FFFD the same way, never an exception: a view that shows a device's or a platform's text stays readable.
template <class Json>
std::string dump_json(const Json &j) {
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

inline std::string json_string(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

// Lowercase hex, two digits a byte, no separators.
inline std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (auto b : bytes) out += digits[b >> 4], out += digits[b & 15];
    return out;
}

// Hex text as bytes: pairs of digits (either case), optionally with "0x" before a byte and with spaces, tabs,
// newlines, ':', '-' or ',' between bytes (a separator inside a pair is refused: "6 8" is not 0x68). Nothing, and
// `why`, on anything else.
inline std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view text, std::string &why) {
    auto nibble = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    auto separator = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':' || c == '-' || c == ','; };
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i < text.size();) {
        if (separator(text[i])) {
            ++i;
            continue;
        }
        if (text[i] == '0' && i + 1 < text.size() && (text[i + 1] == 'x' || text[i + 1] == 'X')) i += 2;
        if (i + 1 >= text.size() || nibble(text[i]) < 0 || nibble(text[i + 1]) < 0) {
            const std::size_t at = i < text.size() && nibble(text[i]) >= 0 ? i + 1 : i;
            why = at < text.size() ? "not hex: '" + std::string(1, text[at]) + "' at offset " + std::to_string(at)
                                   : "an odd number of hex digits: the last byte has one";
            return std::nullopt;
        }
        out.push_back(static_cast<std::uint8_t>(nibble(text[i]) * 16 + nibble(text[i + 1])));
        i += 2;
    }
    return out;
}

}  // namespace firelink::text
