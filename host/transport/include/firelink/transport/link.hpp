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
//
// Bounded at every hop, and nothing read is dropped:
//   - reading: one read at a time into a fixed buffer (4 KiB on a serial port or a TCP connection, one datagram of
//     up to 65 507 bytes on UDP, 1 KiB on the shared bus port), handed to on_data before the next read starts. The
//     link holds no other inbound bytes, so a slow on_data slows the wire, not memory.
//   - backpressure: set_paused(true) stops reading; the bytes wait where the wire keeps them. TCP: the kernel's
//     socket buffer, then the TCP window closes and the device's own stack stops sending (its writes block). Serial:
//     the tty driver's buffer (a few KiB to 64 KiB; with no hardware flow control configured, a device that keeps
//     sending past it overruns it - the same as a host that does not read fast enough). UDP has no flow control:
//     datagrams wait in the socket's receive buffer (net.core.rmem_default, about 200 KiB on Linux) and the kernel
//     drops what arrives beyond it; a UDP device's protocol must retry. A shared bus: the device's polls pause.
//     A read already waiting on the wire when set_paused(true) is called still completes and is delivered (never
//     discarded), so at most one read buffer arrives after pausing.
//   - writing: write() and request() queue at most 64 KiB per link (including the write in progress); past that
//     they answer FL_BUSY, and a single write larger than the link's max is FL_INVALID_ARGUMENT. A write the wire
//     does not take within 10 s ends the connection (LOST). On a shared bus a device has at most one request queued
//     or in its turn (a second is FL_BUSY), of at most 64 KiB.
//   - a TCP listener holds at most 4 KiB per connection that has not yet identified itself (a peer that sends more
//     without identifying, or takes longer than listener_limits::identify_timeout, 10 s by default, is closed and
//     counted in unmatched_connections), and at most listener_limits::max_unbound (64) such connections at once
//     (more are closed at once, also counted).
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
    // Bytes read from the wire and not delivered to a device: on a shared bus, bytes outside any device's turn (or
    // after it ended); on UDP, datagrams from another address than the device's; on a serial port, stale bytes that
    // sat in the tty buffer before the port was (re)opened. No other path reads bytes without delivering them.
    std::uint64_t bytes_discarded = 0;
    std::uint64_t pauses = 0;          // times set_paused(true) paused the link (a repeat while paused is not counted)
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
    // Backpressure. While paused the link reads nothing from its wire and makes no on_data call; bytes wait where the
    // wire keeps them (the kernel's socket buffer and TCP window: the device's own flow control holds it; the serial
    // driver's buffer). A read already completed is still delivered (never discarded); the pause takes effect after
    // it. resume after pause reads again. Idempotent; strand only. Paused state survives a reconnect (a link that
    // reconnects while paused stays paused), and close() and open() too: it is the consumer's state, not the wire's.
    // On a shared bus, a paused device's request() answers FL_BUSY (its polls pause) and replies already in flight
    // are delivered (a request queued before the pause still gets its turn: one turn's reply at most). Writing is not paused. While paused, a connection that breaks is noticed when the link next
    // writes or reads (after resume): with no read waiting, the link does not watch the socket.
    virtual void set_paused(bool paused) = 0;
    virtual bool paused() const = 0;
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
    // A connection identified as a device whose connection is open is closed (the open one keeps flowing) and
    // reported here: at once for the first, then at most once a minute per identity (`what` counts the rest). On the
    // listener's strand. `what` names both peers, for a log or a fault.
    using conflict_fn =
        std::function<void(const std::string &identity, const std::string &peer, const std::string &what)>;
    virtual void set_conflict_handler(conflict_fn on_conflict) = 0;
    // Throws std::invalid_argument when peer_address is not an IP address literal.
    virtual std::unique_ptr<link> attach_peer(executor ex, std::string peer_address, link_events events) = 0;
    // `allow_peers`: when not empty, only a connection from one of these networks ("10.0.0.0/24", "10.0.0.7",
    // "fd00::/8") may claim the identity; another is closed and reported to the conflict handler as a forgery
    // (GB/T 26875.3 has no authentication: the address is the one thing a forger on another host cannot take).
    // Throws std::invalid_argument for an entry that is not an address or a network.
    virtual std::unique_ptr<link> attach_identity(executor ex, std::string identity, link_events events,
                                                  std::vector<std::string> allow_peers = {}) = 0;
    // Connections no device claimed (closed): unknown peers and identities, identities connected already, identify
    // refusals, more than 4 KiB or identify_timeout without an identity, and connections beyond max_unbound.
    virtual std::uint64_t unmatched_connections() const = 0;
    // Stops accepting for good and releases the port; links already connected keep their connections. For a host
    // that is stopping: call it before its devices close, or every device that reconnects in the meantime (a panel
    // retries within milliseconds) is accepted only to be closed again as unclaimed. Any thread; returns at once.
    virtual void stop_accepting() = 0;
};
// What a listener gives connections that no device has claimed yet ([[listener]] in the site file). Each holds a
// descriptor, so the cap, not the peers, says how many a flood costs; connections beyond it are closed at accept.
struct listener_limits {
    std::size_t max_unbound = 64;                       // connections identifying at once
    std::chrono::milliseconds identify_timeout{10'000};  // to identify, from accept
};
// Throws std::system_error when the address cannot be bound. It keeps accepting while it or any link attached to it
// exists.
std::shared_ptr<tcp_listener> make_tcp_listener(boost::asio::io_context &io, std::string address, std::uint16_t port,
                                                listener_limits limits = {});

}  // namespace firelink::transport
