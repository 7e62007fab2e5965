// A point-to-point serial port. Opens with the configured line settings; a failed open or a broken port is retried
// with backoff until close().
#include <boost/asio/serial_port.hpp>
#include <spdlog/spdlog.h>

#include "retry_backoff.hpp"
#include "serial_port_setup.hpp"
#include "stream_link.hpp"

namespace firelink::transport {
namespace detail {
namespace {

class serial_link final : public stream_link<asio::serial_port> {
public:
    serial_link(executor ex, serial_settings settings, backoff retry, link_events events)
        : stream_link(ex, std::move(events), "serial " + settings.path), settings_(std::move(settings)),
          backoff_(retry), retry_timer_(ex) {}

    int kind() const override { return FL_TRANSPORT_SERIAL; }

private:
    void start() override {
        backoff_.restart();
        do_open();
    }

    void do_open() {
        const std::uint64_t epoch = epoch_;
        if (const error_code ec = open_serial_port(stream_, settings_, counters_.bytes_discarded)) {
            ++counters_.errors;
            // One warning per outage, not one per retry.
            if (backoff_.failed()) spdlog::warn("[{}] cannot open ({}); retrying with backoff", name_, ec.message());
            set_state(FL_LINK_FAILED, FL_IO);
            if (alive(epoch)) schedule_open();
            return;
        }
        if (backoff_.succeeded()) ++counters_.reconnects;
        spdlog::info("[{}] open ({} baud, {}{}{})", name_, settings_.baud, settings_.data_bits, settings_.parity,
                     settings_.stop_bits);
        begin_session();
    }

    void on_lost() override {
        backoff_.dropped();
        schedule_open();
    }

    void schedule_open() {
        retry_timer_.expires_after(backoff_.next());
        retry_timer_.async_wait([self = self<serial_link>(), epoch = epoch_](const error_code &ec) {
            if (!ec && self->alive(epoch)) self->do_open();
        });
    }

    void stop() override {
        retry_timer_.cancel();
        end_session();
        spdlog::info("[{}] closed", name_);
    }

    serial_settings settings_;
    retry_backoff backoff_;
    asio::steady_timer retry_timer_;
};

}  // namespace
}  // namespace detail

std::unique_ptr<link> make_serial_link(executor ex, serial_settings settings, backoff retry, link_events events) {
    auto impl = std::make_shared<detail::serial_link>(std::move(ex), std::move(settings), retry, std::move(events));
    return std::make_unique<detail::link_handle<detail::serial_link>>(std::move(impl));
}

}  // namespace firelink::transport
