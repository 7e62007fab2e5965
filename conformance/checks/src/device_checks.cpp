// Instance-level checks: each driver of the plugin is created with its config (--config, else the empty map) and
// driven through the C ABI by the suite's own host (test_host.hpp).
#include <algorithm>
#include <chrono>
#include <thread>

#include <firelink/payload.h>

#include "checks.hpp"

namespace firelink::conform {

using namespace std::chrono_literals;

session::session(const run_options &o, findings &f) {
    plugin = load_plugin(o, f);
    if (!plugin) return;
    if (const fl_status st = plugin->init(host.abi()); st != FL_OK) {
        f.fail("init failed: " + status_name(st));
        plugin.reset();
        return;
    }
    for (const auto &drv : plugin->info().drivers) {
        instance probe(plugin->entry(), drv, "probe-1");
        if (probe.create(config_for(o, drv.id)) == FL_OK) drivers.push_back(&drv);
    }
    if (drivers.empty()) f.skip("no driver takes its config; give one with --config DRIVER=FILE");
}

std::vector<std::uint8_t> command_bytes(const std::string &id, const std::string &name, bool by_operator) {
    return command_bytes(id, name, by_operator ? std::map<std::string, std::string>{{"operator", "firelink-conform"}}
                                               : std::map<std::string, std::string>{});
}

std::vector<std::uint8_t> command_bytes(const std::string &id, const std::string &name,
                                        const std::map<std::string, std::string> &args) {
    std::size_t size = 64 + id.size() + name.size();
    for (const auto &[k, v] : args) size += 16 + k.size() + v.size();
    std::vector<std::uint8_t> buf(size);
    fl_mp_writer w;
    fl_mp_writer_init(&w, buf.data(), buf.size());
    fl_mp_map(&w, 3);
    fl_mp_kv_str(&w, "id", id.c_str());
    fl_mp_kv_str(&w, "name", name.c_str());
    fl_mp_str(&w, "args");
    fl_mp_map(&w, static_cast<std::uint32_t>(args.size()));
    for (const auto &[k, v] : args) fl_mp_kv_str(&w, k.c_str(), v.c_str());
    buf.resize(w.len);
    return buf;
}

void report_host(const std::string &drv, device_host &h, findings &f) {
    for (const auto &v : h.violations()) f.fail("driver '" + drv + "': " + v);
}

// Feeds `bytes` in random chunks (a third of them a single byte), with the link state flapping now and then.
void feed_chunked(instance &in, const std::vector<std::uint8_t> &bytes, std::mt19937_64 &rng, bool flap) {
    std::size_t at = 0;
    while (at < bytes.size()) {
        std::size_t n = rng() % 3 == 0 ? 1 : 1 + rng() % 64;
        n = std::min(n, bytes.size() - at);
        in.on_data(bytes.data() + at, n);
        at += n;
        if (flap && rng() % 97 == 0) {
            static const std::int32_t states[] = {FL_LINK_LOST, FL_LINK_FAILED, FL_LINK_REPLY_TIMEOUT};
            in.on_state(states[rng() % 3], FL_IO);
            in.on_state(FL_LINK_OPEN, FL_OK);
        }
    }
}

bool start_open(instance &in, findings &f, const std::string &where) {
    if (in.start() != FL_OK) {
        f.fail("driver '" + in.driver().id + "': start" + where + " failed");
        return false;
    }
    in.deliver_open();
    return true;
}

// The standard workload: start, open the link, tick, echo the device's own writes back with noise, a command it
// does not know, stop, restart, stop. Returns false when start failed.
bool exercise(instance &in, std::mt19937_64 &rng, findings &f, int ticks) {
    if (const fl_status st = in.start(); st != FL_OK) {
        f.fail("driver '" + in.driver().id + "': start returned " + status_name(st));
        return false;
    }
    in.deliver_open();
    for (int i = 0; i < ticks; ++i) {
        in.tick();
        auto echo = in.host().take_written();
        auto noise = random_bytes(rng, rng() % 48);
        echo.insert(echo.end(), noise.begin(), noise.end());
        if (in.transport()) feed_chunked(in, echo, rng, false);
        if (i == ticks / 2 && in.transport()) {
            in.on_state(FL_LINK_REPLY_TIMEOUT, FL_TIMEOUT);
            in.on_state(FL_LINK_LOST, FL_IO);
            in.on_state(FL_LINK_OPEN, FL_OK);
        }
    }
    const fl_status cst = in.command(command_bytes("conform-1", "x.conformance.no_such_command"));
    if (cst != FL_UNSUPPORTED)
        f.fail("driver '" + in.driver().id + "': an unknown command returned " + status_name(cst) +
               ", not FL_UNSUPPORTED (FL-PLUGIN-30)");
    in.stop();
    if (in.start() == FL_OK) {
        in.deliver_open();
        in.tick();
        in.stop();
    }
    return true;
}

namespace {


// ---- device.create -----------------------------------------------------------------------------------------
void create(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    plugin_host host;
    if (p->init(host.abi()) != FL_OK) return f.fail("init failed");
    const auto &e = p->entry();
    std::size_t created = 0;
    for (const auto &drv : p->info().drivers) {
        instance in(e, drv, "create-1");
        const auto &cfg = config_for(o, drv.id);
        const fl_status st = in.create(cfg);
        if (st != FL_OK) {
            if (in.device()) f.fail("driver '" + drv.id + "': create_device failed but set *out_device (FL-PLUGIN-17)");
            if (in.host().logs().empty())
                f.fail("driver '" + drv.id + "': create_device returned " + status_name(st) + " without logging why");
            f.warn("driver '" + drv.id + "' refuses " + (cfg.empty() ? "an empty config" : "the given config") +
                   " (" + status_name(st) + (in.host().logs().empty() ? "" : ": " + in.host().logs().front()) +
                   "); give one with --config " + drv.id + "=FILE");
            continue;
        }
        ++created;
        const fl_device *d = in.device();
        if (!d) {
            f.fail("driver '" + drv.id + "': create_device returned FL_OK and no instance");
            continue;
        }
        if (d->struct_size < FL_V1_0_SIZEOF_DEVICE)
            f.fail("driver '" + drv.id + "': fl_device.struct_size " + std::to_string(d->struct_size) + " < v1.0");
        if (!d->start || !d->stop || !d->destroy || !d->command || !d->get_extension) {
            f.fail("driver '" + drv.id + "': fl_device has NULL function pointers (FL-PLUGIN-17)");
            continue;
        }
        if (in.host().event_count()) f.fail("driver '" + drv.id + "' emitted during create_device (FL-PLUGIN-18)");
        if (in.host().open_requested()) f.fail("driver '" + drv.id + "' opened its wire in create_device (FL-PLUGIN-18)");
        if (in.needs_wire() && !in.transport())
            f.fail("driver '" + drv.id + "' declares wires but returns no " FL_EXT_TRANSPORT " (FL-PLUGIN-31)");
        if (in.start() == FL_OK) {
            if (!in.host().active_timers().empty() && !in.timer())
                f.fail("driver '" + drv.id + "' starts timers but returns no " FL_EXT_TIMER " (FL-PLUGIN-31)");
            in.stop();
        }
        report_host(drv.id, in.host(), f);
    }
    // An unknown driver id: FL_NOT_FOUND, no instance.
    device_host dh("create-2", "fire_panel", FL_TRANSPORT_SERIAL);
    const fl_device *dev = nullptr;
    const fl_status st = e.create_device("x-conformance-no-such-driver", dh.abi(), nullptr, 0, &dev);
    if (st != FL_NOT_FOUND) f.fail("an unknown driver id returned " + status_name(st) + ", not FL_NOT_FOUND (FL-PLUGIN-17)");
    if (dev) {
        f.fail("an unknown driver id returned an instance");
        if (dev->destroy) dev->destroy(dev);
    }
    p->deinit();
    if (!created && !f.failed()) f.skip("no driver takes its config; give one with --config DRIVER=FILE");
}

// ---- device.misuse -----------------------------------------------------------------------------------------
void misuse(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    for (const auto *drv : s.drivers) {
        const std::string name = "driver '" + drv->id + "': ";
        instance in(s.entry(), *drv, "misuse-1");
        if (in.create(config_for(o, drv->id)) != FL_OK) continue;
        const fl_device *d = in.device();
        const auto cmd = command_bytes("misuse-cmd", "x.conformance.probe");
        auto expect_misuse = [&](fl_status st, const char *what) {
            if (st != FL_MISUSE) f.fail(name + what + " returned " + status_name(st) + ", not FL_MISUSE");
        };
        // created
        expect_misuse(d->stop(d), "stop in state created");
        expect_misuse(d->command(d, cmd.data(), cmd.size()), "command in state created");
        const std::uint8_t byte = 0x55;
        if (in.transport()) {
            in.transport()->on_data(d, &byte, 1);
            in.transport()->on_state(d, FL_LINK_OPEN, FL_OK);
        }
        if (in.timer()) in.timer()->on_timer(d, 1);
        // started
        if (const fl_status st = in.start(); st != FL_OK) {
            f.fail(name + "start returned " + status_name(st));
            continue;
        }
        in.deliver_open();
        expect_misuse(d->start(d), "a second start");
        if (in.stop() != FL_OK) f.fail(name + "stop in state started failed");
        // stopped
        expect_misuse(d->stop(d), "stop in state stopped");
        expect_misuse(d->command(d, cmd.data(), cmd.size()), "command in state stopped");
        if (in.transport()) {
            in.transport()->on_data(d, &byte, 1);
            in.transport()->on_state(d, FL_LINK_LOST, FL_IO);
        }
        if (in.timer()) in.timer()->on_timer(d, 1);
        // stopped -> started again
        if (const fl_status st = in.start(); st != FL_OK) f.fail(name + "start after stop returned " + status_name(st));
        else if (in.stop() != FL_OK) f.fail(name + "stop after restart failed");
        in.destroy();
        report_host(drv->id, in.host(), f);
    }
}

// ---- device.destroy_any_state ------------------------------------------------------------------------------
void destroy_any_state(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    for (const auto *drv : s.drivers) {
        for (int state = 0; state < 3; ++state) {
            instance in(s.entry(), *drv, "destroy-1");
            if (in.create(config_for(o, drv->id)) != FL_OK) continue;
            if (state >= 1 && in.start() == FL_OK) {
                in.deliver_open();
                in.tick();
            }
            if (state == 2) in.stop();
            const fl_device *d = in.device();
            in.destroy();  // from created, started, stopped
            (void)d;
            report_host(drv->id, in.host(), f);
        }
        instance in(s.entry(), *drv, "destroy-2");
        if (in.create(config_for(o, drv->id)) == FL_OK) in.device()->destroy(nullptr);  // a harmless no-op
    }
}

// ---- device.null_arguments (strict) ------------------------------------------------------------------------
void null_arguments(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    const auto &e = s.entry();
    for (const auto *drv : s.drivers) {
        const std::string name = "driver '" + drv->id + "': ";
        device_host dh("null-1", drv->device_class, transport_kind_for(drv->wires));
        const fl_device *out = nullptr;
        if (fl_status st = e.create_device(nullptr, dh.abi(), nullptr, 0, &out); st != FL_MISUSE || out)
            f.fail(name + "create_device(NULL driver id) returned " + status_name(st));
        if (fl_status st = e.create_device(drv->id.c_str(), nullptr, nullptr, 0, &out); st != FL_MISUSE || out)
            f.fail(name + "create_device(NULL host) returned " + status_name(st));
        if (fl_status st = e.create_device(drv->id.c_str(), dh.abi(), nullptr, 0, nullptr); st != FL_MISUSE)
            f.fail(name + "create_device(NULL out_device) returned " + status_name(st));
        if (fl_status st = e.create_device(drv->id.c_str(), dh.abi(), nullptr, 4, &out); st != FL_MISUSE || out)
            f.fail(name + "create_device(NULL config of size 4) returned " + status_name(st));
        if (out && out->destroy) out->destroy(out);
        instance in(e, *drv, "null-2");
        if (in.create(config_for(o, drv->id)) != FL_OK) continue;
        const fl_device *d = in.device();
        if (fl_status st = d->start(nullptr); st != FL_MISUSE) f.fail(name + "start(NULL) returned " + status_name(st));
        if (d->get_extension(d, nullptr)) f.fail(name + "get_extension(NULL id) returned non-NULL");
        if (in.start() == FL_OK) {
            if (fl_status st = d->stop(nullptr); st != FL_MISUSE) f.fail(name + "stop(NULL) returned " + status_name(st));
            if (fl_status st = d->command(d, nullptr, 8); st != FL_MISUSE)
                f.fail(name + "command(NULL bytes of size 8) returned " + status_name(st));
            if (fl_status st = d->command(nullptr, nullptr, 0); st != FL_MISUSE)
                f.fail(name + "command(NULL device) returned " + status_name(st));
            if (in.transport()) in.transport()->on_data(d, nullptr, 0);
            in.stop();
        }
    }
}

// ---- device.config_garbage ---------------------------------------------------------------------------------
void config_garbage(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    plugin_host host;
    if (p->init(host.abi()) != FL_OK) return f.fail("init failed");
    auto rng = rng_for(o, "device.config_garbage");
    struct trial {
        std::string what;
        std::vector<std::uint8_t> bytes;
        bool must_refuse;
    };
    std::vector<trial> trials;
    auto mp = [](auto &&write) {
        std::vector<std::uint8_t> buf(2u << 20);
        fl_mp_writer w;
        fl_mp_writer_init(&w, buf.data(), buf.size());
        write(w);
        buf.resize(w.len);
        return buf;
    };
    trials.push_back({"an array instead of a map", mp([](fl_mp_writer &w) { fl_mp_array(&w, 2); fl_mp_int(&w, 1); fl_mp_int(&w, 2); }), true});
    trials.push_back({"a string instead of a map", mp([](fl_mp_writer &w) { fl_mp_str(&w, "config"); }), true});
    trials.push_back({"an integer instead of a map", mp([](fl_mp_writer &w) { fl_mp_int(&w, 42); }), true});
    trials.push_back({"nil instead of a map", mp([](fl_mp_writer &w) { fl_mp_nil(&w); }), true});
    trials.push_back({"a map with a trailing byte", mp([](fl_mp_writer &w) { fl_mp_map(&w, 0); fl_mp_int(&w, 1); }), true});
    trials.push_back({"a truncated map", {0x82, 0xa1, 'a', 0x01, 0xa1}, true});
    trials.push_back({"a map with integer keys", mp([](fl_mp_writer &w) { fl_mp_map(&w, 1); fl_mp_int(&w, 1); fl_mp_int(&w, 2); }), false});
    trials.push_back({"a map nested 200 deep", [] { std::vector<std::uint8_t> b; for (int i = 0; i < 200; ++i) { b.push_back(0x81); b.push_back(0xa1); b.push_back('k'); } b.push_back(0xc0); return b; }(), false});
    trials.push_back({"a 1 MB string value", mp([](fl_mp_writer &w) { std::string big(1u << 20, 'x'); fl_mp_map(&w, 1); fl_mp_kv_str(&w, "x.conformance.padding", big.c_str()); }), false});
    trials.push_back({"1 MB of random bytes", [&] { auto b = random_bytes(rng, 1u << 20); b[0] = 0xc1; return b; }(), true});
    trials.push_back({"a map announcing 2^32-1 pairs", {0xdf, 0xff, 0xff, 0xff, 0xff}, true});
    for (int i = 0; i < 24; ++i) {
        auto b = random_bytes(rng, 1 + rng() % 200);
        trials.push_back({"random bytes #" + std::to_string(i + 1), b, false});
    }
    // Keys of every type under names a driver might use, each with a value of an unlikely type.
    for (const char *key : {"period_ms", "unit", "registers", "map", "model", "threshold", "id", "name"}) {
        trials.push_back({std::string("key '") + key + "' as an array",
                          mp([&](fl_mp_writer &w) { fl_mp_map(&w, 1); fl_mp_str(&w, key); fl_mp_array(&w, 1); fl_mp_nil(&w); }), false});
        trials.push_back({std::string("key '") + key + "' as a negative integer",
                          mp([&](fl_mp_writer &w) { fl_mp_map(&w, 1); fl_mp_kv_int(&w, key, -1); }), false});
        trials.push_back({std::string("key '") + key + "' as a string",
                          mp([&](fl_mp_writer &w) { fl_mp_map(&w, 1); fl_mp_kv_str(&w, key, "\xff\xfe"); }), false});
    }
    for (const auto &drv : p->info().drivers) {
        for (const auto &t : trials) {
            instance in(p->entry(), drv, "config-1");
            const fl_status st = in.create(t.bytes.data(), t.bytes.size());
            if (st == FL_OK) {
                if (t.must_refuse) f.fail("driver '" + drv.id + "' accepted " + t.what + " as its config (FL-PLUGIN-17)");
                if (!in.device()) f.fail("driver '" + drv.id + "': FL_OK without an instance for " + t.what);
                continue;
            }
            if (in.device()) f.fail("driver '" + drv.id + "': refused " + t.what + " but set *out_device");
            if (st == FL_MISUSE) f.fail("driver '" + drv.id + "': refused " + t.what + " with FL_MISUSE");
        }
    }
    p->deinit();
}

// ---- device.emit_valid ---------------------------------------------------------------------------------------
void emit_valid(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "device.emit_valid");
    std::size_t total = 0;
    for (const auto *drv : s.drivers) {
        instance in(s.entry(), *drv, "emit-1");
        if (in.create(config_for(o, drv->id)) != FL_OK) continue;
        exercise(in, rng, f);
        in.destroy();
        const auto events = in.host().events();
        total += events.size();
        std::size_t bad = 0;
        for (const auto &e : events)
            if (!e.invalid.empty() && bad++ < 3) f.fail("driver '" + drv->id + "' emitted an invalid event: " + e.invalid);
        if (bad > 3) f.fail("driver '" + drv->id + "': " + std::to_string(bad) + " invalid events in all");
    }
    f.saw_events(total);
    if (!total && !f.failed()) f.not_exercised("no driver emitted any event during the workload; nothing to validate");
}

// ---- device.callback_time ------------------------------------------------------------------------------------
void callback_time(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    for (const auto *drv : s.drivers) {
        // A call over the bound twice in a row fails: once may be the machine, not the plugin.
        std::chrono::microseconds slowest{0};
        std::string call;
        for (int attempt = 0; attempt < 2; ++attempt) {
            auto rng = rng_for(o, "device.callback_time");
            findings ignored;
            instance in(s.entry(), *drv, "time-1");
            if (in.create(config_for(o, drv->id)) != FL_OK) break;
            exercise(in, rng, ignored);
            in.destroy();
            slowest = in.slowest();
            call = in.slowest_call();
            if (slowest <= o.callback_bound) break;
        }
        if (slowest > o.callback_bound)
            f.fail("driver '" + drv->id + "': " + call + " took " + std::to_string(slowest.count() / 1000) +
                   " ms, over the " + std::to_string(o.callback_bound.count()) + " ms bound");
    }
}

// ---- device.quiet_after_stop ----------------------------------------------------------------------------------
void quiet_after_stop(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    for (const auto *drv : s.drivers) {
        instance in(s.entry(), *drv, "quiet-1");
        if (in.create(config_for(o, drv->id)) != FL_OK) continue;
        if (!start_open(in, f)) continue;
        in.tick();
        std::this_thread::sleep_for(50ms);  // let threads of the driver's own run while started
        in.stop();
        std::this_thread::sleep_for(250ms);
        const std::size_t after_stop = in.host().emits_after_stop();
        in.destroy();
        std::this_thread::sleep_for(100ms);
        for (const auto &v : in.host().emit_violations()) f.fail("driver '" + drv->id + "': " + v);
        if (after_stop) f.fail("driver '" + drv->id + "' emitted " + std::to_string(after_stop) + " event(s) after stop (FL-PLUGIN-21)");
        else if (in.host().emits_after_stop())
            f.fail("driver '" + drv->id + "' emitted after destroy (FL-PLUGIN-21)");
        report_host(drv->id, in.host(), f);
    }
}

// ---- device.chunked_input --------------------------------------------------------------------------------------
// The same bytes, whole and split down to single bytes, must decode to the same events. The bytes are the device's
// own writes looped back (a line test, which many protocols answer) mixed with noise. Only events emitted inside
// on_data count: a thread of the driver's own may emit at any time.
void chunked_input(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "device.chunked_input");
    std::size_t tested = 0, decoded_nothing = 0;
    for (const auto *drv : s.drivers) {
        instance whole(s.entry(), *drv, "chunk-1"), split(s.entry(), *drv, "chunk-1");
        if (whole.create(config_for(o, drv->id)) != FL_OK || split.create(config_for(o, drv->id)) != FL_OK) continue;
        if (!whole.transport() || !split.transport()) continue;
        ++tested;
        if (whole.start() != FL_OK || split.start() != FL_OK) {
            f.fail("driver '" + drv->id + "': start failed");
            continue;
        }
        whole.deliver_open();
        split.deliver_open();
        whole.tick();
        split.tick();
        const auto own = whole.host().take_written();
        split.host().take_written();
        std::vector<std::uint8_t> stream;
        for (int i = 0; i < 6; ++i) {
            stream.insert(stream.end(), own.begin(), own.end());
            auto noise = random_bytes(rng, rng() % 64);
            stream.insert(stream.end(), noise.begin(), noise.end());
            stream.insert(stream.end(), own.begin(), own.end());
        }
        const std::size_t mark_w = whole.host().event_count(), mark_s = split.host().event_count();
        whole.on_data(stream.data(), stream.size());
        std::size_t at = 0;
        while (at < stream.size()) {
            const std::size_t n = std::min<std::size_t>(rng() % 2 ? 1 : 1 + rng() % 16, stream.size() - at);
            split.on_data(stream.data() + at, n);
            at += n;
        }
        // "telemetry/echo x3, alarm/pyrolysis_alarm": the events inside on_data, runs counted.
        auto seq = [](const std::vector<emitted_event> &ev, std::size_t from) {
            std::vector<std::pair<std::string, int>> runs;
            for (std::size_t i = from; i < ev.size(); ++i) {
                if (!ev[i].from_caller) continue;
                const std::string k = ev[i].kind + "/" + ev[i].code;
                if (!runs.empty() && runs.back().first == k) ++runs.back().second;
                else runs.emplace_back(k, 1);
            }
            std::string out;
            for (const auto &[k, n] : runs) out += (out.empty() ? "" : ", ") + k + (n > 1 ? " x" + std::to_string(n) : "");
            return out.empty() ? std::string("no events") : out;
        };
        const auto a = seq(whole.host().events(), mark_w), b = seq(split.host().events(), mark_s);
        if (a == b && a == "no events") {
            ++decoded_nothing;  // the bytes were not its protocol (its device speaks first): judged nothing
            whole.stop();
            split.stop();
            continue;
        }
        f.saw_events(whole.host().events().size() - mark_w);
        if (a != b)
            f.fail("driver '" + drv->id + "' decodes split input differently: whole gave " + a + ", split gave " + b +
                   " (FL-PLUGIN-32)");
        whole.stop();
        split.stop();
    }
    if (!tested && !f.failed()) f.skip("no driver with a host-owned wire");
    else if (decoded_nothing == tested && !f.failed())
        f.not_exercised("no driver decoded any event from its own writes looped back (a device that speaks first): "
                        "split input is judged by the device scripts' split mutation (script.split)");
}

