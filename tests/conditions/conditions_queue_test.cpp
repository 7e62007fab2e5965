// Host-kept conditions in the durable queue (firelink.conditions/1): the conditions table is written in the same
// transaction as the record that opens or closes a condition, survives reopening the file, is pruned on request, and
// after a SIGKILL at any moment agrees exactly with the records that were committed.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include <SQLiteCpp/SQLiteCpp.h>
#include <msgpack.hpp>

#include <firelink/core/conditions.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/payload.hpp>
#include <firelink/pipeline/sinks.hpp>
#include <firelink/uplink/durable_queue.hpp>
#include <firelink/uplink/record.hpp>

#include "accepted_event.hpp"
#include "temp_dir.hpp"
#include "test_queue.hpp"

namespace fs = std::filesystem;
namespace core = firelink::core;
using namespace firelink::uplink;
using namespace std::chrono_literals;

namespace {

using firelink_test::temp_dir;

using firelink_test::queue_options_in;

// Feeds the queue as the runtime and the uplink sink do: the device's list decides the change, and the change goes
// with the event's record.
struct device_feed {
    std::string device = "dev-1";
    core::condition_list list;
    std::uint64_t seq = 0;

    void emit(durable_queue &q, const firelink::event &e) {
        auto ev = firelink_test::accepted(e, "vendor:org.test", device, ++seq);
        const auto summary = core::check_event(ev.payload.data(), ev.payload.size());
        ASSERT_TRUE(summary) << summary;
        ev.condition = list.apply(device, ev.kind, ev.code, summary->event_id, summary->ends, ev.payload, 1000);
        std::uint32_t pairs = 0;
        auto body = encode_record(ev, pairs);
        q.push_admitted(lane_of(ev.kind), std::move(body), pairs, {}, ev.condition);
    }
    void raise(durable_queue &q, const std::string &id, firelink::event_kind kind = firelink::event_kind::alarm) {
        emit(q, firelink::event{kind, "x.test.zone"}.id(id).message("raise " + id));
    }
    void restore(durable_queue &q, const std::string &id) {
        emit(q, firelink::event{firelink::event_kind::restore, "x.test.zone"}.ends(id));
    }
};

// One committed record as the platform will receive it, decoded.
struct committed {
    lane l;
    std::uint64_t seq;
    std::map<std::string, msgpack::object> record, event;
    std::shared_ptr<msgpack::object_handle> handle;  // owns what the maps point into

    std::string event_text(const char *key) const { return event.count(key) ? event.at(key).as<std::string>() : ""; }
    bool rereport() const { return record.count("rereport") && record.at("rereport").as<bool>(); }
};

// Every record in the queue file, in (lane, seq) order.
std::vector<committed> committed_records(const fs::path &file) {
    std::vector<committed> out;
    SQLite::Database db(file.string(), SQLite::OPEN_READONLY);
    SQLite::Statement rows(db, "SELECT id, pairs, body FROM events ORDER BY id");
    while (rows.executeStep()) {
        const auto id = static_cast<std::uint64_t>(rows.getColumn(0).getInt64());
        const auto blob = rows.getColumn(2);
        const auto *p = static_cast<const std::uint8_t *>(blob.getBlob());
        committed c{static_cast<lane>(id >> 56), id & ((std::uint64_t{1} << 56) - 1), {}, {}, nullptr};
        const auto bytes = full_record(c.seq, static_cast<std::uint32_t>(rows.getColumn(1).getInt()),
                                       std::vector<std::uint8_t>(p, p + blob.getBytes()));
        c.handle = std::make_shared<msgpack::object_handle>(
            msgpack::unpack(reinterpret_cast<const char *>(bytes.data()), bytes.size()));
        c.handle->get().convert(c.record);
        c.record.at("event").convert(c.event);
        out.push_back(std::move(c));
    }
    return out;
}

// The `repeats` of a record: (epoch, lane, seq), or empty.
std::optional<std::tuple<std::string, std::string, std::uint64_t>> repeats_of(const committed &c) {
    if (!c.record.count("repeats")) return std::nullopt;
    std::map<std::string, msgpack::object> r;
    c.record.at("repeats").convert(r);
    return std::tuple{r.at("epoch").as<std::string>(), r.at("lane").as<std::string>(), r.at("seq").as<std::uint64_t>()};
}

std::vector<std::string> ids_of(const std::vector<core::open_condition> &list, const std::string &device = "dev-1") {
    std::vector<std::string> out;
    for (const auto &c : list)
        if (c.device_id == device) out.push_back(c.event_id);
    return out;
}

}  // namespace

