// The class scenarios: for a driver of a standard device class with a device source, drive the class's standard
// scenarios (alarm, pre-alarm, restore, silence, garbage, command with read-back, stuck actuator) against a live simulator and judge the events and their latency. The device runs in the host's own
// device runtime (host/core) on a real tcp_client link (host/transport), as firelink-host runs it; the simulator
// (firelink-sim, Modbus TCP on loopback) is scripted through its standard input.
#include <atomic>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <firelink/payload.h>
#include <firelink/plugin.h>
#include <firelink/transport/link.hpp>

#include "checks.hpp"
#include "firelink/core/device_runtime.hpp"
#include "firelink/core/event_check.hpp"

namespace firelink::conform {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
namespace asio = boost::asio;

// From an action on the device to the event it causes: a hang guard, far above a good driver's few polls.
constexpr auto event_budget = 5000ms;
// A command's result may take the driver's command timeout (5 s by default) before it gives up.
constexpr auto command_budget = 12000ms;
// How long the suite watches for what must not happen (a second alarm, an event from a silent device).
constexpr auto settle = 800ms;
constexpr auto watch = 1500ms;

long long ms(steady::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::string mp_str(const std::vector<std::uint8_t> &b, const char *key) {
    fl_mp_value v;
    if (fl_mp_find(b.data(), b.size(), key, &v) && v.type == FL_MP_STR) return std::string(v.str, v.str_len);
    return {};
}

// ---- the device source: a firelink-sim child on a loopback port ----------------------------------------------
std::filesystem::path sim_path(const run_options &o) {
    if (!o.sim.empty()) return o.sim;
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path{} : self.parent_path() / "firelink-sim";
}

class simulator {
public:
    simulator() = default;
    simulator(const simulator &) = delete;
    simulator &operator=(const simulator &) = delete;
    ~simulator() {
        if (in_ >= 0) ::close(in_);
        if (out_ >= 0) ::close(out_);
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int st = 0;
            ::waitpid(pid_, &st, 0);
        }
    }

    bool start(const std::filesystem::path &exe, const std::string &kind, std::string &why) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
            why = std::string("pipe: ") + std::strerror(errno);
            return false;
        }
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(in[0], 0);
            ::dup2(out[1], 1);
            ::execl(exe.c_str(), exe.c_str(), kind.c_str(), "--listen", "127.0.0.1:0", static_cast<char *>(nullptr));
            ::_exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        in_ = in[1];
        out_ = out[0];
        if (pid_ < 0) {
            why = std::string("fork: ") + std::strerror(errno);
            return false;
        }
        // "listening 127.0.0.1:40123 units 1", then "ready" once it serves.
        const auto deadline = steady::now() + 5s;
        for (std::string line; read_line(line, deadline);) {
            if (line.rfind("listening ", 0) == 0) {
                const auto colon = line.find(':'), space = line.find(' ', colon == std::string::npos ? 0 : colon);
                if (colon != std::string::npos)
                    port_ = static_cast<std::uint16_t>(std::atoi(line.substr(colon + 1, space - colon - 1).c_str()));
            } else if (line == "ready") {
                if (port_ == 0) why = "'" + exe.string() + " " + kind + "' did not say which port it listens on";
                return port_ != 0;
            }
        }
        why = "'" + exe.string() + " " + kind + " --listen 127.0.0.1:0' did not print 'ready' within 5 s";
        return false;
    }

    // One action, as a line on the simulator's standard input.
    void act(const std::string &action) {
        const std::string line = action + "\n";
        [[maybe_unused]] const auto n = ::write(in_, line.data(), line.size());
        drain();
    }
    std::uint16_t port() const noexcept { return port_; }

private:
    bool read_line(std::string &line, steady::time_point deadline) {
        for (;;) {
            if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
                line = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                return true;
            }
            const auto left = ms(deadline - steady::now());
            if (left <= 0) return false;
            pollfd p{out_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
            char b[512];
            const auto r = ::read(out_, b, sizeof b);
            if (r <= 0) return false;
            buf_.append(b, static_cast<std::size_t>(r));
        }
    }
    // The simulator echoes each action; read what is there so its pipe never fills.
    void drain() {
        char b[4096];
        pollfd p{out_, POLLIN, 0};
        while (::poll(&p, 1, 0) > 0 && ::read(out_, b, sizeof b) > 0) {}
        buf_.clear();
    }

    pid_t pid_ = -1;
    int in_ = -1, out_ = -1;
    std::uint16_t port_ = 0;
    std::string buf_;
};

