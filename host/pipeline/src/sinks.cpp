#include "firelink/pipeline/sinks.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <thread>

#include <spdlog/spdlog.h>

#include <firelink/core/event_check.hpp>
#include <firelink/core/lanes.hpp>
#include <firelink/text.hpp>

namespace firelink::pipeline {

namespace {


// JSON lines written by a thread of its own: accept() only renders the line and queues it, so a driver's emit never
// waits for the disk (FL-HOST-11). Nothing is dropped: flush() waits until every queued line is written. The queue is
// bounded by admission (line_sink_options): a disk slower than the devices holds them back, not the host's memory.
// A line someone waits for (`stored`) is told stored once its batch is written and, for a file, fsynced: one fsync
// per batch, and only for batches that hold such a line, so the cost is the writer's and shared by the batch.
class file_sink : public sink {
public:
    file_sink(FILE *f, std::string name, bool own, line_sink_options options)
        : f_(f), name_(std::move(name)), own_(own), options_(options) {
        writer_ = std::thread([this] { write_loop(); });
    }
    ~file_sink() override {
        flush();
        {
            std::lock_guard lock(m_);
            closing_ = true;
        }
        cv_.notify_all();
        writer_.join();
        if (own_) std::fclose(f_);
    }
    void accept(const core::accepted_event &ev, stored_fn stored) override {
        auto line = record_json(ev);
        line += '\n';
        {
            std::lock_guard lock(m_);
            queued_bytes_ += line.size() + sizeof(queued);
            queue_.push_back({std::move(line), std::move(stored)});
            ++queued_;
        }
        cv_.notify_all();
    }
    bool admits(std::string_view kind) const override {
        const auto bound = options_.max_queued_bytes;
        const auto limit = core::lane_of(kind) == core::lane::alarm       ? 2 * bound
                           : core::lane_of(kind) == core::lane::telemetry ? bound
                                                                          : bound + bound / 2;
        std::lock_guard lock(m_);
        if (queued_bytes_ < limit) return true;
        if (!behind_) spdlog::warn("sink {}: {} bytes wait for the disk; devices are held back", name_, queued_bytes_);
        behind_ = true;
        return false;
    }
    void flush() override {
        std::unique_lock lock(m_);
        const auto target = queued_;
        cv_.wait(lock, [&] { return written_ >= target; });
        // Only a failure counts here: an empty buffer flushes fine on a disk that just refused the last batch.
        if (auto failure = sync(true); !failure.empty()) note(failure);
    }
    std::string describe() const override { return name_; }
    std::string fault() const override {
        std::lock_guard lock(m_);
        return fault_;
    }

private:
    // Flushes the stream and, for a file when `durable`, fsyncs it: the error, or empty. A FIFO or a device cannot be
    // synced (EINVAL); what it took is as durable as it gets.
    std::string sync(bool durable) {
        if (std::fflush(f_) != 0) {
            const std::string why = std::string("write failed: ") + std::strerror(errno);
            std::clearerr(f_);
            return why;
        }
        if (durable && own_ && ::fsync(fileno(f_)) != 0 && errno != EINVAL)
            return std::string("fsync failed: ") + std::strerror(errno);
        return {};
    }
    // Under m_: a failing disk is logged once when it starts failing and once when it works again, not per line.
    void note(const std::string &failure) {
        if (!failure.empty() && fault_.empty())
            spdlog::error("sink {}: {}; events are not reported stored until it works again", name_, failure);
        else if (failure.empty() && !fault_.empty())
            spdlog::info("sink {}: writes work again", name_);
        fault_ = failure;
    }

    void write_loop() {
        std::unique_lock lock(m_);
        for (;;) {
            cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
            if (queue_.empty()) return;  // closing, and everything is written
            std::deque<queued> batch;
            batch.swap(queue_);
            lock.unlock();
            bool waited_for = false;
            std::string failure;  // the first error of this batch: a line not written is never reported stored
            for (auto &q : batch) {
                if (failure.empty() && std::fwrite(q.line.data(), 1, q.line.size(), f_) != q.line.size())
                    failure = std::string("write failed: ") + std::strerror(errno);
                waited_for = waited_for || q.stored;
            }
            // A reader (tail -f, a log shipper) sees each batch as it happens; a batch someone waits for is also
            // synced before it is reported stored.
            if (failure.empty()) failure = sync(waited_for);
            if (failure.empty()) {
                for (auto &q : batch)
                    if (q.stored) q.stored();
            }
            lock.lock();
            note(failure);
            written_ += batch.size();
            for (const auto &q : batch) queued_bytes_ -= q.line.size() + sizeof(queued);
            if (behind_ && queued_bytes_ < options_.max_queued_bytes / 2) {  // room again, with margin: logged once
                spdlog::info("sink {}: the disk caught up", name_);
                behind_ = false;
            }
            cv_.notify_all();
        }
    }

