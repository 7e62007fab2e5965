// gb26875_bench: many UITDs on one firelink-host, each its own fire_panel device bound by identity on one listener,
// each sending a heartbeat every --heartbeat-s; while that load runs, fire alarms on random connections, timed from
// the frame's send to its confirm. The fire_panel driver confirms a frame only after the host took its events (emit
// returned FL_OK), so the confirm time bounds "frame sent -> event accepted" from above. Also the host's RSS.
//
// The host is the real `firelink-host run` child process with a generated site file; the UITDs are non-blocking
// sockets on one epoll loop here. Exits 1 on a lost confirm or a missing event (never on speed).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <CLI/CLI.hpp>
#include <firelink/proto/gb26875.hpp>

#include "bench_common.hpp"

namespace {

namespace gb = firelink::proto::gb26875;
using clk = std::chrono::steady_clock;

struct uitd {
    int fd = -1;
    std::uint64_t address = 0;
    std::uint16_t serial = 1;
    gb::stream_decoder dec;
    std::unordered_map<std::uint16_t, clk::time_point> alarm_sent;  // serial -> when
    std::unordered_map<std::uint16_t, bool> waiting;                // serial -> is an alarm
    clk::time_point next_heartbeat;
    bool first_confirmed = false;
};

long rss_kb(pid_t pid, const char *field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
    return -1;
}

int free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr *>(&a), &len);
    ::close(s);
    return ntohs(a.sin_port);
}

std::vector<std::uint8_t> frame_for(uitd &u, std::vector<std::uint8_t> data) {
    gb::frame f;
    f.head.serial = u.serial++;
    if (u.serial == 0) u.serial = 1;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    f.head.time = gb::timestamp::from_utc_seconds(now, 8 * 3600);
    f.head.source = gb::make_address(u.address);
    f.head.destination = gb::make_address(0x015B38);
    f.head.command = 2;
    f.data = std::move(data);
    return gb::encode(f);
}

