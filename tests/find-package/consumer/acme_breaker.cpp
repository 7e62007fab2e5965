// A vendor plugin built against the installed SDK (tests/find-package).
#include <firelink/driver.hpp>

namespace {
class breaker : public firelink::device {
public:
    breaker(firelink::host_handle host, const firelink::config &cfg) : device(host) {
        cfg.reject_unknown({"period_ms"});
        period_ = std::chrono::milliseconds(cfg.get<std::uint32_t>("period_ms", 1000));
    }
    void start() override { host().start_timer(period_); }
    void on_timer(std::uint64_t) override {
        host().emit(firelink::event{firelink::event_kind::telemetry, "line_readings"}
                        .value("residual_current", 12, "mA")
                        .value("line_temperature", 31.5, "degC"));
    }

private:
    std::chrono::milliseconds period_{1000};
};
}  // namespace

FIRELINK_PLUGIN((firelink::plugin_info{.id = "com.example.acme.breaker", .name = "ACME breaker", .vendor = "ACME",
                                       .version = "2.1.0", .license = "proprietary"}),
                (firelink::driver<breaker>{.id = "ab100", .name = "ACME AB100 smart breaker",
                                           .device_class = FL_CLASS_ARC_FAULT_BREAKER,
                                           .wires = FL_WIRE_RS485_BUS | FL_WIRE_TCP_CLIENT,
                                           .needs = {FL_EXT_TIMER}}))
