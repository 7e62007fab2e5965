#include "descriptor_budget.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sys/resource.h>

#include <spdlog/spdlog.h>

namespace firelink::cli {

// Each connection a listener holds unbound, or the admin port holds, is a descriptor a stranger chose to take. The
// soft limit is raised to the hard one, and those caps together kept within it less a reserve, so that device
// connections, runners (socketpairs, memfds), the queue and the uplink always find descriptors, whatever connects.
void budget_descriptors(site::site_config &cfg) {
    struct rlimit rl {};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        spdlog::warn("descriptors: getrlimit(RLIMIT_NOFILE): {}", std::strerror(errno));
        return;
    }
    const rlim_t before = rl.rlim_cur;
    // An unlimited hard limit is still capped by the kernel (fs.nr_open, 1048576 by default), which refuses more.
    const rlim_t target = rl.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_max;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            spdlog::warn("descriptors: cannot raise the limit from {} to {}: {}", before, target,
                         std::strerror(errno));
            rl.rlim_cur = before;
        }
    }
    const auto limit = static_cast<std::size_t>(std::min<rlim_t>(rl.rlim_cur, 1 << 30));
    const std::size_t reserve = std::max<std::size_t>(256, limit / 4);
    const std::size_t budget = limit > reserve ? limit - reserve : 0;
    std::size_t wanted = cfg.admin_max_connections;
    for (const auto &l : cfg.listeners) wanted += l.max_unbound;
    spdlog::info("descriptors: limit {} (was {}); {} kept for devices, runners and the uplink; listeners' unbound "
                 "connections and the admin port may hold {} of the rest",
                 limit, before, reserve, std::min(wanted, budget));
    if (wanted <= budget) return;
    // Scaled down alike, each keeping at least one: the site asked for more than the machine allows.
    const auto scaled = [&](std::size_t n) { return std::max<std::size_t>(1, n * budget / wanted); };
    spdlog::warn("descriptors: [[listener]] max_unbound and [admin] max_connections add up to {}, more than the {} "
                 "the limit leaves; each is scaled down to fit (raise the hard limit, e.g. LimitNOFILE=, to keep them)",
                 wanted, budget);
    cfg.admin_max_connections = scaled(cfg.admin_max_connections);
    for (auto &l : cfg.listeners) l.max_unbound = scaled(l.max_unbound);
}

}  // namespace firelink::cli
