// The linkage engine without a host: rules parsed from a real site file, events as the runtime hands them over, and
// hooks that record what the engine would have moved, said and audited. What a rule must and must not do (GB 50116
// 4.1.6's AND of independent devices, min_duration, sequence and parallel, retries, refusals, latching, restarts).
#include <firelink/linkage/linkage_engine.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <regex>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>

#include <firelink/core/event_check.hpp>
#include <firelink/payload.hpp>

#include "eventually.hpp"
#include "temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using firelink::linkage::command_answer;
using firelink::linkage::json;
using firelink::linkage::linkage_engine;
using firelink_test::eventually;
using outcome = command_answer::outcome;

const std::string devices = R"(
[gateway]
id = "gw"
[plugins]
dirs = ["plugins"]
[[device]]
id = "gas-1"
driver = "modbus-gas-valve"
class = "gas_shutoff_valve"
site = { building = "A", floor = "1F" }
[[device]]
id = "gas-2"
driver = "modbus-gas-valve"
class = "gas_shutoff_valve"
site = { building = "A", floor = "1F" }
[[device]]
id = "afb-3"
driver = "modbus-arc-breaker"
class = "arc_fault_breaker"
site = { building = "A", floor = "3F" }
tags = ["non_fire_power"]
)";

firelink::site::site_config site_of(const std::string &rules) {
    auto loaded = firelink::site::parse_site_config(devices + rules, "site.toml");
    if (!loaded) {
        std::string all;
        for (const auto &e : loaded.error()) all += e.str() + "\n";
        throw std::runtime_error(all);
    }
    return std::move(loaded).value();
}

std::int64_t wall_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

firelink::core::accepted_event base(const std::string &device, const std::string &kind, const std::string &code) {
    firelink::core::accepted_event ev;
    ev.device_id = device;
    ev.kind = kind;
    ev.code = code;
    ev.received_wall = std::chrono::system_clock::now();
    ev.received_monotonic = std::chrono::steady_clock::now();
    return ev;
}

// An alarm (or fault) that opens the condition `event_id` of `device`; empty `event_id`: a moment, no condition.
firelink::core::accepted_event raised(const std::string &device, const std::string &event_id,
                                      const std::string &code = "gas_level_2", const std::string &kind = "alarm") {
    auto ev = base(device, kind, code);
    if (!event_id.empty())
        ev.condition = firelink::core::condition_change{
            device, firelink::core::open_condition{device, event_id, kind, code, {}, wall_now()}, {}, false};
    return ev;
}

firelink::core::accepted_event restored(const std::string &device, const std::string &event_id,
                                        const std::string &code = "gas_level_2") {
    auto ev = base(device, "restore", code);
    ev.condition = firelink::core::condition_change{device, std::nullopt, {event_id}, false};
    return ev;
}

firelink::core::accepted_event result(const std::string &device, const std::string &command_id, bool ok,
                                      bool from_host = false) {
    auto ev = base(device, "command_result", ok ? "command_succeeded" : "command_failed");
    ev.from_host = from_host;
    ev.payload = firelink::event::command_result(command_id, ok, ok ? "the valve reads closed" : "not confirmed").pack();
    return ev;
}

