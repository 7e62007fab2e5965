// pipeline_bench: events/s and per-event latency through the host pipeline, with the plugin in process and out of
// process (in a firelink-runner, host/isolation), in the same run.
//
// One device of bench_plugin (tests/bench/bench_plugin.c) in a core::device_runtime whose io_context runs on ONE
// thread. Each command makes the device emit a burst of pre-encoded events (telemetry, and an alarm every
// --alarm-every events) in a tight loop; every event goes through the host's emit: the boundary check (msgpack parse
// and schema), the per-class code check, liveness bookkeeping, stamping (sequence, wall and monotonic receive time,
// gateway/plugin/device/class/site) and the sink. The sink here is a null sink: it counts, checks the sequence is
// gap-free and records latency, and keeps nothing.
//
// Isolation (--isolation): in_process loads the plugin with core::plugin_loader; process loads it with
// isolation::load_out_of_process, so the same plugin runs in a firelink-runner and every event crosses the channel
// (the runner's own boundary check, a frame, the socket, the host's reader thread) before the same emit and sink.
// Both use the same device config, commands, sink and checks.
//
// CPUs: --cpu pins the bench process (every thread it starts inherits the mask). The runner is another process:
// --runner-cpu pins all its threads (and so the plugin's burst thread, started later by its driver thread) to one
// CPU; by default the next CPU the bench may use, so the out-of-process figures use TWO CPUs where the in-process
// ones use one (--runner-cpu equal to --cpu puts both on one CPU). The output says what was pinned where.
//
// Modes:
//   strand  the device emits from inside its command call, on the device strand (in process mode: on the runner's
//           driver thread, while the host's command call waits for the reply);
//   thread  the device emits from a thread the plugin started itself (emit is [thread: any]);
//   paced   as thread, but one event every 1/--paced-rate s: latency at a fixed moderate rate, where the back-to-back
//           bursts of strand and thread measure throughput and, out of process, mostly queueing in the channel.
//
// Latency: the plugin writes CLOCK_MONOTONIC (std::chrono::steady_clock's clock on Linux, one clock for every process
// of the machine) into the event's last 8 bytes immediately before host->emit; the host stamps received_monotonic
// just before it hands the event to the sink. latency = received_monotonic - plugin stamp: in process, the host's own
// per-event work up to the sink; out of process, also the runner's work, the channel and the wait in its queue (the
// sink's own work and the event's destruction come after it and are not included; they are in ns_per_event).
//
// Exit status 1 when an event was lost, refused or counted wrong; speed is never checked.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <msgpack.hpp>
#include <spdlog/spdlog.h>

#include <firelink/core/device_runtime.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/isolation/runner_supervisor.hpp>

#include "bench_common.hpp"

#ifndef BENCH_PLUGIN_PATH
#error "BENCH_PLUGIN_PATH must name the built bench_plugin"
#endif
#ifndef BENCH_RUNNER_PATH
#define BENCH_RUNNER_PATH ""  // empty: firelink-runner beside this executable
#endif

namespace core = firelink::core;
namespace iso = firelink::isolation;
using steady = std::chrono::steady_clock;

namespace {

std::vector<std::uint8_t> pack_map(const std::map<std::string, msgpack::type::variant> &kv) {
    msgpack::sbuffer buf;
    msgpack::pack(buf, kv);
    const auto *p = reinterpret_cast<const std::uint8_t *>(buf.data());
    return {p, p + buf.size()};
}

std::vector<std::uint8_t> make_command(const std::string &id, const std::string &name) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(3);
    pk.pack(std::string("id"));
    pk.pack(id);
    pk.pack(std::string("name"));
    pk.pack(name);
    pk.pack(std::string("args"));
    pk.pack_map(0);
    const auto *p = reinterpret_cast<const std::uint8_t *>(buf.data());
    return {p, p + buf.size()};
}

// Reads {"values":[{"name":k,"value":int},...]} of a command_result.
std::map<std::string, std::int64_t> result_values(const std::vector<std::uint8_t> &payload) {
    std::map<std::string, std::int64_t> out;
    auto h = msgpack::unpack(reinterpret_cast<const char *>(payload.data()), payload.size());
    const auto &root = h.get();
    if (root.type != msgpack::type::MAP) return out;
    for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
        const auto &kv = root.via.map.ptr[i];
        if (kv.key.as<std::string>() == "ok") out["ok"] = kv.val.as<bool>() ? 1 : 0;
        if (kv.key.as<std::string>() != "values" || kv.val.type != msgpack::type::ARRAY) continue;
        for (std::uint32_t j = 0; j < kv.val.via.array.size; ++j) {
            auto point = kv.val.via.array.ptr[j].as<std::map<std::string, msgpack::object>>();
            out[point.at("name").as<std::string>()] = point.at("value").as<std::int64_t>();
        }
    }
    return out;
}

