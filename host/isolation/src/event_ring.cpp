#include "firelink/isolation/event_ring.hpp"

#include <cerrno>
#include <cstring>
#include <new>
#include <system_error>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <firelink/core/event_check.hpp>

namespace firelink::isolation {

namespace {

constexpr std::uint32_t magic = 0x464c5247;  // "FLRG"
constexpr std::uint32_t version = 1;

std::size_t padded(std::size_t n) { return (n + 7) & ~std::size_t(7); }

void put32(unsigned char *p, std::uint32_t v) { std::memcpy(p, &v, 4); }
void put64(unsigned char *p, std::uint64_t v) { std::memcpy(p, &v, 8); }

}  // namespace

ring_memory ring_memory::create(std::size_t capacity) {
    // At least twice the largest record: an empty lane must take any valid event wherever its head is (a record
    // that does not fit before the end skips the rest, up to a record's size less 8; a 64 or 128 KiB lane
    // answered FL_BUSY forever for an event near max_event_bytes).
    std::size_t cap = 64 << 10;
    while (cap < capacity || cap < 2 * (ring_record_header + core::max_event_bytes)) cap <<= 1;
    ring_memory m;
    m.fd_ = ::memfd_create("firelink-events", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (m.fd_ < 0) throw std::system_error(errno, std::generic_category(), "memfd_create");
    m.capacity_ = cap;
    m.size_ = header_bytes + lane_count * cap;
    // Sealed at its size: a runner cannot shrink it under the host's mapping (SIGBUS in the host).
    if (::ftruncate(m.fd_, static_cast<off_t>(m.size_)) != 0 ||
        ::fcntl(m.fd_, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        throw std::system_error(errno, std::generic_category(), "sizing the event rings");
    m.base_ = ::mmap(nullptr, m.size_, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd_, 0);
    if (m.base_ == MAP_FAILED) {
        m.base_ = nullptr;
        throw std::system_error(errno, std::generic_category(), "mapping the event rings");
    }
    auto *h = new (m.base_) header{};
    h->magic = magic;
    h->version = version;
    h->capacity = cap;
    return m;
}

ring_memory ring_memory::attach(int fd) {
    ring_memory m;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(header_bytes))
        throw std::runtime_error("the event rings' descriptor is not a ring");
    m.fd_ = fd;
    m.size_ = static_cast<std::size_t>(st.st_size);
    m.base_ = ::mmap(nullptr, m.size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m.base_ == MAP_FAILED) {
        m.base_ = nullptr;
        throw std::system_error(errno, std::generic_category(), "mapping the event rings");
    }
    const auto &h = m.head();
    if (h.magic != magic || h.version != version || h.capacity == 0 ||
        header_bytes + lane_count * h.capacity != m.size_)
        throw std::runtime_error("the event rings have an unknown layout");
    m.capacity_ = h.capacity;
    return m;
}

ring_memory::ring_memory(ring_memory &&o) noexcept { *this = std::move(o); }

ring_memory &ring_memory::operator=(ring_memory &&o) noexcept {
    if (this != &o) {
        this->~ring_memory();
        fd_ = o.fd_, base_ = o.base_, capacity_ = o.capacity_, size_ = o.size_;
        o.fd_ = -1, o.base_ = nullptr;
    }
    return *this;
}

ring_memory::~ring_memory() {
    if (base_) ::munmap(base_, size_);
    if (fd_ >= 0) ::close(fd_);
    base_ = nullptr;
    fd_ = -1;
}

// ---- runner ------------------------------------------------------------------------------------------------------

bool ring_producer::room(lane l, std::size_t size) const {
    const auto &lh = m_.head().lanes[static_cast<int>(l)];
    const std::uint64_t cap = m_.capacity();
    const std::uint64_t head = lh.head.load(std::memory_order_relaxed);
    const std::uint64_t tail = lh.tail.load(std::memory_order_acquire);
    const std::uint64_t rec = ring_record_header + padded(size);
    const std::uint64_t to_end = cap - (head & (cap - 1));
    const std::uint64_t need = rec + (to_end < rec ? to_end : 0);
    return head - tail + need <= cap;
}

bool ring_producer::push(lane l, std::uint64_t device, std::uint64_t number, std::uint64_t order,
                         const std::uint8_t *event, std::size_t size) {
    if (size > core::max_event_bytes || !room(l, size)) return false;
    auto &lh = m_.head().lanes[static_cast<int>(l)];
    const std::uint64_t cap = m_.capacity();
    std::uint64_t head = lh.head.load(std::memory_order_relaxed);
    unsigned char *data = m_.data(l);
    const std::uint64_t rec = ring_record_header + padded(size);
    std::uint64_t off = head & (cap - 1);
    if (cap - off < rec) {  // no room before the end: mark the rest skipped, begin again at 0
        put32(data + off, ring_wrap);
        head += cap - off;
        off = 0;
    }
    put32(data + off, static_cast<std::uint32_t>(size));
    put32(data + off + 4, 0);
    put64(data + off + 8, device);
    put64(data + off + 16, number);
    put64(data + off + 24, order);
    if (size) std::memcpy(data + off + ring_record_header, event, size);
    // seq_cst: the host's "sleeping" flag and this head are a Dekker pair (neither side misses the other).
    lh.head.store(head + rec, std::memory_order_seq_cst);
    return true;
}

// ---- host --------------------------------------------------------------------------------------------------------

const ring_record *ring_consumer::front() {
    if (front_size_) return &front_;
    const std::uint64_t cap = m_.capacity();
    const unsigned char *data = m_.data(lane_);
    for (;;) {
        const std::uint64_t head = m_.head().lanes[static_cast<int>(lane_)].head.load(std::memory_order_acquire);
        if (head == tail_) return nullptr;
        if (head - tail_ > cap || head < tail_)
            throw ring_corrupt(std::string("the ") + to_string(lane_) + " ring's head is outside the ring");
        const std::uint64_t off = tail_ & (cap - 1);
        const std::uint64_t to_end = cap - off;
        std::uint32_t size = 0;
        if (to_end < 4) throw ring_corrupt("a record begins too near the ring's end");
        std::memcpy(&size, data + off, 4);
        if (size == ring_wrap) {
            if (head - tail_ < to_end) throw ring_corrupt("a wrap past the ring's head");
            tail_ += to_end;
            m_.head().lanes[static_cast<int>(lane_)].tail.store(tail_, std::memory_order_release);
            continue;
        }
        const std::uint64_t rec = ring_record_header + padded(size);
        if (size > core::max_event_bytes || rec > to_end || rec > head - tail_)
            throw ring_corrupt("a record of " + std::to_string(size) + " bytes in the " + to_string(lane_) +
                               " ring that does not fit where it is");
        // Copied out first: the bytes below are read from the copy only.
        unsigned char hdr[ring_record_header];
        std::memcpy(hdr, data + off, ring_record_header);
        std::memcpy(&front_.device, hdr + 8, 8);
        std::memcpy(&front_.number, hdr + 16, 8);
        std::memcpy(&front_.order, hdr + 24, 8);
        front_.event.assign(data + off + ring_record_header, data + off + ring_record_header + size);
        front_size_ = rec;
        return &front_;
    }
}

void ring_consumer::pop() {
    if (!front_size_ && !front()) return;
    tail_ += front_size_;
    front_size_ = 0;
    m_.head().lanes[static_cast<int>(lane_)].tail.store(tail_, std::memory_order_release);
}

std::uint64_t ring_consumer::waiting_bytes() const {
    const std::uint64_t head = m_.head().lanes[static_cast<int>(lane_)].head.load(std::memory_order_acquire);
    return head < tail_ ? 0 : std::min<std::uint64_t>(head - tail_, m_.capacity());
}

bool ring_consumer::empty() {
    if (front_size_) return false;
    return m_.head().lanes[static_cast<int>(lane_)].head.load(std::memory_order_acquire) == tail_;
}

}  // namespace firelink::isolation
