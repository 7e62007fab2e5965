// Compiled as C++17 and C++20 with -Wall -Wextra -pedantic -Werror (see CMakeLists.txt): the public headers must
// stay clean for a vendor's C++ code. The C++20 build also includes driver.hpp and expands FIRELINK_PLUGIN once.
#include <firelink/firelink.h>
#include <firelink/payload.h>
#include <firelink/payload.hpp>

#if __cplusplus != FL_TEST_EXPECT_CPLUSPLUS
#error "CXX_STANDARD did not apply"
#endif

std::vector<std::uint8_t> fl_probe_event();
std::vector<std::uint8_t> fl_probe_event() {
    firelink::event ev{firelink::event_kind::alarm, "arc_fault"};
    ev.value("residual_current", 312, "mA").level(firelink::severity::critical);
    auto bytes = ev.pack();
    fl_mp_value v;
    if (!fl_mp_find(bytes.data(), bytes.size(), "code", &v)) bytes.clear();
    firelink::config cfg{bytes.data(), bytes.size()};
    (void)cfg.get<std::int64_t>("schema", 0);
    return bytes;
}

#if FL_TEST_WITH_DRIVER
#include <firelink/driver.hpp>

namespace {
class probe_device : public firelink::device {
public:
    probe_device(firelink::host_handle host, const firelink::config &cfg) : device(host) {
        cfg.reject_unknown({"period_ms"});
        period_ = std::chrono::milliseconds(cfg.get<std::uint32_t>("period_ms", 1000));
    }
    void start() override { host().start_timer(period_); }
    void on_timer(std::uint64_t) override { host().emit(firelink::event{firelink::event_kind::telemetry, "tick"}); }

private:
    std::chrono::milliseconds period_{};
};
}  // namespace

FIRELINK_PLUGIN((firelink::plugin_info{.id = "org.example.abi-probe", .name = "ABI probe", .vendor = "firelink tests",
                                       .version = "1.0.0", .license = "Apache-2.0"}),
                (firelink::driver<probe_device>{.id = "probe", .name = "Probe", .device_class = "vendor:org.example.probe",
                                                .needs = {FL_EXT_TIMER},
                                                .commands = {{"ping", "Answers", 0},
                                                             {"open", "Opens", FL_COMMAND_ACTUATES | FL_COMMAND_RESTORES}}}))
#endif
