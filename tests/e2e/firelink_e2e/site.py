"""firelink-host run as a child process on a generated site file: its admin endpoint, its JSON-lines sink, and the
events in it."""
import json
import os
import resource
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request

from .admin import admin_request, admin_token_file
from .wait import DEADLINE, free_port, wait_for


class Site:
    """firelink-host run on a generated site file in `workdir`, with a jsonl sink (events.jsonl) and the admin
    endpoint on a free port. `plugin_dir` is a folder or a list of folders; `plugins` is more of the [plugins] table
    (isolation = "in_process", ...); `gateway` the gateway id the events carry; `watchdog` the [watchdog] warn_ms and
    fault_ms (None: the host's defaults, which report calls past 100 ms); `sink` False for a site without the jsonl
    sink (its events go only to an [uplink] in `body`)."""

    def __init__(self, host, plugin_dir, body, workdir, plugins="", gateway="gw-modbus", watchdog=(500, 5000),
                 sink=True):
        self.host = host
        self.dir = workdir
        self.config = os.path.join(workdir, "site.toml")
        self.sink = os.path.join(workdir, "events.jsonl")
        self.port = free_port()
        self.plugin_dirs = [plugin_dir] if isinstance(plugin_dir, str) else list(plugin_dir)
        self.plugins = plugins
        self.gateway = gateway
        self.watchdog = watchdog
        self.with_sink = sink
        self.proc = None
        self.log = None
        self.write(body)

    def write(self, body):
        """(Re)writes the site file with `body` after the common tables, atomically: a running host reloading on
        SIGHUP reads the old file or the new one, never half of one."""
        dirs = ", ".join(json.dumps(d) for d in self.plugin_dirs)
        watchdog = f"[watchdog]\nwarn_ms = {self.watchdog[0]}\nfault_ms = {self.watchdog[1]}\n\n" if self.watchdog else ""
        sink = '[sink]\nkind = "jsonl"\npath = "events.jsonl"\n\n' if self.with_sink else ""
        text = (f'[gateway]\nid = "{self.gateway}"\n\n[plugins]\ndirs = [{dirs}]\n{self.plugins}\n'
                f'[admin]\nlisten = "127.0.0.1:{self.port}"\n{admin_token_file(self.dir)}\n'
                f'{sink}{watchdog}' + body)
        with open(self.config + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.config + ".tmp", self.config)

    def start(self, *extra, env=None, open_files=None, prefix=()):
        """`extra`: more arguments to `firelink-host run`. `env`: more environment for the host (NOTIFY_SOCKET, ...),
        on top of this process's. `open_files`: the host's RLIMIT_NOFILE, soft and hard (it may raise only its soft
        limit, to the hard one). `prefix`: the command the host runs under (setpriv ...)."""
        self.log = open(os.path.join(self.dir, "host.log"), "a")  # every run of this site's host, one after the other

        def limit():
            if open_files:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
        self.proc = subprocess.Popen([*prefix, self.host, "run", "--config", self.config, *extra], stdout=self.log,
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
        """The host's log, every run of it so far."""
        if self.log and not self.log.closed:
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

    def get_json(self, path):
        """(status, decoded JSON) of a GET; (0, None) while nothing answers."""
        answer = self.get(path)
        return (answer[0], json.loads(answer[1] or "null")) if answer else (0, None)

    def health(self):
        """/healthz, decoded; None while nothing answers."""
        return self.get_json("/healthz")[1]

    def runner(self, plugin_id):
        """The /healthz entry of plugin `plugin_id`: its runner's pid, state, restarts and failures, or in_process."""
        return next(p for p in self.health()["plugins"] if p["id"] == plugin_id)

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

    def wait_first_reply(self, device):
        """The device's first complete poll: its state is known (a status change can only follow it)."""
        wait_for(lambda: self.devices()[device].get("wire", {}).get("bytes_in", 0) > 0, f"{device}'s first reply")
        return self

    def wait_event(self, what, predicate, timeout=DEADLINE):
        def found():
            return next((r for r in self.events() if predicate(r)), None)
        try:
            return wait_for(found, what, timeout)
        except AssertionError:
            raise AssertionError("timed out waiting for " + what + "\nevents:\n" +
                                 "\n".join(json.dumps(r["event"]) + " " + r["device"] for r in self.events()) +
                                 "\nhost log (tail):\n" + self.output()[-3000:])

    def wait_driver_event(self, what, predicate, device=None, timeout=DEADLINE):
        """The first event (the record's "event") of `device` (any device: None) that `predicate` holds for."""
        return self.wait_event(what, lambda r: (device is None or r["device"] == device) and predicate(r["event"]),
                               timeout)["event"]

    def kill9(self):
        """SIGKILL: the host gets no chance to flush, commit or say goodbye."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=DEADLINE)
        self.log.close()

    def stop(self, sig=signal.SIGTERM, timeout=DEADLINE):
        """Stops the host with `sig` and returns its exit status (None if it never started); an AssertionError with
        its log if it does not stop within `timeout`."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("firelink-host did not stop:\n" + self.output()[-3000:])
            self.log.close()
        return self.proc.returncode if self.proc else None

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.log:
            self.log.close()


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
