#include "site_host.hpp"
#include "reconfigure.hpp"

#include "command_gate.hpp"
#include "health.hpp"
#include "sd_notify.hpp"

#include <algorithm>
#include <condition_variable>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <firelink/admin/admin_server.hpp>
#include <firelink/admin/host_metrics.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/isolation/runner_supervisor.hpp>
#include <firelink/payload.hpp>
#include <firelink/pipeline/sinks.hpp>
#include <firelink/signing/minisign.hpp>
#include <firelink/site/suggest.hpp>
#include <firelink/transport/link.hpp>
#include <firelink/uplink/uplink.hpp>

namespace firelink::cli {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

std::string at(const site::source_position &p) {
    return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column);
}

// ---- plugins ---------------------------------------------------------------------------------------------------

struct catalog {
    core::plugin_loader loader;
    std::vector<std::shared_ptr<core::plugin>> plugins;
    std::set<std::filesystem::path> seen;
    std::vector<std::string> refusals;
    // Where plugins run; until configure() is called, in this process.
    std::optional<site::isolation_config> isolation;
    isolation::supervisor_options runner_options;
    // Whose plugins load ([plugins] signatures, trusted_keys); nothing is checked until configure() is called.
    site::signing_config signing{.policy = "off", .trusted = {}};
    // What the check of each plugin file found (its signer, or why it has none), for /healthz and the log.
    std::map<std::filesystem::path, signing::verdict> signatures;
    // The descriptors plugins were loaded through in this process, open as long as the catalog: dlopen knows a
    // library by the name it was opened as, so a /proc/self/fd/N reused by the next file would give back the last.
    std::vector<int> mapped_fds;

    catalog() = default;
    catalog(const catalog &) = delete;
    catalog &operator=(const catalog &) = delete;
    ~catalog() {
        for (int fd : mapped_fds) ::close(fd);
    }

    // Loads every plugin file under dirs that was not loaded before.
    void scan(const std::vector<std::filesystem::path> &dirs) {
        for (const auto &dir : dirs) {
            std::error_code ec;
            if (!std::filesystem::is_directory(dir, ec)) {
                refusals.push_back(dir.string() + ": not a directory");
                spdlog::error("plugin directory {} does not exist", dir.string());
                continue;
            }
            for (const auto &file : core::plugin_loader::candidates(dir)) {
                if (!seen.insert(file).second) continue;
                auto result = load(file);
                if (auto *err = std::get_if<core::load_error>(&result)) {
                    refusals.push_back(file.string() + ": " + err->what());
                    spdlog::error("plugin {} refused: {}", file.string(), err->what());
                    continue;
                }
                auto p = std::shared_ptr<core::plugin>(std::move(std::get<std::unique_ptr<core::plugin>>(result)));
                spdlog::info("plugin {} {} loaded from {} ({})", p->info().id, p->info().version, file.string(),
                             p->remote() ? "in its own process" : "in the host process");
                plugins.push_back(std::move(p));
            }
        }
    }

    // Plugins load where the site says, with its runner settings, if signed as it says.
    void configure(const site::site_config &cfg) {
        signing = cfg.signing;
        isolation = cfg.isolation;
        auto &ro = runner_options;
        ro.runner = cfg.isolation.runner;
        ro.limits = {cfg.isolation.memory_mb, cfg.isolation.open_files, cfg.isolation.user,
                     cfg.watchdog_warn.count()};
        ro.uids = {cfg.isolation.uid_first, cfg.isolation.uid_last};
        ro.hang_timeout = cfg.isolation.hang_timeout;
        ro.call_timeout = cfg.watchdog_fault / 2;  // under the watchdog's fault bound, which times the same call
        ro.restart_limit = cfg.isolation.restart_limit;
        ro.restart_window = cfg.isolation.restart_window;
        ro.backoff_initial = cfg.isolation.backoff_initial;
        ro.backoff_max = cfg.isolation.backoff_max;
        ro.ring_kb = cfg.isolation.ring_kb;
        ro.data_credit_kb = cfg.isolation.data_credit_kb;
    }

    // The file is opened once; its signature is checked on what this descriptor reads, and the plugin is loaded
    // through it (here as /proc/self/fd/N, in a runner as the descriptor handed over), so that the file checked is
    // the file mapped even if another is renamed into its place meanwhile. The refusal under "require"; nullopt
    // otherwise ("warn" logs and loads; "off" checks nothing and leaves fd at -1).
    std::optional<core::load_error> check_signature(const std::filesystem::path &file, int &fd) {
        if (signing.policy == "off") return std::nullopt;
        fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return core::load_error{file, core::refusal::not_found, std::strerror(errno)};
        auto v = signing::verify_fd(fd, file.string() + ".minisig", signing.keys());
        if (v.ok())
            spdlog::info("plugin {}: signed by key ID {}, trusted comment: {}", file.string(), signing::to_hex(*v.id),
                         v.trusted_comment);
        else if (signing.policy == "warn")
            spdlog::warn("plugin {}: {}; loaded all the same ([plugins] signatures = \"warn\")", file.string(), v.why);
        const bool refuse = !v.ok() && signing.policy == "require";
        const std::string why = v.why;
        signatures[file] = std::move(v);
        if (refuse) return core::load_error{file, core::refusal::signature_refused, why};
        return std::nullopt;
    }

