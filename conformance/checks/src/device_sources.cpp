// The device sources of the polled class scenarios (device_source.hpp) and the trace format (trace.hpp).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include <firelink/plugin.h>
#include <firelink/transport/link.hpp>

#include "device_source.hpp"
#include "scenario.hpp"
#include "trace.hpp"

namespace firelink::conform {

using namespace std::chrono_literals;

// ---- the trace format -------------------------------------------------------------------------------------------
std::string to_hex(const std::uint8_t *data, std::size_t size) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < size; ++i) {
        out += digits[data[i] >> 4];
        out += digits[data[i] & 15];
    }
    return out;
}

namespace {

bool from_hex(const std::string &s, std::vector<std::uint8_t> &out) {
    if (s.size() % 2) return false;
    auto nib = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < s.size(); i += 2) {
        const int hi = nib(s[i]), lo = nib(s[i + 1]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
    }
    return true;
}

}  // namespace

std::vector<std::uint8_t> trace::key(const std::vector<std::uint8_t> &request) const {
    auto k = request;
    if (framing == "modbus-tcp" && k.size() >= 2) k[0] = k[1] = 0;
    return k;
}

std::vector<std::vector<std::uint8_t>> trace::split(std::vector<std::uint8_t> &buf) const {
    std::vector<std::vector<std::uint8_t>> out;
    if (framing != "modbus-tcp") {
        if (!buf.empty()) out.push_back(std::exchange(buf, {}));
        return out;
    }
    while (buf.size() >= 6) {
        const std::size_t n = 6 + (static_cast<std::size_t>(buf[4]) << 8 | buf[5]);
        if (n > 260 + 6) {  // not an MBAP header: take it all as one request
            out.push_back(std::exchange(buf, {}));
            break;
        }
        if (buf.size() < n) break;
        out.emplace_back(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
        buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
    return out;
}

bool trace::parse(const std::string &text, trace &t, std::string &why) {
    t = trace{};
    t.sections.push_back({});
    std::istringstream in(text);
    std::string line;
    bool magic = false;
    // The turn the next `in` bytes belong to: the last request, even when an action line came between.
    std::optional<std::pair<std::size_t, std::size_t>> last;
    std::vector<std::uint8_t> pending;  // modbus-tcp: a request split over lines
    for (int n = 1; std::getline(in, line); ++n) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const std::string at = "line " + std::to_string(n) + ": ";
        if (line.empty()) continue;
        if (line[0] == '#') {
            std::istringstream words(line.substr(1));
            std::string word, rest;
            words >> word;
            std::getline(words >> std::ws, rest);
            if (word == "firelink-conform") magic = rest == "trace 1";
            else if (word == "class") t.device_class = rest;
            else if (word == "scenario") t.scenario = rest;
            else if (word == "framing") {
                if (rest != "modbus-tcp" && rest != "raw") return why = at + "framing '" + rest + "' is not modbus-tcp or raw", false;
                t.framing = rest;
            } else if (word == "action") {
                if (rest.empty()) return why = at + "an action without a name", false;
                t.sections.push_back({rest, {}});
            }
            continue;
        }
        if (!magic) return why = "line 1 is not '# firelink-conform trace 1'", false;
        std::istringstream words(line);
        std::string ms_text, dir, hex, extra;
        words >> ms_text >> dir >> hex >> extra;
        char *end = nullptr;
        std::strtod(ms_text.c_str(), &end);
        if (ms_text.empty() || *end) return why = at + "'" + ms_text + "' is not a time in ms", false;
        if (dir != "in" && dir != "out") return why = at + "'" + dir + "' is not in or out", false;
        std::vector<std::uint8_t> bytes;
        if (hex.empty() || !extra.empty() || !from_hex(hex, bytes))
            return why = at + "expected one run of hex digits, an even number of them", false;
        auto &turns = t.sections.back().turns;
        if (dir == "out") {
            pending.insert(pending.end(), bytes.begin(), bytes.end());
            for (auto &r : t.split(pending)) {
                turns.push_back({std::move(r), {}});
                last = {t.sections.size() - 1, turns.size() - 1};
            }
        } else {
            if (!last) continue;  // bytes nobody asked for: not replayed
            auto &reply = t.sections[last->first].turns[last->second].reply;
            reply.insert(reply.end(), bytes.begin(), bytes.end());
        }
    }
    if (!magic) return why = "line 1 is not '# firelink-conform trace 1'", false;
    // A recording ends while a request is in flight: that request was not left unanswered by the device.
    if (last && t.sections[last->first].turns[last->second].reply.empty())
        t.sections[last->first].turns.erase(t.sections[last->first].turns.begin() +
                                            static_cast<std::ptrdiff_t>(last->second));
    if (t.scenario.empty()) return why = "no '# scenario NAME' line", false;
    return true;
}

// ---- a child on pipes --------------------------------------------------------------------------------------------
piped_child::~piped_child() {
    if (in_ >= 0) ::close(in_);
    if (out_ >= 0) ::close(out_);
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        int st = 0;
        ::waitpid(pid_, &st, 0);
    }
}

