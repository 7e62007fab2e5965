// fire_panel: a fire alarm control panel reporting through its user information transmission device (UITD), which
// connects in to the host's listener and speaks GB/T 26875.3-2011. One device instance per UITD, bound by peer
// address or by the UITD's own address (firelink.identify/1). The host plays the monitoring centre.
//
// What the driver does (docs/drivers/fire_panel.md):
// - confirms every valid send/control frame with its serial number, but only once the events it carried, and every
//   event before them, are committed by the host (firelink.commit/1, FL-PLUGIN-35): an alarm is never confirmed and
//   then lost, even when the host is killed. A frame whose events the host answers FL_BUSY waits unconfirmed (its
//   events are kept and retried); at most max_unconfirmed frames wait, and one beyond that is neither applied nor
//   answered, so the UITD sends it again. Denies a frame with a bad checksum or undecodable data.
// - turns status bits into events on their edges: 0->1 an alarm/fault/status with an event_id, 1->0 its restore.
//   Bit 0 (normal/test) never suppresses anything.
// - analog values become telemetry with units; operation records become status events.
// - commands: sync_clock, duty_check, and the reads (read_uitd_status, read_system_status, ...).
// - FL-PLUGIN-29: start() and a lost link forget the last status words, so every condition active now is emitted
//   again; and once a UITD is connected and identified, the driver reads the current state (type 61 for each system
//   it knows of or is configured for, 62 for each component it last saw active, 81 for the UITD), one request at a
//   time. The responses take the same path as uploads.
#include <firelink/driver.hpp>
#include <firelink/proto/gb26875.hpp>
#include <firelink/proto/gb26875/json.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace {

namespace gb = firelink::proto::gb26875;
using firelink::event;
using firelink::event_kind;
using firelink::severity;

// How a status bit becomes an event: its code, the kind of its rising edge, and an optional severity.
struct bit_rule {
    int bit;
    const char *code;
    event_kind kind;
    std::optional<severity> level = std::nullopt;
    bool one_shot = false;  // a pulse, not a condition: no event_id, no restore
};

// Bits 1..7 mean the same in a system's status word (type 1) and a component's (type 2); bit 8 and up differ.
std::vector<bit_rule> status_word_rules(std::initializer_list<bit_rule> from_bit_8) {
    std::vector<bit_rule> rules = {
        {1, "fire_alarm", event_kind::alarm},
        {2, "fault", event_kind::fault},
        {3, "disabled", event_kind::status, severity::warning},
        {4, "supervisory", event_kind::alarm, severity::major},
        {5, "started", event_kind::status},
        {6, "feedback", event_kind::status},
        {7, "delay", event_kind::status, severity::warning},
    };
    rules.insert(rules.end(), from_bit_8);
    return rules;
}

const std::vector<bit_rule> system_rules = status_word_rules({
    {8, "main_power_fault", event_kind::fault},
    {9, "backup_power_fault", event_kind::fault},
    {10, "bus_fault", event_kind::fault},
    {13, "reset", event_kind::status, std::nullopt, true},
});

const std::vector<bit_rule> component_rules = status_word_rules({
    {8, "power_fault", event_kind::fault},
});

const std::vector<bit_rule> uitd_rules = {
    {1, "fire_alarm", event_kind::alarm},
    {2, "uitd_fault", event_kind::fault},
    {3, "main_power_fault", event_kind::fault},
    {4, "backup_power_fault", event_kind::fault},
    {5, "link_fault", event_kind::fault},
    {6, "wiring_fault", event_kind::fault},
};

// Operation records (types 4 and 24) are pulses.
struct op_rule {
    int bit;
    const char *code;
    event_kind kind;
};
const std::vector<op_rule> operation_rules = {
    {0, "reset", event_kind::status},
    {1, "x.gb26875.silence", event_kind::status},
    {2, "manual_alarm", event_kind::alarm},
    {3, "x.gb26875.alarm_cleared", event_kind::status},
    {4, "self_test", event_kind::status},
    {5, "x.gb26875.acknowledge", event_kind::status},  // type 4; in type 24 bit 5 is the duty answer
    {6, "x.gb26875.test", event_kind::status},
};

std::string hex8(std::uint32_t v) {
    char b[12];
    std::snprintf(b, sizeof b, "%08x", v);
    return b;
}

