#include "names.hpp"

#include <firelink/abi.h>

#include <algorithm>
#include <array>

namespace firelink::site::detail {

namespace {

bool is_lower_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool is_dns_label(std::string_view label) {
    if (label.empty() || label.size() > 63 || !is_lower_or_digit(label[0])) return false;
    return std::all_of(label.begin(), label.end(), [](char c) { return is_lower_or_digit(c) || c == '-' || c == '_'; });
}

}  // namespace

bool is_site_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
               c == ':' || c == '-';
    });
}

bool is_reverse_dns(std::string_view id) {
    if (id.size() > 255) return false;
    std::size_t labels = 0;
    for (std::size_t start = 0;; ++labels) {
        const auto dot = id.find('.', start);
        if (!is_dns_label(id.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start)))
            return false;
        if (dot == std::string_view::npos) return labels + 1 >= 2;
        start = dot + 1;
    }
}

bool is_driver_id(std::string_view id) {
    if (id.empty() || id.size() > 64 || !is_lower_or_digit(id[0])) return false;
    return std::all_of(id.begin(), id.end(),
                       [](char c) { return is_lower_or_digit(c) || c == '_' || c == '.' || c == '-'; });
}

bool is_vendor_class(std::string_view c) {
    constexpr std::string_view prefix = FL_CLASS_VENDOR_PREFIX;
    return c.substr(0, prefix.size()) == prefix && is_reverse_dns(c.substr(prefix.size()));
}

bool is_device_class(std::string_view c) {
    static constexpr std::array<std::string_view, 4> standard = {FL_CLASS_ARC_FAULT_BREAKER, FL_CLASS_GAS_SHUTOFF_VALVE,
                                                                 FL_CLASS_PYROLYSIS_DETECTOR, FL_CLASS_FIRE_PANEL};
    return std::find(standard.begin(), standard.end(), c) != standard.end() || is_vendor_class(c);
}

}  // namespace firelink::site::detail
