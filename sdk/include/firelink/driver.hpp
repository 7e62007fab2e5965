// firelink vendor kit: write a driver plugin in C++ by subclassing firelink::device and writing one macro.
//
//     class my_device : public firelink::device {
//     public:
//         my_device(firelink::host_handle host, const firelink::config &cfg) : device(host) { ... }
//         void start() override { timer_ = host().start_timer(std::chrono::seconds(1)); }
//         void on_timer(std::uint64_t) override { host().emit(firelink::event{firelink::event_kind::telemetry, "tick"}); }
//     };
//
//     FIRELINK_PLUGIN(
//         (firelink::plugin_info{.id = "com.acme.demo", .name = "Demo", .vendor = "ACME", .version = "1.0.0",
//                                .license = "Apache-2.0"}),
//         (firelink::driver<my_device>{.id = "demo", .name = "Demo device", .device_class = "vendor:com.acme.demo",
//                                      .needs = {FL_EXT_TIMER}}))
//
// A driver that confirms to its device (an application-level ACK) declares `.confirms_on_commit = true` and sends
// each confirm from `when_committed(...)`, so that it confirms only what the host has made durable (FL-PLUGIN-35):
//
//     void on_data(std::span<const std::uint8_t> b) override {
//         host().emit(parse(b));                              // FL_OK: taken, not yet durable
//         when_committed([this, ack = ack_for(b)] { host().write(ack); });
//     }
//
// The wrapper implements the lifecycle rules of docs/abi.md for you: calls in the wrong state return FL_MISUSE,
// exceptions never cross the boundary (config_error becomes FL_INVALID_ARGUMENT, anything else FL_ERROR, each with a
// log line), and the device's callbacks run only while it is started.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "firelink.h"
#include "payload.hpp"

namespace firelink {

// An open condition the host keeps for this device (firelink.conditions/1): an alarm, pre-alarm or fault raised with
// an event_id, by this instance or an earlier one, that no restore has ended. A copy: it outlives the call.
struct open_condition {
    std::string event_id;             // what a restore names in `ends` to end it
    std::string kind;                 // "alarm", "pre_alarm" or "fault"
    std::string code;
    std::vector<std::uint8_t> event;  // the raising event as emitted (a msgpack map; firelink::config reads it)
    std::int64_t raised_wall_ms = 0;  // when the host accepted it, ms since the Unix epoch
};

// The device's view of the host: events, logs, timers and its wire. Cheap to copy; valid while the device lives.
class host_handle {
public:
    explicit host_handle(const fl_host *host) noexcept : host_(host) {
        if (FL_HAS_FIELD(host_, fl_host, get_extension)) {
            timer_ = static_cast<const fl_host_timer *>(host_->get_extension(host_, FL_EXT_TIMER));
            transport_ = static_cast<const fl_host_transport *>(host_->get_extension(host_, FL_EXT_TRANSPORT));
            conditions_ = static_cast<const fl_host_conditions *>(host_->get_extension(host_, FL_EXT_CONDITIONS));
            if (!FL_HAS_FIELD(conditions_, fl_host_conditions, list) || !conditions_->list) conditions_ = nullptr;
            const auto *commit = static_cast<const fl_host_commit *>(host_->get_extension(host_, FL_EXT_COMMIT));
            if (FL_HAS_FIELD(commit, fl_host_commit, emitted) && commit->emitted) commit_ = commit;
        }
    }

    const fl_host *raw() const noexcept { return host_; }
    std::string_view device_id() const noexcept {
        return FL_HAS_FIELD(host_, fl_host, device_id) && host_->device_id ? host_->device_id : "";
    }

    // FL_OK when the host took the event; see fl_host.emit for the other answers.
    fl_status emit(const event &ev) const {
        auto bytes = ev.pack();
        return emit_raw(bytes.data(), bytes.size());
    }
    fl_status emit_raw(const std::uint8_t *data, std::size_t size) const {
        return FL_HAS_FIELD(host_, fl_host, emit) ? host_->emit(host_, data, size) : FL_UNSUPPORTED;
    }

