// DSSE envelopes: the spec's PAE, a round trip, and every way an envelope must be refused (a changed byte, another
// key, another type, garbage), with the key files as openssl and firelink-sign write them.
#include <firelink/signing/dsse.hpp>
#include <firelink/signing/minisign.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

namespace {

using namespace firelink::signing;

ed25519_secret new_key() { return ed25519_secret{generate_key().seed}; }

std::filesystem::path write(const std::string &name, const std::string &text) {
    const auto p = std::filesystem::temp_directory_path() / ("firelink-dsse-" + std::to_string(::getpid()) + "-" + name);
    std::ofstream(p, std::ios::binary) << text;
    return p;
}

}  // namespace

TEST(Dsse, PreAuthenticationEncodingIsTheSpecs) {
    // The example of the DSSE protocol document.
    EXPECT_EQ(pae("http://example.com/HelloWorld", "hello world"),
              "DSSEv1 29 http://example.com/HelloWorld 11 hello world");
    EXPECT_EQ(pae("", ""), "DSSEv1 0  0 ");
}

TEST(Dsse, ASignedEnvelopeVerifiesUnderItsKeyOnly) {
    const auto key = new_key(), other = new_key();
    const std::string statement = R"({"_type":"https://in-toto.io/Statement/v1"})";
    const auto envelope = dsse_sign(in_toto_payload_type, statement, key);
    auto ok = dsse_verify(envelope, {other.pub(), key.pub()});
    ASSERT_TRUE(ok) << ok.why();
    EXPECT_EQ(ok->payload, statement);
    EXPECT_EQ(ok->payload_type, in_toto_payload_type);
    EXPECT_EQ(ok->key_id, key.pub().id());
    const auto wrong = dsse_verify(envelope, {other.pub()});
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.why().find("no signature by a trusted key (signed by " + key.pub().id()), std::string::npos);
}

TEST(Dsse, AnyChangeIsRefused) {
    const auto key = new_key();
    const auto envelope = nlohmann::json::parse(dsse_sign(in_toto_payload_type, R"({"level":"basic"})", key));
    auto payload_changed = envelope;
    const std::string stronger = R"({"level":"strict"})";
    payload_changed["payload"] = base64_encode(reinterpret_cast<const std::uint8_t *>(stronger.data()), stronger.size());
    auto type_changed = envelope;
    type_changed["payloadType"] = "text/plain";
    auto sig_changed = envelope;
    auto sig = sig_changed["signatures"][0]["sig"].get<std::string>();
    sig[5] = sig[5] == 'A' ? 'B' : 'A';
    sig_changed["signatures"][0]["sig"] = sig;
    for (const auto &bad : {payload_changed, type_changed, sig_changed}) {
        const auto r = dsse_verify(bad.dump(), {key.pub()});
        ASSERT_FALSE(r);
        EXPECT_NE(r.why().find("does not verify"), std::string::npos) << r.why();
    }
    for (const std::string garbage : {"", "[]", "{\"payloadType\":1}", "{\"payloadType\":\"x\",\"payload\":\"***\","
                                                                         "\"signatures\":[]}"})
        EXPECT_FALSE(dsse_verify(garbage, {key.pub()})) << garbage;
}

TEST(Dsse, KeysAsOpensslAndFirelinkSignWriteThem) {
    // firelink-sign's secret key and minisign public key.
    const auto k = generate_key();
    const auto secret = write("secret.key", secret_key_text(k));
    const auto pub = write("key.pub", public_key_text(k.pub()));
    auto s = read_ed25519_secret(secret);
    auto p = read_ed25519_public(pub);
    ASSERT_TRUE(s) << s.why();
    ASSERT_TRUE(p) << p.why();
    EXPECT_EQ(s->pub().key, p->key);
    // openssl genpkey -algorithm ed25519 / openssl pkey -pubout.
    const auto pem = write("openssl.pem", "");
    const auto pem_pub = write("openssl.pub.pem", "");
    ASSERT_EQ(std::system(("openssl genpkey -algorithm ed25519 -out " + pem.string() + " 2>/dev/null && openssl pkey -in " +
                           pem.string() + " -pubout -out " + pem_pub.string())
                              .c_str()),
              0);
    auto os = read_ed25519_secret(pem);
    auto op = read_ed25519_public(pem_pub);
    ASSERT_TRUE(os) << os.why();
    ASSERT_TRUE(op) << op.why();
    EXPECT_EQ(os->pub().key, op->key);
    const auto refused = read_ed25519_public(write("junk.pub", "hello\n"));
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.why().find("not an Ed25519 public key"), std::string::npos);
    for (const auto &f : {secret, pub, pem, pem_pub}) std::filesystem::remove(f);
}
