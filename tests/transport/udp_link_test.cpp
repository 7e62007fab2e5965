// The UDP link against a peer socket on 127.0.0.1.
#include "transport_test_support.hpp"

namespace transport_test {
namespace {

fd_holder udp_socket() {
    fd_holder s(::socket(AF_INET, SOCK_DGRAM, 0));
    auto a = loopback(0);
    ::bind(s.fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    return s;
}

// Receives one datagram; returns its bytes and sender port.
std::pair<std::string, std::uint16_t> receive(int fd) {
    if (!wait_readable(fd, patience)) return {};
    char buf[2048];
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&from), &len);
    if (n < 0) return {};
    return {std::string(buf, static_cast<std::size_t>(n)), ntohs(from.sin_port)};
}

void send_to(int fd, std::uint16_t port, const std::string &s) {
    const auto a = loopback(port);
    ::sendto(fd, s.data(), s.size(), 0, reinterpret_cast<const sockaddr *>(&a), sizeof a);
}

// Each test's link talks to `peer`, a UDP socket on 127.0.0.1.
class UdpLink : public link_test {
protected:
    void SetUp() override { link = ft::make_udp_link(ex, "127.0.0.1", local_port(peer.fd), rec.events()); }

    fd_holder peer = udp_socket();
};

TEST_F(UdpLink, DatagramsBothWaysAndStrangersAreDropped) {
    EXPECT_EQ(link->kind(), FL_TRANSPORT_UDP);
    EXPECT_EQ(write("ping"), FL_CLOSED);
    open_link();
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));

    EXPECT_EQ(write("ping"), FL_OK);
    const auto [got, link_port] = receive(peer.fd);
    EXPECT_EQ(got, "ping");
    ASSERT_NE(link_port, 0);

    send_to(peer.fd, link_port, "pong");
    EXPECT_TRUE(rec.wait_data("pong"));

    fd_holder stranger = udp_socket();
    send_to(stranger.fd, link_port, "spoof");
    ASSERT_TRUE(eventually([&] { return link->counters().errors == 1; }));
    EXPECT_EQ(link->counters().bytes_discarded, 5u) << "read and not delivered: counted";
    send_to(peer.fd, link_port, "pong2");
    EXPECT_TRUE(rec.wait_data("pongpong2")) << "the stranger's datagram was never delivered";

    // Request over UDP: the reply timer runs as on any link.
    const auto ping = bytes("ping");
    EXPECT_EQ(on(ex, [&] { return link->request(ping.data(), ping.size(), 50ms); }), FL_OK);
    EXPECT_EQ(receive(peer.fd).first, "ping");
    ASSERT_TRUE(rec.wait_state(FL_LINK_REPLY_TIMEOUT));

    const auto c = link->counters();
    EXPECT_EQ(c.bytes_in, 9u);
    EXPECT_EQ(c.bytes_out, 8u);
    on(ex, [&] {
        link->close();
        rec.mark_closed();
        return 0;
    });
    send_to(peer.fd, link_port, "late");
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(rec.late_calls(), 0);
}

// UDP has no flow control: a paused link leaves datagrams in the socket's receive buffer (the kernel drops what does
// not fit) and delivers them on resume.
TEST_F(UdpLink, PausedLinkReceivesNothingAndDeliversTheWaitingDatagramsOnResume) {
    open_link();
    ASSERT_TRUE(rec.wait_state(FL_LINK_OPEN));
    EXPECT_EQ(write("hi"), FL_OK);
    const std::uint16_t link_port = receive(peer.fd).second;
    ASSERT_NE(link_port, 0);

    on(ex, [&] { link->set_paused(true); });
    EXPECT_EQ(link->counters().pauses, 1u);
    std::string expected;
    for (int i = 0; i < 20; ++i) {
        const std::string d = "d" + std::to_string(i) + ";";
        send_to(peer.fd, link_port, d);
        expected += d;
    }
    std::this_thread::sleep_for(300ms);
    EXPECT_LE(rec.data_calls(), 1u) << "only the receive already waiting when the link paused";
    EXPECT_EQ(rec.received(), expected.substr(0, rec.received_size()));

    on(ex, [&] { link->set_paused(false); });
    EXPECT_TRUE(rec.wait_data(expected)) << rec.received();
    EXPECT_EQ(rec.data_calls(), 20u) << "one call per datagram";
    const auto c = link->counters();
    EXPECT_EQ(c.bytes_in, expected.size());
    EXPECT_EQ(c.bytes_discarded, 0u);
    close_link();
}

}  // namespace
}  // namespace transport_test
