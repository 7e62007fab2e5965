// firelink-runner: one vendor plugin in its own process. firelink-host starts it (host/isolation), one per plugin,
// and speaks to it over the channel on descriptor 3 (host/isolation/include/firelink/isolation/channel.hpp).
//
// The runner is the plugin's host, as far as the plugin can tell: it loads it with the same loader and checks, gives
// every device an fl_host, runs the device's calls on one thread (so no instance is ever called concurrently), keeps
// the device's timers, checks every emitted event at the boundary, and passes what crosses the process boundary on:
// events and logs up, wire bytes and states down, wire operations up. The wires themselves stay in the host.
//
// Not meant to be run by hand: `firelink-runner --channel 3 --plugin FILE [--plugin-fd N] [--memory-mb N]
// [--open-files N] [--user NAME] [--uid N] [--warn-ms N]`.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>

#include <firelink/version.h>
#include <firelink/core/conditions.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/ext/commit.h>
#include <firelink/ext/conditions.h>
#include <firelink/ext/identify.h>
#include <firelink/ext/timer.h>
#include <firelink/ext/transport.h>
#include <firelink/firelink.h>
#include <firelink/isolation/channel.hpp>
#include <firelink/isolation/event_ring.hpp>
#include <firelink/isolation/messages.hpp>
#include <firelink/isolation/process.hpp>

namespace {

namespace asio = boost::asio;
namespace iso = firelink::isolation;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr int channel_fd = 3;
constexpr int rings_fd = 4;  // the event rings (host/isolation/event_ring.hpp)
constexpr int bell_fd = 5;   // an eventfd: rung after a push while the host sleeps
// Control frames (logs, replies, wire operations) that may wait for the host; events go into the rings.
constexpr std::size_t max_pending = 1 << 20;

struct device;

struct runner {
    asio::io_context io;
    std::thread::id driver_thread;
    std::chrono::milliseconds slow_call{100};  // a call longer than this is reported to the host's watchdog
    std::unique_ptr<iso::frame_writer> out;
    std::unique_ptr<firelink::core::plugin> plugin;
    std::unordered_map<std::uint64_t, std::unique_ptr<device>> devices;
    fl_host plugin_host{};

    std::mutex busy_mutex;
    std::set<std::string, std::less<>> busy_kinds;  // event kinds the host answers FL_BUSY for (msg::admit)

    // The event rings: every emitted event goes into its lane's ring, an event's number and its place in the ring
    // given together under emit_mutex.
    std::optional<iso::ring_memory> rings;
    std::optional<iso::ring_producer> producer;
    std::mutex emit_mutex;
    std::uint64_t emit_order = 0;  // emit_mutex: every event's place among all of the runner's events
    std::atomic<std::uint64_t> logs_suppressed{0};
    std::unique_ptr<asio::steady_timer> relief_timer;

    // A lane is open again for a held-back device once a quarter of its ring is free (not at the first free byte:
    // a driver handed bytes again should be able to pass on what it makes of them).
    bool lane_open(iso::lane l) const {
        const auto &lh = rings->head().lanes[static_cast<int>(l)];
        return lh.head.load() - lh.tail.load() <= rings->capacity() * 3 / 4;
    }
    bool kind_open(std::string_view kind) {
        if (!lane_open(iso::lane_of(kind))) return false;
        std::lock_guard lock(busy_mutex);
        return !busy_kinds.count(kind);
    }
    void ring_bell() {
        if (!rings->head().host_sleeping.load()) return;
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(bell_fd, &one, sizeof one);
    }
    void relieve();  // driver thread: devices held back for a busy lane get their wire bytes again
    void arm_relief();

    bool on_driver_thread() const { return std::this_thread::get_id() == driver_thread; }

    // Logs are not device data: a plugin that logs faster than the host reads loses lines, counted, never memory.
    void log(std::uint64_t device, std::int32_t level, std::string_view text) {
        if (const auto n = logs_suppressed.load(); n > 0) {
            auto f = iso::encoded(iso::log_msg{0, FL_LOG_WARN,
                                               "firelink-runner: " + std::to_string(n) +
                                                   " log line(s) of the plugin dropped: it logged faster than the "
                                                   "host reads"});
            if (!out->send(f)) {
                logs_suppressed++;
                return;
            }
            logs_suppressed -= n;
        }
        auto f = iso::encoded(iso::log_msg{device, level, text});
        if (!out->send(f)) logs_suppressed++;
    }

