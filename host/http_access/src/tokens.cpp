#include "firelink/http_access/tokens.hpp"

#include <cctype>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace firelink::http_access {

namespace {

constexpr std::string_view hashed_prefix = "sha256:";

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<token_digest> parse_hex_digest(std::string_view hex) {
    token_digest out{};
    if (hex.size() != 2 * out.size()) return std::nullopt;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
    static constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while (!in.empty() && in.back() == '=') in.remove_suffix(1);
    std::string out;
    unsigned bits = 0, value = 0;
    for (const char c : in) {
        const auto pos = alphabet.find(c);
        if (pos == std::string_view::npos) return std::nullopt;
        value = (value << 6) | static_cast<unsigned>(pos);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((value >> bits) & 0xff);
        }
    }
    return out;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i)  // the scheme is case-insensitive (RFC 9110)
        if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i])))
            return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

token_digest sha256(std::string_view text) {
    token_digest out{};
    unsigned int n = 0;
    if (EVP_Digest(text.data(), text.size(), out.data(), &n, EVP_sha256(), nullptr) != 1 || n != out.size())
        throw std::runtime_error("SHA-256 failed");
    return out;
}

bool same_digest(const token_digest &a, const token_digest &b) noexcept {
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

token_digest secret_digest(std::string_view secret, const std::string &where) {
    if (secret.substr(0, hashed_prefix.size()) != hashed_prefix) return sha256(secret);
    const auto digest = parse_hex_digest(secret.substr(hashed_prefix.size()));
    if (!digest) throw std::runtime_error(where + "'sha256:' must be followed by 64 hex digits (sha256sum's output)");
    return *digest;
}

std::optional<std::string> presented_token(std::string_view header) {
    constexpr std::string_view bearer = "Bearer ", basic = "Basic ";
    header = trim(header);
    if (starts_with_nocase(header, bearer)) return std::string(trim(header.substr(bearer.size())));
    if (starts_with_nocase(header, basic)) {
        const auto decoded = base64_decode(trim(header.substr(basic.size())));
        if (!decoded) return std::nullopt;
        const auto colon = decoded->find(':');
        if (colon == std::string::npos) return std::nullopt;
        return decoded->substr(colon + 1);
    }
    return std::nullopt;
}

}  // namespace firelink::http_access
