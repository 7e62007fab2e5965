// Who is waiting for commands: the long polls of GET /v1/commands, per gateway, and the highest cursor each gateway
// has. A poll either finds commands at once or registers a waker; posting a command wakes the polls it satisfies.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace firelink::receiver {

class command_board {
public:
    void load(std::map<std::string, std::uint64_t> max_cursors) {
        std::lock_guard lock(mutex_);
        max_ = std::move(max_cursors);
    }

    std::uint64_t max_cursor(const std::string &gateway) {
        std::lock_guard lock(mutex_);
        const auto it = max_.find(gateway);
        return it == max_.end() ? 0 : it->second;
    }

    // Nothing when the gateway already has a command after `after` (answer now); else the id of a registration whose
    // wake() runs once, on the thread that posts the command. wake must not block.
    std::optional<std::uint64_t> wait(const std::string &gateway, std::uint64_t after, std::function<void()> wake) {
        std::lock_guard lock(mutex_);
        const auto it = max_.find(gateway);
        if (it != max_.end() && it->second > after) return std::nullopt;
        const auto id = next_id_++;
        waiters_.emplace(id, waiter{gateway, after, std::move(wake)});
        return id;
    }

    void cancel(std::uint64_t id) {
        std::lock_guard lock(mutex_);
        waiters_.erase(id);
    }

    // A command with this cursor is committed: wakes every poll of the gateway that waits for it.
    void posted(const std::string &gateway, std::uint64_t cursor) {
        std::vector<std::function<void()>> wake;
        {
            std::lock_guard lock(mutex_);
            auto &max = max_[gateway];
            if (cursor > max) max = cursor;
            for (auto it = waiters_.begin(); it != waiters_.end();) {
                if (it->second.gateway == gateway && it->second.after < cursor) {
                    wake.push_back(std::move(it->second.wake));
                    it = waiters_.erase(it);
                } else {
                    ++it;
                }
            }
        }
        for (auto &w : wake) w();
    }

    std::size_t waiting() {
        std::lock_guard lock(mutex_);
        return waiters_.size();
    }

private:
    struct waiter {
        std::string gateway;
        std::uint64_t after;
        std::function<void()> wake;
    };
    std::mutex mutex_;
    std::map<std::string, std::uint64_t> max_;
    std::map<std::uint64_t, waiter> waiters_;
    std::uint64_t next_id_ = 1;
};

}  // namespace firelink::receiver
