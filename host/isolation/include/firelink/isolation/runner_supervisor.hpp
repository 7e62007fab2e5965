// A plugin run out of process: firelink-host starts a firelink-runner for it, and the runtime sees an ordinary
// core::plugin whose devices forward every call over the channel. The supervisor behind it keeps the runner alive:
//   - a runner that crashes, exits, or leaves a heartbeat unanswered for `hang_timeout` is killed and restarted
//     with exponential backoff and full jitter; its devices are recreated and restarted as they were;
//   - within a supervisor tick (≤ 100 ms) of the failure every device of the plugin emits a fault `driver_crashed`
//     (with the signal or exit status) or `driver_hung`, and a restore once the runner is back;
//   - `restart_limit` failures within `restart_window` park the plugin: an alarm `driver_parked` per device, and no
//     more restarts until the host restarts.
// Nothing another plugin does can reach this plugin's devices, and nothing this plugin does can reach the host: each
// plugin's runner has a uid of its own (supervisor_options::uids), kept across its restarts.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <firelink/core/lanes.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/isolation/process.hpp>

namespace firelink::isolation {

struct supervisor_options {
    std::filesystem::path runner;  // empty: firelink-runner beside the running executable
    runner_limits limits;
    // Each plugin's runner under a uid of its own from this range (limits.uid is set from it, per plugin); off: all
    // of them under one shared uid, with a warning. Not off, and the host cannot give uids (check_uid_capabilities):
    // the plugin is refused, saying what to configure.
    uid_range uids;
    std::chrono::milliseconds hang_timeout{2000};  // a heartbeat unanswered this long: the runner is hung
    // A call into a device (create, start, stop, command) waits this long for its answer, then reports FL_TIMEOUT.
    // Keep it under the runtime's watchdog fault bound.
    std::chrono::milliseconds call_timeout{1000};
    int restart_limit = 5;                         // this many failures...
    std::chrono::seconds restart_window{300};      // ...within this window park the plugin
    std::chrono::milliseconds backoff_initial{100};
    std::chrono::milliseconds backoff_max{30000};
    std::chrono::milliseconds load_timeout{10000};  // the runner must load and initialise the plugin in this time
    // Wire bytes of one device sent to the runner and not yet consumed by its driver, at most; beyond, the device's
    // wire is paused (backpressure to the device).
    std::int64_t data_credit_kb = 256;
    // Each lane's event ring (event_ring.hpp): what the runner may have emitted that the host has not yet handed
    // to its queue. Rounded up to a power of two, at least 256 (two of the largest events).
    std::int64_t ring_kb = 512;
    // Whether the host takes events of a kind now (the runtime's admits); the runner answers FL_BUSY for the others.
    std::function<bool(std::string_view kind)> admits;
};

// What the supervisor of one plugin is doing, for the admin endpoint and tests.
struct runner_status {
    std::string plugin_id;
    std::string state;  // "running", "restarting", "parked", "stopped"
    long pid = -1;
    std::uint64_t restarts = 0;   // runners started after the first
    std::uint64_t failures = 0;   // crashes, exits and hangs
    std::string last_failure;     // "killed by signal 11 (SIGSEGV)", "no answer to a heartbeat for 2000 ms", ...
    long uid = -1;                // the uid its runners run as, the same across restarts
    bool uid_shared = false;      // [runner] uid_range = "off": one uid for every runner (and the host's own, unless root)
    // Events the runner emitted that wait in its rings for the host, by lane (alarm, event, telemetry): a lane the
    // queue refuses holds its events here, in the rings of every runner still being drained.
    std::array<std::uint64_t, core::lane_count> ring_bytes{};
};

// Starts a runner for `file`, which loads, negotiates and initialises the plugin there. A plugin the runner
// refuses comes back as the load_error the in-process loader would give; a runner that dies or does not answer
// while loading is load_failed with what happened. `plugin_fd` >= 0: `file` as the caller opened and checked it (its
// signature); every runner, restarted ones too, loads through a copy of it, so what runs is what was checked even if
// another file is renamed to `file` meanwhile.
core::load_result load_out_of_process(const std::filesystem::path &file, const supervisor_options &options,
                                      int plugin_fd = -1);

// The supervisor's status of a plugin load_out_of_process made; nullopt for an in-process plugin.
std::optional<runner_status> status_of(const core::plugin &p);

}  // namespace firelink::isolation
