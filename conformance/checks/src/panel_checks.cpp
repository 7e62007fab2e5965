// The fire_panel class scenarios. A fire panel's UITD connects in to the host: the device runs in the host's device
// runtime on a link from a real host listener (host/transport's tcp_listener), bound by the identity the plugin's
// firelink.identify/1 reads from the connection's first bytes, as firelink-host binds it. The device source is
// `firelink-sim uitd --connect` (GB/T 26875.3 over TCP), scripted through its standard input (--stdin).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <firelink/ext/commit.h>
#include <firelink/ext/identify.h>
#include <firelink/plugin.h>
#include <firelink/transport/link.hpp>

#include "device_source.hpp"
#include "guarded.hpp"
#include "scenario.hpp"

namespace firelink::conform {

namespace {

using namespace std::chrono_literals;

// The simulated UITD's address, and the identity the driver must read from its frames.
constexpr const char *uitd_address = "0x0379";
constexpr const char *uitd_identity = "000000000379";
// The liveness budget of scenario.fire_panel.silence: twice the simulated UITD's 1 s heartbeat.
constexpr std::chrono::milliseconds panel_heartbeat{2000};

// `firelink-sim uitd --connect 127.0.0.1:PORT --stdin`: a child whose standard input takes script steps. With
// `reconnect`, it also takes --reconnect: when the centre drops the connection, it connects again keeping its state.
class uitd_process {
public:
    bool start(const std::filesystem::path &exe, std::uint16_t port, std::string &why, bool reconnect = false) {
        // Heartbeats every second keep the link busy; a frame not confirmed in 2 s is sent again.
        std::vector<std::string> argv{exe.string(), "uitd", "--connect", "127.0.0.1:" + std::to_string(port),
                                      "--address", uitd_address, "--heartbeat-s", "1", "--confirm-timeout-ms", "2000",
                                      "--tries", "5", "--stdin"};
        if (reconnect) argv.push_back("--reconnect");
        return child_.spawn(argv, why);
    }
    // One script step, as a line on the simulator's standard input.
    void act(const std::string &step) {
        child_.write_line(step);
        drain();
    }

