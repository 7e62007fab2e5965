#include "reconfigure.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include <firelink/ext/transport.h>

namespace firelink::cli {

namespace {

std::string join(const std::vector<std::string> &ids) {
    std::string out;
    for (const auto &id : ids) out += (out.empty() ? "" : ", ") + id;
    return out;
}

// A kept device runs on its previous wire. When that is a bus or listener the new file redefines (or drops), the
// previous definition stays in force for every device on it: one serial port or one listening port cannot be driven
// by two definitions at once.
void hold_wire(const site::site_config &running, const site::device_config &kept, site::site_config &effective,
               std::vector<std::string> &notes) {
    using kind = site::wire_config::kind;
    auto hold = [&]<typename settings>(auto &list, const auto *was, const char *what) {
        if (!was) return;
        auto it = std::find_if(list.begin(), list.end(), [&](const auto &x) { return x.id == was->id; });
        if (it != list.end() && static_cast<const settings &>(*it) == static_cast<const settings &>(*was)) return;
        if (it == list.end()) list.push_back(*was);
        else *it = *was;
        notes.push_back(std::string(what) + " '" + was->id + "' keeps its previous settings: device '" + kept.id +
                        "' on it runs on its previous definition");
    };
    if (kept.wire.type == kind::bus)
        hold.template operator()<site::bus_settings>(effective.buses, running.find_bus(kept.wire.bus), "bus");
    if (kept.wire.type == kind::listener)
        hold.template operator()<site::listener_endpoint>(effective.listeners,
                                                          running.find_listener(kept.wire.listener), "listener");
}

}  // namespace

bool same_shared_wire(const site::site_config &a, const site::site_config &b, const site::device_config &d) {
    using kind = site::wire_config::kind;
    if (d.wire.type == kind::bus) {
        const auto *x = a.find_bus(d.wire.bus), *y = b.find_bus(d.wire.bus);
        return x && y && static_cast<const site::bus_settings &>(*x) == *y;
    }
    if (d.wire.type == kind::listener) {
        const auto *x = a.find_listener(d.wire.listener), *y = b.find_listener(d.wire.listener);
        return x && y && static_cast<const site::listener_endpoint &>(*x) == *y;
    }
    return true;
}

std::map<std::string, std::string> site_map(const site::site_metadata &m) {
    std::map<std::string, std::string> out;
    if (!m.site.empty()) out["site"] = m.site;
    if (!m.building.empty()) out["building"] = m.building;
    if (!m.floor.empty()) out["floor"] = m.floor;
    if (!m.location.empty()) out["location"] = m.location;
    if (!m.sector.empty()) out["sector"] = m.sector;
    return out;
}

int wire_kind_of(const site::site_config &cfg, const site::device_config &d) {
    using kind = site::wire_config::kind;
    switch (d.wire.type) {
    case kind::none: return 0;
    case kind::bus: {
        const auto *b = cfg.find_bus(d.wire.bus);
        return b && !b->shared ? FL_TRANSPORT_SERIAL : FL_TRANSPORT_RS485_BUS;
    }
    case kind::tcp_client: return FL_TRANSPORT_TCP_CLIENT;
    case kind::listener: return FL_TRANSPORT_TCP_ACCEPTED;
    case kind::udp: return FL_TRANSPORT_UDP;
    }
    return 0;
}

std::string wire_name_of(const site::site_config &cfg, const site::device_config &d) {
    using kind = site::wire_config::kind;
    const auto &w = d.wire;
    const std::string unit = w.unit >= 0 ? " unit " + std::to_string(w.unit) : "";
    switch (w.type) {
    case kind::none: return {};
    case kind::bus: {
        const auto *b = cfg.find_bus(w.bus);
        return "bus " + w.bus + (b ? " " + b->serial.path : "") + unit;
    }
    case kind::tcp_client: return "tcp " + w.host + ":" + std::to_string(w.port) + unit;
    case kind::udp: return "udp " + w.host + ":" + std::to_string(w.port);
    case kind::listener:
        return "listener " + w.listener + (w.peer.empty() ? " identity " + w.identity : " peer " + w.peer);
    }
    return {};
}

core::device_spec spec_of(const site::site_config &cfg, const site::device_config &d) {
    core::device_spec spec;
    spec.device_id = d.id;
    spec.driver_id = d.driver;
    spec.config = d.driver_config;
    spec.site = site_map(d.meta);
    spec.heartbeat = cfg.heartbeat_of(d);
    spec.wire_name = wire_name_of(cfg, d);
    return spec;
}

std::optional<site::config_error> try_device(core::device_runtime &runtime, const std::shared_ptr<core::plugin> &plugin,
                                             const site::site_config &cfg, const site::device_config &d) {
    auto spec = spec_of(cfg, d);
    if (const int kind = wire_kind_of(cfg, d)) spec.make_link = core::dormant_link(kind, d.wire.unit);
    const auto tried = runtime.try_create(plugin, spec);
    if (tried) return std::nullopt;
    return site::driver_config_error(d, "device '" + d.id + "': " + tried.why());
}

reload_plan plan_reload(const site::site_config &running, const site::site_config &next, const running_devices &devices,
                        const trial_fn &trial) {
    reload_plan plan;
    auto &effective = plan.effective;
    effective = next;
    std::set<std::string> kept;
    // Each definition is tried once: a wire held back for one kept device can make another device's definition
    // change again, and only then is it tried again.
    struct verdict {
        std::string device_id;
        site::device_definition definition;
        std::optional<site::config_error> refusal;
    };
    std::vector<verdict> verdicts;
    for (bool again = true; again;) {
        again = false;
        for (auto &d : effective.devices) {
            const auto runs = devices.find(d.id);
            if (!d.enabled || runs == devices.end() || kept.count(d.id)) continue;
            auto definition = site::definition_of(effective, d);
            const auto *previous = running.find_device(d.id);
            if (definition == runs->second || !previous) continue;
            auto v = std::find_if(verdicts.begin(), verdicts.end(),
                                  [&](const verdict &x) { return x.device_id == d.id && x.definition == definition; });
            if (v == verdicts.end()) v = verdicts.insert(verdicts.end(), {d.id, std::move(definition), trial(effective, d)});
            if (!v->refusal) continue;
            plan.kept.push_back({d.id, *v->refusal});
            kept.insert(d.id);
            site::device_config old = *previous;
            old.heartbeat = running.heartbeat_of(*previous);  // the budget it runs with, whatever [liveness] says now
            d = std::move(old);
            hold_wire(running, d, effective, plan.notes);
            again = true;
        }
    }
    std::set<std::string> wanted;
    for (const auto &d : effective.devices) {
        if (!d.enabled) continue;
        wanted.insert(d.id);
        const auto it = devices.find(d.id);
        if (it == devices.end()) plan.added.push_back(d.id);
        else if (!kept.count(d.id) && site::definition_of(effective, d) != it->second) plan.changed.push_back(d.id);
    }
    for (const auto &[id, definition] : devices)
        if (!wanted.count(id)) plan.removed.push_back(id);
    return plan;
}

nlohmann::json reload_outcome::to_json(std::size_t running) const {
    nlohmann::json k = nlohmann::json::array();
    for (const auto &x : kept) k.push_back({{"device", x.device_id}, {"error", x.refusal.str()}});
    return {{"reloaded", true}, {"devices", running}, {"added", added},       {"changed", changed},
            {"removed", removed}, {"kept", std::move(k)}, {"problems", problems}, {"notes", notes}};
}

std::string reload_outcome::summary() const {
    std::vector<std::string> ids;
    for (const auto &k : kept) ids.push_back(k.device_id);
    auto part = [](const std::vector<std::string> &list, const char *what) {
        return std::to_string(list.size()) + " " + what + (list.empty() ? "" : " (" + join(list) + ")");
    };
    return part(changed, "changed") + ", " + part(added, "added") + ", " + part(removed, "removed") + ", " +
           part(ids, "kept on the previous definition");
}

std::string rejection_message(const site::config_error &refusal) {
    return "a reload's new definition was refused, so the device runs on its previous one: " + refusal.str();
}

}  // namespace firelink::cli
