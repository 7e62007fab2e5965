// Authentication on the admin endpoint, over real sockets on loopback: who may call which route, that a refusal
// never reaches a handler nor reads a body, anonymous reads, refusal counting, and TLS with client certificates.
//
// Every handler here sets a flag when called, so "refused" is proven by the handler not having run, not only by
// the status code.
#include <firelink/admin/admin_server.hpp>
#include <firelink/admin/host_metrics.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <ifaddrs.h>
#include <netinet/in.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "admin_test_util.hpp"

using namespace std::chrono_literals;
using namespace admin_test;
using firelink::admin::admin_options;
using firelink::admin::admin_server;
using firelink::admin::anonymous_reads;
using firelink::admin::principal;
using firelink::admin::role;
using json = nlohmann::json;

namespace {

const std::string read_token = "read-token-0123456789abcdef0123456789abcdef";
const std::string operate_token = "operate-token-0123456789abcdef0123456789ab";

// admin_options with what a test sets (designated initializers would warn of every field left out).
struct opts {
    admin_options o;
    opts &tokens(std::filesystem::path file) { return o.token_file = std::move(file), *this; }
    opts &anonymous(anonymous_reads a) { return o.anonymous_read = a, *this; }
    opts &timeout(std::chrono::milliseconds t) { return o.request_timeout = t, *this; }
    opts &host(std::string h) { return o.host = std::move(h), *this; }
    opts &tls(firelink::admin::tls_options t) { return o.tls = std::move(t), *this; }
    operator admin_options() const { return o; }
};

// The error with which an admin server refuses to start with `options`, or "" when it starts.
std::string start_error(const admin_options &options) {
    net::io_context ioc;
    try {
        admin_server server(ioc, options, {});
        return "";
    } catch (const std::runtime_error &e) {
        return e.what();
    }
}

class AdminAuth : public ::testing::Test {
protected:
    AdminAuth() {
        handlers_.metrics_text = [] { return std::string("firelink_up 1\n"); };
        handlers_.devices_json = [] { return std::string("[]"); };
        handlers_.command = [this](const principal &who, const std::string &, const std::string &) {
            remember(who);
            return std::pair<unsigned, std::string>{202, R"({"id":"cmd-1"})"};
        };
        handlers_.select = [this](const principal &who, const std::string &, const std::string &) {
            remember(who);
            return std::pair<unsigned, std::string>{200, "{}"};
        };
        handlers_.cancel = [this](const principal &who, const std::string &) {
            remember(who);
            return std::pair<unsigned, std::string>{200, "{}"};
        };
        handlers_.mode = [this](const principal &who, const std::string &, const std::string &) {
            remember(who);
            return std::pair<unsigned, std::string>{200, "{}"};
        };
        handlers_.reload = [this](const principal &who) {
            remember(who);
            return std::pair<unsigned, std::string>{200, "{}"};
        };
        handlers_.test_hook = [this](const std::string &, const std::string &) {
            called_ = true;
            return std::pair<unsigned, std::string>{200, "{}"};
        };
    }

    ~AdminAuth() override {
        if (server_) server_->stop();
        if (thread_.joinable()) thread_.join();
    }

    void remember(const principal &who) {
        std::lock_guard lock(mutex_);
        who_ = who;
        called_ = true;
    }

    // The grants of the tests: read_token (prometheus), operate_token (alice), test_admin_token (root-op).
    std::filesystem::path tokens() {
        return write_tokens(dir_.path(), "read prometheus " + read_token + "\noperate alice " + operate_token + "\n");
    }

    void start(admin_options options) {
        options.on_refusal = [this](std::string_view reason) { metrics_.admin_refused(reason); };
        server_ = std::make_unique<admin_server>(ioc_, std::move(options), handlers_);
        server_->start();
        thread_ = std::thread([this] { ioc_.run(); });
    }

    std::string url(const std::string &path, const std::string &scheme = "http") const {
        return scheme + "://127.0.0.1:" + std::to_string(server_->port()) + path;
    }

    http_result post(const std::string &path, const std::string &authorization) {
        const std::string body = R"({"name":"close_valve"})";
        return fetch(url(path), "POST", &body, false, authorization);
    }

