// modbus_bench: polls/s of one RS-485 bus carrying 32 Modbus devices (default), at 9600 and 115200 baud, in
// simulated time.
//
// The bus is a discrete-event model with the host's turn rules (docs/deployment.md, "Fixed transport timings"): one
// turn at a time, round-robin, each turn = the inter-frame gap (the larger of the bus's inter_frame_gap_ms and the
// RTU silent interval of 3.5 characters), the request on the wire, the device's turnaround, the reply on the wire;
// a dead device's turn lasts its reply timeout. Wire time is 11 bits a character (8 data, start, stop, parity or a
// second stop). The devices are the three reference models (plugins/modbus_maps/include/firelink/modbus/maps/*.hpp)
// in turn; each poll cycle reads each device's poll blocks as its driver plans them
// (plugins/modbus_maps/include/firelink/modbus/register_map.hpp), and every frame is really built, CRC'd, served
// by a register bank and decoded by the SDK codec, so a wrong frame fails the run. The simulated clock never reads the
// machine's clock; the CPU time the codec took is printed apart.
//
// Exit status 1 when a reply does not decode or does not match its request; speed is never checked.
#include <time.h>

#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <firelink/proto/modbus.hpp>

#include <firelink/modbus/maps/arc_fault_breaker.hpp>
#include <firelink/modbus/maps/gas_shutoff_valve.hpp>
#include <firelink/modbus/maps/pyrolysis_detector.hpp>
#include "bench_common.hpp"

namespace mb = firelink::proto::modbus;
namespace md = firelink::modbus_driver;

namespace {

std::int64_t thread_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

struct sim_device {
    std::uint8_t unit;
    std::string model;
    std::vector<md::poll_block> blocks;
    mb::register_bank bank;
    bool dead = false;
};

std::vector<md::poll_block> plan(const md::register_map &m, const md::map_schema &schema) {
    std::vector<std::string> reads;
    for (const auto &r : schema)
        if (r.kind != md::role::command_register && r.kind != md::role::command_coil) reads.push_back(r.name);
    return md::plan_polls(m, reads);
}

std::vector<sim_device> make_devices(int n, int dead) {
    std::vector<sim_device> out;
    for (int i = 0; i < n; ++i) {
        sim_device d;
        d.unit = static_cast<std::uint8_t>(i + 1);
        switch (i % 3) {
        case 0: d.model = "gas"; d.blocks = plan(firelink::gas_shutoff_valve::reference_map(), firelink::gas_shutoff_valve::schema()); break;
        case 1: d.model = "breaker"; d.blocks = plan(firelink::arc_fault_breaker::reference_map(), firelink::arc_fault_breaker::schema()); break;
        default: d.model = "pyrolysis"; d.blocks = plan(firelink::pyrolysis_detector::reference_map(), firelink::pyrolysis_detector::schema()); break;
        }
        d.bank.input.assign(32, static_cast<std::uint16_t>(i));
        d.bank.holding.assign(8, 0);
        d.bank.coils.assign(8, false);
        d.dead = i < dead;
        out.push_back(std::move(d));
    }
    return out;
}

struct result {
    double sim_seconds = 0;
    std::uint64_t polls = 0, requests = 0, timeouts = 0, bytes = 0, errors = 0;
    double codec_cpu_ns = 0;
};

// Runs `cycles` poll cycles in simulated time.
result run(std::vector<sim_device> &devs, std::uint32_t baud, double gap_ms, double turnaround_ms, double timeout_ms, int cycles) {
    result r;
    double t_us = 0;
    const double gap_us = std::max(gap_ms * 1000.0, static_cast<double>(mb::rtu_silent_interval_us(baud)));
    const auto cpu0 = thread_cpu_ns();
    for (int c = 0; c < cycles; ++c) {
        for (auto &d : devs) {
            bool ok = true;
            for (const auto &b : d.blocks) {
                const auto req = b.request();
                const auto frame = mb::rtu_frame(d.unit, mb::encode_request(req).value());
                t_us += gap_us + mb::rtu_wire_time_us(frame.size(), baud);
                r.bytes += frame.size();
                ++r.requests;
                if (d.dead) {
                    t_us += timeout_ms * 1000.0;
                    ++r.timeouts;
                    ok = false;
                    break;  // the driver abandons the cycle at a timeout
                }
                // The device: decode the request off the wire, serve it, frame the reply.
                mb::rtu_stream in{mb::direction::request};
                in.feed(frame);
                auto got = in.next();
                if (!got || got->unit != d.unit) { ++r.errors; ok = false; break; }
                const auto reply = mb::rtu_frame(d.unit, d.bank.serve(got->pdu));
                t_us += turnaround_ms * 1000.0 + mb::rtu_wire_time_us(reply.size(), baud);
                r.bytes += reply.size();
                // The driver: length from the header, CRC, PDU, and the match against its request.
                auto len = mb::rtu_frame_length(reply, mb::direction::response);
                auto adu = mb::decode_rtu(reply);
                if (!len || *len != reply.size() || !adu) { ++r.errors; ok = false; break; }
                auto rsp = mb::decode_response(adu->pdu);
                if (!rsp) { ++r.errors; ok = false; break; }
                auto value = std::move(rsp).value();
                if (mb::match_response(req, value) || value.exception) { ++r.errors; ok = false; break; }
            }
            if (ok) ++r.polls;
        }
    }
    r.codec_cpu_ns = static_cast<double>(thread_cpu_ns() - cpu0);
    r.sim_seconds = t_us / 1e6;
    return r;
}

}  // namespace

