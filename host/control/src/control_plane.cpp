#include "firelink/control/control_plane.hpp"

#include <stdexcept>

namespace firelink::control {

namespace {

using clock = std::chrono::steady_clock;

bool same_principal(const actor &a, const actor &b) { return a.name == b.name && a.source == b.source; }

nlohmann::json base_record(const char *step, const actor &who, const std::string &device, const std::string &command) {
    return {{"step", step},        {"principal", who.name}, {"role", who.role},
            {"source", who.source}, {"device", device},     {"command", command}};
}

nlohmann::json operate_record(const actor &who, const std::string &device, const std::string &command,
                              const nlohmann::json &args, const std::string &command_id, const command_facts &facts) {
    auto rec = base_record("operate", who, device, command);
    rec["command_id"] = command_id;
    rec["args"] = args;
    rec["before"] = facts.before;
    return rec;
}

std::int64_t wall_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

const char *to_string(reason r) {
    switch (r) {
    case reason::none: return "none";
    case reason::not_selected: return "not_selected";
    case reason::select_expired: return "select_expired";
    case reason::selected_by_other: return "selected_by_other";
    case reason::not_authorized: return "not_authorized";
    case reason::interlocked: return "interlocked";
    case reason::local_mode: return "local_mode";
    case reason::already_active: return "already_active";
    case reason::unknown_command: return "unknown_command";
    case reason::audit_failed: return "audit_failed";
    }
    return "?";
}

control_plane::control_plane(control_options options, std::shared_ptr<audit_log> audit,
                             std::function<void(const audit_entry &)> on_audit)
    : options_(std::move(options)), audit_(std::move(audit)), on_audit_(std::move(on_audit)) {
    if (audit_) modes_ = audit_->modes();
}

// Records the step; a step that cannot be recorded is not taken. Called with mutex_ held; the upstream copy is sent
// by the caller once the lock is released (announce).
decision control_plane::record_locked(decision d, nlohmann::json record) {
    record["granted"] = d.granted();
    record["reason"] = d.granted() ? nlohmann::json(nullptr) : nlohmann::json(to_string(d.why));
    if (!d.detail.empty()) record["detail"] = d.detail;
    if (!d.select_id.empty()) record["select_id"] = d.select_id;
    if (!audit_) return d;
    try {
        auto entry = audit_->append(std::move(record));
        d.audit_seq = entry.seq;
        pending_announce_.push_back(std::move(entry));
    } catch (const std::exception &e) {
        if (d.granted()) {
            d.why = reason::audit_failed;
            d.detail = std::string(e.what()) + "; the command is not taken";
        }
    }
    return d;
}

void control_plane::announce() {
    std::vector<audit_entry> out;
    {
        std::lock_guard lock(mutex_);
        out.swap(pending_announce_);
    }
    if (on_audit_)
        for (const auto &e : out) on_audit_(e);
}

void control_plane::expire_locked(const std::string &device, clock::time_point now) {
    if (auto a = active_.find(device); a != active_.end() && now - a->second.since > options_.result_timeout)
        active_.erase(a);
}

reason control_plane::check_locked(const actor &who, const std::string &device, const std::string &command,
                                   const command_facts &facts, std::string &detail) {
    if (!facts.declared) {
        detail = "the device's driver declares no command '" + command + "' (firelink-host plugins lists them)";
        return reason::unknown_command;
    }
    if (who.source == "admin" && who.role != "operate" && who.role != "admin") {
        detail = "commands need the operate role; '" + who.name + "' has " + who.role;
        return reason::not_authorized;
    }
    if (who.source == "platform" && facts.actuates && !options_.platform_may.count(command)) {
        detail = "the site does not let the platform run '" + command +
                 "' (list it in [control] platform_may to allow it)";
        return reason::not_authorized;
    }
    if (!facts.actuates) return reason::none;
    if (auto m = modes_.find(device); m != modes_.end() && m->second == "local") {
        detail = "the device is in local mode: it takes no remote command that moves it (POST .../mode remote)";
        return reason::local_mode;
    }
    if (facts.restores && facts.in_alarm) {
        detail = "'" + command + "' would reopen or re-energise while the device is in alarm; it is refused until "
                 "the alarm ends";
        return reason::interlocked;
    }
    expire_locked(device, clock::now());
    if (auto a = active_.find(device); a != active_.end()) {
        detail = "'" + a->second.command + "' (" + a->second.command_id + ") by " + a->second.who.name +
                 " has not reported its result yet";
        return reason::already_active;
    }
    return reason::none;
}

decision control_plane::select(const actor &who, const std::string &device, const std::string &command,
                               const nlohmann::json &args, const command_facts &facts) {
    decision d;
    {
        std::lock_guard lock(mutex_);
        const auto now = clock::now();
        auto rec = base_record("select", who, device, command);
        rec["args"] = args;
        rec["before"] = facts.before;
        d.why = check_locked(who, device, command, facts, d.detail);
        auto held = selections_.find(device);
        if (held != selections_.end() && held->second.expires <= now) {
            selections_.erase(held);
            held = selections_.end();
        }
        if (d.granted() && held != selections_.end() && !same_principal(held->second.who, who)) {
            d.why = reason::selected_by_other;
            d.detail = "selected by " + held->second.who.name + " (" + held->second.who.source + ") for '" +
                       held->second.command + "' for another " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(held->second.expires - now)
                                          .count()) +
                       " ms";
        }
        if (d.granted()) {
            d.select_id = "sel-" + std::to_string(next_select_++);
            d.expires_in = options_.select_timeout;
        }
        d = record_locked(std::move(d), std::move(rec));
        if (d.granted())
            selections_[device] = selection{d.select_id, who, command, args, now + options_.select_timeout,
                                            wall_now_ms()};
    }
    announce();
    return d;
}

decision control_plane::cancel(const actor &who, const std::string &device) {
    decision d;
    {
        std::lock_guard lock(mutex_);
        auto held = selections_.find(device);
        auto rec = base_record("cancel", who, device, held == selections_.end() ? "" : held->second.command);
        if (held == selections_.end() || held->second.expires <= clock::now()) {
            d.why = reason::not_selected;
            d.detail = "the device is not selected";
        } else if (!same_principal(held->second.who, who) && who.role != "admin") {
            d.why = reason::selected_by_other;
            d.detail = "selected by " + held->second.who.name + "; only they or an admin may cancel it";
        } else {
            d.select_id = held->second.id;
            if (!same_principal(held->second.who, who)) rec["cancelled_for"] = held->second.who.name;
        }
        d = record_locked(std::move(d), std::move(rec));
        if (d.granted()) selections_.erase(device);
    }
    announce();
    return d;
}

decision control_plane::operate(const actor &who, const std::string &device, const std::string &command,
                                const nlohmann::json &args, const std::string &command_id,
                                const std::string &select_id, const command_facts &facts) {
    decision d;
    {
        std::lock_guard lock(mutex_);
        const auto now = clock::now();
        auto rec = operate_record(who, device, command, args, command_id, facts);
        bool consume = false;
        if (facts.actuates && facts.declared) {
            auto held = selections_.find(device);
            if (held == selections_.end()) {
                d.why = reason::not_selected;
                d.detail = "'" + command + "' moves the device: select it first (POST .../select)";
            } else if (held->second.expires <= now) {
                const bool mine = same_principal(held->second.who, who);
                d.why = mine ? reason::select_expired : reason::not_selected;
                d.detail = mine ? "the selection " + held->second.id + " expired; select again"
                                : "'" + command + "' moves the device: select it first (POST .../select)";
                selections_.erase(held);
            } else if (!same_principal(held->second.who, who)) {
                d.why = reason::selected_by_other;
                d.detail = "selected by " + held->second.who.name + " (" + held->second.who.source + ")";
            } else if (!select_id.empty() && select_id != held->second.id) {
                d.why = reason::not_selected;
                d.detail = "the device's selection is " + held->second.id + ", not " + select_id;
            } else if (held->second.command != command || held->second.args != args) {
                d.why = reason::not_selected;
                d.detail = "the selection " + held->second.id + " is for '" + held->second.command +
                           "' with its own arguments: operate exactly what was selected";
            } else {
                d.select_id = held->second.id;
                consume = true;  // one operate per selection, granted or not
            }
        }
        if (d.granted()) d.why = check_locked(who, device, command, facts, d.detail);
        d = record_locked(std::move(d), std::move(rec));
        if (consume) selections_.erase(device);
        if (d.granted()) granted_locked(who, device, command, command_id, facts.actuates, now);
    }
    announce();
    return d;
}

decision control_plane::direct_operate(const actor &who, const std::string &device, const std::string &command,
                                       const nlohmann::json &args, const std::string &command_id,
                                       const command_facts &facts) {
    decision d;
    {
        std::lock_guard lock(mutex_);
        const auto now = clock::now();
        auto rec = operate_record(who, device, command, args, command_id, facts);
        rec["direct"] = true;
        d.why = check_locked(who, device, command, facts, d.detail);
        if (d.granted() && facts.actuates) {
            auto held = selections_.find(device);
            if (held != selections_.end() && held->second.expires > now && !same_principal(held->second.who, who)) {
                d.why = reason::selected_by_other;
                d.detail = "selected by " + held->second.who.name + " (" + held->second.who.source + ")";
            }
        }
        d = record_locked(std::move(d), std::move(rec));
        if (d.granted()) granted_locked(who, device, command, command_id, facts.actuates, now);
    }
    announce();
    return d;
}

// A granted operate: the device is active until its result (when it actuates), and the result is expected.
void control_plane::granted_locked(const actor &who, const std::string &device, const std::string &command,
                                   const std::string &command_id, bool actuates, clock::time_point now) {
    if (actuates) active_[device] = active{command_id, command, who, now};
    issued_[command_id] = issued{device, command, who};
    while (issued_.size() > max_issued) issued_.erase(issued_.begin());  // results that never came
}

void control_plane::not_sent(const std::string &device, const std::string &command_id) {
    std::lock_guard lock(mutex_);
    if (auto a = active_.find(device); a != active_.end() && a->second.command_id == command_id) active_.erase(a);
}

void control_plane::result(const std::string &device, const std::string &command_id, bool ok,
                           const std::string &message, const nlohmann::json &after) {
    {
        std::lock_guard lock(mutex_);
        const auto it = issued_.find(command_id);
        if (it == issued_.end() || it->second.device != device) return;  // not a command this plane let through
        auto rec = base_record("result", it->second.who, device, it->second.command);
        rec["command_id"] = command_id;
        rec["ok"] = ok;
        rec["message"] = message;
        rec["after"] = after;
        record_locked(decision{}, std::move(rec));
        issued_.erase(it);
        if (auto a = active_.find(device); a != active_.end() && a->second.command_id == command_id)
            active_.erase(a);
    }
    announce();
}

decision control_plane::note(const actor &who, nlohmann::json record) {
    decision d;
    {
        std::lock_guard lock(mutex_);
        record["principal"] = who.name;
        record["role"] = who.role;
        record["source"] = who.source;
        if (!audit_) {
            d.why = reason::audit_failed;
            d.detail = "there is no audit chain";
        } else {
            d = record_locked(std::move(d), std::move(record));
        }
    }
    announce();
    return d;
}

decision control_plane::set_mode(const actor &who, const std::string &device, const std::string &mode,
                                 const std::string &why) {
    decision d;
    {
        std::lock_guard lock(mutex_);
        auto rec = base_record("mode", who, device, "");
        rec["mode"] = mode;
        if (!why.empty()) rec["why"] = why;
        auto current = modes_.count(device) ? modes_.at(device) : std::string("remote");
        rec["before"] = current;
        if (mode != "remote" && mode != "local") {
            d.why = reason::unknown_command;
            d.detail = "a mode is 'remote' or 'local'";
        } else if (who.role != "admin") {
            d.why = reason::not_authorized;
            d.detail = "changing a device's mode needs the admin role";
        }
        if (d.granted() && audit_) {
            try {
                audit_->save_mode(device, mode);
            } catch (const std::exception &e) {
                d.why = reason::audit_failed;
                d.detail = e.what();
            }
        }
        d = record_locked(std::move(d), std::move(rec));
        if (d.granted()) {
            if (mode == "remote") modes_.erase(device);
            else modes_[device] = mode;
        }
    }
    announce();
    return d;
}

std::string control_plane::mode(const std::string &device) const {
    std::lock_guard lock(mutex_);
    auto m = modes_.find(device);
    return m == modes_.end() ? "remote" : m->second;
}

nlohmann::json control_plane::to_json() const {
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    nlohmann::json sel = nlohmann::json::array(), act = nlohmann::json::array(), modes = nlohmann::json::object();
    for (const auto &[device, s] : selections_) {
        if (s.expires <= now) continue;
        sel.push_back({{"device", device},
                       {"select_id", s.id},
                       {"principal", s.who.name},
                       {"source", s.who.source},
                       {"command", s.command},
                       {"selected_wall_ms", s.wall_ms},
                       {"expires_in_ms", std::chrono::duration_cast<std::chrono::milliseconds>(s.expires - now).count()}});
    }
    for (const auto &[device, a] : active_)
        act.push_back({{"device", device},
                       {"command_id", a.command_id},
                       {"command", a.command},
                       {"principal", a.who.name},
                       {"source", a.who.source},
                       {"for_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now - a.since).count()}});
    for (const auto &[device, m] : modes_) modes[device] = m;
    nlohmann::json head = nullptr;
    if (audit_)
        if (auto h = audit_->head()) head = {{"seq", h->seq}, {"hash", h->hash}};
    return {{"select_timeout_ms", options_.select_timeout.count()},
            {"platform_may", options_.platform_may},
            {"selections", std::move(sel)},
            {"active", std::move(act)},
            {"modes", std::move(modes)},
            {"audit_head", std::move(head)}};
}

}  // namespace firelink::control
