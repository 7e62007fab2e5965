// systemd's watchdog, from the control loop: WATCHDOG=1 goes out only while the control loop ticks AND every event
// loop watched has run what the previous tick posted to it, so a wedged devices' or admin loop stops the pings as
// surely as a wedged control thread does, and systemd restarts the host. STATUS= follows the health summary.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "sd_notify.hpp"

namespace firelink::cli {

class loop_watchdog {
public:
    struct loop {
        std::string name;  // for the log: "devices'", "admin"
        boost::asio::io_context *io;
    };
    loop_watchdog(systemd_notifier &sd, std::vector<loop> loops);

    // From the control loop, each watchdog interval (or each STATUS= refresh): pings when every loop answered,
    // posts the next question to each, and sends `status` when it changed since the last one sent.
    void tick(const std::string &status);
    // The first STATUS=, with READY=1: from here on tick() sends only changes.
    void ready(const std::string &status);

private:
    systemd_notifier &sd_;
    std::vector<loop> loops_;
    std::unique_ptr<std::atomic<bool>[]> answered_;  // one per loop: its post of the last tick has run
    bool pings_withheld_ = false;
    std::string last_status_;
};

}  // namespace firelink::cli
