// The admin views (host/cli/site_views.hpp), the run report and the test hooks, without a process: each on the real
// component it reads (a durable queue in a SQLite file, a device runtime), each fed the hostile text a platform or a
// driver can send (bytes that are not UTF-8, a Chinese reason cut mid-character, a label value with quotes).
#include <atomic>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <firelink/payload.hpp>
#include <firelink/uplink/record.hpp>

#include <accepted_event.hpp>
#include <test_queue.hpp>

#include "run_report.hpp"
#include "site_views.hpp"
#include "test_hooks.hpp"

namespace cli = firelink::cli;
namespace core = firelink::core;
namespace up = firelink::uplink;
using nlohmann::json;

namespace {

const std::string not_utf8 = "platform said \xff\xfe";
const std::string cut_chinese = std::string("燃气阀门").substr(0, 7);  // 2 characters and a third's first byte

std::vector<std::uint8_t> record(std::uint32_t &pairs) {
    firelink::event e{firelink::event_kind::status, "state"};
    e.message(not_utf8);
    return up::encode_record(firelink_test::accepted(e), pairs);
}

// Valid UTF-8 JSON, as a monitor's parser wants it.
json parsed(const std::string &text) {
    auto j = json::parse(text, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << text;
    return j;
}

}  // namespace

// A platform that rejects a record with a reason that is not UTF-8 (or a Chinese one cut at a byte limit) must not
// blind /api/uplink: the reason is kept in the quarantine and shown with U+FFFD, also when read back from the file.
TEST(SiteViews, UplinkJsonShowsAQuarantinedReasonThatIsNotUtf8) {
    firelink_test::temp_dir dir("firelink-views");
    {
        up::durable_queue q(firelink_test::queue_options_in(dir));
        std::uint32_t pairs = 0;
        ASSERT_TRUE(q.push(up::lane::event, record(pairs), pairs));
        ASSERT_TRUE(q.flush());
        q.ack(up::lane::event, 1, {{1, 422, not_utf8 + " / " + cut_chinese}});
        ASSERT_TRUE(q.flush());
    }
    up::durable_queue reopened(firelink_test::queue_options_in(dir));  // as after a restart
    up::uplink_report report;
    report.poll_error = not_utf8;
    report.lanes[0].last_error = cut_chinese;
    const auto j = parsed(cli::uplink_json("http://platform", "queue.db", reopened, report));
    ASSERT_EQ(j["quarantine"].size(), 1u) << j.dump();
    const auto reason = j["quarantine"][0]["reason"].get<std::string>();
    EXPECT_NE(reason.find("\xef\xbf\xbd"), std::string::npos) << "no U+FFFD in " << reason;
    EXPECT_NE(reason.find("燃气"), std::string::npos) << "the whole characters are kept: " << reason;
    EXPECT_NE(j["poll_error"].get<std::string>().find("\xef\xbf\xbd"), std::string::npos);
    EXPECT_EQ(j["lanes"]["alarm"]["last_error"], "燃气\xef\xbf\xbd");
}

// The queue keeps at most 1024 bytes of a platform's reason: a long Chinese one is cut before a character, not in
// it, so the quarantine shows whole characters and no U+FFFD of its own making.
TEST(SiteViews, QuarantinedReasonIsCutAtACharacterBoundary) {
    firelink_test::temp_dir dir("firelink-views");
    std::string long_chinese;
    for (int i = 0; i < 400; ++i) long_chinese += "燃";  // 1200 bytes; 1024 falls inside the 342nd character
    {
        up::durable_queue q(firelink_test::queue_options_in(dir));
        std::uint32_t pairs = 0;
        ASSERT_TRUE(q.push(up::lane::event, record(pairs), pairs));
        ASSERT_TRUE(q.flush());
        q.ack(up::lane::event, 1, {{1, 422, long_chinese}});
        ASSERT_TRUE(q.flush());
    }
    up::durable_queue reopened(firelink_test::queue_options_in(dir));
    const auto j = parsed(cli::uplink_json("http://platform", "queue.db", reopened, up::uplink_report{}));
    ASSERT_EQ(j["quarantine"].size(), 1u) << j.dump();
    EXPECT_EQ(j["quarantine"][0]["reason"].get<std::string>(), long_chinese.substr(0, 341 * 3));
}

TEST(SiteViews, DevicesJsonOfAnEmptyRuntimeIsAnEmptyList) {
    boost::asio::io_context io;
    core::device_runtime runtime(io, [](core::accepted_event &&) {});
    EXPECT_EQ(cli::devices_json(runtime, [](const std::string &) { return std::nullopt; }), "[]");
}

// Label values come from plugins and the control plane: prometheus-cpp escapes them, so a plugin id with a quote
// cannot forge a series.
TEST(SiteViews, ScrapedSeriesEscapeTheirLabelValues) {
    firelink::isolation::runner_status r;
    r.plugin_id = "evil\"} 1\nfirelink_runner_up{plugin=\"x";
    r.state = "running";
    r.failures = 3;
    firelink::admin::scraped_series more;
    cli::add_runner_series(more, {r});
    cli::add_control_series(more, {{"not_selected", 2}}, 7);
    firelink::admin::host_metrics metrics("1.2.3");
    const auto text = metrics.serialize(more.families());
    EXPECT_NE(text.find(R"(firelink_runner_up{plugin="evil\"} 1\nfirelink_runner_up{plugin=\"x"} 1)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find(R"(firelink_runner_failures_total{plugin="evil\"} 1\nfirelink_runner_up{plugin=\"x"} 3)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("# TYPE firelink_runner_failures_total counter"), std::string::npos) << text;
    EXPECT_NE(text.find(R"(firelink_control_refused_total{reason="not_selected"} 2)"), std::string::npos) << text;
    EXPECT_NE(text.find("firelink_audit_records 7"), std::string::npos) << text;
    EXPECT_NE(text.find(R"(firelink_build_info{version="1.2.3"} 1)"), std::string::npos) << text;
}

