#include "firelink/signing/minisign.hpp"

#include "ed25519.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

namespace firelink::signing {

namespace {

// What a text that is not the key or signature it should be gets: FL_INVALID_ARGUMENT and why.
failure not_a(std::string why) { return failure{FL_INVALID_ARGUMENT, std::move(why)}; }

constexpr std::string_view untrusted_prefix = "untrusted comment: ";
constexpr std::string_view trusted_prefix = "trusted comment: ";
constexpr std::string_view key_id_tag = "firelink-key-id: ";

using detail::bio_free;
using detail::ed25519_sign;
using detail::ed25519_verify;
using detail::md_ctx_ptr;
using detail::pkey_ptr;

// The file's lines, without their "\n" or "\r\n"; minisign writes one line per field.
std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        out.push_back(line);
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// BLAKE2b-512 of data, as minisign prehashes ("ED"); nullopt if this OpenSSL lacks it.
std::optional<std::array<std::uint8_t, 64>> blake2b512(std::string_view data) {
    std::array<std::uint8_t, 64> out{};
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_blake2b512(), nullptr) != 1 || len != out.size())
        return std::nullopt;
    return out;
}

std::string global_message(const signature &s) {
    std::string m(reinterpret_cast<const char *>(s.sig.data()), s.sig.size());
    return m + s.trusted_comment;
}

}  // namespace

std::string to_hex(const key_id &id) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    for (std::size_t i = id.size(); i-- > 0;) {
        out += digits[id[i] >> 4];
        out += digits[id[i] & 0xf];
    }
    return out;
}

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text, std::size_t max_bytes) {
    if (text.size() % 4 != 0 || text.size() / 4 * 3 > max_bytes + 2) return std::nullopt;
    std::vector<std::uint8_t> out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        const bool last = i + 4 == text.size();
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; ++j) {
            const char c = text[i + j];
            if (c == '=' && last && j >= 2) {
                v[j] = 0;
                ++pad;
                continue;
            }
            if (pad > 0) return std::nullopt;  // a digit after '='
            v[j] = b64_value(c);
            if (v[j] < 0) return std::nullopt;
        }
        const std::uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
        out.push_back(static_cast<std::uint8_t>(n >> 16));
        if (pad < 2) out.push_back(static_cast<std::uint8_t>(n >> 8));
        if (pad < 1) out.push_back(static_cast<std::uint8_t>(n));
    }
    if (out.size() > max_bytes) return std::nullopt;
    return out;
}

std::string base64_encode(const std::uint8_t *data, std::size_t size) {
    static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < size; i += 3) {
        const std::uint32_t n =
            (data[i] << 16) | (i + 1 < size ? data[i + 1] << 8 : 0) | (i + 2 < size ? data[i + 2] : 0);
        out += digits[(n >> 18) & 63];
        out += digits[(n >> 12) & 63];
        out += i + 1 < size ? digits[(n >> 6) & 63] : '=';
        out += i + 2 < size ? digits[n & 63] : '=';
    }
    return out;
}

firelink::result<public_key> parse_public_key(std::string_view text) {
    const auto lines = lines_of(text);
    if (lines.size() < 2 || lines[0].substr(0, untrusted_prefix.size()) != untrusted_prefix)
        return not_a("not a minisign public key (expected an \"untrusted comment:\" line, then the key)");
    const auto raw = base64_decode(lines[1], 42);
    if (!raw || raw->size() != 42) return not_a("the key line is not base64 of 42 bytes");
    if ((*raw)[0] != 'E' || (*raw)[1] != 'd') return not_a("not an Ed25519 key (algorithm is not \"Ed\")");
    public_key k;
    std::memcpy(k.id.data(), raw->data() + 2, k.id.size());
    std::memcpy(k.key.data(), raw->data() + 10, k.key.size());
    return k;
}

