// Where accepted events go after the boundary. The device runtime validates and stamps each event; the pipeline
// hands it to every sink in order. Until the durable uplink lands, the sinks are JSON lines on stdout or in a file;
// the uplink is one more sink (a durable queue), so nothing upstream changes when it arrives.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
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

class sink {
public:
    virtual ~sink() = default;
    // Called on the emitting thread (any thread); must be thread-safe and must not block for long.
    virtual void accept(const core::accepted_event &ev) = 0;
    // Makes everything accepted so far durable where the sink can (fsync for files).
    virtual void flush() = 0;
    virtual std::string describe() const = 0;
};

// JSON lines on stdout.
std::unique_ptr<sink> make_stdout_sink();

// JSON lines appended to a file, created if missing. Throws std::system_error when it cannot be opened.
std::unique_ptr<sink> make_jsonl_file_sink(const std::filesystem::path &path);

// Fans each event out to its sinks; a sink that throws is logged and skipped, never the others.
class event_pipeline {
public:
    void add(std::unique_ptr<sink> s) { sinks_.push_back(std::move(s)); }
    void accept(const core::accepted_event &ev);
    void flush();
    std::vector<std::string> describe() const;

private:
    std::vector<std::unique_ptr<sink>> sinks_;
};

}  // namespace firelink::pipeline
