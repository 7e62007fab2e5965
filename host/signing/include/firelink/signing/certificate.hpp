// What a conformance certificate is, for whoever checks one offline: firelink-conform's `verify`, and the host before
// it loads a plugin when the site asks for certificates (docs/certifiers-guide.md, "Certificates"). A certificate is
// an in-toto Statement (subject: the plugin file's SHA-256; predicate: firelink-conform's whole report of a passed
// run) in a DSSE envelope signed with a certifier's Ed25519 key.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <firelink/result.hpp>
#include <firelink/signing/dsse.hpp>

namespace firelink::signing {

inline constexpr std::string_view statement_type = "https://in-toto.io/Statement/v1";
inline constexpr std::string_view conformance_predicate_type = "https://firelink.org/conformance/v1";

// The suite's levels in order (basic < standard < strict < soak): its rank, or -1 for another word.
int conformance_level_rank(std::string_view level);

// The lower-case hex SHA-256 of the file open at fd (read from its start with pread, at most max_bytes), or why not.
firelink::result<std::string> sha256_of_fd(int fd, std::size_t max_bytes);

// What a valid certificate says.
struct certificate_facts {
    std::string plugin_file, plugin_sha256, plugin_id, plugin_version, level, suite_version, ended, key_id;
};

// `envelope` checked against `trusted` keys, the plugin file's SHA-256 (lower-case hex) and the lowest level
// accepted: the facts, or why it does not hold.
firelink::result<certificate_facts> check_certificate(std::string_view envelope,
                                                      const std::vector<ed25519_public> &trusted,
                                                      const std::string &plugin_sha256, std::string_view lowest_level);

}  // namespace firelink::signing
