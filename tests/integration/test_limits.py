#!/usr/bin/env python3
"""Limits (PROTOCOL.md section 8): each one set low in a config file, then
crossed by one client, which gets a clear error, while another client (or
the next request) is served as usual. Waits are on events (stats, logs,
the origin's records), never on how long something took."""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import other_user  # noqa: E402

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class LimitTest(harness.IntegrationTest):

    def setUp(self):
        self.origin = self.start_origin({
            None: [("send", OK)],
            "/hang": [("keep_open",)],
            "/slow": [("sleep", 0.2), ("send", OK)],
            "/big-head": [("send", b"HTTP/1.1 200 OK\r\n" +
                           b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 400)
                                    for i in range(10)) +
                           b"Content-Length: 2\r\n\r\nok")],
            "/trickle": [("send", b"HTTP/1.1 200 OK\r\n"
                                  b"Content-Length: 100\r\n\r\n"),
                         ("drip", b"z" * 100, 1, 0.1)],
        })

    def daemon(self, **keys):
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(keys, f)
        self.addCleanup(os.unlink, path)
        return self.start_daemon("--config", path)

    def assertServed(self, d, rid=1, path="/"):
        """A fresh client still gets its answer."""
        head, body, last = self.wire(d).request(rid, "GET",
                                                self.origin.url(path))
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(body, b"ok")

    def hello_client(self, d):
        """A client the daemon took: the harness's readiness probe may
        still count against a client limit for a moment, so a refused
        first attempt is retried."""
        for _ in range(100):
            w = self.wire(d)
            try:
                w.send({"op": "hello"})
                if w.read_message().get("op") == "hello":
                    return w
            except (OSError, harness.WireError):
                pass
            w.close()
            time.sleep(0.05)
        self.fail("the daemon never took a client")

    def stats(self, w):
        w.send({"op": "stats"})
        return w.read_message()

    def wait_stats(self, w, predicate, what):
        deadline = time.monotonic() + 10
        while True:
            st = self.stats(w)
            if predicate(st):
                return st
            self.assertLess(time.monotonic(), deadline,
                            f"stats never showed {what}: {st}")
            time.sleep(0.02)


