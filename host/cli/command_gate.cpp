#include "command_gate.hpp"

#include <algorithm>
#include <charconv>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <firelink/text.hpp>
#include <spdlog/spdlog.h>

#include <firelink/admin/command_json.hpp>
#include <firelink/core/event_check.hpp>
#include <firelink/payload.hpp>

namespace firelink::cli {

namespace {

using json = nlohmann::json;


unsigned http_status(control::reason r) {
    switch (r) {
    case control::reason::none: return 200;
    case control::reason::not_authorized: return 403;
    case control::reason::unknown_command: return 422;
    case control::reason::audit_failed: return 503;
    default: return 409;
    }
}

admin::status_json refused(const std::string &device, const control::decision &d) {
    return {http_status(d.why), text::dump_json<json>({{"device", device},
                                      {"status", "refused"},
                                      {"reason", control::to_string(d.why)},
                                      {"detail", d.detail},
                                      {"audit_seq", d.audit_seq}})};
}

admin::status_json bad_request(const std::string &why) { return {400, text::dump_json<json>({{"error", why}})}; }

control::actor actor_of(const admin::principal &who) { return {who.name, admin::role_name(who.role), "admin"}; }

json event_json(const std::vector<std::uint8_t> &bytes) {
    return json::parse(core::msgpack_to_json(bytes.data(), bytes.size()), nullptr, false);
}

std::optional<std::uint64_t> number(std::string_view text) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return v;
}

}  // namespace

std::unique_ptr<command_gate> command_gate::open(
    control::control_options options, const std::filesystem::path &audit_path, std::uint64_t keep,
    std::function<void(const control::audit_entry &)> on_audit,
    std::function<std::optional<core::driver_info>(const std::string &)> driver_of) {
    std::shared_ptr<control::audit_log> audit;
    std::string audit_error;
    try {
        audit = std::make_shared<control::audit_log>(audit_path, keep);
        spdlog::info("audit chain: {} ({} record(s) kept)", audit_path.string(), audit->size());
    } catch (const std::exception &e) {
        audit_error = e.what();
        spdlog::critical("audit chain: {}; every command is refused until it opens", audit_error);
    }
    return std::make_unique<command_gate>(std::move(options), std::move(audit), std::move(on_audit),
                                          std::move(driver_of), std::move(audit_error));
}

void command_gate::route(admin::admin_handlers &h, std::function<void(unsigned status)> answered) {
    h.control_json = [this] { return control_json(); };
    h.audit_json = [this](std::string_view query) { return audit_json(query); };
    h.select = [this](const admin::principal &who, const std::string &device, const std::string &body) {
        return select(who, device, body);
    };
    h.cancel = [this](const admin::principal &who, const std::string &device) { return cancel(who, device); };
    h.command = [this, answered = std::move(answered)](const admin::principal &who, const std::string &device,
                                                       const std::string &body) {
        auto answer = operate(who, device, body);
        if (answered) answered(answer.first);
        return answer;
    };
    h.mode = [this](const admin::principal &who, const std::string &device, const std::string &body) {
        return mode(who, device, body);
    };
}

command_gate::command_gate(control::control_options options, std::shared_ptr<control::audit_log> audit,
                           std::function<void(const control::audit_entry &)> on_audit,
                           std::function<std::optional<core::driver_info>(const std::string &)> driver_of,
                           std::string audit_error)
    : audit_(audit), audit_error_(std::move(audit_error)),
      plane_(std::move(options), std::move(audit), std::move(on_audit)), driver_of_(std::move(driver_of)) {}