// The hooks' side: every command asked for, event emitted and record audited, and how to answer a command.
class recorder {
public:
    struct sent {
        std::string device, command, command_id;
    };
    firelink::linkage::engine_hooks hooks() {
        return {[this](const firelink::linkage::command_request &c) {
                    std::lock_guard lock(mutex_);
                    commands_.push_back({c.device, c.command, c.command_id});
                    if (busy_left_ > 0) {
                        --busy_left_;
                        return command_answer{outcome::busy, "selected_by_other", "an operator holds it"};
                    }
                    return answer_;
                },
                [this](std::vector<std::uint8_t> payload, const std::string &kind, std::function<void()> committed) {
                    auto e = json::parse(firelink::core::msgpack_to_json(payload.data(), payload.size()));
                    e["lane_kind"] = kind;
                    if (on_event) on_event(e);
                    {
                        std::lock_guard lock(mutex_);
                        events_.push_back(std::move(e));
                        if (hold_commits_) {
                            held_.push_back(std::move(committed));
                            return;
                        }
                    }
                    if (committed) committed();  // as a queue that commits at once
                },
                [this](json record) {
                    std::lock_guard lock(mutex_);
                    audit_.push_back(std::move(record));
                    return true;
                },
                {}};  // release: nothing to let go of
    }
    std::vector<sent> commands() const {
        std::lock_guard lock(mutex_);
        return commands_;
    }
    std::vector<json> events(const std::string &code) const {
        std::lock_guard lock(mutex_);
        std::vector<json> out;
        for (const auto &e : events_)
            if (e["code"] == code) out.push_back(e);
        return out;
    }
    std::vector<std::string> steps() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto &r : audit_) out.push_back(r["step"]);
        return out;
    }
    void answer(command_answer a) {
        std::lock_guard lock(mutex_);
        answer_ = std::move(a);
    }
    void busy(int times) {
        std::lock_guard lock(mutex_);
        busy_left_ = times;
    }
    std::function<void(const json &)> on_event;  // called as each event is handed over; set before the engine runs
    // A queue that has not committed yet: the events' commit callbacks wait until commit_held().
    void hold_commits() {
        std::lock_guard lock(mutex_);
        hold_commits_ = true;
    }
    void commit_held() {
        std::vector<std::function<void()>> held;
        {
            std::lock_guard lock(mutex_);
            held.swap(held_);
            hold_commits_ = false;
        }
        for (auto &c : held)
            if (c) c();
    }

private:
    mutable std::mutex mutex_;
    std::vector<sent> commands_;
    std::vector<json> events_;
    std::vector<json> audit_;
    command_answer answer_{outcome::sent, "", "accepted"};
    int busy_left_ = 0;
    bool hold_commits_ = false;
    std::vector<std::function<void()>> held_;
};

// A command id of the engine: lnk-<the state file's epoch>-<tail>, tail "<rule>-<run>-<n>[.r<attempt>]".
bool named(const std::string &id, const std::string &tail) {
    return std::regex_match(id, std::regex("lnk-[0-9a-f]{8}-" + std::regex_replace(tail, std::regex("\\."), "\\.")));
}

std::string value(const json &event, const std::string &name) {
    for (const auto &v : event.value("values", json::array()))
        if (v["name"] == name) return v["value"].is_string() ? v["value"].get<std::string>() : v["value"].dump();
    return {};
}

class EngineTest : public ::testing::Test {
protected:
    std::unique_ptr<linkage_engine> engine(const std::string &rules,
                                           const std::vector<firelink::core::open_condition> &open = {}) {
        const auto cfg = site_of(rules);
        firelink::linkage::engine_options o;
        o.rules = cfg.linkage;
        o.devices = cfg.devices;
        o.state_path = dir_.path() / "state.db";
        o.retry_interval = 20ms;
        auto e = std::make_unique<linkage_engine>(o, rec_.hooks());
        e->start(open);
        return e;
    }
    std::string state(const linkage_engine &e, const std::string &rule = "r") const {
        const auto all = e.to_json();  // kept: a range over a temporary's member would outlive it
        for (const auto &r : all["rules"])
            if (r["id"] == rule) return r["state"];
        return "?";
    }
    bool commands_are(std::size_t n) const {
        return eventually([&] { return rec_.commands().size() >= n; }, 10s) && rec_.commands().size() == n;
    }

    firelink_test::temp_dir dir_{"firelink-linkage"};
    recorder rec_;
};

const std::string kitchen = R"(
[[linkage]]
id = "r"
[linkage.trigger]
any = [{ device = "gas-1", code = "gas_level_2" }]
[[linkage.action]]
device = "gas-1"
command = "close_valve"
timeout_s = 2
)";

}  // namespace

