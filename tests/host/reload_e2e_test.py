#!/usr/bin/env python3
"""A device never leaves monitoring silently, with real processes: firelink-host run with the
modbus-gas-valve plugin in its runner, firelink-sim as the gas detector on Modbus TCP, and firelink-receiver as the
platform behind [uplink].

- A reload with a config the driver refuses (poll_ms = 5) keeps the device running on its previous definition: its
  active gas alarm stays active at the platform, a `config_rejected` fault arrives there, the reload's answer names
  the device and the driver's reason, and `check-config` refused the same file first, at the line of poll_ms. The
  same instance ends its alarm when the gas clears; a later good reload ends the fault.
- A device whose wire never opens is a `device_down` fault at the platform within its liveness budget, listed as
  `down` with its reason, and restored once the wire opens.
- A device its driver refuses at start-up is `device_down` too, stays listed with its metrics, and runs after a reload
  that fixes it.

Usage (ctest passes these): reload_e2e_test.py FIRELINK_HOST FIRELINK_SIM FIRELINK_RECEIVER PLUGIN_DIR
[unittest args]
"""
import json
import os
import subprocess
import time
import unittest

from firelink_e2e import (Receiver, Sim, Site, free_port, new_workdir, print_logs_if_failed, request_json, take_arguments,
                          wait_for)

HOST, SIM, RECEIVER, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "FIRELINK_RECEIVER", "PLUGIN_DIR")

DEVICE = "gas-a-laundry"
FAST = "debounce = 2, telemetry_ms = 0, reply_timeout_ms = 300, command_timeout_ms = 1500"
REFUSAL = "create: config key 'poll_ms': 5 is outside 10..3600000"



def gas_device(port, poll_ms, heartbeat=None, dev_id=DEVICE):
    hb = f"heartbeat_s = {heartbeat}\n" if heartbeat is not None else ""
    return (f'[[device]]\nid = "{dev_id}"\ndriver = "modbus-gas-valve"\nclass = "gas_shutoff_valve"\n{hb}'
            f'wire = {{ tcp = "127.0.0.1:{port}", unit = 1 }}\nsite = {{ location = "laundry" }}\n'
            f'config = {{ poll_ms = {poll_ms}, {FAST} }}\n\n')


