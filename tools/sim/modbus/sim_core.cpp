// The Modbus slave server of firelink-sim: one poll() loop over the serial line or the TCP listener and its
// connections, standard input (actions), and the scenario's timed actions. See sim_core.hpp.
#include "sim_core.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace firelink::sim::modbus {

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

std::vector<std::string> split_words(const std::string &line) {
    std::istringstream in(line);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

std::size_t table_size(const md::register_map &m, md::table t) {
    std::size_t n = 0;
    for (const auto &pt : m.points)
        if (pt.where == t) n = std::max<std::size_t>(n, pt.address + pt.width());
    return n;
}

}  // namespace

bool parse_on_off(const std::vector<std::string> &words, std::size_t at, bool &out, std::string &err) {
    if (words.size() <= at) {
        out = true;  // "stuck" alone means on
        return true;
    }
    if (words[at] == "on" || words[at] == "1" || words[at] == "true") out = true;
    else if (words[at] == "off" || words[at] == "0" || words[at] == "false") out = false;
    else {
        err = "expected on or off, got '" + words[at] + "'";
        return false;
    }
    return true;
}

double parse_number(const std::string &s, std::string &err) {
    try {
        std::size_t used = 0;
        const double v = std::stod(s, &used);
        if (used != s.size() || !std::isfinite(v)) throw std::invalid_argument(s);
        return v;
    } catch (...) {
        err = "expected a number, got '" + s + "'";
        return 0;
    }
}

// ---- unit_model ----------------------------------------------------------------------------------------------------

unit_model::unit_model(md::register_map map) : map_(std::move(map)) {
    bank_.coils.assign(table_size(map_, md::table::coil), false);
    bank_.discrete_inputs.assign(table_size(map_, md::table::discrete_input), false);
    bank_.holding.assign(table_size(map_, md::table::holding), 0);
    bank_.input.assign(table_size(map_, md::table::input), 0);
}

const md::register_point &unit_model::p(const std::string &name) const {
    const auto *pt = map_.find(name);
    if (!pt) throw std::logic_error("the reference map has no point '" + name + "'");
    return *pt;
}

void unit_model::set_raw(const std::string &name, std::int64_t raw) {
    const auto &pt = p(name);
    auto &words = pt.where == md::table::holding ? bank_.holding : bank_.input;
    if (md::is_bit_table(pt.where)) {
        (pt.where == md::table::coil ? bank_.coils : bank_.discrete_inputs)[pt.address] = raw != 0;
        return;
    }
    const auto v = static_cast<std::uint32_t>(raw);
    if (pt.width() == 1) {
        words[pt.address] = static_cast<std::uint16_t>(v);
    } else {
        const auto hi = static_cast<std::uint16_t>(v >> 16), lo = static_cast<std::uint16_t>(v & 0xFFFF);
        words[pt.address] = pt.low_word_first ? lo : hi;
        words[pt.address + 1] = pt.low_word_first ? hi : lo;
    }
}

std::int64_t unit_model::get_raw(const std::string &name) const {
    const auto &pt = p(name);
    if (md::is_bit_table(pt.where)) return (pt.where == md::table::coil ? bank_.coils : bank_.discrete_inputs)[pt.address];
    const auto &words = pt.where == md::table::holding ? bank_.holding : bank_.input;
    md::snapshot s;
    md::poll_block b{pt.where, pt.address, pt.width()};
    s.store(b, std::vector<std::uint16_t>(words.begin() + pt.address, words.begin() + pt.address + pt.width()));
    return s.raw(&pt).value_or(0);
}

void unit_model::set(const std::string &name, double v) {
    const auto &pt = p(name);
    double raw = std::round(v / pt.scale);
    const double lo = (pt.type == md::value_type::s16) ? -32768 : (pt.type == md::value_type::s32) ? -2147483648.0 : 0;
    const double hi = (pt.type == md::value_type::u16) ? 65535 : (pt.type == md::value_type::s16) ? 32767
                      : (pt.type == md::value_type::s32) ? 2147483647.0 : 4294967295.0;
    set_raw(name, static_cast<std::int64_t>(std::clamp(raw, lo, hi)));
}
double unit_model::get(const std::string &name) const { return static_cast<double>(get_raw(name)) * p(name).scale; }

