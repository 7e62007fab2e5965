// line-concentrator: a vendor-class driver for a wireless smoke-detector concentrator that speaks ASCII lines over
// TCP and connects in to the host (README.md has the protocol). It shows what a protocol driver must get right and
// what its device scripts (concentrator.scripts/) make the conformance suite check:
//   - framing: lines are assembled across reads, bounded, and a line that is not the protocol is answered NAK;
//   - a frame the concentrator sends again (its ACK was lost) is answered again and emitted once (by its seq);
//   - an event the host refuses with FL_BUSY is kept and retried from a timer, and never holds back later lines:
//     an alarm goes out while a refused fault waits;
//   - ACK only once the host committed the event (when_committed): the concentrator forgets what it was told is
//     safe;
//   - after a restart the concentrator's STA lines re-report what is still active.
// The BROKEN_* macros build the deliberately broken variants the conformance tests use (conformance/broken); a
// vendor's driver has none of them.
#include <firelink/driver.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_line = 256;     // a longer line is not the protocol: dropped up to its end, answered NAK
constexpr std::size_t seqs_kept = 256;    // the frames recognised when sent again
constexpr std::size_t max_pending = 512;  // events refused FL_BUSY and kept; beyond, the line is NAKed (resent later)

std::vector<std::string> words(const std::string &line) {
    std::istringstream in(line);
    std::vector<std::string> w;
    for (std::string s; in >> s;) w.push_back(s);
    return w;
}

std::span<const std::uint8_t> bytes(const std::string &s) {
    return {reinterpret_cast<const std::uint8_t *>(s.data()), s.size()};
}

class concentrator : public firelink::device {
public:
    concentrator(firelink::host_handle host, const firelink::config &cfg)
        : device(host), command_timeout_(cfg.get<std::uint32_t>("command_timeout_ms", 5000)) {
        cfg.reject_unknown({"command_timeout_ms"});
    }

    // A start (the first, or after a stop) forgets what was reported: the concentrator's STA lines on its reconnect
    // report again what is still active (FL-PLUGIN-29). What was refused and not ACKed it sends again itself.
    void start() override {
        active_.clear();
        pending_.clear();
        commands_.clear();
        if (!host().start_timer(200ms)) throw std::runtime_error("the host gave no timer");
        if (const fl_status st = host().open_wire(); st != FL_OK)
            throw std::runtime_error("opening the wire failed: " + std::to_string(st));
    }

    void stop() override { host().close_wire(); }  // the concentrator connects again, and sends its state

    void on_link(int state, fl_status) override {
        if (state != FL_LINK_OPEN) buf_.clear();  // a half line from a lost connection is not a frame
    }

    void on_data(std::span<const std::uint8_t> data) override {
        for (const std::uint8_t c : data) {
            if (c == '\n') {
                if (!overlong_) line(buf_);
                else reply("NAK");
                buf_.clear();
                overlong_ = false;
            } else if (c != '\r' && !overlong_) {
                buf_.push_back(static_cast<char>(c));
                if (buf_.size() > max_line) overlong_ = true;
            }
        }
#ifdef BROKEN_SPLIT_DROP
        buf_.clear();  // broken: a line split across two reads is lost
#endif
    }

    void on_timer(std::uint64_t) override {
        retry_pending();
        const auto now = std::chrono::steady_clock::now();
        for (auto it = commands_.begin(); it != commands_.end();) {
            if (now - it->second.sent < command_timeout_) {
                ++it;
                continue;
            }
            host().emit(firelink::event::command_result(it->second.id, false, "the concentrator did not answer"));
            it = commands_.erase(it);
        }
    }

