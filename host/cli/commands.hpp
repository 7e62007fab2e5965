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

struct try_options {
    std::vector<std::string> paths;
    std::vector<std::string> drivers;      // empty: every driver of every plugin
    std::vector<std::string> settings;     // key=value pairs, the driver config of every device
    double seconds = 0;                    // 0: until SIGINT/SIGTERM
    unsigned expect_events = 0;            // minimum events per device for success
    bool quiet = false;                    // do not print events
};

// `firelink-host try PATH...`: loads plugins, creates one device per driver, starts them, prints their events, and
// prints a summary when stopped.
int try_plugins(const try_options &options);

// `firelink-host audit verify QUEUE_DB`: walks the audit chain; prints what holds, or the first broken link (exit 1).
// `show`: also prints the last N records, one JSON line each.
int verify_audit(const std::string &db, std::size_t show);

}  // namespace firelink::cli
