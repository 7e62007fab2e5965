#!/usr/bin/env python3
"""The durable uplink end to end: firelink-host with [uplink] and the load plugin, firelink-receiver as the platform,
real HTTP on loopback, both SQLite files read back. Every check is by event key (gateway, epoch, lane, seq) in the
receiver's store against the host's own queue file: what the host committed must arrive exactly once.

Usage (ctest passes these): uplink_e2e_test.py FIRELINK_HOST FIRELINK_RECEIVER LOAD_PLUGIN_DIR [unittest args]
"""
import http.server as http_server
import json
import os
import random
import shutil
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import firelink_e2e
from firelink_e2e import HeldPort, free_port, print_logs_if_failed, request_json, take_arguments
from firelink_e2e import msgpack_codec as mp

HOST, RECEIVER, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_RECEIVER", "LOAD_PLUGIN_DIR")
GUARD = 60.0  # hang guard only: the uplink's retries and a loaded machine's fsyncs are slower than a site's start
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def wait_for(predicate, what, timeout=GUARD):
    return firelink_e2e.wait_for(predicate, what, timeout, interval=0.05)


# The receiver admits nobody without a token (examples/receiver/README.md, "Tokens"): the host writes as gw-e2e with
# the gateway token (its [uplink] token_file), the tests post commands and read with the operator token.
GATEWAY_TOKEN = "e2e-gateway-secret"
OPERATOR_TOKEN = "e2e-operator-secret"


def http(method, url, body=None, timeout=10, token=OPERATOR_TOKEN):
    """A request with the receiver's operator token; token=None for the host's admin endpoint, whose loopback reads
    need none."""
    return request_json(method, url, body, token, timeout)


class Receiver(firelink_e2e.Receiver):
    """firelink-receiver with the tokens of gw-e2e and of an operator, and /test/faults unless faults=False."""

    def __init__(self, folder, port=None, faults=True):
        tokens = f"gateway gw-e2e {GATEWAY_TOKEN}\noperator * {OPERATOR_TOKEN}\n"
        super().__init__(RECEIVER, folder, port=port, tokens=tokens, test_faults=faults)

    def fault(self, plan):
        status, body = http("POST", self.url("/test/faults"), plan)
        assert status == 200, body


class Host(firelink_e2e.Site):
    """firelink-host with load devices (`devices`: id to config) and [uplink] to the receiver as gw-e2e, no
    watchdog table; started again in its folder after a kill -9, with the same queue."""

    def __init__(self, folder, receiver_port, devices, uplink_extra="", env=None, queue="queue.db", reserve_mb=0):
        self.queue = os.path.join(folder, queue)
        self.env = env
        if "token_file" not in uplink_extra:
            with open(os.path.join(folder, "gateway-token"), "w") as f:
                f.write(GATEWAY_TOKEN + "\n")
            uplink_extra += '\ntoken_file = "gateway-token"'
        body = (f'[uplink]\nurl = "http://127.0.0.1:{receiver_port}"\nqueue_path = "{self.queue}"\n'
                f'backoff_max_s = 1\nreserve_mb = {reserve_mb}\n{uplink_extra}\n')
        for dev_id, cfg in devices.items():
            body += (f'[[device]]\nid = "{dev_id}"\ndriver = "load"\nclass = "vendor:org.firelink.test.load"\n'
                     f'heartbeat_s = 0\nsite = {{ building = "B1" }}\n[device.config]\n')
            body += "".join(f"{k} = {v}\n" for k, v in cfg.items()) + "\n"
        super().__init__(HOST, PLUGINS, body, folder, gateway="gw-e2e", watchdog=None, sink=False)

    def start(self):
        return super().start(env=self.env)

    def uplink(self):
        return self.get_json("/api/uplink")[1]

    def stop(self):
        code = super().stop(timeout=40)
        # A host stopped by SIGTERM exits 0: a crash on the way out (a runner's supervisor outliving the uplink) fails.
        if code not in (0, None):
            raise AssertionError(f"firelink-host exited with {code} on SIGTERM")
        return code

    def drained(self):
        u = self.uplink()
        if not u:
            return False
        lanes = u["lanes"].values()
        return u["pending"] == 0 and all(l["depth"] == 0 for l in lanes) and u
        
    def lane_last_seqs(self):
        """The host's own record of what it committed: each lane's last seq, from its queue file."""
        with sqlite3.connect(f"file:{self.queue}?mode=ro", uri=True, timeout=10) as db:
            epoch = db.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()[0]
            lanes = {row[0]: row[1] - 1 for row in db.execute("SELECT lane, next_seq FROM lane_state")}
        return epoch, {"alarm": lanes[0], "event": lanes[1], "telemetry": lanes[2]}