bool piped_child::spawn(const std::vector<std::string> &argv, std::string &why) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
        why = std::string("pipe: ") + std::strerror(errno);
        return false;
    }
    std::vector<char *> args;
    for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = in[1];
    out_ = out[0];
    if (pid_ < 0) {
        why = std::string("fork: ") + std::strerror(errno);
        return false;
    }
    return true;
}

void piped_child::write_line(const std::string &line) {
    const std::string text = line + "\n";
    [[maybe_unused]] const auto n = ::write(in_, text.data(), text.size());
}

// ---- a null-modem pair of ptys ------------------------------------------------------------------------------------
pty_pair::~pty_pair() {
    if (thread_.joinable()) {
        [[maybe_unused]] const auto n = ::write(wake_[1], "x", 1);
        thread_.join();
    }
    for (int fd : {master_[0], master_[1], slave_[0], slave_[1], wake_[0], wake_[1]})
        if (fd >= 0) ::close(fd);
}

bool pty_pair::open(std::string &why) {
    for (int i = 0; i < 2; ++i) {
        master_[i] = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        char name[128];
        if (master_[i] < 0 || ::grantpt(master_[i]) != 0 || ::unlockpt(master_[i]) != 0 ||
            ::ptsname_r(master_[i], name, sizeof name) != 0) {
            why = std::string("cannot open a pty: ") + std::strerror(errno);
            return false;
        }
        path_[i] = name;
        slave_[i] = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        termios t{};
        if (slave_[i] < 0 || ::tcgetattr(slave_[i], &t) != 0) {
            why = "cannot open " + path_[i] + ": " + std::strerror(errno);
            return false;
        }
        ::cfmakeraw(&t);
        ::tcsetattr(slave_[i], TCSANOW, &t);
    }
    if (::pipe2(wake_, O_CLOEXEC) != 0) {
        why = std::string("pipe: ") + std::strerror(errno);
        return false;
    }
    thread_ = std::thread([this] { relay(); });
    return true;
}

void pty_pair::relay() {
    for (;;) {
        pollfd p[3] = {{wake_[0], POLLIN, 0}, {master_[0], POLLIN, 0}, {master_[1], POLLIN, 0}};
        if (::poll(p, 3, 1000) < 0 && errno != EINTR) return;
        if (p[0].revents) return;
        for (int i = 0; i < 2; ++i) {
            if (!(p[1 + i].revents & POLLIN)) continue;
            std::uint8_t b[512];
            const auto n = ::read(master_[i], b, sizeof b);
            for (ssize_t at = 0; n > 0 && at < n;) {
                const auto w = ::write(master_[1 - i], b + at, static_cast<std::size_t>(n - at));
                if (w <= 0) break;
                at += w;
            }
        }
    }
}

