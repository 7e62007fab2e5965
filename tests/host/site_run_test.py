#!/usr/bin/env python3
"""firelink-host run / check-config, end to end on real parts: a child process, its admin endpoint over HTTP,
real signals, a JSON-lines sink file, a serial port (a pty pair), a TCP device server and a TCP listener on
loopback. Each test writes its own site file into a temporary folder.

Usage (ctest passes these): site_run_test.py FIRELINK_HOST EXAMPLES_PLUGIN_DIR FIXTURE_PLUGIN_DIR [unittest args]
"""
import json
import os
import pty
import signal
import socket
import subprocess
import time
import tty
import unittest

from firelink_e2e import DEADLINE, Site, free_port, new_workdir, take_arguments, wait_for

HOST, EXAMPLES, FIXTURES = take_arguments("FIRELINK_HOST", "EXAMPLES_PLUGIN_DIR", "FIXTURE_PLUGIN_DIR")


def site(test, body, dirs):
    """A site for `test` in a folder of its own, closed (its host killed if still running) when the test ends."""
    s = Site(HOST, dirs, body, new_workdir(test), gateway="gw-test")
    test.addCleanup(s.close)
    return s


HELLO = '''
[[device]]
id = "hello-c-1"
driver = "hello"
plugin = "org.firelink.examples.hello-c"
class = "vendor:org.firelink.examples.hello"
config = {{ period_ms = {period}, alarm_every = 3 }}
site = {{ site = "Longhua Temple", building = "Main hall", floor = "1F", location = "east wing", sector = "religious_site" }}

[[device]]
id = "hello-cpp-1"
driver = "hello"
plugin = "org.firelink.examples.hello-cpp"
class = "vendor:org.firelink.examples.hello"
config = {{ period_ms = {period} }}
site = {{ site = "Sunshine Home", sector = "elderly_care" }}
'''


def wire_panel(device_id, wire):
    """A [[device]] of the wire fixture's panel driver on `wire` (the TOML inline table's inside)."""
    return f'''
[[device]]
id = "{device_id}"
driver = "panel"
plugin = "org.firelink.test.wire"
class = "fire_panel"
wire = {{ {wire} }}
'''


