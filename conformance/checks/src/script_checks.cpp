// The device scripts' checks (script.*): the suite plays the vendor's device from its scripts (docs/device-scripts.md)
// over a real host wire — a host listener the device connects to (tcp_accepted), a loopback listener the host
// connects to (tcp_client), or a pty pair (serial) — with the driver in the host's own device runtime, then plays
// them again mutated: split at every byte, frames coalesced, garbage between frames, frames sent twice, the
// connection cut, the host answering FL_BUSY, a restart in the middle, silence, commits held. Each mutation is a
// check of its own, so that a report says which invariant a driver broke.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <regex>
#include <set>
#include <sstream>

#include <firelink/ext/identify.h>
#include <firelink/payload.h>
#include <firelink/plugin.h>
#include <firelink/proto/modbus.hpp>
#include <firelink/transport/link.hpp>

#include "device_source.hpp"
#include "firelink/core/lanes.hpp"
#include "scenario.hpp"

namespace firelink::conform {

namespace {

using namespace std::chrono_literals;

enum class mutation { play, split, coalesced, garbage, duplicate, reconnect, busy, restart, commit };

// ---- templates and patterns -------------------------------------------------------------------------------------
using vars = std::map<std::string, std::string>;

bool hex_bytes(std::string hex, std::string &out) {
    std::erase(hex, ' ');  // "0000 0006 01 04" reads as the protocol's fields
    if (hex.size() % 2) return false;
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        if (!std::isxdigit(static_cast<unsigned char>(hex[i])) || !std::isxdigit(static_cast<unsigned char>(hex[i + 1])))
            return false;
        out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    }
    return true;
}

// A template's bytes: {seq}, {id} and captured names replaced, {x:HEX} as bytes, {{ and }} as braces. An unknown
// name is an error of the script, reported with the step.
bool expand(const std::string &tpl, const vars &v, std::string &out, std::string &why) {
    out.clear();
    for (std::size_t i = 0; i < tpl.size(); ++i) {
        if (tpl.compare(i, 2, "{{") == 0 || tpl.compare(i, 2, "}}") == 0) {
            out += tpl[i++];
            continue;
        }
        if (tpl[i] != '{') {
            out += tpl[i];
            continue;
        }
        const auto close = tpl.find('}', i);
        if (close == std::string::npos) return why = "an unclosed '{' in '" + tpl + "'", false;
        const std::string name = tpl.substr(i + 1, close - i - 1);
        if (name.rfind("x:", 0) == 0) {
            if (!hex_bytes(name.substr(2), out)) return why = "'{" + name + "}' is not hex bytes", false;
        } else if (name == "crc16") {
            // Modbus RTU's CRC-16 of the bytes before it (the SDK's codec computes it), low byte first.
            const std::uint16_t crc = proto::modbus::crc16(
                {reinterpret_cast<const std::uint8_t *>(out.data()), out.size()});
            out += static_cast<char>(crc & 0xFF);
            out += static_cast<char>(crc >> 8);
        } else if (name.rfind("sum8:", 0) == 0) {
            // The sum modulo 256 of the bytes from offset K to here (GB/T 26875.3's check byte is {sum8:2}).
            std::size_t from = 0;
            try {
                from = std::stoul(name.substr(5));
            } catch (const std::exception &) {
                return why = "'{" + name + "}': the offset is not a number", false;
            }
            if (from > out.size()) return why = "'{" + name + "}': the frame has only " + std::to_string(out.size()) + " bytes before it", false;
            unsigned sum = 0;
            for (std::size_t k = from; k < out.size(); ++k) sum += static_cast<unsigned char>(out[k]);
            out += static_cast<char>(sum & 0xFF);
        } else if (const auto it = v.find(name); it != v.end()) {
            out += it->second;
        } else {
            return why = "'{" + name + "}' names nothing known here (seq, last, id, x:HEX, crc16, sum8:K, or a value "
                         "captured earlier)",
                   false;
        }
        i = close;
    }
    return true;
}

// A pattern as a regex over bytes: literal bytes escaped, {any} any bytes but a line end, {=NAME} a token captured
// as NAME, the template placeholders as their values. The names captured, in order, go to `names`.
bool compile(const std::string &pat, const vars &v, std::regex &re, std::vector<std::string> &names,
             std::string &why) {
    std::string rx;
    auto literal = [&](const std::string &bytes) {
        for (unsigned char c : bytes) {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            rx += std::isalnum(c) ? std::string(1, static_cast<char>(c)) : std::string(b);
        }
    };
    for (std::size_t i = 0; i < pat.size(); ++i) {
        if (pat.compare(i, 2, "{{") == 0 || pat.compare(i, 2, "}}") == 0) {
            literal(std::string(1, pat[i++]));
            continue;
        }
        if (pat[i] != '{') {
            literal(std::string(1, pat[i]));
            continue;
        }
        const auto close = pat.find('}', i);
        if (close == std::string::npos) return why = "an unclosed '{' in '" + pat + "'", false;
        const std::string name = pat.substr(i + 1, close - i - 1);
        // {any:N} and {=NAME:N}: exactly N bytes, whatever they are (a binary protocol's fields).
        const auto colon = name.find(':');
        std::size_t width = 0;
        if (colon != std::string::npos && (name.rfind("any:", 0) == 0 || name[0] == '=')) {
            try {
                width = std::stoul(name.substr(colon + 1));
            } catch (const std::exception &) {
                return why = "'{" + name + "}': the width is not a number of bytes", false;
            }
            if (width == 0 || width > 4096) return why = "'{" + name + "}': a width of 1 to 4096 bytes", false;
        }
        if (name == "any") {
            rx += "[^\\r\\n]*?";
        } else if (width && name[0] != '=') {
            rx += "[\\s\\S]{" + std::to_string(width) + "}";
        } else if (width) {
            names.push_back(name.substr(1, colon - 1));
            rx += "([\\s\\S]{" + std::to_string(width) + "})";
        } else if (!name.empty() && name[0] == '=') {
            names.push_back(name.substr(1));
            rx += "([^\\s]+?)";
        } else if (name == "crc16" || name.rfind("sum8:", 0) == 0) {
            return why = "'{" + name + "}' is computed in a template; in a pattern, match a check value with {any:N}",
                   false;
        } else {
            std::string bytes;
            if (!expand("{" + name + "}", v, bytes, why)) return false;
            literal(bytes);
        }
        i = close;
    }
    try {
        re = std::regex(rx, std::regex::ECMAScript);
    } catch (const std::regex_error &e) {
        return why = "the pattern '" + pat + "' does not compile: " + e.what(), false;
    }
    return true;
}

std::string printable(const std::string &b) {
    std::string o;
    for (unsigned char c : b) {
        if (c == '\n') o += "\\n";
        else if (c == '\r') o += "\\r";
        else if (c >= 0x20 && c < 0x7f) o += static_cast<char>(c);
        else {
            char h[8];
            std::snprintf(h, sizeof h, "\\x%02x", c);
            o += h;
        }
    }
    return o.size() > 160 ? o.substr(0, 160) + "..." : o;
}

// ---- the device's end of the wire -------------------------------------------------------------------------------
// What the driver writes is read by a thread into `rx_`; the player waits on it for the patterns it expects.
class device_end {
public:
    static constexpr std::size_t max_unread = 16 * 1024;  // far above any frame a script's device expects
    ~device_end() { close(); }
    void adopt(int fd) {
        close();
        fd_ = fd;
        eof_ = false;
        stop_ = false;
        const int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // a split write must leave as split
        reader_ = std::thread([this] { read_loop(); });
    }
    void close() {
        stop_ = true;
        if (reader_.joinable()) reader_.join();
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }
    bool open() const { return fd_ >= 0; }
    // Whole, or a byte at a time with a pause after each, so that every byte boundary is a read boundary.
    bool write(const std::string &bytes, bool bytewise) {
        if (fd_ < 0) return false;
        for (std::size_t at = 0; at < bytes.size();) {
            const std::size_t n = bytewise ? 1 : bytes.size() - at;
            const auto w = ::write(fd_, bytes.data() + at, n);
            if (w <= 0) return false;
            at += static_cast<std::size_t>(w);
            if (bytewise) std::this_thread::sleep_for(3ms);
        }
        return true;
    }
    // Waits for `re` in what the driver wrote: at the start when `strict` (anything before it is reported in
    // `unexpected`), else anywhere. What the match ends at is consumed. The captures go to `got`.
    // `answer`: for a device that speaks first and also answers requests ([device] answers), called with what the
    // driver wrote before each look: it takes the requests at its start and writes their answers.
    using answerer = std::function<void(std::string &rx)>;
    bool expect(const std::regex &re, const std::vector<std::string> &names, steady::time_point deadline, bool strict,
                vars &got, std::string &unexpected, const answerer &answer = {}) {
        std::unique_lock lock(mutex_);
        for (;;) {
            if (answer) answer(rx_);
            std::smatch m;
            if (std::regex_search(rx_, m, re)) {
                if (strict && m.position(0) != 0) {
                    unexpected = rx_.substr(0, static_cast<std::size_t>(m.position(0)));
                    return false;
                }
                for (std::size_t i = 0; i < names.size() && i + 1 < m.size(); ++i) got[names[i]] = m[i + 1].str();
                rx_.erase(0, static_cast<std::size_t>(m.position(0) + m.length(0)));
                return true;
            }
            if (eof_) {  // the connection closed: nothing more will come
                unexpected = rx_;
                return false;
            }
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
                std::smatch late;
                if (std::regex_search(rx_, late, re)) continue;
                unexpected = rx_;
                return false;
            }
        }
    }
    // A device that answers: the first of `res` that matches at the very start of what the driver wrote, consumed
    // (its captures into `got`); -1 when none did by `deadline`, and `pending` holds what waits unanswered.
    int match_front(const std::vector<std::regex> &res, const std::vector<std::vector<std::string>> &names, vars &got,
                    steady::time_point deadline, std::string &pending) {
        std::unique_lock lock(mutex_);
        for (;;) {
            for (std::size_t k = 0; k < res.size(); ++k) {
                std::smatch m;
                if (!std::regex_search(rx_, m, res[k], std::regex_constants::match_continuous)) continue;
                for (std::size_t i = 0; i < names[k].size() && i + 1 < m.size(); ++i) got[names[k][i]] = m[i + 1].str();
                rx_.erase(0, static_cast<std::size_t>(m.length(0)));
                return static_cast<int>(k);
            }
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
                pending = rx_;
                return -1;
            }
        }
    }
    void drop(std::size_t n) {
        std::lock_guard lock(mutex_);
        rx_.erase(0, std::min(n, rx_.size()));
    }
    std::string take() {
        std::lock_guard lock(mutex_);
        return std::exchange(rx_, {});
    }
    bool eof() const { return eof_; }  // the other side closed

