#include "store.hpp"

#include <firelink/text.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <tuple>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

namespace firelink::receiver {

namespace {

// 2: the re-report columns (rereport, repeats_*, repeats_id); a version 1 store gets them at open.
constexpr int schema_version = 2;

// Bounds one group commit: enough to amortise the fsync, small enough that an alarm behind it waits little.
constexpr std::size_t group_weight = 20000;

constexpr const char *schema_sql = R"sql(
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY,                -- the receiver's arrival order
  gateway TEXT NOT NULL, epoch TEXT NOT NULL, lane TEXT NOT NULL, seq INTEGER NOT NULL,
  device TEXT NOT NULL, class TEXT NOT NULL, plugin TEXT NOT NULL, device_seq INTEGER NOT NULL,
  origin TEXT NOT NULL,
  wall_ms INTEGER NOT NULL, monotonic_ns INTEGER NOT NULL, boot_id TEXT NOT NULL, clock_synced INTEGER NOT NULL,
  site TEXT,                             -- JSON object, NULL when the record has none
  kind TEXT NOT NULL, code TEXT NOT NULL,
  severity TEXT NOT NULL,                -- as sent, else the kind's default
  event_id TEXT, ends TEXT, command_id TEXT, ok INTEGER, message TEXT,
  event TEXT NOT NULL,                   -- the whole event as JSON
  record BLOB NOT NULL,                  -- the record's msgpack bytes as received
  stored_ms INTEGER NOT NULL,            -- the receiver's wall clock at the commit's start
  rereport INTEGER NOT NULL DEFAULT 0,   -- the record's `rereport`
  repeats_epoch TEXT, repeats_lane TEXT, repeats_seq INTEGER,  -- its `repeats`: the key of the first report
  repeats_id INTEGER,                    -- the id of that first report's row, when it is stored here
  UNIQUE(gateway, epoch, lane, seq));
CREATE INDEX IF NOT EXISTS events_by_device ON events(gateway, device, id);
CREATE INDEX IF NOT EXISTS events_by_kind ON events(kind, id);
CREATE INDEX IF NOT EXISTS events_by_stored ON events(stored_ms);
CREATE INDEX IF NOT EXISTS events_by_ends ON events(gateway, device, ends) WHERE ends IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_command ON events(gateway, command_id) WHERE command_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_repeats ON events(repeats_id) WHERE repeats_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS commands(
  seq INTEGER PRIMARY KEY,               -- order over all gateways; id = 'cmd-' || seq
  id TEXT NOT NULL UNIQUE, gateway TEXT NOT NULL, cursor INTEGER NOT NULL,
  device TEXT NOT NULL, name TEXT NOT NULL, args TEXT NOT NULL, expires_wall_ms INTEGER,
  created_ms INTEGER NOT NULL, delivered_ms INTEGER,
  UNIQUE(gateway, cursor));
CREATE TABLE IF NOT EXISTS counters(
  lane TEXT NOT NULL, name TEXT NOT NULL, value INTEGER NOT NULL, PRIMARY KEY(lane, name));
)sql";

constexpr const char *migrate_v1_sql = R"sql(
ALTER TABLE events ADD COLUMN rereport INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN repeats_epoch TEXT;
ALTER TABLE events ADD COLUMN repeats_lane TEXT;
ALTER TABLE events ADD COLUMN repeats_seq INTEGER;
ALTER TABLE events ADD COLUMN repeats_id INTEGER;
)sql";

constexpr const char *insert_event_sql =
    "INSERT INTO events(gateway, epoch, lane, seq, device, class, plugin, device_seq, origin, wall_ms, monotonic_ns,"
    " boot_id, clock_synced, site, kind, code, severity, event_id, ends, command_id, ok, message, event, record,"
    " stored_ms, rereport, repeats_epoch, repeats_lane, repeats_seq, repeats_id)"
    " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(gateway, epoch, lane, seq) DO NOTHING";

// The row a re-report folds into: the record it repeats, or the row that one folds into when it is a re-report
// itself, so every report of a condition folds into one row.
constexpr const char *first_report_sql =
    "SELECT coalesce(repeats_id, id) FROM events WHERE gateway = ? AND epoch = ? AND lane = ? AND seq = ?";

void bind_opt(SQLite::Statement &st, int i, const std::optional<std::string> &v) {
    if (v)
        st.bind(i, *v);
    else
        st.bind(i);
}

