// Internal: the groups of checks, and what they share.
#pragma once

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

}  // namespace firelink::conform
