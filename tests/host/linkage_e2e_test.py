#!/usr/bin/env python3
"""Local linkage end to end: firelink-host run with the gas-valve plugin (in its runner) against firelink-sim gas-valve
devices over Modbus TCP on loopback, [[linkage]] rules in the site file, an uplink whose platform is down (or is
firelink-receiver once it starts). What moved is read from the devices' own events (valve_closed), each linkage step
from the gateway's events in the local record, the admin port's /api/linkage and the audit chain.

Usage (ctest passes these): linkage_e2e_test.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR FIRELINK_RECEIVER [unittest args]
"""
import json
import os
import subprocess
import time
import unittest

from firelink_e2e import (Receiver, Site, driver_events, free_port, request_json, take_arguments, tcp_sim, value_of,
                          wait_for)

HOST, SIM, PLUGINS, RECEIVER = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "PLUGIN_DIR", "FIRELINK_RECEIVER")

FAST = 'poll_ms = 50, debounce = 1, telemetry_ms = 0, reply_timeout_ms = 300, command_timeout_ms = 1500'
GATEWAY = "gw-modbus"


def valve(id, port, floor="1F"):
    return (f'[[device]]\nid = "{id}"\ndriver = "modbus-gas-valve"\nclass = "gas_shutoff_valve"\n'
            f'wire = {{ tcp = "127.0.0.1:{port}", unit = 1 }}\n'
            f'site = {{ building = "A", floor = "{floor}" }}\nconfig = {{ {FAST} }}\n\n')


KITCHEN = '''[[linkage]]
id = "kitchen-gas"
{extra}
[linkage.trigger]
any = [{{ device = "gas-1", code = "gas_level_2" }}]

[[linkage.action]]
device = "gas-1"
command = "close_valve"
args = {{ reason = "linkage: kitchen gas" }}
timeout_s = 5

'''


def linkage_events(site, code=None):
    """The gateway's linkage events in the local record, oldest first."""
    return [r["event"] for r in site.events(GATEWAY)
            if r["event"]["code"].startswith("linkage_") and (code is None or r["event"]["code"] == code)]


def wait_linkage(site, code, predicate=lambda e: True, timeout=30):
    return site.wait_event(code, lambda r: r["device"] == GATEWAY and r["event"]["code"] == code and
                           predicate(r["event"]), timeout)["event"]


