// The accept loop of an HTTP server in the shape of Beast's http_server_async example, as the admin endpoint
// (host/admin) and the reference receiver (examples/receiver) run it: bound at once, accepting on its own strand, at
// most max_connections open, and every connection still open closed by stop(). What a connection does is the
// server's: it comes from serve().
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace firelink::http_access {

// An accepted connection, as the listener keeps it to close it on stop().
class connection {
public:
    virtual ~connection() = default;
    // From any thread: closes the connection on its strand, cancelling whatever it waits for.
    virtual void close() = 0;
};

struct listener_options {
    std::size_t max_connections = 64;  // beyond it a new connection is closed as it is accepted
    // Makes and starts the connection for an accepted socket (on the acceptor's strand).
    std::function<std::shared_ptr<connection>(boost::asio::ip::tcp::socket &&)> serve;
    // Told of a connection beyond max_connections (open: how many are), before the listener closes it.
    std::function<void(const boost::asio::ip::tcp::socket &, std::size_t open)> on_full;
    std::string log_prefix;  // before the listener's own log lines ("admin: ")
};

class listener : public std::enable_shared_from_this<listener> {
public:
    // Opens, binds (SO_REUSEADDR) and listens on `at` at once; throws std::system_error whose what() names `where`
    // and the step ("admin endpoint 127.0.0.1:80: cannot bind: Permission denied"). Accepts nothing before start().
    // Make it with std::make_shared.
    listener(boost::asio::io_context &ioc, const boost::asio::ip::tcp::endpoint &at, const std::string &where,
             listener_options options);

    const boost::asio::ip::tcp::endpoint &endpoint() const noexcept { return bound_; }

    // Starts accepting. A second call does nothing.
    void start();
    // From any thread: stops accepting and closes every connection still open (on the acceptor's strand). Idempotent.
    void stop();

private:
    void do_accept();
    void on_accept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);
    void close_all();

    boost::asio::io_context &ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer retry_;
    listener_options options_;
    boost::asio::ip::tcp::endpoint bound_;
    std::vector<std::weak_ptr<connection>> connections_;  // touched on the acceptor's strand only
    std::atomic<bool> started_{false}, stopped_{false};
};

}  // namespace firelink::http_access
