#include "toml_errors.hpp"

#include <cstdio>

namespace firelink::site::detail {

namespace {

bool has(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// The character at a toml++ position (line and column from 1, the column in code points); 0 past the line's end
// or the text's, '\n' at the end of a line.
unsigned char char_at(std::string_view text, const toml::source_position &at) {
    std::size_t i = 0;
    for (toml::source_index line = 1; line < at.line; ++line) {
        i = text.find('\n', i);
        if (i == std::string_view::npos) return 0;
        ++i;
    }
    for (toml::source_index column = 1; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if ((c & 0xc0) == 0x80) continue;  // a UTF-8 continuation byte is not a column of its own
        if (column++ == at.column) return c;
        if (c == '\n') return 0;
    }
    return 0;
}

// The quoted name in "cannot redefine existing integer 'a'", or "".
std::string quoted_name(std::string_view d) {
    const auto open = d.find('\'');
    const auto close = open == std::string_view::npos ? open : d.find('\'', open + 1);
    return close == std::string_view::npos ? std::string() : std::string(d.substr(open + 1, close - open - 1));
}

// toml++'s own words, shortened and with nothing in them that would break the line of a log or a terminal.
std::string cleaned(std::string_view d) {
    constexpr std::string_view prefix = "Error while parsing ";
    if (d.substr(0, prefix.size()) == prefix) d.remove_prefix(prefix.size());
    std::string out;
    for (std::size_t i = 0; i < d.size(); ++i) {
        const auto c = static_cast<unsigned char>(d[i]);
        if (d.substr(i, 4) == "'\\n'" || d.substr(i, 3) == "'\n'") {
            out += "the end of the line";
            i += d[i + 1] == '\\' ? 3 : 2;
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

}  // namespace

std::string plain_toml_error(std::string_view d, std::string_view text, const toml::source_position &at) {
    const bool in_string = has(d, "parsing string") || has(d, "parsing literal string");
    const bool literal = has(d, "parsing literal string");
    const std::string quotes = literal ? "'...'" : "\"...\"";
    if (in_string && has(d, "control character")) {
        const unsigned char c = char_at(text, at);
        if (c == '\n' || c == '\r' || c == 0)
            return "string not closed on this line: a " + quotes + " string ends on the line it starts (for text " +
                   "over several lines use " + (literal ? "'''...'''" : "\"\"\"...\"\"\"") + ")";
        char code[8];
        std::snprintf(code, sizeof code, "%04X", static_cast<unsigned>(c));
        return std::string("a control character (U+") + code + ") inside a string: " +
               (literal ? "remove it (a '...' string takes no escapes)" : "write it as \\u" + std::string(code));
    }
    if (in_string && has(d, "end-of-file")) return "string not closed: the file ends before its closing quote";
    if (in_string && has(d, "escape sequence"))
        return cleaned(d.substr(d.find(':') + 2)) + " in a \"...\" string: write \\\\ for a backslash, or use " +
               "single quotes ('C:\\path') for text without escapes";
    if (has(d, "parsing table header") && has(d, "expected ']'"))
        return "table header not closed: ']' missing on this line";
    if (has(d, "cannot redefine existing")) {
        const auto name = quoted_name(d);
        if (has(d, "parsing table header"))
            return "table [" + name + "] is already defined above (for several tables of one name write [[" + name +
                   "]] for each)";
        return "'" + name + "' is already set above: a key takes one value per table";
    }
    if (has(d, "parsing key-value pair") && has(d, "expected value")) return "no value after '='";
    if (has(d, "parsing key-value pair") && has(d, "expected '='"))
        return "expected '=' after the key (a key with spaces or other characters in it needs quotes)";
    if (has(d, "expected a comment or whitespace"))
        return "more after the value on this line: one key = value per line (a comment starts with #)";
    if (has(d, "could not determine value type") || has(d, "parsing boolean"))
        return "not a value: text needs quotes (\"...\"); numbers, true, false, dates and [arrays] are written bare";
    if (has(d, "parsing array") && (has(d, "expected comma") || has(d, "end-of-file")))
        return "array not closed, or a ',' missing between its values";
    if (has(d, "parsing inline table") && has(d, "dangling comma"))
        return "a ',' before '}': an inline table takes no trailing comma";
    if (has(d, "parsing inline table") && has(d, "expected key or closing '}'"))
        return "inline table not closed on this line: { ... } must fit on one line (use a [table] for more)";
    if (has(d, "parsing root table"))
        return "a line is key = value, a [table], an [[array of tables]] or a # comment";
    return cleaned(d);
}

}  // namespace firelink::site::detail
