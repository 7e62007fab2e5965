#include "firelink/linkage/linkage_engine.hpp"

#include <algorithm>
#include <cstdio>
#include <random>
#include <stdexcept>

#include <SQLiteCpp/SQLiteCpp.h>
#include <spdlog/spdlog.h>

#include <firelink/core/event_check.hpp>
#include <firelink/payload.hpp>
#include <firelink/text.hpp>

namespace firelink::linkage {

namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t wall_of(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A wall-clock time as the steady clock's, given one moment known on both.
clock::time_point steady_of(std::int64_t wall, clock::time_point now_steady, std::int64_t now_wall) {
    return now_steady + std::chrono::milliseconds(wall - now_wall);
}

bool is_signal_kind(const std::string &kind) { return kind == "alarm" || kind == "pre_alarm" || kind == "fault"; }

std::string actor_name(const std::string &rule) { return "linkage:" + rule; }

// What a rule's actions are, as a short stable text: a run begun under other actions is not resumed by these.
std::string fingerprint(const site::linkage_rule &rule) {
    std::string text = rule.parallel ? "parallel" : "sequence";
    for (const auto &a : rule.actions) {
        text += "\x1e" + a.device + "\x1f" + a.select.describe() + "\x1f" + a.command + "\x1f" +
                std::to_string(a.delay.count()) + "\x1f" + std::to_string(a.timeout.count()) + "\x1f";
        text.append(a.args.begin(), a.args.end());
    }
    std::uint64_t h = 14695981039346656037ull;  // FNV-1a 64
    for (const unsigned char c : text) h = (h ^ c) * 1099511628211ull;
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
    return out;
}

bool may_operate(const principal &who) { return who.source == "platform" || who.role == "operate" || who.role == "admin"; }

}  // namespace

bool linkage_engine::action_run::final() const {
    return state == "confirmed" || state == "failed" || state == "interrupted" || state == "cancelled" ||
           state == "unconfirmed";
}

linkage_engine::linkage_engine(engine_options options, engine_hooks hooks)
    : options_(std::move(options)), hooks_(std::move(hooks)) {
    report_box_->engine = this;
    for (const auto &rule : options_.rules) {
        rule_state r;
        r.rule = rule;
        r.mode = rule.mode;
        for (const auto &a : rule.actions)
            r.args.push_back(json::parse(core::msgpack_to_json(a.args.data(), a.args.size()), nullptr, false));
        r.print = fingerprint(rule);
        for (const auto &d : options_.devices)
            if (d.enabled)
                for (const auto &c : rule.trigger.conditions)
                    if (c.matches(d)) listened_devices_.insert(d.id);
        rules_.emplace(rule.id, std::move(r));
    }
    if (rules_.empty()) return;  // no rules: no state file to open
    open_store();
    load_store();
}

linkage_engine::~linkage_engine() {
    {
        std::lock_guard lock(report_box_->mutex);  // a commit after this reaches no one: start() reports it again
        report_box_->engine = nullptr;
    }
    stop();
}

void linkage_engine::refuse(const std::string &rule, const std::string &why) {
    std::lock_guard lock(mutex_);
    if (auto it = rules_.find(rule); it != rules_.end()) it->second.refused = why;
}

// ---- the state file ----

void linkage_engine::open_store() {
    try {
        // A short wait for the lock: the file is shared with the queue and the audit chain, and a run's state must
        // not hold a valve's close for long (save() goes on without it, and says so).
        db_ = std::make_unique<SQLite::Database>(options_.state_path.string(),
                                                 SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, 1'000);
        db_->exec("PRAGMA journal_mode=WAL");
        db_->exec("PRAGMA synchronous=FULL");  // a run's state is on disk before its command goes out
        db_->exec("CREATE TABLE IF NOT EXISTS linkage_run(rule TEXT NOT NULL, run INTEGER NOT NULL, "
                  "final INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(rule, run))");
        db_->exec("CREATE TABLE IF NOT EXISTS linkage_mode(rule TEXT PRIMARY KEY, mode TEXT NOT NULL, "
                  "configured TEXT NOT NULL)");
        // The signals runs acted on, while they can still count: what keeps an old alarm from firing a rule again,
        // however many runs the history keeps.
        db_->exec("CREATE TABLE IF NOT EXISTS linkage_consumed(rule TEXT NOT NULL, device TEXT NOT NULL, "
                  "event_id TEXT NOT NULL, code TEXT NOT NULL, raised_wall_ms INTEGER NOT NULL, "
                  "PRIMARY KEY(rule, device, event_id, code, raised_wall_ms))");
        db_->exec("CREATE TABLE IF NOT EXISTS linkage_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
        if (auto e = db_->execAndGet("SELECT coalesce((SELECT value FROM linkage_meta WHERE key = 'epoch'), '')")
                         .getString();
            !e.empty()) {
            epoch_ = e;
        } else {
            std::random_device rd;
            char buf[9];
            std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
            epoch_ = buf;
            SQLite::Statement put(*db_, "INSERT INTO linkage_meta(key, value) VALUES('epoch', ?)");
            put.bind(1, epoch_);
            put.exec();
        }
    } catch (const std::exception &e) {
        throw std::runtime_error("linkage state " + options_.state_path.string() + ": " + e.what());
    }
}

void linkage_engine::load_store() {
    const auto now = clock::now();
    const auto now_wall = wall_ms();
    try {
        SQLite::Statement runs(*db_, "SELECT rule, body FROM linkage_run ORDER BY rule, run");
        std::set<std::string> gone;
        while (runs.executeStep()) {
            const std::string rule = runs.getColumn(0).getString();
            auto it = rules_.find(rule);
            if (it == rules_.end()) {
                gone.insert(rule);
                continue;
            }
            // A row that does not read (a damaged file, a hand edit) is skipped and said: the rule still runs.
            const auto body = json::parse(runs.getColumn(1).getString(), nullptr, false);
            run x;
            try {
                if (!body.is_object()) throw std::runtime_error("not a JSON object");
                x = run_from(body, now, now_wall);
            } catch (const std::exception &e) {
                spdlog::error("linkage '{}': a stored run in {} does not read ({}); it is skipped", rule,
                              options_.state_path.string(), e.what());
                continue;
            }
            auto &r = it->second;
            r.next_run = std::max(r.next_run, x.id + 1);
            if (x.final()) {
                r.history.push_back(std::move(x));
            } else {
                if (r.current) {  // two open runs: the older one ended with the host that left it
                    r.current->state = "ended";
                    r.current->ended_by = "restart";
                    r.history.push_back(std::move(*r.current));
                }
                r.current = std::move(x);
            }
        }
        for (const auto &rule : gone) {
            SQLite::Statement del(*db_, "DELETE FROM linkage_run WHERE rule = ?");
            del.bind(1, rule);
            del.exec();
        }
        SQLite::Statement used(*db_, "SELECT rule, device, event_id, code, raised_wall_ms FROM linkage_consumed");
        while (used.executeStep())
            if (auto it = rules_.find(used.getColumn(0).getString()); it != rules_.end())
                it->second.consumed.push_back(signal{used.getColumn(1).getString(), used.getColumn(2).getString(), "",
                                                     used.getColumn(3).getString(), used.getColumn(4).getInt64(), now,
                                                     false});
        SQLite::Statement modes(*db_, "SELECT rule, mode, configured FROM linkage_mode");
        std::vector<std::string> stale;
        while (modes.executeStep()) {
            auto it = rules_.find(modes.getColumn(0).getString());
            if (it != rules_.end() && modes.getColumn(2).getString() == it->second.rule.mode)
                it->second.mode = modes.getColumn(1).getString();
            else
                stale.push_back(modes.getColumn(0).getString());  // the site file changed the mode: it wins
        }
        for (const auto &rule : stale) {
            SQLite::Statement del(*db_, "DELETE FROM linkage_mode WHERE rule = ?");
            del.bind(1, rule);
            del.exec();
        }
    } catch (const std::exception &e) {
        throw std::runtime_error("linkage state " + options_.state_path.string() + ": " + e.what());
    }
    for (auto &[id, r] : rules_) {
        for (const auto &x : r.history) r.consumed.insert(r.consumed.end(), x.trigger.begin(), x.trigger.end());
        if (r.current) r.consumed.insert(r.consumed.end(), r.current->trigger.begin(), r.current->trigger.end());
        while (r.history.size() > options_.runs_kept) r.history.pop_front();
        if (r.current)
            for (std::size_t i = 0; i < r.current->actions.size(); ++i)
                by_command_[r.current->actions[i].command_id] = {id, i};
    }
}

bool linkage_engine::save(const rule_state &r, const run &x) {
    if (!db_) return true;
    try {
        SQLite::Transaction tx(*db_);
        SQLite::Statement put(*db_, "INSERT OR REPLACE INTO linkage_run(rule, run, final, body) VALUES(?, ?, ?, ?)");
        put.bind(1, r.rule.id);
        put.bind(2, static_cast<std::int64_t>(x.id));
        put.bind(3, x.final() ? 1 : 0);
        put.bind(4, text::dump_json(run_json(x)));
        put.exec();
        if (x.final() && x.id > options_.runs_kept) {
            SQLite::Statement prune(*db_, "DELETE FROM linkage_run WHERE rule = ? AND run <= ? AND final = 1");
            prune.bind(1, r.rule.id);
            prune.bind(2, static_cast<std::int64_t>(x.id - options_.runs_kept));
            prune.exec();
        }
        tx.commit();
        return true;
    } catch (const std::exception &e) {
        // The action goes on: a closed valve matters more than its record. The audit chain still has each step;
        // a restart before the next record that holds may repeat what this one would have said was sent.
        spdlog::critical("linkage '{}': cannot record run {} in {}: {}; the run goes on without it", r.rule.id, x.id,
                         options_.state_path.string(), e.what());
        return false;
    }
}

void linkage_engine::save_mode(const rule_state &r) {
    if (!db_) return;
    if (r.mode == r.rule.mode) {
        SQLite::Statement del(*db_, "DELETE FROM linkage_mode WHERE rule = ?");
        del.bind(1, r.rule.id);
        del.exec();
        return;
    }
    SQLite::Statement put(*db_, "INSERT OR REPLACE INTO linkage_mode(rule, mode, configured) VALUES(?, ?, ?)");
    put.bind(1, r.rule.id);
    put.bind(2, r.mode);
    put.bind(3, r.rule.mode);
    put.exec();
}

json linkage_engine::run_json(const run &x) {
    json trigger = json::array();
    for (const auto &s : x.trigger)
        trigger.push_back({{"device", s.device},
                           {"event_id", s.event_id},
                           {"kind", s.kind},
                           {"code", s.code},
                           {"raised_wall_ms", s.raised_wall_ms},
                           {"open", s.open}});
    json actions = json::array();
    for (std::size_t i = 0; i < x.actions.size(); ++i) {
        const auto &a = x.actions[i];
        json j{{"index", i},        {"stage", a.stage},   {"device", a.device},   {"command", a.command},
               {"command_id", a.command_id}, {"base_id", a.base_id}, {"attempt", a.attempt},
               {"state", a.state}, {"reason", a.reason}, {"message", a.message},
               {"scheduled", a.scheduled}, {"due_wall_ms", a.due_wall_ms}, {"sent_wall_ms", a.sent_wall_ms},
               {"result_wall_ms", a.result_wall_ms}, {"unreported", a.unreported}};
        j["latency_ms"] = a.latency_ms >= 0 ? json(a.latency_ms) : json(nullptr);
        actions.push_back(std::move(j));
    }
    return {{"run", x.id},
            {"state", x.state},
            {"mode", x.mode},
            {"trigger", std::move(trigger)},
            {"trigger_wall_ms", x.trigger_wall_ms},
            {"started_wall_ms", x.started_wall_ms},
            {"request_deadline_wall_ms", x.request_deadline_wall_ms},
            {"ended_wall_ms", x.ended_wall_ms},
            {"ended_by", x.ended_by},
            {"ended_principal", x.ended_principal},
            {"rule_print", x.rule_print},
            {"actions", std::move(actions)}};
}

linkage_engine::run linkage_engine::run_from(const json &j, clock::time_point now, std::int64_t now_wall) const {
    run x;
    x.id = j.value("run", std::uint64_t{0});
    x.state = j.value("state", "ended");
    x.mode = j.value("mode", "");
    x.trigger_wall_ms = j.value("trigger_wall_ms", std::int64_t{0});
    x.started_wall_ms = j.value("started_wall_ms", std::int64_t{0});
    x.request_deadline_wall_ms = j.value("request_deadline_wall_ms", std::int64_t{0});
    x.ended_wall_ms = j.value("ended_wall_ms", std::int64_t{0});
    x.ended_by = j.value("ended_by", "");
    x.ended_principal = j.value("ended_principal", "");
    x.rule_print = j.value("rule_print", "");
    x.trigger_at = steady_of(x.trigger_wall_ms, now, now_wall);
    x.request_deadline = steady_of(x.request_deadline_wall_ms, now, now_wall);
    for (const auto &s : j.value("trigger", json::array())) {
        signal sig;
        sig.device = s.value("device", "");
        sig.event_id = s.value("event_id", "");
        sig.kind = s.value("kind", "");
        sig.code = s.value("code", "");
        sig.raised_wall_ms = s.value("raised_wall_ms", std::int64_t{0});
        sig.open = s.value("open", false);
        sig.raised = steady_of(sig.raised_wall_ms, now, now_wall);
        x.trigger.push_back(std::move(sig));
    }
    for (const auto &a : j.value("actions", json::array())) {
        action_run ar;
        ar.stage = a.value("stage", std::size_t{0});
        ar.device = a.value("device", "");
        ar.command = a.value("command", "");
        ar.command_id = a.value("command_id", "");
        ar.base_id = a.value("base_id", ar.command_id);
        ar.attempt = a.value("attempt", 1u);
        ar.state = a.value("state", "pending");
        ar.reason = a.value("reason", "");
        ar.message = a.value("message", "");
        ar.scheduled = a.value("scheduled", false);
        ar.due_wall_ms = a.value("due_wall_ms", std::int64_t{0});
        ar.sent_wall_ms = a.value("sent_wall_ms", std::int64_t{0});
        ar.result_wall_ms = a.value("result_wall_ms", std::int64_t{0});
        ar.unreported = a.value("unreported", false);
        ar.latency_ms = a.contains("latency_ms") && a["latency_ms"].is_number() ? a["latency_ms"].get<std::int64_t>()
                                                                               : -1;
        ar.due = steady_of(ar.due_wall_ms, now, now_wall);
        x.actions.push_back(std::move(ar));
    }
    return x;
}

// ---- start and stop ----

void linkage_engine::start(const std::vector<core::open_condition> &open_now) {
    if (rules_.empty()) return;
    const auto now = clock::now();
    const auto now_wall = wall_ms();
    {
        std::lock_guard lock(mutex_);
        for (const auto &c : open_now) {
            if (!listened_devices_.count(c.device_id) || !is_signal_kind(c.kind)) continue;
            signals_.push_back(signal{c.device_id, c.event_id, c.kind, c.code, c.raised_wall_ms,
                                      steady_of(c.raised_wall_ms, now, now_wall), true});
        }
        // Runs the previous host left: an action handed over without its read-back is not sent again.
        for (auto &[id, r] : rules_) {
            if (!r.current || r.current->final()) continue;
            auto &x = *r.current;
            for (std::size_t i = 0; i < x.actions.size(); ++i) {
                auto &a = x.actions[i];
                if (a.unreported) {
                    report(r, a);  // decided, and killed before its event reached the uplink
                } else if (a.state == "sent") {
                    fail(r, a, "interrupted",
                         "the host stopped after it began to hand '" + a.command + "' to " + a.device +
                             " and before its read-back; it may have been sent and is not sent again: check the "
                             "device (the audit chain shows how far it got)",
                         "interrupted");
                } else if (a.state == "retrying") {
                    a.state = "pending";  // refused so far, so nothing moved: it may be sent
                    a.due = now;
                }
            }
            // A rule changed or refused since: its old run is not carried on with other actions.
            if (!r.refused.empty() || x.rule_print != r.print) {
                spdlog::warn("linkage '{}': run {} left by the previous host ends: {}", id, x.id,
                             r.refused.empty() ? "the rule's actions changed" : "the rule does not run: " + r.refused);
                finish(r, "ended", r.refused.empty() ? "rule_changed" : "rule_refused", "");
                continue;
            }
            for (auto &a : x.actions)
                if (!a.final()) a.deadline = std::max(a.due, now) + r.rule.actions.at(a.stage).timeout;
            save(r, x);
            spdlog::warn("linkage '{}': run {} goes on after the restart", id, x.id);
        }
    }
    {
        std::lock_guard lock(inbox_mutex_);
        stopping_ = false;
    }
    thread_ = std::thread([this] { loop(); });
    running_ = true;
}

void linkage_engine::stop() {
    {
        std::lock_guard lock(inbox_mutex_);
        stopping_ = true;
    }
    inbox_cv_.notify_all();
    room_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    // The hand-overs in flight end with the runtime's bound on a call; their answers are not wanted any more.
    std::list<sender> left;
    {
        std::lock_guard lock(inbox_mutex_);
        left.swap(senders_);
    }
    for (auto &s : left)
        if (s.thread.joinable()) s.thread.join();
}

// ---- events in ----

bool linkage_engine::listens(const core::accepted_event &ev) const {
    if (ev.kind == "command_result") return true;  // cheap to look at: there are few
    return listened_devices_.count(ev.device_id) && (is_signal_kind(ev.kind) || ev.kind == "restore" || ev.code == "reset");
}

void linkage_engine::observe(const core::accepted_event &ev) {
    if (!running_ || rules_.empty() || !listens(ev)) return;
    core::accepted_event copy;
    copy.device_id = ev.device_id;
    copy.device_class = ev.device_class;
    copy.kind = ev.kind;
    copy.code = ev.code;
    copy.from_host = ev.from_host;
    copy.received_wall = ev.received_wall;
    copy.received_monotonic = ev.received_monotonic;
    copy.condition = ev.condition;
    if (ev.kind == "command_result") copy.payload = ev.payload;
    std::unique_lock lock(inbox_mutex_);
    // Backpressure, never a drop: the emitting thread waits for room. Not the engine's own thread (a command it
    // hands over may come back at once as a host-made result).
    if (std::this_thread::get_id() != thread_id_)
        room_cv_.wait(lock, [&] { return inbox_.size() < options_.inbox_limit || stopping_; });
    if (stopping_) return;  // the host is stopping: no rule acts any more
    inbox_.push_back(std::move(copy));
    lock.unlock();
    inbox_cv_.notify_one();
}

void linkage_engine::loop() {
    {
        std::lock_guard lock(inbox_mutex_);
        thread_id_ = std::this_thread::get_id();
    }
    {
        std::lock_guard lock(mutex_);
        step(clock::now());
    }
    for (;;) {
        std::optional<clock::time_point> wake;
        {
            std::lock_guard state(mutex_);  // first, alone: mutex_ is never taken under inbox_mutex_
            wake = next_wake();
        }
        decltype(inbox_) batch;
        std::list<sender> finished;
        {
            std::unique_lock lock(inbox_mutex_);
            const auto ready = [&] { return stopping_ || wake_ || !inbox_.empty(); };
            if (wake)
                inbox_cv_.wait_until(lock, *wake, ready);
            else
                inbox_cv_.wait(lock, ready);
            if (stopping_) return;
            batch.swap(inbox_);
            wake_ = false;
            for (auto it = senders_.begin(); it != senders_.end();)
                if (it->done->load()) finished.splice(finished.end(), senders_, it++);
                else ++it;
        }
        room_cv_.notify_all();
        for (auto &f : finished) f.thread.join();
        std::lock_guard lock(mutex_);
        const auto now = clock::now();
        for (const auto &item : batch) {
            if (const auto *ev = std::get_if<core::accepted_event>(&item)) handle(*ev, now);
            else if (const auto *h = std::get_if<hand_over>(&item)) answered(h->rule, h->index, h->command_id, h->answer);
            else if (const auto *n = std::get_if<reported>(&item)) mark_reported(*n);
        }
        step(clock::now());
    }
}

void linkage_engine::handle(const core::accepted_event &ev, clock::time_point now) {
    if (ev.kind == "command_result") {
        const auto e = json::parse(core::msgpack_to_json(ev.payload.data(), ev.payload.size()), nullptr, false);
        if (!e.is_object()) return;
        const std::string id = e.value("command_id", "");
        if (!by_command_.count(id)) return;
        on_result(id, ev.device_id, e.value("ok", false), e.value("message", ""), ev.received_monotonic,
                  ev.from_host);
        return;
    }
    const auto signals_before = signals_.size();
    bool changed = false;  // a signal came or closed: only then is there anything to forget
    if (ev.condition) {
        for (const auto &closed : ev.condition->closed)
            for (auto &s : signals_)
                if (s.open && s.device == ev.device_id && s.event_id == closed) {
                    s.open = false;
                    changed = true;
                }
        if (const auto &o = ev.condition->opened; o && is_signal_kind(o->kind)) {
            auto held = std::find_if(signals_.begin(), signals_.end(), [&](const signal &s) {
                return s.open && s.device == ev.device_id && s.event_id == o->event_id;
            });
            if (held != signals_.end() && held->kind == o->kind && held->code == o->code) {
                // A re-report of what is open: not a new signal.
            } else {
                if (held != signals_.end()) held->open = false;  // replaced by another condition with its id
                signals_.push_back(signal{ev.device_id, o->event_id, o->kind, o->code, o->raised_wall_ms,
                                          ev.received_monotonic, true});
                changed = true;
            }
        }
    } else if (is_signal_kind(ev.kind)) {
        // An alarm without an event_id is a moment, not a condition: it counts for the rules' windows.
        signals_.push_back(signal{ev.device_id, "", ev.kind, ev.code, wall_of(ev.received_wall),
                                  ev.received_monotonic, false});
        changed = true;
    }
    // A signal that comes while a run is on is that run's too: a reset does not make it fire the rule again.
    for (auto s = signals_.begin() + static_cast<std::ptrdiff_t>(signals_before); s != signals_.end(); ++s)
        for (auto &[id, r] : rules_)
            if (r.current && !r.current->final() &&
                std::any_of(r.rule.trigger.conditions.begin(), r.rule.trigger.conditions.end(),
                            [&](const site::trigger_condition &c) { return condition_matches(c, *s); }))
                consume(r, *s);
    if (ev.code == "reset" && ev.kind != "restore") {
        // The device was reset (a fire panel's 复位): the runs it triggered end.
        for (auto &[id, r] : rules_) {
            if (!r.current || r.current->final()) continue;
            const auto &t = r.current->trigger;
            if (std::any_of(t.begin(), t.end(), [&](const signal &s) { return s.device == ev.device_id; }))
                finish(r, "ended", "device_reset", ev.device_id);
        }
    }
    if (!changed) return;
    // Forget what no window can count any more; a bounded memory of signals, never of the events themselves.
    std::chrono::milliseconds longest{0};
    for (const auto &[id, r] : rules_) longest = std::max(longest, r.rule.trigger.window);
    std::erase_if(signals_, [&](const signal &s) { return !s.open && now - s.raised > longest; });
    // Past the cap the oldest closed ones go; an open one never does (the devices' condition lists bound those).
    constexpr std::size_t signals_kept = 8192;
    while (signals_.size() > signals_kept) {
        auto oldest = std::find_if(signals_.begin(), signals_.end(), [](const signal &s) { return !s.open; });
        if (oldest == signals_.end()) break;
        signals_.erase(oldest);
    }
    // What a run acted on matters while the signal can still count: no longer, so the list stays as short.
    for (auto &[id, r] : rules_) {
        auto gone = std::stable_partition(r.consumed.begin(), r.consumed.end(), [&](const signal &c) {
            return std::any_of(signals_.begin(), signals_.end(), [&](const signal &s) { return s.same(c); });
        });
        if (gone == r.consumed.end()) continue;
        try {
            SQLite::Statement del(*db_, "DELETE FROM linkage_consumed WHERE rule = ? AND device = ? AND event_id = ? "
                                        "AND code = ? AND raised_wall_ms = ?");
            for (auto c = gone; c != r.consumed.end(); ++c) {
                del.bind(1, id);
                del.bind(2, c->device);
                del.bind(3, c->event_id);
                del.bind(4, c->code);
                del.bind(5, static_cast<std::int64_t>(c->raised_wall_ms));
                del.exec();
                del.reset();
            }
        } catch (const std::exception &e) {
            spdlog::error("linkage '{}': cannot forget signals in {}: {}", id, options_.state_path.string(), e.what());
        }
        r.consumed.erase(gone, r.consumed.end());
    }
}

void linkage_engine::consume(rule_state &r, const signal &s) {
    if (consumed(r, s)) return;
    r.consumed.push_back(s);
    try {
        SQLite::Statement put(*db_, "INSERT OR IGNORE INTO linkage_consumed(rule, device, event_id, code, "
                                    "raised_wall_ms) VALUES(?, ?, ?, ?, ?)");
        put.bind(1, r.rule.id);
        put.bind(2, s.device);
        put.bind(3, s.event_id);
        put.bind(4, s.code);
        put.bind(5, static_cast<std::int64_t>(s.raised_wall_ms));
        put.exec();
    } catch (const std::exception &e) {
        spdlog::critical("linkage '{}': cannot record a signal it acted on in {}: {}", r.rule.id,
                         options_.state_path.string(), e.what());
    }
}

// ---- rules ----

bool linkage_engine::condition_matches(const site::trigger_condition &c, const signal &s) const {
    if (c.kind != s.kind) return false;
    if (!c.code.empty() && c.code != s.code) return false;
    const auto d = std::find_if(options_.devices.begin(), options_.devices.end(),
                                [&](const site::device_config &x) { return x.id == s.device; });
    return d != options_.devices.end() && c.matches(*d);
}

bool linkage_engine::consumed(const rule_state &r, const signal &s) const {
    return std::any_of(r.consumed.begin(), r.consumed.end(), [&](const signal &t) { return t.same(s); });
}

linkage_engine::evaluation linkage_engine::evaluate(const rule_state &r, clock::time_point now) const {
    const auto &t = r.rule.trigger;
    std::vector<const signal *> candidates;
    for (const auto &s : signals_) {
        if (!s.open && (t.min_duration.count() > 0 || now - s.raised > t.window)) continue;
        if (std::any_of(t.conditions.begin(), t.conditions.end(),
                        [&](const site::trigger_condition &c) { return condition_matches(c, s); }))
            candidates.push_back(&s);
    }
    evaluation e;
    // The moment the trigger began to hold: the newest signal it needs.
    clock::time_point held_since;
    if (!t.all) {
        const signal *pick = nullptr;
        for (const auto *s : candidates) {
            if (consumed(r, *s)) continue;
            if (!pick || s->raised < pick->raised) pick = s;
        }
        if (!pick) return e;
        held_since = pick->raised;
        e.used.push_back(*pick);
    } else {
        std::map<std::string, const signal *> sources;  // the earliest signal of each independent source
        for (const auto *s : candidates) {
            const auto key = t.independent_conditions ? s->device + '\x1f' + s->event_id : s->device;
            auto &slot = sources[key];
            if (!slot || s->raised < slot->raised) slot = s;
        }
        if (sources.size() < t.count) return e;
        std::vector<const signal *> firsts;
        for (const auto &[key, s] : sources) firsts.push_back(s);
        std::sort(firsts.begin(), firsts.end(), [](const signal *a, const signal *b) { return a->raised < b->raised; });
        held_since = firsts[t.count - 1]->raised;
        for (const auto *s : candidates) e.used.push_back(*s);
    }
    e.fresh = std::any_of(e.used.begin(), e.used.end(), [&](const signal &s) { return !consumed(r, s); });
    if (now < held_since + t.min_duration) {
        e.ripe_at = held_since + t.min_duration;
        e.used.clear();
    }
    return e;
}

bool linkage_engine::holds_open(const rule_state &r) const {
    const auto &t = r.rule.trigger;
    std::set<std::string> sources;
    for (const auto &s : signals_)
        if (s.open && std::any_of(t.conditions.begin(), t.conditions.end(),
                                  [&](const site::trigger_condition &c) { return condition_matches(c, s); }))
            sources.insert(t.independent_conditions ? s.device + '\x1f' + s.event_id : s.device);
    return sources.size() >= (t.all ? t.count : 1u);
}

std::vector<std::string> linkage_engine::targets(const site::linkage_action &a) const {
    if (!a.device.empty()) return {a.device};
    std::vector<std::string> out;
    for (const auto &d : options_.devices)
        if (d.enabled && a.select.matches(d)) out.push_back(d.id);
    return out;
}

std::string linkage_engine::describe(const std::vector<signal> &trigger) {
    std::string out;
    for (const auto &s : trigger) out += (out.empty() ? "" : ", ") + s.code + " at " + s.device;
    return out;
}

void linkage_engine::fire(rule_state &r, evaluation e, clock::time_point now) {
    run x;
    x.id = r.next_run++;
    x.mode = r.mode;
    x.rule_print = r.print;
    x.trigger = std::move(e.used);
    // Every signal the rule hears now is this run's, not only the ones that fired it.
    for (const auto &s : signals_)
        if (std::any_of(r.rule.trigger.conditions.begin(), r.rule.trigger.conditions.end(),
                        [&](const site::trigger_condition &c) { return condition_matches(c, s); }))
            consume(r, s);
    const auto newest = std::max_element(x.trigger.begin(), x.trigger.end(),
                                         [](const signal &a, const signal &b) { return a.raised < b.raised; });
    x.trigger_at = newest->raised;
    x.trigger_wall_ms = newest->raised_wall_ms;
    const principal engine{actor_name(r.rule.id), "linkage", "linkage"};
    const auto trigger = describe(x.trigger);
    if (r.mode == "inhibit") {
        x.state = "inhibited";
        x.ended_wall_ms = wall_ms();
        x.ended_by = "inhibit";
        spdlog::warn("linkage '{}': inhibited, not acting on {}", r.rule.id, trigger);
        emit("status", "linkage_inhibited", r, &x, nullptr,
             "linkage '" + r.rule.id + "' is inhibited: it does not act on " + trigger);
        save(r, x);
        r.history.push_back(std::move(x));
        while (r.history.size() > options_.runs_kept) r.history.pop_front();
        return;
    }
    if (r.mode == "manual") {
        x.state = "requested";
        x.request_deadline = now + r.rule.confirm_within;
        x.request_deadline_wall_ms = wall_ms() + r.rule.confirm_within.count();
        r.current = std::move(x);
        audit("linkage_request", r, &*r.current, engine, {{"trigger", trigger}});
        save(r, *r.current);
        spdlog::warn("linkage '{}': {}: waiting for an operator's confirmation", r.rule.id, trigger);
        emit("alarm", "linkage_request", r, &*r.current, nullptr,
             "linkage '" + r.rule.id + "' asks to act on " + trigger + ": confirm within " +
                 std::to_string(r.rule.confirm_within.count() / 1000) + " s",
             "major", {{"confirm_within_s", r.rule.confirm_within.count() / 1000}});
        return;
    }
    r.current = std::move(x);
    audit("linkage_fire", r, &*r.current, engine, {{"trigger", trigger}});
    begin_actions(r, now);
}

void linkage_engine::begin_actions(rule_state &r, clock::time_point now) {
    auto &x = *r.current;
    x.state = "running";
    x.started_wall_ms = wall_ms();
    for (std::size_t stage = 0; stage < r.rule.actions.size(); ++stage) {
        const auto &a = r.rule.actions[stage];
        for (const auto &device : targets(a)) {
            action_run ar;
            ar.stage = stage;
            ar.device = device;
            ar.command = a.command;
            ar.base_id = "lnk-" + epoch_ + "-" + r.rule.id + "-" + std::to_string(x.id) + "-" +
                         std::to_string(x.actions.size());
            ar.command_id = ar.base_id;
            by_command_[ar.command_id] = {r.rule.id, x.actions.size()};
            x.actions.push_back(std::move(ar));
        }
    }
    if (r.rule.parallel)
        for (std::size_t stage = 0; stage < r.rule.actions.size(); ++stage) schedule_stage(r, stage, now);
    else
        schedule_stage(r, 0, now);
    save(r, x);  // before the first command goes out
    spdlog::warn("linkage '{}': run {} started by {}: {} action(s)", r.rule.id, x.id, describe(x.trigger),
                 x.actions.size());
    emit("status", "linkage_started", r, &x, nullptr,
         "linkage '" + r.rule.id + "' started by " + describe(x.trigger) + ": " + std::to_string(x.actions.size()) +
             " action(s)",
         {}, {{"actions", x.actions.size()}});
}

void linkage_engine::schedule_stage(rule_state &r, std::size_t stage, clock::time_point from) {
    const auto &a = r.rule.actions[stage];
    const auto now_wall = wall_ms();
    const auto now = clock::now();
    for (auto &ar : r.current->actions) {
        if (ar.stage != stage || ar.scheduled) continue;
        ar.scheduled = true;
        ar.due = from + a.delay;
        ar.due_wall_ms = now_wall + std::chrono::duration_cast<std::chrono::milliseconds>(ar.due - now).count();
        ar.deadline = ar.due + a.timeout;
    }
}

void linkage_engine::send(rule_state &r, action_run &a, std::size_t index, clock::time_point) {
    // On disk first: a host killed after this line never sends it again (start() reports it interrupted).
    a.state = "sent";
    a.answered = false;
    a.sent_wall_ms = wall_ms();
    save(r, *r.current);
    // Handed over on a thread of its own: a device that takes long to answer holds neither the engine nor the
    // other devices of the run. The answer comes back through the inbox, to answered().
    auto done = std::make_shared<std::atomic<bool>>(false);
    command_request request{r.rule.id, a.device, a.command, a.command_id, r.args.at(a.stage)};
    auto hand = [this, request = std::move(request), index, done] {
        command_answer answer;
        try {
            answer = hooks_.command(request);
        } catch (const std::exception &e) {
            answer = {command_answer::outcome::refused, "error", e.what()};
        }
        {
            std::lock_guard lock(inbox_mutex_);
            if (!stopping_) inbox_.push_back(hand_over{request.rule, index, request.command_id, std::move(answer)});
        }
        inbox_cv_.notify_one();
        done->store(true);
    };
    std::lock_guard lock(inbox_mutex_);
    senders_.push_back(sender{std::thread(std::move(hand)), std::move(done)});
}

void linkage_engine::answered(const std::string &rule, std::size_t index, const std::string &command_id,
                              const command_answer &answer) {
    auto it = rules_.find(rule);
    if (it == rules_.end() || !it->second.current || index >= it->second.current->actions.size()) return;
    auto &r = it->second;
    auto &a = r.current->actions[index];
    if (a.command_id != command_id || a.state != "sent") return;  // its read-back came first, or it timed out
    a.answered = true;
    switch (answer.what) {
    case command_answer::outcome::sent: break;
    case command_answer::outcome::busy:
        a.state = "retrying";
        a.reason = answer.reason;
        a.message = answer.detail;
        a.retry_at = clock::now() + options_.retry_interval;
        save(r, *r.current);
        break;
    case command_answer::outcome::refused: fail(r, a, answer.reason, answer.detail); break;
    }
}

void linkage_engine::fail(rule_state &r, action_run &a, std::string reason, std::string message,
                          const std::string &state) {
    a.state = state;
    a.reason = std::move(reason);
    a.message = std::move(message);
    a.result_wall_ms = wall_ms();
    spdlog::error("linkage '{}': run {}: '{}' on {} failed ({}): {}", r.rule.id, r.current->id, a.command, a.device,
                  a.reason, a.message);
    report(r, a);
}

// An action's result is on disk before its event is handed to the uplink, and marked reported only once the queue
// has committed that event (mark_reported, from the queue's commit): a host killed in between reports it again when
// it starts (the same run and command_id: at least once, never contradicted by a restart that reads an older state).
void linkage_engine::report(rule_state &r, action_run &a) {
    a.unreported = true;
    save(r, *r.current);
    auto committed = [box = report_box_, note = reported{r.rule.id, r.current->id, a.command_id}] {
        std::lock_guard lock(box->mutex);
        if (!box->engine) return;
        {
            std::lock_guard inbox(box->engine->inbox_mutex_);
            if (box->engine->stopping_) return;
            box->engine->inbox_.push_back(note);
        }
        box->engine->inbox_cv_.notify_one();
    };
    if (a.state == "confirmed")
        emit("status", "linkage_confirmed", r, &*r.current, &a,
             "linkage '" + r.rule.id + "': '" + a.command + "' on " + a.device + " confirmed by read-back: " +
                 a.message,
             {}, {}, std::move(committed));
    else
        emit("alarm", "linkage_failed", r, &*r.current, &a,
             "linkage '" + r.rule.id + "': '" + a.command + "' on " + a.device + " failed (" + a.reason +
                 "): " + a.message,
             "critical", {{"reason", a.reason}}, std::move(committed));
}

void linkage_engine::mark_reported(const reported &note) {
    const auto it = rules_.find(note.rule);
    if (it == rules_.end() || !it->second.current || it->second.current->id != note.run) return;  // ended since
    for (auto &a : it->second.current->actions)
        if (a.command_id == note.command_id && a.unreported) {
            a.unreported = false;
            save(it->second, *it->second.current);
        }
}

void linkage_engine::on_result(const std::string &command_id, const std::string &device, bool ok,
                               const std::string &message, clock::time_point at, bool from_host) {
    const auto [rule, index] = by_command_.at(command_id);
    auto &r = rules_.at(rule);
    if (!r.current || index >= r.current->actions.size()) return;  // its run has ended
    auto &a = r.current->actions[index];
    if (a.command_id != command_id || a.device != device || a.state != "sent") return;
    // The host's refusal comes with the hand-over's own answer, which says whether to try again (answered()):
    // until that answer, the host's failed result is not the last word.
    if (from_host && !ok && !a.answered) return;
    if (!ok) return fail(r, a, "command_failed", message);
    a.state = "confirmed";
    a.message = message;
    a.result_wall_ms = wall_ms();
    a.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - r.current->trigger_at).count();
    spdlog::info("linkage '{}': run {}: '{}' on {} confirmed in {} ms: {}", r.rule.id, r.current->id, a.command,
                 a.device, a.latency_ms, message);
    report(r, a);
}

void linkage_engine::advance(rule_state &r, clock::time_point now) {
    auto &x = *r.current;
    if (x.state != "running") return;
    for (std::size_t stage = 0; stage < r.rule.actions.size(); ++stage) {
        bool done = true, begun = false;
        for (const auto &a : x.actions)
            if (a.stage == stage) {
                done = done && a.final();
                begun = begun || a.scheduled;
            }
        if (!begun) {
            schedule_stage(r, stage, now);  // the previous stage has all its results
            save(r, x);
            return;
        }
        if (!done) return;
    }
    x.state = "active";
    save(r, x);
    const auto failed = std::count_if(x.actions.begin(), x.actions.end(),
                                      [](const action_run &a) { return a.state != "confirmed"; });
    spdlog::info("linkage '{}': run {}: every action has its result ({} not confirmed); active until {}", r.rule.id,
                 x.id, failed, r.rule.latching ? "reset" : "its trigger restores");
}

void linkage_engine::finish(rule_state &r, const std::string &state, const std::string &by, const std::string &who) {
    auto x = std::move(*r.current);
    r.current.reset();
    x.state = state;
    x.ended_by = by;
    x.ended_principal = who;
    x.ended_wall_ms = wall_ms();
    std::size_t cancelled = 0;
    for (auto &a : x.actions) {
        if (a.state == "pending" || a.state == "retrying") {
            a.state = "cancelled";
            ++cancelled;
        }
        if (a.state == "sent") a.state = "unconfirmed";  // handed over; its read-back no longer belongs to a run
    }
    if (state == "ended") {
        const principal engine{actor_name(r.rule.id), "linkage", "linkage"};
        if (by != "reset") audit("linkage_end", r, &x, engine, {{"by", by}, {"by_device", who}});
        emit("status", "linkage_ended", r, &x, nullptr,
             "linkage '" + r.rule.id + "' ended by " + by + (who.empty() ? "" : " (" + who + ")") +
                 (cancelled ? ": " + std::to_string(cancelled) + " action(s) not yet sent are cancelled" : ""),
             {}, {{"by", by}, {"principal", who}});
    }
    save(r, x);
    // A result for an ended run changes nothing (on_result looks at the current run only): forget its ids.
    for (const auto &a : x.actions)
        for (unsigned k = 1; k <= a.attempt; ++k) by_command_.erase(k == 1 ? a.base_id : a.base_id + ".r" + std::to_string(k));
    r.history.push_back(std::move(x));
    while (r.history.size() > options_.runs_kept) r.history.pop_front();
}

void linkage_engine::step(clock::time_point now) {
    for (auto &[id, r] : rules_) {
        if (!r.refused.empty()) continue;
        if (r.current && r.current->state == "requested" && now >= r.current->request_deadline) {
            const principal engine{actor_name(id), "linkage", "linkage"};
            audit("linkage_expired", r, &*r.current, engine);
            emit("alarm", "linkage_failed", r, &*r.current, nullptr,
                 "linkage '" + id + "': no operator confirmed its request within " +
                     std::to_string(r.rule.confirm_within.count() / 1000) + " s; nothing was moved",
                 "critical", {{"reason", "request_expired"}});
            finish(r, "expired", "request_expired", "");
        }
        if (r.current && r.current->state == "running") {
            auto &x = *r.current;
            for (std::size_t i = 0; i < x.actions.size(); ++i) {
                auto &a = x.actions[i];
                if (!a.scheduled || a.final()) continue;
                if ((a.state == "sent" || a.state == "retrying") && now >= a.deadline) {
                    if (a.state == "sent" && hooks_.release) hooks_.release(a.device, a.command_id);
                    fail(r, a, "timeout",
                         a.state == "retrying"
                             ? "not taken within " + std::to_string(r.rule.actions[a.stage].timeout.count() / 1000) +
                                   " s: " + a.reason + ": " + a.message
                             : "no read-back within " + std::to_string(r.rule.actions[a.stage].timeout.count() / 1000) +
                                   " s");
                    continue;
                }
                if ((a.state == "pending" && now >= a.due) || (a.state == "retrying" && now >= a.retry_at)) {
                    if (a.state == "retrying") {
                        // Another attempt, another id: a late answer to the last one must not be taken for this.
                        a.command_id = a.base_id + ".r" + std::to_string(++a.attempt);
                        by_command_[a.command_id] = {id, i};
                    }
                    send(r, a, i, now);
                }
            }
            advance(r, now);
        }
        if (r.current && r.current->state == "active" && !r.rule.latching && !holds_open(r))
            finish(r, "ended", "restore", "");
        if (!r.current) {
            auto e = evaluate(r, now);
            if (e.fresh && !e.used.empty()) fire(r, std::move(e), now);
        }
    }
}

std::optional<clock::time_point> linkage_engine::next_wake() const {
    std::optional<clock::time_point> wake;
    const auto sooner = [&](clock::time_point t) {
        if (!wake || t < *wake) wake = t;
    };
    const auto now = clock::now();
    for (const auto &[id, r] : rules_) {
        if (!r.refused.empty()) continue;
        if (!r.current) {
            if (r.rule.trigger.min_duration.count() > 0)
                if (auto e = evaluate(r, now); e.fresh && e.ripe_at) sooner(*e.ripe_at);
            continue;
        }
        if (r.current->state == "requested") sooner(r.current->request_deadline);
        if (r.current->state != "running") continue;
        for (const auto &a : r.current->actions) {
            if (!a.scheduled || a.final()) continue;
            if (a.state == "pending") sooner(a.due);
            if (a.state == "retrying") sooner(a.retry_at);
            sooner(a.deadline);
        }
    }
    return wake;
}

// ---- out ----

void linkage_engine::emit(const std::string &kind, const std::string &code, const rule_state &r, const run *x,
                          const action_run *a, std::string message, const std::string &severity,
                          const std::map<std::string, json> &more, std::function<void()> committed) {
    ++counts_[r.rule.id][code];
    if (!hooks_.emit) {
        if (committed) committed();  // nowhere to send it: nothing to wait for
        return;
    }
    firelink::event ev{kind == "alarm" ? event_kind::alarm : event_kind::status, code};
    if (severity == "critical") ev.level(firelink::severity::critical);
    if (severity == "major") ev.level(firelink::severity::major);
    ev.message(std::string(text::utf8_prefix(message, 1024)));
    ev.value("rule", r.rule.id);
    if (x) {
        ev.value("run", x->id);
        ev.value("trigger", std::string(text::utf8_prefix(describe(x->trigger), 512)));
        ev.value("mode", x->mode);
    }
    if (a) {
        ev.value("action", static_cast<std::uint64_t>(a->stage));
        ev.value("device", a->device);
        ev.value("command", a->command);
        ev.value("command_id", a->command_id);
        if (a->latency_ms >= 0) ev.value("latency_ms", a->latency_ms, "ms");
    }
    for (const auto &[k, v] : more) {
        if (v.is_number_integer()) ev.value(k, v.get<std::int64_t>());
        else ev.value(k, v.is_string() ? v.get<std::string>() : v.dump());
    }
    hooks_.emit(ev.pack(), kind, std::move(committed));
}

bool linkage_engine::audit(const std::string &step, const rule_state &r, const run *x, const principal &who,
                           json more) {
    if (!hooks_.audit) return true;
    json rec{{"step", step},           {"principal", who.name}, {"role", who.role}, {"source", who.source},
             {"rule", r.rule.id},      {"device", ""},          {"command", ""}};
    if (x) rec["run"] = x->id;
    for (auto &[k, v] : more.items()) rec[k] = v;
    try {
        return hooks_.audit(std::move(rec));
    } catch (const std::exception &e) {
        spdlog::critical("linkage '{}': audit of {}: {}", r.rule.id, step, e.what());
        return false;
    }
}

// ---- operators ----

std::pair<unsigned, json> linkage_engine::confirm(const principal &who, const std::string &rule) {
    std::lock_guard lock(mutex_);
    auto it = rules_.find(rule);
    if (it == rules_.end()) return {404, {{"error", "no linkage rule '" + rule + "'"}}};
    auto &r = it->second;
    if (!may_operate(who)) return {403, {{"error", "confirming a linkage needs the operate role"}}};
    if (!r.current || r.current->state != "requested")
        return {409, {{"error", "linkage '" + rule + "' has no request waiting for a confirmation"},
                      {"state", r.current ? r.current->state : std::string("idle")}}};
    if (!r.refused.empty() || r.mode == "inhibit")
        return {409, {{"error", "linkage '" + rule + "' " +
                                    (r.refused.empty() ? std::string("is inhibited") : "does not run: " + r.refused)}}};
    if (!audit("linkage_confirm", r, &*r.current, who))
        return {503, {{"error", "the confirmation could not be recorded in the audit chain: nothing is moved"}}};
    spdlog::warn("linkage '{}': run {} confirmed by {} ({})", rule, r.current->id, who.name, who.source);
    begin_actions(r, clock::now());
    {
        std::lock_guard inbox(inbox_mutex_);
        wake_ = true;
    }
    inbox_cv_.notify_one();
    return {200, {{"rule", rule}, {"run", r.current->id}, {"state", r.current->state}}};
}

std::pair<unsigned, json> linkage_engine::reset(const principal &who, const std::string &rule, const std::string &why) {
    std::lock_guard lock(mutex_);
    auto it = rules_.find(rule);
    if (it == rules_.end()) return {404, {{"error", "no linkage rule '" + rule + "'"}}};
    auto &r = it->second;
    if (!may_operate(who)) return {403, {{"error", "resetting a linkage needs the operate role"}}};
    if (!r.current) return {409, {{"error", "linkage '" + rule + "' has no run to reset"}, {"state", "idle"}}};
    if (!audit("linkage_reset", r, &*r.current, who, {{"why", why}}))
        return {503, {{"error", "the reset could not be recorded in the audit chain: the run goes on"}}};
    const auto id = r.current->id;
    finish(r, "ended", "reset", who.name);
    return {200, {{"rule", rule}, {"run", id}, {"state", "idle"}}};
}

std::pair<unsigned, json> linkage_engine::set_mode(const principal &who, const std::string &rule,
                                                   const std::string &mode, const std::string &why) {
    std::lock_guard lock(mutex_);
    auto it = rules_.find(rule);
    if (it == rules_.end()) return {404, {{"error", "no linkage rule '" + rule + "'"}}};
    if (mode != "auto" && mode != "manual" && mode != "inhibit")
        return {400, {{"error", "a linkage mode is 'auto', 'manual' or 'inhibit'"}}};
    if (who.role != "admin" || who.source == "platform")
        return {403, {{"error", "changing a linkage's mode needs the admin role on the admin port"}}};
    auto &r = it->second;
    if (!audit("linkage_mode", r, nullptr, who, {{"mode", mode}, {"before", r.mode}, {"why", why}}))
        return {503, {{"error", "the change could not be recorded in the audit chain: the mode stays " + r.mode}}};
    spdlog::warn("linkage '{}': mode {} -> {} by {}{}", rule, r.mode, mode, who.name, why.empty() ? "" : ": " + why);
    r.mode = mode;
    // Inhibited: a request still waiting is withdrawn (nothing has moved); a run already acting goes on.
    if (mode == "inhibit" && r.current && r.current->state == "requested") finish(r, "ended", "inhibit", who.name);
    try {
        save_mode(r);
    } catch (const std::exception &e) {
        spdlog::error("linkage '{}': the mode is not kept across a restart: {}", rule, e.what());
    }
    return {200, {{"rule", rule}, {"mode", mode}, {"configured_mode", r.rule.mode}}};
}

std::map<std::string, std::map<std::string, std::uint64_t>> linkage_engine::event_counts() const {
    std::lock_guard lock(mutex_);
    return counts_;
}

json linkage_engine::to_json() const {
    std::lock_guard lock(mutex_);
    json rules = json::array();
    for (const auto &[id, r] : rules_) {
        json last = json::array();
        for (auto h = r.history.rbegin(); h != r.history.rend() && last.size() < 5; ++h) last.push_back(run_json(*h));
        std::string state = "idle";
        if (!r.refused.empty()) state = "refused";
        else if (r.current) state = r.current->state;
        else if (const auto e = evaluate(r, clock::now()); e.fresh && e.ripe_at) state = "arming";
        json actions = json::array();
        for (const auto &a : r.rule.actions)
            actions.push_back({{"device", a.device.empty() ? json(nullptr) : json(a.device)},
                               {"select", a.device.empty() ? json(a.select.describe()) : json(nullptr)},
                               {"command", a.command},
                               {"delay_ms", a.delay.count()},
                               {"timeout_s", a.timeout.count() / 1000}});
        json conditions = json::array();
        for (const auto &c : r.rule.trigger.conditions)
            conditions.push_back(c.describe() + ": " + c.kind + (c.code.empty() ? "" : " " + c.code));
        json rule{{"id", id},
                  {"name", r.rule.name},
                  {"mode", r.mode},
                  {"configured_mode", r.rule.mode},
                  {"ends", r.rule.latching ? "reset" : "restore"},
                  {"order", r.rule.parallel ? "parallel" : "sequence"},
                  {"trigger", {{"combine", r.rule.trigger.all ? "all" : "any"},
                               {"count", r.rule.trigger.all ? r.rule.trigger.count : 1},
                               {"window_s", r.rule.trigger.window.count() / 1000},
                               {"min_duration_s", r.rule.trigger.min_duration.count() / 1000},
                               {"conditions", std::move(conditions)}}},
                  {"actions", std::move(actions)},
                  {"state", state},
                  {"run", r.current ? run_json(*r.current) : json(nullptr)},
                  {"last_runs", std::move(last)}};
        if (!r.refused.empty()) rule["why"] = r.refused;
        rules.push_back(std::move(rule));
    }
    return {{"rules", std::move(rules)}};
}

}  // namespace firelink::linkage
