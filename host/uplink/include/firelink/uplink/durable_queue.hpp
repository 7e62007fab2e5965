// The durable queue: every event on its way to the platform lives here, in one SQLite file, until the platform
// acknowledges it (docs/uplink-protocol.md). An event is *accepted* only when the transaction that holds it has
// committed (WAL, synchronous=FULL). One writer thread does every write, many events per transaction (group commit);
// push() only hands the event to that thread, so a driver's emit never waits for the disk.
//
// Three lanes, alarm > event > telemetry, each FIFO by its own sequence number. Order and deletion use sequence
// numbers only, never a clock. Telemetry is evicted oldest-first beyond its cap, and the eviction is reported as a
// `gap` event; the alarm and event lanes never evict: near their cap the queue raises `queue_near_full` and stops
// admitting (backpressure), and a disk that fills up gives its reserve to alarms.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <firelink/core/conditions.hpp>
#include <firelink/core/lanes.hpp>

struct sqlite3;

namespace SQLite {
class Database;
}

namespace firelink::core {
struct accepted_event;
}

namespace firelink::uplink {

// The lanes and the lane of an event kind (docs/uplink-protocol.md, "Lanes"): core/lanes.hpp.
using core::lane;
using core::lane_count;
using core::lane_of;
using core::to_string;
inline constexpr std::array<lane, lane_count> all_lanes{lane::alarm, lane::event, lane::telemetry};

struct queue_options {
    std::filesystem::path path;
    std::string gateway_id;
    // Per-lane caps on the bytes of queued records. Telemetry beyond its cap is evicted oldest-first; the alarm and
    // event lanes are never evicted, and above their cap they stop admitting.
    std::array<std::uint64_t, lane_count> cap_bytes{64ull << 20, 256ull << 20, 512ull << 20};
    // Disk space set aside for alarms (a preallocated file beside the database, given up to alarms when the disk is
    // full), at most an eighth of the disk. The same amount of the database's growth is kept for alarms too: other
    // lanes stop that much short of the disk's end (durable_queue.cpp, "Fitting the disk").
    // While the reserve file is missing (the disk too tight to make it, it was given up, or something else is at its
    // path) the platform has an open `fault` `alarm_reserve_missing`, restored once the queue holds it again.
    std::uint64_t reserve_bytes = 16ull << 20;
    // Events taken but not yet committed, at most; beyond it nothing but alarms is admitted (the runtime answers
    // FL_BUSY, and the device's wire pauses). Four groups of max_group: the writer always has the next group ready,
    // and what waits in memory stays a few MiB (measured: at 200 000 the host's peak RSS reached 210 MiB under a
    // 1 M-line burst, docs/performance.md "The boundary").
    std::size_t max_pending = 16384;
    // At most this many events in one transaction: bounds how long an alarm can wait behind a group of telemetry.
    std::size_t max_group = 4096;
    // A file the queue closed cleanly and larger than this opens without quick_check (which reads every page);
    // a smaller one, or any file after a crash, is checked.
    std::uint64_t check_max_bytes = 32ull << 20;
    // Testing: SQLite's max_page_count (0 = none), to make the database "full" without filling a disk.
    std::uint64_t max_page_count = 0;
    // Called on the writer thread once a gateway event (queue_near_full, a gap, command_failed, ...) has committed,
    // as the record the platform gets, so the host's local record (its [sink]) has every event the platform has.
    // Must not block, and must not call back into the queue.
    std::function<void(const core::accepted_event &)> on_gateway_event;
};

// One queued record, as the sender reads it.
struct queued_record {
    std::uint64_t seq = 0;
    std::uint32_t pairs = 0;         // key-value pairs in body
    std::vector<std::uint8_t> body;  // msgpack key-value pairs of the record, without the map header and `seq`
};

struct reject {
    std::uint64_t seq = 0;
    int status = 0;
    std::string reason;
};

struct quarantined_record {
    std::string lane;
    std::uint64_t seq = 0;
    int status = 0;
    std::string reason;
    std::int64_t quarantined_wall_ms = 0;
    std::vector<std::uint8_t> record;  // the whole record as a msgpack map (with seq)
};

struct lane_stats {
    std::uint64_t depth = 0;          // committed records waiting for an ack
    std::uint64_t bytes = 0;          // their bytes
    std::uint64_t cap_bytes = 0;
    std::uint64_t last_seq = 0;       // the last seq committed
    std::uint64_t acked_through = 0;  // the highest seq acknowledged (this process)
    std::uint64_t committed = 0;      // records committed (this process)
    std::uint64_t acked = 0;          // records removed by acknowledgement (this process)
    std::uint64_t quarantined = 0;    // records rejected (this process)
    std::uint64_t evicted = 0;        // telemetry evicted (this process)
    std::uint64_t refused = 0;        // pushes refused for backpressure (this process)
    std::uint64_t waiting = 0;        // taken, not yet committed: in memory, waiting for the writer (or the disk)
    bool near_full = false;
};

struct queue_stats {
    std::string epoch;
    std::array<lane_stats, lane_count> lanes;
    std::uint64_t pending = 0;        // taken, not yet committed
    std::uint64_t transactions = 0;
    std::uint64_t quarantine_total = 0;  // rows in the quarantine table
    std::uint64_t commit_errors = 0;
    bool disk_full = false;           // only alarms are admitted until the queue's disk has room again
    std::uint64_t reserve_bytes = 0;  // the alarm reserve set aside on the queue's disk now (0: none held)
    std::uint64_t reserve_target = 0; // what it should be (the option, cut to an eighth of a small disk)
    bool reserve_held = true;         // reserve_bytes is reserve_target (always so when none is asked for)
    double last_commit_ms = 0;
    double max_commit_ms = 0;
};

// What open found: a new file, an existing one, or a corrupt one moved aside.
struct open_report {
    bool created = false;
    bool checked = false;    // quick_check ran (it is skipped for a file the queue closed cleanly)
    bool recovered = false;  // the file was unreadable and moved aside
    std::string moved_to;
    std::string problem;
    std::string old_epoch;   // of the file moved aside, when it could be read
    std::uint64_t backlog = 0;
    std::chrono::milliseconds check_took{0};
};

class durable_queue {
public:
    // Opens (or creates) the database and starts the writer. A corrupt file is moved aside and a new one begins
    // (open_report().recovered); the loss is queued as a `gap` event. Throws std::runtime_error when the file cannot
    // be created at all.
    explicit durable_queue(queue_options options);
    // Commits everything taken, then stops the writer.
    ~durable_queue();
    durable_queue(const durable_queue &) = delete;
    durable_queue &operator=(const durable_queue &) = delete;

