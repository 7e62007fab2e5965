// The identifiers a site file uses, with the rule each must follow as a message says it.
#pragma once

#include <string_view>

namespace firelink::site::detail {

// Gateway, bus, listener and device ids: [A-Za-z0-9_.:-]{1,64}.
bool is_site_id(std::string_view id);
inline constexpr std::string_view site_id_rule = "1 to 64 characters from A-Z a-z 0-9 _ . : -";

// Plugin ids and vendor class namespaces: lower-case reverse-DNS ("com.acme.breakers"), as the plugin loader checks.
bool is_reverse_dns(std::string_view id);
inline constexpr std::string_view plugin_id_rule = "a lower-case reverse-DNS plugin id (e.g. \"com.acme.breakers\")";

// Driver ids, as the plugin loader checks: [a-z0-9][a-z0-9_.-]{0,63}.
bool is_driver_id(std::string_view id);
inline constexpr std::string_view driver_id_rule =
    "a driver id (1 to 64 characters from a-z 0-9 _ . -, starting with a letter or digit)";

// One of the four standard classes, or "vendor:<reverse-dns>".
bool is_device_class(std::string_view device_class);
bool is_vendor_class(std::string_view device_class);
inline constexpr std::string_view device_class_rule =
    "one of arc_fault_breaker, gas_shutoff_valve, pyrolysis_detector, fire_panel, vendor:<reverse-dns>";

}  // namespace firelink::site::detail
