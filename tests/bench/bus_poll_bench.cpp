// bus_poll_bench: the RS-485 bus poll cycle for N devices (default 32) on one bus.
//
// One pty pair; transport::make_rs485_bus on the slave side with N attached links, each on its own strand of one
// io_context run by ONE thread. A responder thread on the master side plays every slave: it reads each 8-byte
// Modbus-RTU request (unit, 0x03, start register, register count, CRC-16) and answers at once with the Modbus-RTU
// FC03 reply, 5 + 2*registers bytes (unit, 0x03, byte count, the registers, CRC-16), the first register echoing the
// request's start register so a device can tell its reply from any other. Dead units never answer.
//
// Each device polls continuously: request -> reply (checked) -> end_request -> next request; a dead device's turn ends
// at its reply timeout. The bus serves requests in FIFO order (round-robin). The first turn of every device is a
// warm-up; the next --cycles are measured. Cycle k ends when the last device completes its k-th measured turn; cycle
// time = end of cycle k minus end of cycle k-1 (= N consecutive turns in steady round-robin).
//
// A pty has no baud rate: bytes cross it at memory speed. The measured cycle is the host's overhead (bus arbitration,
// strands, the inter-frame gap timer, syscalls, wake-ups) plus the pty and the responder, not wire time; the wire
// time the same frames take at --baud is printed next to it, computed. Two more figures separate the parts:
//   bus.pty_roundtrip.*          one request/reply through a pty and the same responder with no firelink code;
//   <scenario>.io_thread_cpu_*   CPU time the io thread (bus + devices) spent per turn (getrusage(RUSAGE_THREAD)).
//
// Exit status 1 when a count is wrong (a reply lost or misrouted, a live device timing out, bytes discarded) or when
// a device got more than one turn ahead of another (round-robin broken); speed is never checked.
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include <firelink/transport/link.hpp>

#include "bench_common.hpp"

namespace asio = boost::asio;
namespace ft = firelink::transport;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

std::uint16_t crc16_modbus(const std::uint8_t *p, std::size_t n) {
    std::uint16_t crc = 0xFFFF;
    for (std::size_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b) crc = (crc & 1) ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001) : crc >> 1;
    }
    return crc;
}

void append_crc(std::vector<std::uint8_t> &f) {
    const auto crc = crc16_modbus(f.data(), f.size());
    f.push_back(static_cast<std::uint8_t>(crc & 0xFF));
    f.push_back(static_cast<std::uint8_t>(crc >> 8));
}

bool crc_ok(const std::uint8_t *p, std::size_t n) {
    if (n < 3) return false;
    const auto crc = crc16_modbus(p, n - 2);
    return p[n - 2] == (crc & 0xFF) && p[n - 1] == (crc >> 8);
}

std::vector<std::uint8_t> make_request(int unit, std::uint16_t start, std::uint16_t count) {
    std::vector<std::uint8_t> f{static_cast<std::uint8_t>(unit), 0x03, static_cast<std::uint8_t>(start >> 8),
                                static_cast<std::uint8_t>(start & 0xFF), static_cast<std::uint8_t>(count >> 8),
                                static_cast<std::uint8_t>(count & 0xFF)};
    append_crc(f);
    return f;
}

std::vector<std::uint8_t> make_reply(int unit, std::uint16_t start, std::uint16_t count) {
    std::vector<std::uint8_t> f{static_cast<std::uint8_t>(unit), 0x03, static_cast<std::uint8_t>(2 * count)};
    for (std::uint16_t r = 0; r < count; ++r) {
        const std::uint16_t v = r == 0 ? start : static_cast<std::uint16_t>(0x1000 + r);
        f.push_back(static_cast<std::uint8_t>(v >> 8));
        f.push_back(static_cast<std::uint8_t>(v & 0xFF));
    }
    append_crc(f);
    return f;
}

struct pty_pair {
    int master = -1, slave = -1;
    std::string path;
    pty_pair() {
        if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) return;
        termios t{};
        ::tcgetattr(slave, &t);
        ::cfmakeraw(&t);
        ::tcsetattr(slave, TCSANOW, &t);
        path = ::ttyname(slave);
    }
    ~pty_pair() {
        if (master >= 0) ::close(master);
        if (slave >= 0) ::close(slave);
    }
    pty_pair(const pty_pair &) = delete;
    pty_pair &operator=(const pty_pair &) = delete;
};

