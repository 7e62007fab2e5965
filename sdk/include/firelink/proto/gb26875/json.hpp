// GB/T 26875.3 frames as one line of JSON: every header field, the decoded information objects with their type names,
// status bits by name and descriptions as UTF-8. What `firelink-decode gb26875` prints; handy in a driver's logs.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include <firelink/proto/gb26875.hpp>
#include <firelink/text.hpp>

namespace firelink::proto::gb26875 {

namespace json_detail {

inline void key(std::string &o, std::string_view k) {
    if (o.back() != '{') o += ',';
    text::append_json_string(o, k);
    o += ':';
}
inline void kv(std::string &o, std::string_view k, std::string_view v) { key(o, k), text::append_json_string(o, v); }
inline void kv(std::string &o, std::string_view k, long long v) { key(o, k), o += std::to_string(v); }
inline void kv_bool(std::string &o, std::string_view k, bool v) { key(o, k), o += v ? "true" : "false"; }

inline std::string time_text(const timestamp &t) {
    char b[32];
    std::snprintf(b, sizeof b, "20%02u-%02u-%02uT%02u:%02u:%02u", unsigned(t.year % 100), unsigned(t.month),
                  unsigned(t.day), unsigned(t.hour), unsigned(t.minute), unsigned(t.second));
    return b;
}

inline void time_field(std::string &o, std::string_view k, const timestamp &t) {
    if (t.valid()) {
        kv(o, k, time_text(t));
    } else {
        const std::uint8_t raw[] = {t.second, t.minute, t.hour, t.day, t.month, t.year};
        kv(o, std::string(k) + "_invalid", text::to_hex(raw));
    }
}

template <std::size_t N>
inline void bits(std::string &o, std::string_view k, unsigned value, const bit_entry (&table)[N]) {
    key(o, k);
    o += '[';
    bool first = true;
    for (std::size_t i = 0; i < N; ++i) {
        if (!(value & (1u << i))) continue;
        if (!first) o += ',';
        first = false;
        text::append_json_string(o, table[i].name.empty() ? "bit" + std::to_string(i) : std::string(table[i].name));
    }
    o += ']';
}

inline void system_fields(std::string &o, std::uint8_t type, std::uint8_t address) {
    kv(o, "system_type", type);
    kv(o, "system_type_name", system_type_info(type).name);
    kv(o, "system_address", address);
}

inline void component_fields(std::string &o, const component_ref &c) {
    system_fields(o, c.system_type, c.system_address);
    kv(o, "component_type", c.component_type);
    kv(o, "component_type_name", component_type_info(c.component_type).name);
    kv(o, "component_address", c.component_address);
    kv(o, "loop", c.loop());
    kv(o, "point", c.point());
}

inline void opt_time(std::string &o, const std::optional<timestamp> &t) {
    if (t) time_field(o, "time", *t);
    else kv_bool(o, "time_present", false);
}

inline void object(std::string &o, std::uint8_t type, const info_object &obj) {
    o += '{';
    std::visit(
        [&](const auto &v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, system_status>) {
                system_fields(o, v.system_type, v.system_address);
                kv(o, "status", v.status);
                bits(o, "status_bits", v.status, system_status_bits);
                opt_time(o, v.time);
            } else if constexpr (std::is_same_v<T, component_status>) {
                component_fields(o, v.component);
                kv(o, "status", v.status);
                bits(o, "status_bits", v.status, component_status_bits);
                kv(o, "description", description_utf8(v.description));
                opt_time(o, v.time);
            } else if constexpr (std::is_same_v<T, component_config>) {
                component_fields(o, v.component);
                kv(o, "description", description_utf8(v.description));
            } else if constexpr (std::is_same_v<T, component_analog>) {
                component_fields(o, v.component);
                const auto info = analog_info(v.analog_type);
                kv(o, "analog_type", v.analog_type);
                kv(o, "analog_name", info.name);
                kv(o, "raw", v.raw);
                key(o, "value");
                char b[64];
                std::snprintf(b, sizeof b, "%.10g", analog_value(v));
                o += b;
                if (!info.unit.empty()) kv(o, "unit", info.unit);
                opt_time(o, v.time);
            } else if constexpr (std::is_same_v<T, system_operation>) {
                system_fields(o, v.system_type, v.system_address);
                kv(o, "flags", v.flags);
                bits(o, "operations", v.flags, system_operation_bits);
                kv(o, "operator", v.operator_id);
                opt_time(o, v.time);
            } else if constexpr (std::is_same_v<T, system_version>) {
                system_fields(o, v.system_type, v.system_address);
                kv(o, "version", std::to_string(v.major) + "." + std::to_string(v.minor));
            } else if constexpr (std::is_same_v<T, system_config>) {
                system_fields(o, v.system_type, v.system_address);
                kv(o, "config", gb18030_to_utf8(v.text));
            } else if constexpr (std::is_same_v<T, system_time>) {
                system_fields(o, v.system_type, v.system_address);
                time_field(o, "clock", v.time);
            } else if constexpr (std::is_same_v<T, uitd_status>) {
                kv(o, "status", v.status);
                bits(o, "status_bits", v.status, uitd_status_bits);
                opt_time(o, v.time);
            } else if constexpr (std::is_same_v<T, uitd_operation>) {
                kv(o, "flags", v.flags);
                bits(o, "operations", v.flags, uitd_operation_bits);
                kv(o, "operator", v.operator_id);
                opt_time(o, v.time);
            } else if constexpr (std::is_same_v<T, uitd_version>) {
                kv(o, "version", std::to_string(v.major) + "." + std::to_string(v.minor));
            } else if constexpr (std::is_same_v<T, uitd_config>) {
                kv(o, "config", gb18030_to_utf8(v.text));
            } else if constexpr (std::is_same_v<T, clock_value>) {
                time_field(o, "clock", v.time);
            } else if constexpr (std::is_same_v<T, read_system>) {
                system_fields(o, v.system_type, v.system_address);
            } else if constexpr (std::is_same_v<T, read_component>) {
                system_fields(o, v.system_type, v.system_address);
                kv(o, "component_address", v.component_address);
            } else if constexpr (std::is_same_v<T, read_records>) {
                if (type != 84) system_fields(o, v.system_type, v.system_address);
                kv(o, "count", v.count);
                time_field(o, "since", v.since);
            } else if constexpr (std::is_same_v<T, reserved_byte>) {
                kv(o, "reserved", v.value);
            } else if constexpr (std::is_same_v<T, duty_check>) {
                kv(o, "answer_within_min", v.minutes);
            }
        },
        obj);
    o += '}';
}

}  // namespace json_detail

