// [[linkage]]: a rule's trigger, actions, mode and end as read, and every rule that could never fire or never move
// anything refused at its line: devices that do not exist, selectors that pick nothing, an `all` that cannot count.
#include "site_test_support.hpp"

using namespace site_test;
using ::testing::HasSubstr;

namespace {

// Four devices on lines 1-16: two gas valves in building A, a breaker on floor 3 feeding non-fire loads, a disabled one.
const std::string devices = R"([[device]]
id = "gas-1"
driver = "modbus-gas-valve"
class = "gas_shutoff_valve"
site = { building = "A", floor = "1F" }
[[device]]
id = "gas-2"
driver = "modbus-gas-valve"
class = "gas_shutoff_valve"
site = { building = "A", floor = "2F" }
[[device]]
id = "afb-3"
driver = "modbus-arc-breaker"
class = "arc_fault_breaker"
site = { building = "A", floor = "3F" }
tags = ["non_fire_power"]
[[device]]
id = "off"
driver = "modbus-gas-valve"
class = "gas_shutoff_valve"
enabled = false
)";  // 21 lines

// A rule from line 22, with `trigger` and `actions` as given.
std::string rule(const std::string &head, const std::string &trigger, const std::string &actions) {
    return devices + "[[linkage]]\nid = \"r\"\n" + head + "[linkage.trigger]\n" + trigger + actions;
}

const std::string close_gas1 = "[[linkage.action]]\ndevice = \"gas-1\"\ncommand = \"close_valve\"\n";
const std::string gas1_level2 = "any = [{ device = \"gas-1\", code = \"gas_level_2\" }]\n";

std::string all_errors(const std::vector<std::string> &errors) {
    std::string out;
    for (const auto &e : errors) out += e + "\n";
    return out;
}

}  // namespace

TEST(Linkage, TheKitchenRuleWithItsDefaults) {
    const auto c = snippet_loads(rule("", gas1_level2, close_gas1));
    ASSERT_EQ(c.linkage.size(), 1u);
    const auto &r = c.linkage[0];
    EXPECT_EQ(r.id, "r");
    EXPECT_EQ(r.mode, "auto");
    EXPECT_TRUE(r.latching);
    EXPECT_FALSE(r.parallel);
    EXPECT_EQ(r.confirm_within, 120s);
    EXPECT_FALSE(r.trigger.all);
    ASSERT_EQ(r.trigger.conditions.size(), 1u);
    EXPECT_EQ(r.trigger.conditions[0].device, "gas-1");
    EXPECT_EQ(r.trigger.conditions[0].kind, "alarm");
    EXPECT_EQ(r.trigger.conditions[0].code, "gas_level_2");
    EXPECT_EQ(r.trigger.window, 120s);
    EXPECT_EQ(r.trigger.min_duration, 0s);
    ASSERT_EQ(r.actions.size(), 1u);
    EXPECT_EQ(r.actions[0].device, "gas-1");
    EXPECT_EQ(r.actions[0].command, "close_valve");
    EXPECT_EQ(r.actions[0].delay, 0ms);
    EXPECT_EQ(r.actions[0].timeout, 10s);
    EXPECT_EQ(r.actions[0].path, "linkage[0].action[0]");
    EXPECT_EQ(r.where.line, 22);
}

TEST(Linkage, AllOfTwoManualParallelWithGroups) {
    const auto c = snippet_loads(rule(
        "name = \"Fire on floor 3\"\nmode = \"manual\"\nends = \"restore\"\norder = \"parallel\"\nconfirm_within_s = 30\n",
        "all = [{ building = \"A\", kind = \"alarm\" }]\ncount = 3\nindependent = \"condition\"\nwindow_s = 60\n"
        "min_duration_s = 2\n",
        "[[linkage.action]]\nselect = { floor = \"3F\", tags = [\"non_fire_power\"] }\ncommand = \"trip\"\n"
        "delay_ms = 500\ntimeout_s = 20\n[[linkage.action]]\nselect = { class = \"gas_shutoff_valve\", building = \"A\" }\n"
        "command = \"close_valve\"\nargs = { reason = \"fire\" }\n"));
    const auto &r = c.linkage.at(0);
    EXPECT_EQ(r.name, "Fire on floor 3");
    EXPECT_EQ(r.mode, "manual");
    EXPECT_FALSE(r.latching);
    EXPECT_TRUE(r.parallel);
    EXPECT_EQ(r.confirm_within, 30s);
    EXPECT_TRUE(r.trigger.all);
    EXPECT_EQ(r.trigger.count, 3u);
    EXPECT_TRUE(r.trigger.independent_conditions);
    EXPECT_EQ(r.trigger.window, 60s);
    EXPECT_EQ(r.trigger.min_duration, 2s);
    ASSERT_EQ(r.actions.size(), 2u);
    EXPECT_TRUE(r.actions[0].device.empty());
    EXPECT_EQ(r.actions[0].select.tags, std::vector<std::string>{"non_fire_power"});
    EXPECT_EQ(r.actions[0].delay, 500ms);
    EXPECT_EQ(r.actions[0].timeout, 20s);
    // The selectors pick by metadata and tags; a disabled device is never picked.
    int picked = 0;
    for (const auto &d : c.devices) picked += r.actions[1].select.matches(d) && d.enabled;
    EXPECT_EQ(picked, 2);
    EXPECT_TRUE(r.actions[0].select.matches(*c.find_device("afb-3")));
    EXPECT_FALSE(r.actions[0].select.matches(*c.find_device("gas-1")));
    EXPECT_EQ(r.actions[1].select.describe(), "class gas_shutoff_valve, building A");
}

