// Reading a parsed TOML document against the site schema: where each error is, what each value is called, and a
// table reader that reports unknown keys, wrong types and out-of-range values, and keeps going.
#pragma once

#include <firelink/site/site_config.hpp>

#include <toml++/toml.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace firelink::site::detail {

// Every error of one load, in the order found.
class diagnostics {
public:
    explicit diagnostics(std::string file) : file_(std::move(file)) {}

    void error(const toml::source_region &at, std::string key, std::string message);
    source_position where(const toml::source_region &at) const;
    // "site.toml:12:1", for messages that point at a second place.
    std::string at_text(const source_position &p) const;

    bool empty() const { return errors_.empty(); }
    const std::string &file() const { return file_; }
    std::vector<config_error> take();

private:
    std::string file_;
    std::vector<config_error> errors_;
};

// "a string", "an integer", ... for "got ..." in messages.
std::string type_phrase(const toml::node &n);
// A string value as it appears in a message: in double quotes, with quotes, backslashes and controls escaped.
std::string in_quotes(std::string_view s);
// "device[2]" + "wire" -> "device[2].wire"; "" + "gateway" -> "gateway".
std::string key_path(std::string_view parent, std::string_view key);
// "a, b, c" (for "expected one of: ...").
std::string join(std::initializer_list<std::string_view> words, std::string_view separator = ", ");

enum class need { optional, required };

// One table read against its schema. Keys outside `keys` are reported when the reader is made; each read reports a
// missing required key (at the table), a wrong type or a bad value (at the value), and returns nullopt for them.
class table_reader {
public:
    table_reader(const toml::table &table, std::string path, diagnostics &diag,
                 std::initializer_list<std::string_view> keys);

    const toml::node *find(std::string_view key) const { return table_.get(key); }
    bool has(std::string_view key) const { return find(key) != nullptr; }
    const toml::table &table() const { return table_; }
    const std::string &path() const { return path_; }
    std::string path(std::string_view key) const { return key_path(path_, key); }
    diagnostics &diag() const { return diag_; }

    std::optional<std::string> string(std::string_view key, need n);
    // A string that must not be empty (paths, URLs).
    std::optional<std::string> nonempty_string(std::string_view key, need n);
    std::optional<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max, need n);
    std::optional<bool> boolean(std::string_view key, need n);
    // An array of non-empty strings; each bad element is reported at itself.
    std::optional<std::vector<std::string>> strings(std::string_view key, need n);
    // A string that `valid` accepts; another is an error "expected <rule>, got <the string in quotes>".
    std::optional<std::string> matching(std::string_view key, bool (*valid)(std::string_view), std::string_view rule,
                                        need n);
    // A string that must be one of `allowed`.
    std::optional<std::string> choice(std::string_view key, std::initializer_list<std::string_view> allowed, need n);
    // A sub-table; a value of another type is reported.
    const toml::table *subtable(std::string_view key, need n);

    // An error about `key`: at its value when present, else at this table.
    void error(std::string_view key, std::string message);
    void missing(std::string_view key, std::string_view expected);
    void wrong_type(std::string_view key, std::string_view expected);
    source_position where(std::string_view key) const;

private:
    // The value at `key` as a T (std::string, std::int64_t, bool: its toml::value<T>; toml::table: the table), or
    // null: a missing key is reported when required, a value of another type always, both as not `expected`.
    template <class T>
    auto typed(std::string_view key, need n, std::string_view expected);

    const toml::table &table_;
    std::string path_;
    diagnostics &diag_;
};

// Calls `each` for every table of the top-level array of tables `key` ([[key]]) of `root`, with its dotted name
// "key[i]" (prefixed by `parent.` when given: [[linkage.action]] is "linkage[0].action[1]").
void for_each_table(const toml::table &root, std::string_view key, diagnostics &diag,
                    const std::function<void(const toml::table &, const std::string &)> &each,
                    std::string_view parent = {});

}  // namespace firelink::site::detail
