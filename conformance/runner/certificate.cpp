#include "certificate.hpp"

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <firelink/signing/minisign.hpp>
#include <firelink/text.hpp>

namespace firelink::conform {

namespace {

using json = nlohmann::json;

}  // namespace

std::string certificate_statement(const run_record &r, const std::string &report_json, const std::string &command_line) {
    auto report = json::parse(report_json);
    report["command_line"] = command_line;
    const json statement{{"_type", signing::statement_type},
                         {"subject", {{{"name", r.plugin_file}, {"digest", {{"sha256", r.plugin_sha256}}}}}},
                         {"predicateType", signing::conformance_predicate_type},
                         {"predicate", std::move(report)}};
    return text::dump_json(statement);
}

int verify_main(int argc, char **argv) {
    CLI::App app{"firelink-conform verify: checks a conformance certificate offline"};
    std::string cert, plugin, level_name = "basic";
    std::vector<std::string> keys;
    app.add_option("certificate", cert, "the certificate (a DSSE envelope, JSON) to check")->required();
    app.add_option("--public-key", keys, "a certifier's Ed25519 public key (PEM or minisign .pub); repeatable")
        ->required();
    app.add_option("--plugin", plugin, "the plugin file the certificate must be for")->required();
    app.add_option("--level", level_name, "the lowest level accepted: basic (default), standard, strict or soak")
        ->check(CLI::IsMember({"basic", "standard", "strict", "soak"}));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }
    std::vector<signing::ed25519_public> trusted;
    for (const auto &k : keys) {
        auto key = signing::read_ed25519_public(k);
        if (!key) {
            std::cerr << "firelink-conform verify: --public-key " << key.why() << "\n";
            return 2;
        }
        trusted.push_back(*key);
    }
    const auto text = signing::read_small_file(cert, signing::max_envelope_bytes);
    if (!text) {
        std::cerr << "firelink-conform verify: " << cert << ": cannot be read (or is over 4 MiB)\n";
        return 2;
    }
    const auto sha = sha256_file(plugin);
    if (sha.empty()) {
        std::cerr << "firelink-conform verify: --plugin " << plugin << ": cannot be read\n";
        return 2;
    }
    const auto f = signing::check_certificate(*text, trusted, sha, level_name);
    if (!f) {
        std::cout << "INVALID: " << cert << ": " << f.why() << "\n";
        return 1;
    }
    std::cout << "VALID: " << f->plugin_file << " (" << f->plugin_id << " " << f->plugin_version << ", sha256 "
              << f->plugin_sha256 << ") passed level " << f->level << " of firelink-conform " << f->suite_version
              << " (" << f->ended << "), signed by " << f->key_id << "\n";
    return 0;
}

}  // namespace firelink::conform
