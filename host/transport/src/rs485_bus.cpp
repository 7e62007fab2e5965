// One RS-485 bus shared by several devices: the port, and the arbitration between their requests.
//
// The bus runs on its own strand; each device link runs on its device's executor. They talk only by posting to each
// other: a device posts open/close/request/end to the bus, the bus posts states and reply bytes back. Every post to
// a device carries the device's epoch (bumped by close()) and request id, and the device drops a post that no longer
// matches, so nothing reaches a device after close() and no stale bytes reach a later request.
//
// Arbitration: a FIFO of pending requests, at most one per device (a second request is FL_BUSY on the device side),
// so serving the FIFO in order is round-robin between devices. One turn at a time: wait out the inter-frame gap since
// the previous turn ended, write the request, then the turn owns every byte read until end_request() or the reply
// timeout. Bytes read outside a turn are discarded and counted.
#include <list>
#include <map>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/serial_port.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "link_core.hpp"
#include "retry_backoff.hpp"
#include "serial_port_setup.hpp"

namespace firelink::transport {
namespace detail {
namespace {

using bus_clock = std::chrono::steady_clock;
class bus_link;

class bus_core final : public rs485_bus, public std::enable_shared_from_this<bus_core> {
public:
    bus_core(asio::io_context &io, serial_settings settings, bus_timing timing, backoff retry)
        : strand_(asio::make_strand(io)), port_(strand_), settings_(std::move(settings)), timing_(timing),
          backoff_(retry), turn_timer_(strand_), retry_timer_(strand_), name_("rs485 " + settings_.path) {}

    std::unique_ptr<link> attach(executor ex, link_events events) override;
    link_counters counters() const override { return counters_.snapshot(); }

    // From device links (any thread): each posts itself onto the bus strand.
    void device_open(std::uint64_t device, std::uint64_t epoch, std::weak_ptr<bus_link> link, executor ex);
    void device_close(std::uint64_t device);
    void device_request(std::uint64_t device, std::uint64_t request, std::vector<std::uint8_t> bytes,
                        std::chrono::milliseconds timeout);
    void device_end(std::uint64_t device, std::uint64_t request);
    void count_discarded(std::size_t n) { counters_.bytes_discarded += n; }
    void detached() { --attached_; }

    const std::string &name() const { return name_; }

private:
    struct device_entry {
        std::uint64_t epoch;
        std::weak_ptr<bus_link> link;
        executor ex;
        bool told_open = false;
        bool troubled = false;  // told LOST/FAILED since the last OPEN: the next OPEN is a reconnect
    };
    struct pending {
        std::uint64_t device;
        std::uint64_t request;
        std::vector<std::uint8_t> bytes;
        std::chrono::milliseconds timeout;
        bool ended = false;  // the device needs no reply (or closed): the turn ends once the bytes are written
    };
    enum class phase { gap, writing, awaiting };
    struct turn {
        pending req;
        phase at;
    };
    enum class port_state { closed, open, retrying };

    // Device notifications.
    void tell(device_entry &d, int state, fl_status reason, std::uint64_t request = 0);
    void give(device_entry &d, std::uint64_t request, const std::uint8_t *data, std::size_t size);

    // Port lifecycle.
    void open_port();
    void schedule_reopen();
    void port_failed(const error_code &ec, const char *what);
    void close_port();
    void do_read();
    void on_read(std::uint64_t port_epoch, const error_code &ec, std::size_t n);

    // Turns.
    void maybe_start_turn();
    void send_turn();
    void on_turn_written(std::uint64_t port_epoch, std::uint64_t seq, const error_code &ec, std::size_t n);
    void on_turn_timer(std::uint64_t seq, phase at, const error_code &ec);
    void finish_turn();

