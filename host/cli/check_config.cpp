// `firelink-host check-config site.toml`: the file, then its devices against the plugins they name, and each device's
// config with its driver, where `run` would run it.
#include "site_host.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include <boost/asio/io_context.hpp>

#include <firelink/core/device_runtime.hpp>
#include <firelink/ext/transport.h>
#include <firelink/site/suggest.hpp>

#include "linkage_commands.hpp"
#include "plugin_catalog.hpp"
#include "reconfigure.hpp"

namespace firelink::cli {

void print_errors(const std::vector<site::config_error> &errors) {
    for (const auto &e : errors) std::fprintf(stderr, "%s\n", e.str().c_str());
    std::fprintf(stderr, "%zu error(s)\n", errors.size());
}

int check_config(const std::filesystem::path &config) {
    auto loaded = site::load_site_config(config);
    if (!loaded) {
        print_errors(loaded.error());
        return 1;
    }
    const auto &cfg = loaded.value();
    plugin_catalog plugins;
    plugins.configure(cfg);  // a plugin that crashes while loading is refused here as it would be at run time
    plugins.scan(cfg.plugin_dirs);
    // Each device's driver judges its config as `run` would have it created, where `run` runs the plugin (in its
    // runner by default). A runtime of its own, whose io_context never runs: nothing is started.
    boost::asio::io_context io;
    core::device_runtime runtime(io, [](core::accepted_event &&) {},
                                 core::runtime_options{.gateway_id = cfg.gateway_id,
                                                       .watchdog_warn = cfg.watchdog_warn,
                                                       .watchdog_fault = cfg.watchdog_fault,
                                                       .observer = {},
                                                       .admits = {}});
    std::vector<std::string> problems;
    std::map<std::string, int> by_class;
    std::set<std::string> declared;   // every command a driver of this site declares
    bool all_declare = true;          // false: some driver declares none (it may take any name)
    for (const auto &d : cfg.devices) {
        auto resolved = plugins.resolve(d);
        if (!resolved) {
            problems.push_back(d.where.str() + ": device '" + d.id + "': " + resolved.why());
            continue;
        }
        const auto &p = *resolved;
        by_class[d.device_class]++;
        const auto *driver = p->info().find_driver(d.driver);
        all_declare = all_declare && driver->declares_commands;
        for (const auto &c : driver->commands) declared.insert(c.name);
        const bool needs_wire = std::find(driver->required_extensions.begin(), driver->required_extensions.end(),
                                          FL_EXT_TRANSPORT) != driver->required_extensions.end();
        if (needs_wire && d.wire.type == site::wire_config::kind::none) {
            problems.push_back(d.where.str() + ": device '" + d.id + "': driver '" + d.driver +
                               "' needs a wire; give the device a wire");
            continue;
        }
        if (auto refused = try_device(runtime, p, cfg, d)) problems.push_back(refused->str());
    }
    // A name the platform may run that no driver here declares is a typo: it would silently allow nothing.
    if (all_declare)
        for (const auto &name : cfg.control.platform_may)
            if (!declared.count(name) && name != platform_linkage_confirm && name != platform_linkage_reset) {
                std::vector<std::string> names(declared.begin(), declared.end());
                problems.push_back(cfg.file.string() + ": control.platform_may: '" + name +
                                   "' is a command no driver of this site declares" + site::did_you_mean(name, names));
            }
    for (const auto &p : linkage_command_problems(cfg, [&](const site::device_config &d) -> const core::driver_info * {
             auto resolved = plugins.resolve(d);
             return resolved ? (*resolved)->info().find_driver(d.driver) : nullptr;
         }))
        problems.push_back(p.message);
    for (const auto &p : problems) std::fprintf(stderr, "%s\n", p.c_str());
    if (!problems.empty()) {
        std::fprintf(stderr, "%zu error(s)\n", problems.size());
        return 1;
    }
    std::printf("%s: OK: gateway %s, %zu plugin(s), %zu bus(es), %zu listener(s), %zu device(s), %zu linkage rule(s)",
                config.c_str(), cfg.gateway_id.c_str(), plugins.plugins().size(), cfg.buses.size(), cfg.listeners.size(),
                cfg.devices.size(), cfg.linkage.size());
    for (const auto &[cls, n] : by_class) std::printf(", %d %s", n, cls.c_str());
    std::printf("\n");
    return 0;
}

}  // namespace firelink::cli
