#include "firelink/uplink/record.hpp"

#include <msgpack.hpp>

#include <firelink/pipeline/sinks.hpp>

namespace firelink::uplink {

namespace {

struct byte_buffer {
    std::vector<std::uint8_t> &out;
    void write(const char *p, std::size_t n) { out.insert(out.end(), p, p + n); }
};

template <typename Packer>
void pack_str(Packer &pk, std::string_view s) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

std::vector<std::uint8_t> encode(const std::string &gateway_device, const std::string &device_class,
                                 const std::string &plugin, std::uint64_t device_seq, bool from_host, bool rereport,
                                 std::chrono::system_clock::time_point wall,
                                 std::chrono::steady_clock::time_point monotonic,
                                 const std::map<std::string, std::string> *site,
                                 const std::vector<std::uint8_t> &payload, std::uint32_t &pairs) {
    std::vector<std::uint8_t> out;
    out.reserve(160 + payload.size());
    byte_buffer buf{out};
    msgpack::packer<byte_buffer> pk(buf);
    pairs = 7;
    pack_str(pk, "device");
    pack_str(pk, gateway_device);
    pack_str(pk, "class");
    pack_str(pk, device_class);
    pack_str(pk, "plugin");
    pack_str(pk, plugin);
    pack_str(pk, "device_seq");
    pk.pack_uint64(device_seq);
    pack_str(pk, "origin");
    pack_str(pk, from_host ? "host" : "driver");
    if (rereport) {
        ++pairs;
        pack_str(pk, "rereport");
        pk.pack_true();
    }
    pack_str(pk, "received");
    pk.pack_map(4);
    pack_str(pk, "wall_ms");
    pk.pack_int64(std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count());
    pack_str(pk, "monotonic_ns");
    pk.pack_int64(monotonic.time_since_epoch().count());
    pack_str(pk, "boot_id");
    pack_str(pk, pipeline::boot_id());
    pack_str(pk, "clock_synced");
    if (pipeline::clock_synced()) pk.pack_true();
    else pk.pack_false();
    std::uint32_t site_entries = 0;
    if (site)
        for (const auto &[k, v] : *site) site_entries += !v.empty();
    if (site_entries) {
        ++pairs;
        pack_str(pk, "site");
        pk.pack_map(site_entries);
        for (const auto &[k, v] : *site) {
            if (v.empty()) continue;
            pack_str(pk, k);
            pack_str(pk, v);
        }
    }
    pack_str(pk, "event");
    out.insert(out.end(), payload.begin(), payload.end());  // already one msgpack map, checked at the boundary
    return out;
}

}  // namespace

std::vector<std::uint8_t> encode_record(const core::accepted_event &ev, std::uint32_t &pairs) {
    return encode(ev.device_id, ev.device_class, ev.plugin_id, ev.sequence, ev.from_host, ev.rereport(),
                  ev.received_wall, ev.received_monotonic, ev.site.get(), ev.payload, pairs);
}

core::accepted_event gateway_event(const std::string &gateway_id, std::uint64_t gateway_seq, std::string kind,
                                   std::vector<std::uint8_t> event_payload) {
    core::accepted_event ev;
    ev.gateway_id = gateway_id;
    ev.plugin_id = "firelink-host";
    ev.device_id = gateway_id;
    ev.device_class = "gateway";
    ev.sequence = gateway_seq;
    ev.from_host = true;
    ev.kind = std::move(kind);
    ev.received_wall = std::chrono::system_clock::now();
    ev.received_monotonic = std::chrono::steady_clock::now();
    ev.payload = std::move(event_payload);
    return ev;
}

void append_repeats(std::vector<std::uint8_t> &body, std::uint32_t &pairs, std::string_view epoch, core::lane l,
                    std::uint64_t seq) {
    byte_buffer buf{body};
    msgpack::packer<byte_buffer> pk(buf);
    ++pairs;
    pack_str(pk, "repeats");
    pk.pack_map(3);
    pack_str(pk, "epoch");
    pack_str(pk, epoch);
    pack_str(pk, "lane");
    pack_str(pk, core::to_string(l));
    pack_str(pk, "seq");
    pk.pack_uint64(seq);
}

std::vector<std::uint8_t> full_record(std::uint64_t seq, std::uint32_t pairs, const std::vector<std::uint8_t> &body) {
    std::vector<std::uint8_t> out;
    out.reserve(body.size() + 16);
    byte_buffer buf{out};
    msgpack::packer<byte_buffer> pk(buf);
    pk.pack_map(pairs + 1);
    pack_str(pk, "seq");
    pk.pack_uint64(seq);
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

}  // namespace firelink::uplink
