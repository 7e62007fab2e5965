// The admin endpoint, in the shape of Beast's http_server_async example: a listener, one session per connection on
// its own strand, do_x/on_x pairs, a deadline on every read and write, error_code on the I/O paths.
#include "firelink/admin/admin_server.hpp"

#include <array>
#include <atomic>
#include <charconv>
#include <limits>
#include <mutex>
#include <optional>
#include <type_traits>
#include <stdexcept>
#include <system_error>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <nlohmann/json.hpp>

#include <firelink/http_access/beast_names.hpp>
#include <firelink/http_access/escapes.hpp>
#include <firelink/http_access/listener.hpp>
#include <firelink/result.hpp>
#include <firelink/text.hpp>
#include <spdlog/spdlog.h>

namespace firelink::admin {

using namespace http_access::beast_names;

namespace {

constexpr std::string_view json_type = "application/json";
constexpr std::string_view metrics_type = "text/plain; version=0.0.4; charset=utf-8";

// What every session of one server shares.
struct server_state {
    admin_options options;
    admin_handlers handlers;
    access_list tokens;                   // empty without a token file
    std::optional<net::ssl::context> tls;  // with tls.cert
    std::atomic<bool> stopped{false};

    // Refusals, logged once a window with their counts, so a scan of the port costs a line every 10 s.
    std::mutex refusal_mutex;
    std::array<std::uint64_t, refusal_reasons.size()> refused{}, refused_logged{};
    std::chrono::steady_clock::time_point last_refusal_log{};