class RunSite(unittest.TestCase):
    def site(self, body, dirs=None):
        return site(self, body, dirs or [EXAMPLES])

    def run_hello(self, period_ms, seconds, expect_events):
        """`firelink-host run` of the two hello devices (one event each `period_ms`) for `seconds`, expecting
        `expect_events` events: the site and the finished process."""
        s = self.site(HELLO.format(period=period_ms))
        proc = subprocess.run([HOST, "run", "--config", s.config, "--for", str(seconds),
                               "--expect-events", str(expect_events)], capture_output=True, text=True, timeout=60)
        return s, proc

    def test_runs_for_a_while_and_every_event_is_enriched(self):
        s, proc = self.run_hello(20, 1.5, 3)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("expectations: met", proc.stderr)
        events = s.events()
        by_device = {}
        for e in events:
            by_device.setdefault(e["device"], []).append(e)
            self.assertEqual(e["gateway"], "gw-test")
            self.assertEqual(e["class"], "vendor:org.firelink.examples.hello")
            self.assertIn(e["origin"], ("driver", "host"))
            self.assertGreater(e["received"]["wall_ms"], 1_600_000_000_000)
        self.assertEqual(set(by_device), {"hello-c-1", "hello-cpp-1"})
        for device, evs in by_device.items():
            self.assertEqual([e["seq"] for e in evs], list(range(1, len(evs) + 1)), device + ": gap-free sequence")
        first = by_device["hello-c-1"][0]
        self.assertEqual(first["site"], {"site": "Longhua Temple", "building": "Main hall", "floor": "1F",
                                         "location": "east wing", "sector": "religious_site"})
        self.assertTrue(any(e["event"]["kind"] == "alarm" for e in by_device["hello-c-1"]))

    def test_expectations_that_do_not_hold_fail_the_run(self):
        _, proc = self.run_hello(60000, 0.5, 1)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("expectations: NOT met", proc.stderr)

    def test_admin_endpoint_devices_metrics_and_commands(self):
        s = self.site(HELLO.format(period=20)).start()
        wait_for(lambda: all(d["events_accepted"] > 2 for d in s.devices().values()), "events from both devices")
        status, health = s.get("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(health)["status"], "ok")
        devices = s.devices()
        self.assertEqual(devices["hello-c-1"]["state"], "started")
        self.assertEqual(devices["hello-cpp-1"]["site"]["sector"], "elderly_care")
        status, metrics = s.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn('firelink_events_total{device_class="vendor:org.firelink.examples.hello",kind="telemetry"}',
                      metrics)
        self.assertIn('firelink_device_state{device="hello-c-1",state="started"} 1', metrics)

        status, answer = s.command("hello-cpp-1", "ping")
        self.assertEqual(status, 202, answer)
        cid = answer["command_id"]
        result = s.wait_event("the ping's result", lambda e: e["event"].get("command_id") == cid)
        self.assertEqual(result["event"]["kind"], "command_result")
        self.assertTrue(result["event"]["ok"])

        # hello-c declares that it takes no command (ABI 1.1): the gate refuses the name before anything reaches it.
        status, answer = s.command("hello-c-1", "self_destruct")
        self.assertEqual(status, 422, answer)
        self.assertEqual(answer["reason"], "unknown_command", answer)

        status, answer = s.command("no-such", "ping")
        self.assertEqual(status, 404, answer)
        status, answer = s.post("/api/devices/hello-c-1/commands", b"not json")
        self.assertEqual(status, 400, answer)
        self.assertEqual(s.stop(), 0, s.output())

    def test_sighup_reloads_only_what_changed(self):
        s = self.site(HELLO.format(period=20)).start()
        wait_for(lambda: all(d["events_accepted"] > 3 for d in s.devices().values()), "events before the reload")
        # hello-c-1 changes (new period), hello-cpp-1 stays, hello-c-2 is new.
        s.write(HELLO.format(period=20).replace("period_ms = 20, alarm_every = 3", "period_ms = 25, alarm_every = 3")
                + '''
[[device]]
id = "hello-c-2"
driver = "hello"
plugin = "org.firelink.examples.hello-c"
class = "vendor:org.firelink.examples.hello"
''')
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "hello-c-2" in s.devices(), "the new device")
        # The changed device is a new instance: its events start again at sequence 1 after the reload; the
        # unchanged one is the same instance: its sequence runs on without a break.
        wait_for(lambda: 1 in [e["seq"] for e in s.events() if e["device"] == "hello-c-1"][1:],
                 "hello-c-1 recreated (its sequence starts again at 1)")
        wait_for(lambda: any(e["device"] == "hello-c-2" for e in s.events()), "events from the new device")
        cpp = [e["seq"] for e in s.events() if e["device"] == "hello-cpp-1"]
        self.assertEqual(cpp, list(range(1, len(cpp) + 1)), "hello-cpp-1 was not restarted")

        # A reload with a broken file changes nothing and says why.
        with open(s.config, "a") as f:
            f.write("\n[[device]]\nid = 5\n")
        status, answer = s.post("/api/reload", b"")
        self.assertEqual(status, 400, answer)
        self.assertFalse(answer["reloaded"])
        self.assertTrue(any("device[3].id" in e for e in answer["errors"]), answer)
        self.assertEqual(set(s.devices()), {"hello-c-1", "hello-cpp-1", "hello-c-2"})
        self.assertEqual(s.stop(signal.SIGINT), 0, s.output())

    def test_serial_device_on_a_pty(self):
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        path = os.ttyname(slave)
        s = self.site(f'''
[[bus]]
id = "com1"
kind = "serial"
path = "{path}"
baud = 9600
''' + wire_panel("panel-serial", 'bus = "com1"'), [FIXTURES]).start()
        s.wait_event("the link opening", lambda e: e["event"]["code"] == "x.test.link_open")
        os.write(master, b"ping")
        s.wait_event("the bytes", lambda e: e["event"]["code"] == "bytes")
        echoed = b""
        end = time.monotonic() + DEADLINE
        while len(echoed) < 4 and time.monotonic() < end:
            echoed += os.read(master, 16)
        self.assertEqual(echoed, b"ping")
        self.assertEqual(s.devices()["panel-serial"]["wire"]["bytes_in"], 4)
        self.assertEqual(s.stop(), 0, s.output())

    def test_tcp_client_device_and_listener_device(self):
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        self.addCleanup(server.close)
        listen_port = free_port()
        centre_port = free_port()
        listeners = f'''
[[listener]]
id = "uitd"
listen = "127.0.0.1:{listen_port}"

[[listener]]
id = "centre"
listen = "127.0.0.1:{centre_port}"
'''
        devices = (wire_panel("panel-tcp", f'tcp = "127.0.0.1:{server.getsockname()[1]}"')
                   + wire_panel("panel-in", 'listener = "uitd", peer = "127.0.0.1"')
                   + wire_panel("uitd-a", 'listener = "centre", identity = "A"')
                   + wire_panel("uitd-b", 'listener = "centre", identity = "B"'))
        s = self.site(listeners + devices, [FIXTURES]).start()
        server.settimeout(DEADLINE)
        conn, _ = server.accept()
        self.addCleanup(conn.close)
        conn.sendall(b"hello")
        conn.settimeout(DEADLINE)
        self.assertEqual(conn.recv(16), b"hello")
        s.wait_event("bytes from the TCP device", lambda e: e["device"] == "panel-tcp" and e["event"]["code"] == "bytes")

        client = socket.create_connection(("127.0.0.1", listen_port), timeout=DEADLINE)
        self.addCleanup(client.close)
        client.sendall(b"uitd!")
        self.assertEqual(client.recv(16), b"uitd!")
        s.wait_event("bytes from the listener device",
                     lambda e: e["device"] == "panel-in" and e["event"]["code"] == "bytes")

        # Bound by the identity the driver reads from the first bytes: B first, then A, each to its own device.
        for name in ("B", "A"):
            c = socket.create_connection(("127.0.0.1", centre_port), timeout=DEADLINE)
            self.addCleanup(c.close)
            c.sendall(b"ID:" + name.encode() + b"\nhi")
            got = b""
            while len(got) < 7:
                got += c.recv(16)
            self.assertEqual(got, b"ID:" + name.encode() + b"\nhi", "the first bytes reach the device, in order")
            s.wait_event("bytes from uitd-" + name.lower(),
                         lambda e, d="uitd-" + name.lower(): e["device"] == d and e["event"]["code"] == "bytes")
        # A connection nobody claims is closed.
        stranger = socket.create_connection(("127.0.0.1", centre_port), timeout=DEADLINE)
        self.addCleanup(stranger.close)
        stranger.sendall(b"ID:Z\n")
        self.assertEqual(stranger.recv(16), b"", "an unknown identity is disconnected")
        self.assertEqual(s.stop(), 0, s.output())


