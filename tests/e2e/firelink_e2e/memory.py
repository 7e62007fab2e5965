"""A process's memory as the kernel counts it."""


def peak_rss_kb(pid):
    """The peak resident set size of process `pid` (VmHWM in /proc/PID/status), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no VmHWM line")
