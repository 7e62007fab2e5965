// The admin token file, in the shape of the reference receiver's (examples/receiver/src/access.cpp): SHA-256 through
// OpenSSL's EVP, CRYPTO_memcmp over every entry, plain tokens hashed as they are read.
#include "firelink/admin/admin_access.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace firelink::admin {

namespace {

constexpr std::string_view hashed_prefix = "sha256:";
constexpr std::string_view line_shape = "'<read|operate|admin> <principal-name> <token|sha256:HEX64>'";

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
        entry e;
        const auto r = parse_role(role_word);
        if (!r) throw std::runtime_error(where + "unknown role '" + role_word + "' (expected read, operate or admin)");
        e.g.role = *r;
        if (!is_principal_name(name))
            throw std::runtime_error(where + "the principal name '" + name + "' is not " +
                                     std::string(principal_name_rule) + " (it goes into the audit log)");
        e.g.name = name;
        if (secret.compare(0, hashed_prefix.size(), hashed_prefix) == 0) {
            const auto digest = parse_hex_digest(std::string_view(secret).substr(hashed_prefix.size()));
            if (!digest)
                throw std::runtime_error(where + "'sha256:' must be followed by 64 hex digits (sha256sum's output)");
            e.hash = *digest;
        } else {
            // Kept only as its hash, like a hashed line: the process never holds a plain token past this point.
            e.hash = sha256(secret);
        }
        for (const auto &other : list.entries_)
            if (CRYPTO_memcmp(other.hash.data(), e.hash.data(), e.hash.size()) == 0)
                throw std::runtime_error(where + "the same token is listed twice: a token has one grant");
        list.check_one_per_role(e.g, where);
        list.entries_.push_back(std::move(e));
    }
    if (list.empty())
        throw std::runtime_error("the token file '" + file.string() + "' grants nothing (expected lines " +
                                 std::string(line_shape) + ")");
    return list;
}

void access_list::check_one_per_role(const grant &g, const std::string &where) const {
    const auto same = [&](const grant &other) { return other.name == g.name && other.role == g.role; };
    for (const auto &e : entries_)
        if (same(e.g))
            throw std::runtime_error(where + "'" + g.name + "' already has a " + role_name(g.role) +
                                     " grant: a name holds one grant per role");
    for (const auto &c : certs_)
        if (same(c.g))
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
    constexpr std::string_view bearer = "Bearer ", basic = "Basic ";
    header = trim(header);
    if (starts_with_nocase(header, bearer)) return find(trim(header.substr(bearer.size())));
    if (starts_with_nocase(header, basic)) {
        const auto decoded = base64_decode(trim(header.substr(basic.size())));
        if (!decoded) return std::nullopt;
        const auto colon = decoded->find(':');
        if (colon == std::string::npos) return std::nullopt;
        return find(std::string_view(*decoded).substr(colon + 1));
    }
    return std::nullopt;
}

}  // namespace firelink::admin
