// admin_server over real HTTP on 127.0.0.1: libcurl for ordinary requests, a raw Beast/Asio client for the cases a
// well-behaved client never makes (half a request, pipelined requests, an idle keep-alive at stop()).
//
// The server's io_context runs on ONE thread, so a server that blocked on one connection would starve the others.
// Deadlines here are generous upper bounds, never expected durations.
#include <firelink/admin/admin_server.hpp>
#include <firelink/admin/host_metrics.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "admin_test_util.hpp"

using namespace std::chrono_literals;
using firelink::admin::admin_handlers;
using firelink::admin::admin_options;
using firelink::admin::admin_server;

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using namespace admin_test;

namespace {

// ---- the fixture: a server on an ephemeral loopback port, its io_context on one thread ----

class AdminServer : public ::testing::Test {
protected:
    AdminServer() {
        handlers_.metrics_text = [] { return std::string("firelink_up 1\n"); };
        handlers_.health = [this] {
            return firelink::admin::health_answer{healthy_,
                                                  healthy_ ? R"({"status":"ok"})" : R"({"status":"degraded"})"};
        };
        handlers_.devices_json = [] { return std::string(R"([{"id":"valve-3","state":"started"}])"); };
        handlers_.command = [this](const firelink::admin::principal &, const std::string &id, const std::string &body) {
            last_device_ = id;
            last_body_ = body;
            return std::pair<unsigned, std::string>{202, json{{"id", "cmd-1"}, {"device", id}}.dump()};
        };
        handlers_.reload = [](const firelink::admin::principal &) { return std::pair<unsigned, std::string>{200, R"({"reloaded":3})"}; };
    }

    ~AdminServer() override {
        if (server_) server_->stop();
        if (!run_ended_within(10s)) {
            ADD_FAILURE() << "the io_context still had work 10 s after stop()";
            ioc_.stop();
        }
        if (thread_.joinable()) thread_.join();
    }

    // With a token file granting test_admin_token the admin role, which fetch() and auth_line send, unless the
    // options name another.
    void start(admin_options options = {}) {
        if (options.token_file.empty()) options.token_file = write_tokens(dir_.path());
        server_ = std::make_unique<admin_server>(ioc_, std::move(options), handlers_);
        server_->start();
        thread_ = std::thread([this] {
            ioc_.run();
            ran_out_.set_value();
        });
    }

    bool run_ended_within(std::chrono::milliseconds limit) {
        if (!thread_.joinable()) return true;
        return ran_out_future_.wait_for(limit) == std::future_status::ready;
    }

    // Sends `request` as it is on a connection of its own: the server answers it with `status`, then closes.
    void expect_answer_then_close(const std::string &request, int status) {
        raw_client c(server_->port());
        c.send(request);
        const auto res = c.read_response(10s);
        ASSERT_TRUE(res) << c.error().message();
        EXPECT_EQ(res->result_int(), status);
        EXPECT_TRUE(c.closed_within(10s));
    }

    std::string url(const std::string &path) const {
        return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
    }

    temp_dir dir_;
    net::io_context ioc_;
    admin_handlers handlers_;
    std::unique_ptr<admin_server> server_;
    std::thread thread_;
    std::promise<void> ran_out_;
    std::future<void> ran_out_future_ = ran_out_.get_future();
    std::string last_device_, last_body_;
    std::atomic<bool> healthy_{true};  // what the health handler says, set by a test
};

}  // namespace

TEST_F(AdminServer, BindsAnEphemeralLoopbackPort) {
    start();
    EXPECT_NE(server_->port(), 0);
    EXPECT_TRUE(server_->local_endpoint().address().is_loopback());
}

TEST_F(AdminServer, MetricsServesTheHostMetrics) {
    firelink::admin::host_metrics metrics("9.9.9");
    handlers_.metrics_text = [&metrics] { return metrics.serialize(); };
    start();
    metrics.event_accepted("gas_shutoff_valve", "alarm");
    metrics.event_accepted("gas_shutoff_valve", "alarm");
    metrics.device_state("valve-3", "started");
    metrics.device_state("valve-3", "offline");

    const auto r = fetch(url("/metrics"));
    ASSERT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type.rfind("text/plain; version=0.0.4", 0), 0u) << r.content_type;
    EXPECT_NE(r.body.find("\nfirelink_events_total{device_class=\"gas_shutoff_valve\",kind=\"alarm\"} 2\n"),
              std::string::npos)
        << r.body;
    EXPECT_NE(r.body.find("\nfirelink_device_state{device=\"valve-3\",state=\"offline\"} 1\n"), std::string::npos);
    EXPECT_NE(r.body.find("\nfirelink_device_state{device=\"valve-3\",state=\"started\"} 0\n"), std::string::npos);
    EXPECT_NE(r.body.find("\nfirelink_build_info{version=\"9.9.9\"} 1\n"), std::string::npos);
}