void unit_model::set_bit(const std::string &name, const std::string &b, bool on) {
    const int i = p(name).bits.at(b);
    auto raw = static_cast<std::uint64_t>(get_raw(name));
    raw = on ? (raw | (1ull << i)) : (raw & ~(1ull << i));
    set_raw(name, static_cast<std::int64_t>(raw));
}
bool unit_model::bit(const std::string &name, const std::string &b) const {
    return (static_cast<std::uint64_t>(get_raw(name)) >> p(name).bits.at(b)) & 1u;
}
void unit_model::set_named(const std::string &name, const std::string &value) { set_raw(name, *p(name).value_of(value)); }
std::string unit_model::named(const std::string &name) const {
    const auto raw = get_raw(name);
    for (const auto &[n, v] : p(name).values)
        if (v == raw) return n;
    return "unknown";
}
bool unit_model::coil(const std::string &name) const { return bank_.coils[p(name).address]; }
void unit_model::set_coil(const std::string &name, bool on) { bank_.coils[p(name).address] = on; }

void unit_model::tick_ramps(double elapsed_ms) {
    for (auto it = ramps_.begin(); it != ramps_.end();) {
        auto &r = it->second;
        r.done_ms = std::min(r.total_ms, r.done_ms + elapsed_ms);
        set(it->first, r.from + (r.to - r.from) * (r.total_ms > 0 ? r.done_ms / r.total_ms : 1.0));
        it = r.done_ms >= r.total_ms ? ramps_.erase(it) : std::next(it);
    }
}

std::vector<std::uint8_t> unit_model::serve(std::span<const std::uint8_t> pdu) {
    if (forced_exception_ && !pdu.empty()) return mb::encode_exception(pdu[0], *forced_exception_);
    auto out = bank_.serve(pdu);
    if (!out.empty() && !(out[0] & mb::fc::exception_bit)) {
        if (auto req = mb::decode_request(pdu); req && !mb::is_read_bits(req->function) && !mb::is_read_registers(req->function))
            after_write(*req);
    }
    return out;
}

std::string unit_model::run(const std::vector<std::string> &w) {
    if (w.empty()) return "";
    std::string err;
    bool on = false;
    if (w[0] == "silent") return parse_on_off(w, 1, on, err) ? (silent = on, "") : err;
    if (w[0] == "garbage") return parse_on_off(w, 1, on, err) ? (garbage = on, "") : err;
    if (w[0] == "exception") {
        if (w.size() != 2) return "usage: exception CODE|off";
        if (w[1] == "off") {
            forced_exception_.reset();
            return "";
        }
        const double c = parse_number(w[1], err);
        if (!err.empty() || c < 1 || c > 255) return err.empty() ? "exception code 1..255" : err;
        forced_exception_ = static_cast<std::uint8_t>(c);
        return "";
    }
    if (w[0] == "set" || w[0] == "ramp") {
        if (w.size() < 3 || (w[0] == "ramp" && w.size() != 4)) return "usage: set POINT VALUE | ramp POINT TO MS";
        if (!map_.find(w[1])) return "no point '" + w[1] + "' in the map";
        const double v = parse_number(w[2], err);
        if (!err.empty()) return err;
        if (w[0] == "set") {
            ramps_.erase(w[1]);
            set(w[1], v);
        } else {
            const double ms = parse_number(w[3], err);
            if (!err.empty() || ms < 0) return err.empty() ? "ramp time must be >= 0" : err;
            ramps_[w[1]] = ramp{get(w[1]), v, ms, 0};
        }
        return "";
    }
    return action(w);
}

// ---- the server ----------------------------------------------------------------------------------------------------

