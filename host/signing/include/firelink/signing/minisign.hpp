// Detached signatures of plugin files in minisign's format (https://jedisct1.github.io/minisign/), so that a vendor
// may sign with minisign itself or with firelink-sign, and a site may check with either.
//
// Public key file:  "untrusted comment: ..." line, then base64 of "Ed" + key id (8) + Ed25519 public key (32).
// Signature file:   "untrusted comment: ..." line, then base64 of "Ed" + key id + signature of the file (64) -- or
//                   "ED" + key id + signature of the file's BLAKE2b-512 -- then "trusted comment: ..." line, then
//                   base64 of the global signature (64) of signature || trusted comment, which binds the comment.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <firelink/result.hpp>

namespace firelink::signing {

using key_id = std::array<std::uint8_t, 8>;

// As minisign prints it: the id read as a little-endian 64-bit number, 16 upper-case hex digits.
std::string to_hex(const key_id &id);

struct public_key {
    key_id id{};
    std::array<std::uint8_t, 32> key{};
};

struct signature {
    bool prehashed = false;  // "ED": the file's BLAKE2b-512 was signed, not the file
    key_id id{};
    std::array<std::uint8_t, 64> sig{};
    std::string trusted_comment;  // without the "trusted comment: " prefix
    std::array<std::uint8_t, 64> global_sig{};
};

// Each is the value, or why the text is not one (never throws; lengths are checked before anything is copied).
firelink::result<public_key> parse_public_key(std::string_view text);
firelink::result<signature> parse_signature(std::string_view text);
firelink::result<public_key> read_public_key(const std::filesystem::path &file);

// Strict base64 (RFC 4648, padded); nullopt for anything else, or when longer than max_bytes once decoded.
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text, std::size_t max_bytes);
std::string base64_encode(const std::uint8_t *data, std::size_t size);

// Caps on what is read: nothing a plugin or its signature can be is this large, and nothing larger is held in memory.
inline constexpr std::size_t max_plugin_bytes = 256u << 20;
inline constexpr std::size_t max_signature_bytes = 64u << 10;
inline constexpr std::size_t max_key_bytes = 4u << 10;

// Who signed a file, or why it is not known to be signed by a trusted key.
struct verdict {
    enum class outcome { signed_ok, unsigned_file, untrusted_key, bad_signature, unreadable };
    outcome result = outcome::unreadable;
    std::optional<key_id> id;     // the key the signature names, once the signature could be read
    std::string trusted_comment;  // once verified
    std::string why;              // empty when signed_ok
    bool ok() const { return result == outcome::signed_ok; }
};

// Checks data against a parsed signature and the trusted keys.
verdict verify(std::string_view data, const signature &sig, const std::vector<public_key> &trusted);

// Checks the file open at fd (read from its start, at most max_plugin_bytes) against the signature file beside it
// (signature_file, normally the plugin's path + ".minisig"). Reading the descriptor, not the path, lets the caller
// load exactly the bytes that were checked (through /proc/self/fd/N).
verdict verify_fd(int fd, const std::filesystem::path &signature_file, const std::vector<public_key> &trusted);

// ---- signing, for firelink-sign -----------------------------------------------------------------------------

struct secret_key {
    key_id id{};
    std::array<std::uint8_t, 32> seed{};  // the Ed25519 private key
    public_key pub() const;
};

// A new key; its id is random, as minisign's are.
secret_key generate_key();
// The key's id and seed in an unencrypted PKCS#8 PEM (what `openssl genpkey -algorithm ed25519` writes), the id in
// a "firelink-key-id: <hex>" line before it, so that openssl tools can read the key too.
std::string secret_key_text(const secret_key &k);
firelink::result<secret_key> parse_secret_key(std::string_view text);
std::string public_key_text(const public_key &k);  // a minisign .pub file
// A minisign .minisig file for data; "ED" (prehashed) unless legacy is asked for.
std::string sign(std::string_view data, const secret_key &k, std::string_view trusted_comment, bool prehash = true);

// The whole of a small file, or nullopt when it cannot be read or is longer than max_bytes.
std::optional<std::string> read_small_file(const std::filesystem::path &file, std::size_t max_bytes);

}  // namespace firelink::signing
