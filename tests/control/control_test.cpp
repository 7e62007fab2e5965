// The control plane's rules (select-before-operate, its reason codes, modes, the platform's policy, interlocks) and
// the audit chain on a real SQLite file: appended, listed, pruned, verified, and caught when one byte is changed.
#include <chrono>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>
#include <SQLiteCpp/SQLiteCpp.h>

#include <firelink/control/audit_log.hpp>
#include <firelink/control/control_plane.hpp>

namespace fs = std::filesystem;
using namespace firelink::control;
using nlohmann::json;

namespace {

// On tmpfs when there is one: every append is an fsync (synchronous=FULL), which tmpfs makes free.
fs::path scratch() { return fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path(); }

struct temp_db {
    fs::path dir = scratch() / ("control-test-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::path file = dir / "queue.db";
    temp_db() { fs::create_directories(dir); }
    ~temp_db() { fs::remove_all(dir); }
};

const actor li{"li", "operate", "admin"};
const actor wang{"wang", "operate", "admin"};
const actor boss{"chief", "admin", "admin"};
const actor reader{"ro", "read", "admin"};
const actor platform{"platform", "platform", "platform"};

command_facts closes() {
    command_facts f;
    f.actuates = true;
    f.restores = false;
    return f;
}
command_facts opens() {
    command_facts f;
    f.actuates = true;
    f.restores = true;
    return f;
}
command_facts reads() {
    command_facts f;
    f.actuates = false;
    f.restores = false;
    return f;
}

struct plane_fixture : ::testing::Test {
    temp_db db;
    std::shared_ptr<audit_log> audit = std::make_shared<audit_log>(db.file, 10'000);
    std::vector<audit_entry> upstream;
    control_options options() {
        control_options o;
        o.select_timeout = std::chrono::milliseconds(200);
        o.platform_may = {"close_valve"};
        return o;
    }
    control_plane plane{options(), audit, [this](const audit_entry &e) { upstream.push_back(e); }};
};

}  // namespace

TEST_F(plane_fixture, AnActuatingCommandNeedsASelectionByTheSamePrincipal) {
    EXPECT_EQ(plane.operate(li, "v1", "close_valve", json::object(), "c1", "", closes()).why, reason::not_selected);
    const auto s = plane.select(li, "v1", "close_valve", json::object(), closes());
    ASSERT_TRUE(s.granted()) << s.detail;
    EXPECT_EQ(plane.select(wang, "v1", "close_valve", json::object(), closes()).why, reason::selected_by_other);
    EXPECT_EQ(plane.operate(wang, "v1", "close_valve", json::object(), "c2", "", closes()).why,
              reason::selected_by_other);
    const auto op = plane.operate(li, "v1", "close_valve", json::object(), "c3", s.select_id, closes());
    EXPECT_TRUE(op.granted()) << op.detail;
    // Used up: a second operate needs a second select.
    plane.result("v1", "c3", true, "the valve reads closed", json::object());
    EXPECT_EQ(plane.operate(li, "v1", "close_valve", json::object(), "c4", "", closes()).why, reason::not_selected);
}

TEST_F(plane_fixture, ASelectionExpires) {
    ASSERT_TRUE(plane.select(li, "v1", "close_valve", json::object(), closes()).granted());
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the fixture's selections live 200 ms
    EXPECT_EQ(plane.operate(li, "v1", "close_valve", json::object(), "c1", "", closes()).why, reason::select_expired);
    // An expired selection holds nobody back.
    EXPECT_TRUE(plane.select(wang, "v1", "close_valve", json::object(), closes()).granted());
}

TEST_F(plane_fixture, TheOperateMustBeWhatWasSelected) {
    const auto s = plane.select(li, "v1", "close_valve", json::object(), closes());
    EXPECT_EQ(plane.operate(li, "v1", "close_valve", json{{"x", 1}}, "c1", "", closes()).why, reason::not_selected);
    const auto s2 = plane.select(li, "v1", "close_valve", json::object(), closes());
    EXPECT_EQ(plane.operate(li, "v1", "close_valve", json::object(), "c2", s.select_id, closes()).why,
              reason::not_selected);  // a stale select_id
    (void)s2;
}

TEST_F(plane_fixture, AnActiveCommandBlocksTheNextUntilItsResult) {
    ASSERT_TRUE(plane.select(li, "v1", "close_valve", json::object(), closes()).granted());
    ASSERT_TRUE(plane.operate(li, "v1", "close_valve", json::object(), "c1", "", closes()).granted());
    EXPECT_EQ(plane.select(li, "v1", "close_valve", json::object(), closes()).why, reason::already_active);
    plane.result("v1", "c1", true, "closed", json::object());
    EXPECT_TRUE(plane.select(li, "v1", "close_valve", json::object(), closes()).granted());
}

TEST_F(plane_fixture, RestoringIsInterlockedWhileInAlarmAndLocalModeStopsRemoteMoves) {
    auto f = opens();
    f.in_alarm = true;
    EXPECT_EQ(plane.select(li, "v1", "open_valve", json::object(), f).why, reason::interlocked);
    EXPECT_EQ(plane.set_mode(li, "v1", "local", "maintenance").why, reason::not_authorized);
    ASSERT_TRUE(plane.set_mode(boss, "v1", "local", "maintenance").granted());
    EXPECT_EQ(plane.select(li, "v1", "close_valve", json::object(), closes()).why, reason::local_mode);
    // Reading is not moving: a command that does not actuate runs in local mode, without a selection.
    EXPECT_TRUE(plane.operate(li, "v1", "read_status", json::object(), "c1", "", reads()).granted());
    // The mode survives a restart: a new plane on the same file.
    control_plane again{options(), audit};
    EXPECT_EQ(again.mode("v1"), "local");
    ASSERT_TRUE(again.set_mode(boss, "v1", "remote", "").granted());
    EXPECT_TRUE(again.select(li, "v1", "close_valve", json::object(), closes()).granted());
}

TEST_F(plane_fixture, ThePlatformMayRunOnlyWhatTheSiteLists) {
    EXPECT_TRUE(plane.direct_operate(platform, "v1", "close_valve", json::object(), "p1", closes()).granted());
    plane.result("v1", "p1", true, "closed", json::object());
    const auto open = plane.direct_operate(platform, "v1", "open_valve", json::object(), "p2", opens());
    EXPECT_EQ(open.why, reason::not_authorized);
    EXPECT_NE(open.detail.find("platform_may"), std::string::npos) << open.detail;
    // An operator's selection holds the platform off too.
    ASSERT_TRUE(plane.select(li, "v1", "close_valve", json::object(), closes()).granted());
    EXPECT_EQ(plane.direct_operate(platform, "v1", "close_valve", json::object(), "p3", closes()).why,
              reason::selected_by_other);
}

TEST_F(plane_fixture, AReadRoleAndAnUndeclaredCommandAreRefused) {
    EXPECT_EQ(plane.select(reader, "v1", "close_valve", json::object(), closes()).why, reason::not_authorized);
    auto f = closes();
    f.declared = false;
    EXPECT_EQ(plane.select(li, "v1", "selfdestruct", json::object(), f).why, reason::unknown_command);
}

TEST_F(plane_fixture, EveryStepIsInTheChainAndGoesUpstream) {
    const auto s = plane.select(li, "v1", "close_valve", json::object(), closes());
    plane.operate(wang, "v1", "close_valve", json::object(), "c0", "", closes());
    plane.operate(li, "v1", "close_valve", json::object(), "c1", "", closes());
    plane.result("v1", "c1", true, "the valve reads closed", json{{"values", {{"valve", "closed"}}}});
    const auto records = audit->list(0, 100);
    ASSERT_EQ(records.size(), 4u);
    EXPECT_EQ(records[0].record["step"], "select");
    EXPECT_EQ(records[0].record["select_id"], s.select_id);
    EXPECT_EQ(records[1].record["reason"], "selected_by_other");
    EXPECT_EQ(records[1].record["principal"], "wang");
    EXPECT_EQ(records[2].record["granted"], true);
    EXPECT_EQ(records[3].record["step"], "result");
    EXPECT_EQ(records[3].record["ok"], true);
    EXPECT_EQ(records[3].record["principal"], "li");
    ASSERT_EQ(upstream.size(), 4u);
    EXPECT_EQ(upstream.back().hash, records.back().hash);
    EXPECT_TRUE(audit_log::verify(db.file).ok);
}

TEST(audit_chain, VerifyFindsTheFirstChangedRecord) {
    temp_db db;
    {
        audit_log log(db.file, 10'000);
        for (int i = 0; i < 20; ++i) log.append({{"step", "operate"}, {"device", "v1"}, {"n", i}});
    }
    auto check = audit_log::verify(db.file);
    ASSERT_TRUE(check.ok) << check.why;
    EXPECT_EQ(check.checked, 20u);
    {
        // One byte of record 7's text: "v1" becomes "v2".
        SQLite::Database raw(db.file.string(), SQLite::OPEN_READWRITE);
        raw.exec("UPDATE audit_chain SET record = replace(record, '\"v1\"', '\"v2\"') WHERE seq = 7");
    }
    check = audit_log::verify(db.file);
    EXPECT_FALSE(check.ok);
    ASSERT_TRUE(check.broken_at);
    EXPECT_EQ(*check.broken_at, 7u);
    EXPECT_NE(check.why.find("do not match its hash"), std::string::npos) << check.why;
}

TEST(audit_chain, VerifyFindsARemovedRecordAndAForgedLink) {
    temp_db db;
    {
        audit_log log(db.file, 10'000);
        for (int i = 0; i < 10; ++i) log.append({{"n", i}});
    }
    {
        SQLite::Database raw(db.file.string(), SQLite::OPEN_READWRITE);
        raw.exec("DELETE FROM audit_chain WHERE seq = 4");
    }
    auto check = audit_log::verify(db.file);
    EXPECT_FALSE(check.ok);
    EXPECT_EQ(check.broken_at.value_or(0), 5u);
    EXPECT_NE(check.why.find("missing"), std::string::npos) << check.why;
    {
        SQLite::Database raw(db.file.string(), SQLite::OPEN_READWRITE);
        raw.exec("DELETE FROM audit_chain WHERE seq >= 4");
        raw.exec("UPDATE audit_chain SET prev_hash = zeroblob(32) WHERE seq = 3");
    }
    check = audit_log::verify(db.file);
    EXPECT_FALSE(check.ok);
    EXPECT_EQ(check.broken_at.value_or(0), 3u);
}

TEST(audit_chain, KeepsAtLeastItsMinimumAndStillVerifiesAfterPruning) {
    temp_db db;
    {
        audit_log log(db.file, 10'000);
        for (int i = 0; i < 11'050; ++i) log.append({{"n", i}});
        // Pruned to 10 000 once past keep + keep/10 (at record 11 001), then 49 more.
        EXPECT_EQ(log.size(), 10'049u);
        EXPECT_EQ(log.list(0, 1).front().seq, 1'002u);
    }
    const auto check = audit_log::verify(db.file);
    EXPECT_TRUE(check.ok) << check.why;
    EXPECT_EQ(check.first_seq, 1'002u);
    EXPECT_EQ(check.last_seq, 11'050u);
    // A reopened log continues the chain from its head.
    audit_log log(db.file, 10'000);
    EXPECT_EQ(log.append({{"n", "next"}}).seq, 11'051u);
    EXPECT_TRUE(audit_log::verify(db.file).ok);
}
