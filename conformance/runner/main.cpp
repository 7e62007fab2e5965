// firelink-conform: the certifier's conformance suite for a binary driver plugin (docs/certifiers-guide.md).
#include <gnu/libc-version.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <fstream>
#include <iostream>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include <CLI/CLI.hpp>

#include "certificate.hpp"
#include "isolate.hpp"
#include "report.hpp"

namespace fs = std::filesystem;
using namespace firelink::conform;

namespace {

std::string shell_quote(const std::string &s) {
    if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+") ==
                          std::string::npos)
        return s;
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string exact_regex(const std::string &id) {
    std::string out = "^";
    for (char c : id) {
        if (std::string_view(".[]()*+?^$|\\{}").find(c) != std::string_view::npos) out += '\\';
        out += c;
    }
    return out + "$";
}

std::string machine() {
    utsname u{};
    if (uname(&u) != 0) return "unknown";
    return std::string(u.sysname) + " " + u.nodename + " " + u.release + " " + u.machine;
}

bool read_file(const std::string &path, std::vector<std::uint8_t> &out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    out.assign(std::istreambuf_iterator<char>(in), {});
    return true;
}

const char *colour(status s, bool tty) {
    if (!tty) return "";
    switch (s) {
    case status::passed: return "\033[32m";
    case status::warning:
    case status::not_exercised:
    case status::skipped: return "\033[33m";
    default: return "\033[31m";
    }
}

// Whether `path` can be written (it exists and is writable, or its folder is), so that a bad output path is a usage
// error before a run of minutes, not a surprise after it.
bool writable(const std::string &path) {
    const fs::path p = fs::absolute(path);
    if (fs::exists(p)) return !fs::is_directory(p) && ::access(p.c_str(), W_OK) == 0;
    const auto dir = p.parent_path();
    return fs::is_directory(dir) && ::access(dir.c_str(), W_OK) == 0;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc > 1 && std::string_view(argv[1]) == "verify") return verify_main(argc - 1, argv + 1);
    CLI::App app{"firelink-conform: checks a firelink driver plugin against the numbered requirements of docs/abi.md"};
    std::string plugin, level_name = "standard", json_out, junit_out, only, skip, sim, device, device_actions,
        record_dir, certificate_out, signing_key, scripts_dir;
    std::vector<std::string> config_args, traces;
    double duration_s = 600;
    std::uint64_t seed = 0;
    double timeout_s = 30;
    int callback_ms = 100;
    bool list = false, verbose = false;
    app.add_option("plugin", plugin, "the plugin file (.so) to check");
    app.add_option("--level", level_name, "basic, standard, strict or soak (default standard)")
        ->check(CLI::IsMember({"basic", "standard", "strict", "soak"}));
    app.add_option("--json", json_out, "write the report as JSON to FILE");
    app.add_option("--junit", junit_out, "write the report as JUnit XML to FILE");
    app.add_option("--certificate", certificate_out,
                   "when the plugin passes, write a signed certificate to FILE (needs --signing-key; "
                   "`firelink-conform verify` checks it)");
    app.add_option("--signing-key", signing_key, "the certifier's Ed25519 secret key (openssl genpkey -algorithm ed25519)");
    auto *seed_opt = app.add_option("--seed", seed, "seed for every random choice (default: a new one, printed)");
    app.add_option("--only", only, "run only the checks whose id matches this regular expression");
    app.add_option("--skip", skip, "do not run the checks whose id matches this regular expression");
    app.add_option("--config", config_args, "DRIVER=FILE: create DRIVER's devices with the msgpack config in FILE")
        ->take_all();
    app.add_option("--sim", sim,
                   "the class scenarios' device source: a firelink-sim executable (default: next to this program)");
    app.add_option("--trace", traces,
                   "FILE: replay this trace of wire bytes as the polled class scenarios' device source; repeatable")
        ->take_all();
    app.add_option("--device", device,
                   "URI: a live device as that source: tcp://HOST:PORT?unit=N or serial:///dev/ttyX?baud=B&unit=N");
    app.add_option("--device-actions", device_actions,
                   "FILE: write each scenario action to FILE (a FIFO the rig reads) instead of asking on the terminal");
    app.add_option("--record-traces", record_dir,
                   "DIR: record each simulator scenario's wire bytes as DIR/<check>.trace");
    app.add_option("--scripts", scripts_dir,
                   "DIR: the plugin's device scripts (*.toml, docs/device-scripts.md); default PLUGIN.scripts/ beside "
                   "the plugin");
    app.add_option("--duration", duration_s, "seconds each soak check runs (level soak; default 600)");
    app.add_option("--timeout", timeout_s, "seconds a check may run before it counts as hung (default 30)");
    app.add_option("--callback-bound", callback_ms, "milliseconds a call into the plugin may take (default 100)");
    app.add_flag("--list", list, "list the checks with their levels and requirements, and exit");
    app.add_flag("--verbose", verbose, "show what the plugin prints on stdout and stderr");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        // --help is 0; any usage error is 2, whatever CLI11's own code for it.
        return app.exit(e) == 0 ? 0 : 2;
    }

    if (list) {
        for (const auto &c : all_checks()) {
            std::string reqs;
            for (const auto &r : c.requirements) reqs += (reqs.empty() ? "" : ",") + r;
            std::cout << c.id << "\t" << to_string(c.min_level) << "\t" << reqs << "\t" << c.summary << "\n";
        }
        return 0;
    }
    if (plugin.empty()) {
        std::cerr << "firelink-conform: give the plugin file to check (see --help)\n";
        return 2;
    }
    if (!fs::exists(plugin)) {
        std::cerr << "firelink-conform: " << plugin << ": no such file\n";
        return 2;
    }

    for (const auto &[flag, path] : {std::pair{"--json", json_out}, {"--junit", junit_out}, {"--certificate", certificate_out}})
        if (!path.empty() && !writable(path)) {
            std::cerr << "firelink-conform: " << flag << " " << path << ": cannot be written\n";
            return 2;
        }
    std::optional<firelink::signing::ed25519_secret> certifier;
    if (certificate_out.empty() != signing_key.empty()) {
        std::cerr << "firelink-conform: --certificate and --signing-key go together\n";
        return 2;
    }
    if (!certificate_out.empty()) {
        if (!only.empty() || !skip.empty()) {
            std::cerr << "firelink-conform: a certificate covers a whole level: run it without --only and --skip\n";
            return 2;
        }
        auto key = firelink::signing::read_ed25519_secret(signing_key);
        if (!key) {
            std::cerr << "firelink-conform: --signing-key " << key.why() << "\n";
            return 2;
        }
        certifier = *key;
    }

    run_options opt;
    opt.plugin = fs::absolute(plugin);
    parse_level(level_name, opt.run_level);
    if (!*seed_opt) seed = std::random_device{}() % 1000000;
    opt.seed = seed;
    opt.callback_bound = std::chrono::milliseconds(callback_ms);
    if (!sim.empty()) {
        opt.sim = fs::absolute(sim);
        if (!fs::is_regular_file(opt.sim) || ::access(opt.sim.c_str(), X_OK) != 0) {
            std::cerr << "firelink-conform: --sim " << sim << ": not an executable file\n";
            return 2;
        }
    }
    for (const auto &t : traces) {
        if (!fs::exists(t)) {
            std::cerr << "firelink-conform: --trace " << t << ": no such file\n";
            return 2;
        }
        opt.traces.push_back(fs::absolute(t));
    }
    // The device scripts: a script that is not valid is a usage error, found before any check runs.
    {
        const fs::path dir = !scripts_dir.empty() ? fs::path(scripts_dir) : default_scripts_dir(fs::absolute(plugin));
        std::error_code ec;
        if (!scripts_dir.empty() && !fs::is_directory(dir, ec)) {
            std::cerr << "firelink-conform: --scripts " << scripts_dir << ": not a folder\n";
            return 2;
        }
        std::string why;
        if (fs::is_directory(dir, ec) && !load_scripts(fs::absolute(dir), opt.scripts, why)) {
            std::cerr << "firelink-conform: device script " << why << "\n";
            return 2;
        }
    }
    opt.device_uri = device;
    if (!device_actions.empty()) opt.device_actions = fs::absolute(device_actions);
    if (!record_dir.empty()) {
        std::error_code ec;
        fs::create_directories(record_dir, ec);
        if (!fs::is_directory(record_dir)) {
            std::cerr << "firelink-conform: --record-traces " << record_dir << ": not a directory\n";
            return 2;
        }
        opt.record_dir = fs::absolute(record_dir);
    }
    if (duration_s <= 0) {
        std::cerr << "firelink-conform: --duration must be positive\n";
        return 2;
    }
    opt.soak_duration = std::chrono::seconds(static_cast<long long>(duration_s + 0.999));
    for (const auto &arg : config_args) {
        const auto eq = arg.find('=');
        if (eq == std::string::npos || !read_file(arg.substr(eq + 1), opt.configs[arg.substr(0, eq)])) {
            std::cerr << "firelink-conform: --config " << arg << ": expected DRIVER=FILE with a readable FILE\n";
            return 2;
        }
    }
    std::regex only_re, skip_re;
    try {
        if (!only.empty()) only_re = std::regex(only);
        if (!skip.empty()) skip_re = std::regex(skip);
    } catch (const std::regex_error &e) {
        std::cerr << "firelink-conform: bad --only/--skip expression: " << e.what() << "\n";
        return 2;
    }
    const auto timeout = std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000));

    run_record rec;
    rec.plugin_path = opt.plugin.string();
    rec.plugin_file = opt.plugin.filename().string();
    rec.plugin_sha256 = sha256_file(rec.plugin_path);
    rec.run_level = opt.run_level;
    rec.seed = seed;
    rec.only = only;
    rec.skip = skip;
    rec.host_machine = machine();
    rec.glibc = gnu_get_libc_version();
    rec.suite_sha256 = sha256_file("/proc/self/exe");
    for (int i = 0; i < argc; ++i) rec.command_line += (i ? " " : "") + shell_quote(argv[i]);
    for (const auto &arg : config_args) {
        const auto eq = arg.find('=');
        rec.configs.push_back({arg.substr(0, eq), arg.substr(eq + 1), sha256_file(arg.substr(eq + 1))});
    }
    for (const auto &sc : opt.scripts)
        rec.scripts.push_back({sc.file.string(), sha256_file(sc.file.string()), sc.driver, sc.name});
    // What loosens the run against the suite's defaults is said first, so that no one takes it for a default run.
    if (callback_ms != 100)
        rec.leniency.push_back("--callback-bound " + std::to_string(callback_ms) + " (default 100): calls into the "
                               "plugin are " + (callback_ms > 100 ? "allowed longer" : "held shorter") + " than FL-PLUGIN-24 asks");
    if (timeout_s != 30) {
        std::ostringstream t;
        t << timeout_s;
        rec.leniency.push_back("--timeout " + t.str() + " (default 30): a check may run that long before it counts as hung");
    }
    if (!only.empty()) rec.leniency.push_back("--only " + only + ": only the checks it matches run");
    if (!skip.empty()) rec.leniency.push_back("--skip " + skip + ": the checks it matches do not run");
    if (!device.empty()) rec.device_source = "device " + device;
    else if (!opt.traces.empty()) {
        rec.device_source.clear();
        for (const auto &t : opt.traces)
            rec.device_source += (rec.device_source.empty() ? "trace " : ", trace ") + t.filename().string() +
                                 " (sha256 " + sha256_file(t.string()) + ")";
    }
    if (rec.device_source != "simulator")
        rec.leniency.push_back("the class scenarios' device source is " + rec.device_source + ", not the simulator");
    {
        std::error_code ec;
        const auto used_sim = !opt.sim.empty() ? opt.sim : fs::read_symlink("/proc/self/exe", ec).parent_path() / "firelink-sim";
        if (rec.device_source == "simulator" && fs::exists(used_sim)) {
            rec.sim_path = used_sim.string();
            rec.sim_sha256 = sha256_file(rec.sim_path);
        }
    }
    rec.started = std::chrono::system_clock::now();

    // The repro line repeats what shapes the run besides the selection.
    std::string repro_tail = " --seed " + std::to_string(seed);
    if (opt.run_level != level::standard) repro_tail += " --level " + level_name;
    for (const auto &arg : config_args) repro_tail += " --config " + shell_quote(arg);
    if (!sim.empty()) repro_tail += " --sim " + shell_quote(sim);
    for (const auto &t : traces) repro_tail += " --trace " + shell_quote(t);
    if (!scripts_dir.empty()) repro_tail += " --scripts " + shell_quote(scripts_dir);
    if (!device.empty()) repro_tail += " --device " + shell_quote(device);
    if (!device_actions.empty()) repro_tail += " --device-actions " + shell_quote(device_actions);
    if (opt.run_level == level::soak) repro_tail += " --duration " + std::to_string(opt.soak_duration.count());
    if (callback_ms != 100) repro_tail += " --callback-bound " + std::to_string(callback_ms);
    if (timeout_s != 30) {
        std::ostringstream t;
        t << timeout_s;
        repro_tail += " --timeout " + t.str();
    }

    const bool tty = isatty(1);
    std::cout << "firelink-conform " << suite_version << ": " << rec.plugin_file << " (sha256 " << rec.plugin_sha256
              << ")\nlevel " << level_name << ", seed " << seed << "\n";
    for (const auto &l : rec.leniency) std::cout << "LENIENT: " << l << "\n";

    // The load check first, always: every other check needs the plugin loaded.
    const auto probe_result = run_isolated(
        [&](findings &f, std::string &payload) {
            plugin_facts facts;
            probe(opt, facts, f);
            payload = facts.serialize();
        },
        timeout, verbose);
    rec.facts = plugin_facts::parse(probe_result.payload);
    if (rec.facts.loaded)
        std::cout << "plugin " << rec.facts.id << " " << rec.facts.version << " (" << rec.facts.name << ", "
                  << rec.facts.vendor << "), " << rec.facts.drivers.size() << " driver(s)\n";
    std::cout << "\n";
    // A config for a driver the plugin does not have would test nothing: a usage error, before any check runs.
    if (rec.facts.loaded)
        for (const auto &c : rec.configs) {
            const bool known = std::any_of(rec.facts.drivers.begin(), rec.facts.drivers.end(), [&](const std::string &d) {
                return d.substr(0, d.find(' ')) == c.driver;
            });
            if (!known) {
                std::cerr << "firelink-conform: --config " << c.driver << "=" << c.file << ": the plugin has no driver '"
                          << c.driver << "'\n";
                return 2;
            }
        }

    std::vector<const check *> selected;
    for (const auto &c : all_checks()) {
        if (!only.empty() && !std::regex_search(c.id, only_re)) continue;
        if (!skip.empty() && std::regex_search(c.id, skip_re)) continue;
        selected.push_back(&c);
    }
    std::size_t width = 0;
    for (const auto *c : selected) width = std::max(width, c->id.size());

    // What this run cannot judge, known before it starts, said first: a pass with many skips reads as what it is.
    // (Every skip, with what the checks decide themselves, is grouped by reason again above the verdict.)
    if (rec.facts.loaded) {
        std::set<std::string> classes;  // of the plugin's drivers
        for (const auto &d : rec.facts.drivers)
            if (const auto sp = d.find(' '); sp != std::string::npos) classes.insert(d.substr(sp + 1));
        std::size_t above = 0, absent = 0;
        std::set<std::string> absent_classes;
        for (const auto *c : selected) {
            if (c->min_level > opt.run_level) {
                ++above;
            } else if (!c->device_class.empty() && !classes.count(c->device_class)) {
                ++absent;
                absent_classes.insert(c->device_class);
            }
        }
        if (above || absent) {
            std::cout << "not judged by this run: " << above + absent << " of " << selected.size() << " checks\n";
            if (above) std::cout << "  " << above << " check(s) above level " << level_name << "\n";
            if (absent) {
                std::cout << "  " << absent << " check(s): class scenarios of";
                for (const auto &k : absent_classes) std::cout << " " << k;
                std::cout << " (the plugin has no driver of the class)\n";
            }
            std::cout << "\n";
        }
    }

    std::uint64_t driver_events = 0;  // summed over the checks run, for suite.events
    for (std::size_t i = 0; i < selected.size(); ++i) {
        const check &c = *selected[i];
        check_record cr;
        cr.id = c.id;
        cr.requirements = c.requirements;
        const std::string counter = "[" + std::to_string(i + 1) + "/" + std::to_string(selected.size()) + "]";
        std::cout << counter << std::string(2 * std::to_string(selected.size()).size() + 4 - counter.size(), ' ') << c.id << std::string(width + 2 - c.id.size(), ' ')
                  << std::flush;
        if (c.id == "library.load") {
            cr.result = probe_result.result;
            cr.message = probe_result.message;
            cr.duration = probe_result.duration;
        } else if (c.id == "suite.events" && c.min_level <= opt.run_level && rec.facts.loaded) {
            if (driver_events > 0) {
                cr.result = status::passed;
                cr.message = std::to_string(driver_events) + " event(s) emitted by the drivers during the suite";
            } else {
                cr.result = status::failed;
                cr.message = "no driver emitted any event during the whole suite: nothing of its protocol was judged. "
                             "Ship device scripts with the plugin (docs/device-scripts.md) or give the class "
                             "scenarios a device source";
            }
        } else if (c.min_level > opt.run_level) {
            cr.result = status::skipped;
            cr.message = "runs at level " + std::string(to_string(c.min_level));
        } else if (!rec.facts.loaded) {
            cr.result = status::skipped;
            cr.message = "the plugin did not load" + (rec.facts.refusal.empty() ? "" : " (" + rec.facts.refusal + ")");
        } else {
            // A soak check runs for --duration by design: its hang guard is on top of that.
            const auto limit = c.min_level == level::soak ? timeout + opt.soak_duration * 2 : timeout;
            const auto r = run_isolated([&](findings &f, std::string &) { c.run(opt, f); }, limit, verbose);
            cr.result = r.result;
            cr.message = r.message;
            cr.duration = r.duration;
            driver_events += r.driver_events;
        }
        if (cr.result == status::failed || cr.result == status::crashed || cr.result == status::timeout)
            cr.reproduce = "firelink-conform " + shell_quote(plugin) + " --only " + shell_quote(exact_regex(c.id)) +
                           repro_tail;
        std::cout << colour(cr.result, tty) << to_string(cr.result) << (tty ? "\033[0m" : "") << "  "
                  << cr.duration.count() << " ms\n";
        if (cr.result != status::passed && !cr.message.empty()) std::cout << "      " << cr.message << "\n";
        if (!cr.reproduce.empty()) std::cout << "      reproduce: " << cr.reproduce << "\n";
        rec.checks.push_back(std::move(cr));
    }
    rec.ended = std::chrono::system_clock::now();

    std::map<status, int> counts;
    for (const auto &c : rec.checks) ++counts[c.result];
    // What did not run, and why, in one place: a pass with many skips must read as one.
    std::map<std::string, std::vector<std::string>> skipped;
    for (const auto &c : rec.checks)
        if (c.result == status::skipped) skipped[c.message].push_back(c.id);
    if (!skipped.empty()) std::cout << "\nskipped:\n";
    for (const auto &[why, ids] : skipped)
        std::cout << "  " << ids.size() << " check(s): " << why << (ids.size() <= 3 ? " (" : "")
                  << (ids.size() <= 3 ? [&] {
                         std::string l;
                         for (const auto &id : ids) l += (l.empty() ? "" : ", ") + id;
                         return l + ")";
                     }()
                                      : std::string())
                  << "\n";
    bool first_unexercised = true;
    for (const auto &c : rec.checks)
        if (c.result == status::not_exercised) {
            if (std::exchange(first_unexercised, false)) std::cout << "\nnot exercised (ran, judged nothing; not a pass):\n";
            std::cout << "  " << c.id << ": " << c.message << "\n";
        }
    std::size_t unchecked = 0;
    for (const auto &v : requirement_verdicts(rec)) unchecked += v.verdict == "not checked";
    if (unchecked) std::cout << "requirements not checked by this run: " << unchecked << " (see the JSON report)\n";
    std::cout << "\n" << (rec.any_failure() ? "FAIL" : "PASS") << ": " << counts[status::passed] << " passed, "
              << counts[status::failed] << " failed, " << counts[status::crashed] << " crashed, "
              << counts[status::timeout] << " timeout, " << counts[status::warning] << " warning, "
              << counts[status::not_exercised] << " not exercised, " << counts[status::skipped] << " skipped\n";

    auto write = [](const std::string &path, const std::string &text) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << text;
        if (!out) std::cerr << "firelink-conform: cannot write " << path << "\n";
        return static_cast<bool>(out);
    };
    bool written = true;
    const auto report = to_json(rec);
    if (!json_out.empty()) written &= write(json_out, report);
    if (!junit_out.empty()) written &= write(junit_out, to_junit(rec));
    if (certifier) {
        if (rec.any_failure()) {
            std::cout << "no certificate: the plugin did not pass\n";
        } else {
            std::string command_line;
            for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + shell_quote(argv[i]);
            const auto statement = certificate_statement(rec, report, command_line);
            written &= write(certificate_out, firelink::signing::dsse_sign(firelink::signing::in_toto_payload_type,
                                                                         statement, *certifier));
            std::cout << "certificate: " << certificate_out << " (level " << level_name << ", signed by "
                      << certifier->pub().id() << ")\n";
        }
    }
    if (!written) return 2;
    return rec.any_failure() ? 1 : 0;
}