TEST_F(AdminServer, JsonEndpointsServeTheirHandlersBodies) {
    start();
    const auto health = fetch(url("/healthz"));
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(health.content_type, "application/json");
    EXPECT_EQ(health.body, R"({"status":"ok"})");

    const auto devices = fetch(url("/api/devices"));
    EXPECT_EQ(devices.status, 200);
    EXPECT_EQ(devices.content_type, "application/json");
    EXPECT_EQ(devices.body, R"([{"id":"valve-3","state":"started"}])");

    const auto reload = fetch(url("/api/reload"), "POST");
    EXPECT_EQ(reload.status, 200);
    EXPECT_EQ(reload.content_type, "application/json");
    EXPECT_EQ(reload.body, R"({"reloaded":3})");
}

TEST_F(AdminServer, AQueryStringDoesNotChangeTheRoute) {
    start();
    EXPECT_EQ(fetch(url("/healthz?verbose=1")).status, 200);
}

// A monitor reads the status from the body and always gets it; a load balancer reads only the code (?strict).
TEST_F(AdminServer, HealthIs200WithTheStatusInTheBodyAnd503OnlyWhenStrict) {
    start();
    healthy_ = false;
    const auto plain = fetch(url("/healthz"));
    EXPECT_EQ(plain.status, 200);
    EXPECT_EQ(plain.body, R"({"status":"degraded"})");
    for (const char *strict : {"/healthz?strict", "/healthz?strict=1", "/healthz?strict=true", "/healthz?x=2&strict"}) {
        const auto r = fetch(url(strict));
        EXPECT_EQ(r.status, 503) << strict;
        EXPECT_EQ(r.body, R"({"status":"degraded"})") << strict;
    }
    EXPECT_EQ(fetch(url("/healthz?strict=0")).status, 200);
    EXPECT_EQ(fetch(url("/healthz?strictly")).status, 200);  // another parameter, not "strict"
    const auto bad = fetch(url("/healthz?strict=maybe"));
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("strict takes"), std::string::npos) << bad.body;
    healthy_ = true;
    EXPECT_EQ(fetch(url("/healthz?strict")).status, 200);
}

// Test hooks exist only where the host provides them: in production the route is an unknown path.
TEST_F(AdminServer, TestHooksAreAbsentUnlessProvided) {
    start();
    EXPECT_EQ(fetch(url("/api/test/wedge"), "POST").status, 404);
}

TEST_F(AdminServer, TestHooksGetTheirNameAndBody) {
    handlers_.test_hook = [](const std::string &name, const std::string &body) {
        return std::pair<unsigned, std::string>{202, json{{"hook", name}, {"body", body}}.dump()};
    };
    start();
    const std::string body = R"({"seconds":1})";
    const auto r = fetch(url("/api/test/wedge"), "POST", &body);
    EXPECT_EQ(r.status, 202);
    EXPECT_EQ(json::parse(r.body), (json{{"hook", "wedge"}, {"body", body}}));
    EXPECT_EQ(fetch(url("/api/test/wedge")).status, 405);
}

TEST_F(AdminServer, CommandGetsTheDecodedIdAndTheBody) {
    start();
    const std::string body = R"({"name":"close_valve","args":{}})";
    const auto r = fetch(url("/api/devices/floor%203%20valve-%E9%98%80/commands"), "POST", &body);
    ASSERT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
    EXPECT_EQ(r.status, 202);
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(last_device_, "floor 3 valve-阀");
    EXPECT_EQ(last_body_, body);
    EXPECT_EQ(json::parse(r.body).at("device"), "floor 3 valve-阀");
}

TEST_F(AdminServer, CommandStatusComesFromTheHandler) {
    handlers_.command = [](const firelink::admin::principal &, const std::string &, const std::string &) {
        return std::pair<unsigned, std::string>{409, R"({"error":"device offline"})"};
    };
    start();
    const std::string body = "{}";
    const auto r = fetch(url("/api/devices/d1/commands"), "POST", &body);
    EXPECT_EQ(r.status, 409);
    EXPECT_EQ(r.body, R"({"error":"device offline"})");
}

