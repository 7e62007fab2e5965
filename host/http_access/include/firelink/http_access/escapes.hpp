// %-escapes in a request target ("%2F" and friends).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace firelink::http_access {

// A path segment: "%2F" and friends decoded, '+' left as it is. nullopt when an escape is malformed.
std::optional<std::string> percent_decode(std::string_view in);
// A query string's key or value (application/x-www-form-urlencoded): the same, and '+' is a space.
std::optional<std::string> form_decode(std::string_view in);

}  // namespace firelink::http_access
