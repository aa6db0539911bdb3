#!/usr/bin/env python3
"""Session integrity: what one client does with its own session can only
affect its own requests, and the daemon's own lifecycle never leaves a
client without an answer. Each test reproduces a way the daemon once went
wrong:

  raw bodies     a raw request's inline or streamed body reaches the origin
  departure      a client that closes fully ends its requests at once, even
                 while the daemon is not reading it; a half-close does not
  stray bytes    bytes after a complete response never become the next
                 client's response
  reused ids     a streamed body's frames reach only its own request, and a
                 retried expect_continue request gets one continue
  line limit     an end line over the protocol's limit fails that request
                 alone
  SIGTERM        in-flight uploads finish, the rest end with an error line,
                 and the exit opens nothing and leaks nothing
"""

import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_response  # noqa: E402

OK = [("send", http_response(200, b"ok\n"))]


def config_file(testcase, **keys):
    d = tempfile.mkdtemp(prefix="hconn-session-integrity-")
    testcase.addCleanup(shutil.rmtree, d, True)
    path = os.path.join(d, "hconnd.json")
    with open(path, "w") as f:
        json.dump(keys, f)
    return path


def stats(daemon):
    with harness.Wire(daemon.socket) as w:
        w.send({"op": "stats"})
        return w.read_message()


def busy_upstreams(daemon):
    return sum(o["busy"] + o["connecting"] + o["waiting"]
               for o in stats(daemon)["pool"]["origins"].values())


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class RawBodies(harness.IntegrationTest):
    """PROTOCOL.md 6: a raw request reads its body before it stops reading
    the client; the origin gets the body, not a head announcing one that
    never comes."""

    def setUp(self):
        self.origin = self.start_origin({None: OK})
        self.daemon = self.start_daemon("--config",
                                        config_file(self, read_timeout=5))

    def test_inline_body(self):
        w = self.wire(self.daemon)
        w.send({"method": "POST", "url": self.origin.url("/inline"),
                "raw": True}, b"hello")
        head = w.read_message()
        self.assertEqual(head.get("status"), 200, head)
        self.assertEqual(w.read_all(), b"ok\n")
        req = self.origin.requests[0]
        self.assertEqual((req.method, req.body), ("POST", b"hello"))

    def test_streamed_body(self):
        w = self.wire(self.daemon)
        w.send({"id": 1, "method": "PUT", "url": self.origin.url("/stream"),
                "body": "stream", "raw": True})
        w.send({"id": 1, "data": 3}, b"abc")
        w.send({"id": 1, "data": 2}, b"de")
        w.send({"id": 1, "end": True})
        head = w.read_message()
        self.assertEqual(head.get("status"), 200, head)
        self.assertEqual(w.read_all(), b"ok\n")
        self.assertEqual(self.origin.requests[0].body, b"abcde")

    def test_messages_after_the_raw_request_are_ignored(self):
        w = self.wire(self.daemon)
        w.send({"method": "POST", "url": self.origin.url("/first"),
                "raw": True}, b"xy")
        w.send({"method": "GET", "url": self.origin.url("/second")})
        w.send({"op": "hello"})
        self.assertEqual(w.read_message().get("status"), 200)
        self.assertEqual(w.read_all(), b"ok\n")
        time.sleep(0.3)
        self.assertEqual([r.target for r in self.origin.requests], ["/first"])


