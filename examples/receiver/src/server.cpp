// In the shape of Beast's http_server_async example: a listener, one session per connection on its own strand,
// do_x/on_x pairs, a deadline on every read and write, error_code on the I/O paths. Work that waits (a store commit,
// a long poll, an injected delay) never holds an I/O thread: it answers later by posting to the session's strand.
#include "server.hpp"

#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <limits>
#include <map>
#include <optional>
#include <system_error>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <firelink/http_access/beast_names.hpp>
#include <firelink/http_access/escapes.hpp>
#include <firelink/http_access/listener.hpp>
#include <firelink/text.hpp>
#include <spdlog/spdlog.h>

#include "batch.hpp"
#include "command_board.hpp"
#include "faults.hpp"
#include "page.hpp"
#include "store.hpp"

namespace firelink::receiver {

using namespace http_access::beast_names;

namespace {

constexpr std::string_view json_type = "application/json";
constexpr std::string_view msgpack_type = "application/msgpack";
constexpr std::string_view text_type = "text/plain; charset=utf-8";
constexpr std::int64_t max_event_limit = 10000;
constexpr unsigned max_poll_wait_s = 30;
constexpr std::size_t inline_parse_bytes = 64 * 1024;

struct server_state {
    server_state(store &s, server_options o, net::thread_pool::executor_type b)
        : db(s), options(std::move(o)), bulk(b) {}
    store &db;
    server_options options;
    command_board board;
    fault_plan faults;
    std::atomic<bool> stopped{false};
    const std::int64_t started_ms = now_ms();
    std::atomic<std::uint64_t> bad_batches{0}, unauthorized{0}, forbidden{0}, store_failures{0}, polls{0};
    net::thread_pool::executor_type bulk;  // parses large batches; outlives every session (see ~server)
};

// What a later answer needs of its request.
struct reply_to {
    unsigned version = 11;
    bool keep_alive = true;
};

response reply(reply_to to, unsigned status, std::string body, std::string_view type) {
    response res;
    res.version(to.version ? to.version : 11);
    res.result(status);
    res.set(http::field::server, "firelink-receiver");
    res.set(http::field::content_type, beast::string_view(type.data(), type.size()));
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    res.keep_alive(to.keep_alive);
    res.prepare_payload();
    return res;
}


response json_reply(reply_to to, unsigned status, const nlohmann::json &j) {
    return reply(to, status, firelink::text::dump_json<nlohmann::json>(j), json_type);
}
// The operator's API answers errors as JSON; the uplink (/v1) as plain text, which the host keeps as the reason.
response json_error(reply_to to, unsigned status, std::string_view message) {
    return json_reply(to, status, nlohmann::json{{"error", message}});
}
response text_error(reply_to to, unsigned status, std::string message) {
    return reply(to, status, std::move(message) + "\n", text_type);
}

struct bad_request : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// nlohmann's parser keeps its own stack, but what is done with the value afterwards (dump, pack_json, the store)
// recurses: a body nested 100 000 deep crashed the receiver. The callback sees each value's depth as it is parsed and
// stops the parse there, so nothing deeper is ever built.
nlohmann::json parse_json(std::string_view body, std::size_t max_depth) {
    return nlohmann::json::parse(body, [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json &) {
        if (static_cast<std::size_t>(depth) > max_depth)
            throw bad_request("the JSON is nested deeper than " + std::to_string(max_depth) + " levels");
        return true;
    });
}

// ---- query strings ----

class query_params {
public:
    explicit query_params(std::string_view target) {
        const auto q = target.find('?');
        if (q == std::string_view::npos) return;
        auto rest = target.substr(q + 1);
        while (!rest.empty()) {
            const auto amp = rest.find('&');
            const auto part = rest.substr(0, amp);
            rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
            if (part.empty()) continue;
            const auto eq = part.find('=');
            const auto key = http_access::form_decode(part.substr(0, eq));
            const auto value =
                http_access::form_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1));
            if (!key || !value) throw bad_request("the query string has a malformed %-escape");
            values_[*key] = *value;
        }
    }
    std::optional<std::string> text(const std::string &key) const {
        const auto it = values_.find(key);
        if (it == values_.end() || it->second.empty()) return std::nullopt;
        return it->second;
    }
    std::optional<std::int64_t> integer(const std::string &key, std::int64_t lo, std::int64_t hi) const {
        const auto v = text(key);
        if (!v) return std::nullopt;
        std::int64_t n = 0;
        const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
        if (ec != std::errc{} || end != v->data() + v->size() || n < lo || n > hi)
            throw bad_request("'" + key + "' must be an integer from " + std::to_string(lo) + " to " +
                              std::to_string(hi) + ", not '" + *v + "'");
        return n;
    }

private:
    std::map<std::string, std::string> values_;
};