private:
    void read_loop() {
        while (!stop_) {
            // Bounded: what the driver wrote and nothing consumed stops the reading (the driver then meets the
            // wire's backpressure), and keeps the patterns' matching within the stack std::regex needs.
            bool full;
            {
                std::lock_guard lock(mutex_);
                full = rx_.size() >= max_unread;
            }
            if (full) {
                std::this_thread::sleep_for(20ms);
                continue;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            char b[4096];
            const auto n = ::read(fd_, b, sizeof b);
            if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == EIO)) {
                    std::this_thread::sleep_for(20ms);  // a pty whose other end is not open yet
                    continue;
                }
                std::lock_guard lock(mutex_);
                eof_ = true;
                cv_.notify_all();
                return;
            }
            std::lock_guard lock(mutex_);
            rx_.append(b, static_cast<std::size_t>(n));
            cv_.notify_all();
        }
    }
    int fd_ = -1;
    std::atomic<bool> stop_{false}, eof_{false};
    std::thread reader_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::string rx_;
};

int loopback_socket(std::uint16_t port, bool listen, std::uint16_t *bound = nullptr) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    socklen_t len = sizeof a;
    const bool ok = listen ? (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 && ::listen(fd, 4) == 0 &&
                              ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0)
                           : ::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    if (!ok) {
        ::close(fd);
        return -1;
    }
    if (bound) *bound = ntohs(a.sin_port);
    return fd;
}

const fl_plugin_identify *identify_of(const core::plugin &p) {
    const auto &e = p.entry();
    const auto *ident = e.get_extension ? static_cast<const fl_plugin_identify *>(e.get_extension(FL_EXT_IDENTIFY))
                                        : nullptr;
    return ident && FL_HAS_FIELD(ident, fl_plugin_identify, identify) && ident->identify ? ident : nullptr;
}

std::uint32_t wire_bit(const std::string &wire) {
    return wire == "tcp_accepted" ? FL_WIRE_TCP_ACCEPTED
           : wire == "tcp_client" ? FL_WIRE_TCP_CLIENT
                                  : (FL_WIRE_SERIAL | FL_WIRE_RS485_BUS);
}

