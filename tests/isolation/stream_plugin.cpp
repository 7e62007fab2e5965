// stream: a test plugin for drivers out of process (tests/isolation). Built three times from this source with
// different plugin ids (STREAM_PLUGIN_ID), so a site can run three of them, each in its own runner.
//
// Each device emits telemetry "sample" from a thread of its own (emit is [thread: any]), numbered from 1 with no
// gap (a value "n"), at `rate` events/s, retrying an event the host answers FL_BUSY. It can be made to misbehave:
//   crash_at = N      the thread dereferences NULL instead of emitting its Nth event (SIGSEGV)
//   crash_marker = P  ...but only when the file P does not exist yet; it creates it first (so the restarted runner
//                     streams on: a crash once, then recovery)
// and it answers commands: "hang" (the call never returns: the driver's thread is stuck), "slow" (300 ms), "bad"
// (emits an event the boundary refuses; its command_result says whether emit answered FL_INVALID_ARGUMENT) and
// "ping".
#include <firelink/driver.hpp>

#include "test_plugin.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#ifndef STREAM_PLUGIN_ID
#error "STREAM_PLUGIN_ID must name the plugin"
#endif

namespace {

#ifdef STREAM_CRASH_AT_LOAD
// A vendor bug of the worst kind: the library crashes while it is being loaded, before any firelink call.
struct crash_at_load {
    crash_at_load() {
        volatile int *nowhere = nullptr;
        *nowhere = 1;
    }
} crash_at_load_instance;
#endif

class stream_device : public firelink::device {
public:
    stream_device(firelink::host_handle host, const firelink::config &cfg)
        : device(host),
          rate_(cfg.get<std::uint32_t>("rate", 1000)),
          crash_at_(cfg.get<std::uint32_t>("crash_at", 0)),
          crash_marker_(cfg.get<std::string>("crash_marker", "")) {
        cfg.reject_unknown({"rate", "crash_at", "crash_marker"});
        if (rate_ == 0) throw firelink::config_error("config key 'rate': must be at least 1");
    }
    ~stream_device() override { stop(); }

    void start() override {
        running_ = true;
        thread_ = std::thread([this] { run(); });
    }

    void stop() override {
        running_ = false;
        if (thread_.joinable()) thread_.join();
    }

    fl_status on_command(const firelink::command &cmd) override {
        if (cmd.name() == "hang")
            for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
        if (cmd.name() == "slow") {
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
            host().emit(firelink::event::command_result(cmd.id(), true, "slept 300 ms"));
            return FL_OK;
        }
        if (cmd.name() == "bad") {
            // A map with no kind: the boundary check refuses it.
            const std::uint8_t no_kind[] = {0x81, 0xa6, 's', 'c', 'h', 'e', 'm', 'a', 0x01};  // {"schema": 1}
            const fl_status st = host().emit_raw(no_kind, sizeof no_kind);
            host().emit(firelink::event::command_result(cmd.id(), st == FL_INVALID_ARGUMENT,
                                                        "emit answered " + std::to_string(st)));
            return FL_OK;
        }
        if (cmd.name() != "ping") return FL_UNSUPPORTED;
        host().emit(firelink::event::command_result(cmd.id(), true, "pong"));
        return FL_OK;
    }

private:
    bool should_crash(std::uint64_t n) {
        if (crash_at_ == 0 || n != crash_at_) return false;
        if (crash_marker_.empty()) return true;
        if (std::FILE *f = std::fopen(crash_marker_.c_str(), "r")) {
            std::fclose(f);
            return false;
        }
        if (std::FILE *f = std::fopen(crash_marker_.c_str(), "w")) std::fclose(f);
        return true;
    }

    void run() {
        const auto period = std::chrono::nanoseconds(1'000'000'000 / rate_);
        auto next = std::chrono::steady_clock::now();
        std::uint64_t n = 1;
        while (running_) {
            if (should_crash(n)) {
                volatile int *nowhere = nullptr;
                *nowhere = 1;
            }
            const auto ev = firelink::event{firelink::event_kind::telemetry, "sample"}.value("n", n);
            if (host().emit(ev) == FL_BUSY) {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
                continue;  // the same n again: nothing is skipped
            }
            ++n;
            next += period;
            std::this_thread::sleep_until(next);
        }
    }

    std::uint32_t rate_;
    std::uint64_t crash_at_;
    std::string crash_marker_;
    std::atomic<bool> running_{false};
    std::thread thread_;
};

}  // namespace

FIRELINK_TEST_PLUGIN(STREAM_PLUGIN_ID, "Stream (test)", "Streams numbered events; crashes or hangs on request.",
                     firelink_test::driver<stream_device>("stream", "Stream device", "vendor:org.firelink.tests.stream",
                                                          "Numbered telemetry from a thread of its own."))