TEST(SiteViews, UplinkSeriesHaveOneValuePerLane) {
    up::queue_stats q;
    q.lanes[0].depth = 4;
    q.disk_full = true;
    up::uplink_report r;
    r.commands_received = 9;
    firelink::admin::scraped_series more;
    cli::add_uplink_series(more, q, r);
    const auto text = firelink::admin::host_metrics("1").serialize(more.families());
    EXPECT_NE(text.find(R"(firelink_uplink_queue_depth{lane="alarm"} 4)"), std::string::npos) << text;
    EXPECT_NE(text.find(R"(firelink_uplink_queue_depth{lane="telemetry"} 0)"), std::string::npos) << text;
    EXPECT_NE(text.find("firelink_uplink_disk_full 1"), std::string::npos) << text;
    EXPECT_NE(text.find("firelink_uplink_commands_total 9"), std::string::npos) << text;
}

TEST(RunReport, ExpectationsNameEachDeviceShortOfEvents) {
    EXPECT_TRUE(cli::unmet_expectations({}, {{"a", 5}}, {"a"}, 5).empty());
    EXPECT_TRUE(cli::unmet_expectations({}, {}, {"a"}, 0).empty()) << "no --expect-events: nothing to count";
    const auto f = cli::unmet_expectations({"device 'b' not started: no driver"}, {{"a", 2}}, {"a", "c"}, 3);
    ASSERT_EQ(f.size(), 3u);
    EXPECT_EQ(f[0], "device 'b' not started: no driver");
    EXPECT_EQ(f[1], "device a emitted 2 event(s), expected at least 3");
    EXPECT_EQ(f[2], "device c emitted 0 event(s), expected at least 3");
    EXPECT_EQ(cli::report_expectations({}), 0);
    EXPECT_EQ(cli::report_expectations(f), 1);
}

TEST(TestHooks, WedgeBlocksTheLoopAndBadArgumentsAreRefused) {
    std::atomic<int> ran{0};
    std::vector<std::thread> jobs;
    cli::test_hook_targets t{[&](std::function<void()> job) { jobs.emplace_back([&, job] { job(); ++ran; }); },
                             [&](std::function<void()> job) { jobs.emplace_back([&, job] { job(); ++ran; }); }, 2};
    EXPECT_EQ(cli::run_test_hook("nope", "{}", t).first, 404u);
    EXPECT_EQ(cli::run_test_hook("wedge", "[", t).first, 400u);
    EXPECT_EQ(cli::run_test_hook("wedge", R"({"seconds": 0})", t).first, 400u);
    EXPECT_EQ(cli::run_test_hook("wedge", R"({"seconds": "1"})", t).first, 400u);
    EXPECT_EQ(cli::run_test_hook("wedge", R"({"loop": "admin"})", t).first, 400u);
    EXPECT_TRUE(jobs.empty()) << "a refused hook posted something";
    const auto answer = cli::run_test_hook("wedge", R"({"loop": "devices", "seconds": 0.01})", t);
    EXPECT_EQ(answer.first, 202u) << answer.second;
    EXPECT_EQ(jobs.size(), 2u) << "every device thread is wedged";
    for (auto &j : jobs) j.join();
    EXPECT_EQ(ran, 2);
}
