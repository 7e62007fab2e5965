// The suite's own host: an fl_host per device instance whose services (emit, log, timers, transport) record what
// the plugin does, judge it against the contract, and let a check drive time and the wire by hand. Nothing here
// runs by itself: timers fire and bytes arrive only when a check says so, so every run is reproducible by seed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <firelink/firelink.h>

#include "firelink/core/plugin_loader.hpp"
#include "guarded.hpp"

namespace firelink::conform {

// The state the host believes an instance is in, by the calls it made.
enum class device_state { creating, created, starting, started, stopping, stopped, destroyed };

struct emitted_event {
    std::vector<std::uint8_t> bytes;
    std::string kind, code;  // empty when invalid
    std::string invalid;     // why it was refused, empty when valid
    bool from_caller = true; // emitted by the thread that drives the device (inside a call), not one of the driver's
};

// The plugin's own fl_host (passed to init): emit is MISUSE on it.
class plugin_host {
public:
    plugin_host();
    const fl_host *abi() const noexcept { return &host_; }
    std::vector<std::string> violations() const;
    std::size_t log_lines() const noexcept { return logs_.load(); }

private:
    static fl_status emit(const fl_host *, const std::uint8_t *, std::size_t);
    static void log(const fl_host *, std::int32_t, const char *);
    static const void *get_extension(const fl_host *, const char *);
    fl_host host_{};
    mutable std::mutex mutex_;
    std::vector<std::string> violations_;
    std::atomic<std::size_t> logs_{0};
};

// One device's fl_host with firelink.timer/1 and firelink.transport/1.
class device_host {
public:
    device_host(std::string device_id, std::string device_class, std::int32_t transport_kind);
    device_host(const device_host &) = delete;
    device_host &operator=(const device_host &) = delete;

    const fl_host *abi() const noexcept { return host_ptr_; }
    void set_state(device_state s) { state_.store(s); }

    // Host faults a check injects (call before create):
    // fl_host, fl_host_transport and fl_host_timer exactly v1.0-sized, each ending at an inaccessible page, as an
    // older host presents them: a read of a later field faults (FL-PLUGIN-26).
    void present_v1_0();
    // get_extension answers NULL for this id, as a host without the extension does (FL-PLUGIN-15).
    void withhold_extension(std::string id) { withheld_ = std::move(id); }
    // While set (non-zero), emit, write and request answer this status without doing anything (FL-PLUGIN-26).
    void answer_status(fl_status st) { forced_status_.store(st); }
    // While on, emit answers FL_BUSY to every event but telemetry and takes nothing (FL-PLUGIN-28).
    void set_busy(bool on) { busy_.store(on); }
    std::size_t busy_answers() const noexcept { return busy_answers_.load(); }
    std::vector<emitted_event> deferred() const;  // the events answered FL_BUSY
    // Turns on a shared bus (FL-PLUGIN-33): requests taken, and turns the driver ended itself with end_request.
    std::size_t turns_taken() const noexcept { return turns_taken_.load(); }
    std::size_t turns_ended() const noexcept { return turns_ended_.load(); }
    bool turn_open() const;
    device_state state() const { return state_.load(); }

    // Answer for events of these kinds (FL_BUSY to test retries); FL_OK by default.
    std::vector<emitted_event> events() const;
    // Forgets the events recorded so far (a long run's own memory must not count against the plugin).
    void forget_events();
    std::size_t event_count() const;
    // Contract breaches seen by the host services (a timer or the wire used while not started)...
    std::vector<std::string> violations() const;
    // ...and emits while not started, kept apart: a driver's own thread may race any check, so only the check that
    // watches for them (device.quiet_after_stop) judges them.
    std::vector<std::string> emit_violations() const;
    std::vector<std::string> logs() const;
    std::size_t emits_after_stop() const noexcept { return late_emits_.load(); }

    struct timer {
        std::uint32_t period_ms;
        bool oneshot;
    };
    std::map<std::uint64_t, timer> active_timers() const;
    void spend_timer(std::uint64_t id);  // a one-shot timer fired
    void clear_timers();                 // what the host does after stop

    bool open_requested() const noexcept { return open_requested_.load(); }
    std::vector<std::uint8_t> take_written();  // bytes the device wrote or requested since the last call
    void end_turn();                           // a request's turn ended (reply timeout): the next request may go
    void reset_wire();                         // after stop: the host closed it

private:
    static fl_status emit(const fl_host *, const std::uint8_t *, std::size_t);
    static void log(const fl_host *, std::int32_t, const char *);
    static const void *get_extension(const fl_host *, const char *);
    static device_host *self(const fl_host *h) { return h ? static_cast<device_host *>(h->host_data) : nullptr; }
    bool may_use_services() const;
    // A service used while the device is not started is a violation ("<call> while not started"); false then.
    bool in_service(const char *call);
    // What write and request answer before they take the bytes: FL_MISUSE for no bytes with a size or a device not
    // started, the status a check forces (answer_status), else FL_OK.
    fl_status may_send(const std::uint8_t *data, std::size_t size, const char *call);
    // Keeps what the device wrote or requested for take_written, up to 1 MiB; under mutex_.
    void keep_written(const std::uint8_t *data, std::size_t size);
    void violation(std::string what, bool emit = false);

