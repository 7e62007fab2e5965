// How plugins run: [plugins] isolation, [plugins.isolation_of], [runner], and isolation_config::in_process().
#include "site_test_support.hpp"

#include <sstream>

using namespace site_test;
using firelink::site::isolation_config;

namespace {

const std::string gateway = "[gateway]\nid = \"gw-1\"\n";
const std::string plugins = "[plugins]\ndirs = [\"plugins\"]\n";

// A [plugins] table with `extra` after its dirs (from line 3), then the gateway.
std::string with_plugins(const std::string &extra) { return plugins + extra + gateway; }

const std::string modes = "expected one of \"process\", \"in_process\"";

// The value of every [runner] key a test sets, in the table's order.
struct runner_values {
    std::string path;
    std::string user;
    std::int64_t memory_mb;
    std::int64_t open_files;
    std::chrono::milliseconds hang;
    int restart_limit;
    std::chrono::seconds restart_window;
    std::chrono::milliseconds backoff_initial;
    std::chrono::milliseconds backoff_max;
};

// A [runner] table that sets each key to its value in `v`.
std::string runner_table(const runner_values &v) {
    std::ostringstream t;
    t << "[runner]\n"
      << "path = \"" << v.path << "\"\n"
      << "user = \"" << v.user << "\"\n"
      << "memory_mb = " << v.memory_mb << "\n"
      << "open_files = " << v.open_files << "\n"
      << "hang_ms = " << v.hang.count() << "\n"
      << "restart_limit = " << v.restart_limit << "\n"
      << "restart_window_s = " << v.restart_window.count() << "\n"
      << "backoff_initial_ms = " << v.backoff_initial.count() << "\n"
      << "backoff_max_ms = " << v.backoff_max.count() << "\n";
    return t.str();
}

// The config read every key of `v`; its runner path is `path` (the written one made absolute).
void expect_runner(const isolation_config &i, const runner_values &v, const std::string &path) {
    EXPECT_EQ(i.runner, path);
    EXPECT_EQ(i.user, v.user);
    EXPECT_EQ(i.memory_mb, v.memory_mb);
    EXPECT_EQ(i.open_files, v.open_files);
    EXPECT_EQ(i.hang_timeout, v.hang);
    EXPECT_EQ(i.restart_limit, v.restart_limit);
    EXPECT_EQ(i.restart_window, v.restart_window);
    EXPECT_EQ(i.backoff_initial, v.backoff_initial);
    EXPECT_EQ(i.backoff_max, v.backoff_max);
}

}  // namespace

// ---- defaults ------------------------------------------------------------------------------------------------

TEST(Isolation, DefaultsWhenAbsent) {
    const auto c = snippet_loads("");
    const auto &i = c.isolation;
    EXPECT_EQ(i.default_mode, "process");
    EXPECT_TRUE(i.by_plugin.empty());
    EXPECT_TRUE(i.runner.empty());
    EXPECT_EQ(i.user, "nobody");
    EXPECT_EQ(i.memory_mb, 1024);
    EXPECT_EQ(i.open_files, 1024);
    EXPECT_EQ(i.hang_timeout, 2000ms);
    EXPECT_EQ(i.restart_limit, 5);
    EXPECT_EQ(i.restart_window, 300s);
    EXPECT_EQ(i.backoff_initial, 100ms);
    EXPECT_EQ(i.backoff_max, 30000ms);
    EXPECT_FALSE(i.in_process("com.acme.breakers"));
    // A default-constructed isolation_config says the same as the loader.
    EXPECT_EQ(isolation_config{}.default_mode, "process");
    EXPECT_FALSE(isolation_config{}.in_process("com.acme.breakers"));
}

// ---- [plugins] isolation, [plugins.isolation_of] ------------------------------------------------------------

