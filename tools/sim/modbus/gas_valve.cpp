// firelink-sim gas-valve: the reference gas detector with shutoff valve (FL-GV100), register map shared with the
// driver (<firelink/modbus/maps/gas_shutoff_valve.hpp>).
#include <firelink/modbus/maps/gas_shutoff_valve.hpp>
#include "sim_core.hpp"

namespace firelink::sim::modbus {
namespace {

class gas_valve_model : public reference_model {
public:
    gas_valve_model() : reference_model(gas_shutoff_valve::reference_map(), "valve_command") {
        set_named("valve_position", "open");
    }

protected:
    std::vector<std::string> model_help() const override {
        return {"gas LEL               set the concentration in %LEL (e.g. gas 30)",
                "ramp-gas LEL MS       ramp the concentration to LEL over MS ms",
                "sensor-fault [on|off] break the sensor wire (status bit sensor_fault, reading 0)",
                "expired [on|off]      sensor past its service life",
                "stuck [on|off]        the valve does not move when commanded (refuses a close)",
                "valve-fault [on|off]  the valve reports a fault",
                "valve open|closed     move the valve by hand",
                "travel-ms MS          valve travel time (default 300)"};
    }

    std::string model_action(const std::vector<std::string> &w) override {
        std::string err;
        bool on = true;
        if (w[0] == "gas" && w.size() == 2) return run({"set", "gas_concentration", w[1]});
        if (w[0] == "ramp-gas" && w.size() == 3) return run({"ramp", "gas_concentration", w[1], w[2]});
        if (w[0] == "sensor-fault") {
            if (!parse_on_off(w, 1, on, err)) return err;
            set_bit("sensor_status", "sensor_fault", on);
            if (on) set("gas_concentration", 0);
            return "";
        }
        if (w[0] == "expired") return parse_on_off(w, 1, on, err) ? (set_bit("sensor_status", "sensor_expired", on), "") : err;
        if (w[0] == "stuck") return parse_on_off(w, 1, on, err) ? (stuck_ = on, "") : err;
        if (w[0] == "valve-fault") {
            if (!parse_on_off(w, 1, on, err)) return err;
            fault_ = on;
            set_named("valve_position", on ? "fault" : (target_.empty() ? "open" : target_));
            return "";
        }
        if (w[0] == "valve" && w.size() == 2 && (w[1] == "open" || w[1] == "closed")) {
            set_named("valve_position", w[1]);
            target_.clear();
            return "";
        }
        if (w[0] == "travel-ms" && w.size() == 2) {
            travel_ms_ = parse_number(w[1], err);
            return err;
        }
        return "unknown action '" + w[0] + "' (firelink-sim gas-valve --help lists them)";
    }

    void on_command(std::int64_t cmd) override {
        if (fault_ || stuck_) return;  // a stuck valve takes the command and does not move
        if (is_command(cmd, "close")) move_to("closed");
        else if (is_command(cmd, "open")) move_to("open");
    }

    void on_tick(double ms) override {
        if (!target_.empty() && (moving_ms_ -= ms) <= 0) {
            set_named("valve_position", target_);
            target_.clear();
        }
    }

private:
    void move_to(const std::string &where) {
        if (named("valve_position") == where) return;
        set_named("valve_position", "moving");
        target_ = where;
        moving_ms_ = travel_ms_;
    }

    bool stuck_ = false, fault_ = false;
    std::string target_;
    double moving_ms_ = 0, travel_ms_ = 300;
};

const model_registration reg{"gas-valve", "Modbus gas detector + shutoff valve (FL-GV100)",
                             "a gas detector with shutoff valve (reference model FL-GV100)",
                             [] { return std::make_unique<gas_valve_model>(); }};

}  // namespace
}  // namespace firelink::sim::modbus