// ---- what the device emitted ------------------------------------------------------------------------------------
struct seen {
    std::string kind, code, event_id, ends, command_id, json;
    std::optional<bool> ok;
    bool from_host = false;
    steady::time_point at;
};

// Records every accepted event, checks each against the boundary check and its class, and pairs restores.
class recorder {
public:
    explicit recorder(std::string device_class) : class_(std::move(device_class)) {}

    void accept(core::accepted_event &&ev) {
        seen s;
        s.at = steady::now();
        s.kind = ev.kind;
        s.code = ev.code;
        s.from_host = ev.from_host;
        s.event_id = mp_str(ev.payload, "event_id");
        s.ends = mp_str(ev.payload, "ends");
        s.command_id = mp_str(ev.payload, "command_id");
        fl_mp_value v;
        if (fl_mp_find(ev.payload.data(), ev.payload.size(), "ok", &v) && v.type == FL_MP_BOOL) s.ok = v.b != 0;
        s.json = core::msgpack_to_json(ev.payload.data(), ev.payload.size());
        std::lock_guard lock(mutex_);
        std::string why;
        const auto summary = core::check_event(ev.payload.data(), ev.payload.size(), why);
        if (!summary) problems_.push_back("invalid event " + s.json + ": " + why + " (FL-PLUGIN-27)");
        else if (!core::check_code_for_class(*summary, class_, why))
            problems_.push_back("event " + s.json + ": " + why + " (FL-PLUGIN-27)");
        if (!s.from_host) {
            if ((s.kind == "alarm" || s.kind == "pre_alarm" || s.kind == "fault") && !s.event_id.empty())
                active_[s.event_id] = s.code;
            if (s.kind == "restore") {
                const auto it = active_.find(s.ends);
                if (it == active_.end())
                    problems_.push_back("restore " + s.json + " ends '" + s.ends + "', which is not an active condition");
                else if (it->second != s.code)
                    problems_.push_back("restore " + s.json + " carries code " + s.code + " but ends a " + it->second);
                else active_.erase(it);
            }
        }
        events_.push_back(std::move(s));
        cv_.notify_all();
    }
    void refused() {
        std::lock_guard lock(mutex_);
        problems_.push_back("the host's boundary check refused an event (FL-PLUGIN-27)");
    }

    std::size_t mark() const {
        std::lock_guard lock(mutex_);
        return events_.size();
    }
    // The first event from `from` on that matches, waiting until `deadline`.
    std::optional<seen> wait(std::size_t from, const std::function<bool(const seen &)> &match,
                             steady::time_point deadline) {
        std::unique_lock lock(mutex_);
        for (std::size_t i = from;; ++i) {
            while (i >= events_.size())
                if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && i >= events_.size()) return {};
            if (match(events_[i])) return events_[i];
        }
    }
    std::vector<seen> since(std::size_t from) const {
        std::lock_guard lock(mutex_);
        return {events_.begin() + static_cast<std::ptrdiff_t>(std::min(from, events_.size())), events_.end()};
    }
    std::vector<std::string> problems() const {
        std::lock_guard lock(mutex_);
        return problems_;
    }

private:
    std::string class_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<seen> events_;
    std::vector<std::string> problems_;
    std::map<std::string, std::string> active_;  // event_id -> code of the driver's raised conditions
};

// The config a scenario's device is created with: --config DRIVER=FILE; else a fast poll (the common settings of
// docs/drivers/modbus.md) so that a scenario takes seconds, and the empty map for a driver that refuses those keys.
std::vector<std::vector<std::uint8_t>> scenario_configs(const run_options &o, const std::string &driver) {
    if (o.configs.count(driver)) return {o.configs.at(driver)};
    std::uint8_t buf[128];
    fl_mp_writer w;
    fl_mp_writer_init(&w, buf, sizeof buf);
    fl_mp_map(&w, 3);
    fl_mp_str(&w, "poll_ms");
    fl_mp_uint(&w, 100);
    fl_mp_str(&w, "reply_timeout_ms");
    fl_mp_uint(&w, 300);
    fl_mp_str(&w, "command_timeout_ms");
    fl_mp_uint(&w, 1500);
    return {std::vector<std::uint8_t>(buf, buf + w.len), {}};
}