// The null sink. The runtime calls it under the device's emit lock, so calls never overlap; the counters the main
// thread reads are published by `results` (release) after each burst's command_result.
struct null_sink {
    std::uint64_t telemetry = 0, alarms = 0, other = 0;
    std::uint64_t last_sequence = 0, sequence_errors = 0, stamp_errors = 0;
    std::uint64_t emitted = 0, failed = 0, loop_ns = 0, results_not_ok = 0, host_results = 0;
    std::size_t telemetry_bytes = 0, alarm_bytes = 0;
    bool record = false;
    std::vector<std::uint32_t> latency_ns;  // preallocated; never grows while recording
    std::atomic<std::uint64_t> results{0};

    void operator()(core::accepted_event &&ev) {
        if (ev.sequence != last_sequence + 1) ++sequence_errors;
        last_sequence = ev.sequence;
        const char k = ev.kind.empty() ? '?' : ev.kind[0];
        if (k == 't' || k == 'a') {
            (k == 't' ? telemetry : alarms)++;
            (k == 't' ? telemetry_bytes : alarm_bytes) = ev.payload.size();
            const auto n = ev.payload.size();
            if (n < 9 || ev.payload[n - 9] != 0xcf) {
                ++stamp_errors;
                return;
            }
            std::uint64_t stamp = 0;
            for (std::size_t i = n - 8; i < n; ++i) stamp = stamp << 8 | ev.payload[i];
            const auto received = static_cast<std::uint64_t>(ev.received_monotonic.time_since_epoch().count());
            if (received < stamp) {
                ++stamp_errors;
                return;
            }
            if (record && latency_ns.size() < latency_ns.capacity())
                latency_ns.push_back(static_cast<std::uint32_t>(std::min<std::uint64_t>(received - stamp, UINT32_MAX)));
            return;
        }
        if (ev.kind == "command_result" && ev.from_host) {
            ++host_results;  // the host refused a command (e.g. FL_BUSY); the bench retries it
            return;
        }
        if (ev.kind == "command_result") {
            const auto v = result_values(ev.payload);
            emitted += static_cast<std::uint64_t>(v.count("emitted") ? v.at("emitted") : 0);
            failed += static_cast<std::uint64_t>(v.count("failed") ? v.at("failed") : 0);
            loop_ns += static_cast<std::uint64_t>(v.count("loop_ns") ? v.at("loop_ns") : 0);
            if (!v.count("ok") || v.at("ok") != 1) ++results_not_ok;
            results.fetch_add(1, std::memory_order_release);
            results.notify_all();
            return;
        }
        ++other;
    }
};


// The CPUs this process may run on, in order.
std::vector<int> allowed_cpus() {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) != 0) return out;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) out.push_back(c);
    return out;
}

// Pins every thread of process `pid` to `cpu`; threads it starts later inherit the mask of the thread that starts
// them. Returns the number of threads pinned (0: none could be).
int pin_process(long pid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int pinned = 0;
    std::error_code ec;
    for (const auto &task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        const long tid = std::strtol(task.path().filename().c_str(), nullptr, 10);
        if (tid > 0 && ::sched_setaffinity(static_cast<pid_t>(tid), sizeof set, &set) == 0) ++pinned;
    }
    return pinned;
}

