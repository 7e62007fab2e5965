// [gateway], [plugins], [admin], [sink], [watchdog], [liveness], [uplink], [runner].
#include "address.hpp"
#include "names.hpp"
#include "sections.hpp"

#include <algorithm>
#include <initializer_list>

namespace firelink::site::detail {

namespace {

using namespace std::chrono;

// A top-level table; nullptr when absent or not a table (reported).
const toml::table *section(const toml::table &root, std::string_view key, diagnostics &diag) {
    const toml::node *n = root.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
        diag.error(n->source(), std::string(key),
                   "expected a table ([" + std::string(key) + "]), got " + type_phrase(*n));
        return nullptr;
    }
    return n->as_table();
}

void read_gateway(const toml::table &root, load_context &cx, site_config &out) {
    const toml::table *t = section(root, "gateway", cx.diag);
    if (!t) {
        if (!root.contains("gateway")) cx.diag.error(root.source(), "gateway.id", "missing (expected a string)");
        return;
    }
    table_reader r(*t, "gateway", cx.diag, {"id", "name"});
    if (auto id = r.matching("id", is_site_id, site_id_rule, need::required)) out.gateway_id = *id;
    if (auto name = r.string("name", need::optional)) out.gateway_name = *name;
}

const std::initializer_list<std::string_view> isolation_modes = {"process", "in_process"};

// "\"process\", \"in_process\"", as table_reader::choice() words it.
std::string isolation_modes_text() {
    std::string out;
    for (const auto m : isolation_modes) out += (out.empty() ? "" : ", ") + in_quotes(m);
    return out;
}

// A key as a dotted path names it: bare when TOML allows it bare, else in quotes ("com.acme.breakers").
std::string key_segment(std::string_view key) {
    const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
    return bare ? std::string(key) : in_quotes(key);
}

// [plugins.isolation_of]: "<plugin id>" = "process" | "in_process". The keys are plugin ids, so there is no fixed
// set of them; each key and each value is checked on its own.
void read_isolation_of(const toml::table &t, load_context &cx, site_config &out) {
    const std::string expected = "one of " + isolation_modes_text();
    for (const auto &[k, v] : t) {
        const std::string key = key_path("plugins.isolation_of", key_segment(k.str()));
        if (v.is_table()) {
            // `com.acme.breakers = "process"`, unquoted, is a table `com` holding a table `acme`.
            cx.diag.error(k.source(), key,
                          "expected " + expected + ", got a table (a plugin id has dots: write it in quotes, "
                          "\"com.acme.breakers\" = \"process\")");
            continue;
        }
        const bool id_ok = is_reverse_dns(k.str());
        if (!id_ok)
            cx.diag.error(k.source(), key, "expected " + std::string(plugin_id_rule) + ", got " + in_quotes(k.str()));
        if (!v.is_string()) {
            cx.diag.error(v.source(), key, "expected " + expected + ", got " + type_phrase(v));
            continue;
        }
        const std::string &mode = v.as_string()->get();
        if (std::find(isolation_modes.begin(), isolation_modes.end(), mode) == isolation_modes.end())
            cx.diag.error(v.source(), key, "expected " + expected + ", got " + in_quotes(mode));
        else if (id_ok)
            out.isolation.by_plugin[std::string(k.str())] = mode;
    }
}

// [plugins] trusted_keys: minisign public key files, each read now so that a bad one is named at its line.
void read_trusted_keys(table_reader &r, load_context &cx, site_config &out) {
    constexpr std::string_view expected = "an array of minisign public key file paths";
    const toml::node *keys = r.find("trusted_keys");
    if (!keys) {
        if (out.signing.policy == "require")
            r.missing("trusted_keys", "with signatures = \"require\", " + std::string(expected));
        return;
    }
    if (!keys->is_array()) return r.wrong_type("trusted_keys", expected);
    const toml::array &a = *keys->as_array();
    if (a.empty() && out.signing.policy == "require")
        return r.error("trusted_keys", "signatures = \"require\" refuses every plugin without a trusted key");
    for (std::size_t i = 0; i < a.size(); ++i) {
        const toml::node &e = a[i];
        const std::string key = "plugins.trusted_keys[" + std::to_string(i) + "]";
        if (!e.is_string() || e.as_string()->get().empty()) {
            cx.diag.error(e.source(), key, "expected a public key file path (a non-empty string), got " +
                                               (e.is_string() ? std::string("\"\"") : type_phrase(e)));
            continue;
        }
        const auto file = cx.resolve(e.as_string()->get());
        auto parsed = signing::read_public_key(file);
        if (!parsed) {
            cx.diag.error(e.source(), key, file.string() + ": " + parsed.why());
            continue;
        }
        const auto &k = *parsed;
        for (const auto &t : out.signing.trusted)
            if (t.key.id == k.id && t.key.key != k.key)
                cx.diag.error(e.source(), key, file.string() + ": key ID " + signing::to_hex(k.id) +
                                                   " is also the id of another key, " + t.file.string());
        out.signing.trusted.push_back({file, cx.diag.where(e.source()), k});
    }
}

// [plugins] certificates, certifier_keys, certificate_level: which conformance certificates make a plugin loadable.
void read_certifiers(table_reader &r, load_context &cx, site_config &out) {
    if (auto v = r.choice("certificates", {"require", "off"}, need::optional)) out.signing.certificates = *v;
    if (auto v = r.choice("certificate_level", {"basic", "standard", "strict", "soak"}, need::optional))
        out.signing.certificate_level = *v;
    const toml::node *keys = r.find("certifier_keys");
    const bool required = out.signing.certificates == "require";
    constexpr std::string_view expected = "an array of certifiers' Ed25519 public key files (PEM or minisign .pub)";
    if (!keys) {
        if (required) r.missing("certifier_keys", "with certificates = \"require\", " + std::string(expected));
        return;
    }
    if (!keys->is_array() || keys->as_array()->empty()) return r.wrong_type("certifier_keys", expected);
    const toml::array &a = *keys->as_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
        const toml::node &e = a[i];
        const std::string key = "plugins.certifier_keys[" + std::to_string(i) + "]";
        if (!e.is_string() || e.as_string()->get().empty()) {
            cx.diag.error(e.source(), key, "expected a public key file path (a non-empty string), got " +
                                               (e.is_string() ? std::string("\"\"") : type_phrase(e)));
            continue;
        }
        auto k = signing::read_ed25519_public(cx.resolve(e.as_string()->get()));
        if (!k) cx.diag.error(e.source(), key, k.why());
        else out.signing.certifiers.push_back(*k);
    }
}