namespace {

struct scheduled {
    double at_ms;
    std::optional<int> unit;
    std::vector<std::string> words;
    std::string text;
};

struct options {
    std::string listen, serial;
    unsigned baud = 9600;
    std::vector<int> units{1};
    std::vector<std::string> startup;
    std::string scenario;
    double run_for_s = 0;
    unsigned silence_ms = 20;
    bool verbose = false;
};

void usage(const char *name, const char *what, const std::vector<std::string> &class_help, FILE *to) {
    std::fprintf(to,
                 "usage: firelink-sim %s (--listen HOST:PORT | --serial PATH) [options]\n"
                 "  simulates %s (Modbus TCP with --listen, Modbus RTU with --serial)\n\n"
                 "options:\n"
                 "  --listen HOST:PORT   Modbus TCP server (port 0: any; the port is printed)\n"
                 "  --serial PATH        Modbus RTU on a serial line or pty (several --units make an RS-485 bus)\n"
                 "  --baud N             line speed for --serial (default 9600)\n"
                 "  --units LIST         unit addresses, e.g. 1 or 1-4 or 1,3,7 (default 1)\n"
                 "  --do \"ACTION\"        run an action at start (repeatable); \"@N ACTION\" for one unit\n"
                 "  --scenario FILE      timed actions, one a line: \"<ms> [@N] ACTION\" (# comments)\n"
                 "  --for SECONDS        exit after this long (default: until SIGINT/SIGTERM or 'quit')\n"
                 "  --silence-ms N       a partial RTU frame older than this is discarded (default 20)\n"
                 "  -v, --verbose        print every request and reply\n"
                 "Standard input takes actions too, one a line (\"@N ACTION\" for one unit).\n\n"
                 "actions of every device:\n"
                 "  set POINT VALUE      set a point of the register map (engineering units)\n"
                 "  ramp POINT TO MS     move a point linearly to TO over MS milliseconds\n"
                 "  silent [on|off]      stop answering (a dead device)\n"
                 "  garbage [on|off]     answer with bytes that are not a valid frame\n"
                 "  exception CODE|off   answer every request with this Modbus exception\n"
                 "  quit                 exit\n"
                 "actions of %s:\n",
                 name, what, name);
    for (const auto &h : class_help) std::fprintf(to, "  %s\n", h.c_str());
}

bool parse_units(const std::string &s, std::vector<int> &out) {
    out.clear();
    std::istringstream in(s);
    for (std::string part; std::getline(in, part, ',');) {
        int a = 0, b = 0;
        char dash = 0;
        std::istringstream p(part);
        if (!(p >> a)) return false;
        if (p >> dash) {
            if (dash != '-' || !(p >> b)) return false;
        } else {
            b = a;
        }
        if (a < 1 || b > 247 || a > b) return false;
        for (int u = a; u <= b; ++u) out.push_back(u);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return !out.empty();
}

// "@N ACTION..." -> unit N and the words of the action.
bool split_target(const std::string &line, std::optional<int> &unit, std::vector<std::string> &words) {
    words = split_words(line);
    unit.reset();
    if (!words.empty() && words[0].size() > 1 && words[0][0] == '@') {
        try {
            unit = std::stoi(words[0].substr(1));
        } catch (...) {
            return false;
        }
        words.erase(words.begin());
    }
    return true;
}

class server {
public:
    server(options o, const model_factory &make) : o_(std::move(o)) {
        for (int u : o_.units) units_[u] = make();
    }

    // Runs an action on its unit(s); prints what happened. Returns false for `quit`.
    bool act(const std::optional<int> &unit, const std::vector<std::string> &words, const std::string &text) {
        if (words.empty()) return true;
        if (words[0] == "quit") return false;
        for (auto &[u, m] : units_) {
            if (unit && *unit != u) continue;
            std::string err;
            try {
                err = m->run(words);
            } catch (const std::exception &e) {
                err = e.what();
            }
            if (err.empty()) std::printf("unit %d: %s\n", u, text.c_str());
            else std::printf("unit %d: %s: error: %s\n", u, text.c_str(), err.c_str());
        }
        if (unit && !units_.count(*unit)) std::printf("%s: error: no unit %d\n", text.c_str(), *unit);
        std::fflush(stdout);
        return true;
    }

    int run(std::vector<scheduled> script) {
        if (!o_.serial.empty() ? !open_serial() : !open_listener()) return 1;
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        std::signal(SIGPIPE, SIG_IGN);
        for (const auto &line : o_.startup) {
            std::optional<int> unit;
            std::vector<std::string> words;
            if (!split_target(line, unit, words)) return std::fprintf(stderr, "bad --do '%s'\n", line.c_str()), 2;
            if (!act(unit, words, line)) return 0;
        }
        std::printf("ready\n");
        std::fflush(stdout);
        const auto t0 = std::chrono::steady_clock::now();
        auto last = t0;
        std::size_t next_step = 0;
        std::string stdin_buf;
        bool stdin_open = true;
        while (!g_stop) {
            const auto now = std::chrono::steady_clock::now();
            const double since = std::chrono::duration<double, std::milli>(now - t0).count();
            const double dt = std::chrono::duration<double, std::milli>(now - last).count();
            last = now;
            for (auto &[u, m] : units_) m->tick(dt);
            while (next_step < script.size() && script[next_step].at_ms <= since) {
                const auto &s = script[next_step++];
                if (!act(s.unit, s.words, s.text)) return 0;
            }
            if (o_.run_for_s > 0 && since >= o_.run_for_s * 1000) return 0;

            std::vector<pollfd> fds;
            fds.push_back({main_fd_, POLLIN, 0});
            if (stdin_open) fds.push_back({0, POLLIN, 0});
            for (const auto &c : conns_) fds.push_back({c.fd, POLLIN, 0});
            const int n = ::poll(fds.data(), fds.size(), 10);
            if (n < 0) {
                if (errno == EINTR) continue;
                std::perror("poll");
                return 1;
            }
            if (n == 0) {
                if (!o_.serial.empty() && rtu_.pending() &&
                    std::chrono::steady_clock::now() - last_rx_ > std::chrono::milliseconds(o_.silence_ms))
                    rtu_.on_silence();
                continue;
            }
            if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (!o_.serial.empty()) read_serial();
                else accept_conn();
            }
            std::size_t at = 1;
            if (stdin_open) {
                if (fds[at].revents & (POLLIN | POLLHUP)) {
                    char buf[512];
                    const ssize_t r = ::read(0, buf, sizeof buf);
                    if (r <= 0) stdin_open = false;
                    else stdin_buf.append(buf, static_cast<std::size_t>(r));
                    for (std::size_t nl; (nl = stdin_buf.find('\n')) != std::string::npos;) {
                        const std::string line = stdin_buf.substr(0, nl);
                        stdin_buf.erase(0, nl + 1);
                        std::optional<int> unit;
                        std::vector<std::string> words;
                        if (!split_target(line, unit, words)) {
                            std::printf("%s: error: bad @unit\n", line.c_str());
                            continue;
                        }
                        if (!act(unit, words, line)) return 0;
                    }
                }
                ++at;
            }
            for (std::size_t i = 0; i < conns_.size(); ++i, ++at)
                if (fds[at].revents & (POLLIN | POLLHUP | POLLERR)) read_conn(conns_[i]);
            conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [](const conn &c) { return c.fd < 0; }), conns_.end());
        }
        return 0;
    }

