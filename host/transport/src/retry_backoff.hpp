// Exponential backoff with jitter for reconnects: initial, 2x initial, 4x ... capped at max, each delay drawn from
// [d/2, d] so that many devices dropped by one outage do not all retry in the same instant.
#pragma once

#include <chrono>
#include <random>

#include <firelink/transport/link.hpp>

namespace firelink::transport::detail {

class retry_backoff {
public:
    explicit retry_backoff(backoff config);

    // The delay before the next attempt; each call doubles the base delay up to the cap.
    std::chrono::milliseconds next();
    // Back to `initial`, after a connection that worked.
    void reset() { attempt_ = 0; }

private:
    backoff config_;
    unsigned attempt_ = 0;
    std::minstd_rand rng_;
};

}  // namespace firelink::transport::detail
