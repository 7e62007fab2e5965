#include "firelink/core/device_runtime.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <unordered_map>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <firelink/version.h>
#include <firelink/payload.hpp>
#include <firelink/text.hpp>

#include "firelink/core/event_check.hpp"

namespace firelink::core {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {
constexpr const char *host_name = "firelink-host";
constexpr const char *host_version = FIRELINK_VERSION_STRING;

spdlog::level::level_enum to_spdlog(std::int32_t level) {
    switch (level) {
    case FL_LOG_TRACE: return spdlog::level::trace;
    case FL_LOG_DEBUG: return spdlog::level::debug;
    case FL_LOG_INFO: return spdlog::level::info;
    case FL_LOG_WARN: return spdlog::level::warn;
    default: return spdlog::level::err;
    }
}

std::int64_t now_ns() { return clock::now().time_since_epoch().count(); }

template <class F>
void notify(const F &f, auto &&...args) {
    if (f) f(std::forward<decltype(args)>(args)...);
}

// What a driver says while the host waits on one of its calls, kept for the host's report of that call: enough for
// a reason, not a log.
constexpr std::size_t said_max = 900;

// Defined below, after the slot; the slot's strand work raises and ends its device's host faults too.
device_state state_name(const device_runtime::device_slot &s);
bool raise_on(device_runtime::device_slot &s, host_fault f, const std::string &message);
bool end_on(device_runtime::device_slot &s, host_fault f, const std::string &message);
}  // namespace

const char *to_string(host_fault f) {
    switch (f) {
    case host_fault::device_down: return "device_down";
    case host_fault::config_rejected: return "config_rejected";
    case host_fault::identity_conflict: return "identity_conflict";
    }
    return "device_down";
}

// One device id's open host faults. The mutex also orders a raise and its restore into the sink.
struct device_runtime::fault_list {
    mutable std::mutex mutex;
    std::map<host_fault, open_host_fault> open;

    std::optional<std::string> message(host_fault f) const {
        std::lock_guard lock(mutex);
        auto it = open.find(f);
        return it == open.end() ? std::nullopt : std::optional<std::string>(it->second.message);
    }
};

// The plugin-level context: its fl_host (device_id NULL, emit refused).
struct device_runtime::plugin_slot {
    std::shared_ptr<plugin> p;  // the library stays loaded while the runtime may call into it
    fl_host host{};
    bool we_initialised = false;
};

enum class life { created, started, stopped };

struct device_runtime::device_slot : std::enable_shared_from_this<device_slot> {
    device_slot(asio::io_context &io, const runtime_options &opt) : strand(asio::make_strand(io)), options(opt) {}

    asio::strand<asio::io_context::executor_type> strand;
    const runtime_options &options;
    const event_sink *sink = nullptr;

    std::string device_id, plugin_id, driver_id, device_class, label;
    std::shared_ptr<const std::map<std::string, std::string>> site;
    std::shared_ptr<plugin> owner;
    std::shared_ptr<condition_list> conditions;  // of this device id: outlives the instance
    std::shared_ptr<device_runtime::fault_list> faults;  // of this device id too (a trial's own)
    bool no_instance = false;  // a down device's slot (set_down): listed with its faults; no driver to call
    fl_host host{};
    const fl_device *device = nullptr;
    const fl_device_timer *timer_ext = nullptr;
    const fl_device_transport *transport_ext = nullptr;
    const fl_device_commit *commit_ext = nullptr;  // set once at create, before any event
    std::unique_ptr<transport::link> link;  // strand-only
    int last_link_state = -1;               // strand-only
    std::chrono::milliseconds heartbeat{0};

    std::atomic<life> state{life::created};
    std::atomic<bool> faulted{false};
    std::atomic<bool> offline{false};
    std::atomic<std::uint64_t> sequence{0}, accepted{0}, refused{0}, deferred{0}, slow_callbacks{0}, commands{0};
    std::atomic<std::int64_t> last_refusal_log_ns{0};
    std::atomic<std::int64_t> last_traffic_ns{0};
    std::atomic<std::int64_t> last_seen_wall_ms{0};
    std::mutex emit_mutex;  // sequence numbers in the order events reach the sink
    std::mutex offline_mutex;
    std::string offline_event_id;
    std::uint64_t offline_count = 0;
    // The driver's process is down (set_driver_down); the open faults it made, under offline_mutex.
    std::atomic<bool> driver_down{false};
    std::string driver_down_reason;
    std::vector<std::string> driver_fault_ids;

    // The call into the plugin in progress, for the watchdog thread.
    std::atomic<std::int64_t> call_since_ns{0};
    std::atomic<const char *> call_name{nullptr};
    std::atomic<bool> call_reported{false};

    // Strand-only state.
    struct timer_state {
        std::unique_ptr<asio::steady_timer> timer;
        std::chrono::milliseconds period;
        bool oneshot;
    };
    std::unordered_map<std::uint64_t, timer_state> timers;
    std::uint64_t next_timer_id = 1;
    std::unique_ptr<asio::steady_timer> liveness_timer;
    // Backpressure on the wire (strand-only): why it is paused (wire_hold bits), and the kind the queue last
    // refused, which the relief timer asks about until it is taken again.
    unsigned wire_holds = 0;
    std::string refused_kind;
    std::unique_ptr<asio::steady_timer> relief_timer;
    // Whether the wire has ever opened since the device started (strand-only): a wire that never does is device_down
    // with what its opens answered.
    std::unique_ptr<asio::steady_timer> wire_timer;
    bool wire_opened = false;
    fl_status last_link_reason = FL_OK;
    std::string wire_name;

    // The driver's warnings and errors while the host waits to report on one of its calls (create, start): its own
    // reason for a refusal, which the status alone does not give. Logged as ever; kept only while listening.
    std::mutex said_mutex;
    bool listening = false;
    std::string said;

    void listen() {
        std::lock_guard lock(said_mutex);
        listening = true;
        said.clear();
    }
    void heard(std::int32_t level, const char *message) {
        if (level < FL_LOG_WARN || !message) return;
        std::lock_guard lock(said_mutex);
        if (!listening || said.size() >= said_max) return;
        if (!said.empty()) said += "; ";
        said.append(message, std::min(std::strlen(message), said_max - std::min(said.size(), said_max)));
    }
    // What was heard since listen(), and listening ends.
    std::string take_said() {
        std::lock_guard lock(said_mutex);
        listening = false;
        return std::move(said);
    }

    bool started() const { return state == life::started; }
    bool callable() const { return started() && !faulted; }
    bool down() const { return faults->message(host_fault::device_down).has_value(); }

    // Runs one call into the plugin on this thread, visible to the watchdog while it runs.
    template <class F>
    auto timed(const char *what, F &&f) {
        call_name = what;
        call_reported = false;
        const auto t0 = now_ns();
        call_since_ns = t0;
        struct done {
            device_slot *self;
            std::int64_t t0;
            ~done() {
                self->call_since_ns = 0;
                const auto took = std::chrono::nanoseconds(now_ns() - t0);
                if (took > self->options.watchdog_warn && !self->call_reported.exchange(true))
                    self->report_slow(self->call_name, std::chrono::duration_cast<std::chrono::milliseconds>(took));
            }
        } d{this, t0};
        return f();
    }