    void note_refusal(std::size_t reason, const std::string &what) {
        if (options.on_refusal) options.on_refusal(refusal_reasons[reason]);
        std::lock_guard lock(refusal_mutex);
        ++refused[reason];
        const auto now = std::chrono::steady_clock::now();
        if (now - last_refusal_log < std::chrono::seconds(10)) return;
        std::array<std::uint64_t, refusal_reasons.size()> since{};
        for (std::size_t i = 0; i < since.size(); ++i) since[i] = refused[i] - refused_logged[i];
        spdlog::warn("admin: refused {} request(s) without credentials, {} with an unknown token, {} with too low a "
                     "role since the last report (the latest: {})",
                     since[0], since[1], since[2], what);
        refused_logged = refused;
        last_refusal_log = now;
    }
};

// ---- routing: a request in, a response out; no I/O ----

std::string error_json(std::string_view message) {
    // replace: a handler's exception text need not be valid UTF-8.
    return firelink::text::dump_json(nlohmann::json{{"error", message}});
}

response reply(const request &req, unsigned status, std::string body, std::string_view type) {
    response res;
    res.version(req.version() ? req.version() : 11);
    res.result(status);
    res.set(http::field::server, "firelink-admin");
    res.set(http::field::content_type, beast::string_view(type.data(), type.size()));
    res.set(http::field::cache_control, "no-store");
    if (status != 204 && status != 304) res.body() = std::move(body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    return res;
}

response error(const request &req, unsigned status, std::string_view message) {
    return reply(req, status, error_json(message), json_type);
}

response not_allowed(const request &req, std::string_view allow) {
    auto res = error(req, 405, std::string(req.method_string()) + " is not allowed here; use " + std::string(allow));
    res.set(http::field::allow, beast::string_view(allow.data(), allow.size()));
    return res;
}

// Calls a handler; what it throws becomes a 500 and a log line, never a dead server.
template <typename Call>
response guarded(const request &req, const Call &call) {
    try {
        return call();
    } catch (const std::exception &e) {
        spdlog::error("admin: {} {}: handler failed: {}", std::string(req.method_string()), std::string(req.target()),
                      e.what());
        return error(req, 500, e.what());
    } catch (...) {
        spdlog::error("admin: {} {}: handler failed with a non-standard exception", std::string(req.method_string()),
                      std::string(req.target()));
        return error(req, 500, "the handler failed with a non-standard exception");
    }
}

response text_endpoint(const request &req, const std::function<std::string()> &handler, std::string_view type) {
    if (req.method() != http::verb::get) return not_allowed(req, "GET");
    if (!handler) return error(req, 501, "not provided by this host");
    return guarded(req, [&] { return reply(req, 200, handler(), type); });
}

response status_reply(const request &req, std::pair<unsigned, std::string> answer) {
    if (answer.first < 200 || answer.first > 599)
        return error(req, 500, "the handler answered with HTTP status " + std::to_string(answer.first));
    return reply(req, answer.first, std::move(answer.second), json_type);
}

response health_endpoint(const request &req, const std::function<health_answer()> &handler, std::string_view query) {
    if (req.method() != http::verb::get) return not_allowed(req, "GET");
    const auto strict = query_value(query, "strict");
    if (strict && *strict != "" && *strict != "1" && *strict != "true" && *strict != "0" && *strict != "false")
        return error(req, 400, "strict takes no value, 1 or true (503 when not healthy), or 0 or false");
    const bool strict_on = strict && *strict != "0" && *strict != "false";
    if (!handler) return error(req, 501, "not provided by this host");
    return guarded(req, [&] {
        auto answer = handler();
        return reply(req, strict_on && !answer.healthy ? 503 : 200, std::move(answer.json), json_type);
    });
}

// The id of /api/devices/{id}/{action} or /api/linkage/{id}/{action} (`what`: "device id", "rule id"), checked; or
// the error to answer.
firelink::result<std::string, response> id_in_path(const request &req, std::string_view raw, std::string_view what) {
    const auto id = http_access::percent_decode(raw);
    const std::string the = "the " + std::string(what) + " in the path ";
    if (!id) return error(req, 400, the + "has a malformed %-escape");
    if (id->empty()) return error(req, 400, the + "is empty");
    for (unsigned char c : *id)
        if (c == '/' || c < 0x20 || c == 0x7f) return error(req, 400, the + "holds '/' or a control character");
    return *id;
}

template <typename Handler, typename... Args>
response call_status(const request &req, const Handler &handler, Args &&...args) {
    if (!handler) return error(req, 501, "not provided by this host");
    return guarded(req, [&] { return status_reply(req, handler(std::forward<Args>(args)...)); });
}

}  // namespace

role route_role(std::string_view, std::string_view path) {
    path = path.substr(0, path.find('?'));
    if (path == "/api/reload") return role::admin;
    constexpr std::string_view test_prefix = "/api/test/";
    if (path.substr(0, test_prefix.size()) == test_prefix) return role::admin;
    constexpr std::string_view linkage_prefix = "/api/linkage/";
    if (path.substr(0, linkage_prefix.size()) == linkage_prefix) {
        const auto action = path.substr(path.rfind('/') + 1);
        if (action == "confirm" || action == "reset") return role::operate;
        if (action == "mode") return role::admin;
    }
    constexpr std::string_view prefix = "/api/devices/";
    if (path.substr(0, prefix.size()) == prefix) {
        // As route() splits it: {id}/{action}. Anything else under /api/devices/ is a 404, which reading may see.
        const auto rest = path.substr(prefix.size());
        const auto slash = rest.find('/');
        if (slash != std::string_view::npos) {
            const auto action = rest.substr(slash + 1);
            if (action == "commands" || action == "select") return role::operate;
            if (action == "mode") return role::admin;
        }
    }
    return role::read;
}

namespace {

response route(const request &req, const admin_handlers &h, const principal &who) {
    std::string_view target(req.target().data(), req.target().size());  // Boost 1.74: boost::string_view
    const auto question = target.find('?');
    const auto path = target.substr(0, question);
    const auto query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);

    // The session authorised this request already (on_read_header); asked again so that a route never runs for a
    // principal it was not meant for, whatever path led here.
    const role needed = route_role(std::string_view(req.method_string().data(), req.method_string().size()), path);
    if (!role_covers(who.role, needed))
        return error(req, 403, std::string("this needs the ") + role_name(needed) + " role");

