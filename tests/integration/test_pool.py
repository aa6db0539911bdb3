#!/usr/bin/env python3
"""The connection pool: keep-alive reuse across client processes and
sessions, pipelining, the retry of an idempotent request on a reused
connection, no retry for POST, and idle connections closed by the origin."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (CHUNKED_BODY, HEADERS_BODY, SMALL_BODY, big_bytes,  # noqa: E402
                     header_value, http_response)

HERE = os.path.dirname(os.path.abspath(__file__))

# A separate process that asks for one URL over the protocol and prints the
# response head as JSON (the head only: the body is checked in-process).
WIRE_GET_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import harness
w = harness.Wire(sys.argv[2])
head, body, last = w.request(1, "GET", sys.argv[3])
print(json.dumps({"head": head, "body": body.decode("latin-1"),
                  "last": last}))
"""


def parse_i_headers(out):
    """Header pairs of `hconn -i` output."""
    sep = out.index(b"\r\n\r\n")
    lines = out[:sep].decode("latin-1").split("\r\n")[1:]
    return [(n, v.strip()) for n, _, v in (l.partition(":") for l in lines)]


class PoolWithNginx(harness.IntegrationTest):
    """One nginx for the class; a fresh daemon (empty pool) for each test.
    nginx's $connection (X-Connection) names the TCP connection used."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls)

    def setUp(self):
        self.daemon = self.start_daemon()

    def wire_get_in_subprocess(self, url):
        r = subprocess.run(
            [sys.executable, "-c", WIRE_GET_SCRIPT, HERE, self.daemon.socket,
             url], capture_output=True, timeout=60, start_new_session=True)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return json.loads(r.stdout)

    def test_second_client_process_reuses_the_first_ones_connection(self):
        url = self.nginx.url("/small.txt")
        first = self.wire_get_in_subprocess(url)
        second = self.wire_get_in_subprocess(url)
        for r in (first, second):
            self.assertEqual(r["head"]["status"], 200)
            self.assertEqual(r["body"], SMALL_BODY.decode())
            self.assertEqual(r["last"].get("end"), True, r["last"])
        self.assertIs(first["head"]["reused"], False)
        self.assertIs(second["head"]["reused"], True)
        self.assertEqual(header_value(second["head"], "X-Connection"),
                         header_value(first["head"], "X-Connection"))

    def test_two_hconn_commands_share_one_upstream_connection(self):
        harness.require_binary(self, harness.HCONN, "hconn command")
        url = self.nginx.url("/headers")
        conns = []
        notes = []
        for _ in range(2):
            r = self.run_hconn(self.daemon, "-v", "-i", url)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.endswith(b"\r\n\r\n" + HEADERS_BODY),
                            r.stdout)
            conns.append([v for n, v in parse_i_headers(r.stdout)
                          if n == "X-Connection"])
            notes.append([l for l in r.stderr.decode().splitlines()
                          if l.startswith("* ")])
        self.assertEqual(len(conns[0]), 1, conns)
        self.assertEqual(conns[0], conns[1])
        self.assertEqual(notes, [["* new connection"],
                                 ["* reused pooled connection"]])

    def test_two_sequential_sessions_reuse_the_connection(self):
        heads = []
        for _ in range(2):
            with harness.Wire(self.daemon.socket) as w:
                head, body, end = w.request(1, "GET",
                                            self.nginx.url("/small.txt"))
                self.assertOkResponse(head, end)
                self.assertEqual(body, SMALL_BODY)
                heads.append(head)
        self.assertEqual([h["reused"] for h in heads], [False, True])
        self.assertEqual(header_value(heads[1], "X-Connection"),
                         header_value(heads[0], "X-Connection"))

    def test_sequential_requests_in_one_session_reuse_the_connection(self):
        w = self.wire(self.daemon)
        conns = set()
        for i in range(1, 6):
            head, body, end = w.request(i, "GET", self.nginx.url("/small.txt"))
            self.assertOkResponse(head, end)
            self.assertEqual(body, SMALL_BODY)
            self.assertIs(head["reused"], i > 1)
            conns.add(header_value(head, "X-Connection"))
        self.assertEqual(len(conns), 1, conns)

    def test_fifty_pipelined_requests_come_back_in_order(self):
        w = self.wire(self.daemon, timeout=60)
        paths = {"/small.txt": SMALL_BODY, "/chunked": CHUNKED_BODY,
                 "/headers": HEADERS_BODY, "/big.bin": big_bytes()}
        order = [list(paths)[i % len(paths)] for i in range(50)]
        log_mark = len(self.nginx.access_log_text())
        batch = b"".join(
            json.dumps({"id": i, "method": "GET",
                        "url": self.nginx.url(p)}).encode() + b"\n"
            for i, p in enumerate(order, start=1))
        w.send_raw(batch)
        for i, p in enumerate(order, start=1):
            head, body, end = w.read_response(i)
            self.assertOkResponse(head, end)
            self.assertEqual(header_value(head, "X-Request-Method"), "GET")
            self.assertEqual(body, paths[p], f"body of id {i} ({p})")
        log = self.nginx.wait_access_log('" 200 ', count=50, since=log_mark)
        for p in paths:
            self.assertEqual(log.count(f'"GET {p} HTTP/1.1" 200'),
                             order.count(p), p)

    def test_pipelined_post_bodies_stay_with_their_requests(self):
        w = self.wire(self.daemon, timeout=60)
        bodies = [bytes([i]) * (i * 1000 + 1) for i in range(1, 11)]
        for i, b in enumerate(bodies, start=1):
            w.send({"id": i, "method": "POST", "url": self.nginx.url("/echo")},
                   b)
        for i, b in enumerate(bodies, start=1):
            head, body, end = w.read_response(i)
            self.assertOkResponse(head, end)
            self.assertEqual(body, b, f"id {i}")


class RetryOnAReusedConnection(harness.IntegrationTest):
    """The fault origin answers the first request on a connection with a
    keep-alive 200, then reads the next request and closes without a byte
    of response: the daemon sees a reused connection fail before any
    response byte."""

    OK = http_response(200, b"fresh", headers=[("X-Origin", "fault")])

    def setUp(self):
        self.origin = self.start_origin({
            None: [("send", self.OK), ("expect_request",), ("close",)],
        })
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)

    def test_get_is_retried_once_on_a_fresh_connection(self):
        url = self.origin.url("/idem")
        head, body, end = self.w.request(1, "GET", url)
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"fresh")
        self.assertIs(head["reused"], False)
        head, body, end = self.w.request(2, "GET", url)
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"fresh")
        self.assertEqual(len(self.origin.connections), 2)
        self.assertEqual(
            [[r.method for r in c.requests] for c in self.origin.connections],
            [["GET", "GET"], ["GET"]])

    def test_post_is_not_retried_and_fails_with_remote_disconnected(self):
        url = self.origin.url("/post")
        head, body, end = self.w.request(1, "GET", url)
        self.assertOkResponse(head, end)
        head, body, err = self.w.request(2, "POST", url, payload=b"once only")
        self.assertIsNone(head, f"POST got a head: {head!r}")
        self.assertError(err, "remote_disconnected", rid=2)
        self.assertTrue(self.origin.wait_closed())
        self.assertEqual(len(self.origin.connections), 1,
                         "the POST was sent again on a new connection")
        posts = [r for r in self.origin.requests if r.method == "POST"]
        self.assertEqual(len(posts), 1)
        self.assertEqual(posts[0].body, b"once only")
        # The session goes on: the next GET opens a fresh connection.
        head, body, end = self.w.request(3, "GET", url)
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"fresh")
        self.assertEqual(len(self.origin.connections), 2)

    def test_fresh_connection_failure_is_not_retried(self):
        # A connection that has never served a response closes at once:
        # the daemon must not retry (the failure is not about staleness).
        origin = self.start_origin({None: [("close",)]})
        head, body, err = self.w.request(1, "GET", origin.url("/x"))
        self.assertIsNone(head)
        self.assertError(err, "remote_disconnected", rid=1)
        self.assertTrue(origin.wait_closed())
        self.assertEqual(len(origin.connections), 1)


class IdleConnectionClosedByTheOrigin(harness.IntegrationTest):
    """An idle pooled connection that the origin closes is dropped from the
    pool at once: the next request goes on a new connection and nothing is
    written to the dead one."""

    def test_next_request_opens_a_new_connection(self):
        origin = self.start_origin({
            None: [("send", http_response(200, b"one")), ("sleep", 0.2),
                   ("close",)],
        })
        daemon = self.start_daemon()
        w = self.wire(daemon)
        head, body, end = w.request(1, "GET", origin.url("/a"))
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"one")
        # Wait until the origin has closed and seen the daemon close too.
        self.assertTrue(origin.connections[0].closed.wait(10))
        head, body, end = w.request(2, "GET", origin.url("/a"))
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"one")
        self.assertIs(head["reused"], False)
        self.assertEqual(len(origin.connections), 2)
        self.assertEqual(len(origin.connections[0].requests), 1)
        self.assertNotIn("drained", [e[0] for e in origin.connections[0].events],
                         "the daemon wrote to a connection the origin closed")
        self.assertIn(("eof",), origin.connections[0].events,
                      "the daemon did not close its end of the dead connection")


if __name__ == "__main__":
    harness.main()
