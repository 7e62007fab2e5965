// firelink vendor kit: build events and read configs and commands, in C++ (msgpack-c underneath).
//
//     firelink::event ev{firelink::event_kind::alarm, "arc_fault"};
//     ev.value("residual_current", 312, "mA").message("arc fault on line 2");
//     host().emit(ev);
//
//     firelink::config cfg{data, size};
//     auto period = cfg.get<std::int64_t>("period_ms", 1000);   // throws config_error naming the key when mistyped
//
// The event schema these produce is docs/events.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <msgpack.hpp>

namespace firelink {

// The version of the event schema (docs/events.md) this header writes.
inline constexpr int event_schema_version = 1;

enum class event_kind { alarm, pre_alarm, fault, restore, status, telemetry, offline, command_result, gap };

constexpr const char *to_string(event_kind kind) noexcept {
    switch (kind) {
    case event_kind::alarm: return "alarm";
    case event_kind::pre_alarm: return "pre_alarm";
    case event_kind::fault: return "fault";
    case event_kind::restore: return "restore";
    case event_kind::status: return "status";
    case event_kind::telemetry: return "telemetry";
    case event_kind::offline: return "offline";
    case event_kind::command_result: return "command_result";
    case event_kind::gap: return "gap";
    }
    return "status";
}

// X.733-style severities; an event without one gets its kind's default (docs/events.md).
enum class severity { critical, major, minor, warning, info };

constexpr const char *to_string(severity s) noexcept {
    switch (s) {
    case severity::critical: return "critical";
    case severity::major: return "major";
    case severity::minor: return "minor";
    case severity::warning: return "warning";
    case severity::info: return "info";
    }
    return "info";
}

// One measured point of an event: a name, a value and its unit ("mA", "%LEL", "degC", "V", "A").
struct point {
    std::string name;
    std::variant<double, std::int64_t, std::uint64_t, bool, std::string> value;
    std::string unit;
};

// A driver's event, packed to msgpack by pack(). Setters return *this so an event reads as one expression.
class event {
public:
    event(event_kind kind, std::string code) : kind_(kind), code_(std::move(code)) {}

    // A command's outcome: ok says whether the device really did it (read back), message says what was seen.
    static event command_result(std::string command_id, bool ok, std::string message = {}) {
        event ev{event_kind::command_result, ok ? "command_succeeded" : "command_failed"};
        ev.command_id_ = std::move(command_id);
        ev.ok_ = ok;
        if (!message.empty()) ev.message_ = std::move(message);
        return ev;
    }

    event &id(std::string event_id) { id_ = std::move(event_id); return *this; }
    event &ends(std::string event_id) { ends_ = std::move(event_id); return *this; }
    event &level(severity s) { severity_ = s; return *this; }
    event &message(std::string text) { message_ = std::move(text); return *this; }
    event &device_time_ms(std::int64_t unix_ms) { device_time_ms_ = unix_ms; return *this; }
    event &value(std::string name, double v, std::string unit = {}) {
        values_.push_back({std::move(name), v, std::move(unit)});
        return *this;
    }
    // Any integer type: signed ones are written as int64, unsigned ones as uint64.
    template <class I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
    event &value(std::string name, I v, std::string unit = {}) {
        if constexpr (std::is_signed_v<I>)
            values_.push_back({std::move(name), static_cast<std::int64_t>(v), std::move(unit)});
        else
            values_.push_back({std::move(name), static_cast<std::uint64_t>(v), std::move(unit)});
        return *this;
    }
    event &value(std::string name, bool v) {
        values_.push_back({std::move(name), v, {}});
        return *this;
    }
    event &value(std::string name, std::string v) {
        values_.push_back({std::move(name), std::move(v), {}});
        return *this;
    }
    // Without this overload a string literal would convert to bool and be packed as true.
    event &value(std::string name, const char *v) { return value(std::move(name), std::string(v ? v : "")); }

    event_kind kind() const noexcept { return kind_; }
    const std::string &code() const noexcept { return code_; }

