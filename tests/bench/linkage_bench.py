#!/usr/bin/env python3
"""linkage_bench: how long a local linkage takes, from the gas alarm at the device to the valve confirmed closed by its
read-back (docs/performance.md, "Local linkage (issue 17)").

firelink-host run (the modbus-gas-valve plugin in its runner, the default) with one [[linkage]] rule: gas_level_2 of
the target valve -> close_valve on the same valve. Each linkage:

    the rule idle, the valve open, the gas alarms restored; a random wait of 0..--phase-ms (the leak comes at any
    point of the poll cycle)
    t0 = CLOCK_MONOTONIC just before the simulator is told `gas 60`
    ... the driver polls the level, raises gas_level_2, the rule fires, selects and operates the valve, the driver
    writes the close and polls the valve until it reads closed, the gateway emits linkage_confirmed ...
    the run checked: the next run number, fired by this round's gas_level_2 (its event_id, from /api/linkage)
    POST /api/linkage/<rule>/reset, `gas 0`, `valve open`, wait for the restores and valve_opened: idle again

Two measures for each linkage, both printed as n, p50, p90, p99, max (ms):
    host   the event's own `latency_ms`: the trigger signal accepted by the host -> the read-back
    wire   the record's received.monotonic_ns (the host's steady_clock, which is CLOCK_MONOTONIC, the clock of t0)
           minus t0: the simulator's action -> the confirmation accepted, the detection poll included
and, to show where the time goes, the detection (t0 -> gas_level_2 accepted), the command and read-back
(gas_level_2 accepted -> the valve's command_result accepted: the same span as host), and the rest (the
command_result -> the linkage_confirmed record, which the uplink queue commits before the local record gets it).

The rule's window_s is 1 (--window-s): with the host's default of 120 the engine fires the rule again on an old,
restored alarm once more than 20 runs (the runs it remembers) ended within the window; --window-s 120 shows it.

Setups (--setups, both by default, one after the other in the same run):
    tcp    one `firelink-sim gas-valve` on loopback, Modbus TCP
    rs485  one `firelink-sim bus` on an RS-485 bus made of socat pty pairs: --units devices (default 8: gas valves,
           pyrolysis detectors, arc-fault breakers), all polled at poll_ms, the target a gas valve among them. A pty
           has no baud rate, so the bytes go through a relay here that holds each chunk for its time on a wire of
           --baud (10 bits a byte, one half-duplex line for both directions); --no-pace passes them at pty speed.

The drivers run fast (poll_ms = --poll-ms, debounce = 1, telemetry_ms = 0) and the simulated valve moves at once
(travel-ms 0): a real valve takes seconds, the benchmark measures the software path. The exit status is 1 when a
linkage failed (linkage_failed, a refused reset, ...) or was lost (no confirmation within --timeout-s); never on speed.

Usage: linkage_bench.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR E2E_DIR [--linkages N] [--setups tcp,rs485] [--dir DIR]
Full run (manual): tests/bench/linkage_bench.py build/bin/firelink-host build/bin/firelink-sim build/plugins \\
    tests/e2e --linkages 200
"""
import argparse
import heapq
import json
import os
import platform
import random
import select
import shutil
import signal
import sys
import tempfile
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("host")
p.add_argument("sim")
p.add_argument("plugins")
p.add_argument("e2e", help="tests/e2e, the folder of the firelink_e2e package")
p.add_argument("--linkages", type=int, default=200, help="measured linkages per setup (default 200)")
p.add_argument("--warmup", type=int, default=1, help="linkages per setup before the measured ones (default 1)")
p.add_argument("--setups", default="tcp,rs485", help="comma-separated: tcp, rs485 (default both)")
p.add_argument("--dir", default=None, help="where the work folders go (default: the system's temp folder)")
p.add_argument("--keep", action="store_true", help="keep the work folders (host.log, events.jsonl, site.toml)")
p.add_argument("--poll-ms", type=int, default=20, help="every device's poll_ms (default 20; the driver takes >= 10)")
p.add_argument("--baud", type=int, default=19200, help="the RS-485 bus's line speed (default 19200)")
p.add_argument("--units", type=int, default=8, help="devices on the RS-485 bus, all polled (default 8, 3..32)")
p.add_argument("--target-unit", type=int, default=0, help="the target valve's unit (default: the middle gas valve)")
p.add_argument("--no-pace", action="store_true", help="rs485: no wire-time relay, the ptys' own speed")
p.add_argument("--timeout-s", type=float, default=15.0, help="a linkage not confirmed within this is lost")
p.add_argument("--phase-ms", type=float, default=200.0,
                help="before each alarm, wait a random 0..this ms, so that the alarm comes at any point of the poll "
                     "cycle, as a real leak does (default 200: more than a poll round of the RS-485 bus)")
