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
#include <utility>

#include <spdlog/spdlog.h>

#include "subcommand.hpp"

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

// ---- the reference models ------------------------------------------------------------------------------------------

reference_model::reference_model(md::register_map map, std::string command_register)
    : unit_model(std::move(map)), command_register_(std::move(command_register)) {
    set_named("self_test_state", "idle");
}

void reference_model::after_write(const mb::request &req) {
    if (req.function == mb::fc::write_single_register || req.function == mb::fc::write_multiple_registers) {
        const auto value = get_raw(command_register_);
        set_raw(command_register_, 0);
        on_command(value);
    }
    if (coil("self_test")) {
        set_coil("self_test", false);
        set_named("self_test_state", "running");
        self_test_ms_ = 200;
    }
}

void reference_model::tick(double ms) {
    tick_ramps(ms);
    on_tick(ms);
    if (self_test_ms_ > 0 && (self_test_ms_ -= ms) <= 0) set_named("self_test_state", self_test_fails_ ? "failed" : "passed");
}

std::string reference_model::action(const std::vector<std::string> &w) {
    if (w[0] != "self-test-fail") return model_action(w);
    std::string err;
    bool on = true;
    return parse_on_off(w, 1, on, err) ? (self_test_fails_ = on, "") : err;
}

std::vector<std::string> reference_model::help() const {
    auto lines = model_help();
    lines.push_back("self-test-fail [on|off] the next self-tests fail");
    return lines;
}

bool reference_model::is_command(std::int64_t value, const std::string &name) const {
    return value == *p(command_register_).value_of(name);
}

// ---- the server ----------------------------------------------------------------------------------------------------

