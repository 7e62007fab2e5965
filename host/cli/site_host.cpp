#include "site_host.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <firelink/admin/admin_server.hpp>
#include <firelink/admin/host_metrics.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/isolation/runner_supervisor.hpp>
#include <firelink/pipeline/sinks.hpp>
#include <firelink/uplink/uplink.hpp>

#include "command_gate.hpp"
#include "component_options.hpp"
#include "control_loop.hpp"
#include "descriptor_budget.hpp"
#include "device_set.hpp"
#include "health.hpp"
#include "plugin_catalog.hpp"
#include "reconfigure.hpp"
#include "sd_notify.hpp"
#include "site_wiring.hpp"

namespace firelink::cli {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::string at(const site::source_position &p) { return p.str(); }

// The composition root: makes the components from the site file, wires them, and owns their order of start and
// stop. Sinks first (nothing is accepted before there is somewhere to put it), then the uplink and the control
// plane, the runtime, the admin endpoint, and the devices; at stop the admin endpoint goes first (it reads all the
// rest), then the devices, then what they emitted is flushed, then the rest.
class site_host {
public:
    site_host(site::site_config cfg, const run_options &opt)
        : cfg_(std::move(cfg)), running_(cfg_), opt_(opt), metrics_(FIRELINK_VERSION_STRING), wires_(io_),
          devices_(catalog_, wires_, metrics_) {}

    int run();

private:
    bool start_sinks();
    bool start_uplink();
    void start_control();
    void start_runtime();
    std::unique_ptr<admin::admin_server> start_admin();
    void scan(const site::site_config &cfg);
    std::pair<unsigned, std::string> reload();
    std::string devices_json() const;
    health_facts health_now() const;
    void watchdog_tick();
    std::pair<unsigned, std::string> test_hook(const std::string &name, const std::string &body);
    std::string metrics_text();
    std::string uplink_json() const;
    void restore_conditions();
    std::string run_platform_command(const uplink::downlink_command &c);
    void print_summary(const std::vector<std::string> &ids) const;

