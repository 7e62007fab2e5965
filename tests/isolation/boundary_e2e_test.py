#!/usr/bin/env python3
"""The boundary, end to end on real parts: firelink-host with the lines plugin in its firelink-runner, the
test as a push-only device on the far end of a real TCP connection, a JSON-lines sink (or the uplink to
firelink-receiver), and the runner stopped, starved of CPU and killed while the device sends.

Every hop holds or pushes back: when the runner cannot take more, the host stops reading the device's socket (the
device's own TCP flow control holds the rest); what emit answered FL_OK reaches the sink even when the runner is killed
the next instant; an alarm never waits behind a lane the queue refuses.

Usage (ctest passes these): boundary_e2e_test.py FIRELINK_HOST FIRELINK_RECEIVER LINES_PLUGIN_DIR [unittest args]
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

from firelink_e2e import DEADLINE, LineDevice, Site, new_workdir, peak_rss_kb, take_arguments, wait_for

HOST, RECEIVER, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_RECEIVER", "LINES_PLUGIN_DIR")

CLASS = "vendor:org.firelink.tests.lines"


class Device(LineDevice):
    """The device: listens where the host's TCP client wire connects, and sends numbered lines of about 200 bytes.
    sendall blocks when the host stops reading: that is the flow control the test expects to reach it."""

    def __init__(self):
        super().__init__()
        self.sent = 0
        self.lock = threading.Lock()

    def accept(self):
        self.server.settimeout(DEADLINE)
        conn, _ = self.server.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        with self.lock:
            if self.conn:
                self.conn.close()
            self.conn = conn
        return conn

    def send_lines(self, first, count, prefix="line"):
        pad = "x" * 180
        batch = []
        for n in range(first, first + count):
            batch.append(f"{prefix} {n} {pad}\n")
            if len(batch) == 500:
                self.conn.sendall("".join(batch).encode())
                batch = []
        if batch:
            self.conn.sendall("".join(batch).encode())

    def close(self):
        if self.conn:
            self.conn.close()
        self.server.close()


def site_body(port, **config):
    cfg = ", ".join(f"{k} = {json.dumps(v)}" for k, v in config.items())
    return (f'[[device]]\nid = "dev-1"\nplugin = "org.firelink.tests.lines"\ndriver = "lines"\nclass = "{CLASS}"\n'
            f'heartbeat_s = 0\nwire = {{ tcp = "127.0.0.1:{port}" }}\nconfig = {{ {cfg} }}\n\n')


def runner_pid(site):
    return site.runner("org.firelink.tests.lines")["pid"]


def line_numbers(site):
    ns = []
    for r in site.events("dev-1"):
        ev = r["event"]
        if ev.get("code") in ("line", "x.tests.line_alarm"):
            ns.append(next(v["value"] for v in ev["values"] if v["name"] == "n"))
    return ns


class BoundaryTest(unittest.TestCase):
    def setUp(self):
        self.dir = new_workdir(self)
        self.device = Device()
        self.addCleanup(self.device.close)

    def start(self, body, runner="", uplink=""):
        self.site = Site(HOST, PLUGINS, uplink + body, self.dir, plugins=runner)
        self.addCleanup(self.site.close)
        self.site.start()
        self.device.accept()
        return self.site

    def assert_every_line_once(self, total):
        def all_there():
            return len(line_numbers(self.site)) >= total
        wait_for(all_there, f"{total} lines in the sink", timeout=120)
        ns = line_numbers(self.site)
        self.assertEqual(len(ns), total, "duplicates")
        self.assertEqual(sorted(ns), list(range(1, total + 1)), "lines lost")
        self.assertEqual(ns, sorted(ns), "out of order")
        self.assertNotIn("the host kept sending", self.site.output())
        self.assertNotIn("dropped", self.site.output())

    def test_RunnerStoppedWhileTheDeviceSends(self):
        """SIGSTOP the runner for 1.5 s while 200 000 lines arrive: the host stops reading the socket (the device's
        sendall blocks), nothing is lost, and the host's memory stays under its bound."""
        site = self.start(site_body(self.device.port))
        total = 200_000
        self.device.send_lines(1, 1000)
        wait_for(lambda: len(line_numbers(site)) >= 1000, "the first lines")
        pid = runner_pid(site)
        os.kill(pid, signal.SIGSTOP)
        # 199 000 lines (38 MB) are far more than the kernel's socket buffers hold: the sender must block.
        sender = threading.Thread(target=self.device.send_lines, args=(1001, total - 1000))
        sender.start()
        time.sleep(1.5)
        stalled = sender.is_alive()
        os.kill(pid, signal.SIGCONT)
        sender.join(timeout=120)
        self.assertTrue(stalled, "the device's sends never blocked: the host read on while the runner was stopped")
        self.assert_every_line_once(total)
        self.assertEqual(runner_pid(site), pid, "the runner was restarted: stopped is not hung for 1.5 s")
        self.assertLess(peak_rss_kb(site.proc.pid), 64 * 1024, "the host's peak RSS passed 64 MiB")

    def test_RunnerStarvedOfCPU(self):
        """The runner at SCHED_IDLE on a CPU that a busy loop holds: it runs only when nothing else wants that CPU.
        Every line still arrives once; the host holds what it must and pushes back on the rest."""
        site = self.start(site_body(self.device.port), runner="[runner]\nhang_ms = 20000\n")
        pid = runner_pid(site)
        cpu = min(os.sched_getaffinity(0))
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        self.addCleanup(hog.kill)
        for task in os.listdir(f"/proc/{pid}/task"):
            os.sched_setaffinity(int(task), {cpu})
            os.sched_setscheduler(int(task), os.SCHED_IDLE, os.sched_param(0))
        os.sched_setaffinity(hog.pid, {cpu})
        total = 200_000
        sender = threading.Thread(target=self.device.send_lines, args=(1, total))
        sender.start()
        sender.join(timeout=300)
        hog.kill()
        self.assert_every_line_once(total)
        self.assertLess(peak_rss_kb(site.proc.pid), 64 * 1024, "the host's peak RSS passed 64 MiB")

    def test_RunnerKilledFiftyTimes(self):
        """kill -9 of the runner at 50 random moments while the device sends: every event emit answered FL_OK for
        (recorded by the plugin with write(2), which outlives the process) is in the sink, exactly once."""
        oks = os.path.join(self.dir, "ok")
        os.mkdir(oks)
        # The runner runs as [runner] user (nobody, when the host is root): it must be able to write its records.
        os.chmod(self.dir, 0o711)
        os.chmod(oks, 0o777)
        site = self.start(site_body(self.device.port, ok_log=oks, alarm_every=50),
                          runner="[runner]\nrestart_limit = 1000\nbackoff_initial_ms = 10\nbackoff_max_ms = 50\n")
        stop = threading.Event()
        sent = [0]

        def send():  # the device: a new connection after each restart, lines numbered per connection
            while not stop.is_set():
                try:
                    self.device.send_lines(sent[0] + 1, 200)
                    sent[0] += 200
                except OSError:
                    try:
                        self.device.accept()
                    except OSError:
                        return
        sender = threading.Thread(target=send)
        sender.start()
        rng = random.Random(13)
        kills = 0
        for _ in range(50):
            time.sleep(rng.uniform(0.05, 0.25))
            pid = wait_for(lambda: runner_pid(self.site) if runner_pid(self.site) > 0 else None, "a runner")
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
            wait_for(lambda: runner_pid(self.site) not in (pid, -1), "the runner to be restarted")
        stop.set()
        self.device.conn.close()
        sender.join(timeout=DEADLINE)
        self.assertEqual(kills, 50)
        ok = set()
        for name in os.listdir(oks):
            with open(os.path.join(oks, name)) as f:
                ok.update(tuple(line.split()) for line in f if line.endswith("\n"))
        self.assertGreater(len(ok), 1000, "the load never got going")

        def got():
            seen = []
            for r in site.events("dev-1"):
                values = {v["name"]: v["value"] for v in r["event"].get("values", [])}
                if "instance" in values:
                    seen.append((str(values["instance"]), str(values["n"])))
            return seen
        wait_for(lambda: ok <= set(got()), "every FL_OK event in the sink", timeout=60)
        seen = got()
        self.assertEqual(len(seen), len(set(seen)), "an event reached the sink twice")
        missing = ok - set(seen)
        self.assertFalse(missing, f"{len(missing)} events emit answered FL_OK for are not in the sink")

    def test_AnAlarmPassesAFullEventLane(self):
        """The uplink's event lane full (platform down, a tiny cap): faults wait in the runner's event ring, the
        device's alarms in the same runner are committed to the queue at once."""
        uplink = '[uplink]\nurl = "http://127.0.0.1:9"\nqueue_path = "queue.db"\nevent_cap_mb = 1\n\n'
        body = site_body(self.device.port)
        # A second device of the same plugin, in the same runner: it only raises alarms.
        alarms = Device()
        self.addCleanup(alarms.close)
        body += site_body(alarms.port).replace('id = "dev-1"', 'id = "dev-alarm"').replace(
            "config = {  }", "config = { alarm_every = 1 }")
        site = self.start(body, uplink=uplink)
        alarms.accept()
        self.addCleanup(self.device.conn.close)  # unblocks the filler's sendall at the end
        # Faults: status events in the event lane until the queue refuses them.
        fill = threading.Thread(target=self.device.send_lines, args=(1, 20000, "F"))
        fill.start()
        wait_for(lambda: self.uplink_lane(site, "event")["deferred"] > 0, "the event lane to refuse", timeout=60)
        # Where the refused faults wait is shown: in the runner's event ring.
        wait_for(lambda: any(p.get("ring_bytes", {}).get("event", 0) > 0 for p in json.loads(site.get("/healthz")[1])["plugins"]),
                 "/healthz to show the faults waiting in the runner's event ring")
        before = self.uplink_lane(site, "alarm")["committed"]
        t0 = time.monotonic()
        alarms.send_lines(1, 5)
        wait_for(lambda: self.uplink_lane(site, "alarm")["committed"] >= before + 5, "five alarms committed")
        took = time.monotonic() - t0
        self.assertTrue(fill.is_alive(), "the faults all went through: the event lane was never full")
        self.assertLess(took, 5.0, "the alarms waited")  # a hang guard, not a speed claim: without the lanes they
        # wait until the platform comes back

    def test_AHostileRunnerIsKilledWithTheReason(self):
        """Each kind of malformed message a plugin can make its runner send: the host kills that runner, logs why, and
        goes on (the runner is restarted, the admin endpoint answers)."""
        site = self.start(site_body(self.device.port),
                          runner="[runner]\nrestart_limit = 100\nbackoff_initial_ms = 10\nbackoff_max_ms = 20\n")
        reasons = {
            "short_pong": "sent a malformed message: pong has 1 fields, expected 2",
            "huge_array": "sent a frame that is not msgpack",
            "unknown_type": "sent a malformed message: an unknown message type 99 from the runner",
            "event_on_channel": "sent a malformed message: an unknown message type 23 from the runner",
            "ring_head": "ring's head is outside the ring",
        }
        for kind, reason in reasons.items():
            pid = runner_pid(site)
            site.command("dev-1", "hostile", {"kind": kind})
            wait_for(lambda: reason in site.output(), f"the host to name '{reason}'")
            wait_for(lambda: runner_pid(site) not in (pid, -1), "the hostile runner to be replaced")
            self.device.accept()  # the restarted driver connects again
            self.assertIn(f"firelink-runner pid {pid}", site.output())
        self.assertEqual(site.get("/healthz")[0], 200)
        self.assertIsNone(site.proc.poll(), "the host died")

    def uplink_lane(self, site, name):
        status, body = site.get("/api/uplink")
        return json.loads(body)["lanes"][name]


if __name__ == "__main__":
    unittest.main(verbosity=2)
