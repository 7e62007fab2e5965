// The JSON-lines sink holds what its writer has not yet written within a bound: past it, it admits no more (the
// runtime answers FL_BUSY and holds the device's wire), alarms last; once the disk catches up it admits again.
// The "disk" is a pipe nobody reads until the test says so: the writer blocks on it as on a slow disk.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include <accepted_event.hpp>
#include <eventually.hpp>
#include <log_capture.hpp>

#include <firelink/payload.hpp>
#include <firelink/pipeline/sinks.hpp>

namespace fs = std::filesystem;
namespace core = firelink::core;
namespace pipeline = firelink::pipeline;
using firelink_test::eventually;
using namespace std::chrono_literals;

namespace {

core::accepted_event telemetry(std::size_t pad) {
    firelink::event e{firelink::event_kind::telemetry, "line"};
    e.message(std::string(pad, 'x'));
    return firelink_test::accepted(e, "vendor:test");
}

}  // namespace

TEST(LineSink, PastItsBoundItAdmitsNoMoreAlarmsLastAndAdmitsAgainOnceWritten) {
    const auto dir = fs::temp_directory_path() / ("firelink-sink-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const auto fifo = dir / "slow-disk";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // held, unread: the writer blocks on it
    ASSERT_GE(reader, 0);
    constexpr std::size_t bound = 256 << 10;
    std::thread drain;
    {
        pipeline::event_pipeline p;
        p.add(pipeline::make_jsonl_file_sink(fifo, {.max_queued_bytes = bound}));
        std::size_t taken = 0;
        while (p.admits("telemetry") && taken < 100000) {
            p.accept(telemetry(1000));
            ++taken;
        }
        ASSERT_LT(taken, 100000u) << "the sink admitted everything: its queue is unbounded";
        // What it took is about the bound, plus the pipe's own buffer (64 KiB) and the batch in the writer's hands.
        EXPECT_LT(taken * 1000, 2 * bound + (64 << 10));
        EXPECT_FALSE(p.admits("telemetry"));
        EXPECT_TRUE(p.admits("status")) << "other events have room past the telemetry bound";
        EXPECT_TRUE(p.admits("alarm"));
        while (p.admits("status")) p.accept(telemetry(1000));
        EXPECT_TRUE(p.admits("alarm")) << "an alarm has room past every other kind's bound";
        while (p.admits("alarm")) p.accept(telemetry(1000));
        EXPECT_FALSE(p.admits("alarm")) << "past twice the bound nothing is admitted";

        // The disk catches up: every line arrives, and the sink admits again.
        drain = std::thread([&] {
            char buf[65536];
            const auto until = std::chrono::steady_clock::now() + 60s;
            while (std::chrono::steady_clock::now() < until) {
                const auto n = ::read(reader, buf, sizeof buf);
                if (n == 0) break;  // the sink closed the file: everything was written
                if (n < 0) std::this_thread::sleep_for(1ms);
            }
        });
        p.flush();
        EXPECT_TRUE(p.admits("telemetry"));
        p.accept(telemetry(10));
        p.flush();
    }  // the sink closes the pipe: the reader sees its end
    drain.join();
    ::close(reader);
    fs::remove_all(dir);
}

// A disk that fails: no line on it is reported stored, the sink says why (for /healthz) and logs it once, not once
// per line; once it works again the sink says so once and reports lines stored again. The "disk" is a FIFO whose
// reader goes away (writes fail with EPIPE) and comes back.
TEST(LineSink, AFailingDiskIsReportedOnceAndNothingOnItIsReportedStored) {
    ::signal(SIGPIPE, SIG_IGN);
    log_capture log;
    const auto dir = fs::temp_directory_path() / ("firelink-sink-fail-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const auto fifo = dir / "disk";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    ASSERT_GE(reader, 0);
    std::atomic<int> stored{0};
    auto durable = [&] {
        auto ev = telemetry(10);
        ev.on_durable = [&] { ++stored; };
        return ev;
    };
    {
        pipeline::event_pipeline p;
        p.add(pipeline::make_jsonl_file_sink(fifo));
        p.accept(durable());
        ASSERT_TRUE(eventually([&] { return stored == 1; }));
        EXPECT_TRUE(p.faults().empty());

        ::close(reader);  // the disk fails
        for (int i = 0; i < 50; ++i) p.accept(durable());
        ASSERT_TRUE(eventually([&] { return !p.faults().empty(); }));
        p.flush();
        EXPECT_EQ(stored, 1) << "a line the disk did not take was reported stored";
        ASSERT_EQ(p.faults().size(), 1u);
        EXPECT_NE(p.faults()[0].find("Broken pipe"), std::string::npos) << p.faults()[0];
        EXPECT_NE(p.faults()[0].find(fifo.string()), std::string::npos) << "names the sink: " << p.faults()[0];
        EXPECT_EQ(log.count("events are not reported stored"), 1u) << "a failing disk floods the log";

        reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);  // the disk works again
        ASSERT_GE(reader, 0);
        p.accept(durable());
        ASSERT_TRUE(eventually([&] { return stored == 2; })) << "a line written after the failure is never stored";
        EXPECT_TRUE(p.faults().empty());
        EXPECT_EQ(log.count("writes work again"), 1u);
    }
    ::close(reader);
    fs::remove_all(dir);
}

// A file that cannot take a byte (/dev/full: ENOSPC) is a fault from the first line on.
TEST(LineSink, AFullDiskIsAFault) {
    std::atomic<int> stored{0};
    pipeline::event_pipeline p;
    p.add(pipeline::make_jsonl_file_sink("/dev/full"));
    auto ev = telemetry(10);
    ev.on_durable = [&] { ++stored; };
    p.accept(ev);
    p.flush();
    ASSERT_EQ(p.faults().size(), 1u);
    EXPECT_NE(p.faults()[0].find("No space left on device"), std::string::npos) << p.faults()[0];
    EXPECT_EQ(stored, 0);
}
