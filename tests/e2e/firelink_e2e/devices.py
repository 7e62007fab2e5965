"""The devices the host talks to in the tests: firelink-sim children (Modbus devices, a UITD), a push-only line
device on TCP, and a socat pty pair for a serial bus."""
import json
import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time

from .site import new_workdir
from .wait import DEADLINE, wait_for


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


def tcp_sim(test, sim, model, *args):
    """For `test`: a folder of its own and `firelink-sim <model> --listen 127.0.0.1:0` with `args`, closed when the
    test ends. Returns (folder, sim): the device's wire is { tcp = "127.0.0.1:<sim.port>" }."""
    folder = new_workdir(test)
    device = Sim(sim, model, "--listen", "127.0.0.1:0", *args)
    test.addCleanup(device.close)
    return folder, device


def serial_sim(test, sim, model, *args):
    """For `test`: a folder of its own, a socat pty pair in it, and `firelink-sim <model> --serial <device end>` with
    `args` (--units ...), all closed when the test ends. Returns (folder, pty, sim): the host's bus opens
    pty.host_end."""
    folder = new_workdir(test)
    pty = PtyPair(folder)
    test.addCleanup(pty.close)
    device = Sim(sim, model, "--serial", pty.device_end, *args)
    test.addCleanup(device.close)
    return folder, pty, device
