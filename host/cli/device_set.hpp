// The devices a site runs, each on the definition it was made from: a (re)load's plan applied to the runtime, and the
// devices that cannot run kept listed as down, so that none leaves monitoring silently.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <firelink/admin/host_metrics.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/result.hpp>
#include <firelink/uplink/durable_queue.hpp>

#include "plugin_catalog.hpp"
#include "reconfigure.hpp"
#include "site_wiring.hpp"

namespace firelink::cli {

// What `run` would refuse of a device's definition, at its place in the site file: no plugin for it, or its driver's
// own refusal of its config.
std::optional<site::config_error> trial(core::device_runtime &runtime, const plugin_catalog &plugins,
                                        const site::site_config &cfg, const site::device_config &d);

class device_set {
public:
    device_set(plugin_catalog &catalog, site_wiring &wires, admin::host_metrics &metrics)
        : catalog_(catalog), wires_(wires), metrics_(metrics) {}

    void attach(core::device_runtime *runtime) { runtime_ = runtime; }

    // Brings the running devices to plan.effective. Every removed and changed device is destroyed first, so that a
    // bus or listener whose settings change is closed before it opens anew; then the changed and new devices are
    // created. A changed device whose new definition passed its trial and still did not start (its start, or its
    // wire, failed) is put back on its previous definition when that can still run; a device that cannot run at all
    // is down. Control thread only.
    void apply(reload_plan &plan, const site::site_config &previous, reload_outcome &out);

    const running_devices &running() const { return running_; }

private:
    firelink::result<> start(const site::site_config &cfg, const site::device_config &d);
    void mark_down(const site::device_config &d, const std::string &why);
    void forget(const std::string &device_id);
    void identify_on_listeners(const site::site_config &cfg);

    plugin_catalog &catalog_;
    site_wiring &wires_;
    admin::host_metrics &metrics_;
    core::device_runtime *runtime_ = nullptr;
    running_devices running_;
};

// Host-kept conditions (firelink.conditions/1) come back from the queue before any device is created, so each
// driver finds what its predecessor raised from create_device on. A device id no longer in the site file loses its
// stored conditions here, at start (a reload that removes a device keeps them until the next start, so putting it
// back keeps them too). A queue that cannot be read is logged; the drivers start without their conditions.
void restore_conditions(uplink::durable_queue &queue, core::device_runtime &runtime, const site::site_config &cfg);

}  // namespace firelink::cli