// ---- the device of a script, in the host's runtime, and the suite at the other end of its wire ----------------
class script_device : public scenario_device {
public:
    script_device(const run_options &o, const std::shared_ptr<core::plugin> &plugin, const core::driver_info &drv,
                  const device_script &s, findings &f, std::chrono::milliseconds liveness)
        : scenario_device(f, drv), s_(s) {
        core::link_factory make_link;
        if (s.wire == "tcp_accepted") {
            try {
                listener_ = transport::make_tcp_listener(io(), "127.0.0.1", 0);
            } catch (const std::exception &e) {
                f.fail(std::string("cannot listen on a loopback port: ") + e.what());
                return;
            }
            auto l = listener_;
            const auto *ident = identify_of(*plugin);
            if (ident && s.identity.empty()) {
                f.fail(s.file.string() + ": the driver reads an identity (firelink.identify/1): the script says which "
                       "in [device] identity");
                return;
            }
            if (ident) {
                l->set_identifier([ident, driver = drv.id](const std::uint8_t *data, std::size_t size, std::string &who) {
                    char buf[256];
                    std::size_t len = 0;
                    const fl_status st = ident->identify(driver.c_str(), data, size, buf, sizeof buf, &len);
                    if (st == FL_OK) {
                        if (len == 0 || len > sizeof buf) return FL_INVALID_ARGUMENT;
                        who.assign(buf, len);
                    }
                    return st;
                });
                make_link = [l, who = s.identity](transport::executor ex, transport::link_events ev) {
                    return l->attach_identity(std::move(ex), who, std::move(ev));
                };
            } else {
                make_link = [l](transport::executor ex, transport::link_events ev) {
                    return l->attach_peer(std::move(ex), "127.0.0.1", std::move(ev));
                };
            }
        } else if (s.wire == "tcp_client") {
            listen_fd_ = loopback_socket(0, true, &port_);
            if (listen_fd_ < 0) {
                f.fail(std::string("cannot listen on a loopback port: ") + std::strerror(errno));
                return;
            }
            make_link = [port = port_](transport::executor ex, transport::link_events ev) {
                return transport::make_tcp_client_link(std::move(ex), "127.0.0.1", port,
                                                       transport::backoff{50ms, 200ms}, std::move(ev));
            };
        } else {
            std::string why;
            if (!line_.open(why)) {
                f.fail(why);
                return;
            }
            make_link = [path = line_.host_end()](transport::executor ex, transport::link_events ev) {
                transport::serial_settings st;
                st.path = path;
                return transport::make_serial_link(std::move(ex), st, transport::backoff{50ms, 200ms}, std::move(ev));
            };
        }
        std::vector<std::vector<std::uint8_t>> configs = {s.config};
        if (o.configs.count(drv.id)) configs = {o.configs.at(drv.id)};
        if (!create_and_start(plugin, drv, configs, make_link, liveness)) return;
        if (connect()) set_ready();
    }
    ~script_device() override {
        end_.close();
        shutdown();
        if (listen_fd_ >= 0) ::close(listen_fd_);
    }
    void act(const std::string &) override {}
    bool operator_argument() const override { return false; }
    device_end &end() { return end_; }
    bool can_cut() const { return s_.wire != "serial"; }

    // The device's side of a (re)connect: it connects in, or takes the host's connection, or opens its serial end.
    bool connect() {
        const auto deadline = steady::now() + event_budget;
        if (s_.wire == "tcp_accepted") {
            for (;;) {
                const int fd = loopback_socket(listener_->port(), false);
                if (fd >= 0) return end_.adopt(fd), true;
                if (steady::now() > deadline) break;
                std::this_thread::sleep_for(50ms);
            }
            f_.fail("cannot connect to the host's listener on port " + std::to_string(listener_->port()));
            return false;
        }
        if (s_.wire == "tcp_client") {
            pollfd p{listen_fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(ms(event_budget))) > 0) {
                const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) return end_.adopt(fd), true;
            }
            f_.fail("driver '" + driver() + "': the host did not connect to the device within " +
                    std::to_string(ms(event_budget)) + " ms");
            return false;
        }
        if (end_.open()) return true;
        const int fd = ::open(line_.device_end().c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
        termios t{};
        if (fd < 0 || ::tcgetattr(fd, &t) != 0) {
            f_.fail("cannot open the device's end of the pty pair: " + std::string(std::strerror(errno)));
            if (fd >= 0) ::close(fd);
            return false;
        }
        ::cfmakeraw(&t);
        ::tcsetattr(fd, TCSANOW, &t);
        end_.adopt(fd);
        return true;
    }
    // The connection is cut from the device's side; it connects again.
    bool cut_and_reconnect() {
        end_.close();
        return connect();
    }
    // After the host stopped and started the device: the host closed its connection; the device connects again.
    bool reconnect_after_restart() {
        if (s_.wire == "serial") {
            std::this_thread::sleep_for(300ms);  // the host reopens its end of the port
            return true;
        }
        const auto until = steady::now() + 2s;
        while (!end_.eof() && steady::now() < until) std::this_thread::sleep_for(20ms);
        return cut_and_reconnect();
    }

private:
    const device_script &s_;
    std::shared_ptr<transport::tcp_listener> listener_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    pty_pair line_;
    device_end end_;
};

// ---- the player -------------------------------------------------------------------------------------------------
std::string field_text(const std::vector<std::uint8_t> &payload, const std::string &key) {
    fl_mp_value v;
    if (!fl_mp_find(payload.data(), payload.size(), key.c_str(), &v)) return "\x01(absent)";
    switch (v.type) {
    case FL_MP_STR: return std::string(v.str, v.str_len);
    case FL_MP_INT: return std::to_string(v.i);
    case FL_MP_UINT: return std::to_string(v.u);
    case FL_MP_BOOL: return v.b ? "true" : "false";
    default: return "\x01(not text)";
    }
}

bool counts_as_event(const seen &s) { return !s.from_host && s.kind != "telemetry"; }

// script.busy on a device that answers: how long the host refuses every event after a step changed the state.
constexpr std::chrono::milliseconds busy_hold{1500};

bool raises(const std::string &kind) { return kind == "alarm" || kind == "pre_alarm" || kind == "fault"; }

struct player {
    player(script_device &dev, const device_script &script, findings &fi, mutation mu) : d(dev), s(script), f(fi), m(mu) {
        v["id"] = s.identity;
        answers_now = s.answers;
    }
    ~player() { stop_answering(); }
    script_device &d;
    const device_script &s;
    findings &f;
    mutation m;
    bool ok = true;
    std::uint64_t seq = 0;      // the frame's {seq}
    std::uint64_t counter = 0;  // frames sent so far: each new one takes the next number
    vars v;
    std::map<std::string, std::string> named;   // `as` -> event_id
    std::map<std::string, std::string> active;  // `as` of a raised condition -> the step's state template
    std::set<std::size_t> used;                 // recorder indexes matched to a declared event
    std::size_t declared = 0;                   // events the steps declare, for the final count
    std::vector<std::pair<const script_event *, int>> deferred;  // busy: declared events not yet seen (and line)
    std::size_t start_mark = 0;

