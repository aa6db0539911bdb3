"""harness.py — real peers on loopback for the hconn integration tests.

Everything here starts a real process or a real socket on 127.0.0.1 and
cleans up after itself, on failure too:

  Nginx        an nginx 1.22 origin (echo + dav modules) in a temp dir,
               optionally with HTTP/2 on its TLS listener
  Nghttpd      nghttpd (nghttp2-server): an HTTP/2 origin, TLS or h2c,
               its -v frame log captured for assertions
  Hconnd       the real daemon on a temp Unix socket, -vv log to a file
  Wire         a strict little client for the JSON-lines protocol
  FaultOrigin  a scripted origin that sends exact bytes (truncations,
               resets, stalls) and records every connection and request
  IntegrationTest
               a unittest.TestCase base class wiring the above into
               addCleanup, printing the daemon's log tail when a test fails

Python 3.11 stdlib only. Paths come from the environment that meson sets:
HCONN_BUILD_ROOT (the build dir) and HCONN_SOURCE_ROOT (the source tree);
run by hand, they default to the first build*/ dir holding hconnd and to
the tree this file lives in. HCONN_HCONND, HCONN_HCONN and HCONN_LIB_CHECK
override the binaries' paths (meson sets them from the targets).
"""

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

# ---- Paths ------------------------------------------------------------------

