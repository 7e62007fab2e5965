#!/usr/bin/env python3
"""Interop with independent Modbus implementations from Debian packages:
  - the gas_shutoff_valve driver (through the real firelink-host) against a pymodbus 3.0 server, over Modbus TCP and
    over Modbus RTU on a pty pair (socat);
  - mbpoll (libmodbus) reading and writing firelink-sim, over Modbus TCP and over RTU on a pty pair.

Usage (ctest passes these): interop_test.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR [unittest args]
The pymodbus server runs under /usr/bin/python3 (where Debian installs python3-pymodbus) unless this interpreter
has pymodbus itself. Missing pymodbus or mbpoll fails the test: scripts/setup installs both.
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

from firelink_e2e import (PtyPair, Sim, Site, driver_events, free_port, new_workdir, serial_sim, take_arguments,
                          value_of, wait_for)

HOST, SIM, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "PLUGIN_DIR")
HERE = os.path.dirname(os.path.abspath(__file__))


def pymodbus_python():
    for py in (sys.executable, "/usr/bin/python3"):
        if py and subprocess.run([py, "-c", "import pymodbus.server, serial"], capture_output=True).returncode == 0:
            return py
    raise AssertionError("no Python with pymodbus and pyserial: install python3-pymodbus python3-serial-asyncio "
                         "(scripts/setup)")


def mbpoll(*args):
    exe = shutil.which("mbpoll")
    if not exe:
        raise AssertionError("mbpoll is not installed (scripts/setup installs it)")
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    return p.returncode, {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"\[(\d+)\]:\s+(-?\d+)", p.stdout)}, p.stdout + p.stderr


DEVICE = '''[[device]]
id = "gas-x"
driver = "modbus-gas-valve"
class = "gas_shutoff_valve"
wire = {wire}
config = {{ poll_ms = 100, debounce = 2, telemetry_ms = 0, reply_timeout_ms = 400, command_timeout_ms = 3000 }}
'''


class DriverAgainstPymodbus(unittest.TestCase):
    def run_site(self, d, body):
        s = Site(HOST, PLUGINS, body, d)
        self.addCleanup(s.close)
        s.start()
        a = s.wait_event("gas_level_1 from pymodbus's registers", lambda r: r["event"]["code"] == "gas_level_1")
        self.assertAlmostEqual(value_of(a["event"], "gas_concentration"), 35.0, places=3)
        self.assertEqual(s.command("gas-x", "close_valve", cid="c")[0], 202)
        res = s.wait_driver_event("close_valve", lambda e: e.get("command_id") == "c")
        self.assertTrue(res["ok"], res)
        self.assertEqual(s.stop(), 0)
        self.assertEqual(len(driver_events(s, "gas-x", "status", "valve_closed")), 1)
        self.assertEqual([e for e in driver_events(s, "gas-x", "fault")], [], "no bad replies")

    def server(self, *args):
        p = subprocess.Popen([pymodbus_python(), os.path.join(HERE, "pymodbus_server.py"), *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (p.terminate(), p.wait()))
        return p

    def test_modbus_tcp(self):
        d = new_workdir(self)
        port = free_port()
        self.server("tcp", f"127.0.0.1:{port}")
        self.run_site(d, DEVICE.format(wire=f'{{ tcp = "127.0.0.1:{port}", unit = 1 }}'))

    def test_modbus_rtu_on_a_pty(self):
        d = new_workdir(self)
        pty = PtyPair(d)
        self.addCleanup(pty.close)
        self.server("rtu", os.path.realpath(pty.device_end))
        body = (f'[[bus]]\nid = "bus"\nkind = "rs485"\npath = "{pty.host_end}"\nrequest_timeout_ms = 400\n\n'
                + DEVICE.format(wire='{ bus = "bus", unit = 1 }'))
        self.run_site(d, body)


class MbpollAgainstTheSimulator(unittest.TestCase):
    def test_modbus_tcp(self):
        sim = Sim(SIM, "gas-valve", "--listen", "127.0.0.1:0", "--do", "gas 31.5")
        self.addCleanup(sim.close)
        common = ["-m", "tcp", "-p", str(sim.port), "-a", "1", "-1"]
        code, regs, out = mbpoll(*common, "-t", "3", "-r", "1", "-c", "4", "127.0.0.1")
        self.assertEqual(code, 0, out)
        self.assertEqual(regs, {1: 315, 2: 0, 3: 1, 4: 0}, out)
        code, _, out = mbpoll(*common, "-t", "4", "-r", "1", "127.0.0.1", "1")  # close the valve (FC06)
        self.assertEqual(code, 0, out)
        wait_for(lambda: mbpoll(*common, "-t", "3", "-r", "3", "-c", "1", "127.0.0.1")[1] == {3: 2}, "the valve closed")
        code, regs, out = mbpoll(*common, "-t", "0", "-r", "1", "-c", "1", "127.0.0.1")  # coils (FC01)
        self.assertEqual((code, regs), (0, {1: 0}), out)
        code, _, out = mbpoll(*common, "-t", "3", "-r", "100", "-c", "1", "127.0.0.1")  # past the map
        self.assertNotEqual(code, 0)
        self.assertIn("Illegal data address", out)

    def test_modbus_rtu_on_a_pty(self):
        d, pty, sim = serial_sim(self, SIM, "pyrolysis", "--units", "3-4", "--do", "@4 level 450")
        common = ["-m", "rtu", "-b", "9600", "-P", "none", "-1", "-o", "2"]
        code, regs, out = mbpoll(*common, "-a", "4", "-t", "3", "-r", "1", "-c", "2", os.path.realpath(pty.host_end))
        self.assertEqual(code, 0, out)
        self.assertEqual(regs[1], 450, out)
        self.assertEqual(regs[2] & 0b10, 0b10, "the pre-alarm bit")
        code, regs, out = mbpoll(*common, "-a", "3", "-t", "3", "-r", "1", "-c", "1", os.path.realpath(pty.host_end))
        self.assertEqual((code, regs), (0, {1: 20}), out)


if __name__ == "__main__":
    unittest.main()
