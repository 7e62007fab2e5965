#!/usr/bin/env python3
"""firelink-receiver end to end: the real process on a loopback port 0, real HTTP, the SQLite file it writes.
Each test starts its own receiver in its own temporary folder.

Usage (ctest passes these): receiver_test.py FIRELINK_RECEIVER [unittest args, e.g. Ingest]
"""
import base64
import hashlib
import http.client
import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

from firelink_e2e import DEADLINE, take_arguments, wait_for
from firelink_e2e import msgpack_codec as mp

RECEIVER = take_arguments("FIRELINK_RECEIVER")
EPOCH = "0123456789abcdef0123456789abcdef"


def record(seq, device="dev-1", kind="telemetry", code="tick", wall_ms=None, **event):
    """A record of one host boot: its monotonic clock runs with its wall clock."""
    wall_ms = 1_700_000_000_000 + seq if wall_ms is None else wall_ms
    return {
        "seq": seq, "device": device, "class": "arc_fault_breaker", "plugin": "org.test.breaker",
        "device_seq": seq, "origin": "driver",
        "received": {"wall_ms": wall_ms, "monotonic_ns": 10_000_000_000 + wall_ms * 1000, "boot_id": "boot-1",
                     "clock_synced": True},
        "site": {"building": "A", "floor": "3"},
        "event": {"schema": 1, "kind": kind, "code": code, **event},
    }


def batch(lane, records, gateway="gw-1", epoch=EPOCH):
    return {"protocol": 1, "gateway": gateway, "epoch": epoch, "lane": lane, "events": records}



GATEWAY_TOKEN = "gw-any-secret"
OPERATOR_TOKEN = "op-any-secret"
# What every test's receiver grants unless it says otherwise: a gateway token for any gateway (the uplink's routes)
# and an operator token (the operator's), sent by request() according to the path.
TOKENS = f"# role gateway token\ngateway * {GATEWAY_TOKEN}\noperator * {OPERATOR_TOKEN}\n"


class Receiver:
    """A firelink-receiver child process on 127.0.0.1:0 with its own folder."""

    def __init__(self, tokens=TOKENS, test_faults=True, db=None, folder=None, args=()):
        self.dir = folder or tempfile.TemporaryDirectory(prefix="firelink-receiver-")
        self.db = db or os.path.join(self.dir.name, "receiver.db")
        self.args = [RECEIVER, "--listen", "127.0.0.1:0", "--db", self.db, "--log-level", "debug", *args]
        if test_faults:
            self.args.append("--test-faults")
        if tokens is not None:
            path = os.path.join(self.dir.name, "tokens")
            with open(path, "w") as f:
                f.write(tokens)
            self.args += ["--token-file", path]
        self.proc = None
        self.conn = None

    def start(self):
        self.log = open(os.path.join(self.dir.name, "receiver.log"), "a")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log)
        ready, _, _ = select.select([self.proc.stdout], [], [], DEADLINE)
        if not ready:
            raise AssertionError("no 'listening on' line:\n" + self.output())
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on 127.0.0.1:"):
            raise AssertionError("unexpected first line %r:\n%s" % (line, self.output()))
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        return self

    def output(self):
        if not self.log.closed:  # stop() closes it; a failed tearDown still prints the log
            self.log.flush()
        with open(os.path.join(self.dir.name, "receiver.log")) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.conn:
            self.conn.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the receiver did not stop on signal %d" % sig)
        if self.proc:
            self.proc.stdout.close()
            self.log.close()
        return self.proc.returncode

    def request(self, method, path, body=None, headers=None, conn=None, token=None):
        """token None: the default token for the path's routes (TOKENS); "": no Authorization header."""
        conn = conn or self.conn
        hdrs = dict(headers or {})
        if token is None:
            token = GATEWAY_TOKEN if path.startswith("/v1/") else OPERATOR_TOKEN
        if token:
            hdrs["Authorization"] = "Bearer " + token
        conn.request(method, path, body=body, headers=hdrs)
        res = conn.getresponse()
        return res.status, dict((k.lower(), v) for k, v in res.getheaders()), res.read()

    def post_batch(self, b, token=None, conn=None):
        headers = {"Content-Type": "application/msgpack", "Accept": "application/msgpack",
                   "X-Firelink-Protocol": "1", "X-Firelink-Gateway": b.get("gateway", "") if isinstance(b, dict) else ""}
        body = b if isinstance(b, (bytes, bytearray)) else mp.packb(b)
        return self.request("POST", "/v1/events", body, headers, conn, token)

    def ack(self, b, **kw):
        status, headers, body = self.post_batch(b, **kw)
        if status != 200:
            raise AssertionError("batch answered %d: %r" % (status, body))
        if headers.get("content-type") != "application/msgpack":
            raise AssertionError("ack content type %r" % headers.get("content-type"))
        return mp.unpackb(body)

    def get_json(self, path, conn=None, token=None):
        status, headers, body = self.request("GET", path, conn=conn, token=token)
        if status != 200:
            raise AssertionError("GET %s answered %d: %r" % (path, status, body))
        return json.loads(body)

    def post_json(self, path, value, conn=None, token=None):
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        status, _, body = self.request("POST", path, body, {"Content-Type": "application/json"}, conn, token)
        return status, json.loads(body)

    def faults(self, value):
        status, body = self.post_json("/test/faults", value)
        if status != 200:
            raise AssertionError("faults answered %d: %r" % (status, body))
        return body

    def poll(self, gateway, after, wait, conn=None, token=None):
        q = urllib.parse.urlencode({"gateway": gateway, "after": after, "wait": wait})
        headers = {"Accept": "application/msgpack"}
        status, hdrs, body = self.request("GET", "/v1/commands?" + q, headers=headers, conn=conn, token=token)
        if status != 200:
            raise AssertionError("poll answered %d: %r" % (status, body))
        return mp.unpackb(body)

    def new_conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)

    def rows(self, sql, *args):
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()


class ReceiverCase(unittest.TestCase):
    receiver_args = {}

    def setUp(self):
        self.r = Receiver(**self.receiver_args).start()

    def tearDown(self):
        code = self.r.stop()
        if code != 0:
            print(self.r.output(), file=sys.stderr)
        self.assertEqual(code, 0, "the receiver's exit code after SIGTERM")

    def lane_stats(self, lane):
        return self.r.get_json("/api/stats")["lanes"][lane]


