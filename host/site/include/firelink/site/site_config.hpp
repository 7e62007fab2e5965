// The site configuration an integrator writes: one TOML file (toml++) describing the gateway, its plugins and how they
// run, buses, listeners, devices with their site metadata, and the uplink. docs/deployment.md is its reference.
//
// Loading never stops at the first problem: it returns every error, each naming the file, line, column and key
// ("site.toml:12:5: device[2].wire.unit: expected an integer from 0 to 247, got a string"). Unknown keys are errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <firelink/result.hpp>
#include <firelink/site/linkage_config.hpp>
#include <firelink/site/source_position.hpp>
#include <firelink/signing/dsse.hpp>
#include <firelink/signing/minisign.hpp>

namespace firelink::site {

struct serial_config {
    std::string path;
    unsigned baud = 9600;
    unsigned data_bits = 8;   // 5..8
    char parity = 'N';        // "none" -> 'N', "even" -> 'E', "odd" -> 'O'
    unsigned stop_bits = 1;   // 1 or 2

    bool operator==(const serial_config &) const = default;
};

// What a bus is to its devices: a bus whose settings change is closed and opened anew with them.
struct bus_settings {
    bool shared = true;  // kind = "rs485" (shared, arbitrated) or "serial" (one device, point to point)
    serial_config serial;
    std::chrono::milliseconds request_timeout{500};
    std::chrono::milliseconds inter_frame_gap{5};

    bool operator==(const bus_settings &) const = default;
};

struct bus_config : bus_settings {
    std::string id;
    source_position where;
};

// Where a listener listens: a listener whose endpoint changes is closed and opened anew (its other settings apply to
// the connections it accepts from then on).
struct listener_endpoint {
    std::string address;  // "0.0.0.0", "::" (an IPv6 address without its brackets)
    std::uint16_t port = 0;

    bool operator==(const listener_endpoint &) const = default;
};

struct listener_config : listener_endpoint {
    std::string id;
    // Connections not yet bound to a device: at most this many at once (more are closed at accept), each closed if
    // it has not identified within the timeout. A flood of strangers costs these descriptors, never a device's.
    std::size_t max_unbound = 64;                          // max_unbound (1..4096)
    std::chrono::milliseconds identify_timeout{10'000};    // identify_timeout_ms (100..600000)
    source_position where;
};

struct wire_config {
    enum class kind { none, bus, tcp_client, listener, udp } type = kind::none;
    std::string bus;        // kind::bus: a bus id
    std::string host;       // kind::tcp_client, kind::udp
    std::uint16_t port = 0; // kind::tcp_client, kind::udp
    std::string listener;   // kind::listener: a listener id
    std::string peer;       // kind::listener: bind by the peer's IP address (canonical form: "::1"), or
    std::string identity;   //                 bind by the identity the driver reads from the first frame
    std::vector<std::string> allow_peers;  // with identity: the addresses or networks it may connect from
    int unit = -1;          // Modbus unit id (bus: 0..247, required on rs485; tcp: 0..255), -1 when not given

    bool operator==(const wire_config &) const = default;
};

// Where a device is, for the people who respond to it.
struct site_metadata {
    std::string site;
    std::string building;
    std::string floor;
    std::string location;
    std::string sector;  // one of sectors()

