#include "firelink/isolation/runner_supervisor.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <firelink/core/device_runtime.hpp>
#include <firelink/ext/transport.h>
#include <firelink/isolation/channel.hpp>
#include <firelink/isolation/plugin_info_codec.hpp>

namespace firelink::isolation {

namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t max_pending = 64 << 20;  // bytes for a runner that does not read: beyond, wire bytes drop
constexpr const char *event_kinds[] = {"alarm",  "pre_alarm", "fault",          "restore", "status",
                                       "telemetry", "offline", "command_result", "gap"};

std::string_view bin_of(const msgpack::object &o) {
    if (o.type == msgpack::type::BIN) return {o.via.bin.ptr, o.via.bin.size};
    if (o.type == msgpack::type::STR) return {o.via.str.ptr, o.via.str.size};
    return {};
}

struct reply {
    fl_status status = FL_CLOSED;
    std::string text;
};

// What the runner said once it had loaded the plugin, or why it did not.
struct hello {
    std::optional<core::plugin_info> info;
    bool can_identify = false;
    core::refusal reason = core::refusal::load_failed;
    std::string detail;
};

core::refusal refusal_named(std::string_view name) {
    using core::refusal;
    for (auto r : {refusal::not_found, refusal::not_a_shared_library, refusal::load_failed, refusal::no_entry_symbol,
                   refusal::entry_too_small, refusal::incompatible_major, refusal::negotiation_refused,
                   refusal::negotiation_invalid, refusal::invalid_descriptor, refusal::duplicate_plugin_id,
                   refusal::init_failed})
        if (core::to_string(r) == name) return r;
    return refusal::load_failed;
}

class runner_supervisor;

// One runner process and its channel. Replaced, never reused, when the runner is restarted.
struct connection {
    runner_process proc;
    std::unique_ptr<frame_writer> out;
    std::thread reader;
    clock::time_point started_at = clock::now();
    std::promise<hello> hello_promise;
    bool hello_given = false;        // reader thread only
    std::atomic<bool> ended{false};  // the reader saw the end of the channel
    std::string end_reason;          // why (set before ended)
    std::uint64_t ping_sent = 0;         // supervisor thread
    clock::time_point ping_sent_at;      // supervisor thread
    std::atomic<std::uint64_t> pong_seen{0};
    std::string hang_reason;         // set by the supervisor when it kills a hung runner
    bool reaped = false;
    int wait_status = 0;

    std::mutex pending_mutex;
    std::map<std::uint64_t, std::shared_ptr<std::promise<reply>>> pending;

    // Last: a thread that took this connection before it ended may still be sending through `out`. By now the
    // runner is reaped, so a send fails at once and the writer's thread ends.
    ~connection() {
        out.reset();
        if (proc.fd >= 0) ::close(proc.fd);
    }

    void fail_pending() {
        std::lock_guard lock(pending_mutex);
        for (auto &[id, p] : pending) p->set_value({FL_CLOSED, "the driver's process ended"});
        pending.clear();
    }
};

// A device as the runtime sees it: an fl_device whose every call crosses the channel.
struct proxy_device {
    fl_device dev{};
    fl_device_transport tx{};
    runner_supervisor *owner = nullptr;
    std::uint64_t handle = 0;
    const fl_host *host = nullptr;  // the runtime's fl_host for the device
    std::string driver_id, device_id;
    std::vector<std::uint8_t> config;
    int wire_kind = 0, unit = -1;
    bool started = false;     // as the runtime last asked (calls_mutex_)
    bool down = false;        // set_driver_down was called and not yet undone (devices_mutex_)
    // Events the runner let through but the host then answered FL_BUSY for: kept, in order, until the host takes
    // them (devices_mutex_).
    std::deque<std::vector<std::uint8_t>> held;
};

class runner_supervisor final : public core::plugin_backend, public std::enable_shared_from_this<runner_supervisor> {
public:
    runner_supervisor(std::filesystem::path file, supervisor_options options)
        : file_(std::move(file)), opt_(std::move(options)) {
        if (opt_.runner.empty()) opt_.runner = default_runner_path();
    }
    ~runner_supervisor() override { shutdown(); }

    // Starts the first runner and waits for its hello.
    hello start();
    runner_status status() const;

