// The channel between firelink-host and one firelink-runner: a Unix stream socket carrying frames, each a 4-byte
// little-endian length and one msgpack array whose first element is the message type (docs/abi.md, "Drivers out of
// process", lists them; messages.hpp types, encodes and decodes each).
//
// frame_writer takes frames from any thread. When nothing is queued it sends at once, without blocking, from the
// calling thread (one thread wake-up less per event at moderate rates); otherwise it queues them for its own thread,
// which sends many per write(). An emitting thread never waits for the socket. frame_reader reads them back on one
// thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <msgpack.hpp>

namespace firelink::isolation {

// Message types. Never renumber one: a host and a runner of the same build speak to each other, but a type number
// is also what a log line and a test name.
enum class msg : std::uint8_t {
    // host -> runner
    create = 1,    // [1, call, device, driver_id, device_id, config(bin), wire_kind, unit, [condition, ...]]
    start = 2,     // [2, call, device]
    stop = 3,      // [3, call, device]
    destroy = 4,   // [4, call, device]
    command = 5,   // [5, call, device, command(bin)]
    identify = 6,  // [6, call, driver_id, bytes(bin)]
    data = 7,      // [7, device, bytes(bin)]            the wire's on_data
    state = 8,     // [8, device, link_state, reason]    the wire's on_state
    ping = 9,      // [9, n]                             answered by pong from the runner's driver thread
    admit = 10,    // [10, [kind, ...]]                  the event kinds the host now answers FL_BUSY for
    room = 11,     // [11, lane]                         the host made room in a ring the runner found full
    committed = 12,  // [12, device, through]            the device's events 1..through are committed
    // runner -> host
    hello = 20,    // [20, plugin_info map, can_identify] the plugin is loaded, negotiated and initialised
    refused = 21,  // [21, refusal, detail]              it is not
    reply = 22,    // [22, call, status, text]
    emit = 23,     // retired: events go through the event rings (event_ring.hpp); a runner that sends one is killed
    log = 24,      // [24, device (0: the plugin), level, text]
    wire = 25,     // [25, device, op, bytes(bin), timeout_ms]
    pong = 26,     // [26, n]
    slow = 27,     // [27, device, call name, ms]        a call into the driver took longer than the warning bound
    consumed = 28, // [28, device, bytes]                credit back: the driver was given that many of the wire's bytes
};

// The wire operations a runner asks the host to do (msg::wire).
enum class wire_op : std::uint8_t { open = 1, write = 2, request = 3, end_request = 4, close = 5 };

// Builds one frame: the length is filled in by finish(). messages.hpp encodes every message; nothing else packs one.
class frame {
public:
    // Most frames are an event or a call: start small (sbuffer's default is 8 KiB, allocated per frame).
    frame() : buf_(256) { buf_.write("\0\0\0\0", 4); }
    frame(frame &&) = default;
    // A packer appending to this frame (it holds only a reference: cheap to make for every call).
    msgpack::packer<msgpack::sbuffer> pack() { return msgpack::packer<msgpack::sbuffer>(buf_); }
    // Writes the length; returns the bytes to send.
    const msgpack::sbuffer &finish();

private:
    msgpack::sbuffer buf_;
};

class frame_writer {
public:
    // Owns nothing: the caller closes fd after destroying the writer. `max_pending` bytes may wait to be sent;
    // beyond that send() refuses.
    frame_writer(int fd, std::size_t max_pending);
    ~frame_writer();  // sends what is queued (until the peer stops reading), then stops
    frame_writer(const frame_writer &) = delete;
    frame_writer &operator=(const frame_writer &) = delete;

    // Queues a finished frame. False when the channel is broken or `max_pending` bytes are already waiting (a peer
    // that does not read): the frame is not queued.
    bool send(const msgpack::sbuffer &frame);
    bool send(frame &f) { return send(f.finish()); }
    // As send, but queues even past max_pending (replies and control messages, which are few and must not be lost
    // to a burst of events, and wire data, which the data credit bounds).
    bool send_always(const msgpack::sbuffer &frame);
    bool send_always(frame &f) { return send_always(f.finish()); }
    bool broken() const;
    std::size_t pending() const;

private:
    bool queue(const msgpack::sbuffer &frame, bool always);
    bool write_some(const char *data, std::size_t size, std::size_t &off);  // mutex_ held; false: broken
    void run();

    int fd_;
    std::size_t max_pending_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<char> queued_;
    bool in_flight_ = false;  // the writer thread is sending a batch outside the lock
    bool stop_ = false;
    bool broken_ = false;
    std::thread thread_;
};

class frame_reader {
public:
    // With `borrow`, strings and binaries of a message point into the reader's buffer (no copy): the message is valid
    // only until the next call of next(). Without, it owns its bytes.
    // A frame longer than `max_size`, or a message that breaks msgpack's limits below (a 5-byte header claiming
    // a billion elements), is malformed: next() fails without allocating for it.
    explicit frame_reader(int fd, bool borrow = false, std::uint32_t max_size = 16u << 20)
        : fd_(fd), borrow_(borrow), max_size_(max_size) {}
    // The next message; false at end of stream, on a read error, or on a malformed frame (then `error` says which).
    bool next(msgpack::object_handle &out);
    // For a reader that polls: the next message if one is whole in the buffer (false: read more, or failed()).
    bool try_next(msgpack::object_handle &out);
    // One read into the buffer: 1 (read something, or nothing to read on a non-blocking descriptor), 0 at end of
    // stream, -1 on an error.
    int fill();
    bool failed() const { return failed_; }  // a malformed frame: the stream cannot be read further
    const char *error() const { return error_; }
    // The bytes of the last frame next() returned, length prefix included (what its sender counted).
    std::size_t last_frame_size() const { return last_size_; }

private:
    int fd_;
    bool borrow_;
    std::size_t last_size_ = 0;
    bool failed_ = false;
    bool fail(const char *why);
    std::uint32_t max_size_;
    std::vector<char> buf_ = std::vector<char>(1 << 16);
    std::size_t begin_ = 0, end_ = 0;
    const char *error_ = "end of stream";
};


}  // namespace firelink::isolation
