// [[bus]], [[listener]], [[device]]: each read on its own, then checked against the others (ids unique, references
// defined, one device per point-to-point bus, one device per unit on a shared bus and per peer/identity on a listener).
#include "address.hpp"
#include "firelink/site/driver_config.hpp"
#include "names.hpp"
#include "sections.hpp"

#include <firelink/site/suggest.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <utility>

namespace firelink::site::detail {

namespace {

using namespace std::chrono;

constexpr std::array<unsigned, 8> baud_rates = {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200};

// The bus or listener (`key`) a device names by the id at `key`, or nullptr: none named (a missing key is
// reported by the read), or one that none of `defined` is, which is reported with the nearest defined id.
template <class Config>
const Config *referenced(table_reader &r, std::string_view key, const std::vector<Config> &defined) {
    const auto id = r.string(key, need::required);
    if (!id) return nullptr;
    for (const auto &c : defined)
        if (c.id == *id) return &c;
    std::vector<std::string> ids;
    for (const auto &c : defined) ids.push_back(c.id);
    r.error(key, std::string(key) + " '" + *id + "' is not defined" + did_you_mean(*id, ids));
    return nullptr;
}

// The first holder of a name (an id, a path, a unit on a bus, ...), for "... (first at file:line:column)".
struct first_holder {
    std::string name;  // the bus, listener or device that holds it
    source_position where;
};

class wiring_reader {
public:
    wiring_reader(load_context &cx, site_config &out) : cx_(cx), out_(out) {}

    void bus(const toml::table &t, const std::string &path);
    void listener(const toml::table &t, const std::string &path);
    void device(const toml::table &t, const std::string &path);

private:
    // Reads an id and reports a bad or repeated one; `what` is "bus", "listener" or "device". Returns the id even
    // then, so that references to it do not add "is not defined" to the report.
    std::optional<std::string> unique_id(table_reader &r, std::string_view what,
                                         std::map<std::string, source_position> &seen);
    std::string at(const source_position &p) const { return cx_.diag.at_text(p); }

    void wire(table_reader &device, const device_config &d, wire_config &out);
    void bus_wire(table_reader &r, const device_config &d, wire_config &out);
    void listener_wire(table_reader &r, const device_config &d, wire_config &out);
    void site_metadata_of(table_reader &device, site_metadata &out);

