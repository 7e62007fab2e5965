// The host's side of the control plane (firelink::control): everything that asks a device to do something comes
// through here — an operator's select, operate and cancel on the admin port, the platform's downlink, a device's
// mode — and leaves with a decision in the audit chain. It reads the facts the decision needs (the command as the
// driver declared it, the device's open alarms, its last state for the audit's "before") and hands granted
// commands to the runtime. It also watches the runtime's events for each command's result (the read-back).
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <firelink/admin/admin_server.hpp>
#include <firelink/control/control_plane.hpp>
#include <firelink/core/device_runtime.hpp>
#include <firelink/text.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/linkage/linkage_engine.hpp>

namespace firelink::cli {

// An audit step as the gateway event the platform gets in the event lane (status "audit"), so that it holds the
// chain's head: msgpack, as the queue takes it.
std::vector<std::uint8_t> audit_event(const control::audit_entry &e);

class command_gate {
public:
    // `driver_of` says what a running device's driver declares (nullopt: no such device, or no loaded driver).
    command_gate(control::control_options options, std::shared_ptr<control::audit_log> audit,
                 std::function<void(const control::audit_entry &)> on_audit,
                 std::function<std::optional<core::driver_info>(const std::string &device)> driver_of,
                 std::string audit_error = {});  // why `audit` is null: then every command is refused with it

    // The gate on the audit chain at `audit_path` (keeping `keep` records). A chain that cannot be opened leaves the
    // host running (alarms still flow) with every command refused, and the log says why.
    static std::unique_ptr<command_gate> open(control::control_options options, const std::filesystem::path &audit_path,
                                              std::uint64_t keep, std::function<void(const control::audit_entry &)> on_audit,
                                              std::function<std::optional<core::driver_info>(const std::string &)> driver_of);

    void attach(core::device_runtime *runtime) { runtime_ = runtime; }

    // Fills the admin endpoint's control routes (select, cancel, command, mode, /api/control, /api/audit) with this
    // gate's; `answered` hears each command's HTTP status (for firelink_commands_total).
    void route(admin::admin_handlers &h, std::function<void(unsigned status)> answered);  // before the first command; null to detach

    // Every accepted event, before the pipeline (any thread): command results, and each device's last state.
    void observe(const core::accepted_event &ev);

    // The admin routes (admin_server.hpp).
    admin::status_json select(const admin::principal &who, const std::string &device, const std::string &body);
    admin::status_json cancel(const admin::principal &who, const std::string &device);
    admin::status_json operate(const admin::principal &who, const std::string &device, const std::string &body);
    admin::status_json mode(const admin::principal &who, const std::string &device, const std::string &body);
    std::string audit_json(std::string_view query) const;
    std::string control_json() const { return text::dump_json(plane_.to_json()); }

    // The platform's downlink: empty when the command went to the device; else why not (for the platform's
    // command_result). `command` is the msgpack {"id","name","args"} the device would take.
    std::string platform(const std::string &id, const std::string &device, const std::vector<std::uint8_t> &command);

    // Local linkage: its command through the same select and operate as an operator's, as principal
    // `linkage:<rule>` (role and source "linkage"), then handed to the runtime. A refusal because someone else
    // holds the device, or because the device does not run yet or is busy, is `busy` (the engine tries again); a
    // command the driver began and did not finish (its process died) is `refused` as `outcome_unknown`.
    linkage::command_answer linkage_command(const linkage::command_request &c);
    // The engine gave up on a command's read-back: the device is no longer held by it.
    void linkage_release(const std::string &device, const std::string &command_id);
    // A linkage step (fired, confirmed, reset, mode) in the audit chain; false when it could not be recorded.
    bool note(const control::actor &who, nlohmann::json record);

    bool audited() const { return audit_ != nullptr; }
    // Refusals since start, by reason code (for /metrics), and the chain's size and head.
    std::map<std::string, std::uint64_t> refusals() const;
    std::uint64_t audit_records() const { return audit_ ? audit_->size() : 0; }

private:
    // Counts and logs a refusal; returns the HTTP answer for it.
    admin::status_json refuse(const control::actor &who, const std::string &device, const std::string &command,
                              const control::decision &d) const;
    control::command_facts facts(const std::string &device, const std::string &command) const;
    // Hands a granted command to the runtime; the HTTP answer.
    admin::status_json send(const std::string &device, const std::string &command_id,
                            const std::vector<std::uint8_t> &bytes, const control::decision &d);

    // A refusal when there is no audit chain (audit_failed): no step is taken that cannot be recorded.
    std::optional<admin::status_json> unaudited(const std::string &device) const;

    std::shared_ptr<control::audit_log> audit_;
    std::string audit_error_;
    control::control_plane plane_;
    std::function<std::optional<core::driver_info>(const std::string &)> driver_of_;
    core::device_runtime *runtime_ = nullptr;
    std::atomic<std::uint64_t> next_command_{1};
    mutable std::mutex refusals_mutex_;
    mutable std::map<std::string, std::uint64_t> refusals_;
    mutable std::mutex last_mutex_;
    std::map<std::string, std::vector<std::uint8_t>> last_state_;  // device -> its last status/telemetry event
};

}  // namespace firelink::cli