    mutable std::mutex cfg_mutex_;  // cfg_ is replaced by a reload while the admin thread reads it
    site::site_config cfg_;      // the devices' configuration as it runs: as last (re)loaded, but kept definitions
    site::site_config running_;  // as started: gateway, admin, sink and watchdog change only with a restart
    run_options opt_;
    systemd_notifier sd_;        // first: it reads the environment before any thread runs
    asio::io_context io_;        // devices and their wires
    asio::io_context admin_io_;  // the admin endpoint, apart, so a slow handler never delays a device
    admin::host_metrics metrics_;
    pipeline::event_pipeline pipeline_;
    pipeline::sink *record_ = nullptr;  // the local record ([sink]) among the pipeline's sinks, if there is one
    std::unique_ptr<uplink::durable_queue> queue_;  // with [uplink]: the durable queue...
    std::unique_ptr<command_gate> gate_;            // every command passes here (select, operate, audit)
    std::unique_ptr<uplink::uplink> uplink_;        // ...and its senders and command poll
    std::unique_ptr<core::device_runtime> runtime_;
    plugin_catalog catalog_;                                     // control thread only
    std::vector<std::shared_ptr<core::plugin>> loaded_plugins_;  // what it has loaded, for the admin thread (cfg_mutex_)
    std::vector<std::string> refused_plugins_;                   // and what it refused, "file: why" (cfg_mutex_)
    std::map<std::filesystem::path, signing::verdict> plugin_signatures_;  // the catalog's, for the admin thread
    site_wiring wires_;
    device_set devices_;  // control thread only
    control_loop control_;
    std::mutex counts_mutex_;
    std::map<std::string, std::uint64_t> counts_;  // events accepted per device, for --expect-events
    std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
    std::atomic<bool> ready_{false};  // every configured device has been tried once
    unsigned io_threads_ = 0;
    // systemd's watchdog (control thread): each event loop answers a post between two pings, or no ping is sent.
    std::atomic<bool> io_answered_{true}, admin_answered_{true};
    bool pings_withheld_ = false;
    std::string last_status_;
};

void site_host::scan(const site::site_config &cfg) {
    catalog_.set_signing(cfg.signing);
    catalog_.scan(cfg.plugin_dirs);
    std::lock_guard lock(cfg_mutex_);
    loaded_plugins_ = catalog_.plugins();
    refused_plugins_ = catalog_.refusals();
    plugin_signatures_ = catalog_.signatures();
}

std::pair<unsigned, std::string> site_host::reload() {
    auto loaded = site::load_site_config(cfg_.file);
    nlohmann::json body;
    if (auto *errors = std::get_if<std::vector<site::config_error>>(&loaded)) {
        std::vector<std::string> lines;
        for (const auto &e : *errors) {
            lines.push_back(e.str());
            spdlog::error("reload refused: {}", e.str());
        }
        body = {{"reloaded", false}, {"errors", lines}};
        return {400, body.dump()};
    }
    auto next = std::get<site::site_config>(std::move(loaded));
    std::vector<std::string> notes;
    if (next.gateway_id != running_.gateway_id || next.admin_listen != running_.admin_listen ||
        next.sink_kind != running_.sink_kind || next.sink_path != running_.sink_path ||
        next.watchdog_warn != running_.watchdog_warn || next.watchdog_fault != running_.watchdog_fault)
        notes.push_back("gateway, admin, sink and watchdog settings take effect at the next restart");
    scan(next);
    // Every changed device's new definition is tried with its driver before anything is destroyed.
    auto plan = plan_reload(cfg_, next, devices_.running(), [this](const auto &c, const auto &d) {
        return trial(*runtime_, catalog_, c, d);
    });
    reload_outcome out;
    out.notes = std::move(notes);
    devices_.apply(plan, cfg_, out);
    {
        std::lock_guard lock(cfg_mutex_);
        cfg_ = std::move(plan.effective);
    }
    spdlog::info("reloaded {}: {} device(s) running; {}; {} problem(s)", cfg_.file.string(), devices_.running().size(),
                 out.summary(), out.problems.size());
    return {out.clean() ? 200u : 207u, out.to_json(devices_.running().size()).dump()};
}

std::string site_host::devices_json() const {
    nlohmann::json list = nlohmann::json::array();
    for (const auto &id : runtime_->device_ids()) {
        auto st = runtime_->status(id);
        if (!st) continue;
        nlohmann::json d{{"id", st->device_id},          {"plugin", st->plugin_id},
                         {"driver", st->driver_id},      {"class", st->device_class},
                         {"state", st->state},           {"events_accepted", st->accepted},
                         {"events_refused", st->refused}, {"events_deferred", st->deferred},
                         {"slow_callbacks", st->slow_callbacks},
                         {"commands", st->commands}};
        auto text_or_null = [](const std::string &t) { return t.empty() ? nlohmann::json(nullptr) : nlohmann::json(t); };
        d["down_reason"] = text_or_null(st->down_reason);
        d["config_rejected"] = text_or_null(st->config_rejected);
        d["last_seen_ms"] = st->last_seen ? nlohmann::json(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                               st->last_seen->time_since_epoch())
                                                               .count())
                                          : nlohmann::json(nullptr);
        // Host-kept conditions (firelink.conditions/1): what the platform still has open for this device.
        nlohmann::json open = nlohmann::json::array();
        for (const auto &c : runtime_->open_conditions(id))
            open.push_back({{"event_id", c.event_id},
                            {"kind", c.kind},
                            {"code", c.code},
                            {"raised_wall_ms", c.raised_wall_ms}});
        d["open_conditions"] = std::move(open);
        d["conditions_dropped"] = st->conditions_dropped;
        if (st->has_link)
            d["wire"] = {{"bytes_in", st->link.bytes_in},     {"bytes_out", st->link.bytes_out},
                         {"errors", st->link.errors},         {"reconnects", st->link.reconnects},
                         {"reply_timeouts", st->link.reply_timeouts}, {"pauses", st->link.pauses},
                         {"paused", st->link_paused},             {"bytes_discarded", st->link.bytes_discarded}};
        {
            std::lock_guard lock(cfg_mutex_);
            if (const auto *cfg = cfg_.find_device(id)) d["site"] = site_map(cfg->meta);
        }
        list.push_back(std::move(d));
    }
    return list.dump();
}

health_facts site_host::health_now() const {
    health_facts f;
    f.ready = ready_;
    f.gateway = running_.gateway_id;
    f.uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at_);
    for (const auto &id : runtime_->device_ids()) {
        auto st = runtime_->status(id);
        if (!st || st->state == "down") continue;  // listed below with why
        health_facts::device d{id, st->state, {}};
        if (d.state != "started")
            for (const auto &c : runtime_->open_conditions(id))
                if (c.kind == "fault") d.faults.push_back(c.code);
        f.devices.push_back(std::move(d));
    }
    for (const auto &x : runtime_->open_faults(core::host_fault::config_rejected)) f.rejected[x.device_id] = x.message;
    const auto down = runtime_->down_devices();
    {
        std::lock_guard lock(cfg_mutex_);
        for (const auto &x : down) {
            const auto *cfg = cfg_.find_device(x.device_id);
            f.not_started[x.device_id] = (cfg ? at(cfg->where) + ": " : std::string()) + x.message;
        }
        for (const auto &p : loaded_plugins_) {
            const auto sig = plugin_signatures_.find(p->info().file);
            f.plugins.push_back({p->info().id, p->remote(), isolation::status_of(*p),
                                 sig == plugin_signatures_.end() ? std::nullopt : std::optional(sig->second)});
        }
        f.refused_plugins = refused_plugins_;
    }
    f.sink_faults = pipeline_.faults();
    if (uplink_) f.uplink = health_facts::uplink_facts{queue_->stats(), uplink_->report()};
    return f;
}

