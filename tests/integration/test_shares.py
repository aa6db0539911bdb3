#!/usr/bin/env python3
"""Defaults that protect users from each other, each crossed by a client
running as another user (nobody) while root is still served: the per-uid
share of client slots, the byte budget for what the daemon holds on a
client's behalf (partial lines, requests in flight) with its per-uid
share, a client that reads none of its replies (no longer read once they
pile up; many small replies cost their bytes, not a slot each), and TLS
contexts bounded however many distinct settings come (RSS figures skip
under sanitizers, which distort them)."""

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import other_user  # noqa: E402

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SANITIZED = bool(os.environ.get("HCONN_SANITIZED"))


class ShareTest(harness.IntegrationTest):

    def setUp(self):
        other_user.require(self)
        self.uid, self.gid = other_user.ids()
        self.origin = self.start_origin({None: [("send", OK)],
                                         "/hang": [("keep_open",)]})
        self.dir = tempfile.mkdtemp(prefix="hconn-shares-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def daemon(self, **keys):
        path = os.path.join(self.dir, "hconnd.json")
        with open(path, "w") as f:
            json.dump(keys, f)
        return self.start_daemon("--config", path)

    def user(self, d, timeout=20.0):
        return other_user.wire_as(self, d, self.uid, self.gid, timeout)

    def assertRootServed(self, d, rid=100):
        head, body, last = self.wire(d).request(rid, "GET",
                                                self.origin.url("/root"))
        self.assertEqual(head and head["status"], 200, last)

    def origin_requests(self, path):
        return sum(1 for r in self.origin.requests if r.target == path)


class ClientSlots(ShareTest):

    def test_a_quarter_of_max_clients_per_uid_by_default(self):
        d = self.daemon(max_clients=8)
        keep = []
        for _ in range(2):
            w = self.user(d)
            w.send({"op": "hello"})
            self.assertEqual(w.read_message()["op"], "hello")
            keep.append(w)
        w = self.user(d)
        self.assertEqual(w.read_message(), {
            "error": "limit_exceeded",
            "message": f"too many clients of uid {self.uid} connected to "
                       "hconnd (limit 2, max_clients_per_uid)"})
        w.expect_eof()
        self.assertRootServed(d)
        self.assertEqual(self.origin_requests("/root"), 1)


class HeldBytes(ShareTest):

    HELD = re.compile(rf"^bytes held for uid \d+ \(\d+, and \d+ more\) "
                      r"would exceed max_held_bytes_per_uid \((\d+)\)$")

    def test_partial_lines_past_the_uid_share_close_that_client(self):
        d = self.daemon(max_held_bytes_per_uid=1 << 20)
        line = json.dumps({"id": 1, "method": "GET",
                           "url": self.origin.url("/user"),
                           "headers": [["X-Pad", "p" * (100 << 10)]]})
        big = b'{"op":"hello","pad":"' + b"p" * (1000 << 10)
        a, b = self.user(d), self.user(d)
        a.send_raw(line[:-10].encode())       # held: 100 KiB
        b.send({"op": "hello"})
        self.assertEqual(b.read_message()["op"], "hello")
        try:
            b.send_raw(big)                   # 100 KiB + 1000 KiB > 1 MiB
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed mid-line, as it should be; its reason is queued
        msg = b.read_message()
        self.assertEqual(msg["error"], "limit_exceeded", msg)
        self.assertRegex(msg["message"], self.HELD)
        self.assertEqual(self.HELD.match(msg["message"]).group(1),
                         str(1 << 20))
        # Closed: an end of file, or a reset when its line was still
        # coming in as the daemon closed (a Unix socket resets then).
        try:
            b.expect_eof()
        except ConnectionResetError:
            pass
        # a, under the share, finishes its line and is served.
        a.send_raw(line[-10:].encode() + b"\n")
        head, body, last = a.read_response(1)
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(self.origin_requests("/user"), 1)
        self.assertRootServed(d)
        # Everything held is given back when the clients go.
        a.close()
        self.assertHeldDrops(d)

    def assertHeldDrops(self, d):
        w = self.wire(d)
        deadline = time.monotonic() + 10
        while True:
            w.send({"op": "stats"})
            st = w.read_message()
            # Only this stats reply itself may be held (in flight).
            if st["held_bytes"] < 4096:
                return
            self.assertLess(time.monotonic(), deadline,
                            f"bytes still held after the clients left: {st}")
            time.sleep(0.05)

    def test_requests_in_flight_count_what_they_hold(self):
        # 20,000 header pairs hold megabytes each as parsed JSON.
        d = self.daemon(max_held_bytes_per_uid=16 << 20)
        w = self.user(d)
        headers = [[f"X-{i}", "v"] for i in range(20000)]
        for rid in range(1, 4):
            w.send({"id": rid, "method": "GET",
                    "url": self.origin.url("/hang"), "headers": headers,
                    "timeout": 2})
        head, body, last = w.read_response(1)
        self.assertEqual(last["error"], "timeout", last)
        head, body, last = w.read_response(2)
        self.assertEqual(last["error"], "timeout", last)
        head, body, last = w.read_response(3)
        self.assertEqual(last["error"], "limit_exceeded", last)
        self.assertRegex(last["message"], self.HELD)
        self.assertEqual(self.origin_requests("/hang"), 2)
        self.assertRootServed(d)
        w.close()
        self.assertHeldDrops(d)

    def test_the_global_budget_names_itself(self):
        d = self.daemon(max_held_bytes=1 << 20,
                        max_held_bytes_per_uid=1 << 30)
        w = self.user(d)
        w.send({"id": 1, "method": "POST", "url": self.origin.url("/user"),
                "data": 2 << 20}, b"x" * (2 << 20))
        head, body, last = w.read_response(1)
        self.assertEqual(last["error"], "limit_exceeded", last)
        self.assertRegex(last["message"],
                         r"^bytes held for all clients \(\d+, and \d+ "
                         r"more\) would exceed max_held_bytes \(1048576\)$")
        self.assertEqual(self.origin_requests("/user"), 0)
        # The payload was skipped; the session goes on.
        head, body, last = w.request(2, "GET", self.origin.url("/user"))
        self.assertEqual(head and head["status"], 200, last)


    def test_replies_give_back_exactly_what_they_held(self):
        # Reply bytes are counted where they are queued and where they
        # leave (exchange.c, session_flush), not by a callback on the
        # buffers: however they go out (written at once, piled up behind
        # a client that is not reading, an error, a timeout, a chunked
        # body of megabytes) the uid's count and the daemon's come back
        # to what they were, to the byte.
        chunk = b"x" * 65536
        self.origin.scenarios["/big"] = [(
            "send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"10000\r\n" + chunk + b"\r\n") * 64 + b"0\r\n\r\n")]
        d = self.daemon()
        root = self.wire(d)
        w = self.user(d, timeout=30)

        def held():
            w.send({"op": "stats"})
            mine = w.read_message()["held_bytes"]
            root.send({"op": "stats"})
            return mine, root.read_message()["held_bytes"]

        before = held()
        for _ in range(2):
            # Sent together, read only once all are sent: the big body
            # waits in the daemon while the client does not read.
            w.send({"id": 1, "method": "GET", "url": self.origin.url("/big")})
            for rid in range(2, 12):
                w.send({"id": rid, "method": "GET",
                        "url": self.origin.url("/small")})
            w.send({"id": 12, "method": "GET",
                    "url": self.origin.url("/hang"), "timeout": 0.3})
            w.send({"id": 13, "method": "GET", "url": "ftp://x/"})
            time.sleep(0.5)
            head, body, last = w.read_response(1)
            self.assertEqual(head and head["status"], 200, last)
            self.assertEqual(len(body), 64 * 65536)
            for rid in range(2, 12):
                head, body, last = w.read_response(rid)
                self.assertEqual(body, b"ok", last)
            head, body, last = w.read_response(12)
            self.assertEqual(last["error"], "timeout", last)
            head, body, last = w.read_response(13)
            self.assertIn("error", last)
            self.assertEqual(held(), before)


class SilentReaders(ShareTest):

    def flood(self, d, line, count):
        """Sends count copies of line from another user's client that
        reads nothing until the daemon stops reading it; returns (the
        client, the sender thread, a list with the bytes sent)."""
        w = self.user(d, timeout=60)
        sent = [0]
        data = line * count

        def send():
            view = memoryview(data)
            while view:
                n = w.sock.send(view[:65536])
                sent[0] += n
                view = view[n:]
        t = threading.Thread(target=send, daemon=True)
        t.start()
        # Wait until the daemon stops reading: the sender stalls.
        last, still = -1, 0
        while t.is_alive() and still < 20:
            time.sleep(0.05)
            still = still + 1 if sent[0] == last else 0
            last = sent[0]
        return w, t, sent, len(data)

    def test_a_client_that_reads_nothing_is_no_longer_read(self):
        d = self.daemon(max_queued_reply_bytes=1 << 20)
        before = d.rss_kib()
        w, t, sent, total = self.flood(d, b'{"op":"hello"}\n', 100000)
        self.assertTrue(t.is_alive(), "the daemon read everything: "
                        "100,000 replies queued")
        grown = d.rss_kib() - before
        sys.stderr.write(f"\n  silent reader: {sent[0]} bytes taken, RSS "
                         f"+{grown} KiB\n")
        if not SANITIZED:
            self.assertLess(grown, 64 * 1024, "KiB of RSS for replies "
                            "nobody reads")
        self.assertRootServed(d)
        # Reading again, it gets every reply, in order, and is read again.
        for _ in range(100000):
            self.assertEqual(w.read_message()["op"], "hello")
        t.join(30)
        self.assertEqual(sent[0], total)

    def test_many_error_replies_cost_their_bytes(self):
        d = self.daemon(max_queued_reply_bytes=4 << 20)
        before = d.rss_kib()
        w, t, sent, total = self.flood(d, b"{}\n", 50000)
        grown = d.rss_kib() - before
        sys.stderr.write(f"\n  50,000 error replies unread: RSS +{grown} "
                         f"KiB\n")
        if not SANITIZED:
            self.assertLess(grown, 64 * 1024)
        msg = w.read_message()
        self.assertEqual(msg, {"error": "bad_message", "message":
                               "message has none of method, op, data, end"})
        self.assertRootServed(d)


class TlsContexts(ShareTest):

    def test_rss_stays_bounded_with_10000_distinct_tls_settings(self):
        certs = harness.make_certificates(os.path.join(self.dir, "tls"))
        with open(os.path.join(certs, "ca.crt")) as f:
            ca = f.read()
        # A closed port: each request builds (or finds) its TLS context,
        # then fails to connect; no handshake needed to cost a context.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        d = self.daemon(tls_max_contexts=64)
        w = self.user(d, timeout=120)
        before = d.rss_kib()
        n = 0
        for batch in range(20):
            for i in range(500):
                n += 1
                tls = ({"server_name": f"s{n}.example"} if n % 2 else
                       {"ca_pem": ca + f"# setting {n}\n",
                        "server_name": f"s{n}.example"})
                w.send({"id": n, "method": "GET", "host": "127.0.0.1",
                        "port": port, "tls": tls})
            for rid in range(n - 499, n + 1):
                head, _, last = w.read_response(rid)
                self.assertEqual(last.get("error"), "connect_failed", last)
        grown = d.rss_kib() - before
        sys.stderr.write(f"\n  10,000 distinct TLS settings: RSS +{grown} "
                         f"KiB (peak {d.peak_rss_kib()} KiB)\n")
        st = json.loads(json.dumps(self.stats_as_root(d)))
        self.assertLessEqual(st["tls"]["contexts"], 64)
        if SANITIZED:
            self.skipTest("RSS under sanitizers says nothing")
        self.assertLess(grown, 64 * 1024, "KiB of RSS for 10,000 settings")

    def stats_as_root(self, d):
        w = self.wire(d)
        w.send({"op": "stats"})
        return w.read_message()


if __name__ == "__main__":
    harness.main()