class Ingest(ReceiverCase):
    def test_ack_comes_after_the_records_are_stored(self):
        recs = [record(1, kind="alarm", code="arc_fault", event_id="a1", message="arc on line 1"),
                record(2, kind="pre_alarm", code="over_temperature"), record(3, kind="alarm", code="arc_fault")]
        ack = self.r.ack(batch("alarm", recs))
        self.assertEqual(ack, {"acked_through": {"alarm": 3}, "rejects": []})
        # The ack came: the rows are committed, visible to another connection on the file.
        rows = self.r.rows("SELECT gateway, epoch, lane, seq, device, class, plugin, device_seq, origin, wall_ms,"
                           " monotonic_ns, boot_id, clock_synced, site, kind, code, severity, event_id, message,"
                           " record FROM events ORDER BY seq")
        self.assertEqual(len(rows), 3)
        first = rows[0]
        self.assertEqual(first[:13], ("gw-1", EPOCH, "alarm", 1, "dev-1", "arc_fault_breaker", "org.test.breaker", 1,
                                      "driver", 1_700_000_000_001, 10_000_000_000 + 1_700_000_000_001_000, "boot-1", 1))
        self.assertEqual(json.loads(first[13]), {"building": "A", "floor": "3"})
        self.assertEqual(first[14:19], ("alarm", "arc_fault", "critical", "a1", "arc on line 1"))
        self.assertEqual(bytes(first[19]), mp.packb(recs[0]), "the raw record is kept byte for byte")
        self.assertEqual(rows[1][16], "major", "a pre_alarm without severity takes its kind's default")

        events = self.r.get_json("/api/events?lane=alarm")
        self.assertEqual([e["seq"] for e in events], [3, 2, 1], "newest first")
        self.assertEqual(events[2]["event"], recs[0]["event"])
        self.assertEqual(events[2]["received"], recs[0]["received"])
        self.assertEqual(events[2]["site"], recs[0]["site"])

    def test_a_batch_sent_twice_is_stored_once_and_acked_twice(self):
        b = batch("telemetry", [record(s) for s in (1, 2, 3)])
        self.assertEqual(self.r.ack(b), {"acked_through": {"telemetry": 3}, "rejects": []})
        self.assertEqual(self.r.ack(b), {"acked_through": {"telemetry": 3}, "rejects": []})
        overlap = batch("telemetry", [record(s) for s in (3, 4)])
        self.assertEqual(self.r.ack(overlap)["acked_through"], {"telemetry": 4})
        self.assertEqual(self.r.rows("SELECT COUNT(*) FROM events")[0][0], 4)
        stats = self.lane_stats("telemetry")
        self.assertEqual((stats["batches"], stats["stored"], stats["duplicates"], stats["in_store"]), (3, 4, 4, 4))

    def test_the_key_is_gateway_epoch_lane_and_seq(self):
        self.r.ack(batch("event", [record(1, kind="status", code="valve_closed")]))
        self.r.ack(batch("telemetry", [record(1)]))
        self.r.ack(batch("event", [record(1, kind="status", code="valve_closed")], epoch="f" * 32))
        self.r.ack(batch("event", [record(1, kind="status", code="valve_closed")], gateway="gw-2"))
        self.r.ack(batch("event", [record(1, kind="status", code="valve_closed")], gateway="gw-2"))
        self.assertEqual(self.r.rows("SELECT COUNT(*) FROM events")[0][0], 4)
        self.assertEqual(self.lane_stats("event")["duplicates"], 1)

    def test_a_record_that_breaks_the_document_is_rejected_alone(self):
        no_received = record(2)
        del no_received["received"]
        bad_code = record(3)
        bad_code["event"]["code"] = 7
        restore_without_ends = record(4, kind="restore", code="arc_fault")
        bad_wall = record(5)
        bad_wall["received"]["wall_ms"] = "yesterday"
        negative_wall = record(6, wall_ms=-5)  # allowed: "may be negative"
        recs = [record(1), no_received, bad_code, restore_without_ends, bad_wall, negative_wall, record(7)]
        ack = self.r.ack(batch("event", recs))
        self.assertEqual(ack["acked_through"], {"event": 7})
        self.assertEqual([(r["seq"], r["status"]) for r in ack["rejects"]], [(2, 422), (3, 422), (4, 422), (5, 422)])
        reasons = [r["reason"] for r in ack["rejects"]]
        self.assertIn("'received' is missing", reasons[0])
        self.assertIn("'code' is an int", reasons[1])
        self.assertIn("restore without 'ends'", reasons[2])
        self.assertIn("'wall_ms' is a str", reasons[3])
        self.assertEqual([r[0] for r in self.r.rows("SELECT seq FROM events ORDER BY seq")], [1, 6, 7])
        self.assertEqual(self.r.rows("SELECT wall_ms FROM events WHERE seq = 6")[0][0], -5)
        self.assertEqual(self.lane_stats("event")["rejects"], 4)

    def test_a_body_that_is_not_a_batch_is_refused_whole_with_400(self):
        good = batch("alarm", [record(1, kind="alarm", code="arc_fault")])
        cases = {
            "garbage": b"\xc1\xc1 not msgpack",
            "an array": mp.packb([1, 2, 3]),
            "no epoch": mp.packb({k: v for k, v in good.items() if k != "epoch"}),
            "a short epoch": mp.packb(dict(good, epoch="abc")),
            "an unknown lane": mp.packb(dict(good, lane="urgent")),
            "protocol 2": mp.packb(dict(good, protocol=2)),
            "no events": mp.packb(dict(good, events=[])),
            "a record without seq": mp.packb(dict(good, events=[{"device": "x"}])),
            "seq out of order": mp.packb(dict(good, events=[record(2), record(1)])),
            "trailing bytes": mp.packb(good) + b"\x00",
            "truncated": mp.packb(good)[:-3],
        }
        for name, body in cases.items():
            with self.subTest(name):
                status, headers, text = self.r.post_batch(body)
                self.assertEqual(status, 400, text)
                self.assertTrue(headers["content-type"].startswith("text/plain"))
                self.assertGreater(len(text.strip()), 0, "a 400 says why")
        self.assertEqual(self.r.rows("SELECT COUNT(*) FROM events")[0][0], 0)
        self.assertEqual(self.r.get_json("/api/stats")["since_start"]["bad_batches"], len(cases))
        # The same connection still works (keep-alive after an error answer).
        self.assertEqual(self.r.ack(good)["acked_through"], {"alarm": 1})

    def test_a_4_mib_batch_is_accepted(self):
        recs = [record(s, message="m" * 1000) for s in range(1, 4501)]
        body = mp.packb(batch("telemetry", recs))
        self.assertGreater(len(body), 4 << 20)
        ack = self.r.ack(body)
        self.assertEqual(ack, {"acked_through": {"telemetry": 4500}, "rejects": []})
        self.assertEqual(self.r.rows("SELECT COUNT(*) FROM events")[0][0], 4500)


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


