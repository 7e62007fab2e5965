#include "firelink/signing/dsse.hpp"

#include <nlohmann/json.hpp>
#include <openssl/sha.h>

#include "ed25519.hpp"
#include "firelink/signing/minisign.hpp"

namespace firelink::signing {

namespace {

failure not_a(std::string why) { return failure{FL_INVALID_ARGUMENT, std::move(why)}; }

std::string hex(const std::uint8_t *data, std::size_t size) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < size; ++i) {
        out += digits[data[i] >> 4];
        out += digits[data[i] & 15];
    }
    return out;
}

}  // namespace

std::string pae(std::string_view payload_type, std::string_view payload) {
    return "DSSEv1 " + std::to_string(payload_type.size()) + " " + std::string(payload_type) + " " +
           std::to_string(payload.size()) + " " + std::string(payload);
}

std::string ed25519_public::id() const {
    std::array<std::uint8_t, SHA256_DIGEST_LENGTH> d{};
    SHA256(key.data(), key.size(), d.data());
    return hex(d.data(), d.size());
}

ed25519_public ed25519_secret::pub() const {
    secret_key k;
    k.seed = seed;
    return ed25519_public{k.pub().key};
}

firelink::result<ed25519_secret> read_ed25519_secret(const std::filesystem::path &file) {
    const auto text = read_small_file(file, max_key_bytes);
    if (!text) return failure{FL_IO, file.string() + ": cannot be read (or is over 4 KiB)"};
    if (auto k = parse_secret_key(*text)) return ed25519_secret{k->seed};
    if (auto seed = detail::pem_private_seed(*text)) return ed25519_secret{*seed};
    return not_a(file.string() + ": not an unencrypted Ed25519 private key (openssl genpkey -algorithm ed25519, "
                                 "or firelink-sign keygen)");
}

firelink::result<ed25519_public> read_ed25519_public(const std::filesystem::path &file) {
    const auto text = read_small_file(file, max_key_bytes);
    if (!text) return failure{FL_IO, file.string() + ": cannot be read (or is over 4 KiB)"};
    if (auto k = parse_public_key(*text)) return ed25519_public{k->key};
    if (auto key = detail::pem_public_key(*text)) return ed25519_public{*key};
    return not_a(file.string() + ": not an Ed25519 public key (openssl pkey -pubout, or a minisign .pub file)");
}

std::string dsse_sign(std::string_view payload_type, std::string_view payload, const ed25519_secret &key) {
    const auto message = pae(payload_type, payload);
    const auto sig = detail::ed25519_sign(key.seed, reinterpret_cast<const std::uint8_t *>(message.data()),
                                          message.size());
    const nlohmann::json envelope{
        {"payloadType", payload_type},
        {"payload", base64_encode(reinterpret_cast<const std::uint8_t *>(payload.data()), payload.size())},
        {"signatures", {{{"keyid", key.pub().id()}, {"sig", base64_encode(sig.data(), sig.size())}}}}};
    return envelope.dump(2) + "\n";
}

firelink::result<dsse_payload> dsse_verify(std::string_view envelope, const std::vector<ed25519_public> &trusted) {
    if (envelope.size() > max_envelope_bytes) return not_a("not a DSSE envelope: over 4 MiB");
    const auto doc = nlohmann::json::parse(envelope, nullptr, false);
    if (!doc.is_object() || !doc.contains("payloadType") || !doc["payloadType"].is_string() ||
        !doc.contains("payload") || !doc["payload"].is_string() || !doc.contains("signatures") ||
        !doc["signatures"].is_array())
        return not_a("not a DSSE envelope: expected an object with payloadType, payload and signatures");
    const std::string type = doc["payloadType"];
    const auto payload = base64_decode(doc["payload"].get<std::string>(), max_envelope_bytes);
    if (!payload) return not_a("not a DSSE envelope: its payload is not base64");
    const std::string body(payload->begin(), payload->end());
    const auto message = pae(type, body);
    std::string seen;
    for (const auto &s : doc["signatures"]) {
        if (!s.is_object() || !s.contains("sig") || !s["sig"].is_string()) continue;
        const std::string keyid = s.value("keyid", "");
        seen += (seen.empty() ? "" : ", ") + (keyid.empty() ? std::string("(no keyid)") : keyid);
        const auto sig = base64_decode(s["sig"].get<std::string>(), 64);
        for (const auto &k : trusted) {
            if (!keyid.empty() && keyid != k.id()) continue;
            if (!sig || sig->size() != 64)
                return not_a("the signature by " + k.id() + " is not 64 bytes of base64");
            if (!detail::ed25519_verify(k.key, sig->data(), reinterpret_cast<const std::uint8_t *>(message.data()),
                                        message.size()))
                return not_a("the signature by " + k.id() + " does not verify: the envelope was changed, or not "
                             "signed by this key");
            return dsse_payload{type, body, k.id()};
        }
    }
    return not_a("no signature by a trusted key (signed by " + (seen.empty() ? std::string("nobody") : seen) + ")");
}

}  // namespace firelink::signing