def evicted_telemetry(receiver, epoch, gateway="gw-e2e"):
    """What the gateway told the platform it evicted: the seq ranges of its telemetry_evicted gaps, and their count."""
    ranges, count = [], 0
    for r in receiver.rows("gateway=? AND epoch=? AND device=? AND kind='gap' AND code='telemetry_evicted'",
                           (gateway, epoch, gateway)):
        values = {v["name"]: v["value"] for v in json.loads(r["event"])["values"]}
        ranges.append(range(values["first_seq"], values["last_seq"] + 1))
        count += values["count"]
    return ranges, count


def assert_exactly_once(test, receiver, epoch, last_seqs, gateway="gw-e2e"):
    """Every seq 1..last of each lane of this epoch is in the receiver's store, once; the only seqs that may be missing
    are telemetry the gateway evicted and said so in a telemetry_evicted gap (their count, within its ranges)."""
    for lane, last in last_seqs.items():
        seqs = [r["seq"] for r in receiver.rows("gateway=? AND epoch=? AND lane=?", (gateway, epoch, lane))]
        test.assertEqual(len(seqs), len(set(seqs)), f"duplicates in lane {lane}")
        test.assertTrue(set(seqs) <= set(range(1, last + 1)), f"lane {lane}: seqs the host never committed")
        missing = sorted(set(range(1, last + 1)) - set(seqs))
        if lane == "telemetry" and missing:
            ranges, count = evicted_telemetry(receiver, epoch, gateway)
            unreported = [q for q in missing if not any(q in r for r in ranges)]
            test.assertEqual(unreported, [], "telemetry lost without a telemetry_evicted gap")
            # A record in flight when it was evicted may still arrive: at most the count the gaps name is missing.
            test.assertLessEqual(len(missing), count, "more telemetry missing than the gaps say was evicted")
            continue
        test.assertEqual(missing, [], f"lane {lane}: the receiver lacks committed events")


def load_numbers(receiver, device):
    return [json.loads(r["event"])["values"][0]["value"] for r in receiver.rows("device=?", (device,))
            if json.loads(r["event"]).get("values")]


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="firelink-uplink-")
        self.addCleanup(self.tmp.cleanup)  # after tearDown and after the test's own cleanups (a mount in the folder)
        self.dir = self.tmp.name
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:
                pass
        print_logs_if_failed(self, self.dir)

    def receiver(self, **kw):
        r = Receiver(self.dir, **kw)
        self.procs.append(r)
        return r

    def host(self, port, devices, **kw):
        h = Host(self.dir, port, devices, **kw)
        self.procs.append(h)
        return h


class Delivery(Base):
    def test_every_event_arrives_once_in_its_lane_with_its_record(self):
        rx = self.receiver().start()
        host = self.host(rx.port, {"load-1": {"limit": 300, "per_tick": 30}}).start()
        wait_for(lambda: len(load_numbers(rx, "load-1")) == 300, "300 events at the receiver")
        self.assertEqual(sorted(load_numbers(rx, "load-1")), list(range(1, 301)))
        rows = rx.rows("device='load-1'")
        lanes = {r["lane"] for r in rows}
        self.assertEqual(lanes, {"alarm", "event", "telemetry"})
        for r in rows:
            n = json.loads(r["event"])["values"][0]["value"]
            want = "alarm" if n % 10 == 0 else "event" if n % 7 == 0 else "telemetry"
            self.assertEqual(r["lane"], want, f"n={n}")
            self.assertEqual(r["class"], "vendor:org.firelink.test.load")
            self.assertEqual(r["plugin"], "org.firelink.test.load")
            self.assertEqual(json.loads(r["site"])["building"], "B1")
        wait_for(host.drained, "the host's queue to drain")
        epoch, last = host.lane_last_seqs()
        self.assertEqual(last["alarm"], 30)
        assert_exactly_once(self, rx, epoch, last)
        u = host.uplink()
        self.assertEqual(u["lanes"]["alarm"]["acked_through"], 30)
        self.assertEqual(host.get_json("/healthz")[1]["uplink"]["ok"], True)
        # The device order survives the lanes: device_seq counts every event of the device once.
        self.assertEqual(sorted(r["device_seq"] for r in rows), list(range(1, 301)))


