#include "firelink/core/plugin_loader.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>

namespace firelink::core {

namespace fs = std::filesystem;

struct plugin::library {
    boost::dll::shared_library lib;
};

std::string_view to_string(refusal r) noexcept {
    switch (r) {
    case refusal::not_found: return "not_found";
    case refusal::not_a_shared_library: return "not_a_shared_library";
    case refusal::load_failed: return "load_failed";
    case refusal::no_entry_symbol: return "no_entry_symbol";
    case refusal::entry_too_small: return "entry_too_small";
    case refusal::incompatible_major: return "incompatible_major";
    case refusal::negotiation_refused: return "negotiation_refused";
    case refusal::negotiation_invalid: return "negotiation_invalid";
    case refusal::invalid_descriptor: return "invalid_descriptor";
    case refusal::duplicate_plugin_id: return "duplicate_plugin_id";
    case refusal::init_failed: return "init_failed";
    case refusal::signature_refused: return "signature_refused";
    case refusal::certificate_refused: return "certificate_refused";
    }
    return "unknown";
}

std::string load_error::what() const { return std::string(to_string(reason)) + ": " + detail; }

const driver_info *plugin_info::find_driver(std::string_view driver_id) const {
    for (const auto &d : drivers)
        if (d.id == driver_id) return &d;
    return nullptr;
}

plugin::~plugin() {
    deinit();
    // lib_ unloads the library after everything of the plugin's has been released.
}

std::unique_ptr<plugin> plugin::remote(plugin_info info, std::shared_ptr<plugin_backend> backend) {
    std::unique_ptr<plugin> p(new plugin());
    p->info_ = std::move(info);
    p->backend_ = std::move(backend);
    return p;
}

fl_status plugin::init(const fl_host *plugin_host) {
    if (initialized_) return FL_MISUSE;
    fl_status st = backend_ ? backend_->init() : entry_->init(plugin_host, info_.file.c_str());
    initialized_ = st == FL_OK;
    return st;
}

void plugin::deinit() {
    if (!initialized_) return;
    if (backend_)
        backend_->deinit();
    else
        entry_->deinit();
    initialized_ = false;
}

fl_status plugin::create_device(const char *driver_id, const fl_host *host, const std::uint8_t *config,
                                std::size_t config_size, const fl_device **out) {
    return backend_ ? backend_->create_device(driver_id, host, config, config_size, out)
                    : entry_->create_device(driver_id, host, config, config_size, out);
}

bool plugin::can_identify() const {
    if (backend_) return backend_->can_identify();
    const auto *ext = static_cast<const fl_plugin_identify *>(entry_->get_extension(FL_EXT_IDENTIFY));
    return FL_HAS_FIELD(ext, fl_plugin_identify, identify) && ext->identify;
}

fl_status plugin::identify(const std::string &driver_id, const std::uint8_t *data, std::size_t size,
                           std::string &identity) const {
    if (backend_) return backend_->identify(driver_id.c_str(), data, size, identity);
    const auto *ext = static_cast<const fl_plugin_identify *>(entry_->get_extension(FL_EXT_IDENTIFY));
    if (!FL_HAS_FIELD(ext, fl_plugin_identify, identify) || !ext->identify) return FL_UNSUPPORTED;
    char buf[256];
    std::size_t len = 0;
    const fl_status st = ext->identify(driver_id.c_str(), data, size, buf, sizeof buf, &len);
    if (st == FL_OK && (len == 0 || len > sizeof buf)) return FL_INVALID_ARGUMENT;
    if (st == FL_OK) identity.assign(buf, len);
    return st;
}

namespace {

std::string version_string(std::uint32_t v) {
    return std::to_string(FL_VERSION_MAJOR(v)) + "." + std::to_string(FL_VERSION_MINOR(v)) + "." +
           std::to_string(FL_VERSION_PATCH(v));
}

bool label_ok(std::string_view label) {
    if (label.empty() || label.size() > 63) return false;
    if (!((label[0] >= 'a' && label[0] <= 'z') || (label[0] >= '0' && label[0] <= '9'))) return false;
    return std::all_of(label.begin(), label.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    });
}

// An ELF shared object: magic, and e_type ET_DYN.
bool is_elf_shared_object(const fs::path &file) {
    std::ifstream in(file, std::ios::binary);
    std::array<unsigned char, 18> head{};
    if (!in.read(reinterpret_cast<char *>(head.data()), head.size())) return false;
    if (head[0] != 0x7f || head[1] != 'E' || head[2] != 'L' || head[3] != 'F') return false;
    const bool little = head[5] == 1;
    const unsigned type = little ? (head[16] | (head[17] << 8)) : ((head[16] << 8) | head[17]);
    return type == 3;  // ET_DYN
}

std::string str_or_empty(const char *s) { return s ? std::string(s) : std::string(); }

// A string of the plugin's read at most `cap` + 1 bytes far: a missing terminator shows as "too long" instead of a
// read through the plugin's whole address space.
std::string bounded(const char *s, std::size_t cap) { return s ? std::string(s, ::strnlen(s, cap + 1)) : std::string(); }

// A name the plugin gave, fit to quote in a refusal: a byte outside printable ASCII shows as '?', so that a hostile
// name cannot forge a line of the listing.
std::string quotable(std::string_view s) {
    std::string out(s);
    for (auto &c : out)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    return out;
}

// Copies and checks a 1.1 driver's declared commands (FL-PLUGIN-36). Returns the refusal detail, or empty.
std::string read_commands(const fl_driver_descriptor &dd, driver_info &di) {
    if (dd.struct_size < FL_V1_1_SIZEOF_DRIVER_DESCRIPTOR || !dd.commands) return {};  // declares none (1.0: not read)
    di.declares_commands = true;
    for (std::size_t k = 0; dd.commands[k]; ++k) {
        if (k >= FL_MAX_COMMANDS)
            return "declares more than " + std::to_string(FL_MAX_COMMANDS) + " commands (or its list has no NULL "
                   "terminator)";
        const fl_command_descriptor *c = dd.commands[k];
        const std::string where = "command #" + std::to_string(k);
        if (c->struct_size < FL_V1_1_SIZEOF_COMMAND_DESCRIPTOR)
            return where + ": struct_size " + std::to_string(c->struct_size) + " is smaller than v1.1 (" +
                   std::to_string(FL_V1_1_SIZEOF_COMMAND_DESCRIPTOR) + ")";
        command_decl decl;
        decl.name = bounded(c->name, max_command_name);
        if (!c->name || decl.name.empty()) return where + ": no name";
        if (!is_command_name(decl.name))
            return where + ": command name '" + quotable(decl.name.substr(0, max_command_name)) +
                   (decl.name.size() > max_command_name ? "...' is longer than 64 bytes"
                                                        : "' is not [a-z0-9][a-z0-9_.-]*");
        const std::string named = "command '" + decl.name + "'";
        decl.description = bounded(c->description, max_command_description);
        if (!is_command_description(decl.description))
            return named + ": the description is " +
                   (decl.description.size() > max_command_description ? "longer than 256 bytes"
                                                                      : "not UTF-8 without control characters");
        constexpr std::uint64_t known = FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES;
        if (c->flags & ~known) {
            char hex[32];
            std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(c->flags & ~known));
            return named + ": unknown flag bits " + hex + " (this host knows FL_COMMAND_ACTUATES and "
                   "FL_COMMAND_RESTORES)";
        }
        decl.actuates = c->flags & FL_COMMAND_ACTUATES;
        decl.restores = c->flags & FL_COMMAND_RESTORES;
        if (decl.restores && !decl.actuates)
            return named + ": FL_COMMAND_RESTORES without FL_COMMAND_ACTUATES (restoring moves something)";
        if (di.find_command(decl.name)) return "duplicate command name '" + decl.name + "'";
        di.commands.push_back(std::move(decl));
    }
    return {};
}

}  // namespace

