// The host's Prometheus metrics (docs: the integrator's metrics list), on a prometheus::Registry the admin endpoint
// serialises at GET /metrics.
//
//     auto metrics = std::make_shared<firelink::admin::host_metrics>(FIRELINK_VERSION_STRING);
//     metrics->event_accepted("gas_shutoff_valve", "alarm");
//     metrics->device_state("valve-3", "offline");
//     std::string text = metrics->serialize();   // Prometheus text exposition format 0.0.4
//
// Threads: every member function may be called from any thread at once. An event costs one mutex-guarded map lookup
// and an atomic add: each label set's Counter/Gauge is made once (Family::Add) and its reference kept.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

#include <firelink/version.h>  // FIRELINK_VERSION_STRING, the version the host reports

namespace prometheus {
class Registry;
class Counter;
class Gauge;
template <typename T> class Family;
}  // namespace prometheus

namespace firelink::admin {

// The states firelink_device_state reports, in the order they are exposed.
inline constexpr std::array<std::string_view, 6> device_states{"created", "started", "stopped", "offline", "faulted",
                                                                "down"};

// The results firelink_commands_total counts.
// "pending": the device neither took nor refused the command in time (HTTP 504); its driver's result follows as an
// event, so it is neither a refusal nor a failure of the host.
inline constexpr std::array<std::string_view, 4> command_results{"accepted", "pending", "refused", "failed"};

// The firelink_commands_total result for an HTTP status of POST /api/devices/{id}/command.
constexpr std::string_view command_result_of(unsigned http_status) {
    if (http_status == 202) return "accepted";
    if (http_status == 504) return "pending";
    return http_status < 500 ? "refused" : "failed";
}

// What the metrics hold about one device, for /api/devices.
struct device_metrics {
    std::string state;          // one of device_states; empty before the first device_state()
    double last_seen = 0;       // unix seconds; 0 = never
    double events_refused = 0;
    double transport_errors = 0;
    double callback_overruns = 0;
};

// Series a component counts by itself (the uplink's queue, the plugins' runners, the control plane), read from its
// snapshot at scrape time and written by prometheus-cpp with the registry's, so that a label value (a plugin id, a
// reason) is escaped like every other series'.
class scraped_series {
public:
    using labels = std::vector<std::pair<std::string, std::string>>;
    // Starts a family; the values that follow belong to it.
    scraped_series &family(std::string name, prometheus::MetricType type, std::string help);
    scraped_series &value(double v, const labels &l = {});
    const std::vector<prometheus::MetricFamily> &families() const noexcept { return families_; }

private:
    std::vector<prometheus::MetricFamily> families_;
};

class host_metrics {
public:
    // Registers the host's metric families on `registry` (a new one when null) and sets firelink_build_info.
    explicit host_metrics(std::string_view version, std::shared_ptr<prometheus::Registry> registry = nullptr);
    ~host_metrics();
    host_metrics(const host_metrics &) = delete;
    host_metrics &operator=(const host_metrics &) = delete;

    // firelink_events_total{device_class, kind}: an event the host accepted at the boundary.
    void event_accepted(std::string_view device_class, std::string_view kind);
    // firelink_events_refused_total{device}: an event refused at the boundary.
    void event_refused(std::string_view device);
    // firelink_transport_errors_total{device}: errors on the device's wire (timeouts, disconnects, bad frames).
    void transport_error(std::string_view device, std::uint64_t n = 1);
    // firelink_callback_overruns_total{device}: a callback into the driver ran past the watchdog's bound.
    void callback_overrun(std::string_view device);
    // firelink_device_state{device, state}: 1 for `state`, 0 for the other device_states.
    // Returns false, changing nothing, when `state` is not one of device_states.
    bool device_state(std::string_view device, std::string_view state);
    // firelink_device_last_seen_seconds{device}: when the device was last heard from, in unix seconds.
    void device_seen(std::string_view device, double unix_seconds);
    // firelink_commands_total{result}. Returns false, changing nothing, when `result` is not one of command_results.
    bool command(std::string_view result);
    // firelink_admin_refused_total{reason}: a request the admin endpoint refused before reading its body. Returns
    // false, changing nothing, when `reason` is not one of refusal_reasons (admin_server.hpp).
    bool admin_refused(std::string_view reason);

    // Drops every series labelled with `device` (after a reload removed it). Its next event starts it again at 0.
    void remove_device(std::string_view device);

    // The values held for `device`, or nothing when no series has it.
    std::optional<device_metrics> device(std::string_view device) const;

    // The whole registry in the Prometheus text exposition format, version 0.0.4, and then `more` (scraped_series).
    std::string serialize(const std::vector<prometheus::MetricFamily> &more = {}) const;

    const std::shared_ptr<prometheus::Registry> &registry() const noexcept { return registry_; }

private:
    struct device_series;

    device_series &series_for(std::string_view device);  // with mutex_ held

    std::shared_ptr<prometheus::Registry> registry_;
    prometheus::Family<prometheus::Counter> &events_;
    prometheus::Family<prometheus::Counter> &refused_;
    prometheus::Family<prometheus::Counter> &transport_errors_;
    prometheus::Family<prometheus::Counter> &overruns_;
    prometheus::Family<prometheus::Gauge> &state_;
    prometheus::Family<prometheus::Gauge> &last_seen_;
    prometheus::Family<prometheus::Counter> &commands_;
    std::array<prometheus::Counter *, command_results.size()> command_counters_{};
    prometheus::Family<prometheus::Counter> &admin_refused_;
    std::array<prometheus::Counter *, 3> admin_refused_counters_{};  // by refusal_reasons

    mutable std::mutex mutex_;
    // device_class -> kind -> counter; two levels so a lookup by string_view allocates nothing.
    std::map<std::string, std::map<std::string, prometheus::Counter *, std::less<>>, std::less<>> event_counters_;
    std::map<std::string, std::unique_ptr<device_series>, std::less<>> devices_;
};

}  // namespace firelink::admin