class ClientLimits(LimitTest):

    def test_max_clients(self):
        d = self.daemon(max_clients=2, max_clients_per_uid=0)
        a = self.hello_client(d)
        b = self.hello_client(d)
        c = self.wire(d)
        msg = c.read_message()
        self.assertEqual(msg["error"], "limit_exceeded")
        self.assertIn("too many clients", msg["message"])
        c.expect_eof()
        head, body, last = a.request(1, "GET", self.origin.url())
        self.assertEqual(head["status"], 200, last)
        b.close()
        self.wait_stats(a, lambda st: st["clients"] == 1, "b gone")
        self.assertServed(d, 2)

    def test_max_clients_per_uid(self):
        d = self.daemon(max_clients_per_uid=1)
        a = self.hello_client(d)
        b = self.wire(d)
        msg = b.read_message()
        self.assertEqual(msg["error"], "limit_exceeded")
        self.assertIn(f"uid {os.geteuid()}", msg["message"])
        self.assertIn("max_clients_per_uid", msg["message"])
        b.expect_eof()
        head, body, last = a.request(1, "GET", self.origin.url())
        self.assertEqual(head["status"], 200, last)
        # Another user is not held to root's count.
        if os.geteuid() == 0 and shutil.which("setpriv") and \
                os.access(harness.HCONN, os.X_OK):
            pwd.getpwnam("nobody")
            os.chmod(d.dir, 0o755)
            r = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup",
                 "--clear-groups", harness.HCONN, self.origin.url()],
                capture_output=True, env=d.env, timeout=30, cwd="/")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, b"ok")

    def test_open_file_limit(self):
        # Out of descriptors, a client cannot even be accepted; hconnd
        # accepts it on a spare descriptor to say why, instead of leaving
        # it in the backlog and spinning on a socket it cannot drain.
        import resource
        d = self.daemon()
        keep = [self.hello_client(d)]
        used = len(os.listdir(f"/proc/{d.pid}/fd"))
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (used + 4, used + 4))
        refused = None
        for _ in range(12):
            w = self.wire(d)
            try:
                w.send({"op": "hello"})
            except BrokenPipeError:
                pass  # refused at once; its reason is already queued
            msg = w.read_message()
            if msg.get("op") == "hello":
                keep.append(w)
                continue
            refused = msg
            try:
                w.expect_eof()
            except ConnectionResetError:
                pass  # closed with our hello unread: a reset, just as final
            break
        self.assertIsNotNone(refused, "never ran out of descriptors")
        self.assertEqual(refused["error"], "limit_exceeded", refused)
        self.assertIn("out of file descriptors", refused["message"])
        # Each refusal is one log line, not a loop.
        self.assertLessEqual(d.log_text().count("refusing a client: accept"),
                             1)
        # Served again once descriptors are free.
        keep.pop().close()
        self.wait_stats(keep[0], lambda st: st["clients"] == len(keep),
                        "a client gone")
        w = self.hello_client(d)
        self.assertEqual(self.stats(w)["clients"], len(keep) + 1)

    def test_max_requests_per_client(self):
        d = self.daemon(max_requests_per_client=2)
        w = self.wire(d)
        # Two requests stay in flight (the origin never answers them) until
        # their own timeout; the third is refused at once, in its place.
        for rid in (1, 2):
            w.send({"id": rid, "method": "GET",
                    "url": self.origin.url("/hang"), "timeout": 1})
        w.send({"id": 3, "method": "POST", "url": self.origin.url(),
                "data": 3}, b"abc")
        for rid in (1, 2):
            head, body, last = w.read_response(rid)
            self.assertEqual(last["error"], "timeout", last)
        head, body, last = w.read_response(3)
        self.assertEqual(last["error"], "limit_exceeded")
        self.assertIn("limit 2", last["message"])
        # Its payload was skipped; the session goes on.
        head, body, last = w.request(4, "GET", self.origin.url())
        self.assertEqual(head and head["status"], 200, last)

    def test_max_message_bytes(self):
        d = self.daemon(max_message_bytes=2048)
        w = self.wire(d)
        w.send({"id": 1, "method": "GET", "url": self.origin.url(),
                "headers": [["X-Pad", "p" * 3000]]})
        msg = w.read_message()
        self.assertEqual(msg["error"], "bad_message")
        self.assertIn("2048", msg["message"])
        head, body, last = w.request(2, "GET", self.origin.url())
        self.assertEqual(head["status"], 200, last)

    def test_max_inline_body_bytes(self):
        d = self.daemon(max_inline_body_bytes=8)
        w = self.wire(d)
        head, body, last = w.request(1, "POST", self.origin.url(),
                                     b"0123456789", data=10)
        self.assertEqual(last["error"], "limit_exceeded")
        self.assertIn("use \"body\": \"stream\"", last["message"])
        head, body, last = w.request(2, "POST", self.origin.url(),
                                     b"01234567", data=8)
        self.assertEqual(head["status"], 200, last)