TEST(ConditionsQueue, ARaiseIsStoredARestoreDeletesItAndBothSurviveAReopen) {
    temp_dir d;
    device_feed f;
    {
        durable_queue q(queue_options_in(d));
        EXPECT_TRUE(q.open_conditions().empty());
        f.raise(q, "a1");
        f.raise(q, "f1", firelink::event_kind::fault);
        f.raise(q, "p1", firelink::event_kind::pre_alarm);
        f.restore(q, "f1");
        f.restore(q, "nobody");  // not open: no change
        ASSERT_TRUE(q.flush());
        EXPECT_EQ(ids_of(q.open_conditions()), (std::vector<std::string>{"a1", "p1"}));
    }
    durable_queue q(queue_options_in(d));
    const auto stored = q.open_conditions();
    ASSERT_EQ(ids_of(stored), (std::vector<std::string>{"a1", "p1"}));
    EXPECT_EQ(stored[0].kind, "alarm");
    EXPECT_EQ(stored[0].code, "x.test.zone");
    EXPECT_EQ(stored[0].raised_wall_ms, 1000);
    const auto raised = firelink::event{firelink::event_kind::alarm, "x.test.zone"}.id("a1").message("raise a1").pack();
    EXPECT_EQ(stored[0].event, raised);
    EXPECT_EQ(stored[1].kind, "pre_alarm");
    // The restore after the reopen ends what the earlier run raised.
    f.list.load(stored);
    f.restore(q, "a1");
    ASSERT_TRUE(q.flush());
    EXPECT_EQ(ids_of(q.open_conditions()), (std::vector<std::string>{"p1"}));
}

TEST(ConditionsQueue, ARaiseWithAnOpenIdReplacesItAsTheNewest) {
    temp_dir d;
    durable_queue q(queue_options_in(d));
    device_feed f;
    f.raise(q, "a1");
    f.raise(q, "a2");
    f.emit(q, firelink::event{firelink::event_kind::alarm, "x.test.zone"}.id("a1").message("again"));
    ASSERT_TRUE(q.flush());
    const auto stored = q.open_conditions();
    ASSERT_EQ(ids_of(stored), (std::vector<std::string>{"a2", "a1"}));
    EXPECT_EQ(firelink::config(stored[1].event.data(), stored[1].event.size()).get<std::string>("message", ""), "again");
}

// A re-report (the same id, kind and code raised again while open) is committed like any event, marked, and names the
// key of the record that first raised the condition, through any number of re-reports and a reopen of the file (a
// host restart); the stored condition stays one, with the newest event.
TEST(ConditionsQueue, ARereportIsMarkedAndNamesTheRecordThatFirstRaisedTheCondition) {
    temp_dir d;
    device_feed f;
    std::string epoch;
    {
        durable_queue q(queue_options_in(d));
        epoch = q.epoch();
        f.raise(q, "a1");                               // alarm seq 1
        f.raise(q, "a2");                               // alarm seq 2
        f.raise(q, "f1", firelink::event_kind::fault);  // event seq 1
        // Alarm seq 3 re-reports seq 1, with news; event seq 2 re-reports event seq 1.
        f.emit(q, firelink::event{firelink::event_kind::alarm, "x.test.zone"}.id("a1").message("again").level(
                      firelink::severity::major));
        f.raise(q, "f1", firelink::event_kind::fault);
        ASSERT_TRUE(q.flush());
    }
    {
        durable_queue q(queue_options_in(d));  // a host restart: the list comes back from the file
        f.list.load(q.open_conditions());
        f.raise(q, "a1");  // alarm seq 4, re-reports seq 1 still
        f.emit(q, firelink::event{firelink::event_kind::alarm, "x.test.other"}.id("a2"));  // seq 5: another code
        f.raise(q, "a2");  // alarm seq 6: the code changed back, so a new condition again
        f.raise(q, "a2");  // alarm seq 7, re-reports seq 6
        ASSERT_TRUE(q.flush());
        const auto stored = q.open_conditions();
        EXPECT_EQ(ids_of(stored), (std::vector<std::string>{"f1", "a1", "a2"}));
    }
    using key = std::tuple<std::string, std::string, std::uint64_t>;
    std::map<std::pair<lane, std::uint64_t>, std::optional<key>> got;
    for (const auto &c : committed_records(d.path() / "queue.db")) {
        EXPECT_EQ(c.rereport(), repeats_of(c).has_value()) << to_string(c.l) << " " << c.seq;
        got[{c.l, c.seq}] = repeats_of(c);
    }
    const std::map<std::pair<lane, std::uint64_t>, std::optional<key>> expected{
        {{lane::alarm, 1}, std::nullopt},
        {{lane::alarm, 2}, std::nullopt},
        {{lane::alarm, 3}, key{epoch, "alarm", 1}},
        {{lane::alarm, 4}, key{epoch, "alarm", 1}},
        {{lane::alarm, 5}, std::nullopt},
        {{lane::alarm, 6}, std::nullopt},
        {{lane::alarm, 7}, key{epoch, "alarm", 6}},
        {{lane::event, 1}, std::nullopt},
        {{lane::event, 2}, key{epoch, "event", 1}},
    };
    EXPECT_EQ(got, expected);
}

