#include "batch.hpp"

#include <firelink/text.hpp>

#include <cmath>
#include <limits>

namespace firelink::receiver {

namespace {

constexpr std::uint64_t max_int64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

// Generous bounds: a 16 MiB body may hold many records, but never a billion-element container.
msgpack::unpack_limit wire_limit() { return {1u << 20, 1u << 20, 16u << 20, 16u << 20, 16u << 20, 64}; }

// The header of a map or array at data[off], read by hand so each element's own bytes can be kept.
std::uint32_t container_header(std::string_view data, std::size_t &off, bool map, const char *what) {
    const auto need = [&](std::size_t n) {
        if (data.size() - off < n) throw bad_batch(std::string("truncated ") + what);
    };
    need(1);
    const auto b = static_cast<std::uint8_t>(data[off]);
    const auto be = [&](std::size_t n) {
        need(1 + n);
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<std::uint8_t>(data[off + 1 + i]);
        off += 1 + n;
        return v;
    };
    if (map) {
        if ((b & 0xf0) == 0x80) return ++off, b & 0x0fu;
        if (b == 0xde) return be(2);
        if (b == 0xdf) return be(4);
    } else {
        if ((b & 0xf0) == 0x90) return ++off, b & 0x0fu;
        if (b == 0xdc) return be(2);
        if (b == 0xdd) return be(4);
    }
    throw bad_batch(std::string(what) + " is not a msgpack " + (map ? "map" : "array"));
}

msgpack::object_handle unpack_one(std::string_view data, std::size_t &off) {
    return msgpack::unpack(data.data(), data.size(), off, nullptr, nullptr, wire_limit());
}

std::string type_name(const msgpack::object &o) {
    switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "an int";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a float";
    case msgpack::type::STR: return "a str";
    case msgpack::type::BIN: return "a bin";
    case msgpack::type::ARRAY: return "an array";
    case msgpack::type::MAP: return "a map";
    default: return "an ext";
    }
}

const msgpack::object *find(const msgpack::object &map, std::string_view key) {
    for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
        const auto &kv = map.via.map.ptr[i];
        if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
            return &kv.val;
    }
    return nullptr;
}

std::string str_of(const msgpack::object &o) { return {o.via.str.ptr, o.via.str.size}; }

// A record's content problem: becomes a 422 reject of that record.
struct bad_record : std::runtime_error {
    using std::runtime_error::runtime_error;
};

const msgpack::object &need(const msgpack::object &map, std::string_view key, msgpack::type::object_type type,
                            std::string_view where) {
    const auto *v = find(map, key);
    if (!v) throw bad_record(std::string(where) + "'" + std::string(key) + "' is missing");
    const bool ok = v->type == type ||
                    (type == msgpack::type::NEGATIVE_INTEGER && v->type == msgpack::type::POSITIVE_INTEGER);
    if (!ok) throw bad_record(std::string(where) + "'" + std::string(key) + "' is " + type_name(*v));
    return *v;
}

std::string need_str(const msgpack::object &map, std::string_view key, std::string_view where = "",
                     std::size_t max = 256) {
    auto s = str_of(need(map, key, msgpack::type::STR, where));
    if (s.empty()) throw bad_record(std::string(where) + "'" + std::string(key) + "' is empty");
    if (s.size() > max)
        throw bad_record(std::string(where) + "'" + std::string(key) + "' is longer than " + std::to_string(max) +
                         " bytes");
    return s;
}

std::uint64_t need_uint(const msgpack::object &map, std::string_view key, std::string_view where = "") {
    const auto &v = need(map, key, msgpack::type::POSITIVE_INTEGER, where);
    if (v.via.u64 > max_int64)
        throw bad_record(std::string(where) + "'" + std::string(key) + "' is larger than 2^63-1");
    return v.via.u64;
}

std::optional<std::string> opt_str(const msgpack::object &map, std::string_view key) {
    const auto *v = find(map, key);
    if (!v) return std::nullopt;
    if (v->type != msgpack::type::STR) throw bad_record("event '" + std::string(key) + "' is " + type_name(*v));
    return str_of(*v);
}

std::string default_severity(std::string_view kind) {
    if (kind == "alarm") return "critical";
    if (kind == "pre_alarm" || kind == "fault" || kind == "offline") return "major";
    return "info";
}