private:
    struct conn {
        int fd;
        mb::tcp_stream in;
    };

    bool open_serial() {
        main_fd_ = ::open(o_.serial.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK);
        if (main_fd_ < 0) return std::fprintf(stderr, "cannot open %s: %s\n", o_.serial.c_str(), std::strerror(errno)), false;
        termios t{};
        if (::tcgetattr(main_fd_, &t) == 0) {
            ::cfmakeraw(&t);
            const speed_t sp = o_.baud == 115200 ? B115200 : o_.baud == 57600 ? B57600 : o_.baud == 38400 ? B38400
                               : o_.baud == 19200 ? B19200 : o_.baud == 4800 ? B4800 : o_.baud == 2400 ? B2400 : B9600;
            ::cfsetispeed(&t, sp);
            ::cfsetospeed(&t, sp);
            ::tcsetattr(main_fd_, TCSANOW, &t);
        }
        std::printf("serial %s units", o_.serial.c_str());
        for (int u : o_.units) std::printf(" %d", u);
        std::printf("\n");
        return true;
    }

    bool open_listener() {
        const auto colon = o_.listen.rfind(':');
        if (colon == std::string::npos) return std::fprintf(stderr, "--listen expects HOST:PORT\n"), false;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        std::string host = o_.listen.substr(0, colon);
        if (host.empty() || host == "localhost") host = "127.0.0.1";
        if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
            return std::fprintf(stderr, "--listen: '%s' is not an IPv4 address\n", host.c_str()), false;
        int port = 0;
        try {
            port = std::stoi(o_.listen.substr(colon + 1));
        } catch (...) {
            port = -1;
        }
        if (port < 0 || port > 65535) return std::fprintf(stderr, "--listen: bad port\n"), false;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        main_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const int one = 1;
        ::setsockopt(main_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(main_fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || ::listen(main_fd_, 16) != 0)
            return std::fprintf(stderr, "cannot listen on %s: %s\n", o_.listen.c_str(), std::strerror(errno)), false;
        socklen_t len = sizeof a;
        ::getsockname(main_fd_, reinterpret_cast<sockaddr *>(&a), &len);
        std::printf("listening %s:%d units", host.c_str(), ntohs(a.sin_port));
        for (int u : o_.units) std::printf(" %d", u);
        std::printf("\n");
        return true;
    }

    void accept_conn() {
        const int fd = ::accept4(main_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns_.push_back({fd, {}});
        if (o_.verbose) std::printf("connection accepted\n"), std::fflush(stdout);
    }

    void write_all(int fd, const std::vector<std::uint8_t> &bytes) {
        std::size_t off = 0;
        while (off < bytes.size()) {
            const ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
                pollfd p{fd, POLLOUT, 0};
                ::poll(&p, 1, 100);
                continue;
            }
            if (w <= 0) return;
            off += static_cast<std::size_t>(w);
        }
    }

    std::vector<std::uint8_t> garbage_bytes(std::uint8_t unit, bool tcp) {
        std::uniform_int_distribution<int> len(3, 20), byte(0, 255);
        std::vector<std::uint8_t> g(static_cast<std::size_t>(len(rng_)));
        for (auto &b : g) b = static_cast<std::uint8_t>(byte(rng_));
        if (tcp) {
            // A header no Modbus TCP peer accepts: protocol id 0xDEAD.
            g.insert(g.begin(), {0x00, 0x01, 0xDE, 0xAD, 0x00, static_cast<std::uint8_t>(g.size() + 1), unit});
        } else {
            g[0] = unit;  // attributed to the unit, so the master sees a bad reply rather than another unit's
            if (mb::decode_rtu(g)) g.back() ^= 0x5A;  // never a valid frame by chance
        }
        return g;
    }

    void trace(const char *dir, const std::vector<std::uint8_t> &bytes) {
        if (!o_.verbose) return;
        std::printf("%s", dir);
        for (auto b : bytes) std::printf(" %02x", b);
        std::printf("\n");
        std::fflush(stdout);
    }

    void read_serial() {
        std::uint8_t buf[512];
        const ssize_t r = ::read(main_fd_, buf, sizeof buf);
        if (r <= 0) return;
        last_rx_ = std::chrono::steady_clock::now();
        rtu_.feed(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(r)));
        while (auto a = rtu_.next()) {
            auto it = units_.find(a->unit);
            if (o_.verbose) trace("rx", mb::rtu_frame(a->unit, a->pdu));
            if (it == units_.end() || a->unit == 0) continue;  // another unit's request, or a broadcast: no answer
            auto &m = *it->second;
            if (m.silent) continue;
            std::vector<std::uint8_t> out = m.garbage ? garbage_bytes(a->unit, false) : mb::rtu_frame(a->unit, m.serve(a->pdu));
            trace("tx", out);
            write_all(main_fd_, out);
        }
    }

    void read_conn(conn &c) {
        std::uint8_t buf[1024];
        const ssize_t r = ::read(c.fd, buf, sizeof buf);
        if (r <= 0) {
            ::close(c.fd);
            c.fd = -1;
            return;
        }
        c.in.feed(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(r)));
        while (auto a = c.in.next()) {
            if (o_.verbose) trace("rx", mb::tcp_frame(a->transaction, a->unit, a->pdu));
            auto it = units_.find(a->unit);
            std::vector<std::uint8_t> out;
            if (it == units_.end()) {
                out = mb::tcp_frame(a->transaction, a->unit,
                                    mb::encode_exception(a->pdu.empty() ? 0 : a->pdu[0], mb::exception_code::gateway_target_failed));
            } else {
                auto &m = *it->second;
                if (m.silent) continue;
                out = m.garbage ? garbage_bytes(a->unit, true) : mb::tcp_frame(a->transaction, a->unit, m.serve(a->pdu));
            }
            trace("tx", out);
            write_all(c.fd, out);
        }
        if (c.in.poisoned_since_last_check()) {  // not Modbus TCP: a server closes such a connection
            std::printf("closing a connection: %s\n", c.in.last_error()->message.c_str());
            std::fflush(stdout);
            ::close(c.fd);
            c.fd = -1;
        }
    }

    options o_;
    std::map<int, std::unique_ptr<unit_model>> units_;
    int main_fd_ = -1;
    std::vector<conn> conns_;
    mb::rtu_stream rtu_{mb::direction::request};
    std::chrono::steady_clock::time_point last_rx_{};
    std::mt19937 rng_{12345};
};

}  // namespace