void add_counter(SQLite::Database &db, const std::string &lane, const char *name, std::int64_t delta) {
    if (delta == 0) return;
    SQLite::Statement st(db, "INSERT INTO counters(lane, name, value) VALUES(?,?,?)"
                             " ON CONFLICT(lane, name) DO UPDATE SET value = value + excluded.value");
    st.bind(1, lane);
    st.bind(2, name);
    st.bind(3, delta);
    st.exec();
}

nlohmann::json column_json(const SQLite::Column &c) {
    if (c.isNull()) return nullptr;
    return nlohmann::json::parse(c.getString(), nullptr, false);
}

nlohmann::json opt_int(const SQLite::Column &c) { return c.isNull() ? nlohmann::json(nullptr) : nlohmann::json(c.getInt64()); }

}  // namespace

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

store::store(const std::string &path)
    : path_(path),
      write_db_([&]() -> SQLite::Database {
          try {
              return SQLite::Database(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, 5000);
          } catch (const std::exception &e) {
              throw store_error("cannot open the store '" + path + "': " + e.what());
          }
      }()) {
    try {
        const auto mode = write_db_.execAndGet("PRAGMA journal_mode=WAL").getString();
        if (mode != "wal") throw store_error("cannot switch '" + path + "' to WAL (journal_mode is " + mode + ")");
        write_db_.exec("PRAGMA synchronous=FULL");
        const int version = write_db_.execAndGet("PRAGMA user_version").getInt();
        if (version > schema_version)
            throw store_error("the store '" + path + "' has schema " + std::to_string(version) +
                              ", newer than this receiver's " + std::to_string(schema_version));
        write_db_.exec("BEGIN IMMEDIATE");
        if (version == 1) write_db_.exec(migrate_v1_sql);
        write_db_.exec(schema_sql);
        write_db_.exec("PRAGMA user_version = " + std::to_string(schema_version));
        write_db_.exec("COMMIT");
        read_db_ = std::make_unique<SQLite::Database>(path, SQLite::OPEN_READONLY, 5000);
    } catch (const store_error &) {
        throw;
    } catch (const std::exception &e) {
        throw store_error("cannot use the store '" + path + "': " + e.what());
    }
    writer_ = std::thread([this] { writer_loop(); });
}

store::~store() { stop(); }

void store::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_ && !writer_.joinable()) return;
        stopping_ = true;
    }
    wake_.notify_all();
    if (writer_.joinable() && writer_.get_id() != std::this_thread::get_id()) writer_.join();
}

void store::submit(job j) {
    {
        std::lock_guard lock(mutex_);
        if (!stopping_) {
            j.order = next_order_++;
            queue_.push_back(std::move(j));
            wake_.notify_one();
            return;
        }
    }
    j.done(std::make_exception_ptr(std::runtime_error("the receiver is shutting down")));
}

void store::writer_loop() {
    for (;;) {
        std::vector<job> group;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and everything queued is committed
            // Most urgent first: the alarm lane, then commands and the event lane, then telemetry.
            std::sort(queue_.begin(), queue_.end(),
                      [](const job &a, const job &b) { return std::tie(a.rank, a.order) < std::tie(b.rank, b.order); });
            // A group that holds an alarm holds nothing bulkier than a command: its commit stays tiny.
            const bool urgent = queue_.front().rank == 0;
            std::size_t weight = 0, n = 0;
            while (n < queue_.size() && (n == 0 || weight + queue_[n].weight <= group_weight) &&
                   !(urgent && queue_[n].rank > 1))
                weight += queue_[n++].weight;
            group.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.begin() + n));
            queue_.erase(queue_.begin(), queue_.begin() + n);
        }
        commit_group(group);
    }
}

