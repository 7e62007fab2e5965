// Who may move what, and when: select-before-operate for every command that actuates, device modes, the platform's
// policy, interlocks, and the audit of every step. The host's admin routes, the platform's downlink and (later) local
// linkage all ask it before a command reaches a device, and tell it each command's result.
//
//   select(who, device, command)   reserves the device for `who` and that command, for select_timeout (15 s, as
//                                  IEC 61850's SBO); a second principal is refused (selected_by_other)
//   operate(who, device, command)  runs it when `who` holds a live selection for the same command and arguments;
//                                  the selection is used up. A command that does not actuate needs no selection.
//   result(device, command_id, …)  the device's read-back: the step's end, audited
//
// Reasons are stable codes in the DNP3 spirit (docs/deployment.md, "Select before operate"): not_selected,
// select_expired, selected_by_other, not_authorized, interlocked, local_mode, already_active, unknown_command,
// audit_failed. Every decision, granted or refused, is one audit record.
//
// Threads: all functions may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "firelink/control/audit_log.hpp"

namespace firelink::control {

enum class reason {
    none,
    not_selected,       // an actuating command without a selection
    select_expired,     // the selection ran out before the operate
    selected_by_other,  // another principal holds the device (or it selected another command)
    not_authorized,     // the role or the site's policy does not allow this command from this source
    interlocked,        // a restoring command while the device is in alarm
    local_mode,         // the device is in local mode: no remote command moves it
    already_active,     // an actuating command on the device has not reported its result yet
    unknown_command,    // the driver declares commands and not this one
    audit_failed,       // the step could not be recorded, so it is not taken
};
const char *to_string(reason r);

// Who asks. `source` is where the command comes from: "admin", "platform", "linkage".
struct actor {
    std::string name;
    std::string role;
    std::string source;
};

// What the host knows of the command and the device when it asks.
struct command_facts {
    bool actuates = true;    // as the driver declared (true when it declares nothing)
    bool restores = true;
    bool declared = true;    // false: the driver declares commands and not this one
    bool in_alarm = false;   // the device has an open alarm (host-kept conditions)
    nlohmann::json before;   // the device's state before: for the audit record
};

struct decision {
    reason why = reason::none;
    std::string detail;     // for people: what to do about it
    std::string select_id;  // select: the selection's id
    std::chrono::milliseconds expires_in{0};
    std::uint64_t audit_seq = 0;
    bool granted() const { return why == reason::none; }
};

struct control_options {
    std::chrono::milliseconds select_timeout{15'000};
    // An actuating command stays "active" (already_active) until its result, at most this long.
    std::chrono::milliseconds result_timeout{120'000};
    // Actuating commands the platform's downlink may run (names); everything else it may not move. Commands that
    // do not actuate it may always run.
    std::set<std::string> platform_may;
};

class control_plane {
public:
    // `audit` may be null only in tests that do not look at it: then every step is granted without a record.
    control_plane(control_options options, std::shared_ptr<audit_log> audit,
                  std::function<void(const audit_entry &)> on_audit = {});

    decision select(const actor &who, const std::string &device, const std::string &command,
                    const nlohmann::json &args, const command_facts &facts);
    decision cancel(const actor &who, const std::string &device);
    // `select_id` may be empty (the device's selection by `who` is used); when given it must be that selection.
    decision operate(const actor &who, const std::string &device, const std::string &command,
                     const nlohmann::json &args, const std::string &command_id, const std::string &select_id,
                     const command_facts &facts);
    // The platform's downlink has no select step: its command is selected and operated at once, with the same
    // checks (policy, mode, another principal's selection, interlocks, an active command).
    decision direct_operate(const actor &who, const std::string &device, const std::string &command,
                            const nlohmann::json &args, const std::string &command_id, const command_facts &facts);
    // The handover failed (the runtime refused the command): the device is not active any more.
    void not_sent(const std::string &device, const std::string &command_id);
    // A command_result from the device (or the host's own refusal). Audits the read-back; ends "active".
    void result(const std::string &device, const std::string &command_id, bool ok, const std::string &message,
                const nlohmann::json &after);

    // A step of another component that needs the chain (local linkage: a rule fired, an operator confirmed or reset
    // it): `record` gets who asked and is appended and sent upstream like the plane's own. Not granted
    // (audit_failed) when it could not be recorded.
    decision note(const actor &who, nlohmann::json record);

    // Device modes: "remote" (default) or "local". Persisted in the audit chain's file.
    decision set_mode(const actor &who, const std::string &device, const std::string &mode, const std::string &why);
    std::string mode(const std::string &device) const;

    nlohmann::json to_json() const;  // GET /api/control
    const control_options &options() const { return options_; }

private:
    struct selection {
        std::string id;
        actor who;
        std::string command;
        nlohmann::json args;
        std::chrono::steady_clock::time_point expires;
        std::int64_t wall_ms = 0;
    };
    struct active {
        std::string command_id;
        std::string command;
        actor who;
        std::chrono::steady_clock::time_point since;
    };
    // Common checks of select, operate and direct_operate; mutex_ held.
    reason check_locked(const actor &who, const std::string &device, const std::string &command,
                        const command_facts &facts, std::string &detail);
    decision record_locked(decision d, nlohmann::json record);
    void announce();  // hands the records appended under the lock to on_audit, after it
    void expire_locked(const std::string &device, std::chrono::steady_clock::time_point now);
    void granted_locked(const actor &who, const std::string &device, const std::string &command,
                        const std::string &command_id, bool actuates, std::chrono::steady_clock::time_point now);
    static constexpr std::size_t max_issued = 4096;  // granted commands awaiting their result, at most

    control_options options_;
    std::shared_ptr<audit_log> audit_;
    std::function<void(const audit_entry &)> on_audit_;
    mutable std::mutex mutex_;
    std::map<std::string, selection> selections_;  // by device
    std::map<std::string, active> active_;         // by device
    std::map<std::string, std::string> modes_;     // by device: only the non-default ("local")
    struct issued {
        std::string device, command;
        actor who;
    };
    std::map<std::string, issued> issued_;  // by command id: granted, result not seen yet (bounded)
    std::vector<audit_entry> pending_announce_;
    std::uint64_t next_select_ = 1;
};

}  // namespace firelink::control
