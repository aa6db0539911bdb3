#!/usr/bin/env python3
"""soak.py — a bounded soak of hconnd: mixed healthy and faulty traffic from
a few client processes, then a check that nothing leaked.

    python3 tests/soak/soak.py [--requests 200000] [--workers 4]

Peers, all on loopback and started here: nginx (healthy GETs, HEADs, POSTs
to /echo, 404s, 1 MiB bodies), a FaultOrigin serving the fast rows of
tests/integration/fault_scenarios.py (each faulty answer must come back as
that row's outcome), and hconnd at its default settings. Each worker
process keeps one protocol connection (replaced every few hundred
requests), pipelines small batches, and now and then misbehaves itself:
it drops a connection in the middle of a 1 MiB body, or sends a line that
is not JSON.

After a warm-up (2% of the requests, at least 500) the daemon's open fds
(minus its pooled upstream connections, from the stats op) and RSS are the
baseline; after the run they are measured again the same way. Passes when
the healthy requests had no error, every faulty one had its row's outcome,
the fd count is back to the baseline (FD_SLACK) and RSS is within
RSS_SLACK_KIB of it. Prints a summary; exit status 0 on a pass, 1 on a fail.
The test suite runs a 5,000-request version (test_soak_smoke.py).
"""

import argparse
import collections
import json
import multiprocessing
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
import fault_scenarios as fs  # noqa: E402

# fds the daemon may hold beyond the baseline at the end: none, beyond a
# pooled-connection count that moved between the stats reply and the fd
# listing.
FD_SLACK = 2
# RSS the daemon may keep beyond the baseline: malloc keeps some freed
# memory (arenas, fragmentation) for reuse instead of handing it back.
RSS_SLACK_KIB = 8 * 1024

BATCH = 8                  # requests pipelined per round trip
SESSION_REQUESTS = 400     # requests before a worker reconnects
CLIENT_FAULT_EVERY = 250   # a client-side fault per this many requests


def usable_faults():
    """The fault rows a soak can replay at any moment on any pooled
    connection: not slow, not needing a primed connection, not leaving
    the origin holding a connection for good, not dripping for seconds.
    (row, weight): rows that stall or sleep come up a tenth as often."""
    rows = []
    for row in fs.FAULTS:
        ops = {step[0] for step in row.script}
        if row.slow or row.prime or "hold" in ops or "drip" in ops:
            continue
        weight = 1 if ops & {"sleep", "keep_open"} else 10
        rows.append((row, weight))
    return rows


def healthy_requests(nginx_url):
    """(weight, maker) for healthy requests; maker(rng) gives (request
    fields, payload, check) where check(head, body, last) is a list of
    problems."""
    small = harness.SMALL_BODY
    big = harness.big_bytes()

    def expect(status, body):
        """body None: any body (nginx's own 404 page)."""
        def check(head, got, last):
            if head is None or "error" in last:
                return [f"error {last!r}"]
            out = []
            if head["status"] != status:
                out.append(f"status {head['status']} != {status}")
            if body is not None and got != body:
                out.append(f"body of {len(got)} bytes differs")
            return out
        return check

    def get(path, body, status=200):
        return lambda rng: ({"method": "GET", "url": nginx_url(path)}, b"",
                            expect(status, body))

    def echo(rng):
        n = rng.choice((0, 1, 100, 4096, 65536))
        payload = rng.randbytes(n)
        return ({"method": "POST", "url": nginx_url("/echo")}, payload,
                expect(200, payload))

    def head(rng):
        return ({"method": "HEAD", "url": nginx_url("/small.txt")}, b"",
                expect(200, b""))

    return [
        (40, get("/small.txt", small)),
        (15, get("/chunked", harness.CHUNKED_BODY)),
        (10, get("/headers", harness.HEADERS_BODY)),
        (20, echo),
        (5, head),
        (5, get("/missing", None, 404)),
        (1, get("/big.bin", big)),
    ]


class Tally:
    """What one worker saw."""

    def __init__(self):
        self.healthy = 0
        self.healthy_errors = 0
        self.faulty = collections.Counter()
        self.fault_mismatches = 0
        self.client_faults = collections.Counter()
        self.samples = []      # the first few problems, for the summary

    def problem(self, what):
        if len(self.samples) < 10:
            self.samples.append(what)

    def merge(self, other):
        self.healthy += other.healthy
        self.healthy_errors += other.healthy_errors
        self.faulty.update(other.faulty)
        self.fault_mismatches += other.fault_mismatches
        self.client_faults.update(other.client_faults)
        for s in other.samples:
            self.problem(s)


def _pick(rng, weighted):
    total = sum(w for w, _ in weighted)
    x = rng.uniform(0, total)
    for w, item in weighted:
        x -= w
        if x <= 0:
            return item
    return weighted[-1][1]


