#!/usr/bin/env python3
"""The fire_panel driver end to end: the real firelink-host run with a site file, firelink-sim uitd child processes
connecting to its listener on loopback, the events in the JSON-lines sink, the confirms and denies the simulator
reports on its stdout, commands through the admin endpoint; and the firelink-decode gb26875 CLI.

Usage (ctest passes these): fire_panel_e2e_test.py FIRELINK_HOST FIRELINK_SIM FIRELINK_DECODE PLUGIN_DIR VECTORS
"""
import json
import socket
import subprocess
import sys
import threading
import time
import unittest

import firelink_e2e
from firelink_e2e import DEADLINE, driver_events, free_port, new_workdir, take_arguments, test_failed, wait_for
from firelink_e2e.gb26875 import FrameReader, confirm_of, serial_of

HOST, SIM, DECODE, PLUGINS, VECTORS = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "FIRELINK_DECODE",
                                                     "PLUGIN_DIR", "VECTORS")


class Site(firelink_e2e.Site):
    """firelink-host run with one listener ("centre") and the given devices, started, the listener open."""

    def __init__(self, test, devices):
        self.listen = free_port()
        body = f'[[listener]]\nid = "centre"\nlisten = "127.0.0.1:{self.listen}"\n\n'
        for dev in devices:
            body += "[[device]]\n" + "".join(f"{k} = {v}\n" for k, v in dev.items()) + "\n"
        super().__init__(HOST, PLUGINS, body, new_workdir(test), gateway="gw-fire", watchdog=None)
        self.start()
        # The listener opens when its first device starts.
        wait_for(self.listening, "the listener to open")

    def listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.listen), timeout=1):
                return True
        except OSError:
            return False

    def operate(self, device, body):
        """An operator's command given as the admin endpoint's body (id, name, args), select then operate."""
        return self.command(device, body["name"], body.get("args"), cid=body.get("id"))

    def reload(self):
        return self.post("/api/reload", b"", timeout=70)