int run_simulator(const char *name, const char *what, int argc, char **argv, const model_factory &make) {
    options o;
    const auto help = make()->help();
    auto need = [&](int &i) -> const char * {
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s needs a value\n", argv[i]);
            return nullptr;
        }
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        const char *v = nullptr;
        if (a == "-h" || a == "--help") {
            usage(name, what, help, stdout);
            return 0;
        } else if (a == "-v" || a == "--verbose") {
            o.verbose = true;
        } else if (a == "--listen" || a == "--serial" || a == "--baud" || a == "--units" || a == "--do" ||
                   a == "--scenario" || a == "--for" || a == "--silence-ms") {
            if (!(v = need(i))) return 2;
            try {
                if (a == "--listen") o.listen = v;
                else if (a == "--serial") o.serial = v;
                else if (a == "--baud") o.baud = static_cast<unsigned>(std::stoul(v));
                else if (a == "--units") {
                    if (!parse_units(v, o.units)) return std::fprintf(stderr, "--units: expected e.g. 1, 1-4 or 1,3,7 (1..247)\n"), 2;
                } else if (a == "--do") o.startup.push_back(v);
                else if (a == "--scenario") o.scenario = v;
                else if (a == "--for") o.run_for_s = std::stod(v);
                else o.silence_ms = static_cast<unsigned>(std::stoul(v));
            } catch (...) {
                return std::fprintf(stderr, "%s: bad value '%s'\n", a.c_str(), v), 2;
            }
        } else {
            std::fprintf(stderr, "firelink-sim %s: unknown argument '%s'\n", name, a.c_str());
            usage(name, what, help, stderr);
            return 2;
        }
    }
    if (o.listen.empty() == o.serial.empty()) {
        std::fprintf(stderr, "firelink-sim %s: give exactly one of --listen HOST:PORT and --serial PATH\n", name);
        return 2;
    }
    std::vector<scheduled> script;
    if (!o.scenario.empty()) {
        std::ifstream in(o.scenario);
        if (!in) return std::fprintf(stderr, "cannot read %s\n", o.scenario.c_str()), 2;
        int lineno = 0;
        for (std::string line; std::getline(in, line);) {
            ++lineno;
            if (auto h = line.find('#'); h != std::string::npos) line.erase(h);
            auto words = split_words(line);
            if (words.empty()) continue;
            scheduled s;
            std::string err;
            s.at_ms = parse_number(words[0], err);
            std::string rest = line.substr(line.find(words[0]) + words[0].size());
            if (!err.empty() || s.at_ms < 0 || !split_target(rest, s.unit, s.words) || s.words.empty())
                return std::fprintf(stderr, "%s:%d: expected \"<ms> [@unit] action args\"\n", o.scenario.c_str(), lineno), 2;
            s.text = rest.substr(rest.find_first_not_of(" \t"));
            script.push_back(std::move(s));
        }
        std::stable_sort(script.begin(), script.end(), [](const scheduled &a, const scheduled &b) { return a.at_ms < b.at_ms; });
    }
    server srv(std::move(o), make);
    return srv.run(std::move(script));
}

}  // namespace firelink::sim::modbus