// Reads the identity (the UITD's address) from the first valid frame of a connection; see FL_EXT_IDENTIFY.
fl_status identify_uitd(std::span<const std::uint8_t> first, std::string &identity) {
    gb::stream_decoder dec;
    dec.feed(first);
    while (auto item = dec.next()) {
        if (item->ok()) {
            identity = gb::address_text(item->value.head.source);
            return FL_OK;
        }
    }
    // No '@' at all in a good kilobyte: not this protocol. Otherwise wait for the rest of a frame.
    if (first.size() > 1100 && dec.skipped_total() >= first.size() - 1) return FL_INVALID_ARGUMENT;
    return FL_BUSY;
}

class uitd_device : public firelink::device {
public:
    uitd_device(firelink::host_handle host, const firelink::config &cfg)
        : device(host),
          centre_address_(cfg.get<std::uint64_t>("centre_address", 0)),
          utc_offset_s_(cfg.get<std::int32_t>("utc_offset_min", 480) * 60),
          reply_timeout_(cfg.get<std::uint32_t>("reply_timeout_ms", 10000)),
          analog_telemetry_(cfg.get<bool>("analog_telemetry", true)) {
        cfg.reject_unknown({"centre_address", "utc_offset_min", "reply_timeout_ms", "analog_telemetry", "systems"});
        if (const auto *o = cfg.find("systems")) {
            if (o->type != msgpack::type::ARRAY) throw firelink::config_error("config key 'systems': expected an array");
            for (std::uint32_t i = 0; i < o->via.array.size; ++i) {
                const auto &e = o->via.array.ptr[i];
                const std::string text = e.type == msgpack::type::STR ? std::string(e.via.str.ptr, e.via.str.size) : "";
                unsigned t = 0, a = 0;
                char tail = 0;
                if (std::sscanf(text.c_str(), "%u.%u%c", &t, &a, &tail) != 2 || t > 255 || a > 255)
                    throw firelink::config_error("config key 'systems': each entry is \"<system type>.<system address>\" "
                                                 "(0..255 each), like \"1.1\"");
                systems_.insert({static_cast<std::uint8_t>(t), static_cast<std::uint8_t>(a)});
            }
        } else {
            systems_ = {{1, 0}, {1, 1}};  // the fire alarm system, under both numberings panels use
        }
        if (centre_address_ > 0xFFFFFFFFFFFFull)
            throw firelink::config_error("config key 'centre_address': more than 6 bytes");
        if (utc_offset_s_ < -14 * 3600 || utc_offset_s_ > 14 * 3600)
            throw firelink::config_error("config key 'utc_offset_min': must be within -840..840");
        if (reply_timeout_.count() < 1) throw firelink::config_error("config key 'reply_timeout_ms': must be at least 1");
    }

    void start() override {
        if (!host().has_transport()) throw std::runtime_error("the host gave no transport");
        forget_state();  // FL-PLUGIN-29: whatever was emitted before may be lost; report what is active again
        const fl_status st = host().open_wire();
        if (st != FL_OK) throw std::runtime_error("opening the wire failed: " + std::to_string(st));
    }

    void on_link(int state, fl_status) override {
        if (state == FL_LINK_OPEN) {
            decoder_.reset();
            link_open_ = true;
            read_state_due_ = true;  // read the state once the UITD has identified itself (its first valid frame)
            return;
        }
        if (state == FL_LINK_LOST || state == FL_LINK_CLOSED || state == FL_LINK_FAILED) {
            decoder_.reset();
            link_open_ = false;
            // The UITD resends what was not confirmed on its next connection; a confirm still waiting for a commit
            // must not go out there, where its serial may name another frame.
            answers_.clear();
            ++connection_;
            for (auto it = commands_.begin(); it != commands_.end();) {
                if (!it->second.internal)
                    queue(event::command_result(it->second.id, false, "the UITD disconnected before answering"));
                if (it->second.timer) host().cancel_timer(*it->second.timer);
                it = commands_.erase(it);
            }
            read_state_.clear();
            read_state_in_flight_ = false;
            uitd_address_.reset();  // identified again by the next connection's first frame
            forget_state();  // what happened while disconnected is read again on the next connection
            flush();
        }
    }

