// Where a value of the site file is, and an error about it ("site.toml:12:5: device[2].wire.unit: ...").
#pragma once

#include <string>

namespace firelink::site {

// Where a value came from, for error messages.
struct source_position {
    std::string file;
    int line = 0;
    int column = 0;

    std::string str() const;  // "file:line:column" ("file" alone when there is no line)
};

struct config_error {
    source_position where;
    std::string key;      // dotted path: "device[2].wire.unit", "bus[0].baud", "gateway.id"
    std::string message;  // what was expected / what is wrong
    // "file:line:column: key: message". A TOML syntax error has no key ("file:line:column: message"); a file that
    // cannot be read has neither position nor key ("file: message").
    std::string str() const;
};

}  // namespace firelink::site
