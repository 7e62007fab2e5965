#include "component_options.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace firelink::cli {

namespace {

constexpr std::uint64_t mib(std::int64_t n) { return static_cast<std::uint64_t>(n) << 20; }

// A secret's file holds the secret alone; the newline an editor adds is not part of it.
std::string read_token(const std::string &file) {
    FILE *f = std::fopen(file.c_str(), "r");
    if (!f) throw std::runtime_error("token_file " + file + ": " + std::strerror(errno));
    char buf[4096];
    const auto n = std::fread(buf, 1, sizeof buf, f);
    std::fclose(f);
    std::string token(buf, n);
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
    if (token.empty()) throw std::runtime_error("token_file " + file + " is empty");
    return token;
}

}  // namespace

core::runtime_options runtime_options_of(const site::site_config &cfg) {
    core::runtime_options o;
    o.gateway_id = cfg.gateway_id;
    o.watchdog_warn = cfg.watchdog_warn;
    o.watchdog_fault = cfg.watchdog_fault;
    return o;
}

uplink::queue_options queue_options_of(const site::site_config &cfg) {
    const auto &u = cfg.uplink;
    uplink::queue_options q;
    q.path = u.queue_path;
    q.gateway_id = cfg.gateway_id;
    q.cap_bytes = {mib(u.alarm_cap_mb), mib(u.event_cap_mb), mib(u.telemetry_cap_mb)};
    q.reserve_bytes = mib(u.reserve_mb);
    q.max_pending = static_cast<std::size_t>(u.max_pending);
    return q;
}

uplink::uplink_options uplink_options_of(const site::site_config &cfg) {
    const auto &u = cfg.uplink;
    uplink::uplink_options o;
    o.gateway_id = cfg.gateway_id;
    o.http.base_url = u.url;
    o.http.ca_file = u.ca_file;
    o.http.client_cert = u.client_cert;
    o.http.client_key = u.client_key;
    o.http.gateway_id = cfg.gateway_id;
    o.http.timeout = u.timeout;
    if (!u.token_file.empty()) o.http.token = read_token(u.token_file);
    o.batch_max_events = static_cast<std::size_t>(u.batch_max_events);
    o.batch_max_bytes = static_cast<std::size_t>(u.batch_max_bytes);
    o.poll_commands = u.poll_commands;
    o.backoff_max = u.backoff_max;
    o.alarm_backoff_max = std::min<std::chrono::milliseconds>(o.alarm_backoff_max, u.backoff_max);
    return o;
}

control::control_options control_options_of(const site::site_config &cfg) {
    control::control_options o;
    o.select_timeout = cfg.control.select_timeout;
    o.platform_may = {cfg.control.platform_may.begin(), cfg.control.platform_may.end()};
    return o;
}

core::runtime_observer observer_for(admin::host_metrics &m) {
    core::runtime_observer o;
    o.accepted = [&m](const std::string &, const std::string &cls, const std::string &kind) {
        m.event_accepted(cls, kind);
    };
    o.refused = [&m](const std::string &device) { m.event_refused(device); };
    o.overrun = [&m](const std::string &device) { m.callback_overrun(device); };
    o.state = [&m](const std::string &device, core::device_state state) { m.device_state(device, core::to_string(state)); };
    o.transport_errors = [&m](const std::string &device, std::uint64_t n) { m.transport_error(device, n); };
    return o;
}

std::filesystem::path audit_path_of(const site::site_config &cfg) {
    if (!cfg.control.audit_path.empty()) return cfg.control.audit_path;
    return cfg.uplink.configured ? std::filesystem::path(cfg.uplink.queue_path)
                                 : cfg.file.parent_path() / "firelink-audit.db";
}

admin::admin_options admin_options_of(const site::site_config &cfg, const std::optional<std::string> &listen) {
    const auto addr = admin::parse_listen_address(listen.value_or(cfg.admin_listen));
    admin::admin_options o;
    o.host = addr.host;
    o.port = addr.port;
    o.request_timeout = cfg.admin_request_timeout;
    o.max_connections = cfg.admin_max_connections;
    o.token_file = cfg.admin_token_file;
    o.anonymous_read = cfg.admin_anonymous_read == "none" ? admin::anonymous_reads::none : admin::anonymous_reads::loopback;
    o.tls = {cfg.admin_tls_cert, cfg.admin_tls_key, cfg.admin_client_ca};
    return o;
}

}  // namespace firelink::cli
