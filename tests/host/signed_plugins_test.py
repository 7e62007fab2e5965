#!/usr/bin/env python3
"""Signed plugins, end to end: firelink-sign makes the keys and signatures a vendor would ship, and firelink-host
run / check-config / plugins, with [plugins] signatures = "require", load only what a trusted key signed.

The plugin folder holds hello-c.so signed by the trusted key, hello-cpp.so unsigned, and two copies of hello-cpp.so:
one signed by a key the site does not trust, one signed by the trusted key and then changed by one byte.

Usage (ctest passes these): signed_plugins_test.py FIRELINK_HOST FIRELINK_SIGN PLUGIN_DIR [unittest args]
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from firelink_e2e import free_port, take_arguments, wait_for

HOST, SIGN, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_SIGN", "PLUGIN_DIR")


def run(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def key_id(pub):
    with open(pub) as f:
        return f.readline().split()[-1]


class SignedPlugins(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="firelink-signed-")
        d = self.tmp.name
        self.dir = os.path.join(d, "plugins")
        os.mkdir(self.dir, 0o755)
        self.keys = os.path.join(d, "keys")
        os.mkdir(self.keys, 0o755)
        self.pub, self.sec = os.path.join(self.keys, "vendor.pub"), os.path.join(self.keys, "vendor.key")
        self.other_pub, self.other_sec = os.path.join(self.keys, "other.pub"), os.path.join(self.keys, "other.key")
        run(SIGN, "keygen", "-p", self.pub, "-s", self.sec)
        run(SIGN, "keygen", "-p", self.other_pub, "-s", self.other_sec)
        self.good = self.copy("hello-c.so", "hello-c.so")
        self.unsigned = self.copy("hello-cpp.so", "hello-cpp.so")
        self.untrusted = self.copy("hello-cpp.so", "other-vendor.so")
        self.tampered = self.copy("hello-cpp.so", "tampered.so")
        self.second = self.copy("fire_panel.so", "zz-panel.so")  # a second signed plugin, loaded after the refusals
        run(SIGN, "sign", "-s", self.sec, "-t", "hello-c 1.0 for the test", self.good)
        run(SIGN, "sign", "-s", self.sec, self.second)
        run(SIGN, "sign", "-s", self.other_sec, self.untrusted)
        run(SIGN, "sign", "-s", self.sec, self.tampered)
        with open(self.tampered, "r+b") as f:  # one byte, where the dynamic linker does not look
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
            f.seek(-1, os.SEEK_END)
            f.write(bytes([last[0] ^ 1]))
        self.port = free_port()
        self.config = os.path.join(d, "site.toml")
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.tmp.cleanup()

    def copy(self, name, as_name):
        dst = os.path.join(self.dir, as_name)
        shutil.copyfile(os.path.join(PLUGINS, name), dst)
        os.chmod(dst, 0o644)
        return dst

    def write_site(self, policy, isolation="process", keys=None):
        keys = [self.pub] if keys is None else keys
        with open(self.config, "w") as f:
            f.write(f'''[gateway]
id = "gw-signed"

[plugins]
dirs = [{json.dumps(self.dir)}]
isolation = "{isolation}"
signatures = "{policy}"
trusted_keys = [{", ".join(json.dumps(k) for k in keys)}]

[admin]
listen = "127.0.0.1:{self.port}"

[sink]
kind = "jsonl"
path = "events.jsonl"

[[device]]
id = "hello-c-1"
driver = "hello"
plugin = "org.firelink.examples.hello-c"
class = "vendor:org.firelink.examples.hello"
config = {{ period_ms = 50 }}
''')

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            return json.loads(e.read())
        except (urllib.error.URLError, ConnectionError, OSError):
            return None

    def start(self):
        self.log = os.path.join(self.tmp.name, "host.log")
        self.proc = subprocess.Popen([HOST, "run", "--config", self.config], stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: (self.get("/healthz") or {}).get("status", "starting") != "starting"
                 or self.proc.poll() is not None, "the host to start")
        self.assertIsNone(self.proc.poll(), self.output())

    def output(self):
        with open(self.log) as f:
            return f.read()

    def events(self):
        path = os.path.join(self.tmp.name, "events.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def check_refusals(self, text):
        """The three bad files are refused, each with the file and why (and the key ID where there is one)."""
        self.assertIn(f"{self.unsigned} refused: signature_refused: no .minisig beside it", text)
        self.assertIn(f"{self.untrusted} refused: signature_refused: signed by key ID {key_id(self.other_pub)} "
                      "which is not trusted", text)
        self.assertIn(f"{self.tampered} refused: signature_refused: signature does not match the file "
                      f"(key ID {key_id(self.pub)})", text)

    def run_required(self, isolation):
        self.write_site("require", isolation)
        self.start()
        self.check_refusals(self.output())
        health = self.get("/healthz")
        refused = "\n".join(health["plugins_refused"])
        self.assertEqual(len(health["plugins_refused"]), 3, health)
        self.assertIn(f"{self.untrusted}: signature_refused: signed by key ID {key_id(self.other_pub)}", refused)
        plugin, second = health["plugins"]
        self.assertEqual(plugin["id"], "org.firelink.examples.hello-c")
        self.assertTrue(second["signature"]["verified"], second)
        self.assertNotEqual(second["id"], plugin["id"])
        self.assertEqual(plugin["isolation"], isolation)
        self.assertEqual(plugin["signature"], {"verified": True, "key_id": key_id(self.pub),
                                               "trusted_comment": "hello-c 1.0 for the test"})
        # The signed plugin's device runs: its events reach the sink.
        wait_for(lambda: any(e.get("device") == "hello-c-1" for e in self.events()), "hello-c-1's events")
        self.assertEqual(health["status"], "ok", health)

    def test_RequireInRunner(self):
        self.run_required("process")

    def test_RequireInProcess(self):
        self.run_required("in_process")

    def test_RunnerRestartLoadsTheCheckedFile(self):
        """The runner loads the descriptor the host checked: a file renamed into the plugin's place later, unsigned
        and another plugin altogether, is not what a restarted runner loads."""
        self.write_site("require", "process")
        self.start()
        pid = wait_for(lambda: max(self.get("/healthz")["plugins"][0].get("pid") or 0, 0), "the runner's pid")
        swap = os.path.join(self.dir, ".swap")
        shutil.copyfile(os.path.join(PLUGINS, "hello-cpp.so"), swap)
        os.chmod(swap, 0o644)
        os.replace(swap, self.good)
        os.kill(pid, signal.SIGKILL)

        def restarted():
            p = self.get("/healthz")["plugins"][0]
            return p.get("restarts", 0) >= 1 and p.get("state") == "running" and p.get("pid") != pid and p
        try:
            plugin = wait_for(restarted, "the runner to be restarted")
            count = len(self.events())
            # The restarted driver runs: ticks of hello-c-1 after the restart (host-made faults do not count).
            wait_for(lambda: any(e.get("device") == "hello-c-1" and e["event"].get("code") == "tick"
                                 for e in self.events()[count:]), "hello-c-1's ticks after the restart")
        except AssertionError as e:
            raise AssertionError(f"{e}: {self.get('/healthz')}\n{self.output()}")
        time.sleep(0.5)
        plugin = self.get("/healthz")["plugins"][0]
        self.assertEqual(plugin["id"], "org.firelink.examples.hello-c")
        # One failure, the kill: a runner that had loaded the swapped file would have been killed for it too.
        self.assertEqual((plugin["failures"], plugin["state"]), (1, "running"), plugin)
        self.assertIn("SIGKILL", plugin["last_failure"])

    def test_WarnLoadsWithAWarning(self):
        self.write_site("warn", "in_process")
        out = run(HOST, "check-config", self.config).stderr
        self.assertIn(f"plugin {self.unsigned}: no .minisig beside it; loaded all the same", out)
        self.assertIn(f"plugin {self.untrusted}: signed by key ID {key_id(self.other_pub)} which is not trusted; "
                      "loaded all the same", out)
        self.assertNotIn("signature_refused", out)

    def test_CheckConfigReportsTheSame(self):
        self.write_site("require", "in_process")
        p = run(HOST, "check-config", self.config)  # the device's plugin is signed: the site is valid
        self.check_refusals(p.stderr)
        self.assertIn("2 plugin(s)", p.stdout)

    def test_BadKeyFileIsNamedAtItsLine(self):
        missing = os.path.join(self.keys, "missing.pub")
        bad = os.path.join(self.keys, "bad.pub")
        with open(bad, "w") as f:
            f.write("untrusted comment: x\nRWQnotbase64!!\n")
        self.write_site("require", "in_process", keys=[self.pub, missing, bad])
        p = run(HOST, "check-config", self.config, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"site.toml:8:", p.stderr)
        self.assertIn(f"plugins.trusted_keys[1]: {missing}: no such file", p.stderr)
        self.assertIn(f"plugins.trusted_keys[2]: {bad}: the key line is not base64 of 42 bytes", p.stderr)
        self.write_site("require", "in_process", keys=[])
        p = run(HOST, "check-config", self.config, check=False)
        self.assertIn("plugins.trusted_keys: signatures = \"require\" refuses every plugin", p.stderr)

    def test_PluginsShowsTheSigner(self):
        out = run(HOST, "plugins", "--trusted-key", self.pub, self.good, self.untrusted, check=False).stdout
        self.assertIn(f"signed by key ID {key_id(self.pub)} | trusted comment: hello-c 1.0 for the test", out)
        self.assertIn(f"signature: NOT VERIFIED: signed by key ID {key_id(self.other_pub)} which is not trusted", out)
        out = run(HOST, "plugins", self.unsigned).stdout
        self.assertIn("signature: none (no .minisig beside it)", out)

    def test_SignToolVerifies(self):
        self.assertIn(f"signed by key ID {key_id(self.pub)}", run(SIGN, "verify", "-p", self.pub, self.good).stdout)
        p = run(SIGN, "verify", "-p", self.pub, self.tampered, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("NOT VERIFIED: signature does not match the file", p.stdout)
        if shutil.which("minisign"):  # interop, when minisign happens to be installed
            run("minisign", "-V", "-p", self.pub, "-m", self.good)


if __name__ == "__main__":
    unittest.main()
