// Internal: what every class scenario shares. A device of the driver runs in the host's own device runtime
// (host/core) on a real wire (host/transport); a `recorder` judges every event it accepts; a scenario is written in
// steps (`expect`, `expect_restore`, `expect_result`, ...) on a `scenario_device`, whose `act` is done by the device
// source: a simulator's standard input, a trace's next section, a person at a live device.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "checks.hpp"
#include "firelink/core/device_runtime.hpp"

namespace firelink::conform {

using steady = std::chrono::steady_clock;

// From an action on the device to the event it causes: a hang guard, far above a good driver's few polls.
inline constexpr std::chrono::milliseconds event_budget{5000};
// A command's result may take the driver's command timeout (5 s by default) before it gives up.
inline constexpr std::chrono::milliseconds command_budget{12000};
// How long the suite watches for what must not happen (a second alarm, an event from a silent device).
inline constexpr std::chrono::milliseconds settle{800};
inline constexpr std::chrono::milliseconds watch{1500};

long long ms(steady::duration d);
std::string mp_str(const std::vector<std::uint8_t> &b, const char *key);
// The plugin's driver of `device_class` (the last it lists); NULL, and the check skipped, when it has none.
const core::driver_info *driver_of_class(const core::plugin &plugin, const std::string &device_class, findings &f);
// firelink-sim: --sim PATH, else next to the running suite.
std::filesystem::path sim_path(const run_options &o);

// ---- what the device emitted ------------------------------------------------------------------------------------
struct seen {
    std::string kind, code, event_id, ends, command_id, json;
    std::vector<std::uint8_t> payload;  // the event's msgpack
    std::optional<bool> ok;
    bool from_host = false;
    steady::time_point at;
};

// Records every accepted event, checks each against the boundary check and its class, and pairs restores. It is the
// suite's durable sink too: an event is committed once recorded (firelink.commit/1), unless commits are held.
class recorder {
public:
    explicit recorder(std::string device_class) : class_(std::move(device_class)) {}
    void accept(core::accepted_event &&ev);
    // While held, events are recorded but not committed; hold(false) commits the held ones, in order.
    void hold(bool on);
    void refused();
    std::size_t mark() const;
    // The first event from `from` on that matches, waiting until `deadline`.
    std::optional<seen> wait(std::size_t from, const std::function<bool(const seen &)> &match,
                             steady::time_point deadline);
    std::vector<seen> since(std::size_t from) const;
    std::vector<std::string> problems() const;

private:
    std::string class_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<seen> events_;
    std::vector<std::string> problems_;
    std::map<std::string, std::string> active_;  // event_id -> code of the driver's raised conditions
    bool holding_ = false;
    std::vector<std::function<void()>> held_;  // on_durable of the events recorded while held
};

// One device of a driver in the host's runtime with its wire, and what a scenario can do to it. The device source
// decides what `act` does. Derived classes call shutdown() first in their destructor, so the runtime lets go of
// the wire before the source behind it goes away.
class scenario_device {
public:
    static constexpr const char *id = "scenario-1";

    scenario_device(findings &f, const core::driver_info &drv);
    virtual ~scenario_device();
    scenario_device(const scenario_device &) = delete;
    scenario_device &operator=(const scenario_device &) = delete;