void read_plugins(const toml::table &root, load_context &cx, site_config &out) {
    constexpr std::string_view expected = "an array of directory paths";
    const toml::table *t = section(root, "plugins", cx.diag);
    if (!t) return;  // no dirs: the installed plugin folder (firelink::layout; the host resolves it)
    table_reader r(*t, "plugins", cx.diag,
                   {"dirs", "isolation", "isolation_of", "signatures", "trusted_keys", "certificates", "certifier_keys",
                    "certificate_level"});
    if (const auto mode = r.choice("isolation", isolation_modes, need::optional)) out.isolation.default_mode = *mode;
    if (const auto policy = r.choice("signatures", {"require", "warn", "off"}, need::optional))
        out.signing.policy = *policy;
    read_trusted_keys(r, cx, out);
    read_certifiers(r, cx, out);
    if (const toml::table *of = r.subtable("isolation_of", need::optional)) read_isolation_of(*of, cx, out);
    const toml::node *dirs = r.find("dirs");
    if (!dirs) return;
    if (!dirs->is_array()) return r.wrong_type("dirs", expected);
    const toml::array &a = *dirs->as_array();
    if (a.empty()) return r.error("dirs", "expected at least one directory, got an empty array");
    for (std::size_t i = 0; i < a.size(); ++i) {
        const toml::node &e = a[i];
        const std::string key = "plugins.dirs[" + std::to_string(i) + "]";
        if (!e.is_string())
            cx.diag.error(e.source(), key, "expected a directory path (a non-empty string), got " + type_phrase(e));
        else if (e.as_string()->get().empty())
            cx.diag.error(e.source(), key, "expected a directory path (a non-empty string), got \"\"");
        else
            out.plugin_dirs.push_back(cx.resolve(e.as_string()->get()));
    }
}