def worker(index, count, socket_path, nginx_port, origin_port, fault_share,
           seed, results):
    """Sends count requests; puts its Tally on results."""
    rng = random.Random(seed * 1000 + index)
    nginx_url = f"http://{harness.LOOPBACK}:{nginx_port}".__add__
    origin_host = f"{harness.LOOPBACK}:{origin_port}"
    healthy = healthy_requests(nginx_url)
    faults = [(w, row) for row, w in usable_faults()]
    tally = Tally()
    w = None
    sent_in_session = 0
    done = 0
    next_id = 0
    try:
        while done < count:
            if w is None or sent_in_session >= SESSION_REQUESTS:
                if w is not None:
                    w.close()
                w = harness.Wire(socket_path, timeout=60)
                sent_in_session = 0
            if done and done % CLIENT_FAULT_EVERY < BATCH:
                client_fault(rng, w, socket_path, nginx_url, tally)
            batch = []
            for _ in range(min(BATCH, count - done)):
                next_id += 1
                if rng.random() < fault_share:
                    row = _pick(rng, faults)
                    req = {"method": row.method,
                           "url": f"http://{origin_host}/f/{row.name}"}
                    req.update(dict(row.fields))
                    payload = row.body
                    check = (lambda row: lambda h, b, l: row.expect.problems(
                        origin_host, h, b, l))(row)
                    kind = row.name
                else:
                    req, payload, check = _pick(rng, healthy)(rng)
                    kind = None
                req["id"] = next_id
                if payload:
                    req["data"] = len(payload)
                w.send(req, payload)
                batch.append((next_id, kind, check, req))
            for rid, kind, check, req in batch:
                head, body, last = w.read_response(rid)
                problems = check(head, body, last)
                if kind is None:
                    tally.healthy += 1
                    if problems:
                        tally.healthy_errors += 1
                        tally.problem(f"healthy {req['method']} {req['url']}: "
                                      f"{problems}")
                else:
                    tally.faulty[kind] += 1
                    if problems:
                        tally.fault_mismatches += 1
                        tally.problem(f"fault {kind}: {problems}")
            done += len(batch)
            sent_in_session += len(batch)
    except Exception as e:  # a broken session: reported, never hidden
        tally.healthy_errors += 1
        tally.problem(f"worker {index} stopped after {done}: {e!r}")
    finally:
        if w is not None:
            w.close()
    results.put((index, done, tally))


def client_fault(rng, w, socket_path, nginx_url, tally):
    """One client-side fault: a client that leaves in the middle of a body,
    or a line of garbage on the worker's own session (answered with a
    bad_message and then ignored)."""
    if rng.random() < 0.5:
        with harness.Wire(socket_path, timeout=60) as gone:
            gone.send({"id": 1, "method": "GET",
                       "url": nginx_url("/big.bin")})
            head = gone.read_message()
            if head is None or head.get("status") != 200:
                tally.healthy_errors += 1
                tally.problem(f"disconnect fault: head {head!r}")
        tally.client_faults["disconnect_mid_body"] += 1
    else:
        w.send_raw(b"this is not json\n")
        msg = w.read_message()
        if msg is None or msg.get("error") != "bad_message":
            tally.healthy_errors += 1
            tally.problem(f"garbage line: reply {msg!r}")
        tally.client_faults["garbage_line"] += 1


def daemon_figures(daemon):
    """(fds not counting pooled upstream connections, VmRSS kiB, stats):
    the stats op's own session is subtracted too."""
    with harness.Wire(daemon.socket) as w:
        w.send({"op": "stats"})
        stats = w.read_message()
        fds = len(os.listdir(f"/proc/{daemon.pid}/fd"))
    return fds - 1 - stats["pool"]["open"], daemon.rss_kib(), stats


def settled_figures(daemon, tries=20):
    """daemon_figures once two samples in a row agree on the fd count
    (sessions that just ended may still be closing)."""
    last = daemon_figures(daemon)
    for _ in range(tries):
        time.sleep(0.2)
        now = daemon_figures(daemon)
        if now[0] == last[0]:
            return now
        last = now
    return last


def run_phase(daemon, nginx, origin, requests, workers, fault_share, seed):
    results = multiprocessing.Queue()
    share = [requests // workers + (1 if i < requests % workers else 0)
             for i in range(workers)]
    procs = [multiprocessing.Process(
        target=worker, args=(i, share[i], daemon.socket, nginx.port,
                             origin.port, fault_share, seed, results))
        for i in range(workers)]
    for p in procs:
        p.start()
    tally = Tally()
    done = 0
    for _ in procs:
        index, n, t = results.get()
        done += n
        tally.merge(t)
    for p in procs:
        p.join()
    return done, tally


