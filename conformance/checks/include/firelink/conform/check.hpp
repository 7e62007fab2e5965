// The conformance checks: what each one is, which requirements of docs/abi.md it enforces, and how it judges.
// A check's body runs in a child process of the runner (conformance/runner), so it may crash or hang without
// harming the run; the body itself only loads the plugin, drives it, and returns an outcome.
#pragma once

#include <firelink/version.h>
#include "firelink/conform/script.hpp"
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace firelink::conform {

// The suite's own version, written into every report.
inline constexpr std::string_view suite_version = FIRELINK_VERSION_STRING;

// not_exercised: the check ran and found nothing wrong, but the plugin never did what it judges (no alarm before a
// command, no FL_BUSY answered): not a pass, and said so.
enum class status { passed, failed, crashed, timeout, skipped, warning, not_exercised };
std::string_view to_string(status s) noexcept;

// Each check belongs to the lowest level that runs it; a run at a level runs that level's checks and the ones below.
// `soak` is `strict` and the long runs (soak.*).
enum class level { basic = 0, standard = 1, strict = 2, soak = 3 };
std::string_view to_string(level l) noexcept;
bool parse_level(std::string_view s, level &out) noexcept;

// What the runner gives every check.
struct run_options {
    std::filesystem::path plugin;
    std::uint64_t seed = 1;
    level run_level = level::standard;
    std::map<std::string, std::vector<std::uint8_t>> configs;  // driver id -> msgpack config; absent = empty map
    std::chrono::milliseconds callback_bound{100};             // FL-PLUGIN-24
    std::chrono::milliseconds scan_budget{200};                // load + negotiate + descriptor, warning only
    std::filesystem::path sim;  // the class scenarios' device source; empty: firelink-sim next to the running suite
    std::vector<std::filesystem::path> traces;  // --trace: replayed as the polled classes' device source
    std::string device_uri;                     // --device: a live device as that source
    std::filesystem::path device_actions;       // --device-actions: where a live device's actions are written
    std::filesystem::path record_dir;           // --record-traces: each simulator scenario's bytes, as a trace
    std::chrono::seconds soak_duration{600};    // --duration: how long each soak check runs
    std::vector<device_script> scripts;          // --scripts DIR, else PLUGIN.scripts/ beside the plugin
};

// What a check found. Failures outrank warnings; the message keeps the first few of each.
class findings {
public:
    void fail(std::string what);
    void warn(std::string what);
    void skip(std::string why);  // the check does not apply (no driver with a wire, ...)
    void not_exercised(std::string why);  // it ran, but what it judges never happened (why)
    void note(std::string what); // what a passing check measured (latencies); the message when nothing else is
    // Events the plugin's drivers emitted during the check (not the host's own): the runner sums them, and a
    // `standard` run in which no driver emitted anything fails (suite.events).
    void saw_events(std::uint64_t n) noexcept { events_ += n; }
    std::uint64_t driver_events() const noexcept { return events_; }
    bool failed() const noexcept { return !failures_.empty(); }
    status verdict() const noexcept;
    std::string message() const;

private:
    std::vector<std::string> failures_, warnings_, notes_;
    std::string skipped_, unexercised_;
    std::uint64_t events_ = 0;
};

struct check {
    std::string id;                         // stable, e.g. "device.misuse"; --only/--skip match it
    std::vector<std::string> requirements;  // FL-PLUGIN-n ids of docs/abi.md
    level min_level = level::standard;
    std::string summary;                    // one line for --list and the guide
    std::function<void(const run_options &, findings &)> run;
    // A class scenario: the class whose driver it needs (the runner says up front which of them a plugin without a
    // driver of the class cannot have judged). Empty: any plugin.
    std::string device_class = {};
};

// Every check, in the order the runner runs them.
const std::vector<check> &all_checks();

// What the runner learns about the plugin before the checks run: the first check, `library.load`, gathers it.
struct plugin_facts {
    bool loaded = false;
    std::string refusal;  // the loader's key when not loaded
    std::string id, name, vendor, version, license;
    std::uint32_t built_abi = 0, agreed_abi = 0;
    std::vector<std::string> drivers;  // "id class"
    std::string serialize() const;
    static plugin_facts parse(std::string_view text);
};

// Runs the load check in the calling process: fills facts and findings.
void probe(const run_options &options, plugin_facts &facts, findings &f);

}  // namespace firelink::conform
