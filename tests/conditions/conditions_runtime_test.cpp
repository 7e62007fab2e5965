// Host-kept conditions in the device runtime (firelink.conditions/1), with the push test plugin driven by commands:
// a raise is listed, a restore ends it, a new instance of the device reads the list from create_device on and ends
// its predecessor's alarm with the right id, host-made faults stay out, and the list is bounded.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <variant>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <firelink/core/conditions.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/payload.hpp>

#include "event_collector.hpp"
#include "fixture_paths.h"

namespace core = firelink::core;
using namespace std::chrono_literals;

namespace {

using collector = firelink_test::event_collector;

std::string text_of(const std::vector<std::uint8_t> &event, const char *key) {
    return firelink::config(event.data(), event.size()).get<std::string>(key, "");
}

std::vector<std::uint8_t> command(const std::string &id, const std::string &name, const std::string &zone = {}) {
    msgpack::sbuffer sb;
    msgpack::packer<msgpack::sbuffer> pk(sb);
    pk.pack_map(3);
    pk.pack("id");
    pk.pack(id);
    pk.pack("name");
    pk.pack(name);
    pk.pack("args");
    if (zone.empty()) {
        pk.pack_map(0);
    } else {
        pk.pack_map(1);
        pk.pack("zone");
        pk.pack(zone);
    }
    return {reinterpret_cast<const std::uint8_t *>(sb.data()),
            reinterpret_cast<const std::uint8_t *>(sb.data()) + sb.size()};
}

// Zone q's alarm (event id "zone-stored") of device p1, as a durable queue keeps it open across a host restart.
core::open_condition stored_zone_alarm() {
    core::open_condition c;
    c.device_id = "p1";
    c.event_id = "zone-stored";
    c.kind = "alarm";
    c.code = "zone_alarm";
    c.event = firelink::event{firelink::event_kind::alarm, "zone_alarm"}.id("zone-stored").message("zone q").pack();
    return c;
}

class Conditions : public ::testing::Test {
protected:
    void SetUp() override {
        for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
        auto r = loader.load(PUSH_PLUGIN);
        if (!r) FAIL() << r.error().what();
        plugin = std::move(r).value();
    }
    void TearDown() override {
        runtime.reset();
        work.reset();
        io.stop();
        for (auto &t : threads) t.join();
    }

    void make(const std::string &device) {
        ASSERT_EQ(runtime->create(plugin, "push", device, {}), FL_OK);
        ASSERT_EQ(runtime->start(device), FL_OK);
    }
    // Runs a command and returns its command_result's message.
    std::string run(const std::string &device, const std::string &name, const std::string &zone = {}) {
        const auto id = "c" + std::to_string(++commands);
        EXPECT_EQ(runtime->command(device, command(id, name, zone)), FL_OK);
        auto r = events.wait(device, [&](const auto &e) {
            return e.kind == "command_result" && text_of(e.payload, "command_id") == id;
        });
        return r ? text_of(r->payload, "message") : "(no result)";
    }
    std::size_t count(const std::string &device, const std::string &kind) {
        std::lock_guard lock(events.m);
        return std::count_if(events.events.begin(), events.events.end(),
                             [&](const auto &e) { return e.device_id == device && e.kind == kind; });
    }
    std::optional<core::accepted_event> last(const std::string &device, const std::string &kind) {
        std::lock_guard lock(events.m);
        for (auto it = events.events.rbegin(); it != events.events.rend(); ++it)
            if (it->device_id == device && it->kind == kind) return *it;
        return std::nullopt;
    }

    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;
    core::plugin_loader loader;
    std::shared_ptr<core::plugin> plugin;
    collector events;
    int commands = 0;
    std::unique_ptr<core::device_runtime> runtime = std::make_unique<core::device_runtime>(
        io, [this](core::accepted_event &&e) { events(std::move(e)); },
        core::runtime_options{.gateway_id = "gw-test", .watchdog_warn = 20ms, .watchdog_fault = 60ms, .observer = {},
                              .admits = {}});
};

}  // namespace