    std::vector<std::uint8_t> pack() const {
        msgpack::sbuffer buf;
        msgpack::packer<msgpack::sbuffer> pk(buf);
        std::uint32_t n = 3 + (id_ ? 1 : 0) + (ends_ ? 1 : 0) + (severity_ ? 1 : 0) + (message_ ? 1 : 0) +
                          (device_time_ms_ ? 1 : 0) + (values_.empty() ? 0 : 1) + (command_id_ ? 2 : 0);
        pk.pack_map(n);
        pk.pack("schema"); pk.pack(event_schema_version);
        pk.pack("kind"); pk.pack(to_string(kind_));
        pk.pack("code"); pk.pack(code_);
        if (id_) { pk.pack("event_id"); pk.pack(*id_); }
        if (ends_) { pk.pack("ends"); pk.pack(*ends_); }
        if (severity_) { pk.pack("severity"); pk.pack(to_string(*severity_)); }
        if (message_) { pk.pack("message"); pk.pack(*message_); }
        if (device_time_ms_) { pk.pack("device_time"); pk.pack(*device_time_ms_); }
        if (command_id_) {
            pk.pack("command_id"); pk.pack(*command_id_);
            pk.pack("ok"); pk.pack(ok_);
        }
        if (!values_.empty()) {
            pk.pack("values");
            pk.pack_array(static_cast<std::uint32_t>(values_.size()));
            for (const auto &p : values_) {
                pk.pack_map(p.unit.empty() ? 2 : 3);
                pk.pack("name"); pk.pack(p.name);
                pk.pack("value");
                std::visit([&](const auto &v) { pk.pack(v); }, p.value);
                if (!p.unit.empty()) { pk.pack("unit"); pk.pack(p.unit); }
            }
        }
        return {reinterpret_cast<const std::uint8_t *>(buf.data()),
                reinterpret_cast<const std::uint8_t *>(buf.data()) + buf.size()};
    }

private:
    event_kind kind_;
    std::string code_;
    std::optional<std::string> id_, ends_, message_, command_id_;
    std::optional<severity> severity_;
    std::optional<std::int64_t> device_time_ms_;
    std::vector<point> values_;
    bool ok_ = false;
};

// A config or command argument the driver refuses: what names the key and says what was expected.
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Read-only view of a msgpack map (a device's driver config, or a command's args). Owns a copy of the bytes.
class config {
public:
    config() = default;

    // Parses `size` bytes; an empty input is an empty map. Throws config_error when the bytes are not one map.
    config(const std::uint8_t *data, std::size_t size) {
        if (data == nullptr || size == 0) return;
        try {
            std::size_t offset = 0;
            // No container, string, bin or ext in `size` bytes can claim more than `size` items or bytes: the limit
            // refuses such claims before msgpack-c allocates for them (5 hostile bytes would otherwise ask for >100 GiB).
            const msgpack::unpack_limit limit(size, size, size, size, size);
            handle_ = std::make_shared<msgpack::object_handle>(
                msgpack::unpack(reinterpret_cast<const char *>(data), size, offset, nullptr, nullptr, limit));
            if (offset != size) throw config_error("config: trailing bytes after the map");
        } catch (const config_error &) {
            throw;
        } catch (const std::exception &e) {
            throw config_error(std::string("config: not valid msgpack (") + e.what() + ")");
        }
        if (handle_->get().type != msgpack::type::MAP) throw config_error("config: expected a map at the top level");
        root_ = handle_->get();
    }

    // A view of a nested map at dotted `path` ("modbus.registers"), sharing the bytes of its parent.
    config(const msgpack::object &map, std::shared_ptr<msgpack::object_handle> keep, std::string path)
        : handle_(std::move(keep)), root_(map), path_(std::move(path)) {
        if (root_.type != msgpack::type::MAP) throw config_error("config key '" + path_ + "': expected a map");
    }

    bool has(std::string_view key) const { return find(key) != nullptr; }

