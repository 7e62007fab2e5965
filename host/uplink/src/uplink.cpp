#include "firelink/uplink/uplink.hpp"

#include <random>

#include <msgpack.hpp>
#include <spdlog/spdlog.h>

#include <firelink/payload.hpp>
#include <firelink/text.hpp>

#include "firelink/uplink/record.hpp"

namespace firelink::uplink {

namespace {

using namespace std::chrono_literals;

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

struct byte_buffer {
    std::vector<std::uint8_t> &out;
    void write(const char *p, std::size_t n) { out.insert(out.end(), p, p + n); }
};

void pack_str(msgpack::packer<byte_buffer> &pk, std::string_view s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

std::vector<std::uint8_t> batch_body(const std::string &gateway, const std::string &epoch, lane l,
                                     const std::vector<queued_record> &records) {
    std::size_t size = 96;
    for (const auto &r : records) size += r.body.size() + 16;
    std::vector<std::uint8_t> out;
    out.reserve(size);
    byte_buffer buf{out};
    msgpack::packer<byte_buffer> pk(buf);
    pk.pack_map(5);
    pack_str(pk, "protocol");
    pk.pack_uint8(1);
    pack_str(pk, "gateway");
    pack_str(pk, gateway);
    pack_str(pk, "epoch");
    pack_str(pk, epoch);
    pack_str(pk, "lane");
    pack_str(pk, to_string(l));
    pack_str(pk, "events");
    pk.pack_array(static_cast<std::uint32_t>(records.size()));
    for (const auto &r : records) {
        pk.pack_map(r.pairs + 1);
        pack_str(pk, "seq");
        pk.pack_uint64(r.seq);
        out.insert(out.end(), r.body.begin(), r.body.end());
    }
    return out;
}

const msgpack::object *member(const msgpack::object &map, std::string_view key) {
    if (map.type != msgpack::type::MAP) return nullptr;
    for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
        const auto &kv = map.via.map.ptr[i];
        if (kv.key.type == msgpack::type::STR && std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
            return &kv.val;
    }
    return nullptr;
}

std::optional<std::uint64_t> as_uint(const msgpack::object *o) {
    if (!o) return std::nullopt;
    if (o->type == msgpack::type::POSITIVE_INTEGER) return o->via.u64;
    return std::nullopt;
}

std::optional<std::string> as_str(const msgpack::object *o) {
    if (!o || o->type != msgpack::type::STR) return std::nullopt;
    return std::string(o->via.str.ptr, o->via.str.size);
}

// The platform's answer to a batch: acked_through for the lane, and the rejects.
struct ack {
    std::uint64_t through = 0;
    std::vector<reject> rejects;
};

std::optional<ack> parse_ack(const std::vector<std::uint8_t> &body, lane l, std::string &why) {
    try {
        auto h = msgpack::unpack(reinterpret_cast<const char *>(body.data()), body.size());
        const auto &root = h.get();
        const auto *through_map = member(root, "acked_through");
        const auto through = as_uint(member(through_map ? *through_map : root, to_string(l)));
        if (!through) {
            why = std::string("the answer has no acked_through for lane ") + to_string(l);
            return std::nullopt;
        }
        ack a;
        a.through = *through;
        if (const auto *rejects = member(root, "rejects"); rejects && rejects->type == msgpack::type::ARRAY) {
            for (std::uint32_t i = 0; i < rejects->via.array.size; ++i) {
                const auto &r = rejects->via.array.ptr[i];
                const auto seq = as_uint(member(r, "seq"));
                if (!seq) continue;
                reject x;
                x.seq = *seq;
                x.status = static_cast<int>(as_uint(member(r, "status")).value_or(422));
                x.reason = as_str(member(r, "reason")).value_or("rejected by the platform");
                a.rejects.push_back(std::move(x));
            }
        }
        return a;
    } catch (const std::exception &e) {
        why = std::string("the answer is not msgpack: ") + e.what();
        return std::nullopt;
    }
}

std::string describe(const http_response &r) {
    if (r.status == 0) return r.error;
    std::string s = "HTTP " + std::to_string(r.status);
    if (!r.body.empty() && r.content_type.rfind("application/msgpack", 0) != 0) {
        std::string text(r.body.begin(), r.body.begin() + static_cast<long>(std::min<std::size_t>(r.body.size(), 200)));
        for (auto &c : text)
            if (c == '\n' || c == '\r') c = ' ';
        s += ": " + text;
    }
    return s;
}

// Full jitter: a random wait in [0, min(cap, initial * 2^failures)].
std::chrono::milliseconds backoff(std::chrono::milliseconds initial, std::chrono::milliseconds cap, int failures) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const auto ceiling = std::min<std::int64_t>(cap.count(), initial.count() << std::min(failures, 20));
    std::uniform_int_distribution<std::int64_t> d(ceiling / 4, std::max<std::int64_t>(ceiling / 4, ceiling));
    return std::chrono::milliseconds(d(rng));
}

class uplink_sink : public pipeline::sink {
public:
    explicit uplink_sink(durable_queue &q) : q_(q) {}
    // Stored once the queue's transaction committed the record (firelink.commit/1 reports it to the device).
    void accept(const core::accepted_event &ev, pipeline::stored_fn stored) override {
        std::uint32_t pairs = 0;
        auto body = encode_record(ev, pairs);
        std::function<void(std::uint64_t)> on_commit;
        if (stored) on_commit = [stored = std::move(stored)](std::uint64_t) { stored(); };
        q_.push_admitted(lane_of(ev.kind), std::move(body), pairs, std::move(on_commit), ev.condition);
    }
    bool admits(std::string_view kind) const override { return q_.admit_or_count_refusal(lane_of(kind)); }
    void flush() override { q_.flush(); }
    std::string describe() const override { return "uplink:" + q_.options().path.string(); }

private:
    durable_queue &q_;
};

}  // namespace

uplink::uplink(durable_queue &queue, uplink_options options, command_handler on_command)
    : queue_(queue), options_(std::move(options)), on_command_(std::move(on_command)) {
    for (auto l : all_lanes) committed_[static_cast<int>(l)] = queue_.stats().lanes[static_cast<int>(l)].last_seq;
    queue_.on_commit([this](const std::array<std::uint64_t, lane_count> &last) {
        {
            std::lock_guard lock(mutex_);
            committed_ = last;
        }
        cv_.notify_all();
    });
    for (auto l : all_lanes) threads_.emplace_back([this, l] { lane_loop(l); });
    if (options_.poll_commands) threads_.emplace_back([this] { poll_loop(); });
}

uplink::~uplink() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        for (auto *c : clients_) c->abort();
    }
    cv_.notify_all();
    for (auto &t : threads_) t.join();
}

