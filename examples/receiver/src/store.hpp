// The receiver's SQLite store: events unique on (gateway, epoch, lane, seq), the command queue, durable counters.
// One writer thread owns the only write connection and commits jobs in groups, alarm batches first, so an alarm
// waits at most for the commit already running. Reads go through a separate connection (WAL: they never wait for
// the writer) and may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>
#include <nlohmann/json.hpp>

#include "batch.hpp"

namespace firelink::receiver {

// The store cannot be opened or created (corrupt, unwritable, a newer schema).
struct store_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct ingest_result {
    std::size_t stored = 0, duplicates = 0;
};

struct command_request {
    std::string gateway, device, name;
    nlohmann::json args = nlohmann::json::object();
    std::optional<std::int64_t> expires_wall_ms;
};

struct command_row {
    std::uint64_t cursor = 0;
    std::string id, device, name, args_json;
    std::optional<std::int64_t> expires_wall_ms;
};

struct event_query {
    std::vector<std::string> kinds;
    std::optional<std::string> device, gateway, lane;
    std::optional<std::int64_t> since_ms, until_ms;            // the receiver's stored_ms
    std::optional<std::int64_t> since_wall_ms, until_wall_ms;  // the record's received.wall_ms
    std::optional<std::int64_t> before_id;                     // paging: rows with id < before_id
    std::int64_t limit = 100;
    // rereports=fold: a re-report stored with its first report is not listed; the first report counts it instead.
    bool fold_rereports = false;
};

std::int64_t now_ms();

class store {
public:
    // Opens or creates the database (WAL, synchronous=FULL) and starts the writer. Throws store_error.
    explicit store(const std::string &path);
    ~store();
    store(const store &) = delete;
    store &operator=(const store &) = delete;

    // ---- writes: run on the writer thread; `done` runs there too, after the commit (or the failure) ----
    // done(nullptr, result) once committed; done(error, {}) when nothing of the batch was stored.
    void ingest(std::shared_ptr<const parsed_batch> batch,
                std::function<void(std::exception_ptr, ingest_result)> done);
    // done(nullptr, row) once committed.
    void add_command(command_request req, std::function<void(std::exception_ptr, command_row)> done);
    // Records when commands were first handed to a poll; done runs after the commit (or its failure).
    void mark_delivered(std::string gateway, std::vector<std::uint64_t> cursors,
                        std::function<void(std::exception_ptr)> done);
    // Commits what is queued, then stops the writer. Idempotent.
    void stop();

    // ---- reads: any thread ----
    std::vector<command_row> commands_after(const std::string &gateway, std::uint64_t after);
    std::map<std::string, std::uint64_t> max_cursors();  // per gateway
    nlohmann::json events(const event_query &q);
    nlohmann::json devices();
    nlohmann::json commands(const std::optional<std::string> &gateway, std::int64_t limit);
    nlohmann::json stats();

private:
    struct job {
        int rank;             // 0 first
        std::uint64_t order;  // FIFO within a rank
        std::size_t weight;   // records: bounds one group commit
        std::function<void(SQLite::Database &)> run;
        std::function<void(std::exception_ptr)> done;
    };
    void submit(job j);
    void writer_loop();
    void commit_group(std::vector<job> &group);

    std::string path_;
    SQLite::Database write_db_;
    std::mutex read_mutex_;
    std::unique_ptr<SQLite::Database> read_db_;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<job> queue_;
    std::uint64_t next_order_ = 0;
    bool stopping_ = false;
    std::thread writer_;
};

}  // namespace firelink::receiver