// ---- one connection ----

class session : public http_access::connection, public std::enable_shared_from_this<session> {
public:
    session(tcp::socket &&socket, std::shared_ptr<server_state> state)
        : stream_(std::move(socket)), state_(std::move(state)) {}

    void run() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&session::do_read, shared_from_this())); }

    net::any_io_executor executor() { return stream_.get_executor(); }

    // From any thread: closes the connection on its strand, cancelling what it waits for.
    void close() override {
        net::post(stream_.get_executor(), [self = shared_from_this()] {
            self->cancel_pending();
            beast::error_code ec;
            self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
            self->stream_.close();
        });
    }

    // On the strand: what to cancel if the connection closes before the pending answer (a poll's timer).
    void on_close(std::function<void()> cancel) { cancel_ = std::move(cancel); }

    // On the strand: answers the request being handled, then reads the next one.
    void respond(response &&res) {
        cancel_ = nullptr;
        if (state_->stopped) res.keep_alive(false);
        res_ = std::move(res);
        stream_.expires_after(state_->options.request_timeout);
        http::async_write(stream_, res_,
                          beast::bind_front_handler(&session::on_write, shared_from_this(), res_.need_eof()));
    }

    // On the strand: closes the connection without answering (fault injection).
    void drop() {
        cancel_ = nullptr;
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.close();
    }

    // From any thread.
    void respond_later(response res) {
        net::post(stream_.get_executor(),
                  [self = shared_from_this(), res = std::move(res)]() mutable { self->respond(std::move(res)); });
    }

private:
    void cancel_pending() {
        if (auto c = std::move(cancel_)) {
            cancel_ = nullptr;
            c();
        }
    }

    void do_read() {
        if (state_->stopped) return do_close();
        parser_.emplace();  // a fresh parser per request; buffer_ keeps bytes a client pipelined
        // No limit while the header is read: Beast would refuse a large Content-Length with 413 before we know
        // whether the caller may send anything at all. admit() sets the route's limit before any body byte is read.
        // (Not boost::none: this Beast compares a Content-Length with an empty optional as larger.)
        parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
        stream_.expires_after(grant_ ? state_->options.request_timeout : state_->options.header_timeout);
        grant_.reset();
        http::async_read_header(stream_, buffer_, *parser_,
                                beast::bind_front_handler(&session::on_read_header, shared_from_this()));
    }

    void on_read_header(beast::error_code ec, std::size_t) {
        if (ec) return on_read_failed(ec);
        const auto &req = parser_->get();
        if (auto refusal = admit(req)) return respond(std::move(*refusal));
        stream_.expires_after(state_->options.request_timeout);
        // curl sends "Expect: 100-continue" before a large body and waits for this answer.
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

    void on_read(beast::error_code ec, std::size_t);  // routes: below, after the handlers

    // From the header alone: who is asking, whether they may, and how large a body the route takes. A refusal is
    // answered before any of the body is read, and closes the connection (the unread body is drained, not kept).
    std::optional<response> admit(const request &req);

    void on_read_failed(beast::error_code ec) {
        if (ec == http::error::end_of_stream) return do_close();
        const reply_to to{11, false};
        if (ec == http::error::body_limit)
            return respond(text_error(to, 413, "the body is larger than " + std::to_string(body_cap_) + " bytes"));
        if (ec == http::error::header_limit) return respond(text_error(to, 431, "the request header is too large"));
        const bool malformed = ec.category() == http::make_error_code(http::error::bad_target).category() &&
                               ec != http::error::partial_message && ec != http::error::need_more;
        if (malformed) return respond(text_error(to, 400, "malformed HTTP request: " + ec.message()));
        if (ec != net::error::operation_aborted && ec != beast::error::timeout)
            spdlog::debug("connection ended: {}", ec.message());
    }

    void on_write(bool close, beast::error_code ec, std::size_t) {
        if (ec) return;
        if (close) return do_close();
        do_read();
    }

    // FIN, then drain what the client still sends: closing with unread bytes would reset the connection and could
    // destroy an error answer before the client reads it.
    void do_close() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec) return;
        stream_.expires_after(state_->options.drain_timeout);
        do_drain();
    }

    void do_drain() {
        stream_.async_read_some(net::buffer(drain_), beast::bind_front_handler(&session::on_drain, shared_from_this()));
    }

    void on_drain(beast::error_code ec, std::size_t) {
        if (ec) return;
        do_drain();
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::shared_ptr<server_state> state_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::empty_body> continue_;
    response res_;
    std::function<void()> cancel_;
    std::array<char, 4096> drain_;
    std::size_t body_cap_ = 0;    // the route's body limit, from admit()
    std::optional<grant> grant_;  // the request's, from admit(); kept until the next header so keep-alive waits long
};