class Outage(Base):
    def test_a_long_outage_queues_everything_and_delivers_it_when_the_platform_returns(self):
        down = HeldPort()
        port = down.port
        host = self.host(port, {"load-1": {"limit": 400, "per_tick": 20}}).start()
        wait_for(lambda: (host.uplink() or {}).get("lanes", {}).get("telemetry", {}).get("depth", 0) > 0,
                 "events queued while the platform is down")
        wait_for(lambda: sum(l["depth"] for l in host.uplink()["lanes"].values()) == 400, "all 400 queued")
        health = host.get_json("/healthz")[1]
        self.assertEqual(health["status"], "degraded")
        self.assertFalse(health["uplink"]["ok"])
        self.assertIn("not reachable", health["uplink"]["problem"])
        time.sleep(2)  # an outage of several retry rounds
        # The host restarts during the outage: nothing committed is lost.
        host.stop()
        host.start()
        rx = self.receiver(port=down.release()).start()
        # The device restarted with the host and re-reports from n=1 (FL-PLUGIN-29): the queue is still and its last
        # seqs final only once both runs' 400 events are at the receiver (a drained queue alone may see the second
        # run still emitting).
        wait_for(lambda: len(load_numbers(rx, "load-1")) >= 800, "the backlog and the second run at the receiver")
        wait_for(host.drained, "the host's queue to drain")
        epoch, last = host.lane_last_seqs()
        assert_exactly_once(self, rx, epoch, last)
        # Both runs are there, once each.
        self.assertEqual(sorted(set(load_numbers(rx, "load-1"))), list(range(1, 401)))


class Faults(Base):
    def test_500_429_slow_and_lost_answers_lose_and_duplicate_nothing(self):
        rx = self.receiver().start()
        rx.fault({"status": 500, "count": 3})
        rx.fault({"status": 429, "retry_after": 1, "count": 2})
        rx.fault({"delay_ms": 400, "count": 4})
        rx.fault({"drop_response_after_commit": 3})
        host = self.host(rx.port, {"load-1": {"limit": 500, "per_tick": 25}}).start()
        wait_for(lambda: len(load_numbers(rx, "load-1")) >= 500, "500 events at the receiver")
        wait_for(host.drained, "the host's queue to drain")
        epoch, last = host.lane_last_seqs()
        assert_exactly_once(self, rx, epoch, last)
        self.assertEqual(sorted(load_numbers(rx, "load-1")), list(range(1, 501)))
        stats = http("GET", rx.url("/api/stats"))[1]
        self.assertGreaterEqual(stats["total"]["duplicates"], 1, "a lost answer must make the host resend")
        u = host.uplink()
        self.assertGreaterEqual(sum(l["failures"] for l in u["lanes"].values()), 5)


