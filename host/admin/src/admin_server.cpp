// The admin endpoint, in the shape of Beast's http_server_async example: a listener, one session per connection on
// its own strand, do_x/on_x pairs, a deadline on every read and write, error_code on the I/O paths.
#include "firelink/admin/admin_server.hpp"

#include <array>
#include <atomic>
#include <charconv>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <variant>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace firelink::admin {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

constexpr std::string_view json_type = "application/json";
constexpr std::string_view metrics_type = "text/plain; version=0.0.4; charset=utf-8";

// What every session of one server shares.
struct server_state {
    admin_options options;
    admin_handlers handlers;
    std::atomic<bool> stopped{false};
};

// ---- routing: a request in, a response out; no I/O ----

std::string error_json(std::string_view message) {
    // replace: a handler's exception text need not be valid UTF-8.
    return nlohmann::json{{"error", message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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

// "%2F" and friends; nothing when an escape is malformed. '+' stays '+': this is a path, not a form.
std::optional<std::string> percent_decode(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        unsigned value = 0;
        if (in.size() - i < 3) return std::nullopt;
        auto [end, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
        if (ec != std::errc{} || end != in.data() + i + 3) return std::nullopt;
        out += static_cast<char>(value);
        i += 2;
    }
    return out;
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

// The device id of /api/devices/{id}/{action}, checked; or the error to answer.
std::variant<std::string, response> device_in_path(const request &req, std::string_view raw) {
    const auto id = percent_decode(raw);
    if (!id) return error(req, 400, "the device id in the path has a malformed %-escape");
    if (id->empty()) return error(req, 400, "the device id in the path is empty");
    for (unsigned char c : *id)
        if (c == '/' || c < 0x20 || c == 0x7f) return error(req, 400, "the device id in the path holds '/' or a control character");
    return *id;
}

template <typename Handler, typename... Args>
response call_status(const request &req, const Handler &handler, Args &&...args) {
    if (!handler) return error(req, 501, "not provided by this host");
    return guarded(req, [&] { return status_reply(req, handler(std::forward<Args>(args)...)); });
}

}  // namespace

const char *role_name(role r) {
    switch (r) {
    case role::read: return "read";
    case role::operate: return "operate";
    case role::admin: return "admin";
    }
    return "?";
}

namespace {

response route(const request &req, const admin_handlers &h, const principal &who) {
    std::string_view target(req.target().data(), req.target().size());  // Boost 1.74: boost::string_view
    const auto question = target.find('?');
    const auto path = target.substr(0, question);
    const auto query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);

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
                auto id = device_in_path(req, rest.substr(0, slash));
                if (auto *bad = std::get_if<response>(&id)) return std::move(*bad);
                const auto &device = std::get<std::string>(id);
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

// ---- one connection ----

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket &&socket, std::shared_ptr<server_state> state)
        : stream_(std::move(socket)), state_(std::move(state)) {}

    void run() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&session::do_read, shared_from_this())); }

    // From any thread: closes the connection on its strand, cancelling whatever it waits for.
    void close() {
        net::post(stream_.get_executor(), [self = shared_from_this()] { self->stream_.close(); });
    }

private:
    void do_read() {
        if (state_->stopped) return do_close();
        parser_.emplace();  // a fresh parser per request; buffer_ keeps bytes a client pipelined
        parser_->body_limit(state_->options.body_limit);
        stream_.expires_after(state_->options.request_timeout);  // one deadline for the whole request
        http::async_read_header(stream_, buffer_, *parser_,
                                beast::bind_front_handler(&session::on_read_header, shared_from_this()));
    }

    void on_read_header(beast::error_code ec, std::size_t) {
        if (ec) return on_read_failed(ec);
        const auto &req = parser_->get();
        // curl sends "Expect: 100-continue" before a body over 1 KiB and waits a second for this answer.
        if (!parser_->is_done() && beast::iequals(req[http::field::expect], "100-continue")) {
            continue_ = http::response<http::empty_body>{http::status::continue_, req.version()};
            return http::async_write(stream_, continue_,
                                     beast::bind_front_handler(&session::on_continue, shared_from_this()));
        }
        do_read_body();
    }

    void on_continue(beast::error_code ec, std::size_t) {
        if (ec) return;
        do_read_body();
    }

    void do_read_body() {
        http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&session::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) return on_read_failed(ec);
        if (state_->stopped) return do_close();
        const request req = parser_->release();
        // Until authentication lands every request acts as an unauthenticated admin, as before.
        const principal who{"anonymous", role::admin, false, {}};
        auto res = route(req, state_->handlers, who);
        spdlog::debug("admin: {} {} -> {}", std::string(req.method_string()), std::string(req.target()),
                      res.result_int());
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
        stream_.expires_after(state_->options.request_timeout);
        http::async_write(stream_, res_,
                          beast::bind_front_handler(&session::on_write, shared_from_this(), res_.need_eof()));
    }

    void on_write(bool close, beast::error_code ec, std::size_t) {
        if (ec) return;
        if (close) return do_close();
        do_read();
    }

    // Sends FIN, then reads and drops what the client still sends until it closes too (or the deadline): closing
    // with unread bytes would make the kernel send a reset, which can destroy a 413 before the client reads it.
    void do_close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return;
        stream_.expires_after(state_->options.request_timeout);  // once: a client that keeps sending is cut off
        do_drain();
    }

    void do_drain() {
        stream_.async_read_some(net::buffer(drain_),
                                beast::bind_front_handler(&session::on_drain, shared_from_this()));
    }

    void on_drain(beast::error_code ec, std::size_t) {
        if (ec) return;  // eof, timeout or stop(): the socket closes when the session ends
        do_drain();
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::shared_ptr<server_state> state_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::empty_body> continue_;
    response res_;
    std::array<char, 4096> drain_;
};

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

}  // namespace

