// The TCP listener devices connect in to: binding by peer address, binding by identity from the first bytes, and
// closing what nobody claims.
#include <system_error>
#include <vector>

#include "log_capture.hpp"
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

// Each test's devices attach to `listener`, on 127.0.0.1 and an ephemeral port; `link` is the device of the tests
// that need one.
class TcpListener : public link_test {
protected:
    void attach_peer(const std::string &peer) { link = listener->attach_peer(ex, peer, rec.events()); }
    void attach_identity(const std::string &identity) {
        link = listener->attach_identity(ex, identity, rec.events());
    }

    std::shared_ptr<ft::tcp_listener> listener = ft::make_tcp_listener(run.io, "127.0.0.1", 0);
};

TEST_F(TcpListener, BindsADeviceByPeerAddress) {
    ASSERT_NE(listener->port(), 0);
    attach_peer("127.0.0.1");
    EXPECT_EQ(link->kind(), FL_TRANSPORT_TCP_ACCEPTED);
    const auto b = bytes("to device");

    EXPECT_EQ(on(ex, [&] { return link->write(b.data(), b.size()); }), FL_CLOSED);
    open_link();
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

TEST_F(TcpListener, BindsDevicesByIdentityAndDeliversTheFirstBytesInOrder) {
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

TEST_F(TcpListener, ClosesConnectionsNobodyClaims) {
    listener->set_identifier(identify_by_first_line);
    attach_identity("A");
    open_link();

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
    close_link();
}

// The protocol has no authentication: a second connection naming a connected device must not take it over (it
// could inject alarms and end the real ones). It is closed, the live one keeps flowing, and the conflict is reported
// with the newcomer's address, once and then at most once a minute, counting the rest.
TEST_F(TcpListener, ASecondConnectionClaimingAConnectedIdentityIsRefused) {
    listener->set_identifier(identify_by_first_line);
    std::mutex mu;
    std::vector<std::string> reports;
    listener->set_conflict_handler([&](const std::string &identity, const std::string &peer, const std::string &what) {
        std::lock_guard lock(mu);
        reports.push_back(identity + "|" + peer + "|" + what);
    });
    attach_identity("A");
    open_link();
    fd_holder real = tcp_connect(listener->port());
    write_all(real.fd, "ID:A\n1");
    ASSERT_TRUE(rec.wait_data("ID:A\n1"));

    for (int i = 0; i < 3; ++i) {
        fd_holder forger = tcp_connect(listener->port());
        write_all(forger.fd, "ID:A\nforged");
        EXPECT_TRUE(wait_closed(forger.fd)) << "the newcomer is closed";
    }
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 3; }));
    EXPECT_FALSE(wait_closed(real.fd, 100ms)) << "the live connection stays";
    write_all(real.fd, "2");
    EXPECT_TRUE(rec.wait_data("ID:A\n12")) << "and keeps flowing, with nothing of the forger's";
    EXPECT_EQ(rec.count(FL_LINK_OPEN), 1) << "never replaced";
    {
        std::lock_guard lock(mu);
        ASSERT_EQ(reports.size(), 1u) << "reported once, the rest counted for the next report";
        EXPECT_EQ(reports[0].rfind("A|127.0.0.1:", 0), 0u) << reports[0];
        EXPECT_NE(reports[0].find("claimed identity 'A', which is connected from 127.0.0.1:"), std::string::npos)
            << reports[0];
    }

    // Once the device's own connection ends, its next connection is taken as always.
    real.reset();
    ASSERT_TRUE(rec.wait_state(FL_LINK_LOST));
    fd_holder again = tcp_connect(listener->port());
    write_all(again.fd, "ID:A\n3");
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 2));
    EXPECT_TRUE(rec.wait_data("ID:A\n12ID:A\n3"));
    close_link();
}

// A device that reconnects as soon as it is refused (a panel whose identity no open device has) costs a few log
// lines and one count per window, not a line per connection.
TEST_F(TcpListener, RefusalsAreLoggedAFewAtATimeAndTheRestCounted) {
    log_capture logs;
    attach_peer("192.0.2.7");  // some other device
    open_link();
    for (int i = 0; i < 200; ++i) {
        fd_holder client = tcp_connect(listener->port());
        ASSERT_TRUE(wait_closed(client.fd));
    }
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 200; }));
    EXPECT_EQ(logs.count("closed a connection from 127.0.0.1"), 5u);
    EXPECT_EQ(logs.count("are counted, not logged"), 1u);
    close_link();
}

