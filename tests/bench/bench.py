#!/usr/bin/env python3
"""bench.py — hconn against the tools users would otherwise pick, side by
side in one run on one machine, printed as a table of ratios.

Workloads (numbers as in the issue):
  1  small GET (1 KiB) over plain HTTP, keep-alive, 1/16/256 closed-loop
     clients (loadgen): hconnd's protocol, direct keep-alive to nginx (the
     limit), nginx as a local pooling proxy on a Unix socket, squid and
     tinyproxy as forward proxies, and relayfloor.c: the system calls of
     a relay shaped like hconnd and nothing else (the floor any such relay
     stands on). Requests/s, p50, p99, CPU per request.
  2  the same with an HTTPS origin (forward proxies: a CONNECT tunnel each),
     plus hconnd over HTTP/2 to the origin ("http_version": "2", when the
     daemon has it; the HTTP/1.1 row then sends "1.1") and h2load straight
     to the origin over HTTP/2, the origin's own HTTP/2 capacity.
  3  short-lived processes: N sequential processes from a shell loop, each
     fetching the 1 KiB object over HTTPS: hconn vs curl vs python3
     http.client vs the same python3 program on hconn.client (through
     hconnd).
  4  large body: a 1 GiB download to /dev/null, hconn vs curl direct:
     MiB/s, hconnd CPU seconds, client CPU seconds; hconnd as it runs
     (bodies spliced) and copying (HCONND_SPLICE=0), rounds alternating.
  5  memory: hconnd RSS idle, with 10,000 idle clients, and per idle pooled
     plain, TLS and HTTP/2 connection (1,000 each).

Every peer is started here, on 127.0.0.1 or a Unix socket, with its config
in one temp dir, and stopped at the end (on failure too). Nothing here
asserts anything: figures are printed, and a full run writes them, with
the machine and hconnd's profile, to tests/bench/RESULTS.md, its charts
(SVG, python3-matplotlib) beside it, and the raw figures to
tests/bench/results.json, from which --from-json redraws both without
running anything.

usage: tests/bench/bench.py [--quick] [--workloads 1,2,...] [--build DIR]
       tests/bench/bench.py --from-json tests/bench/results.json
       (see --help). Without --build it builds build-bench/ with
       -Dbench=true. tests/bench/install-deps.sh installs the peers.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import signal
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(HERE, "RESULTS.md")
# RESULTS.md from this heading on is written by hand and kept by reruns.
NOTES_HEADING = "## Analysis"

SMALL_SIZE = 1024
NOFILE = 40000  # fds for us and every peer we start (10,000 idle clients)

harness = None  # tests/integration/harness.py, imported once paths are set

# ---- Settings -----------------------------------------------------------------

FULL = dict(duration=10.0, warmup=1.0, processes=500, large_mib=1024,
            large_rounds=3, idle_clients=10000, pooled=1000,
            profile_seconds=10.0)
QUICK = dict(duration=1.0, warmup=0.3, processes=30, large_mib=128,
             large_rounds=1, idle_clients=1000, pooled=100,
             profile_seconds=2.0)

# Peers of workloads 1 and 2, in the order their rows and bars appear.
PEERS = ["hconnd", "hconnd-h2", "hconnd-cafile", "direct", "h2load",
         "nginx-pool", "squid", "tinyproxy", "floor"]
# Peers of workload 2 only: HTTP/2 needs TLS here (no h2c origin), and a
# CA file named per request is a TLS setting.
TLS_PEERS = {"hconnd-h2", "hconnd-cafile", "h2load"}
# Rows served by the one hconnd of the run (ctx["hconnd"]).
HCONND_PEERS = {"hconnd", "hconnd-h2", "hconnd-cafile"}
PEER_TITLES = {
    "hconnd": "hconnd (protocol, Unix socket)",
    "hconnd-h2": "hconnd over HTTP/2 to the origin",
    "hconnd-cafile": "hconnd, the CA file named in each request",
    "direct": "direct keep-alive to nginx",
    "h2load": "h2load direct over HTTP/2 (origin's capacity)",
    "nginx-pool": "nginx local pool (Unix socket)",
    "squid": "squid forward proxy",
    "tinyproxy": "tinyproxy forward proxy",
    "floor": "relay floor (relayfloor.c: the same two hops, nothing else)",
}
# Short names for the charts' legends.
PEER_SHORT = {
    "hconnd": "hconnd", "hconnd-h2": "hconnd (HTTP/2)",
    "hconnd-cafile": "hconnd (CA file per request)", "direct": "direct",
    "h2load": "h2load (HTTP/2, direct)", "nginx-pool": "nginx pool",
    "squid": "squid", "tinyproxy": "tinyproxy", "floor": "relay floor",
}


def log(msg):
    print(msg, flush=True)


# ---- Peers ----------------------------------------------------------------------

ORIGIN_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 30000;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    server_tokens off;
    ssl_session_cache shared:bench:10m;
    ssl_session_timeout 1h;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/www;
{slow}    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl http2 backlog=4096;
        root {dir}/www;
        ssl_certificate {dir}/tls/server.crt;
        ssl_certificate_key {dir}/tls/server.key;
{slow}    }}
}}
"""

# /slow answers after a second, so that N requests sent at once are all in
# flight together and the daemon must open N connections (workload 5).
ORIGIN_SLOW = """\
        location = /slow {
            default_type text/plain;
            echo_sleep 1;
            echo slow;
        }
"""

POOL_CONF = """\
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 30000;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    server_tokens off;
    upstream origin {{
        server 127.0.0.1:{port};
        keepalive 512;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }}
    upstream origin_tls {{
        server 127.0.0.1:{tls_port};
        keepalive 512;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {{
        listen unix:{dir}/pool.sock backlog=4096;
        location / {{
            proxy_pass http://origin;
        }}
    }}
    server {{
        listen unix:{dir}/pool-tls.sock backlog=4096;
        location / {{
            proxy_pass https://origin_tls;
            proxy_ssl_session_reuse on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {ca_file};
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
        }}
    }}
}}
"""

# A pure pooling forward proxy: no cache, no logs but cache.log, nothing
# but loopback, and no DNS to the outside (URLs name 127.0.0.1, which
# squid takes as is; dns_nameservers keeps any lookup on this machine).
SQUID_CONF = """\
http_port 127.0.0.1:{port}
visible_hostname localhost
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log none
cache_store_log none
logfile_rotate 0
coredump_dir {dir}
cache deny all
cache_mem 8 MB
dns_nameservers 127.0.0.1
pinger_enable off
shutdown_lifetime 0 seconds
max_filedescriptors {nofile}
via off
forwarded_for delete
icp_port 0
htcp_port 0
acl bench_client src 127.0.0.1/32
acl bench_ports port {plain_port} {tls_port}
http_access deny !bench_ports
http_access allow bench_client
http_access deny all
server_persistent_connections on
client_persistent_connections on
"""

TINYPROXY_CONF = """\
Port {port}
Listen 127.0.0.1
Timeout 600
LogFile "{dir}/tinyproxy.log"
LogLevel Warning
PidFile "{dir}/tinyproxy.pid"
MaxClients 1024
Allow 127.0.0.1
DisableViaHeader Yes
ConnectPort {tls_port}
"""


class Launched:
    """A peer process of ours, in its own session so that stopping it
    (SIGTERM to its group, then SIGKILL) reaches its children too."""

    name = "peer"

    def __init__(self, directory):
        self.dir = directory
        self.proc = None

    def launch(self, args, cwd=None):
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "stderr.log"), "wb") as out:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                cwd=cwd or self.dir, start_new_session=True)

    def logs(self, *names):
        out = []
        for n in ("stderr.log",) + names:
            with contextlib.suppress(OSError):
                with open(os.path.join(self.dir, n), errors="replace") as f:
                    out.append(f.read())
        return harness.tail("\n".join(out), 30)

    def stop(self):
        harness.kill_group(self.proc, signal.SIGTERM)
        self.proc = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start_on_free_ports(self, nports, launch):
        """Picks nports free ports, calls launch(ports) and waits for them;
        retries when another process took a port meanwhile."""
        for _ in range(5):
            ports = set()
            while len(ports) < nports:
                ports.add(harness.free_port())
            ports = sorted(ports)
            launch(ports)
            if all(harness.wait_for_tcp(harness.LOOPBACK, p, 20.0, self.proc)
                   for p in ports):
                return ports
            harness.kill_group(self.proc)
            self.proc = None
        raise RuntimeError(f"{self.name} did not start:\n{self.logs()}")

    def cpu_seconds(self):
        return cpu_seconds(self.proc.pid)


