// arc_fault_breaker driver "modbus-arc-breaker": a smart breaker / electrical-fire monitor over Modbus RTU (serial,
// RS-485 bus) or Modbus TCP. Register map from the config, default: the reference model FL-AFB200
// (<firelink/modbus/maps/arc_fault_breaker.hpp>). Events, commands and settings: docs/drivers/modbus.md.
//
//   arc_fault               alarm while the device's arc-fault latch is set (until a reset)
//   residual_current_high   pre_alarm >= residual_current_pre_alarm_ma (200), alarm >= residual_current_alarm_ma (300)
//   over_temperature        per line: pre_alarm >= temperature_pre_alarm_c (65), alarm >= temperature_alarm_c (80)
//   over_voltage / under_voltage / over_current   alarms; breaker_fault   fault
//   breaker_tripped / breaker_closed              status on each change of the breaker's state
//   commands: trip, close, reset, self_test — each confirmed by reading the state back.
#include <array>
#include <optional>
#include <string>

#include <firelink/modbus/device.hpp>
#include <firelink/modbus/maps/arc_fault_breaker.hpp>

namespace {

using namespace firelink;
using namespace firelink::modbus_driver;

class arc_breaker_device : public modbus_device {
public:
    arc_breaker_device(host_handle h, const config &cfg)
        : modbus_device(h, cfg, arc_fault_breaker::schema(), arc_fault_breaker::reference_map(),
                        {"residual_current_alarm_ma", "residual_current_pre_alarm_ma", "residual_current_hysteresis_ma",
                         "temperature_alarm_c", "temperature_pre_alarm_c", "temperature_hysteresis_c", "over_voltage_v",
                         "under_voltage_v", "voltage_hysteresis_v", "over_current_a", "current_hysteresis_a"}),
          residual_current_alarm_ma_(threshold(cfg, "residual_current_alarm_ma", 300, 10, 3000)),
          residual_current_pre_alarm_ma_(threshold(cfg, "residual_current_pre_alarm_ma", 200, 0, 3000)),
          residual_current_hysteresis_ma_(threshold(cfg, "residual_current_hysteresis_ma", 20, 0, 500)),
          temperature_alarm_c_(threshold(cfg, "temperature_alarm_c", 80, 30, 200)),
          temperature_pre_alarm_c_(threshold(cfg, "temperature_pre_alarm_c", 65, 0, 200)),
          temperature_hysteresis_c_(threshold(cfg, "temperature_hysteresis_c", 3, 0, 30)),
          over_voltage_v_(threshold(cfg, "over_voltage_v", 253, 0, 1000)),
          under_voltage_v_(threshold(cfg, "under_voltage_v", 187, 0, 1000)),
          voltage_hysteresis_v_(threshold(cfg, "voltage_hysteresis_v", 5, 0, 100)),
          over_current_a_(threshold(cfg, "over_current_a", 0, 0, 10000)),
          current_hysteresis_a_(threshold(cfg, "current_hysteresis_a", 1, 0, 1000)),
          arc_fault_(event_kind::alarm, "arc_fault", "arc", 1),  // the device latches it: no debounce needed
          residual_current_(event_kind::alarm, "residual_current_high", "rc", settings().debounce),
          residual_current_pre_alarm_(event_kind::pre_alarm, "residual_current_high", "rc-pre", settings().debounce),
          over_voltage_(event_kind::alarm, "over_voltage", "ov", settings().debounce),
          under_voltage_(event_kind::alarm, "under_voltage", "uv", settings().debounce),
          over_current_(event_kind::alarm, "over_current", "oc", settings().debounce),
          fault_(event_kind::fault, "breaker_fault", "fault", settings().debounce) {
        if (residual_current_pre_alarm_ma_ > 0 && residual_current_pre_alarm_ma_ >= residual_current_alarm_ma_)
            throw config_error(
                "config key 'residual_current_pre_alarm_ma': must be below residual_current_alarm_ma (or 0: off)");
        if (temperature_pre_alarm_c_ > 0 && temperature_pre_alarm_c_ >= temperature_alarm_c_)
            throw config_error("config key 'temperature_pre_alarm_c': must be below temperature_alarm_c (or 0: off)");
        if (under_voltage_v_ >= over_voltage_v_) throw config_error("config key 'under_voltage_v': must be below over_voltage_v");
        for (int i = 0; i < 4; ++i) {
            const std::string n = std::to_string(i + 1);
            temperature_alarm_[i].emplace(event_kind::alarm, "over_temperature", "temp" + n, settings().debounce);
            temperature_pre_alarm_[i].emplace(event_kind::pre_alarm, "over_temperature", "temp" + n + "-pre",
                                              settings().debounce);
        }
    }

