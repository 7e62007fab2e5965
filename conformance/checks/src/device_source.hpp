// Internal: where a polled class scenario's device is — the device source. The driver always talks through the
// host's real transport (a tcp_client or serial link of host/transport); the source decides what is at the other
// end and what a scenario's action does:
//   - the simulator: `firelink-sim <kind> --listen 127.0.0.1:0`, actions on its standard input; with
//     --record-traces DIR the bytes go through a recording proxy and are written as a trace per check;
//   - a trace (--trace FILE): a loopback TCP peer that answers each of the driver's requests with the reply
//     recorded for it in the trace's current section; an action moves to its section (the format: trace.hpp);
//   - a live device (--device URI): tcp://HOST:PORT?unit=N or serial:///dev/ttyX?baud=9600&unit=N; actions are
//     written to --device-actions FILE (a FIFO a rig reads) or asked of the certifier on the terminal.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "checks.hpp"
#include "firelink/core/device_runtime.hpp"

namespace firelink::conform {

// A child process (a firelink-sim) whose standard input and output are pipes to this one. Killed (SIGTERM) and
// reaped on destruction.
class piped_child {
public:
    piped_child() = default;
    piped_child(const piped_child &) = delete;
    piped_child &operator=(const piped_child &) = delete;
    ~piped_child();
    // Runs argv[0] with `argv`; false, and why, when the pipes or the fork failed.
    bool spawn(const std::vector<std::string> &argv, std::string &why);
    void write_line(const std::string &line);  // `line` and a newline on its standard input
    int out() const noexcept { return out_; }  // its standard output

private:
    pid_t pid_ = -1;
    int in_ = -1, out_ = -1;
};

// A firelink-sim child whose standard input takes actions: `firelink-sim KIND --listen 127.0.0.1:0` (the port it
// printed), or with other arguments (`--serial PTY --units 1-2`). Killed on destruction.
class simulator {
public:
    bool start(const std::filesystem::path &exe, const std::string &kind, std::string &why);
    bool start(const std::filesystem::path &exe, const std::string &kind, const std::vector<std::string> &args,
               std::string &why);
    void act(const std::string &action);  // one line on its standard input
    std::uint16_t port() const noexcept { return port_; }

private:
    bool read_line(std::string &line, std::chrono::steady_clock::time_point deadline);
    void drain();  // the simulator echoes each action; read what is there so its pipe never fills
    piped_child child_;
    std::uint16_t port_ = 0;
    std::string buf_;
};

// Two ptys whose masters a thread joins, as `socat pty pty` does: a null-modem cable. The simulator opens one end,
// the host's serial link or bus the other. The suite keeps each end open itself, raw, so no line discipline echoes
// what passes before they are opened.
class pty_pair {
public:
    pty_pair() = default;
    pty_pair(const pty_pair &) = delete;
    pty_pair &operator=(const pty_pair &) = delete;
    ~pty_pair();
    bool open(std::string &why);
    const std::string &device_end() const { return path_[0]; }
    const std::string &host_end() const { return path_[1]; }

private:
    void relay();
    int master_[2] = {-1, -1}, slave_[2] = {-1, -1}, wake_[2] = {-1, -1};
    std::string path_[2];
    std::thread thread_;
};

class device_source {
public:
    virtual ~device_source() = default;
    // The wire the device gets to this source.
    virtual core::link_factory link() = 0;
    virtual void act(const std::string &action) = 0;
    // A command was sent (a trace's section "command NAME" begins; a recording marks it).
    virtual void commanded(const std::string & /*name*/) {}
    // After the scenario: a recording is written, a trace reports the steps it had no section for.
    virtual void finish(findings & /*f*/) {}
};

// The source for one scenario check of a polled class (the Modbus classes): --device, else --trace, else the
// simulator `sim_kind`. NULL when none applies: the check is then skipped (or failed) with the reason.
std::unique_ptr<device_source> make_polled_source(const run_options &o, const core::driver_info &drv,
                                                  const std::string &sim_kind, const std::string &check_id,
                                                  findings &f);

}  // namespace firelink::conform
