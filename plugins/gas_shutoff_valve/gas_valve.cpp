// gas_shutoff_valve driver "modbus-gas-valve": a combustible-gas detector (%LEL) with a motorised shutoff valve,
// over Modbus RTU (serial, RS-485 bus) or Modbus TCP. Register map from the config, default: the reference model
// FL-GV100 (<firelink/modbus/maps/gas_shutoff_valve.hpp>). Events, commands and settings: docs/drivers/modbus.md.
//
//   gas_level_1  alarm (severity major)  concentration >= level1_lel (default 25, at most 25: GB/T 50493-2019)
//   gas_level_2  alarm (critical)        concentration >= level2_lel (default 50, at most 50)
//   sensor_fault, sensor_expired, valve_fault   faults; valve_closed / valve_opened   status on each change
//   commands: close_valve (confirmed when the valve reads closed), open_valve (needs args operator_confirmed = true
//   and operator = "<name>"; refused while a gas alarm is active), self_test (confirmed when the device reports
//   passed).
#include <optional>
#include <string>

#include <firelink/modbus/device.hpp>
#include <firelink/modbus/maps/gas_shutoff_valve.hpp>

namespace {

using namespace firelink;
using namespace firelink::modbus_driver;

class gas_valve_device : public modbus_device {
public:
    gas_valve_device(host_handle h, const config &cfg)
        : modbus_device(h, cfg, gas_shutoff_valve::schema(), gas_shutoff_valve::reference_map(),
                        {"level1_lel", "level2_lel", "hysteresis_lel"}),
          level1_(threshold(cfg, "level1_lel", 25, 1, 25)),
          level2_(threshold(cfg, "level2_lel", 50, 1, 50)),
          hysteresis_(threshold(cfg, "hysteresis_lel", 2, 0, 20)),
          level_1_(event_kind::alarm, "gas_level_1", "gas1", settings().debounce),
          level_2_(event_kind::alarm, "gas_level_2", "gas2", settings().debounce),
          sensor_fault_(event_kind::fault, "sensor_fault", "sensor", settings().debounce),
          sensor_expired_(event_kind::fault, "sensor_expired", "expired", settings().debounce),
          valve_fault_(event_kind::fault, "valve_fault", "valve", settings().debounce) {
        if (level2_ <= level1_)
            throw config_error("config key 'level2_lel': " + one_decimal(level2_) + " must be above level1_lel (" + one_decimal(level1_) + ")");
        if (hysteresis_ >= level1_)
            throw config_error("config key 'hysteresis_lel': must be below level1_lel (" + one_decimal(level1_) + ")");
    }

