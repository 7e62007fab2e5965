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
    // The polled class scenarios' device source: "simulator", "trace FILE (sha256 …)", "device URI".
    std::string device_source = "simulator";
    std::chrono::system_clock::time_point started, ended;
    std::vector<check_record> checks;

    bool any_failure() const;  // failed, crashed or timeout
};

std::string to_json(const run_record &r);
std::string to_junit(const run_record &r);
std::string iso8601(std::chrono::system_clock::time_point t);
std::string sha256_file(const std::string &path);  // lower-case hex; empty when unreadable

}  // namespace firelink::conform