    fl_status on_command(const command &cmd) override {
        const register_point *c = pt("breaker_command");
        if (cmd.name() == "trip" || cmd.name() == "close") {
            cmd.args().reject_unknown({"operator", "reason"});
            const std::string want = cmd.name() == "trip" ? "open" : "closed";
            return begin_command(cmd, {write_named(c, cmd.name())}, [this, want](const snapshot &s) {
                const auto now = s.name_of(pt("breaker_state")).value_or("unread");
                if (now == want) return verdict{verdict::confirmed, "the breaker reads " + now};
                if (now == "fault") return verdict{verdict::refused, "the breaker reports a fault"};
                std::string why = "the breaker reads " + now;
                if (s.bit(pt("status"), "arc_fault").value_or(false)) why += " (arc-fault latch set: reset first)";
                return verdict{verdict::waiting, why};
            });
        }
        if (cmd.name() == "reset") {
            if (!c->value_of("reset")) return FL_UNSUPPORTED;
            cmd.args().reject_unknown({"operator", "reason"});
            return begin_command(cmd, {write_named(c, "reset")}, [this](const snapshot &s) {
                if (!s.bit(pt("status"), "arc_fault").value_or(true)) return verdict{verdict::confirmed, "the arc-fault latch reads clear"};
                return verdict{verdict::waiting, "the arc-fault latch is still set"};
            });
        }
        if (cmd.name() == "self_test") return self_test_command(cmd);
        return FL_UNSUPPORTED;
    }

protected:
    void on_snapshot(const snapshot &s) override {
        const auto count = s.number(pt("arc_fault_count"));
        report(arc_fault_, arc_fault_.flag(s.bit(pt("status"), "arc_fault").value_or(false)), [&](event &ev) {
            ev.message("arc fault detected");
            if (count) ev.value("arc_fault_count", static_cast<std::int64_t>(*count));
        });
        if (auto rc = s.number(pt("residual_current"))) {
            auto dec = [&](double limit) {
                return [&, limit](event &ev) {
                    ev.value("residual_current", *rc, "mA").message("residual current " + one_decimal(*rc) + " mA, threshold " + one_decimal(limit) + " mA");
                };
            };
            const double rc_hysteresis = residual_current_hysteresis_ma_;
            if (residual_current_pre_alarm_ma_ > 0)
                report(residual_current_pre_alarm_,
                       residual_current_pre_alarm_.above(*rc, residual_current_pre_alarm_ma_, rc_hysteresis),
                       dec(residual_current_pre_alarm_ma_));
            report(residual_current_, residual_current_.above(*rc, residual_current_alarm_ma_, rc_hysteresis),
                   dec(residual_current_alarm_ma_));
        }
        for (int i = 0; i < 4; ++i) {
            const std::string name = "temperature_" + std::to_string(i + 1);
            auto t = s.number(pt(name));
            if (!t) continue;
            auto dec = [&](double limit) {
                return [&, limit](event &ev) {
                    ev.value(name, *t, "degC").message("line " + std::to_string(i + 1) + " at " + one_decimal(*t) + " degC, threshold " + one_decimal(limit) + " degC");
                };
            };
            const double t_hysteresis = temperature_hysteresis_c_;
            if (temperature_pre_alarm_c_ > 0)
                report(*temperature_pre_alarm_[i],
                       temperature_pre_alarm_[i]->above(*t, temperature_pre_alarm_c_, t_hysteresis),
                       dec(temperature_pre_alarm_c_));
            report(*temperature_alarm_[i], temperature_alarm_[i]->above(*t, temperature_alarm_c_, t_hysteresis),
                   dec(temperature_alarm_c_));
        }
        if (auto v = s.number(pt("voltage"))) {
            auto dec = [&](event &ev) { ev.value("voltage", *v, "V"); };
            report(over_voltage_, over_voltage_.above(*v, over_voltage_v_, voltage_hysteresis_v_), dec);
            report(under_voltage_, under_voltage_.below(*v, under_voltage_v_, voltage_hysteresis_v_), dec);
        }
        if (auto a = s.number(pt("current")); a && over_current_a_ > 0)
            report(over_current_, over_current_.above(*a, over_current_a_, current_hysteresis_a_),
                   [&](event &ev) { ev.value("current", *a, "A"); });
        const std::string state = s.name_of(pt("breaker_state")).value_or("unread");
        state_ = state;
        report(fault_, fault_.flag(state == "fault" || s.bit(pt("status"), "breaker_fault").value_or(false)),
               [](event &ev) { ev.message("the breaker reports a fault"); });
        if (state == "open" || state == "closed") {
            if (settled_ && *settled_ != state)
                emit(event{event_kind::status, state == "open" ? "breaker_tripped" : "breaker_closed"}.value("breaker", state));
            settled_ = state;
        }
    }