using session_ptr = std::shared_ptr<session>;

// ---- the uplink: /v1/... ----

// Parses, stores and answers a batch. Runs on the session's strand or on the bulk thread: it answers through
// respond_later either way.
void store_batch(const session_ptr &s, const std::shared_ptr<server_state> &st, reply_to to, const grant &g,
                 const std::string &body) {
    parsed_batch batch;
    const auto started = std::chrono::steady_clock::now();
    try {
        batch = parse_batch(body, st->faults.reject_device());
        spdlog::trace("parsed a batch of {} bytes in {} us", body.size(),
                      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started)
                          .count());
    } catch (const bad_batch &e) {
        ++st->bad_batches;
        spdlog::info("refused a batch (400): {}", e.what());
        return s->respond_later(text_error(to, 400, e.what()));
    }
    // The batch names its gateway in the body, so this is the first moment it can be checked.
    if (!g.covers(batch.gateway)) {
        ++st->forbidden;
        spdlog::warn("refused a batch (403): a token of gateway {} wrote as {}", g.gateway, batch.gateway);
        return s->respond_later(text_error(to, 403, "this token may not write as gateway '" + batch.gateway + "'"));
    }
    auto shared = std::make_shared<const parsed_batch>(std::move(batch));
    st->db.ingest(shared, [s, st, shared, to](std::exception_ptr err, ingest_result r) {
        if (err) {
            ++st->store_failures;
            std::string why = "cannot store the batch now";
            try {
                std::rethrow_exception(err);
            } catch (const std::exception &e) {
                why += std::string(": ") + e.what();
            } catch (...) {
            }
            auto res = text_error(to, 503, why);
            res.set(http::field::retry_after, "1");
            return s->respond_later(std::move(res));
        }
        spdlog::debug("batch {} {} lane {}: through seq {}, {} new, {} duplicate, {} rejected", shared->gateway,
                      shared->epoch, shared->lane, shared->last_seq, r.stored, r.duplicates, shared->rejects.size());
        if (st->faults.take_drop()) {
            spdlog::info("fault injection: committed a batch through seq {} and closed the connection unanswered",
                         shared->last_seq);
            return net::post(s->executor(), [s] { s->drop(); });
        }
        s->respond_later(reply(to, 200, encode_ack(*shared), msgpack_type));
    });
}

// A small body (an alarm batch is sent the moment it is committed, so it is small) is parsed on the I/O thread at
// once; a large one on the bulk thread, so a telemetry backlog never occupies the threads an alarm arrives on.
void parse_and_store(const session_ptr &s, const std::shared_ptr<server_state> &st, reply_to to, grant g,
                     std::string body) {
    if (body.size() <= inline_parse_bytes) return store_batch(s, st, to, g, body);
    net::post(st->bulk, [s, st, to, g = std::move(g), body = std::move(body)] { store_batch(s, st, to, g, body); });
}

