// The device runtime with real plugins: the example plugins run on host timers and emit through the boundary check;
// fixtures prove refusals, the watchdog and the lifecycle rules of docs/abi.md.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <variant>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <msgpack.hpp>
#include <spdlog/spdlog.h>

#include <firelink/core/device_runtime.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/core/plugin_loader.hpp>

#include "fixture_paths.h"
#include "event_collector.hpp"
#include "eventually.hpp"
#include "log_capture.hpp"

namespace core = firelink::core;
using namespace std::chrono_literals;

namespace {

using collector = firelink_test::event_collector;
using firelink_test::eventually;

std::vector<std::uint8_t> config_map(const std::map<std::string, msgpack::type::variant> &kv) {
    msgpack::sbuffer buf;
    msgpack::pack(buf, kv);
    return {reinterpret_cast<const std::uint8_t *>(buf.data()),
            reinterpret_cast<const std::uint8_t *>(buf.data()) + buf.size()};
}


class Runtime : public ::testing::Test {
protected:
    void SetUp() override {
        for (int i = 0; i < 2; ++i) threads.emplace_back([this] { io.run(); });
    }
    void TearDown() override {
        runtime.reset();
        work.reset();
        io.stop();
        for (auto &t : threads) t.join();
    }

    std::shared_ptr<core::plugin> load(const char *file) {
        auto r = loader.load(file);
        if (!r) {
            ADD_FAILURE() << r.error().what();
            return nullptr;
        }
        return std::move(r).value();
    }

    // Loads `file`, creates the device `spec` on its driver and starts it.
    ::testing::AssertionResult start_device(const char *file, const core::device_spec &spec) {
        auto p = load(file);
        if (!p) return ::testing::AssertionFailure() << file << " did not load";
        if (const auto created = runtime->create(p, spec); !created)
            return ::testing::AssertionFailure() << "create " << spec.device_id << ": " << created;
        if (const auto started = runtime->start(spec.device_id); !started)
            return ::testing::AssertionFailure() << "start " << spec.device_id << ": " << started;
        return ::testing::AssertionSuccess();
    }

    // The same for the device `id`, without config, of the driver "panel" that each test fixture plugin has.
    ::testing::AssertionResult start_panel(const char *file, const std::string &id) {
        core::device_spec spec;
        spec.device_id = id;
        spec.driver_id = "panel";
        return start_device(file, spec);
    }

    // A runtime that delivers to `events`, warns of a callback slower than 20 ms and faults one past `watchdog_fault`.
    std::unique_ptr<core::device_runtime> make_runtime(std::chrono::milliseconds watchdog_fault) {
        return std::make_unique<core::device_runtime>(
            io, [this](core::accepted_event &&e) { events(std::move(e)); },
            core::runtime_options{.gateway_id = "gw-test", .watchdog_warn = 20ms, .watchdog_fault = watchdog_fault, .observer = {}, .admits = {}});
    }

    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;
    core::plugin_loader loader;
    collector events;
    std::unique_ptr<core::device_runtime> runtime = make_runtime(2000ms);
};

}  // namespace

class ExamplePlugins : public Runtime, public ::testing::WithParamInterface<const char *> {};

TEST_P(ExamplePlugins, EmitValidGapFreeEventsOnHostTimersUntilStopped) {
    auto p = load(GetParam());
    ASSERT_TRUE(p);
    const auto cfg = config_map({{"period_ms", msgpack::type::variant(std::uint64_t{2})},
                                 {"alarm_every", msgpack::type::variant(std::uint64_t{3})}});
    ASSERT_EQ(runtime->create(p, "hello", "dev-1", cfg), FL_OK);
    ASSERT_EQ(runtime->start("dev-1"), FL_OK);
    ASSERT_TRUE(events.wait_for("dev-1", 12)) << "only " << events.count("dev-1") << " events";
    ASSERT_EQ(runtime->stop("dev-1"), FL_OK);

    const auto evs = events.of("dev-1");
    std::map<std::string, int> kinds;
    std::string last_alarm;
    for (std::size_t i = 0; i < evs.size(); ++i) {
        EXPECT_EQ(evs[i].sequence, i + 1) << "per-device sequence must be gap-free";
        EXPECT_EQ(evs[i].plugin_id, p->info().id);
        auto summary = core::check_event(evs[i].payload.data(), evs[i].payload.size());
        ASSERT_TRUE(summary) << summary;
        kinds[summary->kind]++;
        const auto json = core::msgpack_to_json(evs[i].payload.data(), evs[i].payload.size());
        if (summary->kind == "alarm") {
            EXPECT_NE(json.find("\"event_id\":\"alarm-"), std::string::npos) << json;
            last_alarm = json;
        }
        if (summary->kind == "restore") {
            EXPECT_NE(json.find("\"ends\":\"alarm-"), std::string::npos) << json;
        }
    }
    EXPECT_GE(kinds["telemetry"], 6);
    EXPECT_GE(kinds["alarm"], 1);
    EXPECT_GE(kinds["restore"], 1);

    // After stop returns, the host has cancelled the device's timers: nothing more arrives.
    const auto after_stop = events.count("dev-1");
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(events.count("dev-1"), after_stop);
    EXPECT_EQ(runtime->counters("dev-1").refused, 0u);

    // Restart after stop is allowed (created|stopped -> started).
    ASSERT_EQ(runtime->start("dev-1"), FL_OK);
    ASSERT_TRUE(events.wait_for("dev-1", after_stop + 1));
    runtime->destroy("dev-1");
    EXPECT_TRUE(runtime->device_ids().empty());
}