class Platform:
    """What the receiver has for a device: its events in the gateway's order, and its active conditions."""

    def __init__(self, receiver):
        self.receiver = receiver

    def events(self, device=DEVICE):
        return [json.loads(r["event"]) | {"origin": r["origin"], "device_seq": r["device_seq"]}
                for r in self.receiver.rows("device=?", (device,))]

    def active(self, device=DEVICE):
        status, devices = request_json("GET", self.receiver.url("/api/devices"))
        assert status == 200, devices
        return [a["event_id"] for d in devices if d["device"] == device for a in d["active"]]

    def wait(self, what, predicate, device=DEVICE):
        try:
            return wait_for(lambda: next((e for e in self.events(device) if predicate(e)), None), what)
        except AssertionError:
            raise AssertionError(f"timed out waiting for {what}; the platform has:\n" +
                                 "\n".join(json.dumps(e) for e in self.events(device)))


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.dir = new_workdir(self)
        self.receiver = Receiver(RECEIVER, self.dir).start()
        self.addCleanup(self.receiver.close)
        self.platform = Platform(self.receiver)

    def site(self, body):
        uplink = (f'[uplink]\nurl = "{self.receiver.url()}"\nqueue_path = "queue.db"\nbackoff_max_s = 1\n'
                  f'reserve_mb = 0\n\n')
        s = Site(HOST, PLUGINS, uplink + body, self.dir)
        self.addCleanup(s.close)
        return s

    def rewrite(self, s, old, new):
        with open(s.config) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(s.config + ".tmp", "w") as f:
            f.write(text.replace(old, new))
        os.replace(s.config + ".tmp", s.config)
        return text.replace(old, new)

    def reload(self, s):
        return s.post("/api/reload", timeout=70)  # with the admin token

    def device(self, s, dev_id=DEVICE):
        return s.devices()[dev_id]

    def tearDown(self):
        print_logs_if_failed(self, self.dir, lines=80)

    def test_KeptOnRefusal(self):
        sim = Sim(SIM, "gas-valve", "--listen", "127.0.0.1:0")
        self.addCleanup(sim.close)
        s = self.site(gas_device(sim.port, 50)).start()
        wait_for(lambda: self.device(s).get("wire", {}).get("bytes_in", 0) > 0, "the first reply")
        sim.do("gas 60")
        alarm = self.platform.wait("the level-2 gas alarm at the platform",
                                   lambda e: e["kind"] == "alarm" and e["code"] == "gas_level_2")
        self.assertIn(alarm["event_id"], self.platform.active())
        seq_before = self.device(s)["events_accepted"]

        # The integrator's change: check-config refuses it first, with the driver's words at poll_ms's line.
        text = self.rewrite(s, "poll_ms = 50,", "poll_ms = 5,")
        line = next(i for i, l in enumerate(text.splitlines(), 1) if "poll_ms = 5," in l)
        column = text.splitlines()[line - 1].index("poll_ms = 5,") + len("poll_ms = ") + 1
        check = subprocess.run([HOST, "check-config", s.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(check.returncode, 1, check.stdout + check.stderr)
        self.assertIn(f"{s.config}:{line}:{column}: device[0].config.poll_ms: device '{DEVICE}': "
                      f"create_device(modbus-gas-valve) returned -4: {REFUSAL}", check.stderr)

        # Reloaded anyway: the device keeps running on its previous definition, and the answer says why.
        status, answer = self.reload(s)
        self.assertEqual(status, 207, answer)
        self.assertEqual([k["device"] for k in answer["kept"]], [DEVICE], answer)
        self.assertIn(f":{line}:{column}: device[0].config.poll_ms: ", answer["kept"][0]["error"])
        self.assertIn(REFUSAL, answer["kept"][0]["error"])
        self.assertEqual((answer["changed"], answer["problems"], answer["devices"]), ([], [], 1), answer)

        rejected = self.platform.wait("config_rejected at the platform",
                                      lambda e: e["kind"] == "fault" and e["code"] == "config_rejected")
        self.assertEqual((rejected["origin"], rejected["event_id"], rejected["severity"]),
                         ("host", "config-rejected", "minor"))
        self.assertIn(REFUSAL, rejected["message"])
        self.assertIn("runs on its previous one", rejected["message"])
        d = self.device(s)
        self.assertEqual(d["state"], "started")
        self.assertIn(REFUSAL, d["config_rejected"])
        self.assertIn(alarm["event_id"], [c["event_id"] for c in d["open_conditions"]])
        # /healthz names the device and why, and ?strict fails while it runs on its old definition.
        status, health = s.get("/healthz?strict")
        health = json.loads(health)
        self.assertEqual((status, health["status"]), (503, "degraded"), health)
        self.assertTrue([r for r in health["reasons"] if r["id"] == DEVICE and REFUSAL in r["problem"]
                         and r["problem"].startswith("config rejected: ")], health)
        # The same instance: its sequence ran on (a recreated device would start again at 1), and it still polls.
        bytes_in = d["wire"]["bytes_in"]
        wait_for(lambda: self.device(s)["wire"]["bytes_in"] > bytes_in, "polls after the reload")
        seqs = [r["seq"] for r in s.events(DEVICE)]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "the device was not recreated")
        self.assertGreater(self.device(s)["events_accepted"], seq_before)
        active = self.platform.active()
        self.assertIn(alarm["event_id"], active)
        self.assertIn("config-rejected", active)
        # Still monitored by the same instance: the gas clears, and it ends its own alarm at the platform.
        sim.do("gas 0")
        restore = self.platform.wait("the alarm's restore",
                                     lambda e: e["kind"] == "restore" and e.get("ends") == alarm["event_id"])
        self.assertEqual(restore["origin"], "driver")
        wait_for(lambda: alarm["event_id"] not in self.platform.active(), "the alarm to end at the platform")

        # Fixed: the next reload recreates it on the new definition and ends the fault.
        self.rewrite(s, "poll_ms = 5,", "poll_ms = 60,")
        status, answer = self.reload(s)
        self.assertEqual(status, 200, answer)
        self.assertEqual((answer["changed"], answer["kept"]), ([DEVICE], []), answer)
        ended = self.platform.wait("config_rejected restored",
                                   lambda e: e["kind"] == "restore" and e["code"] == "config_rejected")
        self.assertEqual(ended["ends"], "config-rejected")
        wait_for(lambda: "config-rejected" not in self.platform.active(), "the fault to end at the platform")
        self.assertIsNone(self.device(s)["config_rejected"])
        self.assertEqual(s.stop(), 0, s.output())

    def test_WireNeverOpens(self):
        port = free_port()  # nothing listens there
        s = self.site(gas_device(port, 50, heartbeat=2)).start()
        started = time.monotonic()
        down = self.platform.wait("device_down at the platform",
                                  lambda e: e["kind"] == "fault" and e["code"] == "device_down")
        # Within its liveness budget (2 s, checked at the budget) and the uplink's first delivery.
        self.assertLess(time.monotonic() - started, 2 + 5)
        self.assertEqual((down["origin"], down["event_id"], down["severity"]), ("host", "device-down", "major"))
        self.assertIn(f"its wire (tcp 127.0.0.1:{port} unit 1) has not opened within 2 s of the device's start",
                      down["message"])
        d = self.device(s)
        self.assertEqual(d["state"], "down")
        self.assertEqual(d["down_reason"], down["message"])
        self.assertIn(f'firelink_device_state{{device="{DEVICE}",state="down"}} 1', s.get("/metrics")[1])
        self.assertIn("device-down", self.platform.active())
        status, health = s.get("/healthz?strict")
        self.assertEqual(status, 503, health)
        self.assertTrue([r for r in json.loads(health)["reasons"] if r["id"] == DEVICE and "has not opened" in r["problem"]],
                        health)

        # The device appears at its address: the wire opens and the fault ends.
        sim = Sim(SIM, "gas-valve", "--listen", f"127.0.0.1:{port}")
        self.addCleanup(sim.close)
        self.platform.wait("device_down restored", lambda e: e["kind"] == "restore" and e["code"] == "device_down")
        wait_for(lambda: "device-down" not in self.platform.active(), "the fault to end at the platform")
        wait_for(lambda: self.device(s)["down_reason"] is None, "the device no longer down")
        wait_for(lambda: s.get("/healthz?strict")[0] == 200, "/healthz?strict to answer 200 again")
        self.assertEqual(s.stop(), 0, s.output())

    def test_RefusedAtStart(self):
        sim = Sim(SIM, "gas-valve", "--listen", "127.0.0.1:0")
        self.addCleanup(sim.close)
        s = self.site(gas_device(sim.port, 5)).start()
        down = self.platform.wait("device_down at the platform",
                                  lambda e: e["kind"] == "fault" and e["code"] == "device_down")
        self.assertIn(REFUSAL, down["message"])
        d = self.device(s)
        self.assertEqual((d["state"], d["class"], d["plugin"]), ("down", "gas_shutoff_valve", "org.firelink.drivers.gas-valve"))
        self.assertIn(REFUSAL, d["down_reason"])
        self.assertEqual(d["site"], {"location": "laundry"})
        self.assertIn(f'firelink_device_state{{device="{DEVICE}",state="down"}} 1', s.get("/metrics")[1])
        status, answer = s.command(DEVICE, "close_valve")
        self.assertEqual(status, 409, answer)
        self.assertEqual(answer["detail"], "the device is down: " + d["down_reason"])

        self.rewrite(s, "poll_ms = 5,", "poll_ms = 50,")
        status, answer = self.reload(s)
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["added"], [DEVICE], answer)
        self.platform.wait("device_down restored", lambda e: e["kind"] == "restore" and e["code"] == "device_down")
        wait_for(lambda: self.device(s)["state"] == "started", "the device to run")
        self.assertNotIn("device-down", self.platform.active())
        self.assertEqual(s.stop(), 0, s.output())


if __name__ == "__main__":
    unittest.main(verbosity=2)