void post_events(const session_ptr &s, const std::shared_ptr<server_state> &st, request &&req, reply_to to,
                 const grant &g) {
    if (const auto f = st->faults.take_status()) {
        spdlog::info("fault injection: answering a batch {} without storing it", f->status);
        auto res = text_error(to, f->status, "injected fault: " + std::to_string(f->status));
        if (f->retry_after) res.set(http::field::retry_after, std::to_string(*f->retry_after));
        return s->respond(std::move(res));
    }
    const auto delay = st->faults.take_delay_ms();
    if (delay == 0) return parse_and_store(s, st, to, g, std::move(req.body()));
    spdlog::info("fault injection: holding a batch {} ms before storing and answering it", delay);
    auto timer = std::make_shared<net::steady_timer>(s->executor(), std::chrono::milliseconds(delay));
    s->on_close([timer] { timer->cancel(); });
    timer->async_wait([s, st, to, g, timer, body = std::move(req.body())](beast::error_code ec) mutable {
        if (ec || st->stopped) return;
        s->on_close(nullptr);
        parse_and_store(s, st, to, std::move(g), std::move(body));
    });
}

std::string encode_commands(const std::vector<command_row> &rows, std::uint64_t cursor) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_map(2);
    pk.pack(std::string_view("commands"));
    pk.pack_array(static_cast<std::uint32_t>(rows.size()));
    for (const auto &r : rows) {
        pk.pack_map(r.expires_wall_ms ? 6 : 5);
        pk.pack(std::string_view("cursor"));
        pk.pack(r.cursor);
        pk.pack(std::string_view("id"));
        pk.pack(r.id);
        pk.pack(std::string_view("device"));
        pk.pack(r.device);
        pk.pack(std::string_view("name"));
        pk.pack(r.name);
        pk.pack(std::string_view("args"));
        auto args = nlohmann::json::parse(r.args_json, nullptr, false);
        if (!args.is_object()) args = nlohmann::json::object();
        pack_json(pk, args);
        if (r.expires_wall_ms) {
            pk.pack(std::string_view("expires_wall_ms"));
            pk.pack(*r.expires_wall_ms);
        }
        cursor = std::max(cursor, r.cursor);
    }
    pk.pack(std::string_view("cursor"));
    pk.pack(cursor);
    return {buf.data(), buf.size()};
}

void poll_commands(const session_ptr &s, const std::shared_ptr<server_state> &st, const request &req, reply_to to,
                   const grant &g) {
    std::string gateway;
    std::uint64_t after = 0;
    unsigned wait_s = 0;
    try {
        const query_params q(std::string_view(req.target().data(), req.target().size()));
        gateway = q.text("gateway").value_or("");
        if (gateway.empty()) throw bad_request("'gateway' is missing");
        after = static_cast<std::uint64_t>(q.integer("after", 0, INT64_MAX).value_or(0));
        // The document says 1-30; 0 (answer at once) is accepted, more than 30 is held to 30.
        wait_s = static_cast<unsigned>(
            std::min<std::int64_t>(q.integer("wait", 0, 86400).value_or(0), max_poll_wait_s));
    } catch (const bad_request &e) {
        return s->respond(text_error(to, 400, e.what()));
    }
    if (!g.covers(gateway)) {
        ++st->forbidden;
        return s->respond(text_error(to, 403, "this token may not poll the commands of gateway '" + gateway + "'"));
    }
    ++st->polls;

    struct poll {
        explicit poll(net::any_io_executor ex) : timer(ex) {}
        net::steady_timer timer;
        bool done = false;
        std::optional<std::uint64_t> registration;
    };
    auto p = std::make_shared<poll>(s->executor());
    // Runs on the session's strand, once: from the timer, a posted command, or at once.
    auto finish = [s, st, p, gateway, after, to] {
        if (p->done) return;
        p->done = true;
        if (p->registration) st->board.cancel(*p->registration);
        p->timer.cancel();
        s->on_close(nullptr);
        try {
            const auto rows = st->db.commands_after(gateway, after);
            auto res = reply(to, 200, encode_commands(rows, st->board.max_cursor(gateway)), msgpack_type);
            if (rows.empty()) return s->respond(std::move(res));
            // Answered once "delivered" is on record, so /api/commands never lags behind what the gateway has.
            std::vector<std::uint64_t> cursors;
            for (const auto &r : rows) cursors.push_back(r.cursor);
            st->db.mark_delivered(gateway, std::move(cursors), [s, res](std::exception_ptr) mutable {
                s->respond_later(std::move(res));  // a failed mark must not withhold the commands
            });
        } catch (const std::exception &e) {
            spdlog::error("command poll for {}: {}", gateway, e.what());
            s->respond(text_error(to, 503, std::string("cannot read the commands now: ") + e.what()));
        }
    };
    p->registration = st->board.wait(gateway, after, [ex = s->executor(), finish] { net::post(ex, finish); });
    if (!p->registration || wait_s == 0) return finish();
    s->on_close([st, p] {
        p->done = true;
        if (p->registration) st->board.cancel(*p->registration);
        p->timer.cancel();
    });
    p->timer.expires_after(std::chrono::seconds(wait_s));
    p->timer.async_wait([finish](beast::error_code) { finish(); });
}