class ClientDeparture(harness.IntegrationTest):
    """A client that closes both directions has nobody to answer: its
    requests end at once and their upstream connections close, whatever the
    daemon was doing with its socket. read_timeout is long, so a daemon that
    waits for the origin instead fails the test."""

    def setUp(self):
        self.origin = self.start_origin({"/stall": [("keep_open",)],
                                         None: OK})
        self.daemon = self.start_daemon(
            "--config", config_file(self, read_timeout=60,
                                    shutdown_timeout=1))

    def assertOriginClosedPromptly(self):
        self.assertTrue(self.origin.wait_requests(1))
        conn = self.origin.connections[0]
        self.assertTrue(conn.closed.wait(5),
                        "upstream connection outlived its client")
        self.assertTrue(wait_until(lambda: busy_upstreams(self.daemon) == 0),
                        stats(self.daemon))

    def test_full_close_after_a_raw_request(self):
        # After a raw request the daemon reads nothing more from the client.
        w = harness.Wire(self.daemon.socket)
        w.send({"method": "GET", "url": self.origin.url("/stall"),
                "raw": True})
        self.assertTrue(self.origin.wait_requests(1))
        w.close()
        self.assertOriginClosedPromptly()

    def test_full_close_after_a_half_close(self):
        w = harness.Wire(self.daemon.socket)
        w.send({"id": 1, "method": "GET", "url": self.origin.url("/stall")})
        w.shutdown_write()
        self.assertTrue(self.origin.wait_requests(1))
        time.sleep(0.2)  # the daemon has seen the half-close
        self.assertFalse(self.origin.connections[0].closed.is_set(),
                         "a half-close ended the request")
        w.close()
        self.assertOriginClosedPromptly()

    def test_full_close_while_reading_is_paused(self):
        # A streamed body a window ahead of its upstream pauses reading.
        origin = self.start_origin({None: [("head_only",), ("hold",)]})
        w = harness.Wire(self.daemon.socket)
        w.send({"id": 1, "method": "PUT", "url": origin.url("/up"),
                "body": "stream"})
        chunk = b"x" * (1 << 20)
        w.sock.settimeout(2)
        try:
            for _ in range(64):
                w.send({"id": 1, "data": len(chunk)}, chunk)
        except (socket.timeout, BlockingIOError):
            pass  # the daemon stopped reading, as it should
        self.assertTrue(origin.wait_requests(1))
        self.assertEqual(busy_upstreams(self.daemon), 1)
        w.close()
        self.assertTrue(wait_until(lambda: busy_upstreams(self.daemon) == 0,
                                   timeout=5), stats(self.daemon))

    def test_half_close_still_gets_every_reply(self):
        w = self.wire(self.daemon)
        for i in (1, 2):
            w.send({"id": i, "method": "GET", "url": self.origin.url("/ok")})
        w.shutdown_write()
        for i in (1, 2):
            head, body, last = w.read_response(i)
            self.assertOkResponse(head, last)
        w.expect_eof()


class StrayBytes(harness.IntegrationTest):
    """Bytes an origin sends after a complete response (a body after HEAD
    or 204) belong to no request: the connection is closed, and the next
    client gets a fresh one and its own response."""

    def setUp(self):
        late = http_response(200, b"STRAY")
        self.origin = self.start_origin({
            # The stray response comes in the same write as the HEAD's.
            "/head-glued": [("sleep", 0.3),
                            ("send", http_response(200, b"", headers=[
                                ("Content-Length", "5")], length=False)
                             + late)],
            # ... or a moment later, while the connection is idle.
            "/head-late": [("send", http_response(
                200, b"", headers=[("Content-Length", "5")], length=False)),
                ("sleep", 0.3), ("send", late)],
            "/204-late": [("send", b"HTTP/1.1 204 No Content\r\n\r\n"),
                          ("sleep", 0.3), ("send", late)],
            None: [("send", http_response(200, b"mine"))],
        })
        self.daemon = self.start_daemon(
            "--config", config_file(self, pool_max_per_origin=1))

    def test_bytes_after_head_with_a_waiter_in_line(self):
        a, b = self.wire(self.daemon), self.wire(self.daemon)
        a.send({"id": 1, "method": "HEAD",
                "url": self.origin.url("/head-glued")})
        self.assertTrue(self.origin.wait_requests(1))
        b.send({"id": 2, "method": "GET", "url": self.origin.url("/b")})
        head, body, last = a.read_response(1)
        self.assertOkResponse(head, last)
        head, body, last = b.read_response(2)
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"mine")
        self.assertIs(head["reused"], False)

    def test_bytes_while_idle(self):
        for path, method in (("/head-late", "HEAD"), ("/204-late", "GET")):
            with self.subTest(path=path):
                a = self.wire(self.daemon)
                head, _, last = a.request(1, method, self.origin.url(path))
                self.assertOkResponse(head, last, head["status"])
                time.sleep(0.6)  # the stray bytes land on the idle connection
                b = self.wire(self.daemon)
                head, body, last = b.request(2, "GET", self.origin.url("/b"))
                self.assertOkResponse(head, last)
                self.assertEqual(body, b"mine")
                self.assertIs(head["reused"], False)


