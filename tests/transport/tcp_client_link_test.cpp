// The TCP client link against a real server socket on 127.0.0.1.
#include "transport_test_support.hpp"

namespace transport_test {
namespace {

constexpr ft::backoff fast_retry{20ms, 200ms};

TEST(TcpClientLink, ConnectsCarriesBytesAndReconnectsAfterTheServerCloses) {
    io_runner run;
    fd_holder server = tcp_listen();
    ASSERT_TRUE(server);
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_tcp_client_link(ex, "127.0.0.1", local_port(server.fd), fast_retry, rec.events());
    EXPECT_EQ(link->kind(), FL_TRANSPORT_TCP_CLIENT);
    on(ex, [&] { return link->open(); });

    fd_holder conn = tcp_accept(server.fd);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    write_all(conn.fd, "hello ");
    write_all(conn.fd, "host");
    EXPECT_TRUE(rec.wait_data("hello host"));
    const auto b = bytes("hello device");
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_OK);
    EXPECT_EQ(read_exact(conn.fd, b.size()), "hello device");

    conn.reset();  // the device drops the connection
    ASSERT_TRUE(rec.wait_state(FL_LINK_LOST));
    fd_holder again = tcp_accept(server.fd);  // the link comes back by itself
    ASSERT_TRUE(again);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 2));
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

TEST(TcpClientLink, RefusedConnectionFailsThenOpensWhenTheServerAppears) {
    io_runner run;
    const std::uint16_t port = unused_port();
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_tcp_client_link(ex, "127.0.0.1", port, fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_FAILED));
    EXPECT_GE(link->counters().errors, 1u);
    const auto b = bytes("x");
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_CLOSED);

    fd_holder server = tcp_listen(port);
    ASSERT_TRUE(server) << "port " << port << " was taken meanwhile";
    fd_holder conn = tcp_accept(server.fd);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_EQ(link->counters().reconnects, 1u);
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_OK);
    EXPECT_EQ(read_exact(conn.fd, 1), "x");
    on(ex, [&] { return link->close(); });
}

// Backpressure reaches the device: a paused link leaves the bytes in the kernel, the TCP window closes and the
// device's own writes stall; on resume every byte arrives, in order.
TEST(TcpClientLink, PausedLinkStopsReadingSoTheDevicesWritesBlockAndResumeDeliversEveryByte) {
    io_runner run;
    fd_holder server = tcp_listen();
    ASSERT_TRUE(server);
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_tcp_client_link(ex, "127.0.0.1", local_port(server.fd), fast_retry, rec.events());
    on(ex, [&] { return link->open(); });
    fd_holder conn = tcp_accept(server.fd);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    EXPECT_FALSE(on(ex, [&] { return link->paused(); }));
    on(ex, [&] {
        link->set_paused(true);
        link->set_paused(true);  // idempotent: one pause
    });
    EXPECT_TRUE(on(ex, [&] { return link->paused(); }));
    EXPECT_EQ(link->counters().pauses, 1u);

    const std::string payload = pattern(8 << 20);
    set_nonblocking(conn.fd);
    const std::size_t sent = write_until_stalled(conn.fd, payload, 0);
    EXPECT_LT(sent, payload.size()) << "the device's writes never blocked: the host kept reading";
    std::this_thread::sleep_for(200ms);
    // The read that was already waiting when the link paused may complete (it is delivered); nothing after it.
    EXPECT_LE(rec.data_calls(), 1u);
    EXPECT_LE(rec.received_size(), 4096u);
    EXPECT_EQ(rec.received(), payload.substr(0, rec.received_size()));

    on(ex, [&] { link->set_paused(false); });
    EXPECT_FALSE(on(ex, [&] { return link->paused(); }));
    write_rest(conn.fd, payload, sent);
    EXPECT_TRUE(rec.wait_large(payload)) << rec.received_size() << " of " << payload.size() << " bytes";
    const auto c = link->counters();
    EXPECT_EQ(c.bytes_in, payload.size());
    EXPECT_EQ(c.bytes_discarded, 0u);
    EXPECT_EQ(c.pauses, 1u);
    on(ex, [&] { return link->close(); });
}

TEST(TcpClientLink, PauseSurvivesAReconnectAndACloseAndOpen) {
    io_runner run;
    fd_holder server = tcp_listen();
    ASSERT_TRUE(server);
    recorder rec;
    auto ex = run.strand();
    auto link = ft::make_tcp_client_link(ex, "127.0.0.1", local_port(server.fd), fast_retry, rec.events());
    on(ex, [&] {
        link->set_paused(true);  // before open(): the first connection starts paused
        return link->open();
    });
    fd_holder conn = tcp_accept(server.fd);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    // Writing is not paused: the link notices the device hung up when its write fails (no read is waiting).
    conn.reset();
    const auto x = bytes("x");
    ASSERT_TRUE(eventually([&] {
        on(ex, [&] { return link->write(x.data(), x.size()); });
        return rec.count(FL_LINK_LOST) >= 1;
    })) << "the broken connection is noticed by writing";
    fd_holder again = tcp_accept(server.fd);
    ASSERT_TRUE(again);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 2));
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
    fd_holder third = tcp_accept(server.fd);
    ASSERT_TRUE(third);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 3));
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
    on(ex, [&] { return link->close(); });
    EXPECT_EQ(link->counters().bytes_discarded, 5u);
    EXPECT_EQ(rec.received(), "after reconnect!tail1");
}

}  // namespace
}  // namespace transport_test