    void on_data(std::span<const std::uint8_t> bytes) override {
        link_open_ = true;
        decoder_.feed(bytes);
        while (auto item = decoder_.next()) {
            if (item->skipped) note_bad("skipped " + std::to_string(item->skipped) + " bytes of garbage", false);
            if (!item->ok()) {
                if (item->error == gb::frame_error::bad_checksum && item->head) {
                    note_bad(std::string("frame serial ") + std::to_string(item->head->serial) + ": " +
                                 gb::error_text(item->error) + "; denied",
                             true);
                    answer(*item->head, gb::command::deny);
                }
                // A broken delimiter or length: the frame's extent is unknown, so nothing to answer.
                else if (item->error != gb::frame_error::bad_checksum) {
                    note_bad(std::string("not a frame (") + gb::error_text(item->error) + "), resynchronising", false);
                }
                continue;
            }
            handle(item->value);
        }
        flush();
        read_state_next();
    }

    void on_timer(std::uint64_t id) override {
        if (retry_timer_ && *retry_timer_ == id) {
            retry_timer_.reset();
            flush();
            return;
        }
        for (auto it = commands_.begin(); it != commands_.end(); ++it) {
            if (!it->second.timer || *it->second.timer != id) continue;
            auto &c = it->second;
            if (c.internal) {
                host().warn("reading the state: request type " + std::to_string(c.type) + " not answered within " +
                            std::to_string(reply_timeout_.count()) + " ms; going on");
                commands_.erase(it);
                read_state_in_flight_ = false;
                break;
            }
            if (c.type == 91 && c.confirmed) {
                queue(event{event_kind::status, "off_duty"}
                          .level(severity::warning)
                          .message("duty check: nobody answered within " + std::to_string(c.wait.count()) + " s"));
                queue(event::command_result(c.id, false, "duty check not answered within " + std::to_string(c.wait.count()) + " s"));
            } else {
                queue(event::command_result(c.id, false, "the UITD did not answer within " +
                                                             std::to_string(reply_timeout_.count()) + " ms"));
            }
            commands_.erase(it);
            break;
        }
        flush();
        read_state_next();
    }

    fl_status on_command(const firelink::command &cmd) override {
        std::uint8_t type = 0;
        const std::string &name = cmd.name();
        if (name == "sync_clock") type = 90;
        else if (name == "duty_check") type = 91;
        else if (name == "read_status") type = 81;
        else if (name == "read_config") type = 86;
        else {
            for (unsigned t = 61; t <= 88; ++t) {
                const auto info = gb::type_info(static_cast<std::uint8_t>(t));
                if (info.known && info.dir == gb::direction::down && info.name == name) type = static_cast<std::uint8_t>(t);
            }
        }
        if (type == 0) return FL_UNSUPPORTED;
        const auto &args = cmd.args();
        const auto sys_type = args.get<std::uint8_t>("system_type", 1);
        const auto sys_addr = args.get<std::uint8_t>("system_address", 0);
        gb::info_object obj = gb::reserved_byte{0};
        pending_command pc;
        pc.id = cmd.id();
        pc.type = type;
        switch (type) {
        case 90: args.reject_unknown({}); obj = gb::clock_value{now_local()}; break;
        case 91: {
            // minutes: what the UITD shows its operator (1..255); within_s: how long the driver waits, when the
            // platform wants it sharper than whole minutes (the frame then says the minutes rounded up).
            args.reject_unknown({"minutes", "within_s"});
            const auto within_s = args.get<std::uint32_t>("within_s", 0);
            const auto minutes = args.get<std::uint32_t>("minutes", within_s ? (within_s + 59) / 60 : 10);
            if (minutes < 1 || minutes > 255) throw firelink::config_error("config key 'args.minutes': must be 1..255");
            if (within_s > minutes * 60) throw firelink::config_error("config key 'args.within_s': more than minutes * 60");
            pc.minutes = static_cast<std::uint8_t>(minutes);
            pc.wait = within_s ? std::chrono::seconds(within_s) : std::chrono::seconds(minutes * 60);
            obj = gb::duty_check{pc.minutes};
            break;
        }
        case 61: case 65: case 66: case 68:
            args.reject_unknown({"system_type", "system_address"});
            obj = gb::read_system{sys_type, sys_addr};
            break;
        case 62: case 63: case 67:
            args.reject_unknown({"system_type", "system_address", "component_address"});
            obj = gb::read_component{sys_type, sys_addr, args.require<std::uint32_t>("component_address")};
            break;
        case 64:
            args.reject_unknown({"system_type", "system_address", "count"});
            obj = gb::read_records{sys_type, sys_addr, args.get<std::uint8_t>("count", 10), now_local()};
            break;
        case 84:
            args.reject_unknown({"count"});
            obj = gb::read_records{0, 0, args.get<std::uint8_t>("count", 10), now_local()};
            break;
        default: args.reject_unknown({}); break;
        }
        if (!uitd_address_ || !link_open_) {
            host().emit(event::command_result(cmd.id(), false, "the UITD is not connected"));
            return FL_OK;
        }
        std::uint16_t serial = 0;
        const fl_status st = send_down(type, obj, serial);
        if (st != FL_OK) {
            host().emit(event::command_result(cmd.id(), false, "could not write to the UITD (status " + std::to_string(st) + ")"));
            return FL_OK;
        }
        pc.timer = host().start_timer(reply_timeout_, true);
        commands_[serial] = std::move(pc);
        return FL_OK;
    }

private:
    struct pending_command {
        std::string id;
        std::uint8_t type = 0;
        std::uint8_t minutes = 0;
        std::chrono::seconds wait{0};  // duty check: how long the operator has to answer
        bool confirmed = false;
        bool internal = false;  // the driver's own state read (FL-PLUGIN-29): no command_result
        std::optional<std::uint64_t> timer;
    };