class Origin(Launched):
    """nginx origin: plain on .port, TLS on .tls_port (certificate for
    127.0.0.1 and localhost, CA in .ca_file), serving /small (1 KiB) and
    /large (large_mib MiB, a sparse file) from www/."""

    name = "nginx origin"

    def __init__(self, directory, large_mib):
        super().__init__(directory)
        self.large_mib = large_mib

    def start(self):
        www = os.path.join(self.dir, "www")
        os.makedirs(www)
        os.makedirs(os.path.join(self.dir, "tmp"))
        with open(os.path.join(www, "small"), "wb") as f:
            f.write(bytes(i % 251 for i in range(SMALL_SIZE)))
        with open(os.path.join(www, "large"), "wb") as f:
            f.truncate(self.large_mib << 20)
        harness.make_certificates(os.path.join(self.dir, "tls"))
        self.ca_file = os.path.join(self.dir, "tls", "ca.crt")
        conf = os.path.join(self.dir, "nginx.conf")

        def launch(ports):
            self.port, self.tls_port = ports
            echo = os.path.exists(harness.NGINX_ECHO_MODULE)
            self.slow_path = "/slow" if echo else "/small"
            with open(conf, "w") as f:
                if echo:
                    f.write(f"load_module {harness.NGINX_ECHO_MODULE};\n")
                f.write(ORIGIN_CONF.format(dir=self.dir, port=self.port,
                                           tls_port=self.tls_port,
                                           nofile=NOFILE,
                                           slow=ORIGIN_SLOW if echo else ""))
            self.launch([harness.NGINX, "-p", self.dir, "-c", conf,
                         "-e", os.path.join(self.dir, "error.log")])
        self.start_on_free_ports(2, launch)

    def url(self, path, tls=False):
        if tls:
            return f"https://127.0.0.1:{self.tls_port}{path}"
        return f"http://127.0.0.1:{self.port}{path}"


class NginxPool(Launched):
    """nginx as a local pooling reverse proxy: HTTP/1.1 on the Unix sockets
    .socket (to the plain origin) and .tls_socket (to the TLS origin), with
    upstream keep-alive and TLS session reuse."""

    name = "nginx local pool"

    def __init__(self, directory, origin):
        super().__init__(directory)
        self.origin = origin

    def start(self):
        os.makedirs(os.path.join(self.dir, "tmp"))
        conf = os.path.join(self.dir, "nginx.conf")
        self.socket = os.path.join(self.dir, "pool.sock")
        self.tls_socket = os.path.join(self.dir, "pool-tls.sock")
        with open(conf, "w") as f:
            f.write(POOL_CONF.format(dir=self.dir, port=self.origin.port,
                                     tls_port=self.origin.tls_port,
                                     ca_file=self.origin.ca_file,
                                     nofile=NOFILE))
        self.launch([harness.NGINX, "-p", self.dir, "-c", conf,
                     "-e", os.path.join(self.dir, "error.log")])
        for s in (self.socket, self.tls_socket):
            if not harness.wait_for_unix(s, 20.0, self.proc):
                raise RuntimeError(f"nginx pool did not start:\n"
                                   f"{self.logs('error.log')}")


class RelayFloor(Launched):
    """tests/bench/relayfloor: the system calls of a relay shaped like
    hconnd (Unix socket in, keep-alive TCP out) and nothing else, on
    .socket, to the origin's /small: the plain origin, or with tls the
    HTTPS one (then with the TLS record layer's work too)."""

    name = "relay floor"

    def __init__(self, directory, origin, binary, tls=False):
        super().__init__(directory)
        self.origin = origin
        self.binary = binary
        self.tls = tls

    def start(self):
        self.socket = os.path.join(self.dir, "floor.sock")
        port = self.origin.tls_port if self.tls else self.origin.port
        self.launch([self.binary, self.socket, "127.0.0.1", str(port),
                     "/small"] + (["tls"] if self.tls else []))
        deadline = time.monotonic() + 20
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"relayfloor did not start:\n"
                                   f"{self.logs()}")
            time.sleep(0.05)


class Squid(Launched):
    """squid as a forward proxy on 127.0.0.1:.port (no cache; CONNECT only
    to the origin's TLS port)."""

    name = "squid"

    def __init__(self, directory, origin):
        super().__init__(directory)
        self.origin = origin

    def start(self):
        squid = shutil.which("squid") or "/usr/sbin/squid"
        if not os.access(squid, os.X_OK):
            raise RuntimeError("squid not installed "
                               "(tests/bench/install-deps.sh installs it)")
        os.makedirs(self.dir)
        if os.geteuid() == 0:
            # squid started as root drops to its own user ("proxy"), which
            # must still write its log and pid here.
            os.chmod(self.dir, 0o777)
            os.chmod(os.path.dirname(self.dir), 0o755)
        conf = os.path.join(self.dir, "squid.conf")

        def launch(ports):
            self.port, = ports
            with open(conf, "w") as f:
                f.write(SQUID_CONF.format(
                    dir=self.dir, port=self.port, nofile=NOFILE,
                    plain_port=self.origin.port,
                    tls_port=self.origin.tls_port))
            self.launch([squid, "-N", "-f", conf])
        self.start_on_free_ports(1, launch)

    def logs(self, *names):
        return super().logs("cache.log", *names)


class Tinyproxy(Launched):
    """tinyproxy as a forward proxy on 127.0.0.1:.port (CONNECT only to
    the origin's TLS port; warnings only in its log)."""

    name = "tinyproxy"

    def __init__(self, directory, origin):
        super().__init__(directory)
        self.origin = origin

    def start(self):
        if not os.access(harness.TINYPROXY, os.X_OK):
            raise RuntimeError("tinyproxy not installed "
                               "(tests/bench/install-deps.sh installs it)")
        os.makedirs(self.dir)
        conf = os.path.join(self.dir, "tinyproxy.conf")

        def launch(ports):
            self.port, = ports
            with open(conf, "w") as f:
                f.write(TINYPROXY_CONF.format(dir=self.dir, port=self.port,
                                              tls_port=self.origin.tls_port))
            self.launch([harness.TINYPROXY, "-d", "-c", conf])
        self.start_on_free_ports(1, launch)

    def logs(self, *names):
        return super().logs("tinyproxy.log", *names)


def hconnd_env(origin):
    """hconnd's environment in workloads 1 and 2: the origin's CA as the
    system trust store (OpenSSL's SSL_CERT_FILE), the counterpart of the
    nginx pool's proxy_ssl_trusted_certificate."""
    return {"SSL_CERT_FILE": origin.ca_file}


def start_hconnd(directory, config, env=None):
    """The real hconnd (harness.Hconnd, log level 0) with config (a dict)
    written to directory, env added to its environment; the caller enters
    it."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"hconnd-{len(os.listdir(directory))}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return harness.Hconnd("--config", path, verbosity=0, timeout=20.0,
                          env=env)


# ---- Measuring helpers ------------------------------------------------------------

def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise KeyError("VmRSS")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_loadgen(opts, args, label):
    """Runs loadgen with args; returns its result line as a dict."""
    cmd = [opts.loadgen, "-d", str(opts.duration), "-w", str(opts.warmup),
           "-t", str(opts.threads), "--label", label] + args
    r = subprocess.run(cmd, capture_output=True, text=True,
                       timeout=opts.duration + opts.warmup + 120)
    lines = r.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"loadgen printed nothing (exit {r.returncode}): "
                           f"{' '.join(cmd)}\n{r.stderr}")
    return json.loads(lines[-1])


# ---- Workloads 1 and 2: small GETs, keep-alive ------------------------------------

def loadgen_args(peer, tls, origin, ctx):
    """loadgen arguments that make peer serve GET /small."""
    small = origin.url("/small", tls)
    if peer == "direct":
        port = origin.tls_port if tls else origin.port
        args = ["--tcp", f"127.0.0.1:{port}", "--target", "/small"]
        return args + (["--tls", "--ca", origin.ca_file] if tls else [])
    if peer in HCONND_PEERS:
        args = ["--unix", ctx["hconnd"].socket, "--hconn", small]
        # Over TLS the daemon's "auto" would pick HTTP/2 where it has it:
        # each row names its version when the daemon knows the field.
        version = "2" if peer == "hconnd-h2" else "1.1"
        if tls and ctx.get("http_version_field"):
            args += ["--http-version", version]
        # hconnd trusts the origin's CA by its environment (hconnd_env), as
        # the nginx pool does by its configuration; one row names the file
        # in every request instead, which hconnd opens as the client each
        # time (tlsfiles.c).
        return args + (["--ca", origin.ca_file] if peer == "hconnd-cafile"
                       else [])
    if peer == "floor":
        return ["--unix", ctx[floor_key(tls)].socket, "--hconn", small]
    if peer == "nginx-pool":
        pool = ctx["nginx-pool"]
        return ["--unix", pool.tls_socket if tls else pool.socket,
                "--target", "/small", "--host", "localhost"]
    proxy = ctx[peer]
    if tls:
        return ["--tcp", f"127.0.0.1:{proxy.port}", "--tunnel",
                f"127.0.0.1:{origin.tls_port}", "--tls", "--ca",
                origin.ca_file, "--target", "/small"]
    return ["--tcp", f"127.0.0.1:{proxy.port}", "--target", small,
            "--host", f"127.0.0.1:{origin.port}"]


def floor_key(tls):
    """ctx's key for the relay floor of the plain or the HTTPS origin."""
    return "floor-tls" if tls else "floor"