    void report_slow(const char *what, std::chrono::milliseconds took) {
        slow_callbacks++;
        spdlog::warn("[{}] device {}: {} ran {} ms (bound {} ms): callbacks must not block", label, device_id,
                     what ? what : "call", took.count(), options.watchdog_warn.count());
        notify(options.observer.overrun, device_id);
    }

    // Runs f on the strand and waits for it, at most `limit`; f must own what it uses (it may outlive the wait).
    // If f has not begun by then it never will, and `not_run` is answered; if it has begun, the wait goes on for
    // another `limit` and then answers `no_answer` (the call goes on; the watchdog reports it).
    // Rationale: a command the host reported as not executed must never execute later.
    template <class R, class F>
    R on_strand(F f, R not_run, R no_answer, std::chrono::milliseconds limit) {
        enum { queued, running, abandoned };
        auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
        auto phase = std::make_shared<std::atomic<int>>(queued);
        auto result = task->get_future();
        asio::post(strand, [task, phase] {
            int expected = queued;
            if (phase->compare_exchange_strong(expected, running)) (*task)();
        });
        if (result.wait_for(limit) == std::future_status::ready) return result.get();
        int expected = queued;
        if (phase->compare_exchange_strong(expected, abandoned)) {
            spdlog::error("[{}] device {}: its strand did not take the call within {} ms; the call is dropped", label,
                          device_id, limit.count());
            return not_run;
        }
        if (result.wait_for(limit) == std::future_status::ready) return result.get();
        spdlog::error("[{}] device {}: a call into the driver has not returned after {} ms", label, device_id,
                      2 * limit.count());
        return no_answer;
    }

    std::chrono::milliseconds strand_limit() const { return options.watchdog_fault * 2 + 1s; }

    // ---- events -------------------------------------------------------------------------------------------------

    // event_id and ends: a driver event's, for its open conditions; the host's own events leave them empty.
    void deliver(std::vector<std::uint8_t> payload, std::string kind, std::string code, bool from_host,
                 std::string_view event_id = {}, std::string_view ends = {}) {
        accepted_event ev;
        ev.gateway_id = options.gateway_id;
        ev.plugin_id = plugin_id;
        ev.device_id = device_id;
        ev.device_class = device_class;
        ev.site = site;
        ev.from_host = from_host;
        ev.kind = std::move(kind);
        ev.code = std::move(code);
        ev.payload = std::move(payload);
        {
            std::lock_guard lock(emit_mutex);
            ev.received_wall = std::chrono::system_clock::now();
            ev.received_monotonic = clock::now();
            ev.sequence = ++sequence;
            // Under emit_mutex: the list changes in the order the sinks see the events, so a durable sink stores
            // the changes in the order they happened.
            if (!from_host)
                ev.condition = conditions->apply(
                    device_id, ev.kind, ev.code, event_id, ends, ev.payload,
                    std::chrono::duration_cast<std::chrono::milliseconds>(ev.received_wall.time_since_epoch()).count());
            // A driver's event takes the next commit number here, under the lock that orders events into the sink,
            // so numbers follow the order the pipeline receives them (and emit answers FL_OK).
            if (!from_host) {
                const auto n = ++emitted;
                if (commit_ext)
                    ev.on_durable = [weak = weak_from_this(), n] {
                        if (auto self = weak.lock()) self->durable(n);
                    };
            }
            accepted++;
            notify(options.observer.accepted, device_id, device_class, ev.kind);
            (*sink)(std::move(ev));
        }
    }

    // ---- commit notification (firelink.commit/1) ----------------------------------------------------------------
    // Commits complete out of order (the queue commits alarms first), so the device is told a watermark: the
    // largest n such that 1..n are all durable. `ahead` holds what is durable beyond it, ahead[i] for number
    // through + 1 + i; it is bounded by the events in flight, which the queue's own pending bound limits.

    std::atomic<std::uint64_t> emitted{0};  // the driver's events numbered so far, under emit_mutex
    std::mutex commit_mutex;
    std::uint64_t committed_through = 0;    // under commit_mutex
    std::deque<bool> ahead;                 // under commit_mutex
    bool notice_posted = false;             // under commit_mutex: at most one notification waits on the strand
    std::uint64_t told_through = 0;         // strand-only: what on_committed last said

    void durable(std::uint64_t n) {
        {
            std::lock_guard lock(commit_mutex);
            if (n <= committed_through) return;
            const auto i = static_cast<std::size_t>(n - committed_through - 1);
            if (ahead.size() <= i) ahead.resize(i + 1, false);
            ahead[i] = true;
            if (!ahead.front()) return;
            while (!ahead.empty() && ahead.front()) {
                ahead.pop_front();
                ++committed_through;
            }
            if (notice_posted) return;
            notice_posted = true;
        }
        asio::post(strand, [self = shared_from_this()] { self->tell_committed(); });
    }

    // On the strand: tells the device the watermark, if it moved and the device can be called. What is not told
    // now (the device stopped, or faulted) is told after its next start.
    void tell_committed() {
        std::uint64_t through;
        {
            std::lock_guard lock(commit_mutex);
            notice_posted = false;
            through = committed_through;
        }
        if (!commit_ext || !device || !callable() || through <= told_through) return;
        told_through = through;
        timed("on_committed", [&] { commit_ext->on_committed(device, through); });
    }

    void host_event(const event &ev) {
        deliver(ev.pack(), to_string(ev.kind()), ev.code(), true);
    }

    // Traffic from the device (bytes in, or an event from its driver): liveness restores an offline device.
    void note_traffic() {
        last_traffic_ns = now_ns();
        last_seen_wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        if (!offline.load()) return;
        // Under the same lock as the offline event, so a restore never overtakes the event it ends.
        std::lock_guard lock(offline_mutex);
        if (!offline.exchange(false)) return;
        spdlog::info("[{}] device {}: traffic again, back online", label, device_id);
        host_event(event{event_kind::restore, "offline"}.ends(offline_event_id).message("the device is answering again"));
        notify(options.observer.state, device_id, state_name(*this));
    }

    // ---- liveness (strand) -------------------------------------------------------------------------------------

    void arm_liveness() {
        if (heartbeat.count() <= 0) return;
        const auto period = std::clamp<std::chrono::milliseconds>(heartbeat / 4, 20ms, 5s);
        if (!liveness_timer) liveness_timer = std::make_unique<asio::steady_timer>(strand);
        liveness_timer->expires_after(period);
        liveness_timer->async_wait([self = shared_from_this()](const boost::system::error_code &ec) {
            if (ec || !self->started()) return;
            self->check_liveness();
            self->arm_liveness();
        });
    }

