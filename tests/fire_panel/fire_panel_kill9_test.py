#!/usr/bin/env python3
"""A confirmed UITD frame is never lost: firelink-host with the uplink to firelink-receiver, the fire_panel driver,
and `firelink-sim uitd --reconnect` sending a stream of fire alarm and fault frames, each on a component of its own.
The host is killed with SIGKILL at KILLS random moments and started again each time; the simulator logs every frame
the centre confirmed (--confirmed-log). At the end the host runs once more until its queue is drained, and every
confirmed frame's event must be at the receiver: a UITD never sends a confirmed frame again, so a frame confirmed
before its event was committed is an alarm lost for good (FL-PLUGIN-35).

The driver built to confirm on FL_OK (conformance/broken, fire_panel_confirms_on_ok) fails this test: give its folder
as PLUGIN_DIR.

Usage (ctest passes these): fire_panel_kill9_test.py FIRELINK_HOST FIRELINK_SIM FIRELINK_RECEIVER PLUGIN_DIR
                                                     [unittest args]
"""
import json
import os
import random
import subprocess
import sys
import time
import unittest

import firelink_e2e

HOST, SIM, RECEIVER, PLUGINS = firelink_e2e.take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "FIRELINK_RECEIVER",
                                                            "PLUGIN_DIR")

KILLS = int(os.environ.get("FIRELINK_KILLS", "50"))
FRAMES = 100000  # more than the run sends: the stream lasts until the simulator is stopped
IDENTITY = "000000000379"


def expected_event(step):
    """The event id a confirmed frame's event carries: each step raises a condition on a component of its own."""
    verb, arg = step.split()
    addr = int(arg.split("=")[1])
    code = {"fire": "fire_alarm", "fault": "fault"}[verb]
    return f"{code}@c1.1.{addr:08x}"


class KillNine(unittest.TestCase):
    def setUp(self):
        self.work = firelink_e2e.new_workdir(self)
        self.receiver = firelink_e2e.Receiver(RECEIVER, self.work).start()
        self.addCleanup(self.receiver.close)

    def site(self, isolation):
        listen = firelink_e2e.free_port()
        body = (f'[uplink]\nurl = "{self.receiver.url()}"\nqueue_path = "queue.db"\nbackoff_max_s = 1\n'
                f'reserve_mb = 0\n\n'
                f'[[listener]]\nid = "centre"\nlisten = "127.0.0.1:{listen}"\n\n'
                f'[[device]]\nid = "panel-1"\ndriver = "gb26875-uitd"\nclass = "fire_panel"\nheartbeat_s = 0\n'
                f'wire = {{ listener = "centre", identity = "{IDENTITY}" }}\n')
        site = firelink_e2e.Site(HOST, PLUGINS, body, self.work, plugins=f'isolation = "{isolation}"\n')
        self.addCleanup(site.close)
        return site, listen

    def uitd(self, listen):
        """The simulated UITD: bursts of 5 frames every 10 ms; a frame not confirmed in 500 ms is sent again."""
        steps = []
        for i in range(1, FRAMES + 1):
            steps.append(f"fault addr={i}" if i % 5 == 0 else f"fire addr={i}")
            if i % 5 == 0:
                steps.append("wait 10")
        scenario = os.path.join(self.work, "stream.txt")
        with open(scenario, "w") as f:
            f.write("\n".join(steps) + "\n")
        self.confirmed_log = os.path.join(self.work, "confirmed.jsonl")
        out = open(os.path.join(self.work, "uitd.log"), "w")
        self.addCleanup(out.close)
        sim = subprocess.Popen([SIM, "uitd", "--connect", f"127.0.0.1:{listen}", "--address", "0x0379",
                                "--heartbeat-s", "1", "--confirm-timeout-ms", "500", "--tries", "100000",
                                "--reconnect", "--scenario", scenario, "--confirmed-log", self.confirmed_log],
                               stdout=out, stderr=subprocess.STDOUT)

        def stop():
            if sim.poll() is None:
                sim.terminate()
                sim.wait(timeout=firelink_e2e.DEADLINE)
        self.addCleanup(stop)
        return sim, stop

    def confirmed_steps(self):
        if not os.path.exists(self.confirmed_log):
            return []
        with open(self.confirmed_log) as f:
            lines = [json.loads(l) for l in f if l.endswith("\n")]
        return [l for l in lines if l["step"].split()[0] in ("fire", "fault")]

    def drained(self, site):
        got = site.get("/api/uplink")
        if not got or got[0] != 200:
            return False
        u = json.loads(got[1])
        return u["pending"] == 0 and all(l["depth"] == 0 for l in u["lanes"].values())

    def run_kills(self, isolation):
        site, listen = self.site(isolation)
        site.start()
        sim, stop_sim = self.uitd(listen)
        rng = random.Random(int(os.environ.get("FIRELINK_SEED", "0")) or None)
        t0 = time.monotonic()
        confirmed_at_kill = []
        for k in range(KILLS):
            # Traffic first: the UITD has called in again and the driver is confirming.
            before = len(self.confirmed_steps())
            firelink_e2e.wait_for(lambda: len(self.confirmed_steps()) > before, f"confirms after start {k + 1}")
            time.sleep(rng.uniform(0.05, 0.6))
            site.kill9()
            confirmed_at_kill.append(len(self.confirmed_steps()))
            self.assertIsNone(sim.poll(), "the simulator ended")
            site.start()
        firelink_e2e.wait_for(lambda: len(self.confirmed_steps()) > confirmed_at_kill[-1], "confirms after the last start")
        stop_sim()
        firelink_e2e.wait_for(lambda: self.drained(site), "the queue to drain to the receiver", timeout=60)
        took = time.monotonic() - t0
        site.stop()

        at_receiver = {r["event_id"] for r in self.receiver.rows("device = ? AND event_id IS NOT NULL", ("panel-1",))}
        confirmed = self.confirmed_steps()
        missing = [c for c in confirmed if expected_event(c["step"]) not in at_receiver]
        print(f"\n{isolation}: {KILLS} kills in {took:.1f} s; {len(confirmed)} frames confirmed, "
              f"{len(at_receiver)} conditions at the receiver; {len(missing)} confirmed frames lost", file=sys.stderr)
        if missing:
            # Which kills lost them: the confirm log is in order, so a frame's index says after how many kills.
            index = {id(c): i for i, c in enumerate(confirmed)}
            per_kill = {}
            for c in missing:
                k = next((k for k, n in enumerate(confirmed_at_kill) if index[id(c)] < n), len(confirmed_at_kill))
                per_kill[k + 1] = per_kill.get(k + 1, 0) + 1
            print(f"lost per kill: {dict(sorted(per_kill.items()))}", file=sys.stderr)
        self.assertGreater(len(confirmed), KILLS, "the stream hardly ran")
        if missing:
            self.fail(f"{len(missing)} frames the UITD saw confirmed never reached the platform: "
                      f"{[c['step'] for c in missing[:10]]}")

    def test_in_process(self):
        self.run_kills("in_process")

    def test_out_of_process(self):
        self.run_kills("process")


if __name__ == "__main__":
    unittest.main(verbosity=2)