    // Writes a control command (type >= 89) or request to the UITD with the next serial number.
    fl_status send_down(std::uint8_t type, const gb::info_object &obj, std::uint16_t &serial) {
        const bool control = type >= 89;
        gb::frame f;
        f.head.serial = next_serial_++;
        if (next_serial_ == 0) next_serial_ = 1;
        f.head.time = now_local();
        f.head.source = gb::make_address(centre_address_ ? centre_address_ : gb::address_value(centre_seen_));
        f.head.destination = *uitd_address_;
        f.head.command = static_cast<std::uint8_t>(control ? gb::command::control : gb::command::request);
        f.data = gb::make_app_data(type, obj);
        serial = f.head.serial;
        return host().write(gb::encode(f));
    }

    // FL-PLUGIN-29: the last status words are forgotten, so the next status of each system, component and the UITD is
    // compared with nothing and every active condition is emitted again. The forgotten words are kept aside only so
    // that a condition that ended meanwhile still gets its restore.
    void forget_state() {
        for (const auto &[k, v] : state_) stale_[k] = v;
        state_.clear();
        read_state_due_ = true;
    }

    // Once the UITD is identified after a start or a reconnection: the requests that read its current state.
    void plan_state_read() {
        read_state_due_ = false;
        read_state_.clear();
        std::set<std::pair<std::uint8_t, std::uint8_t>> systems = systems_;
        systems.insert(systems_heard_.begin(), systems_heard_.end());
        for (const auto &[t, a] : systems) read_state_.push_back({61, gb::read_system{t, a}});
        std::size_t n = 0;
        for (const auto &c : components_active_) {
            if (++n > max_component_reads) break;
            read_state_.push_back({62, gb::read_component{c.system_type, c.system_address, c.component_address}});
        }
        read_state_.push_back({81, gb::reserved_byte{0}});
        host().debug("reading the UITD's state: " + std::to_string(read_state_.size()) + " requests");
    }

    // Sends the next state read, one at a time: the next goes once the previous is answered, denied or timed out.
    void read_state_next() {
        if (!link_open_ || !uitd_address_) return;
        if (read_state_due_) plan_state_read();
        if (read_state_in_flight_ || read_state_.empty()) return;
        auto [type, obj] = read_state_.front();
        read_state_.pop_front();
        std::uint16_t serial = 0;
        if (send_down(type, obj, serial) != FL_OK) {
            host().warn("reading the state: could not write request type " + std::to_string(type));
            read_state_.clear();
            read_state_due_ = true;  // again on the next frame
            return;
        }
        pending_command pc;
        pc.type = type;
        pc.internal = true;
        pc.timer = host().start_timer(reply_timeout_, true);
        commands_[serial] = std::move(pc);
        read_state_in_flight_ = true;
    }

