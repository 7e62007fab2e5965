// The uplink's HTTP client against a hostile platform on a real loopback socket: an answer larger than the caps ends
// the request with a clear error, and the client's memory stays at the cap however much the platform sends.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include <firelink/uplink/http_client.hpp>

namespace {

// Answers every request with `head` and then, for `chunked`, endless 64 KiB chunks until the client goes away.
class hostile_platform {
public:
    hostile_platform(std::string head, bool chunked) : head_(std::move(head)), chunked_(chunked) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
        port_ = ntohs(a.sin_port);
        ::listen(fd_, 4);
        thread_ = std::thread([this] { serve(); });
    }
    ~hostile_platform() {
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::uint64_t sent() const { return sent_; }

private:
    void serve() {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[4096];
        std::string req;
        while (req.find("\r\n\r\n") == std::string::npos) {
            const auto n = ::read(c, buf, sizeof buf);
            if (n <= 0) break;
            req.append(buf, static_cast<std::size_t>(n));
        }
        const std::string chunk = "10000\r\n" + std::string(0x10000, 'z') + "\r\n";
        bool ok = ::send(c, head_.data(), head_.size(), MSG_NOSIGNAL) > 0;
        while (ok && chunked_ && sent_ < (1ull << 30)) {
            ok = ::send(c, chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0;
            if (ok) sent_ += 0x10000;
        }
        ::close(c);
    }
    std::string head_;
    bool chunked_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<std::uint64_t> sent_{0};
    std::thread thread_;
};

// What a client with options `o` (its base_url made `p`'s) gets for posting one batch, an empty msgpack array.
firelink::uplink::http_response post_batch(const hostile_platform &p, firelink::uplink::http_options o = {}) {
    o.base_url = p.url();
    firelink::uplink::http_client client(o);
    return client.post("/v1/events", std::vector<std::uint8_t>{0x90});
}

}  // namespace

TEST(HttpClient, AnEndlessChunkedBodyIsCutAtTheCap) {
    hostile_platform p("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n", true);
    firelink::uplink::http_options o;
    o.max_response_bytes = 1 << 20;
    const auto r = post_batch(p, o);
    EXPECT_TRUE(r.too_large);
    EXPECT_EQ(r.error, "response body over 1048576 bytes");
    EXPECT_LE(r.body.size(), 1u << 20);
}

TEST(HttpClient, AContentLengthOverTheCapFailsBeforeTheBody) {
    hostile_platform p("HTTP/1.1 200 OK\r\nContent-Length: 268435456\r\n\r\n", false);
    const auto r = post_batch(p);
    EXPECT_TRUE(r.too_large);
    EXPECT_NE(r.error.find("response body over"), std::string::npos) << r.error;
    EXPECT_TRUE(r.body.empty());
}

TEST(HttpClient, EndlessHeadersEndTheRequest) {
    std::string head = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < 4000; ++i) head += "X-Filler-" + std::to_string(i) + ": " + std::string(40, 'h') + "\r\n";
    head += "\r\n";
    hostile_platform p(head, false);
    const auto r = post_batch(p);
    EXPECT_TRUE(r.too_large);
    EXPECT_NE(r.error.find("response headers over"), std::string::npos) << r.error;
}
