#!/usr/bin/env python3
"""hconnd scans the common request lines without building a jansson tree
(proto/wire_fast.c) and hands every other line to the full parser. The
same message sent in both spellings (compact, which the scanner takes,
and with one key written with a \\u escape, which only the full parser
reads) must do the same thing: the origin sees the same request, the
client gets the same replies, and streamed bodies reach their request by
id whichever path read the request and its frames."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_response  # noqa: E402

BODY = b"fast or full\n"


def spell(obj, full):
    """obj as one compact line; with full, its first key's first letter
    as a \\u escape, a spelling the fast scanner declines."""
    line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    if full:
        key = next(iter(obj))
        line = line.replace(f'"{key}"', '"\\u%04x%s"' % (ord(key[0]), key[1:]),
                            1)
    return line.encode() + b"\n"


class WireFast(harness.IntegrationTest):

    def setUp(self):
        self.origin = self.start_origin({
            None: [("send", http_response(200, BODY,
                                          headers=[("X-Origin", "yes")]))],
        })
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)

    def send(self, obj, full, payload=b""):
        self.w.send_raw(spell(obj, full) + payload)

    def exchange(self, full, rid, msgs):
        """Sends msgs [(obj, payload)] in one spelling; returns the
        response (ids dropped) and what the origin saw."""
        seen = len(self.origin.requests)
        for obj, payload in msgs:
            self.send(obj, full, payload)
        head, body, last = self.w.read_response(rid)
        self.assertOkResponse(head, last)
        self.origin.wait_requests(seen + 1)
        req = self.origin.requests[seen]
        head = {k: v for k, v in head.items() if k not in ("id", "reused")}
        return ((head, body, {k: v for k, v in last.items() if k != "id"}),
                (req.method, req.target, req.headers, req.body))

    def both(self, rid, msgs):
        """The same exchange through the scanner and the full parser."""
        fast = self.exchange(False, rid, msgs)
        full = self.exchange(True, rid, msgs)
        self.assertEqual(fast, full)
        return fast

    def test_get_by_url_with_header_pairs(self):
        (head, body, _), (method, target, headers, _) = self.both(1, [(
            {"id": 1, "method": "GET", "url": self.origin.url("/a?b=c"),
             "headers": [["X-One", "1"], ["X-Two", "a\"b\\c"],
                         ["X-One", "again"]]}, b"")])
        self.assertEqual(body, BODY)
        self.assertEqual((method, target), ("GET", "/a?b=c"))
        self.assertIn(("X-Two", "a\"b\\c"), headers)
        self.assertEqual([v for n, v in headers if n == "X-One"],
                         ["1", "again"])

    def test_post_inline_by_host_with_header_object(self):
        host, port = harness.LOOPBACK, self.origin.port
        payload = b"inline body"
        (_, _, _), (method, target, headers, body) = self.both("post-1", [(
            {"id": "post-1", "method": "POST", "host": host, "port": port,
             "tls": False, "target": "/up", "data": len(payload),
             "headers": {"Content-Type": "text/plain",
                         "X-Latin": "\u00e9t\u00e9"},
             "skip_accept_encoding": True, "timeout": 30.5,
             "read_timeout": 30}, payload)])
        self.assertEqual((method, target, body), ("POST", "/up", payload))
        # (the origin reads header bytes as ISO-8859-1)
        self.assertIn(("X-Latin", "\u00e9t\u00e9".encode().decode("latin-1")),
                      headers)
        self.assertIsNone(next((v for n, v in headers
                                if n.lower() == "accept-encoding"), None))

    def test_streamed_body_and_its_frames(self):
        # The request and its frames each in the spelling under test; the
        # id is reused, so each stream must be ended before the next.
        url = self.origin.url("/stream")
        for rid in ("s", 7):
            (_, _, _), (method, _, headers, body) = self.both(rid, [
                ({"id": rid, "method": "PUT", "url": url, "body": "stream",
                  "length": 6, "expect_continue": False}, b""),
                ({"id": rid, "data": 4}, b"abcd"),
                ({"id": rid, "data": 0}, b""),
                ({"id": rid, "data": 2}, b"ef"),
                ({"id": rid, "end": True}, b""),
            ])
            self.assertEqual((method, body), ("PUT", b"abcdef"))

    def test_direct_and_skip_host(self):
        host, port = harness.LOOPBACK, self.origin.port
        (_, _, _), (_, _, headers, _) = self.both(3, [(
            {"id": 3, "method": "GET", "host": host, "port": port,
             "skip_host": True, "proxy": False,
             "headers": [["Host", "named.test"]]}, b"")])
        self.assertEqual([v for n, v in headers if n.lower() == "host"],
                         ["named.test"])

    def test_frame_for_no_stream(self):
        # A frame whose id has no open stream gets the same error either
        # way, and its payload is skipped.
        for full in (False, True):
            self.send({"id": 99, "data": 3}, full, b"xyz")
            msg = self.w.read_message()
            self.assertError(msg, "bad_message", rid=99)
            self.assertIn("no request with a streamed body", msg["message"])
        self.both(4, [({"id": 4, "method": "GET",
                        "url": self.origin.url("/after")}, b"")])

    def test_lines_split_across_reads(self):
        # The end of a line is looked for in the input's first buffer
        # chain, then across chains: lines that arrive in pieces, one of
        # many chains, and one that starts where another ends are read
        # whole, in both spellings.
        big = "v" * 20000
        for rid, full in ((10, False), (11, True)):
            line = spell({"id": rid, "method": "GET",
                          "url": self.origin.url(f"/piece/{rid}")}, full)
            for k in range(0, 24):
                self.w.send_raw(line[k:k + 1])
                time.sleep(0.002)
            self.w.send_raw(line[24:])
            head, _, last = self.w.read_response(rid)
            self.assertOkResponse(head, last)
            seen = len(self.origin.requests)
            self.w.send_raw(
                spell({"id": rid + 10, "method": "GET",
                       "url": self.origin.url("/big"),
                       "headers": [["X-Big", big]]}, full) +
                spell({"id": rid + 20, "method": "GET",
                       "url": self.origin.url("/next")}, full))
            for r in (rid + 10, rid + 20):
                head, _, last = self.w.read_response(r)
                self.assertOkResponse(head, last)
            self.origin.wait_requests(seen + 2)
            reqs = {r.target: r for r in self.origin.requests[seen:seen + 2]}
            self.assertEqual(sorted(reqs), ["/big", "/next"])
            self.assertEqual(reqs["/big"].header("X-Big"), big)


if __name__ == "__main__":
    harness.main()
