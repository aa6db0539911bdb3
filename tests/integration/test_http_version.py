#!/usr/bin/env python3
"""The clients' HTTP version choice (issue 18): `hconn --http1.1 / --http2
/ --http2-prior-knowledge`, libhconn's hconn_set_http_version() (run by
version-check) and hconn.client's http_version= keyword.

Each client runs against a scripted daemon that records every request
message it receives and answers with a head of version 20 when the
request asked for "2" (11 otherwise), so the tests see exactly which
"http_version" went out and what a client makes of an HTTP/2 head,
whatever the real daemon does yet. test_http2_faults.py and
test_http2_hostile.py cover the daemon's side.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PYTHONPATH = os.environ.get("HCONN_PYTHONPATH") or os.path.join(
    harness.SOURCE_ROOT, "client-lib", "python")
sys.path.insert(0, PYTHONPATH)
from hconn import client as hclient  # noqa: E402

VERSION_CHECK = os.environ.get("HCONN_VERSION_CHECK") or os.path.join(
    harness.BUILD_ROOT, "client-lib", "version-check")

BODY = b"hello h2\n"


class RecordingDaemon:
    """A Unix socket speaking just enough of the protocol: every request
    message (inline bodies read and dropped) is recorded in .requests as
    (connection index, message) and answered with a head, one data frame
    of BODY and an end. The head's version is 20 when the request's
    http_version is "2", else 11; "reason" is empty for 20, as HTTP/2 has
    none."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hconn-fake-")
        self.socket = os.path.join(self.dir, "fake.sock")
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.socket)
        self.srv.listen(8)
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        self.env = dict(os.environ, HCONN_SOCKET=self.socket)

    def close(self):
        with self.lock:
            srv, self.srv = self.srv, None
        if srv is not None:
            srv.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except (OSError, AttributeError):
                return
            with self.lock:
                index = self.connections
                self.connections += 1
            t = threading.Thread(target=self._serve, args=(c, index),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, c, index):
        buf = bytearray()
        c.settimeout(30)
        with c:
            while True:
                while b"\n" not in buf:
                    try:
                        chunk = c.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                i = buf.index(b"\n")
                msg = json.loads(bytes(buf[:i]))
                del buf[:i + 1]
                n = msg.get("data", 0) if isinstance(msg, dict) else 0
                while len(buf) < n:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                del buf[:n]
                if "method" not in msg:
                    continue        # a data or end frame of a body
                with self.lock:
                    self.requests.append((index, msg))
                rid = msg["id"]
                v2 = msg.get("http_version") == "2"
                head = {"id": rid, "status": 200, "reason": "" if v2 else "OK",
                        "version": 20 if v2 else 11,
                        "headers": [["content-length", str(len(BODY))]],
                        "length": len(BODY), "reused": False}
                out = json.dumps(head).encode() + b"\n"
                out += json.dumps({"id": rid, "data": len(BODY)}).encode() \
                    + b"\n" + BODY
                out += json.dumps({"id": rid, "end": True}).encode() + b"\n"
                c.sendall(out)

    def versions(self):
        """The http_version field of each request received (None when
        absent), in order."""
        with self.lock:
            return [m.get("http_version") for _, m in self.requests]


class VersionTest(unittest.TestCase):

    def setUp(self):
        self.fake = RecordingDaemon()
        self.addCleanup(self.fake.close)

    def hconn(self, *args):
        harness.require_binary(self, harness.HCONN, "hconn command")
        return subprocess.run([harness.HCONN, *args], capture_output=True,
                              env=self.fake.env, timeout=60,
                              start_new_session=True)


class CommandLine(VersionTest):

    def test_options_send_the_version(self):
        cases = [((), None), (("--http1.1",), "1.1"), (("--http2",), "2"),
                 (("--http2-prior-knowledge",), "2"),
                 # The last one given wins, as in curl.
                 (("--http2", "--http1.1"), "1.1")]
        for args, want in cases:
            with self.subTest(args=args):
                before = len(self.fake.versions())
                r = self.hconn(*args, "http://127.0.0.1:8/x")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, BODY)
                self.assertEqual(self.fake.versions()[before:], [want])

    def test_https_url_carries_it_too(self):
        r = self.hconn("--http2", "https://127.0.0.1:8/x")
        self.assertEqual(r.returncode, 0, r.stderr)
        (_, msg), = self.fake.requests
        self.assertEqual(msg.get("http_version"), "2")
        self.assertTrue(msg.get("tls"), msg)

    def test_include_shows_an_http2_status_line(self):
        # curl -i prints "HTTP/2 200" for an HTTP/2 response.
        r = self.hconn("--http2", "-i", "http://127.0.0.1:8/x")
        self.assertEqual(r.returncode, 0, r.stderr)
        first = r.stdout.split(b"\r\n", 1)[0]
        self.assertEqual(first.rstrip(), b"HTTP/2 200")
        r = self.hconn("--http1.1", "-i", "http://127.0.0.1:8/x")
        self.assertTrue(r.stdout.startswith(b"HTTP/1.1 200 OK\r\n"),
                        r.stdout[:80])

    def test_help_lists_the_options(self):
        r = self.hconn("--help")
        for opt in (b"--http1.1", b"--http2", b"--http2-prior-knowledge"):
            self.assertIn(opt, r.stdout)