TEST_F(Conditions, TheRuntimeProvidesTheExtension) {
    EXPECT_TRUE(core::device_runtime::provides(FL_EXT_CONDITIONS));
}

TEST_F(Conditions, ARaiseIsListedAndItsRestoreEndsIt) {
    make("p1");
    run("p1", "alarm", "a");
    const auto alarm = last("p1", "alarm");
    ASSERT_TRUE(alarm);
    const auto id = text_of(alarm->payload, "event_id");
    ASSERT_FALSE(id.empty());
    // The change travels with the event, for a durable sink.
    ASSERT_TRUE(alarm->condition && alarm->condition->opened);
    EXPECT_EQ(alarm->condition->opened->event_id, id);

    auto open = runtime->open_conditions("p1");
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0].event_id, id);
    EXPECT_EQ(open[0].kind, "alarm");
    EXPECT_EQ(open[0].code, "zone_alarm");
    EXPECT_EQ(open[0].event, alarm->payload);
    EXPECT_EQ(open[0].raised_wall_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          alarm->received_wall.time_since_epoch())
                                          .count());
    EXPECT_EQ(runtime->status("p1")->open_conditions, 1u);
    // The driver sees it too, through the extension.
    EXPECT_EQ(run("p1", "list"), "|" + id);

    run("p1", "restore", "a");
    const auto restore = last("p1", "restore");
    ASSERT_TRUE(restore);
    EXPECT_EQ(text_of(restore->payload, "ends"), id);
    ASSERT_TRUE(restore->condition);
    EXPECT_EQ(restore->condition->closed, std::vector<std::string>{id});
    EXPECT_TRUE(runtime->open_conditions("p1").empty());
    EXPECT_EQ(run("p1", "list"), "|");
}

// The driver's runner restarting, or a reload recreating the device, is a new instance with an empty memory: it finds
// its predecessor's alarm in the host's list, from its constructor (inside create_device, on this thread) on.
TEST_F(Conditions, ANewInstanceReadsTheListFromCreateDeviceOnAndEndsTheRightId) {
    make("p1");
    run("p1", "alarm", "a");
    run("p1", "alarm", "b");
    const auto open = runtime->open_conditions("p1");
    ASSERT_EQ(open.size(), 2u);
    runtime->destroy("p1");
    make("p1");
    EXPECT_EQ(run("p1", "list"), open[0].event_id + "," + open[1].event_id + "|" + open[0].event_id + "," +
                                     open[1].event_id);
    run("p1", "restore", "b");
    EXPECT_FALSE(last("p1", "status")) << "the new instance did not find zone b's alarm";
    const auto restore = last("p1", "restore");
    ASSERT_TRUE(restore);
    EXPECT_EQ(text_of(restore->payload, "ends"), open[1].event_id);
    const auto left = runtime->open_conditions("p1");
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].event_id, open[0].event_id);
}

// A new instance that reports its predecessor's alarm again (FL-PLUGIN-29) with the same id: the host marks the event
// a re-report, delivers it, and keeps one condition.
TEST_F(Conditions, AnAlarmReportedAgainByANewInstanceIsMarkedAndOpensNothingMore) {
    make("p1");
    run("p1", "alarm", "a");
    const auto first = last("p1", "alarm");
    ASSERT_TRUE(first);
    EXPECT_FALSE(first->rereport());
    const auto id = text_of(first->payload, "event_id");
    runtime->destroy("p1");
    make("p1");
    run("p1", "alarm", "a");
    const auto again = last("p1", "alarm");
    ASSERT_TRUE(again);
    ASSERT_EQ(count("p1", "alarm"), 2u) << "the re-report was not delivered";
    EXPECT_EQ(text_of(again->payload, "event_id"), id);
    EXPECT_TRUE(again->rereport());
    ASSERT_TRUE(again->condition && again->condition->opened);
    EXPECT_TRUE(again->condition->closed.empty());
    const auto open = runtime->open_conditions("p1");
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0].event, again->payload);  // the newer report is what the host now knows it by
    // Another zone is a new alarm, and after its restore the same zone raised again is a new one too.
    run("p1", "alarm", "b");
    EXPECT_FALSE(last("p1", "alarm")->rereport());
    run("p1", "restore", "a");
    run("p1", "alarm", "a");
    EXPECT_FALSE(last("p1", "alarm")->rereport());
    EXPECT_EQ(runtime->open_conditions("p1").size(), 2u);
}