bool is_reverse_dns(std::string_view id) {
    if (id.size() > 255) return false;
    std::size_t labels = 0, start = 0;
    while (true) {
        const auto dot = id.find('.', start);
        const auto label = id.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (!label_ok(label)) return false;
        ++labels;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return labels >= 2;
}

bool is_driver_id(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9'))) return false;
    return std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    });
}

bool is_device_class(std::string_view c) {
    static constexpr std::array<std::string_view, 4> standard = {
        FL_CLASS_ARC_FAULT_BREAKER, FL_CLASS_GAS_SHUTOFF_VALVE, FL_CLASS_PYROLYSIS_DETECTOR, FL_CLASS_FIRE_PANEL};
    if (std::find(standard.begin(), standard.end(), c) != standard.end()) return true;
    constexpr std::string_view prefix = FL_CLASS_VENDOR_PREFIX;
    return c.substr(0, prefix.size()) == prefix && is_reverse_dns(c.substr(prefix.size()));
}

std::vector<fs::path> plugin_loader::candidates(const fs::path &path) {
    std::vector<fs::path> out;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        for (const auto &e : fs::directory_iterator(path, ec))
            if (e.is_regular_file(ec) && e.path().extension() == ".so") out.push_back(e.path());
        std::sort(out.begin(), out.end());
    } else {
        out.push_back(path);
    }
    return out;
}