class LinkageTest(unittest.TestCase):
    def sims(self, n, *args):
        out = []
        for _ in range(n):
            folder, sim = tcp_sim(self, SIM, "gas-valve", *args)
            sim.do("travel-ms 50")
            out.append(sim)
        self.dir = folder
        return out

    def site(self, body, control='[control]\nplatform_may = ["linkage_confirm"]\n', uplink_port=None):
        # The uplink's platform: a port nothing listens on unless a test starts a receiver there.
        self.uplink_port = uplink_port or free_port()
        uplink = (f'[uplink]\nurl = "http://127.0.0.1:{self.uplink_port}"\nqueue_path = "queue.db"\n'
                  f'token_file = "uplink-token"\nbackoff_max_s = 1\n\n')
        with open(os.path.join(self.dir, "uplink-token"), "w") as f:
            f.write("t0ken\n")
        s = Site(HOST, PLUGINS, control + uplink + body, self.dir)
        s.body = control + uplink + body  # for a test that rewrites it and reloads
        self.addCleanup(s.close)
        return s

    def linkage(self, s, rule):
        status, body = s.get_json("/api/linkage")
        self.assertEqual(status, 200, body)
        return next(r for r in body["rules"] if r["id"] == rule)

    def audit(self, s):
        status, body = s.get_json("/api/audit?limit=1000")
        self.assertEqual(status, 200, body)
        return body["records"]

    def test_a_gas_alarm_closes_its_valve_with_the_platform_down_and_the_platform_sees_it_later(self):
        gas, = self.sims(1)
        s = self.site(valve("gas-1", gas.port) + KITCHEN.format(extra="")).start().wait_first_reply("gas-1")
        self.assertEqual(self.linkage(s, "kitchen-gas")["state"], "idle")
        gas.do("gas 60")
        confirmed = wait_linkage(s, "linkage_confirmed")
        self.assertEqual(value_of(confirmed, "device"), "gas-1")
        self.assertEqual(value_of(confirmed, "command"), "close_valve")
        self.assertIn("closed", confirmed["message"])  # the driver's read-back: the valve reads closed
        self.assertGreaterEqual(value_of(confirmed, "latency_ms"), 0)
        self.assertTrue(driver_events(s, "gas-1", "status", "valve_closed"), "the valve did not report closed")
        started = linkage_events(s, "linkage_started")
        self.assertEqual(len(started), 1)
        self.assertIn("gas_level_2 at gas-1", value_of(started[0], "trigger"))
        rule = self.linkage(s, "kitchen-gas")
        self.assertEqual(rule["state"], "active")  # latching: until a reset
        self.assertEqual([a["state"] for a in rule["run"]["actions"]], ["confirmed"])
        # The audit chain: the rule fired, then the select, operate and result as principal linkage:kitchen-gas.
        steps = [(r["step"], r["principal"]) for r in self.audit(s) if r.get("principal") == "linkage:kitchen-gas"]
        self.assertEqual([st for st, _ in steps], ["linkage_fire", "select", "operate", "result"])
        status, metrics = s.get("/metrics")
        self.assertIn('firelink_linkage_events_total{rule="kitchen-gas",code="linkage_confirmed"} 1', metrics)
        # The platform has seen nothing; once it is up, the queued confirmation reaches it.
        receiver = Receiver(RECEIVER, self.dir, port=self.uplink_port, tokens=f"gateway {GATEWAY} t0ken\n").start()
        self.addCleanup(receiver.stop)
        rows = wait_for(lambda: receiver.rows("code = 'linkage_confirmed'") or None,
                        "linkage_confirmed at the platform", 30)
        self.assertEqual(rows[0]["device"], GATEWAY)
        # A reset ends the run; the valve stays closed (ending never undoes an action).
        status, answer = s.post("/api/linkage/kitchen-gas/reset", {"why": "gas cleared, checked on site"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(self.linkage(s, "kitchen-gas")["state"], "idle")
        wait_linkage(s, "linkage_ended", lambda e: value_of(e, "by") == "reset")
        self.assertEqual(s.stop(), 0, s.output())
        ok = subprocess.run([HOST, "audit", "verify", os.path.join(self.dir, "queue.db")], capture_output=True,
                            text=True, timeout=60)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)

    def test_all_of_two_needs_two_independent_devices(self):
        a, b, target = self.sims(3)
        rule = '''[[linkage]]
id = "two-detectors"
[linkage.trigger]
all = [{ building = "A", floor = "1F", kind = "alarm" }]
count = 2
window_s = 60
[[linkage.action]]
device = "gas-3"
command = "close_valve"
'''
        s = self.site(valve("gas-1", a.port) + valve("gas-2", b.port) + valve("gas-3", target.port, floor="2F") +
                      rule).start().wait_first_reply("gas-1").wait_first_reply("gas-2").wait_first_reply("gas-3")
        a.do("gas 60")  # one device, two alarms (level 1 and level 2): one source
        s.wait_driver_event("gas-1 level 2", lambda e: e["code"] == "gas_level_2", "gas-1")
        time.sleep(0.5)
        self.assertEqual(self.linkage(s, "two-detectors")["state"], "idle")
        self.assertEqual(linkage_events(s), [])
        b.do("gas 30")  # a second, independent device
        confirmed = wait_linkage(s, "linkage_confirmed")
        self.assertEqual(value_of(confirmed, "device"), "gas-3")
        started = linkage_events(s, "linkage_started")[0]
        self.assertIn("gas-1", value_of(started, "trigger"))
        self.assertIn("gas-2", value_of(started, "trigger"))
        self.assertTrue(driver_events(s, "gas-3", "status", "valve_closed"))
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_closed"), [])

    def test_manual_mode_moves_nothing_until_an_operator_confirms(self):
        gas, = self.sims(1)
        s = self.site(valve("gas-1", gas.port) + KITCHEN.format(extra='mode = "manual"\nconfirm_within_s = 60'))
        s.start().wait_first_reply("gas-1")
        status, answer = s.post("/api/linkage/kitchen-gas/confirm")
        self.assertEqual(status, 409, answer)  # nothing to confirm yet
        gas.do("gas 60")
        request = wait_linkage(s, "linkage_request")
        self.assertEqual(request["kind"], "alarm")
        time.sleep(0.5)
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_closed"), [])
        self.assertEqual(linkage_events(s, "linkage_started"), [])
        self.assertEqual(self.linkage(s, "kitchen-gas")["state"], "requested")
        status, answer = s.post("/api/linkage/kitchen-gas/confirm")
        self.assertEqual(status, 200, answer)
        wait_linkage(s, "linkage_confirmed")
        self.assertTrue(driver_events(s, "gas-1", "status", "valve_closed"))
        confirm = [r for r in self.audit(s) if r["step"] == "linkage_confirm"]
        self.assertEqual(len(confirm), 1)
        self.assertEqual(confirm[0]["source"], "admin")

    def test_the_platform_confirms_a_request_only_as_platform_may_allows(self):
        gas, = self.sims(1)
        port = free_port()
        receiver = Receiver(RECEIVER, self.dir, port=port,
                            tokens=f"gateway {GATEWAY} t0ken\noperator * op-secret\n").start()
        self.addCleanup(receiver.stop)

        def platform_command(name):
            status, answer = request_json("POST", receiver.url("/api/commands"),
                                          {"gateway": GATEWAY, "device": GATEWAY, "name": name,
                                           "args": {"rule": "kitchen-gas"}}, "op-secret")
            self.assertEqual(status, 200, answer)

            def result():
                status, rows = request_json("GET", receiver.url(f"/api/commands?gateway={GATEWAY}&limit=10"),
                                            token="op-secret")
                row = next(r for r in rows if r["id"] == answer["id"])
                return row if row["status"] in ("succeeded", "failed") else None
            return wait_for(result, f"the result of {name} at the platform", 30)

        rule = KITCHEN.format(extra='mode = "manual"\nconfirm_within_s = 60')
        s = self.site(valve("gas-1", gas.port) + rule, control="[control]\n", uplink_port=port)
        s.start().wait_first_reply("gas-1")
        gas.do("gas 60")
        wait_linkage(s, "linkage_request")
        # Not listed in platform_may: refused, and nothing moves.
        refused = platform_command("linkage_confirm")
        self.assertEqual(refused["status"], "failed", refused)
        self.assertIn("not_authorized", refused["result"]["message"])
        self.assertEqual(self.linkage(s, "kitchen-gas")["state"], "requested")
        self.assertEqual(s.stop(), 0, s.output())
        # Listed: the platform's confirmation runs the request (which survived the restart).
        s = self.site(valve("gas-1", gas.port) + rule, uplink_port=port)
        s.start().wait_first_reply("gas-1")
        self.assertEqual(self.linkage(s, "kitchen-gas")["state"], "requested")
        confirmed = platform_command("linkage_confirm")
        self.assertEqual(confirmed["status"], "succeeded", confirmed)
        wait_linkage(s, "linkage_confirmed")
        steps = [r for r in self.audit(s) if r["step"] == "linkage_confirm"]
        self.assertEqual([(r["principal"], r["source"]) for r in steps], [("platform", "platform")])

    def test_an_unconfirmed_request_expires_and_is_reported(self):
        gas, = self.sims(1)
        s = self.site(valve("gas-1", gas.port) + KITCHEN.format(extra='mode = "manual"\nconfirm_within_s = 10'))
        s.start().wait_first_reply("gas-1")
        gas.do("gas 60")
        wait_linkage(s, "linkage_request")
        failed = wait_linkage(s, "linkage_failed", timeout=20)
        self.assertEqual(value_of(failed, "reason"), "request_expired")
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_closed"), [])
        self.assertEqual(self.linkage(s, "kitchen-gas")["last_runs"][0]["state"], "expired")
        status, answer = s.post("/api/linkage/kitchen-gas/confirm")
        self.assertEqual(status, 409, answer)

    def test_a_stuck_valve_gives_linkage_failed_within_the_command_timeout(self):
        gas, = self.sims(1)
        s = self.site(valve("gas-1", gas.port) + KITCHEN.format(extra="")).start().wait_first_reply("gas-1")
        gas.do("stuck on")
        t0 = time.monotonic()
        gas.do("gas 60")
        failed = wait_linkage(s, "linkage_failed")
        self.assertLess(time.monotonic() - t0, 5 + 2)  # the action's timeout_s, with the poll's slack
        self.assertEqual(value_of(failed, "device"), "gas-1")
        self.assertIn(value_of(failed, "reason"), ("command_failed", "timeout"))
        self.assertEqual(failed["severity"], "critical")
        self.assertEqual(linkage_events(s, "linkage_confirmed"), [])

    def test_inhibit_watches_and_moves_nothing_and_the_mode_survives_a_restart(self):
        gas, = self.sims(1)
        s = self.site(valve("gas-1", gas.port) + KITCHEN.format(extra="")).start().wait_first_reply("gas-1")
        status, answer = s.post("/api/linkage/kitchen-gas/mode", {"mode": "inhibit", "why": "valve maintenance"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(s.stop(), 0, s.output())
        s.start().wait_first_reply("gas-1")
        self.assertEqual(self.linkage(s, "kitchen-gas")["mode"], "inhibit")
        gas.do("gas 60")
        wait_linkage(s, "linkage_inhibited")
        time.sleep(0.3)
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_closed"), [])
        modes = [r for r in self.audit(s) if r["step"] == "linkage_mode"]
        self.assertEqual((modes[0]["mode"], modes[0]["why"]), ("inhibit", "valve maintenance"))

    def test_a_kill_mid_linkage_neither_repeats_nor_forgets_an_action(self):
        first, second = self.sims(2)
        rule = '''[[linkage]]
id = "two-valves"
[linkage.trigger]
any = [{ device = "gas-1", code = "gas_level_2" }]
[[linkage.action]]
device = "gas-1"
command = "close_valve"
[[linkage.action]]
device = "gas-2"
command = "close_valve"
delay_ms = 4000
'''
        s = self.site(valve("gas-1", first.port) + valve("gas-2", second.port) + rule)
        s.start().wait_first_reply("gas-1")
        first.do("gas 60")
        wait_linkage(s, "linkage_confirmed", lambda e: value_of(e, "device") == "gas-1")
        s.kill9()  # during the second action's delay
        s.start().wait_first_reply("gas-2")
        wait_linkage(s, "linkage_confirmed", lambda e: value_of(e, "device") == "gas-2", timeout=20)
        run = self.linkage(s, "two-valves")["run"]
        self.assertEqual([a["state"] for a in run["actions"]], ["confirmed", "confirmed"])
        operates = [r for r in self.audit(s) if r["step"] == "operate" and r["principal"] == "linkage:two-valves"]
        self.assertEqual(sorted(r["device"] for r in operates), ["gas-1", "gas-2"])  # each once
        self.assertEqual(len([e for e in linkage_events(s, "linkage_started")]), 1)

    def test_an_action_sent_before_a_kill_is_reported_interrupted_not_sent_again(self):
        gas, = self.sims(1)
        gas.do("travel-ms 3000")  # the valve takes 3 s: the host dies before its read-back
        s = self.site(valve("gas-1", gas.port) + KITCHEN.format(extra="")).start().wait_first_reply("gas-1")
        gas.do("gas 60")
        # Handed over: the run says sent and the chain holds the operate (a kill between the two is the same case,
        # with no operate to show for it).
        wait_for(lambda: any(a["state"] == "sent" for a in (self.linkage(s, "kitchen-gas")["run"] or {})
                             .get("actions", [])) or None, "the close handed over")
        wait_for(lambda: [r for r in self.audit(s) if r["step"] == "operate"] or None, "the operate in the chain")
        s.kill9()
        s.start()
        failed = wait_linkage(s, "linkage_failed")
        self.assertEqual(value_of(failed, "reason"), "interrupted")
        run = self.linkage(s, "kitchen-gas")["run"]
        self.assertEqual([a["state"] for a in run["actions"]], ["interrupted"])
        operates = [r for r in self.audit(s) if r["step"] == "operate" and r["principal"] == "linkage:kitchen-gas"]
        self.assertEqual(len(operates), 1)
        time.sleep(0.5)
        self.assertEqual(len([r for r in self.audit(s) if r["step"] == "operate"]), 1)

    def test_check_config_and_run_refuse_a_rule_whose_command_no_driver_declares(self):
        gas, = self.sims(1)
        good = valve("gas-1", gas.port) + KITCHEN.format(extra="")
        s = self.site(good)
        ok = subprocess.run([HOST, "check-config", s.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("1 linkage rule(s)", ok.stdout)
        s = self.site(good.replace('command = "close_valve"', 'command = "close_vlave"'))
        bad = subprocess.run([HOST, "check-config", s.config], capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn("linkage[0].action[0].command: device 'gas-1' (driver 'modbus-gas-valve') declares no command "
                      "'close_vlave' (it has: close_valve, open_valve, self_test)", bad.stderr)
        s.start().wait_first_reply("gas-1")
        rule = self.linkage(s, "kitchen-gas")
        self.assertEqual(rule["state"], "refused")
        self.assertIn("close_vlave", rule["why"])
        gas.do("gas 60")
        s.wait_driver_event("gas_level_2", lambda e: e["code"] == "gas_level_2", "gas-1")
        time.sleep(0.3)
        self.assertEqual(linkage_events(s), [])
        # A reload says that rules change at a restart only.
        s.write(s.body.replace('"close_vlave"', '"close_valve"'))
        status, answer = s.post("/api/reload")
        self.assertIn(status, (200, 207), answer)
        self.assertIn("[[linkage]] rules and device tags take effect at the next restart", json.dumps(answer))


if __name__ == "__main__":
    unittest.main()