int main(int argc, char **argv) {
    CLI::App app{"modbus_bench: polls/s of one RS-485 bus of Modbus devices, in simulated time"};
    int devices = 32, cycles = 100, dead_max = 1;
    std::vector<std::uint32_t> bauds{9600, 115200};
    std::vector<double> gaps{5, 0};
    double turnaround = 5, timeout = 500;
    app.add_option("--devices", devices, "devices on the bus")->check(CLI::Range(1, 247));
    app.add_option("--cycles", cycles, "poll cycles simulated per scenario")->check(CLI::Range(1, 1000000));
    app.add_option("--bauds", bauds, "line speeds")->delimiter(',');
    app.add_option("--gaps", gaps, "inter_frame_gap_ms values (the 3.5-character silent interval is the floor)")->delimiter(',');
    app.add_option("--turnaround-ms", turnaround, "a device's time from the end of a request to its reply");
    app.add_option("--dead", dead_max, "also run with 1..N dead devices (0: none)")->check(CLI::Range(0, 247));
    app.add_option("--dead-timeout-ms", timeout, "the reply timeout a dead device costs per turn");
    CLI11_PARSE(app, argc, argv);

    bench::print_header("modbus_bench");
    bench::note("%d devices (gas, breaker, pyrolysis reference maps in turn), %d cycles, turnaround %.1f ms, dead timeout %.0f ms",
                devices, cycles, turnaround, timeout);
    std::uint64_t errors = 0;
    for (auto baud : bauds)
        for (double gap : gaps)
            for (int dead : {0, dead_max}) {
                auto devs = make_devices(devices, dead);
                const auto r = run(devs, baud, gap, turnaround, timeout, cycles);
                errors += r.errors;
                char name[96];
                std::snprintf(name, sizeof name, "bus.%u_baud.gap_%gms.dead_%d", baud, gap, dead);
                const std::string n = name;
                bench::figure(n + ".polls_per_s", static_cast<double>(r.polls) / r.sim_seconds, "polls/s");
                bench::figure(n + ".requests_per_s", static_cast<double>(r.requests) / r.sim_seconds, "requests/s");
                bench::figure(n + ".cycle_ms", r.sim_seconds * 1000.0 / cycles, "ms");
                bench::figure(n + ".wire_utilisation", static_cast<double>(r.bytes) * 11 / baud / r.sim_seconds * 100, "%");
                bench::figure(n + ".codec_cpu_per_request", r.codec_cpu_ns / static_cast<double>(r.requests), "ns");
                if (dead_max == 0) break;
            }
    if (errors) {
        std::fprintf(stderr, "modbus_bench: %" PRIu64 " replies did not decode or match\n", errors);
        return 1;
    }
    return 0;
}
