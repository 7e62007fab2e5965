// The plugins a site runs: every file under its plugin folders, loaded once, where the site says (in this process or
// in a runner), if signed as it says; and which plugin and driver each device names.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <firelink/core/plugin_loader.hpp>
#include <firelink/result.hpp>
#include <firelink/isolation/runner_supervisor.hpp>
#include <firelink/signing/minisign.hpp>
#include <firelink/site/site_config.hpp>

namespace firelink::cli {

class plugin_catalog {
public:
    plugin_catalog() = default;
    plugin_catalog(const plugin_catalog &) = delete;
    plugin_catalog &operator=(const plugin_catalog &) = delete;
    ~plugin_catalog();

    // Plugins load where the site says, with its runner settings; `admits` is the pipeline's backpressure, which a
    // runner asks before it hands the host an event. Until this is called, plugins load in this process.
    void configure(const site::site_config &cfg, std::function<bool(std::string_view kind)> admits = {});
    // Whose plugins load ([plugins] signatures, trusted_keys). A reload's trusted keys are the ones its new plugin
    // files are checked against; files loaded before are not checked again.
    void set_signing(site::signing_config signing) { signing_ = std::move(signing); }

    // Loads every plugin file under dirs that was not loaded before; each refusal is logged and kept ("file: why").
    void scan(const std::vector<std::filesystem::path> &dirs);

    // The plugin and driver a device names; or FL_NOT_FOUND and why there is none (with the closest names there are),
    // or FL_MISUSE when the name is ambiguous or the class is not the driver's.
    firelink::result<std::shared_ptr<core::plugin>> resolve(const site::device_config &d) const;

    const std::vector<std::shared_ptr<core::plugin>> &plugins() const { return plugins_; }
    // Lets go of every plugin loaded: a plugin's runner (and its supervising thread, which asks `admits`) stops
    // once nobody else holds it. At shutdown, before what `admits` reads is destroyed.
    void unload() { plugins_.clear(); }
    const std::vector<std::string> &refusals() const { return refusals_; }
    // What the check of each plugin file found (its signer, or why it has none), for /healthz and the log.
    const std::map<std::filesystem::path, signing::verdict> &signatures() const { return signatures_; }

private:
    firelink::result<void, core::load_error> check_signature(const std::filesystem::path &file, int &fd);
    // [plugins] certificates = "require": the file's bytes (read through fd, opened here when the signature check
    // left it closed) must be the subject of a valid certificate, <file>.cert.json, of the level the site asks for.
    firelink::result<void, core::load_error> check_certificate(const std::filesystem::path &file, int &fd);
    core::load_result load(const std::filesystem::path &file);
    std::string not_found(const site::device_config &d) const;

    core::plugin_loader loader_;
    std::vector<std::shared_ptr<core::plugin>> plugins_;
    std::set<std::filesystem::path> seen_;
    std::vector<std::string> refusals_;
    std::optional<site::isolation_config> isolation_;  // where plugins run; unset: in this process
    isolation::supervisor_options runner_options_;
    site::signing_config signing_ = unchecked();  // nothing is checked until configured
    static site::signing_config unchecked() {
        site::signing_config s;
        s.policy = "off";
        return s;
    }
    std::map<std::filesystem::path, signing::verdict> signatures_;
    // The descriptors plugins were loaded through in this process, open as long as the catalog: dlopen knows a
    // library by the name it was opened as, so a /proc/self/fd/N reused by the next file would give back the last.
    std::vector<int> mapped_fds_;
};

}  // namespace firelink::cli
