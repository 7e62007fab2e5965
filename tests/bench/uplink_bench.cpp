// uplink_bench: the durable uplink (docs/performance.md, "Durable uplink").
//
//   fsync      this disk's fdatasync latency: 4 KiB written, then fdatasync, on a file in the queue's directory;
//              appending (the file grows: ext4 also commits its journal) and overwriting in place.
//   ingest     events/s into a durable_queue (WAL, synchronous=FULL, group commit) from --producers threads, each
//              record made by encode_record from a core::accepted_event (~250 B telemetry, as the uplink's sink
//              makes it), timed from the first push to the commit of the last (the queue's on_commit listener).
//              Every record is read back and checked: seq 1..N without a gap, each (device, device_seq) once.
//   backlog    the same ingest into a second queue, --backlog records: the backlog for the next two phases.
//   restart    a fresh child process (this program, re-executed with --phase restart) opens that queue (the
//              constructor, quick_check included) and reads the whole backlog through a reader, 500 records a page;
//              it reports the open time and its peak RSS (VmHWM). The queue's pages are dropped from the page
//              cache first (posix_fadvise DONTNEED), so the open reads the disk.
//   alarms     firelink-receiver started as a child process, the uplink started against it with the backlog
//              queued; while the telemetry lane drains, --alarms alarms are pushed one at a time, --alarm-min-ms to
//              --alarm-max-ms apart, each timed from push() to the uplink's on_ack for the alarm lane covering its
//              seq. Also: how long the backlog took to drain. The receiver's store is counted at the end.
//
// Exit status 1 when an event was lost, duplicated, rejected or counted wrong; speed is never checked.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <SQLiteCpp/SQLiteCpp.h>
#include <msgpack.hpp>
#include <spdlog/spdlog.h>

#include <firelink/core/device_runtime.hpp>
#include <firelink/payload.hpp>
#include <firelink/uplink/durable_queue.hpp>
#include <firelink/uplink/record.hpp>
#include <firelink/uplink/uplink.hpp>

#include "bench_common.hpp"

#ifndef FIRELINK_RECEIVER_PATH
#error "FIRELINK_RECEIVER_PATH must name the built firelink-receiver"
#endif

extern char **environ;

namespace fs = std::filesystem;
namespace up = firelink::uplink;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

const char *const gateway = "gw-bench";