SOURCE_ROOT = os.environ.get("HCONN_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


def _default_build_root():
    """The first build*/ dir of the source tree that holds a built hconnd."""
    candidates = sorted(glob.glob(os.path.join(SOURCE_ROOT, "build*")))
    for c in candidates:
        if os.path.exists(os.path.join(c, "daemon", "hconnd")):
            return c
    return candidates[0] if candidates else os.path.join(SOURCE_ROOT, "build")


BUILD_ROOT = os.environ.get("HCONN_BUILD_ROOT") or _default_build_root()
HCONND = os.environ.get("HCONN_HCONND") or os.path.join(
    BUILD_ROOT, "daemon", "hconnd")
HCONN = os.environ.get("HCONN_HCONN") or os.path.join(
    BUILD_ROOT, "client-lib", "hconn")
LIB_CHECK = os.environ.get("HCONN_LIB_CHECK") or next(
    (p for p in (os.path.join(BUILD_ROOT, "tests", "integration", "lib-check"),
                 os.path.join(BUILD_ROOT, "client-lib", "lib-check"))
     if os.path.exists(p)),
    os.path.join(BUILD_ROOT, "tests", "integration", "lib-check"))
TUNNEL_CHECK = os.environ.get("HCONN_TUNNEL_CHECK") or os.path.join(
    BUILD_ROOT, "client-lib", "tunnel-check")

NGINX = os.environ.get("HCONN_NGINX", "/usr/sbin/nginx")
NGINX_ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

LOOPBACK = "127.0.0.1"


def missing(reason):
    """A peer or binary the tests need is absent: a skip when run by hand,
    an error under tests/run.sh (HCONN_REQUIRE_PEERS=1), so CI can never
    pass by running nothing."""
    if os.environ.get("HCONN_REQUIRE_PEERS"):
        return RuntimeError(reason)
    return unittest.SkipTest(reason)


def require_binary(testcase, path, what):
    """Skips testcase (a TestCase or class) with a clear message when a
    binary the test needs has not been built."""
    if not os.access(path, os.X_OK):
        raise missing(f"{what} not built: {path} is missing "
                                f"(HCONN_BUILD_ROOT={BUILD_ROOT})")


# ---- Error codes ------------------------------------------------------------

def error_codes():
    """{wire name: positive CLI exit code}, read from proto/hconn_error.h in
    table order (the CLI exits with -code; code = -index)."""
    path = os.path.join(SOURCE_ROOT, "proto", "hconn_error.h")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    names = re.findall(r'X\(\s*[A-Z_0-9]+\s*,\s*"([a-z_0-9]+)"', text)
    if not names or names[0] != "ok":
        raise RuntimeError(f"cannot read the error table in {path}")
    return {name: i for i, name in enumerate(names)}


# ---- Ports ------------------------------------------------------------------

def free_port(host=LOOPBACK):
    """A TCP port that was free a moment ago (bind port 0, read it back).
    Callers that hand it to another process must retry if the bind fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_tcp(host, port, timeout=10.0, proc=None):
    """Waits until host:port accepts a connection; False on timeout or when
    proc has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def wait_for_unix(path, timeout=10.0, proc=None):
    """Waits until the Unix socket at path accepts a connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(0.5)
                s.connect(path)
                return True
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.02)
    return False


def wait_stopped(pid, timeout=10.0):
    """Waits until pid is stopped: SIGSTOP takes effect only once the
    process is next scheduled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rpartition(")")[2].split()[0] == "T":
                return True
        time.sleep(0.002)
    return False


def kill_group(proc, sig=signal.SIGKILL):
    """Sends sig to proc's process group (started with start_new_session)
    and reaps proc. Never touches other processes."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    else:
        # The leader is gone; its group may still hold children.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


# ---- Test data --------------------------------------------------------------

SMALL_BODY = b"hello world\n"
CHUNKED_BODY = b"line1\nline2\nline3\n"
HEADERS_BODY = b"headers\n"
BIG_SIZE = 1024 * 1024


def big_bytes(n=BIG_SIZE):
    """n bytes where byte i = i % 251 (a prime, so 4 KiB pages differ)."""
    pattern = bytes(range(251))
    return (pattern * (n // 251 + 1))[:n]


HUGE_SIZE = 100 * 1024 * 1024


def write_huge_file(path, size=HUGE_SIZE):
    """Writes size bytes cheaply (a 1 MiB block repeated, each copy stamped
    with its index so reordering or repeats change the hash) and returns
    the file's sha256 hex digest."""
    block = bytearray(big_bytes(1024 * 1024))
    h = hashlib.sha256()
    with open(path, "wb") as f:
        written = 0
        i = 0
        while written < size:
            block[0:16] = b"block %09d\n" % i
            piece = bytes(block[:min(len(block), size - written)])
            f.write(piece)
            h.update(piece)
            written += len(piece)
            i += 1
    return h.hexdigest()


# ---- nginx ------------------------------------------------------------------

NGINX_CONF = """\
load_module {echo_module};
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 1024;
}}

http {{
    access_log {dir}/access.log combined;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    default_type application/octet-stream;
    types {{
        text/plain txt;
    }}
    sendfile on;
    keepalive_requests {keepalive_requests};
    keepalive_timeout 75s;
    server_tokens off;
{http_extra}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {dir}/www;

        add_header X-Connection $connection always;
        add_header X-Request-Method $request_method always;

        location = /small.txt {{ }}
        location = /big.bin {{ }}
        location = /huge.bin {{ }}

        location = /headers {{
            default_type text/plain;
            add_header X-Connection $connection always;
            add_header X-Request-Method $request_method always;
            add_header X-Dup a;
            add_header X-Dup b;
            return 200 "headers\\n";
        }}

        location = /chunked {{
            default_type text/plain;
            echo line1;
            echo line2;
            echo line3;
        }}

        location = /echo {{
            default_type application/octet-stream;
            client_body_buffer_size 16m;
            client_max_body_size 16m;
            echo_read_request_body;
            echo_request_body;
        }}

        location = /missing {{
            return 404;
        }}

        # Redirects for the hconn command's -L.
        location = /redirect/301 {{ return 301 /small.txt; }}
        location = /redirect/302 {{ return 302 /small.txt; }}
        location = /redirect/303 {{ return 303 /small.txt; }}
        location = /redirect/307 {{ return 307 /echo; }}
        location = /redirect/308 {{ return 308 /echo; }}
        location = /redirect/twice {{ return 302 /redirect/301; }}
        location = /redirect/relative {{ return 302 "../small.txt"; }}
        location = /redirect/loop {{ return 302 /redirect/loop; }}

        location /dav/ {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            client_max_body_size 200m;
            client_body_buffer_size 1m;
        }}
    }}
{tls_server}}}
"""

# One TLS server block. Every TLS server of an Nginx shares the docroot and
# reports per response: the nginx connection number, the TLS version, and
# whether the handshake resumed a session ("r") or made a new one (".").
NGINX_TLS_SERVER = """
    server {{
        listen 127.0.0.1:{tls_port} ssl{listen_extra};
        server_name localhost;
        root {dir}/www;
        ssl_certificate {dir}/tls/{cert}.crt;
        ssl_certificate_key {dir}/tls/{cert}.key;
        ssl_protocols {protocols};
        ssl_session_cache shared:{name}:1m;
        ssl_session_timeout 10m;
        add_header X-Connection $connection always;
        add_header X-Request-Method $request_method always;
        add_header X-TLS-Protocol $ssl_protocol always;
        add_header X-SSL-Session-Reused $ssl_session_reused always;
        add_header X-Connection-Requests $connection_requests always;
        add_header X-Server-Protocol $server_protocol always;
{extra}{locations}    }}
"""

NGINX_TLS_LOCATIONS = """\
        location = /small.txt {{ }}
        location = /big.bin {{ }}
        location = /echo {{
            client_body_buffer_size 16m;
            client_max_body_size 16m;
            echo_read_request_body;
            echo_request_body;
        }}
"""

# The "good" TLS server as a front that hands every request as it came
# to an HTTP/1.1 origin on 127.0.0.1 (Nginx(proxy_to=port)): the URI
# unparsed, the client's Host (from :authority over HTTP/2), every field
# (invalid names and underscores too), bodies and answers streamed, one
# keep-alive upstream pool. front.log has "$connection $http_x_nonce
# $server_protocol" per request.
NGINX_PROXY_LOCATIONS = """\
        ignore_invalid_headers off;
        underscores_in_headers on;
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header Connection "";
        proxy_read_timeout 120s;
        access_log {dir}/front.log hconn_front;
        location / {{
            proxy_pass http://hconn_front_origin;
        }}
"""

NGINX_PROXY_UPSTREAM = """
    log_format hconn_front '$connection $http_x_nonce $server_protocol';
    upstream hconn_front_origin {{
        server 127.0.0.1:{port};
        keepalive 32;
    }}
"""

# The server that asks for a client certificate: nginx completes the
# handshake either way and answers a missing or unverifiable one with an
# HTTP 400 ("No required SSL certificate was sent" / "The SSL certificate
# error"); X-Client-Verify is $ssl_client_verify (SUCCESS, FAILED:reason,
# NONE).
NGINX_MTLS_EXTRA = """\
        ssl_verify_client on;
        ssl_client_certificate {dir}/tls/client-ca.crt;
        add_header X-Client-Verify $ssl_client_verify always;
"""

# name: (certificate base name in tls/, ssl_protocols, extra directives).
# "good" is the server on Nginx.tls_port; the others exist with
# tls_variants=True, each on its own port (Nginx.<name>_tls_port).
NGINX_TLS_VARIANTS = {
    "good": ("server", "TLSv1.2 TLSv1.3", ""),
    "tls12": ("server", "TLSv1.2", ""),
    "expired": ("expired", "TLSv1.2 TLSv1.3", ""),
    "wrong_host": ("wrong-host", "TLSv1.2 TLSv1.3", ""),
    "self_signed": ("self-signed", "TLSv1.2 TLSv1.3", ""),
    "mtls": ("server", "TLSv1.2 TLSv1.3", NGINX_MTLS_EXTRA),
}

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

# A minimal `openssl ca` setup, used only for the expired certificate:
# OpenSSL 3.0's `x509 -req` and `req -x509` cannot set a start date in the
# past, `openssl ca -startdate/-enddate` can.
OPENSSL_CA_CONF = """\
[ca]
default_ca = test_ca

[test_ca]
database = cadb/index.txt
new_certs_dir = cadb
certificate = ca.crt
private_key = ca.key
serial = cadb/serial
default_md = sha256
policy = policy_any
unique_subject = no

[policy_any]
commonName = supplied

[server_ext]
subjectAltName = IP:127.0.0.1,IP:::1,DNS:localhost
extendedKeyUsage = serverAuth
basicConstraints = CA:FALSE
"""

SERVER_SAN = "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"


def make_certificates(directory):
    """Makes throwaway certificates in directory (P-256 keys; every
    certificate valid two days from now unless said otherwise; each .crt
    has its .key next to it) and returns directory:

      ca.crt           the test CA
      server.crt       for 127.0.0.1, ::1 and localhost, signed by ca
      expired.crt      the same names, signed by ca, valid only from
                       2020-01-01 to 2020-01-02 (made with `openssl ca`)
      wrong-host.crt   for DNS:wrong.example only, signed by ca
      self-signed.crt  for 127.0.0.1, ::1 and localhost, signed by itself
      other-ca.crt     a second CA; it signs only rogue-client.crt
      ca-dir/          ca.crt plus its `openssl rehash` links (a ca_path)
      other-ca-dir/    the same for other-ca.crt
      client-ca.crt    the CA the mTLS server trusts for client certificates
      client.crt       a client certificate (clientAuth) signed by client-ca
      rogue-client.crt a client certificate signed by other-ca, which the
                       mTLS server does not trust
    """
    os.makedirs(directory, exist_ok=True)

    def run(*args):
        r = subprocess.run([OPENSSL, *args], cwd=directory,
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n"
                               f"{r.stderr.decode(errors='replace')}")

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes"]
    for ca in ("ca", "other-ca", "client-ca"):
        run("req", "-x509", *key, "-keyout", f"{ca}.key", "-out",
            f"{ca}.crt", "-days", "2", "-subj", f"/CN=hconn test {ca}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *key, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(directory, "server.ext"), "w") as f:
        f.write(SERVER_SAN + "\n"
                "extendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey",
        "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2",
        "-extfile", "server.ext")

    # Leaf certificates in one step (`req -x509 -CA`, new in OpenSSL 3.0).
    def leaf(name, subject, ca, *exts):
        signer = ["-CA", f"{ca}.crt", "-CAkey", f"{ca}.key"] if ca else []
        ext_args = []
        for e in (*exts, "basicConstraints=CA:FALSE"):
            ext_args += ["-addext", e]
        run("req", "-x509", *key, "-keyout", f"{name}.key", "-out",
            f"{name}.crt", "-days", "2", "-subj", subject, *signer,
            *ext_args)

    leaf("wrong-host", "/CN=wrong.example", "ca",
         "subjectAltName=DNS:wrong.example", "extendedKeyUsage=serverAuth")
    leaf("self-signed", "/CN=localhost", None, SERVER_SAN,
         "extendedKeyUsage=serverAuth")
    leaf("client", "/CN=hconn test client", "client-ca",
         "extendedKeyUsage=clientAuth")
    leaf("rogue-client", "/CN=hconn rogue client", "other-ca",
         "extendedKeyUsage=clientAuth")

    os.makedirs(os.path.join(directory, "cadb"), exist_ok=True)
    with open(os.path.join(directory, "cadb", "index.txt"), "w"):
        pass
    with open(os.path.join(directory, "cadb", "serial"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(directory, "ca.cnf"), "w") as f:
        f.write(OPENSSL_CA_CONF)
    run("req", *key, "-keyout", "expired.key", "-out", "expired.csr",
        "-subj", "/CN=localhost")
    run("ca", "-batch", "-notext", "-config", "ca.cnf", "-extensions",
        "server_ext", "-in", "expired.csr", "-out", "expired.crt",
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")

    for ca in ("ca", "other-ca"):
        d = os.path.join(directory, f"{ca}-dir")
        os.makedirs(d, exist_ok=True)
        shutil.copyfile(os.path.join(directory, f"{ca}.crt"),
                        os.path.join(d, f"{ca}.crt"))
        run("rehash", d)
    return directory


class Peer:
    """A process the tests start: `with Peer() as p` starts it and stops it
    afterwards, also when start() itself fails half-way."""

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

    def stop(self):
        """Stops the process group and removes the temp dir."""
        kill_group(self.proc, signal.SIGTERM)
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def read_logs(self, *names):
        """The named log files of the temp dir, joined (missing: skipped)."""
        out = []
        for name in names:
            with contextlib.suppress(OSError):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    out.append(f.read())
        return "\n".join(out)


class Nginx(Peer):
    """An nginx origin on 127.0.0.1 with the test locations (see NGINX_CONF).

    with Nginx() as ng: ng.port, ng.url("/small.txt"), ng.root (docroot),
    ng.dir (the temp dir), ng.access_log_text().
    huge=True also writes www/huge.bin (100 MiB), its digest in ng.huge_sha256.
    tls=True adds a TLS server on ng.tls_port (ng.tls_url(path)) with a
    certificate for 127.0.0.1/localhost signed by ng.ca_file.
    tls_variants=True (implies tls) adds one TLS server per other entry of
    NGINX_TLS_VARIANTS, each on its own port: ng.tls12_tls_port (TLS 1.2
    only), ng.expired_tls_port, ng.wrong_host_tls_port,
    ng.self_signed_tls_port and ng.mtls_tls_port (requires a client
    certificate signed by ng.client_ca_file); ng.tls_ports maps every
    variant name ("good" too) to its port. The certificate files (see
    make_certificates) are attributes: ng.ca_file, ng.ca_path,
    ng.other_ca_file, ng.other_ca_path, ng.self_signed_cert_file,
    ng.client_cert_file / ng.client_key_file, ng.rogue_client_cert_file /
    ng.rogue_client_key_file; ng.tls_dir holds them all.
    listen: the loopback addresses every server listens on, on the same
    ports (default 127.0.0.1 only; "::1" for IPv6).
    http2=True (implies tls) makes the "good" TLS server offer HTTP/2 by
    ALPN (`listen ... ssl http2`); every TLS response carries
    X-Connection ($connection: which connection served it),
    X-Connection-Requests ($connection_requests) and X-Server-Protocol
    ($server_protocol: HTTP/2.0 or HTTP/1.1).
    keepalive_requests: nginx's keepalive_requests (requests per
    connection, HTTP/2 included: nginx sends GOAWAY after that many).
    http_extra / tls_extra: more directives for the http block / for the
    "good" TLS server (formatted with dir=the temp dir).
    proxy_to: a port on 127.0.0.1: the "good" TLS server has no locations
    of its own and proxies everything there as it came (see
    NGINX_PROXY_LOCATIONS); ng.front_log_text() is its log.
    """

    def __init__(self, huge=False, tls=False, tls_variants=False,
                 attempts=5, listen=(LOOPBACK,), http2=False,
                 keepalive_requests=10000, http_extra="", tls_extra="",
                 proxy_to=None):
        self.listen = tuple(listen)
        self.proxy_to = proxy_to
        self.http2 = http2
        self.keepalive_requests = keepalive_requests
        self.http_extra = http_extra
        self.tls_extra = tls_extra
        self.huge = huge
        self.tls = tls or tls_variants or http2 or proxy_to is not None
        self.tls_variants = tls_variants
        self.tls_port = None
        self.tls_ports = {}
        self.attempts = attempts
        self.proc = None
        self.dir = None
        self.port = None
        self.huge_sha256 = None

    def start(self):
        if not os.access(NGINX, os.X_OK):
            raise missing(f"nginx not found at {NGINX} "
                                    "(Debian: apt-get install nginx-light)")
        if not os.path.exists(NGINX_ECHO_MODULE):
            raise missing(
                f"nginx echo module missing: {NGINX_ECHO_MODULE} "
                "(Debian: apt-get install libnginx-mod-http-echo)")
        self.dir = tempfile.mkdtemp(prefix="hconn-nginx-")
        self.root = os.path.join(self.dir, "www")
        os.makedirs(os.path.join(self.root, "dav"))
        os.makedirs(os.path.join(self.dir, "tmp"))
        with open(os.path.join(self.root, "small.txt"), "wb") as f:
            f.write(SMALL_BODY)
        with open(os.path.join(self.root, "big.bin"), "wb") as f:
            f.write(big_bytes())
        if self.huge:
            self.huge_sha256 = write_huge_file(
                os.path.join(self.root, "huge.bin"))
        if self.tls:
            if not os.access(OPENSSL, os.X_OK):
                raise missing("openssl not found (Debian: "
                                        "apt-get install openssl)")
            self.tls_dir = make_certificates(os.path.join(self.dir, "tls"))

            def tls_file(name):
                return os.path.join(self.tls_dir, name)
            self.ca_file = tls_file("ca.crt")
            self.ca_path = tls_file("ca-dir")
            self.other_ca_file = tls_file("other-ca.crt")
            self.other_ca_path = tls_file("other-ca-dir")
            self.client_ca_file = tls_file("client-ca.crt")
            self.self_signed_cert_file = tls_file("self-signed.crt")
            self.client_cert_file = tls_file("client.crt")
            self.client_key_file = tls_file("client.key")
            self.rogue_client_cert_file = tls_file("rogue-client.crt")
            self.rogue_client_key_file = tls_file("rogue-client.key")
        last_log = ""
        for _ in range(self.attempts):
            names = []
            if self.tls:
                names = [n for n in NGINX_TLS_VARIANTS
                         if n == "good" or self.tls_variants]
            ports = set()
            while len(ports) < 1 + len(names):
                ports.add(free_port())
            self.port, *tls_ports = sorted(ports)
            self.tls_ports = dict(zip(names, tls_ports))
            tls_server = ""
            for name, port in self.tls_ports.items():
                cert, protocols, extra = NGINX_TLS_VARIANTS[name]
                good = name == "good"
                locations = NGINX_TLS_LOCATIONS.format()
                if good:
                    extra += self.tls_extra
                    if self.proxy_to is not None:
                        locations = NGINX_PROXY_LOCATIONS.format(dir=self.dir)
                tls_server += NGINX_TLS_SERVER.format(
                    dir=self.dir, tls_port=port, cert=cert,
                    protocols=protocols, name=f"hconn_{name}",
                    listen_extra=" http2" if good and self.http2 else "",
                    extra=extra.format(dir=self.dir), locations=locations)
                if name == "good":
                    self.tls_port = port
                else:
                    setattr(self, f"{name}_tls_port", port)
            conf = os.path.join(self.dir, "nginx.conf")
            text = NGINX_CONF.format(
                dir=self.dir, port=self.port, echo_module=NGINX_ECHO_MODULE,
                tls_server=tls_server,
                keepalive_requests=self.keepalive_requests,
                http_extra=self.http_extra.format(dir=self.dir) + (
                    NGINX_PROXY_UPSTREAM.format(port=self.proxy_to)
                    if self.proxy_to is not None else ""))
            # One listen line per address, IPv6 ones in brackets.
            text = re.sub(
                r"( *)listen 127\.0\.0\.1:(\d+)(.*)\n",
                lambda m: "".join(
                    f"{m[1]}listen {'[%s]' % a if ':' in a else a}:"
                    f"{m[2]}{m[3]}\n" for a in self.listen), text)
            with open(conf, "w") as f:
                f.write(text)
            errlog = open(os.path.join(self.dir, "stderr.log"), "wb")
            try:
                self.proc = subprocess.Popen(
                    [NGINX, "-p", self.dir, "-c", conf,
                     "-e", os.path.join(self.dir, "error.log")],
                    stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog,
                    start_new_session=True)
            finally:
                errlog.close()
            if all(wait_for_tcp(a, p, 10.0, self.proc)
                   for p in (self.port, *self.tls_ports.values())
                   for a in self.listen):
                return
            kill_group(self.proc)
            self.proc = None
            last_log = self._logs()
            if "Address already in use" not in last_log:
                break
        raise RuntimeError(f"nginx did not start:\n{tail(last_log)}")

    def _logs(self):
        return self.read_logs("stderr.log", "error.log")

    # Helpers ------------------------------------------------------------
    def url(self, path="/"):
        return f"http://{LOOPBACK}:{self.port}{path}"

    def tls_url(self, path="/", host=LOOPBACK, variant="good"):
        """An https URL of the TLS server named variant (see
        NGINX_TLS_VARIANTS)."""
        return f"https://{host}:{self.tls_ports[variant]}{path}"

    @property
    def hostport(self):
        return f"{LOOPBACK}:{self.port}"

    def access_log_text(self):
        with open(os.path.join(self.dir, "access.log"), errors="replace") as f:
            return f.read()

    def wait_access_log(self, text, count=1, since=0, timeout=5.0):
        """The access log from offset since, once that holds text at least
        count times (nginx logs a request just after sending its response),
        or as it is at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.access_log_text()[since:]
            if log.count(text) >= count or time.monotonic() > deadline:
                return log
            time.sleep(0.02)

    def error_log_text(self):
        return self._logs()

    def front_log_text(self):
        """The proxy_to front's log: "$connection $http_x_nonce
        $server_protocol" lines."""
        return self.read_logs("front.log")


# ---- tinyproxy --------------------------------------------------------------

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"

TINYPROXY_CONF = """\
Port {port}
Listen 127.0.0.1
Timeout 60
LogFile "{dir}/tinyproxy.log"
LogLevel Info
PidFile "{dir}/tinyproxy.pid"
MaxClients 100
Allow 127.0.0.1
DisableViaHeader Yes
{connect_ports}
{auth}
"""


class Tinyproxy(Peer):
    """A tinyproxy forward proxy on 127.0.0.1 that allows CONNECT only to
    the given ports, and with basic_auth=(user, password) only to clients
    that give those. with Tinyproxy([port]) as p: p.port, p.log_text()."""

    def __init__(self, connect_ports, attempts=5, basic_auth=None):
        self.connect_ports = list(connect_ports)
        self.basic_auth = basic_auth
        self.attempts = attempts
        self.proc = None
        self.dir = None

    def start(self):
        if not os.access(TINYPROXY, os.X_OK):
            raise missing("tinyproxy not installed (Debian: "
                                    "apt-get install tinyproxy)")
        self.dir = tempfile.mkdtemp(prefix="hconn-tinyproxy-")
        for _ in range(self.attempts):
            self.port = free_port()
            conf = os.path.join(self.dir, "tinyproxy.conf")
            with open(conf, "w") as f:
                f.write(TINYPROXY_CONF.format(
                    port=self.port, dir=self.dir,
                    connect_ports="\n".join(f"ConnectPort {p}"
                                            for p in self.connect_ports),
                    auth=("BasicAuth {} {}".format(*self.basic_auth)
                          if self.basic_auth else "")))
            out = open(os.path.join(self.dir, "stderr.log"), "wb")
            try:
                self.proc = subprocess.Popen(
                    [TINYPROXY, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                    stdout=out, stderr=out, start_new_session=True)
            finally:
                out.close()
            if wait_for_tcp(LOOPBACK, self.port, 10.0, self.proc):
                return
            kill_group(self.proc)
            self.proc = None
        raise RuntimeError(f"tinyproxy did not start:\n{tail(self.log_text())}")

    def log_text(self):
        return self.read_logs("stderr.log", "tinyproxy.log")


# ---- nghttpd ----------------------------------------------------------------

NGHTTPD = os.environ.get("HCONN_NGHTTPD") or shutil.which("nghttpd") or \
    "/usr/sbin/nghttpd"
NGHTTP = shutil.which("nghttp") or "/usr/bin/nghttp"


class Nghttpd(Peer):
    """nghttpd (nghttp2-server), an HTTP/2-only origin on 127.0.0.1, run
    with -v so its log shows every frame it received and sent.

    with Nghttpd() as h: h.port, h.url(path) (https://, or http:// with
    tls=False: h2c with prior knowledge only, no Upgrade), h.root (the
    docroot, holding small.txt and big.bin), h.ca_file (tls=True),
    h.log_text(), h.wait_log(text), h.requests() (the request header
    lists it received, in order).
    tls: TLS with ALPN h2 only (nghttpd offers nothing else), a server
    certificate for 127.0.0.1/localhost signed by h.ca_file; tls_dir
    reuses the certificates of make_certificates(tls_dir) instead of
    making new ones. args: more nghttpd options (--echo-upload,
    --trailer='x: y', -m N (max concurrent streams), -w N (stream window
    2**N-1), --early-response ...).
    """

    def __init__(self, tls=True, args=(), tls_dir=None, attempts=5):
        self.tls = tls
        self.args = list(args)
        self.tls_dir = tls_dir
        self.attempts = attempts
        self.proc = None
        self.dir = None
        self.port = None

    def start(self):
        if not os.access(NGHTTPD, os.X_OK):
            raise missing(f"nghttpd not found at {NGHTTPD} "
                          "(Debian: apt-get install nghttp2-server)")
        self.dir = tempfile.mkdtemp(prefix="hconn-nghttpd-")
        self.root = os.path.join(self.dir, "www")
        os.makedirs(self.root)
        with open(os.path.join(self.root, "small.txt"), "wb") as f:
            f.write(SMALL_BODY)
        with open(os.path.join(self.root, "big.bin"), "wb") as f:
            f.write(big_bytes())
        tls_args = ["--no-tls"]
        if self.tls:
            if self.tls_dir is None:
                self.tls_dir = make_certificates(
                    os.path.join(self.dir, "tls"))
            self.ca_file = os.path.join(self.tls_dir, "ca.crt")
            tls_args = [os.path.join(self.tls_dir, "server.key"),
                        os.path.join(self.tls_dir, "server.crt")]
        self.log_path = os.path.join(self.dir, "nghttpd.log")
        for _ in range(self.attempts):
            self.port = free_port()
            log = open(self.log_path, "wb")
            try:
                self.proc = subprocess.Popen(
                    [NGHTTPD, "-v", "-a", LOOPBACK, "-d", self.root,
                     *self.args, str(self.port), *tls_args],
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            finally:
                log.close()
            if wait_for_tcp(LOOPBACK, self.port, 10.0, self.proc):
                return
            kill_group(self.proc)
            self.proc = None
            if "Address already in use" not in self.log_text():
                break
        raise RuntimeError(f"nghttpd did not start:\n{tail(self.log_text())}")

    def url(self, path="/"):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}{path}"

    @property
    def hostport(self):
        return f"{LOOPBACK}:{self.port}"

    def log_text(self):
        return self.read_logs("nghttpd.log")

    def wait_log(self, text, count=1, timeout=10.0):
        """The log once it holds text count times, or as it is at the
        timeout."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if log.count(text) >= count or time.monotonic() > deadline:
                return log
            time.sleep(0.02)

    def requests(self):
        """The header blocks nghttpd received, in order (trailers are
        blocks of their own), as NghttpHeaders."""
        return parse_nghttp_log_headers(self.log_text())


class NghttpHeaders:
    """One header block from an nghttp/nghttpd -v log: .session (nghttpd's
    connection id, 0 for nghttp), .stream, .headers [(name, value)] in
    order, pseudo-headers included; header(name) is the first value."""

    def __init__(self, session, stream):
        self.session = session
        self.stream = stream
        self.headers = []

    def header(self, name):
        vals = [v for n, v in self.headers if n == name]
        return vals[0] if vals else None

    def __repr__(self):
        return f"<session {self.session} stream {self.stream} {self.headers}>"


def parse_nghttp_log_headers(text):
    """The received header blocks of an nghttpd (or nghttp) -v log, in
    order. -v prints each received field as a line
    "[id=C] [ t] recv (stream_id=S) name: value" before the HEADERS or
    CONTINUATION frame's own line; a frame line ends the block."""
    out = []
    current = None
    field = re.compile(r"^(?:\[id=(\d+)\] )?\[ *[0-9.]+\] recv "
                       r"\(stream_id=(\d+)\) (:?[^:]*): (.*)$")
    for line in text.splitlines():
        m = field.match(line)
        if m:
            session, stream = int(m[1] or 0), int(m[2])
            if current is None or (current.session, current.stream) != \
                    (session, stream):
                current = NghttpHeaders(session, stream)
                out.append(current)
            current.headers.append((m[3], m[4]))
        elif re.search(r"\] (recv|send) [A-Z_]+ frame <", line):
            current = None
    return out


# ---- hconnd -----------------------------------------------------------------

class Hconnd:
    """The real daemon on a temp socket: --socket DIR/hconnd.sock -vv.

    with Hconnd() as d: d.socket, d.pid, d.env (environ + HCONN_SOCKET),
    d.log_text(), d.peak_rss_kib(), d.sighup() (reload; returns the log
    line saying how it went), d.stop() (SIGTERM; asserts exit 0).
    """

    # The daemon's default proxies come from these; a test that wants one
    # passes it in env, nobody else inherits one from the caller.
    PROXY_VARS = ("http_proxy", "https_proxy", "HTTPS_PROXY", "no_proxy",
                  "NO_PROXY", "HTTP_PROXY", "all_proxy", "ALL_PROXY")

    def __init__(self, *extra_args, verbosity=2, timeout=10.0, env=None):
        self.extra_args = list(extra_args)
        self.daemon_env = {k: v for k, v in os.environ.items()
                           if k not in self.PROXY_VARS}
        self.daemon_env.update(env or {})
        self.verbosity = verbosity
        self.timeout = timeout
        self.proc = None
        self.dir = None
        self.returncode = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.print_log_tail(f"test failed: {exc_type.__name__}")
        self.cleanup()
        return False

    def start(self):
        if not os.access(HCONND, os.X_OK):
            raise missing(f"hconnd not built: {HCONND} is missing "
                                    f"(HCONN_BUILD_ROOT={BUILD_ROOT})")
        self.dir = tempfile.mkdtemp(prefix="hconnd-")
        self.socket = os.path.join(self.dir, "hconnd.sock")
        self.log_path = os.path.join(self.dir, "hconnd.log")
        args = [HCONND, "--socket", self.socket]
        if self.verbosity:
            args.append("-" + "v" * self.verbosity)
        args += self.extra_args
        self.args = args
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=self.daemon_env, start_new_session=True)
        finally:
            log.close()
        self.pid = self.proc.pid
        if not wait_for_unix(self.socket, self.timeout, self.proc):
            rc = self.proc.poll()
            raise RuntimeError(
                f"hconnd did not accept on {self.socket} within "
                f"{self.timeout}s (exit status {rc}); log:\n"
                f"{tail(self.log_text())}")
        self.env = dict(os.environ, HCONN_SOCKET=self.socket)

    def log_text(self):
        with contextlib.suppress(OSError):
            with open(self.log_path, errors="replace") as f:
                return f.read()
        return ""

    def print_log_tail(self, why, lines=80):
        if self.dir is None:
            return
        sys.stderr.write(f"\n---- hconnd log tail ({why}; {' '.join(self.args)}) ----\n")
        sys.stderr.write(tail(self.log_text(), lines) + "\n")
        sys.stderr.write("---- end of hconnd log ----\n")

    def sighup(self, timeout=10.0):
        """Sends SIGHUP and waits for the daemon to log its outcome;
        returns that log line ("SIGHUP: reloaded ..." or the refusal)."""
        before = self.log_text().count("SIGHUP:")
        os.kill(self.pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while self.log_text().count("SIGHUP:") == before:
            if time.monotonic() > deadline:
                raise AssertionError("hconnd logged no SIGHUP outcome")
            time.sleep(0.05)
        return [line for line in self.log_text().splitlines()
                if "SIGHUP:" in line][-1]

    def status_field(self, field):
        """A field of /proc/PID/status in kiB (VmHWM, VmRSS ...)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def peak_rss_kib(self):
        return self.status_field("VmHWM")

    def rss_kib(self):
        return self.status_field("VmRSS")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit status and asserts it is 0."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)
                self.returncode = self.proc.returncode
                self.proc = None
                raise AssertionError(
                    f"hconnd did not exit within {timeout}s of SIGTERM; "
                    f"log:\n{tail(self.log_text())}")
        self.returncode = self.proc.returncode
        kill_group(self.proc)  # reap any stray children of the group
        self.proc = None
        if self.returncode != 0:
            raise AssertionError(
                f"hconnd exited with status {self.returncode} after SIGTERM "
                f"(expected 0); log:\n{tail(self.log_text())}")
        return self.returncode

    def cleanup(self):
        """Kills whatever is left and removes the temp dir (no asserts)."""
        if self.proc is not None:
            kill_group(self.proc)
            self.returncode = self.proc.returncode
            self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# ---- The protocol client ----------------------------------------------------

class WireError(AssertionError):
    """The daemon broke the protocol's framing (fails the test)."""


class Wire:
    """A strict JSON-lines client for hconnd, for raw protocol tests.

    w = Wire(sock_path); w.send({"id": 1, "method": "GET", "url": u})
    head, body, last = w.read_response(1)

    Every read has a timeout (default 20 s): a daemon that stays silent
    fails the test instead of hanging it.
    """

    MAX_LINE = 1024 * 1024
    recv_size = 1 << 20     # bytes per recv(); a slow reader lowers it

    def __init__(self, path=None, timeout=20.0):
        self.sock = None
        self.buf = bytearray()
        self.timeout = timeout
        if path is not None:
            self.connect(path)

    def connect(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(path)
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # Sending ------------------------------------------------------------
    def send(self, obj, payload=b""):
        """Sends one message; with a payload, sets "data" to its length
        (unless obj already has "data") and sends the bytes after it."""
        if payload and "data" not in obj:
            obj = dict(obj, data=len(payload))
        line = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        self.sock.sendall(line + bytes(payload))

    def send_raw(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    # Receiving ----------------------------------------------------------
    def _fill(self):
        try:
            chunk = self.sock.recv(self.recv_size)
        except socket.timeout:
            raise WireError(f"no data from hconnd within {self.timeout}s "
                            f"(buffered: {bytes(self.buf[:200])!r})") from None
        return chunk

    def read_line(self):
        """One '\\n'-terminated line (without the '\\n'); None at EOF with
        nothing buffered; a WireError for EOF inside a line."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > self.MAX_LINE:
                raise WireError("daemon line longer than 1 MiB")
            chunk = self._fill()
            if not chunk:
                if self.buf:
                    raise WireError("EOF inside a line: "
                                    f"{bytes(self.buf[:200])!r}")
                return None
            self.buf += chunk

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self._fill()
            if not chunk:
                raise WireError(f"EOF after {len(self.buf)} of {n} "
                                "payload bytes")
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_all(self):
        """Everything until the daemon closes (raw mode)."""
        while True:
            chunk = self._fill()
            if not chunk:
                break
            self.buf += chunk
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_message(self):
        """The next message as a dict; a data frame's payload is in
        msg["_payload"]. None at a clean EOF."""
        line = self.read_line()
        if line is None:
            return None
        try:
            msg = json.loads(line)
        except ValueError as e:
            raise WireError(f"daemon sent a line that is not JSON ({e}): "
                            f"{line[:300]!r}") from None
        if not isinstance(msg, dict):
            raise WireError(f"daemon sent a non-object: {line[:300]!r}")
        if "data" in msg:
            n = msg["data"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise WireError(f"bad data length in {msg!r}")
            msg["_payload"] = self.read_exact(n)
        return msg

    def expect_eof(self):
        """Asserts the daemon closed the connection with nothing more."""
        line = self.read_line()
        if line is not None:
            raise WireError(f"expected EOF, got {line[:300]!r}")

    def read_response(self, rid, max_body=None):
        """Collects one request's frames: head, data frames, then an end
        frame or an error. Returns (head, body, last) where head is the head
        dict or None (error before a head), body the concatenated payload
        bytes (at most max_body of them, else the test fails; huge bodies
        go through read_response_stream), last the end or error dict.
        Fails on a frame for another id, a frame out of place, or EOF."""
        head = None
        body = bytearray()
        while True:
            msg = self.read_message()
            if msg is None:
                raise WireError(f"EOF while reading the response to id "
                                f"{rid!r} (head={head!r}, {len(body)} body "
                                "bytes)")
            if msg.get("id") != rid:
                raise WireError(f"frame for id {msg.get('id')!r} while "
                                f"reading id {rid!r}: {_brief(msg)}")
            if "error" in msg:
                return head, bytes(body), msg
            if "status" in msg:
                if head is not None:
                    raise WireError(f"second head for id {rid!r}: {msg!r}")
                head = msg
                continue
            if "continue" in msg:
                raise WireError(f"unexpected continue for id {rid!r}")
            if "data" in msg:
                if head is None:
                    raise WireError(f"data before head for id {rid!r}")
                extra = set(msg) - {"id", "data", "_payload"}
                if extra:
                    raise WireError(f"data frame with fields {extra}: {msg!r}")
                body += msg["_payload"]
                if max_body is not None and len(body) > max_body:
                    raise WireError(f"body for id {rid!r} exceeds {max_body}")
                continue
            if msg.get("end") is True:
                if head is None:
                    raise WireError(f"end before head for id {rid!r}")
                return head, bytes(body), msg
            raise WireError(f"unexpected frame for id {rid!r}: {msg!r}")

    def read_response_stream(self, rid, on_data, head=None):
        """Like read_response but hands each piece of the data payloads to
        on_data instead of keeping it; returns (head, nbytes, last). head:
        the head, when the caller already read it with read_message."""
        n = 0
        while True:
            line = self.read_line()
            if line is None:
                raise WireError(f"EOF while streaming id {rid!r} after "
                                f"{n} bytes")
            msg = json.loads(line)
            if msg.get("id") != rid:
                raise WireError(f"frame for id {msg.get('id')!r} while "
                                f"streaming id {rid!r}")
            if "error" in msg:
                return head, n, msg
            if "status" in msg:
                if head is not None:
                    raise WireError("second head")
                head = msg
            elif "data" in msg:
                if head is None:
                    raise WireError("data before head")
                length = msg["data"]
                while length:
                    if not self.buf:
                        chunk = self._fill()
                        if not chunk:
                            raise WireError("EOF inside a data payload")
                        self.buf += chunk
                    take = min(length, len(self.buf))
                    on_data(bytes(self.buf[:take]))
                    del self.buf[:take]
                    length -= take
                    n += take
            elif msg.get("end") is True:
                if head is None:
                    raise WireError("end before head")
                return head, n, msg
            else:
                raise WireError(f"unexpected frame: {msg!r}")

    def request(self, rid, method, url, payload=b"", **fields):
        """Sends one request and returns read_response(rid)."""
        obj = {"id": rid, "method": method, "url": url}
        obj.update(fields)
        self.send(obj, payload)
        return self.read_response(rid)


def _brief(msg):
    m = dict(msg)
    if "_payload" in m:
        m["_payload"] = f"<{len(m['_payload'])} bytes>"
    return repr(m)


def header_values(head, name):
    """All values of header name (case-insensitive) in a response head."""
    return [v for n, v in head["headers"] if n.lower() == name.lower()]


def header_value(head, name):
    """The single value of header name; asserts there is exactly one."""
    vals = header_values(head, name)
    if len(vals) != 1:
        raise AssertionError(f"expected one {name} header, got {vals!r} in "
                             f"{head.get('headers')!r}")
    return vals[0]


# ---- The fault origin -------------------------------------------------------

class OriginRequest:
    """One request as the origin received it."""

    def __init__(self, method, target, version, headers, body, conn_index):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers          # [(name, value)] in order, as bytes->str
        self.body = body
        self.conn_index = conn_index
        self.complete = False

    def header(self, name):
        vals = [v for n, v in self.headers if n.lower() == name.lower()]
        return vals[0] if vals else None

    def __repr__(self):
        return (f"<{self.method} {self.target} conn#{self.conn_index} "
                f"{len(self.body)} body bytes>")


class OriginConnection:
    """One accepted connection and what happened on it."""

    def __init__(self, index, peer):
        self.index = index
        self.peer = peer
        self.requests = []
        self.events = []        # ("request", target), ("drained", nbytes)
                                # after a close/keep_open step, ("eof",),
                                # ("exception", repr)
        self.closed = threading.Event()


class _PeerClosed(Exception):
    pass


class LoopbackServer:
    """What the scripted origins share: a listener on 127.0.0.1 (a free
    port), an accept thread running self._accept_loop, and a stop that
    wakes every connection thread. A subclass sets name, backlog and
    connection (the class recording one accepted connection), calls
    LoopbackServer.__init__, and serves each connection in
    _serve(sock, conn), on a thread of its own."""

    name = "server"
    backlog = 64
    connection = None

    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)  # over lock
        self.stopping = threading.Event()
        self.listener = None
        self.threads = []
        self.sockets = set()          # the accepted sockets
        self.connections = []         # self.connection records, in order
        self.requests = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(self.backlog)
        self.port = self.listener.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name=f"{self.name}-{self.port}")
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            socks = list(self.sockets)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in self.threads:
            t.join(timeout=5)

    def url(self, path="/"):
        return f"http://{LOOPBACK}:{self.port}{path}"

    @property
    def hostport(self):
        return f"{LOOPBACK}:{self.port}"

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                s, peer = self.listener.accept()
            except OSError:
                return
            with self.cond:
                conn = self.connection(len(self.connections), peer)
                self.connections.append(conn)
                self.sockets.add(s)
                self.cond.notify_all()
            t = threading.Thread(target=self._serve, args=(s, conn),
                                 daemon=True,
                                 name=f"{self.name}-conn-{conn.index}")
            t.start()
            self.threads.append(t)


class FaultOrigin(LoopbackServer):
    """A scripted origin on 127.0.0.1 (one thread per connection).

    scenarios: {path: [step, ...]}; path None is the default for paths not
    listed. When a connection's first request arrives (or a later one that
    a scenario did not consume itself), the origin looks up the scenario for
    its path and runs the steps:

      ("send", bytes)                 write the bytes
      ("drip", bytes, n, interval)    write n bytes at a time, sleeping
      ("sleep", seconds)
      ("wait", event)                 wait until the test sets event (a
                                      threading.Event)
      ("head_only",)                  (first step only) do not read the
                                      body of the request that selected the
                                      scenario yet (Expect: 100-continue)
      ("read_body",)                  read the body of the last request
      ("expect_request",)             read one more request on this
                                      connection and record it (no dispatch);
                                      a request at the head of a scenario is
                                      the one that selected it and is skipped
      ("close",)                      shutdown(SHUT_WR), drain, close
      ("reset",)                      SO_LINGER 0, close (sends RST)
      ("half_close",)                 shutdown(SHUT_WR), keep reading
      ("keep_open",)                  stop scripting; hold the connection
                                      open (reading and discarding) until the
                                      peer closes or the origin stops
      ("hold",)                       stop scripting; hold the connection
                                      open WITHOUT reading until the origin
                                      stops (a peer that never drains)
      ("stream", n[, piece])          write n body bytes, byte i = i % 251
                                      (big_bytes(n)), piece bytes a write

    When the steps end with the connection still open, the origin serves
    the next request on it (keep-alive). Unknown paths with no default get
    a 404 with Content-Length.

    Records: .connections (OriginConnection list, in accept order) and
    .requests (every OriginRequest, in arrival order); .sent[i] counts the
    bytes connection i's steps have written so far (send, drip, stream);
    a close/keep_open drain that meets a reset records ("reset",).
    """

    name = "fault-origin"
    connection = OriginConnection

    def __init__(self, scenarios=None):
        super().__init__()
        self.scenarios = dict(scenarios or {})
        self.errors = []
        self.sent = {}

    # Waiting for the record ---------------------------------------------
    def wait_for(self, predicate, timeout=10.0):
        """Waits until predicate() (called under the lock) is true."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_requests(self, n, timeout=10.0):
        return self.wait_for(lambda: len(self.requests) >= n, timeout)

    def wait_closed(self, timeout=10.0):
        """Waits until every accepted connection has ended."""
        deadline = time.monotonic() + timeout
        for c in list(self.connections):
            if not c.closed.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def _serve(self, s, conn):
        buf = bytearray()
        s.settimeout(30.0)
        try:
            while not self.stopping.is_set():
                req = self._read_request(s, buf, conn, read_body=False)
                if req is None:
                    return
                steps = self.scenarios.get(req.target.split("?")[0],
                                           self.scenarios.get(None))
                if steps is None:
                    steps = [("send", b"HTTP/1.1 404 Not Found\r\n"
                              b"Content-Length: 0\r\n\r\n")]
                if steps and steps[0][0] == "expect_request":
                    steps = steps[1:]
                if steps and steps[0][0] == "head_only":
                    steps = steps[1:]
                elif not self._read_body(s, buf, req):
                    return
                if not self._run(s, buf, conn, steps, req):
                    return
        except _PeerClosed:
            return
        except Exception as e:  # recorded; tests assert on the record
            with self.cond:
                self.errors.append(f"connection {conn.index}: {e!r}")
                conn.events.append(("exception", repr(e)))
                self.cond.notify_all()
        finally:
            with self.cond:
                self.sockets.discard(s)
                self.cond.notify_all()
            with contextlib.suppress(OSError):
                s.close()
            conn.closed.set()

    def _run(self, s, buf, conn, steps, req):
        """Runs steps; False when the connection is finished."""
        for step in steps:
            op = step[0]
            if op == "read_body":
                if not self._read_body(s, buf, req):
                    return False
                continue
            if op == "send":
                s.sendall(step[1])
                self._count_sent(conn, len(step[1]))
            elif op == "drip":
                data, n, interval = step[1], step[2], step[3]
                for i in range(0, len(data), n):
                    s.sendall(data[i:i + n])
                    self._count_sent(conn, len(data[i:i + n]))
                    time.sleep(interval)
            elif op == "stream":
                self._stream(s, conn, step[1],
                             step[2] if len(step) > 2 else 1 << 16)
            elif op == "hold":
                self.stopping.wait()
                return False
            elif op == "sleep":
                time.sleep(step[1])
            elif op == "wait":
                step[1].wait()
            elif op == "expect_request":
                req = self._read_request(s, buf, conn)
                if req is None:
                    return False
            elif op == "close":
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)
                self._drain(s, conn, 2.0)
                return False
            elif op == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))
                return False
            elif op == "half_close":
                s.shutdown(socket.SHUT_WR)
            elif op == "keep_open":
                self._drain(s, conn, None)
                return False
            else:
                raise ValueError(f"unknown fault-origin step {step!r}")
        return True

    def _drain(self, s, conn, timeout):
        """Reads and discards until EOF, stop, or timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        s.settimeout(0.2)
        while not self.stopping.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return
            try:
                data = s.recv(65536)
                with self.cond:
                    conn.events.append(("drained", len(data)) if data
                                       else ("eof",))
                    self.cond.notify_all()
                if not data:
                    return
            except socket.timeout:
                continue
            except ConnectionResetError:
                with self.cond:
                    conn.events.append(("reset",))
                    self.cond.notify_all()
                return
            except OSError:
                return

    def _count_sent(self, conn, n):
        with self.cond:
            self.sent[conn.index] = self.sent.get(conn.index, 0) + n
            self.cond.notify_all()

    def _stream(self, s, conn, n, piece):
        """Writes big_bytes(n) in writes of about piece bytes, counting
        each in .sent as it goes (a blocked write shows as a count that
        stops growing)."""
        piece = max(251, piece - piece % 251)   # keeps the pattern aligned
        block = big_bytes(piece)
        left = n
        while left > 0 and not self.stopping.is_set():
            chunk = block[:min(piece, left)]
            s.sendall(chunk)
            self._count_sent(conn, len(chunk))
            left -= len(chunk)

    def _recv_more(self, s, buf):
        while True:
            try:
                chunk = s.recv(65536)
                break
            except socket.timeout:
                if self.stopping.is_set():
                    raise _PeerClosed()
        if not chunk:
            raise _PeerClosed()
        buf += chunk

    def _read_request(self, s, buf, conn, read_body=True):
        """Reads one request (head, and its body unless read_body is
        False) into the record; None if the peer closed before a complete
        request (recorded as an "eof" event)."""
        try:
            while b"\r\n\r\n" not in buf:
                if len(buf) > 1 << 20:
                    raise ValueError("request head over 1 MiB")
                self._recv_more(s, buf)
            end = buf.index(b"\r\n\r\n")
            head = bytes(buf[:end]).decode("latin-1")
            del buf[:end + 4]
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                raise ValueError(f"bad request line {lines[0]!r}")
            method, target, version = parts
            headers = []
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise ValueError(f"bad header line {line!r}")
                headers.append((name, value.strip(" \t")))
            req = OriginRequest(method, target, version, headers, b"",
                                conn.index)
            # Recorded as soon as the head is in, so a test can see a
            # request whose body never completes.
            with self.cond:
                conn.requests.append(req)
                self.requests.append(req)
                conn.events.append(("request", target))
                self.cond.notify_all()
        except _PeerClosed:
            with self.cond:
                conn.events.append(("eof",))
                self.cond.notify_all()
            return None
        if read_body and not self._read_body(s, buf, req):
            return None
        return req

    def _read_body(self, s, buf, req):
        """Reads req's body (Content-Length or chunked) into req.body;
        False if the peer closed first."""
        conn = self.connections[req.conn_index]
        try:
            te = (req.header("Transfer-Encoding") or "").lower()
            cl = req.header("Content-Length")
            if te:
                if te != "chunked":
                    raise ValueError(f"transfer-encoding {te!r}")
                req.body = self._read_chunked(s, buf)
            elif cl is not None:
                n = int(cl)
                while len(buf) < n:
                    self._recv_more(s, buf)
                req.body = bytes(buf[:n])
                del buf[:n]
            with self.cond:
                req.complete = True
                self.cond.notify_all()
            return True
        except _PeerClosed:
            with self.cond:
                conn.events.append(("eof",))
                self.cond.notify_all()
            return False

    def _read_chunked(self, s, buf):
        body = bytearray()
        hexdigits = set(b"0123456789abcdefABCDEF")
        while True:
            while b"\r\n" not in buf:
                # Fail at once on a size line that cannot be one (a body
                # sent unchunked under Transfer-Encoding: chunked).
                size_part = bytes(buf).split(b";")[0].rstrip(b"\r")
                if len(size_part) > 16 or not set(size_part) <= hexdigits:
                    raise ValueError(f"bad chunk size line {bytes(buf[:40])!r}")
                self._recv_more(s, buf)
            i = buf.index(b"\r\n")
            size_part = bytes(buf[:i]).split(b";")[0]
            if not size_part or not set(size_part) <= hexdigits:
                raise ValueError(f"bad chunk size line {bytes(buf[:i])!r}")
            size = int(size_part, 16)
            del buf[:i + 2]
            if size == 0:
                # trailers until an empty line
                while True:
                    while b"\r\n" not in buf:
                        self._recv_more(s, buf)
                    j = buf.index(b"\r\n")
                    line = bytes(buf[:j])
                    del buf[:j + 2]
                    if not line:
                        return bytes(body)
            while len(buf) < size + 2:
                self._recv_more(s, buf)
            body += buf[:size]
            if buf[size:size + 2] != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
            del buf[:size + 2]


def http_response(status=200, body=b"", reason=None, headers=(),
                  length=True):
    """A response head + body as bytes (Content-Length unless length is
    False)."""
    reasons = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}
    reason = reason if reason is not None else reasons.get(status, "Status")
    out = [f"HTTP/1.1 {status} {reason}".encode()]
    for n, v in headers:
        out.append(f"{n}: {v}".encode())
    if length:
        out.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(out) + b"\r\n\r\n" + body


# ---- unittest glue ----------------------------------------------------------

def start_class_nginx(cls, **kw):
    """Starts an nginx for a whole TestCase class (from setUpClass),
    stopped at the class's cleanup; returns it."""
    ng = Nginx(**kw)
    cls.addClassCleanup(ng.stop)
    ng.start()
    return ng


class IntegrationTest(unittest.TestCase):
    """A TestCase with helpers that start peers and clean them up."""

    maxDiff = 4000

    def _failed(self):
        """Whether this test has recorded a failure or error so far (a skip
        is neither)."""
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return False
        return any(t is self or getattr(t, "test_case", None) is self
                   for t, _ in result.failures + result.errors)

    def start_nginx(self, **kw):
        ng = Nginx(**kw)
        self.addCleanup(ng.stop)
        ng.start()
        return ng

    def start_nghttpd(self, **kw):
        h = Nghttpd(**kw)
        self.addCleanup(h.stop)
        h.start()
        return h

    def start_daemon(self, *args, **kw):
        """Starts hconnd; at cleanup checks it exits 0 on SIGTERM and prints
        its log tail if the test failed."""
        d = Hconnd(*args, **kw)
        self.addCleanup(d.cleanup)
        d.start()

        def stop_and_report():
            try:
                if d.proc is not None:
                    d.stop()
            finally:
                if self._failed():
                    d.print_log_tail(f"{self.id()} failed")
        self.addCleanup(stop_and_report)
        return d

    def start_daemon_config(self, **keys):
        """Starts hconnd with a config file holding keys (its JSON
        object); the file is removed at cleanup."""
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(keys, f)
        self.addCleanup(os.unlink, path)
        return self.start_daemon("--config", path)

    def start_origin(self, scenarios):
        o = FaultOrigin(scenarios)
        self.addCleanup(o.stop)
        o.start()
        return o

    def wire(self, daemon, timeout=20.0):
        w = Wire(daemon.socket, timeout=timeout)
        self.addCleanup(w.close)
        return w

    def run_hconn(self, daemon, *args, input=None, timeout=60, env=None,
                  cwd=None):
        """Runs the hconn command against daemon; returns CompletedProcess
        with bytes stdout/stderr."""
        require_binary(self, HCONN, "hconn command")
        e = dict(daemon.env)
        if env:
            e.update(env)
        return subprocess.run([HCONN, *args], input=input,
                              capture_output=True, env=e, timeout=timeout,
                              cwd=cwd, start_new_session=True)

    def skipIfUnsupported(self, msg):
        """Skips the test when the daemon answered "unsupported": a feature
        the spec has but this hconnd build declares it does not do yet."""
        if isinstance(msg, dict) and msg.get("error") == "unsupported":
            self.skipTest(f"hconnd answers unsupported: {msg.get('message')}")

    def assertOkResponse(self, head, last, status=200):
        """Asserts a complete response with the given status."""
        self.assertIsNotNone(head, f"no head; got {last!r}")
        self.assertNotIn("error", last, f"error after head: {last!r}")
        self.assertEqual(head["status"], status, f"head: {head!r}")
        self.assertIs(last.get("end"), True, f"last frame: {last!r}")

    def assertError(self, msg, name, rid=None):
        """Asserts msg is an error reply named name (and for id rid)."""
        self.assertIsInstance(msg, dict)
        self.assertEqual(msg.get("error"), name, f"reply: {msg!r}")
        self.assertIsInstance(msg.get("message"), str, f"reply: {msg!r}")
        self.assertTrue(msg["message"], f"empty message: {msg!r}")
        if rid is not None:
            self.assertEqual(msg.get("id"), rid, f"reply: {msg!r}")


def main():
    """unittest.main, but exits 77 (meson's "skipped") when every test of
    the module was skipped, 1 on failure, 0 on success."""
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    if not r.wasSuccessful():
        sys.exit(1)
    if r.testsRun == 0 or len(r.skipped) == r.testsRun:
        sys.exit(77)
    sys.exit(0)
