#include "firelink/conform/check.hpp"

#include <algorithm>
#include <sstream>

#include "checks.hpp"
#include "firelink/core/plugin_loader.hpp"

namespace firelink::conform {

std::string_view to_string(status s) noexcept {
    switch (s) {
    case status::passed: return "passed";
    case status::failed: return "failed";
    case status::crashed: return "crashed";
    case status::timeout: return "timeout";
    case status::skipped: return "skipped";
    case status::warning: return "warning";
    case status::not_exercised: return "not_exercised";
    }
    return "?";
}

std::string_view to_string(level l) noexcept {
    switch (l) {
    case level::basic: return "basic";
    case level::standard: return "standard";
    case level::strict: return "strict";
    case level::soak: return "soak";
    }
    return "?";
}

bool parse_level(std::string_view s, level &out) noexcept {
    for (level l : {level::basic, level::standard, level::strict, level::soak})
        if (s == to_string(l)) {
            out = l;
            return true;
        }
    return false;
}

// The same finding twice says nothing new: each is kept once.
void findings::fail(std::string what) {
    if (failures_.size() < 32 && std::find(failures_.begin(), failures_.end(), what) == failures_.end())
        failures_.push_back(std::move(what));
}
void findings::warn(std::string what) {
    if (warnings_.size() < 32 && std::find(warnings_.begin(), warnings_.end(), what) == warnings_.end())
        warnings_.push_back(std::move(what));
}
void findings::skip(std::string why) { skipped_ = std::move(why); }
void findings::not_exercised(std::string why) {
    if (unexercised_.empty()) unexercised_ = std::move(why);
}
void findings::note(std::string what) {
    if (notes_.size() < 32) notes_.push_back(std::move(what));
}

status findings::verdict() const noexcept {
    if (!failures_.empty()) return status::failed;
    if (!warnings_.empty()) return status::warning;
    if (!unexercised_.empty()) return status::not_exercised;
    if (!skipped_.empty()) return status::skipped;
    return status::passed;
}

std::string findings::message() const {
    const auto &list = !failures_.empty() ? failures_ : warnings_;
    if (list.empty()) {
        if (!unexercised_.empty()) return unexercised_;
        if (!skipped_.empty()) return skipped_;
        std::string out;
        for (const auto &n : notes_) out += (out.empty() ? "" : "; ") + n;
        return out;
    }
    std::string out;
    const std::size_t shown = std::min<std::size_t>(list.size(), 4);
    for (std::size_t i = 0; i < shown; ++i) {
        if (i) out += "; ";
        out += list[i];
    }
    if (list.size() > shown) out += "; and " + std::to_string(list.size() - shown) + " more";
    return out;
}

std::string plugin_facts::serialize() const {
    std::ostringstream o;
    o << "loaded\t" << (loaded ? 1 : 0) << "\nrefusal\t" << refusal << "\nid\t" << id << "\nname\t" << name
      << "\nvendor\t" << vendor << "\nversion\t" << version << "\nlicense\t" << license << "\nbuilt_abi\t"
      << built_abi << "\nagreed_abi\t"
      << agreed_abi << "\n";
    for (const auto &d : drivers) o << "driver\t" << d << "\n";
    return o.str();
}

plugin_facts plugin_facts::parse(std::string_view text) {
    plugin_facts f;
    std::istringstream in{std::string(text)};
    std::string line;
    while (std::getline(in, line)) {
        const auto tab = line.find('\t');
        if (tab == std::string::npos) continue;
        const std::string key = line.substr(0, tab), value = line.substr(tab + 1);
        if (key == "loaded") f.loaded = value == "1";
        else if (key == "refusal") f.refusal = value;
        else if (key == "id") f.id = value;
        else if (key == "name") f.name = value;
        else if (key == "vendor") f.vendor = value;
        else if (key == "version") f.version = value;
        else if (key == "license") f.license = value;
        else if (key == "built_abi") f.built_abi = static_cast<std::uint32_t>(std::stoul(value));
        else if (key == "agreed_abi") f.agreed_abi = static_cast<std::uint32_t>(std::stoul(value));
        else if (key == "driver") f.drivers.push_back(value);
    }
    return f;
}

void probe(const run_options &options, plugin_facts &facts, findings &f) {
    core::plugin_loader loader;
    auto result = loader.load(options.plugin);
    if (!result) {
        facts.refusal = std::string(core::to_string(result.error().reason));
        f.fail("refused by the loader: " + result.error().what());
        return;
    }
    const auto &info = (*result)->info();
    facts.loaded = true;
    facts.id = info.id;
    facts.name = info.name;
    facts.vendor = info.vendor;
    facts.version = info.version;
    facts.license = info.license;
    facts.built_abi = info.built_abi_version;
    facts.agreed_abi = info.agreed_abi_version;
    for (const auto &d : info.drivers) facts.drivers.push_back(d.id + " " + d.device_class);
}

const std::vector<check> &all_checks() {
    static const std::vector<check> checks = [] {
        std::vector<check> v;
        v.push_back({"library.load",
                     {"FL-PLUGIN-2", "FL-PLUGIN-3", "FL-PLUGIN-4", "FL-PLUGIN-5", "FL-PLUGIN-7", "FL-PLUGIN-8",
                      "FL-PLUGIN-9", "FL-PLUGIN-11", "FL-PLUGIN-12", "FL-PLUGIN-13", "FL-PLUGIN-36"},
                     level::basic,
                     "the host's loader loads it (RTLD_NOW | RTLD_LOCAL), negotiates 1.0 and accepts the descriptor",
                     [](const run_options &o, findings &f) {
                         plugin_facts facts;
                         probe(o, facts, f);
                     }});
        add_library_checks(v);
        add_device_checks(v);
        add_command_checks(v);
        add_host_fault_checks(v);
        add_scenario_checks(v);
        add_script_checks(v);
        add_soak_checks(v);
        // Judged by the runner from what every check before it saw (findings::saw_events), not run on its own.
        v.push_back({"suite.events", {"FL-PLUGIN-27"}, level::standard,
                     "the drivers emitted events during the suite: a run that saw none has certified nothing",
                     nullptr});
        return v;
    }();
    return checks;
}

}  // namespace firelink::conform