std::vector<std::uint8_t> audit_event(const control::audit_entry &e) {
    const auto &r = e.record;
    auto text = [&](const char *key) {
        auto it = r.find(key);
        return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    firelink::event ev{firelink::event_kind::status, "audit"};
    // "operate 'close_valve' on gas-1 by ops (admin)", "linkage_fire of rule 'kitchen' by linkage:kitchen (linkage)"
    std::string what = text("step");
    if (!text("command").empty()) what += " '" + text("command") + "'";
    if (!text("device").empty()) what += " on " + text("device");
    if (!text("rule").empty()) what += " of rule '" + text("rule") + "'";
    ev.message(std::string(firelink::text::utf8_prefix(what + " by " + text("principal") + " (" + text("source") + ")" +
                                                           (text("reason").empty() ? "" : ": " + text("reason")),
                                                       1024)));
    ev.value("audit_seq", e.seq).value("audit_hash", e.hash).value("step", text("step"));
    for (const char *key : {"principal", "role", "source", "device", "command", "command_id", "select_id", "reason", "rule"})
        if (auto v = text(key); !v.empty()) ev.value(key, std::string(firelink::text::utf8_prefix(v, 256)));
    if (auto g = r.find("granted"); g != r.end() && g->is_boolean()) ev.value("granted", g->get<bool>());
    if (auto ok = r.find("ok"); ok != r.end() && ok->is_boolean()) ev.value("ok", ok->get<bool>());
    return ev.pack();
}

admin::status_json command_gate::refuse(const control::actor &who, const std::string &device,
                                        const std::string &command, const control::decision &d) const {
    {
        std::lock_guard lock(refusals_mutex_);
        ++refusals_[control::to_string(d.why)];
    }
    spdlog::warn("control: {} ({}, {}) '{}' on {}: refused, {}: {}", who.name, who.role, who.source, command, device,
                 control::to_string(d.why), d.detail);
    return refused(device, d);
}

std::map<std::string, std::uint64_t> command_gate::refusals() const {
    std::lock_guard lock(refusals_mutex_);
    return refusals_;
}

std::optional<admin::status_json> command_gate::unaudited(const std::string &device) const {
    if (audit_) return std::nullopt;
    control::decision d;
    d.why = control::reason::audit_failed;
    d.detail = "there is no audit chain (" + audit_error_ + "): no command is taken until it opens";
    return refused(device, d);
}

void command_gate::observe(const core::accepted_event &ev) {
    if (ev.kind == "command_result") {
        const auto e = event_json(ev.payload);
        if (!e.is_object() || !e.contains("command_id")) return;
        json after{{"code", e.value("code", "")}, {"values", e.value("values", json::array())}, {"last_state", nullptr}};
        {
            std::lock_guard lock(last_mutex_);  // the read-back: what the device reported last, before its result
            if (auto it = last_state_.find(ev.device_id); it != last_state_.end())
                after["last_state"] = event_json(it->second);
        }
        plane_.result(ev.device_id, e.value("command_id", ""), e.value("ok", false), e.value("message", ""), after);
    } else if (ev.kind == "status" || ev.kind == "telemetry") {
        std::lock_guard lock(last_mutex_);
        last_state_[ev.device_id] = ev.payload;
    }
}

control::command_facts command_gate::facts(const std::string &device, const std::string &command) const {
    control::command_facts f;
    if (auto driver = driver_of_ ? driver_of_(device) : std::nullopt; driver && driver->declares_commands) {
        if (const auto *decl = driver->find_command(command)) {
            f.actuates = decl->actuates;
            f.restores = decl->restores;
        } else {
            f.declared = false;
        }
    }
    json open = json::array();
    std::string state = "unknown";
    if (runtime_) {
        for (const auto &c : runtime_->open_conditions(device)) {
            if (c.kind == "alarm") f.in_alarm = true;
            open.push_back({{"kind", c.kind}, {"code", c.code}, {"event_id", c.event_id}});
        }
        if (auto st = runtime_->status(device)) state = core::to_string(st->state);
    }
    json last = nullptr;
    {
        std::lock_guard lock(last_mutex_);
        if (auto it = last_state_.find(device); it != last_state_.end()) last = event_json(it->second);
    }
    f.before = {{"state", state}, {"open_conditions", std::move(open)}, {"last_state", std::move(last)},
                {"mode", plane_.mode(device)}};
    return f;
}

admin::status_json command_gate::select(const admin::principal &who, const std::string &device,
                                        const std::string &body) {
    if (auto no = unaudited(device)) return *no;
    if (!runtime_ || !runtime_->has_device(device)) return {404, text::dump_json<json>({{"error", "no device '" + device + "'"}})};
    if (auto parsed = admin::command_from_json(body, "select"); !parsed) return bad_request(parsed.why());
    const auto doc = json::parse(body);  // command_from_json has checked it
    const std::string name = doc["name"];
    const json args = doc.value("args", json::object());
    const auto d = plane_.select(actor_of(who), device, name, args, facts(device, name));
    if (!d.granted()) return refuse(actor_of(who), device, name, d);
    return {200, text::dump_json<json>({{"device", device},
                       {"select_id", d.select_id},
                       {"command", name},
                       {"principal", who.name},
                       {"expires_in_ms", d.expires_in.count()},
                       {"audit_seq", d.audit_seq}})};
}

admin::status_json command_gate::cancel(const admin::principal &who, const std::string &device) {
    if (auto no = unaudited(device)) return *no;
    const auto d = plane_.cancel(actor_of(who), device);
    if (!d.granted()) return refuse(actor_of(who), device, "select", d);
    return {200, text::dump_json<json>({{"device", device}, {"cancelled", d.select_id}, {"audit_seq", d.audit_seq}})};
}

admin::status_json command_gate::operate(const admin::principal &who, const std::string &device,
                                         const std::string &body) {
    // "select_id" is the control plane's; the rest is the command the device takes.
    json doc = json::parse(body, nullptr, false);
    std::string select_id;
    if (doc.is_object()) {
        if (auto it = doc.find("select_id"); it != doc.end()) {
            if (!it->is_string()) return bad_request("\"select_id\" must be a string");
            select_id = it->get<std::string>();
            doc.erase(it);
        }
    }
    const std::string command_body = doc.is_object() ? text::dump_json<json>(doc) : body;
    const auto generated = "cmd-" + std::to_string(::getpid()) + "-" + std::to_string(next_command_++);
    auto parsed = admin::command_from_json(command_body, generated);
    if (!parsed) return bad_request(parsed.why());
    const auto &bytes = *parsed;
    if (!runtime_ || !runtime_->has_device(device)) return {404, text::dump_json<json>({{"error", "no device '" + device + "'"}})};
    if (auto no = unaudited(device)) return *no;
    const std::string name = doc["name"];
    const std::string command_id = doc.value("id", generated);
    const json args = doc.value("args", json::object());
    const auto d = plane_.operate(actor_of(who), device, name, args, command_id, select_id, facts(device, name));
    if (!d.granted()) return refuse(actor_of(who), device, name, d);
    return send(device, command_id, bytes, d);
}

admin::status_json command_gate::send(const std::string &device, const std::string &command_id,
                                      const std::vector<std::uint8_t> &bytes, const control::decision &d) {
    const auto sent = runtime_->command(device, bytes);
    const fl_status st = sent.status();
    const bool pending = st == FL_TIMEOUT;  // neither accepted nor refused: the driver's result will follow
    if (!sent && !pending) plane_.not_sent(device, command_id);
    json out{{"command_id", command_id},
             {"device", device},
             {"status", sent ? "accepted" : pending ? "pending" : "refused"},
             {"detail", sent ? std::string("accepted") : sent.why()},
             {"audit_seq", d.audit_seq}};
    if (!d.select_id.empty()) out["select_id"] = d.select_id;
    switch (st) {
    case FL_OK: return {202, text::dump_json<json>(out)};
    case FL_NOT_FOUND: return {404, text::dump_json<json>(out)};
    case FL_INVALID_ARGUMENT:
    case FL_UNSUPPORTED: return {422, text::dump_json<json>(out)};
    case FL_CLOSED:
    case FL_BUSY: return {409, text::dump_json<json>(out)};
    case FL_TIMEOUT: return {504, text::dump_json<json>(out)};
    default: return {500, text::dump_json<json>(out)};
    }
}

admin::status_json command_gate::mode(const admin::principal &who, const std::string &device,
                                      const std::string &body) {
    if (auto no = unaudited(device)) return *no;
    if (!runtime_ || !runtime_->has_device(device)) return {404, text::dump_json<json>({{"error", "no device '" + device + "'"}})};
    const json doc = json::parse(body, nullptr, false);
    if (!doc.is_object() || !doc.contains("mode") || !doc["mode"].is_string())
        return bad_request("the body must be {\"mode\": \"local\" | \"remote\", \"why\": \"...\"}");
    const std::string why = doc.contains("why") && doc["why"].is_string() ? doc["why"].get<std::string>() : "";
    const auto d = plane_.set_mode(actor_of(who), device, doc["mode"], why);
    if (!d.granted()) return refuse(actor_of(who), device, "mode", d);
    return {200, text::dump_json<json>({{"device", device}, {"mode", plane_.mode(device)}, {"audit_seq", d.audit_seq}})};
}

std::string command_gate::audit_json(std::string_view query) const {
    if (!audit_) return text::dump_json<json>({{"records", json::array()}, {"head", nullptr}, {"kept", 0}});
    const auto number_of = [&](std::string_view name, std::uint64_t otherwise) {
        const auto v = admin::query_value(query, name);
        return v ? number(*v).value_or(otherwise) : otherwise;
    };
    const auto after = number_of("after", 0);
    const auto limit = std::clamp<std::uint64_t>(number_of("limit", 100), 1, 1000);
    const std::string device(admin::query_value(query, "device").value_or(""));
    json records = json::array();
    for (auto &e : audit_->list(after, limit, device)) {
        json r = std::move(e.record);
        r["seq"] = e.seq;
        r["wall_ms"] = e.wall_ms;
        r["hash"] = e.hash;
        records.push_back(std::move(r));
    }
    json head = nullptr;
    if (auto h = audit_->head()) head = {{"seq", h->seq}, {"hash", h->hash}};
    return text::dump_json<json>({{"records", std::move(records)}, {"head", std::move(head)}, {"kept", audit_->size()}});
}

linkage::command_answer command_gate::linkage_command(const linkage::command_request &c) {
    using outcome = linkage::command_answer::outcome;
    const control::actor who{"linkage:" + c.rule, "linkage", "linkage"};
    if (!audit_) return {outcome::refused, "audit_failed", "there is no audit chain (" + audit_error_ + ")"};
    if (!runtime_ || !runtime_->has_device(c.device))
        return {outcome::refused, "no_device", "this gateway runs no device '" + c.device + "'"};
    auto parsed = admin::command_from_json(
        text::dump_json<json>({{"id", c.command_id}, {"name", c.command}, {"args", c.args}}), c.command_id);
    if (!parsed) return {outcome::refused, "bad_command", parsed.why()};
    const auto answer = [&](const control::decision &d) {
        refuse(who, c.device, c.command, d);
        const bool passing = d.why == control::reason::selected_by_other || d.why == control::reason::already_active;
        return linkage::command_answer{passing ? outcome::busy : outcome::refused, control::to_string(d.why), d.detail};
    };
    // A device that does not run now (not started yet after a restart, offline, faulted, down) takes nothing: try
    // again while the action has time, without a step in the chain for each try.
    if (const auto st = runtime_->status(c.device); st && st->state != core::device_state::started)
        return {outcome::busy, "not_ready", "the device is " + std::string(core::to_string(st->state))};
    const auto sel = plane_.select(who, c.device, c.command, c.args, facts(c.device, c.command));
    if (!sel.granted()) return answer(sel);
    const auto op = plane_.operate(who, c.device, c.command, c.args, c.command_id, sel.select_id,
                                   facts(c.device, c.command));
    if (!op.granted()) return answer(op);
    const auto sent = runtime_->command(c.device, *parsed);
    if (sent || sent == FL_TIMEOUT) return {outcome::sent, "", sent ? "accepted" : "pending"};
    plane_.not_sent(c.device, c.command_id);
    // Busy: never begun, the device may take it in a moment. Closed once the device ran (not_ready() said it did):
    // the driver stopped during the call, and whether the device did it is unknown, so it is not tried again.
    if (sent == FL_BUSY) return {outcome::busy, "not_ready", sent.why()};
    return {outcome::refused, sent == FL_CLOSED ? "outcome_unknown" : "not_sent", sent.why()};
}

void command_gate::linkage_release(const std::string &device, const std::string &command_id) {
    plane_.not_sent(device, command_id);
}

bool command_gate::note(const control::actor &who, nlohmann::json record) {
    if (!audit_) return false;
    return plane_.note(who, std::move(record)).granted();
}

std::string command_gate::platform(const std::string &id, const std::string &device,
                                   const std::vector<std::uint8_t> &command) {
    if (!runtime_ || !runtime_->has_device(device)) return "this gateway has no device '" + device + "'";
    if (!audit_) return "refused (audit_failed): there is no audit chain (" + audit_error_ + ")";
    const json doc = event_json(command);
    const std::string name = doc.value("name", "");
    const json args = doc.value("args", json::object());
    const control::actor platform{"platform", "platform", "platform"};
    const auto d = plane_.direct_operate(platform, device, name, args, id, facts(device, name));
    if (!d.granted()) {
        refuse(platform, device, name, d);
        return std::string("refused (") + control::to_string(d.why) + "): " + d.detail;
    }
    const auto sent = runtime_->command(device, command);
    spdlog::info("platform command {} '{}' for device {}: status {}: {}", id, name, device,
                 static_cast<int>(sent.status()), sent ? std::string("accepted") : sent.why());
    if (!sent && sent != FL_TIMEOUT) plane_.not_sent(device, id);
    if (sent == FL_NOT_FOUND) return "this gateway has no device '" + device + "'";
    return {};  // the runtime reports what the device could not take as the device's own command_result
}

}  // namespace firelink::cli
