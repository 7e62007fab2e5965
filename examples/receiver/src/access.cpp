#include "access.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace firelink::receiver {

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
        grant g;
        if (role_word == "read") g.what = role::read;
        else if (role_word == "operator") g.what = role::operator_;
        else if (role_word == "gateway") g.what = role::gateway;
        else throw std::runtime_error(where + "unknown role '" + role_word + "' (read, operator or gateway)");
        // A read token sees every gateway's events (the query API is not partitioned), so it may not pretend
        // otherwise.
        if (g.what == role::read && gateway != "*")
            throw std::runtime_error(where + "a read token reads every gateway: write '*' for its gateway");
        g.gateway = gateway;
        const auto hash = list.tokens_.new_digest(secret, where);
        list.tokens_.add(std::move(g), hash);
    }
    if (list.tokens_.empty()) throw std::runtime_error("the token file '" + path + "' grants nothing");
    return list;
}

access_list access_list::insecure() {
    access_list list;
    list.open_ = true;
    return list;
}

std::optional<grant> access_list::authorize(std::string_view header) const {
    if (open_) return grant{role::anyone, "*"};
    return tokens_.authorize(header);
}

}  // namespace firelink::receiver
