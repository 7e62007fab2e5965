#!/usr/bin/env python3
"""`firelink-host try` with a wire, end to end: the real firelink-host against firelink-sim over Modbus TCP on
loopback (--connect), a simulated UITD connecting in to its listener (--listen), Modbus RTU on a socat pty pair
(--serial), a fixture driver on a raw socket (bound by peer, and an identity claimed twice), and the usage errors.

Usage (ctest passes these): try_wires_test.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR FIXTURE_DIR [unittest args]
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import unittest

from firelink_e2e import (DEADLINE, free_port, new_workdir, serial_sim, take_arguments, tcp_sim, test_failed,
                          wait_for)

HOST, SIM, PLUGINS, FIXTURES = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "PLUGIN_DIR", "FIXTURE_DIR")
GAS = os.path.join(PLUGINS, "modbus-gas-valve.so")
PANEL = os.path.join(PLUGINS, "fire_panel.so")
ECHO = os.path.join(FIXTURES, "wire.so")  # driver "panel": echoes what it reads, identifies "ID:<identity>\n"

# The gas-valve driver polling fast enough for a test, as tests/drivers/gas_valve_test.py has it.
FAST = ["--set", "poll_ms=50", "--set", "debounce=2", "--set", "telemetry_ms=0", "--set", "reply_timeout_ms=300"]


class Try:
    """`firelink-host try ...` as a child; its stdout (event lines, the summary) and stderr (the log) read by threads."""

    def __init__(self, test, *args):
        self.proc = subprocess.Popen([HOST, "try", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     bufsize=1)
        self.out, self.err = [], []
        self.threads = [threading.Thread(target=self._read, args=(s, l), daemon=True)
                        for s, l in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()
        test.addCleanup(self.close)
        self.test = test

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))

    def events(self, **match):
        found = []
        for line in list(self.out):
            if line.startswith('{"device"'):
                ev = json.loads(line)["event"]
                if all(ev.get(k) == v for k, v in match.items()):
                    found.append(ev)
        return found

    def wait_event(self, what, **match):
        return wait_for(lambda: self.events(**match) or self._exited(), what)[0]

    def wait_log(self, text):
        wait_for(lambda: any(text in l for l in list(self.err)) or self._exited(), "'" + text + "' in the log")
        self.test.assertTrue(any(text in l for l in self.err), self.output())

    def _exited(self):
        if self.proc.poll() is not None:
            raise AssertionError("firelink-host try exited (" + str(self.proc.returncode) + "):\n" + self.output())
        return None

    def stop(self):
        """SIGINT, as an operator stops it; the exit code."""
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=DEADLINE)
        for t in self.threads:
            t.join(timeout=5)
        return rc

    def output(self):
        return "\n".join(self.out) + "\n---- stderr ----\n" + "\n".join(self.err)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self.threads:
            t.join(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        if test_failed(self.test):
            print(self.output(), file=sys.stderr)


def run_try(*args, timeout=DEADLINE):
    """`firelink-host try ...` to its end: (exit code, stdout, stderr). A run that does not end in time fails."""
    r = subprocess.run([HOST, "try", *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def uitd(port, script, *args):
    """firelink-sim uitd connecting in to the try's listener, to its end: (exit code, its JSON events)."""
    # One send of each frame, given up after 5 s: a frame try never confirms fails the test, not its deadline.
    r = subprocess.run([SIM, "uitd", "--connect", f"127.0.0.1:{port}", "--heartbeat-s", "0", "--exit-when-done",
                        "--connect-attempts", "5", "--tries", "1", "--confirm-timeout-ms", "5000", "--script", script,
                        *args],
                       capture_output=True, text=True, timeout=DEADLINE)
    return r.returncode, [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]


