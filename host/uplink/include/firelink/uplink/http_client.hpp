// One HTTP/1.1 connection to the platform on libcurl: keep-alive, HTTPS with a CA file and an optional client
// certificate, a bearer token, the protocol's headers (docs/uplink-protocol.md, "Transport"). Not thread-safe: one
// client per thread. abort() (any thread) ends a request in flight at once, for shutdown.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace firelink::uplink {

struct http_options {
    std::string base_url;  // the site file's [uplink] url, without a trailing '/'
    std::string token;     // bearer token; empty: no Authorization header
    std::string ca_file;
    std::string client_cert;
    std::string client_key;
    std::string gateway_id;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds timeout{10000};  // a whole request
    // A platform's answer is an acknowledgement or a command list: small. Beyond these the transfer is aborted and
    // the request fails (the events stay queued), so a broken or hostile platform cannot make the gateway buffer
    // without limit. The protocol's answers are far below them (docs/uplink-protocol.md, "The acknowledgement").
    std::size_t max_response_bytes = 1u << 20;  // the body
    std::size_t max_header_bytes = 64u << 10;   // all header lines of one answer together
};

struct http_response {
    long status = 0;          // 0: no HTTP answer (see error)
    std::string error;        // transport failure: refused, timeout, TLS, an answer over the caps...
    bool too_large = false;   // aborted: the body or the headers went over http_options' caps (error says which)
    std::vector<std::uint8_t> body;
    std::string content_type;
    std::optional<std::chrono::milliseconds> retry_after;  // from Retry-After, at most 300 s
};

class http_client {
public:
    explicit http_client(http_options options);
    ~http_client();
    http_client(const http_client &) = delete;
    http_client &operator=(const http_client &) = delete;

    http_response post(std::string_view path, const std::vector<std::uint8_t> &body);
    // GET with its own timeout (a long poll).
    http_response get(std::string_view path_and_query, std::chrono::milliseconds timeout);

    void abort() { aborted_ = true; }
    bool aborted() const { return aborted_; }

private:
    http_response perform(bool post, std::string_view path, const std::vector<std::uint8_t> *body,
                          std::chrono::milliseconds timeout);

    http_options options_;
    void *curl_ = nullptr;
    void *headers_ = nullptr;       // GET
    void *post_headers_ = nullptr;  // POST: with Content-Type
    std::atomic<bool> aborted_{false};
};

// Percent-encodes a query parameter value.
std::string url_encode(std::string_view s);

}  // namespace firelink::uplink
