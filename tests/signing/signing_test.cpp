// The minisign format and its checks: what verifies, and each way a file, signature or comment can be wrong.
#include <cstdio>
#include <fstream>

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <firelink/signing/minisign.hpp>

namespace sg = firelink::signing;
namespace fs = std::filesystem;

namespace {

const std::string plugin_bytes = std::string("\x7f" "ELF fake plugin, any bytes\n", 27) + std::string(5000, 'x');

// The four lines of a .minisig, so that a test can change one.
std::vector<std::string> lines(const std::string &text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
        out.push_back(text.substr(start, nl - start));
    return out;
}
std::string joined(const std::vector<std::string> &ls) {
    std::string out;
    for (const auto &l : ls) out += l + "\n";
    return out;
}
// Flips one bit of the byte at index `at` of a base64 line's decoded bytes.
std::string flip_b64(const std::string &line, std::size_t at) {
    auto raw = sg::base64_decode(line, 1000);
    EXPECT_TRUE(raw);
    (*raw)[at] ^= 0x01;
    return sg::base64_encode(raw->data(), raw->size());
}

sg::verdict check(const std::string &data, const std::string &sig_text, const std::vector<sg::public_key> &keys) {
    auto parsed = sg::parse_signature(sig_text);
    if (!parsed) {
        sg::verdict v;
        v.result = sg::verdict::outcome::bad_signature;
        v.why = parsed.why();
        return v;
    }
    return sg::verify(data, *parsed, keys);
}

class signing : public ::testing::TestWithParam<bool> {
protected:
    sg::secret_key key = sg::generate_key();
    std::vector<sg::public_key> trusted{key.pub()};
    std::string sig = sg::sign(plugin_bytes, key, "timestamp:1\tfile:vendor.so", GetParam());
};

}  // namespace

TEST_P(signing, GoodSignatureVerifies) {
    const auto v = check(plugin_bytes, sig, trusted);
    EXPECT_TRUE(v.ok()) << v.why;
    EXPECT_EQ(v.trusted_comment, "timestamp:1\tfile:vendor.so");
    ASSERT_TRUE(v.id);
    EXPECT_EQ(*v.id, key.id);
    // The algorithm tag is what minisign writes: "ED" prehashed, "Ed" legacy (base64 "RU..." / "RW...").
    EXPECT_EQ(lines(sig)[1].substr(0, 2), GetParam() ? "RU" : "RW");
}

TEST_P(signing, OneFlippedByteOfThePluginFails) {
    for (std::size_t at : {std::size_t{0}, plugin_bytes.size() / 2, plugin_bytes.size() - 1}) {
        std::string data = plugin_bytes;
        data[at] ^= 0x01;
        const auto v = check(data, sig, trusted);
        EXPECT_EQ(v.result, sg::verdict::outcome::bad_signature) << at;
        EXPECT_NE(v.why.find("signature does not match the file"), std::string::npos) << v.why;
    }
    EXPECT_FALSE(check(plugin_bytes + "x", sig, trusted).ok());
    EXPECT_FALSE(check(plugin_bytes.substr(1), sig, trusted).ok());
}

TEST_P(signing, OneFlippedByteOfTheSignatureFails) {
    for (std::size_t at : {std::size_t{10}, std::size_t{40}, std::size_t{73}}) {
        auto ls = lines(sig);
        ls[1] = flip_b64(ls[1], at);
        EXPECT_EQ(check(plugin_bytes, joined(ls), trusted).result, sg::verdict::outcome::bad_signature) << at;
    }
    auto ls = lines(sig);
    ls[3] = flip_b64(ls[3], 5);
    EXPECT_EQ(check(plugin_bytes, joined(ls), trusted).result, sg::verdict::outcome::bad_signature);
}

TEST_P(signing, OneChangedByteOfTheTrustedCommentFails) {
    auto ls = lines(sig);
    ls[2].back() ^= 0x01;
    const auto v = check(plugin_bytes, joined(ls), trusted);
    EXPECT_EQ(v.result, sg::verdict::outcome::bad_signature);
    EXPECT_NE(v.why.find("trusted comment"), std::string::npos) << v.why;
}

TEST_P(signing, WrongKeyIdIsNotTrusted) {
    auto ls = lines(sig);
    ls[1] = flip_b64(ls[1], 2);  // the first byte of the key id
    const auto v = check(plugin_bytes, joined(ls), trusted);
    EXPECT_EQ(v.result, sg::verdict::outcome::untrusted_key);
    EXPECT_NE(v.why.find("which is not trusted"), std::string::npos) << v.why;

    // Another vendor's key: its id is not among the trusted.
    const auto other = sg::generate_key();
    const auto w = check(plugin_bytes, sg::sign(plugin_bytes, other, "c", GetParam()), trusted);
    EXPECT_EQ(w.result, sg::verdict::outcome::untrusted_key);
    EXPECT_NE(w.why.find(sg::to_hex(other.id)), std::string::npos) << w.why;
}

TEST_P(signing, SameKeyIdOtherKeyFails) {
    // A key that claims the trusted id: the id only picks the key, the signature still has to match it.
    auto impostor = sg::generate_key();
    impostor.id = key.id;
    EXPECT_EQ(check(plugin_bytes, sg::sign(plugin_bytes, impostor, "c", GetParam()), trusted).result,
              sg::verdict::outcome::bad_signature);
}

INSTANTIATE_TEST_SUITE_P(prehashed_and_legacy, signing, ::testing::Bool(),
                         [](const auto &info) { return info.param ? "ED" : "Ed"; });