    // A plugin's id is known only once something has loaded it: it is loaded where the default says, and moved
    // when [plugins.isolation_of] says otherwise for that id.
    core::load_result load(const std::filesystem::path &file) {
        int fd = -1;
        bool kept = false;  // in mapped_fds
        struct closer {
            int &fd;
            bool &kept;
            ~closer() {
                if (fd >= 0 && !kept) ::close(fd);
            }
        } close_fd{fd, kept};
        if (auto refused = check_signature(file, fd)) return *refused;
        auto load_in = [&](bool in_process) -> core::load_result {
            if (in_process && fd >= 0) {
                if (!kept) mapped_fds.push_back(fd);
                kept = true;
                return loader.load("/proc/self/fd/" + std::to_string(fd), file);
            }
            if (in_process) return loader.load(file);
            auto r = isolation::load_out_of_process(file, runner_options, fd);
            if (auto *p = std::get_if<std::unique_ptr<core::plugin>>(&r)) {
                const auto &id = (*p)->info().id;
                for (const auto &other : plugins)
                    if (other->info().id == id)
                        return core::load_error{file, core::refusal::duplicate_plugin_id,
                                                "plugin id " + id + " is already loaded from " +
                                                    other->info().file.string()};
            }
            return r;
        };
        const bool default_in = !isolation || isolation->default_mode == "in_process";
        auto r = load_in(default_in);
        auto *p = std::get_if<std::unique_ptr<core::plugin>>(&r);
        if (!p || !isolation || isolation->in_process((*p)->info().id) == default_in) return r;
        const std::string id = (*p)->info().id;
        p->reset();
        if (default_in) loader.forget(id);
        return load_in(!default_in);
    }

    // The plugin and driver a device names, or why there is none.
    std::shared_ptr<core::plugin> resolve(const site::device_config &d, std::string &why) const {
        std::vector<std::shared_ptr<core::plugin>> found;
        for (const auto &p : plugins)
            if ((d.plugin.empty() || p->info().id == d.plugin) && p->info().find_driver(d.driver)) found.push_back(p);
        if (found.empty()) {
            why = not_found(d);
            return nullptr;
        }
        if (found.size() > 1) {
            why = "driver '" + d.driver + "' is in several plugins (" + found[0]->info().id + ", " +
                  found[1]->info().id + "): name the plugin";
            return nullptr;
        }
        const auto *driver = found[0]->info().find_driver(d.driver);
        if (driver->device_class != d.device_class) {
            why = "class '" + d.device_class + "' does not match driver '" + d.driver + "', which drives '" +
                  driver->device_class + "'";
            return nullptr;
        }
        return found[0];
    }

    // Why no loaded plugin matches what the device names, with the closest names there are: a misspelt id is the
    // usual reason.
    std::string not_found(const site::device_config &d) const {
        std::vector<std::string> ids, drivers;
        const core::plugin *named = nullptr;
        for (const auto &p : plugins) {
            ids.push_back(p->info().id);
            if (p->info().id == d.plugin) named = p.get();
            if (d.plugin.empty() || p->info().id == d.plugin)
                for (const auto &driver : p->info().drivers) drivers.push_back(driver.id);
        }
        if (!d.plugin.empty() && !named)
            return "plugin '" + d.plugin + "' is not loaded" + site::did_you_mean(d.plugin, ids);
        return (named ? "plugin '" + d.plugin + "' has no driver '" : "no loaded plugin has driver '") + d.driver +
               "'" + site::did_you_mean(d.driver, drivers);
    }
};

// What `run` would refuse of a device's definition, at its place in the site file: no plugin for it, or its driver's
// own refusal of its config.
std::optional<site::config_error> trial(core::device_runtime &runtime, const catalog &plugins,
                                        const site::site_config &cfg, const site::device_config &d) {
    std::string why;
    auto p = plugins.resolve(d, why);
    if (!p) return site::config_error{d.where, "", "device '" + d.id + "': " + why};
    return try_device(runtime, p, cfg, d);
}

// ---- wires -----------------------------------------------------------------------------------------------------

transport::serial_settings serial_of(const site::serial_config &s) {
    return {s.path, s.baud, s.data_bits, s.parity, s.stop_bits};
}

// The shared wires of a site: RS-485 buses and TCP listeners, made on first use.
class wiring {
public:
    explicit wiring(asio::io_context &io) : io_(io) {}

