// Internal: the groups of checks, and what they share.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "firelink/conform/check.hpp"
#include "firelink/core/plugin_loader.hpp"
#include "test_host.hpp"

namespace firelink::conform {

void add_library_checks(std::vector<check> &out);
void add_device_checks(std::vector<check> &out);
void add_scenario_checks(std::vector<check> &out);  // scenario_checks.cpp: the class scenarios
void add_command_checks(std::vector<check> &out);   // command_checks.cpp: declared commands (FL-PLUGIN-36)
void add_script_checks(std::vector<check> &out);    // script_checks.cpp: the vendor's device scripts, played and mutated

// The plugin loaded by the host's loader; NULL (and a failure recorded) when it does not load.
std::unique_ptr<core::plugin> load_plugin(const run_options &o, findings &f);

// The raw entry of a library opened with dlopen(RTLD_NOW | RTLD_LOCAL) and nothing called yet, for the checks
// that must make the first call themselves (negotiation). The library stays loaded for the process.
const fl_plugin_entry *open_raw(const run_options &o, findings &f);

// The config a driver is created with: --config DRIVER=FILE, or the empty map.
const std::vector<std::uint8_t> &config_for(const run_options &o, const std::string &driver_id);

std::string status_name(fl_status st);
std::string version_name(std::uint32_t v);

// A seeded generator for one check: the same seed and check give the same bytes.
std::mt19937_64 rng_for(const run_options &o, std::string_view check_id);
std::vector<std::uint8_t> random_bytes(std::mt19937_64 &rng, std::size_t n);

// A loaded, initialised plugin for one check; each driver whose config is refused is skipped with a note.
struct session {
    std::unique_ptr<core::plugin> plugin;
    plugin_host host;
    std::vector<const core::driver_info *> drivers;  // the ones that take their config

    session(const run_options &o, findings &f);
    ~session() {
        if (plugin) plugin->deinit();
    }
    explicit operator bool() const { return plugin && !drivers.empty(); }
    const fl_plugin_entry &entry() const { return plugin->entry(); }
};

// A command map {"id", "name", "args": {}}; with `by_operator`, args {"operator": "firelink-conform"}.
std::vector<std::uint8_t> command_bytes(const std::string &id, const std::string &name, bool by_operator = false);
std::vector<std::uint8_t> command_bytes(const std::string &id, const std::string &name,
                                        const std::map<std::string, std::string> &args);
void report_host(const std::string &drv, device_host &h, findings &f);
// Feeds `bytes` in random chunks (a third of them a single byte), with the link state flapping now and then.
void feed_chunked(instance &in, const std::vector<std::uint8_t> &bytes, std::mt19937_64 &rng, bool flap);
// Starts `in` and delivers its link's opening; false, and a finding "driver 'ID': start<where> failed", when start
// fails (`where`: e.g. " on a shared bus").
bool start_open(instance &in, findings &f, const std::string &where = "");
// The standard workload: start, open the link, tick, echo the device's own writes back with noise, a command it
// does not know, stop, restart, stop. Returns false when start failed.
bool exercise(instance &in, std::mt19937_64 &rng, findings &f, int ticks = 8);

void add_host_fault_checks(std::vector<check> &out);
void add_soak_checks(std::vector<check> &out);  // soak_checks.cpp: the workload for --duration  // host_fault_checks.cpp: FL-PLUGIN-15, 25, 26, 28, 34


}  // namespace firelink::conform