// systemd's watchdog, from the control loop itself: a wedged control thread sends nothing, and a ping also needs the
// devices' and the admin's event loops to have run what was posted to them at the last tick.
void site_host::watchdog_tick() {
    if (sd_.watchdog_interval()) {
        const bool io = io_answered_.exchange(false), admin = admin_answered_.exchange(false);
        if (io && admin) {
            sd_.notify("WATCHDOG=1");
            if (pings_withheld_) spdlog::info("watchdog: every event loop answers again; pinging systemd");
            pings_withheld_ = false;
        } else if (!pings_withheld_) {
            pings_withheld_ = true;
            spdlog::critical("watchdog: the {} event loop has not answered for {} ms; systemd is no longer pinged",
                             io ? "admin" : "devices'",
                             std::chrono::duration_cast<std::chrono::milliseconds>(*sd_.watchdog_interval()).count());
        }
        asio::post(io_, [this] { io_answered_ = true; });
        asio::post(admin_io_, [this] { admin_answered_ = true; });
    }
    auto status = health_summary(health_now());
    if (status != last_status_) sd_.notify("STATUS=" + status);
    last_status_ = std::move(status);
}

std::string site_host::metrics_text() {
    for (const auto &id : runtime_->device_ids())
        if (auto st = runtime_->status(id); st && st->last_seen)
            metrics_.device_seen(id, std::chrono::duration<double>(st->last_seen->time_since_epoch()).count());
    auto text = metrics_.serialize();
    auto family = [&](const char *name, const char *type, const char *help) {
        text += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    };
    // The plugin runners' series, in the same exposition format.
    std::vector<isolation::runner_status> runners;
    {
        std::lock_guard lock(cfg_mutex_);
        for (const auto &p : loaded_plugins_)
            if (auto r = isolation::status_of(*p)) runners.push_back(*r);
    }
    if (!runners.empty()) {
        auto series = [&](const char *name, auto value) {
            for (const auto &r : runners)
                text += std::string(name) + "{plugin=\"" + r.plugin_id + "\"} " + std::to_string(value(r)) + "\n";
        };
        family("firelink_runner_up", "gauge", "1 while the plugin's runner process is running.");
        series("firelink_runner_up", [](const auto &r) { return r.state == "running" ? 1 : 0; });
        family("firelink_runner_parked", "gauge", "1 once the plugin is parked after a crash loop.");
        series("firelink_runner_parked", [](const auto &r) { return r.state == "parked" ? 1 : 0; });
        family("firelink_runner_failures_total", "counter", "Runner crashes, exits and hangs since start.");
        series("firelink_runner_failures_total", [](const auto &r) { return r.failures; });
        family("firelink_runner_restarts_total", "counter", "Runners started again after a failure.");
        series("firelink_runner_restarts_total", [](const auto &r) { return r.restarts; });
        family("firelink_runner_ring_bytes", "gauge", "Events the runner emitted, waiting in its rings for the host.");
        for (const auto &r : runners)
            for (int i = 0; i < core::lane_count; ++i)
                text += "firelink_runner_ring_bytes{plugin=\"" + r.plugin_id + "\",lane=\"" +
                        core::to_string(static_cast<core::lane>(i)) + "\"} " + std::to_string(r.ring_bytes[i]) + "\n";
    }
    family("firelink_control_refused_total", "counter",
           "Selections, commands and mode changes the control plane refused, by reason.");
    for (const auto &[reason, n] : gate_->refusals())
        text += "firelink_control_refused_total{reason=\"" + reason + "\"} " + std::to_string(n) + "\n";
    family("firelink_audit_records", "gauge", "Records kept in the audit chain.");
    text += "firelink_audit_records " + std::to_string(gate_->audit_records()) + "\n";
    if (!uplink_) return text;
    // The uplink's series.
    const auto q = queue_->stats();
    const auto r = uplink_->report();
    auto lane_series = [&](const char *name, auto value) {
        for (int i = 0; i < uplink::lane_count; ++i)
            text += std::string(name) + "{lane=\"" + uplink::to_string(static_cast<uplink::lane>(i)) + "\"} " +
                    std::to_string(value(i)) + "\n";
    };
    family("firelink_uplink_queue_depth", "gauge", "Events committed to the durable queue and not yet acknowledged.");
    lane_series("firelink_uplink_queue_depth", [&](int i) { return q.lanes[i].depth; });
    family("firelink_uplink_queue_bytes", "gauge", "Bytes of queued events.");
    lane_series("firelink_uplink_queue_bytes", [&](int i) { return q.lanes[i].bytes; });
    family("firelink_uplink_queue_cap_bytes", "gauge", "The lane's cap.");
    lane_series("firelink_uplink_queue_cap_bytes", [&](int i) { return q.lanes[i].cap_bytes; });
    family("firelink_uplink_committed_total", "counter", "Events committed (accepted) since start.");
    lane_series("firelink_uplink_committed_total", [&](int i) { return q.lanes[i].committed; });
    family("firelink_uplink_acked_total", "counter", "Events acknowledged by the platform since start.");
    lane_series("firelink_uplink_acked_total", [&](int i) { return q.lanes[i].acked; });
    family("firelink_uplink_quarantined_total", "counter", "Events the platform rejected, kept in the quarantine.");
    lane_series("firelink_uplink_quarantined_total", [&](int i) { return q.lanes[i].quarantined; });
    family("firelink_uplink_evicted_total", "counter", "Telemetry evicted to stay within the cap.");
    lane_series("firelink_uplink_evicted_total", [&](int i) { return q.lanes[i].evicted; });
    family("firelink_uplink_deferred_total", "counter", "Events refused for backpressure (FL_BUSY).");
    lane_series("firelink_uplink_deferred_total", [&](int i) { return q.lanes[i].refused; });
    family("firelink_uplink_waiting", "gauge", "Events taken, waiting in memory for the queue's writer (or the disk).");
    lane_series("firelink_uplink_waiting", [&](int i) { return q.lanes[i].waiting; });
    family("firelink_uplink_request_failures_total", "counter", "Failed requests to the platform.");
    lane_series("firelink_uplink_request_failures_total", [&](int i) { return r.lanes[i].failures; });
    family("firelink_uplink_last_ack_timestamp_seconds", "gauge", "When the platform last acknowledged.");
    lane_series("firelink_uplink_last_ack_timestamp_seconds", [&](int i) { return r.lanes[i].last_ack_wall_ms / 1000; });
    family("firelink_uplink_quarantine_size", "gauge", "Events in the quarantine table.");
    text += "firelink_uplink_quarantine_size " + std::to_string(q.quarantine_total) + "\n";
    family("firelink_uplink_disk_full", "gauge", "1 while the queue's disk is full (only alarms are taken).");
    text += std::string("firelink_uplink_disk_full ") + (q.disk_full ? "1" : "0") + "\n";
    family("firelink_uplink_reserve_bytes", "gauge", "The alarm reserve set aside on the queue's disk (0: none).");
    text += "firelink_uplink_reserve_bytes " + std::to_string(q.reserve_bytes) + "\n";
    family("firelink_uplink_reserve_held", "gauge", "1 while the queue's disk holds its reserve for alarms.");
    text += std::string("firelink_uplink_reserve_held ") + (q.reserve_held ? "1" : "0") + "\n";
    family("firelink_uplink_commands_total", "counter", "Commands received from the platform.");
    text += "firelink_uplink_commands_total " + std::to_string(r.commands_received) + "\n";
    return text;
}