    if (path == "/metrics") return text_endpoint(req, h.metrics_text, metrics_type);
    if (path == "/healthz") return health_endpoint(req, h.health, query);
    if (path == "/api/devices") return text_endpoint(req, h.devices_json, json_type);
    if (path == "/api/uplink") return text_endpoint(req, h.uplink_json, json_type);
    if (path == "/api/control") return text_endpoint(req, h.control_json, json_type);
    if (path == "/api/audit") {
        if (req.method() != http::verb::get) return not_allowed(req, "GET");
        if (!h.audit_json) return error(req, 501, "not provided by this host");
        return guarded(req, [&] { return reply(req, 200, h.audit_json(query), json_type); });
    }
    if (path == "/api/reload") {
        if (req.method() != http::verb::post) return not_allowed(req, "POST");
        return call_status(req, h.reload, who);
    }
    if (path == "/api/linkage") return text_endpoint(req, h.linkage_json, json_type);
    constexpr std::string_view linkage_prefix = "/api/linkage/";
    if (path.substr(0, linkage_prefix.size()) == linkage_prefix) {
        const auto rest = path.substr(linkage_prefix.size());
        const auto slash = rest.find('/');
        if (slash != std::string_view::npos && rest.find('/', slash + 1) == std::string_view::npos) {
            const std::string action(rest.substr(slash + 1));
            if (action == "confirm" || action == "reset" || action == "mode") {
                auto id = id_in_path(req, rest.substr(0, slash), "rule id");
                if (!id) return std::move(id).error();
                if (req.method() != http::verb::post) return not_allowed(req, "POST");
                return call_status(req, h.linkage, who, *id, action, req.body());
            }
        }
    }

    constexpr std::string_view test_prefix = "/api/test/";
    if (h.test_hook && path.substr(0, test_prefix.size()) == test_prefix) {
        if (req.method() != http::verb::post) return not_allowed(req, "POST");
        const std::string name(path.substr(test_prefix.size()));
        return call_status(req, h.test_hook, name, req.body());
    }

    constexpr std::string_view prefix = "/api/devices/";
    if (path.substr(0, prefix.size()) == prefix) {
        const auto rest = path.substr(prefix.size());
        const auto slash = rest.find('/');
        if (slash != std::string_view::npos && rest.find('/', slash + 1) == std::string_view::npos) {
            const auto action = rest.substr(slash + 1);
            if (action == "commands" || action == "select" || action == "mode") {
                auto id = id_in_path(req, rest.substr(0, slash), "device id");
                if (!id) return std::move(id).error();
                const auto &device = *id;
                if (action == "select") {
                    if (req.method() == http::verb::post) return call_status(req, h.select, who, device, req.body());
                    if (req.method() == http::verb::delete_) return call_status(req, h.cancel, who, device);
                    return not_allowed(req, "POST, DELETE");
                }
                if (req.method() != http::verb::post) return not_allowed(req, "POST");
                if (action == "commands") return call_status(req, h.command, who, device, req.body());
                return call_status(req, h.mode, who, device, req.body());
            }
        }
    }
    return error(req, 404, "no such endpoint: " + std::string(path));
}

// ---- authentication: the request's header and its peer in, a principal or the refusal out ----

bool is_loopback(const net::ip::address &a) {
    if (a.is_loopback()) return true;
    if (a.is_v6() && a.to_v6().is_v4_mapped())
        return net::ip::make_address_v4(net::ip::v4_mapped, a.to_v6()).is_loopback();
    return false;
}

std::string peer_text(const tcp::endpoint &e) {
    const auto a = e.address();
    return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(e.port());
}

constexpr std::size_t no_credentials = 0, bad_token = 1, forbidden = 2;  // indices into refusal_reasons

struct refusal {
    std::size_t reason;
    response res;
};

// The how-to a 401 carries: what to send, and where a token comes from.
std::string how_to(const server_state &s, role needed) {
    const std::string need = std::string("this needs a token with the ") + role_name(needed) + " role";
    if (s.tokens.empty())
        return need + ", and this host has no tokens: list them in a file named by [admin] token_file and send "
                      "'Authorization: Bearer TOKEN' (docs/deployment.md#admin-tokens)";
    return need + ": send 'Authorization: Bearer TOKEN' with a token from [admin] token_file "
                  "(docs/deployment.md#admin-tokens)";
}

// `cert_cn`: the subject CN of the client's certificate, verified against [admin] client_ca; "" without one.
firelink::result<principal, refusal> authenticate(const server_state &s, const request &req,
                                                  const tcp::endpoint &peer, const std::string &cert_cn) {
    std::string_view target(req.target().data(), req.target().size());
    const role needed = route_role(std::string_view(req.method_string().data(), req.method_string().size()), target);
    const auto unauthorized = [&](std::size_t reason, std::string message) {
        auto res = error(req, 401, message);
        res.set(http::field::www_authenticate, "Bearer realm=\"firelink\"");
        return refusal{reason, std::move(res)};
    };
    principal who;
    who.peer = peer_text(peer);
    const auto header = req[http::field::authorization];
    if (!header.empty()) {
        const auto g = s.tokens.authorize(std::string_view(header.data(), header.size()));
        if (!g) return unauthorized(bad_token, "the credentials are not a token this host knows; " + how_to(s, needed));
        who.name = g->name;
        who.role = g->role;
        who.authenticated = true;
    } else if (const auto g = s.tokens.find_cert(cert_cn)) {
        // A token, when sent, speaks for the request; without one a listed certificate does.
        who.name = g->name;
        who.role = g->role;
        who.authenticated = true;
    } else {
        const bool anonymous_ok = s.options.anonymous_read == anonymous_reads::loopback && is_loopback(peer.address());
        if (!anonymous_ok || needed != role::read) {
            std::string why;
            if (needed == role::read && s.options.anonymous_read == anonymous_reads::none)
                why = "this host reads nothing without a token ([admin] anonymous_read = \"none\"); ";
            else if (needed == role::read)
                why = "a peer off loopback reads nothing without a token; ";
            why += how_to(s, needed);
            return unauthorized(no_credentials, std::move(why));
        }
        who.name = "anonymous";
        who.role = role::read;
    }
    if (!role_covers(who.role, needed))
        return refusal{forbidden, error(req, 403, std::string("this needs the ") + role_name(needed) + " role; '" +
                                                      who.name + "' holds " + role_name(who.role))};
    return who;
}

// The subject CN of the peer's certificate when OpenSSL verified it (only with client_ca); "" otherwise, and when
// the subject holds no CN or several (which one would be the principal?).
std::string verified_cn(SSL *ssl) {
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return {};
    X509_NAME *subject = X509_get_subject_name(cert);
    const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0) return {};
    unsigned char *utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
    if (n < 0) return {};
    std::string cn(reinterpret_cast<char *>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
    return cn;
}

// ---- one connection, over plain TCP or TLS ----

template <typename Stream>
class session : public http_access::connection, public std::enable_shared_from_this<session<Stream>> {
    static constexpr bool tls = !std::is_same_v<Stream, beast::tcp_stream>;

public:
    session(tcp::socket &&socket, std::shared_ptr<server_state> state) requires(!tls)
        : peer_(remote(socket)), stream_(std::move(socket)), state_(std::move(state)) {}
    session(tcp::socket &&socket, std::shared_ptr<server_state> state) requires(tls)
        : peer_(remote(socket)), stream_(std::move(socket), *state->tls), state_(std::move(state)) {}