    void check_liveness() {
        if (offline.load()) return;
        std::lock_guard lock(offline_mutex);
        const auto silence = std::chrono::nanoseconds(now_ns() - last_traffic_ns.load());
        if (silence <= heartbeat || offline.load()) return;
        offline_event_id = "offline-" + std::to_string(++offline_count);
        const std::string id = offline_event_id;
        offline = true;
        const auto secs = std::chrono::duration_cast<std::chrono::milliseconds>(silence).count() / 1000.0;
        spdlog::warn("[{}] device {}: silent for {:.1f} s (budget {} ms): offline", label, device_id, secs,
                     heartbeat.count());
        host_event(event{event_kind::offline, "offline"}
                       .id(id)
                       .level(severity::major)
                       .message("no traffic from the device for " + std::to_string(static_cast<long>(secs)) +
                                " s (budget " + std::to_string(heartbeat.count() / 1000) + " s)"));
        notify(options.observer.state, device_id, state_name(*this));
    }

    // After a start with a wire: one that has not opened within the liveness budget (60 s with liveness off) means
    // the device cannot run; device_down says so, and its restore follows the first open (link_events).
    void arm_wire_check() {
        if (!link || wire_opened) return;
        if (!wire_timer) wire_timer = std::make_unique<asio::steady_timer>(strand);
        const auto budget = heartbeat.count() > 0 ? heartbeat : std::chrono::milliseconds(60s);
        wire_timer->expires_after(budget);
        wire_timer->async_wait([self = shared_from_this(), budget](const boost::system::error_code &ec) {
            if (ec || !self->started() || self->wire_opened) return;
            const auto failed = self->link->counters().errors;
            std::string why = fmt::format("its wire{} has not opened within {:g} s of the device's start",
                                          self->wire_name.empty() ? "" : " (" + self->wire_name + ")",
                                          budget.count() / 1000.0);
            if (failed > 0)
                why += ": " + std::to_string(failed) + " attempt(s) failed, the last with status " +
                       std::to_string(self->last_link_reason);
            spdlog::error("[{}] device {}: {}: the device is down", self->label, self->device_id, why);
            raise_on(*self, host_fault::device_down, why);
        });
    }

    // ---- backpressure on the wire (strand) -------------------------------------------------------------------

    void hold_wire(unsigned why, bool on) {
        const unsigned before = wire_holds;
        wire_holds = on ? (wire_holds | why) : (wire_holds & ~why);
        if (link && (before != 0) != (wire_holds != 0)) link->set_paused(wire_holds != 0);
    }

    // emit answered FL_BUSY for `kind`: no more of the device's bytes are read until the queue takes that kind
    // again, so a driver is never handed bytes it cannot turn into events (the device's flow control holds them).
    void queue_refused(std::string kind) {
        refused_kind = std::move(kind);
        hold_wire(hold_queue_busy, true);
        if (!relief_timer) relief_timer = std::make_unique<asio::steady_timer>(strand);
        if (relief_timer->expiry() > clock::now()) return;  // armed
        arm_relief();
    }

    void arm_relief() {
        relief_timer->expires_after(20ms);
        relief_timer->async_wait([self = shared_from_this()](const boost::system::error_code &ec) {
            if (ec) return;
            if (!self->started() || !self->options.admits || self->options.admits(self->refused_kind))
                self->hold_wire(hold_queue_busy, false);
            else
                self->arm_relief();
        });
    }

    // ---- timers (strand) ---------------------------------------------------------------------------------------

    void cancel_timers() {
        for (auto &[id, t] : timers) t.timer->cancel();
        timers.clear();
        if (liveness_timer) liveness_timer->cancel();
        if (wire_timer) wire_timer->cancel();
    }

    void arm(std::uint64_t id) {
        auto it = timers.find(id);
        if (it == timers.end()) return;
        // The timer was made on the strand, so its handler runs there.
        it->second.timer->async_wait([self = shared_from_this(), id](const boost::system::error_code &ec) {
            if (!ec) self->fire(id);
        });
    }

    void fire(std::uint64_t id) {
        auto it = timers.find(id);
        if (it == timers.end() || !callable()) return;
        if (it->second.oneshot) {
            timers.erase(it);
        } else {
            // No catching up: the next tick is a period after the later of the due time and now.
            auto &t = *it->second.timer;
            auto next = t.expiry() + it->second.period;
            if (next < clock::now()) next = clock::now() + it->second.period;
            t.expires_at(next);
            arm(id);
        }
        if (timer_ext) timed("on_timer", [&] { timer_ext->on_timer(device, id); });
    }

    // ---- wire (strand) -----------------------------------------------------------------------------------------

