// Exponential backoff with jitter for reconnects: initial, 2x initial, 4x ... capped at max, each delay drawn from
// [d/2, d] so that many devices dropped by one outage do not all retry in the same instant.
#pragma once

#include <chrono>
#include <random>
#include <utility>

#include <firelink/transport/link.hpp>

namespace firelink::transport::detail {

class retry_backoff {
public:
    explicit retry_backoff(backoff config);

    // The delay before the next attempt; each call doubles the base delay up to the cap.
    std::chrono::milliseconds next();
    // Back to `initial`, after a connection that worked.
    void reset() { attempt_ = 0; }

    // The outage a wire is in, shared by every link so each logs an outage once and counts a reconnect once.
    // A fresh open(): no outage, first delay `initial`.
    void restart() {
        reset();
        troubled_ = quiet_ = false;
    }
    // An attempt failed. True for the first failure of an outage: log that one; the retries stay quiet.
    bool failed() {
        troubled_ = true;
        return !std::exchange(quiet_, true);
    }
    // The wire dropped after working: the next success is a reconnect.
    void dropped() { troubled_ = true; }
    // An attempt worked: back to `initial`. True when it ended an outage (count a reconnect).
    bool succeeded() {
        reset();
        quiet_ = false;
        return std::exchange(troubled_, false);
    }

private:
    backoff config_;
    unsigned attempt_ = 0;
    bool troubled_ = false;  // the last attempt failed or the wire dropped
    bool quiet_ = false;     // this outage was already logged
    std::minstd_rand rng_;
};

}  // namespace firelink::transport::detail
