// Runs device instances of loaded plugins: gives each its fl_host (emit, log, extensions), its strand, its timers
// (firelink.timer/1) and its wire (firelink.transport/1, through a transport::link), turns silence into `offline`
// and back (liveness), and watches every call into the plugin (watchdog).
//
// Threads: create/start/stop/command/destroy are called from one control thread (the ABI's "main" thread); the
// runtime posts every call into a device onto that device's strand and waits for it, so the host never calls one
// instance concurrently. Accepted events are handed to the sink on the emitting thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <firelink/firelink.h>
#include <firelink/transport/link.hpp>

#include "firelink/core/conditions.hpp"
#include "firelink/core/plugin_loader.hpp"
#include <firelink/result.hpp>

namespace firelink::core {

// One event the host accepted at the boundary, stamped and enriched by the host.
struct accepted_event {
    std::string gateway_id;
    std::string plugin_id;
    std::string device_id;
    std::string device_class;
    std::shared_ptr<const std::map<std::string, std::string>> site;  // site metadata of the device
    std::uint64_t sequence = 0;  // per device, from 1, gap-free
    bool from_host = false;      // made by the host (offline, restore of offline, driver faults, command refusals)
    std::string kind;
    std::string code;
    std::chrono::system_clock::time_point received_wall;
    std::chrono::steady_clock::time_point received_monotonic;
    std::vector<std::uint8_t> payload;  // the event's msgpack bytes
    // Set when this driver event opened or closed one of the device's open conditions (conditions.hpp): a durable
    // sink stores it with the event, in the same transaction.
    std::optional<condition_change> condition;
    // A re-report of a condition already open (condition_change::rereport): every sink marks its record so.
    bool rereport() const { return condition && condition->rereport; }
    // Set for a driver's event when its device takes commit notifications (firelink.commit/1); empty otherwise. The
    // pipeline runs it once, from any thread, when the event is durable (event_pipeline::accept says when that is);
    // never for an event that is lost. It must not block: it only advances the device's commit watermark.
    std::function<void()> on_durable;
};

// Receives accepted events; called on the emitting thread (any thread), so it must be thread-safe and must not
// block for long.
using event_sink = std::function<void(accepted_event &&)>;

// A device's state as the host sees it: its place in the ABI's life cycle (created, started, stopped), or why it
// does not run as started: its wire is silent past its liveness budget (offline), its driver hung, crashed or was
// parked (faulted), or it cannot run at all (down: no plugin, a refused config, a wire that never opened).
enum class device_state { created, started, stopped, offline, faulted, down };
// "created", "started", ... as the views and metrics name it.
std::string_view to_string(device_state s);

// What the runtime reports as it happens, for metrics. Every function may be empty; all are called from any thread.
struct runtime_observer {
    std::function<void(const std::string &device, const std::string &device_class, const std::string &kind)> accepted;
    std::function<void(const std::string &device)> refused;
    std::function<void(const std::string &device)> overrun;
    std::function<void(const std::string &device, device_state state)> state;
    std::function<void(const std::string &device, std::uint64_t errors)> transport_errors;
};

struct runtime_options {
    std::string gateway_id;
    // A call into the plugin longer than this is reported (docs/abi.md FL-PLUGIN-24)...
    std::chrono::milliseconds watchdog_warn{100};
    // ...and longer than this marks the device faulted: a `fault` event `driver_hung`, no more calls into it.
    std::chrono::milliseconds watchdog_fault{2000};
    runtime_observer observer;
    // Backpressure: when set and false for an event's kind, emit answers FL_BUSY and takes nothing (the driver keeps
    // the event and retries, FL-PLUGIN-28). The host's own events (offline, driver faults) are always taken.
    std::function<bool(std::string_view kind)> admits;
};

// Makes a device's wire on its strand; empty when the device has no wire.
using link_factory =
    std::function<std::unique_ptr<transport::link>(transport::executor, transport::link_events)>;

struct device_spec {
    std::string device_id;
    std::string driver_id;
    std::vector<std::uint8_t> config;                 // msgpack map; empty = {}
    std::map<std::string, std::string> site;          // site metadata, copied into every event
    std::chrono::milliseconds heartbeat{0};           // liveness budget; 0 = off
    link_factory make_link;                           // empty: no wire
    std::string wire_name;                            // the wire, for messages ("tcp 10.0.0.5:502 unit 1")
};

// A wire that has the kind and unit the device's real wire would have and never opens, for try_create: the driver
// sees the wire it will get, and nothing touches the real one (a port, a bus, a listener's binding).
link_factory dormant_link(int fl_transport_kind, int unit);

// Faults the host raises for a device about whether it runs as configured (docs/events.md, "Events the host makes").
// Kept per device id, like its conditions, across instances (a reload, a place holder replaced by an instance), so
// the restore comes from whichever instance sees the cause end. Never listed in firelink.conditions/1.
enum class host_fault {
    device_down,      // major: the device cannot run (create or start refused, its wire never opened, runner parked)
    config_rejected,  // minor: a reload's new definition was refused; the device runs on its previous one
    // major: a connection claimed the identity of the device while its connection was open, and was refused (the
    // protocol has no authentication: someone may be forging the device). No restore: an operator looks.
    identity_conflict,
};
const char *to_string(host_fault f);  // its event code: "device_down", "config_rejected", "identity_conflict"

struct open_host_fault {
    std::string device_id;
    host_fault fault = host_fault::device_down;
    std::string message;
    std::int64_t since_wall_ms = 0;  // when first raised (a new message does not move it)
};

// What a device that has no instance is, for the place the runtime keeps for it (set_down).
struct down_spec {
    std::string device_id;
    std::string plugin_id;  // empty when no loaded plugin has its driver: its events then name "firelink-host"
    std::string driver_id;
    std::string device_class;
    std::map<std::string, std::string> site;
};

struct device_status {
    std::string device_id;
    std::string plugin_id;
    std::string driver_id;
    std::string device_class;
    device_state state = device_state::created;
    std::string down_reason;      // while down: why the device cannot run (its device_down fault's message)
    std::string config_rejected;  // while its config_rejected fault is open: why its new definition was refused
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;         // events refused at the boundary
    std::uint64_t deferred = 0;        // events answered FL_BUSY (backpressure)
    std::uint64_t slow_callbacks = 0;  // calls over the watchdog's warning bound
    std::uint64_t commands = 0;
    std::optional<std::chrono::system_clock::time_point> last_seen;  // last traffic: bytes in or an event
    transport::link_counters link;
    bool has_link = false;
    bool link_paused = false;  // backpressure: the host reads nothing from the device's wire now
    std::size_t open_conditions = 0;      // firelink.conditions/1: held for this device id now
    std::uint64_t conditions_dropped = 0; // dropped at condition_list::max_open since the host started
    bool takes_commits = false;           // the driver returned fl_device_commit (firelink.commit/1)
    std::uint64_t emitted = 0;            // the driver's events emit answered FL_OK, numbered 1..emitted
    std::uint64_t committed_through = 0;  // events 1..committed_through are durable
};

class device_runtime {
public:
    device_runtime(boost::asio::io_context &io, event_sink sink, runtime_options options = {});
    ~device_runtime();  // stops and destroys every device, then deinitialises the plugins it initialised
    device_runtime(const device_runtime &) = delete;
    device_runtime &operator=(const device_runtime &) = delete;

