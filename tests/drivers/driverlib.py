"""Shared parts of the driver scenario tests: a firelink-host child with its site file and sink, firelink-sim children
(Modbus TCP on loopback, or RTU on a socat pty pair), and event helpers. Python 3 standard library only.

Timeouts here are hang guards: a test waits for an event or a count, never for a time to pass, except where it
holds a state for the driver to sample (and then the assertion does not depend on how many samples it took).
"""
import json
import os
import re
import resource
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

DEADLINE = 20.0


def wait_for(predicate, what, timeout=DEADLINE):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The admin token every test site's token file grants (admin_token_file), fresh for each test process. Since the admin
# endpoint is authenticated (docs/deployment.md#admin-tokens), every POST to it carries this token
# (admin_headers); reads from loopback need none.
ADMIN_TOKEN = secrets.token_hex(32)


def admin_token_file(workdir):
    """Writes WORKDIR/admin-tokens (mode 0600, as the host insists) granting ADMIN_TOKEN the admin role, and returns
    the [admin] line naming it, for a site file in WORKDIR."""
    path = os.path.join(workdir, "admin-tokens")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"admin e2e-tests {ADMIN_TOKEN}\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return 'token_file = "admin-tokens"\n'


def admin_headers(headers=None):
    """HTTP headers for an admin call: ADMIN_TOKEN as a bearer token, and `headers`."""
    return {"Authorization": "Bearer " + ADMIN_TOKEN, **(headers or {})}


def admin_request(url, data=None, method=None):
    """A urllib Request to a host's admin endpoint, carrying ADMIN_TOKEN."""
    return urllib.request.Request(url, data=data, method=method, headers=admin_headers())


