#!/usr/bin/env python3
"""A whole RS-485 bus from one firelink-sim process (`firelink-sim bus`): gas detectors at units 1 and 2 and a
pyrolysis detector at unit 3 on one socat pty pair, polled by the real firelink-host run with a site file.

- One scenario file names the units and drives them: each detector's alarm must reach the platform
  (firelink-receiver, through the host's uplink), each from its own unit; a fourth device in the site file, at a unit
  nobody simulates, gets no answer at all, as on a real bus, and the simulator counts its requests.
- The same bus from the command line (--unit LIST=MODEL), driven from standard input.
- What the simulator refuses before it serves, and every shipped scenario with the command line its first line gives.

Usage (ctest passes these): sim_bus_test.py FIRELINK_HOST FIRELINK_SIM FIRELINK_RECEIVER PLUGIN_DIR [unittest args]
"""
import os
import re
import shlex
import subprocess
import unittest

from firelink_e2e import PtyPair, Receiver, Sim, Site, driver_events, new_workdir, take_arguments, wait_for

HOST, SIM, RECEIVER, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "FIRELINK_RECEIVER", "PLUGIN_DIR")
SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "sim", "modbus", "scenarios")

# Each detector goes into alarm and stays there, so what the host reports does not depend on when it starts polling.
SCENARIO = """\
# the bus: which model answers at which unit
unit 1-2  gas-valve
unit 3    pyrolysis
# ms   unit  action
200    @1    gas 30                # level-1 alarm
400    @2    ramp-gas 60 500       # through level 1 to level 2
600    @3    ramp-level 700 500    # pre-alarm, then the latched alarm
"""

GAS, PYRO = ("modbus-gas-valve", "gas_shutoff_valve"), ("modbus-pyrolysis", "pyrolysis_detector")
DEVICES = {1: ("gas-1", *GAS), 2: ("gas-2", *GAS), 3: ("pyro-3", *PYRO), 4: ("gas-4", *GAS)}


def bus_site(path, units, uplink=""):
    body = uplink + (f'[[bus]]\nid = "rs485-1"\nkind = "rs485"\npath = "{path}"\nbaud = 9600\n'
                     f'request_timeout_ms = 150\ninter_frame_gap_ms = 2\n\n')
    for unit in units:
        dev, driver, cls = DEVICES[unit]
        body += (f'[[device]]\nid = "{dev}"\ndriver = "{driver}"\nclass = "{cls}"\nheartbeat_s = 2\n'
                 f'wire = {{ bus = "rs485-1", unit = {unit} }}\n'
                 f'config = {{ poll_ms = 50, debounce = 2, telemetry_ms = 0 }}\n\n')
    return body


