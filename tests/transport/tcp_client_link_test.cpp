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

}  // namespace
}  // namespace transport_test