TEST_P(ExamplePlugins, RefuseAConfigOfTheWrongType) {
    auto p = load(GetParam());
    ASSERT_TRUE(p);
    const auto cfg = config_map({{"period_ms", msgpack::type::variant(std::string("fast"))}});
    const auto created = runtime->create(p, "hello", "dev-bad", cfg);
    EXPECT_EQ(created, FL_INVALID_ARGUMENT);
    EXPECT_NE(created.why().find("create_device(hello) returned -4"), std::string::npos) << created;
    EXPECT_TRUE(runtime->device_ids().empty());
}

TEST_P(ExamplePlugins, RefuseAConfigThatIsNotAMap) {
    auto p = load(GetParam());
    ASSERT_TRUE(p);
    const std::vector<std::uint8_t> not_a_map = {0x93, 0x01, 0x02, 0x03};
    EXPECT_EQ(runtime->create(p, "hello", "dev-bad", not_a_map), FL_INVALID_ARGUMENT);
}

TEST_P(ExamplePlugins, LifecycleCallsInTheWrongStateAreMisuse) {
    auto p = load(GetParam());
    ASSERT_TRUE(p);
    ASSERT_EQ(runtime->create(p, "hello", "dev-2", {}), FL_OK);
    EXPECT_EQ(runtime->stop("dev-2"), FL_MISUSE);
    EXPECT_EQ(runtime->command("dev-2", {0x80}), FL_INVALID_ARGUMENT) << "a command without id and name";
    ASSERT_EQ(runtime->start("dev-2"), FL_OK);
    EXPECT_EQ(runtime->start("dev-2"), FL_MISUSE);
    EXPECT_EQ(runtime->create(p, "hello", "dev-2", {}), FL_MISUSE) << "device ids are unique";
    EXPECT_EQ(runtime->create(p, "no-such-driver", "dev-3", {}), FL_NOT_FOUND);
    runtime->destroy("dev-2");  // destroy while started: stops first
    EXPECT_EQ(runtime->start("dev-2"), FL_NOT_FOUND);
}

INSTANTIATE_TEST_SUITE_P(HelloCAndCpp, ExamplePlugins, ::testing::Values(EXAMPLE_HELLO_C, EXAMPLE_HELLO_CPP));

TEST_F(Runtime, HelloCppAnswersACommandWithACommandResult) {
    auto p = load(EXAMPLE_HELLO_CPP);
    ASSERT_TRUE(p);
    ASSERT_EQ(runtime->create(p, "hello", "dev-cmd", config_map({{"period_ms", msgpack::type::variant(std::uint64_t{60000})}})), FL_OK);
    ASSERT_EQ(runtime->start("dev-cmd"), FL_OK);

    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(3);
    pk.pack("id"); pk.pack("cmd-42");
    pk.pack("name"); pk.pack("ping");
    pk.pack("args"); pk.pack_map(0);
    std::vector<std::uint8_t> ping(reinterpret_cast<const std::uint8_t *>(buf.data()),
                                   reinterpret_cast<const std::uint8_t *>(buf.data()) + buf.size());
    ASSERT_EQ(runtime->command("dev-cmd", ping), FL_OK);
    ASSERT_TRUE(events.wait_for("dev-cmd", 1));
    const auto ev = events.of("dev-cmd").front();
    EXPECT_EQ(ev.kind, "command_result");
    const auto json = core::msgpack_to_json(ev.payload.data(), ev.payload.size());
    EXPECT_NE(json.find("\"command_id\":\"cmd-42\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"ok\":true"), std::string::npos) << json;

    // An unknown command and a malformed one are refused with distinct statuses.
    buf.clear();
    pk.pack_map(2);
    pk.pack("id"); pk.pack("cmd-43");
    pk.pack("name"); pk.pack("self_destruct");
    std::vector<std::uint8_t> unknown(reinterpret_cast<const std::uint8_t *>(buf.data()),
                                      reinterpret_cast<const std::uint8_t *>(buf.data()) + buf.size());
    EXPECT_EQ(runtime->command("dev-cmd", unknown), FL_UNSUPPORTED);
    EXPECT_EQ(runtime->command("dev-cmd", {0xc1}), FL_INVALID_ARGUMENT);
}

TEST_F(Runtime, RefusesADriverThatNeedsAnExtensionTheHostLacks) {
    auto p = load(FIXTURE_NEEDS_TRANSPORT);
    ASSERT_TRUE(p);
    const auto created = runtime->create(p, "panel", "dev-t", {});
    EXPECT_EQ(created, FL_UNSUPPORTED);
    EXPECT_NE(created.why().find("needs extension firelink.transport/1"), std::string::npos) << created;
}

TEST_F(Runtime, RefusesInvalidEventsAtTheBoundaryCountsThemAndKeepsGoing) {
    ASSERT_TRUE(start_panel(FIXTURE_BAD_EVENTS, "dev-bad-events"));
    const auto c = runtime->counters("dev-bad-events");
    EXPECT_EQ(c.refused, 6u);
    EXPECT_EQ(c.accepted, 1u);
    ASSERT_EQ(events.of("dev-bad-events").size(), 1u);
    EXPECT_EQ(events.of("dev-bad-events")[0].sequence, 1u) << "refused events take no sequence number";
}

