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
#include <set>
#include <shared_mutex>
#include <thread>
#include <vector>

#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <firelink/core/device_runtime.hpp>
#include <firelink/ext/commit.h>
#include <firelink/ext/conditions.h>
#include <firelink/ext/transport.h>
#include <firelink/isolation/channel.hpp>
#include <firelink/isolation/event_ring.hpp>
#include <firelink/isolation/messages.hpp>

namespace firelink::isolation {

namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Control frames that may wait for a runner that does not read (calls, pings, admission): few and small. Wire
// data is bounded by the data credit instead.
constexpr std::size_t max_pending = 4 << 20;
constexpr const char *event_kinds[] = {"alarm",  "pre_alarm", "fault",          "restore", "status",
                                       "telemetry", "offline", "command_result", "gap"};

struct reply {
    fl_status status = FL_CLOSED;
    std::string text;
    bool answered = false;  // by the runner; else `text` is why the call never reached the driver
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
                   refusal::init_failed, refusal::signature_refused, refusal::certificate_refused})
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

    // The runner's events (event_ring.hpp). Read under the supervisor's devices_mutex_, also after the runner
    // died: the connection stays in the supervisor's rings_ until every lane is empty.
    std::uint64_t generation = 0;
    std::optional<ring_memory> rings;
    std::vector<ring_consumer> lanes;  // one per lane
    int bell = -1;                     // eventfd the runner rings while the host sleeps
    bool rings_broken = false;         // corrupt: read no further
    bool lanes_empty() {
        if (rings_broken) return true;
        for (auto &l : lanes)
            if (l.front()) return false;
        return true;
    }

    // Last: a thread that took this connection before it ended may still be sending through `out`. By now the
    // runner is reaped, so a send fails at once and the writer's thread ends.
    ~connection() {
        out.reset();
        if (proc.fd >= 0) ::close(proc.fd);
        if (bell >= 0) ::close(bell);
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

    // Everything below: devices_mutex_. (Events the runner answered FL_OK for and the runtime refused FL_BUSY stay
    // in the runner's event ring: the lane waits. So nothing is held for a device here but its bookkeeping.)

    // Commit notification (firelink.commit/1) across the boundary: the runtime numbers the events it took from
    // this proxy; the runner numbered them in its instance (the connection's `generation` that created it).
    // Runner numbers committed above the watermark wait in `committed` until the watermark reaches them.
    std::uint64_t generation = 0;
    std::uint64_t taken_by_runtime = 0;                         // the runtime's numbers
    std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> uncommitted;  // runtime n -> (generation, n)
    std::set<std::uint64_t> committed;
    std::uint64_t committed_through = 0;  // in the current generation

    // Wire data sent to the runner and not yet consumed by its driver (the data credit).
    std::uint64_t data_in_flight = 0;
    bool wire_held = false;
};

class runner_supervisor final : public core::plugin_backend, public std::enable_shared_from_this<runner_supervisor> {
public:
    runner_supervisor(std::filesystem::path file, supervisor_options options, int plugin_fd)
        : file_(std::move(file)), opt_(std::move(options)),
          plugin_fd_(plugin_fd >= 0 ? ::fcntl(plugin_fd, F_DUPFD_CLOEXEC, 0) : -1) {
        configured_runner_ = opt_.runner;
        if (opt_.data_credit_kb > 0) data_credit_ = static_cast<std::uint64_t>(opt_.data_credit_kb) << 10;
        if (plugin_fd >= 0 && plugin_fd_ < 0) throw std::system_error(errno, std::generic_category(), "dup");
    }
    ~runner_supervisor() override {
        shutdown();
        if (plugin_fd_ >= 0) ::close(plugin_fd_);
        if (!opt_.uids.off() && opt_.limits.uid != 0) release_runner_uid(opt_.limits.uid);
    }

