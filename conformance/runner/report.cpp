#include "report.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>

#include <algorithm>

#include <nlohmann/json.hpp>

#include <firelink/text.hpp>

#include "abi_requirements.h"

#include "firelink/core/event_check.hpp"

namespace firelink::conform {

bool run_record::any_failure() const {
    for (const auto &c : checks)
        if (c.result == status::failed || c.result == status::crashed || c.result == status::timeout) return true;
    return false;
}

std::string iso8601(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string sha256_file(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) EVP_DigestUpdate(ctx, buf, static_cast<std::size_t>(in.gcount()));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    return firelink::text::to_hex({md, len});
}

namespace {

std::string version_text(std::uint32_t v) {
    return std::to_string(v >> 22) + "." + std::to_string((v >> 12) & 0x3ff) + "." + std::to_string(v & 0xfff);
}

std::string xml(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '&': out += "&amp;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') out += ' ';
            else out += c;
        }
    }
    return out;
}

std::string seconds(std::chrono::milliseconds d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(d.count()) / 1000.0);
    return buf;
}

}  // namespace

std::string to_json(const run_record &r) {
    using json = nlohmann::json;
    std::map<std::string, int> counts;
    for (const auto &c : r.checks) ++counts[std::string(to_string(c.result))];
    json drivers = json::array();
    for (const auto &d : r.facts.drivers) {
        const auto sp = d.find(' ');
        drivers.push_back({{"id", d.substr(0, sp)}, {"device_class", sp == std::string::npos ? "" : d.substr(sp + 1)}});
    }
    json plugin{{"file", r.plugin_file},        {"path", r.plugin_path},
                {"sha256", r.plugin_sha256},    {"loaded", r.facts.loaded},
                {"id", r.facts.id},             {"name", r.facts.name},
                {"vendor", r.facts.vendor},     {"version", r.facts.version},
                {"license", r.facts.license},   {"abi_version", version_text(r.facts.built_abi)},
                {"agreed_abi_version", version_text(r.facts.agreed_abi)}, {"drivers", std::move(drivers)}};
    if (!r.facts.loaded) plugin["refusal"] = r.facts.refusal;
    json configs = json::array();
    for (const auto &c : r.configs) configs.push_back({{"driver", c.driver}, {"file", c.file}, {"sha256", c.sha256}});
    json scripts = json::array();
    for (const auto &c : r.scripts)
        scripts.push_back({{"file", c.file}, {"sha256", c.sha256}, {"driver", c.driver}, {"name", c.name}});
    json run{{"level", to_string(r.run_level)}, {"seed", r.seed},
             {"only", r.only}, {"skip", r.skip},
             {"host", r.host_machine}, {"glibc", r.glibc},
             {"device_source", r.device_source}, {"command_line", r.command_line},
             {"configs", std::move(configs)}, {"scripts", std::move(scripts)}, {"leniency", r.leniency},
             {"started", iso8601(r.started)}, {"ended", iso8601(r.ended)}};
    if (!r.sim_path.empty()) run["simulator"] = {{"path", r.sim_path}, {"sha256", r.sim_sha256}};
    json summary = json::object();
    for (status st : {status::passed, status::failed, status::crashed, status::timeout, status::skipped,
                      status::warning, status::not_exercised})
        summary[std::string(to_string(st))] = counts[std::string(to_string(st))];
    summary["verdict"] = r.any_failure() ? "fail" : "pass";
    // What was not run, by reason: at the top, so that a pass with many skips is read as what it is.
    std::map<std::string, std::vector<std::string>> by_reason;
    for (const auto &c : r.checks)
        if (c.result == status::skipped) by_reason[c.message].push_back(c.id);
    json skipped = json::array();
    for (auto &[reason, ids] : by_reason) skipped.push_back({{"reason", reason}, {"checks", std::move(ids)}});
    // What ran and judged nothing: never counted as a pass.
    json unexercised = json::array();
    for (const auto &c : r.checks)
        if (c.result == status::not_exercised) unexercised.push_back({{"check", c.id}, {"why", c.message}});
    json checks = json::array();
    for (const auto &c : r.checks) {
        json j{{"id", c.id},
               {"status", to_string(c.result)},
               {"duration_ms", c.duration.count()},
               {"requirements", c.requirements},
               {"message", c.message}};
        if (!c.reproduce.empty()) j["reproduce"] = c.reproduce;
        checks.push_back(std::move(j));
    }
    json requirements = json::array();
    for (const auto &v : requirement_verdicts(r))
        requirements.push_back({{"id", v.id}, {"verdict", v.verdict}, {"checks", v.checks}});
    const json report{{"suite", {{"name", "firelink-conform"}, {"version", suite_version}, {"sha256", r.suite_sha256}}},
                      {"plugin", std::move(plugin)},
                      {"run", std::move(run)},
                      {"summary", std::move(summary)},
                      {"skipped", std::move(skipped)},
                      {"not_exercised", std::move(unexercised)},
                      {"requirements", std::move(requirements)},
                      {"checks", std::move(checks)}};
    return text::dump_json(report) + "\n";
}

