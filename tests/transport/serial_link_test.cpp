// The point-to-point serial link against a pty: the test is the device on the master side.
#include <cstdio>
#include <filesystem>

#include "transport_test_support.hpp"

namespace transport_test {
namespace {

ft::serial_settings settings_for(const std::string &path) {
    ft::serial_settings s;
    s.path = path;
    s.baud = 19200;
    s.data_bits = 8;
    s.parity = 'E';
    s.stop_bits = 1;
    return s;
}

constexpr ft::backoff fast_retry{20ms, 200ms};

// A path the test can re-point at a new pty, so that a "replugged" port comes back under the same name.
struct port_alias {
    std::filesystem::path path;
    port_alias() {
        char dir[] = "/tmp/fl-serial-XXXXXX";
        path = std::filesystem::path(::mkdtemp(dir)) / "ttyTEST";
    }
    ~port_alias() { std::filesystem::remove_all(path.parent_path()); }
    void point_at(const std::string &target) {
        const auto tmp = path.string() + ".new";
        std::filesystem::remove(tmp);
        std::filesystem::create_symlink(target, tmp);
        std::filesystem::rename(tmp, path);  // atomic: the link never sees a missing file by accident
    }
};

TEST(SerialLink, OpensAndCarriesBytesBothWays) {
    io_runner run;
    pty_pair pty;
    recorder rec;
    auto ex = run.strand();
    auto settings = settings_for(pty.path);
    settings.stop_bits = 2;
    auto link = ft::make_serial_link(ex, settings, fast_retry, rec.events());
    EXPECT_EQ(link->kind(), FL_TRANSPORT_SERIAL);

    EXPECT_EQ(on(ex, [&] { return link->open(); }), FL_OK);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_EQ(rec.state_list().front(), FL_LINK_OPEN) << "a good port opens first time";

    // The line settings reached the tty. A pty keeps the speed and stop bits though it ignores them (it forces
    // CS8 and no parity, so those two cannot be seen here).
    termios t{};
    ASSERT_EQ(::tcgetattr(pty.slave, &t), 0);
    EXPECT_EQ(::cfgetospeed(&t), static_cast<speed_t>(B19200));
    EXPECT_TRUE(t.c_cflag & CSTOPB);
    EXPECT_FALSE(t.c_lflag & (ICANON | ECHO | ISIG));

    // Device → host, in chunks: the link delivers in order, however the chunks fall.
    write_all(pty.master, "\x01\x03");
    write_all(pty.master, std::string("\x02\x00", 2));
    write_all(pty.master, std::string("\x0A\xC5\xCD", 3));
    EXPECT_TRUE(rec.wait_data(std::string("\x01\x03\x02\x00\x0A\xC5\xCD", 7)));

    // Host → device.
    const std::string frame("\x01\x03\x00\x00\x00\x01\x84\x0A", 8);
    EXPECT_EQ(on(ex, [&] { return link->write(reinterpret_cast<const std::uint8_t *>(frame.data()), frame.size()); }),
              FL_OK);
    EXPECT_EQ(read_exact(pty.master, frame.size()), frame);
    EXPECT_TRUE(eventually([&] { return link->counters().bytes_out == frame.size(); }));
    EXPECT_EQ(link->counters().bytes_in, 7u);

    // A large write arrives whole and in order.
    std::string big(20000, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
    EXPECT_EQ(on(ex, [&] { return link->write(reinterpret_cast<const std::uint8_t *>(big.data()), big.size()); }),
              FL_OK);
    EXPECT_EQ(read_exact(pty.master, big.size()), big);

    on(ex, [&] { return link->close(); });
}

TEST(SerialLink, RequestWithoutEndRequestTimesOut) {
    io_runner run;
    pty_pair pty;
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_serial_link(ex, settings_for(pty.path), fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    const auto q = bytes("Q1");
    EXPECT_EQ(on(ex, [&] { return link->end_request(); }), FL_MISUSE) << "no request to end";
    EXPECT_EQ(on(ex, [&] { return link->request(q.data(), q.size(), 50ms); }), FL_OK);
    EXPECT_EQ(on(ex, [&] { return link->request(q.data(), q.size(), 50ms); }), FL_BUSY) << "one request in flight";
    EXPECT_EQ(read_exact(pty.master, 2), "Q1");
    // The device never answers.
    ASSERT_TRUE(rec.wait_state(FL_LINK_REPLY_TIMEOUT));
    EXPECT_EQ(link->counters().reply_timeouts, 1u);
    EXPECT_EQ(rec.count(FL_LINK_OPEN), 1) << "a reply timeout is not a drop";

    // After the timeout the link takes the next request; answered and ended, it does not time out.
    rec.data_hook = [&](const std::uint8_t *, std::size_t) {
        if (rec.received() == "A2") {
            EXPECT_EQ(link->end_request(), FL_OK);  // on the link's executor
        }
    };
    const auto q2 = bytes("Q2");
    EXPECT_EQ(on(ex, [&] { return link->request(q2.data(), q2.size(), 1000ms); }), FL_OK);
    EXPECT_EQ(read_exact(pty.master, 2), "Q2");
    write_all(pty.master, "A2");
    ASSERT_TRUE(rec.wait_data("A2"));
    std::this_thread::sleep_for(1200ms);  // past the reply timeout: a timeout that should not come has had its chance
    EXPECT_EQ(rec.count(FL_LINK_REPLY_TIMEOUT), 1);
    EXPECT_EQ(on(ex, [&] { return link->request(q.data(), q.size(), 50ms); }), FL_OK) << "the turn was ended";
    on(ex, [&] { return link->close(); });
}

TEST(SerialLink, WriteAndRequestRefusedWhenNotOpen) {
    io_runner run;
    pty_pair pty;
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_serial_link(ex, settings_for(pty.path), fast_retry, rec.events());
    const auto b = bytes("x");
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_CLOSED);
    EXPECT_EQ(on(ex, [&] { return link->request(b.data(), b.size(), 50ms); }), FL_CLOSED);
    EXPECT_EQ(on(ex, [&] { return link->close(); }), FL_OK) << "closing a closed link is harmless";

    EXPECT_EQ(on(ex, [&] { return link->open(); }), FL_OK);
    EXPECT_EQ(on(ex, [&] { return link->open(); }), FL_MISUSE) << "already opening";
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_OK);
    on(ex, [&] { return link->close(); });
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_CLOSED);
}

TEST(SerialLink, SendQueueIsBounded) {
    io_runner run;
    pty_pair pty;  // nobody reads the master: the queue only fills
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_serial_link(ex, settings_for(pty.path), fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    // In one turn of the executor nothing drains, so exactly 64 KiB is accepted.
    const int accepted = on(ex, [&] {
        const std::vector<std::uint8_t> chunk(4096, 0x55);
        int ok = 0;
        while (link->write(chunk.data(), chunk.size()) == FL_OK && ok < 1000) ++ok;
        return ok;
    });
    EXPECT_EQ(accepted, 16);
    on(ex, [&] { return link->close(); });
}

TEST(SerialLink, NoCallbackAfterCloseOrDestruction) {
    io_runner run;
    pty_pair pty;
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_serial_link(ex, settings_for(pty.path), fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    const auto q = bytes("Q");
    on(ex, [&] {
        link->request(q.data(), q.size(), 30ms);  // its timeout would fire after close
        link->close();
        rec.mark_closed();
        return 0;
    });
    write_all(pty.master, "late bytes");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rec.late_calls(), 0);
    EXPECT_EQ(rec.received(), "");

    // Destroying the link from inside its own callback stops everything too.
    recorder rec2;
    std::unique_ptr<ft::link> link2 = ft::make_serial_link(ex, settings_for(pty.path), fast_retry, rec2.events());
    rec2.data_hook = [&](const std::uint8_t *, std::size_t) {
        link2.reset();
        rec2.mark_closed();
    };
    on(ex, [&] { return link2->open(); });
    ASSERT_TRUE(rec2.wait_state(FL_LINK_OPEN));
    write_all(pty.master, "A");
    ASSERT_TRUE(eventually([&] { return on(ex, [&] { return link2 == nullptr; }); }));
    write_all(pty.master, "BCD");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rec2.late_calls(), 0);
    EXPECT_EQ(rec2.received(), "A");
}

TEST(SerialLink, MissingPortFailsThenOpensWhenItAppears) {
    io_runner run;
    port_alias alias;  // nothing there yet
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_serial_link(ex, settings_for(alias.path.string()), fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_FAILED));
    EXPECT_GE(link->counters().errors, 1u);

