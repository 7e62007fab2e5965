#!/usr/bin/env python3
"""gas_shutoff_valve end to end: firelink-host run with the modbus-gas-valve plugin against firelink-sim gas-valve,
over Modbus TCP on loopback and over Modbus RTU on a shared RS-485 bus (a socat pty pair).

Usage (ctest passes these): gas_valve_test.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR [unittest args]
"""
import unittest

from firelink_e2e import Site, driver_events, serial_sim, take_arguments, tcp_sim, value_of, wait_for

HOST, SIM, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "PLUGIN_DIR")

FAST = 'poll_ms = 50, debounce = 2, telemetry_ms = 0, reply_timeout_ms = 300, command_timeout_ms = 1500'


def tcp_device(dev_id, port, extra="", heartbeat=None):
    hb = f"heartbeat_s = {heartbeat}\n" if heartbeat else ""
    return (f'[[device]]\nid = "{dev_id}"\ndriver = "modbus-gas-valve"\nclass = "gas_shutoff_valve"\n{hb}'
            f'wire = {{ tcp = "127.0.0.1:{port}", unit = 1 }}\nconfig = {{ {FAST}{extra} }}\n\n')


class GasValveTcp(unittest.TestCase):
    def setUp(self):
        self.dir, self.sim = tcp_sim(self, SIM, "gas-valve")

    def site(self, body):
        s = Site(HOST, PLUGINS, body, self.dir)
        self.addCleanup(s.close)
        return s.start()

    def started(self, s, dev="gas-1"):
        s.wait_first_reply(dev)

    def test_levels_alarm_once_each_with_values_and_restore_once_each(self):
        s = self.site(tcp_device("gas-1", self.sim.port))
        self.started(s)
        self.sim.do("gas 30")
        l1 = s.wait_driver_event("gas_level_1", lambda e: e["code"] == "gas_level_1")
        self.assertEqual(l1["kind"], "alarm")
        self.assertEqual(l1["severity"], "major")
        self.assertAlmostEqual(value_of(l1, "gas_concentration"), 30.0, places=3)
        self.sim.do("gas 60")
        l2 = s.wait_driver_event("gas_level_2", lambda e: e["code"] == "gas_level_2")
        self.assertEqual(l2["kind"], "alarm")
        self.assertNotIn("severity", l2)  # the alarm's default: critical
        self.assertAlmostEqual(value_of(l2, "gas_concentration"), 60.0, places=3)
        self.sim.do("gas 0")
        s.wait_event("both restores", lambda r: len(driver_events(s, "gas-1", "restore")) == 2)
        self.assertEqual(s.stop(), 0, s.output())
        alarms = driver_events(s, "gas-1", "alarm")
        restores = driver_events(s, "gas-1", "restore")
        self.assertEqual([a["code"] for a in alarms], ["gas_level_1", "gas_level_2"])
        self.assertEqual(sorted(r["ends"] for r in restores), sorted(a["event_id"] for a in alarms))
        self.assertEqual(sorted(r["code"] for r in restores), ["gas_level_1", "gas_level_2"])

    def test_hysteresis_holds_a_wobbling_level(self):
        s = self.site(tcp_device("gas-1", self.sim.port))
        self.started(s)
        self.sim.do("gas 26")
        s.wait_driver_event("gas_level_1", lambda e: e["code"] == "gas_level_1")
        # Inside the band [25 - 2, 25): neither clears nor raises again, however long it wobbles.
        for level in ("24", "25.5", "23.5", "26", "24.2", "25", "23.1"):
            self.sim.do("gas " + level)
            n = s.devices()["gas-1"]["wire"]["bytes_in"]
            wait_for(lambda: s.devices()["gas-1"]["wire"]["bytes_in"] >= n + 26, "a few polls at " + level)
        self.assertEqual(len(driver_events(s, "gas-1", "alarm", "gas_level_1")), 1)
        self.assertEqual(driver_events(s, "gas-1", "restore"), [])
        self.sim.do("gas 22")
        s.wait_driver_event("the restore", lambda e: e["kind"] == "restore")
        self.assertEqual(s.stop(), 0)
        self.assertEqual(len(driver_events(s, "gas-1", "alarm")), 1)
        self.assertEqual(len(driver_events(s, "gas-1", "restore")), 1)

    def test_close_valve_is_confirmed_by_read_back(self):
        s = self.site(tcp_device("gas-1", self.sim.port))
        self.started(s)
        status, answer = s.command("gas-1", "close_valve", cid="op-close")
        self.assertEqual(status, 202, answer)
        res = s.wait_driver_event("the result", lambda e: e.get("command_id") == "op-close")
        self.assertTrue(res["ok"], res)
        self.assertIn("closed", res["message"])
        closed = driver_events(s, "gas-1", "status", "valve_closed")
        self.assertEqual(len(closed), 1)
        codes = [r["event"]["code"] for r in s.events("gas-1")]
        self.assertLess(codes.index("valve_closed"), codes.index("command_succeeded"))

    def test_a_stuck_valve_yields_a_failed_result_not_a_false_success(self):
        s = self.site(tcp_device("gas-1", self.sim.port))
        self.started(s)
        self.sim.do("stuck on")
        status, _ = s.command("gas-1", "close_valve", cid="op-stuck")
        self.assertEqual(status, 202)
        res = s.wait_driver_event("the result", lambda e: e.get("command_id") == "op-stuck")
        self.assertFalse(res["ok"])
        self.assertEqual(res["code"], "command_failed")
        self.assertIn("not confirmed within 1500 ms", res["message"])
        self.assertIn("the valve reads open", res["message"])
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_closed"), [])

    def test_open_valve_needs_an_operator_confirmation(self):
        s = self.site(tcp_device("gas-1", self.sim.port))
        self.started(s)
        self.sim.do("valve closed")
        s.wait_driver_event("valve_closed", lambda e: e["code"] == "valve_closed")
        status, answer = s.command("gas-1", "open_valve", cid="op-open-1")
        self.assertEqual(status, 422, answer)
        res = s.wait_driver_event("the refusal", lambda e: e.get("command_id") == "op-open-1")
        self.assertFalse(res["ok"])
        self.assertIn("operator_confirmed", s.output())
        status, answer = s.command("gas-1", "open_valve", {"operator_confirmed": True}, cid="op-open-2")
        self.assertEqual(status, 422, "a confirmation must name its operator")
        status, answer = s.command("gas-1", "open_valve", {"operator_confirmed": True, "operator": "duty officer Li"},
                                   cid="op-open-3")
        self.assertEqual(status, 202, answer)
        res = s.wait_driver_event("the result", lambda e: e.get("command_id") == "op-open-3")
        self.assertTrue(res["ok"], res)
        self.assertEqual(len(driver_events(s, "gas-1", "status", "valve_opened")), 1)

    def test_open_valve_is_refused_while_gas_is_present(self):
        s = self.site(tcp_device("gas-1", self.sim.port))
        self.started(s)
        self.sim.do("valve closed")
        self.sim.do("gas 40")
        s.wait_driver_event("gas_level_1", lambda e: e["code"] == "gas_level_1")
        # The host's interlock refuses it before the driver (which would refuse too: "a gas alarm is active").
        status, answer = s.command("gas-1", "open_valve", {"operator_confirmed": True, "operator": "x"}, cid="op-o")
        self.assertEqual((status, answer["reason"]), (409, "interlocked"), answer)
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_opened"), [])

    def fault_then_restore(self, sim_switch, code):
        """The simulator's `sim_switch` on raises the driver's fault `code`, once; off, its restore."""
        s = self.site(tcp_device("gas-1", self.sim.port))
        self.started(s)
        self.sim.do(f"{sim_switch} on")
        f = s.wait_driver_event(code, lambda e: e["code"] == code)
        self.assertEqual(f["kind"], "fault")
        self.sim.do(f"{sim_switch} off")
        s.wait_driver_event("its restore", lambda e: e.get("ends") == f["event_id"])
        self.assertEqual(len(driver_events(s, "gas-1", "fault", code)), 1)

    def test_sensor_fault_and_restore(self):
        self.fault_then_restore("sensor-fault", "sensor_fault")

    def test_self_test_passes_and_fails_by_what_the_device_reports(self):
        s = self.site(tcp_device("gas-1", self.sim.port))
        self.started(s)
        self.assertEqual(s.command("gas-1", "self_test", cid="st-1")[0], 202)
        self.assertTrue(s.wait_driver_event("st-1", lambda e: e.get("command_id") == "st-1")["ok"])
        self.sim.do("self-test-fail on")
        self.assertEqual(s.command("gas-1", "self_test", cid="st-2")[0], 202)
        res = s.wait_driver_event("st-2", lambda e: e.get("command_id") == "st-2")
        self.assertFalse(res["ok"])
        self.assertIn("self-test failed", res["message"])

    def test_garbage_answers_raise_a_communication_fault_then_restore(self):
        self.fault_then_restore("garbage", "communication_fault")

    def test_silence_is_left_to_the_host_liveness(self):
        s = self.site(tcp_device("gas-1", self.sim.port, heartbeat=1))
        self.started(s)
        self.sim.do("silent on")
        off = s.wait_event("offline", lambda r: r["event"]["kind"] == "offline")
        self.assertEqual(off["origin"], "host")
        self.sim.do("silent off")
        s.wait_driver_event("back online", lambda e: e.get("ends") == off["event"]["event_id"])
        self.assertEqual([e for e in driver_events(s, "gas-1", "fault")], [], "no driver fault for plain silence")

    def test_an_inconsistent_register_map_is_refused_with_a_clear_error(self):
        bad = (', registers = { gas_concentration = { table = "input", address = 0, scale = 0.1, unit = "%LEL" }, '
               'sensor_status = { table = "input", address = 0, bits = { sensor_fault = 0 } }, '
               'valve_position = { table = "input", address = 2, values = { open = 1, closed = 2 } }, '
               'valve_command = { table = "input", address = 0, values = { close = 1, open = 2 } } }')
        s = self.site(tcp_device("gas-1", self.sim.port, bad))
        self.assertEqual(s.stop(), 0)
        out = s.output()
        self.assertIn("valve_command", out)
        self.assertIn("must be a holding register", out)
        # Not created, so the driver emitted nothing; the host said why, once (device_down, docs/events.md).
        events = s.events("gas-1")
        self.assertEqual([(e["origin"], e["event"]["code"]) for e in events], [("host", "device_down")], events)
        self.assertIn("must be a holding register", events[0]["event"]["message"])


