#include "try_wire.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

#include <firelink/ext/transport.h>
#include <firelink/plugin.h>

namespace firelink::cli {

const char *const learnt_identity = "(the first to identify)";
const char *const wire_choices_text =
    "--connect HOST:PORT (the device is a TCP server), --listen HOST:PORT (the device connects in) or --serial DEV "
    "(a serial port or pty)";

namespace {

// A TOML basic string holding `s` as written, so that the site file's reader sees exactly what the option said.
std::string toml_string(std::string_view s) {
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20 || c == 0x7f) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04X", c);
            out += escaped;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

// The wires a driver declares, as the options that give them.
std::string wires_as_options(std::uint32_t wires) {
    static constexpr std::pair<std::uint32_t, const char *> named[] = {
        {FL_WIRE_TCP_CLIENT, "tcp_client (--connect)"}, {FL_WIRE_TCP_ACCEPTED, "tcp_accepted (--listen)"},
        {FL_WIRE_SERIAL, "serial (--serial)"},          {FL_WIRE_RS485_BUS, "rs485_bus (--serial)"},
        {FL_WIRE_UDP, "udp (no option of try: write a site file and use firelink-host run)"}};
    std::string out;
    for (auto [bit, name] : named)
        if (wires & bit) out += (out.empty() ? "" : ", ") + std::string(name);
    return out;
}

// A driver that declares some wires takes those. One that declares none (0: no host wire, by the ABI) is given the
// wire asked for all the same, as a site file's wire would be given to it: the host does not check a device's wire
// against the declaration, and a driver that still asks for firelink.transport/1 then gets one.
bool takes(const core::driver_info &d, std::uint32_t wire) { return d.wires == 0 || (d.wires & wire) != 0; }

std::string refuses_wire(const std::string &option, const core::driver_info &d, const char *wire) {
    return option + ": driver '" + d.id + "' does not take a " + wire + " wire; it takes " + wires_as_options(d.wires);
}

// The option a key of the generated site file holds, for the reader's messages.
std::string option_of(const std::string &key) {
    static const std::pair<std::string_view, std::string_view> options[] = {
        {"device[0].wire.tcp", "--connect"}, {"listener[0].listen", "--listen"},   {"bus[0].path", "--serial"},
        {"bus[0].baud", "--baud"},           {"bus[0].data_bits", "--data-bits"},  {"bus[0].parity", "--parity"},
        {"bus[0].stop_bits", "--stop-bits"}, {"device[0].wire.unit", "--unit"},    {"device[0].wire.peer", "--peer"},
        {"device[0].wire.identity", "--identity"}};
    for (auto [k, option] : options)
        if (key == k) return std::string(option);
    return key.empty() ? "the wire options" : "the wire options: " + key;  // not one an option writes
}

}  // namespace

std::string wire_option_text(const try_wire_options &w) {
    if (!w.connect.empty()) return "--connect " + w.connect;
    if (!w.listen.empty()) return "--listen " + w.listen;
    if (!w.serial.empty()) return "--serial " + w.serial;
    return {};
}

std::string wire_usage_problem(const try_wire_options &w) {
    if (w.unit >= 0 && w.connect.empty() && w.serial.empty())
        return "--unit: only a --connect or --serial wire has a unit (the device's Modbus address)";
    return {};
}

bool needs_wire(const core::driver_info &d) {
    return std::find(d.required_extensions.begin(), d.required_extensions.end(), FL_EXT_TRANSPORT) !=
           d.required_extensions.end();
}

firelink::result<try_site> site_of(const try_wire_options &w, const std::vector<tried_device> &devices,
                                   const std::vector<std::uint8_t> &config) {
    using made = firelink::result<try_site>;
    const auto usage = [](std::string why) { return made::fail(FL_INVALID_ARGUMENT, std::move(why)); };
    try_site out;
    // A site file with one device, whose id, driver and class stand in for each real device's (try loads the files
    // it was given, so the file names no plugin folder).
    std::string doc = "[gateway]\nid = \"try\"\n";
    std::string wire;
    const std::string unit = w.unit >= 0 ? ", unit = " + std::to_string(w.unit) : "";
    if (w.given() && !devices.empty()) {
        const auto &d = *devices.front().driver;
        const auto &plugin = *devices.front().plugin;
        if (!w.connect.empty()) {
            if (!takes(d, FL_WIRE_TCP_CLIENT)) return usage(refuses_wire("--connect", d, "tcp_client"));
            wire = "{ tcp = " + toml_string(w.connect) + unit + " }";
        } else if (!w.listen.empty()) {
            if (!takes(d, FL_WIRE_TCP_ACCEPTED)) return usage(refuses_wire("--listen", d, "tcp_accepted"));
            doc += "[[listener]]\nid = \"try\"\nlisten = " + toml_string(w.listen) + "\n";
            std::string bind;
            if (!w.peer.empty()) {
                bind = "peer = " + toml_string(w.peer);
            } else if (!w.identity.empty()) {
                if (!plugin.can_identify())
                    return usage("--identity: driver '" + d.id + "' cannot identify a connection (its plugin has no " +
                                 FL_EXT_IDENTIFY + "): bind the device by its address with --peer IP");
                bind = "identity = " + toml_string(w.identity);
            } else if (plugin.can_identify()) {
                // A device that names itself is bound by its identity, as a site file binds it; the identity is
                // learnt from the first connection rather than asked for up front.
                bind = "identity = " + toml_string(learnt_identity);
                out.learns_identity = true;
                out.note = "the device is the first connection its driver identifies; later connections must identify "
                           "as the same (--identity ID names it ahead, --peer IP binds by address)";
            } else {
                // Without identify a device is bound by its address; on a bench the device is usually this machine.
                const std::string loopback = w.listen.starts_with('[') ? "::1" : "127.0.0.1";
                bind = "peer = " + toml_string(loopback);
                out.note = "driver '" + d.id + "' cannot identify a connection: the device is the connection from " +
                           loopback + " (another address: --peer IP)";
            }
            wire = "{ listener = \"try\", " + bind + " }";
        } else {
            // A point-to-point serial bus where the driver takes one; a shared RS-485 bus where it takes only that.
            const bool point_to_point = takes(d, FL_WIRE_SERIAL);
            if (!point_to_point && !takes(d, FL_WIRE_RS485_BUS))
                return usage(refuses_wire("--serial", d, "serial or rs485_bus"));
            if (!point_to_point && w.unit < 0)
                return usage("--serial: driver '" + d.id + "' takes a shared RS-485 bus only, where each device has "
                             "its unit: give the device's with --unit N (0 to 247)");
            std::error_code ec;
            if (!std::filesystem::exists(w.serial, ec))
                return usage("--serial " + w.serial + ": no such file (a serial port such as /dev/ttyUSB0, or one end "
                             "of a pty pair)");
            doc += "[[bus]]\nid = \"try\"\nkind = \"" + std::string(point_to_point ? "serial" : "rs485") +
                   "\"\npath = " + toml_string(w.serial) + "\n";
            if (w.baud) doc += "baud = " + std::to_string(w.baud) + "\n";
            if (w.data_bits) doc += "data_bits = " + std::to_string(w.data_bits) + "\n";
            if (!w.parity.empty()) doc += "parity = " + toml_string(w.parity) + "\n";
            if (w.stop_bits) doc += "stop_bits = " + std::to_string(w.stop_bits) + "\n";
            wire = "{ bus = \"try\"" + unit + " }";
        }
    }
    doc += "[[device]]\nid = \"try\"\ndriver = \"try\"\nclass = \"vendor:org.firelink.try\"\n";
    if (!wire.empty()) doc += "wire = " + wire + "\n";

    auto parsed = site::parse_site_config(doc, "firelink-host try");
    if (!parsed) {
        std::string why;
        for (const auto &e : parsed.error())
            why += (why.empty() ? "" : "\nfirelink-host: ") + option_of(e.key) + ": " + e.message;
        return usage(why);
    }
    out.cfg = std::move(parsed).value();
    const auto stand_in = out.cfg.devices.front();
    out.cfg.devices.clear();
    for (const auto &dev : devices) {
        auto d = stand_in;
        d.id = dev.id;
        d.plugin = dev.plugin->info().id;
        d.driver = dev.driver->id;
        d.device_class = dev.driver->device_class;
        d.driver_config = config;
        out.cfg.devices.push_back(std::move(d));
    }
    return out;
}

transport::tcp_listener::identify_fn identifier_for(std::shared_ptr<core::plugin> plugin, std::string driver,
                                                    std::string device_id, bool learns) {
    if (!learns)
        return [plugin, driver](const std::uint8_t *data, std::size_t size, std::string &identity) {
            return plugin->identify(driver, data, size, identity);
        };
    // The listener calls this on its strand only, never concurrently: the learnt identity needs no lock.
    auto first = std::make_shared<std::string>();
    return [plugin, driver, device_id, first](const std::uint8_t *data, std::size_t size, std::string &identity) {
        std::string read;
        const fl_status st = plugin->identify(driver, data, size, read);
        if (st != FL_OK) return st;
        if (first->empty()) {
            *first = read;
            spdlog::info("device {}: the first connection identified as '{}', the device's identity for this run (in "
                         "a site file: wire = {{ listener = \"...\", identity = \"{}\" }})",
                         device_id, read, read);
        } else if (read != *first) {
            spdlog::warn("device {}: a connection identified as '{}', but the device is '{}' (the first to identify): "
                         "refused",
                         device_id, read, *first);
            return FL_INVALID_ARGUMENT;
        }
        identity = learnt_identity;
        return FL_OK;
    };
}

}  // namespace firelink::cli