// One transaction for the group, one savepoint per job: a job that fails is rolled back alone; a failed commit
// fails them all. Each job's done runs after the outcome is durable.
void store::commit_group(std::vector<job> &group) {
    std::vector<std::exception_ptr> errors(group.size());
    const auto started = std::chrono::steady_clock::now();
    try {
        write_db_.exec("BEGIN IMMEDIATE");
        for (std::size_t i = 0; i < group.size(); ++i) {
            write_db_.exec("SAVEPOINT job");
            try {
                group[i].run(write_db_);
                write_db_.exec("RELEASE job");
            } catch (...) {
                errors[i] = std::current_exception();
                write_db_.exec("ROLLBACK TO job");
                write_db_.exec("RELEASE job");
            }
        }
        write_db_.exec("COMMIT");
        if (spdlog::should_log(spdlog::level::debug)) {
            std::size_t weight = 0;
            for (const auto &j : group) weight += j.weight;
            spdlog::debug("store: committed {} jobs ({} records) in {} ms", group.size(), weight,
                          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                                started)
                              .count());
        }
    } catch (const std::exception &e) {
        spdlog::error("store: commit failed: {}", e.what());
        try {
            if (!write_db_.getHandle() || sqlite3_get_autocommit(write_db_.getHandle()) == 0) write_db_.exec("ROLLBACK");
        } catch (...) {
        }
        const auto failed = std::current_exception();
        for (auto &err : errors) err = failed;
    }
    for (std::size_t i = 0; i < group.size(); ++i) {
        if (errors[i]) {
            try {
                std::rethrow_exception(errors[i]);
            } catch (const std::exception &e) {
                spdlog::error("store: a write failed: {}", e.what());
            } catch (...) {
            }
        }
        group[i].done(errors[i]);
    }
}

void store::ingest(std::shared_ptr<const parsed_batch> batch,
                   std::function<void(std::exception_ptr, ingest_result)> done) {
    auto result = std::make_shared<ingest_result>();
    job j;
    j.rank = batch->lane == "alarm" ? 0 : batch->lane == "event" ? 2 : 3;
    j.weight = std::max<std::size_t>(1, batch->records.size());
    j.run = [batch, result](SQLite::Database &db) {
        *result = {};
        const auto stored_ms = now_ms();
        SQLite::Statement st(db, insert_event_sql);
        SQLite::Statement first(db, first_report_sql);
        for (const auto &r : batch->records) {
            st.reset();
            st.clearBindings();
            int i = 0;
            st.bind(++i, batch->gateway);
            st.bind(++i, batch->epoch);
            st.bind(++i, batch->lane);
            st.bind(++i, static_cast<std::int64_t>(r.seq));
            st.bind(++i, r.device);
            st.bind(++i, r.device_class);
            st.bind(++i, r.plugin);
            st.bind(++i, static_cast<std::int64_t>(r.device_seq));
            st.bind(++i, r.origin);
            st.bind(++i, r.wall_ms);
            st.bind(++i, static_cast<std::int64_t>(r.monotonic_ns));
            st.bind(++i, r.boot_id);
            st.bind(++i, r.clock_synced ? 1 : 0);
            bind_opt(st, ++i, r.site_json);
            st.bind(++i, r.kind);
            st.bind(++i, r.code);
            st.bind(++i, r.severity);
            bind_opt(st, ++i, r.event_id);
            bind_opt(st, ++i, r.ends);
            bind_opt(st, ++i, r.command_id);
            if (r.ok)
                st.bind(++i, *r.ok ? 1 : 0);
            else
                st.bind(++i);
            bind_opt(st, ++i, r.message);
            st.bind(++i, r.event_json);
            st.bind(++i, r.raw.data(), static_cast<int>(r.raw.size()));
            st.bind(++i, stored_ms);
            st.bind(++i, r.rereport ? 1 : 0);
            std::optional<std::int64_t> repeats_id;
            if (r.repeats) {
                st.bind(++i, r.repeats->epoch);
                st.bind(++i, r.repeats->lane);
                st.bind(++i, static_cast<std::int64_t>(r.repeats->seq));
                // Found when stored: the first report travels ahead of its re-reports (the same lane, a lower seq).
                if (r.rereport) {
                    first.reset();
                    first.bind(1, batch->gateway);
                    first.bind(2, r.repeats->epoch);
                    first.bind(3, r.repeats->lane);
                    first.bind(4, static_cast<std::int64_t>(r.repeats->seq));
                    if (first.executeStep()) repeats_id = first.getColumn(0).getInt64();
                }
            } else {
                st.bind(++i);
                st.bind(++i);
                st.bind(++i);
            }
            if (repeats_id)
                st.bind(++i, *repeats_id);
            else
                st.bind(++i);
            if (st.exec() > 0)
                ++result->stored;
            else
                ++result->duplicates;
        }
        add_counter(db, batch->lane, "batches", 1);
        add_counter(db, batch->lane, "stored", static_cast<std::int64_t>(result->stored));
        add_counter(db, batch->lane, "duplicates", static_cast<std::int64_t>(result->duplicates));
        add_counter(db, batch->lane, "rejects", static_cast<std::int64_t>(batch->rejects.size()));
    };
    j.done = [result, done = std::move(done)](std::exception_ptr err) { done(err, err ? ingest_result{} : *result); };
    submit(std::move(j));
}

