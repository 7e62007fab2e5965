#!/usr/bin/env python3
"""boundary_bench: the burst at the host's boundary (docs/performance.md, "The boundary").

N lines of 200 bytes sent over one TCP connection into one device (the lines test plugin: one telemetry event per
line) whose driver runs out of process (the default), through the durable uplink to firelink-receiver (the reference
platform, on loopback). Prints: records/s end to end (first byte sent to the last record stored at the platform),
peak RSS (VmHWM) of the host and of the runner and their sum, how often the host paused the device's wire, and the
lines lost (must be 0; the exit status is 1 otherwise). Speed is never checked.

Usage: boundary_bench.py FIRELINK_HOST FIRELINK_RECEIVER LINES_PLUGIN_DIR E2E_DIR [--lines N] [--dir DIR]
Full run (manual): tests/bench/boundary_bench.py build/bin/firelink-host build/bin/firelink-receiver \\
    build/tests/isolation/plugins-lines tests/e2e --lines 1000000 --dir /var/tmp
"""
import argparse
import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("host")
p.add_argument("receiver")
p.add_argument("plugins")
p.add_argument("e2e", help="tests/e2e, the folder of the firelink_e2e package")
p.add_argument("--lines", type=int, default=1_000_000)
p.add_argument("--dir", default=None)
args = p.parse_args()
sys.path.insert(0, args.e2e)
from firelink_e2e import Receiver, free_port, peak_rss_kb, wait_for  # noqa: E402


def get(port, path):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read().decode())


def main():
    work = tempfile.mkdtemp(prefix="firelink-boundary-", dir=args.dir)
    os.chmod(work, 0o755)
    dev = socket.socket()
    dev.bind(("127.0.0.1", 0))
    dev.listen(1)
    rx = Receiver(args.receiver, work).start()
    admin = free_port()
    site = os.path.join(work, "site.toml")
    with open(site, "w") as f:
        f.write(f'[gateway]\nid = "gw-bench"\n\n[plugins]\ndirs = [{json.dumps(args.plugins)}]\n\n'
                f'[admin]\nlisten = "127.0.0.1:{admin}"\n\n'
                f'[uplink]\nurl = "{rx.url()}"\nqueue_path = "queue.db"\n\n'
                f'[[device]]\nid = "burst"\nplugin = "org.firelink.tests.lines"\ndriver = "lines"\n'
                f'class = "vendor:org.firelink.tests.lines"\nheartbeat_s = 0\n'
                f'wire = {{ tcp = "127.0.0.1:{dev.getsockname()[1]}" }}\nconfig = {{ }}\n')
    log = open(os.path.join(work, "host.log"), "w")
    host = subprocess.Popen([args.host, "run", "--config", site], stdout=log, stderr=subprocess.STDOUT)
    try:
        dev.settimeout(30)
        conn, _ = dev.accept()
        health = wait_for(lambda: get(admin, "/healthz"), "the host's health")
        runner = next(p for p in health["plugins"] if p["id"] == "org.firelink.tests.lines")["pid"]
        line = "x" * 191
        chunk = "".join(f"{i:07d} {line[:191]}\n" for i in range(1000)).encode()  # 200 B a line
        assert len(chunk) == 200 * 1000, len(chunk)
        t0 = time.monotonic()
        sent = 0
        while sent < args.lines:
            n = min(1000, args.lines - sent)
            conn.sendall(chunk[: n * 200])
            sent += n
        t_sent = time.monotonic()

        def stored():
            with sqlite3.connect(f"file:{rx.db}?mode=ro", uri=True, timeout=10) as db:
                return db.execute("SELECT count(*) FROM events WHERE device='burst'").fetchone()[0]
        wait_for(lambda: stored() >= args.lines, f"{args.lines} records at the platform", timeout=3600)
        t_done = time.monotonic()
        got = stored()
        dev_status = next(d for d in get(admin, "/api/devices") if d["id"] == "burst")
        host_kb, runner_kb = peak_rss_kb(host.pid), peak_rss_kb(runner)
        rate = args.lines / (t_done - t0)
        print(f"# boundary_bench machine={platform.machine()} cpus={os.cpu_count()} kernel={platform.release()} "
              f"date={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        print(f"lines={args.lines} line_bytes=200 sent_s={t_sent - t0:.2f} end_to_end_s={t_done - t0:.2f} "
              f"records_per_s={rate:.0f}")
        print(f"peak_rss_host_mb={host_kb / 1024:.1f} peak_rss_runner_mb={runner_kb / 1024:.1f} "
              f"peak_rss_sum_mb={(host_kb + runner_kb) / 1024:.1f}")
        print(f"wire_pauses={dev_status['wire'].get('pauses')} stored={got} lost={args.lines - min(got, args.lines)} "
              f"duplicates={max(0, got - args.lines)}")
        return 0 if got == args.lines else 1
    finally:
        host.terminate()
        host.wait(timeout=30)
        log.close()
        rx.close()


if __name__ == "__main__":
    sys.exit(main())
