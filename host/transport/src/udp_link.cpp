// UDP to one fixed peer. The socket is not connect()ed, so that datagrams from other senders reach us and can be
// counted as errors instead of vanishing in the kernel. A failed resolve or a broken socket is retried with backoff.
#include <boost/asio/ip/udp.hpp>
#include <spdlog/spdlog.h>

#include "link_core.hpp"
#include "resolve_endpoints.hpp"
#include "retrying_link.hpp"

namespace firelink::transport {
namespace detail {
namespace {

using udp = asio::ip::udp;

// The largest UDP payload over IPv4.
constexpr std::size_t max_datagram = 65507;

class udp_link final : public retrying_link<link_core> {
public:
    udp_link(executor ex, std::string host, std::uint16_t port, backoff retry, link_events events)
        : retrying_link(ex, std::move(events), "udp " + host + ":" + std::to_string(port), retry),
          host_(std::move(host)), port_(port), socket_(ex), resolver_(ex), resolve_timer_(ex),
          read_buffer_(max_datagram) {}

    int kind() const override { return FL_TRANSPORT_UDP; }

private:
    std::size_t max_write() const override { return max_datagram; }

    void try_open() override {
        ++attempt_;
        resolve_timer_.expires_after(connect_deadline);
        resolve_timer_.async_wait([self = self<udp_link>(), epoch = epoch_, attempt = attempt_](const error_code &ec) {
            if (!ec && self->alive(epoch) && attempt == self->attempt_) self->resolver_.cancel();
        });
        resolve_endpoints(ex_, resolver_, host_, port_,
                          [self = self<udp_link>(), epoch = epoch_, attempt = attempt_](
                              const error_code &ec, std::vector<udp::endpoint> endpoints) {
                              self->on_resolve(epoch, attempt, ec, std::move(endpoints));
                          });
    }

    void on_resolve(std::uint64_t epoch, std::uint64_t attempt, error_code ec, std::vector<udp::endpoint> results) {
        if (!alive(epoch) || attempt != attempt_) return;
        resolve_timer_.cancel();
        if (!ec && results.empty()) ec = asio::error::host_not_found;
        if (!ec) {
            peer_ = results.front();
            socket_.open(peer_.protocol(), ec);
            if (!ec) socket_.bind(udp::endpoint(peer_.protocol(), 0), ec);
        }
        if (ec) {
            close_socket();
            attempt_failed(ec, "cannot open", FL_IO);
            return;
        }
        attempt_succeeded();
        ++session_;
        open_ = true;
        spdlog::info("[{}] open (local port {})", name_, socket_.local_endpoint(ec).port());
        set_state(FL_LINK_OPEN, FL_OK);
        if (!alive(epoch) || !open_) return;
        maybe_receive();
        send_next();
    }

    void resume_reading() override { maybe_receive(); }

    // One datagram at a time, none while paused. UDP has no flow control: while paused, datagrams wait in the
    // socket's receive buffer and the kernel drops what does not fit (counted by the kernel, not by us).
    void maybe_receive() {
        if (!open_ || receiving_ || paused_) return;
        receiving_ = true;
        socket_.async_receive_from(asio::buffer(read_buffer_), sender_,
                                   [self = self<udp_link>(), epoch = epoch_, session = session_](
                                       const error_code &ec, std::size_t n) { self->on_receive(epoch, session, ec, n); });
    }

    void on_receive(std::uint64_t epoch, std::uint64_t session, const error_code &ec, std::size_t n) {
        if (!alive(epoch) || session != session_) return;
        receiving_ = false;
        if (ec) {
            close_socket();
            ++counters_.errors;
            spdlog::warn("[{}] socket lost ({}); reopening with backoff", name_, ec.message());
            set_state(FL_LINK_LOST, FL_IO);
            if (alive(epoch)) retry_after_drop();
            return;
        }
        if (sender_ != peer_) {
            // Not our device: count it, never deliver it.
            counters_.bytes_discarded += n;
            if (counters_.errors++ == 0) spdlog::warn("[{}] dropping datagrams from {}", name_, sender_.address().to_string());
        } else {
            deliver(read_buffer_.data(), n);
            if (!alive(epoch) || session != session_) return;
        }
        maybe_receive();
    }

    void send_next() override {
        if (!open_ || sending_ || queue_.empty()) return;
        sending_ = true;
        // A datagram send does not wait for the peer, so it needs no deadline.
        socket_.async_send_to(asio::buffer(queue_.front()), peer_,
                              [self = self<udp_link>(), epoch = epoch_, session = session_](const error_code &ec,
                                                                                            std::size_t n) {
                                  self->on_send(epoch, session, ec, n);
                              });
    }

    void on_send(std::uint64_t epoch, std::uint64_t session, const error_code &ec, std::size_t n) {
        if (!alive(epoch) || session != session_) return;
        sending_ = false;
        // A datagram the network refused is lost like any other datagram; the driver's protocol retries.
        if (ec) ++counters_.errors;
        else counters_.bytes_out += n;
        queued_bytes_ -= queue_.front().size();
        queue_.pop_front();
        send_next();
    }

    void close_socket() {
        ++session_;
        open_ = false;
        sending_ = false;
        receiving_ = false;  // the old socket's receive completes stale
        reset_session();
        error_code ignored;
        socket_.close(ignored);
    }

    void stop() override {
        ++attempt_;
        resolver_.cancel();
        resolve_timer_.cancel();
        cancel_retry();
        close_socket();
        spdlog::info("[{}] closed", name_);
    }

    std::string host_;
    std::uint16_t port_;
    udp::socket socket_;
    udp::resolver resolver_;
    asio::steady_timer resolve_timer_;
    std::vector<std::uint8_t> read_buffer_;
    udp::endpoint peer_;
    udp::endpoint sender_;
    std::uint64_t attempt_ = 0;
    std::uint64_t session_ = 0;
    bool open_ = false;
    bool sending_ = false;
    bool receiving_ = false;  // a receive of this session is waiting on the socket
};

}  // namespace
}  // namespace detail

std::unique_ptr<link> make_udp_link(executor ex, std::string host, std::uint16_t port, link_events events,
                                    backoff retry) {
    auto impl = std::make_shared<detail::udp_link>(std::move(ex), std::move(host), port, retry, std::move(events));
    return std::make_unique<detail::link_handle<detail::udp_link>>(std::move(impl));
}

}  // namespace firelink::transport