    // The status word under `key` becomes `now`: edges against the last word; after a start or a lost link, against
    // nothing (every active bit rises again), with restores for what the forgotten word had active and `now` has not.
    void update(std::uint64_t key, const std::vector<bit_rule> &rules, unsigned now, const std::string &scope,
                const std::string &what, const std::optional<gb::timestamp> &t) {
        unsigned old = 0;
        if (auto it = state_.find(key); it != state_.end()) {
            old = it->second;
        } else if (auto s = stale_.find(key); s != stale_.end()) {
            old = s->second & ~now;
            stale_.erase(s);
        }
        edges(rules, old, now, scope, what, t);
        state_[key] = now;
    }

    gb::timestamp now_local() const {
        const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
        return gb::timestamp::from_utc_seconds(now, utc_offset_s_);
    }

    std::optional<std::int64_t> device_ms(const std::optional<gb::timestamp> &t) const {
        if (!t) return std::nullopt;
        auto s = t->as_utc_seconds();
        if (!s) return std::nullopt;
        return (*s - utc_offset_s_) * 1000;
    }

    void note_bad(const std::string &what, bool frame) {
        const auto n = ++bad_total_;
        if (frame) ++denied_total_;
        if (n <= 10 || n % 1000 == 0)
            host().warn("bad input #" + std::to_string(n) + " (" + std::to_string(denied_total_) + " denied): " + what);
    }

    void answer(const gb::header &h, gb::command c) {
        answers_.push_back(gb::answer_to(h, c, now_local()));
    }

    void handle(const gb::frame &f) {
        uitd_address_ = f.head.source;
        centre_seen_ = f.head.destination;
        const auto cmd = f.head.command;
        if (cmd == 3 || cmd == 6) {  // confirm / deny of one of our control frames or requests
            on_answer(f.head.serial, cmd == 3);
            return;
        }
        if (cmd != 2 && cmd != 5) {
            note_bad(std::string("frame serial ") + std::to_string(f.head.serial) + ": a UITD does not send command " +
                         std::to_string(cmd) + " (" + gb::command_name(cmd) + "); denied",
                     true);
            answer(f.head, gb::command::deny);
            return;
        }
        if (cmd == 2 && answers_.size() + waiting_for_commit() >= max_unconfirmed) {
            // Bounded: the frame is left for the UITD to send again once the host has caught up.
            if (++unanswered_total_ <= 10 || unanswered_total_ % 1000 == 0)
                host().warn("frame serial " + std::to_string(f.head.serial) + " left unanswered: " +
                            std::to_string(max_unconfirmed) + " frames already wait for their events to be committed (" +
                            std::to_string(unanswered_total_) + " so far); the UITD sends it again");
            return;
        }
        std::optional<gb::app_data> app;
        if (!f.data.empty()) {
            auto parsed = gb::parse_app_data(f.data);
            if (!parsed.ok()) {
                note_bad("frame serial " + std::to_string(f.head.serial) + ": " + parsed.error + (cmd == 2 ? "; denied" : ""), true);
                if (cmd == 2) answer(f.head, gb::command::deny);
                return;
            }
            app = std::move(parsed.value);
            apply(*app);
        }
        if (cmd == 2) {
            answer(f.head, gb::command::confirm);  // sent once the events above are committed (flush)
        } else if (auto it = commands_.find(f.head.serial); it != commands_.end() && it->second.internal) {
            if (it->second.timer) host().cancel_timer(*it->second.timer);  // its objects were applied above
            commands_.erase(it);
            read_state_in_flight_ = false;
        } else if (it != commands_.end()) {
            const bool matches = app && app->type == gb::response_type_for(it->second.type);
            std::string msg = app ? gb::to_json(f) : std::string("empty response");
            if (msg.size() > 1000) msg.resize(1000);
            queue(event::command_result(it->second.id, matches, matches ? msg : "unexpected response: " + msg));
            if (it->second.timer) host().cancel_timer(*it->second.timer);
            commands_.erase(it);
        } else {
            host().debug("response serial " + std::to_string(f.head.serial) + " matches no request");
        }
    }