def serving_pids(peer, tls, ctx):
    """The processes whose CPU a request through peer costs, origin aside."""
    if peer in ("direct", "h2load"):
        return []
    if peer in HCONND_PEERS:
        return [ctx["hconnd"].pid]
    if peer == "floor":
        return [ctx[floor_key(tls)].proc.pid]
    return [ctx[peer].proc.pid]


def probe_http2(d, origin):
    """What hconnd d says to "http_version" on an HTTPS GET: (knows the
    field, serves "2", why not). A daemon before HTTP/2 refuses the field
    as unknown; one with HTTP/2 answers "2" with "version": 20."""
    url = origin.url("/small", tls=True)
    w = harness.Wire(d.socket, timeout=30)
    try:
        w.send({"id": 1, "method": "GET", "url": url, "http_version": "1.1",
                "tls": {"ca_file": origin.ca_file}})
        _, _, last = w.read_response(1)
        if "error" in last:
            return False, False, (f"hconnd refused \"http_version\": "
                                  f"{last['error']}: {last.get('message')}")
        w.send({"id": 2, "method": "GET", "url": url, "http_version": "2",
                "tls": {"ca_file": origin.ca_file}})
        head, _, last = w.read_response(2)
        if "error" in last:
            return True, False, (f"\"http_version\": \"2\" failed: "
                                 f"{last['error']}: {last.get('message')}")
        if head.get("version") != 20:
            return True, False, (f"\"http_version\": \"2\" was answered "
                                 f"with version {head.get('version')}")
        return True, True, ""
    finally:
        w.close()