    // firelink_admin_refused_total{reason="..."} as /metrics would show it.
    double refused(const std::string &reason) const {
        const auto text = metrics_.serialize();
        const std::string key = "firelink_admin_refused_total{reason=\"" + reason + "\"} ";
        const auto at = text.find(key);
        return at == std::string::npos ? -1 : std::stod(text.substr(at + key.size()));
    }

    temp_dir dir_;
    net::io_context ioc_;
    firelink::admin::admin_handlers handlers_;
    firelink::admin::host_metrics metrics_{"test"};
    std::unique_ptr<admin_server> server_;
    std::thread thread_;
    std::mutex mutex_;
    principal who_;
    std::atomic<bool> called_{false};
};

}  // namespace

TEST_F(AdminAuth, WithoutATokenFileCommandsAre401WithTheHowToAndTheHandlerNeverRuns) {
    start({});
    for (const std::string path : {"/api/devices/valve-3/commands", "/api/devices/valve-3/select",
                                   "/api/devices/valve-3/mode", "/api/reload", "/api/test/wedge"}) {
        const auto r = post(path, "");
        ASSERT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
        EXPECT_EQ(r.status, 401) << path;
        EXPECT_NE(lower(r.headers).find("www-authenticate: bearer realm=\"firelink\""), std::string::npos)
            << r.headers;
        const auto message = json::parse(r.body).at("error").get<std::string>();
        EXPECT_NE(message.find("[admin] token_file"), std::string::npos) << message;
        EXPECT_NE(message.find("docs/deployment.md#admin-tokens"), std::string::npos) << message;
        EXPECT_NE(lower(r.headers).find("connection: close"), std::string::npos) << r.headers;
    }
    EXPECT_EQ(fetch(url("/api/devices/valve-3/select"), "DELETE", nullptr, false, "").status, 401);
    // A token when the host knows none is no better.
    EXPECT_EQ(post("/api/devices/valve-3/commands", "Bearer " + test_admin_token).status, 401);
    EXPECT_FALSE(called_);
    EXPECT_EQ(refused("no_credentials"), 6);
    EXPECT_EQ(refused("bad_token"), 1);
}

TEST_F(AdminAuth, AnonymousReadsFromLoopbackWorkWithAndWithoutATokenFile) {
    start({});
    EXPECT_EQ(fetch(url("/metrics"), "GET", nullptr, false, "").status, 200);
    EXPECT_EQ(fetch(url("/api/devices"), "GET", nullptr, false, "").status, 200);
    server_->stop();
    thread_.join();
    server_.reset();
    ioc_.restart();

    start(opts().tokens(tokens()));
    EXPECT_EQ(fetch(url("/metrics"), "GET", nullptr, false, "").status, 200);
    EXPECT_EQ(fetch(url("/api/devices"), "GET", nullptr, false, "").status, 200);
    // ...but not an operate route.
    const auto r = post("/api/devices/valve-3/commands", "");
    EXPECT_EQ(r.status, 401);
    EXPECT_NE(r.body.find("Authorization: Bearer TOKEN"), std::string::npos) << r.body;
    EXPECT_FALSE(called_);
}

TEST_F(AdminAuth, AnonymousReadNoneRefusesReadsWithoutAToken) {
    start(opts().tokens(tokens()).anonymous(anonymous_reads::none));
    const auto r = fetch(url("/metrics"), "GET", nullptr, false, "");
    EXPECT_EQ(r.status, 401);
    EXPECT_NE(r.body.find("anonymous_read"), std::string::npos) << r.body;
    EXPECT_EQ(fetch(url("/metrics"), "GET", nullptr, false, "Bearer " + read_token).status, 200);
    EXPECT_EQ(fetch(url("/api/devices"), "GET", nullptr, false, "Bearer " + operate_token).status, 200);
}

TEST_F(AdminAuth, AnUnknownTokenIs401EvenForAReadFromLoopback) {
    start(opts().tokens(tokens()));
    const auto r = fetch(url("/metrics"), "GET", nullptr, false, "Bearer not-a-token");
    EXPECT_EQ(r.status, 401);
    EXPECT_NE(r.body.find("not a token this host knows"), std::string::npos) << r.body;
    EXPECT_EQ(fetch(url("/metrics"), "GET", nullptr, false, "Digest abc").status, 401);
    EXPECT_EQ(refused("bad_token"), 2);
}