class Library(VersionTest):

    def test_set_http_version(self):
        if not os.access(VERSION_CHECK, os.X_OK):
            raise harness.missing(f"version-check not built: {VERSION_CHECK}")
        r = subprocess.run([VERSION_CHECK, "127.0.0.1:8"],
                           capture_output=True, env=self.fake.env,
                           timeout=60, start_new_session=True)
        out = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertNotIn("not ok", out)
        # Refused values changed nothing: auto (no field), then 1.1, 2.
        self.assertEqual(self.fake.versions(), [None, "1.1", "2"])
        self.assertEqual(
            [line for line in out.splitlines()
             if line.startswith("version ")],
            [f"version 11 status 200 body {len(BODY)}",
             f"version 11 status 200 body {len(BODY)}",
             f"version 20 status 200 body {len(BODY)}"])
        # One connection to the daemon for all three.
        self.assertEqual({i for i, _ in self.fake.requests}, {0})


class Python(VersionTest):

    def conn(self, cls=hclient.HTTPConnection, **kw):
        c = cls("127.0.0.1", 8, socket_path=self.fake.socket, **kw)
        self.addCleanup(c.close)
        return c

    def test_keyword_sends_the_field(self):
        for value, want in ((None, None), ("auto", None), ("1.1", "1.1"),
                            ("2", "2")):
            with self.subTest(http_version=value):
                before = len(self.fake.versions())
                c = self.conn(http_version=value)
                c.request("GET", "/")
                r = c.getresponse()
                self.assertEqual(r.read(), BODY)
                self.assertEqual(r.version, 20 if want == "2" else 11)
                self.assertEqual(self.fake.versions()[before:], [want])

    def test_https_connection_takes_it(self):
        c = self.conn(hclient.HTTPSConnection, http_version="2")
        c.request("GET", "/")
        self.assertEqual(c.getresponse().read(), BODY)
        self.assertEqual(self.fake.versions(), ["2"])

    def test_bad_values_are_refused(self):
        for value in ("2.0", "h2", 2, 20, "", "HTTP/2"):
            with self.subTest(http_version=value):
                with self.assertRaises(ValueError):
                    hclient.HTTPConnection("127.0.0.1", 8,
                                           http_version=value)
        with self.assertRaises(TypeError):      # keyword-only
            hclient.HTTPConnection("127.0.0.1", 8, None, None, 8192, None,
                                   "2")

    def test_http2_response_keeps_the_daemon_connection(self):
        # An HTTP/2 head has no Connection field and may have no length;
        # http.client's HTTP/1.0 rules would call that will_close and
        # drop the channel to hconnd after each response.
        c = self.conn(http_version="2")
        for _ in range(3):
            c.request("GET", "/")
            r = c.getresponse()
            self.assertFalse(r.will_close)
            self.assertEqual(r.read(), BODY)
        self.assertEqual(self.fake.connections, 1)
        self.assertEqual(len(self.fake.requests), 3)


class ThroughHconnd(harness.IntegrationTest):
    """The same options through the real hconnd, to nginx with HTTP/2 on
    its TLS listener and to nghttpd (h2c)."""

    @classmethod
    def setUpClass(cls):
        import h2_origin
        why = h2_origin.h2_daemon_missing()
        if why:
            raise unittest.SkipTest(why)
        cls.ng = harness.start_class_nginx(cls, http2=True)

    def setUp(self):
        self.daemon = self.start_daemon()

    def test_cli_chooses_the_protocol_nginx_speaks(self):
        url = self.ng.tls_url("/small.txt")
        for args, proto in (((), "HTTP/2.0"), (("--http2",), "HTTP/2.0"),
                            (("--http1.1",), "HTTP/1.1")):
            with self.subTest(args=args):
                r = self.run_hconn(self.daemon, *args, "-i", "--cacert",
                                   self.ng.ca_file, url)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(f"X-Server-Protocol: {proto}".lower().encode(),
                              r.stdout.lower())
                self.assertTrue(r.stdout.endswith(harness.SMALL_BODY))
                status = r.stdout.split(b"\r\n", 1)[0]
                self.assertTrue(status.startswith(
                    b"HTTP/2 200" if proto == "HTTP/2.0" else
                    b"HTTP/1.1 200"), status)

    def test_cli_http2_prior_knowledge_to_nghttpd(self):
        h = harness.Nghttpd(tls=False)
        self.addCleanup(h.stop)
        h.start()
        r = self.run_hconn(self.daemon, "--http2-prior-knowledge",
                           h.url("/small.txt"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.SMALL_BODY)
        # Without it, plain http is HTTP/1.1, which nghttpd does not
        # speak: an error, never a garbled body.
        r = self.run_hconn(self.daemon, h.url("/small.txt"))
        self.assertNotEqual(r.returncode, 0)

    def test_library_and_python_get_version_20(self):
        h = harness.Nghttpd(tls=False)
        self.addCleanup(h.stop)
        h.start()
        c = hclient.HTTPConnection("127.0.0.1", h.port,
                                   socket_path=self.daemon.socket,
                                   http_version="2")
        self.addCleanup(c.close)
        c.request("GET", "/small.txt")
        r = c.getresponse()
        self.assertEqual(r.version, 20)
        self.assertEqual(r.read(), harness.SMALL_BODY)
        if os.access(VERSION_CHECK, os.X_OK):
            # version-check's auto and 1.1 requests fail against an
            # HTTP/2-only server; its HTTP/2 one (GET /, a 404 from
            # nghttpd) gets version 20.
            out = subprocess.run([VERSION_CHECK, h.hostport],
                                 capture_output=True, env=self.daemon.env,
                                 timeout=60).stdout.decode()
            self.assertIn("version 20 status 404", out)


if __name__ == "__main__":
    harness.main()
