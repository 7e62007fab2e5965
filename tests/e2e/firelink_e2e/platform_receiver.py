"""firelink-receiver, the example platform, as the host's tests run it: on a free loopback port, without tokens."""
import os
import sqlite3
import subprocess

from .wait import DEADLINE, free_port


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
