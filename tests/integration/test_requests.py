#!/usr/bin/env python3
"""Requests end to end: hconn (the CLI) and raw protocol clients → hconnd →
a real nginx on loopback. GET, HEAD, POST, PUT, 404, chunked, repeated
headers, -i and -o."""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (BIG_SIZE, CHUNKED_BODY, HEADERS_BODY, SMALL_BODY,  # noqa: E402
                     big_bytes, header_value)

# Binary data with NUL bytes, CR/LF and every byte value.
BINARY = bytes(range(256)) * 3 + b"\x00\x00\r\n\x00end"


def parse_included_head(out):
    """Splits `hconn -i` output into (status line, [(name, value)], body).
    The head's lines end in CRLF, as curl -i prints them."""
    sep = out.find(b"\r\n\r\n")
    if sep < 0:
        raise AssertionError(f"no CRLF CRLF after the head in {out[:400]!r}")
    lines = out[:sep].decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise AssertionError(f"bad header line {line!r} in {out[:400]!r}")
        headers.append((name, value.strip()))
    return lines[0], headers, out[sep + 4:]


class NginxTestCase(harness.IntegrationTest):
    """One nginx for the class; a fresh hconnd for each test."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls)

    def setUp(self):
        self.daemon = self.start_daemon()

    def url(self, path):
        return self.nginx.url(path)


class RequestsThroughTheCli(NginxTestCase):
    """The hconn command, HCONN_SOCKET pointing at the test daemon."""

    def setUp(self):
        harness.require_binary(self, harness.HCONN, "hconn command")
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="hconn-cli-")
        self.addCleanup(self.tmp.cleanup)

    def hconn(self, *args, **kw):
        return self.run_hconn(self.daemon, *args, **kw)

    def assertSucceeded(self, r):
        self.assertEqual(r.returncode, 0,
                         f"hconn exited {r.returncode}; stderr: {r.stderr!r}")

    def test_get_prints_the_body_exactly(self):
        r = self.hconn(self.url("/small.txt"))
        self.assertSucceeded(r)
        self.assertEqual(r.stdout, SMALL_BODY)

    def test_get_binary_body_of_one_mebibyte(self):
        r = self.hconn(self.url("/big.bin"))
        self.assertSucceeded(r)
        self.assertEqual(len(r.stdout), BIG_SIZE)
        self.assertEqual(r.stdout, big_bytes())

    def test_head_with_dash_capital_i_prints_the_head_and_no_body(self):
        r = self.hconn("-I", self.url("/small.txt"))
        self.assertSucceeded(r)
        status, headers, body = parse_included_head(r.stdout)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertIn(("Content-Length", "12"), headers)
        self.assertIn(("X-Request-Method", "HEAD"), headers)
        self.assertEqual(body, b"")
        self.assertIn('"HEAD /small.txt HTTP/1.1" 200 0',
                      self.nginx.wait_access_log('"HEAD /small.txt HTTP/1.1"'))

    def test_post_with_dash_d_is_echoed(self):
        r = self.hconn("-d", "a=1&b=two words", self.url("/echo"))
        self.assertSucceeded(r)
        self.assertEqual(r.stdout, b"a=1&b=two words")

    def test_post_data_binary_from_file_with_nul_bytes_is_echoed(self):
        path = os.path.join(self.tmp.name, "payload.bin")
        with open(path, "wb") as f:
            f.write(BINARY)
        r = self.hconn("--data-binary", "@" + path, self.url("/echo"))
        self.assertSucceeded(r)
        self.assertEqual(r.stdout, BINARY)
        self.assertIn('"POST /echo HTTP/1.1" 200',
                      self.nginx.wait_access_log('"POST /echo HTTP/1.1"'))

    def test_put_one_mebibyte_then_get_it_back(self):
        path = os.path.join(self.tmp.name, "up.bin")
        with open(path, "wb") as f:
            f.write(big_bytes())
        r = self.hconn("-X", "PUT", "--data-binary", "@" + path,
                       self.url("/dav/cli/up.bin"))
        self.assertSucceeded(r)
        with open(os.path.join(self.nginx.root, "dav", "cli", "up.bin"),
                  "rb") as f:
            self.assertEqual(f.read(), big_bytes())
        r = self.hconn(self.url("/dav/cli/up.bin"))
        self.assertSucceeded(r)
        self.assertEqual(r.stdout, big_bytes())

    def test_404_without_dash_f_prints_the_error_page_and_exits_0(self):
        r = self.hconn(self.url("/missing"))
        self.assertSucceeded(r)
        self.assertIn(b"<title>404 Not Found</title>", r.stdout)

    def test_404_with_dash_f_exits_with_the_http_error_code(self):
        r = self.hconn("-f", self.url("/missing"))
        self.assertEqual(r.returncode, harness.error_codes()["http_error"],
                         f"stderr: {r.stderr!r}")
        self.assertIn(b"http_error", r.stderr)
        self.assertIn(b"404", r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_chunked_response_body_is_exact(self):
        r = self.hconn(self.url("/chunked"))
        self.assertSucceeded(r)
        self.assertEqual(r.stdout, CHUNKED_BODY)

    def test_dash_i_prints_status_line_headers_blank_line_body(self):
        r = self.hconn("-i", self.url("/headers"))
        self.assertSucceeded(r)
        status, headers, body = parse_included_head(r.stdout)
        self.assertEqual(status, "HTTP/1.1 200 OK")
        self.assertEqual(body, HEADERS_BODY)
        self.assertIn(("Content-Length", "8"), headers)
        self.assertIn(("X-Request-Method", "GET"), headers)
        dups = [(n, v) for n, v in headers if n == "X-Dup"]
        self.assertEqual(dups, [("X-Dup", "a"), ("X-Dup", "b")])

    def test_dash_o_writes_the_body_to_a_file(self):
        out = os.path.join(self.tmp.name, "out.bin")
        r = self.hconn("-o", out, self.url("/big.bin"))
        self.assertSucceeded(r)
        self.assertEqual(r.stdout, b"")
        with open(out, "rb") as f:
            self.assertEqual(f.read(), big_bytes())

    def test_custom_request_header_reaches_nginx_as_given(self):
        r = self.hconn("-H", "X-Test: 1", "-d", "", "-X", "PUT",
                       self.url("/dav/cli/empty.txt"))
        self.assertSucceeded(r)
        with open(os.path.join(self.nginx.root, "dav", "cli", "empty.txt"),
                  "rb") as f:
            self.assertEqual(f.read(), b"")

    def test_unreachable_daemon_fails_with_daemon_unavailable(self):
        r = self.run_hconn(self.daemon, self.url("/small.txt"),
                           env={"HCONN_SOCKET": self.daemon.socket + ".none"})
        self.assertEqual(r.returncode,
                         harness.error_codes()["daemon_unavailable"],
                         f"stderr: {r.stderr!r}")
        self.assertIn(b"daemon_unavailable", r.stderr)
        self.assertEqual(r.stdout, b"")


class RequestsOverTheWire(NginxTestCase):
    """Raw protocol messages, checking every field of the replies."""

    def setUp(self):
        super().setUp()
        self.w = self.wire(self.daemon)

    def test_get_head_fields_and_body(self):
        head, body, end = self.w.request(1, "GET", self.url("/small.txt"))
        self.assertOkResponse(head, end)
        self.assertEqual(head["id"], 1)
        self.assertEqual(head["reason"], "OK")
        self.assertEqual(head["version"], 11)
        self.assertEqual(head["length"], 12)
        self.assertIs(head["reused"], False)
        self.assertEqual(header_value(head, "Content-Length"), "12")
        self.assertEqual(header_value(head, "Content-Type"), "text/plain")
        self.assertEqual(header_value(head, "X-Request-Method"), "GET")
        for pair in head["headers"]:
            self.assertIsInstance(pair, list)
            self.assertEqual(len(pair), 2)
        self.assertEqual(body, SMALL_BODY)
        self.assertEqual(end, {"id": 1, "end": True, "trailers": []})

    def test_string_ids_are_echoed(self):
        head, body, end = self.w.request("req-a", "GET",
                                         self.url("/small.txt"))
        self.assertOkResponse(head, end)
        self.assertEqual(head["id"], "req-a")
        self.assertEqual(body, SMALL_BODY)

    def test_host_port_target_instead_of_url(self):
        self.w.send({"id": 1, "method": "GET", "host": "127.0.0.1",
                     "port": self.nginx.port, "target": "/small.txt"})
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)

    def test_head_request_has_no_body(self):
        head, body, end = self.w.request(1, "HEAD", self.url("/small.txt"))
        self.assertOkResponse(head, end)
        self.assertEqual(header_value(head, "Content-Length"), "12")
        self.assertEqual(header_value(head, "X-Request-Method"), "HEAD")
        self.assertEqual(body, b"")
        # The GET after it gets its own body: the HEAD's connection is not
        # kept (a body sent after a HEAD would be read as the next
        # response), so nothing the HEAD left can reach it.
        head, body, end = self.w.request(2, "GET", self.url("/small.txt"))
        self.assertOkResponse(head, end)
        self.assertIs(head["reused"], False)
        self.assertEqual(body, SMALL_BODY)

    def test_chunked_response_has_no_length_and_exact_body(self):
        head, body, end = self.w.request(1, "GET", self.url("/chunked"))
        self.assertOkResponse(head, end)
        self.assertNotIn("length", head)
        self.assertEqual(header_value(head, "Transfer-Encoding"), "chunked")
        self.assertEqual(body, CHUNKED_BODY)
        self.assertEqual(end.get("trailers"), [])

    def test_repeated_headers_come_as_separate_pairs_in_order(self):
        head, body, end = self.w.request(1, "GET", self.url("/headers"))
        self.assertOkResponse(head, end)
        self.assertEqual(body, HEADERS_BODY)
        dups = [p for p in head["headers"] if p[0] == "X-Dup"]
        self.assertEqual(dups, [["X-Dup", "a"], ["X-Dup", "b"]])
        i = head["headers"].index(["X-Dup", "a"])
        self.assertEqual(head["headers"][i + 1], ["X-Dup", "b"])

    def test_post_inline_binary_body_is_echoed(self):
        head, body, end = self.w.request(1, "POST", self.url("/echo"),
                                         payload=BINARY)
        self.assertOkResponse(head, end)
        self.assertEqual(header_value(head, "X-Request-Method"), "POST")
        self.assertEqual(body, BINARY)

    def test_post_streamed_body_is_echoed(self):
        self.w.send({"id": 1, "method": "POST", "url": self.url("/echo"),
                     "body": "stream"})
        parts = [b"first\x00", b"second\r\n", BINARY]
        for p in parts:
            self.w.send({"id": 1}, p)
        self.w.send({"id": 1, "end": True})
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"".join(parts))

    def test_post_without_body_sends_content_length_zero(self):
        head, body, end = self.w.request(1, "POST", self.url("/echo"))
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"")

    def test_put_one_mebibyte_then_get_it_back(self):
        data = big_bytes()
        head, body, end = self.w.request(1, "PUT", self.url("/dav/w/x.bin"),
                                         payload=data)
        self.assertOkResponse(head, end, status=201)
        head, body, end = self.w.request(2, "GET", self.url("/dav/w/x.bin"))
        self.assertOkResponse(head, end)
        self.assertEqual(head["length"], BIG_SIZE)
        self.assertEqual(len(body), BIG_SIZE)
        self.assertEqual(body, data)

    def test_404_is_a_response_not_an_error(self):
        head, body, end = self.w.request(1, "GET", self.url("/missing"))
        self.assertOkResponse(head, end, status=404)
        self.assertEqual(head["reason"], "Not Found")
        self.assertIn(b"<title>404 Not Found</title>", body)
        self.assertEqual(head["length"], len(body))

    def test_header_object_form_is_accepted(self):
        head, body, end = self.w.request(
            1, "GET", self.url("/small.txt"), headers={"Accept": "*/*"})
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)

    def test_hello_op(self):
        self.w.send({"op": "hello", "id": 7})
        msg = self.w.read_message()
        self.assertNotIn("error", msg, msg)
        self.assertEqual(msg.get("id"), 7, msg)
        self.assertEqual(msg.get("op"), "hello", msg)
        self.assertEqual(msg.get("version"), 1, msg)
        self.assertTrue(str(msg.get("server", "")).startswith("hconnd/"), msg)

    def test_stats_op_counts_this_sessions_requests(self):
        self.w.request(1, "GET", self.url("/small.txt"))
        self.w.request(2, "GET", self.url("/small.txt"))
        self.w.send({"op": "stats", "id": "s"})
        msg = self.w.read_message()
        self.assertEqual(msg.get("id"), "s", msg)
        self.assertEqual(msg.get("op"), "stats", msg)
        self.assertEqual(msg.get("requests"), 2, msg)
        self.assertEqual(msg.get("responses"), 2, msg)


class RequestHeadAsTheOriginSeesIt(harness.IntegrationTest):
    """The fault origin records the request head byte for byte: the daemon
    adds Host, Accept-Encoding and Content-Length as http.client does, and
    passes the caller's fields in order, duplicates kept."""

    def setUp(self):
        self.origin = self.start_origin(
            {None: [("send", harness.http_response(200, b"ok"))]})
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)

    def only_request(self):
        self.assertTrue(self.origin.wait_requests(1))
        self.assertEqual(len(self.origin.requests), 1, self.origin.requests)
        return self.origin.requests[0]

    def test_get_sends_host_accept_encoding_and_fields_in_order(self):
        head, body, end = self.w.request(
            1, "GET", self.origin.url("/p?q=1"),
            headers=[["X-A", "1"], ["X-B", "x y"], ["X-A", "2"]])
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"ok")
        req = self.only_request()
        self.assertEqual((req.method, req.target, req.version),
                         ("GET", "/p?q=1", "HTTP/1.1"))
        self.assertEqual(req.header("Host"), self.origin.hostport)
        self.assertEqual(req.header("Accept-Encoding"), "identity")
        self.assertEqual([h for h in req.headers if h[0].startswith("X-")],
                         [("X-A", "1"), ("X-B", "x y"), ("X-A", "2")])
        self.assertEqual(sorted(n.lower() for n, _ in req.headers),
                         ["accept-encoding", "host", "x-a", "x-a", "x-b"])
        self.assertEqual(req.body, b"")

    def test_post_inline_body_sends_content_length(self):
        head, body, end = self.w.request(1, "POST", self.origin.url("/p"),
                                         payload=BINARY)
        self.assertOkResponse(head, end)
        req = self.only_request()
        self.assertEqual(req.method, "POST")
        self.assertEqual(req.header("Content-Length"), str(len(BINARY)))
        self.assertIsNone(req.header("Transfer-Encoding"))
        self.assertEqual(req.body, BINARY)

    def test_post_without_body_sends_content_length_zero(self):
        head, body, end = self.w.request(1, "POST", self.origin.url("/p"))
        self.assertOkResponse(head, end)
        req = self.only_request()
        self.assertEqual(req.header("Content-Length"), "0")

    def test_get_without_body_sends_no_content_length(self):
        self.w.request(1, "GET", self.origin.url("/p"))
        req = self.only_request()
        self.assertIsNone(req.header("Content-Length"))
        self.assertIsNone(req.header("Transfer-Encoding"))

    def test_streamed_body_without_length_goes_chunked(self):
        self.w.send({"id": 1, "method": "PUT", "url": self.origin.url("/p"),
                     "body": "stream"})
        self.w.send({"id": 1}, b"abc")
        self.w.send({"id": 1}, b"\x00def")
        self.w.send({"id": 1, "end": True})
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        req = self.only_request()
        self.assertEqual(req.header("Transfer-Encoding"), "chunked")
        self.assertIsNone(req.header("Content-Length"))
        self.assertEqual(req.body, b"abc\x00def")

    def test_streamed_body_with_length_sends_content_length(self):
        self.w.send({"id": 1, "method": "PUT", "url": self.origin.url("/p"),
                     "body": "stream", "length": 6})
        self.w.send({"id": 1}, b"abc")
        self.w.send({"id": 1}, b"def")
        self.w.send({"id": 1, "end": True})
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        req = self.only_request()
        self.assertEqual(req.header("Content-Length"), "6")
        self.assertIsNone(req.header("Transfer-Encoding"))
        self.assertEqual(req.body, b"abcdef")

    def test_streamed_body_with_callers_chunked_header_is_chunk_encoded(self):
        # libhconn sends Transfer-Encoding: chunked as a header field of a
        # streamed body (http.client's putheader style). The origin must
        # get one valid chunked body, not raw bytes under a chunked head.
        self.w.send({"id": 1, "method": "POST", "url": self.origin.url("/p"),
                     "body": "stream", "timeout": 5,
                     "headers": [["Transfer-Encoding", "chunked"]]})
        self.w.send({"id": 1}, b"chunk1")
        self.w.send({"id": 1}, b"chunk2")
        self.w.send({"id": 1, "end": True})
        head, body, end = self.w.read_response(1)
        self.assertEqual(self.origin.errors, [],
                         "the origin could not parse the request body")
        self.assertOkResponse(head, end)
        req = self.only_request()
        self.assertEqual([v for n, v in req.headers
                          if n.lower() == "transfer-encoding"], ["chunked"])
        self.assertIsNone(req.header("Content-Length"))
        self.assertEqual(req.body, b"chunk1chunk2")

    def test_skip_host_and_skip_accept_encoding(self):
        self.w.request(1, "GET", self.origin.url("/p"), skip_host=True,
                       skip_accept_encoding=True,
                       headers=[["Host", "example.test"]])
        req = self.only_request()
        self.assertEqual(req.headers, [("Host", "example.test")])

    def test_caller_host_header_replaces_the_automatic_one(self):
        self.w.request(1, "GET", self.origin.url("/p"),
                       headers=[["Host", "example.test"]])
        req = self.only_request()
        self.assertEqual([v for n, v in req.headers if n.lower() == "host"],
                         ["example.test"])