    std::string at(int line) const { return s.file.filename().string() + ":" + std::to_string(line); }
    void fail(const std::string &what) {
        f.fail("driver '" + d.driver() + "', script '" + s.name + "': " + what);
        ok = false;
    }
    bool strict() const { return m == mutation::play || m == mutation::split || m == mutation::coalesced; }

    bool frame(const std::string &tpl, int line, std::string &out) {
        v["seq"] = std::to_string(seq);
        v["last"] = std::to_string(seq - 1);
        std::string why;
        if (!expand(tpl, v, out, why)) return fail(at(line) + ": " + why), false;
        return true;
    }
    bool write(const std::string &bytes) {
        if (m == mutation::garbage && !s.garbage.empty() && !d.end().write(s.garbage, false)) return false;
        if (d.end().write(bytes, m == mutation::split)) return true;
        fail("the wire closed as the device wrote " + printable(bytes));
        return false;
    }
    bool expect(const std::string &pattern, int line, const std::string &what, bool lenient = false,
                std::chrono::milliseconds budget = event_budget) {
        std::regex re;
        std::vector<std::string> names;
        std::string why, unexpected;
        v["seq"] = std::to_string(seq);
        v["last"] = std::to_string(seq - 1);
        if (!compile(pattern, v, re, names, why)) return fail(at(line) + ": " + why), false;
        if (d.end().expect(re, names, steady::now() + budget, strict() && !lenient, v, unexpected, answerer()))
            return true;
        fail(at(line) + ": " + what + ": expected '" + printable(pattern) + "', " +
             (unexpected.empty() ? "got nothing within " + std::to_string(ms(budget)) + " ms"
                                 : "got '" + printable(unexpected) + "'"));
        return false;
    }
    // ---- a device that answers (docs/device-scripts.md, "Devices that answer") ----------------------------------
    // A thread answers each of the driver's requests with the answers in force; a step changes them (its device's
    // state), a command's `writes` is answered first and then its step's answers take over. The player holds
    // `wire` while it cuts or remakes the connection, so that no answer is written into a closing one.
    std::mutex wire;
    std::vector<script_answer> answers_now;
    const script_step *command_waiting = nullptr;  // its `writes` not answered yet
    bool command_answered = false;
    std::atomic<bool> quiet{false};  // script.silence: the device stops answering (what the driver writes is read)
    std::atomic<bool> answering{false};
    std::uint64_t busy_refused = 0;  // script.busy on a device that answers: emits the host refused in the holds
    unsigned generation = 0;         // connections made: an answer read on one is never written on the next
    std::vector<std::string> unanswered, answer_errors;
    std::thread responder;

    // A device that speaks first and answers requests too: while the player waits for the driver's bytes, each
    // request at their start that an answer matches is taken and answered (under the reader's lock: no thread).
    device_end::answerer answerer() {
        if (s.responder() || answers_now.empty()) return {};
        return [this](std::string &rx) {
            for (bool again = true; again && !rx.empty();) {
                again = false;
                for (const auto &a : answers_now) {
                    std::regex re;
                    std::vector<std::string> names;
                    std::string why;
                    if (!compile(a.when, v, re, names, why)) {
                        const auto e = at(a.line) + ": " + why;
                        if (std::find(answer_errors.begin(), answer_errors.end(), e) == answer_errors.end())
                            answer_errors.push_back(e);
                        continue;
                    }
                    std::smatch hit;
                    if (!std::regex_search(rx, hit, re, std::regex_constants::match_continuous)) continue;
                    vars got = v;
                    for (std::size_t i = 0; i < names.size() && i + 1 < hit.size(); ++i) got[names[i]] = hit[i + 1].str();
                    rx.erase(0, static_cast<std::size_t>(hit.length(0)));
                    std::string b;
                    if (!expand(a.reply, got, b, why)) answer_errors.push_back(at(a.line) + ": " + why);
                    else d.end().write(b, m == mutation::split);
                    again = true;
                    break;
                }
            }
        };
    }
    void start_answering() {
        if (!s.responder() || answering) return;
        answers_now = s.answers;
        answering = true;
        responder = std::thread([this] { answer_loop(); });
    }
    void stop_answering() {
        answering = false;
        if (responder.joinable()) responder.join();
    }
    void set_answers(const std::vector<script_answer> &a) {
        std::lock_guard lock(wire);
        answers_now = a;
    }
    void answer_loop() {
        auto stale_since = steady::now();  // since when what waits at the front has matched no answer
        while (answering) {
            // What to answer with, copied under the lock; the wait for a request is made without it, so that the
            // player is never kept from the wire while nothing comes.
            std::vector<script_answer> list;
            bool with_command = false;
            vars base;
            unsigned gen;
            {
                std::lock_guard lock(wire);
                if (command_waiting && !command_answered) {
                    list.push_back({command_waiting->line, command_waiting->writes, command_waiting->reply});
                    with_command = true;
                }
                list.insert(list.end(), answers_now.begin(), answers_now.end());
                base = v;
                gen = generation;
            }
            std::vector<std::regex> res(list.size());
            std::vector<std::vector<std::string>> names(list.size());
            std::string why;
            for (std::size_t k = 0; k < list.size(); ++k)
                if (!compile(list[k].when, base, res[k], names[k], why)) {
                    answer_errors.push_back(at(list[k].line) + ": " + why);
                    return;
                }
            vars got = base;
            std::string pending;
            const int k = d.end().match_front(res, names, got, steady::now() + 50ms, pending);
            if (k < 0) {
                // Bytes that no answer matched for half a second are a request the script does not answer (however
                // often the driver asks again meanwhile): reported, and dropped so that later requests are answered.
                if (pending.empty()) {
                    stale_since = steady::now();
                } else if (steady::now() - stale_since > 500ms) {
                    if (unanswered.size() < 3) unanswered.push_back(printable(pending));
                    d.end().drop(pending.size());
                    stale_since = steady::now();
                }
                continue;
            }
            stale_since = steady::now();
            std::string b;
            if (!expand(list[static_cast<std::size_t>(k)].reply, got, b, why)) {
                answer_errors.push_back(at(list[static_cast<std::size_t>(k)].line) + ": " + why);
                return;
            }
            std::lock_guard lock(wire);
            if (gen != generation) continue;  // the connection was cut meanwhile: the request went with it
            if (!quiet) {
                if (m == mutation::garbage && !s.garbage.empty()) d.end().write(s.garbage, false);
                d.end().write(b, m == mutation::split);  // a cut connection: the driver asks again
            }
            if (with_command && k == 0 && command_waiting) {
                command_answered = true;
                if (command_waiting->sets_answers) answers_now = command_waiting->answers;
                command_waiting = nullptr;
            }
        }
    }
    // A step of a device that answers: its state changes; its events must follow.
    bool answer_step(const script_step &st) {
        const auto from = d.events().mark();
        if (m == mutation::busy) {
            // The host refuses everything while the device's state changes (and so pauses its wire, FL-HOST
            // backpressure); once it takes events again, each of the step's must come, once (FL-PLUGIN-28).
            const auto before = d.refusals();
            d.set_busy(true);
            set_answers(st.answers);
            std::this_thread::sleep_for(busy_hold);
            d.set_busy(false);
            busy_refused += d.refusals() - before;
        } else {
            set_answers(st.answers);
        }
        if (!events_of(st, from)) return false;
        if (m == mutation::reconnect && d.can_cut() && !st.events.empty()) {
            std::lock_guard lock(wire);
            ++generation;
            if (!d.cut_and_reconnect()) return ok = false;
            d.end().take();  // half a request of the old connection
            if (!hello()) return false;
        }
        if (m == mutation::restart && std::any_of(st.events.begin(), st.events.end(),
                                                  [](const script_event &e) { return raises(e.kind) && !e.as.empty(); }))
            return restart_here(st);
        return true;
    }