    bool operator==(const site_metadata &) const = default;
};

// The sectors the district's plan names.
const std::vector<std::string> &sectors();

struct device_config {
    std::string id;            // unique in the site, [A-Za-z0-9_.:-]{1,64}
    std::string plugin;        // plugin id; empty when the driver id is unique among loaded plugins
    std::string driver;        // driver id
    std::string device_class;  // must equal the driver's declared class (checked once plugins are loaded)
    bool enabled = true;
    wire_config wire;
    std::vector<std::uint8_t> driver_config;  // the [device.config] table as a msgpack map (empty table: {})
    // Liveness budget: silence longer than this is `offline`. Unset: the class default; zero: liveness off.
    std::optional<std::chrono::milliseconds> heartbeat;
    site_metadata meta;
    std::vector<std::string> tags;  // free labels ("non_fire_power") a linkage selector picks devices by
    source_position where;
    // Where a message about the driver's config points: the device's path ("device[2]"), its [config] table (the
    // device's own table when it has none) and the value of each top-level key of that table.
    std::string path;
    source_position config_where;
    std::map<std::string, source_position> config_keys;
};

// An error about a device's driver config, in the words of its driver (or of whoever refused it), at the value of the
// config key those words name in the SDK's form ("config key 'poll_ms': 5 is outside 10..3600000"), else at the
// [config] table: "site.toml:14:20: device[1].config.poll_ms: <message>".
config_error driver_config_error(const device_config &d, std::string message);

// The file paths here are made absolute, relative to the config file's folder.
struct uplink_config {
    bool configured = false;
    std::string url;
    std::string token_file;
    std::string ca_file;
    std::string client_cert;
    std::string client_key;
    std::string queue_path;
    std::chrono::seconds timeout{10};   // one request
    std::int64_t batch_max_events = 500;
    std::int64_t batch_max_bytes = 512 * 1024;
    std::int64_t alarm_cap_mb = 64;     // per-lane caps of the durable queue
    std::int64_t event_cap_mb = 256;
    std::int64_t telemetry_cap_mb = 512;
    std::int64_t reserve_mb = 16;       // disk kept back for alarms
    bool poll_commands = true;          // long-poll the platform for commands
    std::chrono::seconds backoff_max{30};  // the longest wait between retries (the alarm lane: at most 2 s)
    std::int64_t max_pending = 16384;      // events taken, not yet committed, at most (alarms always taken)
};

// [control]: who may move what (docs/deployment.md, "Select before operate").
struct control_config {
    std::chrono::milliseconds select_timeout{15'000};  // a selection's life (IEC 61850 SBO: 15 s)
    std::vector<std::string> platform_may;              // actuating commands the platform's downlink may run
    std::string audit_path;  // the audit chain's SQLite file; empty: the uplink's queue, else beside the site file
    std::int64_t audit_keep = 100'000;  // records kept, at least 10 000 (GB 25506)
};

// How plugins run: each in its own supervised firelink-runner process (the default), or inside the host.
// A runner that crashes, exits or stops answering its heartbeat is restarted with exponential backoff and jitter;
// restart_limit failures within restart_window park the plugin, with an alarm. The plugin ids in by_plugin are not
// checked against the loaded plugins here: nothing here loads a plugin.
struct isolation_config {
    std::string default_mode = "process";            // [plugins] isolation = "process" | "in_process"
    std::map<std::string, std::string> by_plugin;    // [plugins.isolation_of] "<plugin id>" = "process" | "in_process"
    // [runner] path; empty: firelink-runner beside firelink-host. Made absolute relative to the config file.
    std::filesystem::path runner;
    std::string user = "nobody";                     // [runner] user: the runners' one user when the host runs as
                                                     //   root and uid_range is "off"
    // [runner] uid_range = "FIRST-LAST": each plugin's runner under a uid (and gid) of its own from the range, not
    // the host's, not root; "off" (0, 0): every runner one shared uid, with a warning (docs/deployment.md).
    std::uint32_t uid_first = 61000, uid_last = 61183;
    std::int64_t memory_mb = 1024;                   // [runner] memory_mb: RLIMIT_AS per runner, 0 = no limit
                                                     //   (0 or 16..1048576)
    std::int64_t open_files = 1024;                  // [runner] open_files: RLIMIT_NOFILE per runner (16..1048576)
    std::chrono::milliseconds hang_timeout{2000};    // [runner] hang_ms: no heartbeat answer this long = driver_hung
                                                     //   (100..600000)
    int restart_limit = 5;                           // [runner] restart_limit: failures within restart_window park
                                                     //   the plugin (1..1000)
    std::chrono::seconds restart_window{300};        // [runner] restart_window_s (1..86400)
    std::chrono::milliseconds backoff_initial{100};  // [runner] backoff_initial_ms (10..60000)
    std::chrono::milliseconds backoff_max{30000};    // [runner] backoff_max_ms (>= backoff_initial, <= 3600000)
    std::int64_t ring_kb = 512;                      // [runner] ring_kb: each lane's event ring (256..65536)
    std::int64_t data_credit_kb = 256;               // [runner] data_credit_kb: a device's wire bytes in flight to
                                                     //   its runner (16..65536)
    // True when the plugin runs inside the host process.
    bool in_process(const std::string &plugin_id) const;
};

// [plugins] signatures and trusted_keys: which plugin files the host loads (docs/deployment.md, "Signed plugins").
struct signing_config {
    std::string policy = "warn";  // "require": refuse unsigned or wrongly signed plugins; "warn": load, warn; "off"
    struct trusted_key {
        std::filesystem::path file;  // made absolute, relative to the config file's folder
        source_position where;       // its entry in trusted_keys
        signing::public_key key;
    };
    std::vector<trusted_key> trusted;
    std::vector<signing::public_key> keys() const;
    // [plugins] certificates, certifier_keys, certificate_level (docs/deployment.md, "Certified plugins"): with
    // "require", a plugin loads only with a valid conformance certificate (<file>.cert.json) of at least that level,
    // signed by one of the certifiers' keys.
    std::string certificates = "off";  // "require" or "off"
    std::vector<signing::ed25519_public> certifiers;
    std::string certificate_level = "standard";
};

struct site_config {
    std::filesystem::path file;  // absolute
    std::string gateway_id;
    std::string gateway_name;
    // Made absolute, relative to the config file's folder. Empty when the file names none: the host then loads the
    // installed plugin folder (host/layout: <bin>/../lib/firelink/plugins, or a build tree's plugins/).
    std::vector<std::filesystem::path> plugin_dirs;
    control_config control;
    std::string admin_listen = "127.0.0.1:9180";
    std::size_t admin_max_connections = 64;                   // [admin] max_connections (1..4096)
    std::chrono::milliseconds admin_request_timeout{10'000};  // [admin] request_timeout_ms (100..600000)
    std::filesystem::path admin_token_file;    // [admin] token_file, made absolute; empty: none (reads only)
    std::string admin_anonymous_read = "loopback";  // [admin] anonymous_read: "loopback" or "none"
    std::filesystem::path admin_tls_cert;      // [admin] tls_cert, tls_key, client_ca (PEM), made absolute; empty:
    std::filesystem::path admin_tls_key;       // plain HTTP, no client certificates
    std::filesystem::path admin_client_ca;
    std::string sink_kind = "stdout";                // "stdout", "jsonl" or "none" (default "none" with an [uplink])
    std::filesystem::path sink_path;                 // for "jsonl", made absolute
    std::chrono::milliseconds watchdog_warn{100};
    std::chrono::milliseconds watchdog_fault{2000};
    // Liveness budget per device class ("arc_fault_breaker", ..., and "vendor" for every vendor class).
    std::map<std::string, std::chrono::milliseconds> liveness;
    uplink_config uplink;
    isolation_config isolation;
    signing_config signing;
    std::vector<bus_config> buses;
    std::vector<listener_config> listeners;
    std::vector<device_config> devices;
    std::vector<linkage_rule> linkage;  // [[linkage]] (docs/linkage.md)

    const bus_config *find_bus(const std::string &id) const;
    const listener_config *find_listener(const std::string &id) const;
    const device_config *find_device(const std::string &id) const;
    // The liveness budget of a device: its own, else its class default, else the vendor default.
    std::chrono::milliseconds heartbeat_of(const device_config &d) const;
};

// Everything a device is made from and nothing else (not its place in the file): a reload recreates a running device
// exactly when its definition is not equal to the one it runs on.
struct device_definition {
    std::string plugin, driver, device_class;
    bool enabled = true;
    wire_config wire;
    std::vector<std::uint8_t> driver_config;
    std::chrono::milliseconds heartbeat{0};  // the effective budget (its own, or its class's)
    site_metadata meta;
    std::optional<bus_settings> bus;               // the bus it is on, if any
    std::optional<listener_endpoint> listener;     // the listener it is on, if any

    bool operator==(const device_definition &) const = default;
};

device_definition definition_of(const site_config &cfg, const device_config &d);

// A site, or every problem found in its file (each with file, line and key).
using load_result = firelink::result<site_config, std::vector<config_error>>;

// Reads and validates a site file. Every problem found is returned; a site_config only when there is none.
load_result load_site_config(const std::filesystem::path &file);

// Same, from text (tests); `file` is used in messages and to resolve relative paths.
load_result parse_site_config(const std::string &toml_text, const std::filesystem::path &file);

}  // namespace firelink::site
