// firelink-sim arc-breaker: the reference arc-fault breaker (FL-AFB200), register map shared with the driver
// (<firelink/modbus/maps/arc_fault_breaker.hpp>).
#include <firelink/modbus/maps/arc_fault_breaker.hpp>
#include "sim_core.hpp"

namespace firelink::sim::modbus {
namespace {

class arc_breaker_model : public reference_model {
public:
    arc_breaker_model() : reference_model(arc_fault_breaker::reference_map(), "breaker_command") {
        set_named("breaker_state", "closed");
        set("voltage", 230);
        set("current", 12.5);
        set("temperature_1", 35);
        set("temperature_2", 34);
        set("residual_current", 8);
    }

protected:
    std::vector<std::string> model_help() const override {
        return {"arc-fault             an arc fault: latch set, count + 1, the breaker trips",
                "residual MA           residual current in mA",
                "temp LINE DEGC        temperature of line 1 or 2",
                "voltage V             line voltage",
                "current A             line current",
                "stuck [on|off]        the breaker does not move when commanded",
                "breaker-fault [on|off] the breaker reports a fault"};
    }

    std::string model_action(const std::vector<std::string> &w) override {
        std::string err;
        bool on = true;
        if (w[0] == "arc-fault") {
            set_bit("status", "arc_fault", true);
            set_raw("arc_fault_count", get_raw("arc_fault_count") + 1);
            if (!stuck_) set_named("breaker_state", "open");
            return "";
        }
        if (w[0] == "residual" && w.size() == 2) return run({"set", "residual_current", w[1]});
        if (w[0] == "temp" && w.size() == 3) return run({"set", "temperature_" + w[1], w[2]});
        if (w[0] == "voltage" && w.size() == 2) return run({"set", "voltage", w[1]});
        if (w[0] == "current" && w.size() == 2) return run({"set", "current", w[1]});
        if (w[0] == "stuck") return parse_on_off(w, 1, on, err) ? (stuck_ = on, "") : err;
        if (w[0] == "breaker-fault") {
            if (!parse_on_off(w, 1, on, err)) return err;
            set_bit("status", "breaker_fault", on);
            set_named("breaker_state", on ? "fault" : "open");
            return "";
        }
        return "unknown action '" + w[0] + "' (firelink-sim arc-breaker --help lists them)";
    }

    void on_command(std::int64_t cmd) override {
        if (is_command(cmd, "reset")) set_bit("status", "arc_fault", false);
        if (stuck_ || named("breaker_state") == "fault") return;
        if (is_command(cmd, "trip")) set_named("breaker_state", "open");
        // A breaker does not close onto a latched arc fault.
        if (is_command(cmd, "close") && !bit("status", "arc_fault")) set_named("breaker_state", "closed");
    }

private:
    bool stuck_ = false;
};

const model_registration reg{"arc-breaker", "Modbus arc-fault breaker (FL-AFB200)",
                             "an arc-fault breaker / electrical-fire monitor (reference model FL-AFB200)",
                             [] { return std::make_unique<arc_breaker_model>(); }};

}  // namespace
}  // namespace firelink::sim::modbus