class Sim:
    """firelink-sim uitd as a child; its stdout JSON lines are collected by a thread."""

    def __init__(self, port, *args):
        self.proc = subprocess.Popen([SIM, "uitd", "--connect", f"127.0.0.1:{port}", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def seen(self, **match):
        return [l for l in list(self.lines) if all(l.get(k) == v for k, v in match.items())]

    def wait(self, what, **match):
        return wait_for(lambda: self.seen(**match), what)

    def finish(self):
        try:
            rc = self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("the simulator did not finish")
        self.thread.join(timeout=5)
        return rc, self.proc.stderr.read()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE)


def panel(dev_id, identity, **extra):
    d = {"id": json.dumps(dev_id), "driver": '"gb26875-uitd"', "class": '"fire_panel"',
         "wire": f'{{ listener = "centre", identity = "{identity}" }}'}
    d.update(extra)
    return d


class FirePanelEndToEnd(unittest.TestCase):
    def setUp(self):
        self.site = None
        self.sims = []

    def tearDown(self):
        for s in self.sims:
            s.kill()
        if self.site:
            if test_failed(self):
                print(self.site.output(), file=sys.stderr)
            self.site.close()

    def sim(self, *args):
        s = Sim(self.site.listen, *args)
        self.sims.append(s)
        return s

    def test_alarm_fault_restore_and_confirms(self):
        self.site = Site(self, [panel("panel-1", "000000000379")])
        s = self.sim("--heartbeat-s", "0", "--exit-when-done", "--script",
                     'fire loop=10 point=2 type=42 desc="3楼走廊 烟感"; uitd status=0x09; garbage n=40; '
                     'bad_checksum; heartbeat; split parts=5; fault loop=3 point=1; merge n=2; '
                     'analog loop=4 point=1 analog=3 raw=215; system status=0x0103; wait_confirms; '
                     'restore loop=10 point=2 bit=fire; uitd status=0x01; system status=0x0001; wait_confirms')
        rc, err = s.finish()
        self.assertEqual(rc, 0, err)
        sent = {l["serial"] for l in s.seen(event="sent")}
        confirmed = {l["serial"] for l in s.seen(event="confirm")}
        denied = {l["serial"] for l in s.seen(event="deny")}
        self.assertEqual(len(denied), 1, s.lines)  # the frame with the wrong checksum, and only that one
        self.assertEqual(confirmed | denied, sent)
        self.assertFalse(confirmed & denied)

        alarm = self.site.wait_driver_event("the fire alarm", lambda e: e["kind"] == "alarm" and e["code"] == "fire_alarm")
        self.assertIn("3楼走廊 烟感", alarm["message"])
        self.assertIn("point_photoelectric_smoke_detector loop 10 point 2", alarm["message"])
        self.assertIn("device_time", alarm)
        restore = self.site.wait_driver_event("its restore", lambda e: e["kind"] == "restore" and e["code"] == "fire_alarm"
                                              and e.get("ends") == alarm["event_id"])
        self.assertTrue(restore)
        power = self.site.wait_driver_event("main power fault", lambda e: e["code"] == "main_power_fault" and e["kind"] == "fault")
        self.site.wait_driver_event("its restore", lambda e: e["kind"] == "restore" and e.get("ends") == power["event_id"])
        self.site.wait_driver_event("component fault", lambda e: e["code"] == "fault" and e["kind"] == "fault")
        tele = self.site.wait_driver_event("analog telemetry", lambda e: e["kind"] == "telemetry")
        self.assertEqual(tele["values"], [{"name": "temperature", "value": 21.5, "unit": "degC"}])
        # system status 0x0103: fire alarm and fault of the system, each ended by 0x0001
        sys_alarm = self.site.wait_driver_event("system fire alarm", lambda e: e["code"] == "fire_alarm" and
                                                e.get("event_id", "").startswith("fire_alarm@s1.1"))
        self.site.wait_driver_event("its restore", lambda e: e["kind"] == "restore" and e.get("ends") == sys_alarm["event_id"])
        # The component fault was not restored: no restore for it.
        self.assertFalse([e for e in driver_events(self.site, None) if e["kind"] == "restore" and "fault@c1.1.00010003" in e.get("ends", "")])
        log = self.site.output()
        self.assertIn("checksum mismatch; denied", log)
        self.assertIn("bytes of garbage", log)

    def test_alarm_with_normal_bit_clear_is_still_an_alarm(self):
        # Real panels send fire alarms with bit 0 (normal/test) clear: status 0x0002 exactly.
        self.site = Site(self, [panel("panel-1", "000000000379")])
        s = self.sim("--heartbeat-s", "0", "--exit-when-done", "--no-time", "--version-user", "7",
                     "--script", "component loop=1 point=9 status=0x0002; wait_confirms")
        rc, err = s.finish()
        self.assertEqual(rc, 0, err)
        ev = self.site.wait_driver_event("the alarm", lambda e: e["code"] == "fire_alarm")
        self.assertEqual(ev["kind"], "alarm")
        self.assertNotIn("device_time", ev)  # the object had no time label

    def test_many_uitds_on_one_listener_each_its_own_device(self):
        self.site = Site(self, [panel("panel-a", "000000000379"), panel("panel-b", "0000000004D2")])
        a = self.sim("--address", "0x0379", "--heartbeat-s", "0", "--exit-when-done", "--script",
                     "fire loop=1 point=1; wait_confirms")
        b = self.sim("--address", "1234", "--heartbeat-s", "0", "--exit-when-done", "--script",
                     "fault loop=2 point=2; wait_confirms")
        self.assertEqual(a.finish()[0], 0)
        self.assertEqual(b.finish()[0], 0)
        self.site.wait_driver_event("a's alarm", lambda e: e["code"] == "fire_alarm", device="panel-a")
        self.site.wait_driver_event("b's fault", lambda e: e["code"] == "fault", device="panel-b")
        self.assertFalse([e for e in driver_events(self.site, "panel-a") if e["code"] == "fault"])
        self.assertFalse([e for e in driver_events(self.site, "panel-b") if e["code"] == "fire_alarm"])

    def test_commands_reach_the_uitd_and_come_back_as_results(self):
        self.site = Site(self, [panel("panel-1", "000000000379")])
        s = self.sim("--heartbeat-s", "1", "--duty-answer-ms", "200", "--script", "uitd status=0x11")
        s.wait("the first confirm", event="confirm")
        results = {}
        for body in ({"id": "c-status", "name": "read_uitd_status"},
                     {"id": "c-clock", "name": "sync_clock"},
                     {"id": "c-duty", "name": "duty_check", "args": {"minutes": 1}},
                     {"id": "c-comp", "name": "read_component_status",
                      "args": {"system_type": 1, "system_address": 1, "component_address": 65537}},
                     {"id": "c-conf", "name": "read_config"}):
            status, answer = self.site.operate("panel-1", body)
            self.assertEqual(status, 202, answer)
        for cid in ("c-status", "c-clock", "c-duty", "c-comp", "c-conf"):
            results[cid] = self.site.wait_driver_event(cid, lambda e, cid=cid: e.get("command_id") == cid)
            self.assertTrue(results[cid]["ok"], results[cid])
        self.assertIn('"status_bits":["normal","backup_power_fault"]', results["c-status"]["message"])
        self.assertIn("firelink-sim UITD 模拟", results["c-conf"]["message"])
        self.site.wait_driver_event("on duty", lambda e: e["code"] == "on_duty")
        s.wait("request 81", event="request", type=81)
        s.wait("control 90", event="control", type=90)
        s.wait("control 91", event="control", type=91)
        # Unknown command and bad arguments are refused by the driver.
        self.assertNotEqual(self.site.operate("panel-1", {"name": "open_the_pod_bay_doors"})[0], 202)
        self.assertNotEqual(self.site.operate("panel-1", {"name": "duty_check", "args": {"minutes": 0}})[0], 202)

    def test_duty_check_unanswered_is_off_duty(self):
        self.site = Site(self, [panel("panel-1", "000000000379")])
        s = self.sim("--heartbeat-s", "1", "--duty-answer-ms", "-1")
        s.wait("the first confirm", event="confirm")
        self.assertEqual(self.site.operate("panel-1", {"id": "d-1", "name": "duty_check", "args": {"within_s": 1}})[0], 202)
        res = self.site.wait_driver_event("the duty check's result", lambda e: e.get("command_id") == "d-1")
        self.assertFalse(res["ok"], res)
        self.site.wait_driver_event("off duty", lambda e: e["code"] == "off_duty")
        s.wait("control 91", event="control", type=91)  # the UITD got it and confirmed; nobody answered
        # A read the UITD answers with zero records still succeeds.
        self.assertEqual(self.site.operate("panel-1", {"id": "r-1", "name": "read_uitd_operations"})[0], 202)
        self.assertTrue(self.site.wait_driver_event("the read", lambda e: e.get("command_id") == "r-1")["ok"])

    def test_active_alarm_is_reported_again_after_the_device_restarts(self):
        # FL-PLUGIN-29: the UITD keeps its fire alarm (already confirmed, so it never sends it again) while the host
        # recreates the device; the new driver instance reads the state (type 61) and reports the alarm again.
        self.site = Site(self, [panel("panel-1", "000000000379")])
        s = self.sim("--heartbeat-s", "1", "--reconnect", "--script", "fire loop=10 point=2 type=42 desc=\"3楼走廊 烟感\"")
        self.site.wait_driver_event("the fire alarm", lambda e: e["kind"] == "alarm" and e["code"] == "fire_alarm")
        fire = s.wait("the fire alarm sent", event="sent", type=2)[0]
        s.wait("its confirm", event="confirm", serial=fire["serial"])
        time.sleep(0.5)  # let the first instance finish whatever it was doing
        before = len(driver_events(self.site, None))
        lines_before = len(s.lines)
        # A changed device entry: the reload recreates the device, a new driver instance that knows nothing.
        with open(self.site.config) as f:
            body = f.read()
        with open(self.site.config, "w") as f:
            f.write(body.replace('driver = "gb26875-uitd"\n', 'driver = "gb26875-uitd"\nconfig = { reply_timeout_ms = 5000 }\n'))
        status, answer = self.site.reload()
        self.assertEqual(status, 200, answer)
        again = wait_for(lambda: next((e for e in driver_events(self.site, None)[before:]
                                       if e["kind"] == "alarm" and e["code"] == "fire_alarm"), None),
                         "the fire alarm reported again after the restart")
        self.assertEqual(again["event_id"], "fire_alarm@s1.1")
        # The simulator's own line for the state request: read from its stdout on another thread, so it may come
        # a moment after the host already reported what the answer said.
        wait_for(lambda: [l for l in s.lines[lines_before:] if l.get("event") == "request" and l.get("type") == 61],
                 "the new driver instance's state request (type 61) at the UITD")
        self.assertFalse([l for l in s.seen(event="sent", type=2) if l["serial"] == fire["serial"] and l["try"] > 1],
                         "the UITD resent its confirmed alarm: the test would not prove the driver read the state")
        s.kill()

    def test_silent_uitd_goes_offline_and_comes_back(self):
        self.site = Site(self, [panel("panel-1", "000000000379", heartbeat_s="1")])
        s = self.sim("--heartbeat-s", "0", "--script", "wait 2500; heartbeat; wait 500")
        off = self.site.wait_driver_event("offline", lambda e: e["kind"] == "offline")
        self.site.wait_driver_event("back", lambda e: e["kind"] == "restore" and e.get("ends") == off["event_id"])
        s.kill()


class ResendWithoutConfirm(unittest.TestCase):
    """The simulator against a fake centre that drops confirms: it resends, then gives up after its tries."""

    def run_centre(self, confirm_on_try):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        seen = []

        def serve():
            conn, _ = srv.accept()
            reader = FrameReader()
            tries = {}
            conn.settimeout(DEADLINE)
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        return
                    for frame in reader.feed(data):
                        serial = serial_of(frame)
                        tries[serial] = tries.get(serial, 0) + 1
                        seen.append((serial, tries[serial]))
                        if confirm_on_try and tries[serial] == confirm_on_try:
                            conn.sendall(confirm_of(frame))
            except OSError:
                return
            finally:
                conn.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        return srv, port, seen

    def test_resent_until_confirmed(self):
        srv, port, seen = self.run_centre(confirm_on_try=2)
        sim = Sim(port, "--heartbeat-s", "0", "--confirm-timeout-ms", "200", "--tries", "3", "--exit-when-done")
        rc, err = sim.finish()
        srv.close()
        self.assertEqual(rc, 0, err)
        self.assertEqual(seen, [(1, 1), (1, 2)])
        self.assertEqual(sim.seen(event="confirm")[0]["tries"], 2)

    def test_gives_up_after_three_tries(self):
        srv, port, seen = self.run_centre(confirm_on_try=0)
        sim = Sim(port, "--heartbeat-s", "0", "--confirm-timeout-ms", "100", "--exit-when-done")
        rc, _ = sim.finish()
        srv.close()
        self.assertEqual(rc, 1)
        self.assertEqual(seen, [(1, 1), (1, 2), (1, 3)])
        self.assertEqual(sim.seen(event="gave_up")[0]["tries"], 3)


class DecodeCli(unittest.TestCase):
    def vectors(self):
        with open(VECTORS) as f:
            return [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]

    def test_every_vector_prints_one_json_line(self):
        rows = self.vectors()
        out = subprocess.run([DECODE, "gb26875", *[r[2] for r in rows]], capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = [json.loads(l) for l in out.stdout.splitlines()]
        self.assertEqual(len(lines), len(rows))
        by_name = dict(zip([r[0] for r in rows], lines))
        obj = by_name["fire_alarm_smoke"]["app"]["objects"][0]
        self.assertEqual(obj["status_bits"], ["fire_alarm"])
        self.assertEqual(obj["component_type"], 40)
        self.assertEqual((obj["loop"], obj["point"]), (10, 2))
        self.assertEqual(by_name["confirm"]["command_name"], "confirm")
        self.assertEqual(by_name["uitd_main_power_fault"]["app"]["objects"][0]["status_bits"], ["main_power_fault"])

    def test_invalid_frames_say_why_and_exit_1(self):
        good = self.vectors()[1][2]  # confirm
        cases = {
            good[:-6] + "ac2323": "checksum: computed ab",
            "24" + good[2:]: "bad start delimiter",
            good[:-2] + "24": "bad end delimiter",
            good[:48] + "0104" + good[52:]: "more than the 1024 allowed",
            good[:20]: "too short",
            "zz": "not hex: 'z' at offset 0",
        }
        for hexframe, reason in cases.items():
            out = subprocess.run([DECODE, "gb26875", hexframe], capture_output=True, text=True, timeout=DEADLINE)
            self.assertEqual(out.returncode, 1, hexframe)
            self.assertIn(reason, out.stderr, hexframe)
            self.assertEqual(out.stdout, "")

    def test_stream_mode_finds_frames_among_garbage(self):
        rows = self.vectors()
        stream = "0000" + rows[0][2] + "4040ff" + rows[1][2]
        out = subprocess.run([DECODE, "gb26875", "--stream", stream], capture_output=True, text=True, timeout=DEADLINE)
        self.assertEqual(len(out.stdout.splitlines()), 2, out.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
