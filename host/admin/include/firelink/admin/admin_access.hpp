// Who may do what on the admin endpoint: the token file ([admin] token_file), one grant per line. The server asks it
// from a request's header, before the body is read (admin_server.cpp), so a stranger never makes it buffer anything.
//
// The file (docs/deployment.md#admin-tokens), one grant per line, '#' starts a comment:
//
//     # <read|operate|admin> <principal-name> <token|sha256:HEX64>
//     read    prometheus    sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//     operate alice@site-3  5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//
// With TLS and [admin] client_ca, a client certificate may stand for a principal too, by its subject's common name:
//
//     cert operate alice@site-3  alice.site-3.example     # cert <role> <principal-name> <subject-CN>
//
// A principal name is an operator id that goes into the audit log: [A-Za-z0-9_.@-]{1,64}. A name may hold one grant
// per role at most, and a token or a CN one grant. A plain token is hashed (SHA-256) as the file is read and never kept.
// The file must not be readable or writable by group or others (as ssh refuses a private key that is).
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <firelink/http_access/tokens.hpp>

namespace firelink::admin {

// What a principal may do. Each role includes the ones before it.
enum class role { read = 1, operate = 2, admin = 3 };
const char *role_name(role r);  // "read", "operate", "admin"

inline bool role_covers(role held, role needed) { return static_cast<int>(held) >= static_cast<int>(needed); }

// [A-Za-z0-9_.@-]{1,64}
bool is_principal_name(std::string_view name);
inline constexpr std::string_view principal_name_rule = "1 to 64 of A-Z a-z 0-9 _ . @ -";

struct grant {
    std::string name;  // the principal
    admin::role role = role::read;
};

class access_list {
public:
    // Reads and checks the token file. Throws std::runtime_error naming FILE:LINE and what was expected there, or the
    // file and what is wrong with it (unreadable, readable by group or others, grants nothing).
    static access_list load(const std::filesystem::path &file);
    // No token file: grants nothing.
    access_list() = default;

    bool empty() const noexcept { return tokens_.empty() && certs_.empty(); }
    std::size_t size() const noexcept { return tokens_.size() + certs_.size(); }
    const std::filesystem::path &file() const noexcept { return file_; }

    // The grant of a presented token, or nullopt. Compares the token's SHA-256 with every entry in constant time
    // (no early exit), so neither the answer's timing nor the file's order tells how close a guess was.
    std::optional<grant> find(std::string_view token) const { return tokens_.find(token); }
    // What an `Authorization` header value grants: `Bearer TOKEN`, or `Basic base64(ANY:TOKEN)` (what curl -u and a
    // browser's login prompt send). Nothing for another scheme or a malformed value.
    std::optional<grant> authorize(std::string_view header) const { return tokens_.authorize(header); }

    // The grant of a verified client certificate's subject CN ("cert" lines), or nullopt.
    std::optional<grant> find_cert(std::string_view subject_cn) const;
    bool has_certs() const noexcept { return !certs_.empty(); }

private:
    void check_one_per_role(const grant &g, const std::string &where) const;
    void add_cert(const std::vector<std::string> &words, const std::string &where);

    struct cert_entry {
        grant g;
        std::string subject_cn;
    };
    http_access::token_table<grant> tokens_;
    std::vector<cert_entry> certs_;
    std::filesystem::path file_;
};

}  // namespace firelink::admin
