// firelink-sim pyrolysis: the reference pyrolysis-particle detector (FL-PD300), register map shared with the driver
// (<firelink/modbus/maps/pyrolysis_detector.hpp>). Like the real device it latches its alarm at level 600 and keeps
// a pre-alarm bit at level 300; a reset clears the latch only when the level is below 600.
#include <firelink/modbus/maps/pyrolysis_detector.hpp>
#include "sim_core.hpp"

namespace firelink::sim::modbus {
namespace {

class pyrolysis_model : public reference_model {
public:
    pyrolysis_model() : reference_model(pyrolysis_detector::reference_map(), "control_command") {
        set("particle_level", 20);
    }

protected:
    std::vector<std::string> model_help() const override {
        return {"level N               particle concentration level (0..1000)",
                "ramp-level N MS       ramp the level to N over MS ms",
                "wire-break [on|off]   break the sensor wire",
                "wire-short [on|off]   short the sensor wire"};
    }

    std::string model_action(const std::vector<std::string> &w) override {
        std::string err;
        bool on = true;
        if (w[0] == "level" && w.size() == 2) return run({"set", "particle_level", w[1]});
        if (w[0] == "ramp-level" && w.size() == 3) return run({"ramp", "particle_level", w[1], w[2]});
        if (w[0] == "wire-break") return parse_on_off(w, 1, on, err) ? (set_bit("status", "wire_break", on), "") : err;
        if (w[0] == "wire-short") return parse_on_off(w, 1, on, err) ? (set_bit("status", "wire_short", on), "") : err;
        return "unknown action '" + w[0] + "' (firelink-sim pyrolysis --help lists them)";
    }

    void on_command(std::int64_t cmd) override {
        if (is_command(cmd, "reset") && get("particle_level") < 600) set_bit("status", "alarm_latched", false);
    }

    void on_tick(double) override {
        const double level = get("particle_level");
        const bool wire_ok = !bit("status", "wire_break") && !bit("status", "wire_short");
        set_bit("status", "pre_alarm", wire_ok && level >= 300);
        if (wire_ok && level >= 600) set_bit("status", "alarm_latched", true);
    }
};

const model_registration reg{"pyrolysis", "Modbus pyrolysis-particle detector (FL-PD300)",
                             "a pyrolysis-particle detector (reference model FL-PD300)",
                             [] { return std::make_unique<pyrolysis_model>(); }};

}  // namespace
}  // namespace firelink::sim::modbus
