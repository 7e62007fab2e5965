// What loading the site file does to each device, decided before any running device is touched, so that a reload is
// a transaction per device: a running device whose new definition cannot be created keeps its old one (and its
// instance, its wire, its sequence and its open conditions). check-config asks the drivers the same question.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <firelink/core/device_runtime.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/site/site_config.hpp>

namespace firelink::cli {

// Whether the device's bus or listener (when it has one) has the same settings in `a` as in `b`.
bool same_shared_wire(const site::site_config &a, const site::site_config &b, const site::device_config &d);
std::map<std::string, std::string> site_map(const site::site_metadata &m);

// The FL_TRANSPORT_* kind of the device's wire (0 when it has none), and the wire as messages name it
// ("tcp 10.0.0.5:502 unit 1", "bus rs485-1 unit 3", "listener uitd peer 10.0.0.50").
int wire_kind_of(const site::site_config &cfg, const site::device_config &d);
std::string wire_name_of(const site::site_config &cfg, const site::device_config &d);

// The device as the runtime creates it, all but its wire's factory (the caller's: the real wire, or a dormant one).
core::device_spec spec_of(const site::site_config &cfg, const site::device_config &d);

// Creates the device's instance with its driver and destroys it at once (device_runtime::try_create), on a dormant
// wire of the kind it will have: what `run` would refuse at create, in the driver's words, at the config key they
// name. Nothing is started or opened, and nothing is emitted.
std::optional<site::config_error> try_device(core::device_runtime &runtime, const std::shared_ptr<core::plugin> &plugin,
                                             const site::site_config &cfg, const site::device_config &d);

// A running device whose new definition was refused: it keeps running on its previous one.
struct kept_device {
    std::string device_id;
    site::config_error refusal;  // at the new definition: why it cannot be created
};

struct reload_plan {
    // What runs once the plan is applied: the new file, but for each kept device its previous definition, and for a
    // bus or listener a kept device is on, its previous settings (two definitions of one port cannot both run).
    site::site_config effective;
    std::vector<std::string> added;    // enabled in `effective`, not running: created
    std::vector<std::string> changed;  // running with another definition than `effective`'s: recreated
    std::vector<std::string> removed;  // running, and not (or not enabled) in `effective`: destroyed
    std::vector<kept_device> kept;
    std::vector<std::string> notes;    // shared wires held back for a kept device
};

// Why a definition cannot be created (a plugin it names is missing, its driver refuses it), or nothing.
using trial_fn =
    std::function<std::optional<site::config_error>(const site::site_config &, const site::device_config &)>;

// The running devices, each with the definition it was made from.
using running_devices = std::map<std::string, site::device_definition>;

// `running` is the configuration the running devices were made from, `devices` what each runs on. Every running
// device whose definition changes is tried first; `trial` is never asked about another device.
reload_plan plan_reload(const site::site_config &running, const site::site_config &next, const running_devices &devices,
                        const trial_fn &trial);

// What a reload did, for the admin's answer and the log.
struct reload_outcome {
    std::vector<std::string> added, changed, removed;
    std::vector<kept_device> kept;      // on their previous definition, with why
    std::vector<std::string> problems;  // devices that do not run: "site.toml:61:1: device 'ghost': ..."
    std::vector<std::string> notes;

    bool clean() const { return kept.empty() && problems.empty(); }
    // {"reloaded": true, "devices": N, "added", "changed", "removed", "kept": [{"device", "error"}], "problems",
    // "notes"} (docs/deployment.md, POST /api/reload).
    nlohmann::json to_json(std::size_t running) const;
    // One line: "2 changed (a, b), 1 added (c), 0 removed, 1 kept on its previous definition (d)".
    std::string summary() const;
};

// The message of a kept device's config_rejected fault, for the platform.
std::string rejection_message(const site::config_error &refusal);

}  // namespace firelink::cli