    transport::link_events link_events() {
        std::weak_ptr<device_slot> weak = shared_from_this();
        transport::link_events ev;
        ev.on_data = [weak](const std::uint8_t *data, std::size_t size) {
            auto self = weak.lock();
            if (!self) return;
            self->note_traffic();
            if (self->callable() && self->transport_ext)
                self->timed("on_data", [&] { self->transport_ext->on_data(self->device, data, size); });
        };
        ev.on_state = [weak](int state, fl_status reason) {
            auto self = weak.lock();
            if (!self) return;
            // One line per change of the device's link, with its id (the wire's own lines name the endpoint).
            if (state != self->last_link_state) {
                static constexpr const char *names[] = {"closed", "opening", "open", "lost", "failed", "reply timeout"};
                const char *name = state >= 0 && state <= FL_LINK_REPLY_TIMEOUT ? names[state] : "unknown";
                if (state == FL_LINK_LOST || state == FL_LINK_FAILED)
                    spdlog::warn("[{}] device {}: link {} (status {})", self->label, self->device_id, name, reason);
                else if (state != FL_LINK_REPLY_TIMEOUT)
                    spdlog::info("[{}] device {}: link {}", self->label, self->device_id, name);
                if (state != FL_LINK_REPLY_TIMEOUT) self->last_link_state = state;
            }
            if (state == FL_LINK_LOST || state == FL_LINK_FAILED || state == FL_LINK_REPLY_TIMEOUT)
                notify(self->options.observer.transport_errors, self->device_id, std::uint64_t{1});
            if (state == FL_LINK_FAILED || state == FL_LINK_LOST) self->last_link_reason = reason;
            if (state == FL_LINK_OPEN && !self->wire_opened) {
                self->wire_opened = true;
                if (self->wire_timer) self->wire_timer->cancel();
                end_on(*self, host_fault::device_down, "its wire is open: the device runs");
            }
            if (self->callable() && self->transport_ext)
                self->timed("on_state", [&] { self->transport_ext->on_state(self->device, state, reason); });
        };
        return ev;
    }
};

namespace {

using device_slot = device_runtime::device_slot;

// Slots that must outlive everything (see destroy): never freed, so a stray call through their fl_host stays safe.
std::mutex graveyard_mutex;
std::vector<std::shared_ptr<device_slot>> *graveyard = new std::vector<std::shared_ptr<device_slot>>();

void retire_forever(const std::shared_ptr<device_slot> &s) {
    std::lock_guard lock(graveyard_mutex);
    graveyard->push_back(s);
}

device_slot *slot_of(const fl_host *h) { return h ? static_cast<device_slot *>(h->host_data) : nullptr; }

// Host functions tagged [thread: device | state: started]: only from the device's own callbacks while started.
device_slot *on_device_thread(const fl_host *h) {
    auto *s = slot_of(h);
    return s && s->started() && s->strand.running_in_this_thread() ? s : nullptr;
}

fl_status timer_start(const fl_host *h, std::uint32_t period_ms, std::uint32_t flags, std::uint64_t *out) {
    auto *s = on_device_thread(h);
    if (!s || !out || period_ms == 0) return FL_MISUSE;
    const auto id = s->next_timer_id++;
    auto &t = s->timers[id];
    t.timer = std::make_unique<asio::steady_timer>(s->strand, std::chrono::milliseconds(period_ms));
    t.period = std::chrono::milliseconds(period_ms);
    t.oneshot = (flags & FL_TIMER_ONESHOT) != 0;
    s->arm(id);
    *out = id;
    return FL_OK;
}

fl_status timer_cancel(const fl_host *h, std::uint64_t id) {
    auto *s = on_device_thread(h);
    if (!s) return FL_MISUSE;
    auto it = s->timers.find(id);
    if (it == s->timers.end()) return FL_NOT_FOUND;
    it->second.timer->cancel();
    s->timers.erase(it);
    return FL_OK;
}

constexpr fl_host_timer host_timer_ext = {sizeof(fl_host_timer), timer_start, timer_cancel};

std::uint64_t commit_emitted(const fl_host *h) {
    auto *s = on_device_thread(h);
    return s ? s->emitted.load() : 0;
}

constexpr fl_host_commit host_commit_ext = {sizeof(fl_host_commit), commit_emitted};

std::int32_t wire_kind(const fl_host *h) {
    auto *s = slot_of(h);
    return s && s->link ? s->link->kind() : 0;
}
std::int32_t wire_unit(const fl_host *h) {
    auto *s = slot_of(h);
    return s && s->link ? s->link->unit() : -1;
}
fl_status wire_open(const fl_host *h) {
    auto *s = on_device_thread(h);
    return s && s->link ? s->link->open() : FL_MISUSE;
}
fl_status wire_write(const fl_host *h, const std::uint8_t *data, std::size_t size) {
    auto *s = on_device_thread(h);
    if (!s || !s->link || (!data && size)) return FL_MISUSE;
    return s->link->write(data, size);
}
fl_status wire_request(const fl_host *h, const std::uint8_t *data, std::size_t size, std::uint32_t timeout_ms) {
    auto *s = on_device_thread(h);
    if (!s || !s->link || (!data && size)) return FL_MISUSE;
    return s->link->request(data, size, std::chrono::milliseconds(timeout_ms));
}
fl_status wire_end_request(const fl_host *h) {
    auto *s = on_device_thread(h);
    return s && s->link ? s->link->end_request() : FL_MISUSE;
}
fl_status wire_close(const fl_host *h) {
    auto *s = on_device_thread(h);
    if (!s || !s->link) return FL_MISUSE;
    const fl_status st = s->link->close();
    // The link says nothing after close; the driver is told FL_LINK_CLOSED, never from inside its own call.
    asio::post(s->strand, [self = s->shared_from_this()] {
        if (self->callable() && self->transport_ext)
            self->timed("on_state", [&] { self->transport_ext->on_state(self->device, FL_LINK_CLOSED, FL_OK); });
    });
    return st;
}

constexpr fl_host_transport host_transport_ext = {sizeof(fl_host_transport), wire_kind,       wire_open,
                                                  wire_write,                wire_request,    wire_end_request,
                                                  wire_close,                wire_unit};

fl_status device_emit(const fl_host *h, const std::uint8_t *data, std::size_t size) {
    auto *s = slot_of(h);
    if (!s || !s->started()) return FL_MISUSE;
    auto summary = check_event(data, size, s->device_class);
    if (!summary) {
        s->refused++;
        notify(s->options.observer.refused, s->device_id);
        // Rate-limited: one line per device per second, with the running count.
        const auto now = now_ns();
        auto last = s->last_refusal_log_ns.load();
        if (now - last > 1'000'000'000 && s->last_refusal_log_ns.compare_exchange_strong(last, now))
            spdlog::warn("[{}] device {}: refused an event ({} refused so far): {}", s->label, s->device_id,
                         s->refused.load(), summary.why());
        return FL_INVALID_ARGUMENT;
    }
    s->note_traffic();
    if (s->options.admits && !s->options.admits(summary->kind)) {
        s->deferred++;
        const auto now = now_ns();
        auto last = s->last_refusal_log_ns.load();
        if (now - last > 1'000'000'000 && s->last_refusal_log_ns.compare_exchange_strong(last, now))
            spdlog::warn("[{}] device {}: the host cannot take more now (its queue or its record is full); a {} event is "
                         "deferred (FL_BUSY, {} so far)",
                         s->label, s->device_id, summary->kind, s->deferred.load());
        asio::post(s->strand, [self = s->shared_from_this(), kind = summary->kind]() mutable {
            self->queue_refused(std::move(kind));
        });
        return FL_BUSY;
    }
    s->deliver(std::vector<std::uint8_t>(data, data + size), std::move(summary->kind), std::move(summary->code),
               false, summary->event_id, summary->ends);
    return FL_OK;
}

void device_log(const fl_host *h, std::int32_t level, const char *message) {
    auto *s = slot_of(h);
    if (!s) return;
    spdlog::log(to_spdlog(level), "[{}] device {}: {}", s->label, s->device_id, message ? message : "");
    s->heard(level, message);
}

// firelink.conditions/1. A snapshot under the list's own lock, then the visits without it: visit may call back into
// the host, and the call must work from create_device on the control thread, so nothing here touches the strand.
std::size_t conditions_list(const fl_host *h, void (*visit)(void *, const fl_condition *), void *context) {
    auto *s = slot_of(h);
    if (!s || !visit || s->state == life::stopped) return 0;
    const auto open = s->conditions->snapshot();
    for (const auto &c : open) {
        const fl_condition fc{.struct_size = sizeof(fl_condition), .event_id = c.event_id.c_str(),
                              .kind = c.kind.c_str(), .code = c.code.c_str(), .event = c.event.data(),
                              .event_size = c.event.size(), .raised_wall_ms = c.raised_wall_ms};
        visit(context, &fc);
    }
    return open.size();
}

constexpr fl_host_conditions host_conditions_ext = {sizeof(fl_host_conditions), conditions_list};

const void *device_get_extension(const fl_host *h, const char *id) {
    auto *s = slot_of(h);
    if (!s || !id) return nullptr;
    const std::string_view ext(id);
    if (ext == FL_EXT_TIMER) return &host_timer_ext;
    if (ext == FL_EXT_COMMIT) return &host_commit_ext;
    if (ext == FL_EXT_TRANSPORT) return s->link ? &host_transport_ext : nullptr;
    if (ext == FL_EXT_CONDITIONS) return &host_conditions_ext;
    return nullptr;
}

fl_status plugin_emit(const fl_host *, const std::uint8_t *, std::size_t) { return FL_MISUSE; }

void plugin_log(const fl_host *h, std::int32_t level, const char *message) {
    const auto *ps = h ? static_cast<const device_runtime::plugin_slot *>(h->host_data) : nullptr;
    spdlog::log(to_spdlog(level), "[{}] {}", ps && ps->p ? ps->p->info().id : "?", message ? message : "");
}

const void *plugin_get_extension(const fl_host *, const char *) { return nullptr; }

// The fl_host of a plugin (device_id NULL) or of one of its devices: the same host at the ABI version the plugin
// agreed, with the level's own data and callbacks.
fl_host make_host(std::uint32_t abi_version, void *host_data, const char *device_id, decltype(fl_host::emit) emit,
                  decltype(fl_host::log) log, decltype(fl_host::get_extension) get_extension) {
    return fl_host{.struct_size = sizeof(fl_host), .abi_version = abi_version, .host_data = host_data,
                   .host_name = host_name, .host_version = host_version, .device_id = device_id, .emit = emit,
                   .log = log, .get_extension = get_extension};
}

device_state state_name(const device_slot &s) {
    if (s.down()) return device_state::down;
    if (s.faulted || s.driver_down) return device_state::faulted;
    switch (s.state.load()) {
    case life::created: return device_state::created;
    case life::started: return s.offline ? device_state::offline : device_state::started;
    case life::stopped: return device_state::stopped;
    }
    return device_state::created;
}

// A message the platform stores: at most the boundary's 1024 bytes, cut at a UTF-8 character.
std::string bounded(std::string m) {
    if (m.size() <= 1024) return m;
    return std::string(text::utf8_prefix(m, 1021)) + "...";
}

std::string event_id_of(host_fault f) {
    std::string id = to_string(f);
    std::replace(id.begin(), id.end(), '_', '-');
    return id;
}

bool raise_on(device_slot &s, host_fault f, const std::string &text) {
    const auto message = bounded(text);
    {
        std::lock_guard lock(s.faults->mutex);
        auto [it, fresh] = s.faults->open.try_emplace(f);
        if (!fresh && it->second.message == message) return false;
        if (fresh) {
            it->second.device_id = s.device_id;
            it->second.fault = f;
            it->second.since_wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count();
        }
        it->second.message = message;
        // The same event_id again replaces the open one at the platform: the newer reason is the one that holds.
        s.host_event(event{event_kind::fault, to_string(f)}
                         .id(event_id_of(f))
                         .level(f == host_fault::config_rejected ? severity::minor : severity::major)
                         .message(message));
    }
    notify(s.options.observer.state, s.device_id, state_name(s));
    return true;
}

bool end_on(device_slot &s, host_fault f, const std::string &text) {
    {
        std::lock_guard lock(s.faults->mutex);
        if (!s.faults->open.erase(f)) return false;
        s.host_event(event{event_kind::restore, to_string(f)}.ends(event_id_of(f)).message(bounded(text)));
    }
    spdlog::info("[{}] device {}: {} ended: {}", s.label, s.device_id, to_string(f), text);
    notify(s.options.observer.state, s.device_id, state_name(s));
    return true;
}

// A wire of the right kind that never opens (try_create).
class dormant final : public transport::link {
public:
    explicit dormant(int kind) : kind_(kind) {}
    int kind() const override { return kind_; }
    fl_status open() override { return FL_CLOSED; }
    fl_status write(const std::uint8_t *, std::size_t) override { return FL_CLOSED; }
    fl_status request(const std::uint8_t *, std::size_t, std::chrono::milliseconds) override { return FL_CLOSED; }
    fl_status end_request() override { return FL_MISUSE; }
    fl_status close() override { return FL_OK; }
    transport::link_counters counters() const override { return {}; }
    void set_paused(bool) override {}
    bool paused() const override { return false; }

private:
    int kind_;
};

}  // namespace

link_factory dormant_link(int fl_transport_kind, int unit) {
    return [fl_transport_kind, unit](transport::executor, transport::link_events) -> std::unique_ptr<transport::link> {
        auto l = std::make_unique<dormant>(fl_transport_kind);
        l->set_unit(unit);
        return l;
    };
}

std::string_view to_string(device_state s) {
    switch (s) {
    case device_state::created: return "created";
    case device_state::started: return "started";
    case device_state::stopped: return "stopped";
    case device_state::offline: return "offline";
    case device_state::faulted: return "faulted";
    case device_state::down: return "down";
    }
    return "created";
}

device_runtime::device_runtime(asio::io_context &io, event_sink sink, runtime_options options)
    : io_(io), sink_(std::move(sink)), options_(std::move(options)), no_sink_([](accepted_event &&) {}) {
    trial_options_.gateway_id = options_.gateway_id;
    trial_options_.watchdog_warn = options_.watchdog_warn;
    trial_options_.watchdog_fault = options_.watchdog_fault;
    watchdog_ = std::thread([this] { watchdog_loop(); });
}

device_runtime::~device_runtime() {
    destroy_all();
    {
        std::lock_guard lock(watchdog_mutex_);
        watchdog_stop_ = true;
    }
    watchdog_cv_.notify_all();
    watchdog_.join();
    std::lock_guard lock(graveyard_mutex);
    for (auto &ps : plugins_) {
        const bool retired = std::any_of(graveyard->begin(), graveyard->end(),
                                         [&](const auto &slot) { return slot->owner == ps->p; });
        if (ps->we_initialised && !retired) ps->p->deinit();
    }
}

// The watchdog sees calls that have not returned yet: it warns once past the warning bound, and past the fault
// bound marks the device faulted (a `driver_hung` fault event; no further calls into it).
void device_runtime::watchdog_loop() {
    const auto period = std::clamp<std::chrono::milliseconds>(options_.watchdog_warn / 2, 5ms, 100ms);
    std::unique_lock lock(watchdog_mutex_);
    while (!watchdog_cv_.wait_for(lock, period, [this] { return watchdog_stop_; })) {
        std::vector<std::shared_ptr<device_slot>> slots;
        {
            std::lock_guard devices_lock(mutex_);
            for (auto &[id, s] : devices_) slots.push_back(s);
        }
        for (auto &s : slots) {
            const auto since = s->call_since_ns.load();
            if (since == 0) continue;
            const auto running = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::nanoseconds(now_ns() - since));
            if (running > options_.watchdog_warn && !s->call_reported.exchange(true))
                s->report_slow(s->call_name.load(), running);
            if (running > options_.watchdog_fault && !s->faulted.exchange(true)) {
                const char *what = s->call_name.load();
                spdlog::error("[{}] device {}: {} has not returned for {} ms (hard bound {} ms): device faulted",
                              s->label, s->device_id, what ? what : "a call", running.count(),
                              options_.watchdog_fault.count());
                s->host_event(event{event_kind::fault, "driver_hung"}
                                  .id("driver-hung")
                                  .level(severity::major)
                                  .message(std::string("the driver's ") + (what ? what : "call") +
                                           " has not returned for " + std::to_string(running.count()) + " ms"));
                notify(options_.observer.state, s->device_id, device_state::faulted);
            }
        }
    }
}

bool device_runtime::provides(const std::string &extension_id) {
    return extension_id == FL_EXT_TIMER || extension_id == FL_EXT_TRANSPORT || extension_id == FL_EXT_CONDITIONS ||
           extension_id == FL_EXT_COMMIT;
}

std::shared_ptr<condition_list> device_runtime::conditions_of(const std::string &device_id) {
    auto &list = conditions_[device_id];
    if (!list) list = std::make_shared<condition_list>();
    return list;
}

void device_runtime::load_conditions(std::vector<open_condition> stored) {
    std::map<std::string, std::vector<open_condition>> by_device;
    for (auto &c : stored) by_device[c.device_id].push_back(std::move(c));
    std::lock_guard lock(mutex_);
    for (auto &[id, list] : by_device) conditions_of(id)->load(std::move(list));
}

std::shared_ptr<device_runtime::fault_list> device_runtime::faults_of(const std::string &device_id) {
    auto &list = faults_[device_id];
    if (!list) list = std::make_shared<fault_list>();
    return list;
}

void device_runtime::set_down(const down_spec &spec, const std::string &reason) {
    auto s = find(spec.device_id);
    if (!s) {
        s = std::make_shared<device_slot>(io_, options_);
        s->no_instance = true;
        s->sink = &sink_;
        s->device_id = spec.device_id;
        // Its records name a plugin as every record must: the host's own name when none has its driver.
        s->plugin_id = spec.plugin_id.empty() ? host_name : spec.plugin_id;
        s->driver_id = spec.driver_id;
        s->device_class = spec.device_class;
        s->label = s->plugin_id;
        s->site = std::make_shared<const std::map<std::string, std::string>>(spec.site);
        std::lock_guard lock(mutex_);
        s->conditions = conditions_of(spec.device_id);
        s->faults = faults_of(spec.device_id);
        devices_[spec.device_id] = s;
    }
    raise_on(*s, host_fault::device_down, reason);
}

bool device_runtime::raise_fault(const std::string &device_id, host_fault f, const std::string &message) {
    auto s = find(device_id);
    return s && raise_on(*s, f, message);
}

bool device_runtime::end_fault(const std::string &device_id, host_fault f, const std::string &message) {
    auto s = find(device_id);
    return s && end_on(*s, f, message);
}

std::vector<open_host_fault> device_runtime::open_faults(host_fault f) const {
    std::vector<std::shared_ptr<fault_list>> lists;
    {
        std::lock_guard lock(mutex_);
        for (const auto &[id, list] : faults_) lists.push_back(list);
    }
    std::vector<open_host_fault> out;
    for (const auto &list : lists) {
        std::lock_guard lock(list->mutex);
        if (auto it = list->open.find(f); it != list->open.end()) out.push_back(it->second);
    }
    std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.since_wall_ms < b.since_wall_ms; });
    return out;
}

