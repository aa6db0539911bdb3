#!/usr/bin/env python3
"""How much work of its own a relay shaped like hconnd can do per request
and still reach a given fraction of direct keep-alive on this machine.

usage: tests/bench/floorbudget.py [--build DIR] [-c CLIENTS] [--rounds R]
                                  [--duration S] [--work-us US,US,...]

Workload 1 of bench.py (1 KiB plain GETs, keep-alive) against direct
keep-alive to nginx and against tests/bench/relayfloor run as models: the
bare floor, the floor plus hconnd's one extra system call per request
(RELAYFLOOR_PEEK=1), and that plus US microseconds of spinning per request
(RELAYFLOOR_WORK_NS) for each US given. Rounds alternate the peers; the
medians of each peer's req/s over direct's in the same round are printed,
with the model's CPU per request. Asserts nothing: it answers "what does
0.7x direct allow hconnd to spend?" for the run's machine.
"""

import argparse
import contextlib
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import bench  # noqa: E402
import harness  # noqa: E402

bench.harness = harness


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("-c", "--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--work-us", default="5,10,15",
                    help="comma-separated µs of work per request to model")
    opts = ap.parse_args()
    opts.loadgen = os.path.join(opts.build, "tests", "bench", "loadgen")
    opts.warmup = 1.0
    opts.threads = 1
    opts.work = [float(x) for x in opts.work_us.split(",") if x]
    return opts


def start_model(stack, tmp, origin, binary, name, peek, work_us):
    """A relayfloor with the model's knobs in its environment."""
    env = {"RELAYFLOOR_PEEK": "1" if peek else "0",
           "RELAYFLOOR_WORK_NS": str(int(work_us * 1000))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return stack.enter_context(bench.RelayFloor(
            os.path.join(tmp, name), origin, binary))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main():
    opts = parse_args()
    binary = os.path.join(opts.build, "tests", "bench", "relayfloor")
    for f in (opts.loadgen, binary):
        if not os.access(f, os.X_OK):
            sys.exit(f"floorbudget: {f} is missing (meson setup "
                     f"{opts.build} -Dbench=true; meson compile)")
    bench.raise_nofile()
    tmp = tempfile.mkdtemp(prefix="hconn-floorbudget-")
    models = [("floor", False, 0.0), ("floor + peek", True, 0.0)]
    models += [(f"floor + peek + {w:g} µs", True, w) for w in opts.work]
    ratios = {m[0]: [] for m in models}
    cpus = {m[0]: [] for m in models}
    with contextlib.ExitStack() as stack:
        origin = stack.enter_context(bench.Origin(
            os.path.join(tmp, "origin"), 1))
        floors = {name: start_model(stack, tmp, origin, binary,
                                    f"m{i}", peek, work)
                  for i, (name, peek, work) in enumerate(models)}
        for r in range(opts.rounds):
            ctx = {"tmp": tmp}
            direct = bench.measure_one(opts, "direct", False, opts.clients,
                                       origin, ctx, "direct")
            order = models if r % 2 == 0 else models[::-1]
            for name, _, _ in order:
                ctx["floor"] = floors[name]
                res = bench.measure_one(opts, "floor", False, opts.clients,
                                        origin, ctx, name)
                ratios[name].append(res["rps"] / direct["rps"])
                cpus[name].append(res["peer_cpu_us"])
            print(f"round {r + 1}: direct {direct['rps']:.0f} req/s; " +
                  "; ".join(f"{n} {ratios[n][-1]:.2f}x" for n, _, _ in
                            models), flush=True)
    print(f"\n{opts.clients} clients, {opts.rounds} rounds of "
          f"{opts.duration:g} s, medians:")
    print("| model | x direct | CPU µs/req |")
    print("| --- | ---: | ---: |")
    for name, _, _ in models:
        print(f"| {name} | {statistics.median(ratios[name]):.2f} | "
              f"{statistics.median(cpus[name]):.1f} |")


if __name__ == "__main__":
    main()
