// A link that opens its wire itself (serial, TCP client, UDP): after a failed attempt or a drop it tries again with
// backoff until close(). The subclass makes one attempt in try_open() and reports how it went.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "link_core.hpp"
#include "retry_backoff.hpp"

namespace firelink::transport::detail {

// Base is link_core or a class derived from it (stream_link<...>).
template <class Base>
class retrying_link : public Base {
public:
    retrying_link(executor ex, link_events events, std::string name, backoff retry)
        : Base(ex, std::move(events), std::move(name)), backoff_(retry), retry_timer_(ex) {}

protected:
    // One attempt at opening the wire; it ends in attempt_failed() or attempt_succeeded(). Runs on the executor.
    virtual void try_open() = 0;

    void start() override {
        backoff_.restart();
        try_open();
    }

    // The attempt failed: count it, warn once per outage ("[name] <what> (<error>); retrying with backoff"), report
    // FAILED and try again after the backoff delay (unless the device closed the link on FAILED).
    void attempt_failed(const error_code &ec, const char *what, fl_status reason) {
        ++this->counters_.errors;
        if (backoff_.failed()) spdlog::warn("[{}] {} ({}); retrying with backoff", this->name_, what, ec.message());
        const std::uint64_t epoch = this->epoch_;
        this->set_state(FL_LINK_FAILED, reason);
        if (this->alive(epoch)) retry_later();
    }

    // The attempt worked; it counts as a reconnect when it ended an outage.
    void attempt_succeeded() {
        if (backoff_.succeeded()) ++this->counters_.reconnects;
    }

    // The wire dropped after working (LOST was reported and the link is still open): try again after the delay.
    void retry_after_drop() {
        backoff_.dropped();
        retry_later();
    }

    // From stop(): no attempt after close().
    void cancel_retry() { retry_timer_.cancel(); }

private:
    void retry_later() {
        retry_timer_.expires_after(backoff_.next());
        retry_timer_.async_wait(
            [self = this->template self<retrying_link>(), epoch = this->epoch_](const error_code &ec) {
                if (!ec && self->alive(epoch)) self->try_open();
            });
    }

    retry_backoff backoff_;
    boost::asio::steady_timer retry_timer_;
};

}  // namespace firelink::transport::detail
