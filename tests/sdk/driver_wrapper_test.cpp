// driver.hpp, the C++ wrapper, driven through the C ABI exactly as a host drives a plugin: this executable is itself
// a plugin (FIRELINK_PLUGIN below defines firelink_plugin_entry), and a fake fl_host records what the plugin does.
// This is the only translation unit of the executable that may use FIRELINK_PLUGIN.
#include <firelink/driver.hpp>

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "msgpack_c_bytes.hpp"

namespace {

using bytes = std::vector<std::uint8_t>;
using firelink::test::packed_by_msgpack_c;

// ---- What the test devices did --------------------------------------------------------------------------------

struct journal_t {
    int constructed = 0, destroyed = 0, starts = 0, stops = 0;
    std::optional<std::uint64_t> timer_id;
    std::vector<std::uint64_t> ticks;
    bytes data;
    std::vector<std::pair<int, fl_status>> links;
    std::vector<std::string> commands;
    std::optional<std::uint16_t> threshold_ma;
    std::vector<std::uint64_t> committed;  // what acker_device::on_committed was told
};
journal_t journal;

// A gas valve driver that exercises every hook. Config: period_ms (timer period), fail_start, throw_runtime.
class probe_device : public firelink::device {
public:
    probe_device(firelink::host_handle host, const firelink::config &cfg) : device(host) {
        cfg.reject_unknown({"period_ms", "fail_start", "throw_runtime"});
        period_ = std::chrono::milliseconds(cfg.get<std::uint32_t>("period_ms", 1000));
        fail_start_ = cfg.get<bool>("fail_start", false);
        if (cfg.get<bool>("throw_runtime", false)) throw std::runtime_error("constructor exploded");
        ++journal.constructed;
    }
    ~probe_device() override { ++journal.destroyed; }

    void start() override {
        ++journal.starts;
        if (fail_start_) throw std::runtime_error("start refused: no wire");
        journal.timer_id = host().start_timer(period_);
    }
    void stop() override { ++journal.stops; }
    void on_timer(std::uint64_t id) override {
        journal.ticks.push_back(id);
        if (id == 666) throw std::runtime_error("tick exploded");
    }
    void on_data(std::span<const std::uint8_t> chunk) override {
        journal.data.insert(journal.data.end(), chunk.begin(), chunk.end());
        for (auto b : chunk)
            if (b == 0xEE) throw std::logic_error("bad frame");
    }
    void on_link(int state, fl_status reason) override { journal.links.emplace_back(state, reason); }
    fl_status on_command(const firelink::command &cmd) override {
        journal.commands.push_back(cmd.name());
        if (cmd.name() == "close_valve") {
            host().emit(firelink::event::command_result(cmd.id(), true, "read back: closed"));
            return FL_OK;
        }
        if (cmd.name() == "set_threshold") {
            journal.threshold_ma = cmd.args().require<std::uint16_t>("ma");
            return FL_OK;
        }
        if (cmd.name() == "explode") throw std::runtime_error("command exploded");
        return device::on_command(cmd);
    }

private:
    std::chrono::milliseconds period_{};
    bool fail_start_ = false;
};

// A driver that confirms to its device (declared confirms_on_commit): each chunk of bytes becomes one event, and its
// "ACK <chunk>" is written once the host has committed the event (when_committed).
class acker_device : public firelink::device {
public:
    acker_device(firelink::host_handle host, const firelink::config &) : device(host) {}
    void on_data(std::span<const std::uint8_t> chunk) override {
        const std::string text(chunk.begin(), chunk.end());
        if (host().emit(firelink::event{firelink::event_kind::status, "x.test.chunk"}) != FL_OK) return;
        when_committed([this, text] {
            const std::string ack = "ACK " + text;
            host().write(std::span(reinterpret_cast<const std::uint8_t *>(ack.data()), ack.size()));
        });
    }
    void on_committed(std::uint64_t through) override { journal.committed.push_back(through); }
};

// A driver that overrides nothing: the base class's defaults.
class plain_device : public firelink::device {
public:
    plain_device(firelink::host_handle host, const firelink::config &) : device(host) {}
};

}  // namespace

// Names a connection by its first line, "ID:<identity>\n".
fl_status probe_identify(std::span<const std::uint8_t> bytes, std::string &identity) {
    const std::string text(bytes.begin(), bytes.end());
    if (text.rfind("ID:", 0) != 0 && std::string("ID:").rfind(text, 0) != 0) return FL_INVALID_ARGUMENT;
    const auto nl = text.find('\n');
    if (nl == std::string::npos) return FL_BUSY;
    if (nl == 3) throw std::runtime_error("an empty identity");
    identity = text.substr(3, nl - 3);
    return FL_OK;
}

FIRELINK_PLUGIN((firelink::plugin_info{.id = "org.example.wrapper-test", .name = "Wrapper test",
                                       .vendor = "firelink tests", .version = "0.1.0", .license = "Apache-2.0",
                                       .url = "https://example.org/firelink"}),
                (firelink::driver<probe_device>{.id = "probe", .name = "Probe valve",
                                                .device_class = FL_CLASS_GAS_SHUTOFF_VALVE,
                                                .description = "exercises every hook",
                                                .wires = FL_WIRE_SERIAL | FL_WIRE_RS485_BUS,
                                                .needs = {FL_EXT_TIMER, FL_EXT_TRANSPORT},
                                                .identify = probe_identify}),
                (firelink::driver<plain_device>{.id = "plain", .name = "Plain", .device_class = "vendor:org.example.plain",
                                                .flags = FL_DRIVER_OWN_IO}),
                (firelink::driver<acker_device>{.id = "acker", .name = "Acker", .device_class = "vendor:org.example.acker",
                                                .wires = FL_WIRE_TCP_CLIENT, .needs = {FL_EXT_TRANSPORT},
                                                .confirms_on_commit = true}),
                // The probe again, declaring its commands (ABI 1.1): "dance" and "explode" are not among them.
                (firelink::driver<probe_device>{.id = "declared", .name = "Declared valve",
                                                .device_class = FL_CLASS_GAS_SHUTOFF_VALVE,
                                                .needs = {FL_EXT_TIMER},
                                                .commands = {{"close_valve", "Close the valve", FL_COMMAND_ACTUATES},
                                                             {"open_valve", "Reopen the valve",
                                                              FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES},
                                                             {"set_threshold", nullptr, 0}}}),
                (firelink::driver<plain_device>{.id = "mute", .name = "Mute", .device_class = "vendor:org.example.plain",
                                                .no_commands = true}))