firelink::result<signature> parse_signature(std::string_view text) {
    const auto lines = lines_of(text);
    if (lines.size() < 4) return not_a("truncated signature file (expected 4 lines)");
    if (lines[0].substr(0, untrusted_prefix.size()) != untrusted_prefix)
        return not_a("not a minisign signature (the first line is not an \"untrusted comment:\")");
    const auto raw = base64_decode(lines[1], 74);
    if (!raw || raw->size() != 74) return not_a("the signature line is not base64 of 74 bytes");
    signature s;
    if ((*raw)[0] == 'E' && (*raw)[1] == 'd')
        s.prehashed = false;
    else if ((*raw)[0] == 'E' && (*raw)[1] == 'D')
        s.prehashed = true;
    else
        return not_a("unknown signature algorithm (neither \"Ed\" nor \"ED\")");
    std::memcpy(s.id.data(), raw->data() + 2, s.id.size());
    std::memcpy(s.sig.data(), raw->data() + 10, s.sig.size());
    if (lines[2].substr(0, trusted_prefix.size()) != trusted_prefix)
        return not_a("the third line is not a \"trusted comment:\"");
    s.trusted_comment = std::string(lines[2].substr(trusted_prefix.size()));
    const auto global = base64_decode(lines[3], 64);
    if (!global || global->size() != 64) return not_a("the global signature line is not base64 of 64 bytes");
    std::memcpy(s.global_sig.data(), global->data(), s.global_sig.size());
    return s;
}

std::optional<std::string> read_small_file(const std::filesystem::path &file, std::size_t max_bytes) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::nullopt;
    // In chunks, to the end: memory grows with the file, never past the cap, whatever the file claims to be.
    std::string out;
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        if (out.size() + static_cast<std::size_t>(in.gcount()) > max_bytes) return std::nullopt;
        out.append(buf, static_cast<std::size_t>(in.gcount()));
    }
    if (in.bad()) return std::nullopt;
    return out;
}

firelink::result<public_key> read_public_key(const std::filesystem::path &file) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) return failure{FL_NOT_FOUND, "no such file"};
    const auto text = read_small_file(file, max_key_bytes);
    if (!text) return failure{FL_IO, "unreadable, or longer than " + std::to_string(max_key_bytes) + " bytes"};
    return parse_public_key(*text);
}

verdict verify(std::string_view data, const signature &sig, const std::vector<public_key> &trusted) {
    verdict v;
    v.id = sig.id;
    const public_key *key = nullptr;
    for (const auto &k : trusted)
        if (k.id == sig.id) key = &k;
    if (!key) {
        v.result = verdict::outcome::untrusted_key;
        v.why = "signed by key ID " + to_hex(sig.id) + " which is not trusted";
        return v;
    }
    std::optional<std::array<std::uint8_t, 64>> hash;
    if (sig.prehashed && !(hash = blake2b512(data))) {
        v.result = verdict::outcome::bad_signature;
        v.why = "prehashed (\"ED\") signature, and this OpenSSL has no BLAKE2b-512";
        return v;
    }
    const bool file_ok = hash ? ed25519_verify(key->key, sig.sig.data(), hash->data(), hash->size())
                              : ed25519_verify(key->key, sig.sig.data(),
                                               reinterpret_cast<const std::uint8_t *>(data.data()), data.size());
    if (!file_ok) {
        v.result = verdict::outcome::bad_signature;
        v.why = "signature does not match the file (key ID " + to_hex(sig.id) + ")";
        return v;
    }
    const std::string global = global_message(sig);
    if (!ed25519_verify(key->key, sig.global_sig.data(), reinterpret_cast<const std::uint8_t *>(global.data()),
                        global.size())) {
        v.result = verdict::outcome::bad_signature;
        v.why = "the trusted comment's signature does not match (key ID " + to_hex(sig.id) + ")";
        return v;
    }
    v.result = verdict::outcome::signed_ok;
    v.trusted_comment = sig.trusted_comment;
    return v;
}