class TlsHousekeeping(harness.IntegrationTest):
    """Session tickets a TLS 1.3 server sends after the handshake are not
    stray bytes: a fresh connection that parks before they arrive stays in
    the pool."""

    def test_fresh_tls_connection_stays_idle_after_its_tickets(self):
        nginx = self.start_nginx(tls=True)
        d = self.start_daemon()
        w = harness.Wire(d.socket)
        # The client leaves at once; the connect goes on and the new
        # connection parks as soon as its handshake is done.
        w.send({"id": 1, "method": "GET", "url": nginx.tls_url("/small.txt"),
                "tls": {"ca_file": nginx.ca_file}})
        w.close()
        self.assertTrue(wait_until(lambda: stats(d)["pool"]["idle"] == 1))
        time.sleep(0.5)  # the tickets have come by now
        self.assertEqual(stats(d)["pool"]["idle"], 1, d.log_text()[-2000:])
        w = self.wire(d)
        head, _, last = w.request(2, "GET", nginx.tls_url("/small.txt"),
                                  tls={"ca_file": nginx.ca_file})
        self.assertOkResponse(head, last)
        self.assertEqual(stats(d)["reuse_misses"], 1, "a second connection")


class ReusedIds(harness.IntegrationTest):
    """Ids may repeat; a streamed body's frames still reach only its own
    request, and a client gets at most one continue per request."""

    def test_end_frame_of_a_refused_body_does_not_end_the_next(self):
        origin = self.start_origin({
            "/a": [("head_only",), ("send", http_response(
                417, b"", reason="Expectation Failed"))],
            None: [("send", http_response(200, b"b done"))],
        })
        d = self.start_daemon()
        w = self.wire(d)
        w.send({"id": 5, "method": "PUT", "url": origin.url("/a"),
                "body": "stream", "expect_continue": True})
        w.send({"id": 5, "method": "PUT", "url": origin.url("/b"),
                "body": "stream"})
        head, _, last = w.read_response(5)
        self.assertEqual(head["status"], 417)
        # PROTOCOL.md 5.4: the client ends A's refused body, then sends B's.
        w.send({"id": 5, "end": True})
        w.send({"id": 5, "data": 5}, b"hello")
        w.send({"id": 5, "end": True})
        head, body, last = w.read_response(5)
        self.assertOkResponse(head, last)
        b = [r for r in origin.requests if r.target == "/b"]
        self.assertEqual(len(b), 1)
        self.assertEqual(b[0].body, b"hello")

    def test_frames_of_a_failed_request_never_reach_a_later_one(self):
        origin = self.start_origin({None: [("send", http_response(200, b"ok"))]})
        d = self.start_daemon()
        w = self.wire(d)
        # A fails at once (its declared length is exceeded by a frame).
        w.send({"id": 7, "method": "PUT", "url": origin.url("/a"),
                "body": "stream", "length": 1})
        w.send({"id": 7, "data": 2}, b"AA")
        _, _, last = w.read_response(7)
        self.assertError(last, "body_length", 7)
        # B reuses the id while A's stray frames and end are under way.
        w.send({"id": 7, "method": "PUT", "url": origin.url("/b"),
                "body": "stream"})
        w.send({"id": 7, "data": 3}, b"AAA")
        w.send({"id": 7, "end": True})
        w.send({"id": 7, "data": 3}, b"BBB")
        w.send({"id": 7, "end": True})
        head, body, last = w.read_response(7)
        self.assertOkResponse(head, last)
        self.assertEqual([r.body for r in origin.requests
                          if r.target == "/b"], [b"BBB"])

    def test_one_continue_across_a_retry(self):
        # The origin holds the expect_continue request past expect_timeout
        # on the reused connection, then closes: the daemon retries on a
        # new connection, where the same happens.
        origin = self.start_origin({
            "/warm": OK,
            "/put": [("head_only",), ("sleep", 1.5), ("close",)],
        })
        d = self.start_daemon()
        w = self.wire(d)
        head, _, last = w.request(1, "GET", origin.url("/warm"))
        self.assertOkResponse(head, last)
        w.send({"id": 2, "method": "PUT", "url": origin.url("/put"),
                "expect_continue": True}, b"body")
        replies = []
        while True:
            msg = w.read_message()
            self.assertIsNotNone(msg)
            replies.append(msg)
            if "error" in msg or msg.get("end") is True:
                break
        self.assertGreaterEqual(len(origin.connections), 2,
                                "premise: the request was retried")
        self.assertEqual(sum(1 for m in replies if "continue" in m), 1,
                         replies)


