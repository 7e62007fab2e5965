#include "report.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>

#include <firelink/text.hpp>

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

std::string js(std::string_view s) { return firelink::text::json_string(s); }

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
    std::map<std::string, int> counts;
    for (const auto &c : r.checks) ++counts[std::string(to_string(c.result))];
    std::string o = "{\n";
    o += "  \"suite\": {\"name\": \"firelink-conform\", \"version\": " + js(suite_version) + "},\n";
    o += "  \"plugin\": {\"file\": " + js(r.plugin_file) + ", \"path\": " + js(r.plugin_path) +
         ", \"sha256\": " + js(r.plugin_sha256) + ", \"loaded\": " + (r.facts.loaded ? "true" : "false");
    if (!r.facts.loaded) o += ", \"refusal\": " + js(r.facts.refusal);
    o += ", \"id\": " + js(r.facts.id) + ", \"name\": " + js(r.facts.name) + ", \"vendor\": " + js(r.facts.vendor) +
         ", \"version\": " + js(r.facts.version) + ", \"abi_version\": " + js(version_text(r.facts.built_abi)) +
         ", \"agreed_abi_version\": " + js(version_text(r.facts.agreed_abi)) + ", \"drivers\": [";
    for (std::size_t i = 0; i < r.facts.drivers.size(); ++i) {
        const auto &d = r.facts.drivers[i];
        const auto sp = d.find(' ');
        o += std::string(i ? ", " : "") + "{\"id\": " + js(d.substr(0, sp)) + ", \"device_class\": " +
             js(sp == std::string::npos ? "" : d.substr(sp + 1)) + "}";
    }
    o += "]},\n";
    o += "  \"run\": {\"level\": " + js(to_string(r.run_level)) + ", \"seed\": " + std::to_string(r.seed) +
         ", \"only\": " + js(r.only) + ", \"skip\": " + js(r.skip) + ", \"host\": " + js(r.host_machine) + ", \"device_source\": " + js(r.device_source) +
         ", \"started\": " + js(iso8601(r.started)) + ", \"ended\": " + js(iso8601(r.ended)) + "},\n";
    o += "  \"summary\": {";
    bool first = true;
    for (status s : {status::passed, status::failed, status::crashed, status::timeout, status::skipped, status::warning}) {
        o += std::string(first ? "" : ", ") + js(to_string(s)) + ": " + std::to_string(counts[std::string(to_string(s))]);
        first = false;
    }
    o += std::string(", \"verdict\": ") + (r.any_failure() ? "\"fail\"" : "\"pass\"") + "},\n";
    o += "  \"checks\": [\n";
    for (std::size_t i = 0; i < r.checks.size(); ++i) {
        const auto &c = r.checks[i];
        o += "    {\"id\": " + js(c.id) + ", \"status\": " + js(to_string(c.result)) +
             ", \"duration_ms\": " + std::to_string(c.duration.count()) + ", \"requirements\": [";
        for (std::size_t k = 0; k < c.requirements.size(); ++k) o += std::string(k ? ", " : "") + js(c.requirements[k]);
        o += "], \"message\": " + js(c.message);
        if (!c.reproduce.empty()) o += ", \"reproduce\": " + js(c.reproduce);
        o += std::string("}") + (i + 1 < r.checks.size() ? "," : "") + "\n";
    }
    o += "  ]\n}\n";
    return o;
}

std::string to_junit(const run_record &r) {
    std::size_t failures = 0, errors = 0, skipped = 0;
    std::chrono::milliseconds total{0};
    for (const auto &c : r.checks) {
        failures += c.result == status::failed;
        errors += c.result == status::crashed || c.result == status::timeout;
        skipped += c.result == status::skipped;
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
        case status::warning: o += "      <system-out>warning: " + xml(c.message) + "</system-out>\n"; break;
        case status::passed: break;
        }
        o += "    </testcase>\n";
    }
    o += "  </testsuite>\n</testsuites>\n";
    return o;
}

}  // namespace firelink::conform