TEST(Linkage, ADeviceThatDoesNotExistIsNamedWithTheNearestOne) {
    EXPECT_EQ(snippet_error(rule("", "any = [{ device = \"gas-l\", code = \"gas_level_2\" }]\n", close_gas1)),
              "site.toml:25:19: linkage[0].trigger.any[0].device: device 'gas-l' is not defined (did you mean "
              "'gas-1' or 'gas-2'?)");
    EXPECT_THAT(snippet_error(rule("", gas1_level2, "[[linkage.action]]\ndevice = \"off\"\ncommand = \"close_valve\"\n")),
                HasSubstr("linkage[0].action[0].device: device 'off' is disabled"));
}

TEST(Linkage, SelectorsThatPickNothingAreRefused) {
    EXPECT_THAT(snippet_error(rule("", "any = [{ building = \"Z\" }]\n", close_gas1)),
                HasSubstr("linkage[0].trigger.any[0]: matches no enabled device of the site (building Z)"));
    EXPECT_THAT(snippet_error(rule("", gas1_level2, "[[linkage.action]]\nselect = { tags = [\"nope\"] }\ncommand = \"x\"\n")),
                HasSubstr("linkage[0].action[0].select: matches no enabled device of the site (tag nope)"));
    EXPECT_THAT(snippet_error(rule("", gas1_level2, "[[linkage.action]]\nselect = {}\ncommand = \"x\"\n")),
                HasSubstr("an empty selector would pick every device"));
    EXPECT_THAT(snippet_error(rule("", "any = [{ kind = \"fault\" }]\n", close_gas1)),
                HasSubstr("a condition needs a device, a code or site metadata"));
    // An empty tag list is no selector at all: it would pick every device (or every fault of the site).
    EXPECT_THAT(snippet_errors(rule("", gas1_level2, "[[linkage.action]]\nselect = { tags = [] }\ncommand = \"x\"\n")),
                ::testing::Contains(HasSubstr("an empty list picks by no tag")));
    EXPECT_THAT(snippet_errors(rule("", "any = [{ kind = \"fault\", tags = [] }]\n", close_gas1)),
                ::testing::Contains(HasSubstr("a condition needs a device, a code or site metadata")));
}

TEST(Linkage, AnAllThatCannotCountIsRefused) {
    EXPECT_THAT(snippet_error(rule("", "all = [{ device = \"gas-1\" }]\n", close_gas1)),
                HasSubstr("count = 2 independent devices, but the conditions match only 1"));
    // A fire panel's detectors are one device: counted by condition, one device is enough.
    EXPECT_EQ(snippet_errors(rule("", "all = [{ device = \"gas-1\" }]\nindependent = \"condition\"\n", close_gas1)).size(),
              0u);
    EXPECT_THAT(snippet_error(rule("", gas1_level2 + "count = 2\n", close_gas1)),
                HasSubstr("linkage[0].trigger.count: only used with all"));
}

TEST(Linkage, ShapeErrorsEachNameTheirKey) {
    const auto errors = snippet_errors(rule(
        "mode = \"sometimes\"\nends = \"never\"\nconfirm_within_s = 5\n", "any = []\nwindow_s = 0\n",
        "[[linkage.action]]\ndevice = \"gas-1\"\nselect = { floor = \"1F\" }\ncommand = \"\"\ndelay_ms = -1\n"
        "colour = \"red\"\n"));
    const auto all = all_errors(errors);
    for (const char *key : {"linkage[0].mode", "linkage[0].ends", "linkage[0].confirm_within_s", "linkage[0].trigger.any",
                            "linkage[0].trigger.window_s", "linkage[0].action[0]: expected device (one device) or "
                                                           "select (a group by site metadata), got both",
                            "linkage[0].action[0].command", "linkage[0].action[0].delay_ms",
                            "linkage[0].action[0].colour: unknown key"})
        EXPECT_THAT(all, HasSubstr(key));
}

TEST(Linkage, ARuleNeedsATriggerAndAnAction) {
    const auto errors = snippet_errors(devices + "[[linkage]]\nid = \"r\"\n");
    const auto all = all_errors(errors);
    EXPECT_THAT(all, HasSubstr("linkage[0].trigger: missing"));
    EXPECT_THAT(all, HasSubstr("linkage[0].action: missing (expected at least one [[linkage[0].action]] table"));
    EXPECT_THAT(snippet_error(rule("", "any = [{ device = \"gas-1\" }]\nall = [{ device = \"gas-2\" }]\n", close_gas1)),
                HasSubstr("expected any (one signal fires the rule) or all (count independent sources), got both"));
}

TEST(Linkage, RuleIdsAreUnique) {
    const std::string one = "[[linkage]]\nid = \"r\"\n[linkage.trigger]\n" + gas1_level2 + close_gas1;
    EXPECT_THAT(snippet_error(devices + one + one), HasSubstr("duplicate linkage id 'r' (first at site.toml:22:1)"));
}

TEST(Linkage, DeviceTagsAreStrings) {
    EXPECT_THAT(snippet_error("[[device]]\nid = \"d\"\ndriver = \"x\"\nclass = \"fire_panel\"\ntags = [\"a\", 3]\n"),
                HasSubstr("device[0].tags[1]: expected a non-empty string, got an integer"));
    EXPECT_EQ(snippet_loads("[[device]]\nid = \"d\"\ndriver = \"x\"\nclass = \"fire_panel\"\ntags = [\"a\", \"b\"]\n")
                  .devices.at(0)
                  .tags,
              (std::vector<std::string>{"a", "b"}));
}