std::vector<requirement_verdict> requirement_verdicts(const run_record &r) {
    std::vector<requirement_verdict> out;
    for (const auto id : abi_requirements) {
        requirement_verdict v{std::string(id), "not checked", {}};
        bool any_run = false, failed = false, warned = false;
        // FL-PLUGIN-23 (every ABI function returns normally to its C caller) is judged by every check that ran:
        // a call that crashed its check's process, or an exception that reached the suite, broke it.
        if (id == std::string_view("FL-PLUGIN-23")) {
            for (const auto &c : r.checks) {
                if (c.result == status::skipped) continue;
                v.checks.push_back(c.id);
                any_run = true;
                failed = failed || c.result == status::crashed ||
                         c.message.find("exception escaped") != std::string::npos;
            }
            if (any_run) v.verdict = failed ? "failed" : "passed";
            out.push_back(std::move(v));
            continue;
        }
        for (const auto &c : r.checks) {
            if (std::find(c.requirements.begin(), c.requirements.end(), id) == c.requirements.end()) continue;
            v.checks.push_back(c.id);
            if (c.result == status::skipped || c.result == status::not_exercised) continue;
            any_run = true;
            failed = failed || c.result == status::failed || c.result == status::crashed || c.result == status::timeout;
            warned = warned || c.result == status::warning;
        }
        if (any_run) v.verdict = failed ? "failed" : warned ? "warning" : "passed";
        out.push_back(std::move(v));
    }
    return out;
}

std::string to_junit(const run_record &r) {
    std::size_t failures = 0, errors = 0, skipped = 0;
    std::chrono::milliseconds total{0};
    for (const auto &c : r.checks) {
        failures += c.result == status::failed;
        errors += c.result == status::crashed || c.result == status::timeout;
        skipped += c.result == status::skipped || c.result == status::warning || c.result == status::not_exercised;
        total += c.duration;
    }
    const std::string suite = r.facts.id.empty() ? r.plugin_file : r.facts.id;
    std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    o += "<testsuites name=\"firelink-conform\" tests=\"" + std::to_string(r.checks.size()) + "\" failures=\"" +
         std::to_string(failures) + "\" errors=\"" + std::to_string(errors) + "\" time=\"" + seconds(total) + "\">\n";
    o += "  <testsuite name=\"" + xml(suite) + "\" tests=\"" + std::to_string(r.checks.size()) + "\" failures=\"" +
         std::to_string(failures) + "\" errors=\"" + std::to_string(errors) + "\" skipped=\"" +
         std::to_string(skipped) + "\" time=\"" + seconds(total) + "\" timestamp=\"" + iso8601(r.started) +
         "\" hostname=\"" + xml(r.host_machine) + "\">\n";
    o += "    <properties>\n";
    auto prop = [&](const std::string &k, const std::string &v) {
        o += "      <property name=\"" + xml(k) + "\" value=\"" + xml(v) + "\"/>\n";
    };
    prop("plugin.file", r.plugin_file);
    prop("plugin.sha256", r.plugin_sha256);
    prop("plugin.version", r.facts.version);
    prop("plugin.abi_version", version_text(r.facts.built_abi));
    prop("suite.version", std::string(suite_version));
    prop("level", std::string(to_string(r.run_level)));
    prop("seed", std::to_string(r.seed));
    for (const auto &l : r.leniency) prop("leniency", l);
    o += "    </properties>\n";
    for (const auto &c : r.checks) {
        std::string reqs;
        for (const auto &q : c.requirements) reqs += (reqs.empty() ? "" : " ") + q;
        o += "    <testcase classname=\"" + xml(suite) + "\" name=\"" + xml(c.id) + "\" time=\"" + seconds(c.duration) +
             "\">\n";
        o += "      <properties><property name=\"requirements\" value=\"" + xml(reqs) + "\"/></properties>\n";
        const std::string body = xml(c.message + (c.reproduce.empty() ? "" : "\nreproduce: " + c.reproduce));
        switch (c.result) {
        case status::failed: o += "      <failure message=\"" + xml(c.message) + "\">" + body + "</failure>\n"; break;
        case status::crashed:
        case status::timeout:
            o += "      <error type=\"" + std::string(to_string(c.result)) + "\" message=\"" + xml(c.message) + "\">" +
                 body + "</error>\n";
            break;
        case status::skipped: o += "      <skipped message=\"" + xml(c.message) + "\"/>\n"; break;
        // JUnit has no warning: a skipped test with the word in front shows it as not green on a dashboard.
        case status::warning: o += "      <skipped message=\"warning: " + xml(c.message) + "\"/>\n"; break;
        case status::not_exercised: o += "      <skipped message=\"not exercised: " + xml(c.message) + "\"/>\n"; break;
        case status::passed: break;
        }
        o += "    </testcase>\n";
    }
    o += "  </testsuite>\n</testsuites>\n";
    return o;
}

}  // namespace firelink::conform
