#!/usr/bin/env python3
"""Differential test of hconn.client against http.client.

One list of requests against the scripted fault origin (every row of
fault_scenarios.FAULTS that one plain client can meet, plus request shapes
of every body type), each made twice on a fresh connection: with the
standard http.client straight to the origin, and with hconn.client through
hconnd. The two must see the same outcome — status, reason, version,
headers, body, or the same exception class (the most specific class
outside hconn.client) with the same IncompleteRead partial/expected — and
the origin must receive the same requests (method, target, headers in
order, body).

Where hconnd is deliberately stricter or different, the row is listed in
DIFFERENT with the reason and the outcome hconn.client must give instead.
"""

import array
import http.client
import io
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fault_scenarios as fs  # noqa: E402

sys.path.insert(0, os.environ.get("HCONN_PYTHONPATH") or os.path.join(
    harness.SOURCE_ROOT, "client-lib", "python"))
from hconn import client as hclient  # noqa: E402

# Rows that one plain client cannot meet the same way: pool behaviour
# (prime, retries), and what http.client cannot do at all.
SKIPPED = {
    "idle-close-before-reuse-get": "a pooled-connection retry: no "
                                   "equivalent for one TCP connection",
    "idle-close-before-reuse-post": "the same, for a POST",
    "answer-before-request-body": "http.client blocks for ever sending "
                                  "8 MiB to an origin that never reads; "
                                  "hconnd delivers the early 413 "
                                  "(test_fault_table.py)",
}

# Rows where hconn.client deliberately differs: name -> (reason, kind,
# what): kind "ok" with the status hconn.client sees, or "error" /
# "body-error" (before the head / while reading the body) with a class the
# exception must be an instance of.
DIFFERENT = {
    "header-without-colon": (
        "hconnd refuses a header line without a colon (bad_header); "
        "http.client's email parser takes it and the lines after it as "
        "the start of the body", "error", "HconnBadHeaderError"),
    "conflicting-content-length": (
        "two different Content-Length values: hconnd refuses the response "
        "(request smuggling); http.client takes the first",
        "error", "HconnBadContentLengthError"),
    "non-numeric-content-length": (
        "hconnd refuses Content-Length: 5x; http.client ignores it and "
        "reads to the close", "error", "HconnBadContentLengthError"),
    "content-length-with-chunked": (
        "both framings: hconnd refuses (RFC 9112 6.1); http.client reads "
        "chunked", "error", "HconnBadFramingError"),
    "unknown-transfer-encoding": (
        "Transfer-Encoding: gzip: hconnd refuses it; http.client reads to "
        "the close", "error", "UnknownTransferEncoding"),
    "100-headers": (
        "hconnd takes 100 header fields; http.client counts the blank line "
        "that ends the head too and refuses a 100th field", "ok", 200),
    "chunk-data-without-crlf": (
        "hconnd checks the CRLF after chunk data (bad_chunk); http.client "
        "skips two bytes, whatever they are", "body-error", "IncompleteRead"),
    "negative-chunk-size": (
        "a chunk size with a sign: IncompleteRead (bad_chunk); http.client "
        "lets a ValueError from its own read() escape", "body-error",
        "IncompleteRead"),
    "overflowing-chunk-size-17-digits": (
        "an oversized chunk size: IncompleteRead (bad_chunk); http.client "
        "lets an OverflowError escape", "body-error", "IncompleteRead"),
    "overflowing-chunk-size-2-64-minus-1": (
        "the same for 2^64-1", "body-error", "IncompleteRead"),
    "close-inside-head": (
        "a head cut before its blank line is no response: "
        "RemoteDisconnected; http.client takes the lines it got as the "
        "whole head", "error", "RemoteDisconnected"),
    "interim-103": (
        "hconnd skips every interim 1xx response (RFC 9110 15.2); "
        "http.client 3.11 skips only 100 and returns the 103 as the "
        "response", "ok", 200),
    "truncated-chunked": (
        "IncompleteRead.partial holds every body byte received (hellowo); "
        "http.client drops the bytes of the chunk that was cut (hello)",
        "body-error", "IncompleteRead"),
    "truncated-trailers": (
        "a FIN inside the trailer section is an IncompleteRead; "
        "http.client reads trailers to EOF and calls the body complete",
        "body-error", "IncompleteRead"),
    "reset-mid-body": (
        "an RST mid-body: IncompleteRead with what arrived (hconnd reports "
        "incomplete_read); http.client raises ConnectionResetError",
        "body-error", "IncompleteRead"),
}

# Request shapes: (name, callable(conn) making the request, scenario).
OK_SCRIPT = [("send", harness.http_response(200, b"shape ok\n"))]


def _file_body(text=False):
    if text:
        return io.StringIO("text file body \xe9\n" * 100)
    f = tempfile.TemporaryFile()
    f.write(b"binary file body\n" * 1000)
    f.seek(0)
    return f


