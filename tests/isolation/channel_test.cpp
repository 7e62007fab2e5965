// The channel between firelink-host and firelink-runner (host/isolation/channel.hpp) over a real socket pair:
// frames arrive whole and in order however the bytes are cut, a peer that sends garbage is told apart from one that
// ends, and a writer whose peer stops reading refuses rather than grows without bound.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <vector>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include <firelink/isolation/channel.hpp>
#include <firelink/isolation/event_ring.hpp>

namespace iso = firelink::isolation;

namespace {

struct socket_pair {
    int fd[2] = {-1, -1};
    socket_pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0); }
    ~socket_pair() {
        for (int f : fd)
            if (f >= 0) ::close(f);
    }
    void close(int i) {
        ::close(fd[i]);
        fd[i] = -1;
    }
};

msgpack::sbuffer message(int type, std::uint64_t n, const std::string &text) {
    iso::frame f;
    f.pack().pack_array(3);
    f.pack().pack(type), f.pack().pack(n), f.pack().pack(text);
    const auto &b = f.finish();
    msgpack::sbuffer copy;
    copy.write(b.data(), b.size());
    return copy;
}

void write_all(int fd, const char *p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        ASSERT_GT(w, 0);
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

}  // namespace

TEST(Channel, FramesArriveWholeAndInOrder) {
    socket_pair s;
    constexpr int count = 20000;
    std::thread sender([&] {
        iso::frame_writer out(s.fd[0], 64 << 20);
        for (int i = 0; i < count; ++i)
            ASSERT_TRUE(out.send_always(message(23, i, std::string(i % 300, 'x'))));
    });  // the writer's destructor sends what is queued
    iso::frame_reader in(s.fd[1], true);
    msgpack::object_handle m;
    for (int i = 0; i < count; ++i) {
        ASSERT_TRUE(in.next(m)) << in.error() << " at frame " << i;
        const auto &a = m.get().via.array;
        ASSERT_EQ(a.size, 3u);
        EXPECT_EQ(a.ptr[0].as<int>(), 23);
        ASSERT_EQ(a.ptr[1].as<std::uint64_t>(), static_cast<std::uint64_t>(i));
        EXPECT_EQ(a.ptr[2].as<std::string>().size(), static_cast<std::size_t>(i % 300));
    }
    sender.join();
    s.close(0);
    EXPECT_FALSE(in.next(m));
    EXPECT_STREQ(in.error(), "end of stream");
}

TEST(Channel, BytesCutAnywhereStillMakeTheSameFrames) {
    socket_pair s;
    std::string stream;
    for (int i = 0; i < 50; ++i) {
        const auto b = message(7, i, std::string(i * 7, 'b'));
        stream.append(b.data(), b.size());
    }
    std::thread sender([&] {
        for (std::size_t off = 0, cut = 1; off < stream.size(); off += cut, cut = cut % 13 + 1) {
            write_all(s.fd[0], stream.data() + off, std::min(cut, stream.size() - off));
            if (off % 5 == 0) std::this_thread::yield();
        }
        s.close(0);
    });
    iso::frame_reader in(s.fd[1]);
    msgpack::object_handle m;
    int got = 0;
    while (in.next(m)) EXPECT_EQ(m.get().via.array.ptr[1].as<int>(), got++);
    sender.join();
    EXPECT_EQ(got, 50);
    EXPECT_STREQ(in.error(), "end of stream");
}

TEST(Channel, MalformedFramesAreNamed) {
    struct bad_case {
        std::string bytes;
        const char *error;
    };
    const bad_case cases[] = {
        {std::string("\0\0\0\0", 4), "a frame length out of bounds"},
        {std::string("\xff\xff\xff\x7f", 4), "a frame length out of bounds"},
        {std::string("\x01\0\0\0\xc1", 5), "a frame that is not msgpack"},        // 0xc1 is never used
        {std::string("\x01\0\0\0\x05", 5), "a frame that is not a typed message"},  // a bare integer
        {std::string("\x02\0\0\0\x91\xa1", 6), "a frame that is not msgpack"},      // truncated inside the frame
        {std::string("\x03\0\0\0\x91\xa1x", 7), "a frame that is not a typed message"},  // type is a string
        {std::string("\x03\0\0\0\x91\x07\x00", 7), "a frame that is not msgpack"},        // bytes after it
    };
    for (bool borrow : {false, true})
        for (const auto &c : cases) {
            socket_pair s;
            write_all(s.fd[0], c.bytes.data(), c.bytes.size());
            s.close(0);
            iso::frame_reader in(s.fd[1], borrow);
            msgpack::object_handle m;
            EXPECT_FALSE(in.next(m));
            EXPECT_STREQ(in.error(), c.error) << "bytes of length " << c.bytes.size() << (borrow ? ", borrowing" : "");
        }
}

