#!/usr/bin/env python3
"""Conformance certificates, end to end: a certifier's Ed25519 key made with openssl, `firelink-conform --certificate`
on a plugin, `firelink-conform verify` on what it wrote (and on every change to it), and firelink-host run with
[plugins] certificates = "require" loading only plugins with a valid certificate of the level the site asks for.

Usage (ctest passes these): certified_plugins_test.py FIRELINK_HOST FIRELINK_CONFORM PLUGIN_DIR [unittest args]
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from firelink_e2e import Site, take_arguments

HOST, CONFORM, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_CONFORM", "PLUGIN_DIR")


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


class Certificates(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="firelink-certified-")
        d = cls.tmp.name
        cls.key, cls.pub = os.path.join(d, "certifier.key"), os.path.join(d, "certifier.pub")
        cls.other_key, cls.other_pub = os.path.join(d, "other.key"), os.path.join(d, "other.pub")
        for key, pub in ((cls.key, cls.pub), (cls.other_key, cls.other_pub)):
            assert run("openssl", "genpkey", "-algorithm", "ed25519", "-out", key).returncode == 0
            assert run("openssl", "pkey", "-in", key, "-pubout", "-out", pub).returncode == 0
        cls.plugins = os.path.join(d, "plugins")
        os.mkdir(cls.plugins)
        for name in ("hello-c.so", "hello-cpp.so"):
            shutil.copyfile(os.path.join(PLUGINS, name), os.path.join(cls.plugins, name))
        cls.hello = os.path.join(cls.plugins, "hello-c.so")
        cls.cert = cls.hello + ".cert.json"
        made = run(CONFORM, cls.hello, "--level", "basic", "--certificate", cls.cert, "--signing-key", cls.key)
        assert made.returncode == 0, made.stdout + made.stderr
        assert "certificate: " + cls.cert in made.stdout, made.stdout

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def verify(self, cert=None, plugin=None, key=None, *more):
        return run(CONFORM, "verify", cert or self.cert, "--public-key", key or self.pub, "--plugin",
                   plugin or self.hello, *more)

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_verify_accepts_what_conform_wrote_and_refuses_every_change(self):
        ok = self.verify()
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("VALID: hello-c.so (org.firelink.examples.hello-c", ok.stdout)
        self.assertIn("passed level basic", ok.stdout)
        with open(self.cert) as f:
            envelope = json.load(f)
        statement = json.loads(base64.b64decode(envelope["payload"]))
        self.assertEqual(statement["_type"], "https://in-toto.io/Statement/v1")
        self.assertEqual(statement["predicate"]["run"]["level"], "basic")
        self.assertIn("--certificate", statement["predicate"]["command_line"])
        # The level claimed raised inside the signed payload: the signature no longer holds.
        statement["predicate"]["run"]["level"] = "strict"
        forged = dict(envelope, payload=base64.b64encode(json.dumps(statement).encode()).decode())
        bad = self.verify(self.write("forged.json", json.dumps(forged)))
        self.assertEqual(bad.returncode, 1, bad.stdout)
        self.assertIn("does not verify", bad.stdout)
        other_plugin = self.verify(plugin=os.path.join(self.plugins, "hello-cpp.so"))
        self.assertEqual(other_plugin.returncode, 1)
        self.assertIn("the certificate is for another file: hello-c.so", other_plugin.stdout)
        wrong_key = self.verify(key=self.other_pub)
        self.assertEqual(wrong_key.returncode, 1)
        self.assertIn("no signature by a trusted key", wrong_key.stdout)
        higher = self.verify(None, None, None, "--level", "standard")
        self.assertEqual(higher.returncode, 1)
        self.assertIn("below the standard asked for", higher.stdout)
        usage = run(CONFORM, "verify", self.cert, "--public-key", self.pub)
        self.assertEqual(usage.returncode, 2, usage.stdout + usage.stderr)

    def test_conform_refuses_bad_certificate_options_before_the_run(self):
        for args, said in (
                (["--certificate", "x.json"], "--certificate and --signing-key go together"),
                (["--certificate", "x.json", "--signing-key", self.pub], "not an unencrypted Ed25519 private key"),
                (["--certificate", "x.json", "--signing-key", self.key, "--only", "library"], "covers a whole level"),
                (["--json", "/nonexistent/dir/report.json"], "--json /nonexistent/dir/report.json: cannot be written")):
            p = run(CONFORM, self.hello, "--level", "basic", *args)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertIn(said, p.stderr)
            self.assertNotIn("[1/", p.stdout)  # refused before any check ran

    def site(self, level):
        body = (f'[[device]]\nid = "hello-c-1"\ndriver = "hello"\nplugin = "org.firelink.examples.hello-c"\n'
                f'class = "vendor:org.firelink.examples.hello"\nconfig = {{ period_ms = 50 }}\n')
        plugins = (f'certificates = "require"\ncertifier_keys = [{json.dumps(self.pub)}]\n'
                   f'certificate_level = "{level}"\n')
        folder = tempfile.mkdtemp(dir=self.tmp.name)
        s = Site(HOST, self.plugins, body, folder, plugins=plugins)
        self.addCleanup(s.close)
        return s

    def test_the_host_loads_only_plugins_certified_at_the_level_the_site_asks(self):
        s = self.site("basic").start()
        s.wait_driver_event("hello-c-1's first event", lambda e: True, "hello-c-1")
        health = s.health()
        refused = " ".join(health.get("plugins_refused", []))
        self.assertIn("hello-cpp.so", refused)
        self.assertIn("certificate_refused: no conformance certificate", refused)
        self.assertIn("certified at level basic", s.output())
        self.assertEqual(s.stop(), 0, s.output())
        # The same certificate does not do for a site that asks for standard.
        s = self.site("standard").start()
        health = s.health()
        self.assertIn("below the standard asked for", " ".join(health.get("plugins_refused", [])))
        self.assertEqual(s.devices()["hello-c-1"]["state"], "down")

    def test_a_changed_plugin_file_is_refused_with_its_certificate(self):
        changed = os.path.join(self.plugins, "changed")
        os.makedirs(changed, exist_ok=True)
        target = os.path.join(changed, "hello-c.so")
        shutil.copyfile(self.hello, target)
        shutil.copyfile(self.cert, target + ".cert.json")
        with open(target, "r+b") as f:  # one byte, where the dynamic linker does not look
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
            f.seek(-1, os.SEEK_END)
            f.write(bytes([last[0] ^ 1]))
        bad = self.verify(target + ".cert.json", target)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("another file", bad.stdout)
        body = (f'[[device]]\nid = "hello-c-1"\ndriver = "hello"\nplugin = "org.firelink.examples.hello-c"\n'
                f'class = "vendor:org.firelink.examples.hello"\n')
        plugins = f'certificates = "require"\ncertifier_keys = [{json.dumps(self.pub)}]\ncertificate_level = "basic"\n'
        s = Site(HOST, changed, body, tempfile.mkdtemp(dir=self.tmp.name), plugins=plugins)
        self.addCleanup(s.close)
        s.start()
        self.assertIn("the certificate is for another file", " ".join(s.health().get("plugins_refused", [])))


if __name__ == "__main__":
    unittest.main()