    void on_answer(std::uint16_t serial, bool confirmed) {
        auto it = commands_.find(serial);
        if (it == commands_.end()) {
            host().debug(std::string(confirmed ? "confirm" : "deny") + " serial " + std::to_string(serial) +
                         " matches no pending command");
            return;
        }
        auto &c = it->second;
        if (c.timer) host().cancel_timer(*c.timer);
        if (c.internal && !confirmed) {
            host().debug("reading the state: the UITD denied request type " + std::to_string(c.type));
            commands_.erase(it);
            read_state_in_flight_ = false;
        } else if (!confirmed) {
            queue(event::command_result(c.id, false, "the UITD denied it"));
            commands_.erase(it);
        } else if (c.type == 91) {
            // Confirmed receipt; the operator's answer (type 24, bit 5) completes it.
            c.confirmed = true;
            c.timer = host().start_timer(c.wait, true);
        } else if (c.type >= 89) {
            queue(event::command_result(c.id, true, c.type == 90 ? "the UITD confirmed the clock" : "confirmed"));
            commands_.erase(it);
        } else {
            c.timer = host().start_timer(reply_timeout_, true);  // a request: its response follows
        }
    }

    std::string where(const gb::component_ref &c) const {
        return std::string(gb::component_type_info(c.component_type).name) + " loop " + std::to_string(c.loop()) +
               " point " + std::to_string(c.point()) + " (" + std::string(gb::system_type_info(c.system_type).name) +
               " " + std::to_string(c.system_address) + ")";
    }

    // Emits the edges between `old_bits` and `new_bits` for the rules; ids are "<code>@<scope>".
    void edges(const std::vector<bit_rule> &rules, unsigned old_bits, unsigned new_bits, const std::string &scope,
               const std::string &what, const std::optional<gb::timestamp> &t) {
        for (const auto &r : rules) {
            const bool was = old_bits & (1u << r.bit), is = new_bits & (1u << r.bit);
            if (was == is) continue;
            const std::string id = std::string(r.code) + "@" + scope;
            if (is) {
                event ev{r.kind, r.code};
                if (!r.one_shot) ev.id(id);
                if (r.level) ev.level(*r.level);
                ev.message(std::string(r.code) + ": " + what);
                if (auto ms = device_ms(t)) ev.device_time_ms(*ms);
                queue(std::move(ev));
            } else if (!r.one_shot) {
                event ev{event_kind::restore, r.code};
                ev.ends(id).message(std::string(r.code) + " ended: " + what);
                if (auto ms = device_ms(t)) ev.device_time_ms(*ms);
                queue(std::move(ev));
            }
        }
    }

    void operations(std::uint8_t flags, bool uitd, std::uint8_t op, const std::string &what,
                    const std::optional<gb::timestamp> &t) {
        for (const auto &r : operation_rules) {
            if (!(flags & (1u << r.bit))) continue;
            if (uitd && r.bit == 5) {  // 查岗应答: the duty check is answered
                for (auto it = commands_.begin(); it != commands_.end(); ++it) {
                    if (it->second.type != 91) continue;
                    if (it->second.timer) host().cancel_timer(*it->second.timer);
                    queue(event::command_result(it->second.id, true, "duty check answered by operator " + std::to_string(op)));
                    commands_.erase(it);
                    break;
                }
                event ev{event_kind::status, "on_duty"};
                ev.message("duty check answered by operator " + std::to_string(op));
                if (auto ms = device_ms(t)) ev.device_time_ms(*ms);
                queue(std::move(ev));
                continue;
            }
            event ev{r.kind, r.code};
            ev.message(std::string(uitd ? gb::uitd_operation_bits[r.bit].name : gb::system_operation_bits[r.bit].name) +
                       " by operator " + std::to_string(op) + ": " + what);
            if (auto ms = device_ms(t)) ev.device_time_ms(*ms);
            queue(std::move(ev));
        }
    }

