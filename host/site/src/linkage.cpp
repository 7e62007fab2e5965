// [[linkage]]: each rule's trigger and actions, read against the devices of the site (docs/linkage.md). A rule that
// could never fire or never move anything is an error here, not a surprise during a fire: every device it names must
// exist, every selector must pick at least one device, and an `all` rule must be able to see `count` sources.
// Whether the drivers declare the commands is checked where the plugins are loaded (firelink-host check-config, run).
#include "firelink/site/driver_config.hpp"
#include "names.hpp"
#include "sections.hpp"

#include <firelink/site/suggest.hpp>

#include <algorithm>
#include <map>
#include <set>

namespace firelink::site {

bool device_selector::matches(const device_config &d) const {
    if (!device.empty() && d.id != device) return false;
    if (!device_class.empty() && d.device_class != device_class) return false;
    if (!site.empty() && d.meta.site != site) return false;
    if (!building.empty() && d.meta.building != building) return false;
    if (!floor.empty() && d.meta.floor != floor) return false;
    if (!sector.empty() && d.meta.sector != sector) return false;
    for (const auto &t : tags)
        if (std::find(d.tags.begin(), d.tags.end(), t) == d.tags.end()) return false;
    return true;
}

std::string device_selector::describe() const {
    std::string out;
    const auto add = [&](std::string_view key, const std::string &value) {
        if (!value.empty()) out += (out.empty() ? "" : ", ") + std::string(key) + " " + value;
    };
    add("device", device);
    add("class", device_class);
    add("site", site);
    add("building", building);
    add("floor", floor);
    add("sector", sector);
    for (const auto &t : tags) add("tag", t);
    return out.empty() ? "any device" : out;
}

namespace detail {

namespace {

using namespace std::chrono;

class linkage_reader {
public:
    linkage_reader(load_context &cx, site_config &out) : cx_(cx), out_(out) {
        for (const auto &d : out_.devices) device_ids_.push_back(d.id);
    }

    void rule(const toml::table &t, const std::string &path);

private:
    // The selector keys of `r` (a condition or an action's select table) into `s`.
    void selector(table_reader &r, device_selector &s);
    // The enabled devices `s` picks.
    std::vector<const device_config *> picked(const device_selector &s) const;
    // A device a rule names by id: defined and enabled, or reported.
    bool named_device(table_reader &r, std::string_view key, const std::string &id);
    void trigger(table_reader &rule, linkage_rule &out);
    void action(const toml::table &t, const std::string &path, linkage_rule &out);

