// Host-kept conditions in the durable queue (firelink.conditions/1): the conditions table is written in the same
// transaction as the record that opens or closes a condition, survives reopening the file, is pruned on request, and
// after a SIGKILL at any moment agrees exactly with the records that were committed.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>
#include <msgpack.hpp>

#include <firelink/core/conditions.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/payload.hpp>
#include <firelink/uplink/durable_queue.hpp>
#include <firelink/uplink/record.hpp>

namespace fs = std::filesystem;
namespace core = firelink::core;
using namespace firelink::uplink;
using namespace std::chrono_literals;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/firelink-conditions-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

queue_options options_in(const temp_dir &d) {
    queue_options o;
    o.path = d.path / "queue.db";
    o.gateway_id = "gw-test";
    o.reserve_bytes = 0;
    return o;
}

// Feeds the queue as the runtime and the uplink sink do: the device's list decides the change, and the change goes
// with the event's record.
struct device_feed {
    std::string device = "dev-1";
    core::condition_list list;
    std::uint64_t seq = 0;

    void emit(durable_queue &q, const firelink::event &e) {
        core::accepted_event ev;
        ev.gateway_id = "gw-test";
        ev.plugin_id = "test";
        ev.device_id = device;
        ev.device_class = "vendor:org.test";
        ev.kind = firelink::to_string(e.kind());
        ev.code = e.code();
        ev.sequence = ++seq;
        ev.received_wall = std::chrono::system_clock::now();
        ev.received_monotonic = std::chrono::steady_clock::now();
        ev.payload = e.pack();
        std::string why;
        const auto summary = core::check_event(ev.payload.data(), ev.payload.size(), why);
        ASSERT_TRUE(summary) << why;
        ev.condition = list.apply(device, ev.kind, ev.code, summary->event_id, summary->ends, ev.payload, 1000);
        std::uint32_t pairs = 0;
        auto body = encode_record(ev, pairs);
        ASSERT_TRUE(q.push(lane_of(ev.kind), std::move(body), pairs, {}, true, ev.condition));
    }
    void raise(durable_queue &q, const std::string &id, firelink::event_kind kind = firelink::event_kind::alarm) {
        emit(q, firelink::event{kind, "x.test.zone"}.id(id).message("raise " + id));
    }
    void restore(durable_queue &q, const std::string &id) {
        emit(q, firelink::event{firelink::event_kind::restore, "x.test.zone"}.ends(id));
    }
};

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
        durable_queue q(options_in(d));
        EXPECT_TRUE(q.open_conditions().empty());
        f.raise(q, "a1");
        f.raise(q, "f1", firelink::event_kind::fault);
        f.raise(q, "p1", firelink::event_kind::pre_alarm);
        f.restore(q, "f1");
        f.restore(q, "nobody");  // not open: no change
        ASSERT_TRUE(q.flush());
        EXPECT_EQ(ids_of(q.open_conditions()), (std::vector<std::string>{"a1", "p1"}));
    }
    durable_queue q(options_in(d));
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
    durable_queue q(options_in(d));
    device_feed f;
    f.raise(q, "a1");
    f.raise(q, "a2");
    f.emit(q, firelink::event{firelink::event_kind::alarm, "x.test.zone"}.id("a1").message("again"));
    ASSERT_TRUE(q.flush());
    const auto stored = q.open_conditions();
    ASSERT_EQ(ids_of(stored), (std::vector<std::string>{"a2", "a1"}));
    EXPECT_EQ(firelink::config(stored[1].event.data(), stored[1].event.size()).get<std::string>("message", ""), "again");
}

TEST(ConditionsQueue, TheBoundDropsTheOldestFromTheStoreToo) {
    temp_dir d;
    durable_queue q(options_in(d));
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
        durable_queue q(options_in(d));
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
    durable_queue q(options_in(d));
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
    { durable_queue q(options_in(d)); }
    {
        SQLite::Database db((d.path / "queue.db").string(), SQLite::OPEN_READWRITE);
        db.exec("DROP TABLE conditions");  // a file made before the table existed
    }
    durable_queue q(options_in(d));
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
            durable_queue q(options_in(d));
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
        std::map<std::uint64_t, std::pair<std::string, std::string>> by_device_seq;  // seq -> (event_id, ends)
        {
            SQLite::Database db((d.path / "queue.db").string(), SQLite::OPEN_READONLY);
            SQLite::Statement rows(db, "SELECT id, pairs, body FROM events");
            while (rows.executeStep()) {
                const auto blob = rows.getColumn(2);
                const auto *p = static_cast<const std::uint8_t *>(blob.getBlob());
                const auto bytes = full_record(1, static_cast<std::uint32_t>(rows.getColumn(1).getInt()),
                                               std::vector<std::uint8_t>(p, p + blob.getBytes()));
                auto h = msgpack::unpack(reinterpret_cast<const char *>(bytes.data()), bytes.size());
                std::map<std::string, msgpack::object> rec;
                h.get().convert(rec);
                if (rec.at("origin").as<std::string>() != "driver") continue;  // a gateway event
                std::map<std::string, msgpack::object> ev;
                rec.at("event").convert(ev);
                std::string id = ev.count("event_id") ? ev.at("event_id").as<std::string>() : "";
                std::string ends = ev.count("ends") ? ev.at("ends").as<std::string>() : "";
                by_device_seq[rec.at("device_seq").as<std::uint64_t>()] = {id, ends};
            }
        }
        std::vector<std::string> expected;
        for (const auto &[seq, e] : by_device_seq) {
            const auto &[id, ends] = e;
            auto drop = [&](const std::string &x) { std::erase(expected, x); };
            if (!id.empty()) {
                drop(id);
                expected.push_back(id);
            } else if (!ends.empty()) {
                drop(ends);
            }
        }
        durable_queue q(options_in(d));
        const auto stored = ids_of(q.open_conditions());
        ASSERT_FALSE(by_device_seq.empty()) << "round " << round << ": nothing was committed before the kill";
        EXPECT_EQ(std::set<std::string>(stored.begin(), stored.end()),
                  std::set<std::string>(expected.begin(), expected.end()))
            << "round " << round << ": " << by_device_seq.size() << " records committed";
        EXPECT_EQ(stored, expected) << "round " << round << ": the order differs";
    }
}