TEST_F(Runtime, WatchdogReportsACallbackThatBlocks) {
    ASSERT_TRUE(start_panel(FIXTURE_SLOW_START, "dev-slow"));
    EXPECT_EQ(runtime->counters("dev-slow").slow_callbacks, 1u);

    ASSERT_TRUE(start_panel(FIXTURE_GOOD, "dev-fast"));
    EXPECT_EQ(runtime->counters("dev-fast").slow_callbacks, 0u);
}

// ---- the event check at the boundary ---------------------------------------------------------------------------

namespace {
std::vector<std::uint8_t> pack_map(const std::map<std::string, msgpack::type::variant> &kv) { return config_map(kv); }
std::string check(const std::vector<std::uint8_t> &bytes) {
    const auto checked = core::check_event(bytes.data(), bytes.size());
    return checked ? "valid" : checked.why();
}
using V = msgpack::type::variant;
}  // namespace

TEST(EventCheck, AcceptsTheSchemaAndNamesTheFirstProblem) {
    EXPECT_EQ(check(pack_map({{"kind", V(std::string("alarm"))}, {"code", V(std::string("arc_fault"))}})), "valid");
    EXPECT_EQ(check(pack_map({{"code", V(std::string("arc_fault"))}})), "missing 'kind'");
    EXPECT_EQ(check(pack_map({{"kind", V(std::string("alarm"))}})), "missing 'code'");
    EXPECT_NE(check(pack_map({{"kind", V(std::string("explosion"))}, {"code", V(std::string("x"))}})).find("'kind' must be one of"),
              std::string::npos);
    EXPECT_EQ(check(pack_map({{"kind", V(std::string("restore"))}, {"code", V(std::string("x"))}})),
              "a restore must name the event it ends in 'ends'");
    EXPECT_EQ(check(pack_map({{"kind", V(std::string("command_result"))}, {"code", V(std::string("x"))}})),
              "a command_result must carry 'command_id' and 'ok'");
    EXPECT_EQ(check(pack_map({{"kind", V(std::string("alarm"))}, {"code", V(std::string("x"))},
                              {"severity", V(std::string("apocalyptic"))}})),
              "'severity' must be one of critical, major, minor, warning, info");
    EXPECT_EQ(check(pack_map({{"kind", V(std::string("alarm"))}, {"code", V(std::string(""))}})),
              "'code' must be a string of 1-64 bytes");
    EXPECT_EQ(check({}), "empty event");
    EXPECT_EQ(check({0x93, 1, 2, 3}), "an event must be a msgpack map");
    EXPECT_EQ(check(std::vector<std::uint8_t>(70 * 1024, 0x80)).find("exceeds the 64 KiB limit") != std::string::npos,
              true);
    auto trailing = pack_map({{"kind", V(std::string("alarm"))}, {"code", V(std::string("x"))}});
    trailing.push_back(0xc0);
    EXPECT_EQ(check(trailing), "trailing bytes after the event map");
}

TEST(EventCheck, ChecksValuesPointByPoint) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(3);
    pk.pack("kind"); pk.pack("telemetry");
    pk.pack("code"); pk.pack("levels");
    pk.pack("values");
    pk.pack_array(2);
    pk.pack_map(3); pk.pack("name"); pk.pack("gas"); pk.pack("value"); pk.pack(12.5); pk.pack("unit"); pk.pack("%LEL");
    pk.pack_map(1); pk.pack("name"); pk.pack("valve");
    std::vector<std::uint8_t> bytes(reinterpret_cast<const std::uint8_t *>(buf.data()),
                                    reinterpret_cast<const std::uint8_t *>(buf.data()) + buf.size());
    EXPECT_EQ(check(bytes), "values[1] has no value");
}

TEST(EventCheck, RandomBytesNeverCrash) {
    std::mt19937 rng(2026);
    for (int i = 0; i < 20000; ++i) {
        std::vector<std::uint8_t> bytes(rng() % 64);
        for (auto &b : bytes) b = static_cast<std::uint8_t>(rng());
        if (!bytes.empty() && i % 2) bytes[0] = 0x80 | (bytes[0] & 0x0f);  // often a map header
        (void)core::check_event(bytes.data(), bytes.size());
        (void)core::msgpack_to_json(bytes.data(), bytes.size());
    }
}

// ---- wires, liveness, the hard watchdog, commands, enrichment --------------------------------------------------