    struct queued {
        std::string line;
        stored_fn stored;
    };
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::deque<queued> queue_;
    std::uint64_t queued_ = 0, written_ = 0;
    std::size_t queued_bytes_ = 0;  // of the lines queued or being written, with their bookkeeping
    mutable bool behind_ = false;   // admission refused since the backlog was last under half the bound
    std::string fault_;             // the last write's error, empty once one succeeds (sink::fault)
    bool closing_ = false;
    FILE *f_;
    std::string name_;
    bool own_;
    line_sink_options options_;
    std::thread writer_;
};

}  // namespace

// The boot id tells monotonic times of different boots apart.
const std::string &boot_id() {
    static const std::string id = [] {
        std::string s;
        if (FILE *f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
            char buf[64] = {};
            if (std::fgets(buf, sizeof buf, f)) s = buf;
            std::fclose(f);
        }
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        return s;
    }();
    return id;
}

// Whether the kernel's clock is synchronised (NTP/PTP), re-read at most once a second: a wall time from an
// unsynchronised clock is still recorded, but the platform should prefer the monotonic order.
bool clock_synced() {
    static std::atomic<std::int64_t> checked_s{-1};
    static std::atomic<bool> synced{false};
    const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::steady_clock::now().time_since_epoch())
                           .count();
    if (checked_s.exchange(now_s) != now_s) {
        struct timex tx {};
        const int state = ::adjtimex(&tx);
        synced = state != -1 && state != TIME_ERROR && !(tx.status & STA_UNSYNC);
    }
    return synced;
}

std::string record_json(const core::accepted_event &ev) {
    std::string out;
    out.reserve(256 + ev.payload.size() * 2);
    out += "{\"gateway\":";
    text::append_json_string(out, ev.gateway_id);
    out += ",\"device\":";
    text::append_json_string(out, ev.device_id);
    out += ",\"class\":";
    text::append_json_string(out, ev.device_class);
    out += ",\"plugin\":";
    text::append_json_string(out, ev.plugin_id);
    out += ",\"seq\":" + std::to_string(ev.sequence);
    out += ",\"origin\":";
    out += ev.from_host ? "\"host\"" : "\"driver\"";
    if (ev.rereport()) out += ",\"rereport\":true";
    out += ",\"received\":{\"wall_ms\":" +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(ev.received_wall.time_since_epoch())
                              .count()) +
           ",\"monotonic_ns\":" + std::to_string(ev.received_monotonic.time_since_epoch().count()) +
           ",\"boot_id\":";
    text::append_json_string(out, boot_id());
    out += clock_synced() ? ",\"clock_synced\":true}" : ",\"clock_synced\":false}";
    if (ev.site && !ev.site->empty()) {
        out += ",\"site\":{";
        bool first = true;
        for (const auto &[k, v] : *ev.site) {
            if (v.empty()) continue;
            if (!first) out += ',';
            first = false;
            text::append_json_string(out, k);
            out += ':';
            text::append_json_string(out, v);
        }
        out += '}';
    }
    out += ",\"event\":";
    out += core::msgpack_to_json(ev.payload.data(), ev.payload.size());
    out += '}';
    return out;
}

std::unique_ptr<sink> make_stdout_sink(line_sink_options options) {
    return std::make_unique<file_sink>(stdout, "stdout", false, options);
}

std::unique_ptr<sink> make_jsonl_file_sink(const std::filesystem::path &path, line_sink_options options) {
    // Created the host's user's alone; an old file loses what others could do with it (a plugin's runner has a uid
    // of its own, in no group: it must not read the other plugins' events; docs/deployment.md, "Plugin isolation").
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 ||
        (S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO) && ::fchmod(fd, st.st_mode & 0770) != 0)) {
        const int e = errno;
        if (fd >= 0) ::close(fd);
        throw std::system_error(e, std::generic_category(), "cannot open " + path.string());
    }
    FILE *f = ::fdopen(fd, "a");
    if (!f) {
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "cannot open " + path.string());
    }
    return std::make_unique<file_sink>(f, "jsonl:" + path.string(), true, options);
}

void event_pipeline::accept(const core::accepted_event &ev) {
    stored_fn stored;
    if (ev.on_durable) {
        if (sinks_.empty()) return ev.on_durable();  // kept nowhere: nothing more to wait for
        // Durable once every sink stored it: the last sink to report it runs on_durable.
        struct join {
            std::atomic<std::size_t> left;
            std::function<void()> on_durable;
        };
        auto j = std::make_shared<join>();
        j->left = sinks_.size();
        j->on_durable = ev.on_durable;
        stored = [j] {
            if (j->left.fetch_sub(1) == 1) j->on_durable();
        };
    }
    for (auto &s : sinks_) {
        try {
            s->accept(ev, stored);
        } catch (const std::exception &e) {
            spdlog::error("sink {} failed on an event of device {}: {}", s->describe(), ev.device_id, e.what());
        }
    }
}

bool event_pipeline::admits(std::string_view kind) const {
    for (const auto &s : sinks_)
        if (!s->admits(kind)) return false;
    return true;
}

void event_pipeline::flush() {
    for (auto &s : sinks_) {
        try {
            s->flush();
        } catch (const std::exception &e) {
            spdlog::error("sink {} failed to flush: {}", s->describe(), e.what());
        }
    }
}

std::vector<std::string> event_pipeline::faults() const {
    std::vector<std::string> out;
    for (const auto &s : sinks_)
        if (auto why = s->fault(); !why.empty()) out.push_back(s->describe() + ": " + why);
    return out;
}

std::vector<std::string> event_pipeline::describe() const {
    std::vector<std::string> out;
    for (const auto &s : sinks_) out.push_back(s->describe());
    return out;
}

}  // namespace firelink::pipeline
