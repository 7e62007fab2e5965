// host_metrics: the series the runtime's calls produce, as Prometheus reads them.
#include <firelink/admin/host_metrics.hpp>

#include <prometheus/registry.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using firelink::admin::command_result_of;
using firelink::admin::host_metrics;

namespace {

// The exposition lines that start with `prefix` (comments excluded).
std::vector<std::string> lines_starting(const std::string &text, const std::string &prefix) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(prefix, 0) == 0) out.push_back(line);
    return out;
}

bool has_line(const std::string &text, const std::string &line) {
    return !lines_starting(text, line).empty() && lines_starting(text, line).front() == line;
}

}  // namespace

TEST(HostMetrics, CountsAcceptedEventsByClassAndKind) {
    host_metrics m("1.2.3");
    m.event_accepted("gas_shutoff_valve", "alarm");
    m.event_accepted("gas_shutoff_valve", "alarm");
    m.event_accepted("gas_shutoff_valve", "telemetry");
    m.event_accepted("fire_panel", "alarm");
    const auto text = m.serialize();
    EXPECT_TRUE(has_line(text, R"(firelink_events_total{device_class="gas_shutoff_valve",kind="alarm"} 2)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_events_total{device_class="gas_shutoff_valve",kind="telemetry"} 1)"))
        << text;
    EXPECT_TRUE(has_line(text, R"(firelink_events_total{device_class="fire_panel",kind="alarm"} 1)")) << text;
    EXPECT_NE(text.find("# TYPE firelink_events_total counter"), std::string::npos) << text;
}

TEST(HostMetrics, DeviceStateSetsExactlyOneStateToOne) {
    host_metrics m("1.2.3");
    ASSERT_TRUE(m.device_state("valve-3", "started"));
    ASSERT_TRUE(m.device_state("valve-3", "offline"));
    const auto text = m.serialize();
    const auto lines = lines_starting(text, R"(firelink_device_state{device="valve-3",)");
    ASSERT_EQ(lines.size(), firelink::admin::device_states.size()) << text;  // one series per state
    int ones = 0;
    for (const auto &line : lines) {
        if (line.size() >= 2 && line.substr(line.size() - 2) == " 1") {
            ++ones;
            EXPECT_EQ(line, R"(firelink_device_state{device="valve-3",state="offline"} 1)");
        } else {
            EXPECT_EQ(line.substr(line.size() - 2), " 0") << line;
        }
    }
    EXPECT_EQ(ones, 1) << text;
    EXPECT_EQ(m.device("valve-3")->state, "offline");
}

TEST(HostMetrics, UnknownStateOrResultChangesNothing) {
    host_metrics m("1.2.3");
    ASSERT_TRUE(m.device_state("d1", "started"));
    EXPECT_FALSE(m.device_state("d1", "exploded"));
    EXPECT_TRUE(has_line(m.serialize(), R"(firelink_device_state{device="d1",state="started"} 1)"));
    EXPECT_FALSE(m.command("maybe"));
    EXPECT_EQ(m.serialize().find("maybe"), std::string::npos);
}

TEST(HostMetrics, PerDeviceCountersStartAtZeroAndCount) {
    host_metrics m("1.2.3");
    m.event_refused("panel-1");
    m.transport_error("panel-1", 5);
    m.transport_error("panel-1");
    m.callback_overrun("breaker-2");
    m.device_seen("panel-1", 1700000000);
    const auto text = m.serialize();
    EXPECT_TRUE(has_line(text, R"(firelink_events_refused_total{device="panel-1"} 1)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_transport_errors_total{device="panel-1"} 6)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_callback_overruns_total{device="panel-1"} 0)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_callback_overruns_total{device="breaker-2"} 1)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_events_refused_total{device="breaker-2"} 0)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_device_last_seen_seconds{device="panel-1"} 1700000000)")) << text;

    const auto snap = m.device("panel-1");
    ASSERT_TRUE(snap);
    EXPECT_EQ(snap->events_refused, 1);
    EXPECT_EQ(snap->transport_errors, 6);
    EXPECT_EQ(snap->callback_overruns, 0);
    EXPECT_EQ(snap->last_seen, 1700000000);
    EXPECT_EQ(snap->state, "");
    EXPECT_FALSE(m.device("nobody"));
}

