// Host-fault checks: the suite's host misbehaves in the ways the ABI allows a host to, and the driver must cope.
// An older host's smaller structs and statuses it does not know (FL-PLUGIN-26), arguments that are gone once the
// call returns (FL-PLUGIN-25), a host without an extension (FL-PLUGIN-15), a host under backpressure (FL-PLUGIN-28),
// and connections from strangers for identify (FL-PLUGIN-34). Faults that must not be reachable are made to fault:
// structs and borrowed bytes end at an inaccessible page, so a read past them is a SIGSEGV (`crashed`), not luck.
#include <chrono>
#include <cstring>
#include <set>

#include <firelink/ext/identify.h>
#include <firelink/payload.h>

#include "checks.hpp"
#include "guarded.hpp"

namespace firelink::conform {

namespace {

using namespace std::chrono_literals;

// A status no version of the ABI defines: a newer host may answer one (docs/abi.md, FL-PLUGIN-26).
constexpr fl_status unknown_status = -1000;

std::string ms_text(std::chrono::microseconds d) { return std::to_string(d.count() / 1000) + " ms"; }

// Ticks with the device's own writes echoed back, as the standard workload does, without the restart.
void run_ticks(instance &in, std::mt19937_64 &rng, int ticks, const std::function<void(int)> &before_tick = {}) {
    for (int i = 0; i < ticks; ++i) {
        if (before_tick) before_tick(i);
        in.tick();
        auto echo = in.host().take_written();
        auto noise = random_bytes(rng, rng() % 16);
        echo.insert(echo.end(), noise.begin(), noise.end());
        if (in.transport() && !echo.empty()) in.on_data(echo.data(), echo.size());
    }
}

// ---- host.v1_0 (FL-PLUGIN-26) ----------------------------------------------------------------------------------
void v1_0_host(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "host.v1_0");
    for (const auto *drv : s.drivers) {
        instance in(s.entry(), *drv, "v1-0-1");
        in.host().present_v1_0();
        if (const fl_status st = in.create(config_for(o, drv->id)); st != FL_OK) {
            f.fail("driver '" + drv->id + "': create_device on a host with v1.0-sized structs returned " +
                   status_name(st) + " (FL-PLUGIN-26)");
            continue;
        }
        if (const fl_status st = in.start(); st != FL_OK) {
            f.fail("driver '" + drv->id + "': start on a host with v1.0-sized structs returned " + status_name(st) +
                   " (FL-PLUGIN-26)");
            continue;
        }
        in.deliver_open();
        run_ticks(in, rng, 12, [&](int i) {
            // Ticks 3..7: every emit, write and request answers a status this ABI version does not define.
            if (i == 3) in.host().answer_status(unknown_status);
            if (i == 5) {
                in.on_state(FL_LINK_FAILED, unknown_status);
                in.on_state(FL_LINK_OPEN, FL_OK);
            }
            if (i == 8) in.host().answer_status(FL_OK);
        });
        in.command(command_bytes("v1-0-cmd", "x.conformance.no_such_command"));
        in.stop();
        in.destroy();
        // A driver that loops on a status it does not know shows it here (or hangs: `timeout`).
        const auto bound = std::max<std::chrono::microseconds>(o.callback_bound * 5, 500ms);
        if (in.slowest() > bound)
            f.fail("driver '" + drv->id + "': " + in.slowest_call() + " took " + ms_text(in.slowest()) +
                   " while the host answered unknown statuses; treat one as FL_ERROR (FL-PLUGIN-26)");
        report_host(drv->id, in.host(), f);
        f.note("driver '" + drv->id + "' ran on v1.0-sized structs with unknown statuses");
    }
}

// ---- device.borrowed_arguments (FL-PLUGIN-25) --------------------------------------------------------------------
void borrowed_arguments(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "device.borrowed_arguments");
    for (const auto *drv : s.drivers) {
        std::vector<std::unique_ptr<guarded_bytes>> gone;  // sealed: any later read faults
        auto borrow = [&](const std::uint8_t *data, std::size_t size) {
            gone.push_back(std::make_unique<guarded_bytes>(data, size));
            return gone.back().get();
        };
        instance in(s.entry(), *drv, "borrowed-1");
        // The config: the given one, or the empty map as one byte (a pointer the driver could keep).
        std::vector<std::uint8_t> config = config_for(o, drv->id);
        if (config.empty()) config = {0x80};
        auto *cfg = borrow(config.data(), config.size());
        auto *id = borrow(reinterpret_cast<const std::uint8_t *>(drv->id.c_str()), drv->id.size() + 1);
        fl_status st = in.create(cfg->data(), cfg->size(), reinterpret_cast<const char *>(id->data()));
        cfg->seal();
        id->seal();
        if (st != FL_OK) {
            in.destroy();
            continue;  // refuses the one-byte empty map: device.create reports configs
        }
        if (!start_open(in, f)) continue;
        for (int i = 0; i < 10; ++i) {
            in.tick();
            auto bytes = in.host().take_written();
            auto noise = random_bytes(rng, rng() % 32);
            bytes.insert(bytes.end(), noise.begin(), noise.end());
            if (in.transport()) {
                // Each chunk in its own pages, sealed as soon as on_data returns.
                std::size_t at = 0;
                while (at < bytes.size()) {
                    const std::size_t n = std::min<std::size_t>(1 + rng() % 24, bytes.size() - at);
                    auto *g = borrow(bytes.data() + at, n);
                    in.on_data(g->data(), g->size());
                    g->seal();
                    at += n;
                }
            }
            if (i == 4) {
                for (const char *name : {"reset", "x.conformance.no_such_command"}) {
                    const auto c = command_bytes("borrowed-" + std::to_string(i), name);
                    auto *g = borrow(c.data(), c.size());
                    in.command(g->data(), g->size());
                    g->seal();
                }
            }
        }
        // Stop and start again: a driver that kept its config pointer reads it here.
        in.stop();
        if (in.start() == FL_OK) {
            in.deliver_open();
            run_ticks(in, rng, 3);
            in.stop();
        }
        in.destroy();
        f.note("driver '" + drv->id + "': " + std::to_string(gone.size()) + " borrowed arguments sealed after their calls");
    }
}