// A queue file whose conditions table predates the first record's key gets the columns at open; its old rows have
// no key, so their re-reports are marked but name nothing.
TEST(ConditionsQueue, AConditionsTableWithoutTheFirstRecordGetsItAtOpen) {
    temp_dir d;
    device_feed f;
    { durable_queue q(queue_options_in(d)); }
    {
        SQLite::Database db((d.path() / "queue.db").string(), SQLite::OPEN_READWRITE);
        db.exec("DROP TABLE conditions");
        db.exec("CREATE TABLE conditions(device TEXT NOT NULL, event_id TEXT NOT NULL, change INTEGER NOT NULL, kind "
                "TEXT NOT NULL, code TEXT NOT NULL, raised_wall_ms INTEGER NOT NULL, event BLOB NOT NULL, "
                "PRIMARY KEY(device, event_id))");
        const auto raised = firelink::event{firelink::event_kind::alarm, "x.test.zone"}.id("old").pack();
        SQLite::Statement put(db, "INSERT INTO conditions VALUES('dev-1', 'old', 1, 'alarm', 'x.test.zone', 5, ?)");
        put.bind(1, raised.data(), static_cast<int>(raised.size()));
        put.exec();
    }
    durable_queue q(queue_options_in(d));
    f.list.load(q.open_conditions());
    ASSERT_EQ(f.list.size(), 1u);
    f.raise(q, "old");  // alarm seq 1: a re-report of a row without a key
    f.raise(q, "new");  // alarm seq 2
    f.raise(q, "new");  // alarm seq 3, re-reports seq 2
    ASSERT_TRUE(q.flush());
    const auto records = committed_records(d.path() / "queue.db");
    ASSERT_EQ(records.size(), 3u);
    EXPECT_TRUE(records[0].rereport());
    EXPECT_FALSE(repeats_of(records[0]));
    EXPECT_FALSE(records[1].rereport());
    EXPECT_EQ(repeats_of(records[2]), (std::tuple<std::string, std::string, std::uint64_t>{q.epoch(), "alarm", 2}));
}

// The JSON-lines record (stdout, jsonl sinks) carries the mark too; it has no lane key to name.
TEST(ConditionsQueue, TheJsonRecordOfARereportIsMarked) {
    core::condition_list list;
    core::accepted_event ev;
    ev.device_id = "dev-1";
    ev.kind = "alarm";
    ev.payload = firelink::event{firelink::event_kind::alarm, "x.test.zone"}.id("a1").pack();
    ev.condition = list.apply("dev-1", "alarm", "x.test.zone", "a1", "", ev.payload, 1);
    EXPECT_EQ(firelink::pipeline::record_json(ev).find("rereport"), std::string::npos);
    ev.condition = list.apply("dev-1", "alarm", "x.test.zone", "a1", "", ev.payload, 2);
    EXPECT_NE(firelink::pipeline::record_json(ev).find(R"("origin":"driver","rereport":true,"received":)"),
              std::string::npos)
        << firelink::pipeline::record_json(ev);
}

TEST(ConditionsQueue, TheBoundDropsTheOldestFromTheStoreToo) {
    temp_dir d;
    durable_queue q(queue_options_in(d));
    device_feed f;
    const auto n = core::condition_list::max_open + 10;
    for (std::size_t i = 0; i < n; ++i) f.raise(q, "a" + std::to_string(i));
    ASSERT_TRUE(q.flush());
    const auto ids = ids_of(q.open_conditions());
    ASSERT_EQ(ids.size(), core::condition_list::max_open);
    EXPECT_EQ(ids.front(), "a10");
    EXPECT_EQ(ids.back(), "a" + std::to_string(n - 1));
    EXPECT_EQ(f.list.dropped(), 10u);
    // The events themselves were all committed: only the host's memory of the oldest is gone.
    EXPECT_EQ(q.stats().lanes[static_cast<int>(lane::alarm)].last_seq, n);
}

// Alarms commit ahead of the event lane. A restore (event lane) followed by a new raise of the same id (alarm lane)
// may commit in the other order; the raise is the newer change and must stay.
TEST(ConditionsQueue, ALateCommitNeverUndoesANewerChange) {
    temp_dir d;
    for (int round = 0; round < 20; ++round) {
        durable_queue q(queue_options_in(d));
        device_feed f;
        f.device = "dev-" + std::to_string(round);
        f.raise(q, "x", firelink::event_kind::fault);  // event lane
        for (int i = 0; i < 50; ++i) f.emit(q, firelink::event{firelink::event_kind::status, "x.test.s"});
        f.restore(q, "x");                             // event lane, behind the status events
        f.raise(q, "x");                               // alarm lane: overtakes them
        ASSERT_TRUE(q.flush());
        EXPECT_EQ(ids_of(q.open_conditions(), f.device), (std::vector<std::string>{"x"})) << "round " << round;
    }
}