void store::add_command(command_request req, std::function<void(std::exception_ptr, command_row)> done) {
    auto row = std::make_shared<command_row>();
    job j;
    j.rank = 1;
    j.weight = 1;
    j.run = [req = std::move(req), row](SQLite::Database &db) {
        const auto seq = db.execAndGet("SELECT COALESCE(MAX(seq), 0) + 1 FROM commands").getInt64();
        SQLite::Statement cur(db, "SELECT COALESCE(MAX(cursor), 0) + 1 FROM commands WHERE gateway = ?");
        cur.bind(1, req.gateway);
        cur.executeStep();
        row->cursor = static_cast<std::uint64_t>(cur.getColumn(0).getInt64());
        row->id = "cmd-" + std::to_string(seq);
        row->device = req.device;
        row->name = req.name;
        row->args_json = firelink::text::dump_json(req.args);
        row->expires_wall_ms = req.expires_wall_ms;
        SQLite::Statement st(db, "INSERT INTO commands(seq, id, gateway, cursor, device, name, args, expires_wall_ms,"
                                 " created_ms) VALUES(?,?,?,?,?,?,?,?,?)");
        st.bind(1, seq);
        st.bind(2, row->id);
        st.bind(3, req.gateway);
        st.bind(4, static_cast<std::int64_t>(row->cursor));
        st.bind(5, row->device);
        st.bind(6, row->name);
        st.bind(7, row->args_json);
        if (row->expires_wall_ms)
            st.bind(8, *row->expires_wall_ms);
        else
            st.bind(8);
        st.bind(9, now_ms());
        st.exec();
    };
    j.done = [row, done = std::move(done)](std::exception_ptr err) { done(err, *row); };
    submit(std::move(j));
}

void store::mark_delivered(std::string gateway, std::vector<std::uint64_t> cursors,
                           std::function<void(std::exception_ptr)> done) {
    job j;
    j.rank = 1;
    j.weight = 1;
    j.run = [gateway = std::move(gateway), cursors = std::move(cursors)](SQLite::Database &db) {
        SQLite::Statement st(db, "UPDATE commands SET delivered_ms = ? WHERE gateway = ? AND cursor = ?"
                                 " AND delivered_ms IS NULL");
        const auto now = now_ms();
        for (auto c : cursors) {
            st.reset();
            st.bind(1, now);
            st.bind(2, gateway);
            st.bind(3, static_cast<std::int64_t>(c));
            st.exec();
        }
    };
    j.done = std::move(done);
    submit(std::move(j));
}

// ---- reads ----

std::vector<command_row> store::commands_after(const std::string &gateway, std::uint64_t after) {
    std::lock_guard lock(read_mutex_);
    SQLite::Statement st(*read_db_, "SELECT cursor, id, device, name, args, expires_wall_ms FROM commands"
                                    " WHERE gateway = ? AND cursor > ? ORDER BY cursor");
    st.bind(1, gateway);
    st.bind(2, static_cast<std::int64_t>(std::min<std::uint64_t>(after, INT64_MAX)));
    std::vector<command_row> out;
    while (st.executeStep()) {
        command_row r;
        r.cursor = static_cast<std::uint64_t>(st.getColumn(0).getInt64());
        r.id = st.getColumn(1).getString();
        r.device = st.getColumn(2).getString();
        r.name = st.getColumn(3).getString();
        r.args_json = st.getColumn(4).getString();
        if (!st.getColumn(5).isNull()) r.expires_wall_ms = st.getColumn(5).getInt64();
        out.push_back(std::move(r));
    }
    return out;
}

std::map<std::string, std::uint64_t> store::max_cursors() {
    std::lock_guard lock(read_mutex_);
    SQLite::Statement st(*read_db_, "SELECT gateway, MAX(cursor) FROM commands GROUP BY gateway");
    std::map<std::string, std::uint64_t> out;
    while (st.executeStep())
        out[st.getColumn(0).getString()] = static_cast<std::uint64_t>(st.getColumn(1).getInt64());
    return out;
}