    const open_report &opened() const { return report_; }
    const std::string &epoch() const { return epoch_; }
    const queue_options &options() const { return options_; }

    // Whether a push to this lane would be taken now (backpressure). Any thread, never blocks, changes nothing.
    bool would_admit(lane l) const;
    // would_admit(), and when not, counts the refusal in the lane's stats (`refused`).
    bool admit_or_count_refusal(lane l);

    // Hands a record to the writer. Any thread; never waits for the disk. `on_commit` (may be empty) runs on the
    // writer thread once the record's transaction has committed, with the seq it was given. `condition`: what the
    // event did to its device's open conditions, written to the conditions table in the record's own transaction.
    // For one device, push in the order the changes happened (the runtime does, under the device's emit lock):
    // alarms commit ahead of other lanes, and the order of push is what keeps a late commit from undoing a newer
    // change. False (nothing taken, a refusal counted) when the lane does not admit.
    bool push(lane l, std::vector<std::uint8_t> body, std::uint32_t pairs,
              std::function<void(std::uint64_t seq)> on_commit = {},
              std::optional<core::condition_change> condition = std::nullopt);
    // push() of an event admitted earlier (the runtime asked admit_or_count_refusal() before it took the event from
    // the driver): always taken, since refusing it now would drop it.
    void push_admitted(lane l, std::vector<std::uint8_t> body, std::uint32_t pairs,
                       std::function<void(std::uint64_t seq)> on_commit = {},
                       std::optional<core::condition_change> condition = std::nullopt);
    // A gateway event (device = gateway id, class `gateway`), in the lane of its kind: always taken. on_commit: called
    // on the writer thread once it is committed, with its seq.
    void push_gateway_event(std::vector<std::uint8_t> event_payload, std::string_view kind,
                            std::function<void(std::uint64_t seq)> on_commit = {});

