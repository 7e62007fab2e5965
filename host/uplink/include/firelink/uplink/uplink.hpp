// The uplink: accepted events into the durable queue (a pipeline sink), one sender thread per lane that carries
// them to the platform until acknowledged, and a long poll that brings commands back (docs/uplink-protocol.md).
//
//     durable_queue queue{{.path = "/var/lib/firelink/queue.db", .gateway_id = "gw-1"}};
//     uplink up{queue, {.gateway_id = "gw-1", .http = {.base_url = "https://fire.example.cn/firelink"}}, on_command};
//     pipeline.add(up.make_sink());  // its admits() is the queue's backpressure
//     runtime_options.admits = [&](std::string_view kind) { return pipeline.admits(kind); };
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <firelink/pipeline/sinks.hpp>

#include "firelink/uplink/durable_queue.hpp"
#include "firelink/uplink/http_client.hpp"

namespace firelink::uplink {

struct uplink_options {
    std::string gateway_id;
    http_options http;
    std::size_t batch_max_events = 500;
    std::size_t batch_max_bytes = 512 * 1024;
    std::chrono::milliseconds backoff_initial{100};
    std::chrono::milliseconds backoff_max{30000};
    std::chrono::milliseconds alarm_backoff_max{2000};
    bool poll_commands = true;
    std::chrono::seconds poll_wait{25};
    // Called after every acknowledgement (lane, acked_through), on the lane's sender thread (benchmarks, tests).
    std::function<void(lane, std::uint64_t)> on_ack;
};

// A command from the platform (docs/uplink-protocol.md, "GET /v1/commands").
struct downlink_command {
    std::uint64_t cursor = 0;
    std::string id;
    std::string device;
    std::string name;
    std::vector<std::uint8_t> command;  // msgpack {"id", "name", "args"} as a device takes it (docs/events.md)
    std::optional<std::int64_t> expires_wall_ms;
};

// Runs a command; returns an empty string when it reached its device, else why not (the uplink then reports a
// command_failed gateway event).
using command_handler = std::function<std::string(const downlink_command &)>;

struct lane_report {
    std::uint64_t batches = 0;      // acknowledged requests
    std::uint64_t failures = 0;     // failed requests (any reason)
    std::uint64_t oversized = 0;    // of them: answers aborted for going over http_options' body or header cap
    std::uint64_t sent_through = 0; // the highest seq acknowledged
    long last_status = 0;
    std::string last_error;         // empty after a success
    std::int64_t last_ack_wall_ms = 0;
    std::chrono::milliseconds backoff{0};  // the current wait before the next try; 0 when healthy
};

struct uplink_report {
    std::array<lane_report, lane_count> lanes;
    std::uint64_t commands_received = 0;
    std::uint64_t command_cursor = 0;
    std::string poll_error;
    bool credentials_refused = false;  // the platform answered 401/403 to the last request
};

class uplink {
public:
    uplink(durable_queue &queue, uplink_options options, command_handler on_command = {});
    ~uplink();  // stops the senders and the poll; ends requests in flight
    uplink(const uplink &) = delete;
    uplink &operator=(const uplink &) = delete;

    // A sink for the event pipeline: each accepted event becomes a record in its lane; it admits what the queue's
    // lane admits (the queue's backpressure, counted as the lane's refusals).
    std::unique_ptr<pipeline::sink> make_sink();

    uplink_report report() const;
    durable_queue &queue() { return queue_; }

private:
    void lane_loop(lane l);  // send_lane, reporting what ends it
    void send_lane(lane l);
    void poll_loop();        // poll_commands, likewise
    void poll_commands();
    bool sleep_for(std::chrono::milliseconds d);  // false when stopping
    void command_failed(const downlink_command &c, const std::string &why);

    durable_queue &queue_;
    uplink_options options_;
    command_handler on_command_;

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::array<std::uint64_t, lane_count> committed_{};
    std::array<lane_report, lane_count> reports_;
    std::uint64_t commands_received_ = 0;
    std::string poll_error_;
    bool credentials_refused_ = false;

    std::vector<http_client *> clients_;  // for abort(); owned by their threads
    std::vector<std::thread> threads_;
};

}  // namespace firelink::uplink
