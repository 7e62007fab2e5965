#!/usr/bin/env python3
"""A device never leaves monitoring silently, with real processes: firelink-host run as systemd would
start it, its admin endpoint, and firelink-receiver as the platform.

- systemd's notification protocol: this test owns the NOTIFY_SOCKET (a unix datagram socket, by path and by
  abstract name) and gives the host WATCHDOG_USEC. READY=1 comes once the site is up; WATCHDOG=1 comes at half of
  WATCHDOG_USEC, never faster; when the host's control loop or its devices' event loop is wedged (a test hook,
  FIRELINK_TEST_HOOKS=1), WATCHDOG=1 stops, and comes back when the loop does; STOPPING=1 at SIGTERM.
- /healthz: "degraded" names the device that failed to start and why; ?strict answers 503 then, 200 when all is
  well; a missing alarm reserve on the queue's disk is a reason too, and a fault at the platform.
- The local record ([sink]) has the gateway's own events, as the platform does.
- A stop is quiet: the listener stops accepting before its devices close, so a UITD that reconnects at once is
  refused by the kernel, not accepted and closed with a warning each time.

Waits are hang guards (they end as soon as their condition holds), except where the test must see that nothing
comes: then it watches for several ping intervals while the loop is known to be wedged.

Usage (ctest passes these): health_notify_test.py FIRELINK_HOST FIRELINK_RECEIVER FIRELINK_SIM EXAMPLES_PLUGIN_DIR
[unittest args]
"""
import json
import os
import socket
import subprocess
import threading
import time
import unittest
import urllib.request

from firelink_e2e import DEADLINE, Receiver, Site, free_port, new_workdir, take_arguments, wait_for

HOST, RECEIVER, SIM, EXAMPLES = take_arguments("FIRELINK_HOST", "FIRELINK_RECEIVER", "FIRELINK_SIM",
                                               "EXAMPLES_PLUGIN_DIR")

WATCHDOG_USEC = 1_200_000      # systemd's timeout: the host pings every 0.6 s
PING = WATCHDOG_USEC / 2 / 1e6  # seconds

HELLO = '''
[[device]]
id = "hello-1"
driver = "hello"
plugin = "org.firelink.examples.hello-c"
class = "vendor:org.firelink.examples.hello"
config = { period_ms = 200 }
'''

TYPO = '''
[[device]]
id = "typo-1"
driver = "helo"
class = "vendor:org.firelink.examples.hello"
'''


class NotifySocket:
    """The manager's end of the protocol: a datagram socket and a thread that timestamps what arrives."""

    def __init__(self, name):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        self.sock.settimeout(0.1)
        self.name = name
        self.messages = []  # (monotonic time, text)
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.done:
            try:
                text = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            with self.lock:
                self.messages.append((time.monotonic(), text))

    def all(self):
        with self.lock:
            return list(self.messages)

    def pings(self, after=0.0):
        return [t for t, m in self.all() if m == "WATCHDOG=1" and t > after]

    def find(self, prefix):
        return next((m for _, m in self.all() if m.startswith(prefix)), None)

    def close(self):
        self.done = True
        self.thread.join(timeout=5)
        self.sock.close()


def post(site, path, body):
    return site.post(path, body, timeout=30)  # with the admin token


def health(site, query=""):
    status, body = site.get("/healthz" + query)
    return status, json.loads(body)


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = new_workdir(self)

    def site(self, body, env=None):
        s = Site(HOST, EXAMPLES, body, self.dir)
        self.addCleanup(s.close)
        return s.start(env=env)

    def notify_socket(self, name):
        n = NotifySocket(name)
        self.addCleanup(n.close)
        return n


