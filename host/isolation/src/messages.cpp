#include "firelink/isolation/messages.hpp"

#include <limits>

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

}  // namespace

runner_message decode_runner_message(const msgpack::object &m) {
    switch (type_of(m)) {
    case msg::hello: {
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
    case msg::refused: {
        fields f(m, "refused", 3);
        refused_msg r;
        r.reason = f.str("reason");
        r.detail = f.str("detail");
        return r;
    }
    case msg::reply: {
        fields f(m, "reply", 4);
        reply_msg r;
        r.call = f.u64("call");
        r.status = static_cast<fl_status>(f.i32("status"));
        r.text = f.str("text");
        return r;
    }
    case msg::log: {
        fields f(m, "log", 4);
        log_msg l;
        l.device = f.u64("device");
        l.level = f.i32("level");
        l.text = f.str("text");
        return l;
    }
    case msg::wire: {
        fields f(m, "wire", 5);
        wire_msg w;
        w.device = f.u64("device");
        const auto op = f.u64("op");
        if (op < static_cast<int>(wire_op::open) || op > static_cast<int>(wire_op::close)) f.fail("op", "is unknown");
        w.op = static_cast<wire_op>(op);
        w.bytes = f.bin("bytes");
        const auto t = f.u64("timeout_ms");
        if (t > std::numeric_limits<std::uint32_t>::max()) f.fail("timeout_ms", "is out of range");
        w.timeout_ms = static_cast<std::uint32_t>(t);
        return w;
    }
    case msg::pong: {
        fields f(m, "pong", 2);
        return pong_msg{f.u64("n")};
    }
    case msg::slow: {
        fields f(m, "slow", 4);
        slow_msg s;
        s.device = f.u64("device");
        s.what = f.str("what");
        s.ms = f.i64("ms");
        return s;
    }
    case msg::consumed: {
        fields f(m, "consumed", 3);
        consumed_msg c;
        c.device = f.u64("device");
        c.bytes = f.u64("bytes");
        return c;
    }
    default: break;
    }
    throw malformed("an unknown message type " + std::to_string(static_cast<int>(type_of(m))) + " from the runner");
}

host_message decode_host_message(const msgpack::object &m) {
    const auto type = type_of(m);
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
    case msg::command: {
        fields f(m, "command", 4);
        command_msg c;
        c.call = f.u64("call");
        c.device = f.u64("device");
        c.command = f.bin("command");
        return c;
    }
    case msg::identify: {
        fields f(m, "identify", 4);
        identify_msg i;
        i.call = f.u64("call");
        i.driver_id = f.str("driver_id");
        i.bytes = f.bin("bytes");
        return i;
    }
    case msg::data: {
        fields f(m, "data", 3);
        data_msg d;
        d.device = f.u64("device");
        d.bytes = f.bin("bytes");
        return d;
    }
    case msg::state: {
        fields f(m, "state", 4);
        state_msg s;
        s.device = f.u64("device");
        s.state = f.i32("state");
        s.reason = static_cast<fl_status>(f.i32("reason"));
        return s;
    }
    case msg::ping: {
        fields f(m, "ping", 2);
        return ping_msg{f.u64("n")};
    }
    case msg::admit: {
        fields f(m, "admit", 2);
        admit_msg a;
        a.busy_kinds = strings(f, f.array("kinds"), "kinds");
        return a;
    }
    case msg::room: {
        fields f(m, "room", 2);
        room_msg r;
        r.l = f.lane_field("lane");
        return r;
    }
    case msg::committed: {
        fields f(m, "committed", 3);
        committed_msg c;
        c.device = f.u64("device");
        c.through = f.u64("through");
        return c;
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
void encode(frame &f, const refused_msg &m) {
    head(f, msg::refused, 3);
    f.pack().pack(m.reason), f.pack().pack(m.detail);
}
void encode(frame &f, const reply_msg &m) {
    head(f, msg::reply, 4);
    f.pack().pack(m.call), f.pack().pack(static_cast<std::int32_t>(m.status)), f.pack().pack(m.text);
}
void encode(frame &f, const log_msg &m) {
    head(f, msg::log, 4);
    f.pack().pack(m.device), f.pack().pack(m.level), f.pack().pack(m.text);
}
void encode(frame &f, const wire_msg &m) {
    head(f, msg::wire, 5);
    f.pack().pack(m.device), f.pack().pack(static_cast<int>(m.op));
    bin(f.pack(), m.bytes);
    f.pack().pack(m.timeout_ms);
}
void encode(frame &f, const pong_msg &m) {
    head(f, msg::pong, 2);
    f.pack().pack(m.n);
}
void encode(frame &f, const slow_msg &m) {
    head(f, msg::slow, 4);
    f.pack().pack(m.device), f.pack().pack(m.what), f.pack().pack(m.ms);
}
void encode(frame &f, const consumed_msg &m) {
    head(f, msg::consumed, 3);
    f.pack().pack(m.device), f.pack().pack(m.bytes);
}
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
void encode(frame &f, const command_msg &m) {
    head(f, msg::command, 4);
    f.pack().pack(m.call), f.pack().pack(m.device);
    bin(f.pack(), m.command);
}
void encode(frame &f, const identify_msg &m) {
    head(f, msg::identify, 4);
    f.pack().pack(m.call), f.pack().pack(m.driver_id);
    bin(f.pack(), m.bytes);
}
void encode(frame &f, const data_msg &m) {
    head(f, msg::data, 3);
    f.pack().pack(m.device);
    bin(f.pack(), m.bytes);
}
void encode(frame &f, const state_msg &m) {
    head(f, msg::state, 4);
    f.pack().pack(m.device), f.pack().pack(m.state), f.pack().pack(static_cast<std::int32_t>(m.reason));
}
void encode(frame &f, const ping_msg &m) {
    head(f, msg::ping, 2);
    f.pack().pack(m.n);
}
void encode(frame &f, const admit_msg &m) {
    head(f, msg::admit, 2);
    f.pack().pack_array(static_cast<std::uint32_t>(m.busy_kinds.size()));
    for (auto k : m.busy_kinds) f.pack().pack(k);
}
void encode(frame &f, const room_msg &m) {
    head(f, msg::room, 2);
    f.pack().pack(static_cast<int>(m.l));
}
void encode(frame &f, const committed_msg &m) {
    head(f, msg::committed, 3);
    f.pack().pack(m.device), f.pack().pack(m.through);
}

}  // namespace firelink::isolation