TEST(signing_format, PublicKeyRoundTrips) {
    const auto k = sg::generate_key();
    const auto text = sg::public_key_text(k.pub());
    auto parsed = sg::parse_public_key(text);
    ASSERT_TRUE(parsed) << parsed;
    EXPECT_EQ(parsed->id, k.id);
    EXPECT_EQ(parsed->key, k.pub().key);
    auto secret = sg::parse_secret_key(sg::secret_key_text(k));
    ASSERT_TRUE(secret) << secret;
    EXPECT_EQ(secret->id, k.id);
    EXPECT_EQ(secret->seed, k.seed);
}

// The public key in minisign's README: the id is printed as minisign prints it in the key's comment.
TEST(signing_format, ReadsMinisignPublicKey) {
    const std::string text = "untrusted comment: minisign public key E7620F1842B4E81F\n"
                             "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n";
    auto parsed = sg::parse_public_key(text);
    ASSERT_TRUE(parsed) << parsed;
    EXPECT_EQ(sg::to_hex(parsed->id), "E7620F1842B4E81F");
}

TEST(signing_format, MalformedInputIsRejectedWithoutCrashing) {
    const auto k = sg::generate_key();
    const auto good = lines(sg::sign("data", k, "c"));
    const std::vector<std::string> bad_sigs = {
        "",
        "\n\n\n\n",
        "untrusted comment: x\n",                                       // short file
        good[0] + "\n" + good[1] + "\n" + good[2] + "\n",               // no global signature
        "comment: x\n" + good[1] + "\n" + good[2] + "\n" + good[3] + "\n",  // not "untrusted comment:"
        good[0] + "\n" + good[1].substr(0, 40) + "\n" + good[2] + "\n" + good[3] + "\n",  // short signature
        good[0] + "\n" + good[1] + "AAAA\n" + good[2] + "\n" + good[3] + "\n",            // long signature
        good[0] + "\n" + good[1] + "\n" + good[2] + "\n" + good[3].substr(0, 84) + "\n",  // short global
        good[0] + "\n" + good[1] + "\n" + "comment: c\n" + good[3] + "\n",                // no "trusted comment:"
        good[0] + "\n" + "!!!!" + good[1].substr(4) + "\n" + good[2] + "\n" + good[3] + "\n",  // not base64
        good[0] + "\n" + good[1].substr(0, good[1].size() - 2) + "==\n" + good[2] + "\n" + good[3] + "\n",  // 73
        good[0] + "\n" + good[1] + "\n" + good[2] + "\n" + good[3] + "=\n",  // not a multiple of 4
        good[0] + "\n" + "RXh" + good[1].substr(3) + "\n" + good[2] + "\n" + good[3] + "\n",  // algorithm "Ex"
        good[0] + "\n" + std::string(1 << 16, 'A') + "\n" + good[2] + "\n" + good[3] + "\n",
    };
    for (const auto &s : bad_sigs)
        EXPECT_FALSE(sg::parse_signature(s)) << s.substr(0, 200);
    const std::string key_line = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    const std::vector<std::string> bad_keys = {
        "",
        "untrusted comment: k\n",
        "untrusted comment: k\nRWQ=\n",
        "untrusted comment: k\n" + key_line.substr(0, key_line.size() - 1) + "\n",  // one digit short
        "untrusted comment: k\n" + key_line.substr(0, key_line.size() - 4) + "\n",  // 39 bytes
        "untrusted comment: k\n" + std::string(100000, 'A') + "\n",
        "x\n" + key_line + "\n",                                                    // not "untrusted comment:"
        "untrusted comment: k\nRUQ" + key_line.substr(3) + "\n",                   // algorithm "ED" is not a key's
    };
    for (const auto &s : bad_keys)
        EXPECT_FALSE(sg::parse_public_key(s)) << s.substr(0, 200);
}

TEST(signing_format, Base64IsStrict) {
    EXPECT_EQ(sg::base64_decode("Zm9v", 3), (std::vector<std::uint8_t>{'f', 'o', 'o'}));
    EXPECT_EQ(sg::base64_decode("Zm8=", 3), (std::vector<std::uint8_t>{'f', 'o'}));
    EXPECT_FALSE(sg::base64_decode("Zm9vYg", 10));   // unpadded
    EXPECT_FALSE(sg::base64_decode("Zm=v", 10));     // a digit after '='
    EXPECT_FALSE(sg::base64_decode("Zm8=Zm8=", 10)); // padding mid-way
    EXPECT_FALSE(sg::base64_decode("Zm 9", 10));
    EXPECT_FALSE(sg::base64_decode("Zm9vYmFy", 5));  // decodes longer than allowed
}

TEST(signing_file, VerifiesThroughTheDescriptorAndNamesAMissingSignature) {
    const fs::path dir = fs::temp_directory_path() / ("fl-sign-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path so = dir / "vendor.so";
    std::ofstream(so, std::ios::binary) << plugin_bytes;
    const auto k = sg::generate_key();
    const int fd = ::open(so.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    auto v = sg::verify_fd(fd, so.string() + ".minisig", {k.pub()});
    EXPECT_EQ(v.result, sg::verdict::outcome::unsigned_file);
    EXPECT_EQ(v.why, "no .minisig beside it");
    std::ofstream(so.string() + ".minisig", std::ios::binary) << sg::sign(plugin_bytes, k, "c");
    v = sg::verify_fd(fd, so.string() + ".minisig", {k.pub()});
    EXPECT_TRUE(v.ok()) << v.why;
    std::ofstream(so.string() + ".minisig", std::ios::binary) << std::string(sg::max_signature_bytes + 1, 'A');
    v = sg::verify_fd(fd, so.string() + ".minisig", {k.pub()});
    EXPECT_FALSE(v.ok());
    ::close(fd);
    fs::remove_all(dir);
}
