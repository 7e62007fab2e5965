// pyrolysis_detector driver "modbus-pyrolysis": a pyrolysis-particle electrical-fire detector over Modbus RTU
// (serial, RS-485 bus) or Modbus TCP. Register map from the config, default: the reference model FL-PD300
// (<firelink/modbus/maps/pyrolysis_detector.hpp>). Events, commands and settings: docs/drivers/modbus.md.
//
//   pyrolysis_pre_alarm   pre_alarm while particle_level >= pre_alarm_level (300), with hysteresis
//   pyrolysis_alarm       alarm at particle_level >= alarm_level (600) or when the device latches it; it LATCHES:
//                         its restore comes only after a reset that the device confirms (latch clear, level below)
//   sensor_wire_break, sensor_wire_short   faults
//   commands: reset (confirmed when the latch reads clear and the level is below the alarm), self_test.
#include <string>

#include <firelink/modbus/device.hpp>
#include <firelink/modbus/maps/pyrolysis_detector.hpp>

namespace {

using namespace firelink;
using namespace firelink::modbus_driver;

class pyrolysis_device : public modbus_device {
public:
    pyrolysis_device(host_handle h, const config &cfg)
        : modbus_device(h, cfg, pyrolysis_detector::schema(), pyrolysis_detector::reference_map(),
                        {"pre_alarm_level", "alarm_level", "level_hysteresis"}),
          pre_level_(threshold(cfg, "pre_alarm_level", 300, 1, 65535)),
          alarm_level_(threshold(cfg, "alarm_level", 600, 1, 65535)),
          hysteresis_(threshold(cfg, "level_hysteresis", 20, 0, 1000)),
          pre_(event_kind::pre_alarm, "pyrolysis_pre_alarm", "pre", settings().debounce),
          alarm_(event_kind::alarm, "pyrolysis_alarm", "alarm", settings().debounce),
          wire_break_(event_kind::fault, "sensor_wire_break", "wire-break", settings().debounce),
          wire_short_(event_kind::fault, "sensor_wire_short", "wire-short", settings().debounce) {
        if (pre_level_ >= alarm_level_) throw config_error("config key 'pre_alarm_level': must be below alarm_level");
        if (hysteresis_ >= pre_level_) throw config_error("config key 'level_hysteresis': must be below pre_alarm_level");
    }

    fl_status on_command(const command &cmd) override {
        if (cmd.name() == "reset") {
            cmd.args().reject_unknown({"operator", "reason"});
            return begin_command(cmd, {write_named(pt("control_command"), "reset")}, [this](const snapshot &s) {
                const bool latched = s.bit(pt("status"), "alarm_latched").value_or(false);
                const double level = s.number(pt("particle_level")).value_or(0);
                if (latched) return verdict{verdict::waiting, "the alarm latch is still set (level " + std::to_string(static_cast<long>(level)) + ")"};
                if (level >= alarm_level_ - hysteresis_)
                    return verdict{verdict::waiting, "the level is still " + std::to_string(static_cast<long>(level))};
                // Confirmed: the latched alarm ends now, before the command's result.
                if (alarm_.force_clear()) emit(alarm_.restore_event());
                return verdict{verdict::confirmed, "the latch reads clear, level " + std::to_string(static_cast<long>(level))};
            });
        }
        if (cmd.name() == "self_test") return self_test_command(cmd);
        return FL_UNSUPPORTED;
    }

protected:
    void on_snapshot(const snapshot &s) override {
        const register_point *st = pt("status");
        const bool brk = s.bit(st, "wire_break").value_or(false);
        const bool shrt = s.bit(st, "wire_short").value_or(false);
        report(wire_break_, wire_break_.flag(brk), [](event &ev) { ev.message("sensor wire broken"); });
        report(wire_short_, wire_short_.flag(shrt), [](event &ev) { ev.message("sensor wire shorted"); });
        const auto level = s.number(pt("particle_level"));
        const bool latched = s.bit(st, "alarm_latched").value_or(false);
        if (!level || brk || shrt) {
            // A faulted sensor's level means nothing: the conditions keep their state, and what is active is still
            // reported again after a start (FL-PLUGIN-29). The device's own latch is not a reading: it still counts.
            report(pre_, condition::change::none);
            report(alarm_, latched ? alarm_.update(true, false) : condition::change::none);
            return;
        }
        auto dec = [&](double limit) {
            return [&, limit](event &ev) {
                ev.value("particle_level", *level).message("particle level " + std::to_string(static_cast<long>(*level)) +
                                                           ", threshold " + std::to_string(static_cast<long>(limit)));
            };
        };
        report(pre_, pre_.above(*level, pre_level_, hysteresis_), dec(pre_level_));
        // Latching: raised by the level or the device's own latch; never cleared here (only by a confirmed reset).
        report(alarm_, alarm_.update(*level >= alarm_level_ || latched, false), dec(alarm_level_));
    }

private:
    double pre_level_, alarm_level_, hysteresis_;
    condition pre_, alarm_, wire_break_, wire_short_;
};

}  // namespace

FIRELINK_PLUGIN(firelink::modbus_driver::reference_plugin("org.firelink.drivers.pyrolysis",
                                                          "Modbus pyrolysis-particle detector",
                                                          "Reference driver of pyrolysis_detector (Modbus RTU/TCP)."),
                (firelink::driver<pyrolysis_device>{.id = "modbus-pyrolysis",
                                                    .name = "Pyrolysis-particle detector (Modbus)",
                                                    .device_class = FL_CLASS_PYROLYSIS_DETECTOR,
                                                    .description = "Pre-alarm, latching alarm, sensor wire faults; "
                                                                   "reset/self_test confirmed by read-back.",
                                                    .wires = firelink::modbus_driver::modbus_wires,
                                                    .needs = firelink::modbus_driver::modbus_needs,
                                                    // Reset clears a latched alarm: it changes what the site is told.
                                                    .commands = {{"reset", "Clear the latched alarm; confirmed when the latch "
                                                                           "reads clear",
                                                                  FL_COMMAND_ACTUATES},
                                                                 {"self_test", "Run the detector's self-test (sounds it)",
                                                                  FL_COMMAND_ACTUATES}}}))