    asio::strand<asio::io_context::executor_type> strand_;
    asio::serial_port port_;
    serial_settings settings_;
    bus_timing timing_;
    retry_backoff backoff_;
    asio::steady_timer turn_timer_;   // the gap, then the write deadline, then the reply timeout of the current turn
    asio::steady_timer retry_timer_;  // reopening the port
    std::string name_;
    atomic_counters counters_;
    std::atomic<std::uint64_t> next_device_{0};
    // Devices attached (their links exist), open or not: the port opens for the first to open, and the log should
    // say how many share it, not how many had opened by then.
    std::atomic<std::size_t> attached_{0};

    // On the strand only.
    std::map<std::uint64_t, device_entry> devices_;  // devices that called open()
    std::list<pending> queue_;
    std::optional<turn> turn_;
    std::uint64_t turn_seq_ = 0;
    bus_clock::time_point last_turn_end_{};
    port_state port_state_ = port_state::closed;
    std::uint64_t port_epoch_ = 0;  // completions from a port closed since are stale
    std::array<std::uint8_t, 1024> read_buffer_{};
};

// One device's view of the bus. Lives on the device's executor.
class bus_link final : public std::enable_shared_from_this<bus_link> {
public:
    bus_link(executor ex, link_events events, std::shared_ptr<bus_core> bus, std::uint64_t id)
        : ex_(std::move(ex)), events_(std::move(events)), bus_(std::move(bus)), id_(id) {}

    int kind() const { return FL_TRANSPORT_RS485_BUS; }

    fl_status open() {
        if (opened_) return FL_MISUSE;
        opened_ = true;
        ++epoch_;
        state_ = FL_LINK_OPENING;
        bus_->device_open(id_, epoch_, weak_from_this(), ex_);
        return FL_OK;
    }

    // On a shared bus a device talks in turns only.
    fl_status write(const std::uint8_t *, std::size_t) { return FL_MISUSE; }

    fl_status request(const std::uint8_t *data, std::size_t size, std::chrono::milliseconds timeout) {
        if (!data || size == 0) return data ? FL_INVALID_ARGUMENT : FL_MISUSE;
        if (!opened_ || state_ != FL_LINK_OPEN) return FL_CLOSED;
        // A paused device polls nothing, so its device sends nothing; the other devices keep their turns.
        if (outstanding_ || paused_) return FL_BUSY;
        if (size > send_queue_limit) return FL_INVALID_ARGUMENT;
        outstanding_ = ++request_seq_;
        bus_->device_request(id_, outstanding_, std::vector<std::uint8_t>(data, data + size), timeout);
        return FL_OK;
    }

    fl_status end_request() {
        if (!opened_ || !outstanding_) return FL_MISUSE;
        bus_->device_end(id_, outstanding_);
        outstanding_ = 0;
        return FL_OK;
    }

    fl_status close() {
        if (!opened_) return FL_OK;
        opened_ = false;
        ++epoch_;
        state_ = FL_LINK_CLOSED;
        outstanding_ = 0;
        bus_->device_close(id_);
        return FL_OK;
    }

    link_counters counters() const { return counters_.snapshot(); }

    // The bus port is shared and keeps being read for the other devices; pausing one device stops its polls. A
    // request already queued or in its turn goes ahead and its reply is delivered (a turn's bytes are bounded by the
    // reply timeout at the line's baud rate).
    void set_paused(bool paused) {
        if (paused && !paused_) ++counters_.pauses;
        paused_ = paused;
    }
    bool paused() const { return paused_; }

    void detach() {
        if (!detached_.exchange(true)) bus_->detached();
        asio::dispatch(ex_, [self = shared_from_this()] { self->close(); });
    }

    // From the bus, on the device's executor.
    void on_bus_state(std::uint64_t epoch, int state, fl_status reason, std::uint64_t request) {
        if (!alive(epoch)) return;
        if (state == FL_LINK_REPLY_TIMEOUT) {
            // The device may have ended this request while the timeout was on its way: then it is not news.
            if (request != outstanding_) return;
            outstanding_ = 0;
            ++counters_.reply_timeouts;
        } else {
            // LOST/FAILED drop the device's request with the port; OPEN starts clean.
            outstanding_ = 0;
            state_ = state;
        }
        if (events_.on_state) events_.on_state(state, reason);
    }