namespace {

// ---- A fake host ----------------------------------------------------------------------------------------------

class fake_host {
public:
    explicit fake_host(const char *device_id) {
        abi.struct_size = sizeof(fl_host);
        abi.abi_version = FL_ABI_VERSION;
        abi.host_data = this;
        abi.host_name = "fake-host";
        abi.host_version = "0.0.0";
        abi.device_id = device_id;
        abi.emit = [](const fl_host *h, const std::uint8_t *ev, std::size_t n) -> fl_status {
            auto &self = of(h);
            self.events.emplace_back(ev, ev + n);
            if (self.emit_answer == FL_OK) ++self.emitted_ok;
            return self.emit_answer;
        };
        abi.log = [](const fl_host *h, std::int32_t level, const char *message) {
            of(h).logs.emplace_back(level, message);
        };
        abi.get_extension = [](const fl_host *h, const char *id) -> const void * {
            auto &self = of(h);
            self.extension_queries.emplace_back(id);
            if (std::string_view(id) == FL_EXT_TIMER) return &self.timer;
            if (std::string_view(id) == FL_EXT_TRANSPORT) return &self.transport;
            if (std::string_view(id) == FL_EXT_COMMIT && self.offers_commit) return &self.commit;
            return nullptr;
        };
        timer.struct_size = sizeof(fl_host_timer);
        timer.start = [](const fl_host *h, std::uint32_t period_ms, std::uint32_t flags, std::uint64_t *out) {
            auto &self = of(h);
            self.timers_started.emplace_back(period_ms, flags);
            *out = self.next_timer_id++;
            return FL_OK;
        };
        timer.cancel = [](const fl_host *, std::uint64_t) { return FL_OK; };
        transport.struct_size = sizeof(fl_host_transport);
        transport.kind = [](const fl_host *) { return std::int32_t{FL_TRANSPORT_RS485_BUS}; };
        transport.open = [](const fl_host *) { return FL_OK; };
        transport.write = [](const fl_host *h, const std::uint8_t *d, std::size_t n) {
            of(h).writes.emplace_back(d, d + n);
            return FL_OK;
        };
        transport.request = [](const fl_host *h, const std::uint8_t *d, std::size_t n, std::uint32_t) {
            of(h).writes.emplace_back(d, d + n);
            return FL_OK;
        };
        transport.end_request = [](const fl_host *) { return FL_OK; };
        transport.close = [](const fl_host *) { return FL_OK; };
        commit.struct_size = sizeof(fl_host_commit);
        commit.emitted = [](const fl_host *h) { return of(h).emitted_ok; };
    }
    fake_host(const fake_host &) = delete;
    fake_host &operator=(const fake_host &) = delete;

    static fake_host &of(const fl_host *h) { return *static_cast<fake_host *>(h->host_data); }

    // Whether a line at `level` contains `needle`.
    bool logged(std::string_view needle, int level = FL_LOG_ERROR) const {
        for (const auto &[l, text] : logs)
            if (l == level && text.find(needle) != std::string::npos) return true;
        return false;
    }
    std::string all_logs() const {
        std::string out;
        for (const auto &[l, text] : logs) out += "  [" + std::to_string(l) + "] " + text + "\n";
        return out;
    }

    fl_host abi{};
    fl_host_timer timer{};
    fl_host_transport transport{};
    fl_host_commit commit{};
    bool offers_commit = true;   // firelink.commit/1; decided before a device's host_handle is made
    std::uint64_t emitted_ok = 0;  // events emit answered FL_OK: what commit.emitted answers
    fl_status emit_answer = FL_OK;
    std::uint64_t next_timer_id = 100;
    std::vector<bytes> events;
    std::vector<std::pair<int, std::string>> logs;
    std::vector<std::string> extension_queries;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> timers_started;
    std::vector<bytes> writes;
};

bytes command_bytes(const char *id, const char *name) {
    return packed_by_msgpack_c([&](auto &pk) {
        pk.pack_map(2);
        pk.pack("id"); pk.pack(id);
        pk.pack("name"); pk.pack(name);
    });
}

template <class Value>
bytes command_with_arg(const char *id, const char *name, const char *arg, Value value) {
    return packed_by_msgpack_c([&](auto &pk) {
        pk.pack_map(3);
        pk.pack("id"); pk.pack(id);
        pk.pack("name"); pk.pack(name);
        pk.pack("args"); pk.pack_map(1); pk.pack(arg); pk.pack(value);
    });
}

const fl_plugin_entry &entry = firelink_plugin_entry;

// ---- Before negotiation ---------------------------------------------------------------------------------------
// The registry is process-wide, so "before negotiate" is checked in a freshly started copy of this executable
// (a death test in "threadsafe" style re-runs the binary for this one test), whatever ran before in this process.

int misuse_before_negotiate() {
    int failures = 0;
    if (entry.get_descriptor() != nullptr) failures |= 1, std::cerr << "get_descriptor answered before negotiate\n";
    fake_host plugin_host{nullptr};
    if (entry.init(&plugin_host.abi, "/plugins/wrapper-test.so") != FL_MISUSE)
        failures |= 2, std::cerr << "init before negotiate was not MISUSE\n";
    const fl_device *out = reinterpret_cast<const fl_device *>(&plugin_host);
    fake_host dev_host{"gas-1"};
    if (entry.create_device("probe", &dev_host.abi, nullptr, 0, &out) != FL_MISUSE || out != nullptr)
        failures |= 4, std::cerr << "create_device before negotiate was not MISUSE with a NULL device\n";
    return failures;
}

TEST(WrapperBeforeNegotiate, DescriptorIsNullAndInitAndCreateAreMisuse) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(std::_Exit(misuse_before_negotiate()), testing::ExitedWithCode(0), "");
}

// ---- The entry and negotiation --------------------------------------------------------------------------------