// ---- device.garbage_input --------------------------------------------------------------------------------------
void garbage_input(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "device.garbage_input");
    std::size_t tested = 0;
    for (const auto *drv : s.drivers) {
        instance in(s.entry(), *drv, "garbage-1");
        if (in.create(config_for(o, drv->id)) != FL_OK || !in.transport()) continue;
        ++tested;
        if (!start_open(in, f)) continue;
        for (int round = 0; round < 40; ++round) {
            in.tick();
            auto bytes = random_bytes(rng, 64 + rng() % 2048);
            // Some rounds repeat a few byte values (frame markers, 0x00, 0xFF) to get past naive sync checks.
            if (round % 4 == 1)
                for (auto &b : bytes) b = static_cast<std::uint8_t>((std::uint8_t[]){0x00, 0xff, 0x40, 0x23, 0x01, 0x03}[b % 6]);
            feed_chunked(in, bytes, rng, true);
            in.host().take_written();
        }
        in.stop();
    }
    if (!tested && !f.failed()) f.skip("no driver with a host-owned wire");
}

// ---- device.leaks ----------------------------------------------------------------------------------------------
void leaks(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "device.leaks");
    auto cycle = [&](const core::driver_info &drv) {
        instance in(s.entry(), drv, "leak-1");
        if (in.create(config_for(o, drv.id)) != FL_OK) return;
        if (in.start() == FL_OK) {
            in.deliver_open();
            in.tick();
            if (in.transport()) {
                auto b = random_bytes(rng, 64);
                in.on_data(b.data(), b.size());
            }
            in.stop();
        }
    };
    for (const auto *drv : s.drivers) {
        for (int i = 0; i < 20; ++i) cycle(*drv);  // warm up caches and lazily built state
        const std::size_t fds = open_fds(), threads = thread_count(), heap = heap_in_use();
        constexpr int cycles = 200;
        for (int i = 0; i < cycles; ++i) cycle(*drv);
        const std::size_t fds2 = open_fds(), threads2 = thread_count(), heap2 = heap_in_use();
        if (fds2 > fds) f.fail("driver '" + drv->id + "': " + std::to_string(fds2 - fds) + " file descriptor(s) leaked over " + std::to_string(cycles) + " instances (FL-PLUGIN-20)");
        if (threads2 > threads) f.fail("driver '" + drv->id + "': " + std::to_string(threads2 - threads) + " thread(s) left running over " + std::to_string(cycles) + " instances (FL-PLUGIN-21)");
        // Allocator noise stays far below this; a leak of even 1 KiB per instance passes it.
        constexpr std::size_t slack = 128 * 1024;
        if (heap2 > heap + slack)
            f.fail("driver '" + drv->id + "': heap grew by " + std::to_string((heap2 - heap) / 1024) + " KiB over " +
                   std::to_string(cycles) + " instances (FL-PLUGIN-20)");
    }
}

