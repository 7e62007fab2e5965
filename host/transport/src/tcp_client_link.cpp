// A TCP connection the host makes to the device (e.g. Modbus TCP). Resolve and connect share one deadline; a failed
// attempt reports FAILED, a dropped connection LOST, and both retry with backoff until close().
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <spdlog/spdlog.h>

#include "resolve_endpoints.hpp"
#include "retrying_link.hpp"
#include "stream_link.hpp"
#include "tcp_socket_options.hpp"

namespace firelink::transport {
namespace detail {
namespace {

using tcp = asio::ip::tcp;

class tcp_client_link final : public retrying_link<stream_link<tcp::socket>> {
public:
    tcp_client_link(executor ex, std::string host, std::uint16_t port, backoff retry, link_events events)
        : retrying_link(ex, std::move(events), "tcp " + host + ":" + std::to_string(port), retry),
          host_(std::move(host)), port_(port), resolver_(ex), connect_timer_(ex) {}

    int kind() const override { return FL_TRANSPORT_TCP_CLIENT; }

private:
    void try_open() override {
        ++attempt_;
        timed_out_ = false;
        connect_timer_.expires_after(connect_deadline);
        connect_timer_.async_wait([self = self<tcp_client_link>(), epoch = epoch_, attempt = attempt_](
                                      const error_code &ec) { self->on_connect_deadline(epoch, attempt, ec); });
        resolve_endpoints(ex_, resolver_, host_, port_,
                          [self = self<tcp_client_link>(), epoch = epoch_, attempt = attempt_](
                              const error_code &ec, std::vector<tcp::endpoint> endpoints) {
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
            fail_attempt(ec, "resolve failed");
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
            fail_attempt(ec, "connect failed");
            return;
        }
        ++attempt_;  // a deadline that expired just now must not close the connection that made it
        set_device_socket_options(stream_);
        attempt_succeeded();
        spdlog::info("[{}] connected", name_);
        begin_session();
    }

    void fail_attempt(error_code ec, const char *what) {
        ++attempt_;
        connect_timer_.cancel();
        error_code ignored;
        stream_.close(ignored);
        if (timed_out_) ec = asio::error::timed_out;
        attempt_failed(ec, what, ec == asio::error::timed_out ? FL_TIMEOUT : FL_IO);
    }

    void on_lost() override { retry_after_drop(); }

    void stop() override {
        ++attempt_;
        resolver_.cancel();
        connect_timer_.cancel();
        cancel_retry();
        end_session();
        spdlog::info("[{}] closed", name_);
    }

    std::string host_;
    std::uint16_t port_;
    tcp::resolver resolver_;
    asio::steady_timer connect_timer_;
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