    core::link_factory factory(const site::site_config &cfg, const site::device_config &d, std::string &why) {
        using kind = site::wire_config::kind;
        const auto &w = d.wire;
        const transport::backoff retry{};
        switch (w.type) {
        case kind::none: return {};
        case kind::bus: {
            const auto *b = cfg.find_bus(w.bus);
            if (!b) {
                why = "bus '" + w.bus + "' is not defined";
                return {};
            }
            const int unit = w.unit;
            if (!b->shared) {
                auto settings = serial_of(b->serial);
                return [settings, retry, unit](transport::executor ex, transport::link_events ev) {
                    auto l = transport::make_serial_link(std::move(ex), settings, retry, std::move(ev));
                    l->set_unit(unit);
                    return l;
                };
            }
            auto &bus = buses_[b->id];
            if (!bus.bus || !same_bus(bus.config, *b)) {
                bus.config = *b;
                bus.bus = transport::make_rs485_bus(io_, serial_of(b->serial),
                                                    {b->inter_frame_gap, b->request_timeout}, retry);
            }
            auto shared = bus.bus;
            return [shared, unit](transport::executor ex, transport::link_events ev) {
                auto l = shared->attach(std::move(ex), std::move(ev));
                l->set_unit(unit);
                return l;
            };
        }
        case kind::tcp_client: {
            auto host = w.host;
            auto port = w.port;
            const int unit = w.unit;
            return [host, port, retry, unit](transport::executor ex, transport::link_events ev) {
                auto l = transport::make_tcp_client_link(std::move(ex), host, port, retry, std::move(ev));
                l->set_unit(unit);
                return l;
            };
        }
        case kind::udp: {
            auto host = w.host;
            auto port = w.port;
            return [host, port](transport::executor ex, transport::link_events ev) {
                return transport::make_udp_link(std::move(ex), host, port, std::move(ev));
            };
        }
        case kind::listener: {
            const auto *l = cfg.find_listener(w.listener);
            if (!l) {
                why = "listener '" + w.listener + "' is not defined";
                return {};
            }
            auto &entry = listeners_[l->id];
            if (!entry.listener || entry.address != l->address || entry.port != l->port) {
                entry.listener.reset();  // release the old port before binding the new address
                try {
                    entry.listener = transport::make_tcp_listener(io_, l->address, l->port,
                                                                  {l->max_unbound, l->identify_timeout});
                } catch (const std::exception &e) {
                    why = "listener '" + l->id + "' cannot listen on " + l->address + ":" +
                          std::to_string(l->port) + ": " + e.what();
                    return {};
                }
                entry.address = l->address;
                entry.port = l->port;
                spdlog::info("listener {} on {}:{}", l->id, l->address, entry.listener->port());
            }
            auto listener = entry.listener;
            auto peer = w.peer;
            auto identity = w.identity;
            auto allow = w.allow_peers;
            return [listener, peer, identity, allow](transport::executor ex, transport::link_events ev) {
                return peer.empty() ? listener->attach_identity(std::move(ex), identity, std::move(ev), allow)
                                    : listener->attach_peer(std::move(ex), peer, std::move(ev));
            };
        }
        }
        return {};
    }

    // Forgets the buses and listeners the site no longer has (each closes once its last device is gone).
    void prune(const site::site_config &cfg) {
        std::erase_if(buses_, [&](const auto &b) { return !cfg.find_bus(b.first); });
        std::erase_if(listeners_, [&](const auto &l) { return !cfg.find_listener(l.first); });
    }

    std::shared_ptr<transport::tcp_listener> listener(const std::string &id) const {
        auto it = listeners_.find(id);
        return it == listeners_.end() ? nullptr : it->second.listener;
    }

    // The host is stopping: no listener takes a new connection while its devices close.
    void stop_accepting() {
        for (auto &[id, entry] : listeners_) {
            entry.listener->stop_accepting();
            entry.listener->set_conflict_handler({});  // it names the runtime, which goes before the listeners may
        }
    }

private:
    struct bus_entry {
        site::bus_config config;
        std::shared_ptr<transport::rs485_bus> bus;
    };
    struct listener_entry {
        std::string address;
        std::uint16_t port = 0;
        std::shared_ptr<transport::tcp_listener> listener;
    };
    asio::io_context &io_;
    std::map<std::string, bus_entry> buses_;
    std::map<std::string, listener_entry> listeners_;
};

// ---- the daemon ------------------------------------------------------------------------------------------------

class site_host {
public:
    site_host(site::site_config cfg, const run_options &opt)
        : cfg_(std::move(cfg)), running_(cfg_), opt_(opt), metrics_("1.0.0"), wires_(io_) {}

    int run();

private:
    void scan(const site::site_config &cfg);
    void apply(reload_plan &plan, const site::site_config &previous, reload_outcome &out);
    void identify_on_listeners(const site::site_config &cfg);
    void budget_descriptors();  // at start: the descriptor limit, and what strangers may hold of it
    bool start_device(const site::site_config &cfg, const site::device_config &d, std::string &why);
    void mark_down(const site::device_config &d, const std::string &why);
    void forget(const std::string &device_id);
    std::pair<unsigned, std::string> reload();
    void start_control();
    std::string devices_json() const;
    health_facts health_now() const;
    void watchdog_tick();
    std::pair<unsigned, std::string> test_hook(const std::string &name, const std::string &body);
    std::string metrics_text();
    std::string uplink_json() const;
    bool start_uplink();
    void restore_conditions();
    std::string run_platform_command(const uplink::downlink_command &c);

    // The control thread runs every reconfiguration, one at a time. A job still queued when the host stops is
    // cancelled instead (its waiter gets an answer at once).
    struct control_job {
        std::function<void()> run;
        std::function<void()> cancel;
    };
    void post_control(std::function<void()> run, std::function<void()> cancel = {}) {
        {
            std::lock_guard lock(control_mutex_);
            if (!stopping_) {
                control_.push_back({std::move(run), std::move(cancel)});
                control_cv_.notify_all();
                return;
            }
        }
        if (cancel) cancel();
    }

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
    catalog catalog_;                                            // control thread only
    std::vector<std::shared_ptr<core::plugin>> loaded_plugins_;  // what it has loaded, for the admin thread (cfg_mutex_)
    std::vector<std::string> refused_plugins_;                   // and what it refused, "file: why" (cfg_mutex_)
    std::map<std::filesystem::path, signing::verdict> plugin_signatures_;  // the catalog's, for the admin thread
    wiring wires_;
    std::map<std::string, std::string> fingerprints_;  // running device -> what it was made from
    std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
    std::atomic<bool> ready_{false};  // every configured device has been tried once
    unsigned io_threads_ = 0;
    // systemd's watchdog (control thread): each event loop answers a post between two pings, or no ping is sent.
    std::atomic<bool> io_answered_{true}, admin_answered_{true};
    bool pings_withheld_ = false;
    std::string last_status_;

