// Bearer tokens as the admin endpoint (host/admin) and the reference receiver (examples/receiver) keep them: each
// token file line's secret is held only as its SHA-256, and a presented token is compared with every entry in
// constant time. What a token grants (a role and a principal, a role and a gateway) is each server's own: the Grant.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace firelink::http_access {

using token_digest = std::array<unsigned char, 32>;

token_digest sha256(std::string_view text);
// Constant time (CRYPTO_memcmp): how many leading bytes match does not show in the time taken.
bool same_digest(const token_digest &a, const token_digest &b) noexcept;

// A token file's secret word: "sha256:HEX64" as written, or a plain token, hashed here so the process never holds it
// past reading the file. Throws std::runtime_error(where + why) for a "sha256:" not followed by 64 hex digits.
token_digest secret_digest(std::string_view secret, const std::string &where);

// The token an `Authorization` header value presents: `Bearer TOKEN`, or `Basic base64(ANY:TOKEN)` (what curl -u and
// a browser's login prompt send). The scheme is case-insensitive and blanks around the parts are ignored (RFC 9110).
// nullopt for another scheme or a malformed value.
std::optional<std::string> presented_token(std::string_view header);

// The grants of a token file, by the digest of their token.
template <typename Grant>
class token_table {
public:
    // The digest of a new line's secret (secret_digest). Throws std::runtime_error(where + why) for a malformed
    // secret or a token already listed: a token has one grant. Then add() the line's grant with it.
    token_digest new_digest(std::string_view secret, const std::string &where) const {
        const auto hash = secret_digest(secret, where);
        for (const auto &e : entries_)
            if (same_digest(e.hash, hash))
                throw std::runtime_error(where + "the same token is listed twice: a token has one grant");
        return hash;
    }
    void add(Grant grant, const token_digest &hash) { entries_.push_back(entry{std::move(grant), hash}); }

    // The grant of a presented token, or nullopt. Compares the token's SHA-256 with every entry (no early exit), so
    // neither the answer's timing nor the file's order tells how close a guess was.
    std::optional<Grant> find(std::string_view token) const {
        if (token.empty()) return std::nullopt;
        const auto hash = sha256(token);
        const entry *match = nullptr;
        for (const auto &e : entries_)
            if (same_digest(e.hash, hash)) match = &e;
        if (!match) return std::nullopt;
        return match->grant;
    }

    // What an `Authorization` header value grants (presented_token, then find).
    std::optional<Grant> authorize(std::string_view header) const {
        const auto token = presented_token(header);
        if (!token) return std::nullopt;
        return find(*token);
    }

    bool empty() const noexcept { return entries_.empty(); }
    std::size_t size() const noexcept { return entries_.size(); }

    // Whether a grant already listed satisfies pred (a server's own rule across lines, e.g. one grant per role).
    template <typename Pred>
    bool any_grant(const Pred &pred) const {
        return std::any_of(entries_.begin(), entries_.end(), [&](const entry &e) { return pred(e.grant); });
    }

private:
    struct entry {
        Grant grant;
        token_digest hash;
    };
    std::vector<entry> entries_;
};

}  // namespace firelink::http_access
