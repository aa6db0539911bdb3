#!/usr/bin/env python3
"""A/B of hconnd builds, per request of 1 KiB GETs through the protocol,
against one nginx origin, every build served side by side in one run.

usage: tests/bench/ab.py [--tls [--ca-per-request]] [--http-version V]
                         [-c CLIENTS] [-n N] [--rounds R]
                         [--mode cpu|syscalls|instructions|misses]
                         HCONND...

  cpu           perf stat -e task-clock -p <hconnd> over N requests, / N;
                R rounds, the builds' order alternating, medians printed
                (noisy on a shared machine: many rounds, never one figure)
  syscalls      strace -c -f -p <hconnd> over N requests: calls per request
  instructions  valgrind --tool=callgrind: user-space instructions per
                request, as the difference of a run of 3N and a run of N
                (both after a warm-up), so that what a run's start costs
                (connections the previous clients dropped, handshakes)
                cancels out; deterministic, the kernel not counted
  misses        as instructions, with callgrind's cache simulation
                (--cache-sim=yes, a 1 MiB last-level cache): data reads
                and writes missing the first level (D1mr, D1mw) and the
                last level (DLmr, DLmw) per request; callgrind_annotate
                --show=DLmr,DLmw,D1mr,D1mw on the dumps names who misses

With --tls each hconnd trusts the origin's CA through SSL_CERT_FILE, as
in bench.py; --ca-per-request names the CA file in every request instead
(three more system calls per request: tlsfiles.c opens it as the client).

Copy each build's hconnd aside first (cp build/daemon/hconnd /tmp/old).
loadgen comes from --build (default build/, configured with -Dbench=true).
Prints figures; asserts nothing.
"""

import argparse
import glob
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import harness  # noqa: E402

bench.harness = harness

# The simulated last-level cache in misses mode: 1 MiB, 16-way, 64-byte
# lines, a share of a server's cache rather than this machine's whole one.
LL_BYTES = 1 << 20
MISS_EVENTS = ("D1mr", "D1mw", "DLmr", "DLmw")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("hconnd", nargs="+", help="hconnd binaries to compare")
    ap.add_argument("--tls", action="store_true", help="HTTPS origin")
    ap.add_argument("--http-version", choices=("auto", "1.1", "2"),
                    help="the requests' http_version (2 with --tls: HTTP/2 "
                    "by ALPN)")
    ap.add_argument("--ca-per-request", action="store_true",
                    help="name the CA file in every request (\"tls\": "
                    "{\"ca_file\"}) instead of trusting it by environment")
    ap.add_argument("-c", "--clients", type=int, default=16)
    ap.add_argument("-n", "--requests", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--mode", default="cpu",
                    choices=("cpu", "syscalls", "instructions", "misses"))
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    return ap.parse_args()


class Daemon:
    """One build on its own socket; under callgrind in instructions and
    misses modes (with the cache simulated in misses mode)."""

    def __init__(self, binary, tmp, index, config, env, callgrind,
                 cache_sim):
        self.binary = binary
        self.name = os.path.basename(binary)
        self.socket = os.path.join(tmp, f"d{index}.sock")
        self.out = os.path.join(tmp, f"callgrind.{index}.out")
        args = [binary, "--socket", self.socket, "--config", config]
        if callgrind:
            args = ["valgrind", "--tool=callgrind",
                    f"--callgrind-out-file={self.out}"]
            if cache_sim:
                args += ["--cache-sim=yes", f"--LL={LL_BYTES},16,64"]
            args += [binary, "--socket", self.socket, "--config", config]
        with open(os.path.join(tmp, f"d{index}.log"), "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL,
                                         stderr=log, env=env,
                                         start_new_session=True)
        if not harness.wait_for_unix(self.socket, 60, self.proc):
            raise RuntimeError(f"{binary} did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)

    def callgrind_totals(self):
        """Events since the last zeroing (dumps, reads the dump): a dict
        from event name (Ir, D1mr, ...) to count."""
        subprocess.run(["callgrind_control", "-d", str(self.proc.pid)],
                       capture_output=True, check=True)
        time.sleep(1)
        dump = max(glob.glob(self.out + "*"), key=os.path.getmtime)
        events = None
        with open(dump) as f:
            for line in f:
                if line.startswith("events:"):
                    events = line.split()[1:]
                elif line.startswith(("summary:", "totals:")) and events:
                    return dict(zip(events, map(int, line.split()[1:])))
        raise RuntimeError(f"no totals in {dump}")


def loadgen(opts, origin, d, n):
    args = [os.path.join(opts.build, "tests", "bench", "loadgen"),
            "--unix", d.socket, "--hconn", origin.url("/small", opts.tls),
            "-c", str(opts.clients), "-n", str(n), "-d", "600", "-w", "0"]
    if opts.tls and opts.ca_per_request:
        args += ["--ca", origin.ca_file]
    if opts.http_version:
        args += ["--http-version", opts.http_version]
    r = subprocess.run(args, capture_output=True, text=True, check=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if res["errors"]:
        raise RuntimeError(f"{d.name}: {res['first_error']}")
    return res["requests"]


def measure_cpu(opts, origin, d):
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "task-clock", "-p",
                             str(d.proc.pid)], stderr=subprocess.PIPE,
                            text=True)
    time.sleep(0.2)
    n = loadgen(opts, origin, d, opts.requests)
    perf.send_signal(signal.SIGINT)
    _, err = perf.communicate()
    ms = float(err.strip().splitlines()[-1].split(",")[0])
    return ms * 1000 / n


