#include "firelink/isolation/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace firelink::isolation {

namespace fs = std::filesystem;

std::string check_plugin_file(const fs::path &file) {
    std::error_code ec;
    const fs::path real = fs::canonical(file, ec);
    if (ec) return file.string() + ": " + ec.message();
    struct stat st {};
    if (::stat(real.c_str(), &st) != 0) return real.string() + ": " + std::strerror(errno);
    if (!S_ISREG(st.st_mode)) return real.string() + ": not a regular file";
    const uid_t me = ::geteuid();
    if (st.st_uid != 0 && st.st_uid != me)
        return real.string() + ": owned by uid " + std::to_string(st.st_uid) + ", neither root nor this user";
    if (st.st_mode & (S_IWGRP | S_IWOTH)) return real.string() + ": writable by group or others";
    struct stat dir {};
    if (::stat(real.parent_path().c_str(), &dir) != 0) return real.parent_path().string() + ": " + std::strerror(errno);
    // A folder anyone may write lets anyone swap the file; the sticky bit (/tmp) stops that only for others' files.
    if ((dir.st_mode & S_IWOTH) && !(dir.st_mode & S_ISVTX))
        return real.parent_path().string() + ": the plugin's folder is writable by others";
    return {};
}

namespace {
void close_from(int lowest) {
#ifdef SYS_close_range
    if (::syscall(SYS_close_range, lowest, ~0u, 0) == 0) return;
#endif
    const long max = ::sysconf(_SC_OPEN_MAX);
    for (int fd = lowest; fd < (max > 0 ? max : 65536); ++fd) ::close(fd);
}
}  // namespace

runner_process spawn_runner(const fs::path &runner, const fs::path &plugin, const runner_limits &limits,
                            const std::vector<int> &given_fds, int plugin_fd) {
    std::vector<int> extra_fds = given_fds;
    if (plugin_fd >= 0) extra_fds.push_back(plugin_fd);
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        throw std::system_error(errno, std::generic_category(), "socketpair");
    // Everything the child needs is made before fork: after it, only async-signal-safe calls.
    const std::string runner_s = runner.string(), plugin_s = plugin.string();
    const std::string mem = std::to_string(limits.memory_mb), files = std::to_string(limits.open_files),
                      warn = std::to_string(limits.warn_ms);
    std::vector<const char *> argv = {runner_s.c_str(),   "--channel",   "3",          "--plugin",    plugin_s.c_str(),
                                      "--memory-mb",      mem.c_str(),   "--open-files", files.c_str(), "--user",
                                      limits.user.c_str(), "--warn-ms",  warn.c_str(), "--rings",
                                      "4"};
    const std::string plugin_fd_s = std::to_string(3 + extra_fds.size());  // where it lands in the child
    if (plugin_fd >= 0) argv.insert(argv.end(), {"--plugin-fd", plugin_fd_s.c_str()});
    argv.push_back(nullptr);
    const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        ::close(fds[0]);
        ::close(fds[1]);
        if (devnull >= 0) ::close(devnull);
        throw std::system_error(e, std::generic_category(), "fork");
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);  // the host is already gone
        // Signals the host ignores or blocks must not carry over.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) ::signal(sig, SIG_DFL);
        // Out of the way first (a source may sit where another must go), then into place from 3 up.
        int moved[8];
        const std::size_t count = 1 + extra_fds.size();
        if (count > 8) ::_exit(127);
        moved[0] = ::fcntl(fds[1], F_DUPFD, 100);
        for (std::size_t i = 1; i < count; ++i) moved[i] = ::fcntl(extra_fds[i - 1], F_DUPFD, 100);
        for (std::size_t i = 0; i < count; ++i)
            if (moved[i] < 0 || ::dup2(moved[i], 3 + static_cast<int>(i)) < 0) ::_exit(127);
        if (devnull >= 0) {
            ::dup2(devnull, 0);
            ::dup2(devnull, 1);
        }
        close_from(3 + static_cast<int>(count));
        ::setsid();  // a Ctrl-C at the host's terminal is the host's to handle: it stops its runners itself
        ::execv(argv[0], const_cast<char *const *>(argv.data()));
        ::_exit(127);
    }
    ::close(fds[1]);
    if (devnull >= 0) ::close(devnull);
    return {pid, fds[0]};
}

std::string lower_privileges(const runner_limits &limits) {
    auto set = [](int resource, std::int64_t value, const char *name) -> std::string {
        if (value <= 0) return {};
        struct rlimit rl {};
        ::getrlimit(resource, &rl);
        rlim_t v = static_cast<rlim_t>(value);
        if (rl.rlim_max != RLIM_INFINITY && v > rl.rlim_max) v = rl.rlim_max;
        rl.rlim_cur = rl.rlim_max = v;
        if (::setrlimit(resource, &rl) != 0) return std::string(name) + ": " + std::strerror(errno);
        return {};
    };
    if (auto e = set(RLIMIT_AS, limits.memory_mb * 1024 * 1024, "RLIMIT_AS"); !e.empty()) return e;
    if (auto e = set(RLIMIT_NOFILE, limits.open_files, "RLIMIT_NOFILE"); !e.empty()) return e;
    if (::geteuid() == 0) {
        struct passwd *pw = ::getpwnam(limits.user.c_str());
        if (!pw) return "user '" + limits.user + "' does not exist";
        if (pw->pw_uid == 0) return "user '" + limits.user + "' is root";
        if (::setgroups(0, nullptr) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
            return "cannot become user '" + limits.user + "': " + std::strerror(errno);
        if (::setuid(0) == 0) return "still able to regain root after dropping privileges";
    }
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    return {};
}

fs::path default_runner_path() {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    return (ec ? fs::path(".") : self.parent_path()) / "firelink-runner";
}

std::string describe_exit(int status) {
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        return "killed by signal " + std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
    }
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    return "stopped";
}

}  // namespace firelink::isolation
