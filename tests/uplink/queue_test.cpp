// The durable queue on real SQLite files: lanes and sequence numbers, epochs, paging, acknowledgement and quarantine,
// eviction and its gap report, backpressure near the cap, a corrupt file, a full database and a full disk.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>

#include <SQLiteCpp/SQLiteCpp.h>
#include <msgpack.hpp>

#include <firelink/payload.hpp>
#include <firelink/uplink/durable_queue.hpp>
#include <firelink/uplink/record.hpp>

#include "accepted_event.hpp"
#include "temp_dir.hpp"
#include "test_queue.hpp"

namespace fs = std::filesystem;
using namespace firelink::uplink;
using namespace std::chrono_literals;

namespace {

using firelink_test::temp_dir;

// A record's pairs as the sink makes them, for an event of this kind with a marker in its message.
std::vector<std::uint8_t> body_of(const std::string &kind, const std::string &marker, std::uint32_t &pairs,
                                  std::size_t pad = 0) {
    firelink::event e{kind == "alarm" ? firelink::event_kind::alarm
                      : kind == "telemetry" ? firelink::event_kind::telemetry
                                            : firelink::event_kind::status,
                      kind == "telemetry" ? "reading" : "gas_level_1"};
    e.message(marker + std::string(pad, 'x'));
    return encode_record(firelink_test::accepted(e), pairs);
}

bool push(durable_queue &q, lane l, const std::string &marker, std::size_t pad = 0) {
    std::uint32_t pairs = 0;
    const char *kind = l == lane::alarm ? "alarm" : l == lane::telemetry ? "telemetry" : "status";
    auto body = body_of(kind, marker, pairs, pad);
    return q.push(l, std::move(body), pairs);
}

// The record as the platform sees it, as an object.
struct decoded {
    msgpack::object_handle h;
    const msgpack::object *get(std::string_view key) const {
        const auto &m = h.get();
        for (std::uint32_t i = 0; i < m.via.map.size; ++i)
            if (m.via.map.ptr[i].key.as<std::string>() == key) return &m.via.map.ptr[i].val;
        return nullptr;
    }
    const msgpack::object *event(std::string_view key) const {
        const auto *e = get("event");
        for (std::uint32_t i = 0; e && i < e->via.map.size; ++i)
            if (e->via.map.ptr[i].key.as<std::string>() == key) return &e->via.map.ptr[i].val;
        return nullptr;
    }
};

decoded decode(const queued_record &r) {
    const auto bytes = full_record(r.seq, r.pairs, r.body);
    return {msgpack::unpack(reinterpret_cast<const char *>(bytes.data()), bytes.size())};
}

std::string message_of(const queued_record &r) { return decode(r).event("message")->as<std::string>(); }

template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

using firelink_test::queue_options_in;

}  // namespace

TEST(Queue, LanesNumberTheirOwnEventsAndSurviveAReopen) {
    temp_dir d;
    std::string epoch;
    {
        durable_queue q(queue_options_in(d));
        EXPECT_TRUE(q.opened().created);
        EXPECT_EQ(q.epoch().size(), 32u);
        epoch = q.epoch();
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(push(q, lane::telemetry, "t" + std::to_string(i)));
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(push(q, lane::alarm, "a" + std::to_string(i)));
        ASSERT_TRUE(q.flush());
        const auto s = q.stats();
        EXPECT_EQ(s.lanes[0].last_seq, 3u);
        EXPECT_EQ(s.lanes[1].last_seq, 0u);
        EXPECT_EQ(s.lanes[2].last_seq, 5u);
        EXPECT_EQ(s.lanes[2].depth, 5u);
        q.ack(lane::telemetry, 5, {});
        ASSERT_TRUE(q.flush());
        EXPECT_EQ(q.stats().lanes[2].depth, 0u);
    }
    durable_queue q(queue_options_in(d));
    EXPECT_FALSE(q.opened().created);
    EXPECT_EQ(q.epoch(), epoch);
    EXPECT_EQ(q.opened().backlog, 3u);
    // An acknowledged seq is never given again: the lane goes on from 6.
    std::uint64_t seq = 0;
    std::uint32_t pairs = 0;
    ASSERT_TRUE(q.push(lane::telemetry, body_of("telemetry", "t5", pairs), pairs, [&](std::uint64_t s) { seq = s; }));
    ASSERT_TRUE(q.flush());
    EXPECT_EQ(seq, 6u);
    auto r = q.open_reader()->read(lane::alarm, 0, 100, 1 << 20);
    ASSERT_EQ(r.size(), 3u);
    EXPECT_EQ(message_of(r[0]), "a0");
    EXPECT_EQ(message_of(r[2]), "a2");
}