std::vector<open_condition> device_runtime::open_conditions(const std::string &device_id) const {
    std::lock_guard lock(mutex_);
    auto it = conditions_.find(device_id);
    return it == conditions_.end() ? std::vector<open_condition>{} : it->second->snapshot();
}

result<> device_runtime::attach(const std::shared_ptr<plugin> &shared) {
    std::lock_guard lock(mutex_);
    for (auto &ps : plugins_)
        if (ps->p == shared) return {};
    auto ps = std::make_unique<plugin_slot>();
    ps->p = shared;
    auto &p = *shared;
    ps->host = make_host(p.info().agreed_abi_version, ps.get(), nullptr, plugin_emit, plugin_log, plugin_get_extension);
    if (!p.initialized()) {
        const fl_status st = p.init(&ps->host);
        if (st != FL_OK) return result<>::fail(st, "init_failed: init returned " + std::to_string(st));
        ps->we_initialised = true;
    }
    plugins_.push_back(std::move(ps));
    return {};
}

result<> device_runtime::create(const std::shared_ptr<plugin> &p, const std::string &driver_id,
                                const std::string &device_id, const std::vector<std::uint8_t> &config) {
    device_spec spec;
    spec.device_id = device_id;
    spec.driver_id = driver_id;
    spec.config = config;
    return create(p, spec);
}