    void run() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&session::start, this->shared_from_this())); }

    void close() override {
        net::post(stream_.get_executor(), [self = this->shared_from_this()] { beast::get_lowest_layer(self->stream_).close(); });
    }

private:
    static tcp::endpoint remote(const tcp::socket &socket) {
        beast::error_code ec;
        auto e = socket.remote_endpoint(ec);
        return ec ? tcp::endpoint{} : e;
    }

    auto &tcp_layer() { return beast::get_lowest_layer(stream_); }

    void start() {
        if constexpr (tls) {
            // The handshake has the request's deadline: a client that opens the port and says nothing (or a byte a
            // second) is cut off like a slow request.
            tcp_layer().expires_after(state_->options.request_timeout);
            stream_.async_handshake(net::ssl::stream_base::server,
                                    beast::bind_front_handler(&session::on_handshake, this->shared_from_this()));
        } else {
            do_read();
        }
    }

    void on_handshake(beast::error_code ec) {
        if (ec) {
            // A plain-HTTP client, no client certificate, an unknown CA, or too old a TLS: nothing to answer in TLS.
            spdlog::debug("admin: TLS handshake with {} failed: {}", peer_text(peer_), ec.message());
            return;
        }
        if constexpr (tls) cert_cn_ = verified_cn(stream_.native_handle());
        do_read();
    }

    void do_read() {
        if (state_->stopped) return do_close();
        parser_.emplace();  // a fresh parser per request; buffer_ keeps bytes a client pipelined
        // No limit while the header is read: the parser would otherwise refuse a Content-Length over body_limit
        // with a 413 before anyone asked who sent it. The limit is set in on_read_header, once the sender is known.
        // (Not boost::none: Boost 1.74 compares a Content-Length with an empty optional limit as over it.)
        parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
        tcp_layer().expires_after(state_->options.request_timeout);  // one deadline for the whole request
        http::async_read_header(stream_, buffer_, *parser_,
                                beast::bind_front_handler(&session::on_read_header, this->shared_from_this()));
    }

    void on_read_header(beast::error_code ec, std::size_t) {
        if (ec) return on_read_failed(ec);
        const auto &req = parser_->get();
        // Before the body: a stranger never makes the server read, buffer or parse what it sends.
        auto outcome = authenticate(*state_, req, peer_, cert_cn_);
        if (!outcome) {
            auto refused = std::move(outcome).error();
            state_->note_refusal(refused.reason, std::string(req.method_string()) + " " + std::string(req.target()) +
                                                     " from " + peer_text(peer_));
            refused.res.keep_alive(false);  // the body, if any, is left unread: drained and dropped by do_close
            return do_write(std::move(refused.res));
        }
        who_ = std::move(outcome).value();
        const auto limit = state_->options.body_limit;
        if (const auto length = parser_->content_length(); length && *length > limit) {
            auto res = error(req, 413, "the body is larger than " + std::to_string(limit) + " bytes");
            res.keep_alive(false);  // left unread, like a refusal's
            return do_write(std::move(res));
        }
        // A Content-Length was checked above; a chunked body is counted against this as it comes.
        parser_->body_limit(limit);
        // curl sends "Expect: 100-continue" before a body over 1 KiB and waits a second for this answer.
        if (!parser_->is_done() && beast::iequals(req[http::field::expect], "100-continue")) {
            continue_ = http::response<http::empty_body>{http::status::continue_, req.version()};
            return http::async_write(stream_, continue_,
                                     beast::bind_front_handler(&session::on_continue, this->shared_from_this()));
        }
        do_read_body();
    }

    void on_continue(beast::error_code ec, std::size_t) {
        if (ec) return;
        do_read_body();
    }

    void do_read_body() {
        http::async_read(stream_, buffer_, *parser_,
                         beast::bind_front_handler(&session::on_read, this->shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return on_read_failed(ec);
        if (state_->stopped) return do_close();
        const request req = parser_->release();
        auto res = route(req, state_->handlers, who_);
        spdlog::debug("admin: {} {} as {} ({}) from {} -> {}", std::string(req.method_string()),
                      std::string(req.target()), who_.name, role_name(who_.role), who_.peer, res.result_int());
        do_write(std::move(res));
    }

    // Answers what can be answered (a body or header too big, a malformed request); drops the rest silently: the
    // client left (end_of_stream), timed out, or the server is stopping.
    void on_read_failed(beast::error_code ec) {
        if (ec == http::error::end_of_stream) return do_close();
        request req;
        req.version(11);
        req.keep_alive(false);
        if (ec == http::error::body_limit)
            return do_write(error(req, 413, "the body is larger than " +
                                                std::to_string(state_->options.body_limit) + " bytes"));
        if (ec == http::error::header_limit) return do_write(error(req, 431, "the request header is too large"));
        const bool malformed = ec.category() == http::make_error_code(http::error::bad_target).category() &&
                               ec != http::error::partial_message && ec != http::error::need_more;
        if (malformed)
            return do_write(error(req, 400, "malformed HTTP request: " + ec.message()));
        if (ec != net::error::operation_aborted && ec != beast::error::timeout)
            spdlog::debug("admin: connection ended: {}", ec.message());
        else if (ec == beast::error::timeout)
            spdlog::debug("admin: a request did not arrive whole in {} ms; connection closed",
                          state_->options.request_timeout.count());
    }

    void do_write(response &&res) {
        if (state_->stopped) res.keep_alive(false);
        res_ = std::move(res);
        tcp_layer().expires_after(state_->options.request_timeout);
        http::async_write(stream_, res_,
                          beast::bind_front_handler(&session::on_write, this->shared_from_this(), res_.need_eof()));
    }

    void on_write(bool close, beast::error_code ec, std::size_t) {
        if (ec) return;
        if (close) return do_close();
        do_read();
    }

    // Sends FIN (after TLS's close_notify), then reads and drops what the client still sends until it closes too (or
    // the deadline): closing with unread bytes would make the kernel send a reset, which can destroy a 413 or a 401
    // before the client reads it.
    void do_close() {
        tcp_layer().expires_after(state_->options.request_timeout);  // once: a client that keeps sending is cut off
        if constexpr (tls) {
            // Waits for the client's close_notify, or fails on the body it still sends: either way, on to the drain.
            stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) { self->shutdown_send(); });
        } else {
            shutdown_send();
        }
    }

    void shutdown_send() {
        beast::error_code ec;
        tcp_layer().socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return;
        do_drain();
    }

    void do_drain() {
        tcp_layer().async_read_some(net::buffer(drain_),
                                    beast::bind_front_handler(&session::on_drain, this->shared_from_this()));
    }

    void on_drain(beast::error_code ec, std::size_t) {
        if (ec) return;  // eof, timeout or stop(): the socket closes when the session ends
        do_drain();
    }

    tcp::endpoint peer_;
    Stream stream_;
    beast::flat_buffer buffer_;
    std::shared_ptr<server_state> state_;
    std::optional<http::request_parser<http::string_body>> parser_;
    principal who_;
    std::string cert_cn_;  // the client certificate's subject CN, once the handshake verified it
    http::response<http::empty_body> continue_;
    response res_;
    std::array<char, 4096> drain_;
};

