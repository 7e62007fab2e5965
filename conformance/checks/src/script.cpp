// Reading device scripts (docs/device-scripts.md). Every key is checked: a misspelt key is an error naming the
// file, line and key, never a silently ignored line.
#include "firelink/conform/script.hpp"

#include <algorithm>
#include "firelink/site/driver_config.hpp"
#include <set>

#include <toml++/toml.h>

namespace firelink::conform {

namespace {

std::string where(const std::filesystem::path &file, const toml::node &n) {
    return file.string() + ":" + std::to_string(n.source().begin.line);
}

bool only_keys(const std::filesystem::path &file, const toml::table &t, const std::set<std::string> &known,
               const std::string &what, std::string &why) {
    for (const auto &[k, v] : t)
        if (!known.count(std::string(k.str()))) {
            why = where(file, v) + ": key '" + std::string(k.str()) + "' is not a key of " + what;
            return false;
        }
    return true;
}

bool text(const std::filesystem::path &file, const toml::table &t, const char *key, std::string &out,
          std::string &why, bool required = false) {
    const auto *n = t.get(key);
    if (!n) {
        if (required) why = file.string() + ": key '" + key + "' is missing";
        return !required;
    }
    if (!n->is_string()) {
        why = where(file, *n) + ": key '" + key + "': must be a string";
        return false;
    }
    out = **n->as_string();
    return true;
}

bool integer(const std::filesystem::path &file, const toml::table &t, const char *key, int &out, std::string &why) {
    const auto *n = t.get(key);
    if (!n) return true;
    if (!n->is_integer() || **n->as_integer() < 0 || **n->as_integer() > 600000) {
        why = where(file, *n) + ": key '" + key + "': must be a number of milliseconds (0..600000)";
        return false;
    }
    out = static_cast<int>(**n->as_integer());
    return true;
}

bool boolean(const std::filesystem::path &file, const toml::table &t, const char *key, bool &out, std::string &why) {
    const auto *n = t.get(key);
    if (!n) return true;
    if (!n->is_boolean()) {
        why = where(file, *n) + ": key '" + key + "': must be true or false";
        return false;
    }
    out = **n->as_boolean();
    return true;
}

bool event_of(const std::filesystem::path &file, const toml::table &t, script_event &e, std::string &why) {
    if (!only_keys(file, t, {"kind", "code", "as", "ends", "fields"}, "an event", why)) return false;
    if (!text(file, t, "kind", e.kind, why, true) || !text(file, t, "code", e.code, why, true) ||
        !text(file, t, "as", e.as, why) || !text(file, t, "ends", e.ends, why))
        return false;
    // Telemetry and command results are not conditions a step can wait for: telemetry comes as the driver samples,
    // and a command's result is the command step's 'result'.
    static const std::set<std::string> kinds = {"alarm", "pre_alarm", "fault", "restore", "status"};
    if (!kinds.count(e.kind)) {
        why = where(file, t) + ": key 'kind': '" + e.kind + "' is not an event kind a step can expect (alarm, "
              "pre_alarm, fault, restore, status; a command's result is the step's 'result')";
        return false;
    }
    if (e.kind == "restore" && e.ends.empty()) {
        why = where(file, t) + ": a restore names what it ends: key 'ends' (the 'as' of the raising event)";
        return false;
    }
    if (const auto *f = t.get("fields"); f && !f->is_table())
        return why = where(file, *f) + ": key 'fields': must be a table (fields = { name = \"value\" })", false;
    if (const auto *fields = t.get_as<toml::table>("fields"))
        for (const auto &[k, v] : *fields) {
            if (v.is_string()) e.fields[std::string(k.str())] = **v.as_string();
            else if (v.is_integer()) e.fields[std::string(k.str())] = std::to_string(**v.as_integer());
            else if (v.is_boolean()) e.fields[std::string(k.str())] = **v.as_boolean() ? "true" : "false";
            else return why = where(file, v) + ": key 'fields." + std::string(k.str()) +
                              "': must be a string, integer or boolean", false;
        }
    return true;
}

// A script's driver config is bounded like everything the suite reads from a vendor.
constexpr std::size_t max_config_bytes = 64 * 1024;

// answers = [ { when = "...", reply = "..." }, ... ]
bool answers_of(const std::filesystem::path &file, const toml::node &n, std::vector<script_answer> &out,
                std::string &why) {
    const auto *list = n.as_array();
    if (!list) return why = where(file, n) + ": key 'answers': an array of { when = \"...\", reply = \"...\" }", false;
    for (const auto &a : *list) {
        const auto *t = a.as_table();
        if (!t) return why = where(file, a) + ": key 'answers': each is a table { when, reply }", false;
        script_answer x;
        x.line = static_cast<int>(a.source().begin.line);
        if (!only_keys(file, *t, {"when", "reply"}, "an answer", why) || !text(file, *t, "when", x.when, why, true) ||
            !text(file, *t, "reply", x.reply, why, true))
            return false;
        out.push_back(std::move(x));
    }
    return true;
}

}  // namespace

bool device_script::responder() const noexcept {
    const bool answers_requests =
        !answers.empty() || std::any_of(steps.begin(), steps.end(), [](const script_step &s) { return s.sets_answers; });
    return answers_requests && std::none_of(steps.begin(), steps.end(), [](const script_step &s) { return !s.send.empty(); });
}

bool load_script(const std::filesystem::path &file, device_script &s, std::string &why) {
    toml::table doc;
    try {
        doc = toml::parse_file(file.string());
    } catch (const toml::parse_error &e) {
        why = file.string() + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description());
        return false;
    }
    s = {};
    s.file = file;
    if (!only_keys(file, doc, {"script", "driver", "name", "description", "device", "step"}, "a device script", why))
        return false;
    const auto *version = doc.get("script");
    if (!version || !version->is_integer() || **version->as_integer() != 1) {
        why = file.string() + ": key 'script': must be 1 (the format's version)";
        return false;
    }
    if (!text(file, doc, "driver", s.driver, why, true) || !text(file, doc, "name", s.name, why, true) ||
        !text(file, doc, "description", s.description, why))
        return false;
    const auto *dev = doc.get_as<toml::table>("device");
    if (!dev) return why = file.string() + ": table [device] is missing", false;
    if (!only_keys(file, *dev,
                   {"wire", "identity", "hello", "hello_answer", "garbage", "heartbeat", "heartbeat_ms",
                    "resend_same", "pipelined", "answers", "config"},
                   "[device]", why) ||
        !text(file, *dev, "wire", s.wire, why, true) || !text(file, *dev, "identity", s.identity, why) ||
        !text(file, *dev, "hello", s.hello, why) || !text(file, *dev, "hello_answer", s.hello_answer, why) ||
        !text(file, *dev, "garbage", s.garbage, why) || !text(file, *dev, "heartbeat", s.heartbeat, why) ||
        !integer(file, *dev, "heartbeat_ms", s.heartbeat_ms, why) ||
        !boolean(file, *dev, "resend_same", s.resend_same, why) || !boolean(file, *dev, "pipelined", s.pipelined, why))
        return false;
    if (s.wire != "tcp_accepted" && s.wire != "tcp_client" && s.wire != "serial")
        return why = where(file, *dev) + ": key 'wire': '" + s.wire + "' is not tcp_accepted, tcp_client or serial",
               false;
    if (const auto *a = dev->get("answers"); a && !answers_of(file, *a, s.answers, why)) return false;
    if (const auto *c = dev->get("config")) {
        // The driver gets it as from a site's [device.config]: the same conversion.
        const auto *table = c->as_table();
        if (!table) return why = where(file, *c) + ": key 'config': must be a table (the driver's config)", false;
        s.config = site::to_msgpack(*table);
        if (s.config.size() > max_config_bytes)
            return why = where(file, *c) + ": key 'config': over " + std::to_string(max_config_bytes / 1024) + " KiB",
                   false;
    }
    const auto *steps = doc.get_as<toml::array>("step");
    if (!steps || steps->empty()) return why = file.string() + ": no [[step]]: a script plays at least one", false;
    std::set<std::string> names;
    for (const auto &node : *steps) {
        const auto *t = node.as_table();
        if (!t) return why = where(file, node) + ": each step is a table ([[step]])", false;
        script_step st;
        st.line = static_cast<int>(node.source().begin.line);
        if (!only_keys(file, *t,
                       {"send", "answer", "after_commit", "state", "event", "command", "args", "writes", "reply",
                        "result", "answers"},
                       "a [[step]]", why) ||
            !text(file, *t, "send", st.send, why) || !text(file, *t, "answer", st.answer, why) ||
            !boolean(file, *t, "after_commit", st.after_commit, why) || !text(file, *t, "state", st.state, why) ||
            !text(file, *t, "command", st.command, why) || !text(file, *t, "writes", st.writes, why) ||
            !text(file, *t, "reply", st.reply, why))
            return false;
        if (const auto *r = t->get("result")) {
            if (!r->is_boolean()) return why = where(file, *r) + ": key 'result': must be true or false", false;
            st.result = **r->as_boolean();
        }
        if (const auto *a = t->get("args"); a && !a->is_table())
            return why = where(file, *a) + ": key 'args': must be a table (args = { name = \"value\" })", false;
        if (const auto *args = t->get_as<toml::table>("args"))
            for (const auto &[k, v] : *args) {
                if (!v.is_string()) return why = where(file, v) + ": key 'args." + std::string(k.str()) + "': must be a string", false;
                st.args[std::string(k.str())] = **v.as_string();
            }
        if (const auto *a = t->get("answers")) {
            if (!answers_of(file, *a, st.answers, why)) return false;
            st.sets_answers = true;
        }
        if (!st.send.empty() && !st.command.empty())
            return why = file.string() + ":" + std::to_string(st.line) + ": a step either sends a frame ('send') or "
                         "gives a command ('command')", false;
        if (st.send.empty() && st.command.empty() && !st.sets_answers)
            return why = file.string() + ":" + std::to_string(st.line) + ": a step sends a frame ('send'), gives a "
                         "command ('command') or changes the device's answers ('answers')", false;
        if (!st.command.empty() && !st.result)
            return why = file.string() + ":" + std::to_string(st.line) + ": a command step says its result ('result')",
                   false;
        if (st.after_commit && st.answer.empty())
            return why = file.string() + ":" + std::to_string(st.line) + ": 'after_commit' without an 'answer'", false;
        if (const auto *ev = t->get("event")) {
            std::vector<const toml::table *> list;
            if (const auto *one = ev->as_table()) list.push_back(one);
            else if (const auto *many = ev->as_array())
                for (const auto &e : *many)
                    if (const auto *et = e.as_table()) list.push_back(et);
                    else return why = where(file, e) + ": key 'event': each is a table", false;
            else return why = where(file, *ev) + ": key 'event': a table or an array of tables", false;
            for (const auto *et : list) {
                script_event e;
                if (!event_of(file, *et, e, why)) return false;
                if (!e.ends.empty() && !names.count(e.ends))
                    return why = where(file, *et) + ": key 'ends': no earlier event is named '" + e.ends + "'", false;
                if (!e.as.empty()) names.insert(e.as);
                st.events.push_back(std::move(e));
            }
        }
        if (!st.state.empty() &&
            std::none_of(st.events.begin(), st.events.end(), [](const script_event &e) {
                return e.kind == "alarm" || e.kind == "pre_alarm" || e.kind == "fault";
            }))
            return why = file.string() + ":" + std::to_string(st.line) + ": 'state' belongs to a step that raises a "
                         "condition (an alarm, pre_alarm or fault event)", false;
        s.steps.push_back(std::move(st));
    }
    if (s.responder())
        for (const auto &st : s.steps)
            if (!st.state.empty())
                return why = file.string() + ":" + std::to_string(st.line) + ": a device that only answers sends no "
                             "'state': its answers are its state", false;
    // A device that only answers has no heartbeat of its own: its answers are its traffic, and heartbeat_ms alone
    // says how often the driver asks (script.silence's liveness budget).
    if (s.responder() ? !s.heartbeat.empty() : s.heartbeat.empty() != (s.heartbeat_ms == 0))
        return why = where(file, *dev) + (s.responder()
                                              ? ": a device that only answers sends no 'heartbeat' of its own; "
                                                "'heartbeat_ms' alone says how often the driver asks"
                                              : ": keys 'heartbeat' and 'heartbeat_ms' go together"),
               false;
    return true;
}

bool load_scripts(const std::filesystem::path &dir, std::vector<device_script> &out, std::string &why) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return why = dir.string() + ": not a folder of device scripts", false;
    std::vector<std::filesystem::path> files;
    for (const auto &e : std::filesystem::directory_iterator(dir, ec))
        if (e.path().extension() == ".toml") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto &f : files) {
        device_script s;
        if (!load_script(f, s, why)) return false;
        out.push_back(std::move(s));
    }
    return true;
}

std::filesystem::path default_scripts_dir(const std::filesystem::path &plugin) {
    auto p = plugin;
    return p.replace_extension(".scripts");
}

}  // namespace firelink::conform