result<std::shared_ptr<device_slot>> device_runtime::instantiate(const std::shared_ptr<plugin> &shared,
                                                                 const device_spec &spec, bool trial) {
    using made = result<std::shared_ptr<device_slot>>;
    auto fail = [](fl_status st, std::string reason) { return made::fail(st, std::move(reason)); };
    auto &p = *shared;
    const auto *driver = p.info().find_driver(spec.driver_id);
    if (!driver) return fail(FL_NOT_FOUND, "plugin " + p.info().id + " has no driver '" + spec.driver_id + "'");
    for (const auto &ext : driver->required_extensions) {
        if (ext == FL_EXT_TRANSPORT && !spec.make_link)
            return fail(FL_UNSUPPORTED, "driver '" + spec.driver_id + "' needs extension " + ext + ", but device '" +
                                            spec.device_id + "' has no wire configured");
        if (!provides(ext))
            return fail(FL_UNSUPPORTED,
                        "driver '" + spec.driver_id + "' needs extension " + ext + ", which this host does not provide");
    }
    if (auto existing = find(spec.device_id); !trial && existing && !existing->no_instance)
        return fail(FL_MISUSE, "a device with id '" + spec.device_id + "' already exists");
    if (auto attached = attach(shared); !attached) return attached.error();

    // A trial's instance emits into nothing and reports to no one: should its runner die meanwhile, the real device's
    // record and state are not its to change.
    auto slot = std::make_shared<device_slot>(io_, trial ? trial_options_ : options_);
    slot->sink = trial ? &no_sink_ : &sink_;
    slot->owner = shared;
    {
        std::lock_guard lock(mutex_);
        slot->conditions = conditions_of(spec.device_id);
        slot->faults = trial ? std::make_shared<fault_list>() : faults_of(spec.device_id);
    }
    slot->device_id = spec.device_id;
    slot->plugin_id = p.info().id;
    slot->driver_id = spec.driver_id;
    slot->device_class = driver->device_class;
    slot->label = p.info().id;
    slot->site = std::make_shared<const std::map<std::string, std::string>>(spec.site);
    slot->heartbeat = spec.heartbeat;
    slot->wire_name = spec.wire_name;
    slot->host = make_host(p.info().agreed_abi_version, slot.get(), slot->device_id.c_str(), device_emit, device_log,
                           device_get_extension);
    if (spec.make_link) {
        try {
            slot->link = spec.make_link(slot->strand, slot->link_events());
        } catch (const std::exception &e) {
            return fail(FL_IO, "device '" + spec.device_id + "': its wire cannot be made: " + e.what());
        }
        if (!slot->link) return fail(FL_IO, "device '" + spec.device_id + "': its wire cannot be made");
    }

    const fl_device *dev = nullptr;
    slot->listen();
    const fl_status st = slot->timed("create_device", [&] {
        return p.create_device(spec.driver_id.c_str(), &slot->host,
                               spec.config.empty() ? nullptr : spec.config.data(), spec.config.size(), &dev);
    });
    const auto said = slot->take_said();
    if (st != FL_OK || !dev)
        return fail(st != FL_OK ? st : FL_ERROR,
                    "create_device(" + spec.driver_id + ") returned " + std::to_string(st) +
                        (said.empty() ? " (the driver logged no reason)" : ": " + said));
    if (dev->struct_size < FL_V1_0_SIZEOF_DEVICE || !dev->start || !dev->stop || !dev->destroy || !dev->command ||
        !dev->get_extension)  // it may be unusable: leak it rather than call through a bad pointer
        return fail(FL_ERROR, "create_device returned an instance smaller than a v1.0 fl_device or with NULL functions");
    slot->device = dev;
    return slot;
}