// ---- host.missing_extension (FL-PLUGIN-15) -----------------------------------------------------------------------
void missing_extension(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "host.missing_extension");
    for (const auto *drv : s.drivers) {
        for (const char *ext : {FL_EXT_TRANSPORT, FL_EXT_TIMER}) {
            const bool listed = std::find(drv->required_extensions.begin(), drv->required_extensions.end(), ext) !=
                                drv->required_extensions.end();
            instance in(s.entry(), *drv, "missing-1");
            in.host().withhold_extension(ext);
            const std::string name = "driver '" + drv->id + "' on a host without " + ext;
            const fl_status st = in.create(config_for(o, drv->id));
            if (st != FL_OK) {
                if (in.device()) f.fail(name + ": create_device failed but set *out_device (FL-PLUGIN-17)");
                if (!listed)
                    f.fail(name + ": create_device returned " + status_name(st) + ", yet " + ext +
                           " is not in its required_extensions (FL-PLUGIN-15)");
                continue;
            }
            // A listed extension: the host refuses such a device up front; the driver must still not crash here.
            const fl_status started = in.start();
            if (started == FL_OK) {
                in.deliver_open();
                run_ticks(in, rng, 4);
                in.stop();
            } else if (!listed) {
                f.fail(name + ": start returned " + status_name(started) + "; it cannot work without " + ext +
                       " but does not list it in required_extensions, so a host creates it and it fails at start "
                       "(FL-PLUGIN-15)");
            }
            in.destroy();
        }
        std::string req;
        for (const auto &e : drv->required_extensions) req += (req.empty() ? "" : ", ") + e;
        f.note("driver '" + drv->id + "' requires " + (req.empty() ? std::string("nothing") : req));
    }
}

