#include "site_views.hpp"

#include <chrono>

#include <nlohmann/json.hpp>

#include <firelink/text.hpp>

#include <firelink/core/event_check.hpp>

namespace firelink::cli {

namespace {

using json = nlohmann::json;

json text_or_null(const std::string &t) { return t.empty() ? json(nullptr) : json(t); }

}  // namespace

std::string devices_json(const core::device_runtime &runtime, const site_table_of &site_of) {
    json list = json::array();
    for (const auto &id : runtime.device_ids()) {
        auto st = runtime.status(id);
        if (!st) continue;
        json d{{"id", st->device_id},          {"plugin", st->plugin_id},
               {"driver", st->driver_id},      {"class", st->device_class},
               {"state", core::to_string(st->state)}, {"events_accepted", st->accepted},
               {"events_refused", st->refused}, {"events_deferred", st->deferred},
               {"slow_callbacks", st->slow_callbacks},
               {"commands", st->commands}};
        d["down_reason"] = text_or_null(st->down_reason);
        d["config_rejected"] = text_or_null(st->config_rejected);
        d["last_seen_ms"] =
            st->last_seen
                ? json(std::chrono::duration_cast<std::chrono::milliseconds>(st->last_seen->time_since_epoch()).count())
                : json(nullptr);
        // Host-kept conditions (firelink.conditions/1): what the platform still has open for this device.
        json open = json::array();
        for (const auto &c : runtime.open_conditions(id))
            open.push_back(
                {{"event_id", c.event_id}, {"kind", c.kind}, {"code", c.code}, {"raised_wall_ms", c.raised_wall_ms}});
        d["open_conditions"] = std::move(open);
        d["conditions_dropped"] = st->conditions_dropped;
        if (st->has_link)
            d["wire"] = {{"bytes_in", st->link.bytes_in},         {"bytes_out", st->link.bytes_out},
                         {"errors", st->link.errors},             {"reconnects", st->link.reconnects},
                         {"reply_timeouts", st->link.reply_timeouts}, {"pauses", st->link.pauses},
                         {"paused", st->link_paused},             {"bytes_discarded", st->link.bytes_discarded}};
        if (auto site = site_of(id)) d["site"] = *site;
        list.push_back(std::move(d));
    }
    return text::dump_json<json>(list);
}

std::string uplink_json(const std::string &url, const std::string &queue_path, const uplink::durable_queue &queue,
                        const uplink::uplink_report &r) {
    const auto q = queue.stats();
    json lanes = json::object();
    for (int i = 0; i < uplink::lane_count; ++i) {
        const auto &ql = q.lanes[i];
        const auto &rl = r.lanes[i];
        lanes[uplink::to_string(static_cast<uplink::lane>(i))] = {
            {"depth", ql.depth},             {"bytes", ql.bytes},
            {"cap_bytes", ql.cap_bytes},     {"near_full", ql.near_full},
            {"last_seq", ql.last_seq},       {"acked_through", ql.acked_through},
            {"committed", ql.committed},     {"acked", ql.acked},
            {"quarantined", ql.quarantined}, {"evicted", ql.evicted},
            {"deferred", ql.refused},        {"waiting", ql.waiting},
            {"batches", rl.batches},         {"failures", rl.failures},
            {"last_status", rl.last_status}, {"last_error", rl.last_error},
            {"last_ack_wall_ms", rl.last_ack_wall_ms}, {"backoff_ms", rl.backoff.count()}};
    }
    json quarantine = json::array();
    try {
        for (const auto &x : queue.quarantine(100))
            quarantine.push_back(
                {{"lane", x.lane},
                 {"seq", x.seq},
                 {"status", x.status},
                 {"reason", x.reason},
                 {"quarantined_wall_ms", x.quarantined_wall_ms},
                 {"record", json::parse(core::msgpack_to_json(x.record.data(), x.record.size()), nullptr, false)}});
    } catch (const std::exception &e) {
        quarantine = {{"error", e.what()}};
    }
    return text::dump_json<json>({{"configured", true},
                 {"url", url},
                 {"queue", queue_path},
                 {"epoch", q.epoch},
                 {"pending", q.pending},
                 {"transactions", q.transactions},
                 {"disk_full", q.disk_full},
                 {"reserve_bytes", q.reserve_bytes},
                 {"reserve_target_bytes", q.reserve_target},
                 {"reserve_held", q.reserve_held},
                 {"last_commit_ms", q.last_commit_ms},
                 {"max_commit_ms", q.max_commit_ms},
                 {"commands_received", r.commands_received},
                 {"command_cursor", r.command_cursor},
                 {"poll_error", r.poll_error},
                 {"credentials_refused", r.credentials_refused},
                 {"lanes", lanes},
                 {"quarantine_total", q.quarantine_total},
                 {"quarantine", quarantine}});
}

void add_runtime_facts(health_facts &f, const core::device_runtime &runtime,
                       const std::function<std::string(const std::string &device)> &where_of) {
    for (const auto &id : runtime.device_ids()) {
        auto st = runtime.status(id);
        if (!st || st->state == core::device_state::down) continue;  // listed below with why
        health_facts::device d{id, st->state, {}};
        if (d.state != core::device_state::started)
            for (const auto &c : runtime.open_conditions(id))
                if (c.kind == "fault") d.faults.push_back(c.code);
        f.devices.push_back(std::move(d));
    }
    for (const auto &x : runtime.open_faults(core::host_fault::config_rejected)) f.rejected[x.device_id] = x.message;
    for (const auto &x : runtime.down_devices()) f.not_started[x.device_id] = where_of(x.device_id) + x.message;
}

void add_plugin_facts(health_facts &f, const std::vector<std::shared_ptr<core::plugin>> &loaded,
                      const std::map<std::filesystem::path, signing::verdict> &signatures) {
    for (const auto &p : loaded) {
        const auto sig = signatures.find(p->info().file);
        f.plugins.push_back({p->info().id, p->remote(), isolation::status_of(*p),
                             sig == signatures.end() ? std::nullopt : std::optional(sig->second)});
    }
}

void add_runner_series(admin::scraped_series &out, const std::vector<isolation::runner_status> &runners) {
    if (runners.empty()) return;
    using prometheus::MetricType;
    auto each = [&](const char *name, MetricType type, const char *help, auto value) {
        out.family(name, type, help);
        for (const auto &r : runners) out.value(static_cast<double>(value(r)), {{"plugin", r.plugin_id}});
    };
    each("firelink_runner_up", MetricType::Gauge, "1 while the plugin's runner process is running.",
         [](const auto &r) { return r.state == "running" ? 1 : 0; });
    each("firelink_runner_parked", MetricType::Gauge, "1 once the plugin is parked after a crash loop.",
         [](const auto &r) { return r.state == "parked" ? 1 : 0; });
    each("firelink_runner_failures_total", MetricType::Counter, "Runner crashes, exits and hangs since start.",
         [](const auto &r) { return r.failures; });
    each("firelink_runner_restarts_total", MetricType::Counter, "Runners started again after a failure.",
         [](const auto &r) { return r.restarts; });
    out.family("firelink_runner_ring_bytes", MetricType::Gauge,
               "Events the runner emitted, waiting in its rings for the host.");
    for (const auto &r : runners)
        for (int i = 0; i < core::lane_count; ++i)
            out.value(static_cast<double>(r.ring_bytes[i]),
                      {{"plugin", r.plugin_id}, {"lane", core::to_string(static_cast<core::lane>(i))}});
}

void add_control_series(admin::scraped_series &out, const std::map<std::string, std::uint64_t> &refusals,
                        std::uint64_t audit_records) {
    out.family("firelink_control_refused_total", prometheus::MetricType::Counter,
               "Selections, commands and mode changes the control plane refused, by reason.");
    for (const auto &[reason, n] : refusals) out.value(static_cast<double>(n), {{"reason", reason}});
    out.family("firelink_audit_records", prometheus::MetricType::Gauge, "Records kept in the audit chain.")
        .value(static_cast<double>(audit_records));
}

void add_linkage_series(admin::scraped_series &out,
                        const std::map<std::string, std::map<std::string, std::uint64_t>> &events) {
    out.family("firelink_linkage_events_total", prometheus::MetricType::Counter,
               "Events the linkage rules made since start, by rule and code (linkage_started, linkage_failed, ...).");
    for (const auto &[rule, codes] : events)
        for (const auto &[code, n] : codes) out.value(static_cast<double>(n), {{"rule", rule}, {"code", code}});
}

void add_uplink_series(admin::scraped_series &out, const uplink::queue_stats &q, const uplink::uplink_report &r) {
    using prometheus::MetricType;
    auto lanes = [&](const char *name, MetricType type, const char *help, auto value) {
        out.family(name, type, help);
        for (int i = 0; i < uplink::lane_count; ++i)
            out.value(static_cast<double>(value(i)), {{"lane", uplink::to_string(static_cast<uplink::lane>(i))}});
    };
    lanes("firelink_uplink_queue_depth", MetricType::Gauge,
          "Events committed to the durable queue and not yet acknowledged.", [&](int i) { return q.lanes[i].depth; });
    lanes("firelink_uplink_queue_bytes", MetricType::Gauge, "Bytes of queued events.",
          [&](int i) { return q.lanes[i].bytes; });
    lanes("firelink_uplink_queue_cap_bytes", MetricType::Gauge, "The lane's cap.",
          [&](int i) { return q.lanes[i].cap_bytes; });
    lanes("firelink_uplink_committed_total", MetricType::Counter, "Events committed (accepted) since start.",
          [&](int i) { return q.lanes[i].committed; });
    lanes("firelink_uplink_acked_total", MetricType::Counter, "Events acknowledged by the platform since start.",
          [&](int i) { return q.lanes[i].acked; });
    lanes("firelink_uplink_quarantined_total", MetricType::Counter,
          "Events the platform rejected, kept in the quarantine.", [&](int i) { return q.lanes[i].quarantined; });
    lanes("firelink_uplink_evicted_total", MetricType::Counter, "Telemetry evicted to stay within the cap.",
          [&](int i) { return q.lanes[i].evicted; });
    lanes("firelink_uplink_deferred_total", MetricType::Counter, "Events refused for backpressure (FL_BUSY).",
          [&](int i) { return q.lanes[i].refused; });
    lanes("firelink_uplink_waiting", MetricType::Gauge,
          "Events taken, waiting in memory for the queue's writer (or the disk).",
          [&](int i) { return q.lanes[i].waiting; });
    lanes("firelink_uplink_request_failures_total", MetricType::Counter, "Failed requests to the platform.",
          [&](int i) { return r.lanes[i].failures; });
    lanes("firelink_uplink_last_ack_timestamp_seconds", MetricType::Gauge, "When the platform last acknowledged.",
          [&](int i) { return r.lanes[i].last_ack_wall_ms / 1000; });
    out.family("firelink_uplink_quarantine_size", MetricType::Gauge, "Events in the quarantine table.")
        .value(static_cast<double>(q.quarantine_total));
    out.family("firelink_uplink_disk_full", MetricType::Gauge,
               "1 while the queue's disk is full (only alarms are taken).")
        .value(q.disk_full ? 1 : 0);
    out.family("firelink_uplink_reserve_bytes", MetricType::Gauge,
               "The alarm reserve set aside on the queue's disk (0: none).")
        .value(static_cast<double>(q.reserve_bytes));
    out.family("firelink_uplink_reserve_held", MetricType::Gauge,
               "1 while the queue's disk holds its reserve for alarms.")
        .value(q.reserve_held ? 1 : 0);
    out.family("firelink_uplink_commands_total", MetricType::Counter, "Commands received from the platform.")
        .value(static_cast<double>(r.commands_received));
}

}  // namespace firelink::cli