bool site_host::start_sinks() {
    try {
        std::unique_ptr<pipeline::sink> record;
        if (cfg_.sink_kind == "jsonl") record = pipeline::make_jsonl_file_sink(cfg_.sink_path);
        else if (cfg_.sink_kind == "stdout") record = pipeline::make_stdout_sink();
        record_ = record.get();
        if (record) pipeline_.add(std::move(record));
    } catch (const std::exception &e) {
        spdlog::critical("{}: sink: {}", cfg_.file.string(), e.what());
        return false;
    }
    return true;
}

bool site_host::start_uplink() {
    auto q = queue_options_of(cfg_);
    // The platform gets the gateway's own events (queue_near_full, command_failed, ...) from the queue; the local
    // record gets the same, so that what the platform has is also on the gateway's disk.
    q.on_gateway_event = [this](const core::accepted_event &ev) {
        if (record_) record_->accept(ev, {});
    };
    uplink::uplink_options o;
    try {
        o = uplink_options_of(cfg_);
        queue_ = std::make_unique<uplink::durable_queue>(q);
    } catch (const std::exception &e) {
        spdlog::critical("{}: uplink: {}", cfg_.file.string(), e.what());
        return false;
    }
    const auto &opened = queue_->opened();
    spdlog::info("uplink to {}: queue {} (epoch {}, {}{} events waiting, checked in {} ms)", cfg_.uplink.url,
                 cfg_.uplink.queue_path, queue_->epoch(), opened.created ? "new, " : "", opened.backlog,
                 opened.check_took.count());
    uplink_ = std::make_unique<uplink::uplink>(*queue_, o,
                                               [this](const uplink::downlink_command &c) { return run_platform_command(c); });
    pipeline_.add(uplink_->make_sink());
    return true;
}