// One device of the driver in the host's runtime, wired by tcp_client to a fresh simulator.
class live_device {
public:
    static constexpr const char *id = "scenario-1";

    live_device(const run_options &o, std::shared_ptr<core::plugin> plugin, const core::driver_info &drv,
                const std::string &sim_kind, findings &f)
        : f_(f), rec_(drv.device_class), driver_(drv.id) {
        std::string why;
        if (!sim_.start(sim_path(o), sim_kind, why)) {
            f.fail("the device source did not start: " + why);
            return;
        }
        for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
        core::runtime_options opts;
        opts.gateway_id = "firelink-conform";
        opts.observer.refused = [this](const std::string &) { rec_.refused(); };
        // A host under backpressure answers emit with FL_BUSY (FL-PLUGIN-28): set_busy() turns it on.
        opts.admits = [this](std::string_view) { return !busy_.load(); };
        runtime_ = std::make_unique<core::device_runtime>(
            io_, [this](core::accepted_event &&ev) { rec_.accept(std::move(ev)); }, opts);
        core::device_spec spec;
        spec.device_id = id;
        spec.driver_id = drv.id;
        const std::uint16_t port = sim_.port();
        spec.make_link = [port](transport::executor ex, transport::link_events ev) {
            auto l = transport::make_tcp_client_link(std::move(ex), "127.0.0.1", port,
                                                     transport::backoff{100ms, 1000ms}, std::move(ev));
            l->set_unit(1);
            return l;
        };
        bool created = false;
        for (const auto &config : scenario_configs(o, drv.id)) {
            spec.config = config;
            why.clear();
            if (runtime_->create(plugin, spec, why) == FL_OK) {
                created = true;
                break;
            }
        }
        if (!created) {
            f.warn("driver '" + drv.id + "' refused its config (" + why + "); give one with --config " + drv.id +
                   "=FILE");
            return;
        }
        if (const fl_status st = runtime_->start(id); st != FL_OK) {
            f.fail("driver '" + drv.id + "': start returned " + status_name(st));
            return;
        }
        // The device answers over the wire before any scenario begins.
        const auto deadline = steady::now() + event_budget;
        while (steady::now() < deadline) {
            const auto s = runtime_->status(id);
            if (s && s->last_seen) {
                ready_ = true;
                return;
            }
            std::this_thread::sleep_for(20ms);
        }
        f.fail("driver '" + drv.id + "': no traffic from the simulator within " + std::to_string(ms(event_budget)) +
               " ms of start");
    }

    ~live_device() {
        runtime_.reset();  // stops and destroys the device while the strands still run
        work_.reset();
        io_.stop();
        for (auto &t : threads_) t.join();
        for (const auto &p : rec_.problems()) f_.fail("driver '" + driver_ + "': " + p);
    }

    explicit operator bool() const { return ready_; }
    const std::string &driver() const { return driver_; }
    recorder &events() { return rec_; }
    void act(const std::string &action) { sim_.act(action); }
    // While busy, every emit of the driver is answered FL_BUSY, as a host whose queue is full answers it.
    void set_busy(bool on) { busy_ = on; }
    // Stops and starts the device again, as a host restart of the driver's device does.
    bool restart() { return runtime_->stop(id) == FL_OK && runtime_->start(id) == FL_OK; }

    // Sends a command; its id, or empty (and a failure) when the driver refused it outright.
    std::string command(const std::string &name) {
        const std::string cid = "conform-" + std::to_string(++commands_);
        std::uint8_t buf[256];
        fl_mp_writer w;
        fl_mp_writer_init(&w, buf, sizeof buf);
        fl_mp_map(&w, 3);
        fl_mp_kv_str(&w, "id", cid.c_str());
        fl_mp_kv_str(&w, "name", name.c_str());
        fl_mp_str(&w, "args");
        fl_mp_map(&w, 1);
        fl_mp_kv_str(&w, "operator", "firelink-conform");
        std::string why;
        const fl_status st = runtime_->command(id, std::vector<std::uint8_t>(buf, buf + w.len), why);
        if (st != FL_OK && st != FL_TIMEOUT) {
            f_.fail("driver '" + driver_ + "': command " + name + " returned " + status_name(st) + " (" + why +
                    ") (FL-PLUGIN-30)");
            return {};
        }
        return cid;
    }

private:
    findings &f_;
    recorder rec_;
    std::string driver_;
    simulator sim_;  // destroyed after the runtime let go of its link
    asio::io_context io_;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{asio::make_work_guard(io_)};
    std::vector<std::thread> threads_;
    std::unique_ptr<core::device_runtime> runtime_;
    bool ready_ = false;
    std::atomic<bool> busy_{false};
    int commands_ = 0;
};