// ---- device.own_io -----------------------------------------------------------------------------------------------
// FL-PLUGIN-16: without FL_DRIVER_OWN_IO every byte goes through the host's transport and every wait through its
// timers, so a started instance holds no descriptor and no thread of its own. Counted in this check's own process
// while the instance runs (device.leaks counts what is left after destroy; this is what is held during the run).
void own_io(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "device.own_io");
    bool judged = false;
    for (const auto *drv : s.drivers) {
        if (drv->flags & FL_DRIVER_OWN_IO) continue;
        instance in(s.entry(), *drv, "own-io-1");
        const std::size_t fds = open_fds(), threads = thread_count();
        if (in.create(config_for(o, drv->id)) != FL_OK) continue;
        if (in.start() != FL_OK) continue;
        judged = true;
        in.deliver_open();
        for (int i = 0; i < 3; ++i) {
            in.tick();
            if (in.transport()) {
                auto b = random_bytes(rng, 64);
                in.on_data(b.data(), b.size());
            }
        }
        const std::size_t fds2 = open_fds(), threads2 = thread_count();
        in.stop();
        if (fds2 > fds)
            f.fail("driver '" + drv->id + "': a started instance holds " + std::to_string(fds2 - fds) +
                   " file descriptor(s) of its own without declaring FL_DRIVER_OWN_IO: its I/O must go through the "
                   "host's transport (FL-PLUGIN-16)");
        if (threads2 > threads)
            f.fail("driver '" + drv->id + "': a started instance runs " + std::to_string(threads2 - threads) +
                   " thread(s) of its own without declaring FL_DRIVER_OWN_IO: it must wait on the host's timers "
                   "(FL-PLUGIN-16)");
    }
    if (!judged && !f.failed()) {
        if (std::all_of(s.drivers.begin(), s.drivers.end(), [](auto *d) { return d->flags & FL_DRIVER_OWN_IO; }))
            f.skip("every driver declares FL_DRIVER_OWN_IO: its own I/O is declared, not checkable");
        else
            f.not_exercised("no driver without FL_DRIVER_OWN_IO created and started with its config");
    }
}

}  // namespace