double ms_between(steady::time_point a, steady::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

// ---- records ----------------------------------------------------------------------------------------------------

const std::shared_ptr<const std::map<std::string, std::string>> &bench_site() {
    static const auto site = std::make_shared<const std::map<std::string, std::string>>(
        std::map<std::string, std::string>{{"building", "A"}, {"floor", "3"}});
    return site;
}

// A telemetry event of an arc-fault breaker as the runtime hands it to the sink; the caller sets sequence and times.
firelink::core::accepted_event telemetry_event(int producer) {
    firelink::core::accepted_event ev;
    ev.gateway_id = gateway;
    ev.plugin_id = "arc_fault_breaker";
    ev.device_id = "afb-a3-" + std::to_string(100 + producer);
    ev.device_class = "arc_fault_breaker";
    ev.site = bench_site();
    ev.kind = "telemetry";
    ev.code = "reading";
    ev.payload = firelink::event{firelink::event_kind::telemetry, "reading"}
                     .value("residual_current", 12, "mA")
                     .pack();
    return ev;
}

std::vector<std::uint8_t> alarm_body(std::uint64_t n, std::uint32_t &pairs) {
    firelink::core::accepted_event ev;
    ev.gateway_id = gateway;
    ev.plugin_id = "arc_fault_breaker";
    ev.device_id = "afb-a3-alarm";
    ev.device_class = "arc_fault_breaker";
    ev.site = bench_site();
    ev.kind = "alarm";
    ev.code = "arc_fault";
    ev.sequence = n;
    ev.received_wall = std::chrono::system_clock::now();
    ev.received_monotonic = steady::now();
    ev.payload = firelink::event{firelink::event_kind::alarm, "arc_fault"}
                     .id("arc-" + std::to_string(n))
                     .value("residual_current", 312, "mA")
                     .message("arc fault on line 2")
                     .pack();
    return up::encode_record(ev, pairs);
}

// (device, device_seq) of a queued record.
std::pair<std::string, std::uint64_t> identity_of(const up::queued_record &r) {
    const auto full = up::full_record(r.seq, r.pairs, r.body);
    auto h = msgpack::unpack(reinterpret_cast<const char *>(full.data()), full.size());
    const auto &m = h.get();
    std::pair<std::string, std::uint64_t> out;
    for (std::uint32_t i = 0; i < m.via.map.size; ++i) {
        const auto &kv = m.via.map.ptr[i];
        const auto key = kv.key.as<std::string>();
        if (key == "device") out.first = kv.val.as<std::string>();
        else if (key == "device_seq") out.second = kv.val.as<std::uint64_t>();
    }
    return out;
}

// ---- the machine ------------------------------------------------------------------------------------------------

// "<device> <fstype> on <mount point>" of the file system holding `p` (/proc/self/mounts, longest prefix).
std::string mount_of(const fs::path &p) {
    std::ifstream in("/proc/self/mounts");
    std::string dev, mnt, type, rest, best = "unknown";
    std::size_t best_len = 0;
    const auto path = fs::weakly_canonical(p).string();
    while (in >> dev >> mnt >> type && std::getline(in, rest)) {
        const bool prefix = path == mnt || (path.rfind(mnt, 0) == 0 && (mnt == "/" || path[mnt.size()] == '/'));
        if (prefix && mnt.size() >= best_len) {
            best_len = mnt.size();
            best = dev + " " + type + " on " + mnt;
        }
    }
    return best;
}

bool is_tmpfs(const fs::path &p) {
    struct statfs s {};
    return ::statfs(p.c_str(), &s) == 0 && static_cast<unsigned long>(s.f_type) == 0x01021994UL;
}

// A field of /proc/self/status in kB (VmHWM, VmRSS).
long status_kb(const char *field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string want = std::string(field) + ":";
    while (std::getline(in, line))
        if (line.rfind(want, 0) == 0) return std::stol(line.substr(want.size()));
    return -1;
}

// ---- fsync ------------------------------------------------------------------------------------------------------

void run_fsync(const fs::path &dir, int iterations, bench::errors &error) {
    const auto file = dir / "fsync.probe";
    std::vector<char> block(4096, 'f');
    for (const bool append : {true, false}) {
        const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            error("cannot create %s: %s", file.c_str(), std::strerror(errno));
            return;
        }
        if (!append) {  // overwrite: the blocks exist and are on disk before the measured writes
            for (int i = 0; i < 64; ++i)
                if (::pwrite(fd, block.data(), block.size(), static_cast<off_t>(i) * 4096) != 4096) break;
            ::fsync(fd);
        }
        std::vector<double> us;
        us.reserve(static_cast<std::size_t>(iterations));
        for (int i = 0; i < iterations; ++i) {
            block[0] = static_cast<char>(i);
            const off_t at = append ? static_cast<off_t>(i) * 4096 : static_cast<off_t>(i % 64) * 4096;
            const auto t0 = steady::now();
            const bool ok = ::pwrite(fd, block.data(), block.size(), at) == 4096 && ::fdatasync(fd) == 0;
            const auto t1 = steady::now();
            if (!ok) {
                error("write/fdatasync on %s failed: %s", file.c_str(), std::strerror(errno));
                break;
            }
            us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        }
        ::close(fd);
        const std::string p = append ? "fsync.append_4k." : "fsync.overwrite_4k.";
        bench::figure(p + "iterations", static_cast<double>(us.size()), "count");
        bench::figure(p + "p50", bench::percentile(us, 50) / 1000, "ms");
        bench::figure(p + "p99", bench::percentile(us, 99) / 1000, "ms");
        bench::figure(p + "max", bench::percentile(us, 100) / 1000, "ms");
    }
    std::error_code ec;
    fs::remove(file, ec);
    std::fflush(stdout);
}

// ---- ingest -----------------------------------------------------------------------------------------------------

struct ingest_result {
    double seconds = 0;
    std::uint64_t transactions = 0;
};