// ---- the steps a scenario is written in --------------------------------------------------------------------------
struct step_context {
    live_device &d;
    findings &f;
    bool ok = true;  // a scenario stops at its first failed step: what follows would only repeat it
};

std::function<bool(const seen &)> driver_event(std::string kind, std::string code) {
    return [kind, code](const seen &s) { return !s.from_host && s.kind == kind && s.code == code; };
}

// Does `action` and waits for the driver's `kind code` event from then on (from event `from`, timed from `since`
// when the action was done before), within the budget.
std::optional<seen> expect(step_context &c, const std::string &action, const std::string &kind,
                           const std::string &code, std::size_t from = SIZE_MAX,
                           std::optional<steady::time_point> since = {}) {
    if (!c.ok) return {};
    if (from == SIZE_MAX) from = c.d.events().mark();
    const auto t0 = since.value_or(steady::now());
    if (!action.empty()) c.d.act(action);
    auto e = c.d.events().wait(from, driver_event(kind, code), t0 + event_budget);
    const std::string what = (action.empty() ? "" : "'" + action + "': ") + kind + " " + code;
    if (!e) {
        c.f.fail("driver '" + c.d.driver() + "': " + (action.empty() ? "" : "after '" + action + "', ") + "no " +
                 kind + " " + code + " within " + std::to_string(ms(event_budget)) + " ms");
        c.ok = false;
        return {};
    }
    c.f.note(what + " in " + std::to_string(ms(e->at - t0)) + " ms");
    return e;
}

// The restore of `raised`, with `ends` naming its event_id (a restore that ends what was not raised is flagged by
// the recorder).
void expect_restore(step_context &c, const seen &raised, std::size_t from, steady::time_point t0,
                    const std::string &after) {
    if (!c.ok) return;
    auto e = c.d.events().wait(
        from,
        [&](const seen &s) {
            return !s.from_host && s.kind == "restore" && s.code == raised.code && s.ends == raised.event_id;
        },
        t0 + event_budget);
    if (!e) {
        c.f.fail("driver '" + c.d.driver() + "': after '" + after + "', no restore of " + raised.kind + " " +
                 raised.code + " with ends '" + raised.event_id + "' within " + std::to_string(ms(event_budget)) +
                 " ms (FL-PLUGIN-27)");
        c.ok = false;
        return;
    }
    c.f.note("'" + after + "': restore " + raised.code + " (ends " + raised.event_id + ") in " +
             std::to_string(ms(e->at - t0)) + " ms");
}

std::size_t count(const std::vector<seen> &v, const std::string &kind, const std::string &code) {
    std::size_t n = 0;
    for (const auto &s : v) n += !s.from_host && s.kind == kind && s.code == code;
    return n;
}

// Exactly `n` driver events `kind code` since `from`, after letting the device settle.
void expect_count(step_context &c, std::size_t from, const std::string &kind, const std::string &code,
                  std::size_t n) {
    if (!c.ok) return;
    std::this_thread::sleep_for(settle);
    const std::size_t got = count(c.d.events().since(from), kind, code);
    if (got != n) {
        c.f.fail("driver '" + c.d.driver() + "': " + std::to_string(got) + " " + kind + " " + code + " event(s) where " +
                 std::to_string(n) + " belong (FL-PLUGIN-27)");
        c.ok = false;
    }
}