p.add_argument("--window-s", type=int, default=1,
               help="the rule's trigger window_s (default 1; the host's default, 120, makes the rule fire again on an "
                    "old, restored alarm once its run has left the 20 runs the engine remembers: see the docs)")
args = p.parse_args()
for _name in ("host", "sim", "plugins", "e2e"):  # the site file's relative paths resolve against its own folder
    setattr(args, _name, os.path.abspath(getattr(args, _name)))
sys.path.insert(0, args.e2e)
from firelink_e2e import PtyPair, Sim, Site, free_port, value_of, wait_for  # noqa: E402

RULE = "bench-gas"
GATEWAY = "gw-bench"


# ---------------------------------------------------------------------------------------------------- the record
class Record:
    """events.jsonl read incrementally: every complete line once, kept in order."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.records = []

    def poll(self):
        if not os.path.exists(self.path):
            return 0
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            if line:
                self.records.append(json.loads(line))
        return len(lines)

    def find(self, predicate, start=0):
        for i in range(start, len(self.records)):
            if predicate(self.records[i]):
                return self.records[i]
        return None

    def wait(self, what, predicate, start=0, timeout=15.0):
        """The first record from index `start` that `predicate` holds for; None after `timeout`."""
        end = time.monotonic() + timeout
        while True:
            self.poll()
            r = self.find(predicate, start)
            if r is not None or time.monotonic() > end:
                return r
            time.sleep(0.002)


def code_is(r, device, code, kind=None):
    e = r["event"]
    return r["device"] == device and e["code"] == code and (kind is None or e["kind"] == kind)


# ------------------------------------------------------------------------------------------- the wire's own time
class PacedLine:
    """A half-duplex serial line of `baud` between two ptys: each chunk read on one side is written to the other side
    once its last byte would have arrived on the wire (10 bits a byte, 8N1), after whatever the line still carries.
    The chunks are whole Modbus frames in practice (each side writes a frame at once)."""

    def __init__(self, a_path, b_path, baud):
        self.a = os.open(a_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.b = os.open(b_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.byte_s = 10.0 / baud
        self.stop = False
        self.bytes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        pending = []  # (due, n, fd, data)
        line_free = 0.0
        n = 0
        while not self.stop:
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, _, fd, data = heapq.heappop(pending)
                while data:
                    try:
                        data = data[os.write(fd, data):]
                    except BlockingIOError:
                        time.sleep(0.0005)
            wait = min(0.05, max(0.0, pending[0][0] - now)) if pending else 0.05
            ready, _, _ = select.select([self.a, self.b], [], [], wait)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except (BlockingIOError, OSError):
                    continue
                if not data:
                    continue
                now = time.monotonic()
                line_free = max(now, line_free) + len(data) * self.byte_s
                n += 1
                self.bytes += len(data)
                heapq.heappush(pending, (line_free, n, self.b if fd == self.a else self.a, data))

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        os.close(self.a)
        os.close(self.b)


# ------------------------------------------------------------------------------------------------ what ran beside
def cpu_times():
    """{pid: (command, utime + stime in clock ticks)} of every process now."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            comm = stat[stat.index("(") + 1: stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(pid)] = (comm, int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14]))
        except (OSError, ValueError, IndexError):
            pass
    return out


def beside(before, after, ours, seconds):
    """The processes not ours that used the most CPU between two cpu_times(), as 'comm N%' (of one core)."""
    tick = os.sysconf("SC_CLK_TCK")
    use = {}
    for pid, (comm, t) in after.items():
        if pid in ours:
            continue
        used = (t - before.get(pid, (comm, 0))[1]) / tick
        if used > 0:
            use[comm] = use.get(comm, 0) + used
    top = sorted(use.items(), key=lambda kv: -kv[1])[:6]
    return ", ".join(f"{c} {100 * u / seconds:.0f}%" for c, u in top if 100 * u / seconds >= 1) or "nothing over 1%"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ----------------------------------------------------------------------------------------------------- the setups
def fast(extra=""):
    return (f'config = {{ poll_ms = {args.poll_ms}, debounce = 1, telemetry_ms = 0, command_timeout_ms = 5000'
            f'{extra} }}\n')


def rule(target):
    return (f'[[linkage]]\nid = "{RULE}"\nname = "benchmark: gas level 2 closes the valve"\n\n'
            f'[linkage.trigger]\nany = [{{ device = "{target}", code = "gas_level_2" }}]\nwindow_s = {args.window_s}\n\n'
            f'[[linkage.action]]\ndevice = "{target}"\ncommand = "close_valve"\nargs = {{ reason = "linkage bench" }}\n'
            f'timeout_s = 10\n\n')


def uplink(work):
    # A gateway has an uplink; here its platform is down (a port nothing listens on): the events, the linkage's
    # included, wait in the durable queue, whose file also holds the audit chain and the linkage runs.
    with open(os.path.join(work, "uplink-token"), "w") as f:
        f.write("t0ken\n")
    return (f'[uplink]\nurl = "http://127.0.0.1:{free_port()}"\nqueue_path = "queue.db"\ntoken_file = "uplink-token"\n'
            f'backoff_max_s = 5\n\n')


class Setup:
    name = ""
    prefix = ""  # the simulator's unit prefix for the target ("@N ")

    def __init__(self, work):
        self.work = work
        self.closers = []
        self.site = None

    def close(self):
        if self.site:
            self.site.close()
        for c in reversed(self.closers):
            try:
                c()
            except Exception as e:  # noqa: BLE001 - a cleanup never hides the result
                print(f"# cleanup: {e!r}", file=sys.stderr)

    def pids(self):
        out = {os.getpid()}
        if self.site and self.site.proc:
            out.add(self.site.proc.pid)
            try:
                for p in self.site.health()["plugins"]:
                    if p.get("pid"):
                        out.add(p["pid"])
            except Exception:  # noqa: BLE001
                pass
        out.add(self.sim.proc.pid)
        for extra in getattr(self, "extra_pids", []):
            out.add(extra)
        return out


class Tcp(Setup):
    name = "tcp"

    def __init__(self, work):
        super().__init__(work)
        self.sim = Sim(args.sim, "gas-valve", "--listen", "127.0.0.1:0")
        self.closers.append(self.sim.close)
        self.sim.do("travel-ms 0")
        self.target = "gas-1"
        self.devices = [self.target]
        body = uplink(work) + (f'[[device]]\nid = "gas-1"\ndriver = "modbus-gas-valve"\nclass = "gas_shutoff_valve"\n'
                               f'wire = {{ tcp = "127.0.0.1:{self.sim.port}", unit = 1 }}\n'
                               f'site = {{ building = "A", floor = "1F", location = "kitchen" }}\n'
                               + fast(", reply_timeout_ms = 300") + "\n" + rule(self.target))
        self.site = Site(args.host, args.plugins, body, work, gateway=GATEWAY)
        self.describe = (f"one firelink-sim gas-valve on loopback (Modbus TCP), poll_ms {args.poll_ms}, debounce 1, "
                         f"travel-ms 0")


MODELS = [("gas-valve", "modbus-gas-valve", "gas_shutoff_valve", "gas"),
          ("pyrolysis", "modbus-pyrolysis", "pyrolysis_detector", "pyro"),
          ("arc-breaker", "modbus-arc-breaker", "arc_fault_breaker", "afb")]


class Rs485(Setup):
    name = "rs485"

    def __init__(self, work):
        super().__init__(work)
        n = args.units
        if not 3 <= n <= 32:
            raise SystemExit("--units: 3 to 32")
        # Units 1..n: half gas valves, then pyrolysis detectors, then arc-fault breakers.
        gas = max(1, n // 2)
        pyro = max(1, (n - gas) // 2)
        kinds = {}
        for u in range(1, n + 1):
            kinds[u] = MODELS[0] if u <= gas else MODELS[1] if u <= gas + pyro else MODELS[2]
        unit = args.target_unit or (gas + 1) // 2 + (1 if gas > 1 else 0)
        if kinds.get(unit, MODELS[1])[0] != "gas-valve":
            raise SystemExit(f"--target-unit {unit} is not a gas valve (units 1-{gas} are)")
        host_side = os.path.join(work, "host-side")
        dev_side = os.path.join(work, "device-side")
        os.makedirs(host_side)
        os.makedirs(dev_side)
        self.pty_host = PtyPair(host_side)  # the host opens host_end; the relay device_end
        self.closers.append(self.pty_host.close)
        if args.no_pace:
            bus_path, sim_path = self.pty_host.host_end, self.pty_host.device_end
            self.line = None
        else:
            self.pty_dev = PtyPair(dev_side)  # the relay opens host_end; the simulator device_end
            self.closers.append(self.pty_dev.close)
            self.line = PacedLine(self.pty_host.device_end, self.pty_dev.host_end, args.baud)
            self.closers.append(self.line.close)
            bus_path, sim_path = self.pty_host.host_end, self.pty_dev.device_end
        spans = []
        for model in MODELS:
            us = [u for u in kinds if kinds[u] == model]
            if us:
                spans += ["--unit", f"{us[0]}-{us[-1]}={model[0]}"]
        self.sim = Sim(args.sim, "bus", "--serial", sim_path, "--baud", str(args.baud), *spans)
        self.closers.append(self.sim.close)
        self.prefix = f"@{unit} "
        for u in range(1, gas + 1):
            self.sim.do(f"@{u} travel-ms 0")
        body = uplink(work) + (f'[[bus]]\nid = "rs485-1"\nkind = "rs485"\npath = "{bus_path}"\nbaud = {args.baud}\n'
                               f'request_timeout_ms = 100\ninter_frame_gap_ms = 5\n\n')
        self.devices = []
        for u in range(1, n + 1):
            model, driver, cls, short = kinds[u]
            dev = f"{short}-{u}"
            self.devices.append(dev)
            if u == unit:
                self.target = dev
            body += (f'[[device]]\nid = "{dev}"\ndriver = "{driver}"\nclass = "{cls}"\n'
                     f'wire = {{ bus = "rs485-1", unit = {u} }}\n'
                     f'site = {{ building = "A", floor = "1F", location = "unit {u}" }}\n' + fast() + "\n")
        body += rule(self.target)
        self.site = Site(args.host, args.plugins, body, work, gateway=GATEWAY)
        pace = "pty speed (no pacing)" if args.no_pace else f"paced to {args.baud} baud 8N1"
        self.describe = (f"RS-485 bus, {n} units on one firelink-sim bus ({gas} gas valves, {pyro} pyrolysis, "
                         f"{n - gas - pyro} arc-fault breakers), all polled at poll_ms {args.poll_ms}, the target "
                         f"{self.target}, {pace}, inter_frame_gap_ms 5, debounce 1, travel-ms 0")


# ----------------------------------------------------------------------------------------------------- a linkage
class Failed(Exception):
    pass


def linkage_runs(site):
    status, body = site.get_json("/api/linkage")
    if status != 200:
        raise Failed(f"GET /api/linkage: {status} {body}")
    return next(r for r in body["rules"] if r["id"] == RULE)


def to_idle(setup, rec, alarm):
    """Reset the rule, take the gas away, open the valve by hand; wait until the driver reports both restores and the
    valve open and the rule is idle."""
    site, sim, target = setup.site, setup.sim, setup.target
    start = len(rec.records)
    status, answer = site.post(f"/api/linkage/{RULE}/reset", {"why": "linkage bench: next round"})
    if status != 200:
        raise Failed(f"reset: {status} {answer}")
    sim.do(setup.prefix + "gas 0")
    sim.do(setup.prefix + "valve open")
    ends = set(alarm)
    end = time.monotonic() + args.timeout_s
    while time.monotonic() < end:
        rec.poll()
        restored = {r["event"].get("ends") for r in rec.records[start:]
                    if r["device"] == target and r["event"]["kind"] == "restore"}
        opened = rec.find(lambda r: code_is(r, target, "valve_opened"), start)
        if ends <= restored and opened:
            break
        time.sleep(0.005)
    else:
        raise Failed(f"not idle within {args.timeout_s} s (restores of {sorted(ends)}, valve_opened)")
    state = linkage_runs(site)["state"]
    if state != "idle":
        raise Failed(f"the rule is {state} after its reset")


def one(setup, rec, expected_run):
    """One linkage; returns a dict of its figures (ms)."""
    site, sim, target = setup.site, setup.sim, setup.target
    time.sleep(random.uniform(0, args.phase_ms / 1000))
    rec.poll()
    start = len(rec.records)
    t0 = time.monotonic_ns()
    w0 = time.time_ns()
    sim.do(setup.prefix + "gas 60")

    def done(r):
        return (r["device"] == GATEWAY and r["event"]["code"] in ("linkage_confirmed", "linkage_failed") and
                r["received"]["monotonic_ns"] >= t0 and (expected_run is None or value_of(r["event"], "run") == expected_run))
    r = rec.wait("linkage_confirmed", done, start, timeout=args.timeout_s)
    if r is None:
        raise Failed(f"lost: no linkage_confirmed (run {expected_run}) within {args.timeout_s} s")
    e = r["event"]
    if e["code"] != "linkage_confirmed":
        raise Failed(f"linkage_failed: {value_of(e, 'reason')}: {e.get('message')}")
    if value_of(e, "device") != target:
        raise Failed(f"confirmed for {value_of(e, 'device')}, not {target}")
    run = value_of(e, "run")
    if expected_run is not None and run != expected_run:
        raise Failed(f"run {run}, expected {expected_run}")
    l1 = rec.find(lambda x: code_is(x, target, "gas_level_1", "alarm"), start)
    l2 = rec.find(lambda x: code_is(x, target, "gas_level_2", "alarm"), start)
    cid = value_of(e, "command_id")
    result = rec.find(lambda x: x["device"] == target and x["event"].get("command_id") == cid and
                      x["event"]["kind"] == "command_result", start)
    if l2 is None or result is None:
        raise Failed("the confirmation came without the gas_level_2 alarm or the valve's command_result in the record")
    alarms = [a["event"]["event_id"] for a in (l1, l2) if a is not None]
    # The run must have been fired by this round's alarm, not by an older one.
    current = linkage_runs(site)["run"] or {}
    fired_by = [t.get("event_id") for t in current.get("trigger", [])]
    if current.get("run") != run or fired_by != [l2["event"]["event_id"]]:
        raise Failed(f"run {run} was fired by {fired_by}, not by this round's {l2['event']['event_id']}")
    mono = r["received"]["monotonic_ns"]
    out = {
        "host": float(value_of(e, "latency_ms")),
        "wire": (mono - t0) / 1e6,
        "detect": (l2["received"]["monotonic_ns"] - t0) / 1e6,
        "readback": (result["received"]["monotonic_ns"] - l2["received"]["monotonic_ns"]) / 1e6,
        "to_readback": (result["received"]["monotonic_ns"] - t0) / 1e6,
        "emit": (mono - result["received"]["monotonic_ns"]) / 1e6,
        "clock_skew": (r["received"]["wall_ms"] - w0 / 1e6) - (mono - t0) / 1e6,
        "run": run,
        "alarms": alarms,
    }
    if out["wire"] < 0 or out["wire"] > args.timeout_s * 1000 + 1000:
        raise Failed(f"the record's monotonic time is not this machine's CLOCK_MONOTONIC ({out['wire']} ms)")
    return out


def run_setup(cls, base):
    work = tempfile.mkdtemp(prefix=f"firelink-linkage-{cls.name}-", dir=base)
    os.chmod(work, 0o755)
    setup = None
    figures, failures = [], []
    try:
        setup = cls(work)
        site = setup.site
        site.start()
        wait_for(lambda: all(site.devices()[d].get("wire", {}).get("bytes_in", 0) > 0 for d in setup.devices),
                 "every device's first reply", timeout=30)
        rec = Record(site.sink)
        state = linkage_runs(site)
        if state["state"] != "idle":
            raise Failed(f"the rule starts {state['state']}: {state.get('why')}")
        before_cpu, t_start = cpu_times(), time.monotonic()
        load_before = loadavg()
        run = None
        total = args.warmup + args.linkages
        for i in range(total):
            try:
                f = one(setup, rec, None if run is None else run + 1)
                run = f["run"]
                if i >= args.warmup:
                    figures.append(f)
                to_idle(setup, rec, f["alarms"])
            except Failed as e:
                failures.append(f"linkage {i + 1}: {e}")
                print(f"# {cls.name}: linkage {i + 1} FAILED: {e}", file=sys.stderr)
                try:  # bring it back to idle for the next one, if it can be
                    setup.sim.do(setup.prefix + "gas 0")
                    setup.sim.do(setup.prefix + "valve open")
                    time.sleep(1.0)
                    for _ in range(3):
                        linkage = linkage_runs(site)
                        if linkage["run"] is None:
                            break
                        site.post(f"/api/linkage/{RULE}/reset", {"why": "linkage bench: after a failure"})
                        time.sleep(0.5)
                    linkage = linkage_runs(site)
                    last = [x["run"] for x in ([linkage["run"]] if linkage["run"] else []) + linkage["last_runs"]]
                    run = max(last) if last else None
                    rec.poll()
                except Exception as again:  # noqa: BLE001
                    failures.append(f"linkage {i + 1}: could not recover: {again}")
                    break
            if (i + 1) % 50 == 0:
                print(f"# {cls.name}: {i + 1}/{total}", file=sys.stderr, flush=True)
        seconds = time.monotonic() - t_start
        after_cpu = cpu_times()
        extra = {"load_before": load_before, "load_after": loadavg(), "seconds": seconds,
                 "beside": beside(before_cpu, after_cpu, setup.pids(), seconds), "describe": setup.describe,
                 "work": work}
        if setup.name == "rs485" and setup.line is not None:
            extra["describe"] += f", {setup.line.bytes} bytes on the wire"
        status = site.stop()
        if status != 0:
            failures.append(f"firelink-host exited {status}")
        return figures, failures, extra
    except Exception as e:  # noqa: BLE001 - reported as a failed setup
        failures.append(f"setup: {e!r}")
        log = os.path.join(work, "host.log")
        if os.path.exists(log):
            with open(log) as f:
                print(f"# {cls.name}: host log (tail):\n" + f.read()[-3000:], file=sys.stderr)
        return figures, failures, {"describe": getattr(setup, "describe", cls.name), "work": work}
    finally:
        if setup:
            setup.close()
        if not args.keep and not failures:
            shutil.rmtree(work, ignore_errors=True)


def pct(values, q):
    """The q-th percentile, nearest rank."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def main():
    setups = {"tcp": Tcp, "rs485": Rs485}
    chosen = [s.strip() for s in args.setups.split(",") if s.strip()]
    for s in chosen:
        if s not in setups:
            raise SystemExit(f"--setups: unknown setup '{s}' (tcp, rs485)")
    if args.poll_ms < 10:
        raise SystemExit("--poll-ms: the driver takes 10 to 3600000")
    base = args.dir
    if base:
        os.makedirs(base, exist_ok=True)
    uptime_before = loadavg()
    results = {}
    bad = []
    for s in chosen:
        figures, failures, extra = run_setup(setups[s], base)
        results[s] = (figures, extra)
        bad += [f"{s}: {f}" for f in failures]
        if failures and "work" in extra:
            print(f"# {s}: the work folder is kept: {extra['work']}", file=sys.stderr)
    print(f"# linkage_bench cpu={cpu_model()!r} cpus={os.cpu_count()} kernel={platform.release()} "
          f"date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} python={platform.python_version()}")
    print(f"# host={args.host} poll_ms={args.poll_ms} debounce=1 telemetry_ms=0 travel_ms=0 window_s={args.window_s} phase_ms=0..{args.phase_ms:g} "
          f"warmup={args.warmup} linkages={args.linkages} load_before={uptime_before} load_after={loadavg()}")
    for s in chosen:
        figures, extra = results[s]
        print(f"# {s}: {extra.get('describe')}")
        if "seconds" in extra:
            print(f"# {s}: {len(figures)} linkages in {extra['seconds']:.1f} s, load {extra['load_before']} -> "
                  f"{extra['load_after']}; beside it: {extra['beside']}")
        if figures:
            skew = max(abs(f["clock_skew"]) for f in figures)
            print(f"# {s}: wall-clock cross-check of the monotonic figure: within {skew:.1f} ms")
    print()
    head = f"{'setup':<7} {'measure':<48} {'n':>4} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}"
    print(head)
    print("-" * len(head))
    names = [("host", "host: signal accepted -> read-back (latency_ms)"),
             ("wire", "wire: sim `gas 60` -> linkage_confirmed record"),
             ("detect", "  sim `gas 60` -> gas_level_2 accepted"),
             ("readback", "  + gas_level_2 -> valve's command_result"),
             ("to_readback", "  = sim `gas 60` -> read-back (command_result)"),
             ("emit", "  + command_result -> linkage_confirmed record")]
    for s in chosen:
        figures, _ = results[s]
        for key, label in names:
            v = [f[key] for f in figures]
            print(f"{s:<7} {label:<48} {len(v):>4} {pct(v, 50):>8.1f} {pct(v, 90):>8.1f} {pct(v, 99):>8.1f} "
                  f"{(max(v) if v else float('nan')):>8.1f}")
    print("(ms; p = nearest-rank percentile)")
    lost = sum(1 for b in bad)
    print(f"\nfailed_or_lost={lost}")
    for b in bad:
        print(f"FAILED {b}")
    return 1 if bad or any(len(results[s][0]) < args.linkages for s in chosen) else 0


if __name__ == "__main__":
    # SIGTERM (ctest's timeout, a kill) unwinds like Ctrl-C: the host, the simulator and socat are stopped on the way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
