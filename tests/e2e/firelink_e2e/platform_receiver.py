"""firelink-receiver, the example platform, as the host's tests run it: on a loopback port, with a token file or
without tokens (--insecure-loopback), what it stored read back from its SQLite file."""
import os
import select
import sqlite3
import subprocess

from .wait import DEADLINE, free_port


class Receiver:
    """firelink-receiver on 127.0.0.1:`port` (a free one unless given, kept across a stop and a start), its database
    and log in `workdir`. `tokens`: the text of its token file; None runs it with --insecure-loopback (the tests that
    are about the host, not the platform's tokens: tests/receiver and tests/uplink give tokens). `test_faults`: the
    /test/faults route."""

    def __init__(self, exe, workdir, port=None, tokens=None, test_faults=False):
        self.port = port or free_port()
        self.db = os.path.join(workdir, "receiver.db")
        self.args = [exe, "--listen", f"127.0.0.1:{self.port}", "--db", self.db]
        if tokens is None:
            self.args.append("--insecure-loopback")
        else:
            path = os.path.join(workdir, "receiver-tokens")
            with open(path, "w") as f:
                f.write(tokens)
            self.args += ["--token-file", path]
        if test_faults:
            self.args.append("--test-faults")
        self.log_path = os.path.join(workdir, "receiver.log")
        self.proc = None

    def start(self):
        """Starts it and returns once it listens."""
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], DEADLINE)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("listening on"):
            self.stop()
            raise AssertionError(f"firelink-receiver did not start ({line!r}):\n" + self.output())
        return self

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def rows(self, where="1=1", args=()):
        """Rows of its events table, as dicts, in the order it stored them."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(f"SELECT * FROM events WHERE {where} ORDER BY id", args)]

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=DEADLINE)
        if self.proc:
            self.proc.stdout.close()
            self.log.close()
        self.proc = None

    close = stop
