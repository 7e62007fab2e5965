#include "firelink/core/event_check.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include <msgpack.hpp>

#include <firelink/abi.h>
#include <firelink/text.hpp>

namespace firelink::core {

namespace {

constexpr std::array<std::string_view, 9> kinds = {"alarm",     "pre_alarm", "fault",          "restore", "status",
                                                   "telemetry", "offline",   "command_result", "gap"};
constexpr std::array<std::string_view, 5> severities = {"critical", "major", "minor", "warning", "info"};

template <std::size_t N>
bool one_of(std::string_view s, const std::array<std::string_view, N> &set) {
    for (auto v : set)
        if (v == s) return true;
    return false;
}

std::string_view as_str(const msgpack::object &o) { return {o.via.str.ptr, o.via.str.size}; }

bool is_int(const msgpack::object &o) {
    return o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER;
}
bool is_number(const msgpack::object &o) {
    return is_int(o) || o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64;
}

// A short text field: a string of 1..max bytes.
bool short_str(const msgpack::object &o, std::size_t max) {
    return o.type == msgpack::type::STR && o.via.str.size > 0 && o.via.str.size <= max;
}

std::optional<std::string> check_values(const msgpack::object &v) {
    if (v.type != msgpack::type::ARRAY) return "'values' must be an array";
    if (v.via.array.size > 256) return "'values' has more than 256 points";
    for (std::uint32_t i = 0; i < v.via.array.size; ++i) {
        const auto &p = v.via.array.ptr[i];
        const std::string where = "values[" + std::to_string(i) + "]";
        if (p.type != msgpack::type::MAP) return where + " must be a map";
        bool has_name = false, has_value = false;
        for (std::uint32_t k = 0; k < p.via.map.size; ++k) {
            const auto &kv = p.via.map.ptr[k];
            if (kv.key.type != msgpack::type::STR) return where + " has a non-string key";
            const auto key = as_str(kv.key);
            if (key == "name") {
                if (!short_str(kv.val, 64)) return where + ".name must be a string of 1-64 bytes";
                has_name = true;
            } else if (key == "value") {
                if (!(is_number(kv.val) || kv.val.type == msgpack::type::BOOLEAN || kv.val.type == msgpack::type::STR))
                    return where + ".value must be a number, boolean or string";
                has_value = true;
            } else if (key == "unit") {
                if (kv.val.type != msgpack::type::STR || kv.val.via.str.size > 16)
                    return where + ".unit must be a string of at most 16 bytes";
            }
        }
        if (!has_name) return where + " has no name";
        if (!has_value) return where + " has no value";
    }
    return std::nullopt;
}


void json_value(std::string &out, const msgpack::object &o, int depth) {
    if (depth > 32) {
        out += "\"…\"";
        return;
    }
    switch (o.type) {
    case msgpack::type::NIL: out += "null"; break;
    case msgpack::type::BOOLEAN: out += o.via.boolean ? "true" : "false"; break;
    case msgpack::type::POSITIVE_INTEGER: out += std::to_string(o.via.u64); break;
    case msgpack::type::NEGATIVE_INTEGER: out += std::to_string(o.via.i64); break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: {
        if (!std::isfinite(o.via.f64)) {  // JSON has no NaN or infinity: a broken sensor's reading is null
            out += "null";
            break;
        }
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", o.via.f64);
        out += buf;
        break;
    }
    case msgpack::type::STR: text::append_json_string(out, as_str(o)); break;
    case msgpack::type::BIN:
    case msgpack::type::EXT: {
        static const char hex[] = "0123456789abcdef";
        const auto *p = reinterpret_cast<const unsigned char *>(o.type == msgpack::type::BIN ? o.via.bin.ptr
                                                                                             : o.via.ext.ptr);
        const std::uint32_t n = o.type == msgpack::type::BIN ? o.via.bin.size : o.via.ext.size;
        out += '"';
        for (std::uint32_t i = 0; i < n; ++i) {
            out += hex[p[i] >> 4];
            out += hex[p[i] & 15];
        }
        out += '"';
        break;
    }
    case msgpack::type::ARRAY:
        out += '[';
        for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
            if (i) out += ',';
            json_value(out, o.via.array.ptr[i], depth + 1);
        }
        out += ']';
        break;
    case msgpack::type::MAP:
        out += '{';
        for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
            if (i) out += ',';
            const auto &kv = o.via.map.ptr[i];
            if (kv.key.type == msgpack::type::STR) text::append_json_string(out, as_str(kv.key));
            else {
                std::string k;
                json_value(k, kv.key, depth + 1);
                text::append_json_string(out, k);
            }
            out += ':';
            json_value(out, kv.val, depth + 1);
        }
        out += '}';
        break;
    }
}

}  // namespace

