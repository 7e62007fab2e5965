#include "linkage_commands.hpp"

namespace firelink::cli {

std::vector<linkage_problem> linkage_command_problems(
    const site::site_config &cfg, const std::function<const core::driver_info *(const site::device_config &)> &driver_of) {
    std::vector<linkage_problem> out;
    for (const auto &rule : cfg.linkage)
        for (const auto &a : rule.actions)
            for (const auto &d : cfg.devices) {
                if (!d.enabled || !(a.device.empty() ? a.select.matches(d) : d.id == a.device)) continue;
                const auto *driver = driver_of(d);
                if (!driver || !driver->declares_commands || driver->find_command(a.command)) continue;
                std::string names;
                for (const auto &c : driver->commands) names += (names.empty() ? "" : ", ") + c.name;
                out.push_back({rule.id, site::config_error{a.where, a.path + ".command",
                                                           "device '" + d.id + "' (driver '" + d.driver +
                                                               "') declares no command '" + a.command + "' (it has: " +
                                                               (names.empty() ? "none" : names) + ")"}
                                            .str()});
            }
    return out;
}

}  // namespace firelink::cli
