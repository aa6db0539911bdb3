#!/usr/bin/env python3
"""Memory per idle pooled connection: makes hconnd open N connections to a
local nginx at once (N requests dispatched together), lets them go idle,
and divides the daemon's RSS growth by N, for plain HTTP and for TLS.
Prints figures; asserts nothing.

usage: tests/bench/idle-memory.py [N] [BUILD_DIR]   (default: 500, build)
"""

import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
os.environ.setdefault("HCONN_BUILD_ROOT",
                      os.path.abspath(sys.argv[2] if len(sys.argv) > 2
                                      else os.path.join(ROOT, "build")))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402


def open_idle(d, request):
    """Sends N requests at once on one client connection and reads the N
    responses; the pool then holds up to N idle connections."""
    w = harness.Wire(d.socket, timeout=60)
    for i in range(1, N + 1):
        w.send(dict(request, id=i))
    for i in range(1, N + 1):
        head, body, last = w.read_response(i)
        assert last.get("end"), last
    w.send({"op": "stats"})
    stats = w.read_message()
    w.close()
    return stats["pool"]["idle"]


def main():
    with tempfile.NamedTemporaryFile("w", suffix=".json") as cfg:
        json.dump({"pool_max_per_origin": N, "pool_max_total": 2 * N}, cfg)
        cfg.flush()
        with harness.Nginx(tls=True) as ng:
            for name, request in [
                    ("plain", {"method": "GET",
                               "url": ng.url("/small.txt")}),
                    ("TLS", {"method": "GET", "host": "127.0.0.1",
                             "port": ng.tls_port, "target": "/small.txt",
                             "tls": {"ca_file": ng.ca_file}})]:
                with harness.Hconnd("--config", cfg.name,
                                    verbosity=0) as d:
                    before = d.rss_kib()
                    idle = open_idle(d, request)
                    # Idle means settled: hconnd hands a burst's freed
                    # heap back a second after it (daemon/memory.c).
                    time.sleep(2)
                    after = d.rss_kib()
                    print(f"{name:5}: {idle} idle connections, RSS "
                          f"{before} -> {after} KiB, "
                          f"{(after - before) / max(idle, 1):.1f} KiB each")
                    d.stop()


if __name__ == "__main__":
    main()