bool is_epoch(std::string_view e) {
    if (e.size() != 32) return false;
    for (char c : e)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

void check_record(const msgpack::object &rec, record_row &row) {
    row.device = need_str(rec, "device");
    row.device_class = need_str(rec, "class");
    row.plugin = need_str(rec, "plugin");
    row.device_seq = need_uint(rec, "device_seq");
    row.origin = need_str(rec, "origin");

    const auto &received = need(rec, "received", msgpack::type::MAP, "");
    const auto &wall = need(received, "wall_ms", msgpack::type::NEGATIVE_INTEGER, "received.");
    if (wall.type == msgpack::type::POSITIVE_INTEGER && wall.via.u64 > max_int64)
        throw bad_record("received.'wall_ms' is larger than 2^63-1");
    row.wall_ms = wall.via.i64;
    row.monotonic_ns = need_uint(received, "monotonic_ns", "received.");
    row.boot_id = need_str(received, "boot_id", "received.");
    row.clock_synced = need(received, "clock_synced", msgpack::type::BOOLEAN, "received.").via.boolean;

    if (const auto *site = find(rec, "site")) {
        if (site->type != msgpack::type::MAP) throw bad_record("'site' is " + type_name(*site));
        for (std::uint32_t i = 0; i < site->via.map.size; ++i) {
            const auto &kv = site->via.map.ptr[i];
            if (kv.key.type != msgpack::type::STR) throw bad_record("'site' has a key that is " + type_name(kv.key));
            if (kv.val.type != msgpack::type::STR)
                throw bad_record("site '" + str_of(kv.key) + "' is " + type_name(kv.val));
        }
        row.site_json = firelink::text::dump_json(to_json(*site));
    }

    if (const auto *r = find(rec, "rereport")) {
        if (r->type != msgpack::type::BOOLEAN) throw bad_record("'rereport' is " + type_name(*r));
        row.rereport = r->via.boolean;
    }
    if (const auto *r = find(rec, "repeats")) {
        if (r->type != msgpack::type::MAP) throw bad_record("'repeats' is " + type_name(*r));
        record_row::key k{need_str(*r, "epoch", "repeats."), need_str(*r, "lane", "repeats."),
                          need_uint(*r, "seq", "repeats.")};
        if (!is_epoch(k.epoch)) throw bad_record("repeats.'epoch' is not 32 lowercase hex digits");
        if (!is_lane(k.lane)) throw bad_record("repeats.'lane' is not alarm, event or telemetry");
        if (k.seq == 0) throw bad_record("repeats.'seq' is 0");
        row.repeats = std::move(k);
    }

    const auto &event = need(rec, "event", msgpack::type::MAP, "");
    row.kind = need_str(event, "kind", "event ", 64);
    row.code = need_str(event, "code", "event ", 64);
    row.event_id = opt_str(event, "event_id");
    row.ends = opt_str(event, "ends");
    row.command_id = opt_str(event, "command_id");
    row.message = opt_str(event, "message");
    row.severity = opt_str(event, "severity").value_or(default_severity(row.kind));
    if (const auto *ok = find(event, "ok")) {
        if (ok->type != msgpack::type::BOOLEAN) throw bad_record("event 'ok' is " + type_name(*ok));
        row.ok = ok->via.boolean;
    }
    if (row.kind == "restore" && !row.ends) throw bad_record("a restore without 'ends'");
    if (row.kind == "command_result" && (!row.command_id || !row.ok))
        throw bad_record("a command_result without 'command_id' or 'ok'");
    row.event_json = firelink::text::dump_json(to_json(event));
}

std::string hex(const char *p, std::size_t n) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        const auto b = static_cast<std::uint8_t>(p[i]);
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

}  // namespace

bool is_lane(std::string_view lane) { return lane == "alarm" || lane == "event" || lane == "telemetry"; }

int lane_rank(std::string_view lane) { return lane == "alarm" ? 0 : lane == "event" ? 1 : 2; }

parsed_batch parse_batch(std::string_view body, std::string_view reject_device) {
    parsed_batch out;
    std::size_t off = 0;
    std::optional<std::uint64_t> protocol;
    bool have_events = false;
    struct pending {
        msgpack::object_handle handle;
        std::string_view raw;
    };
    std::vector<pending> records;
    try {
        const auto pairs = container_header(body, off, true, "the body");
        for (std::uint32_t i = 0; i < pairs; ++i) {
            const auto key_handle = unpack_one(body, off);
            const auto &key = key_handle.get();
            if (key.type != msgpack::type::STR) throw bad_batch("the body has a map key that is " + type_name(key));
            const auto name = str_of(key);
            if (name == "events") {
                const auto n = container_header(body, off, false, "'events'");
                for (std::uint32_t r = 0; r < n; ++r) {
                    const auto start = off;
                    auto h = unpack_one(body, off);
                    records.push_back({std::move(h), body.substr(start, off - start)});
                }
                have_events = true;
                continue;
            }
            const auto value_handle = unpack_one(body, off);
            const auto &v = value_handle.get();
            const auto want_str = [&](std::string &into) {
                if (v.type != msgpack::type::STR) throw bad_batch("'" + name + "' is " + type_name(v));
                into = str_of(v);
            };
            if (name == "protocol") {
                if (v.type != msgpack::type::POSITIVE_INTEGER) throw bad_batch("'protocol' is " + type_name(v));
                protocol = v.via.u64;
            } else if (name == "gateway") {
                want_str(out.gateway);
            } else if (name == "epoch") {
                want_str(out.epoch);
            } else if (name == "lane") {
                want_str(out.lane);
            }  // else: a key of a later version, ignored
        }
    } catch (const bad_batch &) {
        throw;
    } catch (const std::exception &e) {
        throw bad_batch(std::string("the body is not valid msgpack: ") + e.what());
    }
    if (off != body.size())
        throw bad_batch("the body has " + std::to_string(body.size() - off) + " bytes after its msgpack map");
    if (!protocol) throw bad_batch("'protocol' is missing");
    if (*protocol != 1) throw bad_batch("'protocol' is " + std::to_string(*protocol) + "; this receiver speaks 1");
    if (out.gateway.empty()) throw bad_batch("'gateway' is missing or empty");
    if (!is_epoch(out.epoch)) throw bad_batch("'epoch' is missing or not 32 lowercase hex digits");
    if (!is_lane(out.lane)) throw bad_batch("'lane' is missing or not alarm, event or telemetry");
    if (!have_events) throw bad_batch("'events' is missing");
    if (records.empty()) throw bad_batch("'events' is empty");

    for (auto &p : records) {
        const auto &rec = p.handle.get();
        if (rec.type != msgpack::type::MAP) throw bad_batch("a record is " + type_name(rec) + ", not a map");
        const auto *seq = find(rec, "seq");
        if (!seq || seq->type != msgpack::type::POSITIVE_INTEGER || seq->via.u64 == 0 || seq->via.u64 > max_int64)
            throw bad_batch("a record has no 'seq' from 1 to 2^63-1");
        if (seq->via.u64 <= out.last_seq)
            throw bad_batch("'events' are not in ascending seq (" + std::to_string(seq->via.u64) + " after " +
                            std::to_string(out.last_seq) + ")");
        out.last_seq = seq->via.u64;
        record_row row;
        row.seq = seq->via.u64;
        try {
            check_record(rec, row);
        } catch (const bad_record &e) {
            out.rejects.push_back({row.seq, 422, e.what()});
            continue;
        }
        if (!reject_device.empty() && row.device == reject_device) {
            out.rejects.push_back({row.seq, 422, "device '" + row.device + "' is refused (fault injection)"});
            continue;
        }
        row.raw = std::string(p.raw);
        out.records.push_back(std::move(row));
    }
    return out;
}