    fl_status on_command(const firelink::command &cmd) override {
        const std::string detector = cmd.args().get<std::string>("detector", "");
        if (detector.empty() || detector.size() > 16) return FL_INVALID_ARGUMENT;
        const std::string verb = cmd.name() == "silence" ? "SILENCE" : "TEST";
        const std::uint32_t n = ++command_seq_;
        commands_[n] = {cmd.id(), std::chrono::steady_clock::now()};
        reply("CMD " + std::to_string(n) + " " + verb + " " + detector);
        return FL_OK;
    }

private:
    struct outgoing {
        firelink::event ev;
        std::string seq;  // answered ACK once taken and committed
        std::string key;  // the detector's condition it raises or ends
        bool alarm = false;
    };
    struct pending_command {
        std::string id;
        std::chrono::steady_clock::time_point sent;
    };

    void reply(const std::string &text) { host().write(bytes(text + "\n")); }

    void line(const std::string &l) {
        const auto w = words(l);
        if (w.empty()) return;
        if (w[0] == "HELLO" && w.size() == 2) return reply("OK " + w[1]);
        if (w[0] == "HB" && w.size() == 2) return reply("ACK " + w[1]);
        if ((w[0] == "EVT" || w[0] == "STA") && w.size() == 4) return condition(w[0] == "STA", w[1], w[2], w[3]);
        if (w[0] == "RES" && w.size() == 3) {
            const auto it = commands_.find(static_cast<std::uint32_t>(std::strtoul(w[1].c_str(), nullptr, 10)));
            if (it == commands_.end()) return;  // late, after its timeout: already reported
            host().emit(firelink::event::command_result(it->second.id, w[2] == "OK",
                                                        w[2] == "OK" ? "done" : "the concentrator refused it"));
            commands_.erase(it);
            return;
        }
        reply("NAK");
    }

