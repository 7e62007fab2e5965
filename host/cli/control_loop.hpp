// The control thread's loop: every reconfiguration (a reload, SIGHUP, a test hook) runs on it, one at a time, and it
// ticks for systemd's watchdog, so a wedged control thread stops the pings. A job still queued when the host stops is
// cancelled instead (its waiter gets an answer at once).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>

namespace firelink::cli {

class control_loop {
public:
    using clock = std::chrono::steady_clock;

    // Any thread. After stop(), `cancel` is called at once instead (when given).
    void post(std::function<void()> run, std::function<void()> cancel = {});
    // Any thread: run() returns after the job in progress.
    void stop();

    // On the control thread: runs jobs until stop() or `deadline`, calling on_tick() every `tick` from the first
    // iteration (clock::duration::max(): never). Cancels what is still queued before it returns.
    void run(clock::time_point deadline, clock::duration tick, const std::function<void()> &on_tick);

private:
    struct job {
        std::function<void()> run;
        std::function<void()> cancel;
    };
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<job> jobs_;
    bool stopping_ = false;
};

}  // namespace firelink::cli