TEST_F(AdminAuth, AReadTokenIs403OnOperateRoutesNamingBothRoles) {
    start(opts().tokens(tokens()));
    const auto r = post("/api/devices/valve-3/commands", "Bearer " + read_token);
    EXPECT_EQ(r.status, 403);
    const auto message = json::parse(r.body).at("error").get<std::string>();
    EXPECT_NE(message.find("needs the operate role"), std::string::npos) << message;
    EXPECT_NE(message.find("'prometheus' holds read"), std::string::npos) << message;
    EXPECT_EQ(post("/api/devices/valve-3/select", "Bearer " + read_token).status, 403);
    EXPECT_FALSE(called_);
    EXPECT_EQ(refused("forbidden"), 2);
}

TEST_F(AdminAuth, AnOperateTokenReachesTheHandlerAsItsPrincipal) {
    start(opts().tokens(tokens()));
    const auto r = post("/api/devices/valve-3/commands", "Bearer " + operate_token);
    EXPECT_EQ(r.status, 202) << r.body;
    ASSERT_TRUE(called_);
    std::lock_guard lock(mutex_);
    EXPECT_EQ(who_.name, "alice");
    EXPECT_EQ(who_.role, role::operate);
    EXPECT_TRUE(who_.authenticated);
    EXPECT_EQ(who_.peer.rfind("127.0.0.1:", 0), 0u) << who_.peer;
}

TEST_F(AdminAuth, BasicCredentialsCarryTheTokenToo) {
    start(opts().tokens(tokens()));
    // base64("curl:" + operate_token), as `curl -u curl:TOKEN` sends it.
    const auto r = post("/api/devices/valve-3/commands",
                        "Basic Y3VybDpvcGVyYXRlLXRva2VuLTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWI=");
    EXPECT_EQ(r.status, 202) << r.body;
    std::lock_guard lock(mutex_);
    EXPECT_EQ(who_.name, "alice");
}

TEST_F(AdminAuth, AdminRoutesNeedTheAdminRole) {
    start(opts().tokens(tokens()));
    for (const std::string path : {"/api/devices/valve-3/mode", "/api/reload", "/api/test/wedge"}) {
        const auto r = post(path, "Bearer " + operate_token);
        EXPECT_EQ(r.status, 403) << path;
        EXPECT_NE(r.body.find("needs the admin role"), std::string::npos) << r.body;
    }
    EXPECT_FALSE(called_);
    for (const std::string path : {"/api/devices/valve-3/mode", "/api/reload", "/api/test/wedge"}) {
        called_ = false;
        EXPECT_EQ(post(path, "Bearer " + test_admin_token).status, 200) << path;
        EXPECT_TRUE(called_) << path;
    }
    // An admin may do what an operator may.
    called_ = false;
    EXPECT_EQ(post("/api/devices/valve-3/commands", "Bearer " + test_admin_token).status, 202);
    EXPECT_TRUE(called_);
    std::lock_guard lock(mutex_);
    EXPECT_EQ(who_.name, "root-op");
    EXPECT_EQ(who_.role, role::admin);
}

TEST(AdminRouteRole, TheTableOfRoles) {
    using firelink::admin::route_role;
    for (const auto *path : {"/metrics", "/healthz", "/healthz?strict", "/api/devices", "/api/uplink", "/api/control",
                             "/api/audit?after=3", "/nowhere", "/api/devices/x/other"})
        EXPECT_EQ(route_role("GET", path), role::read) << path;
    EXPECT_EQ(route_role("POST", "/api/devices/valve-3/commands"), role::operate);
    EXPECT_EQ(route_role("POST", "/api/devices/valve-3/select"), role::operate);
    EXPECT_EQ(route_role("DELETE", "/api/devices/valve-3/select"), role::operate);
    EXPECT_EQ(route_role("POST", "/api/devices/valve-3/mode"), role::admin);
    EXPECT_EQ(route_role("POST", "/api/reload"), role::admin);
    EXPECT_EQ(route_role("POST", "/api/test/wedge"), role::admin);
    // The path decides: a wrong method on an operate route is not a read.
    EXPECT_EQ(route_role("GET", "/api/devices/valve-3/commands"), role::operate);
    EXPECT_EQ(route_role("GET", "/api/reload?x"), role::admin);
}