// Host-kept conditions (firelink.conditions/1) come back from the queue before any device is created, so each
// driver finds what its predecessor raised from create_device on. A device id no longer in the site file loses its
// stored conditions here, at start (a reload that removes a device keeps them until the next start, so putting it
// back keeps them too). Without an uplink there is nothing stored: the lists live in the runtime's memory only.
void site_host::restore_conditions() {
    if (!queue_) return;
    std::vector<core::open_condition> stored;
    try {
        stored = queue_->open_conditions();
    } catch (const std::exception &e) {
        spdlog::error("uplink queue: cannot read the stored open conditions ({}); drivers start without them",
                      e.what());
        return;
    }
    std::set<std::string> in_site, gone;
    for (const auto &d : cfg_.devices) in_site.insert(d.id);
    std::vector<core::open_condition> kept;
    for (auto &c : stored) {
        if (in_site.count(c.device_id)) kept.push_back(std::move(c));
        else gone.insert(c.device_id);
    }
    if (!gone.empty()) {
        std::string names;
        for (const auto &g : gone) names += (names.empty() ? "" : ", ") + g;
        spdlog::info("uplink queue: {} device(s) with stored open conditions are no longer in the site; their "
                     "conditions are deleted: {}",
                     gone.size(), names);
        queue_->forget_conditions({gone.begin(), gone.end()});
    }
    if (!kept.empty()) spdlog::info("uplink queue: {} open condition(s) restored for the devices", kept.size());
    runtime_->load_conditions(std::move(kept));
}

// A command from the platform: through the control plane like an operator's, as the principal "platform". The
// runtime reports what the device cannot take as a command_result of that device; what the control plane refuses,
// or a device this gateway does not run, is the uplink's to report.
std::string site_host::run_platform_command(const uplink::downlink_command &c) {
    auto why = gate_->platform(c.id, c.device, c.command);
    metrics_.command(why.empty() ? "accepted" : "refused");
    if (!why.empty()) spdlog::warn("platform command {} '{}' for device {}: {}", c.id, c.name, c.device, why);
    return why;
}

// A chain that cannot be opened leaves the host running — alarms still flow — and every command refused.
void site_host::start_control() {
    const auto path = audit_path_of(cfg_);
    std::shared_ptr<control::audit_log> audit;
    std::string audit_error;
    try {
        audit = std::make_shared<control::audit_log>(path, static_cast<std::uint64_t>(cfg_.control.audit_keep));
        spdlog::info("audit chain: {} ({} record(s) kept)", path.string(), audit->size());
    } catch (const std::exception &e) {
        audit_error = e.what();
        spdlog::critical("audit chain: {}; every command is refused until it opens", audit_error);
    }
    // Each step goes upstream too, in the event lane, so the platform holds the chain's head.
    auto upstream = [this](const control::audit_entry &e) {
        if (queue_) queue_->push_gateway_event(audit_event(e), "status");
    };
    auto driver_of = [this](const std::string &device) -> std::optional<core::driver_info> {
        const auto st = runtime_ ? runtime_->status(device) : std::nullopt;
        if (!st) return std::nullopt;
        std::lock_guard lock(cfg_mutex_);
        for (const auto &p : loaded_plugins_)
            if (p->info().id == st->plugin_id)
                if (const auto *d = p->info().find_driver(st->driver_id)) return *d;
        return std::nullopt;
    };
    gate_ = std::make_unique<command_gate>(control_options_of(cfg_), std::move(audit), std::move(upstream),
                                           std::move(driver_of), std::move(audit_error));
}