    void apply(const gb::app_data &app) {
        for (const auto &obj : app.objects) {
            std::visit(
                [&](const auto &v) {
                    using T = std::decay_t<decltype(v)>;
                    if constexpr (std::is_same_v<T, gb::system_status>) {
                        const std::uint64_t key = (1ull << 48) | (std::uint64_t(v.system_type) << 8) | v.system_address;
                        systems_heard_.insert({v.system_type, v.system_address});
                        const std::string scope = "s" + std::to_string(v.system_type) + "." + std::to_string(v.system_address);
                        update(key, system_rules, v.status, scope,
                               std::string(gb::system_type_info(v.system_type).name) + " " + std::to_string(v.system_address),
                               v.time);
                    } else if constexpr (std::is_same_v<T, gb::component_status>) {
                        const auto &c = v.component;
                        const std::uint64_t key = (std::uint64_t(c.system_type) << 40) |
                                                  (std::uint64_t(c.system_address) << 32) | c.component_address;
                        systems_heard_.insert({c.system_type, c.system_address});
                        const gb::component_ref ref{c.system_type, c.system_address, c.component_type, c.component_address};
                        if (active(component_rules, v.status)) components_active_.insert(ref);
                        else components_active_.erase(ref);
                        const std::string scope = "c" + std::to_string(c.system_type) + "." +
                                                  std::to_string(c.system_address) + "." + hex8(c.component_address);
                        std::string what = where(c);
                        const auto text = gb::description_utf8(v.description);
                        if (!text.empty()) what += ": " + text;
                        update(key, component_rules, v.status, scope, what, v.time);
                    } else if constexpr (std::is_same_v<T, gb::uitd_status>) {
                        update(2ull << 48, uitd_rules, v.status, "uitd", "user information transmission device", v.time);
                    } else if constexpr (std::is_same_v<T, gb::component_analog>) {
                        if (!analog_telemetry_) return;
                        const auto info = gb::analog_info(v.analog_type);
                        event ev{event_kind::telemetry, "analog"};
                        ev.message(where(v.component));
                        if (info.resolution == 1) ev.value(std::string(info.name), std::int64_t{v.raw}, std::string(info.unit));
                        else ev.value(std::string(info.name), gb::analog_value(v), std::string(info.unit));
                        if (auto ms = device_ms(v.time)) ev.device_time_ms(*ms);
                        queue(std::move(ev));
                    } else if constexpr (std::is_same_v<T, gb::system_operation>) {
                        operations(v.flags, false, v.operator_id,
                                   std::string(gb::system_type_info(v.system_type).name) + " " +
                                       std::to_string(v.system_address),
                                   v.time);
                    } else if constexpr (std::is_same_v<T, gb::uitd_operation>) {
                        operations(v.flags, true, v.operator_id, "user information transmission device", v.time);
                    }
                },
                obj);
        }
        if (!app.known) host().debug("type " + std::to_string(app.type) + " (" + std::string(gb::type_info(app.type).name) + ") kept raw");
    }

    static bool active(const std::vector<bit_rule> &rules, unsigned bits) {
        for (const auto &r : rules)
            if (!r.one_shot && (bits & (1u << r.bit))) return true;
        return false;
    }

    void queue(event ev) { pending_.push_back(std::move(ev)); }

    // Hands queued events to the host; once all are taken, sends the answers that waited for them as soon as the host
    // has committed every event emitted so far (when_committed; at once when the host does not report commits).
    void flush() {
        while (!pending_.empty()) {
            const fl_status st = host().emit(pending_.front());
            if (st == FL_BUSY) {
                if (!retry_timer_) retry_timer_ = host().start_timer(std::chrono::milliseconds(100), true);
                return;
            }
            if (st != FL_OK) host().error("the host refused an event (status " + std::to_string(st) + ")");
            pending_.pop_front();
        }
        for (auto &a : answers_) {
#ifdef FIRE_PANEL_BROKEN_CONFIRMS_ON_OK
            // Deliberately broken (conformance/broken, tests/fire_panel): confirms on FL_OK although the driver
            // declares firelink.commit/1, as the driver did before it; a host killed now loses a confirmed event.
            send_answer(a);
#else
            when_committed([this, a = std::move(a), connection = connection_] {
                if (connection == connection_) send_answer(a);
            });
#endif
        }
        answers_.clear();
    }

    void send_answer(const gb::frame &a) {
        const fl_status st = host().write(gb::encode(a));
        if (st != FL_OK) host().warn("could not send the answer to serial " + std::to_string(a.head.serial) +
                                     " (status " + std::to_string(st) + "); the UITD will resend");
    }

    const std::uint64_t centre_address_;
    const std::int32_t utc_offset_s_;
    const std::chrono::milliseconds reply_timeout_;
    const bool analog_telemetry_;

