#!/usr/bin/env python3
"""Draining: a client that leaves while its HTTP/1.1 response is still
coming no longer costs the pool its warm connection. The daemon reads the
rest of the response into nowhere (within drain_max_bytes and
drain_timeout) and pools the connection when the response ended cleanly;
the next client, of another uid, gets its own response on it. Everything
else (over the limit, an origin that never finishes, a framing fault, bytes
after the response) closes the connection, and nobody ever sees a byte of
the drained response. Plain and TLS (nginx in front of the scripted
origin); the stats reply counts drained and drain_closed."""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import other_user  # noqa: E402
from harness import header_value, http_response  # noqa: E402

H200 = b"HTTP/1.1 200 OK\r\n"
NEXT_BODY = b"the next client's own answer\n"
SMALL = 2000  # a small body, well under drain_max_bytes
FAKE = http_response(200, b"EVIL FAKE RESPONSE\n")


def length_head(n):
    return H200 + b"Content-Length: %d\r\n\r\n" % n


def chunked_head():
    return H200 + b"Transfer-Encoding: chunked\r\n\r\n"


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


# Paths of the scripted origin. "a" bytes are the departing client's body.
SCENARIOS = {
    # The head comes 300 ms after the request: its client is gone by then.
    "/slow-head": [("sleep", 0.3), ("send", http_response(200, b"a" * SMALL))],
    # Half the body, a pause (the client leaves in it), the rest.
    "/mid-body": [("send", length_head(SMALL) + b"a" * (SMALL // 2)),
                  ("sleep", 0.3), ("send", b"a" * (SMALL // 2))],
    "/mid-chunked": [("send", chunked_head() + chunk(b"a" * 1000)),
                     ("sleep", 0.3),
                     ("send", chunk(b"a" * 1000) + b"0\r\n\r\n")],
    # 1 MiB announced: far more left than drain_max_bytes.
    "/over-cap": [("send", length_head(1 << 20) + b"a" * 1000),
                  ("keep_open",)],
    # Chunks of unknown total that run past drain_max_bytes.
    "/over-cap-chunked": [("send", chunked_head() + chunk(b"a" * 1000)),
                          ("sleep", 0.3)]
                         + [("send", chunk(b"a" * 16384))] * 8
                         + [("send", b"0\r\n\r\n")],
    # Part of the body, then silence.
    "/never": [("send", length_head(SMALL) + b"a" * 100), ("keep_open",)],
    # Content-Length longer than what comes, then the origin closes.
    "/short": [("send", length_head(SMALL) + b"a" * 100), ("sleep", 0.3),
               ("send", b"a" * 100), ("close",)],
    # A chunk size that is not hex.
    "/bad-chunk": [("send", chunked_head() + chunk(b"a" * 100)),
                   ("sleep", 0.3), ("send", b"zz\r\nEVIL\r\n0\r\n\r\n"),
                   ("keep_open",)],
    # The rest of the response, and a fake second one in the same write.
    "/desync": [("send", length_head(SMALL) + b"a" * 100), ("sleep", 0.3),
                ("send", b"a" * (SMALL - 100) + FAKE), ("keep_open",)],
    # ... and in a later write, once the connection could be idle.
    "/desync-late": [("send", length_head(SMALL) + b"a" * 100),
                     ("sleep", 0.3), ("send", b"a" * (SMALL - 100)),
                     ("sleep", 0.3), ("send", FAKE), ("keep_open",)],
    # Connection: close from the origin: never reusable.
    "/close-delimited": [("send", H200 + b"Connection: close\r\n\r\n"
                          + b"a" * 100), ("sleep", 0.3),
                         ("send", b"a" * 100), ("close",)],
    "/next": [("send", http_response(200, NEXT_BODY))],
}


def stats(daemon):
    with harness.Wire(daemon.socket) as w:
        w.send({"op": "stats"})
        return w.read_message()


class DrainTest(harness.IntegrationTest):
    """One daemon and one scripted origin per test; subclasses set the
    config and how URLs are reached."""

    CONFIG = {"drain_timeout": 5}

    def setUp(self):
        conf_dir = tempfile.mkdtemp(prefix="hconn-drain-")
        self.addCleanup(shutil.rmtree, conf_dir, True)
        conf = os.path.join(conf_dir, "hconnd.json")
        with open(conf, "w") as f:
            json.dump(dict({"shutdown_timeout": 2}, **self.CONFIG), f)
        self.origin = self.start_origin(SCENARIOS)
        self.daemon = self.start_daemon("--config", conf)
        self.fields = {}

    def url(self, path):
        return self.origin.url(path)

    def counters(self):
        pool = stats(self.daemon)["pool"]
        return pool["drained"], pool["drain_closed"]

    def wait_counters(self, drained, closed, timeout=15.0):
        """Waits until the stats reply shows these counts; asserts them."""
        deadline = time.monotonic() + timeout
        got = self.counters()
        while got != (drained, closed) and time.monotonic() < deadline:
            time.sleep(0.05)
            got = self.counters()
        self.assertEqual(got, (drained, closed),
                         "pool (drained, drain_closed) in the stats reply")

    def leave_before_head(self, path):
        """A client asks for path and leaves once the origin has the
        request, before any reply."""
        w = harness.Wire(self.daemon.socket)
        n = len(self.origin.requests)
        w.send(dict({"id": 1, "method": "GET", "url": self.url(path)},
                    **self.fields))
        self.assertTrue(self.origin.wait_requests(n + 1))
        w.close()

    def leave_mid_body(self, path):
        """A client reads path's head and a first data frame, then leaves.
        Returns the head."""
        w = harness.Wire(self.daemon.socket)
        w.send(dict({"id": 1, "method": "GET", "url": self.url(path)},
                    **self.fields))
        head = w.read_message()
        self.assertEqual(head.get("status"), 200, head)
        frame = w.read_message()
        self.assertGreater(frame.get("data", 0), 0, frame)
        w.close()
        return head

    def next_request(self, as_other_user=True):
        """Another client (uid nobody when the tests run as root) asks for
        /next; asserts it gets exactly its own response. Returns the
        head."""
        if as_other_user and os.geteuid() == 0:
            uid, gid = other_user.ids()
            w = other_user.wire_as(self, self.daemon, uid, gid)
        else:
            w = self.wire(self.daemon)
        head, body, last = w.request(
            2, "GET", self.url("/next"), **self.fields)
        self.assertOkResponse(head, last)
        self.assertEqual(body, NEXT_BODY)
        w.close()
        return head

    def assertOriginSawClose(self, index):
        conn = self.origin.connections[index]
        self.assertTrue(conn.closed.wait(15),
                        f"connection {index} still open: {conn.events!r}")

    def assertServedOn(self, index, reused):
        """The last request reached the origin on connection index."""
        self.assertEqual(self.origin.requests[-1].target, "/next")
        self.assertEqual(self.origin.requests[-1].conn_index, index,
                         [(r.target, r.conn_index)
                          for r in self.origin.requests])


class PlainDrain(DrainTest):
    """Over plain TCP to the scripted origin."""

    def test_leaving_before_a_slow_head_keeps_the_connection(self):
        self.leave_before_head("/slow-head")
        self.wait_counters(1, 0)
        head = self.next_request()
        self.assertIs(head["reused"], True, head)
        self.assertServedOn(0, True)
        self.assertEqual(len(self.origin.connections), 1)

    def test_leaving_mid_body_keeps_the_connection(self):
        self.leave_mid_body("/mid-body")
        self.wait_counters(1, 0)
        head = self.next_request()
        self.assertIs(head["reused"], True, head)
        self.assertServedOn(0, True)

    def test_leaving_mid_chunked_body_keeps_the_connection(self):
        self.leave_mid_body("/mid-chunked")
        self.wait_counters(1, 0)
        head = self.next_request()
        self.assertIs(head["reused"], True, head)
        self.assertServedOn(0, True)

    def test_a_drained_connection_serves_many_more(self):
        for i in range(3):
            self.leave_mid_body("/mid-body")
            self.wait_counters(i + 1, 0)
        self.next_request()
        self.assertEqual(len(self.origin.connections), 1)

    def assertClosedNotReused(self, closed=1):
        self.wait_counters(0, closed)
        self.assertOriginSawClose(0)
        head = self.next_request()
        self.assertIs(head["reused"], False, head)
        self.assertServedOn(1, False)

    def test_over_the_cap_closes(self):
        self.leave_mid_body("/over-cap")
        self.assertClosedNotReused()

    def test_chunks_past_the_cap_close(self):
        self.leave_mid_body("/over-cap-chunked")
        self.assertClosedNotReused()

    def test_short_body_then_close_is_never_pooled(self):
        self.leave_mid_body("/short")
        self.assertClosedNotReused()

    def test_bad_chunk_is_never_pooled(self):
        self.leave_mid_body("/bad-chunk")
        self.assertClosedNotReused()

    def test_close_delimited_body_closes(self):
        self.leave_mid_body("/close-delimited")
        self.assertClosedNotReused()

    def test_fake_response_after_the_drained_one_is_never_seen(self):
        self.leave_mid_body("/desync")
        self.assertClosedNotReused()
        self.assertNotIn(b"EVIL", NEXT_BODY)

    def test_late_fake_response_after_the_drained_one_is_never_seen(self):
        # Drained and pooled, then the fake arrives on the idle connection:
        # the idle watch closes it; the next client gets a fresh one.
        self.leave_mid_body("/desync-late")
        self.wait_counters(1, 0)
        self.assertTrue(self.origin.wait_for(
            lambda: self.origin.sent.get(0, 0) >= len(length_head(SMALL))
            + SMALL + len(FAKE)))
        self.assertOriginSawClose(0)
        head = self.next_request()
        self.assertIs(head["reused"], False, head)
        self.assertServedOn(1, False)

    def test_stats_of_another_uid_show_only_its_own_drains(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to connect as another user")
        uid, gid = other_user.ids()
        w = other_user.wire_as(self, self.daemon, uid, gid)
        w.send({"id": 1, "method": "GET", "url": self.url("/mid-body")})
        self.assertEqual(w.read_message().get("status"), 200)
        w.close()
        self.wait_counters(1, 0)
        mine = other_user.wire_as(self, self.daemon, uid, gid)
        mine.send({"op": "stats"})
        self.assertEqual(mine.read_message()["pool"]["drained"], 1)
        other = other_user.wire_as(self, self.daemon, uid + 1, gid)
        other.send({"op": "stats"})
        self.assertEqual(other.read_message()["pool"]["drained"], 0)


class DrainDeadline(DrainTest):
    """drain_timeout (1 s by default) ends an origin that never finishes."""

    CONFIG = {}

    def test_silent_origin_is_closed_at_the_deadline(self):
        self.leave_mid_body("/never")
        self.assertOriginSawClose(0)
        self.wait_counters(0, 1)
        head = self.next_request()
        self.assertIs(head["reused"], False, head)
        self.assertServedOn(1, False)


class DrainTurnedOff(DrainTest):
    """drain_max_bytes 0: a departing client's connection closes, as
    before draining existed."""

    CONFIG = {"drain_max_bytes": 0}

    def test_nothing_is_drained(self):
        self.leave_mid_body("/mid-body")
        self.assertOriginSawClose(0)
        self.wait_counters(0, 1)
        head = self.next_request()
        self.assertIs(head["reused"], False, head)


class DrainQueued(DrainTest):
    """One connection per origin: a departing client's second request,
    still waiting for a connection, is never sent; its first is drained."""

    CONFIG = {"drain_timeout": 5, "pool_max_per_origin": 1}

    def test_unsent_requests_of_a_departed_client_are_never_sent(self):
        w = harness.Wire(self.daemon.socket)
        w.send({"id": 1, "method": "GET", "url": self.url("/slow-head")})
        w.send({"id": 2, "method": "GET", "url": self.url("/mid-body")})
        self.assertTrue(self.origin.wait_requests(1))
        w.close()
        self.wait_counters(1, 0)
        head = self.next_request()
        self.assertIs(head["reused"], True, head)
        self.assertEqual([(r.target, r.conn_index)
                          for r in self.origin.requests],
                         [("/slow-head", 0), ("/next", 0)])


class DrainAndShutdown(DrainTest):
    """A long drain_timeout (60 s) does not hold anything up: SIGTERM ends
    drains and exits at once, leaving no connection behind, and a request's
    shorter read timeout bounds its drain."""

    CONFIG = {"drain_timeout": 60}

    def test_sigterm_ends_drains(self):
        self.leave_mid_body("/never")
        self.assertTrue(self.origin.wait_for(
            lambda: len(self.origin.connections) == 1))
        time.sleep(0.2)  # the daemon notices the client left
        self.assertEqual(self.counters(), (0, 0))
        self.daemon.stop(timeout=10)
        self.assertOriginSawClose(0)
        self.assertNotIn("still in use", self.daemon.log_text())

    def test_the_request_read_timeout_bounds_a_drain(self):
        # drain_timeout is 60 s here; the request's 0.5 s wins.
        self.fields = {"read_timeout": 0.5}
        self.leave_mid_body("/never")
        self.assertOriginSawClose(0)
        self.wait_counters(0, 1)


class TlsDrain(DrainTest):
    """Over TLS: nginx (X-Connection says which TLS connection served a
    response) in front of the scripted origin."""

    def setUp(self):
        super().setUp()
        self.nginx = self.start_nginx(proxy_to=self.origin.port)
        with open(self.nginx.ca_file) as f:
            # Inline: the other uid could not read the file.
            self.fields = {"tls": {"ca_pem": f.read()}}

    def url(self, path):
        return self.nginx.tls_url(path)

    def test_leaving_before_a_slow_head_keeps_the_tls_connection(self):
        first = self.next_request(as_other_user=False)
        self.leave_before_head("/slow-head")
        self.wait_counters(1, 0)
        head = self.next_request()
        self.assertIs(head["reused"], True, head)
        self.assertEqual(header_value(head, "X-Connection"),
                         header_value(first, "X-Connection"))
        self.assertEqual(header_value(head, "X-Connection-Requests"), "3")

    def test_leaving_mid_body_keeps_the_tls_connection(self):
        left = self.leave_mid_body("/mid-body")
        self.wait_counters(1, 0)
        head = self.next_request()
        self.assertIs(head["reused"], True, head)
        self.assertEqual(header_value(head, "X-Connection"),
                         header_value(left, "X-Connection"))

    def test_over_the_cap_closes_the_tls_connection(self):
        left = self.leave_mid_body("/over-cap")
        self.wait_counters(0, 1)
        head = self.next_request()
        self.assertIs(head["reused"], False, head)
        self.assertNotEqual(header_value(head, "X-Connection"),
                            header_value(left, "X-Connection"))

    def test_silent_origin_closes_the_tls_connection(self):
        left = self.leave_mid_body("/never")
        self.wait_counters(0, 1)
        head = self.next_request()
        self.assertIs(head["reused"], False, head)
        self.assertNotEqual(header_value(head, "X-Connection"),
                            header_value(left, "X-Connection"))


if __name__ == "__main__":
    unittest.main()