// The TLS context, every file checked now so that a bad one stops the host at start with its name.
net::ssl::context make_tls_context(const tls_options &t) {
    const auto fail = [](const std::string &what, const std::filesystem::path &file, const beast::error_code &ec) {
        return std::runtime_error("admin TLS: " + what + " '" + file.string() + "': " + ec.message());
    };
    if (t.key.empty()) throw std::runtime_error("admin TLS: tls_cert is set but tls_key is not");
    net::ssl::context ctx(net::ssl::context::tls_server);
    ctx.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                    net::ssl::context::no_sslv3 | net::ssl::context::single_dh_use);
    if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1)
        throw std::runtime_error("admin TLS: cannot require TLS 1.2");
    beast::error_code ec;
    ctx.use_certificate_chain_file(t.cert.string(), ec);
    if (ec) throw fail("cannot load the certificate chain (PEM)", t.cert, ec);
    ctx.use_private_key_file(t.key.string(), net::ssl::context::pem, ec);
    const auto mismatch = [&] {
        return std::runtime_error("admin TLS: the private key '" + t.key.string() +
                                  "' does not match the certificate '" + t.cert.string() + "'");
    };
    if (ec && ec.category() == net::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
        throw mismatch();
    if (ec) throw fail("cannot load the private key (PEM)", t.key, ec);
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) throw mismatch();
    if (!t.client_ca.empty()) {
        ctx.load_verify_file(t.client_ca.string(), ec);
        if (ec) throw fail("cannot load the client CA bundle (PEM)", t.client_ca, ec);
        ctx.set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
    } else {
        ctx.set_verify_mode(net::ssl::verify_none);
    }
    return ctx;
}

