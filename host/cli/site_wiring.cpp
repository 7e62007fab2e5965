#include "site_wiring.hpp"
#include "reconfigure.hpp"

#include <spdlog/spdlog.h>

namespace firelink::cli {

namespace {

transport::serial_settings serial_of(const site::serial_config &s) {
    return {s.path, s.baud, s.data_bits, s.parity, s.stop_bits};
}

}  // namespace

firelink::result<core::link_factory> site_wiring::factory(const site::site_config &cfg, const site::device_config &d) {
    using kind = site::wire_config::kind;
    using made = firelink::result<core::link_factory>;
    const auto &w = d.wire;
    const transport::backoff retry{};
    switch (w.type) {
    case kind::none: return core::link_factory{};
    case kind::bus: {
        const auto *b = cfg.find_bus(w.bus);
        if (!b) return made::fail(FL_NOT_FOUND, "bus '" + w.bus + "' is not defined");
        const int unit = w.unit;
        if (!b->shared) {
            auto settings = serial_of(b->serial);
            return [settings, retry, unit](transport::executor ex, transport::link_events ev) {
                auto l = transport::make_serial_link(std::move(ex), settings, retry, std::move(ev));
                l->set_unit(unit);
                return l;
            };
        }
        auto &bus = buses_[b->id];
        if (!bus.bus || static_cast<const site::bus_settings &>(bus.config) != *b) {
            bus.config = *b;
            bus.bus = transport::make_rs485_bus(io_, serial_of(b->serial),
                                                {b->inter_frame_gap, b->request_timeout}, retry);
        }
        auto shared = bus.bus;
        return [shared, unit](transport::executor ex, transport::link_events ev) {
            auto l = shared->attach(std::move(ex), std::move(ev));
            l->set_unit(unit);
            return l;
        };
    }
    case kind::tcp_client: {
        auto host = w.host;
        auto port = w.port;
        const int unit = w.unit;
        return [host, port, retry, unit](transport::executor ex, transport::link_events ev) {
            auto l = transport::make_tcp_client_link(std::move(ex), host, port, retry, std::move(ev));
            l->set_unit(unit);
            return l;
        };
    }
    case kind::udp: {
        auto host = w.host;
        auto port = w.port;
        return [host, port](transport::executor ex, transport::link_events ev) {
            return transport::make_udp_link(std::move(ex), host, port, std::move(ev));
        };
    }
    case kind::listener: {
        const auto *l = cfg.find_listener(w.listener);
        if (!l) return made::fail(FL_NOT_FOUND, "listener '" + w.listener + "' is not defined");
        auto &entry = listeners_[l->id];
        if (!entry.listener || entry.address != l->address || entry.port != l->port) {
            entry.listener.reset();  // release the old port before binding the new address
            try {
                entry.listener = transport::make_tcp_listener(io_, l->address, l->port,
                                                              {l->max_unbound, l->identify_timeout});
            } catch (const std::exception &e) {
                return made::fail(FL_IO, "listener '" + l->id + "' cannot listen on " + l->address + ":" +
                                             std::to_string(l->port) + ": " + e.what());
            }
            entry.address = l->address;
            entry.port = l->port;
            spdlog::info("listener {} on {}:{}", l->id, l->address, entry.listener->port());
        }
        auto listener = entry.listener;
        auto peer = w.peer;
        auto identity = w.identity;
        auto allow = w.allow_peers;
        return [listener, peer, identity, allow](transport::executor ex, transport::link_events ev) {
            return peer.empty() ? listener->attach_identity(std::move(ex), identity, std::move(ev), allow)
                                : listener->attach_peer(std::move(ex), peer, std::move(ev));
        };
    }
    }
    return core::link_factory{};
}

void site_wiring::prune(const site::site_config &cfg) {
    std::erase_if(buses_, [&](const auto &b) { return !cfg.find_bus(b.first); });
    std::erase_if(listeners_, [&](const auto &l) { return !cfg.find_listener(l.first); });
}

std::shared_ptr<transport::tcp_listener> site_wiring::listener(const std::string &id) const {
    auto it = listeners_.find(id);
    return it == listeners_.end() ? nullptr : it->second.listener;
}

void site_wiring::stop_accepting() {
    for (auto &[id, entry] : listeners_) {
        entry.listener->stop_accepting();
        entry.listener->set_conflict_handler({});  // it names the runtime, which goes before the listeners may
    }
}

}  // namespace firelink::cli
