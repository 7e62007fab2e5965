// Host-owned wires (Boost.Asio): serial ports, the shared RS-485 bus, TCP client, TCP listener, UDP.
//
// A `link` is one device's view of its wire. The device runtime exposes it to the driver as firelink.transport/1
// (sdk/include/firelink/ext/transport.h), so the semantics here are that header's:
//   - every call on a link, and every callback it makes, happens on the executor (the device's strand) given when
//     the link was made; a link is never used from two threads at once;
//   - open() only begins: the outcome arrives as on_state(FL_LINK_OPEN) or on_state(FL_LINK_FAILED), never from
//     inside open(); a link that drops reports FL_LINK_LOST and reconnects by itself with exponential backoff and
//     jitter until close();
//   - request() queues a half-duplex turn (on a shared bus: one request in flight per bus, fair turns between
//     devices, an inter-frame gap); the turn ends at end_request() or at the reply timeout (on_state
//     FL_LINK_REPLY_TIMEOUT); on a point-to-point wire request() is a write plus the same reply timeout;
//   - after close() or destruction, no callback is made (so a link does not report FL_LINK_CLOSED itself: whoever
//     calls close() knows). A link may be destroyed on any thread, but before its executor's io_context.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <firelink/ext/transport.h>

namespace firelink::transport {

using executor = boost::asio::any_io_executor;

// What a link tells its device. Called on the link's executor.
struct link_events {
    std::function<void(const std::uint8_t *data, std::size_t size)> on_data;
    std::function<void(int fl_link_state, fl_status reason)> on_state;
};

struct link_counters {
    std::uint64_t bytes_in = 0;
    std::uint64_t bytes_out = 0;
    std::uint64_t errors = 0;         // failed opens, read/write errors, drops
    std::uint64_t reconnects = 0;     // successful re-opens after a drop or failure
    std::uint64_t reply_timeouts = 0; // requests whose turn ended by timeout
    std::uint64_t bytes_discarded = 0; // bytes no turn claimed (a shared bus: arrived outside any device's turn)
};

class link {
public:
    virtual ~link() = default;
    virtual int kind() const = 0;  // FL_TRANSPORT_*
    virtual int unit() const { return unit_; }  // the configured unit address, or -1
    virtual fl_status open() = 0;
    virtual fl_status write(const std::uint8_t *data, std::size_t size) = 0;
    virtual fl_status request(const std::uint8_t *data, std::size_t size, std::chrono::milliseconds reply_timeout) = 0;
    virtual fl_status end_request() = 0;
    virtual fl_status close() = 0;
    virtual link_counters counters() const = 0;
    // Backpressure: while paused the link reads nothing from its wire and makes no on_data call.
    virtual void set_paused(bool) {}
    virtual bool paused() const { return false; }
    void set_unit(int unit) { unit_ = unit; }

private:
    int unit_ = -1;
};

struct backoff {
    std::chrono::milliseconds initial{200};
    std::chrono::milliseconds max{30000};
};

struct serial_settings {
    std::string path;              // /dev/ttyUSB0, or a pty
    unsigned baud = 9600;
    unsigned data_bits = 8;        // 5..8
    char parity = 'N';             // 'N', 'E', 'O'
    unsigned stop_bits = 1;        // 1 or 2
};

struct bus_timing {
    std::chrono::milliseconds inter_frame_gap{5};     // silence between one turn's end and the next request
    std::chrono::milliseconds default_timeout{500};   // reply timeout when a request gives 0
};

// A point-to-point serial port (RS-232, or RS-485 with one device).
std::unique_ptr<link> make_serial_link(executor ex, serial_settings settings, backoff retry, link_events events);

// A TCP connection the host makes to the device; reconnects with backoff.
std::unique_ptr<link> make_tcp_client_link(executor ex, std::string host, std::uint16_t port, backoff retry,
                                           link_events events);

// UDP to a fixed peer (and from it: datagrams from other addresses are dropped and counted). `retry` paces re-resolving
// after a failure.
std::unique_ptr<link> make_udp_link(executor ex, std::string host, std::uint16_t port, link_events events,
                                    backoff retry = {});

// One RS-485 bus shared by several devices: the port, and the arbitration between their requests.
class rs485_bus {
public:
    virtual ~rs485_bus() = default;
    // A link for one device on this bus. Its write() is refused (FL_MISUSE): on a shared bus a device talks in
    // request() turns only.
    virtual std::unique_ptr<link> attach(executor ex, link_events events) = 0;
    virtual link_counters counters() const = 0;
};
std::shared_ptr<rs485_bus> make_rs485_bus(boost::asio::io_context &io, serial_settings settings, bus_timing timing,
                                          backoff retry);

// A TCP listener devices connect in to. Each configured device is bound either to a peer address, or to an
// identity the plugin's identify function reads from a connection's first bytes.
class tcp_listener {
public:
    virtual ~tcp_listener() = default;
    virtual std::uint16_t port() const = 0;  // the bound port (useful when configured as 0)
    // Returns FL_OK with the identity, FL_BUSY when more bytes are needed, anything else to refuse the bytes.
    // Called on the listener's strand (never concurrently with itself, but not on any device's executor).
    using identify_fn = std::function<fl_status(const std::uint8_t *data, std::size_t size, std::string &identity)>;
    virtual void set_identifier(identify_fn identify) = 0;
    // Throws std::invalid_argument when peer_address is not an IP address literal.
    virtual std::unique_ptr<link> attach_peer(executor ex, std::string peer_address, link_events events) = 0;
    virtual std::unique_ptr<link> attach_identity(executor ex, std::string identity, link_events events) = 0;
    virtual std::uint64_t unmatched_connections() const = 0;  // connections no device claimed (closed)
};
// Throws std::system_error when the address cannot be bound. It keeps accepting while it or any link attached to it
// exists.
std::shared_ptr<tcp_listener> make_tcp_listener(boost::asio::io_context &io, std::string address, std::uint16_t port);

}  // namespace firelink::transport