    void log(int level, const std::string &message) const noexcept {
        if (FL_HAS_FIELD(host_, fl_host, log)) host_->log(host_, level, message.c_str());
    }
    void debug(const std::string &m) const noexcept { log(FL_LOG_DEBUG, m); }
    void info(const std::string &m) const noexcept { log(FL_LOG_INFO, m); }
    void warn(const std::string &m) const noexcept { log(FL_LOG_WARN, m); }
    void error(const std::string &m) const noexcept { log(FL_LOG_ERROR, m); }

    // Timers (firelink.timer/1). start_timer returns the id, or nullopt when the host has no timers or refused.
    bool has_timers() const noexcept { return timer_ != nullptr; }
    std::optional<std::uint64_t> start_timer(std::chrono::milliseconds period, bool oneshot = false) const {
        std::uint64_t id = FL_INVALID_TIMER_ID;
        if (!timer_ || period.count() < 1 || period.count() > UINT32_MAX) return std::nullopt;
        if (timer_->start(host_, static_cast<std::uint32_t>(period.count()), oneshot ? FL_TIMER_ONESHOT : 0u, &id) !=
            FL_OK)
            return std::nullopt;
        return id;
    }
    fl_status cancel_timer(std::uint64_t id) const { return timer_ ? timer_->cancel(host_, id) : FL_UNSUPPORTED; }

    // The wire (firelink.transport/1).
    bool has_transport() const noexcept { return transport_ != nullptr; }
    int transport_kind() const { return transport_ ? transport_->kind(host_) : 0; }
    fl_status open_wire() const { return transport_ ? transport_->open(host_) : FL_UNSUPPORTED; }
    fl_status write(std::span<const std::uint8_t> bytes) const {
        return transport_ ? transport_->write(host_, bytes.data(), bytes.size()) : FL_UNSUPPORTED;
    }
    fl_status request(std::span<const std::uint8_t> bytes, std::chrono::milliseconds reply_timeout) const {
        return transport_ ? transport_->request(host_, bytes.data(), bytes.size(),
                                                static_cast<std::uint32_t>(std::clamp<std::int64_t>(
                                                    reply_timeout.count(), 0, UINT32_MAX)))
                          : FL_UNSUPPORTED;
    }
    fl_status end_request() const { return transport_ ? transport_->end_request(host_) : FL_UNSUPPORTED; }
    fl_status close_wire() const { return transport_ ? transport_->close(host_) : FL_UNSUPPORTED; }

    // The device's open conditions as the host holds them (firelink.conditions/1), oldest first; empty on a host
    // without the extension. Works from the device's constructor on: a driver of a push-only device reads them to
    // end, with the right `ends`, an alarm that an earlier instance raised before a restart.
    bool has_conditions() const noexcept { return conditions_ != nullptr; }
    std::vector<open_condition> open_conditions() const {
        struct visit_state {
            std::vector<open_condition> out;
            std::exception_ptr failed;  // nothing may unwind through the host's C code: rethrown after list returns
        } state;
        if (!conditions_) return {};
        conditions_->list(
            host_,
            [](void *context, const fl_condition *c) {
                auto &st = *static_cast<visit_state *>(context);
                if (st.failed || !FL_HAS_FIELD(c, fl_condition, raised_wall_ms)) return;
                try {
                    open_condition x;
                    x.event_id = c->event_id ? c->event_id : "";
                    x.kind = c->kind ? c->kind : "";
                    x.code = c->code ? c->code : "";
                    if (c->event && c->event_size) x.event.assign(c->event, c->event + c->event_size);
                    x.raised_wall_ms = c->raised_wall_ms;
                    st.out.push_back(std::move(x));
                } catch (...) {
                    st.failed = std::current_exception();
                }
            },
            &state);
        if (state.failed) std::rethrow_exception(state.failed);
        return std::move(state.out);
    }
    // Commit notification (firelink.commit/1): whether the host reports which events are committed, and the number
    // of this device's events emit has answered FL_OK so far (right after an FL_OK emit: that event's number; 0 on
    // a host without the extension). device::when_committed is the easy way to use it.
    bool has_commit() const noexcept { return commit_ != nullptr; }
    std::uint64_t emitted() const { return commit_ ? commit_->emitted(host_) : 0; }

