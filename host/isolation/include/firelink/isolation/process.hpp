// Starting a runner with the least it needs (docs/deployment.md, "[runner]" and "Plugin isolation"): the plugin file
// is checked before anything loads it; the runner inherits no descriptor besides its channel; it lowers its own
// limits and becomes a uid of its own (no other process has it: not the host, not another plugin's runner) before it
// loads the plugin, with no capability left and nothing that could take it back.
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
    std::string user = "nobody";     // uid 0: taken only when running as root (the one shared uid, uid_range "off")
    std::int64_t warn_ms = 100;      // a call into the driver longer than this is reported (the watchdog's warn_ms)
    // The runner's own uid (and gid, with no supplementary group); 0: none of its own ([runner] uid_range = "off").
    uid_t uid = 0;
};

// [runner] uid_range: the uids runners are given, one per plugin, first..last; first == 0 is "off" (every runner
// one shared uid: `user` when the host is root, the host's own otherwise). The default keeps below systemd's
// DynamicUser range (61184-65519), so no transient service shares a uid with a runner.
struct uid_range {
    uid_t first = 61000;
    uid_t last = 61183;
    bool off() const { return first == 0; }
    std::string text() const { return off() ? "off" : std::to_string(first) + "-" + std::to_string(last); }
};

// Whether this process may give a runner another uid and still kill it: CAP_SETUID and CAP_SETGID (to become it),
// CAP_KILL (to kill a hung runner of another uid), in the effective set; root has them, the service user
// (docs/deployment.md) gets them ambient from systemd. Empty when it may; else the refusal, saying what to configure.
std::string check_uid_capabilities();

// A uid of `range` for the runner of the plugin file `key`, the same one for the same key while it is held (a
// restarted runner keeps its uid) and, for the same set of plugin files, from one host start to the next: the
// first free id from a hash of the key, probing upward. Never the host's uid or gid, never 0, never an id an account
// or group already has (getpwuid, getgrgid: systemd's dynamic users too, through nss-systemd). Throws
// std::runtime_error, saying what to configure, when the range holds the host's ids or no id is left.
uid_t acquire_runner_uid(const uid_range &range, const std::string &key);
// Gives the uid back (the plugin is unloaded).
void release_runner_uid(uid_t uid);

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

// In the runner, before the plugin loads: sets the limits; becomes limits.uid (or, with none and when root,
// limits.user), with that gid and no supplementary group; gives up every capability (ambient, inheritable,
// permitted, effective, and the bounding set while it may); no new privileges; not dumpable (no ptrace, no core, no
// /proc/PID/mem for anyone else); dies with the host again (the uid change cleared PR_SET_PDEATHSIG). Then checks
// it: not root, not the ids it had, no capability, and no way back to any of them. Empty when done; else why not
// (the runner then refuses to load). The runner opens the plugin file before, and loads it through that descriptor.
std::string lower_privileges(const runner_limits &limits);

// The firelink-runner found from the running executable (firelink::layout: beside it, then the installed
// lib/firelink); empty when there is none.
std::filesystem::path default_runner_path();

// Why the runner cannot be started: `configured` ([runner] path) is not an executable file, or, with none
// configured, no candidate is (each path looked at is named); empty when it can.
std::string missing_runner(const std::filesystem::path &configured);

// "killed by signal 11 (SIGSEGV)", "exited with status 3", from a waitpid status.
std::string describe_exit(int wait_status);

}  // namespace firelink::isolation