    void reply(std::uint64_t call, fl_status status, std::string_view text = {}) {
        auto f = iso::encoded(iso::reply_msg{call, status, text});
        out->send_always(f);
    }

    void wire(std::uint64_t device, iso::wire_op op, const std::uint8_t *data, std::size_t size,
              std::uint32_t timeout_ms) {
        auto f = iso::encoded(iso::wire_msg{
            device, op, std::string_view(reinterpret_cast<const char *>(data), data ? size : 0), timeout_ms});
        out->send_always(f);
    }

    // Runs one call into the plugin; one that takes longer than slow_call is reported.
    template <class F>
    auto timed(std::uint64_t device, const char *what, F &&f) {
        const auto t0 = clock_type::now();
        struct done {
            runner *r;
            std::uint64_t device;
            const char *what;
            clock_type::time_point t0;
            ~done() {
                const auto took = clock_type::now() - t0;
                if (took < r->slow_call) return;
                auto fr = iso::encoded(iso::slow_msg{
                    device, what, std::chrono::duration_cast<std::chrono::milliseconds>(took).count()});
                r->out->send_always(fr);
            }
        } d{this, device, what, t0};
        return f();
    }

    void handle(const iso::host_message &m);
    void shutdown();
};

runner *the_runner = nullptr;

struct device {
    runner *r = nullptr;
    std::uint64_t handle = 0;
    std::string device_id, driver_id, device_class;
    fl_host host{};
    const fl_device *dev = nullptr;
    const fl_device_timer *timer_ext = nullptr;
    const fl_device_transport *transport_ext = nullptr;
    const fl_device_commit *commit_ext = nullptr;
    int wire_kind = 0;  // FL_TRANSPORT_*; 0: the device has no wire
    std::uint64_t emitted = 0;  // events emit answered FL_OK for (r->emit_mutex): their numbers

    // Backpressure (driver thread): after emit answered FL_BUSY for `held_kind`, the wire's bytes wait here, not in
    // the driver, until that kind would be taken again. They are few: the host sends at most its data credit.
    std::string held_kind;                 // r->emit_mutex
    std::atomic<bool> congested{false};
    std::deque<std::string> waiting_data;

    // The device's open conditions (firelink.conditions/1): the host's list at create, kept up to date with what
    // this instance emits, as the host keeps its own.
    firelink::core::condition_list conditions;
    int unit = -1;
    std::atomic<bool> started{false};

    // The wire as the host last reported it (driver thread only).
    bool wire_opened = false;  // open() called and not closed
    bool wire_up = false;      // FL_LINK_OPEN reported
    bool in_request = false;

    struct timer_state {
        std::unique_ptr<asio::steady_timer> timer;
        std::chrono::milliseconds period;
        bool oneshot;
    };
    std::unordered_map<std::uint64_t, timer_state> timers;
    std::uint64_t next_timer = 1;

    bool callable_here() const { return started && r->on_driver_thread(); }

    void cancel_timers() {
        for (auto &[id, t] : timers) t.timer->cancel();
        timers.clear();
    }

    void arm(std::uint64_t id) {
        auto it = timers.find(id);
        if (it == timers.end()) return;
        it->second.timer->async_wait([this, id](const boost::system::error_code &ec) {
            if (!ec) fire(id);
        });
    }

    void fire(std::uint64_t id) {
        auto it = timers.find(id);
        if (it == timers.end() || !started) return;
        if (it->second.oneshot) {
            timers.erase(it);
        } else {
            auto &t = *it->second.timer;
            auto next = t.expiry() + it->second.period;
            if (next < clock_type::now()) next = clock_type::now() + it->second.period;
            t.expires_at(next);
            arm(id);
        }
        if (timer_ext) r->timed(handle, "on_timer", [&] { timer_ext->on_timer(dev, id); });
    }