class Systemd(Base):
    def start_notified(self, name):
        n = self.notify_socket(name)
        site = self.site(HELLO, {"NOTIFY_SOCKET": n.name, "WATCHDOG_USEC": str(WATCHDOG_USEC),
                                 "FIRELINK_TEST_HOOKS": "1"})
        return n, site

    def assert_ready_then_pings(self, n, site):
        wait_for(lambda: n.find("READY=1"), "READY=1")
        first = n.all()[0][1]
        self.assertTrue(first.startswith("READY=1\n"), "READY=1 is the first message: " + first)
        self.assertIn("STATUS=ok, 1 device(s) running", first)
        self.assertEqual(site.devices()["hello-1"]["state"], "started")
        # At half of WATCHDOG_USEC: never faster (each tick is timed from the last), and well within the timeout.
        pings = wait_for(lambda: (lambda p: p if len(p) >= 6 else None)(n.pings()), "six WATCHDOG=1 pings")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertGreaterEqual(min(gaps), PING * 0.8, gaps)
        self.assertLess(sorted(gaps)[len(gaps) // 2], WATCHDOG_USEC / 1e6, gaps)

    def assert_wedge_stops_the_pings(self, n, site, loop):
        wedge = 4.0
        status, answer = post(site, "/api/test/wedge", {"loop": loop, "seconds": wedge})
        self.assertEqual(status, 202, answer)
        wedged_at = time.monotonic()  # the loop is blocked by now: the hook answers once it is
        # A ping sent just before the loop blocked may still be on its way, and the devices' loop is probed one tick
        # ahead (its answer to the last probe allows one more ping); after that, nothing for as long as the wedge
        # lasts: here over 4 ping intervals.
        grace = 0.2 + (PING if loop == "devices" else 0)
        time.sleep(wedge - 0.5)
        late = n.pings(after=wedged_at + grace)
        self.assertEqual(late, [], f"WATCHDOG=1 while the {loop} loop was wedged")
        # The loop comes back, and so do the pings.
        wait_for(lambda: n.pings(after=wedged_at + wedge - 0.5), "WATCHDOG=1 after the wedge ended")
        self.assertIn("has not answered", site.output()) if loop == "devices" else None

    def test_ready_watchdog_and_a_wedged_control_loop(self):
        n, site = self.start_notified(os.path.join(self.dir, "notify.sock"))
        self.assert_ready_then_pings(n, site)
        self.assert_wedge_stops_the_pings(n, site, "control")
        self.assertEqual(site.stop(), 0)
        self.assertIsNotNone(n.find("STOPPING=1"), n.all())

    def test_an_abstract_socket_and_a_wedged_devices_loop(self):
        n, site = self.start_notified(f"@firelink-test-{os.getpid()}-{time.monotonic_ns()}")
        self.assert_ready_then_pings(n, site)
        self.assert_wedge_stops_the_pings(n, site, "devices")

    def test_without_test_hooks_there_is_no_wedge(self):
        site = self.site(HELLO)
        status, _ = post(site, "/api/test/wedge", {"loop": "control", "seconds": 1})
        self.assertEqual(status, 404)


class Health(Base):
    def test_strict_is_503_and_names_the_device_that_failed_to_start(self):
        site = self.site(HELLO + TYPO)
        status, h = health(site)
        self.assertEqual(status, 200, "plain /healthz answers 200 with the status in the body")
        self.assertEqual(h["status"], "degraded")
        self.assertEqual(h["devices"]["not_started"], 1)
        status, strict = health(site, "?strict")
        self.assertEqual(status, 503)
        reason = next(r for r in strict["reasons"] if r.get("id") == "typo-1")
        self.assertEqual(reason["component"], "device")
        self.assertIn("not started", reason["problem"])
        self.assertIn("site.toml:", reason["problem"])
        self.assertIn("no loaded plugin has driver 'helo' (did you mean 'hello'?)", reason["problem"])
        self.assertEqual(health(site, "?strict=1")[0], 503)
        self.assertEqual(health(site, "?strict=0")[0], 200)

    def test_strict_is_200_when_all_is_well(self):
        site = self.site(HELLO)
        status, h = health(site, "?strict")
        self.assertEqual(status, 200, h)
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["reasons"], [])

    def test_no_alarm_reserve_is_a_fault_at_the_platform_and_in_the_local_record(self):
        rx = Receiver(RECEIVER, self.dir).start()
        self.addCleanup(rx.close)
        blocker = os.path.join(self.dir, "queue.db.reserve")
        os.mkdir(blocker)  # where the reserve file goes: the queue cannot make it
        site = self.site(HELLO + f'\n[uplink]\nurl = "{rx.url()}"\nqueue_path = "queue.db"\nreserve_mb = 1\n')
        status, h = health(site, "?strict")
        self.assertEqual(status, 503)
        self.assertFalse(h["uplink"]["reserve_held"])
        self.assertTrue(any(r["component"] == "queue" and "alarm reserve" in r["problem"] for r in h["reasons"]),
                        h["reasons"])
        gateway = "gw-modbus"  # firelink_e2e.Site's default
        fault = wait_for(lambda: rx.rows("device=? AND code='alarm_reserve_missing'", (gateway,)),
                         "the fault at the platform")[0]
        self.assertEqual(fault["kind"], "fault")
        self.assertEqual(fault["class"], "gateway")
        site.wait_event("the fault in the local record",
                        lambda r: r["device"] == gateway and r["event"]["code"] == "alarm_reserve_missing")

        os.rmdir(blocker)  # room for it again: made at the queue's next check, and the fault restored
        restore = wait_for(lambda: rx.rows("device=? AND kind='restore'", (gateway,)), "the restore at the platform")
        self.assertEqual(restore[0]["ends"], fault["event_id"])
        site.wait_event("the restore in the local record",
                        lambda r: r["device"] == gateway and r["event"]["kind"] == "restore")
        wait_for(lambda: health(site, "?strict")[0] == 200, "/healthz?strict 200 again")

    def test_a_command_the_gateway_cannot_run_is_in_the_local_record(self):
        rx = Receiver(RECEIVER, self.dir).start()
        self.addCleanup(rx.close)
        site = self.site(HELLO + f'\n[uplink]\nurl = "{rx.url()}"\nqueue_path = "queue.db"\nreserve_mb = 0\n')
        req = urllib.request.Request(rx.url("/api/commands"), method="POST", data=json.dumps(
            {"gateway": "gw-modbus", "device": "no-such-device", "name": "ping"}).encode())
        with urllib.request.urlopen(req, timeout=DEADLINE) as r:
            cid = json.loads(r.read())["id"]
        at_platform = wait_for(lambda: rx.rows("command_id=?", (cid,)), "the command_failed at the platform")[0]
        self.assertEqual(at_platform["device"], "gw-modbus")
        local = site.wait_event("the command_failed in the local record",
                                lambda r: r["event"].get("command_id") == cid)
        self.assertEqual(local["device"], "gw-modbus")
        self.assertEqual(local["class"], "gateway")
        self.assertEqual(local["origin"], "host")
        self.assertEqual(local["event"]["code"], "command_failed")
        self.assertEqual(local["seq"], at_platform["device_seq"], "the same event, numbered the same")


class QuietStop(Base):
    def test_a_stop_closes_the_listener_before_its_devices(self):
        port = free_port()
        site = self.site(f'\n[[listener]]\nid = "centre"\nlisten = "127.0.0.1:{port}"\n\n[[device]]\nid = "panel-1"\n'
                         'driver = "gb26875-uitd"\nclass = "fire_panel"\n'
                         'wire = { listener = "centre", identity = "000000000379" }\n')
        # A UITD that connects again at once whenever the centre drops it, as real ones do.
        uitd = subprocess.Popen([SIM, "uitd", "--connect", f"127.0.0.1:{port}", "--reconnect", "--heartbeat-s", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (uitd.kill(), uitd.wait()))
        wait_for(lambda: site.devices()["panel-1"]["wire"]["bytes_in"] > 0, "the UITD on its device's wire")
        self.assertEqual(site.stop(), 0)
        log = site.output()
        stopping = log.index("signal 15: stopping")
        self.assertIn("no longer accepting", log[stopping:])
        self.assertLess(log.index("no longer accepting", stopping), log.index("summary:", stopping))
        self.assertNotIn("closed a connection", log[stopping:], "refusals while stopping:\n" + log[stopping:])


if __name__ == "__main__":
    unittest.main()
