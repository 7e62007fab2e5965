// Where accepted events go after the boundary. The device runtime validates and stamps each event; the pipeline
// hands it to every sink in order. Until the durable uplink lands, the sinks are JSON lines on stdout or in a file;
// the uplink is one more sink (a durable queue), so nothing upstream changes when it arrives.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <firelink/core/device_runtime.hpp>

namespace firelink::pipeline {

// One accepted event as a single line of JSON: gateway, device, class, site, sequence, origin, receive times and
// the event itself (docs/events.md, "The event record").
std::string record_json(const core::accepted_event &ev);

// The kernel's boot id: two monotonic times compare only within one boot.
const std::string &boot_id();
// Whether the kernel reports its clock synchronised (NTP/PTP); re-read at most once a second.
bool clock_synced();

// Run once by a sink when it holds one event as durably as it keeps anything (see sink::accept); empty when nobody
// waits for it. Any thread; must not block.
using stored_fn = std::function<void()>;

class sink {
public:
    virtual ~sink() = default;
    // Called on the emitting thread (any thread); must be thread-safe and must not block for long. `stored` (may be
    // empty) runs once the event is as durable as this sink makes it: the uplink's once its queue committed it, a
    // file's once the line is written and fsynced, stdout's once the line is written. A sink that fails to keep the
    // event never runs it: a device waiting for the commit stays unconfirmed rather than confirmed and lost.
    virtual void accept(const core::accepted_event &ev, stored_fn stored) = 0;
    // Whether the sink can take another event of `kind` ("alarm", "telemetry", ...) now. The runtime asks before it
    // takes an event: false is backpressure (the driver is answered FL_BUSY and its wire held), never a drop, and an
    // event already taken is always accepted. Any thread.
    virtual bool admits(std::string_view kind) const {
        (void)kind;
        return true;
    }
    // Makes everything accepted so far durable where the sink can (fsync for files).
    virtual void flush() = 0;
    virtual std::string describe() const = 0;
    // Why the sink cannot store events now ("write failed: No space left on device"), or empty while it can. Cleared
    // once a write succeeds again. Any thread.
    virtual std::string fault() const { return {}; }
};

// What a JSON-lines sink holds in memory for its writer at most: past `max_queued_bytes` it admits no telemetry, past
// 1.5 times that no other events but alarms, and past twice that nothing (each limit is checked before an event is
// taken, so the memory it holds is bounded by twice the bound plus one event per emitting thread).
struct line_sink_options {
    std::size_t max_queued_bytes = 8u << 20;
};

// JSON lines on stdout.
std::unique_ptr<sink> make_stdout_sink(line_sink_options options = {});

// JSON lines appended to a file, created if missing (a regular file is made the host user's alone; a device or a
// FIFO is written as it is). Throws std::system_error when it cannot be opened.
std::unique_ptr<sink> make_jsonl_file_sink(const std::filesystem::path &path, line_sink_options options = {});

// Fans each event out to its sinks; a sink that throws is logged and skipped, never the others. An event's
// on_durable (firelink.commit/1) runs once every sink has stored it: with the uplink, once its durable queue
// committed it; with only stdout or a JSON-lines file (no durable sink), once each took and wrote it; with no sink
// at all, at once. A sink that throws never stores it, so the event is never reported durable.
class event_pipeline {
public:
    void add(std::unique_ptr<sink> s) { sinks_.push_back(std::move(s)); }
    void accept(const core::accepted_event &ev);
    // Whether every sink admits an event of `kind` now (sink::admits).
    bool admits(std::string_view kind) const;
    void flush();
    std::vector<std::string> describe() const;
    // Each sink's fault (sink::fault), "name: why", for /healthz.
    std::vector<std::string> faults() const;

private:
    std::vector<std::unique_ptr<sink>> sinks_;
};

}  // namespace firelink::pipeline
