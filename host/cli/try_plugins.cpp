// `firelink-host try`: a vendor's bench run of a plugin's drivers, without a site file. Its devices are made from a
// site built in memory (try_wire.hpp) as `run` makes them: the wires by site_wiring, each device by spec_of.
#include <algorithm>
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
#include "component_options.hpp"
#include "reconfigure.hpp"
#include "site_wiring.hpp"
#include "try_wire.hpp"

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
    if (const auto problem = wire_usage_problem(opt.wire); !problem.empty()) {
        std::fprintf(stderr, "firelink-host: %s\n", problem.c_str());
        return 2;
    }

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

    // One device per driver (of those --driver names), named after its file: "hello-c.hello".
    std::vector<tried_device> devices;
    for (auto &p : plugins)
        for (const auto &d : p->info().drivers)
            if (opt.drivers.empty() || std::find(opt.drivers.begin(), opt.drivers.end(), d.id) != opt.drivers.end())
                devices.push_back({p, &d, p->info().file.stem().string() + "." + d.id});
    for (const auto &id : opt.drivers)
        if (std::none_of(devices.begin(), devices.end(), [&](const auto &d) { return d.driver->id == id; })) {
            std::fprintf(stderr, "no loaded plugin has driver '%s'\n", id.c_str());
            failures.push_back("no loaded plugin has driver '" + id + "'");
        }
    const auto wire = wire_option_text(opt.wire);
    if (!wire.empty() && devices.size() > 1) {
        std::string ids;
        for (const auto &d : devices) ids += (ids.empty() ? "" : ", ") + d.driver->id;
        std::fprintf(stderr, "firelink-host: %s is the wire of one device, and there are %zu drivers (%s): name one "
                             "with --driver ID\n",
                     wire.c_str(), devices.size(), ids.c_str());
        return 2;
    }
    // A driver that talks to its device cannot run without a wire (its create would be refused): say how to give one.
    if (wire.empty())
        std::erase_if(devices, [&](const tried_device &d) {
            if (!needs_wire(*d.driver)) return false;
            std::fprintf(stderr, "device %s not created: driver '%s' needs a wire: give it one with %s\n", d.id.c_str(),
                         d.driver->id.c_str(), wire_choices_text);
            failures.push_back("device " + d.id + " not created: it needs a wire");
            return true;
        });
    auto site = site_of(opt.wire, devices, config);
    if (!site) {
        std::fprintf(stderr, "firelink-host: %s\n", site.why().c_str());
        return 2;
    }
    const auto &cfg = site->cfg;
    if (!site->note.empty()) spdlog::info("{}: {}", wire, site->note);

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) threads.emplace_back([&io] { io.run(); });

    tally counts;
    std::mutex print_mutex;
    {
        // The wires as `run` makes them from a site; declared before the runtime, so they outlive its devices.
        site_wiring wires(io);
        core::device_runtime runtime(
            io,
            [&](core::accepted_event &&ev) {
                {
                    std::lock_guard lock(counts.mutex);
                    counts.kinds[ev.device_id][ev.kind]++;
                }
                // Kept once printed (at once with --quiet: kept nowhere), as `run`'s pipeline reports it to a driver
                // that takes commit notifications (firelink.commit/1): a fire panel's frame is confirmed only then.
                if (!opt.quiet) {
                    const auto json = core::msgpack_to_json(ev.payload.data(), ev.payload.size());
                    std::lock_guard lock(print_mutex);
                    std::printf("{\"device\":\"%s\",\"seq\":%llu,\"event\":%s}\n", ev.device_id.c_str(),
                                static_cast<unsigned long long>(ev.sequence), json.c_str());
                    std::fflush(stdout);
                }
                if (ev.on_durable) ev.on_durable();
            },
            runtime_options_of(cfg));

        for (std::size_t i = 0; i < cfg.devices.size(); ++i) {
            const auto &d = cfg.devices[i];
            const auto &plugin = devices[i].plugin;
            auto spec = spec_of(cfg, d);
            auto link = wires.factory(cfg, d);
            if (!link) {
                std::fprintf(stderr, "device %s did not start: %s\n", d.id.c_str(), link.why().c_str());
                failures.push_back("device " + d.id + " did not start");
                continue;
            }
            spec.make_link = std::move(*link);
            if (!spec.wire_name.empty()) spdlog::info("device {}: {}", d.id, spec.wire_name);
            if (auto created = runtime.create(plugin, spec); !created) {
                std::fprintf(stderr, "device %s not created: %s\n", d.id.c_str(), created.why().c_str());
                failures.push_back("device " + d.id + " not created");
                continue;
            }
            if (d.wire.type == site::wire_config::kind::listener) {
                // Before the device starts, so that its first connection is not turned away unidentified; a
                // connection claiming its identity while it is connected is its fault, as `run` reports it.
                auto listener = wires.listener(d.wire.listener);
                if (!d.wire.identity.empty())
                    listener->set_identifier(identifier_for(plugin, d.driver, d.id, site->learns_identity));
                listener->set_conflict_handler([&runtime, id = d.id](const std::string &, const std::string &,
                                                                     const std::string &what) {
                    runtime.raise_fault(id, core::host_fault::identity_conflict, what);
                });
            }
            if (auto started = runtime.start(d.id); !started) {
                std::fprintf(stderr, "device %s did not start: %s\n", d.id.c_str(), started.why().c_str());
                failures.push_back("device " + d.id + " did not start");
                continue;
            }
            // As `run` says it: from here its wire takes the device's connection (a listener's no sooner).
            spdlog::info("device {} ({} / {}) started", d.id, d.driver, d.device_class);
        }
        if (runtime.device_ids().empty()) failures.push_back("no device ran");

        // Run until the deadline or a signal; at once to the summary when nothing runs.
        std::mutex m;
        std::condition_variable cv;
        bool done = runtime.device_ids().empty();
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
        wires.stop_accepting();  // a device that reconnects meanwhile is not accepted only to be closed
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
