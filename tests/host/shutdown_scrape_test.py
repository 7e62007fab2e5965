"""SIGTERM while the admin endpoint is being scraped: firelink-host stops its admin endpoint before the components
its views read (the uplink, the queue, the runtime), so a /metrics, /healthz or /api/uplink request in flight during
shutdown never reads freed memory. The host runs under valgrind's memcheck, which turns a read of freed memory into
exit status 99; the test wants 0.

Usage (ctest passes these): shutdown_scrape_test.py FIRELINK_HOST PLUGIN_DIR [unittest args]
"""
import os
import shutil
import signal
import threading
import unittest
import urllib.error
import urllib.request

from firelink_e2e import Site, admin_request, free_port, new_workdir, take_arguments, wait_for

HOST, PLUGINS = take_arguments("FIRELINK_HOST", "PLUGIN_DIR")

PATHS = ["/metrics", "/healthz", "/api/uplink", "/api/devices", "/api/control"]


class ShutdownUnderScrapeTest(unittest.TestCase):
    def setUp(self):
        self.valgrind = shutil.which("valgrind")
        self.assertIsNotNone(self.valgrind, "valgrind is missing (scripts/setup installs it)")
        self.dir = new_workdir(self)
        # The platform is a port nobody listens on: the uplink keeps retrying, so its state changes under the scrapes.
        with open(os.path.join(self.dir, "gateway-token"), "w") as f:
            f.write("scrape-test-gateway-token\n")
        body = (f'[uplink]\nurl = "http://127.0.0.1:{free_port()}"\nqueue_path = "queue.db"\n'
                f'token_file = "gateway-token"\nbackoff_max_s = 1\n')
        self.site = Site(HOST, PLUGINS, body, self.dir)

    def tearDown(self):
        self.site.close()

    def test_sigterm_during_scrapes_exits_cleanly(self):
        self.site.start(prefix=(self.valgrind, "-q", "--error-exitcode=99", "--leak-check=no"))
        stop = threading.Event()
        answered = [0] * len(PATHS)

        def scrape(i):
            url = f"http://127.0.0.1:{self.site.port}{PATHS[i]}"
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(admin_request(url), timeout=30) as r:
                        r.read()
                        answered[i] += 1
                except urllib.error.HTTPError as e:
                    e.read()
                    answered[i] += 1
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass  # the endpoint has closed: shutdown is under way

        threads = [threading.Thread(target=scrape, args=(i,), daemon=True) for i in range(len(PATHS))]
        for t in threads:
            t.start()
        wait_for(lambda: min(answered) >= 3, "every view to answer while scraped", timeout=120)
        self.site.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.site.proc.wait(timeout=120)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        self.assertEqual(rc, 0, "firelink-host did not stop cleanly under memcheck:\n" + self.site.output()[-6000:])


if __name__ == "__main__":
    unittest.main()