void add_device_checks(std::vector<check> &v) {
    v.push_back({"device.create", {"FL-PLUGIN-17", "FL-PLUGIN-18", "FL-PLUGIN-31"}, level::basic,
                 "each driver creates a complete instance that does nothing before start; unknown driver ids are "
                 "FL_NOT_FOUND", create});
    v.push_back({"device.misuse", {"FL-PLUGIN-19"}, level::standard,
                 "every call in a wrong lifecycle state returns FL_MISUSE or does nothing, and restart works", misuse});
    v.push_back({"device.destroy_any_state", {"FL-PLUGIN-20"}, level::standard,
                 "destroy from created, started and stopped; destroy(NULL) is a no-op", destroy_any_state});
    v.push_back({"device.null_arguments", {"FL-PLUGIN-19"}, level::strict,
                 "NULL where none is allowed returns FL_MISUSE or NULL", null_arguments});
    v.push_back({"device.config_garbage", {"FL-PLUGIN-17"}, level::standard,
                 "configs of the wrong type, truncated, random, 1 MB or deeply nested are refused cleanly",
                 config_garbage});
    v.push_back({"device.emit_valid", {"FL-PLUGIN-27", "FL-PLUGIN-30"}, level::basic,
                 "every event of the workload passes the host's boundary check and its class's codes, restores end "
                 "raised conditions, unknown commands are FL_UNSUPPORTED", emit_valid});
    v.push_back({"device.callback_time", {"FL-PLUGIN-24"}, level::standard,
                 "no call into the plugin during the workload exceeds the callback bound", callback_time});
    v.push_back({"device.quiet_after_stop", {"FL-PLUGIN-21", "FL-PLUGIN-27"}, level::standard,
                 "no emit or host call after stop or destroy, from any thread", quiet_after_stop});
    v.push_back({"device.chunked_input", {"FL-PLUGIN-32"}, level::standard,
                 "the same bytes whole and split down to single bytes give the same events", chunked_input});
    v.push_back({"device.garbage_input", {"FL-PLUGIN-32", "FL-PLUGIN-33"}, level::standard,
                 "random bytes in random chunks, with the link flapping, never crash or hang", garbage_input});
    v.push_back({"device.leaks", {"FL-PLUGIN-20", "FL-PLUGIN-21"}, level::standard,
                 "200 create/start/stop/destroy cycles leak no memory, file descriptor or thread", leaks});
    v.push_back({"device.own_io", {"FL-PLUGIN-16"}, level::standard,
                 "a started instance of a driver without FL_DRIVER_OWN_IO holds no file descriptor or thread of its "
                 "own", own_io});
}

}  // namespace firelink::conform