// ---- the listener: accepts connections and remembers them so stop() can close them ----

class admin_server::listener : public std::enable_shared_from_this<listener> {
public:
    listener(net::io_context &ioc, std::shared_ptr<server_state> state)
        : ioc_(ioc), acceptor_(net::make_strand(ioc)), retry_(acceptor_.get_executor()), state_(std::move(state)) {}

    tcp::endpoint listen(const tcp::endpoint &at, const std::string &where) {
        beast::error_code ec;
        const auto check = [&](const char *what) {
            if (ec) throw std::system_error(std::error_code(ec), where + ": " + what);
        };
        acceptor_.open(at.protocol(), ec);
        check("cannot open a socket");
        acceptor_.set_option(net::socket_base::reuse_address(true), ec);
        check("cannot set SO_REUSEADDR");
        acceptor_.bind(at, ec);
        check("cannot bind");
        acceptor_.listen(net::socket_base::max_listen_connections, ec);
        check("cannot listen");
        const auto bound = acceptor_.local_endpoint(ec);
        check("cannot read the bound address");
        return bound;
    }

    void start() {
        if (started_.exchange(true)) return;  // one accept loop, however often start() is called
        net::dispatch(acceptor_.get_executor(), beast::bind_front_handler(&listener::do_accept, shared_from_this()));
    }

    void stop() {
        state_->stopped = true;
        net::post(acceptor_.get_executor(), [self = shared_from_this()] { self->close_all(); });
    }

private:
    void do_accept() {
        if (state_->stopped) return;
        acceptor_.async_accept(net::make_strand(ioc_),
                               beast::bind_front_handler(&listener::on_accept, shared_from_this()));
    }

    void on_accept(beast::error_code ec, tcp::socket socket) {
        if (state_->stopped || ec == net::error::operation_aborted) return;
        if (ec) {
            // Out of file descriptors, most likely: wait a little rather than spin on a failing accept.
            spdlog::warn("admin: accept failed: {}", ec.message());
            retry_.expires_after(std::chrono::milliseconds(100));
            return retry_.async_wait([self = shared_from_this()](beast::error_code wait_ec) {
                if (!wait_ec) self->do_accept();
            });
        }
        std::erase_if(sessions_, [](const std::weak_ptr<session> &w) { return w.expired(); });
        if (sessions_.size() >= state_->options.max_connections) {
            refuse(socket);
            return do_accept();
        }
        auto s = std::make_shared<session>(std::move(socket), state_);
        sessions_.push_back(s);
        s->run();
        do_accept();
    }

    // Closes a connection beyond max_connections at once. Logged once a window with the count, so a flood costs a
    // line every few seconds, not one per connection.
    void refuse(tcp::socket &socket) {
        ++refused_;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_refusal_log_ >= std::chrono::seconds(10)) {
            spdlog::warn("admin: {} connection(s) are open, the most allowed: closed {} new one(s) since the last "
                         "report",
                         state_->options.max_connections, refused_ - refused_logged_);
            refused_logged_ = refused_;
            last_refusal_log_ = now;
        }
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
    }

    void close_all() {
        beast::error_code ec;
        acceptor_.close(ec);
        retry_.cancel();
        for (auto &w : sessions_)
            if (auto s = w.lock()) s->close();
        sessions_.clear();
    }

    net::io_context &ioc_;
    tcp::acceptor acceptor_;
    net::steady_timer retry_;
    std::shared_ptr<server_state> state_;
    std::vector<std::weak_ptr<session>> sessions_;  // touched on the acceptor's strand only
    std::uint64_t refused_ = 0, refused_logged_ = 0;  // beyond max_connections; as is what follows, on the strand
    std::chrono::steady_clock::time_point last_refusal_log_{};
    std::atomic<bool> started_{false};
};

admin_server::admin_server(net::io_context &ioc, admin_options options, admin_handlers handlers) {
    const std::string where = "admin endpoint " + options.host + ":" + std::to_string(options.port);
    const auto at = resolve(ioc, options, where);
    auto state = std::make_shared<server_state>();
    state->options = std::move(options);
    state->handlers = std::move(handlers);
    listener_ = std::make_shared<listener>(ioc, std::move(state));
    endpoint_ = listener_->listen(at, where);
}

admin_server::~admin_server() { stop(); }

void admin_server::start() {
    spdlog::info("admin: listening on {}:{}", endpoint_.address().to_string(), endpoint_.port());
    listener_->start();
}

void admin_server::stop() { listener_->stop(); }

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
