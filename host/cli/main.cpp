// firelink-host: the host runtime's command line.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <firelink/firelink.h>
#include <firelink/version.h>

#include "commands.hpp"
#include "site_host.hpp"

int main(int argc, char **argv) {
    CLI::App app{"firelink-host: loads firelink driver plugins and runs their devices"};
    app.require_subcommand(1);
    // The ABI's version is the headers' (abi.h), the product's is project(VERSION) (version.h): they move apart.
    app.set_version_flag("--version", "firelink-host " FIRELINK_VERSION_STRING " (ABI " +
                                          std::to_string(FL_ABI_VERSION_MAJOR) + "." +
                                          std::to_string(FL_ABI_VERSION_MINOR) + "." +
                                          std::to_string(FL_ABI_VERSION_PATCH) + ")");
    std::string log_level = "info";
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->check(
        CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

    std::vector<std::string> list_paths, list_keys;
    auto *plugins = app.add_subcommand("plugins", "List plugins (files or directories); exit 1 if any is refused");
    plugins->add_option("PATH", list_paths, "plugin files or directories of them")->required();
    plugins->add_option("--trusted-key", list_keys, "minisign public key file to check each plugin's signature with")
        ->allow_extra_args(false);  // one per --trusted-key: the paths that follow are plugins

    firelink::cli::try_options try_opt;
    auto *try_cmd = app.add_subcommand(
        "try", "Load plugins, run one device per driver (or one on a wire: --connect, --listen, --serial), print their "
               "events and a summary");
    try_cmd->add_option("PATH", try_opt.paths, "plugin files or directories of them")->required();
    try_cmd->add_option("--driver", try_opt.drivers, "run only these driver ids");
    try_cmd->add_option("--set", try_opt.settings, "driver config key=value, given to every device");
    try_cmd->add_option("--for", try_opt.seconds, "stop after SECONDS (default: run until SIGINT/SIGTERM)")
        ->check(CLI::PositiveNumber);
    try_cmd->add_option("--expect-events", try_opt.expect_events,
                        "fail unless every device emitted at least N events");
    try_cmd->add_flag("--quiet", try_opt.quiet, "do not print events");
    // The wire of the one device, as a site file's wire forms give it (docs/deployment.md, "Wire forms").
    auto &wire = try_opt.wire;
    auto *connect = try_cmd->add_option("--connect", wire.connect,
                                        "the device is a TCP server there; its driver connects to it")
                        ->type_name("HOST:PORT");
    auto *listen = try_cmd->add_option("--listen", wire.listen,
                                       "listen there (HOST an IP address); the device connects in")
                       ->type_name("HOST:PORT");
    auto *serial = try_cmd->add_option("--serial", wire.serial, "the device is on this serial port (or pty)")
                       ->type_name("DEV");
    connect->excludes(listen)->excludes(serial);
    listen->excludes(serial);
    try_cmd->add_option("--unit", wire.unit, "with --connect or --serial: the device's unit (Modbus address)")
        ->type_name("N")
        ->check(CLI::NonNegativeNumber);
    auto *peer = try_cmd->add_option("--peer", wire.peer,
                                     "with --listen: the device is the connection from this address (with neither "
                                     "--peer nor --identity: the first its driver identifies, else loopback's)")
                     ->type_name("IP");
    auto *identity = try_cmd->add_option("--identity", wire.identity,
                                         "with --listen: the device is the connection its driver identifies as ID")
                         ->type_name("ID");
    peer->needs(listen)->excludes(identity);
    identity->needs(listen);
    try_cmd->add_option("--baud", wire.baud, "with --serial: line speed (default 9600)")
        ->type_name("N")
        ->check(CLI::PositiveNumber)
        ->needs(serial);
    try_cmd->add_option("--data-bits", wire.data_bits, "with --serial: 5 to 8 (default 8)")
        ->type_name("N")
        ->check(CLI::PositiveNumber)
        ->needs(serial);
    try_cmd->add_option("--parity", wire.parity, "with --serial: none, even or odd (default none)")
        ->type_name("P")
        ->needs(serial);
    try_cmd->add_option("--stop-bits", wire.stop_bits, "with --serial: 1 or 2 (default 1)")
        ->type_name("N")
        ->check(CLI::PositiveNumber)
        ->needs(serial);

    firelink::cli::run_options run_opt;
    std::string admin_listen;
    auto *run = app.add_subcommand("run", "Run a site: its devices, their wires, the sinks and the admin endpoint");
    run->add_option("--config", run_opt.config, "the site configuration (TOML)")->required();
    run->add_option("--admin-listen", admin_listen, "admin endpoint HOST:PORT (overrides [admin] listen)");
    run->add_option("--for", run_opt.seconds, "stop after SECONDS (default: until SIGINT/SIGTERM)")
        ->check(CLI::PositiveNumber);
    run->add_option("--expect-events", run_opt.expect_events,
                    "with --for: fail unless every device emitted at least N events");

    std::string check_path;
    auto *check = app.add_subcommand(
        "check-config", "Validate a site configuration, its drivers, and each device's config with its driver");
    check->add_option("CONFIG", check_path, "the site configuration (TOML)")->required();

    std::string audit_db;
    std::size_t audit_tail = 0;
    auto *audit = app.add_subcommand("audit", "The audit chain of commands (select, operate, results, modes)");
    audit->require_subcommand(1);
    auto *audit_verify = audit->add_subcommand(
        "verify", "Check every link of the audit chain in a queue (or audit) database; exit 1 at the first broken one");
    audit_verify->add_option("QUEUE_DB", audit_db, "the SQLite file: [uplink] queue_path or [control] audit_path")
        ->required()
        ->check(CLI::ExistingFile);
    audit_verify->add_option("--show", audit_tail, "also print the last N records");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e) == 0 ? 0 : 2;
    }

    auto logger = spdlog::stderr_color_mt("firelink");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(log_level));

    if (*plugins) return firelink::cli::list_plugins(list_paths, list_keys);
    if (*run) {
        if (!admin_listen.empty()) run_opt.admin_listen = admin_listen;
        return firelink::cli::run_site(run_opt);
    }
    if (*check) return firelink::cli::check_config(check_path);
    if (*try_cmd) return firelink::cli::try_plugins(try_opt);
    if (*audit_verify) return firelink::cli::verify_audit(audit_db, audit_tail);
    return 2;
}
