// firelink-sim uitd: a GB/T 26875.3 user information transmission device (UITD) that connects to a monitoring centre
// (firelink-host with the fire_panel driver, or any other centre), sends heartbeats, plays a script of fire alarms,
// faults and restores, resends a frame that is not confirmed in time, answers the centre's requests and control
// commands, and can send garbage, split or merged frames and wrong checksums.
//
// stdout: one JSON line per thing that happened (connected, connect_failed, disconnected, sent, confirm, deny, gave_up,
// request, control, done), so that a test can follow it. stderr: the log. Exit 0 when every frame that expected a
// confirm got an answer.
// --confirmed-log FILE: one JSON line per frame the centre confirmed, written as the confirm arrives, so that what the
// UITD now believes delivered (and will never send again) survives whatever happens to the centre.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <firelink/proto/gb26875.hpp>
#include <firelink/text.hpp>
#include <spdlog/spdlog.h>

#include "subcommand.hpp"

namespace {

namespace gb = firelink::proto::gb26875;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

volatile std::sig_atomic_t stop_requested = 0;

struct options {
    std::string host = "127.0.0.1";
    std::string port;
    std::uint64_t address = 0x0379;
    std::uint64_t centre = 0x015B38;
    int heartbeat_s = 30;
    int confirm_timeout_ms = 10000;
    int tries = 3;
    int duty_answer_ms = 500;
    int utc_offset_min = 480;
    int connect_attempts = 0;  // failed attempts in a row before giving up; 0: never give up, as a real UITD
    int backoff_ms = 500;
    int backoff_max_ms = 30000;
    bool exit_when_done = false;
    bool reconnect = false;
    bool steps_from_stdin = false;
    bool with_time = true;
    std::uint8_t version_user = 1;
    std::string script;
    std::string confirmed_log;
};

struct step {
    std::string verb;
    std::map<std::string, std::string> args;
    std::string line;
};

std::vector<step> parse_script(const std::string &text, std::string &error) {
    std::vector<step> steps;
    std::string cur;
    auto flush_step = [&](std::string s) {
        auto hash = s.find('#');
        if (hash != std::string::npos) s.resize(hash);
        std::vector<std::string> tokens;
        std::string tok;
        bool quoted = false, any = false;
        for (char c : s) {
            if (c == '"') {
                quoted = !quoted;
                any = true;
            } else if (!quoted && (c == ' ' || c == '\t' || c == '\r')) {
                if (any) tokens.push_back(tok), tok.clear(), any = false;
            } else {
                tok += c, any = true;
            }
        }
        if (any) tokens.push_back(tok);
        if (tokens.empty()) return;
        step st;
        st.verb = tokens[0];
        st.line = s;
        for (std::size_t i = 1; i < tokens.size(); ++i) {
            auto eq = tokens[i].find('=');
            if (eq == std::string::npos) st.args["_"] = tokens[i];
            else st.args[tokens[i].substr(0, eq)] = tokens[i].substr(eq + 1);
        }
        steps.push_back(std::move(st));
    };
    bool quoted = false;
    for (char c : text) {
        if (c == '"') quoted = !quoted;
        if (!quoted && (c == ';' || c == '\n')) {
            flush_step(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    flush_step(cur);
    static const char *verbs[] = {"wait", "heartbeat", "fire", "fault", "supervisory", "disable", "start", "feedback",
                                  "delay", "power_fault", "restore", "component", "system", "uitd", "analog",
                                  "operation", "uitd_operation", "vendor", "garbage", "bad_checksum", "split", "merge",
                                  "wait_confirms", "quit", "silent"};
    for (const auto &s : steps) {
        bool ok = false;
        for (auto v : verbs) ok = ok || s.verb == v;
        if (!ok) error = "unknown script step '" + s.verb + "' in: " + s.line;
    }
    return steps;
}

std::uint64_t num(const std::map<std::string, std::string> &a, const std::string &k, std::uint64_t fallback) {
    auto it = a.find(k);
    if (it == a.end()) return fallback;
    return std::stoull(it->second, nullptr, 0);
}

void say(const std::string &json) {
    std::printf("%s\n", json.c_str());
    std::fflush(stdout);
}

class uitd_sim {
public:
    explicit uitd_sim(options o) : opt_(std::move(o)) {}

    int run(std::vector<step> steps) {
        steps_ = std::move(steps);
        if (!opt_.confirmed_log.empty()) {
            confirmed_log_ = std::fopen(opt_.confirmed_log.c_str(), "a");
            if (!confirmed_log_) {
                spdlog::error("uitd: cannot open {}: {}", opt_.confirmed_log, std::strerror(errno));
                return 2;
            }
        }
        if (!connect_to_centre()) return 1;
        say("{\"event\":\"connected\",\"address\":\"" + gb::address_text(gb::make_address(opt_.address)) + "\"}");
        send_heartbeat();  // the first frame tells the centre who we are
        next_heartbeat_ = clock_type::now() + std::chrono::seconds(opt_.heartbeat_s);
        while (!stop_requested) {
            run_script();
            if (script_done() && opt_.exit_when_done && outstanding_.empty() && duty_due_.empty()) break;
            const auto now = clock_type::now();
            auto next = now + 1s;
            if (opt_.heartbeat_s > 0) next = std::min(next, next_heartbeat_);
            if (resume_at_) next = std::min(next, *resume_at_);
            for (auto &[serial, o] : outstanding_) next = std::min(next, o.deadline);
            for (auto &d : duty_due_) next = std::min(next, d);
            const int wait_ms = static_cast<int>(std::max<std::int64_t>(
                0, std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count()));
            pollfd p[2] = {{fd_, POLLIN, 0}, {0, POLLIN, 0}};
            const bool with_stdin = opt_.steps_from_stdin && !stdin_closed_;
            const int rc = ::poll(p, with_stdin ? 2 : 1, wait_ms);
            if (rc > 0 && with_stdin && p[1].revents) read_stdin_steps();
            if (rc > 0 && p[0].revents) {
                std::uint8_t buf[4096];
                const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
                if (n <= 0) {
                    say("{\"event\":\"disconnected\"}");
                    // --reconnect: like a real UITD, connect again keeping its state, script and unconfirmed frames
                    // (resent when their confirm is due); frames already confirmed are not sent again. A connection
                    // the centre closed before answering anything is a failed attempt: a centre that accepts and
                    // drops (as a host does while it stops) is not called again in a tight loop.
                    ::close(fd_);
                    dec_.reset();
                    if (opt_.reconnect && !stop_requested &&
                        (answered_ || failed_attempt("the centre closed the connection before answering")) &&
                        connect_to_centre()) {
                        say("{\"event\":\"connected\",\"address\":\"" + gb::address_text(gb::make_address(opt_.address)) + "\"}");
                        send_heartbeat();
                        next_heartbeat_ = clock_type::now() + std::chrono::seconds(opt_.heartbeat_s);
                        continue;
                    }
                    fd_ = -1;
                    disconnected_ = true;
                    break;
                }
                dec_.feed(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)));
                while (auto item = dec_.next()) {
                    if (!item->ok()) {
                        say(std::string("{\"event\":\"bad_frame\",\"reason\":\"") + gb::error_text(item->error) + "\"}");
                        continue;
                    }
                    answered_ = true;
                    failed_attempts_ = 0;
                    on_frame(item->value);
                }
            }
            timers();
        }
        const bool failed = gave_up_ > 0 || disconnected_ || !script_done();
        say("{\"event\":\"done\",\"confirmed\":" + std::to_string(confirmed_) + ",\"denied\":" + std::to_string(denied_) +
            ",\"gave_up\":" + std::to_string(gave_up_) + "}");
        if (fd_ >= 0) ::close(fd_);
        if (confirmed_log_) std::fclose(confirmed_log_);
        return failed ? 1 : 0;
    }

private:
    struct outstanding {
        std::vector<std::uint8_t> bytes;
        int tries = 1;
        clock_type::time_point deadline, first_sent;
        std::uint8_t type = 0;
        std::string what;  // the script step that sent it ("heartbeat" for one of the UITD's own)
    };
    struct component {
        std::uint8_t sys = 1, sys_addr = 1, type = 40;
        std::uint16_t status = 0x0001;
        std::string desc;
        std::int16_t analog_raw = 0;
        std::uint8_t analog_type = 3;
    };

    // Connects to the centre as a real UITD does: for as long as it takes (unless --connect-attempts).
    bool connect_to_centre() {
        for (;;) {
            std::string error;
            if (try_connect(error)) {
                answered_ = false;
                if (failed_attempts_ > 0)
                    spdlog::info("uitd: connected to {}:{} at attempt {}", opt_.host, opt_.port, failed_attempts_ + 1);
                return true;
            }
            if (!failed_attempt(error)) return false;
        }
    }

    // A failed attempt, counted until the centre answers: reported, logged, and waited after, --backoff-ms doubling
    // with each to --backoff-max-ms, the wait drawn from the upper half of that so that UITDs cut off together do
    // not all call back at once. Returns false when it was the last attempt (--connect-attempts) or a stop came.
    bool failed_attempt(const std::string &error) {
        const int attempt = ++failed_attempts_;
        const std::string report = "{\"event\":\"connect_failed\",\"attempt\":" + std::to_string(attempt) +
                                   ",\"error\":" + firelink::text::json_string(error);
        const std::string of = opt_.connect_attempts > 0 ? " of " + std::to_string(opt_.connect_attempts) : "";
        if (stop_requested || (opt_.connect_attempts > 0 && attempt >= opt_.connect_attempts)) {
            say(report + "}");
            spdlog::error("uitd: cannot connect to {}:{}: {} (attempt {}{}); giving up", opt_.host, opt_.port, error,
                          attempt, of);
            return false;
        }
        const double ceiling = std::min<double>(opt_.backoff_max_ms, opt_.backoff_ms * std::exp2(std::min(attempt - 1, 30)));
        const auto wait = std::chrono::milliseconds(
            static_cast<std::int64_t>(std::uniform_real_distribution<double>(ceiling / 2, ceiling)(rng_)));
        say(report + ",\"retry_ms\":" + std::to_string(wait.count()) + "}");
        spdlog::warn("uitd: cannot connect to {}:{}: {} (attempt {}{}); next attempt in {:.1f} s", opt_.host, opt_.port,
                     error, attempt, of, std::chrono::duration<double>(wait).count());
        for (const auto until = clock_type::now() + wait; !stop_requested && clock_type::now() < until;)
            std::this_thread::sleep_for(std::min<clock_type::duration>(50ms, until - clock_type::now()));
        return !stop_requested;
    }

    // One attempt; the name is resolved again each time, as the centre's address may change.
    bool try_connect(std::string &error) {
        addrinfo hints{}, *res = nullptr;
        hints.ai_socktype = SOCK_STREAM;
        if (int e = ::getaddrinfo(opt_.host.c_str(), opt_.port.c_str(), &hints, &res); e != 0) {
            error = gai_strerror(e);
            return false;
        }
        fd_ = ::socket(res->ai_family, SOCK_STREAM, 0);
        const bool ok = ::connect(fd_, res->ai_addr, res->ai_addrlen) == 0;
        if (!ok) {
            error = std::strerror(errno);
            ::close(fd_);
            fd_ = -1;
        }
        ::freeaddrinfo(res);
        if (ok) {
            int one = 1;
            ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        return ok;
    }

    gb::timestamp now_local() const {
        const auto s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        return gb::timestamp::from_utc_seconds(s + clock_offset_s_, opt_.utc_offset_min * 60);
    }
    std::optional<gb::timestamp> obj_time() const { return opt_.with_time ? std::optional(now_local()) : std::nullopt; }

    gb::frame make(std::uint8_t cmd, std::vector<std::uint8_t> data, std::optional<std::uint16_t> serial = {}) {
        gb::frame f;
        f.head.serial = serial ? *serial : next_serial_++;
        if (next_serial_ == 0) next_serial_ = 1;
        f.head.version_user = opt_.version_user;
        f.head.time = now_local();
        f.head.source = gb::make_address(opt_.address);
        f.head.destination = gb::make_address(opt_.centre);
        f.head.command = cmd;
        f.data = std::move(data);
        return f;
    }

    void write_bytes(const std::vector<std::uint8_t> &b) {
        if (merging_ > 0) {
            merge_buf_.insert(merge_buf_.end(), b.begin(), b.end());
            if (--merging_ > 0) return;
            auto all = std::move(merge_buf_);
            merge_buf_.clear();
            raw_write(all);
            return;
        }
        if (split_parts_ > 1) {
            const std::size_t parts = static_cast<std::size_t>(split_parts_);
            split_parts_ = 0;
            const std::size_t step = std::max<std::size_t>(1, b.size() / parts);
            for (std::size_t at = 0; at < b.size(); at += step) {
                raw_write(std::vector<std::uint8_t>(b.begin() + static_cast<std::ptrdiff_t>(at),
                                                    b.begin() + static_cast<std::ptrdiff_t>(std::min(b.size(), at + step))));
                std::this_thread::sleep_for(20ms);
            }
            return;
        }
        raw_write(b);
    }

    void raw_write(const std::vector<std::uint8_t> &b) {
        if (silent_) return;  // `silent on`: connected, sending nothing (heartbeats, resends and answers included)
        std::size_t at = 0;
        while (at < b.size()) {
            const ssize_t n = ::send(fd_, b.data() + at, b.size() - at, MSG_NOSIGNAL);
            if (n <= 0) {
                if (errno == EINTR) continue;
                spdlog::error("uitd: write failed: {}", std::strerror(errno));
                return;
            }
            at += static_cast<std::size_t>(n);
        }
    }

    // A frame that expects a confirm: tracked until confirmed, denied or given up after opt_.tries sends.
    void send_tracked(std::uint8_t cmd, std::vector<std::uint8_t> data) {
        auto f = make(cmd, std::move(data));
        auto bytes = gb::encode(f);
        if (corrupt_next_) {
            bytes[bytes.size() - 3] ^= 0x5a;
            corrupt_next_ = false;
        }
        const std::uint8_t type = f.data.empty() ? 0 : f.data[0];
        auto &o = outstanding_[f.head.serial];
        o.bytes = bytes;
        o.first_sent = clock_type::now();
        o.deadline = o.first_sent + std::chrono::milliseconds(opt_.confirm_timeout_ms);
        o.type = type;
        o.what = step_line_.empty() ? (f.data.empty() ? "heartbeat" : "") : step_line_;
        write_bytes(bytes);
        say("{\"event\":\"sent\",\"serial\":" + std::to_string(f.head.serial) + ",\"command\":" + std::to_string(cmd) +
            ",\"type\":" + std::to_string(type) + ",\"try\":1}");
    }

    void send_heartbeat() {
        send_tracked(2, {});
    }

    void on_frame(const gb::frame &f) {
        const auto serial = f.head.serial;
        if (f.head.command == 3 || f.head.command == 6) {
            auto it = outstanding_.find(serial);
            const bool ok = f.head.command == 3;
            std::string extra;
            if (it != outstanding_.end()) {
                const auto rtt = std::chrono::duration<double, std::milli>(clock_type::now() - it->second.first_sent).count();
                char b[64];
                std::snprintf(b, sizeof b, ",\"type\":%u,\"tries\":%d,\"ms\":%.3f", it->second.type, it->second.tries, rtt);
                extra = b;
                if (ok && confirmed_log_) {
                    std::fprintf(confirmed_log_, "{\"serial\":%u,\"type\":%u,\"tries\":%d,\"step\":%s}\n", serial,
                                 it->second.type, it->second.tries,
                                 firelink::text::json_string(it->second.what).c_str());
                    std::fflush(confirmed_log_);
                }
                outstanding_.erase(it);
            } else {
                extra = ",\"unknown\":true";
            }
            (ok ? confirmed_ : denied_)++;
            say(std::string("{\"event\":\"") + (ok ? "confirm" : "deny") + "\",\"serial\":" + std::to_string(serial) + extra + "}");
            return;
        }
        if (f.head.command != 1 && f.head.command != 4) return;
        const auto app = gb::parse_app_data(f.data);
        const std::uint8_t type = f.data.empty() ? 0 : f.data[0];
        say(std::string("{\"event\":\"") + (f.head.command == 1 ? "control" : "request") + "\",\"serial\":" +
            std::to_string(serial) + ",\"type\":" + std::to_string(type) + "}");
        if (!app.ok() || !app.value->known || app.value->objects.empty()) {
            answer(f, gb::command::deny);
            return;
        }
        const auto &obj = app.value->objects.front();
        if (f.head.command == 1) {
            if (type == 90) {
                const auto want = std::get<gb::clock_value>(obj).time.as_utc_seconds();
                const auto have = now_local().as_utc_seconds();
                if (want && have) clock_offset_s_ += *want - *have;
            } else if (type == 91) {
                if (opt_.duty_answer_ms >= 0) duty_due_.push_back(clock_type::now() + std::chrono::milliseconds(opt_.duty_answer_ms));
            } else if (type != 89) {
                answer(f, gb::command::deny);
                return;
            }
            answer(f, gb::command::confirm);
            return;
        }
        // A request: the response carries the request's serial.
        std::vector<std::uint8_t> data;
        auto sys_of = [&](const gb::info_object &o) -> std::pair<std::uint8_t, std::uint8_t> {
            if (auto *r = std::get_if<gb::read_system>(&o)) return {r->system_type, r->system_address};
            if (auto *r = std::get_if<gb::read_component>(&o)) return {r->system_type, r->system_address};
            if (auto *r = std::get_if<gb::read_records>(&o)) return {r->system_type, r->system_address};
            return {1, 1};
        };
        const auto [sys, sys_addr] = sys_of(obj);
        const component *comp = nullptr;
        if (auto *r = std::get_if<gb::read_component>(&obj)) {
            auto it = components_.find(r->component_address);
            if (it != components_.end()) comp = &it->second;
        }
        component dummy;
        if (!comp && (type == 62 || type == 63 || type == 67)) comp = &dummy;
        const std::uint32_t caddr = std::holds_alternative<gb::read_component>(obj) ? std::get<gb::read_component>(obj).component_address : 0;
        switch (type) {
        case 81: data = gb::make_app_data(21, gb::uitd_status{uitd_status_, obj_time()}); break;
        case 85: data = gb::make_app_data(25, gb::uitd_version{1, 0}); break;
        case 86: data = gb::make_app_data(26, gb::uitd_config{gb::utf8_to_gb18030("firelink-sim UITD 模拟")}); break;
        case 88: data = gb::make_app_data(28, gb::clock_value{now_local()}); break;
        case 61: data = gb::make_app_data(1, gb::system_status{sys, sys_addr, current_system_status(sys, sys_addr), obj_time()}); break;
        case 62: data = gb::make_app_data(2, gb::component_status{{comp->sys, comp->sys_addr, comp->type, caddr}, comp->status, gb::make_description(comp->desc), obj_time()}); break;
        case 63: data = gb::make_app_data(3, gb::component_analog{{comp->sys, comp->sys_addr, comp->type, caddr}, comp->analog_type, comp->analog_raw, obj_time()}); break;
        case 65: data = gb::make_app_data(5, gb::system_version{sys, sys_addr, 2, 1}); break;
        case 66: data = gb::make_app_data(6, gb::system_config{sys, sys_addr, gb::utf8_to_gb18030("模拟火灾报警控制器")}); break;
        case 67: data = gb::make_app_data(7, gb::component_config{{comp->sys, comp->sys_addr, comp->type, caddr}, gb::make_description(comp->desc)}); break;
        case 68: data = gb::make_app_data(8, gb::system_time{sys, sys_addr, now_local()}); break;
        case 64: data = {4, 0}; break;
        case 84: data = {24, 0}; break;
        default: answer(f, gb::command::deny); return;
        }
        write_bytes(gb::encode(make(5, std::move(data), serial)));
    }

    // A system's state as its controller reports it now: the last `system` step, with the fire alarm, fault, disabled,
    // supervisory, started, feedback and delay bits (1..7) of any of its components that has them.
    std::uint16_t current_system_status(std::uint8_t sys, std::uint8_t sys_addr) {
        std::uint16_t st = system_status_[{sys, sys_addr}];
        for (const auto &[addr, c] : components_)
            if (c.sys == sys && c.sys_addr == sys_addr) st = static_cast<std::uint16_t>(st | (c.status & 0x00FEu));
        return static_cast<std::uint16_t>(st | 1u);
    }

    void answer(const gb::frame &f, gb::command c) {
        write_bytes(gb::encode(gb::answer_to(f.head, c, now_local())));
    }

    void timers() {
        const auto now = clock_type::now();
        if (opt_.heartbeat_s > 0 && now >= next_heartbeat_) {
            send_heartbeat();
            next_heartbeat_ = now + std::chrono::seconds(opt_.heartbeat_s);
        }
        for (auto it = duty_due_.begin(); it != duty_due_.end();) {
            if (now < *it) {
                ++it;
                continue;
            }
            send_tracked(2, gb::make_app_data(24, gb::uitd_operation{0x20, 1, obj_time()}));
            it = duty_due_.erase(it);
        }
        for (auto it = outstanding_.begin(); it != outstanding_.end();) {
            auto &o = it->second;
            if (now < o.deadline) {
                ++it;
                continue;
            }
            if (o.tries >= opt_.tries) {
                ++gave_up_;
                say("{\"event\":\"gave_up\",\"serial\":" + std::to_string(it->first) + ",\"tries\":" + std::to_string(o.tries) + "}");
                it = outstanding_.erase(it);
                continue;
            }
            ++o.tries;
            o.deadline = now + std::chrono::milliseconds(opt_.confirm_timeout_ms);
            raw_write(o.bytes);
            say("{\"event\":\"sent\",\"serial\":" + std::to_string(it->first) + ",\"type\":" + std::to_string(o.type) +
                ",\"try\":" + std::to_string(o.tries) + "}");
            ++it;
        }
    }

    bool script_done() const { return pc_ >= steps_.size() && !resume_at_; }

    // --stdin: more steps, one a line, appended to the script as they arrive.
    void read_stdin_steps() {
        char buf[1024];
        const ssize_t n = ::read(0, buf, sizeof buf);
        if (n <= 0) {
            stdin_closed_ = true;
            return;
        }
        stdin_buf_.append(buf, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = stdin_buf_.find('\n')) != std::string::npos;) {
            std::string error;
            auto more = parse_script(stdin_buf_.substr(0, nl), error);
            stdin_buf_.erase(0, nl + 1);
            if (!error.empty()) spdlog::error("uitd: {}", error);
            else steps_.insert(steps_.end(), more.begin(), more.end());
        }
    }

    void run_script() {
        while (!script_done()) {
            const auto now = clock_type::now();
            if (resume_at_) {
                if (now < *resume_at_) return;
                resume_at_.reset();
                continue;
            }
            const auto &s = steps_[pc_];
            if (s.verb == "wait_confirms" && !outstanding_.empty()) return;
            ++pc_;
            try {
                do_step(s);
            } catch (const std::exception &e) {
                spdlog::error("uitd: script step '{}': {}", s.line, e.what());
                stop_requested = 1;
                return;
            }
        }
    }

    component &comp_for(const std::map<std::string, std::string> &a) {
        std::uint32_t addr = static_cast<std::uint32_t>(num(a, "addr", num(a, "loop", 1) | (num(a, "point", 1) << 16)));
        auto &c = components_[addr];
        c.sys = static_cast<std::uint8_t>(num(a, "sys", c.sys));
        c.sys_addr = static_cast<std::uint8_t>(num(a, "sys_addr", c.sys_addr));
        c.type = static_cast<std::uint8_t>(num(a, "type", c.type));
        if (a.count("desc")) c.desc = a.at("desc");
        last_addr_ = addr;
        return c;
    }

    void send_component(std::uint32_t addr) {
        const auto &c = components_[addr];
        send_tracked(2, gb::make_app_data(2, gb::component_status{{c.sys, c.sys_addr, c.type, addr}, c.status,
                                                                  gb::make_description(c.desc), obj_time()}));
    }

    static int bit_of(const std::string &name) {
        static const std::map<std::string, int> bits = {{"fire", 1}, {"fault", 2}, {"disable", 3}, {"supervisory", 4},
                                                        {"start", 5}, {"feedback", 6}, {"delay", 7}, {"power_fault", 8}};
        auto it = bits.find(name);
        return it == bits.end() ? -1 : it->second;
    }

    void do_step(const step &s) {
        // Frames this step sends remember it (--confirmed-log).
        struct remember {
            std::string &line;
            ~remember() { line.clear(); }
        } r{step_line_};
        step_line_ = s.line;
        const auto &a = s.args;
        if (s.verb == "wait") {
            resume_at_ = clock_type::now() + std::chrono::milliseconds(num(a, "ms", a.count("_") ? std::stoull(a.at("_")) : 0));
        } else if (s.verb == "heartbeat") {
            send_heartbeat();
        } else if (bit_of(s.verb) >= 0) {
            auto &c = comp_for(a);
            c.status = static_cast<std::uint16_t>(c.status | (1u << bit_of(s.verb)));
            send_component(last_addr_);
        } else if (s.verb == "restore") {
            auto &c = comp_for(a);
            const std::string what = a.count("bit") ? a.at("bit") : "all";
            if (what == "all") c.status = 0x0001;
            else if (bit_of(what) >= 0) c.status = static_cast<std::uint16_t>(c.status & ~(1u << bit_of(what)));
            else throw std::runtime_error("unknown bit '" + what + "'");
            send_component(last_addr_);
        } else if (s.verb == "component") {
            auto &c = comp_for(a);
            c.status = static_cast<std::uint16_t>(num(a, "status", c.status));
            send_component(last_addr_);
        } else if (s.verb == "system") {
            const auto sys = static_cast<std::uint8_t>(num(a, "sys", 1)), addr = static_cast<std::uint8_t>(num(a, "sys_addr", 1));
            const auto st = static_cast<std::uint16_t>(num(a, "status", 1));
            system_status_[{sys, addr}] = st;
            send_tracked(2, gb::make_app_data(1, gb::system_status{sys, addr, st, obj_time()}));
        } else if (s.verb == "uitd") {
            uitd_status_ = static_cast<std::uint8_t>(num(a, "status", 1));
            send_tracked(2, gb::make_app_data(21, gb::uitd_status{uitd_status_, obj_time()}));
        } else if (s.verb == "analog") {
            auto &c = comp_for(a);
            c.analog_type = static_cast<std::uint8_t>(num(a, "analog", 3));
            c.analog_raw = static_cast<std::int16_t>(std::stoll(a.count("raw") ? a.at("raw") : "0", nullptr, 0));
            send_tracked(2, gb::make_app_data(3, gb::component_analog{{c.sys, c.sys_addr, c.type, last_addr_},
                                                                      c.analog_type, c.analog_raw, obj_time()}));
        } else if (s.verb == "operation") {
            send_tracked(2, gb::make_app_data(4, gb::system_operation{static_cast<std::uint8_t>(num(a, "sys", 1)),
                                                                      static_cast<std::uint8_t>(num(a, "sys_addr", 1)),
                                                                      static_cast<std::uint8_t>(num(a, "flags", 0)),
                                                                      static_cast<std::uint8_t>(num(a, "op", 1)), obj_time()}));
        } else if (s.verb == "uitd_operation") {
            send_tracked(2, gb::make_app_data(24, gb::uitd_operation{static_cast<std::uint8_t>(num(a, "flags", 0)),
                                                                     static_cast<std::uint8_t>(num(a, "op", 1)), obj_time()}));
        } else if (s.verb == "vendor") {
            std::vector<std::uint8_t> data{static_cast<std::uint8_t>(num(a, "type", 200)), 1};
            const std::string hex = a.count("hex") ? a.at("hex") : "";
            for (std::size_t i = 0; i + 1 < hex.size(); i += 2) data.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
            send_tracked(2, std::move(data));
        } else if (s.verb == "garbage") {
            std::vector<std::uint8_t> junk(num(a, "n", 16));
            for (std::size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<std::uint8_t>(i % 3 == 0 ? '@' : 0x17 * i + 5);
            write_bytes(junk);
            say("{\"event\":\"garbage\",\"bytes\":" + std::to_string(junk.size()) + "}");
        } else if (s.verb == "silent") {
            silent_ = !a.count("_") || a.at("_") != "off";
        } else if (s.verb == "bad_checksum") {
            corrupt_next_ = true;
        } else if (s.verb == "split") {
            split_parts_ = static_cast<int>(num(a, "parts", 3));
        } else if (s.verb == "merge") {
            merging_ = static_cast<int>(num(a, "n", 2));
        } else if (s.verb == "quit") {
            pc_ = steps_.size();
            stop_requested = 1;
        }
    }

    options opt_;
    std::FILE *confirmed_log_ = nullptr;
    std::string step_line_;  // the script step being run
    int fd_ = -1;
    gb::stream_decoder dec_;
    std::vector<step> steps_;
    std::size_t pc_ = 0;
    std::optional<clock_type::time_point> resume_at_;
    clock_type::time_point next_heartbeat_;
    std::map<std::uint16_t, outstanding> outstanding_;
    std::vector<clock_type::time_point> duty_due_;
    std::map<std::uint32_t, component> components_;
    std::map<std::pair<std::uint8_t, std::uint8_t>, std::uint16_t> system_status_;
    std::uint8_t uitd_status_ = 0x01;
    std::uint32_t last_addr_ = 0;
    std::uint16_t next_serial_ = 1;
    std::int64_t clock_offset_s_ = 0;
    bool corrupt_next_ = false, silent_ = false;
    int split_parts_ = 0;
    int merging_ = 0;
    std::vector<std::uint8_t> merge_buf_;
    int confirmed_ = 0, denied_ = 0, gave_up_ = 0;
    bool disconnected_ = false;
    bool stdin_closed_ = false;
    std::string stdin_buf_;
    int failed_attempts_ = 0;                    // connect attempts in a row since the centre last answered
    bool answered_ = false;                      // the centre sent a frame on this connection
    std::mt19937 rng_{std::random_device{}()};  // the jitter of the connect backoff
};

void usage(FILE *to) {
    std::fprintf(to,
        "usage: firelink-sim uitd --connect HOST:PORT [options]\n\n"
        "A GB/T 26875.3 user information transmission device. Prints one JSON line per event on stdout.\n"
        "  --connect HOST:PORT        the monitoring centre (firelink-host's [[listener]])\n"
        "  --address N                this UITD's address (default 0x0379; identity 000000000379)\n"
        "  --centre N                 the centre's address (default 0x015B38)\n"
        "  --heartbeat-s N            a heartbeat (empty send frame) every N s; 0 = none (default 30)\n"
        "  --confirm-timeout-ms N     resend a frame not confirmed within N ms (default 10000)\n"
        "  --tries N                  sends of one frame before giving up (default 3)\n"
        "  --duty-answer-ms N         answer a duty check (type 91) after N ms; -1 = never (default 500)\n"
        "  --utc-offset-min N         the UITD's clock zone (default 480, China)\n"
        "  --no-time                  send information objects without their time label\n"
        "  --version-user N           the protocol version's user byte (default 1)\n"
        "  --script STEPS             steps separated by ';' (see below); repeatable\n"
        "  --scenario FILE            steps from a file, one per line, '#' comments\n"
        "  --exit-when-done           exit once the script ran and every frame was answered or given up\n"
        "  --stdin                    also take steps from standard input, one a line, as they arrive\n"
        "  --reconnect                when the centre drops the connection, connect again, keeping the state,\n"
        "                             script and unconfirmed frames\n"
        "  --connect-attempts N       failed connect attempts in a row before giving up; 0 = never (default 0)\n"
        "  --backoff-ms N             the wait after the first failed attempt, doubling after each (default 500)\n"
        "  --backoff-max-ms N         the longest wait between attempts (default 30000); each wait is drawn\n"
        "                             between half of it and all of it\n"
        "  --confirmed-log FILE       append one JSON line per confirmed frame: serial, type, tries and the\n"
        "                             script step that sent it (\"heartbeat\" for the UITD's own)\n\n"
        "Steps (key=value arguments; a component is addr=N or loop=L point=P, with sys= sys_addr= type= desc=):\n"
        "  wait MS | heartbeat | fire|fault|supervisory|disable|start|feedback|delay|power_fault <component>\n"
        "  restore <component> [bit=fire|fault|...|all] | component <component> status=S | system status=S\n"
        "  uitd status=S | analog <component> analog=T raw=V | operation flags=F | uitd_operation flags=F\n"
        "  vendor type=T hex=... | garbage n=N | bad_checksum | split parts=N | merge n=N | wait_confirms | quit\n"
        "  silent [on|off]: stay connected and send nothing\n");
}

void on_signal(int) { stop_requested = 1; }

int run(int argc, char **argv) {
    options o;
    std::string script;
    auto need = [&](int &i) -> const char * {
        if (i + 1 >= argc) throw std::runtime_error(std::string(argv[i]) + " needs a value");
        return argv[++i];
    };
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "-h" || a == "--help") {
                usage(stdout);
                return 0;
            } else if (a == "--connect") {
                const std::string hp = need(i);
                const auto colon = hp.rfind(':');
                if (colon == std::string::npos) throw std::runtime_error("--connect wants HOST:PORT");
                o.host = hp.substr(0, colon);
                o.port = hp.substr(colon + 1);
                if (o.host.size() > 2 && o.host.front() == '[') o.host = o.host.substr(1, o.host.size() - 2);
            } else if (a == "--address") o.address = std::stoull(need(i), nullptr, 0);
            else if (a == "--centre") o.centre = std::stoull(need(i), nullptr, 0);
            else if (a == "--heartbeat-s") o.heartbeat_s = std::stoi(need(i));
            else if (a == "--confirm-timeout-ms") o.confirm_timeout_ms = std::stoi(need(i));
            else if (a == "--tries") o.tries = std::stoi(need(i));
            else if (a == "--duty-answer-ms") o.duty_answer_ms = std::stoi(need(i));
            else if (a == "--utc-offset-min") o.utc_offset_min = std::stoi(need(i));
            else if (a == "--no-time") o.with_time = false;
            else if (a == "--version-user") o.version_user = static_cast<std::uint8_t>(std::stoi(need(i)));
            else if (a == "--script") script += std::string(need(i)) + "\n";
            else if (a == "--scenario") {
                std::ifstream in(need(i));
                if (!in) throw std::runtime_error(std::string("cannot read ") + argv[i]);
                std::stringstream ss;
                ss << in.rdbuf();
                script += ss.str() + "\n";
            } else if (a == "--exit-when-done") o.exit_when_done = true;
            else if (a == "--stdin") o.steps_from_stdin = true;
            else if (a == "--reconnect") o.reconnect = true;
            else if (a == "--connect-attempts") o.connect_attempts = std::stoi(need(i));
            else if (a == "--backoff-ms") o.backoff_ms = std::stoi(need(i));
            else if (a == "--backoff-max-ms") o.backoff_max_ms = std::stoi(need(i));
            else if (a == "--confirmed-log") o.confirmed_log = need(i);
            else throw std::runtime_error("unknown option " + a);
        }
        if (o.port.empty()) throw std::runtime_error("--connect HOST:PORT is required");
        if (o.tries < 1 || o.confirm_timeout_ms < 1) throw std::runtime_error("--tries and --confirm-timeout-ms must be >= 1");
        if (o.connect_attempts < 0 || o.backoff_ms < 1 || o.backoff_max_ms < o.backoff_ms)
            throw std::runtime_error("--connect-attempts must be >= 0, --backoff-ms >= 1, --backoff-max-ms >= --backoff-ms");
    } catch (const std::exception &e) {
        std::fprintf(stderr, "firelink-sim uitd: %s\n", e.what());
        usage(stderr);
        return 2;
    }
    std::string error;
    auto steps = parse_script(script, error);
    if (!error.empty()) {
        std::fprintf(stderr, "firelink-sim uitd: %s\n", error.c_str());
        return 2;
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    return uitd_sim(o).run(std::move(steps));
}

const firelink::tools::registration reg{"uitd", "a GB/T 26875.3 user information transmission device (fire panel)", &run};

}  // namespace