tcp::endpoint resolve(net::io_context &ioc, const admin_options &o, const std::string &where) {
    beast::error_code ec;
    const auto address = net::ip::make_address(o.host, ec);
    if (!ec) return {address, o.port};
    tcp::resolver resolver(ioc);
    const auto results = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (!ec && results.empty()) ec = net::error::host_not_found;
    if (ec) throw std::system_error(std::error_code(ec), where + ": cannot resolve the host");
    return results.begin()->endpoint();
}

// Connections closed beyond max_connections, logged once a window with the count, so a flood costs a line every few
// seconds, not one per connection. On the acceptor's strand only.
class connection_flood_log {
public:
    explicit connection_flood_log(std::size_t max_connections) : max_connections_(max_connections) {}

    void note() {
        ++refused_;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_log_ < std::chrono::seconds(10)) return;
        spdlog::warn("admin: {} connection(s) are open, the most allowed: closed {} new one(s) since the last report",
                     max_connections_, refused_ - refused_logged_);
        refused_logged_ = refused_;
        last_log_ = now;
    }

private:
    std::size_t max_connections_;
    std::uint64_t refused_ = 0, refused_logged_ = 0;
    std::chrono::steady_clock::time_point last_log_{};
};

}  // namespace

// ---- the listener: firelink::http_access's accept loop, a session (plain or TLS) per connection ----

class admin_server::listener {
public:
    listener(net::io_context &ioc, const tcp::endpoint &at, const std::string &where,
             std::shared_ptr<server_state> state)
        : state_(std::move(state)),
          accepting_(std::make_shared<http_access::listener>(ioc, at, where, accepting(state_))) {}

    const tcp::endpoint &endpoint() const { return accepting_->endpoint(); }