// Pushes `events` telemetry records from `producers` threads into a new queue at `path` and waits for the commit of
// the last; prints `<name>.*`. With `verify`, reads every record back and checks it.
ingest_result run_ingest(const std::string &name, const fs::path &path, std::uint64_t events, int producers,
                         bool verify, bench::errors &error) {
    ingest_result res;
    up::queue_options o;
    o.path = path;
    o.gateway_id = gateway;
    up::durable_queue q(o);
    if (!q.opened().created) error("%s: %s existed already", name.c_str(), path.c_str());

    std::mutex m;
    std::condition_variable cv;
    bool done = events == 0;
    steady::time_point t_end{};
    double commit_ms_sum = 0;  // writer thread only
    std::uint64_t commits = 0;
    q.on_commit([&](const std::array<std::uint64_t, up::lane_count> &last) {
        // Runs on the writer right after each commit: last_commit_ms is this transaction's.
        const double ms = q.stats().last_commit_ms;
        std::lock_guard lock(m);
        commit_ms_sum += ms;
        ++commits;
        if (last[static_cast<int>(up::lane::telemetry)] >= events) {
            if (!done) {
                done = true;
                t_end = steady::now();
            }
            cv.notify_all();
        }
    });

    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::atomic<std::uint64_t> refused{0}, record_bytes{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        const std::uint64_t n = events / producers + (static_cast<std::uint64_t>(p) < events % producers ? 1 : 0);
        threads.emplace_back([&, p, n] {
            auto ev = telemetry_event(p);
            ready++;
            while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
            std::uint64_t local_refused = 0;
            for (std::uint64_t i = 1; i <= n; ++i) {
                ev.sequence = i;
                ev.received_wall = std::chrono::system_clock::now();
                ev.received_monotonic = steady::now();
                std::uint32_t pairs = 0;
                auto body = up::encode_record(ev, pairs);  // what the uplink's sink does for each event
                if (i == 1 && p == 0) record_bytes = body.size();
                // As the runtime and the sink do it: admits() before the event is taken (backpressure: the
                // driver keeps it and retries), then a forced push.
                while (!q.admit_or_count_refusal(up::lane::telemetry)) {
                    ++local_refused;
                    std::this_thread::sleep_for(200us);
                }
                q.push_admitted(up::lane::telemetry, std::move(body), pairs);
            }
            refused += local_refused;
        });
    }
    while (ready.load() < producers) std::this_thread::yield();
    const auto t0 = steady::now();
    go.store(true, std::memory_order_release);
    for (auto &t : threads) t.join();
    {
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, 600s, [&] { return done; })) error("%s: the last record never committed", name.c_str());
    }
    if (!q.flush(60s)) error("%s: flush timed out", name.c_str());
    const auto s = q.stats();
    const auto &t = s.lanes[static_cast<int>(up::lane::telemetry)];
    std::unique_lock commit_lock(m);
    res.seconds = events ? std::chrono::duration<double>(t_end - t0).count() : 0;
    res.transactions = s.transactions;

    const std::string p = name + ".";
    bench::figure(p + "producers", producers, "threads");
    bench::figure(p + "events", static_cast<double>(events), "events");
    bench::figure(p + "record_bytes", static_cast<double>(record_bytes.load()), "bytes");
    bench::figure(p + "wall", res.seconds, "s");
    bench::figure(p + "events_per_s", res.seconds > 0 ? static_cast<double>(events) / res.seconds : 0, "events/s");
    bench::figure(p + "transactions", static_cast<double>(s.transactions), "count");
    bench::figure(p + "events_per_transaction", s.transactions ? static_cast<double>(events) / static_cast<double>(s.transactions) : 0,
                  "events");
    bench::figure(p + "commit_mean", commits ? commit_ms_sum / static_cast<double>(commits) : 0, "ms");
    bench::figure(p + "commit_max", s.max_commit_ms, "ms");
    commit_lock.unlock();
    bench::figure(p + "refused_pushes", static_cast<double>(refused.load()), "count");
    {
        std::error_code ec;
        const auto wal = fs::file_size(path.string() + "-wal", ec);
        bench::figure(p + "db_and_wal_bytes", static_cast<double>(fs::file_size(path) + (ec ? 0 : wal)), "bytes");
    }
    std::fflush(stdout);

    error.expect_eq((name + ": telemetry committed").c_str(), t.committed, events);
    error.expect_eq((name + ": telemetry depth").c_str(), t.depth, events);
    error.expect_eq((name + ": telemetry last_seq").c_str(), t.last_seq, events);
    error.expect_eq((name + ": telemetry evicted").c_str(), t.evicted, 0);
    error.expect_eq((name + ": commit errors").c_str(), s.commit_errors, 0);
    for (auto l : {up::lane::alarm, up::lane::event})
        error.expect_eq((name + ": depth of lane " + up::to_string(l)).c_str(), s.lanes[static_cast<int>(l)].depth, 0);

    if (verify) {
        // Every record back, in seq order without a gap, and each producer's device_seq 1..n exactly once.
        auto reader = q.open_reader();
        std::map<std::string, std::vector<bool>> seen;
        std::uint64_t after = 0, count = 0, dup = 0, seq_errors = 0;
        for (;;) {
            auto page = reader->read(up::lane::telemetry, after, 500, 512 * 1024);
            if (page.empty()) break;
            for (const auto &r : page) {
                if (r.seq != after + 1) ++seq_errors;
                after = r.seq;
                ++count;
                const auto [device, dseq] = identity_of(r);
                auto &bits = seen[device];
                if (bits.size() <= dseq) bits.resize(dseq + 1);
                if (bits[dseq]) ++dup;
                bits[dseq] = true;
            }
        }
        std::uint64_t missing = 0;
        for (const auto &[device, bits] : seen)
            for (std::size_t i = 1; i < bits.size(); ++i) missing += !bits[i];
        error.expect_eq((name + ": records read back").c_str(), count, events);
        error.expect_eq((name + ": seq gaps or reorders").c_str(), seq_errors, 0);
        error.expect_eq((name + ": duplicate (device, device_seq)").c_str(), dup, 0);
        error.expect_eq((name + ": missing device_seq").c_str(), missing, 0);
        error.expect_eq((name + ": devices").c_str(), seen.size(),
                        static_cast<std::uint64_t>(std::min<std::uint64_t>(producers, events)));
    }
    return res;
}