def measure_syscalls(opts, origin, d, tmp):
    out = os.path.join(tmp, f"strace.{d.name}")
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p",
                           str(d.proc.pid)], stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    n = loadgen(opts, origin, d, opts.requests)
    st.send_signal(signal.SIGINT)
    st.wait()
    calls = {}
    with open(out) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[3].isdigit() \
                    and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3]) / n
    return calls


def warm_up(opts, origin, d):
    """Requests that open the pool's connections (and TLS sessions)."""
    loadgen(opts, origin, d, max(2000, 4 * opts.clients))


def measure_callgrind(opts, origin, d):
    """Per request events: the difference of a 3N run and an N run. Warmed
    up again first: the origin may have closed connections idle while
    the builds before were measured, and the N run would pay their
    handshakes, the difference coming out short."""
    warm_up(opts, origin, d)
    totals = []
    for n in (opts.requests, 3 * opts.requests):
        subprocess.run(["callgrind_control", "-z", str(d.proc.pid)],
                       capture_output=True, check=True)
        done = loadgen(opts, origin, d, n)
        totals.append((done, d.callgrind_totals()))
    (n1, t1), (n3, t3) = totals
    return {e: (t3[e] - t1.get(e, 0)) / (n3 - n1) for e in t3}


def main():
    opts = parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    callgrind = opts.mode in ("instructions", "misses")
    tmp = tempfile.mkdtemp(prefix="hconn-ab-")
    config = os.path.join(tmp, "hconnd.json")
    with open(config, "w") as f:
        # As bench.py; under callgrind a TLS handshake takes long.
        json.dump({"pool_max_per_origin": 256, "pool_max_total": 4096,
                   "max_clients": 4096,
                   "connect_timeout": 120 if callgrind else 10}, f)
    origin = bench.Origin(os.path.join(tmp, "origin"), 1)
    origin.start()
    env = dict(os.environ, **bench.hconnd_env(origin))
    daemons = []
    try:
        for i, b in enumerate(opts.hconnd):
            daemons.append(Daemon(os.path.abspath(b), tmp, i, config, env,
                                  callgrind, opts.mode == "misses"))
        for d in daemons:  # warm-up: connections, TLS sessions, caches
            warm_up(opts, origin, d)
        if opts.mode == "syscalls":
            for d in daemons:
                calls = measure_syscalls(opts, origin, d, tmp)
                print(f"{d.name}: " + ", ".join(
                    f"{k} {v:.2f}" for k, v in sorted(
                        calls.items(), key=lambda kv: -kv[1]) if v >= 0.01)
                    + " (per request)")
            return
        if opts.mode == "instructions":
            for d in daemons:
                ev = measure_callgrind(opts, origin, d)
                print(f"{d.name}: {ev['Ir']:.0f} "
                      "user-space instructions per request")
            return
        if opts.mode == "misses":
            for d in daemons:
                ev = measure_callgrind(opts, origin, d)
                print(f"{d.name}: " + ", ".join(
                    f"{e} {ev.get(e, 0):.1f}" for e in MISS_EVENTS)
                    + f" per request ({ev['Ir']:.0f} instructions; "
                    f"LL {LL_BYTES >> 20} MiB)")
            return
        figures = {d.name: [] for d in daemons}
        for r in range(opts.rounds):
            for d in daemons if r % 2 == 0 else daemons[::-1]:
                figures[d.name].append(measure_cpu(opts, origin, d))
        for name, v in figures.items():
            s = sorted(v)
            print(f"{name}: median {s[len(s) // 2]:.2f} us CPU per request "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in v)})")
    finally:
        for d in daemons:
            d.stop()
        origin.stop()


if __name__ == "__main__":
    main()