    bool tls() const { return state_->tls.has_value(); }
    std::string access_summary() const {
        std::string out = state_->tokens.empty() ? "no token file: reads only"
                                                 : std::to_string(state_->tokens.size()) + " token(s) from " +
                                                       state_->tokens.file().string();
        out += state_->options.anonymous_read == anonymous_reads::loopback ? ", anonymous reads from loopback"
                                                                          : ", no anonymous reads";
        return out;
    }

    void start() { accepting_->start(); }

    void stop() {
        state_->stopped = true;
        accepting_->stop();
    }

private:
    static http_access::listener_options accepting(const std::shared_ptr<server_state> &state) {
        http_access::listener_options o;
        o.max_connections = state->options.max_connections;
        o.log_prefix = "admin: ";
        o.serve = [state](tcp::socket &&socket) -> std::shared_ptr<http_access::connection> {
            if (state->tls) return started<beast::ssl_stream<beast::tcp_stream>>(std::move(socket), state);
            return started<beast::tcp_stream>(std::move(socket), state);
        };
        o.on_full = [flood = connection_flood_log(o.max_connections)](const tcp::socket &, std::size_t) mutable {
            flood.note();
        };
        return o;
    }

    template <typename Stream>
    static std::shared_ptr<http_access::connection> started(tcp::socket &&socket,
                                                            const std::shared_ptr<server_state> &state) {
        auto s = std::make_shared<session<Stream>>(std::move(socket), state);
        s->run();
        return s;
    }

    std::shared_ptr<server_state> state_;
    std::shared_ptr<http_access::listener> accepting_;
};

admin_server::admin_server(net::io_context &ioc, admin_options options, admin_handlers handlers) {
    const std::string where = "admin endpoint " + options.host + ":" + std::to_string(options.port);
    const auto at = resolve(ioc, options, where);
    auto state = std::make_shared<server_state>();
    state->options = std::move(options);
    state->handlers = std::move(handlers);
    if (!state->options.token_file.empty()) state->tokens = access_list::load(state->options.token_file);
    if (state->tokens.has_certs() && state->options.tls.client_ca.empty())
        throw std::runtime_error("the token file '" + state->options.token_file.string() +
                                 "' has 'cert' lines, but without [admin] client_ca no client certificate is "
                                 "verified: set tls_cert, tls_key and client_ca, or remove those lines");
    if (!state->options.tls.cert.empty()) state->tls.emplace(make_tls_context(state->options.tls));
    else if (!state->options.tls.key.empty() || !state->options.tls.client_ca.empty())
        throw std::runtime_error("admin TLS: tls_key or client_ca is set but tls_cert is not");
    listener_ = std::make_shared<listener>(ioc, at, where, std::move(state));
    endpoint_ = listener_->endpoint();
}

admin_server::~admin_server() { stop(); }

void admin_server::start() {
    spdlog::info("admin: listening on {}:{} ({}; {})", endpoint_.address().to_string(), endpoint_.port(),
                 listener_->tls() ? "TLS" : "plain HTTP", listener_->access_summary());
    listener_->start();
}

void admin_server::stop() { listener_->stop(); }

// The value of `name` in a query string ("strict" in "a=1&strict"): "" for a bare name, nullopt when absent.
std::optional<std::string_view> query_value(std::string_view query, std::string_view name) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const auto item = query.substr(0, amp);
        const auto eq = item.find('=');
        if (item.substr(0, eq) == name) return eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
        query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
    return std::nullopt;
}

// ---- --admin-listen HOST:PORT ----

listen_address parse_listen_address(std::string_view text) {
    const auto bad = [&](const std::string &why) {
        return std::invalid_argument("admin address '" + std::string(text) + "': " + why +
                                     " (expected HOST:PORT, e.g. 127.0.0.1:9100 or [::1]:9100)");
    };
    listen_address out;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) throw bad("no ']' after an IPv6 address");
        out.host = std::string(text.substr(1, close - 1));
        if (close + 1 >= text.size() || text[close + 1] != ':') throw bad("no ':PORT' after ']'");
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) throw bad("no ':PORT'");
        out.host = std::string(text.substr(0, colon));
        if (out.host.find(':') != std::string::npos) throw bad("an IPv6 address must be written in brackets");
        port = text.substr(colon + 1);
    }
    if (out.host.empty()) throw bad("the host is empty");
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535)
        throw bad("the port is not a number from 0 to 65535");
    out.port = static_cast<std::uint16_t>(value);
    return out;
}

}  // namespace firelink::admin
