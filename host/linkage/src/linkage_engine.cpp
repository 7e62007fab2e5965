#include "firelink/linkage/linkage_engine.hpp"

#include <algorithm>
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

}  // namespace

const std::map<std::string, std::string> &event_kinds() {
    static const std::map<std::string, std::string> kinds = {
        {"linkage_started", "status"}, {"linkage_confirmed", "status"}, {"linkage_failed", "alarm"},
        {"linkage_request", "alarm"},  {"linkage_ended", "status"},     {"linkage_inhibited", "status"}};
    return kinds;
}

bool linkage_engine::action_run::final() const {
    return state == "confirmed" || state == "failed" || state == "interrupted" || state == "cancelled";
}

linkage_engine::linkage_engine(engine_options options, engine_hooks hooks)
    : options_(std::move(options)), hooks_(std::move(hooks)) {
    for (const auto &rule : options_.rules) {
        rule_state r;
        r.rule = rule;
        r.mode = rule.mode;
        for (const auto &a : rule.actions)
            r.args.push_back(json::parse(core::msgpack_to_json(a.args.data(), a.args.size()), nullptr, false));
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

linkage_engine::~linkage_engine() { stop(); }

void linkage_engine::refuse(const std::string &rule, const std::string &why) {
    std::lock_guard lock(mutex_);
    if (auto it = rules_.find(rule); it != rules_.end()) it->second.refused = why;
}

// ---- the state file ----

void linkage_engine::open_store() {
    try {
        db_ = std::make_unique<SQLite::Database>(options_.state_path.string(),
                                                 SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, 10'000);
        db_->exec("PRAGMA journal_mode=WAL");
        db_->exec("PRAGMA synchronous=FULL");  // a run's state is on disk before its command goes out
        db_->exec("CREATE TABLE IF NOT EXISTS linkage_run(rule TEXT NOT NULL, run INTEGER NOT NULL, "
                  "final INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(rule, run))");
        db_->exec("CREATE TABLE IF NOT EXISTS linkage_mode(rule TEXT PRIMARY KEY, mode TEXT NOT NULL, "
                  "configured TEXT NOT NULL)");
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

void linkage_engine::save(const rule_state &r, const run &x) {
    if (!db_) return;
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
    } catch (const std::exception &e) {
        // The action goes on: a closed valve matters more than its record. The audit chain still has each step.
        spdlog::critical("linkage '{}': cannot record run {} in {}: {}", r.rule.id, x.id,
                         options_.state_path.string(), e.what());
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
               {"command_id", a.command_id}, {"state", a.state}, {"reason", a.reason}, {"message", a.message},
               {"scheduled", a.scheduled}, {"due_wall_ms", a.due_wall_ms}, {"sent_wall_ms", a.sent_wall_ms},
               {"result_wall_ms", a.result_wall_ms}};
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
        ar.state = a.value("state", "pending");
        ar.reason = a.value("reason", "");
        ar.message = a.value("message", "");
        ar.scheduled = a.value("scheduled", false);
        ar.due_wall_ms = a.value("due_wall_ms", std::int64_t{0});
        ar.sent_wall_ms = a.value("sent_wall_ms", std::int64_t{0});
        ar.result_wall_ms = a.value("result_wall_ms", std::int64_t{0});
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
            if (!r.current || r.current->state != "running") continue;
            auto &x = *r.current;
            for (std::size_t i = 0; i < x.actions.size(); ++i) {
                auto &a = x.actions[i];
                if (a.state == "sent") {
                    fail(r, a, i, "interrupted",
                         "the host stopped after handing '" + a.command + "' to " + a.device +
                             " and before its read-back; it is not sent again: check the device (the audit chain "
                             "holds the operate)");
                    a.state = "interrupted";
                } else if (a.state == "retrying") {
                    a.state = "pending";  // refused so far, so nothing moved: it may be sent
                    a.due = now;
                }
                if (!a.final()) a.deadline = std::max(a.due, now) + r.rule.actions.at(a.stage).timeout;
            }
            save(r, x);
            spdlog::warn("linkage '{}': run {} goes on after the restart", id, x.id);
        }
    }
    stopping_ = false;
    thread_ = std::thread([this] { loop(); });
}

void linkage_engine::stop() {
    {
        std::lock_guard lock(inbox_mutex_);
        stopping_ = true;
    }
    inbox_cv_.notify_all();
    room_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

// ---- events in ----

bool linkage_engine::listens(const core::accepted_event &ev) const {
    if (ev.kind == "command_result") return true;  // cheap to look at: there are few
    return listened_devices_.count(ev.device_id) && (is_signal_kind(ev.kind) || ev.kind == "restore" || ev.code == "reset");
}

void linkage_engine::observe(const core::accepted_event &ev) {
    if (rules_.empty() || !listens(ev)) return;
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
        std::deque<core::accepted_event> batch;
        {
            std::unique_lock lock(inbox_mutex_);
            std::optional<clock::time_point> wake;
            {
                std::lock_guard state(mutex_);
                wake = next_wake();
            }
            const auto ready = [&] { return stopping_ || wake_ || !inbox_.empty(); };
            if (wake)
                inbox_cv_.wait_until(lock, *wake, ready);
            else
                inbox_cv_.wait(lock, ready);
            if (stopping_) return;
            batch.swap(inbox_);
            wake_ = false;
        }
        room_cv_.notify_all();
        std::lock_guard lock(mutex_);
        const auto now = clock::now();
        for (const auto &ev : batch) handle(ev, now);
        step(clock::now());
    }
}

void linkage_engine::handle(const core::accepted_event &ev, clock::time_point now) {
    if (ev.kind == "command_result") {
        const auto e = json::parse(core::msgpack_to_json(ev.payload.data(), ev.payload.size()), nullptr, false);
        if (!e.is_object()) return;
        const std::string id = e.value("command_id", "");
        if (!by_command_.count(id)) return;
        const bool ok = e.value("ok", false);
        // The host's own refusal (the device not started, offline, busy) is a passing one while time is left.
        on_result(id, ev.device_id, ok, e.value("message", ""), ev.from_host && !ok ? clock::time_point::min()
                                                                                    : ev.received_monotonic);
        return;
    }
    if (ev.condition) {
        for (const auto &closed : ev.condition->closed)
            for (auto &s : signals_)
                if (s.open && s.device == ev.device_id && s.event_id == closed) s.open = false;
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
            }
        }
    } else if (is_signal_kind(ev.kind)) {
        // An alarm without an event_id is a moment, not a condition: it counts for the rules' windows.
        signals_.push_back(signal{ev.device_id, "", ev.kind, ev.code, wall_of(ev.received_wall),
                                  ev.received_monotonic, false});
    }
    if (ev.code == "reset" && ev.kind != "restore") {
        // The device was reset (a fire panel's 复位): the runs it triggered end.
        for (auto &[id, r] : rules_) {
            if (!r.current || r.current->final()) continue;
            const auto &t = r.current->trigger;
            if (std::any_of(t.begin(), t.end(), [&](const signal &s) { return s.device == ev.device_id; }))
                finish(r, "ended", "device_reset", ev.device_id);
        }
    }
    // Forget what no window can count any more; a bounded memory of signals, never of the events themselves.
    std::chrono::milliseconds longest{0};
    for (const auto &[id, r] : rules_) longest = std::max(longest, r.rule.trigger.window);
    std::erase_if(signals_, [&](const signal &s) { return !s.open && now - s.raised > longest; });
    constexpr std::size_t signals_kept = 8192;
    while (signals_.size() > signals_kept) {
        auto oldest = std::find_if(signals_.begin(), signals_.end(), [](const signal &s) { return !s.open; });
        signals_.erase(oldest == signals_.end() ? signals_.begin() : oldest);
    }
    // What a run acted on matters while the signal can still count: no longer, so the list stays as short.
    for (auto &[id, r] : rules_)
        std::erase_if(r.consumed, [&](const signal &c) {
            return std::none_of(signals_.begin(), signals_.end(), [&](const signal &s) { return s.same(c); });
        });
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
    x.trigger = std::move(e.used);
    for (const auto &s : x.trigger)
        if (!consumed(r, s)) r.consumed.push_back(s);
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
            ar.command_id = "lnk-" + r.rule.id + "-" + std::to_string(x.id) + "-" + std::to_string(x.actions.size());
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

void linkage_engine::send(rule_state &r, action_run &a, std::size_t index, clock::time_point now) {
    // On disk first: a host killed after this line never sends it again (start() reports it interrupted).
    a.state = "sent";
    a.sent_wall_ms = wall_ms();
    save(r, *r.current);
    command_answer answer;
    try {
        answer = hooks_.command(command_request{r.rule.id, a.device, a.command, a.command_id,
                                                r.args.at(a.stage)});
    } catch (const std::exception &e) {
        answer = {command_answer::outcome::refused, "error", e.what()};
    }
    switch (answer.what) {
    case command_answer::outcome::sent: break;
    case command_answer::outcome::busy:
        a.state = "retrying";
        a.reason = answer.reason;
        a.message = answer.detail;
        a.retry_at = now + options_.retry_interval;
        save(r, *r.current);
        break;
    case command_answer::outcome::refused: fail(r, a, index, answer.reason, answer.detail); break;
    }
}

void linkage_engine::fail(rule_state &r, action_run &a, std::size_t, std::string reason, std::string message) {
    a.state = "failed";
    a.reason = std::move(reason);
    a.message = std::move(message);
    a.result_wall_ms = wall_ms();
    spdlog::error("linkage '{}': run {}: '{}' on {} failed ({}): {}", r.rule.id, r.current->id, a.command, a.device,
                  a.reason, a.message);
    emit("alarm", "linkage_failed", r, &*r.current, &a,
         "linkage '" + r.rule.id + "': '" + a.command + "' on " + a.device + " failed (" + a.reason + "): " + a.message,
         "critical", {{"reason", a.reason}});
    save(r, *r.current);
}

void linkage_engine::on_result(const std::string &command_id, const std::string &device, bool ok,
                               const std::string &message, clock::time_point at) {
    const auto [rule, index] = by_command_.at(command_id);
    auto &r = rules_.at(rule);
    if (!r.current || index >= r.current->actions.size()) return;  // its run has ended
    auto &a = r.current->actions[index];
    if (a.command_id != command_id || a.device != device || a.state != "sent") return;
    const auto now = clock::now();
    if (at == clock::time_point::min()) {  // the host refused it before the driver saw it
        if (now + options_.retry_interval < a.deadline) {
            a.state = "retrying";
            a.reason = "not_ready";
            a.message = message;
            a.retry_at = now + options_.retry_interval;
            save(r, *r.current);
            return;
        }
        return fail(r, a, index, "command_failed", message);
    }
    if (!ok) return fail(r, a, index, "command_failed", message);
    a.state = "confirmed";
    a.message = message;
    a.result_wall_ms = wall_ms();
    a.latency_ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - r.current->trigger_at).count();
    spdlog::info("linkage '{}': run {}: '{}' on {} confirmed in {} ms: {}", r.rule.id, r.current->id, a.command,
                 a.device, a.latency_ms, message);
    emit("status", "linkage_confirmed", r, &*r.current, &a,
         "linkage '" + r.rule.id + "': '" + a.command + "' on " + a.device + " confirmed by read-back: " + message);
    save(r, *r.current);
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
    for (auto &a : x.actions)
        if (a.state == "pending" || a.state == "retrying") {
            a.state = "cancelled";
            ++cancelled;
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
    const auto prefix = "lnk-" + r.rule.id + "-" + std::to_string(x.id) + "-";
    std::erase_if(by_command_, [&](const auto &entry) {
        return entry.second.first == r.rule.id && entry.first.rfind(prefix, 0) == 0;
    });
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
                    fail(r, a, i, "timeout",
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
                        const auto base = a.command_id.substr(0, a.command_id.find(".r"));
                        const auto attempt = a.command_id.size() > base.size()
                                                 ? std::stoul(a.command_id.substr(base.size() + 2)) + 1
                                                 : 2;
                        a.command_id = base + ".r" + std::to_string(attempt);
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
                          const std::map<std::string, json> &more) {
    ++counts_[r.rule.id][code];
    if (!hooks_.emit) return;
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
    hooks_.emit(ev.pack(), kind);
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
    if (!r.current || r.current->state != "requested")
        return {409, {{"error", "linkage '" + rule + "' has no request waiting for a confirmation"},
                      {"state", r.current ? r.current->state : std::string("idle")}}};
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
    auto &r = it->second;
    if (!audit("linkage_mode", r, nullptr, who, {{"mode", mode}, {"before", r.mode}, {"why", why}}))
        return {503, {{"error", "the change could not be recorded in the audit chain: the mode stays " + r.mode}}};
    spdlog::warn("linkage '{}': mode {} -> {} by {}{}", rule, r.mode, mode, who.name, why.empty() ? "" : ": " + why);
    r.mode = mode;
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