def _shapes():
    def get_headers(c, p):
        c.request("GET", p, headers={"X-One": "1", "Accept": "text/plain",
                                     "X-Dup": 7})

    def post_bytes(c, p):
        c.request("POST", p, b"hello bytes")

    def post_str(c, p):
        c.request("POST", p, "caf\xe9 latin-1",
                  {"Content-Type": "text/plain"})

    def post_none(c, p):
        c.request("POST", p)

    def put_bytearray(c, p):
        c.request("PUT", p, bytearray(b"bytearray body"))

    def put_memoryview(c, p):
        c.request("PUT", p, memoryview(b"memoryview body"))

    def put_array(c, p):
        c.request("PUT", p, array.array("I", [1, 2, 3]))

    def post_binary_file(c, p):
        c.request("POST", p, _file_body())

    def post_text_file(c, p):
        c.request("POST", p, _file_body(text=True))

    def post_iterable(c, p):
        c.request("POST", p, iter([b"one ", b"", b"two ", b"three"]))

    def post_generator_encode_chunked(c, p):
        c.request("POST", p, (bytes([65 + i]) * 10 for i in range(5)),
                  {"Transfer-Encoding": "chunked"}, encode_chunked=True)

    def post_file_with_length(c, p):
        f = _file_body()
        c.request("POST", p, f, {"Content-Length": "17000"})

    def put_flow(c, p):
        c.putrequest("PUT", p)
        c.putheader("Content-Length", "11")
        c.putheader("X-Int", 42)
        c.endheaders()
        c.send(b"hello")
        c.send(b" world")

    def put_flow_body(c, p):
        c.putrequest("PUT", p, skip_accept_encoding=True)
        c.putheader("Content-Length", 4)
        c.endheaders(b"body")

    def skip_host_own_host(c, p):
        c.putrequest("GET", p, skip_host=True)
        c.putheader("Host", "example.test")
        c.endheaders()

    def host_in_headers(c, p):
        c.request("GET", p, headers={"Host": "other.test:81",
                                     "Accept-Encoding": "gzip"})

    def absolute_form(c, p):
        c.request("GET", f"http://absolute.test:8080{p}")

    def delete(c, p):
        c.request("DELETE", p)

    def options_star(c, p):
        c.request("OPTIONS", p + "?q=1&r=%20")

    return [
        ("get-with-headers", get_headers),
        ("post-bytes", post_bytes),
        ("post-str-latin-1", post_str),
        ("post-without-body", post_none),
        ("put-bytearray", put_bytearray),
        ("put-memoryview", put_memoryview),
        ("put-array", put_array),
        ("post-binary-file-chunked", post_binary_file),
        ("post-text-file-chunked", post_text_file),
        ("post-iterable-chunked", post_iterable),
        ("post-generator-encode-chunked", post_generator_encode_chunked),
        ("post-file-with-content-length", post_file_with_length),
        ("putrequest-send", put_flow),
        ("putrequest-endheaders-body", put_flow_body),
        ("skip-host-own-host", skip_host_own_host),
        ("host-and-accept-encoding-given", host_in_headers),
        ("absolute-form-target", absolute_form),
        ("delete", delete),
        ("query", options_star),
    ]


SHAPES = _shapes()


def outcome(make_conn, make_request, path):
    """What a client sees: ("ok", head, body), ("error", exception) or
    ("body-error", head, exception)."""
    conn = make_conn()
    try:
        try:
            make_request(conn, path)
            r = conn.getresponse()
        except Exception as e:
            return ("error", e)
        head = (r.status, r.reason, r.version, r.getheaders())
        try:
            body = r.read()
        except Exception as e:
            return ("body-error", head, e)
        return ("ok", head, body)
    finally:
        conn.close()


def incomplete(e):
    return (e.partial, e.expected) if isinstance(
        e, http.client.IncompleteRead) else None


def request_record(req):
    return (req.method, req.target, req.headers, req.body)


