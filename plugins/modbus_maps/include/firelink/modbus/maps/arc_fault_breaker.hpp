// The register map of the reference model of arc_fault_breaker, "FL-AFB200": a smart breaker / electrical-fire
// monitor with arc-fault detection, residual current, two line temperatures, voltage and current. It is the
// driver's default map and the map firelink-sim arc-breaker serves. Documented in docs/drivers/modbus.md.
//
//   table    address  point              meaning
//   input    0        status             bit 0 arc_fault (latched until reset), bit 1 breaker_fault
//   input    1        arc_fault_count    u16, arc faults detected since installation
//   input    2        residual_current   u16, mA
//   input    3        temperature_1      s16, x0.1 degC (line L)
//   input    4        temperature_2      s16, x0.1 degC (line N)
//   input    5        voltage            u16, x0.1 V
//   input    6..7     current            u32, x0.01 A, high word first
//   input    8        breaker_state      0 open (tripped), 1 closed, 2 fault
//   input    9        self_test_state    0 idle, 1 running, 2 passed, 3 failed
//   holding  0        breaker_command    write 1 trip, 2 close, 3 reset (clears the arc-fault latch)
//   coil     0        self_test          write ON to start a self-test
#pragma once

#include <firelink/modbus/register_map.hpp>

namespace firelink::arc_fault_breaker {

inline const modbus_driver::map_schema &schema() {
    using modbus_driver::role;
    static const modbus_driver::map_schema s = modbus_driver::reference_schema(
        {
            {"status", role::status_bits, true, {"arc_fault"}, {"breaker_fault"}, "the arc-fault alarm is read from it"},
            {"arc_fault_count", role::number, false, {}, {}, ""},
            {"residual_current", role::number, true, {}, {}, "the residual current alarms"},
            {"temperature_1", role::number, false, {}, {}, ""},
            {"temperature_2", role::number, false, {}, {}, ""},
            {"temperature_3", role::number, false, {}, {}, ""},
            {"temperature_4", role::number, false, {}, {}, ""},
            {"voltage", role::number, false, {}, {}, ""},
            {"current", role::number, false, {}, {}, ""},
            {"breaker_state", role::enumeration, true, {"open", "closed"}, {"fault"}, "trip and close are confirmed by it"},
        },
        {"breaker_command", role::command_register, true, {"trip", "close"}, {"reset"}, "trip, close and reset write it"});
    return s;
}

inline modbus_driver::register_map reference_map() {
    using modbus_driver::table;
    using modbus_driver::value_type;
    return modbus_driver::reference_layout(
        {
            {"status", table::input, 0, value_type::u16, 1, "", false, {{"arc_fault", 0}, {"breaker_fault", 1}}, {}},
            {"arc_fault_count", table::input, 1, value_type::u16, 1, "", false, {}, {}},
            {"residual_current", table::input, 2, value_type::u16, 1, "mA", false, {}, {}},
            {"temperature_1", table::input, 3, value_type::s16, 0.1, "degC", false, {}, {}},
            {"temperature_2", table::input, 4, value_type::s16, 0.1, "degC", false, {}, {}},
            {"voltage", table::input, 5, value_type::u16, 0.1, "V", false, {}, {}},
            {"current", table::input, 6, value_type::u32, 0.01, "A", false, {}, {}},
            {"breaker_state", table::input, 8, value_type::u16, 1, "", false, {}, {{"open", 0}, {"closed", 1}, {"fault", 2}}},
        },
        9, {"breaker_command", table::holding, 0, value_type::u16, 1, "", false, {}, {{"trip", 1}, {"close", 2}, {"reset", 3}}});
}

}  // namespace firelink::arc_fault_breaker
