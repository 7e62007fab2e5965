// firelink-decode <protocol> HEX...: each frame as one line of JSON, or why it is invalid (exit 1).
#include "subcommand.hpp"

int main(int argc, char **argv) {
    return firelink::tools::dispatch("firelink-decode", "print wire frames as JSON", argc, argv);
}
