#!/usr/bin/env python3
"""Hostile clients on a shared HTTP/2 connection (issue 18).

HTTP/2 puts the requests of every local user on one upstream connection,
so what one client does must stay on its own stream. The hostile clients
run as other uids (other_user.py) against one hconnd:

  - pseudo-header names (":path", ":authority" ...) and connection-specific
    fields (Connection, Keep-Alive, Transfer-Encoding, Upgrade, TE other
    than trailers) in client headers, and header values with CR, LF or
    NUL: refused (invalid_header) or dropped as RFC 9113 8.2.2 requires,
    never sent; Host and :authority agree;
  - a client that stops reading holds back only its own stream: another
    user's bodies on the SAME nginx connection ($connection) flow, and
    the stalled body is whole once it reads again;
  - a client that leaves mid-stream: only its stream is reset (the origin
    sees RST_STREAM, no GOAWAY), the connection and the others go on;
  - one uid opening many streams: hconnd's h2_max_concurrent_streams and
    the server's SETTINGS_MAX_CONCURRENT_STREAMS hold, pool_max_per_origin
    too, and another user is served;
  - integrity across uids over HTTP/2: integrity.py's engine with nginx
    as an HTTP/2 TLS front proxying to the recording origin, 16 client
    processes as 8 uids on hconnd's one connection to it.
"""

import hashlib
import io
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import h2_origin as h2  # noqa: E402
import integrity  # noqa: E402
import other_user  # noqa: E402
from h2_origin import response, respond_path  # noqa: E402

OK_BODY = b"ok over h2\n"

# Fields RFC 9113 8.2.2 forbids in HTTP/2 (TE only as "trailers").
CONNECTION_SPECIFIC = {"connection", "keep-alive", "proxy-connection",
                       "transfer-encoding", "upgrade"}


class HostileCase(harness.IntegrationTest):

    def setUp(self):
        why = h2.h2_daemon_missing()
        if why:
            self.skipTest(why)
        other_user.require(self)
        self.uid, self.gid = other_user.ids()

    def as_other(self, daemon, timeout=20.0):
        return other_user.wire_as(self, daemon, self.uid, self.gid, timeout)

    def origin(self, scenarios, **kw):
        scenarios = dict(scenarios)
        scenarios.setdefault("/ok", response(200, OK_BODY))
        return h2.start_h2_origin(self, scenarios, **kw)