// ---- the operator's API: /api/... ----

void post_command(const session_ptr &s, const std::shared_ptr<server_state> &st, const request &req, reply_to to,
                  const grant &g) {
    command_request cmd;
    try {
        const auto j = parse_json(req.body(), st->options.max_json_depth);
        if (!j.is_object()) throw bad_request("the body must be a JSON object");
        const auto text = [&](const char *key) {
            if (!j.contains(key) || !j.at(key).is_string() || j.at(key).get_ref<const std::string &>().empty())
                throw bad_request(std::string("'") + key + "' must be a non-empty string");
            return j.at(key).get<std::string>();
        };
        cmd.gateway = text("gateway");
        cmd.device = text("device");
        cmd.name = text("name");
        if (j.contains("args")) {
            if (!j.at("args").is_object()) throw bad_request("'args' must be a JSON object");
            cmd.args = j.at("args");
        }
        if (j.contains("ttl_s")) {
            const auto &t = j.at("ttl_s");
            if (!t.is_number() || t.get<double>() <= 0 || t.get<double>() > 1e9)
                throw bad_request("'ttl_s' must be a positive number of seconds");
            cmd.expires_wall_ms = now_ms() + static_cast<std::int64_t>(t.get<double>() * 1000);
        }
    } catch (const nlohmann::json::parse_error &e) {
        return s->respond(json_error(to, 400, std::string("the body is not JSON: ") + e.what()));
    } catch (const bad_request &e) {
        return s->respond(json_error(to, 400, e.what()));
    }
    if (!g.covers(cmd.gateway)) {
        ++st->forbidden;
        return s->respond(json_error(to, 403, "this token may not command gateway '" + cmd.gateway + "'"));
    }
    const auto gateway = cmd.gateway;
    st->db.add_command(std::move(cmd), [s, st, to, gateway](std::exception_ptr err, command_row row) {
        if (err) {
            ++st->store_failures;
            return s->respond_later(json_error(to, 503, "cannot store the command now"));
        }
        spdlog::info("command {} for {}/{}: {} (cursor {})", row.id, gateway, row.device, row.name, row.cursor);
        st->board.posted(gateway, row.cursor);  // before the answer: a poll is woken by the time the caller knows
        s->respond_later(json_reply(to, 200, {{"id", row.id}, {"cursor", row.cursor}}));
    });
}

response get_events(server_state &st, const request &req, reply_to to) {
    const query_params q(std::string_view(req.target().data(), req.target().size()));
    event_query eq;
    if (const auto kinds = q.text("kind")) {
        std::string_view rest = *kinds;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            if (const auto k = rest.substr(0, comma); !k.empty()) eq.kinds.emplace_back(k);
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        }
    }
    eq.device = q.text("device");
    eq.gateway = q.text("gateway");
    eq.lane = q.text("lane");
    if (eq.lane && !is_lane(*eq.lane)) throw bad_request("'lane' must be alarm, event or telemetry");
    eq.since_ms = q.integer("since_ms", INT64_MIN, INT64_MAX);
    eq.until_ms = q.integer("until_ms", INT64_MIN, INT64_MAX);
    eq.since_wall_ms = q.integer("since_wall_ms", INT64_MIN, INT64_MAX);
    eq.until_wall_ms = q.integer("until_wall_ms", INT64_MIN, INT64_MAX);
    eq.before_id = q.integer("before_id", 1, INT64_MAX);
    eq.limit = q.integer("limit", 1, max_event_limit).value_or(100);
    if (const auto r = q.text("rereports")) {
        if (*r != "list" && *r != "fold") throw bad_request("'rereports' must be list or fold");
        eq.fold_rereports = *r == "fold";
    }
    return json_reply(to, 200, st.db.events(eq));
}

