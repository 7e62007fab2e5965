// host_channel_fuzz: the runner's decoder of what the host sends (decode_host_message behind the runner's
// frame_reader: owned strings, max_host_frame). The host is trusted, but a runner that crashes on a bad frame takes
// its devices with it without saying why; `malformed` (the runner logs and ends) is the only accepted answer.
#include "harness.hpp"

namespace {

namespace iso = firelink::isolation;

const std::vector<std::pair<std::string, std::string>> &seeds() {
    static const auto all = [] {
        iso::create_msg c;
        c.call = 1;
        c.device = 3;
        c.driver_id = "panel";
        c.device_id = "bldg-a/panel-1";
        c.config = "\x81\xa4port\xcd\x01\xf6";
        c.wire_kind = 2;
        c.unit = 1;
        c.conditions = {{"ev-1", "fault", "loop_open", "\x80", 1700000000000}, {"ev-2", "alarm", "fire", "\x80", -1}};
        iso::admit_msg a;
        a.busy_kinds = {"telemetry", "status"};
        return fuzz::with_session({
            {"create", fuzz::frame_bytes(c)},
            {"start", fuzz::frame_bytes(iso::lifecycle_msg{iso::msg::start, 2, 3})},
            {"stop", fuzz::frame_bytes(iso::lifecycle_msg{iso::msg::stop, 4, 3})},
            {"destroy", fuzz::frame_bytes(iso::lifecycle_msg{iso::msg::destroy, 5, 3})},
            {"command", fuzz::frame_bytes(iso::command_msg{6, 3, "\x81\xa2op\xa5reset"})},
            {"identify", fuzz::frame_bytes(iso::identify_msg{7, "panel", "\x68\x01\x02"})},
            {"data", fuzz::frame_bytes(iso::data_msg{3, std::string_view("\x00\x01\x02\x03", 4)})},
            {"state", fuzz::frame_bytes(iso::state_msg{3, 1, FL_CLOSED})},
            {"ping", fuzz::frame_bytes(iso::ping_msg{9})},
            {"admit", fuzz::frame_bytes(a)},
            {"room", fuzz::frame_bytes(iso::room_msg{iso::lane::telemetry})},
            {"committed", fuzz::frame_bytes(iso::committed_msg{3, 1000})},
        });
    }();
    return all;
}

}  // namespace

FUZZ_SEEDS(seeds)

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    // Owned strings, at most max_host_frame a frame; on `malformed` the runner logs it and ends.
    fuzz::decode_stream<iso::host_message>(data, size, false, iso::max_host_frame, &iso::decode_host_message);
    return 0;
}
