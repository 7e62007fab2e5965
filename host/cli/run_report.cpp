#include "run_report.hpp"

#include <cstdio>

namespace firelink::cli {

namespace {
unsigned long long ull(std::uint64_t v) { return static_cast<unsigned long long>(v); }
}  // namespace

void print_device_summary(const std::string &gateway, const core::device_runtime &runtime,
                          const std::vector<std::string> &ids) {
    std::fprintf(stderr, "summary: gateway %s, %zu device(s) ran\n", gateway.c_str(), ids.size());
    for (const auto &id : ids) {
        auto st = runtime.status(id);
        if (!st) continue;
        std::fprintf(stderr, "  %s (%s): %llu event(s) accepted, %llu refused, %llu slow callback(s), state %s\n",
                     id.c_str(), st->device_class.c_str(), ull(st->accepted), ull(st->refused),
                     ull(st->slow_callbacks), std::string(core::to_string(st->state)).c_str());
    }
}

void print_queue_summary(const uplink::durable_queue &queue) {
    const auto q = queue.stats();
    std::fprintf(stderr, "  uplink: epoch %s; queued alarm %llu, event %llu, telemetry %llu; quarantined %llu\n",
                 q.epoch.c_str(), ull(q.lanes[0].depth), ull(q.lanes[1].depth), ull(q.lanes[2].depth),
                 ull(q.quarantine_total));
}

std::vector<std::string> unmet_expectations(std::vector<std::string> not_started,
                                            const std::map<std::string, std::uint64_t> &emitted,
                                            const std::vector<std::string> &ids, std::uint64_t expect_events) {
    auto failures = std::move(not_started);
    if (expect_events == 0) return failures;
    for (const auto &id : ids) {
        const auto it = emitted.find(id);
        const std::uint64_t n = it == emitted.end() ? 0 : it->second;
        if (n < expect_events)
            failures.push_back("device " + id + " emitted " + std::to_string(n) + " event(s), expected at least " +
                               std::to_string(expect_events));
    }
    return failures;
}

int report_expectations(const std::vector<std::string> &failures) {
    if (failures.empty()) {
        std::fprintf(stderr, "expectations: met\n");
        return 0;
    }
    std::fprintf(stderr, "expectations: NOT met\n");
    for (const auto &f : failures) std::fprintf(stderr, "  - %s\n", f.c_str());
    return 1;
}

}  // namespace firelink::cli
