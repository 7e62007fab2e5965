// Messages that must help a person fix the site file: "did you mean" for a misspelt id, and TOML syntax errors in
// plain words, each still at its file:line:column.
#include "site_test_support.hpp"

#include <firelink/site/suggest.hpp>

using namespace site_test;
using firelink::site::did_you_mean;
using firelink::site::edit_distance;

// ---- did you mean ----------------------------------------------------------------------------------------------

TEST(DidYouMean, EditDistanceCountsSwapsOfNeighboursAsOne) {
    EXPECT_EQ(edit_distance("rs485", "rs485"), 0u);
    EXPECT_EQ(edit_distance("rs458", "rs485"), 1u);  // the typo of a datasheet copied by hand
    EXPECT_EQ(edit_distance("helo", "hello"), 1u);
    EXPECT_EQ(edit_distance("hello", "helo"), 1u);
    EXPECT_EQ(edit_distance("RS485", "rs485"), 0u);
    EXPECT_EQ(edit_distance("", "abc"), 3u);
    EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(DidYouMean, SuggestsTheClosestKnownNameOnlyWhenItIsLikelyATypo) {
    EXPECT_EQ(did_you_mean("rs458", {"rs485", "uitd"}), " (did you mean 'rs485'?)");
    EXPECT_EQ(did_you_mean("helo", {"hello", "panel"}), " (did you mean 'hello'?)");
    EXPECT_EQ(did_you_mean("org.firelink.example.hello-c", {"org.firelink.examples.hello-c"}),
              " (did you mean 'org.firelink.examples.hello-c'?)");
    EXPECT_EQ(did_you_mean("bus-1", {"bus-2", "bus-3"}), " (did you mean 'bus-2' or 'bus-3'?)");
    EXPECT_EQ(did_you_mean("bus-1", {"bus-2", "bus-3", "bus-4"}), "");  // too vague to help
    EXPECT_EQ(did_you_mean("modbus", {"uitd", "panel"}), "");
    EXPECT_EQ(did_you_mean("ab", {"xy"}), "");  // every 2-letter word is 2 edits from every other
    EXPECT_EQ(did_you_mean("a", {"b"}), "");    // one letter changed is a different word, not a typo
    EXPECT_EQ(did_you_mean("x", {}), "");
}

TEST(DidYouMean, UndefinedBusAndListenerNameTheirClosestIds) {
    const std::string buses = "[[bus]]\nid = \"rs485-main\"\nkind = \"rs485\"\npath = \"/dev/ttyUSB0\"\n"
                              "[[listener]]\nid = \"uitd\"\nlisten = \"0.0.0.0:9000\"\n";  // lines 1-7
    EXPECT_EQ(snippet_error(buses + "[[device]]\nid = \"d\"\ndriver = \"panel\"\nclass = \"fire_panel\"\n"
                                    "wire = { bus = \"rs458-main\", unit = 3 }\n"),
              "site.toml:12:16: device[0].wire.bus: bus 'rs458-main' is not defined (did you mean 'rs485-main'?)");
    EXPECT_EQ(snippet_error(buses + "[[device]]\nid = \"d\"\ndriver = \"panel\"\nclass = \"fire_panel\"\n"
                                    "wire = { listener = \"utid\", peer = \"10.0.0.5\" }\n"),
              "site.toml:12:21: device[0].wire.listener: listener 'utid' is not defined (did you mean 'uitd'?)");
    EXPECT_EQ(snippet_error(buses + "[[device]]\nid = \"d\"\ndriver = \"panel\"\nclass = \"fire_panel\"\n"
                                    "wire = { listener = \"modbus-gw\", peer = \"10.0.0.5\" }\n"),
              "site.toml:12:21: device[0].wire.listener: listener 'modbus-gw' is not defined");
}

// ---- TOML syntax in plain words ---------------------------------------------------------------------------------

TEST(TomlSyntax, AnUnclosedStringSaysSoAtItsLine) {
    // toml++ says "unescaped control characters other than TAB (U+0009) are explicitly prohibited": the newline.
    EXPECT_THAT(errors_of("[gateway]\nid = \"gw-1\n[plugins]\ndirs = [\"p\"]\n"),
                ElementsAre("site.toml:2:11: string not closed on this line: a \"...\" string ends on the line it "
                            "starts (for text over several lines use \"\"\"...\"\"\")"));
    EXPECT_THAT(errors_of("[gateway]\nid = 'gw-1\n"),
                ElementsAre("site.toml:2:11: string not closed on this line: a '...' string ends on the line it "
                            "starts (for text over several lines use '''...''')"));
    // Windows line ends: the \r is the end of the line too.
    EXPECT_THAT(errors_of("[gateway]\r\nid = \"gw-1\r\n"),
                ElementsAre(::testing::StartsWith("site.toml:2:11: string not closed on this line")));
    // Columns count characters, not bytes.
    EXPECT_THAT(errors_of("[gateway]\nid = \"gw-1\"\n[sink]\npath = \"événements\n"),
                ElementsAre(::testing::StartsWith("site.toml:4:19: string not closed on this line")));
    EXPECT_THAT(errors_of("[gateway]\nid = \"gw-1"),
                ElementsAre("site.toml:2:11: string not closed: the file ends before its closing quote"));
}

TEST(TomlSyntax, CommonMistakesInPlainWords) {
    EXPECT_THAT(errors_of("[gateway\nid = \"gw-1\"\n"),
                ElementsAre("site.toml:1:9: table header not closed: ']' missing on this line"));
    EXPECT_THAT(errors_of("[gateway]\nid =\n"), ElementsAre("site.toml:2:5: no value after '='"));
    EXPECT_THAT(errors_of("[gateway]\nid = \"a\"\nid = \"b\"\n"),
                ElementsAre("site.toml:3:6: 'id' is already set above: a key takes one value per table"));
    EXPECT_THAT(errors_of("[gateway]\nid = \"a\"\n[gateway]\n"),
                ElementsAre("site.toml:3:1: table [gateway] is already defined above (for several tables of one "
                            "name write [[gateway]] for each)"));
    EXPECT_THAT(errors_of("[gateway]\nid = gw-1\n"),
                ElementsAre("site.toml:2:6: not a value: text needs quotes (\"...\"); numbers, true, false, dates "
                            "and [arrays] are written bare"));
    EXPECT_THAT(errors_of("[sink]\npath = \"C:\\logs\"\n"),
                ElementsAre("site.toml:2:12: unknown escape sequence '\\l' in a \"...\" string: write \\\\ for a "
                            "backslash, or use single quotes ('C:\\path') for text without escapes"));
    EXPECT_THAT(errors_of("[gateway]\nid = \"a\" \"b\"\n"),
                ElementsAre("site.toml:2:10: more after the value on this line: one key = value per line (a comment "
                            "starts with #)"));
    EXPECT_THAT(errors_of("[plugins]\ndirs = [\"a\" \"b\"]\n"),
                ElementsAre("site.toml:2:13: array not closed, or a ',' missing between its values"));
    EXPECT_THAT(errors_of("[[device]]\nsite = { site = \"x\",}\n"),
                ElementsAre("site.toml:2:21: a ',' before '}': an inline table takes no trailing comma"));
}

TEST(TomlSyntax, AnythingElseKeepsTomlsWordsWithoutRawControlCharacters) {
    const auto errors = errors_of("[gateway]\nid = 0x\n");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "site.toml:2:8: hexadecimal integer: expected digit, saw the end of the line");
}