    fl_status on_command(const command &cmd) override {
        const register_point *valve_cmd = pt("valve_command");
        if (cmd.name() == "close_valve") {
            cmd.args().reject_unknown({"operator", "reason"});
            return begin_command(cmd, {write_named(valve_cmd, "close")}, [this](const snapshot &s) { return valve_is(s, "closed"); });
        }
        if (cmd.name() == "open_valve") {
            // Opening a gas valve can release gas into a room: only on an operator's explicit confirmation.
            cmd.args().reject_unknown({"operator", "operator_confirmed", "reason"});
            if (!cmd.args().get<bool>("operator_confirmed", false))
                throw config_error("open_valve: refused without args operator_confirmed = true");
            if (cmd.args().get<std::string>("operator", "").empty())
                throw config_error("open_valve: refused without args operator = \"<who confirmed it>\"");
            if (level_1_.active() || level_2_.active()) {
                emit(event::command_result(cmd.id(), false, "open_valve: refused: a gas alarm is active"));
                return FL_OK;
            }
            host().info("open_valve confirmed by operator '" + cmd.args().get<std::string>("operator", "") + "'");
            return begin_command(cmd, {write_named(valve_cmd, "open")}, [this](const snapshot &s) { return valve_is(s, "open"); });
        }
        if (cmd.name() == "self_test") return self_test_command(cmd);
        return FL_UNSUPPORTED;
    }

protected:
    void on_snapshot(const snapshot &s) override {
        const auto gas = s.number(pt("gas_concentration"));
        const bool sensor_bad = s.bit(pt("sensor_status"), "sensor_fault").value_or(false);
        report(sensor_fault_, sensor_fault_.flag(sensor_bad), [&](event &ev) {
            ev.message("gas sensor fault (wire open or shorted): the concentration cannot be trusted");
        });
        if (auto expired = s.bit(pt("sensor_status"), "sensor_expired"))
            report(sensor_expired_, sensor_expired_.flag(*expired), [](event &ev) { ev.message("gas sensor past its service life"); });
        // While the sensor is faulted its reading means nothing: the alarms keep their state.
        if (gas && !sensor_bad) {
            auto decorate = [&](double limit) {
                return [&, limit](event &ev) {
                    ev.value("gas_concentration", *gas, "%LEL")
                        .message("gas at " + one_decimal(*gas) + " %LEL, threshold " + one_decimal(limit) + " %LEL");
                };
            };
            report(level_1_, level_1_.above(*gas, level1_, hysteresis_), [&](event &ev) {
                decorate(level1_)(ev);
                ev.level(severity::major);
            });
            report(level_2_, level_2_.above(*gas, level2_, hysteresis_), decorate(level2_));
        } else {
            // The alarms keep their state, and an active one is still reported again after a start (FL-PLUGIN-29).
            report(level_1_, condition::change::none, [](event &ev) { ev.level(severity::major); });
            report(level_2_, condition::change::none);
        }
        const std::string valve = s.name_of(pt("valve_position")).value_or("unread");
        valve_ = valve;
        report(valve_fault_, valve_fault_.flag(valve == "fault"), [](event &ev) { ev.message("the valve reports a fault"); });
        if (valve == "open" || valve == "closed") {
            if (settled_valve_ && *settled_valve_ != valve)
                emit(event{event_kind::status, valve == "closed" ? "valve_closed" : "valve_opened"}.value("valve", valve));
            settled_valve_ = valve;
        }
    }

    event telemetry(const snapshot &s) override { return modbus_device::telemetry(s).value("valve", valve_); }

private:
    verdict valve_is(const snapshot &s, const std::string &want) const {
        const auto now = s.name_of(pt("valve_position")).value_or("unread");
        if (now == want) return {verdict::confirmed, "the valve reads " + now};
        if (now == "fault") return {verdict::refused, "the valve reports a fault"};
        return {verdict::waiting, "the valve reads " + now};
    }

    double level1_, level2_, hysteresis_;
    condition level_1_, level_2_, sensor_fault_, sensor_expired_, valve_fault_;
    std::string valve_ = "unread";
    std::optional<std::string> settled_valve_;
};

}  // namespace

FIRELINK_PLUGIN(firelink::modbus_driver::reference_plugin("org.firelink.drivers.gas-valve",
                                                          "Modbus gas detector with shutoff valve",
                                                          "Reference driver of gas_shutoff_valve (Modbus RTU/TCP)."),
                (firelink::driver<gas_valve_device>{.id = "modbus-gas-valve",
                                                    .name = "Gas detector with shutoff valve (Modbus)",
                                                    .device_class = FL_CLASS_GAS_SHUTOFF_VALVE,
                                                    .description = "%LEL level-1/level-2 alarms, sensor and valve faults, "
                                                                   "close_valve/open_valve/self_test confirmed by read-back.",
                                                    .wires = firelink::modbus_driver::modbus_wires,
                                                    .needs = firelink::modbus_driver::modbus_needs,
                                                    // A detector's self-test may drive the valve: it is treated as moving it.
                                                    .commands = {{"close_valve", "Close the shutoff valve; confirmed when it "
                                                                                 "reads closed",
                                                                  FL_COMMAND_ACTUATES},
                                                                 {"open_valve", "Reopen the valve (operator_confirmed and "
                                                                                "operator required)",
                                                                  FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES},
                                                                 {"self_test", "Run the detector's self-test",
                                                                  FL_COMMAND_ACTUATES}}}))
