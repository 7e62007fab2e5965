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
    static const modbus_driver::map_schema s = {
        {"particle_level", role::number, true, {}, {}, "the pre-alarm and alarm are raised from it"},
        {"status", role::status_bits, true, {"wire_break"}, {"wire_short", "alarm_latched", "pre_alarm"},
         "the sensor wire faults"},
        {"self_test_state", role::enumeration, false, {"passed", "failed"}, {"idle", "running"}, "self_test is confirmed by it"},
        {"control_command", role::command_register, true, {"reset"}, {}, "reset writes it"},
        {"self_test", role::command_coil, false, {}, {}, "self_test switches it on"},
    };
    return s;
}

inline modbus_driver::register_map reference_map() {
    using modbus_driver::register_point;
    using modbus_driver::table;
    using modbus_driver::value_type;
    modbus_driver::register_map m;
    m.points.push_back(register_point{"particle_level", table::input, 0, value_type::u16, 1, "", false, {}, {}});
    m.points.push_back(register_point{"status", table::input, 1, value_type::u16, 1, "", false,
                                      {{"alarm_latched", 0}, {"pre_alarm", 1}, {"wire_break", 2}, {"wire_short", 3}}, {}});
    m.points.push_back(register_point{"self_test_state", table::input, 2, value_type::u16, 1, "", false, {},
                                      {{"idle", 0}, {"running", 1}, {"passed", 2}, {"failed", 3}}});
    m.points.push_back(register_point{"control_command", table::holding, 0, value_type::u16, 1, "", false, {}, {{"reset", 1}}});
    m.points.push_back(register_point{"self_test", table::coil, 0, value_type::boolean, 1, "", false, {}, {}});
    return m;
}

}  // namespace firelink::pyrolysis_detector
