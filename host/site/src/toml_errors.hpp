// toml++'s syntax errors in plain words. Its messages name the parser's state ("Error while parsing string:
// unescaped control characters other than TAB (U+0009) are explicitly prohibited"), which is true but does not tell
// an integrator that the string lacks its closing quote. The position (file:line:column) stays toml++'s own.
#pragma once

#include <string>
#include <string_view>

#include <toml++/toml.h>

namespace firelink::site::detail {

// The message for a syntax error toml++ reported at `at` in `text`: a plain one for the mistakes people make, else
// toml++'s description with its "Error while parsing" prefix shortened and control characters made visible.
std::string plain_toml_error(std::string_view description, std::string_view text, const toml::source_position &at);

}  // namespace firelink::site::detail