class GasValveRs485(unittest.TestCase):
    """Several valves on one RS-485 bus (one simulator serving units 1-3), and a dead unit 4."""

    def test_shared_bus_alarms_and_a_dead_device_costs_only_its_timeout(self):
        d, pty, sim = serial_sim(self, SIM, "gas-valve", "--units", "1-3")
        body = (f'[[bus]]\nid = "rs485-1"\nkind = "rs485"\npath = "{pty.host_end}"\nbaud = 9600\n'
                f'request_timeout_ms = 150\ninter_frame_gap_ms = 2\n\n')
        for unit in (1, 2, 3, 4):
            body += (f'[[device]]\nid = "gas-{unit}"\ndriver = "modbus-gas-valve"\nclass = "gas_shutoff_valve"\n'
                     f'heartbeat_s = 2\nwire = {{ bus = "rs485-1", unit = {unit} }}\n'
                     f'config = {{ poll_ms = 50, debounce = 2, telemetry_ms = 0, command_timeout_ms = 3000 }}\n\n')
        s = Site(HOST, PLUGINS, body, d)
        self.addCleanup(s.close)
        s.start()
        wait_for(lambda: all(s.devices()[f"gas-{u}"]["wire"]["bytes_in"] > 0 for u in (1, 2, 3)), "replies")
        sim.do("@2 gas 60")
        a = s.wait_event("unit 2's alarms", lambda r: r["device"] == "gas-2" and r["event"]["code"] == "gas_level_2")
        self.assertAlmostEqual(value_of(a["event"], "gas_concentration"), 60.0, places=3)
        self.assertEqual(s.command("gas-3", "close_valve", cid="c3")[0], 202)
        self.assertTrue(s.wait_driver_event("c3", lambda e: e.get("command_id") == "c3")["ok"])
        s.wait_event("the dead unit offline", lambda r: r["device"] == "gas-4" and r["event"]["kind"] == "offline")
        # Round-robin: while the dead unit times out turn after turn, every live unit gets its turns in between, so
        # each dead turn delays the others by one timeout, never more.
        before = s.devices()
        wait_for(lambda: s.devices()["gas-4"]["wire"]["reply_timeouts"] >= before["gas-4"]["wire"]["reply_timeouts"] + 8,
                 "eight more timeouts of the dead unit")
        after = s.devices()
        dead = after["gas-4"]["wire"]["reply_timeouts"] - before["gas-4"]["wire"]["reply_timeouts"]
        for u in (1, 2, 3):
            turns = (after[f"gas-{u}"]["wire"]["bytes_out"] - before[f"gas-{u}"]["wire"]["bytes_out"]) // 8
            self.assertGreaterEqual(turns, dead - 1, f"gas-{u} polled {turns} times across {dead} dead turns")
            self.assertEqual(after[f"gas-{u}"]["wire"]["reply_timeouts"], 0, f"gas-{u} never timed out")
            self.assertEqual(after[f"gas-{u}"]["state"], "started")
        self.assertEqual(s.stop(), 0)
        for u in (1, 3):
            self.assertEqual(driver_events(s, f"gas-{u}", "alarm"), [], "only unit 2 had gas")
        self.assertEqual(len(driver_events(s, "gas-2", "alarm", "gas_level_2")), 1)
        self.assertEqual(driver_events(s, "gas-4", "fault"), [], "a dead unit is the host's to report")


if __name__ == "__main__":
    unittest.main()