namespace {

struct model_kind {
    std::string what;
    model_factory make;
};

// Every model, by name (model_registration).
std::map<std::string, model_kind> &models() {
    static std::map<std::string, model_kind> all;
    return all;
}

std::string model_names() {
    std::string out;
    for (const auto &[name, m] : models()) out += (out.empty() ? "" : ", ") + name;
    return out;
}

struct scheduled {
    double at_ms;
    std::optional<int> unit;
    std::vector<std::string> words;
    std::string text;
    int line = 0;  // in the scenario file
};

struct options {
    std::string model;  // `firelink-sim MODEL`: every unit's; empty for `firelink-sim bus`
    std::string listen, serial;
    unsigned baud = 9600;
    std::map<int, std::string> units;  // address -> model
    std::vector<std::string> startup;
    std::string scenario;
    double run_for_s = 0;
    unsigned silence_ms = 20;
    bool verbose = false;
};

void usage(const options &o, FILE *to) {
    const bool bus = o.model.empty();
    const char *name = bus ? "bus" : o.model.c_str();
    std::fprintf(to, "usage: firelink-sim %s (--listen HOST:PORT | --serial PATH) %s[options]\n", name,
                 bus ? "--unit LIST=MODEL... " : "");
    if (bus)
        std::fprintf(to, "  simulates units of several device models on one bus (Modbus TCP with --listen, Modbus "
                         "RTU with --serial)\n\n");
    else
        std::fprintf(to, "  simulates %s (Modbus TCP with --listen, Modbus RTU with --serial)\n\n",
                     models().at(o.model).what.c_str());
    std::fprintf(to, "options:\n"
                     "  --listen HOST:PORT   Modbus TCP server (port 0: any; the port is printed)\n"
                     "  --serial PATH        Modbus RTU on a serial line or pty (several units make an RS-485 bus)\n"
                     "  --baud N             line speed for --serial (default 9600)\n");
    if (bus)
        std::fprintf(to, "  --unit LIST=MODEL    units served by a model, e.g. 1-2=gas-valve or 3=pyrolysis "
                         "(repeatable)\n                       models: %s\n", model_names().c_str());
    else
        std::fprintf(to, "  --units LIST         unit addresses, e.g. 1 or 1-4 or 1,3,7 (default 1)\n");
    std::fprintf(to, "  --do \"ACTION\"        run an action at start (repeatable); \"@N ACTION\" for one unit\n"
                     "  --scenario FILE      timed actions, one a line: \"<ms> [@N] ACTION\" (# comments)%s\n"
                     "  --for SECONDS        exit after this long (default: until SIGINT/SIGTERM or 'quit')\n"
                     "  --silence-ms N       a partial RTU frame older than this is discarded (default 20)\n"
                     "  -v, --verbose        print every request and reply\n"
                     "Standard input takes actions too, one a line (\"@N ACTION\" for one unit). A request for a unit\n"
                     "nobody serves gets no answer on --serial (as on RS-485) and exception 11 on --listen (as from a\n"
                     "Modbus TCP gateway); both are counted, and the counts logged at exit.\n\n"
                     "actions of every device:\n"
                     "  set POINT VALUE      set a point of the register map (engineering units)\n"
                     "  ramp POINT TO MS     move a point linearly to TO over MS milliseconds\n"
                     "  silent [on|off]      stop answering (a dead device)\n"
                     "  garbage [on|off]     answer with bytes that are not a valid frame\n"
                     "  exception CODE|off   answer every request with this Modbus exception\n"
                     "  quit                 exit\n",
                 bus ? ",\n                       and \"unit LIST MODEL\" lines that add units" : "");
    for (const auto &[m, kind] : models()) {
        if (!bus && m != o.model) continue;
        std::fprintf(to, "actions of %s:\n", m.c_str());
        for (const auto &h : kind.make()->help()) std::fprintf(to, "  %s\n", h.c_str());
    }
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

// Units LIST served by MODEL, into `units`. Returns an error, or "".
std::string add_units(const std::string &list, const std::string &model, std::map<int, std::string> &units) {
    std::vector<int> us;
    if (!parse_units(list, us)) return "'" + list + "': expected units like 1, 1-4 or 1,3,7 (1..247)";
    if (!models().count(model)) return "no model '" + model + "' (models: " + model_names() + ")";
    for (int u : us)
        if (const auto [it, fresh] = units.emplace(u, model); !fresh)
            return "unit " + std::to_string(u) + " is given twice (" + it->second + " and " + model + ")";
    return "";
}

// Whether every unit an action is aimed at takes it, tried on a fresh model of each: a typo or an action for the wrong
// model in a scenario then fails at start, not minutes into a run. Returns an error, or "".
std::string check_action(const std::map<int, std::string> &units, const std::optional<int> &unit,
                         const std::vector<std::string> &words) {
    if (words.empty() || words[0] == "quit") return "";
    if (unit && !units.count(*unit)) return "no unit " + std::to_string(*unit) + " here";
    for (const auto &[u, m] : units) {
        if (unit && *unit != u) continue;
        std::string err;
        try {
            err = models().at(m).make()->run(words);
        } catch (const std::exception &e) {
            err = e.what();
        }
        if (!err.empty())
            return unit ? err : "unit " + std::to_string(u) + " (" + m + "): " + err + "; name the unit (@N)";
    }
    return "";
}

class server {
public:
    explicit server(options o) : o_(std::move(o)) {
        for (const auto &[u, m] : o_.units) units_[u] = models().at(m).make();
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
        const int rc = serve(std::move(script));
        // What the master asked of units nobody serves: a unit missing from the simulation, or a wrong unit in the
        // site file.
        for (const auto &[u, n] : unserved_) spdlog::info("unit {}: {} request(s) for a unit nobody serves", u, n);
        return rc;
    }

private:
    int serve(std::vector<scheduled> script) {
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
                spdlog::error("poll: {}", std::strerror(errno));
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

    struct conn {
        int fd;
        mb::tcp_stream in;
    };

    bool open_serial() {
        main_fd_ = ::open(o_.serial.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK);
        if (main_fd_ < 0) return spdlog::error("cannot open {}: {}", o_.serial, std::strerror(errno)), false;
        termios t{};
        if (::tcgetattr(main_fd_, &t) == 0) {
            ::cfmakeraw(&t);
            const speed_t sp = o_.baud == 115200 ? B115200 : o_.baud == 57600 ? B57600 : o_.baud == 38400 ? B38400
                               : o_.baud == 19200 ? B19200 : o_.baud == 4800 ? B4800 : o_.baud == 2400 ? B2400 : B9600;
            ::cfsetispeed(&t, sp);
            ::cfsetospeed(&t, sp);
            ::tcsetattr(main_fd_, TCSANOW, &t);
        }
        std::printf("serial %s units%s\n", o_.serial.c_str(), units_text().c_str());
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
            return spdlog::error("cannot listen on {}: {}", o_.listen, std::strerror(errno)), false;
        socklen_t len = sizeof a;
        ::getsockname(main_fd_, reinterpret_cast<sockaddr *>(&a), &len);
        std::printf("listening %s:%d units%s\n", host.c_str(), ntohs(a.sin_port), units_text().c_str());
        return true;
    }

    // " 1=gas-valve 2=gas-valve 3=pyrolysis"
    std::string units_text() const {
        std::string out;
        for (const auto &[u, m] : o_.units) out += " " + std::to_string(u) + "=" + m;
        return out;
    }

    // A request for a unit nobody serves: counted, and logged the first time.
    void count_unserved(int unit) {
        if (unserved_[unit]++ == 0)
            spdlog::warn("unit {}: nobody serves this unit; its requests get {} (counted)", unit,
                         o_.serial.empty() ? "exception 11, as from a Modbus TCP gateway" : "no answer, as on RS-485");
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
            if (o_.verbose) trace("rx", mb::rtu_frame(a->unit, a->pdu));
            if (a->unit == 0) continue;  // a broadcast: no answer
            auto it = units_.find(a->unit);
            if (it == units_.end()) {  // silence: the master's reply timeout, as on an RS-485 bus
                count_unserved(a->unit);
                continue;
            }
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
                count_unserved(a->unit);
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
    std::map<int, std::uint64_t> unserved_;  // requests for units nobody serves, by unit
    int main_fd_ = -1;
    std::vector<conn> conns_;
    mb::rtu_stream rtu_{mb::direction::request};
    std::chrono::steady_clock::time_point last_rx_{};
    std::mt19937 rng_{12345};
};

// The scenario file: "unit LIST MODEL" lines (firelink-sim bus) into o.units, timed actions into `script`.
bool load_scenario(options &o, std::vector<scheduled> &script) {
    std::ifstream in(o.scenario);
    if (!in) return std::fprintf(stderr, "cannot read %s\n", o.scenario.c_str()), false;
    int lineno = 0;
    for (std::string line; std::getline(in, line);) {
        ++lineno;
        if (auto h = line.find('#'); h != std::string::npos) line.erase(h);
        auto words = split_words(line);
        if (words.empty()) continue;
        if (words[0] == "unit") {
            if (!o.model.empty())
                return std::fprintf(stderr, "%s:%d: \"unit LIST MODEL\" lines are for firelink-sim bus\n",
                                    o.scenario.c_str(), lineno), false;
            const auto err =
                words.size() == 3 ? add_units(words[1], words[2], o.units) : "expected \"unit LIST MODEL\"";
            if (!err.empty())
                return std::fprintf(stderr, "%s:%d: %s\n", o.scenario.c_str(), lineno, err.c_str()), false;
            continue;
        }
        scheduled s;
        std::string err;
        s.at_ms = parse_number(words[0], err);
        s.line = lineno;
        std::string rest = line.substr(line.find(words[0]) + words[0].size());
        if (!err.empty() || s.at_ms < 0 || !split_target(rest, s.unit, s.words) || s.words.empty())
            return std::fprintf(stderr, "%s:%d: expected \"<ms> [@unit] action args\"\n", o.scenario.c_str(), lineno), false;
        s.text = rest.substr(rest.find_first_not_of(" \t"));
        script.push_back(std::move(s));
    }
    std::stable_sort(script.begin(), script.end(), [](const scheduled &a, const scheduled &b) { return a.at_ms < b.at_ms; });
    return true;
}

// `firelink-sim MODEL|bus ARGS`: parses argv, runs the server until a signal, `quit`, or --for. Returns the exit code.
int run_sim(options o, int argc, char **argv) {
    const std::string self = "firelink-sim " + std::string(argv[0]);
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
            usage(o, stdout);
            return 0;
        } else if (a == "-v" || a == "--verbose") {
            o.verbose = true;
        } else if (a == "--units" && o.model.empty()) {
            return std::fprintf(stderr, "%s: --units is for one model; give --unit LIST=MODEL\n", self.c_str()), 2;
        } else if (a == "--unit" && !o.model.empty()) {
            return std::fprintf(stderr, "%s: every unit here is a %s (--units LIST); for several models: firelink-sim "
                                "bus\n", self.c_str(), o.model.c_str()), 2;
        } else if (a == "--listen" || a == "--serial" || a == "--baud" || a == "--units" || a == "--unit" ||
                   a == "--do" || a == "--scenario" || a == "--for" || a == "--silence-ms") {
            if (!(v = need(i))) return 2;
            try {
                if (a == "--listen") o.listen = v;
                else if (a == "--serial") o.serial = v;
                else if (a == "--baud") o.baud = static_cast<unsigned>(std::stoul(v));
                else if (a == "--units") {
                    o.units.clear();
                    if (const auto err = add_units(v, o.model, o.units); !err.empty())
                        return std::fprintf(stderr, "%s: --units %s\n", self.c_str(), err.c_str()), 2;
                } else if (a == "--unit") {
                    const std::string spec = v;
                    const auto eq = spec.find('=');
                    const auto err = eq == std::string::npos ? "expected LIST=MODEL, e.g. 1-2=gas-valve"
                                                             : add_units(spec.substr(0, eq), spec.substr(eq + 1), o.units);
                    if (!err.empty()) return std::fprintf(stderr, "%s: --unit %s: %s\n", self.c_str(), v, err.c_str()), 2;
                } else if (a == "--do") o.startup.push_back(v);
                else if (a == "--scenario") o.scenario = v;
                else if (a == "--for") o.run_for_s = std::stod(v);
                else o.silence_ms = static_cast<unsigned>(std::stoul(v));
            } catch (...) {
                return std::fprintf(stderr, "%s: bad value '%s'\n", a.c_str(), v), 2;
            }
        } else {
            std::fprintf(stderr, "%s: unknown argument '%s'\n", self.c_str(), a.c_str());
            usage(o, stderr);
            return 2;
        }
    }
    if (o.listen.empty() == o.serial.empty()) {
        std::fprintf(stderr, "%s: give exactly one of --listen HOST:PORT and --serial PATH\n", self.c_str());
        return 2;
    }
    std::vector<scheduled> script;
    if (!o.scenario.empty() && !load_scenario(o, script)) return 2;
    if (o.units.empty() && !o.model.empty()) o.units[1] = o.model;
    if (o.units.empty())
        return std::fprintf(stderr, "%s: no units: give --unit LIST=MODEL, or \"unit LIST MODEL\" lines in the scenario\n",
                            self.c_str()), 2;
    for (const auto &line : o.startup) {
        std::optional<int> unit;
        std::vector<std::string> words;
        const auto err = split_target(line, unit, words) ? check_action(o.units, unit, words) : "bad @unit";
        if (!err.empty()) return std::fprintf(stderr, "%s: --do '%s': %s\n", self.c_str(), line.c_str(), err.c_str()), 2;
    }
    for (const auto &s : script)
        if (const auto err = check_action(o.units, s.unit, s.words); !err.empty())
            return std::fprintf(stderr, "%s:%d: %s: %s\n", o.scenario.c_str(), s.line, s.text.c_str(), err.c_str()), 2;
    server srv(std::move(o));
    return srv.run(std::move(script));
}

// `firelink-sim MODEL ...` (argv[0] is the model's name) and `firelink-sim bus ...`.
int run_model(int argc, char **argv) {
    options o;
    o.model = argv[0];
    return run_sim(std::move(o), argc, argv);
}
int run_bus(int argc, char **argv) { return run_sim(options{}, argc, argv); }

const firelink::tools::registration bus_reg{"bus", "Modbus units of several models on one bus (RS-485 or TCP)", &run_bus};

}  // namespace

model_registration::model_registration(const char *name, const char *summary, const char *what, model_factory make) {
    models()[name] = model_kind{what, std::move(make)};
    firelink::tools::subcommands()[name] = firelink::tools::subcommand{summary, &run_model};
}

}  // namespace firelink::sim::modbus