namespace {

// A wire the test controls: what the driver writes is recorded; inject() hands bytes to the driver.
struct fake_wire_peer {
    std::mutex m;
    std::string written;
    std::function<void(std::string)> inject;
    // With refuse_open, every open fails (FL_LINK_FAILED, FL_IO) until open_now() opens the wire.
    std::atomic<bool> refuse_open{false};
    std::atomic<std::uint64_t> failed_opens{0};
    std::function<void()> open_now;
};

class fake_link : public firelink::transport::link {
public:
    fake_link(firelink::transport::executor ex, firelink::transport::link_events ev, std::shared_ptr<fake_wire_peer> peer)
        : ex_(std::move(ex)), ev_(std::move(ev)), peer_(std::move(peer)) {
        auto alive = alive_;
        peer_->inject = [ex = ex_, on_data = ev_.on_data, alive](std::string bytes) {
            boost::asio::post(ex, [on_data, alive, bytes] {
                if (*alive) on_data(reinterpret_cast<const std::uint8_t *>(bytes.data()), bytes.size());
            });
        };
        peer_->open_now = [ex = ex_, on_state = ev_.on_state, alive] {
            boost::asio::post(ex, [on_state, alive] {
                if (*alive) on_state(FL_LINK_OPEN, FL_OK);
            });
        };
    }
    ~fake_link() override { *alive_ = false; }
    int kind() const override { return FL_TRANSPORT_TCP_CLIENT; }
    void set_paused(bool p) override { paused_ = p; }
    bool paused() const override { return paused_; }
    bool paused_ = false;
    fl_status open() override {
        if (peer_->refuse_open) {
            peer_->failed_opens++;
            boost::asio::post(ex_, [on_state = ev_.on_state, alive = alive_] {
                if (*alive) on_state(FL_LINK_FAILED, FL_IO);
            });
            return FL_OK;
        }
        peer_->open_now();
        return FL_OK;
    }
    fl_status write(const std::uint8_t *data, std::size_t size) override {
        std::lock_guard lock(peer_->m);
        peer_->written.append(reinterpret_cast<const char *>(data), size);
        return FL_OK;
    }
    fl_status request(const std::uint8_t *data, std::size_t size, std::chrono::milliseconds) override {
        return write(data, size);
    }
    fl_status end_request() override { return FL_OK; }
    fl_status close() override {
        *alive_ = false;
        return FL_OK;
    }
    firelink::transport::link_counters counters() const override {
        firelink::transport::link_counters c;
        c.errors = peer_->failed_opens;
        return c;
    }

private:
    firelink::transport::executor ex_;
    firelink::transport::link_events ev_;
    std::shared_ptr<fake_wire_peer> peer_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

std::vector<std::uint8_t> command_bytes(const std::string &id, const std::string &name) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(3);
    pk.pack("id"); pk.pack(id);
    pk.pack("name"); pk.pack(name);
    pk.pack("args"); pk.pack_map(0);
    return {reinterpret_cast<const std::uint8_t *>(buf.data()),
            reinterpret_cast<const std::uint8_t *>(buf.data()) + buf.size()};
}

}  // namespace

class RuntimeWithWire : public Runtime {
protected:
    core::device_spec wired(const std::string &id, std::chrono::milliseconds heartbeat = 0ms) {
        core::device_spec spec;
        spec.device_id = id;
        spec.driver_id = "panel";
        spec.heartbeat = heartbeat;
        spec.site = {{"site", "Jing'an Temple"}, {"sector", "religious_site"}, {"floor", "1F"}};
        spec.make_link = [peer = peer](firelink::transport::executor ex, firelink::transport::link_events ev) {
            return std::make_unique<fake_link>(std::move(ex), std::move(ev), peer);
        };
        return spec;
    }
    bool wait_code(const std::string &device, const std::string &code, std::size_t *index = nullptr) {
        std::unique_lock lock(events.m);
        return events.cv.wait_for(lock, 20s, [&] {
            for (std::size_t i = 0; i < events.events.size(); ++i)
                if (events.events[i].device_id == device && events.events[i].code == code) {
                    if (index) *index = i;
                    return true;
                }
            return false;
        });
    }
    // Creates the device `spec` on the wire fixture's driver and starts it.
    ::testing::AssertionResult start_wired(const core::device_spec &spec) { return start_device(FIXTURE_WIRE, spec); }
    std::shared_ptr<fake_wire_peer> peer = std::make_shared<fake_wire_peer>();
};

TEST_F(RuntimeWithWire, BytesReachTheDriverAndItsWritesReachTheWire) {
    ASSERT_TRUE(start_wired(wired("panel-1")));
    ASSERT_TRUE(wait_code("panel-1", "x.test.link_open")) << "the driver opened its wire and saw FL_LINK_OPEN";
    peer->inject("hello");
    ASSERT_TRUE(wait_code("panel-1", "bytes"));
    {
        std::lock_guard lock(peer->m);
        EXPECT_EQ(peer->written, "hello") << "the driver's echo went out on the wire";
    }
    const auto evs = events.of("panel-1");
    for (const auto &e : evs) {
        EXPECT_EQ(e.gateway_id, "gw-test");
        EXPECT_EQ(e.device_class, "fire_panel");
        ASSERT_TRUE(e.site);
        EXPECT_EQ(e.site->at("sector"), "religious_site");
    }
    const auto st = runtime->status("panel-1");
    ASSERT_TRUE(st);
    EXPECT_EQ(st->state, firelink::core::device_state::started);
    EXPECT_TRUE(st->has_link);
    EXPECT_TRUE(st->last_seen.has_value());
}

