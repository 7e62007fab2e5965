// What the admin endpoint shows of the site's components, each view built from a component's own snapshot: the
// devices (/api/devices), the uplink (/api/uplink), the runtime's part of /healthz's facts, and the /metrics series
// that the runners, the control plane and the uplink count by themselves. The composition root (site_host.cpp) only
// hands each view what it reads.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <firelink/admin/host_metrics.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/isolation/runner_supervisor.hpp>
#include <firelink/uplink/durable_queue.hpp>
#include <firelink/uplink/uplink.hpp>

#include "health.hpp"

namespace firelink::cli {

// A running device's [device.site] table, or nothing for a device no longer in the site file.
using site_table_of = std::function<std::optional<std::map<std::string, std::string>>(const std::string &device)>;

// GET /api/devices: every device the runtime lists, its counters, wire, open conditions and site.
std::string devices_json(const core::device_runtime &runtime, const site_table_of &site_of);

// GET /api/uplink with [uplink]: the queue's lanes and the senders' state, and the first 100 quarantined records.
std::string uplink_json(const std::string &url, const std::string &queue_path, const uplink::durable_queue &queue,
                        const uplink::uplink_report &report);

// The runtime's part of /healthz's facts: each device's state (and open faults when it is not started), the
// devices running on a previous definition, and those that cannot run, each with `where_of` its place in the site
// file ("site.toml:12:1: ", or "").
void add_runtime_facts(health_facts &facts, const core::device_runtime &runtime,
                       const std::function<std::string(const std::string &device)> &where_of);

// Each loaded plugin for /healthz: where it runs, its runner's state, and what the check of its signature found.
void add_plugin_facts(health_facts &facts, const std::vector<std::shared_ptr<core::plugin>> &loaded,
                      const std::map<std::filesystem::path, signing::verdict> &signatures);

// firelink_runner_*{plugin}: each runner's state, failures, restarts and ring bytes.
void add_runner_series(admin::scraped_series &out, const std::vector<isolation::runner_status> &runners);
// firelink_control_refused_total{reason} and firelink_audit_records.
void add_control_series(admin::scraped_series &out, const std::map<std::string, std::uint64_t> &refusals,
                        std::uint64_t audit_records);
// firelink_linkage_events_total{rule, code}: what each linkage rule reported (started, confirmed, failed, ...).
void add_linkage_series(admin::scraped_series &out,
                        const std::map<std::string, std::map<std::string, std::uint64_t>> &events);
// firelink_uplink_*: the queue's lanes, the senders, the reserve and the commands received.
void add_uplink_series(admin::scraped_series &out, const uplink::queue_stats &q, const uplink::uplink_report &r);

}  // namespace firelink::cli
