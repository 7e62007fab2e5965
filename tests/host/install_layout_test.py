#!/usr/bin/env python3
"""Where firelink-host finds its parts (host/layout): a copy of the host in a scratch tree laid out as installed
(<prefix>/bin, <prefix>/lib/firelink/{firelink-runner, plugins/}), parts taken away and put back. A missing runner or
plugin folder is named, with every path looked at; the installed layout is found with nothing in the site file.

Usage (ctest passes these): install_layout_test.py FIRELINK_HOST FIRELINK_RUNNER PLUGIN_DIR [unittest args]
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from firelink_e2e import take_arguments

HOST, RUNNER, PLUGINS = take_arguments("FIRELINK_HOST", "FIRELINK_RUNNER", "PLUGIN_DIR")

SITE = '''[gateway]
id = "gw-layout"
[admin]
listen = "127.0.0.1:0"
[[device]]
id = "gas-1"
driver = "modbus-gas-valve"
class = "gas_shutoff_valve"
wire = { tcp = "127.0.0.1:1", unit = 1 }
'''


class InstallLayoutTest(unittest.TestCase):
    def setUp(self):
        self.prefix = tempfile.mkdtemp(prefix="firelink-layout-")
        self.addCleanup(shutil.rmtree, self.prefix, True)
        os.makedirs(os.path.join(self.prefix, "bin"))
        self.host = os.path.join(self.prefix, "bin", "firelink-host")
        shutil.copy2(HOST, self.host)
        self.pkglib = os.path.join(self.prefix, "lib", "firelink")
        self.site = os.path.join(self.prefix, "site.toml")
        with open(self.site, "w") as f:
            f.write(SITE)

    def run_host(self, *args):
        r = subprocess.run([self.host, *args], capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    def install_plugins(self):
        os.makedirs(os.path.join(self.pkglib, "plugins"), exist_ok=True)
        shutil.copy2(os.path.join(PLUGINS, "modbus-gas-valve.so"), os.path.join(self.pkglib, "plugins"))

    def test_a_missing_plugin_folder_is_named(self):
        code, out = self.run_host("check-config", self.site)
        self.assertNotEqual(code, 0, out)
        self.assertIn("no [plugins] dirs in the site file, and no plugin folder at "
                      f"{self.pkglib}/plugins and {self.prefix}/plugins", out)

    def test_a_missing_runner_is_named_with_every_path_looked_at(self):
        self.install_plugins()
        looked = (f"firelink-runner not found: looked at {self.prefix}/bin/firelink-runner and "
                  f"{self.pkglib}/firelink-runner")
        code, out = self.run_host("check-config", self.site)
        self.assertNotEqual(code, 0, out)
        self.assertIn(looked, out)
        self.assertNotIn("status 127", out)
        code, out = self.run_host("plugins", os.path.join(self.pkglib, "plugins"))
        self.assertEqual(code, 1, out)
        self.assertIn(looked, out)

    def test_a_wrong_runner_path_is_named(self):
        self.install_plugins()
        with open(self.site, "a") as f:
            f.write('[runner]\npath = "/nonexistent/firelink-runner"\n')
        code, out = self.run_host("check-config", self.site)
        self.assertNotEqual(code, 0, out)
        self.assertIn("firelink-runner not found at /nonexistent/firelink-runner ([runner] path): no such file", out)

    def test_the_installed_layout_is_found_with_nothing_in_the_site_file(self):
        self.install_plugins()
        shutil.copy2(RUNNER, self.pkglib)
        code, out = self.run_host("check-config", self.site)
        self.assertEqual(code, 0, out)
        self.assertIn(f"plugins: the installed folder {self.pkglib}/plugins", out)
        self.assertIn("1 gas_shutoff_valve", out)
        code, out = self.run_host("plugins", os.path.join(self.pkglib, "plugins"))
        self.assertEqual(code, 0, out)
        self.assertIn(f"runner: {self.pkglib}/firelink-runner", out)


if __name__ == "__main__":
    unittest.main()
