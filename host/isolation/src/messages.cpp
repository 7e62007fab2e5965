#include "firelink/isolation/messages.hpp"

#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>

#include "firelink/isolation/plugin_info_codec.hpp"

namespace firelink::isolation {

namespace {

// Reads one message's fields in order, each checked for its type; names the message and the field in every error.
class fields {
public:
    fields(const msgpack::object &m, const char *name, std::uint32_t arity) : name_(name) {
        a_ = m.via.array.ptr;
        if (m.via.array.size != arity)
            fail("has " + std::to_string(m.via.array.size) + " fields, expected " + std::to_string(arity));
        next_ = 1;  // after the type
    }
    // For messages that grew: at least `min` fields.
    fields(const msgpack::object &m, const char *name, std::uint32_t min, std::uint32_t max) : name_(name) {
        a_ = m.via.array.ptr;
        if (m.via.array.size < min || m.via.array.size > max)
            fail("has " + std::to_string(m.via.array.size) + " fields, expected " + std::to_string(min) + " to " +
                 std::to_string(max));
        size_ = m.via.array.size;
        next_ = 1;
    }
    bool more() const { return next_ < size_; }

    std::uint64_t u64(const char *field) {
        const auto &o = take();
        if (o.type != msgpack::type::POSITIVE_INTEGER) fail(field, "is not a non-negative integer");
        return o.via.u64;
    }
    std::int64_t i64(const char *field) {
        const auto &o = take();
        if (o.type == msgpack::type::POSITIVE_INTEGER) {
            if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                fail(field, "is out of range");
            return static_cast<std::int64_t>(o.via.u64);
        }
        if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
        fail(field, "is not an integer");
    }
    std::int32_t i32(const char *field) {
        const auto v = i64(field);
        if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
            fail(field, "is out of range");
        return static_cast<std::int32_t>(v);
    }
    bool boolean(const char *field) {
        const auto &o = take();
        if (o.type != msgpack::type::BOOLEAN) fail(field, "is not a boolean");
        return o.via.boolean;
    }
    std::string_view str(const char *field) {
        const auto &o = take();
        if (o.type != msgpack::type::STR) fail(field, "is not a string");
        return {o.via.str.ptr, o.via.str.size};
    }
    std::string_view bin(const char *field) {
        const auto &o = take();
        if (o.type != msgpack::type::BIN) fail(field, "is not bytes");
        return {o.via.bin.ptr, o.via.bin.size};
    }
    const msgpack::object &array(const char *field) {
        const auto &o = take();
        if (o.type != msgpack::type::ARRAY) fail(field, "is not an array");
        return o;
    }
    const msgpack::object &any() { return take(); }
    lane lane_field(const char *field) {
        const auto v = u64(field);
        if (v >= lane_count) fail(field, "is not a lane");
        return static_cast<lane>(v);
    }