TEST_F(AdminServer, BadDeviceIdsAre400) {
    start();
    const std::string body = "{}";
    for (const char *path : {"/api/devices/a%2Fb/commands", "/api/devices/a%2fb/commands", "/api/devices//commands",
                             "/api/devices/a%zzb/commands", "/api/devices/ab%4/commands", "/api/devices/a%00b/commands"}) {
        const auto r = fetch(url(path), "POST", &body);
        EXPECT_EQ(r.status, 400) << path;
        EXPECT_EQ(r.content_type, "application/json") << path;
        EXPECT_TRUE(json::parse(r.body).contains("error")) << path;
    }
    EXPECT_TRUE(last_device_.empty());
}

TEST_F(AdminServer, UnknownPathsAre404Json) {
    start();
    for (const char *path : {"/", "/metric", "/api/devices/", "/api/devices/a/b/commands", "/api/devices/a/command",
                             "/healthz/extra"}) {
        const auto r = fetch(url(path));
        EXPECT_EQ(r.status, 404) << path;
        EXPECT_EQ(r.content_type, "application/json") << path;
        EXPECT_NE(json::parse(r.body).at("error").get<std::string>().find("no such endpoint"), std::string::npos);
    }
}

TEST_F(AdminServer, WrongMethodsAre405WithAllow) {
    start();
    const std::string body = "{}";
    struct case_ {
        const char *method, *path, *allow;
    };
    for (const auto &c : {case_{"POST", "/metrics", "GET"}, case_{"DELETE", "/healthz", "GET"},
                          case_{"PUT", "/api/devices", "GET"}, case_{"GET", "/api/reload", "POST"},
                          case_{"GET", "/api/devices/d1/commands", "POST"}}) {
        const auto r = fetch(url(c.path), c.method, &body);
        EXPECT_EQ(r.status, 405) << c.method << " " << c.path;
        EXPECT_NE(lower(r.headers).find("\nallow: " + lower(c.allow) + "\r\n"), std::string::npos)
            << c.method << " " << c.path << "\n" << r.headers;
        EXPECT_TRUE(json::parse(r.body).contains("error"));
    }
    EXPECT_TRUE(last_device_.empty());
}

TEST_F(AdminServer, BodiesOver64KiBAre413) {
    start();
    const std::string at_limit(64 * 1024, 'x');
    const auto fits = fetch(url("/api/devices/d1/commands"), "POST", &at_limit);
    EXPECT_EQ(fits.status, 202);
    EXPECT_EQ(last_body_.size(), at_limit.size());

    const std::string over(64 * 1024 + 1, 'x');
    last_body_.clear();
    const auto r = fetch(url("/api/devices/d1/commands"), "POST", &over, /*expect_continue=*/true);
    EXPECT_EQ(r.status, 413);
    EXPECT_TRUE(json::parse(r.body).contains("error"));
    EXPECT_TRUE(last_body_.empty());
}

TEST_F(AdminServer, A413ReachesAClientThatSentTheWholeBodyAtOnce) {
    start();
    raw_client c(server_->port());
    // No Expect: the body follows the header at once, so the server answers with unread bytes in its socket. It must
    // drain them before closing, or the kernel's reset could destroy the answer before the client reads it.
    c.send("POST /api/devices/d1/commands HTTP/1.1\r\nHost: x\r\n" + auth_line + "Content-Length: 200000\r\n\r\n" +
           std::string(200000, 'x'));
    const auto res = c.read_response(10s);
    ASSERT_TRUE(res) << c.error().message();
    EXPECT_EQ(res->result_int(), 413);
    EXPECT_FALSE(res->keep_alive());
    EXPECT_TRUE(c.closed_within(10s));
    EXPECT_TRUE(last_body_.empty());
}

TEST_F(AdminServer, AnswersExpectContinueBeforeTheBody) {
    start();
    raw_client c(server_->port());
    const std::string body = R"({"name":"ping"})";
    c.send("POST /api/devices/d1/commands HTTP/1.1\r\nHost: x\r\n" + auth_line + "Expect: 100-continue\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n");
    const auto interim = c.read_response(10s);
    ASSERT_TRUE(interim) << c.error().message();
    EXPECT_EQ(interim->result_int(), 100);
    c.send(body);
    const auto res = c.read_response(10s);
    ASSERT_TRUE(res) << c.error().message();
    EXPECT_EQ(res->result_int(), 202);
    EXPECT_EQ(last_body_, body);
}

