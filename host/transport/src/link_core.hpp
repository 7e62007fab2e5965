// What every link that owns its wire shares (serial, TCP client, accepted TCP, UDP): the open/close lifecycle, the
// bounded send queue, the half-duplex request with its reply timer, the counters, and the rule that no callback is
// made after close() or destruction.
//
// All members except the counters and `detached_` belong to the link's executor. An asynchronous completion carries
// the `epoch_` it was started in; close() bumps the epoch, so a completion from before close() finds itself stale and
// calls nobody.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <firelink/transport/link.hpp>

namespace firelink::transport::detail {

namespace asio = boost::asio;
using boost::system::error_code;

// Bytes a device may have queued and not yet written; past it write() says FL_BUSY.
inline constexpr std::size_t send_queue_limit = 64 * 1024;
// A write the peer does not drain in this time ends the connection (the peer is stalled or gone).
inline constexpr std::chrono::seconds write_deadline{10};
// Resolve + connect together.
inline constexpr std::chrono::seconds connect_deadline{5};
// Reply timeout for a point-to-point request() that gives 0.
inline constexpr std::chrono::milliseconds default_reply_timeout{500};

struct atomic_counters {
    std::atomic<std::uint64_t> bytes_in{0};
    std::atomic<std::uint64_t> bytes_out{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<std::uint64_t> reply_timeouts{0};
    std::atomic<std::uint64_t> bytes_discarded{0};
    std::atomic<std::uint64_t> pauses{0};

    link_counters snapshot() const {
        link_counters c;
        c.bytes_in = bytes_in.load();
        c.bytes_out = bytes_out.load();
        c.errors = errors.load();
        c.reconnects = reconnects.load();
        c.reply_timeouts = reply_timeouts.load();
        c.bytes_discarded = bytes_discarded.load();
        c.pauses = pauses.load();
        return c;
    }
};

class link_core : public std::enable_shared_from_this<link_core> {
public:
    link_core(executor ex, link_events events, std::string name);
    virtual ~link_core() = default;
    link_core(const link_core &) = delete;
    link_core &operator=(const link_core &) = delete;

    // The link API (see link.hpp), on the executor.
    virtual int kind() const = 0;
    virtual fl_status open();
    fl_status write(const std::uint8_t *data, std::size_t size);
    fl_status request(const std::uint8_t *data, std::size_t size, std::chrono::milliseconds reply_timeout);
    fl_status end_request();
    virtual fl_status close();
    link_counters counters() const { return counters_.snapshot(); }
    void set_paused(bool paused);
    bool paused() const { return paused_; }

    // The handle is gone (from any thread): no callback from now on; the wire is closed on the executor.
    virtual void detach();

protected:
    // Begin opening the wire. Runs on the executor, posted by open().
    virtual void start() = 0;
    // Close the wire and cancel every timer of the subclass. Runs on the executor, from close().
    virtual void stop() = 0;
    // Start writing queue_.front() if the wire is open and no write is in progress.
    virtual void send_next() = 0;
    // Largest single write() the wire takes (a datagram is smaller than the queue).
    virtual std::size_t max_write() const { return send_queue_limit; }
    // set_paused(false) after a pause: start reading again if the wire is open and no read is waiting. Runs on the
    // executor. (Pausing needs no hook: the read loop checks paused_ before it starts each read.)
    virtual void resume_reading() = 0;

    // True while a completion started in `epoch` may still act and call back.
    bool alive(std::uint64_t epoch) const { return !detached_.load() && opened_ && epoch == epoch_; }
    // Records the state and tells the device. After it returns, re-check alive(): the device may have closed.
    void set_state(int state, fl_status reason);
    void deliver(const std::uint8_t *data, std::size_t size);
    // The connection ended: drop what was queued for it and any pending request (the device is told LOST instead).
    void reset_session();
    template <class Self>
    std::shared_ptr<Self> self() {
        return std::static_pointer_cast<Self>(shared_from_this());
    }

    executor ex_;
    link_events events_;
    std::string name_;  // the endpoint, for logs
    atomic_counters counters_;

    bool opened_ = false;  // open() was called and close() not since
    bool paused_ = false;  // set_paused(true): start no read; kept across reconnects, close() and open()
    std::uint64_t epoch_ = 0;
    int state_ = FL_LINK_CLOSED;

    std::deque<std::vector<std::uint8_t>> queue_;
    std::size_t queued_bytes_ = 0;  // including the write in progress

private:
    void on_reply_timer(std::uint64_t epoch, std::uint64_t request, const error_code &ec);

    std::atomic<bool> detached_{false};
    asio::steady_timer reply_timer_;
    bool in_request_ = false;
    std::uint64_t request_seq_ = 0;
};

// The `link` a factory returns: forwards to a shared implementation that outlives it until its last completion.
template <class Impl>
class link_handle final : public link {
public:
    explicit link_handle(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
    ~link_handle() override { impl_->detach(); }
    int kind() const override { return impl_->kind(); }
    fl_status open() override { return impl_->open(); }
    fl_status write(const std::uint8_t *data, std::size_t size) override { return impl_->write(data, size); }
    fl_status request(const std::uint8_t *data, std::size_t size, std::chrono::milliseconds timeout) override {
        return impl_->request(data, size, timeout);
    }
    fl_status end_request() override { return impl_->end_request(); }
    fl_status close() override { return impl_->close(); }
    link_counters counters() const override { return impl_->counters(); }
    void set_paused(bool paused) override { impl_->set_paused(paused); }
    bool paused() const override { return impl_->paused(); }

private:
    std::shared_ptr<Impl> impl_;
};

const char *state_name(int fl_link_state);

}  // namespace firelink::transport::detail
