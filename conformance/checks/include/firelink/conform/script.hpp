// Device scripts: how a vendor's device talks, declared in a TOML file the vendor ships with the plugin, so that the
// suite can play the device over a real host wire and then mutate the play (docs/device-scripts.md has the format).
#pragma once

#include <filesystem>
#include <map>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace firelink::conform {

// An event the driver must emit after a step: its kind and code, optionally a name (`as`) that a later restore's
// `ends` refers to, and fields of the event that must have these values (as text).
struct script_event {
    std::string kind, code, as, ends;
    std::map<std::string, std::string> fields;
};

// A device that speaks when asked (a Modbus server, a polled meter): each request of the driver that matches `when`
// (a pattern, at the start of what the driver wrote) is answered with `reply` (a template; the request's captures
// may be used in it).
struct script_answer {
    int line = 0;
    std::string when, reply;
};

struct script_step {
    int line = 0;  // where the step begins in the file, for messages
    // A frame from the device (a template: {seq}, {id}, {x:HEX}, captured {NAME}) and the driver's answer to it (a
    // pattern: also {any} and {=NAME} to capture); `after_commit`: the answer only once its events are committed.
    std::string send, answer;
    bool after_commit = false;
    // What the device sends on a (re)connect while this step's condition is active (a template).
    std::string state;
    // A command through the host: what the driver writes for it (a pattern), the device's reply (a template) and
    // the command_result's ok.
    std::string command;
    std::map<std::string, std::string> args;
    std::string writes, reply;
    std::optional<bool> result;
    // A device that answers: from this step on (for a command, once the driver's write was answered) it answers
    // with these, its state changed (an alarm's register set, a valve that reads closed).
    bool sets_answers = false;
    std::vector<script_answer> answers;
    std::vector<script_event> events;
};

struct device_script {
    std::filesystem::path file;
    std::string sha256;
    std::string driver, name, description;
    std::string wire;      // tcp_accepted (the device connects in), tcp_client (the host connects to it), serial
    std::string identity;  // tcp_accepted: the identity the driver's identify must read from the first bytes
    std::string hello, hello_answer;  // sent on every connect, and the driver's answer (template, pattern)
    std::string garbage;              // bytes the protocol must ignore between frames; empty: not declared
    std::string heartbeat;            // sent every heartbeat_ms while idle (template); empty: none
    int heartbeat_ms = 0;
    bool resend_same = false;  // a frame sent again carries the same id: the driver must not emit it twice
    bool pipelined = true;     // the device may send its next frame before the answer to the last
    // The driver's config while the script plays (msgpack of [device] config), unless the run has a --config for
    // the driver; empty: the driver's defaults.
    std::vector<std::uint8_t> config;
    // Non-empty: the device speaks when asked, answering the driver's requests with these until a step changes them.
    std::vector<script_answer> answers;
    bool responder() const noexcept;
    std::vector<script_step> steps;
};

// Reads one script; false and why ("FILE:LINE: key 'x': ...") when it is not valid.
bool load_script(const std::filesystem::path &file, device_script &out, std::string &why);
// Every *.toml under `dir`, sorted by name; false at the first that is not valid.
bool load_scripts(const std::filesystem::path &dir, std::vector<device_script> &out, std::string &why);
// Where scripts are looked for when --scripts is not given: PLUGIN.so -> PLUGIN.scripts/ beside it.
std::filesystem::path default_scripts_dir(const std::filesystem::path &plugin);

}  // namespace firelink::conform
