#!/usr/bin/env python3
"""pyrolysis_detector end to end: firelink-host run with the modbus-pyrolysis plugin against firelink-sim pyrolysis,
several detectors on one RS-485 bus (a socat pty pair), and one over Modbus TCP.

Usage (ctest passes these): pyrolysis_test.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR [unittest args]
"""
import unittest

from firelink_e2e import Sim, Site, driver_events, new_workdir, serial_sim, take_arguments, value_of, wait_for

HOST, SIM, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "PLUGIN_DIR")

CONFIG = 'poll_ms = 50, debounce = 2, telemetry_ms = 0, command_timeout_ms = 1500'


class PyrolysisBus(unittest.TestCase):
    def setUp(self):
        d, pty, self.sim = serial_sim(self, SIM, "pyrolysis", "--units", "1-2")
        body = f'[[bus]]\nid = "bus"\nkind = "rs485"\npath = "{pty.host_end}"\nrequest_timeout_ms = 200\n\n'
        for u in (1, 2):
            body += (f'[[device]]\nid = "pd-{u}"\ndriver = "modbus-pyrolysis"\nclass = "pyrolysis_detector"\n'
                     f'wire = {{ bus = "bus", unit = {u} }}\nconfig = {{ {CONFIG} }}\n\n')
        self.s = Site(HOST, PLUGINS, body, d)
        self.addCleanup(self.s.close)
        self.s.start()
        wait_for(lambda: all(self.s.devices()[f"pd-{u}"]["wire"]["bytes_in"] > 0 for u in (1, 2)), "replies")

    def result(self, cid):
        return self.s.wait_driver_event(cid, lambda e: e.get("command_id") == cid)

    def test_pre_alarm_then_latching_alarm_until_a_confirmed_reset(self):
        s, sim = self.s, self.sim
        sim.do("@1 level 350")
        pre = s.wait_event("pre-alarm", lambda r: r["event"]["kind"] == "pre_alarm")
        self.assertEqual(pre["device"], "pd-1")
        self.assertEqual(pre["event"]["code"], "pyrolysis_pre_alarm")
        self.assertEqual(value_of(pre["event"], "particle_level"), 350)
        sim.do("@1 level 700")
        al = s.wait_driver_event("alarm", lambda e: e["code"] == "pyrolysis_alarm")
        self.assertEqual(al["kind"], "alarm")
        # The level falls: the pre-alarm ends, the alarm stays latched.
        sim.do("@1 level 50")
        s.wait_driver_event("pre-alarm restore", lambda e: e.get("ends") == pre["event"]["event_id"])
        n = s.devices()["pd-1"]["wire"]["bytes_in"]
        wait_for(lambda: s.devices()["pd-1"]["wire"]["bytes_in"] > n + 50, "several polls")
        self.assertEqual(driver_events(s, "pd-1", "restore", "pyrolysis_alarm"), [], "latched until reset")
        self.assertEqual(s.command("pd-1", "reset", cid="r1")[0], 202)
        self.assertTrue(self.result("r1")["ok"])
        rs = driver_events(s, "pd-1", "restore", "pyrolysis_alarm")
        self.assertEqual([r["ends"] for r in rs], [al["event_id"]])
        codes = [r["event"].get("code") for r in s.events("pd-1")]
        self.assertLess(max(i for i, c in enumerate(codes) if c == "pyrolysis_alarm"), codes.index("command_succeeded"))
        self.assertEqual(driver_events(s, "pd-2"), [], "the other detector saw nothing")

    def test_reset_fails_while_the_level_is_still_high(self):
        s = self.s
        self.sim.do("@2 level 800")
        s.wait_driver_event("alarm", lambda e: e["code"] == "pyrolysis_alarm")
        self.assertEqual(s.command("pd-2", "reset", cid="r2")[0], 202)
        r = self.result("r2")
        self.assertFalse(r["ok"])
        self.assertIn("latch is still set", r["message"])
        self.assertEqual(driver_events(s, "pd-2", "restore", "pyrolysis_alarm"), [])

    def test_wire_break_and_short_are_faults_with_restores(self):
        s = self.s
        self.sim.do("@1 wire-break on")
        f = s.wait_driver_event("wire break", lambda e: e["code"] == "sensor_wire_break")
        self.assertEqual(f["kind"], "fault")
        self.sim.do("@1 wire-break off")
        self.sim.do("@1 wire-short on")
        s.wait_driver_event("wire short", lambda e: e["code"] == "sensor_wire_short")
        self.sim.do("@1 wire-short off")
        s.wait_event("restores", lambda r: len(driver_events(s, "pd-1", "restore")) == 2)
        self.assertEqual(len(driver_events(s, "pd-1", "fault")), 2)


class PyrolysisTcp(unittest.TestCase):
    def test_self_test_over_tcp_and_telemetry(self):
        d = new_workdir(self)
        sim = Sim(SIM, "pyrolysis", "--listen", "127.0.0.1:0")
        self.addCleanup(sim.close)
        s = Site(HOST, PLUGINS, f'''[[device]]
id = "pd-t"
driver = "modbus-pyrolysis"
class = "pyrolysis_detector"
wire = {{ tcp = "127.0.0.1:{sim.port}" }}
config = {{ poll_ms = 50, telemetry_ms = 100 }}
''', d)
        self.addCleanup(s.close)
        s.start()
        t = s.wait_driver_event("telemetry", lambda e: e["kind"] == "telemetry")
        self.assertEqual(value_of(t, "particle_level"), 20)
        self.assertEqual(s.command("pd-t", "self_test", cid="st")[0], 202)
        self.assertTrue(s.wait_driver_event("st", lambda e: e.get("command_id") == "st")["ok"])


if __name__ == "__main__":
    unittest.main()