    // Called on the writer thread after every commit, with each lane's last committed seq.
    void on_commit(std::function<void(const std::array<std::uint64_t, lane_count> &last_seq)> listener);

    // A reader for one thread (its own connection): records of a lane with seq > after, in order, at most
    // max_records and about max_bytes (at least one record).
    class reader {
    public:
        explicit reader(const std::filesystem::path &path);
        ~reader();
        std::vector<queued_record> read(lane l, std::uint64_t after, std::size_t max_records, std::size_t max_bytes);

    private:
        std::unique_ptr<SQLite::Database> db_;
    };
    std::unique_ptr<reader> open_reader() const { return std::make_unique<reader>(options_.path); }

    // The platform acknowledged everything of the lane through `through`; `rejects` go to the quarantine. Applied by
    // the writer in its next transaction; returns at once.
    void ack(lane l, std::uint64_t through, std::vector<reject> rejects);

    // The downlink's cursor (docs/uplink-protocol.md, commands). set_command_cursor returns once it is committed.
    std::uint64_t command_cursor() const { return command_cursor_.load(); }
    bool set_command_cursor(std::uint64_t cursor);

    // Waits until everything pushed before the call has committed (or failed to); false on timeout.
    bool flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

    queue_stats stats() const;
    std::vector<quarantined_record> quarantine(std::size_t limit) const;

    // Host-kept conditions (firelink.conditions/1): every device's open conditions as committed, each device's
    // oldest first. Reads on a connection of its own; for the host's start.
    std::vector<core::open_condition> open_conditions() const;
    // Deletes the stored conditions of these devices (ones no longer in the site), in the writer's next transaction;
    // returns at once.
    void forget_conditions(std::vector<std::string> device_ids);

private:
    struct op {
        enum class type { insert, ack, cursor, forget } what = type::insert;
        lane l = lane::event;
        std::string kind;  // a gateway event's kind (pairs == 0), for the local record
        std::vector<std::uint8_t> body;
        std::uint32_t pairs = 0;
        std::function<void(std::uint64_t)> on_commit;
        std::uint64_t through = 0;  // ack: the last seq acknowledged
        std::uint64_t cursor = 0;   // cursor: the platform's command cursor
        std::vector<reject> rejects;
        std::shared_ptr<std::promise<bool>> done;  // cursor: committed or not
        std::optional<core::condition_change> condition;  // insert: stored with the record
        std::uint64_t change = 0;                         // insert with a condition: its order (change_seq_)
        std::vector<std::string> devices;                 // forget
    };
    void store_condition(const op &o, std::uint64_t seq);
    std::optional<std::pair<lane, std::uint64_t>> first_record(const core::condition_change &c);
    void open_database();
    void writer_loop();
    bool apply(std::deque<op> &ops, int attempt = 0);
    bool make_room(bool for_alarms, int attempt);
    bool release_reserve(const char *why);
    bool evict_telemetry_for_room();
    std::uint64_t disk_avail() const;
    void size_for_disk();
    void fit_to_disk(bool for_alarms);
    bool disk_has_room();
    void reopen_lanes();
    void refresh_reserve();
    bool reserve_missing() const { return reserve_target_ && reserve_held_ < reserve_target_; }
    void shrink_drained_file();