TEST_F(AdminServer, AThrowingHandlerIs500AndTheServerGoesOn) {
    handlers_.devices_json = []() -> std::string { throw std::runtime_error("device table \"locked\""); };
    handlers_.reload = [](const firelink::admin::principal &) -> std::pair<unsigned, std::string> { throw 42; };
    start();
    const auto r = fetch(url("/api/devices"));
    ASSERT_EQ(r.code, CURLE_OK);
    EXPECT_EQ(r.status, 500);
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(json::parse(r.body).at("error"), "device table \"locked\"");

    const auto odd = fetch(url("/api/reload"), "POST");
    EXPECT_EQ(odd.status, 500);
    EXPECT_TRUE(json::parse(odd.body).contains("error"));

    EXPECT_EQ(fetch(url("/healthz")).status, 200);
}

TEST_F(AdminServer, AHandlerStatusOutsideHttpIs500) {
    handlers_.reload = [](const firelink::admin::principal &) { return std::pair<unsigned, std::string>{42, "{}"}; };
    start();
    EXPECT_EQ(fetch(url("/api/reload"), "POST").status, 500);
}

TEST_F(AdminServer, AMissingHandlerIs501) {
    handlers_.reload = nullptr;
    start();
    EXPECT_EQ(fetch(url("/api/reload"), "POST").status, 501);
}

TEST_F(AdminServer, AMalformedRequestIs400) {
    start();
    expect_answer_then_close("GET /metrics HTTP/9\r\n\r\n", 400);
}

TEST_F(AdminServer, AnOversizedHeaderIs431) {
    start();
    expect_answer_then_close("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(16 * 1024, 'h') + "\r\n\r\n",
                             431);
}

TEST_F(AdminServer, KeepAliveServesSeveralRequestsOnOneConnection) {
    start();
    raw_client c(server_->port());
    // Two requests pipelined in one write, then a third after the answers.
    c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /api/devices HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto first = c.read_response(10s);
    ASSERT_TRUE(first) << c.error().message();
    EXPECT_EQ(first->body(), R"({"status":"ok"})");
    EXPECT_TRUE(first->keep_alive());
    const auto second = c.read_response(10s);
    ASSERT_TRUE(second) << c.error().message();
    EXPECT_EQ(second->body(), R"([{"id":"valve-3","state":"started"}])");
    c.send("POST /api/reload HTTP/1.1\r\nHost: x\r\n" + auth_line + "Content-Length: 0\r\nConnection: close\r\n\r\n");
    const auto third = c.read_response(10s);
    ASSERT_TRUE(third) << c.error().message();
    EXPECT_EQ(third->result_int(), 200);
    EXPECT_FALSE(third->keep_alive());
    EXPECT_TRUE(c.closed_within(10s));
}

TEST_F(AdminServer, ASlowClientDoesNotBlockAnother) {
    // A deadline far longer than curl's 10 s limit: if the one server thread waited on the slow client, the second
    // request would time out.
    start({.request_timeout = 60s});
    raw_client slow(server_->port());
    slow.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Half: ");
    const auto r = fetch(url("/healthz"));
    ASSERT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
    EXPECT_EQ(r.status, 200);
    EXPECT_FALSE(slow.closed_within(50ms));  // still waiting for the rest of its request
}

TEST_F(AdminServer, AnIncompleteRequestIsClosedAtTheDeadline) {
    start({.request_timeout = 200ms});
    raw_client silent(server_->port());
    raw_client half(server_->port());
    half.send("POST /api/reload HTTP/1.1\r\nHost: x\r\n" + auth_line + "Content-Length: 10\r\n\r\n12345");
    EXPECT_TRUE(silent.closed_within(10s));
    EXPECT_TRUE(half.closed_within(10s));
    EXPECT_EQ(fetch(url("/healthz")).status, 200);
}

