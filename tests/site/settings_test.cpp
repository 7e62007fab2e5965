// [gateway], [plugins], [admin], [sink], [watchdog], [liveness], [uplink], top-level keys, syntax and file errors.
#include "site_test_support.hpp"

#include <filesystem>
#include <fstream>

using namespace site_test;
using firelink::site::config_error;
using firelink::site::load_site_config;

namespace {

const std::string plugins = "[plugins]\ndirs = [\"plugins\"]\n";
const std::string gateway = "[gateway]\nid = \"gw-1\"\n";

}  // namespace

// ---- error text ----------------------------------------------------------------------------------------------

TEST(ErrorText, FileLineColumnKeyMessage) {
    EXPECT_EQ((config_error{{"a.toml", 3, 7}, "bus[0].baud", "expected x, got y"}.str()),
              "a.toml:3:7: bus[0].baud: expected x, got y");
    EXPECT_EQ((config_error{{"a.toml", 2, 5}, "", "syntax"}.str()), "a.toml:2:5: syntax");
    EXPECT_EQ((config_error{{"a.toml", 0, 0}, "", "cannot read"}.str()), "a.toml: cannot read");
}

// ---- whole file ----------------------------------------------------------------------------------------------

TEST(File, SyntaxErrorIsOneErrorWithTomlPosition) {
    EXPECT_THAT(errors_of("[gateway]\nid = = 1\n" + plugins),
                ElementsAre("site.toml:2:6: not a value: text needs quotes (\"...\"); numbers, true, false, dates and "
                            "[arrays] are written bare"));
}

TEST(File, MissingFileIsOneErrorNamingIt) {
    const auto r = load_site_config("/nonexistent/firelink/site.toml");
    ASSERT_FALSE(r);
    ASSERT_EQ(r.error().size(), 1u);
    EXPECT_EQ(r.error().front().str(),
              "/nonexistent/firelink/site.toml: cannot read the site file: No such file or directory");
}

TEST(File, DirectoryIsOneErrorNamingIt) {
    const std::string dir = ::testing::TempDir();
    const auto r = load_site_config(dir);
    ASSERT_FALSE(r);
    ASSERT_EQ(r.error().size(), 1u);
    EXPECT_EQ(r.error().front().str(), dir + ": cannot read the site file: it is a directory");
}

TEST(File, UnknownTopLevelKey) {
    EXPECT_EQ(snippet_error("[mqtt]\nhost = \"x\"\n"),
              "site.toml:1:2: mqtt: unknown key (expected one of: gateway, plugins, admin, control, sink, watchdog, liveness, "
              "uplink, runner, bus, listener, device, linkage)");
    EXPECT_EQ(snippet_error("title = \"x\"\n"),
              "site.toml:1:1: title: unknown key (expected one of: gateway, plugins, admin, control, sink, watchdog, liveness, "
              "uplink, runner, bus, listener, device, linkage)");
}

TEST(File, SectionOfTheWrongType) {
    EXPECT_EQ(snippet_error("admin = \"127.0.0.1:1\"\n"),
              "site.toml:1:9: admin: expected a table ([admin]), got a string");
    EXPECT_EQ(snippet_error("[device]\nid = \"x\"\n"),
              "site.toml:1:1: device: expected an array of tables ([[device]]), got a table");
    EXPECT_EQ(snippet_error("bus = [1]\n"), "site.toml:1:8: bus[0]: expected a table, got an integer");
}

TEST(File, AllErrorsInOnePassInFileOrder) {
    const std::string text = R"([gateway]
id = "gw 1"
colour = "red"

[plugins]
dirs = []

[watchdog]
warn_ms = 0

[[bus]]
id = "b"
kind = "rs485"
path = "/dev/ttyS0"
baud = 9601

[[device]]
id = "d"
driver = "hello"
class = "smoke"
wire = { bus = "b", unit = 248 }
)";
    EXPECT_THAT(
        errors_of(text),
        ElementsAre("site.toml:2:6: gateway.id: expected 1 to 64 characters from A-Z a-z 0-9 _ . : -, got \"gw 1\"",
                    "site.toml:3:1: gateway.colour: unknown key (expected one of: id, name)",
                    "site.toml:6:8: plugins.dirs: expected at least one directory, got an empty array",
                    "site.toml:9:11: watchdog.warn_ms: expected an integer from 1 to 60000, got 0",
                    "site.toml:15:8: bus[0].baud: expected one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, "
                    "115200, got 9601",
                    "site.toml:20:9: device[0].class: expected one of arc_fault_breaker, gas_shutoff_valve, "
                    "pyrolysis_detector, fire_panel, vendor:<reverse-dns>, got \"smoke\"",
                    "site.toml:21:28: device[0].wire.unit: expected an integer from 0 to 247, got 248"));
}