void read_admin(const toml::table &root, load_context &cx, site_config &out) {
    const toml::table *t = section(root, "admin", cx.diag);
    if (!t) return;
    table_reader r(*t, "admin", cx.diag,
                   {"listen", "max_connections", "request_timeout_ms", "token_file", "anonymous_read", "tls_cert",
                    "tls_key", "client_ca"});
    if (auto listen = r.string("listen", need::optional)) {
        std::string expected;
        if (parse_host_port(*listen, 0, expected))
            out.admin_listen = *listen;
        else
            r.error("listen", "expected " + expected + ", got " + in_quotes(*listen));
    }
    if (auto v = r.integer("max_connections", 1, 4096, need::optional))
        out.admin_max_connections = static_cast<std::size_t>(*v);
    if (auto v = r.integer("request_timeout_ms", 100, 600000, need::optional))
        out.admin_request_timeout = std::chrono::milliseconds(*v);
    // The files are read when the admin endpoint starts (admin_server), which names a bad one with its line.
    if (const auto p = r.nonempty_string("token_file", need::optional)) out.admin_token_file = cx.resolve(*p);
    if (const auto a = r.choice("anonymous_read", {"loopback", "none"}, need::optional)) out.admin_anonymous_read = *a;
    if (const auto p = r.nonempty_string("tls_cert", need::optional)) out.admin_tls_cert = cx.resolve(*p);
    if (const auto p = r.nonempty_string("tls_key", need::optional)) out.admin_tls_key = cx.resolve(*p);
    if (const auto p = r.nonempty_string("client_ca", need::optional)) out.admin_client_ca = cx.resolve(*p);
    if (out.admin_tls_cert.empty() != out.admin_tls_key.empty())
        r.error(out.admin_tls_cert.empty() ? "tls_key" : "tls_cert",
                "tls_cert and tls_key go together (a PEM certificate chain and its private key)");
    if (!out.admin_client_ca.empty() && out.admin_tls_cert.empty())
        r.error("client_ca", "client certificates need TLS: set tls_cert and tls_key too");
}

// [control]: select-before-operate, what the platform may move, and where the audit chain is kept.
void read_control(const toml::table &root, load_context &cx, site_config &out) {
    const toml::table *t = section(root, "control", cx.diag);
    if (!t) return;
    table_reader r(*t, "control", cx.diag, {"select_timeout_ms", "platform_may", "audit_path", "audit_keep"});
    if (auto v = r.integer("select_timeout_ms", 1000, 300000, need::optional))
        out.control.select_timeout = milliseconds(*v);
    if (auto v = r.integer("audit_keep", 10000, 100000000, need::optional)) out.control.audit_keep = *v;
    if (auto path = r.nonempty_string("audit_path", need::optional)) out.control.audit_path = cx.resolve(*path);
    if (const toml::node *may = r.find("platform_may")) {
        const std::string expected = "an array of command names, e.g. [\"close_valve\", \"trip\"]";
        if (!may->is_array()) return r.wrong_type("platform_may", expected);
        const toml::array &a = *may->as_array();
        for (std::size_t i = 0; i < a.size(); ++i) {
            const toml::node &e = a[i];
            const std::string key = "control.platform_may[" + std::to_string(i) + "]";
            if (!e.is_string() || e.as_string()->get().empty())
                cx.diag.error(e.source(), key, "expected a command name (a non-empty string), got " + type_phrase(e));
            else
                out.control.platform_may.push_back(e.as_string()->get());
        }
    }
}