    // ---- core::plugin_backend ---------------------------------------------------------------------------------
    fl_status init() override { return FL_OK; }  // the runner initialised the plugin before its hello
    void deinit() override { shutdown(); }
    fl_status create_device(const char *driver_id, const fl_host *host, const std::uint8_t *config,
                            std::size_t config_size, const fl_device **out) override;
    bool can_identify() const override { return can_identify_; }
    fl_status identify(const char *driver_id, const std::uint8_t *data, std::size_t size,
                       std::string &identity) override;

    // ---- the proxy devices' calls -----------------------------------------------------------------------------
    fl_status start_device(proxy_device &d);
    fl_status stop_device(proxy_device &d);
    void destroy_device(proxy_device &d);
    fl_status command_device(proxy_device &d, const std::uint8_t *cmd, std::size_t size);
    void wire_data(proxy_device &d, const std::uint8_t *data, std::size_t size);
    void wire_state(proxy_device &d, int state, fl_status reason);

private:
    std::shared_ptr<connection> spawn();
    std::shared_ptr<connection> current() const {
        std::lock_guard lock(conn_mutex_);
        return conn_;
    }
    // Sends a call and waits for its reply; `build` packs the message after [type, call].
    reply call(msg type, std::size_t fields, const std::function<void(msgpack::packer<msgpack::sbuffer> &)> &build,
               std::chrono::milliseconds timeout);
    void read_loop(std::shared_ptr<connection> c);
    void dispatch(connection &c, const msgpack::object &m);
    void deliver(proxy_device &d, std::string_view event);

    void supervise();
    void tick(const std::shared_ptr<connection> &c);
    void reap(connection &c);
    void on_failure(connection &c);
    void restart();
    void update_admission(connection &c);
    void retry_held();
    void stop_connection(const std::shared_ptr<connection> &c);
    void shutdown();
    std::chrono::milliseconds backoff();

    std::filesystem::path file_;
    supervisor_options opt_;
    std::string plugin_id_;
    core::plugin_info info_;
    bool can_identify_ = false;

    mutable std::mutex conn_mutex_;
    std::shared_ptr<connection> conn_;
    std::atomic<std::uint64_t> next_call_{1};
    std::atomic<std::uint64_t> next_handle_{1};
    std::atomic<std::uint64_t> dropped_bytes_calls_{0};  // wire data the runner's full channel refused
    std::atomic<std::int64_t> last_drop_log_{0};

    // Calls into devices share this; a restart takes it alone while it recreates them.
    std::shared_mutex calls_mutex_;
    std::mutex devices_mutex_;
    std::map<std::uint64_t, std::unique_ptr<proxy_device>> devices_;  // by handle: the order of creation

