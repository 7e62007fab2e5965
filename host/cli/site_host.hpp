// firelink-host's daemon: runs one site from its configuration. Loads the plugins, builds the wires (serial ports,
// RS-485 buses, TCP clients, listeners, UDP), creates and starts every device, sends accepted events to the
// pipeline's sinks, serves the admin endpoint, reloads on SIGHUP or POST /api/reload, and stops on SIGTERM/SIGINT.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <firelink/site/site_config.hpp>

namespace firelink::cli {

struct run_options {
    std::filesystem::path config;
    std::optional<std::string> admin_listen;  // overrides [admin] listen
    double seconds = 0;                        // 0: until a signal
    unsigned expect_events = 0;                // with seconds: fail unless every device emitted this many
};

// `firelink-host run --config site.toml`. Returns the exit code.
int run_site(const run_options &options);

// `firelink-host check-config site.toml`: the file, then its devices against the plugins they name, and each device's
// config with its driver (created and destroyed at once, where `run` would run it; nothing starts).
int check_config(const std::filesystem::path &config);

// Each error of a site file on its own line ("site.toml:12:5: key: message"), then how many.
void print_errors(const std::vector<site::config_error> &errors);

}  // namespace firelink::cli