TEST_F(RuntimeWithWire, SilenceBecomesOfflineAndTrafficTheMatchingRestore) {
    ASSERT_TRUE(start_wired(wired("panel-2", 60ms)));
    std::size_t offline_at = 0;
    ASSERT_TRUE(wait_code("panel-2", "offline", &offline_at));
    EXPECT_EQ(runtime->status("panel-2")->state, firelink::core::device_state::offline);
    {
        std::lock_guard lock(events.m);
        const auto &off = events.events[offline_at];
        EXPECT_EQ(off.kind, "offline");
        EXPECT_TRUE(off.from_host);
        const auto json = core::msgpack_to_json(off.payload.data(), off.payload.size());
        EXPECT_NE(json.find("\"event_id\":\"offline-1\""), std::string::npos) << json;
        EXPECT_NE(json.find("\"severity\":\"major\""), std::string::npos) << json;
    }
    // A command to an offline device fails fast, with a result the platform sees.
    EXPECT_EQ(runtime->command("panel-2", command_bytes("c-off", "ping")),
              (firelink::failure{FL_CLOSED, "the device is offline"}));

    peer->inject("x");
    ASSERT_TRUE(wait_code("panel-2", "bytes"));
    const auto evs = events.of("panel-2");
    auto restore = std::find_if(evs.begin(), evs.end(), [](const auto &e) { return e.kind == "restore"; });
    ASSERT_NE(restore, evs.end());
    const auto json = core::msgpack_to_json(restore->payload.data(), restore->payload.size());
    EXPECT_NE(json.find("\"code\":\"offline\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"ends\":\"offline-1\""), std::string::npos) << json;
    auto bytes_ev = std::find_if(evs.begin(), evs.end(), [](const auto &e) { return e.code == "bytes"; });
    EXPECT_LT(restore - evs.begin(), bytes_ev - evs.begin()) << "the restore precedes the traffic that caused it";
    for (std::size_t i = 0; i < evs.size(); ++i) EXPECT_EQ(evs[i].sequence, i + 1) << "host events share the sequence";
}

TEST_F(RuntimeWithWire, TheHardWatchdogFaultsADeviceWhoseCallDoesNotReturn) {
    runtime = make_runtime(100ms);
    ASSERT_TRUE(start_wired(wired("panel-3")));
    EXPECT_EQ(runtime->command("panel-3", command_bytes("c-1", "hang")), FL_OK);  // returns after 400 ms
    ASSERT_TRUE(wait_code("panel-3", "driver_hung"));
    EXPECT_EQ(runtime->status("panel-3")->state, firelink::core::device_state::faulted);
    EXPECT_GE(runtime->status("panel-3")->slow_callbacks, 1u);
    EXPECT_EQ(runtime->command("panel-3", command_bytes("c-2", "ping")),
              (firelink::failure{FL_CLOSED, "the device is faulted"}));
    ASSERT_TRUE(wait_code("panel-3", "command_failed"));
}

TEST_F(RuntimeWithWire, ACallTheStrandNeverTookIsDroppedAndAHungDeviceIsNeverFreedUnderItsDriver) {
    // fault bound 100 ms: the host waits 2 x 100 ms + 1 s for a device's strand, then twice that for a begun call.
    runtime = make_runtime(100ms);
    ASSERT_TRUE(start_wired(wired("panel-5")));

    firelink::result<> hung;
    std::thread hanging([&] { hung = runtime->command("panel-5", command_bytes("c-long", "hang_long")); });
    ASSERT_TRUE(wait_code("panel-5", "driver_hung"));  // the call is running and holds the strand

    // destroy cannot run behind the hung call: the host gives up on it, and keeps the device's memory (and its
    // plugin) alive, since the driver is still running inside it.
    runtime->destroy("panel-5");
    EXPECT_FALSE(runtime->has_device("panel-5"));
    hanging.join();
    EXPECT_EQ(hung, (firelink::failure{FL_TIMEOUT, "the driver took the command but has not returned; its result will follow"}));
    // The call returns at 3 s; the dropped destroy must never run after it (it would free what the driver holds).
    std::this_thread::sleep_for(1s);
    const auto evs = events.of("panel-5");
    EXPECT_TRUE(std::none_of(evs.begin(), evs.end(), [](const auto &e) { return e.code == "command_failed"; }))
        << "the hung command was never reported as not executed";
}

TEST_F(RuntimeWithWire, CommandsGetAResultFromTheHostWhenTheDriverCannotTakeThem) {
    auto p = load(FIXTURE_WIRE);
    ASSERT_TRUE(p);
    ASSERT_EQ(runtime->create(p, wired("panel-4")), FL_OK);
    EXPECT_EQ(runtime->command("panel-4", command_bytes("c-3", "ping")),
              (firelink::failure{FL_CLOSED, "the device is not started"}));
    ASSERT_EQ(runtime->start("panel-4"), FL_OK);
    EXPECT_EQ(runtime->command("panel-4", command_bytes("c-4", "ping")),
              (firelink::failure{FL_UNSUPPORTED, "the driver does not know this command"}));
    EXPECT_EQ(runtime->command("panel-4", {0x93, 1, 2, 3}), FL_INVALID_ARGUMENT);
    EXPECT_EQ(runtime->command("no-such-device", command_bytes("c-5", "ping")), FL_NOT_FOUND);

    const auto evs = events.of("panel-4");
    std::vector<std::string> results;
    for (const auto &e : evs)
        if (e.kind == "command_result") {
            EXPECT_TRUE(e.from_host);
            results.push_back(core::msgpack_to_json(e.payload.data(), e.payload.size()));
        }
    ASSERT_EQ(results.size(), 2u);
    EXPECT_NE(results[0].find("\"command_id\":\"c-3\""), std::string::npos) << results[0];
    EXPECT_NE(results[0].find("\"ok\":false"), std::string::npos) << results[0];
    EXPECT_NE(results[1].find("\"command_id\":\"c-4\""), std::string::npos) << results[1];
}

