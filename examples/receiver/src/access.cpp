#include "access.hpp"

#include <cctype>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace firelink::receiver {

namespace {

constexpr std::string_view hashed_prefix = "sha256:";

std::array<unsigned char, 32> sha256(std::string_view text) {
    std::array<unsigned char, 32> out{};
    unsigned int n = 0;
    if (EVP_Digest(text.data(), text.size(), out.data(), &n, EVP_sha256(), nullptr) != 1 || n != out.size())
        throw std::runtime_error("SHA-256 failed");
    return out;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<std::array<unsigned char, 32>> parse_hex_digest(std::string_view hex) {
    std::array<unsigned char, 32> out{};
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

}  // namespace

std::string_view role_name(role r) {
    switch (r) {
    case role::read: return "read";
    case role::operator_: return "operator";
    case role::gateway: return "gateway";
    case role::anyone: return "anyone (--insecure-loopback)";
    }
    return "?";
}

access_list access_list::load(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the token file '" + path + "'");
    access_list list;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const auto where = path + ":" + std::to_string(number) + ": ";
        if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        std::istringstream words(line);
        std::string role_word, gateway, secret, extra;
        if (!(words >> role_word)) continue;  // blank or a comment
        if (!(words >> gateway >> secret) || (words >> extra))
            throw std::runtime_error(where + "expected '<read|operator|gateway> <gateway-id|*> <token|sha256:HEX>'");
        entry e;
        if (role_word == "read") e.g.what = role::read;
        else if (role_word == "operator") e.g.what = role::operator_;
        else if (role_word == "gateway") e.g.what = role::gateway;
        else throw std::runtime_error(where + "unknown role '" + role_word + "' (read, operator or gateway)");
        // A read token sees every gateway's events (the query API is not partitioned), so it may not pretend
        // otherwise.
        if (e.g.what == role::read && gateway != "*")
            throw std::runtime_error(where + "a read token reads every gateway: write '*' for its gateway");
        e.g.gateway = gateway;
        if (secret.compare(0, hashed_prefix.size(), hashed_prefix) == 0) {
            const auto digest = parse_hex_digest(std::string_view(secret).substr(hashed_prefix.size()));
            if (!digest) throw std::runtime_error(where + "'sha256:' must be followed by 64 hex digits");
            e.hash = *digest;
        } else {
            // Kept only as its hash, like a hashed line: the process never holds a plain token past this point.
            e.hash = sha256(secret);
        }
        for (const auto &other : list.entries_)
            if (CRYPTO_memcmp(other.hash.data(), e.hash.data(), e.hash.size()) == 0)
                throw std::runtime_error(where + "the same token is listed twice: a token has one grant");
        list.entries_.push_back(std::move(e));
    }
    if (list.entries_.empty()) throw std::runtime_error("the token file '" + path + "' grants nothing");
    return list;
}

access_list access_list::insecure() {
    access_list list;
    list.open_ = true;
    return list;
}

std::optional<grant> access_list::find(std::string_view token) const {
    if (token.empty()) return std::nullopt;
    const auto hash = sha256(token);
    const entry *match = nullptr;
    for (const auto &e : entries_)
        if (CRYPTO_memcmp(e.hash.data(), hash.data(), hash.size()) == 0) match = &e;
    if (!match) return std::nullopt;
    return match->g;
}

std::optional<grant> access_list::authorize(std::string_view header) const {
    if (open_) return grant{role::anyone, "*"};
    constexpr std::string_view bearer = "Bearer ", basic = "Basic ";
    if (starts_with_nocase(header, bearer)) return find(header.substr(bearer.size()));
    if (starts_with_nocase(header, basic)) {
        const auto decoded = base64_decode(header.substr(basic.size()));
        if (!decoded) return std::nullopt;
        const auto colon = decoded->find(':');
        if (colon == std::string::npos) return std::nullopt;
        return find(std::string_view(*decoded).substr(colon + 1));
    }
    return std::nullopt;
}

}  // namespace firelink::receiver