TEST(ConditionsQueue, ForgetDeletesTheDevicesNamedOnly) {
    temp_dir d;
    durable_queue q(queue_options_in(d));
    device_feed a, b;
    a.device = "gone";
    b.device = "kept";
    a.raise(q, "a1");
    b.raise(q, "b1");
    ASSERT_TRUE(q.flush());
    q.forget_conditions({"gone"});
    ASSERT_TRUE(q.flush());
    const auto stored = q.open_conditions();
    EXPECT_TRUE(ids_of(stored, "gone").empty());
    EXPECT_EQ(ids_of(stored, "kept"), (std::vector<std::string>{"b1"}));
}

TEST(ConditionsQueue, AQueueFileWithoutTheTableGetsItAtOpen) {
    temp_dir d;
    { durable_queue q(queue_options_in(d)); }
    {
        SQLite::Database db((d.path() / "queue.db").string(), SQLite::OPEN_READWRITE);
        db.exec("DROP TABLE conditions");  // a file made before the table existed
    }
    durable_queue q(queue_options_in(d));
    device_feed f;
    f.raise(q, "a1");
    ASSERT_TRUE(q.flush());
    EXPECT_EQ(ids_of(q.open_conditions()), (std::vector<std::string>{"a1"}));
}

// A process that raises and restores as fast as it can is killed at a random moment; the stored list must be exactly
// what the committed records say is open: every raise committed and not followed by a committed restore.
TEST(ConditionsQueue, AfterASigkillTheStoredListAgreesWithTheCommittedRecords) {
    for (int round = 0; round < 4; ++round) {
        temp_dir d;
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            durable_queue q(queue_options_in(d));
            device_feed f;
            for (std::uint64_t i = 0;; ++i) {
                f.raise(q, "a" + std::to_string(i % 40));  // ids reused: raises replace, restores end
                if (i % 3 == 0) f.restore(q, "a" + std::to_string((i * 7) % 40));
                if (i % 64 == 0) std::this_thread::sleep_for(1ms);
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(150 + 100 * round));
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);

        // What the committed records say, replayed in the order the device emitted them (its seq).
        struct emitted {
            std::string id, ends;
            std::uint64_t alarm_seq = 0;
            std::optional<std::uint64_t> repeats;
        };
        std::map<std::uint64_t, emitted> by_device_seq;
        for (const auto &c : committed_records(d.path() / "queue.db")) {
            if (c.record.at("origin").as<std::string>() != "driver") continue;  // a gateway event
            emitted e{c.event_text("event_id"), c.event_text("ends"), c.l == lane::alarm ? c.seq : 0, std::nullopt};
            if (const auto r = repeats_of(c)) e.repeats = std::get<2>(*r);
            by_device_seq[c.record.at("device_seq").as<std::uint64_t>()] = e;
        }
        std::vector<std::string> expected;
        // Open id -> the alarm seq of the raise that opened it. A re-report must name that raise: never one before a
        // committed restore of the id. (A raise that names nothing may follow a restore the kill left uncommitted.)
        std::map<std::string, std::uint64_t> first;
        std::size_t rereports = 0;
        for (const auto &[seq, e] : by_device_seq) {
            if (!e.id.empty()) {
                if (e.repeats) {
                    ++rereports;
                    EXPECT_EQ(first.count(e.id) ? std::optional(first.at(e.id)) : std::nullopt, e.repeats)
                        << "round " << round << ": device seq " << seq << " re-reports " << e.id;
                } else {
                    first[e.id] = e.alarm_seq;
                }
                std::erase(expected, e.id);
                expected.push_back(e.id);
            } else if (!e.ends.empty()) {
                std::erase(expected, e.ends);
                first.erase(e.ends);
            }
        }
        EXPECT_GT(rereports, 0u) << "round " << round << ": the ids are reused, so some raises must be re-reports";
        durable_queue q(queue_options_in(d));
        const auto stored = ids_of(q.open_conditions());
        ASSERT_FALSE(by_device_seq.empty()) << "round " << round << ": nothing was committed before the kill";
        EXPECT_EQ(std::set<std::string>(stored.begin(), stored.end()),
                  std::set<std::string>(expected.begin(), expected.end()))
            << "round " << round << ": " << by_device_seq.size() << " records committed";
        EXPECT_EQ(stored, expected) << "round " << round << ": the order differs";
    }
}