// ---- restart (in a child process) -------------------------------------------------------------------------------

void drop_from_page_cache(const fs::path &file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
}

int run_restart_child(const fs::path &db, std::uint64_t expect, bool cold) {
    bench::errors error;
    const long rss_start = status_kb("VmRSS");
    if (cold)
        for (const char *suffix : {"", "-wal", "-shm"}) drop_from_page_cache(db.string() + suffix);
    up::queue_options o;
    o.path = db;
    o.gateway_id = gateway;
    const auto t0 = steady::now();
    std::uint64_t count = 0, seq_errors = 0;
    double open_ms = 0, read_ms = 0;
    long hwm_open = 0;
    std::uint64_t pages = 0;
    {
        up::durable_queue q(o);
        const auto t1 = steady::now();
        open_ms = ms_between(t0, t1);
        hwm_open = status_kb("VmHWM");
        if (q.opened().recovered) error("restart: the queue was moved aside: %s", q.opened().problem.c_str());
        error.expect_eq("restart: backlog reported by open", q.opened().backlog, expect);
        bench::figure(std::string(cold ? "restart_cold." : "restart_warm.") + "quick_check_and_open", static_cast<double>(q.opened().check_took.count()), "ms");

        auto reader = q.open_reader();
        std::uint64_t after = 0;
        for (;;) {
            auto page = reader->read(up::lane::telemetry, after, 500, 512 * 1024);
            if (page.empty()) break;
            ++pages;
            for (const auto &r : page) {
                if (r.seq != after + 1) ++seq_errors;
                after = r.seq;
                ++count;
            }
        }
        read_ms = ms_between(t1, steady::now());
    }
    const long hwm = status_kb("VmHWM");
    const std::string p = cold ? "restart_cold." : "restart_warm.";
    bench::figure(p + "backlog", static_cast<double>(expect), "events");
    bench::figure(p + "open", open_ms, "ms");
    bench::figure(p + "read_all", read_ms, "ms");
    bench::figure(p + "read_pages", static_cast<double>(pages), "pages");
    bench::figure(p + "read_events_per_s", static_cast<double>(count) / (read_ms / 1000), "events/s");
    bench::figure(p + "rss_before_open", static_cast<double>(rss_start) / 1024, "MiB");
    bench::figure(p + "peak_rss_after_open", static_cast<double>(hwm_open) / 1024, "MiB");
    bench::figure(p + "peak_rss", static_cast<double>(hwm) / 1024, "MiB");
    error.expect_eq("restart: records read", count, expect);
    error.expect_eq("restart: seq gaps or reorders", seq_errors, 0);
    std::fflush(stdout);
    return error.count ? 1 : 0;
}

