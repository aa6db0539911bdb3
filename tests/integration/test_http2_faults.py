#!/usr/bin/env python3
"""HTTP/2 origin faults (issue 18): every way an HTTP/2 origin can fail or
misbehave, through hconnd, each with the error PROTOCOL.md names and never
a short body without one, and the daemon serving on afterwards.

The origin is h2_origin.H2Origin (h2c with prior knowledge; requests carry
"http_version": "2"), scripted per path and recording what it received:
  - RST_STREAM before the head and mid-body (stream_reset naming the
    code), the connection and its other streams unaffected; REFUSED_STREAM
    retried once on another connection;
  - GOAWAY with a last-stream-id in the middle of a load: the streams
    above it retried on a new connection, none processed twice, none lost;
    a GOAWAY followed by a close fails the streams below it;
  - a stream cut short (TCP close or reset without END_STREAM, DATA longer
    or shorter than content-length, END_STREAM never sent);
  - protocol errors (a frame on stream 0, an oversized frame, bad HPACK,
    an upper-case header name, PUSH_PROMISE although disabled,
    WINDOW_UPDATE overflow): protocol_error, GOAWAY to the origin;
  - floods and huge heads (CONTINUATION, too many fields, SETTINGS, PING):
    a clear error or a served request, memory bounded;
  - a window that never opens (the upload times out, other streams flow);
  - 103 Early Hints, 100-continue and response trailers.
The origin itself is checked against nghttp (nghttp2-client) first.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import h2_origin as h2  # noqa: E402
from h2_origin import response, respond_path  # noqa: E402

OK_BODY = b"ok over h2\n"
OK = response(200, OK_BODY)


def sanitized():
    return bool(os.environ.get("HCONN_SANITIZED"))


class OriginSelfCheck(unittest.TestCase):
    """H2Origin against nghttp -v, before any test relies on it."""

    def nghttp(self, *args):
        if not os.access(harness.NGHTTP, os.X_OK):
            raise harness.missing("nghttp not found (Debian: apt-get "
                                  "install nghttp2-client)")
        return subprocess.run([harness.NGHTTP, *args], capture_output=True,
                              timeout=30)

    def test_responses_flow_control_trailers_interim_reset(self):
        o = h2.start_h2_origin(self, {
            "/ok": response(200, b"hello", [("x-a", "b")]),
            "/big": [("headers", 200, [("content-length", "300000")]),
                     ("stream", 300000, True)],
            "/trailers": [("headers", 200, []), ("data", b"abc"),
                          ("trailers", [("x-t", "1")])],
            "/early": [("head_only",), ("headers", 103, [("link", "</a>")]),
                       ("headers", 200, [], True)],
            "/rst": [("headers", 200, []), ("rst", "INTERNAL_ERROR")],
            "/echo": [("headers", 200, []), ("call", lambda o, c, st:
                                             o.send_data(c, st, bytes(st.body),
                                                         True))],
        })
        r = self.nghttp("-v", o.url("/ok"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"recv (stream_id=13) x-a: b", r.stdout)
        self.assertTrue(r.stdout.endswith(b"hello") or b"hello" in r.stdout)
        r = self.nghttp(o.url("/big"))
        self.assertEqual(r.stdout, harness.big_bytes(300000))
        r = self.nghttp("-v", o.url("/trailers"))
        self.assertIn(b"recv (stream_id=13) x-t: 1", r.stdout)
        r = self.nghttp("-v", o.url("/early"))
        self.assertIn(b":status: 103", r.stdout)
        self.assertIn(b":status: 200", r.stdout)
        r = self.nghttp("-v", o.url("/rst"))
        self.assertIn(b"recv RST_STREAM frame", r.stdout)
        self.assertIn(b"error_code=INTERNAL_ERROR", r.stdout)
        with tempfile.NamedTemporaryFile() as f:
            f.write(harness.big_bytes(200000))
            f.flush()
            r = self.nghttp("-d", f.name, o.url("/echo"))
        self.assertEqual(r.stdout, harness.big_bytes(200000))
        echo = [s for s in o.requests if s.path == "/echo"][0]
        self.assertEqual(echo.method, "POST")
        self.assertEqual(bytes(echo.body), harness.big_bytes(200000))
        self.assertEqual(o.errors, [])

    def test_tls_with_alpn(self):
        d = tempfile.mkdtemp(prefix="hconn-h2-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        harness.make_certificates(d)
        o = h2.start_h2_origin(self, {"/ok": OK}, tls_dir=d)
        r = self.nghttp("-v", o.url("/ok"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(OK_BODY, r.stdout)
        self.assertEqual(o.connections[0].alpn, "h2")

    def test_bad_hpack_is_refused_by_nghttp(self):
        # The scripted protocol errors really are errors to nghttp2.
        o = h2.start_h2_origin(self, {
            "/bad": [("block", b"\xbf\xff\xff\xff\x0f")]})
        r = self.nghttp("-v", o.url("/bad"))
        self.assertIn(b"send GOAWAY frame", r.stdout)
        self.assertIn(b"COMPRESSION_ERROR", r.stdout)


class H2Case(harness.IntegrationTest):
    """One daemon per test; origins per test."""

    def setUp(self):
        why = h2.h2_daemon_missing()
        if why:
            self.skipTest(why)
        self.daemon = self.start_daemon(*self.daemon_args())

    def daemon_args(self):
        return ()

    def origin(self, scenarios, **kw):
        scenarios = dict(scenarios)
        scenarios.setdefault("/ok", OK)
        return h2.start_h2_origin(self, scenarios, **kw)

    def get(self, w, rid, url, **fields):
        """Sends a GET over HTTP/2 and reads its response."""
        fields.setdefault("http_version", "2")
        head, body, last = w.request(rid, "GET", url, **fields)
        self.assertWhole(head, body, last)
        return head, body, last

    def assertWhole(self, head, body, last):
        """A response that ended with end carries exactly its length."""
        if last.get("end") is True and head is not None and \
                head.get("length") is not None:
            self.assertEqual(len(body), head["length"],
                             f"short body without an error: {head!r}")

    def assertH2Error(self, last, names, *, contains=()):
        """last is an error reply whose name is one of names (a str or a
        tuple), its message holding every string of contains."""
        names = (names,) if isinstance(names, str) else tuple(names)
        self.assertIn("error", last, f"expected an error, got {last!r}")
        self.assertIn(last["error"], names, f"reply: {last!r}")
        for text in contains:
            self.assertIn(text, last.get("message", ""), f"reply: {last!r}")

    def assertServes(self, origin, same_connection=None):
        """The daemon still answers: a new client GETs /ok. With
        same_connection (an origin connection index) it must come over
        that connection; False: over a new one."""
        before = len(origin.connections)
        w = self.wire(self.daemon)
        head, body, last = self.get(w, "after", origin.url("/ok"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, OK_BODY)
        self.assertEqual(head["version"], 20, head)
        st = [s for s in origin.requests if s.path == "/ok"][-1]
        if same_connection is not None and same_connection is not False:
            self.assertEqual(st.conn_index, same_connection,
                             "the fault closed a connection it should not "
                             "have")
        elif same_connection is False:
            self.assertGreaterEqual(st.conn_index, before,
                                    "a connection that broke the protocol "
                                    "was reused")
        self.assertTrue(self.daemon.alive())

    def goaway_from_daemon(self, origin, conn_index=0, timeout=10.0):
        """The GOAWAY the daemon sent on connection conn_index (or None)."""
        origin.wait_for(lambda: any(
            e[0] == "goaway" for e in origin.connections[conn_index].events)
            or origin.connections[conn_index].closed.is_set(), timeout)
        found = [e for e in origin.connections[conn_index].events
                 if e[0] == "goaway"]
        return found[0] if found else None


class Basics(H2Case):

    def test_idle_connection_gets_a_ping_only_after_a_while(self):
        # Taken again at once, an idle connection carries the next stream
        # straight away (its socket was read all along); idle for two
        # seconds or more, it is checked with a PING first.
        o = self.origin({})
        w = self.wire(self.daemon)
        for rid in (1, 2):
            head, body, last = self.get(w, rid, o.url("/ok"))
            self.assertOkResponse(head, last)
        conn = o.connections[0]
        self.assertEqual(conn.frames("ping"), [], conn.events)
        time.sleep(2.5)
        head, body, last = self.get(w, 3, o.url("/ok"))
        self.assertOkResponse(head, last)
        self.assertTrue(head["reused"], head)
        self.assertEqual(len(o.connections), 1)
        o.wait_for(lambda: conn.frames("ping"), 10)
        self.assertEqual(len(conn.frames("ping")), 1, conn.events)

    def test_plain_get_is_http2(self):
        o = self.origin({})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/ok"))
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 20)
        self.assertEqual(body, OK_BODY)
        st = o.requests[0]
        self.assertEqual(st.method, "GET")
        self.assertEqual(st.header(":scheme"), "http")
        self.assertEqual(st.header(":authority"), o.hostport)
        self.assertEqual(st.path, "/ok")
        # The client's SETTINGS turn server push off (RFC 9113 8.4).
        self.assertEqual(o.connections[0].client_settings.get(
            h2.ENABLE_PUSH), 0, o.connections[0].client_settings)


    def test_complete_streams_cost_no_reset_or_window_update(self):
        # A response read to its END_STREAM, on a stream whose request had
        # ended, closes the stream on both sides: a RST_STREAM after it
        # (CANCEL, as for a stream given up) would be a frame and a write
        # per request for nothing; nor does a small body need its window
        # reopened. Frames arrive in order, so once the origin has the
        # second request, anything sent about the first has come too.
        o = self.origin({})
        w = self.wire(self.daemon)
        for rid in (1, 2):
            head, body, last = self.get(w, rid, o.url("/ok"))
            self.assertOkResponse(head, last)
            self.assertEqual(body, OK_BODY)
        self.assertTrue(o.wait_requests(2))
        conn = o.connections[0]
        first = o.requests[0].sid
        self.assertEqual([e for e in conn.frames("rst") if e[1] == first],
                         [], conn.events)
        self.assertEqual([e for e in conn.frames("window_update")
                          if e[1] == first], [], conn.events)


class Resets(H2Case):

    CODES = [(2, "INTERNAL_ERROR"), (8, "CANCEL"), (1, "PROTOCOL_ERROR"),
             (11, "ENHANCE_YOUR_CALM")]

    def test_rst_before_the_head_names_the_code(self):
        scen = {f"/rst/{c}": [("rst", c)] for c, _ in self.CODES}
        scen["/rst/4660"] = [("rst", 0x1234)]      # a code RFC 9113 lacks
        o = self.origin(scen)
        w = self.wire(self.daemon)
        for code, name in self.CODES + [(4660, "")]:
            with self.subTest(code=code):
                head, body, last = self.get(w, code, o.url(f"/rst/{code}"))
                self.assertIsNone(head)
                self.assertH2Error(last, "stream_reset",
                                   contains=(name, f"({code})"))
        # Each reset failed one stream: one connection served them all,
        # and serves on.
        self.assertEqual(len(o.connections), 1)
        self.assertServes(o, same_connection=0)

    def test_rst_mid_body(self):
        o = self.origin({"/mid": [
            ("headers", 200, [("content-length", "100000")]),
            ("stream", 5000), ("rst", "INTERNAL_ERROR")]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/mid"))
        self.assertIsNotNone(head)
        self.assertEqual(head["status"], 200)
        self.assertH2Error(last, "stream_reset",
                           contains=("INTERNAL_ERROR", "(2)"))
        self.assertLessEqual(len(body), 5000)
        self.assertEqual(body, harness.big_bytes(len(body)))
        self.assertServes(o, same_connection=0)

    def test_rst_leaves_the_other_streams_of_the_connection(self):
        reset_sent = threading.Event()

        def reset(origin, conn, st):
            origin.send(conn, h2.rst_frame(st.sid, 2))
            reset_sent.set()
            return False

        def slow(origin, conn, st):
            reset_sent.wait(30)
            return True
        o = self.origin({
            "/slow": [("call", slow), ("headers", 200,
                                       [("content-length", "200000")]),
                      ("stream", 200000, True)],
            "/reset": [("call", reset)]})
        a = self.wire(self.daemon)
        a.send({"id": 1, "method": "GET", "url": o.url("/slow"),
                "http_version": "2"})
        self.assertTrue(o.wait_requests(1))
        b = self.wire(self.daemon)
        _, _, last = self.get(b, 2, o.url("/reset"))
        self.assertH2Error(last, "stream_reset", contains=("INTERNAL_ERROR",))
        head, body, last = a.read_response(1)
        self.assertOkResponse(head, last)
        self.assertEqual(body, harness.big_bytes(200000))
        self.assertEqual({s.conn_index for s in o.requests}, {0})

    def test_refused_stream_is_retried_once(self):
        def refuse_first(origin, conn, st):
            with origin.lock:
                earlier = [s for s in origin.requests
                           if s.path == st.path and s is not st]
            if not earlier:
                origin.send(conn, h2.rst_frame(st.sid, h2.ERRORS[
                    "REFUSED_STREAM"]))
                return False
            return True
        o = self.origin({
            "/once": [("call", refuse_first), respond_path()],
            "/always": [("rst", "REFUSED_STREAM")]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/once"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"path /once\n")
        tries = [s for s in o.requests if s.path == "/once"]
        self.assertEqual(len(tries), 2, tries)
        # REFUSED_STREAM: unprocessed, retried on another connection.
        self.assertNotEqual(tries[0].conn_index, tries[1].conn_index, tries)

        _, _, last = self.get(w, 2, o.url("/always"))
        self.assertH2Error(last, "stream_reset",
                           contains=("REFUSED_STREAM", "(7)"))
        self.assertEqual(len([s for s in o.requests
                              if s.path == "/always"]), 2)


class Goaway(H2Case):

    LOAD = 24
    CLIENTS = 4

    def test_goaway_mid_load_loses_and_repeats_nothing(self):
        # The first connection answers the streams up to the middle one,
        # sends GOAWAY with that last-stream-id once LOAD streams are open
        # (or a few seconds passed), and never answers the others: the
        # daemon must send those again on a new connection.
        state = {"last": None}

        def serve(origin, conn, st):
            if conn.index == 0:
                origin.wait_for(lambda: len(conn.streams) >= self.LOAD or
                                conn.ending, 5.0)
                with origin.lock:
                    if state["last"] is None:
                        sids = sorted(conn.streams)
                        state["last"] = sids[len(sids) // 2 - 1] \
                            if len(sids) > 1 else 0
                        send_goaway = True
                    else:
                        send_goaway = False
                if send_goaway:
                    origin.send(conn, h2.goaway_frame(state["last"], 0))
                if st.sid > state["last"]:
                    return False        # never processed
            return True
        o = self.origin({None: [("call", serve), respond_path()]})
        wires = [self.wire(self.daemon) for _ in range(self.CLIENTS)]
        per = self.LOAD // self.CLIENTS
        for c, w in enumerate(wires):
            for i in range(per):
                w.send({"id": i, "method": "GET",
                        "url": o.url(f"/load/{c}/{i}"), "http_version": "2"})
        for c, w in enumerate(wires):
            for i in range(per):
                head, body, last = w.read_response(i)
                self.assertWhole(head, body, last)
                self.assertOkResponse(head, last)
                self.assertEqual(body, f"path /load/{c}/{i}\n".encode())
        self.assertIsNotNone(state["last"])
        first = o.connections[0]
        processed = {s.path for s in first.streams.values()
                     if s.sid <= state["last"]}
        unprocessed = {s.path for s in first.streams.values()
                       if s.sid > state["last"]}
        later = [s for s in o.requests if s.conn_index > 0]
        self.assertTrue(processed, "GOAWAY came before any stream")
        # None repeated: what the first connection processed never came
        # again; none lost: everything it did not came again, once.
        self.assertFalse(processed & {s.path for s in later},
                         "a processed request was sent twice")
        self.assertEqual(sorted(s.path for s in later
                                if s.path in unprocessed),
                         sorted(unprocessed))
        # No new stream went to the connection after its GOAWAY was read;
        # and the new connection serves on.
        self.assertServes(o)

    def test_goaway_then_close_fails_the_streams_below_it(self):
        # GOAWAY naming the stream as processed, then the connection
        # closes before its head: it cannot be retried (it may have been
        # processed), it fails as a closed HTTP/1.1 connection would.
        o = self.origin({"/gone": [("goaway", "NO_ERROR"), ("sleep", 0.2),
                                   ("close",)],
                         "/gone-mid": [("headers", 200,
                                        [("content-length", "1000")]),
                                       ("data", b"x" * 100),
                                       ("goaway", "INTERNAL_ERROR"),
                                       ("close",)]})
        w = self.wire(self.daemon)
        head, _, last = self.get(w, 1, o.url("/gone"))
        self.assertIsNone(head)
        self.assertH2Error(last, "remote_disconnected", contains=("GOAWAY",))
        self.assertEqual(len([s for s in o.requests if s.path == "/gone"]),
                         1, "a processed request was sent again")
        head, body, last = self.get(w, 2, o.url("/gone-mid"))
        self.assertIsNotNone(head)
        self.assertH2Error(last, "incomplete_read", contains=("GOAWAY",))
        self.assertEqual(body, b"x" * 100)
        self.assertServes(o)

    def test_graceful_goaway_lets_open_streams_finish(self):
        # GOAWAY with last-stream-id = this stream, then the response:
        # the stream completes; the next request opens a new connection.
        o = self.origin({"/drain": [("goaway", "NO_ERROR"), ("sleep", 0.1),
                                    respond_path()]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/drain"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"path /drain\n")
        self.assertServes(o, same_connection=False)


class CutShort(H2Case):

    def test_tcp_close_before_the_head(self):
        o = self.origin({"/close": [("close",)]})
        w = self.wire(self.daemon)
        head, _, last = self.get(w, 1, o.url("/close"))
        self.assertIsNone(head)
        self.assertH2Error(last, "remote_disconnected")
        self.assertServes(o)

    def test_tcp_close_or_reset_inside_the_body(self):
        for how in ("close", "reset"):
            with self.subTest(how=how):
                o = self.origin({"/cut": [
                    ("headers", 200, [("content-length", "10000")]),
                    ("data", b"y" * 1000), ("sleep", 0.1), (how,)]})
                w = self.wire(self.daemon)
                head, body, last = self.get(w, 1, o.url("/cut"))
                self.assertIsNotNone(head)
                self.assertH2Error(last, "incomplete_read")
                self.assertEqual(body, b"y" * 1000)
                self.assertServes(o)

    def test_no_length_cut_is_an_error_too(self):
        # Without content-length only END_STREAM ends the body: a close
        # without it is incomplete_read, never a short "end".
        o = self.origin({"/cut": [("headers", 200, []),
                                  ("data", b"z" * 500), ("close",)]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/cut"))
        self.assertIsNotNone(head)
        self.assertNotIn("length", head)
        self.assertH2Error(last, "incomplete_read")

    def test_end_stream_never_sent_times_out(self):
        o = self.origin({"/stall": [("headers", 200, []),
                                    ("data", b"w" * 100), ("hold",)]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/stall"), timeout=1)
        self.assertIsNotNone(head)
        self.assertH2Error(last, "timeout")
        self.assertEqual(body, b"w" * 100)
        # The stall was one stream's: the connection serves on.
        self.assertServes(o, same_connection=0)

    def test_timeout_counts_from_the_last_byte(self):
        # The read timeout is silence, not the response's whole time: a
        # body trickling in for longer than it is delivered whole (the
        # stream's timer, armed once, moves on by what came), and the
        # silence after the last byte times out.
        trickle = []
        for _ in range(8):
            trickle += [("data", b"t" * 10), ("sleep", 0.4)]
        o = self.origin({
            "/trickle": [("headers", 200, [])] + trickle + [("end",)],
            "/stall": [("headers", 200, [])] + trickle + [("hold",)]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/trickle"), timeout=2)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(body, b"t" * 80)
        head, body, last = self.get(w, 2, o.url("/stall"), timeout=2)
        self.assertIsNotNone(head)
        self.assertH2Error(last, "timeout")
        self.assertEqual(body, b"t" * 80)

    def test_data_longer_or_shorter_than_content_length(self):
        # RFC 9113 8.1.1: a content-length that disagrees with the DATA
        # makes the response malformed: an error, never a body of either
        # length ending well.
        o = self.origin({
            "/larger": [("headers", 200, [("content-length", "1000")]),
                        ("data", b"a" * 100, True)],
            "/smaller": [("headers", 200, [("content-length", "10")]),
                         ("data", b"b" * 100, True)]})
        w = self.wire(self.daemon)
        for rid, path, cl in ((1, "/larger", 1000), (2, "/smaller", 10)):
            with self.subTest(path=path):
                head, body, last = self.get(w, rid, o.url(path))
                self.assertH2Error(last, ("incomplete_read", "protocol_error",
                                          "bad_content_length"))
                self.assertLessEqual(len(body), min(cl, 100))
        self.assertServes(o)


def _oversized(origin, conn, st):
    """A DATA frame one byte over the max frame size hconnd announced."""
    size = conn.client_settings.get(h2.MAX_FRAME_SIZE, 16384) + 1
    return origin.send(conn, h2.frame(h2.DATA, 0, st.sid, b"o" * size))


# name: (steps, the GOAWAY code hconnd should send). Each is a connection
# error (RFC 9113 5.4.1).
CONNECTION_ERRORS = {
    "frame_on_stream_zero": (
        [("headers", 200, []), ("frame", h2.DATA, 0, 0, b"xx"), ("hold",)],
        "PROTOCOL_ERROR"),
    "oversized_frame": (
        [("headers", 200, []), ("call", _oversized), ("hold",)],
        "FRAME_SIZE_ERROR"),
    # An index far beyond the tables (RFC 7541 2.3.3).
    "bad_hpack": ([("block", b"\xbf\xff\xff\xff\x0f"), ("hold",)],
                  "COMPRESSION_ERROR"),
    "push_promise": (
        [("frame", h2.PUSH_PROMISE, h2.END_HEADERS, None,
          struct.pack(">I", 2) + h2.hpack_encode([
              (":method", "GET"), (":path", "/pushed"), (":scheme", "http"),
              (":authority", "x")])), ("hold",)],
        "PROTOCOL_ERROR"),
    "connection_window_overflow": (
        [("frame", h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)),
         ("hold",)],
        "FLOW_CONTROL_ERROR"),
}


class ProtocolErrors(H2Case):

    def protocol_error(self, name):
        """Runs CONNECTION_ERRORS[name]: the request fails with
        protocol_error, the connection is closed and never reused, the
        daemon serves on. Returns the origin."""
        o = self.origin({"/bad": CONNECTION_ERRORS[name][0]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/bad"))
        self.assertH2Error(last, "protocol_error")
        self.assertTrue(o.connections[0].closed.wait(10))
        self.assertServes(o, same_connection=False)
        return o

    def test_frame_on_stream_zero(self):
        self.protocol_error("frame_on_stream_zero")

    def test_oversized_frame(self):
        self.protocol_error("oversized_frame")

    def test_bad_hpack(self):
        self.protocol_error("bad_hpack")

    def test_push_promise_although_disabled(self):
        self.protocol_error("push_promise")

    def test_connection_window_overflow(self):
        self.protocol_error("connection_window_overflow")

    def test_connection_errors_are_announced_with_goaway(self):
        # RFC 9113 5.4.1: an endpoint that meets a connection error SHOULD
        # send GOAWAY with the error code before closing (nghttp2 queues
        # it; it has to be written out before the socket is closed).
        for name, (_, code) in CONNECTION_ERRORS.items():
            with self.subTest(name):
                o = self.protocol_error(name)
                ga = self.goaway_from_daemon(o)
                self.assertIsNotNone(ga, "hconnd sent no GOAWAY: "
                                     f"{o.connections[0].events[-5:]}")
                self.assertEqual(h2.error_name(ga[2]), code)

    def test_goaway_before_a_reset_is_seen_by_a_late_writer(self):
        # The origin's thread, descheduled between writes of the oversized
        # frame (as on a loaded machine), writes again only after hconnd
        # has sent its GOAWAY and closed. Its write meets the reset; the
        # GOAWAY queued ahead of the reset must still be read and
        # recorded, or the test above would report "hconnd sent no GOAWAY"
        # for a GOAWAY that was sent.
        class LateWriter:
            def __init__(self, sock):
                self.sock = sock
                self.cut = False

            def __getattr__(self, name):
                return getattr(self.sock, name)

            def closed_by_peer(self):
                info = self.sock.getsockopt(socket.IPPROTO_TCP,
                                            socket.TCP_INFO, 8)
                return info[0] in (7, 8)  # TCP_CLOSE, TCP_CLOSE_WAIT

            def recv(self, n):
                if self.cut:  # read before hconnd's answer came in
                    raise BlockingIOError()
                return self.sock.recv(n)

            def send(self, data):
                if self.cut:  # the rest only once hconnd has closed
                    deadline = time.monotonic() + 10
                    while not self.closed_by_peer() and \
                            time.monotonic() < deadline:
                        time.sleep(0.01)
                try:
                    n = self.sock.send(bytes(data[:4096]))
                except OSError:
                    self.cut = False
                    raise
                self.cut = n < len(data)
                return n

        class LateOrigin(h2.H2Origin):
            def _serve(self, s, conn):
                return super()._serve(LateWriter(s), conn)

        o = LateOrigin({"/bad": CONNECTION_ERRORS["oversized_frame"][0],
                        "/ok": OK})
        self.addCleanup(o.stop)
        o.start()
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/bad"))
        self.assertH2Error(last, "protocol_error")
        self.assertTrue(o.connections[0].closed.wait(10))
        self.assertIn(("reset",), o.connections[0].events,
                      "the origin's late write did not fail; nothing "
                      "was checked")
        ga = self.goaway_from_daemon(o)
        self.assertIsNotNone(ga, "the GOAWAY ahead of the reset was lost: "
                             f"{o.connections[0].events[-5:]}")
        self.assertEqual(h2.error_name(ga[2]), "FRAME_SIZE_ERROR")

    def test_upper_case_header_name(self):
        # RFC 9113 8.2.1: malformed; a stream error at least. No head
        # reaches the client with the field in it.
        o = self.origin({"/upper": [("headers", 200, [("X-Upper", "1")],
                                     True)]})
        w = self.wire(self.daemon)
        head, _, last = self.get(w, 1, o.url("/upper"))
        self.assertIsNone(head, "a malformed head was passed on")
        self.assertH2Error(last, ("protocol_error", "bad_header"))
        self.assertServes(o)

    def test_stream_window_overflow(self):
        # On an upload's stream: a stream error (RST_STREAM
        # FLOW_CONTROL_ERROR from hconnd), the request fails.
        o = self.origin({"/up": [("head_only",),
                                 ("frame", h2.WINDOW_UPDATE, 0, None,
                                  struct.pack(">I", 0x7FFFFFFF)),
                                 ("frame", h2.WINDOW_UPDATE, 0, None,
                                  struct.pack(">I", 0x7FFFFFFF)),
                                 ("hold",)]})
        w = self.wire(self.daemon)
        head, _, last = w.request(1, "POST", o.url("/up"), b"u" * 1000,
                                  http_version="2")
        self.assertIn("error", last)
        self.assertIn(last["error"], ("protocol_error", "stream_reset"),
                      last)
        st = [s for s in o.requests if s.path == "/up"][0]
        o.wait_for(lambda: st.reset is not None or
                   o.connections[0].closed.is_set(), 10)
        rsts = [e for e in o.events("rst") if e[1] == st.sid]
        goaways = o.events("goaway")
        self.assertTrue(
            (rsts and rsts[0][2] == h2.ERRORS["FLOW_CONTROL_ERROR"]) or
            (goaways and goaways[0][2] == h2.ERRORS["FLOW_CONTROL_ERROR"]),
            f"no FLOW_CONTROL_ERROR from hconnd: {rsts} {goaways}")
        self.assertServes(o)


class Floods(H2Case):

    def rss_guard(self):
        """A check, at the end, that the daemon's peak RSS grew by less
        than 64 MiB over what it was now (skipped under sanitizers)."""
        if sanitized():
            return lambda: None
        before = self.daemon.peak_rss_kib()

        def check():
            grew = self.daemon.peak_rss_kib() - before
            self.assertLess(grew, 64 * 1024,
                            f"hconnd's peak RSS grew by {grew} KiB")
        return check

    def test_continuation_flood(self):
        # A header block that never ends: CONTINUATION frames of 16 KiB
        # literals, 64 MiB in all unless hconnd stops it first.
        def flood(origin, conn, st):
            field = h2.hpack_encode([("x-flood", "f" * 16000)])
            if not origin.send(conn, h2.frame(h2.HEADERS, 0, st.sid,
                                              h2.hpack_encode(
                                                  [(":status", "200")]))):
                return False
            for _ in range(4096):
                if not origin.send(conn, h2.frame(h2.CONTINUATION, 0,
                                                  st.sid, field)):
                    return False
            return True
        guard = self.rss_guard()
        o = self.origin({"/flood": [("call", flood), ("hold",)]})
        w = self.wire(self.daemon)
        head, _, last = self.get(w, 1, o.url("/flood"))
        self.assertIsNone(head)
        self.assertH2Error(last, ("limit_exceeded", "too_many_headers",
                                  "protocol_error"))
        guard()
        self.assertServes(o)

    def test_empty_continuation_flood(self):
        # Many empty CONTINUATION frames, then the end of the block: cheap
        # for the origin, must stay cheap for hconnd (CVE-2024-27316's
        # shape): served or refused, never stuck.
        def flood(origin, conn, st):
            origin.send(conn, h2.frame(h2.HEADERS, 0, st.sid,
                                       h2.hpack_encode([(":status", "200")])))
            empty = h2.frame(h2.CONTINUATION, 0, st.sid) * 1000
            for _ in range(100):
                if not origin.send(conn, empty):
                    return False
            origin.send(conn, h2.frame(h2.CONTINUATION, h2.END_HEADERS,
                                       st.sid, h2.hpack_encode(
                                           [("content-length", "2")])))
            return origin.send_data(conn, st, b"ok", True)
        guard = self.rss_guard()
        o = self.origin({"/flood": [("call", flood)]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/flood"), timeout=20)
        if "error" in last:
            self.assertH2Error(last, ("protocol_error", "limit_exceeded"))
        else:
            self.assertEqual(body, b"ok")
        guard()
        self.assertServes(o)

    def test_too_many_header_fields(self):
        fields = [(f"x-f{i}", "v") for i in range(150)]
        o = self.origin({"/many": [("headers", 200, fields, True)]})
        w = self.wire(self.daemon)
        head, _, last = self.get(w, 1, o.url("/many"))
        self.assertIsNone(head)
        self.assertH2Error(last, "too_many_headers")
        self.assertServes(o)

    def test_head_bigger_than_max_response_head_bytes(self):
        # 40 fields of 32 KiB: 1.25 MiB, over the 1 MiB default.
        fields = [(f"x-big{i}", "b" * 32768) for i in range(40)]
        guard = self.rss_guard()
        o = self.origin({"/big-head": [("headers", 200, fields, True)]})
        w = self.wire(self.daemon)
        head, _, last = self.get(w, 1, o.url("/big-head"))
        self.assertIsNone(head)
        self.assertH2Error(last, ("limit_exceeded", "protocol_error"))
        guard()
        self.assertServes(o)

    def flood_then_answer(self, frame_bytes, count):
        def flood(origin, conn, st):
            for _ in range(count // 100):
                if not origin.send(conn, frame_bytes * 100):
                    return False
            return True
        guard = self.rss_guard()
        o = self.origin({"/flood": [("call", flood), respond_path()]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/flood"), timeout=30)
        if "error" in last:
            # nghttp2 ends a session whose peer floods it faster than it
            # can answer: acceptable, if named.
            self.assertH2Error(last, ("protocol_error",))
        else:
            self.assertEqual(body, b"path /flood\n")
        guard()
        self.assertServes(o)
        return o

    def test_settings_flood(self):
        o = self.flood_then_answer(
            h2.settings_frame({h2.MAX_CONCURRENT_STREAMS: 100}), 20000)
        acks = [e for e in o.connections[0].events if e[0] == "settings_ack"]
        self.assertGreater(len(acks), 0)

    def test_ping_flood(self):
        o = self.flood_then_answer(h2.ping_frame(b"flooding"), 20000)
        self.assertGreater(len(o.connections[0].frames("ping_ack")), 0)


class Windows(H2Case):

    def test_upload_held_back_by_a_full_socket_goes_on(self):
        # The origin opens wide windows (and sends nothing more until the
        # response), then stops reading: the upload
        # fills the socket, then hconnd's output up to its high mark,
        # where nghttp2 stops serialising. Once the origin reads again the
        # output drains, the write goes on from there, and the body
        # arrives whole.
        size = 8 * 1024 * 1024
        payload = harness.big_bytes(size)
        o = self.origin(
            {"/up": [("head_only",),
                     ("frame", h2.WINDOW_UPDATE, 0, 0,
                      struct.pack(">I", 1 << 30)),
                     ("call", lambda o, c, st: o.pause_reading()),
                     ("sleep", 2),
                     ("call", lambda o, c, st: o.pause_reading(False)),
                     ("wait_body",),
                     ("headers", 200, [("content-length", "2")]),
                     ("data", b"ok", True)]},
            settings={h2.INITIAL_WINDOW_SIZE: (1 << 31) - 1,
                      h2.MAX_CONCURRENT_STREAMS: 100},
            window_updates=False)  # nothing comes back to wake hconnd
        w = self.wire(self.daemon, timeout=60)
        head, body, last = w.request(1, "POST", o.url("/up"), payload,
                                     data=size, http_version="2")
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"ok")
        st = [s for s in o.requests if s.path == "/up"][0]
        self.assertEqual(len(st.body), size)
        self.assertEqual(bytes(st.body), payload)

    def test_window_that_never_opens_stalls_only_the_upload(self):
        # Stream windows start at 0 and the origin never sends a
        # WINDOW_UPDATE: the upload cannot send a byte and times out; a
        # GET on the same connection needs no window and is served.
        o = self.origin({"/up": [("head_only",), ("hold",)]},
                        settings={h2.INITIAL_WINDOW_SIZE: 0,
                                  h2.MAX_CONCURRENT_STREAMS: 100},
                        window_updates=False)
        up = self.wire(self.daemon)
        up.send({"id": 1, "method": "POST", "url": o.url("/up"),
                 "http_version": "2", "timeout": 2}, b"u" * 100000)
        self.assertTrue(o.wait_requests(1))
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 2, o.url("/ok"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, OK_BODY)
        head, _, last = up.read_response(1)
        self.assertIsNone(head)
        self.assertH2Error(last, "timeout")
        st = [s for s in o.requests if s.path == "/up"][0]
        # Before the origin's SETTINGS arrive the window is the default
        # 65535 (RFC 9113 6.9.2): at most that much may have gone.
        self.assertLessEqual(len(st.body), 65535, "DATA sent with no window")
        self.assertEqual({s.conn_index for s in o.requests}, {0})


class Interim(H2Case):

    def test_early_hints_are_not_forwarded(self):
        o = self.origin({"/hints": [
            ("headers", 103, [("link", "</style.css>; rel=preload")]),
            ("headers", 103, [("link", "</app.js>; rel=preload")]),
            ("headers", 200, [("content-length", "5")]),
            ("data", b"final", True)]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/hints"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"final")
        self.assertEqual(harness.header_values(head, "link"), [])

    def test_100_continue(self):
        # The origin answers 100 to the head, then reads the body and
        # echoes it: the client gets "continue", sends, gets the echo.
        def echo(origin, conn, st):
            origin.send_headers(conn, st.sid, [
                (":status", "200"), ("content-length", str(len(st.body)))])
            return origin.send_data(conn, st, bytes(st.body), True)
        o = self.origin({"/expect": [("head_only",),
                                     ("headers", 100, []), ("wait_body",),
                                     ("call", echo)]})
        w = self.wire(self.daemon)
        w.send({"id": 1, "method": "PUT", "url": o.url("/expect"),
                "body": "stream", "length": 6, "expect_continue": True,
                "http_version": "2"})
        msg = w.read_message()
        self.assertEqual(msg, {"id": 1, "continue": True})
        w.send({"id": 1, "data": 6}, b"upload")
        w.send({"id": 1, "end": True})
        head, body, last = w.read_response(1)
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"upload")
        st = [s for s in o.requests if s.path == "/expect"][0]
        # HTTP/2 has no Expect-less 100 of its own: the field goes as is.
        self.assertEqual(st.header("expect"), "100-continue")

    def test_trailers(self):
        o = self.origin({"/trailers": [
            ("headers", 200, []), ("data", b"with trailers"),
            ("trailers", [("x-checksum", "abc123"), ("x-more", "1")])]})
        w = self.wire(self.daemon)
        head, body, last = self.get(w, 1, o.url("/trailers"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"with trailers")
        self.assertEqual(last.get("trailers"),
                         [["x-checksum", "abc123"], ["x-more", "1"]])

    def test_large_heads_and_trailers_arrive_whole(self):
        # Fields are copied into one buffer per stream that grows (moving
        # the fields already in it) and is reused by the next streams:
        # every name and value must arrive as sent, each time, and small
        # responses between the large ones must not see stale fields.
        fields = [(f"x-f{i:02}", f"{i:02}" + chr(97 + i % 26) * (700 + i))
                  for i in range(60)]
        trailers = [(f"x-t{i}", "t" * (3000 + i)) for i in range(5)]
        o = self.origin({"/large": [("headers", 200, fields),
                                    ("data", b"body"),
                                    ("trailers", trailers)]})
        w = self.wire(self.daemon)
        rid = 0
        for _ in range(3):
            rid += 1
            head, body, last = self.get(w, rid, o.url("/large"))
            self.assertOkResponse(head, last)
            self.assertEqual(body, b"body")
            got = [tuple(f) for f in head["headers"]
                   if f[0].startswith("x-f")]
            self.assertEqual(got, fields)
            self.assertEqual([tuple(f) for f in last["trailers"]], trailers)
            rid += 1
            head, body, last = self.get(w, rid, o.url("/ok"))
            self.assertOkResponse(head, last)
            self.assertEqual(body, OK_BODY)
            self.assertFalse(any(f[0].startswith("x-") for f in
                                 head["headers"] + last.get("trailers", [])))
        self.assertEqual(len(o.connections), 1)


class OverTls(H2Case):
    """The scripted origin behind TLS with ALPN: faults and choices there."""

    def tls_origin(self, scenarios, alpn=("h2",)):
        d = tempfile.mkdtemp(prefix="hconn-h2-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        harness.make_certificates(d)
        with open(os.path.join(d, "ca.crt")) as f:
            self.tls = {"ca_pem": f.read()}
        return self.origin(scenarios, tls_dir=d, alpn=alpn)

    def test_reset_and_reuse_over_tls(self):
        o = self.tls_origin({"/rst": [("rst", "INTERNAL_ERROR")]})
        w = self.wire(self.daemon)
        head, _, last = w.request(1, "GET", o.url("/rst"), tls=self.tls)
        self.assertIsNone(head)
        self.assertH2Error(last, "stream_reset", contains=("INTERNAL_ERROR",))
        # No http_version: ALPN offered h2 and the origin chose it.
        head, body, last = w.request(2, "GET", o.url("/ok"), tls=self.tls)
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 20)
        self.assertEqual(body, OK_BODY)
        self.assertEqual(len(o.connections), 1)
        self.assertEqual(o.connections[0].alpn, "h2")

    def test_http2_required_but_not_chosen(self):
        # The server does not choose h2: with "2" the request fails with
        # unknown_protocol, and nothing is sent.
        o = self.tls_origin({}, alpn=("http/1.1",))
        w = self.wire(self.daemon)
        head, _, last = w.request(1, "GET", o.url("/ok"), tls=self.tls,
                                  http_version="2")
        self.assertIsNone(head)
        self.assertH2Error(last, "unknown_protocol")
        self.assertEqual(o.requests, [])


class TurnedOff(harness.IntegrationTest):

    def test_http2_false_refuses_version_2(self):
        why = h2.h2_daemon_missing()
        if why:
            self.skipTest(why)
        o = h2.start_h2_origin(self, {"/ok": OK})
        d = self.start_daemon_config(http2=False)
        w = self.wire(d)
        head, _, last = w.request(1, "GET", o.url("/ok"), http_version="2")
        self.assertIsNone(head)
        self.assertEqual(last.get("error"), "unsupported", last)
        self.assertIn("http2: false", last.get("message", ""))
        self.assertEqual(o.connections, [])


if __name__ == "__main__":
    harness.main()
