// A Modbus register map read from a device's config: named points (where a value lives, how to scale it, which bits
// or values mean what), checked against what a driver needs, and turned into a poll plan and snapshots.
//
// The TOML a site writes under [device.config.registers] (docs/drivers/modbus.md, "Register maps"):
//     gas_concentration = { table = "input", address = 0, type = "u16", scale = 0.1, unit = "%LEL" }
//     sensor_status     = { table = "input", address = 1, bits = { sensor_fault = 0, sensor_expired = 1 } }
//     valve_position    = { table = "input", address = 2, values = { moving = 0, open = 1, closed = 2, fault = 3 } }
//     valve_command     = { table = "holding", address = 0, values = { close = 1, open = 2 } }
//     self_test         = { table = "coil", address = 0 }
// Used by the drivers (plugins/*) and by firelink-sim, so a simulator serves exactly the map its driver reads.
// Depends on the SDK only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <firelink/payload.hpp>
#include <firelink/proto/modbus.hpp>

namespace firelink::modbus_driver {

enum class table { coil, discrete_input, holding, input };
enum class value_type { boolean, u16, s16, u32, s32 };

inline const char *table_name(table t) {
    switch (t) {
    case table::coil: return "coil";
    case table::discrete_input: return "discrete";
    case table::holding: return "holding";
    case table::input: return "input";
    }
    return "?";
}
inline bool is_bit_table(table t) { return t == table::coil || t == table::discrete_input; }
inline const char *type_name(value_type t) {
    switch (t) {
    case value_type::boolean: return "bool";
    case value_type::u16: return "u16";
    case value_type::s16: return "s16";
    case value_type::u32: return "u32";
    case value_type::s32: return "s32";
    }
    return "?";
}

// One named point of the map.
struct register_point {
    std::string name;
    table where = table::input;
    std::uint16_t address = 0;
    value_type type = value_type::u16;
    double scale = 1.0;                            // engineering value = raw x scale
    std::string unit;                              // "%LEL", "mA", "degC", "V", "A", or empty
    bool low_word_first = false;                   // u32/s32: the low 16 bits at `address`
    std::map<std::string, int> bits;               // a status word: name -> bit index
    std::map<std::string, std::int64_t> values;    // an enumeration (or the values a command register takes)

    std::uint16_t width() const {  // registers (or bits) the point spans
        return (type == value_type::u32 || type == value_type::s32) ? 2 : 1;
    }
    std::optional<std::int64_t> value_of(std::string_view n) const {
        auto it = values.find(std::string(n));
        return it == values.end() ? std::nullopt : std::optional<std::int64_t>(it->second);
    }
};

// What a driver needs of a point: its role decides which keys it must have.
enum class role {
    number,           // a measured value: u16/s16/u32/s32 with scale and unit
    status_bits,      // a status word with named bits
    enumeration,      // a register whose values are named (a valve position, a self-test state)
    command_register, // a holding register the driver writes one of its named values to
    command_coil,     // a coil the driver switches on
};

struct point_rule {
    std::string name;
    role kind = role::number;
    bool required = true;
    std::vector<std::string> required_names;  // bits or values the driver cannot work without
    std::vector<std::string> optional_names;  // bits or values it uses when present
    std::string why;                          // for the error message: what the driver needs it for
};

using map_schema = std::vector<point_rule>;

struct register_map {
    std::vector<register_point> points;