result<> device_runtime::create(const std::shared_ptr<plugin> &shared, const device_spec &spec) {
    auto made = instantiate(shared, spec, false);
    if (!made) return made.error();
    auto slot = *made;
    const auto *dev = slot->device;
    const auto *timer_ext = static_cast<const fl_device_timer *>(dev->get_extension(dev, FL_EXT_TIMER));
    if (FL_HAS_FIELD(timer_ext, fl_device_timer, on_timer) && timer_ext->on_timer) slot->timer_ext = timer_ext;
    const auto *tx = static_cast<const fl_device_transport *>(dev->get_extension(dev, FL_EXT_TRANSPORT));
    if (FL_HAS_FIELD(tx, fl_device_transport, on_state) && tx->on_data && tx->on_state) slot->transport_ext = tx;
    const auto *cx = static_cast<const fl_device_commit *>(dev->get_extension(dev, FL_EXT_COMMIT));
    if (FL_HAS_FIELD(cx, fl_device_commit, on_committed) && cx->on_committed) slot->commit_ext = cx;
    if (slot->link && !slot->transport_ext)
        spdlog::warn("[{}] device {}: has a wire but its driver implements no {}", slot->label, slot->device_id,
                     FL_EXT_TRANSPORT);

    {
        std::lock_guard lock(mutex_);
        devices_[spec.device_id] = slot;  // in place of a place holder, if set_down left one
    }
    notify(options_.observer.state, spec.device_id, state_name(*slot));
    return {};
}

result<> device_runtime::try_create(const std::shared_ptr<plugin> &shared, const device_spec &spec) {
    auto made = instantiate(shared, spec, true);
    if (!made) return made.error();
    auto slot = *made;
    // Never started: destroy may come from this thread (its tag is `thread: any`), and nothing else can call it.
    slot->timed("destroy", [&] {
        slot->device->destroy(slot->device);
        return 0;
    });
    slot->device = nullptr;
    return {};
}

std::shared_ptr<device_runtime::device_slot> device_runtime::find(const std::string &device_id) const {
    std::lock_guard lock(mutex_);
    auto it = devices_.find(device_id);
    return it == devices_.end() ? nullptr : it->second;
}

bool device_runtime::has_device(const std::string &device_id) const { return find(device_id) != nullptr; }

result<> device_runtime::start(const std::string &device_id) {
    auto s = find(device_id);
    if (!s) return result<>::fail(FL_NOT_FOUND, "no device '" + device_id + "'");
    if (s->faulted) return result<>::fail(FL_MISUSE, "the device is faulted");
    if (s->no_instance) return result<>::fail(FL_MISUSE, "the device has no instance (it is down)");
    s->listen();
    const fl_status st = s->on_strand<fl_status>(
        [s] {
            if (s->started()) return FL_MISUSE;
            s->state = life::started;  // before the call: start may open the wire, arm timers and emit
            s->last_traffic_ns = now_ns();
            s->wire_opened = false;
            const fl_status r = s->timed("start", [&] { return s->device->start(s->device); });
            if (r != FL_OK) {
                s->state = life::created;
                s->cancel_timers();
                if (s->link) s->link->close();
                return r;
            }
            s->arm_liveness();
            // A device with a wire runs once its wire opens (link_events); one without, now.
            if (s->link) s->arm_wire_check();
            else end_on(*s, host_fault::device_down, "the device runs");
            // Commits while it was stopped are told now, after start returned (never from inside it).
            if (s->commit_ext) asio::post(s->strand, [s] { s->tell_committed(); });
            return r;
        },
        FL_TIMEOUT, FL_TIMEOUT, s->strand_limit());
    const auto said = s->take_said();
    if (st != FL_OK)
        return result<>::fail(st, "start returned " + std::to_string(st) +
                                      (said.empty() ? " (the driver logged no reason)" : ": " + said));
    notify(options_.observer.state, device_id, state_name(*s));
    return {};
}

result<> device_runtime::stop(const std::string &device_id) {
    auto s = find(device_id);
    if (!s) return result<>::fail(FL_NOT_FOUND, "no device '" + device_id + "'");
    const fl_status st = s->on_strand<fl_status>(
        [s] {
            if (!s->started()) return FL_MISUSE;
            const fl_status r = s->faulted ? FL_OK : s->timed("stop", [&] { return s->device->stop(s->device); });
            s->state = life::stopped;
            s->offline = false;
            s->cancel_timers();  // FL-HOST-12: the host reclaims timers and the wire after stop
            if (s->link) s->link->close();
            return r;
        },
        FL_TIMEOUT, FL_TIMEOUT, s->strand_limit());
    notify(options_.observer.state, device_id, state_name(*s));
    return result<>::of(st, "stop returned " + std::to_string(st));
}

result<> device_runtime::command(const std::string &device_id, const std::vector<std::uint8_t> &cmd) {
    auto s = find(device_id);
    if (!s) return result<>::fail(FL_NOT_FOUND, "no device '" + device_id + "'");
    std::string id, name;
    try {
        firelink::command parsed(cmd.data(), cmd.size());
        id = parsed.id();
        name = parsed.name();
    } catch (const std::exception &e) {
        return result<>::fail(FL_INVALID_ARGUMENT, std::string("malformed command: ") + e.what());
    }
    // Every command gets a result: the driver's, or this one from the host.
    auto refuse = [&](fl_status st, std::string reason) {
        s->host_event(event::command_result(id, false, "command '" + name + "' not executed: " + reason));
        return result<>::fail(st, std::move(reason));
    };
    // A driver that declares its commands never hears of another name (FL-HOST-37): the declaration is what
    // select-before-operate judged, so a name outside it is refused here, before the driver.
    if (s->owner)
        if (const auto *d = s->owner->info().find_driver(s->driver_id); d && d->declares_commands && !d->find_command(name))
            return refuse(FL_UNSUPPORTED, "driver '" + s->driver_id + "' does not declare a command '" + name + "'");
    if (s->no_instance)
        return refuse(FL_CLOSED, "the device is down: " + s->faults->message(host_fault::device_down).value_or("?"));
    if (s->faulted) return refuse(FL_CLOSED, "the device is faulted");
    if (s->driver_down) {
        std::string reason;
        {
            std::lock_guard lock(s->offline_mutex);
            reason = s->driver_down_reason;
        }
        return refuse(FL_CLOSED, reason);
    }
    if (!s->started()) return refuse(FL_CLOSED, "the device is not started");
    if (s->offline) return refuse(FL_CLOSED, "the device is offline");
    s->commands++;
    // Not taken in time: dropped, never executed (answered FL_BUSY, with a result). Begun and not returned:
    // FL_TIMEOUT, and the driver's own result follows.
    constexpr fl_status still_running = std::numeric_limits<fl_status>::min();
    const fl_status st = s->on_strand<fl_status>(
        [s, cmd] {
            if (!s->callable()) return FL_CLOSED;
            return s->timed("command", [&] { return s->device->command(s->device, cmd.data(), cmd.size()); });
        },
        FL_TIMEOUT, still_running, s->strand_limit());
    if (st == still_running)
        return result<>::fail(FL_TIMEOUT, "the driver took the command but has not returned; its result will follow");
    switch (st) {
    case FL_OK: return {};
    case FL_TIMEOUT: return refuse(FL_BUSY, "the device did not take the command in time; try again");
    case FL_UNSUPPORTED: return refuse(st, "the driver does not know this command");
    case FL_INVALID_ARGUMENT: return refuse(st, "the driver refused its arguments");
    case FL_BUSY: return refuse(st, "the driver is busy; try again");
    case FL_CLOSED:
        // Started when the call began: the driver's process ended during it (host/isolation).
        return refuse(st, s->started() ? "the driver stopped during the command; whether the device carried it out "
                                         "is unknown: read its state back"
                                       : "the device is not started");
    default: return refuse(st, "the driver returned " + std::to_string(st));
    }
}

