// Library-level checks: exports, descriptor, negotiation, the plugin's lifecycle, cycles and scan time.
#include <dlfcn.h>

#include <chrono>
#include <cstring>
#include <regex>

#include "checks.hpp"

namespace firelink::conform {

// ---- shared helpers --------------------------------------------------------------------------------------------

std::unique_ptr<core::plugin> load_plugin(const run_options &o, findings &f) {
    core::plugin_loader loader;
    auto result = loader.load(o.plugin);
    if (!result) {
        f.fail("refused by the loader: " + result.error().what());
        return nullptr;
    }
    return std::move(result).value();
}

const fl_plugin_entry *open_raw(const run_options &o, findings &f) {
    void *lib = dlopen(o.plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        f.fail(std::string("dlopen failed: ") + dlerror());
        return nullptr;
    }
    const auto *entry = static_cast<const fl_plugin_entry *>(dlsym(lib, FL_ENTRY_SYMBOL));
    if (!entry || entry->struct_size < FL_V1_0_SIZEOF_PLUGIN_ENTRY || !entry->negotiate) {
        f.fail("no usable " FL_ENTRY_SYMBOL);
        return nullptr;
    }
    return entry;
}

const std::vector<std::uint8_t> &config_for(const run_options &o, const std::string &driver_id) {
    static const std::vector<std::uint8_t> empty;
    auto it = o.configs.find(driver_id);
    return it == o.configs.end() ? empty : it->second;
}

std::string status_name(fl_status st) {
    static const char *names[] = {"FL_OK",          "FL_ERROR",   "FL_MISUSE", "FL_INCOMPATIBLE",
                                  "FL_INVALID_ARGUMENT", "FL_NO_MEMORY", "FL_UNSUPPORTED", "FL_BUSY",
                                  "FL_IO",          "FL_TIMEOUT", "FL_CLOSED", "FL_NOT_FOUND"};
    if (st <= 0 && st >= -11) return names[-st];
    return "status " + std::to_string(st);
}

std::string version_name(std::uint32_t v) {
    return std::to_string(FL_VERSION_MAJOR(v)) + "." + std::to_string(FL_VERSION_MINOR(v)) + "." +
           std::to_string(FL_VERSION_PATCH(v));
}

std::mt19937_64 rng_for(const run_options &o, std::string_view check_id) {
    std::seed_seq seq{static_cast<std::uint32_t>(o.seed), static_cast<std::uint32_t>(o.seed >> 32),
                      static_cast<std::uint32_t>(std::hash<std::string_view>{}(check_id))};
    return std::mt19937_64(seq);
}

std::vector<std::uint8_t> random_bytes(std::mt19937_64 &rng, std::size_t n) {
    std::vector<std::uint8_t> out(n);
    for (auto &b : out) b = static_cast<std::uint8_t>(rng());
    return out;
}

namespace {

using clock = std::chrono::steady_clock;

// ---- library.exports -------------------------------------------------------------------------------------------
void exports(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    for (const auto &sym : p->info().extra_exports) f.fail("exports '" + sym + "' besides " FL_ENTRY_SYMBOL);
}

// ---- library.inert_load ----------------------------------------------------------------------------------------
void inert_load(const run_options &o, findings &f) {
    const std::size_t threads = thread_count(), fds = open_fds();
    void *lib = dlopen(o.plugin.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return f.fail(std::string("dlopen failed: ") + dlerror());
    if (thread_count() != threads)
        f.fail("loading the library started " + std::to_string(thread_count() - threads) + " thread(s)");
    if (open_fds() != fds) f.fail("loading the library left " + std::to_string(open_fds() - fds) + " file(s) open");
    const auto *entry = static_cast<const fl_plugin_entry *>(dlsym(lib, FL_ENTRY_SYMBOL));
    if (!entry || !entry->negotiate || !entry->get_descriptor) return f.fail("no usable " FL_ENTRY_SYMBOL);
    std::uint32_t agreed = 0;
    if (entry->negotiate(FL_ABI_VERSION, &agreed) != FL_OK) return f.fail("negotiate(1.0.0) failed");
    if (!entry->get_descriptor()) return f.fail("get_descriptor returned NULL after negotiation");
    if (thread_count() != threads) f.fail("negotiating and listing started a thread");
    if (open_fds() != fds) f.fail("negotiating and listing left a file open");
}

// ---- library.descriptor ----------------------------------------------------------------------------------------
void descriptor(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    const auto &e = p->entry();
    const auto &info = p->info();
    if (e.struct_size < sizeof(fl_plugin_entry) && e.struct_size != FL_V1_0_SIZEOF_PLUGIN_ENTRY)
        f.fail("entry.struct_size " + std::to_string(e.struct_size) + " is not the size of any entry version");
    if (FL_VERSION_MINOR(e.abi_version) == FL_ABI_VERSION_MINOR && e.struct_size != sizeof(fl_plugin_entry))
        f.fail("entry.struct_size " + std::to_string(e.struct_size) + " differs from sizeof(fl_plugin_entry) " +
               std::to_string(sizeof(fl_plugin_entry)) + " for ABI " + version_name(e.abi_version));
    const fl_plugin_descriptor *d1 = e.get_descriptor();
    const fl_plugin_descriptor *d2 = e.get_descriptor();
    if (d1 != d2) f.fail("get_descriptor returned a different pointer on a second call (FL-PLUGIN-7)");
    plugin_host host;
    if (p->init(host.abi()) != FL_OK) return f.fail("init failed");
    if (e.get_descriptor() != d1) f.fail("get_descriptor returned a different pointer after init (FL-PLUGIN-7)");
    p->deinit();
    if (e.get_descriptor() != d1) f.fail("get_descriptor returned a different pointer after deinit (FL-PLUGIN-7)");
    if (d1 && (std::string(d1->id ? d1->id : "") != info.id || std::string(d1->version ? d1->version : "") != info.version))
        f.fail("the descriptor changed across init/deinit (FL-PLUGIN-7)");

    static const std::regex version_form(R"(^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$)");
    if (!std::regex_match(info.version, version_form))
        f.fail("version '" + info.version + "' is not major.minor.patch[-suffix] (FL-PLUGIN-11)");
    static const std::regex license_form(R"(^[A-Za-z0-9][A-Za-z0-9.+-]*( +(AND|OR|WITH) +[A-Za-z0-9][A-Za-z0-9.+-]*)*$)");
    std::string lic = info.license;
    std::erase_if(lic, [](char c) { return c == '(' || c == ')'; });
    if (info.license != "proprietary" && !std::regex_match(lic, license_form))
        f.fail("license '" + info.license + "' is neither an SPDX expression nor 'proprietary' (FL-PLUGIN-11)");
    static const std::regex ext_form(R"(^[a-z0-9_.-]+/[0-9]+$)");
    for (const auto &drv : info.drivers) {
        if (drv.id.size() > 64) f.fail("driver id '" + drv.id + "' is longer than 64 characters (FL-PLUGIN-12)");
        const bool own_io = drv.flags & FL_DRIVER_OWN_IO;
        if (drv.wires & ~std::uint32_t{0x1f})
            f.fail("driver '" + drv.id + "': unknown bits in wires (FL-PLUGIN-14)");
        bool needs_transport = false;
        for (const auto &x : drv.required_extensions) {
            if (!std::regex_match(x, ext_form))
                f.fail("driver '" + drv.id + "': required extension '" + x + "' is not <name>/<revision>");
            else if (x != FL_EXT_TRANSPORT && x != FL_EXT_TIMER)
                f.warn("driver '" + drv.id + "' requires '" + x + "', which no firelink host provides");
            needs_transport |= x == FL_EXT_TRANSPORT;
        }
        if (drv.wires && !own_io && !needs_transport)
            f.warn("driver '" + drv.id + "' declares wires but does not require " FL_EXT_TRANSPORT " (FL-PLUGIN-15)");
        if (!drv.wires && needs_transport)
            f.fail("driver '" + drv.id + "' requires " FL_EXT_TRANSPORT " but declares no wire (FL-PLUGIN-14)");
    }
}

// ---- negotiation -----------------------------------------------------------------------------------------------
// Judges one answer to an offer: OK with the lower of the two and the same major, or an error.
void judge_answer(const fl_plugin_entry &e, std::uint32_t offer, fl_status st, std::uint32_t agreed, findings &f,
                  bool must_accept) {
    const std::uint32_t expect = std::min(offer, e.abi_version);
    if (st == FL_OK) {
        if (FL_VERSION_MAJOR(agreed) != FL_VERSION_MAJOR(offer) || agreed > offer)
            f.fail("offered " + version_name(offer) + ", answered " + version_name(agreed) +
                   " (newer than offered or of another major)");
        else if (agreed != expect)
            f.fail("offered " + version_name(offer) + ", answered " + version_name(agreed) + " instead of " +
                   version_name(expect) + ", the lower of the offer and its own");
    } else if (must_accept) {
        f.fail("offered " + version_name(offer) + " (same major), answered " + status_name(st));
    } else if (st != FL_INCOMPATIBLE) {
        f.warn("offered " + version_name(offer) + ", refused with " + status_name(st) + " instead of FL_INCOMPATIBLE");
    }
}

void negotiate_one(const run_options &o, findings &f, std::uint32_t offer, bool must_accept) {
    const auto *e = open_raw(o, f);
    if (!e) return;
    std::uint32_t agreed = 0;
    const fl_status st = e->negotiate(offer, &agreed);
    judge_answer(*e, offer, st, agreed, f, must_accept);
}

void negotiate_equal(const run_options &o, findings &f) {
    const auto *e = open_raw(o, f);
    if (!e) return;
    std::uint32_t agreed = 0;
    const fl_status st = e->negotiate(e->abi_version, &agreed);
    judge_answer(*e, e->abi_version, st, agreed, f, true);
}

void negotiate_newer(const run_options &o, findings &f) {
    negotiate_one(o, f, FL_MAKE_VERSION(1, 900, 7), true);
}

void negotiate_older(const run_options &o, findings &f) {
    const auto *e = open_raw(o, f);
    if (!e) return;
    // The oldest 1.x host: a plugin built for a newer minor may refuse it, never answer above it.
    std::uint32_t agreed = 0;
    const std::uint32_t offer = FL_MAKE_VERSION(1, 0, 0);
    const fl_status st = e->negotiate(offer, &agreed);
    judge_answer(*e, offer, st, agreed, f, e->abi_version <= offer);
}

void negotiate_other_major(const run_options &o, findings &f) {
    const auto *e = open_raw(o, f);
    if (!e) return;
    for (std::uint32_t offer : {FL_MAKE_VERSION(0, 9, 0), FL_MAKE_VERSION(2, 0, 0), FL_MAKE_VERSION(1023, 0, 0)}) {
        std::uint32_t agreed = 0xdeadbeef;
        const fl_status st = e->negotiate(offer, &agreed);
        if (st == FL_OK) f.fail("accepted a host of ABI " + version_name(offer) + ", answering " + version_name(agreed));
        else if (st != FL_INCOMPATIBLE)
            f.warn("refused ABI " + version_name(offer) + " with " + status_name(st) + " instead of FL_INCOMPATIBLE");
    }
    std::uint32_t agreed = 0;
    if (e->negotiate(FL_ABI_VERSION, &agreed) != FL_OK) f.fail("after refusals, negotiate(1.0.0) failed");
}

void negotiate_garbage(const run_options &o, findings &f) {
    const auto *e = open_raw(o, f);
    if (!e) return;
    auto rng = rng_for(o, "negotiate.garbage");
    std::vector<std::uint32_t> offers = {0, 0xffffffffu, 1, FL_MAKE_VERSION(1, 0, 0) - 1};
    for (int i = 0; i < 32; ++i) offers.push_back(static_cast<std::uint32_t>(rng()));
    for (std::uint32_t offer : offers) {
        std::uint32_t agreed = 0;
        const fl_status st = e->negotiate(offer, &agreed);
        if (st == FL_OK && (FL_VERSION_MAJOR(agreed) != FL_VERSION_MAJOR(offer) || agreed > offer ||
                            FL_VERSION_MAJOR(offer) != 1))
            f.fail("offered 0x" + [&] { char b[16]; std::snprintf(b, sizeof b, "%08x", offer); return std::string(b); }() +
                   ", answered FL_OK with " + version_name(agreed));
    }
    const fl_status st = e->negotiate(FL_ABI_VERSION, nullptr);
    if (st == FL_OK) f.fail("negotiate with a NULL answer pointer returned FL_OK (FL-PLUGIN-19)");
    std::uint32_t agreed = 0;
    if (e->negotiate(FL_ABI_VERSION, &agreed) != FL_OK) f.fail("after garbage offers, negotiate(1.0.0) failed");
}

// ---- lifecycle.before_negotiate ------------------------------------------------------------------------------
void before_negotiate(const run_options &o, findings &f) {
    const auto *e = open_raw(o, f);
    if (!e) return;
    plugin_host host;
    if (e->get_descriptor && e->get_descriptor()) f.fail("get_descriptor before negotiate returned non-NULL");
    if (e->get_extension && e->get_extension(FL_EXT_IDENTIFY))
        f.fail("get_extension before negotiate returned non-NULL");
    const fl_device *dev = reinterpret_cast<const fl_device *>(0x1);
    if (e->create_device) {
        const fl_status st = e->create_device("x", host.abi(), nullptr, 0, &dev);
        if (st != FL_MISUSE) f.fail("create_device before negotiate returned " + status_name(st) + ", not FL_MISUSE");
        if (dev) f.fail("create_device before negotiate left *out_device non-NULL");
    }
    if (e->init) {
        const fl_status st = e->init(host.abi(), o.plugin.c_str());
        if (st != FL_MISUSE) f.fail("init before negotiate returned " + status_name(st) + ", not FL_MISUSE");
        if (st == FL_OK && e->deinit) e->deinit();
    }
    if (e->deinit) e->deinit();  // must do nothing
    std::uint32_t agreed = 0;
    if (e->negotiate(FL_ABI_VERSION, &agreed) != FL_OK) f.fail("negotiate after the early calls failed");
}

// ---- lifecycle.plugin_misuse ---------------------------------------------------------------------------------
void plugin_misuse(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    const auto &e = p->entry();
    const auto &drv = p->info().drivers.front();
    plugin_host host;
    auto create_must_refuse = [&](const char *when) {
        device_host dh("misuse-1", drv.device_class, transport_kind_for(drv.wires));
        const fl_device *dev = nullptr;
        const fl_status st = e.create_device(drv.id.c_str(), dh.abi(), nullptr, 0, &dev);
        if (st != FL_MISUSE) f.fail(std::string("create_device ") + when + " returned " + status_name(st));
        if (dev) {
            f.fail(std::string("create_device ") + when + " returned an instance");
            if (dev->destroy) dev->destroy(dev);
        }
    };
    create_must_refuse("before init");
    e.deinit();  // before init: must do nothing
    if (p->init(host.abi()) != FL_OK) return f.fail("init failed");
    const fl_status again = e.init(host.abi(), o.plugin.c_str());
    if (again != FL_MISUSE) f.fail("a second init returned " + status_name(again) + ", not FL_MISUSE");
    p->deinit();
    create_must_refuse("after deinit");
    for (const auto &v : host.violations()) f.fail(v);
}

// ---- extension.unknown -----------------------------------------------------------------------------------------
void unknown_extensions(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    const auto &e = p->entry();
    auto rng = rng_for(o, "extension.unknown");
    std::vector<std::string> ids = {"", "firelink.conformance.unknown/1", "firelink.identify/999",
                                    "FIRELINK.IDENTIFY/1", "firelink.identify", "firelink.transport/1x"};
    std::string noise;
    for (int i = 0; i < 40; ++i) noise += static_cast<char>(1 + rng() % 255);
    ids.push_back(noise);
    for (const auto &id : ids)
        if (e.get_extension(id.c_str())) f.fail("entry.get_extension(\"" + id + "\") returned non-NULL");
    if (e.get_extension(nullptr)) f.fail("entry.get_extension(NULL) returned non-NULL (FL-PLUGIN-19)");
    if (const auto *ident = static_cast<const fl_plugin_identify *>(e.get_extension(FL_EXT_IDENTIFY)))
        if (ident->struct_size < FL_V1_0_SIZEOF_PLUGIN_IDENTIFY || !ident->identify)
            f.fail(FL_EXT_IDENTIFY " is smaller than v1.0 or has a NULL function (FL-PLUGIN-34)");

    plugin_host host;
    if (p->init(host.abi()) != FL_OK) return f.fail("init failed");
    for (const auto &drv : p->info().drivers) {
        instance in(e, drv, "ext-1");
        if (in.create(config_for(o, drv.id)) != FL_OK) continue;
        const fl_device *d = in.device();
        for (const auto &id : ids)
            if (d->get_extension(d, id.c_str()))
                f.fail("driver '" + drv.id + "': device get_extension(\"" + id + "\") returned non-NULL");
        const auto *tx = static_cast<const fl_device_transport *>(d->get_extension(d, FL_EXT_TRANSPORT));
        if (tx && (tx->struct_size < FL_V1_0_SIZEOF_DEVICE_TRANSPORT || !tx->on_data || !tx->on_state))
            f.fail("driver '" + drv.id + "': its " FL_EXT_TRANSPORT " struct is too small or has NULLs (FL-PLUGIN-31)");
        const auto *tm = static_cast<const fl_device_timer *>(d->get_extension(d, FL_EXT_TIMER));
        if (tm && (tm->struct_size < FL_V1_0_SIZEOF_DEVICE_TIMER || !tm->on_timer))
            f.fail("driver '" + drv.id + "': its " FL_EXT_TIMER " struct is too small or has NULLs (FL-PLUGIN-31)");
        if (in.needs_wire() && !tx)
            f.fail("driver '" + drv.id + "' declares wires but returns no " FL_EXT_TRANSPORT " (FL-PLUGIN-31)");
    }
    p->deinit();
}

// ---- library.init_cycles / library.reload_cycles ------------------------------------------------------------
// One create/start/stop/destroy of each driver that takes its config.
void touch_devices(const fl_plugin_entry &e, const core::plugin_info &info, const run_options &o) {
    for (const auto &drv : info.drivers) {
        instance in(e, drv, "cycle-1");
        if (in.create(config_for(o, drv.id)) != FL_OK) continue;
        if (in.start() == FL_OK) {
            in.deliver_open();
            in.tick();
            in.stop();
        }
    }
}

void init_cycles(const run_options &o, findings &f) {
    auto p = load_plugin(o, f);
    if (!p) return;
    plugin_host host;
    touch_devices(p->entry(), p->info(), o);  // warm up lazily created state before counting
    const std::size_t fds = open_fds();
    for (int i = 0; i < 50 && !f.failed(); ++i) {
        const fl_status st = p->init(host.abi());
        if (st != FL_OK) {
            f.fail("init failed on cycle " + std::to_string(i + 1) + ": " + status_name(st));
            break;
        }
        touch_devices(p->entry(), p->info(), o);
        p->deinit();
    }
    if (open_fds() > fds) f.fail("50 init/deinit cycles left " + std::to_string(open_fds() - fds) + " file(s) open");
    for (const auto &v : host.violations()) f.fail(v);
}

void reload_cycles(const run_options &o, findings &f) {
    core::plugin_loader loader;
    std::string id;
    for (int i = 0; i < 20; ++i) {
        auto result = loader.load(o.plugin);
        if (!result) return f.fail("load " + std::to_string(i + 1) + " refused: " + result.error().what());
        auto &p = *result;
        if (i && p->info().id != id) f.fail("the plugin id changed on reload");
        id = p->info().id;
        plugin_host host;
        const fl_status st = p->init(host.abi());
        if (st != FL_OK) return f.fail("init after reload " + std::to_string(i + 1) + " returned " + status_name(st));
        touch_devices(p->entry(), p->info(), o);
        p.reset();  // deinit and unload
        loader.forget(id);
    }
}

// ---- library.scan_time -----------------------------------------------------------------------------------------
void scan_time(const run_options &o, findings &f) {
    auto best = std::chrono::milliseconds::max();
    for (int i = 0; i < 3; ++i) {
        core::plugin_loader loader;
        const auto t0 = clock::now();
        auto result = loader.load(o.plugin);
        const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0);
        if (!result) return f.fail("refused: " + result.error().what());
        best = std::min(best, took);
    }
    if (best > o.scan_budget)
        f.warn("loading, negotiating and listing took " + std::to_string(best.count()) + " ms (budget " +
               std::to_string(o.scan_budget.count()) + " ms)");
}

}  // namespace

void add_library_checks(std::vector<check> &v) {
    v.push_back({"library.exports", {"FL-PLUGIN-1"}, level::basic,
                 "exports exactly one dynamic symbol, " FL_ENTRY_SYMBOL, exports});
    v.push_back({"library.descriptor", {"FL-PLUGIN-3", "FL-PLUGIN-7", "FL-PLUGIN-11", "FL-PLUGIN-12", "FL-PLUGIN-14", "FL-PLUGIN-15"},
                 level::basic, "entry and descriptor agree, are stable across init/deinit, and have the right forms",
                 descriptor});
    v.push_back({"negotiate.equal", {"FL-PLUGIN-5"}, level::basic,
                 "a host of the plugin's own version is answered with that version", negotiate_equal});
    v.push_back({"negotiate.newer_host", {"FL-PLUGIN-5"}, level::basic,
                 "a newer 1.x host is answered with the plugin's own version", negotiate_newer});
    v.push_back({"negotiate.older_host", {"FL-PLUGIN-5"}, level::standard,
                 "the oldest 1.x host is answered with 1.0.0 or refused with FL_INCOMPATIBLE", negotiate_older});
    v.push_back({"negotiate.other_major", {"FL-PLUGIN-5"}, level::standard,
                 "hosts of major 0, 2 and 1023 are refused with FL_INCOMPATIBLE", negotiate_other_major});
    v.push_back({"negotiate.garbage", {"FL-PLUGIN-5", "FL-PLUGIN-19"}, level::standard,
                 "random versions and a NULL answer pointer never get an invalid FL_OK", negotiate_garbage});
    v.push_back({"library.inert_load", {"FL-PLUGIN-6"}, level::standard,
                 "loading, negotiating and listing start no thread and open no file", inert_load});
    v.push_back({"lifecycle.before_negotiate", {"FL-PLUGIN-6", "FL-PLUGIN-19"}, level::standard,
                 "entry functions called before negotiate return FL_MISUSE or NULL", before_negotiate});
    v.push_back({"lifecycle.plugin_misuse", {"FL-PLUGIN-19"}, level::standard,
                 "create_device before init and after deinit, and a second init, return FL_MISUSE", plugin_misuse});
    v.push_back({"extension.unknown", {"FL-PLUGIN-19", "FL-PLUGIN-31", "FL-PLUGIN-34"}, level::standard,
                 "unknown extension ids return NULL; known extension structs are complete", unknown_extensions});
    v.push_back({"library.init_cycles", {"FL-PLUGIN-22"}, level::standard,
                 "50 init/deinit cycles, each creating and destroying every driver's device", init_cycles});
    v.push_back({"library.reload_cycles", {"FL-PLUGIN-22"}, level::standard,
                 "20 load/init/deinit/unload cycles", reload_cycles});
    v.push_back({"library.scan_time", {"FL-PLUGIN-6"}, level::standard,
                 "load + negotiate + descriptor within the scan budget (warning only)", scan_time});
}

}  // namespace firelink::conform