namespace {

constexpr const char *event_columns =
    "id, stored_ms, gateway, epoch, lane, seq, device, class, plugin, device_seq, origin, wall_ms, monotonic_ns,"
    " boot_id, clock_synced, site, kind, code, severity, event, rereport, repeats_epoch, repeats_lane, repeats_seq,"
    " repeats_id";
constexpr int event_column_count = 25;

nlohmann::json event_row_json(SQLite::Statement &st) {
    int i = 0;
    const auto col = [&]() { return st.getColumn(i++); };
    nlohmann::json j;
    j["id"] = col().getInt64();
    j["stored_ms"] = col().getInt64();
    j["gateway"] = col().getString();
    j["epoch"] = col().getString();
    j["lane"] = col().getString();
    j["seq"] = col().getInt64();
    j["device"] = col().getString();
    j["class"] = col().getString();
    j["plugin"] = col().getString();
    j["device_seq"] = col().getInt64();
    j["origin"] = col().getString();
    nlohmann::json received;
    received["wall_ms"] = col().getInt64();
    received["monotonic_ns"] = col().getInt64();
    received["boot_id"] = col().getString();
    received["clock_synced"] = col().getInt() != 0;
    j["received"] = std::move(received);
    if (auto site = column_json(col()); !site.is_null()) j["site"] = std::move(site);
    j["kind"] = col().getString();
    j["code"] = col().getString();
    j["severity"] = col().getString();
    j["event"] = nlohmann::ordered_json::parse(col().getString(), nullptr, false);
    if (col().getInt() != 0) j["rereport"] = true;
    const auto epoch = col(), lane = col(), seq = col();
    if (!seq.isNull()) j["repeats"] = {{"epoch", epoch.getString()}, {"lane", lane.getString()}, {"seq", seq.getInt64()}};
    if (const auto id = col(); !id.isNull()) j["repeats_id"] = id.getInt64();
    return j;
}

}  // namespace

nlohmann::json store::events(const event_query &q) {
    // Folded: each re-report stored with its first report is counted there instead of listed.
    std::string sql = std::string("SELECT ") + event_columns;
    if (q.fold_rereports)
        sql += ", (SELECT COUNT(*) FROM events r WHERE r.repeats_id = events.id),"
               " (SELECT MAX(r.id) FROM events r WHERE r.repeats_id = events.id)";
    sql += " FROM events WHERE 1";
    if (q.fold_rereports) sql += " AND repeats_id IS NULL";
    std::vector<std::function<void(SQLite::Statement &, int &)>> binds;
    const auto text = [&](const char *clause, const std::optional<std::string> &v) {
        if (!v) return;
        sql += clause;
        binds.push_back([v = *v](SQLite::Statement &st, int &i) { st.bind(++i, v); });
    };
    const auto number = [&](const char *clause, const std::optional<std::int64_t> &v) {
        if (!v) return;
        sql += clause;
        binds.push_back([v = *v](SQLite::Statement &st, int &i) { st.bind(++i, v); });
    };
    if (!q.kinds.empty()) {
        sql += " AND kind IN (";
        for (std::size_t k = 0; k < q.kinds.size(); ++k) {
            sql += k ? ",?" : "?";
            binds.push_back([v = q.kinds[k]](SQLite::Statement &st, int &i) { st.bind(++i, v); });
        }
        sql += ")";
    }
    text(" AND device = ?", q.device);
    text(" AND gateway = ?", q.gateway);
    text(" AND lane = ?", q.lane);
    number(" AND stored_ms >= ?", q.since_ms);
    number(" AND stored_ms <= ?", q.until_ms);
    number(" AND wall_ms >= ?", q.since_wall_ms);
    number(" AND wall_ms <= ?", q.until_wall_ms);
    number(" AND id < ?", q.before_id);
    sql += " ORDER BY id DESC LIMIT ?";
    binds.push_back([n = q.limit](SQLite::Statement &st, int &i) { st.bind(++i, n); });

    std::lock_guard lock(read_mutex_);
    SQLite::Statement st(*read_db_, sql);
    int i = 0;
    for (auto &b : binds) b(st, i);
    auto out = nlohmann::json::array();
    while (st.executeStep()) {
        auto e = event_row_json(st);
        if (q.fold_rereports) {
            if (const auto n = st.getColumn(event_column_count).getInt64(); n > 0) {
                SQLite::Statement last(*read_db_, std::string("SELECT ") + event_columns + " FROM events WHERE id = ?");
                last.bind(1, st.getColumn(event_column_count + 1).getInt64());
                if (last.executeStep()) e["rereports"] = {{"count", n}, {"last", event_row_json(last)}};
            }
        }
        out.push_back(std::move(e));
    }
    return out;
}

