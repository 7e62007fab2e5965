// Real peers for the transport tests: pty pairs, loopback sockets, and a recorder of what a link called back.
// Waits are generous deadlines (10 s for what takes a millisecond); no test asserts how fast anything was.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <gtest/gtest.h>

#include <firelink/transport/link.hpp>

namespace transport_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;
namespace ft = firelink::transport;

inline constexpr auto patience = 10s;  // how long to wait for something that normally takes a millisecond

// An io_context run by two threads, as in the host.
struct io_runner {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
    std::vector<std::thread> threads;

    explicit io_runner(int n = 2) {
        for (int i = 0; i < n; ++i) threads.emplace_back([this] { io.run(); });
    }
    ~io_runner() {
        guard.reset();
        io.stop();
        for (auto &t : threads) t.join();
    }
    ft::executor strand() { return asio::make_strand(io); }
};

// Runs f on the executor (where every link call belongs) and returns its result.
template <class F>
auto on(const ft::executor &ex, F &&f) -> decltype(f()) {
    using R = decltype(f());
    std::packaged_task<R()> task(std::forward<F>(f));
    auto result = task.get_future();
    asio::post(ex, [&task] { task(); });
    if (result.wait_for(patience) != std::future_status::ready) {
        std::fprintf(stderr, "executor did not run a task within %lld s\n", static_cast<long long>(patience.count()));
        std::abort();
    }
    return result.get();
}

inline bool eventually(const std::function<bool()> &condition, std::chrono::milliseconds within = patience) {
    const auto until = std::chrono::steady_clock::now() + within;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// What a link told its device, in order. `closed` is set (on the link's executor) right after close(): any callback
// seen after that is counted as late.
struct recorder {
    mutable std::mutex mu;
    std::vector<int> states;
    std::vector<fl_status> reasons;
    std::string data;
    std::string order;  // 'S' for a state, 'D' for data, in call order
    bool closed = false;
    int late = 0;
    std::function<void(const std::uint8_t *, std::size_t)> data_hook;
    std::function<void(int)> state_hook;

    ft::link_events events() {
        ft::link_events e;
        e.on_data = [this](const std::uint8_t *p, std::size_t n) {
            {
                std::lock_guard lock(mu);
                if (closed) ++late;
                data.append(reinterpret_cast<const char *>(p), n);
                order += 'D';
            }
            if (data_hook) data_hook(p, n);
        };
        e.on_state = [this](int s, fl_status r) {
            {
                std::lock_guard lock(mu);
                if (closed) ++late;
                states.push_back(s);
                reasons.push_back(r);
                order += 'S';
            }
            if (state_hook) state_hook(s);
        };
        return e;
    }
    int count(int state) const {
        std::lock_guard lock(mu);
        int n = 0;
        for (int s : states) n += s == state;
        return n;
    }
    bool wait_state(int state, int times = 1) {
        return eventually([&] { return count(state) >= times; });
    }
    std::string received() const {
        std::lock_guard lock(mu);
        return data;
    }
    bool wait_data(const std::string &expected) {
        return eventually([&] { return received().size() >= expected.size(); }) && received() == expected;
    }
    std::vector<int> state_list() const {
        std::lock_guard lock(mu);
        return states;
    }
    int late_calls() const {
        std::lock_guard lock(mu);
        return late;
    }
    void mark_closed() {
        std::lock_guard lock(mu);
        closed = true;
    }
    std::size_t events_seen() const {
        std::lock_guard lock(mu);
        return order.size();
    }
    std::size_t data_calls() const {
        std::lock_guard lock(mu);
        return static_cast<std::size_t>(std::count(order.begin(), order.end(), 'D'));
    }
    std::size_t received_size() const {
        std::lock_guard lock(mu);
        return data.size();
    }
    // Waits for `expected.size()` bytes without copying megabytes on every poll, then compares once.
    bool wait_large(const std::string &expected) {
        return eventually([&] { return received_size() >= expected.size(); }) && received() == expected;
    }
};

inline std::vector<std::uint8_t> bytes(const std::string &s) { return {s.begin(), s.end()}; }

// The fixture of a test that drives one link (`link`, made by the test) on its own strand and records its callbacks.
// The link goes in TearDown, before the peers a derived fixture holds (a pty, a server socket, a listener).
class link_test : public ::testing::Test {
protected:
    void TearDown() override { link.reset(); }

    // The link's calls, made on its executor.
    fl_status open_link() {
        return on(ex, [&] { return link->open(); });
    }
    fl_status write(const std::string &s) {
        const auto b = bytes(s);
        return on(ex, [&] { return link->write(b.data(), b.size()); });
    }
    void close_link() {
        on(ex, [&] { return link->close(); });
    }

    io_runner run;
    recorder rec;
    ft::executor ex = run.strand();
    std::unique_ptr<ft::link> link;
};

// n bytes no two stretches of which look alike, so a lost, repeated or reordered chunk shows.
inline std::string pattern(std::size_t n) {
    std::string out(n, '\0');
    std::uint32_t x = 2463534242u;
    for (auto &c : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    return out;
}

// ---- file descriptors with deadlines ---------------------------------------------------------------------------

inline bool wait_readable(int fd, std::chrono::milliseconds within) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(within.count())) == 1;
}

// Reads exactly n bytes, or returns what arrived before the deadline / EOF.
inline std::string read_exact(int fd, std::size_t n, std::chrono::milliseconds within = patience) {
    std::string out;
    const auto until = std::chrono::steady_clock::now() + within;
    while (out.size() < n) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !wait_readable(fd, left)) break;
        char buf[4096];
        const ssize_t got = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
        if (got <= 0) break;
        out.append(buf, static_cast<std::size_t>(got));
    }
    return out;
}