    // Any other host extension, by id.
    template <class T>
    const T *extension(const char *id) const {
        return FL_HAS_FIELD(host_, fl_host, get_extension) ? static_cast<const T *>(host_->get_extension(host_, id)) : nullptr;
    }

private:

    const fl_host *host_;
    const fl_host_timer *timer_ = nullptr;
    const fl_host_transport *transport_ = nullptr;
    const fl_host_conditions *conditions_ = nullptr;
    const fl_host_commit *commit_ = nullptr;
};

namespace detail {
struct device_box;
}

// Base class of a vendor's device. Subclasses take (host_handle, const config &) in their constructor and throw
// config_error for a config they refuse. Every callback runs on the device's strand, only while started, and must
// not block. Throwing from start() fails the start; throwing elsewhere is logged and the call is dropped.
class device {
public:
    explicit device(host_handle host) noexcept : host_(host) {}
    virtual ~device() = default;
    device(const device &) = delete;
    device &operator=(const device &) = delete;

    virtual void start() {}
    virtual void stop() {}
    virtual void on_data(std::span<const std::uint8_t> /*bytes*/) {}
    virtual void on_link(int /*fl_link_state*/, fl_status /*reason*/) {}
    virtual void on_timer(std::uint64_t /*timer_id*/) {}
    // Accept (FL_OK) and report the outcome later with event::command_result, or refuse with FL_UNSUPPORTED /
    // FL_INVALID_ARGUMENT (throwing config_error also gives FL_INVALID_ARGUMENT).
    virtual fl_status on_command(const command & /*cmd*/) { return FL_UNSUPPORTED; }
    // The host committed this device's events 1..through (firelink.commit/1), told only to a driver declared with
    // `.confirms_on_commit = true`, after the when_committed callbacks it made due have run. Override it only to
    // track event numbers yourself (host().emitted() right after an FL_OK emit is that event's number).
    virtual void on_committed(std::uint64_t /*through*/) {}

protected:
    const host_handle &host() const noexcept { return host_; }
    // The host-kept open conditions of this device (host_handle::open_conditions); empty without the extension.
    std::vector<open_condition> open_conditions() const { return host_.open_conditions(); }