nlohmann::json store::devices() {
    std::lock_guard lock(read_mutex_);
    // The last event of a device: by the host's wall clock, then its monotonic clock (the receiver's arrival order
    // is not the device's order: lanes overtake each other).
    SQLite::Statement st(*read_db_, std::string(R"sql(
WITH ranked AS (
  SELECT id, ROW_NUMBER() OVER (PARTITION BY gateway, device ORDER BY wall_ms DESC, monotonic_ns DESC, id DESC) AS rn
  FROM events),
agg AS (SELECT gateway, device, COUNT(*) AS n, MAX(stored_ms) AS last_seen_ms FROM events GROUP BY gateway, device)
SELECT )sql") + event_columns + R"sql(, agg.n, agg.last_seen_ms
FROM ranked JOIN events USING(id) JOIN agg USING(gateway, device)
WHERE ranked.rn = 1 ORDER BY gateway, device)sql");
    std::map<std::pair<std::string, std::string>, nlohmann::json> by_device;
    while (st.executeStep()) {
        auto last = event_row_json(st);
        nlohmann::json d;
        d["gateway"] = last["gateway"];
        d["device"] = last["device"];
        d["class"] = last["class"];
        d["plugin"] = last["plugin"];
        if (last.contains("site")) d["site"] = last["site"];
        d["events"] = st.getColumn(event_column_count).getInt64();
        d["last_seen_ms"] = st.getColumn(event_column_count + 1).getInt64();
        d["last_event"] = std::move(last);
        d["active"] = nlohmann::json::array();
        std::pair<std::string, std::string> key{d["gateway"], d["device"]};  // before the move below
        by_device[std::move(key)] = std::move(d);
    }

    // Active conditions: an alarm, pre-alarm, fault or offline with an event_id and no later restore that ends it.
    // "Later" by the host's monotonic clock within one boot, by its wall clock across boots. One per event_id (the
    // latest report), with the count of re-reports folded into its first report.
    SQLite::Statement active(*read_db_, R"sql(
SELECT c.gateway, c.device, c.event_id, c.id, c.stored_ms, c.kind, c.code, c.severity, c.message, c.wall_ms, c.event,
       (SELECT COUNT(*) FROM events r WHERE r.repeats_id = coalesce(c.repeats_id, c.id))
FROM events c
WHERE c.kind IN ('alarm', 'pre_alarm', 'fault', 'offline') AND c.event_id IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM events r
    WHERE r.gateway = c.gateway AND r.device = c.device AND r.ends = c.event_id AND r.kind = 'restore'
      AND ((r.boot_id = c.boot_id AND r.monotonic_ns > c.monotonic_ns)
           OR (r.boot_id <> c.boot_id AND r.wall_ms > c.wall_ms)))
ORDER BY c.wall_ms, c.monotonic_ns, c.id)sql");
    std::map<std::tuple<std::string, std::string, std::string>, nlohmann::json> latest;  // one per event_id
    while (active.executeStep()) {
        nlohmann::json a;
        a["event_id"] = active.getColumn(2).getString();
        a["id"] = active.getColumn(3).getInt64();
        a["stored_ms"] = active.getColumn(4).getInt64();
        a["kind"] = active.getColumn(5).getString();
        a["code"] = active.getColumn(6).getString();
        a["severity"] = active.getColumn(7).getString();
        if (!active.getColumn(8).isNull()) a["message"] = active.getColumn(8).getString();
        a["wall_ms"] = active.getColumn(9).getInt64();
        a["event"] = nlohmann::ordered_json::parse(active.getColumn(10).getString(), nullptr, false);
        if (const auto n = active.getColumn(11).getInt64(); n > 0) a["rereports"] = n;
        std::tuple<std::string, std::string, std::string> key{active.getColumn(0).getString(),
                                                              active.getColumn(1).getString(), a["event_id"]};
        latest[std::move(key)] = std::move(a);
    }
    for (auto &[key, a] : latest) {
        auto it = by_device.find({std::get<0>(key), std::get<1>(key)});
        if (it != by_device.end()) it->second["active"].push_back(std::move(a));
    }
    auto out = nlohmann::json::array();
    for (auto &[key, d] : by_device) out.push_back(std::move(d));
    return out;
}

