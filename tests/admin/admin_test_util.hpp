// What the admin tests share: libcurl for ordinary requests, a raw Beast/Asio client for what a well-behaved client
// never sends, and token files in a temporary folder.
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include <sys/stat.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <curl/curl.h>

#include "temp_dir.hpp"

namespace admin_test {

using namespace std::chrono_literals;

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// The token the fixtures' token files grant the admin role, and the header that carries it in raw requests.
inline const std::string test_admin_token = "7f0c4e1d9a2b6e35c8d1f04a9b7e2c61d5a8f3b0e4c7d2a9f6b1e8c3d0a5f7b2";
inline const std::string auth_line = "Authorization: Bearer " + test_admin_token + "\r\n";

using firelink_test::temp_dir;

inline std::filesystem::path write_file(const std::filesystem::path &file, const std::string &text,
                                        mode_t mode = 0600) {
    std::ofstream(file, std::ios::binary) << text;
    if (::chmod(file.c_str(), mode) != 0) throw std::runtime_error("chmod failed");
    return file;
}

// A token file granting test_admin_token the admin role (as "root-op"), and `more` lines.
inline std::filesystem::path write_tokens(const std::filesystem::path &dir, const std::string &more = "") {
    return write_file(dir / "admin-tokens", "admin root-op " + test_admin_token + "\n" + more);
}

// ---- libcurl: one request, everything a test looks at ----

struct http_result {
    CURLcode code = CURLE_OK;
    long status = 0;
    std::string content_type;
    std::string headers;  // the raw header block
    std::string body;
};

inline size_t append(char *data, size_t size, size_t n, void *out) {
    static_cast<std::string *>(out)->append(data, size * n);
    return size * n;
}

// `authorization`: the Authorization header's value; "" sends none. By default the admin token every fixture's
// token file grants (write_tokens).
inline http_result fetch(const std::string &url, const std::string &method = "GET", const std::string *body = nullptr,
                         bool expect_continue = false, const std::string &authorization = "Bearer " + test_admin_token,
                         long timeout_ms = 10000) {
    http_result r;
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
    curl_slist *headers = nullptr;
    headers = curl_slist_append(headers, expect_continue ? "Expect: 100-continue" : "Expect:");
    if (!authorization.empty()) headers = curl_slist_append(headers, ("Authorization: " + authorization).c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body->data() : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body ? body->size() : 0));
    } else if (method != "GET") {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    r.code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    char *type = nullptr;
    if (curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type) r.content_type = type;
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return r;
}

inline std::string lower(std::string s) {
    for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// ---- a raw client on its own io_context: every wait has a deadline, and a deadline never closes the socket ----

class raw_client {
public:
    explicit raw_client(std::uint16_t port) : socket_(ioc_) {
        socket_.connect({net::ip::make_address("127.0.0.1"), port});
    }

    void send(const std::string &bytes) { net::write(socket_, net::buffer(bytes)); }

    // A response, or nothing when none came within `limit` (error() says why).
    std::optional<http::response<http::string_body>> read_response(std::chrono::milliseconds limit) {
        http::response<http::string_body> res;
        error_ = run_for(limit, [&](auto done) { http::async_read(socket_, buffer_, res, done); });
        if (error_) return std::nullopt;
        return res;
    }

    // Reads until the server closes the connection: true if it did within `limit` (data before the close is
    // dropped).
    bool closed_within(std::chrono::milliseconds limit) {
        const auto until = std::chrono::steady_clock::now() + limit;
        char sink[4096];
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
            if (left <= 0ms) return false;
            error_ = run_for(left, [&](auto done) { socket_.async_read_some(net::buffer(sink), done); });
            if (error_ == net::error::operation_aborted) return false;  // our deadline
            if (error_) return true;                                     // eof or reset
        }
    }

    beast::error_code error() const { return error_; }

private:
    template <typename Start>
    beast::error_code run_for(std::chrono::milliseconds limit, Start start) {
        ioc_.restart();
        std::optional<beast::error_code> result;
        net::steady_timer timer(ioc_, limit);
        timer.async_wait([&](beast::error_code ec) {
            if (!ec) socket_.cancel();
        });
        start([&](beast::error_code ec, std::size_t) {
            result = ec;
            timer.cancel();
        });
        ioc_.run();
        return *result;
    }

    net::io_context ioc_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
    beast::error_code error_;
};


}  // namespace admin_test
