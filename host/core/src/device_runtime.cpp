#include "firelink/core/device_runtime.hpp"

#include <future>
#include <unordered_map>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include "firelink/core/event_check.hpp"

namespace firelink::core {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {
constexpr const char *host_name = "firelink-host";
constexpr const char *host_version = "1.0.0";

spdlog::level::level_enum to_spdlog(std::int32_t level) {
    switch (level) {
    case FL_LOG_TRACE: return spdlog::level::trace;
    case FL_LOG_DEBUG: return spdlog::level::debug;
    case FL_LOG_INFO: return spdlog::level::info;
    case FL_LOG_WARN: return spdlog::level::warn;
    default: return spdlog::level::err;
    }
}
}  // namespace

// The plugin-level context: its fl_host (device_id NULL, emit refused).
struct device_runtime::plugin_slot {
    std::shared_ptr<plugin> p;  // the library stays loaded while the runtime may call into it
    fl_host host{};
    bool we_initialised = false;
};

struct device_runtime::device_slot : std::enable_shared_from_this<device_slot> {
    device_slot(asio::io_context &io, std::string id) : strand(asio::make_strand(io)), device_id(std::move(id)) {}

    asio::strand<asio::io_context::executor_type> strand;
    std::string device_id;
    std::string plugin_id;
    std::string label;  // "plugin-id/device-id" for logs
    fl_host host{};
    const fl_device *device = nullptr;
    const fl_device_timer *timer_ext = nullptr;
    const event_sink *sink = nullptr;
    std::chrono::milliseconds watchdog_warn{100};

    std::atomic<bool> started{false};
    std::atomic<std::uint64_t> sequence{0};
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> refused{0};
    std::atomic<std::uint64_t> slow_callbacks{0};
    std::atomic<std::int64_t> last_refusal_log_ns{0};
    std::mutex emit_mutex;  // keeps sequence numbers in the order events reach the sink

    // Strand-only state.
    struct timer_state {
        std::unique_ptr<asio::steady_timer> timer;
        std::chrono::milliseconds period;
        bool oneshot;
    };
    std::unordered_map<std::uint64_t, timer_state> timers;
    std::uint64_t next_timer_id = 1;

    // Runs one call into the plugin on this thread and reports it when it overstays the watchdog bound.
    template <class F>
    auto timed(const char *what, F &&f) {
        const auto t0 = clock::now();
        struct report {
            device_slot *self;
            const char *what;
            clock::time_point t0;
            ~report() {
                const auto took = clock::now() - t0;
                if (took > self->watchdog_warn) {
                    self->slow_callbacks++;
                    spdlog::warn("[{}] {} took {} ms (bound {} ms): callbacks must not block", self->label, what,
                                 std::chrono::duration_cast<std::chrono::milliseconds>(took).count(),
                                 self->watchdog_warn.count());
                }
            }
        } r{this, what, t0};
        return f();
    }

    // Runs f on the strand and waits for its result. Never call from the strand itself.
    template <class F>
    auto on_strand(F &&f) {
        std::packaged_task<decltype(f())()> task(std::forward<F>(f));
        auto result = task.get_future();
        asio::post(strand, [&task] { task(); });
        return result.get();
    }

    void cancel_timers() {
        for (auto &[id, t] : timers) t.timer->cancel();
        timers.clear();
    }

    void arm(std::uint64_t id) {
        auto it = timers.find(id);
        if (it == timers.end()) return;
        auto self = shared_from_this();
        // The timer was made on the strand, so its handler runs there.
        it->second.timer->async_wait([self, id](const boost::system::error_code &ec) {
            if (ec) return;
            self->fire(id);
        });
    }

