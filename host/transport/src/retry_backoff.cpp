#include "retry_backoff.hpp"

#include <algorithm>

namespace firelink::transport::detail {

retry_backoff::retry_backoff(backoff config) : config_(config), rng_(std::random_device{}()) {
    if (config_.initial.count() < 1) config_.initial = std::chrono::milliseconds(1);
    if (config_.max < config_.initial) config_.max = config_.initial;
}

std::chrono::milliseconds retry_backoff::next() {
    using ms = std::chrono::milliseconds;
    // Doubling stops once the cap is reached, so the shift never overflows.
    ms base = config_.initial;
    for (unsigned i = 0; i < attempt_ && base < config_.max; ++i) base *= 2;
    base = std::min(base, config_.max);
    if (base < config_.max) ++attempt_;
    const auto half = base.count() / 2;
    std::uniform_int_distribution<long long> jitter(0, base.count() - half);
    return ms(half + jitter(rng_));
}

}  // namespace firelink::transport::detail
