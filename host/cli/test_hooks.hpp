// POST /api/test/{name}, with FIRELINK_TEST_HOOKS=1 only (the host warns at start): what a test needs to make
// happen inside a running host that no real input can.
#pragma once

#include <functional>
#include <string>
#include <utility>

namespace firelink::cli {

struct test_hook_targets {
    std::function<void(std::function<void()>)> post_control;  // runs a job on the control thread
    std::function<void(std::function<void()>)> post_devices;  // runs a job on one of the devices' threads
    unsigned device_threads = 1;
};

// "wedge" {"loop": "control" | "devices", "seconds": N} blocks that event loop for N seconds (every thread of it),
// as a driver stuck in a call or a deadlock would, so a test can see systemd's watchdog pings stop. Answers 202
// once the loop is blocked; 404 for another name, 400 for bad arguments, 504 when the loop never picks it up.
std::pair<unsigned, std::string> run_test_hook(const std::string &name, const std::string &body,
                                               const test_hook_targets &targets);

}  // namespace firelink::cli