    // The hello on a new connection. A device that connects in may reach the listener before the host's device
    // took its place there (the listener then closes it, as it closes a stranger): it connects again, as a real one
    // does, within the budget.
    bool hello() {
        if (s.hello.empty()) return true;
        const auto deadline = steady::now() + event_budget;
        for (;;) {
            std::string b;
            seq = ++counter;
            if (!frame(s.hello, 0, b)) return false;
            if (d.end().write(b, false)) {
                if (s.hello_answer.empty()) {
                    std::this_thread::sleep_for(200ms);
                    if (!d.end().eof()) return true;
                } else {
                    std::regex re;
                    std::vector<std::string> names;
                    std::string why, unexpected;
                    v["seq"] = std::to_string(seq);
                    if (!compile(s.hello_answer, v, re, names, why)) return fail("[device] hello_answer: " + why), false;
                    if (d.end().expect(re, names, deadline, false, v, unexpected, answerer())) return true;
                    if (!d.end().eof()) break;
                }
            }
            if (!d.can_cut() || steady::now() > deadline) break;
            std::this_thread::sleep_for(100ms);
            if (!d.cut_and_reconnect()) return ok = false;
        }
        return fail("[device] hello: no answer '" + printable(s.hello_answer) + "' to '" + printable(s.hello) +
                    "' within " + std::to_string(ms(event_budget)) + " ms"),
               false;
    }
    bool matches(const seen &e, const script_event &want) {
        if (e.from_host || e.kind != want.kind || e.code != want.code) return false;
        if (!want.ends.empty() && e.ends != named[want.ends]) return false;
        for (const auto &[k, val] : want.fields)
            if (field_text(e.payload, k) != val) return false;
        return true;
    }
    // The declared event, from recorder index `from` on: the first match not matched before.
    std::optional<seen> wait_event(const script_event &want, std::size_t from, std::chrono::milliseconds budget) {
        const auto deadline = steady::now() + budget;
        for (;;) {
            const auto all = d.events().since(from);
            for (std::size_t i = 0; i < all.size(); ++i)
                if (!used.count(from + i) && matches(all[i], want)) {
                    used.insert(from + i);
                    return all[i];
                }
            if (steady::now() > deadline) return {};
            std::this_thread::sleep_for(10ms);
        }
    }
    std::string describe(const script_event &e) {
        return e.kind + " " + e.code + (e.ends.empty() ? "" : " ending '" + e.ends + "' (" + named[e.ends] + ")");
    }
    void bind(const script_event &want, const seen &got, const std::string &state) {
        if (!want.as.empty()) {
            named[want.as] = got.event_id;
            if (!state.empty() || (s.responder() && raises(want.kind))) active[want.as] = state;
        }
        if (want.kind == "restore") active.erase(want.ends);
    }
    // Busy (all but alarms refused): an alarm must come at once; what the host refused comes once it takes again.
    bool events_of(const script_step &st, std::size_t from) {
        for (const auto &e : st.events) {
            ++declared;
            if (m == mutation::busy && !s.responder() && core::lane_of(e.kind) != core::lane::alarm) {
                deferred.push_back({&e, st.line});
                if (!e.as.empty() && (!st.state.empty() || (s.responder() && raises(e.kind)))) active[e.as] = st.state;
                continue;
            }
            const auto got = wait_event(e, from, event_budget);
            if (!got) {
                std::string seen_list;
                for (const auto &x : d.events().since(from))
                    if (counts_as_event(x)) seen_list += (seen_list.empty() ? "" : ", ") + x.kind + " " + x.code;
                return fail(at(st.line) + ": no " + describe(e) + " within " + std::to_string(ms(event_budget)) +
                            " ms" + (m == mutation::busy && !s.responder() ? " while the host refused every other lane (FL_BUSY): an "
                                                           "alarm held behind a refused event (FL-PLUGIN-28)"
                                                         : "") +
                            " (saw: " + (seen_list.empty() ? "none" : seen_list) + ")"),
                       false;
            }
            bind(e, *got, st.state);
        }
        return true;
    }

    bool send_step(const script_step &st) {
        if (st.sets_answers) answers_now = st.answers;  // the device's state, for the requests it answers
        seq = ++counter;
        std::string b;
        if (!frame(st.send, st.line, b)) return false;
        const auto from = d.events().mark();
        const bool hold = m == mutation::commit && st.after_commit;
        if (hold) d.events().hold(true);
        if (!write(b)) return false;
        if (!events_of(st, from)) return false;
        if (hold) {
            // Taken but not committed: the device must see no answer yet (FL-PLUGIN-35).
            std::regex re;
            std::vector<std::string> names;
            std::string why, early;
            v["seq"] = std::to_string(seq);
            vars scratch = v;
            if (!compile(st.answer, v, re, names, why)) return fail(at(st.line) + ": " + why), false;
            const bool answered = d.end().expect(re, names, steady::now() + settle, false, scratch, early, answerer());
            d.events().hold(false);
            if (answered)
                return fail(at(st.line) + ": the driver answered '" + printable(st.answer) + "' before the host "
                            "committed the event: a host crash then loses what the device was told is safe "
                            "(FL-PLUGIN-35)"),
                       false;
        }
        if (m == mutation::reconnect && d.can_cut() && !st.events.empty()) {
            // The connection breaks before the device heard the answer: it connects again and, if its frames carry
            // their id, sends the frame again.
            const auto frame_seq = seq;
            if (!d.cut_and_reconnect() || !hello()) return false;
            seq = frame_seq;  // the answer to the frame sent again names its own seq
            if (s.resend_same && !write(b)) return false;
        }
        if (m == mutation::busy && !st.answer.empty() &&
            std::any_of(st.events.begin(), st.events.end(),
                        [](const script_event &e) { return core::lane_of(e.kind) != core::lane::alarm; }))
            return true;  // refused: not answered while the host refuses it; the final check sees it taken
        if (!st.answer.empty() && !expect(st.answer, st.line, "the answer to '" + printable(b) + "'",
                                          m == mutation::reconnect && s.resend_same))
            return false;
        if (m == mutation::duplicate && s.resend_same && !st.events.empty()) {
            // The device did not hear the answer and sends the same frame again: an answer, no second event.
            if (!write(b)) return false;
            if (!st.answer.empty() && !expect(st.answer, st.line, "the answer to the same frame sent again", true))
                return false;
        }
        if (m == mutation::restart && !st.state.empty()) return restart_here(st);
        return true;
    }