def run_measured(opts, cmd, pids, origin, timeout):
    """Runs cmd (a load generator that warms up for opts.warmup s, then
    measures) and returns (stdout, stderr, exit status, CPU seconds of
    pids, CPU seconds of the origin), the CPU over its measured part only: the CPU is read once the warm-up
    is over and again when cmd has ended, so that divided by the measured
    requests it is the CPU per request (the task-clock of those processes
    over the measured window: user + system time of all their threads)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(opts.warmup)
        cpu0 = [cpu_seconds(p) for p in pids]
        ocpu0 = origin.cpu_seconds()
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    cpu = sum(cpu_seconds(p) - c for p, c in zip(pids, cpu0))
    return out, err, proc.returncode, cpu, origin.cpu_seconds() - ocpu0


H2LOAD_FINISHED = re.compile(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s")
H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored")
H2LOAD_MAX_STREAMS = 100  # as hconnd's h2_max_concurrent_streams default


def h2load_cmd(opts, origin, clients, log_file):
    """h2load straight to the origin's TLS port over HTTP/2 with as many
    requests in flight as there are clients, multiplexed as hconnd does:
    one connection per 100 streams."""
    conns = -(-clients // H2LOAD_MAX_STREAMS)
    streams = -(-clients // conns)
    return [shutil.which("h2load") or "h2load",
            "-D", f"{round(opts.duration * 1000)}ms",
            "--warm-up-time", f"{round(opts.warmup * 1000)}ms", "-t", "1",
            "-c", str(conns), "-m", str(streams), "--log-file", log_file,
            origin.url("/small", tls=True)]


def h2load_result(out, log_file, duration):
    """loadgen's result fields from h2load's summary and its per-request
    log (start µs, status, µs to the end of the response)."""
    fin = H2LOAD_FINISHED.search(out)
    req = H2LOAD_REQUESTS.search(out)
    if fin is None or req is None:
        raise RuntimeError(f"h2load printed no summary:\n{out[-2000:]}")
    lat = []
    with contextlib.suppress(OSError):
        with open(log_file) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    lat.append(float(parts[2]))
    lat.sort()

    def q(x):
        return lat[min(len(lat) - 1, int(x * len(lat)))] if lat else 0.0
    # h2load's "failed" counts non-2xx/3xx answers and its "errored"
    # (transport) requests alike.
    ok, errors = int(req.group(4)), int(req.group(5))
    return dict(rps=float(fin.group(3)), requests=ok, seconds=duration,
                p50_us=q(0.5), p90_us=q(0.9), p99_us=q(0.99),
                max_us=lat[-1] if lat else 0.0,
                errors=errors, first_error=(f"h2load: {errors} failed, "
                                            f"{req.group(6)} of them "
                                            "errored" if errors else ""))


def measure_one(opts, peer, tls, clients, origin, ctx, label):
    """One row: the peer's figures and the CPU per request of its serving
    processes and of the origin."""
    pids = serving_pids(peer, tls, ctx)
    timeout = opts.duration + opts.warmup + 120
    if peer == "h2load":
        log_file = os.path.join(ctx["tmp"], "h2load.log")
        cmd = h2load_cmd(opts, origin, clients, log_file)
        out, err, rc, cpu, ocpu = run_measured(opts, cmd, pids, origin,
                                               timeout)
        res = h2load_result(out + err, log_file, opts.duration)
        res.update(label=label, clients=clients)
    else:
        cmd = [opts.loadgen, "-d", str(opts.duration), "-w",
               str(opts.warmup), "-t", str(opts.threads), "--label", label]
        cmd += loadgen_args(peer, tls, origin, ctx) + ["-c", str(clients)]
        out, err, rc, cpu, ocpu = run_measured(opts, cmd, pids, origin,
                                               timeout)
        lines = out.strip().splitlines()
        if not lines:
            raise RuntimeError(f"loadgen printed nothing (exit {rc}): "
                               f"{' '.join(cmd)}\n{err}")
        res = json.loads(lines[-1])
    n = max(res["requests"], 1)
    res.update(peer=peer, clients=clients,
               peer_cpu_us=cpu / n * 1e6 if pids else None,
               origin_cpu_us=ocpu / n * 1e6)
    return res


def workload_small(opts, tls, origin, ctx, peers):
    """Rows for every client count and peer, interleaved so that a noisy
    moment hurts no single peer."""
    rows = []
    peers = [p for p in peers if tls or p not in TLS_PEERS]
    if "hconnd-h2" in peers and not ctx.get("http2"):
        log(f"  hconnd over HTTP/2 skipped: {ctx.get('http2_why')}")
        peers.remove("hconnd-h2")
    if "h2load" in peers and shutil.which("h2load") is None:
        log("  h2load skipped: not installed (nghttp2-client; "
            "tests/bench/install-deps.sh installs it)")
        peers.remove("h2load")
    for clients in opts.clients:
        for peer in peers:
            label = f"{'https' if tls else 'http'} {peer} c={clients}"
            res = measure_one(opts, peer, tls, clients, origin, ctx, label)
            rows.append(res)
            log(f"  {label:31} {res['rps']:9.0f} req/s  p50 "
                f"{res['p50_us']:8.1f} µs  p99 {res['p99_us']:8.1f} µs"
                + (f"  CPU {res['peer_cpu_us']:.1f} µs/req"
                   if res["peer_cpu_us"] is not None else "")
                + (f"  errors {res['errors']} ({res['first_error']})"
                   if res["errors"] else ""))
    return rows


# ---- Workload 3: short-lived processes ---------------------------------------------

PY_FETCH = """\
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[2]), context=ctx)
c.request("GET", "/small")
r = c.getresponse()
r.read()
sys.exit(0 if r.status == 200 else 1)
"""

# The same fetch with hconn.client, the drop-in for http.client, through
# hconnd: the TLS handshake is the daemon's, pooled. argv[3]: the package's
# directory (client-lib/python).
PY_HCONN_FETCH = """\
import sys
sys.path.insert(0, sys.argv[3])
from hconn import client
c = client.HTTPSConnection("127.0.0.1", int(sys.argv[2]), cafile=sys.argv[1])
c.request("GET", "/small")
r = c.getresponse()
r.read()
sys.exit(0 if r.status == 200 else 1)
"""

SHELL_LOOP = ('n=$1; shift; i=0; while [ $i -lt $n ]; do '
              '"$@" >/dev/null || exit 1; i=$((i+1)); done')


def compiled_hconn_package(tmp):
    """A copy of the hconn package byte-compiled, as an install leaves it
    (client-lib/python/compile.py): run from the source tree under
    PYTHONDONTWRITEBYTECODE, each process would compile it again, as no
    installed copy does. Returns the directory to put on sys.path."""
    top = os.path.join(tmp, "python")
    src = os.path.join(ROOT, "client-lib", "python", "hconn")
    shutil.copytree(src, os.path.join(top, "hconn"), dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.in"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", top],
                   check=True)
    return top


def workload_processes(opts, origin, ctx):
    """Wall time per process of N sequential fetches from a shell loop."""
    url = origin.url("/small", tls=True)
    d = ctx["hconnd"]
    tools = [("hconn", [harness.HCONN, "-f", "--cacert", origin.ca_file,
                        "-o", "/dev/null", url], d.env)]
    if shutil.which("curl"):
        tools.append(("curl", ["curl", "-s", "-f", "--cacert",
                               origin.ca_file, "-o", "/dev/null", url], None))
    tools.append(("python3 http.client",
                  [sys.executable, "-c", PY_FETCH, origin.ca_file,
                   str(origin.tls_port)], None))
    tools.append(("python3 hconn.client",
                  [sys.executable, "-c", PY_HCONN_FETCH, origin.ca_file,
                   str(origin.tls_port), compiled_hconn_package(ctx["tmp"])],
                  d.env))
    rows = []
    for name, cmd, env in tools:
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        cpu0 = children_cpu()
        t = time.perf_counter()
        r = subprocess.run(["sh", "-c", SHELL_LOOP, "loop",
                            str(opts.processes)] + cmd, env=env)
        secs = time.perf_counter() - t
        # The loop's CPU (the shell's fork too) and the processes', less
        # noisy than wall time on a busy machine.
        cpu = children_cpu() - cpu0
        if r.returncode != 0:
            raise RuntimeError(f"{name}: a fetch failed: {' '.join(cmd)}")
        rows.append(dict(tool=name, processes=opts.processes, seconds=secs,
                         ms_per_process=secs / opts.processes * 1000,
                         cpu_ms_per_process=cpu / opts.processes * 1000))
        log(f"  {name:22} {secs / opts.processes * 1000:7.2f} ms/process  "
            f"CPU {cpu / opts.processes * 1000:.2f} ms/process")
    return rows


# ---- Workload 4: a large body -------------------------------------------------------

def workload_large(opts, origin, ctx, copying):
    """Best of large_rounds downloads to /dev/null: MiB/s and CPU. hconnd
    twice: as it runs (the body spliced from the origin's socket to the
    client's) and copying (a second daemon with HCONND_SPLICE=0), the
    tools alternating round by round so drift in the machine's load
    falls on each alike."""
    url = origin.url("/large")
    tools = []
    if shutil.which("curl"):
        tools.append(("curl direct", ["curl", "-s", "-f", "-o", "/dev/null",
                                      url], None))
    tools.append(("hconn via hconnd", [harness.HCONN, "-f", "-o",
                                       "/dev/null", url], ctx["hconnd"]))
    tools.append(("hconn via hconnd, copying", [harness.HCONN, "-f", "-o",
                                                "/dev/null", url], copying))
    # The file's first read fills the page cache (the origin then spends
    # 1.5-2 s of CPU, a warm read 0.1 s): done here, untimed, or the first
    # round's first tool (curl) pays it, and its best is of one round less.
    with open(os.path.join(origin.dir, "www", "large"), "rb") as f:
        while f.read(1 << 20):
            pass
    best = {}
    for _ in range(opts.large_rounds):
        for name, cmd, d in tools:
            dcpu0 = cpu_seconds(d.pid) if d is not None else 0
            ccpu0 = children_cpu()
            t = time.perf_counter()
            subprocess.run(cmd, env=d.env if d is not None else None,
                           check=True)
            secs = time.perf_counter() - t
            row = dict(tool=name, mib=opts.large_mib, seconds=secs,
                       mib_s=opts.large_mib / secs,
                       client_cpu=children_cpu() - ccpu0,
                       daemon_cpu=(cpu_seconds(d.pid) - dcpu0
                                   if d is not None else None))
            if name not in best or secs < best[name]["seconds"]:
                best[name] = row
    rows = [best[name] for name, _, _ in tools]
    for r in rows:
        log(f"  {r['tool']:26} {r['mib_s']:8.0f} MiB/s  client CPU "
            f"{r['client_cpu']:.2f} s"
            + (f"  hconnd CPU {r['daemon_cpu']:.2f} s"
               if r["daemon_cpu"] is not None else ""))
    return rows


# ---- Workload 5: memory -------------------------------------------------------------

def hello(sock):
    sock.sendall(b'{"op":"hello"}\n')
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("hconnd closed a client during hello")
        buf += chunk
    if b'"version"' not in buf:
        raise RuntimeError(f"unexpected hello reply: {buf[:200]!r}")


def idle_clients(opts, d):
    """RSS (KiB) with no client, then with idle_clients connected clients
    that each said hello (so the daemon holds a session for each)."""
    probe = socket.socket(socket.AF_UNIX)
    probe.connect(d.socket)
    hello(probe)
    probe.close()
    time.sleep(0.2)
    idle = rss_kib(d.pid)
    socks = []
    try:
        for _ in range(opts.idle_clients):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            s.connect(d.socket)
            socks.append(s)
            hello(s)
        time.sleep(0.2)
        with_clients = rss_kib(d.pid)
    finally:
        for s in socks:
            s.close()
    return idle, with_clients


def pooled(d, n, request):
    """RSS before and after, and the idle connections added, once n
    requests sent at once on one client connection (each answered after a
    second, so all are in flight together) have left n idle pooled
    connections. One request first pays the one-time costs (TLS context,
    CA file) outside the figures. A request with "http_version" goes
    without it to a daemon that does not know the field."""
    w = harness.Wire(d.socket, timeout=120)
    w.send(dict(request, id=0))
    _, _, last = w.read_response(0)
    if "http_version" in request and last.get("error") == "bad_message" \
            and "http_version" in last.get("message", ""):
        request = {k: v for k, v in request.items() if k != "http_version"}
        w.send(dict(request, id=0))
        w.read_response(0)
    w.send({"op": "stats"})
    idle0 = w.read_message()["pool"]["idle"]
    time.sleep(0.2)
    before = rss_kib(d.pid)
    for i in range(1, n + 1):
        w.send(dict(request, id=i))
    for i in range(1, n + 1):
        head, body, last = w.read_response(i)
        if not last.get("end"):
            raise RuntimeError(f"pooled request {i} failed: {last}")
    w.send({"op": "stats"})
    stats = w.read_message()
    # Idle, settled: a parked TLS connection keeps OpenSSL's buffers for
    # half a second in case it is taken again, and the heap is trimmed
    # after a quiet second.
    time.sleep(3)
    after = rss_kib(d.pid)
    w.close()
    return before, after, stats["pool"]["idle"] - idle0


def distinct_tls_settings(d, ca_file, n=10000):
    """RSS before and after n requests with distinct TLS settings (half
    by server name, half by inline trust anchors) to a closed port: each
    builds or finds a context and fails to connect, no handshake."""
    with open(ca_file) as f:
        ca = f.read()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    w = harness.Wire(d.socket, timeout=120)
    before = rss_kib(d.pid)
    for start in range(1, n + 1, 500):
        ids = range(start, min(start + 500, n + 1))
        for i in ids:
            tls = {"server_name": f"s{i}.example"}
            if i % 2 == 0:
                tls["ca_pem"] = ca + f"# setting {i}\n"
            w.send({"id": i, "method": "GET", "host": "127.0.0.1",
                    "port": port, "tls": tls})
        for i in ids:
            w.read_response(i)
    after = rss_kib(d.pid)
    w.close()
    return before, after


def workload_memory(opts, origin, tmp):
    res = {}
    # All the idle clients are ours, one uid: its share must hold them.
    base = {"max_clients": opts.idle_clients + 100,
            "max_clients_per_uid": opts.idle_clients + 100}
    with start_hconnd(tmp, base) as d:
        res["idle_kib"], res["clients_kib"] = idle_clients(opts, d)
        res["clients"] = opts.idle_clients
        d.stop()
    log(f"  idle {res['idle_kib']} KiB; with {res['clients']} idle clients "
        f"{res['clients_kib']} KiB")
    cfg = {"pool_max_per_origin": opts.pooled,
           "pool_max_total": 2 * opts.pooled + 16,
           "max_requests_per_client": max(1024, opts.pooled)}
    for kind, request in [
            ("plain", {"method": "GET", "url": origin.url(origin.slow_path)}),
            # HTTP/1.1: over HTTP/2 the n requests would share a few
            # connections, and this measures one connection each.
            ("tls", {"method": "GET",
                     "url": origin.url(origin.slow_path, tls=True),
                     "http_version": "1.1",
                     "tls": {"ca_file": origin.ca_file}}),
            # HTTP/2 with one stream per connection: n connections, each
            # holding an nghttp2 session beside its TLS state.
            ("h2", {"method": "GET",
                    "url": origin.url(origin.slow_path, tls=True),
                    "http_version": "2",
                    "tls": {"ca_file": origin.ca_file}})]:
        try:
            with start_hconnd(tmp, dict(cfg, h2_max_concurrent_streams=1)
                              if kind == "h2" else cfg) as d:
                before, after, idle = pooled(d, opts.pooled, request)
                d.stop()
        except (RuntimeError, OSError) as e:
            if kind != "h2":
                raise
            log(f"  idle pooled HTTP/2 connections skipped: {e}")
            continue
        res[kind] = dict(before_kib=before, after_kib=after, idle=idle,
                         kib_each=(after - before) / max(idle, 1))
        log(f"  {idle} idle pooled {kind} connections: RSS {before} -> "
            f"{after} KiB, {res[kind]['kib_each']:.1f} KiB each")
    with start_hconnd(tmp, {}) as d:
        before, after = distinct_tls_settings(d, origin.ca_file)
        d.stop()
    res["tls_settings"] = dict(n=10000, before_kib=before, after_kib=after)
    log(f"  10000 distinct TLS settings: RSS {before} -> {after} KiB")
    return res


# ---- Profile ------------------------------------------------------------------------

# perf report --stdio lines; perf may append "-" columns (IPC) to each.
PERF_SELF = re.compile(
    r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.+?)(?:\s+-)*\s*$")
PERF_CHILDREN = re.compile(
    r"^\s*([\d.]+)%\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.+?)(?:\s+-)*\s*$")
PERF_DSO = re.compile(r"^\s*([\d.]+)%\s+(\S+)(?:\s+-)*\s*$")


# The profiles a run takes: (results key, workload, peer, TLS, clients).
# Plain at 16 clients is the hot path; HTTPS at 256 clients is where the
# cost per request grew with concurrency; HTTP/2 beside it, when the
# daemon has it.
PROFILES = [
    ("profile", "1", "hconnd", False, 16),
    ("profile-https-256", "2", "hconnd", True, 256),
    ("profile-h2-256", "2", "hconnd-h2", True, 256),
]


def profile_title(prof):
    """The heading of a profile (runs before 2026-12 took only the first,
    and did not name it)."""
    return prof.get("title") or "workload 1, plain, 16 clients"


def profile_hconnd(opts, origin, ctx, tmp, peer="hconnd", tls=False,
                   clients=16):
    """perf record -g on hconnd while clients run peer's small GETs;
    returns the top items by self time and by time including callees."""
    perf = shutil.which("perf")
    if perf is None:
        log("  perf not installed: no profile")
        return None
    d = ctx["hconnd"]
    data = os.path.join(tmp, f"perf-{peer}-{int(tls)}-{clients}.data")
    rec = subprocess.Popen(
        [perf, "record", "-F", "999", "-g", "-p", str(d.pid), "-o", data,
         "--", "sleep", str(opts.profile_seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        time.sleep(0.5)
        args = loadgen_args(peer, tls, origin, ctx) + ["-c", str(clients)]
        run_opts = argparse.Namespace(**vars(opts))
        run_opts.duration, run_opts.warmup = opts.profile_seconds, 0
        res = run_loadgen(run_opts, args, "profile")
        _, err = rec.communicate(timeout=opts.profile_seconds + 60)
    finally:
        harness.kill_group(rec)
    if not os.path.exists(data):
        log(f"  perf record failed: {err.strip()[:300]}")
        return None
    out = {"rps": res["rps"], "self": [], "children": [], "dso": [],
           "title": f"workload {'2, HTTPS' if tls else '1, plain'}, "
           f"{PEER_SHORT[peer]}, {clients} clients"}
    for mode, sort, pattern, key in [
            ("--no-children", "dso", PERF_DSO, "dso"),
            ("--no-children", "dso,symbol", PERF_SELF, "self"),
            ("--children", "dso,symbol", PERF_CHILDREN, "children")]:
        rep = subprocess.run(
            [perf, "report", "-i", data, "--stdio", mode, "-g", "none",
             "--sort", sort, "--percent-limit", "0.5"],
            capture_output=True, text=True, timeout=300)
        for line in rep.stdout.splitlines():
            m = pattern.match(line)
            # Frames perf could not name (no frame pointers in libc) and
            # the syscall entry, which holds every syscall, say nothing.
            if m is None or m.group(0).find("[unknown]") >= 0 or \
                    re.search(r"\b(do_syscall_64|entry_SYSCALL\w*)$",
                              m.groups()[-1]):
                continue
            if len(out[key]) < opts.profile_top:
                out[key].append(m.groups())
    return out


# ---- Charts ---------------------------------------------------------------------------

# SVG files beside the report, one per comparison: (key, file name, alt
# text). build_report links those that were drawn.
CHARTS = [
    ("1-rps", "chart-1-rps.svg",
     "Workload 1: req/s by peer and client count"),
    ("1-latency", "chart-1-latency.svg",
     "Workload 1: latency percentiles by peer and client count"),
    ("2-rps", "chart-2-rps.svg",
     "Workload 2: req/s by peer and client count"),
    ("2-latency", "chart-2-latency.svg",
     "Workload 2: latency percentiles by peer and client count"),
    ("4-mibs", "chart-4-mibs.svg", "Workload 4: MiB/s of a large download"),
]


def chart_peers(rows):
    """The peers of rows in PEERS order."""
    present = {r["peer"] for r in rows}
    return [p for p in PEERS if p in present]


def chart_rps(plt, rows, title):
    """Grouped bars: req/s per peer, one group per client count."""
    peers = chart_peers(rows)
    counts = sorted({r["clients"] for r in rows})
    by = {(r["peer"], r["clients"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(peers)
    for i, peer in enumerate(peers):
        xs = [j + (i - (len(peers) - 1) / 2) * width
              for j, c in enumerate(counts) if (peer, c) in by]
        ys = [by[(peer, c)]["rps"] for c in counts if (peer, c) in by]
        bars = ax.bar(xs, ys, width, label=PEER_SHORT[peer],
                      color=f"C{PEERS.index(peer)}")
        ax.bar_label(bars, fmt="%.0f", fontsize=6, rotation=90, padding=2)
    ax.set_xticks(range(len(counts)))
    ax.set_xticklabels([f"{c} client{'s' if c > 1 else ''}"
                        for c in counts])
    ax.set_ylabel("requests per second")
    ax.set_title(title)
    ax.margins(y=0.15)
    # Below the axes: inside, it would hide the tallest bars.
    ax.legend(fontsize=7, ncol=4, loc="upper center",
              bbox_to_anchor=(0.5, -0.08), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def chart_latency(plt, rows, title):
    """Per client count, each peer's p50, p90 and p99 (log scale)."""
    from matplotlib import ticker
    peers = chart_peers(rows)
    counts = sorted({r["clients"] for r in rows})
    by = {(r["peer"], r["clients"]): r for r in rows}
    quants = [q for q in ("p50_us", "p90_us", "p99_us")
              if any(q in r for r in rows)]
    fig, axes = plt.subplots(1, len(counts), figsize=(4 * len(counts), 4.5),
                             squeeze=False)
    width = 0.8 / len(quants)
    for ax, c in zip(axes[0], counts):
        names = [p for p in peers if (p, c) in by]
        for i, q in enumerate(quants):
            xs = [j + (i - (len(quants) - 1) / 2) * width
                  for j in range(len(names))]
            ax.bar(xs, [by[(p, c)].get(q) or 0 for p in names], width,
                   label=q[:3])
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([PEER_SHORT[p] for p in names], rotation=35,
                           ha="right", fontsize=7)
        ax.set_yscale("log")
        # 1-2-5 steps labelled in plain numbers: a log axis spanning less
        # than a decade would show one label or none.
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(
            lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_title(f"{c} client{'s' if c > 1 else ''}", fontsize=9)
        ax.grid(axis="y", alpha=0.3, which="both")
    axes[0][0].set_ylabel("latency, µs (log scale)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def chart_large(plt, rows, title):
    """Bars: MiB/s per tool."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bars = ax.bar([r["tool"] for r in rows], [r["mib_s"] for r in rows],
                  color=["#999999" if r["tool"] == "curl direct"
                         else "#1f77b4" for r in rows])
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_ylabel("MiB/s")
    ax.set_title(title)
    ax.margins(y=0.15)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


# Debian's python3-matplotlib belongs to the system's python3, which may
# not be the one running this script (a pyenv or venv python).
SYSTEM_PYTHON = "/usr/bin/python3"


def draw_charts(results, outdir):
    """Draws the charts of results into outdir; returns {key: file name}
    of those drawn (none without matplotlib). Without matplotlib here,
    the system's python3 draws them when it has it."""
    if have_matplotlib():
        return draw_charts_here(results, outdir)
    if system_python_charts():
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(results, f)
            f.flush()
            r = subprocess.run([SYSTEM_PYTHON, os.path.abspath(__file__),
                                "--draw-charts", f.name, outdir],
                               capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return json.loads(r.stdout.strip().splitlines()[-1])
    log("charts not drawn: python3-matplotlib is not installed "
        "(tests/bench/install-deps.sh installs it)")
    return {}


def draw_charts_here(results, outdir):
    """draw_charts with this interpreter's matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    # The same figures make the same files: no date, fixed ids.
    matplotlib.rcParams["svg.hashsalt"] = "hconn-bench"
    matplotlib.rcParams["svg.fonttype"] = "none"
    makers = {
        "1-rps": ("1", chart_rps, "1 KiB GETs, plain HTTP"),
        "1-latency": ("1", chart_latency, "1 KiB GETs, plain HTTP"),
        "2-rps": ("2", chart_rps, "1 KiB GETs, HTTPS origin"),
        "2-latency": ("2", chart_latency, "1 KiB GETs, HTTPS origin"),
        "4-mibs": ("4", chart_large, "Large body to /dev/null, plain HTTP"),
    }
    drawn = {}
    for key, name, _ in CHARTS:
        w, make, title = makers[key]
        if not results.get(w):
            continue
        fig = make(plt, results[w], title)
        fig.savefig(os.path.join(outdir, name), format="svg",
                    metadata={"Date": None})
        plt.close(fig)
        drawn[key] = name
    return drawn


def chart_links(charts, *keys):
    """Markdown image lines for the charts of keys that were drawn."""
    alts = {k: alt for k, _, alt in CHARTS}
    return [f"![{alts[k]}]({charts[k]})" for k in keys if k in charts] + \
        ([""] if any(k in charts for k in keys) else [])


# ---- The report --------------------------------------------------------------------

def run_text(cmd):
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (r.stdout + r.stderr).strip()
    return ""


def machine_info():
    lscpu = run_text(["lscpu"])
    model = re.search(r"^Model name:\s*(.+)$", lscpu, re.M)
    osname = ""
    with contextlib.suppress(OSError):
        with open("/etc/os-release") as f:
            m = re.search(r'^PRETTY_NAME="?([^"\n]*)', f.read(), re.M)
            osname = m.group(1) if m else ""
    mem = ""
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) // 1024} MiB"
    commit = run_text(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = run_text(["git", "-C", ROOT, "status", "--porcelain",
                      "--untracked-files=no"])
    first = (lambda s: s.splitlines()[0] if s else "?")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "os": osname,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "versions": {
            "nginx": first(run_text([harness.NGINX, "-v"])),
            "squid": first(run_text(["squid", "-v"])),
            "tinyproxy": first(run_text([harness.TINYPROXY, "-v"])),
            "curl": first(run_text(["curl", "--version"])),
            "h2load": first(run_text(["h2load", "--version"])),
            "python3": platform.python_version(),
            "openssl": first(run_text(["openssl", "version"])),
        },
    }


def verdict(value, op, bound, unit=""):
    """'met' or 'missed by ...' for value against a target."""
    ok = value >= bound if op == ">=" else value <= bound
    if ok:
        return "met"
    gap = bound - value if op == ">=" else value - bound
    rel = gap / bound * 100 if bound else 0
    return f"**missed** by {gap:.2f}{unit} ({rel:.0f}%)"


def small_tables(rows, title):
    out = [f"### {title}", "",
           "| clients | peer | req/s | x direct | p50 µs | p99 µs | "
           "peer CPU µs/req | origin CPU µs/req | errors |",
           "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        direct = next((x for x in rows if x["peer"] == "direct"
                       and x["clients"] == r["clients"]), None)
        ratio = (f"{r['rps'] / direct['rps']:.2f}"
                 if direct and direct["rps"] else "–")
        pcpu = ("–" if r["peer_cpu_us"] is None
                else f"{r['peer_cpu_us']:.1f}")
        out.append(f"| {r['clients']} | {PEER_TITLES[r['peer']]} | "
                   f"{r['rps']:.0f} | {ratio} | {r['p50_us']:.1f} | "
                   f"{r['p99_us']:.1f} | {pcpu} | {r['origin_cpu_us']:.1f} | "
                   f"{r['errors']}" + (f" ({r['first_error']})"
                                       if r["errors"] else "") + " |")
    return out + [""]


def small_targets(rows, workload):
    """Issue 19's targets for workload 1 (plain) or 2 (HTTPS)."""
    out = []
    by = {(r["peer"], r["clients"]): r for r in rows}
    for clients in sorted({r["clients"] for r in rows}):
        h = by.get(("hconnd", clients))
        if h is None:
            continue
        d = by.get(("direct", clients))
        p = by.get(("nginx-pool", clients))
        f = by.get(("floor", clients))
        w = f"{workload}, {clients} client{'s' if clients > 1 else ''}"

        def floor(value):
            """What the relay floor reached on the same measure: the
            bound no relay with these two hops can pass on this machine."""
            return "" if f is None else f" (relay floor: {value(f)})"
        if workload == "1" and clients == 1 and d:
            # Only with one client is p50 a latency of its own: with more,
            # a closed loop's p50 is about clients / req/s.
            added = h["p50_us"] - d["p50_us"]
            out.append((f"{w}: hconnd p50 − direct p50 ≤ 15 µs",
                        f"{added:.1f} µs" + floor(
                            lambda r: f"{r['p50_us'] - d['p50_us']:.1f} µs"),
                        verdict(added, "<=", 15, " µs")))
        if workload == "1" and clients in (16, 256):
            if h["peer_cpu_us"] is not None:
                out.append((f"{w}: hconnd CPU per request ≤ 10 µs",
                            f"{h['peer_cpu_us']:.1f} µs" + floor(
                                lambda r: f"{r['peer_cpu_us']:.1f} µs"),
                            verdict(h["peer_cpu_us"], "<=", 10, " µs")))
            if p and p["rps"]:
                v = h["rps"] / p["rps"]
                out.append((f"{w}: hconnd / nginx local pool req/s ≥ 1.5",
                            f"{v:.2f}x" + floor(
                                lambda r: f"{r['rps'] / p['rps']:.2f}x"),
                            verdict(v, ">=", 1.5)))
            if d and d["rps"]:
                v = h["rps"] / d["rps"]
                out.append((f"{w}: hconnd / direct req/s ≥ 0.7",
                            f"{v:.2f}x" + floor(
                                lambda r: f"{r['rps'] / d['rps']:.2f}x"),
                            verdict(v, ">=", 0.7)))
        h2 = by.get(("hconnd-h2", clients))
        if workload == "2" and clients == 256 and p and p["rps"]:
            # Both ways hconnd reaches this origin: over HTTP/1.1 (the
            # nginx pool's own upstream protocol) and over HTTP/2, which
            # hconnd negotiates by default when the origin offers it.
            v = h["rps"] / p["rps"]
            out.append((f"{w}: hconnd over HTTP/1.1 / nginx local pool "
                        "req/s ≥ 1.2", f"{v:.2f}x" + floor(
                            lambda r: f"{r['rps'] / p['rps']:.2f}x"),
                        verdict(v, ">=", 1.2)))
            if h2 and h2["rps"]:
                v = h2["rps"] / p["rps"]
                out.append((f"{w}: hconnd over HTTP/2 (its default here) / "
                            "nginx local pool req/s ≥ 1.2", f"{v:.2f}x",
                            verdict(v, ">=", 1.2)))
        if workload == "2" and h2 and h["peer_cpu_us"] and \
                h2["peer_cpu_us"] is not None:
            v = h2["peer_cpu_us"] / h["peer_cpu_us"]
            out.append((f"{w}: hconnd CPU per request, HTTP/2 / HTTP/1.1 "
                        "≤ 1.1", f"{v:.2f}x ({h2['peer_cpu_us']:.1f} / "
                        f"{h['peer_cpu_us']:.1f} µs)", verdict(v, "<=", 1.1)))
    return out


def build_report(opts, info, results, charts=None):
    t = []
    targets = []
    t += ["# hconn benchmark results", "",
          "Written by `python3 tests/bench/bench.py` (see the README, "
          "\"Benchmarks\"). One run, one machine, all peers side by side; "
          "the figures are ratios within this run, not absolutes.", "",
          "## Machine", "",
          f"- date: {info['date']}",
          f"- CPU: {info['cpu']}, {info['cores']} cores; memory "
          f"{info['memory']}",
          f"- kernel: {info['kernel']}; {info['os']}",
          f"- load average at start: {info['load']}",
          f"- hconn commit: {info['commit']}",
          "- peers: " + "; ".join(f"{k} {v}" for k, v in
                                  info["versions"].items()),
          f"- settings: {opts.duration:g} s measured after {opts.warmup:g} s "
          f"warm-up per run, loadgen with {opts.threads} thread(s); "
          f"{'quick mode' if opts.quick else 'full mode'}; hconnd config "
          f"`{json.dumps(opts.hconnd_config)}`, the origin's CA trusted through "
          "SSL_CERT_FILE in hconnd's environment (as the nginx pool's "
          "proxy_ssl_trusted_certificate) except where a row names it in "
          "each request; every server (origin nginx, "
          "nginx pool, squid, tinyproxy, hconnd) runs one worker process; "
          + ("CPU per request is the server's user + system time over the "
             "measured part of the run (after the warm-up) over the "
             "requests measured" if opts.cpu_window == "measured" else
             "CPU per request is the server's user + system time over the "
             "whole run, warm-up included, over its requests estimated "
             "from the measured rate"),
          ""]
    if "1" in results:
        t += small_tables(results["1"], "1. Small GET (1 KiB), plain HTTP, "
                          "keep-alive")
        t += chart_links(charts or {}, "1-rps", "1-latency")
        targets += small_targets(results["1"], "1")
    if "2" in results:
        t += small_tables(results["2"], "2. Small GET (1 KiB), HTTPS origin, "
                          "keep-alive")
        t += ["Through squid and tinyproxy each client keeps one CONNECT "
              "tunnel and does TLS inside it. hconnd over HTTP/2 shares "
              "one connection per 100 streams; h2load keeps as many "
              "requests in flight as there are clients, multiplexed the "
              "same way, straight to the origin.", ""]
        t += chart_links(charts or {}, "2-rps", "2-latency")
        targets += small_targets(results["2"], "2")
    if "3" in results:
        rows = results["3"]
        t += [f"### 3. Short-lived processes ({rows[0]['processes']} "
              "sequential, HTTPS, 1 KiB)", "",
              "| tool | ms per process | x hconn | CPU ms per process |",
              "| --- | ---: | ---: | ---: |"]
        base = rows[0]["ms_per_process"]
        for r in rows:
            cpu = r.get("cpu_ms_per_process")
            t.append(f"| {r['tool']} | {r['ms_per_process']:.2f} | "
                     f"{r['ms_per_process'] / base:.1f} | "
                     + ("–" if cpu is None else f"{cpu:.2f}") + " |")
        t += ["", "Each is run from a `sh` loop; hconnd was warm (one fetch "
              "before timing), curl and python make a new TCP and TLS "
              "connection each time. CPU: user + system time of the loop "
              "(its forks) and the processes it ran (the daemon's and the "
              "origin's not counted)."
              + (" The origin offers h2 and http/1.1 by ALPN: curl and "
                 "hconnd take HTTP/2 where they have it, python3 "
                 "http.client HTTP/1.1." if opts.origin_h2 else ""), ""]
        by_tool = {r["tool"]: r for r in rows}
        for r in rows[1:]:
            if r["tool"] == "python3 hconn.client":
                continue
            bound = 5.0 if r["tool"] == "curl" else 15.0
            v = r["ms_per_process"] / base
            targets.append((f"3: {r['tool']} time / hconn time ≥ {bound:g}",
                            f"{v:.1f}x", verdict(v, ">=", bound)))
        # The same Python program with the drop-in module: the daemon's
        # pooled TLS connection instead of a handshake per process.
        py, hpy = (by_tool.get("python3 http.client"),
                   by_tool.get("python3 hconn.client"))
        if py and hpy:
            v = py["ms_per_process"] / hpy["ms_per_process"]
            targets.append(("3: python3 http.client time / python3 "
                            "hconn.client time ≥ 1", f"{v:.1f}x",
                            verdict(v, ">=", 1.0)))
    if "4" in results:
        rows = results["4"]
        t += [f"### 4. Large body ({rows[0]['mib']} MiB to /dev/null, plain "
              "HTTP, best of the rounds)", "",
              "| tool | MiB/s | x curl | client CPU s | hconnd CPU s |",
              "| --- | ---: | ---: | ---: | ---: |"]
        curl = next((r for r in rows if r["tool"] == "curl direct"), None)
        for r in rows:
            ratio = f"{r['mib_s'] / curl['mib_s']:.2f}" if curl else "–"
            dc = "–" if r["daemon_cpu"] is None else f"{r['daemon_cpu']:.2f}"
            t.append(f"| {r['tool']} | {r['mib_s']:.0f} | {ratio} | "
                     f"{r['client_cpu']:.2f} | {dc} |")
        t.append("")
        t += chart_links(charts or {}, "4-mibs")
        h = next((r for r in rows if r["tool"] != "curl direct"), None)
        if curl and h:
            v = h["mib_s"] / curl["mib_s"]
            targets.append(("4: hconn / curl direct MiB/s ≥ 0.95",
                            f"{v:.2f}x", verdict(v, ">=", 0.95)))
    if "5" in results:
        m = results["5"]
        t += ["### 5. hconnd memory (RSS)", "",
              "| state | RSS KiB | KiB each |", "| --- | ---: | ---: |",
              f"| idle | {m['idle_kib']} | |",
              f"| {m['clients']} idle clients (each said hello) | "
              f"{m['clients_kib']} | "
              f"{(m['clients_kib'] - m['idle_kib']) / m['clients']:.1f} |"]
        for kind in ("plain", "tls", "h2"):
            if kind not in m:
                continue
            k = m[kind]
            t.append(f"| {k['idle']} idle pooled {kind} connections | "
                     f"{k['after_kib']} (from {k['before_kib']}) | "
                     f"{k['kib_each']:.1f} |")
        if "tls_settings" in m:
            k = m["tls_settings"]
            t.append(f"| after {k['n']} requests with distinct TLS "
                     f"settings | {k['after_kib']} (from {k['before_kib']})"
                     " | |")
        t.append("")
        mib = m["clients_kib"] / 1024
        scaled = (m["idle_kib"] + (m["clients_kib"] - m["idle_kib"])
                  * 10000 / m["clients"]) / 1024
        note = "" if m["clients"] == 10000 else \
            f" (scaled from {m['clients']} clients: {scaled:.1f} MiB)"
        targets.append((f"5: RSS with {m['clients']} idle clients ≤ 64 MiB"
                        + (" at 10,000" if m["clients"] != 10000 else ""),
                        f"{mib:.1f} MiB{note}",
                        verdict(scaled, "<=", 64, " MiB")))
        targets.append(("5: KiB per idle pooled TLS connection ≤ 48",
                        f"{m['tls']['kib_each']:.1f} KiB",
                        verdict(m["tls"]["kib_each"], "<=", 48, " KiB")))
    if targets:
        t += ["## Targets", "", "| target | measured | result |",
              "| --- | ---: | --- |"]
        t += [f"| {a} | {b} | {c} |" for a, b, c in targets]
        t.append("")
    for key, *_ in PROFILES:
        prof = results.get(key)
        if not prof:
            continue
        t += [f"## hconnd profile ({profile_title(prof)})", "",
              f"`perf record -F 999 -g -p <hconnd>` for "
              f"{opts.profile_seconds:g} s while loadgen ran "
              f"({prof['rps']:.0f} req/s); `perf report --no-children` "
              "(self time) and `--children` (with callees; frames perf "
              "could not name left out), top items.", "",
              "| self % | object |", "| ---: | --- |"]
        t += [f"| {p} | {dso} |" for p, dso in prof["dso"]]
        t += ["", "| self % | object | symbol |", "| ---: | --- | --- |"]
        t += [f"| {p} | {dso} | {sym} |" for p, dso, _, sym in prof["self"]]
        t += ["", "| with callees % | self % | object | symbol |",
              "| ---: | ---: | --- | --- |"]
        t += [f"| {c} | {s} | {dso} | {sym} |"
              for c, s, dso, _, sym in prof["children"]]
        t.append("")
    return t, targets


def have_matplotlib():
    """Whether this interpreter has matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def system_python_charts():
    """Whether the system's python3, when it is not this one, has
    matplotlib (Debian's python3-matplotlib is installed for it)."""
    if not os.access(SYSTEM_PYTHON, os.X_OK) or os.path.realpath(
            SYSTEM_PYTHON) == os.path.realpath(sys.executable):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import matplotlib"],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def write_results(path, lines):
    """Writes the generated part, keeping a hand-written NOTES_HEADING
    section of the existing file."""
    notes = ""
    with contextlib.suppress(OSError):
        with open(path) as f:
            old = f.read()
        i = old.find("\n" + NOTES_HEADING)
        if i >= 0:
            notes = old[i + 1:]
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")
        if notes:
            f.write("\n" + notes)


# ---- Main ---------------------------------------------------------------------------

def ensure_build(opts):
    """Returns the build dir holding hconnd, hconn and loadgen; without
    --build, sets up and compiles build-bench/ with -Dbench=true."""
    if opts.build:
        build = os.path.abspath(opts.build)
    else:
        build = os.path.join(ROOT, "build-bench")
        setup = ["meson", "setup", build, "-Dbench=true", "-Dtests=false"]
        if os.path.isdir(os.path.join(build, "meson-private")):
            setup.insert(2, "--reconfigure")
        subprocess.run(setup, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["meson", "compile", "-C", build], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    loadgen = os.path.join(build, "tests", "bench", "loadgen")
    if not os.access(loadgen, os.X_OK):
        sys.exit(f"bench: {loadgen} is missing: configure {build} with "
                 "-Dbench=true and compile it")
    return build, loadgen


def ensure_deps(opts):
    """Installs the peers when something is missing and we may (root)."""
    needed = ["/usr/sbin/nginx", "curl", "squid", "tinyproxy", "h2load"]
    missing = [n for n in needed if shutil.which(n) is None
               and not os.access(n, os.X_OK)]
    if not have_matplotlib() and not system_python_charts():
        missing.append("matplotlib")
    if missing and os.geteuid() == 0 and not opts.no_install:
        log(f"installing the peers ({', '.join(missing)} missing)")
        subprocess.run(["bash", os.path.join(HERE, "install-deps.sh")],
                       check=True)


def raise_nofile():
    """Raises RLIMIT_NOFILE for us and the peers we start (they inherit
    it): 10,000 idle clients need as many fds here and in hconnd."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def parse_args():
    ap = argparse.ArgumentParser(
        description="Benchmark hconn against its peers on loopback; "
        "prints ratios and writes tests/bench/RESULTS.md after a full run.")
    ap.add_argument("--quick", action="store_true",
                    help="short runs and small sizes, for development")
    ap.add_argument("--workloads", default="1,2,3,4,5",
                    help="comma-separated subset of 1-5 (default all)")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="peers of workloads 1 and 2 (default: "
                    f"{','.join(PEERS)})")
    ap.add_argument("--clients", default="1,16,256",
                    help="client counts of workloads 1 and 2")
    ap.add_argument("--duration", type=float, help="seconds measured per "
                    "loadgen run (full 10, quick 1)")
    ap.add_argument("--warmup", type=float, help="seconds of warm-up per "
                    "loadgen run (full 1, quick 0.3)")
    ap.add_argument("--threads", type=int, default=1,
                    help="loadgen threads (default 1)")
    ap.add_argument("--processes", type=int, help="workload 3 process "
                    "count (full 500)")
    ap.add_argument("--large-mib", type=int, help="workload 4 size in MiB "
                    "(full 1024)")
    ap.add_argument("--idle-clients", type=int,
                    help="workload 5 idle clients (full 10000)")
    ap.add_argument("--pooled", type=int, help="workload 5 pooled "
                    "connections of each kind (full 1000)")
    ap.add_argument("--pool-per-origin", type=int, default=256,
                    help="hconnd pool_max_per_origin in workloads 1-4 "
                    "(default 256: one upstream connection per client, as "
                    "the other peers may open)")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="skip perf record on hconnd")
    ap.add_argument("--profile-top", type=int, default=15)
    ap.add_argument("--build", help="build dir with -Dbench=true (default: "
                    "set up and compile build-bench/)")
    ap.add_argument("--output", help="write the report here (default: "
                    "tests/bench/RESULTS.md, after a full run only)")
    ap.add_argument("--no-install", action="store_true",
                    help="never run install-deps.sh")
    ap.add_argument("--save-json", metavar="PATH",
                    help="also write the raw figures here (a written "
                    "report always gets results.json beside it)")
    ap.add_argument("--no-charts", dest="charts", action="store_false",
                    help="write the report without drawing its charts")
    ap.add_argument("--from-json", metavar="PATH",
                    help="run nothing: redraw the report and its charts "
                    "from figures saved by an earlier run (writes "
                    "--output, default tests/bench/RESULTS.md)")
    opts = ap.parse_args()
    # How CPU per request is taken (runs before 2026-12 took the whole run,
    # warm-up included, over an estimate of its requests).
    opts.cpu_window = "measured"
    # Whether the origin's TLS listener offers h2 (runs before 2026-12:
    # HTTP/1.1 only).
    opts.origin_h2 = True
    preset = QUICK if opts.quick else FULL
    for k, v in preset.items():
        if getattr(opts, k, None) is None:
            setattr(opts, k, v)
    opts.workloads = [w.strip() for w in opts.workloads.split(",") if w]
    opts.peers = [p.strip() for p in opts.peers.split(",") if p]
    opts.clients = [int(c) for c in opts.clients.split(",") if c]
    bad = set(opts.workloads) - set("12345") or set(opts.peers) - set(PEERS)
    if bad:
        ap.error(f"unknown workload or peer: {', '.join(sorted(bad))}")
    return opts


# What build_report reads from opts, saved with the figures.
SAVED_SETTINGS = ("duration", "warmup", "threads", "quick", "hconnd_config",
                  "profile_seconds", "cpu_window", "origin_h2")


def save_json(path, opts, info, results):
    """Writes the run's figures and settings for --from-json."""
    data = {"format": 1, "info": info,
            "settings": {k: getattr(opts, k) for k in SAVED_SETTINGS},
            "results": results}
    with open(path, "w") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")


def write_report(opts, info, results, out):
    """Draws the charts beside out, then writes the report to out."""
    charts = draw_charts(results, os.path.dirname(os.path.abspath(out))) \
        if opts.charts else {}
    lines, _ = build_report(opts, info, results, charts)
    write_results(out, lines)
    log(f"wrote {out}" + (f" and {len(charts)} charts beside it"
                          if charts else ""))


def redraw(opts):
    """--from-json: the report and charts of saved figures, nothing run."""
    with open(opts.from_json) as f:
        data = json.load(f)
    # Figures saved before a setting existed were taken without it.
    old = {"cpu_window": "whole run", "origin_h2": False}
    for k, v in dict(old, **data["settings"]).items():
        setattr(opts, k, v)
    lines, targets = build_report(opts, data["info"], data["results"])
    print_targets(targets)
    write_report(opts, data["info"], data["results"],
                 opts.output or RESULTS)


def print_targets(targets):
    """The targets, met or missed, on stdout."""
    if targets:
        log("")
        width = max(len(a) for a, _, _ in targets)
        for a, b, c in targets:
            log(f"{a:{width}}  {b:>12}  {c.replace('**', '')}")


def main():
    global harness
    if sys.argv[1:2] == ["--draw-charts"]:
        # draw_charts through another interpreter: RESULTS-JSON OUTDIR.
        with open(sys.argv[2]) as f:
            results = json.load(f)
        print(json.dumps(draw_charts_here(results, sys.argv[3])))
        return
    opts = parse_args()
    if opts.from_json:
        redraw(opts)
        return
    ensure_deps(opts)
    build, opts.loadgen = ensure_build(opts)
    os.environ["HCONN_BUILD_ROOT"] = build
    for var in ("HCONN_HCONND", "HCONN_HCONN"):
        os.environ.pop(var, None)
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import harness as h
    harness = h
    nofile = raise_nofile()
    if nofile < opts.idle_clients + 1000:
        log(f"bench: only {nofile} fds allowed: {opts.idle_clients} idle "
            "clients will fail")
    opts.hconnd_config = {"pool_max_per_origin": opts.pool_per_origin,
                          "pool_max_total": 4096, "max_clients": 4096}
    info = machine_info()
    log(f"hconn bench: {info['cpu']}, {info['cores']} cores, kernel "
        f"{info['kernel']}, load {info['load']}; build {build}")

    results = {}
    tmp = tempfile.mkdtemp(prefix="hconn-bench-")
    os.chmod(tmp, 0o755)
    try:
        with contextlib.ExitStack() as stack:
            origin = stack.enter_context(
                Origin(os.path.join(tmp, "origin"), opts.large_mib))
            ctx = {"tmp": tmp}
            need_small = {"1", "2"} & set(opts.workloads)
            if need_small or {"3", "4"} & set(opts.workloads):
                ctx["hconnd"] = stack.enter_context(
                    start_hconnd(os.path.join(tmp, "hconnd"),
                                 opts.hconnd_config, env=hconnd_env(origin)))
            if "2" in opts.workloads and "hconnd" in ctx:
                (ctx["http_version_field"], ctx["http2"],
                 ctx["http2_why"]) = probe_http2(ctx["hconnd"], origin)
            if need_small:
                for w, tls in (("1", False), ("2", True)):
                    if "floor" in opts.peers and w in opts.workloads:
                        ctx[floor_key(tls)] = stack.enter_context(RelayFloor(
                            os.path.join(tmp, floor_key(tls)), origin,
                            os.path.join(os.path.dirname(opts.loadgen),
                                         "relayfloor"), tls))
                if "nginx-pool" in opts.peers:
                    ctx["nginx-pool"] = stack.enter_context(
                        NginxPool(os.path.join(tmp, "pool"), origin))
                if "squid" in opts.peers:
                    ctx["squid"] = stack.enter_context(
                        Squid(os.path.join(tmp, "squid"), origin))
                if "tinyproxy" in opts.peers:
                    ctx["tinyproxy"] = stack.enter_context(
                        Tinyproxy(os.path.join(tmp, "tinyproxy"), origin))
            for w, tls in (("1", False), ("2", True)):
                if w in opts.workloads:
                    log(f"workload {w}: small GET, "
                        f"{'HTTPS' if tls else 'plain HTTP'}")
                    results[w] = workload_small(opts, tls, origin, ctx,
                                                opts.peers)
            for key, w, peer, tls, clients in PROFILES:
                if not opts.profile or w not in opts.workloads or \
                        peer not in opts.peers or \
                        (peer == "hconnd-h2" and not ctx.get("http2")):
                    continue
                log(f"profile: perf record on hconnd, workload {w}, "
                    f"{peer}, {clients} clients")
                results[key] = profile_hconnd(opts, origin, ctx, tmp, peer,
                                              tls, clients)
            if "3" in opts.workloads:
                log("workload 3: short-lived processes")
                results["3"] = workload_processes(opts, origin, ctx)
            if "4" in opts.workloads:
                log(f"workload 4: {opts.large_mib} MiB download")
                copying = stack.enter_context(
                    start_hconnd(os.path.join(tmp, "hconnd"),
                                 opts.hconnd_config,
                                 env={"HCONND_SPLICE": "0"}))
                results["4"] = workload_large(opts, origin, ctx, copying)
                copying.stop()
            if "5" in opts.workloads:
                log("workload 5: memory")
                results["5"] = workload_memory(
                    opts, origin, os.path.join(tmp, "memory"))
            if "hconnd" in ctx:
                ctx["hconnd"].stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    _, targets = build_report(opts, info, results)
    print_targets(targets)
    log("")
    full = not opts.quick and len(opts.workloads) == 5 \
        and opts.peers == PEERS
    out = opts.output or (RESULTS if full else None)
    if opts.save_json:
        save_json(opts.save_json, opts, info, results)
        log(f"wrote {opts.save_json}")
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        save_json(os.path.join(os.path.dirname(os.path.abspath(out)),
                               "results.json"), opts, info, results)
        write_report(opts, info, results, out)
    else:
        log("(partial or quick run: RESULTS.md not written; --output "
            "PATH writes this report, --save-json PATH the figures)")


if __name__ == "__main__":
    main()