TEST(EventJson, EscapesWhatJsonCannotHoldRaw) {
    const auto bytes = pack_map({{"kind", V(std::string("alarm"))}, {"code", V(std::string("x\"y"))}});
    EXPECT_EQ(core::msgpack_to_json(bytes.data(), bytes.size()), "{\"code\":\"x\\\"y\",\"kind\":\"alarm\"}");
    EXPECT_EQ(core::msgpack_to_json(reinterpret_cast<const std::uint8_t *>("\xc1"), 1).rfind("{\"invalid_msgpack\":", 0), 0u);

    // JSON has no NaN: a value that is not finite is written null.
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(2);
    pk.pack(std::numeric_limits<double>::quiet_NaN());
    pk.pack(-std::numeric_limits<double>::infinity());
    EXPECT_EQ(core::msgpack_to_json(reinterpret_cast<const std::uint8_t *>(buf.data()), buf.size()), "[null,null]");
}

// ---- firelink.commit/1 ------------------------------------------------------------------------------------------
// The commit fixture logs "committed <through>" for each notification and "emitted <n>" after its command emit3: the
// host's log lines are captured to see what the device was told, and when.
namespace {

// Long enough for a notification posted to the strand to have run.
constexpr auto quiet = 100ms;

}  // namespace

TEST_F(Runtime, CommitNotificationTellsTheWatermarkOfDurableEventsInOrder) {
    EXPECT_TRUE(core::device_runtime::provides(FL_EXT_COMMIT));
    log_capture logs;
    ASSERT_TRUE(start_panel(FIXTURE_COMMIT, "c-1"));  // emits "started": event 1
    ASSERT_EQ(runtime->command("c-1", command_bytes("k-1", "emit3")), FL_OK);  // events 2, 3, 4
    EXPECT_TRUE(logs.wait("emitted 4")) << "emitted() counts the events emit answered FL_OK";
    ASSERT_EQ(runtime->command("c-1", command_bytes("k-2", "nope")), FL_UNSUPPORTED);  // a host-made command_result
    ASSERT_TRUE(events.wait_for("c-1", 5));
    auto evs = events.of("c-1");
    ASSERT_EQ(evs.size(), 5u);
    for (int i = 0; i < 4; ++i) EXPECT_TRUE(evs[i].on_durable) << "the driver's event " << i + 1 << " waits for its commit";
    EXPECT_TRUE(evs[4].from_host);
    EXPECT_FALSE(evs[4].on_durable) << "a host-made event takes no number";

    std::this_thread::sleep_for(quiet);
    EXPECT_FALSE(logs.has("committed")) << "nothing is committed yet";
    evs[2].on_durable();  // event 3 first: commits complete out of order across lanes
    std::this_thread::sleep_for(quiet);
    EXPECT_FALSE(logs.has("committed")) << "1 and 2 are not durable: the watermark is still 0";
    evs[0].on_durable();
    EXPECT_TRUE(logs.wait("committed 1"));
    evs[1].on_durable();  // 2, and 3 already was: through 3 in one call
    EXPECT_TRUE(logs.wait("committed 3"));
    EXPECT_FALSE(logs.has("committed 2")) << "one call covers every event the watermark passed";
    evs[1].on_durable();  // a repeat is harmless
    std::this_thread::sleep_for(quiet);
    EXPECT_EQ(logs.count("committed "), 2u);
    auto st = runtime->status("c-1");
    ASSERT_TRUE(st);
    EXPECT_TRUE(st->takes_commits);
    EXPECT_EQ(st->emitted, 4u);
    EXPECT_EQ(st->committed_through, 3u);

    // Committed while stopped: told after the next start, never to a stopped device.
    ASSERT_EQ(runtime->stop("c-1"), FL_OK);
    evs[3].on_durable();
    std::this_thread::sleep_for(quiet);
    EXPECT_FALSE(logs.has("committed 4"));
    EXPECT_FALSE(logs.has("committed while not started"));
    ASSERT_EQ(runtime->start("c-1"), FL_OK);
    EXPECT_TRUE(logs.wait("committed 4"));
    EXPECT_FALSE(logs.has("committed while not started"));
}

TEST_F(Runtime, ADeviceWithoutTheCommitExtensionIsToldNothing) {
    ASSERT_TRUE(start_panel(FIXTURE_GOOD, "g-1"));
    ASSERT_TRUE(events.wait_for("g-1", 1));
    EXPECT_FALSE(events.of("g-1")[0].on_durable) << "no watermark is kept for a device that cannot be told";
    EXPECT_FALSE(runtime->status("g-1")->takes_commits);
    EXPECT_EQ(runtime->status("g-1")->emitted, 1u);
}

// ---- a device never leaves monitoring silently --------------------------------------------------------

namespace {

std::string json_of(const core::accepted_event &e) { return core::msgpack_to_json(e.payload.data(), e.payload.size()); }

std::vector<core::accepted_event> host_events(collector &events, const std::string &device, const std::string &code) {
    std::vector<core::accepted_event> out;
    for (auto &e : events.of(device))
        if (e.from_host && e.code == code) out.push_back(e);
    return out;
}

}  // namespace

