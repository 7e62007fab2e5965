#!/usr/bin/env python3
"""Drivers out of process, end to end on real parts: firelink-host run as a child process, one firelink-runner per
plugin, three copies of the stream test plugin (stream_plugin.cpp), a JSON-lines sink, the admin endpoint.

Usage (ctest passes these): isolation_e2e_test.py FIRELINK_HOST STREAM_PLUGIN_DIR [unittest args]
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import firelink_e2e
from firelink_e2e import new_workdir, take_arguments, test_failed, wait_for

HOST, STREAMS = take_arguments("FIRELINK_HOST", "STREAM_PLUGIN_DIR")
CLASS = "vendor:org.firelink.tests.stream"


def device(dev_id, copy, **config):
    cfg = ", ".join(f"{k} = {json.dumps(v)}" for k, v in config.items())
    return (f'[[device]]\nid = "{dev_id}"\nplugin = "org.firelink.tests.stream-{copy}"\ndriver = "stream"\n'
            f'class = "{CLASS}"\nheartbeat_s = 0\nconfig = {{ {cfg} }}\n\n')


class Site(firelink_e2e.Site):
    """firelink-host run on `body`, started; `runner` is more of the [plugins] table."""

    def __init__(self, test, body, plugin_dir=STREAMS, runner=""):
        super().__init__(HOST, plugin_dir, body, new_workdir(test), plugins=runner, gateway="gw-iso", watchdog=None)
        self.start()

    def close(self):
        """Stops the host, which must exit 0 on SIGTERM whatever its runners went through."""
        status = self.stop()
        super().close()
        if status != 0:
            raise AssertionError(f"firelink-host exited with {status} on SIGTERM:\n" + self.output()[-3000:])


def samples(events):
    return [e["event"]["values"][0]["value"] for e in events if e["event"]["code"] == "sample"]


def host_made(events, kind, code):
    return [e for e in events if e["origin"] == "host" and e["event"]["kind"] == kind and e["event"]["code"] == code]


class IsolationTest(unittest.TestCase):
    def setUp(self):
        self.site = None
        # The runners run as an unprivileged user when the host is root: the crash marker's folder must be theirs.
        self.shared = tempfile.mkdtemp(prefix="firelink-iso-shared-")
        os.chmod(self.shared, 0o777)

    def tearDown(self):
        if self.site:
            out = self.site.output()
            self.site.close()
            if test_failed(self):
                print(out[-6000:])
        shutil.rmtree(self.shared, ignore_errors=True)

    def assert_gap_free(self, dev):
        events = self.site.events(dev)
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), f"{dev}: host sequence has a gap")
        n = samples(events)
        self.assertEqual(n, list(range(1, len(n) + 1)), f"{dev}: the driver's numbering has a gap")
        return n

    def test_CrashWhileLoading(self):
        """A plugin that crashes while its library loads is refused with the signal; the host and the rest of the site
        run, and check-config says the same."""
        plugins = tempfile.mkdtemp(prefix="firelink-iso-plugins-")
        self.addCleanup(shutil.rmtree, plugins, True)
        os.chmod(plugins, 0o755)
        shutil.copy(os.path.join(STREAMS, "stream_a.so"), plugins)
        shutil.copy(os.path.join(STREAMS, "..", "plugins-crashing", "stream_crashing.so"), plugins)
        self.site = Site(self, device("a1", "a", rate=100), plugin_dir=plugins)
        wait_for(lambda: len(samples(self.site.events("a1"))) > 5, "a1 streaming")
        self.assertRegex(self.site.output(), r"stream_crashing\.so refused: load_failed: firelink-runner killed by "
                                             r"signal 11 \(SIGSEGV\) while loading the plugin")
        self.assertEqual([p["id"] for p in self.site.health()["plugins"]], ["org.firelink.tests.stream-a"])
        check = subprocess.run([HOST, "check-config", self.site.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("1 plugin(s)", check.stdout)

    def test_CrashAtThe1000thEvent(self):
        """One plugin segfaults at its 1000th event while two others stream: they lose nothing and see no gap; the
        crashed plugin's device goes to driver_crashed within 1 s and is back after the restart."""
        marker = os.path.join(self.shared, "crashed-once")
        self.site = Site(self, device("a1", "a", rate=1500) + device("b1", "b", rate=1500) +
                         device("c1", "c", rate=1500, crash_at=1000, crash_marker=marker),
                         runner="[runner]\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n")
        first_pid = self.site.runner("org.firelink.tests.stream-c")["pid"]
        crash = wait_for(lambda: host_made(self.site.events("c1"), "fault", "driver_crashed"), "driver_crashed")[0]
        self.assertIn("SIGSEGV", crash["event"]["message"])
        restore = wait_for(lambda: host_made(self.site.events("c1"), "restore", "driver_crashed"), "the restore")[0]
        self.assertEqual(restore["event"]["ends"], crash["event"]["event_id"])
        # The restarted driver streams again from 1, after the restore.
        wait_for(lambda: len(samples(self.site.events("c1"))) > 1200, "c1 streaming again")
        time.sleep(0.5)
        c1 = self.site.events("c1")
        before = [e for e in c1 if e["seq"] < crash["seq"]]
        # 1..999 were emitted; the last few may still have been in the runner's send queue when it died (docs/abi.md:
        # what the host had not received is the driver's to re-report). What arrived is a gap-free prefix.
        got = samples(before)
        self.assertEqual(got, list(range(1, len(got) + 1)), "c1 before the crash: a gap-free prefix of 1..999")
        self.assertTrue(500 < len(got) <= 999, len(got))
        last = before[-1]["received"]["monotonic_ns"]
        self.assertLess(crash["received"]["monotonic_ns"] - last, 1_000_000_000,
                        "driver_crashed more than 1 s after the driver's last event")
        after = samples([e for e in c1 if e["seq"] > restore["seq"]])
        self.assertEqual(after[:5], [1, 2, 3, 4, 5])
        seqs = [e["seq"] for e in c1]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "c1: host sequence has a gap")
        r = self.site.runner("org.firelink.tests.stream-c")
        self.assertEqual((r["state"], r["restarts"], r["failures"]), ("running", 1, 1))
        self.assertNotEqual(r["pid"], first_pid)
        self.assertIn("SIGSEGV", r["last_failure"])
        # The other two never noticed: every event, in order, and no fault.
        for dev in ("a1", "b1"):
            n = self.assert_gap_free(dev)
            self.assertGreater(len(n), 1500)
            self.assertFalse([e for e in self.site.events(dev) if e["origin"] == "host"], dev)
        for pid in ("org.firelink.tests.stream-a", "org.firelink.tests.stream-b"):
            self.assertEqual((self.site.runner(pid)["restarts"], self.site.runner(pid)["failures"]), (0, 0))

    def test_HungRunnerIsKilled(self):
        """A driver stuck in a call: the heartbeat goes unanswered, the runner is killed, driver_hung, then back."""
        self.site = Site(self, device("a1", "a", rate=200) + device("c1", "c", rate=200),
                         runner="[runner]\nhang_ms = 500\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n")
        wait_for(lambda: len(samples(self.site.events("c1"))) > 20, "c1 streaming")
        status, body = self.site.command("c1", "hang")
        # Refused with a reason: the heartbeat (500 ms) usually finds the driver stuck before the call's own timeout
        # (1 s) ends it; on a loaded machine the timeout may come first.
        self.assertEqual(status, 409, body)
        self.assertRegex(body["detail"], "whether the device carried it out is unknown|did not take the command in time")
        hung = wait_for(lambda: host_made(self.site.events("c1"), "fault", "driver_hung"), "driver_hung")[0]
        self.assertIn("heartbeat", hung["event"]["message"])
        wait_for(lambda: host_made(self.site.events("c1"), "restore", "driver_hung"), "the restore")
        r = self.site.runner("org.firelink.tests.stream-c")
        self.assertEqual((r["state"], r["failures"]), ("running", 1))
        # While it was stuck, commands were refused with a reason, never queued for a dead driver.
        status, body = self.site.command("c1", "ping")
        self.assertEqual(status, 202, body)
        wait_for(lambda: [e for e in self.site.events("c1") if e["event"]["kind"] == "command_result"
                          and e["event"].get("ok")], "the ping's result")
        self.assert_gap_free("a1")

    def test_CrashLoopIsParked(self):
        """A plugin that crashes every time is parked after restart_limit failures, with an alarm, and left alone."""
        self.site = Site(self, device("a1", "a", rate=200) + device("c1", "c", rate=500, crash_at=20),
                         runner="[runner]\nrestart_limit = 3\nrestart_window_s = 60\n"
                                "backoff_initial_ms = 20\nbackoff_max_ms = 50\n")
        parked = wait_for(lambda: host_made(self.site.events("c1"), "alarm", "driver_parked"), "driver_parked")[0]
        self.assertEqual(parked["event"]["severity"], "critical")
        r = self.site.runner("org.firelink.tests.stream-c")
        self.assertEqual((r["state"], r["failures"], r["restarts"], r["pid"]), ("parked", 3, 2, -1))
        self.assertEqual(self.site.health()["status"], "degraded")
        # Each restart came up (a restore) and crashed again (a fault); nothing more once parked.
        self.assertEqual(len(host_made(self.site.events("c1"), "fault", "driver_crashed")), 3)
        self.assertEqual(len(host_made(self.site.events("c1"), "restore", "driver_crashed")), 2)
        count = len(self.site.events("c1"))
        time.sleep(1.0)
        self.assertEqual(len(self.site.events("c1")), count)
        self.assertEqual(self.site.runner("org.firelink.tests.stream-c")["failures"], 3)
        status, body = self.site.command("c1", "ping")
        self.assertEqual(status, 409, body)
        self.assertIn("no longer restarted", body["detail"])
        status, metrics = self.site.get("/metrics")
        self.assertIn('firelink_runner_parked{plugin="org.firelink.tests.stream-c"} 1', metrics)
        self.assertIn('firelink_runner_failures_total{plugin="org.firelink.tests.stream-c"} 3', metrics)
        self.assertIn('firelink_runner_up{plugin="org.firelink.tests.stream-a"} 1', metrics)
        self.assert_gap_free("a1")

    def test_CountersCrossTheBoundary(self):
        """A refused event and a slow call in a runner are answered there and counted here, as in process."""
        self.site = Site(self, device("b1", "b", rate=50))
        for name in ("bad", "slow", "ping"):
            status, body = self.site.command("b1", name)
            self.assertEqual(status, 202, body)
        def results():
            found = [e for e in self.site.events("b1") if e["event"]["kind"] == "command_result"]
            return found if len(found) == 3 else None
        results = wait_for(results, "three command results")
        self.assertTrue(all(e["event"]["ok"] for e in results), results)  # emit answered FL_INVALID_ARGUMENT
        b1 = self.site.devices()["b1"]
        self.assertEqual(b1["events_refused"], 1)
        self.assertGreaterEqual(b1["slow_callbacks"], 1)
        self.assertIn("device b1: refused an event (1 refused so far)", self.site.output())
        self.assertRegex(self.site.output(), r"device b1: command ran \d+ ms")
        self.assert_gap_free("b1")

    def test_InProcessOverride(self):
        """[plugins.isolation_of] keeps one plugin in the host process; the others still get runners."""
        self.site = Site(self, device("a1", "a", rate=200) + device("b1", "b", rate=200),
                         runner='isolation_of = { "org.firelink.tests.stream-a" = "in_process" }\n')
        wait_for(lambda: len(samples(self.site.events("a1"))) > 20 and len(samples(self.site.events("b1"))) > 20,
                 "both streaming")
        a = self.site.runner("org.firelink.tests.stream-a")
        b = self.site.runner("org.firelink.tests.stream-b")
        a.pop("signature")  # unsigned test plugins, [plugins] signatures = "warn" by default (host.signed.* tests it)
        self.assertEqual(a, {"id": "org.firelink.tests.stream-a", "isolation": "in_process"})
        self.assertEqual((b["isolation"], b["state"]), ("process", "running"))
        self.assert_gap_free("a1")
        self.assert_gap_free("b1")

    def test_LeastPrivilege(self):
        """A runner holds only its channel (and stdio), its limits, and no root; it still loads a plugin from a folder
        only the host's user can enter (it opens the file before it gives up its rights)."""
        private = tempfile.mkdtemp(prefix="firelink-iso-private-")  # 0700, the host's user's
        self.addCleanup(shutil.rmtree, private, True)
        shutil.copy(os.path.join(STREAMS, "stream_a.so"), private)
        self.site = Site(self, device("a1", "a", rate=100), plugin_dir=private,
                         runner="[runner]\nmemory_mb = 512\nopen_files = 64\n")
        pid = self.site.runner("org.firelink.tests.stream-a")["pid"]
        fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
        self.assertEqual(fds, [0, 1, 2, 3, 4, 5])  # stdio, the channel, the event rings, their bell
        self.assertTrue(os.readlink(f"/proc/{pid}/fd/3").startswith("socket:"))
        self.assertEqual(os.readlink(f"/proc/{pid}/fd/0"), "/dev/null")
        with open(f"/proc/{pid}/limits") as f:
            limits = f.read()
        self.assertRegex(limits, r"Max open files\s+64\s+64")
        self.assertRegex(limits, r"Max address space\s+536870912\s+536870912")
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        uid = int(status["Uid"].split()[1])
        self.assertEqual(status["NoNewPrivs"].strip(), "1")
        self.assertEqual(int(status["CapEff"], 16), 0)
        if os.geteuid() == 0:  # a uid of its own, from the default [runner] uid_range (tests/isolation/uids_e2e_test.py)
            self.assertTrue(61000 <= uid <= 61183, uid)
            self.assertEqual(self.site.runner("org.firelink.tests.stream-a")["uid"], uid)
        wait_for(lambda: len(samples(self.site.events("a1"))) > 5, "a1 streaming")
        self.assertEqual(self.site.runner("org.firelink.tests.stream-a")["state"], "running")
        self.assertIn(f"loaded from {private}/stream_a.so (in its own process)", self.site.output())

    def test_UnsafePluginFileRefused(self):
        """A plugin file others may write is refused before anything loads it; the rest of the site runs."""
        plugins = tempfile.mkdtemp(prefix="firelink-iso-plugins-")
        try:
            os.chmod(plugins, 0o755)
            for copy, mode in (("a", 0o644), ("b", 0o666)):
                dst = os.path.join(plugins, f"stream_{copy}.so")
                shutil.copy(os.path.join(STREAMS, f"stream_{copy}.so"), dst)
                os.chmod(dst, mode)
            self.site = Site(self, device("a1", "a", rate=100) + device("b1", "b", rate=100), plugin_dir=plugins)
            wait_for(lambda: len(samples(self.site.events("a1"))) > 5, "a1 streaming")
            out = self.site.output()
            self.assertIn("stream_b.so refused: load_failed: the plugin file is not safe to load", out)
            self.assertIn("writable by group or others", out)
            self.assertEqual([p["id"] for p in self.site.health()["plugins"]], ["org.firelink.tests.stream-a"])
            # Its device never ran: the only events are the host's, saying why (device_down).
            self.assertEqual([(e["origin"], e["event"]["code"]) for e in self.site.events("b1")],
                             [("host", "device_down")])
        finally:
            shutil.rmtree(plugins, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
