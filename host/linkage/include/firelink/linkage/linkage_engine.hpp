// Local linkage (联动): the site acts on its own alarms, with or without the uplink (docs/linkage.md). The engine
// hears every accepted event before the pipeline (it never waits for the queue or the platform), decides which
// [[linkage]] rules fire, and moves devices through the control plane like any principal (select, operate, the
// device's read-back), as `linkage:<rule id>`. It reports each step as a gateway event and an audit record.
//
// What survives a restart: every run's state, in the SQLite file of the audit chain (table linkage_run), written
// before each command is handed over. After a kill, actions not yet sent run; an action sent without its read-back
// is never sent again but reported `interrupted`; latched runs stay active; a condition an earlier run acted on does
// not fire the rule again.
//
// Threads: observe() from any thread (the runtime's); the operator calls (confirm, reset, set_mode, to_json) from any
// thread. The engine's own thread evaluates the rules; each command is handed over on a thread of its own (a slow or
// hung device never holds the others, or the engine), whose answer comes back through the inbox. The emit and audit
// hooks are also called from the operator calls. Locks: mutex_ before inbox_mutex_, never the other way.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <list>
#include <atomic>
#include <vector>

#include <nlohmann/json.hpp>

#include <firelink/core/conditions.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/result.hpp>
#include <firelink/site/site_config.hpp>

namespace SQLite {
class Database;
}

namespace firelink::linkage {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;

// A command as the control plane takes it, from principal `linkage:<rule>`.
struct command_request {
    std::string rule, device, command, command_id;
    json args;
};

// What became of it: handed to the device (its read-back follows as a command_result), refused for a passing reason
// (an operator holds the device: try again), or refused.
struct command_answer {
    enum class outcome { sent, busy, refused } what = outcome::refused;
    std::string reason;  // the control plane's reason code, or why the runtime refused it
    std::string detail;
};

struct engine_hooks {
    // Select, operate and hand over (host/cli command_gate). Called on the engine's thread.
    std::function<command_answer(const command_request &)> command;
    // A gateway event out: msgpack payload and its kind (host: the queue's gateway events and the local record).
    // `committed`, when given, is called once the event is durable (the queue's commit; at once where nothing
    // queues), on any thread: an action's result is marked reported only then (linkage_engine::report).
    std::function<void(std::vector<std::uint8_t> payload, const std::string &kind, std::function<void()> committed)>
        emit;
    // An audit record of a linkage step ({"step", "principal", "role", "source", "rule", ...}); false when it could
    // not be recorded (then the step is not taken where an operator asked for it).
    std::function<bool(json record)> audit;
    // The engine gave up waiting for a command's read-back: the device is free for operators again. May be empty.
    std::function<void(const std::string &device, const std::string &command_id)> release;
};

struct engine_options {
    std::vector<site::linkage_rule> rules;
    std::vector<site::device_config> devices;  // the site's, for the rules' conditions and selectors
    std::filesystem::path state_path;          // the SQLite file that keeps the runs (the audit chain's)
    std::chrono::milliseconds retry_interval{250};
    std::size_t runs_kept = 20;      // finished runs kept per rule, for /api/linkage and restarts
    std::size_t inbox_limit = 65536;  // events waiting for the engine's thread; more waits for room (backpressure)
};

// Who asks, for operator calls.
struct principal {
    std::string name, role, source;  // source: "admin" or "platform"
};

class linkage_engine {
public:
    // Opens the state file (throws std::runtime_error naming it) and reads the runs it holds. Nothing runs yet.
    linkage_engine(engine_options options, engine_hooks hooks);
    ~linkage_engine();
    linkage_engine(const linkage_engine &) = delete;
    linkage_engine &operator=(const linkage_engine &) = delete;