class RecycledExchanges(harness.IntegrationTest):
    """The daemon reuses a finished request's memory for the next one
    (daemon/exchange.c keeps freed exchanges): nothing of one request may
    show in a later one, of the same client or another. Requests of every
    kind take turns, more of them than the daemon keeps spare."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls)

    def closed_port(self):
        s = socket.socket()
        s.bind((harness.LOOPBACK, 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def test_nothing_carries_over_to_the_next_request(self):
        d = self.start_daemon()
        first, second = self.wire(d), self.wire(d)
        echo = self.nginx.url("/echo")
        closed = f"http://{harness.LOOPBACK}:{self.closed_port()}/x"
        rid = 0
        for i in range(40):
            w = first if i % 2 == 0 else second
            payload = f"round {i}".encode()
            rid += 1
            head, body, last = w.request(rid, "POST", echo, payload)
            self.assertOkResponse(head, last)
            self.assertEqual(body, payload)
            # No body, no continue, the same URL: an echo of nothing.
            rid += 1
            head, body, last = w.request(rid, "GET", echo)
            self.assertOkResponse(head, last)
            self.assertEqual(body, b"")
            # Exactly one continue, then the echo of this body alone.
            rid += 1
            w.send({"id": rid, "method": "PUT", "url": echo,
                    "expect_continue": True}, payload * 2)
            msg = w.read_message()
            self.assertEqual(msg, {"id": rid, "continue": True})
            head, body, last = w.read_response(rid)
            self.assertOkResponse(head, last)
            self.assertEqual(body, payload * 2)
            # A failure, under its own id, leaves the session going.
            rid += 1
            head, body, last = w.request(rid, "GET", closed)
            self.assertIsNone(head)
            self.assertEqual(last.get("error"), "connect_failed", last)
            # An op reply slot between requests.
            w.send({"op": "stats", "id": f"s{i}"})
            msg = w.read_message()
            self.assertEqual((msg.get("op"), msg.get("id")),
                             ("stats", f"s{i}"), msg)
            # A streamed body ends at its own end frame.
            rid += 1
            w.send({"id": rid, "method": "POST", "url": echo,
                    "body": "stream"})
            w.send({"id": rid, "data": len(payload)}, payload)
            w.send({"id": rid, "end": True})
            head, body, last = w.read_response(rid)
            self.assertOkResponse(head, last)
            self.assertEqual(body, payload)
            self.assertIs(head["reused"], True)


class LineLimit(harness.IntegrationTest):
    """Trailers count against the 1 MiB reply line too; over it, that
    request fails and the client's next one is unaffected."""

    def test_oversize_trailers_fail_that_request_alone(self):
        trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"\x01" * 60000)
                            for i in range(20))
        origin = self.start_origin({
            "/big-trailers": [("send", b"HTTP/1.1 200 OK\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n"
                               b"2\r\nhi\r\n0\r\n" + trailers + b"\r\n")],
            None: OK,
        })
        d = self.start_daemon()
        w = self.wire(d)
        w.send({"id": 1, "method": "GET", "url": origin.url("/big-trailers")})
        w.send({"id": 2, "method": "GET", "url": origin.url("/next")})
        head, body, last = w.read_response(1)
        self.assertError(last, "line_too_long", 1)
        self.assertIn("trailers", last["message"])
        head, body, last = w.read_response(2)
        self.assertOkResponse(head, last)


class TunnelAnswerLineLimit(harness.IntegrationTest):
    """A proxy's refusal whose header fields would take the error line past
    the limit keeps its status and loses only its fields."""

    def test_oversize_proxy_answer_drops_its_fields(self):
        fields = b"".join(b"X-P%d: %s\r\n" % (i, b"\x01" * 60000)
                          for i in range(4))
        proxy = self.start_origin({None: [(
            "send", b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            + fields + b"Content-Length: 0\r\n\r\n")]})
        d = self.start_daemon()
        w = self.wire(d)
        w.send({"id": 1, "method": "GET", "url": "http://127.0.0.1:9/",
                "proxy": {"host": "127.0.0.1", "port": proxy.port}})
        w.send({"op": "hello", "id": 2})
        _, _, last = w.read_response(1)
        self.assertError(last, "tunnel_failed", 1)
        self.assertEqual(last.get("status"), 407)
        self.assertIs(last.get("headers_omitted"), True)
        self.assertNotIn("headers", last)
        self.assertEqual(w.read_message().get("op"), "hello")