    [[noreturn]] void fail(const std::string &what) const { throw malformed(std::string(name_) + " " + what); }
    [[noreturn]] void fail(const char *field, const char *what) const {
        throw malformed(std::string(name_) + ": " + field + " " + what);
    }

private:
    const msgpack::object &take() { return a_[next_++]; }
    const char *name_;
    const msgpack::object *a_ = nullptr;
    std::uint32_t next_ = 1;
    std::uint32_t size_ = 0;
};

msg type_of(const msgpack::object &m) {
    if (m.type != msgpack::type::ARRAY || m.via.array.size == 0 ||
        m.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER || m.via.array.ptr[0].via.u64 > 255)
        throw malformed("a message that is not [type, ...]");
    return static_cast<msg>(m.via.array.ptr[0].via.u64);
}

std::vector<std::string_view> strings(fields &f, const msgpack::object &arr, const char *field) {
    std::vector<std::string_view> out;
    out.reserve(arr.via.array.size);
    for (std::uint32_t i = 0; i < arr.via.array.size; ++i) {
        const auto &o = arr.via.array.ptr[i];
        if (o.type != msgpack::type::STR) f.fail(field, "holds something that is not a string");
        out.emplace_back(o.via.str.ptr, o.via.str.size);
    }
    return out;
}

using packer = msgpack::packer<msgpack::sbuffer>;
void head(frame &f, msg type, std::uint32_t arity) {
    f.pack().pack_array(arity);
    f.pack().pack(static_cast<int>(type));
}
void bin(packer pk, std::string_view b) {
    pk.pack_bin(static_cast<std::uint32_t>(b.size()));
    pk.pack_bin_body(b.data(), static_cast<std::uint32_t>(b.size()));
}

// ---- layouts: a message that is a flat list of fields is described once, and both its encoder and its decoder
// walk that description, so the two sides cannot disagree on a field's order, type or name. ------------------------

// A field read and written as its member's type: integers, strings (msgpack STR), booleans, lanes, wire ops.
template <class M, class T>
struct member {
    const char *name;
    T M::*of;
};
// A field carried as bytes (msgpack BIN), not as a string.
template <class M>
struct bytes {
    const char *name;
    std::string_view M::*of;
};
template <class M, class T>
member(const char *, T M::*) -> member<M, T>;
template <class M>
bytes(const char *, std::string_view M::*) -> bytes<M>;

template <class M, class... F>
struct layout {
    msg type;
    const char *name;
    std::tuple<F...> fields;
    static constexpr std::uint32_t arity = 1 + sizeof...(F);  // the type, then the fields
};
template <class M, class... F>
constexpr layout<M, F...> describe(msg type, const char *name, F... fields) {
    return {type, name, {fields...}};
}

void read(fields &f, const char *name, std::uint64_t &v) { v = f.u64(name); }
void read(fields &f, const char *name, std::int64_t &v) { v = f.i64(name); }
void read(fields &f, const char *name, std::int32_t &v) { v = f.i32(name); }  // also fl_status
void read(fields &f, const char *name, bool &v) { v = f.boolean(name); }
void read(fields &f, const char *name, std::string_view &v) { v = f.str(name); }
void read(fields &f, const char *name, lane &v) { v = f.lane_field(name); }
void read(fields &f, const char *name, std::uint32_t &v) {
    const auto u = f.u64(name);
    if (u > std::numeric_limits<std::uint32_t>::max()) f.fail(name, "is out of range");
    v = static_cast<std::uint32_t>(u);
}
void read(fields &f, const char *name, wire_op &v) {
    const auto u = f.u64(name);
    if (u < static_cast<int>(wire_op::open) || u > static_cast<int>(wire_op::close)) f.fail(name, "is unknown");
    v = static_cast<wire_op>(u);
}
template <class M, class T>
void read(fields &f, const member<M, T> &field, M &m) {
    read(f, field.name, m.*field.of);
}
template <class M>
void read(fields &f, const bytes<M> &field, M &m) {
    m.*field.of = f.bin(field.name);
}

template <class T>
void write(frame &f, const T &v) {
    if constexpr (std::is_enum_v<T>)
        f.pack().pack(static_cast<int>(v));
    else
        f.pack().pack(v);
}
template <class M, class T>
void write(frame &f, const member<M, T> &field, const M &m) {
    write(f, m.*field.of);
}
template <class M>
void write(frame &f, const bytes<M> &field, const M &m) {
    bin(f.pack(), m.*field.of);
}

template <class M, class... F>
M decode_as(const msgpack::object &m, const layout<M, F...> &l) {
    fields f(m, l.name, l.arity);
    M out;
    std::apply([&](const auto &...field) { (read(f, field, out), ...); }, l.fields);
    return out;
}
template <class M, class... F>
void encode_as(frame &f, const M &m, const layout<M, F...> &l) {
    head(f, l.type, l.arity);
    std::apply([&](const auto &...field) { (write(f, field, m), ...); }, l.fields);
}

constexpr auto refused_layout = describe<refused_msg>(msg::refused, "refused", member{"reason", &refused_msg::reason},
                                                      member{"detail", &refused_msg::detail});
constexpr auto reply_layout =
    describe<reply_msg>(msg::reply, "reply", member{"call", &reply_msg::call}, member{"status", &reply_msg::status},
                        member{"text", &reply_msg::text});
constexpr auto log_layout = describe<log_msg>(msg::log, "log", member{"device", &log_msg::device},
                                              member{"level", &log_msg::level}, member{"text", &log_msg::text});
constexpr auto wire_layout = describe<wire_msg>(msg::wire, "wire", member{"device", &wire_msg::device},
                                                member{"op", &wire_msg::op}, bytes{"bytes", &wire_msg::bytes},
                                                member{"timeout_ms", &wire_msg::timeout_ms});
constexpr auto pong_layout = describe<pong_msg>(msg::pong, "pong", member{"n", &pong_msg::n});
constexpr auto slow_layout = describe<slow_msg>(msg::slow, "slow", member{"device", &slow_msg::device},
                                                member{"what", &slow_msg::what}, member{"ms", &slow_msg::ms});
constexpr auto consumed_layout = describe<consumed_msg>(msg::consumed, "consumed",
                                                        member{"device", &consumed_msg::device},
                                                        member{"bytes", &consumed_msg::bytes});
constexpr auto command_layout =
    describe<command_msg>(msg::command, "command", member{"call", &command_msg::call},
                          member{"device", &command_msg::device}, bytes{"command", &command_msg::command});
constexpr auto identify_layout =
    describe<identify_msg>(msg::identify, "identify", member{"call", &identify_msg::call},
                           member{"driver_id", &identify_msg::driver_id}, bytes{"bytes", &identify_msg::bytes});
constexpr auto data_layout =
    describe<data_msg>(msg::data, "data", member{"device", &data_msg::device}, bytes{"bytes", &data_msg::bytes});
constexpr auto state_layout = describe<state_msg>(msg::state, "state", member{"device", &state_msg::device},
                                                  member{"state", &state_msg::state},
                                                  member{"reason", &state_msg::reason});
constexpr auto ping_layout = describe<ping_msg>(msg::ping, "ping", member{"n", &ping_msg::n});
constexpr auto room_layout = describe<room_msg>(msg::room, "room", member{"lane", &room_msg::l});
constexpr auto committed_layout = describe<committed_msg>(msg::committed, "committed",
                                                          member{"device", &committed_msg::device},
                                                          member{"through", &committed_msg::through});

// The flat messages of each direction; the decoders handle the others by hand.
constexpr auto flat_runner_messages =
    std::tuple{refused_layout, reply_layout, log_layout, wire_layout, pong_layout, slow_layout, consumed_layout};
constexpr auto flat_host_messages =
    std::tuple{command_layout, identify_layout, data_layout, state_layout, ping_layout, room_layout, committed_layout};

// The message of that type decoded by its layout, or nothing when none of `layouts` is of that type.
template <class Message, class Layouts>
std::optional<Message> decode_flat(const msgpack::object &m, msg type, const Layouts &layouts) {
    std::optional<Message> out;
    std::apply([&](const auto &...l) { ((l.type == type && (out = decode_as(m, l), true)) || ...); }, layouts);
    return out;
}

}  // namespace

runner_message decode_runner_message(const msgpack::object &m) {
    const auto type = type_of(m);
    if (auto flat = decode_flat<runner_message>(m, type, flat_runner_messages)) return std::move(*flat);
    if (type == msg::hello) {
        fields f(m, "hello", 3);
        hello_msg h;
        try {
            h.info = unpack_plugin_info(f.any());
        } catch (const malformed &) {
            throw;
        } catch (const std::exception &e) {
            throw malformed(std::string("hello: ") + e.what());
        }
        h.can_identify = f.boolean("can_identify");
        return h;
    }
    throw malformed("an unknown message type " + std::to_string(static_cast<int>(type)) + " from the runner");
}

host_message decode_host_message(const msgpack::object &m) {
    const auto type = type_of(m);
    if (auto flat = decode_flat<host_message>(m, type, flat_host_messages)) return std::move(*flat);
    switch (type) {
    case msg::create: {
        fields f(m, "create", 9);
        create_msg c;
        c.call = f.u64("call");
        c.device = f.u64("device");
        c.driver_id = f.str("driver_id");
        c.device_id = f.str("device_id");
        c.config = f.bin("config");
        c.wire_kind = f.i32("wire_kind");
        c.unit = f.i32("unit");
        const auto &conds = f.array("conditions");
        for (std::uint32_t i = 0; i < conds.via.array.size; ++i) {
            const auto &o = conds.via.array.ptr[i];
            if (o.type != msgpack::type::ARRAY) f.fail("conditions", "holds something that is not an array");
            // [event_id, kind, code, event, raised_wall_ms]: no type first, so read by position; `cf` checks arity.
            fields cf(o, "create: a condition", 5);
            condition_msg cm;
            const auto *p = o.via.array.ptr;
            auto s = [&](const msgpack::object &x, const char *what) -> std::string_view {
                if (x.type != msgpack::type::STR) cf.fail(what, "is not a string");
                return {x.via.str.ptr, x.via.str.size};
            };
            cm.event_id = s(p[0], "event_id");
            cm.kind = s(p[1], "kind");
            cm.code = s(p[2], "code");
            if (p[3].type != msgpack::type::BIN) cf.fail("event", "is not bytes");
            cm.event = {p[3].via.bin.ptr, p[3].via.bin.size};
            if (p[4].type == msgpack::type::POSITIVE_INTEGER)
                cm.raised_wall_ms = static_cast<std::int64_t>(p[4].via.u64);
            else if (p[4].type == msgpack::type::NEGATIVE_INTEGER)
                cm.raised_wall_ms = p[4].via.i64;
            else
                cf.fail("raised_wall_ms", "is not an integer");
            c.conditions.push_back(cm);
        }
        return c;
    }
    case msg::start:
    case msg::stop:
    case msg::destroy: {
        fields f(m, type == msg::start ? "start" : type == msg::stop ? "stop" : "destroy", 3);
        lifecycle_msg l;
        l.type = type;
        l.call = f.u64("call");
        l.device = f.u64("device");
        return l;
    }
    case msg::admit: {
        fields f(m, "admit", 2);
        admit_msg a;
        a.busy_kinds = strings(f, f.array("kinds"), "kinds");
        return a;
    }
    default: break;
    }
    throw malformed("an unknown message type " + std::to_string(static_cast<int>(type)) + " from the host");
}

// ---- encoders ---------------------------------------------------------------------------------------------------

void encode(frame &f, const hello_msg &m) {
    head(f, msg::hello, 3);
    auto pk = f.pack();
    pack_plugin_info(pk, m.info);
    f.pack().pack(m.can_identify);
}
void encode(frame &f, const refused_msg &m) { encode_as(f, m, refused_layout); }
void encode(frame &f, const reply_msg &m) { encode_as(f, m, reply_layout); }
void encode(frame &f, const log_msg &m) { encode_as(f, m, log_layout); }
void encode(frame &f, const wire_msg &m) { encode_as(f, m, wire_layout); }
void encode(frame &f, const pong_msg &m) { encode_as(f, m, pong_layout); }
void encode(frame &f, const slow_msg &m) { encode_as(f, m, slow_layout); }
void encode(frame &f, const consumed_msg &m) { encode_as(f, m, consumed_layout); }
void encode(frame &f, const create_msg &m) {
    head(f, msg::create, 9);
    f.pack().pack(m.call), f.pack().pack(m.device), f.pack().pack(m.driver_id), f.pack().pack(m.device_id);
    bin(f.pack(), m.config);
    f.pack().pack(m.wire_kind), f.pack().pack(m.unit);
    f.pack().pack_array(static_cast<std::uint32_t>(m.conditions.size()));
    for (const auto &c : m.conditions) {
        f.pack().pack_array(5);
        f.pack().pack(c.event_id), f.pack().pack(c.kind), f.pack().pack(c.code);
        bin(f.pack(), c.event);
        f.pack().pack(c.raised_wall_ms);
    }
}
void encode(frame &f, const lifecycle_msg &m) {
    head(f, m.type, 3);
    f.pack().pack(m.call), f.pack().pack(m.device);
}
void encode(frame &f, const command_msg &m) { encode_as(f, m, command_layout); }
void encode(frame &f, const identify_msg &m) { encode_as(f, m, identify_layout); }
void encode(frame &f, const data_msg &m) { encode_as(f, m, data_layout); }
void encode(frame &f, const state_msg &m) { encode_as(f, m, state_layout); }
void encode(frame &f, const ping_msg &m) { encode_as(f, m, ping_layout); }
void encode(frame &f, const admit_msg &m) {
    head(f, msg::admit, 2);
    f.pack().pack_array(static_cast<std::uint32_t>(m.busy_kinds.size()));
    for (auto k : m.busy_kinds) f.pack().pack(k);
}
void encode(frame &f, const room_msg &m) { encode_as(f, m, room_layout); }
void encode(frame &f, const committed_msg &m) { encode_as(f, m, committed_layout); }

}  // namespace firelink::isolation
