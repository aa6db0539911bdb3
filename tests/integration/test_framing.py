#!/usr/bin/env python3
"""Request framing in a shared pool (issue 13, items 1-3): the daemon alone
frames request bodies, a client's framing and connection-management
headers are checked against what it frames, CONNECT is not a request
method, and a large held body is written out without reading past
evbuffer_peek's vectors.

The smuggling cases are the issue's reproductions: uid A (root, the raw
protocol) tries to leave bytes on the one pooled connection to an origin
(pool_max_per_origin: 1), and uid B (nobody, the hconn command through
setpriv) then asks the same origin for its own page with its own
Authorization. The scripted origin records exactly what it parsed, and
answers each path with a body naming it, so B can tell its own answer from
the attacker's."""

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import big_bytes, http_response  # noqa: E402

# What A would like the origin to read as the start of the next request.
SMUGGLED = b"GET /attacker HTTP/1.1\r\nX-Ignore: "
LAST_CHUNK_FIRST = b"0\r\n\r\n" + SMUGGLED
B_AUTH = "Bearer secret-of-uid-b"


def answer(path):
    """A keep-alive answer whose body names the path it answers."""
    return [("send", http_response(200, f"page {path}".encode()))]


class GatedOrigin(harness.FaultOrigin):
    """A FaultOrigin with one more step, ("wait", event): holds the
    response until the test sets the event (no timing in the test)."""

    def _run(self, s, buf, conn, steps, req):
        for i, step in enumerate(steps):
            if step[0] == "wait":
                step[1].wait(60)
                continue
            return super()._run(s, buf, conn, steps[i:], req)
        return True


class FramingTest(harness.IntegrationTest):

    def setUp(self):
        self.gate = threading.Event()
        self.addCleanup(self.gate.set)
        self.origin = GatedOrigin({
            "/victim": answer("/victim"),
            "/attacker": answer("/attacker"),
            "/smuggle": answer("/smuggle"),
            "/put": [("send", http_response(201, b"stored"))],
            "/hold": [("wait", self.gate)] + answer("/hold"),
            "/refuse": [("head_only",),
                        ("send", http_response(417, b"no",
                                               reason="Expectation Failed"))],
            None: answer("other"),
        })
        self.addCleanup(self.origin.stop)
        self.origin.start()
        self.daemon = self.start_daemon("--config",
                                        self.config(pool_max_per_origin=1))

    def config(self, **keys):
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(keys, f)
        self.addCleanup(os.unlink, path)
        return path

    # Helpers -------------------------------------------------------------
    def targets(self):
        with self.origin.lock:
            return [r.target for r in self.origin.requests]

    def assertNothingSent(self, what):
        self.assertEqual(self.origin.connections, [],
                         f"{what}: the origin saw a connection")

    def victim_request(self):
        """B's request, as another uid (nobody through setpriv, the way
        test_policy.py runs clients): it must get its own answer."""
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            self.skipTest("needs root and setpriv to run a client as nobody")
        harness.require_binary(self, harness.HCONN, "hconn command")
        pwd.getpwnam("nobody")
        os.chmod(self.daemon.dir, 0o755)   # the socket's directory
        before = len(self.origin.requests)
        r = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             os.path.abspath(harness.HCONN), "-H",
             f"Authorization: {B_AUTH}",
             self.origin.url("/victim")],
            capture_output=True, env=self.daemon.env, timeout=60, cwd="/",
            start_new_session=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"page /victim",
                         f"uid B got another request's answer; the origin "
                         f"parsed {self.targets()}")
        with self.origin.lock:
            # A refused stream's head may reach the origin (cut off, never
            # completed) while B runs: only complete requests are B's.
            mine = [q for q in self.origin.requests[before:]
                    if q.complete or q.method != "PUT"]
        self.assertEqual([(q.method, q.target) for q in mine],
                         [("GET", "/victim")])
        self.assertEqual(mine[0].header("Authorization"), B_AUTH)
        self.assertEqual(mine[0].body, b"")
        self.assertTrue(self.daemon.alive())

    def assertRefused(self, msg, payload, field, error="invalid_header"):
        """Sends A's request; it must fail with error naming field, and the
        origin must see nothing of it."""
        w = self.wire(self.daemon)
        w.send(dict(msg, id=1), payload)
        head, body, last = w.read_response(1)
        self.assertIsNone(head, last)
        self.assertEqual(last.get("error"), error, last)
        self.assertIn(field, last["message"])
        self.assertNothingSent(f"{msg} {field}")
        return last


