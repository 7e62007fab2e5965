// load: the event source of the uplink's end-to-end tests and benchmark, built like a vendor plugin.
//
// One driver, "load", of a vendor class. On every timer tick a device emits `per_tick` events in a fixed mix: every
// `alarm_every`-th is an alarm, every `status_every`-th a status, the rest telemetry. Each event carries its number
// over the device's life (the value "n" and the message "n=<n>"), so a test can tell exactly which arrived. An event
// answered FL_BUSY (the uplink's backpressure) is kept and emitted again on the next tick, as FL-PLUGIN-28 asks;
// `limit` > 0 stops after that many.
// Commands: "ping" answers a command_result (ok) at once.
// Config: period_ms (default 10), per_tick (default 10), alarm_every (default 10; 0 = none), status_every
// (default 7; 0 = none), limit (default 0 = unlimited), pad (bytes of filler in each message, default 0).
#include <firelink/driver.hpp>

#include "test_plugin.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace {

class load_device : public firelink::device {
public:
    load_device(firelink::host_handle host, const firelink::config &cfg)
        : device(host),
          period_(cfg.get<std::uint32_t>("period_ms", 10)),
          per_tick_(cfg.get<std::int64_t>("per_tick", 10)),
          alarm_every_(cfg.get<std::int64_t>("alarm_every", 10)),
          status_every_(cfg.get<std::int64_t>("status_every", 7)),
          limit_(cfg.get<std::int64_t>("limit", 0)),
          pad_(static_cast<std::size_t>(cfg.get<std::int64_t>("pad", 0)), '.') {
        cfg.reject_unknown({"period_ms", "per_tick", "alarm_every", "status_every", "limit", "pad"});
    }

    void start() override {
        if (!host().start_timer(period_)) throw std::runtime_error("the host gave no timer");
    }

    void on_timer(std::uint64_t) override {
        for (std::int64_t i = 0; i < per_tick_; ++i) {
            if (limit_ > 0 && next_ > limit_) return;
            if (host().emit(make(next_)) == FL_BUSY) return;  // kept: the same number goes again next tick
            ++next_;
        }
    }

    fl_status on_command(const firelink::command &cmd) override {
        if (cmd.name() != "ping") return FL_UNSUPPORTED;
        host().emit(firelink::event::command_result(cmd.id(), true, "pong at n=" + std::to_string(next_)));
        return FL_OK;
    }

private:
    firelink::event make(std::int64_t n) const {
        using firelink::event_kind;
        const auto text = "n=" + std::to_string(n) + pad_;
        if (alarm_every_ > 0 && n % alarm_every_ == 0)
            return firelink::event{event_kind::alarm, "load_alarm"}.id("a" + std::to_string(n)).message(text).value("n", n);
        if (status_every_ > 0 && n % status_every_ == 0)
            return firelink::event{event_kind::status, "load_status"}.message(text).value("n", n);
        return firelink::event{event_kind::telemetry, "load"}.message(text).value("n", n);
    }

    std::chrono::milliseconds period_;
    std::int64_t per_tick_, alarm_every_, status_every_, limit_;
    std::string pad_;
    std::int64_t next_ = 1;
};

}  // namespace

FIRELINK_TEST_PLUGIN("org.firelink.test.load", "Uplink load", "Numbered alarms, status and telemetry at a set rate.",
                     firelink_test::driver<load_device>("load", "Load generator", "vendor:org.firelink.test.load",
                                                        "Emits numbered events in a fixed mix.",
                                                        {.needs = {FL_EXT_TIMER},
                                                         .commands = {{"ping", "Answers pong with the event count",
                                                                       0}}}))
