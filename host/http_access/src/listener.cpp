#include "firelink/http_access/listener.hpp"

#include <chrono>
#include <system_error>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <spdlog/spdlog.h>

namespace firelink::http_access {

namespace net = boost::asio;
using tcp = net::ip::tcp;

listener::listener(net::io_context &ioc, const tcp::endpoint &at, const std::string &where,
                   listener_options options)
    : ioc_(ioc), acceptor_(net::make_strand(ioc)), retry_(acceptor_.get_executor()), options_(std::move(options)) {
    boost::system::error_code ec;
    const auto check = [&](const char *what) {
        if (ec) throw std::system_error(std::error_code(ec), where + ": " + what);
    };
    acceptor_.open(at.protocol(), ec);
    check("cannot open a socket");
    acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    check("cannot set SO_REUSEADDR");
    acceptor_.bind(at, ec);
    check("cannot bind");
    acceptor_.listen(net::socket_base::max_listen_connections, ec);
    check("cannot listen");
    bound_ = acceptor_.local_endpoint(ec);
    check("cannot read the bound address");
}

void listener::start() {
    if (started_.exchange(true)) return;  // one accept loop, however often start() is called
    net::dispatch(acceptor_.get_executor(), boost::beast::bind_front_handler(&listener::do_accept, shared_from_this()));
}

void listener::stop() {
    stopped_ = true;
    net::post(acceptor_.get_executor(), [self = shared_from_this()] { self->close_all(); });
}

void listener::do_accept() {
    if (stopped_) return;
    acceptor_.async_accept(net::make_strand(ioc_),
                           boost::beast::bind_front_handler(&listener::on_accept, shared_from_this()));
}

void listener::on_accept(boost::system::error_code ec, tcp::socket socket) {
    if (stopped_ || ec == net::error::operation_aborted) return;
    if (ec) {
        // Out of file descriptors, most likely: wait a little rather than spin on a failing accept.
        spdlog::warn("{}accept failed: {}", options_.log_prefix, ec.message());
        retry_.expires_after(std::chrono::milliseconds(100));
        return retry_.async_wait([self = shared_from_this()](boost::system::error_code wait_ec) {
            if (!wait_ec) self->do_accept();
        });
    }
    std::erase_if(connections_, [](const std::weak_ptr<connection> &w) { return w.expired(); });
    // Each connection holds a descriptor and buffers; past the cap a flood is closed here, unread, and the
    // connections already open go on.
    if (connections_.size() >= options_.max_connections) {
        if (options_.on_full) options_.on_full(socket, connections_.size());
        boost::system::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        return do_accept();
    }
    connections_.push_back(options_.serve(std::move(socket)));
    do_accept();
}

void listener::close_all() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    retry_.cancel();
    for (auto &w : connections_)
        if (auto c = w.lock()) c->close();
    connections_.clear();
}

}  // namespace firelink::http_access
