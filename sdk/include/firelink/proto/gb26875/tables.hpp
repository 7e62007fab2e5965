// GB/T 26875.3-2011 code tables: application data types (表3), system types (表4), component types (表5), analog
// types with units and resolution (表6), and the meaning of each status and operation bit. Part of gb26875.hpp.
#pragma once

#include <cstdint>
#include <string_view>

namespace firelink::proto::gb26875 {

enum class direction { none, up, down };  // up: UITD -> centre, down: centre -> UITD

struct type_entry {
    bool known = false;  // false: reserved or vendor-defined (128-255): the data is kept raw
    direction dir = direction::none;
    std::string_view name;     // English, snake_case, stable: JSON output uses it
    std::string_view name_zh;  // the standard's name
};

constexpr type_entry type_info(std::uint8_t type) noexcept {
    switch (type) {
    case 1: return {true, direction::up, "system_status", "上传建筑消防设施系统状态"};
    case 2: return {true, direction::up, "component_status", "上传建筑消防设施部件运行状态"};
    case 3: return {true, direction::up, "component_analog", "上传建筑消防设施部件模拟量值"};
    case 4: return {true, direction::up, "system_operation", "上传建筑消防设施操作信息"};
    case 5: return {true, direction::up, "system_version", "上传建筑消防设施软件版本"};
    case 6: return {true, direction::up, "system_config", "上传建筑消防设施系统配置情况"};
    case 7: return {true, direction::up, "component_config", "上传建筑消防设施部件配置情况"};
    case 8: return {true, direction::up, "system_time", "上传建筑消防设施系统时间"};
    case 21: return {true, direction::up, "uitd_status", "上传用户信息传输装置运行状态"};
    case 24: return {true, direction::up, "uitd_operation", "上传用户信息传输装置操作信息"};
    case 25: return {true, direction::up, "uitd_version", "上传用户信息传输装置软件版本"};
    case 26: return {true, direction::up, "uitd_config", "上传用户信息传输装置配置情况"};
    case 28: return {true, direction::up, "uitd_time", "上传用户信息传输装置系统时间"};
    case 61: return {true, direction::down, "read_system_status", "读建筑消防设施系统状态"};
    case 62: return {true, direction::down, "read_component_status", "读建筑消防设施部件运行状态"};
    case 63: return {true, direction::down, "read_component_analog", "读建筑消防设施部件模拟量值"};
    case 64: return {true, direction::down, "read_system_operations", "读建筑消防设施操作信息记录"};
    case 65: return {true, direction::down, "read_system_version", "读建筑消防设施软件版本"};
    case 66: return {true, direction::down, "read_system_config", "读建筑消防设施系统配置情况"};
    case 67: return {true, direction::down, "read_component_config", "读建筑消防设施部件配置情况"};
    case 68: return {true, direction::down, "read_system_time", "读建筑消防设施系统时间"};
    case 81: return {true, direction::down, "read_uitd_status", "读用户信息传输装置运行状态"};
    case 84: return {true, direction::down, "read_uitd_operations", "读用户信息传输装置操作信息记录"};
    case 85: return {true, direction::down, "read_uitd_version", "读用户信息传输装置软件版本"};
    case 86: return {true, direction::down, "read_uitd_config", "读用户信息传输装置配置情况"};
    case 88: return {true, direction::down, "read_uitd_time", "读用户信息传输装置系统时间"};
    case 89: return {true, direction::down, "initialise_uitd", "初始化用户信息传输装置"};
    case 90: return {true, direction::down, "sync_uitd_clock", "同步用户信息传输装置时钟"};
    case 91: return {true, direction::down, "duty_check", "查岗命令"};
    default: return {false, direction::none, type >= 128 ? "vendor" : "reserved", type >= 128 ? "用户自定义" : "预留"};
    }
}

// The uplink type that answers a downlink read (61 -> 1, 81 -> 21, ...), or 0.
constexpr std::uint8_t response_type_for(std::uint8_t request_type) noexcept {
    if (request_type >= 61 && request_type <= 68) return static_cast<std::uint8_t>(request_type - 60);
    switch (request_type) {
    case 81: case 84: case 85: case 86: case 88: return static_cast<std::uint8_t>(request_type - 60);
    default: return 0;
    }
}

struct name_pair {
    std::string_view name;
    std::string_view name_zh;
};

// 表4 系统类型.
constexpr name_pair system_type_info(std::uint8_t t) noexcept {
    switch (t) {
    case 0: return {"general", "通用"};
    case 1: return {"fire_alarm_system", "火灾报警系统"};
    case 10: return {"linkage_controller", "消防联动控制器"};
    case 11: return {"hydrant_system", "消火栓系统"};
    case 12: return {"sprinkler_system", "自动喷水灭火系统"};
    case 13: return {"gas_extinguishing_system", "气体灭火系统"};
    case 14: return {"water_spray_system_pump", "水喷雾灭火系统(泵启动方式)"};
    case 15: return {"water_spray_system_vessel", "水喷雾灭火系统(压力容器启动方式)"};
    case 16: return {"foam_system", "泡沫灭火系统"};
    case 17: return {"dry_powder_system", "干粉灭火系统"};
    case 18: return {"smoke_control_system", "防烟排烟系统"};
    case 19: return {"fire_door_shutter_system", "防火门及卷帘系统"};
    case 20: return {"fire_elevator", "消防电梯"};
    case 21: return {"emergency_broadcast", "消防应急广播"};
    case 22: return {"emergency_lighting", "消防应急照明和疏散指示系统"};
    case 23: return {"fire_power_supply", "消防电源"};
    case 24: return {"fire_telephone", "消防电话"};
    default: return t >= 128 ? name_pair{"vendor", "用户自定义"} : name_pair{"reserved", "预留"};
    }
}

// 表5 部件类型.
constexpr name_pair component_type_info(std::uint8_t t) noexcept {
    switch (t) {
    case 0: return {"general", "通用"};
    case 1: return {"fire_alarm_controller", "火灾报警控制器"};
    case 10: return {"combustible_gas_detector", "可燃气体探测器"};
    case 11: return {"point_combustible_gas_detector", "点型可燃气体探测器"};
    case 12: return {"standalone_combustible_gas_detector", "独立式可燃气体探测器"};
    case 13: return {"line_combustible_gas_detector", "线型可燃气体探测器"};
    case 16: return {"electrical_fire_monitor", "电气火灾监控报警器"};
    case 17: return {"residual_current_detector", "剩余电流式电气火灾监控探测器"};
    case 18: return {"temperature_electrical_fire_detector", "测温式电气火灾监控探测器"};
    case 21: return {"detection_loop", "探测回路"};
    case 22: return {"fire_display_panel", "火灾显示盘"};
    case 23: return {"manual_call_point", "手动火灾报警按钮"};
    case 24: return {"hydrant_button", "消火栓按钮"};
    case 25: return {"fire_detector", "火灾探测器"};
    case 30: return {"heat_detector", "感温火灾探测器"};
    case 31: return {"point_heat_detector", "点型感温火灾探测器"};
    case 32: return {"point_heat_detector_s", "点型感温火灾探测器(S型)"};
    case 33: return {"point_heat_detector_r", "点型感温火灾探测器(R型)"};
    case 34: return {"line_heat_detector", "线型感温火灾探测器"};
    case 35: return {"line_heat_detector_s", "线型感温火灾探测器(S型)"};
    case 36: return {"line_heat_detector_r", "线型感温火灾探测器(R型)"};
    case 37: return {"fibre_heat_detector", "光纤感温火灾探测器"};
    case 40: return {"smoke_detector", "感烟火灾探测器"};
    case 41: return {"point_ionisation_smoke_detector", "点型离子感烟火灾探测器"};
    case 42: return {"point_photoelectric_smoke_detector", "点型光电感烟火灾探测器"};
    case 43: return {"beam_smoke_detector", "线型光束感烟火灾探测器"};
    case 44: return {"aspirating_smoke_detector", "吸气式感烟火灾探测器"};
    case 50: return {"multi_sensor_detector", "复合式火灾探测器"};
    case 51: return {"smoke_heat_detector", "复合式感烟感温火灾探测器"};
    case 52: return {"flame_heat_detector", "复合式感光感温火灾探测器"};
    case 53: return {"flame_smoke_detector", "复合式感光感烟火灾探测器"};
    case 61: return {"uv_flame_detector", "紫外火焰探测器"};
    case 62: return {"ir_flame_detector", "红外火焰探测器"};
    case 69: return {"flame_detector", "感光火灾探测器"};
    case 74: return {"gas_detector", "气体探测器"};
    case 78: return {"video_fire_detector", "图像摄像方式火灾探测器"};
    case 79: return {"acoustic_fire_detector", "感声火灾探测器"};
    case 81: return {"gas_extinguishing_controller", "气体灭火控制器"};
    case 82: return {"fire_electrical_control", "消防电气控制装置"};
    case 83: return {"graphic_display", "消防控制室图形显示装置"};
    case 84: return {"module", "模块"};
    case 85: return {"input_module", "输入模块"};
    case 86: return {"output_module", "输出模块"};
    case 87: return {"input_output_module", "输入/输出模块"};
    case 88: return {"relay_module", "中继模块"};
    case 91: return {"fire_pump", "消防水泵"};
    case 92: return {"fire_water_tank", "消防水箱"};
    case 95: return {"sprinkler_pump", "喷淋泵"};
    case 96: return {"water_flow_indicator", "水流指示器"};
    case 97: return {"signal_valve", "信号阀"};
    case 98: return {"alarm_valve", "报警阀"};
    case 99: return {"pressure_switch", "压力开关"};
    case 101: return {"valve_actuator", "阀驱动装置"};
    case 102: return {"fire_door", "防火门"};
    case 103: return {"fire_damper", "防火阀"};
    case 104: return {"ventilation_ac", "通风空调"};
    case 105: return {"foam_pump", "泡沫液泵"};
    case 106: return {"solenoid_valve", "管网电磁阀"};
    case 111: return {"smoke_fan", "防烟排烟风机"};
    case 113: return {"smoke_fire_damper", "排烟防火阀"};
    case 114: return {"closed_air_inlet", "常闭送风口"};
    case 115: return {"smoke_outlet", "排烟口"};
    case 116: return {"smoke_curtain", "电控挡烟垂壁"};
    case 117: return {"fire_shutter_controller", "防火卷帘控制器"};
    case 118: return {"fire_door_monitor", "防火门监控器"};
    case 121: return {"alarm_device", "警报装置"};
    default: return t >= 128 ? name_pair{"vendor", "用户自定义"} : name_pair{"reserved", "预留"};
    }
}

// 表6 模拟量类型: name, unit as firelink writes it (docs/events.md), and the value of one raw step.
struct analog_entry {
    std::string_view name;
    std::string_view unit;  // empty: no unit
    double resolution = 1;
    bool known = false;
};

constexpr analog_entry analog_info(std::uint8_t t) noexcept {
    switch (t) {
    case 1: return {"event_count", "", 1, true};
    case 2: return {"height", "m", 0.01, true};
    case 3: return {"temperature", "degC", 0.1, true};
    case 4: return {"pressure_mpa", "MPa", 0.1, true};
    case 5: return {"pressure_kpa", "kPa", 0.1, true};
    case 6: return {"gas_concentration", "%LEL", 0.1, true};
    case 7: return {"time", "s", 1, true};
    case 8: return {"voltage", "V", 0.1, true};
    case 9: return {"current", "A", 0.1, true};
    case 10: return {"flow", "L/s", 0.1, true};
    case 11: return {"air_volume", "m3/min", 0.1, true};
    case 12: return {"wind_speed", "m/s", 0.01, true};
    default: return {t >= 128 ? "vendor_analog" : "reserved_analog", "", 1, false};
    }
}

struct bit_entry {
    std::string_view name;     // the meaning of a 1, snake_case
    std::string_view name_zh;
};

// 建筑消防设施系统状态 (type 1), bit 0..15. Bit 0 set means normal operation, clear means test mode.
inline constexpr bit_entry system_status_bits[16] = {
    {"normal", "正常运行"}, {"fire_alarm", "火警"}, {"fault", "故障"}, {"disabled", "屏蔽"},
    {"supervisory", "监管"}, {"started", "启动"}, {"feedback", "反馈"}, {"delay", "延时"},
    {"main_power_fault", "主电故障"}, {"backup_power_fault", "备电故障"}, {"bus_fault", "总线故障"},
    {"manual_mode", "手动状态"}, {"config_changed", "配置改变"}, {"reset", "复位"}, {"", ""}, {"", ""}};

// 建筑消防设施部件状态 (type 2), bit 0..15.
inline constexpr bit_entry component_status_bits[16] = {
    {"normal", "正常运行"}, {"fire_alarm", "火警"}, {"fault", "故障"}, {"disabled", "屏蔽"},
    {"supervisory", "监管"}, {"started", "启动"}, {"feedback", "反馈"}, {"delay", "延时"},
    {"power_fault", "电源故障"}, {"", ""}, {"", ""}, {"", ""}, {"", ""}, {"", ""}, {"", ""}, {"", ""}};

// 建筑消防设施操作信息 (type 4), bit 0..7.
inline constexpr bit_entry system_operation_bits[8] = {
    {"reset", "复位"}, {"silence", "消音"}, {"manual_alarm", "手动报警"}, {"alarm_cleared", "警情消除"},
    {"self_test", "自检"}, {"acknowledge", "确认"}, {"test", "测试"}, {"", ""}};

// 用户信息传输装置运行状态 (type 21), bit 0..7. Bit 0 set means normal monitoring, clear means test mode.
inline constexpr bit_entry uitd_status_bits[8] = {
    {"normal", "正常监视"}, {"fire_alarm", "火警"}, {"fault", "故障"}, {"main_power_fault", "主电故障"},
    {"backup_power_fault", "备电故障"}, {"link_fault", "与监控中心通信信道故障"}, {"wiring_fault", "监测连接线路故障"},
    {"", ""}};

// 用户信息传输装置操作信息 (type 24), bit 0..7.
inline constexpr bit_entry uitd_operation_bits[8] = {
    {"reset", "复位"}, {"silence", "消音"}, {"manual_alarm", "手动报警"}, {"alarm_cleared", "警情消除"},
    {"self_test", "自检"}, {"duty_answer", "查岗应答"}, {"test", "测试"}, {"", ""}};

}  // namespace firelink::proto::gb26875