class ClientHeaders(HostileCase):
    """What a client may put in its headers, over HTTP/2."""

    def setUp(self):
        super().setUp()
        self.daemon = self.start_daemon()
        self.o = self.origin({None: [respond_path()]})
        self.w = self.as_other(self.daemon)
        self.rid = 0

    def send(self, headers, payload=b"", method="GET", **fields):
        self.rid += 1
        path = f"/h/{self.rid}"
        obj = {"id": self.rid, "method": method, "url": self.o.url(path),
               "headers": headers, "http_version": "2"}
        obj.update(fields)
        self.w.send(obj, payload)
        head, body, last = self.w.read_response(self.rid)
        got = [s for s in self.o.requests if s.path == path]
        return head, body, last, got

    def assertRefusedUnsent(self, last, got, what):
        self.assertIn("error", last, f"{what}: {last!r}")
        self.assertIn(last["error"], ("invalid_header", "bad_message"),
                      f"{what}: {last!r}")
        self.assertEqual(got, [], f"{what} reached the origin")

    def test_pseudo_header_names_are_refused(self):
        for name, value in ((":path", "/evil"), (":authority", "evil.example"),
                            (":method", "DELETE"), (":scheme", "https"),
                            (":status", "200"), (":protocol", "websocket")):
            with self.subTest(name=name):
                _, _, last, got = self.send([[name, value]])
                self.assertRefusedUnsent(last, got, name)
        # Nothing of theirs reached the origin under any name.
        for s in self.o.requests:
            self.assertNotIn("/evil", [v for _, v in s.headers])
            self.assertNotIn("evil.example", [v for _, v in s.headers])

    def test_cr_lf_nul_in_values_and_names_are_refused(self):
        for name, value in (("x-a", "one\r\ntwo: x"), ("x-a", "one\ntwo"),
                            ("x-a", "one\rtwo"), ("x-a", "nul\x00here"),
                            ("x-a\r\nx-b", "v"), ("x-a\x00", "v"),
                            ("x a", "v"), ("", "v")):
            with self.subTest(name=name, value=value):
                _, _, last, got = self.send([[name, value]])
                self.assertRefusedUnsent(last, got, repr((name, value)))
        _, body, last, got = self.send([["x-fine", "v"]])
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(got[0].header("x-fine"), "v")

    def test_connection_specific_fields_never_reach_the_origin(self):
        # Each is either refused or dropped (RFC 9113 8.2.2); whichever,
        # the origin never sees one, and TE is at most "trailers".
        cases = [
            ([["Connection", "keep-alive"]], b"", "GET"),
            ([["Connection", "close"]], b"", "GET"),
            ([["Connection", "te"], ["TE", "trailers"]], b"", "GET"),
            ([["TE", "trailers"]], b"", "GET"),
            ([["Transfer-Encoding", "chunked"]], b"chunked body", "POST"),
            ([["Keep-Alive", "timeout=5"]], b"", "GET"),
            ([["Proxy-Connection", "keep-alive"]], b"", "GET"),
            ([["Upgrade", "h2c"], ["Connection", "upgrade"]], b"", "GET"),
        ]
        for headers, payload, method in cases:
            with self.subTest(headers=headers):
                head, body, last, got = self.send(headers, payload, method)
                if "error" in last:
                    self.assertRefusedUnsent(last, got, headers)
                    continue
                self.assertIs(last.get("end"), True, last)
                self.assertEqual(len(got), 1)
                names = {n.lower() for n, _ in got[0].headers}
                self.assertFalse(names & CONNECTION_SPECIFIC,
                                 f"sent {got[0].headers}")
                self.assertIn(got[0].header("te"), (None, "trailers"))
                if payload:
                    self.assertEqual(bytes(got[0].body), payload)

    def test_te_other_than_trailers_is_refused(self):
        for value in ("gzip", "trailers, deflate", "chunked"):
            with self.subTest(te=value):
                _, _, last, got = self.send([["TE", value]])
                self.assertRefusedUnsent(last, got, f"TE: {value}")

    def test_host_and_authority_agree(self):
        # A client's Host becomes :authority; the origin never gets a Host
        # that says something else than :authority.
        _, _, last, got = self.send([["Host", "other.example:8080"]])
        if "error" in last:
            self.assertRefusedUnsent(last, got, "Host")
            return
        st = got[0]
        self.assertEqual(st.header(":authority"), "other.example:8080")
        self.assertIn(st.header("host"), (None, "other.example:8080"))
        self.assertEqual(len([n for n, _ in st.headers
                              if n == ":authority"]), 1)

    def test_header_names_go_lower_case(self):
        # HTTP/2 field names are lower case (RFC 9113 8.2.1); a client's
        # mixed case must not make the request malformed.
        head, _, last, got = self.send([["X-Mixed-Case", "v"]])
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(got[0].header("x-mixed-case"), "v")
        self.assertFalse([n for n, _ in got[0].headers if n != n.lower()])


class StalledReader(HostileCase):
    """A reader that stops holds back only its own stream."""

    SIZE = 32 * 1024 * 1024

    def test_stalled_reader_on_the_same_nginx_connection(self):
        ng = self.start_nginx(http2=True)
        digest = harness.write_huge_file(os.path.join(ng.root, "huge.bin"),
                                         self.SIZE)
        d = self.start_daemon()
        with open(ng.ca_file) as f:
            tls = {"ca_pem": f.read()}

        # The stalled client, another uid: reads the head, then nothing.
        slow = self.as_other(d, timeout=60)
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.send({"id": "stall", "method": "GET", "url":
                   ng.tls_url("/huge.bin"), "tls": tls})
        head = slow.read_message()
        self.assertEqual(head.get("status"), 200, head)
        self.assertEqual(head.get("version"), 20, head)
        conn_id = harness.header_value(head, "x-connection")

        # Another client: its bodies flow, over the very same connection.
        w = self.wire(d)
        for i in range(10):
            h, body, last = w.request(i, "GET", ng.tls_url("/big.bin"),
                                      tls=tls)
            self.assertEqual(h["version"], 20)
            self.assertEqual(last.get("end"), True, last)
            self.assertEqual(body, harness.big_bytes())
            self.assertEqual(harness.header_value(h, "x-connection"),
                             conn_id, "served over another connection: "
                             "the stalled stream blocked its own")

        # The stalled body is whole once it reads again.
        hsh = hashlib.sha256()
        _, n, last = slow.read_response_stream("stall", hsh.update, head=head)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(n, self.SIZE)
        self.assertEqual(hsh.hexdigest(), digest)


