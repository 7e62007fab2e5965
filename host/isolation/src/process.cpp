#include "firelink/isolation/process.hpp"

#include <cerrno>
#include <cstdint>
#include <csignal>
#include <cstring>
#include <iterator>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <vector>

#include <linux/capability.h>

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

#include <firelink/layout/install_layout.hpp>

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
    const std::string uid = std::to_string(limits.uid);
    std::vector<const char *> argv = {runner_s.c_str(),   "--channel",   "3",          "--plugin",    plugin_s.c_str(),
                                      "--memory-mb",      mem.c_str(),   "--open-files", files.c_str(), "--user",
                                      limits.user.c_str(), "--warn-ms",  warn.c_str(), "--rings",
                                      "4"};
    if (limits.uid != 0) argv.insert(argv.end(), {"--uid", uid.c_str()});
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

namespace {

// The capability sets of this process (capget: no libcap needed), as 64-bit masks.
struct capability_sets {
    std::uint64_t effective = 0, permitted = 0, inheritable = 0;
};

bool read_capabilities(capability_sets &out) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
    if (::syscall(SYS_capget, &header, data) != 0) return false;
    auto mask = [&](auto member) {
        return static_cast<std::uint64_t>(data[0].*member) | static_cast<std::uint64_t>(data[1].*member) << 32;
    };
    out = {mask(&__user_cap_data_struct::effective), mask(&__user_cap_data_struct::permitted),
           mask(&__user_cap_data_struct::inheritable)};
    return true;
}

constexpr std::uint64_t bit(int cap) { return std::uint64_t{1} << cap; }

std::mutex uids_mutex;
std::set<uid_t> uids_held;  // by this host's runners (their supervisors)

// FNV-1a, 64 bits: the same on every build and every start (std::hash need not be).
std::uint64_t stable_hash(std::string_view s) {
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

// Every uid and gid the host has (real, effective, saved, supplementary).
std::vector<std::uint64_t> host_ids() {
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    ::getresuid(&ru, &eu, &su);
    ::getresgid(&rg, &eg, &sg);
    std::vector<std::uint64_t> ids = {ru, eu, su, rg, eg, sg};
    gid_t groups[256];
    const int n = ::getgroups(256, groups);
    for (int i = 0; i < n; ++i) ids.push_back(groups[i]);
    return ids;
}

// Whether an account or a group has the id (the reentrant calls: the host has other threads).
bool account_has(uid_t id) {
    char buf[16384];
    struct passwd pw {};
    struct passwd *pwp = nullptr;
    if (::getpwuid_r(id, &pw, buf, sizeof buf, &pwp) == 0 && pwp) return true;
    struct group gr {};
    struct group *grp = nullptr;
    return ::getgrgid_r(id, &gr, buf, sizeof buf, &grp) == 0 && grp;
}

}  // namespace

std::string check_uid_capabilities() {
    capability_sets caps;
    if (!read_capabilities(caps)) return std::string("cannot read this process's capabilities: ") + std::strerror(errno);
    std::string missing;
    for (auto [cap, name] : {std::pair{CAP_SETUID, "CAP_SETUID"}, {CAP_SETGID, "CAP_SETGID"}, {CAP_KILL, "CAP_KILL"}})
        if (!(caps.effective & bit(cap))) missing += (missing.empty() ? "" : ", ") + std::string(name);
    if (missing.empty()) return {};
    const std::string me = std::to_string(::geteuid());
    return "the host (uid " + me + ") lacks " + missing +
           ", which it needs to run each plugin's runner under a uid of its own ([runner] uid_range) and to kill it "
           "when hung: run the host as root, or give its service AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL "
           "(docs/deployment.md, \"Plugin isolation\"); or set [runner] uid_range = \"off\" to run every runner as "
           "uid " + me + ", the host's own, where any plugin can kill the host and the other plugins' runners";
}

uid_t acquire_runner_uid(const uid_range &range, const std::string &key) {
    if (range.off() || range.last < range.first) throw std::runtime_error("[runner] uid_range is off or empty");
    for (std::uint64_t id : host_ids())
        if (id >= range.first && id <= range.last)
            throw std::runtime_error("[runner] uid_range " + range.text() + " holds the host's own uid or gid " +
                                     std::to_string(id) + ": choose a range apart from every id the host has");
    const std::uint64_t size = static_cast<std::uint64_t>(range.last) - range.first + 1;
    const std::uint64_t start = stable_hash(key) % size;
    std::lock_guard lock(uids_mutex);
    std::uint64_t accounts = 0;
    for (std::uint64_t i = 0; i < size; ++i) {
        const uid_t id = static_cast<uid_t>(range.first + (start + i) % size);
        if (uids_held.count(id)) continue;
        // An account's or a group's id is someone else's: a runner given it could signal that user's processes or
        // read its files.
        if (account_has(id)) {
            ++accounts;
            continue;
        }
        uids_held.insert(id);
        return id;
    }
    throw std::runtime_error("[runner] uid_range " + range.text() + " has no uid left for " + key + " (" +
                             std::to_string(size) + " ids: " + std::to_string(uids_held.size()) +
                             " held by other plugins' runners, " + std::to_string(accounts) +
                             " taken by accounts or groups): widen the range, one uid per out-of-process plugin");
}

