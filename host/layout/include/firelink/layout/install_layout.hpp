#pragma once
// Where firelink-host finds its runner and its default plugin folder: relative to its own executable, the build
// tree's layout and the installed one (host/layout/README.md). Each list is in the order looked at; the first that
// exists is used, and an error names them all.
#include <filesystem>
#include <string>
#include <vector>

namespace firelink::layout {

// The folder of the running executable (/proc/self/exe); "." when it cannot be read.
std::filesystem::path executable_dir();

// firelink-runner: beside the executable, then <bin>/../lib/firelink/firelink-runner.
std::vector<std::filesystem::path> runner_candidates();

// The plugin folder when the site names none: <bin>/../lib/firelink/plugins, then <bin>/../plugins.
std::vector<std::filesystem::path> plugin_dir_candidates();

// The first of the paths that exists (a runner: an executable file; a folder: a directory); empty when none does.
std::filesystem::path first_executable(const std::vector<std::filesystem::path> &candidates);
std::filesystem::path first_directory(const std::vector<std::filesystem::path> &candidates);

// "a, b and c", for the messages that say where a part was looked for.
std::string list_paths(const std::vector<std::filesystem::path> &paths);

}  // namespace firelink::layout
