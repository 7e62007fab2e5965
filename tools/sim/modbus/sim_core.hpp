// firelink-sim's Modbus slaves: simulated units (devices) behind Modbus TCP (--listen HOST:PORT) or on one serial
// line in RTU (--serial PATH: several units on it make a shared RS-485 bus of simulated devices). Each unit serves the
// register map of its driver's reference model (<firelink/modbus/maps/*.hpp>) and is scripted by actions: from the
// command line (--do), from a scenario file (--scenario: "<ms> [@unit] action args"), or from standard input, one
// action a line (for tests). `firelink-sim <model>` serves every unit with one model; `firelink-sim bus` serves
// units of several models (--unit 1-2=gas-valve --unit 3=pyrolysis, or the scenario's "unit LIST MODEL" lines).
// Usage: firelink-sim <model>|bus --help; docs/drivers/modbus.md.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <firelink/proto/modbus.hpp>

#include <firelink/modbus/register_map.hpp>

namespace firelink::sim::modbus {

namespace mb = firelink::proto::modbus;
namespace md = firelink::modbus_driver;

// One simulated unit. The base class keeps the register bank laid out by the reference map and the behaviours every
// device shares (silent, garbage, forced exception); a device class adds its physics and actions.
class unit_model {
public:
    explicit unit_model(md::register_map map);
    virtual ~unit_model() = default;

    // Time passes (real time, in ms since the last call).
    virtual void tick(double /*elapsed_ms*/) {}
    // A write the master made, after the bank took it.
    virtual void after_write(const mb::request & /*req*/) {}
    // A class action ("gas 30", "stuck on"); returns an error message, or "" when done. Unknown: "unknown action".
    virtual std::string action(const std::vector<std::string> &words) = 0;
    // The help lines of the class's actions.
    virtual std::vector<std::string> help() const = 0;

    // Answers a request PDU (or an exception when one is forced).
    std::vector<std::uint8_t> serve(std::span<const std::uint8_t> pdu);

    // The shared actions: silent, garbage, exception, set, ramp. Then the class's.
    std::string run(const std::vector<std::string> &words);

    bool silent = false;   // stop answering
    bool garbage = false;  // answer with bytes that are not a valid frame

protected:
    const md::register_point &p(const std::string &name) const;
    void set(const std::string &point, double engineering);  // raw = value / scale
    double get(const std::string &point) const;
    void set_raw(const std::string &point, std::int64_t raw);
    std::int64_t get_raw(const std::string &point) const;
    void set_bit(const std::string &point, const std::string &bit, bool on);
    bool bit(const std::string &point, const std::string &bit) const;
    void set_named(const std::string &point, const std::string &value);
    std::string named(const std::string &point) const;
    bool coil(const std::string &point) const;
    void set_coil(const std::string &point, bool on);

    // A value that moves linearly to a target over a time (ramp), applied by tick_ramps.
    void tick_ramps(double elapsed_ms);

    md::register_map map_;
    mb::register_bank bank_;

private:
    struct ramp {
        double from, to, total_ms, done_ms;
    };
    std::map<std::string, ramp> ramps_;
    std::optional<std::uint8_t> forced_exception_;
};

// What the reference models (<firelink/modbus/maps/*.hpp>) do alike: their one command register reads back 0 once
// taken, and a self-test started by the coil "self_test" reads "running" in self_test_state for 200 ms, then "passed"
// (or "failed" after the action "self-test-fail on"). A model adds what its commands do, its physics and its actions.
class reference_model : public unit_model {
public:
    reference_model(md::register_map map, std::string command_register);

    void after_write(const mb::request &req) final;
    void tick(double elapsed_ms) final;
    std::string action(const std::vector<std::string> &words) final;
    std::vector<std::string> help() const final;

protected:
    // A register write took `value` into the command register (which reads 0 again already).
    virtual void on_command(std::int64_t value) = 0;
    // Time passes: after the ramps moved, before the self-test's clock.
    virtual void on_tick(double /*elapsed_ms*/) {}
    // The model's own actions and their help lines (action() and help() add self-test-fail).
    virtual std::string model_action(const std::vector<std::string> &words) = 0;
    virtual std::vector<std::string> model_help() const = 0;

    // Whether `value`, written to the command register, is its command `name`.
    bool is_command(std::int64_t value, const std::string &name) const;

private:
    std::string command_register_;
    bool self_test_fails_ = false;
    double self_test_ms_ = 0;
};

// on/off argument of an action.
bool parse_on_off(const std::vector<std::string> &words, std::size_t at, bool &out, std::string &err);
double parse_number(const std::string &s, std::string &err);

using model_factory = std::function<std::unique_ptr<unit_model>()>;

// A device model, registered by its source file: `firelink-sim NAME` serves every unit with it, and NAME is what
// `firelink-sim bus --unit LIST=NAME` and a scenario's "unit LIST NAME" line give. `summary` is the subcommand list's
// line, `what` the usage's ("a gas detector with shutoff valve (reference model FL-GV100)").
struct model_registration {
    model_registration(const char *name, const char *summary, const char *what, model_factory make);
};

}  // namespace firelink::sim::modbus
