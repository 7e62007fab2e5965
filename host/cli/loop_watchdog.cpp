#include "loop_watchdog.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace firelink::cli {

loop_watchdog::loop_watchdog(systemd_notifier &sd, std::vector<loop> loops)
    : sd_(sd), loops_(std::move(loops)), answered_(new std::atomic<bool>[loops_.size()]) {
    for (std::size_t i = 0; i < loops_.size(); ++i) answered_[i] = true;
}

void loop_watchdog::ready(const std::string &status) {
    last_status_ = status;
    sd_.notify("READY=1\nSTATUS=" + status);
}

void loop_watchdog::tick(const std::string &status) {
    if (const auto interval = sd_.watchdog_interval()) {
        const loop *silent = nullptr;
        for (std::size_t i = 0; i < loops_.size(); ++i)
            if (!answered_[i].exchange(false) && !silent) silent = &loops_[i];
        if (!silent) {
            sd_.notify("WATCHDOG=1");
            if (pings_withheld_) spdlog::info("watchdog: every event loop answers again; pinging systemd");
            pings_withheld_ = false;
        } else if (!pings_withheld_) {
            pings_withheld_ = true;
            spdlog::critical("watchdog: the {} event loop has not answered for {} ms; systemd is no longer pinged",
                             silent->name, std::chrono::duration_cast<std::chrono::milliseconds>(*interval).count());
        }
        for (std::size_t i = 0; i < loops_.size(); ++i)
            boost::asio::post(*loops_[i].io, [flag = &answered_[i]] { *flag = true; });
    }
    if (status != last_status_) sd_.notify("STATUS=" + status);
    last_status_ = status;
}

}  // namespace firelink::cli
