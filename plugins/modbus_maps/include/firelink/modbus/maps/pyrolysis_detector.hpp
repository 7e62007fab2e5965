// The register map of the reference model of pyrolysis_detector, "FL-PD300": a pyrolysis-particle electrical-fire
// detector. It is the driver's default map and the map firelink-sim pyrolysis serves. Documented in
// docs/drivers/modbus.md.
//
//   table    address  point              meaning
//   input    0        particle_level     u16, particle concentration level (0..1000, no unit)
//   input    1        status             bit 0 alarm_latched, bit 1 pre_alarm, bit 2 wire_break, bit 3 wire_short
//   input    2        self_test_state    0 idle, 1 running, 2 passed, 3 failed
//   holding  0        control_command    write 1 reset (clears the alarm latch once the level is below the alarm)
//   coil     0        self_test          write ON to start a self-test
#pragma once

#include <firelink/modbus/register_map.hpp>

namespace firelink::pyrolysis_detector {

inline const modbus_driver::map_schema &schema() {
    using modbus_driver::role;
    static const modbus_driver::map_schema s = modbus_driver::reference_schema(
        {
            {"particle_level", role::number, true, {}, {}, "the pre-alarm and alarm are raised from it"},
            {"status", role::status_bits, true, {"wire_break"}, {"wire_short", "alarm_latched", "pre_alarm"},
             "the sensor wire faults"},
        },
        {"control_command", role::command_register, true, {"reset"}, {}, "reset writes it"});
    return s;
}

inline modbus_driver::register_map reference_map() {
    using modbus_driver::table;
    using modbus_driver::value_type;
    return modbus_driver::reference_layout(
        {
            {"particle_level", table::input, 0, value_type::u16, 1, "", false, {}, {}},
            {"status", table::input, 1, value_type::u16, 1, "", false,
             {{"alarm_latched", 0}, {"pre_alarm", 1}, {"wire_break", 2}, {"wire_short", 3}}, {}},
        },
        2, {"control_command", table::holding, 0, value_type::u16, 1, "", false, {}, {{"reset", 1}}});
}

}  // namespace firelink::pyrolysis_detector