TEST_F(AdminAuth, A15MiBBodyWithoutATokenIsRefusedBeforeItIsRead) {
    start(opts().tokens(tokens()).timeout(5s));
    const std::string header = "POST /api/devices/valve-3/commands HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                               std::to_string(15 * 1024 * 1024) + "\r\n\r\n";
    {
        // Only the header is sent: the answer must come without a byte of the body, so the server read none.
        raw_client c(server_->port());
        c.send(header);
        const auto res = c.read_response(3s);
        ASSERT_TRUE(res) << c.error().message();
        EXPECT_EQ(res->result_int(), 401);
        EXPECT_FALSE(res->keep_alive());
        // The body that follows is dropped; the connection ends at once, not after 15 MiB were parsed.
        c.send(std::string(1024 * 1024, 'x'));
        EXPECT_TRUE(c.closed_within(10s));
    }
    {
        // The control: with a token the same header waits for its body (here over body_limit: 413, unread too).
        raw_client c(server_->port());
        c.send("POST /api/devices/valve-3/commands HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + operate_token +
               "\r\nContent-Length: 100\r\n\r\n");
        EXPECT_FALSE(c.read_response(500ms)) << "answered before the body came";
        c.send(std::string(100, 'x'));
        const auto res = c.read_response(3s);
        ASSERT_TRUE(res) << c.error().message();
        EXPECT_EQ(res->result_int(), 202);
    }
    EXPECT_FALSE(called_ && who_.name != "alice");
}

TEST_F(AdminAuth, ABodyOverTheLimitIsStill413ForAnAuthenticatedClient) {
    start(opts().tokens(tokens()));
    raw_client c(server_->port());
    c.send("POST /api/devices/valve-3/commands HTTP/1.1\r\nHost: x\r\n" + auth_line + "Content-Length: " +
           std::to_string(15 * 1024 * 1024) + "\r\n\r\n");
    const auto res = c.read_response(3s);
    ASSERT_TRUE(res) << c.error().message();
    EXPECT_EQ(res->result_int(), 413);
    EXPECT_FALSE(called_);
}

TEST_F(AdminAuth, APeerOffLoopbackReadsNothingWithoutAToken) {
    // Needs an address of this machine that is not loopback; a container without one skips.
    std::string address;
    ifaddrs *list = nullptr;
    if (::getifaddrs(&list) == 0) {
        for (auto *i = list; i; i = i->ifa_next) {
            if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
            const auto a = net::ip::address_v4(ntohl(reinterpret_cast<sockaddr_in *>(i->ifa_addr)->sin_addr.s_addr));
            if (!a.is_loopback()) {
                address = a.to_string();
                break;
            }
        }
        ::freeifaddrs(list);
    }
    if (address.empty()) GTEST_SKIP() << "no IPv4 address but loopback on this machine";
    start(opts().host(address).tokens(tokens()));
    const std::string base = "http://" + address + ":" + std::to_string(server_->port());
    const auto r = fetch(base + "/metrics", "GET", nullptr, false, "");
    EXPECT_EQ(r.status, 401);
    EXPECT_NE(r.body.find("off loopback"), std::string::npos) << r.body;
    EXPECT_EQ(fetch(base + "/metrics", "GET", nullptr, false, "Bearer " + read_token).status, 200);
}

TEST(AdminServerConfig, ABadTokenFileStopsTheServerAtStartNamingItsLine) {
    temp_dir dir;
    const auto file = write_file(dir.path() / "tokens", "admin root t-1\noperate bob\n");
    auto e = start_error(opts().tokens(file));
    EXPECT_NE(e.find(file.string() + ":2: expected"), std::string::npos) << "the error: " << e;
    const auto open = write_file(dir.path() / "open-tokens", "admin root t-1\n", 0644);
    e = start_error(opts().tokens(open));
    EXPECT_NE(e.find("chmod 600"), std::string::npos) << "the error: " << e;
}

