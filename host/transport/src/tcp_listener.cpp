// A TCP listener devices connect in to (e.g. a fire panel's UITD). Each accepted connection is claimed by a device
// attached by its peer address, or else by the identity that the plugin's identify function reads from the
// connection's first bytes; a connection nobody claims is closed and counted. GB/T 26875.3 has no authentication, so
// a connection naming a device that is connected already is refused, not handed over: otherwise anyone who can reach
// the port could take over a fire panel's identity, inject alarms and end the real ones.
//
// Threading: accepting and identifying run on the listener's strand (so identify is never called concurrently); the
// registry of attached devices is shared with the device links' executors and guarded by a mutex. A claimed socket
// is handed to its device's executor, where the device's link owns it from then on.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <spdlog/spdlog.h>

#include "stream_link.hpp"
#include "tcp_socket_options.hpp"

namespace firelink::transport {
namespace detail {
namespace {

using tcp = asio::ip::tcp;

// A connection that has not identified itself in this many bytes is closed. With listener_limits::max_unbound this
// bounds what a listener buffers, and the descriptors it holds, for strangers (64 x 4.5 KiB by default), however
// many connect: a flood of silent or chatty peers costs no more, and bound devices keep flowing.
constexpr std::size_t identify_limit = 4096;

asio::ip::address normalized(const asio::ip::address &a) {
    if (a.is_v6() && a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    return a;
}

// An address or a network a device may connect from ([[device]] wire.allow_peers): "10.0.0.7", "10.0.0.0/24",
// "fd00::/8". A v4-mapped IPv6 peer (a dual-stack listener) is compared as the IPv4 address it is.
struct peer_network {
    asio::ip::address base;
    unsigned prefix = 0;

    static std::optional<peer_network> parse(std::string_view text) {
        const auto slash = text.find('/');
        error_code ec;
        const auto a = asio::ip::make_address(std::string(text.substr(0, slash)), ec);
        if (ec) return std::nullopt;
        const unsigned bits = a.is_v4() ? 32 : 128;
        unsigned prefix = bits;
        if (slash != std::string_view::npos) {
            const auto digits = text.substr(slash + 1);
            const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
            if (digits.empty() || err != std::errc{} || end != digits.data() + digits.size() || prefix > bits)
                return std::nullopt;
        }
        return peer_network{normalized(a), prefix};
    }

    bool contains(const asio::ip::address &peer_address) const {
        const auto a = normalized(peer_address);
        if (a.is_v4() != base.is_v4()) return false;
        const auto bytes = [](const asio::ip::address &x) {
            std::array<unsigned char, 16> out{};
            if (x.is_v4()) {
                const auto b = x.to_v4().to_bytes();
                std::copy(b.begin(), b.end(), out.begin());
            } else {
                out = x.to_v6().to_bytes();
            }
            return out;
        };
        const auto want = bytes(base), got = bytes(a);
        for (unsigned i = 0; i < prefix; ++i) {
            const unsigned char mask = static_cast<unsigned char>(0x80u >> (i % 8));
            if ((want[i / 8] & mask) != (got[i / 8] & mask)) return false;
        }
        return true;
    }
};

class accepted_link;

class listener_core final : public tcp_listener, public std::enable_shared_from_this<listener_core> {
public:
    listener_core(asio::io_context &io, const std::string &address, std::uint16_t port, listener_limits limits);
    ~listener_core() override;

    std::uint16_t port() const override { return port_; }
    void set_identifier(identify_fn identify) override {
        std::lock_guard lock(mu_);
        identify_ = std::move(identify);
    }
    void set_conflict_handler(conflict_fn on_conflict) override {
        std::lock_guard lock(mu_);
        on_conflict_ = std::move(on_conflict);
    }
    std::unique_ptr<link> attach_peer(executor ex, std::string peer_address, link_events events) override;
    std::unique_ptr<link> attach_identity(executor ex, std::string identity, link_events events,
                                          std::vector<std::string> allow_peers) override;
    std::uint64_t unmatched_connections() const override { return unmatched_.load(); }
    void stop_accepting() override;

    void start() { do_accept(); }

    // From accepted links, on their executors.
    void set_open(std::uint64_t device, bool open);
    void connection_ended(std::uint64_t device, std::uint64_t token);
    void detach(std::uint64_t device);

    // From identify sessions, on the listener strand.
    fl_status identify(const std::vector<std::uint8_t> &bytes, std::string &identity);
    enum class claim { taken, nobody, conflict };
    claim claim_identity(const std::string &identity, tcp::socket &socket, std::vector<std::uint8_t> &first,
                         const std::string &peer);
    void reject(tcp::socket &socket, const std::string &peer, const std::string &why);
    void identify_ended() { --identifying_; }

private:
    struct device_entry {
        std::optional<asio::ip::address> peer;  // bound by peer address, or else by identity
        std::string identity;
        std::vector<peer_network> allow;  // with an identity: where it may come from (empty: anywhere)
        std::weak_ptr<accepted_link> link;
        executor ex;
        bool open = false;       // the device called open() and is waiting for (or has) a connection
        std::uint64_t token = 0; // the connection handed to it last; 0 when it has none
        std::string token_peer;  // where that connection came from
    };
    // Conflicts reported to on_conflict_, per identity: the first at once, then at most one a window, counting the
    // rest; a forger retrying in a loop must not flood the platform with faults. On the strand.
    struct conflict_report {
        std::chrono::steady_clock::time_point last{};
        std::uint64_t quiet = 0;  // refused since the last report
    };
    // `what` names both sides; reported at once for an identity's first refusal, then at most once a window.
    void report_conflict(const std::string &identity, const std::string &peer, std::string what);

    std::unique_ptr<link> attach(executor ex, std::optional<asio::ip::address> peer, std::string identity,
                                 link_events events, std::vector<peer_network> allow = {});
    void do_accept();
    void on_accept(const error_code &ec, tcp::socket socket);
    // Gives `socket` to the device; the caller holds mu_.
    void hand_over(device_entry &d, tcp::socket socket, std::vector<std::uint8_t> first, const std::string &peer);

    asio::strand<asio::io_context::executor_type> strand_;
    const listener_limits limits_;
    tcp::acceptor acceptor_;
    asio::steady_timer accept_retry_;
    std::uint16_t port_ = 0;
    std::string name_;
    std::atomic<std::uint64_t> unmatched_{0};
    std::atomic<bool> stopped_{false};  // stop_accepting(): what is accepted after it closes quietly
    // reject()'s warnings, on the strand: a few per window, then one line at the window's end that counts the rest.
    // A device that reconnects at once after each refusal would otherwise write thousands of lines a second.
    asio::steady_timer reject_window_;
    unsigned rejects_logged_ = 0;     // in this window; 0: no window open
    std::uint64_t rejects_quiet_ = 0; // counted, not logged
    std::string last_quiet_;          // the last of them: "10.0.0.5:4711: why"
    // Identify sessions alive. Atomic only because a session torn down with the io_context dies off the strand.
    std::atomic<std::size_t> identifying_{0};
    std::map<std::string, conflict_report> conflicts_;  // by identity; only attached devices' identities get here

    mutable std::mutex mu_;  // guards everything below
    identify_fn identify_;
    conflict_fn on_conflict_;
    std::map<std::uint64_t, device_entry> devices_;
    std::uint64_t next_device_ = 0;
    std::uint64_t next_token_ = 0;
};

// One device's connection from the listener.
class accepted_link final : public stream_link<tcp::socket> {
public:
    accepted_link(executor ex, link_events events, std::shared_ptr<listener_core> listener, std::uint64_t id,
                  std::string name)
        : stream_link(ex, std::move(events), std::move(name)), listener_(std::move(listener)), id_(id) {}

    int kind() const override { return FL_TRANSPORT_TCP_ACCEPTED; }

    fl_status open() override {
        const fl_status s = link_core::open();
        // From now on a connection may be handed to us; it arrives after start() (both are posted to ex_, in order).
        if (s == FL_OK) listener_->set_open(id_, true);
        return s;
    }

    fl_status close() override {
        if (opened_) listener_->set_open(id_, false);
        return link_core::close();
    }

    // The listener gave us a connection (on our executor).
    void adopt(tcp::socket socket, std::vector<std::uint8_t> first, std::uint64_t token, const std::string &peer) {
        const std::uint64_t epoch = epoch_;
        if (!alive(epoch)) {
            listener_->connection_ended(id_, token);
            return;  // the socket closes as it goes out of scope
        }
        if (connected()) {
            // The device reconnected while its old connection still looked alive: the new one wins.
            lose(asio::error::connection_reset, "replaced by a new connection");
            if (!alive(epoch)) {
                listener_->connection_ended(id_, token);
                return;
            }
        }
        error_code ec;
        const auto protocol = socket.local_endpoint(ec).protocol();
        const auto fd = ec ? -1 : socket.release(ec);
        if (!ec) stream_.assign(protocol, fd, ec);
        if (ec) {
            spdlog::warn("[{}] cannot take over the connection from {}: {}", name_, peer, ec.message());
            if (fd >= 0 && !stream_.is_open()) ::close(fd);
            ++counters_.errors;
            listener_->connection_ended(id_, token);
            return;
        }
        token_ = token;
        if (had_connection_) ++counters_.reconnects;
        had_connection_ = true;
        spdlog::info("[{}] device connected from {}", name_, peer);
        begin_session(first);
    }

    // The handle is gone: the device also leaves the listener's registry.
    void detach() override {
        listener_->detach(id_);
        link_core::detach();
    }

private:
    void start() override {
        if (!connected()) set_state(FL_LINK_OPENING, FL_OK);
    }

    // Back to waiting: the device reconnects to us.
    void on_lost() override { listener_->connection_ended(id_, token_); }

    void stop() override {
        end_session();
        listener_->connection_ended(id_, token_);
        had_connection_ = false;
        spdlog::info("[{}] closed", name_);
    }

    std::shared_ptr<listener_core> listener_;
    const std::uint64_t id_;
    std::uint64_t token_ = 0;
    bool had_connection_ = false;
};

// A connection reading its first bytes until identify names its device.
class identify_session final : public std::enable_shared_from_this<identify_session> {
public:
    identify_session(tcp::socket socket, std::weak_ptr<listener_core> listener, std::string peer,
                     std::chrono::milliseconds deadline)
        : socket_(std::move(socket)), deadline_(socket_.get_executor()), listener_(std::move(listener)),
          peer_(std::move(peer)), timeout_(deadline) {}
    // Normally the last completion of a session, on the listener strand, destroys it.
    ~identify_session() {
        if (const auto listener = listener_.lock()) listener->identify_ended();
    }

    void start() {
        deadline_.expires_after(timeout_);
        deadline_.async_wait([self = shared_from_this()](const error_code &ec) {
            if (ec) return;
            self->timed_out_ = true;
            error_code ignored;
            self->socket_.close(ignored);  // the pending read completes with an error and rejects
        });
        do_read();
    }

private:
    void do_read() {
        const std::size_t room = std::min(chunk_.size(), identify_limit - first_.size());
        socket_.async_read_some(asio::buffer(chunk_.data(), room),
                                [self = shared_from_this()](const error_code &ec, std::size_t n) {
                                    self->on_read(ec, n);
                                });
    }

    void on_read(const error_code &ec, std::size_t n) {
        const auto listener = listener_.lock();
        if (!listener) return;  // the listener is gone; the socket closes with us
        if (ec) {
            deadline_.cancel();
            listener->reject(socket_, peer_, timed_out_ ? "no identity within the deadline" : "closed before identifying");
            return;
        }
        first_.insert(first_.end(), chunk_.begin(), chunk_.begin() + static_cast<std::ptrdiff_t>(n));
        std::string identity;
        const fl_status s = listener->identify(first_, identity);
        if (s == FL_BUSY) {
            if (first_.size() < identify_limit) {
                do_read();
                return;
            }
            deadline_.cancel();
            listener->reject(socket_, peer_, "no identity in the first " + std::to_string(identify_limit) + " bytes");
            return;
        }
        deadline_.cancel();
        if (s != FL_OK) {
            listener->reject(socket_, peer_, "identify refused the first bytes");
            return;
        }
        switch (listener->claim_identity(identity, socket_, first_, peer_)) {
        case listener_core::claim::taken: break;
        case listener_core::claim::nobody:
            listener->reject(socket_, peer_, "no open device with identity '" + identity + "'");
            break;
        case listener_core::claim::conflict:
            listener->reject(socket_, peer_, "identity '" + identity + "' is connected already");
            break;
        }
    }

    tcp::socket socket_;
    asio::steady_timer deadline_;
    std::weak_ptr<listener_core> listener_;
    std::string peer_;
    const std::chrono::milliseconds timeout_;
    std::vector<std::uint8_t> first_;
    std::array<std::uint8_t, 512> chunk_{};
    bool timed_out_ = false;
};

// ---- listener_core ---------------------------------------------------------------------------------------------

listener_core::listener_core(asio::io_context &io, const std::string &address, std::uint16_t port,
                             listener_limits limits)
    : strand_(asio::make_strand(io)), limits_(limits), acceptor_(strand_), accept_retry_(strand_),
      reject_window_(strand_) {
    error_code ec;
    const auto ip = asio::ip::make_address(address.empty() ? "0.0.0.0" : address, ec);
    if (ec)
        throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                                "tcp listener: '" + address + "' is not an IP address");
    const tcp::endpoint endpoint(ip, port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) port_ = acceptor_.local_endpoint(ec).port();
    if (ec)
        throw std::system_error(std::error_code(ec),
                                "tcp listener: cannot listen on " + ip.to_string() + ":" + std::to_string(port));
    name_ = "tcp-listen " + ip.to_string() + ":" + std::to_string(port_);
    spdlog::info("[{}] listening", name_);
}

listener_core::~listener_core() {
    error_code ignored;
    acceptor_.close(ignored);
}

std::unique_ptr<link> listener_core::attach_peer(executor ex, std::string peer_address, link_events events) {
    error_code ec;
    const auto peer = asio::ip::make_address(peer_address, ec);
    if (ec) throw std::invalid_argument("tcp listener: peer '" + peer_address + "' is not an IP address");
    return attach(std::move(ex), normalized(peer), {}, std::move(events));
}

std::unique_ptr<link> listener_core::attach_identity(executor ex, std::string identity, link_events events,
                                                     std::vector<std::string> allow_peers) {
    std::vector<peer_network> allow;
    for (const auto &text : allow_peers) {
        auto n = peer_network::parse(text);
        if (!n) throw std::invalid_argument("'" + text + "' is not an IP address or a network (10.0.0.0/24)");
        allow.push_back(*n);
    }
    return attach(std::move(ex), std::nullopt, std::move(identity), std::move(events), std::move(allow));
}

std::unique_ptr<link> listener_core::attach(executor ex, std::optional<asio::ip::address> peer, std::string identity,
                                            link_events events, std::vector<peer_network> allow) {
    const std::string name = ":" + std::to_string(port_) + (peer ? " peer " + peer->to_string() : " id " + identity);
    std::lock_guard lock(mu_);
    const std::uint64_t id = ++next_device_;
    auto impl = std::make_shared<accepted_link>(ex, std::move(events), shared_from_this(), id, "tcp-in " + name);
    devices_.emplace(id, device_entry{peer, std::move(identity), std::move(allow), impl, ex, false, 0, {}});
    return std::make_unique<link_handle<accepted_link>>(std::move(impl));
}

void listener_core::set_open(std::uint64_t device, bool open) {
    std::lock_guard lock(mu_);
    if (const auto d = devices_.find(device); d != devices_.end()) d->second.open = open;
}

void listener_core::connection_ended(std::uint64_t device, std::uint64_t token) {
    std::lock_guard lock(mu_);
    // A stale token means a newer connection already replaced this one.
    if (const auto d = devices_.find(device); d != devices_.end() && d->second.token == token) d->second.token = 0;
}

void listener_core::detach(std::uint64_t device) {
    std::lock_guard lock(mu_);
    devices_.erase(device);
}

void listener_core::do_accept() {
    acceptor_.async_accept(strand_, [weak = weak_from_this()](const error_code &ec, tcp::socket socket) {
        if (const auto self = weak.lock()) self->on_accept(ec, std::move(socket));
    });
}

void listener_core::stop_accepting() {
    if (stopped_.exchange(true)) return;
    asio::post(strand_, [self = shared_from_this()] {
        error_code ignored;
        self->acceptor_.close(ignored);
        self->accept_retry_.cancel();
        spdlog::info("[{}] no longer accepting", self->name_);
    });
}

void listener_core::on_accept(const error_code &ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || stopped_) return;  // a socket accepted meanwhile closes with it
    if (ec) {
        // E.g. out of file descriptors: pause instead of spinning.
        spdlog::warn("[{}] accept failed ({}); retrying", name_, ec.message());
        accept_retry_.expires_after(std::chrono::milliseconds(200));
        accept_retry_.async_wait([weak = weak_from_this()](const error_code &ec) {
            if (const auto self = weak.lock(); self && !ec) self->do_accept();
        });
        return;
    }
    do_accept();