// FIRELINK_TEST_HOOKS=1 only. "wedge" {"loop": "control" | "devices", "seconds": N} blocks that event loop for N
// seconds (every thread of it), as a driver stuck in a call or a deadlock would, so a test can see systemd's
// watchdog pings stop. Answers once the loop is blocked.
std::pair<unsigned, std::string> site_host::test_hook(const std::string &name, const std::string &body) {
    auto fail = [](unsigned status, const std::string &why) {
        return std::pair<unsigned, std::string>{status, nlohmann::json{{"error", why}}.dump()};
    };
    if (name != "wedge") return fail(404, "no test hook '" + name + "' (there is: wedge)");
    const auto args = nlohmann::json::parse(body.empty() ? "{}" : body, nullptr, false);
    if (!args.is_object()) return fail(400, "the body is not a JSON object");
    const auto loop = args.value("loop", std::string("control"));
    const double seconds = args.value("seconds", 10.0);
    if (!(seconds > 0 && seconds <= 600)) return fail(400, "seconds: from 0 to 600");
    const auto wedged_for = std::chrono::duration<double>(seconds);
    const unsigned threads = loop == "devices" ? io_threads_ : 1;
    auto blocked = std::make_shared<std::latch>(threads);
    auto block = [blocked, wedged_for] {
        blocked->count_down();
        std::this_thread::sleep_for(wedged_for);
    };
    if (loop == "control") control_.post(block);
    else if (loop == "devices")
        for (unsigned i = 0; i < threads; ++i) asio::post(io_, block);
    else return fail(400, "loop: \"control\" or \"devices\"");
    spdlog::warn("test hook: wedging the {} loop for {} s", loop, seconds);
    // The latch has no timed wait: poll it, bounded, so a loop that is already stuck does not hang the admin thread.
    for (auto until = std::chrono::steady_clock::now() + 10s; !blocked->try_wait();) {
        if (std::chrono::steady_clock::now() >= until)
            return fail(504, "the " + loop + " loop did not pick up the wedge");
        std::this_thread::sleep_for(5ms);
    }
    return {202, nlohmann::json{{"wedged", loop}, {"seconds", seconds}}.dump()};
}

std::string site_host::uplink_json() const {
    if (!uplink_) return R"({"configured":false})";
    const auto q = queue_->stats();
    const auto r = uplink_->report();
    nlohmann::json lanes = nlohmann::json::object();
    for (int i = 0; i < uplink::lane_count; ++i) {
        const auto &ql = q.lanes[i];
        const auto &rl = r.lanes[i];
        lanes[uplink::to_string(static_cast<uplink::lane>(i))] = {
            {"depth", ql.depth},           {"bytes", ql.bytes},
            {"cap_bytes", ql.cap_bytes},   {"near_full", ql.near_full},
            {"last_seq", ql.last_seq},     {"acked_through", ql.acked_through},
            {"committed", ql.committed},   {"acked", ql.acked},
            {"quarantined", ql.quarantined}, {"evicted", ql.evicted},
            {"deferred", ql.refused},      {"waiting", ql.waiting},
            {"batches", rl.batches},
            {"failures", rl.failures},     {"last_status", rl.last_status},
            {"last_error", rl.last_error}, {"last_ack_wall_ms", rl.last_ack_wall_ms},
            {"backoff_ms", rl.backoff.count()}};
    }
    nlohmann::json quarantine = nlohmann::json::array();
    try {
        for (const auto &x : queue_->quarantine(100))
            quarantine.push_back({{"lane", x.lane},
                                  {"seq", x.seq},
                                  {"status", x.status},
                                  {"reason", x.reason},
                                  {"quarantined_wall_ms", x.quarantined_wall_ms},
                                  {"record", nlohmann::json::parse(core::msgpack_to_json(x.record.data(), x.record.size()),
                                                                   nullptr, false)}});
    } catch (const std::exception &e) {
        quarantine = {{"error", e.what()}};
    }
    return nlohmann::json{{"configured", true},
                          {"url", running_.uplink.url},
                          {"queue", running_.uplink.queue_path},
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
                          {"quarantine", quarantine}}
        .dump();
}

void site_host::start_runtime() {
    auto options = runtime_options_of(cfg_);
    options.observer.accepted = [this](const std::string &, const std::string &cls, const std::string &kind) {
        metrics_.event_accepted(cls, kind);
    };
    options.observer.refused = [this](const std::string &device) { metrics_.event_refused(device); };
    options.observer.overrun = [this](const std::string &device) { metrics_.callback_overrun(device); };
    options.observer.state = [this](const std::string &device, const std::string &state) {
        metrics_.device_state(device, state);
    };
    options.observer.transport_errors = [this](const std::string &device, std::uint64_t n) {
        metrics_.transport_error(device, n);
    };
    // Every sink's backpressure: the uplink's queue, and the local record's writer. The pipeline outlives the runtime
    // (the runners' supervisors ask until the runtime is gone).
    options.admits = [this](std::string_view kind) { return pipeline_.admits(kind); };
    catalog_.configure(cfg_, options.admits);
    runtime_ = std::make_unique<core::device_runtime>(
        io_,
        [this](core::accepted_event &&ev) {
            {
                std::lock_guard lock(counts_mutex_);
                counts_[ev.device_id]++;
            }
            gate_->observe(ev);
            pipeline_.accept(ev);
        },
        options);
    gate_->attach(runtime_.get());
    devices_.attach(runtime_.get());
}