TEST(File, FileNameInMessagesIsAsGiven) {
    EXPECT_THAT(errors_of(plugins, "conf/north.toml"),
                ElementsAre("conf/north.toml:1:1: gateway.id: missing (expected a string)"));
}

// ---- [gateway] -----------------------------------------------------------------------------------------------

TEST(Gateway, IdAndName) {
    const auto c = loads("[gateway]\nid = \"gw.north:1\"\nname = \"North gate\"\n" + plugins);
    EXPECT_EQ(c.gateway_id, "gw.north:1");
    EXPECT_EQ(c.gateway_name, "North gate");
}

TEST(Gateway, MissingTableOrId) {
    EXPECT_THAT(errors_of(plugins), ElementsAre("site.toml:1:1: gateway.id: missing (expected a string)"));
    EXPECT_THAT(errors_of("[gateway]\nname = \"x\"\n" + plugins),
                ElementsAre("site.toml:1:1: gateway.id: missing (expected a string)"));
}

TEST(Gateway, IdRule) {
    EXPECT_THAT(errors_of("[gateway]\nid = 7\n" + plugins),
                ElementsAre("site.toml:2:6: gateway.id: expected a string, got an integer"));
    EXPECT_THAT(
        errors_of("[gateway]\nid = \"\"\n" + plugins),
        ElementsAre("site.toml:2:6: gateway.id: expected 1 to 64 characters from A-Z a-z 0-9 _ . : -, got \"\""));
    const std::string long_id(65, 'g');
    EXPECT_THAT(errors_of("[gateway]\nid = \"" + long_id + "\"\n" + plugins),
                ElementsAre("site.toml:2:6: gateway.id: expected 1 to 64 characters from A-Z a-z 0-9 _ . : -, got \"" +
                            long_id + "\""));
    loads("[gateway]\nid = \"" + std::string(64, 'g') + "\"\n" + plugins);
}

TEST(Gateway, UnknownKey) {
    EXPECT_THAT(errors_of("[gateway]\nid = \"g\"\nsite = \"x\"\n" + plugins),
                ElementsAre("site.toml:3:1: gateway.site: unknown key (expected one of: id, name)"));
}

// ---- [plugins] -----------------------------------------------------------------------------------------------

TEST(Plugins, NoDirsMeansTheInstalledFolder) {
    // Resolved by the host (firelink::layout), not by the file: the file says nothing, so nothing is made up here.
    EXPECT_THAT(errors_of(gateway), ::testing::IsEmpty());
    EXPECT_THAT(errors_of("[plugins]\nsignatures = \"off\"\n" + gateway), ::testing::IsEmpty());
}

TEST(Plugins, DirsMustBeNonEmptyArrayOfPaths) {
    EXPECT_THAT(errors_of("[plugins]\ndirs = \"p\"\n" + gateway),
                ElementsAre("site.toml:2:8: plugins.dirs: expected an array of directory paths, got a string"));
    EXPECT_THAT(errors_of("[plugins]\ndirs = []\n" + gateway),
                ElementsAre("site.toml:2:8: plugins.dirs: expected at least one directory, got an empty array"));
    EXPECT_THAT(
        errors_of("[plugins]\ndirs = [\"a\", 3, \"\"]\n" + gateway),
        ElementsAre("site.toml:2:14: plugins.dirs[1]: expected a directory path (a non-empty string), got an integer",
                    "site.toml:2:17: plugins.dirs[2]: expected a directory path (a non-empty string), got \"\""));
}

