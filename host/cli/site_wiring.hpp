// The wires of a site's devices: each device's link factory, and the wires devices share (RS-485 buses and TCP
// listeners), made on first use and kept until the site no longer has them.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include <firelink/core/device_runtime.hpp>
#include <firelink/result.hpp>
#include <firelink/site/site_config.hpp>
#include <firelink/transport/link.hpp>

namespace firelink::cli {

class site_wiring {
public:
    explicit site_wiring(boost::asio::io_context &io) : io_(io) {}

    // How the device's link is made (an empty factory when it has no wire), or why its wire cannot be made (an
    // undefined bus or listener, a port that cannot be listened on).
    firelink::result<core::link_factory> factory(const site::site_config &cfg, const site::device_config &d);

    // Forgets the buses and listeners the site no longer has (each closes once its last device is gone).
    void prune(const site::site_config &cfg);

    std::shared_ptr<transport::tcp_listener> listener(const std::string &id) const;

    // The host is stopping: no listener takes a new connection while its devices close.
    void stop_accepting();

private:
    struct bus_entry {
        site::bus_config config;
        std::shared_ptr<transport::rs485_bus> bus;
    };
    struct listener_entry {
        std::string address;
        std::uint16_t port = 0;
        std::shared_ptr<transport::tcp_listener> listener;
    };
    boost::asio::io_context &io_;
    std::map<std::string, bus_entry> buses_;
    std::map<std::string, listener_entry> listeners_;
};

}  // namespace firelink::cli
