#include "link_core.hpp"

namespace firelink::transport::detail {

link_core::link_core(executor ex, link_events events, std::string name)
    : ex_(std::move(ex)), events_(std::move(events)), name_(std::move(name)), reply_timer_(ex_) {}

fl_status link_core::open() {
    // A second open would promise a second outcome that never comes: refuse it, with no callback.
    if (opened_) return FL_MISUSE;
    opened_ = true;
    ++epoch_;
    state_ = FL_LINK_OPENING;
    // The outcome never arrives from inside open().
    asio::post(ex_, [self = shared_from_this(), epoch = epoch_] {
        if (self->alive(epoch)) self->start();
    });
    return FL_OK;
}

fl_status link_core::write(const std::uint8_t *data, std::size_t size) {
    if (!data && size) return FL_MISUSE;
    if (!opened_ || state_ != FL_LINK_OPEN) return FL_CLOSED;
    if (size == 0) return FL_OK;
    if (size > max_write()) return FL_INVALID_ARGUMENT;
    if (queued_bytes_ + size > send_queue_limit) return FL_BUSY;
    queue_.emplace_back(data, data + size);
    queued_bytes_ += size;
    send_next();
    return FL_OK;
}

fl_status link_core::request(const std::uint8_t *data, std::size_t size, std::chrono::milliseconds reply_timeout) {
    if (!data || size == 0) return data ? FL_INVALID_ARGUMENT : FL_MISUSE;
    if (!opened_ || state_ != FL_LINK_OPEN) return FL_CLOSED;
    if (in_request_) return FL_BUSY;
    if (const fl_status s = write(data, size); s != FL_OK) return s;
    in_request_ = true;
    const std::uint64_t request = ++request_seq_;
    reply_timer_.expires_after(reply_timeout.count() > 0 ? reply_timeout : default_reply_timeout);
    reply_timer_.async_wait([self = shared_from_this(), epoch = epoch_, request](const error_code &ec) {
        self->on_reply_timer(epoch, request, ec);
    });
    return FL_OK;
}

void link_core::on_reply_timer(std::uint64_t epoch, std::uint64_t request, const error_code &ec) {
    if (ec || !alive(epoch) || !in_request_ || request != request_seq_) return;
    in_request_ = false;
    ++counters_.reply_timeouts;
    if (events_.on_state) events_.on_state(FL_LINK_REPLY_TIMEOUT, FL_TIMEOUT);
}

fl_status link_core::end_request() {
    if (!opened_ || !in_request_) return FL_MISUSE;
    in_request_ = false;
    reply_timer_.cancel();
    return FL_OK;
}

fl_status link_core::close() {
    if (!opened_) return FL_OK;
    opened_ = false;
    ++epoch_;
    state_ = FL_LINK_CLOSED;
    reset_session();
    stop();
    return FL_OK;
}

void link_core::set_paused(bool paused) {
    if (paused == paused_) return;
    paused_ = paused;
    if (paused) ++counters_.pauses;
    // Also when closed: the flag is only read when a read would start, and a closed link starts none.
    else if (opened_ && !detached_.load()) resume_reading();
}

void link_core::detach() {
    detached_.store(true);
    // Inline when the handle dies on the executor (the usual case); otherwise queued to it.
    asio::dispatch(ex_, [self = shared_from_this()] { self->close(); });
}

void link_core::set_state(int state, fl_status reason) {
    state_ = state;
    if (events_.on_state) events_.on_state(state, reason);
}

void link_core::deliver(const std::uint8_t *data, std::size_t size) {
    counters_.bytes_in += size;
    if (events_.on_data && size) events_.on_data(data, size);
}

void link_core::reset_session() {
    queue_.clear();
    queued_bytes_ = 0;
    in_request_ = false;
    reply_timer_.cancel();
}

const char *state_name(int state) {
    switch (state) {
    case FL_LINK_CLOSED: return "closed";
    case FL_LINK_OPENING: return "opening";
    case FL_LINK_OPEN: return "open";
    case FL_LINK_LOST: return "lost";
    case FL_LINK_FAILED: return "failed";
    case FL_LINK_REPLY_TIMEOUT: return "reply-timeout";
    default: return "?";
    }
}

}  // namespace firelink::transport::detail
