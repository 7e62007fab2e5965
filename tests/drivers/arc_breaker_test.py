#!/usr/bin/env python3
"""arc_fault_breaker end to end: firelink-host run with the modbus-arc-breaker plugin against firelink-sim
arc-breaker over Modbus TCP on loopback, and over RTU on a serial line (a socat pty pair).

Usage (ctest passes these): arc_breaker_test.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR [unittest args]
"""
import unittest

from firelink_e2e import Site, driver_events, serial_sim, take_arguments, tcp_sim, value_of, wait_for

HOST, SIM, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "PLUGIN_DIR")

CONFIG = 'poll_ms = 50, debounce = 2, telemetry_ms = 0, reply_timeout_ms = 300, command_timeout_ms = 1500'


class ArcBreaker(unittest.TestCase):
    def setUp(self):
        self.dir, self.sim = tcp_sim(self, SIM, "arc-breaker")
        self.s = Site(HOST, PLUGINS, f'''[[device]]
id = "brk-1"
driver = "modbus-arc-breaker"
class = "arc_fault_breaker"
wire = {{ tcp = "127.0.0.1:{self.sim.port}", unit = 1 }}
config = {{ {CONFIG} }}
''', self.dir)
        self.addCleanup(self.s.close)
        self.s.start().wait_first_reply("brk-1")

    def result(self, cid):
        return self.s.wait_driver_event(cid, lambda e: e.get("command_id") == cid)

    def test_arc_fault_trips_alarms_once_and_restores_after_reset(self):
        s = self.s
        self.sim.do("arc-fault")
        a = s.wait_driver_event("arc_fault", lambda e: e["code"] == "arc_fault")
        self.assertEqual(a["kind"], "alarm")
        self.assertEqual(value_of(a, "arc_fault_count"), 1)
        s.wait_driver_event("breaker_tripped", lambda e: e["code"] == "breaker_tripped")
        # Nobody closes onto an open arc-fault alarm: the host's interlock refuses it before the breaker sees it
        # (the breaker itself would refuse too, "reset first", by read-back).
        status, answer = s.command("brk-1", "close", cid="c1")
        self.assertEqual((status, answer["reason"]), (409, "interlocked"), answer)
        self.assertEqual(s.command("brk-1", "reset", cid="r1")[0], 202)
        self.assertTrue(self.result("r1")["ok"])
        s.wait_driver_event("the restore", lambda e: e.get("ends") == a["event_id"])
        self.assertEqual(s.command("brk-1", "close", cid="c2")[0], 202)
        self.assertTrue(self.result("c2")["ok"])
        self.assertEqual(s.stop(), 0)
        self.assertEqual(len(driver_events(s, "brk-1", "alarm", "arc_fault")), 1)
        self.assertEqual(len(driver_events(s, "brk-1", "restore", "arc_fault")), 1)
        self.assertEqual(len(driver_events(s, "brk-1", "status", "breaker_tripped")), 1)
        self.assertEqual(len(driver_events(s, "brk-1", "status", "breaker_closed")), 1)

    def test_residual_current_pre_alarm_alarm_and_restores(self):
        s = self.s
        self.sim.do("residual 250")
        pre = s.wait_driver_event("pre_alarm", lambda e: e["kind"] == "pre_alarm")
        self.assertEqual(pre["code"], "residual_current_high")
        self.assertEqual(value_of(pre, "residual_current"), 250.0)
        self.sim.do("residual 312")
        al = s.wait_driver_event("alarm", lambda e: e["kind"] == "alarm")
        self.assertEqual(al["code"], "residual_current_high")
        self.assertEqual([v.get("unit") for v in al["values"]], ["mA"])
        # 290 is inside the alarm's hysteresis band: nothing changes.
        self.sim.do("residual 290")
        n = s.devices()["brk-1"]["wire"]["bytes_in"]
        wait_for(lambda: s.devices()["brk-1"]["wire"]["bytes_in"] > n + 100, "several polls at 290")
        self.assertEqual(driver_events(s, "brk-1", "restore"), [])
        self.sim.do("residual 5")
        s.wait_event("both restores", lambda r: len(driver_events(s, "brk-1", "restore")) == 2)
        self.assertEqual(s.stop(), 0)
        ids = sorted(e["event_id"] for e in driver_events(s, "brk-1") if e["kind"] in ("alarm", "pre_alarm"))
        self.assertEqual(sorted(e["ends"] for e in driver_events(s, "brk-1", "restore")), ids)

    def test_temperature_and_voltage(self):
        s = self.s
        self.sim.do("temp 2 85")
        s.wait_driver_event("over_temperature alarm", lambda e: e["code"] == "over_temperature" and e["kind"] == "alarm")
        self.sim.do("voltage 170")
        uv = s.wait_driver_event("under_voltage", lambda e: e["code"] == "under_voltage")
        self.assertAlmostEqual(value_of(uv, "voltage"), 170.0, places=3)
        self.sim.do("temp 2 30")
        self.sim.do("voltage 230")
        s.wait_event("restores", lambda r: len(driver_events(s, "brk-1", "restore")) == 3)
        self.assertEqual(s.stop(), 0)
        temps = driver_events(s, "brk-1", None, "over_temperature")
        self.assertEqual(sorted(e["kind"] for e in temps), ["alarm", "pre_alarm", "restore", "restore"])
        self.assertEqual(value_of(temps[0], "temperature_2"), 85.0)

    def test_trip_confirmed_and_stuck_breaker_fails(self):
        s = self.s
        self.sim.do("stuck on")
        self.assertEqual(s.command("brk-1", "trip", cid="t1")[0], 202)
        r = self.result("t1")
        self.assertFalse(r["ok"])
        self.assertIn("the breaker reads closed", r["message"])
        self.sim.do("stuck off")
        self.assertEqual(s.command("brk-1", "trip", cid="t2")[0], 202)
        self.assertTrue(self.result("t2")["ok"])
        self.assertEqual(s.command("brk-1", "self_test", cid="st")[0], 202)
        self.assertTrue(self.result("st")["ok"])
        self.assertEqual(s.command("brk-1", "explode")[0], 422)


class ArcBreakerRtuSerial(unittest.TestCase):
    def test_rtu_on_a_point_to_point_serial_line(self):
        d, pty, sim = serial_sim(self, SIM, "arc-breaker", "--units", "7")
        s = Site(HOST, PLUGINS, f'''[[bus]]
id = "com1"
kind = "serial"
path = "{pty.host_end}"

[[device]]
id = "brk-7"
driver = "modbus-arc-breaker"
class = "arc_fault_breaker"
wire = {{ bus = "com1", unit = 7 }}
config = {{ {CONFIG} }}
''', d)
        self.addCleanup(s.close)
        s.start()
        sim.do("arc-fault")
        s.wait_driver_event("arc_fault", lambda e: e["code"] == "arc_fault")
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()
