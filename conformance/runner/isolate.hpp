// Runs one piece of work in a child process (fork, a pipe for its result, a timeout), the libuv test runner's way:
// a crash is reported with its signal, a hang as a timeout, and the caller's process never loads the plugin.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "firelink/conform/check.hpp"

namespace firelink::conform {

struct isolated_result {
    status result = status::passed;
    std::string message;  // the child's message, or what happened to it
    std::string payload;  // extra text the child wrote after its message
    std::uint64_t driver_events = 0;  // events the plugin's drivers emitted during the work (findings::saw_events)
    std::chrono::milliseconds duration{0};
};

// `work` runs in the child and fills findings and an optional payload. The child's stdout and stderr go to
// /dev/null unless `keep_output`.
isolated_result run_isolated(const std::function<void(findings &, std::string &payload)> &work,
                             std::chrono::milliseconds timeout, bool keep_output);

}  // namespace firelink::conform
