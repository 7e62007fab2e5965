// lines: the boundary tests' device, built like a vendor plugin. A push-only device on a TCP wire: every
// '\n'-terminated line it sends becomes one event with the line as its message and the line's number "n" over the
// instance's life. Every `alarm_every`-th line is an alarm (event_id "a<n>"), a line beginning "F " a status (the
// uplink's event lane), the rest telemetry.
//
// An event answered FL_BUSY is kept, in order, and emitted again from a 5 ms timer (FL-PLUGIN-28); the host pauses
// the wire meanwhile, so what is kept stays small (one read's worth, and `max_kept` bounds it: beyond, the driver
// says so in a log line and keeps going — a test then sees the log and fails).
//
// Command "hostile" {"kind": ...} makes the plugin attack its host the way a compromised plugin in a runner could:
// it writes straight to the runner's channel (descriptor 3) a message the host must refuse — "short_pong" ([26]),
// "huge_array" (a 5-byte header claiming 4 G elements), "unknown_type" ([99]), "event_on_channel" (an emit frame,
// which only the rings may carry) — or, "ring_head", sets its alarm ring's head past the ring (descriptor 4).
//
// With `ok_log` (a folder): every event emit answered FL_OK for is recorded as "<instance> <n>\n", written with
// write(2) to <ok_log>/<pid>-<instance>.log before the next emit, so the record survives a kill -9 of the runner and a
// test can check that each of them reached the sink. `instance` (random) tells instances apart in the events.
#include <firelink/driver.hpp>

#include "test_plugin.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <random>
#include <string>

namespace {

class lines_device : public firelink::device {
public:
    lines_device(firelink::host_handle host, const firelink::config &cfg)
        : device(host),
          alarm_every_(cfg.get<std::int64_t>("alarm_every", 0)),
          max_kept_(static_cast<std::size_t>(cfg.get<std::int64_t>("max_kept", 100000))),
          instance_(std::to_string(std::random_device{}() & 0xffffff)) {
        cfg.reject_unknown({"alarm_every", "ok_log", "max_kept"});
        const auto dir = cfg.get<std::string>("ok_log", "");
        if (!dir.empty()) {
            const auto path = dir + "/" + std::to_string(::getpid()) + "-" + instance_ + ".log";
            ok_log_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (ok_log_ < 0) throw firelink::config_error("config key 'ok_log': cannot open " + path);
        }
    }
    ~lines_device() override {
        if (ok_log_ >= 0) ::close(ok_log_);
    }

    void start() override {
        if (host().open_wire() != FL_OK) throw std::runtime_error("the host gave no wire");
        if (!host().start_timer(std::chrono::milliseconds(5))) throw std::runtime_error("the host gave no timer");
    }

    void on_data(std::span<const std::uint8_t> bytes) override {
        for (auto b : bytes) {
            if (b != '\n') {
                if (line_.size() < 4096) line_.push_back(static_cast<char>(b));
                continue;
            }
            ++lines_;
            auto ev = alarm_every_ > 0 && lines_ % alarm_every_ == 0
                          ? firelink::event{firelink::event_kind::alarm, "x.tests.line_alarm"}.id(
                                "a" + std::to_string(lines_))
                      : line_.rfind("F ", 0) == 0 ? firelink::event{firelink::event_kind::status, "x.tests.line_status"}
                                                  : firelink::event{firelink::event_kind::telemetry, "line"};
            kept_.emplace_back(lines_, ev.message(line_).value("n", lines_).value("instance", instance_).pack());
            line_.clear();
        }
        if (kept_.size() > max_kept_ && !warned_) {
            warned_ = true;
            host().log(FL_LOG_ERROR, "kept " + std::to_string(kept_.size()) + " events: the host kept sending");
        }
        flush();
    }

    void on_timer(std::uint64_t) override { flush(); }

    fl_status on_command(const firelink::command &cmd) override {
        if (cmd.name() != "hostile") return FL_UNSUPPORTED;
        const auto kind = cmd.args().get<std::string>("kind", "");
        std::string frame;
        if (kind == "short_pong") frame = std::string("\x02\0\0\0\x91\x1a", 6);
        else if (kind == "huge_array") frame = std::string("\x05\0\0\0\xdd\xff\xff\xff\xff", 9);
        else if (kind == "unknown_type") frame = std::string("\x02\0\0\0\x91\x63", 6);
        else if (kind == "event_on_channel") frame = std::string("\x07\0\0\0\x95\x17\x01\x00\x00\xc4\x00", 11);
        else if (kind == "ring_head") {
            // The header's first lane head sits at offset 64 (event_ring.hpp's layout, alignas(64)).
            void *m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 4, 0);
            if (m == MAP_FAILED) return FL_ERROR;
            *reinterpret_cast<volatile std::uint64_t *>(static_cast<char *>(m) + 64) = ~std::uint64_t{0} >> 1;
            ::munmap(m, 4096);
            return FL_OK;
        } else {
            return FL_INVALID_ARGUMENT;
        }
        [[maybe_unused]] auto n = ::write(3, frame.data(), frame.size());
        return FL_OK;
    }

private:
    void flush() {
        while (!kept_.empty()) {
            const auto &[n, ev] = kept_.front();
            const fl_status st = host().emit_raw(ev.data(), ev.size());
            if (st == FL_BUSY) return;  // kept: again on the next tick
            if (st == FL_OK && ok_log_ >= 0) {
                const auto rec = instance_ + " " + std::to_string(n) + "\n";
                [[maybe_unused]] auto w = ::write(ok_log_, rec.data(), rec.size());
            }
            kept_.pop_front();
        }
    }

    std::int64_t alarm_every_;
    std::size_t max_kept_;
    std::string instance_;
    int ok_log_ = -1;
    std::string line_;
    std::int64_t lines_ = 0;
    bool warned_ = false;
    std::deque<std::pair<std::int64_t, std::vector<std::uint8_t>>> kept_;
};

}  // namespace

FIRELINK_TEST_PLUGIN("org.firelink.tests.lines", "Lines (test)", "One event per line a device sends over TCP.",
                     firelink_test::driver<lines_device>("lines", "Line device", "vendor:org.firelink.tests.lines",
                                                         "A push-only device: one event per line.",
                                                         {.wires = FL_WIRE_TCP_CLIENT}))
