// A point-to-point serial port. Opens with the configured line settings; a failed open or a broken port is retried
// with backoff until close().
#include <boost/asio/serial_port.hpp>
#include <spdlog/spdlog.h>

#include "retrying_link.hpp"
#include "serial_port_setup.hpp"
#include "stream_link.hpp"

namespace firelink::transport {
namespace detail {
namespace {

class serial_link final : public retrying_link<stream_link<asio::serial_port>> {
public:
    serial_link(executor ex, serial_settings settings, backoff retry, link_events events)
        : retrying_link(ex, std::move(events), "serial " + settings.path, retry), settings_(std::move(settings)) {}

    int kind() const override { return FL_TRANSPORT_SERIAL; }

private:
    void try_open() override {
        if (const error_code ec = open_serial_port(stream_, settings_, counters_.bytes_discarded)) {
            attempt_failed(ec, "cannot open", FL_IO);
            return;
        }
        attempt_succeeded();
        spdlog::info("[{}] open ({} baud, {}{}{})", name_, settings_.baud, settings_.data_bits, settings_.parity,
                     settings_.stop_bits);
        begin_session();
    }

    void on_lost() override { retry_after_drop(); }

    void stop() override {
        cancel_retry();
        end_session();
        spdlog::info("[{}] closed", name_);
    }

    serial_settings settings_;
};

}  // namespace
}  // namespace detail

std::unique_ptr<link> make_serial_link(executor ex, serial_settings settings, backoff retry, link_events events) {
    auto impl = std::make_shared<detail::serial_link>(std::move(ex), std::move(settings), retry, std::move(events));
    return std::make_unique<detail::link_handle<detail::serial_link>>(std::move(impl));
}

}  // namespace firelink::transport