    void fire(std::uint64_t id) {
        auto it = timers.find(id);
        if (it == timers.end() || !started) return;
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
};

namespace {

using device_slot = device_runtime::device_slot;

device_slot *slot_of(const fl_host *h) {
    return h ? static_cast<device_slot *>(h->host_data) : nullptr;
}

fl_status timer_start(const fl_host *h, std::uint32_t period_ms, std::uint32_t flags, std::uint64_t *out) {
    auto *s = slot_of(h);
    if (!s || !out || period_ms == 0 || !s->started || !s->strand.running_in_this_thread()) return FL_MISUSE;
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
    auto *s = slot_of(h);
    if (!s || !s->started || !s->strand.running_in_this_thread()) return FL_MISUSE;
    auto it = s->timers.find(id);
    if (it == s->timers.end()) return FL_NOT_FOUND;
    it->second.timer->cancel();
    s->timers.erase(it);
    return FL_OK;
}

constexpr fl_host_timer host_timer_ext = {sizeof(fl_host_timer), timer_start, timer_cancel};

fl_status device_emit(const fl_host *h, const std::uint8_t *data, std::size_t size) {
    auto *s = slot_of(h);
    if (!s || !s->started) return FL_MISUSE;
    std::string why;
    auto summary = check_event(data, size, why);
    if (!summary) {
        s->refused++;
        // Rate-limited: one line per device per second, with the running count.
        const auto now = clock::now().time_since_epoch().count();
        auto last = s->last_refusal_log_ns.load();
        if (now - last > 1'000'000'000 && s->last_refusal_log_ns.compare_exchange_strong(last, now))
            spdlog::warn("[{}] refused an event ({} refused so far): {}", s->label, s->refused.load(), why);
        return FL_INVALID_ARGUMENT;
    }
    accepted_event ev;
    ev.plugin_id = s->plugin_id;
    ev.device_id = s->device_id;
    ev.kind = std::move(summary->kind);
    ev.code = std::move(summary->code);
    ev.payload.assign(data, data + size);
    std::lock_guard lock(s->emit_mutex);
    ev.received_wall = std::chrono::system_clock::now();
    ev.received_monotonic = clock::now();
    ev.sequence = ++s->sequence;
    s->accepted++;
    (*s->sink)(std::move(ev));
    return FL_OK;
}

void device_log(const fl_host *h, std::int32_t level, const char *message) {
    auto *s = slot_of(h);
    if (!s) return;
    spdlog::log(to_spdlog(level), "[{}] {}", s->label, message ? message : "");
}

const void *device_get_extension(const fl_host *h, const char *id) {
    if (!slot_of(h) || !id) return nullptr;
    if (std::string_view(id) == FL_EXT_TIMER) return &host_timer_ext;
    return nullptr;
}

fl_status plugin_emit(const fl_host *, const std::uint8_t *, std::size_t) { return FL_MISUSE; }

void plugin_log(const fl_host *h, std::int32_t level, const char *message) {
    const auto *ps = h ? static_cast<const device_runtime::plugin_slot *>(h->host_data) : nullptr;
    spdlog::log(to_spdlog(level), "[{}] {}", ps && ps->p ? ps->p->info().id : "?", message ? message : "");
}

const void *plugin_get_extension(const fl_host *, const char *) { return nullptr; }

}  // namespace

device_runtime::device_runtime(asio::io_context &io, event_sink sink, runtime_options options)
    : io_(io), sink_(std::move(sink)), options_(options) {}

device_runtime::~device_runtime() {
    destroy_all();
    for (auto &ps : plugins_)
        if (ps->we_initialised) ps->p->deinit();
}

bool device_runtime::provides(const std::string &extension_id) { return extension_id == FL_EXT_TIMER; }

fl_status device_runtime::attach(const std::shared_ptr<plugin> &shared, std::string &why) {
    std::lock_guard lock(mutex_);
    for (auto &ps : plugins_)
        if (ps->p == shared) return FL_OK;
    auto ps = std::make_unique<plugin_slot>();
    ps->p = shared;
    auto &p = *shared;
    ps->host.struct_size = sizeof(fl_host);
    ps->host.abi_version = p.info().agreed_abi_version;
    ps->host.host_data = ps.get();
    ps->host.host_name = host_name;
    ps->host.host_version = host_version;
    ps->host.device_id = nullptr;
    ps->host.emit = plugin_emit;
    ps->host.log = plugin_log;
    ps->host.get_extension = plugin_get_extension;
    if (!p.initialized()) {
        const fl_status st = p.init(&ps->host);
        if (st != FL_OK) {
            why = "init_failed: init returned " + std::to_string(st);
            return st;
        }
        ps->we_initialised = true;
    }
    plugins_.push_back(std::move(ps));
    return FL_OK;
}

fl_status device_runtime::create(const std::shared_ptr<plugin> &shared, const std::string &driver_id,
                                 const std::string &device_id, const std::vector<std::uint8_t> &config,
                                 std::string &why) {
    auto &p = *shared;
    const auto *driver = p.info().find_driver(driver_id);
    if (!driver) {
        why = "plugin " + p.info().id + " has no driver '" + driver_id + "'";
        return FL_NOT_FOUND;
    }
    for (const auto &ext : driver->required_extensions)
        if (!provides(ext)) {
            why = "driver '" + driver_id + "' needs extension " + ext + ", which this host does not provide";
            return FL_UNSUPPORTED;
        }
    if (find(device_id)) {
        why = "a device with id '" + device_id + "' already exists";
        return FL_MISUSE;
    }
    if (fl_status st = attach(shared, why); st != FL_OK) return st;

    auto slot = std::make_shared<device_slot>(io_, device_id);
    slot->sink = &sink_;
    slot->watchdog_warn = options_.watchdog_warn;
    slot->plugin_id = p.info().id;
    slot->label = p.info().id + "/" + device_id;
    slot->host.struct_size = sizeof(fl_host);
    slot->host.abi_version = p.info().agreed_abi_version;
    slot->host.host_data = slot.get();
    slot->host.host_name = host_name;
    slot->host.host_version = host_version;
    slot->host.device_id = slot->device_id.c_str();
    slot->host.emit = device_emit;
    slot->host.log = device_log;
    slot->host.get_extension = device_get_extension;

    const fl_device *dev = nullptr;
    const fl_status st = slot->timed("create_device", [&] {
        return p.entry().create_device(driver_id.c_str(), &slot->host, config.empty() ? nullptr : config.data(),
                                       config.size(), &dev);
    });
    if (st != FL_OK || !dev) {
        why = "create_device(" + driver_id + ") returned " + std::to_string(st) + " (the plugin logged why)";
        return st != FL_OK ? st : FL_ERROR;
    }
    if (dev->struct_size < FL_V1_0_SIZEOF_DEVICE || !dev->start || !dev->stop || !dev->destroy || !dev->command ||
        !dev->get_extension) {
        why = "create_device returned an instance smaller than a v1.0 fl_device or with NULL functions";
        // It may be unusable; leak it rather than call through a bad pointer.
        return FL_ERROR;
    }
    slot->device = dev;
    const auto *timer_ext = static_cast<const fl_device_timer *>(dev->get_extension(dev, FL_EXT_TIMER));
    if (FL_HAS_FIELD(timer_ext, fl_device_timer, on_timer) && timer_ext->on_timer) slot->timer_ext = timer_ext;

    std::lock_guard lock(mutex_);
    devices_[device_id] = slot;
    return FL_OK;
}

std::shared_ptr<device_runtime::device_slot> device_runtime::find(const std::string &device_id) const {
    std::lock_guard lock(mutex_);
    auto it = devices_.find(device_id);
    return it == devices_.end() ? nullptr : it->second;
}

fl_status device_runtime::start(const std::string &device_id) {
    auto s = find(device_id);
    if (!s) return FL_NOT_FOUND;
    return s->on_strand([&] {
        if (s->started) return FL_MISUSE;
        s->started = true;  // before the call: start may arm timers and emit
        const fl_status st = s->timed("start", [&] { return s->device->start(s->device); });
        if (st != FL_OK) {
            s->started = false;
            s->cancel_timers();
        }
        return st;
    });
}

fl_status device_runtime::stop(const std::string &device_id) {
    auto s = find(device_id);
    if (!s) return FL_NOT_FOUND;
    return s->on_strand([&] {
        if (!s->started) return FL_MISUSE;
        const fl_status st = s->timed("stop", [&] { return s->device->stop(s->device); });
        s->started = false;
        s->cancel_timers();  // FL-HOST: the host reclaims timers after stop
        return st;
    });
}

fl_status device_runtime::command(const std::string &device_id, const std::vector<std::uint8_t> &cmd) {
    auto s = find(device_id);
    if (!s) return FL_NOT_FOUND;
    return s->on_strand([&] {
        if (!s->started) return FL_MISUSE;
        return s->timed("command", [&] { return s->device->command(s->device, cmd.data(), cmd.size()); });
    });
}

void device_runtime::destroy(const std::string &device_id) {
    auto s = find(device_id);
    if (!s) return;
    s->on_strand([&] {
        if (s->started) {
            s->timed("stop", [&] { return s->device->stop(s->device); });
            s->started = false;
        }
        s->cancel_timers();
        s->timed("destroy", [&] {
            s->device->destroy(s->device);
            return 0;
        });
        s->device = nullptr;
        return 0;
    });
    std::lock_guard lock(mutex_);
    devices_.erase(device_id);
}

void device_runtime::start_all() {
    for (const auto &id : device_ids()) start(id);
}

void device_runtime::stop_all() {
    for (const auto &id : device_ids()) {
        auto s = find(id);
        if (s && s->started) stop(id);
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

device_counters device_runtime::counters(const std::string &device_id) const {
    auto s = find(device_id);
    if (!s) return {};
    return {s->accepted.load(), s->refused.load(), s->slow_callbacks.load()};
}

}  // namespace firelink::core