TEST_F(Runtime, TryCreateLetsTheDriverJudgeItsConfigAndTouchesNothingElse) {
    auto p = load(EXAMPLE_HELLO_CPP);
    ASSERT_TRUE(p);
    ASSERT_EQ(runtime->create(p, "hello", "dev-1", config_map({{"period_ms", msgpack::type::variant(std::uint64_t{2})}})), FL_OK);
    ASSERT_EQ(runtime->start("dev-1"), FL_OK);
    ASSERT_TRUE(events.wait_for("dev-1", 3));

    // The same id, running: a trial instance of it beside the running one, which the driver refuses in its words.
    core::device_spec spec;
    spec.device_id = "dev-1";
    spec.driver_id = "hello";
    spec.config = config_map({{"period_ms", msgpack::type::variant(std::uint64_t{0})}});
    const firelink::failure refused{FL_INVALID_ARGUMENT,
                                "create_device(hello) returned -4: create: config key 'period_ms': must be at least 1"};
    EXPECT_EQ(runtime->try_create(p, spec), refused);
    spec.config = config_map({{"period_ms", msgpack::type::variant(std::uint64_t{5})}});
    EXPECT_EQ(runtime->try_create(p, spec), FL_OK);

    // Nothing registered, nothing emitted, the running instance untouched: its sequence runs on without a break.
    EXPECT_EQ(runtime->device_ids(), std::vector<std::string>{"dev-1"});
    const auto before = events.count("dev-1");
    ASSERT_TRUE(events.wait_for("dev-1", before + 3));
    const auto evs = events.of("dev-1");
    for (std::size_t i = 0; i < evs.size(); ++i) {
        EXPECT_EQ(evs[i].sequence, i + 1);
        EXPECT_FALSE(evs[i].from_host) << json_of(evs[i]);
    }
    EXPECT_EQ(runtime->status("dev-1")->state, firelink::core::device_state::started);

    // create() says the same in its refusal.
    EXPECT_EQ(runtime->create(p, "hello", "dev-x", config_map({{"period_ms", msgpack::type::variant(std::uint64_t{0})}})),
              refused);
}

TEST_F(Runtime, ADeviceThatCannotBeCreatedIsDownWithItsReasonUntilItRuns) {
    auto p = load(EXAMPLE_HELLO_C);
    ASSERT_TRUE(p);
    const core::down_spec spec{"dev-2", p->info().id, "hello", "vendor:org.firelink.examples.hello", {{"site", "Longhua"}}};
    runtime->set_down(spec, "first reason");
    runtime->set_down(spec, "first reason");  // the same again: nothing new for the platform
    auto st = runtime->status("dev-2");
    ASSERT_TRUE(st) << "a device that cannot run stays listed";
    EXPECT_EQ(st->state, firelink::core::device_state::down);
    EXPECT_EQ(st->down_reason, "first reason");
    EXPECT_EQ(st->device_class, "vendor:org.firelink.examples.hello");
    ASSERT_EQ(runtime->down_devices().size(), 1u);
    EXPECT_EQ(runtime->down_devices()[0].device_id, "dev-2");
    auto down = host_events(events, "dev-2", "device_down");
    ASSERT_EQ(down.size(), 1u);
    EXPECT_EQ(down[0].kind, "fault");
    EXPECT_EQ(down[0].sequence, 1u);
    ASSERT_TRUE(down[0].site);
    EXPECT_EQ(down[0].site->at("site"), "Longhua");
    EXPECT_EQ(json_of(down[0]), R"({"schema":1,"kind":"fault","code":"device_down","event_id":"device-down",)"
                                R"("severity":"major","message":"first reason"})");

    // A new reason replaces the open fault (same event_id); a command is refused with a result.
    runtime->set_down(spec, "second reason");
    ASSERT_EQ(host_events(events, "dev-2", "device_down").size(), 2u);
    EXPECT_NE(json_of(host_events(events, "dev-2", "device_down")[1]).find(R"("event_id":"device-down")"), std::string::npos);
    EXPECT_EQ(runtime->command("dev-2", command_bytes("c-1", "ping")),
              (firelink::failure{FL_CLOSED, "the device is down: second reason"}));
    EXPECT_EQ(host_events(events, "dev-2", "command_failed").size(), 1u);
    EXPECT_EQ(runtime->start("dev-2"), FL_MISUSE) << "a place holder has nothing to start";

    // An instance takes its place; once it runs, the fault ends.
    ASSERT_EQ(runtime->create(p, "hello", "dev-2", config_map({{"period_ms", msgpack::type::variant(std::uint64_t{5})}})),
              FL_OK);
    EXPECT_EQ(runtime->status("dev-2")->state, firelink::core::device_state::down) << "created is not running";
    ASSERT_EQ(runtime->start("dev-2"), FL_OK);
    ASSERT_EQ(host_events(events, "dev-2", "device_down").size(), 3u);
    const auto restore = host_events(events, "dev-2", "device_down")[2];
    EXPECT_EQ(restore.kind, "restore");
    EXPECT_EQ(json_of(restore), R"({"schema":1,"kind":"restore","code":"device_down","ends":"device-down",)"
                                R"("message":"the device runs"})");
    EXPECT_EQ(runtime->status("dev-2")->state, firelink::core::device_state::started);
    EXPECT_EQ(runtime->status("dev-2")->down_reason, "");
    EXPECT_TRUE(runtime->down_devices().empty());
}