// ---- device.busy (FL-PLUGIN-28) ----------------------------------------------------------------------------------
// The same workload on two instances, one on a host that answers FL_BUSY to every event but telemetry for a while:
// every event it refused must be emitted again once the host takes events, and not by spinning inside one call.
void busy(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    std::size_t exercised = 0;
    for (const auto *drv : s.drivers) {
        instance in(s.entry(), *drv, "busy-1");
        if (in.create(config_for(o, drv->id)) != FL_OK) continue;
        if (!start_open(in, f)) continue;
        auto rng = rng_for(o, "device.busy");
        constexpr int busy_from = 2, busy_to = 14, ticks = 24;
        std::size_t accepted_before_release = 0;
        run_ticks(in, rng, ticks, [&](int i) {
            if (i == busy_from) in.host().set_busy(true);
            if (in.transport() && (i == 4 || i == 9)) {  // the link drops and comes back while the host is busy
                in.on_state(FL_LINK_LOST, FL_IO);
                in.on_state(FL_LINK_OPEN, FL_OK);
            }
            if (i == busy_to) {
                in.host().set_busy(false);
                accepted_before_release = in.host().event_count();
            }
        });
        in.stop();
        const auto deferred = in.host().deferred();
        const auto events = in.host().events();
        in.destroy();
        if (in.most_busy_in_one_call() > 8)
            f.fail("driver '" + drv->id + "': answered FL_BUSY " + std::to_string(in.most_busy_in_one_call()) +
                   " times inside one call: retry from a later callback, not by spinning (FL-PLUGIN-28)");
        if (deferred.empty()) continue;
        ++exercised;
        std::set<std::pair<std::string, std::string>> later;
        for (std::size_t i = accepted_before_release; i < events.size(); ++i)
            later.insert({events[i].kind, events[i].code});  // whether valid is device.emit_valid's to judge
        std::set<std::pair<std::string, std::string>> missing;
        for (const auto &e : deferred)
            if (!later.count({e.kind, e.code})) missing.insert({e.kind, e.code});
        for (const auto &[kind, code] : missing)
            f.fail("driver '" + drv->id + "': " + kind + " " + code + " was answered FL_BUSY and never emitted again "
                   "in the " + std::to_string(ticks - busy_to) + " ticks after the host took events (FL-PLUGIN-28)");
        if (missing.empty())
            f.note("driver '" + drv->id + "': " + std::to_string(deferred.size()) + " FL_BUSY answers, every event "
                   "emitted again");
    }
    if (!exercised && !f.failed())
        f.not_exercised("no driver emitted anything but telemetry during the workload, so no FL_BUSY was answered; "
                        "busy handling is judged by the device scripts' busy mutation (script.busy)");
}