std::string encode_ack(const parsed_batch &batch) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(2);
    pk.pack(std::string_view("acked_through"));
    pk.pack_map(1);
    pk.pack(std::string_view(batch.lane));
    pk.pack(batch.last_seq);
    pk.pack(std::string_view("rejects"));
    pk.pack_array(static_cast<std::uint32_t>(batch.rejects.size()));
    for (const auto &r : batch.rejects) {
        pk.pack_map(3);
        pk.pack(std::string_view("seq"));
        pk.pack(r.seq);
        pk.pack(std::string_view("status"));
        pk.pack(r.status);
        pk.pack(std::string_view("reason"));
        pk.pack(std::string_view(r.reason));
    }
    return {buf.data(), buf.size()};
}

nlohmann::ordered_json to_json(const msgpack::object &o) {
    switch (o.type) {
    case msgpack::type::NIL: return nullptr;
    case msgpack::type::BOOLEAN: return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
        if (!std::isfinite(o.via.f64)) return nullptr;
        return o.via.f64;
    case msgpack::type::STR: return str_of(o);
    case msgpack::type::BIN: return hex(o.via.bin.ptr, o.via.bin.size);
    case msgpack::type::EXT: return hex(o.via.ext.ptr, o.via.ext.size);
    case msgpack::type::ARRAY: {
        auto a = nlohmann::ordered_json::array();
        for (std::uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_json(o.via.array.ptr[i]));
        return a;
    }
    case msgpack::type::MAP: {
        auto m = nlohmann::ordered_json::object();
        for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
            const auto &kv = o.via.map.ptr[i];
            const auto key = kv.key.type == msgpack::type::STR
                                 ? str_of(kv.key)
                                 : firelink::text::dump_json(to_json(kv.key));
            if (!m.contains(key)) m[key] = to_json(kv.val);  // a repeated key: the first one wins
        }
        return m;
    }
    }
    return nullptr;
}

void pack_json(msgpack::packer<msgpack::sbuffer> &pk, const nlohmann::json &j) {
    switch (j.type()) {
    case nlohmann::json::value_t::null: pk.pack_nil(); break;
    case nlohmann::json::value_t::boolean: j.get<bool>() ? pk.pack_true() : pk.pack_false(); break;
    case nlohmann::json::value_t::number_integer: pk.pack(j.get<std::int64_t>()); break;
    case nlohmann::json::value_t::number_unsigned: pk.pack(j.get<std::uint64_t>()); break;
    case nlohmann::json::value_t::number_float: pk.pack_double(j.get<double>()); break;
    case nlohmann::json::value_t::string: pk.pack(j.get_ref<const std::string &>()); break;
    case nlohmann::json::value_t::array:
        pk.pack_array(static_cast<std::uint32_t>(j.size()));
        for (const auto &e : j) pack_json(pk, e);
        break;
    case nlohmann::json::value_t::object:
        pk.pack_map(static_cast<std::uint32_t>(j.size()));
        for (const auto &[k, v] : j.items()) {
            pk.pack(k);
            pack_json(pk, v);
        }
        break;
    default: pk.pack_nil(); break;  // binary and discarded: never produced by our JSON parser
    }
}

}  // namespace firelink::receiver