    std::mutex control_mutex_;
    std::condition_variable control_cv_;
    std::deque<control_job> control_;
    bool stopping_ = false;
};

bool site_host::start_device(const site::site_config &cfg, const site::device_config &d, std::string &why) {
    auto plugin = catalog_.resolve(d, why);
    if (!plugin) return false;
    auto spec = spec_of(cfg, d);
    spec.make_link = wires_.factory(cfg, d, why);
    if (!why.empty()) return false;
    if (runtime_->create(plugin, spec, why) != FL_OK) return false;
    if (runtime_->start(d.id, why) != FL_OK) {
        runtime_->destroy(d.id);
        return false;
    }
    return true;
}

// A device that does not run stays listed, down, and the platform hears why (device_down), never silence.
void site_host::mark_down(const site::device_config &d, const std::string &why) {
    core::down_spec spec{d.id, d.plugin, d.driver, d.device_class, site_map(d.meta)};
    std::string unresolved;
    if (auto p = catalog_.resolve(d, unresolved)) spec.plugin_id = p->info().id;
    runtime_->set_down(spec, why);
}

// A device the site no longer has: what the host raised for it ends (nothing is left open at the platform that no
// one will ever end), then it goes, with its metrics.
void site_host::forget(const std::string &device_id) {
    const std::string gone = "the device was removed from the site file";
    runtime_->end_fault(device_id, core::host_fault::config_rejected, gone);
    runtime_->end_fault(device_id, core::host_fault::device_down, gone);
    runtime_->end_fault(device_id, core::host_fault::identity_conflict, gone);
    spdlog::info("device {}: removed", device_id);
    runtime_->destroy(device_id);
    metrics_.remove_device(device_id);
    fingerprints_.erase(device_id);
}

void site_host::scan(const site::site_config &cfg) {
    catalog_.signing = cfg.signing;  // a reload's trusted keys are the ones its new plugin files are checked against
    catalog_.scan(cfg.plugin_dirs);
    std::lock_guard lock(cfg_mutex_);
    loaded_plugins_ = catalog_.plugins;
    refused_plugins_ = catalog_.refusals;
    plugin_signatures_ = catalog_.signatures;
}

// Brings the running devices to plan.effective. Every removed and changed device is destroyed first, so that a bus or
// listener whose settings change is closed before it opens anew; then the changed and new devices are created. A
// changed device whose new definition passed its trial and still did not start (its start, or its wire, failed) is
// put back on its previous definition when that can still run; a device that cannot run at all is down.
void site_host::apply(reload_plan &plan, const site::site_config &previous, reload_outcome &out) {
    auto &next = plan.effective;
    std::set<std::string> wanted;
    for (const auto &d : next.devices)
        if (d.enabled) wanted.insert(d.id);
    for (const auto &down : runtime_->down_devices())
        if (!wanted.count(down.device_id) && !fingerprints_.count(down.device_id)) forget(down.device_id);
    for (const auto &id : plan.removed) forget(id);
    for (const auto &id : plan.changed) {
        spdlog::info("device {}: changed, recreating", id);
        runtime_->destroy(id);
        metrics_.remove_device(id);
        fingerprints_.erase(id);
    }
    wires_.prune(next);
    out.added = plan.added;
    out.removed = plan.removed;
    out.kept = plan.kept;
    out.notes.insert(out.notes.end(), plan.notes.begin(), plan.notes.end());
    const std::set<std::string> changed(plan.changed.begin(), plan.changed.end());
    for (auto &d : next.devices) {
        if (!d.enabled || fingerprints_.count(d.id)) continue;  // unchanged, or kept on its previous definition
        std::string why;
        if (start_device(next, d, why)) {
            fingerprints_[d.id] = device_fingerprint(next, d);
            spdlog::info("device {} ({} / {}) started", d.id, d.driver, d.device_class);
            if (changed.count(d.id)) out.changed.push_back(d.id);
            runtime_->end_fault(d.id, core::host_fault::config_rejected, "the device runs on its new definition");
            continue;
        }
        const auto *old = changed.count(d.id) ? previous.find_device(d.id) : nullptr;
        std::string old_why;
        if (old && same_shared_wire(previous, next, *old) && start_device(previous, *old, old_why)) {
            const std::string refused = "device '" + d.id + "': its new definition did not start: " + why;
            out.kept.push_back({d.id, site::config_error{d.where, "", refused}});
            site::device_config back = *old;
            back.heartbeat = previous.heartbeat_of(*old);
            d = std::move(back);
            fingerprints_[d.id] = device_fingerprint(next, d);
            continue;
        }
        if (old)
            why += "; its previous definition did not start either: " + (old_why.empty() ? "its wire changed" : old_why);
        out.problems.push_back(at(d.where) + ": device '" + d.id + "': " + why);
        spdlog::error("{}: device '{}' not started: {}", at(d.where), d.id, why);
        mark_down(d, why);
    }
    // A device kept on its previous definition whose site file was put back to that definition is no longer refused.
    std::set<std::string> kept;
    for (const auto &k : out.kept) kept.insert(k.device_id);
    for (const auto &x : runtime_->open_faults(core::host_fault::config_rejected))
        if (!kept.count(x.device_id) && fingerprints_.count(x.device_id))
            runtime_->end_fault(x.device_id, core::host_fault::config_rejected,
                                "the site file again matches the definition the device runs on");
    for (const auto &k : out.kept) {
        spdlog::error("{}; device {} keeps running on its previous definition", k.refusal.str(), k.device_id);
        runtime_->raise_fault(k.device_id, core::host_fault::config_rejected, rejection_message(k.refusal));
    }
    identify_on_listeners(next);
}