// The slaves, on the master side of the pty.
struct responder {
    int fd;
    std::uint16_t registers;
    std::vector<bool> dead;  // by unit
    std::atomic<bool> stop{false};
    std::vector<std::uint64_t> requests;  // by unit
    std::uint64_t bad_frames = 0;
    std::thread thread;

    void run() {
        std::vector<std::uint8_t> req;
        while (!stop.load()) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 50) != 1) continue;
            std::uint8_t buf[64];
            const ssize_t n = ::read(fd, buf, std::min<std::size_t>(sizeof buf, 8 - req.size()));
            if (n <= 0) continue;
            req.insert(req.end(), buf, buf + n);
            if (req.size() < 8) continue;
            const int unit = req[0];
            const auto start = static_cast<std::uint16_t>(req[2] << 8 | req[3]);
            const auto count = static_cast<std::uint16_t>(req[4] << 8 | req[5]);
            if (!crc_ok(req.data(), 8) || req[1] != 0x03 || unit < 1 || unit >= static_cast<int>(dead.size()) ||
                count != registers) {
                ++bad_frames;
                req.clear();
                continue;
            }
            ++requests[unit];
            req.clear();
            if (dead[unit]) continue;
            const auto reply = make_reply(unit, start, count);
            std::size_t done = 0;
            while (done < reply.size()) {
                const ssize_t w = ::write(fd, reply.data() + done, reply.size() - done);
                if (w <= 0) break;
                done += static_cast<std::size_t>(w);
            }
        }
    }
};

// Completion log of turns, in completion order (all written on the one io thread).
struct turn_log {
    std::vector<std::int64_t> ns;
    std::vector<int> unit;
    std::atomic<std::size_t> next{0};
    void record(int u) {
        const auto i = next.fetch_add(1, std::memory_order_relaxed);
        if (i < ns.size()) {
            ns[i] = steady::now().time_since_epoch().count();
            unit[i] = u;
        }
    }
};

// A polling driver in miniature, on its own strand.
struct device {
    int unit = 0;
    bool dead = false;
    std::uint64_t rounds = 0;
    std::uint16_t registers = 0;
    std::chrono::milliseconds timeout{};
    ft::executor ex;
    turn_log *log = nullptr;
    std::atomic<int> *opened = nullptr;
    std::unique_ptr<ft::link> link;
    // strand-only
    std::vector<std::uint8_t> rx;
    std::vector<std::uint8_t> expected;
    std::uint64_t sent = 0;
    std::uint16_t seq = 0;
    // read at the end
    std::atomic<std::uint64_t> replies{0}, timeouts{0}, wrong{0}, refused{0}, link_errors{0};

    ft::link_events events() {
        ft::link_events e;
        e.on_state = [this](int state, fl_status) {
            if (state == FL_LINK_OPEN) opened->fetch_add(1);  // polling starts when every device is open
            else if (state == FL_LINK_REPLY_TIMEOUT) {
                ++timeouts;  // a turn too (a live device's timeout is an error, counted below)
                log->record(unit);
                send_next();
            } else if (state == FL_LINK_LOST || state == FL_LINK_FAILED) {
                ++link_errors;
            }
        };
        e.on_data = [this](const std::uint8_t *p, std::size_t n) {
            rx.insert(rx.end(), p, p + n);
            if (rx.size() > expected.size() || !std::equal(rx.begin(), rx.end(), expected.begin())) {
                ++wrong;
                rx.clear();
                return;
            }
            if (rx.size() < expected.size()) return;
            ++replies;
            log->record(unit);
            link->end_request();
            send_next();
        };
        return e;
    }

    void send_next() {
        if (sent >= rounds) return;
        ++sent;
        ++seq;
        rx.clear();
        expected = make_reply(unit, seq, registers);
        const auto frame = make_request(unit, seq, registers);
        if (link->request(frame.data(), frame.size(), timeout) != FL_OK) ++refused;
    }
};

template <class F>
auto on(const ft::executor &ex, F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(ex, [&task] { task(); });
    return result.get();
}

