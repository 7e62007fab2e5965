// firelink-sim <device> ...: runs a simulated device until stopped (SIGINT/SIGTERM) or its script ends.
#include "common/subcommand.hpp"

int main(int argc, char **argv) {
    return firelink::tools::dispatch("firelink-sim", "simulate a device", argc, argv);
}
