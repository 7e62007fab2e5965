// POST /v1/events bodies (docs/uplink-protocol.md): msgpack in, checked records and the acknowledgement out.
// Pure functions: no I/O, no store, so the rules of the wire contract are in one place.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace firelink::receiver {

// A body that is not a batch at all (not msgpack, no gateway, a record without a usable seq, ...): the whole
// request is answered 400 with what() as its text.
struct bad_batch : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One record that follows the document, flattened into the columns the store keeps.
struct record_row {
    std::uint64_t seq = 0;
    std::string device, device_class, plugin;
    std::uint64_t device_seq = 0;
    std::string origin;
    std::int64_t wall_ms = 0;
    std::uint64_t monotonic_ns = 0;
    std::string boot_id;
    bool clock_synced = false;
    std::optional<std::string> site_json;  // absent when the record has no site
    std::string kind, code, severity;      // severity: as sent, else the kind's default (docs/events.md)
    std::optional<std::string> event_id, ends, command_id, message;
    std::optional<bool> ok;
    std::string event_json;  // the event map rendered as JSON: keys in wire order, binary as hex
    std::string raw;         // the record's own msgpack bytes, exactly as received
    // A re-report of a condition already raised (docs/uplink-protocol.md, "Re-reports"), and the key of the record
    // that first raised it, when the host named one.
    bool rereport = false;
    struct key {
        std::string epoch, lane;
        std::uint64_t seq = 0;
    };
    std::optional<key> repeats;
};

struct record_reject {
    std::uint64_t seq = 0;
    unsigned status = 422;
    std::string reason;
};

struct parsed_batch {
    std::string gateway, epoch, lane;
    std::vector<record_row> records;     // the records to store, ascending seq
    std::vector<record_reject> rejects;  // the records refused for their content, ascending seq
    std::uint64_t last_seq = 0;          // the batch's highest seq: acked_through once stored
};

// Parses and checks a batch. reject_device (fault injection) refuses every record of that device with 422.
// Throws bad_batch when the body as a whole does not follow the document.
parsed_batch parse_batch(std::string_view body, std::string_view reject_device = {});

// The 200 body: {"acked_through": {lane: last_seq}, "rejects": [{"seq", "status", "reason"}]}.
std::string encode_ack(const parsed_batch &batch);

// msgpack → JSON for people: keys in wire order; binary and ext as hex strings; NaN/inf as null; a non-string map
// key as its JSON text.
nlohmann::ordered_json to_json(const msgpack::object &o);

// JSON → msgpack (command args and the command poll answer). Integers stay integers, floats float64.
void pack_json(msgpack::packer<msgpack::sbuffer> &pk, const nlohmann::json &j);

bool is_lane(std::string_view lane);
// 0 alarm, 1 event, 2 telemetry: the writer's priority order.
int lane_rank(std::string_view lane);

}  // namespace firelink::receiver