// CPU time (user + system, every thread) of process `pid` so far, in seconds; clock-tick resolution.
double process_cpu_seconds_of(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(stat.substr(close + 2));
    std::string f;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is the state; 14 utime, 15 stime
        if (i == 14) utime = std::stoull(f);
        if (i == 15) stime = std::stoull(f);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct mode_result {
    std::string isolation, mode;
    double events = 0, wall = 0, cpu_host = 0, cpu_runner = -1;
    double loop = 0;
    std::size_t samples = 0;
    double p50 = 0, p99 = 0, p999 = 0, max = 0;
    double events_per_s() const { return wall > 0 ? events / wall : 0; }
    double ns_per_event() const { return events > 0 ? wall * 1e9 / events : 0; }
};

struct options {
    std::uint64_t events = 2'000'000;
    std::uint64_t burst = 10'000;
    std::uint64_t alarm_every = 100;
    std::uint64_t warmup_bursts = 2;
    std::uint64_t paced_events = 20'000;
    std::uint64_t paced_rate = 20'000;
    int cpu = 0;
    int runner_cpu = -2;  // -2: the next allowed CPU after `cpu` (or `cpu` when it is the only one); -1: not pinned
    std::string plugin_path = BENCH_PLUGIN_PATH;
    std::string runner_path = BENCH_RUNNER_PATH;
    int call_timeout_ms = 1000;
    std::vector<std::string> modes{"strand", "thread", "paced"};
    std::vector<int> machine_cpus;  // the CPUs the bench could use before it pinned itself
};

// One isolation: loads the plugin, runs every mode on one device, checks the counts. Appends a result per mode.
int run_isolation(boost::asio::io_context &io, const options &o, const std::string &isolation,
                  std::vector<mode_result> &results, bench::errors &error) {
    const int errors_before = error.count;
    auto sink = std::make_unique<null_sink>();
    const std::uint64_t burst = o.burst;
    const std::uint64_t bursts_flood = (o.events + burst - 1) / burst;
    const std::uint64_t bursts_paced = std::max<std::uint64_t>(1, (o.paced_events + burst - 1) / burst);

    auto loaded = [&]() -> core::load_result {
        if (isolation == "in_process") return core::plugin_loader{}.load(o.plugin_path);
        iso::supervisor_options so;
        so.runner = o.runner_path;
        so.call_timeout = std::chrono::milliseconds(o.call_timeout_ms);
        return iso::load_out_of_process(o.plugin_path, so);
    }();
    if (!loaded) {
        error("%s: cannot load %s: %s", isolation.c_str(), o.plugin_path.c_str(), loaded.error().what().c_str());
        return 1;
    }
    std::shared_ptr<core::plugin> plugin = std::move(loaded).value();

    long runner_pid = -1;
    if (isolation == "process") {
        const auto st = iso::status_of(*plugin);
        if (!st || st->pid <= 0) {
            error("process: the plugin does not run in a firelink-runner");
            return 1;
        }
        runner_pid = st->pid;
        int rcpu = o.runner_cpu;
        if (rcpu == -2) {  // the next CPU after the bench's, or the bench's own when it is the only one
            rcpu = o.cpu;
            if (o.cpu < 0) rcpu = -1;
            else if (!o.machine_cpus.empty()) {
                auto it = std::upper_bound(o.machine_cpus.begin(), o.machine_cpus.end(), o.cpu);
                rcpu = it != o.machine_cpus.end() ? *it : o.machine_cpus.front();
            }
        }
        if (rcpu >= 0) {
            const int pinned = pin_process(runner_pid, rcpu);
            if (pinned > 0)
                bench::note("process: firelink-runner pid %ld: %d threads pinned to CPU %d (its plugin's burst thread "
                            "inherits it); the bench (host side) on CPU %d: %s", runner_pid, pinned, rcpu, o.cpu,
                            rcpu == o.cpu ? "ONE CPU for both processes" : "TWO CPUs in all, one per process");
            else
                bench::note("process: firelink-runner pid %ld NOT pinned (sched_setaffinity to CPU %d failed)",
                            runner_pid, rcpu);
        } else {
            bench::note("process: firelink-runner pid %ld not pinned (--runner-cpu -1)", runner_pid);
        }
    }

    int status = 0;
    {
        core::runtime_options ro;
        ro.gateway_id = "gw-bench";
        null_sink *sp = sink.get();
        core::device_runtime runtime(io, [sp](core::accepted_event &&ev) { (*sp)(std::move(ev)); }, ro);

        core::device_spec spec;
        spec.device_id = "bench-1";
        spec.driver_id = "bench";
        const std::uint64_t pace_ns = std::max<std::uint64_t>(1, 1'000'000'000ull / std::max<std::uint64_t>(1, o.paced_rate));
        spec.config = pack_map({{"burst", msgpack::type::variant(burst)},
                                {"alarm_every", msgpack::type::variant(o.alarm_every)},
                                {"pace_ns", msgpack::type::variant(pace_ns)}});
        spec.site = {{"site", "bench-site"}, {"building", "A"}, {"floor", "3"}};
        auto ready = runtime.create(plugin, spec);
        if (ready) ready = runtime.start("bench-1");
        if (!ready) {
            error("%s: cannot create/start the bench device: %s", isolation.c_str(), ready.why().c_str());
            return 1;
        }

        std::uint64_t commands = 0;
        // Runs n bursts in `mode` and waits for each one's command_result.
        auto run_bursts = [&](const std::string &mode, std::uint64_t n) {
            const std::string name = mode == "strand" ? "burst" : mode == "thread" ? "thread_burst" : "paced_burst";
            for (std::uint64_t i = 0; i < n; ++i) {
                const auto cmd = make_command("c" + std::to_string(++commands), name);
                const auto expected = sink->results.load(std::memory_order_acquire) + 1;
                auto sent = runtime.command("bench-1", cmd);
                while (sent == FL_BUSY) {
                    std::this_thread::yield();
                    sent = runtime.command("bench-1", cmd);
                }
                if (!sent) {
                    error("%s %s burst %" PRIu64 ": command returned %d (%s)", isolation.c_str(), mode.c_str(), i,
                          sent.status(), sent.why().c_str());
                    return false;
                }
                for (auto r = sink->results.load(std::memory_order_acquire); r < expected;
                     r = sink->results.load(std::memory_order_acquire))
                    sink->results.wait(r, std::memory_order_acquire);
            }
            return true;
        };

        std::uint64_t total_bursts = 0;
        for (const auto &mode : o.modes) {
            const bool paced = mode == "paced";
            const std::uint64_t warmup = paced ? std::min<std::uint64_t>(o.warmup_bursts, 1) : o.warmup_bursts;
            const std::uint64_t measured = paced ? bursts_paced : bursts_flood;
            if (!run_bursts(mode, warmup)) break;
            total_bursts += warmup;

            const auto before_events = sink->telemetry + sink->alarms;
            const auto before_loop = sink->loop_ns;
            sink->latency_ns.clear();
            sink->latency_ns.reserve(measured * burst);
            sink->record = true;
            const double cpu0 = bench::process_cpu_seconds();
            const double rcpu0 = runner_pid > 0 ? process_cpu_seconds_of(runner_pid) : 0;
            const auto t0 = steady::now();
            const bool ok = run_bursts(mode, measured);
            const auto t1 = steady::now();
            const double cpu1 = bench::process_cpu_seconds();
            const double rcpu1 = runner_pid > 0 ? process_cpu_seconds_of(runner_pid) : 0;
            sink->record = false;
            if (!ok) break;
            total_bursts += measured;

            mode_result r;
            r.isolation = isolation;
            r.mode = mode;
            r.events = static_cast<double>(sink->telemetry + sink->alarms - before_events);
            r.wall = std::chrono::duration<double>(t1 - t0).count();
            r.loop = static_cast<double>(sink->loop_ns - before_loop) / 1e9;
            r.cpu_host = (cpu1 - cpu0) / r.wall;
            if (runner_pid > 0) r.cpu_runner = (rcpu1 - rcpu0) / r.wall;
            r.samples = sink->latency_ns.size();
            r.p50 = bench::percentile(sink->latency_ns, 50);
            r.p99 = bench::percentile(sink->latency_ns, 99);
            r.p999 = bench::percentile(sink->latency_ns, 99.9);
            r.max = bench::percentile(sink->latency_ns, 100);

            const std::string p = "pipeline." + isolation + "." + mode + ".";
            bench::figure(p + "events", r.events, "events");
            bench::figure(p + "wall", r.wall, "s");
            bench::figure(p + "events_per_s", r.events_per_s(), "events/s");
            bench::figure(p + "ns_per_event", r.ns_per_event(), "ns");
            bench::figure(p + "emit_loop_events_per_s", r.events / r.loop, "events/s");
            bench::figure(p + "cpu_seconds_per_wall_second", r.cpu_host, "cpu");
            bench::figure(p + "cpu_ns_per_event", r.cpu_host * r.wall * 1e9 / r.events, "ns");
            if (runner_pid > 0) {
                bench::figure(p + "runner_cpu_seconds_per_wall_second", r.cpu_runner, "cpu");
                bench::figure(p + "runner_cpu_ns_per_event", r.cpu_runner * r.wall * 1e9 / r.events, "ns");
            }
            bench::figure(p + "latency_samples", static_cast<double>(r.samples), "events");
            bench::figure(p + "latency_p50", r.p50, "ns");
            bench::figure(p + "latency_p99", r.p99, "ns");
            bench::figure(p + "latency_p999", r.p999, "ns");
            bench::figure(p + "latency_max", r.max, "ns");
            std::fflush(stdout);
            results.push_back(r);
        }

        const auto counters = runtime.counters("bench-1");
        runtime.stop("bench-1");
        runtime.destroy("bench-1");

        // Counts, never speed.
        const std::uint64_t expected_events = total_bursts * burst;
        const std::uint64_t expected_alarms = o.alarm_every ? expected_events / o.alarm_every : 0;
        auto expect = [&](const std::string &what, unsigned long long got, unsigned long long want) {
            error.expect_eq((isolation + ": " + what).c_str(), got, want);
        };
        expect("telemetry + alarm events received", sink->telemetry + sink->alarms, expected_events);
        expect("alarm events received", sink->alarms, expected_alarms);
        expect("command_results received", sink->results.load(), total_bursts);
        expect("events the plugin saw accepted (FL_OK)", sink->emitted, expected_events);
        expect("emits the host did not accept", sink->failed, 0);
        expect("command_results with ok=false", sink->results_not_ok, 0);
        expect("other events", sink->other, 0);
        expect("sequence gaps or reorders", sink->sequence_errors, 0);
        expect("events without a valid stamp", sink->stamp_errors, 0);
        expect("runtime accepted counter", counters.accepted, expected_events + total_bursts + sink->host_results);
        expect("runtime refused counter", counters.refused, 0);
        const std::string p = "pipeline." + isolation + ".";
        bench::figure(p + "telemetry_bytes", static_cast<double>(sink->telemetry_bytes), "bytes");
        bench::figure(p + "alarm_bytes", static_cast<double>(sink->alarm_bytes), "bytes");
        bench::figure(p + "events_checked", static_cast<double>(sink->telemetry + sink->alarms), "events");
        bench::figure(p + "busy_retries", static_cast<double>(sink->host_results), "count");
        bench::figure(p + "slow_callbacks", static_cast<double>(counters.slow_callbacks), "count");
        if (runner_pid > 0) {
            if (const auto st = iso::status_of(*plugin)) {
                expect("runner failures", st->failures, 0);
                expect("runner restarts", st->restarts, 0);
            }
        }
        status = error.count != errors_before ? 1 : 0;
    }
    plugin.reset();  // out of process: the runner is asked to end and reaped here
    return status;
}

std::string human(double v, const char *unit) {
    char buf[64];
    if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2f M%s", v / 1e6, unit);
    else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1f k%s", v / 1e3, unit);
    else std::snprintf(buf, sizeof buf, "%.0f %s", v, unit);
    return buf;
}

std::string ns(double v) {
    char buf[64];
    if (std::fabs(v) >= 1e6) std::snprintf(buf, sizeof buf, "%.2f ms", v / 1e6);
    else if (std::fabs(v) >= 1e4) std::snprintf(buf, sizeof buf, "%.1f us", v / 1e3);
    else std::snprintf(buf, sizeof buf, "%.0f ns", v);
    return buf;
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"firelink pipeline benchmark: events/s and latency through the pipeline into a null sink, with the "
                 "plugin in process and out of process"};
    options o;
    std::string isolation = "both";
    app.add_option("-n,--events", o.events, "events per flood mode, strand and thread (rounded up to whole bursts)")
        ->check(CLI::PositiveNumber);
    app.add_option("-b,--burst", o.burst, "events per command (one tight loop in the plugin)")->check(CLI::PositiveNumber);
    app.add_option("--alarm-every", o.alarm_every, "every n-th event is an alarm (0: telemetry only)");
    app.add_option("--warmup-bursts", o.warmup_bursts, "unmeasured bursts before each mode (paced: at most 1)");
    app.add_option("--paced-events", o.paced_events, "events of the paced mode (rounded up to whole bursts)")
        ->check(CLI::PositiveNumber);
    app.add_option("--paced-rate", o.paced_rate, "events/s of the paced mode")->check(CLI::Range(1, 1'000'000'000));
    app.add_option("--cpu", o.cpu, "CPU to pin the bench process to (-1: do not pin)");
    app.add_option("--runner-cpu", o.runner_cpu,
                   "CPU to pin the firelink-runner to (-2: the next CPU after --cpu, -1: do not pin)");
    app.add_option("--plugin", o.plugin_path, "the bench plugin");
    app.add_option("--runner", o.runner_path, "the firelink-runner binary");
    app.add_option("--call-timeout-ms", o.call_timeout_ms, "process: supervisor_options.call_timeout");
    app.add_option("--modes", o.modes, "strand, thread, paced (comma-separated)")
        ->check(CLI::IsMember({"strand", "thread", "paced"}))
        ->delimiter(',');
    app.add_option("--isolation", isolation, "in_process, process, or both (one after the other, same run)")
        ->check(CLI::IsMember({"in_process", "process", "both"}));
    CLI11_PARSE(app, argc, argv);
    if (o.burst > o.events) o.burst = o.events;

    bench::errors error;
    bench::print_header("pipeline_bench");
    o.machine_cpus = allowed_cpus();
    // Pin first: every thread started later (the io thread, the runtime's watchdog, the plugin's burst thread, the
    // supervisor's threads) inherits the mask. A runner inherits it too, and is then pinned on its own.
    if (o.cpu >= 0) {
        if (bench::pin_to_cpu(o.cpu)) bench::note("pinned: the bench process runs on CPU %d (sched_setaffinity)", o.cpu);
        else bench::note("NOT pinned: sched_setaffinity(CPU %d) failed; figures may use more than one core", o.cpu);
    } else {
        bench::note("NOT pinned (--cpu -1)");
    }
    bench::note("latency = host received_monotonic (taken just before the sink) - plugin CLOCK_MONOTONIC stamp "
                "(taken just before host->emit); out of process it also covers the runner, the channel and its queue");
    bench::note("paced: one event every %.1f us (%" PRIu64 " events/s)", 1e6 / static_cast<double>(o.paced_rate),
                o.paced_rate);
    spdlog::set_level(spdlog::level::warn);

    boost::asio::io_context io;
    auto work = boost::asio::make_work_guard(io);
    std::thread io_thread([&] { io.run(); });  // ONE io thread: the device strand runs here

    std::vector<std::string> isolations;
    if (isolation == "both" || isolation == "in_process") isolations.push_back("in_process");
    if (isolation == "both" || isolation == "process") isolations.push_back("process");
    std::vector<mode_result> results;
    int status = 0;
    for (const auto &i : isolations) status |= run_isolation(io, o, i, results, error);
    work.reset();
    io_thread.join();

    // Side by side, and what crossing the process boundary adds.
    bench::note("%-7s %-10s %12s %9s %10s %10s %10s %8s %8s", "mode", "isolation", "events/s", "ns/event", "p50", "p99",
                "p99.9", "cpu", "runner");
    for (const auto &mode : o.modes) {
        const mode_result *in = nullptr, *out = nullptr;
        for (const auto &r : results) {
            if (r.mode != mode) continue;
            (r.isolation == "in_process" ? in : out) = &r;
            char runner[16] = "-";
            if (r.cpu_runner >= 0) std::snprintf(runner, sizeof runner, "%.2f", r.cpu_runner);
            bench::note("%-7s %-10s %12s %9.0f %10s %10s %10s %8.2f %8s", mode.c_str(), r.isolation.c_str(),
                        human(r.events_per_s(), "").c_str(), r.ns_per_event(), ns(r.p50).c_str(), ns(r.p99).c_str(),
                        ns(r.p999).c_str(), r.cpu_host, runner);
        }
        if (in && out) {
            const std::string p = "pipeline.added." + mode + ".";
            bench::figure(p + "latency_p50", out->p50 - in->p50, "ns");
            bench::figure(p + "latency_p99", out->p99 - in->p99, "ns");
            bench::figure(p + "latency_p999", out->p999 - in->p999, "ns");
            bench::figure(p + "ns_per_event", out->ns_per_event() - in->ns_per_event(), "ns");
            bench::figure("pipeline.ratio." + mode + ".events_per_s", out->events_per_s() / in->events_per_s(), "x");
        }
    }
    bench::figure("pipeline.alarm_every", static_cast<double>(o.alarm_every), "events");
    bench::figure("pipeline.burst", static_cast<double>(o.burst), "events");
    bench::figure("pipeline.paced_rate", static_cast<double>(o.paced_rate), "events/s");
    bench::figure("pipeline.target.in_process_events_per_s", 1'000'000, "events/s");
    bench::figure("pipeline.target.process_events_per_s", 200'000, "events/s");
    bench::figure("pipeline.target.added_p99", 1'000'000, "ns");
    bench::figure("pipeline.errors", error.count, "count");
    return status || error.count ? 1 : 0;
}