TEST(Plugins, RelativeDirsResolveAgainstTheConfigFolder) {
    const auto c = loads(gateway + "[plugins]\ndirs = [\"plugins\", \"/opt/firelink/plugins\", \"../lib/./p\"]\n",
                         "/etc/firelink/site.toml");
    EXPECT_THAT(c.plugin_dirs, ElementsAre("/etc/firelink/plugins", "/opt/firelink/plugins", "/etc/lib/p"));
    EXPECT_EQ(c.file, "/etc/firelink/site.toml");
}

TEST(Plugins, RelativeConfigFileResolvesAgainstTheWorkingDirectory) {
    const auto c = loads(gateway + plugins, "conf/site.toml");
    EXPECT_THAT(c.plugin_dirs, ElementsAre((std::filesystem::current_path() / "conf/plugins").lexically_normal()));
    EXPECT_EQ(c.file, (std::filesystem::current_path() / "conf/site.toml").lexically_normal());
}

TEST(Plugins, LoadSiteConfigResolvesAgainstTheFilesFolder) {
    const auto dir = std::filesystem::path(::testing::TempDir()) / "firelink-site-test";
    std::filesystem::create_directories(dir);
    const auto file = dir / "site.toml";
    std::ofstream(file) << gateway << plugins << "[sink]\nkind = \"jsonl\"\npath = \"out/events.jsonl\"\n";
    const auto r = load_site_config(file);
    ASSERT_TRUE(r);
    const auto &c = r.value();
    EXPECT_THAT(c.plugin_dirs, ElementsAre((dir / "plugins").lexically_normal()));
    EXPECT_EQ(c.sink_path, (dir / "out/events.jsonl").lexically_normal());
    std::filesystem::remove_all(dir);
}

// ---- [admin] -------------------------------------------------------------------------------------------------

TEST(Admin, DefaultAndGiven) {
    EXPECT_EQ(snippet_loads("").admin_listen, "127.0.0.1:9180");
    EXPECT_EQ(snippet_loads("[admin]\nlisten = \"0.0.0.0:80\"\n").admin_listen, "0.0.0.0:80");
    EXPECT_EQ(snippet_loads("[admin]\nlisten = \"[::1]:0\"\n").admin_listen, "[::1]:0");
    EXPECT_EQ(snippet_loads("[admin]\nlisten = \"gw.local:65535\"\n").admin_listen, "gw.local:65535");
}

TEST(Admin, ConnectionLimits) {
    const auto plain = snippet_loads("");
    EXPECT_EQ(plain.admin_max_connections, 64u);
    EXPECT_EQ(plain.admin_request_timeout, std::chrono::milliseconds(10000));
    const auto set = snippet_loads("[admin]\nmax_connections = 16\nrequest_timeout_ms = 3000\n");
    EXPECT_EQ(set.admin_max_connections, 16u);
    EXPECT_EQ(set.admin_request_timeout, std::chrono::milliseconds(3000));
    EXPECT_EQ(snippet_error("[admin]\nmax_connections = 5000\n"),
              "site.toml:2:19: admin.max_connections: expected an integer from 1 to 4096, got 5000");
    EXPECT_EQ(snippet_error("[admin]\nrequest_timeout_ms = 10\n"),
              "site.toml:2:22: admin.request_timeout_ms: expected an integer from 100 to 600000, got 10");
}

TEST(Control, DefaultsAndGiven) {
    const auto plain = snippet_loads("");
    EXPECT_EQ(plain.control.select_timeout, std::chrono::milliseconds(15000));
    EXPECT_TRUE(plain.control.platform_may.empty());  // secure by default: the platform moves nothing
    EXPECT_EQ(plain.control.audit_path, "");
    EXPECT_EQ(plain.control.audit_keep, 100000);
    const auto set = snippet_loads("[control]\nselect_timeout_ms = 5000\nplatform_may = [\"close_valve\", \"trip\"]\n"
                                   "audit_path = \"audit.db\"\naudit_keep = 20000\n");
    EXPECT_EQ(set.control.select_timeout, std::chrono::milliseconds(5000));
    EXPECT_EQ(set.control.platform_may, (std::vector<std::string>{"close_valve", "trip"}));
    EXPECT_TRUE(std::filesystem::path(set.control.audit_path).is_absolute());
    EXPECT_EQ(set.control.audit_keep, 20000);
}