    // Stop and start the device: each condition still active must be reported again once the device has told its
    // state (FL-PLUGIN-29).
    bool restart_here(const script_step &st) {
        const auto from = d.events().mark();
        {
            std::unique_lock lock(wire, std::defer_lock);
            if (s.responder()) {
                lock.lock();
                ++generation;
            }
            if (!d.restart()) return fail(at(st.line) + ": stop and start again failed"), false;
            if (!d.reconnect_after_restart()) return false;
            if (s.responder()) d.end().take();
            if (s.responder() && !hello()) return false;  // v is the answering thread's too
        }
        if (!s.responder() && !hello()) return false;
        for (const auto &[as, state] : active) {
            if (state.empty()) continue;  // a device that answers: its answers are its state
            seq = ++counter;
            std::string b;
            if (!frame(state, st.line, b) || !write(b)) return false;
        }
        for (const auto &[as, state] : active) {
            // The condition named `as`: the step that raised it declared it; find its kind and code.
            const script_event *raised = nullptr;
            for (const auto &step : s.steps)
                for (const auto &e : step.events)
                    if (e.as == as) raised = &e;
            if (!raised) continue;
            script_event again = *raised;
            again.ends.clear();
            const auto got = wait_event(again, from, event_budget);
            if (!got)
                return fail(at(st.line) + ": " + raised->kind + " " + raised->code + " ('" + as + "'), still active, "
                            "was not reported again after a restart, once the device had sent its state "
                            "(FL-PLUGIN-29)"),
                       false;
            named[as] = got->event_id;
        }
        restarted = true;
        return true;
    }
    bool restarted = false;

    bool command_step(const script_step &st) {
        const auto from = d.events().mark();
        if (s.responder()) {
            std::lock_guard lock(wire);
            if (st.writes.empty()) {
                if (st.sets_answers) answers_now = st.answers;
            } else {
                command_waiting = &st;
                command_answered = false;
            }
        }
        const std::string cid = d.command(st.command, st.args);
        if (cid.empty()) return ok = false;
        if (s.responder()) return command_result(st, from, cid);
        if (!st.writes.empty() && !expect(st.writes, st.line, "what the driver writes for command " + st.command,
                                          m != mutation::play, command_budget))
            return false;
        if (!st.reply.empty()) {
            seq = ++counter;
            std::string b;
            if (!frame(st.reply, st.line, b) || !write(b)) return false;
        }
        return command_result(st, from, cid);
    }
    bool command_result(const script_step &st, std::size_t from, const std::string &cid) {
        const auto deadline = steady::now() + command_budget;
        std::optional<seen> result;
        while (!result && steady::now() < deadline) {
            for (const auto &e : d.events().since(from))
                if (e.kind == "command_result" && e.command_id == cid) result = e;
            if (!result) std::this_thread::sleep_for(10ms);
        }
        if (!result)
            return fail(at(st.line) + ": no command_result for " + st.command + " within " +
                        std::to_string(ms(command_budget)) + " ms (FL-PLUGIN-30)"),
                   false;
        if (s.responder() && !st.writes.empty()) {
            std::lock_guard lock(wire);
            if (!command_answered)
                return fail(at(st.line) + ": the driver never wrote '" + printable(st.writes) + "' for command " +
                            st.command),
                       false;
        }
        if (!result->ok || *result->ok != *st.result)
            return fail(at(st.line) + ": " + st.command + " answered " + result->json + " where the script says ok=" +
                        (*st.result ? "true" : "false") + " (FL-PLUGIN-30)"),
                   false;
        return events_of(st, from);
    }