class Commands(Base):
    def test_commands_reach_devices_once_and_results_come_back(self):
        rx = self.receiver().start()
        host = self.host(rx.port, {"load-1": {"limit": 1}}).start()
        wait_for(lambda: load_numbers(rx, "load-1"), "the device's first event")
        _, ping = http("POST", rx.url("/api/commands"), {"gateway": "gw-e2e", "device": "load-1", "name": "ping"})
        _, ghost = http("POST", rx.url("/api/commands"), {"gateway": "gw-e2e", "device": "no-such", "name": "ping"})
        _, bogus = http("POST", rx.url("/api/commands"), {"gateway": "gw-e2e", "device": "load-1", "name": "bogus"})

        def result(cid):
            rows = rx.rows("command_id=?", (cid,))
            return rows[0] if rows else None

        r = wait_for(lambda: result(ping["id"]), "the ping's result")
        self.assertEqual(r["device"], "load-1")
        self.assertEqual(r["ok"], 1)
        g = wait_for(lambda: result(ghost["id"]), "the unknown device's result")
        self.assertEqual(g["device"], "gw-e2e")  # made by the gateway
        self.assertEqual(g["ok"], 0)
        self.assertIn("no device 'no-such'", g["message"])
        b = wait_for(lambda: result(bogus["id"]), "the unknown command's result")
        self.assertEqual(b["ok"], 0)
        self.assertIn("unknown_command", b["message"])  # the driver declares ping only: the host refuses the rest
        # At most once: a restarted host does not run them again.
        host.stop()
        host.start()
        _, after = http("POST", rx.url("/api/commands"), {"gateway": "gw-e2e", "device": "load-1", "name": "ping"})
        wait_for(lambda: result(after["id"]), "the second ping's result")
        self.assertEqual(len(rx.rows("command_id=?", (ping["id"],))), 1)
        self.assertEqual(host.uplink()["command_cursor"], after["cursor"])

    def test_an_expired_command_is_not_run(self):
        rx = self.receiver().start()
        # The platform holds the command while the host is away; it expires before the host polls.
        _, cmd = http("POST", rx.url("/api/commands"),
                      {"gateway": "gw-e2e", "device": "load-1", "name": "ping", "ttl_s": 1})
        time.sleep(1.5)
        self.host(rx.port, {"load-1": {"limit": 1}}).start()
        r = wait_for(lambda: rx.rows("command_id=?", (cmd["id"],)), "the expired command's result")[0]
        self.assertEqual(r["ok"], 0)
        self.assertEqual(r["device"], "gw-e2e")
        self.assertIn("expired", r["message"])


class Quarantine(Base):
    def test_rejected_events_are_kept_aside_and_the_rest_flows(self):
        rx = self.receiver().start()
        rx.fault({"reject_device": "load-2"})
        host = self.host(rx.port, {"load-1": {"limit": 100}, "load-2": {"limit": 50}}).start()
        wait_for(lambda: len(load_numbers(rx, "load-1")) >= 100, "load-1's events")
        wait_for(lambda: host.drained() and host.uplink()["quarantine_total"] >= 50, "load-2's events in quarantine")
        u = host.uplink()
        self.assertEqual(u["quarantine_total"], 50)
        self.assertEqual(load_numbers(rx, "load-2"), [])
        q = u["quarantine"]
        self.assertTrue(all(x["status"] == 422 and x["record"]["device"] == "load-2" for x in q), q[:2])
        self.assertEqual(sorted(load_numbers(rx, "load-1")), list(range(1, 101)))
        metrics = host.get("/metrics")[1]
        self.assertIn("firelink_uplink_quarantine_size 50", metrics)


class Backpressure(Base):
    def test_a_full_event_lane_defers_drivers_and_raises_a_local_alarm_then_recovers(self):
        down = HeldPort()
        port = down.port
        # Every event is a status (event lane); 1 MiB cap; each ~1.2 KiB: about 850 fit.
        host = self.host(port, {"load-1": {"limit": 1500, "per_tick": 50, "alarm_every": 0, "status_every": 1,
                                           "pad": 1000}},
                         uplink_extra="event_cap_mb = 1").start()
        wait_for(lambda: host.uplink()["lanes"]["event"]["near_full"], "the event lane near full")
        wait_for(lambda: host.uplink()["lanes"]["event"]["deferred"] > 0, "deferred emits")
        devices = host.get_json("/api/devices")[1]
        self.assertGreater(devices[0]["events_deferred"], 0)
        self.assertEqual(host.uplink()["lanes"]["alarm"]["depth"], 1)  # the local alarm
        rx = self.receiver(port=down.release()).start()
        wait_for(lambda: len(load_numbers(rx, "load-1")) >= 1500, "all 1500 (retried by the driver) at the receiver")
        self.assertEqual(sorted(load_numbers(rx, "load-1")), list(range(1, 1501)))
        gw = rx.rows("device='gw-e2e'")
        codes = [(r["kind"], r["code"]) for r in gw]
        self.assertIn(("fault", "queue_near_full"), codes)
        wait_for(lambda: ("restore", "queue_near_full") in [(r["kind"], r["code"]) for r in rx.rows("device='gw-e2e'")],
                 "the local alarm's restore")
        wait_for(host.drained, "the host's queue to drain")
        epoch, last = host.lane_last_seqs()
        assert_exactly_once(self, rx, epoch, last)