bool send_all(int fd, const std::vector<std::uint8_t> &b) {
    std::size_t at = 0;
    while (at < b.size()) {
        const ssize_t n = ::send(fd, b.data() + at, b.size() - at, MSG_NOSIGNAL);
        if (n <= 0) return false;  // loopback with tiny frames: the send buffer never fills in practice
        at += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"GB/T 26875.3 UITD connections and fire-alarm latency through firelink-host"};
    std::string host_bin = FIRELINK_HOST_PATH, plugins = FIRELINK_PLUGIN_DIR;
    unsigned connections = 10000, alarms = 200, heartbeat_s = 30, settle_s = 0;
    unsigned alarm_interval_ms = 50, ramp_per_s = 2000;
    app.add_option("--host", host_bin, "firelink-host");
    app.add_option("--plugins", plugins, "folder with fire_panel.so");
    app.add_option("--connections", connections, "UITDs (devices), default 10000");
    app.add_option("--heartbeat-s", heartbeat_s, "heartbeat period of each UITD, default 30");
    app.add_option("--alarms", alarms, "fire alarms to time under load, default 200");
    app.add_option("--alarm-interval-ms", alarm_interval_ms, "gap between timed alarms, default 50");
    app.add_option("--settle-s", settle_s, "extra time at full load before the alarms, default 0");
    app.add_option("--ramp-per-s", ramp_per_s, "new connections per second while ramping up, default 2000");
    CLI11_PARSE(app, argc, argv);

    bench::print_header("gb26875_bench");
    bench::errors err;
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);  // the host child inherits it
    if (nofile.rlim_cur < connections + 64) {
        std::fprintf(stderr, "error: RLIMIT_NOFILE %llu is too small for %u connections\n",
                     static_cast<unsigned long long>(nofile.rlim_cur), connections);
        return 1;
    }

    // The site: one listener, one fire_panel device per UITD, bound by its address.
    const auto dir = std::filesystem::temp_directory_path() / ("gb26875-bench-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const int port = free_port(), admin = free_port();
    {
        std::ofstream site(dir / "site.toml");
        site << "[gateway]\nid = \"bench\"\n[plugins]\ndirs = [\"" << plugins << "\"]\n[admin]\nlisten = \"127.0.0.1:"
             << admin << "\"\n[sink]\nkind = \"jsonl\"\npath = \"events.jsonl\"\n[[listener]]\nid = \"centre\"\nlisten = \"127.0.0.1:"
             << port << "\"\n";
        for (unsigned i = 0; i < connections; ++i)
            site << "[[device]]\nid = \"p" << i << "\"\ndriver = \"gb26875-uitd\"\nclass = \"fire_panel\"\nwire = { listener = \"centre\", identity = \""
                 << gb::address_text(gb::make_address(0x100000 + i)) << "\" }\n";
    }
    const auto t_spawn = clk::now();
    const pid_t host = ::fork();
    if (host == 0) {
        const std::string cfg = (dir / "site.toml").string(), log = (dir / "host.log").string();
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        ::dup2(fd, 1), ::dup2(fd, 2);
        ::execl(host_bin.c_str(), host_bin.c_str(), "run", "--config", cfg.c_str(), nullptr);
        _exit(127);
    }
    auto cleanup = [&] {
        ::kill(host, SIGTERM);
        int st = 0;
        ::waitpid(host, &st, 0);
        std::error_code ec;
        if (err.count == 0) std::filesystem::remove_all(dir, ec);
        else std::fprintf(stderr, "the host's log and site are kept in %s\n", dir.c_str());
    };

    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_port = htons(static_cast<std::uint16_t>(port));
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Wait for the listener (it opens once its first device started).
    for (;;) {
        int s = ::socket(AF_INET, SOCK_STREAM, 0);
        const bool up = ::connect(s, reinterpret_cast<sockaddr *>(&target), sizeof target) == 0;
        ::close(s);
        if (up) break;
        int st = 0;
        if (::waitpid(host, &st, WNOHANG) == host) {
            std::fprintf(stderr, "error: firelink-host exited; see its log\n");
            std::system(("cat " + (dir / "host.log").string()).c_str());
            return 1;
        }
        if (clk::now() - t_spawn > std::chrono::minutes(5)) {
            err("the listener did not open within 5 min");
            cleanup();
            return 1;
        }
        ::usleep(20000);
    }
    // The listener opens with the first device; the others start after it. Ready when the last device confirms.
    for (bool ready = false; !ready;) {
        uitd probe;
        probe.address = 0x100000 + connections - 1;
        probe.fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (::connect(probe.fd, reinterpret_cast<sockaddr *>(&target), sizeof target) == 0 &&
            send_all(probe.fd, frame_for(probe, {}))) {
            timeval tv{1, 0};
            ::setsockopt(probe.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            std::uint8_t buf[256];
            const ssize_t n = ::recv(probe.fd, buf, sizeof buf, 0);
            if (n > 0) {
                probe.dec.feed(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)));
                auto it = probe.dec.next();
                ready = it && it->ok() && it->value.head.command == 3;
            }
        }
        ::close(probe.fd);
        if (!ready) {
            if (clk::now() - t_spawn > std::chrono::minutes(5)) {
                err("the last device did not come up within 5 min");
                cleanup();
                return 1;
            }
            ::usleep(200000);
        }
    }
    const double startup_s = std::chrono::duration<double>(clk::now() - t_spawn).count();
    const long rss_idle = rss_kb(host, "VmRSS:");

    const int ep = ::epoll_create1(0);
    std::vector<uitd> uitds(connections);
    std::mt19937 rng(42);
    const auto period = std::chrono::seconds(heartbeat_s);
    unsigned opened = 0, first_confirms = 0, alarms_sent = 0, alarms_confirmed = 0, heartbeats = 0, lost = 0;
    std::vector<double> latency_ms;
    const auto t_ramp = clk::now();
    clk::time_point all_up{}, next_alarm{};
    bool loaded = false;

    auto handle = [&](uitd &u) {
        std::uint8_t buf[4096];
        for (;;) {
            const ssize_t n = ::recv(u.fd, buf, sizeof buf, 0);
            if (n == 0) {
                ++lost;
                ::epoll_ctl(ep, EPOLL_CTL_DEL, u.fd, nullptr);
                ::close(u.fd);
                u.fd = -1;
                return;
            }
            if (n < 0) return;
            u.dec.feed(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)));
            while (auto it = u.dec.next()) {
                if (!it->ok() || it->value.head.command != 3) continue;
                const auto s = it->value.head.serial;
                if (!u.first_confirmed) u.first_confirmed = true, ++first_confirms;
                if (auto a = u.alarm_sent.find(s); a != u.alarm_sent.end()) {
                    latency_ms.push_back(std::chrono::duration<double, std::milli>(clk::now() - a->second).count());
                    ++alarms_confirmed;
                    u.alarm_sent.erase(a);
                }
                u.waiting.erase(s);
            }
        }
    };

    const auto deadline_all = t_ramp + std::chrono::seconds(60 + connections / std::max(1u, ramp_per_s) * 3);
    clk::time_point alarms_done{};
    for (;;) {
        const auto now = clk::now();
        // Ramp up: open connections at ramp_per_s, each sends its first heartbeat at once (it identifies the UITD).
        const auto due = std::min<unsigned>(connections, static_cast<unsigned>(
            std::chrono::duration<double>(now - t_ramp).count() * ramp_per_s) + 1);
        while (opened < due) {
            auto &u = uitds[opened];
            u.address = 0x100000 + opened;
            u.fd = ::socket(AF_INET, SOCK_STREAM, 0);
            if (u.fd < 0 || ::connect(u.fd, reinterpret_cast<sockaddr *>(&target), sizeof target) != 0) {
                err("connection %u failed: %s", opened, std::strerror(errno));
                cleanup();
                return 1;
            }
            int one = 1;
            ::setsockopt(u.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            ::fcntl(u.fd, F_SETFL, O_NONBLOCK);
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u32 = opened;
            ::epoll_ctl(ep, EPOLL_CTL_ADD, u.fd, &ev);
            const auto b = frame_for(u, {});
            u.waiting[static_cast<std::uint16_t>(u.serial - 1)] = false;
            send_all(u.fd, b);
            ++heartbeats;
            // Spread later heartbeats over the period.
            u.next_heartbeat = now + std::chrono::milliseconds(rng() % (heartbeat_s * 1000 + 1));
            ++opened;
        }
        // Heartbeats.
        for (auto &u : uitds) {
            if (u.fd < 0 || u.next_heartbeat > now || !u.first_confirmed) continue;
            send_all(u.fd, frame_for(u, {}));
            ++heartbeats;
            u.next_heartbeat += period;
        }
        if (!loaded && first_confirms == connections) {
            loaded = true;
            all_up = now;
            next_alarm = now + std::chrono::seconds(settle_s);
            bench::note("all %u UITDs identified and confirmed after %.1f s", connections,
                        std::chrono::duration<double>(now - t_ramp).count());
        }
        if (!loaded && now > deadline_all) {
            err("only %u of %u UITDs got their first confirm in time", first_confirms, connections);
            break;
        }
        // Timed fire alarms, one at a time on random connections, while the heartbeats go on.
        if (loaded && alarms_sent < alarms && now >= next_alarm) {
            auto &u = uitds[rng() % connections];
            if (u.fd >= 0) {
                const std::uint32_t comp = 0x10001 + alarms_sent;
                const auto b = frame_for(u, gb::make_app_data(2, gb::component_status{{1, 1, 42, comp}, 0x0002,
                                                                                      gb::make_description("bench"), std::nullopt}));
                const auto s = static_cast<std::uint16_t>(u.serial - 1);
                u.alarm_sent[s] = clk::now();
                u.waiting[s] = true;
                send_all(u.fd, b);
                ++alarms_sent;
            }
            next_alarm = now + std::chrono::milliseconds(alarm_interval_ms);
        }
        if (loaded && alarms_sent == alarms && alarms_confirmed == alarms) {
            if (alarms_done == clk::time_point{}) alarms_done = now;
            break;
        }
        if (loaded && now - all_up > std::chrono::seconds(settle_s) + std::chrono::milliseconds(alarm_interval_ms) * alarms + std::chrono::seconds(60)) {
            err("only %u of %u alarms were confirmed", alarms_confirmed, alarms_sent);
            break;
        }
        epoll_event evs[256];
        const int n = ::epoll_wait(ep, evs, 256, 5);
        for (int i = 0; i < n; ++i) handle(uitds[evs[i].data.u32]);
    }

    const long rss = rss_kb(host, "VmRSS:"), hwm = rss_kb(host, "VmHWM:");
    // Every timed alarm must be in the record.
    ::usleep(200000);
    unsigned alarm_records = 0;
    {
        std::ifstream in(dir / "events.jsonl");
        std::string line;
        while (std::getline(in, line))
            if (line.find("\"kind\":\"alarm\",\"code\":\"fire_alarm\"") != std::string::npos) ++alarm_records;
    }
    err.expect_eq("fire_alarm records in the sink", alarm_records, alarms_confirmed);
    if (lost) err("%u connections were closed by the host", lost);

    bench::figure("uitd_connections", connections, "connections");
    bench::figure("heartbeat_period", heartbeat_s, "s");
    bench::figure("host_startup", startup_s, "s");
    bench::figure("heartbeats_sent", heartbeats, "frames");
    bench::figure("host_rss_idle", rss_idle / 1024.0, "MiB");
    bench::figure("host_rss_loaded", rss / 1024.0, "MiB");
    bench::figure("host_rss_peak", hwm / 1024.0, "MiB");
    bench::figure("alarms_timed", alarms_confirmed, "alarms");
    if (!latency_ms.empty()) {
        bench::figure("alarm_to_confirm_p50", bench::percentile(latency_ms, 50), "ms");
        bench::figure("alarm_to_confirm_p99", bench::percentile(latency_ms, 99), "ms");
        bench::figure("alarm_to_confirm_max", bench::percentile(latency_ms, 100), "ms");
    }
    for (auto &u : uitds)
        if (u.fd >= 0) ::close(u.fd);
    cleanup();
    return err.count ? 1 : 0;
}