TEST(Control, Rules) {
    EXPECT_EQ(snippet_error("[control]\nselect_timeout_ms = 100\n"),
              "site.toml:2:21: control.select_timeout_ms: expected an integer from 1000 to 300000, got 100");
    EXPECT_EQ(snippet_error("[control]\naudit_keep = 500\n"),
              "site.toml:2:14: control.audit_keep: expected an integer from 10000 to 100000000, got 500");
    EXPECT_EQ(snippet_error("[control]\nplatform_may = [\"close_valve\", 3]\n"),
              "site.toml:2:32: control.platform_may[1]: expected a command name (a non-empty string), got an integer");
    EXPECT_EQ(snippet_error("[control]\nplatform_mayy = []\n"),
              "site.toml:2:1: control.platform_mayy: unknown key (expected one of: select_timeout_ms, platform_may, "
              "audit_path, audit_keep)");
}

TEST(Admin, ListenForm) {
    const std::string form = "expected \"HOST:PORT\" (an IPv6 address in brackets: \"[::1]:9180\"), got ";
    EXPECT_EQ(snippet_error("[admin]\nlisten = \"localhost\"\n"),
              "site.toml:2:10: admin.listen: " + form + "\"localhost\"");
    EXPECT_EQ(snippet_error("[admin]\nlisten = \"::1:9180\"\n"),
              "site.toml:2:10: admin.listen: " + form + "\"::1:9180\"");
    EXPECT_EQ(snippet_error("[admin]\nlisten = \":9180\"\n"), "site.toml:2:10: admin.listen: " + form + "\":9180\"");
    EXPECT_EQ(
        snippet_error("[admin]\nlisten = \"127.0.0.1:70000\"\n"),
        "site.toml:2:10: admin.listen: expected \"HOST:PORT\" with a port from 0 to 65535, got \"127.0.0.1:70000\"");
    EXPECT_EQ(
        snippet_error("[admin]\nlisten = \"127.0.0.1:http\"\n"),
        "site.toml:2:10: admin.listen: expected \"HOST:PORT\" with a port from 0 to 65535, got \"127.0.0.1:http\"");
    EXPECT_EQ(snippet_error("[admin]\nlisten = 9180\n"),
              "site.toml:2:10: admin.listen: expected a string, got an integer");
    EXPECT_EQ(snippet_error("[admin]\nport = 9180\n"),
              "site.toml:2:1: admin.port: unknown key (expected one of: listen, max_connections, request_timeout_ms, "
              "token_file, anonymous_read, tls_cert, tls_key, client_ca)");
}

TEST(Admin, TokensAndTlsResolveAgainstTheConfigFolder) {
    const auto plain = snippet_loads("");
    EXPECT_TRUE(plain.admin_token_file.empty());
    EXPECT_EQ(plain.admin_anonymous_read, "loopback");
    EXPECT_TRUE(plain.admin_tls_cert.empty());
    const auto c = loads("[admin]\ntoken_file = \"admin-tokens\"\nanonymous_read = \"none\"\ntls_cert = \"tls/a.pem\"\n"
                         "tls_key = \"/etc/firelink/a.key\"\nclient_ca = \"ca.pem\"\n" + base,
                         "/srv/gw/site.toml");
    EXPECT_EQ(c.admin_token_file, "/srv/gw/admin-tokens");
    EXPECT_EQ(c.admin_anonymous_read, "none");
    EXPECT_EQ(c.admin_tls_cert, "/srv/gw/tls/a.pem");
    EXPECT_EQ(c.admin_tls_key, "/etc/firelink/a.key");
    EXPECT_EQ(c.admin_client_ca, "/srv/gw/ca.pem");
}

