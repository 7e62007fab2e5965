// The descriptors of a host: connections strangers may open must not take the ones devices need.
#pragma once

#include <firelink/site/site_config.hpp>

namespace firelink::cli {

// Raises the soft descriptor limit to the hard one, and scales the listeners' max_unbound and the admin port's
// max_connections in `cfg` down (each keeping at least one) when together they would leave less than a reserve for
// device connections, runners, the queue and the uplink. Logs what it decided.
void budget_descriptors(site::site_config &cfg);

}  // namespace firelink::cli
