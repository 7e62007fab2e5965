// Declared commands (ABI 1.1, FL-PLUGIN-36): what each driver says its commands do, held against what its class
// defines, and a driver that answers a name it did not declare.
#include <map>

#include "checks.hpp"

namespace firelink::conform {

namespace {

// The commands each standard class defines as actuating (docs/drivers/modbus.md, docs/drivers/fire_panel.md): the
// flags a driver of the class must declare them with when it accepts them. A fire panel's commands (reads, clock,
// duty check) move nothing.
struct class_command {
    const char *name;
    bool restores;
};
const std::map<std::string, std::vector<class_command>> &class_commands() {
    static const std::map<std::string, std::vector<class_command>> table = {
        {FL_CLASS_ARC_FAULT_BREAKER, {{"trip", false}, {"close", true}, {"reset", false}}},
        {FL_CLASS_GAS_SHUTOFF_VALVE, {{"close_valve", false}, {"open_valve", true}}},
        {FL_CLASS_PYROLYSIS_DETECTOR, {{"reset", false}}},
        {FL_CLASS_FIRE_PANEL, {}},
    };
    return table;
}

// ---- commands.declared -----------------------------------------------------------------------------------------
// The loader has already refused a malformed list (a bad or duplicate name, unknown flags, RESTORES alone): such a
// plugin fails library.load. What is left to judge is what the flags mean.
void declared(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    for (const auto &d : p->info().drivers) {
        const std::string drv = "driver '" + d.id + "'";
        if (!d.declares_commands) {
            f.warn(drv + " declares no commands (FL-PLUGIN-36): the host treats every command as actuating and "
                   "restoring, and cannot refuse a name the driver does not know before it reaches the driver");
            continue;
        }
        if (auto why = core::command_decls_problem(d.commands); !why.empty()) f.fail(drv + ": " + why);
        const auto cls = class_commands().find(d.device_class);
        if (cls == class_commands().end()) continue;  // a vendor class defines its own
        for (const auto &want : cls->second) {
            const auto *c = d.find_command(want.name);
            if (!c) {
                f.note(drv + " does not take '" + want.name + "'");
                continue;
            }
            if (!c->actuates)
                f.fail(drv + ": command '" + c->name + "' is declared without FL_COMMAND_ACTUATES, but " +
                       d.device_class + " defines it as moving something: the host would run it without "
                       "select-before-operate (FL-PLUGIN-36)");
            else if (want.restores && !c->restores)
                f.fail(drv + ": command '" + c->name + "' is declared without FL_COMMAND_RESTORES, but " +
                       d.device_class + " defines it as reopening or re-energising: the host would not interlock "
                       "it while the device is in alarm (FL-PLUGIN-36)");
        }
    }
}

// ---- commands.undeclared_refused -------------------------------------------------------------------------------
// A name the driver did not declare is answered FL_UNSUPPORTED by the driver itself: the host refuses it first
// (FL-HOST-36), but a driver that acts on it anyway acts on what select-before-operate never saw. Besides an unknown
// name, each declared name is sent with a suffix and in capitals, which a driver matching by prefix or without
// case takes for the declared one.
void undeclared_refused(const run_options &o, findings &f) {
    session s(o, f);
    if (!s) return;
    std::size_t tried = 0;
    for (const auto *drv : s.drivers) {
        if (!drv->declares_commands) continue;
        std::vector<std::string> names = {"x.conformance.undeclared"};
        for (const auto &c : drv->commands) {
            names.push_back(c.name + "_undeclared");
            std::string upper = c.name;
            for (auto &ch : upper)
                if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
            names.push_back(upper);
        }
        for (const auto &name : names) {
            if (drv->find_command(name)) continue;
            instance in(s.entry(), *drv, "undeclared-1");
            if (in.create(config_for(o, drv->id)) != FL_OK) continue;
            if (const fl_status st = in.start(); st != FL_OK) {
                f.fail("driver '" + drv->id + "': start returned " + status_name(st));
                break;
            }
            in.deliver_open();
            const fl_status st = in.command(command_bytes("undeclared-1", name));
            ++tried;
            if (st != FL_UNSUPPORTED)
                f.fail("driver '" + drv->id + "': command '" + name + "', which it does not declare, returned " +
                       status_name(st) + ", not FL_UNSUPPORTED (FL-PLUGIN-36)");
            in.stop();
        }
    }
    if (tried == 0) f.skip("no driver declares its commands");
}

}  // namespace

void add_command_checks(std::vector<check> &v) {
    v.push_back({"commands.declared", {"FL-PLUGIN-36"}, level::basic,
                 "each driver declares its commands, and its class's moving commands with FL_COMMAND_ACTUATES "
                 "(and RESTORES); declaring none is a warning",
                 declared});
    v.push_back({"commands.undeclared_refused", {"FL-PLUGIN-30", "FL-PLUGIN-36"}, level::basic,
                 "a command name the driver did not declare (unknown, suffixed, in capitals) is FL_UNSUPPORTED",
                 undeclared_refused});
}

}  // namespace firelink::conform