// The floor under every turn: one request/reply round trip through the same pty and responder with no firelink code
// (blocking write and poll/read on the slave fd, one thread). Returns the round-trip times in microseconds.
std::vector<double> pty_roundtrips(std::uint16_t registers, std::uint64_t iterations, bench::errors &error) {
    std::vector<double> us;
    pty_pair pty;
    if (pty.path.empty()) {
        error("baseline: openpty failed");
        return us;
    }
    responder peer;
    peer.fd = pty.master;
    peer.registers = registers;
    peer.dead.assign(2, false);
    peer.requests.assign(2, 0);
    peer.thread = std::thread([&] { peer.run(); });
    const std::size_t reply_bytes = 5 + 2u * registers;
    us.reserve(iterations);
    for (std::uint64_t i = 0; i < iterations; ++i) {
        const auto seq = static_cast<std::uint16_t>(i + 1);
        const auto req = make_request(1, seq, registers);
        const auto expected = make_reply(1, seq, registers);
        const auto t0 = steady::now();
        if (::write(pty.slave, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
            error("baseline: write failed");
            break;
        }
        std::vector<std::uint8_t> got;
        while (got.size() < reply_bytes) {
            pollfd p{pty.slave, POLLIN, 0};
            if (::poll(&p, 1, 5000) != 1) break;
            std::uint8_t buf[256];
            const ssize_t n = ::read(pty.slave, buf, sizeof buf);
            if (n <= 0) break;
            got.insert(got.end(), buf, buf + n);
        }
        const auto t1 = steady::now();
        if (got != expected) {
            error("baseline: round trip %" PRIu64 " got %zu bytes, not the expected reply", i, got.size());
            break;
        }
        us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    peer.stop = true;
    peer.thread.join();
    error.expect_eq("baseline: requests the responder saw", peer.requests[1], us.size());
    return us;
}

struct scenario {
    int devices;
    std::uint64_t cycles;
    std::chrono::milliseconds gap;
    int dead;
    std::chrono::milliseconds dead_timeout;
    std::chrono::milliseconds live_timeout;
    std::uint16_t registers;
    unsigned baud;
};

void run(const scenario &s, bench::errors &error) {
    const std::string p = "bus.gap" + std::to_string(s.gap.count()) + "ms.dead" + std::to_string(s.dead) + ".";
    const std::uint64_t rounds = s.cycles + 1;  // the first cycle is a warm-up
    const std::size_t request_bytes = 8, reply_bytes = 5 + 2u * s.registers;

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread io_thread([&] { io.run(); });  // ONE io thread: the bus strand and every device strand

    pty_pair pty;
    if (pty.path.empty()) {
        error("%sopenpty failed", p.c_str());
        work.reset();
        io_thread.join();
        return;
    }
    ft::serial_settings settings;
    settings.path = pty.path;
    settings.baud = s.baud;
    ft::bus_timing timing;
    timing.inter_frame_gap = s.gap;
    timing.default_timeout = s.live_timeout;
    auto bus = ft::make_rs485_bus(io, settings, timing, ft::backoff{20ms, 200ms});

    responder peer;
    peer.fd = pty.master;
    peer.registers = s.registers;
    peer.dead.assign(static_cast<std::size_t>(s.devices) + 1, false);
    peer.requests.assign(static_cast<std::size_t>(s.devices) + 1, 0);
    for (int u = s.devices - s.dead + 1; u <= s.devices; ++u) peer.dead[static_cast<std::size_t>(u)] = true;
    peer.thread = std::thread([&] { peer.run(); });

    turn_log log;
    log.ns.assign(static_cast<std::size_t>(s.devices) * rounds, 0);
    log.unit.assign(log.ns.size(), 0);

    std::atomic<int> opened{0};
    std::vector<std::unique_ptr<device>> devs;
    for (int u = 1; u <= s.devices; ++u) {
        auto d = std::make_unique<device>();
        d->unit = u;
        d->dead = peer.dead[static_cast<std::size_t>(u)];
        d->rounds = rounds;
        d->registers = s.registers;
        d->timeout = d->dead ? s.dead_timeout : s.live_timeout;
        d->ex = asio::make_strand(io);
        d->log = &log;
        d->opened = &opened;
        d->link = bus->attach(d->ex, d->events());
        d->link->set_unit(u);
        devs.push_back(std::move(d));
    }
    for (auto &d : devs)
        if (on(d->ex, [&] { return d->link->open(); }) != FL_OK) error("%sunit %d: open refused", p.c_str(), d->unit);

    // Start polling once every device heard OPEN, in unit order: the bus queue then holds 1..N and round-robin keeps
    // that order, so each window of N turns is one cycle.
    const auto open_until = steady::now() + 10s;
    while (opened.load() < s.devices && steady::now() < open_until) std::this_thread::sleep_for(1ms);
    if (opened.load() < s.devices) error("%sonly %d of %d devices heard OPEN", p.c_str(), opened.load(), s.devices);
    // CPU time of the io thread (bus + every device), user and kernel apart, over all turns (getrusage(RUSAGE_THREAD)
    // run on the io thread itself): unlike wall time it does not include waiting for the pty, the responder or a
    // wake-up from idle.
    auto io_cpu = [&] {
        return on(io.get_executor(), [] {
            rusage r{};
            ::getrusage(RUSAGE_THREAD, &r);
            return std::pair<double, double>(static_cast<double>(r.ru_utime.tv_sec) * 1e6 + static_cast<double>(r.ru_utime.tv_usec),
                                             static_cast<double>(r.ru_stime.tv_sec) * 1e6 + static_cast<double>(r.ru_stime.tv_usec));
        });
    };
    const auto io_cpu_start = io_cpu();
    {
        // Hold the one io thread until every first request is queued, so they reach the bus in unit order.
        std::promise<void> gate;
        auto opened_gate = gate.get_future().share();
        asio::post(io, [opened_gate] { opened_gate.wait(); });
        for (auto &d : devs) asio::post(d->ex, [dev = d.get()] { dev->send_next(); });
        gate.set_value();
    }

    // Generous: ten times the slowest plausible run, plus 10 s.
    const auto budget = 10 * rounds * (s.devices * (s.gap + 5ms) + s.dead * s.dead_timeout) + 10s;
    const auto until = steady::now() + budget;
    const std::size_t total_turns = log.ns.size();
    while (log.next.load() < total_turns && steady::now() < until) std::this_thread::sleep_for(2ms);
    const std::size_t turns = std::min(log.next.load(), total_turns);
    const auto io_cpu_end = io_cpu();
    if (turns < total_turns)
        error("%sonly %zu of %zu turns completed within %lld s", p.c_str(), turns, total_turns,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(budget).count()));

    peer.stop = true;
    peer.thread.join();
    for (auto &d : devs) on(d->ex, [&] {
        d->link.reset();
        return 0;
    });
    const auto c = bus->counters();

    // ---- counts, never speed --------------------------------------------------------------------------------
    const int live = s.devices - s.dead;
    for (auto &d : devs) {
        if (d->dead) {
            error.expect_eq((p + "dead unit " + std::to_string(d->unit) + " timeouts").c_str(), d->timeouts, rounds);
            error.expect_eq((p + "dead unit " + std::to_string(d->unit) + " replies").c_str(), d->replies, 0);
        } else {
            error.expect_eq((p + "unit " + std::to_string(d->unit) + " replies").c_str(), d->replies, rounds);
            error.expect_eq((p + "unit " + std::to_string(d->unit) + " reply timeouts").c_str(), d->timeouts, 0);
        }
        error.expect_eq((p + "unit " + std::to_string(d->unit) + " wrong bytes").c_str(), d->wrong, 0);
        error.expect_eq((p + "unit " + std::to_string(d->unit) + " refused requests").c_str(), d->refused, 0);
        error.expect_eq((p + "unit " + std::to_string(d->unit) + " link errors").c_str(), d->link_errors, 0);
        error.expect_eq((p + "requests seen for unit " + std::to_string(d->unit)).c_str(),
                        peer.requests[static_cast<std::size_t>(d->unit)], rounds);
    }
    error.expect_eq((p + "malformed requests on the wire").c_str(), peer.bad_frames, 0);
    error.expect_eq((p + "bus bytes out").c_str(), c.bytes_out, request_bytes * s.devices * rounds);
    error.expect_eq((p + "bus bytes in").c_str(), c.bytes_in, reply_bytes * live * rounds);
    error.expect_eq((p + "bus reply timeouts").c_str(), c.reply_timeouts, static_cast<std::uint64_t>(s.dead) * rounds);
    error.expect_eq((p + "bus bytes discarded").c_str(), c.bytes_discarded, 0);
    error.expect_eq((p + "bus errors").c_str(), c.errors, 0);
    // Round-robin: once every device has had its first turn, no device is ever more than one turn ahead of another.
    // Cycle k (k >= 1) ends when the last device completes its k-th turn after the warm-up one:
    // cycle_k = E_k - E_(k-1), with E_k = max over devices of that device's (k+1)-th completion.
    const auto n = static_cast<std::size_t>(s.devices);
    std::uint64_t unfair = 0;
    std::vector<std::vector<std::int64_t>> done_at(n + 1);
    {
        std::vector<std::uint64_t> count(n + 1, 0);
        std::size_t all_started = 0;  // devices with at least one completed turn
        for (std::size_t i = 0; i < turns; ++i) {
            const auto u = static_cast<std::size_t>(log.unit[i]);
            done_at[u].push_back(log.ns[i]);
            if (count[u]++ == 0) ++all_started;
            if (all_started < n) continue;
            const auto [lo, hi] = std::minmax_element(count.begin() + 1, count.end());
            if (*hi - *lo > 1) ++unfair;
        }
    }
    std::vector<double> cycles_ms;
    std::int64_t previous_end = 0;
    for (std::uint64_t k = 0; k < rounds; ++k) {
        std::int64_t end = 0;
        bool complete = true;
        for (std::size_t u = 1; u <= n; ++u) {
            if (done_at[u].size() <= k) complete = false;
            else end = std::max(end, done_at[u][k]);
        }
        if (!complete) break;
        if (k > 0) cycles_ms.push_back(static_cast<double>(end - previous_end) / 1e6);
        previous_end = end;
    }
    double sum = 0;
    for (double v : cycles_ms) sum += v;
    const double mean = cycles_ms.empty() ? 0 : sum / static_cast<double>(cycles_ms.size());
    const double expected_idle_ms = static_cast<double>(s.devices) * static_cast<double>(s.gap.count()) +
                                    static_cast<double>(s.dead) * static_cast<double>(s.dead_timeout.count());
    const double char_ms = 10.0 * 1000.0 / s.baud;  // 8N1: 10 bits a character
    const double wire_ms = static_cast<double>(live) * static_cast<double>(request_bytes + reply_bytes) * char_ms +
                           static_cast<double>(s.dead) * static_cast<double>(request_bytes) * char_ms;

    bench::figure(p + "devices", s.devices, "devices");
    bench::figure(p + "dead_devices", s.dead, "devices");
    bench::figure(p + "inter_frame_gap", static_cast<double>(s.gap.count()), "ms");
    bench::figure(p + "dead_reply_timeout", static_cast<double>(s.dead_timeout.count()), "ms");
    bench::figure(p + "request_bytes", static_cast<double>(request_bytes), "bytes");
    bench::figure(p + "reply_bytes", static_cast<double>(reply_bytes), "bytes");
    bench::figure(p + "cycles", static_cast<double>(cycles_ms.size()), "cycles");
    bench::figure(p + "cycle_mean", mean, "ms");
    bench::figure(p + "cycle_p50", bench::percentile(cycles_ms, 50), "ms");
    bench::figure(p + "cycle_p99", bench::percentile(cycles_ms, 99), "ms");
    bench::figure(p + "cycle_max", bench::percentile(cycles_ms, 100), "ms");
    bench::figure(p + "requests_per_s", mean > 0 ? static_cast<double>(s.devices) * 1000.0 / mean : 0, "requests/s");
    bench::figure(p + "host_overhead_per_turn", mean > 0 ? (mean - expected_idle_ms) * 1000.0 / s.devices : 0, "us");
    if (turns > 0) {
        // The total is exact; the kernel splits it into user and kernel time by sampling, so the split is indicative.
        bench::figure(p + "io_thread_cpu_per_turn",
                      (io_cpu_end.first + io_cpu_end.second - io_cpu_start.first - io_cpu_start.second) /
                          static_cast<double>(turns),
                      "us");
        bench::figure(p + "io_thread_user_cpu_per_turn",
                      (io_cpu_end.first - io_cpu_start.first) / static_cast<double>(turns), "us");
        bench::figure(p + "io_thread_kernel_cpu_per_turn",
                      (io_cpu_end.second - io_cpu_start.second) / static_cast<double>(turns), "us");
    }
    bench::figure(p + "wire_cycle_at_" + std::to_string(s.baud) + "_baud", wire_ms + expected_idle_ms, "ms");
    bench::figure(p + "unfair_turns", static_cast<double>(unfair), "count");
    std::fflush(stdout);
    if (unfair) error("%s%" PRIu64 " turns left one device more than one turn ahead of another", p.c_str(), unfair);

    bus.reset();
    work.reset();
    io.stop();
    io_thread.join();
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"firelink RS-485 bus poll benchmark: cycle time for N devices on one bus (pty; host overhead)"};
    int devices = 32;
    std::uint64_t cycles = 50;
    std::vector<int> gaps{0, 5};
    std::vector<int> deads{0, 1};
    int dead_timeout_ms = 50, live_timeout_ms = 1000;
    int registers = 10;
    unsigned baud = 9600;
    int cpu = -1;
    std::uint64_t baseline = 2000;
    app.add_option("-d,--devices", devices, "devices on the bus")->check(CLI::Range(1, 247));
    app.add_option("-c,--cycles", cycles, "measured poll cycles (after one warm-up cycle)")->check(CLI::PositiveNumber);
    app.add_option("--gaps", gaps, "inter-frame gaps to run, ms")->delimiter(',')->check(CLI::Range(0, 1000));
    app.add_option("--dead", deads, "numbers of dead devices to run")->delimiter(',')->check(CLI::Range(0, 247));
    app.add_option("--dead-timeout-ms", dead_timeout_ms, "reply timeout of a dead device's requests")
        ->check(CLI::Range(1, 60000));
    app.add_option("--live-timeout-ms", live_timeout_ms, "reply timeout of a live device's requests (never reached)")
        ->check(CLI::Range(1, 60000));
    app.add_option("--registers", registers, "registers read per request (reply = 5 + 2*registers bytes)")
        ->check(CLI::Range(1, 125));
    app.add_option("--baud", baud, "baud rate for the computed wire time (8N1)")->check(CLI::PositiveNumber);
    app.add_option("--cpu", cpu, "CPU to pin the process to (-1: do not pin)");
    app.add_option("--baseline", baseline, "pty round trips without firelink, measured first (0: skip)");
    CLI11_PARSE(app, argc, argv);

    bench::errors error;
    bench::print_header("bus_poll_bench");
    if (cpu >= 0) {
        if (bench::pin_to_cpu(cpu)) bench::note("pinned: the whole process runs on CPU %d (sched_setaffinity)", cpu);
        else bench::note("NOT pinned: sched_setaffinity(CPU %d) failed", cpu);
    } else {
        bench::note("not pinned: the io thread (bus and every device) and the responder thread may use any CPU");
    }
    bench::note("a pty has no baud rate: cycle figures are host overhead (+ the configured gap and dead-device "
                "timeout), not wire time; wire_cycle_at_<baud> is the computed time on a real line");
    {
        const double char_ms = 10.0 * 1000.0 / baud;
        bench::note("at %u baud 8N1: request 8 bytes = %.2f ms, reply %d bytes = %.2f ms, Modbus t3.5 = %.2f ms", baud,
                    8 * char_ms, 5 + 2 * registers, (5 + 2 * registers) * char_ms, 3.5 * char_ms);
    }
    spdlog::set_level(spdlog::level::warn);

    if (baseline > 0) {
        auto us = pty_roundtrips(static_cast<std::uint16_t>(registers), baseline, error);
        double sum = 0;
        for (double v : us) sum += v;
        bench::figure("bus.pty_roundtrip.samples", static_cast<double>(us.size()), "roundtrips");
        bench::figure("bus.pty_roundtrip.mean", us.empty() ? 0 : sum / static_cast<double>(us.size()), "us");
        bench::figure("bus.pty_roundtrip.p50", bench::percentile(us, 50), "us");
        bench::figure("bus.pty_roundtrip.p99", bench::percentile(us, 99), "us");
        std::fflush(stdout);
    }

    for (int gap : gaps)
        for (int dead : deads) {
            if (dead > devices) {
                error("--dead %d exceeds --devices %d", dead, devices);
                continue;
            }
            run(scenario{devices, cycles, std::chrono::milliseconds(gap), dead,
                         std::chrono::milliseconds(dead_timeout_ms), std::chrono::milliseconds(live_timeout_ms),
                         static_cast<std::uint16_t>(registers), baud},
                error);
        }
    bench::figure("bus.errors", error.count, "count");
    return error.count ? 1 : 0;
}