TEST(WrapperEntry, IsAV1EntryWithEveryFunction) {
    EXPECT_EQ(entry.struct_size, sizeof(fl_plugin_entry));
    EXPECT_GE(entry.struct_size, FL_V1_0_SIZEOF_PLUGIN_ENTRY);
    EXPECT_EQ(entry.abi_version, FL_ABI_VERSION);
    EXPECT_NE(entry.negotiate, nullptr);
    EXPECT_NE(entry.init, nullptr);
    EXPECT_NE(entry.deinit, nullptr);
    EXPECT_NE(entry.get_descriptor, nullptr);
    EXPECT_NE(entry.create_device, nullptr);
    ASSERT_NE(entry.get_extension, nullptr);
    EXPECT_EQ(entry.get_extension("firelink.nothing/1"), nullptr);
}

TEST(WrapperNegotiate, RefusesAnyOtherMajorAndLeavesTheAnswerAlone) {
    for (std::uint32_t host : {FL_MAKE_VERSION(2, 0, 0), FL_MAKE_VERSION(0, 9, 0), FL_MAKE_VERSION(3, 1, 2),
                               FL_MAKE_VERSION(1023, 0, 0)}) {
        std::uint32_t agreed = 0xDEADBEEF;
        EXPECT_EQ(entry.negotiate(host, &agreed), FL_INCOMPATIBLE) << std::hex << host;
        EXPECT_EQ(agreed, 0xDEADBEEFu);
    }
}

TEST(WrapperNegotiate, AnswersTheLowerOfTheTwoVersions) {
    for (std::uint32_t host : {FL_MAKE_VERSION(1, 0, 0), FL_MAKE_VERSION(1, 0, 9), FL_MAKE_VERSION(1, 5, 0),
                               FL_MAKE_VERSION(1, 1023, 4095)}) {
        std::uint32_t agreed = 0;
        ASSERT_EQ(entry.negotiate(host, &agreed), FL_OK) << std::hex << host;
        EXPECT_EQ(agreed, std::min(host, FL_ABI_VERSION)) << std::hex << host;
        EXPECT_EQ(FL_VERSION_MAJOR(agreed), 1u);
    }
    std::uint32_t agreed = 0;
    ASSERT_EQ(entry.negotiate(FL_MAKE_VERSION(1, 5, 0), &agreed), FL_OK);
    EXPECT_EQ(agreed, FL_ABI_VERSION) << "a newer 1.5 host is answered with the plugin's own version";
    EXPECT_EQ(entry.negotiate(FL_ABI_VERSION, nullptr), FL_MISUSE);
}

// ---- A negotiated and initialised plugin ----------------------------------------------------------------------

class Wrapper : public testing::Test {
protected:
    void SetUp() override {
        journal = {};
        std::uint32_t agreed = 0;
        ASSERT_EQ(entry.negotiate(FL_ABI_VERSION, &agreed), FL_OK);
        entry.deinit();  // whatever an earlier test in this process left behind
        ASSERT_EQ(entry.init(&plugin_host.abi, "/plugins/wrapper-test.so"), FL_OK);
    }
    void TearDown() override {
        for (auto *d : devices)
            if (d) d->destroy(d);
        entry.deinit();
    }

    // Creates a device on dev_host and destroys it at the end of the test.
    fl_status create(const bytes &config, const fl_device **out, const char *driver = "probe") {
        *out = reinterpret_cast<const fl_device *>(this);  // must be overwritten, with NULL on failure
        fl_status st = entry.create_device(driver, &dev_host.abi, config.empty() ? nullptr : config.data(),
                                           config.size(), out);
        if (st == FL_OK) devices.push_back(*out);
        return st;
    }
    const fl_device *make(const bytes &config = {}, const char *driver = "probe") {
        const fl_device *d = nullptr;
        EXPECT_EQ(create(config, &d, driver), FL_OK) << dev_host.all_logs();
        return d;
    }
    // make(), then start(): NULL, the failure recorded, unless both succeed.
    const fl_device *started(const bytes &config = {}, const char *driver = "probe") {
        const fl_device *d = make(config, driver);
        if (!d) return nullptr;
        const fl_status st = d->start(d);
        EXPECT_EQ(st, FL_OK) << dev_host.all_logs();
        return st == FL_OK ? d : nullptr;
    }
    // Hands the device one command as the host does, and returns its answer.
    static fl_status send(const fl_device *d, const bytes &command) {
        return d->command(d, command.data(), command.size());
    }
    void destroy(const fl_device *d) {
        for (auto *&x : devices)
            if (x == d) x = nullptr;
        d->destroy(d);
    }
    static const fl_device_timer *timer_of(const fl_device *d) {
        return static_cast<const fl_device_timer *>(d->get_extension(d, FL_EXT_TIMER));
    }
    static const fl_device_transport *transport_of(const fl_device *d) {
        return static_cast<const fl_device_transport *>(d->get_extension(d, FL_EXT_TRANSPORT));
    }

    fake_host plugin_host{nullptr};
    fake_host dev_host{"gas-1"};
    std::vector<const fl_device *> devices;
};