// A stopping host closes the acceptor before its devices: a device that reconnects meanwhile is refused by the
// kernel (nothing is listening) instead of accepted, identified and closed, with a warning each time.
TEST_F(TcpListener, StopAcceptingReleasesThePortAndKeepsTheConnectedDevices) {
    log_capture logs;
    attach_peer("127.0.0.1");
    open_link();
    fd_holder device = tcp_connect(listener->port());
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    listener->stop_accepting();
    ASSERT_TRUE(logs.wait("no longer accepting"));
    EXPECT_FALSE(tcp_connect(listener->port())) << "the port is released";
    write_all(device.fd, "still here");
    EXPECT_TRUE(rec.wait_data("still here")) << "a connected device keeps its connection";
    close_link();
    EXPECT_TRUE(wait_closed(device.fd));
    EXPECT_EQ(logs.count("closed a connection"), 0u);
    EXPECT_EQ(listener->unmatched_connections(), 0u);
}

TEST_F(TcpListener, WithoutAMatchOrAnIdentifierTheConnectionIsClosed) {
    attach_peer("192.0.2.7");  // some other device
    open_link();
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
    close_link();
}

TEST_F(TcpListener, PausedConnectionBlocksTheDeviceAndResumeDeliversEveryByteAlsoAfterAReconnect) {
    attach_peer("127.0.0.1");
    open_link();
    fd_holder device = tcp_connect(listener->port());
    ASSERT_TRUE(device);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    on(ex, [&] { link->set_paused(true); });
    EXPECT_EQ(link->counters().pauses, 1u);
    const std::string payload = pattern(8 << 20);
    ASSERT_TRUE(expect_stall_then_full_delivery(ex, *link, rec, device.fd, payload));

    // The device reconnects while the link is paused: the new connection replaces the old one and stays paused.
    on(ex, [&] { link->set_paused(true); });
    fd_holder newer = tcp_connect(listener->port());
    ASSERT_TRUE(newer);
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN, 2));
    EXPECT_TRUE(wait_closed(device.fd)) << "the replaced connection is closed";
    write_all(newer.fd, "fresh");
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(rec.received_size(), payload.size()) << "nothing read from the new connection while paused";
    EXPECT_TRUE(on(ex, [&] { return link->paused(); }));
    on(ex, [&] { link->set_paused(false); });
    EXPECT_TRUE(rec.wait_large(payload + "fresh"));
    const auto c = link->counters();
    EXPECT_EQ(c.bytes_in, payload.size() + 5);
    EXPECT_EQ(c.bytes_discarded, 0u);
    EXPECT_EQ(c.pauses, 2u);
    close_link();
}

// The bytes identify read are delivered even to a paused device (they are out of the kernel); the rest wait.
TEST_F(TcpListener, APausedDeviceGetsTheIdentifiedBytesAndNothingMoreUntilResume) {
    listener->set_identifier(identify_by_first_line);
    attach_identity("A");
    on(ex, [&] {
        link->set_paused(true);
        return link->open();
    });
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPENING));

    const std::string payload = "ID:A\n" + pattern(8 << 20);  // more than both kernels buffer
    fd_holder device = tcp_connect(listener->port());
    ASSERT_TRUE(device);
    set_nonblocking(device.fd);
    const std::size_t sent = write_until_stalled(device.fd, payload, 0);
    EXPECT_LT(sent, payload.size()) << "the device's writes never blocked";
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    std::this_thread::sleep_for(200ms);
    const std::size_t first = rec.received_size();
    EXPECT_GE(first, 5u) << "the identified bytes are delivered";
    EXPECT_LE(first, 4096u) << "identify holds at most 4 KiB";
    EXPECT_EQ(rec.data_calls(), 1u);

    on(ex, [&] { link->set_paused(false); });
    write_rest(device.fd, payload, sent);
    EXPECT_TRUE(rec.wait_large(payload));
    close_link();
}

