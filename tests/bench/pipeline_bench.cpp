// pipeline_bench: events/s through the in-process pipeline on one core.
//
// One device of bench_plugin (tests/bench/bench_plugin.c) in a core::device_runtime whose io_context runs on ONE
// thread, the whole process pinned to one CPU. Each command makes the device emit a burst of pre-encoded events
// (telemetry, and an alarm every --alarm-every events) in a tight loop; every event goes through the host's emit:
// the boundary check (msgpack parse and schema), the per-class code check, liveness bookkeeping, stamping (sequence,
// wall and monotonic receive time, gateway/plugin/device/class/site) and the sink. The sink here is a null sink: it
// counts, checks the sequence is gap-free and records latency, and keeps nothing.
//
// Two modes:
//   strand  the device emits from inside its command call, on the device strand (the io_context's one thread);
//   thread  the device emits from a thread the plugin started itself (emit is [thread: any]).
//
// Latency: the plugin writes CLOCK_MONOTONIC (std::chrono::steady_clock's clock on Linux) into the event's last
// 8 bytes immediately before host->emit; the host stamps received_monotonic just before it hands the event to the
// sink. latency = received_monotonic - plugin stamp: the host's own per-event work up to the sink (the sink's own
// work and the event's destruction come after it and are not included; they are in ns_per_event).
//
// Exit status 1 when an event was lost, refused or counted wrong; speed is never checked.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
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

#include "bench_common.hpp"

#ifndef BENCH_PLUGIN_PATH
#error "BENCH_PLUGIN_PATH must name the built bench_plugin"
#endif

