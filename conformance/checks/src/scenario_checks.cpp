// The class scenarios of the Modbus classes: for a driver of a standard device class with a device source, drive
// the class's standard scenarios (alarm, pre-alarm, fault, restore, silence, garbage, command with read-back, stuck
// actuator) and judge the events and their latency (scenario.hpp). The device runs in the host's own device runtime
// (host/core) on a real link (host/transport), as firelink-host runs it; the device source (device_source.hpp) is
// the simulator (firelink-sim, Modbus TCP on loopback, scripted through its standard input), a replayed trace or a
// live device.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include <firelink/payload.h>
#include <firelink/plugin.h>
#include <firelink/transport/link.hpp>

#include "device_source.hpp"
#include "scenario.hpp"

namespace firelink::conform {

namespace {

using namespace std::chrono_literals;

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

// One device of the driver in the host's runtime, on a real wire to its device source (device_source.hpp).
class live_device : public scenario_device {
public:
    live_device(const run_options &o, std::shared_ptr<core::plugin> plugin, const core::driver_info &drv,
                std::unique_ptr<device_source> source, findings &f)
        : scenario_device(f, drv), source_(std::move(source)) {
        if (!create_and_start(plugin, drv, scenario_configs(o, drv.id), source_->link())) return;
        // The device answers over the wire before any scenario begins.
        if (wait_traffic(event_budget)) {
            set_ready();
            return;
        }
        f.fail("driver '" + drv.id + "': no traffic from the device source within " + std::to_string(ms(event_budget)) +
               " ms of start");
    }
    ~live_device() override {
        shutdown();
        source_->finish(f_);
    }

    void act(const std::string &action) override { source_->act(action); }
    void commanded(const std::string &name) override { source_->commanded(name); }

private:
    std::unique_ptr<device_source> source_;
};

// ---- the scenarios of each class --------------------------------------------------------------------------------
struct class_scenarios {
    std::string device_class;
    std::string sim_kind;                   // firelink-sim's device
    std::string raise, raise_code;          // an alarm, to show the driver still reads the device
    std::function<void(step_context &)> alarm, command, stuck;
    std::string fault_on, fault_off, fault_code;  // the class's device fault, and what clears it
    // A rise through the pre-alarm to the alarm, and what ends them (empty: the class has no pre-alarm, and why).
    std::string rise, pre_code, alarm_code, fall, no_pre_alarm;
};

// scenario.<class>.command of an actuator: `command` is confirmed by the device's read-back (`confirms`).
std::function<void(step_context &)> confirmed(std::string command, std::string confirms) {
    return [=](step_context &c) { expect_result(c, command, true, confirms); };
}

// scenario.<class>.stuck of an actuator: with the device stuck, `command` answers ok=false (`why`).
std::function<void(step_context &)> stuck_actuator(std::string command, std::string why) {
    return [=](step_context &c) {
        c.d.act("stuck on");
        expect_result(c, command, false, why);
    };
}

// A latched alarm: `reset` is confirmed by the device's read-back (`confirms`) and ends it.
void reset_ends(step_context &c, const seen &latched, const std::string &confirms) {
    const auto from = c.d.events().mark();
    const auto t0 = steady::now();
    expect_result(c, "reset", true, confirms);
    expect_restore(c, latched, from, t0, "reset");
}

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
             expect_ended(c, "gas 0", {&*l1, &*l2});
         },
         confirmed("close_valve", "the valve reads closed"),
         stuck_actuator("close_valve", "the valve is stuck open"),
         "sensor-fault on", "sensor-fault off", "sensor_fault",
         "", "", "", "",
         "the class has no pre-alarm: its driver reports gas level 1 as an alarm (gas_level_1, severity major), not "
         "a pre_alarm (docs/drivers/modbus.md)"},
        {"arc_fault_breaker", "arc-breaker", "residual 350", "residual_current_high",
         [](step_context &c) {
             const auto pre = expect(c, "residual 250", "pre_alarm", "residual_current_high");
             const auto alarm = expect(c, "residual 350", "alarm", "residual_current_high");
             if (!c.ok) return;
             expect_ended(c, "residual 0", {&*pre, &*alarm});
             const auto from = c.d.events().mark();
             const auto t0 = steady::now();
             const auto arc = expect(c, "arc-fault", "alarm", "arc_fault", from, t0);
             expect(c, "", "status", "breaker_tripped", from, t0);  // the device tripped on its arc fault
             if (!c.ok) return;
             reset_ends(c, *arc, "the arc latch reads clear");
         },
         confirmed("trip", "the breaker reads open"),
         stuck_actuator("trip", "the breaker is stuck closed"),
         "breaker-fault on", "breaker-fault off", "breaker_fault",
         "ramp residual_current 350 1500", "residual_current_high", "residual_current_high", "residual 0", ""},
        {"pyrolysis_detector", "pyrolysis", "level 700", "pyrolysis_alarm",
         [](step_context &c) {
             const auto pre = expect(c, "level 350", "pre_alarm", "pyrolysis_pre_alarm");
             const auto alarm = expect(c, "level 700", "alarm", "pyrolysis_alarm");
             if (!c.ok) return;
             const auto from = expect_ended(c, "level 0", {&*pre});
             expect_count(c, from, "restore", "pyrolysis_alarm", 0);  // latched until a reset
             if (!c.ok) return;
             reset_ends(c, *alarm, "the latch reads clear");
         },
         // A reset is judged on a latched alarm: a reset of nothing would pass a driver that never raised one.
         [](step_context &c) {
             const auto alarm = expect(c, "level 700", "alarm", "pyrolysis_alarm");
             if (!c.ok) return;
             c.d.act("level 0");
             reset_ends(c, *alarm, "the level is low again and the latch reads clear");
         },
         [](step_context &c) {
             expect(c, "level 700", "alarm", "pyrolysis_alarm");
             expect_result(c, "reset", false, "the latch stays set while the level is high");
         },
         "wire-break on", "wire-break off", "sensor_wire_break",
         "ramp-level 700 1500", "pyrolysis_pre_alarm", "pyrolysis_alarm", "level 0", ""},
    };
    return all;
}

