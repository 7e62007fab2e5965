// hello-cpp: a complete firelink plugin with the C++ layer (firelink/driver.hpp).
//
// One driver, "hello", of a vendor device class. Each device counts timer ticks, emits telemetry on every tick,
// raises an alarm every `alarm_every` ticks and restores it on the next, and answers one command, "ping".
// Driver config: period_ms (integer, default 1000), alarm_every (integer, default 5; 0 = never).
#include <firelink/driver.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace {

class hello_device : public firelink::device {
public:
    hello_device(firelink::host_handle host, const firelink::config &cfg)
        : device(host),
          period_(cfg.get<std::uint32_t>("period_ms", 1000)),
          alarm_every_(cfg.get<std::uint32_t>("alarm_every", 5)) {
        cfg.reject_unknown({"period_ms", "alarm_every"});
        if (period_.count() < 1) throw firelink::config_error("config key 'period_ms': must be at least 1");
    }

    void start() override {
        if (!host().start_timer(period_)) throw std::runtime_error("the host gave no timer");
    }

    void on_timer(std::uint64_t) override {
        ++ticks_;
        host().emit(firelink::event{firelink::event_kind::telemetry, "tick"}.value("ticks", ticks_));
        // An alarm or restore changes state only once the host took it; on FL_BUSY it is retried next tick.
        if (!alarm_id_.empty()) {
            if (host().emit(firelink::event{firelink::event_kind::restore, "hello_alarm"}.ends(alarm_id_)) != FL_BUSY)
                alarm_id_.clear();
        } else {
            alarm_due_ = alarm_due_ || (alarm_every_ > 0 && ticks_ % alarm_every_ == 0);
            const auto id = "alarm-" + std::to_string(ticks_);
            if (alarm_due_ && host().emit(firelink::event{firelink::event_kind::alarm, "hello_alarm"}
                                              .id(id)
                                              .value("ticks", ticks_)
                                              .message("hello raised its periodic alarm")) != FL_BUSY) {
                alarm_id_ = id;
                alarm_due_ = false;
            }
        }
    }

    fl_status on_command(const firelink::command &cmd) override {
        if (cmd.name() != "ping") return FL_UNSUPPORTED;
        host().emit(firelink::event::command_result(cmd.id(), true, "pong after " + std::to_string(ticks_) + " ticks"));
        return FL_OK;
    }

private:
    std::chrono::milliseconds period_;
    std::int64_t alarm_every_;
    std::int64_t ticks_ = 0;
    bool alarm_due_ = false;  // an alarm is to be raised (kept until the host takes it)
    std::string alarm_id_;    // raised, not yet restored
};

}  // namespace

FIRELINK_PLUGIN((firelink::plugin_info{.id = "org.firelink.examples.hello-cpp",
                                       .name = "Hello (C++)",
                                       .vendor = "firelink examples",
                                       .version = "1.0.0",
                                       .license = "Apache-2.0",
                                       .description = "A complete firelink plugin written with firelink/driver.hpp."}),
                (firelink::driver<hello_device>{.id = "hello",
                                                .name = "Hello device (C++)",
                                                .device_class = "vendor:org.firelink.examples.hello",
                                                .description = "Counts ticks; raises and restores a periodic alarm.",
                                                .needs = {FL_EXT_TIMER},
                                                // ping moves nothing: no select-before-operate. Any other name is
                                                // answered FL_UNSUPPORTED by the SDK before on_command.
                                                .commands = {{"ping", "Answers pong with the tick count", 0}}}))