TEST(Isolation, PluginsKeysRead) {
    const auto c = loads(with_plugins(R"(isolation = "in_process"

[plugins.isolation_of]
"com.acme.breakers" = "process"
"cn.example.panel-2" = "in_process"
)"));
    EXPECT_EQ(c.isolation.default_mode, "in_process");
    EXPECT_EQ(c.isolation.by_plugin, (std::map<std::string, std::string>{{"com.acme.breakers", "process"},
                                                                          {"cn.example.panel-2", "in_process"}}));
    // Inline, and the dirs still read.
    const auto d = loads(with_plugins("isolation_of = { \"com.acme.breakers\" = \"in_process\" }\n"));
    EXPECT_EQ(d.isolation.default_mode, "process");
    EXPECT_EQ(d.isolation.by_plugin.at("com.acme.breakers"), "in_process");
    EXPECT_EQ(d.plugin_dirs.size(), 1u);
    // An empty table is allowed.
    EXPECT_TRUE(loads(with_plugins("[plugins.isolation_of]\n")).isolation.by_plugin.empty());
}

TEST(Isolation, InProcessHonoursTheDefaultAndTheOverride) {
    auto c = loads(with_plugins(R"([plugins.isolation_of]
"com.acme.breakers" = "in_process"
"com.acme.valves" = "process"
)"));
    EXPECT_TRUE(c.isolation.in_process("com.acme.breakers"));
    EXPECT_FALSE(c.isolation.in_process("com.acme.valves"));
    EXPECT_FALSE(c.isolation.in_process("com.acme.other"));  // the default: process

    c = loads(with_plugins(R"(isolation = "in_process"
isolation_of = { "com.acme.valves" = "process" }
)"));
    EXPECT_FALSE(c.isolation.in_process("com.acme.valves"));
    EXPECT_TRUE(c.isolation.in_process("com.acme.breakers"));
    EXPECT_TRUE(c.isolation.in_process(""));

    isolation_config i;
    i.default_mode = "in_process";
    i.by_plugin["com.acme.x"] = "process";
    EXPECT_TRUE(i.in_process("com.acme.y"));
    EXPECT_FALSE(i.in_process("com.acme.x"));
}

TEST(Isolation, PluginsRules) {
    EXPECT_THAT(errors_of(with_plugins("isolation = \"sandbox\"\n")),
                ElementsAre("site.toml:3:13: plugins.isolation: " + modes + ", got \"sandbox\""));
    EXPECT_THAT(errors_of(with_plugins("isolation = true\n")),
                ElementsAre("site.toml:3:13: plugins.isolation: " + modes + ", got a boolean"));
    EXPECT_THAT(errors_of(with_plugins("isolation_of = \"process\"\n")),
                ElementsAre("site.toml:3:16: plugins.isolation_of: expected a table, got a string"));
    EXPECT_THAT(errors_of(with_plugins("mode = \"process\"\n")),
                ElementsAre("site.toml:3:1: plugins.mode: unknown key (expected one of: dirs, isolation, "
                            "isolation_of, signatures, trusted_keys, certificates, certifier_keys, certificate_level)"));
    // The isolation keys are read even when dirs is wrong.
    EXPECT_THAT(errors_of("[plugins]\ndirs = []\nisolation = \"none\"\n" + gateway),
                ElementsAre("site.toml:2:8: plugins.dirs: expected at least one directory, got an empty array",
                            "site.toml:3:13: plugins.isolation: " + modes + ", got \"none\""));
}

TEST(Isolation, IsolationOfValueErrors) {
    EXPECT_THAT(errors_of(with_plugins("[plugins.isolation_of]\n\"com.acme.breakers\" = \"sandbox\"\n")),
                ElementsAre("site.toml:4:23: plugins.isolation_of.\"com.acme.breakers\": " + modes +
                            ", got \"sandbox\""));
    EXPECT_THAT(errors_of(with_plugins("[plugins.isolation_of]\n\"com.acme.breakers\" = 1\n")),
                ElementsAre("site.toml:4:23: plugins.isolation_of.\"com.acme.breakers\": " + modes +
                            ", got an integer"));
    EXPECT_THAT(errors_of(with_plugins("isolation_of = { \"com.acme.breakers\" = [\"process\"] }\n")),
                ElementsAre("site.toml:3:40: plugins.isolation_of.\"com.acme.breakers\": " + modes +
                            ", got an array"));
}

TEST(Isolation, IsolationOfKeysArePluginIds) {
    const std::string rule = "expected a lower-case reverse-DNS plugin id (e.g. \"com.acme.breakers\"), got ";
    EXPECT_THAT(errors_of(with_plugins("[plugins.isolation_of]\n\"Com.Acme.Breakers\" = \"process\"\n")),
                ElementsAre("site.toml:4:1: plugins.isolation_of.\"Com.Acme.Breakers\": " + rule +
                            "\"Com.Acme.Breakers\""));
    EXPECT_THAT(errors_of(with_plugins("[plugins.isolation_of]\nbreakers = \"process\"\n")),
                ElementsAre("site.toml:4:1: plugins.isolation_of.breakers: " + rule + "\"breakers\""));
    // A bad id and a bad value are two errors.
    EXPECT_THAT(errors_of(with_plugins("[plugins.isolation_of]\n\"acme\" = \"sandbox\"\n")),
                ElementsAre("site.toml:4:1: plugins.isolation_of.acme: " + rule + "\"acme\"",
                            "site.toml:4:10: plugins.isolation_of.acme: " + modes + ", got \"sandbox\""));
    // Unquoted, a dotted id makes nested tables: one error, with the fix.
    EXPECT_THAT(errors_of(with_plugins("[plugins.isolation_of]\ncom.acme.breakers = \"process\"\n")),
                ElementsAre("site.toml:4:1: plugins.isolation_of.com: " + modes +
                            ", got a table (a plugin id has dots: write it in quotes, \"com.acme.breakers\" = "
                            "\"process\")"));
}

// ---- [runner] ------------------------------------------------------------------------------------------------

TEST(Runner, EveryKeyRead) {
    const runner_values v{"bin/firelink-runner", "firelink_drv-1", 0, 16, 100ms, 1000, 86400s, 10ms, 3600000ms};
    const auto c = loads(runner_table(v) + base, "/etc/firelink/site.toml");
    expect_runner(c.isolation, v, "/etc/firelink/bin/firelink-runner");
    // The [plugins] side keeps its defaults.
    EXPECT_EQ(c.isolation.default_mode, "process");
}

TEST(Runner, OtherEndsOfTheRanges) {
    const runner_values v{"/usr/libexec/firelink/firelink-runner", "_fl", 1048576, 1048576, 600000ms, 1, 1s, 60000ms,
                          60000ms};
    expect_runner(snippet_loads(runner_table(v)).isolation, v, v.path);
    EXPECT_EQ(snippet_loads("[runner]\nmemory_mb = 16\n").isolation.memory_mb, 16);
    // An empty [runner] table is all defaults.
    EXPECT_EQ(snippet_loads("[runner]\n").isolation.user, "nobody");
}

TEST(Runner, UidRange) {
    const auto d = snippet_loads("[runner]\n").isolation;  // the default: below systemd's DynamicUser range
    EXPECT_EQ(d.uid_first, 61000u);
    EXPECT_EQ(d.uid_last, 61183u);
    const auto r = snippet_loads("[runner]\nuid_range = \"1-2147483647\"\n").isolation;
    EXPECT_EQ(r.uid_first, 1u);
    EXPECT_EQ(r.uid_last, 2147483647u);
    const auto one = snippet_loads("[runner]\nuid_range = \"70000-70000\"\n").isolation;
    EXPECT_EQ(one.uid_first, 70000u);
    EXPECT_EQ(one.uid_last, 70000u);
    const auto off = snippet_loads("[runner]\nuid_range = \"off\"\n").isolation;
    EXPECT_EQ(off.uid_first, 0u);
    EXPECT_EQ(off.uid_last, 0u);
    const std::string expected = "site.toml:2:13: runner.uid_range: expected \"FIRST-LAST\", uids from 1 to 2147483647 "
                                 "with FIRST <= LAST (e.g. \"61000-61183\"), or \"off\" (every runner one shared uid), "
                                 "got ";
    for (const char *bad : {"0-100", "100-99", "1-2147483648", "61000", "61000-", "-61000", "a-b", "61000 - 61999",
                            "+1-5", "Off", "", "99999999999-1"})
        EXPECT_EQ(snippet_error("[runner]\nuid_range = \"" + std::string(bad) + "\"\n"),
                  expected + "\"" + bad + "\"")
            << bad;
    EXPECT_EQ(snippet_error("[runner]\nuid_range = 61000\n"),
              "site.toml:2:13: runner.uid_range: expected a string, got an integer");
}

TEST(Runner, Rules) {
    EXPECT_EQ(snippet_error("[runner]\npath = \"\"\n"),
              "site.toml:2:8: runner.path: expected a non-empty string, got \"\"");
    EXPECT_EQ(snippet_error("[runner]\npath = 1\n"),
              "site.toml:2:8: runner.path: expected a non-empty string, got an integer");
    const std::string user = "expected a user name ([a-z_][a-z0-9_-]*, e.g. \"nobody\"), got ";
    EXPECT_EQ(snippet_error("[runner]\nuser = \"\"\n"), "site.toml:2:8: runner.user: " + user + "\"\"");
    EXPECT_EQ(snippet_error("[runner]\nuser = \"Nobody\"\n"), "site.toml:2:8: runner.user: " + user + "\"Nobody\"");
    EXPECT_EQ(snippet_error("[runner]\nuser = \"1fl\"\n"), "site.toml:2:8: runner.user: " + user + "\"1fl\"");
    EXPECT_EQ(snippet_error("[runner]\nuser = \"fl drv\"\n"), "site.toml:2:8: runner.user: " + user + "\"fl drv\"");
    EXPECT_EQ(snippet_error("[runner]\nuser = 65534\n"),
              "site.toml:2:8: runner.user: expected a string, got an integer");
    const std::string memory = "expected 0 (no limit) or an integer from 16 to 1048576, got ";
    EXPECT_EQ(snippet_error("[runner]\nmemory_mb = 15\n"), "site.toml:2:13: runner.memory_mb: " + memory + "15");
    EXPECT_EQ(snippet_error("[runner]\nmemory_mb = -1\n"), "site.toml:2:13: runner.memory_mb: " + memory + "-1");
    EXPECT_EQ(snippet_error("[runner]\nmemory_mb = 1048577\n"),
              "site.toml:2:13: runner.memory_mb: " + memory + "1048577");
    EXPECT_EQ(snippet_error("[runner]\nmemory_mb = \"1G\"\n"),
              "site.toml:2:13: runner.memory_mb: " + memory + "a string");
    EXPECT_EQ(snippet_error("[runner]\nopen_files = 15\n"),
              "site.toml:2:14: runner.open_files: expected an integer from 16 to 1048576, got 15");
    EXPECT_EQ(snippet_error("[runner]\nopen_files = 1.5\n"),
              "site.toml:2:14: runner.open_files: expected an integer from 16 to 1048576, got a float");
    EXPECT_EQ(snippet_error("[runner]\nhang_ms = 99\n"),
              "site.toml:2:11: runner.hang_ms: expected an integer from 100 to 600000, got 99");
    EXPECT_EQ(snippet_error("[runner]\nhang_ms = 600001\n"),
              "site.toml:2:11: runner.hang_ms: expected an integer from 100 to 600000, got 600001");
    EXPECT_EQ(snippet_error("[runner]\nrestart_limit = 0\n"),
              "site.toml:2:17: runner.restart_limit: expected an integer from 1 to 1000, got 0");
    EXPECT_EQ(snippet_error("[runner]\nrestart_limit = 1001\n"),
              "site.toml:2:17: runner.restart_limit: expected an integer from 1 to 1000, got 1001");
    EXPECT_EQ(snippet_error("[runner]\nrestart_window_s = 0\n"),
              "site.toml:2:20: runner.restart_window_s: expected an integer from 1 to 86400, got 0");
    EXPECT_EQ(snippet_error("[runner]\nrestart_window_s = 86401\n"),
              "site.toml:2:20: runner.restart_window_s: expected an integer from 1 to 86400, got 86401");
    EXPECT_EQ(snippet_error("[runner]\nbackoff_initial_ms = 9\n"),
              "site.toml:2:22: runner.backoff_initial_ms: expected an integer from 10 to 60000, got 9");
    EXPECT_EQ(snippet_error("[runner]\nbackoff_initial_ms = 60001\n"),
              "site.toml:2:22: runner.backoff_initial_ms: expected an integer from 10 to 60000, got 60001");
    EXPECT_EQ(snippet_error("[runner]\nbackoff_max_ms = 3600001\n"),
              "site.toml:2:18: runner.backoff_max_ms: expected an integer from 10 to 3600000, got 3600001");
    EXPECT_EQ(snippet_error("[runner]\nbackoff_max_ms = false\n"),
              "site.toml:2:18: runner.backoff_max_ms: expected an integer from 10 to 3600000, got a boolean");
}

TEST(Runner, BackoffMaxIsAtLeastBackoffInitial) {
    EXPECT_EQ(snippet_error("[runner]\nbackoff_max_ms = 50\n"),
              "site.toml:2:18: runner.backoff_max_ms: expected at least runner.backoff_initial_ms (100), got 50");
    EXPECT_EQ(snippet_error("[runner]\nbackoff_initial_ms = 5000\nbackoff_max_ms = 4999\n"),
              "site.toml:3:18: runner.backoff_max_ms: expected at least runner.backoff_initial_ms (5000), got 4999");
    EXPECT_EQ(snippet_error("[runner]\nbackoff_initial_ms = 40000\n"),
              "site.toml:2:22: runner.backoff_initial_ms: expected at most runner.backoff_max_ms (30000, the "
              "default), got 40000");
    // A bad backoff_initial_ms is one error: backoff_max_ms is not compared with it.
    EXPECT_EQ(snippet_error("[runner]\nbackoff_initial_ms = 5\nbackoff_max_ms = 10\n"),
              "site.toml:2:22: runner.backoff_initial_ms: expected an integer from 10 to 60000, got 5");
    const auto c = snippet_loads("[runner]\nbackoff_initial_ms = 30000\n");
    EXPECT_EQ(c.isolation.backoff_initial, 30000ms);
    EXPECT_EQ(c.isolation.backoff_max, 30000ms);
}

TEST(Runner, UnknownKey) {
    EXPECT_EQ(snippet_error("[runner]\nuid = 65534\n"),
              "site.toml:2:1: runner.uid: unknown key (expected one of: path, user, uid_range, memory_mb, open_files, hang_ms, "
              "restart_limit, restart_window_s, backoff_initial_ms, backoff_max_ms, ring_kb, data_credit_kb)");
    EXPECT_EQ(snippet_error("[runner]\nisolation = \"process\"\n"),
              "site.toml:2:1: runner.isolation: unknown key (expected one of: path, user, uid_range, memory_mb, open_files, "
              "hang_ms, restart_limit, restart_window_s, backoff_initial_ms, backoff_max_ms, ring_kb, data_credit_kb)");
}

TEST(Runner, SectionOfTheWrongType) {
    EXPECT_EQ(snippet_error("runner = \"/usr/bin/firelink-runner\"\n"),
              "site.toml:1:10: runner: expected a table ([runner]), got a string");
}

TEST(Runner, AllErrorsInOnePassInFileOrder) {
    EXPECT_THAT(errors_of(R"([plugins]
dirs = ["plugins"]
isolation = "separate"

[plugins.isolation_of]
"com.acme.breakers" = "thread"

[runner]
user = "root!"
memory_mb = 8
hang_ms = 0
restart_limit = -1
spare = 1
)" + gateway),
                ElementsAre("site.toml:3:13: plugins.isolation: " + modes + ", got \"separate\"",
                            "site.toml:6:23: plugins.isolation_of.\"com.acme.breakers\": " + modes +
                                ", got \"thread\"",
                            "site.toml:9:8: runner.user: expected a user name ([a-z_][a-z0-9_-]*, e.g. "
                            "\"nobody\"), got \"root!\"",
                            "site.toml:10:13: runner.memory_mb: expected 0 (no limit) or an integer from 16 to "
                            "1048576, got 8",
                            "site.toml:11:11: runner.hang_ms: expected an integer from 100 to 600000, got 0",
                            "site.toml:12:17: runner.restart_limit: expected an integer from 1 to 1000, got -1",
                            "site.toml:13:1: runner.spare: unknown key (expected one of: path, user, uid_range, memory_mb, "
                            "open_files, hang_ms, restart_limit, restart_window_s, backoff_initial_ms, "
                            "backoff_max_ms, ring_kb, data_credit_kb)"));
}

TEST(Isolation, CertifiedPluginsNeedCertifierKeysThatRead) {
    using ::testing::HasSubstr;
    const auto defaults = loads(with_plugins(""));
    EXPECT_EQ(defaults.signing.certificates, "off");
    EXPECT_EQ(defaults.signing.certificate_level, "standard");
    EXPECT_THAT(errors_of(with_plugins("certificates = \"require\"\n")),
                ElementsAre(HasSubstr("plugins.certifier_keys: missing (expected with certificates = \"require\"")));
    EXPECT_THAT(errors_of(with_plugins("certificates = \"require\"\ncertifier_keys = [\"no-such.pub\"]\n")),
                ElementsAre(HasSubstr("plugins.certifier_keys[0]: ")));
    EXPECT_THAT(errors_of(with_plugins("certificate_level = \"gold\"\n")),
                ElementsAre(HasSubstr("plugins.certificate_level: expected one of")));
}
