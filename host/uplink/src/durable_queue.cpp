#include "firelink/uplink/durable_queue.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <random>
#include <stdexcept>

#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/spdlog.h>

#include <firelink/payload.hpp>
#include <firelink/text.hpp>

#include "firelink/uplink/record.hpp"

namespace firelink::uplink {

namespace {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int application_id = 0x464c4b51;  // 'FLKQ'
constexpr int schema_version = 1;
constexpr std::uint64_t seq_bits = 56;
constexpr std::uint64_t seq_mask = (std::uint64_t{1} << seq_bits) - 1;

std::int64_t row_id(lane l, std::uint64_t seq) {
    return static_cast<std::int64_t>((static_cast<std::uint64_t>(l) << seq_bits) | (seq & seq_mask));
}

std::string random_epoch() {
    std::random_device rd;
    static const char *hex = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 4; ++i) {
        std::uint32_t v = rd();
        for (int j = 0; j < 8; ++j, v >>= 4) s += hex[v & 15];
    }
    return s;
}

std::string utc_stamp() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void move_aside(const std::filesystem::path &path, const std::filesystem::path &to) {
    std::error_code ec;
    for (const char *suffix : {"", "-wal", "-shm"}) {
        const auto from = path.string() + suffix;
        if (std::filesystem::exists(from, ec)) std::filesystem::rename(from, to.string() + suffix, ec);
        if (ec) throw std::runtime_error("cannot move " + from + " aside: " + ec.message());
    }
}

// The queue holds every event and command: a new file is the host's user's alone, and an old one loses what others
// could do with it (a plugin's runner has a uid of its own, in no group; docs/deployment.md, "Plugin isolation").
// SQLite gives its -wal and -shm the database file's mode.
void owner_only(const std::filesystem::path &path) {
    for (const char *suffix : {"", "-wal", "-shm"}) {
        const std::string file = path.string() + suffix;
        const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC | (*suffix ? 0 : O_CREAT), 0600);
        if (fd < 0 && *suffix && errno == ENOENT) continue;
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0 || ((st.st_mode & S_IRWXO) && ::fchmod(fd, st.st_mode & 0770) != 0)) {
            const int e = errno;
            if (fd >= 0) ::close(fd);
            throw std::runtime_error("cannot keep " + file + " from other users: " + std::strerror(e));
        }
        ::close(fd);
    }
}

// Reads the epoch of a damaged file when its meta table can still be read.
std::string try_read_epoch(const std::filesystem::path &path) {
    try {
        SQLite::Database db(path.string(), SQLite::OPEN_READONLY);
        SQLite::Statement q(db, "SELECT value FROM meta WHERE key='epoch'");
        if (q.executeStep()) return q.getColumn(0).getString();
    } catch (const std::exception &) {
    }
    return {};
}

}  // namespace

// ---- open ------------------------------------------------------------------------------------------------------

durable_queue::durable_queue(queue_options options) : options_(std::move(options)) {
    if (options_.path.empty()) throw std::runtime_error("the queue needs a file path");
    std::error_code ec;
    if (options_.path.has_parent_path()) std::filesystem::create_directories(options_.path.parent_path(), ec);
    const auto started = clock::now();
    const bool existed = std::filesystem::exists(options_.path, ec);
    owner_only(options_.path);
    // A disk another program filled while the host was down: SQLite cannot even make the log's index to open the
    // file. What the reserve is for: give it up now, so the queue opens and alarms commit (the writer sets it aside
    // again once there is room).
    size_for_disk();
    if (disk_avail() < wal_room_) release_reserve("to open the queue on a full disk");
    if (existed) {
        std::string problem;
        try {
            SQLite::Database probe(options_.path.string(), SQLite::OPEN_READWRITE);
            const int app = probe.execAndGet("PRAGMA application_id").getInt();
            const bool has_meta = probe.tableExists("meta");
            if (app != application_id && !(app == 0 && !has_meta && probe.execAndGet("PRAGMA page_count").getInt() == 0))
                throw std::runtime_error(options_.path.string() +
                                         " is a SQLite database but not a firelink queue (application_id " +
                                         std::to_string(app) + "); refusing to touch it");
            // The queue's format (PRAGMA user_version). An older one is brought up to this host's below (the schema
            // statements are idempotent); a newer one, left by a later firelink-host that was rolled back, is not
            // touched: this host cannot know what its records mean, and they hold undelivered events.
            const int format = probe.execAndGet("PRAGMA user_version").getInt();
            if (format > schema_version)
                throw std::runtime_error(
                    options_.path.string() + " is in queue format " + std::to_string(format) +
                    ", written by a newer firelink-host; this one reads formats up to " +
                    std::to_string(schema_version) +
                    ". The file is kept as it is: run the newer firelink-host again until the queue is delivered "
                    "(docs/deployment.md, \"Upgrades and rollback\"), or give this host another queue_path");
            // A large file this queue closed cleanly (checkpointed, flag set after) is not read whole again:
            // quick_check reads every page, about 20 s for a million records from a cold disk. After a crash, or for
            // a small file, it always runs.
            bool clean = false;
            if (has_meta && std::filesystem::file_size(options_.path, ec) > options_.check_max_bytes) {
                SQLite::Statement flag(probe, "SELECT value FROM meta WHERE key='clean_close'");
                clean = flag.executeStep() && flag.getColumn(0).getString() == "1";
            }
            SQLite::Statement check(probe, clean ? "SELECT 'ok'" : "PRAGMA quick_check(20)");
            report_.checked = !clean;
            std::string first;
            int problems = 0;
            while (check.executeStep()) {
                const auto line = check.getColumn(0).getString();
                if (line == "ok") break;
                if (!problems++) first = line;
            }
            if (problems)
                problem = "quick_check: " + first + (problems > 1 ? " (and " + std::to_string(problems - 1) + " more)" : "");
        } catch (const SQLite::Exception &e) {
            // Only a file that is not a database, or a damaged one, is moved aside. A disk that is full or failing,
            // or a file that cannot be opened, keeps its queue: starting a new one would lose what it holds.
            const int code = e.getErrorCode() & 0xff;
            if (code != SQLITE_CORRUPT && code != SQLITE_NOTADB && code != SQLITE_FORMAT)
                throw std::runtime_error("cannot open the queue " + options_.path.string() + ": " + e.what() +
                                         " (the file is kept as it is; free space on its disk or fix its permissions)");
            problem = e.what();
        }
        if (!problem.empty()) {
            report_.recovered = true;
            report_.problem = problem;
            report_.old_epoch = try_read_epoch(options_.path);
            const auto aside = std::filesystem::path(options_.path.string() + ".corrupt-" + utc_stamp());
            move_aside(options_.path, aside);
            report_.moved_to = aside.string();
            spdlog::error("uplink queue {} is unreadable ({}); moved it to {} and started a new queue; events in it "
                          "that were not yet acknowledged are lost and reported upstream as a gap",
                          options_.path.string(), problem, aside.string());
        }
    }
    report_.created = !existed || report_.recovered;
    open_database();
    report_.check_took = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started);
    for (auto l : all_lanes) report_.backlog += depth_[static_cast<int>(l)];

    if (report_.recovered) {
        std::string msg = "the queue database was unreadable (" + report_.problem + "); it was moved to " +
                          report_.moved_to + " and a new epoch began";
        if (!report_.old_epoch.empty()) msg += "; events of epoch " + report_.old_epoch + " not yet acknowledged are lost";
        push_gateway_event(event{event_kind::gap, "queue_lost"}.message(std::string(firelink::text::utf8_prefix(msg, 1024))).pack(), "gap");
    }
    refresh_reserve();
    writer_ = std::thread([this] { writer_loop(); });
    checkpointer_ = std::thread([this] { checkpoint_loop(); });
}