    load_context &cx_;
    site_config &out_;
    std::vector<std::string> device_ids_;
    std::map<std::string, source_position> rule_ids_;
};

void linkage_reader::selector(table_reader &r, device_selector &s) {
    if (auto v = r.matching("class", is_device_class, device_class_rule, need::optional)) s.device_class = *v;
    if (auto v = r.nonempty_string("site", need::optional)) s.site = *v;
    if (auto v = r.nonempty_string("building", need::optional)) s.building = *v;
    if (auto v = r.nonempty_string("floor", need::optional)) s.floor = *v;
    if (auto v = r.nonempty_string("sector", need::optional)) {
        if (std::find(sectors().begin(), sectors().end(), *v) != sectors().end()) {
            s.sector = *v;
        } else {
            std::string known;
            for (const auto &k : sectors()) known += (known.empty() ? "" : ", ") + k;
            r.error("sector", "expected one of " + known + ", got " + in_quotes(*v));
        }
    }
    if (auto v = r.strings("tags", need::optional)) {
        if (v->empty()) r.error("tags", "an empty list picks by no tag: give at least one, or leave tags out");
        s.tags = std::move(*v);
    }
}

std::vector<const device_config *> linkage_reader::picked(const device_selector &s) const {
    std::vector<const device_config *> out;
    for (const auto &d : out_.devices)
        if (d.enabled && s.matches(d)) out.push_back(&d);
    return out;
}

bool linkage_reader::named_device(table_reader &r, std::string_view key, const std::string &id) {
    const auto *d = out_.find_device(id);
    if (!d) {
        r.error(key, "device '" + id + "' is not defined" + did_you_mean(id, device_ids_));
        return false;
    }
    if (!d->enabled) {
        r.error(key, "device '" + id + "' is disabled (enabled = false): the rule could never use it");
        return false;
    }
    return true;
}

void linkage_reader::rule(const toml::table &t, const std::string &path) {
    table_reader r(t, path, cx_.diag,
                   {"id", "name", "mode", "ends", "order", "confirm_within_s", "trigger", "action"});
    linkage_rule rule;
    rule.path = path;
    rule.where = cx_.diag.where(t.source());
    if (auto id = r.string("id", need::required)) {
        rule.id = *id;
        if (!is_site_id(*id)) {
            r.error("id", "expected " + std::string(site_id_rule) + ", got " + in_quotes(*id));
        } else if (const auto [it, fresh] = rule_ids_.emplace(*id, cx_.diag.where(t.source())); !fresh) {
            r.error("id", "duplicate linkage id '" + *id + "' (first at " + cx_.diag.at_text(it->second) + ")");
        }
    }
    if (auto v = r.string("name", need::optional)) rule.name = *v;
    if (auto v = r.choice("mode", {"auto", "manual", "inhibit"}, need::optional)) rule.mode = *v;
    if (auto v = r.choice("ends", {"reset", "restore"}, need::optional)) rule.latching = *v == "reset";
    if (auto v = r.choice("order", {"sequence", "parallel"}, need::optional)) rule.parallel = *v == "parallel";
    if (auto v = r.integer("confirm_within_s", 10, 3600, need::optional)) rule.confirm_within = seconds(*v);
    trigger(r, rule);
    if (!r.has("action")) {
        r.missing("action", "at least one [[" + path + ".action]] table: what the rule moves");
    } else {
        for_each_table(t, "action", cx_.diag,
                       [&](const toml::table &a, const std::string &p) { action(a, p, rule); }, path);
    }
    out_.linkage.push_back(std::move(rule));
}

void linkage_reader::trigger(table_reader &rule, linkage_rule &out) {
    const toml::table *t = rule.subtable("trigger", need::required);
    if (!t) return;
    table_reader r(*t, rule.path("trigger"), cx_.diag,
                   {"any", "all", "count", "independent", "window_s", "min_duration_s"});
    linkage_trigger &trig = out.trigger;
    if (r.has("any") == r.has("all")) {
        cx_.diag.error(t->source(), r.path(),
                       std::string("expected any (one signal fires the rule) or all (count independent sources), "
                                   "got ") + (r.has("any") ? "both" : "neither"));
        return;
    }
    trig.all = r.has("all");
    const std::string_view list = trig.all ? "all" : "any";
    if (!trig.all)
        for (const std::string_view k : {"count", "independent"})
            if (r.has(k)) r.error(k, "only used with all (an AND of independent sources)");
    if (auto v = r.integer("count", 2, 64, need::optional)) trig.count = static_cast<unsigned>(*v);
    if (auto v = r.choice("independent", {"device", "condition"}, need::optional))
        trig.independent_conditions = *v == "condition";
    if (auto v = r.integer("window_s", 1, 86400, need::optional)) trig.window = seconds(*v);
    if (auto v = r.integer("min_duration_s", 0, 3600, need::optional)) trig.min_duration = seconds(*v);

    const toml::node *n = r.find(list);
    const auto *a = n->as_array();
    if (!a || a->empty()) return r.wrong_type(list, "a non-empty array of conditions, e.g. [{ device = \"gas-1\", "
                                                    "code = \"gas_level_2\" }]");
    std::set<std::string> sources;  // the devices the conditions can hear from
    for (std::size_t i = 0; i < a->size(); ++i) {
        const std::string path = r.path(list) + "[" + std::to_string(i) + "]";
        const toml::node &e = (*a)[i];
        if (!e.is_table()) {
            cx_.diag.error(e.source(), path, "expected a condition table, got " + type_phrase(e));
            continue;
        }
        table_reader c(*e.as_table(), path, cx_.diag,
                       {"device", "class", "code", "kind", "site", "building", "floor", "sector", "tags"});
        trigger_condition cond;
        if (auto v = c.nonempty_string("device", need::optional))
            if (named_device(c, "device", *v)) cond.device = *v;
        selector(c, cond);
        if (auto v = c.choice("kind", {"alarm", "pre_alarm", "fault"}, need::optional)) cond.kind = *v;
        if (auto v = c.nonempty_string("code", need::optional)) cond.code = *v;
        if (static_cast<const site::device_selector &>(cond) == site::device_selector{} && cond.code.empty()) {
            cx_.diag.error(e.source(), path, "a condition needs a device, a code or site metadata to pick its signals");
            continue;
        }
        const auto devices = picked(cond);
        if (devices.empty() && (!c.has("device") || !cond.device.empty())) {
            cx_.diag.error(e.source(), path, "matches no enabled device of the site (" + cond.describe() + ")");
            continue;
        }
        for (const auto *d : devices) sources.insert(d->id);
        trig.conditions.push_back(std::move(cond));
    }
    if (trig.all && !trig.independent_conditions && !sources.empty() && sources.size() < trig.count)
        r.error(list, "count = " + std::to_string(trig.count) + " independent devices, but the conditions match only " +
                          std::to_string(sources.size()) + " (independent = \"condition\" counts each condition of a "
                          "device, as a fire panel's detectors)");
}

void linkage_reader::action(const toml::table &t, const std::string &path, linkage_rule &out) {
    table_reader r(t, path, cx_.diag, {"device", "select", "command", "args", "delay_ms", "timeout_s"});
    linkage_action a;
    a.path = path;
    a.where = cx_.diag.where(t.source());
    if (r.has("device") == r.has("select")) {
        cx_.diag.error(t.source(), path,
                       std::string("expected device (one device) or select (a group by site metadata), got ") +
                           (r.has("device") ? "both" : "neither"));
    } else if (r.has("device")) {
        if (auto v = r.nonempty_string("device", need::required))
            if (named_device(r, "device", *v)) a.device = *v;
    } else if (const toml::table *s = r.subtable("select", need::required)) {
        table_reader sr(*s, r.path("select"), cx_.diag, {"class", "site", "building", "floor", "sector", "tags"});
        selector(sr, a.select);
        if (a.select == site::device_selector{})
            cx_.diag.error(s->source(), sr.path(), "an empty selector would pick every device of the site: say which");
        else if (picked(a.select).empty())
            cx_.diag.error(s->source(), sr.path(),
                           "matches no enabled device of the site (" + a.select.describe() + ")");
    }
    if (auto v = r.nonempty_string("command", need::required)) a.command = *v;
    a.args = to_msgpack(toml::table{});
    if (r.has("args"))
        if (const toml::table *args = r.subtable("args", need::optional)) a.args = to_msgpack(*args);
    if (auto v = r.integer("delay_ms", 0, 3'600'000, need::optional)) a.delay = milliseconds(*v);
    if (auto v = r.integer("timeout_s", 1, 600, need::optional)) a.timeout = seconds(*v);
    out.actions.push_back(std::move(a));
}

}  // namespace

void read_linkage(const toml::table &root, load_context &cx, site_config &out) {
    linkage_reader reader(cx, out);
    for_each_table(root, "linkage", cx.diag, [&](const toml::table &t, const std::string &p) { reader.rule(t, p); });
}

}  // namespace detail

}  // namespace firelink::site