class Smuggling(FramingTest):
    """The four smuggling variants of the issue, each followed by uid B."""

    def test_content_length_zero_with_a_body(self):
        last = self.assertRefused(
            {"method": "GET", "url": self.origin.url("/smuggle"),
             "headers": [["Content-Length", "0"]]}, SMUGGLED,
            '"Content-Length"')
        self.assertIn("0 differs from the body's 34 bytes", last["message"])
        self.victim_request()

    def test_transfer_encoding_with_a_body_starting_with_the_last_chunk(self):
        # Transfer-Encoding: chunked asks the daemon to chunk the body; the
        # bytes are data, so the origin gets them all as the body.
        w = self.wire(self.daemon)
        head, body, last = w.request(
            1, "POST", self.origin.url("/smuggle"), LAST_CHUNK_FIRST,
            headers=[["Transfer-Encoding", "chunked"]])
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(body, b"page /smuggle")
        with self.origin.lock:
            (req,) = self.origin.requests
        self.assertEqual(req.header("Transfer-Encoding"), "chunked")
        self.assertIsNone(req.header("Content-Length"))
        self.assertEqual(req.body, LAST_CHUNK_FIRST)
        self.victim_request()
        self.assertNotIn("/attacker", self.targets())

    def test_stream_with_length_and_transfer_encoding(self):
        w = self.wire(self.daemon)
        w.send({"id": 1, "method": "POST", "url": self.origin.url("/smuggle"),
                "headers": [["Transfer-Encoding", "chunked"]],
                "body": "stream", "length": len(LAST_CHUNK_FIRST)})
        w.send({"id": 1, "data": len(LAST_CHUNK_FIRST)}, LAST_CHUNK_FIRST)
        w.send({"id": 1, "end": True})
        head, body, last = w.read_response(1)
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(body, b"page /smuggle")
        with self.origin.lock:
            (req,) = self.origin.requests
        self.assertEqual(req.body, LAST_CHUNK_FIRST)
        self.victim_request()
        self.assertNotIn("/attacker", self.targets())

    def test_content_length_larger_than_the_data(self):
        last = self.assertRefused(
            {"method": "POST", "url": self.origin.url("/smuggle"),
             "headers": [["Content-Length", "1000"]], "timeout": 3},
            b"x" * 10, '"Content-Length"')
        self.assertIn("1000 differs from the body's 10 bytes", last["message"])
        self.victim_request()

    def test_stream_with_content_length_keeps_to_it(self):
        # A streamed body whose length the client's Content-Length gives:
        # one byte more is refused before it reaches the origin.
        w = self.wire(self.daemon)
        w.send({"id": 1, "method": "PUT", "url": self.origin.url("/smuggle"),
                "headers": [["Content-Length", "4"]], "body": "stream",
                "timeout": 3})
        w.send({"id": 1, "data": 5}, b"abcde")
        head, body, last = w.read_response(1)
        self.assertEqual(last.get("error"), "body_length", last)
        with self.origin.lock:
            bodies = [r.body for r in self.origin.requests]
        self.assertNotIn(b"abcde", bodies)
        self.victim_request()

    def test_expect_header_holds_the_body_back(self):
        # A client's own Expect: 100-continue is taken as expect_continue:
        # the body waits, and after a 417 it is never sent, so the origin
        # cannot read it as the next request.
        w = self.wire(self.daemon)
        head, body, last = w.request(
            1, "POST", self.origin.url("/refuse"), SMUGGLED,
            headers=[["Expect", "100-continue"]])
        self.assertEqual(head and head["status"], 417, last)
        self.victim_request()
        self.assertNotIn("/attacker", self.targets())
        self.assertEqual(len(self.origin.connections), 2,
                         "the connection that had a body announced and "
                         "refused was pooled")


