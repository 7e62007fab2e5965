// The admin token file. Its tokens are kept as the reference receiver's are (firelink::http_access::token_table:
// SHA-256 digests, compared in constant time over every entry, plain tokens hashed as they are read).
#include "firelink/admin/admin_access.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace firelink::admin {

namespace {

constexpr std::string_view line_shape = "'<read|operate|admin> <principal-name> <token|sha256:HEX64>'";

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The whole file, read through one descriptor so the mode checked is the mode of what is read.
std::string read_private_file(const std::filesystem::path &file) {
    const std::string name = file.string();
    const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) throw std::runtime_error("cannot read the token file '" + name + "': " + std::strerror(errno));
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0)
        throw std::runtime_error("cannot stat the token file '" + name + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw std::runtime_error("the token file '" + name + "' is not a regular file");
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw std::runtime_error("the token file '" + name + "' has mode " + mode +
                                 ": group or others may read or change it, and it holds credentials to command "
                                 "valves; run 'chmod 600 " + name + "' (and chown it to the service user)");
    }
    std::string text;
    char chunk[4096];
    for (;;) {
        const auto n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error("cannot read the token file '" + name + "': " + std::strerror(errno));
        if (n == 0) break;
        text.append(chunk, static_cast<std::size_t>(n));
        if (text.size() > 4 * 1024 * 1024)
            throw std::runtime_error("the token file '" + name + "' is larger than 4 MiB: not a token file");
    }
    return text;
}

std::optional<role> parse_role(std::string_view word) {
    if (word == "read") return role::read;
    if (word == "operate") return role::operate;
    if (word == "admin") return role::admin;
    return std::nullopt;
}

}  // namespace

const char *role_name(role r) {
    switch (r) {
    case role::read: return "read";
    case role::operate: return "operate";
    case role::admin: return "admin";
    }
    return "?";
}

bool is_principal_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (const char c : name) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                        c == '.' || c == '@' || c == '-';
        if (!ok) return false;
    }
    return true;
}

access_list access_list::load(const std::filesystem::path &file) {
    const std::string text = read_private_file(file);
    access_list list;
    list.file_ = file;
    std::istringstream in(text);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const auto where = file.string() + ":" + std::to_string(number) + ": ";
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (const auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
        if (trim(line).empty()) continue;
        std::vector<std::string> words;
        {
            std::istringstream split(line);
            for (std::string w; split >> w;) words.push_back(std::move(w));
        }
        if (!words.empty() && words[0] == "cert") {
            list.add_cert(words, where);
            continue;
        }
        if (words.size() != 3)
            throw std::runtime_error(where + "expected " + std::string(line_shape) + ", got " +
                                     std::to_string(words.size()) + " word(s)");
        const std::string &role_word = words[0], &name = words[1], &secret = words[2];
        grant g;
        const auto r = parse_role(role_word);
        if (!r) throw std::runtime_error(where + "unknown role '" + role_word + "' (expected read, operate or admin)");
        g.role = *r;
        if (!is_principal_name(name))
            throw std::runtime_error(where + "the principal name '" + name + "' is not " +
                                     std::string(principal_name_rule) + " (it goes into the audit log)");
        g.name = name;
        const auto hash = list.tokens_.new_digest(secret, where);
        list.check_one_per_role(g, where);
        list.tokens_.add(std::move(g), hash);
    }
    if (list.empty())
        throw std::runtime_error("the token file '" + file.string() + "' grants nothing (expected lines " +
                                 std::string(line_shape) + ")");
    return list;
}

void access_list::check_one_per_role(const grant &g, const std::string &where) const {
    const auto same = [&](const grant &other) { return other.name == g.name && other.role == g.role; };
    const bool taken_by_cert =
        std::any_of(certs_.begin(), certs_.end(), [&](const cert_entry &c) { return same(c.g); });
    if (tokens_.any_grant(same) || taken_by_cert)
        throw std::runtime_error(where + "'" + g.name + "' already has a " + role_name(g.role) +
                                 " grant: a name holds one grant per role");
}

void access_list::add_cert(const std::vector<std::string> &words, const std::string &where) {
    if (words.size() != 4)
        throw std::runtime_error(where + "expected 'cert <read|operate|admin> <principal-name> <subject-CN>', got " +
                                 std::to_string(words.size()) + " word(s)");
    cert_entry c;
    const auto r = parse_role(words[1]);
    if (!r) throw std::runtime_error(where + "unknown role '" + words[1] + "' (expected read, operate or admin)");
    c.g.role = *r;
    if (!is_principal_name(words[2]))
        throw std::runtime_error(where + "the principal name '" + words[2] + "' is not " +
                                 std::string(principal_name_rule) + " (it goes into the audit log)");
    c.g.name = words[2];
    c.subject_cn = words[3];
    for (const auto &other : certs_)
        if (other.subject_cn == c.subject_cn)
            throw std::runtime_error(where + "the subject CN '" + c.subject_cn +
                                     "' is listed twice: a certificate has one grant");
    check_one_per_role(c.g, where);
    certs_.push_back(std::move(c));
}

std::optional<grant> access_list::find_cert(std::string_view subject_cn) const {
    if (subject_cn.empty()) return std::nullopt;
    for (const auto &c : certs_)
        if (c.subject_cn == subject_cn) return c.g;  // a CN is not a secret: no need for constant time
    return std::nullopt;
}

}  // namespace firelink::admin