// ---- TLS ----

namespace {

// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI.
struct pki {
    temp_dir dir;
    std::filesystem::path ca, ca_key, server_cert, server_key, client_cert, client_key, other_ca, stranger_cert,
        stranger_key;

    pki() {
        const auto p = [&](const char *name) { return dir.path() / name; };
        ca = p("ca.pem"), ca_key = p("ca.key"), server_cert = p("server.pem"), server_key = p("server.key");
        client_cert = p("client.pem"), client_key = p("client.key"), other_ca = p("other-ca.pem");
        stranger_cert = p("stranger.pem"), stranger_key = p("stranger.key");
        const std::string d = dir.path().string();
        const std::string script =
            "set -e; cd '" + d + "'\n"
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
            "  -days 2 -subj /CN=firelink-test-ca\n"
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key "
            "  -out other-ca.pem -days 2 -subj /CN=other-ca\n"
            "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext\n"
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr "
            "  -subj /CN=127.0.0.1\n"
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
            "  -extfile server.ext\n"
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr "
            "  -subj /CN=alice\n"
            "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2\n"
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout stranger.key -out stranger.csr "
            "  -subj /CN=mallory\n"
            "openssl x509 -req -in stranger.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial "
            "  -out stranger.pem -days 2\n";
        write_file(dir.path() / "make.sh", script, 0700);
        if (std::system(("sh '" + d + "/make.sh' >'" + d + "/make.log' 2>&1").c_str()) != 0)
            throw std::runtime_error("openssl failed; see " + d + "/make.log");
    }
};

struct tls_client {
    std::filesystem::path ca, cert, key;
};

http_result fetch_tls(const std::string &url, const tls_client &t, const std::string &authorization,
                      const std::string &method = "GET") {
    http_result r;
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl, CURLOPT_CAINFO, t.ca.c_str());
    if (!t.cert.empty()) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, t.cert.c_str());
        curl_easy_setopt(curl, CURLOPT_SSLKEY, t.key.c_str());
    }
    curl_slist *headers = nullptr;
    if (!authorization.empty()) headers = curl_slist_append(headers, ("Authorization: " + authorization).c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (method == "POST") {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, R"({"name":"close_valve"})");
    }
    r.code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return r;
}

}  // namespace

TEST_F(AdminAuth, TokensWorkOverTlsAndPlainHttpIsRefusedOnTheTlsPort) {
    pki keys;
    start(opts().tokens(tokens()).tls({keys.server_cert, keys.server_key, {}}));
    const tls_client c{keys.ca, {}, {}};
    EXPECT_EQ(fetch_tls(url("/metrics", "https"), c, "").status, 200);
    const auto refused = fetch_tls(url("/api/devices/valve-3/commands", "https"), c, "", "POST");
    EXPECT_EQ(refused.code, CURLE_OK) << curl_easy_strerror(refused.code);
    EXPECT_EQ(refused.status, 401);
    EXPECT_FALSE(called_);
    const auto r = fetch_tls(url("/api/devices/valve-3/commands", "https"), c, "Bearer " + operate_token, "POST");
    EXPECT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
    EXPECT_EQ(r.status, 202);
    EXPECT_TRUE(called_);

    const auto plain = fetch(url("/metrics"), "GET", nullptr, false, "Bearer " + read_token, 5000);
    EXPECT_NE(plain.code, CURLE_OK) << "plain HTTP got an answer on the TLS port: " << plain.status;
    EXPECT_EQ(plain.status, 0);
    // A client that does not trust the server's CA does not get through either (the client side of the check).
    EXPECT_NE(fetch_tls(url("/metrics", "https"), {keys.other_ca, {}, {}}, "").code, CURLE_OK);
}