// Sends a command and waits for its command_result; checks `ok` against what the device really did.
void expect_result(step_context &c, const std::string &name, bool ok, const std::string &why_ok) {
    if (!c.ok) return;
    const auto from = c.d.events().mark();
    const auto t0 = steady::now();
    const std::string cid = c.d.command(name);
    if (cid.empty()) {
        c.ok = false;
        return;
    }
    auto e = c.d.events().wait(from,
                               [&](const seen &s) { return s.kind == "command_result" && s.command_id == cid; },
                               t0 + command_budget);
    if (!e) {
        c.f.fail("driver '" + c.d.driver() + "': no command_result for " + name + " within " +
                 std::to_string(ms(command_budget)) + " ms (FL-PLUGIN-30)");
        c.ok = false;
        return;
    }
    if (!e->ok || *e->ok != ok) {
        c.f.fail("driver '" + c.d.driver() + "': " + name + " answered ok=" +
                 (e->ok ? (*e->ok ? "true" : "false") : "absent") + " where " + why_ok + " (FL-PLUGIN-30): " + e->json);
        c.ok = false;
        return;
    }
    c.f.note(name + ": ok=" + (ok ? "true" : "false") + " in " + std::to_string(ms(e->at - t0)) + " ms");
}

// Watches `watch` long: the driver emits nothing but telemetry and what `allowed` lets through.
void expect_quiet(step_context &c, std::size_t from, const std::function<bool(const seen &)> &allowed,
                  const std::string &while_what, const char *req) {
    if (!c.ok) return;
    std::this_thread::sleep_for(watch);
    for (const auto &s : c.d.events().since(from))
        if (!s.from_host && s.kind != "telemetry" && !allowed(s)) {
            c.f.fail("driver '" + c.d.driver() + "': " + while_what + " it emitted " + s.json + " (" + req + ")");
            c.ok = false;
            return;
        }
}

// ---- the scenarios of each class --------------------------------------------------------------------------------
struct class_scenarios {
    std::string device_class;
    std::string sim_kind;                   // firelink-sim's device
    std::string raise, raise_code;          // an alarm, to show the driver still reads the device
    std::function<void(step_context &)> alarm, command, stuck;
};

const std::vector<class_scenarios> &classes() {
    static const std::vector<class_scenarios> all = {
        {"gas_shutoff_valve", "gas-valve", "gas 60", "gas_level_2",
         [](step_context &c) {
             const auto m = c.d.events().mark();
             const auto l1 = expect(c, "gas 30", "alarm", "gas_level_1");
             expect_count(c, m, "alarm", "gas_level_1", 1);
             expect_count(c, m, "alarm", "gas_level_2", 0);
             const auto l2 = expect(c, "gas 60", "alarm", "gas_level_2");
             expect_count(c, m, "alarm", "gas_level_1", 1);
             if (!c.ok) return;
             const auto from = c.d.events().mark();
             const auto t0 = steady::now();
             c.d.act("gas 0");
             expect_restore(c, *l1, from, t0, "gas 0");
             expect_restore(c, *l2, from, t0, "gas 0");
         },
         [](step_context &c) { expect_result(c, "close_valve", true, "the valve reads closed"); },
         [](step_context &c) {
             c.d.act("stuck on");
             expect_result(c, "close_valve", false, "the valve is stuck open");
         }},
        {"arc_fault_breaker", "arc-breaker", "residual 350", "residual_current_high",
         [](step_context &c) {
             const auto pre = expect(c, "residual 250", "pre_alarm", "residual_current_high");
             const auto alarm = expect(c, "residual 350", "alarm", "residual_current_high");
             if (!c.ok) return;
             auto from = c.d.events().mark();
             auto t0 = steady::now();
             c.d.act("residual 0");
             expect_restore(c, *pre, from, t0, "residual 0");
             expect_restore(c, *alarm, from, t0, "residual 0");
             from = c.d.events().mark();
             t0 = steady::now();
             const auto arc = expect(c, "arc-fault", "alarm", "arc_fault", from, t0);
             expect(c, "", "status", "breaker_tripped", from, t0);  // the device tripped on its arc fault
             if (!c.ok) return;
             from = c.d.events().mark();
             t0 = steady::now();
             expect_result(c, "reset", true, "the arc latch reads clear");
             expect_restore(c, *arc, from, t0, "reset");
         },
         [](step_context &c) { expect_result(c, "trip", true, "the breaker reads open"); },
         [](step_context &c) {
             c.d.act("stuck on");
             expect_result(c, "trip", false, "the breaker is stuck closed");
         }},
        {"pyrolysis_detector", "pyrolysis", "level 700", "pyrolysis_alarm",
         [](step_context &c) {
             const auto pre = expect(c, "level 350", "pre_alarm", "pyrolysis_pre_alarm");
             const auto alarm = expect(c, "level 700", "alarm", "pyrolysis_alarm");
             if (!c.ok) return;
             auto from = c.d.events().mark();
             const auto t0 = steady::now();
             c.d.act("level 0");
             expect_restore(c, *pre, from, t0, "level 0");
             expect_count(c, from, "restore", "pyrolysis_alarm", 0);  // latched until a reset
             if (!c.ok) return;
             from = c.d.events().mark();
             const auto t1 = steady::now();
             expect_result(c, "reset", true, "the latch reads clear");
             expect_restore(c, *alarm, from, t1, "reset");
         },
         [](step_context &c) { expect_result(c, "reset", true, "nothing is latched"); },
         [](step_context &c) {
             expect(c, "level 700", "alarm", "pyrolysis_alarm");
             expect_result(c, "reset", false, "the latch stays set while the level is high");
         }},
    };
    return all;
}

