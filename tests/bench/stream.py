#!/usr/bin/env python3
"""Large-body benchmark: a 100 MiB GET from a local nginx through hconnd
(the hconn command, and raw mode read by a plain socket) against curl
straight to nginx, plus hconnd's CPU time and peak RSS. Prints ratios
measured in one run; asserts nothing (machines are shared and noisy).

usage: tests/bench/stream.py [BUILD_DIR]   (default: build)
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("HCONN_BUILD_ROOT",
                      os.path.abspath(sys.argv[1] if len(sys.argv) > 1
                                      else os.path.join(ROOT, "build")))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

ROUNDS = 3
MIB = 100


def best_of(fn):
    """Fastest of ROUNDS runs, in seconds."""
    best = float("inf")
    for _ in range(ROUNDS):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_read(sock_path, url):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall((json.dumps({"method": "GET", "url": url, "raw": True})
               + "\n").encode())
    while s.recv(1 << 20):
        pass
    s.close()


def main():
    with harness.Nginx(huge=True) as ng, harness.Hconnd(verbosity=0) as d:
        url = ng.url("/huge.bin")
        idle_rss = d.peak_rss_kib()
        rows = []
        if shutil.which("curl"):
            rows.append(("curl, direct to nginx", best_of(
                lambda: subprocess.run(["curl", "-s", "-o", "/dev/null", url],
                                       check=True))))
        cpu0 = cpu_seconds(d.pid)
        rows.append(("hconn command via hconnd", best_of(
            lambda: subprocess.run([harness.HCONN, "-o", "/dev/null", url],
                                   env=d.env, check=True))))
        cpu = (cpu_seconds(d.pid) - cpu0) / ROUNDS
        rows.append(("raw mode via hconnd, socket reader",
                     best_of(lambda: raw_read(d.socket, url))))
        base = rows[0][1]
        print(f"{MIB} MiB GET, best of {ROUNDS}")
        for name, secs in rows:
            print(f"  {name:38} {MIB / secs:7.0f} MiB/s  "
                  f"{base / secs:5.2f}x of {rows[0][0]}")
        print(f"  hconnd CPU per transfer (hconn runs): {cpu:.2f} s")
        print(f"  hconnd peak RSS: {idle_rss} KiB idle, "
              f"{d.peak_rss_kib()} KiB after all transfers")
        d.stop()


if __name__ == "__main__":
    main()