class KillNine(Base):
    def test_kill_9_at_random_moments_loses_and_duplicates_nothing_committed(self):
        rng = random.Random(int(os.environ.get("FIRELINK_TEST_SEED", "26875")))
        rx = self.receiver().start()
        host = self.host(rx.port, {"load-1": {"per_tick": 20, "period_ms": 5, "pad": 64},
                                   "load-2": {"per_tick": 5, "period_ms": 3, "alarm_every": 3}})
        iterations = int(os.environ.get("FIRELINK_KILL_ITERATIONS", "12"))
        for i in range(iterations):
            if rng.random() < 0.5:
                rx.fault({"delay_ms": rng.randint(10, 200), "count": rng.randint(1, 5)})
            if rng.random() < 0.3:
                rx.fault({"drop_response_after_commit": rng.randint(1, 3)})
            host.start()
            time.sleep(rng.uniform(0.05, 1.0))
            host.kill9()
        # One clean run with the devices quiet drains what the killed runs committed.
        host.proc = None
        quiet = Host(self.dir, rx.port, {})
        self.procs.append(quiet)
        quiet.start()
        wait_for(quiet.drained, "the queue to drain after the kills")
        epoch, last = quiet.lane_last_seqs()
        self.assertGreater(sum(last.values()), 1000, "the load never got going")
        assert_exactly_once(self, rx, epoch, last)
        stats = http("GET", rx.url("/api/stats"))[1]
        self.assertEqual(stats["total"]["in_store"], sum(last.values()))


class ClockJumps(Base):
    def test_the_wall_clock_jumping_back_and_forth_changes_no_order_and_loses_nothing(self):
        if not os.path.exists(FAKETIME_LIB):
            self.fail(f"{FAKETIME_LIB} is missing: scripts/setup installs the Debian package faketime")
        stamp = os.path.join(self.dir, "faketime")
        with open(stamp, "w") as f:
            f.write("+0\n")
        rx = self.receiver().start()
        env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": stamp, "FAKETIME_NO_CACHE": "1",
               "DONT_FAKE_MONOTONIC": "1"}
        host = self.host(rx.port, {"load-1": {"limit": 600, "per_tick": 2, "period_ms": 10}}, env=env).start()
        for jump in ("-1h", "+1d", "-3d", "+0"):
            time.sleep(0.5)
            with open(stamp, "w") as f:
                f.write(jump + "\n")
        wait_for(lambda: len(load_numbers(rx, "load-1")) >= 600, "600 events at the receiver")
        wait_for(host.drained, "the host's queue to drain")
        epoch, last = host.lane_last_seqs()
        assert_exactly_once(self, rx, epoch, last)
        rows = sorted(rx.rows("device='load-1'"), key=lambda r: r["device_seq"])
        walls = [r["wall_ms"] for r in rows]
        self.assertTrue(any(b < a - 3_000_000 for a, b in zip(walls, walls[1:])), "the clock never jumped back")
        self.assertTrue(any(b > a + 3_000_000 for a, b in zip(walls, walls[1:])), "the clock never jumped forward")
        # Order by the device sequence is the order of n, whatever the wall clock said.
        ns = [json.loads(r["event"])["values"][0]["value"] for r in rows]
        self.assertEqual(ns, list(range(1, 601)))


class CorruptQueue(Base):
    def test_a_corrupt_queue_is_moved_aside_reported_and_a_new_epoch_begins(self):
        rx = self.receiver().start()
        host = self.host(rx.port, {"load-1": {"limit": 50}}).start()
        wait_for(lambda: len(load_numbers(rx, "load-1")) >= 50, "the first run's events")
        wait_for(host.drained, "drained")
        old_epoch, _ = host.lane_last_seqs()
        host.stop()
        # Every page after the first (the header and the schema stay, so it is still this queue's file): which pages
        # hold live rows and which are free depends on how the events were grouped into commits.
        size = os.path.getsize(host.queue)
        self.assertGreater(size, 4096)
        with open(host.queue, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(size - 4096))
        host.start()
        gaps = wait_for(lambda: [r for r in rx.rows("device='gw-e2e' AND kind='gap'") if r["code"] == "queue_lost"],
                        "the queue_lost gap event")
        new_epoch = gaps[0]["epoch"]
        self.assertNotEqual(new_epoch, old_epoch)
        self.assertIn("moved to", gaps[0]["message"])
        self.assertTrue([p for p in os.listdir(self.dir) if p.startswith("queue.db.corrupt-")])
        wait_for(lambda: len(rx.rows("epoch=? AND device='load-1'", (new_epoch,))) >= 50, "the new epoch's events")
        wait_for(host.drained, "drained")
        epoch, last = host.lane_last_seqs()
        self.assertEqual(epoch, new_epoch)
        assert_exactly_once(self, rx, epoch, last)