class CheckConfig(unittest.TestCase):
    def test_a_good_site_passes(self):
        s = site(self, HELLO.format(period=100), [EXAMPLES])
        proc = subprocess.run([HOST, "check-config", s.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        # Every plugin in the examples folder is loaded (the hello examples and the reference drivers).
        self.assertRegex(proc.stdout, r"OK: gateway gw-test, \d+ plugin\(s\), 0 bus\(es\), 0 listener\(s\), 2 device\(s\)")

    def test_errors_name_file_line_column_and_key(self):
        s = site(self, HELLO.format(period=100) + '\n[[device]]\nid = "x"\ndriver = "hello"\nclass = "fire_panel"\n'
                 'colour = "red"\n', [EXAMPLES])
        proc = subprocess.run([HOST, "check-config", s.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1)
        self.assertRegex(proc.stderr, r"site\.toml:\d+:\d+: device\[2\]\.colour: unknown key")

    def test_a_device_whose_class_does_not_match_its_driver_is_refused(self):
        body = HELLO.format(period=100).replace('class = "vendor:org.firelink.examples.hello"\nconfig = { period_ms = 100 }',
                                                'class = "fire_panel"\nconfig = { period_ms = 100 }')
        s = site(self, body, [EXAMPLES])
        proc = subprocess.run([HOST, "check-config", s.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertRegex(proc.stderr, r"site\.toml:\d+:\d+: device 'hello-cpp-1': class 'fire_panel' does not "
                                      r"match driver 'hello'")

    def test_a_platform_command_no_driver_declares_is_refused(self):
        # A typo would otherwise allow nothing, silently.
        s = site(self, HELLO.format(period=100) + '\n[control]\nplatform_may = ["pnig"]\n', [EXAMPLES])
        proc = subprocess.run([HOST, "check-config", s.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertIn("control.platform_may: 'pnig' is a command no driver of this site declares (did you mean "
                      "'ping'?)", proc.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
