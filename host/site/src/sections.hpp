// The parts of a site file, each read by its own function into one site_config.
#pragma once

#include "reader.hpp"

#include <filesystem>

namespace firelink::site::detail {

struct load_context {
    diagnostics diag;
    std::filesystem::path folder;  // the config file's folder, absolute: relative paths resolve against it

    std::filesystem::path resolve(const std::string &path) const;
};

// [gateway], [plugins], [admin], [sink], [watchdog], [liveness], [uplink], [runner].
void read_settings(const toml::table &root, load_context &cx, site_config &out);

// [[bus]], [[listener]], [[device]], and the references between them.
void read_wiring(const toml::table &root, load_context &cx, site_config &out);

// [[linkage]], against the devices read before it.
void read_linkage(const toml::table &root, load_context &cx, site_config &out);

}  // namespace firelink::site::detail
