// The class scenarios' shared parts (scenario.hpp): the recorder that judges events, the device in the host's own
// runtime, and the steps scenarios are written in.
#include "scenario.hpp"
#include "firelink/core/lanes.hpp"

#include <firelink/payload.h>

#include "firelink/core/event_check.hpp"

namespace firelink::conform {

using namespace std::chrono_literals;

long long ms(steady::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::string mp_str(const std::vector<std::uint8_t> &b, const char *key) {
    fl_mp_value v;
    if (fl_mp_find(b.data(), b.size(), key, &v) && v.type == FL_MP_STR) return std::string(v.str, v.str_len);
    return {};
}

std::filesystem::path sim_path(const run_options &o) {
    if (!o.sim.empty()) return o.sim;
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path{} : self.parent_path() / "firelink-sim";
}

// ---- recorder ---------------------------------------------------------------------------------------------------
void recorder::accept(core::accepted_event &&ev) {
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
    s.payload = ev.payload;
    std::lock_guard lock(mutex_);
    if (const auto summary = core::check_event(ev.payload.data(), ev.payload.size()); !summary)
        problems_.push_back("invalid event " + s.json + ": " + summary.why() + " (FL-PLUGIN-27)");
    else if (const auto allowed = core::check_code_for_class(*summary, class_); !allowed)
        problems_.push_back("event " + s.json + ": " + allowed.why() + " (FL-PLUGIN-27)");
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
    if (!ev.on_durable) return;
    if (holding_) held_.push_back(std::move(ev.on_durable));
    else ev.on_durable();  // recorded is committed, for the suite's host
}

void recorder::hold(bool on) {
    std::vector<std::function<void()>> release;
    {
        std::lock_guard lock(mutex_);
        holding_ = on;
        if (!on) release.swap(held_);
    }
    for (auto &f : release) f();
}

void recorder::refused() {
    std::lock_guard lock(mutex_);
    problems_.push_back("the host's boundary check refused an event (FL-PLUGIN-27)");
}

std::size_t recorder::mark() const {
    std::lock_guard lock(mutex_);
    return events_.size();
}

std::optional<seen> recorder::wait(std::size_t from, const std::function<bool(const seen &)> &match,
                         steady::time_point deadline) {
    std::unique_lock lock(mutex_);
    for (std::size_t i = from;; ++i) {
        while (i >= events_.size())
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && i >= events_.size()) return {};
        if (match(events_[i])) return events_[i];
    }
}

std::vector<seen> recorder::since(std::size_t from) const {
    std::lock_guard lock(mutex_);
    return {events_.begin() + static_cast<std::ptrdiff_t>(std::min(from, events_.size())), events_.end()};
}

std::vector<std::string> recorder::problems() const {
    std::lock_guard lock(mutex_);
    return problems_;
}

// ---- scenario_device --------------------------------------------------------------------------------------------
scenario_device::scenario_device(findings &f, const core::driver_info &drv)
    : f_(f), rec_(drv.device_class), driver_(drv.id) {}

scenario_device::~scenario_device() { shutdown(); }

void scenario_device::shutdown() {
    if (shut_) return;
    shut_ = true;
    runtime_.reset();  // stops and destroys the device while the strands still run
    work_.reset();
    io_.stop();
    for (auto &t : threads_) t.join();
    for (const auto &p : rec_.problems()) f_.fail("driver '" + driver_ + "': " + p);
    std::uint64_t from_driver = 0;
    for (const auto &s : rec_.since(0)) from_driver += !s.from_host;
    f_.saw_events(from_driver);
}

bool scenario_device::create_and_start(const std::shared_ptr<core::plugin> &plugin, const core::driver_info &drv,
                                       const std::vector<std::vector<std::uint8_t>> &configs,
                                       core::link_factory make_link, std::chrono::milliseconds heartbeat) {
    if (threads_.empty())
        for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    core::runtime_options opts;
    opts.gateway_id = "firelink-conform";
    opts.observer.refused = [this](const std::string &) { rec_.refused(); };
    // A host under backpressure answers emit with FL_BUSY (FL-PLUGIN-28): set_busy() turns it on.
    // "All but alarms" as the host's queue means it: the alarm lane (alarms and pre-alarms) still takes.
    opts.admits = [this](std::string_view kind) {
        const int b = busy_.load();
        const bool taken = b == 0 || (b == busy_but_alarms && core::lane_of(kind) == core::lane::alarm);
        if (!taken) ++refusals_;
        return taken;
    };
    runtime_ = std::make_unique<core::device_runtime>(
        io_, [this](core::accepted_event &&ev) { rec_.accept(std::move(ev)); }, opts);
    core::device_spec spec;
    spec.device_id = id;
    spec.driver_id = drv.id;
    spec.make_link = std::move(make_link);
    spec.heartbeat = heartbeat;
    firelink::result<> created = firelink::result<>::fail(FL_INVALID_ARGUMENT, "no config to try");
    for (const auto &config : configs) {
        spec.config = config;
        if ((created = runtime_->create(plugin, spec))) break;
    }
    if (!created) {
        f_.warn("driver '" + drv.id + "' refused its config (" + created.why() + "); give one with --config " + drv.id +
                "=FILE");
        return false;
    }
    if (const auto started = runtime_->start(id); !started) {
        f_.fail("driver '" + drv.id + "': start returned " + status_name(started.status()));
        return false;
    }
    return true;
}

bool scenario_device::wait_traffic(std::chrono::milliseconds budget) {
    const auto deadline = steady::now() + budget;
    while (steady::now() < deadline) {
        const auto s = runtime_->status(id);
        if (s && s->last_seen) return true;
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

bool scenario_device::restart() { return runtime_->stop(id) == FL_OK && runtime_->start(id) == FL_OK; }

std::optional<core::device_status> scenario_device::status() const { return runtime_->status(id); }

std::string scenario_device::command(const std::string &name) {
    return command(name, operator_argument() ? std::map<std::string, std::string>{{"operator", "firelink-conform"}}
                                             : std::map<std::string, std::string>{});
}

std::string scenario_device::command(const std::string &name, const std::map<std::string, std::string> &args) {
    const std::string cid = "conform-" + std::to_string(++commands_);
    commanded(name);
    const auto sent = runtime_->command(id, command_bytes(cid, name, args));
    if (!sent && sent != FL_TIMEOUT) {
        f_.fail("driver '" + driver_ + "': command " + name + " returned " + status_name(sent.status()) + " (" +
                sent.why() + ") (FL-PLUGIN-30)");
        return {};
    }
    return cid;
}

// ---- steps ------------------------------------------------------------------------------------------------------
std::function<bool(const seen &)> driver_event(std::string kind, std::string code) {
    return [kind, code](const seen &s) { return !s.from_host && s.kind == kind && s.code == code; };
}

// Does `action` and waits for the driver's `kind code` event from then on (from event `from`, timed from `since`
// when the action was done before), within the budget.
std::optional<seen> expect(step_context &c, const std::string &action, const std::string &kind,
                           const std::string &code, std::size_t from,
                           std::optional<steady::time_point> since) {
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

std::size_t expect_ended(step_context &c, const std::string &action, std::initializer_list<const seen *> raised) {
    const auto from = c.d.events().mark();
    const auto t0 = steady::now();
    c.d.act(action);
    for (const seen *s : raised) expect_restore(c, *s, from, t0, action);
    return from;
}

void raise_and_restore(step_context &c, const std::string &raise, const std::string &clear, const std::string &kind,
                       const std::string &code) {
    const auto m = c.d.events().mark();
    const auto raised = expect(c, raise, kind, code);
    expect_count(c, m, kind, code, 1);
    if (!c.ok) return;
    expect_ended(c, clear, {&*raised});
}

void expect_reported_after_restart(step_context &c, const std::string &raise, const std::string &code,
                                   const std::string &alarm, const std::string &on_start) {
    expect(c, raise, "alarm", code);
    if (!c.ok) return;
    const auto from = c.d.events().mark();
    if (!c.d.restart()) {
        c.f.fail("driver '" + c.d.driver() + "': stop and start again failed");
        c.ok = false;
        return;
    }
    expect(c, "", "alarm", code, from);
    if (!c.ok)
        c.f.fail("driver '" + c.d.driver() + "': " + alarm + " active through a restart was not reported again on " +
                 on_start + " (FL-PLUGIN-29)");
}

const core::driver_info *driver_of_class(const core::plugin &plugin, const std::string &device_class, findings &f) {
    const core::driver_info *drv = nullptr;
    for (const auto &d : plugin.info().drivers)
        if (d.device_class == device_class) drv = &d;
    if (!drv) f.skip("the plugin has no " + device_class + " driver");
    return drv;
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

}  // namespace firelink::conform