    void deliver(std::string_view bytes) {
        if (started && transport_ext)
            r->timed(handle, "on_data", [&] {
                transport_ext->on_data(dev, reinterpret_cast<const std::uint8_t *>(bytes.data()), bytes.size());
            });
        // Given to the driver (or to no one: the device is not started): the host may send as much again.
        auto f = iso::encoded(iso::consumed_msg{handle, bytes.size()});
        r->out->send_always(f);
    }

    void after_stop() {
        started = false;
        cancel_timers();
        wire_opened = wire_up = in_request = false;  // the host closes the wire after stop
    }
};

device *device_of(const fl_host *h) { return h ? static_cast<device *>(h->host_data) : nullptr; }

// ---- fl_host for a device ------------------------------------------------------------------------------------

fl_status device_emit(const fl_host *h, const std::uint8_t *data, std::size_t size) {
    auto *d = device_of(h);
    if (!d || !d->started) return FL_MISUSE;
    auto &r = *d->r;
    auto summary = firelink::core::check_event(data, size, d->device_class);
    // A refused event goes to the host as well, which refuses it again, counts it and logs why: the driver's answer
    // is given here, the record is kept there.
    const auto l = summary ? iso::lane_of(summary->kind) : iso::lane::event;
    std::lock_guard lock(r.emit_mutex);
    const auto busy = [&] {
        d->held_kind = summary->kind;
        d->congested = true;
        r.arm_relief();
        return FL_BUSY;
    };
    if (summary) {
        std::lock_guard busy_lock(r.busy_mutex);
        if (r.busy_kinds.count(summary->kind)) return busy();
    }
    // In the ring, which the host maps, or not taken: what FL_OK answers survives this process's death (FL-HOST-30).
    const auto number = summary ? d->emitted + 1 : 0;
    if (!r.producer->push(l, d->handle, number, r.emit_order + 1, data, size)) {
        r.rings->head().runner_waiting.store(1);  // the host tells us when it has made room
        if (!r.producer->push(l, d->handle, number, r.emit_order + 1, data, size))
            return summary ? busy() : FL_INVALID_ARGUMENT;
    }
    ++r.emit_order;
    r.ring_bell();
    if (!summary) return FL_INVALID_ARGUMENT;
    ++d->emitted;
    // Only what can open or end a condition is copied for the list (not every telemetry event).
    if (firelink::core::is_condition_kind(summary->kind) || summary->kind == "restore")
        d->conditions.apply(d->device_id, summary->kind, summary->code, summary->event_id, summary->ends,
                            std::vector<std::uint8_t>(data, data + size),
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
    return FL_OK;
}

void device_log(const fl_host *h, std::int32_t level, const char *message) {
    if (auto *d = device_of(h)) d->r->log(d->handle, level, message ? message : "");
}

fl_status timer_start(const fl_host *h, std::uint32_t period_ms, std::uint32_t flags, std::uint64_t *out) {
    auto *d = device_of(h);
    if (!d || !d->callable_here() || !out || period_ms == 0) return FL_MISUSE;
    const auto id = d->next_timer++;
    auto &t = d->timers[id];
    t.timer = std::make_unique<asio::steady_timer>(d->r->io, std::chrono::milliseconds(period_ms));
    t.period = std::chrono::milliseconds(period_ms);
    t.oneshot = (flags & FL_TIMER_ONESHOT) != 0;
    d->arm(id);
    *out = id;
    return FL_OK;
}

fl_status timer_cancel(const fl_host *h, std::uint64_t id) {
    auto *d = device_of(h);
    if (!d || !d->callable_here()) return FL_MISUSE;
    auto it = d->timers.find(id);
    if (it == d->timers.end()) return FL_NOT_FOUND;
    it->second.timer->cancel();
    d->timers.erase(it);
    return FL_OK;
}

constexpr fl_host_timer host_timer = {sizeof(fl_host_timer), timer_start, timer_cancel};

// The wire: the answers a host link would give, from the state the host reports; the operation itself is sent to
// the host, which does it on the device's wire in order.
std::int32_t wire_kind(const fl_host *h) {
    auto *d = device_of(h);
    return d ? d->wire_kind : 0;
}
std::int32_t wire_unit(const fl_host *h) {
    auto *d = device_of(h);
    return d && d->wire_kind ? d->unit : -1;
}
fl_status wire_open(const fl_host *h) {
    auto *d = device_of(h);
    if (!d || !d->wire_kind || !d->callable_here() || d->wire_opened) return FL_MISUSE;
    d->wire_opened = true;
    d->r->wire(d->handle, iso::wire_op::open, nullptr, 0, 0);
    return FL_OK;
}
fl_status wire_write(const fl_host *h, const std::uint8_t *data, std::size_t size) {
    auto *d = device_of(h);
    if (!d || !d->wire_kind || !d->callable_here() || (!data && size)) return FL_MISUSE;
    if (d->wire_kind == FL_TRANSPORT_RS485_BUS) return FL_MISUSE;  // on a shared bus, requests only
    if (!d->wire_up) return FL_CLOSED;
    if (size == 0) return FL_OK;
    d->r->wire(d->handle, iso::wire_op::write, data, size, 0);
    return FL_OK;
}
fl_status wire_request(const fl_host *h, const std::uint8_t *data, std::size_t size, std::uint32_t timeout_ms) {
    auto *d = device_of(h);
    if (!d || !d->wire_kind || !d->callable_here() || !data) return FL_MISUSE;
    if (size == 0) return FL_INVALID_ARGUMENT;
    if (!d->wire_up) return FL_CLOSED;
    if (d->in_request) return FL_BUSY;
    d->in_request = true;
    d->r->wire(d->handle, iso::wire_op::request, data, size, timeout_ms);
    return FL_OK;
}
fl_status wire_end_request(const fl_host *h) {
    auto *d = device_of(h);
    if (!d || !d->wire_kind || !d->callable_here() || !d->in_request) return FL_MISUSE;
    d->in_request = false;
    d->r->wire(d->handle, iso::wire_op::end_request, nullptr, 0, 0);
    return FL_OK;
}
fl_status wire_close(const fl_host *h) {
    auto *d = device_of(h);
    if (!d || !d->wire_kind || !d->callable_here()) return FL_MISUSE;
    const bool was = d->wire_opened;
    d->wire_opened = d->wire_up = d->in_request = false;
    if (!was) return FL_OK;
    d->r->wire(d->handle, iso::wire_op::close, nullptr, 0, 0);
    // As in the host: the driver hears FL_LINK_CLOSED afterwards, never from inside its own call.
    asio::post(d->r->io, [r = d->r, handle = d->handle] {
        auto it = r->devices.find(handle);
        if (it == r->devices.end()) return;
        auto &dv = *it->second;
        if (dv.started && dv.transport_ext)
            r->timed(handle, "on_state", [&] { dv.transport_ext->on_state(dv.dev, FL_LINK_CLOSED, FL_OK); });
    });
    return FL_OK;
}

constexpr fl_host_transport host_transport = {sizeof(fl_host_transport), wire_kind,       wire_open,
                                              wire_write,                wire_request,    wire_end_request,
                                              wire_close,                wire_unit};

std::uint64_t commit_emitted(const fl_host *h) {
    auto *d = device_of(h);
    if (!d) return 0;
    std::lock_guard lock(d->r->emit_mutex);
    return d->emitted;
}
constexpr fl_host_commit host_commit = {sizeof(fl_host_commit), commit_emitted};

std::size_t conditions_list(const fl_host *h, void (*visit)(void *, const fl_condition *), void *context) {
    auto *d = device_of(h);
    if (!d || !visit) return 0;
    std::size_t n = 0;
    for (const auto &c : d->conditions.snapshot()) {
        const fl_condition fc{sizeof(fl_condition), c.event_id.c_str(), c.kind.c_str(), c.code.c_str(),
                              c.event.data(), c.event.size(), c.raised_wall_ms};
        visit(context, &fc);
        ++n;
    }
    return n;
}
constexpr fl_host_conditions host_conditions = {sizeof(fl_host_conditions), conditions_list};

const void *device_get_extension(const fl_host *h, const char *id) {
    auto *d = device_of(h);
    if (!d || !id) return nullptr;
    const std::string_view ext(id);
    if (ext == FL_EXT_TIMER) return &host_timer;
    if (ext == FL_EXT_TRANSPORT) return d->wire_kind ? &host_transport : nullptr;
    if (ext == FL_EXT_COMMIT) return &host_commit;
    if (ext == FL_EXT_CONDITIONS) return &host_conditions;
    return nullptr;
}

// ---- fl_host for the plugin ----------------------------------------------------------------------------------

fl_status plugin_emit(const fl_host *, const std::uint8_t *, std::size_t) { return FL_MISUSE; }
void plugin_log(const fl_host *, std::int32_t level, const char *message) {
    if (the_runner) the_runner->log(0, level, message ? message : "");
}
const void *plugin_get_extension(const fl_host *, const char *) { return nullptr; }

// ---- messages from the host ----------------------------------------------------------------------------------

const std::uint8_t *bytes(std::string_view b) { return reinterpret_cast<const std::uint8_t *>(b.data()); }

void runner::arm_relief() {
    // Any thread (emit): the driver thread looks again shortly, in case no credit or admission message comes.
    asio::post(io, [this] {
        if (!relief_timer) relief_timer = std::make_unique<asio::steady_timer>(io);
        if (relief_timer->expiry() > clock_type::now()) return;  // armed
        relief_timer->expires_after(20ms);
        relief_timer->async_wait([this](const boost::system::error_code &ec) {
            if (!ec) relieve();
        });
    });
}

void runner::relieve() {
    bool still = false;
    for (auto &[handle, d] : devices) {
        if (!d->congested) continue;
        std::string kind;
        {
            std::lock_guard lock(emit_mutex);
            kind = d->held_kind;
        }
        if (!kind_open(kind)) {
            still = true;
            continue;
        }
        d->congested = false;
        while (!d->waiting_data.empty() && !d->congested) {
            auto bytes = std::move(d->waiting_data.front());
            d->waiting_data.pop_front();
            d->deliver(bytes);
        }
        still = still || d->congested;
    }
    if (still) arm_relief();
}

void runner::handle(const iso::host_message &message) {
    auto find = [&](std::uint64_t handle) -> device * {
        auto it = devices.find(handle);
        return it == devices.end() ? nullptr : it->second.get();
    };
    if (const auto *m = std::get_if<iso::create_msg>(&message)) {
        auto d = std::make_unique<device>();
        d->r = this;
        d->handle = m->device;
        d->driver_id = std::string(m->driver_id);
        d->device_id = std::string(m->device_id);
        d->wire_kind = m->wire_kind;
        d->unit = m->unit;
        std::vector<firelink::core::open_condition> given;
        for (const auto &c : m->conditions)
            given.push_back({d->device_id, std::string(c.event_id), std::string(c.kind), std::string(c.code),
                             std::vector<std::uint8_t>(bytes(c.event), bytes(c.event) + c.event.size()),
                             c.raised_wall_ms});
        d->conditions.load(std::move(given));
        const auto *driver = plugin->info().find_driver(d->driver_id);
        if (!driver || devices.count(d->handle)) return reply(m->call, driver ? FL_MISUSE : FL_NOT_FOUND);
        d->device_class = driver->device_class;
        d->host.struct_size = sizeof(fl_host);
        d->host.abi_version = plugin->info().agreed_abi_version;
        d->host.host_data = d.get();
        d->host.host_name = "firelink-host";
        d->host.host_version = FIRELINK_VERSION_STRING;
        d->host.device_id = d->device_id.c_str();
        d->host.emit = device_emit;
        d->host.log = device_log;
        d->host.get_extension = device_get_extension;
        const fl_device *dev = nullptr;
        const auto config = m->config;
        const fl_status st = timed(d->handle, "create_device", [&] {
            return plugin->entry().create_device(d->driver_id.c_str(), &d->host,
                                                 config.empty() ? nullptr : bytes(config), config.size(), &dev);
        });
        if (st != FL_OK || !dev) return reply(m->call, st != FL_OK ? st : FL_ERROR, "create_device failed");
        if (dev->struct_size < FL_V1_0_SIZEOF_DEVICE || !dev->start || !dev->stop || !dev->destroy || !dev->command ||
            !dev->get_extension) {
            d.release();  // it may be unusable: leak it rather than call through a bad pointer
            return reply(m->call, FL_ERROR, "create_device returned an instance smaller than a v1.0 fl_device or "
                                            "with NULL functions");
        }
        d->dev = dev;
        const auto *t = static_cast<const fl_device_timer *>(dev->get_extension(dev, FL_EXT_TIMER));
        if (FL_HAS_FIELD(t, fl_device_timer, on_timer) && t->on_timer) d->timer_ext = t;
        const auto *tx = static_cast<const fl_device_transport *>(dev->get_extension(dev, FL_EXT_TRANSPORT));
        if (FL_HAS_FIELD(tx, fl_device_transport, on_state) && tx->on_data && tx->on_state) d->transport_ext = tx;
        const auto *cx = static_cast<const fl_device_commit *>(dev->get_extension(dev, FL_EXT_COMMIT));
        if (FL_HAS_FIELD(cx, fl_device_commit, on_committed) && cx->on_committed) d->commit_ext = cx;
        const auto handle = d->handle;
        devices[handle] = std::move(d);
        return reply(m->call, FL_OK);
    }
    if (const auto *m = std::get_if<iso::lifecycle_msg>(&message)) {
        if (m->type == iso::msg::destroy) {
            auto it = devices.find(m->device);
            if (it == devices.end()) return reply(m->call, FL_NOT_FOUND);
            auto &d = *it->second;
            if (d.started) {
                timed(d.handle, "stop", [&] { return d.dev->stop(d.dev); });
                d.after_stop();
            }
            timed(d.handle, "destroy", [&] {
                d.dev->destroy(d.dev);
                return 0;
            });
            devices.erase(it);
            return reply(m->call, FL_OK);
        }
        auto *d = find(m->device);
        if (m->type == iso::msg::start) {
            if (!d || d->started) return reply(m->call, FL_MISUSE);
            d->started = true;
            const fl_status st = timed(d->handle, "start", [&] { return d->dev->start(d->dev); });
            if (st != FL_OK) d->after_stop();
            return reply(m->call, st);
        }
        if (!d || !d->started) return reply(m->call, FL_MISUSE);
        const fl_status st = timed(d->handle, "stop", [&] { return d->dev->stop(d->dev); });
        d->after_stop();
        return reply(m->call, st);
    }
    if (const auto *m = std::get_if<iso::command_msg>(&message)) {
        auto *d = find(m->device);
        if (!d || !d->started) return reply(m->call, FL_CLOSED);
        const auto cmd = m->command;
        return reply(m->call,
                     timed(d->handle, "command", [&] { return d->dev->command(d->dev, bytes(cmd), cmd.size()); }));
    }
    if (const auto *m = std::get_if<iso::identify_msg>(&message)) {
        const std::string driver(m->driver_id);
        const auto data = m->bytes;
        const auto *ext = static_cast<const fl_plugin_identify *>(plugin->entry().get_extension(FL_EXT_IDENTIFY));
        if (!FL_HAS_FIELD(ext, fl_plugin_identify, identify) || !ext->identify) return reply(m->call, FL_UNSUPPORTED);
        char buf[256];
        std::size_t len = 0;
        const fl_status st = timed(0, "identify", [&] {
            return ext->identify(driver.c_str(), bytes(data), data.size(), buf, sizeof buf, &len);
        });
        if (st == FL_OK && (len == 0 || len > sizeof buf)) return reply(m->call, FL_INVALID_ARGUMENT);
        return reply(m->call, st, st == FL_OK ? std::string_view(buf, len) : std::string_view{});
    }
    if (const auto *m = std::get_if<iso::data_msg>(&message)) {
        auto *d = find(m->device);
        if (!d) {  // destroyed meanwhile: the credit still comes back
            auto f = iso::encoded(iso::consumed_msg{m->device, m->bytes.size()});
            out->send_always(f);
            return;
        }
        // Bytes wait, in order, while the driver's last event was refused FL_BUSY: a driver that cannot pass its
        // events on is not handed more to make events of.
        if (d->congested || !d->waiting_data.empty()) {
            d->waiting_data.emplace_back(m->bytes);
            return;
        }
        d->deliver(m->bytes);
        return;
    }
    if (const auto *m = std::get_if<iso::state_msg>(&message)) {
        auto *d = find(m->device);
        if (!d) return;
        const int state = m->state;
        if (state == FL_LINK_OPEN) d->wire_up = true;
        if (state == FL_LINK_LOST || state == FL_LINK_FAILED || state == FL_LINK_CLOSED) d->wire_up = false;
        if (state != FL_LINK_OPEN) d->in_request = false;
        if (d->started && d->transport_ext)
            timed(d->handle, "on_state", [&] { d->transport_ext->on_state(d->dev, state, m->reason); });
        return;
    }
    if (const auto *m = std::get_if<iso::ping_msg>(&message)) {
        auto f = iso::encoded(iso::pong_msg{m->n});
        out->send_always(f);
        return;
    }
    if (const auto *m = std::get_if<iso::admit_msg>(&message)) {
        std::set<std::string, std::less<>> kinds(m->busy_kinds.begin(), m->busy_kinds.end());
        {
            std::lock_guard lock(busy_mutex);
            busy_kinds.swap(kinds);
        }
        relieve();
        return;
    }
    if (std::holds_alternative<iso::room_msg>(message)) {  // the host made room in a ring we waited for
        relieve();
        return;
    }
    if (const auto *m = std::get_if<iso::committed_msg>(&message)) {
        auto *d = find(m->device);
        if (d && d->started && d->commit_ext)
            timed(d->handle, "on_committed", [&] { d->commit_ext->on_committed(d->dev, m->through); });
        return;
    }
}

// The host closed the channel: every device is stopped and destroyed, then the plugin deinitialised.
void runner::shutdown() {
    for (auto &[handle, d] : devices) {
        if (d->started) {
            timed(handle, "stop", [&] { return d->dev->stop(d->dev); });
            d->after_stop();
        }
        d->dev->destroy(d->dev);
    }
    devices.clear();
    plugin.reset();  // deinit, unload
    io.stop();
}

void refuse(iso::frame_writer &out, std::string_view reason, std::string_view detail) {
    auto f = iso::encoded(iso::refused_msg{reason, detail});
    out.send_always(f);
}

}  // namespace

int main(int argc, char **argv) {
    std::string plugin_file;
    int plugin_fd = -1;  // --plugin-fd: the file as the host opened and checked it
    iso::runner_limits limits;
    bool have_channel = false, have_rings = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view key = argv[i];
        const char *value = argv[i + 1];
        if (key == "--channel") have_channel = std::atoi(value) == channel_fd;
        else if (key == "--plugin") plugin_file = value;
        else if (key == "--plugin-fd") plugin_fd = std::atoi(value);
        else if (key == "--memory-mb") limits.memory_mb = std::atoll(value);
        else if (key == "--open-files") limits.open_files = std::atoll(value);
        else if (key == "--user") limits.user = value;
        else if (key == "--uid") limits.uid = static_cast<uid_t>(std::strtoul(value, nullptr, 10));
        else if (key == "--warn-ms") limits.warn_ms = std::atoll(value);
        else if (key == "--rings") have_rings = std::atoi(value) == rings_fd;
    }
    if (!have_channel || !have_rings || plugin_file.empty()) {
        std::fprintf(stderr,
                     "firelink-runner is started by firelink-host, not by hand (--channel 3 --rings 4 --plugin FILE)\n");
        return 2;
    }
    // The file is checked and opened with the host's rights, and loaded through that descriptor once the runner has
    // given them up: its own uid need not be able to reach the plugin's folder (/root/..., a 0700 tree). All of it
    // before the first thread (the channel's writer): a uid change by system call is one thread's, and a thread left
    // with the old ids would be the plugin's way back to them. What went wrong is told once the channel is up.
    std::string refusal_reason, refusal;
    if (auto why = iso::check_plugin_file(plugin_file); !why.empty()) {
        refusal_reason = "load_failed";
        refusal = "the plugin file is not safe to load: " + why;
    } else if (plugin_fd < 3 && (plugin_fd = ::open(plugin_file.c_str(), O_RDONLY | O_CLOEXEC)) < 0) {
        refusal_reason = "not_found";
        refusal = plugin_file + ": " + std::strerror(errno);
    } else if (auto lowered = iso::lower_privileges(limits); !lowered.empty()) {
        refusal_reason = "load_failed";
        refusal = "the runner cannot lower its privileges: " + lowered;
    }