// A listener whose devices bind by identity asks their drivers (firelink.identify/1) who a new connection is.
void site_host::identify_on_listeners(const site::site_config &cfg) {
    struct candidate {
        std::shared_ptr<core::plugin> plugin;  // keeps the identify function loaded
        std::string driver;
    };
    std::map<std::string, std::vector<candidate>> by_listener;
    std::map<std::string, std::map<std::string, std::string>> device_of;  // listener -> identity -> device id
    for (const auto &d : cfg.devices) {
        if (!fingerprints_.count(d.id) || d.wire.type != site::wire_config::kind::listener || d.wire.identity.empty())
            continue;
        std::string why;
        auto p = catalog_.resolve(d, why);
        if (!p) continue;
        if (!p->can_identify()) {
            spdlog::error("{}: device '{}' binds by identity, but its driver '{}' cannot identify a connection "
                          "({} missing): bind it by peer address instead",
                          at(d.where), d.id, d.driver, FL_EXT_IDENTIFY);
            continue;
        }
        device_of[d.wire.listener][d.wire.identity] = d.id;
        auto &list = by_listener[d.wire.listener];
        bool seen = false;
        for (const auto &c : list) seen = seen || (c.plugin == p && c.driver == d.driver);
        if (!seen) list.push_back({p, d.driver});
    }
    for (auto &[id, candidates] : by_listener) {
        auto l = wires_.listener(id);
        if (!l) continue;
        l->set_identifier([candidates](const std::uint8_t *data, std::size_t size, std::string &identity) {
            bool more = false;
            for (const auto &c : candidates) {
                const fl_status st = c.plugin->identify(c.driver, data, size, identity);
                if (st == FL_OK) return FL_OK;
                more = more || st == FL_BUSY;
            }
            return more ? FL_BUSY : FL_INVALID_ARGUMENT;
        });
        // The listener refused someone claiming a connected device's identity: the platform hears of it from that
        // device, as a host fault (the listener limits how often).
        l->set_conflict_handler([devices = device_of[id], runtime = runtime_.get()](
                                    const std::string &identity, const std::string &, const std::string &what) {
            if (auto it = devices.find(identity); it != devices.end())
                runtime->raise_fault(it->second, core::host_fault::identity_conflict, what);
        });
    }
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
    auto plan = plan_reload(cfg_, next, fingerprints_, [this](const auto &c, const auto &d) {
        return trial(*runtime_, catalog_, c, d);
    });
    reload_outcome out;
    out.notes = std::move(notes);
    apply(plan, cfg_, out);
    {
        std::lock_guard lock(cfg_mutex_);
        cfg_ = std::move(plan.effective);
    }
    spdlog::info("reloaded {}: {} device(s) running; {}; {} problem(s)", cfg_.file.string(), fingerprints_.size(),
                 out.summary(), out.problems.size());
    return {out.clean() ? 200u : 207u, out.to_json(fingerprints_.size()).dump()};
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

bool site_host::start_uplink() {
    const auto &u = cfg_.uplink;
    uplink::queue_options q;
    q.path = u.queue_path;
    q.gateway_id = cfg_.gateway_id;
    q.cap_bytes = {static_cast<std::uint64_t>(u.alarm_cap_mb) << 20, static_cast<std::uint64_t>(u.event_cap_mb) << 20,
                   static_cast<std::uint64_t>(u.telemetry_cap_mb) << 20};
    q.reserve_bytes = static_cast<std::uint64_t>(u.reserve_mb) << 20;
    q.max_pending = static_cast<std::size_t>(u.max_pending);
    // The platform gets the gateway's own events (queue_near_full, command_failed, ...) from the queue; the local
    // record gets the same, so that what the platform has is also on the gateway's disk.
    q.on_gateway_event = [this](const core::accepted_event &ev) {
        if (record_) record_->accept(ev, {});
    };
    uplink::uplink_options o;
    o.gateway_id = cfg_.gateway_id;
    o.http.base_url = u.url;
    o.http.ca_file = u.ca_file;
    o.http.client_cert = u.client_cert;
    o.http.client_key = u.client_key;
    o.http.gateway_id = cfg_.gateway_id;
    o.http.timeout = u.timeout;
    o.batch_max_events = static_cast<std::size_t>(u.batch_max_events);
    o.batch_max_bytes = static_cast<std::size_t>(u.batch_max_bytes);
    o.poll_commands = u.poll_commands;
    o.backoff_max = u.backoff_max;
    o.alarm_backoff_max = std::min<std::chrono::milliseconds>(o.alarm_backoff_max, u.backoff_max);
    try {
        if (!u.token_file.empty()) {
            FILE *f = std::fopen(u.token_file.c_str(), "r");
            if (!f) throw std::runtime_error("token_file " + u.token_file + ": " + std::strerror(errno));
            char buf[4096];
            const auto n = std::fread(buf, 1, sizeof buf, f);
            std::fclose(f);
            std::string token(buf, n);
            while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
            while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
            if (token.empty()) throw std::runtime_error("token_file " + u.token_file + " is empty");
            o.http.token = token;
        }
        queue_ = std::make_unique<uplink::durable_queue>(q);
    } catch (const std::exception &e) {
        spdlog::critical("{}: uplink: {}", cfg_.file.string(), e.what());
        return false;
    }
    const auto &opened = queue_->opened();
    spdlog::info("uplink to {}: queue {} (epoch {}, {}{} events waiting, checked in {} ms)", u.url, u.queue_path,
                 queue_->epoch(), opened.created ? "new, " : "", opened.backlog, opened.check_took.count());
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

// The audit chain: in the queue's file with an uplink (one file to keep and back up), else its own beside the site
// file. A chain that cannot be opened leaves the host running — alarms still flow — and every command refused.
void site_host::start_control() {
    control::control_options o;
    o.select_timeout = cfg_.control.select_timeout;
    o.platform_may = {cfg_.control.platform_may.begin(), cfg_.control.platform_may.end()};
    std::filesystem::path path = cfg_.control.audit_path;
    if (path.empty())
        path = cfg_.uplink.configured ? std::filesystem::path(cfg_.uplink.queue_path)
                                      : cfg_.file.parent_path() / "firelink-audit.db";
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
        if (!queue_) return;
        const auto &r = e.record;
        auto text = [&](const char *key) {
            auto it = r.find(key);
            return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
        };
        firelink::event ev{firelink::event_kind::status, "audit"};
        ev.message((text("step") + " '" + text("command") + "' on " + text("device") + " by " + text("principal") +
                    " (" + text("source") + ")" + (text("reason").empty() ? "" : ": " + text("reason")))
                       .substr(0, 1024));
        ev.value("audit_seq", e.seq).value("audit_hash", e.hash).value("step", text("step"));
        for (const char *key : {"principal", "role", "source", "device", "command", "command_id", "select_id", "reason"})
            if (auto v = text(key); !v.empty()) ev.value(key, v.substr(0, 256));
        if (auto g = r.find("granted"); g != r.end() && g->is_boolean()) ev.value("granted", g->get<bool>());
        if (auto ok = r.find("ok"); ok != r.end() && ok->is_boolean()) ev.value("ok", ok->get<bool>());
        queue_->push_gateway_event(ev.pack(), "status");
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
    gate_ = std::make_unique<command_gate>(std::move(o), std::move(audit), std::move(upstream), std::move(driver_of),
                                           std::move(audit_error));
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
    if (loop == "control") post_control(block);
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

// Each connection a listener holds unbound, or the admin port holds, is a descriptor a stranger chose to take. The
// soft limit is raised to the hard one, and those caps together kept within it less a reserve, so that device
// connections, runners (socketpairs, memfds), the queue and the uplink always find descriptors, whatever connects.
void site_host::budget_descriptors() {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        spdlog::warn("descriptors: getrlimit(RLIMIT_NOFILE): {}", std::strerror(errno));
        return;
    }
    const rlim_t before = rl.rlim_cur;
    // An unlimited hard limit is still capped by the kernel (fs.nr_open, 1048576 by default), which refuses more.
    const rlim_t target = rl.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_max;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            spdlog::warn("descriptors: cannot raise the limit from {} to {}: {}", before, target,
                         std::strerror(errno));
            rl.rlim_cur = before;
        }
    }
    const auto limit = static_cast<std::size_t>(std::min<rlim_t>(rl.rlim_cur, 1 << 30));
    const std::size_t reserve = std::max<std::size_t>(256, limit / 4);
    const std::size_t budget = limit > reserve ? limit - reserve : 0;
    std::size_t wanted = cfg_.admin_max_connections;
    for (const auto &l : cfg_.listeners) wanted += l.max_unbound;
    spdlog::info("descriptors: limit {} (was {}); {} kept for devices, runners and the uplink; listeners' unbound "
                 "connections and the admin port may hold {} of the rest",
                 limit, before, reserve, std::min(wanted, budget));
    if (wanted <= budget) return;
    // Scaled down alike, each keeping at least one: the site asked for more than the machine allows.
    const auto scaled = [&](std::size_t n) { return std::max<std::size_t>(1, n * budget / wanted); };
    spdlog::warn("descriptors: [[listener]] max_unbound and [admin] max_connections add up to {}, more than the {} "
                 "the limit leaves; each is scaled down to fit (raise the hard limit, e.g. LimitNOFILE=, to keep them)",
                 wanted, budget);
    cfg_.admin_max_connections = scaled(cfg_.admin_max_connections);
    for (auto &l : cfg_.listeners) l.max_unbound = scaled(l.max_unbound);
}

