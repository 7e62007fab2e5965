#include "reconfigure.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include <firelink/ext/transport.h>

namespace firelink::cli {

namespace {

bool same_serial(const site::serial_config &a, const site::serial_config &b) {
    return a.path == b.path && a.baud == b.baud && a.data_bits == b.data_bits && a.parity == b.parity &&
           a.stop_bits == b.stop_bits;
}

bool same_listener(const site::listener_config &a, const site::listener_config &b) {
    return a.address == b.address && a.port == b.port;
}

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
    auto hold = [&](auto &list, const auto *was, auto same, const char *what) {
        if (!was) return;
        auto it = std::find_if(list.begin(), list.end(), [&](const auto &x) { return x.id == was->id; });
        if (it != list.end() && same(*it, *was)) return;
        if (it == list.end()) list.push_back(*was);
        else *it = *was;
        notes.push_back(std::string(what) + " '" + was->id + "' keeps its previous settings: device '" + kept.id +
                        "' on it runs on its previous definition");
    };
    if (kept.wire.type == kind::bus) hold(effective.buses, running.find_bus(kept.wire.bus), same_bus, "bus");
    if (kept.wire.type == kind::listener)
        hold(effective.listeners, running.find_listener(kept.wire.listener), same_listener, "listener");
}

}  // namespace

// A JSON array of everything the device is made from: unambiguous, where fields joined with a separator would let
// two different building/floor pairs compare equal.
std::string device_fingerprint(const site::site_config &cfg, const site::device_config &d) {
    nlohmann::json f = {d.plugin,         d.driver,          d.device_class,  d.enabled,
                        static_cast<int>(d.wire.type), d.wire.bus, d.wire.host, d.wire.port,
                        d.wire.listener,  d.wire.peer,       d.wire.identity, d.wire.allow_peers,
                        d.wire.unit,      cfg.heartbeat_of(d).count(),        d.meta.site,
                        d.meta.building,  d.meta.floor,      d.meta.location, d.meta.sector,
                        nlohmann::json::binary(d.driver_config)};
    if (const auto *b = d.wire.type == site::wire_config::kind::bus ? cfg.find_bus(d.wire.bus) : nullptr)
        f.push_back({"bus", b->serial.path, b->serial.baud, std::string(1, b->serial.parity), b->serial.data_bits,
                     b->serial.stop_bits, b->request_timeout.count(), b->inter_frame_gap.count(), b->shared});
    if (const auto *l = d.wire.type == site::wire_config::kind::listener ? cfg.find_listener(d.wire.listener) : nullptr)
        f.push_back({"listener", l->address, l->port});
    return f.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool same_bus(const site::bus_config &a, const site::bus_config &b) {
    return a.shared == b.shared && same_serial(a.serial, b.serial) && a.request_timeout == b.request_timeout &&
           a.inter_frame_gap == b.inter_frame_gap;
}

bool same_shared_wire(const site::site_config &a, const site::site_config &b, const site::device_config &d) {
    using kind = site::wire_config::kind;
    if (d.wire.type == kind::bus) {
        const auto *x = a.find_bus(d.wire.bus), *y = b.find_bus(d.wire.bus);
        return x && y && same_bus(*x, *y);
    }
    if (d.wire.type == kind::listener) {
        const auto *x = a.find_listener(d.wire.listener), *y = b.find_listener(d.wire.listener);
        return x && y && same_listener(*x, *y);
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
    std::string why;
    if (runtime.try_create(plugin, spec, why) == FL_OK) return std::nullopt;
    return site::driver_config_error(d, "device '" + d.id + "': " + why);
}

reload_plan plan_reload(const site::site_config &running, const site::site_config &next,
                        const std::map<std::string, std::string> &fingerprints, const trial_fn &trial) {
    reload_plan plan;
    auto &effective = plan.effective;
    effective = next;
    std::set<std::string> kept;
    // Each definition is tried once: a wire held back for one kept device can make another device's definition
    // change again, and only then is it tried again.
    std::map<std::string, std::optional<site::config_error>> verdicts;  // id + fingerprint
    for (bool again = true; again;) {
        again = false;
        for (auto &d : effective.devices) {
            const auto running_print = fingerprints.find(d.id);
            if (!d.enabled || running_print == fingerprints.end() || kept.count(d.id)) continue;
            const auto print = device_fingerprint(effective, d);
            const auto *previous = running.find_device(d.id);
            if (print == running_print->second || !previous) continue;
            const auto key = d.id + "\n" + print;
            auto verdict = verdicts.find(key);
            if (verdict == verdicts.end()) verdict = verdicts.emplace(key, trial(effective, d)).first;
            if (!verdict->second) continue;
            plan.kept.push_back({d.id, *verdict->second});
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
        const auto it = fingerprints.find(d.id);
        if (it == fingerprints.end()) plan.added.push_back(d.id);
        else if (!kept.count(d.id) && device_fingerprint(effective, d) != it->second) plan.changed.push_back(d.id);
    }
    for (const auto &[id, print] : fingerprints)
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