    // Plays every step; then, after letting the device settle, exactly the declared events (no duplicate, none
    // undeclared) must have come.
    // What the answering went through, said once on every way out of run(): an unanswered request is often why a
    // step's events never came.
    bool answers_reported = false;
    void report_answers() {
        if (answers_reported) return;
        answers_reported = true;
        stop_answering();
        for (const auto &e : answer_errors) fail(e);
        // A cut connection may leave half a request behind; otherwise every request must have had its answer.
        if (m != mutation::reconnect && m != mutation::restart && !unanswered.empty()) {
            std::string list;
            for (const auto &u : unanswered) list += (list.empty() ? "'" : ", '") + u + "'";
            fail("the driver wrote " + list + ", which no answer of the script matches: a device that answers "
                 "('answers') must answer every request the driver makes");
        }
    }
    void run() {
        struct on_exit {
            player &p;
            ~on_exit() { p.report_answers(); }
        } reporting{*this};
        start_mark = d.events().mark();
        if (m == mutation::busy && !s.responder()) d.set_busy_but_alarms(true);
        if (!hello()) return;
        start_answering();  // after the hello: the answering thread reads v, which the hello writes
        const auto &steps = s.steps;
        for (std::size_t i = 0; ok && i < steps.size(); ++i) {
            if (m == mutation::coalesced && s.pipelined && !steps[i].send.empty()) {
                // This frame and the sends right after it leave in one write; then each is judged in order.
                std::size_t j = i;
                std::string all;
                std::vector<std::pair<std::size_t, std::uint64_t>> group;  // step, its seq
                const auto from = d.events().mark();
                while (j < steps.size() && !steps[j].send.empty()) {
                    seq = ++counter;
                    std::string b;
                    if (!frame(steps[j].send, steps[j].line, b)) return;
                    all += b;
                    group.push_back({j, seq});
                    ++j;
                }
                if (!write(all)) return;
                const auto last = seq;
                for (const auto &[k, sq] : group) {
                    seq = sq;
                    if (!events_of(steps[k], from)) return;
                    if (!steps[k].answer.empty() &&
                        !expect(steps[k].answer, steps[k].line, "the answer to a frame written with others in one write"))
                        return;
                }
                seq = last;
                i = j - 1;
                continue;
            }
            const auto &st = steps[i];
            if (!st.send.empty() ? !send_step(st) : !st.command.empty() ? !command_step(st) : !answer_step(st)) return;
        }
        if (m == mutation::busy) {
            d.set_busy(false);
            for (const auto &[e, line] : deferred) {
                const auto got = wait_event(*e, start_mark, event_budget);
                if (!got)
                    return fail(at(line) + ": " + describe(*e) + ", refused with FL_BUSY, was never emitted again once "
                                "the host took events (FL-PLUGIN-28)");
                bind(*e, *got, "");
            }
        }
        std::this_thread::sleep_for(settle);
        report_answers();
        if (!ok || restarted) return;  // a re-report is a new event; the count is the plain run's to judge
        std::size_t got = 0;
        std::string extra;
        const auto all = d.events().since(start_mark);
        // After a reconnect a driver may report again what is still active, with the same event_id (FL-PLUGIN-29:
        // it cannot know whether its answer arrived): a re-report, not a second event.
        std::set<std::string> raised_ids;
        for (const auto i : used)
            if (i >= start_mark && i - start_mark < all.size() && raises(all[i - start_mark].kind))
                raised_ids.insert(all[i - start_mark].event_id);
        for (std::size_t i = 0; i < all.size(); ++i)
            if (m == mutation::reconnect && !used.count(start_mark + i) && raises(all[i].kind) &&
                raised_ids.count(all[i].event_id))
                continue;
            else if (counts_as_event(all[i]) && all[i].kind != "command_result") {
                ++got;
                if (!used.count(start_mark + i) && extra.size() < 300) extra += (extra.empty() ? "" : "; ") + all[i].json;
            }
        if (got != declared)
            fail(std::to_string(got) + " events where the script declares " + std::to_string(declared) +
                 (extra.empty() ? "" : "; not declared: " + extra) +
                 (m == mutation::duplicate ? " (a frame sent again is one event, FL-PLUGIN-27)" : " (FL-PLUGIN-27)"));
    }
};

// What a mutation needs of a script; empty when it applies.
std::string not_applicable(const device_script &s, mutation m) {
    switch (m) {
    case mutation::garbage: return s.garbage.empty() ? "declares no [device] garbage" : "";
    case mutation::duplicate:
        if (s.responder()) return "is a device that answers: it sends no frame of its own to send again";
        return s.resend_same ? "" : "does not say its frames carry their id ([device] resend_same)";
    case mutation::reconnect: return s.wire == "serial" ? "runs over serial: no connection to cut" : "";
    case mutation::restart:
        if (s.responder())
            return std::any_of(s.steps.begin(), s.steps.end(),
                               [](const script_step &st) {
                                   return std::any_of(st.events.begin(), st.events.end(), [](const script_event &e) {
                                       return raises(e.kind) && !e.as.empty();
                                   });
                               })
                       ? ""
                       : "raises no named condition (an alarm, pre_alarm or fault with 'as')";
        return std::any_of(s.steps.begin(), s.steps.end(), [](const script_step &st) { return !st.state.empty(); })
                   ? ""
                   : "declares no 'state' (what the device sends on a reconnect while a condition is active)";
    case mutation::commit:
        if (s.responder()) return "is a device that answers: no answer of the driver waits for a commit";
        return std::any_of(s.steps.begin(), s.steps.end(), [](const script_step &st) { return st.after_commit; })
                   ? ""
                   : "has no answer given 'after_commit'";
    case mutation::busy:
        for (const auto &st : s.steps)
            for (const auto &e : st.events)
                if (e.kind == "alarm") return "";
        return "declares no alarm";
    case mutation::coalesced: {
        for (std::size_t i = 0; i + 1 < s.steps.size(); ++i)
            if (!s.steps[i].send.empty() && !s.steps[i + 1].send.empty()) return s.pipelined ? "" : "is not pipelined";
        return "has no two frames in a row";
    }
    default: return "";
    }
}

// One mutation over every script of the plugin's drivers.
void run_scripts(const run_options &o, findings &f, mutation m) {
    ::signal(SIGPIPE, SIG_IGN);
    if (o.scripts.empty()) return f.skip("no device scripts (give --scripts DIR, or ship PLUGIN.scripts/)");
    std::shared_ptr<core::plugin> plugin = load_plugin(o, f);
    if (!plugin) return;
    std::size_t played = 0;
    std::string why_not;
    for (const auto &s : o.scripts) {
        const core::driver_info *drv = nullptr;
        for (const auto &dd : plugin->info().drivers)
            if (dd.id == s.driver) drv = &dd;
        if (!drv) {
            f.fail(s.file.string() + ": the plugin has no driver '" + s.driver + "'");
            continue;
        }
        if (!(drv->wires & wire_bit(s.wire))) {
            f.fail(s.file.string() + ": driver '" + s.driver + "' declares no " + s.wire + " wire");
            continue;
        }
        if (const auto na = not_applicable(s, m); !na.empty()) {
            why_not += (why_not.empty() ? "" : "; ") + ("'" + s.name + "' " + na);
            continue;
        }
        const core::driver_info info = *drv;
        script_device d(o, plugin, info, s, f, 0ms);
        if (!d) continue;
        player p{d, s, f, m};
        p.run();
        if (p.ok && m == mutation::busy && s.responder() && p.busy_refused == 0) {
            // Nothing was refused: the driver emitted nothing while the host held (a slow poll): judged nothing.
            why_not += (why_not.empty() ? "" : "; ") + ("'" + s.name + "': the driver emitted nothing during the " +
                                                         std::to_string(busy_hold.count()) + " ms holds (poll faster: [device] config)");
            continue;
        }
        ++played;
        if (p.ok) f.note("'" + s.name + "' (" + std::to_string(p.declared) + " events)");
    }
    if (!played && !f.failed()) f.not_exercised("no script to play this way: " + why_not);
}