TEST(Queue, ANewFileIsANewEpoch) {
    temp_dir d;
    std::string first;
    {
        durable_queue q(queue_options_in(d));
        first = q.epoch();
    }
    fs::remove(d.path() / "queue.db");
    durable_queue q(queue_options_in(d));
    EXPECT_NE(q.epoch(), first);
    EXPECT_TRUE(q.opened().created);
}

TEST(Queue, ReadsInBoundedPagesInSeqOrder) {
    temp_dir d;
    durable_queue q(queue_options_in(d));
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(push(q, lane::event, "e" + std::to_string(i), 100));
    ASSERT_TRUE(q.flush());
    auto reader = q.open_reader();
    auto page = reader->read(lane::event, 0, 10, 1 << 20);
    ASSERT_EQ(page.size(), 10u);
    for (std::size_t i = 0; i < page.size(); ++i) EXPECT_EQ(page[i].seq, i + 1);
    page = reader->read(lane::event, 95, 10, 1 << 20);
    ASSERT_EQ(page.size(), 5u);
    EXPECT_EQ(page.front().seq, 96u);
    // A byte budget: each record is a little over 100 bytes, so 1000 bytes hold fewer than 10.
    page = reader->read(lane::event, 0, 100, 1000);
    EXPECT_GE(page.size(), 1u);
    EXPECT_LT(page.size(), 10u);
    // At least one record, however small the budget.
    EXPECT_EQ(reader->read(lane::event, 0, 100, 1).size(), 1u);
    // The record carries what the platform needs.
    const auto rec = decode(page.front());
    EXPECT_EQ(rec.get("seq")->as<std::uint64_t>(), 1u);
    EXPECT_EQ(rec.get("device")->as<std::string>(), "dev-1");
    EXPECT_EQ(rec.get("class")->as<std::string>(), "gas_shutoff_valve");
    EXPECT_EQ(rec.get("origin")->as<std::string>(), "driver");
    EXPECT_EQ(rec.event("kind")->as<std::string>(), "status");
}

TEST(Queue, AckDeletesThroughAndRejectsGoToTheQuarantine) {
    temp_dir d;
    durable_queue q(queue_options_in(d));
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(push(q, lane::event, "e" + std::to_string(i)));
    ASSERT_TRUE(q.flush());
    q.ack(lane::event, 6, {reject{4, 422, "unknown device"}});
    ASSERT_TRUE(q.flush());
    const auto s = q.stats();
    EXPECT_EQ(s.lanes[1].depth, 4u);
    EXPECT_EQ(s.lanes[1].acked_through, 6u);
    EXPECT_EQ(s.lanes[1].quarantined, 1u);
    EXPECT_EQ(s.quarantine_total, 1u);
    const auto quarantined = q.quarantine(10);
    ASSERT_EQ(quarantined.size(), 1u);
    EXPECT_EQ(quarantined[0].seq, 4u);
    EXPECT_EQ(quarantined[0].status, 422);
    EXPECT_EQ(quarantined[0].reason, "unknown device");
    EXPECT_EQ(quarantined[0].lane, "event");
    const auto rec = msgpack::unpack(reinterpret_cast<const char *>(quarantined[0].record.data()),
                                     quarantined[0].record.size());
    EXPECT_NE(std::string(quarantined[0].record.begin(), quarantined[0].record.end()).find("e3"), std::string::npos);
    const auto rest = q.open_reader()->read(lane::event, 0, 100, 1 << 20);
    ASSERT_EQ(rest.size(), 4u);
    EXPECT_EQ(rest.front().seq, 7u);
}