// Finds the class's driver and runs `body` on a device of it at its source; skipped with the reason when it cannot.
void with_device(const run_options &o, findings &f, const class_scenarios &cls, const std::string &check_id,
                 const std::function<void(step_context &)> &body) {
    ::signal(SIGPIPE, SIG_IGN);  // a source that died must not take the check with it
    std::shared_ptr<core::plugin> plugin = load_plugin(o, f);
    if (!plugin) return;
    const core::driver_info *drv = driver_of_class(*plugin, cls.device_class, f);
    if (!drv) return;
    const core::driver_info info = *drv;
    auto source = make_polled_source(o, info, cls.sim_kind, check_id, f);
    if (!source) return;
    live_device d(o, plugin, info, std::move(source), f);
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

// The device reports its own fault: exactly one `fault` with the class's code, its restore once the fault clears,
// and the driver still reads the device afterwards.
void fault(step_context &c, const class_scenarios &cls) {
    raise_and_restore(c, cls.fault_on, cls.fault_off, "fault", cls.fault_code);
    expect(c, cls.raise, "alarm", cls.raise_code);
}

// A rise through the pre-alarm threshold to the alarm's: one pre_alarm, then one alarm, in that order; the fall ends
// the pre-alarm (and the alarm, unless the class latches it until a reset).
void pre_alarm(step_context &c, const class_scenarios &cls) {
    const auto from = c.d.events().mark();
    const auto t0 = steady::now();
    c.d.act(cls.rise);
    const auto pre = expect(c, "", "pre_alarm", cls.pre_code, from, t0);
    const auto alarm = expect(c, "", "alarm", cls.alarm_code, from, t0);
    expect_count(c, from, "pre_alarm", cls.pre_code, 1);
    expect_count(c, from, "alarm", cls.alarm_code, 1);
    if (!c.ok) return;
    if (alarm->at < pre->at) {
        c.f.fail("driver '" + c.d.driver() + "': on '" + cls.rise + "', alarm " + cls.alarm_code + " came " +
                 std::to_string(ms(pre->at - alarm->at)) + " ms before pre_alarm " + cls.pre_code +
                 ": a rising level passes the pre-alarm first (FL-PLUGIN-27)");
        c.ok = false;
        return;
    }
    c.f.note("pre_alarm " + cls.pre_code + " " + std::to_string(ms(alarm->at - pre->at)) + " ms before the alarm");
    if (cls.device_class == "pyrolysis_detector") {  // the alarm is latched until a reset (modbus.md)
        expect_ended(c, cls.fall, {&*pre});
        reset_ends(c, *alarm, "the latch reads clear");
    } else {
        expect_ended(c, cls.fall, {&*pre, &*alarm});
    }
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

// FL-PLUGIN-29: on start the driver re-reads the device and reports what is active now.
void restart(step_context &c, const class_scenarios &cls) {
    expect_reported_after_restart(c, cls.raise, cls.raise_code, "an alarm", "start");
}

// ---- scenario.<class>.shared_bus (FL-PLUGIN-33) -------------------------------------------------------------------
// Two devices of the driver, units 1 and 2, on one host rs485_bus (host/transport) to a two-unit simulator
// speaking Modbus RTU: each unit's alarm arrives, and neither driver instance holds the bus until the reply timeout.
class bus_rig {
public:
    static constexpr int units = 2;
    explicit bus_rig(findings &f) : f_(f) {}
    ~bus_rig() {
        runtime_.reset();
        bus_.reset();
        work_.reset();
        io_.stop();
        for (auto &t : threads_) t.join();
        for (const auto &[id, r] : rec_)
            for (const auto &p : r->problems()) f_.fail("device " + id + ": " + p);
    }
    bool start(const run_options &o, const std::shared_ptr<core::plugin> &plugin, const core::driver_info &drv,
               const std::string &bus_path) {
        for (int u = 1; u <= units; ++u) rec_["bus-" + std::to_string(u)] = std::make_unique<recorder>(drv.device_class);
        for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
        core::runtime_options opts;
        opts.gateway_id = "firelink-conform";
        runtime_ = std::make_unique<core::device_runtime>(
            io_,
            [this](core::accepted_event &&ev) {
                if (auto it = rec_.find(ev.device_id); it != rec_.end()) it->second->accept(std::move(ev));
            },
            opts);
        transport::serial_settings ss;
        ss.path = bus_path;
        ss.baud = 9600;
        bus_ = transport::make_rs485_bus(io_, ss, transport::bus_timing{5ms, 300ms}, transport::backoff{100ms, 1000ms});
        for (int u = 1; u <= units; ++u) {
            core::device_spec spec;
            spec.device_id = "bus-" + std::to_string(u);
            spec.driver_id = drv.id;
            auto bus = bus_;
            spec.make_link = [bus, u](transport::executor ex, transport::link_events ev) {
                auto l = bus->attach(std::move(ex), std::move(ev));
                l->set_unit(u);
                return l;
            };
            firelink::result<> created = firelink::result<>::fail(FL_INVALID_ARGUMENT, "no config to try");
            for (const auto &config : scenario_configs(o, drv.id)) {
                spec.config = config;
                if ((created = runtime_->create(plugin, spec))) break;
            }
            if (!created) {
                f_.warn("driver '" + drv.id + "' refused its config (" + created.why() + "); give one with --config " +
                        drv.id + "=FILE");
                return false;
            }
            if (const auto started = runtime_->start(spec.device_id); !started) {
                f_.fail("driver '" + drv.id + "': start of device " + spec.device_id + " on the bus returned " +
                        status_name(started.status()));
                return false;
            }
        }
        const auto deadline = steady::now() + event_budget;
        for (int u = 1; u <= units; ++u)
            while (true) {
                const auto st = runtime_->status("bus-" + std::to_string(u));
                if (st && st->last_seen) break;
                if (steady::now() > deadline) {
                    f_.fail("driver '" + drv.id + "': no traffic from unit " + std::to_string(u) + " on the shared bus "
                            "within " + std::to_string(ms(event_budget)) + " ms of start");
                    return false;
                }
                std::this_thread::sleep_for(20ms);
            }
        return true;
    }
    recorder &events(int unit) { return *rec_.at("bus-" + std::to_string(unit)); }
    std::optional<core::device_status> status(int unit) { return runtime_->status("bus-" + std::to_string(unit)); }

private:
    findings &f_;
    boost::asio::io_context io_;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
        boost::asio::make_work_guard(io_)};
    std::vector<std::thread> threads_;
    std::map<std::string, std::unique_ptr<recorder>> rec_;
    std::shared_ptr<transport::rs485_bus> bus_;
    std::unique_ptr<core::device_runtime> runtime_;
};

void shared_bus(const run_options &o, findings &f, const class_scenarios &cls) {
    ::signal(SIGPIPE, SIG_IGN);
    std::shared_ptr<core::plugin> plugin = load_plugin(o, f);
    if (!plugin) return;
    const core::driver_info *drv = driver_of_class(*plugin, cls.device_class, f);
    if (!drv) return;
    if (!(drv->wires & FL_WIRE_RS485_BUS)) return f.skip("driver '" + drv->id + "' declares no rs485_bus wire");
    if (!o.traces.empty() || !o.device_uri.empty())
        return f.skip("the shared bus runs against the simulator only, not --trace or --device");
    const auto exe = sim_path(o);
    if (exe.empty() || ::access(exe.c_str(), X_OK) != 0)
        return f.fail("no device source for " + cls.device_class + ": no simulator at '" + exe.string() +
                      "' (give --sim PATH_TO_firelink-sim)");
    const core::driver_info info = *drv;
    pty_pair line;
    std::string why;
    if (!line.open(why)) return f.fail(why);
    simulator sim;
    if (!sim.start(exe, cls.sim_kind, {"--serial", line.device_end(), "--units", "1-2"}, why))
        return f.fail("the device source did not start: " + why);
    bus_rig rig(f);
    if (!rig.start(o, plugin, info, line.host_end())) return;
    for (int u = 1; u <= bus_rig::units; ++u) {
        const auto from = rig.events(u).mark();
        const auto t0 = steady::now();
        const std::string action = "@" + std::to_string(u) + " " + cls.raise;
        sim.act(action);
        const auto e = rig.events(u).wait(from, driver_event("alarm", cls.raise_code), t0 + event_budget);
        if (!e)
            return f.fail("driver '" + info.id + "': after '" + action + "', no alarm " + cls.raise_code +
                          " from unit " + std::to_string(u) + " on the shared bus within " +
                          std::to_string(ms(event_budget)) + " ms");
        f.note("'" + action + "': alarm " + cls.raise_code + " in " + std::to_string(ms(e->at - t0)) + " ms");
    }
    std::this_thread::sleep_for(watch);
    for (int u = 1; u <= bus_rig::units; ++u) {
        const auto st = rig.status(u);
        if (!st) continue;
        // A turn or two may time out while the line settles; a driver that never ends its turns loses one each poll.
        if (st->link.reply_timeouts > 2)
            f.fail("driver '" + info.id + "': " + std::to_string(st->link.reply_timeouts) + " turns of unit " +
                   std::to_string(u) + " ended by the reply timeout on a bus whose devices answer: end each turn "
                   "with end_request once its reply is in (FL-PLUGIN-33)");
        else
            f.note("unit " + std::to_string(u) + ": " + std::to_string(st->link.reply_timeouts) + " reply timeouts, " +
                   std::to_string(st->link.bytes_in) + " bytes in");
    }
}

}  // namespace