    event telemetry(const snapshot &s) override { return modbus_device::telemetry(s).value("breaker", state_); }

private:
    // The thresholds, named after their config keys.
    double residual_current_alarm_ma_, residual_current_pre_alarm_ma_, residual_current_hysteresis_ma_;
    double temperature_alarm_c_, temperature_pre_alarm_c_, temperature_hysteresis_c_;
    double over_voltage_v_, under_voltage_v_, voltage_hysteresis_v_, over_current_a_, current_hysteresis_a_;
    // The conditions each raises and ends, named after what they watch.
    condition arc_fault_, residual_current_, residual_current_pre_alarm_, over_voltage_, under_voltage_, over_current_,
        fault_;
    std::array<std::optional<condition>, 4> temperature_alarm_, temperature_pre_alarm_;
    std::string state_ = "unread";
    std::optional<std::string> settled_;
};

}  // namespace

FIRELINK_PLUGIN(firelink::modbus_driver::reference_plugin("org.firelink.drivers.arc-breaker",
                                                          "Modbus arc-fault breaker / electrical-fire monitor",
                                                          "Reference driver of arc_fault_breaker (Modbus RTU/TCP)."),
                (firelink::driver<arc_breaker_device>{.id = "modbus-arc-breaker",
                                                      .name = "Arc-fault breaker (Modbus)",
                                                      .device_class = FL_CLASS_ARC_FAULT_BREAKER,
                                                      .description = "Arc fault, residual current, temperature and voltage "
                                                                     "alarms; trip/close/reset/self_test confirmed by read-back.",
                                                      .wires = firelink::modbus_driver::modbus_wires,
                                                      .needs = firelink::modbus_driver::modbus_needs,
                                                      // A self-test presses the breaker's test button, which trips it.
                                                      .commands = {{"trip", "Open the breaker; confirmed when it reads open",
                                                                    FL_COMMAND_ACTUATES},
                                                                   {"close", "Close the breaker (re-energise the line); "
                                                                             "confirmed when it reads closed",
                                                                    FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES},
                                                                   {"reset", "Clear the arc-fault latch", FL_COMMAND_ACTUATES},
                                                                   {"self_test", "Run the device's self-test (trips the breaker)",
                                                                    FL_COMMAND_ACTUATES}}}))