class ConnectionHeaders(FramingTest):
    """The connection-management table of PROTOCOL.md 3.1."""

    REFUSED = [
        ([["Connection", "close, Upgrade"], ["Upgrade", "websocket"]],
         '"Connection": "Upgrade" is not allowed'),
        ([["Connection", "Content-Length"]], '"Connection"'),
        ([["Upgrade", "h2c"]], '"Upgrade" is not allowed'),
        ([["HTTP2-Settings", "AAMAAABkAAQAAP__"]], '"HTTP2-Settings"'),
        ([["Keep-Alive", "timeout=600"]], '"Keep-Alive" is not allowed'),
        ([["Proxy-Connection", "keep-alive"]], '"Proxy-Connection"'),
        ([["Trailer", "X-Sum"]], '"Trailer" is not allowed'),
        ([["TE", "gzip"]], '"TE": "gzip" is not allowed'),
        ([["Expect", "100-continue"]], '"Expect": 100-continue on a request '
                                       'without a body'),
        ([["Host", "a.example"], ["Host", "b.example"]],
         '"Host" given twice'),
        ([["Content-Length", "0"], ["Content-Length", "0"]],
         '"Content-Length" given twice'),
        ([["Content-Length", "5"]], "on a request without a body"),
        ([["Transfer-Encoding", "chunked"]],
         '"Transfer-Encoding" on a request without a body'),
    ]

    def test_refused_fields_send_nothing(self):
        w = self.wire(self.daemon)
        for i, (headers, message) in enumerate(self.REFUSED, 1):
            with self.subTest(headers=headers):
                w.send({"id": i, "method": "GET", "headers": headers,
                        "url": self.origin.url("/victim")})
                head, body, last = w.read_response(i)
                self.assertIsNone(head, last)
                self.assertEqual(last.get("error"), "invalid_header", last)
                self.assertIn(message, last["message"])
        self.assertNothingSent("refused fields")
        self.victim_request()

    def test_close_in_a_second_connection_field_is_honoured(self):
        # The origin closes after a request that said close in any of its
        # Connection fields; the daemon must not lease that connection
        # again, even when the origin's answer does not say close.
        w = self.wire(self.daemon)
        head, body, last = w.request(
            1, "GET", self.origin.url("/victim"),
            headers=[["Connection", "keep-alive"], ["Connection", "close"]])
        self.assertEqual(head and head["status"], 200, last)
        head, body, last = w.request(2, "GET", self.origin.url("/victim"))
        self.assertEqual(head and head["status"], 200, last)
        self.assertIs(head["reused"], False)
        self.assertEqual(len(self.origin.connections), 2)

    def test_transfer_encoding_other_than_chunked(self):
        self.assertRefused(
            {"method": "POST", "url": self.origin.url("/smuggle"),
             "headers": [["Transfer-Encoding", "gzip, chunked"]]}, b"abc",
            '"Transfer-Encoding": "gzip, chunked" is not allowed')

    def test_allowed_fields_go_through(self):
        w = self.wire(self.daemon)
        headers = [["Connection", "keep-alive"], ["TE", "trailers"],
                   ["Content-Length", "3"], ["Host", "example.test"]]
        head, body, last = w.request(1, "PUT", self.origin.url("/put"),
                                     b"abc", headers=headers)
        self.assertEqual(head and head["status"], 201, last)
        with self.origin.lock:
            (req,) = self.origin.requests
        for name, value in headers:
            self.assertEqual(req.header(name), value)
        self.assertEqual(req.body, b"abc")
        # Content-Length: 0 on a request without a body is no framing.
        head, body, last = w.request(2, "GET", self.origin.url("/victim"),
                                     headers=[["Content-Length", "0"]])
        self.assertEqual(head and head["status"], 200, last)


class Connect(FramingTest):
    """CONNECT is the "proxy" field's job, never a request method."""

    def test_connect_method_is_refused(self):
        for i, method in enumerate(["CONNECT", "connect"], 1):
            with self.subTest(method=method):
                last = self.assertRefused(
                    {"method": method, "host": harness.LOOPBACK,
                     "port": self.origin.port, "target": "127.0.0.1:22"},
                    b"", "tunnels are the \"proxy\" field's job",
                    error="invalid_url")
                self.assertIn(method, last["message"])
        self.victim_request()

    def test_absolute_form_target_stays(self):
        target = f"http://{self.origin.hostport}/victim"
        w = self.wire(self.daemon)
        w.send({"id": 1, "method": "GET", "host": harness.LOOPBACK,
                "port": self.origin.port, "target": target})
        head, body, last = w.read_response(1)
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(self.targets(), [target])