    // The JSON lines the simulator printed so far (sent, confirm, ...), one per frame or happening.
    const std::vector<std::string> &lines() {
        drain();
        return lines_;
    }

private:
    // The simulator reports each frame as a JSON line; read what is there so its pipe never fills.
    void drain() {
        char b[4096];
        pollfd p{child_.out(), POLLIN, 0};
        ssize_t n = 0;
        while (::poll(&p, 1, 0) > 0 && (n = ::read(child_.out(), b, sizeof b)) > 0) {
            partial_.append(b, static_cast<std::size_t>(n));
            for (std::size_t nl; (nl = partial_.find('\n')) != std::string::npos; partial_.erase(0, nl + 1))
                lines_.push_back(partial_.substr(0, nl));
        }
    }
    piped_child child_;
    std::string partial_;
    std::vector<std::string> lines_;
};

const fl_plugin_identify *identify_of(const core::plugin &p) {
    const auto &e = p.entry();
    const auto *ident = e.get_extension ? static_cast<const fl_plugin_identify *>(e.get_extension(FL_EXT_IDENTIFY))
                                        : nullptr;
    return ident && FL_HAS_FIELD(ident, fl_plugin_identify, identify) && ident->identify ? ident : nullptr;
}

// One fire panel device in the host's runtime behind a loopback listener, and the simulated UITD calling in.
class panel_device : public scenario_device {
public:
    panel_device(const run_options &o, std::shared_ptr<core::plugin> plugin, const core::driver_info &drv, findings &f,
                 std::chrono::milliseconds heartbeat, bool reconnect)
        : scenario_device(f, drv) {
        try {
            listener_ = transport::make_tcp_listener(io(), "127.0.0.1", 0);
        } catch (const std::exception &e) {
            f.fail(std::string("cannot listen on a loopback port: ") + e.what());
            return;
        }
        core::link_factory make_link;
        auto l = listener_;
        if (const auto *ident = identify_of(*plugin)) {
            // As firelink-host does for a device bound by identity (wire = { listener, identity }).
            l->set_identifier([ident, driver = drv.id](const std::uint8_t *data, std::size_t size, std::string &who) {
                char buf[256];
                std::size_t len = 0;
                const fl_status st = ident->identify(driver.c_str(), data, size, buf, sizeof buf, &len);
                if (st == FL_OK) {
                    if (len == 0 || len > sizeof buf) return FL_INVALID_ARGUMENT;
                    who.assign(buf, len);
                }
                return st;
            });
            make_link = [l](transport::executor ex, transport::link_events ev) {
                return l->attach_identity(std::move(ex), uitd_identity, std::move(ev));
            };
        } else {
            make_link = [l](transport::executor ex, transport::link_events ev) {
                return l->attach_peer(std::move(ex), "127.0.0.1", std::move(ev));
            };
        }
        std::vector<std::vector<std::uint8_t>> configs = {{}};
        if (o.configs.count(drv.id)) configs = {o.configs.at(drv.id)};
        if (!create_and_start(plugin, drv, configs, make_link, heartbeat)) return;
        std::string why;
        if (!sim_.start(sim_path(o), listener_->port(), why, reconnect)) {
            f.fail("the device source did not start: " + why);
            return;
        }
        if (wait_traffic(event_budget)) {
            // Once the UITD speaks the driver reads its state (FL-PLUGIN-29: types 61, 62, 81); the scenario acts
            // after that read is answered, so an answer that crosses the first action (a system in fire,
            // fire_alarm@s1.1, next to the component's alarm) does not count as a second event of the action.
            std::this_thread::sleep_for(settle);
            set_ready();
            return;
        }
        f.fail("driver '" + drv.id + "': no traffic from 'firelink-sim uitd' connecting in within " +
               std::to_string(ms(event_budget)) + " ms (is the connection bound to identity " + uitd_identity + "?)");
    }
    ~panel_device() override { shutdown(); }