    const register_point *find(std::string_view name) const {
        for (const auto &p : points)
            if (p.name == name) return &p;
        return nullptr;
    }
};

// ---- the reference models' maps ----------------------------------------------------------------------------------
// Every reference model (<firelink/modbus/maps/*.hpp>) lays its points out alike: its input registers, then the
// self-test's state, its one command register (holding 0) and the self-test's coil (coil 0). The driver switches the
// coil "self_test" on and reads the outcome from the enumeration "self_test_state" (0 idle, 1 running, 2 passed,
// 3 failed); both are optional in a site's map: without them a device has no self_test.

// A reference model's schema: the rules of its input registers and of its command register, with the self-test's.
inline map_schema reference_schema(map_schema inputs, point_rule command) {
    inputs.push_back({"self_test_state", role::enumeration, false, {"passed", "failed"}, {"idle", "running"},
                      "self_test is confirmed by it"});
    inputs.push_back(std::move(command));
    inputs.push_back({"self_test", role::command_coil, false, {}, {}, "self_test switches it on"});
    return inputs;
}

// A reference model's map: its input registers, self_test_state at input register `self_test_state_address`, its
// command register and the self_test coil.
inline register_map reference_layout(std::vector<register_point> inputs, std::uint16_t self_test_state_address,
                                     register_point command) {
    register_map m{std::move(inputs)};
    m.points.push_back({"self_test_state", table::input, self_test_state_address, value_type::u16, 1, "", false, {},
                        {{"idle", 0}, {"running", 1}, {"passed", 2}, {"failed", 3}}});
    m.points.push_back(std::move(command));
    m.points.push_back({"self_test", table::coil, 0, value_type::boolean, 1, "", false, {}, {}});
    return m;
}

// ---- parsing and checking ----------------------------------------------------------------------------------------

namespace detail {

inline std::optional<table> parse_table(const std::string &s) {
    if (s == "coil" || s == "coils") return table::coil;
    if (s == "discrete" || s == "discrete_input" || s == "discrete_inputs") return table::discrete_input;
    if (s == "holding" || s == "holding_register" || s == "holding_registers") return table::holding;
    if (s == "input" || s == "input_register" || s == "input_registers") return table::input;
    return std::nullopt;
}
inline std::optional<value_type> parse_type(const std::string &s) {
    if (s == "bool") return value_type::boolean;
    if (s == "u16") return value_type::u16;
    if (s == "s16") return value_type::s16;
    if (s == "u32") return value_type::u32;
    if (s == "s32") return value_type::s32;
    return std::nullopt;
}

inline std::string join(const std::vector<std::string> &v) {
    std::string out;
    for (const auto &s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

}  // namespace detail

// Checks a map against a driver's schema; throws config_error naming the first inconsistency. `where` prefixes the
// keys in messages ("config key 'registers.valve_position.values'").
inline void check_register_map(const register_map &m, const map_schema &schema, const std::string &where = "registers") {
    auto fail = [&](const std::string &point, const std::string &what) {
        throw config_error("config key '" + where + (point.empty() ? "" : "." + point) + "': " + what);
    };
    std::vector<std::string> known;
    for (const auto &r : schema) known.push_back(r.name);
    for (const auto &p : m.points) {
        const point_rule *rule = nullptr;
        for (const auto &r : schema)
            if (r.name == p.name) rule = &r;
        if (!rule) fail(p.name, "unknown point (this driver reads: " + detail::join(known) + ")");
        if (static_cast<std::uint32_t>(p.address) + p.width() > 0x10000u)
            fail(p.name, "address " + std::to_string(p.address) + " + width " + std::to_string(p.width()) + " runs past 65535");
        if (is_bit_table(p.where) != (p.type == value_type::boolean))
            fail(p.name, std::string("type ") + type_name(p.type) + " does not fit a " + table_name(p.where) +
                             (is_bit_table(p.where) ? " (coils and discrete inputs are bool)" : " register (use u16, s16, u32 or s32)"));
        if (!std::isfinite(p.scale) || p.scale == 0.0) fail(p.name, "scale must be a finite number other than 0");
        const int word_bits = p.width() * 16;
        for (const auto &[n, b] : p.bits)
            if (b < 0 || b >= word_bits)
                fail(p.name + ".bits." + n, "bit " + std::to_string(b) + " is outside 0.." + std::to_string(word_bits - 1));
        for (auto a = p.bits.begin(); a != p.bits.end(); ++a)
            for (auto b = std::next(a); b != p.bits.end(); ++b)
                if (a->second == b->second)
                    fail(p.name + ".bits", "'" + a->first + "' and '" + b->first + "' are both bit " + std::to_string(a->second));
        const std::int64_t lo = (p.type == value_type::s16) ? -32768 : (p.type == value_type::s32) ? INT32_MIN : 0;
        const std::int64_t hi = (p.type == value_type::boolean) ? 1 : (p.type == value_type::u16) ? 65535
                                : (p.type == value_type::s16) ? 32767 : (p.type == value_type::s32) ? INT32_MAX : 0xFFFFFFFFll;
        for (const auto &[n, v] : p.values)
            if (v < lo || v > hi)
                fail(p.name + ".values." + n, std::to_string(v) + " does not fit type " + type_name(p.type));
        // The role decides which keys belong.
        const bool has_bits = !p.bits.empty(), has_values = !p.values.empty();
        auto names_of = [&](const auto &mp) {
            std::vector<std::string> v;
            for (const auto &kv : mp) v.push_back(kv.first);
            return v;
        };
        auto check_names = [&](const std::vector<std::string> &have, const char *key) {
            for (const auto &need : rule->required_names)
                if (std::find(have.begin(), have.end(), need) == have.end())
                    fail(p.name + "." + key, "missing '" + need + "'" + (rule->why.empty() ? "" : " (" + rule->why + ")"));
            for (const auto &h : have) {
                const bool ok = std::find(rule->required_names.begin(), rule->required_names.end(), h) != rule->required_names.end() ||
                                std::find(rule->optional_names.begin(), rule->optional_names.end(), h) != rule->optional_names.end();
                if (!ok) {
                    auto all = rule->required_names;
                    all.insert(all.end(), rule->optional_names.begin(), rule->optional_names.end());
                    fail(p.name + "." + key + "." + h, "unknown name (expected one of: " + detail::join(all) + ")");
                }
            }
            std::map<std::int64_t, std::string> seen;
            if (std::string(key) == "values")
                for (const auto &[n, v] : p.values) {
                    if (seen.count(v)) fail(p.name + ".values", "'" + seen[v] + "' and '" + n + "' are both " + std::to_string(v));
                    seen[v] = n;
                }
        };
        switch (rule->kind) {
        case role::number:
            if (has_bits || has_values) fail(p.name, "a measured value takes no 'bits' or 'values'");
            if (p.type == value_type::boolean) fail(p.name, "a measured value must be a register, not a coil or discrete input");
            break;
        case role::status_bits:
            if (has_values) fail(p.name, "a status word takes 'bits', not 'values'");
            if (p.type == value_type::boolean) fail(p.name, "a status word must be a register (use its bits)");
            check_names(names_of(p.bits), "bits");
            break;
        case role::enumeration:
            if (has_bits) fail(p.name, "an enumeration takes 'values', not 'bits'");
            check_names(names_of(p.values), "values");
            break;
        case role::command_register:
            if (p.where != table::holding) fail(p.name, std::string("the driver writes this point: it must be a holding register, not ") + table_name(p.where));
            if (has_bits) fail(p.name, "a command register takes 'values', not 'bits'");
            if (p.width() != 1) fail(p.name, "a command register is one register (u16 or s16)");
            check_names(names_of(p.values), "values");
            break;
        case role::command_coil:
            if (p.where != table::coil) fail(p.name, std::string("the driver switches this point on: it must be a coil, not ") + table_name(p.where));
            if (has_bits || has_values) fail(p.name, "a command coil takes no 'bits' or 'values'");
            break;
        }
    }
    for (const auto &r : schema)
        if (r.required && !m.find(r.name))
            fail("", "missing point '" + r.name + "'" + (r.why.empty() ? "" : " (" + r.why + ")"));
    // Two read points may not claim the same register or bit: one of them would be read wrongly.
    for (std::size_t i = 0; i < m.points.size(); ++i)
        for (std::size_t j = i + 1; j < m.points.size(); ++j) {
            const auto &a = m.points[i], &b = m.points[j];
            if (a.where != b.where) continue;
            if (a.address < b.address + b.width() && b.address < a.address + a.width())
                fail("", "points '" + a.name + "' and '" + b.name + "' overlap at " + table_name(a.where) + " address " +
                             std::to_string(std::max(a.address, b.address)));
        }
}

// Parses the `registers` table of a device's config. Every point is a table; unknown keys are errors.
inline register_map parse_register_map(const config &registers, const map_schema &schema, const std::string &where = "registers") {
    register_map m;
    for (const auto &name : registers.keys()) {
        const config pc = registers.section(name);
        const std::string label = "config key '" + where + "." + name + "'";
        pc.reject_unknown({"table", "address", "type", "scale", "unit", "bits", "values", "word_order"});
        register_point p;
        p.name = name;
        const auto t = detail::parse_table(pc.require<std::string>("table"));
        if (!t) throw config_error(label + ": table must be one of coil, discrete, holding, input");
        p.where = *t;
        p.address = pc.require<std::uint16_t>("address");
        const auto type = detail::parse_type(pc.get<std::string>("type", is_bit_table(p.where) ? "bool" : "u16"));
        if (!type) throw config_error(label + ": type must be one of bool, u16, s16, u32, s32");
        p.type = *type;
        p.scale = pc.get<double>("scale", 1.0);
        p.unit = pc.get<std::string>("unit", "");
        if (p.unit.size() > 16) throw config_error(label + ": unit is longer than 16 bytes");
        const auto order = pc.get<std::string>("word_order", "high_first");
        if (order != "high_first" && order != "low_first")
            throw config_error(label + ": word_order must be high_first or low_first");
        p.low_word_first = order == "low_first";
        if (pc.has("bits")) {
            const config bits = pc.section("bits");
            for (const auto &b : bits.keys()) p.bits[b] = bits.require<int>(b);
        }
        if (pc.has("values")) {
            const config values = pc.section("values");
            for (const auto &v : values.keys()) p.values[v] = values.require<std::int64_t>(v);
        }
        m.points.push_back(std::move(p));
    }
    check_register_map(m, schema, where);
    return m;
}

// ---- the poll plan and its snapshots -------------------------------------------------------------------------------

// One read request of the poll cycle, covering several points of one table.
struct poll_block {
    table where;
    std::uint16_t address;
    std::uint16_t count;
    proto::modbus::request request() const {
        using namespace proto::modbus;
        switch (where) {
        case table::coil: return read_bits(fc::read_coils, address, count);
        case table::discrete_input: return read_bits(fc::read_discrete_inputs, address, count);
        case table::holding: return read_registers(fc::read_holding_registers, address, count);
        case table::input: return read_registers(fc::read_input_registers, address, count);
        }
        return {};
    }
};

// Groups the points the driver reads into as few requests as fit: points of one table whose gap is at most
// `max_gap` registers merge, up to 125 registers (2000 bits) per request.
inline std::vector<poll_block> plan_polls(const register_map &m, const std::vector<std::string> &read_points,
                                          std::uint16_t max_gap = 16) {
    std::vector<const register_point *> ps;
    for (const auto &n : read_points)
        if (const auto *p = m.find(n)) ps.push_back(p);
    std::sort(ps.begin(), ps.end(), [](const register_point *a, const register_point *b) {
        return a->where != b->where ? a->where < b->where : a->address < b->address;
    });
    std::vector<poll_block> out;
    for (const auto *p : ps) {
        const std::uint32_t end = static_cast<std::uint32_t>(p->address) + p->width();
        const std::uint32_t limit = is_bit_table(p->where) ? proto::modbus::max_read_bits : proto::modbus::max_read_registers;
        if (!out.empty() && out.back().where == p->where &&
            p->address <= static_cast<std::uint32_t>(out.back().address) + out.back().count + max_gap &&
            end - out.back().address <= limit) {
            out.back().count = static_cast<std::uint16_t>(std::max<std::uint32_t>(out.back().address + out.back().count, end) - out.back().address);
        } else {
            out.push_back({p->where, p->address, static_cast<std::uint16_t>(p->width())});
        }
    }
    return out;
}

// The raw words (or bits) of one complete poll cycle, read back through the map's points.
class snapshot {
public:
    void store(const poll_block &b, const std::vector<std::uint16_t> &words) {
        for (std::uint16_t i = 0; i < b.count && i < words.size(); ++i) data_[{b.where, static_cast<std::uint16_t>(b.address + i)}] = words[i];
    }
    void store_bits(const poll_block &b, const std::vector<bool> &bits) {
        for (std::uint16_t i = 0; i < b.count && i < bits.size(); ++i) data_[{b.where, static_cast<std::uint16_t>(b.address + i)}] = bits[i];
    }

    // The raw value of a point (sign-extended for s16/s32), or nothing when it was not read.
    std::optional<std::int64_t> raw(const register_point *p) const {
        if (!p) return std::nullopt;
        auto w0 = word(p->where, p->address);
        if (!w0) return std::nullopt;
        switch (p->type) {
        case value_type::boolean:
        case value_type::u16: return *w0;
        case value_type::s16: return static_cast<std::int16_t>(*w0);
        case value_type::u32:
        case value_type::s32: {
            auto w1 = word(p->where, static_cast<std::uint16_t>(p->address + 1));
            if (!w1) return std::nullopt;
            const std::uint32_t v = p->low_word_first ? (static_cast<std::uint32_t>(*w1) << 16 | *w0)
                                                      : (static_cast<std::uint32_t>(*w0) << 16 | *w1);
            return p->type == value_type::u32 ? static_cast<std::int64_t>(v) : static_cast<std::int64_t>(static_cast<std::int32_t>(v));
        }
        }
        return std::nullopt;
    }
    std::optional<double> number(const register_point *p) const {
        auto r = raw(p);
        return r ? std::optional<double>(static_cast<double>(*r) * p->scale) : std::nullopt;
    }
    // A named bit of a status word; nothing when the point or the bit is not in the map.
    std::optional<bool> bit(const register_point *p, const std::string &name) const {
        if (!p) return std::nullopt;
        auto it = p->bits.find(name);
        auto r = raw(p);
        if (it == p->bits.end() || !r) return std::nullopt;
        return ((static_cast<std::uint64_t>(*r) >> it->second) & 1u) != 0;
    }
    // The name of an enumeration's current value, "unknown(<raw>)" for an unnamed one.
    std::optional<std::string> name_of(const register_point *p) const {
        auto r = raw(p);
        if (!r) return std::nullopt;
        for (const auto &[n, v] : p->values)
            if (v == *r) return n;
        return "unknown(" + std::to_string(*r) + ")";
    }

private:
    std::optional<std::uint16_t> word(table t, std::uint16_t a) const {
        auto it = data_.find({t, a});
        return it == data_.end() ? std::nullopt : std::optional<std::uint16_t>(it->second);
    }
    std::map<std::pair<table, std::uint16_t>, std::uint16_t> data_;
};

}  // namespace firelink::modbus_driver