TEST_F(Wrapper, DescriptorDescribesThePluginAndEveryDriver) {
    const fl_plugin_descriptor *p = entry.get_descriptor();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(entry.get_descriptor(), p) << "the same pointer every call";
    EXPECT_EQ(p->struct_size, sizeof(fl_plugin_descriptor));
    EXPECT_STREQ(p->id, "org.example.wrapper-test");
    EXPECT_STREQ(p->name, "Wrapper test");
    EXPECT_STREQ(p->vendor, "firelink tests");
    EXPECT_STREQ(p->version, "0.1.0");
    EXPECT_STREQ(p->license, "Apache-2.0");
    EXPECT_STREQ(p->url, "https://example.org/firelink");
    EXPECT_EQ(p->description, nullptr);
    ASSERT_EQ(p->driver_count, 5u);
    ASSERT_NE(p->drivers, nullptr);

    const fl_driver_descriptor *probe = p->drivers[0];
    EXPECT_EQ(probe->struct_size, sizeof(fl_driver_descriptor));
    EXPECT_STREQ(probe->id, "probe");
    EXPECT_STREQ(probe->name, "Probe valve");
    EXPECT_STREQ(probe->device_class, FL_CLASS_GAS_SHUTOFF_VALVE);
    EXPECT_STREQ(probe->description, "exercises every hook");
    EXPECT_EQ(probe->wires, FL_WIRE_SERIAL | FL_WIRE_RS485_BUS);
    EXPECT_EQ(probe->flags, 0u);
    ASSERT_NE(probe->required_extensions, nullptr);
    EXPECT_STREQ(probe->required_extensions[0], FL_EXT_TIMER);
    EXPECT_STREQ(probe->required_extensions[1], FL_EXT_TRANSPORT);
    EXPECT_EQ(probe->required_extensions[2], nullptr) << "the list is NULL-terminated";

    const fl_driver_descriptor *plain = p->drivers[1];
    EXPECT_STREQ(plain->id, "plain");
    EXPECT_EQ(plain->flags, FL_DRIVER_OWN_IO);
    EXPECT_EQ(plain->wires, 0u);
    EXPECT_TRUE(plain->required_extensions == nullptr || plain->required_extensions[0] == nullptr);
    EXPECT_EQ(probe->commands, nullptr) << "no .commands: declares none";

    const fl_driver_descriptor *declared = p->drivers[3];
    EXPECT_STREQ(declared->id, "declared");
    ASSERT_NE(declared->commands, nullptr);
    const fl_command_descriptor *const *c = declared->commands;
    ASSERT_NE(c[0], nullptr);
    EXPECT_EQ(c[0]->struct_size, sizeof(fl_command_descriptor));
    EXPECT_STREQ(c[0]->name, "close_valve");
    EXPECT_STREQ(c[0]->description, "Close the valve");
    EXPECT_EQ(c[0]->flags, FL_COMMAND_ACTUATES);
    ASSERT_NE(c[1], nullptr);
    EXPECT_STREQ(c[1]->name, "open_valve");
    EXPECT_EQ(c[1]->flags, FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES);
    ASSERT_NE(c[2], nullptr);
    EXPECT_STREQ(c[2]->name, "set_threshold");
    EXPECT_EQ(c[2]->description, nullptr);
    EXPECT_EQ(c[2]->flags, 0u);
    EXPECT_EQ(c[3], nullptr) << "the list is NULL-terminated";

    const fl_driver_descriptor *mute = p->drivers[4];
    ASSERT_NE(mute->commands, nullptr) << ".no_commands declares an empty list, not none";
    EXPECT_EQ(mute->commands[0], nullptr);
}

TEST_F(Wrapper, InitTwiceIsMisuseAndInitDeinitCyclesWork) {
    EXPECT_EQ(entry.init(&plugin_host.abi, "/plugins/wrapper-test.so"), FL_MISUSE);
    entry.deinit();
    const fl_device *d = nullptr;
    EXPECT_EQ(create({}, &d), FL_MISUSE) << "create_device after deinit";
    EXPECT_EQ(d, nullptr);
    ASSERT_EQ(entry.init(&plugin_host.abi, "/plugins/wrapper-test.so"), FL_OK);
    EXPECT_EQ(create({}, &d), FL_OK);
    EXPECT_NE(d, nullptr);
}

TEST_F(Wrapper, InitWithoutAHostIsMisuse) {
    entry.deinit();
    EXPECT_EQ(entry.init(nullptr, "/plugins/wrapper-test.so"), FL_MISUSE);
    const fl_device *d = nullptr;
    EXPECT_EQ(create({}, &d), FL_MISUSE) << "a refused init leaves the plugin uninitialised";
    ASSERT_EQ(entry.init(&plugin_host.abi, "/plugins/wrapper-test.so"), FL_OK);
}

TEST_F(Wrapper, CreateDeviceBeforeInitIsMisuse) {
    entry.deinit();  // negotiated, not initialised
    ASSERT_NE(entry.get_descriptor(), nullptr) << "the descriptor is readable without init";
    const fl_device *d = nullptr;
    EXPECT_EQ(create({}, &d), FL_MISUSE);
    EXPECT_EQ(d, nullptr);
    EXPECT_EQ(journal.constructed, 0);
}

TEST_F(Wrapper, CreateDeviceWithNullArgumentsIsMisuse) {
    const fl_device *d = nullptr;
    EXPECT_EQ(entry.create_device(nullptr, &dev_host.abi, nullptr, 0, &d), FL_MISUSE);
    EXPECT_EQ(entry.create_device("probe", nullptr, nullptr, 0, &d), FL_MISUSE);
    EXPECT_EQ(entry.create_device("probe", &dev_host.abi, nullptr, 0, nullptr), FL_MISUSE);
    EXPECT_EQ(entry.create_device("probe", &dev_host.abi, nullptr, 3, &d), FL_MISUSE) << "size without bytes";
    EXPECT_EQ(d, nullptr);
    EXPECT_EQ(journal.constructed, 0);
}

TEST_F(Wrapper, UnknownDriverIdIsNotFoundAndLogged) {
    const fl_device *d = nullptr;
    EXPECT_EQ(create({}, &d, "no-such-driver"), FL_NOT_FOUND);
    EXPECT_EQ(d, nullptr);
    EXPECT_TRUE(dev_host.logged("'no-such-driver'")) << dev_host.all_logs();
}

TEST_F(Wrapper, AShortHostIsNotReadPastItsSizeWhenLogging) {
    // An fl_host whose struct_size ends before `log` is smaller than any v1.0 host: refused as MISUSE, and the
    // plugin must not call `log` on it, even to report the refusal.
    dev_host.abi.struct_size = static_cast<std::uint32_t>(offsetof(fl_host, log));
    const fl_device *d = nullptr;
    EXPECT_EQ(create({}, &d, "no-such-driver"), FL_MISUSE);
    EXPECT_TRUE(dev_host.logs.empty()) << dev_host.all_logs();
}