def run(requests=200000, workers=4, fault_share=0.1, seed=1, out=sys.stdout):
    """Runs the soak; returns a dict of figures with "passed" and
    "failures" (a list of what failed)."""
    scenarios = {f"/f/{row.name}": list(row.script)
                 for row, _ in usable_faults()}
    warmup = max(500, requests // 50)
    with harness.Nginx() as nginx, harness.FaultOrigin(scenarios) as origin, \
            harness.Hconnd(verbosity=0) as daemon:
        t0 = time.monotonic()
        _, warm = run_phase(daemon, nginx, origin, warmup, workers,
                            fault_share, seed)
        base_fds, base_rss, _ = settled_figures(daemon)
        t1 = time.monotonic()
        done, tally = run_phase(daemon, nginx, origin, requests, workers,
                                fault_share, seed + 1)
        t2 = time.monotonic()
        end_fds, end_rss, stats = settled_figures(daemon)
        peak_rss = daemon.peak_rss_kib()
        log = daemon.log_text()
        alive = daemon.alive()
    tally.merge(warm)   # warm-up problems count too

    failures = []
    if done != requests:
        failures.append(f"{requests - done} requests were never sent")
    if tally.healthy_errors:
        failures.append(f"{tally.healthy_errors} healthy requests failed")
    if tally.fault_mismatches:
        failures.append(f"{tally.fault_mismatches} faulty requests did not "
                        "get their row's outcome")
    if end_fds > base_fds + FD_SLACK:
        failures.append(f"fds {base_fds} -> {end_fds} (slack {FD_SLACK})")
    # ASan keeps freed memory in quarantine: its RSS says nothing of ours.
    if end_rss > base_rss + RSS_SLACK_KIB and \
            not os.environ.get("HCONN_SANITIZED"):
        failures.append(f"RSS {base_rss} -> {end_rss} kiB (slack "
                        f"{RSS_SLACK_KIB} kiB)")
    if not alive:
        failures.append("hconnd exited during the soak")
    figures = {
        "requests": done, "warmup": warmup, "workers": workers,
        "seconds": round(t2 - t1, 1),
        "requests_per_second": round(done / max(t2 - t1, 1e-9)),
        "healthy": tally.healthy, "healthy_errors": tally.healthy_errors,
        "faulty": sum(tally.faulty.values()),
        "fault_mismatches": tally.fault_mismatches,
        "fault_rows": dict(sorted(tally.faulty.items())),
        "client_faults": dict(tally.client_faults),
        "fds_baseline": base_fds, "fds_end": end_fds,
        "rss_baseline_kib": base_rss, "rss_end_kib": end_rss,
        "rss_peak_kib": peak_rss,
        "daemon_stats": {k: stats[k] for k in (
            "requests", "responses", "reuse_hits", "reuse_misses", "retries",
            "errors") if k in stats},
        "daemon_warnings": sum(1 for line in log.splitlines()
                               if ": warning:" in line or ": error:" in line),
        "problems": tally.samples,
        "failures": failures, "passed": not failures,
        "total_seconds": round(time.monotonic() - t0, 1),
    }
    print_summary(figures, out)
    return figures


def print_summary(f, out):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"soak: {f['requests']} requests ({f['warmup']} warm-up before) from "
      f"{f['workers']} workers in {f['seconds']} s "
      f"({f['requests_per_second']} requests/s)")
    p(f"  healthy: {f['healthy']}, errors: {f['healthy_errors']}")
    p(f"  faulty:  {f['faulty']} over {len(f['fault_rows'])} rows, "
      f"outcome mismatches: {f['fault_mismatches']}")
    p(f"  client faults: {f['client_faults']}")
    p(f"  fds (excluding pooled upstreams): {f['fds_baseline']} -> "
      f"{f['fds_end']} (slack {FD_SLACK})")
    p(f"  RSS: {f['rss_baseline_kib']} -> {f['rss_end_kib']} kiB "
      f"(slack {RSS_SLACK_KIB} kiB), peak {f['rss_peak_kib']} kiB")
    p(f"  hconnd stats: {json.dumps(f['daemon_stats'])}")
    p(f"  hconnd log warnings/errors: {f['daemon_warnings']}")
    for s in f["problems"]:
        p(f"  problem: {s}")
    p("soak: PASS" if f["passed"] else
      "soak: FAIL: " + "; ".join(f["failures"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--fault-share", type=float, default=0.1,
                    help="share of requests that go to the fault origin")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    if not os.access(harness.HCONND, os.X_OK):
        sys.exit(f"soak: hconnd not built: {harness.HCONND} "
                 "(set HCONN_BUILD_ROOT)")
    figures = run(a.requests, a.workers, a.fault_share, a.seed)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    sys.exit(0 if figures["passed"] else 1)


if __name__ == "__main__":
    main()