class FullDisk(Base):
    """The queue on a real small file system (an 8 MiB tmpfs; needs root and mount, as in CI) that another program
    filled while the host was down."""

    def test_a_disk_full_before_start_takes_alarms_at_once_and_all_lanes_once_freed(self):
        small = os.path.join(self.dir, "small")
        os.mkdir(small)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", small], capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest("cannot mount a small tmpfs here: " + (mounted.stderr.strip() or str(mounted.returncode)))
        self.addCleanup(subprocess.run, ["umount", "-l", small])
        rx = self.receiver().start()
        # 400 events a second of about 250 bytes, one in ten an alarm, the rest telemetry.
        host = self.host(rx.port, {"load-1": {"period_ms": 50, "per_tick": 20, "alarm_every": 10, "status_every": 0,
                                              "pad": 200}},
                         queue=os.path.join(small, "queue.db"), reserve_mb=1).start()
        wait_for(lambda: host.uplink()["reserve_bytes"] == 1 << 20, "the alarm reserve set aside")
        wait_for(lambda: len(rx.rows("device='load-1' AND kind='alarm'")) >= 5, "the first run's alarms")
        host.stop()
        # Another program takes every byte left.
        filler = os.path.join(small, "filler")
        # Unbuffered: a buffered file would retry its unwritten rest at close, and fail there.
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        self.assertLess(shutil.disk_usage(small).free, 65536)
        before = len(rx.rows("device='load-1' AND kind='alarm'"))
        started = time.monotonic()
        host.start()
        wait_for(lambda: len(rx.rows("device='load-1' AND kind='alarm'")) > before, "an alarm from the full disk")
        took = time.monotonic() - started
        print(f"full disk at start: the first alarm reached the platform {took * 1000:.0f} ms after the host started "
              "(host start included)", file=sys.stderr)
        self.assertEqual(host.uplink()["reserve_bytes"], 0, "the reserve was not given up to open the queue")
        # The missing reserve is a fault of the gateway, at the platform while the disk is still full.
        wait_for(lambda: rx.rows("device='gw-e2e' AND kind='fault' AND code='alarm_reserve_missing'"),
                 "the alarm_reserve_missing fault at the platform")
        # Telemetry takes the pages the database has free inside it, then the disk is full: only alarms commit.
        wait_for(lambda: host.uplink()["disk_full"], "the queue to find its disk full")
        wait_for(lambda: host.uplink()["lanes"]["telemetry"]["deferred"] > 0, "telemetry refused while the disk is full")
        # The disk is freed: every lane is admitted again, and the reserve is set aside again.
        os.remove(filler)
        wait_for(lambda: not host.uplink()["disk_full"], "the disk full state to clear")
        wait_for(lambda: host.uplink()["reserve_bytes"] == 1 << 20, "the reserve set aside again")
        wait_for(lambda: rx.rows("device='gw-e2e' AND kind='restore' AND code='alarm_reserve_missing'"),
                 "the alarm_reserve_missing fault restored")
        committed = host.uplink()["lanes"]["telemetry"]["committed"]
        wait_for(lambda: host.uplink()["lanes"]["telemetry"]["committed"] > committed, "telemetry committed again")
        # Nothing committed was lost on the way, in any lane: a host without devices drains the queue.
        host.stop()
        epoch, last = host.lane_last_seqs()
        drain = self.host(rx.port, {}, queue=os.path.join(small, "queue.db"), reserve_mb=1).start()
        wait_for(drain.drained, "drained")
        assert_exactly_once(self, rx, epoch, last)


