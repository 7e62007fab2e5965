// The rules of a driver's declared commands (FL-PLUGIN-36), apart from the loader: the host holds what a runner sends
// to them too (plugin_info_codec), and the channel's fuzz targets link this file without the loader's Boost.DLL.
#include <algorithm>
#include <cstdint>

#include <firelink/text.hpp>

#include "firelink/core/plugin_loader.hpp"

namespace firelink::core {

namespace {

// Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), with no C0 control character or
// DEL: a description is printed on one line of a listing, and a newline in it could forge another line.
bool is_printable_utf8(std::string_view s) {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t n = text::utf8_sequence(p + i, s.size() - i);
        if (n == 0 || (n == 1 && (p[i] < 0x20 || p[i] == 0x7f))) return false;
        i += n;
    }
    return true;
}

}  // namespace

bool is_command_name(std::string_view name) {
    if (name.empty() || name.size() > max_command_name) return false;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    });
}

bool is_command_description(std::string_view d) {
    return d.size() <= max_command_description && is_printable_utf8(d);
}

std::string command_decls_problem(const std::vector<command_decl> &commands) {
    if (commands.size() > FL_MAX_COMMANDS)
        return "declares " + std::to_string(commands.size()) + " commands, more than " +
               std::to_string(FL_MAX_COMMANDS);
    for (std::size_t k = 0; k < commands.size(); ++k) {
        const auto &c = commands[k];
        if (!is_command_name(c.name)) return "command #" + std::to_string(k) + ": bad command name";
        if (!is_command_description(c.description)) return "command '" + c.name + "': bad description";
        if (c.restores && !c.actuates) return "command '" + c.name + "': restores without actuating";
        for (std::size_t j = 0; j < k; ++j)
            if (commands[j].name == c.name) return "duplicate command name '" + c.name + "'";
    }
    return {};
}

}  // namespace firelink::core
