// Starting a runner with the least it needs (docs/deployment.md, "[runner]"): the plugin file is checked before
// anything loads it; the runner inherits no descriptor besides its channel; it lowers its own limits and, when
// started as root, becomes an unprivileged user before it loads the plugin.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>
#include <sys/types.h>

namespace firelink::isolation {

// Checks a plugin file before it is loaded: a regular file (symlinks resolved), neither it nor its folder writable
// by group or others, owned by root or by the user checking. Empty when it passes; else why not.
std::string check_plugin_file(const std::filesystem::path &file);

struct runner_limits {
    std::int64_t memory_mb = 1024;   // RLIMIT_AS; 0 = unchanged
    std::int64_t open_files = 1024;  // RLIMIT_NOFILE; 0 = unchanged
    std::string user = "nobody";     // taken only when running as root
    std::int64_t warn_ms = 100;      // a call into the driver longer than this is reported (the watchdog's warn_ms)
};

struct runner_process {
    pid_t pid = -1;
    int fd = -1;  // the host's end of the channel
};

// Starts `runner` for `plugin`: the runner gets its end of a new socket pair as descriptor 3, `extra_fds` as 4, 5,
// ... (the event rings, the bell), /dev/null as stdin and stdout, the host's stderr, and no other descriptor; it dies
// with the host (PR_SET_PDEATHSIG). Throws std::system_error when the socket pair or the process cannot be made.
// `plugin_fd` >= 0: the plugin file as the host opened (and checked) it, given to the runner after `extra_fds`
// (--plugin-fd), which loads through it instead of opening `plugin` again.
runner_process spawn_runner(const std::filesystem::path &runner, const std::filesystem::path &plugin,
                            const runner_limits &limits, const std::vector<int> &extra_fds = {}, int plugin_fd = -1);

// In the runner, before the plugin loads: sets the limits and, when root, becomes limits.user (groups dropped,
// no new privileges). Empty when done; else why not (the runner then refuses to load). The runner opens the plugin
// file before, and loads it through that descriptor.
std::string lower_privileges(const runner_limits &limits);

// The firelink-runner beside the running executable.
std::filesystem::path default_runner_path();

// "killed by signal 11 (SIGSEGV)", "exited with status 3", from a waitpid status.
std::string describe_exit(int wait_status);

}  // namespace firelink::isolation