int durable_queue::on_wal_commit(void *self, sqlite3 *, const char *, int frames) {
    auto *q = static_cast<durable_queue *>(self);
    q->wal_frames_ = frames;
    // Past twice the threshold the writer checkpoints between its commits (writer_loop); the checkpointer stays out of
    // its way then, or the two would keep finding each other's checkpoint running and the log would never restart.
    if (frames >= q->checkpoint_frames_ && frames <= 2 * q->checkpoint_frames_) {
        {
            std::lock_guard lock(q->checkpoint_mutex_);
            q->checkpoint_due_ = true;
        }
        q->checkpoint_cv_.notify_one();
    }
    return SQLITE_OK;
}

void durable_queue::checkpoint_loop() {
    std::unique_ptr<SQLite::Database> db;
    try {
        db = std::make_unique<SQLite::Database>(options_.path.string(), SQLite::OPEN_READWRITE, 5000);
    } catch (const std::exception &e) {
        spdlog::error("uplink queue: no checkpoint connection ({}); the writer checkpoints inline", e.what());
        return;
    }
    std::unique_lock lock(checkpoint_mutex_);
    for (;;) {
        checkpoint_cv_.wait(lock, [&] { return checkpoint_stop_ || checkpoint_due_; });
        if (checkpoint_stop_) return;
        checkpoint_due_ = false;
        lock.unlock();
        try {
            db->exec("PRAGMA wal_checkpoint(PASSIVE)");
        } catch (const std::exception &e) {
            spdlog::warn("uplink queue: checkpoint failed: {}", e.what());
        }
        lock.lock();
    }
}

void durable_queue::open_database() {
    // The file is shared: the audit chain and the linkage engine write their own tables in it. Without a busy
    // timeout a commit that meets one of their (short) transactions fails at once and waits for the writer's retry
    // (up to 500 ms): every event behind it, alarms too, arrives that much later.
    db_ = std::make_unique<SQLite::Database>(options_.path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE,
                                             5000);
    page_size_ = static_cast<std::uint64_t>(db_->execAndGet("PRAGMA page_size").getInt64());
    db_->exec("PRAGMA journal_mode=WAL");
    db_->exec("PRAGMA synchronous=FULL");
    // No checkpoint inside the writer's commits: the checkpointer thread runs them (on_wal_commit).
    sqlite3_wal_hook(db_->getHandle(), &on_wal_commit, this);
    db_->exec("PRAGMA journal_size_limit=" + std::to_string(std::min<std::uint64_t>(64 << 20, wal_room_)));
    db_->exec("PRAGMA temp_store=MEMORY");
    fit_to_disk(false);
    // Writes only for a new file: an existing queue opens without writing, so a full disk does not stop a start.
    const auto has_first_record = [&] {
        return db_->execAndGet("SELECT count(*) FROM pragma_table_info('conditions') WHERE name = 'first_seq'")
                   .getInt() == 1;
    };
    const bool ready = db_->tableExists("meta") && db_->tableExists("lane_state") && db_->tableExists("events") &&
                       db_->tableExists("quarantine") && db_->tableExists("conditions") && has_first_record() &&
                       db_->execAndGet("SELECT count(*) FROM lane_state").getInt() == lane_count &&
                       db_->execAndGet("SELECT count(*) FROM meta WHERE key='epoch'").getInt() == 1;
    if (ready && db_->execAndGet("PRAGMA user_version").getInt() < schema_version) {
        // A queue from before the format had a number: the same format. Numbered when the disk allows; a full disk
        // must not stop the start (it is numbered at a later start).
        try {
            db_->exec("PRAGMA user_version=" + std::to_string(schema_version));
        } catch (const SQLite::Exception &e) {
            spdlog::warn("uplink queue: cannot write its format number yet ({}); it opens as format {}", e.what(),
                         schema_version);
        }
    }
    if (!ready) {
        SQLite::Transaction tx(*db_);
        db_->exec("PRAGMA application_id=" + std::to_string(application_id));
        db_->exec("PRAGMA user_version=" + std::to_string(schema_version));
        db_->exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
        db_->exec("CREATE TABLE IF NOT EXISTS lane_state(lane INTEGER PRIMARY KEY, next_seq INTEGER NOT NULL, "
                  "bytes INTEGER NOT NULL, depth INTEGER NOT NULL)");
        // id = lane << 56 | seq: one integer key keeps each lane's records contiguous and in seq order.
        db_->exec("CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, size INTEGER NOT NULL, "
                  "pairs INTEGER NOT NULL, body BLOB NOT NULL)");
        db_->exec("CREATE TABLE IF NOT EXISTS quarantine(lane INTEGER NOT NULL, seq INTEGER NOT NULL, status INTEGER "
                  "NOT NULL, reason TEXT NOT NULL, at_ms INTEGER NOT NULL, pairs INTEGER NOT NULL, body BLOB NOT NULL, "
                  "PRIMARY KEY(lane, seq))");
        // Host-kept conditions (firelink.conditions/1): a device's open alarms, pre-alarms and faults. `change` is
        // the order of the change that wrote the row (durable_queue::push), so a change committed late never
        // overwrites or deletes a newer one. first_lane and first_seq are the key of the record that first raised
        // the condition, which its re-reports name (`repeats`); NULL in rows stored before they existed. Queue files
        // made before this table or these columns get them here too (all statements above are idempotent).
        db_->exec("CREATE TABLE IF NOT EXISTS conditions(device TEXT NOT NULL, event_id TEXT NOT NULL, change INTEGER "
                  "NOT NULL, kind TEXT NOT NULL, code TEXT NOT NULL, raised_wall_ms INTEGER NOT NULL, event BLOB NOT "
                  "NULL, first_lane INTEGER, first_seq INTEGER, PRIMARY KEY(device, event_id))");
        if (!has_first_record()) {
            db_->exec("ALTER TABLE conditions ADD COLUMN first_lane INTEGER");
            db_->exec("ALTER TABLE conditions ADD COLUMN first_seq INTEGER");
        }
        SQLite::Statement put(*db_, "INSERT OR IGNORE INTO meta(key, value) VALUES('epoch', ?)");
        put.bind(1, random_epoch());
        put.exec();
        SQLite::Statement gw(*db_, "INSERT OR IGNORE INTO meta(key, value) VALUES('gateway', ?)");
        gw.bind(1, options_.gateway_id);
        gw.exec();
        for (auto l : all_lanes) {
            SQLite::Statement ins(*db_, "INSERT OR IGNORE INTO lane_state VALUES(?, 1, 0, 0)");
            ins.bind(1, static_cast<int>(l));
            ins.exec();
        }
        tx.commit();
    }
    epoch_ = db_->execAndGet("SELECT value FROM meta WHERE key='epoch'").getString();
    try {
        db_->exec("INSERT OR REPLACE INTO meta(key, value) VALUES('clean_close', '0')");
    } catch (const SQLite::Exception &e) {
        spdlog::warn("uplink queue: cannot mark the queue open ({}); the next start checks it anyway only if this "
                     "run ends uncleanly", e.what());
    }
    SQLite::Statement lanes(*db_, "SELECT lane, next_seq, bytes, depth FROM lane_state");
    while (lanes.executeStep()) {
        const int l = lanes.getColumn(0).getInt();
        if (l < 0 || l >= lane_count) continue;
        next_seq_[l] = static_cast<std::uint64_t>(lanes.getColumn(1).getInt64());
        bytes_[l] = static_cast<std::uint64_t>(lanes.getColumn(2).getInt64());
        depth_[l] = static_cast<std::uint64_t>(lanes.getColumn(3).getInt64());
        last_seq_[l] = next_seq_[l] - 1;
        near_full_[l] = l != static_cast<int>(lane::telemetry) && bytes_[l] * 10 >= options_.cap_bytes[l] * 9;
    }
    SQLite::Statement meta(*db_, "SELECT key, value FROM meta WHERE key IN ('command_cursor', 'gateway_seq', "
                                 "'reserve_fault')");
    while (meta.executeStep()) {
        const auto key = meta.getColumn(0).getString();
        const auto value = std::stoull(meta.getColumn(1).getString());
        if (key == "command_cursor") command_cursor_ = value;
        else if (key == "gateway_seq") gateway_seq_ = value;
        else reserve_fault_open_ = value != 0;
    }
    quarantine_total_ = static_cast<std::uint64_t>(db_->execAndGet("SELECT count(*) FROM quarantine").getInt64());
    change_seq_ = static_cast<std::uint64_t>(db_->execAndGet("SELECT coalesce(max(change), 0) FROM conditions").getInt64());
}