class Site:
    """firelink-host run on a generated site file, with a jsonl sink and the admin endpoint on a free port.
    `plugins` is more of the [plugins] table (isolation = "in_process", ...)."""

    def __init__(self, host, plugin_dir, body, workdir, plugins=""):
        self.host = host
        self.dir = workdir
        self.config = os.path.join(workdir, "site.toml")
        self.sink = os.path.join(workdir, "events.jsonl")
        self.port = free_port()
        text = (f'[gateway]\nid = "gw-modbus"\n\n[plugins]\ndirs = [{json.dumps(plugin_dir)}]\n{plugins}\n'
                f'[admin]\nlisten = "127.0.0.1:{self.port}"\n{admin_token_file(workdir)}\n[sink]\nkind = "jsonl"\npath = "events.jsonl"\n\n'
                f'[watchdog]\nwarn_ms = 500\nfault_ms = 5000\n\n' + body)
        with open(self.config, "w") as f:
            f.write(text)
        self.proc = None
        self.log = None

    def start(self, env=None, open_files=None):
        """`env`: more environment for the host (NOTIFY_SOCKET, ...), on top of this process's. `open_files`: the
        host's RLIMIT_NOFILE, soft and hard (it may raise only its soft limit, to the hard one)."""
        self.log = open(os.path.join(self.dir, "host.log"), "w")

        def limit():
            if open_files:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
        self.proc = subprocess.Popen([self.host, "run", "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                     preexec_fn=limit if open_files else None)

        def ready():
            h = self.get("/healthz")
            return (h and json.loads(h[1])["status"] != "starting") or self.proc.poll() is not None
        wait_for(ready, "the site to start")
        if self.proc.poll() is not None:
            raise AssertionError("firelink-host exited early:\n" + self.output())
        return self

    def output(self):
        if self.log:
            self.log.flush()
        with open(os.path.join(self.dir, "host.log")) as f:
            return f.read()

    def get(self, path):
        """(status, body); None while nothing answers. An error status is an answer too (/healthz?strict's 503)."""
        try:
            with urllib.request.urlopen(admin_request(f"http://127.0.0.1:{self.port}{path}"), timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError):
            return None

    def post(self, path, body=None, method="POST", timeout=60):
        """(status, decoded JSON) of a request to the admin endpoint, with ADMIN_TOKEN. `body` is JSON-encoded unless
        it is bytes."""
        data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        req = admin_request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read().decode() or "null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def select(self, device, name, args=None):
        return self.post(f"/api/devices/{device}/select", {"name": name, "args": args or {}})

    def command(self, device, name, args=None, cid=None, select=True):
        """An operator's command: select, then operate (docs/deployment.md, "Select before operate"). With
        select=False only the operate is sent, as a test of the refusal needs."""
        if select:
            status, answer = self.select(device, name, args)
            if status != 200:
                return status, answer
        body = {"name": name}
        if args is not None:
            body["args"] = args
        if cid:
            body["id"] = cid
        return self.post(f"/api/devices/{device}/commands", body)

    def devices(self):
        status, body = self.get("/api/devices")
        assert status == 200
        return {d["id"]: d for d in json.loads(body)}

    def events(self, device=None):
        if not os.path.exists(self.sink):
            return []
        with open(self.sink) as f:
            recs = [json.loads(line) for line in f if line.endswith("\n")]
        return [r for r in recs if device is None or r["device"] == device]

    def wait_event(self, what, predicate, timeout=DEADLINE):
        def found():
            return next((r for r in self.events() if predicate(r)), None)
        try:
            return wait_for(found, what, timeout)
        except AssertionError:
            raise AssertionError("timed out waiting for " + what + "\nevents:\n" +
                                 "\n".join(json.dumps(r["event"]) + " " + r["device"] for r in self.events()) +
                                 "\nhost log (tail):\n" + self.output()[-3000:])

    def kill9(self):
        """SIGKILL: the host gets no chance to flush, commit or say goodbye."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("firelink-host did not stop")
        return self.proc.returncode if self.proc else None

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()


class Sim:
    """A firelink-sim child. Actions go to its standard input; its output is collected by a thread."""

    def __init__(self, sim, device, *args):
        self.proc = subprocess.Popen([sim, device, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_for(lambda: self.has("ready") or self.proc.poll() is not None, "the simulator to be ready")
        if self.proc.poll() is not None:
            raise AssertionError("firelink-sim exited:\n" + "\n".join(self.lines))
        self.port = None
        for line in self.lines:
            m = re.match(r"listening [\d.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def has(self, text):
        with self.lock:
            return any(text in line for line in self.lines)

    def do(self, action):
        """Runs an action and waits until the simulator has applied it (its echo line)."""
        with self.lock:
            before = len(self.lines)
        self.proc.stdin.write(action + "\n")
        self.proc.stdin.flush()

        def applied():
            with self.lock:
                new = self.lines[before:]
            for line in new:
                if "error" in line and action.split()[-1] in line:
                    raise AssertionError("simulator refused '" + action + "': " + line)
            return any(action.lstrip("@0123456789 ") in line for line in new)
        wait_for(applied, "the simulator to apply '" + action + "'")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=5)
        self.proc.stdin.close()
        self.proc.stdout.close()


class Receiver:
    """firelink-receiver, the example platform, on a free port; what it stored is read from its SQLite file."""

    def __init__(self, exe, workdir):
        self.port = free_port()
        self.db = os.path.join(workdir, "receiver.db")
        self.log = open(os.path.join(workdir, "receiver.log"), "a")
        # --insecure-loopback: these tests are about the host, not the platform's tokens (tests/receiver and
        # tests/uplink run the receiver with tokens).
        self.proc = subprocess.Popen([exe, "--listen", f"127.0.0.1:{self.port}", "--db", self.db,
                                      "--insecure-loopback"], stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on"):
            raise AssertionError("firelink-receiver did not start: " + line)

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def rows(self, where="1=1", args=()):
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(f"SELECT * FROM events WHERE {where} ORDER BY id", args)]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE)
        self.proc.stdout.close()
        self.log.close()


class Uitd:
    """`firelink-sim uitd` (address 0x0379 unless `args` say otherwise, no heartbeat) with steps on its stdin; its
    JSON events go to NAME.jsonl in `work`, read back whole each time."""

    def __init__(self, sim, work, *args, name="uitd"):
        self.events_path = os.path.join(work, name + ".jsonl")
        self.log_path = os.path.join(work, name + ".log")
        with open(self.events_path, "w") as out, open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([sim, "uitd", "--address", "0x0379", "--heartbeat-s", "0", *args],
                                         stdin=subprocess.PIPE, stdout=out, stderr=log, text=True)

    def events(self, name=None):
        with open(self.events_path) as f:
            lines = [json.loads(l) for l in f if l.endswith("\n")]
        return [l for l in lines if name is None or l["event"] == name]

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def step(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE)
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass


class LineDevice:
    """A push-only device that speaks lines: a TCP server the host's wire (`tcp = ...`) connects to."""

    def __init__(self):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.port = self.server.getsockname()[1]
        self.conn = None

    def accept(self):
        if self.conn:
            self.conn.close()
        self.server.settimeout(DEADLINE)
        self.conn, _ = self.server.accept()

    def follow(self, timeout=5.0):
        """After a driver restart the host may open the device's wire again: take the new connection if one comes
        (or the old one closes) within `timeout`, else keep the old one."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([self.server, self.conn], [], [], max(0.0, end - time.monotonic()))
            if self.server in ready:
                self.accept()
                return True
            if self.conn in ready and not self.conn.recv(4096, socket.MSG_PEEK):
                self.accept()  # closed by the host: its new connection follows
                return True
        return False

    def send(self, line):
        self.conn.sendall(line.encode() + b"\n")

    def close(self):
        if self.conn:
            self.conn.close()
        self.server.close()


class PtyPair:
    """Two linked ptys made by socat: the host's bus opens `host_end`, the simulator `device_end`."""

    def __init__(self, workdir):
        if not shutil.which("socat"):
            raise RuntimeError("socat is not installed (scripts/setup installs it)")
        self.host_end = os.path.join(workdir, "bus-host")
        self.device_end = os.path.join(workdir, "bus-dev")
        self.proc = subprocess.Popen(["socat", f"pty,raw,echo=0,link={self.host_end}",
                                      f"pty,raw,echo=0,link={self.device_end}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: os.path.exists(self.host_end) and os.path.exists(self.device_end), "socat's ptys")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def driver_events(site, device, kind=None, code=None):
    out = []
    for r in site.events(device):
        e = r["event"]
        if kind and e["kind"] != kind:
            continue
        if code and e["code"] != code:
            continue
        out.append(e)
    return out


def value_of(event, name):
    for v in event.get("values", []):
        if v["name"] == name:
            return v["value"]
    return None


def new_workdir(test):
    d = tempfile.TemporaryDirectory(prefix="firelink-modbus-")
    test.addCleanup(d.cleanup)
    return d.name
