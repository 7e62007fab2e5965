#!/usr/bin/env python3
"""Plugins apart from each other and from the host, end to end on real processes: firelink-host with two
plugins out of process (copies a and b of the stream test plugin), run as root and as the service user with
CAP_SETUID, CAP_SETGID and CAP_KILL ambient (setpriv, as systemd's AmbientCapabilities= gives them).

The attacker is what a hostile plugin would be: a process under runner A's uid (forked here, setresuid to it) that
tries to kill runner B and the host, and to read the queue and the sink.

Usage (ctest passes these): uids_e2e_test.py FIRELINK_HOST STREAM_PLUGIN_DIR [unittest args]
"""
import errno
import os
import shutil
import signal
import sys
import tempfile
import unittest

from firelink_e2e import Site, free_port, take_arguments, wait_for

HOST, STREAMS = take_arguments("FIRELINK_HOST", "STREAM_PLUGIN_DIR")

FIRST, LAST = 61000, 61183  # the default [runner] uid_range
SERVICE_UID = 60990  # the service user's uid in these tests: no account, outside the range
CAPS = "+setuid,+setgid,+kill"
A, B = "org.firelink.tests.stream-a", "org.firelink.tests.stream-b"


def device(dev_id, copy):
    return (f'[[device]]\nid = "{dev_id}"\nplugin = "org.firelink.tests.stream-{copy}"\ndriver = "stream"\n'
            f'class = "vendor:org.firelink.tests.stream"\nheartbeat_s = 0\nconfig = {{ rate = 50 }}\n\n')


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}


def ids(pid):
    """(real, effective, saved) uids and gids of a process."""
    s = proc_status(pid)
    return tuple(int(x) for x in s["Uid"].split()[:3]), tuple(int(x) for x in s["Gid"].split()[:3])


def as_uid(uid, action):
    """Runs action() in a child that has become uid (gid the same, no groups, no capability: a runner as it is);
    returns what it returned: 0, or the errno it failed with."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            try:
                action()
                code = 0
            except OSError as e:
                code = e.errno
            os.write(w, str(code).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    os.waitpid(pid, 0)
    return int(out) if out else None


class ServiceSite(Site):
    """A Site whose host runs under `prefix` (setpriv ...), in a folder the host's user owns."""

    def __init__(self, body, runner="", prefix=(), owner=None):
        self.workdir = tempfile.mkdtemp(prefix="firelink-uids-")
        os.chmod(self.workdir, 0o755)  # as /var/lib/firelink may be: the files' own modes must keep runners out
        self.uplink_port = free_port()  # nothing listens: the queue holds what the host takes
        uplink = f'[uplink]\nurl = "http://127.0.0.1:{self.uplink_port}"\nqueue_path = "queue.db"\nbackoff_max_s = 1\n\n'
        super().__init__(HOST, STREAMS, uplink + (runner + "\n" if runner else "") + body, self.workdir)
        self.prefix = list(prefix)
        if owner is not None:
            for path in (self.workdir, self.config, os.path.join(self.workdir, "admin-tokens")):
                os.chown(path, owner, owner)

    def start(self):
        return super().start(prefix=self.prefix)

    def close(self):
        super().close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def service_prefix(caps=True):
    p = ["setpriv", f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}", "--clear-groups"]
    if caps:
        p += [f"--inh-caps={CAPS}", f"--ambient-caps={CAPS}"]
    return p


