// What the fuzz targets share: feeding bytes to a frame_reader the way a peer's socket delivers them, the
// re-encoding check, and the --write-seeds mode that makes each target's seed corpus with the real encoders.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "firelink/isolation/channel.hpp"
#include "firelink/isolation/messages.hpp"

namespace fuzz {

namespace iso = firelink::isolation;

[[noreturn]] inline void die(const std::string &why) {
    // abort(), not exit(): libFuzzer saves the input as a crash and the run fails.
    std::fprintf(stderr, "fuzz: %s\n", why.c_str());
    std::abort();
}

// Sends `data` as the peer's channel stream and reads it as the host's read loop does (runner_supervisor.cpp:
// fill() when the socket is readable, then try_next() while a whole message is buffered). The stream goes in
// chunks of varying size, chosen from the input's length so that a crash replays exactly: frames arrive split at
// any byte, several per read, or larger than the reader's first buffer. `on_message` returns false to stop (the
// peer is cut off, as on a malformed message).
inline void feed(const std::uint8_t *data, std::size_t size, bool borrow, std::uint32_t max_frame,
                 const std::function<bool(const msgpack::object &)> &on_message) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        die(std::string("socketpair: ") + std::strerror(errno));
    iso::frame_reader in(sv[0], borrow, max_frame);
    msgpack::object_handle m;
    std::uint32_t rng = static_cast<std::uint32_t>(size) * 2654435761u + 1;
    std::size_t off = 0;
    bool shut = false;
    for (;;) {
        ssize_t sent = 0;
        if (off < size) {
            rng = rng * 1103515245u + 12345u;
            const unsigned pick = (rng >> 16) & 7;
            std::size_t chunk = pick < 4 ? 1 + ((rng >> 20) & 15) : pick < 6 ? 4096 : pick < 7 ? 70000 : size;
            if (chunk > size - off) chunk = size - off;
            sent = ::send(sv[1], data + off, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) die(std::string("send: ") + std::strerror(errno));
            if (sent > 0) off += static_cast<std::size_t>(sent);
        }
        if (off == size && !shut) {
            ::shutdown(sv[1], SHUT_WR);  // the peer is done: the reader sees the end of stream after the bytes
            shut = true;
        }
        int queued_before = 0, queued_after = 0;
        ::ioctl(sv[0], FIONREAD, &queued_before);
        const int r = in.fill();
        ::ioctl(sv[0], FIONREAD, &queued_after);
        bool stop = r <= 0;
        while (!stop && in.try_next(m)) stop = !on_message(m.get());
        if (stop || in.failed()) break;
        // Neither side moved: the reader has stopped reading a stream that still has bytes (the host would hang
        // on this runner, or spin at 100% CPU in its poll loop).
        if (sent <= 0 && queued_before > 0 && queued_after == queued_before)
            die("frame_reader stopped reading with " + std::to_string(queued_before) + " bytes queued");
    }
    ::close(sv[0]);
    ::close(sv[1]);
}

template <class Message>
std::string bytes_of(const Message &m) {
    auto f = std::visit([](const auto &x) { return iso::encoded(x); }, m);
    const auto &b = f.finish();
    return std::string(b.data(), b.size());
}

// What was decoded, encoded again with the real encoder, must decode (an encoder's output is always what the peer
// accepts) and encode to the same bytes (no field is lost or changed on the way).
template <class Message>
void check_round_trip(const Message &decoded, Message (*decode)(const msgpack::object &)) {
    const std::string once = bytes_of(decoded);
    const auto h = msgpack::unpack(once.data() + 4, once.size() - 4);
    std::string twice;
    try {
        twice = bytes_of(decode(h.get()));
    } catch (const iso::malformed &e) {
        die(std::string("the decoder refuses what the encoder made of a decoded message: ") + e.what());
    }
    if (once != twice) die("a decoded message encodes differently after one more decode");
}

// Feeds `data` as a peer's stream (feed) and decodes every message with `decode`; `malformed` ends the stream, as
// the reading side cuts the peer off. Each decoded message goes to `inspect`, then through check_round_trip.
template <class Message>
void decode_stream(const std::uint8_t *data, std::size_t size, bool borrow, std::uint32_t max_frame,
                   Message (*decode)(const msgpack::object &), void (*inspect)(const Message &) = nullptr) {
    feed(data, size, borrow, max_frame, [&](const msgpack::object &o) {
        Message m;
        try {
            m = decode(o);
        } catch (const iso::malformed &) {
            return false;  // the expected answer to bad input
        }
        if (inspect) inspect(m);
        check_round_trip(m, decode);
        return true;
    });
}

// `target --write-seeds DIR` writes the target's seed corpus (one file per seed) and exits: called from
// LLVMFuzzerInitialize, before libFuzzer reads its own flags.
inline void write_seeds_if_asked(int *argc, char ***argv,
                                 const std::vector<std::pair<std::string, std::string>> &(*make)()) {
    for (int i = 1; i + 1 < *argc; ++i) {
        if (std::string_view((*argv)[i]) != "--write-seeds") continue;
        const std::string dir = (*argv)[i + 1];
        for (const auto &[name, bytes] : make()) {
            std::ofstream out(dir + "/" + name, std::ios::binary);
            out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
            if (!out) die("cannot write the seed " + dir + "/" + name);
        }
        std::exit(0);
    }
}

// A target's seeds and, last, "stream": all of them one after another, as one peer's session sends them.
inline std::vector<std::pair<std::string, std::string>> with_session(
    std::vector<std::pair<std::string, std::string>> s) {
    std::string stream;
    for (const auto &[name, bytes] : s) stream += bytes;
    s.emplace_back("stream", stream);
    return s;
}

template <class M>
std::string frame_bytes(const M &m) {
    auto f = iso::encoded(m);
    const auto &b = f.finish();
    return std::string(b.data(), b.size());
}

}  // namespace fuzz

// The target's LLVMFuzzerInitialize: --write-seeds DIR writes what `seeds` (a function returning the seed list)
// makes.
#define FUZZ_SEEDS(seeds)                                          \
    extern "C" int LLVMFuzzerInitialize(int *argc, char ***argv) { \
        fuzz::write_seeds_if_asked(argc, argv, seeds);             \
        return 0;                                                  \
    }