// ---- the simulator -----------------------------------------------------------------------------------------------
bool simulator::start(const std::filesystem::path &exe, const std::string &kind, std::string &why) {
    return start(exe, kind, {"--listen", "127.0.0.1:0"}, why);
}

bool simulator::start(const std::filesystem::path &exe, const std::string &kind, const std::vector<std::string> &args,
                      std::string &why) {
    std::vector<std::string> argv{exe.string(), kind};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!child_.spawn(argv, why)) return false;
    // "listening 127.0.0.1:40123 units 1", then "ready" once it serves.
    const auto deadline = steady::now() + 5s;
    for (std::string line; read_line(line, deadline);) {
        if (line.rfind("listening ", 0) == 0) {
            const auto colon = line.find(':'), space = line.find(' ', colon == std::string::npos ? 0 : colon);
            if (colon != std::string::npos)
                port_ = static_cast<std::uint16_t>(std::atoi(line.substr(colon + 1, space - colon - 1).c_str()));
        } else if (line == "ready") {
            const bool listens = !args.empty() && args[0] == "--listen";
            if (listens && port_ == 0) why = "'" + exe.string() + " " + kind + "' did not say which port it listens on";
            return !listens || port_ != 0;
        }
    }
    why = "'" + exe.string() + " " + kind + "' did not print 'ready' within 5 s";
    return false;
}

void simulator::act(const std::string &action) {
    child_.write_line(action);
    drain();
}