result<event_summary> check_event(const std::uint8_t *data, std::size_t size) {
    auto fail = [](std::string reason) { return result<event_summary>::fail(FL_INVALID_ARGUMENT, std::move(reason)); };
    if (!data || size == 0) return fail("empty event");
    if (size > max_event_bytes) return fail("event of " + std::to_string(size) + " bytes exceeds the 64 KiB limit");
    msgpack::object_handle handle;
    try {
        std::size_t offset = 0;
        // Bounded unpacking: hostile input cannot make the host allocate more than a few times the event's size.
        msgpack::unpack_limit limit(4096, 4096, 65536, 65536, 4096, 32);
        handle = msgpack::unpack(reinterpret_cast<const char *>(data), size, offset, nullptr, nullptr, limit);
        if (offset != size) return fail("trailing bytes after the event map");
    } catch (const std::exception &e) {
        return fail(std::string("not valid msgpack: ") + e.what());
    }
    const auto &root = handle.get();
    if (root.type != msgpack::type::MAP) return fail("an event must be a msgpack map");

    event_summary s;
    std::set<std::string_view> seen;
    const msgpack::object *kind = nullptr, *code = nullptr;
    bool has_ends = false, has_command_id = false, has_ok = false;
    for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
        const auto &kv = root.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) return fail("a key of the event map is not a string");
        const auto key = as_str(kv.key);
        if (!seen.insert(key).second) return fail("key '" + std::string(key) + "' appears twice");
        const auto &v = kv.val;
        if (key == "schema") {
            if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 < 1)
                return fail("'schema' must be a positive integer");
        } else if (key == "kind") {
            if (v.type != msgpack::type::STR || !one_of(as_str(v), kinds))
                return fail("'kind' must be one of alarm, pre_alarm, fault, restore, status, telemetry, offline, "
                            "command_result, gap");
            kind = &v;
        } else if (key == "code") {
            if (!short_str(v, 64)) return fail("'code' must be a string of 1-64 bytes");
            code = &v;
        } else if (key == "event_id" || key == "ends" || key == "command_id") {
            if (!short_str(v, 64)) return fail("'" + std::string(key) + "' must be a string of 1-64 bytes");
            has_ends = has_ends || key == "ends";
            if (key == "event_id") s.event_id = std::string(as_str(v));
            if (key == "ends") s.ends = std::string(as_str(v));
            has_command_id = has_command_id || key == "command_id";
        } else if (key == "severity") {
            if (v.type != msgpack::type::STR || !one_of(as_str(v), severities))
                return fail("'severity' must be one of critical, major, minor, warning, info");
        } else if (key == "message") {
            if (v.type != msgpack::type::STR || v.via.str.size > 1024)
                return fail("'message' must be a string of at most 1024 bytes");
        } else if (key == "device_time") {
            if (!is_int(v)) return fail("'device_time' must be an integer (ms since the Unix epoch)");
        } else if (key == "ok") {
            if (v.type != msgpack::type::BOOLEAN) return fail("'ok' must be a boolean");
            has_ok = true;
        } else if (key == "values") {
            if (auto bad = check_values(v)) return fail(*bad);
        }
        // Other keys are allowed: later schema minors add fields, and old hosts carry them through.
    }
    if (!kind) return fail("missing 'kind'");
    if (!code) return fail("missing 'code'");
    s.kind = std::string(as_str(*kind));
    s.code = std::string(as_str(*code));
    if (s.kind == "restore" && !has_ends) return fail("a restore must name the event it ends in 'ends'");
    if (s.kind == "command_result" && !(has_command_id && has_ok))
        return fail("a command_result must carry 'command_id' and 'ok'");
    return s;
}

namespace {

// docs/events.md, "Codes". Append only: a code, once published, keeps its meaning.
const std::map<std::string, std::set<std::string>, std::less<>> &class_codes() {
    static const std::map<std::string, std::set<std::string>, std::less<>> table = {
        {"", {"offline", "driver_crashed", "driver_hung", "driver_parked", "communication_fault", "power_fault",
              "tamper", "self_test", "self_test_fault", "low_battery", "sensor_fault", "reset", "maintenance",
              "device_down", "config_rejected", "identity_conflict"}},
        {"arc_fault_breaker",
         {"arc_fault", "residual_current_high", "over_temperature", "over_voltage", "under_voltage", "over_current",
          "short_circuit", "phase_loss", "breaker_tripped", "breaker_closed", "breaker_fault"}},
        {"gas_shutoff_valve",
         {"gas_level_1", "gas_level_2", "valve_closed", "valve_opened", "valve_fault", "sensor_expired"}},
        {"pyrolysis_detector",
         {"pyrolysis_pre_alarm", "pyrolysis_alarm", "sensor_wire_break", "sensor_wire_short"}},
        {"fire_panel",
         {"fire_alarm", "supervisory", "fault", "disabled", "started", "feedback", "delay", "manual_alarm",
          "main_power_fault", "backup_power_fault", "bus_fault", "uitd_fault", "link_fault", "wiring_fault",
          "on_duty", "off_duty"}},
    };
    return table;
}

}  // namespace

result<> check_code_for_class(const event_summary &event, const std::string &device_class) {
    if (device_class.rfind(FL_CLASS_VENDOR_PREFIX, 0) == 0) return {};
    if (event.kind == "telemetry" || event.kind == "command_result" || event.kind == "offline" || event.kind == "gap")
        return {};
    if (event.code.rfind("x.", 0) == 0 && event.code.size() > 2) return {};  // vendor namespace
    const auto &table = class_codes();
    if (table.at("").count(event.code)) return {};
    auto it = table.find(device_class);
    if (it != table.end() && it->second.count(event.code)) return {};
    return result<>::fail(FL_INVALID_ARGUMENT, "code '" + event.code + "' is not a " + device_class +
                                                   " code (see docs/events.md; vendor codes are written "
                                                   "x.<vendor>.<name>)");
}

result<event_summary> check_event(const std::uint8_t *data, std::size_t size, const std::string &device_class) {
    auto summary = check_event(data, size);
    if (!summary) return summary;
    if (auto allowed = check_code_for_class(*summary, device_class); !allowed) return allowed.error();
    return summary;
}

std::string msgpack_to_json(const std::uint8_t *data, std::size_t size) {
    std::string out;
    try {
        std::size_t offset = 0;
        msgpack::unpack_limit limit(4096, 4096, 65536, 65536, 4096, 32);
        auto handle = msgpack::unpack(reinterpret_cast<const char *>(data), size, offset, nullptr, nullptr, limit);
        json_value(out, handle.get(), 0);
    } catch (const std::exception &e) {
        out = "{\"invalid_msgpack\":";
        text::append_json_string(out, e.what());
        out += '}';
    }
    return out;
}

}  // namespace firelink::core