TEST(HostMetrics, CommandsByResultAndBuildInfo) {
    host_metrics m("1.2.3");
    EXPECT_TRUE(m.command("accepted"));
    EXPECT_TRUE(m.command("accepted"));
    EXPECT_TRUE(m.command("failed"));
    const auto text = m.serialize();
    EXPECT_TRUE(has_line(text, R"(firelink_commands_total{result="accepted"} 2)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_commands_total{result="refused"} 0)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_commands_total{result="failed"} 1)")) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_build_info{version="1.2.3"} 1)")) << text;
}

// A command the device did not answer in time (504) is pending, not failed: its result follows as an event.
TEST(HostMetrics, CommandResultOfEachAnswer) {
    EXPECT_EQ(command_result_of(202), "accepted");
    EXPECT_EQ(command_result_of(504), "pending");
    for (unsigned refused : {400u, 403u, 404u, 409u, 422u, 423u}) EXPECT_EQ(command_result_of(refused), "refused");
    EXPECT_EQ(command_result_of(500), "failed");
    EXPECT_EQ(command_result_of(503), "failed");
    host_metrics m("1.2.3");
    EXPECT_TRUE(m.command(command_result_of(504)));
    EXPECT_TRUE(has_line(m.serialize(), R"(firelink_commands_total{result="pending"} 1)")) << m.serialize();
}

TEST(HostMetrics, LabelValuesAreEscaped) {
    host_metrics m("1.2.3");
    m.event_refused("odd\"id\\x");
    EXPECT_TRUE(has_line(m.serialize(), R"(firelink_events_refused_total{device="odd\"id\\x"} 1)")) << m.serialize();
}

TEST(HostMetrics, RemoveDeviceDropsItsSeries) {
    host_metrics m("1.2.3");
    m.device_state("gone", "started");
    m.event_refused("gone");
    m.event_refused("kept");
    m.remove_device("gone");
    const auto text = m.serialize();
    EXPECT_EQ(text.find("\"gone\""), std::string::npos) << text;
    EXPECT_TRUE(has_line(text, R"(firelink_events_refused_total{device="kept"} 1)")) << text;
    m.event_refused("gone");  // comes back from zero
    EXPECT_TRUE(has_line(m.serialize(), R"(firelink_events_refused_total{device="gone"} 1)"));
}

TEST(HostMetrics, SharesAGivenRegistry) {
    auto registry = std::make_shared<prometheus::Registry>();
    host_metrics m("1.2.3", registry);
    EXPECT_EQ(m.registry(), registry);
    EXPECT_FALSE(registry->Collect().empty());
}

TEST(HostMetrics, ConcurrentCallsLoseNothing) {
    host_metrics m("1.2.3");
    constexpr int threads = 4, per_thread = 20000;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                m.event_accepted("arc_fault_breaker", i % 2 ? "alarm" : "telemetry");
                m.transport_error("bus-" + std::to_string(i % 3));
                m.device_state("dev-" + std::to_string(t), i % 2 ? "started" : "offline");
            }
        });
    for (auto &th : pool) th.join();
    const auto text = m.serialize();
    EXPECT_TRUE(has_line(text, R"(firelink_events_total{device_class="arc_fault_breaker",kind="alarm"} 40000)"))
        << text;
    EXPECT_TRUE(has_line(text, R"(firelink_events_total{device_class="arc_fault_breaker",kind="telemetry"} 40000)"))
        << text;
    double errors = 0;
    for (int b = 0; b < 3; ++b) errors += m.device("bus-" + std::to_string(b))->transport_errors;
    EXPECT_EQ(errors, threads * per_thread);
}
