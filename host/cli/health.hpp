// What /healthz says: one verdict (starting, ok, degraded) and, when degraded, every reason, each naming what is
// wrong (a device, a plugin's runner, the queue, the uplink) and why. "Degraded" means some part of the site is not
// being monitored, or its events may not reach the platform: a device that failed to start counts as much as one
// that went offline, since in both cases nobody hears its alarms.
//
// The facts are gathered by the host (site_host.cpp) and judged here, apart, so the rules are in one place.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <firelink/admin/admin_server.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/isolation/runner_supervisor.hpp>
#include <firelink/signing/minisign.hpp>
#include <firelink/uplink/uplink.hpp>

namespace firelink::cli {

struct health_facts {
    bool ready = false;  // every configured device has been tried once
    std::string gateway;
    std::chrono::seconds uptime{0};
    struct device {
        std::string id;
        core::device_state state = core::device_state::created;  // the runtime's
        std::vector<std::string> faults;  // codes of its open faults (driver_hung, ...), to say why it is faulted
    };
    std::vector<device> devices;                      // created in the runtime
    std::map<std::string, std::string> not_started;   // enabled in the site file but not running: id -> why
    std::map<std::string, std::string> rejected;      // running on a previous definition (config_rejected): id -> why
    struct plugin {
        std::string id;
        bool remote = false;
        std::optional<isolation::runner_status> runner;
        std::optional<signing::verdict> signature;  // unless [plugins] signatures = "off"
    };
    std::vector<plugin> plugins;
    // Plugin files not loaded, each "file: reason: detail". Not a reason to be degraded by itself: the devices that
    // needed one are not started, and are.
    std::vector<std::string> refused_plugins;
    // Sinks that cannot store events now, each "sink: why" (a full or failing disk under the local record).
    std::vector<std::string> sink_faults;
    struct uplink_facts {
        uplink::queue_stats queue;
        uplink::uplink_report report;
    };
    std::optional<uplink_facts> uplink;  // with [uplink]
};

// The JSON of /healthz and whether the host is healthy ("ok"; "starting" and "degraded" are not).
admin::health_answer judge_health(const health_facts &facts);

// One line for systemd's STATUS= and the log: "ok, 3 device(s) running" or "degraded: device 'x' not started: ...".
std::string health_summary(const health_facts &facts);

}  // namespace firelink::cli