durable_queue::~durable_queue() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (writer_.joinable()) writer_.join();
    {
        std::lock_guard lock(checkpoint_mutex_);
        checkpoint_stop_ = true;
    }
    checkpoint_cv_.notify_all();
    if (checkpointer_.joinable()) checkpointer_.join();
    try {
        if (db_) {
            db_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
            db_->exec("INSERT OR REPLACE INTO meta(key, value) VALUES('clean_close', '1')");
            db_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
        }
    } catch (const std::exception &e) {
        spdlog::warn("uplink queue: closing cleanly failed: {}; the next start checks the whole file", e.what());
    }
}

// ---- taking events ---------------------------------------------------------------------------------------------

bool durable_queue::would_admit(lane l) const {
    const int i = static_cast<int>(l);
    // Alarms are never refused for the memory of what waits for the writer: telemetry must not crowd them out.
    if (l != lane::alarm && pending_.load() >= options_.max_pending) return false;
    if (l == lane::telemetry) return !disk_full_.load();
    if (disk_full_.load() && l != lane::alarm) return false;
    return bytes_[i].load() < options_.cap_bytes[i];
}

bool durable_queue::admit_or_count_refusal(lane l) {
    if (would_admit(l)) return true;
    refused_[static_cast<int>(l)]++;
    return false;
}

bool durable_queue::push(lane l, std::vector<std::uint8_t> body, std::uint32_t pairs,
                         std::function<void(std::uint64_t)> on_commit, std::optional<core::condition_change> condition) {
    if (!admit_or_count_refusal(l)) return false;
    push_admitted(l, std::move(body), pairs, std::move(on_commit), std::move(condition));
    return true;
}

void durable_queue::push_admitted(lane l, std::vector<std::uint8_t> body, std::uint32_t pairs,
                                  std::function<void(std::uint64_t)> on_commit,
                                  std::optional<core::condition_change> condition) {
    op o;
    o.what = op::type::insert;
    o.l = l;
    o.body = std::move(body);
    o.pairs = pairs;
    o.on_commit = std::move(on_commit);
    o.condition = std::move(condition);
    {
        std::lock_guard lock(mutex_);
        if (o.condition) o.change = ++change_seq_;
        (l == lane::alarm ? alarm_ops_ : ops_).push_back(std::move(o));
        ++pushed_;
        ++pending_;
        ++waiting_[static_cast<int>(l)];
    }
    cv_.notify_one();
}

void durable_queue::push_gateway_event(std::vector<std::uint8_t> event_payload, std::string_view kind,
                                       std::function<void(std::uint64_t)> on_commit) {
    op o;
    o.on_commit = std::move(on_commit);
    o.what = op::type::insert;
    o.l = lane_of(kind);
    o.kind = std::string(kind);
    o.body = std::move(event_payload);
    o.pairs = 0;  // 0: a gateway event's payload; the writer wraps it in a record with the gateway's own seq
    {
        std::lock_guard lock(mutex_);
        ++waiting_[static_cast<int>(o.l)];
        (o.l == lane::alarm ? alarm_ops_ : ops_).push_back(std::move(o));
        ++pushed_;
        ++pending_;
    }
    cv_.notify_one();
}

void durable_queue::on_commit(std::function<void(const std::array<std::uint64_t, lane_count> &)> listener) {
    std::lock_guard lock(mutex_);
    listeners_.push_back(std::move(listener));
}

void durable_queue::ack(lane l, std::uint64_t through, std::vector<reject> rejects) {
    op o;
    o.what = op::type::ack;
    o.l = l;
    o.through = through;
    o.rejects = std::move(rejects);
    {
        std::lock_guard lock(mutex_);
        ops_.push_back(std::move(o));
        ++pushed_;
    }
    cv_.notify_one();
}

void durable_queue::forget_conditions(std::vector<std::string> device_ids) {
    if (device_ids.empty()) return;
    op o;
    o.what = op::type::forget;
    o.devices = std::move(device_ids);
    {
        std::lock_guard lock(mutex_);
        ops_.push_back(std::move(o));
        ++pushed_;
    }
    cv_.notify_one();
}

bool durable_queue::set_command_cursor(std::uint64_t cursor) {
    op o;
    o.what = op::type::cursor;
    o.cursor = cursor;
    o.done = std::make_shared<std::promise<bool>>();
    auto done = o.done->get_future();
    {
        std::lock_guard lock(mutex_);
        ops_.push_back(std::move(o));
        ++pushed_;
    }
    cv_.notify_one();
    return done.get();
}

bool durable_queue::flush(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    const auto target = pushed_;
    return done_cv_.wait_for(lock, timeout, [&] { return finished_ >= target; });
}

// ---- the writer ------------------------------------------------------------------------------------------------