int site_host::run() {
    budget_descriptors();
    // Sinks first: nothing is accepted before there is somewhere to put it.
    try {
        std::unique_ptr<pipeline::sink> record;
        if (cfg_.sink_kind == "jsonl") record = pipeline::make_jsonl_file_sink(cfg_.sink_path);
        else if (cfg_.sink_kind == "stdout") record = pipeline::make_stdout_sink();
        record_ = record.get();
        if (record) pipeline_.add(std::move(record));
    } catch (const std::exception &e) {
        spdlog::critical("{}: sink: {}", cfg_.file.string(), e.what());
        return 1;
    }
    if (cfg_.uplink.configured && !start_uplink()) return 1;
    start_control();

    core::runtime_options options;
    options.gateway_id = cfg_.gateway_id;
    options.watchdog_warn = cfg_.watchdog_warn;
    options.watchdog_fault = cfg_.watchdog_fault;
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
    catalog_.configure(cfg_);
    catalog_.runner_options.admits = options.admits;
    std::mutex counts_mutex;
    std::map<std::string, std::uint64_t> counts;
    runtime_ = std::make_unique<core::device_runtime>(
        io_,
        [this, &counts_mutex, &counts](core::accepted_event &&ev) {
            {
                std::lock_guard lock(counts_mutex);
                counts[ev.device_id]++;
            }
            gate_->observe(ev);
            pipeline_.accept(ev);
        },
        options);
    gate_->attach(runtime_.get());

    auto work = asio::make_work_guard(io_);
    std::vector<std::thread> threads;
    io_threads_ = std::max(2u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < io_threads_; ++i) threads.emplace_back([this] { io_.run(); });

    // The admin endpoint.
    std::unique_ptr<admin::admin_server> admin;
    auto admin_work = asio::make_work_guard(admin_io_);
    std::thread admin_thread;
    try {
        const auto addr = admin::parse_listen_address(opt_.admin_listen.value_or(cfg_.admin_listen));
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
            metrics_.command(answer.first == 202 ? "accepted" : answer.first < 500 ? "refused" : "failed");
            return answer;
        };
        h.mode = [this](const admin::principal &who, const std::string &device, const std::string &body) {
            return gate_->mode(who, device, body);
        };
        h.reload = [this](const admin::principal &) {
            auto done = std::make_shared<std::promise<std::pair<unsigned, std::string>>>();
            auto result = done->get_future();
            post_control([this, done] { done->set_value(reload()); },
                         [done] { done->set_value({503, R"({"error":"the host is stopping"})"}); });
            if (result.wait_for(60s) != std::future_status::ready)
                return std::pair<unsigned, std::string>{503, R"({"error":"reload did not finish within 60 s"})"};
            return result.get();
        };
        if (const char *hooks = std::getenv("FIRELINK_TEST_HOOKS"); hooks && std::string_view(hooks) == "1") {
            spdlog::warn("FIRELINK_TEST_HOOKS=1: POST /api/test/* can wedge this host; for tests only");
            h.test_hook = [this](const std::string &name, const std::string &body) { return test_hook(name, body); };
        }
        admin::admin_options admin_opt{addr.host, addr.port};
        admin_opt.request_timeout = cfg_.admin_request_timeout;
        admin_opt.max_connections = cfg_.admin_max_connections;
        admin_opt.token_file = cfg_.admin_token_file;
        admin_opt.anonymous_read =
            cfg_.admin_anonymous_read == "none" ? admin::anonymous_reads::none : admin::anonymous_reads::loopback;
        admin_opt.tls = {cfg_.admin_tls_cert, cfg_.admin_tls_key, cfg_.admin_client_ca};
        admin_opt.on_refusal = [this](std::string_view reason) { metrics_.admin_refused(reason); };
        admin = std::make_unique<admin::admin_server>(admin_io_, admin_opt, h);
        admin->start();
        spdlog::info("admin endpoint on http://{}:{}/ (/healthz /metrics /api/devices)", addr.host, admin->port());
        admin_thread = std::thread([this] { admin_io_.run(); });
    } catch (const std::exception &e) {
        spdlog::critical("admin endpoint: {}", e.what());
        work.reset();
        io_.stop();
        for (auto &t : threads) t.join();
        return 1;
    }

    restore_conditions();
    scan(cfg_);
    auto plan = plan_reload(cfg_, cfg_, fingerprints_, {});  // nothing runs yet: nothing to try
    reload_outcome started;
    apply(plan, cfg_, started);
    const auto &problems = started.problems;
    ready_ = true;
    spdlog::info("site {} (gateway {}): {} device(s) running, {} not started", cfg_.file.string(), cfg_.gateway_id,
                 fingerprints_.size(), problems.size());
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
                post_control([this] { reload(); });
                signals.async_wait(on_signal);
                return;
            }
            spdlog::info("signal {}: stopping", sig);
            std::lock_guard lock(control_mutex_);
            stopping_ = true;
            control_cv_.notify_all();
        };
    signals.async_wait(on_signal);

    const auto deadline = opt_.seconds > 0 ? std::chrono::steady_clock::now() +
                                                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                     std::chrono::duration<double>(opt_.seconds))
                                           : std::chrono::steady_clock::time_point::max();
    // With systemd, the loop also wakes to ping its watchdog (half its timeout) or, without one, to update STATUS.
    const auto tick = sd_.enabled() ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                          sd_.watchdog_interval().value_or(std::chrono::seconds(10)))
                                    : std::chrono::steady_clock::duration::max();
    auto next_tick = sd_.enabled() ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point::max();
    for (;;) {
        control_job job;
        {
            std::unique_lock lock(control_mutex_);
            control_cv_.wait_until(lock, std::min(deadline, next_tick), [&] { return stopping_ || !control_.empty(); });
            if (stopping_ || std::chrono::steady_clock::now() >= deadline) {
                stopping_ = true;
                break;
            }
            if (!control_.empty()) {
                job = std::move(control_.front());
                control_.pop_front();
            }
        }
        if (const auto now = std::chrono::steady_clock::now(); now >= next_tick) {
            watchdog_tick();
            next_tick = now + tick;  // from now, not from the last tick: a late tick is not followed by a hasty one
        }
        if (job.run) job.run();
    }
    sd_.notify("STOPPING=1\nSTATUS=stopping");
    {
        std::lock_guard lock(control_mutex_);
        for (auto &job : control_)
            if (job.cancel) job.cancel();
        control_.clear();
    }

    // Stop: devices first, then flush what they emitted, then the rest. Bounded: a hung driver cannot hold it.
    std::thread([] {
        std::this_thread::sleep_for(30s);
        spdlog::critical("shutdown did not finish within 30 s: exiting");
        std::_Exit(1);
    }).detach();
    signals.cancel();
    wires_.stop_accepting();
    const auto ids = runtime_->device_ids();
    runtime_->stop_all();
    pipeline_.flush();

    // A daemon stopped by a signal exits 0; a timed run (--for) also checks what it was told to expect.
    std::vector<std::string> failures;
    if (opt_.seconds > 0) failures = problems;
    if (opt_.seconds > 0 && opt_.expect_events > 0) {
        std::lock_guard lock(counts_mutex);
        for (const auto &id : ids)
            if (counts[id] < opt_.expect_events)
                failures.push_back("device " + id + " emitted " + std::to_string(counts[id]) +
                                   " event(s), expected at least " + std::to_string(opt_.expect_events));
    }
    std::fprintf(stderr, "summary: gateway %s, %zu device(s) ran\n", cfg_.gateway_id.c_str(), ids.size());
    for (const auto &id : ids) {
        auto st = runtime_->status(id);
        if (!st) continue;
        std::fprintf(stderr, "  %s (%s): %llu event(s) accepted, %llu refused, %llu slow callback(s), state %s\n",
                     id.c_str(), st->device_class.c_str(), static_cast<unsigned long long>(st->accepted),
                     static_cast<unsigned long long>(st->refused),
                     static_cast<unsigned long long>(st->slow_callbacks), st->state.c_str());
    }
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
    // The admin thread goes first: its /healthz, /metrics and /api/uplink read the uplink.
    if (admin) admin->stop();
    admin_work.reset();
    admin_io_.stop();
    if (admin_thread.joinable()) admin_thread.join();
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

