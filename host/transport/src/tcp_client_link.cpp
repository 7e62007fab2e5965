// A TCP connection the host makes to the device (e.g. Modbus TCP). Resolve and connect share one deadline; a failed
// attempt reports FAILED, a dropped connection LOST, and both retry with backoff until close().
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <spdlog/spdlog.h>

#include "retry_backoff.hpp"
#include "stream_link.hpp"
#include "tcp_socket_options.hpp"

namespace firelink::transport {
namespace detail {
namespace {

using tcp = asio::ip::tcp;

class tcp_client_link final : public stream_link<tcp::socket> {
public:
    tcp_client_link(executor ex, std::string host, std::uint16_t port, backoff retry, link_events events)
        : stream_link(ex, std::move(events), "tcp " + host + ":" + std::to_string(port)), host_(std::move(host)),
          port_(port), backoff_(retry), resolver_(ex), connect_timer_(ex), retry_timer_(ex) {}

    int kind() const override { return FL_TRANSPORT_TCP_CLIENT; }

private:
    void start() override {
        backoff_.restart();
        do_resolve();
    }

    void do_resolve() {
        ++attempt_;
        timed_out_ = false;
        connect_timer_.expires_after(connect_deadline);
        connect_timer_.async_wait([self = self<tcp_client_link>(), epoch = epoch_, attempt = attempt_](
                                      const error_code &ec) { self->on_connect_deadline(epoch, attempt, ec); });
        // An address literal needs no resolver (whose getaddrinfo thread a slow DNS server can hold up).
        error_code literal_ec;
        const auto address = asio::ip::make_address(host_, literal_ec);
        if (!literal_ec) {
            const tcp::endpoint endpoint(address, port_);
            asio::post(ex_, [self = self<tcp_client_link>(), epoch = epoch_, attempt = attempt_, endpoint] {
                self->on_resolve(epoch, attempt, {}, {endpoint});
            });
            return;
        }
        resolver_.async_resolve(host_, std::to_string(port_),
                                [self = self<tcp_client_link>(), epoch = epoch_, attempt = attempt_](
                                    const error_code &ec, const tcp::resolver::results_type &results) {
                                    std::vector<tcp::endpoint> endpoints;
                                    for (const auto &entry : results) endpoints.push_back(entry.endpoint());
                                    self->on_resolve(epoch, attempt, ec, std::move(endpoints));
                                });
    }

    void on_connect_deadline(std::uint64_t epoch, std::uint64_t attempt, const error_code &ec) {
        if (ec || !alive(epoch) || attempt != attempt_) return;
        // Cancel whichever step is pending; its completion reports the failure.
        timed_out_ = true;
        resolver_.cancel();
        error_code ignored;
        stream_.close(ignored);
    }

    void on_resolve(std::uint64_t epoch, std::uint64_t attempt, const error_code &ec,
                    std::vector<tcp::endpoint> results) {
        if (!alive(epoch) || attempt != attempt_) return;
        if (ec) {
            fail_attempt(ec, "resolve");
            return;
        }
        asio::async_connect(stream_, results,
                            [self = self<tcp_client_link>(), epoch, attempt](const error_code &ec, const tcp::endpoint &) {
                                self->on_connect(epoch, attempt, ec);
                            });
    }

    void on_connect(std::uint64_t epoch, std::uint64_t attempt, const error_code &ec) {
        if (!alive(epoch) || attempt != attempt_) return;
        connect_timer_.cancel();
        if (ec) {
            fail_attempt(ec, "connect");
            return;
        }
        ++attempt_;  // a deadline that expired just now must not close the connection that made it
        set_device_socket_options(stream_);
        if (backoff_.succeeded()) ++counters_.reconnects;
        spdlog::info("[{}] connected", name_);
        begin_session();
    }

    void fail_attempt(error_code ec, const char *what) {
        ++attempt_;
        connect_timer_.cancel();
        error_code ignored;
        stream_.close(ignored);
        if (timed_out_) ec = asio::error::timed_out;
        ++counters_.errors;
        if (backoff_.failed()) spdlog::warn("[{}] {} failed ({}); retrying with backoff", name_, what, ec.message());
        const std::uint64_t epoch = epoch_;
        set_state(FL_LINK_FAILED, ec == asio::error::timed_out ? FL_TIMEOUT : FL_IO);
        if (alive(epoch)) schedule_connect();
    }

    void on_lost() override {
        backoff_.dropped();
        schedule_connect();
    }

    void schedule_connect() {
        retry_timer_.expires_after(backoff_.next());
        retry_timer_.async_wait([self = self<tcp_client_link>(), epoch = epoch_](const error_code &ec) {
            if (!ec && self->alive(epoch)) self->do_resolve();
        });
    }

    void stop() override {
        ++attempt_;
        resolver_.cancel();
        connect_timer_.cancel();
        retry_timer_.cancel();
        end_session();
        spdlog::info("[{}] closed", name_);
    }

    std::string host_;
    std::uint16_t port_;
    retry_backoff backoff_;
    tcp::resolver resolver_;
    asio::steady_timer connect_timer_;
    asio::steady_timer retry_timer_;
    std::uint64_t attempt_ = 0;  // completions of an abandoned attempt are stale
    bool timed_out_ = false;
};

}  // namespace
}  // namespace detail

std::unique_ptr<link> make_tcp_client_link(executor ex, std::string host, std::uint16_t port, backoff retry,
                                           link_events events) {
    auto impl = std::make_shared<detail::tcp_client_link>(std::move(ex), std::move(host), port, retry,
                                                          std::move(events));
    return std::make_unique<detail::link_handle<detail::tcp_client_link>>(std::move(impl));
}

}  // namespace firelink::transport