std::unique_ptr<admin::admin_server> site_host::start_admin() {
    admin::admin_handlers h;
    h.metrics_text = [this] { return metrics_text(); };
    h.health = [this] { return judge_health(health_now()); };
    h.devices_json = [this] { return devices_json(); };
    h.uplink_json = [this] { return uplink_json(); };
    h.control_json = [this] { return gate_->control_json(); };
    h.audit_json = [this](std::string_view query) { return gate_->audit_json(query); };
    h.select = [this](const admin::principal &who, const std::string &device, const std::string &body) {
        return gate_->select(who, device, body);
    };
    h.cancel = [this](const admin::principal &who, const std::string &device) { return gate_->cancel(who, device); };
    h.command = [this](const admin::principal &who, const std::string &device, const std::string &body) {
        auto answer = gate_->operate(who, device, body);
        metrics_.command(admin::command_result_of(answer.first));
        return answer;
    };
    h.mode = [this](const admin::principal &who, const std::string &device, const std::string &body) {
        return gate_->mode(who, device, body);
    };
    h.reload = [this](const admin::principal &) {
        auto done = std::make_shared<std::promise<std::pair<unsigned, std::string>>>();
        auto result = done->get_future();
        control_.post([this, done] { done->set_value(reload()); },
                      [done] { done->set_value({503, R"({"error":"the host is stopping"})"}); });
        if (result.wait_for(60s) != std::future_status::ready)
            return std::pair<unsigned, std::string>{503, R"({"error":"reload did not finish within 60 s"})"};
        return result.get();
    };
    if (const char *hooks = std::getenv("FIRELINK_TEST_HOOKS"); hooks && std::string_view(hooks) == "1") {
        spdlog::warn("FIRELINK_TEST_HOOKS=1: POST /api/test/* can wedge this host; for tests only");
        h.test_hook = [this](const std::string &name, const std::string &body) { return test_hook(name, body); };
    }
    auto o = admin_options_of(cfg_, opt_.admin_listen);
    o.on_refusal = [this](std::string_view reason) { metrics_.admin_refused(reason); };
    auto admin = std::make_unique<admin::admin_server>(admin_io_, o, h);
    admin->start();
    spdlog::info("admin endpoint on http://{}:{}/ (/healthz /metrics /api/devices)", o.host, admin->port());
    return admin;
}

void site_host::print_summary(const std::vector<std::string> &ids) const {
    std::fprintf(stderr, "summary: gateway %s, %zu device(s) ran\n", cfg_.gateway_id.c_str(), ids.size());
    for (const auto &id : ids) {
        auto st = runtime_->status(id);
        if (!st) continue;
        std::fprintf(stderr, "  %s (%s): %llu event(s) accepted, %llu refused, %llu slow callback(s), state %s\n",
                     id.c_str(), st->device_class.c_str(), static_cast<unsigned long long>(st->accepted),
                     static_cast<unsigned long long>(st->refused),
                     static_cast<unsigned long long>(st->slow_callbacks), st->state.c_str());
    }
}