def raw_exchange(port, head, body_bytes=0, chunk=b"x" * 65536):
    """Sends a request header by hand, then as much of a body as the receiver reads, and returns the status line's
    code and how many body bytes were sent before the answer came: a receiver that refuses from the header answers
    before the body is sent (or while it is, the socket buffers holding a little)."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(head)
        sent = 0
        sock.setblocking(False)
        answer = b""
        deadline = time.monotonic() + DEADLINE
        while b"\r\n" not in answer and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < body_bytes else [], [], 0.5)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            elif writable:
                try:
                    sent += sock.send(chunk[:body_bytes - sent])
                except (BlockingIOError, ConnectionError):
                    pass
        if not answer:
            raise AssertionError("no answer after sending %d body bytes" % sent)
        return int(answer.split(b" ", 2)[1]), sent


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1])


class Access(ReceiverCase):
    """Every route needs a token of the right role; a gateway's token writes as that gateway only."""
    receiver_args = {"tokens": "\n".join([
        "# role    gateway  token (plain, or sha256:HEX of it)",
        "gateway   gw-1     gw1-secret",
        "gateway   gw-2     sha256:" + sha256_hex("gw2-secret") + "   # stored hashed",
        "operator  *        op-secret",
        "operator  gw-2     sha256:" + sha256_hex("op2-secret"),
        "read      *        read-secret",
        ""])}
    close_valve = {"gateway": "gw-1", "device": "valve-1", "name": "close_valve", "args": {"why": "test"}}

    def commands_queued(self):
        return self.r.rows("SELECT COUNT(*) FROM commands")[0][0]

    def test_a_command_without_a_token_is_401_and_nothing_is_queued(self):
        for token in ("", "wrong", "op-secre", "op-secret-", "gw1-secret", "read-secret", sha256_hex("op-secret")):
            status, body = self.r.post_json("/api/commands", self.close_valve, token=token)
            expected = 403 if token in ("gw1-secret", "read-secret") else 401
            self.assertEqual(status, expected, (token, body))
            self.assertIn("error", body)
        self.assertEqual(self.commands_queued(), 0)
        self.assertEqual(self.r.poll("gw-1", 0, 0, token="gw1-secret"), {"commands": [], "cursor": 0})
        status, body = self.r.post_json("/api/commands", self.close_valve, token="op-secret")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.r.poll("gw-1", 0, 0, token="gw1-secret")["commands"][0]["name"], "close_valve")
        stats = self.r.get_json("/api/stats", token="read-secret")["since_start"]
        self.assertEqual((stats["unauthorized"], stats["forbidden"]), (5, 2))

    def test_every_route_needs_a_token_and_the_right_role(self):
        b = batch("alarm", [record(1, kind="alarm", code="arc_fault")])
        routes = [("GET", "/"), ("GET", "/index.html"), ("GET", "/api/events"), ("GET", "/api/devices"),
                  ("GET", "/api/stats"), ("GET", "/api/commands"), ("GET", "/no/such/path"),
                  ("GET", "/test/faults"), ("POST", "/test/faults"),
                  ("GET", "/v1/commands?gateway=gw-1&after=0&wait=0"), ("POST", "/v1/events")]
        for method, path in routes:
            status, headers, _ = self.r.request(method, path, b"{}", token="", conn=self.r.new_conn())
            self.assertEqual(status, 401, path)
            self.assertIn("Bearer", headers.get("www-authenticate", ""))
        for path in ("/", "/api/events", "/api/devices", "/api/stats", "/api/commands", "/test/faults"):
            self.assertEqual(self.r.request("GET", path, token="read-secret")[0], 200, path)
            self.assertEqual(self.r.request("GET", path, token="gw1-secret", conn=self.r.new_conn())[0], 403, path)
        self.assertEqual(self.r.request("GET", "/no/such/path", token="read-secret")[0], 404)
        self.assertEqual(self.r.post_json("/test/faults", {"clear": True}, token="read-secret")[0], 403)
        self.assertEqual(self.r.post_batch(b, token="read-secret", conn=self.r.new_conn())[0], 403)
        self.assertEqual(self.r.post_batch(b, token="op-secret", conn=self.r.new_conn())[0], 403)
        self.assertEqual(self.r.rows("SELECT COUNT(*) FROM events")[0][0], 0)
        # A browser's login prompt: Basic, the token as the password, any user name.
        basic = "Basic " + base64.b64encode(b"anyone:read-secret").decode()
        status, _, page = self.r.request("GET", "/", headers={"Authorization": basic}, token="")
        self.assertEqual(status, 200)
        self.assertIn(b"<html", page.lower())
        status, headers, _ = self.r.request("GET", "/", headers={"Authorization": "Basic bm8tY29sb24="}, token="",
                                            conn=self.r.new_conn())
        self.assertEqual(status, 401)
        self.assertIn('Basic realm="firelink-receiver"', headers["www-authenticate"])

    def test_a_gateway_token_writes_and_polls_as_its_own_gateway_only(self):
        as_gw2 = batch("alarm", [record(1, kind="alarm", code="arc_fault")], gateway="gw-2")
        status, _, body = self.r.post_batch(as_gw2, token="gw1-secret")
        self.assertEqual(status, 403, body)
        self.assertIn(b"gw-2", body)
        self.assertEqual(self.r.rows("SELECT COUNT(*) FROM events")[0][0], 0, "nothing stored as gw-2")
        self.assertEqual(self.r.ack(batch("alarm", [record(1)], gateway="gw-1"), token="gw1-secret")["acked_through"],
                         {"alarm": 1})
        self.assertEqual(self.r.ack(as_gw2, token="gw2-secret")["acked_through"], {"alarm": 1}, "a hashed line")
        self.assertEqual(self.r.rows("SELECT gateway FROM events ORDER BY id"), [("gw-1",), ("gw-2",)])
        # Polls: gw-1's token may not take gw-2's commands (a poll marks them delivered).
        status, body = self.r.post_json("/api/commands", dict(self.close_valve, gateway="gw-2"), token="op2-secret")
        self.assertEqual(status, 200, body)
        q = "/v1/commands?gateway=gw-2&after=0&wait=0"
        self.assertEqual(self.r.request("GET", q, token="gw1-secret")[0], 403)
        self.assertEqual(self.r.rows("SELECT delivered_ms FROM commands"), [(None,)], "not handed to gw-1")
        self.assertEqual(len(self.r.poll("gw-2", 0, 0, token="gw2-secret")["commands"]), 1)
        # An operator token of gw-2 commands gw-2 only.
        status, body = self.r.post_json("/api/commands", self.close_valve, token="op2-secret")
        self.assertEqual((status, body["error"]), (403, "this token may not command gateway 'gw-1'"))
        self.assertEqual(self.commands_queued(), 1)

    def test_deep_json_is_400_and_the_receiver_still_answers(self):
        deep = b'{"gateway":"gw-1","device":"valve-1","name":"close_valve","args":' + \
            b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}"
        self.assertGreater(len(deep), 600_000)
        # Over the route's 64 KiB cap first; under it, the depth limit.
        self.assertEqual(self.r.post_json("/api/commands", deep, token="op-secret")[0], 413)
        for depth, expected in ((10_000, 400), (40, 400), (20, 200)):
            body = b'{"gateway":"gw-1","device":"v","name":"n","args":' + b'{"a":' * depth + b"1" + \
                b"}" * depth + b"}"
            status, answer = self.r.post_json("/api/commands", body, token="op-secret", conn=self.r.new_conn())
            self.assertEqual(status, expected, (depth, len(body), answer))
            if expected == 400:
                self.assertIn("nested deeper than 32", answer["error"])
        status, answer = self.r.post_json("/test/faults", b'{"a":' * 1000 + b"1" + b"}" * 1000, token="op-secret",
                                          conn=self.r.new_conn())
        self.assertEqual(status, 400, answer)
        # msgpack: an array nested 100 000 deep where a batch's events go.
        packed = mp.packb({"protocol": 1, "gateway": "gw-1", "epoch": EPOCH, "lane": "alarm"})
        deep_mp = bytes([packed[0] + 1]) + packed[1:] + mp.packb("events") + b"\x91" * 100_000 + b"\xc0"
        status, _, body = self.r.post_batch(deep_mp, token="gw1-secret", conn=self.r.new_conn())
        self.assertEqual(status, 400, body)
        self.assertEqual(self.r.proc.poll(), None, "still running")
        self.assertEqual(self.r.request("GET", "/api/stats", token="read-secret", conn=self.r.new_conn())[0], 200)
        self.assertEqual(self.commands_queued(), 1, "the 20 deep one")

    def test_floods_of_unauthenticated_bodies_are_refused_unread(self):
        size = 15 << 20
        results = []

        def flood(i):
            head = (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                    % (b"/v1/events" if i % 2 else b"/api/commands", size))
            results.append(raw_exchange(self.r.port, head, size))

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE * 2)
        self.assertEqual(len(results), 40)
        self.assertEqual({status for status, _ in results}, {401})
        # Answered before the body: at most what the socket buffers took, never the 15 MiB.
        self.assertLess(max(sent for _, sent in results), size // 2, results)
        # Authenticated but over the route's cap: 413 from the Content-Length alone (the body is never sent).
        auth = b"Authorization: Bearer gw1-secret\r\n"
        status, _ = raw_exchange(self.r.port, b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" + auth +
                                 b"Content-Length: %d\r\n\r\n" % (17 << 20))
        self.assertEqual(status, 413)
        status, _ = raw_exchange(self.r.port, b"POST /api/commands HTTP/1.1\r\nHost: x\r\n"
                                 b"Authorization: Bearer op-secret\r\nContent-Length: %d\r\n\r\n" % size)
        self.assertEqual(status, 413)
        # Chunked: no length to refuse from, so the cap applies while reading.
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        status, _ = raw_exchange(self.r.port, b"POST /api/commands HTTP/1.1\r\nHost: x\r\n"
                                 b"Authorization: Bearer op-secret\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2)
        self.assertEqual(status, 413)
        hwm_mb = vm_hwm_kib(self.r.proc.pid) / 1024
        self.assertLess(hwm_mb, 64, "the receiver's peak resident memory, MB")
        self.assertEqual(self.r.get_json("/api/stats", token="read-secret")["since_start"]["unauthorized"], 40)


class Slowloris(ReceiverCase):
    """Connections that never finish a header are closed, and past the connection cap new ones are closed at once."""

    def test_a_header_that_never_ends_is_closed_after_10_s(self):
        with socket.create_connection(("127.0.0.1", self.r.port), timeout=DEADLINE) as sock:
            start = time.monotonic()
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
            for _ in range(5):  # a byte a second keeps the socket busy, not the header deadline
                time.sleep(1)
                sock.sendall(b"X")
            self.assertEqual(sock.recv(100), b"", "closed, unanswered")
            self.assertGreater(time.monotonic() - start, 9)

    def test_connections_past_the_cap_are_closed(self):
        idle = [socket.create_connection(("127.0.0.1", self.r.port), timeout=DEADLINE) for _ in range(512)]
        try:
            # Accepted in the order they connected, so the 513th finds 512 open: closed at once, not after the
            # header deadline (10 s) that would close it anyway.
            with socket.create_connection(("127.0.0.1", self.r.port), timeout=3) as extra:
                self.assertEqual(extra.recv(100), b"", "the 513th is closed")
            self.assertIn("512 connections open: closing a new one", self.r.output())
        finally:
            for sock in idle:
                sock.close()

        def answers():  # once the receiver has seen the idle ones close
            try:
                return self.r.request("GET", "/api/stats", conn=self.r.new_conn())[0] == 200
            except (OSError, http.client.HTTPException):
                return False

        wait_for(answers, "an answer once the idle connections are gone")


class NoTokenFile(ReceiverCase):
    """Secure by default: without --token-file nobody is admitted, and the answer says how to configure."""
    receiver_args = {"tokens": None}

    def test_everything_is_401_with_how_to_configure(self):
        status, body = self.r.post_json("/api/commands", Access.close_valve, token="")
        self.assertEqual(status, 401)
        self.assertIn("--token-file", body["error"])
        self.assertIn("--insecure-loopback", body["error"])
        status, _, text = self.r.post_batch(batch("alarm", [record(1)]), token="anything", conn=self.r.new_conn())
        self.assertEqual(status, 401)
        self.assertIn(b"--token-file", text)
        self.assertEqual(self.r.rows("SELECT COUNT(*) FROM commands")[0][0], 0)


class InsecureLoopback(ReceiverCase):
    receiver_args = {"tokens": None, "args": ["--insecure-loopback"]}

    def test_anyone_may_do_anything(self):
        self.assertEqual(self.r.post_json("/api/commands", Access.close_valve, token="")[0], 200)
        self.assertEqual(self.r.ack(batch("alarm", [record(1)]), token="")["acked_through"], {"alarm": 1})
        self.assertEqual(len(self.r.poll("gw-1", 0, 0, token="")["commands"]), 1)


class Faults(ReceiverCase):
    def alarm(self, seq):
        return batch("alarm", [record(seq, kind="alarm", code="arc_fault")])

    def stored(self):
        return self.r.rows("SELECT COUNT(*) FROM events")[0][0]

    def test_status_500_answers_the_next_batches_without_storing(self):
        self.r.faults({"status": 500, "count": 3})
        for _ in range(3):
            status, _, _ = self.r.post_batch(self.alarm(1))
            self.assertEqual(status, 500)
        self.assertEqual(self.stored(), 0)
        self.assertEqual(self.r.ack(self.alarm(1))["acked_through"], {"alarm": 1})
        self.assertEqual(self.stored(), 1)

    def test_429_carries_retry_after(self):
        self.r.faults({"status": 429, "retry_after": 1, "count": 2})
        for _ in range(2):
            status, headers, _ = self.r.post_batch(self.alarm(1))
            self.assertEqual((status, headers.get("retry-after")), (429, "1"))
        self.assertEqual(self.stored(), 0)
        self.assertEqual(self.r.ack(self.alarm(1))["acked_through"], {"alarm": 1})

    def test_delay_answers_slowly_and_blocks_nothing_else(self):
        self.r.faults({"delay_ms": 800, "count": 1})
        start = time.monotonic()
        self.assertEqual(self.r.ack(self.alarm(1))["acked_through"], {"alarm": 1})
        self.assertGreaterEqual(time.monotonic() - start, 0.8)
        self.assertEqual(self.r.faults({})["delay_count"], 0)

        # A long delay holds one batch; the server keeps answering everything else meanwhile.
        self.r.faults({"delay_ms": 600000, "count": 1})
        held = self.r.new_conn()
        held.request("POST", "/v1/events", mp.packb(self.alarm(2)),
                     {"Content-Type": "application/msgpack", "Authorization": "Bearer " + GATEWAY_TOKEN})
        wait_for(lambda: self.r.faults({})["delay_count"] == 0, "the held batch to arrive")
        self.assertEqual(self.r.ack(self.alarm(3))["acked_through"], {"alarm": 3})
        self.assertEqual([r[0] for r in self.r.rows("SELECT seq FROM events ORDER BY seq")], [1, 3])
        held.close()

    def test_drop_response_after_commit_stores_then_hangs_up(self):
        self.r.faults({"drop_response_after_commit": 2})
        for seq in (1, 2):
            conn = self.r.new_conn()
            with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
                self.r.post_batch(self.alarm(seq), conn=conn)
            conn.close()
        self.assertEqual([r[0] for r in self.r.rows("SELECT seq FROM events ORDER BY seq")], [1, 2],
                         "both batches were committed before the connection closed")
        self.assertEqual(self.r.ack(self.alarm(1))["acked_through"], {"alarm": 1}, "the host's retry is acked")
        self.assertEqual(self.lane_stats("alarm")["duplicates"], 1)
        self.assertEqual(self.r.faults({})["drop_response_after_commit"], 0)

    def test_reject_device_refuses_that_device_until_cleared(self):
        b = batch("event", [record(1, device="dev-x", kind="fault", code="sensor_fault"),
                            record(2, device="dev-y", kind="fault", code="sensor_fault")])
        self.r.faults({"reject_device": "dev-x"})
        ack = self.r.ack(b)
        self.assertEqual(ack["acked_through"], {"event": 2})
        self.assertEqual([(r["seq"], r["status"]) for r in ack["rejects"]], [(1, 422)])
        self.assertIn("dev-x", ack["rejects"][0]["reason"])
        self.assertEqual([r[0] for r in self.r.rows("SELECT device FROM events")], ["dev-y"])
        self.assertEqual(self.r.faults({"clear": True})["reject_device"], "")
        self.assertEqual(self.r.ack(b)["rejects"], [])
        self.assertEqual(sorted(r[0] for r in self.r.rows("SELECT device FROM events")), ["dev-x", "dev-y"])

    def test_clear_and_bad_requests(self):
        self.r.faults({"status": 503, "count": 5, "delay_ms": 10, "drop_response_after_commit": 3})
        state = self.r.faults({"clear": True})
        self.assertEqual((state["status_count"], state["delay_count"], state["drop_response_after_commit"]),
                         (0, 0, 0))
        for bad in ({"status": 200}, {"stauts": 500}, {"count": 2}, {"delay_ms": -1}, [1]):
            with self.subTest(bad):
                status, body = self.r.post_json("/test/faults", bad)
                self.assertEqual(status, 400)
                self.assertIn("error", body)
        self.assertEqual(self.r.ack(self.alarm(1))["acked_through"], {"alarm": 1})


class NoFaults(ReceiverCase):
    receiver_args = {"test_faults": False}

    def test_fault_injection_is_off_without_the_flag(self):
        status, _ = self.r.post_json("/test/faults", {"status": 500})
        self.assertEqual(status, 404)
        self.assertEqual(self.r.ack(batch("alarm", [record(1, kind="alarm", code="arc_fault")]))["acked_through"],
                         {"alarm": 1})


class Commands(ReceiverCase):
    def post_command(self, **kw):
        status, body = self.r.post_json("/api/commands", kw)
        self.assertEqual(status, 200, body)
        return body

    def test_a_poll_answers_at_once_when_a_command_waits(self):
        first = self.post_command(gateway="gw-1", device="valve-1", name="close_valve", args={"reason": "drill"})
        self.assertEqual(first, {"id": "cmd-1", "cursor": 1})
        self.assertEqual(self.post_command(gateway="gw-2", device="b-1", name="trip")["cursor"], 1,
                         "cursors count per gateway")
        second = self.post_command(gateway="gw-1", device="valve-1", name="open_valve")
        self.assertEqual(second["cursor"], 2)
        # wait=30 with the client's hang guard under 30 s: answering only at the deadline would fail here.
        answer = self.r.poll("gw-1", 0, 30)
        self.assertEqual(answer["cursor"], 2)
        self.assertEqual(answer["commands"], [
            {"cursor": 1, "id": "cmd-1", "device": "valve-1", "name": "close_valve", "args": {"reason": "drill"}},
            {"cursor": 2, "id": second["id"], "device": "valve-1", "name": "open_valve", "args": {}}])
        self.assertEqual([c["cursor"] for c in self.r.poll("gw-1", 1, 30)["commands"]], [2])

    def test_an_empty_poll_answers_after_wait(self):
        self.post_command(gateway="gw-1", device="d", name="ping")
        start = time.monotonic()
        self.assertEqual(self.r.poll("gw-1", 1, 1), {"commands": [], "cursor": 1})
        self.assertGreaterEqual(time.monotonic() - start, 1.0)
        self.assertEqual(self.r.poll("gw-unknown", 0, 0), {"commands": [], "cursor": 0})

    def test_a_posted_command_wakes_a_waiting_poll(self):
        result = {}

        def poll(gateway, key):
            result[key] = self.r.poll(gateway, 0, 30, conn=self.r.new_conn())

        waiting = [threading.Thread(target=poll, args=("gw-1", "gw-1")),
                   threading.Thread(target=poll, args=("gw-2", "gw-2"))]
        for t in waiting:
            t.start()
        wait_for(lambda: self.r.get_json("/api/stats")["since_start"]["waiting_polls"] == 2, "two polls to wait")
        posted = self.post_command(gateway="gw-1", device="valve-1", name="close_valve", args={"n": 1.5})
        waiting[0].join(DEADLINE)
        self.assertFalse(waiting[0].is_alive(), "the poll was not woken")
        self.assertEqual(result["gw-1"]["commands"][0]["id"], posted["id"])
        self.assertEqual(result["gw-1"]["commands"][0]["args"], {"n": 1.5})
        self.assertTrue(waiting[1].is_alive(), "a command for gw-1 woke the poll of gw-2")
        self.assertEqual(self.r.get_json("/api/stats")["since_start"]["waiting_polls"], 1)
        self.post_command(gateway="gw-2", device="b-1", name="trip")
        waiting[1].join(DEADLINE)
        self.assertEqual([c["name"] for c in result["gw-2"]["commands"]], ["trip"])

    def test_ttl_results_and_status(self):
        before = int(time.time() * 1000)
        posted = self.post_command(gateway="gw-1", device="valve-1", name="close_valve", ttl_s=60)
        after = int(time.time() * 1000)
        cmd = self.r.poll("gw-1", 0, 0)["commands"][0]
        self.assertTrue(before + 60000 <= cmd["expires_wall_ms"] <= after + 60000)
        listed = self.r.get_json("/api/commands")
        self.assertEqual((listed[0]["id"], listed[0]["status"]), (posted["id"], "delivered"))
        result = record(1, device="valve-1", kind="command_result", code="command_succeeded",
                        command_id=posted["id"], ok=True, message="valve reads back closed")
        self.r.ack(batch("event", [result]))
        listed = self.r.get_json("/api/commands?gateway=gw-1")
        self.assertEqual(listed[0]["status"], "succeeded")
        self.assertEqual(listed[0]["result"]["message"], "valve reads back closed")
        self.assertEqual(listed[0]["result"]["ok"], True)

    def test_bad_commands_and_polls_are_refused(self):
        for bad in ({"device": "d", "name": "n"}, {"gateway": "g", "name": "n"}, {"gateway": "g", "device": "d"},
                    {"gateway": "g", "device": "d", "name": "n", "args": [1]},
                    {"gateway": "g", "device": "d", "name": "n", "ttl_s": -1}, [1]):
            with self.subTest(bad):
                status, body = self.r.post_json("/api/commands", bad)
                self.assertEqual(status, 400)
                self.assertIn("error", body)
        status, _, _ = self.r.request("POST", "/api/commands", b"{not json")
        self.assertEqual(status, 400)
        for query in ("after=0&wait=1", "gateway=g&after=-1", "gateway=g&wait=soon"):
            with self.subTest(query):
                status, _, _ = self.r.request("GET", "/v1/commands?" + query)
                self.assertEqual(status, 400)
        self.assertEqual(self.r.get_json("/api/commands"), [])


class Query(ReceiverCase):
    def setUp(self):
        super().setUp()
        self.r.ack(batch("alarm", [record(1, device="dev-1", kind="alarm", code="arc_fault", event_id="a1",
                                          wall_ms=1000),
                                   record(2, device="dev-2", kind="alarm", code="gas_level_1", event_id="g1",
                                          wall_ms=2000)]))
        self.r.ack(batch("event", [record(1, device="dev-1", kind="restore", code="arc_fault", ends="a1",
                                          wall_ms=3000),
                                   record(2, device="dev-2", kind="fault", code="valve_fault", event_id="v1",
                                          wall_ms=4000)]))
        self.r.ack(batch("telemetry", [record(1, device="dev-1", wall_ms=5000)], gateway="gw-2"))

    def codes(self, query):
        return [e["code"] for e in self.r.get_json("/api/events" + query)]

    def test_filters(self):
        self.assertEqual(self.codes(""), ["tick", "valve_fault", "arc_fault", "gas_level_1", "arc_fault"])
        self.assertEqual(self.codes("?kind=alarm"), ["gas_level_1", "arc_fault"])
        self.assertEqual(self.codes("?kind=alarm,fault"), ["valve_fault", "gas_level_1", "arc_fault"])
        self.assertEqual(self.codes("?device=dev-2"), ["valve_fault", "gas_level_1"])
        self.assertEqual(self.codes("?gateway=gw-2"), ["tick"])
        self.assertEqual(self.codes("?lane=event"), ["valve_fault", "arc_fault"])
        self.assertEqual(self.codes("?limit=2"), ["tick", "valve_fault"])
        self.assertEqual(self.codes("?since_wall_ms=2000&until_wall_ms=4000"), ["valve_fault", "arc_fault",
                                                                                "gas_level_1"])
        self.assertEqual(self.codes("?device=dev-1&kind=restore"), ["arc_fault"])
        stored = self.r.get_json("/api/events?limit=1")[0]["stored_ms"]
        self.assertEqual(self.codes("?since_ms=%d" % (stored + 1)), [])
        self.assertEqual(len(self.codes("?until_ms=%d" % stored)), 5)
        self.assertEqual(self.codes("?until_ms=0"), [])

    def test_bad_filters_are_400(self):
        for query in ("limit=0", "limit=10001", "limit=ten", "lane=urgent", "since_ms=1.5", "device=%zz"):
            with self.subTest(query):
                status, _, body = self.r.request("GET", "/api/events?" + query)
                self.assertEqual(status, 400, body)
                self.assertIn("error", json.loads(body))

    def test_devices_show_last_event_and_active_conditions(self):
        devices = {(d["gateway"], d["device"]): d for d in self.r.get_json("/api/devices")}
        self.assertEqual(sorted(devices), [("gw-1", "dev-1"), ("gw-1", "dev-2"), ("gw-2", "dev-1")])
        dev1 = devices[("gw-1", "dev-1")]
        self.assertEqual((dev1["last_event"]["kind"], dev1["events"], dev1["active"]), ("restore", 2, []))
        dev2 = devices[("gw-1", "dev-2")]
        self.assertEqual(dev2["last_event"]["code"], "valve_fault")
        self.assertEqual(sorted(a["event_id"] for a in dev2["active"]), ["g1", "v1"])
        self.assertEqual(dev2["class"], "arc_fault_breaker")
        self.assertEqual(dev2["site"], {"building": "A", "floor": "3"})

    def test_a_restore_that_overtakes_its_alarm_still_ends_it(self):
        # The restore (event lane) arrives first; the alarm it ends, retried, comes later but is older.
        self.r.ack(batch("event", [record(3, device="dev-3", kind="restore", code="arc_fault", ends="a9",
                                          wall_ms=9000)]))
        self.r.ack(batch("alarm", [record(3, device="dev-3", kind="alarm", code="arc_fault", event_id="a9",
                                          wall_ms=8000)]))
        dev3 = [d for d in self.r.get_json("/api/devices") if d["device"] == "dev-3"][0]
        self.assertEqual(dev3["active"], [])
        self.assertEqual(dev3["last_event"]["kind"], "restore")

    def test_stats_per_lane(self):
        stats = self.r.get_json("/api/stats")
        self.assertEqual(stats["lanes"]["alarm"]["stored"], 2)
        self.assertEqual(stats["lanes"]["event"]["stored"], 2)
        self.assertEqual(stats["lanes"]["telemetry"]["in_store"], 1)
        self.assertEqual((stats["total"]["batches"], stats["total"]["stored"]), (3, 5))

    def test_the_page_is_served_and_self_contained(self):
        status, headers, body = self.r.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        page = body.decode()
        self.assertIn("<title>firelink-receiver</title>", page)
        for api in ("/api/events?kind=alarm,pre_alarm&rereports=fold", "/api/devices", "setInterval(refresh, 2000)",
                    "re-reported"):
            self.assertIn(api, page)
        self.assertNotIn("http://", page)
        self.assertNotIn("https://", page)
        status, _, _ = self.r.request("GET", "/nothing-here")
        self.assertEqual(status, 404)


def rereport(rec, seq, lane="alarm", epoch=EPOCH):
    """The record marked a re-report of the record (epoch, lane, seq), as the host sends it."""
    return {**rec, "rereport": True, "repeats": {"epoch": epoch, "lane": lane, "seq": seq}}


class Rereports(ReceiverCase):
    """Re-reports (docs/uplink-protocol.md): every record is stored, but an alarm is shown once however often it was
    reported."""

    def setUp(self):
        super().setUp()
        self.r.ack(batch("alarm", [record(1, device="dev-1", kind="alarm", code="arc_fault", event_id="a1",
                                          severity="major", message="first"),
                                   record(2, device="dev-2", kind="alarm", code="gas_level_1", event_id="g1")]))
        # After a restart: dev-1's alarm reported again, twice (the second names the first report too), in the same
        # batch as a new alarm of dev-2 and its own re-report.
        self.r.ack(batch("alarm", [
            rereport(record(3, device="dev-1", kind="alarm", code="arc_fault", event_id="a1", message="again"), 1),
            record(4, device="dev-2", kind="alarm", code="gas_level_2", event_id="g2"),
            rereport(record(5, device="dev-2", kind="alarm", code="gas_level_2", event_id="g2"), 4),
            rereport(record(6, device="dev-1", kind="alarm", code="arc_fault", event_id="a1", message="latest"), 1)]))

    def rows(self):
        return {seq: (rereport, rseq, rid) for seq, rereport, rseq, rid in
                self.r.rows("SELECT seq, rereport, repeats_seq, repeats_id FROM events")}

    def test_every_record_is_stored_and_a_rereport_points_at_its_first_report(self):
        ids = dict(self.r.rows("SELECT seq, id FROM events"))
        self.assertEqual(self.rows(), {1: (0, None, None), 2: (0, None, None), 3: (1, 1, ids[1]),
                                       4: (0, None, None), 5: (1, 4, ids[4]), 6: (1, 1, ids[1])})
        listed = {e["seq"]: e for e in self.r.get_json("/api/events")}
        self.assertEqual(sorted(listed), [1, 2, 3, 4, 5, 6])
        self.assertEqual(listed[6]["repeats"], {"epoch": EPOCH, "lane": "alarm", "seq": 1})
        self.assertEqual((listed[6]["rereport"], listed[6]["repeats_id"]), (True, ids[1]))
        self.assertNotIn("rereport", listed[1])
        self.assertNotIn("repeats", listed[1])

    def test_folded_each_alarm_is_listed_once_with_its_rereports(self):
        shown = self.r.get_json("/api/events?kind=alarm&rereports=fold")
        self.assertEqual([e["seq"] for e in shown], [4, 2, 1])
        a1 = shown[2]
        self.assertEqual(a1["rereports"]["count"], 2)
        last = a1["rereports"]["last"]
        self.assertEqual((last["seq"], last["event"]["message"], last["severity"]), (6, "latest", "critical"))
        self.assertEqual(shown[0]["rereports"]["count"], 1)
        self.assertNotIn("rereports", shown[1])
        # Filters and paging apply to the entries.
        self.assertEqual([e["seq"] for e in self.r.get_json("/api/events?rereports=fold&device=dev-1")], [1])
        self.assertEqual([e["seq"] for e in self.r.get_json("/api/events?rereports=fold&limit=1")], [4])
        self.assertEqual(len(self.r.get_json("/api/events?rereports=list")), 6)
        status, _, body = self.r.request("GET", "/api/events?rereports=maybe")
        self.assertEqual(status, 400, body)

    def test_a_resent_rereport_is_a_duplicate_and_counts_once(self):
        self.r.ack(batch("alarm", [rereport(record(6, device="dev-1", kind="alarm", code="arc_fault", event_id="a1",
                                                   message="latest"), 1)]))
        shown = self.r.get_json("/api/events?kind=alarm&rereports=fold&device=dev-1")
        self.assertEqual(shown[0]["rereports"]["count"], 2)

    def test_a_rereport_whose_first_report_is_not_here_is_listed_on_its_own(self):
        self.r.ack(batch("alarm", [rereport(record(7, device="dev-3", kind="alarm", code="arc_fault", event_id="a7"),
                                            99)]))
        self.r.ack(batch("alarm", [record(8, device="dev-4", kind="alarm", code="arc_fault", event_id="a8",
                                          rereport=True)]))  # marked inside the event: not the record's mark
        shown = {e["seq"]: e for e in self.r.get_json("/api/events?kind=alarm&rereports=fold")}
        self.assertIn(7, shown)
        self.assertTrue(shown[7]["rereport"])
        self.assertNotIn("repeats_id", shown[7])
        self.assertNotIn("rereport", shown[8])

    def test_active_conditions_show_each_once_with_the_count(self):
        devices = {d["device"]: d for d in self.r.get_json("/api/devices")}
        self.assertEqual([(a["event_id"], a["event"]["message"], a.get("rereports")) for a in devices["dev-1"]["active"]],
                         [("a1", "latest", 2)])
        self.assertEqual(sorted((a["event_id"], a.get("rereports")) for a in devices["dev-2"]["active"]),
                         [("g1", None), ("g2", 1)])

    def test_a_mistyped_mark_is_rejected_alone(self):
        good = record(9, device="dev-1", kind="alarm", code="arc_fault", event_id="a1")
        bad = [{**good, "rereport": "yes"}, {**rereport(good, 1), "repeats": 1},
               rereport(good, 1, epoch="not-an-epoch"), rereport(good, 1, lane="urgent"), rereport(good, 0),
               {**rereport(good, 1), "repeats": {"epoch": EPOCH, "lane": "alarm"}}]
        for n, rec in enumerate(bad):
            with self.subTest(rec=rec):
                seq = 10 + n
                ack = self.r.ack(batch("alarm", [{**rec, "seq": seq}]))
                self.assertEqual([(x["seq"], x["status"]) for x in ack["rejects"]], [(seq, 422)], ack)

    def test_a_store_of_schema_1_gets_the_columns_at_open(self):
        folder = tempfile.TemporaryDirectory(prefix="firelink-receiver-")
        db_path = os.path.join(folder.name, "receiver.db")
        db = sqlite3.connect(db_path)
        db.executescript("""
CREATE TABLE events(id INTEGER PRIMARY KEY, gateway TEXT NOT NULL, epoch TEXT NOT NULL, lane TEXT NOT NULL,
  seq INTEGER NOT NULL, device TEXT NOT NULL, class TEXT NOT NULL, plugin TEXT NOT NULL, device_seq INTEGER NOT NULL,
  origin TEXT NOT NULL, wall_ms INTEGER NOT NULL, monotonic_ns INTEGER NOT NULL, boot_id TEXT NOT NULL,
  clock_synced INTEGER NOT NULL, site TEXT, kind TEXT NOT NULL, code TEXT NOT NULL, severity TEXT NOT NULL,
  event_id TEXT, ends TEXT, command_id TEXT, ok INTEGER, message TEXT, event TEXT NOT NULL, record BLOB NOT NULL,
  stored_ms INTEGER NOT NULL, UNIQUE(gateway, epoch, lane, seq));
INSERT INTO events(gateway, epoch, lane, seq, device, class, plugin, device_seq, origin, wall_ms, monotonic_ns,
  boot_id, clock_synced, kind, code, severity, event_id, event, record, stored_ms)
  VALUES('gw-1', '%s', 'alarm', 1, 'dev-1', 'c', 'p', 1, 'driver', 1, 1, 'b', 1, 'alarm', 'arc_fault', 'critical',
         'a1', '{}', x'80', 1);
PRAGMA user_version = 1;""" % EPOCH)
        db.close()
        old = Receiver(db=db_path, folder=folder).start()
        try:
            old.ack(batch("alarm", [rereport(record(2, device="dev-1", kind="alarm", code="arc_fault",
                                                    event_id="a1"), 1)]))
            shown = old.get_json("/api/events?rereports=fold")
            self.assertEqual([(e["seq"], e["rereports"]["count"]) for e in shown], [(1, 1)])
            self.assertEqual(old.rows("PRAGMA user_version"), [(2,)])
        finally:
            self.assertEqual(old.stop(), 0)
            folder.cleanup()


class Lifecycle(unittest.TestCase):
    def test_data_survives_kill_9_and_restart(self):
        r = Receiver().start()
        b = batch("alarm", [record(1, kind="alarm", code="arc_fault"), record(2, kind="alarm", code="arc_fault")])
        r.ack(b)
        status, posted = r.post_json("/api/commands", {"gateway": "gw-1", "device": "d", "name": "ping"})
        self.assertEqual(status, 200)
        self.assertEqual(r.stop(signal.SIGKILL), -signal.SIGKILL)

        again = Receiver(folder=r.dir).start()
        try:
            self.assertEqual([e["seq"] for e in again.get_json("/api/events")], [2, 1])
            self.assertEqual(again.ack(b), {"acked_through": {"alarm": 2}, "rejects": []})
            stats = again.get_json("/api/stats")["lanes"]["alarm"]
            self.assertEqual((stats["stored"], stats["duplicates"], stats["batches"]), (2, 2, 2))
            self.assertEqual(again.poll("gw-1", 0, 0)["commands"][0]["id"], posted["id"])
            status, second = again.post_json("/api/commands", {"gateway": "gw-1", "device": "d", "name": "ping"})
            self.assertEqual((status, second["cursor"]), (200, 2))
            self.assertNotEqual(second["id"], posted["id"])
        finally:
            self.assertEqual(again.stop(signal.SIGINT), 0)

    def test_sigterm_stops_promptly_with_a_poll_waiting(self):
        r = Receiver().start()
        outcome = []

        def poll():
            try:
                outcome.append(r.poll("gw-1", 0, 30, conn=r.new_conn()))
            except (http.client.HTTPException, OSError) as e:
                outcome.append(e)

        t = threading.Thread(target=poll)
        t.start()
        wait_for(lambda: r.get_json("/api/stats")["since_start"]["waiting_polls"] == 1, "the poll to wait")
        start = time.monotonic()
        self.assertEqual(r.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - start, DEADLINE)
        t.join(DEADLINE)
        self.assertFalse(t.is_alive())
        self.assertEqual(len(outcome), 1)
        self.assertNotIsInstance(outcome[0], dict, "the poll was not answered as if its wait had passed")

    def expect_refusal(self, args, needle):
        proc = subprocess.run([RECEIVER] + args, capture_output=True, timeout=DEADLINE)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertEqual(proc.stdout, b"", "no 'listening on' line")
        self.assertIn(needle, proc.stderr.decode())

    def test_a_corrupt_or_unwritable_store_is_a_clear_error(self):
        with tempfile.TemporaryDirectory(prefix="firelink-receiver-") as d:
            corrupt = os.path.join(d, "corrupt.db")
            with open(corrupt, "wb") as f:
                f.write(b"this is not an SQLite database, not at all" * 100)
            self.expect_refusal(["--listen", "127.0.0.1:0", "--db", corrupt], "corrupt.db")
            self.expect_refusal(["--listen", "127.0.0.1:0", "--db", os.path.join(d, "missing", "r.db")],
                                "cannot open the store")
            if os.geteuid() != 0:  # root writes anyway
                ro = os.path.join(d, "ro")
                os.mkdir(ro, 0o500)
                self.expect_refusal(["--listen", "127.0.0.1:0", "--db", os.path.join(ro, "r.db")], "r.db")
            self.expect_refusal(["--listen", "nowhere", "--db", os.path.join(d, "r.db")], "--listen")
            empty = os.path.join(d, "empty-token")
            open(empty, "w").close()
            self.expect_refusal(["--listen", "127.0.0.1:0", "--db", os.path.join(d, "r.db"), "--token-file", empty],
                                "grants nothing")
            bad = os.path.join(d, "bad-tokens")
            for text, needle in (("operator * a\nwriter * b\n", "bad-tokens:2: unknown role 'writer'"),
                                 ("gateway gw-1\n", "bad-tokens:1: expected"),
                                 ("read gw-1 t\n", "bad-tokens:1: a read token reads every gateway"),
                                 ("gateway gw-1 sha256:abc\n", "64 hex digits"),
                                 ("gateway gw-1 t\noperator * t\n", "bad-tokens:2: the same token is listed twice")):
                with open(bad, "w") as f:
                    f.write(text)
                self.expect_refusal(["--listen", "127.0.0.1:0", "--db", os.path.join(d, "r.db"), "--token-file", bad],
                                    needle)
            self.expect_refusal(["--listen", "0.0.0.0:0", "--db", os.path.join(d, "r.db"), "--insecure-loopback"],
                                "--insecure-loopback needs a loopback --listen")


if __name__ == "__main__":
    unittest.main()
