// Events from a runner to the host, one ring per lane, in memory both processes map (a memfd the host makes before
// it starts the runner). Why rings and not the channel's socket:
//   - emit answers FL_OK only once the event is in the ring, and the host keeps its mapping when the runner dies, so
//     what emit answered FL_OK for survives a runner's kill -9 (FL-HOST-30): the host reads it afterwards;
//   - one ring per lane: an alarm never waits behind the runner's telemetry or events (FL-HOST-31);
//   - the ring is the bound: a full lane is FL_BUSY in the runner, and an event the host's queue refuses stays in
//     the ring (the lane waits) instead of in host memory (FL-HOST-32). No syscall per event.
//
// One producer per ring (the runner, under its emit lock) and one consumer (the host, under its lock). Positions
// are byte counts that only grow; a record is [u32 size][u32 0][u64 device][u64 number][u64 order][event, padded to
// 8]; a size of `wrap` means "continue at the ring's start". The runner owns `head`, the host `tail`. `order` counts
// the runner's emits across all lanes: the host takes records in that order, so a device's events keep the order
// they were emitted in, except that a lane the queue refuses is passed by the others (an alarm never waits behind
// refused faults or telemetry) — just as in the host's process, where the refused emit is the driver's to retry.
//
// The host never trusts the shared memory: it keeps its own tail, checks every head and record against the ring's
// bounds, and copies a record out before it reads it (the runner could change it meanwhile). A violation is
// `ring_corrupt`: the host kills the runner and says why.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "firelink/isolation/messages.hpp"

namespace firelink::isolation {

struct ring_corrupt : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The shared mapping: a header and `lane_count` rings of `capacity` bytes each.
class ring_memory {
public:
    // Host: makes the memfd (capacity rounded up to a power of two, at least 256 KiB: room for any event in an
    // empty lane).
    static ring_memory create(std::size_t capacity);
    // Runner: maps the memfd it was given; throws std::runtime_error when it is not a ring.
    static ring_memory attach(int fd);
    ring_memory(ring_memory &&other) noexcept;
    ring_memory &operator=(ring_memory &&other) noexcept;
    ring_memory(const ring_memory &) = delete;
    ~ring_memory();

    int fd() const { return fd_; }
    std::size_t capacity() const { return capacity_; }

    struct lane_header {
        alignas(64) std::atomic<std::uint64_t> head;  // runner: bytes published
        alignas(64) std::atomic<std::uint64_t> tail;  // host: bytes consumed (the runner reads it for room)
    };
    struct header {
        std::uint32_t magic;
        std::uint32_t version;
        std::uint64_t capacity;
        lane_header lanes[lane_count];
        alignas(64) std::atomic<std::uint32_t> host_sleeping;  // the host waits on the bell: ring it after a push
        alignas(64) std::atomic<std::uint32_t> runner_waiting;  // a lane was full in the runner: tell it of room
    };
    header &head() const { return *static_cast<header *>(base_); }
    unsigned char *data(lane l) const {
        return static_cast<unsigned char *>(base_) + header_bytes + static_cast<std::size_t>(l) * capacity_;
    }
    static constexpr std::size_t header_bytes = 4096;

private:
    ring_memory() = default;
    int fd_ = -1;
    void *base_ = nullptr;
    std::size_t capacity_ = 0, size_ = 0;
};

inline constexpr std::uint32_t ring_wrap = 0xffffffffu;
inline constexpr std::size_t ring_record_header = 32;

// The runner's side: pushes records; one thread at a time (the runner's emit lock).
class ring_producer {
public:
    explicit ring_producer(ring_memory &m) : m_(m) {}
    // False when the lane has no room for it now (FL_BUSY): nothing was written.
    bool push(lane l, std::uint64_t device, std::uint64_t number, std::uint64_t order, const std::uint8_t *event,
              std::size_t size);
    // Whether a record of `size` bytes would fit now.
    bool room(lane l, std::size_t size) const;

private:
    ring_memory &m_;
};

// One record as the host copied it out.
struct ring_record {
    std::uint64_t device = 0, number = 0, order = 0;
    std::vector<std::uint8_t> event;
};

// The host's side of one lane: a private tail, the front record copied out.
class ring_consumer {
public:
    ring_consumer(ring_memory &m, lane l) : m_(m), lane_(l) {}
    // The front record, or nullptr when the lane is empty. Throws ring_corrupt.
    const ring_record *front();
    // Consumes the front record and publishes the new tail (room for the runner).
    void pop();
    bool empty();
    // Bytes the runner published that the host has not consumed yet (events waiting in this lane). Read for stats:
    // a head outside the ring shows as the whole ring, and front() reports it.
    std::uint64_t waiting_bytes() const;

private:
    ring_memory &m_;
    lane lane_;
    std::uint64_t tail_ = 0;
    std::uint64_t front_size_ = 0;  // bytes of the front record (0: none copied out)
    ring_record front_;
};

}  // namespace firelink::isolation