int site_host::run() {
    budget_descriptors(cfg_);
    if (!start_sinks()) return 1;
    if (cfg_.uplink.configured && !start_uplink()) return 1;
    start_control();
    start_runtime();

    auto work = asio::make_work_guard(io_);
    std::vector<std::thread> threads;
    io_threads_ = std::max(2u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < io_threads_; ++i) threads.emplace_back([this] { io_.run(); });
    auto admin_work = asio::make_work_guard(admin_io_);
    std::unique_ptr<admin::admin_server> admin;
    try {
        admin = start_admin();
    } catch (const std::exception &e) {
        spdlog::critical("admin endpoint: {}", e.what());
        work.reset();
        io_.stop();
        for (auto &t : threads) t.join();
        return 1;
    }
    std::thread admin_thread([this] { admin_io_.run(); });

    restore_conditions();
    scan(cfg_);
    auto plan = plan_reload(cfg_, cfg_, devices_.running(), {});  // nothing runs yet: nothing to try
    reload_outcome started;
    devices_.apply(plan, cfg_, started);
    const auto &problems = started.problems;
    ready_ = true;
    spdlog::info("site {} (gateway {}): {} device(s) running, {} not started", cfg_.file.string(), cfg_.gateway_id,
                 devices_.running().size(), problems.size());
    // Up: every device was tried and the admin endpoint listens. systemd's Type=notify waits for this.
    last_status_ = health_summary(health_now());
    sd_.notify("READY=1\nSTATUS=" + last_status_);

    // Signals: TERM/INT stop, HUP reloads; each becomes work for this (the control) thread.
    asio::signal_set signals(io_, SIGINT, SIGTERM, SIGHUP);
    std::function<void(const boost::system::error_code &, int)> on_signal =
        [&](const boost::system::error_code &ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                spdlog::info("SIGHUP: reloading {}", cfg_.file.string());
                control_.post([this] { reload(); });
                signals.async_wait(on_signal);
                return;
            }
            spdlog::info("signal {}: stopping", sig);
            control_.stop();
        };
    signals.async_wait(on_signal);

    using clock = control_loop::clock;
    const auto deadline = opt_.seconds > 0 ? clock::now() + std::chrono::duration_cast<clock::duration>(
                                                                std::chrono::duration<double>(opt_.seconds))
                                           : clock::time_point::max();
    // With systemd, the loop also wakes to ping its watchdog (half its timeout) or, without one, to update STATUS.
    const auto tick = sd_.enabled() ? std::chrono::duration_cast<clock::duration>(
                                          sd_.watchdog_interval().value_or(std::chrono::seconds(10)))
                                    : clock::duration::max();
    control_.run(deadline, tick, [this] { watchdog_tick(); });
    sd_.notify("STOPPING=1\nSTATUS=stopping");

    // Stop. Bounded: a hung driver cannot hold it.
    std::thread([] {
        std::this_thread::sleep_for(30s);
        spdlog::critical("shutdown did not finish within 30 s: exiting");
        std::_Exit(1);
    }).detach();
    // The admin endpoint first: its views read the runtime, the queue and the uplink, which go below.
    admin->stop();
    admin_work.reset();
    admin_io_.stop();
    admin_thread.join();
    // Then the devices, then what they emitted is flushed, then the rest.
    signals.cancel();
    wires_.stop_accepting();
    const auto ids = runtime_->device_ids();
    runtime_->stop_all();
    pipeline_.flush();

    // A daemon stopped by a signal exits 0; a timed run (--for) also checks what it was told to expect.
    std::vector<std::string> failures;
    if (opt_.seconds > 0) failures = problems;
    if (opt_.seconds > 0 && opt_.expect_events > 0) {
        std::lock_guard lock(counts_mutex_);
        for (const auto &id : ids)
            if (counts_[id] < opt_.expect_events)
                failures.push_back("device " + id + " emitted " + std::to_string(counts_[id]) +
                                   " event(s), expected at least " + std::to_string(opt_.expect_events));
    }
    print_summary(ids);
    runtime_->destroy_all();
    pipeline_.flush();
    if (uplink_) {
        const auto q = queue_->stats();
        std::fprintf(stderr, "  uplink: epoch %s; queued alarm %llu, event %llu, telemetry %llu; quarantined %llu\n",
                     q.epoch.c_str(), static_cast<unsigned long long>(q.lanes[0].depth),
                     static_cast<unsigned long long>(q.lanes[1].depth),
                     static_cast<unsigned long long>(q.lanes[2].depth),
                     static_cast<unsigned long long>(q.quarantine_total));
    }
    uplink_.reset();  // its command poll calls into the runtime
    work.reset();
    io_.stop();
    for (auto &t : threads) t.join();
    gate_->attach(nullptr);  // nothing calls it any more: the admin port and the command poll are gone
    runtime_.reset();
    queue_.reset();
    if (!failures.empty()) {
        std::fprintf(stderr, "expectations: NOT met\n");
        for (const auto &f : failures) std::fprintf(stderr, "  - %s\n", f.c_str());
        return 1;
    }
    if (opt_.seconds > 0) std::fprintf(stderr, "expectations: met\n");
    return 0;
}

}  // namespace

int run_site(const run_options &options) {
    auto loaded = site::load_site_config(options.config);
    if (auto *errors = std::get_if<std::vector<site::config_error>>(&loaded)) {
        print_errors(*errors);
        return 1;
    }
    site_host host(std::get<site::site_config>(std::move(loaded)), options);
    return host.run();
}

}  // namespace firelink::cli
