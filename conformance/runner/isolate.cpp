#include "isolate.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace firelink::conform {

namespace {

void write_all(int fd, const std::string &s) {
    std::size_t at = 0;
    while (at < s.size()) {
        const ssize_t n = ::write(fd, s.data() + at, s.size() - at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        at += static_cast<std::size_t>(n);
    }
}

std::string signal_name(int sig) {
    const char *abbrev = sigabbrev_np(sig);
    return std::string("signal ") + std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
}

}  // namespace

isolated_result run_isolated(const std::function<void(findings &, std::string &)> &work,
                             std::chrono::milliseconds timeout, bool keep_output) {
    using clock = std::chrono::steady_clock;
    isolated_result r;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        r.result = status::crashed;
        r.message = std::string("pipe: ") + std::strerror(errno);
        return r;
    }
    const auto t0 = clock::now();
    const pid_t pid = ::fork();
    if (pid < 0) {
        r.result = status::crashed;
        r.message = std::string("fork: ") + std::strerror(errno);
        ::close(fds[0]);
        ::close(fds[1]);
        return r;
    }
    if (pid == 0) {
        ::close(fds[0]);
        ::setpgid(0, 0);  // so a timeout kills whatever the plugin spawned too
        if (!keep_output) {
            const int null = ::open("/dev/null", O_WRONLY);
            if (null >= 0) {
                ::dup2(null, 1);
                ::dup2(null, 2);
                ::close(null);
            }
        }
        findings f;
        std::string payload;
        try {
            work(f, payload);
        } catch (const std::exception &e) {
            f.fail(std::string("exception escaped into the suite: ") + e.what());
        } catch (...) {
            f.fail("an unknown exception escaped into the suite");
        }
        std::string msg = f.message();
        for (auto &c : msg)
            if (c == '\n') c = ' ';
        write_all(fds[1], std::string(to_string(f.verdict())) + " " + std::to_string(f.driver_events()) + "\n" + msg + "\n" +
                             payload);
        ::close(fds[1]);
        ::_exit(0);  // no static destructors: the plugin may still hold threads
    }
    ::setpgid(pid, pid);
    ::close(fds[1]);
    std::string out;
    bool timed_out = false;
    const auto deadline = t0 + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        char buf[4096];
        const ssize_t got = ::read(fds[0], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;  // EOF: the child wrote its result or died
        out.append(buf, static_cast<std::size_t>(got));
    }
    ::close(fds[0]);
    int wstatus = 0;
    if (timed_out) {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
    } else {
        // EOF came; give the child a moment to exit, then stop waiting for a zombie-to-be.
        for (int i = 0; i < 200; ++i) {
            if (::waitpid(pid, &wstatus, WNOHANG) == pid) goto reaped;
            ::usleep(10 * 1000);
            if (clock::now() > deadline) break;
        }
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
    }
    ::waitpid(pid, &wstatus, 0);
reaped:
    r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
    if (timed_out) {
        r.result = status::timeout;
        r.message = "no result after " + std::to_string(timeout.count()) + " ms: a call into the plugin hangs";
        return r;
    }
    if (WIFSIGNALED(wstatus) && out.empty()) {
        r.result = status::crashed;
        r.message = "the plugin crashed: " + signal_name(WTERMSIG(wstatus));
        return r;
    }
    const auto nl = out.find('\n');
    if (nl == std::string::npos) {
        r.result = status::crashed;
        r.message = WIFEXITED(wstatus) ? "the process exited with code " + std::to_string(WEXITSTATUS(wstatus)) +
                                             " before reporting (the plugin called exit?)"
                                       : "the plugin crashed: " + signal_name(WTERMSIG(wstatus));
        return r;
    }
    // "<status> <driver events seen>"
    const std::string first = out.substr(0, nl);
    const std::string word = first.substr(0, first.find(' '));
    if (const auto sp = first.find(' '); sp != std::string::npos)
        r.driver_events = std::strtoull(first.c_str() + sp + 1, nullptr, 10);
    const auto nl2 = out.find('\n', nl + 1);
    r.message = out.substr(nl + 1, nl2 == std::string::npos ? std::string::npos : nl2 - nl - 1);
    if (nl2 != std::string::npos) r.payload = out.substr(nl2 + 1);
    r.result = word == "failed"    ? status::failed
               : word == "warning" ? status::warning
               : word == "skipped" ? status::skipped
               : word == "not_exercised" ? status::not_exercised
                                   : status::passed;
    return r;
}

}  // namespace firelink::conform
