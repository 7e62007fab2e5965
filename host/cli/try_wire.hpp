// The site `firelink-host try` runs: its devices, and the wire options given to its one device. The wire is written
// as a site file writes it and read by the site file's reader, so `try --connect X` takes exactly what
// `wire = { tcp = "X" }` takes, with the same checks and messages; the devices are then made from that site as `run`
// makes them (site_wiring, spec_of).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <firelink/core/device_runtime.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/result.hpp>
#include <firelink/site/site_config.hpp>
#include <firelink/transport/link.hpp>

#include "commands.hpp"

namespace firelink::cli {

// One device `try` runs: a driver of a loaded plugin, and the device id it runs as ("<file stem>.<driver id>").
struct tried_device {
    std::shared_ptr<core::plugin> plugin;
    const core::driver_info *driver = nullptr;
    std::string id;
};

struct try_site {
    site::site_config cfg;
    // --listen without --peer or --identity, for a driver that identifies its connections: the device's identity
    // is the one its driver reads from the first connection (identifier_for).
    bool learns_identity = false;
    std::string note;  // how the device binds when no option said, for the log; empty when an option said
};

// The wire option given, as the user wrote it ("--connect 127.0.0.1:502"); empty when none was.
std::string wire_option_text(const try_wire_options &w);

// What a wire option cannot be given with, checked before any plugin loads: "--unit: ...", or empty.
std::string wire_usage_problem(const try_wire_options &w);

// Whether the driver talks to its device through a wire the host owns (firelink.transport/1).
bool needs_wire(const core::driver_info &d);
// The three wire options, each with what it is for: what a driver that needs a wire and got none is told.
extern const char *const wire_choices_text;

// The site of `devices` (exactly one when a wire option is given), each with `config`. A failure is a usage error, in
// the words of the site file's reader with the option named: "--connect: expected "HOST:PORT" ..., got "x"".
firelink::result<try_site> site_of(const try_wire_options &w, const std::vector<tried_device> &devices,
                                   const std::vector<std::uint8_t> &config);

// The identity the one device on a listener is bound to in try_site::cfg when it learns its identity: no real one
// is, so its driver's first identity answers to this one (identifier_for).
extern const char *const learnt_identity;

// The identify function of the listener of `device_id`, bound by identity: its driver's (firelink.identify/1). When
// the device learns its identity, the first identity the driver reads is the device's from then on (logged, with the
// site file's wire that would bind it): a reconnect of that one is taken, a connection identifying as another is
// refused.
transport::tcp_listener::identify_fn identifier_for(std::shared_ptr<core::plugin> plugin, std::string driver,
                                                    std::string device_id, bool learns);

}  // namespace firelink::cli
