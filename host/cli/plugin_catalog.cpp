#include "plugin_catalog.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <firelink/layout/install_layout.hpp>
#include <firelink/signing/certificate.hpp>
#include <firelink/site/suggest.hpp>

namespace firelink::cli {

plugin_catalog::~plugin_catalog() {
    for (int fd : mapped_fds_) ::close(fd);
}

void plugin_catalog::scan(const std::vector<std::filesystem::path> &named) {
    auto dirs = named;
    if (dirs.empty()) {  // the site names no folder: the installed one (or a build tree's)
        const auto candidates = layout::plugin_dir_candidates();
        const auto found = layout::first_directory(candidates);
        if (found.empty()) {
            const auto why = "no [plugins] dirs in the site file, and no plugin folder at " +
                             layout::list_paths(candidates) +
                             ": install the firelink-host package (its plugins go to lib/firelink/plugins), or name "
                             "the folders with [plugins] dirs";
            refusals_.push_back(why);
            spdlog::error("{}", why);
            return;
        }
        spdlog::info("plugins: the installed folder {} (the site file names none)", found.string());
        dirs.push_back(found);
    }
    for (const auto &dir : dirs) {
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) {
            refusals_.push_back(dir.string() + ": not a directory");
            spdlog::error("plugin directory {} does not exist", dir.string());
            continue;
        }
        for (const auto &file : core::plugin_loader::candidates(dir)) {
            if (!seen_.insert(file).second) continue;
            auto result = load(file);
            if (!result) {
                refusals_.push_back(file.string() + ": " + result.error().what());
                spdlog::error("plugin {} refused: {}", file.string(), result.error().what());
                continue;
            }
            auto p = std::shared_ptr<core::plugin>(std::move(result).value());
            spdlog::info("plugin {} {} loaded from {} ({})", p->info().id, p->info().version, file.string(),
                         p->remote() ? "in its own process" : "in the host process");
            plugins_.push_back(std::move(p));
        }
    }
}

void plugin_catalog::configure(const site::site_config &cfg, std::function<bool(std::string_view kind)> admits) {
    signing_ = cfg.signing;
    isolation_ = cfg.isolation;
    auto &ro = runner_options_;
    ro.runner = cfg.isolation.runner;
    ro.limits = {cfg.isolation.memory_mb, cfg.isolation.open_files, cfg.isolation.user, cfg.watchdog_warn.count()};
    ro.uids = {cfg.isolation.uid_first, cfg.isolation.uid_last};
    ro.hang_timeout = cfg.isolation.hang_timeout;
    ro.call_timeout = cfg.watchdog_fault / 2;  // under the watchdog's fault bound, which times the same call
    ro.restart_limit = cfg.isolation.restart_limit;
    ro.restart_window = cfg.isolation.restart_window;
    ro.backoff_initial = cfg.isolation.backoff_initial;
    ro.backoff_max = cfg.isolation.backoff_max;
    ro.ring_kb = cfg.isolation.ring_kb;
    ro.data_credit_kb = cfg.isolation.data_credit_kb;
    ro.admits = std::move(admits);
}

// The file is opened once; its signature is checked on what this descriptor reads, and the plugin is loaded through
// it (here as /proc/self/fd/N, in a runner as the descriptor handed over), so that the file checked is the file
// mapped even if another is renamed into its place meanwhile. The refusal under "require"; success otherwise ("warn"
// logs and loads; "off" checks nothing and leaves fd at -1).
firelink::result<void, core::load_error> plugin_catalog::check_signature(const std::filesystem::path &file, int &fd) {
    if (signing_.policy == "off") return {};
    fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return core::load_error{file, core::refusal::not_found, std::strerror(errno)};
    auto v = signing::verify_fd(fd, file.string() + ".minisig", signing_.keys());
    if (v.ok())
        spdlog::info("plugin {}: signed by key ID {}, trusted comment: {}", file.string(), signing::to_hex(*v.id),
                     v.trusted_comment);
    else if (signing_.policy == "warn")
        spdlog::warn("plugin {}: {}; loaded all the same ([plugins] signatures = \"warn\")", file.string(), v.why);
    const bool refuse = !v.ok() && signing_.policy == "require";
    const std::string why = v.why;
    signatures_[file] = std::move(v);
    if (refuse) return core::load_error{file, core::refusal::signature_refused, why};
    return {};
}

