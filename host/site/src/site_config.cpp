#include <firelink/site/site_config.hpp>

#include "sections.hpp"
#include "toml_errors.hpp"

#include <fstream>
#include <sstream>
#include <system_error>

namespace firelink::site {

namespace fs = std::filesystem;

std::string source_position::str() const {
    return line > 0 ? file + ":" + std::to_string(line) + ":" + std::to_string(column) : file;
}

std::string config_error::str() const {
    std::string out = where.str() + ": ";
    if (!key.empty()) out += key + ": ";
    return out + message;
}

config_error driver_config_error(const device_config &d, std::string message) {
    config_error e{d.config_where, d.path + ".config", std::move(message)};
    constexpr std::string_view named = "config key '";
    const auto at = e.message.find(named);
    if (at == std::string::npos) return e;
    const auto from = at + named.size();
    const auto to = e.message.find('\'', from);
    if (to == std::string::npos) return e;
    // A nested key ("registers.gas") is pointed at by its top-level table, the one whose position is kept.
    std::string key = e.message.substr(from, to - from);
    if (!d.config_keys.count(key)) key = key.substr(0, key.find('.'));
    if (auto it = d.config_keys.find(key); it != d.config_keys.end()) {
        e.where = it->second;
        e.key += "." + key;
    }
    return e;
}

const std::vector<std::string> &sectors() {
    static const std::vector<std::string> all = {"religious_site", "elderly_care", "hospital",   "school",
                                                 "rental_housing", "high_rise",    "enterprise", "residential",
                                                 "commercial",     "public_venue", "other"};
    return all;
}

const bus_config *site_config::find_bus(const std::string &id) const {
    for (const auto &b : buses)
        if (b.id == id) return &b;
    return nullptr;
}

const listener_config *site_config::find_listener(const std::string &id) const {
    for (const auto &l : listeners)
        if (l.id == id) return &l;
    return nullptr;
}

const device_config *site_config::find_device(const std::string &id) const {
    for (const auto &d : devices)
        if (d.id == id) return &d;
    return nullptr;
}

std::chrono::milliseconds site_config::heartbeat_of(const device_config &d) const {
    using std::chrono::seconds;
    if (d.heartbeat) return *d.heartbeat;
    if (const auto it = liveness.find(d.device_class); it != liveness.end()) return it->second;
    if (const auto it = liveness.find("vendor"); it != liveness.end()) return it->second;
    // A site_config not made by the loader: the loader's defaults.
    if (d.device_class == "fire_panel") return seconds(180);
    if (d.device_class.rfind("vendor:", 0) == 0 || d.device_class.empty()) return seconds(120);
    return seconds(60);
}

device_definition definition_of(const site_config &cfg, const device_config &d) {
    device_definition def{d.plugin, d.driver, d.device_class, d.enabled, d.wire, d.driver_config,
                          cfg.heartbeat_of(d), d.meta, std::nullopt, std::nullopt};
    if (d.wire.type == wire_config::kind::bus)
        if (const auto *b = cfg.find_bus(d.wire.bus)) def.bus = *b;
    if (d.wire.type == wire_config::kind::listener)
        if (const auto *l = cfg.find_listener(d.wire.listener)) def.listener = *l;
    return def;
}

std::vector<signing::public_key> signing_config::keys() const {
    std::vector<signing::public_key> out;
    for (const auto &t : trusted) out.push_back(t.key);
    return out;
}

bool isolation_config::in_process(const std::string &plugin_id) const {
    const auto it = by_plugin.find(plugin_id);
    return (it != by_plugin.end() ? it->second : default_mode) == "in_process";
}

namespace detail {

fs::path load_context::resolve(const std::string &path) const {
    const fs::path p(path);
    return (p.is_absolute() ? p : folder / p).lexically_normal();
}

}  // namespace detail

load_result parse_site_config(const std::string &toml_text, const fs::path &file) {
    detail::load_context cx{detail::diagnostics(file.string()), {}};
    std::error_code ec;
    fs::path absolute = fs::absolute(file, ec);
    if (ec) absolute = file;
    absolute = absolute.lexically_normal();
    cx.folder = absolute.parent_path();

    toml::table root;
    try {
        root = toml::parse(std::string_view(toml_text), std::string_view(cx.diag.file()));
    } catch (const toml::parse_error &e) {
        cx.diag.error(e.source(), "", detail::plain_toml_error(e.description(), toml_text, e.source().begin));
        return cx.diag.take();
    }

    site_config out;
    out.file = absolute;
    // Only reports unknown top-level keys; each section reads its own table.
    detail::table_reader top(
        root, "", cx.diag,
        {"gateway", "plugins", "admin", "control", "sink", "watchdog", "liveness", "uplink", "runner", "bus",
         "listener", "device", "linkage"});
    detail::read_settings(root, cx, out);
    detail::read_wiring(root, cx, out);
    detail::read_linkage(root, cx, out);
    if (!cx.diag.empty()) return cx.diag.take();
    return out;
}

load_result load_site_config(const fs::path &file) {
    const auto fail = [&](const std::string &why) -> load_result {
        return std::vector<config_error>{config_error{source_position{file.string(), 0, 0}, "", why}};
    };
    std::error_code ec;
    if (fs::is_directory(file, ec)) return fail("cannot read the site file: it is a directory");
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail("cannot read the site file: " + std::error_code(errno, std::generic_category()).message());
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return fail("cannot read the site file: read error");
    return parse_site_config(text.str(), file);
}

}  // namespace firelink::site