TEST_F(AdminAuth, WithAClientCaOnlyClientsWithItsCertificatesGetIn) {
    pki keys;
    start(opts().tokens(tokens()).tls({keys.server_cert, keys.server_key, keys.ca}));
    const auto none = fetch_tls(url("/metrics", "https"), {keys.ca, {}, {}}, "Bearer " + read_token);
    EXPECT_NE(none.code, CURLE_OK) << "no client certificate, yet: " << none.status;
    const auto stranger =
        fetch_tls(url("/metrics", "https"), {keys.ca, keys.stranger_cert, keys.stranger_key}, "Bearer " + read_token);
    EXPECT_NE(stranger.code, CURLE_OK) << "a certificate from another CA, yet: " << stranger.status;
    const tls_client good{keys.ca, keys.client_cert, keys.client_key};
    const auto ok = fetch_tls(url("/metrics", "https"), good, "Bearer " + read_token);
    EXPECT_EQ(ok.code, CURLE_OK) << curl_easy_strerror(ok.code);
    EXPECT_EQ(ok.status, 200);
    // A client certificate is the transport's check; the route still wants its token.
    EXPECT_EQ(fetch_tls(url("/api/devices/valve-3/commands", "https"), good, "", "POST").status, 401);
    EXPECT_EQ(fetch_tls(url("/api/devices/valve-3/commands", "https"), good, "Bearer " + operate_token, "POST").status,
              202);
}

TEST_F(AdminAuth, AListedClientCertificateIsItsPrincipalWithoutAToken) {
    pki keys;  // the client certificate's subject is CN=alice
    const auto file = write_tokens(dir_.path(), "cert operate alice-by-cert alice\nread prometheus " + read_token + "\n");
    start(opts().tokens(file).tls({keys.server_cert, keys.server_key, keys.ca}));
    const tls_client good{keys.ca, keys.client_cert, keys.client_key};
    const auto r = fetch_tls(url("/api/devices/valve-3/commands", "https"), good, "", "POST");
    EXPECT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
    EXPECT_EQ(r.status, 202) << r.body;
    {
        std::lock_guard lock(mutex_);
        EXPECT_EQ(who_.name, "alice-by-cert");
        EXPECT_EQ(who_.role, role::operate);
        EXPECT_TRUE(who_.authenticated);
    }
    // Its role is the line's: not admin.
    called_ = false;
    EXPECT_EQ(fetch_tls(url("/api/reload", "https"), good, "", "POST").status, 403);
    EXPECT_FALSE(called_);
    // A token, when sent, speaks for the request instead.
    EXPECT_EQ(fetch_tls(url("/api/devices/valve-3/commands", "https"), good, "Bearer " + read_token, "POST").status,
              403);
    EXPECT_FALSE(called_);
}

TEST(AdminServerConfig, CertLinesNeedAClientCa) {
    temp_dir dir;
    const auto file = write_file(dir.path() / "tokens", "cert operate alice alice\n");
    const auto e = start_error(opts().tokens(file));
    EXPECT_NE(e.find("has 'cert' lines, but without [admin] client_ca"), std::string::npos) << "the error: " << e;
}

TEST_F(AdminAuth, ATlsClientThatSaysNothingIsCutOffAtTheDeadline) {
    pki keys;
    start(opts().timeout(300ms).tls({keys.server_cert, keys.server_key, {}}));
    raw_client c(server_->port());  // connects, never starts the handshake
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.closed_within(5s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
}

TEST(AdminServerConfig, TlsFilesThatDoNotLoadOrMatchAreNamed) {
    pki keys;
    const auto error_of = [](firelink::admin::tls_options tls) { return start_error(opts().tls(std::move(tls))); };
    EXPECT_EQ(error_of({keys.server_cert, keys.server_key, {}}), "");
    auto e = error_of({keys.dir.path() / "absent.pem", keys.server_key, {}});
    EXPECT_NE(e.find("certificate chain (PEM) '" + (keys.dir.path() / "absent.pem").string()), std::string::npos) << e;
    e = error_of({keys.server_cert, keys.dir.path() / "make.log", {}});
    EXPECT_NE(e.find("private key (PEM) '" + (keys.dir.path() / "make.log").string()), std::string::npos) << e;
    e = error_of({keys.server_cert, keys.client_key, {}});
    EXPECT_NE(e.find("does not match the certificate '" + keys.server_cert.string()), std::string::npos) << e;
    e = error_of({keys.server_cert, keys.server_key, keys.dir.path() / "absent-ca.pem"});
    EXPECT_NE(e.find("client CA bundle (PEM) '" + (keys.dir.path() / "absent-ca.pem").string()), std::string::npos)
        << e;
}
