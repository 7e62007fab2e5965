#include "firelink/admin/host_metrics.hpp"
#include "firelink/admin/admin_server.hpp"

#include <algorithm>
#include <tuple>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace firelink::admin {

namespace {

prometheus::Family<prometheus::Counter> &counter_family(prometheus::Registry &r, const char *name, const char *help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

prometheus::Family<prometheus::Gauge> &gauge_family(prometheus::Registry &r, const char *name, const char *help) {
    return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

template <std::size_t N>
std::optional<std::size_t> index_of(const std::array<std::string_view, N> &names, std::string_view name) {
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) return std::nullopt;
    return static_cast<std::size_t>(it - names.begin());
}

std::shared_ptr<prometheus::Registry> or_new(std::shared_ptr<prometheus::Registry> r) {
    return r ? std::move(r) : std::make_shared<prometheus::Registry>();
}

}  // namespace

// Every series of one device, made together so a device shows zeros before its first error.
struct host_metrics::device_series {
    prometheus::Counter *refused = nullptr;
    prometheus::Counter *transport_errors = nullptr;
    prometheus::Counter *overruns = nullptr;
    std::array<prometheus::Gauge *, device_states.size()> states{};
    prometheus::Gauge *last_seen = nullptr;
    std::optional<std::size_t> current;  // index into device_states
};

host_metrics::host_metrics(std::string_view version, std::shared_ptr<prometheus::Registry> registry)
    : registry_(or_new(std::move(registry))),
      events_(counter_family(*registry_, "firelink_events_total",
                             "Events accepted at the boundary, by device class and event kind.")),
      refused_(counter_family(*registry_, "firelink_events_refused_total",
                              "Events refused at the boundary (malformed, wrong class), by device.")),
      transport_errors_(counter_family(*registry_, "firelink_transport_errors_total",
                                       "Errors on a device's wire (timeouts, disconnects, bad frames), by device.")),
      overruns_(counter_family(*registry_, "firelink_callback_overruns_total",
                               "Driver callbacks that ran past the watchdog's bound, by device.")),
      state_(gauge_family(*registry_, "firelink_device_state",
                          "1 for the device's current state (created, started, stopped, offline, faulted, down), else 0.")),
      last_seen_(gauge_family(*registry_, "firelink_device_last_seen_seconds",
                              "When the device was last heard from, in unix seconds.")),
      commands_(counter_family(*registry_, "firelink_commands_total",
                               "Commands from operators and the platform, by result (accepted, refused, failed).")),
      admin_refused_(counter_family(*registry_, "firelink_admin_refused_total",
                                    "Admin requests refused before their body was read, by reason (no_credentials, "
                                    "bad_token, forbidden).")) {
    for (std::size_t i = 0; i < command_results.size(); ++i)
        command_counters_[i] = &commands_.Add({{"result", std::string(command_results[i])}});
    static_assert(refusal_reasons.size() == std::tuple_size_v<decltype(admin_refused_counters_)>);
    for (std::size_t i = 0; i < refusal_reasons.size(); ++i)
        admin_refused_counters_[i] = &admin_refused_.Add({{"reason", std::string(refusal_reasons[i])}});
    gauge_family(*registry_, "firelink_build_info", "The firelink host's version; always 1.")
        .Add({{"version", std::string(version)}})
        .Set(1);
}

host_metrics::~host_metrics() = default;

void host_metrics::event_accepted(std::string_view device_class, std::string_view kind) {
    prometheus::Counter *counter = nullptr;
    {
        std::lock_guard lock(mutex_);
        auto by_class = event_counters_.find(device_class);
        if (by_class == event_counters_.end()) by_class = event_counters_.try_emplace(std::string(device_class)).first;
        auto &by_kind = by_class->second;
        auto it = by_kind.find(kind);
        if (it == by_kind.end()) {
            auto &c = events_.Add({{"device_class", std::string(device_class)}, {"kind", std::string(kind)}});
            it = by_kind.emplace(std::string(kind), &c).first;
        }
        counter = it->second;
    }
    counter->Increment();
}

host_metrics::device_series &host_metrics::series_for(std::string_view device) {
    auto it = devices_.find(device);
    if (it != devices_.end()) return *it->second;
    const std::string id(device);
    auto s = std::make_unique<device_series>();
    s->refused = &refused_.Add({{"device", id}});
    s->transport_errors = &transport_errors_.Add({{"device", id}});
    s->overruns = &overruns_.Add({{"device", id}});
    for (std::size_t i = 0; i < device_states.size(); ++i)
        s->states[i] = &state_.Add({{"device", id}, {"state", std::string(device_states[i])}});
    s->last_seen = &last_seen_.Add({{"device", id}});
    return *devices_.emplace(id, std::move(s)).first->second;
}

void host_metrics::event_refused(std::string_view device) {
    std::lock_guard lock(mutex_);
    series_for(device).refused->Increment();
}

void host_metrics::transport_error(std::string_view device, std::uint64_t n) {
    std::lock_guard lock(mutex_);
    series_for(device).transport_errors->Increment(static_cast<double>(n));
}

void host_metrics::callback_overrun(std::string_view device) {
    std::lock_guard lock(mutex_);
    series_for(device).overruns->Increment();
}

bool host_metrics::device_state(std::string_view device, std::string_view state) {
    const auto index = index_of(device_states, state);
    if (!index) return false;
    // Under the lock, which serialize() also takes: a scrape never sees two states at 1.
    std::lock_guard lock(mutex_);
    auto &s = series_for(device);
    for (std::size_t i = 0; i < s.states.size(); ++i) s.states[i]->Set(i == *index ? 1 : 0);
    s.current = index;
    return true;
}

void host_metrics::device_seen(std::string_view device, double unix_seconds) {
    std::lock_guard lock(mutex_);
    series_for(device).last_seen->Set(unix_seconds);
}

bool host_metrics::command(std::string_view result) {
    const auto index = index_of(command_results, result);
    if (!index) return false;
    command_counters_[*index]->Increment();
    return true;
}

bool host_metrics::admin_refused(std::string_view reason) {
    const auto index = index_of(refusal_reasons, reason);
    if (!index) return false;
    admin_refused_counters_[*index]->Increment();
    return true;
}

void host_metrics::remove_device(std::string_view device) {
    std::lock_guard lock(mutex_);
    auto it = devices_.find(device);
    if (it == devices_.end()) return;
    auto &s = *it->second;
    refused_.Remove(s.refused);
    transport_errors_.Remove(s.transport_errors);
    overruns_.Remove(s.overruns);
    for (auto *g : s.states) state_.Remove(g);
    last_seen_.Remove(s.last_seen);
    devices_.erase(it);
}

std::optional<device_metrics> host_metrics::device(std::string_view device) const {
    std::lock_guard lock(mutex_);
    auto it = devices_.find(device);
    if (it == devices_.end()) return std::nullopt;
    const auto &s = *it->second;
    device_metrics m;
    if (s.current) m.state = std::string(device_states[*s.current]);
    m.last_seen = s.last_seen->Value();
    m.events_refused = s.refused->Value();
    m.transport_errors = s.transport_errors->Value();
    m.callback_overruns = s.overruns->Value();
    return m;
}

std::string host_metrics::serialize(const std::vector<prometheus::MetricFamily> &more) const {
    std::vector<prometheus::MetricFamily> families;
    {
        std::lock_guard lock(mutex_);  // a consistent snapshot: never two states at 1 mid-update
        families = registry_->Collect();
    }
    families.insert(families.end(), more.begin(), more.end());
    return prometheus::TextSerializer().Serialize(families);
}

scraped_series &scraped_series::family(std::string name, prometheus::MetricType type, std::string help) {
    families_.push_back({std::move(name), std::move(help), type, {}});
    return *this;
}

scraped_series &scraped_series::value(double v, const labels &l) {
    auto &f = families_.back();
    prometheus::ClientMetric m;
    for (const auto &[name, value] : l) m.label.push_back({name, value});
    if (f.type == prometheus::MetricType::Counter) m.counter.value = v;
    else m.gauge.value = v;
    f.metric.push_back(std::move(m));
    return *this;
}

}  // namespace firelink::admin
