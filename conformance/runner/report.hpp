// The record of one run, and its JSON and JUnit renderings (docs/certifiers-guide.md describes both).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "firelink/conform/check.hpp"

namespace firelink::conform {

struct check_record {
    std::string id;
    std::vector<std::string> requirements;
    status result = status::passed;
    std::string message;
    std::chrono::milliseconds duration{0};
    std::string reproduce;  // the one-line command that reruns it, for failed, crashed and timeout
};

struct run_record {
    std::string plugin_path, plugin_file, plugin_sha256;
    plugin_facts facts;
    level run_level = level::standard;
    std::uint64_t seed = 0;
    std::string only, skip;
    std::string host_machine;  // uname: sysname nodename release machine
    std::string glibc;         // the C library the suite runs on
    std::string command_line;  // as given, each argument quoted for a shell
    std::string suite_sha256;  // of this firelink-conform
    std::string sim_path, sim_sha256;  // the simulator the class scenarios use, when they use one
    struct config_file {
        std::string driver, file, sha256;
    };
    std::vector<config_file> configs;  // --config DRIVER=FILE
    struct script_file {
        std::string file, sha256, driver, name;
    };
    std::vector<script_file> scripts;  // the device scripts played (--scripts, or PLUGIN.scripts/)
    // What this run loosened against the suite's defaults (--callback-bound, --timeout, --only, --skip, a trace or a
    // live device as the device source): shown first, in the console and in the report.
    std::vector<std::string> leniency;
    // The polled class scenarios' device source: "simulator", "trace FILE (sha256 …)", "device URI".
    std::string device_source = "simulator";
    std::chrono::system_clock::time_point started, ended;
    std::vector<check_record> checks;

    bool any_failure() const;  // failed, crashed or timeout
};

// Each FL-PLUGIN requirement of docs/abi.md with the checks that cite it and their verdict: "failed", "warning",
// "passed", or "not checked" (no check cites it, or every one that does was skipped).
struct requirement_verdict {
    std::string id, verdict;
    std::vector<std::string> checks;
};
std::vector<requirement_verdict> requirement_verdicts(const run_record &r);

std::string to_json(const run_record &r);
std::string to_junit(const run_record &r);
std::string iso8601(std::chrono::system_clock::time_point t);
std::string sha256_file(const std::string &path);  // lower-case hex; empty when unreadable

}  // namespace firelink::conform