void read_sink(const toml::table &root, load_context &cx, site_config &out) {
    const toml::table *t = section(root, "sink", cx.diag);
    if (!t) return;
    table_reader r(*t, "sink", cx.diag, {"kind", "path"});
    const auto kind = r.choice("kind", {"stdout", "jsonl", "none"}, need::optional);
    if (kind) out.sink_kind = *kind;
    const auto path = r.nonempty_string("path", need::optional);
    if (r.has("kind") && !kind) return;  // a bad kind: whether a path belongs is unknown
    if (out.sink_kind == "jsonl") {
        if (path)
            out.sink_path = cx.resolve(*path);
        else if (!r.has("path"))
            r.missing("path", "a file path for kind = \"jsonl\"");
    } else if (r.has("path")) {
        r.error("path", "not used with kind = \"" + out.sink_kind + "\" (only with kind = \"jsonl\")");
    }
}

void read_watchdog(const toml::table &root, load_context &cx, site_config &out) {
    const toml::table *t = section(root, "watchdog", cx.diag);
    if (!t) return;
    table_reader r(*t, "watchdog", cx.diag, {"warn_ms", "fault_ms"});
    const auto warn = r.integer("warn_ms", 1, 60000, need::optional);
    if (warn) out.watchdog_warn = milliseconds(*warn);
    const bool warn_ok = warn || !r.has("warn_ms");
    if (const auto fault = r.integer("fault_ms", 1, 600000, need::optional)) {
        if (warn_ok && milliseconds(*fault) <= out.watchdog_warn)
            r.error("fault_ms", "expected more than watchdog.warn_ms (" + std::to_string(out.watchdog_warn.count()) +
                                    "), got " + std::to_string(*fault));
        else
            out.watchdog_fault = milliseconds(*fault);
    } else if (!r.has("fault_ms") && warn_ok && out.watchdog_fault <= out.watchdog_warn) {
        r.error("warn_ms", "expected less than watchdog.fault_ms (" + std::to_string(out.watchdog_fault.count()) +
                               ", the default), got " + std::to_string(out.watchdog_warn.count()));
    }
}

void read_liveness(const toml::table &root, load_context &cx, site_config &out) {
    out.liveness = {{"arc_fault_breaker", seconds(60)},
                    {"gas_shutoff_valve", seconds(60)},
                    {"pyrolysis_detector", seconds(60)},
                    {"fire_panel", seconds(180)},
                    {"vendor", seconds(120)}};
    const toml::table *t = section(root, "liveness", cx.diag);
    if (!t) return;
    table_reader r(*t, "liveness", cx.diag,
                   {"arc_fault_breaker", "gas_shutoff_valve", "pyrolysis_detector", "fire_panel", "vendor"});
    for (auto &[name, budget] : out.liveness)
        if (const auto s = r.integer(name, 1, 86400, need::optional)) budget = seconds(*s);
}

