#include "health.hpp"

#include <nlohmann/json.hpp>

namespace firelink::cli {

namespace {

struct reason {
    std::string component;  // device, plugin, sink, queue, uplink
    std::string id;         // the device or plugin; "" for the queue and the uplink
    std::string problem;
};

std::string joined(const std::vector<std::string> &words) {
    std::string out;
    for (const auto &w : words) out += (out.empty() ? "" : ", ") + w;
    return out;
}

std::vector<reason> reasons_of(const health_facts &f) {
    std::vector<reason> out;
    for (const auto &[id, why] : f.not_started) out.push_back({"device", id, "not started: " + why});
    for (const auto &[id, why] : f.rejected) out.push_back({"device", id, "config rejected: " + why});
    for (const auto &d : f.devices) {
        if (d.state == core::device_state::started) continue;
        std::string problem(core::to_string(d.state));
        if (!d.faults.empty()) problem += " (open fault: " + joined(d.faults) + ")";
        out.push_back({"device", d.id, problem});
    }
    for (const auto &p : f.plugins) {
        if (!p.runner || p.runner->state == "running") continue;
        const auto &r = *p.runner;
        std::string problem = "runner " + r.state;
        if (r.state == "parked")
            problem += " after " + std::to_string(r.failures) + " failure(s): its devices are not monitored until "
                                                                 "the host restarts";
        if (!r.last_failure.empty()) problem += " (last failure: " + r.last_failure + ")";
        out.push_back({"plugin", p.id, problem});
    }
    for (const auto &why : f.sink_faults)
        out.push_back({"sink", "", why + ": its events are not stored there, and a device waiting for their commit "
                                         "is not confirmed"});
    if (!f.uplink) return out;
    const auto &q = f.uplink->queue;
    const auto &r = f.uplink->report;
    if (q.disk_full) out.push_back({"queue", "", "the queue's disk is full: only alarms are taken"});
    for (int i = 0; i < uplink::lane_count; ++i)
        if (q.lanes[i].near_full)
            out.push_back({"queue", "",
                           std::string("the ") + uplink::to_string(static_cast<uplink::lane>(i)) +
                               " lane is near its cap: new events of the lane are refused until the platform "
                               "acknowledges"});
    if (!q.reserve_held)
        out.push_back({"queue", "",
                       "no alarm reserve on the queue's disk: when the disk fills up, alarms have no room kept for "
                       "them"});
    if (r.credentials_refused)
        out.push_back({"uplink", "", "the platform refuses this gateway's credentials"});
    // One reason per distinct error: three lanes failing on one unreachable platform are one problem.
    std::map<std::string, std::vector<std::string>> errors;
    for (int i = 0; i < uplink::lane_count; ++i)
        if (!r.lanes[i].last_error.empty())
            errors[r.lanes[i].last_error].push_back(uplink::to_string(static_cast<uplink::lane>(i)));
    for (const auto &[error, lanes] : errors)
        out.push_back({"uplink", "", "the platform is not reachable (" + joined(lanes) + " lane): " + error});
    if (!r.poll_error.empty())
        out.push_back({"uplink", "", "polling the platform for commands fails: " + r.poll_error});
    return out;
}

const char *status_of(const health_facts &f, const std::vector<reason> &reasons) {
    if (!f.ready) return "starting";
    return reasons.empty() ? "ok" : "degraded";
}

}  // namespace

admin::health_answer judge_health(const health_facts &f) {
    const auto reasons = reasons_of(f);
    const std::string status = status_of(f, reasons);
    std::size_t started = 0, offline = 0, faulted = 0, other = 0;
    for (const auto &d : f.devices) {
        if (d.state == core::device_state::started) ++started;
        else if (d.state == core::device_state::offline) ++offline;
        else if (d.state == core::device_state::faulted) ++faulted;
        else ++other;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto &r : reasons) {
        nlohmann::json j{{"component", r.component}, {"problem", r.problem}};
        if (!r.id.empty()) j["id"] = r.id;
        list.push_back(std::move(j));
    }
    nlohmann::json out{{"status", status},
                       {"gateway", f.gateway},
                       {"uptime_s", f.uptime.count()},
                       {"devices",
                        {{"started", started},
                         {"offline", offline},
                         {"faulted", faulted},
                         {"other", other},
                         {"not_started", f.not_started.size()}}},
                       {"reasons", std::move(list)}};
    if (f.uplink) {
        // The first uplink or queue reason, as before the list existed (monitors written against it keep working).
        std::string problem;
        for (const auto &r : reasons)
            if (problem.empty() && (r.component == "uplink" || r.component == "queue")) problem = r.problem;
        out["uplink"] = {{"ok", problem.empty()}, {"problem", problem}, {"reserve_held", f.uplink->queue.reserve_held}};
    }
    nlohmann::json plugins = nlohmann::json::array();
    for (const auto &p : f.plugins) {
        nlohmann::json j{{"id", p.id}, {"isolation", p.remote ? "process" : "in_process"}};
        if (p.runner)
            j.update({{"state", p.runner->state},
                      {"pid", p.runner->pid},
                      {"restarts", p.runner->restarts},
                      {"failures", p.runner->failures},
                      {"last_failure", p.runner->last_failure},
                      {"uid", p.runner->uid},
                      {"uid_shared", p.runner->uid_shared},
                      {"ring_bytes", {{"alarm", p.runner->ring_bytes[0]},
                                      {"event", p.runner->ring_bytes[1]},
                                      {"telemetry", p.runner->ring_bytes[2]}}}});
        if (p.signature) {
            const auto &v = *p.signature;
            j["signature"] = {{"verified", v.ok()}, {"key_id", v.id ? signing::to_hex(*v.id) : ""}};
            j["signature"][v.ok() ? "trusted_comment" : "problem"] = v.ok() ? v.trusted_comment : v.why;
        }
        plugins.push_back(std::move(j));
    }
    out["plugins"] = std::move(plugins);
    out["plugins_refused"] = f.refused_plugins;
    // replace: a driver's or the platform's error text need not be valid UTF-8.
    return {status == "ok", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

std::string health_summary(const health_facts &f) {
    const auto reasons = reasons_of(f);
    std::string out = status_of(f, reasons);
    std::size_t started = 0;
    for (const auto &d : f.devices) started += d.state == core::device_state::started;
    out += ", " + std::to_string(started) + " device(s) running";
    for (const auto &r : reasons)
        out += "; " + r.component + (r.id.empty() ? "" : " '" + r.id + "'") + ": " + r.problem;
    for (auto &c : out)
        if (c == '\n' || c == '\r') c = ' ';  // one line: STATUS= ends at a newline
    return out;
}

}  // namespace firelink::cli
