// The control thread's loop: every reconfiguration (a reload, SIGHUP, a test hook) runs on it, one at a time, and it
// ticks for systemd's watchdog, so a wedged control thread stops the pings. A job still queued when the host stops is
// cancelled instead (its waiter gets an answer at once).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

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

    // Runs `job` on the control thread and waits for it, at most `timeout`: its answer; `stopping` when the loop
    // stopped before the job ran; `late` when it did not finish in time. Any thread but the control thread.
    template <class T>
    T call(std::function<T()> job, clock::duration timeout, T stopping, T late) {
        auto done = std::make_shared<std::promise<T>>();
        auto answer = done->get_future();
        post([done, job = std::move(job)] { done->set_value(job()); },
             [done, stopping] { done->set_value(stopping); });
        return answer.wait_for(timeout) == std::future_status::ready ? answer.get() : late;
    }

    // SIGTERM and SIGINT stop the loop; SIGHUP posts `on_hangup` to it. Handled on `io` until ignore_signals().
    void handle_signals(boost::asio::io_context &io, std::function<void()> on_hangup);
    void ignore_signals();

private:
    void wait_for_signal();

    struct job {
        std::function<void()> run;
        std::function<void()> cancel;
    };
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<job> jobs_;
    bool stopping_ = false;
    std::unique_ptr<boost::asio::signal_set> signals_;
    std::function<void()> on_hangup_;
};

// An io_context run by `threads` threads until stop() (or destruction): what was posted before stop() may not run.
class loop_threads {
public:
    loop_threads(boost::asio::io_context &io, unsigned threads) : io_(io), work_(io.get_executor()) {
        for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([&io] { io.run(); });
    }
    ~loop_threads() { stop(); }
    loop_threads(const loop_threads &) = delete;
    loop_threads &operator=(const loop_threads &) = delete;
    unsigned size() const { return static_cast<unsigned>(threads_.size()); }
    void stop() {
        work_.reset();
        io_.stop();
        for (auto &t : threads_)
            if (t.joinable()) t.join();
    }

private:
    boost::asio::io_context &io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::vector<std::thread> threads_;
};

}  // namespace firelink::cli