class Connect(unittest.TestCase):
    def setUp(self):
        self.dir, self.sim = tcp_sim(self, SIM, "gas-valve")
        self.wire = f"127.0.0.1:{self.sim.port}"

    def test_a_gas_alarm_over_modbus_tcp(self):
        t = Try(self, GAS, "--connect", self.wire, "--unit", "1", *FAST, "--expect-events", "1")
        t.wait_log(f"device modbus-gas-valve.modbus-gas-valve: tcp {self.wire} unit 1")
        self.sim.do("gas 30")
        alarm = t.wait_event("the level-1 alarm", kind="alarm", code="gas_level_1")
        self.assertEqual(alarm["severity"], "major")
        self.assertEqual(t.stop(), 0, t.output())
        self.assertIn("expectations: met", t.out)

    def test_for_quiet_and_expect_events_hold_on_a_wire(self):
        self.sim.do("gas 30")
        rc, out, err = run_try(GAS, "--connect", self.wire, *FAST, "--quiet", "--for", "3", "--expect-events", "1")
        self.assertEqual(rc, 0, out + err)
        self.assertNotIn('{"device"', out)
        self.assertRegex(out, r"modbus-gas-valve.modbus-gas-valve: \d+ event\(s\) accepted \(alarm 1")
        rc, out, err = run_try(GAS, "--connect", self.wire, *FAST, "--quiet", "--for", "1", "--expect-events", "1000")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("expected at least 1000", out)

    def test_a_device_that_is_not_there_fails_its_expectations(self):
        rc, out, err = run_try(GAS, "--connect", f"127.0.0.1:{free_port()}", "--for", "1", "--expect-events", "1")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("emitted 0 event(s), expected at least 1", out)


class Listen(unittest.TestCase):
    def listening(self, *args):
        self.port = free_port()
        t = Try(self, *args[:1], "--listen", f"127.0.0.1:{self.port}", *args[1:])
        t.wait_log(f"[tcp-listen 127.0.0.1:{self.port}] listening")
        t.wait_log(") started")  # until then a connection would find no device open to take it
        return t

    def test_a_uitd_fire_alarm_the_device_identified_by_its_first_connection(self):
        t = self.listening(PANEL, "--expect-events", "1")
        rc, events = uitd(self.port, 'fire loop=10 point=2 type=42 desc="3F corridor"; wait_confirms')
        self.assertEqual(rc, 0, events)
        alarm = t.wait_event("the fire alarm", kind="alarm", code="fire_alarm")
        self.assertIn("loop 10 point 2", alarm["message"])
        # Each frame confirmed once try had its events (firelink.commit/1), none sent twice.
        sent = [e["serial"] for e in events if e["event"] == "sent"]
        self.assertEqual(sorted(e["serial"] for e in events if e["event"] == "confirm"), sorted(sent), events)
        self.assertEqual(len(sent), len(set(sent)), events)
        t.wait_log("the first connection identified as '000000000379'")
        # Another UITD is not the device: refused, whatever it says.
        rc, other = uitd(self.port, "fire loop=1 point=1 type=42; wait_confirms", "--address", "0x0380",
                         "--connect-attempts", "1")
        self.assertEqual([e for e in other if e["event"] == "confirm"], [], other)
        t.wait_log("a connection identified as '000000000380', but the device is '000000000379'")
        self.assertEqual(t.stop(), 0, t.output())
        self.assertEqual([e for e in t.events(kind="alarm") if "loop 1 point 1" in e["message"]], [])

    def test_a_named_identity_takes_that_uitd_only(self):
        t = self.listening(PANEL, "--identity", "000000000380")
        uitd(self.port, "fire loop=1 point=1 type=42; wait_confirms", "--connect-attempts", "1")
        t.wait_log("no open device with identity '000000000379'")
        rc, events = uitd(self.port, "fire loop=7 point=3 type=42; wait_confirms", "--address", "0x0380")
        self.assertEqual(rc, 0, events)
        t.wait_event("the fire alarm", kind="alarm", code="fire_alarm")
        self.assertEqual(t.stop(), 0, t.output())
        self.assertEqual([e for e in t.events(kind="alarm") if "loop 1 point 1" in e["message"]], [])

    def test_bound_by_peer_the_connection_from_that_address_is_the_device(self):
        t = self.listening(ECHO, "--peer", "127.0.0.1", "--expect-events", "1")
        with socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE) as s:
            s.sendall(b"hello")
            self.assertEqual(s.recv(16), b"hello")  # the driver echoes what it reads
            ev = t.wait_event("the bytes' telemetry", kind="telemetry", code="bytes")
            self.assertEqual(ev["values"], [{"name": "received", "value": 5}])
            self.assertEqual(t.stop(), 0, t.output())

    def test_a_second_connection_claiming_the_identity_is_refused(self):
        t = self.listening(ECHO)
        with socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE) as first:
            first.sendall(b"ID:bench-1\n")
            self.assertEqual(first.recv(64), b"ID:bench-1\n")  # the first bytes reach the driver, which echoes them
            with socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE) as second:
                second.sendall(b"ID:bench-1\n")
                self.assertEqual(second.recv(64), b"")  # closed: the connected one keeps the identity
            fault = t.wait_event("the identity conflict", code="identity_conflict")
            self.assertIn("refused, the connected one kept", fault["message"])
            first.sendall(b"more")
            self.assertEqual(first.recv(16), b"more")
            self.assertEqual(t.stop(), 0, t.output())


