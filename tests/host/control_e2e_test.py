#!/usr/bin/env python3
"""Select-before-operate and the audit chain end to end: firelink-host run with the gas-valve plugin (in
its runner) against firelink-sim gas-valve over Modbus TCP on loopback; commands on the admin port; the audit chain
read at /api/audit and checked with `firelink-host audit verify`, before and after one byte of it is changed.

The platform's downlink is firelink-receiver's command route: the site lets it close the valve and not open it.

Usage (ctest passes these): control_e2e_test.py FIRELINK_HOST FIRELINK_SIM PLUGIN_DIR FIRELINK_RECEIVER [unittest args]
"""
import json
import os
import secrets
import sqlite3
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from firelink_e2e import Receiver, Site, driver_events, take_arguments, tcp_sim, wait_for

HOST, SIM, PLUGINS, RECEIVER = take_arguments("FIRELINK_HOST", "FIRELINK_SIM", "PLUGIN_DIR", "FIRELINK_RECEIVER")

FAST = 'poll_ms = 50, debounce = 2, telemetry_ms = 0, reply_timeout_ms = 300, command_timeout_ms = 1500'


def valve(port, control="", config=FAST):
    return (f'[control]\nselect_timeout_ms = 1500\n{control}\n'
            f'[[device]]\nid = "gas-1"\ndriver = "modbus-gas-valve"\nclass = "gas_shutoff_valve"\n'
            f'wire = {{ tcp = "127.0.0.1:{port}", unit = 1 }}\nconfig = {{ {config} }}\n\n')