response get_stats(server_state &st, reply_to to) {
    auto j = st.db.stats();
    j["since_start"] = {{"started_ms", st.started_ms},
                        {"bad_batches", st.bad_batches.load()},
                        {"unauthorized", st.unauthorized.load()},
                        {"forbidden", st.forbidden.load()},
                        {"store_failures", st.store_failures.load()},
                        {"command_polls", st.polls.load()},
                        {"waiting_polls", st.board.waiting()}};
    if (st.options.test_faults) j["faults"] = st.faults.describe();
    return json_reply(to, 200, j);
}

response not_allowed(reply_to to, std::string_view allow) {
    auto res = json_error(to, 405, "method not allowed here; use " + std::string(allow));
    res.set(http::field::allow, beast::string_view(allow.data(), allow.size()));
    return res;
}

void route(const session_ptr &s, const std::shared_ptr<server_state> &st, request &&req, const grant &g) {
    const reply_to to{req.version(), req.keep_alive()};
    std::string_view target(req.target().data(), req.target().size());
    const auto path = target.substr(0, target.find('?'));
    const auto method = req.method();
    try {
        if (path.substr(0, 4) == "/v1/") {
            if (path == "/v1/events") {
                if (method != http::verb::post) return s->respond(not_allowed(to, "POST"));
                return post_events(s, st, std::move(req), to, g);
            }
            if (path == "/v1/commands") {
                if (method != http::verb::get) return s->respond(not_allowed(to, "GET"));
                return poll_commands(s, st, req, to, g);
            }
        } else if (path == "/api/commands") {
            if (method == http::verb::post) return post_command(s, st, req, to, g);
            if (method != http::verb::get) return s->respond(not_allowed(to, "GET, POST"));
            const query_params q(target);
            const auto limit = q.integer("limit", 1, max_event_limit).value_or(100);
            return s->respond(json_reply(to, 200, st->db.commands(q.text("gateway"), limit)));
        } else if (path == "/api/events" || path == "/api/devices" || path == "/api/stats" || path == "/" ||
                   path == "/index.html") {
            if (method != http::verb::get) return s->respond(not_allowed(to, "GET"));
            if (path == "/api/events") return s->respond(get_events(*st, req, to));
            if (path == "/api/devices") return s->respond(json_reply(to, 200, st->db.devices()));
            if (path == "/api/stats") return s->respond(get_stats(*st, to));
            return s->respond(reply(to, 200, std::string(page_html), "text/html; charset=utf-8"));
        } else if (path == "/test/faults" && st->options.test_faults) {
            if (method == http::verb::post) {
                try {
                    st->faults.apply(parse_json(req.body(), st->options.max_json_depth));
                } catch (const std::exception &e) {
                    return s->respond(json_error(to, 400, e.what()));
                }
                spdlog::info("fault injection: now {}", firelink::text::dump_json<nlohmann::json>(st->faults.describe()));
            } else if (method != http::verb::get) {
                return s->respond(not_allowed(to, "GET, POST"));
            }
            return s->respond(json_reply(to, 200, st->faults.describe()));
        }
        const auto msg = "no such endpoint: " + std::string(path);
        return s->respond(path.substr(0, 4) == "/v1/" ? text_error(to, 404, msg) : json_error(to, 404, msg));
    } catch (const bad_request &e) {
        return s->respond(json_error(to, 400, e.what()));
    } catch (const std::exception &e) {
        spdlog::error("{} {}: {}", std::string(req.method_string()), std::string(target), e.what());
        return s->respond(json_error(to, 500, e.what()));
    }
}

// What a route needs of the caller. Unknown paths need a read grant too, so a stranger learns nothing (not even which
// paths exist) without a token.
role needed_role(std::string_view path, http::verb method) {
    if (path == "/v1/events" || path == "/v1/commands") return role::gateway;
    if ((path == "/api/commands" || path == "/test/faults") && method != http::verb::get) return role::operator_;
    return role::read;
}

