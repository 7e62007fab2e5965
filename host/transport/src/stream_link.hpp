// A link over a byte stream (a serial port or a TCP socket): the read loop, the write loop with its deadline, and
// what happens when the stream breaks. How the stream gets opened, and what to do after it breaks, is the subclass's.
#pragma once

#include <sys/ioctl.h>

#include <array>

#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "link_core.hpp"

namespace firelink::transport::detail {

template <class Stream>
class stream_link : public link_core {
public:
    stream_link(executor ex, link_events events, std::string name)
        : link_core(ex, std::move(events), std::move(name)), stream_(ex), write_timer_(ex) {}

protected:
    // The stream was closed after a drop or by close(); subclasses reconnect (or wait to be handed a connection).
    virtual void on_lost() = 0;

    // The stream is open: report OPEN, hand over `first` (bytes read before the link owned the stream), start reading.
    void begin_session(const std::vector<std::uint8_t> &first = {}) {
        ++session_;
        connected_ = true;
        const std::uint64_t epoch = epoch_;
        set_state(FL_LINK_OPEN, FL_OK);
        if (!alive(epoch) || !connected_) return;
        if (!first.empty()) {
            // Read before the link owned the stream: delivered even when paused (read bytes are never held back
            // or dropped); the pause stops the next read.
            deliver(first.data(), first.size());
            if (!alive(epoch) || !connected_) return;
        }
        maybe_read();
        send_next();
    }

    // The stream broke (read/write error, EOF, write deadline) or was replaced: report LOST and let the subclass act.
    void lose(const error_code &ec, const char *what) {
        end_session();
        ++counters_.errors;
        spdlog::warn("[{}] connection lost ({}: {})", name_, what, ec.message());
        const std::uint64_t epoch = epoch_;
        set_state(FL_LINK_LOST, ec == asio::error::timed_out ? FL_TIMEOUT : FL_IO);
        if (alive(epoch)) on_lost();
    }

    // Closes the stream; completions of the old session become stale.
    void end_session() {
        ++session_;
        connected_ = false;
        writing_ = false;
        reading_ = false;  // the old session's read completes stale
        write_timer_.cancel();
        reset_session();
        count_unread();
        error_code ignored;
        stream_.close(ignored);
    }

    void send_next() override {
        if (!connected_ || writing_ || queue_.empty()) return;
        writing_ = true;
        ++write_seq_;
        write_timer_.expires_after(write_deadline);
        write_timer_.async_wait([self = self<stream_link>(), epoch = epoch_, session = session_,
                                 write = write_seq_](const error_code &ec) {
            if (ec || !self->current(epoch, session) || !self->writing_ || write != self->write_seq_) return;
            self->lose(asio::error::timed_out, "write deadline");
        });
        asio::async_write(stream_, asio::buffer(queue_.front()),
                          [self = self<stream_link>(), epoch = epoch_, session = session_](const error_code &ec,
                                                                                           std::size_t n) {
                              self->on_write(epoch, session, ec, n);
                          });
    }

    bool connected() const { return connected_; }

    void resume_reading() override { maybe_read(); }

    Stream stream_;

private:
    // Bytes the device sent that are still in the kernel when the stream closes (typically: it was paused and the
    // connection ended, or close() was called) go with the stream. Count them, so bytes_discarded tells the truth.
    void count_unread() {
        if (!stream_.is_open()) return;
        int unread = 0;
        if (::ioctl(stream_.native_handle(), FIONREAD, &unread) != 0 || unread <= 0) return;
        counters_.bytes_discarded += static_cast<std::uint64_t>(unread);
        spdlog::warn("[{}] {} unread byte(s) from the device closed with the {}", name_, unread,
                     paused_ ? "connection while paused" : "connection");
    }

    bool current(std::uint64_t epoch, std::uint64_t session) const { return alive(epoch) && session == session_; }

    // One read at a time, into the fixed buffer, and none while paused: the bytes stay in the kernel (the TCP window
    // closes; the tty buffer fills) until resume_reading().
    void maybe_read() {
        if (!connected_ || reading_ || paused_) return;
        reading_ = true;
        stream_.async_read_some(asio::buffer(read_buffer_),
                                [self = self<stream_link>(), epoch = epoch_, session = session_](const error_code &ec,
                                                                                                 std::size_t n) {
                                    self->on_read(epoch, session, ec, n);
                                });
    }

    void on_read(std::uint64_t epoch, std::uint64_t session, const error_code &ec, std::size_t n) {
        if (!current(epoch, session)) return;
        reading_ = false;
        if (ec) {
            lose(ec, "read");
            return;
        }
        // Delivered even if the device paused since the read began: the bytes are out of the kernel now.
        deliver(read_buffer_.data(), n);
        if (current(epoch, session)) maybe_read();
    }

    void on_write(std::uint64_t epoch, std::uint64_t session, const error_code &ec, std::size_t n) {
        if (!current(epoch, session)) return;
        writing_ = false;
        write_timer_.cancel();
        if (ec) {
            lose(ec, "write");
            return;
        }
        counters_.bytes_out += n;
        queued_bytes_ -= queue_.front().size();
        queue_.pop_front();
        send_next();
    }

    asio::steady_timer write_timer_;
    std::array<std::uint8_t, 4096> read_buffer_{};
    std::uint64_t session_ = 0;
    std::uint64_t write_seq_ = 0;  // a deadline that fired as its write completed must not hit the next write
    bool connected_ = false;
    bool writing_ = false;
    bool reading_ = false;  // a read of this session is waiting on the stream
};

}  // namespace firelink::transport::detail
