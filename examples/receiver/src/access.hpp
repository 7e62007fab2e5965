// Who may do what on the receiver: the token file (--token-file), one grant per token. Every route asks it from the
// request's headers before the body is read (server.cpp), so a stranger never makes it buffer or parse anything.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <firelink/http_access/tokens.hpp>

namespace firelink::receiver {

enum class role {
    read,      // GET /, /api/...
    operator_,  // read, and POST /api/commands (and /test/faults)
    gateway,   // POST /v1/events, GET /v1/commands: as its own gateway only
    anyone,    // --insecure-loopback: every role, every gateway
};

std::string_view role_name(role r);

struct grant {
    role what = role::read;
    std::string gateway;  // "*": any gateway; else the only gateway this token may write as or command

    bool covers(std::string_view id) const { return gateway == "*" || gateway == id; }
    // An operator may read; a gateway token does only a gateway's two routes, so a leaked gateway token cannot
    // command valves or read other gateways' events.
    bool allows(role needed) const {
        return what == role::anyone || what == needed || (needed == role::read && what == role::operator_);
    }
};

class access_list {
public:
    // The file's format is in examples/receiver/README.md ("Tokens"). Throws std::runtime_error naming FILE:LINE.
    static access_list load(const std::string &path);
    // --insecure-loopback: every request is an operator and every gateway (a demo or a test on loopback only).
    static access_list insecure();
    // No --token-file: nothing is granted (every request is 401, with how to configure).
    access_list() = default;

    bool open() const { return open_; }
    bool empty() const { return tokens_.empty(); }
    std::size_t size() const { return tokens_.size(); }

    // The grant of a presented token, or nullopt. Compares the token's SHA-256 with every entry in constant time
    // (no early exit), so neither the answer's timing nor the file's order tells how close a guess was.
    std::optional<grant> find(std::string_view token) const { return tokens_.find(token); }
    // What an `Authorization` header value grants: `Bearer TOKEN`, or `Basic base64(ANY:TOKEN)` (so a browser's own
    // login prompt opens the page, whose scripts then send the same header).
    std::optional<grant> authorize(std::string_view header) const;

private:
    http_access::token_table<grant> tokens_;
    bool open_ = false;
};

}  // namespace firelink::receiver