void add_scenario_checks(std::vector<check> &v) {
    for (const auto &cls : classes()) {
        const std::size_t first = v.size();
        const std::string p = "scenario." + cls.device_class + ".";
        auto run = [&cls, p](const std::string &name, std::function<void(step_context &, const class_scenarios &)> body) {
            return [&cls, body, id = p + name](const run_options &o, findings &f) {
                with_device(o, f, cls, id, [&](step_context &c) { body(c, cls); });
            };
        };
        v.push_back({p + "alarm", {"FL-PLUGIN-27"}, level::standard,
                     "alarms and pre-alarms from the simulator arrive once each within 5 s, and restores end them",
                     run("alarm", [](step_context &c, const class_scenarios &k) { k.alarm(c); })});
        v.push_back({p + "pre_alarm", {"FL-PLUGIN-27"}, level::standard,
                     "a rising level gives one pre_alarm, then one alarm, within 5 s; restores end them",
                     [&cls, body = run("pre_alarm", [](step_context &c, const class_scenarios &k) { pre_alarm(c, k); })](
                         const run_options &o, findings &f) {
                         if (cls.rise.empty()) return f.skip("not applicable to " + cls.device_class + ": " + cls.no_pre_alarm);
                         body(o, f);
                     }});
        v.push_back({p + "fault", {"FL-PLUGIN-27"}, level::standard,
                     "the device's own fault gives one fault with the class's code within 5 s, and a restore that "
                     "ends it when it clears",
                     run("fault", [](step_context &c, const class_scenarios &k) { fault(c, k); })});
        v.push_back({p + "silence", {"FL-PLUGIN-27"}, level::standard,
                     "a device that stops answering gets no event from its driver; it recovers when it answers",
                     run("silence", [](step_context &c, const class_scenarios &k) { silence(c, k); })});
        v.push_back({p + "garbage", {"FL-PLUGIN-27", "FL-PLUGIN-32"}, level::standard,
                     "garbage replies give a communication_fault or nothing, never a crash, and it recovers",
                     run("garbage", [](step_context &c, const class_scenarios &k) { garbage(c, k); })});
        v.push_back({p + "command", {"FL-PLUGIN-30"}, level::standard,
                     "the class's command is confirmed by read-back: command_result ok=true",
                     run("command", [](step_context &c, const class_scenarios &k) { k.command(c); })});
        v.push_back({p + "busy", {"FL-PLUGIN-28"}, level::standard,
                     "an alarm answered FL_BUSY is kept and emitted again once the host takes events",
                     run("busy", [](step_context &c, const class_scenarios &k) { busy(c, k); })});
        v.push_back({p + "restart", {"FL-PLUGIN-29"}, level::standard,
                     "an alarm active through stop and start is reported again on start",
                     run("restart", [](step_context &c, const class_scenarios &k) { restart(c, k); })});
        v.push_back({p + "stuck", {"FL-PLUGIN-30"}, level::standard,
                     "a command the device does not carry out answers ok=false",
                     run("stuck", [](step_context &c, const class_scenarios &k) { k.stuck(c); })});
        v.push_back({p + "shared_bus", {"FL-PLUGIN-33"}, level::standard,
                     "two devices on one RS-485 bus to a two-unit simulator: each unit's alarm arrives, no device "
                     "holds the bus until its reply timeout",
                     [&cls](const run_options &o, findings &f) { shared_bus(o, f, cls); }});
        for (std::size_t i = first; i < v.size(); ++i) v[i].device_class = cls.device_class;
    }
    const std::size_t panel = v.size();
    add_panel_checks(v);
    for (std::size_t i = panel; i < v.size(); ++i) v[i].device_class = "fire_panel";
    v.push_back({"scenario.other", {}, level::standard,
                 "drivers of classes with no standard scenarios (vendor classes) are listed as skipped",
                 [](const run_options &o, findings &f) {
                     auto plugin = load_plugin(o, f);
                     if (!plugin) return;
                     std::string why;
                     for (const auto &d : plugin->info().drivers) {
                         std::string reason;
                         if (d.device_class.rfind("vendor:", 0) == 0)
                             reason = "a vendor class has no standard scenarios";
                         else continue;
                         why += (why.empty() ? "" : "; ") + ("driver '" + d.id + "' (" + d.device_class + "): " + reason);
                     }
                     f.skip(why.empty() ? "every driver's class is covered by the scenarios above" : why);
                 }});
}

}  // namespace firelink::conform