// The same re-report read back from a durable queue after a host restart: the marking needs only the list.
TEST_F(Conditions, AnAlarmReportedAgainAfterAHostRestartIsMarked) {
    runtime->load_conditions({stored_zone_alarm()});
    make("p1");
    run("p1", "alarm", "q");
    const auto again = last("p1", "alarm");
    ASSERT_TRUE(again);
    EXPECT_EQ(text_of(again->payload, "event_id"), "zone-stored");
    EXPECT_TRUE(again->rereport());
    EXPECT_EQ(runtime->open_conditions("p1").size(), 1u);
}

// What a durable queue stored before a host restart comes back through load_conditions.
TEST_F(Conditions, LoadedConditionsAreWhatANewDeviceSees) {
    core::open_condition c = stored_zone_alarm();
    c.raised_wall_ms = 1234;
    core::open_condition other = c;
    other.device_id = "p2";
    runtime->load_conditions({c, other});
    make("p1");
    EXPECT_EQ(run("p1", "list"), "zone-stored|zone-stored");
    run("p1", "restore", "q");
    const auto restore = last("p1", "restore");
    ASSERT_TRUE(restore);
    EXPECT_EQ(text_of(restore->payload, "ends"), "zone-stored");
    EXPECT_TRUE(runtime->open_conditions("p1").empty());
    EXPECT_EQ(runtime->open_conditions("p2").size(), 1u);  // another device's list is its own
}

TEST_F(Conditions, WithoutTheListARestoreOfAnEarlierInstanceIsUnmatched) {
    // The control: the same sequence with a driver that ignores the extension fails to end the alarm, so the test
    // above can fail.
    const auto cfg = [] {
        msgpack::sbuffer sb;
        msgpack::packer<msgpack::sbuffer> pk(sb);
        pk.pack_map(1);
        pk.pack("use_conditions");
        pk.pack(false);
        return std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t *>(sb.data()),
                                         reinterpret_cast<const std::uint8_t *>(sb.data()) + sb.size());
    }();
    ASSERT_EQ(runtime->create(plugin, "push", "p1", cfg), FL_OK);
    ASSERT_EQ(runtime->start("p1"), FL_OK);
    run("p1", "alarm", "a");
    runtime->destroy("p1");
    ASSERT_EQ(runtime->create(plugin, "push", "p1", cfg), FL_OK);
    ASSERT_EQ(runtime->start("p1"), FL_OK);
    run("p1", "restore", "a");
    EXPECT_FALSE(last("p1", "restore"));
    ASSERT_TRUE(last("p1", "status"));
    EXPECT_EQ(last("p1", "status")->code, "restore_unmatched");
    EXPECT_EQ(runtime->open_conditions("p1").size(), 1u);
}

TEST_F(Conditions, TheListIsBoundedAndCountsWhatItDrops) {
    make("p1");
    const auto n = core::condition_list::max_open + 3;
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < n; ++i) {
        run("p1", "alarm", "z" + std::to_string(i));
        ids.push_back(text_of(last("p1", "alarm")->payload, "event_id"));
    }
    const auto open = runtime->open_conditions("p1");
    ASSERT_EQ(open.size(), core::condition_list::max_open);
    EXPECT_EQ(open.front().event_id, ids[3]);
    EXPECT_EQ(open.back().event_id, ids.back());
    EXPECT_EQ(runtime->status("p1")->conditions_dropped, 3u);
    // The raise that pushed the oldest out says so, for the store.
    const auto alarm = last("p1", "alarm");
    ASSERT_TRUE(alarm->condition);
    EXPECT_EQ(alarm->condition->closed, std::vector<std::string>{ids[2]});
}

