// The register map of the reference model of gas_shutoff_valve, "FL-GV100": a combustible-gas detector (%LEL)
// with a motorised shutoff valve. It is the driver's default map and the map firelink-sim gas-valve serves.
// Documented in docs/drivers/modbus.md ("gas_shutoff_valve"); a site gives another model's map under
// [device.config.registers] in the same form.
//
//   table    address  point              meaning
//   input    0        gas_concentration  u16, x0.1 %LEL (0..1000 = 0..100 %LEL)
//   input    1        sensor_status      bit 0 sensor_fault (open or shorted sensor wire), bit 1 sensor_expired
//   input    2        valve_position     0 moving, 1 open, 2 closed, 3 fault
//   input    3        self_test_state    0 idle, 1 running, 2 passed, 3 failed
//   holding  0        valve_command      write 1 close, 2 open
//   coil     0        self_test          write ON to start a self-test
#pragma once

#include <firelink/modbus/register_map.hpp>

namespace firelink::gas_shutoff_valve {

inline const modbus_driver::map_schema &schema() {
    using modbus_driver::role;
    static const modbus_driver::map_schema s = modbus_driver::reference_schema(
        {
            {"gas_concentration", role::number, true, {}, {}, "the gas level alarms are raised from it"},
            {"sensor_status", role::status_bits, true, {"sensor_fault"}, {"sensor_expired"}, "the sensor fault"},
            {"valve_position", role::enumeration, true, {"open", "closed"}, {"moving", "fault"},
             "close_valve is confirmed by reading it back"},
        },
        {"valve_command", role::command_register, true, {"close", "open"}, {}, "close_valve and open_valve write it"});
    return s;
}

inline modbus_driver::register_map reference_map() {
    using modbus_driver::table;
    using modbus_driver::value_type;
    return modbus_driver::reference_layout(
        {
            {"gas_concentration", table::input, 0, value_type::u16, 0.1, "%LEL", false, {}, {}},
            {"sensor_status", table::input, 1, value_type::u16, 1, "", false, {{"sensor_fault", 0}, {"sensor_expired", 1}}, {}},
            {"valve_position", table::input, 2, value_type::u16, 1, "", false, {},
             {{"moving", 0}, {"open", 1}, {"closed", 2}, {"fault", 3}}},
        },
        3, {"valve_command", table::holding, 0, value_type::u16, 1, "", false, {}, {{"close", 1}, {"open", 2}}});
}

}  // namespace firelink::gas_shutoff_valve