// Each connection holds a descriptor: a flood of silent ones takes max_connections of them, no more. One beyond is
// closed at accept; the slot frees when a connection goes.
TEST_F(AdminServer, ConnectionsBeyondTheCapAreClosedAtOnce) {
    start({.request_timeout = 60s, .max_connections = 3});
    std::vector<std::unique_ptr<raw_client>> held;
    for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<raw_client>(server_->port()));
    held[1]->send("GET /healthz HTTP/1.1\r\nHost: x\r\n");  // a slowloris: half a header
    raw_client one_too_many(server_->port());
    EXPECT_TRUE(one_too_many.closed_within(5s)) << "the 4th connection is closed at once, not at the deadline";
    for (auto &c : held) EXPECT_FALSE(c->closed_within(50ms)) << "the first 3 are still being served";
    EXPECT_NE(fetch(url("/healthz")).status, 200) << "no room for a 4th, however polite";

    held.pop_back();  // one goes: the next connection is served
    bool served = false;
    for (int i = 0; i < 100 && !served; ++i) {
        served = fetch(url("/healthz")).status == 200;
        if (!served) std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(served);
}

TEST_F(AdminServer, TheDeadlineCoversTheWholeRequestNotEachRead) {
    start({.request_timeout = 300ms});
    raw_client trickle(server_->port());
    trickle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    // A header line every 50 ms, forever: each read makes progress, the request never completes.
    const auto until = std::chrono::steady_clock::now() + 10s;
    bool closed = false;
    while (!closed && std::chrono::steady_clock::now() < until) {
        try {
            trickle.send("X-Drip: 1\r\n");
        } catch (const std::exception &) {
            closed = true;  // the server closed the connection
            break;
        }
        closed = trickle.closed_within(50ms);
    }
    EXPECT_TRUE(closed);
}

TEST_F(AdminServer, StopClosesAnIdleKeepAliveConnectionPromptly) {
    start({.request_timeout = 60s});
    raw_client idle(server_->port());
    idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto res = idle.read_response(10s);
    ASSERT_TRUE(res) << idle.error().message();
    ASSERT_TRUE(res->keep_alive());
    // A request on another connection: by the time it is answered, the one server thread has long since put the
    // first connection back to waiting for its next request, so stop() meets it idle rather than mid-response.
    ASSERT_EQ(fetch(url("/healthz")).status, 200);

    const auto before = std::chrono::steady_clock::now();
    server_->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - before, 1s);  // stop() itself does not wait
    // Far below the 60 s deadline: the io_context ran out of work because stop() closed the idle connection.
    EXPECT_TRUE(run_ended_within(10s));
    EXPECT_TRUE(idle.closed_within(10s));
}

TEST_F(AdminServer, StopRefusesNewConnections) {
    start();
    const auto port = server_->port();
    server_->stop();
    ASSERT_TRUE(run_ended_within(10s));
    net::io_context ioc;
    tcp::socket s(ioc);
    beast::error_code ec;
    s.connect({net::ip::make_address("127.0.0.1"), port}, ec);
    EXPECT_TRUE(ec) << "connected after stop()";
}

TEST(AdminServerBind, ABusyPortIsAClearError) {
    net::io_context ioc;
    admin_server first(ioc, {}, {});
    try {
        admin_server second(ioc, {.port = first.port()}, {});
        FAIL() << "bound a port already in use";
    } catch (const std::system_error &e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("admin endpoint 127.0.0.1:" + std::to_string(first.port())), std::string::npos) << what;
        EXPECT_NE(what.find("cannot bind"), std::string::npos) << what;
        EXPECT_EQ(e.code(), std::errc::address_in_use) << what;
    }
}

TEST(AdminServerBind, AnAddressNotOnThisMachineIsAClearError) {
    net::io_context ioc;
    try {
        admin_server server(ioc, {.host = "192.0.2.1", .port = 0}, {});  // TEST-NET-1, never local
        FAIL() << "bound 192.0.2.1";
    } catch (const std::system_error &e) {
        EXPECT_NE(std::string(e.what()).find("admin endpoint 192.0.2.1:0: cannot bind"), std::string::npos) << e.what();
    }
}

TEST(ListenAddress, ParsesHostPort) {
    using firelink::admin::parse_listen_address;
    auto a = parse_listen_address("127.0.0.1:9100");
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 9100);
    a = parse_listen_address("[::1]:0");
    EXPECT_EQ(a.host, "::1");
    EXPECT_EQ(a.port, 0);
    a = parse_listen_address("localhost:65535");
    EXPECT_EQ(a.host, "localhost");
    EXPECT_EQ(a.port, 65535);
    for (const char *bad : {"", "127.0.0.1", ":9100", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:9x", "::1:9100",
                            "[::1]9100", "[::1:9100", "127.0.0.1:-1"})
        EXPECT_THROW(parse_listen_address(bad), std::invalid_argument) << bad;
}