class HeldBody(FramingTest):
    """Item 1: a 2 MB inline PUT held whole while the only connection is
    busy was written out through evbuffer_peek with 16 vectors, trusting
    its return value (the extents needed) and reading past the array:
    hconnd crashed for every user."""

    SIZE = 2_000_000

    def test_large_held_body_after_a_busy_connection(self):
        a = self.wire(self.daemon)
        a.send({"id": 1, "method": "GET", "url": self.origin.url("/hold")})
        self.assertTrue(self.origin.wait_requests(1), "A's GET never came")
        body = big_bytes(self.SIZE)
        b = self.wire(self.daemon)
        sender = threading.Thread(
            target=b.send, args=({"id": 1, "method": "PUT",
                                  "url": self.origin.url("/put")}, body),
            daemon=True)
        sender.start()
        # The body is in the daemon's hands (or its socket buffer) before
        # the connection frees up: it is held in many buffer chains.
        sender.join(60)
        self.assertFalse(sender.is_alive(), "the daemon stopped reading")
        self.gate.set()
        head, _, last = a.read_response(1)
        self.assertEqual(head and head["status"], 200, last)
        head, reply, last = b.read_response(1)
        self.assertEqual(head and head["status"], 201, last)
        self.assertEqual(reply, b"stored")
        with self.origin.lock:
            put = [r for r in self.origin.requests if r.method == "PUT"]
        self.assertEqual(len(put), 1)
        self.assertEqual(put[0].header("Content-Length"), str(self.SIZE))
        self.assertEqual(hashlib.sha256(put[0].body).hexdigest(),
                         hashlib.sha256(body).hexdigest())
        self.assertTrue(self.daemon.alive())
        self.victim_request()


class AgainstNginx(harness.IntegrationTest):
    """The same rules against a real server: nginx decodes what the daemon
    frames, and the pooled connection stays in step for the next client."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls)

    def setUp(self):
        self.daemon = self.start_daemon()

    def next_request_is_in_step(self, w, rid):
        head, body, last = w.request(rid, "GET",
                                     self.nginx.url("/small.txt"))
        self.assertEqual(head and head["status"], 200, last)
        self.assertIs(head["reused"], True)
        self.assertEqual(body, harness.SMALL_BODY)

    def test_client_transfer_encoding_is_chunked_by_the_daemon(self):
        w = self.wire(self.daemon)
        head, body, last = w.request(
            1, "POST", self.nginx.url("/echo"), LAST_CHUNK_FIRST,
            headers=[["Transfer-Encoding", "chunked"]])
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(body, LAST_CHUNK_FIRST)
        self.next_request_is_in_step(w, 2)

    def test_streamed_body_with_length_and_transfer_encoding(self):
        data = big_bytes(300_000)
        w = self.wire(self.daemon)
        w.send({"id": 1, "method": "POST", "url": self.nginx.url("/echo"),
                "headers": [["Transfer-Encoding", "chunked"]],
                "body": "stream", "length": len(data)})
        for i in range(0, len(data), 70_000):
            piece = data[i:i + 70_000]
            w.send({"id": 1, "data": len(piece)}, piece)
        w.send({"id": 1, "end": True})   # the last chunk goes with it
        head, body, last = w.read_response(1)
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(body, data)
        self.next_request_is_in_step(w, 2)

    def test_mismatched_content_length_never_reaches_nginx(self):
        w = self.wire(self.daemon)
        before = self.nginx.access_log_text()
        w.send({"id": 1, "method": "POST", "url": self.nginx.url("/echo"),
                "headers": [["Content-Length", "2"]]}, b"abc")
        head, body, last = w.read_response(1)
        self.assertEqual(last.get("error"), "invalid_header", last)
        self.assertEqual(self.nginx.access_log_text(), before)


if __name__ == "__main__":
    harness.main()