TEST_F(EngineTest, AnAlarmClosesTheValveOnceConfirmedByReadBackAndLatchesUntilReset) {
    auto e = engine(kitchen);
    EXPECT_EQ(state(*e), "idle");
    e->observe(raised("gas-2", "gas2"));  // another device: nothing
    e->observe(raised("gas-1", "gas1", "gas_level_1"));  // another code: nothing
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(rec_.commands().empty());
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(commands_are(1));
    const auto cmd = rec_.commands()[0];
    EXPECT_EQ(cmd.device, "gas-1");
    EXPECT_EQ(cmd.command, "close_valve");
    EXPECT_TRUE(named(cmd.command_id, "r-1-0")) << cmd.command_id;
    EXPECT_TRUE(eventually([&] { return state(*e) == "running"; }));
    e->observe(result("gas-1", cmd.command_id, true));
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_confirmed").size() == 1; }));
    const auto confirmed = rec_.events("linkage_confirmed")[0];
    EXPECT_EQ(confirmed["kind"], "status");
    EXPECT_EQ(value(confirmed, "command_id"), cmd.command_id);
    EXPECT_NE(confirmed["message"].get<std::string>().find("the valve reads closed"), std::string::npos);
    EXPECT_EQ(rec_.events("linkage_started").size(), 1u);
    EXPECT_TRUE(eventually([&] { return state(*e) == "active"; }));
    // A re-report of the open alarm is not a new one; latched, a restore does not end it either.
    e->observe(raised("gas-1", "gas2"));
    e->observe(restored("gas-1", "gas2"));
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(state(*e), "active");
    EXPECT_EQ(rec_.commands().size(), 1u);
    const auto [status, body] = e->reset({"ops", "operate", "admin"}, "r", "checked");
    EXPECT_EQ(status, 200u) << body.dump();
    EXPECT_EQ(state(*e), "idle");
    EXPECT_EQ(e->reset({"ops", "operate", "admin"}, "r", "").first, 409u);
    EXPECT_EQ(e->reset({"ops", "operate", "admin"}, "nope", "").first, 404u);
    // A new alarm fires run 2.
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(commands_are(2));
    EXPECT_TRUE(named(rec_.commands()[1].command_id, "r-2-0")) << rec_.commands()[1].command_id;
    const auto steps = rec_.steps();
    EXPECT_EQ(std::count(steps.begin(), steps.end(), "linkage_fire"), 2);
    EXPECT_EQ(std::count(steps.begin(), steps.end(), "linkage_reset"), 1);
}

TEST_F(EngineTest, AllNeedsTwoIndependentDevicesNotTwoAlarmsOfOne) {
    auto e = engine(R"(
[[linkage]]
id = "r"
[linkage.trigger]
all = [{ building = "A", floor = "1F" }]
[[linkage.action]]
select = { tags = ["non_fire_power"] }
command = "trip"
)");
    e->observe(raised("gas-1", "gas1", "gas_level_1"));
    e->observe(raised("gas-1", "gas2", "gas_level_2"));
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(rec_.commands().empty()) << "two alarms of one device are one source";
    e->observe(raised("gas-2", "gas1", "gas_level_1"));
    ASSERT_TRUE(commands_are(1));
    EXPECT_EQ(rec_.commands()[0].device, "afb-3");
    EXPECT_EQ(rec_.commands()[0].command, "trip");
    const auto started = rec_.events("linkage_started").at(0);
    EXPECT_NE(value(started, "trigger").find("gas-2"), std::string::npos);
}

TEST_F(EngineTest, IndependentConditionsCountAPanelsDetectorsApart) {
    auto e = engine(R"(
[[linkage]]
id = "r"
[linkage.trigger]
all = [{ device = "gas-1" }]
independent = "condition"
[[linkage.action]]
device = "gas-2"
command = "close_valve"
)");
    e->observe(raised("gas-1", "zone1-det4"));
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(rec_.commands().empty());
    e->observe(raised("gas-1", "zone1-det5"));
    EXPECT_TRUE(commands_are(1));
}