// ---- extension.identify (FL-PLUGIN-34) ---------------------------------------------------------------------------
// Every prefix of bytes of other protocols, each ending at an inaccessible page (a read past `size` faults), into an
// identity buffer that also ends at one (a write past `identity_cap` faults).
void identify_foreign(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    plugin_host host;
    if (p->init(host.abi()) != FL_OK) return f.fail("init failed");
    const auto &e = p->entry();
    const auto *ident = e.get_extension ? static_cast<const fl_plugin_identify *>(e.get_extension(FL_EXT_IDENTIFY))
                                        : nullptr;
    if (!ident || !FL_HAS_FIELD(ident, fl_plugin_identify, identify) || !ident->identify) {
        p->deinit();
        return f.skip("the plugin offers no " FL_EXT_IDENTIFY);
    }
    auto rng = rng_for(o, "extension.identify");
    std::vector<std::pair<std::string, std::vector<std::uint8_t>>> strangers;
    auto text = [](const std::string &t) { return std::vector<std::uint8_t>(t.begin(), t.end()); };
    std::string http = "GET / HTTP/1.1\r\nHost: 10.0.0.1\r\nUser-Agent: scanner\r\nAccept: */*\r\n\r\n";
    while (http.size() < 4096) http += "X-Padding: " + std::string(64, 'a') + "\r\n";
    strangers.push_back({"an HTTP request", text(http)});
    std::vector<std::uint8_t> modbus;
    for (std::uint16_t t = 1; modbus.size() < 4096; ++t)
        modbus.insert(modbus.end(), {static_cast<std::uint8_t>(t >> 8), static_cast<std::uint8_t>(t), 0, 0, 0, 6, 1,
                                     3, 0, 0, 0, 10});
    strangers.push_back({"Modbus TCP requests", modbus});
    strangers.push_back({"4 KiB of zeros", std::vector<std::uint8_t>(4096, 0)});
    strangers.push_back({"4 KiB of random bytes", random_bytes(rng, 4096)});
    std::vector<std::uint8_t> tls = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
    auto more = random_bytes(rng, 4096 - tls.size());
    tls.insert(tls.end(), more.begin(), more.end());
    strangers.push_back({"a TLS ClientHello", tls});
    constexpr std::size_t cap = 64;
    for (const auto &drv : p->info().drivers) {
        if (!(drv.wires & FL_WIRE_TCP_ACCEPTED)) continue;
        for (const auto &[what, bytes] : strangers) {
            fl_status last = FL_OK;
            for (std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{16}, std::size_t{100},
                                  std::size_t{1000}, bytes.size()}) {
                guarded_bytes in(bytes.data(), n), out(nullptr, cap);
                std::size_t len = 0;
                const fl_status st = ident->identify(drv.id.c_str(), in.data(), n, reinterpret_cast<char *>(out.data()),
                                                     cap, &len);
                std::size_t len2 = 0;
                const fl_status again = ident->identify(drv.id.c_str(), in.data(), n,
                                                        reinterpret_cast<char *>(out.data()), cap, &len2);
                if (st != again)
                    f.fail("driver '" + drv.id + "': identify answered " + status_name(st) + " then " +
                           status_name(again) + " for the same " + std::to_string(n) + " bytes: it must be a pure "
                           "function (FL-PLUGIN-34)");
                if (st == FL_OK) {
                    f.fail("driver '" + drv.id + "': identify bound " + std::to_string(n) + " bytes of " + what +
                           " to identity '" + std::string(reinterpret_cast<char *>(out.data()), std::min(len, cap)) +
                           "' (FL-PLUGIN-34)");
                    last = st;
                    break;  // one finding per stranger
                } else if (st != FL_BUSY && st != FL_INVALID_ARGUMENT)
                    f.fail("driver '" + drv.id + "': identify answered " + status_name(st) + " for " + what +
                           "; FL_BUSY or FL_INVALID_ARGUMENT belong (FL-PLUGIN-34)");
                last = st;
            }
            if (last == FL_BUSY && !f.failed())
                f.warn("driver '" + drv.id + "': identify still waits for more after " + std::to_string(bytes.size()) +
                       " bytes of " + what + "; FL_INVALID_ARGUMENT lets the host drop a stranger sooner (FL-PLUGIN-34)");
        }
        char buf[8];
        std::size_t len = 0;
        const std::uint8_t b = '@';
        if (ident->identify("x-conformance-no-such-driver", &b, 1, buf, sizeof buf, &len) != FL_NOT_FOUND)
            f.fail("identify for an unknown driver id did not answer FL_NOT_FOUND (FL-PLUGIN-34)");
    }
    p->deinit();
}