    // A rule that cannot run as written (its driver does not declare the command): it never fires, and says why.
    void refuse(const std::string &rule, const std::string &why);
    // Starts the engine's thread with the conditions open now (the runtime's, restored from the queue): runs left by
    // the previous host go on, and a condition no earlier run acted on fires its rules.
    void start(const std::vector<core::open_condition> &open_now);
    void stop();  // idempotent; also from the destructor

    // Every accepted event (any thread); cheap for events no rule listens to.
    void observe(const core::accepted_event &ev);

    // Operators. Each answers {status, body} for the admin API: 200, 404 (no such rule), 409 (nothing to confirm or
    // reset), 403 (role), 503 (the step could not be audited).
    std::pair<unsigned, json> confirm(const principal &who, const std::string &rule);
    std::pair<unsigned, json> reset(const principal &who, const std::string &rule, const std::string &why);
    std::pair<unsigned, json> set_mode(const principal &who, const std::string &rule, const std::string &mode,
                                       const std::string &why);

    json to_json() const;  // GET /api/linkage
    // The events each rule has made since start, by code (for /metrics: firelink_linkage_events_total).
    std::map<std::string, std::map<std::string, std::uint64_t>> event_counts() const;
    bool has_rules() const { return !rules_.empty(); }

private:
    struct signal {
        std::string device, event_id, kind, code;
        std::int64_t raised_wall_ms = 0;
        clock::time_point raised;  // steady: when the host accepted it (or its equivalent, for one restored)
        bool open = true;
        bool same(const signal &o) const {
            return device == o.device && event_id == o.event_id && code == o.code && raised_wall_ms == o.raised_wall_ms;
        }
    };
    struct action_run {
        std::size_t stage = 0;  // the rule's action index
        std::string device, command, command_id;
        std::string base_id;    // lnk-<epoch>-<rule>-<run>-<n>; command_id adds ".r<attempt>" from the 2nd attempt
        unsigned attempt = 1;
        bool answered = false;  // this attempt's hand-over has answered (not kept: an attempt ends with the host)
        // pending, retrying, sent, confirmed, failed, interrupted, cancelled, unconfirmed (its run ended first)
        std::string state = "pending";
        std::string reason, message;
        std::int64_t due_wall_ms = 0, sent_wall_ms = 0, result_wall_ms = 0, latency_ms = -1;
        clock::time_point due, deadline, retry_at;
        bool scheduled = false;  // its stage has begun: due is set
        bool unreported = false; // its result is recorded and its event not yet handed to the uplink (report())
        bool final() const;
    };
    struct run {
        std::uint64_t id = 0;
        std::string state;  // requested, running, active, ended, expired, inhibited
        std::vector<signal> trigger;
        std::int64_t trigger_wall_ms = 0, started_wall_ms = 0, request_deadline_wall_ms = 0, ended_wall_ms = 0;
        clock::time_point trigger_at, request_deadline;
        std::vector<action_run> actions;
        std::string ended_by, ended_principal, mode;
        std::string rule_print;  // the rule's actions when it began: a run of another rule is not resumed
        bool final() const { return state == "ended" || state == "expired" || state == "inhibited"; }
    };
    struct rule_state {
        site::linkage_rule rule;
        std::string mode;           // as it runs: the file's, or an operator's change
        std::string refused;        // why it cannot run
        std::vector<json> args;     // each action's arguments
        std::string print;          // a fingerprint of its actions (run::rule_print)
        std::optional<run> current;
        std::deque<run> history;    // finished runs, newest last
        // The signals its runs acted on, while they are remembered at all (signals_): never a trigger again.
        std::vector<signal> consumed;
        std::uint64_t next_run = 1;
    };
    // The engine's thread.
    void loop();
    void handle(const core::accepted_event &ev, clock::time_point now);
    void step(clock::time_point now);
    std::optional<clock::time_point> next_wake() const;