std::optional<response> session::admit(const request &req) {
    const std::string_view target(req.target().data(), req.target().size());
    const auto path = target.substr(0, target.find('?'));
    const bool uplink = path.substr(0, 4) == "/v1/";
    const reply_to to{req.version(), false};  // a refusal closes: the body it did not read is not a next request
    const auto refuse = [&](unsigned status, std::string message) {
        return uplink ? text_error(to, status, std::move(message)) : json_error(to, status, message);
    };
    const auto &access = state_->options.access;
    const auto header = req[http::field::authorization];
    const auto g = access.authorize(std::string_view(header.data(), header.size()));
    const auto needed = needed_role(path, req.method());
    if (!g) {
        ++state_->unauthorized;
        auto res = refuse(401, access.empty() && !access.open()
                                   ? "this receiver has no token file, so it admits nobody: start it with "
                                     "--token-file FILE (lines '<read|operator|gateway> <gateway-id|*> "
                                     "<token|sha256:HEX>', see examples/receiver/README.md) or, for a demo on "
                                     "loopback, --insecure-loopback"
                                   : "a valid bearer token is required");
        // A browser asks for the page's token with its own prompt (Basic, the token as the password).
        res.set(http::field::www_authenticate, uplink ? "Bearer" : "Basic realm=\"firelink-receiver\", Bearer");
        return res;
    }
    if (!g->allows(needed)) {
        ++state_->forbidden;
        spdlog::info("{} {}: refused a {} token (403): needs {}", std::string(req.method_string()),
                     std::string(path), role_name(g->what), role_name(needed));
        return refuse(403, "this token's role (" + std::string(role_name(g->what)) + ") may not do this; it needs " +
                               std::string(role_name(needed)));
    }
    body_cap_ = path == "/v1/events" ? state_->options.body_limit : state_->options.small_body_limit;
    // Refused from the header, so a hostile Content-Length costs nothing; a chunked body meets the same cap in Beast
    // while it is read.
    if (const auto length = parser_->content_length(); length && *length > body_cap_)
        return refuse(413, "the body is larger than " + std::to_string(body_cap_) + " bytes");
    parser_->body_limit(body_cap_);
    grant_ = *g;
    return std::nullopt;
}

void session::on_read(beast::error_code ec, std::size_t) {
    if (ec) return on_read_failed(ec);
    if (state_->stopped) return do_close();
    stream_.expires_never();  // the handler's own deadlines apply now (a poll's wait, a commit)
    auto req = parser_->release();
    spdlog::debug("{} {}", std::string(req.method_string()), std::string(req.target()));
    route(shared_from_this(), state_, std::move(req), *grant_);
}

}  // namespace

// ---- the listener ----

struct server::impl {
    std::shared_ptr<server_state> state;
    std::shared_ptr<http_access::listener> listener;
};

server::server(net::io_context &ioc, store &db, server_options options) {
    const std::string where = "--listen " + options.host + ":" + std::to_string(options.port);
    beast::error_code ec;
    const auto address = net::ip::make_address(options.host, ec);
    if (ec) throw std::system_error(std::error_code(ec), where + ": not an IP address");
    const tcp::endpoint at{address, options.port};
    bulk_ = std::make_unique<net::thread_pool>(1);
    auto state = std::make_shared<server_state>(db, std::move(options), bulk_->get_executor());
    state->board.load(db.max_cursors());
    http_access::listener_options accepting;
    accepting.max_connections = state->options.max_connections;
    accepting.serve = [state](tcp::socket &&socket) {
        auto s = std::make_shared<session>(std::move(socket), state);
        s->run();
        return s;
    };
    // Past the cap a flood is closed unread, and the connections already open (the gateways' polls among them) go
    // on.
    accepting.on_full = [](const tcp::socket &socket, std::size_t open) {
        beast::error_code unknown;
        spdlog::warn("{} connections open: closing a new one from {}", open,
                     socket.remote_endpoint(unknown).address().to_string());
    };
    auto listener = std::make_shared<http_access::listener>(ioc, at, where, std::move(accepting));
    impl_ = std::make_shared<impl>(impl{std::move(state), std::move(listener)});
}

// Runs after the I/O threads have returned: waits for the batches still being parsed (they find the store stopped
// or still running; their answers go nowhere).
server::~server() {
    stop();
    bulk_->join();
}

void server::start() { impl_->listener->start(); }

void server::stop() {
    if (impl_->state->stopped.exchange(true)) return;
    impl_->listener->stop();
}

tcp::endpoint server::endpoint() const { return impl_->listener->endpoint(); }

}  // namespace firelink::receiver