class Departures(HostileCase):

    def test_departure_resets_only_its_stream(self):
        size = 8 * 1024 * 1024
        o = self.origin({
            "/long": [("headers", 200, [("content-length", str(size))]),
                      ("stream", size, True)],
            "/other": [("headers", 200, [("content-length", str(1 << 20))]),
                       ("stream", 1 << 20, True)]})
        d = self.start_daemon()
        leaver = self.as_other(d)
        leaver.send({"id": 1, "method": "GET", "url": o.url("/long"),
                     "http_version": "2"})
        head = leaver.read_message()
        self.assertEqual(head.get("status"), 200, head)
        first = leaver.read_message()
        self.assertIn("data", first)
        # Another user's request, on the same connection, while the first
        # one is under way.
        w = self.wire(d)
        w.send({"id": 2, "method": "GET", "url": o.url("/other"),
                "http_version": "2"})
        self.assertTrue(o.wait_requests(2))
        leaver.close()
        long_st = [s for s in o.requests if s.path == "/long"][0]
        self.assertTrue(o.wait_for(lambda: long_st.reset is not None, 10),
                        "hconnd did not reset the departed client's stream")
        head, body, last = w.read_response(2)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(body, harness.big_bytes(1 << 20))
        # The connection goes on: no GOAWAY, the next request reuses it.
        h, body, last = w.request(3, "GET", o.url("/ok"), http_version="2")
        self.assertEqual(body, OK_BODY)
        self.assertEqual(len(o.connections), 1)
        self.assertEqual(o.events("goaway"), [])
        self.assertIn(long_st.reset, (h2.ERRORS["CANCEL"],
                                      h2.ERRORS["NO_ERROR"],
                                      h2.ERRORS["INTERNAL_ERROR"]))


class OneReadForSeveralClients(HostileCase):
    """One read of the shared connection completes the replies of several
    clients, of different uids, and their sessions' flushes run in one
    batch. A client that left before it is not written to; one that
    half-closed gets its reply, then its end of file (writing it frees
    the session, in the middle of the others' flushes); the one that
    stayed gets its own reply whole and goes on."""

    BODIES = {name: (b"reply for %s\n" % name.encode()) * 300
              for name in ("stays", "half", "gone")}

    def test_replies_of_one_read_go_to_their_own_clients(self):
        gate = threading.Event()
        sent = threading.Event()

        def answer_all(origin, conn, st):
            # Every stream's whole answer in one write, once the test
            # opens the gate: the shared connection reads them together.
            gate.wait(20)
            blob = b""
            for name in ("half", "gone", "stays"):
                sid = [s.sid for s in conn.streams.values()
                       if s.path == f"/{name}"][0]
                body = self.BODIES[name]
                blob += h2.frame(h2.HEADERS, h2.END_HEADERS, sid,
                                 h2.hpack_encode([
                                     (":status", "200"),
                                     ("content-length", str(len(body)))]))
                blob += h2.frame(h2.DATA, h2.END_STREAM, sid, body)
            origin.send(conn, blob)
            sent.set()
            return False

        o = self.origin({"/stays": [("wait_streams", 3),
                                    ("call", answer_all)],
                         "/half": [("hold",)], "/gone": [("hold",)]})
        self.addCleanup(gate.set)
        d = self.start_daemon()
        clients = {}
        for n, name in enumerate(("stays", "half", "gone"), 1):
            # stays and gone as another uid than half (the test's own).
            w = self.wire(d) if name == "half" else self.as_other(d)
            w.send({"id": n, "method": "GET", "url": o.url(f"/{name}"),
                    "http_version": "2"})
            self.assertTrue(o.wait_requests(n), name)
            clients[name] = w
        self.assertEqual(len(o.connections), 1)
        # Half-closed first: hconnd has run the flush that end of input
        # asked for, and only the reply's flush, in the batch, finds the
        # session done (and frees it).
        clients["half"].shutdown_write()
        time.sleep(0.2)
        # Stopped, hconnd finds the answers and the departure ready
        # together on its next wake-up.
        os.kill(d.pid, signal.SIGSTOP)
        try:
            self.assertTrue(harness.wait_stopped(d.pid))
            gate.set()
            self.assertTrue(sent.wait(10), "the origin never answered")
            time.sleep(0.05)  # its I/O thread writes the answers
            clients["gone"].close()
        finally:
            os.kill(d.pid, signal.SIGCONT)
        head, body, last = clients["half"].read_response(2)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(body, self.BODIES["half"])
        clients["half"].expect_eof()
        w = clients["stays"]
        head, body, last = w.read_response(1)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(body, self.BODIES["stays"])
        # Nothing else came its way: its next reply is the next line.
        h, body, last = w.request(4, "GET", o.url("/ok"), http_version="2")
        self.assertEqual(body, OK_BODY)
        self.assertTrue(d.alive())
        self.assertEqual(len(o.connections), 1)
        self.assertEqual(o.events("goaway"), [])