class Serial(unittest.TestCase):
    def test_a_gas_alarm_over_modbus_rtu_on_a_pty(self):
        _, pty, sim = serial_sim(self, SIM, "gas-valve", "--baud", "19200")
        t = Try(self, GAS, "--serial", pty.host_end, "--baud", "19200", "--parity", "even", "--stop-bits", "2",
                "--unit", "1", *FAST, "--expect-events", "1")
        t.wait_log(f"[serial {pty.host_end}] open (19200 baud, 8E2)")
        sim.do("gas 60")
        t.wait_event("the level-2 alarm", kind="alarm", code="gas_level_2")
        self.assertEqual(t.stop(), 0, t.output())


class Usage(unittest.TestCase):
    def test_a_driver_that_needs_a_wire_and_got_none_is_told_the_options(self):
        rc, out, err = run_try(GAS, "--for", "60")  # nothing runs: it ends at once, not after 60 s
        self.assertEqual(rc, 1, out + err)
        self.assertIn("device modbus-gas-valve.modbus-gas-valve not created: driver 'modbus-gas-valve' needs a wire: "
                      "give it one with --connect HOST:PORT", err)
        for option in ("--connect HOST:PORT", "--listen HOST:PORT", "--serial DEV"):
            self.assertIn(option, err)
        self.assertIn("expectations: NOT met", out)

    def test_bad_wires_are_usage_errors_naming_the_option(self):
        port = f"127.0.0.1:{free_port()}"
        cases = [
            ([GAS, "--connect", "nohost"], '--connect: expected "HOST:PORT"'),
            ([GAS, "--connect", "127.0.0.1:0"], "--connect: expected \"HOST:PORT\" with a port from 1 to 65535"),
            ([GAS, "--connect", port, "--unit", "300"], "--unit: expected an integer from 0 to 255, got 300"),
            ([PANEL, "--listen", "localhost:9000"], "--listen: expected an IP address to listen on"),
            ([PANEL, "--listen", "127.0.0.1:70000"], "--listen: expected \"HOST:PORT\" with a port from 0 to 65535"),
            ([PANEL, "--listen", port, "--peer", "nope"], '--peer: expected an IP address, got "nope"'),
            ([PANEL, "--listen", port, "--unit", "1"], "--unit: only a --connect or --serial wire has a unit"),
            ([GAS, "--serial", "/nonexistent/tty"], "--serial /nonexistent/tty: no such file"),
            ([GAS, "--serial", "/dev/null", "--baud", "1234"], "--baud: expected one of 1200, 2400"),
            ([GAS, "--serial", "/dev/null", "--parity", "maybe"], '--parity: expected one of "none", "even", "odd"'),
            ([GAS, "--connect", port, "--serial", "/dev/null"], "--connect excludes --serial"),
            ([GAS, "--baud", "9600"], "--baud requires --serial"),
            ([PANEL, "--connect", port], "--connect: driver 'gb26875-uitd' does not take a tcp_client wire; it takes "
                                         "tcp_accepted (--listen)"),
            ([GAS, "--listen", port], "--listen: driver 'modbus-gas-valve' does not take a tcp_accepted wire; it "
                                      "takes tcp_client (--connect), serial (--serial), rs485_bus (--serial)"),
        ]
        for args, expected in cases:
            with self.subTest(args=args):
                rc, out, err = run_try(*args, "--for", "30")
                self.assertEqual(rc, 2, out + err)
                self.assertIn(expected, err)

    def test_a_wire_is_one_device_s_and_driver_names_it(self):
        port = f"127.0.0.1:{free_port()}"
        rc, out, err = run_try(PLUGINS, "--connect", port, "--for", "30")
        self.assertEqual(rc, 2, out + err)
        self.assertIn(f"--connect {port} is the wire of one device", err)
        self.assertIn("name one with --driver ID", err)
        rc, out, err = run_try(PLUGINS, "--driver", "modbus-gas-valve", "--connect", port, "--for", "0.5")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("summary: ", out)
        self.assertIn("1 device(s)", out)
        self.assertIn(f"device modbus-gas-valve.modbus-gas-valve: tcp {port}", err)


if __name__ == "__main__":
    unittest.main()
