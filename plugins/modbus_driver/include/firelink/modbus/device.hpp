// The part every Modbus driver shares: settings, the register map, the poll loop on the host's wire, reply framing
// (RTU on serial and RS-485, MBAP on TCP), bad-reply accounting, commands confirmed by read-back, telemetry, and an
// event queue that survives FL_BUSY. A driver subclasses modbus_device and writes on_snapshot() and on_command().
//
// The poll cycle: on every poll tick (and right after the link opens or a command's writes), one request per poll
// block, one at a time (on a shared bus each is a turn: request, reply, end_request). A cycle whose every block
// answered is a snapshot, handed to on_snapshot(). Pending command writes go first in a cycle.
//
// Failures, and who reports them:
//   - no reply (the reply timeout): counted, the cycle is abandoned, NO event: a silent device is the host's to
//     report (offline), and an event from the driver would count as traffic and hide the silence;
//   - a bad reply (CRC, wrong unit or function, a length that cannot be, an exception, a reply that does not match
//     the request): counted and logged; after `bad_replies_for_fault` consecutive bad replies the driver raises
//     `communication_fault` (bytes arrive, so the host would never see it), and the next good cycle restores it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <firelink/driver.hpp>
#include <firelink/proto/modbus.hpp>

#include <firelink/modbus/condition.hpp>
#include <firelink/modbus/register_map.hpp>

