#include "test_hooks.hpp"

#include <chrono>
#include <latch>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace firelink::cli {

using namespace std::chrono_literals;

std::pair<unsigned, std::string> run_test_hook(const std::string &name, const std::string &body,
                                               const test_hook_targets &targets) {
    auto fail = [](unsigned status, const std::string &why) {
        return std::pair<unsigned, std::string>{status, nlohmann::json{{"error", why}}.dump()};
    };
    if (name != "wedge") return fail(404, "no test hook (there is: wedge)");
    const auto args = nlohmann::json::parse(body.empty() ? "{}" : body, nullptr, false);
    if (!args.is_object()) return fail(400, "the body is not a JSON object");
    const auto loop_arg = args.value("loop", nlohmann::json("control"));
    const auto seconds_arg = args.value("seconds", nlohmann::json(10.0));
    if (!loop_arg.is_string() || !seconds_arg.is_number()) return fail(400, "loop: a string; seconds: a number");
    const auto loop = loop_arg.get<std::string>();
    const double seconds = seconds_arg.get<double>();
    if (!(seconds > 0 && seconds <= 600)) return fail(400, "seconds: from 0 to 600");
    if (loop != "control" && loop != "devices") return fail(400, "loop: \"control\" or \"devices\"");
    const auto wedged_for = std::chrono::duration<double>(seconds);
    const unsigned threads = loop == "devices" ? targets.device_threads : 1;
    auto blocked = std::make_shared<std::latch>(threads);
    auto block = [blocked, wedged_for] {
        blocked->count_down();
        std::this_thread::sleep_for(wedged_for);
    };
    if (loop == "control") targets.post_control(block);
    else
        for (unsigned i = 0; i < threads; ++i) targets.post_devices(block);
    spdlog::warn("test hook: wedging the {} loop for {} s", loop, seconds);
    // The latch has no timed wait: poll it, bounded, so a loop that is already stuck does not hang the admin thread.
    for (auto until = std::chrono::steady_clock::now() + 10s; !blocked->try_wait();) {
        if (std::chrono::steady_clock::now() >= until)
            return fail(504, "the " + loop + " loop did not pick up the wedge");
        std::this_thread::sleep_for(5ms);
    }
    return {202, nlohmann::json{{"wedged", loop}, {"seconds", seconds}}.dump()};
}

}  // namespace firelink::cli
