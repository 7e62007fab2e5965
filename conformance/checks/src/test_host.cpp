#include "test_host.hpp"

#include <dirent.h>
#include <malloc.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include <firelink/version.h>
#include <firelink/payload.h>

#include "firelink/core/event_check.hpp"

namespace firelink::conform {

namespace {

std::string mp_string(const std::uint8_t *data, std::size_t size, const char *key) {
    fl_mp_value v;
    if (fl_mp_find(data, size, key, &v) && v.type == FL_MP_STR) return std::string(v.str, v.str_len);
    return {};
}

std::size_t count_dir(const char *path) {
    std::size_t n = 0;
    if (DIR *d = opendir(path)) {
        while (const dirent *e = readdir(d))
            if (e->d_name[0] != '.') ++n;
        closedir(d);
    }
    return n;
}

const char *state_name(device_state s) {
    switch (s) {
    case device_state::creating: return "inside create_device";
    case device_state::created: return "created";
    case device_state::starting: return "inside start";
    case device_state::started: return "started";
    case device_state::stopping: return "inside stop";
    case device_state::stopped: return "stopped";
    case device_state::destroyed: return "destroyed";
    }
    return "?";
}

}  // namespace

std::size_t open_fds() { return count_dir("/proc/self/fd") - 1; /* the one opendir holds */ }
std::size_t thread_count() { return count_dir("/proc/self/task"); }
std::size_t heap_in_use() {
    const struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

std::int32_t transport_kind_for(std::uint32_t wires) {
    if (wires & FL_WIRE_SERIAL) return FL_TRANSPORT_SERIAL;
    if (wires & FL_WIRE_RS485_BUS) return FL_TRANSPORT_RS485_BUS;
    if (wires & FL_WIRE_TCP_CLIENT) return FL_TRANSPORT_TCP_CLIENT;
    if (wires & FL_WIRE_TCP_ACCEPTED) return FL_TRANSPORT_TCP_ACCEPTED;
    if (wires & FL_WIRE_UDP) return FL_TRANSPORT_UDP;
    return FL_TRANSPORT_SERIAL;
}

// ---- plugin_host ---------------------------------------------------------------------------------------------

plugin_host::plugin_host() {
    host_.struct_size = sizeof(fl_host);
    host_.abi_version = FL_ABI_VERSION;
    host_.host_data = this;
    host_.host_name = "firelink-conform";
    host_.host_version = FIRELINK_VERSION_STRING;
    host_.device_id = nullptr;
    host_.emit = &plugin_host::emit;
    host_.log = &plugin_host::log;
    host_.get_extension = &plugin_host::get_extension;
}

fl_status plugin_host::emit(const fl_host *h, const std::uint8_t *, std::size_t) {
    if (auto *self = h ? static_cast<plugin_host *>(h->host_data) : nullptr) {
        std::lock_guard lock(self->mutex_);
        if (self->violations_.size() < 16) self->violations_.push_back("emit through the plugin's own fl_host");
    }
    return FL_MISUSE;
}

void plugin_host::log(const fl_host *h, std::int32_t, const char *) {
    if (auto *self = h ? static_cast<plugin_host *>(h->host_data) : nullptr) ++self->logs_;
}

const void *plugin_host::get_extension(const fl_host *, const char *) { return nullptr; }

std::vector<std::string> plugin_host::violations() const {
    std::lock_guard lock(mutex_);
    return violations_;
}

// ---- device_host ---------------------------------------------------------------------------------------------

device_host::device_host(std::string device_id, std::string device_class, std::int32_t transport_kind)
    : device_id_(std::move(device_id)), device_class_(std::move(device_class)), transport_kind_(transport_kind) {
    host_.struct_size = sizeof(fl_host);
    host_.abi_version = FL_ABI_VERSION;
    host_.host_data = this;
    host_.host_name = "firelink-conform";
    host_.host_version = FIRELINK_VERSION_STRING;
    host_.device_id = device_id_.c_str();
    host_.emit = &device_host::emit;
    host_.log = &device_host::log;
    host_.get_extension = &device_host::get_extension;
    transport_ = {sizeof(fl_host_transport), t_kind, t_open, t_write, t_request, t_end_request, t_close, t_unit};
    timer_ = {sizeof(fl_host_timer), tm_start, tm_cancel};
}

void device_host::present_v1_0() {
    fl_host h = host_;
    h.struct_size = FL_V1_0_SIZEOF_HOST;
    fl_host_transport t = transport_;
    t.struct_size = FL_V1_0_SIZEOF_HOST_TRANSPORT;
    fl_host_timer tm = timer_;
    tm.struct_size = FL_V1_0_SIZEOF_HOST_TIMER;
    v1_host_ = std::make_unique<guarded_bytes>(&h, FL_V1_0_SIZEOF_HOST);
    v1_transport_ = std::make_unique<guarded_bytes>(&t, FL_V1_0_SIZEOF_HOST_TRANSPORT);
    v1_timer_ = std::make_unique<guarded_bytes>(&tm, FL_V1_0_SIZEOF_HOST_TIMER);
    host_ptr_ = reinterpret_cast<const fl_host *>(v1_host_->data());
    transport_ptr_ = reinterpret_cast<const fl_host_transport *>(v1_transport_->data());
    timer_ptr_ = reinterpret_cast<const fl_host_timer *>(v1_timer_->data());
}

std::vector<emitted_event> device_host::deferred() const {
    std::lock_guard lock(mutex_);
    return deferred_;
}

void device_host::violation(std::string what, bool emit) {
    std::lock_guard lock(mutex_);
    auto &list = emit ? emit_violations_ : violations_;
    if (list.size() < 16) list.push_back(std::move(what));
}

bool device_host::may_use_services() const {
    const auto s = state_.load();
    return s == device_state::started || s == device_state::starting;
}

bool device_host::in_service(const char *call) {
    if (may_use_services()) return true;
    violation(std::string(call) + " while not started");
    return false;
}

fl_status device_host::may_send(const std::uint8_t *data, std::size_t size, const char *call) {
    if (!data && size) return FL_MISUSE;
    if (!in_service(call)) return FL_MISUSE;
    return forced_status_.load();
}

void device_host::keep_written(const std::uint8_t *data, std::size_t size) {
    if (written_.size() < (1u << 20)) written_.insert(written_.end(), data, data + size);
}

fl_status device_host::emit(const fl_host *h, const std::uint8_t *data, std::size_t size) {
    device_host *self = device_host::self(h);
    if (!self) return FL_MISUSE;
    const device_state s = self->state_.load();
    if (s != device_state::started && s != device_state::starting) {
        ++self->late_emits_;
        self->violation(std::string("emit while ") + state_name(s) + " (FL-PLUGIN-21, FL-PLUGIN-27)", true);
        return FL_MISUSE;
    }
    if (const fl_status forced = self->forced_status_.load(); forced != FL_OK) return forced;
    emitted_event e;
    e.from_caller = std::this_thread::get_id() == self->caller_;
    if (data && size) e.bytes.assign(data, data + size);
    auto summary = core::check_event(data, size, self->device_class_);
    if (summary && self->busy_.load() && summary->kind != "telemetry") {
        e.kind = summary->kind;
        e.code = summary->code;
        ++self->busy_answers_;
        std::lock_guard lock(self->mutex_);
        if (self->deferred_.size() < 10000) self->deferred_.push_back(std::move(e));
        return FL_BUSY;
    }
    std::lock_guard lock(self->mutex_);
    if (!summary) {
        e.invalid = summary.why();
    } else {
        e.kind = summary->kind;
        e.code = summary->code;
        // Pairing: a restore ends a condition this instance raised and has not ended yet (docs/events.md).
        const std::string id = mp_string(data, size, "event_id");
        if (e.kind == "restore") {
            const std::string ends = mp_string(data, size, "ends");
            if (!self->active_ids_.erase(ends))
                e.invalid = "restore ends '" + ends + "', which no alarm, pre_alarm or fault of this instance raised";
        } else if (!id.empty() && (e.kind == "alarm" || e.kind == "pre_alarm" || e.kind == "fault")) {
            self->active_ids_.insert(id);  // re-raising an active condition (FL-PLUGIN-29) is allowed
        }
    }
    const bool ok = e.invalid.empty();
    if (self->events_.size() < 100000) self->events_.push_back(std::move(e));
    return ok ? FL_OK : FL_INVALID_ARGUMENT;
}

void device_host::log(const fl_host *h, std::int32_t, const char *message) {
    device_host *self = device_host::self(h);
    if (!self) return;
    std::lock_guard lock(self->mutex_);
    if (self->logs_.size() < 64) self->logs_.emplace_back(message ? message : "(null)");
}

const void *device_host::get_extension(const fl_host *h, const char *id) {
    device_host *self = device_host::self(h);
    if (!self || !id) return nullptr;
    if (!self->withheld_.empty() && self->withheld_ == id) return nullptr;
    if (std::strcmp(id, FL_EXT_TIMER) == 0) return self->timer_ptr_;
    if (std::strcmp(id, FL_EXT_TRANSPORT) == 0) return self->transport_ptr_;
    return nullptr;
}

std::vector<emitted_event> device_host::events() const {
    std::lock_guard lock(mutex_);
    return events_;
}
void device_host::forget_events() {
    std::lock_guard lock(mutex_);
    std::vector<emitted_event>().swap(events_);
    std::vector<emitted_event>().swap(deferred_);
}
std::size_t device_host::event_count() const {
    std::lock_guard lock(mutex_);
    return events_.size();
}
std::vector<std::string> device_host::violations() const {
    std::lock_guard lock(mutex_);
    return violations_;
}
std::vector<std::string> device_host::emit_violations() const {
    std::lock_guard lock(mutex_);
    return emit_violations_;
}
std::vector<std::string> device_host::logs() const {
    std::lock_guard lock(mutex_);
    return logs_;
}
std::map<std::uint64_t, device_host::timer> device_host::active_timers() const {
    std::lock_guard lock(mutex_);
    return timers_;
}
void device_host::spend_timer(std::uint64_t id) {
    std::lock_guard lock(mutex_);
    timers_.erase(id);
}
void device_host::clear_timers() {
    std::lock_guard lock(mutex_);
    timers_.clear();
}
std::vector<std::uint8_t> device_host::take_written() {
    std::lock_guard lock(mutex_);
    return std::exchange(written_, {});
}
void device_host::end_turn() {
    std::lock_guard lock(mutex_);
    request_in_flight_ = false;
}
void device_host::reset_wire() {
    std::lock_guard lock(mutex_);
    request_in_flight_ = false;
    written_.clear();
    open_requested_ = false;
}

std::int32_t device_host::t_kind(const fl_host *h) {
    device_host *self = device_host::self(h);
    return self ? self->transport_kind_ : FL_TRANSPORT_SERIAL;
}
std::int32_t device_host::t_unit(const fl_host *) { return 1; }

fl_status device_host::t_open(const fl_host *h) {
    device_host *self = device_host::self(h);
    if (!self) return FL_MISUSE;
    if (!self->in_service("transport open")) return FL_MISUSE;
    self->open_requested_ = true;
    return FL_OK;
}
fl_status device_host::t_write(const fl_host *h, const std::uint8_t *data, std::size_t size) {
    device_host *self = device_host::self(h);
    if (!self) return FL_MISUSE;
    if (const fl_status st = self->may_send(data, size, "transport write"); st != FL_OK) return st;
    if (self->transport_kind_ == FL_TRANSPORT_RS485_BUS) {
        self->violation("write on a shared bus, where a device talks in request() turns only (FL-PLUGIN-33)");
        return FL_MISUSE;
    }
    std::lock_guard lock(self->mutex_);
    self->keep_written(data, size);
    return FL_OK;
}
fl_status device_host::t_request(const fl_host *h, const std::uint8_t *data, std::size_t size, std::uint32_t) {
    device_host *self = device_host::self(h);
    if (!self) return FL_MISUSE;
    if (const fl_status st = self->may_send(data, size, "transport request"); st != FL_OK) return st;
    std::lock_guard lock(self->mutex_);
    if (self->request_in_flight_) return FL_BUSY;
    self->request_in_flight_ = true;
    ++self->turns_taken_;
    self->keep_written(data, size);
    return FL_OK;
}
fl_status device_host::t_end_request(const fl_host *h) {
    device_host *self = device_host::self(h);
    if (!self) return FL_MISUSE;
    std::lock_guard lock(self->mutex_);
    if (self->request_in_flight_) ++self->turns_ended_;
    self->request_in_flight_ = false;
    return FL_OK;
}
bool device_host::turn_open() const {
    std::lock_guard lock(mutex_);
    return request_in_flight_;
}
fl_status device_host::t_close(const fl_host *h) {
    device_host *self = device_host::self(h);
    if (!self) return FL_MISUSE;
    self->open_requested_ = false;
    return FL_OK;
}
fl_status device_host::tm_start(const fl_host *h, std::uint32_t period_ms, std::uint32_t flags, std::uint64_t *out) {
    device_host *self = device_host::self(h);
    if (!self || !out || period_ms == 0) return FL_MISUSE;
    if (!self->in_service("timer start")) return FL_MISUSE;
    std::lock_guard lock(self->mutex_);
    *out = self->next_timer_++;
    self->timers_[*out] = {period_ms, (flags & FL_TIMER_ONESHOT) != 0};
    return FL_OK;
}
fl_status device_host::tm_cancel(const fl_host *h, std::uint64_t id) {
    device_host *self = device_host::self(h);
    if (!self) return FL_MISUSE;
    std::lock_guard lock(self->mutex_);
    return self->timers_.erase(id) ? FL_OK : FL_NOT_FOUND;
}

// ---- instance ------------------------------------------------------------------------------------------------

instance::instance(const fl_plugin_entry &entry, const core::driver_info &driver, std::string device_id,
                   std::int32_t transport_kind)
    : entry_(entry), driver_(driver),
      host_(std::move(device_id), driver.device_class,
            transport_kind >= 0 ? transport_kind : transport_kind_for(driver.wires)) {}

instance::~instance() { destroy(); }

template <class F>
auto instance::timed(const char *what, F &&f) {
    const auto t0 = std::chrono::steady_clock::now();
    struct record {
        instance *self;
        const char *what;
        std::chrono::steady_clock::time_point t0;
        std::size_t busy0;
        ~record() {
            self->most_busy_ = std::max(self->most_busy_, self->host_.busy_answers() - busy0);
            const auto d = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
            if (d > self->slowest_) {
                self->slowest_ = d;
                self->slowest_call_ = what;
            }
        }
    } r{this, what, t0, host_.busy_answers()};
    return f();
}

bool instance::needs_wire() const noexcept { return driver_.wires != 0 && !(driver_.flags & FL_DRIVER_OWN_IO); }

void instance::bind_extensions() {
    if (!device_ || !device_->get_extension) return;
    const auto *tx = static_cast<const fl_device_transport *>(
        timed("get_extension", [&] { return device_->get_extension(device_, FL_EXT_TRANSPORT); }));
    if (FL_HAS_FIELD(tx, fl_device_transport, on_state) && tx->on_data && tx->on_state) transport_ = tx;
    const auto *tm = static_cast<const fl_device_timer *>(
        timed("get_extension", [&] { return device_->get_extension(device_, FL_EXT_TIMER); }));
    if (FL_HAS_FIELD(tm, fl_device_timer, on_timer) && tm->on_timer) timer_ = tm;
}

fl_status instance::create(const std::vector<std::uint8_t> &config) {
    return create(config.empty() ? nullptr : config.data(), config.size());
}

fl_status instance::create(const std::uint8_t *config, std::size_t size, const char *driver_id) {
    host_.set_state(device_state::creating);
    const fl_device *out = nullptr;
    const fl_status st = timed("create_device", [&] {
        return entry_.create_device(driver_id ? driver_id : driver_.id.c_str(), host_.abi(), config, size, &out);
    });
    if (st != FL_OK) {
        device_ = out;  // must be NULL; the check says so
        return st;
    }
    device_ = out;
    host_.set_state(device_state::created);
    bind_extensions();
    return st;
}

fl_status instance::start() {
    if (!device_) return FL_MISUSE;
    const device_state before = host_.state();
    host_.set_state(device_state::starting);
    const fl_status st = timed("start", [&] { return device_->start(device_); });
    if (st == FL_OK) {
        host_.set_state(device_state::started);
    } else {
        host_.set_state(before == device_state::started ? device_state::started : before);
        if (before != device_state::started) host_.clear_timers();
    }
    return st;
}

fl_status instance::stop() {
    if (!device_) return FL_MISUSE;
    const device_state before = host_.state();
    if (before == device_state::started) host_.set_state(device_state::stopping);
    const fl_status st = timed("stop", [&] { return device_->stop(device_); });
    if (before == device_state::started) {
        // The host cancels the timers and closes the wire after stop, whatever stop answered.
        host_.set_state(device_state::stopped);
        host_.clear_timers();
        host_.reset_wire();
    }
    return st;
}

fl_status instance::command(const std::vector<std::uint8_t> &c) {
    return command(c.empty() ? nullptr : c.data(), c.size());
}

fl_status instance::command(const std::uint8_t *c, std::size_t size) {
    if (!device_) return FL_MISUSE;
    return timed("command", [&] { return device_->command(device_, c, size); });
}

void instance::destroy() {
    if (!device_) return;
    if (host_.state() == device_state::started) host_.set_state(device_state::stopping);
    timed("destroy", [&] { device_->destroy(device_); });
    device_ = nullptr;
    transport_ = nullptr;
    timer_ = nullptr;
    host_.set_state(device_state::destroyed);
    host_.clear_timers();
}

void instance::deliver_open() {
    if (transport_ && host_.open_requested() && device_)
        timed("on_state", [&] { transport_->on_state(device_, FL_LINK_OPEN, FL_OK); });
}

void instance::on_state(std::int32_t state, fl_status reason) {
    if (!transport_ || !device_) return;
    if (state != FL_LINK_OPEN) host_.end_turn();
    timed("on_state", [&] { transport_->on_state(device_, state, reason); });
}

void instance::on_data(const std::uint8_t *data, std::size_t size) {
    if (!transport_ || !device_) return;
    timed("on_data", [&] { transport_->on_data(device_, data, size); });
}

void instance::tick() {
    if (!timer_ || !device_) return;
    for (const auto &[id, t] : host_.active_timers()) {
        if (host_.state() != device_state::started) break;
        if (!host_.active_timers().count(id)) continue;  // cancelled by an earlier tick
        if (t.oneshot) host_.spend_timer(id);
        timed("on_timer", [&] { timer_->on_timer(device_, id); });
    }
}

}  // namespace firelink::conform
