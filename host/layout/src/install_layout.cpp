#include <firelink/layout/install_layout.hpp>

#include <unistd.h>

namespace fs = std::filesystem;

namespace firelink::layout {

fs::path executable_dir() {
    std::error_code ec;
    const fs::path self = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path(".") : self.parent_path();
}

std::vector<fs::path> runner_candidates() {
    const fs::path bin = executable_dir();
    return {bin / "firelink-runner", (bin / FIRELINK_BIN_TO_PKGLIB / "firelink-runner").lexically_normal()};
}

std::vector<fs::path> plugin_dir_candidates() {
    const fs::path bin = executable_dir();
    return {(bin / FIRELINK_BIN_TO_PKGLIB / "plugins").lexically_normal(), (bin / ".." / "plugins").lexically_normal()};
}

fs::path first_executable(const std::vector<fs::path> &candidates) {
    std::error_code ec;
    for (const auto &p : candidates)
        if (fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0) return p;
    return {};
}

fs::path first_directory(const std::vector<fs::path> &candidates) {
    std::error_code ec;
    for (const auto &p : candidates)
        if (fs::is_directory(p, ec)) return p;
    return {};
}

std::string list_paths(const std::vector<fs::path> &paths) {
    std::string out;
    for (std::size_t i = 0; i < paths.size(); ++i)
        out += (i == 0 ? "" : i + 1 == paths.size() ? " and " : ", ") + paths[i].string();
    return out;
}

}  // namespace firelink::layout