// Finds the class's driver and runs `body` on a live device of it; skipped with the reason when it cannot.
void with_device(const run_options &o, findings &f, const class_scenarios &cls,
                 const std::function<void(step_context &)> &body) {
    ::signal(SIGPIPE, SIG_IGN);  // a simulator that died must not take the check with it
    std::shared_ptr<core::plugin> plugin = load_plugin(o, f);
    if (!plugin) return;
    const core::driver_info *drv = nullptr;
    for (const auto &d : plugin->info().drivers)
        if (d.device_class == cls.device_class) drv = &d;
    if (!drv) return f.skip("the plugin has no " + cls.device_class + " driver");
    if (!(drv->wires & FL_WIRE_TCP_CLIENT))
        return f.skip("driver '" + drv->id + "' declares no tcp_client wire; scenarios over serial are planned");
    const auto sim = sim_path(o);
    if (sim.empty() || ::access(sim.c_str(), X_OK) != 0)
        return f.skip("no device source for " + cls.device_class + ": no simulator at '" + sim.string() +
                      "' (give --sim PATH_TO_firelink-sim)");
    const core::driver_info info = *drv;
    live_device d(o, plugin, info, cls.sim_kind, f);
    if (!d) return;
    step_context c{d, f};
    body(c);
}

void silence(step_context &c, const class_scenarios &cls) {
    const auto from = c.d.events().mark();
    c.d.act("silent on");
    expect_quiet(c, from, [](const seen &) { return false; }, "while the device did not answer,",
                 "a silent device is the host's to report as offline; FL-PLUGIN-27");
    c.d.act("silent off");
    // ...and the driver is still reading the device once it answers again.
    expect(c, cls.raise, "alarm", cls.raise_code);
}

void garbage(step_context &c, const class_scenarios &cls) {
    const auto from = c.d.events().mark();
    c.d.act("garbage on");
    const auto comm = [](const seen &s) { return s.code == "communication_fault"; };
    expect_quiet(c, from, comm, "while the device answered garbage,",
                 "only a communication_fault belongs; FL-PLUGIN-32");
    if (!c.ok) return;
    std::optional<seen> fault;
    for (const auto &s : c.d.events().since(from))
        if (!s.from_host && s.kind == "fault" && s.code == "communication_fault") fault = s;
    const auto after = c.d.events().mark();
    const auto t0 = steady::now();
    c.d.act("garbage off");
    if (fault) expect_restore(c, *fault, after, t0, "garbage off");
    else c.f.note("no communication_fault for garbage replies");
    expect(c, cls.raise, "alarm", cls.raise_code);
}

// FL-PLUGIN-28: an event answered FL_BUSY is kept and emitted again later, not dropped.
void busy(step_context &c, const class_scenarios &cls) {
    const auto from = c.d.events().mark();
    c.d.set_busy(true);
    c.d.act(cls.raise);
    std::this_thread::sleep_for(watch);  // the driver sees its alarm refused FL_BUSY, poll after poll
    for (const auto &s : c.d.events().since(from))
        if (!s.from_host && s.kind != "telemetry") {
            c.f.fail("driver '" + c.d.driver() + "': an event was accepted while the host answered FL_BUSY: " + s.json);
            c.ok = false;
        }
    c.d.set_busy(false);
    if (!c.ok) return;
    expect(c, "", "alarm", cls.raise_code, from);
    if (!c.ok)
        c.f.fail("driver '" + c.d.driver() + "': the alarm answered FL_BUSY was never emitted again once the host "
                 "took events (FL-PLUGIN-28)");
}