class PoolLimits(LimitTest):

    def test_pool_max_per_origin_queues_requests(self):
        d = self.daemon(pool_max_per_origin=1)
        a, b, watch = self.wire(d), self.wire(d), self.wire(d)
        a.send({"id": 1, "method": "GET", "url": self.origin.url("/hang"),
                "timeout": 2})
        self.wait_stats(watch, lambda st: st["pool"]["open"] == 1,
                        "the first connection")
        b.send({"id": 1, "method": "GET", "url": self.origin.url()})
        st = self.wait_stats(
            watch, lambda st: any(o["waiting"] == 1
                                  for o in st["pool"]["origins"].values()),
            "a waiting lease")
        self.assertEqual(st["pool"]["open"], 1)
        self.assertEqual(len(self.origin.connections), 1)
        # When the first request gives up, its connection is closed and
        # the waiting one gets a new one.
        head, body, last = a.read_response(1)
        self.assertEqual(last["error"], "timeout")
        head, body, last = b.read_response(1)
        self.assertEqual(head and head["status"], 200, last)

    def test_pool_max_total_across_origins(self):
        other = self.start_origin({None: [("send", OK)]})
        d = self.daemon(pool_max_total=1)
        a, b, watch = self.wire(d), self.wire(d), self.wire(d)
        a.send({"id": 1, "method": "GET", "url": self.origin.url("/hang"),
                "timeout": 2})
        self.wait_stats(watch, lambda st: st["pool"]["open"] == 1,
                        "the first connection")
        b.send({"id": 1, "method": "GET", "url": other.url()})
        st = self.wait_stats(
            watch, lambda st: any(o["waiting"] == 1
                                  for o in st["pool"]["origins"].values()),
            "a lease waiting for the total limit")
        self.assertEqual(st["pool"]["open"], 1)
        self.assertEqual(len(other.connections), 0)
        head, body, last = a.read_response(1)
        self.assertEqual(last["error"], "timeout")
        head, body, last = b.read_response(1)
        self.assertEqual(head and head["status"], 200, last)


class ResponseLimits(LimitTest):

    def test_max_response_head_bytes(self):
        d = self.daemon(max_response_head_bytes=2048)
        w = self.wire(d)
        head, body, last = w.request(1, "GET", self.origin.url("/big-head"))
        self.assertIsNone(head)
        self.assertEqual(last["error"], "limit_exceeded")
        self.assertIn("max_response_head_bytes", last["message"])
        # A head under the limit, on the same client and another.
        head, body, last = w.request(2, "GET", self.origin.url())
        self.assertEqual(head["status"], 200, last)
        self.assertServed(d, 3)

    def test_read_timeout(self):
        d = self.daemon(read_timeout=0.3)
        w = self.wire(d)
        head, body, last = w.request(1, "GET", self.origin.url("/hang"))
        self.assertEqual(last["error"], "timeout")
        self.assertIn("no response bytes", last["message"])
        self.assertServed(d, 2)

    def test_request_timeout_bounds_a_trickling_response(self):
        # A byte every 0.1 s never trips the read timeout; the whole
        # exchange is bounded all the same.
        d = self.daemon(request_timeout=0.5, read_timeout=5)
        w = self.wire(d)
        head, body, last = w.request(1, "GET", self.origin.url("/trickle"))
        self.assertEqual(head["status"], 200)
        self.assertEqual(last["error"], "timeout", last)
        self.assertIn("request_timeout", last["message"])
        self.assertLess(len(body), 100)
        self.assertServed(d, 2)

    def test_connect_timeout(self):
        # A listener whose accept queue is full: Linux drops the SYN, so
        # the connect hangs (on loopback, without any other host).
        full = socket.socket()
        self.addCleanup(full.close)
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            self.addCleanup(s.close)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        d = self.daemon(connect_timeout=0.3)
        w = self.wire(d)
        head, body, last = w.request(1, "GET", f"http://127.0.0.1:{port}/")
        self.assertEqual(last["error"], "timeout", last)
        self.assertIn("timed out", last["message"])
        self.assertServed(d, 2)

    def test_idle_timeout(self):
        d = self.daemon(idle_timeout=0.2)
        w = self.wire(d)
        head, body, last = w.request(1, "GET", self.origin.url())
        self.assertEqual(head["status"], 200, last)
        self.wait_stats(w, lambda st: st["pool"]["open"] == 0,
                        "the idle connection closed")
        head, body, last = w.request(2, "GET", self.origin.url())
        self.assertIs(head["reused"], False)