TEST_F(EngineTest, TheWindowCountsAMomentOnlyForItsLength) {
    auto e = engine(R"(
[[linkage]]
id = "r"
[linkage.trigger]
all = [{ building = "A", floor = "1F" }]
window_s = 1
[[linkage.action]]
device = "afb-3"
command = "trip"
)");
    e->observe(raised("gas-1", ""));  // a moment: no condition stays open
    std::this_thread::sleep_for(1200ms);
    e->observe(raised("gas-2", ""));
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(rec_.commands().empty()) << "gas-1's moment was outside the window";
    e->observe(raised("gas-1", ""));  // within the window of gas-2's
    EXPECT_TRUE(commands_are(1));
}

TEST_F(EngineTest, MinDurationWaitsAndARestoreBeforeItCancels) {
    auto e = engine(R"(
[[linkage]]
id = "r"
[linkage.trigger]
any = [{ device = "gas-1" }]
min_duration_s = 1
[[linkage.action]]
device = "gas-1"
command = "close_valve"
)");
    e->observe(raised("gas-1", "gas1"));
    std::this_thread::sleep_for(200ms);
    e->observe(restored("gas-1", "gas1"));
    std::this_thread::sleep_for(1100ms);
    EXPECT_TRUE(rec_.commands().empty()) << "it restored before it had held for 1 s";
    const auto t0 = std::chrono::steady_clock::now();
    e->observe(raised("gas-1", "gas1"));
    EXPECT_TRUE(eventually([&] { return state(*e) == "arming" || !rec_.commands().empty(); }));
    ASSERT_TRUE(commands_are(1));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s);
}

TEST_F(EngineTest, SequenceWaitsForEachResultParallelDoesNot) {
    const std::string two = R"(
[[linkage.action]]
device = "afb-3"
command = "trip"
[[linkage.action]]
select = { class = "gas_shutoff_valve" }
command = "close_valve"
)";
    {
        auto e = engine("[[linkage]]\nid = \"r\"\n[linkage.trigger]\nany = [{ device = \"gas-1\" }]\n" + two);
        e->observe(raised("gas-1", "gas1"));
        ASSERT_TRUE(commands_are(1));
        EXPECT_EQ(rec_.commands()[0].device, "afb-3");
        // A failed action does not stop the next: the breaker's failure lets the valves close.
        e->observe(result("afb-3", rec_.commands()[0].command_id, false));
        ASSERT_TRUE(commands_are(3));  // the group's two valves at once
        EXPECT_EQ(rec_.events("linkage_failed").size(), 1u);
        EXPECT_EQ(value(rec_.events("linkage_failed")[0], "reason"), "command_failed");
        EXPECT_EQ(rec_.events("linkage_failed")[0]["kind"], "alarm");
    }
    {
        firelink_test::temp_dir other{"firelink-linkage"};
        auto cfg = site_of("[[linkage]]\nid = \"p\"\norder = \"parallel\"\n[linkage.trigger]\nany = [{ device = \"gas-2\" }]\n" + two);
        recorder rec;
        firelink::linkage::engine_options o{cfg.linkage, cfg.devices, other.path() / "s.db"};
        linkage_engine e(o, rec.hooks());
        e.start({});
        e.observe(raised("gas-2", "gas1"));
        EXPECT_TRUE(eventually([&] { return rec.commands().size() == 3; }, 10s));
    }
}

TEST_F(EngineTest, AnOperatorsHoldIsWaitedForAndOtherRefusalsFailAtOnce) {
    auto e = engine(kitchen);
    rec_.busy(3);  // an operator holds the valve for three attempts
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(commands_are(4));
    EXPECT_TRUE(named(rec_.commands()[3].command_id, "r-1-0.r4")) << rec_.commands()[3].command_id;
    e->observe(result("gas-1", rec_.commands()[0].command_id, true));  // an answer to a refused attempt: not taken
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(rec_.events("linkage_confirmed").empty());
    e->observe(result("gas-1", rec_.commands()[3].command_id, true));
    EXPECT_TRUE(eventually([&] { return rec_.events("linkage_confirmed").size() == 1; }));

    e->reset({"ops", "operate", "admin"}, "r", "");
    rec_.answer({outcome::refused, "local_mode", "the device is in local mode"});
    e->observe(raised("gas-1", "gas2b"));
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_failed").size() == 1; }));
    EXPECT_EQ(value(rec_.events("linkage_failed")[0], "reason"), "local_mode");
    EXPECT_TRUE(commands_are(5));  // not tried again
}

