// Whether each [[linkage]] action can run: the drivers of the devices it would move must declare its command (a
// driver that declares no commands may take any name). `firelink-host check-config` reports each problem as an error;
// `run` refuses the rule (it never fires, and /api/linkage says why) and keeps the host running.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <firelink/core/plugin_loader.hpp>
#include <firelink/site/site_config.hpp>

namespace firelink::cli {

struct linkage_problem {
    std::string rule;
    std::string message;  // "site.toml:40:1: linkage[0].action[0].command: ..."
};

// `driver_of`: the driver a device of the site runs (nullptr when its plugin is not loaded: that device's own
// problem, reported for the device).
std::vector<linkage_problem> linkage_command_problems(
    const site::site_config &cfg, const std::function<const core::driver_info *(const site::device_config &)> &driver_of);

// The names the platform's downlink uses for a rule, with the gateway id as the device: they are no driver's, and
// [control] platform_may lists them to let the platform confirm or reset a rule.
inline constexpr std::string_view platform_linkage_confirm = "linkage_confirm";
inline constexpr std::string_view platform_linkage_reset = "linkage_reset";

}  // namespace firelink::cli