    load_context &cx_;
    site_config &out_;
    std::map<std::string, source_position> bus_ids_, listener_ids_, device_ids_;
    std::map<std::string, first_holder> bus_paths_, listen_addresses_;
    std::map<std::string, first_holder> serial_bus_device_;                       // bus id -> its one device
    std::map<std::pair<std::string, std::int64_t>, first_holder> bus_units_;      // (bus id, unit) -> device
    std::map<std::pair<std::string, std::string>, first_holder> listener_binds_;  // (listener, "peer x") -> device
};

std::optional<std::string> wiring_reader::unique_id(table_reader &r, std::string_view what,
                                                    std::map<std::string, source_position> &seen) {
    auto id = r.string("id", need::required);
    if (!id) return std::nullopt;
    if (!is_site_id(*id)) {
        r.error("id", "expected " + std::string(site_id_rule) + ", got " + in_quotes(*id));
        return id;
    }
    const auto [it, fresh] = seen.emplace(*id, cx_.diag.where(r.table().source()));
    if (!fresh) r.error("id", "duplicate " + std::string(what) + " id '" + *id + "' (first at " + at(it->second) + ")");
    return id;
}

void wiring_reader::bus(const toml::table &t, const std::string &path) {
    table_reader r(
        t, path, cx_.diag,
        {"id", "kind", "path", "baud", "data_bits", "parity", "stop_bits", "request_timeout_ms", "inter_frame_gap_ms"});
    bus_config b;
    b.where = cx_.diag.where(t.source());
    if (auto id = unique_id(r, "bus", bus_ids_)) b.id = *id;
    if (auto kind = r.choice("kind", {"rs485", "serial"}, need::required)) b.shared = *kind == "rs485";
    if (auto device_path = r.nonempty_string("path", need::required)) {
        const auto [it, fresh] = bus_paths_.emplace(*device_path, first_holder{b.id, b.where});
        if (fresh)
            b.serial.path = *device_path;
        else
            r.error("path", "device path " + in_quotes(*device_path) + " is already used by bus '" + it->second.name +
                                "' (first at " + at(it->second.where) + ")");
    }
    if (const toml::node *n = r.find("baud")) {
        std::string expected = "one of ";
        for (const unsigned rate : baud_rates) expected += std::to_string(rate) + (rate == 115200 ? "" : ", ");
        if (!n->is_integer())
            r.wrong_type("baud", expected);
        else if (const auto v = n->as_integer()->get();
                 std::find(baud_rates.begin(), baud_rates.end(), v) == baud_rates.end())
            r.error("baud", "expected " + expected + ", got " + std::to_string(v));
        else
            b.serial.baud = static_cast<unsigned>(v);
    }
    if (auto v = r.integer("data_bits", 5, 8, need::optional)) b.serial.data_bits = static_cast<unsigned>(*v);
    if (auto v = r.choice("parity", {"none", "even", "odd"}, need::optional))
        b.serial.parity = *v == "none" ? 'N' : *v == "even" ? 'E' : 'O';
    if (const toml::node *n = r.find("stop_bits")) {
        if (!n->is_integer())
            r.wrong_type("stop_bits", "1 or 2");
        else if (const auto v = n->as_integer()->get(); v != 1 && v != 2)
            r.error("stop_bits", "expected 1 or 2, got " + std::to_string(v));
        else
            b.serial.stop_bits = static_cast<unsigned>(v);
    }
    if (auto v = r.integer("request_timeout_ms", 1, 60000, need::optional)) b.request_timeout = milliseconds(*v);
    if (auto v = r.integer("inter_frame_gap_ms", 0, 10000, need::optional)) b.inter_frame_gap = milliseconds(*v);
    out_.buses.push_back(std::move(b));
}

void wiring_reader::listener(const toml::table &t, const std::string &path) {
    table_reader r(t, path, cx_.diag, {"id", "listen", "max_unbound", "identify_timeout_ms"});
    listener_config l;
    l.where = cx_.diag.where(t.source());
    if (auto id = unique_id(r, "listener", listener_ids_)) l.id = *id;
    if (auto listen = r.string("listen", need::required)) {
        std::string expected;
        auto hp = parse_host_port(*listen, 0, expected);
        if (hp && !canonical_ip(hp->host)) {
            // A listener binds an address of this gateway: a name would have to be resolved at start, and could
            // resolve to several; say the address.
            r.error("listen", "expected an IP address to listen on (e.g. \"0.0.0.0:5000\" or \"127.0.0.1:5000\"), "
                              "got " + in_quotes(*listen));
        } else if (hp) {
            hp->host = *canonical_ip(hp->host);
            // Port 0 asks the system for a free port (tests), so it never collides.
            const std::string address = hp->host + " port " + std::to_string(hp->port);
            const auto [it, fresh] = listen_addresses_.emplace(address, first_holder{l.id, l.where});
            if (hp->port != 0 && !fresh)
                r.error("listen", "address " + in_quotes(*listen) + " is already used by listener '" + it->second.name +
                                      "' (first at " + at(it->second.where) + ")");
            l.address = hp->host;
            l.port = hp->port;
        } else {
            r.error("listen", "expected " + expected + ", got " + in_quotes(*listen));
        }
    }
    if (auto v = r.integer("max_unbound", 1, 4096, need::optional)) l.max_unbound = static_cast<std::size_t>(*v);
    if (auto v = r.integer("identify_timeout_ms", 100, 600000, need::optional)) l.identify_timeout = milliseconds(*v);
    out_.listeners.push_back(std::move(l));
}

void wiring_reader::device(const toml::table &t, const std::string &path) {
    table_reader r(t, path, cx_.diag,
                   {"id", "driver", "plugin", "class", "enabled", "heartbeat_s", "wire", "site", "tags", "config"});
    device_config d;
    d.where = cx_.diag.where(t.source());
    d.path = path;
    d.config_where = d.where;
    if (auto id = unique_id(r, "device", device_ids_)) d.id = *id;
    if (auto driver = r.matching("driver", is_driver_id, driver_id_rule, need::required)) d.driver = *driver;
    if (auto plugin = r.matching("plugin", is_reverse_dns, plugin_id_rule, need::optional)) d.plugin = *plugin;
    if (auto device_class = r.matching("class", is_device_class, device_class_rule, need::required)) d.device_class = *device_class;
    if (auto enabled = r.boolean("enabled", need::optional)) d.enabled = *enabled;
    if (auto s = r.integer("heartbeat_s", 0, 86400, need::optional)) d.heartbeat = seconds(*s);
    wire(r, d, d.wire);
    site_metadata_of(r, d.meta);
    if (auto tags = r.strings("tags", need::optional)) d.tags = std::move(*tags);
    if (r.has("config")) {
        if (const toml::table *config = r.subtable("config", need::optional)) {
            d.driver_config = to_msgpack(*config);
            d.config_where = cx_.diag.where(config->source());
            for (const auto &[key, value] : *config)
                d.config_keys[std::string(key.str())] = cx_.diag.where(value.source());
        }
    } else {
        d.driver_config = to_msgpack(toml::table{});
    }
    out_.devices.push_back(std::move(d));
}

void wiring_reader::site_metadata_of(table_reader &device, site_metadata &out) {
    const toml::table *t = device.subtable("site", need::optional);
    if (!t) return;
    table_reader r(*t, device.path("site"), cx_.diag, {"site", "building", "floor", "location", "sector"});
    if (auto v = r.string("site", need::optional)) out.site = *v;
    if (auto v = r.string("building", need::optional)) out.building = *v;
    if (auto v = r.string("floor", need::optional)) out.floor = *v;
    if (auto v = r.string("location", need::optional)) out.location = *v;
    if (const toml::node *n = r.find("sector")) {
        std::string expected = "one of ";
        for (const auto &s : sectors()) expected += s + (&s == &sectors().back() ? "" : ", ");
        if (!n->is_string())
            r.wrong_type("sector", expected);
        else if (const auto &s = n->as_string()->get();
                 std::find(sectors().begin(), sectors().end(), s) == sectors().end())
            r.error("sector", "expected " + expected + ", got " + in_quotes(s));
        else
            out.sector = s;
    }
}

void wiring_reader::wire(table_reader &device, const device_config &d, wire_config &out) {
    const toml::node *n = device.find("wire");
    if (!n) return;
    if (!n->is_table())
        return device.wrong_type("wire", "a table ({ bus = ... }, { tcp = ... }, { udp = ... } or { listener = ... })");
    table_reader r(*n->as_table(), device.path("wire"), cx_.diag,
                   {"bus", "tcp", "udp", "listener", "unit", "peer", "identity", "allow_peers"});
    if (r.table().empty()) return;  // {} = no wire

    std::vector<std::string_view> forms;
    for (const std::string_view form : {"bus", "tcp", "udp", "listener"})
        if (r.has(form)) forms.push_back(form);
    if (forms.empty()) {
        cx_.diag.error(r.table().source(), r.path(),
                       "expected one of the keys bus, tcp, udp, listener (or {} for no wire)");
        return;
    }
    if (forms.size() > 1) {
        std::string got;
        for (std::size_t i = 0; i < forms.size(); ++i)
            got += std::string(i == 0 ? "" : i + 1 == forms.size() ? " and " : ", ") + std::string(forms[i]);
        cx_.diag.error(r.table().source(), r.path(), "expected exactly one of bus, tcp, udp, listener, got " + got);
        return;
    }

    // Keys the other forms use are reported as not belonging to this one.
    const std::string_view form = forms.front();
    const std::map<std::string_view, std::vector<std::string_view>> form_keys = {
        {"bus", {"bus", "unit"}},
        {"tcp", {"tcp", "unit"}},
        {"udp", {"udp"}},
        {"listener", {"listener", "peer", "identity", "allow_peers"}}};
    const auto &allowed = form_keys.at(form);
    std::string takes;
    for (const auto k : allowed) takes += (takes.empty() ? "" : ", ") + std::string(k);
    for (const std::string_view k : {"unit", "peer", "identity", "allow_peers"})
        if (r.has(k) && std::find(allowed.begin(), allowed.end(), k) == allowed.end())
            r.error(k, "not used by a " + std::string(form) + " wire (it takes: " + takes + ")");

    if (form == "bus") return bus_wire(r, d, out);
    if (form == "listener") return listener_wire(r, d, out);

    // tcp and udp: an endpoint the host connects or sends to.
    if (auto endpoint = r.string(form, need::required)) {
        std::string expected;
        if (auto hp = parse_host_port(*endpoint, 1, expected)) {
            out.type = form == "tcp" ? wire_config::kind::tcp_client : wire_config::kind::udp;
            out.host = hp->host;
            out.port = hp->port;
        } else {
            r.error(form, "expected " + expected + ", got " + in_quotes(*endpoint));
        }
    }
    if (form == "tcp")
        if (auto unit = r.integer("unit", 0, 255, need::optional)) out.unit = static_cast<int>(*unit);
}

void wiring_reader::bus_wire(table_reader &r, const device_config &d, wire_config &out) {
    const bus_config *bus = referenced(r, "bus", out_.buses);
    // A shared bus addresses its devices by unit; a point-to-point bus needs none.
    const bool unit_required = bus && bus->shared;
    if (unit_required && !r.has("unit")) {
        r.missing("unit", "an integer from 0 to 247: the device's address on rs485 bus '" + bus->id + "'");
    }
    const auto unit = r.integer("unit", 0, 247, need::optional);
    if (unit) out.unit = static_cast<int>(*unit);
    if (!bus) return;
    out.type = wire_config::kind::bus;
    out.bus = bus->id;

    const first_holder me{d.id, d.where};
    if (!bus->shared) {
        const auto [it, fresh] = serial_bus_device_.emplace(bus->id, me);
        if (!fresh)
            r.error("bus", "bus '" + bus->id + "' is a serial (point-to-point) bus and already carries device '" +
                               it->second.name + "' (first at " + at(it->second.where) + ")");
    } else if (unit) {
        const auto [it, fresh] = bus_units_.emplace(std::pair{bus->id, *unit}, me);
        if (!fresh)
            r.error("unit", "unit " + std::to_string(*unit) + " on bus '" + bus->id + "' is already device '" +
                                it->second.name + "' (first at " + at(it->second.where) + ")");
    }
}

void wiring_reader::listener_wire(table_reader &r, const device_config &d, wire_config &out) {
    const listener_config *listener = referenced(r, "listener", out_.listeners);

    const bool has_peer = r.has("peer"), has_identity = r.has("identity");
    if (has_peer == has_identity) {
        cx_.diag.error(r.table().source(), r.path(),
                       std::string("expected peer (an IP address) or identity (a string), got ") +
                           (has_peer ? "both" : "neither"));
        return;
    }
    std::string bind;  // "peer 10.0.0.5" or "identity \"X\"": what must be unique on the listener
    std::string_view key = has_peer ? "peer" : "identity";
    if (has_peer) {
        if (auto peer = r.string("peer", need::required)) {
            if (auto ip = canonical_ip(*peer)) {
                out.peer = *ip;
                bind = "peer " + *ip;
            } else {
                r.error("peer", "expected an IP address, got " + in_quotes(*peer));
            }
        }
    } else if (auto identity = r.nonempty_string("identity", need::required)) {
        out.identity = *identity;
        bind = "identity " + in_quotes(*identity);
    }
    if (const toml::node *allow = r.find("allow_peers")) {
        const std::string expected = "an array of IP addresses or networks, e.g. [\"10.0.0.7\", \"10.0.1.0/24\"]";
        if (has_peer) {
            r.error("allow_peers", "not used with peer (the peer is the only address a peer-bound device takes)");
        } else if (!allow->is_array() || allow->as_array()->empty()) {
            r.wrong_type("allow_peers", expected);
        } else {
            const toml::array &a = *allow->as_array();
            for (std::size_t i = 0; i < a.size(); ++i) {
                const toml::node &e = a[i];
                const std::string key = r.path("allow_peers") + "[" + std::to_string(i) + "]";
                const auto text = e.is_string() ? e.as_string()->get() : std::string();
                const auto slash = text.find('/');
                const auto ip = canonical_ip(text.substr(0, slash));
                int prefix = -1;
                if (ip && slash != std::string::npos) {
                    const auto digits = text.substr(slash + 1);
                    const int bits = ip->find(':') == std::string::npos ? 32 : 128;
                    if (!digits.empty() && digits.size() <= 3 &&
                        digits.find_first_not_of("0123456789") == std::string::npos && std::stoi(digits) <= bits)
                        prefix = std::stoi(digits);
                }
                if (!ip || (slash != std::string::npos && prefix < 0))
                    cx_.diag.error(e.source(), key, "expected an IP address or a network (ADDRESS/PREFIX), got " +
                                                        (e.is_string() ? in_quotes(text) : type_phrase(e)));
                else
                    out.allow_peers.push_back(*ip + (prefix >= 0 ? "/" + std::to_string(prefix) : ""));
            }
        }
    }
    if (!listener) return;
    out.type = wire_config::kind::listener;
    out.listener = listener->id;
    if (bind.empty()) return;
    const auto [it, fresh] = listener_binds_.emplace(std::pair{listener->id, bind}, first_holder{d.id, d.where});
    if (!fresh)
        r.error(key, bind + " on listener '" + listener->id + "' is already device '" + it->second.name +
                         "' (first at " + at(it->second.where) + ")");
}

}  // namespace

void read_wiring(const toml::table &root, load_context &cx, site_config &out) {
    wiring_reader w(cx, out);
    // Buses and listeners first, wherever they are in the file, so that devices can refer to them.
    for_each_table(root, "bus", cx.diag, [&](const toml::table &t, const std::string &p) { w.bus(t, p); });
    for_each_table(root, "listener", cx.diag, [&](const toml::table &t, const std::string &p) { w.listener(t, p); });
    for_each_table(root, "device", cx.diag, [&](const toml::table &t, const std::string &p) { w.device(t, p); });
}

}  // namespace firelink::site::detail
