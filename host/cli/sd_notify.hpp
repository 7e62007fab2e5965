// systemd's notification protocol (sd_notify(3)), spoken directly: one datagram per message to the AF_UNIX socket
// named by $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@'). It is a few lines of socket code,
// where libsystemd would be one more library on every gateway image, also on those that run no systemd at all.
//
//     systemd_notifier sd;              // reads (and unsets) NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID
//     sd.notify("READY=1\nSTATUS=3 device(s) running");
//     if (auto every = sd.watchdog_interval()) ...   // send "WATCHDOG=1" that often
//
// Without $NOTIFY_SOCKET (not started by systemd, or Type=simple) every call does nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace firelink::cli {

class systemd_notifier {
public:
    // Reads the environment and removes these variables from it, so that the processes the host starts (plugin
    // runners) do not speak for the service. Construct it before any thread starts: the environment is not
    // thread-safe.
    systemd_notifier();
    ~systemd_notifier();
    systemd_notifier(const systemd_notifier &) = delete;
    systemd_notifier &operator=(const systemd_notifier &) = delete;

    bool enabled() const { return fd_ >= 0; }
    // Sends one message ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=...", several joined by '\n'). False when
    // not enabled or the send failed (logged once: a gone manager must not flood the log).
    bool notify(std::string_view message);

    // Half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; nullopt when systemd's watchdog is off for this
    // process (no WATCHDOG_USEC, or a WATCHDOG_PID that is not ours).
    std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_; }

private:
    int fd_ = -1;
    std::string address_;  // the socket's name as sockaddr_un wants it (abstract: with a leading '\0')
    std::optional<std::chrono::microseconds> watchdog_;
    bool failed_ = false;
};

}  // namespace firelink::cli