@unittest.skipUnless(os.geteuid() == 0, "needs root: it starts hosts as other users and becomes runners' uids")
class RunnerUidsTest(unittest.TestCase):
    def setUp(self):
        self.site = None

    def tearDown(self):
        if self.site:
            print(self.site.output()[-4000:], file=sys.stderr)  # ctest shows it when the test fails
            self.site.close()

    def start(self, runner="", prefix=(), owner=None):
        self.site = ServiceSite(device("a1", "a") + device("b1", "b"), runner=runner, prefix=prefix, owner=owner)
        self.site.start()
        return self.site

    def running(self, plugin_id):
        def up():
            r = self.site.runner(plugin_id)
            return r if r["state"] == "running" and r["pid"] > 0 else None
        return wait_for(up, plugin_id + " running")

    def refused(self, n):
        """/healthz once n plugin files (of the three in the folder: copies a, b and c) are refused."""
        return wait_for(lambda: (lambda h: h if h and len(h.get("plugins_refused", [])) == n else None)(
            self.site.health()), f"{n} plugin(s) refused")

    def check_apart(self, host_uid):
        """Plugins apart (a uid each, no privileges, no signal or file across), whoever the host runs as."""
        site = self.site
        ra, rb = self.running(A), self.running(B)
        host_pid = site.proc.pid
        self.assertEqual(ids(host_pid)[0], (host_uid,) * 3)
        (ua, ga), (ub, gb) = ids(ra["pid"]), ids(rb["pid"])
        uid_a, uid_b = ua[0], ub[0]
        # Each runner its own uid, the same real, effective, saved, as its gid; neither root nor the host's.
        self.assertEqual(ua, (uid_a,) * 3)
        self.assertEqual(ga, (uid_a,) * 3)
        self.assertEqual(ub, (uid_b,) * 3)
        self.assertEqual(gb, (uid_b,) * 3)
        self.assertNotEqual(uid_a, uid_b)
        for uid in (uid_a, uid_b):
            self.assertNotIn(uid, (0, host_uid))
            self.assertTrue(FIRST <= uid <= LAST, uid)
        self.assertEqual((ra["uid"], rb["uid"], ra["uid_shared"]), (uid_a, uid_b, False))
        for pid in (ra["pid"], rb["pid"]):
            st = proc_status(pid)
            self.assertEqual(st["Groups"], "")
            for caps in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                self.assertEqual(int(st[caps], 16), 0, caps)
            self.assertEqual(st["NoNewPrivs"], "1")
            # Not dumpable: the kernel gives its /proc files to root.
            self.assertEqual(os.stat(f"/proc/{pid}/environ").st_uid, 0)

        # The attacker, as plugin A: no signal reaches B's runner or the host, nothing of the queue or the sink.
        self.assertEqual(as_uid(uid_a, lambda: os.kill(rb["pid"], signal.SIGKILL)), errno.EPERM)
        self.assertEqual(as_uid(uid_a, lambda: os.kill(host_pid, signal.SIGKILL)), errno.EPERM)
        self.assertEqual(as_uid(uid_a, lambda: os.kill(rb["pid"], 0)), errno.EPERM)
        wait_for(lambda: os.path.exists(os.path.join(site.workdir, "queue.db-wal")) and site.events("b1"),
                 "the queue's log and the sink written")
        for name in ("queue.db", "queue.db-wal", "queue.db-shm", "events.jsonl"):
            path = os.path.join(site.workdir, name)
            if os.path.exists(path):
                self.assertEqual(os.stat(path).st_mode & 0o077, 0, name)
                self.assertEqual(as_uid(uid_a, lambda: os.close(os.open(path, os.O_RDONLY))), errno.EACCES, name)
        self.assertEqual(self.site.runner(B)["pid"], rb["pid"])  # B was never restarted
        self.assertEqual(self.site.runner(B)["failures"], 0)

        # A restarted runner keeps its uid (kill -9 from outside, as a crash would be).
        os.kill(ra["pid"], signal.SIGKILL)
        again = wait_for(lambda: (lambda r: r if r["state"] == "running" and r["pid"] not in (-1, ra["pid"])
                                  else None)(self.site.runner(A)), "A's runner restarted")
        self.assertEqual(again["restarts"], 1)
        self.assertEqual(ids(again["pid"])[0], (uid_a,) * 3)
        self.assertEqual(again["uid"], uid_a)
        return uid_a, uid_b

    def test_HostAsRoot(self):
        """The host as root: each runner under its own uid from the range."""
        self.start()
        first = self.check_apart(0)
        self.assertIn(f"as uid {first[0]}", self.site.output())
        self.assertEqual(self.site.stop(), 0)
        # The same plugins get the same uids at the next start (stable: logs and files stay attributable).
        self.site.close()
        self.start()
        self.assertEqual((self.running(A)["uid"], self.running(B)["uid"]), first)

    def test_HostAsServiceUser(self):
        """The host as the service user with CAP_SETUID, CAP_SETGID and CAP_KILL ambient, as the unit gives them."""
        self.start(prefix=service_prefix(), owner=SERVICE_UID)
        self.check_apart(SERVICE_UID)
        self.assertEqual(self.site.stop(), 0)  # it stops runners of other uids (CAP_KILL)

    def test_ServiceUserWithoutCapabilitiesRefuses(self):
        """Not root and without the capabilities: no runner starts to share the host's uid; the refusal says what to
        configure."""
        self.start(prefix=service_prefix(caps=False), owner=SERVICE_UID)
        h = self.refused(3)
        self.assertEqual(h["plugins"], [])
        for why in h["plugins_refused"]:
            self.assertIn(f"the host (uid {SERVICE_UID}) lacks CAP_SETUID, CAP_SETGID, CAP_KILL", why)
            self.assertIn("AmbientCapabilities=CAP_SETUID CAP_SETGID CAP_KILL", why)
            self.assertIn('[runner] uid_range = "off"', why)
        self.assertNotIn("runs in firelink-runner", self.site.output())

    def test_SharedUidWhenOff(self):
        """uid_range = "off", the host as the service user: every runner is the host's uid, said so in the log and in
        /healthz; and then plugin A does kill B and could kill the host (which is why it is not the default; and what
        shows the checks above can fail)."""
        self.start(runner='[runner]\nuid_range = "off"', prefix=service_prefix(caps=False), owner=SERVICE_UID)
        ra, rb = self.running(A), self.running(B)
        self.assertEqual(ids(ra["pid"])[0], (SERVICE_UID,) * 3)
        self.assertEqual((ra["uid"], ra["uid_shared"], rb["uid_shared"]), (SERVICE_UID, True, True))
        self.assertIn('uid_range = "off": its runner shares uid 60990 with every other plugin\'s runner and with the '
                      'host', self.site.output())
        self.assertEqual(as_uid(SERVICE_UID, lambda: os.kill(self.site.proc.pid, 0)), 0)
        self.assertEqual(as_uid(SERVICE_UID, lambda: os.kill(rb["pid"], signal.SIGKILL)), 0)
        wait_for(lambda: self.site.runner(B)["failures"] == 1, "B's runner killed by A's uid")

    def test_RangeHoldingTheHostsUidRefused(self):
        """A range that holds the host's own uid is refused, saying so."""
        self.start(runner=f'[runner]\nuid_range = "{SERVICE_UID - 5}-{SERVICE_UID + 5}"', prefix=service_prefix(),
                   owner=SERVICE_UID)
        h = self.refused(3)
        self.assertIn(f"holds the host's own uid or gid {SERVICE_UID}", h["plugins_refused"][0])

    def test_RangeTooSmallRefusesTheSecond(self):
        """One id for three plugins: the first has it, the others are refused (never given the first one's uid)."""
        self.start(runner='[runner]\nuid_range = "61500-61500"')
        h = self.refused(2)
        self.assertIn("has no uid left", h["plugins_refused"][0])
        self.assertEqual([p["uid"] for p in h["plugins"]], [61500])


if __name__ == "__main__":
    unittest.main()