    explicit operator bool() const { return ready_; }
    const std::string &driver() const { return driver_; }
    recorder &events() { return rec_; }
    virtual void act(const std::string &action) = 0;
    // While busy, every emit of the driver is answered FL_BUSY, as a host whose queue is full answers it.
    void set_busy(bool on) { busy_ = on ? busy_all : 0; }
    // While on, every emit but an alarm's is answered FL_BUSY: a host whose other lanes are full (an alarm never
    // waits behind them, so a driver must not hold its alarms behind a refused fault).
    void set_busy_but_alarms(bool on) { busy_ = on ? busy_but_alarms : 0; }
    // How many emits the host has answered FL_BUSY so far.
    std::uint64_t refusals() const noexcept { return refusals_.load(); }
    // Stops and starts the device again, as a host restart of the driver's device does.
    bool restart();
    // The device as the host's runtime sees it (whether it takes commit notifications, ...).
    std::optional<core::device_status> status() const;
    // Sends a command; its id, or empty (and a failure) when the driver refused it outright.
    std::string command(const std::string &name);
    // ... with these string arguments (a device script's `args`), as given.
    std::string command(const std::string &name, const std::map<std::string, std::string> &args);
    // Runs as a command is sent (a trace moves to its section).
    virtual void commanded(const std::string & /*name*/) {}
    // Whether commands carry args {"operator": "firelink-conform"}, as the admin API adds; else args {}.
    virtual bool operator_argument() const { return true; }

protected:
    // Creates the device with the first config of `configs` it takes, starts it; false (and a finding) otherwise.
    // `heartbeat`: the host's liveness budget for the device (0: off), after which it reports the device offline.
    bool create_and_start(const std::shared_ptr<core::plugin> &plugin, const core::driver_info &drv,
                          const std::vector<std::vector<std::uint8_t>> &configs, core::link_factory make_link,
                          std::chrono::milliseconds heartbeat = std::chrono::milliseconds{0});
    // True once the device's wire brought traffic (bytes in or an event) within `budget`.
    bool wait_traffic(std::chrono::milliseconds budget);
    void set_ready() { ready_ = true; }
    void shutdown();
    boost::asio::io_context &io() { return io_; }
    findings &f_;

private:
    recorder rec_;
    std::string driver_;
    boost::asio::io_context io_;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
        boost::asio::make_work_guard(io_)};
    std::vector<std::thread> threads_;
    std::unique_ptr<core::device_runtime> runtime_;
    bool ready_ = false, shut_ = false;
    static constexpr int busy_all = 1, busy_but_alarms = 2;
    std::atomic<int> busy_{0};
    std::atomic<std::uint64_t> refusals_{0};
    int commands_ = 0;
};

// ---- the steps a scenario is written in --------------------------------------------------------------------------
struct step_context {
    scenario_device &d;
    findings &f;
    bool ok = true;  // a scenario stops at its first failed step: what follows would only repeat it
};

std::function<bool(const seen &)> driver_event(std::string kind, std::string code);
// Does `action` and waits for the driver's `kind code` event from then on (from event `from`, timed from `since`
// when the action was done before), within the budget.
std::optional<seen> expect(step_context &c, const std::string &action, const std::string &kind,
                           const std::string &code, std::size_t from = SIZE_MAX,
                           std::optional<steady::time_point> since = {});
// The restore of `raised`, with `ends` naming its event_id.
void expect_restore(step_context &c, const seen &raised, std::size_t from, steady::time_point t0,
                    const std::string &after);
// Does `action`, which ends each of `raised`: a restore of each, timed from the action. Returns the mark of the
// events from the action on.
std::size_t expect_ended(step_context &c, const std::string &action, std::initializer_list<const seen *> raised);
// Raises with `raise` and ends it with `clear`: exactly one `kind code` event, and a restore that ends it.
void raise_and_restore(step_context &c, const std::string &raise, const std::string &clear, const std::string &kind,
                       const std::string &code);
// FL-PLUGIN-29: `raise` gives the alarm `code`; after a stop and start of the device the alarm, still active, is
// reported again, timed from the start. `alarm` and `on_start` word the failure ("an alarm", "start").
void expect_reported_after_restart(step_context &c, const std::string &raise, const std::string &code,
                                   const std::string &alarm, const std::string &on_start);
std::size_t count(const std::vector<seen> &v, const std::string &kind, const std::string &code);
// Exactly `n` driver events `kind code` since `from`, after letting the device settle.
void expect_count(step_context &c, std::size_t from, const std::string &kind, const std::string &code, std::size_t n);
// Sends a command and waits for its command_result; checks `ok` against what the device really did.
void expect_result(step_context &c, const std::string &name, bool ok, const std::string &why_ok);
// Watches `watch` long: the driver emits nothing but telemetry and what `allowed` lets through.
void expect_quiet(step_context &c, std::size_t from, const std::function<bool(const seen &)> &allowed,
                  const std::string &while_what, const char *req);

void add_panel_checks(std::vector<check> &out);  // panel_checks.cpp: fire_panel through a host listener

}  // namespace firelink::conform