inline void write_all(int fd, const std::string &s) {
    std::size_t done = 0;
    while (done < s.size()) {
        const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
        ASSERT_GT(n, 0) << "write failed";
        done += static_cast<std::size_t>(n);
    }
}

inline void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Writes `data` from `from` on to a non-blocking fd until the fd stays unwritable for `quiet` (the reader stopped
// reading and every buffer on the way is full) or everything is written; returns the new offset. A reader that keeps
// reading lets the writes go on, so a stall here means backpressure reached the writer.
inline std::size_t write_until_stalled(int fd, const std::string &data, std::size_t from,
                                       std::chrono::milliseconds quiet = 500ms) {
    while (from < data.size()) {
        const ssize_t n = ::write(fd, data.data() + from, std::min<std::size_t>(data.size() - from, 64 * 1024));
        if (n > 0) {
            from += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            ADD_FAILURE() << "write failed: " << std::strerror(errno);
            return from;
        }
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(quiet.count())) == 0) return from;  // stalled
    }
    return from;
}

// Writes the rest of `data` to a non-blocking fd; fails the test if the reader stalls for `patience`.
inline void write_rest(int fd, const std::string &data, std::size_t from) {
    from = write_until_stalled(fd, data, from, patience);
    EXPECT_EQ(from, data.size()) << "the reader stopped taking bytes";
}

// Backpressure on a byte stream, from a paused link that has received nothing yet: the device writes `payload` on
// `device_fd` until its writes stall (the link reads nothing while paused, so the kernel buffers fill up); then the
// link is resumed and every byte must arrive, in order. Returns whether all of `payload` arrived.
inline bool expect_stall_then_full_delivery(const ft::executor &ex, ft::link &link, recorder &rec, int device_fd,
                                            const std::string &payload) {
    set_nonblocking(device_fd);
    const std::size_t sent = write_until_stalled(device_fd, payload, 0);
    EXPECT_LT(sent, payload.size()) << "the device's writes never blocked: the host kept reading";
    std::this_thread::sleep_for(200ms);
    // The read that was already waiting when the link paused may complete (it is delivered); nothing after it.
    EXPECT_LE(rec.data_calls(), 1u) << "only the read already waiting when the link paused";
    EXPECT_LE(rec.received_size(), 4096u);
    EXPECT_EQ(rec.received(), payload.substr(0, rec.received_size()));

    on(ex, [&] { link.set_paused(false); });
    EXPECT_FALSE(on(ex, [&] { return link.paused(); }));
    write_rest(device_fd, payload, sent);
    const bool delivered = rec.wait_large(payload);
    EXPECT_TRUE(delivered) << rec.received_size() << " of " << payload.size() << " bytes";
    const auto c = link.counters();
    EXPECT_EQ(c.bytes_in, payload.size());
    EXPECT_EQ(c.bytes_discarded, 0u);
    return delivered;
}

// True when the peer closed the connection (read returns 0 or an error) before the deadline.
inline bool wait_closed(int fd, std::chrono::milliseconds within = patience) {
    const auto until = std::chrono::steady_clock::now() + within;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !wait_readable(fd, left)) return false;
        char buf[256];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) return true;
    }
}

// ---- a pty pair: the link opens `path` (the slave); the test is the device on the master ----------------------

struct pty_pair {
    int master = -1;
    int slave = -1;  // held open so that the master never sees a hangup while the link reopens
    std::string path;

    pty_pair() {
        if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) {
            ADD_FAILURE() << "openpty failed";
            return;
        }
        termios t{};
        ::tcgetattr(slave, &t);
        ::cfmakeraw(&t);  // no echo, no line editing, no CR/LF translation: a byte pipe
        ::tcsetattr(slave, TCSANOW, &t);
        path = ::ttyname(slave);
    }
    ~pty_pair() { close(); }
    void close() {
        if (master >= 0) ::close(master);
        if (slave >= 0) ::close(slave);
        master = slave = -1;
    }
    pty_pair(const pty_pair &) = delete;
    pty_pair &operator=(const pty_pair &) = delete;
};

// ---- loopback sockets ------------------------------------------------------------------------------------------

struct fd_holder {
    int fd = -1;
    fd_holder() = default;
    explicit fd_holder(int f) : fd(f) {}
    fd_holder(fd_holder &&o) noexcept : fd(o.fd) { o.fd = -1; }
    fd_holder &operator=(fd_holder &&o) noexcept {
        reset();
        fd = o.fd;
        o.fd = -1;
        return *this;
    }
    ~fd_holder() { reset(); }
    void reset() {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
    explicit operator bool() const { return fd >= 0; }
};

inline sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

inline std::uint16_t local_port(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    return ntohs(a.sin_port);
}

// A TCP listening socket on 127.0.0.1:port (0 = ephemeral).
inline fd_holder tcp_listen(std::uint16_t port = 0) {
    fd_holder s(::socket(AF_INET, SOCK_STREAM, 0));
    const int one = 1;
    ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto a = loopback(port);
    if (::bind(s.fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || ::listen(s.fd, 16) != 0) return {};
    return s;
}

inline fd_holder tcp_accept(int listener, std::chrono::milliseconds within = patience) {
    if (!wait_readable(listener, within)) return {};
    return fd_holder(::accept(listener, nullptr, nullptr));
}

inline fd_holder tcp_connect(std::uint16_t port) {
    fd_holder s(::socket(AF_INET, SOCK_STREAM, 0));
    auto a = loopback(port);
    if (::connect(s.fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) return {};
    return s;
}

// A port with nothing listening on it (bound once, then released).
inline std::uint16_t unused_port() {
    fd_holder s = tcp_listen(0);
    return local_port(s.fd);
}

}  // namespace transport_test