    runner r;
    the_runner = &r;
    r.driver_thread = std::this_thread::get_id();
    if (limits.warn_ms > 0) r.slow_call = std::chrono::milliseconds(limits.warn_ms);
    r.out = std::make_unique<iso::frame_writer>(channel_fd, max_pending);
    if (!refusal.empty()) {
        refuse(*r.out, refusal_reason, refusal);
        r.out.reset();
        return 3;
    }
    try {
        r.rings.emplace(iso::ring_memory::attach(rings_fd));
        r.producer.emplace(*r.rings);
    } catch (const std::exception &e) {
        refuse(*r.out, "load_failed", std::string("firelink-runner: ") + e.what());
        r.out.reset();
        return 3;
    }
    firelink::core::plugin_loader loader;
    auto loaded = loader.load("/proc/self/fd/" + std::to_string(plugin_fd));
    if (!loaded) {
        refuse(*r.out, firelink::core::to_string(loaded.error().reason), loaded.error().detail);
        r.out.reset();
        return 3;
    }
    ::close(plugin_fd);  // the library stays mapped
    r.plugin = std::move(loaded).value();
    r.plugin_host.struct_size = sizeof(fl_host);
    r.plugin_host.abi_version = r.plugin->info().agreed_abi_version;
    r.plugin_host.host_name = "firelink-host";
    r.plugin_host.host_version = FIRELINK_VERSION_STRING;
    r.plugin_host.emit = plugin_emit;
    r.plugin_host.log = plugin_log;
    r.plugin_host.get_extension = plugin_get_extension;
    if (const fl_status st = r.plugin->init(&r.plugin_host); st != FL_OK) {
        refuse(*r.out, "init_failed", "init returned " + std::to_string(st));
        r.out.reset();
        return 3;
    }
    {
        iso::hello_msg h;
        h.info = r.plugin->info();
        h.info.file = plugin_file;  // not the descriptor it was loaded through
        const auto *ext = static_cast<const fl_plugin_identify *>(r.plugin->entry().get_extension(FL_EXT_IDENTIFY));
        h.can_identify = FL_HAS_FIELD(ext, fl_plugin_identify, identify) && ext->identify != nullptr;
        auto f = iso::encoded(h);
        r.out->send_always(f);
    }

    // The reader hands every message to the driver thread, in order; a pong answered there proves that thread is
    // not stuck in the plugin.
    auto work = asio::make_work_guard(r.io);
    // Each message is decoded (checked) here, then handled there with the frame it points into. What waits in
    // between is bounded by the host's credits (wire data) and its calls (one per device at a time).
    std::thread reader([&r] {
        iso::frame_reader in(channel_fd, false, iso::max_host_frame);
        msgpack::object_handle m;
        while (in.next(m)) {
            auto frame = std::make_shared<msgpack::object_handle>(std::move(m));
            std::shared_ptr<iso::host_message> message;
            try {
                message = std::make_shared<iso::host_message>(iso::decode_host_message(frame->get()));
            } catch (const iso::malformed &e) {
                r.log(0, FL_LOG_ERROR, std::string("firelink-runner: a malformed message from the host: ") + e.what() +
                                           "; ending");
                break;
            }
            asio::post(r.io, [&r, frame, message] { r.handle(*message); });
        }
        asio::post(r.io, [&r] { r.shutdown(); });
    });
    r.io.run();
    reader.join();
    r.out.reset();  // sends what is left
    return 0;
}
