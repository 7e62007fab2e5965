// What `firelink-host run` says on stderr when it stops, and for a timed run (--for, the vendors' and the tests'
// smoke run) whether it did what it was told: every device started, each emitted at least --expect-events.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <firelink/core/device_runtime.hpp>
#include <firelink/uplink/durable_queue.hpp>

namespace firelink::cli {

// "summary: gateway G, N device(s) ran" and a line per device: its counters and last state.
void print_device_summary(const std::string &gateway, const core::device_runtime &runtime,
                          const std::vector<std::string> &ids);
// "  uplink: epoch E; queued alarm A, event B, telemetry C; quarantined Q".
void print_queue_summary(const uplink::durable_queue &queue);

// The expectations not met: `not_started` (the devices that did not start, with why), and each device of `ids`
// that emitted fewer than `expect_events` (0: no such expectation).
std::vector<std::string> unmet_expectations(std::vector<std::string> not_started,
                                            const std::map<std::string, std::uint64_t> &emitted,
                                            const std::vector<std::string> &ids, std::uint64_t expect_events);
// Prints "expectations: met" or "expectations: NOT met" with each failure; the process's exit status (0 or 1).
int report_expectations(const std::vector<std::string> &failures);

}  // namespace firelink::cli