TEST_F(EngineTest, NoReadBackWithinTheTimeoutIsAFailure) {
    auto e = engine(kitchen);
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(commands_are(1));
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_failed").size() == 1; }, 10s));  // the action's 2 s
    EXPECT_EQ(value(rec_.events("linkage_failed")[0], "reason"), "timeout");
    EXPECT_EQ(rec_.commands().size(), 1u);
}

TEST_F(EngineTest, AHostsFailedResultAfterTheHandOverIsAFailureNotARetry) {
    // The driver took the command and its process died: whether the valve moved is unknown, so it is not sent again.
    auto e = engine(kitchen);
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(commands_are(1));
    ASSERT_TRUE(eventually([&] { return state(*e) == "running"; }));
    std::this_thread::sleep_for(50ms);  // the hand-over's answer (sent) is in
    e->observe(result("gas-1", rec_.commands()[0].command_id, false, true));
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_failed").size() == 1; }));
    EXPECT_EQ(value(rec_.events("linkage_failed")[0], "reason"), "command_failed");
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(rec_.commands().size(), 1u);
}

TEST_F(EngineTest, ManualRequestsAndMovesOnlyOnConfirmation) {
    auto e = engine(R"(
[[linkage]]
id = "r"
mode = "manual"
[linkage.trigger]
any = [{ device = "gas-1" }]
[[linkage.action]]
device = "gas-1"
command = "close_valve"
)");
    EXPECT_EQ(e->confirm({"ops", "operate", "admin"}, "r").first, 409u);
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_request").size() == 1; }));
    EXPECT_EQ(rec_.events("linkage_request")[0]["kind"], "alarm");
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(rec_.commands().empty());
    EXPECT_EQ(state(*e), "requested");
    EXPECT_EQ(e->confirm({"ops", "operate", "admin"}, "r").first, 200u);
    EXPECT_TRUE(commands_are(1));
    const auto steps = rec_.steps();
    EXPECT_NE(std::find(steps.begin(), steps.end(), "linkage_confirm"), steps.end());
}

TEST_F(EngineTest, InhibitWatchesAndTheModeOutlivesTheEngine) {
    {
        auto e = engine(kitchen);
        EXPECT_EQ(e->set_mode({"boss", "admin", "admin"}, "r", "sometimes", "").first, 400u);
        EXPECT_EQ(e->set_mode({"boss", "admin", "admin"}, "r", "inhibit", "maintenance").first, 200u);
    }
    auto e = engine(kitchen);
    EXPECT_EQ(e->to_json()["rules"][0]["mode"], "inhibit");
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_inhibited").size() == 1; }));
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(rec_.commands().empty());
}

TEST_F(EngineTest, EndsOnRestoreOrOnTheDevicesReset) {
    auto e = engine(R"(
[[linkage]]
id = "r"
ends = "restore"
[linkage.trigger]
any = [{ device = "gas-1" }]
[[linkage.action]]
device = "gas-1"
command = "close_valve"
[[linkage]]
id = "latched"
[linkage.trigger]
any = [{ device = "gas-2" }]
[[linkage.action]]
device = "gas-2"
command = "close_valve"
)");
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(commands_are(1));
    e->observe(result("gas-1", rec_.commands()[0].command_id, true));
    ASSERT_TRUE(eventually([&] { return state(*e) == "active"; }));
    e->observe(restored("gas-1", "gas2"));
    ASSERT_TRUE(eventually([&] { return state(*e) == "idle"; }));
    EXPECT_EQ(value(rec_.events("linkage_ended").at(0), "by"), "restore");

    e->observe(raised("gas-2", "gas2"));
    ASSERT_TRUE(commands_are(2));
    e->observe(base("gas-2", "status", "reset"));
    ASSERT_TRUE(eventually([&] { return state(*e, "latched") == "idle"; }));
    EXPECT_EQ(value(rec_.events("linkage_ended").at(1), "by"), "device_reset");
}

