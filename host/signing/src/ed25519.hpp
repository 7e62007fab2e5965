// The Ed25519 primitives (OpenSSL 3) under both signature formats: minisign's (minisign.cpp) and DSSE's (dsse.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/evp.h>

namespace firelink::signing::detail {

struct pkey_free {
    void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); }
};
struct md_ctx_free {
    void operator()(EVP_MD_CTX *c) const { EVP_MD_CTX_free(c); }
};
struct bio_free {
    void operator()(BIO *b) const { BIO_free(b); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

bool ed25519_verify(const std::array<std::uint8_t, 32> &key, const std::uint8_t *sig, const std::uint8_t *data,
                    std::size_t size);
// Throws std::runtime_error when OpenSSL fails.
std::array<std::uint8_t, 64> ed25519_sign(const std::array<std::uint8_t, 32> &seed, const std::uint8_t *data,
                                          std::size_t size);
// The raw Ed25519 key of a PEM block (PKCS#8 private key or SubjectPublicKeyInfo public key), or nullopt.
std::optional<std::array<std::uint8_t, 32>> pem_private_seed(std::string_view pem);
std::optional<std::array<std::uint8_t, 32>> pem_public_key(std::string_view pem);

}  // namespace firelink::signing::detail
