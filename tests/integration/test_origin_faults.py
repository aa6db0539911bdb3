#!/usr/bin/env python3
"""Origin faults: the fault origin sends exact bytes (cut heads, bad framing,
bad chunks, limits, stalls, resets) and each one must come back as its own
explicit error, never as a silently short or wrong body. Also the
well-formed but unusual responses that must pass: read-to-close bodies,
trailers, interim 1xx heads, bodies dripped a byte at a time."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import free_port, http_response  # noqa: E402

OK_BODY = b"origin ok\n"
H200 = b"HTTP/1.1 200 OK\r\n"

SCENARIOS = {
    "/ok": [("send", http_response(200, OK_BODY))],
    # Heads cut short or never sent.
    "/close-at-once": [("close",)],
    "/partial-head": [("send", H200 + b"Content-Length: 5\r\n"), ("close",)],
    # Bodies cut short.
    "/chunked-cut": [("send", H200 + b"Transfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n5\r\nwo"), ("close",)],
    # Bad framing.
    "/cl-and-te": [("send", H200 + b"Content-Length: 5\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
                   ("close",)],
    "/cl-conflict": [("send", H200 + b"Content-Length: 5\r\n"
                      b"Content-Length: 6\r\n\r\nhello!"), ("close",)],
    "/cl-not-a-number": [("send", H200 + b"Content-Length: 5x\r\n\r\nhello"),
                         ("close",)],
    "/bad-chunk-size": [("send", H200 + b"Transfer-Encoding: chunked\r\n\r\n"
                         b"zz\r\nhello\r\n0\r\n\r\n"), ("close",)],
    "/te-gzip": [("send", H200 + b"Transfer-Encoding: gzip\r\n\r\nhello"),
                 ("close",)],
    "/bad-status-line": [("send", b"HELLO THERE\r\n\r\n"), ("close",)],
    "/http2-status": [("send", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
                      ("close",)],
    # Limits (http.client's: 100 header fields, 65536 bytes a line).
    "/too-many-headers": [("send", H200 + b"".join(
        b"X-H%d: %d\r\n" % (i, i) for i in range(101))
        + b"Content-Length: 0\r\n\r\n"), ("close",)],
    "/long-header-line": [("send", H200 + b"X-Long: " + b"a" * 70000
                           + b"\r\nContent-Length: 0\r\n\r\n"), ("close",)],
    # Stalls and resets.
    "/stall-before-head": [("keep_open",)],
    "/stall-in-body": [("send", H200 + b"Content-Length: 10\r\n\r\n12345"),
                       ("keep_open",)],
    "/reset-in-body": [("send", H200 + b"Content-Length: 100000\r\n\r\n"
                        + b"r" * 1000), ("sleep", 0.1), ("reset",)],
    # Well-formed responses that must pass intact.
    "/read-to-close": [("send", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                        b"until the end\n"), ("close",)],
    "/http10": [("send", b"HTTP/1.0 200 OK\r\n\r\nold style\n"), ("close",)],
    "/trailers": [("send", H200 + b"Transfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n0\r\nX-Checksum: 42\r\n\r\n")],
    "/interim": [("send", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                  + http_response(200, OK_BODY))],
    "/drip": [("drip", H200 + b"Content-Length: 20\r\nX-Drip: yes\r\n\r\n"
               b"0123456789abcdefghij", 1, 0.002)],
    "/no-content": [("send", b"HTTP/1.1 204 No Content\r\n\r\n")],
    "/stray-bytes": [("send", http_response(200, b"ok") + b"STRAY")],
}


class OriginFaults(harness.IntegrationTest):

    def setUp(self):
        self.origin = self.start_origin(SCENARIOS)
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)
        self.rid = 0

    def get(self, path, **fields):
        self.rid += 1
        return self.w.request(self.rid, "GET", self.origin.url(path), **fields)

    def assertFails(self, path, error, with_head, **fields):
        head, body, last = self.get(path, **fields)
        self.assertError(last, error, rid=self.rid)
        if with_head:
            self.assertIsNotNone(head, f"{path}: no head before {last!r}")
        else:
            self.assertIsNone(head, f"{path}: unexpected head {head!r}")
            self.assertEqual(body, b"")
        # The session goes on.
        self.assertPasses("/ok", OK_BODY)
        return head, body, last

    def assertPasses(self, path, expected_body, status=200):
        head, body, last = self.get(path)
        self.assertOkResponse(head, last, status)
        self.assertEqual(body, expected_body)
        return head, last

    # Heads cut short -------------------------------------------------------
    def test_close_before_any_byte_is_remote_disconnected(self):
        self.assertFails("/close-at-once", "remote_disconnected", False)

    def test_close_inside_the_head_is_remote_disconnected(self):
        self.assertFails("/partial-head", "remote_disconnected", False)

    # Bodies cut short ------------------------------------------------------
    def test_chunked_body_cut_short_is_incomplete_read(self):
        head, body, err = self.assertFails("/chunked-cut", "incomplete_read",
                                           True)
        self.assertNotIn("length", head)
        self.assertTrue(b"hellowo".startswith(body), body)

    def test_reset_inside_the_body_is_an_explicit_error(self):
        head, body, err = self.get("/reset-in-body")
        self.assertIsNotNone(head)
        self.assertEqual(head["length"], 100000)
        self.assertIn("error", err, f"reset body ended without error: {err!r}")
        self.assertIn(err["error"], ("incomplete_read", "connection_closed"),
                      err)
        self.assertLess(len(body), 100000)
        self.assertPasses("/ok", OK_BODY)

    # Bad framing -----------------------------------------------------------
    def test_content_length_with_chunked_is_bad_framing(self):
        self.assertFails("/cl-and-te", "bad_framing", False)

    def test_conflicting_content_lengths_are_bad_content_length(self):
        self.assertFails("/cl-conflict", "bad_content_length", False)

    def test_non_numeric_content_length_is_bad_content_length(self):
        self.assertFails("/cl-not-a-number", "bad_content_length", False)

    def test_bad_chunk_size_is_bad_chunk(self):
        self.assertFails("/bad-chunk-size", "bad_chunk", True)

    def test_unknown_transfer_encoding(self):
        self.assertFails("/te-gzip", "unknown_transfer_encoding", False)

    def test_garbage_status_line_is_bad_status_line(self):
        self.assertFails("/bad-status-line", "bad_status_line", False)

    def test_http2_status_line_is_unknown_protocol(self):
        self.assertFails("/http2-status", "unknown_protocol", False)

    # Limits ----------------------------------------------------------------
    def test_more_than_100_header_fields_is_too_many_headers(self):
        self.assertFails("/too-many-headers", "too_many_headers", False)

    def test_header_line_over_65536_bytes_is_line_too_long(self):
        self.assertFails("/long-header-line", "line_too_long", False)

    # Stalls and refusals ---------------------------------------------------
    def test_stall_before_the_head_times_out(self):
        self.assertFails("/stall-before-head", "timeout", False, timeout=0.5)

    def test_stall_inside_the_body_times_out_after_the_head(self):
        head, body, err = self.assertFails("/stall-in-body", "timeout", True,
                                           timeout=0.5)
        self.assertEqual(body, b"12345")

    def test_closed_port_is_connect_failed(self):
        port = free_port()
        self.rid += 1
        head, body, err = self.w.request(
            self.rid, "GET", f"http://127.0.0.1:{port}/")
        self.assertIsNone(head)
        self.assertError(err, "connect_failed", rid=self.rid)
        self.assertPasses("/ok", OK_BODY)

    # Unusual but valid -----------------------------------------------------
    def test_read_to_close_body_is_complete(self):
        head, last = self.assertPasses("/read-to-close", b"until the end\n")
        self.assertNotIn("length", head)
        # That connection cannot be reused: the next request opens another.
        n = len(self.origin.connections)
        self.assertPasses("/ok", OK_BODY)
        self.assertEqual(len(self.origin.connections), n + 1)

    def test_http10_response_reads_to_close(self):
        head, last = self.assertPasses("/http10", b"old style\n")
        self.assertEqual(head["version"], 10)

    def test_trailers_come_in_the_end_frame(self):
        head, last = self.assertPasses("/trailers", b"abc")
        self.assertEqual(last["trailers"], [["X-Checksum", "42"]])

    def test_interim_103_is_not_the_response(self):
        head, last = self.assertPasses("/interim", OK_BODY)
        self.assertEqual(head["status"], 200)
        self.assertEqual(head["length"], len(OK_BODY))

    def test_response_dripped_a_byte_at_a_time(self):
        head, last = self.assertPasses("/drip", b"0123456789abcdefghij")
        self.assertEqual(harness.header_value(head, "X-Drip"), "yes")

    def test_204_has_no_body_and_the_connection_is_not_kept(self):
        # A body some origins send after a 204 anyway would be read as
        # the next request's response, perhaps another user's.
        n = len(self.origin.connections)
        head, last = self.assertPasses("/no-content", b"", status=204)
        head, last = self.assertPasses("/no-content", b"", status=204)
        self.assertIs(head["reused"], False)
        self.assertEqual(len(self.origin.connections), n + 2)

    def test_stray_bytes_after_a_response_drop_the_connection(self):
        self.assertPasses("/stray-bytes", b"ok")
        n = len(self.origin.connections)
        head, last = self.assertPasses("/ok", OK_BODY)
        self.assertIs(head["reused"], False)
        self.assertEqual(len(self.origin.connections), n + 1)
        self.assertEqual([r.target for r in self.origin.connections[-2].requests],
                         ["/stray-bytes"])


if __name__ == "__main__":
    harness.main()
