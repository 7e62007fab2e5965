// Runs device instances of loaded plugins: gives each its fl_host (emit, log, extensions), its strand, its timers
// (firelink.timer/1), and measures every call into the plugin against the watchdog bound.
//
// Threads: create/start/stop/destroy are called from one control thread (the plugin's "main" thread in the ABI's
// words); the runtime posts every call into a device onto that device's strand and waits for it, so the host never
// calls one instance concurrently. Events are handed to the sink on the emitting thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <firelink/firelink.h>

#include "firelink/core/plugin_loader.hpp"

namespace firelink::core {

// One event the host accepted at the boundary, stamped by the host.
struct accepted_event {
    std::string plugin_id;
    std::string device_id;
    std::uint64_t sequence = 0;  // per device, from 1, gap-free
    std::string kind;
    std::string code;
    std::chrono::system_clock::time_point received_wall;
    std::chrono::steady_clock::time_point received_monotonic;
    std::vector<std::uint8_t> payload;  // the event's msgpack bytes, as emitted
};

// Receives accepted events; called on the emitting thread (any thread), so it must be thread-safe and must not
// block for long.
using event_sink = std::function<void(accepted_event &&)>;

struct runtime_options {
    // A call into the plugin that takes longer than this is reported (docs/abi.md, callbacks must not block).
    std::chrono::milliseconds watchdog_warn{100};
};

struct device_counters {
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;         // events refused at the boundary
    std::uint64_t slow_callbacks = 0;  // calls over the watchdog bound
};

class device_runtime {
public:
    device_runtime(boost::asio::io_context &io, event_sink sink, runtime_options options = {});
    ~device_runtime();  // stops and destroys every device, then deinitialises the plugins it initialised
    device_runtime(const device_runtime &) = delete;
    device_runtime &operator=(const device_runtime &) = delete;

    // Initialises a loaded plugin with its plugin-level fl_host, unless already initialised, and keeps it loaded
    // for as long as the runtime lives. FL_OK or the plugin's status; `why` says what failed.
    fl_status attach(const std::shared_ptr<plugin> &p, std::string &why);

    // Creates a device instance of `driver_id` (attaching its plugin first). On failure returns the status and sets
    // `why` to one clear reason; nothing is left behind.
    fl_status create(const std::shared_ptr<plugin> &p, const std::string &driver_id, const std::string &device_id,
                     const std::vector<std::uint8_t> &config, std::string &why);

    fl_status start(const std::string &device_id);
    fl_status stop(const std::string &device_id);
    fl_status command(const std::string &device_id, const std::vector<std::uint8_t> &command);
    void destroy(const std::string &device_id);

    void start_all();
    void stop_all();
    void destroy_all();

    std::vector<std::string> device_ids() const;
    device_counters counters(const std::string &device_id) const;

    // The host extensions this runtime provides to devices.
    static bool provides(const std::string &extension_id);

    struct device_slot;
    struct plugin_slot;

private:
    std::shared_ptr<device_slot> find(const std::string &device_id) const;

    boost::asio::io_context &io_;
    event_sink sink_;
    runtime_options options_;
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<device_slot>> devices_;
    std::vector<std::unique_ptr<plugin_slot>> plugins_;
};

}  // namespace firelink::core