TEST(Admin, TokenAndTlsRules) {
    EXPECT_EQ(snippet_error("[admin]\nanonymous_read = \"everyone\"\n"),
              "site.toml:2:18: admin.anonymous_read: expected one of \"loopback\", \"none\", got \"everyone\"");
    EXPECT_EQ(snippet_error("[admin]\ntoken_file = \"\"\n"),
              "site.toml:2:14: admin.token_file: expected a non-empty string, got \"\"");
    const auto lone_cert = snippet_error("[admin]\ntls_cert = \"a.pem\"\n");
    EXPECT_NE(lone_cert.find("site.toml:2:12: admin.tls_cert: tls_cert and tls_key go together"), std::string::npos)
        << lone_cert;
    const auto lone_ca = snippet_error("[admin]\nclient_ca = \"ca.pem\"\n");
    EXPECT_NE(lone_ca.find("admin.client_ca: client certificates need TLS"), std::string::npos) << lone_ca;
}

// ---- [sink] --------------------------------------------------------------------------------------------------

TEST(Sink, DefaultIsStdout) {
    const auto c = snippet_loads("");
    EXPECT_EQ(c.sink_kind, "stdout");
    EXPECT_TRUE(c.sink_path.empty());
}

TEST(Sink, JsonlPathResolvesAgainstTheConfigFolder) {
    const auto c = loads("[sink]\nkind = \"jsonl\"\npath = \"events.jsonl\"\n" + base, "/srv/gw/site.toml");
    EXPECT_EQ(c.sink_kind, "jsonl");
    EXPECT_EQ(c.sink_path, "/srv/gw/events.jsonl");
}

TEST(Sink, Rules) {
    EXPECT_EQ(snippet_error("[sink]\nkind = \"file\"\n"),
              "site.toml:2:8: sink.kind: expected one of \"stdout\", \"jsonl\", \"none\", got \"file\"");
    EXPECT_EQ(snippet_error("[sink]\nkind = \"jsonl\"\n"),
              "site.toml:1:1: sink.path: missing (expected a file path for kind = \"jsonl\")");
    EXPECT_EQ(snippet_error("[sink]\nkind = \"jsonl\"\npath = \"\"\n"),
              "site.toml:3:8: sink.path: expected a non-empty string, got \"\"");
    EXPECT_EQ(snippet_error("[sink]\npath = \"x.jsonl\"\n"),
              "site.toml:2:8: sink.path: not used with kind = \"stdout\" (only with kind = \"jsonl\")");
    EXPECT_EQ(snippet_error("[sink]\nformat = \"json\"\n"),
              "site.toml:2:1: sink.format: unknown key (expected one of: kind, path)");
}

// ---- [watchdog] ----------------------------------------------------------------------------------------------

TEST(Watchdog, DefaultsAndGiven) {
    auto c = snippet_loads("");
    EXPECT_EQ(c.watchdog_warn, 100ms);
    EXPECT_EQ(c.watchdog_fault, 2000ms);
    c = snippet_loads("[watchdog]\nwarn_ms = 50\nfault_ms = 600000\n");
    EXPECT_EQ(c.watchdog_warn, 50ms);
    EXPECT_EQ(c.watchdog_fault, 600000ms);
}

TEST(Watchdog, Rules) {
    EXPECT_EQ(snippet_error("[watchdog]\nwarn_ms = 0\n"),
              "site.toml:2:11: watchdog.warn_ms: expected an integer from 1 to 60000, got 0");
    EXPECT_EQ(snippet_error("[watchdog]\nwarn_ms = \"100\"\n"),
              "site.toml:2:11: watchdog.warn_ms: expected an integer from 1 to 60000, got a string");
    EXPECT_EQ(snippet_error("[watchdog]\nfault_ms = 700000\n"),
              "site.toml:2:12: watchdog.fault_ms: expected an integer from 1 to 600000, got 700000");
    EXPECT_EQ(snippet_error("[watchdog]\nfault_ms = 50\n"),
              "site.toml:2:12: watchdog.fault_ms: expected more than watchdog.warn_ms (100), got 50");
    EXPECT_EQ(snippet_error("[watchdog]\nwarn_ms = 500\nfault_ms = 500\n"),
              "site.toml:3:12: watchdog.fault_ms: expected more than watchdog.warn_ms (500), got 500");
    EXPECT_EQ(snippet_error("[watchdog]\nwarn_ms = 3000\n"),
              "site.toml:2:11: watchdog.warn_ms: expected less than watchdog.fault_ms (2000, the default), got 3000");
    EXPECT_EQ(snippet_error("[watchdog]\nwarn = 1\n"),
              "site.toml:2:1: watchdog.warn: unknown key (expected one of: warn_ms, fault_ms)");
}

