#!/usr/bin/env python3
"""Malformed client messages get the specific error, in order, and the
session goes on; nothing invalid reaches the origin; a body cut short by
the origin is an explicit incomplete_read (protocol, CLI and libhconn)."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_response  # noqa: E402

OK_BODY = b"origin ok\n"
OK = http_response(200, OK_BODY)
TRUNCATED = [("send", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
             ("send", b"x" * 500), ("close",)]


class BadMessages(harness.IntegrationTest):
    """Each test sends bad input on one connection, checks the error reply,
    then checks that a valid request on the same connection still works and
    that the fault origin saw only the valid requests."""

    def setUp(self):
        self.origin = self.start_origin({
            "/ok": [("send", OK)],
            "/slow": [("sleep", 0.5), ("send", OK)],
        })
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)
        self.next_ok_id = 1000

    # Helpers -------------------------------------------------------------
    def reply(self):
        msg = self.w.read_message()
        self.assertIsNotNone(msg, "daemon closed the connection")
        return msg

    def assertSessionWorks(self, w=None):
        """A valid GET on the same connection gets a full 200."""
        w = w or self.w
        self.next_ok_id += 1
        rid = self.next_ok_id
        head, body, end = w.request(rid, "GET", self.origin.url("/ok"))
        self.assertOkResponse(head, end)
        self.assertEqual(body, OK_BODY)

    def assertOriginSawOnlyValidRequests(self):
        targets = [r.target for r in self.origin.requests]
        self.assertLessEqual(set(targets), {"/ok", "/slow"},
                             f"origin saw {targets}")
        for r in self.origin.requests:
            # A streamed body found short or long only as it comes may have
            # had its head sent already: the origin then sees it cut off,
            # never completed (PROTOCOL.md 8), which is all the daemon owes.
            if not r.complete and r.method == "PUT":
                continue
            self.assertEqual(r.method, "GET")
            self.assertEqual([n for n, _ in r.headers
                              if n.lower() not in ("host", "accept-encoding")],
                             [], r.headers)

    def bad_request(self, rid, error, field=None, **fields):
        """Sends {"id": rid, **fields}, expects error naming field."""
        obj = {"id": rid}
        obj.update(fields)
        self.w.send(obj)
        msg = self.reply()
        self.assertError(msg, error, rid=rid)
        if field is not None:
            self.assertIn(field, msg["message"],
                          f"message does not name {field!r}: {msg!r}")
        self.assertEqual(set(msg) - {"id", "error", "message"}, set(), msg)
        return msg

    def tearDown(self):
        # Every test ends with the session still usable and nothing invalid
        # having reached the origin (not checked again after a failure).
        if self._failed():
            return
        self.assertSessionWorks()
        self.assertOriginSawOnlyValidRequests()

    # Framing -------------------------------------------------------------
    def test_invalid_json_is_bad_message(self):
        self.w.send_raw(b'{"id":1,"method":"GET",\n')
        msg = self.reply()
        self.assertError(msg, "bad_message")
        self.assertIsNone(msg.get("id"), msg)

    def test_json_that_is_not_an_object_is_bad_message(self):
        for line in (b"[1,2,3]\n", b'"GET"\n', b"42\n", b"null\n"):
            with self.subTest(line=line):
                self.w.send_raw(line)
                msg = self.reply()
                self.assertError(msg, "bad_message")
                self.assertIsNone(msg.get("id"), msg)

    def test_empty_object_is_bad_message(self):
        self.w.send_raw(b"{}\n")
        self.assertError(self.reply(), "bad_message")

    def test_line_over_one_mebibyte_is_bad_message_and_skipped(self):
        line = (b'{"id":5,"method":"GET","url":"' + self.origin.url("/ok").encode()
                + b'","headers":[["X-Pad","' + b"p" * (1024 * 1024 + 100)
                + b'"]]}\n')
        self.w.send_raw(line)
        msg = self.reply()
        self.assertError(msg, "bad_message")
        self.assertSessionWorks()

    def test_data_frame_for_an_unknown_id_is_bad_message(self):
        self.w.send({"id": 77, "data": 5}, b"abcde")
        msg = self.reply()
        self.assertError(msg, "bad_message", rid=77)
        self.assertSessionWorks()

    def test_end_frame_for_an_unknown_id_is_bad_message(self):
        self.w.send({"id": 78, "end": True})
        self.assertError(self.reply(), "bad_message", rid=78)

    def test_blank_lines_are_ignored(self):
        self.w.send_raw(b"\n   \n\t\r\n")
        self.assertSessionWorks()   # the next reply is the GET's, no error

    def test_crlf_line_ending_is_accepted(self):
        self.w.send_raw(b'{"id":1,"method":"GET","url":"'
                        + self.origin.url("/ok").encode() + b'"}\r\n')
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        self.assertEqual(body, OK_BODY)

    def test_invalid_data_length_is_bad_message_then_close(self):
        # The payload length is unknown: the daemon answers, then closes.
        self.w.send_raw(b'{"id":1,"method":"POST","url":"'
                        + self.origin.url("/ok").encode()
                        + b'","data":"five"}\nhello')
        self.assertError(self.reply(), "bad_message", rid=1)
        self.w.expect_eof()
        self.w = self.wire(self.daemon)     # tearDown checks a new session

    def test_negative_data_length_is_bad_message_then_close(self):
        self.w.send_raw(b'{"id":1,"data":-1}\n')
        msg = self.reply()
        self.assertError(msg, "bad_message")
        self.w.expect_eof()
        self.w = self.wire(self.daemon)

    # Fields --------------------------------------------------------------
    def test_request_without_url_or_host(self):
        self.bad_request(60, "bad_message", 'request needs "url" or "host"',
                         method="GET")

    def test_url_with_host_is_bad_message(self):
        self.bad_request(61, "bad_message", '"url" and "host"', method="GET",
                         url=self.origin.url("/ok"), host="127.0.0.1")

    def test_data_with_body_stream_is_bad_message(self):
        self.w.send({"id": 62, "method": "POST", "url": self.origin.url("/ok"),
                     "body": "stream"}, b"abc")
        self.assertError(self.reply(), "bad_message", rid=62)

    def test_length_without_body_stream_is_bad_message(self):
        self.bad_request(63, "bad_message", "length", method="POST",
                         url=self.origin.url("/ok"), length=3)

    def test_string_id_over_256_bytes_is_bad_message(self):
        self.w.send({"id": "i" * 257, "method": "GET",
                     "url": self.origin.url("/ok")})
        msg = self.reply()
        self.assertError(msg, "bad_message")
        self.assertIn("id", msg["message"])
        self.assertNotIn("id", msg, "an invalid id must not be echoed")

    def test_timeout_out_of_range_is_bad_message(self):
        for i, t in enumerate([0, -1, 86401, "5"], start=64):
            with self.subTest(timeout=t):
                self.bad_request(i, "bad_message", "timeout", method="GET",
                                 url=self.origin.url("/ok"), timeout=t)


    def test_unknown_field_is_bad_message_naming_it(self):
        self.bad_request(3, "bad_message", 'unknown field "bogus_field"',
                         method="GET", url=self.origin.url("/ok"),
                         bogus_field=1)

    def test_misspelt_field_inside_tls_is_named_with_its_path(self):
        self.bad_request(2, "bad_message", 'unknown field "tls.verfy"',
                         method="GET", host="127.0.0.1",
                         port=self.origin.port, tls={"verfy": False})

    def test_method_of_wrong_type_names_method(self):
        self.bad_request(4, "bad_message", "method", method=5,
                         url=self.origin.url("/ok"))

    def test_headers_of_wrong_type_names_headers(self):
        self.bad_request(5, "invalid_header", "headers", method="GET",
                         url=self.origin.url("/ok"), headers="X-A: 1")

    def test_header_pair_of_wrong_shape_names_headers(self):
        self.bad_request(6, "invalid_header", "headers", method="GET",
                         url=self.origin.url("/ok"), headers=[["X-A"]])

    def test_port_of_wrong_type_names_port(self):
        self.bad_request(7, "invalid_url", "port", method="GET",
                         host="127.0.0.1", port=str(self.origin.port),
                         target="/ok")

    def test_port_out_of_range_names_port(self):
        self.bad_request(8, "invalid_url", "port", method="GET",
                         host="127.0.0.1", port=70000, target="/ok")

    def test_id_of_wrong_type_is_bad_message(self):
        self.w.send({"id": [1], "method": "GET", "url": self.origin.url("/ok")})
        msg = self.reply()
        self.assertError(msg, "bad_message")
        self.assertIn("id", msg["message"])

    def test_unknown_op_is_bad_message(self):
        self.bad_request(9, "bad_message", 'unknown op "frobnicate"',
                         op="frobnicate")

    def test_invalid_urls_are_invalid_url(self):
        for i, url in enumerate(["ftp://x/", "http://", "http://h:99999/",
                                 "not a url", "http://127.0.0.1:80/a b",
                                 "http://user@127.0.0.1/"], start=10):
            with self.subTest(url=url):
                self.bad_request(i, "invalid_url", method="GET", url=url)

    # What reaches the origin ---------------------------------------------
    def test_header_value_with_crlf_is_invalid_header(self):
        self.bad_request(20, "invalid_header", "X-A", method="GET",
                         url=self.origin.url("/ok"),
                         headers=[["X-A", "1\r\nX-Injected: yes"]])

    def test_header_value_with_lone_lf_is_invalid_header(self):
        self.bad_request(21, "invalid_header", method="GET",
                         url=self.origin.url("/ok"),
                         headers=[["X-A", "1\nX-Injected: yes"]])

    def test_header_name_with_crlf_or_colon_is_invalid_header(self):
        for i, name in enumerate(["X-A\r\nX-Injected", "X-A:", "X A", ""],
                                 start=22):
            with self.subTest(name=name):
                self.bad_request(i, "invalid_header", method="GET",
                                 url=self.origin.url("/ok"),
                                 headers=[[name, "1"]])

    def test_method_with_a_space_is_invalid_url(self):
        self.bad_request(30, "invalid_url", "method", method="GET /x",
                         url=self.origin.url("/ok"))

    def test_method_with_crlf_is_invalid_url(self):
        self.bad_request(31, "invalid_url", "method", method="GET\r\nX: y",
                         url=self.origin.url("/ok"))

    def test_target_with_space_or_crlf_is_invalid_url(self):
        for i, target in enumerate(["/a b", "/a\r\nX-Injected: 1"], start=32):
            with self.subTest(target=target):
                self.bad_request(i, "invalid_url", method="GET",
                                 host="127.0.0.1", port=self.origin.port,
                                 target=target)

    def test_nothing_invalid_reaches_the_origin_even_with_no_valid_request(self):
        self.bad_request(40, "invalid_header", method="GET",
                         url=self.origin.url("/evil"),
                         headers=[["X-A", "a\r\n\r\nGET /smuggled HTTP/1.1"]])
        self.bad_request(41, "invalid_url", method="GET /smuggled",
                         url=self.origin.url("/evil"))
        # Nothing at all reached the origin, not even a connection.
        self.assertEqual(self.origin.requests, [])
        self.assertEqual(len(self.origin.connections), 0)

    # Order and isolation ---------------------------------------------------
    def test_errors_come_back_in_request_order(self):
        lines = [
            {"id": 1, "method": "GET", "url": self.origin.url("/slow")},
            {"id": 2, "method": "GET", "url": "ftp://x/"},
            "not json",
            {"id": 4, "method": "GET", "url": self.origin.url("/ok")},
        ]
        self.w.send_raw(b"".join(
            (json.dumps(l) if isinstance(l, dict) else l).encode() + b"\n"
            for l in lines))
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        self.assertEqual(body, OK_BODY)
        self.assertError(self.reply(), "invalid_url", rid=2)
        msg = self.reply()
        self.assertError(msg, "bad_message")
        self.assertIsNone(msg.get("id"), msg)
        head, body, end = self.w.read_response(4)
        self.assertOkResponse(head, end)
        self.assertEqual(body, OK_BODY)

    def test_another_client_is_unaffected(self):
        other = self.wire(self.daemon)
        other.send({"id": 1, "method": "GET", "url": self.origin.url("/slow")})
        self.w.send_raw(b"garbage\n")
        self.w.send({"id": 2, "method": 5})
        self.w.send({"id": 3, "data": 3}, b"xyz")
        self.assertError(self.reply(), "bad_message")
        self.assertError(self.reply(), "bad_message", rid=2)
        self.assertError(self.reply(), "bad_message", rid=3)
        head, body, end = other.read_response(1)
        self.assertOkResponse(head, end)
        self.assertEqual(body, OK_BODY)
        self.assertSessionWorks(other)

    def test_requests_without_id_get_their_sequence_number(self):
        # The n-th request that passed validation gets id n; bad lines and
        # ops do not count.
        url = self.origin.url("/ok").encode()
        self.w.send_raw(b'{"method":"GET","url":"' + url + b'"}\n'
                        b'not json\n'
                        b'{"op":"hello"}\n'
                        b'{"method":"GET","url":"' + url + b'"}\n')
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        self.assertError(self.reply(), "bad_message")
        self.assertEqual(self.reply().get("op"), "hello")
        head, body, end = self.w.read_response(2)
        self.assertOkResponse(head, end)
        self.assertEqual(body, OK_BODY)

    def test_streamed_body_shorter_than_length_is_body_length(self):
        self.w.send({"id": 70, "method": "PUT", "url": self.origin.url("/ok"),
                     "body": "stream", "length": 6})
        self.w.send({"id": 70}, b"abc")
        self.w.send({"id": 70}, b"de")
        self.w.send({"id": 70, "end": True})
        head, body, err = self.w.read_response(70)
        self.assertIsNone(head)
        self.assertError(err, "body_length", rid=70)

    def test_streamed_body_longer_than_length_is_body_length(self):
        self.w.send({"id": 71, "method": "PUT", "url": self.origin.url("/ok"),
                     "body": "stream", "length": 2})
        self.w.send({"id": 71}, b"abc")
        self.w.send({"id": 71, "end": True})
        msg = self.reply()
        self.assertError(msg, "body_length", rid=71)
        # The stream stays open until its end frame, which the client
        # sent: its frames were dropped without a reply (3.4), and the
        # next reply is the op's.
        self.w.send({"op": "hello", "id": "sync"})
        self.assertEqual(self.reply().get("id"), "sync")

    def test_inline_body_over_the_limit_is_limit_exceeded_and_skipped(self):
        payload = b"\x00" * (64 * 1024 * 1024 + 1)
        self.w.send({"id": 72, "method": "POST",
                     "url": self.origin.url("/ok")}, payload)
        self.assertError(self.reply(), "limit_exceeded", rid=72)

    def test_inline_body_of_a_bad_request_is_skipped(self):
        # The request is invalid but its "data" length is sound: the
        # payload is skipped and not read as the next message.
        payload = b'{"id":99,"method":"GET","url":"x"}\n'
        self.w.send({"id": 50, "method": "POST", "url": "ftp://x/"}, payload)
        self.assertError(self.reply(), "invalid_url", rid=50)
        self.assertSessionWorks()


class RawMode(harness.IntegrationTest):
    """"raw": true: head line, unframed body, close; a body that fails
    after the head ends in a reset, never a clean end of file."""

    def setUp(self):
        self.origin = self.start_origin({None: TRUNCATED,
                                         "/ok": [("send", OK)]})
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon, timeout=5)

    def test_raw_response_is_head_line_then_body_then_eof(self):
        self.w.send({"method": "GET", "url": self.origin.url("/ok"),
                     "raw": True})
        head = json.loads(self.w.read_line())
        self.assertEqual(head["status"], 200)
        self.assertEqual(head["length"], len(OK_BODY))
        self.assertEqual(self.w.read_all(), OK_BODY)

    def test_messages_after_a_raw_request_are_ignored(self):
        self.w.send({"method": "GET", "url": self.origin.url("/ok"),
                     "raw": True})
        self.w.send({"id": 2, "method": "GET", "url": self.origin.url("/ok")})
        self.w.send({"op": "hello"})
        json.loads(self.w.read_line())
        self.assertEqual(self.w.read_all(), OK_BODY)
        self.assertTrue(self.origin.wait_requests(1))
        self.assertEqual(len(self.origin.requests), 1)

    def test_raw_error_before_the_head_is_an_error_line_then_close(self):
        self.w.send({"method": "GET", "url": "ftp://x/", "raw": True})
        msg = json.loads(self.w.read_line())
        self.assertEqual(msg.get("error"), "invalid_url", msg)
        self.assertEqual(self.w.read_all(), b"")

    def test_raw_body_cut_short_closes_early_short_of_length(self):
        # A Unix socket has no reset: the daemon stops writing and closes,
        # and the reader sees fewer bytes than the head's "length"
        # (PROTOCOL.md section 6).
        self.w.send({"method": "GET", "url": self.origin.url("/truncated"),
                     "raw": True})
        head = json.loads(self.w.read_line())
        self.assertEqual(head["length"], 1000)
        got = self.w.read_all()
        self.assertEqual(got, b"x" * 500)
        self.assertLess(len(got), head["length"])
        self.assertIn("incomplete_read", self.daemon.log_text())


class TruncatedBodyFromTheOrigin(harness.IntegrationTest):
    """The origin promises Content-Length: 1000, sends 500 bytes and
    closes."""

    def setUp(self):
        self.origin = self.start_origin({None: TRUNCATED,
                                         "/ok": [("send", OK)]})
        self.daemon = self.start_daemon()

    def test_protocol_reports_incomplete_read_after_the_head(self):
        w = self.wire(self.daemon)
        head, body, err = w.request(1, "GET", self.origin.url("/truncated"))
        self.assertIsNotNone(head, f"no head before the error: {err!r}")
        self.assertEqual(head["status"], 200)
        self.assertEqual(head["length"], 1000)
        self.assertEqual(body, b"x" * 500)
        self.assertError(err, "incomplete_read", rid=1)
        self.assertEqual(err.get("received"), 500, err)
        self.assertEqual(err.get("expected"), 1000, err)
        head, body, end = w.request(2, "GET", self.origin.url("/ok"))
        self.assertOkResponse(head, end)
        self.assertEqual(body, OK_BODY)

    def test_cli_exits_with_incomplete_read(self):
        harness.require_binary(self, harness.HCONN, "hconn command")
        r = self.run_hconn(self.daemon, self.origin.url("/truncated"))
        self.assertEqual(r.returncode,
                         harness.error_codes()["incomplete_read"],
                         f"stderr: {r.stderr!r}")
        self.assertIn(b"incomplete_read", r.stderr)

    def test_lib_check_truncated_passes(self):
        harness.require_binary(self, harness.LIB_CHECK, "lib-check")
        r = subprocess.run([harness.LIB_CHECK, "--truncated",
                            self.origin.hostport],
                           capture_output=True, env=self.daemon.env,
                           timeout=60, start_new_session=True)
        self.assertEqual(r.returncode, 0,
                         f"lib-check --truncated exited {r.returncode}\n"
                         f"stdout: {r.stdout.decode(errors='replace')}\n"
                         f"stderr: {r.stderr.decode(errors='replace')}")
        self.assertGreater(len(self.origin.requests), 0,
                           "lib-check never reached the origin")


if __name__ == "__main__":
    harness.main()