class Stats(LimitTest):
    """The figures that show limits and reuse at work, through the op and
    through hconn --stats."""

    def test_stats_op_and_cli(self):
        harness.require_binary(self, harness.HCONN, "hconn command")
        d = self.daemon(max_inline_body_bytes=1)
        w = self.wire(d)
        for rid in (1, 2):
            head, body, last = w.request(rid, "GET", self.origin.url())
            self.assertEqual(head["status"], 200, last)
        w.request(3, "POST", self.origin.url(), b"ab", data=2)
        r = self.run_hconn(d, "--stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)
        self.assertEqual(st["op"], "stats")
        self.assertEqual(st["clients"], 2)   # w and the command itself
        self.assertEqual(st["requests"], 3)
        self.assertEqual(st["responses"], 2)
        self.assertEqual(st["reuse_misses"], 1)
        self.assertEqual(st["reuse_hits"], 1)
        self.assertEqual(st["errors"], {"limit_exceeded": 1})
        self.assertEqual(st["tls"], {"handshakes": 0, "resumed": 0,
                                     "contexts": 0})
        self.assertIsInstance(st["uptime"], int)
        origin = st["pool"]["origins"][f"http://{self.origin.hostport}"]
        self.assertEqual(origin["idle"], 1)

    def test_tls_handshakes_and_resumptions(self):
        nginx = self.start_nginx(tls=True)
        d = self.daemon()
        w = self.wire(d)
        tls = {"ca_file": nginx.ca_file}
        # The first connection closes after its response; the second
        # must be new, and resumes the first one's session.
        head, body, last = w.request(1, "GET", nginx.tls_url("/small.txt"),
                                     tls=tls,
                                     headers=[["Connection", "close"]])
        self.assertEqual(head and head["status"], 200, last)
        head, body, last = w.request(2, "GET", nginx.tls_url("/small.txt"),
                                     tls=tls)
        self.assertEqual(head and head["status"], 200, last)
        self.assertIs(head["reused"], False)
        self.assertEqual(self.stats(w)["tls"],
                         {"handshakes": 2, "resumed": 1, "contexts": 1})

    def test_stats_show_a_user_only_its_own(self):
        other_user.require(self)
        uid, gid = other_user.ids()
        theirs = self.start_origin({None: [("send", OK)]})
        d = self.daemon()
        root = self.wire(d)
        # Root's request, to an origin the user never uses.
        head, _, last = root.request(1, "GET", self.origin.url())
        self.assertEqual(head["status"], 200, last)
        user = other_user.wire_as(self, d, uid, gid)
        head, _, last = user.request(1, "GET", theirs.url())
        self.assertEqual(head["status"], 200, last)
        user.send({"id": 2, "method": "GET", "host": "127.0.0.1",
                   "port": theirs.port, "tls": {"ca_file": "/nonexistent"}})
        user.read_response(2)
        st = self.stats(user)
        self.assertEqual(st["uid"], uid)
        self.assertEqual(list(st["pool"]["origins"]),
                         [f"http://{theirs.hostport}"])
        self.assertEqual((st["requests"], st["responses"], st["clients"]),
                         (2, 1, 1))
        self.assertEqual(st["errors"], {"tls_failed": 1})
        self.assertNotIn("tls", st)
        self.assertNotIn("clients_total", st)
        self.assertNotIn(str(self.origin.port), json.dumps(st))
        # Root sees everything.
        st = self.stats(root)
        self.assertEqual(set(st["pool"]["origins"]),
                         {f"http://{theirs.hostport}",
                          f"http://{self.origin.hostport}"})
        self.assertEqual(st["requests"], 3)
        self.assertEqual(st["clients"], 2)

    def test_cli_stats_without_a_daemon(self):
        harness.require_binary(self, harness.HCONN, "hconn command")
        r = subprocess.run([harness.HCONN, "--stats", "--socket",
                            "/nonexistent/hconnd.sock"],
                           capture_output=True, timeout=10)
        self.assertEqual(r.returncode,
                         harness.error_codes()["daemon_unavailable"])
        self.assertIn(b"/nonexistent/hconnd.sock", r.stderr)


if __name__ == "__main__":
    harness.main()
