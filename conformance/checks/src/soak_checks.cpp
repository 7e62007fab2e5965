// The soak check (level `soak`): the standard workload repeated for --duration, one device of each driver running
// throughout besides, with the process's memory, file descriptors and threads sampled over time. Growth that the
// short leak check (device.leaks) cannot see — a few bytes per event, a descriptor an hour — fails it.
#include <chrono>
#include <thread>

#include "checks.hpp"

namespace firelink::conform {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

struct sample {
    double at_s;
    std::size_t heap, fds, threads;
};

std::string kib(std::size_t b) { return std::to_string(b / 1024) + " KiB"; }

void soak(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "soak.workload");
    const auto duration = std::chrono::duration_cast<steady::duration>(o.soak_duration);
    // A tenth of the run warms caches up; then ten samples, evenly spaced.
    const auto warmup = duration / 10, every = (duration - warmup) / 10;
    // Long-lived devices, one per driver, ticking and fed their own bytes for the whole run.
    std::vector<std::unique_ptr<instance>> resident;
    for (const auto *drv : s.drivers) {
        auto in = std::make_unique<instance>(s.entry(), *drv, "soak-resident-" + drv->id);
        if (in->create(config_for(o, drv->id)) == FL_OK && in->start() == FL_OK) {
            in->deliver_open();
            resident.push_back(std::move(in));
        }
    }
    const auto t0 = steady::now();
    std::vector<sample> samples;
    auto next_sample = t0 + warmup;
    std::size_t cycles = 0;
    while (steady::now() - t0 < duration || samples.size() < 2) {
        for (const auto *drv : s.drivers) {
            instance in(s.entry(), *drv, "soak-1");
            if (in.create(config_for(o, drv->id)) != FL_OK) continue;
            findings ignored;  // the workload's own findings are the standard checks'
            exercise(in, rng, ignored, 4);
            in.destroy();
            ++cycles;
        }
        for (auto &in : resident) {
            in->tick();
            auto echo = in->host().take_written();
            if (in->transport() && !echo.empty()) in->on_data(echo.data(), echo.size());
            in->host().forget_events();
        }
        // A soak is about time, not speed: about a hundred cycles a second keeps a leak's growth readable and a
        // leaking plugin from exhausting the machine within seconds.
        std::this_thread::sleep_for(10ms);
        if (steady::now() >= next_sample) {
            samples.push_back({std::chrono::duration<double>(steady::now() - t0).count(), heap_in_use(), open_fds(),
                               thread_count()});
            next_sample += std::max<steady::duration>(every, 1ms);
        }
    }
    for (auto &in : resident) {
        in->stop();
        in->destroy();
    }
    const sample &first = samples.front(), &last = samples.back();
    // Growth only counts when it keeps on: each half of the samples ends higher than it began.
    const std::size_t mid = samples.size() / 2;
    auto grows = [&](auto field) {
        return field(samples[mid]) > field(first) && field(last) > field(samples[mid]);
    };
    const double span = last.at_s - first.at_s;
    if (last.fds > first.fds)
        f.fail(std::to_string(last.fds - first.fds) + " more file descriptor(s) open after " + std::to_string(cycles) +
               " workload cycles (" + std::to_string(first.fds) + " -> " + std::to_string(last.fds) + " over " +
               std::to_string(static_cast<int>(span)) + " s) (FL-PLUGIN-20)");
    if (last.threads > first.threads)
        f.fail(std::to_string(last.threads - first.threads) + " more thread(s) running after " + std::to_string(cycles) +
               " workload cycles (FL-PLUGIN-21)");
    // Allocator noise stays far below this; a leak of a few hundred bytes per cycle passes it within seconds.
    constexpr std::size_t slack = 256 * 1024;
    if (last.heap > first.heap + slack && grows([](const sample &x) { return x.heap; }))
        f.fail("the heap grew by " + kib(last.heap - first.heap) + " over " + std::to_string(static_cast<int>(span)) +
               " s and " + std::to_string(cycles) + " workload cycles, and kept growing (" + kib(first.heap) + " -> " +
               kib(samples[mid].heap) + " -> " + kib(last.heap) + ") (FL-PLUGIN-20)");
    f.note(std::to_string(cycles) + " workload cycles and " + std::to_string(resident.size()) + " resident device(s) over " +
           std::to_string(static_cast<int>(std::chrono::duration<double>(steady::now() - t0).count())) + " s; heap " +
           kib(first.heap) + " -> " + kib(last.heap) + ", fds " + std::to_string(first.fds) + " -> " +
           std::to_string(last.fds) + ", threads " + std::to_string(first.threads) + " -> " +
           std::to_string(last.threads));
}

}  // namespace

void add_soak_checks(std::vector<check> &v) {
    v.push_back({"soak.workload", {"FL-PLUGIN-20", "FL-PLUGIN-21"}, level::soak,
                 "the workload repeated for --duration with devices running throughout: memory, file descriptors and "
                 "threads sampled over time do not grow",
                 soak});
}

}  // namespace firelink::conform