void durable_queue::writer_loop() {
    std::deque<op> batch;
    auto retry_at = clock::time_point{};
    // Commits ops and tells whoever waits; false leaves them for a retry.
    auto commit = [&](std::deque<op> &ops) {
        const std::size_t n = ops.size();
        if (!apply(ops)) return false;
        std::array<std::uint64_t, lane_count> last{};
        for (auto l : all_lanes) last[static_cast<int>(l)] = last_seq_[static_cast<int>(l)];
        std::vector<std::function<void(const std::array<std::uint64_t, lane_count> &)>> listeners;
        {
            std::lock_guard lock(mutex_);
            finished_ += n;
            listeners = listeners_;
        }
        done_cv_.notify_all();
        for (auto &f : listeners) f(last);
        ops.clear();
        return true;
    };
    for (;;) {
        bool reserve_due = false, room_due = false;
        {
            std::unique_lock lock(mutex_);
            const bool gap_due = unreported_evicted_ > 0;
            // A new alarm never waits for a retry time; other ops wait for it.
            auto ready = [&] {
                return stopping_ || !alarm_ops_.empty() || (!ops_.empty() && clock::now() >= retry_at);
            };
            // Wake for a held batch's retry, a due gap report, on a full disk every 5 s to look for room, and while
            // the reserve is missing every second to try it again.
            auto deadline = clock::time_point::max();
            if (!batch.empty()) deadline = retry_at;
            if (gap_due) deadline = std::min(deadline, clock::now() + 1s);
            if (disk_full_) deadline = std::min(deadline, clock::now() + 5s);
            if (reserve_missing()) deadline = std::min(deadline, clock::now() + 1s);
            if (reserve_missing() != reserve_fault_open_)
                ;  // the platform is yet to hear that the reserve went or came back: no wait
            else if (deadline == clock::time_point::max())
                cv_.wait(lock, ready);
            else
                cv_.wait_until(lock, deadline, ready);
            if (stopping_ && ops_.empty() && alarm_ops_.empty() && batch.empty() && unreported_evicted_ == 0) return;
            final_ = stopping_ && ops_.empty() && alarm_ops_.empty();
            // Room freed by someone else (an operator, logrotate) reopens the lanes without waiting for an event.
            room_due = disk_full_ && ops_.empty() && batch.empty();
            // A reserve given up (or never made: the disk was full at start) is tried again every second.
            reserve_due = !disk_full_ && reserve_missing() && clock::now() - last_shrink_ >= 1s;
            // A failed batch stays at the front: take new ops behind it. Alarms first: while alarms wait, a round
            // takes only them, so an alarm waits at most for the transaction already running. A round takes at most
            // max_group ops and about group_bytes_ of records (what one transaction may add to the log).
            std::uint64_t bytes = 0;
            for (const auto &o : batch) bytes += o.body.size();
            auto room = [&] { return batch.size() < options_.max_group && (batch.empty() || bytes < group_bytes_); };
            const bool alarms_only = !alarm_ops_.empty();
            while (!alarm_ops_.empty() && room()) {
                bytes += alarm_ops_.front().body.size();
                batch.push_back(std::move(alarm_ops_.front()));
                alarm_ops_.pop_front();
            }
            while (!alarms_only && !ops_.empty() && room()) {
                bytes += ops_.front().body.size();
                batch.push_back(std::move(ops_.front()));
                ops_.pop_front();
            }
        }
        // Not under the lock, which every push takes: these read the database, and refresh_reserve may VACUUM.
        if (room_due && disk_has_room()) reopen_lanes();
        if (reserve_due) refresh_reserve();
        const bool reserve_news = reserve_missing() != reserve_fault_open_;  // the platform is yet to hear of it
        if (batch.empty() && unreported_evicted_ == 0 && !reserve_news) continue;
        // On a full disk, what frees room or must not wait (acknowledgements, the command cursor, alarms) commits on
        // its own, ahead of the events the disk will not take yet: an ack that waited behind them would never come.
        if (disk_full_) {
            std::deque<op> urgent, rest;
            for (auto &o : batch)
                ((o.what == op::type::insert && o.l != lane::alarm) || o.what == op::type::forget ? rest : urgent)
                    .push_back(std::move(o));
            if (!urgent.empty() && !rest.empty() && commit(urgent)) {
                batch = std::move(rest);
                retry_at = clock::now() + 500ms;
                continue;
            }
            batch = std::move(urgent);
            for (auto &o : rest) batch.push_back(std::move(o));
        }
        if (commit(batch)) {
            retry_at = {};
            // While commits keep coming the checkpointer never catches the log's end, and the log only restarts
            // once a checkpoint did: past twice the checkpointer's threshold the writer copies the (few) frames it
            // has not, between commits.
            if (wal_frames_ > 2 * checkpoint_frames_) {
                try {
                    db_->exec("PRAGMA wal_checkpoint(PASSIVE)");
                } catch (const std::exception &e) {
                    spdlog::warn("uplink queue: checkpoint failed: {}", e.what());
                }
            }
        } else {
            bool stop;
            {
                std::lock_guard lock(mutex_);
                stop = stopping_;
            }
            if (stop) {
                // Shutting down with a batch the disk will not take: it was never accepted (never committed);
                // the drivers re-report active conditions on their next start (FL-PLUGIN-29).
                const std::size_t n = batch.size();
                std::uint64_t inserts = 0;  // pending_ counts inserts only (acks and the cursor are not events)
                for (auto &o : batch) {
                    if (o.done) o.done->set_value(false);
                    if (o.what == op::type::insert) {
                        waiting_[static_cast<int>(o.l)]--;
                        ++inserts;
                    }
                }
                spdlog::error("uplink queue: stopping with {} events not committed (disk full or failing)", inserts);
                {
                    std::lock_guard lock(mutex_);
                    finished_ += n;
                    pending_ -= std::min<std::uint64_t>(pending_, inserts);
                }
                done_cv_.notify_all();
                return;
            }
            // A batch with alarms is tried again soon; others wait longer while the disk is full.
            const bool alarms = std::any_of(batch.begin(), batch.end(), [](const op &o) {
                return o.what == op::type::insert && o.l == lane::alarm;
            });
            retry_at = clock::now() + (alarms ? 200ms : disk_full_ ? 2s : 500ms);
        }
    }
}