    gb::stream_decoder decoder_;
    std::optional<gb::address> uitd_address_;
    gb::address centre_seen_{};
    std::unordered_map<std::uint64_t, unsigned> state_;  // last status word per system / component / the UITD
    std::unordered_map<std::uint64_t, unsigned> stale_;  // words forgotten by a start or a lost link, not yet re-read
    // What to read after a start or reconnection (FL-PLUGIN-29).
    static constexpr std::size_t max_component_reads = 256;
    struct ref_less {
        bool operator()(const gb::component_ref &a, const gb::component_ref &b) const {
            return std::tie(a.system_type, a.system_address, a.component_address) <
                   std::tie(b.system_type, b.system_address, b.component_address);
        }
    };
    std::set<std::pair<std::uint8_t, std::uint8_t>> systems_;        // configured (`systems`)
    std::set<std::pair<std::uint8_t, std::uint8_t>> systems_heard_;  // seen in status frames
    std::set<gb::component_ref, ref_less> components_active_;       // last seen with an active condition
    std::deque<std::pair<std::uint8_t, gb::info_object>> read_state_;
    bool read_state_due_ = true, read_state_in_flight_ = false;
    std::deque<event> pending_;
    std::vector<gb::frame> answers_;  // answers waiting for pending_ to be taken
    // Frames waiting for their confirm (in answers_ or in when_committed), at most; see handle().
    static constexpr std::size_t max_unconfirmed = 64;
    std::uint64_t connection_ = 0;  // counts lost connections: a confirm belongs to the connection its frame came on
    std::uint64_t unanswered_total_ = 0;
    std::map<std::uint16_t, pending_command> commands_;
    std::optional<std::uint64_t> retry_timer_;
    std::uint16_t next_serial_ = 1;
    bool link_open_ = false;
    std::uint64_t bad_total_ = 0, denied_total_ = 0;
};

}  // namespace

FIRELINK_PLUGIN((firelink::plugin_info{.id = "org.firelink.fire-panel",
                                       .name = "Fire alarm panels (GB/T 26875.3-2011)",
                                       .vendor = "firelink",
                                       .version = "1.0.0",
                                       .license = "Apache-2.0",
                                       .description = "User information transmission devices (UITD) of fire alarm "
                                                      "control panels, connecting in over TCP."}),
                (firelink::driver<uitd_device>{.id = "gb26875-uitd",
                                               .name = "GB/T 26875.3 user information transmission device",
                                               .device_class = FL_CLASS_FIRE_PANEL,
                                               .description = "Fire alarms, faults, supervisory, disabled, power and "
                                                              "link faults of a fire panel; clock sync, duty check, reads.",
                                               .wires = FL_WIRE_TCP_ACCEPTED,
                                               .needs = {FL_EXT_TRANSPORT, FL_EXT_TIMER},
                                               .identify = &identify_uitd,
                                               .confirms_on_commit = true,
                                               // Reads, the clock and the duty check: none moves anything, so none
                                               // needs select-before-operate. on_command accepts exactly these names.
                                               .commands = {{"sync_clock", "Set the UITD's clock to the host's (type 90)", 0},
                                                            {"duty_check", "Ask the operator on duty to answer (type 91, 查岗)", 0},
                                                            {"read_status", "Read the UITD's status (type 81)", 0},
                                                            {"read_config", "Read the UITD's config (type 86)", 0},
                                                            {"read_system_status", "GB/T 26875.3 request type 61", 0},
                                                            {"read_component_status", "GB/T 26875.3 request type 62", 0},
                                                            {"read_component_analog", "GB/T 26875.3 request type 63", 0},
                                                            {"read_system_operations", "GB/T 26875.3 request type 64", 0},
                                                            {"read_system_version", "GB/T 26875.3 request type 65", 0},
                                                            {"read_system_config", "GB/T 26875.3 request type 66", 0},
                                                            {"read_component_config", "GB/T 26875.3 request type 67", 0},
                                                            {"read_system_time", "GB/T 26875.3 request type 68", 0},
                                                            {"read_uitd_status", "GB/T 26875.3 request type 81", 0},
                                                            {"read_uitd_operations", "GB/T 26875.3 request type 84", 0},
                                                            {"read_uitd_version", "GB/T 26875.3 request type 85", 0},
                                                            {"read_uitd_config", "GB/T 26875.3 request type 86", 0},
                                                            {"read_uitd_time", "GB/T 26875.3 request type 88", 0}}}))