    error_code remote_ec;
    const auto remote = socket.remote_endpoint(remote_ec);
    if (remote_ec) return;  // gone already
    const auto address = normalized(remote.address());
    const std::string peer = address.to_string() + ":" + std::to_string(remote.port());
    set_device_socket_options(socket);

    std::unique_lock lock(mu_);
    // A device bound to this address takes the connection: one without a live connection first; otherwise the
    // longest-connected one, whose device evidently reconnected.
    device_entry *best = nullptr;
    for (auto &[id, d] : devices_) {
        if (!d.peer || *d.peer != address || !d.open) continue;
        if (!best || (best->token != 0 && (d.token == 0 || d.token < best->token))) best = &d;
    }
    if (best) {
        hand_over(*best, std::move(socket), {}, peer);
        return;
    }
    const bool identifying = static_cast<bool>(identify_);
    lock.unlock();
    if (!identifying) {
        reject(socket, peer, "no device attached for this address");
    } else if (identifying_ >= limits_.max_unbound) {
        reject(socket, peer, std::to_string(limits_.max_unbound) + " connections are identifying already");
    } else {
        ++identifying_;
        std::make_shared<identify_session>(std::move(socket), weak_from_this(), peer, limits_.identify_timeout)
            ->start();
    }
}

fl_status listener_core::identify(const std::vector<std::uint8_t> &bytes, std::string &identity) {
    identify_fn identify;
    {
        std::lock_guard lock(mu_);
        identify = identify_;
    }
    if (!identify) return FL_UNSUPPORTED;
    try {
        return identify(bytes.data(), bytes.size(), identity);
    } catch (const std::exception &e) {
        spdlog::error("[{}] identify threw: {}", name_, e.what());
        return FL_ERROR;
    }
}

listener_core::claim listener_core::claim_identity(const std::string &identity, tcp::socket &socket,
                                                   std::vector<std::uint8_t> &first, const std::string &peer) {
    std::unique_lock lock(mu_);
    for (auto &[id, d] : devices_) {
        if (d.peer || !d.open || d.identity != identity) continue;
        if (!d.allow.empty()) {
            error_code ec;
            const auto from = socket.remote_endpoint(ec).address();
            if (ec || std::none_of(d.allow.begin(), d.allow.end(), [&](const auto &n) { return n.contains(from); })) {
                lock.unlock();
                report_conflict(identity, peer,
                                "a connection from " + peer + " claimed identity '" + identity +
                                    "', which may connect only from its allow_peers: refused");
                return claim::conflict;
            }
        }
        if (d.token != 0) {
            // Its connection is open: keepalive ends one whose device vanished within about a minute, and the
            // device's next connection is taken then. Until then the live connection keeps the identity.
            const std::string live_peer = d.token_peer;
            lock.unlock();
            report_conflict(identity, peer,
                            "a connection from " + peer + " claimed identity '" + identity +
                                "', which is connected from " + live_peer + ": refused, the connected one kept");
            return claim::conflict;
        }
        hand_over(d, std::move(socket), std::move(first), peer);
        return claim::taken;
    }
    return claim::nobody;
}

void listener_core::report_conflict(const std::string &identity, const std::string &peer, std::string what) {
    constexpr std::chrono::seconds window{60};
    auto &r = conflicts_[identity];
    const auto now = std::chrono::steady_clock::now();
    if (r.last != std::chrono::steady_clock::time_point{} && now - r.last < window) {
        ++r.quiet;
        return;
    }
    if (r.quiet) what += " (" + std::to_string(r.quiet) + " more refused since the last report)";
    r.last = now;
    r.quiet = 0;
    spdlog::warn("[{}] {}", name_, what);
    conflict_fn on_conflict;
    {
        std::lock_guard lock(mu_);
        on_conflict = on_conflict_;
    }
    if (!on_conflict) return;
    try {
        on_conflict(identity, peer, what);
    } catch (const std::exception &e) {
        spdlog::error("[{}] the identity conflict handler threw: {}", name_, e.what());
    }
}

void listener_core::hand_over(device_entry &d, tcp::socket socket, std::vector<std::uint8_t> first,
                              const std::string &peer) {
    d.token = ++next_token_;
    d.token_peer = peer;
    asio::post(d.ex, [link = d.link, socket = std::move(socket), first = std::move(first), token = d.token,
                      peer]() mutable {
        if (const auto l = link.lock()) l->adopt(std::move(socket), std::move(first), token, peer);
    });
}

void listener_core::reject(tcp::socket &socket, const std::string &peer, const std::string &why) {
    ++unmatched_;
    constexpr std::chrono::seconds window{10};
    constexpr unsigned logged_per_window = 5;
    if (stopped_) {
        spdlog::debug("[{}] closed a connection from {} while stopping: {}", name_, peer, why);
    } else if (rejects_logged_ < logged_per_window) {
        if (rejects_logged_++ == 0) {
            reject_window_.expires_after(window);
            reject_window_.async_wait([weak = weak_from_this(), window](const error_code &ec) {
                const auto self = weak.lock();
                if (ec || !self) return;
                if (self->rejects_quiet_)
                    spdlog::warn("[{}] closed {} more connection(s) in the last {} s that no device claimed (the "
                                 "last from {})",
                                 self->name_, self->rejects_quiet_, window.count(), self->last_quiet_);
                self->rejects_logged_ = 0;
                self->rejects_quiet_ = 0;
            });
        }
        spdlog::warn("[{}] closed a connection from {}: {}{}", name_, peer, why,
                     rejects_logged_ == logged_per_window
                         ? " (more within " + std::to_string(window.count()) + " s are counted, not logged)"
                         : "");
    } else {
        ++rejects_quiet_;
        last_quiet_ = peer + ": " + why;
    }
    error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
}

}  // namespace
}  // namespace detail

std::shared_ptr<tcp_listener> make_tcp_listener(boost::asio::io_context &io, std::string address, std::uint16_t port,
                                                listener_limits limits) {
    auto listener = std::make_shared<detail::listener_core>(io, address, port, limits);
    listener->start();
    return listener;
}

}  // namespace firelink::transport
