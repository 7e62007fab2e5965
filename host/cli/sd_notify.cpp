#include "sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

namespace firelink::cli {

namespace {

std::optional<unsigned long long> number(const char *text) {
    if (!text || !*text) return std::nullopt;
    unsigned long long v = 0;
    const auto end = text + std::strlen(text);
    const auto [p, ec] = std::from_chars(text, end, v);
    if (ec != std::errc{} || p != end) return std::nullopt;
    return v;
}

}  // namespace

systemd_notifier::systemd_notifier() {
    const char *socket_name = std::getenv("NOTIFY_SOCKET");
    const auto usec = number(std::getenv("WATCHDOG_USEC"));
    const auto pid = number(std::getenv("WATCHDOG_PID"));
    if (usec && *usec > 0 && (!pid || *pid == static_cast<unsigned long long>(::getpid())))
        watchdog_ = std::chrono::microseconds(*usec / 2);
    std::string name = socket_name ? socket_name : "";
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    if (name.empty()) return;
    if (name[0] != '/' && name[0] != '@') {
        spdlog::warn("NOTIFY_SOCKET '{}' is neither a path nor an abstract name (@...); not notifying systemd", name);
        return;
    }
    if (name.size() >= sizeof(sockaddr_un::sun_path)) {
        spdlog::warn("NOTIFY_SOCKET '{}' is too long for a unix socket address; not notifying systemd", name);
        return;
    }
    if (name[0] == '@') name[0] = '\0';  // Linux's abstract namespace
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        spdlog::warn("cannot make a socket to notify systemd: {}", std::strerror(errno));
        return;
    }
    address_ = std::move(name);
}

systemd_notifier::~systemd_notifier() {
    if (fd_ >= 0) ::close(fd_);
}

bool systemd_notifier::notify(std::string_view message) {
    if (fd_ < 0) return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, address_.data(), address_.size());
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
    const auto sent = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr *>(&sa),
                               length);
    if (sent == static_cast<ssize_t>(message.size())) {
        failed_ = false;
        return true;
    }
    if (!failed_)
        spdlog::warn("cannot notify systemd at NOTIFY_SOCKET: {}", sent < 0 ? std::strerror(errno) : "short write");
    failed_ = true;
    return false;
}

}  // namespace firelink::cli