// Runs this program again with `args`; its exit status (-1 when it could not run or was killed).
int run_self(const std::vector<std::string> &args, long &maxrss_kb) {
    std::vector<std::string> all{"/proc/self/exe"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char *> argv;
    for (auto &a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = 0;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) return -1;
    int status = 0;
    rusage ru{};
    if (::wait4(pid, &status, 0, &ru) != pid) return -1;
    maxrss_kb = ru.ru_maxrss;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---- the receiver -----------------------------------------------------------------------------------------------

struct receiver_process {
    pid_t pid = -1;
    int out = -1;  // its stdout
    std::string address;

    bool start(const std::string &binary, const fs::path &db, bench::errors &error) {
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) != 0) return false;
        posix_spawn_file_actions_t fa;
        ::posix_spawn_file_actions_init(&fa);
        ::posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
        // A benchmark of the uplink, not of the tokens: open access, on loopback only.
        std::vector<std::string> args{binary,        "--listen",   "127.0.0.1:0", "--db", db.string(),
                                      "--log-level", "warn",       "--insecure-loopback"};
        std::vector<char *> argv;
        for (auto &a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::fflush(stdout);
        const int rc = ::posix_spawn(&pid, binary.c_str(), &fa, nullptr, argv.data(), environ);
        ::posix_spawn_file_actions_destroy(&fa);
        ::close(pipefd[1]);
        out = pipefd[0];
        if (rc != 0) {
            error("cannot start %s: %s", binary.c_str(), std::strerror(rc));
            pid = -1;
            return false;
        }
        // The first line: "listening on 127.0.0.1:PORT".
        std::string line;
        const auto deadline = steady::now() + 20s;
        while (line.find('\n') == std::string::npos && steady::now() < deadline) {
            pollfd p{out, POLLIN, 0};
            if (::poll(&p, 1, 200) <= 0) continue;
            char buf[256];
            const auto n = ::read(out, buf, sizeof buf);
            if (n <= 0) break;
            line.append(buf, static_cast<std::size_t>(n));
        }
        const std::string prefix = "listening on ";
        if (line.rfind(prefix, 0) != 0 || line.find('\n') == std::string::npos) {
            error("firelink-receiver did not say where it listens (got '%s')", line.c_str());
            return false;
        }
        address = line.substr(prefix.size(), line.find('\n') - prefix.size());
        return true;
    }

    // SIGTERM, then its exit status.
    int stop() {
        if (pid <= 0) return -1;
        ::kill(pid, SIGTERM);
        int status = 0;
        ::waitpid(pid, &status, 0);
        pid = -1;
        if (out >= 0) ::close(out);
        out = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    ~receiver_process() { stop(); }
};

// ---- alarms over a draining backlog -----------------------------------------------------------------------------

void run_alarms(const fs::path &dir, const fs::path &queue_db, std::uint64_t backlog, int alarms, int min_ms,
                int max_ms, const std::string &receiver_binary, bench::errors &error) {
    up::queue_options o;
    o.path = queue_db;
    o.gateway_id = gateway;
    up::durable_queue q(o);
    error.expect_eq("alarms: backlog at open", q.opened().backlog, backlog);

    receiver_process receiver;
    const auto receiver_db = dir / "receiver.db";
    if (!receiver.start(receiver_binary, receiver_db, error)) return;
    bench::note("firelink-receiver pid %d on %s, store %s", receiver.pid, receiver.address.c_str(),
                receiver_db.c_str());

    constexpr int tl = static_cast<int>(up::lane::telemetry);
    std::mutex m;
    std::condition_variable cv;
    std::map<std::uint64_t, steady::time_point> alarm_acked_at, alarm_committed_at;  // by seq
    std::map<std::uint64_t, int> alarm_index;                                        // seq -> alarm
    std::uint64_t alarm_through = 0, telemetry_through = 0;
    steady::time_point drained_at{};
    bool drained = backlog == 0;
    std::uint64_t telemetry_acks = 0;
    std::vector<double> commit_ms;  // each transaction of the queue while this phase runs (writer thread only)
    commit_ms.reserve(1 << 16);
    std::mutex commit_mutex;
    q.on_commit([&](const std::array<std::uint64_t, up::lane_count> &) {
        const double ms = q.stats().last_commit_ms;
        std::lock_guard lock(commit_mutex);
        commit_ms.push_back(ms);
    });

    up::uplink_options uo;
    uo.gateway_id = gateway;
    uo.http.base_url = "http://" + receiver.address;
    uo.http.gateway_id = gateway;
    uo.poll_commands = false;
    uo.on_ack = [&](up::lane l, std::uint64_t through) {
        const auto now = steady::now();
        std::lock_guard lock(m);
        if (l == up::lane::alarm) {
            for (auto s = alarm_through + 1; s <= through; ++s) alarm_acked_at[s] = now;
            alarm_through = std::max(alarm_through, through);
        } else if (l == up::lane::telemetry) {
            ++telemetry_acks;
            telemetry_through = std::max(telemetry_through, through);
            if (!drained && telemetry_through >= backlog) {
                drained = true;
                drained_at = now;
            }
        }
        cv.notify_all();
    };
    const auto t_start = steady::now();
    auto link = std::make_unique<up::uplink>(q, uo);

    std::vector<steady::time_point> pushed_at(static_cast<std::size_t>(alarms));
    std::vector<std::uint64_t> telemetry_left_at_push(static_cast<std::size_t>(alarms));
    std::mt19937 rng{42};
    std::uniform_int_distribution<int> gap(min_ms, std::max(min_ms, max_ms));
    for (int i = 0; i < alarms; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(gap(rng)));
        std::uint32_t pairs = 0;
        auto body = alarm_body(static_cast<std::uint64_t>(i + 1), pairs);
        {
            std::lock_guard lock(m);
            telemetry_left_at_push[static_cast<std::size_t>(i)] = backlog - std::min(backlog, telemetry_through);
        }
        pushed_at[static_cast<std::size_t>(i)] = steady::now();
        const bool ok = q.push(up::lane::alarm, std::move(body), pairs, [&, i](std::uint64_t seq) {
            const auto now = steady::now();
            std::lock_guard lock(m);
            alarm_index[seq] = i;
            alarm_committed_at[seq] = now;
        });
        if (!ok) error("alarm %d was refused by the queue", i);
    }
    {
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, 60s, [&] { return alarm_through >= static_cast<std::uint64_t>(alarms); }))
            error("alarms: only %" PRIu64 " of %d alarms acknowledged after 60 s", alarm_through, alarms);
        const auto drain_timeout = std::chrono::seconds(120 + backlog / 2000);
        if (!cv.wait_until(lock, t_start + drain_timeout, [&] { return drained; }))
            error("alarms: the telemetry backlog was not drained after %lld s (acked through %" PRIu64 ")",
                  static_cast<long long>(drain_timeout.count()), telemetry_through);
    }
    const auto rep = link->report();
    link.reset();  // stops the senders
    if (!q.flush(60s)) error("alarms: the queue did not apply the acknowledgements");
    const auto s = q.stats();
    const int receiver_status = receiver.stop();
    if (receiver_status != 0) error("firelink-receiver exited with %d", receiver_status);

    // Latencies: push -> commit (the queue) and push -> on_ack (the whole way).
    std::vector<double> total, commit, commit_to_ack;
    int during_drain = 0;
    {
        std::lock_guard lock(m);
        for (const auto &[seq, idx] : alarm_index) {
            const auto p = pushed_at[static_cast<std::size_t>(idx)];
            if (auto it = alarm_committed_at.find(seq); it != alarm_committed_at.end())
                commit.push_back(ms_between(p, it->second));
            if (auto it = alarm_acked_at.find(seq); it != alarm_acked_at.end()) {
                total.push_back(ms_between(p, it->second));
                if (auto c = alarm_committed_at.find(seq); c != alarm_committed_at.end())
                    commit_to_ack.push_back(ms_between(c->second, it->second));
                if (!drained || it->second < drained_at) ++during_drain;
            }
        }
    }
    const double drain_s = drained && backlog ? std::chrono::duration<double>(drained_at - t_start).count() : 0;
    bench::figure("alarms.backlog", static_cast<double>(backlog), "events");
    bench::figure("alarms.alarms", alarms, "events");
    bench::figure("alarms.acked", static_cast<double>(total.size()), "events");
    bench::figure("alarms.acked_while_telemetry_draining", during_drain, "events");
    bench::figure("alarms.latency_p50", bench::percentile(total, 50), "ms");
    bench::figure("alarms.latency_p90", bench::percentile(total, 90), "ms");
    bench::figure("alarms.latency_p99", bench::percentile(total, 99), "ms");
    bench::figure("alarms.latency_max", bench::percentile(total, 100), "ms");
    bench::figure("alarms.push_to_commit_p50", bench::percentile(commit, 50), "ms");
    bench::figure("alarms.push_to_commit_p99", bench::percentile(commit, 99), "ms");
    bench::figure("alarms.push_to_commit_max", bench::percentile(commit, 100), "ms");
    bench::figure("alarms.commit_to_ack_p50", bench::percentile(commit_to_ack, 50), "ms");
    bench::figure("alarms.commit_to_ack_p99", bench::percentile(commit_to_ack, 99), "ms");
    bench::figure("alarms.commit_to_ack_max", bench::percentile(commit_to_ack, 100), "ms");
    bench::figure("alarms.alarm_batches", static_cast<double>(rep.lanes[0].batches), "requests");
    bench::figure("alarms.alarm_failures", static_cast<double>(rep.lanes[0].failures), "requests");
    bench::figure("drain.wall", drain_s, "s");
    bench::figure("drain.events_per_s", drain_s > 0 ? static_cast<double>(backlog) / drain_s : 0, "events/s");
    bench::figure("drain.telemetry_batches", static_cast<double>(rep.lanes[tl].batches), "requests");
    bench::figure("drain.telemetry_failures", static_cast<double>(rep.lanes[tl].failures), "requests");
    bench::figure("drain.queue_transactions", static_cast<double>(s.transactions), "count");
    std::lock_guard commit_lock(commit_mutex);
    bench::figure("drain.queue_commit_p50", bench::percentile(commit_ms, 50), "ms");
    bench::figure("drain.queue_commit_p99", bench::percentile(commit_ms, 99), "ms");
    bench::figure("drain.queue_commit_max", bench::percentile(commit_ms, 100), "ms");
    std::fflush(stdout);

    error.expect_eq("alarms: alarms committed", alarm_index.size(), static_cast<std::uint64_t>(alarms));
    error.expect_eq("alarms: alarms acknowledged", total.size(), static_cast<std::uint64_t>(alarms));
    for (auto l : up::all_lanes) {
        const auto &ls = s.lanes[static_cast<int>(l)];
        error.expect_eq((std::string("queue depth after the drain, lane ") + up::to_string(l)).c_str(), ls.depth, 0);
        error.expect_eq((std::string("records quarantined, lane ") + up::to_string(l)).c_str(), ls.quarantined, 0);
    }
    error.expect_eq("telemetry acked by the queue", s.lanes[tl].acked, backlog);
    error.expect_eq("alarms acked by the queue", s.lanes[0].acked, static_cast<std::uint64_t>(alarms));

    // What the platform stored: each key once, every seq of each lane.
    try {
        SQLite::Database db(receiver_db.string(), SQLite::OPEN_READONLY);
        SQLite::Statement c(db, "SELECT lane, count(*), count(DISTINCT seq), min(seq), max(seq) FROM events "
                                "GROUP BY lane");
        std::map<std::string, std::array<std::uint64_t, 4>> got;
        while (c.executeStep())
            got[c.getColumn(0).getString()] = {static_cast<std::uint64_t>(c.getColumn(1).getInt64()),
                                               static_cast<std::uint64_t>(c.getColumn(2).getInt64()),
                                               static_cast<std::uint64_t>(c.getColumn(3).getInt64()),
                                               static_cast<std::uint64_t>(c.getColumn(4).getInt64())};
        const auto check = [&](const char *lane, std::uint64_t want) {
            const auto v = got.count(lane) ? got[lane] : std::array<std::uint64_t, 4>{};
            error.expect_eq((std::string("receiver: stored, lane ") + lane).c_str(), v[0], want);
            error.expect_eq((std::string("receiver: distinct seqs, lane ") + lane).c_str(), v[1], want);
            if (want) {
                error.expect_eq((std::string("receiver: first seq, lane ") + lane).c_str(), v[2], 1);
                error.expect_eq((std::string("receiver: last seq, lane ") + lane).c_str(), v[3], want);
            }
        };
        check("telemetry", backlog);
        check("alarm", static_cast<std::uint64_t>(alarms));
        error.expect_eq("receiver: lanes with events", got.size(), (backlog ? 1u : 0u) + (alarms ? 1u : 0u));
    } catch (const std::exception &e) {
        error("cannot read the receiver's store %s: %s", receiver_db.c_str(), e.what());
    }
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"firelink uplink benchmark: durable ingest, alarm latency over a telemetry backlog, restart"};
    std::uint64_t ingest_events = 500'000;
    std::uint64_t backlog = 1'000'000;
    int alarms = 200;
    int producers = 2;
    int alarm_min_ms = 20, alarm_max_ms = 50;
    int fsync_iterations = 300;
    std::string dir = "/var/tmp";
    std::string receiver = FIRELINK_RECEIVER_PATH;
    std::string phase = "all";
    std::string db;
    std::uint64_t expect = 0;
    bool keep = false, cold = true;
    app.add_option("--ingest-events", ingest_events, "records for the ingest phase (0: skip it)");
    app.add_option("--backlog", backlog, "telemetry records queued before the receiver starts");
    app.add_option("--alarms", alarms, "alarms pushed while the backlog drains")->check(CLI::NonNegativeNumber);
    app.add_option("--producers", producers, "producer threads for the ingest")->check(CLI::PositiveNumber);
    app.add_option("--alarm-min-ms", alarm_min_ms, "shortest gap between two alarms");
    app.add_option("--alarm-max-ms", alarm_max_ms, "longest gap between two alarms");
    app.add_option("--fsync-iterations", fsync_iterations, "4 KiB write + fdatasync samples, each way");
    app.add_option("--dir", dir, "where the queue files go (a new directory is made in it; not tmpfs)");
    app.add_option("--receiver", receiver, "the firelink-receiver binary");
    app.add_option("--keep", keep, "keep the files afterwards");
    app.add_option("--cold", cold, "restart: drop the queue file from the page cache before the open");
    app.add_option("--phase", phase, "all, or restart (internal: the child process)")
        ->check(CLI::IsMember({"all", "restart"}));
    app.add_option("--db", db, "restart: the queue file");
    app.add_option("--expect", expect, "restart: the records it holds");
    CLI11_PARSE(app, argc, argv);
    spdlog::set_level(spdlog::level::warn);

    if (phase == "restart") return run_restart_child(db, expect, cold);

    bench::errors error;
    bench::print_header("uplink_bench");
    fs::create_directories(dir);
    std::string tmpl = (fs::path(dir) / "uplink-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
        std::fprintf(stderr, "error: cannot make a directory in %s: %s\n", dir.c_str(), std::strerror(errno));
        return 1;
    }
    const fs::path work = tmpl;
    bench::note("queue directory %s: %s", work.c_str(), mount_of(work).c_str());
    if (is_tmpfs(work)) bench::note("WARNING: tmpfs: fsync costs nothing here; the figures are not a disk's");
    bench::note("records: arc_fault_breaker telemetry made by encode_record from a core::accepted_event; queue WAL, "
                "synchronous=FULL, default queue_options");

    run_fsync(work, fsync_iterations, error);
    if (ingest_events) run_ingest("ingest", work / "ingest.db", ingest_events, producers, true, error);
    {
        std::error_code ec;
        for (const char *suffix : {"", "-wal", "-shm", ".reserve"}) fs::remove(work / ("ingest.db" + std::string(suffix)), ec);
    }

    const auto backlog_db = work / "backlog.db";
    run_ingest("backlog_fill", backlog_db, backlog, producers, false, error);

    // Cold (the queue's pages dropped from the page cache), then warm (as the cold run left the cache).
    for (const bool c : {true, false}) {
        if (c && !cold) continue;
        long child_maxrss_kb = 0;
        const int rc = run_self({"--phase", "restart", "--db", backlog_db.string(), "--expect",
                                 std::to_string(backlog), "--cold", c ? "true" : "false"},
                                child_maxrss_kb);
        if (rc != 0) error("the restart phase (child process, %s) failed with %d", c ? "cold" : "warm", rc);
        // Not wait4's ru_maxrss: posix_spawn's child shares this process's memory until exec, and Linux counts it.
        (void)child_maxrss_kb;
    }
    std::fflush(stdout);

    run_alarms(work, backlog_db, backlog, alarms, alarm_min_ms, alarm_max_ms, receiver, error);

    bench::figure("uplink.target_ingest_events_per_s", 50000, "events/s");
    bench::figure("uplink.target_alarm_p99", 20, "ms");
    bench::figure("uplink.target_restart_open", 2000, "ms");
    bench::figure("uplink.errors", error.count, "count");
    if (!keep) {
        std::error_code ec;
        fs::remove_all(work, ec);
    } else {
        bench::note("kept %s", work.c_str());
    }
    return error.count ? 1 : 0;
}