TEST(Queue, TelemetryIsEvictedOldestFirstAndTheGapIsReported) {
    temp_dir d;
    auto o = queue_options_in(d);
    o.cap_bytes = {1 << 20, 1 << 20, 64 << 10};  // telemetry: 64 KiB
    durable_queue q(o);
    for (int i = 0; i < 2000; ++i) ASSERT_TRUE(push(q, lane::telemetry, "t" + std::to_string(i), 200));
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(push(q, lane::alarm, "a" + std::to_string(i), 200));
    ASSERT_TRUE(q.flush());
    // The gap report waits at most a second after the eviction.
    const auto s = q.stats();
    EXPECT_LE(s.lanes[2].bytes, 64u << 10);
    EXPECT_GT(s.lanes[2].evicted, 1000u);
    EXPECT_EQ(s.lanes[2].depth + s.lanes[2].evicted, 2000u);
    EXPECT_EQ(s.lanes[0].depth, 20u);  // alarms are never evicted
    EXPECT_EQ(s.lanes[0].evicted, 0u);
    auto reader = q.open_reader();
    const auto left = reader->read(lane::telemetry, 0, 10000, 1 << 30);
    ASSERT_FALSE(left.empty());
    EXPECT_EQ(left.back().seq, 2000u);                       // the newest are kept
    EXPECT_EQ(left.front().seq, s.lanes[2].evicted + 1);     // the oldest went first
    // Gap events say how many and which; the last report comes within a second of the last eviction.
    std::uint64_t count = 0, first = 0, last = 0;
    for (int attempt = 0; attempt < 50 && count < s.lanes[2].evicted; ++attempt) {
        std::this_thread::sleep_for(100ms);
        count = first = last = 0;
        for (const auto &r : reader->read(lane::event, 0, 100, 1 << 20)) {
            const auto rec = decode(r);
            ASSERT_EQ(rec.event("kind")->as<std::string>(), "gap");
            EXPECT_EQ(rec.get("device")->as<std::string>(), "gw-test");
            EXPECT_EQ(rec.get("class")->as<std::string>(), "gateway");
            EXPECT_EQ(rec.event("code")->as<std::string>(), "telemetry_evicted");
            const auto *values = rec.event("values");
            for (std::uint32_t i = 0; i < values->via.array.size; ++i) {
                const auto &v = values->via.array.ptr[i];
                std::string name;
                std::uint64_t value = 0;
                for (std::uint32_t k = 0; k < v.via.map.size; ++k) {
                    const auto key = v.via.map.ptr[k].key.as<std::string>();
                    if (key == "name") name = v.via.map.ptr[k].val.as<std::string>();
                    if (key == "value") value = v.via.map.ptr[k].val.as<std::uint64_t>();
                }
                if (name == "count") count += value;
                if (name == "first_seq" && !first) first = value;
                if (name == "last_seq") last = value;
            }
        }
    }
    EXPECT_EQ(count, s.lanes[2].evicted);
    EXPECT_EQ(first, 1u);
    EXPECT_EQ(last, s.lanes[2].evicted);
}

TEST(Queue, NearItsCapTheEventLaneRaisesALocalAlarmAndRefuses) {
    temp_dir d;
    auto o = queue_options_in(d);
    o.cap_bytes = {1 << 20, 32 << 10, 1 << 20};  // event: 32 KiB
    durable_queue q(o);
    int taken = 0;
    while (push(q, lane::event, "e" + std::to_string(taken), 300) && taken < 1000) {
        ++taken;
        if (taken % 20 == 0) {
            ASSERT_TRUE(q.flush());
        }
    }
    ASSERT_TRUE(q.flush());
    EXPECT_LT(taken, 1000);  // it refused before 1000 (each ~0.4 KiB)
    EXPECT_FALSE(q.would_admit(lane::event));
    EXPECT_TRUE(q.would_admit(lane::alarm));  // the alarm lane has its own quota
    EXPECT_GE(q.stats().lanes[1].refused, 1u);
    EXPECT_TRUE(q.stats().lanes[1].near_full);
    // The local alarm went out in the alarm lane.
    auto alarms = q.open_reader()->read(lane::alarm, 0, 100, 1 << 20);
    ASSERT_EQ(alarms.size(), 1u);
    EXPECT_EQ(decode(alarms[0]).event("code")->as<std::string>(), "queue_near_full");
    EXPECT_EQ(decode(alarms[0]).event("event_id")->as<std::string>(), "queue-near-full-event");
    // The platform acknowledges: below 80 % the lane admits again and the alarm is restored.
    q.ack(lane::event, static_cast<std::uint64_t>(taken), {});
    ASSERT_TRUE(push(q, lane::alarm, "poke"));  // any transaction re-evaluates
    ASSERT_TRUE(q.flush());
    EXPECT_TRUE(q.would_admit(lane::event));
    EXPECT_FALSE(q.stats().lanes[1].near_full);
    const auto events = q.open_reader()->read(lane::event, static_cast<std::uint64_t>(taken), 100, 1 << 20);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(decode(events[0]).event("kind")->as<std::string>(), "restore");
    EXPECT_EQ(decode(events[0]).event("ends")->as<std::string>(), "queue-near-full-event");
}

