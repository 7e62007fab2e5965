#include "firelink/signing/certificate.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <memory>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <unistd.h>

namespace firelink::signing {

namespace {

using json = nlohmann::json;

failure invalid(std::string why) { return failure{FL_INVALID_ARGUMENT, std::move(why)}; }

}  // namespace

firelink::result<std::string> sha256_of_fd(int fd, std::size_t max_bytes) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1)
        return failure{FL_ERROR, "SHA-256 is not available in OpenSSL"};
    std::array<char, 65536> buf{};
    off_t at = 0;
    for (ssize_t n; (n = ::pread(fd, buf.data(), buf.size(), at)) != 0; at += n) {
        if (n < 0) return failure{FL_IO, std::string("cannot read it: ") + std::strerror(errno)};
        if (static_cast<std::size_t>(at + n) > max_bytes)
            return failure{FL_INVALID_ARGUMENT, "it is over " + std::to_string(max_bytes >> 20) + " MiB"};
        EVP_DigestUpdate(md.get(), buf.data(), static_cast<std::size_t>(n));
    }
    std::array<unsigned char, 32> digest{};
    unsigned len = 0;
    EVP_DigestFinal_ex(md.get(), digest.data(), &len);
    std::string out;
    for (const auto b : digest) {
        out += "0123456789abcdef"[b >> 4];
        out += "0123456789abcdef"[b & 15];
    }
    return out;
}

int conformance_level_rank(std::string_view level) {
    constexpr std::array<std::string_view, 4> levels{"basic", "standard", "strict", "soak"};
    for (std::size_t i = 0; i < levels.size(); ++i)
        if (levels[i] == level) return static_cast<int>(i);
    return -1;
}

firelink::result<certificate_facts> check_certificate(std::string_view envelope,
                                                      const std::vector<ed25519_public> &trusted,
                                                      const std::string &plugin_sha256, std::string_view lowest_level) {
    auto verified = dsse_verify(envelope, trusted);
    if (!verified) return verified.error();
    if (verified->payload_type != in_toto_payload_type)
        return invalid("the envelope holds '" + verified->payload_type + "', not an in-toto Statement");
    const auto st = json::parse(verified->payload, nullptr, false);
    if (!st.is_object() || st.value("_type", "") != statement_type || st.value("predicateType", "") != conformance_predicate_type ||
        !st.contains("subject") || !st["subject"].is_array() || !st.contains("predicate") || !st["predicate"].is_object())
        return invalid("the signed statement is not a firelink conformance certificate");
    certificate_facts f;
    f.key_id = verified->key_id;
    for (const auto &s : st["subject"])
        if (s.is_object() && s.contains("digest") && s["digest"].is_object()) {
            f.plugin_file = s.value("name", "");
            f.plugin_sha256 = s["digest"].value("sha256", "");
        }
    if (f.plugin_sha256 != plugin_sha256)
        return invalid("the certificate is for another file: " + f.plugin_file + " (sha256 " + f.plugin_sha256 +
                       "), not this one (sha256 " + plugin_sha256 + ")");
    const auto &p = st["predicate"];
    const auto run = p.value("run", json::object());
    const auto summary = p.value("summary", json::object());
    f.level = run.value("level", "");
    f.ended = run.value("ended", "");
    f.suite_version = p.value("suite", json::object()).value("version", "");
    const auto plugin = p.value("plugin", json::object());
    f.plugin_id = plugin.value("id", "");
    f.plugin_version = plugin.value("version", "");
    const int certified = conformance_level_rank(f.level);
    if (certified < 0) return invalid("the certificate names no level");
    if (summary.value("verdict", "") != "pass")
        return invalid("the certified run did not pass (verdict " + summary.value("verdict", "?") + ")");
    if (certified < conformance_level_rank(lowest_level))
        return invalid("the certificate is for level " + f.level + ", below the " + std::string(lowest_level) +
                       " asked for");
    return f;
}

}  // namespace firelink::signing