// The frame as one line of JSON (no newline).
inline std::string to_json(const frame &f) {
    using namespace json_detail;
    std::string o = "{";
    kv(o, "serial", f.head.serial);
    kv(o, "version", std::to_string(f.head.version_main) + "." + std::to_string(f.head.version_user));
    time_field(o, "time", f.head.time);
    kv(o, "source", address_text(f.head.source));
    kv(o, "destination", address_text(f.head.destination));
    kv(o, "length", static_cast<long long>(f.data.size()));
    kv(o, "command", f.head.command);
    kv(o, "command_name", command_name(f.head.command));
    kv(o, "checksum", checksum(std::span<const std::uint8_t>(encode(f)).subspan(2, header_size - 2 + f.data.size())));
    if (!f.data.empty()) {
        const auto app = parse_app_data(f.data);
        key(o, "app");
        o += '{';
        const std::uint8_t type = f.data[0];
        kv(o, "type", type);
        kv(o, "type_name", type_info(type).name);
        kv(o, "type_name_zh", type_info(type).name_zh);
        if (f.data.size() >= 2) kv(o, "count", f.data[1]);
        if (!app.ok()) {
            kv(o, "error", app.error);
            kv(o, "hex", text::to_hex(f.data));
        } else if (!app.value->known) {
            kv(o, "raw", text::to_hex(app.value->raw));
        } else {
            key(o, "objects");
            o += '[';
            bool first = true;
            for (const auto &obj : app.value->objects) {
                if (!first) o += ',';
                first = false;
                object(o, type, obj);
            }
            o += ']';
        }
        o += '}';
    }
    o += '}';
    return o;
}

}  // namespace firelink::proto::gb26875
