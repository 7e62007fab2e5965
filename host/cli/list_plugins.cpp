#include <cstdio>
#include <string>
#include <variant>

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <firelink/version.h>
#include <firelink/core/device_runtime.hpp>
#include <firelink/core/plugin_loader.hpp>
#include <firelink/isolation/process.hpp>
#include <firelink/signing/minisign.hpp>

#include "commands.hpp"

namespace firelink::cli {

namespace {

std::string version_text(std::uint32_t v) {
    return fmt::format("{}.{}.{}", FL_VERSION_MAJOR(v), FL_VERSION_MINOR(v), FL_VERSION_PATCH(v));
}

std::string wires_text(std::uint32_t wires) {
    static constexpr std::pair<std::uint32_t, const char *> names[] = {
        {FL_WIRE_SERIAL, "serial"},           {FL_WIRE_RS485_BUS, "rs485_bus"}, {FL_WIRE_TCP_CLIENT, "tcp_client"},
        {FL_WIRE_TCP_ACCEPTED, "tcp_accepted"}, {FL_WIRE_UDP, "udp"}};
    std::string out;
    for (auto [bit, name] : names)
        if (wires & bit) out += (out.empty() ? "" : ",") + std::string(name);
    return out.empty() ? "none" : out;
}

std::string join(const std::vector<std::string> &v) {
    std::string out;
    for (const auto &s : v) out += (out.empty() ? "" : ", ") + s;
    return out.empty() ? "nothing" : out;
}

// The driver's declared commands (ABI 1.1), one line each: what select-before-operate and the interlock will do.
void print_commands(const core::driver_info &d) {
    if (!d.declares_commands)
        return (void)std::printf("    commands: none declared (every command is treated as actuating and restoring)\n");
    if (d.commands.empty()) return (void)std::printf("    commands: none (it takes no command)\n");
    for (const auto &c : d.commands)
        std::printf("    command %s | %s%s\n", c.name.c_str(),
                    c.restores ? "actuates, restores" : (c.actuates ? "actuates" : "does not actuate"),
                    c.description.empty() ? "" : (" | " + c.description).c_str());
}

void print_plugin(const core::plugin_info &info) {
    std::printf("%s %s  (ABI %s, agreed %s)  %s\n", info.id.c_str(), info.version.c_str(),
                version_text(info.built_abi_version).c_str(), version_text(info.agreed_abi_version).c_str(),
                info.file.c_str());
    std::printf("  name: %s | vendor: %s | licence: %s\n", info.name.c_str(), info.vendor.c_str(),
                info.license.c_str());
    for (const auto &d : info.drivers) {
        std::vector<std::string> needs;
        for (const auto &e : d.required_extensions)
            needs.push_back(e + (core::device_runtime::provides(e) ? "" : " (not provided by this host)"));
        std::printf("  driver %s | class %s | wires %s | needs %s%s\n", d.id.c_str(), d.device_class.c_str(),
                    wires_text(d.wires).c_str(), join(needs).c_str(),
                    (d.flags & FL_DRIVER_OWN_IO) ? " | does its own I/O" : "");
        print_commands(d);
    }
    if (!info.extra_exports.empty())
        std::printf("  warning: exports %zu symbol(s) besides %s (build it with firelink_add_plugin): %s\n",
                    info.extra_exports.size(), FL_ENTRY_SYMBOL, join(info.extra_exports).c_str());
}

// Who signed the file: checked against the trusted keys when there are some, else only what the signature claims.
void print_signature(const std::filesystem::path &file, const std::vector<signing::public_key> &trusted) {
    const std::string sig_file = file.string() + ".minisig";
    if (!trusted.empty()) {
        const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        const auto v = signing::verify_fd(fd, sig_file, trusted);
        ::close(fd);
        if (v.ok())
            std::printf("  signed by key ID %s | trusted comment: %s\n", signing::to_hex(*v.id).c_str(),
                        v.trusted_comment.c_str());
        else
            std::printf("  signature: NOT VERIFIED: %s\n", v.why.c_str());
        return;
    }
    const auto text = signing::read_small_file(sig_file, signing::max_signature_bytes);
    if (!text) return (void)std::printf("  signature: none (no .minisig beside it)\n");
    auto parsed = signing::parse_signature(*text);
    if (!parsed) return (void)std::printf("  signature: unreadable: %s\n", parsed.why().c_str());
    const auto &s = *parsed;
    std::printf("  signature: claims key ID %s | trusted comment: %s (not checked: give --trusted-key)\n",
                signing::to_hex(s.id).c_str(), s.trusted_comment.c_str());
}

// The plugin-level fl_host for the init/deinit probe of a listing: logs go to stderr through spdlog's default.
void probe_log(const fl_host *, std::int32_t level, const char *message) {
    std::fprintf(stderr, "  plugin log (%d): %s\n", level, message ? message : "");
}
fl_status probe_emit(const fl_host *, const std::uint8_t *, std::size_t) { return FL_MISUSE; }
const void *probe_extension(const fl_host *, const char *) { return nullptr; }

}  // namespace

int list_plugins(const std::vector<std::string> &paths, const std::vector<std::string> &trusted_keys) {
    std::vector<signing::public_key> trusted;
    for (const auto &k : trusted_keys) {
        auto parsed = signing::read_public_key(k);
        if (!parsed) {
            std::fprintf(stderr, "%s: %s\n", k.c_str(), parsed.why().c_str());
            return 2;
        }
        trusted.push_back(*parsed);
    }
    core::plugin_loader loader;
    std::size_t loaded = 0, refused = 0;
    // Loaded plugins stay loaded until the end, so that a duplicate id in a later file is recognised.
    std::vector<std::unique_ptr<core::plugin>> keep;
    for (const auto &path : paths) {
        const auto files = core::plugin_loader::candidates(path);
        if (files.empty()) {
            std::printf("refused %s: not_found: no .so files in this directory\n", path.c_str());
            ++refused;
        }
        for (const auto &file : files) {
            auto result = loader.load(file);
            if (!result) {
                std::printf("refused %s: %s\n", file.c_str(), result.error().what().c_str());
                ++refused;
                continue;
            }
            auto &p = *result;
            fl_host host{};
            host.struct_size = sizeof host;
            host.abi_version = p->info().agreed_abi_version;
            host.host_name = "firelink-host";
            host.host_version = FIRELINK_VERSION_STRING;
            host.emit = probe_emit;
            host.log = probe_log;
            host.get_extension = probe_extension;
            const fl_status st = p->init(&host);
            if (st != FL_OK) {
                std::printf("refused %s: init_failed: init returned %d\n", file.c_str(), st);
                loader.forget(p->info().id);
                ++refused;
                continue;
            }
            p->deinit();
            print_plugin(p->info());
            print_signature(file, trusted);
            ++loaded;
            keep.push_back(std::move(p));
        }
    }
    std::printf("%zu plugin(s) loaded, %zu refused\n", loaded, refused);
    // Loaded here in this process; a site runs each in firelink-runner (isolation "process", the default), so a
    // missing runner is said here rather than found by the first check-config.
    const auto why = isolation::missing_runner({});
    if (!why.empty()) {
        std::printf("error: %s\n", why.c_str());
        return 1;
    }
    std::printf("runner: %s\n", isolation::default_runner_path().c_str());
    return refused == 0 ? 0 : 1;
}

}  // namespace firelink::cli
