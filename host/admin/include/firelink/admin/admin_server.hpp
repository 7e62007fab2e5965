// The host's admin endpoint: a small HTTP/1.1 server (Boost.Beast) for operators and for Prometheus, bound to
// loopback by default. It knows nothing of the runtime: what each endpoint answers comes from admin_handlers.
//
//   GET  /metrics                    200 text/plain; version=0.0.4    metrics_text()
//   GET  /healthz                    200 application/json             health().json, healthy or not
//   GET  /healthz?strict             200, or 503 when not healthy     health().json
//   GET  /api/devices                200 application/json             devices_json()
//   GET  /api/uplink                 200 application/json             uplink_json()
//   GET  /api/control                200 application/json             control_json(): selections, device modes
//   GET  /api/audit?after=N&limit=M  200 application/json             audit_json(query)
//   POST   /api/devices/{id}/select    status and JSON from select(who, id, body)     (select-before-operate)
//   DELETE /api/devices/{id}/select    status and JSON from cancel(who, id)
//   POST   /api/devices/{id}/commands  status and JSON from command(who, id, body)    (operate)
//   POST   /api/devices/{id}/mode      status and JSON from mode(who, id, body)       (remote / local)
//   POST /api/reload                 status and JSON from reload(who)
//   POST /api/test/{name}            status and JSON from test_hook(name, body); 404 unless the host provides it
// {id} is percent-decoded. Every route has the role it needs (route_role); `who` is the principal the request
// authenticated as.
//
// Authentication happens on the request's header, before its body is read: an `Authorization: Bearer TOKEN` (or
// `Basic base64(any:TOKEN)`) found in the token file; or, without credentials, the anonymous principal with the read
// role when anonymous_read allows it (loopback peers by default). No or unknown credentials are 401 with
// `WWW-Authenticate: Bearer realm="firelink"`, a role too low is 403 naming the role needed and the one held; either
// answer closes the connection without reading the body. Refusals are counted (on_refusal) and logged once a 10 s
// window. With tls.cert the port speaks only TLS (1.2 or later).
//
// Why /healthz has two forms: a monitor (Prometheus' blackbox exporter, an operator's curl) wants the whole story
// every time and reads the status from the body: a 503 would hide it behind "probe failed". A load balancer or an
// orchestrator reads only the status code and needs it to say "do not count on this host": ?strict (or ?strict=1)
// is for them. ?strict=0 is the plain form.
//
// Errors are JSON {"error": "..."}: 404 unknown path, 405 wrong method (with Allow), 400 a malformed request or a
// device id that is empty or holds '/' or a control character once decoded, 413 a body over body_limit, 431 a header
// over 8 KiB, 500 a handler that threw (the server goes on serving), 501 a handler left empty.
// A request must arrive whole within request_timeout, and each response be written within it, or the connection is
// closed. Connections are kept alive when the client asks.
//
//     boost::asio::io_context ioc;
//     firelink::admin::admin_server server{ioc, {.host = "127.0.0.1", .port = 9100}, std::move(handlers)};
//     server.start();
//     ioc.run();          // until server.stop() and the rest of the host's work is done
//
// Threads: the handlers are called on the io_context's threads, one request at a time per connection but several
// connections at once when several threads run the context, so they must be thread-safe; they should not block.
// Each connection runs on its own strand.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "firelink/admin/admin_access.hpp"