class ManyStreams(HostileCase):

    def slow_origin(self, **kw):
        def slow(origin, conn, st):
            time.sleep(0.05)
            return True
        return self.origin({None: [("call", slow), respond_path()]}, **kw)

    def flood(self, d, o, n, cap, max_conns):
        """uid nobody pipelines n requests while root sends a few; all are
        answered with their own body; no connection ever carried more
        than cap streams at once, and at most max_conns were opened."""
        hostile = self.as_other(d, timeout=30)
        for i in range(n):
            hostile.send({"id": i, "method": "GET",
                          "url": o.url(f"/flood/{i}"), "http_version": "2"})
        other = self.wire(d, timeout=30)
        for i in range(3):
            h, body, last = other.request(f"o{i}", "GET",
                                          o.url(f"/other/{i}"),
                                          http_version="2")
            self.assertIs(last.get("end"), True, last)
            self.assertEqual(body, f"path /other/{i}\n".encode())
        for i in range(n):
            h, body, last = hostile.read_response(i)
            self.assertIs(last.get("end"), True, last)
            self.assertEqual(body, f"path /flood/{i}\n".encode())
        peaks = [h2.max_open_streams(c) for c in o.connections]
        self.assertLessEqual(max(peaks), cap, peaks)
        self.assertLessEqual(len(o.connections), max_conns)

    def test_our_stream_cap_holds(self):
        conf = {"h2_max_concurrent_streams": 8, "pool_max_per_origin": 2}
        d = self.start_daemon_config(**conf)
        o = self.slow_origin()
        self.flood(d, o, 200, 8, 2)

    def test_the_servers_stream_cap_holds(self):
        # The origin refuses streams beyond its SETTINGS_MAX_CONCURRENT_
        # STREAMS with REFUSED_STREAM, as nghttp2 servers do: every
        # request must still be answered, none failed.
        d = self.start_daemon_config(pool_max_per_origin=2)
        o = self.slow_origin(settings={h2.MAX_CONCURRENT_STREAMS: 3})
        self.flood(d, o, 100, 3, 2)

    def test_nghttpd_with_a_low_stream_cap(self):
        # The same against a real server: nghttpd -m 3 (it refuses the
        # streams beyond 3 with REFUSED_STREAM).
        ng = self.start_nghttpd(tls=False, args=["-m", "3"])
        d = self.start_daemon_config(pool_max_per_origin=2)
        hostile = self.as_other(d, timeout=30)
        for i in range(60):
            hostile.send({"id": i, "method": "GET",
                          "url": ng.url("/small.txt"), "http_version": "2"})
        for i in range(60):
            h, body, last = hostile.read_response(i)
            self.assertIs(last.get("end"), True, last)
            self.assertEqual(body, harness.SMALL_BODY)
            self.assertEqual(h["version"], 20)

    def test_one_connection_until_the_cap(self):
        # Below the cap everything shares one connection.
        d = self.start_daemon()
        o = self.slow_origin()
        self.flood(d, o, 40, 100, 1)


class IntegrityOverH2(integrity.Assertions, unittest.TestCase):
    """integrity.py's cross-user check with nginx as an HTTP/2 TLS front
    proxying to the recording origin: 16 client processes as 8 uids share
    hconnd's HTTP/2 connection to nginx; every request the origin got is
    checked against the client message it came from, every reply against
    its own request (integrity.py (a)-(e))."""

    @classmethod
    def setUpClass(cls):
        why = h2.h2_daemon_missing()
        if why:
            raise unittest.SkipTest(why)
        harness.require_binary(cls, harness.HCONND, "hconnd")
        if os.geteuid() != 0:
            raise harness.missing("needs root to run clients as 8 uids")
        out = io.StringIO()
        cls.seed = integrity.seed_from_env()
        try:
            cls.fails, cls.fig = integrity.run(
                seed=cls.seed, clients=16, uids=8, episodes=12, out=out,
                front=True)
        finally:
            sys.stdout.write(out.getvalue())
            sys.stdout.flush()

    def test_users_shared_an_http2_connection(self):
        f = self.fig
        self.assertGreater(f["front_requests"], 200)
        self.assertEqual(f["front_http2_requests"], f["front_requests"],
                         "requests reached the front over HTTP/1.1")
        self.assertGreater(f["front_connections_shared_across_uids"], 0)
        self.assertGreaterEqual(f["max_uids_on_one_front_connection"], 4)


if __name__ == "__main__":
    harness.main()