    // Initialises a loaded plugin with its plugin-level fl_host, unless already initialised, and keeps it loaded
    // for as long as the runtime lives. FL_OK, or the plugin's status and what failed.
    result<> attach(const std::shared_ptr<plugin> &p);

    // Creates a device instance (attaching its plugin first). On failure returns the status with one clear reason;
    // nothing is left behind.
    result<> create(const std::shared_ptr<plugin> &p, const device_spec &spec);
    result<> create(const std::shared_ptr<plugin> &p, const std::string &driver_id, const std::string &device_id,
                    const std::vector<std::uint8_t> &config);
    // What the driver logged at warn or error during its create_device (or its start) is in the reason, after the
    // status:
    // "create_device(modbus-gas-valve) returned -4: create: config key 'poll_ms': 5 is outside 10..3600000".

    // Creates the instance as create() would and destroys it at once, so that the driver judges its config before
    // anything depends on it (FL-PLUGIN-18: create_device only checks the config and allocates). Nothing is
    // registered, started or emitted, and the device id may be running meanwhile; its open conditions are offered to
    // the driver as to a real instance. Give it a dormant_link for a device with a wire. FL_OK, or the status with
    // its reason as create() says it.
    result<> try_create(const std::shared_ptr<plugin> &p, const device_spec &spec);

    result<> start(const std::string &device_id);  // the reason: the driver's words when it fails
    result<> stop(const std::string &device_id);
    // Routes a command (msgpack {"id","name","args"}) to a started device. When the device cannot take it (not
    // started, offline, faulted) or the driver refuses it, the host emits the command_result itself (ok false, the
    // reason) and returns the status with that reason; on FL_OK the driver reports the outcome. FL_TIMEOUT means the
    // driver took the command but its call has not returned: its result will follow.
    result<> command(const std::string &device_id, const std::vector<std::uint8_t> &command);
    void destroy(const std::string &device_id);

    void start_all();
    void stop_all();
    void destroy_all();

    std::vector<std::string> device_ids() const;
    bool has_device(const std::string &device_id) const;
    std::optional<device_status> status(const std::string &device_id) const;

    struct device_counters {
        std::uint64_t accepted = 0;
        std::uint64_t refused = 0;
        std::uint64_t slow_callbacks = 0;
    };
    device_counters counters(const std::string &device_id) const;

    // The host extensions this runtime provides to devices.
    static bool provides(const std::string &extension_id);

