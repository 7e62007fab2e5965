// channel_fuzz: the host's decoder of a runner's channel, fed what a hostile runner could send. The input is the
// byte stream the runner writes into its socket: frame_reader (framing, msgpack limits) as the host makes it, then
// decode_runner_message on every message. `malformed` and a failed reader are the expected answers to bad input
// (the host kills that runner); anything else, a crash, a sanitizer report, another exception, a hang or an
// allocation past -rss_limit_mb, is a finding.
#include <firelink/core/plugin_loader.hpp>

#include "harness.hpp"

namespace {

namespace iso = firelink::isolation;

const std::vector<std::pair<std::string, std::string>> &seeds() {
    static const auto all = [] {
        firelink::core::plugin_info info;
        info.file = "/usr/lib/firelink/plugins/libvendor.so";
        info.id = "com.example.vendor";
        info.name = "Vendor panels";
        info.vendor = "Example";
        info.version = "1.2.3";
        info.license = "Apache-2.0";
        info.url = "https://example.com";
        info.description = "test";
        info.built_abi_version = 0x10000;
        info.agreed_abi_version = 0x10000;
        info.extra_exports = {"helper"};
        firelink::core::driver_info d;
        d.id = "panel";
        d.name = "Panel";
        d.device_class = "fire_alarm_control_panel";
        d.description = "a panel";
        d.wires = 3;
        d.required_extensions = {"firelink.commit/1"};
        d.flags = 1;
        info.drivers = {d, d};
        return fuzz::with_session({
            {"hello", fuzz::frame_bytes(iso::hello_msg{info, true})},
            {"refused", fuzz::frame_bytes(iso::refused_msg{"init_failed", "fl_plugin_init returned FL_ERROR"})},
            {"reply", fuzz::frame_bytes(iso::reply_msg{7, FL_TIMEOUT, "slow"})},
            {"log", fuzz::frame_bytes(iso::log_msg{0, -2, "a line"})},
            {"wire", fuzz::frame_bytes(iso::wire_msg{3, iso::wire_op::request, "\x01\x03\x00\x00", 1000})},
            {"pong", fuzz::frame_bytes(iso::pong_msg{1ull << 40})},
            {"slow", fuzz::frame_bytes(iso::slow_msg{3, "on_data", -5})},
            {"consumed", fuzz::frame_bytes(iso::consumed_msg{3, 65536})},
        });
    }();
    return all;
}

}  // namespace

FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    // As the host reads a runner: borrowed strings, at most max_runner_frame a frame; `malformed` is the expected
    // answer (the host kills this runner).
    fuzz::decode_stream<iso::runner_message>(data, size, true, iso::max_runner_frame, &iso::decode_runner_message,
                                             [](const iso::runner_message &m) {
        if (const auto *h = std::get_if<iso::hello_msg>(&m)) {
            // The plugin info is decoded into owned strings: touch them all (a view into freed memory shows here).
            std::size_t n = h->info.file.native().size() + h->info.id.size() + h->info.name.size();
            for (const auto &d : h->info.drivers) n += d.id.size() + d.required_extensions.size();
            for (const auto &e : h->info.extra_exports) n += e.size();
            (void)n;
        }
    });
    return 0;
}