    // Rules.
    bool listens(const core::accepted_event &ev) const;
    bool condition_matches(const site::trigger_condition &c, const signal &s) const;
    // The signals that satisfy the rule's trigger now (empty: it does not hold), and whether one of them is new.
    struct evaluation {
        std::vector<signal> used;
        bool fresh = false;
        std::optional<clock::time_point> ripe_at;  // min_duration: when it will have held long enough
    };
    evaluation evaluate(const rule_state &r, clock::time_point now) const;
    bool consumed(const rule_state &r, const signal &s) const;
    // Whether the trigger still holds by open conditions alone (what ends a rule with ends = "restore").
    bool holds_open(const rule_state &r) const;
    void fire(rule_state &r, evaluation e, clock::time_point now);
    void begin_actions(rule_state &r, clock::time_point now);
    void schedule_stage(rule_state &r, std::size_t stage, clock::time_point from);
    void advance(rule_state &r, clock::time_point now);
    void send(rule_state &r, action_run &a, std::size_t index, clock::time_point now);
    void answered(const std::string &rule, std::size_t index, const std::string &command_id, const command_answer &a);
    void consume(rule_state &r, const signal &s);
    void fail(rule_state &r, action_run &a, std::string reason, std::string message,
              const std::string &state = "failed");
    void report(rule_state &r, action_run &a);
    void finish(rule_state &r, const std::string &state, const std::string &by, const std::string &who);
    void on_result(const std::string &command_id, const std::string &device, bool ok, const std::string &message,
                   clock::time_point at, bool from_host);
    std::vector<std::string> targets(const site::linkage_action &a) const;

    // Out.
    void emit(const std::string &kind, const std::string &code, const rule_state &r, const run *x,
              const action_run *a, std::string message, const std::string &severity = {},
              const std::map<std::string, json> &more = {}, std::function<void()> committed = {});
    bool audit(const std::string &step, const rule_state &r, const run *x, const principal &who, json more = {});

    // State file.
    void open_store();
    void load_store();
    bool save(const rule_state &r, const run &x);  // false when the file refused it (logged)
    void save_mode(const rule_state &r);
    static json run_json(const run &x);
    run run_from(const json &j, clock::time_point now_steady, std::int64_t now_wall) const;
    static std::string describe(const std::vector<signal> &trigger);

    engine_options options_;
    engine_hooks hooks_;
    std::unique_ptr<SQLite::Database> db_;
    std::set<std::string> listened_devices_;  // devices some trigger can hear

    mutable std::mutex mutex_;  // everything below
    std::map<std::string, rule_state> rules_;
    std::vector<signal> signals_;  // open conditions and recent signals of the listened devices
    std::map<std::string, std::pair<std::string, std::size_t>> by_command_;  // command_id -> (rule, action index)
    std::map<std::string, std::map<std::string, std::uint64_t>> counts_;     // rule -> event code -> made

    std::mutex inbox_mutex_;
    std::condition_variable inbox_cv_, room_cv_;
    struct hand_over {  // a command's hand-over answered, on its sender thread
        std::string rule;
        std::size_t index = 0;
        std::string command_id;
        command_answer answer;
    };
    struct reported {  // an action's result event committed by the queue, on the queue's writer thread
        std::string rule;
        std::uint64_t run = 0;
        std::string command_id;
    };
    std::deque<std::variant<core::accepted_event, hand_over, reported>> inbox_;
    // What a commit callback reaches: the engine while it lives (the queue may commit after the engine is gone).
    struct report_box {
        std::mutex mutex;
        linkage_engine *engine = nullptr;
    };
    std::shared_ptr<report_box> report_box_ = std::make_shared<report_box>();
    void mark_reported(const reported &r);
    struct sender {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    std::list<sender> senders_;  // each hand-over in flight; the finished ones joined by the engine's thread
    std::string epoch_;                 // of the state file: command ids never repeat across a new one
    bool wake_ = false, stopping_ = false;
    std::atomic<bool> running_{false};  // start() began the thread: until then (or if it failed) nothing is queued
    std::thread thread_;
    std::thread::id thread_id_;
};

}  // namespace firelink::linkage
