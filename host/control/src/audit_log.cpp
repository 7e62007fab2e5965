#include "firelink/control/audit_log.hpp"

#include <firelink/text.hpp>

#include <array>
#include <chrono>
#include <stdexcept>

#include <SQLiteCpp/SQLiteCpp.h>
#include <openssl/evp.h>

namespace firelink::control {

namespace {

constexpr std::size_t hash_size = 32;

std::string link_hash(const std::string &prev, std::uint64_t seq, std::int64_t wall_ms, const std::string &record) {
    std::array<unsigned char, 16> numbers{};
    for (int i = 0; i < 8; ++i) {
        numbers[i] = static_cast<unsigned char>(seq >> (56 - 8 * i));
        numbers[8 + i] = static_cast<unsigned char>(static_cast<std::uint64_t>(wall_ms) >> (56 - 8 * i));
    }
    std::string out(hash_size, '\0');
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    const bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                    EVP_DigestUpdate(ctx, prev.data(), prev.size()) == 1 &&
                    EVP_DigestUpdate(ctx, numbers.data(), numbers.size()) == 1 &&
                    EVP_DigestUpdate(ctx, record.data(), record.size()) == 1 &&
                    EVP_DigestFinal_ex(ctx, reinterpret_cast<unsigned char *>(out.data()), &n) == 1 && n == hash_size;
    EVP_MD_CTX_free(ctx);
    if (!ok) throw std::runtime_error("audit chain: SHA-256 failed");
    return out;
}

std::string hex(const std::string &raw) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(raw.size() * 2);
    for (unsigned char c : raw) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string blob(const SQLite::Column &c) {
    return std::string(static_cast<const char *>(c.getBlob()), static_cast<std::size_t>(c.getBytes()));
}

// The text stored and hashed: nlohmann's dump sorts keys; `replace` keeps a driver's invalid UTF-8 from throwing.
std::string canonical(const nlohmann::json &j) { return firelink::text::dump_json(j); }

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void create_tables(SQLite::Database &db) {
    db.exec("CREATE TABLE IF NOT EXISTS audit_chain ("
            " seq INTEGER PRIMARY KEY, wall_ms INTEGER NOT NULL, record TEXT NOT NULL,"
            " prev_hash BLOB NOT NULL, hash BLOB NOT NULL)");
    db.exec("CREATE TABLE IF NOT EXISTS audit_anchor (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " seq INTEGER NOT NULL, hash BLOB NOT NULL)");
    db.exec("CREATE TABLE IF NOT EXISTS control_mode (device TEXT PRIMARY KEY, mode TEXT NOT NULL)");
}

}  // namespace

audit_log::audit_log(const std::filesystem::path &path, std::uint64_t keep)
    : keep_(std::max(keep, minimum_keep)), last_hash_(hash_size, '\0') {
    try {
        db_ = std::make_unique<SQLite::Database>(path.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
        db_->setBusyTimeout(5000);  // the durable queue's writer shares the file
        db_->exec("PRAGMA journal_mode=WAL");
        db_->exec("PRAGMA synchronous=FULL");
        create_tables(*db_);
        SQLite::Statement last(*db_, "SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1");
        if (last.executeStep()) {
            next_seq_ = static_cast<std::uint64_t>(last.getColumn(0).getInt64()) + 1;
            last_hash_ = blob(last.getColumn(1));
        } else {
            SQLite::Statement anchor(*db_, "SELECT seq, hash FROM audit_anchor WHERE id = 1");
            if (anchor.executeStep()) {
                next_seq_ = static_cast<std::uint64_t>(anchor.getColumn(0).getInt64()) + 1;
                last_hash_ = blob(anchor.getColumn(1));
            }
        }
        count_ = static_cast<std::uint64_t>(db_->execAndGet("SELECT count(*) FROM audit_chain").getInt64());
    } catch (const SQLite::Exception &e) {
        throw std::runtime_error("audit chain in " + path.string() + ": " + e.what());
    }
}

audit_log::~audit_log() = default;

audit_entry audit_log::append(nlohmann::json record) {
    std::lock_guard lock(mutex_);
    audit_entry e;
    e.seq = next_seq_;
    e.wall_ms = now_ms();
    const std::string text = canonical(record);
    const std::string h = link_hash(last_hash_, e.seq, e.wall_ms, text);
    try {
        SQLite::Statement insert(*db_, "INSERT INTO audit_chain (seq, wall_ms, record, prev_hash, hash)"
                                       " VALUES (?, ?, ?, ?, ?)");
        insert.bind(1, static_cast<std::int64_t>(e.seq));
        insert.bind(2, e.wall_ms);
        insert.bind(3, text);
        insert.bind(4, last_hash_.data(), static_cast<int>(last_hash_.size()));
        insert.bind(5, h.data(), static_cast<int>(h.size()));
        insert.exec();
    } catch (const SQLite::Exception &ex) {
        throw std::runtime_error(std::string("the audit chain cannot take the step: ") + ex.what());
    }
    ++next_seq_;
    ++count_;
    last_hash_ = h;
    e.record = std::move(record);
    e.hash = hex(h);
    // Pruned in batches of a tenth, so that a full table costs one delete per keep/10 steps, not one per step.
    if (count_ > keep_ + keep_ / 10) {
        try {
            prune_locked();
        } catch (const SQLite::Exception &) {
            // Kept longer: a full disk stops the prune, not the step (it is already recorded).
        }
    }
    return e;
}

void audit_log::prune_locked() {
    const std::uint64_t drop = count_ - keep_;
    SQLite::Transaction tx(*db_);
    SQLite::Statement last(*db_, "SELECT seq, hash FROM audit_chain ORDER BY seq LIMIT 1 OFFSET ?");
    last.bind(1, static_cast<std::int64_t>(drop - 1));
    if (!last.executeStep()) return;
    const auto seq = last.getColumn(0).getInt64();
    const auto h = blob(last.getColumn(1));
    SQLite::Statement anchor(*db_, "INSERT OR REPLACE INTO audit_anchor (id, seq, hash) VALUES (1, ?, ?)");
    anchor.bind(1, seq);
    anchor.bind(2, h.data(), static_cast<int>(h.size()));
    anchor.exec();
    SQLite::Statement del(*db_, "DELETE FROM audit_chain WHERE seq <= ?");
    del.bind(1, seq);
    del.exec();
    tx.commit();
    count_ -= drop;
}

std::vector<audit_entry> audit_log::list(std::uint64_t after_seq, std::size_t limit, const std::string &device) const {
    std::lock_guard lock(mutex_);
    std::vector<audit_entry> out;
    SQLite::Statement q(*db_, device.empty()
                                  ? "SELECT seq, wall_ms, record, hash FROM audit_chain WHERE seq > ? ORDER BY seq LIMIT ?"
                                  : "SELECT seq, wall_ms, record, hash FROM audit_chain WHERE seq > ? AND "
                                    "json_extract(record, '$.device') = ? ORDER BY seq LIMIT ?");
    int i = 1;
    q.bind(i++, static_cast<std::int64_t>(after_seq));
    if (!device.empty()) q.bind(i++, device);
    q.bind(i, static_cast<std::int64_t>(limit));
    while (q.executeStep()) {
        audit_entry e;
        e.seq = static_cast<std::uint64_t>(q.getColumn(0).getInt64());
        e.wall_ms = q.getColumn(1).getInt64();
        e.record = nlohmann::json::parse(q.getColumn(2).getString(), nullptr, false);
        e.hash = hex(blob(q.getColumn(3)));
        out.push_back(std::move(e));
    }
    return out;
}

std::optional<audit_entry> audit_log::head() const {
    std::lock_guard lock(mutex_);
    if (next_seq_ == 1) return std::nullopt;
    audit_entry e;
    e.seq = next_seq_ - 1;
    e.hash = hex(last_hash_);
    return e;
}

std::uint64_t audit_log::size() const {
    std::lock_guard lock(mutex_);
    return count_;
}

std::map<std::string, std::string> audit_log::modes() const {
    std::lock_guard lock(mutex_);
    std::map<std::string, std::string> out;
    SQLite::Statement q(*db_, "SELECT device, mode FROM control_mode");
    while (q.executeStep()) out[q.getColumn(0).getString()] = q.getColumn(1).getString();
    return out;
}

void audit_log::save_mode(const std::string &device, const std::string &mode) {
    std::lock_guard lock(mutex_);
    try {
        if (mode == "remote") {
            SQLite::Statement q(*db_, "DELETE FROM control_mode WHERE device = ?");
            q.bind(1, device);
            q.exec();
        } else {
            SQLite::Statement q(*db_, "INSERT OR REPLACE INTO control_mode (device, mode) VALUES (?, ?)");
            q.bind(1, device);
            q.bind(2, mode);
            q.exec();
        }
    } catch (const SQLite::Exception &e) {
        throw std::runtime_error(std::string("cannot keep the device's mode: ") + e.what());
    }
}

audit_check audit_log::verify(const std::filesystem::path &path) {
    audit_check out;
    SQLite::Database db(path.string(), SQLite::OPEN_READONLY);
    db.setBusyTimeout(5000);
    if (!db.tableExists("audit_chain")) {
        out.ok = false;
        out.why = path.string() + " holds no audit chain (no table audit_chain)";
        return out;
    }
    std::string prev(hash_size, '\0');
    std::uint64_t expect = 1;
    if (db.tableExists("audit_anchor")) {
        SQLite::Statement anchor(db, "SELECT seq, hash FROM audit_anchor WHERE id = 1");
        if (anchor.executeStep()) {
            expect = static_cast<std::uint64_t>(anchor.getColumn(0).getInt64()) + 1;
            prev = blob(anchor.getColumn(1));
        }
    }
    SQLite::Statement q(db, "SELECT seq, wall_ms, record, prev_hash, hash FROM audit_chain ORDER BY seq");
    while (q.executeStep()) {
        const auto seq = static_cast<std::uint64_t>(q.getColumn(0).getInt64());
        const auto fail = [&](std::string why) {
            out.ok = false;
            out.broken_at = seq;
            out.why = "record " + std::to_string(seq) + ": " + std::move(why);
            return out;
        };
        if (out.checked == 0) out.first_seq = seq;
        if (seq != expect)
            return fail(seq > expect ? "records " + std::to_string(expect) + " to " + std::to_string(seq - 1) +
                                           " are missing"
                                     : "out of order");
        const std::string record = q.getColumn(2).getString();
        const std::string stored_prev = blob(q.getColumn(3)), stored = blob(q.getColumn(4));
        if (stored_prev != prev) return fail("its link to record " + std::to_string(seq - 1) + " does not match");
        if (link_hash(prev, seq, q.getColumn(1).getInt64(), record) != stored)
            return fail("its contents do not match its hash (changed after it was written)");
        prev = stored;
        ++expect;
        ++out.checked;
        out.last_seq = seq;
    }
    out.why = out.checked ? "records " + std::to_string(out.first_seq) + " to " + std::to_string(out.last_seq) +
                                " are linked; the head is " + hex(prev)
                          : "the chain is empty";
    return out;
}

}  // namespace firelink::control