// ---- [liveness] ----------------------------------------------------------------------------------------------

TEST(Liveness, DefaultsAndGiven) {
    auto c = snippet_loads("");
    EXPECT_EQ(c.liveness.at("arc_fault_breaker"), 60s);
    EXPECT_EQ(c.liveness.at("gas_shutoff_valve"), 60s);
    EXPECT_EQ(c.liveness.at("pyrolysis_detector"), 60s);
    EXPECT_EQ(c.liveness.at("fire_panel"), 180s);
    EXPECT_EQ(c.liveness.at("vendor"), 120s);
    EXPECT_EQ(c.liveness.size(), 5u);
    c = snippet_loads("[liveness]\nfire_panel = 300\nvendor = 1\narc_fault_breaker = 86400\n");
    EXPECT_EQ(c.liveness.at("fire_panel"), 300s);
    EXPECT_EQ(c.liveness.at("vendor"), 1s);
    EXPECT_EQ(c.liveness.at("arc_fault_breaker"), 86400s);
    EXPECT_EQ(c.liveness.at("gas_shutoff_valve"), 60s);
}

TEST(Liveness, Rules) {
    EXPECT_EQ(snippet_error("[liveness]\nfire_panel = 0\n"),
              "site.toml:2:14: liveness.fire_panel: expected an integer from 1 to 86400, got 0");
    EXPECT_EQ(snippet_error("[liveness]\nvendor = 86401\n"),
              "site.toml:2:10: liveness.vendor: expected an integer from 1 to 86400, got 86401");
    EXPECT_EQ(snippet_error("[liveness]\nsmoke_detector = 30\n"),
              "site.toml:2:1: liveness.smoke_detector: unknown key (expected one of: arc_fault_breaker, "
              "gas_shutoff_valve, pyrolysis_detector, fire_panel, vendor)");
}

// ---- [uplink] ------------------------------------------------------------------------------------------------

const std::string uplink_min = "[uplink]\nurl = \"http://127.0.0.1:9\"\nqueue_path = \"q.db\"\n";

TEST(Uplink, ConfiguredOnlyWhenTheTableExists) {
    EXPECT_FALSE(snippet_loads("").uplink.configured);
    const auto c = snippet_loads(uplink_min);
    EXPECT_TRUE(c.uplink.configured);
    // Defaults.
    EXPECT_EQ(c.uplink.timeout, std::chrono::seconds(10));
    EXPECT_EQ(c.uplink.batch_max_events, 500);
    EXPECT_EQ(c.uplink.batch_max_bytes, 512 * 1024);
    EXPECT_EQ(c.uplink.alarm_cap_mb, 64);
    EXPECT_EQ(c.uplink.event_cap_mb, 256);
    EXPECT_EQ(c.uplink.telemetry_cap_mb, 512);
    EXPECT_EQ(c.uplink.reserve_mb, 16);
    EXPECT_TRUE(c.uplink.poll_commands);
    // With an uplink, a local record of events is opt-in.
    EXPECT_EQ(c.sink_kind, "none");
    EXPECT_EQ(snippet_loads(uplink_min + "[sink]\nkind = \"stdout\"\n").sink_kind, "stdout");
    EXPECT_EQ(snippet_loads("").sink_kind, "stdout");
}

TEST(Uplink, UrlAndQueueAreRequired) {
    EXPECT_EQ(snippet_error("[uplink]\nqueue_path = \"q.db\"\n"), "site.toml:1:1: uplink.url: missing (expected a non-empty string)");
    EXPECT_EQ(snippet_error("[uplink]\nurl = \"http://x:1\"\n"), "site.toml:1:1: uplink.queue_path: missing (expected a non-empty string)");
}