verdict verify_fd(int fd, const std::filesystem::path &signature_file, const std::vector<public_key> &trusted) {
    verdict v;
    std::error_code ec;
    if (!std::filesystem::exists(signature_file, ec)) {
        v.result = verdict::outcome::unsigned_file;
        v.why = "no .minisig beside it";
        return v;
    }
    const auto text = read_small_file(signature_file, max_signature_bytes);
    if (!text) {
        v.why = signature_file.filename().string() + " is unreadable or longer than " +
                std::to_string(max_signature_bytes) + " bytes";
        return v;
    }
    auto parsed = parse_signature(*text);
    if (!parsed) {
        v.result = verdict::outcome::bad_signature;
        v.why = signature_file.filename().string() + ": " + parsed.why();
        return v;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        v.why = std::string("the plugin file cannot be read: ") + std::strerror(errno);
        return v;
    }
    if (static_cast<std::uint64_t>(st.st_size) > max_plugin_bytes) {
        v.why = "the plugin file is larger than " + std::to_string(max_plugin_bytes) + " bytes";
        return v;
    }
    // Read to the end rather than to st_size: a file that grows meanwhile is caught by the cap, not truncated.
    std::string data;
    char buf[65536];
    for (off_t at = 0;;) {
        const ssize_t n = ::pread(fd, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            v.why = std::string("the plugin file cannot be read: ") + std::strerror(errno);
            return v;
        }
        if (n == 0) break;
        if (data.size() + static_cast<std::size_t>(n) > max_plugin_bytes) {
            v.why = "the plugin file is larger than " + std::to_string(max_plugin_bytes) + " bytes";
            return v;
        }
        data.append(buf, static_cast<std::size_t>(n));
        at += n;
    }
    return verify(data, *parsed, trusted);
}

public_key secret_key::pub() const {
    public_key p;
    p.id = id;
    pkey_ptr sk(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
    std::size_t len = p.key.size();
    if (!sk || EVP_PKEY_get_raw_public_key(sk.get(), p.key.data(), &len) != 1 || len != p.key.size())
        throw std::runtime_error("cannot derive the Ed25519 public key in OpenSSL");
    return p;
}

secret_key generate_key() {
    secret_key k;
    if (RAND_bytes(k.id.data(), static_cast<int>(k.id.size())) != 1 ||
        RAND_priv_bytes(k.seed.data(), static_cast<int>(k.seed.size())) != 1)
        throw std::runtime_error("OpenSSL's random generator failed");
    return k;
}

std::string secret_key_text(const secret_key &k) {
    pkey_ptr sk(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, k.seed.data(), k.seed.size()));
    std::unique_ptr<BIO, bio_free> bio(BIO_new(BIO_s_mem()));
    if (!sk || !bio || PEM_write_bio_PrivateKey(bio.get(), sk.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
        throw std::runtime_error("cannot write the key in OpenSSL");
    char *pem = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &pem);
    return std::string(key_id_tag) + to_hex(k.id) + "\n" + std::string(pem, static_cast<std::size_t>(len));
}

firelink::result<secret_key> parse_secret_key(std::string_view text) {
    const auto lines = lines_of(text);
    if (lines.empty() || lines[0].substr(0, key_id_tag.size()) != key_id_tag ||
        lines[0].size() != key_id_tag.size() + 16)
        return not_a("not a firelink-sign secret key (expected a \"firelink-key-id:\" line, then a PEM key)");
    secret_key k;
    const auto hex = lines[0].substr(key_id_tag.size());
    for (std::size_t i = 0; i < 8; ++i) {
        unsigned v = 0;
        for (char c : hex.substr(14 - 2 * i, 2)) {
            const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) return not_a("the key id is not 16 upper-case hex digits");
            v = v * 16 + static_cast<unsigned>(d);
        }
        k.id[i] = static_cast<std::uint8_t>(v);
    }
    const auto seed = detail::pem_private_seed(text.substr(text.find('\n') + 1));
    if (!seed) return not_a("the PEM block is not an unencrypted Ed25519 private key");
    k.seed = *seed;
    return k;
}

