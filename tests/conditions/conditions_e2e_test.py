#!/usr/bin/env python3
"""Host-kept conditions (firelink.conditions/1) end to end, with real processes: firelink-host with [uplink] to
firelink-receiver (the reference platform), the push test plugin, and this test as a push-only device at the far end
of the device's TCP wire.

The device sends "ALARM x"; the driver emits an alarm with a random event_id it keeps only in memory. Then the host
(or the plugin's runner) is killed with SIGKILL and comes back; the device sends "RESTORE x". The new driver instance
knows nothing of the alarm: only the host's list can give it the id. The receiver must get a restore whose `ends` is
the alarm's event_id, and /api/devices must show the condition before the restore and not after.

The Rereport cases: after the restart the device tells its active alarms again (as a panel does when a connection
opens), and the new driver reports them again with their ids (FL-PLUGIN-29). The host must mark each a re-report
naming the record that first raised it, keep one condition each, and the receiver must show each alarm once,
"re-reported xN".

Usage (ctest passes these): conditions_e2e_test.py FIRELINK_HOST FIRELINK_RECEIVER PUSH_PLUGIN_DIR [unittest args]
"""
import json
import os
import signal
import tempfile
import unittest

import firelink_e2e
from firelink_e2e import LineDevice, Receiver, print_logs_if_failed, request_json, take_arguments, wait_for

HOST, RECEIVER, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_RECEIVER", "PUSH_PLUGIN_DIR")

DEVICE = "push-1"


def platform_events(receiver):
    """The device's events the platform stored, in the order the gateway numbered them."""
    return [json.loads(r["event"]) for r in receiver.rows("device=?", (DEVICE,))]


def platform_alarms(receiver):
    """The device's alarm records as the platform stored them (rows of its events table), in arrival order."""
    return receiver.rows("device=? AND kind='alarm'", (DEVICE,))


class Host(firelink_e2e.Site):
    """firelink-host with the push plugin's device on the test's TCP wire and [uplink] to the receiver; started again
    after a kill -9 in the same folder, with the same queue."""

    def __init__(self, folder, receiver_port, device_port, isolation, use_conditions):
        body = (f'[uplink]\nurl = "http://127.0.0.1:{receiver_port}"\nqueue_path = "queue.db"\n'
                f'backoff_max_s = 1\nreserve_mb = 0\n\n'
                f'[[device]]\nid = "{DEVICE}"\ndriver = "push"\nclass = "vendor:org.firelink.test.push"\n'
                f'heartbeat_s = 0\nwire = {{ tcp = "127.0.0.1:{device_port}" }}\n'
                f'[device.config]\nuse_conditions = {"true" if use_conditions else "false"}\n')
        super().__init__(HOST, PLUGINS, body, folder, plugins=f'isolation = "{isolation}"\n', gateway="gw-conditions",
                         watchdog=None, sink=False)

    def device(self):
        return self.devices()[DEVICE]

    def open_ids(self):
        return [c["event_id"] for c in self.device()["open_conditions"]]

    def push_runner(self):
        return self.runner("org.firelink.test.push")


class ConditionsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="firelink-conditions-")
        self.dir = self.tmp.name
        self.receiver = Receiver(RECEIVER, self.dir).start()
        self.device = LineDevice()
        self.host = None

    def tearDown(self):
        if self.host:
            self.host.stop()
        self.device.close()
        self.receiver.close()
        print_logs_if_failed(self, self.dir)
        self.tmp.cleanup()

    def start_host(self, isolation, use_conditions=True):
        self.host = Host(self.dir, self.receiver.port, self.device.port, isolation, use_conditions)
        self.host.start()
        self.device.accept()

    def raise_alarm(self, isolation, use_conditions=True):
        self.start_host(isolation, use_conditions)
        self.device.send("ALARM x")
        alarm = wait_for(lambda: next((e for e in platform_events(self.receiver) if e["kind"] == "alarm"), None),
                         "the alarm at the platform")
        self.assertEqual(alarm["code"], "zone_alarm")
        self.assertEqual(alarm["message"], "zone x")
        event_id = alarm["event_id"]
        self.assertEqual(self.host.open_ids(), [event_id])
        condition = self.host.device()["open_conditions"][0]
        self.assertEqual((condition["kind"], condition["code"]), ("alarm", "zone_alarm"))
        self.assertIsInstance(condition["raised_wall_ms"], int)
        return event_id

    def restore_and_check(self, event_id):
        """RESTORE x must end the alarm: a restore with its `ends` at the platform, and no open condition left."""
        self.device.send("RESTORE x")
        ended = wait_for(lambda: [e for e in platform_events(self.receiver)
                                  if e["kind"] == "restore" and e.get("ends") == event_id
                                  or e["code"] == "restore_unmatched"],
                         "the restore (or the driver's restore_unmatched) at the platform")
        self.assertEqual([e["kind"] for e in ended], ["restore"],
                         "the driver could not find the alarm's event_id: " + json.dumps(ended))
        self.assertEqual(ended[0]["code"], "zone_alarm")
        wait_for(lambda: self.host.open_ids() == [], "/api/devices to show no open condition")

    def kill_and_restart_host(self, event_id):
        self.host.kill9()
        self.host.start()
        self.device.accept()  # the new host's wire connects again
        # Restored from the queue's database before the device was created.
        self.assertEqual(self.host.open_ids(), [event_id])

    def check_clean_stop(self):
        self.assertEqual(self.host.stop(), 0, "firelink-host did not exit 0 on SIGTERM")

    def test_InProcessHostKill(self):
        event_id = self.raise_alarm("in_process")
        self.kill_and_restart_host(event_id)
        self.restore_and_check(event_id)
        # And it stays ended across a further restart: the restore's delete was committed with it.
        self.check_clean_stop()
        self.host.start()
        self.assertEqual(self.host.open_ids(), [])
        self.check_clean_stop()

    def test_InProcessControlWithoutTheExtension(self):
        """The same run with a driver that ignores firelink.conditions/1: the restore cannot be matched, the alarm
        stays open at the platform. This is the failure the extension fixes, and shows the test above can fail."""
        event_id = self.raise_alarm("in_process", use_conditions=False)
        self.kill_and_restart_host(event_id)
        self.device.send("RESTORE x")
        wait_for(lambda: any(e["code"] == "restore_unmatched" for e in platform_events(self.receiver)),
                 "the driver's restore_unmatched")
        self.assertFalse(any(e["kind"] == "restore" for e in platform_events(self.receiver)))
        self.assertEqual(self.host.open_ids(), [event_id])
        self.check_clean_stop()

    # Out of process the driver runs in a firelink-runner, which must pass the host's list to the plugin it runs.
    def test_OutOfProcessHostKill(self):
        event_id = self.raise_alarm("process")
        self.kill_and_restart_host(event_id)
        self.restore_and_check(event_id)
        self.check_clean_stop()

    def test_OutOfProcessRunnerKill(self):
        event_id = self.raise_alarm("process")
        before = self.host.push_runner()
        self.assertEqual(before["state"], "running")
        os.kill(before["pid"], signal.SIGKILL)
        wait_for(lambda: (lambda r: r["state"] == "running" and r["pid"] not in (-1, before["pid"]))(self.host.push_runner()),
                 "the runner to be restarted")
        wait_for(lambda: self.host.device()["state"] == "started", "the device to be started again")
        self.device.follow()
        self.assertEqual(self.host.open_ids(), [event_id])  # the host-made driver_crashed is not listed
        self.restore_and_check(event_id)
        self.check_clean_stop()

    # ---- re-reports ---------------------------------------------------------------------------------------------

    ZONES = {"x": "major", "y": "critical"}  # zone -> the severity of its first report

    def raise_alarms(self, isolation):
        """Two zones in alarm, both at the platform: their records, by zone."""
        self.start_host(isolation)
        for zone, level in self.ZONES.items():
            self.device.send(f"ALARM {zone} {level}")
        first = wait_for(lambda: (lambda rows: rows if len(rows) == 2 else None)(platform_alarms(self.receiver)),
                         "both alarms at the platform")
        by_zone = {json.loads(r["event"])["message"][len("zone "):]: r for r in first}
        self.assertEqual(sorted(by_zone), sorted(self.ZONES))
        for r in first:
            self.assertEqual((r["rereport"], r["repeats_seq"], r["repeats_id"]), (0, None, None), r)
        self.assertEqual(sorted(self.host.open_ids()), sorted(r["event_id"] for r in first))
        return by_zone

    def report_again_and_check(self, first, times):
        """The device tells its active alarms again (x now critical). Each re-report must reach the platform, marked,
        naming its first report; the host must keep one condition per alarm, and the platform show each alarm once,
        re-reported `times` times in all."""
        self.device.send("ALARM x critical")
        self.device.send("ALARM y")
        want = len(self.ZONES) * (times + 1)
        rows = wait_for(lambda: (lambda r: r if len(r) >= want else None)(platform_alarms(self.receiver)),
                        f"{want} alarm records at the platform")
        self.assertEqual(len(rows), want, "more alarm records than reports")
        for zone, f in first.items():
            again = [r for r in rows if r["event_id"] == f["event_id"] and r["id"] != f["id"]]
            self.assertEqual(len(again), times, zone)
            for r in again:
                # Marked, and naming the key of the first report: the platform finds it by its unique key.
                self.assertEqual(r["rereport"], 1, r)
                self.assertEqual((r["repeats_epoch"], r["repeats_lane"], r["repeats_seq"]),
                                 (f["epoch"], f["lane"], f["seq"]), r)
                self.assertEqual(r["repeats_id"], f["id"])
        self.assertEqual(sorted(self.host.open_ids()), sorted(f["event_id"] for f in first.values()),
                         "a re-report opened a second condition")
        # What the reference platform shows: each alarm once, with its re-reports counted, and what the latest says.
        status, shown = request_json("GET", self.receiver.url(f"/api/events?device={DEVICE}&kind=alarm&rereports=fold"))
        self.assertEqual(status, 200, shown)
        self.assertEqual(sorted(e["id"] for e in shown), sorted(f["id"] for f in first.values()))
        for e in shown:
            self.assertEqual(e["rereports"]["count"], times, e)
            self.assertTrue(e["rereports"]["last"]["rereport"])
        latest = {e["event"]["message"]: e["rereports"]["last"]["severity"] for e in shown}
        self.assertEqual(latest, {"zone x": "critical", "zone y": "critical"})
        status, devices = request_json("GET", self.receiver.url("/api/devices"))
        active = next(d for d in devices if d["device"] == DEVICE)["active"]
        self.assertEqual(sorted((a["event_id"], a.get("rereports")) for a in active),
                         sorted((f["event_id"], times) for f in first.values()))

    def test_RereportInProcessHostRestart(self):
        first = self.raise_alarms("in_process")
        for times in (1, 2):  # a second restart still names the first report
            self.host.kill9()
            self.host.start()
            self.device.accept()
            self.report_again_and_check(first, times)
        # The re-reported alarm still ends with its id, and only the other stays active.
        self.device.send("RESTORE x")
        wait_for(lambda: sorted(self.host.open_ids()) == [first["y"]["event_id"]], "x's restore at the host")
        self.check_clean_stop()

    def test_RereportOutOfProcessHostRestart(self):
        first = self.raise_alarms("process")
        self.check_clean_stop()
        self.host.start()
        self.device.accept()
        self.report_again_and_check(first, 1)
        self.check_clean_stop()

    def test_RereportOutOfProcessRunnerKill(self):
        first = self.raise_alarms("process")
        before = self.host.push_runner()
        os.kill(before["pid"], signal.SIGKILL)
        wait_for(lambda: (lambda r: r["state"] == "running" and r["pid"] not in (-1, before["pid"]))(self.host.push_runner()),
                 "the runner to be restarted")
        wait_for(lambda: self.host.device()["state"] == "started", "the device to be started again")
        self.device.follow()
        self.report_again_and_check(first, 1)
        self.check_clean_stop()


if __name__ == "__main__":
    unittest.main()