class ControlTest(unittest.TestCase):
    def setUp(self):
        self.dir, self.sim = tcp_sim(self, SIM, "gas-valve")

    def site(self, control="", config=FAST):
        s = Site(HOST, PLUGINS, valve(self.sim.port, control, config), self.dir)
        self.addCleanup(s.close)
        return s.start().wait_first_reply("gas-1")

    def audit(self, s, after=0):
        status, body = s.get(f"/api/audit?after={after}&limit=1000")
        self.assertEqual(status, 200, body)
        return json.loads(body)["records"]

    def verify(self):
        return subprocess.run([HOST, "audit", "verify", os.path.join(self.dir, "firelink-audit.db")],
                              capture_output=True, text=True, timeout=60)

    def test_an_operate_without_a_select_is_refused_and_nothing_moves(self):
        s = self.site()
        status, answer = s.command("gas-1", "close_valve", cid="op-bare", select=False)
        self.assertEqual(status, 409, answer)
        self.assertEqual(answer["reason"], "not_selected")
        time.sleep(0.3)  # several polls: had the command gone out, the valve would read closed by now
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_closed"), [])
        self.assertEqual([r for r in s.events("gas-1") if r["event"].get("command_id") == "op-bare"], [])
        status, metrics = s.get("/metrics")
        self.assertIn('firelink_control_refused_total{reason="not_selected"} 1', metrics)
        self.assertIn("firelink_audit_records 1", metrics)

    def test_select_then_operate_runs_is_read_back_and_audited(self):
        s = self.site(config=FAST.replace("telemetry_ms = 0", "telemetry_ms = 100"))
        s.wait_event("telemetry", lambda r: r["event"]["kind"] == "telemetry")
        status, sel = s.select("gas-1", "close_valve")
        self.assertEqual(status, 200, sel)
        self.assertTrue(sel["select_id"])
        self.assertGreater(sel["expires_in_ms"], 0)
        status, answer = s.post("/api/devices/gas-1/commands",
                                {"name": "close_valve", "id": "op-close", "select_id": sel["select_id"]})
        self.assertEqual(status, 202, answer)
        res = s.wait_event("the result", lambda r: r["event"].get("command_id") == "op-close")["event"]
        self.assertTrue(res["ok"], res)
        # The selection is used up.
        status, answer = s.command("gas-1", "close_valve", select=False)
        self.assertEqual((status, answer["reason"]), (409, "not_selected"))

        def steps():
            recs = self.audit(s)
            return recs if any(r["step"] == "result" for r in recs) else None
        recs = wait_for(steps, "the result in the audit chain")
        by_step = {r["step"]: r for r in recs if r.get("command") == "close_valve" and r["granted"]}
        self.assertEqual(by_step["select"]["select_id"], sel["select_id"])
        self.assertEqual(by_step["operate"]["command_id"], "op-close")
        self.assertEqual(by_step["operate"]["before"]["state"], "started")
        before = {v["name"]: v["value"] for v in by_step["operate"]["before"]["last_state"]["values"]}
        self.assertEqual(before["valve"], "open")
        self.assertTrue(by_step["result"]["ok"])
        self.assertIn("closed", by_step["result"]["message"])
        self.assertEqual(by_step["result"]["principal"], by_step["operate"]["principal"])
        refusal = [r for r in recs if r.get("reason") == "not_selected"]
        self.assertEqual(len(refusal), 1)
        self.assertEqual(s.stop(), 0, s.output())

        ok = self.verify()
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("holds", ok.stdout)
        # One byte of one record: the operate's command id "op-close" becomes "op-clos3".
        db = sqlite3.connect(os.path.join(self.dir, "firelink-audit.db"))
        seq = by_step["operate"]["seq"]
        db.execute("UPDATE audit_chain SET record = replace(record, 'op-close', 'op-clos3') WHERE seq = ?", (seq,))
        db.commit()
        db.close()
        bad = self.verify()
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn(f"record {seq}", bad.stdout)

    def test_a_selection_expires(self):
        s = self.site()
        status, sel = s.select("gas-1", "close_valve")
        self.assertEqual(status, 200, sel)
        time.sleep(1.7)  # the site's selections live 1.5 s
        status, answer = s.command("gas-1", "close_valve", select=False)
        self.assertEqual((status, answer["reason"]), (409, "select_expired"), answer)
        time.sleep(0.3)
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_closed"), [])

    def test_local_mode_refuses_remote_moves_and_survives_a_restart(self):
        s = self.site()
        status, answer = s.post("/api/devices/gas-1/mode", {"mode": "local", "why": "maintenance"})
        self.assertEqual(status, 200, answer)
        status, answer = s.select("gas-1", "close_valve")
        self.assertEqual((status, answer["reason"]), (409, "local_mode"), answer)
        self.assertEqual(s.stop(), 0, s.output())
        s2 = self.site()
        status, answer = s2.select("gas-1", "close_valve")
        self.assertEqual((status, answer["reason"]), (409, "local_mode"), answer)
        status, body = s2.get("/api/control")
        self.assertEqual(json.loads(body)["modes"], {"gas-1": "local"})
        status, answer = s2.post("/api/devices/gas-1/mode", {"mode": "remote"})
        self.assertEqual(status, 200, answer)
        status, answer = s2.command("gas-1", "close_valve", cid="op-after")
        self.assertEqual(status, 202, answer)

    def test_reopening_is_interlocked_while_the_gas_alarm_is_open(self):
        s = self.site()
        self.sim.do("valve closed")
        self.sim.do("gas 40")
        s.wait_event("gas_level_1", lambda r: r["event"]["code"] == "gas_level_1")
        status, answer = s.command("gas-1", "open_valve", {"operator_confirmed": True, "operator": "li"})
        self.assertEqual((status, answer["reason"]), (409, "interlocked"), answer)
        self.assertIn("alarm", answer["detail"])
        # Closing is not restoring: it still runs in alarm.
        status, answer = s.command("gas-1", "close_valve", cid="op-c")
        self.assertEqual(status, 202, answer)
        self.sim.do("gas 0")
        s.wait_event("the restore", lambda r: r["event"]["kind"] == "restore")
        status, answer = s.command("gas-1", "open_valve", {"operator_confirmed": True, "operator": "li"}, cid="op-o")
        self.assertEqual(status, 202, answer)


    def test_principals_and_roles(self):
        s = Site(HOST, PLUGINS, valve(self.sim.port), self.dir)
        self.addCleanup(s.close)
        tokens = {"li": secrets.token_hex(16), "wang": secrets.token_hex(16), "ro": secrets.token_hex(16)}
        with open(os.path.join(self.dir, "admin-tokens"), "a") as f:
            f.write(f"operate li {tokens['li']}\noperate wang {tokens['wang']}\nread ro {tokens['ro']}\n")
        s.start().wait_first_reply("gas-1")

        def call(token, path, body=None, method="POST"):
            headers = {"Authorization": "Bearer " + token} if token else {}
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{s.port}{path}", data=data, method=method,
                                         headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, json.loads(r.read().decode() or "null")
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read().decode() or "null")

        close = {"name": "close_valve"}
        self.assertEqual(call(None, "/api/devices/gas-1/select", close)[0], 401)
        status, answer = call(None, "/api/devices/gas-1/commands", close)
        self.assertEqual(status, 401, answer)
        self.assertIn("token_file", answer["error"])
        self.assertEqual(call(tokens["ro"], "/api/devices/gas-1/select", close)[0], 403)
        self.assertEqual(call(tokens["ro"], "/api/devices/gas-1/commands", close)[0], 403)
        self.assertEqual(call(tokens["li"], "/api/devices/gas-1/mode", {"mode": "local"})[0], 403)
        status, sel = call(tokens["li"], "/api/devices/gas-1/select", close)
        self.assertEqual(status, 200, sel)
        status, answer = call(tokens["wang"], "/api/devices/gas-1/select", close)
        self.assertEqual((status, answer["reason"]), (409, "selected_by_other"), answer)
        self.assertIn("li", answer["detail"])
        status, answer = call(tokens["wang"], "/api/devices/gas-1/commands", close)
        self.assertEqual((status, answer["reason"]), (409, "selected_by_other"), answer)
        status, answer = call(tokens["wang"], "/api/devices/gas-1/select", close, method="DELETE")
        self.assertEqual((status, answer["reason"]), (409, "selected_by_other"), answer)
        time.sleep(0.3)
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_closed"), [], "nothing reached the valve")
        status, answer = call(tokens["li"], "/api/devices/gas-1/commands", close | {"id": "op-li"})
        self.assertEqual(status, 202, answer)
        res = s.wait_event("li's result", lambda r: r["event"].get("command_id") == "op-li")["event"]
        self.assertTrue(res["ok"], res)
        recs = self.audit(s)
        who = [(r["principal"], r["role"], r["step"], r["granted"]) for r in recs]
        self.assertIn(("li", "operate", "select", True), who)
        self.assertIn(("wang", "operate", "select", False), who)
        self.assertIn(("li", "operate", "operate", True), who)
        status, metrics = s.get("/metrics")
        self.assertIn('firelink_admin_refused_total{reason="no_credentials"} 2', metrics)
        self.assertIn('firelink_admin_refused_total{reason="forbidden"} 3', metrics)

    def test_the_platform_may_close_but_not_open(self):
        rx = Receiver(RECEIVER, self.dir).start()
        self.addCleanup(rx.close)
        s = self.site(f'platform_may = ["close_valve"]\n\n[uplink]\nurl = "{rx.url()}"\nqueue_path = "queue.db"\n'
                      f'backoff_max_s = 1\nreserve_mb = 0\n')

        def platform_command(name, args=None):
            body = json.dumps({"gateway": "gw-modbus", "device": "gas-1", "name": name, "args": args or {}}).encode()
            req = urllib.request.Request(rx.url("/api/commands"), data=body, method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read().decode())["id"]

        def result(cid):
            rows = rx.rows("command_id=?", (cid,))
            return rows[0] if rows else None

        close = platform_command("close_valve")
        r = wait_for(lambda: result(close), "the close's result at the platform")
        self.assertEqual((r["device"], r["ok"]), ("gas-1", 1), r)
        opened = platform_command("open_valve", {"operator_confirmed": True, "operator": "platform"})
        r = wait_for(lambda: result(opened), "the open's refusal at the platform")
        self.assertEqual(r["ok"], 0, r)
        self.assertIn("not_authorized", r["message"])
        self.assertIn("platform_may", r["message"])
        time.sleep(0.3)
        self.assertEqual(driver_events(s, "gas-1", "status", "valve_opened"), [])
        # Both are in the chain as the principal "platform", and the chain's steps reached the platform too.
        recs = self.audit(s)
        platform_steps = [(r["step"], r["command"], r["granted"]) for r in recs if r["principal"] == "platform"]
        self.assertIn(("operate", "close_valve", True), platform_steps)
        self.assertIn(("operate", "open_valve", False), platform_steps)
        wait_for(lambda: rx.rows("device='gw-modbus' AND code='audit'"), "audit events at the platform")
        self.assertEqual(s.stop(), 0, s.output())
        ok = subprocess.run([HOST, "audit", "verify", os.path.join(self.dir, "queue.db")], capture_output=True,
                            text=True, timeout=60)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)


if __name__ == "__main__":
    unittest.main()
