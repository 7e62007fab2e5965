#include "reader.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>

namespace firelink::site::detail {

void diagnostics::error(const toml::source_region &at, std::string key, std::string message) {
    errors_.push_back(config_error{where(at), std::move(key), std::move(message)});
}

source_position diagnostics::where(const toml::source_region &at) const {
    return source_position{file_, static_cast<int>(at.begin.line), static_cast<int>(at.begin.column)};
}

std::string diagnostics::at_text(const source_position &p) const {
    return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}

std::vector<config_error> diagnostics::take() {
    // File order reads best; errors found at one place keep the order they were found in.
    std::stable_sort(errors_.begin(), errors_.end(), [](const config_error &a, const config_error &b) {
        return a.where.line != b.where.line ? a.where.line < b.where.line : a.where.column < b.where.column;
    });
    return std::move(errors_);
}

std::string type_phrase(const toml::node &n) {
    switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
    }
}

std::string in_quotes(std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

std::string key_path(std::string_view parent, std::string_view key) {
    if (parent.empty()) return std::string(key);
    std::string out(parent);
    out += '.';
    out += key;
    return out;
}

std::string join(std::initializer_list<std::string_view> words, std::string_view separator) {
    std::string out;
    for (const auto w : words) {
        if (!out.empty()) out += separator;
        out += w;
    }
    return out;
}

table_reader::table_reader(const toml::table &table, std::string path, diagnostics &diag,
                           std::initializer_list<std::string_view> keys)
    : table_(table), path_(std::move(path)), diag_(diag) {
    for (const auto &[k, v] : table_) {
        if (std::find(keys.begin(), keys.end(), k.str()) != keys.end()) continue;
        diag_.error(k.source(), key_path(path_, k.str()), "unknown key (expected one of: " + join(keys) + ")");
    }
}

source_position table_reader::where(std::string_view key) const {
    const toml::node *n = find(key);
    return diag_.where(n ? n->source() : table_.source());
}

void table_reader::error(std::string_view key, std::string message) {
    const toml::node *n = find(key);
    diag_.error(n ? n->source() : table_.source(), path(key), std::move(message));
}

void table_reader::missing(std::string_view key, std::string_view expected) {
    diag_.error(table_.source(), path(key), "missing (expected " + std::string(expected) + ")");
}

void table_reader::wrong_type(std::string_view key, std::string_view expected) {
    error(key, "expected " + std::string(expected) + ", got " + type_phrase(*find(key)));
}

template <class T>
auto table_reader::typed(std::string_view key, need n, std::string_view expected) {
    const toml::node *v = find(key);
    if (!v) {
        if (n == need::required) missing(key, expected);
        return decltype(v->as<T>()){};
    }
    const auto value = v->as<T>();
    if (!value) wrong_type(key, expected);
    return value;
}

std::optional<std::string> table_reader::string(std::string_view key, need n) {
    const auto *v = typed<std::string>(key, n, "a string");
    if (!v) return std::nullopt;
    return v->get();
}

std::optional<std::string> table_reader::matching(std::string_view key, bool (*valid)(std::string_view),
                                                  std::string_view rule, need n) {
    auto s = string(key, n);
    if (s && !valid(*s)) {
        error(key, "expected " + std::string(rule) + ", got " + in_quotes(*s));
        return std::nullopt;
    }
    return s;
}

std::optional<std::string> table_reader::nonempty_string(std::string_view key, need n) {
    const auto *v = typed<std::string>(key, n, "a non-empty string");
    if (!v) return std::nullopt;
    if (v->get().empty()) {
        error(key, "expected a non-empty string, got \"\"");
        return std::nullopt;
    }
    return v->get();
}

std::optional<std::int64_t> table_reader::integer(std::string_view key, std::int64_t min, std::int64_t max, need n) {
    const std::string expected = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
    const auto *v = typed<std::int64_t>(key, n, expected);
    if (!v) return std::nullopt;
    const std::int64_t i = v->get();
    if (i < min || i > max) {
        error(key, "expected " + expected + ", got " + std::to_string(i));
        return std::nullopt;
    }
    return i;
}

std::optional<bool> table_reader::boolean(std::string_view key, need n) {
    const auto *v = typed<bool>(key, n, "a boolean (true or false)");
    if (!v) return std::nullopt;
    return v->get();
}

std::optional<std::string> table_reader::choice(std::string_view key, std::initializer_list<std::string_view> allowed,
                                                need n) {
    std::string expected = "one of ";
    for (auto it = allowed.begin(); it != allowed.end(); ++it) {
        if (it != allowed.begin()) expected += ", ";
        expected += in_quotes(*it);
    }
    const auto *v = typed<std::string>(key, n, expected);
    if (!v) return std::nullopt;
    const std::string &s = v->get();
    if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
        error(key, "expected " + expected + ", got " + in_quotes(s));
        return std::nullopt;
    }
    return s;
}

const toml::table *table_reader::subtable(std::string_view key, need n) {
    return typed<toml::table>(key, n, "a table");
}

std::optional<std::vector<std::string>> table_reader::strings(std::string_view key, need n) {
    const toml::node *v = find(key);
    if (!v) {
        if (n == need::required) missing(key, "an array of strings");
        return std::nullopt;
    }
    const auto *a = v->as_array();
    if (!a) {
        wrong_type(key, "an array of strings");
        return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (std::size_t i = 0; i < a->size(); ++i) {
        const toml::node &e = (*a)[i];
        if (const auto *s = e.as_string(); s && !s->get().empty()) {
            out.push_back(s->get());
        } else {
            diag_.error(e.source(), path(key) + "[" + std::to_string(i) + "]",
                        "expected a non-empty string, got " + (e.is_string() ? std::string("\"\"") : type_phrase(e)));
            ok = false;
        }
    }
    if (!ok) return std::nullopt;
    return out;
}

// Calls `each` for every table of the top-level array of tables `key` ([[key]]), with its dotted name "key[i]".
void for_each_table(const toml::table &root, std::string_view key, diagnostics &diag,
                    const std::function<void(const toml::table &, const std::string &)> &each,
                    std::string_view parent) {
    const std::string name = key_path(parent, key);
    const toml::node *n = root.get(key);
    if (!n) return;
    if (!n->is_array()) {
        diag.error(n->source(), name, "expected an array of tables ([[" + name + "]]), got " + type_phrase(*n));
        return;
    }
    const toml::array &a = *n->as_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
        const std::string path = name + "[" + std::to_string(i) + "]";
        if (a[i].is_table())
            each(*a[i].as_table(), path);
        else
            diag.error(a[i].source(), path, "expected a table, got " + type_phrase(a[i]));
    }
}

}  // namespace firelink::site::detail