namespace firelink::modbus_driver {

namespace mb = firelink::proto::modbus;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct common_settings {
    milliseconds poll{1000};
    milliseconds reply_timeout{0};  // 0: the wire's default (the bus's request_timeout_ms)
    milliseconds telemetry{60000};  // 0: no telemetry
    milliseconds command_timeout{5000};
    unsigned debounce = 2;
    unsigned bad_replies_for_fault = 3;
    std::string framing = "auto";  // auto (RTU on serial/RS-485, MBAP on TCP), rtu, tcp
};

// The config keys every Modbus driver takes (docs/drivers/modbus.md, "Common settings").
inline const std::vector<std::string> common_keys = {"poll_ms",  "reply_timeout_ms",      "telemetry_ms", "command_timeout_ms",
                                                     "debounce", "bad_replies_for_fault", "framing",      "registers"};

// How a command stands after a snapshot.
struct verdict {
    enum state { waiting, confirmed, refused } state = waiting;
    std::string message;  // what was read back
};
using verifier = std::function<verdict(const snapshot &)>;

class modbus_device : public device {
public:
    modbus_device(host_handle h, const config &cfg, const map_schema &schema, const register_map &reference,
                  const std::vector<std::string> &class_keys)
        : device(h) {
        std::vector<std::string> known = common_keys;
        known.insert(known.end(), class_keys.begin(), class_keys.end());
        for (const auto &k : cfg.keys()) {
            if (std::find(known.begin(), known.end(), k) == known.end()) {
                std::string list;
                for (const auto &n : known) list += (list.empty() ? "" : ", ") + n;
                throw config_error("config key '" + k + "': unknown key (expected one of: " + list + ")");
            }
        }
        auto ms = [&](const char *key, milliseconds def, std::int64_t lo, std::int64_t hi) {
            const auto v = cfg.get<std::int64_t>(key, def.count());
            if (v < lo || v > hi)
                throw config_error(std::string("config key '") + key + "': " + std::to_string(v) + " is outside " +
                                   std::to_string(lo) + ".." + std::to_string(hi));
            return milliseconds(v);
        };
        s_.poll = ms("poll_ms", s_.poll, 10, 3'600'000);
        s_.reply_timeout = ms("reply_timeout_ms", s_.reply_timeout, 0, 60'000);
        s_.telemetry = ms("telemetry_ms", s_.telemetry, 0, 86'400'000);
        s_.command_timeout = ms("command_timeout_ms", s_.command_timeout, 100, 600'000);
        s_.debounce = cfg.get<unsigned>("debounce", s_.debounce);
        if (s_.debounce < 1 || s_.debounce > 100) throw config_error("config key 'debounce': must be 1..100 samples");
        s_.bad_replies_for_fault = cfg.get<unsigned>("bad_replies_for_fault", s_.bad_replies_for_fault);
        if (s_.bad_replies_for_fault < 1) throw config_error("config key 'bad_replies_for_fault': must be at least 1");
        s_.framing = cfg.get<std::string>("framing", s_.framing);
        if (s_.framing != "auto" && s_.framing != "rtu" && s_.framing != "tcp")
            throw config_error("config key 'framing': expected auto, rtu or tcp, got '" + s_.framing + "'");
        if (cfg.has("registers")) {
            map_ = parse_register_map(cfg.section("registers"), schema);
        } else {
            map_ = reference;
            check_register_map(map_, schema, "registers (the reference map)");
        }
        if (map_.find("self_test") && !map_.find("self_test_state"))
            throw config_error("config key 'registers': 'self_test' needs 'self_test_state' to confirm the self-test");
        std::vector<std::string> reads;
        for (const auto &r : schema)
            if (r.kind != role::command_register && r.kind != role::command_coil) reads.push_back(r.name);
        for (const auto &r : schema)
            if (r.kind == role::number) numbers_.push_back(r.name);
        blocks_ = plan_polls(map_, reads);
        if (blocks_.empty()) throw config_error("config key 'registers': no point to poll");
    }

    void start() override {
        ++starts_;  // conditions still active from before are reported again (FL-PLUGIN-29)
        std::int32_t unit = -1;
        if (const auto *t = host().extension<fl_host_transport>(FL_EXT_TRANSPORT); t && FL_HAS_FIELD(t, fl_host_transport, unit) && t->unit)
            unit = t->unit(host().raw());
        unit_ = static_cast<std::uint8_t>(unit >= 0 && unit <= 255 ? unit : 1);
        const int kind = host().transport_kind();
        tcp_ = s_.framing == "tcp" || (s_.framing == "auto" && (kind == FL_TRANSPORT_TCP_CLIENT || kind == FL_TRANSPORT_TCP_ACCEPTED));
        const auto poll = host().start_timer(s_.poll);
        if (!poll) throw std::runtime_error("the host gave no timer");
        poll_timer_ = *poll;
        if (const fl_status st = host().open_wire(); st != FL_OK)
            throw std::runtime_error("cannot open the wire (status " + std::to_string(st) + ")");
    }

    void on_link(int state, fl_status) override {
        switch (state) {
        case FL_LINK_OPEN:
            link_open_ = true;
            in_flight_ = false;
            start_cycle();
            break;
        case FL_LINK_REPLY_TIMEOUT:
            if (!in_flight_) break;
            in_flight_ = false;  // the host ended the turn
            ++counts_.timeouts;
            // A write that got no reply is sent again in the next cycle (writes are idempotent) until the command's
            // deadline; a poll block that got none abandons the cycle. No event: silence is the host's to report.
            cycle_.clear();
            break;
        default:  // closed, opening, lost, failed: the request (if any) went with the link
            link_open_ = state == FL_LINK_OPENING ? link_open_ : false;
            in_flight_ = false;
            cycle_.clear();
            break;
        }
    }

    void on_timer(std::uint64_t id) override {
        if (id == fast_timer_) fast_timer_ = 0;
        check_command_deadline();
        flush();
        if (link_open_ && !in_flight_ && cycle_.empty()) start_cycle();
    }

    void on_data(std::span<const std::uint8_t> bytes) override {
        if (!in_flight_) {
            counts_.stray_bytes += bytes.size();
            return;
        }
        if (tcp_) {
            tcp_rx_.feed(bytes);
            if (tcp_rx_.poisoned_since_last_check()) return finish_turn(bad(tcp_rx_.last_error()->message));
            while (auto a = tcp_rx_.next()) {
                if (a->transaction != tid_) {  // a late reply to an abandoned request
                    ++counts_.stale_replies;
                    continue;
                }
                if (a->unit != unit_)
                    return finish_turn(bad("reply from unit " + std::to_string(a->unit) + ", expected " + std::to_string(unit_)));
                return finish_turn(decode(a->pdu));
            }
            return;
        }
        rx_.insert(rx_.end(), bytes.begin(), bytes.end());
        if (rx_.empty()) return;
        const std::uint8_t f = cycle_.front().req.function;
        if (rx_[0] != unit_)
            return finish_turn(bad("reply from unit " + std::to_string(rx_[0]) + ", expected " + std::to_string(unit_)));
        if (rx_.size() >= 2 && rx_[1] != f && rx_[1] != (f | mb::fc::exception_bit))
            return finish_turn(bad("reply with function code " + std::to_string(rx_[1]) + " to a request of function " +
                                   std::to_string(f)));
        auto len = mb::rtu_frame_length(rx_, mb::direction::response);
        if (!len) return finish_turn(bad(len.err().message));
        if (*len == 0 || rx_.size() < *len) return;
        auto frame = mb::decode_rtu(std::span<const std::uint8_t>(rx_.data(), *len));
        if (!frame) return finish_turn(bad(frame.err().message));
        finish_turn(decode(frame->pdu));
    }

    struct counters {
        std::uint64_t cycles = 0, timeouts = 0, bad_replies = 0, stray_bytes = 0, stale_replies = 0;
    };

protected:
    // A complete, good poll cycle.
    virtual void on_snapshot(const snapshot &s) = 0;

    // The telemetry event: every measured point with its unit. Drivers add their states.
    virtual event telemetry(const snapshot &s) {
        event ev{event_kind::telemetry, "measurements"};
        for (const auto &n : numbers_)
            if (const auto *p = map_.find(n))
                if (auto v = s.number(p)) ev.value(n, *v, p->unit);
        return ev;
    }

    const common_settings &settings() const noexcept { return s_; }
    const register_map &map() const noexcept { return map_; }
    const register_point *pt(std::string_view name) const { return map_.find(name); }
    const counters &counts() const noexcept { return counts_; }

    // Queues an event for the host, in order; one the host is too busy for is retried on the next tick. At most one
    // FL_BUSY per call: the new event is tried alone, and only when nothing of its sort waits before it (nor, for a
    // restore, an alarm it may end). The queue keeps one telemetry sample at most (none is taken while one waits), and
    // a host that refuses pauses the device's wire until it takes again, so no poll cycle adds to it meanwhile.
    void emit(event ev) {
        if (!held_back(ev.kind(), outbox_.begin(), outbox_.end())) {
            const fl_status st = host().emit(ev);
            if (st == FL_OK) return;
            if (st != FL_BUSY) {
                host().error("the host refused an event (status " + std::to_string(st) + ")");
                return;
            }
        }
        outbox_.push_back(std::move(ev));
    }

    // Emits the raise or the restore of a condition that changed; `decorate` adds values and a message to a raise.
    void report(const condition &c, condition::change ch, const std::function<void(event &)> &decorate = {}) {
        if (ch == condition::change::raised || (ch == condition::change::none && c.needs_report(starts_))) {
            event ev = c.raise_event();
            if (decorate) decorate(ev);
            emit(std::move(ev));
            c.reported(starts_);
        } else if (ch == condition::change::cleared) {
            emit(c.restore_event());
        }
    }

    // Starts a command: the writes go out first in the next cycle, then every snapshot is offered to `verify` until
    // it confirms or refuses, or command_timeout_ms passes. The result is a command_result event. FL_BUSY while
    // another command is in progress.
    fl_status begin_command(const command &cmd, std::vector<mb::request> writes, verifier verify) {
        if (command_) return FL_BUSY;
        for (const auto &w : writes)
            if (!mb::encode_request(w)) throw config_error("command '" + cmd.name() + "': the register map gives an invalid write");
        command_ = pending_command{cmd.id(), cmd.name(), std::move(writes), 0, std::move(verify),
                                   clock::now() + s_.command_timeout, false, "no reply from the device yet"};
        if (link_open_ && !in_flight_ && cycle_.empty()) start_cycle();
        return FL_OK;
    }

    // self_test: switches the map's `self_test` coil on and is confirmed when `self_test_state` reads passed (refused
    // when it reads failed). FL_UNSUPPORTED when the map has no self-test.
    fl_status self_test_command(const command &cmd) {
        const register_point *coil = pt("self_test"), *state = pt("self_test_state");
        if (!coil || !state) return FL_UNSUPPORTED;
        cmd.args().reject_unknown({});
        return begin_command(cmd, {mb::write_coil(coil->address, true)}, [state](const snapshot &s) {
            const auto now = s.name_of(state).value_or("unread");
            if (now == "passed") return verdict{verdict::confirmed, "self-test passed"};
            if (now == "failed") return verdict{verdict::refused, "the device reports the self-test failed"};
            return verdict{verdict::waiting, "self-test " + now};
        });
    }

    // The write a command register takes for one of its named values.
    mb::request write_named(const register_point *p, std::string_view value) const {
        return mb::write_register(p->address, static_cast<std::uint16_t>(*p->value_of(value)));
    }

private:
    struct op {
        mb::request req;
        bool is_write = false;
        std::size_t block = 0;
    };
    struct pending_command {
        std::string id, name;
        std::vector<mb::request> writes;
        std::size_t written = 0;
        verifier verify;
        clock::time_point deadline;
        bool writes_done = false;
        std::string last_seen;
    };

    void start_cycle() {
        if (!link_open_ || in_flight_) return;
        cycle_.clear();
        if (command_ && !command_->writes_done)
            for (std::size_t i = command_->written; i < command_->writes.size(); ++i) cycle_.push_back({command_->writes[i], true, 0});
        for (std::size_t i = 0; i < blocks_.size(); ++i) cycle_.push_back({blocks_[i].request(), false, i});
        snap_ = snapshot{};
        send_next();
    }

    void send_next() {
        if (cycle_.empty()) return cycle_complete();
        auto pdu = mb::encode_request(cycle_.front().req);
        std::vector<std::uint8_t> frame = tcp_ ? mb::tcp_frame(++tid_, unit_, *pdu) : mb::rtu_frame(unit_, *pdu);
        rx_.clear();
        tcp_rx_.reset();
        const fl_status st = host().request(frame, s_.reply_timeout);
        if (st == FL_OK) {
            in_flight_ = true;
            return;
        }
        // FL_BUSY: a request is still queued on the bus; FL_CLOSED: the link went. Either way, the next tick retries.
        cycle_.clear();
        if (st == FL_CLOSED) link_open_ = false;
    }

    verdict bad(std::string why) { return verdict{verdict::refused, std::move(why)}; }

    // Decodes a reply PDU against the request in flight; confirmed = good reply.
    verdict decode(const std::vector<std::uint8_t> &pdu) {
        auto rsp = mb::decode_response(pdu);
        if (!rsp) return bad(rsp.err().message);
        response_ = std::move(rsp).value();
        if (auto e = mb::match_response(cycle_.front().req, response_)) return bad(e->message);
        return verdict{verdict::confirmed, {}};
    }

    void finish_turn(verdict v) {
        host().end_request();
        in_flight_ = false;
        const op current = cycle_.front();
        if (v.state == verdict::confirmed && response_.exception) {
            const std::string what = std::string("exception ") + std::to_string(*response_.exception) + " (" +
                                     mb::exception_name(*response_.exception) + ") to " + mb::function_name(current.req.function) +
                                     " at address " + std::to_string(current.req.address);
            if (current.is_write) {
                cycle_.clear();
                return finish_command(false, "the device refused the write: " + what);
            }
            v = bad(what + (*response_.exception == mb::exception_code::illegal_data_address ? ": check the register map" : ""));
        }
        if (v.state != verdict::confirmed) {
            ++counts_.bad_replies;
            ++bad_run_;
            cycle_.clear();
            if (bad_run_ == 1) host().warn("bad reply from unit " + std::to_string(unit_) + ": " + v.message);
            else host().debug("bad reply from unit " + std::to_string(unit_) + ": " + v.message);
            if (bad_run_ >= s_.bad_replies_for_fault && !comm_fault_id_) {
                comm_fault_id_ = "comm-" + std::to_string(++comm_faults_);
                emit(event{event_kind::fault, "communication_fault"}
                         .id(*comm_fault_id_)
                         .message(std::to_string(bad_run_) + " bad replies in a row; last: " + v.message));
            }
            return;
        }
        cycle_.pop_front();
        if (current.is_write) {
            if (command_ && ++command_->written == command_->writes.size()) command_->writes_done = true;
        } else {
            const auto &b = blocks_[current.block];
            if (is_bit_table(b.where)) snap_.store_bits(b, response_.bits);
            else snap_.store(b, response_.registers);
        }
        send_next();
    }

    void cycle_complete() {
        ++counts_.cycles;
        bad_run_ = 0;
        if (comm_fault_id_) {
            emit(event{event_kind::restore, "communication_fault"}.ends(*comm_fault_id_));
            comm_fault_id_.reset();
        }
        on_snapshot(snap_);
        if (command_ && command_->writes_done) {
            verdict v = command_->verify(snap_);
            command_->last_seen = v.message;
            if (v.state != verdict::waiting) {
                finish_command(v.state == verdict::confirmed, v.message);
            } else if (!fast_timer_) {
                // Read back sooner than the poll period while a command waits for its confirmation.
                if (auto t = host().start_timer(std::min(s_.poll, milliseconds(100)), true)) fast_timer_ = *t;
            }
        }
        const auto now = clock::now();
        // No new sample while one waits for the host: the kept one is sent first, and the queue holds one at most.
        const bool sample_kept = std::any_of(outbox_.begin(), outbox_.end(),
                                             [](const event &q) { return q.kind() == event_kind::telemetry; });
        if (s_.telemetry.count() > 0 && !sample_kept && (!last_telemetry_ || now - *last_telemetry_ >= s_.telemetry)) {
            last_telemetry_ = now;
            emit(telemetry(snap_));
        }
        check_command_deadline();
    }

    void check_command_deadline() {
        if (!command_ || clock::now() < command_->deadline) return;
        std::string why = "not confirmed within " + std::to_string(s_.command_timeout.count()) + " ms";
        if (!command_->writes_done) why += " (the write got no reply)";
        why += "; last read back: " + command_->last_seen;
        finish_command(false, why);
    }

    void finish_command(bool ok, const std::string &message) {
        if (!command_) return;
        const std::string text = command_->name + (ok ? ": confirmed: " : ": failed: ") + message;
        (ok ? host().info(text) : host().warn(text));
        emit(event::command_result(command_->id, ok, text.size() > 1000 ? text.substr(0, 1000) : text));
        command_.reset();
    }

    // The host's lanes as far as ordering goes: telemetry, alarms (and pre-alarms), the rest.
    static int sort_of(event_kind k) noexcept {
        return k == event_kind::telemetry ? 0 : k == event_kind::alarm || k == event_kind::pre_alarm ? 1 : 2;
    }
    // Whether an event of kind `k` must wait behind the kept events [first, last): one of its sort is kept before it,
    // or it is a restore and an alarm it may end is kept.
    template <class It>
    static bool held_back(event_kind k, It first, It last) {
        return std::any_of(first, last, [k](const event &q) {
            return sort_of(q.kind()) == sort_of(k) || (k == event_kind::restore && sort_of(q.kind()) == 1);
        });
    }

    // The kept events, each sort in its order: a refused telemetry sample or fault never holds back an alarm
    // behind it (FL-PLUGIN-28), and a restore never overtakes the alarm it may end.
    void flush() {
        for (auto it = outbox_.begin(); it != outbox_.end();) {
            if (held_back(it->kind(), outbox_.begin(), it)) {
                ++it;
                continue;
            }
            const fl_status st = host().emit(*it);
            if (st == FL_BUSY) {
                ++it;
                continue;
            }
            if (st != FL_OK) host().error("the host refused an event (status " + std::to_string(st) + ")");
            it = outbox_.erase(it);
        }
    }

    common_settings s_;
    register_map map_;
    std::vector<poll_block> blocks_;
    std::vector<std::string> numbers_;
    std::uint8_t unit_ = 1;
    bool tcp_ = false;
    std::uint16_t tid_ = 0;
    bool link_open_ = false, in_flight_ = false;
    std::uint64_t starts_ = 0;  // how many times the device was started
    std::deque<op> cycle_;
    snapshot snap_;
    mb::response response_;
    std::vector<std::uint8_t> rx_;
    mb::tcp_stream tcp_rx_;
    std::optional<pending_command> command_;
    std::deque<event> outbox_;
    std::uint64_t poll_timer_ = 0, fast_timer_ = 0;
    unsigned bad_run_ = 0;
    std::uint64_t comm_faults_ = 0;
    std::optional<std::string> comm_fault_id_;
    std::optional<clock::time_point> last_telemetry_;
    counters counts_;
};

// Reads a threshold from the config with its bounds; throws config_error naming the key.
inline double threshold(const config &cfg, const char *key, double def, double lo, double hi) {
    const double v = cfg.get<double>(key, def);
    if (!(v >= lo && v <= hi))
        throw config_error(std::string("config key '") + key + "': " + std::to_string(v) + " is outside " +
                           std::to_string(lo) + ".." + std::to_string(hi));
    return v;
}

// A measured value or threshold in an event message: one decimal ("12.5").
inline std::string one_decimal(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v);
    return b;
}

// ---- what a Modbus plugin declares (FIRELINK_PLUGIN) ---------------------------------------------------------------

// The wires a Modbus driver takes: Modbus RTU on a serial line or a shared RS-485 bus, or Modbus TCP to the device or
// a gateway (`framing` picks the framing); and the host extensions the poll loop needs.
#ifdef MODBUS_SERIAL_ONLY  // conformance/broken: a driver that declares serial wires only
inline constexpr std::uint32_t modbus_wires = FL_WIRE_SERIAL | FL_WIRE_RS485_BUS;
#else
inline constexpr std::uint32_t modbus_wires = FL_WIRE_SERIAL | FL_WIRE_RS485_BUS | FL_WIRE_TCP_CLIENT;
#endif
inline const std::vector<const char *> modbus_needs = {FL_EXT_TRANSPORT, FL_EXT_TIMER};

// The plugin_info of the reference drivers in this tree (plugins/*): one vendor, version and licence for all of them.
inline plugin_info reference_plugin(const char *id, const char *name, const char *description) {
    return {.id = id, .name = name, .vendor = "firelink", .version = "1.0.0", .license = "Apache-2.0", .description = description};
}

}  // namespace firelink::modbus_driver