void restart(step_context &c, const class_scenarios &cls) {
    expect(c, cls.raise, "alarm", cls.raise_code);
    if (!c.ok) return;
    const auto from = c.d.events().mark();
    if (!c.d.restart()) {
        c.f.fail("driver '" + c.d.driver() + "': stop and start again failed");
        c.ok = false;
        return;
    }
    // FL-PLUGIN-29: on start the driver re-reads the device and reports what is active now.
    expect(c, "", "alarm", cls.raise_code, from);
    if (!c.ok)
        c.f.fail("driver '" + c.d.driver() + "': an alarm active through a restart was not reported again on start "
                 "(FL-PLUGIN-29)");
}

}  // namespace

void add_scenario_checks(std::vector<check> &v) {
    for (const auto &cls : classes()) {
        const std::string p = "scenario." + cls.device_class + ".";
        auto run = [&cls](std::function<void(step_context &, const class_scenarios &)> body) {
            return [&cls, body](const run_options &o, findings &f) {
                with_device(o, f, cls, [&](step_context &c) { body(c, cls); });
            };
        };
        v.push_back({p + "alarm", {"FL-PLUGIN-27"}, level::standard,
                     "alarms and pre-alarms from the simulator arrive once each within 5 s, and restores end them",
                     run([](step_context &c, const class_scenarios &k) { k.alarm(c); })});
        v.push_back({p + "silence", {"FL-PLUGIN-27"}, level::standard,
                     "a device that stops answering gets no event from its driver; it recovers when it answers",
                     run([](step_context &c, const class_scenarios &k) { silence(c, k); })});
        v.push_back({p + "garbage", {"FL-PLUGIN-27", "FL-PLUGIN-32"}, level::standard,
                     "garbage replies give a communication_fault or nothing, never a crash, and it recovers",
                     run([](step_context &c, const class_scenarios &k) { garbage(c, k); })});
        v.push_back({p + "command", {"FL-PLUGIN-30"}, level::standard,
                     "the class's command is confirmed by read-back: command_result ok=true",
                     run([](step_context &c, const class_scenarios &k) { k.command(c); })});
        v.push_back({p + "busy", {"FL-PLUGIN-28"}, level::standard,
                     "an alarm answered FL_BUSY is kept and emitted again once the host takes events",
                     run([](step_context &c, const class_scenarios &k) { busy(c, k); })});
        v.push_back({p + "restart", {"FL-PLUGIN-29"}, level::standard,
                     "an alarm active through stop and start is reported again on start",
                     run([](step_context &c, const class_scenarios &k) { restart(c, k); })});
        v.push_back({p + "stuck", {"FL-PLUGIN-30"}, level::standard,
                     "a command the device does not carry out answers ok=false",
                     run([](step_context &c, const class_scenarios &k) { k.stuck(c); })});
    }
    v.push_back({"scenario.other", {}, level::standard,
                 "drivers of classes with no device source yet (fire_panel, vendor classes) are listed as skipped",
                 [](const run_options &o, findings &f) {
                     auto plugin = load_plugin(o, f);
                     if (!plugin) return;
                     std::string why;
                     for (const auto &d : plugin->info().drivers) {
                         std::string reason;
                         if (d.device_class == "fire_panel")
                             reason = "no device source: a fire panel connects in to the host's listener; "
                                      "scenarios against 'firelink-sim uitd --connect' are planned";
                         else if (d.device_class.rfind("vendor:", 0) == 0)
                             reason = "a vendor class has no standard scenarios";
                         else continue;
                         why += (why.empty() ? "" : "; ") + ("driver '" + d.id + "' (" + d.device_class + "): " + reason);
                     }
                     f.skip(why.empty() ? "every driver's class is covered by the scenarios above" : why);
                 }});
}

}  // namespace firelink::conform
