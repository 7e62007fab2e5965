// What both benchmarks share: the header line (machine, kernel, date, build), `name value unit` output, percentiles,
// CPU pinning, and error counting (a benchmark that detects a wrong count exits non-zero).
#pragma once

#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#ifndef FIRELINK_BUILD_TYPE
#define FIRELINK_BUILD_TYPE "unknown"
#endif

namespace bench {

inline std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) {
                auto v = line.substr(colon + 1);
                v.erase(0, v.find_first_not_of(" \t"));
                return v;
            }
        }
    }
    return "unknown";
}

inline std::string compiler() {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "GCC " __VERSION__;
#else
    return "unknown";
#endif
}

// `# <name> cpu="..." cpus=N kernel="..." date=... build=... compiler="..." asserts=on|off`
inline void print_header(const char *name) {
    utsname u{};
    ::uname(&u);
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
#ifdef NDEBUG
    const char *asserts = "off";
#else
    const char *asserts = "on";
#endif
    std::printf("# %s cpu=\"%s\" cpus=%u kernel=\"%s %s\" arch=%s date=%s build=%s compiler=\"%s\" asserts=%s\n", name,
                cpu_model().c_str(), std::thread::hardware_concurrency(), u.sysname, u.release, u.machine, date,
                FIRELINK_BUILD_TYPE[0] ? FIRELINK_BUILD_TYPE : "none", compiler().c_str(), asserts);
}

// One figure: `name value unit`.
inline void figure(const std::string &name, double value, const char *unit) {
    if (value == std::floor(value) && std::fabs(value) < 1e15)
        std::printf("%s %.0f %s\n", name.c_str(), value, unit);
    else
        std::printf("%s %.3f %s\n", name.c_str(), value, unit);
}

// A comment line: starts with '#', ignored by parsers.
inline void note(const char *fmt, ...) {
    std::va_list ap;
    va_start(ap, fmt);
    std::fputs("# ", stdout);
    std::vprintf(fmt, ap);
    std::fputc('\n', stdout);
    va_end(ap);
}

// Errors the benchmark detected (lost events, wrong counts): printed to stderr, and the exit status is 1.
struct errors {
    int count = 0;
    void operator()(const char *fmt, ...) {
        std::va_list ap;
        va_start(ap, fmt);
        std::fputs("error: ", stderr);
        std::vfprintf(stderr, fmt, ap);
        std::fputc('\n', stderr);
        va_end(ap);
        ++count;
    }
    void expect_eq(const char *what, unsigned long long got, unsigned long long want) {
        if (got != want) (*this)("%s: got %llu, expected %llu", what, got, want);
    }
};

// Nearest-rank percentile (p in 0..100) of an unsorted sample; sorts it.
template <class T>
double percentile(std::vector<T> &v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    rank = std::clamp<std::size_t>(rank, 1, v.size());
    return static_cast<double>(v[rank - 1]);
}

// Pins the calling thread (and so every thread it starts later) to one CPU. Returns false when it cannot.
inline bool pin_to_cpu(int cpu) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return ::sched_setaffinity(0, sizeof set, &set) == 0;
#else
    (void)cpu;
    return false;
#endif
}

// CPU time (user + system) of the whole process so far, in seconds.
inline double process_cpu_seconds() {
    rusage r{};
    ::getrusage(RUSAGE_SELF, &r);
    return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

}  // namespace bench
