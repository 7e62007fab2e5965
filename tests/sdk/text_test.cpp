// firelink/text.hpp: the one JSON string writer, UTF-8 made valid and cut on a character, hex read one way.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <firelink/text.hpp>

namespace text = firelink::text;

namespace {
const std::string fffd = "\xef\xbf\xbd";
}

TEST(Text, JsonStringEscapesWhatJsonCannotHoldRaw) {
    EXPECT_EQ(text::json_string(std::string("a\"b\\c\nd\te\x01\x1f", 12)),
              "\"a\\\"b\\\\c\\nd\\te\\u0001\\u001f\\u0000\"")
        << "a NUL byte too";
    EXPECT_EQ(text::json_string("\r"), "\"\\r\"");
}

// GBK "火警", a lone continuation byte, an overlong '/', a surrogate, past U+10FFFF: each bad byte is U+FFFD; real
// UTF-8 (CJK, 4-byte emoji) passes through.
TEST(Text, WhatIsNotUtf8BecomesReplacementCharacters) {
    EXPECT_EQ(text::json_string("\xbb\xf0\xbe\xaf|\x80|\xc0\xaf|火警"),
              "\"" + fffd + fffd + fffd + fffd + "|" + fffd + "|" + fffd + fffd + "|火警\"");
    EXPECT_EQ(text::valid_utf8("\xed\xa0\x80"), fffd + fffd + fffd) << "a surrogate";
    EXPECT_EQ(text::valid_utf8("\xf4\x90\x80\x80"), fffd + fffd + fffd + fffd) << "past U+10FFFF";
    EXPECT_EQ(text::valid_utf8("\xe7\x81"), fffd + fffd) << "cut at the end";
    EXPECT_EQ(text::valid_utf8("ok 🔥 火"), "ok 🔥 火");
}

// Cut at every byte limit, a Chinese text stays whole characters, as long as fits.
TEST(Text, Utf8PrefixNeverEndsInsideACharacter) {
    const std::string s = "燃气阀门关闭 ok";  // 6 characters of 3 bytes, then ASCII
    for (std::size_t limit = 0; limit <= s.size() + 1; ++limit) {
        const auto cut = text::utf8_prefix(s, limit);
        EXPECT_LE(cut.size(), limit);
        EXPECT_EQ(text::valid_utf8(cut), cut) << "cut at " << limit;
        EXPECT_EQ(cut.size(), limit <= 18 ? limit / 3 * 3 : std::min(limit, s.size())) << "as long as fits";
    }
    EXPECT_EQ(text::utf8_prefix("\xff\xff\xff", 2), "\xff\xff") << "a byte that is not UTF-8 is one character";
}

TEST(Text, HexReadsOneWayWithOrWithoutSeparators) {
    std::string why;
    const std::vector<std::uint8_t> want{0x68, 0x01, 0xab, 0xff};
    for (const char *in : {"6801abff", "68 01 ab ff", "68:01:AB:FF", "68-01-ab-ff", "0x68, 0x01, 0xab, 0xff",
                           "68\t01\nab\r\nff"}) {
        const auto got = text::parse_hex(in, why);
        ASSERT_TRUE(got) << in << ": " << why;
        EXPECT_EQ(*got, want) << in;
    }
    EXPECT_FALSE(text::parse_hex("6 8", why)) << "a separator inside a byte";
    EXPECT_FALSE(text::parse_hex("680", why));
    EXPECT_NE(why.find("odd number"), std::string::npos) << why;
    EXPECT_FALSE(text::parse_hex("68 zz", why));
    EXPECT_NE(why.find("offset 3"), std::string::npos) << why;
    EXPECT_EQ(text::to_hex(want), "6801abff");
    EXPECT_TRUE(text::parse_hex("", why)->empty());
}

TEST(Text, DumpJsonNeverThrowsOnTextThatIsNotUtf8) {
    const nlohmann::json j{{"reason", "platform said \xff"}, {"cut", std::string("燃气").substr(0, 4)}};
    EXPECT_THROW((void)j.dump(), nlohmann::json::type_error) << "nlohmann's strict dump, which the views must not use";
    const auto text = text::dump_json(j);
    const auto back = nlohmann::json::parse(text);
    EXPECT_EQ(back["reason"], "platform said " + fffd);
    EXPECT_EQ(back["cut"], "燃" + fffd);
}
