// A tool made of subcommands, each in its own source file of the executable:
//
//   static const firelink::tools::registration reg{"gb26875", "decode GB/T 26875.3 frames", &run_gb26875};
//
// run() gets the subcommand's own arguments (argv[0] is the subcommand's name) and returns the exit code.
#pragma once

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

namespace firelink::tools {

using subcommand_fn = int (*)(int argc, char **argv);

struct subcommand {
    std::string summary;
    subcommand_fn run;
};

inline std::map<std::string, subcommand> &subcommands() {
    static std::map<std::string, subcommand> all;
    return all;
}

struct registration {
    registration(const char *name, const char *summary, subcommand_fn run) {
        subcommands()[name] = subcommand{summary, run};
    }
};

// main() of a tool: dispatches argv[1] to its subcommand, or prints the list.
inline int dispatch(const char *tool, const char *what, int argc, char **argv) {
    auto usage = [&](FILE *to) {
        std::fprintf(to, "usage: %s <subcommand> [args...]   (%s)\n\nsubcommands:\n", tool, what);
        for (const auto &[name, sc] : subcommands()) std::fprintf(to, "  %-14s %s\n", name.c_str(), sc.summary.c_str());
        std::fprintf(to, "\n%s <subcommand> --help shows a subcommand's arguments.\n", tool);
    };
    if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const auto it = subcommands().find(argv[1]);
    if (it == subcommands().end()) {
        std::fprintf(stderr, "%s: unknown subcommand '%s'\n", tool, argv[1]);
        usage(stderr);
        return 2;
    }
    return it->second.run(argc - 1, argv + 1);
}

}  // namespace firelink::tools