// The host's own faults (here the watchdog's driver_hung, a fault with an event_id) are the runtime's business.
TEST_F(Conditions, HostMadeConditionsAreNotListed) {
    auto r = loader.load(FIXTURE_SLOW_START);
    ASSERT_TRUE(r) << r.error().what();
    std::shared_ptr<core::plugin> slow = std::move(r).value();
    ASSERT_EQ(runtime->create(slow, "panel", "slow-1", {}), FL_OK);
    runtime->start("slow-1");
    auto hung = events.wait("slow-1", [](const auto &e) { return e.code == "driver_hung"; });
    ASSERT_TRUE(hung) << "the watchdog made no driver_hung fault";
    EXPECT_EQ(hung->kind, "fault");
    EXPECT_FALSE(hung->condition);
    EXPECT_TRUE(runtime->open_conditions("slow-1").empty());
}

// condition_list on its own: what the runtime relies on.
TEST(ConditionList, ReplacesAnOpenIdIgnoresUnknownRestoresAndOtherKinds) {
    core::condition_list list;
    const std::vector<std::uint8_t> ev{0x80};
    EXPECT_TRUE(list.apply("d", "alarm", "c", "a", "", ev, 1));
    EXPECT_TRUE(list.apply("d", "fault", "c", "f", "", ev, 2));
    auto again = list.apply("d", "alarm", "c2", "a", "", ev, 3);
    ASSERT_TRUE(again && again->opened);
    EXPECT_TRUE(again->closed.empty());
    auto open = list.snapshot();
    ASSERT_EQ(open.size(), 2u);
    EXPECT_EQ(open[0].event_id, "f");
    EXPECT_EQ(open[1].event_id, "a");
    EXPECT_EQ(open[1].code, "c2");
    EXPECT_EQ(open[1].raised_wall_ms, 3);
    EXPECT_FALSE(list.apply("d", "restore", "c", "", "nobody", ev, 4));
    EXPECT_FALSE(list.apply("d", "status", "c", "s", "", ev, 4));
    EXPECT_FALSE(list.apply("d", "telemetry", "c", "t", "", ev, 4));
    EXPECT_FALSE(list.apply("d", "alarm", "c", "", "", ev, 4));  // no event_id: it cannot be ended, so not kept
    EXPECT_TRUE(list.apply("d", "restore", "c", "", "f", ev, 5));
    EXPECT_EQ(list.size(), 1u);
}

TEST(ConditionList, ARaiseOfAnOpenIdIsARereportOnlyWithTheSameKindAndCode) {
    core::condition_list list;
    const std::vector<std::uint8_t> ev{0x80};
    auto first = list.apply("d", "alarm", "c", "a", "", ev, 1);
    ASSERT_TRUE(first);
    EXPECT_FALSE(first->rereport);
    auto again = list.apply("d", "alarm", "c", "a", "", ev, 2);
    ASSERT_TRUE(again && again->opened);
    EXPECT_TRUE(again->rereport);
    EXPECT_TRUE(again->closed.empty());
    EXPECT_EQ(list.size(), 1u);
    auto other_code = list.apply("d", "alarm", "c2", "a", "", ev, 3);
    ASSERT_TRUE(other_code);
    EXPECT_FALSE(other_code->rereport) << "a reused id with another code is a new condition";
    auto other_kind = list.apply("d", "fault", "c2", "a", "", ev, 4);
    ASSERT_TRUE(other_kind);
    EXPECT_FALSE(other_kind->rereport) << "a reused id with another kind is a new condition";
    EXPECT_TRUE(list.apply("d", "fault", "c2", "a", "", ev, 5)->rereport);
    EXPECT_TRUE(list.apply("d", "pre_alarm", "p", "p", "", ev, 6));
    EXPECT_TRUE(list.apply("d", "pre_alarm", "p", "p", "", ev, 7)->rereport);
    EXPECT_TRUE(list.apply("d", "restore", "c2", "", "a", ev, 8));
    auto after_restore = list.apply("d", "fault", "c2", "a", "", ev, 9);
    ASSERT_TRUE(after_restore);
    EXPECT_FALSE(after_restore->rereport) << "once ended, the same id raised again is a new condition";
    EXPECT_EQ(list.size(), 2u);
}