class OneProcessBus(unittest.TestCase):
    def setUp(self):
        self.dir = new_workdir(self)
        self.pty = PtyPair(self.dir)
        self.addCleanup(self.pty.close)

    def site(self, units, uplink=""):
        s = Site(HOST, PLUGINS, bus_site(self.pty.host_end, units, uplink), self.dir)
        self.addCleanup(s.close)
        return s.start()

    def test_one_scenario_drives_three_models_and_each_alarm_reaches_the_platform(self):
        receiver = Receiver(RECEIVER, self.dir).start()
        self.addCleanup(receiver.close)
        scenario = os.path.join(self.dir, "site.scn")
        with open(scenario, "w") as f:
            f.write(SCENARIO)
        sim = Sim(SIM, "bus", "--serial", self.pty.device_end, "--scenario", scenario)
        self.addCleanup(sim.close)
        self.assertTrue(sim.has("units 1=gas-valve 2=gas-valve 3=pyrolysis"), sim.lines)
        uplink = (f'[uplink]\nurl = "{receiver.url()}"\nqueue_path = "queue.db"\nbackoff_max_s = 1\n'
                  f'reserve_mb = 0\n\n')
        s = self.site((1, 2, 3, 4), uplink)

        def alarms():
            return {(r["device"], r["code"]) for r in receiver.rows("kind = 'alarm'")}
        want = {("gas-1", "gas_level_1"), ("gas-2", "gas_level_2"), ("pyro-3", "pyrolysis_alarm")}
        try:
            wait_for(lambda: want <= alarms(), "the three alarms at the receiver", timeout=60)
        except AssertionError:
            raise AssertionError(f"at the receiver: {sorted(alarms())}\nsimulator:\n" + "\n".join(sim.lines) +
                                 "\nhost log (tail):\n" + s.output()[-3000:])
        # Each unit answered with its own model's registers: unit 1 never saw unit 2's 60 %LEL.
        self.assertEqual({c for d, c in alarms() if d == "gas-1"}, {"gas_level_1"})
        self.assertNotIn("gas-4", {d for d, c in alarms()})

        # Unit 4: the host asked, nobody answered, and the simulator counted every request it let pass.
        wait_for(lambda: s.devices()["gas-4"]["wire"]["reply_timeouts"] >= 3, "unit 4's reply timeouts")
        dead = s.devices()["gas-4"]["wire"]
        self.assertEqual(dead["bytes_in"], 0, dead)
        for dev in ("gas-1", "gas-2", "pyro-3"):
            self.assertEqual(s.devices()[dev]["wire"]["reply_timeouts"], 0, dev)
        s.stop()
        sim.close()
        counted = [int(m.group(1)) for m in (re.search(r"unit 4: (\d+) request\(s\) for a unit nobody serves", l)
                                             for l in sim.lines) if m]
        self.assertEqual(len(counted), 1, sim.lines)
        self.assertGreaterEqual(counted[0], dead["reply_timeouts"])
        self.assertFalse([l for l in sim.lines if re.search(r"unit [123]: \d+ request\(s\) for a unit nobody", l)])

    def test_units_from_the_command_line_and_actions_from_stdin(self):
        sim = Sim(SIM, "bus", "--serial", self.pty.device_end, "--unit", "1-2=gas-valve", "--unit", "3=pyrolysis")
        self.addCleanup(sim.close)
        s = self.site((1, 2, 3))
        wait_for(lambda: all(s.devices()[DEVICES[u][0]]["wire"]["bytes_in"] > 0 for u in (1, 2, 3)), "replies")
        sim.do("@3 level 700")
        s.wait_event("pyro-3's alarm", lambda r: r["device"] == "pyro-3" and r["event"]["code"] == "pyrolysis_alarm")
        sim.do("@2 gas 60")
        s.wait_event("gas-2's alarm", lambda r: r["device"] == "gas-2" and r["event"]["code"] == "gas_level_2")
        self.assertEqual(driver_events(s, "gas-1", "alarm"), [], "only units 2 and 3 were in alarm")


class Refused(unittest.TestCase):
    """A simulation that cannot be what it says stops before it serves, with the reason (exit 2)."""

    def refused(self, *args, scenario=None):
        d = new_workdir(self)
        if scenario is not None:
            path = os.path.join(d, "s.scn")
            with open(path, "w") as f:
                f.write(scenario)
            args += ("--scenario", path)
        p = subprocess.run([SIM, *args, "--listen", "127.0.0.1:0", "--for", "5"], capture_output=True, text=True,
                           timeout=20)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertNotIn("ready", p.stdout)
        return p.stderr

    def test_refusals(self):
        mixed = "unit 1 gas-valve\nunit 2 pyrolysis\n"
        self.assertIn("name the unit (@N)", self.refused("bus", scenario=mixed + "100 gas 30\n"))
        self.assertIn("unknown action 'gas'", self.refused("bus", scenario=mixed + "100 @2 gas 30\n"))
        self.assertIn("no unit 5 here", self.refused("bus", scenario=mixed + "100 @5 level 30\n"))
        self.assertIn("unit 2 is given twice", self.refused("bus", "--unit", "2=gas-valve", scenario=mixed))
        self.assertIn("no model 'smoke'", self.refused("bus", "--unit", "3=smoke"))
        self.assertIn("no units", self.refused("bus"))
        self.assertIn("for firelink-sim bus", self.refused("gas-valve", scenario=mixed))
        self.assertIn("unknown action", self.refused("bus", "--unit", "1=pyrolysis", "--do", "ramp-gas 30 100"))


class ShippedScenarios(unittest.TestCase):
    def test_each_runs_with_the_command_line_its_first_line_gives(self):
        names = sorted(n for n in os.listdir(SCENARIOS) if n.endswith(".scn"))
        self.assertIn("gas-demo.scn", names)  # the one-model files of before keep working
        for name in names:
            with open(os.path.join(SCENARIOS, name)) as f:
                first = f.readline()
            m = re.match(r"# firelink-sim (.*)$", first)
            self.assertTrue(m, f"{name}: the first line gives its command line")
            args = [os.path.join(SCENARIOS, a) if a == name else a for a in shlex.split(m.group(1))]
            p = subprocess.run([SIM, *args, "--listen", "127.0.0.1:0", "--for", "0.5"], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(p.returncode, 0, f"{name}: {p.stdout}{p.stderr}")
            self.assertIn("ready", p.stdout, name)


if __name__ == "__main__":
    unittest.main()