    // Host-kept conditions (firelink.conditions/1). load_conditions replaces the lists of the device ids it names
    // with what a durable queue had stored; call it before creating those devices. A device id keeps its list
    // across destroy and create (a reload, a runner restart) for the life of the runtime.
    void load_conditions(std::vector<open_condition> stored);
    std::vector<open_condition> open_conditions(const std::string &device_id) const;

    // A device that cannot run. Its device_down fault goes to the platform with `reason` (again when the reason
    // changes), and it stays listed (device_ids, status, its metrics) in state `down`. Without an instance of that id
    // the runtime keeps a place holder for it, which only refuses commands, with the reason; create() replaces it.
    // The fault ends when an instance of the device runs: started, and with a wire, once its wire has opened. A
    // started device whose wire has not opened within its liveness budget (60 s with liveness off) is down too.
    void set_down(const down_spec &spec, const std::string &reason);
    // The host's faults other than device_down (config_rejected, identity_conflict): raised through the device's
    // instance or place holder, again only when the message changed; ended with a restore. False when the runtime
    // has neither for the id, or when nothing changed.
    bool raise_fault(const std::string &device_id, host_fault f, const std::string &message);
    bool end_fault(const std::string &device_id, host_fault f, const std::string &message);
    std::vector<open_host_fault> open_faults(host_fault f) const;
    // The devices that cannot run now, oldest first: for /healthz and operators.
    std::vector<open_host_fault> down_devices() const { return open_faults(host_fault::device_down); }

    struct device_slot;
    struct plugin_slot;
    struct fault_list;

private:
    std::shared_ptr<device_slot> find(const std::string &device_id) const;
    std::shared_ptr<condition_list> conditions_of(const std::string &device_id);  // made on first use; mutex_ held
    std::shared_ptr<fault_list> faults_of(const std::string &device_id);          // made on first use; mutex_ held
    // The instance create() and try_create() make: checked, its create_device called, not registered.
    result<std::shared_ptr<device_slot>> instantiate(const std::shared_ptr<plugin> &p, const device_spec &spec,
                                                     bool trial);
    void watchdog_loop();

    boost::asio::io_context &io_;
    event_sink sink_;
    runtime_options options_;
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<device_slot>> devices_;
    std::vector<std::unique_ptr<plugin_slot>> plugins_;
    std::map<std::string, std::shared_ptr<condition_list>> conditions_;  // by device id, never erased
    std::map<std::string, std::shared_ptr<fault_list>> faults_;          // by device id, never erased
    runtime_options trial_options_;  // try_create's instances: no observer, nothing admitted, nothing emitted
    event_sink no_sink_;

    std::mutex watchdog_mutex_;
    std::condition_variable watchdog_cv_;
    bool watchdog_stop_ = false;
    std::thread watchdog_;
};

// ---- for plugins that run in another process (host/isolation) -----------------------------------------------------
// `h` is the fl_host the runtime gave a device in create_device; the caller makes sure that device's destroy has not
// returned while it calls.

// Runs f on the device's strand with its wire (nullptr when it has none).
void post_to_device(const fl_host *h, std::function<void(transport::link *)> f);

// The driver behind the device stopped: it crashed, hung or was parked (`code`: driver_crashed, driver_hung,
// driver_parked). The host emits a `fault` (an `alarm` when `alarm`), marks the device faulted, and refuses its
// commands with `reason` until set_driver_up, which emits the restore of every such fault.
void set_driver_down(const fl_host *h, const std::string &code, const std::string &reason, bool alarm);
void set_driver_up(const fl_host *h, const std::string &message);

// The device cannot run while its driver does not (its runner is parked): device_down with `reason`, as set_down.
void set_device_down(const fl_host *h, const std::string &reason);

// Why a device's wire is paused (backpressure: the link reads nothing while any reason holds). The runtime holds it
// itself while the queue refuses the device's events; a supervisor holds it while its runner has not consumed the
// wire bytes sent to it.
enum wire_hold : unsigned { hold_queue_busy = 1u << 0, hold_channel = 1u << 1 };
void hold_wire(const fl_host *h, wire_hold why, bool on);

// An event the driver's process was told was taken (FL_OK in a runner) that the host still holds, handed over now,
// whatever the queue's admission and even while the device stops: the queue takes it (it was admitted when the
// driver emitted it). FL_INVALID_ARGUMENT when the event is not valid; FL_MISUSE when the device is gone.
fl_status take_kept_event(const fl_host *h, const std::uint8_t *data, std::size_t size);

// Logs a line of the plugin's at its FL_LOG_* level, as the host logs a plugin's own `log` calls.
void log_for_plugin(std::int32_t fl_log_level, const std::string &line);

// A call into the driver (`what`) took `took` where the driver runs: counted and logged like the watchdog's own.
void note_slow_call(const fl_host *h, const std::string &what, std::chrono::milliseconds took);

}  // namespace firelink::core
