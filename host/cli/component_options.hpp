// What each section of the site file means to the component it configures: the one place where site keys become a
// component's options, so a component never reads the site file and a key is mapped once (tests/host/
// component_options_test.cpp checks each). The callbacks in those options are the composition root's to set.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <firelink/admin/admin_server.hpp>
#include <firelink/admin/host_metrics.hpp>
#include <firelink/control/control_plane.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/site/site_config.hpp>
#include <firelink/uplink/durable_queue.hpp>
#include <firelink/uplink/uplink.hpp>

namespace firelink::cli {

// [gateway], [watchdog]; the observer and the admits callback are not set.
core::runtime_options runtime_options_of(const site::site_config &cfg);
// The runtime's reports as the host's device series (firelink_events_total, firelink_device_state, ...).
core::runtime_observer observer_for(admin::host_metrics &metrics);

// [uplink]: the durable queue's path and per-lane caps.
uplink::queue_options queue_options_of(const site::site_config &cfg);

// [uplink]: the platform's address, TLS, batches, backoff and its token, read from token_file (whitespace trimmed).
// Throws std::runtime_error naming the token file when it cannot be read or is empty.
uplink::uplink_options uplink_options_of(const site::site_config &cfg);

// [control]: selection timeout and what the platform may run.
control::control_options control_options_of(const site::site_config &cfg);
// Where the audit chain is: [control] audit_path, else the uplink's queue file (one file to keep and back up), else
// its own beside the site file.
std::filesystem::path audit_path_of(const site::site_config &cfg);

// [admin]: address (`listen` overrides it, from --admin-listen), limits, tokens and TLS. Throws
// std::invalid_argument for an address that does not parse.
admin::admin_options admin_options_of(const site::site_config &cfg, const std::optional<std::string> &listen = {});

}  // namespace firelink::cli
