#include "firelink/core/conditions.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace firelink::core {

std::optional<condition_change> condition_list::apply(const std::string &device_id, std::string_view kind,
                                                      std::string_view code, std::string_view event_id,
                                                      std::string_view ends, const std::vector<std::uint8_t> &event,
                                                      std::int64_t wall_ms) {
    const bool opens = is_condition_kind(kind) && !event_id.empty();
    const bool ends_one = kind == "restore" && !ends.empty();
    if (!opens && !ends_one) return std::nullopt;
    std::lock_guard lock(mutex_);
    auto find = [&](std::string_view id) {
        return std::find_if(open_.begin(), open_.end(), [&](const auto &c) { return c.event_id == id; });
    };
    condition_change change;
    change.device_id = device_id;
    if (ends_one) {
        auto it = find(ends);
        if (it == open_.end()) return std::nullopt;
        change.closed.emplace_back(ends);
        open_.erase(it);
        return change;
    }
    // A raise with an id already open replaces it: the newer event is the one the driver now knows the condition by
    // (it may carry news, a raised severity), and it moves to the end, as the newest. With the same kind and code it
    // is the same condition reported again (FL-PLUGIN-29, after a restart of the driver or the host); another kind or
    // code under a reused id is a new condition.
    if (auto it = find(event_id); it != open_.end()) {
        change.rereport = it->kind == kind && it->code == code;
        if (change.rereport)
            spdlog::debug("device {}: {} '{}' re-reported: it is open already", device_id, kind, event_id);
        open_.erase(it);
    }
    open_condition c;
    c.device_id = device_id;
    c.event_id = std::string(event_id);
    c.kind = std::string(kind);
    c.code = std::string(code);
    c.event = event;
    c.raised_wall_ms = wall_ms;
    open_.push_back(c);
    change.opened = std::move(c);
    while (open_.size() > max_open) {
        ++dropped_;
        spdlog::warn("device {}: more than {} open conditions; the oldest, {} '{}', is no longer kept by the host "
                     "({} dropped so far; its events were delivered)",
                     device_id, max_open, open_.front().kind, open_.front().event_id, dropped_);
        change.closed.push_back(std::move(open_.front().event_id));
        open_.pop_front();
    }
    return change;
}

void condition_list::load(std::vector<open_condition> stored) {
    std::lock_guard lock(mutex_);
    open_.assign(std::make_move_iterator(stored.begin()), std::make_move_iterator(stored.end()));
    while (open_.size() > max_open) {
        ++dropped_;
        open_.pop_front();
    }
}

std::vector<open_condition> condition_list::snapshot() const {
    std::lock_guard lock(mutex_);
    return {open_.begin(), open_.end()};
}

std::size_t condition_list::size() const {
    std::lock_guard lock(mutex_);
    return open_.size();
}

std::uint64_t condition_list::dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
}

}  // namespace firelink::core
