#!/usr/bin/env python3
"""`firelink-sim uitd` keeps calling the centre as a real UITD does: it calls until the centre is up, calls again when
the centre goes away, still calls after more than 10 s of refused attempts (it once gave up there), waits between
attempts as its backoff options say, and delivers its next fire alarm to the real firelink-host once the centre is
back. With --connect-attempts it gives up after that many failed attempts in a row.

Usage (ctest passes these): uitd_reconnect_test.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR [unittest args]
"""
import os
import time
import unittest

import firelink_e2e
from firelink_e2e.gb26875 import component_alarm

HOST, SIM, PLUGINS = firelink_e2e.take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "PLUGIN_DIR")

IDENTITY = "000000000379"
BACKOFF_MS, BACKOFF_MAX_MS = 100, 800


class Reconnect(unittest.TestCase):
    def centre(self, work, listen):
        os.makedirs(work, exist_ok=True)
        body = (f'[[listener]]\nid = "centre"\nlisten = "127.0.0.1:{listen}"\n\n'
                f'[[device]]\nid = "panel-1"\ndriver = "gb26875-uitd"\nclass = "fire_panel"\nheartbeat_s = 0\n'
                f'wire = {{ listener = "centre", identity = "{IDENTITY}" }}\n')
        site = firelink_e2e.Site(HOST, PLUGINS, body, work)
        self.addCleanup(site.close)
        return site.start()

    def check_backoff(self, failed):
        """Each wait is drawn from the upper half of BACKOFF_MS doubling per attempt, capped at BACKOFF_MAX_MS."""
        for f in failed:
            if "retry_ms" in f:
                ceiling = min(BACKOFF_MAX_MS, BACKOFF_MS * 2 ** (f["attempt"] - 1))
                self.assertTrue(ceiling // 2 <= f["retry_ms"] <= ceiling, f)

    def test_calls_for_as_long_as_it_takes_and_delivers_once_the_centre_is_back(self):
        work = firelink_e2e.new_workdir(self)
        listen = firelink_e2e.free_port()
        uitd = firelink_e2e.Uitd(SIM, work, "--connect", f"127.0.0.1:{listen}", "--reconnect", "--stdin",
                    "--backoff-ms", str(BACKOFF_MS), "--backoff-max-ms", str(BACKOFF_MAX_MS))
        self.addCleanup(uitd.close)

        # No centre yet: refused attempts, numbered, each logged.
        firelink_e2e.wait_for(lambda: len(uitd.events("connect_failed")) >= 3, "three refused attempts")
        self.assertEqual([f["attempt"] for f in uitd.events("connect_failed")[:3]], [1, 2, 3])
        self.assertIn("attempt 3); next attempt in", uitd.log())

        first = self.centre(os.path.join(work, "first"), listen)
        firelink_e2e.wait_for(lambda: uitd.events("connected"), "the UITD to call in")
        uitd.step("fire loop=1 point=1")
        first.wait_event("the first fire alarm", lambda r: r["event"].get("event_id") == component_alarm(1, 1))

        # The centre goes away for longer than the 10 s after which the simulator used to give up.
        mark = len(uitd.events())
        first.stop()
        firelink_e2e.wait_for(lambda: uitd.events("disconnected"), "the UITD to see the centre go")
        down = time.monotonic()
        time.sleep(11)
        at_11_s = len(uitd.events("connect_failed"))
        firelink_e2e.wait_for(lambda: len(uitd.events("connect_failed")) > at_11_s, "an attempt after 11 s down")
        self.assertIsNone(uitd.proc.poll(), "the UITD gave up:\n" + uitd.log())
        # The centre had answered, so the count starts again.
        outage = [e for e in uitd.events()[mark:] if e["event"] == "connect_failed"]
        self.assertEqual([f["attempt"] for f in outage], list(range(1, len(outage) + 1)), "numbered per outage")
        self.check_backoff(uitd.events("connect_failed"))
        self.assertGreater(time.monotonic() - down, 10)

        uitd.step("fire loop=1 point=2")
        second = self.centre(os.path.join(work, "second"), listen)
        second.wait_event("the fire alarm sent after the outage",
                          lambda r: r["event"].get("event_id") == component_alarm(1, 2))
        self.assertIn("connected to 127.0.0.1:%d at attempt" % listen, uitd.log())

    def test_connect_attempts_limits_the_attempts(self):
        work = firelink_e2e.new_workdir(self)
        uitd = firelink_e2e.Uitd(SIM, work, "--connect", f"127.0.0.1:{firelink_e2e.free_port()}", "--connect-attempts", "3",
                    "--backoff-ms", "50", "--backoff-max-ms", "100")
        self.addCleanup(uitd.close)
        self.assertEqual(uitd.proc.wait(timeout=firelink_e2e.DEADLINE), 1)
        failed = uitd.events("connect_failed")
        self.assertEqual([f["attempt"] for f in failed], [1, 2, 3])
        self.assertEqual(["retry_ms" in f for f in failed], [True, True, False], "no wait after the last")
        log = uitd.log()
        for n in (1, 2):
            self.assertIn(f"(attempt {n} of 3); next attempt in", log)
        self.assertIn("(attempt 3 of 3); giving up", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