TEST_F(Wrapper, RefusedConfigIsInvalidArgumentAndTheLogNamesTheKey) {
    const fl_device *d = nullptr;
    auto mistyped = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(1);
        pk.pack("period_ms"); pk.pack("fast");
    });
    EXPECT_EQ(create(mistyped, &d), FL_INVALID_ARGUMENT);
    EXPECT_EQ(d, nullptr);
    EXPECT_TRUE(dev_host.logged("config key 'period_ms': expected an integer, got a string")) << dev_host.all_logs();

    auto unknown = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(1);
        pk.pack("colour"); pk.pack("red");
    });
    EXPECT_EQ(create(unknown, &d), FL_INVALID_ARGUMENT);
    EXPECT_TRUE(dev_host.logged("config key 'colour': unknown key")) << dev_host.all_logs();

    auto negative = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(1);
        pk.pack("period_ms"); pk.pack(-5);
    });
    EXPECT_EQ(create(negative, &d), FL_INVALID_ARGUMENT);
    EXPECT_TRUE(dev_host.logged("config key 'period_ms': -5 must not be negative")) << dev_host.all_logs();

    bytes not_msgpack = {0x81, 0xa9, 'p'};
    EXPECT_EQ(create(not_msgpack, &d), FL_INVALID_ARGUMENT);
    bytes not_a_map = {0x92, 0x01, 0x02};
    EXPECT_EQ(create(not_a_map, &d), FL_INVALID_ARGUMENT);
    EXPECT_TRUE(dev_host.logged("expected a map")) << dev_host.all_logs();
    EXPECT_EQ(journal.constructed, 0);
}

TEST_F(Wrapper, ConstructorThrowingAnythingElseIsErrorAndLogged) {
    const fl_device *d = nullptr;
    auto boom = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(1);
        pk.pack("throw_runtime"); pk.pack(true);
    });
    EXPECT_EQ(create(boom, &d), FL_ERROR);
    EXPECT_EQ(d, nullptr);
    EXPECT_TRUE(dev_host.logged("constructor exploded")) << dev_host.all_logs();
}

TEST_F(Wrapper, EmptyConfigGivesTheDefaults) {
    const fl_device *d = make();
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->struct_size, sizeof(fl_device));
    EXPECT_NE(d->driver_data, nullptr);
    ASSERT_EQ(d->start(d), FL_OK);
    ASSERT_EQ(dev_host.timers_started.size(), 1u);
    EXPECT_EQ(dev_host.timers_started[0].first, 1000u);
    EXPECT_EQ(dev_host.timers_started[0].second, 0u) << "periodic, not one-shot";
}

// ---- Device lifecycle -----------------------------------------------------------------------------------------

TEST_F(Wrapper, LifecycleCallsInTheWrongStateAreMisuse) {
    const fl_device *d = make();
    ASSERT_NE(d, nullptr);
    auto cmd = command_bytes("c1", "close_valve");
    // created
    EXPECT_EQ(d->stop(d), FL_MISUSE);
    EXPECT_EQ(send(d, cmd), FL_MISUSE);
    EXPECT_EQ(journal.stops, 0);
    EXPECT_TRUE(journal.commands.empty());
    // started
    ASSERT_EQ(d->start(d), FL_OK);
    EXPECT_EQ(d->start(d), FL_MISUSE);
    EXPECT_EQ(journal.starts, 1);
    // stopped
    ASSERT_EQ(d->stop(d), FL_OK);
    EXPECT_EQ(d->stop(d), FL_MISUSE);
    EXPECT_EQ(send(d, cmd), FL_MISUSE);
    EXPECT_EQ(journal.stops, 1);
    EXPECT_TRUE(journal.commands.empty());
    // started again
    ASSERT_EQ(d->start(d), FL_OK);
    EXPECT_EQ(journal.starts, 2);
    EXPECT_EQ(send(d, cmd), FL_OK);
}

TEST_F(Wrapper, DestroyNullIsANoOp) {
    const fl_device *d = make();
    ASSERT_NE(d, nullptr);
    d->destroy(nullptr);
    EXPECT_EQ(journal.destroyed, 0);
    EXPECT_EQ(d->start(d), FL_OK) << "the real instance is untouched";
}

TEST_F(Wrapper, DestroyWhileStartedStopsThenFrees) {
    const fl_device *d = started();
    ASSERT_NE(d, nullptr);
    destroy(d);
    EXPECT_EQ(journal.stops, 1);
    EXPECT_EQ(journal.destroyed, 1);
}

TEST_F(Wrapper, DestroyInCreatedAndStoppedFreesWithoutStopping) {
    const fl_device *a = make();
    destroy(a);
    EXPECT_EQ(journal.stops, 0);
    EXPECT_EQ(journal.destroyed, 1);
    const fl_device *b = started();
    ASSERT_NE(b, nullptr);
    ASSERT_EQ(b->stop(b), FL_OK);
    destroy(b);
    EXPECT_EQ(journal.stops, 1) << "not stopped twice";
    EXPECT_EQ(journal.destroyed, 2);
}

TEST_F(Wrapper, StartThatThrowsFailsAndLeavesTheDeviceCreated) {
    auto cfg = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(1);
        pk.pack("fail_start"); pk.pack(true);
    });
    const fl_device *d = make(cfg);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->start(d), FL_ERROR);
    EXPECT_TRUE(dev_host.logged("start refused: no wire")) << dev_host.all_logs();
    EXPECT_EQ(d->stop(d), FL_MISUSE) << "a failed start leaves the instance in its previous state";
    auto t = timer_of(d);
    t->on_timer(d, 1);
    EXPECT_TRUE(journal.ticks.empty());
}

// ---- Callbacks reach the device only while it is started ------------------------------------------------------

TEST_F(Wrapper, DeviceExtensionsAreOfferedByExactId) {
    const fl_device *d = make();
    const fl_device_timer *t = timer_of(d);
    const fl_device_transport *tr = transport_of(d);
    ASSERT_NE(t, nullptr);
    ASSERT_NE(tr, nullptr);
    EXPECT_GE(t->struct_size, FL_V1_0_SIZEOF_DEVICE_TIMER);
    EXPECT_GE(tr->struct_size, FL_V1_0_SIZEOF_DEVICE_TRANSPORT);
    EXPECT_NE(t->on_timer, nullptr);
    EXPECT_NE(tr->on_data, nullptr);
    EXPECT_NE(tr->on_state, nullptr);
    EXPECT_EQ(d->get_extension(d, "firelink.timer/2"), nullptr);
    EXPECT_EQ(d->get_extension(d, "firelink.timer"), nullptr);
    EXPECT_EQ(d->get_extension(d, nullptr), nullptr);
    EXPECT_EQ(d->get_extension(nullptr, FL_EXT_TIMER), nullptr);
}