namespace firelink::admin {

// Who sent a request, as the server authenticated it: the name its token (or client certificate) carries, or
// "anonymous" for a read from loopback without credentials.
struct principal {
    std::string name;
    admin::role role = role::read;
    bool authenticated = false;  // false: anonymous
    std::string peer;            // the client's address, "127.0.0.1:40312"
};

using status_json = std::pair<unsigned, std::string>;  // (HTTP status, JSON body)

// GET /healthz: the host's health as JSON, and whether it is healthy (what ?strict turns into 200 or 503).
struct health_answer {
    bool healthy = true;
    std::string json;
};

struct admin_handlers {
    std::function<std::string()> metrics_text;  // GET /metrics: Prometheus text
    std::function<health_answer()> health;      // GET /healthz
    std::function<std::string()> devices_json;  // GET /api/devices
    std::function<std::string()> uplink_json;   // GET /api/uplink: the queue, the senders, the quarantine
    std::function<std::string()> control_json;                  // GET /api/control
    std::function<std::string(std::string_view query)> audit_json;  // GET /api/audit; the raw query string
    // POST /api/devices/{id}/commands, e.g. {202, {"command_id": "cmd-7"}}. See command_json.hpp.
    std::function<status_json(const principal &who, const std::string &device_id, const std::string &json_body)>
        command;
    std::function<status_json(const principal &who, const std::string &device_id, const std::string &json_body)>
        select;                                                                         // POST .../select
    std::function<status_json(const principal &who, const std::string &device_id)> cancel;  // DELETE .../select
    std::function<status_json(const principal &who, const std::string &device_id, const std::string &json_body)>
        mode;                                                                           // POST .../mode
    std::function<status_json(const principal &who)> reload;  // POST /api/reload
    std::function<std::string()> linkage_json;                 // GET /api/linkage
    // POST /api/linkage/{rule}/{action}, action "confirm", "reset" or "mode" (docs/linkage.md).
    std::function<status_json(const principal &who, const std::string &rule, const std::string &action,
                              const std::string &json_body)>
        linkage;
    // POST /api/test/{name}: hooks for tests that need to reach inside a running host (e.g. wedge its event loop).
    // Left empty in production, where the route answers 404 like any unknown path.
    std::function<status_json(const std::string &name, const std::string &json_body)> test_hook;
};

// Who may read without a token: peers on loopback (Prometheus scraping the host it runs on), or nobody.
enum class anonymous_reads { loopback, none };

// TLS on the admin port: a PEM certificate chain and its key; with client_ca, a PEM bundle of the CAs whose client
// certificates are accepted, and every client must present one (the handshake fails otherwise). TLS 1.2 at least.
struct tls_options {
    std::filesystem::path cert;       // empty: plain HTTP
    std::filesystem::path key;
    std::filesystem::path client_ca;  // empty: no client certificate asked for
};

// Why a request was refused before its body was read, as firelink_admin_refused_total{reason} counts it.
inline constexpr std::array<std::string_view, 3> refusal_reasons{"no_credentials", "bad_token", "forbidden"};

struct admin_options {
    std::string host = "127.0.0.1";  // an address or a name that resolves; loopback unless told otherwise
    std::uint16_t port = 0;          // 0: an ephemeral port, which port() then tells
    // A whole request from its first byte (so a slowloris sending a header a byte at a time is cut off), the wait
    // for the next request on a kept-alive connection, each response write, and a TLS handshake.
    std::chrono::milliseconds request_timeout{10'000};
    std::size_t body_limit = 64 * 1024;
    // Connections open at once; one more is closed at accept (counted, logged a few at a time). Each holds a
    // descriptor: a flood on the admin port must not take the ones devices, runners and the uplink need.
    std::size_t max_connections = 64;
    // The token file (admin_access.hpp), read when the server is made. Empty: no tokens, so only anonymous reads
    // (as anonymous_read allows) and every operate or admin route is 401, saying how to configure one.
    std::filesystem::path token_file;
    anonymous_reads anonymous_read = anonymous_reads::loopback;
    tls_options tls;
    // Called for each refused request with one of refusal_reasons (the host counts them in host_metrics). On the
    // io_context's threads; must not block.
    std::function<void(std::string_view reason)> on_refusal;
};

// The role a route needs (the table at the top of this file):
//   read     GET /metrics, /healthz, /api/devices, /api/uplink, /api/control, /api/audit, /api/linkage, and any
//            unknown path (404)
//   operate  POST and DELETE /api/devices/{id}/select, POST /api/devices/{id}/commands,
//            POST /api/linkage/{id}/confirm and /reset
//   admin    POST /api/devices/{id}/mode, POST /api/linkage/{id}/mode, POST /api/reload, POST /api/test/*
// `path` may carry its query string. The path decides, whatever the method: a wrong method on an operate route is
// a 405 to an operator only, so the route table is not told to strangers.
role route_role(std::string_view method, std::string_view path);

// The value of `name` in a query string ("strict" in "a=1&strict"): "" for a bare name, nullopt when absent. For
// handlers that read the query they are given (GET /api/audit).
std::optional<std::string_view> query_value(std::string_view query, std::string_view name);

// "127.0.0.1:9100", "localhost:9100", "[::1]:9100" (the form of --admin-listen). Throws std::invalid_argument saying
// what is wrong.
struct listen_address {
    std::string host;
    std::uint16_t port = 0;
};
listen_address parse_listen_address(std::string_view host_port);

class admin_server {
public:
    // Reads the token file and the TLS files, resolves, binds and listens. Throws std::runtime_error naming the file
    // (and line) for a token file or a TLS file that does not load, a key that does not match its certificate;
    // std::system_error whose what() names the address and the reason ("admin endpoint 127.0.0.1:80: cannot bind:
    // Permission denied"). Accepts nothing before start().
    admin_server(boost::asio::io_context &ioc, admin_options options, admin_handlers handlers);
    // Calls stop(). Destroy the server before its io_context.
    ~admin_server();
    admin_server(const admin_server &) = delete;
    admin_server &operator=(const admin_server &) = delete;

    // Starts accepting connections on the io_context. A second call does nothing.
    void start();

    // Stops accepting and closes every connection, idle or not, without waiting for their deadlines. Returns at once
    // (from any thread, also from a handler); the closing happens on the io_context. No handler is called for a
    // request read after stop() returned; a handler already running finishes. Idempotent.
    void stop();

    // The bound port (the ephemeral one when options.port was 0), and the whole bound address.
    std::uint16_t port() const noexcept { return endpoint_.port(); }
    const boost::asio::ip::tcp::endpoint &local_endpoint() const noexcept { return endpoint_; }

private:
    class listener;
    std::shared_ptr<listener> listener_;
    boost::asio::ip::tcp::endpoint endpoint_;
};

}  // namespace firelink::admin
