// Loading a driver plugin: Boost.DLL with RTLD_NOW | RTLD_LOCAL, one symbol imported, version negotiation, and
// every check of the descriptor that can be made at load time (docs/abi.md, "Refusal reasons").
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <firelink/firelink.h>

#include <firelink/result.hpp>

namespace firelink::core {

// Why a file was refused. The names are the reason keys printed by `firelink-host plugins` and documented in
// docs/abi.md; never rename one.
enum class refusal {
    not_found,
    not_a_shared_library,
    load_failed,
    no_entry_symbol,
    entry_too_small,
    incompatible_major,
    negotiation_refused,
    negotiation_invalid,
    invalid_descriptor,
    duplicate_plugin_id,
    init_failed,
    signature_refused,  // [plugins] signatures = "require" and no trusted signature (the host checks, before loading)
    certificate_refused,  // [plugins] certificates = "require" and no valid certificate (checked before loading)
};

std::string_view to_string(refusal r) noexcept;

struct load_error {
    std::filesystem::path file;
    refusal reason;
    std::string detail;

    std::string what() const;  // "<reason>: <detail>"
};

// A copy of one driver's descriptor, owned by the host.
// A command a driver declares (fl_driver_descriptor.commands, docs/abi.md): what the control plane needs to know
// before it hands the command over.
struct command_decl {
    std::string name;
    std::string description;
    bool actuates = false;  // FL_COMMAND_ACTUATES: moves something; the host requires select-before-operate
    bool restores = false;  // FL_COMMAND_RESTORES: reopens or re-energises; interlocked while the device is in alarm
};

struct driver_info {
    std::string id;
    std::string name;
    std::string device_class;
    std::string description;
    std::uint32_t wires = 0;
    std::vector<std::string> required_extensions;
    std::uint64_t flags = 0;
    // What the driver declared. A driver that declares none (an ABI 1.0 plugin, or commands NULL) has every
    // command treated as actuating and restoring: the safe reading of silence.
    bool declares_commands = false;
    std::vector<command_decl> commands;
    const command_decl *find_command(std::string_view name) const {
        for (const auto &c : commands)
            if (c.name == name) return &c;
        return nullptr;
    }
};

// A copy of the plugin's descriptor and what the loader learnt about it.
struct plugin_info {
    std::filesystem::path file;
    std::string id;
    std::string name;
    std::string vendor;
    std::string version;
    std::string license;
    std::string url;
    std::string description;
    std::uint32_t built_abi_version = 0;   // entry.abi_version: the headers the plugin was compiled against
    std::uint32_t agreed_abi_version = 0;  // the outcome of negotiation
    std::vector<driver_info> drivers;
    std::vector<std::string> extra_exports;  // exported symbols besides the entry (warning, not refusal)

    const driver_info *find_driver(std::string_view id) const;
};

// A plugin whose code runs elsewhere: in its own runner process (host/isolation). The runtime calls it where it
// would call the entry.
class plugin_backend {
public:
    virtual ~plugin_backend() = default;
    virtual fl_status init() = 0;
    virtual void deinit() = 0;
    // As fl_plugin_entry.create_device; `host` is the device's fl_host, valid until the device's destroy returns.
    virtual fl_status create_device(const char *driver_id, const fl_host *host, const std::uint8_t *config,
                                    std::size_t config_size, const fl_device **out) = 0;
    virtual bool can_identify() const = 0;
    virtual fl_status identify(const char *driver_id, const std::uint8_t *data, std::size_t size,
                               std::string &identity) = 0;
};

// A loaded, negotiated plugin: a library in this process, or a backend for one in another. Unloads the library when
// destroyed (after deinit, when initialised). Not copyable; move it by unique_ptr.
class plugin {
public:
    ~plugin();
    plugin(const plugin &) = delete;
    plugin &operator=(const plugin &) = delete;

    // A plugin that runs in another process, described by what that process loaded.
    static std::unique_ptr<plugin> remote(plugin_info info, std::shared_ptr<plugin_backend> backend);

    const plugin_info &info() const noexcept { return info_; }
    // The entry of a plugin loaded in this process; remote plugins have none (check remote() first).
    const fl_plugin_entry &entry() const noexcept { return *entry_; }
    bool remote() const noexcept { return backend_ != nullptr; }
    plugin_backend *backend() const noexcept { return backend_.get(); }
    bool initialized() const noexcept { return initialized_; }

    // Calls entry.init with the plugin's own fl_host (which must outlive the plugin or the next deinit).
    // FL_OK or the plugin's error.
    fl_status init(const fl_host *plugin_host);
    void deinit();

    // entry.create_device, wherever the plugin runs.
    fl_status create_device(const char *driver_id, const fl_host *host, const std::uint8_t *config,
                            std::size_t config_size, const fl_device **out);
    // firelink.identify/1, wherever the plugin runs: whether it has one, and a call of it (FL_OK with the identity,
    // FL_BUSY for more bytes, else not this driver's).
    bool can_identify() const;
    fl_status identify(const std::string &driver_id, const std::uint8_t *data, std::size_t size,
                       std::string &identity) const;

private:
    friend class plugin_loader;
    plugin() = default;

    struct library;  // Boost.DLL, kept out of this header
    std::unique_ptr<library> lib_;
    const fl_plugin_entry *entry_ = nullptr;
    std::shared_ptr<plugin_backend> backend_;
    plugin_info info_;
    bool initialized_ = false;
};

using load_result = result<std::unique_ptr<plugin>, load_error>;

// Loads plugins and remembers their ids, so a second file with an id already loaded is refused.
class plugin_loader {
public:
    // The ABI version this host offers. Tests offer other versions to exercise negotiation.
    explicit plugin_loader(std::uint32_t host_abi_version = FL_ABI_VERSION) : host_version_(host_abi_version) {}

    // Loads and negotiates one file and validates its descriptor. Does not call init. `named`: the path to report
    // as the plugin's file when `file` is a descriptor's /proc/self/fd/N (empty: `file` itself).
    load_result load(const std::filesystem::path &file, const std::filesystem::path &named = {});

    // Every candidate file under `path`: the file itself, or the regular files of a directory (not recursive) whose
    // names end in ".so", sorted by name.
    static std::vector<std::filesystem::path> candidates(const std::filesystem::path &path);

    // Forget a plugin id (when its plugin is unloaded), so the file can be loaded again.
    void forget(const std::string &plugin_id);

private:
    std::uint32_t host_version_;
    std::vector<std::string> loaded_ids_;
};

// Descriptor rules shared with the conformance suite.
bool is_reverse_dns(std::string_view id);
bool is_driver_id(std::string_view id);
bool is_device_class(std::string_view device_class);

// Declared commands (ABI 1.1, FL-PLUGIN-36): a name is [a-z0-9][a-z0-9_.-]*, at most 64 bytes; a description
// well-formed UTF-8 of at most 256 bytes without control characters.
inline constexpr std::size_t max_command_name = 64;
inline constexpr std::size_t max_command_description = 256;
bool is_command_name(std::string_view name);
bool is_command_description(std::string_view description);
// What is wrong with one driver's declared commands, or empty: a bad name or description, a duplicate, more than
// FL_MAX_COMMANDS. The loader checks the plugin's descriptor with it, and the host what a runner sent (FL-HOST-33).
// Flags are checked where they are read (command_decl keeps only the two known bits).
std::string command_decls_problem(const std::vector<command_decl> &commands);

}  // namespace firelink::core