bool simulator::read_line(std::string &line, steady::time_point deadline) {
    for (;;) {
        if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
            line = buf_.substr(0, nl);
            buf_.erase(0, nl + 1);
            return true;
        }
        const auto left = ms(deadline - steady::now());
        if (left <= 0) return false;
        pollfd p{child_.out(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
        char b[512];
        const auto r = ::read(child_.out(), b, sizeof b);
        if (r <= 0) return false;
        buf_.append(b, static_cast<std::size_t>(r));
    }
}

void simulator::drain() {
    char b[4096];
    pollfd p{child_.out(), POLLIN, 0};
    while (::poll(&p, 1, 0) > 0 && ::read(child_.out(), b, sizeof b) > 0) {}
    buf_.clear();
}

namespace {

// ---- loopback sockets -------------------------------------------------------------------------------------------
int listen_loopback(std::uint16_t &port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || ::listen(fd, 8) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
        ::close(fd);
        return -1;
    }
    port = ntohs(a.sin_port);
    return fd;
}

int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

void write_all(int fd, const std::uint8_t *data, std::size_t size) {
    while (size) {
        const auto n = ::send(fd, data, size, MSG_NOSIGNAL);
        if (n <= 0) return;
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

core::link_factory tcp_link(std::string host, std::uint16_t port, int unit) {
    return [host, port, unit](transport::executor ex, transport::link_events ev) {
        auto l = transport::make_tcp_client_link(std::move(ex), host, port, transport::backoff{100ms, 1000ms},
                                                 std::move(ev));
        l->set_unit(unit);
        return l;
    };
}

// A thread serving loopback connections: accepted ones (and, for a proxy, their upstream) until stopped.
class loopback_peer {
public:
    virtual ~loopback_peer() { stop(); }
    bool listen(std::string &why) {
        listen_fd_ = listen_loopback(port_);
        if (listen_fd_ < 0 || ::pipe2(wake_, O_CLOEXEC) != 0) {
            why = std::string("cannot listen on a loopback port: ") + std::strerror(errno);
            return false;
        }
        thread_ = std::thread([this] { loop(); });
        return true;
    }
    std::uint16_t port() const { return port_; }
    void stop() {
        if (!thread_.joinable()) return;
        [[maybe_unused]] const auto n = ::write(wake_[1], "x", 1);
        thread_.join();
        for (auto &c : conns_) {
            ::close(c.fd);
            if (c.upstream >= 0) ::close(c.upstream);
        }
        conns_.clear();
        ::close(listen_fd_);
        ::close(wake_[0]);
        ::close(wake_[1]);
    }

protected:
    struct conn {
        int fd = -1, upstream = -1;
        std::vector<std::uint8_t> buf;
    };
    // A new connection from the driver; false refuses it.
    virtual bool accepted(conn &c) = 0;
    // Bytes from the driver (`from_driver`) or from upstream.
    virtual void received(conn &c, bool from_driver, const std::uint8_t *data, std::size_t size) = 0;

private:
    void loop() {
        for (;;) {
            std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
            for (auto &c : conns_) {
                fds.push_back({c.fd, POLLIN, 0});
                if (c.upstream >= 0) fds.push_back({c.upstream, POLLIN, 0});
            }
            if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) return;
            if (fds[0].revents) return;
            if (fds[1].revents & POLLIN) {
                conn c;
                c.fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (c.fd >= 0) {
                    if (accepted(c)) conns_.push_back(std::move(c));
                    else ::close(c.fd);
                }
            }
            std::size_t i = 2;
            for (auto it = conns_.begin(); it != conns_.end();) {
                bool dead = false;
                for (int side = 0; side < (it->upstream >= 0 ? 2 : 1); ++side, ++i) {
                    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                    std::uint8_t b[4096];
                    const auto n = ::read(fds[i].fd, b, sizeof b);
                    if (n <= 0) dead = true;
                    else received(*it, side == 0, b, static_cast<std::size_t>(n));
                }
                if (dead) {
                    ::close(it->fd);
                    if (it->upstream >= 0) ::close(it->upstream);
                    it = conns_.erase(it);
                } else {
                    ++it;
                }
            }
        }
    }
    int listen_fd_ = -1, wake_[2] = {-1, -1};
    std::uint16_t port_ = 0;
    std::thread thread_;
    std::vector<conn> conns_;
};

// Relays the driver's connection to the simulator and writes every byte, each way, as a trace.
class recording_proxy : public loopback_peer {
public:
    recording_proxy(std::uint16_t upstream, std::string header) : upstream_(upstream), text_(std::move(header)) {}
    ~recording_proxy() override { stop(); }
    void mark(const std::string &action) {
        std::lock_guard lock(mutex_);
        text_ += "# action " + action + "\n";
    }
    std::string text() {
        std::lock_guard lock(mutex_);
        return text_;
    }

private:
    bool accepted(conn &c) override {
        c.upstream = connect_loopback(upstream_);
        return c.upstream >= 0;
    }
    void received(conn &c, bool from_driver, const std::uint8_t *data, std::size_t size) override {
        {
            std::lock_guard lock(mutex_);
            text_ += std::to_string(ms(steady::now() - t0_)) + (from_driver ? " out " : " in ") + to_hex(data, size) +
                     "\n";
        }
        write_all(from_driver ? c.upstream : c.fd, data, size);
    }
    std::uint16_t upstream_;
    steady::time_point t0_ = steady::now();
    std::mutex mutex_;
    std::string text_;
};

class sim_source : public device_source {
public:
    // Over TCP when the driver speaks it, else (a serial-only driver) over a pty pair: the simulator speaks Modbus
    // RTU on one end, the host's serial link opens the other.
    bool start(const run_options &o, const core::driver_info &drv, const std::string &kind, const std::string &check,
               std::string &why) {
        if (!(drv.wires & FL_WIRE_TCP_CLIENT)) {
            if (!o.record_dir.empty()) return why = "--record-traces records TCP: driver '" + drv.id +
                                                    "' declares only serial wires", false;
            line_ = std::make_unique<pty_pair>();
            return line_->open(why) && sim_.start(sim_path(o), kind, {"--serial", line_->device_end()}, why);
        }
        if (!sim_.start(sim_path(o), kind, why)) return false;
        if (o.record_dir.empty()) return true;
        file_ = o.record_dir / (check + ".trace");
        const auto dot = check.rfind('.');
        proxy_ = std::make_unique<recording_proxy>(
            sim_.port(), "# firelink-conform trace 1\n# recorded by firelink-conform from 'firelink-sim " + kind +
                             "' with driver " + drv.id + "\n# class " + drv.device_class + "\n# scenario " +
                             check.substr(dot + 1) + "\n# framing modbus-tcp\n");
        return proxy_->listen(why);
    }
    core::link_factory link() override {
        if (line_)
            return [path = line_->host_end()](transport::executor ex, transport::link_events ev) {
                transport::serial_settings s;
                s.path = path;
                auto l = transport::make_serial_link(std::move(ex), s, transport::backoff{100ms, 1000ms}, std::move(ev));
                l->set_unit(1);
                return l;
            };
        return tcp_link("127.0.0.1", proxy_ ? proxy_->port() : sim_.port(), 1);
    }
    void act(const std::string &action) override {
        if (proxy_) proxy_->mark(action);
        sim_.act(action);
    }
    void commanded(const std::string &name) override {
        if (proxy_) proxy_->mark("command " + name);
    }
    void finish(findings &f) override {
        if (!proxy_) return;
        proxy_->stop();
        std::ofstream out(file_, std::ios::trunc);
        out << proxy_->text();
        if (!out) f.fail("cannot write the trace " + file_.string());
        else f.note("recorded " + file_.string());
    }

private:
    std::unique_ptr<pty_pair> line_;  // outlives the simulator that opened its end
    simulator sim_;
    std::unique_ptr<recording_proxy> proxy_;
    std::filesystem::path file_;
};

// ---- a trace, replayed by a loopback peer ------------------------------------------------------------------------
class trace_source : public device_source, private loopback_peer {
public:
    trace_source(trace t, std::filesystem::path file) : t_(std::move(t)), file_(std::move(file)) {}
    ~trace_source() override { stop(); }
    bool start(std::string &why) { return listen(why); }
    core::link_factory link() override { return tcp_link("127.0.0.1", port(), 1); }
    void act(const std::string &action) override {
        std::lock_guard lock(mutex_);
        for (std::size_t pass = 0; pass < 2; ++pass)
            for (std::size_t i = pass ? 0 : section_ + 1; i < t_.sections.size(); ++i)
                if (t_.sections[i].action == action) {
                    section_ = i;
                    return;
                }
        missing_.push_back(action);
    }
    void commanded(const std::string &name) override { act("command " + name); }
    void finish(findings &f) override {
        stop();
        std::lock_guard lock(mutex_);
        std::string held;
        for (const auto &s : t_.sections)
            if (!s.action.empty()) held += (held.empty() ? "'" : ", '") + s.action + "'";
        for (const auto &a : missing_)
            f.fail("the trace " + file_.filename().string() + " (class " + t_.device_class + ") has no section for '" +
                   a + "'; it holds " + (held.empty() ? "none" : held));
        if (unanswered_) f.note(std::to_string(unanswered_) + " request(s) the trace holds no reply for went unanswered");
    }

private:
    bool accepted(conn &) override { return true; }
    void received(conn &c, bool, const std::uint8_t *data, std::size_t size) override {
        c.buf.insert(c.buf.end(), data, data + size);
        for (const auto &req : t_.split(c.buf)) {
            auto reply = lookup(req);
            if (reply.empty()) continue;  // the device did not answer this one
            if (t_.framing == "modbus-tcp" && reply.size() >= 2 && req.size() >= 2) {
                reply[0] = req[0];
                reply[1] = req[1];
            }
            write_all(c.fd, reply.data(), reply.size());
        }
    }
    // The reply recorded last for this request in the current section, else in the nearest earlier one, else in
    // a later one.
    std::vector<std::uint8_t> lookup(const std::vector<std::uint8_t> &req) {
        const auto k = t_.key(req);
        std::lock_guard lock(mutex_);
        auto find_in = [&](std::size_t s) -> const trace::turn * {
            const auto &turns = t_.sections[s].turns;
            for (auto it = turns.rbegin(); it != turns.rend(); ++it)
                if (t_.key(it->request) == k) return &*it;
            return nullptr;
        };
        for (std::size_t s = section_ + 1; s-- > 0;)
            if (const auto *turn = find_in(s)) return turn->reply;
        for (std::size_t s = section_ + 1; s < t_.sections.size(); ++s)
            if (const auto *turn = find_in(s)) return turn->reply;
        ++unanswered_;
        return {};
    }

    trace t_;
    std::filesystem::path file_;
    std::mutex mutex_;
    std::size_t section_ = 0, unanswered_ = 0;
    std::vector<std::string> missing_;
};

// ---- a live device -------------------------------------------------------------------------------------------------
struct device_uri {
    std::string scheme, host, path;
    std::uint16_t port = 0;
    unsigned baud = 9600;
    int unit = 1;
};

bool parse_uri(const std::string &uri, device_uri &u, std::string &why) {
    const auto sep = uri.find("://");
    if (sep == std::string::npos) return why = "expected tcp://HOST:PORT?unit=N or serial:///dev/ttyX?baud=B&unit=N", false;
    u.scheme = uri.substr(0, sep);
    std::string rest = uri.substr(sep + 3), query;
    if (const auto q = rest.find('?'); q != std::string::npos) {
        query = rest.substr(q + 1);
        rest.resize(q);
    }
    std::istringstream qs(query);
    for (std::string kv; std::getline(qs, kv, '&');) {
        const auto eq = kv.find('=');
        const std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : kv.substr(eq + 1);
        char *end = nullptr;
        const long n = std::strtol(v.c_str(), &end, 10);
        if (v.empty() || *end || n < 0) return why = "'" + kv + "' is not KEY=NUMBER", false;
        if (k == "unit" && n <= 255) u.unit = static_cast<int>(n);
        else if (k == "baud" && n > 0) u.baud = static_cast<unsigned>(n);
        else return why = "unknown or out of range '" + kv + "' (unit, baud)", false;
    }
    if (u.scheme == "tcp") {
        const auto colon = rest.rfind(':');
        if (colon == std::string::npos || colon == 0) return why = "tcp://HOST:PORT wants a host and a port", false;
        u.host = rest.substr(0, colon);
        const long p = std::strtol(rest.substr(colon + 1).c_str(), nullptr, 10);
        if (p <= 0 || p > 65535) return why = "port '" + rest.substr(colon + 1) + "' is not 1..65535", false;
        u.port = static_cast<std::uint16_t>(p);
        return true;
    }
    if (u.scheme == "serial") {
        if (rest.empty() || rest[0] != '/') return why = "serial:///PATH wants an absolute device path", false;
        u.path = rest;
        return true;
    }
    return why = "scheme '" + u.scheme + "' is not tcp or serial", false;
}

class live_source : public device_source {
public:
    live_source(device_uri u, std::filesystem::path actions) : u_(std::move(u)), actions_(std::move(actions)) {}
    core::link_factory link() override {
        if (u_.scheme == "tcp") return tcp_link(u_.host, u_.port, u_.unit);
        transport::serial_settings s;
        s.path = u_.path;
        s.baud = u_.baud;
        const int unit = u_.unit;
        return [s, unit](transport::executor ex, transport::link_events ev) {
            auto l = transport::make_serial_link(std::move(ex), s, transport::backoff{100ms, 1000ms}, std::move(ev));
            l->set_unit(unit);
            return l;
        };
    }
    // The action goes to the rig (a line on --device-actions FILE), or to the certifier, who does it and presses
    // Enter.
    void act(const std::string &action) override {
        if (!actions_.empty()) {
            const int fd = ::open(actions_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
            if (fd < 0) return;
            const std::string line = action + "\n";
            [[maybe_unused]] const auto n = ::write(fd, line.data(), line.size());
            ::close(fd);
            return;
        }
        const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
        if (tty < 0) return;
        const std::string ask = "\nfirelink-conform: on the device, do: " + action + "\n  then press Enter ";
        [[maybe_unused]] const auto n = ::write(tty, ask.data(), ask.size());
        char c = 0;
        while (::read(tty, &c, 1) == 1 && c != '\n') {}
        ::close(tty);
    }

private:
    device_uri u_;
    std::filesystem::path actions_;
};

bool read_text(const std::filesystem::path &p, std::string &out) {
    std::ifstream in(p, std::ios::binary);
    if (!in) return false;
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

}  // namespace

std::unique_ptr<device_source> make_polled_source(const run_options &o, const core::driver_info &drv,
                                                  const std::string &sim_kind, const std::string &check_id,
                                                  findings &f) {
    std::string why;
    if (!o.device_uri.empty()) {
        device_uri u;
        if (!parse_uri(o.device_uri, u, why)) return f.fail("--device " + o.device_uri + ": " + why), nullptr;
        if (u.scheme == "tcp" && !(drv.wires & FL_WIRE_TCP_CLIENT))
            return f.skip("driver '" + drv.id + "' declares no tcp_client wire for --device " + o.device_uri), nullptr;
        if (u.scheme == "serial" && !(drv.wires & (FL_WIRE_SERIAL | FL_WIRE_RS485_BUS)))
            return f.skip("driver '" + drv.id + "' declares no serial wire for --device " + o.device_uri), nullptr;
        if (o.device_actions.empty()) {
            const int tty = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
            if (tty < 0)
                return f.skip("a live device needs its actions done: give --device-actions FILE or run on a "
                              "terminal"), nullptr;
            ::close(tty);
        }
        return std::make_unique<live_source>(u, o.device_actions);
    }
    if (!o.traces.empty()) {
        const std::string scenario = check_id.substr(check_id.rfind('.') + 1);
        std::string given;
        for (const auto &file : o.traces) {
            std::string text;
            if (!read_text(file, text)) return f.fail("cannot read the trace " + file.string()), nullptr;
            trace t;
            if (!trace::parse(text, t, why)) return f.fail("the trace " + file.string() + " is not valid: " + why), nullptr;
            if (t.scenario != scenario) {
                given += (given.empty() ? "" : ", ") + t.scenario;
                continue;
            }
            if (!(drv.wires & FL_WIRE_TCP_CLIENT))
                return f.skip("driver '" + drv.id + "' declares no tcp_client wire: a trace is replayed over TCP"),
                       nullptr;
            auto src = std::make_unique<trace_source>(std::move(t), file);
            if (!src->start(why)) return f.fail(why), nullptr;
            return src;
        }
        return f.skip("no --trace for scenario '" + scenario + "' (the traces given hold: " + given + ")"), nullptr;
    }
    if (!(drv.wires & (FL_WIRE_TCP_CLIENT | FL_WIRE_SERIAL | FL_WIRE_RS485_BUS)))
        return f.skip("driver '" + drv.id + "' declares neither a tcp_client nor a serial wire: its device cannot "
                      "be polled"), nullptr;
    // A class scenario never passes for want of a device: no simulator is an error, not a skip.
    const auto sim = sim_path(o);
    if (sim.empty() || ::access(sim.c_str(), X_OK) != 0)
        return f.fail("no device source for " + drv.device_class + ": no simulator at '" + sim.string() +
                      "' (give --sim PATH_TO_firelink-sim, --trace or --device)"), nullptr;
    auto src = std::make_unique<sim_source>();
    if (!src->start(o, drv, sim_kind, check_id, why)) return f.fail("the device source did not start: " + why), nullptr;
    return src;
}

}  // namespace firelink::conform