TEST_F(Runtime, ConfigRejectedIsRaisedOnceAndEndedByALaterInstance) {
    auto p = load(EXAMPLE_HELLO_CPP);
    ASSERT_TRUE(p);
    const auto cfg = config_map({{"period_ms", msgpack::type::variant(std::uint64_t{5})}});
    ASSERT_EQ(runtime->create(p, "hello", "dev-3", cfg), FL_OK);
    ASSERT_EQ(runtime->start("dev-3"), FL_OK);
    EXPECT_FALSE(runtime->raise_fault("no-such", core::host_fault::config_rejected, "m"));
    EXPECT_TRUE(runtime->raise_fault("dev-3", core::host_fault::config_rejected, "poll_ms refused"));
    EXPECT_FALSE(runtime->raise_fault("dev-3", core::host_fault::config_rejected, "poll_ms refused"));
    EXPECT_EQ(runtime->status("dev-3")->state, firelink::core::device_state::started) << "a kept device runs";
    EXPECT_EQ(runtime->status("dev-3")->config_rejected, "poll_ms refused");
    auto raised = host_events(events, "dev-3", "config_rejected");
    ASSERT_EQ(raised.size(), 1u);
    EXPECT_EQ(json_of(raised[0]), R"({"schema":1,"kind":"fault","code":"config_rejected","event_id":"config-rejected",)"
                                  R"("severity":"minor","message":"poll_ms refused"})");

    // A new instance of the same id (a later reload) still knows it is open, and ends it.
    runtime->destroy("dev-3");
    ASSERT_EQ(runtime->create(p, "hello", "dev-3", cfg), FL_OK);
    ASSERT_EQ(runtime->start("dev-3"), FL_OK);
    EXPECT_EQ(runtime->open_faults(core::host_fault::config_rejected).size(), 1u);
    EXPECT_TRUE(runtime->end_fault("dev-3", core::host_fault::config_rejected, "the device runs on its new definition"));
    EXPECT_FALSE(runtime->end_fault("dev-3", core::host_fault::config_rejected, "again"));
    const auto ended = host_events(events, "dev-3", "config_rejected");
    ASSERT_EQ(ended.size(), 2u);
    EXPECT_EQ(json_of(ended[1]), R"({"schema":1,"kind":"restore","code":"config_rejected","ends":"config-rejected",)"
                                 R"("message":"the device runs on its new definition"})");
    EXPECT_EQ(runtime->status("dev-3")->config_rejected, "");
}

TEST_F(RuntimeWithWire, AWireThatNeverOpensIsDeviceDownWithinTheBudgetUntilItOpens) {
    peer->refuse_open = true;
    auto spec = wired("panel-9", 150ms);
    spec.wire_name = "tcp 127.0.0.1:9";
    ASSERT_TRUE(start_wired(spec));
    std::size_t at = 0;
    ASSERT_TRUE(wait_code("panel-9", "device_down", &at));
    {
        std::lock_guard lock(events.m);
        const auto json = json_of(events.events[at]);
        EXPECT_NE(json.find(R"("message":"its wire (tcp 127.0.0.1:9) has not opened within 0.15 s of the device's )"
                            R"(start: 1 attempt(s) failed, the last with status -8")"),
                  std::string::npos)
            << json;
    }
    EXPECT_EQ(runtime->status("panel-9")->state, firelink::core::device_state::down);
    EXPECT_EQ(runtime->down_devices().size(), 1u);

    peer->open_now();
    ASSERT_TRUE(eventually([&] { return host_events(events, "panel-9", "device_down").size() == 2; }));
    EXPECT_EQ(host_events(events, "panel-9", "device_down")[1].kind, "restore");
    EXPECT_EQ(runtime->status("panel-9")->down_reason, "");
    EXPECT_TRUE(runtime->down_devices().empty());
}

TEST_F(RuntimeWithWire, AWireThatOpensInTimeRaisesNothing) {
    ASSERT_TRUE(start_wired(wired("panel-8", 100ms)));
    ASSERT_TRUE(wait_code("panel-8", "x.test.link_open"));
    std::this_thread::sleep_for(300ms);  // past the budget: a check that would fire has fired
    EXPECT_TRUE(host_events(events, "panel-8", "device_down").empty());
}

// FL-HOST-37: a name the driver did not declare is refused by the host, with a result, and never reaches the driver;
// a declared one does (this fixture's driver knows none, so its own answer is FL_UNSUPPORTED: a different reason).
TEST_F(Runtime, RefusesACommandTheDriverDidNotDeclareBeforeTheDriver) {
    ASSERT_TRUE(start_panel(FIXTURE_COMMANDS, "dev-decl"));
    EXPECT_EQ(runtime->command("dev-decl", command_bytes("c-1", "ping")),
              (firelink::failure{FL_UNSUPPORTED, "driver 'panel' does not declare a command 'ping'"}));
    EXPECT_EQ(runtime->command("dev-decl", command_bytes("c-2", "trip")),
              (firelink::failure{FL_UNSUPPORTED, "the driver does not know this command"}))
        << "a declared name reaches the driver";
    ASSERT_TRUE(events.wait_for("dev-decl", 3));  // started, then the two results
    std::string results;
    for (const auto &ev : events.of("dev-decl"))
        if (ev.kind == "command_result") results += core::msgpack_to_json(ev.payload.data(), ev.payload.size()) + "\n";
    EXPECT_NE(results.find("command 'ping' not executed: driver 'panel' does not declare a command 'ping'"),
              std::string::npos) << results;

    // A driver that declares none has every name handed over, as before 1.1.
    ASSERT_TRUE(start_panel(FIXTURE_GOOD, "dev-undecl"));
    EXPECT_EQ(runtime->command("dev-undecl", command_bytes("c-3", "ping")),
              (firelink::failure{FL_UNSUPPORTED, "the driver does not know this command"}));
}
