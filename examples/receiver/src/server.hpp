// The receiver's HTTP/1.1 server (Boost.Beast): the uplink endpoints of docs/uplink-protocol.md (/v1/...), the
// operator's query API (/api/...), the HTML page (/) and, with --test-faults, /test/faults.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "access.hpp"

namespace firelink::receiver {

class store;

struct server_options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    access_list access;         // who may do what; default: nobody (every request 401)
    bool test_faults = false;   // serves /test/faults
    std::size_t body_limit = 16u << 20;        // POST /v1/events (a batch)
    std::size_t small_body_limit = 64u << 10;  // every other route (a command, a fault plan; GETs have none)
    std::size_t max_connections = 512;         // beyond it a new connection is closed at once
    std::size_t max_json_depth = 32;           // deeper JSON bodies are 400, never parsed further
    std::chrono::milliseconds header_timeout{10000};   // a connection's first header within it (slowloris)
    std::chrono::milliseconds request_timeout{60000};  // idle keep-alive and whole-request read deadline
    std::chrono::milliseconds drain_timeout{5000};     // reading what a refused client still sends, before closing
};

class server {
public:
    // Binds at once (throws std::system_error naming the address); serves after start().
    server(boost::asio::io_context &ioc, store &db, server_options options);
    ~server();
    void start();
    // From any thread: stops accepting, closes every connection, cancels waiting polls.
    void stop();
    boost::asio::ip::tcp::endpoint endpoint() const;

private:
    struct impl;
    std::unique_ptr<boost::asio::thread_pool> bulk_;  // parses large batches off the I/O threads; joined last
    std::shared_ptr<impl> impl_;
};

}  // namespace firelink::receiver