nlohmann::json store::commands(const std::optional<std::string> &gateway, std::int64_t limit) {
    std::lock_guard lock(read_mutex_);
    std::string sql = R"sql(
SELECT c.id, c.gateway, c.cursor, c.device, c.name, c.args, c.expires_wall_ms, c.created_ms, c.delivered_ms,
       e.ok, e.code, e.message, e.stored_ms, e.event
FROM commands c
LEFT JOIN events e ON e.id = (SELECT r.id FROM events r WHERE r.gateway = c.gateway AND r.command_id = c.id
                              AND r.kind = 'command_result' ORDER BY r.id DESC LIMIT 1))sql";
    if (gateway) sql += " WHERE c.gateway = ?";
    sql += " ORDER BY c.seq DESC LIMIT ?";
    SQLite::Statement st(*read_db_, sql);
    int i = 0;
    if (gateway) st.bind(++i, *gateway);
    st.bind(++i, limit);
    auto out = nlohmann::json::array();
    const auto now = now_ms();
    while (st.executeStep()) {
        nlohmann::json c;
        c["id"] = st.getColumn(0).getString();
        c["gateway"] = st.getColumn(1).getString();
        c["cursor"] = st.getColumn(2).getInt64();
        c["device"] = st.getColumn(3).getString();
        c["name"] = st.getColumn(4).getString();
        c["args"] = nlohmann::json::parse(st.getColumn(5).getString(), nullptr, false);
        c["expires_wall_ms"] = opt_int(st.getColumn(6));
        c["created_ms"] = st.getColumn(7).getInt64();
        c["delivered_ms"] = opt_int(st.getColumn(8));
        const bool has_result = !st.getColumn(13).isNull();
        if (has_result) {
            nlohmann::json r;
            r["ok"] = !st.getColumn(9).isNull() && st.getColumn(9).getInt() != 0;
            r["code"] = st.getColumn(10).getString();
            if (!st.getColumn(11).isNull()) r["message"] = st.getColumn(11).getString();
            r["stored_ms"] = st.getColumn(12).getInt64();
            r["event"] = nlohmann::ordered_json::parse(st.getColumn(13).getString(), nullptr, false);
            c["status"] = r["ok"].get<bool>() ? "succeeded" : "failed";
            c["result"] = std::move(r);
        } else if (!c["delivered_ms"].is_null()) {
            c["status"] = "delivered";
        } else if (!c["expires_wall_ms"].is_null() && c["expires_wall_ms"].get<std::int64_t>() < now) {
            c["status"] = "expired";
        } else {
            c["status"] = "queued";
        }
        out.push_back(std::move(c));
    }
    return out;
}

nlohmann::json store::stats() {
    std::lock_guard lock(read_mutex_);
    nlohmann::json lanes;
    for (const char *lane : {"alarm", "event", "telemetry"})
        lanes[lane] = {{"batches", 0}, {"stored", 0}, {"duplicates", 0}, {"rejects", 0}, {"in_store", 0}};
    SQLite::Statement counters(*read_db_, "SELECT lane, name, value FROM counters");
    while (counters.executeStep())
        lanes[counters.getColumn(0).getString()][counters.getColumn(1).getString()] = counters.getColumn(2).getInt64();
    SQLite::Statement in_store(*read_db_, "SELECT lane, COUNT(*) FROM events GROUP BY lane");
    while (in_store.executeStep())
        lanes[in_store.getColumn(0).getString()]["in_store"] = in_store.getColumn(1).getInt64();
    nlohmann::json total = {{"batches", 0}, {"stored", 0}, {"duplicates", 0}, {"rejects", 0}, {"in_store", 0}};
    for (auto &[lane, v] : lanes.items())
        for (auto &[name, n] : v.items()) total[name] = total[name].get<std::int64_t>() + n.get<std::int64_t>();
    nlohmann::json out;
    out["lanes"] = std::move(lanes);
    out["total"] = std::move(total);
    out["commands"] = read_db_->execAndGet("SELECT COUNT(*) FROM commands").getInt64();
    return out;
}

}  // namespace firelink::receiver