class DaemonLifecycle(NginxTestCase):
    """SIGTERM with a client connected and a pooled upstream connection:
    hconnd exits 0, and the client sees the connection end."""

    def test_sigterm_with_an_idle_client_and_a_pooled_connection(self):
        w = self.wire(self.daemon, timeout=15)
        head, body, end = w.request(1, "GET", self.url("/small.txt"))
        self.assertOkResponse(head, end)
        self.assertEqual(self.daemon.stop(timeout=15), 0)
        w.expect_eof()


class ExpectContinue(harness.IntegrationTest):
    """"expect_continue": the daemon sends Expect: 100-continue, answers
    {"continue": true} when the origin says 100 Continue, and the client
    sends the body only then (PROTOCOL.md 5.4)."""

    def setUp(self):
        self.origin = self.start_origin({
            "/continue": [("head_only",),
                          ("send", b"HTTP/1.1 100 Continue\r\n\r\n"),
                          ("read_body",),
                          ("send", harness.http_response(201, b"got it"))],
            "/refuse": [("head_only",),
                        ("send", harness.http_response(403, b"no")),
                        ("sleep", 1.0), ("close",)],
            "/ok": [("send", harness.http_response(200, b"ok"))],
            # Ignores Expect and waits for the body (RFC 9110 allows it).
            "/deaf": [("head_only",), ("read_body",),
                      ("send", harness.http_response(200, b"heard"))],
            "/417": [("head_only",),
                     ("send", harness.http_response(
                         417, b"", reason="Expectation Failed")),
                     ("keep_open",)],
        })
        config = os.path.join(tempfile.mkdtemp(prefix="hconn-expect-"),
                              "hconnd.json")
        self.addCleanup(shutil.rmtree, os.path.dirname(config))
        with open(config, "w") as f:
            json.dump({"expect_timeout": 0.3}, f)
        self.daemon = self.start_daemon("--config", config)
        self.w = self.wire(self.daemon, timeout=10)

    def test_body_goes_after_expect_timeout_when_the_origin_is_silent(self):
        self.w.send({"id": 1, "method": "POST", "body": "stream",
                     "url": self.origin.url("/deaf"), "expect_continue": True})
        # No 100 comes: after expect_timeout the daemon says go.
        self.assertEqual(self.w.read_message(), {"id": 1, "continue": True})
        self.w.send({"id": 1}, b"abc")
        self.w.send({"id": 1, "end": True})
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"heard")
        req = self.origin.requests[0]
        self.assertEqual(req.header("Transfer-Encoding"), "chunked")
        self.assertEqual(req.body, b"abc")

    def test_inline_body_waits_for_continue_too(self):
        self.w.send({"id": 1, "method": "PUT", "data": 5,
                     "url": self.origin.url("/continue"),
                     "expect_continue": True}, b"hello")
        # The body is held until the origin's 100, which is relayed.
        self.assertEqual(self.w.read_message(), {"id": 1, "continue": True})
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end, status=201)
        self.assertEqual(self.origin.requests[0].body, b"hello")
        self.assertEqual(self.origin.requests[0].header("Expect"),
                         "100-continue")

    def test_417_drops_the_connection_and_keeps_the_body(self):
        head, body, end = self.w.request(1, "PUT", self.origin.url("/417"),
                                         b"hello", data=5,
                                         expect_continue=True)
        self.assertOkResponse(head, end, status=417)
        self.assertEqual(self.origin.requests[0].body, b"")
        # The origin still waits for the 5 announced bytes: never reused.
        head, body, end = self.w.request(2, "GET", self.origin.url("/ok"))
        self.assertOkResponse(head, end)
        self.assertIs(head["reused"], False)

    def test_no_expect_header_without_a_body(self):
        head, body, end = self.w.request(1, "GET", self.origin.url("/ok"),
                                         expect_continue=True)
        self.assertOkResponse(head, end)
        self.assertIsNone(self.origin.requests[0].header("Expect"))

    def test_body_goes_after_continue(self):
        self.w.send({"id": 1, "method": "PUT", "body": "stream", "length": 5,
                     "url": self.origin.url("/continue"),
                     "expect_continue": True})
        msg = self.w.read_message()
        self.skipIfUnsupported(msg)
        self.assertEqual(msg, {"id": 1, "continue": True})
        self.w.send({"id": 1}, b"hello")
        self.w.send({"id": 1, "end": True})
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end, status=201)
        self.assertEqual(body, b"got it")
        req = self.origin.requests[0]
        self.assertEqual(req.header("Expect"), "100-continue")
        self.assertEqual(req.header("Content-Length"), "5")
        self.assertEqual(req.body, b"hello")

    def test_final_response_instead_of_continue_means_no_body(self):
        self.w.send({"id": 1, "method": "PUT", "body": "stream", "length": 5,
                     "url": self.origin.url("/refuse"),
                     "expect_continue": True})
        first = self.w.read_message()
        self.skipIfUnsupported(first)
        self.assertEqual(first.get("status"), 403, first)
        self.w.send({"id": 1, "end": True})
        rest = bytearray()
        while True:
            msg = self.w.read_message()
            self.assertEqual(msg.get("id"), 1, msg)
            if "data" in msg:
                rest += msg["_payload"]
                continue
            self.assertEqual(msg.get("end"), True, msg)
            break
        self.assertEqual(bytes(rest), b"no")
        self.assertEqual(self.origin.requests[0].body, b"")
        # The session goes on.
        head, body, end = self.w.request(2, "GET", self.origin.url("/ok"))
        self.assertOkResponse(head, end)
        self.assertEqual(body, b"ok")


if __name__ == "__main__":
    harness.main()