// One transaction for a batch of ops. Lane state is computed in copies and published only after the commit, so a
// failed transaction leaves nothing half-done.
bool durable_queue::apply(std::deque<op> &ops, int attempt) {
    const bool for_alarms =
        std::all_of(ops.begin(), ops.end(), [](const op &o) { return o.what != op::type::insert || o.l == lane::alarm; });
    fit_to_disk(for_alarms);
    auto next = next_seq_;
    std::array<std::uint64_t, lane_count> bytes{}, depth{}, acked_through{};
    for (int i = 0; i < lane_count; ++i) {
        bytes[i] = bytes_[i];
        depth[i] = depth_[i];
        acked_through[i] = acked_through_[i];
    }
    std::array<std::uint64_t, lane_count> committed{}, acked{}, quarantined{}, evicted{};
    std::vector<std::pair<std::size_t, std::uint64_t>> assigned;  // op index → seq
    std::vector<std::pair<lane, std::uint64_t>> continued;        // acknowledgements this transaction did in part
    std::vector<core::accepted_event> gateway_events;              // for the local record, once committed
    auto gateway_seq = gateway_seq_;
    bool reserve_fault = reserve_fault_open_;
    auto cursor = command_cursor_.load();
    std::uint64_t evicted_first = 0, evicted_last = 0;
    std::array<bool, lane_count> near = {near_full_[0].load(), near_full_[1].load(), near_full_[2].load()};
    const auto t0 = clock::now();
    std::size_t inserts = 0;

    try {
        SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
        SQLite::Statement insert(*db_, "INSERT INTO events(id, size, pairs, body) VALUES(?, ?, ?, ?)");
        auto put = [&](lane l, const std::vector<std::uint8_t> &body, std::uint32_t pairs) {
            const int i = static_cast<int>(l);
            const auto seq = next[i]++;
            insert.bind(1, row_id(l, seq));
            insert.bind(2, static_cast<std::int64_t>(body.size()));
            insert.bind(3, static_cast<std::int64_t>(pairs));
            insert.bind(4, body.data(), static_cast<int>(body.size()));
            insert.exec();
            insert.reset();
            bytes[i] += body.size();
            depth[i]++;
            committed[i]++;
            return seq;
        };
        auto gateway_event = [&](std::vector<std::uint8_t> payload, lane l, std::string kind) {
            std::uint32_t pairs = 0;
            auto ev = uplink::gateway_event(options_.gateway_id, ++gateway_seq, std::move(kind), std::move(payload));
            const auto body = encode_record(ev, pairs);
            const auto seq = put(l, body, pairs);
            if (options_.on_gateway_event) gateway_events.push_back(std::move(ev));
            return seq;
        };

        for (std::size_t k = 0; k < ops.size(); ++k) {
            auto &o = ops[k];
            if (o.what == op::type::insert) {
                ++inserts;
                std::uint64_t seq;
                if (o.pairs == 0) {
                    // A gateway event's bare payload, wrapped here with the gateway's own sequence number.
                    seq = gateway_event(o.body, o.l, o.kind);
                } else if (const auto first = o.condition && o.condition->rereport ? first_record(*o.condition)
                                                                                    : std::nullopt) {
                    // A re-report names the record that first raised its condition. That record was pushed before
                    // it, in the same lane (same kind), so it is committed by now, earlier in this transaction at the
                    // latest. A copy: the op's own body stays as pushed, for a retry of this transaction.
                    auto body = o.body;
                    auto pairs = o.pairs;
                    append_repeats(body, pairs, epoch_, first->first, first->second);
                    seq = put(o.l, body, pairs);
                } else {
                    seq = put(o.l, o.body, o.pairs);
                }
                assigned.emplace_back(k, seq);
                if (o.condition) store_condition(o, seq);
            } else if (o.what == op::type::forget) {
                SQLite::Statement del(*db_, "DELETE FROM conditions WHERE device = ?");
                for (const auto &d : o.devices) {
                    del.bind(1, d);
                    del.exec();
                    del.reset();
                }
            } else if (o.what == op::type::ack) {
                const int i = static_cast<int>(o.l);
                auto through = std::min<std::uint64_t>(o.through, next[i] - 1);
                if (through <= acked_through[i] && o.rejects.empty()) continue;
                for (const auto &r : o.rejects) {
                    SQLite::Statement q(*db_,
                                        "INSERT OR REPLACE INTO quarantine(lane, seq, status, reason, at_ms, pairs, body) "
                                        "SELECT ?, ?, ?, ?, ?, pairs, body FROM events WHERE id = ?");
                    q.bind(1, i);
                    q.bind(2, static_cast<std::int64_t>(r.seq));
                    q.bind(3, r.status);
                    q.bind(4, std::string(firelink::text::utf8_prefix(r.reason, 1024)));
                    q.bind(5, wall_ms());
                    q.bind(6, row_id(o.l, r.seq));
                    quarantined[i] += static_cast<std::uint64_t>(q.exec());
                }
                // Deleting rows writes their pages to the log: one transaction deletes about group_bytes_ of
                // records, and the rest of a long acknowledgement follows in the next (a full disk has room for that
                // much log, not for a whole lane's).
                const auto avg = std::max<std::uint64_t>(1, depth[i] ? bytes[i] / depth[i] : 1);
                const auto chunk = std::max<std::uint64_t>(64, group_bytes_ / avg);
                SQLite::Statement nth(*db_, "SELECT id FROM events WHERE id BETWEEN ? AND ? ORDER BY id LIMIT 1 OFFSET ?");
                nth.bind(1, row_id(o.l, 0));
                nth.bind(2, row_id(o.l, through));
                nth.bind(3, static_cast<std::int64_t>(chunk));
                if (nth.executeStep()) {
                    continued.push_back({o.l, through});
                    through = (static_cast<std::uint64_t>(nth.getColumn(0).getInt64()) & seq_mask) - 1;
                }
                SQLite::Statement sum(*db_, "SELECT count(*), coalesce(sum(size), 0) FROM events WHERE id BETWEEN ? AND ?");
                sum.bind(1, row_id(o.l, 0));
                sum.bind(2, row_id(o.l, through));
                sum.executeStep();
                const auto n = static_cast<std::uint64_t>(sum.getColumn(0).getInt64());
                const auto b = static_cast<std::uint64_t>(sum.getColumn(1).getInt64());
                SQLite::Statement del(*db_, "DELETE FROM events WHERE id BETWEEN ? AND ?");
                del.bind(1, row_id(o.l, 0));
                del.bind(2, row_id(o.l, through));
                del.exec();
                depth[i] -= std::min(depth[i], n);
                bytes[i] -= std::min(bytes[i], b);
                acked[i] += n;
                acked_through[i] = std::max(acked_through[i], through);
            } else {
                cursor = std::max(cursor, o.cursor);
                SQLite::Statement q(*db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('command_cursor', ?)");
                q.bind(1, std::to_string(cursor));
                q.exec();
            }
        }

        // Telemetry beyond its cap: evict oldest-first down to 95 % of the cap.
        constexpr int t = static_cast<int>(lane::telemetry);
        if (bytes[t] > options_.cap_bytes[t]) {
            const auto target = options_.cap_bytes[t] / 100 * 95;
            SQLite::Statement oldest(*db_, "SELECT id, size FROM events WHERE id BETWEEN ? AND ? ORDER BY id");
            oldest.bind(1, row_id(lane::telemetry, 0));
            oldest.bind(2, row_id(lane::telemetry, seq_mask));
            std::int64_t last_id = -1;
            std::uint64_t n = 0, freed = 0;
            while (bytes[t] - freed > target && oldest.executeStep()) {
                last_id = oldest.getColumn(0).getInt64();
                freed += static_cast<std::uint64_t>(oldest.getColumn(1).getInt64());
                if (n++ == 0) evicted_first = static_cast<std::uint64_t>(last_id) & seq_mask;
            }
            oldest.reset();
            if (n) {
                SQLite::Statement del(*db_, "DELETE FROM events WHERE id BETWEEN ? AND ?");
                del.bind(1, row_id(lane::telemetry, 0));
                del.bind(2, last_id);
                del.exec();
                evicted_last = static_cast<std::uint64_t>(last_id) & seq_mask;
                bytes[t] -= freed;
                depth[t] -= std::min(depth[t], n);
                evicted[t] += n;
            }
        }

        // Evictions are reported at most once a second, one gap event covering all since the last.
        auto unreported = unreported_evicted_ + evicted[t];
        auto first = unreported_evicted_ ? unreported_first_ : evicted_first;
        auto last = evicted[t] ? evicted_last : unreported_last_;
        const bool report_gap = unreported > 0 && (final_ || clock::now() - last_gap_report_ >= 1s);
        if (report_gap) {
            gateway_event(event{event_kind::gap, "telemetry_evicted"}
                              .message("the queue evicted " + std::to_string(unreported) +
                                       " telemetry records (lane seq " + std::to_string(first) + ".." +
                                       std::to_string(last) + ") to stay within its cap")
                              .value("count", static_cast<std::int64_t>(unreported))
                              .value("first_seq", static_cast<std::int64_t>(first))
                              .value("last_seq", static_cast<std::int64_t>(last))
                              .pack(),
                          lane::event, "gap");
        }

        // Near full: a local alarm at 90 % of the alarm or event lane's cap, its restore below 80 %.
        for (auto l : {lane::alarm, lane::event}) {
            const int i = static_cast<int>(l);
            const auto cap = options_.cap_bytes[i];
            const std::string id = std::string("queue-near-full-") + to_string(l);
            if (!near[i] && bytes[i] * 10 >= cap * 9) {
                near[i] = true;
                spdlog::critical("uplink queue: the {} lane holds {} of its {} bytes; new {} events are refused until "
                                 "the platform acknowledges",
                                 to_string(l), bytes[i], cap, to_string(l));
                gateway_event(event{event_kind::fault, "queue_near_full"}
                                  .id(id)
                                  .level(severity::critical)
                                  .message(std::string("the gateway's queue for the ") + to_string(l) +
                                           " lane is over 90 % full; the platform has not acknowledged for a while")
                                  .value("bytes", static_cast<std::int64_t>(bytes[i]))
                                  .value("cap_bytes", static_cast<std::int64_t>(cap))
                                  .pack(),
                              lane::alarm, "fault");
            } else if (near[i] && bytes[i] * 10 < cap * 8) {
                near[i] = false;
                spdlog::info("uplink queue: the {} lane is below 80 % again", to_string(l));
                gateway_event(event{event_kind::restore, "queue_near_full"}.ends(id).pack(), lane::event, "restore");
            }
        }

        // Without its reserve the queue has nothing kept for alarms against other programs that fill the disk: a
        // fault of the gateway, restored once the file is back. In the event lane, where fault and restore keep
        // their order.
        if (const bool missing = reserve_missing(); missing != reserve_fault) {
            reserve_fault = missing;
            constexpr const char *id = "alarm-reserve-missing";
            if (missing)
                gateway_event(event{event_kind::fault, "alarm_reserve_missing"}
                                  .id(id)
                                  .level(severity::major)
                                  .message("the gateway's queue holds no disk space in reserve for alarms: when its "
                                           "disk fills up, alarms may be refused")
                                  .value("reserve_bytes", static_cast<std::int64_t>(reserve_target_))
                                  .pack(),
                              lane::event, "fault");
            else
                gateway_event(event{event_kind::restore, "alarm_reserve_missing"}.ends(id).pack(), lane::event,
                              "restore");
            SQLite::Statement q(*db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('reserve_fault', ?)");
            q.bind(1, missing ? "1" : "0");
            q.exec();
        }

        SQLite::Statement state(*db_, "UPDATE lane_state SET next_seq = ?, bytes = ?, depth = ? WHERE lane = ?");
        for (int i = 0; i < lane_count; ++i) {
            state.bind(1, static_cast<std::int64_t>(next[i]));
            state.bind(2, static_cast<std::int64_t>(bytes[i]));
            state.bind(3, static_cast<std::int64_t>(depth[i]));
            state.bind(4, i);
            state.exec();
            state.reset();
        }
        if (gateway_seq != gateway_seq_) {
            SQLite::Statement q(*db_, "INSERT OR REPLACE INTO meta(key, value) VALUES('gateway_seq', ?)");
            q.bind(1, std::to_string(gateway_seq));
            q.exec();
        }
        tx.commit();

        // Committed: publish.
        for (int i = 0; i < lane_count; ++i) {
            next_seq_[i] = next[i];
            bytes_[i] = bytes[i];
            depth_[i] = depth[i];
            last_seq_[i] = next[i] - 1;
            acked_through_[i] = acked_through[i];
            committed_[i] += committed[i];
            acked_[i] += acked[i];
            quarantined_[i] += quarantined[i];
            evicted_[i] += evicted[i];
            near_full_[i] = near[i];
            quarantine_total_ += quarantined[i];
        }
        if (report_gap) {
            unreported_evicted_ = 0;
            last_gap_report_ = clock::now();
        } else if (unreported) {
            unreported_evicted_ = unreported;
            unreported_first_ = first;
            unreported_last_ = last;
        }
        gateway_seq_ = gateway_seq;
        reserve_fault_open_ = reserve_fault;
        command_cursor_ = cursor;
        pending_ -= std::min<std::uint64_t>(pending_, inserts);
        for (const auto &o : ops)
            if (o.what == op::type::insert) waiting_[static_cast<int>(o.l)]--;
        transactions_++;
        const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
        last_commit_ms_ = ms;
        if (ms > max_commit_ms_) max_commit_ms_ = ms;
        // While the disk is tight only alarms are admitted; the other lanes open again once there is room.
        if (disk_full_ && disk_has_room()) reopen_lanes();
        if (!continued.empty()) {
            std::lock_guard lock(mutex_);
            for (const auto &[l, through] : continued) {
                op rest;
                rest.what = op::type::ack;
                rest.l = l;
                rest.through = through;
                ops_.push_front(std::move(rest));
                ++pushed_;
            }
        }
        for (const auto &ev : gateway_events) options_.on_gateway_event(ev);
        for (auto &[k, seq] : assigned)
            if (ops[k].on_commit) ops[k].on_commit(seq);
        for (auto &o : ops)
            if (o.done) o.done->set_value(true);
        return true;
    } catch (const SQLite::Exception &e) {
        commit_errors_++;
        const int code = e.getErrorCode() & 0xff;
        if (code == SQLITE_FULL) {
            if (!disk_full_.exchange(true))
                spdlog::critical("uplink queue: the disk is full ({}); only alarms are admitted; telemetry is evicted, "
                                 "then the reserve is given to alarms; other events wait in memory for room",
                                 e.what());
            if (attempt < 16 && make_room(for_alarms, attempt)) return apply(ops, attempt + 1);
        } else {
            spdlog::error("uplink queue: a transaction of {} operations failed: {}; retrying", ops.size(), e.what());
        }
        return false;  // nothing is dropped: the writer retries the same batch
    }
}

// Inside apply's transaction: the key of the record that first raised the condition a re-report repeats, when the
// row has one.
std::optional<std::pair<lane, std::uint64_t>> durable_queue::first_record(const core::condition_change &c) {
    if (!c.opened) return std::nullopt;
    SQLite::Statement q(*db_, "SELECT first_lane, first_seq FROM conditions WHERE device = ? AND event_id = ? AND "
                              "first_seq IS NOT NULL");
    q.bind(1, c.device_id);
    q.bind(2, c.opened->event_id);
    if (!q.executeStep()) return std::nullopt;
    const int l = q.getColumn(0).getInt();
    if (l < 0 || l >= lane_count) return std::nullopt;
    return std::pair{static_cast<lane>(l), static_cast<std::uint64_t>(q.getColumn(1).getInt64())};
}

// Inside apply's transaction. An op that alarm priority moved ahead of an older one for the same condition carries
// a higher `change`: the older, committed after it, neither overwrites its row nor deletes it. `seq` is the op's
// own record: the condition's first unless the op re-reports it, whose row keeps the first it has.
void durable_queue::store_condition(const op &o, std::uint64_t seq) {
    const auto &c = *o.condition;
    const auto change = static_cast<std::int64_t>(o.change);
    if (!c.closed.empty()) {
        SQLite::Statement del(*db_, "DELETE FROM conditions WHERE device = ? AND event_id = ? AND change < ?");
        for (const auto &id : c.closed) {
            del.bind(1, c.device_id);
            del.bind(2, id);
            del.bind(3, change);
            del.exec();
            del.reset();
        }
    }
    if (c.opened) {
        const auto &x = *c.opened;
        SQLite::Statement up(*db_,
                             "INSERT INTO conditions(device, event_id, change, kind, code, raised_wall_ms, event, "
                             "first_lane, first_seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(device, event_id) "
                             "DO UPDATE SET change = excluded.change, kind = excluded.kind, code = excluded.code, "
                             "raised_wall_ms = excluded.raised_wall_ms, event = excluded.event, "
                             "first_lane = CASE WHEN ?10 THEN conditions.first_lane ELSE excluded.first_lane END, "
                             "first_seq = CASE WHEN ?10 THEN conditions.first_seq ELSE excluded.first_seq END "
                             "WHERE excluded.change > conditions.change");
        up.bind(1, c.device_id);
        up.bind(2, x.event_id);
        up.bind(3, change);
        up.bind(4, x.kind);
        up.bind(5, x.code);
        up.bind(6, x.raised_wall_ms);
        up.bind(7, x.event.data(), static_cast<int>(x.event.size()));
        up.bind(8, static_cast<int>(o.l));
        up.bind(9, static_cast<std::int64_t>(seq));
        up.bind(10, c.rereport ? 1 : 0);
        up.exec();
    }
}

// ---- fitting the disk -----------------------------------------------------------------------------------------
//
// A full disk must not wedge the queue: an acknowledgement deletes records, but even a delete writes to the
// write-ahead log, and a checkpoint that moves new pages from the log into the database grows the file. If the
// database were let to grow until the disk is full, neither could happen, and the queue would stay full after the
// platform came back. So the database's growth is capped (SQLite's max_page_count, set before each transaction from
// the disk's free space) to stop `wal_room_` short of the disk's end, and for any lane but alarms another
// `reserve_target_` short: the last of the disk is the log's and the alarms'. Transactions are cut to a quarter of the
// log's room, and the checkpointer runs often enough on a small disk that the log restarts within it. On top, a
// preallocated reserve file keeps room for alarms against other programs that fill the disk.

// Sizes for the queue's file system, from its total size: a 4 MiB disk keeps 512 KiB for the log, a large one 32 MiB.
std::uint64_t durable_queue::disk_avail() const {
    struct statvfs vfs {};
    const auto dir = options_.path.has_parent_path() ? options_.path.parent_path() : std::filesystem::path(".");
    // A file system that cannot say is taken as roomy: no cap, no reserve given up.
    return ::statvfs(dir.c_str(), &vfs) == 0 ? static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize : UINT64_MAX;
}

void durable_queue::size_for_disk() {
    struct statvfs vfs {};
    const auto dir = options_.path.has_parent_path() ? options_.path.parent_path() : std::filesystem::path(".");
    const std::uint64_t total =
        ::statvfs(dir.c_str(), &vfs) == 0 ? static_cast<std::uint64_t>(vfs.f_blocks) * vfs.f_frsize : 1ull << 40;
    wal_room_ = std::clamp<std::uint64_t>(total / 8, 256 << 10, 32 << 20);
    reserve_target_ = std::min<std::uint64_t>(options_.reserve_bytes, total / 8);
    reopen_room_ = std::clamp<std::uint64_t>(total / 16, 128 << 10, 16 << 20);
    group_bytes_ = wal_room_ / 4;
    checkpoint_frames_ = static_cast<int>(std::clamp<std::uint64_t>(wal_room_ / 4 / (page_size_ + 24), 16, 1000));
}

// Sets the database's page cap from the disk's free space now (see above). A disk with plenty of room has no cap.
void durable_queue::fit_to_disk(bool for_alarms) {
    const auto avail = disk_avail();
    // The whole of the log's room is kept beside what its file holds now: a log that did not restart (a reader held
    // it, a checkpoint was running) grows past its file, and a checkpoint then still has to grow the database.
    std::error_code ec;
    const auto keep = wal_room_ + (for_alarms ? 0 : reserve_target_);
    std::uint64_t cap = 0;
    if (avail < keep + (256ull << 20)) {
        const auto file = std::filesystem::file_size(options_.path, ec);
        cap = (ec ? 0 : file / page_size_) + (avail > keep ? (avail - keep) / page_size_ : 0);
        cap = std::max<std::uint64_t>(cap, 1);
    }
    if (options_.max_page_count) cap = cap ? std::min(cap, options_.max_page_count) : options_.max_page_count;
    if (cap == page_cap_) return;
    // Below the database's size SQLite keeps the size: nothing new is taken but free pages.
    db_->exec("PRAGMA max_page_count=" + std::to_string(cap ? cap : 0xfffffffeull));
    page_cap_ = cap;
}

// Room the other lanes could use now: free pages inside the database and its growth allowed by the cap.
bool durable_queue::disk_has_room() {
    try {
        fit_to_disk(false);
        if (!page_cap_) return true;
        const auto pages = static_cast<std::uint64_t>(db_->execAndGet("PRAGMA page_count").getInt64());
        const auto free = static_cast<std::uint64_t>(db_->execAndGet("PRAGMA freelist_count").getInt64());
        const auto room = (free + (page_cap_ > pages ? page_cap_ - pages : 0)) * page_size_;
        return room >= reopen_room_;
    } catch (const SQLite::Exception &e) {
        spdlog::warn("uplink queue: cannot measure the room left in the database: {}", e.what());
        return false;
    }
}

void durable_queue::reopen_lanes() {
    disk_full_ = false;
    spdlog::warn("uplink queue: the disk has room again; all lanes are admitted");
    refresh_reserve();
}

// A transaction failed for a full disk: free what can be freed, in the order that loses least. True: try again.
bool durable_queue::make_room(bool for_alarms, int attempt) {
    // The log first: once checkpointed it is cut to nothing (when no reader holds it), and its pages are the disk's.
    if (attempt == 0) {
        try {
            db_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
        } catch (const SQLite::Exception &e) {
            // A checkpoint that cannot grow the database would leave every later transaction, acks included,
            // without a log to write: the reserve exists for that too.
            spdlog::warn("uplink queue: disk full: checkpoint failed: {}", e.what());
            if ((e.getErrorCode() & 0xff) == SQLITE_FULL) release_reserve("to let the log be checkpointed");
        }
        return true;
    }
    if (evict_telemetry_for_room()) return true;
    return for_alarms && release_reserve("for alarms");
}

bool durable_queue::release_reserve(const char *why) {
    const auto reserve = options_.path.string() + ".reserve";
    std::error_code ec;
    const auto size = std::filesystem::file_size(reserve, ec);
    if (ec || !std::filesystem::remove(reserve, ec)) return false;
    spdlog::critical("uplink queue: disk full: released the {} byte reserve {}", size, why);
    reserve_held_ = 0;
    last_shrink_ = clock::now();
    return true;
}

// Evicts the oldest tenth of the telemetry lane (at least 1000 records, at most group_bytes_ of them); its pages are
// reused by later inserts.
bool durable_queue::evict_telemetry_for_room() {
    constexpr int t = static_cast<int>(lane::telemetry);
    if (depth_[t] == 0) return false;
    try {
        SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
        // Bounded by bytes too: the delete's pages go through the log, which has group_bytes_ of room per transaction.
        const auto avg = std::max<std::uint64_t>(1, bytes_[t] / std::max<std::uint64_t>(1, depth_[t]));
        const auto n = std::min(std::max<std::uint64_t>(1000, depth_[t] / 10), std::max<std::uint64_t>(64, group_bytes_ / avg));
        SQLite::Statement q(*db_, "SELECT id FROM events WHERE id BETWEEN ? AND ? ORDER BY id LIMIT 1 OFFSET ?");
        q.bind(1, row_id(lane::telemetry, 0));
        q.bind(2, row_id(lane::telemetry, seq_mask));
        q.bind(3, static_cast<std::int64_t>(std::min(n, depth_[t].load()) - 1));
        std::int64_t last_id = row_id(lane::telemetry, seq_mask);
        if (q.executeStep()) last_id = q.getColumn(0).getInt64();
        SQLite::Statement sum(*db_, "SELECT count(*), coalesce(sum(size), 0), min(id) FROM events WHERE id BETWEEN ? AND ?");
        sum.bind(1, row_id(lane::telemetry, 0));
        sum.bind(2, last_id);
        sum.executeStep();
        const auto count = static_cast<std::uint64_t>(sum.getColumn(0).getInt64());
        const auto freed = static_cast<std::uint64_t>(sum.getColumn(1).getInt64());
        const auto first = static_cast<std::uint64_t>(sum.getColumn(2).getInt64()) & seq_mask;
        SQLite::Statement del(*db_, "DELETE FROM events WHERE id BETWEEN ? AND ?");
        del.bind(1, row_id(lane::telemetry, 0));
        del.bind(2, last_id);
        del.exec();
        SQLite::Statement state(*db_, "UPDATE lane_state SET bytes = ?, depth = ? WHERE lane = ?");
        state.bind(1, static_cast<std::int64_t>(bytes_[t] - std::min<std::uint64_t>(bytes_[t], freed)));
        state.bind(2, static_cast<std::int64_t>(depth_[t] - std::min<std::uint64_t>(depth_[t], count)));
        state.bind(3, t);
        state.exec();
        tx.commit();
        bytes_[t] -= std::min<std::uint64_t>(bytes_[t], freed);
        depth_[t] -= std::min<std::uint64_t>(depth_[t], count);
        evicted_[t] += count;
        if (!unreported_evicted_) unreported_first_ = first;
        unreported_evicted_ += count;
        unreported_last_ = static_cast<std::uint64_t>(last_id) & seq_mask;
        spdlog::warn("uplink queue: disk full: evicted {} telemetry records to make room", count);
        return count > 0;
    } catch (const SQLite::Exception &e) {
        spdlog::error("uplink queue: disk full and evicting telemetry failed: {}", e.what());
        return false;
    }
}

// Keeps a preallocated reserve file beside the database while the disk has room for it beside the log's. A
// database that grew into the room the reserve needs is shrunk first once it has drained.
void durable_queue::refresh_reserve() {
    if (!reserve_target_) return;
    last_shrink_ = clock::now();
    const auto reserve = std::filesystem::path(options_.path.string() + ".reserve");
    std::error_code ec;
    if (std::filesystem::exists(reserve, ec)) {
        const auto size = std::filesystem::file_size(reserve, ec);  // fails for what is not a regular file
        reserve_held_ = ec ? 0 : size;
        if (!ec && reserve_held_ >= reserve_target_) return;
    }
    if (disk_avail() < reserve_target_ + wal_room_) shrink_drained_file();
    if (disk_avail() < reserve_target_ + wal_room_) {
        if (!reserve_missing_logged_)
            spdlog::warn("uplink queue: too little room on the queue's disk to keep a {} byte reserve for alarms; "
                         "alarms still have the last {} bytes the other lanes may not take",
                         reserve_target_, reserve_target_);
        reserve_missing_logged_ = true;
        return;
    }
    const int fd = ::open(reserve.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(reserve_target_));
    ::close(fd);
    if (rc != 0) {
        std::filesystem::remove(reserve, ec);
        spdlog::warn("uplink queue: could not set aside a reserve for alarms: {}", std::strerror(rc));
        return;
    }
    reserve_held_ = reserve_target_;
    if (reserve_missing_logged_) spdlog::info("uplink queue: the {} byte reserve for alarms is set aside again", reserve_target_);
    reserve_missing_logged_ = false;
}

// A database that filled the disk keeps its size after it drains (its pages are free inside it). Once what it holds
// fits in the log's room, VACUUM rewrites it small and the checkpoint gives the rest back to the disk.
void durable_queue::shrink_drained_file() {
    // Only when it gives back at least the log's room, and at most once a minute: a disk another program keeps tight
    // must not have a near-empty queue rewritten every second.
    if (clock::now() < next_shrink_) return;
    std::uint64_t live = 0;
    for (const auto &b : bytes_) live += b;
    if (live * 2 + (64 << 10) > wal_room_) return;
    std::error_code ec;
    const auto before = std::filesystem::file_size(options_.path, ec);
    try {
        const auto free = static_cast<std::uint64_t>(db_->execAndGet("PRAGMA freelist_count").getInt64());
        if (free * page_size_ < wal_room_) return;
        next_shrink_ = clock::now() + 60s;
        db_->exec("VACUUM");
        db_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch (const SQLite::Exception &e) {
        spdlog::warn("uplink queue: could not shrink the drained queue file: {}", e.what());
        return;
    }
    const auto after = std::filesystem::file_size(options_.path, ec);
    if (after < before) spdlog::info("uplink queue: shrank the drained queue file from {} to {} bytes", before, after);
}

// ---- reading ---------------------------------------------------------------------------------------------------

durable_queue::reader::reader(const std::filesystem::path &path)
    : db_(std::make_unique<SQLite::Database>(path.string(), SQLite::OPEN_READONLY, 5000)) {}

durable_queue::reader::~reader() = default;

std::vector<queued_record> durable_queue::reader::read(lane l, std::uint64_t after, std::size_t max_records,
                                                       std::size_t max_bytes) {
    std::vector<queued_record> out;
    SQLite::Statement q(*db_, "SELECT id, pairs, body FROM events WHERE id > ? AND id <= ? ORDER BY id LIMIT ?");
    q.bind(1, row_id(l, after));
    q.bind(2, row_id(l, seq_mask));
    q.bind(3, static_cast<std::int64_t>(max_records));
    std::size_t bytes = 0;
    while (q.executeStep()) {
        const auto body = q.getColumn(2);
        if (!out.empty() && bytes + static_cast<std::size_t>(body.getBytes()) > max_bytes) break;
        queued_record r;
        r.seq = static_cast<std::uint64_t>(q.getColumn(0).getInt64()) & seq_mask;
        r.pairs = static_cast<std::uint32_t>(q.getColumn(1).getInt());
        const auto *p = static_cast<const std::uint8_t *>(body.getBlob());
        r.body.assign(p, p + body.getBytes());
        bytes += r.body.size();
        out.push_back(std::move(r));
    }
    return out;
}

queue_stats durable_queue::stats() const {
    queue_stats s;
    s.epoch = epoch_;
    for (int i = 0; i < lane_count; ++i) {
        auto &l = s.lanes[i];
        l.depth = depth_[i];
        l.bytes = bytes_[i];
        l.cap_bytes = options_.cap_bytes[i];
        l.last_seq = last_seq_[i];
        l.acked_through = acked_through_[i];
        l.committed = committed_[i];
        l.acked = acked_[i];
        l.quarantined = quarantined_[i];
        l.evicted = evicted_[i];
        l.refused = refused_[i];
        l.near_full = near_full_[i];
        l.waiting = waiting_[i];
    }
    s.pending = pending_;
    s.transactions = transactions_;
    s.quarantine_total = quarantine_total_;
    s.commit_errors = commit_errors_;
    s.disk_full = disk_full_;
    s.reserve_bytes = reserve_held_;
    s.reserve_target = reserve_target_;
    s.reserve_held = !reserve_missing();
    s.last_commit_ms = last_commit_ms_;
    s.max_commit_ms = max_commit_ms_;
    return s;
}

std::vector<core::open_condition> durable_queue::open_conditions() const {
    std::vector<core::open_condition> out;
    SQLite::Database db(options_.path.string(), SQLite::OPEN_READONLY, 5000);
    SQLite::Statement q(db, "SELECT device, event_id, kind, code, raised_wall_ms, event FROM conditions "
                            "ORDER BY device, change");
    while (q.executeStep()) {
        core::open_condition c;
        c.device_id = q.getColumn(0).getString();
        c.event_id = q.getColumn(1).getString();
        c.kind = q.getColumn(2).getString();
        c.code = q.getColumn(3).getString();
        c.raised_wall_ms = q.getColumn(4).getInt64();
        const auto event = q.getColumn(5);
        const auto *p = static_cast<const std::uint8_t *>(event.getBlob());
        c.event.assign(p, p + event.getBytes());
        out.push_back(std::move(c));
    }
    return out;
}

std::vector<quarantined_record> durable_queue::quarantine(std::size_t limit) const {
    std::vector<quarantined_record> out;
    SQLite::Database db(options_.path.string(), SQLite::OPEN_READONLY, 5000);
    SQLite::Statement q(db, "SELECT lane, seq, status, reason, at_ms, pairs, body FROM quarantine "
                            "ORDER BY at_ms DESC, lane, seq LIMIT ?");
    q.bind(1, static_cast<std::int64_t>(limit));
    while (q.executeStep()) {
        quarantined_record r;
        r.lane = to_string(static_cast<lane>(q.getColumn(0).getInt()));
        r.seq = static_cast<std::uint64_t>(q.getColumn(1).getInt64());
        r.status = q.getColumn(2).getInt();
        r.reason = q.getColumn(3).getString();
        r.quarantined_wall_ms = q.getColumn(4).getInt64();
        const auto body = q.getColumn(6);
        const auto *p = static_cast<const std::uint8_t *>(body.getBlob());
        r.record = full_record(r.seq, static_cast<std::uint32_t>(q.getColumn(5).getInt()),
                               std::vector<std::uint8_t>(p, p + body.getBytes()));
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace firelink::uplink