TEST_F(Wrapper, TimerTicksReachTheDeviceOnlyWhileStarted) {
    auto cfg = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(1);
        pk.pack("period_ms"); pk.pack(250);
    });
    const fl_device *d = make(cfg);
    const fl_device_timer *t = timer_of(d);
    ASSERT_NE(t, nullptr);

    t->on_timer(d, 100);  // created
    EXPECT_TRUE(journal.ticks.empty());

    ASSERT_EQ(d->start(d), FL_OK);
    ASSERT_EQ(dev_host.timers_started.size(), 1u);
    EXPECT_EQ(dev_host.timers_started[0].first, 250u);
    ASSERT_TRUE(journal.timer_id.has_value());
    EXPECT_EQ(*journal.timer_id, 100u) << "the id the host handed out";
    t->on_timer(d, 100);
    t->on_timer(d, 100);
    EXPECT_EQ(journal.ticks, (std::vector<std::uint64_t>{100, 100}));

    ASSERT_EQ(d->stop(d), FL_OK);
    t->on_timer(d, 100);  // stopped
    EXPECT_EQ(journal.ticks.size(), 2u);

    ASSERT_EQ(d->start(d), FL_OK);
    t->on_timer(d, 101);
    EXPECT_EQ(journal.ticks.back(), 101u);
    t->on_timer(nullptr, 101);  // must not crash
}

TEST_F(Wrapper, WireBytesAndLinkStatesReachTheDeviceOnlyWhileStarted) {
    const fl_device *d = make();
    const fl_device_transport *tr = transport_of(d);
    const std::uint8_t a[] = {1, 2, 3}, b[] = {4};
    tr->on_data(d, a, sizeof a);
    tr->on_state(d, FL_LINK_OPEN, FL_OK);
    EXPECT_TRUE(journal.data.empty());
    EXPECT_TRUE(journal.links.empty());

    ASSERT_EQ(d->start(d), FL_OK);
    tr->on_data(d, a, sizeof a);
    tr->on_data(d, b, sizeof b);
    tr->on_data(d, nullptr, 5);  // a size without bytes is dropped, not dereferenced
    tr->on_data(d, nullptr, 0);
    tr->on_state(d, FL_LINK_LOST, FL_IO);
    EXPECT_EQ(journal.data, (bytes{1, 2, 3, 4}));
    ASSERT_EQ(journal.links.size(), 1u);
    EXPECT_EQ(journal.links[0], (std::pair<int, fl_status>{FL_LINK_LOST, FL_IO}));

    ASSERT_EQ(d->stop(d), FL_OK);
    tr->on_data(d, b, sizeof b);
    EXPECT_EQ(journal.data.size(), 4u);
}

TEST_F(Wrapper, ExceptionsInCallbacksAreCaughtLoggedAndTheDeviceGoesOn) {
    const fl_device *d = started();
    ASSERT_NE(d, nullptr);
    timer_of(d)->on_timer(d, 666);
    EXPECT_TRUE(dev_host.logged("on_timer threw: tick exploded")) << dev_host.all_logs();
    const std::uint8_t frame[] = {0x01, 0xEE};
    transport_of(d)->on_data(d, frame, sizeof frame);
    EXPECT_TRUE(dev_host.logged("on_data threw: bad frame")) << dev_host.all_logs();
    // still started, still working
    timer_of(d)->on_timer(d, 7);
    EXPECT_EQ(journal.ticks.back(), 7u);
    EXPECT_EQ(d->stop(d), FL_OK);
}

// ---- Commands -------------------------------------------------------------------------------------------------

TEST_F(Wrapper, AcceptedCommandEmitsACommandResultThroughTheDevicesHost) {
    const fl_device *d = started();
    ASSERT_NE(d, nullptr);
    auto cmd = command_bytes("cmd-9", "close_valve");
    ASSERT_EQ(send(d, cmd), FL_OK);
    ASSERT_EQ(dev_host.events.size(), 1u);
    EXPECT_TRUE(plugin_host.events.empty()) << "events go to the device's fl_host, not the plugin's";

    const auto &ev = dev_host.events[0];
    auto oh = msgpack::unpack(reinterpret_cast<const char *>(ev.data()), ev.size());
    std::map<std::string, msgpack::object> fields;
    oh.get().convert(fields);
    EXPECT_EQ(fields.at("kind").as<std::string>(), "command_result");
    EXPECT_EQ(fields.at("command_id").as<std::string>(), "cmd-9");
    EXPECT_TRUE(fields.at("ok").as<bool>());
    EXPECT_EQ(fields.at("schema").as<int>(), 1);
}

TEST_F(Wrapper, MalformedCommandIsInvalidArgument) {
    const fl_device *d = started();
    ASSERT_NE(d, nullptr);
    bytes garbage = {0x83, 0xa2, 'i'};
    EXPECT_EQ(send(d, garbage), FL_INVALID_ARGUMENT);
    bytes array = {0x91, 0x01};
    EXPECT_EQ(send(d, array), FL_INVALID_ARGUMENT);
    auto no_id = packed_by_msgpack_c([](auto &pk) {
        pk.pack_map(1);
        pk.pack("name"); pk.pack("close_valve");
    });
    EXPECT_EQ(send(d, no_id), FL_INVALID_ARGUMENT);
    EXPECT_TRUE(dev_host.logged("config key 'id': missing")) << dev_host.all_logs();
    EXPECT_EQ(d->command(d, nullptr, 0), FL_INVALID_ARGUMENT) << "an empty command has no id";
    EXPECT_EQ(d->command(d, nullptr, 4), FL_MISUSE);
    EXPECT_TRUE(journal.commands.empty()) << "the device never saw a malformed command";
    EXPECT_TRUE(dev_host.events.empty());
}