TEST_F(EngineTest, ARestartNeitherRepeatsNorForgets) {
    const std::string rules = R"(
[[linkage]]
id = "r"
[linkage.trigger]
any = [{ device = "gas-1" }]
[[linkage.action]]
device = "gas-1"
command = "close_valve"
[[linkage.action]]
device = "gas-2"
command = "close_valve"
delay_ms = 1500
)";
    const auto alarm = raised("gas-1", "gas2");
    const auto open = std::vector{*alarm.condition->opened};
    {
        auto e = engine(rules);
        e->observe(alarm);
        ASSERT_TRUE(commands_are(1));
        e->observe(result("gas-1", rec_.commands()[0].command_id, true));
        ASSERT_TRUE(eventually([&] { return rec_.events("linkage_confirmed").size() == 1; }));
    }  // the host stops during the second action's delay
    auto e = engine(rules, open);  // the alarm is still open: the run that acted on it goes on, no second run
    ASSERT_TRUE(commands_are(2));
    EXPECT_EQ(rec_.commands()[1].device, "gas-2");
    EXPECT_TRUE(named(rec_.commands()[1].command_id, "r-1-1")) << rec_.commands()[1].command_id;
    e->observe(result("gas-2", rec_.commands()[1].command_id, true));
    ASSERT_TRUE(eventually([&] { return state(*e) == "active"; }));
    EXPECT_EQ(rec_.events("linkage_started").size(), 1u);
}

TEST_F(EngineTest, ACommandSentBeforeADeathIsInterruptedNotResent) {
    {
        auto e = engine(kitchen);
        e->observe(raised("gas-1", "gas2"));
        ASSERT_TRUE(commands_are(1));
    }  // no read-back before the host went
    auto e = engine(kitchen);
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_failed").size() == 1; }));
    EXPECT_EQ(value(rec_.events("linkage_failed")[0], "reason"), "interrupted");
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(rec_.commands().size(), 1u);
    EXPECT_EQ(e->to_json()["rules"][0]["run"]["actions"][0]["state"], "interrupted");
}

TEST_F(EngineTest, AResultIsOnDiskBeforeItsEventAndMarkedReportedOnlyOnceTheQueueCommittedIt) {
    const auto db_path = dir_.path() / "state.db";
    const auto stored_action = [&] {
        SQLite::Database db(db_path.string(), SQLite::OPEN_READONLY);
        return json::parse(db.execAndGet("SELECT body FROM linkage_run").getString())["actions"][0];
    };
    json at_emit;
    rec_.on_event = [&](const json &e) {
        if (e["code"] == "linkage_confirmed") at_emit = stored_action();
    };
    const auto alarm = raised("gas-1", "gas2");
    rec_.hold_commits();  // the queue has not committed yet when the host dies
    {
        auto e = engine(kitchen);
        e->observe(alarm);
        ASSERT_TRUE(commands_are(1));
        e->observe(result("gas-1", rec_.commands()[0].command_id, true));
        ASSERT_TRUE(eventually([&] { return rec_.events("linkage_confirmed").size() == 1; }));
        // Had the host died as the event was handed over, its restart would read "confirmed", never "sent".
        EXPECT_EQ(at_emit["state"], "confirmed");
        EXPECT_EQ(at_emit["unreported"], true);
        std::this_thread::sleep_for(100ms);
        EXPECT_EQ(stored_action()["unreported"], true);  // handed over is not committed
    }  // the host dies here
    rec_.commit_held();  // a commit after the engine is gone reaches no one, and changes nothing
    EXPECT_EQ(stored_action()["unreported"], true);
    rec_.on_event = nullptr;
    auto e = engine(kitchen, {*alarm.condition->opened});
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_confirmed").size() == 2; }));
    const auto again = rec_.events("linkage_confirmed")[1];
    EXPECT_EQ(value(again, "command_id"), rec_.commands()[0].command_id);  // the same action, said again
    EXPECT_TRUE(eventually([&] { return stored_action()["unreported"] == false; }));  // committed this time
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(rec_.commands().size(), 1u);  // and nothing sent again
    EXPECT_EQ(stored_action()["state"], "confirmed");
}