    // The value under `key`, or nullptr.
    const msgpack::object *find(std::string_view key) const {
        if (root_.type != msgpack::type::MAP) return nullptr;
        for (std::uint32_t i = 0; i < root_.via.map.size; ++i) {
            const auto &kv = root_.via.map.ptr[i];
            if (kv.key.type == msgpack::type::STR &&
                std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
                return &kv.val;
        }
        return nullptr;
    }

    std::vector<std::string> keys() const {
        std::vector<std::string> out;
        if (root_.type != msgpack::type::MAP) return out;
        for (std::uint32_t i = 0; i < root_.via.map.size; ++i) {
            const auto &k = root_.via.map.ptr[i].key;
            out.push_back(k.type == msgpack::type::STR ? std::string(k.via.str.ptr, k.via.str.size) : "<non-string>");
        }
        return out;
    }

    // Throws config_error naming the first key that is not in `known`: unknown keys are errors, not ignored.
    void reject_unknown(std::initializer_list<std::string_view> known) const {
        for (const auto &k : keys()) {
            bool ok = false;
            for (auto n : known) ok = ok || n == k;
            if (!ok) throw config_error(label(k) + ": unknown key");
        }
    }

    // The value under `key` converted to T, or `fallback` when absent. Throws config_error when present but of the
    // wrong type or out of T's range. T: bool, an integer type, double, std::string.
    template <class T>
    T get(std::string_view key, T fallback) const {
        const auto *o = find(key);
        return o ? convert<T>(*o, key) : fallback;
    }

    // Like get, but the key must be present.
    template <class T>
    T require(std::string_view key) const {
        const auto *o = find(key);
        if (!o) throw config_error(label(key) + ": missing (expected " + type_name<T>() + ")");
        return convert<T>(*o, key);
    }

    // A nested map.
    config section(std::string_view key) const {
        const auto *o = find(key);
        if (!o) return config{};
        return config(*o, handle_, path_.empty() ? std::string(key) : path_ + "." + std::string(key));
    }

private:
    std::string label(std::string_view key) const {
        return "config key '" + (path_.empty() ? std::string(key) : path_ + "." + std::string(key)) + "'";
    }

    template <class T>
    static std::string type_name() {
        if constexpr (std::is_same_v<T, bool>) return "a boolean";
        else if constexpr (std::is_integral_v<T>) return "an integer";
        else if constexpr (std::is_floating_point_v<T>) return "a number";
        else return "a string";
    }

    static const char *msgpack_type_name(const msgpack::object &o) {
        switch (o.type) {
        case msgpack::type::NIL: return "nil";
        case msgpack::type::BOOLEAN: return "a boolean";
        case msgpack::type::POSITIVE_INTEGER:
        case msgpack::type::NEGATIVE_INTEGER: return "an integer";
        case msgpack::type::FLOAT32:
        case msgpack::type::FLOAT64: return "a number";
        case msgpack::type::STR: return "a string";
        case msgpack::type::ARRAY: return "an array";
        case msgpack::type::MAP: return "a map";
        default: return "binary data";
        }
    }

    template <class T>
    T convert(const msgpack::object &o, std::string_view key) const {
        auto wrong = [&] {
            return config_error(label(key) + ": expected " + type_name<T>() + ", got " + msgpack_type_name(o));
        };
        if constexpr (std::is_same_v<T, bool>) {
            if (o.type != msgpack::type::BOOLEAN) throw wrong();
            return o.via.boolean;
        } else if constexpr (std::is_integral_v<T>) {
            if (o.type == msgpack::type::POSITIVE_INTEGER) {
                if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
                    throw config_error(label(key) + ": " + std::to_string(o.via.u64) + " is out of range");
                return static_cast<T>(o.via.u64);
            }
            if (o.type == msgpack::type::NEGATIVE_INTEGER) {
                if constexpr (std::is_unsigned_v<T>) {
                    throw config_error(label(key) + ": " + std::to_string(o.via.i64) + " must not be negative");
                } else {
                    if (o.via.i64 < static_cast<std::int64_t>(std::numeric_limits<T>::min()))
                        throw config_error(label(key) + ": " + std::to_string(o.via.i64) + " is out of range");
                    return static_cast<T>(o.via.i64);
                }
            }
            throw wrong();
        } else if constexpr (std::is_floating_point_v<T>) {
            if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) return static_cast<T>(o.via.f64);
            if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<T>(o.via.u64);
            if (o.type == msgpack::type::NEGATIVE_INTEGER) return static_cast<T>(o.via.i64);
            throw wrong();
        } else {
            static_assert(std::is_same_v<T, std::string>, "config::get supports bool, integers, double, std::string");
            if (o.type != msgpack::type::STR) throw wrong();
            return std::string(o.via.str.ptr, o.via.str.size);
        }
    }

    std::shared_ptr<msgpack::object_handle> handle_;
    msgpack::object root_{};
    std::string path_;
};

// A command handed to a device: {"id": str, "name": str, "args": map} (docs/events.md).
class command {
public:
    // Throws config_error when the bytes are not a well-formed command.
    command(const std::uint8_t *data, std::size_t size) : whole_(data, size) {
        id_ = whole_.require<std::string>("id");
        name_ = whole_.require<std::string>("name");
        args_ = whole_.section("args");
    }

    const std::string &id() const noexcept { return id_; }
    const std::string &name() const noexcept { return name_; }
    const config &args() const noexcept { return args_; }

private:
    config whole_;
    std::string id_, name_;
    config args_;
};

}  // namespace firelink