    // Starts the first runner and waits for its hello.
    hello start();
    runner_status status() const;
    long shared_uid() const;

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
    void committed(proxy_device &d, std::uint64_t through);

private:
    std::shared_ptr<connection> spawn();
    std::shared_ptr<connection> current() const {
        std::lock_guard lock(conn_mutex_);
        return conn_;
    }
    // Sends a call and waits for its reply; `message` is given the call's id and encoded.
    template <class M>
    reply call(M message, std::chrono::milliseconds timeout);
    reply create_in_runner(proxy_device &d);
    void read_loop(std::shared_ptr<connection> c);
    void dispatch(connection &c, const runner_message &m);
    // devices_mutex_ held. Hands each lane's events to the runtime, oldest ring first, until the runtime answers
    // FL_BUSY (the event stays in its ring: that lane waits, the others go on) or the rings are empty. `forced`:
    // whatever the queue admits (a device that stops takes what its driver was told was taken).
    void drain(bool forced);
    bool hand_over(proxy_device &d, const ring_record &r, std::uint64_t generation, bool forced);

    void supervise();
    void tick(const std::shared_ptr<connection> &c);
    void reap(connection &c);
    void on_failure(connection &c);
    void restart();
    void update_admission(connection &c);
    void stop_connection(const std::shared_ptr<connection> &c);
    void shutdown();
    std::chrono::milliseconds backoff();

    std::filesystem::path file_;
    supervisor_options opt_;
    std::filesystem::path configured_runner_;  // [runner] path; empty: the one firelink::layout finds
    int plugin_fd_;  // the file as the host checked it, for every runner started (restarts too); -1: by its path
    std::string plugin_id_;
    core::plugin_info info_;
    bool can_identify_ = false;

    mutable std::mutex conn_mutex_;
    std::shared_ptr<connection> conn_;
    std::atomic<std::uint64_t> next_call_{1};
    std::atomic<std::uint64_t> next_handle_{1};
    std::uint64_t data_credit_ = 256 << 10;  // wire bytes per device sent to the runner and not yet consumed
    std::uint64_t generations_ = 0;          // connections made
    std::deque<std::shared_ptr<connection>> rings_;  // oldest first; devices_mutex_