TEST_F(EngineTest, AnAlarmActedOnNeverFiresAgainHoweverManyRunsFollow) {
    // Fewer runs kept than runs made: what a run acted on is remembered apart from the runs' history.
    const auto cfg = site_of(kitchen);
    firelink::linkage::engine_options o{cfg.linkage, cfg.devices, dir_.path() / "s.db"};
    o.runs_kept = 2;
    linkage_engine e(o, rec_.hooks());
    e.start({});
    for (int i = 1; i <= 5; ++i) {
        const auto id = "gas2-" + std::to_string(i);
        e.observe(raised("gas-1", id));
        ASSERT_TRUE(commands_are(static_cast<std::size_t>(i)));
        const auto all = e.to_json();
        EXPECT_EQ(all["rules"][0]["run"]["trigger"][0]["event_id"], id) << "run " << i << " fired by an old alarm";
        e.observe(result("gas-1", rec_.commands().back().command_id, true));
        e.observe(restored("gas-1", id));  // restored, but still within the rule's 120 s window
        ASSERT_TRUE(eventually([&] { return state(e) == "active"; }));
        ASSERT_EQ(e.reset({"ops", "operate", "admin"}, "r", "").first, 200u);
    }
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(rec_.commands().size(), 5u);
    EXPECT_EQ(state(e), "idle");
}

TEST_F(EngineTest, ADamagedStoredRunIsSkippedAndTheRuleStillRuns) {
    {
        auto e = engine(kitchen);
        e->observe(raised("gas-1", "gas2"));
        ASSERT_TRUE(commands_are(1));
    }
    {
        SQLite::Database db((dir_.path() / "state.db").string(), SQLite::OPEN_READWRITE);
        db.exec("UPDATE linkage_run SET body = '{\"run\": \"one\", \"actions\": 7}'");
    }
    auto e = engine(kitchen);
    e->observe(raised("gas-1", "gas2b"));
    EXPECT_TRUE(commands_are(2));
}

TEST_F(EngineTest, AConditionOpenAtStartThatNoRunActedOnFires) {
    const auto alarm = raised("gas-1", "gas2");
    auto e = engine(kitchen, {*alarm.condition->opened});
    EXPECT_TRUE(commands_are(1));
}

TEST_F(EngineTest, ARefusedRuleNeverFires) {
    const auto cfg = site_of(kitchen);
    firelink::linkage::engine_options o{cfg.linkage, cfg.devices, dir_.path() / "s.db"};
    linkage_engine e(o, rec_.hooks());
    e.refuse("r", "the driver declares no command 'close_valve'");
    e.start({});
    e.observe(raised("gas-1", "gas2"));
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(rec_.commands().empty());
    EXPECT_EQ(state(e), "refused");
}

TEST_F(EngineTest, ConfirmsRacingEventsNeverDeadlock) {
    auto e = engine(R"(
[[linkage]]
id = "r"
mode = "manual"
[linkage.trigger]
any = [{ device = "gas-1" }]
[[linkage.action]]
device = "gas-1"
command = "close_valve"
)");
    // An operator confirms (mutex_, then the inbox) while a device floods the inbox the engine's thread waits on.
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> observed{0};
    std::thread events([&] {
        while (!stop) {
            e->observe(restored("gas-1", "none"));
            ++observed;
        }
    });
    for (int i = 0; i < 30; ++i) {
        e->observe(raised("gas-1", "gas-" + std::to_string(i)));
        ASSERT_TRUE(eventually([&] { return state(*e) == "requested"; }, 30s)) << "round " << i;
        ASSERT_EQ(e->confirm({"ops", "operate", "admin"}, "r").first, 200u);
        ASSERT_EQ(e->reset({"ops", "operate", "admin"}, "r", "").first, 200u);
    }
    const auto before = observed.load();
    EXPECT_TRUE(eventually([&] { return observed.load() > before + 1000; }, 30s)) << "observe() is stuck";
    stop = true;
    events.join();
}

