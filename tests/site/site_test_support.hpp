// Helpers for the site config tests: load a snippet, get its errors as "file:line:column: key: message" lines.
#pragma once

#include <firelink/site/site_config.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace site_test {

// What every site test writes with: durations (500ms) and error lists (ElementsAre).
using namespace std::chrono_literals;
using ::testing::ElementsAre;

// The smallest valid site: appended after a snippet, so that the snippet's own lines are numbered from 1.
inline const std::string base = R"(
[gateway]
id = "gw-1"

[plugins]
dirs = ["plugins"]
)";

inline std::vector<std::string> errors_of(const std::string &text, const std::string &file = "site.toml") {
    std::vector<std::string> out;
    const auto r = firelink::site::parse_site_config(text, file);
    if (!r)
        for (const auto &e : r.error()) out.push_back(e.str());
    return out;
}

// The errors of a snippet placed before the base site.
inline std::vector<std::string> snippet_errors(const std::string &snippet) { return errors_of(snippet + base); }

// The one error of a snippet; fails the test when there is not exactly one.
inline std::string snippet_error(const std::string &snippet) {
    const auto errors = snippet_errors(snippet);
    EXPECT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
    return errors.empty() ? std::string("(no error)") : errors.front();
}

// A snippet that must load; returns the config (an empty one after a reported failure).
inline firelink::site::site_config loads(const std::string &text, const std::string &file = "site.toml") {
    auto r = firelink::site::parse_site_config(text, file);
    if (!r) {
        std::string all;
        for (const auto &e : r.error()) all += e.str() + "\n";
        ADD_FAILURE() << "expected no errors, got:\n" << all;
        return {};
    }
    return std::move(r).value();
}

inline firelink::site::site_config snippet_loads(const std::string &snippet) { return loads(snippet + base); }

}  // namespace site_test