    // Runs `then` on the device's strand once every event this device's emit has answered FL_OK so far is committed
    // (durable: a host crash no longer loses it), so that `then` can confirm to the device. Runs it at once, inside
    // this call, when none is outstanding, or when commits are not reported (a host without firelink.commit/1, or a
    // driver not declared `.confirms_on_commit`): FL_OK is then the best it can know. Callbacks run in the order they
    // were made; they wait through stop and start, and are dropped at destroy. Each waiting callback is memory the
    // driver holds: bound how many it makes (waiting_for_commit()).
    void when_committed(std::function<void()> then) {
        if (!then) return;
        const std::uint64_t n = commits_reported_ ? host_.emitted() : 0;
        if (n <= committed_) return then();
        waiting_.emplace_back(n, std::move(then));
    }
    std::size_t waiting_for_commit() const noexcept { return waiting_.size(); }

private:
    friend struct detail::device_box;
    host_handle host_;
    bool commits_reported_ = false;  // set by the wrapper once the device is made
    std::uint64_t committed_ = 0;    // the host's watermark, as last told
    // when_committed callbacks and the event number each waits for, in order (numbers never decrease).
    std::deque<std::pair<std::uint64_t, std::function<void()>>> waiting_;
};

struct plugin_info {
    const char *id = nullptr;       // reverse-DNS, lower case: "com.acme.breakers"
    const char *name = nullptr;
    const char *vendor = nullptr;
    const char *version = nullptr;  // "1.2.0"
    const char *license = nullptr;  // SPDX, or "proprietary"
    const char *url = nullptr;
    const char *description = nullptr;
};

// A command the driver accepts (ABI 1.1, fl_command_descriptor): its name, as operators and the platform send it
// ([a-z0-9][a-z0-9_.-]*, at most 64 bytes), what it does (UTF-8, at most 256 bytes) and whether it moves something:
// FL_COMMAND_ACTUATES (the host requires select-before-operate), FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES (it reopens
// or re-energises: interlocked while the device is in alarm), or 0 (a read, a clock set).
struct command_info {
    const char *name = nullptr;
    const char *description = nullptr;
    std::uint64_t flags = 0;
};

template <class Device>
struct driver {
    const char *id = nullptr;
    const char *name = nullptr;
    const char *device_class = nullptr;  // FL_CLASS_* or "vendor:<reverse-dns>"
    const char *description = nullptr;
    std::uint32_t wires = 0;             // FL_WIRE_* bits
    std::vector<const char *> needs{};   // host extension ids it cannot work without
    std::uint64_t flags = 0;             // FL_DRIVER_* bits
    // For devices that connect in to a host listener: reads the identity from a connection's first bytes
    // (firelink.identify/1). Return FL_OK with `identity` set, FL_BUSY for more bytes, FL_INVALID_ARGUMENT when the
    // bytes are not this protocol. A pure function: no state, no host calls.
    fl_status (*identify)(std::span<const std::uint8_t> first_bytes, std::string &identity) = nullptr;
    // The device returns fl_device_commit (firelink.commit/1): it promises to confirm to its device only what the
    // host reported committed (FL-PLUGIN-35), through device::when_committed or on_committed.
    bool confirms_on_commit = false;
    // Every command the device's on_command accepts (FL-PLUGIN-36), for example
    //     .commands = {{"trip", "Open the breaker", FL_COMMAND_ACTUATES},
    //                  {"close", "Close the breaker", FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES}}
    // The wrapper answers FL_UNSUPPORTED for any other name without calling on_command. Empty: declares none, and the
    // host treats every command as actuating and restoring; a driver that takes no command says `.no_commands = true`.
    std::vector<command_info> commands{};
    bool no_commands = false;
};

namespace detail {

using factory = std::function<std::unique_ptr<device>(host_handle, const config &)>;

struct driver_record {
    fl_driver_descriptor descriptor{};
    std::vector<const char *> needs;
    std::deque<fl_command_descriptor> commands;              // deque: the pointers below stay put
    std::vector<const fl_command_descriptor *> command_list;  // NULL-terminated; empty when it declares none

    // The name is one the driver declared, or it declares none (then the device decides).
    bool declares(std::string_view name) const noexcept {
        if (!descriptor.commands) return true;
        for (const auto &c : commands)
            if (c.name && name == c.name) return true;
        return false;
    }
    factory make;
    fl_status (*identify)(std::span<const std::uint8_t>, std::string &) = nullptr;
    bool confirms_on_commit = false;
};

// The plugin's one registry. Hidden by the version script, so each plugin library has its own.
struct registry {
    fl_plugin_descriptor descriptor{};
    std::deque<driver_record> drivers;
    std::vector<const fl_driver_descriptor *> driver_pointers;
    const fl_host *plugin_host = nullptr;
    bool negotiated = false;
    bool initialized = false;

    static registry &get() {
        static registry r;
        return r;
    }

    void log(const fl_host *host, int level, const std::string &message) const noexcept {
        if (FL_HAS_FIELD(host, fl_host, log) && host->log) host->log(host, level, message.c_str());
    }
};

enum class device_state { created, started, stopped };

struct device_box {
    fl_device abi{};
    device_state state = device_state::created;
    host_handle host;
    std::unique_ptr<device> impl;
    bool commit = false;  // returns fl_device_commit: its driver was declared confirms_on_commit
    const driver_record *driver = nullptr;  // the registry's, for the plugin's lifetime

    explicit device_box(const fl_host *h) : host(h) {}

    static device_box *from(const fl_device *d) noexcept {
        return d ? static_cast<device_box *>(d->driver_data) : nullptr;
    }

    // Runs f, turning exceptions into a status and a log line. Never lets one escape.
    template <class F>
    fl_status guarded(const char *what, F &&f) noexcept {
        try {
            return f();
        } catch (const config_error &e) {
            report(what, ": ", e.what());
            return FL_INVALID_ARGUMENT;
        } catch (const std::bad_alloc &) {
            report(what, ": ", "out of memory");
            return FL_NO_MEMORY;
        } catch (const std::exception &e) {
            report(what, " threw: ", e.what());
            return FL_ERROR;
        } catch (...) {
            report(what, " threw: ", "a non-standard exception");
            return FL_ERROR;
        }
    }