TEST_F(EngineTest, ARuleIdWithDotsRetriesUnderItsOwnIds) {
    auto e = engine(R"(
[[linkage]]
id = "kitchen.range.r2"
[linkage.trigger]
any = [{ device = "gas-1" }]
[[linkage.action]]
device = "gas-1"
command = "close_valve"
)");
    rec_.busy(2);
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(commands_are(3));
    EXPECT_TRUE(named(rec_.commands()[0].command_id, "kitchen.range.r2-1-0")) << rec_.commands()[0].command_id;
    EXPECT_TRUE(named(rec_.commands()[2].command_id, "kitchen.range.r2-1-0.r3")) << rec_.commands()[2].command_id;
    e->observe(result("gas-1", rec_.commands()[2].command_id, true));
    EXPECT_TRUE(eventually([&] { return state(*e, "kitchen.range.r2") == "active"; }));
}

TEST_F(EngineTest, ARunOfARuleWhoseActionsChangedIsEndedNotResumed) {
    const std::string two = kitchen + "[[linkage.action]]\ndevice = \"gas-2\"\ncommand = \"close_valve\"\ndelay_ms = 60000\n";
    {
        auto e = engine(two);
        e->observe(raised("gas-1", "gas2"));
        ASSERT_TRUE(commands_are(1));
        e->observe(result("gas-1", rec_.commands()[0].command_id, true));
        ASSERT_TRUE(eventually([&] { return rec_.events("linkage_confirmed").size() == 1; }));
    }  // stopped during the second action's delay; the integrator removes that action
    auto e = engine(kitchen);
    ASSERT_TRUE(eventually([&] { return rec_.events("linkage_ended").size() == 1; }));
    EXPECT_EQ(value(rec_.events("linkage_ended")[0], "by"), "rule_changed");
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(rec_.commands().size(), 1u);
    EXPECT_EQ(state(*e), "idle");
}

TEST_F(EngineTest, InhibitWithdrawsAWaitingRequestAndRolesAreChecked) {
    auto e = engine(R"(
[[linkage]]
id = "r"
mode = "manual"
[linkage.trigger]
any = [{ device = "gas-1" }]
[[linkage.action]]
device = "gas-1"
command = "close_valve"
)");
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(eventually([&] { return state(*e) == "requested"; }));
    EXPECT_EQ(e->confirm({"viewer", "read", "admin"}, "r").first, 403u);
    EXPECT_EQ(e->set_mode({"ops", "operate", "admin"}, "r", "inhibit", "").first, 403u);
    EXPECT_EQ(e->set_mode({"platform", "platform", "platform"}, "r", "inhibit", "").first, 403u);
    EXPECT_EQ(e->set_mode({"boss", "admin", "admin"}, "r", "inhibit", "maintenance").first, 200u);
    EXPECT_EQ(state(*e), "idle");
    EXPECT_EQ(e->confirm({"ops", "operate", "admin"}, "r").first, 409u);
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(rec_.commands().empty());
}

TEST_F(EngineTest, AResetWhileOtherAlarmsAreOpenDoesNotFireAgain) {
    auto e = engine(R"(
[[linkage]]
id = "r"
[linkage.trigger]
any = [{ building = "A", floor = "1F" }]
[[linkage.action]]
device = "afb-3"
command = "trip"
)");
    e->observe(raised("gas-1", "gas2"));
    ASSERT_TRUE(commands_are(1));
    e->observe(raised("gas-2", "gas2"));  // a second detector, while the run is on: the run's too
    e->observe(result("afb-3", rec_.commands()[0].command_id, true));
    ASSERT_TRUE(eventually([&] { return state(*e) == "active"; }));
    ASSERT_EQ(e->reset({"ops", "operate", "admin"}, "r", "").first, 200u);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(rec_.commands().size(), 1u);
    EXPECT_EQ(state(*e), "idle");
}