    // Calls into devices share this; a restart takes it alone while it recreates them.
    std::shared_mutex calls_mutex_;
    mutable std::mutex devices_mutex_;
    std::map<std::uint64_t, std::unique_ptr<proxy_device>> devices_;  // by handle: the order of creation
    std::map<std::uint64_t, const fl_host *> creating_;                 // handles whose create has not answered

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
void proxy_on_committed(const fl_device *d, std::uint64_t through) { proxy(d).owner->committed(proxy(d), through); }
constexpr fl_device_commit proxy_commit = {sizeof(fl_device_commit), proxy_on_committed};

const void *proxy_get_extension(const fl_device *d, const char *id) {
    // Timers live in the runner, next to the driver; the wire stays here. Commit notifications are forwarded to
    // the runner whatever the driver declares there (it ignores them for a driver without the extension).
    if (!id) return nullptr;
    const std::string_view ext(id);
    if (ext == FL_EXT_TRANSPORT && proxy(d).wire_kind) return &proxy(d).tx;
    if (ext == FL_EXT_COMMIT) return &proxy_commit;
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
    c->rings.emplace(ring_memory::create(static_cast<std::size_t>(std::max<std::int64_t>(opt_.ring_kb, 64)) << 10));
    for (auto l : {lane::alarm, lane::event, lane::telemetry}) c->lanes.emplace_back(*c->rings, l);
    c->bell = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->bell < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    c->proc = spawn_runner(opt_.runner, file_, opt_.limits, {c->rings->fd(), c->bell}, plugin_fd_);
    c->out = std::make_unique<frame_writer>(c->proc.fd, max_pending);
    {
        std::lock_guard lock(devices_mutex_);
        c->generation = ++generations_;
        rings_.push_back(c);
    }
    c->reader = std::thread([this, c] { read_loop(c); });
    return c;
}

hello runner_supervisor::start() {
    // Looked for at each start, so a runner installed after the host began is found at the next load.
    if (const auto why = missing_runner(configured_runner_); !why.empty()) {
        hello h;
        h.detail = why;
        return h;
    }
    if (configured_runner_.empty()) opt_.runner = default_runner_path();
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
    spdlog::info("[{}] runs in firelink-runner pid {} as uid {}{}", plugin_id_, c->proc.pid, shared_uid(),
                 opt_.uids.off() ? ", shared with every other runner ([runner] uid_range = \"off\")" : "");
    if (opt_.uids.off())
        spdlog::warn("[{}] [runner] uid_range = \"off\": its runner shares uid {} with every other plugin's runner{}, "
                     "and this plugin can kill them; give each its own uid (docs/deployment.md, \"Plugin isolation\")",
                     plugin_id_, shared_uid(), shared_uid() == static_cast<long>(::geteuid()) ? " and with the host" : "");
    supervisor_ = std::thread([this] { supervise(); });
    return h;
}

template <class M>
reply runner_supervisor::call(M message, std::chrono::milliseconds timeout) {
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
    message.call = id;
    auto f = encoded(message);
    if (!c->out->send_always(f)) {
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
    // The host never stops reading a runner: events wait in its rings (bounded), everything else is small. Before
    // each message of the channel the rings are read, so an event emitted before a reply (stop's, say) is taken
    // before the reply is seen. Alarms first: the alarm lane is drained before the others.
    frame_reader in(c->proc.fd, true, max_runner_frame);
    msgpack::object_handle m;
    std::string why;
    auto &shared = c->rings->head();
    const auto take_events = [&] {
        std::lock_guard lock(devices_mutex_);
        drain(false);
        return c->rings_broken;
    };
    for (bool open = true; open && why.empty();) {
        try {
            if (take_events()) why = "corrupted its event rings";
            while (why.empty() && in.try_next(m)) {
                if (take_events()) break;
                dispatch(*c, decode_runner_message(m.get()));
            }
        } catch (const std::exception &e) {
            why = std::string("sent a malformed message: ") + e.what();
        }
        if (!why.empty()) break;
        if (in.failed()) {
            why = std::string("sent ") + in.error();
            break;
        }
        // Sleep until the channel or the bell has something, or a blocked lane's retry is due.
        shared.host_sleeping.store(1);
        bool ready = false;
        {
            std::lock_guard lock(devices_mutex_);
            for (auto &l : c->lanes) ready = ready || (!c->rings_broken && l.front() != nullptr);
        }
        pollfd fds[2] = {{c->proc.fd, POLLIN, 0}, {c->bell, POLLIN, 0}};
        ::poll(fds, 2, ready ? 20 : 1000);
        shared.host_sleeping.store(0);
        if (fds[1].revents & POLLIN) {
            std::uint64_t n;
            [[maybe_unused]] auto r = ::read(c->bell, &n, sizeof n);
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) open = in.fill() > 0;
    }
    if (why.empty() && std::string_view(in.error()) != "end of stream") why = std::string("sent ") + in.error();
    if (why.empty()) {
        // Ended: whatever it published before it died is in the rings, and is taken as the queue allows.
        std::lock_guard lock(devices_mutex_);
        try {
            drain(false);
        } catch (...) {
        }
    }
    if (!why.empty()) {
        // A broken or hostile runner: killed, and said why (its devices get driver_crashed with the signal).
        spdlog::error("[{}] firelink-runner pid {} {}; killing it", plugin_id_.empty() ? file_.string() : plugin_id_,
                      c->proc.pid, why);
        ::kill(c->proc.pid, SIGKILL);
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

void runner_supervisor::dispatch(connection &c, const runner_message &message) {
    auto device = [&](std::uint64_t handle) -> proxy_device * {  // devices_mutex_ held
        auto it = devices_.find(handle);
        return it == devices_.end() ? nullptr : it->second.get();
    };
    if (const auto *m = std::get_if<consumed_msg>(&message)) {
        std::lock_guard lock(devices_mutex_);
        auto *d = device(m->device);
        if (!d) return;
        d->data_in_flight = m->bytes > d->data_in_flight ? 0 : d->data_in_flight - m->bytes;
        if (d->wire_held && d->data_in_flight <= data_credit_ / 2) {
            d->wire_held = false;
            core::hold_wire(d->host, core::hold_channel, false);
        }
        return;
    }
    if (const auto *m = std::get_if<reply_msg>(&message)) {
        std::shared_ptr<std::promise<reply>> p;
        {
            std::lock_guard lock(c.pending_mutex);
            auto it = c.pending.find(m->call);
            if (it == c.pending.end()) return;  // answered after its caller gave up
            p = std::move(it->second);
            c.pending.erase(it);
        }
        p->set_value({m->status, std::string(m->text), true});
        return;
    }
    if (const auto *m = std::get_if<pong_msg>(&message)) {
        c.pong_seen = m->n;
        return;
    }
    if (const auto *m = std::get_if<log_msg>(&message)) {
        // A device's line goes through the device's own fl_host, as it would in process: the runtime names the
        // device, and keeps what a driver says while it creates or starts as that call's reason. That includes a
        // device still being created, which is not among devices_ until its create succeeds.
        if (m->device) {
            std::lock_guard lock(devices_mutex_);
            const fl_host *host = nullptr;
            if (auto *d = device(m->device)) host = d->host;
            else if (auto it = creating_.find(m->device); it != creating_.end()) host = it->second;
            if (host) {
                host->log(host, m->level, std::string(m->text).c_str());
                return;
            }
        }
        core::log_for_plugin(m->level, "[" + plugin_id_ + "] " + std::string(m->text));
        return;
    }
    if (const auto *m = std::get_if<wire_msg>(&message)) {
        std::lock_guard lock(devices_mutex_);
        auto *d = device(m->device);
        if (!d) return;
        core::post_to_device(d->host, [op = m->op, bytes = std::vector<std::uint8_t>(m->bytes.begin(), m->bytes.end()),
                                       timeout = std::chrono::milliseconds(m->timeout_ms)](transport::link *l) {
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
    if (const auto *m = std::get_if<slow_msg>(&message)) {
        const auto took = std::chrono::milliseconds(m->ms);
        std::lock_guard lock(devices_mutex_);
        if (auto *d = device(m->device))
            core::note_slow_call(d->host, std::string(m->what), took);
        else
            spdlog::warn("[{}] {} ran {} ms: callbacks must not block", plugin_id_, m->what, took.count());
        return;
    }
    if (std::holds_alternative<hello_msg>(message) || std::holds_alternative<refused_msg>(message)) {
        if (c.hello_given) throw malformed("a second hello");
        hello h;
        if (const auto *m = std::get_if<hello_msg>(&message)) {
            h.info = m->info;
            h.can_identify = m->can_identify;
        } else {
            const auto &r = std::get<refused_msg>(message);
            h.reason = refusal_named(r.reason);
            h.detail = std::string(r.detail);
        }
        c.hello_given = true;
        c.hello_promise.set_value(std::move(h));
        return;
    }
}

// devices_mutex_ held. FL_OK from the runtime: the runner's number is mapped to the runtime's for commit
// notifications. False: FL_BUSY (the record stays in its ring).
bool runner_supervisor::hand_over(proxy_device &d, const ring_record &r, std::uint64_t generation, bool forced) {
    const fl_status st = forced ? core::take_kept_event(d.host, r.event.data(), r.event.size())
                                : d.host->emit(d.host, r.event.data(), r.event.size());
    if (st == FL_BUSY) return false;
    if (st == FL_OK) {
        ++d.taken_by_runtime;
        if (r.number) d.uncommitted[d.taken_by_runtime] = {generation, r.number};
    }
    return true;
}

void runner_supervisor::drain(bool forced) {
    auto device = [&](std::uint64_t handle) -> proxy_device * {
        auto it = devices_.find(handle);
        return it == devices_.end() ? nullptr : it->second.get();
    };
    std::array<bool, lane_count> blocked{}, freed{};
    for (auto &c : rings_) {  // oldest first: a lane blocked in an older runner's rings waits in the newer ones
        if (c->rings_broken) continue;
        try {
            for (;;) {
                // The next record in the runner's emit order among the lanes that are not blocked.
                int next = -1;
                const ring_record *r = nullptr;
                for (int l = 0; l < lane_count; ++l) {
                    if (blocked[l]) continue;
                    const auto *f = c->lanes[l].front();
                    if (f && (!r || f->order < r->order)) r = f, next = l;
                }
                if (!r) break;
                if (auto *d = device(r->device); d && !hand_over(*d, *r, c->generation, forced)) {
                    blocked[next] = true;  // this lane waits; the others go on
                    continue;
                }
                c->lanes[next].pop();  // taken, refused, or of a device no longer here
                freed[next] = true;
            }
        } catch (const ring_corrupt &e) {
            c->rings_broken = true;
            spdlog::error("[{}] firelink-runner pid {}: {}; its events are not read further", plugin_id_, c->proc.pid,
                          e.what());
            if (!c->ended) ::kill(c->proc.pid, SIGKILL);
        }
    }
    // A runner that found a lane full waits to be told of room.
    if (!rings_.empty() && (freed[0] || freed[1] || freed[2]) &&
        rings_.back()->rings->head().runner_waiting.exchange(0)) {
        auto f = encoded(room_msg{lane::event});
        rings_.back()->out->send_always(f);
    }
    // A dead runner's rings go once they are empty.
    while (rings_.size() > 1 && rings_.front()->ended && rings_.front()->lanes_empty()) rings_.pop_front();
}

void runner_supervisor::committed(proxy_device &d, std::uint64_t through) {
    std::uint64_t tell = 0;
    {
        std::lock_guard lock(devices_mutex_);
        for (auto it = d.uncommitted.begin(); it != d.uncommitted.end() && it->first <= through;
             it = d.uncommitted.erase(it))
            if (it->second.first == d.generation) d.committed.insert(it->second.second);
        const auto before = d.committed_through;
        while (!d.committed.empty() && *d.committed.begin() <= d.committed_through + 1) {
            d.committed_through = std::max(d.committed_through, *d.committed.begin());
            d.committed.erase(d.committed.begin());
        }
        if (d.committed_through == before) return;
        tell = d.committed_through;
    }
    auto c = current();
    if (!c || c->ended) return;
    auto f = encoded(committed_msg{d.handle, tell});
    c->out->send_always(f);
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
    d->dev = fl_device{.struct_size = sizeof(fl_device), .driver_data = d.get(), .start = proxy_start,
                       .stop = proxy_stop, .destroy = proxy_destroy, .command = proxy_command,
                       .get_extension = proxy_get_extension};
    d->tx = fl_device_transport{
        .struct_size = sizeof(fl_device_transport), .on_data = proxy_on_data, .on_state = proxy_on_state};

    std::shared_lock calls(calls_mutex_);
    {
        std::lock_guard lock(devices_mutex_);
        creating_[d->handle] = host;
    }
    const auto r = create_in_runner(*d);
    // A create that never reached the driver (its process is down, or did not answer) says so where the driver
    // would have: the runtime reports it as this create's reason.
    if (r.status != FL_OK && !r.answered) host->log(host, FL_LOG_ERROR, r.text.c_str());
    std::lock_guard lock(devices_mutex_);
    creating_.erase(d->handle);
    if (r.status != FL_OK) return r.status;
    if (auto c = current()) d->generation = c->generation;
    *out = &d->dev;
    devices_[d->handle] = std::move(d);
    return FL_OK;
}

// The device as the runner must create it: its config, its wire, and the open conditions the host holds for it now
// (firelink.conditions/1: a restarted driver learns what its predecessor raised).
reply runner_supervisor::create_in_runner(proxy_device &d) {
    create_msg m;
    m.device = d.handle;
    m.driver_id = d.driver_id;
    m.device_id = d.device_id;
    m.config = std::string_view(reinterpret_cast<const char *>(d.config.data()), d.config.size());
    m.wire_kind = d.wire_kind;
    m.unit = d.unit;
    struct owned {
        std::string event_id, kind, code, event;
        std::int64_t raised = 0;
    };
    std::vector<owned> conditions;
    if (const auto *cx = static_cast<const fl_host_conditions *>(d.host->get_extension(d.host, FL_EXT_CONDITIONS));
        FL_HAS_FIELD(cx, fl_host_conditions, list) && cx->list) {
        cx->list(d.host, [](void *context, const fl_condition *c) {
            static_cast<std::vector<owned> *>(context)->push_back(
                {c->event_id ? c->event_id : "", c->kind ? c->kind : "", c->code ? c->code : "",
                 std::string(reinterpret_cast<const char *>(c->event), c->event ? c->event_size : 0),
                 c->raised_wall_ms});
        }, &conditions);
    }
    for (const auto &c : conditions) m.conditions.push_back({c.event_id, c.kind, c.code, c.event, c.raised});
    return call(std::move(m), opt_.call_timeout);
}

fl_status runner_supervisor::start_device(proxy_device &d) {
    std::shared_lock calls(calls_mutex_);
    const auto r = call(lifecycle_msg{msg::start, 0, d.handle}, opt_.call_timeout);
    if (r.status == FL_OK) d.started = true;
    return r.status;
}

fl_status runner_supervisor::stop_device(proxy_device &d) {
    std::shared_lock calls(calls_mutex_);
    d.started = false;
    const auto r = call(lifecycle_msg{msg::stop, 0, d.handle}, opt_.call_timeout);
    // What the driver emitted before its stop returned was read before the reply (one stream, in order); what the
    // runtime still refused goes in now: it was answered FL_OK in the runner and must not be lost with the device.
    {
        std::lock_guard lock(devices_mutex_);
        drain(true);
    }
    return r.status == FL_CLOSED ? FL_OK : r.status;  // a runner that is down has stopped it already
}

void runner_supervisor::destroy_device(proxy_device &d) {
    std::shared_lock calls(calls_mutex_);
    d.started = false;
    call(lifecycle_msg{msg::destroy, 0, d.handle}, opt_.call_timeout);
    std::lock_guard lock(devices_mutex_);
    drain(true);
    devices_.erase(d.handle);  // after this, nothing here touches the runtime's fl_host for it
}

fl_status runner_supervisor::command_device(proxy_device &d, const std::uint8_t *cmd, std::size_t size) {
    if (!cmd && size) return FL_MISUSE;
    std::shared_lock calls(calls_mutex_);
    const auto r = call(command_msg{0, d.handle, std::string_view(reinterpret_cast<const char *>(cmd), cmd ? size : 0)},
                        opt_.call_timeout);
    return r.status;
}

fl_status runner_supervisor::identify(const char *driver_id, const std::uint8_t *data, std::size_t size,
                                      std::string &identity) {
    if (!driver_id || (!data && size)) return FL_MISUSE;
    const auto r = call(identify_msg{0, driver_id, std::string_view(reinterpret_cast<const char *>(data), data ? size : 0)},
                        opt_.call_timeout);
    if (r.status == FL_OK) identity = r.text;
    // A runner that is down identifies nothing: the connection is refused and the device connects again later.
    return r.status == FL_CLOSED || r.status == FL_TIMEOUT ? FL_INVALID_ARGUMENT : r.status;
}

// On the device's strand. Every byte read from the device goes to the runner; past the data credit the device's wire
// is paused until the driver has consumed half of it, so the device's own flow control holds the rest.
void runner_supervisor::wire_data(proxy_device &d, const std::uint8_t *data, std::size_t size) {
    auto c = current();
    if (!c || c->ended) return;  // the driver is down: the host closes the wire, the replacement reads it afresh
    auto f = encoded(data_msg{d.handle, std::string_view(reinterpret_cast<const char *>(data), size)});
    if (!c->out->send_always(f)) return;
    std::lock_guard lock(devices_mutex_);
    d.data_in_flight += size;
    if (!d.wire_held && d.data_in_flight >= data_credit_) {
        d.wire_held = true;
        core::hold_wire(d.host, core::hold_channel, true);
    }
}

void runner_supervisor::wire_state(proxy_device &d, int state, fl_status reason) {
    auto c = current();
    if (!c || c->ended) return;
    auto f = encoded(state_msg{d.handle, state, reason});
    c->out->send_always(f);
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
        {
            // Whatever the state: a dead runner's events are taken as the queue allows, parked or not.
            std::lock_guard devices(devices_mutex_);
            drain(false);
        }
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

// Heartbeat, admission, and the lanes the queue refused, for a runner that is up.
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
        auto f = encoded(ping_msg{++c->ping_sent});
        c->ping_sent_at = clock::now();
        c->out->send_always(f);
    }
    update_admission(*c);
    std::lock_guard lock(devices_mutex_);
    drain(false);  // lanes the queue refused, and the rings of runners that died
}

void runner_supervisor::update_admission(connection &c) {
    if (!opt_.admits) return;
    std::vector<std::string> busy;
    for (const char *kind : event_kinds)
        if (!opt_.admits(kind)) busy.emplace_back(kind);
    if (busy == busy_kinds_) return;
    busy_kinds_ = busy;
    admit_msg m;
    for (const auto &k : busy_kinds_) m.busy_kinds.emplace_back(k);
    auto f = encoded(m);
    c.out->send_always(f);
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
            if (park) {
                const std::string why = "the driver failed " + std::to_string(failures_in_window_.size()) +
                                        " times within " + std::to_string(opt_.restart_window.count()) +
                                        " s and is no longer restarted (last: " + what +
                                        "); restart the host after fixing or removing the plugin";
                core::set_driver_down(d->host, "driver_parked", why, true);
                core::set_device_down(d->host, why);  // the one fault every cause of an unmonitored device shares
            }
            d->down = true;
            // What it had emitted and the runtime still refused stays held: emit answered FL_OK for it. Wire bytes
            // it had not consumed died with it (the wire is closed and opened again for its replacement).
            d->data_in_flight = 0;
            if (d->wire_held) core::hold_wire(d->host, core::hold_channel, false);
            d->wire_held = false;
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
            {
                // A new instance in the runner: its events are numbered afresh.
                std::lock_guard lock(devices_mutex_);
                d->generation = c->generation;
                d->committed.clear();
                d->committed_through = 0;
            }
            auto r = create_in_runner(*d);
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
            r = call(lifecycle_msg{msg::start, 0, d->handle}, opt_.call_timeout);
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

// The uid the runners run as: their own, or the one they all share with uid_range off.
long runner_supervisor::shared_uid() const {
    if (!opt_.uids.off()) return opt_.limits.uid;
    if (::geteuid() != 0) return ::geteuid();
    char buf[16384];
    struct passwd pw {};
    struct passwd *found = nullptr;
    return ::getpwnam_r(opt_.limits.user.c_str(), &pw, buf, sizeof buf, &found) == 0 && found
               ? static_cast<long>(found->pw_uid)
               : -1;
}

runner_status runner_supervisor::status() const {
    runner_status s;
    s.plugin_id = plugin_id_;
    s.uid = shared_uid();
    s.uid_shared = opt_.uids.off();
    if (auto c = current()) s.pid = c->proc.pid;
    s.restarts = restarts_;
    s.failures = failures_;
    {
        std::lock_guard lock(devices_mutex_);
        for (const auto &c : rings_)
            if (!c->rings_broken)
                for (std::size_t l = 0; l < c->lanes.size() && l < s.ring_bytes.size(); ++l)
                    s.ring_bytes[l] += c->lanes[l].waiting_bytes();
    }
    std::lock_guard lock(wake_mutex_);
    s.state = state_;
    s.last_failure = last_failure_;
    return s;
}

}  // namespace

core::load_result load_out_of_process(const std::filesystem::path &file, const supervisor_options &options,
                                      int plugin_fd) {
    if (auto why = check_plugin_file(file); !why.empty())
        return core::load_error{file, core::refusal::load_failed, "the plugin file is not safe to load: " + why};
    supervisor_options opt = options;
    if (!opt.uids.off()) {
        if (auto why = check_uid_capabilities(); !why.empty())
            return core::load_error{file, core::refusal::load_failed, why};
        // Keyed by the file's real path: the same plugin gets the same uid from one host start to the next.
        std::error_code ec;
        const auto real = std::filesystem::canonical(file, ec);
        try {
            opt.limits.uid = acquire_runner_uid(opt.uids, (ec ? file : real).string());
        } catch (const std::runtime_error &e) {
            return core::load_error{file, core::refusal::load_failed, e.what()};
        }
    }
    std::shared_ptr<runner_supervisor> sup;
    try {
        sup = std::make_shared<runner_supervisor>(file, opt, plugin_fd);
    } catch (...) {
        if (opt.limits.uid != 0) release_runner_uid(opt.limits.uid);
        throw;
    }
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
