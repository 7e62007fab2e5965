#include "firelink/isolation/channel.hpp"

#include <cerrno>
#include <cstring>

#include <sys/socket.h>
#include <unistd.h>

namespace firelink::isolation {

const msgpack::sbuffer &frame::finish() {
    const auto n = static_cast<std::uint32_t>(buf_.size() - 4);
    char *p = buf_.data();
    p[0] = static_cast<char>(n & 0xff);
    p[1] = static_cast<char>((n >> 8) & 0xff);
    p[2] = static_cast<char>((n >> 16) & 0xff);
    p[3] = static_cast<char>((n >> 24) & 0xff);
    return buf_;
}

frame_writer::frame_writer(int fd, std::size_t max_pending) : fd_(fd), max_pending_(max_pending) {
    thread_ = std::thread([this] { run(); });
}

frame_writer::~frame_writer() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

// Sends from `off` without blocking; stops at EAGAIN. mutex_ held.
bool frame_writer::write_some(const char *data, std::size_t size, std::size_t &off) {
    while (off < size) {
        const ssize_t n = ::send(fd_, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
        if (n <= 0) {
            broken_ = true;
            cv_.notify_all();
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

bool frame_writer::queue(const msgpack::sbuffer &f, bool always) {
    std::lock_guard lock(mutex_);
    if (broken_ || stop_) return false;
    if (!always && queued_.size() + f.size() > max_pending_) return false;
    std::size_t off = 0;
    if (queued_.empty() && !in_flight_) {
        // Nothing ahead of it: straight to the socket, never waiting for room.
        if (!write_some(f.data(), f.size(), off)) return false;
        if (off == f.size()) return true;
    }
    const bool wake = queued_.empty();
    queued_.insert(queued_.end(), f.data() + off, f.data() + f.size());
    if (wake) cv_.notify_all();
    return true;
}

bool frame_writer::send(const msgpack::sbuffer &f) { return queue(f, false); }
bool frame_writer::send_always(const msgpack::sbuffer &f) { return queue(f, true); }

bool frame_writer::broken() const {
    std::lock_guard lock(mutex_);
    return broken_;
}

std::size_t frame_writer::pending() const {
    std::lock_guard lock(mutex_);
    return queued_.size();
}

void frame_writer::run() {
    std::vector<char> sending;
    std::unique_lock lock(mutex_);
    for (;;) {
        cv_.wait(lock, [this] { return stop_ || !queued_.empty(); });
        if (queued_.empty() || broken_) return;  // stop_ with nothing left (or nobody to send to)
        sending.swap(queued_);
        queued_.clear();
        in_flight_ = true;
        lock.unlock();
        std::size_t off = 0;
        bool ok = true;
        while (off < sending.size()) {
            const ssize_t n = ::send(fd_, sending.data() + off, sending.size() - off, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                ok = false;
                break;
            }
            off += static_cast<std::size_t>(n);
        }
        sending.clear();
        lock.lock();
        in_flight_ = false;
        if (!ok) {
            broken_ = true;
            queued_.clear();
            return;
        }
    }
}

bool frame_reader::try_next(msgpack::object_handle &out) {
    if (failed_) return false;
    const std::size_t have = end_ - begin_;
    if (have < 4) return false;
    const auto *p = reinterpret_cast<const unsigned char *>(buf_.data() + begin_);
    const std::uint32_t n = p[0] | (p[1] << 8) | (p[2] << 16) | (std::uint32_t(p[3]) << 24);
    if (n == 0 || n > max_size_) return fail("a frame length out of bounds");
    if (have < 4 + std::size_t(n)) {
        if (buf_.size() < 4 + std::size_t(n)) buf_.resize(4 + std::size_t(n));
        return false;
    }
    try {
        std::size_t off = 0;
        bool referenced = false;
        const auto borrow = [](msgpack::type::object_type, std::size_t, void *) { return true; };
        // No container may claim more elements than a frame has bytes, nor nest deeper than any message does:
        // msgpack allocates for a claimed size before it reads the elements.
        const std::size_t most = std::min<std::size_t>(n, 1u << 16);
        const msgpack::unpack_limit limit(most, most, n, n, 0, 16);
        out = msgpack::unpack(buf_.data() + begin_ + 4, n, off, referenced, borrow_ ? +borrow : nullptr, nullptr,
                              limit);
        if (off != n) return fail("a frame that is not msgpack");  // bytes after its message
    } catch (const std::exception &) {
        return fail("a frame that is not msgpack");  // or breaks the limits above
    }
    if (out.get().type != msgpack::type::ARRAY || out.get().via.array.size == 0 ||
        out.get().via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER)
        return fail("a frame that is not a typed message");
    begin_ += 4 + n;
    last_size_ = 4 + std::size_t(n);
    return true;
}

int frame_reader::fill() {
    if (begin_ > 0) {  // keep the partial frame at the front
        std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    if (end_ == buf_.size()) return 1;  // try_next grows it when a frame needs more
    for (;;) {
        const ssize_t r = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        if (r <= 0) {
            error_ = r == 0 ? "end of stream" : "a read error";
            return r == 0 ? 0 : -1;
        }
        end_ += static_cast<std::size_t>(r);
        return 1;
    }
}

bool frame_reader::next(msgpack::object_handle &out) {
    for (;;) {
        if (try_next(out)) return true;
        if (failed_ || fill() <= 0) return false;
    }
}

bool frame_reader::fail(const char *why) {
    error_ = why;
    failed_ = true;
    return false;
}

}  // namespace firelink::isolation
