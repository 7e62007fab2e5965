#include "site_host.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <firelink/admin/admin_server.hpp>
#include <firelink/admin/host_metrics.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/isolation/runner_supervisor.hpp>
#include <firelink/linkage/linkage_engine.hpp>
#include <firelink/payload.hpp>
#include <firelink/text.hpp>
#include <firelink/pipeline/sinks.hpp>
#include <firelink/uplink/record.hpp>
#include <firelink/uplink/uplink.hpp>

#include "command_gate.hpp"
#include "component_options.hpp"
#include "control_loop.hpp"
#include "descriptor_budget.hpp"
#include "device_set.hpp"
#include "health.hpp"
#include "linkage_commands.hpp"
#include "loop_watchdog.hpp"
#include "plugin_catalog.hpp"
#include "reconfigure.hpp"
#include "run_report.hpp"
#include "sd_notify.hpp"
#include "site_views.hpp"
#include "site_wiring.hpp"
#include "test_hooks.hpp"

namespace firelink::cli {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

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
    void start_linkage();
    void start_runtime();
    void emit_gateway_event(std::vector<std::uint8_t> payload, const std::string &kind,
                            std::function<void()> committed = {});
    admin::status_json linkage_call(const linkage::principal &who, const std::string &rule, const std::string &action,
                                    const std::string &body);
    std::unique_ptr<admin::admin_server> start_admin();
    void scan(const site::site_config &cfg);
    std::pair<unsigned, std::string> reload();
    health_facts health_now() const;
    std::string metrics_text();
    std::string run_platform_command(const uplink::downlink_command &c);

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
    std::unique_ptr<linkage::linkage_engine> linkage_;  // the site's [[linkage]] rules, if it has any
    std::string linkage_error_;                         // why they do not run, when they cannot
    std::atomic<std::uint64_t> gateway_seq_{0};         // the gateway's own events without an uplink
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
    loop_watchdog watchdog_{sd_, {{"devices'", &io_}, {"admin", &admin_io_}}};  // control thread
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
    if (!loaded) {
        std::vector<std::string> lines;
        for (const auto &e : loaded.error()) {
            lines.push_back(e.str());
            spdlog::error("reload refused: {}", e.str());
        }
        body = {{"reloaded", false}, {"errors", lines}};
        return {400, text::dump_json(body)};
    }
    auto next = std::move(loaded).value();
    std::vector<std::string> notes;
    if (next.gateway_id != running_.gateway_id || next.admin_listen != running_.admin_listen ||
        next.sink_kind != running_.sink_kind || next.sink_path != running_.sink_path ||
        next.watchdog_warn != running_.watchdog_warn || next.watchdog_fault != running_.watchdog_fault)
        notes.push_back("gateway, admin, sink and watchdog settings take effect at the next restart");
    const auto tags_of = [](const site::site_config &c) {
        std::map<std::string, std::vector<std::string>> out;
        for (const auto &d : c.devices) out[d.id] = d.tags;
        return out;
    };
    // A rule's runs and the conditions they acted on belong to the rules as started: a changed rule, or a changed
    // device tag a selector reads, waits for a restart rather than change a run in the middle.
    if (next.linkage != running_.linkage || tags_of(next) != tags_of(running_))
        notes.push_back("[[linkage]] rules and device tags take effect at the next restart");
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
    return {out.clean() ? 200u : 207u, text::dump_json(out.to_json(devices_.running().size()))};
}

health_facts site_host::health_now() const {
    health_facts f;
    f.ready = ready_;
    f.gateway = running_.gateway_id;
    f.uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_at_);
    std::lock_guard lock(cfg_mutex_);
    add_runtime_facts(f, *runtime_, [this](const std::string &id) {
        const auto *d = cfg_.find_device(id);
        return d ? d->where.str() + ": " : std::string();
    });
    add_plugin_facts(f, loaded_plugins_, plugin_signatures_);
    f.refused_plugins = refused_plugins_;
    f.sink_faults = pipeline_.faults();
    if (uplink_) f.uplink = health_facts::uplink_facts{queue_->stats(), uplink_->report()};
    return f;
}