TEST(Channel, AWriterWhosePeerStopsReadingRefusesPastItsBound) {
    socket_pair s;
    const auto frame = message(7, 1, std::string(1000, 'z'));
    {
        iso::frame_writer out(s.fd[0], 64 * 1024);
        int refused_after = -1;
        for (int i = 0; i < 100000 && refused_after < 0; ++i)
            if (!out.send(frame)) refused_after = i;
        // The socket buffer takes some, the bound the rest: then send refuses instead of growing.
        ASSERT_GT(refused_after, 0);
        EXPECT_LE(out.pending(), 64u * 1024);
        // Control messages still go in (they are few and must not be lost to a burst).
        EXPECT_TRUE(out.send_always(frame));
        s.close(1);  // the peer dies: the writer notices, and its destructor does not wait for it
    }
}

TEST(Channel, AWriterToADeadPeerReportsBroken) {
    socket_pair s;
    s.close(1);
    iso::frame_writer out(s.fd[0], 1 << 20);
    const auto frame = message(9, 1, "ping");
    for (int i = 0; i < 200 && !out.broken(); ++i) {
        out.send_always(frame);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_TRUE(out.broken());
    EXPECT_FALSE(out.send(frame));
}

// FL-HOST-30 at its root: a runner that pushed events into its rings and was killed -9 the next instant left every
// one of them readable by the host, in order, and a lane it filled refuses (FL_BUSY) rather than overwrites.
TEST(EventRings, WhatARunnerPushedSurvivesItsKill) {
    auto rings = iso::ring_memory::create(256 << 10);
    constexpr int count = 3000;
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {  // the runner: its own mapping of the host's memfd, then SIGKILL, no cleanup of any kind
        auto mine = iso::ring_memory::attach(::dup(rings.fd()));
        iso::ring_producer out(mine);
        std::uint64_t order = 0;
        for (int i = 1; i <= count; ++i) {
            const std::string ev = "event " + std::to_string(i);
            const auto l = i % 10 == 0 ? iso::lane::alarm : iso::lane::telemetry;
            if (!out.push(l, 7, static_cast<std::uint64_t>(i), ++order, reinterpret_cast<const std::uint8_t *>(ev.data()),
                          ev.size()))
                ::_exit(3);  // the ring was too small for the test: a failure, not a kill
        }
        ::raise(SIGKILL);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    std::vector<std::uint64_t> seen;
    iso::ring_consumer alarm(rings, iso::lane::alarm), telemetry(rings, iso::lane::telemetry);
    for (auto *lane : {&alarm, &telemetry})
        while (const auto *r = lane->front()) {
            EXPECT_EQ(r->device, 7u);
            EXPECT_EQ(std::string(r->event.begin(), r->event.end()), "event " + std::to_string(r->number));
            seen.push_back(r->number);
            lane->pop();
        }
    std::sort(seen.begin(), seen.end());
    ASSERT_EQ(seen.size(), static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) EXPECT_EQ(seen[i], static_cast<std::uint64_t>(i + 1));
}

TEST(EventRings, AFullLaneRefusesAndTheOthersStillTake) {
    auto rings = iso::ring_memory::create(256 << 10);
    iso::ring_producer out(rings);
    const std::string ev(1000, 't');
    const auto *p = reinterpret_cast<const std::uint8_t *>(ev.data());
    std::uint64_t n = 0;  // pushed
    while (out.push(iso::lane::telemetry, 1, n + 1, n + 1, p, ev.size())) ++n;
    EXPECT_GT(n, 200u);
    EXPECT_FALSE(out.push(iso::lane::telemetry, 1, n, n, p, ev.size())) << "a full lane took more";
    EXPECT_TRUE(out.push(iso::lane::alarm, 1, n + 1, n + 1, p, ev.size())) << "an alarm waited behind telemetry";
    iso::ring_consumer t(rings, iso::lane::telemetry);
    std::uint64_t first = t.front()->number;
    t.pop();
    EXPECT_EQ(first, 1u);  // nothing was overwritten
    EXPECT_EQ(t.front()->number, 2u);
}