TEST(Uplink, ValuesAndRelativePaths) {
    const auto c = loads(R"([uplink]
url = "https://fire.example.cn/firelink"
token_file = "secrets/token"
ca_file = "/etc/ssl/ca.pem"
client_cert = "tls/gw.crt"
client_key = "tls/gw.key"
queue_path = "/var/lib/firelink/queue.db"
timeout_s = 20
batch_max_events = 100
batch_max_bytes = 65536
alarm_cap_mb = 8
event_cap_mb = 16
telemetry_cap_mb = 32
reserve_mb = 0
poll_commands = false
backoff_max_s = 5
)" + base,
                         "/etc/firelink/site.toml");
    EXPECT_EQ(c.uplink.url, "https://fire.example.cn/firelink");
    EXPECT_EQ(c.uplink.token_file, "/etc/firelink/secrets/token");
    EXPECT_EQ(c.uplink.ca_file, "/etc/ssl/ca.pem");
    EXPECT_EQ(c.uplink.client_cert, "/etc/firelink/tls/gw.crt");
    EXPECT_EQ(c.uplink.client_key, "/etc/firelink/tls/gw.key");
    EXPECT_EQ(c.uplink.queue_path, "/var/lib/firelink/queue.db");
    EXPECT_EQ(c.uplink.timeout, std::chrono::seconds(20));
    EXPECT_EQ(c.uplink.batch_max_events, 100);
    EXPECT_EQ(c.uplink.batch_max_bytes, 65536);
    EXPECT_EQ(c.uplink.alarm_cap_mb, 8);
    EXPECT_EQ(c.uplink.event_cap_mb, 16);
    EXPECT_EQ(c.uplink.telemetry_cap_mb, 32);
    EXPECT_EQ(c.uplink.reserve_mb, 0);
    EXPECT_FALSE(c.uplink.poll_commands);
    EXPECT_EQ(c.uplink.backoff_max, std::chrono::seconds(5));
    EXPECT_EQ(snippet_loads("[uplink]\nurl = \"http://10.0.0.1:8080/\"\nqueue_path = \"q\"\n").uplink.url,
              "http://10.0.0.1:8080/");
}

TEST(Uplink, Rules) {
    const std::string q = "queue_path = \"q.db\"\n";
    const std::string u = "url = \"http://x:1\"\n";
    EXPECT_EQ(snippet_error("[uplink]\nurl = \"ftp://x\"\n" + q),
              "site.toml:2:7: uplink.url: expected an http:// or https:// URL, got \"ftp://x\"");
    EXPECT_EQ(snippet_error("[uplink]\nurl = \"https://\"\n" + q),
              "site.toml:2:7: uplink.url: expected an http:// or https:// URL, got \"https://\"");
    EXPECT_EQ(snippet_error("[uplink]\nclient_cert = \"c.pem\"\n" + u + q),
              "site.toml:2:15: uplink.client_cert: given without uplink.client_key (expected both or neither)");
    EXPECT_EQ(snippet_error("[uplink]\nclient_key = \"k.pem\"\n" + u + q),
              "site.toml:2:14: uplink.client_key: given without uplink.client_cert (expected both or neither)");
    EXPECT_EQ(snippet_error("[uplink]\ntoken_file = \"\"\n" + u + q),
              "site.toml:2:14: uplink.token_file: expected a non-empty string, got \"\"");
    EXPECT_EQ(snippet_error("[uplink]\nqueue_path = 1\n" + u),
              "site.toml:2:14: uplink.queue_path: expected a non-empty string, got an integer");
    EXPECT_EQ(snippet_error("[uplink]\nbatch_max_events = 0\n" + u + q),
              "site.toml:2:20: uplink.batch_max_events: expected an integer from 1 to 10000, got 0");
    EXPECT_EQ(snippet_error("[uplink]\npoll_commands = \"yes\"\n" + u + q),
              "site.toml:2:17: uplink.poll_commands: expected a boolean (true or false), got a string");
    EXPECT_EQ(snippet_error("[uplink]\nretry = 3\n" + u + q),
              "site.toml:2:1: uplink.retry: unknown key (expected one of: url, token_file, ca_file, client_cert, "
              "client_key, queue_path, timeout_s, batch_max_events, batch_max_bytes, alarm_cap_mb, event_cap_mb, "
              "telemetry_cap_mb, reserve_mb, poll_commands, backoff_max_s, max_pending)");
}