TEST_F(Wrapper, BadCommandArgumentsAreInvalidArgumentNamingTheArgument) {
    const fl_device *d = started();
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(send(d, command_with_arg("c1", "set_threshold", "ma", "thirty")), FL_INVALID_ARGUMENT);
    EXPECT_TRUE(dev_host.logged("config key 'args.ma': expected an integer, got a string")) << dev_host.all_logs();
    EXPECT_EQ(send(d, command_with_arg("c2", "set_threshold", "ma", 70000)), FL_INVALID_ARGUMENT);
    EXPECT_TRUE(dev_host.logged("config key 'args.ma': 70000 is out of range")) << dev_host.all_logs();
    EXPECT_FALSE(journal.threshold_ma.has_value());
    EXPECT_EQ(send(d, command_with_arg("c3", "set_threshold", "ma", 300)), FL_OK);
    EXPECT_EQ(journal.threshold_ma, std::optional<std::uint16_t>{300});
}

TEST_F(Wrapper, UnknownCommandIsUnsupported) {
    const fl_device *d = started();
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(send(d, command_bytes("c1", "dance")), FL_UNSUPPORTED);
    EXPECT_EQ(journal.commands, (std::vector<std::string>{"dance"}));

    const fl_device *plain = started({}, "plain");
    ASSERT_NE(plain, nullptr);
    EXPECT_EQ(send(plain, command_bytes("c2", "close_valve")), FL_UNSUPPORTED) << "the base class knows none";
}

// A driver that declares its commands never sees another name: the wrapper answers FL_UNSUPPORTED itself, logged.
TEST_F(Wrapper, ACommandTheDriverDidNotDeclareNeverReachesOnCommand) {
    const fl_device *d = started({}, "declared");
    ASSERT_NE(d, nullptr);
    for (const char *name : {"dance", "explode", "close_valve_now", "CLOSE_VALVE", "close"}) {
        EXPECT_EQ(send(d, command_bytes("c-undeclared", name)), FL_UNSUPPORTED) << name;
    }
    EXPECT_TRUE(journal.commands.empty()) << "on_command saw an undeclared name";
    EXPECT_TRUE(dev_host.logged("command 'explode' (id c-undeclared) is not one this driver declares; refused", FL_LOG_WARN))
        << dev_host.all_logs();
    auto close = command_bytes("c-1", "close_valve");
    EXPECT_EQ(send(d, close), FL_OK);
    EXPECT_EQ(journal.commands, (std::vector<std::string>{"close_valve"}));

    const fl_device *mute = started({}, "mute");
    ASSERT_NE(mute, nullptr);
    EXPECT_EQ(send(mute, close), FL_UNSUPPORTED) << "it declared that it takes none";
}

TEST_F(Wrapper, CommandThatThrowsIsErrorAndLogged) {
    const fl_device *d = started();
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(send(d, command_bytes("c1", "explode")), FL_ERROR);
    EXPECT_TRUE(dev_host.logged("command threw: command exploded")) << dev_host.all_logs();
}

// ---- host_handle ----------------------------------------------------------------------------------------------

TEST(HostHandle, PassesEventsLogsAndAnswersThrough) {
    fake_host h{"breaker-7"};
    firelink::host_handle handle{&h.abi};
    EXPECT_EQ(handle.raw(), &h.abi);
    EXPECT_EQ(handle.device_id(), "breaker-7");
    EXPECT_TRUE(handle.has_timers());
    EXPECT_TRUE(handle.has_transport());
    EXPECT_EQ(handle.transport_kind(), FL_TRANSPORT_RS485_BUS);

    EXPECT_EQ(handle.emit(firelink::event{firelink::event_kind::alarm, "arc_fault"}), FL_OK);
    ASSERT_EQ(h.events.size(), 1u);
    h.emit_answer = FL_BUSY;
    EXPECT_EQ(handle.emit(firelink::event{firelink::event_kind::alarm, "arc_fault"}), FL_BUSY)
        << "backpressure reaches the driver";

    handle.warn("low battery");
    EXPECT_TRUE(h.logged("low battery", FL_LOG_WARN));

    const std::uint8_t frame[] = {0x01, 0x03};
    EXPECT_EQ(handle.write(frame), FL_OK);
    ASSERT_EQ(h.writes.size(), 1u);
    EXPECT_EQ(h.writes[0], (bytes{0x01, 0x03}));

    auto id = handle.start_timer(std::chrono::milliseconds(50), true);
    ASSERT_TRUE(id.has_value());
    EXPECT_EQ(h.timers_started.back(), (std::pair<std::uint32_t, std::uint32_t>{50u, FL_TIMER_ONESHOT}));
    EXPECT_FALSE(handle.start_timer(std::chrono::milliseconds(0)).has_value()) << "a period of 0 is refused";
    EXPECT_EQ(h.timers_started.size(), 1u) << "without asking the host";
    EXPECT_FALSE(handle.start_timer(std::chrono::milliseconds(std::int64_t{1} << 33)).has_value());
}

TEST(HostHandle, OlderShorterHostIsNotReadPastItsSize) {
    fake_host h{"breaker-7"};
    // A host whose struct ends after device_id: emit, log and get_extension do not exist for it.
    h.abi.struct_size = static_cast<std::uint32_t>(offsetof(fl_host, emit));
    firelink::host_handle handle{&h.abi};
    EXPECT_TRUE(h.extension_queries.empty());
    EXPECT_FALSE(handle.has_timers());
    EXPECT_FALSE(handle.has_transport());
    EXPECT_EQ(handle.device_id(), "breaker-7");
    EXPECT_EQ(handle.emit(firelink::event{firelink::event_kind::alarm, "x"}), FL_UNSUPPORTED);
    EXPECT_TRUE(h.events.empty());
    handle.error("nobody hears this");
    EXPECT_TRUE(h.logs.empty());
    EXPECT_EQ(handle.extension<fl_host_timer>(FL_EXT_TIMER), nullptr);
    EXPECT_FALSE(handle.start_timer(std::chrono::milliseconds(10)).has_value());
    EXPECT_EQ(handle.cancel_timer(1), FL_UNSUPPORTED);
    EXPECT_EQ(handle.open_wire(), FL_UNSUPPORTED);
}