// script.silence: a device that stops talking is the host's to report offline; while it sends heartbeats it is not.
void silence(const run_options &o, findings &f) {
    ::signal(SIGPIPE, SIG_IGN);
    if (o.scripts.empty()) return f.skip("no device scripts (give --scripts DIR, or ship PLUGIN.scripts/)");
    std::shared_ptr<core::plugin> plugin = load_plugin(o, f);
    if (!plugin) return;
    std::set<std::string> done;
    for (const auto &s : o.scripts) {
        if ((s.responder() ? s.heartbeat_ms == 0 : s.heartbeat.empty()) || done.count(s.driver)) continue;
        const core::driver_info *drv = nullptr;
        for (const auto &dd : plugin->info().drivers)
            if (dd.id == s.driver && (dd.wires & wire_bit(s.wire))) drv = &dd;
        if (!drv) continue;
        done.insert(s.driver);
        const std::chrono::milliseconds period{s.heartbeat_ms}, liveness = 3 * period;
        const core::driver_info info = *drv;
        script_device d(o, plugin, info, s, f, liveness);
        if (!d) continue;
        player p{d, s, f, mutation::play};
        if (!p.hello()) continue;
        const auto from = d.events().mark();
        if (s.responder()) {
            // Its answers are its traffic: answering for twice the budget, then reading and answering nothing.
            p.start_answering();
            std::this_thread::sleep_for(2 * liveness);
        } else {
            for (auto until = steady::now() + 2 * liveness; steady::now() < until;) {
                std::string b;
                p.seq = ++p.counter;
                if (!p.frame(s.heartbeat, 0, b) || !d.end().write(b, false)) break;
                std::this_thread::sleep_for(period);
            }
        }
        for (const auto &e : d.events().since(from))
            if (e.from_host && e.kind == "offline")
                f.fail("driver '" + s.driver + "': the host reported the device offline while it " +
                       (s.responder() ? std::string("answered every request") : "sent a heartbeat every " + std::to_string(period.count()) + " ms") +
                       ": every byte must reach the host through the wire");
        p.quiet = true;
        const auto t0 = steady::now();
        const auto offline = d.events().wait(
            from, [](const seen &e) { return e.from_host && e.kind == "offline"; }, t0 + liveness + event_budget);
        if (!offline)
            f.fail("driver '" + s.driver + "': silent for " + std::to_string(ms(liveness + event_budget)) +
                   " ms (liveness " + std::to_string(ms(liveness)) + " ms), the device was never reported offline: "
                   "does the driver emit on its own while its device is silent? (FL-PLUGIN-27)");
        else f.note("'" + s.name + "': offline " + std::to_string(ms(offline->at - t0)) + " ms into the silence");
    }
    if (done.empty() && !f.failed())
        f.not_exercised("no script declares a heartbeat ([device] heartbeat and heartbeat_ms; for a device that only "
                        "answers, heartbeat_ms)");
}

// script.present: which drivers have scripts, and what they cover. A driver of a vendor class has no class scenario
// and no simulator: without a script nothing of its protocol is judged.
void present(const run_options &o, findings &f) {
    std::shared_ptr<core::plugin> plugin = load_plugin(o, f);
    if (!plugin) return;
    for (const auto &drv : plugin->info().drivers) {
        std::set<std::string> commands, events;
        std::size_t n = 0;
        for (const auto &s : o.scripts) {
            if (s.driver != drv.id) continue;
            ++n;
            for (const auto &st : s.steps) {
                if (!st.command.empty()) commands.insert(st.command);
                for (const auto &e : st.events) events.insert(e.kind + " " + e.code);
            }
        }
        // Only a driver with a wire has a protocol to play; one without (timers only) is judged by the workload.
        const bool vendor = drv.device_class.rfind("vendor:", 0) == 0 && drv.wires != 0;
        if (!n && vendor) {
            f.fail("driver '" + drv.id + "' (" + drv.device_class + ") has no device script: a vendor class has no "
                   "class scenario, so nothing of its protocol would be judged. Add PLUGIN.scripts/<name>.toml (or "
                   "--scripts DIR) with an alarm, a fault and its restore, each command, a heartbeat "
                   "(docs/device-scripts.md)");
            continue;
        }
        std::string missing;
        for (const auto &c : drv.commands)
            if (!commands.count(c.name)) missing += (missing.empty() ? "" : ", ") + c.name;
        std::string covered;
        for (const auto &e : events) covered += (covered.empty() ? "" : ", ") + e;
        f.note("driver '" + drv.id + "': " + std::to_string(n) + " script(s); events " +
               (covered.empty() ? "none" : covered) + "; commands " +
               (commands.empty() ? std::string("none") : [&] {
                   std::string l;
                   for (const auto &c : commands) l += (l.empty() ? "" : ", ") + c;
                   return l;
               }()) +
               (missing.empty() ? "" : "; declared commands no script gives: " + missing));
        if (n && !missing.empty() && vendor)
            f.warn("driver '" + drv.id + "': declared commands no script exercises: " + missing);
    }
}

}  // namespace

void add_script_checks(std::vector<check> &v) {
    v.push_back({"script.present", {"FL-PLUGIN-27", "FL-PLUGIN-30"}, level::standard,
                 "each vendor-class driver ships device scripts; what they cover of its events and commands",
                 present});
    struct m_check {
        const char *id;
        std::vector<std::string> reqs;
        const char *summary;
        mutation m;
    };
    const m_check all[] = {
        {"script.play", {"FL-PLUGIN-27", "FL-PLUGIN-30"},
         "each script played as written: the declared answers, events and command results, nothing else", mutation::play},
        {"script.split", {"FL-PLUGIN-32"}, "each frame split at every byte: the same answers and events", mutation::split},
        {"script.coalesced", {"FL-PLUGIN-32"}, "frames written together in one write: the same answers and events",
         mutation::coalesced},
        {"script.garbage", {"FL-PLUGIN-32"}, "the protocol's garbage before every frame: ignored, nothing lost",
         mutation::garbage},
        {"script.duplicate", {"FL-PLUGIN-27"}, "each frame sent again (its answer lost): answered, no second event",
         mutation::duplicate},
        {"script.reconnect", {"FL-PLUGIN-29", "FL-PLUGIN-33"}, "the connection cut after each frame and made again: nothing lost or doubled",
         mutation::reconnect},
        {"script.busy", {"FL-PLUGIN-28"},
         "the host refuses all but alarms (FL_BUSY): alarms still come at once, the refused come once taken",
         mutation::busy},
        {"script.restart", {"FL-PLUGIN-29"}, "a stop and start in the middle: what is active is reported again",
         mutation::restart},
        {"script.commit", {"FL-PLUGIN-35"}, "an answer given after_commit waits for the host's commit", mutation::commit},
    };
    for (const auto &c : all)
        v.push_back({c.id, c.reqs, level::standard, c.summary,
                     [m = c.m](const run_options &o, findings &f) { run_scripts(o, f, m); }});
    v.push_back({"script.silence", {"FL-PLUGIN-27"}, level::standard,
                 "a device that sends heartbeats stays online; one that falls silent is reported offline by the host",
                 silence});
}

}  // namespace firelink::conform
