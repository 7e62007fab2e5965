// The record of one event on the uplink (docs/uplink-protocol.md, "POST /v1/events"): who sent it, when the host
// received it, and the event itself. Queued as msgpack key-value pairs without the map header and `seq`, which the
// lane gives at commit; full_record() makes the map the platform receives.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <firelink/core/device_runtime.hpp>
#include <firelink/core/lanes.hpp>

namespace firelink::uplink {

// The pairs of an accepted event's record; `pairs` is set to their count.
std::vector<std::uint8_t> encode_record(const core::accepted_event &ev, std::uint32_t &pairs);

// A gateway event as an accepted event (device = gateway id, class `gateway`, plugin `firelink-host`, origin host),
// received now: encode_record() makes its record for the platform, and the host's local record writes the same.
core::accepted_event gateway_event(const std::string &gateway_id, std::uint64_t gateway_seq, std::string kind,
                                   std::vector<std::uint8_t> event_payload);

// Appends the pair `repeats`, {epoch, lane, seq}: the key of the record that first raised the condition a re-report
// repeats (docs/uplink-protocol.md, "Re-reports"). The queue adds it when it commits the re-report, the only time the
// key is known; `pairs` is incremented.
void append_repeats(std::vector<std::uint8_t> &body, std::uint32_t &pairs, std::string_view epoch, core::lane l,
                    std::uint64_t seq);

// The whole record: a map of `seq` and the pairs.
std::vector<std::uint8_t> full_record(std::uint64_t seq, std::uint32_t pairs, const std::vector<std::uint8_t> &body);

}  // namespace firelink::uplink