void read_uplink(const toml::table &root, load_context &cx, site_config &out) {
    const toml::table *t = section(root, "uplink", cx.diag);
    if (!t) return;
    out.uplink.configured = true;
    table_reader r(*t, "uplink", cx.diag,
                   {"url", "token_file", "ca_file", "client_cert", "client_key", "queue_path", "timeout_s",
                    "batch_max_events", "batch_max_bytes", "alarm_cap_mb", "event_cap_mb", "telemetry_cap_mb",
                    "reserve_mb", "poll_commands", "backoff_max_s", "max_pending"});
    if (const auto url = r.nonempty_string("url", need::required)) {
        const bool http = url->rfind("http://", 0) == 0 && url->size() > 7;
        const bool https = url->rfind("https://", 0) == 0 && url->size() > 8;
        if (http || https)
            out.uplink.url = *url;
        else
            r.error("url", "expected an http:// or https:// URL, got " + in_quotes(*url));
    }
    const auto path = [&](std::string_view key, std::string &into, need n) {
        if (const auto p = r.nonempty_string(key, n)) into = cx.resolve(*p).string();
    };
    path("token_file", out.uplink.token_file, need::optional);
    path("ca_file", out.uplink.ca_file, need::optional);
    path("client_cert", out.uplink.client_cert, need::optional);
    path("client_key", out.uplink.client_key, need::optional);
    path("queue_path", out.uplink.queue_path, need::required);
    if (r.has("client_cert") != r.has("client_key")) {
        const bool cert = r.has("client_cert");
        r.error(cert ? "client_cert" : "client_key", std::string("given without uplink.") +
                                                         (cert ? "client_key" : "client_cert") +
                                                         " (expected both or neither)");
    }
    auto &u = out.uplink;
    if (const auto v = r.integer("timeout_s", 1, 300, need::optional)) u.timeout = std::chrono::seconds(*v);
    if (const auto v = r.integer("batch_max_events", 1, 10000, need::optional)) u.batch_max_events = *v;
    if (const auto v = r.integer("batch_max_bytes", 4096, 16 << 20, need::optional)) u.batch_max_bytes = *v;
    if (const auto v = r.integer("alarm_cap_mb", 1, 1 << 20, need::optional)) u.alarm_cap_mb = *v;
    if (const auto v = r.integer("event_cap_mb", 1, 1 << 20, need::optional)) u.event_cap_mb = *v;
    if (const auto v = r.integer("telemetry_cap_mb", 1, 1 << 20, need::optional)) u.telemetry_cap_mb = *v;
    if (const auto v = r.integer("reserve_mb", 0, 1 << 16, need::optional)) u.reserve_mb = *v;
    if (const auto v = r.boolean("poll_commands", need::optional)) u.poll_commands = *v;
    if (const auto v = r.integer("backoff_max_s", 1, 3600, need::optional)) u.backoff_max = std::chrono::seconds(*v);
    if (const auto v = r.integer("max_pending", 4096, 1 << 20, need::optional)) u.max_pending = *v;
}

