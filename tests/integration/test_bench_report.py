#!/usr/bin/env python3
"""The benchmark's report, without running a benchmark: tests/bench/bench.py
--from-json turns saved figures into RESULTS.md (tables, issue 19's targets
met or missed by how much, charts when matplotlib is there, a hand-written
analysis kept), and h2load's output is read into the figures a row needs.
The figures here are made up so that each target falls on a known side."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.join(os.path.dirname(HERE), "bench")
BENCH = os.path.join(BENCH_DIR, "bench.py")
sys.path.insert(0, BENCH_DIR)
import bench  # noqa: E402

# h2load 1.52's summary, as it printed it for a 0.5 s run.
H2LOAD_OUT = """\
finished in 731.39ms, 1024.00 req/s, 1.13MB/s
requests: 512 total, 512 started, 512 done, 510 succeeded, 2 failed, \
1 errored, 0 timeout
status codes: 510 2xx, 0 3xx, 1 4xx, 0 5xx
"""


def row(peer, clients, rps, p50, cpu=None):
    """One workload 1/2 row as bench.py saves it."""
    return dict(peer=peer, clients=clients, rps=rps, p50_us=p50,
                p90_us=p50 * 1.5, p99_us=p50 * 2, peer_cpu_us=cpu,
                origin_cpu_us=10.0, errors=0, first_error="", requests=1000)


def figures():
    """Saved figures: each target met or missed by a round margin."""
    w1 = [row("hconnd", 1, 20000, 40.0, 30.0),
          row("direct", 1, 40000, 20.0),
          row("nginx-pool", 1, 25000, 35.0, 20.0),
          row("hconnd", 16, 80000, 200.0, 9.5),     # CPU met
          row("direct", 16, 100000, 160.0),         # 0.80x direct: met
          row("nginx-pool", 16, 50000, 320.0, 15.0),  # 1.60x: met
          row("hconnd", 256, 60000, 4000.0, 12.0),  # CPU missed by 2 µs
          row("direct", 256, 100000, 2500.0),       # 0.60x: missed
          row("nginx-pool", 256, 50000, 5000.0, 15.0)]  # 1.20x: missed
    w2 = [row("hconnd", 256, 60000, 4000.0, 10.0),
          row("hconnd-h2", 256, 70000, 3600.0, 10.5),  # 1.05x CPU: met
          row("direct", 256, 90000, 2800.0),
          row("h2load", 256, 120000, 2000.0),
          row("nginx-pool", 256, 40000, 6000.0, 20.0),  # 1.50x: met
          row("floor", 256, 44000, 5500.0, 12.0),      # 1.10x the pool
          row("hconnd", 16, 30000, 500.0, 20.0),
          row("hconnd-h2", 16, 28000, 560.0, 30.0),    # 1.50x CPU: missed
          row("direct", 16, 60000, 260.0)]
    w4 = [dict(tool="curl direct", mib=1024, mib_s=4000.0, seconds=0.256,
               client_cpu=0.3, daemon_cpu=None),
          dict(tool="hconn via hconnd", mib=1024, mib_s=3840.0,
               seconds=0.267, client_cpu=0.2, daemon_cpu=0.1)]  # 0.96x
    info = dict(date="2026-12-02 00:00 UTC", cpu="test CPU", cores=2,
                memory="1 MiB", kernel="k", os="os", load="0.00",
                commit="abc1234", versions={"nginx": "nginx/1"})
    settings = dict(duration=10.0, warmup=1.0, threads=1, quick=False,
                    hconnd_config={}, profile_seconds=10.0,
                    cpu_window="measured", origin_h2=True)
    return {"format": 1, "info": info, "settings": settings,
            "results": {"1": w1, "2": w2, "4": w4}}


class BenchReportTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bench-report-")
        self.json = os.path.join(self.dir, "figures.json")
        self.out = os.path.join(self.dir, "report", "RESULTS.md")
        with open(self.json, "w") as f:
            json.dump(figures(), f)
        os.makedirs(os.path.dirname(self.out))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def redraw(self, *args):
        """bench.py --from-json; returns (report text, stdout)."""
        r = subprocess.run([sys.executable, BENCH, "--from-json", self.json,
                            "--output", self.out, *args],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(self.out) as f:
            return f.read(), r.stdout

    def test_targets_met_and_missed(self):
        report, stdout = self.redraw("--no-charts")
        want = [
            "| 1, 1 client: hconnd p50 − direct p50 ≤ 15 µs | 20.0 µs | "
            "**missed** by 5.00 µs (33%) |",
            "| 1, 16 clients: hconnd CPU per request ≤ 10 µs | 9.5 µs | "
            "met |",
            "| 1, 16 clients: hconnd / nginx local pool req/s ≥ 1.5 | 1.60x "
            "| met |",
            "| 1, 16 clients: hconnd / direct req/s ≥ 0.7 | 0.80x | met |",
            "| 1, 256 clients: hconnd CPU per request ≤ 10 µs | 12.0 µs | "
            "**missed** by 2.00 µs (20%) |",
            "| 1, 256 clients: hconnd / nginx local pool req/s ≥ 1.5 | 1.20x "
            "| **missed** by 0.30 (20%) |",
            "| 1, 256 clients: hconnd / direct req/s ≥ 0.7 | 0.60x | "
            "**missed** by 0.10 (14%) |",
            "| 2, 16 clients: hconnd CPU per request, HTTP/2 / HTTP/1.1 ≤ 1.1"
            " | 1.50x (30.0 / 20.0 µs) | **missed** by 0.40 (36%) |",
            "| 2, 256 clients: hconnd over HTTP/1.1 / nginx local pool req/s "
            "≥ 1.2 | 1.50x (relay floor: 1.10x) | met |",
            "| 2, 256 clients: hconnd over HTTP/2 (its default here) / nginx "
            "local pool req/s ≥ 1.2 | 1.75x | met |",
            "| 2, 256 clients: hconnd CPU per request, HTTP/2 / HTTP/1.1 ≤ "
            "1.1 | 1.05x (10.5 / 10.0 µs) | met |",
            "| 4: hconn / curl direct MiB/s ≥ 0.95 | 0.96x | met |",
        ]
        for line in want:
            self.assertIn(line, report)
        # Only issue 19's targets: none of the first round's bounds.
        self.assertNotIn("≥ 0.6", report)
        self.assertNotIn("same bounds as 1", report)
        # The same verdicts on stdout, without the bold.
        self.assertIn("missed by 2.00 µs (20%)", stdout)
        # Both HTTP/2 rows are in workload 2's table.
        self.assertIn("| 256 | hconnd over HTTP/2 to the origin | 70000 |",
                      report)
        self.assertIn("| 256 | h2load direct over HTTP/2 (origin's capacity)"
                      " | 120000 |", report)
        # So is the relay floor over TLS.
        self.assertIn("| 256 | relay floor (relayfloor.c: the same two hops, "
                      "nothing else) | 44000 |", report)

    def test_charts_and_analysis(self):
        with open(self.out, "w") as f:
            f.write("old generated part\n\n## Analysis\n\nKept by hand.\n")
        report, _ = self.redraw()
        self.assertNotIn("old generated part", report)
        self.assertTrue(report.endswith("## Analysis\n\nKept by hand.\n"))
        # The figures file beside the report is the run's, not rewritten.
        self.assertFalse(os.path.exists(os.path.join(
            os.path.dirname(self.out), "results.json")))
        charts = sorted(n for n in os.listdir(os.path.dirname(self.out))
                        if n.endswith(".svg"))
        if not charts:
            # No matplotlib on this machine (CI): no links either.
            self.assertNotIn("![", report)
            return
        self.assertEqual(charts, ["chart-1-latency.svg", "chart-1-rps.svg",
                                  "chart-2-latency.svg", "chart-2-rps.svg",
                                  "chart-4-mibs.svg"])
        for name in charts:
            self.assertIn(f"]({name})", report)
            with open(os.path.join(os.path.dirname(self.out), name)) as f:
                svg = f.read()
            self.assertIn("<svg", svg)
            # No date: the same figures draw the same file.
            self.assertNotIn("<dc:date>", svg)

    def test_h2load_output(self):
        log = os.path.join(self.dir, "h2load.log")
        with open(log, "w") as f:
            for i in range(100):
                f.write(f"1796175319429382\t200\t{(i + 1) * 10}\n")
        res = bench.h2load_result(H2LOAD_OUT, log, 0.5)
        self.assertEqual(res["rps"], 1024.0)
        self.assertEqual(res["requests"], 510)
        # "failed" holds the non-2xx answer and the errored request.
        self.assertEqual(res["errors"], 2)
        self.assertEqual(res["p50_us"], 510.0)
        self.assertEqual(res["p99_us"], 1000.0)
        with self.assertRaises(RuntimeError):
            bench.h2load_result("h2load: connection refused\n", log, 0.5)


if __name__ == "__main__":
    unittest.main()
