// The TCP listener devices connect in to: binding by peer address, binding by identity from the first bytes, and
// closing what nobody claims.
#include <system_error>

#include "transport_test_support.hpp"

namespace transport_test {
namespace {

// The identify function of a toy protocol whose first line is "ID:<identity>\n".
fl_status identify_by_first_line(const std::uint8_t *data, std::size_t size, std::string &identity) {
    const std::string s(reinterpret_cast<const char *>(data), size);
    const std::string prefix = "ID:";
    if (s.compare(0, std::min(s.size(), prefix.size()), prefix, 0, std::min(s.size(), prefix.size())) != 0)
        return FL_INVALID_ARGUMENT;
    const auto end = s.find('\n');
    if (end == std::string::npos) return FL_BUSY;
    identity = s.substr(prefix.size(), end - prefix.size());
    return FL_OK;
}

TEST(TcpListener, BindsADeviceByPeerAddress) {
    io_runner run;
    auto listener = ft::make_tcp_listener(run.io, "127.0.0.1", 0);
    ASSERT_NE(listener->port(), 0);
    recorder rec;
    auto ex = run.strand();
    auto link = listener->attach_peer(ex, "127.0.0.1", rec.events());
    EXPECT_EQ(link->kind(), FL_TRANSPORT_TCP_ACCEPTED);
    const auto b = bytes("to device");

    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_CLOSED);
    on(ex, [&] { return link->open(); });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPENING)) << "waits for its device to connect";
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_CLOSED) << "no connection yet";

    fd_holder device = tcp_connect(listener->port());
    ASSERT_TRUE(device);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    write_all(device.fd, "from device");
    EXPECT_TRUE(rec.wait_data("from device"));
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_OK);
    EXPECT_EQ(read_exact(device.fd, b.size()), "to device");

    device.reset();  // the device hangs up, and is waited for again
    ASSERT_TRUE(rec.wait_state(FL_LINK_LOST));
    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_CLOSED);
    fd_holder again = tcp_connect(listener->port());
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 2));
    EXPECT_EQ(link->counters().reconnects, 1u);

    // The device reconnects while its old connection still looks alive: the new connection replaces it.
    fd_holder newer = tcp_connect(listener->port());
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 3));
    EXPECT_TRUE(wait_closed(again.fd)) << "the replaced connection is closed";
    write_all(newer.fd, "!");
    EXPECT_TRUE(rec.wait_data("from device!"));
    EXPECT_EQ(listener->unmatched_connections(), 0u);

    on(ex, [&] {
        link->close();
        rec.mark_closed();
        return 0;
    });
    EXPECT_TRUE(wait_closed(newer.fd));
    EXPECT_EQ(rec.late_calls(), 0);
}

TEST(TcpListener, BindsDevicesByIdentityAndDeliversTheFirstBytesInOrder) {
    io_runner run;
    auto listener = ft::make_tcp_listener(run.io, "127.0.0.1", 0);
    std::atomic<int> asked_for_more{0};
    listener->set_identifier([&](const std::uint8_t *data, std::size_t size, std::string &identity) {
        const fl_status s = identify_by_first_line(data, size, identity);
        if (s == FL_BUSY) ++asked_for_more;
        return s;
    });
    recorder rec_a, rec_b;
    auto ex_a = run.strand(), ex_b = run.strand();
    auto link_a = listener->attach_identity(ex_a, "A", rec_a.events());
    auto link_b = listener->attach_identity(ex_b, "B", rec_b.events());
    on(ex_a, [&] { return link_a->open(); });
    on(ex_b, [&] { return link_b->open(); });
    ASSERT_TRUE(rec_a.wait_state(FL_LINK_OPENING));
    ASSERT_TRUE(rec_b.wait_state(FL_LINK_OPENING));

    fd_holder client_b = tcp_connect(listener->port());
    fd_holder client_a = tcp_connect(listener->port());
    write_all(client_a.fd, "ID:");  // not enough to tell who it is
    ASSERT_TRUE(eventually([&] { return asked_for_more >= 1; }));
    write_all(client_a.fd, "A\nhel");
    write_all(client_b.fd, "ID:B\nworld");
    ASSERT_TRUE(rec_a.wait_state(FL_LINK_OPEN));
    write_all(client_a.fd, "lo");

    EXPECT_TRUE(rec_a.wait_data("ID:A\nhello")) << rec_a.received();
    EXPECT_TRUE(rec_b.wait_data("ID:B\nworld")) << rec_b.received();
    {
        std::lock_guard lock(rec_a.mu);
        EXPECT_EQ(rec_a.order.substr(0, 3), "SSD") << "OPENING, OPEN, then the buffered first bytes";
    }

    const auto to_a = bytes("for A"), to_b = bytes("for B");
    EXPECT_EQ(on(ex_a, [&] { return link_a->write(to_a.data(), to_a.size()); }), FL_OK);
    EXPECT_EQ(on(ex_b, [&] { return link_b->write(to_b.data(), to_b.size()); }), FL_OK);
    EXPECT_EQ(read_exact(client_a.fd, 5), "for A");
    EXPECT_EQ(read_exact(client_b.fd, 5), "for B");
    EXPECT_EQ(listener->unmatched_connections(), 0u);

    on(ex_a, [&] { return link_a->close(); });
    on(ex_b, [&] { return link_b->close(); });
}

