// firelink-sim <device> ...: runs a simulated device until stopped (SIGINT/SIGTERM) or its script ends.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "subcommand.hpp"

int main(int argc, char **argv) {
    // Logs go to stderr: stdout is each simulator's account for tests (action echoes, JSON events).
    spdlog::set_default_logger(spdlog::stderr_color_mt("firelink-sim"));
    return firelink::tools::dispatch("firelink-sim", "simulate a device", argc, argv);
}