TEST(Queue, ACorruptFileIsMovedAsideAndTheLossReported) {
    temp_dir d;
    std::string old_epoch;
    {
        durable_queue q(queue_options_in(d));
        old_epoch = q.epoch();
        for (int i = 0; i < 200; ++i) ASSERT_TRUE(push(q, lane::event, "e" + std::to_string(i), 500));
        ASSERT_TRUE(q.flush());
    }
    // Scribble over the middle of the file (the header stays, so the damage shows only when pages are read).
    {
        std::fstream f(d.path() / "queue.db", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(8192);
        std::mt19937 rng(7);
        for (int i = 0; i < 40000; ++i) f.put(static_cast<char>(rng()));
    }
    durable_queue q(queue_options_in(d));
    EXPECT_TRUE(q.opened().recovered);
    EXPECT_NE(q.epoch(), old_epoch);
    EXPECT_TRUE(fs::exists(q.opened().moved_to));
    EXPECT_FALSE(q.opened().problem.empty());
    ASSERT_TRUE(q.flush());
    const auto events = q.open_reader()->read(lane::event, 0, 10, 1 << 20);
    ASSERT_EQ(events.size(), 1u);
    const auto rec = decode(events[0]);
    EXPECT_EQ(rec.event("kind")->as<std::string>(), "gap");
    EXPECT_EQ(rec.event("code")->as<std::string>(), "queue_lost");
    EXPECT_NE(rec.event("message")->as<std::string>().find(q.opened().moved_to), std::string::npos);
    // And it goes on working.
    ASSERT_TRUE(push(q, lane::alarm, "after"));
    ASSERT_TRUE(q.flush());
    EXPECT_EQ(q.stats().lanes[0].last_seq, 1u);
}

TEST(Queue, GarbageInsteadOfADatabaseIsMovedAside) {
    temp_dir d;
    std::ofstream(d.path() / "queue.db") << "this is not a database, it is a text file someone put here";
    durable_queue q(queue_options_in(d));
    EXPECT_TRUE(q.opened().recovered);
    EXPECT_TRUE(fs::exists(q.opened().moved_to));
}

TEST(Queue, RefusesAnotherApplicationsDatabase) {
    temp_dir d;
    {
        SQLite::Database db((d.path() / "queue.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db.exec("CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT)");
        db.exec("INSERT INTO accounts(owner) VALUES('someone')");
    }
    try {
        durable_queue q(queue_options_in(d));
        FAIL() << "opened another application's database";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("not a firelink queue"), std::string::npos) << e.what();
    }
    SQLite::Database db((d.path() / "queue.db").string());
    EXPECT_EQ(db.execAndGet("SELECT owner FROM accounts").getString(), "someone");  // untouched
}

TEST(Queue, AQueueOfANewerFormatIsRefusedAndKeptAnOlderOneIsUpgraded) {
    temp_dir d;
    const auto file = (d.path() / "queue.db").string();
    {
        durable_queue q(queue_options_in(d));
        ASSERT_TRUE(push(q, lane::alarm, "waiting"));
        ASSERT_TRUE(q.flush());
    }
    const auto format = [&] { return SQLite::Database(file).execAndGet("PRAGMA user_version").getInt(); };
    EXPECT_EQ(format(), 1);
    SQLite::Database(file, SQLite::OPEN_READWRITE).exec("PRAGMA user_version=0");  // made before formats had numbers
    {
        durable_queue q(queue_options_in(d));
        EXPECT_FALSE(q.opened().recovered);
        EXPECT_EQ(q.stats().lanes[0].depth, 1u);  // its event is still there
    }
    EXPECT_EQ(format(), 1);
    SQLite::Database(file, SQLite::OPEN_READWRITE).exec("PRAGMA user_version=2");  // a later host's
    try {
        durable_queue q(queue_options_in(d));
        FAIL() << "opened a queue of a newer format";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("queue format 2, written by a newer firelink-host; this one reads formats "
                                             "up to 1"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(format(), 2);  // untouched
    EXPECT_FALSE(fs::exists(file + ".corrupt"));
}

TEST(Queue, TheCommandCursorIsDurable) {
    temp_dir d;
    {
        durable_queue q(queue_options_in(d));
        EXPECT_EQ(q.command_cursor(), 0u);
        ASSERT_TRUE(q.set_command_cursor(41));
        ASSERT_TRUE(q.set_command_cursor(42));
    }
    durable_queue q(queue_options_in(d));
    EXPECT_EQ(q.command_cursor(), 42u);
}

// SQLite's max_page_count makes the database "full" exactly as a full disk does (SQLITE_FULL).
TEST(Queue, AFullDatabaseEvictsTelemetryToTakeAlarms) {
    temp_dir d;
    auto o = queue_options_in(d);
    o.max_page_count = 400;  // 1.6 MB with 4 KiB pages
    durable_queue q(o);
    for (int i = 0; i < 6000; ++i) {
        push(q, lane::telemetry, "t" + std::to_string(i), 300);
        if (i % 500 == 0) {
            q.flush();
        }
    }
    ASSERT_TRUE(q.flush(30s));
    const auto before = q.stats();
    EXPECT_GT(before.lanes[2].evicted, 0u) << "the database never filled up";
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(push(q, lane::alarm, "a" + std::to_string(i), 300));
    ASSERT_TRUE(q.flush(30s));
    EXPECT_EQ(q.stats().lanes[0].depth, 50u);
    EXPECT_EQ(q.stats().lanes[0].committed, 50u);
}

// A real small file system: a tmpfs of `size` mounted at `at` for the test's life, unmounted whatever happens. It
// needs root and mount(2); where the sandbox forbids them the test is skipped with the reason (ctest shows it), not
// failed: a red CI on such a machine would land nothing.
struct small_disk {
    fs::path at;
    bool mounted = false;
    std::string problem;
    small_disk(fs::path where, const char *size) : at(std::move(where)) {
        fs::create_directories(at);
        const std::string opts = std::string("size=") + size;
        mounted = ::mount("tmpfs", at.c_str(), "tmpfs", 0, opts.c_str()) == 0;
        if (!mounted) problem = std::string("cannot mount a ") + size + " tmpfs here (" + std::strerror(errno) + ")";
    }
    ~small_disk() {
        if (mounted) ::umount2(at.c_str(), MNT_DETACH);
    }
};

// What holds a small disk: each file's size and the room left, for a failure's message.
std::string disk_usage(const fs::path &dir) {
    std::string out;
    for (const auto &e : fs::directory_iterator(dir)) out += e.path().filename().string() + " " + std::to_string(e.file_size()) + ", ";
    return out + "free " + std::to_string(fs::space(dir).available);
}

// A real full disk: a 4 MiB tmpfs.
TEST(Queue, AFullDiskStillTakesAlarmsFromTheReserve) {
    temp_dir d;
    const small_disk disk(d.path() / "small", "4m");
    if (!disk.mounted) GTEST_SKIP() << disk.problem;
    const auto mnt = disk.at;
    auto o = queue_options_in(d);
    o.path = mnt / "queue.db";
    o.reserve_bytes = 512 << 10;
    o.cap_bytes = {64 << 20, 64 << 20, 64 << 20};  // caps far above the disk: the disk is the limit
    std::uint64_t fires = 0;
    {
        durable_queue q(o);
        ASSERT_TRUE(fs::exists(mnt / "queue.db.reserve"));
        // Fill the disk with events (not telemetry: they cannot be evicted) until it stays full: a checkpoint may give
        // back a few pages, and then the queue rightly takes events again.
        // (flush waits for every event pushed before it, and a full disk holds the last ones in memory: short waits.)
        for (int i = 0; i < 20000; ++i) {
            if (!q.would_admit(lane::event)) {
                q.flush(2s);
                if (q.stats().disk_full) break;
                continue;
            }
            push(q, lane::event, "e" + std::to_string(i), 400);
            if (i % 200 == 0) q.flush(2s);
        }
        ASSERT_TRUE(q.stats().disk_full) << "the disk never filled: " << disk_usage(mnt);
        EXPECT_FALSE(q.would_admit(lane::event));
        EXPECT_TRUE(q.would_admit(lane::alarm));
        EXPECT_TRUE(fs::exists(mnt / "queue.db.reserve"));  // events never take it
        // Alarms until they have used the room left and the reserve was given to them: every one commits.
        const auto alarms_before = q.stats().lanes[0].committed;
        while (fires < 5000 && fs::exists(mnt / "queue.db.reserve")) {
            for (int i = 0; i < 100; ++i) ASSERT_TRUE(push(q, lane::alarm, "fire-" + std::to_string(fires++), 400));
            ASSERT_TRUE(eventually([&] { return q.stats().lanes[0].committed - alarms_before == fires; }, 30s))
                << "alarms wait on a full disk";
        }
        EXPECT_FALSE(fs::exists(mnt / "queue.db.reserve")) << "the reserve was never needed: the disk is not full";
    }
    // Everything committed is there after a restart.
    durable_queue q(o);
    const auto alarms = q.open_reader()->read(lane::alarm, 0, 100000, 1 << 30);
    std::uint64_t found = 0;
    for (const auto &r : alarms) found += message_of(r).rfind("fire-", 0) == 0;
    EXPECT_EQ(found, fires);
}

// The disk fills while the platform is away, then the platform acknowledges everything: the queue gives the space
// back, and every lane is admitted again, with the reserve set aside again. An 8 MiB file system is too small for the
// default 16 MiB reserve: it is cut to an eighth of the disk rather than never made.
TEST(Queue, AFullDiskClearsOnceThePlatformDrainsTheQueue) {
    temp_dir d;
    const small_disk disk(d.path() / "small", "8m");
    if (!disk.mounted) GTEST_SKIP() << disk.problem;
    auto o = queue_options_in(d);
    o.path = disk.at / "queue.db";
    o.reserve_bytes = queue_options{}.reserve_bytes;     // 16 MiB: more than the disk
    o.cap_bytes = {64 << 20, 64 << 20, 64 << 20};         // caps far above the disk: the disk is the limit
    const auto reserve = disk.at / "queue.db.reserve";
    durable_queue q(o);
    ASSERT_TRUE(fs::exists(reserve)) << "no reserve at all on a small disk";
    EXPECT_EQ(fs::file_size(reserve), 1u << 20);           // an eighth of 8 MiB

    // The platform is away: events and telemetry until the disk is full.
    // Until events stay refused for three seconds: the queue gets past its own attempts to make room (cutting the
    // log, evicting telemetry) and the disk really holds no more.
    for (int i = 0, refused = 0; i < 60000 && refused < 3;) {
        if (!q.would_admit(lane::event)) {
            std::this_thread::sleep_for(1s);
            ++refused;
            continue;
        }
        refused = 0;
        push(q, i % 3 ? lane::event : lane::telemetry, "e" + std::to_string(i), 400);
        if (++i % 200 == 0) q.flush(2s);  // short: a full disk holds the last events in memory
    }
    ASSERT_TRUE(q.stats().disk_full) << "the disk never filled";
    EXPECT_FALSE(q.would_admit(lane::event));
    EXPECT_FALSE(q.would_admit(lane::telemetry));
    ASSERT_TRUE(q.would_admit(lane::alarm));
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(push(q, lane::alarm, "fire-" + std::to_string(i), 200));
    EXPECT_TRUE(eventually([&] { return q.stats().lanes[0].committed == 10; }, 10s)) << "alarms wait on a full disk";

    // The platform returns and acknowledges whatever is committed, as its senders would, until nothing waits.
    const auto t0 = std::chrono::steady_clock::now();
    queue_stats s;
    for (;;) {
        s = q.stats();
        const bool drained = s.pending == 0 && s.lanes[0].depth == 0 && s.lanes[1].depth == 0 && s.lanes[2].depth == 0;
        if (drained && !s.disk_full) break;
        ASSERT_LT(std::chrono::steady_clock::now() - t0, 60s)
            << "after the drain: disk_full " << s.disk_full << ", pending " << s.pending << ", depths "
            << s.lanes[0].depth << "/" << s.lanes[1].depth << "/" << s.lanes[2].depth << "; " << disk_usage(disk.at);
        for (auto l : all_lanes) q.ack(l, s.lanes[static_cast<int>(l)].last_seq, {});
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(s.lanes[0].committed, 10u);  // the alarms taken while the disk was full
    // Every lane takes events again, and commits them.
    for (auto l : all_lanes) EXPECT_TRUE(q.would_admit(l)) << to_string(l);
    const auto before = q.stats();
    for (auto l : all_lanes)
        for (int i = 0; i < 100; ++i) ASSERT_TRUE(push(q, l, "after-" + std::to_string(i), 400)) << to_string(l);
    ASSERT_TRUE(q.flush(30s));
    const auto after = q.stats();
    for (int i = 0; i < lane_count; ++i) EXPECT_EQ(after.lanes[i].committed - before.lanes[i].committed, 100u) << i;
    EXPECT_FALSE(after.disk_full);
    EXPECT_TRUE(eventually([&] { return fs::exists(reserve); }, 10s)) << "the reserve was not set aside again; "
                                                                      << disk_usage(disk.at);
}

// Checkpoints keep the write-ahead log bounded while events flow in and are acknowledged.
TEST(Queue, TheWriteAheadLogStaysBounded) {
    temp_dir d;
    durable_queue q(queue_options_in(d));
    std::uint64_t acked = 0;
    for (int round = 0; round < 60; ++round) {
        for (int i = 0; i < 1000; ++i) ASSERT_TRUE(push(q, lane::telemetry, "t", 300));
        ASSERT_TRUE(q.flush(30s));
        acked += 1000;
        q.ack(lane::telemetry, acked, {});
    }
    ASSERT_TRUE(q.flush(30s));
    // 60000 records of ~0.4 KiB went through, twice (insert, delete): ~50 MB of log. It restarts after checkpoints, so
    // it never holds more than 16 MB and a group.
    const auto wal = fs::file_size(d.path() / "queue.db-wal");
    EXPECT_LT(wal, 24u << 20) << "the WAL grew to " << wal << " bytes";
    EXPECT_EQ(q.stats().lanes[2].depth, 0u);
}

// quick_check reads the whole file: a large queue closed cleanly skips it, one left by a crash never does.
TEST(Queue, OnlyAQueueLeftByACrashIsReadWholeAtStart) {
    temp_dir d;
    auto o = queue_options_in(d);
    o.check_max_bytes = 0;  // every file counts as large
    {
        durable_queue q(o);
        for (int i = 0; i < 100; ++i) ASSERT_TRUE(push(q, lane::event, "e" + std::to_string(i)));
        ASSERT_TRUE(q.flush());
    }
    {
        durable_queue q(o);
        EXPECT_FALSE(q.opened().checked);  // closed cleanly
        EXPECT_EQ(q.opened().backlog, 100u);
    }
    {
        // What a crash leaves: the flag the open set, never reset by a clean close.
        SQLite::Database db((d.path() / "queue.db").string(), SQLite::OPEN_READWRITE);
        db.exec("UPDATE meta SET value = '0' WHERE key = 'clean_close'");
    }
    durable_queue q(o);
    EXPECT_TRUE(q.opened().checked);
    EXPECT_EQ(q.opened().backlog, 100u);
    // And a small file is always checked.
    EXPECT_TRUE(durable_queue(queue_options_in(temp_dir{})).opened().created);
}

namespace {

// The gateway's events of the event lane as "kind code" (restores: "restore ends"), in order.
std::vector<std::string> gateway_events_of(const durable_queue &q) {
    std::vector<std::string> out;
    for (const auto &r : q.open_reader()->read(lane::event, 0, 1000, 1 << 30)) {
        const auto rec = decode(r);
        if (rec.get("class")->as<std::string>() != "gateway") continue;
        const auto kind = rec.event("kind")->as<std::string>();
        out.push_back(kind + " " + (kind == "restore" ? rec.event("ends") : rec.event("code"))->as<std::string>());
    }
    return out;
}

// Waits (a hang guard, not a timing) until the queue has committed what `done` looks for.
template <typename Done>
bool eventually(durable_queue &q, Done done) {
    for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end;) {
        q.flush();
        if (done()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return false;
}

}  // namespace

// No room for the reserve (here: something else sits where its file goes) is a fault of the gateway at the platform,
// restored once the reserve is held again; the host's local record gets both (on_gateway_event).
TEST(Queue, WithoutItsAlarmReserveTheGatewayHasAFaultUntilItIsBack) {
    temp_dir d;
    auto o = queue_options_in(d);
    o.reserve_bytes = 64 << 10;
    std::mutex m;
    std::vector<std::string> recorded;
    o.on_gateway_event = [&](const firelink::core::accepted_event &ev) {
        std::lock_guard lock(m);
        recorded.push_back(ev.device_id + " " + ev.device_class + " " + ev.kind + " #" + std::to_string(ev.sequence));
    };
    const auto reserve = d.path() / "queue.db.reserve";
    fs::create_directories(reserve);
    durable_queue q(o);
    EXPECT_FALSE(q.stats().reserve_held);
    ASSERT_TRUE(eventually(q, [&] { return gateway_events_of(q).size() == 1; }));
    EXPECT_EQ(gateway_events_of(q), std::vector<std::string>{"fault alarm_reserve_missing"});
    const auto fault = decode(q.open_reader()->read(lane::event, 0, 1, 1 << 20).at(0));
    EXPECT_EQ(fault.event("event_id")->as<std::string>(), "alarm-reserve-missing");
    EXPECT_EQ(fault.event("severity")->as<std::string>(), "major");

    fs::remove(reserve);  // the writer makes the file at its next check
    ASSERT_TRUE(eventually(q, [&] { return gateway_events_of(q).size() == 2; }));
    EXPECT_EQ(gateway_events_of(q),
              (std::vector<std::string>{"fault alarm_reserve_missing", "restore alarm-reserve-missing"}));
    EXPECT_TRUE(q.stats().reserve_held);
    EXPECT_TRUE(fs::is_regular_file(reserve));
    EXPECT_GE(fs::file_size(reserve), o.reserve_bytes);
    std::lock_guard lock(m);
    EXPECT_EQ(recorded, (std::vector<std::string>{"gw-test gateway fault #1", "gw-test gateway restore #2"}));
}

// What the platform was told survives a restart: a fault still open is neither raised again nor forgotten.
TEST(Queue, TheReserveFaultIsRestoredAfterARestartAndNotRaisedTwice) {
    temp_dir d;
    auto o = queue_options_in(d);
    o.reserve_bytes = 64 << 10;
    const auto reserve = d.path() / "queue.db.reserve";
    fs::create_directories(reserve);
    {
        durable_queue q(o);
        ASSERT_TRUE(eventually(q, [&] { return gateway_events_of(q).size() == 1; }));
    }
    {
        durable_queue q(o);  // still missing: nothing new
        push(q, lane::event, "poke");
        ASSERT_TRUE(q.flush());
        std::this_thread::sleep_for(100ms);  // several checks: none may raise the fault again
        ASSERT_TRUE(q.flush());
        EXPECT_EQ(gateway_events_of(q), std::vector<std::string>{"fault alarm_reserve_missing"});
    }
    fs::remove(reserve);
    durable_queue q(o);  // the reserve is made at open: the restore follows
    EXPECT_TRUE(q.stats().reserve_held);
    ASSERT_TRUE(eventually(q, [&] { return gateway_events_of(q).size() == 2; }));
    EXPECT_EQ(gateway_events_of(q).back(), "restore alarm-reserve-missing");
}

// With a reserve in place, or none asked for, there is nothing to report.
TEST(Queue, AHeldReserveRaisesNothing) {
    for (const std::uint64_t bytes : {std::uint64_t{0}, std::uint64_t{64} << 10}) {
        temp_dir d;
        auto o = queue_options_in(d);
        o.reserve_bytes = bytes;
        durable_queue q(o);
        ASSERT_TRUE(push(q, lane::event, "poke"));
        ASSERT_TRUE(q.flush());
        std::this_thread::sleep_for(100ms);
        ASSERT_TRUE(q.flush());
        EXPECT_TRUE(q.stats().reserve_held);
        EXPECT_TRUE(gateway_events_of(q).empty());
    }
}
