#include "device_set.hpp"

#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include <firelink/ext/identify.h>

namespace firelink::cli {

std::optional<site::config_error> trial(core::device_runtime &runtime, const plugin_catalog &plugins,
                                        const site::site_config &cfg, const site::device_config &d) {
    auto p = plugins.resolve(d);
    if (!p) return site::config_error{d.where, "", "device '" + d.id + "': " + p.why()};
    return try_device(runtime, *p, cfg, d);
}

firelink::result<> device_set::start(const site::site_config &cfg, const site::device_config &d) {
    auto plugin = catalog_.resolve(d);
    if (!plugin) return plugin.error();
    auto spec = spec_of(cfg, d);
    auto link = wires_.factory(cfg, d);
    if (!link) return link.error();
    spec.make_link = std::move(*link);
    if (auto created = runtime_->create(*plugin, spec); !created) return created;
    auto started = runtime_->start(d.id);
    if (!started) runtime_->destroy(d.id);
    return started;
}

// A device that does not run stays listed, down, and the platform hears why (device_down), never silence.
void device_set::mark_down(const site::device_config &d, const std::string &why) {
    core::down_spec spec{d.id, d.plugin, d.driver, d.device_class, site_map(d.meta)};
    if (auto p = catalog_.resolve(d)) spec.plugin_id = (*p)->info().id;
    runtime_->set_down(spec, why);
}

// A device the site no longer has: what the host raised for it ends (nothing is left open at the platform that no
// one will ever end), then it goes, with its metrics.
void device_set::forget(const std::string &device_id) {
    const std::string gone = "the device was removed from the site file";
    runtime_->end_fault(device_id, core::host_fault::config_rejected, gone);
    runtime_->end_fault(device_id, core::host_fault::device_down, gone);
    runtime_->end_fault(device_id, core::host_fault::identity_conflict, gone);
    spdlog::info("device {}: removed", device_id);
    runtime_->destroy(device_id);
    metrics_.remove_device(device_id);
    running_.erase(device_id);
}

void device_set::apply(reload_plan &plan, const site::site_config &previous, reload_outcome &out) {
    auto &next = plan.effective;
    std::set<std::string> wanted;
    for (const auto &d : next.devices)
        if (d.enabled) wanted.insert(d.id);
    for (const auto &down : runtime_->down_devices())
        if (!wanted.count(down.device_id) && !running_.count(down.device_id)) forget(down.device_id);
    for (const auto &id : plan.removed) forget(id);
    for (const auto &id : plan.changed) {
        spdlog::info("device {}: changed, recreating", id);
        runtime_->destroy(id);
        metrics_.remove_device(id);
        running_.erase(id);
    }
    wires_.prune(next);
    out.added = plan.added;
    out.removed = plan.removed;
    out.kept = plan.kept;
    out.notes.insert(out.notes.end(), plan.notes.begin(), plan.notes.end());
    const std::set<std::string> changed(plan.changed.begin(), plan.changed.end());
    for (auto &d : next.devices) {
        if (!d.enabled || running_.count(d.id)) continue;  // unchanged, or kept on its previous definition
        auto started = start(next, d);
        if (started) {
            running_[d.id] = site::definition_of(next, d);
            spdlog::info("device {} ({} / {}) started", d.id, d.driver, d.device_class);
            if (changed.count(d.id)) out.changed.push_back(d.id);
            runtime_->end_fault(d.id, core::host_fault::config_rejected, "the device runs on its new definition");
            continue;
        }
        const auto *old = changed.count(d.id) ? previous.find_device(d.id) : nullptr;
        std::string why = started.why();
        const bool same_wire = old && same_shared_wire(previous, next, *old);
        const auto back_on_old = same_wire ? start(previous, *old) : firelink::result<>::fail(FL_IO, "its wire changed");
        if (back_on_old) {
            const std::string refused = "device '" + d.id + "': its new definition did not start: " + why;
            out.kept.push_back({d.id, site::config_error{d.where, "", refused}});
            site::device_config back = *old;
            back.heartbeat = previous.heartbeat_of(*old);
            d = std::move(back);
            running_[d.id] = site::definition_of(next, d);
            continue;
        }
        if (old)
            why += "; its previous definition did not start either: " + back_on_old.why();
        out.problems.push_back(d.where.str() + ": device '" + d.id + "': " + why);
        spdlog::error("{}: device '{}' not started: {}", d.where.str(), d.id, why);
        mark_down(d, why);
    }
    // A device kept on its previous definition whose site file was put back to that definition is no longer refused.
    std::set<std::string> kept;
    for (const auto &k : out.kept) kept.insert(k.device_id);
    for (const auto &x : runtime_->open_faults(core::host_fault::config_rejected))
        if (!kept.count(x.device_id) && running_.count(x.device_id))
            runtime_->end_fault(x.device_id, core::host_fault::config_rejected,
                                "the site file again matches the definition the device runs on");
    for (const auto &k : out.kept) {
        spdlog::error("{}; device {} keeps running on its previous definition", k.refusal.str(), k.device_id);
        runtime_->raise_fault(k.device_id, core::host_fault::config_rejected, rejection_message(k.refusal));
    }
    identify_on_listeners(next);
}

// A listener whose devices bind by identity asks their drivers (firelink.identify/1) who a new connection is.
void device_set::identify_on_listeners(const site::site_config &cfg) {
    struct candidate {
        std::shared_ptr<core::plugin> plugin;  // keeps the identify function loaded
        std::string driver;
    };
    std::map<std::string, std::vector<candidate>> by_listener;
    std::map<std::string, std::map<std::string, std::string>> device_of;  // listener -> identity -> device id
    for (const auto &d : cfg.devices) {
        if (!running_.count(d.id) || d.wire.type != site::wire_config::kind::listener || d.wire.identity.empty())
            continue;
        auto resolved = catalog_.resolve(d);
        if (!resolved) continue;
        const auto &p = *resolved;
        if (!p->can_identify()) {
            spdlog::error("{}: device '{}' binds by identity, but its driver '{}' cannot identify a connection "
                          "({} missing): bind it by peer address instead",
                          d.where.str(), d.id, d.driver, FL_EXT_IDENTIFY);
            continue;
        }
        device_of[d.wire.listener][d.wire.identity] = d.id;
        auto &list = by_listener[d.wire.listener];
        bool seen = false;
        for (const auto &c : list) seen = seen || (c.plugin == p && c.driver == d.driver);
        if (!seen) list.push_back({p, d.driver});
    }
    for (auto &[id, candidates] : by_listener) {
        auto l = wires_.listener(id);
        if (!l) continue;
        l->set_identifier([candidates](const std::uint8_t *data, std::size_t size, std::string &identity) {
            bool more = false;
            for (const auto &c : candidates) {
                const fl_status st = c.plugin->identify(c.driver, data, size, identity);
                if (st == FL_OK) return FL_OK;
                more = more || st == FL_BUSY;
            }
            return more ? FL_BUSY : FL_INVALID_ARGUMENT;
        });
        // The listener refused someone claiming a connected device's identity: the platform hears of it from that
        // device, as a host fault (the listener limits how often).
        l->set_conflict_handler([devices = device_of[id], runtime = runtime_](
                                    const std::string &identity, const std::string &, const std::string &what) {
            if (auto it = devices.find(identity); it != devices.end())
                runtime->raise_fault(it->second, core::host_fault::identity_conflict, what);
        });
    }
}

void restore_conditions(uplink::durable_queue &queue, core::device_runtime &runtime, const site::site_config &cfg) {
    std::vector<core::open_condition> stored;
    try {
        stored = queue.open_conditions();
    } catch (const std::exception &e) {
        spdlog::error("uplink queue: cannot read the stored open conditions ({}); drivers start without them",
                      e.what());
        return;
    }
    std::set<std::string> in_site, gone;
    for (const auto &d : cfg.devices) in_site.insert(d.id);
    std::vector<core::open_condition> kept;
    for (auto &c : stored) {
        if (in_site.count(c.device_id)) kept.push_back(std::move(c));
        else gone.insert(c.device_id);
    }
    if (!gone.empty()) {
        std::string names;
        for (const auto &g : gone) names += (names.empty() ? "" : ", ") + g;
        spdlog::info("uplink queue: {} device(s) with stored open conditions are no longer in the site; their "
                     "conditions are deleted: {}",
                     gone.size(), names);
        queue.forget_conditions({gone.begin(), gone.end()});
    }
    if (!kept.empty()) spdlog::info("uplink queue: {} open condition(s) restored for the devices", kept.size());
    runtime.load_conditions(std::move(kept));
}

}  // namespace firelink::cli