    // Enables when_committed's waiting once the device is made: only a device that returns fl_device_commit hears of
    // commits, and only from a host that reports them.
    void enable_commits() noexcept {
        impl->commits_reported_ = commit && host.has_commit();
    }

    // The host's watermark moved: the callbacks it made due run first, in order, each guarded on its own, then the
    // device's on_committed.
    void committed(std::uint64_t through) noexcept {
        auto &d = *impl;
        if (through <= d.committed_) return;
        d.committed_ = through;
        while (!d.waiting_.empty() && d.waiting_.front().first <= through) {
            auto then = std::move(d.waiting_.front().second);
            d.waiting_.pop_front();
            guarded("a when_committed callback", [&] {
                then();
                return FL_OK;
            });
        }
        guarded("on_committed", [&] {
            d.on_committed(through);
            return FL_OK;
        });
    }

    // Logs "<what><sep><why>"; if even that cannot be built (no memory), logs `what` alone.
    void report(const char *what, const char *sep, const char *why) const noexcept {
        try {
            host.error(std::string(what) + sep + why);
        } catch (...) {
            host.error(what);
        }
    }
};

inline fl_status device_start(const fl_device *d) noexcept {
    auto *box = device_box::from(d);
    if (!box || box->state == device_state::started) return FL_MISUSE;
    return box->guarded("start", [&] {
        box->impl->start();
        box->state = device_state::started;
        return FL_OK;
    });
}

inline fl_status device_stop(const fl_device *d) noexcept {
    auto *box = device_box::from(d);
    if (!box || box->state != device_state::started) return FL_MISUSE;
    // The device is stopped whatever stop() does: the host reclaims its timers and wire next.
    box->state = device_state::stopped;
    return box->guarded("stop", [&] {
        box->impl->stop();
        return FL_OK;
    });
}

inline void device_destroy(const fl_device *d) noexcept {
    auto *box = device_box::from(d);
    if (!box) return;
    if (box->state == device_state::started) device_stop(d);
    box->guarded("destroy", [&] {
        box->impl.reset();
        return FL_OK;
    });
    delete box;
}

inline fl_status device_command(const fl_device *d, const std::uint8_t *data, std::size_t size) noexcept {
    auto *box = device_box::from(d);
    if (!box || box->state != device_state::started || (!data && size)) return FL_MISUSE;
    return box->guarded("command", [&] {
        command parsed(data, size);
        // A name the driver did not declare never reaches on_command (FL-PLUGIN-36): the declaration is the truth.
        if (box->driver && !box->driver->declares(parsed.name())) {
            box->host.warn("command '" + std::string(parsed.name()) + "' (id " + std::string(parsed.id()) +
                           ") is not one this driver declares; refused");
            return FL_UNSUPPORTED;
        }
        return box->impl->on_command(parsed);
    });
}

inline void device_on_data(const fl_device *d, const std::uint8_t *data, std::size_t size) noexcept {
    auto *box = device_box::from(d);
    if (!box || box->state != device_state::started || (!data && size)) return;
    box->guarded("on_data", [&] {
        box->impl->on_data(std::span<const std::uint8_t>(data, size));
        return FL_OK;
    });
}

inline void device_on_state(const fl_device *d, std::int32_t state, fl_status reason) noexcept {
    auto *box = device_box::from(d);
    if (!box || box->state != device_state::started) return;
    box->guarded("on_link", [&] {
        box->impl->on_link(state, reason);
        return FL_OK;
    });
}

inline void device_on_timer(const fl_device *d, std::uint64_t id) noexcept {
    auto *box = device_box::from(d);
    if (!box || box->state != device_state::started) return;
    box->guarded("on_timer", [&] {
        box->impl->on_timer(id);
        return FL_OK;
    });
}

inline void device_on_committed(const fl_device *d, std::uint64_t through) noexcept {
    auto *box = device_box::from(d);
    if (!box || box->state != device_state::started || !box->commit) return;
    box->committed(through);
}

inline constexpr fl_device_transport device_transport_ext = {sizeof(fl_device_transport), device_on_data,
                                                             device_on_state};
inline constexpr fl_device_timer device_timer_ext = {sizeof(fl_device_timer), device_on_timer};
inline constexpr fl_device_commit device_commit_ext = {sizeof(fl_device_commit), device_on_committed};

inline const void *device_get_extension(const fl_device *d, const char *id) noexcept {
    const auto *box = device_box::from(d);
    if (!box || !id) return nullptr;
    if (std::strcmp(id, FL_EXT_TRANSPORT) == 0) return &device_transport_ext;
    if (std::strcmp(id, FL_EXT_TIMER) == 0) return &device_timer_ext;
    if (std::strcmp(id, FL_EXT_COMMIT) == 0) return box->commit ? &device_commit_ext : nullptr;
    return nullptr;
}

inline fl_status entry_negotiate(std::uint32_t host_version, std::uint32_t *agreed) noexcept {
    if (!agreed) return FL_MISUSE;
    if (FL_VERSION_MAJOR(host_version) != FL_ABI_VERSION_MAJOR) return FL_INCOMPATIBLE;
    *agreed = host_version < FL_ABI_VERSION ? host_version : FL_ABI_VERSION;
    registry::get().negotiated = true;
    return FL_OK;
}

inline fl_status entry_init(const fl_host *host, const char * /*plugin_path*/) noexcept {
    auto &r = registry::get();
    if (!r.negotiated || r.initialized || !host || host->struct_size < FL_V1_0_SIZEOF_HOST) return FL_MISUSE;
    r.plugin_host = host;
    r.initialized = true;
    return FL_OK;
}

inline void entry_deinit() noexcept {
    auto &r = registry::get();
    r.initialized = false;
    r.plugin_host = nullptr;
}

inline const fl_plugin_descriptor *entry_get_descriptor() noexcept {
    auto &r = registry::get();
    return r.negotiated ? &r.descriptor : nullptr;
}

inline fl_status entry_create_device(const char *driver_id, const fl_host *host, const std::uint8_t *cfg,
                                     std::size_t cfg_size, const fl_device **out) noexcept {
    auto &r = registry::get();
    if (out) *out = nullptr;
    if (!r.initialized || !driver_id || !host || host->struct_size < FL_V1_0_SIZEOF_HOST || !out || (!cfg && cfg_size))
        return FL_MISUSE;
    const driver_record *rec = nullptr;
    for (const auto &d : r.drivers)
        if (d.descriptor.id && std::strcmp(d.descriptor.id, driver_id) == 0) rec = &d;
    if (!rec) {
        r.log(host, FL_LOG_ERROR, std::string("no driver with id '") + driver_id + "' in this plugin");
        return FL_NOT_FOUND;
    }
    std::unique_ptr<device_box> box;
    try {
        box = std::make_unique<device_box>(host);
    } catch (...) {
        return FL_NO_MEMORY;
    }
    box->commit = rec->confirms_on_commit;
    box->driver = rec;
    fl_status st = box->guarded("create", [&] {
        config parsed(cfg, cfg_size);
        box->impl = rec->make(box->host, parsed);
        return FL_OK;
    });
    if (st != FL_OK) return st;
    box->enable_commits();
    box->abi = fl_device{.struct_size = sizeof(fl_device), .driver_data = box.get(), .start = device_start,
                         .stop = device_stop, .destroy = device_destroy, .command = device_command,
                         .get_extension = device_get_extension};
    *out = &box.release()->abi;
    return FL_OK;
}

inline fl_status entry_identify(const char *driver_id, const std::uint8_t *data, std::size_t size, char *out,
                                std::size_t cap, std::size_t *out_len) noexcept {
    if (!driver_id || (!data && size) || !out || !out_len) return FL_MISUSE;
    for (const auto &d : registry::get().drivers) {
        if (!d.descriptor.id || std::strcmp(d.descriptor.id, driver_id) != 0) continue;
        if (!d.identify) return FL_UNSUPPORTED;
        try {
            std::string identity;
            const fl_status st = d.identify(std::span<const std::uint8_t>(data, size), identity);
            if (st != FL_OK) return st;
            if (identity.empty() || identity.size() > cap) return FL_INVALID_ARGUMENT;
            std::memcpy(out, identity.data(), identity.size());
            *out_len = identity.size();
            return FL_OK;
        } catch (...) {
            return FL_ERROR;
        }
    }
    return FL_NOT_FOUND;
}

inline constexpr fl_plugin_identify plugin_identify_ext = {sizeof(fl_plugin_identify), entry_identify};

inline const void *entry_get_extension(const char *id) noexcept {
    if (!id || !registry::get().negotiated) return nullptr;
    if (std::strcmp(id, FL_EXT_IDENTIFY) == 0) {
        for (const auto &d : registry::get().drivers)
            if (d.identify) return &plugin_identify_ext;
    }
    return nullptr;
}

inline constexpr fl_plugin_entry entry_v1 = {
    sizeof(fl_plugin_entry), FL_ABI_VERSION,      entry_negotiate,       entry_init,
    entry_deinit,            entry_get_descriptor, entry_create_device, entry_get_extension,
};

// Fills the registry when the library is loaded (static initialisation), before the host calls anything.
struct registrar {
    template <class... Devices>
    explicit registrar(const plugin_info &info, driver<Devices>... drivers) {
        auto &r = registry::get();
        (add(r, std::move(drivers)), ...);
        for (const auto &d : r.drivers) r.driver_pointers.push_back(&d.descriptor);
        r.descriptor = fl_plugin_descriptor{.struct_size = sizeof(fl_plugin_descriptor),
                                            .driver_count = static_cast<std::uint32_t>(r.driver_pointers.size()),
                                            .id = info.id, .name = info.name, .vendor = info.vendor,
                                            .version = info.version, .license = info.license, .url = info.url,
                                            .description = info.description, .drivers = r.driver_pointers.data()};
    }

private:
    template <class Device>
    static void add(registry &r, driver<Device> d) {
        static_assert(std::is_base_of_v<device, Device>, "a driver's device type must derive from firelink::device");
        static_assert(std::is_constructible_v<Device, host_handle, const config &>,
                      "a device needs a constructor Device(firelink::host_handle, const firelink::config &)");
        auto &rec = r.drivers.emplace_back();
        rec.needs = std::move(d.needs);
        rec.needs.push_back(nullptr);
        // commands: set below only when the driver lists its commands or declares it has none (NULL: declares none).
        rec.descriptor = fl_driver_descriptor{.struct_size = sizeof(fl_driver_descriptor), .wires = d.wires, .id = d.id,
                                              .name = d.name, .device_class = d.device_class,
                                              .description = d.description, .required_extensions = rec.needs.data(),
                                              .flags = d.flags, .commands = nullptr};
        if (!d.commands.empty() || d.no_commands) {
            for (const auto &c : d.commands)
                rec.commands.push_back(fl_command_descriptor{sizeof(fl_command_descriptor), c.name, c.description,
                                                             c.flags});
            for (const auto &c : rec.commands) rec.command_list.push_back(&c);
            rec.command_list.push_back(nullptr);
            rec.descriptor.commands = rec.command_list.data();
        }
        rec.identify = d.identify;
        rec.confirms_on_commit = d.confirms_on_commit;
        rec.make = [](host_handle h, const config &c) -> std::unique_ptr<device> {
            return std::make_unique<Device>(h, c);
        };
    }
};

}  // namespace detail
}  // namespace firelink

// Defines the plugin: its info and its drivers. Write it once, at namespace scope, in one source file of the plugin.
// Wrap each argument in parentheses when it contains commas (designated initialisers do).
#define FIRELINK_PLUGIN(info, ...)                                                                      \
    extern "C" FL_EXPORT const fl_plugin_entry firelink_plugin_entry = ::firelink::detail::entry_v1;   \
    namespace {                                                                                        \
    const ::firelink::detail::registrar firelink_plugin_registrar_{info, __VA_ARGS__};                 \
    }
