#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <variant>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <msgpack.hpp>
#include <spdlog/spdlog.h>

#include <firelink/core/device_runtime.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/core/plugin_loader.hpp>

#include "commands.hpp"

namespace firelink::cli {

namespace asio = boost::asio;

namespace {

// key=value pairs to a msgpack map; a value is an integer, a number, true/false, or else a string.
bool settings_to_config(const std::vector<std::string> &settings, std::vector<std::uint8_t> &out) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(static_cast<std::uint32_t>(settings.size()));
    for (const auto &kv : settings) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
            std::fprintf(stderr, "firelink-host: --set %s: expected key=value\n", kv.c_str());
            return false;
        }
        const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
        pk.pack(key);
        std::int64_t i = 0;
        double d = 0;
        const char *b = value.data(), *e = value.data() + value.size();
        if (auto [p, ec] = std::from_chars(b, e, i); ec == std::errc() && p == e && !value.empty()) pk.pack(i);
        else if (auto [p2, ec2] = std::from_chars(b, e, d); ec2 == std::errc() && p2 == e && !value.empty()) pk.pack(d);
        else if (value == "true" || value == "false") pk.pack(value == "true");
        else pk.pack(value);
    }
    out.assign(reinterpret_cast<const std::uint8_t *>(buf.data()),
               reinterpret_cast<const std::uint8_t *>(buf.data()) + buf.size());
    return true;
}

struct tally {
    std::mutex mutex;
    std::map<std::string, std::map<std::string, std::uint64_t>> kinds;  // device -> kind -> count
};

}  // namespace

int try_plugins(const try_options &opt) {
    std::vector<std::uint8_t> config;
    if (!settings_to_config(opt.settings, config)) return 2;

    core::plugin_loader loader;
    std::vector<std::shared_ptr<core::plugin>> plugins;
    std::size_t refused = 0;
    std::vector<std::string> failures;
    for (const auto &path : opt.paths)
        for (const auto &file : core::plugin_loader::candidates(path)) {
            auto result = loader.load(file);
            if (!result) {
                std::fprintf(stderr, "refused %s: %s\n", file.c_str(), result.error().what().c_str());
                failures.push_back("refused " + file.string());
                ++refused;
                continue;
            }
            plugins.push_back(std::move(result).value());
        }

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) threads.emplace_back([&io] { io.run(); });

    tally counts;
    std::mutex print_mutex;
    {
        core::device_runtime runtime(io, [&](core::accepted_event &&ev) {
            {
                std::lock_guard lock(counts.mutex);
                counts.kinds[ev.device_id][ev.kind]++;
            }
            if (opt.quiet) return;
            const auto json = core::msgpack_to_json(ev.payload.data(), ev.payload.size());
            std::lock_guard lock(print_mutex);
            std::printf("{\"device\":\"%s\",\"seq\":%llu,\"event\":%s}\n", ev.device_id.c_str(),
                        static_cast<unsigned long long>(ev.sequence), json.c_str());
            std::fflush(stdout);
        });

        for (auto &p : plugins) {
            const auto stem = p->info().file.stem().string();
            for (const auto &d : p->info().drivers) {
                if (!opt.drivers.empty() &&
                    std::find(opt.drivers.begin(), opt.drivers.end(), d.id) == opt.drivers.end())
                    continue;
                const auto device_id = stem + "." + d.id;
                if (auto created = runtime.create(p, d.id, device_id, config); !created) {
                    std::fprintf(stderr, "device %s not created: %s\n", device_id.c_str(), created.why().c_str());
                    failures.push_back("device " + device_id + " not created");
                    continue;
                }
                if (auto started = runtime.start(device_id); !started) {
                    std::fprintf(stderr, "device %s did not start: %s\n", device_id.c_str(), started.why().c_str());
                    failures.push_back("device " + device_id + " did not start");
                }
            }
        }
        if (runtime.device_ids().empty()) failures.push_back("no device ran");

        // Run until the deadline or a signal.
        std::mutex m;
        std::condition_variable cv;
        bool done = false;
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](const boost::system::error_code &ec, int sig) {
            if (ec) return;
            spdlog::info("signal {}: stopping", sig);
            std::lock_guard lock(m);
            done = true;
            cv.notify_all();
        });
        {
            std::unique_lock lock(m);
            if (opt.seconds > 0)
                cv.wait_for(lock, std::chrono::duration<double>(opt.seconds), [&] { return done; });
            else
                cv.wait(lock, [&] { return done; });
        }
        signals.cancel();
        runtime.stop_all();

        std::printf("summary: %zu plugin(s) loaded, %zu refused, %zu device(s)\n", plugins.size(), refused,
                    runtime.device_ids().size());
        for (const auto &id : runtime.device_ids()) {
            const auto c = runtime.counters(id);
            std::string kinds;
            {
                std::lock_guard lock(counts.mutex);
                for (const auto &[k, n] : counts.kinds[id]) kinds += (kinds.empty() ? "" : ", ") + k + " " + std::to_string(n);
            }
            std::printf("  %s: %llu event(s) accepted (%s), %llu refused, %llu slow callback(s)\n", id.c_str(),
                        static_cast<unsigned long long>(c.accepted), kinds.empty() ? "none" : kinds.c_str(),
                        static_cast<unsigned long long>(c.refused), static_cast<unsigned long long>(c.slow_callbacks));
            if (c.accepted < opt.expect_events)
                failures.push_back(id + " emitted " + std::to_string(c.accepted) + " event(s), expected at least " +
                                   std::to_string(opt.expect_events));
            if (c.refused > 0) failures.push_back(id + " emitted " + std::to_string(c.refused) + " invalid event(s)");
        }
        runtime.destroy_all();
    }
    work.reset();
    io.stop();
    for (auto &t : threads) t.join();

    if (failures.empty()) {
        std::printf("expectations: met\n");
        return 0;
    }
    std::printf("expectations: NOT met\n");
    for (const auto &f : failures) std::printf("  - %s\n", f.c_str());
    return 1;
}

}  // namespace firelink::cli