void print_errors(const std::vector<site::config_error> &errors) {
    for (const auto &e : errors) std::fprintf(stderr, "%s\n", e.str().c_str());
    std::fprintf(stderr, "%zu error(s)\n", errors.size());
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

int check_config(const std::filesystem::path &config) {
    auto loaded = site::load_site_config(config);
    if (auto *errors = std::get_if<std::vector<site::config_error>>(&loaded)) {
        print_errors(*errors);
        return 1;
    }
    const auto &cfg = std::get<site::site_config>(loaded);
    catalog plugins;
    plugins.configure(cfg);  // a plugin that crashes while loading is refused here as it would be at run time
    plugins.scan(cfg.plugin_dirs);
    // Each device's driver judges its config as `run` would have it created, where `run` runs the plugin (in its
    // runner by default). A runtime of its own, whose io_context never runs: nothing is started.
    asio::io_context io;
    core::device_runtime runtime(io, [](core::accepted_event &&) {},
                                 core::runtime_options{.gateway_id = cfg.gateway_id,
                                                       .watchdog_warn = cfg.watchdog_warn,
                                                       .watchdog_fault = cfg.watchdog_fault,
                                                       .observer = {},
                                                       .admits = {}});
    std::vector<std::string> problems;
    std::map<std::string, int> by_class;
    std::set<std::string> declared;   // every command a driver of this site declares
    bool all_declare = true;          // false: some driver declares none (it may take any name)
    for (const auto &d : cfg.devices) {
        std::string why;
        auto p = plugins.resolve(d, why);
        if (!p) {
            problems.push_back(at(d.where) + ": device '" + d.id + "': " + why);
            continue;
        }
        by_class[d.device_class]++;
        const auto *driver = p->info().find_driver(d.driver);
        all_declare = all_declare && driver->declares_commands;
        for (const auto &c : driver->commands) declared.insert(c.name);
        const bool needs_wire = std::find(driver->required_extensions.begin(), driver->required_extensions.end(),
                                          FL_EXT_TRANSPORT) != driver->required_extensions.end();
        if (needs_wire && d.wire.type == site::wire_config::kind::none) {
            problems.push_back(at(d.where) + ": device '" + d.id + "': driver '" + d.driver +
                               "' needs a wire; give the device a wire");
            continue;
        }
        if (auto refused = try_device(runtime, p, cfg, d)) problems.push_back(refused->str());
    }
    // A name the platform may run that no driver here declares is a typo: it would silently allow nothing.
    if (all_declare)
        for (const auto &name : cfg.control.platform_may)
            if (!declared.count(name)) {
                std::vector<std::string> names(declared.begin(), declared.end());
                problems.push_back(cfg.file.string() + ": control.platform_may: '" + name +
                                   "' is a command no driver of this site declares" + site::did_you_mean(name, names));
            }
    for (const auto &p : problems) std::fprintf(stderr, "%s\n", p.c_str());
    if (!problems.empty()) {
        std::fprintf(stderr, "%zu error(s)\n", problems.size());
        return 1;
    }
    std::printf("%s: OK: gateway %s, %zu plugin(s), %zu bus(es), %zu listener(s), %zu device(s)", config.c_str(),
                cfg.gateway_id.c_str(), plugins.plugins.size(), cfg.buses.size(), cfg.listeners.size(),
                cfg.devices.size());
    for (const auto &[cls, n] : by_class) std::printf(", %d %s", n, cls.c_str());
    std::printf("\n");
    return 0;
}

}  // namespace firelink::cli
