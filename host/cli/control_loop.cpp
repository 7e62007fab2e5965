#include "control_loop.hpp"

#include <csignal>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace firelink::cli {

void control_loop::post(std::function<void()> run, std::function<void()> cancel) {
    {
        std::lock_guard lock(mutex_);
        if (!stopping_) {
            jobs_.push_back({std::move(run), std::move(cancel)});
            cv_.notify_all();
            return;
        }
    }
    if (cancel) cancel();
}

void control_loop::stop() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    cv_.notify_all();
}

void control_loop::run(clock::time_point deadline, clock::duration tick, const std::function<void()> &on_tick) {
    auto next_tick = tick == clock::duration::max() ? clock::time_point::max() : clock::now();
    for (;;) {
        job next;
        {
            std::unique_lock lock(mutex_);
            cv_.wait_until(lock, std::min(deadline, next_tick), [&] { return stopping_ || !jobs_.empty(); });
            if (stopping_ || clock::now() >= deadline) {
                stopping_ = true;
                break;
            }
            if (!jobs_.empty()) {
                next = std::move(jobs_.front());
                jobs_.pop_front();
            }
        }
        if (const auto now = clock::now(); now >= next_tick) {
            on_tick();
            next_tick = now + tick;  // from now, not from the last tick: a late tick is not followed by a hasty one
        }
        if (next.run) next.run();
    }
    std::deque<job> left;
    {
        std::lock_guard lock(mutex_);
        left.swap(jobs_);
    }
    for (auto &j : left)
        if (j.cancel) j.cancel();
}

void control_loop::handle_signals(boost::asio::io_context &io, std::function<void()> on_hangup) {
    on_hangup_ = std::move(on_hangup);
    signals_ = std::make_unique<boost::asio::signal_set>(io, SIGINT, SIGTERM, SIGHUP);
    wait_for_signal();
}

void control_loop::wait_for_signal() {
    signals_->async_wait([this](const boost::system::error_code &ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
            post(on_hangup_);
            wait_for_signal();
            return;
        }
        spdlog::info("signal {}: stopping", sig);
        stop();
    });
}

void control_loop::ignore_signals() {
    if (signals_) signals_->cancel();
}

}  // namespace firelink::cli