void release_runner_uid(uid_t uid) {
    std::lock_guard lock(uids_mutex);
    uids_held.erase(uid);
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
    // A uid change by system call is the calling thread's alone: another thread would keep the old ids.
    std::error_code ec;
    const auto threads = std::distance(fs::directory_iterator("/proc/self/task", ec), fs::directory_iterator());
    if (ec || threads != 1)
        return ec ? "/proc/self/task: " + ec.message() : std::to_string(threads) + " threads before dropping privileges";
    const pid_t host = ::getppid();
    uid_t old_ru, old_eu, old_su;
    gid_t old_rg, old_eg, old_sg;
    ::getresuid(&old_ru, &old_eu, &old_su);
    ::getresgid(&old_rg, &old_eg, &old_sg);

    uid_t uid = limits.uid;
    gid_t gid = limits.uid;
    if (uid == 0 && old_eu == 0) {  // uid_range "off", the host root: the one shared user
        struct passwd *pw = ::getpwnam(limits.user.c_str());
        if (!pw) return "user '" + limits.user + "' does not exist";
        if (pw->pw_uid == 0) return "user '" + limits.user + "' is root";
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    // While it still may: a capability the bounding set no longer has is one no later execve can give back.
    capability_sets caps;
    if (read_capabilities(caps) && (caps.effective & bit(CAP_SETPCAP)))
        for (int cap = 0; cap <= 63; ++cap)
            if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
    if (uid != 0) {
        // Raw system calls: the ids are numbers, no account need exist; the process is one thread yet.
        if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, gid, gid, gid) != 0 ||
            ::syscall(SYS_setresuid, uid, uid, uid) != 0)
            return "cannot become uid " + std::to_string(uid) + " gid " + std::to_string(gid) + ": " +
                   std::strerror(errno);
    }
    // From root, the uid change has cleared the capabilities; from a service user with ambient ones it has not.
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3]{};
        if (::syscall(SYS_capset, &header, none) != 0)
            return std::string("cannot give up its capabilities: ") + std::strerror(errno);
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return std::string("PR_SET_NO_NEW_PRIVS: ") + std::strerror(errno);
    // A process of another uid cannot ptrace this one anyway; not dumpable, nothing but root reads its memory
    // (/proc/PID/mem, environ, a core file with the site's secrets) even where a uid is shared.
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return std::string("PR_SET_DUMPABLE: ") + std::strerror(errno);
    // The uid change cleared the parent-death signal: set again, then make sure the host did not go meanwhile.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != host) return "the host is gone";

    // What it became, checked, not assumed.
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    ::getresuid(&ru, &eu, &su);
    ::getresgid(&rg, &eg, &sg);
    if (ru == 0 || eu == 0 || su == 0) return "still root after dropping privileges";
    if (uid != 0 && (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid))
        return "ids " + std::to_string(ru) + "/" + std::to_string(eu) + "/" + std::to_string(su) + " after becoming " +
               std::to_string(uid);
    if (uid != 0 && ::getgroups(0, nullptr) != 0) return "still in supplementary groups";
    if (!read_capabilities(caps)) return std::string("cannot read its capabilities: ") + std::strerror(errno);
    if (caps.effective || caps.permitted || caps.inheritable) return "capabilities left after giving them up";
    if (uid != 0) {
        for (uid_t back : {uid_t{0}, old_ru, old_eu, old_su})
            if (back != uid && ::syscall(SYS_setresuid, back, back, back) == 0)
                return "still able to regain uid " + std::to_string(back) + " after dropping privileges";
        for (gid_t back : {gid_t{0}, old_rg, old_eg, old_sg})
            if (back != gid && ::syscall(SYS_setresgid, back, back, back) == 0)
                return "still able to regain gid " + std::to_string(back) + " after dropping privileges";
    } else if (::syscall(SYS_setresuid, 0, 0, 0) == 0) {
        return "still able to regain root after dropping privileges";
    }
    return {};
}

fs::path default_runner_path() { return layout::first_executable(layout::runner_candidates()); }

std::string missing_runner(const fs::path &configured) {
    std::error_code ec;
    if (!configured.empty()) {
        if (fs::is_regular_file(configured, ec) && ::access(configured.c_str(), X_OK) == 0) return {};
        return "firelink-runner not found at " + configured.string() + " ([runner] path): " +
               (fs::exists(configured, ec) ? "not an executable file" : "no such file") +
               "; correct the path, or remove it to use the installed runner";
    }
    if (!default_runner_path().empty()) return {};
    return "firelink-runner not found: looked at " + layout::list_paths(layout::runner_candidates()) +
           "; install the firelink-host package (it puts the runner in lib/firelink beside the plugins), or name it "
           "with [runner] path";
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