TEST(TcpListener, ClosesConnectionsNobodyClaims) {
    io_runner run;
    auto listener = ft::make_tcp_listener(run.io, "127.0.0.1", 0);
    listener->set_identifier(identify_by_first_line);
    recorder rec;
    auto ex = run.strand();
    auto link = listener->attach_identity(ex, "A", rec.events());
    on(ex, [&] { return link->open(); });

    fd_holder stranger = tcp_connect(listener->port());
    write_all(stranger.fd, "ID:Z\nhello");
    EXPECT_TRUE(wait_closed(stranger.fd)) << "an unknown identity is closed";
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 1; }));

    fd_holder garbage = tcp_connect(listener->port());
    write_all(garbage.fd, "GET / HTTP/1.0\r\n\r\n");
    EXPECT_TRUE(wait_closed(garbage.fd)) << "bytes identify refuses are closed";
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 2; }));

    // Too many bytes without an identity.
    fd_holder chatty = tcp_connect(listener->port());
    write_all(chatty.fd, "ID:" + std::string(5000, 'x'));
    EXPECT_TRUE(wait_closed(chatty.fd));
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 3; }));

    EXPECT_EQ(rec.count(FL_LINK_OPEN), 0);
    EXPECT_EQ(rec.received(), "");
    on(ex, [&] { return link->close(); });
}

TEST(TcpListener, WithoutAMatchOrAnIdentifierTheConnectionIsClosed) {
    io_runner run;
    auto listener = ft::make_tcp_listener(run.io, "127.0.0.1", 0);
    recorder rec;
    auto ex = run.strand();
    auto link = listener->attach_peer(ex, "192.0.2.7", rec.events());  // some other device
    on(ex, [&] { return link->open(); });
    fd_holder client = tcp_connect(listener->port());
    EXPECT_TRUE(wait_closed(client.fd));
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 1; }));

    // A device that has not called open() does not claim its connection either.
    recorder rec_local;
    auto ex_local = run.strand();
    auto unopened = listener->attach_peer(ex_local, "127.0.0.1", rec_local.events());
    fd_holder early = tcp_connect(listener->port());
    EXPECT_TRUE(wait_closed(early.fd));
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 2; }));
    on(ex, [&] { return link->close(); });
}

TEST(TcpListener, BindFailureAndBadAddressesThrow) {
    io_runner run;
    auto first = ft::make_tcp_listener(run.io, "127.0.0.1", 0);
    EXPECT_THROW(ft::make_tcp_listener(run.io, "127.0.0.1", first->port()), std::system_error);
    EXPECT_THROW(ft::make_tcp_listener(run.io, "not-an-address", 0), std::system_error);
    EXPECT_THROW(first->attach_peer(run.strand(), "not-an-address", {}), std::invalid_argument);
}

}  // namespace
}  // namespace transport_test
