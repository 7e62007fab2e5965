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
    std::unique_ptr<pty_pair> port;  // the adapter plugged in now, if any

    port_alias() {
        char dir[] = "/tmp/fl-serial-XXXXXX";
        path = std::filesystem::path(::mkdtemp(dir)) / "ttyTEST";
    }
    ~port_alias() { std::filesystem::remove_all(path.parent_path()); }
    void plug_in() {
        port = std::make_unique<pty_pair>();
        point_at(port->path);
    }
    void unplug() { port.reset(); }

private:
    void point_at(const std::string &target) {
        const auto tmp = path.string() + ".new";
        std::filesystem::remove(tmp);
        std::filesystem::create_symlink(target, tmp);
        std::filesystem::rename(tmp, path);  // atomic: the link never sees a missing file by accident
    }
};

// `pty` is the device for the tests that need no replugging.
class SerialLink : public link_test {
protected:
    void make_link(const ft::serial_settings &settings) {
        link = ft::make_serial_link(ex, settings, fast_retry, rec.events());
    }
    // Makes the link and opens it; the outcome comes as a callback.
    void start_link(const ft::serial_settings &settings) {
        make_link(settings);
        open_link();
    }
    void start_link(const std::string &path) { start_link(settings_for(path)); }
    // True once the link started on `path` reported OPEN.
    bool link_opens(const std::string &path) {
        start_link(path);
        return rec.wait_state(FL_LINK_OPEN);
    }
    // The adapter behind `alias` is unplugged and a new one plugged in under the same name: true once the link that
    // was open on the old one reported LOST and then OPEN again.
    bool replug(port_alias &alias) {
        alias.unplug();
        if (!rec.wait_state(FL_LINK_LOST)) {
            ADD_FAILURE() << "no LOST after the port was unplugged";
            return false;
        }
        alias.plug_in();
        return rec.wait_state(FL_LINK_OPEN, 2);
    }

    pty_pair pty;
};

TEST_F(SerialLink, OpensAndCarriesBytesBothWays) {
    auto settings = settings_for(pty.path);
    settings.stop_bits = 2;
    make_link(settings);
    EXPECT_EQ(link->kind(), FL_TRANSPORT_SERIAL);

    EXPECT_EQ(open_link(), FL_OK);
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
    EXPECT_EQ(write(frame), FL_OK);
    EXPECT_EQ(read_exact(pty.master, frame.size()), frame);
    EXPECT_TRUE(eventually([&] { return link->counters().bytes_out == frame.size(); }));
    EXPECT_EQ(link->counters().bytes_in, 7u);

    // A large write arrives whole and in order.
    std::string big(20000, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
    EXPECT_EQ(write(big), FL_OK);
    EXPECT_EQ(read_exact(pty.master, big.size()), big);

    close_link();
}

TEST_F(SerialLink, RequestWithoutEndRequestTimesOut) {
    ASSERT_TRUE(link_opens(pty.path));

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
    close_link();
}

TEST_F(SerialLink, WriteAndRequestRefusedWhenNotOpen) {
    make_link(settings_for(pty.path));
    const auto b = bytes("x");
    EXPECT_EQ(write("x"), FL_CLOSED);
    EXPECT_EQ(on(ex, [&] { return link->request(b.data(), b.size(), 50ms); }), FL_CLOSED);
    EXPECT_EQ(on(ex, [&] { return link->close(); }), FL_OK) << "closing a closed link is harmless";

    EXPECT_EQ(open_link(), FL_OK);
    EXPECT_EQ(open_link(), FL_MISUSE) << "already opening";
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_EQ(write("x"), FL_OK);
    close_link();
    EXPECT_EQ(write("x"), FL_CLOSED);
}

TEST_F(SerialLink, SendQueueIsBounded) {
    ASSERT_TRUE(link_opens(pty.path));  // nobody reads the master: the queue only fills
    // In one turn of the executor nothing drains, so exactly 64 KiB is accepted.
    const int accepted = on(ex, [&] {
        const std::vector<std::uint8_t> chunk(4096, 0x55);
        int ok = 0;
        while (link->write(chunk.data(), chunk.size()) == FL_OK && ok < 1000) ++ok;
        return ok;
    });
    EXPECT_EQ(accepted, 16);
    close_link();
}

TEST_F(SerialLink, NoCallbackAfterCloseOrDestruction) {
    ASSERT_TRUE(link_opens(pty.path));
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

TEST_F(SerialLink, MissingPortFailsThenOpensWhenItAppears) {
    port_alias alias;  // nothing there yet
    start_link(alias.path.string());
    ASSERT_TRUE(rec.wait_state(FL_LINK_FAILED));
    EXPECT_GE(link->counters().errors, 1u);

    alias.plug_in();
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_EQ(link->counters().reconnects, 1u);
    write_all(alias.port->master, "hi");
    EXPECT_TRUE(rec.wait_data("hi"));
    close_link();
}

TEST_F(SerialLink, LostPortIsReopened) {
    port_alias alias;
    alias.plug_in();
    ASSERT_TRUE(link_opens(alias.path.string()));

    ASSERT_TRUE(replug(alias));
    EXPECT_EQ(link->counters().reconnects, 1u);
    EXPECT_EQ(write("again"), FL_OK);
    EXPECT_EQ(read_exact(alias.port->master, 5), "again");
    close_link();
}

// The pty stands in for a UART: paused, the link reads nothing, the tty buffer fills and the device's writes stall;
// on resume every byte arrives in order.
TEST_F(SerialLink, PausedLinkLeavesBytesInTheTtyUntilResume) {
    auto settings = settings_for(pty.path);
    settings.parity = 'N';
    start_link(settings);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    on(ex, [&] { link->set_paused(true); });
    EXPECT_TRUE(on(ex, [&] { return link->paused(); }));
    expect_stall_then_full_delivery(ex, *link, rec, pty.master, pattern(1 << 20));
    EXPECT_EQ(link->counters().pauses, 1u);
    close_link();
}

TEST_F(SerialLink, PauseSurvivesAReopenedPort) {
    port_alias alias;
    alias.plug_in();
    ASSERT_TRUE(link_opens(alias.path.string()));
    on(ex, [&] { link->set_paused(true); });  // the read already waiting sees the port go

    ASSERT_TRUE(replug(alias));
    EXPECT_TRUE(on(ex, [&] { return link->paused(); }));
    write_all(alias.port->master, "after replug");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rec.received(), "") << "a link reopened while paused reads nothing";
    on(ex, [&] { link->set_paused(false); });
    EXPECT_TRUE(rec.wait_data("after replug"));
    EXPECT_EQ(link->counters().bytes_discarded, 0u);
    close_link();
}

// Stale bytes in the tty buffer when the port opens are flushed, and counted.
TEST_F(SerialLink, BytesWaitingBeforeOpenAreFlushedAndCounted) {
    write_all(pty.master, "stale");
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(link_opens(pty.path));
    EXPECT_EQ(link->counters().bytes_discarded, 5u);
    write_all(pty.master, "fresh");
    EXPECT_TRUE(rec.wait_data("fresh"));
    close_link();
}

TEST_F(SerialLink, BadLineSettingsFail) {
    auto settings = settings_for(pty.path);
    settings.data_bits = 9;
    start_link(settings);
    ASSERT_TRUE(rec.wait_state(FL_LINK_FAILED));
    EXPECT_EQ(rec.count(FL_LINK_OPEN), 0);
    close_link();
}

}  // namespace
}  // namespace transport_test