std::unique_ptr<pipeline::sink> uplink::make_sink() { return std::make_unique<uplink_sink>(queue_); }

bool uplink::sleep_for(std::chrono::milliseconds d) {
    std::unique_lock lock(mutex_);
    return !cv_.wait_for(lock, d, [&] { return stopping_; });
}

void uplink::lane_loop(lane l) {
    try {
        send_lane(l);
    } catch (const std::exception &e) {
        spdlog::critical("uplink {} lane: the sender stopped: {}; events stay queued until the host restarts",
                         to_string(l), e.what());
    }
}

void uplink::send_lane(lane l) {
    const int i = static_cast<int>(l);
    http_client client(options_.http);
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        clients_.push_back(&client);
    }
    std::unique_ptr<durable_queue::reader> reader;
    std::uint64_t after = 0;  // everything through this seq is acknowledged (this process's view)
    std::size_t limit = options_.batch_max_events;
    int failures = 0;
    const auto cap = l == lane::alarm ? options_.alarm_backoff_max : options_.backoff_max;

    auto fail = [&](const http_response &r, const std::string &why, std::chrono::milliseconds at_least) {
        ++failures;
        auto wait = std::max(at_least, backoff(options_.backoff_initial, cap, failures));
        {
            std::lock_guard lock(mutex_);
            auto &rep = reports_[i];
            rep.failures++;
            if (r.too_large) rep.oversized++;
            rep.last_status = r.status;
            rep.last_error = why;
            rep.backoff = wait;
            credentials_refused_ = r.status == 401 || r.status == 403;
        }
        if (failures == 1 || failures % 20 == 0)
            spdlog::warn("uplink {} lane: {} (attempt {}; next in {} ms; nothing is discarded)", to_string(l), why,
                         failures, wait.count());
        if (r.status == 401 || r.status == 403)
            spdlog::error("uplink {} lane: the platform refuses this gateway's credentials ({}); events are kept",
                          to_string(l), why);
        return sleep_for(wait);
    };

    int single_refusals = 0;  // single records refused in a row, with no batch acknowledged in between
    for (;;) {
        std::uint64_t seen = 0;  // committed through this seq before the read: what an empty read proves
        {
            std::unique_lock lock(mutex_);
            cv_.wait(lock, [&] { return stopping_ || committed_[i] > after; });
            if (stopping_) break;
            seen = committed_[i];
        }
        std::vector<queued_record> records;
        try {
            if (!reader) reader = queue_.open_reader();
            records = reader->read(l, after, limit, options_.batch_max_bytes);
        } catch (const std::exception &e) {
            spdlog::error("uplink {} lane: reading the queue failed: {}", to_string(l), e.what());
            reader.reset();
            if (!sleep_for(1s)) break;
            continue;
        }
        if (records.empty()) {
            // Everything committed when the read began was acknowledged or evicted.
            after = std::max(after, seen);
            continue;
        }
        const auto body = batch_body(options_.gateway_id, queue_.epoch(), l, records);
        const auto r = client.post("/v1/events", body);
        if (client.aborted()) break;
        const auto first = records.front().seq, last = records.back().seq;

        if (r.status == 200) {
            std::string why;
            const auto a = parse_ack(r.body, l, why);
            if (!a) {
                if (!fail(r, why, 0ms)) break;
                continue;
            }
            if (a->through < first) {
                if (!fail(r, "the platform acknowledged none of seq " + std::to_string(first) + ".." +
                                 std::to_string(last), 0ms))
                    break;
                continue;
            }
            const auto through = std::min(a->through, last);
            queue_.ack(l, through, a->rejects);
            for (const auto &x : a->rejects)
                spdlog::warn("uplink {} lane: the platform rejected seq {} ({}: {}); kept in the quarantine",
                             to_string(l), x.seq, x.status, x.reason);
            after = through;
            failures = 0;
            single_refusals = 0;
            limit = std::min(options_.batch_max_events, limit * 2);
            {
                std::lock_guard lock(mutex_);
                auto &rep = reports_[i];
                rep.batches++;
                rep.sent_through = through;
                rep.last_status = 200;
                rep.last_error.clear();
                rep.last_ack_wall_ms = wall_ms();
                rep.backoff = 0ms;
                credentials_refused_ = false;
            }
            if (options_.on_ack) options_.on_ack(l, through);
        } else if (r.status == 400 || r.status == 422 || r.status == 413) {
            if (records.size() > 1) {
                // Halve until the record the platform cannot take is alone.
                limit = std::max<std::size_t>(1, records.size() / 2);
                std::lock_guard lock(mutex_);
                reports_[i].failures++;
                reports_[i].last_status = r.status;
                reports_[i].last_error = describe(r);
                continue;
            }
            const auto why = describe(r);
            if (++single_refusals > 5) {
                // A platform that refuses every record alone is broken, not the records: keep them and retry.
                if (!fail(r, "the platform refuses every record (" + why + "); records are kept, not quarantined",
                          0ms))
                    break;
                continue;
            }
            spdlog::warn("uplink {} lane: the platform refuses seq {} ({}); kept in the quarantine", to_string(l),
                         first, why);
            queue_.ack(l, first, {reject{first, static_cast<int>(r.status), why}});
            after = first;
        } else if (r.status == 429 || r.status == 503) {
            if (!fail(r, describe(r), r.retry_after.value_or(0ms))) break;
        } else {
            if (!fail(r, describe(r), 0ms)) break;
        }
    }
    std::lock_guard lock(mutex_);
    std::erase(clients_, &client);
}