firelink::result<void, core::load_error> plugin_catalog::check_certificate(const std::filesystem::path &file, int &fd) {
    if (signing_.certificates != "require") return {};
    if (fd < 0) fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return core::load_error{file, core::refusal::not_found, std::strerror(errno)};
    const auto refused = [&](const std::string &why) {
        spdlog::error("plugin {}: not loaded: {}", file.string(), why);
        return core::load_error{file, core::refusal::certificate_refused, why};
    };
    // The hash of exactly the bytes that will be loaded (the descriptor, not the path, which may be replaced).
    const auto sha = signing::sha256_of_fd(fd, signing::max_plugin_bytes);
    if (!sha) return refused(sha.why());
    const auto cert_file = file.string() + ".cert.json";
    const auto envelope = signing::read_small_file(cert_file, signing::max_envelope_bytes);
    if (!envelope)
        return refused("no conformance certificate " + cert_file + " ([plugins] certificates = \"require\"; "
                       "a certifier makes one with firelink-conform --certificate)");
    auto facts = signing::check_certificate(*envelope, signing_.certifiers, *sha, signing_.certificate_level);
    if (!facts) return refused(cert_file + ": " + facts.why());
    spdlog::info("plugin {}: certified at level {} by {} (firelink-conform {}, {})", file.string(), facts->level,
                 facts->key_id, facts->suite_version, facts->ended);
    return {};
}

// A plugin's id is known only once something has loaded it: it is loaded where the default says, and moved when
// [plugins.isolation_of] says otherwise for that id.
core::load_result plugin_catalog::load(const std::filesystem::path &file) {
    int fd = -1;
    bool kept = false;  // in mapped_fds_
    struct closer {
        int &fd;
        bool &kept;
        ~closer() {
            if (fd >= 0 && !kept) ::close(fd);
        }
    } close_fd{fd, kept};
    if (auto signed_ok = check_signature(file, fd); !signed_ok) return std::move(signed_ok).error();
    if (auto certified = check_certificate(file, fd); !certified) return std::move(certified).error();
    auto load_in = [&](bool in_process) -> core::load_result {
        if (in_process && fd >= 0) {
            if (!kept) mapped_fds_.push_back(fd);
            kept = true;
            return loader_.load("/proc/self/fd/" + std::to_string(fd), file);
        }
        if (in_process) return loader_.load(file);
        auto r = isolation::load_out_of_process(file, runner_options_, fd);
        if (r) {
            const auto &id = (*r)->info().id;
            for (const auto &other : plugins_)
                if (other->info().id == id)
                    return core::load_error{file, core::refusal::duplicate_plugin_id,
                                            "plugin id " + id + " is already loaded from " + other->info().file.string()};
        }
        return r;
    };
    const bool default_in = !isolation_ || isolation_->default_mode == "in_process";
    auto r = load_in(default_in);
    if (!r || !isolation_ || isolation_->in_process((*r)->info().id) == default_in) return r;
    const std::string id = (*r)->info().id;
    r->reset();
    if (default_in) loader_.forget(id);
    return load_in(!default_in);
}

firelink::result<std::shared_ptr<core::plugin>> plugin_catalog::resolve(const site::device_config &d) const {
    using resolved = firelink::result<std::shared_ptr<core::plugin>>;
    std::vector<std::shared_ptr<core::plugin>> found;
    for (const auto &p : plugins_)
        if ((d.plugin.empty() || p->info().id == d.plugin) && p->info().find_driver(d.driver)) found.push_back(p);
    if (found.empty()) return resolved::fail(FL_NOT_FOUND, not_found(d));
    if (found.size() > 1)
        return resolved::fail(FL_MISUSE, "driver '" + d.driver + "' is in several plugins (" + found[0]->info().id +
                                             ", " + found[1]->info().id + "): name the plugin");
    const auto *driver = found[0]->info().find_driver(d.driver);
    if (driver->device_class != d.device_class)
        return resolved::fail(FL_MISUSE, "class '" + d.device_class + "' does not match driver '" + d.driver +
                                             "', which drives '" + driver->device_class + "'");
    return found[0];
}

// A misspelt id is the usual reason no loaded plugin matches what the device names.
std::string plugin_catalog::not_found(const site::device_config &d) const {
    std::vector<std::string> ids, drivers;
    const core::plugin *named = nullptr;
    for (const auto &p : plugins_) {
        ids.push_back(p->info().id);
        if (p->info().id == d.plugin) named = p.get();
        if (d.plugin.empty() || p->info().id == d.plugin)
            for (const auto &driver : p->info().drivers) drivers.push_back(driver.id);
    }
    if (!d.plugin.empty() && !named) return "plugin '" + d.plugin + "' is not loaded" + site::did_you_mean(d.plugin, ids);
    return (named ? "plugin '" + d.plugin + "' has no driver '" : "no loaded plugin has driver '") + d.driver + "'" +
           site::did_you_mean(d.driver, drivers);
}

}  // namespace firelink::cli