// What a listener holds for strangers is bounded: a peer sending endless bytes without identifying is closed after
// 4 KiB, and at most 64 connections identify at once (more are closed at accept); each refusal is counted.
TEST_F(TcpListener, StrangersAreBoundedInBytesAndInNumber) {
    listener->set_identifier(identify_by_first_line);

    fd_holder endless = tcp_connect(listener->port());
    ASSERT_TRUE(endless);
    set_nonblocking(endless.fd);
    const std::string garbage = "ID:" + std::string(64 << 20, 'x');  // never a newline: identify keeps asking
    std::size_t sent = 0;
    bool refused = false;
    const auto until = std::chrono::steady_clock::now() + patience;
    while (!refused && sent < garbage.size() && std::chrono::steady_clock::now() < until) {
        // send with MSG_NOSIGNAL: writing to the connection the listener reset must not SIGPIPE the test.
        const ssize_t n = ::send(endless.fd, garbage.data() + sent, std::min<std::size_t>(garbage.size() - sent, 65536),
                                 MSG_NOSIGNAL);
        if (n > 0) sent += static_cast<std::size_t>(n);
        else if (errno == EPIPE || errno == ECONNRESET) refused = true;
        else std::this_thread::sleep_for(1ms);
    }
    EXPECT_TRUE(refused) << "the listener kept taking bytes from a peer that never identified (" << sent << " sent)";
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 1; }));

    std::vector<fd_holder> silent;
    for (int i = 0; i < 64; ++i) {
        silent.push_back(tcp_connect(listener->port()));
        ASSERT_TRUE(silent.back());
    }
    fd_holder one_too_many = tcp_connect(listener->port());
    ASSERT_TRUE(one_too_many);
    EXPECT_TRUE(wait_closed(one_too_many.fd)) << "the 65th identifying connection is closed";
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 2; }));
    EXPECT_FALSE(wait_closed(silent.front().fd, 100ms)) << "the first 64 are still identifying";

    // A slot frees when one of them goes: the next connection is identified again.
    attach_identity("A");
    open_link();
    silent.front().reset();
    ASSERT_TRUE(eventually([&] { return listener->unmatched_connections() == 3; }));  // it closed unidentified
    fd_holder device = tcp_connect(listener->port());
    write_all(device.fd, "ID:A\nhi");
    EXPECT_TRUE(rec.wait_data("ID:A\nhi"));
    close_link();
}

// The caps come from the site file ([[listener]] max_unbound, identify_timeout_ms): a flood beyond max_unbound is
// closed at accept while a bound device keeps flowing, and a silent connection goes at identify_timeout.
TEST_F(TcpListener, ConfiguredLimitsBoundTheUnboundAndNeverTheBound) {
    // In place of the fixture's listener, one with the configured limits.
    listener = ft::make_tcp_listener(run.io, "127.0.0.1", 0, {.max_unbound = 2, .identify_timeout = 2s});
    listener->set_identifier(identify_by_first_line);
    attach_identity("A");
    open_link();
    fd_holder device = tcp_connect(listener->port());
    write_all(device.fd, "ID:A\n1");
    ASSERT_TRUE(rec.wait_data("ID:A\n1"));

    std::vector<fd_holder> silent;
    for (int i = 0; i < 2; ++i) silent.push_back(tcp_connect(listener->port()));
    std::vector<fd_holder> flood;
    for (int i = 0; i < 50; ++i) flood.push_back(tcp_connect(listener->port()));
    for (auto &f : flood) EXPECT_TRUE(wait_closed(f.fd, 1s)) << "beyond max_unbound: closed at accept";
    write_all(device.fd, "2");
    EXPECT_TRUE(rec.wait_data("ID:A\n12")) << "the bound device keeps flowing";
    EXPECT_FALSE(wait_closed(silent[0].fd, 50ms)) << "the first two are still given their time";
    for (auto &s : silent) EXPECT_TRUE(wait_closed(s.fd, 10s)) << "and closed once identify_timeout passes";
    EXPECT_TRUE(eventually([&] { return listener->unmatched_connections() == 52; }));
    EXPECT_FALSE(wait_closed(device.fd, 50ms));
    close_link();
}

TEST_F(TcpListener, BindFailureAndBadAddressesThrow) {
    EXPECT_THROW(ft::make_tcp_listener(run.io, "127.0.0.1", listener->port()), std::system_error);
    EXPECT_THROW(ft::make_tcp_listener(run.io, "not-an-address", 0), std::system_error);
    EXPECT_THROW(listener->attach_peer(run.strand(), "not-an-address", {}), std::invalid_argument);
}

}  // namespace
}  // namespace transport_test