void plugin_loader::forget(const std::string &plugin_id) {
    loaded_ids_.erase(std::remove(loaded_ids_.begin(), loaded_ids_.end(), plugin_id), loaded_ids_.end());
}

load_result plugin_loader::load(const fs::path &file, const fs::path &named) {
    auto refuse = [&](refusal r, std::string detail) -> load_result {
        return load_error{named.empty() ? file : named, r, std::move(detail)};
    };

    std::error_code ec;
    if (!fs::exists(file, ec)) return refuse(refusal::not_found, "no such file");
    if (!fs::is_regular_file(file, ec)) return refuse(refusal::not_found, "not a regular file");
    if (!is_elf_shared_object(file)) return refuse(refusal::not_a_shared_library, "not an ELF shared object");

    std::unique_ptr<plugin> p(new plugin());
    p->lib_ = std::make_unique<plugin::library>();
    p->info_.file = fs::absolute(named.empty() ? file : named, ec);
    try {
        // The throwing overload carries dlerror()'s text (missing dependency, undefined symbol) in what().
        p->lib_->lib.load(boost::dll::fs::path(file.string()),
                          boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception &e) {
        return refuse(refusal::load_failed, e.what());
    }
    if (!p->lib_->lib.has(FL_ENTRY_SYMBOL))
        return refuse(refusal::no_entry_symbol, "the library does not export " FL_ENTRY_SYMBOL);
    const auto *entry = &p->lib_->lib.get<const fl_plugin_entry>(FL_ENTRY_SYMBOL);
    p->entry_ = entry;

    if (entry->struct_size < FL_V1_0_SIZEOF_PLUGIN_ENTRY)
        return refuse(refusal::entry_too_small, "entry struct_size " + std::to_string(entry->struct_size) +
                                                    " is smaller than the v1.0 entry (" +
                                                    std::to_string(FL_V1_0_SIZEOF_PLUGIN_ENTRY) + ")");
    p->info_.built_abi_version = entry->abi_version;
    if (FL_VERSION_MAJOR(entry->abi_version) != FL_VERSION_MAJOR(host_version_))
        return refuse(refusal::incompatible_major, "plugin speaks ABI " + version_string(entry->abi_version) +
                                                       ", this host speaks " + version_string(host_version_));
    if (!entry->negotiate || !entry->init || !entry->deinit || !entry->get_descriptor || !entry->create_device ||
        !entry->get_extension)
        return refuse(refusal::entry_too_small, "the entry has NULL function pointers");

    std::uint32_t agreed = 0;
    const fl_status st = entry->negotiate(host_version_, &agreed);
    if (st != FL_OK)
        return refuse(refusal::negotiation_refused,
                      "negotiate(" + version_string(host_version_) + ") returned " + std::to_string(st));
    if (FL_VERSION_MAJOR(agreed) != FL_VERSION_MAJOR(host_version_) || agreed > host_version_)
        return refuse(refusal::negotiation_invalid, "negotiate answered " + version_string(agreed) +
                                                        " to an offer of " + version_string(host_version_));
    p->info_.agreed_abi_version = agreed;

    const fl_plugin_descriptor *d = entry->get_descriptor();
    auto bad = [&](std::string detail) { return refuse(refusal::invalid_descriptor, std::move(detail)); };
    if (!d) return bad("get_descriptor returned NULL");
    if (d->struct_size < FL_V1_0_SIZEOF_PLUGIN_DESCRIPTOR)
        return bad("descriptor struct_size " + std::to_string(d->struct_size) + " is smaller than v1.0 (" +
                   std::to_string(FL_V1_0_SIZEOF_PLUGIN_DESCRIPTOR) + ")");
    auto &info = p->info_;
    info.id = str_or_empty(d->id);
    info.name = str_or_empty(d->name);
    info.vendor = str_or_empty(d->vendor);
    info.version = str_or_empty(d->version);
    info.license = str_or_empty(d->license);
    info.url = str_or_empty(d->url);
    info.description = str_or_empty(d->description);
    if (info.id.empty()) return bad("empty plugin id");
    if (!is_reverse_dns(info.id)) return bad("plugin id '" + info.id + "' is not lower-case reverse-DNS");
    if (info.name.empty()) return bad("empty plugin name");
    if (info.vendor.empty()) return bad("empty vendor");
    if (info.version.empty()) return bad("empty plugin version");
    if (info.license.empty()) return bad("empty licence");
    if (d->driver_count == 0 || !d->drivers) return bad("the plugin declares no drivers");
    if (d->driver_count > 1024) return bad("implausible driver_count " + std::to_string(d->driver_count));

    for (std::uint32_t i = 0; i < d->driver_count; ++i) {
        const fl_driver_descriptor *dd = d->drivers[i];
        const std::string where = "driver #" + std::to_string(i);
        if (!dd) return bad(where + " is NULL");
        if (dd->struct_size < FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR)
            return bad(where + ": struct_size " + std::to_string(dd->struct_size) + " is smaller than v1.0 (" +
                       std::to_string(FL_V1_0_SIZEOF_DRIVER_DESCRIPTOR) + ")");
        driver_info di;
        di.id = str_or_empty(dd->id);
        di.name = str_or_empty(dd->name);
        di.device_class = str_or_empty(dd->device_class);
        di.description = str_or_empty(dd->description);
        di.wires = dd->wires;
        di.flags = dd->flags;
        if (di.id.empty()) return bad(where + ": empty driver id");
        if (!is_driver_id(di.id)) return bad(where + ": driver id '" + di.id + "' is not [a-z0-9][a-z0-9_.-]*");
        if (info.find_driver(di.id)) return bad("duplicate driver id '" + di.id + "'");
        if (di.name.empty()) return bad("driver '" + di.id + "': empty name");
        if (!is_device_class(di.device_class))
            return bad("driver '" + di.id + "': unknown device class '" + di.device_class +
                       "' (expected arc_fault_breaker, gas_shutoff_valve, pyrolysis_detector, fire_panel or "
                       "vendor:<reverse-dns>)");
        if (dd->required_extensions)
            for (const char *const *e = dd->required_extensions; *e; ++e) {
                if (di.required_extensions.size() >= 64) return bad("driver '" + di.id + "': too many extensions");
                di.required_extensions.emplace_back(*e);
            }
        if (auto why = read_commands(*dd, di); !why.empty())
            return bad("plugin '" + info.id + "': driver '" + di.id + "': " + why);
        info.drivers.push_back(std::move(di));
    }

    if (std::find(loaded_ids_.begin(), loaded_ids_.end(), info.id) != loaded_ids_.end())
        return refuse(refusal::duplicate_plugin_id, "plugin id '" + info.id + "' is already loaded from another file");

    // Exports besides the entry: a warning in the listing (the conformance suite fails it).
    try {
        boost::dll::library_info li(boost::dll::fs::path(file.string()));
        for (const auto &sym : li.symbols())
            if (sym != FL_ENTRY_SYMBOL) info.extra_exports.push_back(sym);
    } catch (const std::exception &) {
        // An unreadable symbol table was already loadable by the dynamic linker; nothing more to say.
    }

    loaded_ids_.push_back(info.id);
    return p;
}

}  // namespace firelink::core