class Differential(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        scenarios = {}
        for f in fs.FAULTS:
            scenarios[f"/fault/{f.name}/direct"] = list(f.script)
            scenarios[f"/fault/{f.name}/hconn"] = list(f.script)
            for who in ("direct", "hconn"):
                scenarios[f"/fault/{f.name}/{who}-amt"] = list(f.script)
        for name, _ in SHAPES:
            for who in ("direct", "hconn"):
                scenarios[f"/shape/{name}/{who}"] = OK_SCRIPT
        cls.origin = harness.FaultOrigin(scenarios)
        cls.origin.start()
        cls.daemon = harness.Hconnd()
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()
        cls.origin.stop()

    def connections(self, timeout):
        port = self.origin.port
        kw = {} if timeout is None else {"timeout": timeout}

        def direct():
            return http.client.HTTPConnection("127.0.0.1", port, **kw)

        def through_hconnd():
            return hclient.HTTPConnection("127.0.0.1", port,
                                          socket_path=self.daemon.socket,
                                          **kw)
        return direct, through_hconnd

    def requests_for(self, path):
        return [request_record(r) for r in self.origin.requests
                if r.target.startswith(path)]

    def assertSameOutcome(self, name, want, got):
        """got (hconn.client) is what want (http.client) was: the same
        head and body, or an exception that every except clause catching
        http.client's catches too, with the same partial and expected."""
        msg = f"{name}: http.client saw {want!r}, hconn.client {got!r}"
        self.assertEqual(want[0], got[0], msg)
        if want[0] == "ok":
            self.assertEqual(want, got, msg)
            return
        if want[0] == "body-error":
            self.assertEqual(want[1], got[1], msg)
        self.assertIsInstance(got[-1], type(want[-1]), msg)
        self.assertEqual(incomplete(want[-1]), incomplete(got[-1]), msg)

    def run_fault(self, f):
        # Without a timeout of its own a row gets 10 s, so a client that
        # waits for ever fails instead of hanging the test.
        timeout = dict(f.fields).get("timeout", 10)
        direct, through = self.connections(timeout)
        body = f.body or None

        def make(conn, path):
            conn.request(f.method, path, body)
        got = outcome(through, make, f"/fault/{f.name}/hconn")
        if f.name in DIFFERENT:
            reason, kind, what = DIFFERENT[f.name]
            self.assertEqual(got[0], kind, f"{f.name}: {got!r} ({reason})")
            if kind == "ok":
                self.assertEqual(got[1][0], what, got)
            else:
                self.assertIsInstance(got[-1], hclient.HconnError, got)
                self.assertIn(what, [c.__name__
                                     for c in type(got[-1]).__mro__], got)
            return
        want = outcome(direct, make, f"/fault/{f.name}/direct")
        self.assertSameOutcome(f.name, want, got)

    def test_every_request_shape_reaches_the_origin_alike(self):
        direct, through = self.connections(10)
        for name, make in SHAPES:
            with self.subTest(shape=name):
                want = outcome(direct, make, f"/shape/{name}/direct")
                got = outcome(through, make, f"/shape/{name}/hconn")
                self.assertSameOutcome(name, want, got)
                sent = self.requests_for(f"/shape/{name}/direct")
                sent_h = self.requests_for(f"/shape/{name}/hconn")
                if name == "absolute-form-target":
                    sent = [r for r in self.origin.requests
                            if r.target.endswith(f"/shape/{name}/direct")]
                    sent_h = [r for r in self.origin.requests
                              if r.target.endswith(f"/shape/{name}/hconn")]
                    sent = [request_record(r) for r in sent]
                    sent_h = [request_record(r) for r in sent_h]
                self.assertEqual(len(sent), 1, sent)
                self.assertEqual(len(sent_h), 1, sent_h)
                (m, t, h, b), (m2, t2, h2, b2) = sent[0], sent_h[0]
                self.assertEqual((m, t.replace("direct", "hconn"), h, b),
                                 (m2, t2, h2, b2),
                                 f"{name}: the origin got different "
                                 "requests")

    def test_early_answer_to_a_large_upload(self):
        # http.client blocks for ever sending 8 MiB to this origin; through
        # hconnd the 413 arrives, and the connection serves the next one.
        f = fs.BY_NAME["answer-before-request-body"]
        direct, through = self.connections(20)
        c = through()
        self.addCleanup(c.close)
        c.request(f.method, f"/fault/{f.name}/hconn", f.body)
        r = c.getresponse()
        self.assertEqual((r.status, r.read()), (413, b"too large\n"))
        c.request("GET", "/after-the-early-answer")
        self.assertEqual(c.getresponse().status, 404)

    def test_read_amt_never_short(self):
        # http.client's read(amt) returns b"" for a Content-Length body cut
        # short; hconn.client raises IncompleteRead (a body is never cut
        # short silently).
        f = fs.BY_NAME["truncated-content-length"]
        direct, through = self.connections(10)
        outs = []
        for who, make in (("direct", direct), ("hconn", through)):
            c = make()
            c.request("GET", f"/fault/{f.name}/{who}-amt")
            r = c.getresponse()
            first = r.read(30)
            try:
                rest = r.read(100)
                outs.append(("ok", first, rest))
            except http.client.IncompleteRead as e:
                outs.append(("IncompleteRead", first, e.partial, e.expected))
            c.close()
        self.assertEqual(outs[0], ("ok", b"x" * 30, b"x" * 10))
        self.assertEqual(outs[1], ("IncompleteRead", b"x" * 30, b"x" * 10,
                                   60))


def _add_fault_tests():
    for f in fs.FAULTS:
        if f.slow or f.name in SKIPPED or f.prime:
            continue

        def test(self, f=f):
            self.run_fault(f)
        test.__doc__ = f.doc
        setattr(Differential, f"test_fault_{f.ident}", test)


_add_fault_tests()


if __name__ == "__main__":
    harness.main()