// A user name as the runners' user: [a-z_][a-z0-9_-]*.
bool is_user_name(std::string_view name) {
    if (name.empty() || !((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_')) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

// [runner] uid_range: "off", or "FIRST-LAST" with 1 <= FIRST <= LAST <= 2^31 - 1. Nullopt when malformed; {0, 0}: off.
std::optional<std::pair<std::uint32_t, std::uint32_t>> parse_uid_range(std::string_view text) {
    if (text == "off") return std::pair<std::uint32_t, std::uint32_t>{0, 0};
    const auto dash = text.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    auto number = [](std::string_view digits) -> std::optional<std::uint64_t> {
        if (digits.empty() || digits.size() > 10) return std::nullopt;
        std::uint64_t v = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return std::nullopt;
            v = v * 10 + static_cast<std::uint64_t>(c - '0');
        }
        return v;
    };
    const auto first = number(text.substr(0, dash)), last = number(text.substr(dash + 1));
    if (!first || !last || *first < 1 || *last > 0x7fffffffu || *first > *last) return std::nullopt;
    return std::pair{static_cast<std::uint32_t>(*first), static_cast<std::uint32_t>(*last)};
}

void read_runner(const toml::table &root, load_context &cx, site_config &out) {
    const toml::table *t = section(root, "runner", cx.diag);
    if (!t) return;
    table_reader r(*t, "runner", cx.diag,
                   {"path", "user", "uid_range", "memory_mb", "open_files", "hang_ms", "restart_limit",
                    "restart_window_s", "backoff_initial_ms", "backoff_max_ms", "ring_kb", "data_credit_kb"});
    auto &iso = out.isolation;
    if (const auto p = r.nonempty_string("path", need::optional)) iso.runner = cx.resolve(*p);
    if (const auto user = r.string("user", need::optional)) {
        if (is_user_name(*user))
            iso.user = *user;
        else
            r.error("user", "expected a user name ([a-z_][a-z0-9_-]*, e.g. \"nobody\"), got " + in_quotes(*user));
    }
    // Whether it overlaps the host's own ids is for the host to say when it starts a runner: this file may be
    // checked by another user than the service's.
    if (const auto range = r.string("uid_range", need::optional)) {
        if (const auto ids = parse_uid_range(*range)) {
            iso.uid_first = ids->first;
            iso.uid_last = ids->second;
        } else {
            r.error("uid_range", "expected \"FIRST-LAST\", uids from 1 to 2147483647 with FIRST <= LAST (e.g. "
                                 "\"61000-61183\"), or \"off\" (every runner one shared uid), got " +
                                     in_quotes(*range));
        }
    }
    // 0 (no limit) or 16..1048576, a range with a hole that integer() cannot word.
    if (const toml::node *v = r.find("memory_mb")) {
        constexpr std::string_view expected = "0 (no limit) or an integer from 16 to 1048576";
        if (!v->is_integer())
            r.wrong_type("memory_mb", expected);
        else if (const std::int64_t mb = v->as_integer()->get(); mb != 0 && (mb < 16 || mb > 1048576))
            r.error("memory_mb", "expected " + std::string(expected) + ", got " + std::to_string(mb));
        else
            iso.memory_mb = mb;
    }
    if (const auto v = r.integer("open_files", 16, 1048576, need::optional)) iso.open_files = *v;
    if (const auto v = r.integer("hang_ms", 100, 600000, need::optional)) iso.hang_timeout = milliseconds(*v);
    if (const auto v = r.integer("restart_limit", 1, 1000, need::optional)) iso.restart_limit = static_cast<int>(*v);
    if (const auto v = r.integer("restart_window_s", 1, 86400, need::optional)) iso.restart_window = seconds(*v);
    if (const auto v = r.integer("ring_kb", 256, 65536, need::optional)) iso.ring_kb = *v;
    if (const auto v = r.integer("data_credit_kb", 16, 65536, need::optional)) iso.data_credit_kb = *v;
    const auto initial = r.integer("backoff_initial_ms", 10, 60000, need::optional);
    if (initial) iso.backoff_initial = milliseconds(*initial);
    const bool initial_ok = initial || !r.has("backoff_initial_ms");
    if (const auto max = r.integer("backoff_max_ms", 10, 3600000, need::optional)) {
        if (initial_ok && milliseconds(*max) < iso.backoff_initial)
            r.error("backoff_max_ms", "expected at least runner.backoff_initial_ms (" +
                                          std::to_string(iso.backoff_initial.count()) + "), got " +
                                          std::to_string(*max));
        else
            iso.backoff_max = milliseconds(*max);
    } else if (!r.has("backoff_max_ms") && initial_ok && iso.backoff_max < iso.backoff_initial) {
        r.error("backoff_initial_ms", "expected at most runner.backoff_max_ms (" +
                                          std::to_string(iso.backoff_max.count()) + ", the default), got " +
                                          std::to_string(iso.backoff_initial.count()));
    }
}

}  // namespace

void read_settings(const toml::table &root, load_context &cx, site_config &out) {
    read_gateway(root, cx, out);
    read_plugins(root, cx, out);
    read_admin(root, cx, out);
    read_control(root, cx, out);
    read_sink(root, cx, out);
    read_watchdog(root, cx, out);
    read_liveness(root, cx, out);
    read_uplink(root, cx, out);
    read_runner(root, cx, out);
    // With the uplink the local record is opt-in: without a [sink] table, events go only to the uplink.
    if (out.uplink.configured && !root.contains("sink")) out.sink_kind = "none";
}

}  // namespace firelink::site::detail
