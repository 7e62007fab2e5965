// The TCP client link against a real server socket on 127.0.0.1.
#include "transport_test_support.hpp"

namespace transport_test {
namespace {

constexpr ft::backoff fast_retry{20ms, 200ms};

// Each test's link connects to `server`, a listening socket on 127.0.0.1.
class TcpClientLink : public link_test {
protected:
    void SetUp() override { ASSERT_TRUE(server); }

    void make_link(std::uint16_t port) {
        link = ft::make_tcp_client_link(ex, "127.0.0.1", port, fast_retry, rec.events());
    }
    // Accepts the link's next connection on `server` and waits for the link's `nth` OPEN; an empty holder if either
    // does not come.
    fd_holder accept_open(int nth = 1) {
        fd_holder conn = tcp_accept(server.fd);
        if (!conn) {
            ADD_FAILURE() << "the link did not connect";
            return {};
        }
        if (!rec.wait_state(FL_LINK_OPEN, nth)) {
            ADD_FAILURE() << "no OPEN number " << nth << " after the connection was accepted";
            return {};
        }
        return conn;
    }

    fd_holder server = tcp_listen();
};

TEST_F(TcpClientLink, ConnectsCarriesBytesAndReconnectsAfterTheServerCloses) {
    make_link(local_port(server.fd));
    EXPECT_EQ(link->kind(), FL_TRANSPORT_TCP_CLIENT);
    open_link();

    fd_holder conn = accept_open();
    ASSERT_TRUE(conn);
    write_all(conn.fd, "hello ");
    write_all(conn.fd, "host");
    EXPECT_TRUE(rec.wait_data("hello host"));
    const std::string greeting = "hello device";
    EXPECT_EQ(write(greeting), FL_OK);
    EXPECT_EQ(read_exact(conn.fd, greeting.size()), greeting);

    conn.reset();  // the device drops the connection
    ASSERT_TRUE(rec.wait_state(FL_LINK_LOST));
    fd_holder again = accept_open(2);  // the link comes back by itself
    ASSERT_TRUE(again);
    EXPECT_EQ(link->counters().reconnects, 1u);
    EXPECT_EQ(rec.count(FL_LINK_FAILED), 0);
    write_all(again.fd, "!");
    EXPECT_TRUE(rec.wait_data("hello host!"));

    // Request/reply works over TCP as over serial.
    const auto q = bytes("Q");
    EXPECT_EQ(on(ex, [&] { return link->request(q.data(), q.size(), 50ms); }), FL_OK);
    EXPECT_EQ(read_exact(again.fd, 1), "Q");
    ASSERT_TRUE(rec.wait_state(FL_LINK_REPLY_TIMEOUT));

    on(ex, [&] {
        link->close();
        rec.mark_closed();
        return 0;
    });
    EXPECT_TRUE(wait_closed(again.fd)) << "close() closes the connection";
    EXPECT_EQ(rec.late_calls(), 0);
}

TEST_F(TcpClientLink, RefusedConnectionFailsThenOpensWhenTheServerAppears) {
    const std::uint16_t port = unused_port();
    make_link(port);
    open_link();
    ASSERT_TRUE(rec.wait_state(FL_LINK_FAILED));
    EXPECT_GE(link->counters().errors, 1u);
    EXPECT_EQ(write("x"), FL_CLOSED);

    server = tcp_listen(port);
    ASSERT_TRUE(server) << "port " << port << " was taken meanwhile";
    fd_holder conn = accept_open();
    ASSERT_TRUE(conn);
    EXPECT_EQ(link->counters().reconnects, 1u);
    EXPECT_EQ(write("x"), FL_OK);
    EXPECT_EQ(read_exact(conn.fd, 1), "x");
    close_link();
}

// Backpressure reaches the device: a paused link leaves the bytes in the kernel, the TCP window closes and the
// device's own writes stall; on resume every byte arrives, in order.
TEST_F(TcpClientLink, PausedLinkStopsReadingSoTheDevicesWritesBlockAndResumeDeliversEveryByte) {
    make_link(local_port(server.fd));
    open_link();
    fd_holder conn = accept_open();
    ASSERT_TRUE(conn);

    EXPECT_FALSE(on(ex, [&] { return link->paused(); }));
    on(ex, [&] {
        link->set_paused(true);
        link->set_paused(true);  // idempotent: one pause
    });
    EXPECT_TRUE(on(ex, [&] { return link->paused(); }));
    EXPECT_EQ(link->counters().pauses, 1u);

    expect_stall_then_full_delivery(ex, *link, rec, conn.fd, pattern(8 << 20));
    EXPECT_EQ(link->counters().pauses, 1u);
    close_link();
}

TEST_F(TcpClientLink, PauseSurvivesAReconnectAndACloseAndOpen) {
    make_link(local_port(server.fd));
    on(ex, [&] {
        link->set_paused(true);  // before open(): the first connection starts paused
        return link->open();
    });
    fd_holder conn = accept_open();
    ASSERT_TRUE(conn);

    // Writing is not paused: the link notices the device hung up when its write fails (no read is waiting).
    conn.reset();
    ASSERT_TRUE(eventually([&] {
        write("x");
        return rec.count(FL_LINK_LOST) >= 1;
    })) << "the broken connection is noticed by writing";
    fd_holder again = accept_open(2);
    ASSERT_TRUE(again);
    EXPECT_TRUE(on(ex, [&] { return link->paused(); })) << "still paused after the reconnect";
    write_all(again.fd, "after reconnect");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rec.received(), "") << "a link that reconnected while paused reads nothing";

    on(ex, [&] { link->set_paused(false); });
    EXPECT_TRUE(rec.wait_data("after reconnect"));

    // Paused, closed and opened again: still paused.
    on(ex, [&] {
        link->set_paused(true);
        link->close();
        return link->open();
    });
    fd_holder third = accept_open(3);
    ASSERT_TRUE(third);
    write_all(third.fd, "!");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rec.received(), "after reconnect");
    on(ex, [&] { link->set_paused(false); });
    EXPECT_TRUE(rec.wait_data("after reconnect!"));
    EXPECT_EQ(link->counters().pauses, 2u);
    EXPECT_EQ(link->counters().bytes_discarded, 0u);

    // Bytes still in the kernel when a paused link is closed go with the socket: counted, not silently gone.
    // The read waiting when the link pauses still completes and is delivered; the pause holds after it.
    on(ex, [&] { link->set_paused(true); });
    write_all(third.fd, "tail1");
    EXPECT_TRUE(rec.wait_data("after reconnect!tail1"));
    write_all(third.fd, "tail2");
    std::this_thread::sleep_for(200ms);  // loopback: in the link's receive buffer long before this
    close_link();
    EXPECT_EQ(link->counters().bytes_discarded, 5u);
    EXPECT_EQ(rec.received(), "after reconnect!tail1");
}

}  // namespace
}  // namespace transport_test