    static std::int32_t t_kind(const fl_host *);
    static fl_status t_open(const fl_host *);
    static fl_status t_write(const fl_host *, const std::uint8_t *, std::size_t);
    static fl_status t_request(const fl_host *, const std::uint8_t *, std::size_t, std::uint32_t);
    static fl_status t_end_request(const fl_host *);
    static fl_status t_close(const fl_host *);
    static std::int32_t t_unit(const fl_host *);
    static fl_status tm_start(const fl_host *, std::uint32_t, std::uint32_t, std::uint64_t *);
    static fl_status tm_cancel(const fl_host *, std::uint64_t);

    std::string device_id_, device_class_;
    std::int32_t transport_kind_;
    std::thread::id caller_ = std::this_thread::get_id();
    fl_host host_{};
    fl_host_transport transport_{};
    fl_host_timer timer_{};
    const fl_host *host_ptr_ = &host_;
    const fl_host_transport *transport_ptr_ = &transport_;
    const fl_host_timer *timer_ptr_ = &timer_;
    std::unique_ptr<guarded_bytes> v1_host_, v1_transport_, v1_timer_;
    std::string withheld_;
    std::atomic<fl_status> forced_status_{FL_OK};
    std::atomic<bool> busy_{false};
    std::atomic<std::size_t> busy_answers_{0}, turns_taken_{0}, turns_ended_{0};
    std::vector<emitted_event> deferred_;
    std::atomic<device_state> state_{device_state::creating};

    mutable std::mutex mutex_;
    std::vector<emitted_event> events_;
    std::vector<std::string> violations_, emit_violations_;
    std::vector<std::string> logs_;
    std::set<std::string> active_ids_;  // event_ids of conditions not yet restored
    std::map<std::uint64_t, timer> timers_;
    std::uint64_t next_timer_ = 1;
    std::vector<std::uint8_t> written_;
    bool request_in_flight_ = false;
    std::atomic<bool> open_requested_{false};
    std::atomic<std::size_t> late_emits_{0};
};

// One instance of a driver, created through the entry and driven call by call. Every call into the plugin is
// timed; the slowest is kept for FL-PLUGIN-24.
class instance {
public:
    // `transport_kind`: what the wire says it is (FL_TRANSPORT_*); -1: from the driver's first declared wire.
    instance(const fl_plugin_entry &entry, const core::driver_info &driver, std::string device_id,
             std::int32_t transport_kind = -1);
    ~instance();  // destroys the device if a check has not
    instance(const instance &) = delete;
    instance &operator=(const instance &) = delete;

    fl_status create(const std::vector<std::uint8_t> &config);
    fl_status create(const std::uint8_t *config, std::size_t size, const char *driver_id = nullptr);
    fl_status start();
    fl_status stop();
    fl_status command(const std::vector<std::uint8_t> &command);
    fl_status command(const std::uint8_t *command, std::size_t size);
    void destroy();
    // Delivers the link's opening if the device asked for it (never from inside open).
    void deliver_open();
    void on_state(std::int32_t state, fl_status reason);
    void on_data(const std::uint8_t *data, std::size_t size);
    // Fires every active timer once (one-shots are spent).
    void tick();

    const fl_device *device() const noexcept { return device_; }
    device_host &host() noexcept { return host_; }
    const core::driver_info &driver() const noexcept { return driver_; }
    const fl_device_transport *transport() const noexcept { return transport_; }
    const fl_device_timer *timer() const noexcept { return timer_; }
    bool needs_wire() const noexcept;

    std::chrono::microseconds slowest() const noexcept { return slowest_; }
    const std::string &slowest_call() const noexcept { return slowest_call_; }
    // The most FL_BUSY answers the host gave inside one call: a driver that spins on FL_BUSY shows many.
    std::size_t most_busy_in_one_call() const noexcept { return most_busy_; }

private:
    template <class F>
    auto timed(const char *what, F &&f);
    void bind_extensions();

    const fl_plugin_entry &entry_;
    core::driver_info driver_;
    device_host host_;
    const fl_device *device_ = nullptr;
    const fl_device_transport *transport_ = nullptr;
    const fl_device_timer *timer_ = nullptr;
    std::chrono::microseconds slowest_{0};
    std::string slowest_call_;
    std::size_t most_busy_ = 0;
};

// The transport kind a driver's first declared wire maps to; FL_TRANSPORT_SERIAL when it declares none.
std::int32_t transport_kind_for(std::uint32_t wires);

// Process-wide resource counts for leak checks.
std::size_t open_fds();
std::size_t thread_count();
std::size_t heap_in_use();

}  // namespace firelink::conform