std::string site_host::metrics_text() {
    for (const auto &id : runtime_->device_ids())
        if (auto st = runtime_->status(id); st && st->last_seen)
            metrics_.device_seen(id, std::chrono::duration<double>(st->last_seen->time_since_epoch()).count());
    std::vector<isolation::runner_status> runners;
    {
        std::lock_guard lock(cfg_mutex_);
        for (const auto &p : loaded_plugins_)
            if (auto r = isolation::status_of(*p)) runners.push_back(*r);
    }
    admin::scraped_series more;
    add_runner_series(more, runners);
    add_control_series(more, gate_->refusals(), gate_->audit_records());
    if (linkage_) add_linkage_series(more, linkage_->event_counts());
    if (uplink_) add_uplink_series(more, queue_->stats(), uplink_->report());
    return metrics_.serialize(more.families());
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

// A command from the platform: through the control plane like an operator's, as the principal "platform". The
// runtime reports what the device cannot take as a command_result of that device; what the control plane refuses,
// or a device this gateway does not run, is the uplink's to report.
std::string site_host::run_platform_command(const uplink::downlink_command &c) {
    if (c.device == running_.gateway_id && (c.name == platform_linkage_confirm || c.name == platform_linkage_reset)) {
        // A rule of this gateway, confirmed or reset from the platform: only as [control] platform_may allows.
        std::string why;
        if (!std::count(cfg_.control.platform_may.begin(), cfg_.control.platform_may.end(), c.name)) {
            why = "refused (not_authorized): the site does not let the platform run '" + c.name +
                  "' (list it in [control] platform_may to allow it)";
        } else {
            const auto doc = nlohmann::json::parse(core::msgpack_to_json(c.command.data(), c.command.size()), nullptr,
                                                   false);
            const auto args = doc.is_object() ? doc.value("args", nlohmann::json::object()) : nlohmann::json::object();
            const std::string rule = args.is_object() ? args.value("rule", "") : "";
            auto [status, body] = linkage_call({"platform", "platform", "platform"}, rule,
                                               c.name == platform_linkage_confirm ? "confirm" : "reset", "{}");
            if (status != 200) why = body;
            else  // no device answers for the gateway: the gateway does, with the run it confirmed or reset
                emit_gateway_event(firelink::event::command_result(c.id, true, c.name + " '" + rule + "': " + body).pack(),
                                   "command_result");
        }
        metrics_.command(why.empty() ? "accepted" : "refused");
        if (!why.empty()) spdlog::warn("platform command {} '{}' for the gateway: {}", c.id, c.name, why);
        return why;
    }
    auto why = gate_->platform(c.id, c.device, c.command);
    metrics_.command(why.empty() ? "accepted" : "refused");
    if (!why.empty()) spdlog::warn("platform command {} '{}' for device {}: {}", c.id, c.name, c.device, why);
    return why;
}

void site_host::start_control() {
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
    gate_ = command_gate::open(control_options_of(cfg_), audit_path_of(cfg_),
                               static_cast<std::uint64_t>(cfg_.control.audit_keep), std::move(upstream),
                               std::move(driver_of));
}

void site_host::emit_gateway_event(std::vector<std::uint8_t> payload, const std::string &kind,
                                   std::function<void()> committed) {
    if (queue_) {  // to the platform, and the local record
        std::function<void(std::uint64_t)> on_commit;
        if (committed) on_commit = [committed = std::move(committed)](std::uint64_t) { committed(); };
        return queue_->push_gateway_event(std::move(payload), kind, std::move(on_commit));
    }
    if (record_) record_->accept(uplink::gateway_event(cfg_.gateway_id, ++gateway_seq_, kind, std::move(payload)), {});
    if (committed) committed();  // no queue: the local record is all there is
}

void site_host::start_linkage() {
    if (cfg_.linkage.empty()) return;
    linkage::engine_options o;
    o.rules = cfg_.linkage;
    o.devices = cfg_.devices;
    o.state_path = audit_path_of(cfg_);
    linkage::engine_hooks hooks;
    hooks.command = [this](const linkage::command_request &c) { return gate_->linkage_command(c); };
    hooks.release = [this](const std::string &device, const std::string &id) { gate_->linkage_release(device, id); };
    hooks.emit = [this](std::vector<std::uint8_t> payload, const std::string &kind, std::function<void()> committed) {
        emit_gateway_event(std::move(payload), kind, std::move(committed));
    };
    hooks.audit = [this](nlohmann::json record) {
        const control::actor who{record.value("principal", ""), record.value("role", ""), record.value("source", "")};
        return gate_->note(who, std::move(record));
    };
    try {
        linkage_ = std::make_unique<linkage::linkage_engine>(std::move(o), std::move(hooks));
        spdlog::info("linkage: {} rule(s), state in {}", cfg_.linkage.size(), audit_path_of(cfg_).string());
    } catch (const std::exception &e) {
        linkage_error_ = e.what();
        spdlog::critical("linkage: {}; no rule runs", linkage_error_);
    }
}

admin::status_json site_host::linkage_call(const linkage::principal &who, const std::string &rule,
                                           const std::string &action, const std::string &body) {
    if (!linkage_)
        return {404, text::dump_json<nlohmann::json>(
                         {{"error", linkage_error_.empty() ? "this site has no [[linkage]] rules" : linkage_error_}})};
    const auto doc = nlohmann::json::parse(body.empty() ? "{}" : body, nullptr, false);
    if (!doc.is_object()) return {400, R"({"error":"the body must be a JSON object"})"};
    const auto text_of = [&](const char *key) {
        const auto it = doc.find(key);
        return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    std::pair<unsigned, nlohmann::json> answer;
    if (action == "confirm") answer = linkage_->confirm(who, rule);
    else if (action == "reset") answer = linkage_->reset(who, rule, text_of("why"));
    else answer = linkage_->set_mode(who, rule, text_of("mode"), text_of("why"));
    return {answer.first, text::dump_json(answer.second)};
}

void site_host::start_runtime() {
    auto options = runtime_options_of(cfg_);
    options.observer = observer_for(metrics_);
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
            if (linkage_) linkage_->observe(ev);  // before the pipeline: linkage never waits for the uplink
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
    h.devices_json = [this] {
        return devices_json(*runtime_, [this](const std::string &id) -> std::optional<std::map<std::string, std::string>> {
            std::lock_guard lock(cfg_mutex_);
            const auto *d = cfg_.find_device(id);
            return d ? std::optional(site_map(d->meta)) : std::nullopt;
        });
    };
    h.uplink_json = [this] {
        return uplink_ ? uplink_json(running_.uplink.url, running_.uplink.queue_path, *queue_, uplink_->report())
                       : std::string(R"({"configured":false})");
    };
    gate_->route(h, [this](unsigned status) { metrics_.command(admin::command_result_of(status)); });
    h.linkage_json = [this] {
        if (!linkage_) return text::dump_json<nlohmann::json>({{"rules", nlohmann::json::array()},
                                                               {"error", linkage_error_.empty() ? nullptr
                                                                                                : nlohmann::json(linkage_error_)}});
        return text::dump_json(linkage_->to_json());
    };
    h.linkage = [this](const admin::principal &who, const std::string &rule, const std::string &action,
                       const std::string &body) {
        return linkage_call({who.name, admin::role_name(who.role), "admin"}, rule, action, body);
    };
    h.reload = [this](const admin::principal &) {
        return control_.call<admin::status_json>([this] { return reload(); }, 60s,
                                                 {503, R"({"error":"the host is stopping"})"},
                                                 {503, R"({"error":"reload did not finish within 60 s"})"});
    };
    if (const char *hooks = std::getenv("FIRELINK_TEST_HOOKS"); hooks && std::string_view(hooks) == "1") {
        spdlog::warn("FIRELINK_TEST_HOOKS=1: POST /api/test/* can wedge this host; for tests only");
        h.test_hook = [this](const std::string &name, const std::string &body) {
            return run_test_hook(name, body,
                                 {[this](std::function<void()> job) { control_.post(std::move(job)); },
                                  [this](std::function<void()> job) { asio::post(io_, std::move(job)); }, io_threads_});
        };
    }
    auto o = admin_options_of(cfg_, opt_.admin_listen);
    o.on_refusal = [this](std::string_view reason) { metrics_.admin_refused(reason); };
    auto admin = std::make_unique<admin::admin_server>(admin_io_, o, h);
    admin->start();
    spdlog::info("admin endpoint on http://{}:{}/ (/healthz /metrics /api/devices)", o.host, admin->port());
    return admin;
}

int site_host::run() {
    budget_descriptors(cfg_);
    if (!start_sinks()) return 1;
    if (cfg_.uplink.configured && !start_uplink()) return 1;
    start_control();
    start_linkage();
    start_runtime();

    loop_threads devices_loop(io_, std::max(2u, std::thread::hardware_concurrency()));
    io_threads_ = devices_loop.size();
    std::unique_ptr<admin::admin_server> admin;
    try {
        admin = start_admin();
    } catch (const std::exception &e) {
        spdlog::critical("admin endpoint: {}", e.what());
        return 1;
    }
    loop_threads admin_loop(admin_io_, 1);

    if (queue_) restore_conditions(*queue_, *runtime_, cfg_);
    scan(cfg_);
    if (linkage_) {
        // A rule whose command a driver does not declare would fail at the worst moment: it does not run at all.
        const auto problems = linkage_command_problems(cfg_, [this](const site::device_config &d) {
            auto p = catalog_.resolve(d);
            return p ? (*p)->info().find_driver(d.driver) : nullptr;
        });
        for (const auto &p : problems) {
            spdlog::error("linkage '{}' does not run: {}", p.rule, p.message);
            linkage_->refuse(p.rule, p.message);
        }
    }
    if (linkage_) {
        // Before the devices start, so that no event of theirs comes before the rules hear: the conditions open now
        // are the ones the queue kept. An action left by the previous host waits (not_ready) for its device.
        std::vector<core::open_condition> open;
        for (const auto &d : cfg_.devices)
            for (auto &c : runtime_->open_conditions(d.id)) open.push_back(std::move(c));
        try {
            linkage_->start(open);
        } catch (const std::exception &e) {
            spdlog::critical("linkage: cannot start: {}; no rule runs", e.what());
            linkage_error_ = e.what();
        }
    }
    auto plan = plan_reload(cfg_, cfg_, devices_.running(), {});  // nothing runs yet: nothing to try
    reload_outcome started;
    devices_.apply(plan, cfg_, started);
    const auto &problems = started.problems;
    ready_ = true;
    spdlog::info("site {} (gateway {}): {} device(s) running, {} not started", cfg_.file.string(), cfg_.gateway_id,
                 devices_.running().size(), problems.size());
    // Up: every device was tried and the admin endpoint listens. systemd's Type=notify waits for this.
    watchdog_.ready(health_summary(health_now()));

    // Signals: TERM/INT stop, HUP reloads; each becomes work for this (the control) thread.
    control_.handle_signals(io_, [this] {
        spdlog::info("SIGHUP: reloading {}", cfg_.file.string());
        reload();
    });

    using clock = control_loop::clock;
    const auto deadline = opt_.seconds > 0 ? clock::now() + std::chrono::duration_cast<clock::duration>(
                                                                std::chrono::duration<double>(opt_.seconds))
                                           : clock::time_point::max();
    // With systemd, the loop also wakes to ping its watchdog (half its timeout) or, without one, to update STATUS.
    const auto tick = sd_.enabled() ? std::chrono::duration_cast<clock::duration>(
                                          sd_.watchdog_interval().value_or(std::chrono::seconds(10)))
                                    : clock::duration::max();
    control_.run(deadline, tick, [this] { watchdog_.tick(health_summary(health_now())); });
    sd_.notify("STOPPING=1\nSTATUS=stopping");

    // Stop. Bounded: a hung driver cannot hold it.
    std::thread([] {
        std::this_thread::sleep_for(30s);
        spdlog::critical("shutdown did not finish within 30 s: exiting");
        std::_Exit(1);
    }).detach();
    // The admin endpoint first: its views read the runtime, the queue and the uplink, which go below.
    admin->stop();
    admin_loop.stop();
    if (linkage_) linkage_->stop();  // no command goes to a device that is stopping
    // Then the devices, then what they emitted is flushed, then the rest.
    control_.ignore_signals();
    wires_.stop_accepting();
    const auto ids = runtime_->device_ids();
    runtime_->stop_all();
    pipeline_.flush();

    // A daemon stopped by a signal exits 0; a timed run (--for) also checks what it was told to expect.
    std::vector<std::string> failures;
    if (opt_.seconds > 0) {
        std::lock_guard lock(counts_mutex_);
        failures = unmet_expectations(problems, counts_, ids, opt_.expect_events);
    }
    print_device_summary(cfg_.gateway_id, *runtime_, ids);
    runtime_->destroy_all();
    pipeline_.flush();
    if (queue_) print_queue_summary(*queue_);
    uplink_.reset();  // its command poll calls into the runtime
    devices_loop.stop();
    gate_->attach(nullptr);  // nothing calls it any more: the admin port and the command poll are gone
    runtime_.reset();
    {
        std::lock_guard lock(cfg_mutex_);
        loaded_plugins_.clear();
    }
    catalog_.unload();  // the runners' supervisors ask the pipeline, and so the queue, for room until they stop
    queue_.reset();
    return opt_.seconds > 0 ? report_expectations(failures) : 0;
}

}  // namespace

int run_site(const run_options &options) {
    auto loaded = site::load_site_config(options.config);
    if (!loaded) {
        print_errors(loaded.error());
        return 1;
    }
    site_host host(std::move(loaded).value(), options);
    return host.run();
}

}  // namespace firelink::cli