// ---- device.bus_turns (FL-PLUGIN-33) ------------------------------------------------------------------------------
// A driver with an rs485_bus wire on a shared bus: it talks in request() turns (write is refused there), and ends
// each turn with end_request once its reply is in, instead of holding the bus until the reply timeout. The reply
// is its own request looped back with noise, in one piece, as the other wire checks give it; a turn still open at the next tick
// is ended by the host's reply timeout, as the real bus does.
void bus_turns(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    auto rng = rng_for(o, "device.bus_turns");
    std::size_t tested = 0;
    for (const auto *drv : s.drivers) {
        if (!(drv->wires & FL_WIRE_RS485_BUS) || (drv->flags & FL_DRIVER_OWN_IO)) continue;
        instance in(s.entry(), *drv, "bus-1", FL_TRANSPORT_RS485_BUS);
        if (in.create(config_for(o, drv->id)) != FL_OK || !in.transport()) continue;
        ++tested;
        if (!start_open(in, f, " on a shared bus")) continue;
        std::size_t timed_out = 0;
        for (int i = 0; i < 16; ++i) {
            if (in.host().turn_open()) {
                ++timed_out;
                in.on_state(FL_LINK_REPLY_TIMEOUT, FL_TIMEOUT);
            }
            in.tick();
            auto reply = in.host().take_written();
            auto noise = random_bytes(rng, rng() % 8);
            reply.insert(reply.end(), noise.begin(), noise.end());
            if (!reply.empty()) in.on_data(reply.data(), reply.size());  // split input is device.chunked_input's
            if (i == 8) {  // the bus drops and comes back
                in.on_state(FL_LINK_LOST, FL_IO);
                in.on_state(FL_LINK_OPEN, FL_OK);
            }
        }
        in.stop();
        report_host(drv->id, in.host(), f);
        const std::size_t taken = in.host().turns_taken(), ended = in.host().turns_ended();
        if (taken >= 3 && ended == 0)
            f.fail("driver '" + drv->id + "': took " + std::to_string(taken) + " turns on the shared bus and ended "
                   "none with end_request; " + std::to_string(timed_out) + " were ended by the reply timeout, holding "
                   "the bus from the other devices (FL-PLUGIN-33)");
        else
            f.note("driver '" + drv->id + "': " + std::to_string(taken) + " turns, " + std::to_string(ended) +
                   " ended by end_request");
    }
    if (!tested && !f.failed()) f.skip("no driver with an rs485_bus wire");
}

}  // namespace

void add_host_fault_checks(std::vector<check> &v) {
    v.push_back({"host.v1_0", {"FL-PLUGIN-26"}, level::standard,
                 "a host with v1.0-sized fl_host, fl_host_transport and fl_host_timer (a later field faults) that "
                 "answers unknown statuses: no crash, no spin",
                 v1_0_host});
    v.push_back({"host.missing_extension", {"FL-PLUGIN-15"}, level::standard,
                 "a host without firelink.transport/1 or firelink.timer/1: a driver that does not list it still "
                 "works; none crashes",
                 missing_extension});
    v.push_back({"device.borrowed_arguments", {"FL-PLUGIN-25"}, level::standard,
                 "config, driver id, on_data bytes and commands are overwritten and made inaccessible as each call "
                 "returns: the driver copied what it keeps",
                 borrowed_arguments});
    v.push_back({"device.busy", {"FL-PLUGIN-28"}, level::standard,
                 "events answered FL_BUSY are emitted again from a later callback once the host takes events",
                 busy});
    v.push_back({"device.bus_turns", {"FL-PLUGIN-33"}, level::standard,
                 "on a shared bus the driver talks in request() turns and ends each with end_request, not by the "
                 "reply timeout",
                 bus_turns});
    v.push_back({"extension.identify", {"FL-PLUGIN-34"}, level::standard,
                 "identify on other protocols' bytes (every prefix, read past size faults): never FL_OK, pure, "
                 "FL_NOT_FOUND for unknown drivers",
                 identify_foreign});
}

}  // namespace firelink::conform
