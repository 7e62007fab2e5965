// The subcommands of firelink-host. Each returns the process exit code: 0 success, 1 a check failed (a plugin was
// refused, an expectation did not hold), 2 bad usage.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace firelink::cli {

// `firelink-host plugins PATH...`: lists each plugin's id, version, ABI version and drivers, and one clear reason for
// each refused file.
// `trusted_keys`: minisign public key files; each plugin's signature is checked against them and its signer shown.
int list_plugins(const std::vector<std::string> &paths, const std::vector<std::string> &trusted_keys = {});

// The wire of the one device `try` runs with one: a site file's wire forms (docs/deployment.md, "Wire forms"), given
// on the command line. At most one of connect, listen and serial.
struct try_wire_options {
    std::string connect;   // --connect HOST:PORT: the device is a TCP server, the host connects to it (tcp)
    std::string listen;    // --listen HOST:PORT: the device connects in to a listener there
    std::string serial;    // --serial DEV: a serial port or pty (a serial bus; an rs485 one for a driver that takes
                           //   only that)
    int unit = -1;         // --unit N: the device's Modbus unit on a tcp or serial wire; -1: not given
    std::string peer;      // --peer IP: with --listen, the device is the connection from this address...
    std::string identity;  // --identity ID: ...or the one that identifies as this (firelink.identify/1)
    unsigned baud = 0, data_bits = 0, stop_bits = 0;  // with --serial; 0: the [[bus]] default
    std::string parity;                               // with --serial: none, even or odd; empty: the default

    bool given() const { return !connect.empty() || !listen.empty() || !serial.empty(); }
};

struct try_options {
    std::vector<std::string> paths;
    std::vector<std::string> drivers;      // empty: every driver of every plugin
    std::vector<std::string> settings;     // key=value pairs, the driver config of every device
    double seconds = 0;                    // 0: until SIGINT/SIGTERM
    unsigned expect_events = 0;            // minimum events per device for success
    bool quiet = false;                    // do not print events
    try_wire_options wire;                 // given: one device, the one driver of --driver (or of the plugins)
};

// `firelink-host try PATH...`: loads plugins, creates one device per driver (one device in all with a wire option),
// starts them, prints their events, and prints a summary when stopped.
int try_plugins(const try_options &options);

// `firelink-host audit verify QUEUE_DB`: walks the audit chain; prints what holds, or the first broken link (exit 1).
// `show`: also prints the last N records, one JSON line each.
int verify_audit(const std::string &db, std::size_t show);

}  // namespace firelink::cli