TEST(HostHandle, NullHostIsHarmless) {
    firelink::host_handle handle{nullptr};
    EXPECT_EQ(handle.device_id(), "");
    EXPECT_EQ(handle.emit(firelink::event{firelink::event_kind::alarm, "x"}), FL_UNSUPPORTED);
    handle.info("nobody");
    EXPECT_FALSE(handle.has_timers());
}

// ---- firelink.commit/1 through the wrapper ---------------------------------------------------------------------

std::vector<std::string> written(const fake_host &h) {
    std::vector<std::string> out;
    for (const auto &w : h.writes) out.emplace_back(w.begin(), w.end());
    return out;
}

void feed(const fl_device *d, const std::string &text) {
    const auto *t = static_cast<const fl_device_transport *>(d->get_extension(d, FL_EXT_TRANSPORT));
    t->on_data(d, reinterpret_cast<const std::uint8_t *>(text.data()), text.size());
}

TEST_F(Wrapper, WhenCommittedConfirmsOnlyWhatTheHostReportedCommitted) {
    const fl_device *d = make({}, "acker");
    const auto *commit = static_cast<const fl_device_commit *>(d->get_extension(d, FL_EXT_COMMIT));
    ASSERT_NE(commit, nullptr) << "a driver declared confirms_on_commit returns fl_device_commit";
    ASSERT_GE(commit->struct_size, FL_V1_0_SIZEOF_DEVICE_COMMIT);
    ASSERT_EQ(d->start(d), FL_OK);
    feed(d, "a");
    feed(d, "b");
    feed(d, "c");
    EXPECT_TRUE(dev_host.writes.empty()) << "FL_OK is not committed: nothing may be confirmed yet";
    commit->on_committed(d, 2);
    EXPECT_EQ(written(dev_host), (std::vector<std::string>{"ACK a", "ACK b"}));
    commit->on_committed(d, 2);
    EXPECT_EQ(dev_host.writes.size(), 2u) << "a repeated watermark confirms nothing twice";
    dev_host.emit_answer = FL_BUSY;
    feed(d, "busy");  // not taken: the driver keeps no confirm for it
    dev_host.emit_answer = FL_OK;

    ASSERT_EQ(d->stop(d), FL_OK);
    commit->on_committed(d, 3);  // not started: MISUSE, does nothing
    EXPECT_EQ(dev_host.writes.size(), 2u);
    ASSERT_EQ(d->start(d), FL_OK);
    commit->on_committed(d, 3);
    EXPECT_EQ(written(dev_host), (std::vector<std::string>{"ACK a", "ACK b", "ACK c"}))
        << "a confirm waits through stop and start";
    feed(d, "e");  // event 4
    EXPECT_EQ(dev_host.writes.size(), 3u);
    commit->on_committed(d, 4);
    EXPECT_EQ(written(dev_host).back(), "ACK e");
    EXPECT_EQ(journal.committed, (std::vector<std::uint64_t>{2, 3, 4})) << "on_committed hears every new watermark";
}

TEST_F(Wrapper, WithoutCommitsFromTheHostWhenCommittedRunsAtFlOk) {
    dev_host.offers_commit = false;  // an older host: FL_OK is the best the driver can know
    const fl_device *d = started({}, "acker");
    ASSERT_NE(d, nullptr);
    feed(d, "a");
    EXPECT_EQ(written(dev_host), (std::vector<std::string>{"ACK a"}));
}

TEST_F(Wrapper, OnlyADriverDeclaredConfirmsOnCommitReturnsTheCommitExtension) {
    const fl_device *d = make();
    EXPECT_EQ(d->get_extension(d, FL_EXT_COMMIT), nullptr)
        << "returning fl_device_commit promises confirms only after commits (FL-PLUGIN-35)";
}

TEST(HostHandle, ReadsTheCommitExtension) {
    fake_host h{"panel-1"};
    firelink::host_handle handle{&h.abi};
    EXPECT_TRUE(handle.has_commit());
    EXPECT_EQ(handle.emitted(), 0u);
    EXPECT_EQ(handle.emit(firelink::event{firelink::event_kind::alarm, "fire_alarm"}), FL_OK);
    EXPECT_EQ(handle.emitted(), 1u) << "right after an FL_OK emit: that event's number";
    fake_host old{"panel-2"};
    old.offers_commit = false;
    firelink::host_handle without{&old.abi};
    EXPECT_FALSE(without.has_commit());
    EXPECT_EQ(without.emitted(), 0u);
}

}  // namespace

TEST(WrapperIdentify, ReadsTheIdentityThroughTheExtension) {
    std::uint32_t agreed = 0;
    ASSERT_EQ(firelink_plugin_entry.negotiate(FL_ABI_VERSION, &agreed), FL_OK);
    const auto *ext = static_cast<const fl_plugin_identify *>(firelink_plugin_entry.get_extension(FL_EXT_IDENTIFY));
    ASSERT_NE(ext, nullptr);
    ASSERT_GE(ext->struct_size, FL_V1_0_SIZEOF_PLUGIN_IDENTIFY);
    char out[16];
    std::size_t len = 0;
    auto call = [&](const char *driver, const std::string &bytes, std::size_t cap = sizeof out) {
        return ext->identify(driver, reinterpret_cast<const std::uint8_t *>(bytes.data()), bytes.size(), out, cap,
                             &len);
    };
    EXPECT_EQ(call("probe", "ID:A7\nrest"), FL_OK);
    EXPECT_EQ(std::string(out, len), "A7");
    EXPECT_EQ(call("probe", "ID:A"), FL_BUSY);
    EXPECT_EQ(call("probe", "HELLO\n"), FL_INVALID_ARGUMENT);
    EXPECT_EQ(call("probe", "ID:TOO-LONG-FOR-CAP\n", 4), FL_INVALID_ARGUMENT) << "never writes past cap";
    EXPECT_EQ(call("probe", "ID:\n"), FL_ERROR) << "an exception becomes FL_ERROR";
    EXPECT_EQ(call("plain", "ID:A\n"), FL_UNSUPPORTED) << "a driver without identify";
    EXPECT_EQ(call("nope", "ID:A\n"), FL_NOT_FOUND);
    EXPECT_EQ(firelink_plugin_entry.get_extension("firelink.nonexistent/1"), nullptr);
}