std::string public_key_text(const public_key &k) {
    std::array<std::uint8_t, 42> raw{'E', 'd'};
    std::memcpy(raw.data() + 2, k.id.data(), k.id.size());
    std::memcpy(raw.data() + 10, k.key.data(), k.key.size());
    return std::string(untrusted_prefix) + "minisign public key " + to_hex(k.id) + "\n" +
           base64_encode(raw.data(), raw.size()) + "\n";
}

std::string sign(std::string_view data, const secret_key &k, std::string_view trusted_comment, bool prehash) {
    if (trusted_comment.find('\n') != std::string_view::npos || trusted_comment.find('\r') != std::string_view::npos)
        throw std::invalid_argument("the trusted comment must be one line");
    signature s;
    s.prehashed = prehash;
    s.id = k.id;
    if (prehash) {
        const auto hash = blake2b512(data);
        if (!hash) throw std::runtime_error("this OpenSSL has no BLAKE2b-512; sign with --legacy");
        s.sig = ed25519_sign(k.seed, hash->data(), hash->size());
    } else {
        s.sig = ed25519_sign(k.seed, reinterpret_cast<const std::uint8_t *>(data.data()), data.size());
    }
    s.trusted_comment = std::string(trusted_comment);
    const std::string global = global_message(s);
    s.global_sig = ed25519_sign(k.seed, reinterpret_cast<const std::uint8_t *>(global.data()), global.size());
    std::array<std::uint8_t, 74> raw{'E', static_cast<std::uint8_t>(prehash ? 'D' : 'd')};
    std::memcpy(raw.data() + 2, s.id.data(), s.id.size());
    std::memcpy(raw.data() + 10, s.sig.data(), s.sig.size());
    return std::string(untrusted_prefix) + "signature from firelink-sign secret key\n" +
           base64_encode(raw.data(), raw.size()) + "\n" + std::string(trusted_prefix) + s.trusted_comment + "\n" +
           base64_encode(s.global_sig.data(), s.global_sig.size()) + "\n";
}

namespace detail {

bool ed25519_verify(const std::array<std::uint8_t, 32> &key, const std::uint8_t *sig, const std::uint8_t *data,
                    std::size_t size) {
    pkey_ptr pk(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, key.data(), key.size()));
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    if (!pk || !ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pk.get()) != 1) return false;
    return EVP_DigestVerify(ctx.get(), sig, 64, data, size) == 1;
}

std::array<std::uint8_t, 64> ed25519_sign(const std::array<std::uint8_t, 32> &seed, const std::uint8_t *data,
                                          std::size_t size) {
    std::array<std::uint8_t, 64> sig{};
    pkey_ptr sk(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
    md_ctx_ptr ctx(EVP_MD_CTX_new());
    std::size_t len = sig.size();
    if (!sk || !ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, sk.get()) != 1 ||
        EVP_DigestSign(ctx.get(), sig.data(), &len, data, size) != 1 || len != sig.size())
        throw std::runtime_error("Ed25519 signing failed in OpenSSL");
    return sig;
}

std::optional<std::array<std::uint8_t, 32>> pem_private_seed(std::string_view pem) {
    bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    pkey_ptr sk(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    std::array<std::uint8_t, 32> seed{};
    std::size_t len = seed.size();
    if (!sk || EVP_PKEY_get_id(sk.get()) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_private_key(sk.get(), seed.data(), &len) != 1 || len != seed.size())
        return std::nullopt;
    return seed;
}

std::optional<std::array<std::uint8_t, 32>> pem_public_key(std::string_view pem) {
    bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    pkey_ptr pk(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    std::array<std::uint8_t, 32> key{};
    std::size_t len = key.size();
    if (!pk || EVP_PKEY_get_id(pk.get()) != EVP_PKEY_ED25519 ||
        EVP_PKEY_get_raw_public_key(pk.get(), key.data(), &len) != 1 || len != key.size())
        return std::nullopt;
    return key;
}

}  // namespace detail

}  // namespace firelink::signing