namespace core = firelink::core;
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

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"firelink pipeline benchmark: events/s through the in-process pipeline into a null sink, one core"};
    std::uint64_t events = 2'000'000;
    std::uint64_t burst = 10'000;
    std::uint64_t alarm_every = 100;
    std::uint64_t warmup_bursts = 2;
    int cpu = 0;
    std::string plugin_path = BENCH_PLUGIN_PATH;
    std::vector<std::string> modes{"strand", "thread"};
    app.add_option("-n,--events", events, "events per mode (rounded up to whole bursts)")->check(CLI::PositiveNumber);
    app.add_option("-b,--burst", burst, "events per command (one tight loop in the plugin)")->check(CLI::PositiveNumber);
    app.add_option("--alarm-every", alarm_every, "every n-th event is an alarm (0: telemetry only)");
    app.add_option("--warmup-bursts", warmup_bursts, "unmeasured bursts before each mode");
    app.add_option("--cpu", cpu, "CPU to pin the process to (-1: do not pin)");
    app.add_option("--plugin", plugin_path, "the bench plugin");
    app.add_option("--modes", modes, "strand, thread, or both")
        ->check(CLI::IsMember({"strand", "thread"}))
        ->delimiter(',');
    CLI11_PARSE(app, argc, argv);

    bench::errors error;
    bench::print_header("pipeline_bench");
    // Pin first: every thread started later (the io thread, the runtime's watchdog, the plugin's burst thread)
    // inherits the mask.
    if (cpu >= 0) {
        if (bench::pin_to_cpu(cpu)) bench::note("pinned: the whole process runs on CPU %d (sched_setaffinity)", cpu);
        else bench::note("NOT pinned: sched_setaffinity(CPU %d) failed; figures may use more than one core", cpu);
    } else {
        bench::note("NOT pinned (--cpu -1)");
    }
    bench::note("latency = host received_monotonic (taken just before the sink) - plugin CLOCK_MONOTONIC stamp "
                "(taken just before host->emit); it covers emit's boundary check, code check and stamping");
    spdlog::set_level(spdlog::level::warn);

    if (burst > events) burst = events;
    const std::uint64_t bursts_per_mode = (events + burst - 1) / burst;

    boost::asio::io_context io;
    auto work = boost::asio::make_work_guard(io);
    std::thread io_thread([&] { io.run(); });  // ONE io thread: the device strand runs here

    null_sink sink;
    int status = 0;
    {
        core::plugin_loader loader;
        auto loaded = loader.load(plugin_path);
        if (auto *e = std::get_if<core::load_error>(&loaded)) {
            std::fprintf(stderr, "error: cannot load %s: %s\n", plugin_path.c_str(), e->what().c_str());
            work.reset();
            io_thread.join();
            return 1;
        }
        std::shared_ptr<core::plugin> plugin = std::move(std::get<std::unique_ptr<core::plugin>>(loaded));

        core::runtime_options options;
        options.gateway_id = "gw-bench";
        core::device_runtime runtime(io, [&sink](core::accepted_event &&ev) { sink(std::move(ev)); }, options);

        core::device_spec spec;
        spec.device_id = "bench-1";
        spec.driver_id = "bench";
        spec.config = pack_map({{"burst", msgpack::type::variant(burst)},
                                {"alarm_every", msgpack::type::variant(alarm_every)}});
        spec.site = {{"site", "bench-site"}, {"building", "A"}, {"floor", "3"}};
        std::string why;
        if (runtime.create(plugin, spec, why) != FL_OK || runtime.start("bench-1") != FL_OK) {
            std::fprintf(stderr, "error: cannot create/start the bench device: %s\n", why.c_str());
            work.reset();
            io_thread.join();
            return 1;
        }

        std::uint64_t commands = 0;
        // Runs n bursts in `mode` and waits for each one's command_result.
        auto run_bursts = [&](const std::string &mode, std::uint64_t n) {
            const std::string name = mode == "strand" ? "burst" : "thread_burst";
            for (std::uint64_t i = 0; i < n; ++i) {
                const auto cmd = make_command("c" + std::to_string(++commands), name);
                const auto expected = sink.results.load(std::memory_order_acquire) + 1;
                std::string cwhy;
                fl_status st;
                while ((st = runtime.command("bench-1", cmd, cwhy)) == FL_BUSY) std::this_thread::yield();
                if (st != FL_OK) {
                    error("%s burst %" PRIu64 ": command returned %d (%s)", mode.c_str(), i, st, cwhy.c_str());
                    return false;
                }
                for (auto r = sink.results.load(std::memory_order_acquire); r < expected;
                     r = sink.results.load(std::memory_order_acquire))
                    sink.results.wait(r, std::memory_order_acquire);
            }
            return true;
        };

        std::uint64_t total_bursts = 0;
        for (const auto &mode : modes) {
            if (!run_bursts(mode, warmup_bursts)) break;
            total_bursts += warmup_bursts;

            const auto before_events = sink.telemetry + sink.alarms;
            const auto before_loop = sink.loop_ns;
            sink.latency_ns.clear();
            sink.latency_ns.reserve(bursts_per_mode * burst);
            sink.record = true;
            const double cpu0 = bench::process_cpu_seconds();
            const auto t0 = steady::now();
            const bool ok = run_bursts(mode, bursts_per_mode);
            const auto t1 = steady::now();
            const double cpu1 = bench::process_cpu_seconds();
            sink.record = false;
            if (!ok) break;
            total_bursts += bursts_per_mode;

            const auto n = sink.telemetry + sink.alarms - before_events;
            const double wall = std::chrono::duration<double>(t1 - t0).count();
            const double loop = static_cast<double>(sink.loop_ns - before_loop) / 1e9;
            const std::string p = "pipeline." + mode + ".";
            bench::figure(p + "events", static_cast<double>(n), "events");
            bench::figure(p + "wall", wall, "s");
            bench::figure(p + "events_per_s", static_cast<double>(n) / wall, "events/s");
            bench::figure(p + "ns_per_event", wall * 1e9 / static_cast<double>(n), "ns");
            bench::figure(p + "emit_loop_events_per_s", static_cast<double>(n) / loop, "events/s");
            bench::figure(p + "cpu_seconds_per_wall_second", (cpu1 - cpu0) / wall, "cpu");
            bench::figure(p + "latency_samples", static_cast<double>(sink.latency_ns.size()), "events");
            bench::figure(p + "latency_p50", bench::percentile(sink.latency_ns, 50), "ns");
            bench::figure(p + "latency_p99", bench::percentile(sink.latency_ns, 99), "ns");
            bench::figure(p + "latency_p999", bench::percentile(sink.latency_ns, 99.9), "ns");
            bench::figure(p + "latency_max", bench::percentile(sink.latency_ns, 100), "ns");
            std::fflush(stdout);
        }

        const auto counters = runtime.counters("bench-1");
        runtime.stop("bench-1");
        runtime.destroy("bench-1");

        // Counts, never speed.
        const std::uint64_t expected_events = total_bursts * burst;
        const std::uint64_t expected_alarms = alarm_every ? expected_events / alarm_every : 0;
        error.expect_eq("telemetry + alarm events received", sink.telemetry + sink.alarms, expected_events);
        error.expect_eq("alarm events received", sink.alarms, expected_alarms);
        error.expect_eq("command_results received", sink.results.load(), total_bursts);
        error.expect_eq("events the plugin saw accepted (FL_OK)", sink.emitted, expected_events);
        error.expect_eq("emits the host did not accept", sink.failed, 0);
        error.expect_eq("command_results with ok=false", sink.results_not_ok, 0);
        error.expect_eq("other events", sink.other, 0);
        error.expect_eq("sequence gaps or reorders", sink.sequence_errors, 0);
        error.expect_eq("events without a valid stamp", sink.stamp_errors, 0);
        error.expect_eq("runtime accepted counter", counters.accepted,
                        expected_events + total_bursts + sink.host_results);
        error.expect_eq("runtime refused counter", counters.refused, 0);
        bench::figure("pipeline.telemetry_bytes", static_cast<double>(sink.telemetry_bytes), "bytes");
        bench::figure("pipeline.alarm_bytes", static_cast<double>(sink.alarm_bytes), "bytes");
        bench::figure("pipeline.alarm_every", static_cast<double>(alarm_every), "events");
        bench::figure("pipeline.burst", static_cast<double>(burst), "events");
        bench::figure("pipeline.events_checked", static_cast<double>(sink.telemetry + sink.alarms), "events");
        bench::figure("pipeline.busy_retries", static_cast<double>(sink.host_results), "count");
        bench::figure("pipeline.slow_callbacks", static_cast<double>(counters.slow_callbacks), "count");
        bench::figure("pipeline.target_events_per_s", 500000, "events/s");
        bench::figure("pipeline.errors", error.count, "count");
        status = error.count ? 1 : 0;
    }
    work.reset();
    io_thread.join();
    return status;
}