void device_runtime::destroy(const std::string &device_id) {
    auto s = find(device_id);
    if (!s) return;
    s->on_strand<int>(
        [s] {
            if (s->started()) {
                if (!s->faulted) s->timed("stop", [&] { return s->device->stop(s->device); });
                s->state = life::stopped;
            }
            s->cancel_timers();
            // Closed, not released: status() may be reading its counters; the slot releases it.
            if (s->link) s->link->close();
            if (!s->faulted && s->device) s->timed("destroy", [&] {
                s->device->destroy(s->device);
                return 0;
            });
            s->device = nullptr;
            return 0;
        },
        1, 1, s->strand_limit());
    // A device whose destroy was not called (faulted, or its strand never answered) may still have driver code
    // running that holds its fl_host: the slot, and with it the plugin, is kept for the life of the process.
    if (s->device || s->faulted) retire_forever(s);
    std::lock_guard lock(mutex_);
    devices_.erase(device_id);
}

void device_runtime::start_all() {
    for (const auto &id : device_ids()) start(id);
}

void device_runtime::stop_all() {
    for (const auto &id : device_ids()) {
        auto s = find(id);
        if (s && s->started()) stop(id);
    }
}

void device_runtime::destroy_all() {
    for (const auto &id : device_ids()) destroy(id);
}

std::vector<std::string> device_runtime::device_ids() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> ids;
    for (const auto &[id, s] : devices_) ids.push_back(id);
    return ids;
}

std::optional<device_status> device_runtime::status(const std::string &device_id) const {
    auto s = find(device_id);
    if (!s) return std::nullopt;
    device_status st;
    st.device_id = s->device_id;
    st.plugin_id = s->plugin_id;
    st.driver_id = s->driver_id;
    st.device_class = s->device_class;
    st.state = state_name(*s);
    st.accepted = s->accepted;
    st.refused = s->refused;
    st.deferred = s->deferred;
    st.slow_callbacks = s->slow_callbacks;
    st.commands = s->commands;
    st.down_reason = s->faults->message(host_fault::device_down).value_or("");
    st.config_rejected = s->faults->message(host_fault::config_rejected).value_or("");
    st.open_conditions = s->conditions->size();
    st.conditions_dropped = s->conditions->dropped();
    if (auto ms = s->last_seen_wall_ms.load())
        st.last_seen = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
    if (s->link) {
        // link counters are atomics, safe to read from here
        st.link = s->link->counters();
        st.has_link = true;
        st.link_paused = s->link->paused();
    }
    st.takes_commits = s->commit_ext != nullptr;
    st.emitted = s->emitted.load();
    {
        std::lock_guard lock(s->commit_mutex);
        st.committed_through = s->committed_through;
    }
    return st;
}

void post_to_device(const fl_host *h, std::function<void(transport::link *)> f) {
    auto *s = slot_of(h);
    if (!s) return;
    asio::post(s->strand, [self = s->shared_from_this(), f = std::move(f)] { f(self->link.get()); });
}

void hold_wire(const fl_host *h, wire_hold why, bool on) {
    auto *s = slot_of(h);
    if (!s) return;
    asio::post(s->strand, [self = s->shared_from_this(), why, on] { self->hold_wire(why, on); });
}

fl_status take_kept_event(const fl_host *h, const std::uint8_t *data, std::size_t size) {
    auto *s = slot_of(h);
    if (!s) return FL_MISUSE;
    auto summary = check_event(data, size, s->device_class);
    if (!summary) {
        s->refused++;
        return FL_INVALID_ARGUMENT;
    }
    // A driver's event like any other: it opens, ends or re-reports a condition as it would have through emit.
    s->deliver(std::vector<std::uint8_t>(data, data + size), std::move(summary->kind), std::move(summary->code),
               false, summary->event_id, summary->ends);
    return FL_OK;
}

void set_driver_down(const fl_host *h, const std::string &code, const std::string &reason, bool alarm) {
    auto *s = slot_of(h);
    if (!s) return;
    std::lock_guard lock(s->offline_mutex);
    s->driver_down_reason = reason;
    s->driver_down = true;
    s->driver_fault_ids.push_back(code + "-" + std::to_string(s->driver_fault_ids.size() + 1));
    s->host_event(event{alarm ? event_kind::alarm : event_kind::fault, code}
                      .id(s->driver_fault_ids.back())
                      .level(alarm ? severity::critical : severity::major)
                      .message(reason));
    notify(s->options.observer.state, s->device_id, device_state::faulted);
}

void set_device_down(const fl_host *h, const std::string &reason) {
    if (auto *s = slot_of(h)) raise_on(*s, host_fault::device_down, reason);
}

void set_driver_up(const fl_host *h, const std::string &message) {
    auto *s = slot_of(h);
    if (!s) return;
    std::lock_guard lock(s->offline_mutex);
    if (!s->driver_down.exchange(false)) return;
    for (const auto &id : s->driver_fault_ids) {
        const auto code = id.substr(0, id.rfind('-'));
        s->host_event(event{event_kind::restore, code}.ends(id).message(message));
    }
    s->driver_fault_ids.clear();
    notify(s->options.observer.state, s->device_id, state_name(*s));
}

void log_for_plugin(std::int32_t fl_log_level, const std::string &line) {
    spdlog::log(to_spdlog(fl_log_level), "{}", line);
}

void note_slow_call(const fl_host *h, const std::string &what, std::chrono::milliseconds took) {
    if (auto *s = slot_of(h)) s->report_slow(what.c_str(), took);
}

device_runtime::device_counters device_runtime::counters(const std::string &device_id) const {
    auto s = find(device_id);
    if (!s) return {};
    return {s->accepted.load(), s->refused.load(), s->slow_callbacks.load()};
}

}  // namespace firelink::core