    queue_options options_;
    open_report report_;
    std::string epoch_;
    std::unique_ptr<SQLite::Database> db_;  // the writer's connection

    mutable std::mutex mutex_;
    std::condition_variable cv_, done_cv_;
    std::deque<op> ops_;
    std::deque<op> alarm_ops_;  // alarm-lane inserts: the writer commits them before anything else waiting
    std::uint64_t pushed_ = 0, finished_ = 0;  // ops handed to / finished by the writer
    bool stopping_ = false;
    bool final_ = false;  // the writer's last round before it stops: report evictions now

    // Lane state: owned by the writer, published through atomics for would_admit() and stats().
    std::array<std::uint64_t, lane_count> next_seq_{1, 1, 1};
    std::array<std::atomic<std::uint64_t>, lane_count> bytes_{};
    std::array<std::atomic<std::uint64_t>, lane_count> depth_{};
    std::array<std::atomic<std::uint64_t>, lane_count> last_seq_{};
    std::array<std::atomic<std::uint64_t>, lane_count> acked_through_{};
    std::array<std::atomic<std::uint64_t>, lane_count> committed_{}, acked_{}, quarantined_{}, evicted_{}, refused_{};
    std::array<std::atomic<bool>, lane_count> near_full_{};
    std::atomic<std::uint64_t> pending_{0}, transactions_{0}, quarantine_total_{0}, commit_errors_{0};
    std::atomic<bool> disk_full_{false};
    std::array<std::atomic<std::uint64_t>, lane_count> waiting_{};  // pending_ by lane

    // Fitting the disk (writer thread): sizes taken from the queue's file system at open.
    std::uint64_t page_size_ = 4096;
    std::uint64_t wal_room_ = 0;        // kept free on the disk for the write-ahead log: acks and checkpoints
    std::uint64_t reserve_target_ = 0;  // options_.reserve_bytes, at most an eighth of the disk
    std::uint64_t reopen_room_ = 0;     // a full disk admits all lanes again once they have this much room
    std::uint64_t group_bytes_ = 0;     // at most this many bytes of records in one transaction (a quarter of wal_room_)
    int checkpoint_frames_ = 1000;      // the checkpointer runs past this many log frames
    std::uint64_t page_cap_ = 0;        // max_page_count as set now (0: not set)
    std::atomic<std::uint64_t> reserve_held_{0};
    bool reserve_missing_logged_ = false;
    bool reserve_fault_open_ = false;  // the platform was told of a missing reserve (meta reserve_fault)
    std::chrono::steady_clock::time_point last_shrink_{};  // the reserve was last tried (refresh_reserve)
    std::chrono::steady_clock::time_point next_shrink_{};  // no VACUUM before (shrink_drained_file)
    std::atomic<double> last_commit_ms_{0}, max_commit_ms_{0};
    std::atomic<std::uint64_t> command_cursor_{0};
    std::uint64_t gateway_seq_ = 0;
    std::uint64_t change_seq_ = 0;  // under mutex_: numbers condition changes in push order, stored with each row

    // Evictions not yet reported upstream.
    std::uint64_t unreported_evicted_ = 0, unreported_first_ = 0, unreported_last_ = 0;
    std::chrono::steady_clock::time_point last_gap_report_{};

    std::vector<std::function<void(const std::array<std::uint64_t, lane_count> &)>> listeners_;
    std::thread writer_;

    // Checkpoints run on a connection and thread of their own, so an alarm's commit does not wait for one.
    static int on_wal_commit(void *self, sqlite3 *db, const char *name, int frames);  // sqlite3_wal_hook's signature
    void checkpoint_loop();
    std::atomic<int> wal_frames_{0};
    std::mutex checkpoint_mutex_;
    std::condition_variable checkpoint_cv_;
    bool checkpoint_due_ = false, checkpoint_stop_ = false;
    std::thread checkpointer_;
};

}  // namespace firelink::uplink