    // EVT (a change) or STA (the state, on a reconnect) of one detector.
    void condition(bool state, const std::string &seq, const std::string &det, const std::string &what) {
#ifndef BROKEN_DUP_EMIT
        if (seen_.count(seq)) {
            // Sent again (its ACK was lost, or is not due yet): never a second event. ACKed once what it raised is
            // committed; while that is still kept (refused FL_BUSY), its own ACK will come.
            for (const auto &p : pending_)
                if (p.seq == seq) return;
#ifdef BROKEN_ACK_BEFORE_COMMIT
            return reply("ACK " + seq);
#else
            return when_committed([this, ack = "ACK " + seq] { reply(ack); });
#endif
        }
#endif
#ifdef BROKEN_NO_REREPORT
        if (state) return reply("ACK " + seq);  // broken: the state after a restart is not reported
#endif
        const bool fire = what == "FIRE", fault = what == "FAULT";
        const bool clear = what == "CLEAR", fixed = what == "FIXED";
        if (!fire && !fault && !clear && !fixed) return reply("NAK");
        const std::string key = det + (fire || clear ? "-fire" : "-fault");
        const std::string code = fire || clear ? "fire_alarm" : "detector_fault";
        [[maybe_unused]] const bool active = active_.count(key) != 0;
#ifdef BROKEN_DUP_EMIT
        if (false) {  // broken: every frame is an event, whatever was reported already
#else
        if ((fire || fault) == active) {
#endif
            remember(seq);  // nothing changed (a STA of what is known, a CLEAR of nothing)
            return reply("ACK " + seq);
        }
        firelink::event ev = fire    ? firelink::event{firelink::event_kind::alarm, code}.id(key)
                             : fault ? firelink::event{firelink::event_kind::fault, code}.id(key)
                                     : firelink::event{firelink::event_kind::restore, code}.ends(key);
        ev.message("detector " + det + (state ? " (state after a reconnect)" : ""));
        // Full: refused before anything is recorded of it, so that the line sent again is a change again.
        if (pending_.size() >= max_pending) return reply("NAK");  // the concentrator sends it again later
        if (fire || fault) active_.insert(key);
        else active_.erase(key);
        remember(seq);
        pending_.push_back({std::move(ev), seq, key, fire});
        retry_pending();
    }

    // The kept events, in order per lane and per detector condition: a refused fault never holds back an alarm
    // behind it, and a restore never overtakes the alarm it ends.
    void retry_pending() {
        bool lane_refused[2] = {false, false};  // [0] every other kind, [1] alarms
        std::set<std::string> held;             // conditions with an earlier event still kept
        for (auto it = pending_.begin(); it != pending_.end();) {
#ifdef BROKEN_HOLD_BEHIND_BUSY
            if (lane_refused[0] || lane_refused[1]) return;  // broken: everything waits behind the first refusal
#endif
            if (lane_refused[it->alarm] || held.count(it->key)) {
                held.insert(it->key);
                ++it;
                continue;
            }
            const fl_status st = host().emit(it->ev);
            if (st == FL_BUSY) {
                lane_refused[it->alarm] = true;
                held.insert(it->key);
                ++it;
                continue;
            }
            if (st != FL_OK) {
                reply("NAK " + it->seq);  // refused as malformed: logged by the host, never retried (FL-PLUGIN-28)
                it = pending_.erase(it);
                continue;
            }
            const std::string ack = "ACK " + it->seq;
#ifdef BROKEN_ACK_BEFORE_COMMIT
            reply(ack);  // broken: told safe before it is durable
#else
            when_committed([this, ack] { reply(ack); });
#endif
            it = pending_.erase(it);
        }
    }

    void remember(const std::string &seq) {
        if (seen_.insert(seq).second) order_.push_back(seq);
        while (order_.size() > seqs_kept) {
            seen_.erase(order_.front());
            order_.pop_front();
        }
    }

    std::chrono::milliseconds command_timeout_;
    std::string buf_;
    bool overlong_ = false;
    std::set<std::string> seen_;
    std::deque<std::string> order_;
    std::set<std::string> active_;  // "<detector>-fire", "<detector>-fault"
    std::deque<outgoing> pending_;
    std::map<std::uint32_t, pending_command> commands_;
    std::uint32_t command_seq_ = 0;
};

// The connection's first line names the concentrator: "HELLO <id>".
fl_status identify(std::span<const std::uint8_t> first, std::string &identity) {
    const std::string s(first.begin(), first.end());
    const auto nl = s.find('\n');
    if (nl == std::string::npos) return s.size() < 64 && std::string("HELLO ").rfind(s.substr(0, 6), 0) == 0 ? FL_BUSY
                                                                                                          : FL_INVALID_ARGUMENT;
    const auto w = words(s.substr(0, nl));
    if (w.size() != 2 || w[0] != "HELLO" || w[1].size() > 32) return FL_INVALID_ARGUMENT;
    identity = w[1];
    return FL_OK;
}

}  // namespace

#ifndef CONCENTRATOR_PLUGIN_ID
#define CONCENTRATOR_PLUGIN_ID "org.firelink.examples.line-concentrator"
#endif

FIRELINK_PLUGIN((firelink::plugin_info{.id = CONCENTRATOR_PLUGIN_ID,
                                       .name = "Line concentrator (example)",
                                       .vendor = "firelink examples",
                                       .version = "1.0.0",
                                       .license = "Apache-2.0",
                                       .description = "A wireless smoke-detector concentrator speaking ASCII lines "
                                                      "over TCP, connecting in."}),
                (firelink::driver<concentrator>{
                    .id = "concentrator",
                    .name = "Smoke-detector concentrator",
                    .device_class = "vendor:org.firelink.examples.concentrator",
                    .description = "Per-detector fire alarms and faults with restores; silence and self-test.",
                    .wires = FL_WIRE_TCP_ACCEPTED,
                    .needs = {FL_EXT_TIMER, FL_EXT_TRANSPORT},
                    .identify = identify,
                    .confirms_on_commit = true,
                    .commands = {{"silence", "Silence a detector's sounder", 0},
                                 {"self_test", "Make a detector test itself", 0}}}))