def make_cert(folder, name, ca=None):
    """A key and certificate for 127.0.0.1; self-signed (a CA) when ca is None, else signed by ca."""
    key, crt = os.path.join(folder, name + ".key"), os.path.join(folder, name + ".crt")
    subj = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    if ca is None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", *subj, "-addext", "basicConstraints=critical,CA:TRUE"],
                       check=True, capture_output=True)
    else:
        csr = os.path.join(folder, name + ".csr")
        subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, *subj],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
                        "-out", crt, "-days", "2", "-copy_extensions", "copy"], check=True, capture_output=True)
    return key, crt


def msgpack_str_of_bytes(raw):
    """A msgpack str whose bytes are `raw` as they are: a hostile platform's text need not be UTF-8."""
    head = bytes([0xA0 | len(raw)]) if len(raw) < 32 else b"\xd9" + bytes([len(raw)])
    return head + raw


class PlatformHandler(http_server.BaseHTTPRequestHandler):
    """A quiet HTTP/1.1 handler of a test platform."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, out, kind=None):
        self.send_response(status)
        if kind:
            self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Platform:
    """A test platform: `handler` answers on a loopback port of its own, in a thread, until stop()."""

    def serve(self, handler, wrap=lambda sock: sock):
        self.server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.socket = wrap(self.server.socket)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class HostilePlatform(Platform):
    """A platform whose words are not UTF-8: batches of the event lane are acknowledged with every record rejected
    for a reason in bytes that are not UTF-8 and a Chinese text; batches of the other lanes are answered 500 with a
    body of a stray byte and Chinese text longer than the 200 bytes the host keeps; command polls 503, not UTF-8."""

    # A stray byte, then 3-byte characters: 200 bytes fall inside the 67th character.
    BODY = b"\xff" + "平台故障".encode() * 20
    REASON = b"\xfe\xff " + "拒收".encode()

    def __init__(self):
        outer = self
        self.rejected = 0

        class Handler(PlatformHandler):
            def do_POST(self):
                body = mp.unpackb(self.rfile.read(int(self.headers["Content-Length"])))
                if body["lane"] != "event":
                    return self.answer(500, HostilePlatform.BODY, "text/plain")
                seqs = [e["seq"] for e in body["events"]]
                out = mp.packb({"acked_through": {"event": seqs[-1]},
                                "rejects": [{"seq": q, "status": 422, "reason": "@@R@@"} for q in seqs]})
                out = out.replace(b"\xa5@@R@@", msgpack_str_of_bytes(HostilePlatform.REASON))
                outer.rejected += len(seqs)
                self.answer(200, out, "application/msgpack")

            def do_GET(self):
                time.sleep(0.2)
                self.answer(503, HostilePlatform.BODY, "text/plain")

        self.serve(Handler)


class HostileText(Base):
    """Monitoring must not go blind while the platform misbehaves: every view answers 200 with valid UTF-8 (U+FFFD
    for what is not), also after a restart with such reasons quarantined."""

    def views_are_readable(self, host):
        for path in ("/healthz", "/api/uplink", "/api/devices", "/api/audit"):
            status, body = host.get(path)
            self.assertIn(status, (200, 503) if path == "/healthz" else (200,), f"{path}: {status} {body[:300]}")
            json.loads(body)  # valid JSON: host.get decodes it as UTF-8 strictly
        status, metrics = host.get("/metrics")
        self.assertEqual(status, 200)
        self.assertIn("firelink_uplink_quarantine_size", metrics)

    def test_a_platform_whose_words_are_not_utf8_never_blinds_the_views(self):
        platform = HostilePlatform()
        self.addCleanup(platform.stop)
        # Statuses go to the event lane (rejected, quarantined), the rest is telemetry (answered 500, kept queued).
        devices = {"load-1": {"limit": 20, "alarm_every": 0, "status_every": 2}}
        host = self.host(platform.port, devices).start()
        wait_for(lambda: host.uplink() and host.uplink()["quarantine_total"] >= 10, "the rejected events quarantined")
        for attempt in range(2):  # as it runs, and after a restart with the reasons kept in the queue
            wait_for(lambda: host.uplink()["poll_error"] and host.uplink()["lanes"]["telemetry"]["last_error"],
                     "the platform's errors")
            self.views_are_readable(host)
            u = host.uplink()
            reason = u["quarantine"][0]["reason"]
            self.assertEqual(reason, "\ufffd\ufffd 拒收", reason)
            error = u["lanes"]["telemetry"]["last_error"]
            self.assertTrue(error.startswith("HTTP 500: \ufffd平台故障"), error)
            self.assertTrue(error.endswith("平") or error.endswith("台") or error.endswith("故") or error.endswith("障"),
                            "the 200-byte cut falls between characters: " + error[-10:])
            self.assertIn("\ufffd", u["poll_error"])
            health = json.loads(host.get("/healthz")[1])
            self.assertTrue(any("\ufffd" in r["problem"] for r in health["reasons"]), health["reasons"])
            if attempt == 0:
                host.stop()
                host.start()


class TlsPlatform(Platform):
    """A minimal HTTPS platform (Python's ssl), requiring a client certificate, acknowledging every batch."""

    def __init__(self, key, crt, client_ca):
        self.batches = []
        self.client_subjects = []
        outer = self

        class Handler(PlatformHandler):
            def do_POST(self):
                body = mp.unpackb(self.rfile.read(int(self.headers["Content-Length"])))
                outer.batches.append((self.headers.get("Authorization"), body))
                outer.client_subjects.append(self.connection.getpeercert()["subject"])
                out = mp.packb({"acked_through": {body["lane"]: body["events"][-1]["seq"]}, "rejects": []})
                self.answer(200, out, "application/msgpack")

            def do_GET(self):
                out = mp.packb({"commands": [], "cursor": 0})
                time.sleep(0.2)
                self.answer(200, out)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
        self.serve(Handler, lambda sock: ctx.wrap_socket(sock, server_side=True))


class Tls(Base):
    def test_https_with_a_ca_file_a_client_certificate_and_a_bearer_token(self):
        ca = make_cert(self.dir, "ca")
        server = make_cert(self.dir, "server", ca)
        client = make_cert(self.dir, "gateway", ca)
        platform = TlsPlatform(server[0], server[1], ca[1])
        self.addCleanup(platform.stop)
        with open(os.path.join(self.dir, "token"), "w") as f:
            f.write("s3cret-token\n")
        extra = (f'ca_file = "ca.crt"\nclient_cert = "gateway.crt"\nclient_key = "gateway.key"\n'
                 f'token_file = "token"\n')
        host = self.host(platform.port, {"load-1": {"limit": 20}}, uplink_extra=extra)
        with open(host.config) as f:
            text = f.read()
        with open(host.config, "w") as f:
            f.write(text.replace(f"http://127.0.0.1:{platform.port}", f"https://127.0.0.1:{platform.port}"))
        host.start()

        def delivered():
            return sorted(e["event"]["values"][0]["value"] for _, b in list(platform.batches) for e in b["events"]
                          if e["device"] == "load-1")

        wait_for(lambda: len(delivered()) >= 20, "delivery over TLS")
        wait_for(host.drained, "the queue to drain")
        self.assertEqual(delivered(), list(range(1, 21)))
        self.assertTrue(all(auth == "Bearer s3cret-token" for auth, _ in platform.batches))
        self.assertTrue(all(("commonName", "127.0.0.1") in [x for rdn in subj for x in rdn]
                            for subj in platform.client_subjects))

    def test_a_platform_certificate_the_ca_file_does_not_vouch_for_is_refused_and_nothing_is_lost(self):
        ca = make_cert(self.dir, "ca")
        other_ca = make_cert(self.dir, "other")
        server = make_cert(self.dir, "server", other_ca)
        client = make_cert(self.dir, "gateway", ca)
        platform = TlsPlatform(server[0], server[1], ca[1])
        self.addCleanup(platform.stop)
        extra = 'ca_file = "ca.crt"\nclient_cert = "gateway.crt"\nclient_key = "gateway.key"\n'
        host = self.host(platform.port, {"load-1": {"limit": 20}}, uplink_extra=extra)
        with open(host.config) as f:
            text = f.read()
        with open(host.config, "w") as f:
            f.write(text.replace("http://", "https://"))
        host.start()
        wait_for(lambda: "SSL" in host.uplink()["lanes"]["telemetry"]["last_error"] or
                 "certificate" in host.uplink()["lanes"]["telemetry"]["last_error"], "a TLS verification error")
        self.assertEqual(platform.batches, [])
        wait_for(lambda: sum(l["depth"] for l in host.uplink()["lanes"].values()) == 20, "all 20 kept in the queue")


if __name__ == "__main__":
    unittest.main()