class StatsLineLimit(harness.IntegrationTest):
    """The stats reply fits the line limit too, however many origins the
    pool holds: past it, the per-origin figures give way to their count."""

    def test_thousands_of_waiting_origins(self):
        origin = self.start_origin({None: [("keep_open",)]})
        d = self.start_daemon("--config", config_file(
            self, pool_max_total=1, max_requests_per_client=5000))
        w = self.wire(d)
        w.send({"id": 0, "method": "GET", "url": origin.url("/hold")})
        self.assertTrue(origin.wait_requests(1))
        n = 4000
        for i in range(1, n + 1):
            # Each TLS name is its own pool key; all wait for the one slot.
            w.send({"id": i, "method": "GET", "host": "127.0.0.1",
                    "port": origin.port,
                    "tls": {"server_name": f"{i:06d}." + "x" * 200}})
        self.assertTrue(wait_until(
            lambda: stats(d)["pool"].get("origins_omitted", 0) > n // 2,
            timeout=30), "per-origin figures kept past the line limit")
        with harness.Wire(d.socket) as s:
            s.sock.sendall(b'{"op":"stats"}\n')
            line = s.read_line()
        self.assertLessEqual(len(line) + 1, harness.Wire.MAX_LINE)
        self.assertEqual(json.loads(line)["pool"]["origins"], {})


class Sigterm(harness.IntegrationTest):
    """SIGTERM drains: uploads in flight are read to the end and answered;
    what is still running at shutdown_timeout ends with an error line; the
    exit starts no connection and frees everything (LSan checks the last
    part under tests/run.sh --sanitize)."""

    def test_upload_in_flight_finishes(self):
        origin = self.start_origin({None: [("send", http_response(201, b""))]})
        d = self.start_daemon("--config",
                              config_file(self, shutdown_timeout=20))
        w = self.wire(d)
        w.send({"id": 1, "method": "PUT", "url": origin.url("/up"),
                "body": "stream"})
        w.send({"id": 1, "data": 4}, b"part")
        self.assertTrue(wait_until(lambda: busy_upstreams(d) == 1))
        os.kill(d.pid, signal.SIGTERM)
        time.sleep(0.3)
        w.send({"id": 1, "data": 4}, b"-two")
        w.send({"id": 1, "end": True})
        head, _, last = w.read_response(1)
        self.assertOkResponse(head, last, 201)
        self.assertEqual(origin.requests[0].body, b"part-two")
        w.expect_eof()
        self.assertEqual(d.proc.wait(10), 0)

    def test_requests_still_running_get_an_error_line(self):
        origin = self.start_origin({None: [("keep_open",)]})
        d = self.start_daemon("--config",
                              config_file(self, shutdown_timeout=0.5,
                                          pool_max_per_origin=1))
        a, b = self.wire(d), self.wire(d)
        a.send({"id": 1, "method": "GET", "url": origin.url("/a")})
        self.assertTrue(origin.wait_requests(1))
        b.send({"id": 2, "method": "GET", "url": origin.url("/b")})
        self.assertTrue(wait_until(lambda: busy_upstreams(d) == 2))
        os.kill(d.pid, signal.SIGTERM)
        for w, rid in ((a, 1), (b, 2)):
            _, _, last = w.read_response(rid)
            self.assertError(last, "shutting_down", rid)
            w.expect_eof()
        self.assertEqual(d.proc.wait(10), 0)
        # Ending a's request freed its slot; b's waiter must not have
        # started a connection on the way out.
        self.assertEqual(len(origin.connections), 1)
        self.assertNotIn("still in use", d.log_text())

    def test_exit_with_a_tunnel_connect_pending(self):
        proxy = self.start_origin({None: [("keep_open",)]})  # never answers
        d = self.start_daemon("--config",
                              config_file(self, shutdown_timeout=0.5))
        w = self.wire(d)
        w.send({"id": 1, "method": "GET", "url": "http://127.0.0.1:9/",
                "proxy": {"host": "127.0.0.1", "port": proxy.port}})
        self.assertTrue(proxy.wait_requests(1))
        os.kill(d.pid, signal.SIGTERM)
        _, _, last = w.read_response(1)
        self.assertError(last, "shutting_down", 1)
        self.assertEqual(d.proc.wait(10), 0)
        self.assertNotIn("still in use", d.log_text())


if __name__ == "__main__":
    harness.main()
