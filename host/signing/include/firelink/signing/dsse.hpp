// DSSE envelopes (https://github.com/secure-systems-lab/dsse, v1) signed with Ed25519: what a conformance
// certificate is (an in-toto Statement in an envelope, docs/certifiers-guide.md "Certificates"), checked offline.
//
// The signature covers PAE(payloadType, payload) = "DSSEv1" SP len(type) SP type SP len(payload) SP payload, so the
// type cannot be swapped under a valid signature. A key's id in the envelope is the lower-case hex SHA-256 of its raw
// 32-byte public key.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <firelink/result.hpp>

namespace firelink::signing {

inline constexpr std::string_view in_toto_payload_type = "application/vnd.in-toto+json";
inline constexpr std::size_t max_envelope_bytes = 4u << 20;

// DSSE's pre-authentication encoding.
std::string pae(std::string_view payload_type, std::string_view payload);

struct ed25519_public {
    std::array<std::uint8_t, 32> key{};
    std::string id() const;  // hex SHA-256 of key
};
struct ed25519_secret {
    std::array<std::uint8_t, 32> seed{};
    ed25519_public pub() const;
};

// Key files as a certifier has them: a secret key from `openssl genpkey -algorithm ed25519` (PKCS#8 PEM) or from
// firelink-sign; a public key as `openssl pkey -pubout` writes it (PEM) or a minisign .pub file. Each is the key, or
// why the file is not one.
firelink::result<ed25519_secret> read_ed25519_secret(const std::filesystem::path &file);
firelink::result<ed25519_public> read_ed25519_public(const std::filesystem::path &file);

// The envelope (JSON) of `payload`, signed by `key`.
std::string dsse_sign(std::string_view payload_type, std::string_view payload, const ed25519_secret &key);

struct dsse_payload {
    std::string payload_type;
    std::string payload;  // decoded
    std::string key_id;   // of the trusted key whose signature verified
};

// The payload, when one signature of the envelope verifies under one of `trusted`; else why not ("not a DSSE
// envelope: ...", "no signature by a trusted key (signed by <ids>)", "the signature by <id> does not verify").
firelink::result<dsse_payload> dsse_verify(std::string_view envelope, const std::vector<ed25519_public> &trusted);

}  // namespace firelink::signing
