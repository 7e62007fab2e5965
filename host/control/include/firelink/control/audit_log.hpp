// The audit chain: every step of every command (who, with which role, from where, select, operate, the result and
// the device's read-back before and after) appended to a hash-chained table in the queue's database. GB 25506 asks
// for at least 10 000 operation records with the operators' ids; the chain makes a changed, removed or reordered
// record visible to `firelink-host audit verify`.
//
// Each record's hash is SHA-256(prev_hash ‖ seq as 8 bytes big-endian ‖ wall_ms as 8 bytes big-endian ‖ record), the
// record being its canonical JSON (keys sorted, UTF-8). The first record's prev_hash is 32 zero bytes; once old
// records are pruned (past `keep`), the anchor row holds the hash of the last pruned one, so the chain still starts
// from a known link. What the chain cannot show by itself: a tail cut off, or the whole chain rewritten by someone
// who holds the file. The host sends each record's seq and hash upstream as it appends it, so the platform holds the
// chain's head and can tell (docs/deployment.md, "The audit chain").
//
// Threads: every function may be called from any thread; appends are serialised.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace SQLite {
class Database;
}

namespace firelink::control {

struct audit_entry {
    std::uint64_t seq = 0;
    std::int64_t wall_ms = 0;
    nlohmann::json record;  // the step: {"step", "principal", "role", "source", "device", "command", ...}
    std::string hash;       // hex
};

struct audit_check {
    bool ok = true;
    std::uint64_t checked = 0;          // records whose links were checked
    std::uint64_t first_seq = 0, last_seq = 0;
    std::optional<std::uint64_t> broken_at;  // the first record whose link does not hold
    std::string why;                    // what is wrong there, or what was checked
};

class audit_log {
public:
    // Opens (and creates) the chain's tables in the SQLite file at `path`, beside whatever else it holds (the durable
    // queue's tables). Keeps at least `keep` records (10 000 at least). Throws std::runtime_error naming the file.
    audit_log(const std::filesystem::path &path, std::uint64_t keep);
    ~audit_log();
    audit_log(const audit_log &) = delete;
    audit_log &operator=(const audit_log &) = delete;

    // Appends one step, durably (synchronous=FULL: an operator's step survives a power cut once it returns), and
    // returns it with its seq and hash. Throws std::runtime_error when the disk refuses it: a step that cannot be
    // recorded must not be taken (the caller refuses the command).
    audit_entry append(nlohmann::json record);

    // Records after `after_seq`, oldest first, at most `limit`; `device` non-empty: only that device's.
    std::vector<audit_entry> list(std::uint64_t after_seq, std::size_t limit, const std::string &device = {}) const;
    std::optional<audit_entry> head() const;  // the newest record
    std::uint64_t size() const;

    // Device modes ("local"; absent = "remote") as the control plane last set them, in a table beside the chain so
    // a restart keeps them. The change itself is an audited step; this is only the current state.
    std::map<std::string, std::string> modes() const;
    void save_mode(const std::string &device, const std::string &mode);  // "remote" removes the row

    // Walks the whole chain of the file at `path` (read-only; the host may be running).
    static audit_check verify(const std::filesystem::path &path);

    static constexpr std::uint64_t minimum_keep = 10'000;

private:
    void prune_locked();

    mutable std::mutex mutex_;
    std::unique_ptr<SQLite::Database> db_;
    std::uint64_t keep_;
    std::uint64_t next_seq_ = 1;
    std::string last_hash_;  // 32 raw bytes
    std::uint64_t count_ = 0;
};

}  // namespace firelink::control