void uplink::command_failed(const downlink_command &c, const std::string &why) {
    spdlog::warn("uplink: command {} ('{}' for device {}) not run: {}", c.id, c.name, c.device, why);
    queue_.push_gateway_event(
        event::command_result(c.id.empty() ? "unknown" : std::string(firelink::text::utf8_prefix(c.id, 64)), false,
                              std::string(firelink::text::utf8_prefix(
                                  "command '" + c.name + "' for device '" + c.device + "' not executed: " + why, 1024)))
            .pack(),
        "command_result");
}

void uplink::poll_loop() {
    try {
        poll_commands();
    } catch (const std::exception &e) {
        spdlog::critical("uplink: the command poll stopped: {}", e.what());
    }
}

void uplink::poll_commands() {
    http_client client(options_.http);
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        clients_.push_back(&client);
    }
    int failures = 0;
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) break;
        }
        const auto cursor = queue_.command_cursor();
        const auto r = client.get("/v1/commands?gateway=" + url_encode(options_.gateway_id) +
                                      "&after=" + std::to_string(cursor) +
                                      "&wait=" + std::to_string(options_.poll_wait.count()),
                                  std::chrono::duration_cast<std::chrono::milliseconds>(options_.poll_wait) + 15s);
        if (client.aborted()) break;
        std::chrono::milliseconds wait{0};
        std::string error;
        if (r.status == 200) {
            try {
                auto h = msgpack::unpack(reinterpret_cast<const char *>(r.body.data()), r.body.size());
                const auto *list = member(h.get(), "commands");
                if (!list || list->type != msgpack::type::ARRAY) throw std::runtime_error("no commands array");
                auto taken = cursor;
                for (std::uint32_t k = 0; k < list->via.array.size; ++k) {
                    const auto &o = list->via.array.ptr[k];
                    downlink_command c;
                    c.cursor = as_uint(member(o, "cursor")).value_or(0);
                    if (c.cursor <= taken) continue;
                    c.id = as_str(member(o, "id")).value_or("");
                    c.device = as_str(member(o, "device")).value_or("");
                    c.name = as_str(member(o, "name")).value_or("");
                    if (const auto *e = member(o, "expires_wall_ms");
                        e && (e->type == msgpack::type::POSITIVE_INTEGER || e->type == msgpack::type::NEGATIVE_INTEGER))
                        c.expires_wall_ms = e->via.i64;
                    // The command a device takes: {"id", "name", "args"}.
                    std::vector<std::uint8_t> cmd;
                    byte_buffer buf{cmd};
                    msgpack::packer<byte_buffer> pk(buf);
                    pk.pack_map(3);
                    pack_str(pk, "id");
                    pack_str(pk, c.id);
                    pack_str(pk, "name");
                    pack_str(pk, c.name);
                    pack_str(pk, "args");
                    const auto *args = member(o, "args");
                    if (args && args->type == msgpack::type::MAP) pk.pack(*args);
                    else pk.pack_map(0);
                    c.command = std::move(cmd);
                    // At most once: the cursor is durable before the command runs.
                    if (!queue_.set_command_cursor(c.cursor)) throw std::runtime_error("cannot record the cursor");
                    taken = c.cursor;
                    {
                        std::lock_guard lock(mutex_);
                        commands_received_++;
                    }
                    if (c.id.empty() || c.device.empty() || c.name.empty()) {
                        command_failed(c, "the command lacks an id, a device or a name");
                    } else if (c.expires_wall_ms && *c.expires_wall_ms < wall_ms()) {
                        command_failed(c, "it expired before it reached the gateway");
                    } else if (!on_command_) {
                        command_failed(c, "this gateway takes no commands");
                    } else if (auto why = on_command_(c); !why.empty()) {
                        command_failed(c, why);
                    }
                }
                failures = 0;
            } catch (const std::exception &e) {
                error = std::string("unreadable command list: ") + e.what();
                wait = 30s;
            }
        } else if (r.status == 429 || r.status == 503) {
            error = describe(r);
            wait = std::max(r.retry_after.value_or(0ms), backoff(options_.backoff_initial, options_.backoff_max, ++failures));
        } else if (r.status >= 400 && r.status < 500 && r.status != 401 && r.status != 403 && r.status != 408) {
            error = describe(r);
            wait = 30s;
        } else if (r.status != 200) {
            error = describe(r);
            wait = backoff(options_.backoff_initial, options_.backoff_max, ++failures);
        }
        {
            std::lock_guard lock(mutex_);
            poll_error_ = error;
        }
        if (!error.empty()) {
            if (failures <= 1 || failures % 20 == 0) spdlog::warn("uplink: command poll: {}", error);
            if (!sleep_for(wait)) break;
        }
    }
    std::lock_guard lock(mutex_);
    std::erase(clients_, &client);
}

uplink_report uplink::report() const {
    std::lock_guard lock(mutex_);
    uplink_report r;
    r.lanes = reports_;
    r.commands_received = commands_received_;
    r.command_cursor = queue_.command_cursor();
    r.poll_error = poll_error_;
    r.credentials_refused = credentials_refused_;
    return r;
}

}  // namespace firelink::uplink