    void on_bus_data(std::uint64_t epoch, std::uint64_t request, const std::vector<std::uint8_t> &bytes) {
        if (!alive(epoch) || request != outstanding_) {
            // Arrived in the device's turn but after it ended the turn: it belongs to no request.
            bus_->count_discarded(bytes.size());
            return;
        }
        counters_.bytes_in += bytes.size();
        if (events_.on_data) events_.on_data(bytes.data(), bytes.size());
    }

    atomic_counters &counters_ref() { return counters_; }

private:
    bool alive(std::uint64_t epoch) const { return !detached_.load() && opened_ && epoch == epoch_; }

    executor ex_;
    link_events events_;
    std::shared_ptr<bus_core> bus_;
    const std::uint64_t id_;
    atomic_counters counters_;
    std::atomic<bool> detached_{false};
    // On the device's executor only.
    bool opened_ = false;
    std::uint64_t epoch_ = 0;
    int state_ = FL_LINK_CLOSED;
    std::uint64_t outstanding_ = 0;  // the request queued or in its turn, 0 when none
    bool paused_ = false;            // kept across reconnects, close() and open()
    std::uint64_t request_seq_ = 0;
};

// ---- bus_core: device requests -------------------------------------------------------------------------------

std::unique_ptr<link> bus_core::attach(executor ex, link_events events) {
    ++attached_;
    auto impl = std::make_shared<bus_link>(std::move(ex), std::move(events), shared_from_this(), ++next_device_);
    return std::make_unique<link_handle<bus_link>>(std::move(impl));
}

void bus_core::device_open(std::uint64_t device, std::uint64_t epoch, std::weak_ptr<bus_link> link, executor ex) {
    asio::post(strand_, [self = shared_from_this(), device, epoch, link = std::move(link), ex = std::move(ex)] {
        auto &d = self->devices_.insert_or_assign(device, device_entry{epoch, link, ex}).first->second;
        switch (self->port_state_) {
        case port_state::open:
            d.told_open = true;
            self->tell(d, FL_LINK_OPEN, FL_OK);
            break;
        case port_state::retrying:
            // The port is down right now; the device hears OPEN when a retry succeeds.
            d.troubled = true;
            self->tell(d, FL_LINK_FAILED, FL_IO);
            break;
        case port_state::closed:
            self->open_port();
            break;
        }
    });
}

void bus_core::device_close(std::uint64_t device) {
    asio::post(strand_, [self = shared_from_this(), device] {
        self->devices_.erase(device);
        self->queue_.remove_if([device](const pending &p) { return p.device == device; });
        if (self->turn_ && self->turn_->req.device == device) {
            // Nothing is on the wire yet in the gap; a write in progress cannot be recalled, so its turn ends with it.
            if (self->turn_->at == phase::writing) self->turn_->req.ended = true;
            else self->finish_turn();
        }
        if (self->devices_.empty() && self->port_state_ != port_state::closed) {
            self->close_port();
            self->port_state_ = port_state::closed;
            self->retry_timer_.cancel();
            self->backoff_.restart();
            spdlog::info("[{}] closed (no device open on the bus)", self->name_);
        }
    });
}

void bus_core::device_request(std::uint64_t device, std::uint64_t request, std::vector<std::uint8_t> bytes,
                              std::chrono::milliseconds timeout) {
    asio::post(strand_, [self = shared_from_this(), device, request, bytes = std::move(bytes), timeout]() mutable {
        const auto d = self->devices_.find(device);
        // The port went down after the device heard OPEN: it has been told LOST, which dropped this request.
        if (self->port_state_ != port_state::open || d == self->devices_.end() || !d->second.told_open) return;
        self->queue_.push_back(pending{device, request, std::move(bytes),
                                       timeout.count() > 0 ? timeout : self->timing_.default_timeout});
        self->maybe_start_turn();
    });
}

void bus_core::device_end(std::uint64_t device, std::uint64_t request) {
    asio::post(strand_, [self = shared_from_this(), device, request] {
        if (self->turn_ && self->turn_->req.device == device && self->turn_->req.request == request) {
            if (self->turn_->at == phase::awaiting) self->finish_turn();
            else self->turn_->req.ended = true;  // e.g. a broadcast: send it, expect nothing
            return;
        }
        for (auto &p : self->queue_)
            if (p.device == device && p.request == request) p.ended = true;
    });
}

void bus_core::tell(device_entry &d, int state, fl_status reason, std::uint64_t request) {
    asio::post(d.ex, [link = d.link, epoch = d.epoch, state, reason, request] {
        if (auto l = link.lock()) l->on_bus_state(epoch, state, reason, request);
    });
}

void bus_core::give(device_entry &d, std::uint64_t request, const std::uint8_t *data, std::size_t size) {
    asio::post(d.ex, [link = d.link, epoch = d.epoch, request, bytes = std::vector<std::uint8_t>(data, data + size)] {
        if (auto l = link.lock()) l->on_bus_data(epoch, request, bytes);
    });
}

// ---- bus_core: the port ----------------------------------------------------------------------------------------

void bus_core::open_port() {
    if (const error_code ec = open_serial_port(port_, settings_, counters_.bytes_discarded)) {
        ++counters_.errors;
        if (backoff_.failed()) spdlog::warn("[{}] cannot open ({}); retrying with backoff", name_, ec.message());
        for (auto &[id, d] : devices_) {
            d.told_open = false;
            d.troubled = true;
            tell(d, FL_LINK_FAILED, FL_IO);
        }
        schedule_reopen();
        return;
    }
    port_state_ = port_state::open;
    ++port_epoch_;
    if (backoff_.succeeded()) ++counters_.reconnects;
    last_turn_end_ = bus_clock::now();
    spdlog::info("[{}] open ({} baud, {}{}{}), {} device(s) on the bus", name_, settings_.baud, settings_.data_bits,
                 settings_.parity, settings_.stop_bits, attached_.load());
    for (auto &[id, d] : devices_) {
        if (d.troubled)
            if (auto l = d.link.lock()) ++l->counters_ref().reconnects;
        d.troubled = false;
        d.told_open = true;
        tell(d, FL_LINK_OPEN, FL_OK);
    }
    do_read();
}

void bus_core::schedule_reopen() {
    port_state_ = port_state::retrying;
    retry_timer_.expires_after(backoff_.next());
    retry_timer_.async_wait([self = shared_from_this()](const error_code &ec) {
        if (!ec && self->port_state_ == port_state::retrying && !self->devices_.empty()) self->open_port();
    });
}

void bus_core::port_failed(const error_code &ec, const char *what) {
    ++counters_.errors;
    spdlog::warn("[{}] port lost ({}: {}); reopening with backoff", name_, what, ec.message());
    close_port();
    backoff_.dropped();
    for (auto &[id, d] : devices_) {
        if (auto l = d.link.lock()) ++l->counters_ref().errors;
        d.troubled = true;
        d.told_open = false;
        tell(d, FL_LINK_LOST, ec == asio::error::timed_out ? FL_TIMEOUT : FL_IO);
    }
    schedule_reopen();
}

// Closes the port and forgets every request: their devices are told LOST (or have closed).
void bus_core::close_port() {
    ++port_epoch_;
    error_code ignored;
    port_.close(ignored);
    turn_timer_.cancel();
    turn_.reset();
    queue_.clear();
}

void bus_core::do_read() {
    port_.async_read_some(asio::buffer(read_buffer_),
                          [self = shared_from_this(), epoch = port_epoch_](const error_code &ec, std::size_t n) {
                              self->on_read(epoch, ec, n);
                          });
}

void bus_core::on_read(std::uint64_t port_epoch, const error_code &ec, std::size_t n) {
    if (port_epoch != port_epoch_) return;
    if (ec) {
        port_failed(ec, "read");
        return;
    }
    counters_.bytes_in += n;
    // The turn owns the line from the moment its request starts going out.
    const auto owner = (turn_ && !turn_->req.ended && turn_->at != phase::gap) ? devices_.find(turn_->req.device)
                                                                               : devices_.end();
    if (owner != devices_.end()) give(owner->second, turn_->req.request, read_buffer_.data(), n);
    else counters_.bytes_discarded += n;
    do_read();
}

// ---- bus_core: turns -------------------------------------------------------------------------------------------

void bus_core::maybe_start_turn() {
    if (port_state_ != port_state::open || turn_ || queue_.empty()) return;
    turn_.emplace(turn{std::move(queue_.front()), phase::gap});
    queue_.pop_front();
    ++turn_seq_;
    const auto ready = last_turn_end_ + timing_.inter_frame_gap;
    if (bus_clock::now() >= ready) {
        send_turn();
        return;
    }
    turn_timer_.expires_at(ready);
    turn_timer_.async_wait([self = shared_from_this(), seq = turn_seq_](const error_code &ec) {
        self->on_turn_timer(seq, phase::gap, ec);
    });
}

void bus_core::send_turn() {
    turn_->at = phase::writing;
    turn_timer_.expires_after(write_deadline);
    turn_timer_.async_wait([self = shared_from_this(), seq = turn_seq_](const error_code &ec) {
        self->on_turn_timer(seq, phase::writing, ec);
    });
    asio::async_write(port_, asio::buffer(turn_->req.bytes),
                      [self = shared_from_this(), epoch = port_epoch_, seq = turn_seq_](const error_code &ec,
                                                                                        std::size_t n) {
                          self->on_turn_written(epoch, seq, ec, n);
                      });
}

void bus_core::on_turn_written(std::uint64_t port_epoch, std::uint64_t seq, const error_code &ec, std::size_t n) {
    if (port_epoch != port_epoch_ || !turn_ || seq != turn_seq_) return;
    if (ec) {
        port_failed(ec, "write");
        return;
    }
    counters_.bytes_out += n;
    if (const auto d = devices_.find(turn_->req.device); d != devices_.end())
        if (auto l = d->second.link.lock()) l->counters_ref().bytes_out += n;
    if (turn_->req.ended) {
        finish_turn();
        return;
    }
    turn_->at = phase::awaiting;
    turn_timer_.expires_after(turn_->req.timeout);
    turn_timer_.async_wait([self = shared_from_this(), seq](const error_code &ec) {
        self->on_turn_timer(seq, phase::awaiting, ec);
    });
}

void bus_core::on_turn_timer(std::uint64_t seq, phase at, const error_code &ec) {
    if (ec || !turn_ || seq != turn_seq_ || turn_->at != at) return;
    switch (at) {
    case phase::gap:
        send_turn();
        break;
    case phase::writing:
        port_failed(asio::error::timed_out, "write deadline");
        break;
    case phase::awaiting:
        // A dead device costs the others one reply timeout, never more.
        ++counters_.reply_timeouts;
        if (const auto d = devices_.find(turn_->req.device); d != devices_.end())
            tell(d->second, FL_LINK_REPLY_TIMEOUT, FL_TIMEOUT, turn_->req.request);
        finish_turn();
        break;
    }
}

void bus_core::finish_turn() {
    turn_.reset();
    turn_timer_.cancel();
    last_turn_end_ = bus_clock::now();
    maybe_start_turn();
}

}  // namespace
}  // namespace detail

std::shared_ptr<rs485_bus> make_rs485_bus(boost::asio::io_context &io, serial_settings settings, bus_timing timing,
                                          backoff retry) {
    return std::make_shared<detail::bus_core>(io, std::move(settings), timing, retry);
}

}  // namespace firelink::transport