    // Supervisor thread.
    std::thread supervisor_;
    mutable std::mutex wake_mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::string state_ = "running";  // wake_mutex_
    clock::time_point restart_at_;
    std::deque<clock::time_point> failures_in_window_;
    unsigned consecutive_failures_ = 0;
    std::atomic<std::uint64_t> restarts_{0}, failures_{0};
    std::string last_failure_;        // wake_mutex_
    std::vector<std::string> busy_kinds_;
    std::mt19937_64 rng_{std::random_device{}()};
};

// ---- the proxy fl_device ---------------------------------------------------------------------------------------

proxy_device &proxy(const fl_device *d) { return *static_cast<proxy_device *>(d->driver_data); }

fl_status proxy_start(const fl_device *d) { return proxy(d).owner->start_device(proxy(d)); }
fl_status proxy_stop(const fl_device *d) { return proxy(d).owner->stop_device(proxy(d)); }
void proxy_destroy(const fl_device *d) {
    if (d) proxy(d).owner->destroy_device(proxy(d));
}
fl_status proxy_command(const fl_device *d, const std::uint8_t *cmd, std::size_t size) {
    return proxy(d).owner->command_device(proxy(d), cmd, size);
}
const void *proxy_get_extension(const fl_device *d, const char *id) {
    // Timers live in the runner, next to the driver; the wire stays here.
    if (id && std::string_view(id) == FL_EXT_TRANSPORT && proxy(d).wire_kind) return &proxy(d).tx;
    return nullptr;
}
void proxy_on_data(const fl_device *d, const std::uint8_t *data, std::size_t size) {
    proxy(d).owner->wire_data(proxy(d), data, size);
}
void proxy_on_state(const fl_device *d, std::int32_t state, fl_status reason) {
    proxy(d).owner->wire_state(proxy(d), state, reason);
}

// ---- starting and talking ------------------------------------------------------------------------------------

std::shared_ptr<connection> runner_supervisor::spawn() {
    auto c = std::make_shared<connection>();
    c->proc = spawn_runner(opt_.runner, file_, opt_.limits);
    c->out = std::make_unique<frame_writer>(c->proc.fd, max_pending);
    c->reader = std::thread([this, c] { read_loop(c); });
    return c;
}

hello runner_supervisor::start() {
    std::shared_ptr<connection> c;
    try {
        c = spawn();
    } catch (const std::exception &e) {
        hello h;
        h.detail = std::string("cannot start firelink-runner (") + opt_.runner.string() + "): " + e.what();
        return h;
    }
    auto got = c->hello_promise.get_future();
    hello h;
    if (got.wait_for(opt_.load_timeout) != std::future_status::ready) {
        c->hang_reason = "did not load the plugin within " + std::to_string(opt_.load_timeout.count()) + " ms";
        stop_connection(c);
        h.detail = "firelink-runner " + c->hang_reason;
        return h;
    }
    h = got.get();
    if (!h.info) {
        stop_connection(c);
        if (h.detail.empty()) h.detail = "firelink-runner " + describe_exit(c->wait_status) + " while loading";
        return h;
    }
    info_ = *h.info;
    plugin_id_ = info_.id;
    can_identify_ = h.can_identify;
    {
        std::lock_guard lock(conn_mutex_);
        conn_ = c;
    }
    spdlog::info("[{}] runs in firelink-runner pid {}", plugin_id_, c->proc.pid);
    supervisor_ = std::thread([this] { supervise(); });
    return h;
}

reply runner_supervisor::call(msg type, std::size_t fields,
                              const std::function<void(msgpack::packer<msgpack::sbuffer> &)> &build,
                              std::chrono::milliseconds timeout) {
    auto c = current();
    if (!c || c->ended) return {FL_CLOSED, "the driver's process is not running"};
    const auto id = next_call_++;
    auto promise = std::make_shared<std::promise<reply>>();
    auto result = promise->get_future();
    {
        std::lock_guard lock(c->pending_mutex);
        if (c->ended) return {FL_CLOSED, "the driver's process is not running"};
        c->pending[id] = promise;
    }
    frame f;
    f.pack().pack_array(static_cast<std::uint32_t>(2 + fields));
    f.pack().pack(static_cast<int>(type)), f.pack().pack(id);
    build(f.pack());
    if (!c->out->send_always(f.finish())) {
        std::lock_guard lock(c->pending_mutex);
        c->pending.erase(id);
        return {FL_CLOSED, "the driver's process is not running"};
    }
    if (result.wait_for(timeout) == std::future_status::ready) return result.get();
    std::lock_guard lock(c->pending_mutex);
    c->pending.erase(id);
    return {FL_TIMEOUT, "the driver's process did not answer within " + std::to_string(timeout.count()) + " ms"};
}

void runner_supervisor::read_loop(std::shared_ptr<connection> c) {
    frame_reader in(c->proc.fd, true);  // each message is dispatched before the next is read
    msgpack::object_handle m;
    std::string why;
    while (in.next(m)) {
        try {
            dispatch(*c, m.get());
        } catch (const std::exception &e) {
            why = std::string("sent a malformed message: ") + e.what();
            ::kill(c->proc.pid, SIGKILL);
            break;
        }
    }
    c->end_reason = why.empty() ? in.error() : why;
    if (!c->hello_given) {
        // Died or refused before its hello: the loader's answer is whatever it said, or how it ended.
        int status = 0;
        ::kill(c->proc.pid, SIGKILL);
        ::waitpid(c->proc.pid, &status, 0);
        c->reaped = true;
        c->wait_status = status;
        hello h;
        h.detail = "firelink-runner " + describe_exit(status) + " while loading the plugin";
        c->hello_given = true;
        c->hello_promise.set_value(std::move(h));
    }
    c->ended = true;
    c->fail_pending();
    std::lock_guard lock(wake_mutex_);
    wake_.notify_all();
}

void runner_supervisor::dispatch(connection &c, const msgpack::object &m) {
    const auto *a = m.via.array.ptr;
    const auto n = m.via.array.size;
    const auto type = static_cast<msg>(a[0].as<int>());
    auto device = [&](std::uint64_t handle) -> proxy_device * {  // devices_mutex_ held
        auto it = devices_.find(handle);
        return it == devices_.end() ? nullptr : it->second.get();
    };
    switch (type) {
    case msg::hello:
    case msg::refused: {
        if (c.hello_given) throw std::runtime_error("a second hello");
        hello h;
        if (type == msg::hello) {
            h.info = unpack_plugin_info(a[1]);
            h.can_identify = n > 2 && a[2].as<bool>();
        } else {
            h.reason = refusal_named(a[1].as<std::string>());
            h.detail = a[2].as<std::string>();
        }
        c.hello_given = true;
        c.hello_promise.set_value(std::move(h));
        return;
    }
    case msg::reply: {
        std::shared_ptr<std::promise<reply>> p;
        {
            std::lock_guard lock(c.pending_mutex);
            auto it = c.pending.find(a[1].as<std::uint64_t>());
            if (it == c.pending.end()) return;  // answered after its caller gave up
            p = std::move(it->second);
            c.pending.erase(it);
        }
        p->set_value({a[2].as<fl_status>(), a[3].as<std::string>()});
        return;
    }
    case msg::emit: {
        std::lock_guard lock(devices_mutex_);
        if (auto *d = device(a[1].as<std::uint64_t>())) deliver(*d, bin_of(a[2]));
        return;
    }
    case msg::log: {
        const auto handle = a[1].as<std::uint64_t>();
        const auto text = a[3].as<std::string>();
        std::string who;
        if (handle) {
            std::lock_guard lock(devices_mutex_);
            if (auto *d = device(handle)) who = " device " + d->device_id + ":";
        }
        core::log_for_plugin(a[2].as<std::int32_t>(), "[" + plugin_id_ + "]" + who + " " + text);
        return;
    }
    case msg::wire: {
        const auto op = static_cast<wire_op>(a[2].as<int>());
        const auto b = bin_of(a[3]);
        const auto timeout = std::chrono::milliseconds(a[4].as<std::uint32_t>());
        std::lock_guard lock(devices_mutex_);
        auto *d = device(a[1].as<std::uint64_t>());
        if (!d) return;
        core::post_to_device(d->host, [op, bytes = std::vector<std::uint8_t>(b.begin(), b.end()),
                                       timeout](transport::link *l) {
            if (!l) return;
            switch (op) {
            case wire_op::open: l->open(); break;
            case wire_op::write: l->write(bytes.data(), bytes.size()); break;
            case wire_op::request: l->request(bytes.data(), bytes.size(), timeout); break;
            case wire_op::end_request: l->end_request(); break;
            case wire_op::close: l->close(); break;
            }
        });
        return;
    }
    case msg::pong:
        c.pong_seen = a[1].as<std::uint64_t>();
        return;
    case msg::slow: {
        const auto what = a[2].as<std::string>();
        const auto took = std::chrono::milliseconds(a[3].as<std::int64_t>());
        std::lock_guard lock(devices_mutex_);
        if (auto *d = device(a[1].as<std::uint64_t>()))
            core::note_slow_call(d->host, what, took);
        else
            spdlog::warn("[{}] {} ran {} ms: callbacks must not block", plugin_id_, what, took.count());
        return;
    }
    default: throw std::runtime_error("unknown message type " + std::to_string(static_cast<int>(type)));
    }
}

// devices_mutex_ held.
void runner_supervisor::deliver(proxy_device &d, std::string_view event) {
    const auto *data = reinterpret_cast<const std::uint8_t *>(event.data());
    if (d.held.empty() && d.host->emit(d.host, data, event.size()) != FL_BUSY) return;
    d.held.emplace_back(data, data + event.size());
}

void runner_supervisor::retry_held() {
    std::lock_guard lock(devices_mutex_);
    for (auto &[handle, d] : devices_) {
        while (!d->held.empty()) {
            if (d->host->emit(d->host, d->held.front().data(), d->held.front().size()) == FL_BUSY) break;
            d->held.pop_front();
        }
    }
}

// ---- the runtime's calls -------------------------------------------------------------------------------------

fl_status runner_supervisor::create_device(const char *driver_id, const fl_host *host, const std::uint8_t *config,
                                           std::size_t config_size, const fl_device **out) {
    if (!driver_id || !host || !out || (!config && config_size)) return FL_MISUSE;
    auto d = std::make_unique<proxy_device>();
    d->owner = this;
    d->handle = next_handle_++;
    d->host = host;
    d->driver_id = driver_id;
    d->device_id = host->device_id ? host->device_id : "";
    if (config) d->config.assign(config, config + config_size);
    if (const auto *t = static_cast<const fl_host_transport *>(host->get_extension(host, FL_EXT_TRANSPORT))) {
        d->wire_kind = t->kind(host);
        d->unit = t->unit ? t->unit(host) : -1;
    }
    d->dev.struct_size = sizeof(fl_device);
    d->dev.driver_data = d.get();
    d->dev.start = proxy_start;
    d->dev.stop = proxy_stop;
    d->dev.destroy = proxy_destroy;
    d->dev.command = proxy_command;
    d->dev.get_extension = proxy_get_extension;
    d->tx.struct_size = sizeof(fl_device_transport);
    d->tx.on_data = proxy_on_data;
    d->tx.on_state = proxy_on_state;

    std::shared_lock calls(calls_mutex_);
    const auto r = call(msg::create, 6, [&](auto &pk) {
        pk.pack(d->handle), pk.pack(d->driver_id), pk.pack(d->device_id);
        pk.pack_bin(static_cast<std::uint32_t>(d->config.size()));
        pk.pack_bin_body(reinterpret_cast<const char *>(d->config.data()), static_cast<std::uint32_t>(d->config.size()));
        pk.pack(d->wire_kind), pk.pack(d->unit);
    }, opt_.call_timeout);
    if (r.status != FL_OK) return r.status;
    *out = &d->dev;
    std::lock_guard lock(devices_mutex_);
    devices_[d->handle] = std::move(d);
    return FL_OK;
}

fl_status runner_supervisor::start_device(proxy_device &d) {
    std::shared_lock calls(calls_mutex_);
    const auto r = call(msg::start, 1, [&](auto &pk) { pk.pack(d.handle); }, opt_.call_timeout);
    if (r.status == FL_OK) d.started = true;
    return r.status;
}

fl_status runner_supervisor::stop_device(proxy_device &d) {
    std::shared_lock calls(calls_mutex_);
    d.started = false;
    const auto r = call(msg::stop, 1, [&](auto &pk) { pk.pack(d.handle); }, opt_.call_timeout);
    return r.status == FL_CLOSED ? FL_OK : r.status;  // a runner that is down has stopped it already
}

void runner_supervisor::destroy_device(proxy_device &d) {
    std::shared_lock calls(calls_mutex_);
    d.started = false;
    call(msg::destroy, 1, [&](auto &pk) { pk.pack(d.handle); }, opt_.call_timeout);
    std::lock_guard lock(devices_mutex_);
    devices_.erase(d.handle);  // after this, nothing here touches the runtime's fl_host for it
}

fl_status runner_supervisor::command_device(proxy_device &d, const std::uint8_t *cmd, std::size_t size) {
    if (!cmd && size) return FL_MISUSE;
    std::shared_lock calls(calls_mutex_);
    const auto r = call(msg::command, 2, [&](auto &pk) {
        pk.pack(d.handle);
        pk.pack_bin(static_cast<std::uint32_t>(size));
        pk.pack_bin_body(reinterpret_cast<const char *>(cmd), static_cast<std::uint32_t>(size));
    }, opt_.call_timeout);
    return r.status;
}

fl_status runner_supervisor::identify(const char *driver_id, const std::uint8_t *data, std::size_t size,
                                      std::string &identity) {
    if (!driver_id || (!data && size)) return FL_MISUSE;
    const auto r = call(msg::identify, 2, [&](auto &pk) {
        pk.pack(std::string_view(driver_id));
        pk.pack_bin(static_cast<std::uint32_t>(size));
        pk.pack_bin_body(reinterpret_cast<const char *>(data), static_cast<std::uint32_t>(size));
    }, opt_.call_timeout);
    if (r.status == FL_OK) identity = r.text;
    // A runner that is down identifies nothing: the connection is refused and the device connects again later.
    return r.status == FL_CLOSED || r.status == FL_TIMEOUT ? FL_INVALID_ARGUMENT : r.status;
}

void runner_supervisor::wire_data(proxy_device &d, const std::uint8_t *data, std::size_t size) {
    auto c = current();
    if (!c || c->ended) return;  // the driver is down: its replacement reads the device afresh
    frame f;
    f.pack().pack_array(3);
    f.pack().pack(static_cast<int>(msg::data)), f.pack().pack(d.handle);
    f.pack().pack_bin(static_cast<std::uint32_t>(size));
    f.pack().pack_bin_body(reinterpret_cast<const char *>(data), static_cast<std::uint32_t>(size));
    if (c->out->send(f)) return;
    // The runner has stopped reading (its heartbeat will tell whether it hangs): the bytes are dropped, and said so.
    const auto dropped = ++dropped_bytes_calls_;
    const auto now = clock::now().time_since_epoch().count();
    auto last = last_drop_log_.load();
    if (now - last > 1'000'000'000 && last_drop_log_.compare_exchange_strong(last, now))
        spdlog::warn("[{}] device {}: the runner is not reading; wire bytes dropped ({} time(s) so far)", plugin_id_,
                     d.device_id, dropped);
}

void runner_supervisor::wire_state(proxy_device &d, int state, fl_status reason) {
    auto c = current();
    if (!c || c->ended) return;
    frame f;
    f.pack().pack_array(4);
    f.pack().pack(static_cast<int>(msg::state)), f.pack().pack(d.handle), f.pack().pack(state), f.pack().pack(reason);
    c->out->send_always(f.finish());
}

// ---- supervision ---------------------------------------------------------------------------------------------

std::chrono::milliseconds runner_supervisor::backoff() {
    // Exponential, capped, with full jitter: restarts of many gateways after one bad update do not align.
    const auto shift = std::min<unsigned>(consecutive_failures_ > 0 ? consecutive_failures_ - 1 : 0, 20);
    const auto ceiling = std::min<std::int64_t>(opt_.backoff_initial.count() << shift, opt_.backoff_max.count());
    std::uniform_int_distribution<std::int64_t> pick(opt_.backoff_initial.count() / 2, std::max<std::int64_t>(ceiling, 1));
    return std::chrono::milliseconds(pick(rng_));
}

void runner_supervisor::supervise() {
    const auto period = std::clamp<std::chrono::milliseconds>(opt_.hang_timeout / 4, 10ms, 100ms);
    std::unique_lock lock(wake_mutex_);
    while (!stop_) {
        wake_.wait_for(lock, period);
        if (stop_) break;
        auto c = current();
        const std::string state = state_;
        lock.unlock();
        if (c && state == "running") {
            if (c->ended)
                on_failure(*c);
            else
                tick(c);
        } else if (state == "restarting" && clock::now() >= restart_at_) {
            restart();
        }
        lock.lock();
    }
}

// Heartbeat, admission and held events, for a runner that is up.
void runner_supervisor::tick(const std::shared_ptr<connection> &c) {
    const bool waiting = c->pong_seen.load() < c->ping_sent;
    const auto silent = clock::now() - c->ping_sent_at;
    if (waiting && silent > opt_.hang_timeout) {
        c->hang_reason = "no answer to a heartbeat for " +
                         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(silent).count()) +
                         " ms (the driver's thread is stuck in a call)";
        spdlog::error("[{}] firelink-runner pid {}: {}: killing it", plugin_id_, c->proc.pid, c->hang_reason);
        ::kill(c->proc.pid, SIGKILL);
        return;  // the reader sees the end; the next tick handles the failure
    }
    if (!waiting) {
        frame f;
        f.pack().pack_array(2);
        f.pack().pack(static_cast<int>(msg::ping)), f.pack().pack(++c->ping_sent);
        c->ping_sent_at = clock::now();
        c->out->send_always(f.finish());
    }
    update_admission(*c);
    retry_held();
}

void runner_supervisor::update_admission(connection &c) {
    if (!opt_.admits) return;
    std::vector<std::string> busy;
    for (const char *kind : event_kinds)
        if (!opt_.admits(kind)) busy.emplace_back(kind);
    if (busy == busy_kinds_) return;
    busy_kinds_ = busy;
    frame f;
    f.pack().pack_array(2);
    f.pack().pack(static_cast<int>(msg::admit)), f.pack().pack(busy);
    c.out->send_always(f.finish());
}

void runner_supervisor::reap(connection &c) {
    if (c.reaped) return;
    int status = 0;
    // A runner that closed its end is usually exiting: give it a moment, then make sure.
    for (int i = 0; i < 20; ++i) {
        if (::waitpid(c.proc.pid, &status, WNOHANG) == c.proc.pid) {
            c.reaped = true;
            c.wait_status = status;
            return;
        }
        std::this_thread::sleep_for(10ms);
    }
    ::kill(c.proc.pid, SIGKILL);
    ::waitpid(c.proc.pid, &status, 0);
    c.reaped = true;
    c.wait_status = status;
}

void runner_supervisor::on_failure(connection &c) {
    reap(c);
    const bool hung = !c.hang_reason.empty();
    const std::string what = hung ? c.hang_reason : describe_exit(c.wait_status);
    failures_++;
    const auto now = clock::now();
    if (now - c.started_at > std::max<std::chrono::milliseconds>(opt_.backoff_max, 30s)) consecutive_failures_ = 0;
    consecutive_failures_++;
    failures_in_window_.push_back(now);
    while (!failures_in_window_.empty() && now - failures_in_window_.front() > opt_.restart_window)
        failures_in_window_.pop_front();
    const bool park = failures_in_window_.size() >= static_cast<std::size_t>(opt_.restart_limit);
    const std::string code = hung ? "driver_hung" : "driver_crashed";
    const std::string reason = "the driver's process " + what;
    spdlog::error("[{}] firelink-runner pid {} {}; {}", plugin_id_, c.proc.pid, what,
                  park ? "parked after " + std::to_string(failures_in_window_.size()) + " failures" : "restarting");
    {
        std::lock_guard lock(devices_mutex_);
        for (auto &[handle, d] : devices_) {
            if (!d->down) core::set_driver_down(d->host, code, reason + "; restarting it", false);
            if (park)
                core::set_driver_down(d->host, "driver_parked",
                                      "the driver failed " + std::to_string(failures_in_window_.size()) +
                                          " times within " + std::to_string(opt_.restart_window.count()) +
                                          " s and is no longer restarted (last: " + what +
                                          "); restart the host after fixing or removing the plugin",
                                      true);
            d->down = true;
            d->held.clear();  // the driver re-reports what is still true when it starts again (FL-PLUGIN-29)
        }
    }
    {
        std::lock_guard lock(conn_mutex_);
        conn_.reset();
    }
    stop_connection(std::shared_ptr<connection>(&c, [](connection *) {}));
    std::lock_guard lock(wake_mutex_);
    last_failure_ = what;
    state_ = park ? "parked" : "restarting";
    restart_at_ = now + backoff();
}

void runner_supervisor::restart() {
    std::shared_ptr<connection> c;
    try {
        c = spawn();
    } catch (const std::exception &e) {
        spdlog::error("[{}] cannot start firelink-runner: {}", plugin_id_, e.what());
        std::lock_guard lock(wake_mutex_);
        restart_at_ = clock::now() + backoff();
        return;
    }
    restarts_++;
    auto got = c->hello_promise.get_future();
    const bool ready = got.wait_for(opt_.load_timeout) == std::future_status::ready;
    hello h;
    if (ready) h = got.get();
    if (!ready || !h.info || h.info->id != plugin_id_) {
        if (!ready) c->hang_reason = "did not load the plugin again within " + std::to_string(opt_.load_timeout.count()) + " ms";
        else if (h.info) c->hang_reason = "loaded a different plugin (" + h.info->id + ") from " + file_.string();
        else if (!h.detail.empty()) c->hang_reason = "refused the plugin: " + h.detail;
        ::kill(c->proc.pid, SIGKILL);
        {
            std::lock_guard lock(wake_mutex_);
            state_ = "running";  // so that on_failure counts it
        }
        while (!c->ended) std::this_thread::sleep_for(5ms);
        on_failure(*c);
        return;
    }
    {
        std::lock_guard lock(conn_mutex_);
        conn_ = c;
    }
    busy_kinds_.clear();
    update_admission(*c);
    // Recreate every device as it was, alone (no runtime call interleaves). Each is restored before it starts, so
    // the platform sees the fault end before the new driver's first event.
    std::size_t back = 0;
    const std::string up = "the driver's process is running again (pid " + std::to_string(c->proc.pid) + ")";
    {
        std::unique_lock calls(calls_mutex_);
        std::vector<proxy_device *> all;
        {
            std::lock_guard lock(devices_mutex_);
            for (auto &[handle, d] : devices_) all.push_back(d.get());
        }
        for (auto *d : all) {
            auto r = call(msg::create, 6, [&](auto &pk) {
                pk.pack(d->handle), pk.pack(d->driver_id), pk.pack(d->device_id);
                pk.pack_bin(static_cast<std::uint32_t>(d->config.size()));
                pk.pack_bin_body(reinterpret_cast<const char *>(d->config.data()),
                                 static_cast<std::uint32_t>(d->config.size()));
                pk.pack(d->wire_kind), pk.pack(d->unit);
            }, opt_.call_timeout);
            if (r.status != FL_OK) {
                spdlog::error("[{}] device {}: not recreated after the restart: status {} {}", plugin_id_,
                              d->device_id, r.status, r.text);
                continue;
            }
            {
                std::lock_guard lock(devices_mutex_);
                core::set_driver_up(d->host, up);
                d->down = false;
            }
            if (!d->started) {
                ++back;
                continue;
            }
            // The old driver's wire is closed quietly before the new one opens it again.
            core::post_to_device(d->host, [](transport::link *l) {
                if (l) l->close();
            });
            r = call(msg::start, 1, [&](auto &pk) { pk.pack(d->handle); }, opt_.call_timeout);
            if (r.status == FL_OK) {
                ++back;
                continue;
            }
            std::lock_guard lock(devices_mutex_);
            core::set_driver_down(d->host, "driver_crashed",
                                  "the restarted driver did not start again: status " + std::to_string(r.status), false);
            d->down = true;
        }
    }
    spdlog::info("[{}] firelink-runner restarted, pid {}; {} device(s) back", plugin_id_, c->proc.pid, back);
    std::lock_guard lock(wake_mutex_);
    state_ = "running";
}

// Ends a connection: the runner is asked to finish by the end of its channel, and killed if it does not.
void runner_supervisor::stop_connection(const std::shared_ptr<connection> &c) {
    if (!c || !c->out) return;
    if (!c->ended) {
        for (int i = 0; i < 100 && c->out->pending() > 0 && !c->out->broken(); ++i) std::this_thread::sleep_for(5ms);
        ::shutdown(c->proc.fd, SHUT_WR);
        for (int i = 0; i < 300 && !c->ended; ++i) std::this_thread::sleep_for(10ms);
    }
    if (!c->reaped) {
        int status = 0;
        if (::waitpid(c->proc.pid, &status, WNOHANG) != c->proc.pid) {
            for (int i = 0; i < 50 && ::waitpid(c->proc.pid, &status, WNOHANG) != c->proc.pid; ++i)
                std::this_thread::sleep_for(10ms);
            ::kill(c->proc.pid, SIGKILL);
            ::waitpid(c->proc.pid, &status, 0);
        }
        c->reaped = true;
        c->wait_status = status;
    }
    if (c->reader.joinable()) c->reader.join();
}

void runner_supervisor::shutdown() {
    {
        std::lock_guard lock(wake_mutex_);
        if (stop_ && !supervisor_.joinable()) return;
        stop_ = true;
        state_ = "stopped";
    }
    wake_.notify_all();
    if (supervisor_.joinable()) supervisor_.join();
    std::shared_ptr<connection> c;
    {
        std::lock_guard lock(conn_mutex_);
        c.swap(conn_);
    }
    stop_connection(c);
}

runner_status runner_supervisor::status() const {
    runner_status s;
    s.plugin_id = plugin_id_;
    if (auto c = current()) s.pid = c->proc.pid;
    s.restarts = restarts_;
    s.failures = failures_;
    std::lock_guard lock(wake_mutex_);
    s.state = state_;
    s.last_failure = last_failure_;
    return s;
}

}  // namespace

core::load_result load_out_of_process(const std::filesystem::path &file, const supervisor_options &options) {
    if (auto why = check_plugin_file(file); !why.empty())
        return core::load_error{file, core::refusal::load_failed, "the plugin file is not safe to load: " + why};
    auto sup = std::make_shared<runner_supervisor>(file, options);
    auto h = sup->start();
    if (!h.info) return core::load_error{file, h.reason, h.detail};
    return core::plugin::remote(*h.info, sup);
}

std::optional<runner_status> status_of(const core::plugin &p) {
    const auto *sup = dynamic_cast<const runner_supervisor *>(p.backend());
    if (!sup) return std::nullopt;
    return sup->status();
}

}  // namespace firelink::isolation