    void act(const std::string &step) override { sim_.act(step); }
    uitd_process &sim() { return sim_; }
    // GB/T 26875.3 commands take only their own arguments.
    bool operator_argument() const override { return false; }

private:
    std::shared_ptr<transport::tcp_listener> listener_;
    uitd_process sim_;  // destroyed after shutdown() let go of the listener's link
};

void with_panel(const run_options &o, findings &f, const std::function<void(step_context &)> &body,
                std::chrono::milliseconds heartbeat = std::chrono::milliseconds{0}, bool reconnect = false) {
    ::signal(SIGPIPE, SIG_IGN);
    std::shared_ptr<core::plugin> plugin = load_plugin(o, f);
    if (!plugin) return;
    const core::driver_info *drv = driver_of_class(*plugin, "fire_panel", f);
    if (!drv) return;
    if (!(drv->wires & FL_WIRE_TCP_ACCEPTED))
        return f.skip("driver '" + drv->id + "' declares no tcp_accepted wire: its panel cannot connect in");
    const auto sim = sim_path(o);
    if (sim.empty() || ::access(sim.c_str(), X_OK) != 0)
        return f.fail("no device source for fire_panel: no simulator at '" + sim.string() +
                      "' (give --sim PATH_TO_firelink-sim)");
    const core::driver_info info = *drv;
    panel_device d(o, plugin, info, f, heartbeat, reconnect);
    if (!d) return;
    step_context c{d, f};
    body(c);
}

// The check that raises a condition on the UITD and ends it (raise_and_restore): scenario.fire_panel.alarm, .fault.
std::function<void(const run_options &, findings &)> raised_and_restored(std::string raise, std::string clear,
                                                                         std::string kind, std::string code) {
    return [=](const run_options &o, findings &f) {
        with_panel(o, f, [&](step_context &c) { raise_and_restore(c, raise, clear, kind, code); });
    };
}

// ---- scenario.fire_panel.silence: a connected UITD that stops sending is the host's to report offline ----------
// As scenario.<class>.silence: the driver emits nothing while its device is silent; the host's liveness (a short
// budget here) reports the device `offline`, and its return restores it; then the driver still reads the panel.
void panel_silence(step_context &c) {
    const auto from = c.d.events().mark();
    const auto t0 = steady::now();
    c.d.act("silent on");
    const auto offline = c.d.events().wait(
        from, [](const seen &s) { return s.from_host && s.kind == "offline" && s.code == "offline"; },
        t0 + panel_heartbeat + event_budget);
    if (!offline) {
        c.f.fail("after 'silent on', the host reported no offline within " +
                 std::to_string(ms(panel_heartbeat + event_budget)) + " ms (liveness budget " +
                 std::to_string(ms(panel_heartbeat)) + " ms): every byte must reach the host through the wire");
        c.ok = false;
        return;
    }
    c.f.note("'silent on': offline (host) in " + std::to_string(ms(offline->at - t0)) + " ms");
    expect_quiet(c, from, [](const seen &) { return false; }, "while the UITD sent nothing,",
                 "a silent device is the host's to report as offline; FL-PLUGIN-27");
    if (!c.ok) return;
    const auto after = c.d.events().mark();
    const auto t1 = steady::now();
    c.d.act("silent off");
    c.d.act("heartbeat");
    const auto back = c.d.events().wait(
        after,
        [&](const seen &s) {
            return s.from_host && s.kind == "restore" && s.code == "offline" && s.ends == offline->event_id;
        },
        t1 + event_budget);
    if (!back) {
        c.f.fail("after 'silent off', the host did not restore offline (ends '" + offline->event_id + "') within " +
                 std::to_string(ms(event_budget)) + " ms");
        c.ok = false;
        return;
    }
    c.f.note("'silent off': restore offline in " + std::to_string(ms(back->at - t1)) + " ms");
    // ...and the driver still reads the panel once it sends again.
    expect(c, "fire loop=1 point=9", "alarm", "fire_alarm");
}

// ---- scenario.fire_panel.restart: a fire alarm active through stop and start is reported again (FL-PLUGIN-29) --
// As scenario.<class>.restart. On stop the host closes the listener's link, so the UITD (--reconnect) calls in again
// and is bound to the started device by its identity; a UITD never resends a frame the centre confirmed, so the
// driver must read the current state itself. Any fire_alarm counts: a new instance may only learn of the alarm from
// its system's state (fire_alarm@s1.1), the same instance also per component.
// Timed from the start, as scenario.<class>.restart: the UITD calls in, the driver reads the state.
void panel_restart(step_context &c) {
    expect_reported_after_restart(c, "fire loop=1 point=4", "fire_alarm", "a fire alarm",
                                  "start, once the UITD called in again");
}

// ---- scenario.fire_panel.commit: a driver that returns fl_device_commit confirms after the commit (FL-PLUGIN-35) -
// The suite's host holds its commits: the fire alarm is taken (FL_OK) but not committed, and the UITD must see no
// confirm of its frame while the hold lasts; once the host commits and tells the driver (on_committed), the confirm
// must come. A UITD never sends a confirmed frame again, so a confirm before the commit is an alarm a host crash loses.

// The serial of `line` when it is the simulator's `"event":"<event>"` line (for "sent": a first send of a component
// status, type 2), else -1.
long serial_of(const std::string &line, const std::string &event) {
    if (line.find("\"event\":\"" + event + "\"") == std::string::npos) return -1;
    if (event == "sent" && (line.find("\"type\":2,") == std::string::npos || line.find("\"try\":1}") == std::string::npos))
        return -1;
    const auto at = line.find("\"serial\":");
    return at == std::string::npos ? -1 : std::strtol(line.c_str() + at + 9, nullptr, 10);
}

bool confirmed(uitd_process &sim, long serial) {
    for (const auto &l : sim.lines())
        if (serial_of(l, "confirm") == serial) return true;
    return false;
}

void panel_commit(step_context &c) {
    auto &d = dynamic_cast<panel_device &>(c.d);
    const auto st = d.status();
    if (!st || !st->takes_commits)
        return c.f.skip("driver '" + d.driver() + "' returns no fl_device_commit (" FL_EXT_COMMIT "): it confirms on "
                        "FL_OK, the best it can know (FL-PLUGIN-29)");
    d.events().hold(true);
    const auto before = d.sim().lines().size();
    const auto raised = expect(c, "fire loop=1 point=3", "alarm", "fire_alarm");
    if (!raised) {
        d.events().hold(false);
        return;
    }
    long serial = -1;
    const auto until_sent = steady::now() + 1s;  // the simulator reports a frame as it writes it
    for (auto i = before; serial < 0 && steady::now() < until_sent;) {
        if (i < d.sim().lines().size()) serial = serial_of(d.sim().lines()[i++], "sent");
        else std::this_thread::sleep_for(10ms);
    }
    if (serial < 0) {
        d.events().hold(false);
        return c.f.fail("'firelink-sim uitd' reported no component status sent for 'fire loop=1 point=3'");
    }
    // Taken, not committed: watch for a confirm that must not come.
    const auto until = steady::now() + watch;
    while (steady::now() < until && !confirmed(d.sim(), serial)) std::this_thread::sleep_for(20ms);
    if (confirmed(d.sim(), serial)) {
        d.events().hold(false);
        c.ok = false;
        return c.f.fail("driver '" + d.driver() + "' declares " FL_EXT_COMMIT " but confirmed the UITD's fire alarm "
                        "frame (serial " + std::to_string(serial) + ") before the host reported its event "
                        "committed: a host crash now loses an alarm the UITD will never send again (FL-PLUGIN-35)");
    }
    const auto t0 = steady::now();
    d.events().hold(false);  // commits, and the runtime tells the driver
    while (steady::now() < t0 + event_budget && !confirmed(d.sim(), serial)) std::this_thread::sleep_for(10ms);
    if (!confirmed(d.sim(), serial)) {
        c.ok = false;
        return c.f.fail("driver '" + d.driver() + "': the fire alarm frame (serial " + std::to_string(serial) +
                        ") was not confirmed within " + std::to_string(ms(event_budget)) + " ms of its event's "
                        "commit: the UITD sends it again and again (FL-PLUGIN-35)");
    }
    c.f.note("no confirm while the commit was held for " + std::to_string(ms(watch)) + " ms; confirmed " +
             std::to_string(ms(steady::now() - t0)) + " ms after the commit");
}

// ---- scenario.fire_panel.identify: identify on the real bytes of a UITD calling in (FL-PLUGIN-34) ---------------
void identify_real(const run_options &o, findings &f) {
    ::signal(SIGPIPE, SIG_IGN);
    auto plugin = load_plugin(o, f);
    if (!plugin) return;
    const core::driver_info *drv = nullptr;
    for (const auto &d : plugin->info().drivers)
        if (d.device_class == "fire_panel" && (d.wires & FL_WIRE_TCP_ACCEPTED)) drv = &d;
    if (!drv) return f.skip("the plugin has no fire_panel driver with a tcp_accepted wire");
    const auto sim = sim_path(o);
    if (sim.empty() || ::access(sim.c_str(), X_OK) != 0)
        return f.fail("no device source for fire_panel: no simulator at '" + sim.string() +
                      "' (give --sim PATH_TO_firelink-sim)");
    plugin_host host;
    if (plugin->init(host.abi()) != FL_OK) return f.fail("init failed");
    const auto *ident = identify_of(*plugin);
    if (!ident) {
        plugin->deinit();
        return f.skip("the plugin offers no " FL_EXT_IDENTIFY ": its panels are bound by peer address only");
    }
    // A bare socket plays the centre: it takes the UITD's first bytes and answers nothing.
    const int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (ls < 0 || ::bind(ls, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 || ::listen(ls, 1) != 0 ||
        ::getsockname(ls, reinterpret_cast<sockaddr *>(&a), &alen) != 0) {
        if (ls >= 0) ::close(ls);
        plugin->deinit();
        return f.fail(std::string("cannot listen on a loopback port: ") + std::strerror(errno));
    }
    std::vector<std::uint8_t> first;
    {
        uitd_process uitd;
        std::string why;
        if (!uitd.start(sim, ntohs(a.sin_port), why)) {
            ::close(ls);
            plugin->deinit();
            return f.fail("the device source did not start: " + why);
        }
        pollfd p{ls, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(event_budget.count())) > 0) {
            const int s = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
            const auto until = steady::now() + 1500ms;  // the first frame and a heartbeat
            while (s >= 0 && steady::now() < until) {
                pollfd q{s, POLLIN, 0};
                if (::poll(&q, 1, 100) <= 0) continue;
                std::uint8_t b[2048];
                const auto n = ::read(s, b, sizeof b);
                if (n <= 0) break;
                first.insert(first.end(), b, b + n);
            }
            if (s >= 0) ::close(s);
        }
    }
    ::close(ls);
    if (first.empty()) {
        plugin->deinit();
        return f.fail("'firelink-sim uitd' sent nothing within " + std::to_string(ms(event_budget)) + " ms");
    }
    // Every prefix, each ending at an inaccessible page: FL_BUSY until a frame is complete, then FL_OK with the
    // UITD's address, and FL_OK with the same identity for every longer prefix.
    std::size_t bound_at = 0;
    constexpr std::size_t cap = 32;
    for (std::size_t n = 1; n <= first.size(); ++n) {
        guarded_bytes in(first.data(), n), out(nullptr, cap);
        std::size_t len = 0;
        const fl_status st =
            ident->identify(drv->id.c_str(), in.data(), n, reinterpret_cast<char *>(out.data()), cap, &len);
        if (st == FL_OK) {
            const std::string who(reinterpret_cast<const char *>(out.data()), std::min(len, cap));
            if (len > cap || who != uitd_identity) {
                f.fail("driver '" + drv->id + "': identify read '" + who + "' from the first " + std::to_string(n) +
                       " bytes of UITD " + uitd_identity + " (FL-PLUGIN-34)");
                break;
            }
            if (!bound_at) bound_at = n;
        } else if (bound_at) {
            f.fail("driver '" + drv->id + "': identify answered FL_OK for " + std::to_string(bound_at) +
                   " bytes and " + status_name(st) + " for " + std::to_string(n) + " (FL-PLUGIN-34)");
            break;
        } else if (st != FL_BUSY) {
            f.fail("driver '" + drv->id + "': identify answered " + status_name(st) + " for the first " +
                   std::to_string(n) + " bytes of a UITD, where FL_BUSY belongs until its frame is complete "
                   "(FL-PLUGIN-34)");
            break;
        }
    }
    if (!bound_at && !f.failed())
        f.fail("driver '" + drv->id + "': identify never bound the " + std::to_string(first.size()) +
               " bytes a UITD sent first (FL-PLUGIN-34)");
    else if (!f.failed())
        f.note("identity " + std::string(uitd_identity) + " read after " + std::to_string(bound_at) + " of " +
               std::to_string(first.size()) + " bytes");
    plugin->deinit();
}

}  // namespace

void add_panel_checks(std::vector<check> &v) {
    const std::string p = "scenario.fire_panel.";
    v.push_back({p + "identify", {"FL-PLUGIN-34"}, level::standard,
                 "identify reads the UITD's address from every prefix of its first bytes: FL_BUSY, then FL_OK",
                 identify_real});
    v.push_back({p + "alarm", {"FL-PLUGIN-27"}, level::standard,
                 "a fire alarm from the UITD arrives once within 5 s, and its restore ends it",
                 raised_and_restored("fire loop=1 point=5", "restore loop=1 point=5 bit=fire", "alarm", "fire_alarm")});
    v.push_back({p + "fault", {"FL-PLUGIN-27"}, level::standard,
                 "a component fault arrives once within 5 s, and its restore ends it",
                 raised_and_restored("fault loop=1 point=6", "restore loop=1 point=6 bit=fault", "fault", "fault")});
    v.push_back({p + "silence", {"FL-PLUGIN-27"}, level::standard,
                 "a connected UITD that sends nothing: no event from the driver, the host reports it offline "
                 "within its 2 s liveness budget and restores it when it sends again; then a fire alarm arrives",
                 [](const run_options &o, findings &f) { with_panel(o, f, panel_silence, panel_heartbeat); }});
    v.push_back({p + "garbage", {"FL-PLUGIN-27", "FL-PLUGIN-32"}, level::standard,
                 "garbage and a frame with a bad checksum give a communication_fault or nothing; the next fire "
                 "alarm is reported",
                 [](const run_options &o, findings &f) {
                     with_panel(o, f, [](step_context &c) {
                         const auto from = c.d.events().mark();
                         c.d.act("garbage n=200");
                         expect_quiet(c, from, [](const seen &s) { return s.code == "communication_fault"; },
                                      "after garbage from the UITD,", "only a communication_fault belongs; FL-PLUGIN-32");
                         // A heartbeat with a wrong checksum (denied), then a fire alarm: the driver is in step again.
                         c.d.act("bad_checksum");
                         c.d.act("heartbeat");
                         expect(c, "fire loop=1 point=7", "alarm", "fire_alarm");
                     });
                 }});
    v.push_back({p + "command", {"FL-PLUGIN-30"}, level::standard,
                 "sync_clock is confirmed by the UITD: command_result ok=true",
                 [](const run_options &o, findings &f) {
                     with_panel(o, f, [](step_context &c) {
                         expect_result(c, "sync_clock", true, "the UITD confirmed the clock");
                     });
                 }});
    v.push_back({p + "busy", {"FL-PLUGIN-28"}, level::standard,
                 "a fire alarm answered FL_BUSY is kept and emitted once the host takes events",
                 [](const run_options &o, findings &f) {
                     with_panel(o, f, [](step_context &c) {
                         const auto from = c.d.events().mark();
                         c.d.set_busy(true);
                         c.d.act("fire loop=1 point=8");
                         std::this_thread::sleep_for(watch);
                         for (const auto &s : c.d.events().since(from))
                             if (!s.from_host && s.kind != "telemetry") {
                                 c.f.fail("driver '" + c.d.driver() +
                                          "': an event was accepted while the host answered FL_BUSY: " + s.json);
                                 c.ok = false;
                             }
                         c.d.set_busy(false);
                         expect(c, "", "alarm", "fire_alarm", from);
                         if (!c.ok)
                             c.f.fail("driver '" + c.d.driver() + "': the fire alarm answered FL_BUSY was never "
                                      "emitted again once the host took events (FL-PLUGIN-28)");
                     });
                 }});
    v.push_back({p + "commit", {"FL-PLUGIN-35"}, level::standard,
                 "a driver that returns fl_device_commit: the UITD sees no confirm of its fire alarm frame while the "
                 "host holds the event's commit, and the confirm within 5 s once the host commits it",
                 [](const run_options &o, findings &f) { with_panel(o, f, panel_commit); }});
    v.push_back({p + "restart", {"FL-PLUGIN-29"}, level::standard,
                 "a fire alarm active through stop and start is reported again within 5 s of the start, once the "
                 "UITD (--reconnect) calls in again",
                 [](const run_options &o, findings &f) {
                     with_panel(o, f, panel_restart, std::chrono::milliseconds{0}, true);
                 }});
}

}  // namespace firelink::conform
