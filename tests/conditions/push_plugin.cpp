// push: a push-only alarm device for the tests of host-kept conditions (firelink.conditions/1).
//
// The device cannot be asked what is active; it only tells, one line at a time over its wire:
//   "ALARM <zone> [<severity>]\n"  the driver emits an alarm `zone_alarm` with the message "zone <zone>" (and the
//                                  severity, when given). A zone not in alarm yet gets a random event_id the driver
//                                  keeps only in memory (zone -> id); a zone in alarm keeps its id: the device
//                                  telling it again (as it does for what is active when a new connection opens) is
//                                  the same alarm re-reported (FL-PLUGIN-29), and the host marks it so
//   "RESTORE <zone>\n"             the driver ends that alarm: a restore with `ends` = its id
// A zone this instance did not raise (an earlier instance did, before a driver or host restart) is looked up among
// the host-kept open conditions, by the zone in the raising event's message. When a restore's zone is not found the
// driver emits a status `restore_unmatched` (message "zone <zone>"), so a test sees the failure at once.
//
// Config: use_conditions (default true). false makes the driver ignore the extension, like a driver written before
// it: the end-to-end test uses it to show that the alarm then stays open at the platform.
// Commands, for tests without a wire: "alarm" and "restore" with args {"zone": str} do what the lines do; "list"
// answers a command_result whose message is "<event_ids at create>|<event_ids now>" (each comma-separated), to show
// that the list is readable from create_device on.
#include <firelink/driver.hpp>

#include "test_plugin.hpp"

#include <map>
#include <random>
#include <string>

namespace {

std::string random_id() {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char *hex = "0123456789abcdef";
    std::string id = "zone-";
    auto v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4) id += hex[v & 15];
    return id;
}

std::string join_ids(const std::vector<firelink::open_condition> &list) {
    std::string out;
    for (const auto &c : list) out += (out.empty() ? "" : ",") + c.event_id;
    return out;
}

class push_device : public firelink::device {
public:
    push_device(firelink::host_handle host, const firelink::config &cfg)
        : device(host), use_conditions_(cfg.get<bool>("use_conditions", true)) {
        cfg.reject_unknown({"use_conditions"});
        // From inside create_device: what the host held for this device id when this instance was made.
        at_create_ = join_ids(open_conditions());
    }

    void start() override {
        if (host().has_transport()) host().open_wire();
    }

    void on_data(std::span<const std::uint8_t> bytes) override {
        for (auto b : bytes) {
            if (b != '\n') {
                if (line_.size() < 256) line_ += static_cast<char>(b);
                continue;
            }
            if (!line_.empty() && line_.back() == '\r') line_.pop_back();
            handle(line_);
            line_.clear();
        }
    }

    void on_link(int state, fl_status) override {
        if (state != FL_LINK_OPEN) line_.clear();  // a cut line is not finished by the next connection's bytes
    }

    fl_status on_command(const firelink::command &cmd) override {
        if (cmd.name() == "list") {
            host().emit(firelink::event::command_result(cmd.id(), true, at_create_ + "|" + join_ids(open_conditions())));
            return FL_OK;
        }
        if (cmd.name() != "alarm" && cmd.name() != "restore") return FL_UNSUPPORTED;
        const auto zone = cmd.args().require<std::string>("zone");
        handle((cmd.name() == "alarm" ? "ALARM " : "RESTORE ") + zone);
        host().emit(firelink::event::command_result(cmd.id(), true, cmd.name() + " " + zone));
        return FL_OK;
    }

private:
    void handle(const std::string &line) {
        if (line.rfind("ALARM ", 0) == 0) {
            const auto words = line.substr(6);
            const auto space = words.find(' ');
            const auto zone = words.substr(0, space);
            auto id = find(zone);
            if (id.empty()) id = random_id();
            active_[zone] = id;
            firelink::event alarm{firelink::event_kind::alarm, "zone_alarm"};
            alarm.id(id).message("zone " + zone);
            if (space != std::string::npos) {
                const auto level = words.substr(space + 1);
                for (auto s : {firelink::severity::critical, firelink::severity::major, firelink::severity::minor,
                               firelink::severity::warning, firelink::severity::info})
                    if (level == firelink::to_string(s)) alarm.level(s);
            }
            host().emit(alarm);
        } else if (line.rfind("RESTORE ", 0) == 0) {
            const auto zone = line.substr(8);
            auto id = find(zone);
            if (id.empty()) {
                host().warn("RESTORE " + zone + ": no open alarm known for the zone");
                host().emit(firelink::event{firelink::event_kind::status, "restore_unmatched"}.message("zone " + zone));
                return;
            }
            active_.erase(zone);
            host().emit(firelink::event{firelink::event_kind::restore, "zone_alarm"}.ends(id).message("zone " + zone));
        } else if (!line.empty()) {
            host().warn("ignored a line: " + line);
        }
    }

    // This instance's own memory first, then what the host kept from earlier instances.
    std::string find(const std::string &zone) const {
        if (auto it = active_.find(zone); it != active_.end()) return it->second;
        if (!use_conditions_) return {};
        for (const auto &c : open_conditions()) {
            if (c.code != "zone_alarm") continue;
            const firelink::config raised(c.event.data(), c.event.size());
            if (raised.get<std::string>("message", "") == "zone " + zone) return c.event_id;
        }
        return {};
    }

    bool use_conditions_;
    std::string at_create_;
    std::map<std::string, std::string> active_;
    std::string line_;
};

}  // namespace

FIRELINK_TEST_PLUGIN("org.firelink.test.push", "Push-only alarms", "A device that only pushes ALARM/RESTORE lines.",
                     firelink_test::driver<push_device>("push", "Push-only alarm device",
                                                        "vendor:org.firelink.test.push",
                                                        "Ends alarms of earlier instances via firelink.conditions/1.",
                                                        {.wires = FL_WIRE_TCP_CLIENT}))