    pty_pair pty;
    alias.point_at(pty.path);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_EQ(link->counters().reconnects, 1u);
    write_all(pty.master, "hi");
    EXPECT_TRUE(rec.wait_data("hi"));
    on(ex, [&] { return link->close(); });
}

TEST(SerialLink, LostPortIsReopened) {
    io_runner run;
    port_alias alias;
    auto first = std::make_unique<pty_pair>();
    alias.point_at(first->path);
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_serial_link(ex, settings_for(alias.path.string()), fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    first.reset();  // the adapter is unplugged
    ASSERT_TRUE(rec.wait_state(FL_LINK_LOST));
    pty_pair second;  // and a new one plugged in under the same name
    alias.point_at(second.path);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 2));
    EXPECT_EQ(link->counters().reconnects, 1u);
    const auto b = bytes("again");
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_OK);
    EXPECT_EQ(read_exact(second.master, 5), "again");
    on(ex, [&] { return link->close(); });
}

// The pty stands in for a UART: paused, the link reads nothing, the tty buffer fills and the device's writes stall;
// on resume every byte arrives in order.
TEST(SerialLink, PausedLinkLeavesBytesInTheTtyUntilResume) {
    io_runner run;
    pty_pair pty;
    recorder rec;
    auto ex = run.strand();
    auto settings = settings_for(pty.path);
    settings.parity = 'N';
    auto link = ft::make_serial_link(ex, settings, fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    on(ex, [&] { link->set_paused(true); });
    EXPECT_TRUE(on(ex, [&] { return link->paused(); }));
    const std::string payload = pattern(1 << 20);
    set_nonblocking(pty.master);
    const std::size_t sent = write_until_stalled(pty.master, payload, 0);
    EXPECT_LT(sent, payload.size()) << "the device's writes never blocked: the host kept reading";
    std::this_thread::sleep_for(200ms);
    EXPECT_LE(rec.data_calls(), 1u) << "only the read already waiting when the link paused";
    EXPECT_LE(rec.received_size(), 4096u);

    on(ex, [&] { link->set_paused(false); });
    write_rest(pty.master, payload, sent);
    EXPECT_TRUE(rec.wait_large(payload)) << rec.received_size() << " of " << payload.size() << " bytes";
    const auto c = link->counters();
    EXPECT_EQ(c.bytes_in, payload.size());
    EXPECT_EQ(c.bytes_discarded, 0u);
    EXPECT_EQ(c.pauses, 1u);
    on(ex, [&] { return link->close(); });
}

TEST(SerialLink, PauseSurvivesAReopenedPort) {
    io_runner run;
    port_alias alias;
    auto first = std::make_unique<pty_pair>();
    alias.point_at(first->path);
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_serial_link(ex, settings_for(alias.path.string()), fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    on(ex, [&] { link->set_paused(true); });  // the read already waiting sees the port go

    first.reset();  // unplugged
    ASSERT_TRUE(rec.wait_state(FL_LINK_LOST));
    pty_pair second;
    alias.point_at(second.path);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 2));
    EXPECT_TRUE(on(ex, [&] { return link->paused(); }));
    write_all(second.master, "after replug");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rec.received(), "") << "a link reopened while paused reads nothing";
    on(ex, [&] { link->set_paused(false); });
    EXPECT_TRUE(rec.wait_data("after replug"));
    EXPECT_EQ(link->counters().bytes_discarded, 0u);
    on(ex, [&] { return link->close(); });
}

// Stale bytes in the tty buffer when the port opens are flushed, and counted.
TEST(SerialLink, BytesWaitingBeforeOpenAreFlushedAndCounted) {
    io_runner run;
    pty_pair pty;
    recorder rec;
    auto ex = run.strand();
    write_all(pty.master, "stale");
    std::this_thread::sleep_for(50ms);
    auto link = ft::make_serial_link(ex, settings_for(pty.path), fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_EQ(link->counters().bytes_discarded, 5u);
    write_all(pty.master, "fresh");
    EXPECT_TRUE(rec.wait_data("fresh"));
    on(ex, [&] { return link->close(); });
}

TEST(SerialLink, BadLineSettingsFail) {
    io_runner run;
    pty_pair pty;
    recorder rec;
    auto ex = run.strand();
    auto settings = settings_for(pty.path);
    settings.data_bits = 9;
    auto link = ft::make_serial_link(ex, settings, fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_FAILED));
    EXPECT_EQ(rec.count(FL_LINK_OPEN), 0);
    on(ex, [&] { return link->close(); });
}

}  // namespace
}  // namespace transport_test
