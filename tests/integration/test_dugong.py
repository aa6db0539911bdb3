#!/usr/bin/env python3
"""dugong's feature set, client side: streamed uploads (libhconn's
request_stream / send_fd, the CLI's -T and --data-binary @FILE),
Expect: 100-continue end to end, pipelining without deadlock, the
non-blocking API (pipeline-check nonblock, examples/poll-get) and strict
close semantics in the library and the CLI. Real hconnd, real nginx, and
the scripted FaultOrigin for exact bytes."""

import hashlib
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http_response  # noqa: E402

PIPELINE_CHECK = os.environ.get("HCONN_PIPELINE_CHECK") or os.path.join(
    harness.BUILD_ROOT, "client-lib", "pipeline-check")
POLL_GET = os.environ.get("HCONN_POLL_GET") or os.path.join(
    harness.BUILD_ROOT, "client-lib", "poll-get")

# Per-request bodies of the pipelining proof, both ways, and their count.
# The sanitizer build runs the same deadlock check on a fifth of the data:
# its point there is memory errors, and ASan's overhead on a gigabyte each
# way would dominate the suite's time.
PIPE_COUNT = 200 if os.environ.get("HCONN_SANITIZED") else 1000
PIPE_SIZE = 1024 * 1024
DAEMON_RSS_LIMIT_KIB = 96 * 1024


def run_check(testcase, daemon, *args, timeout=300):
    """Runs pipeline-check against daemon; fails the test with its output
    unless it exits 0. Returns its stdout."""
    harness.require_binary(testcase, PIPELINE_CHECK, "pipeline-check")
    # HCONN_CHECK_DAEMON_PID: the check may pause the daemon (SIGSTOP) to
    # see its own output queue fill, whatever the daemon's reading speed.
    r = subprocess.run([PIPELINE_CHECK, *args], capture_output=True,
                       env=dict(daemon.env,
                                HCONN_CHECK_DAEMON_PID=str(daemon.pid)),
                       timeout=timeout,
                       start_new_session=True)
    out = r.stdout.decode(errors="replace")
    testcase.assertEqual(r.returncode, 0,
                         f"pipeline-check {' '.join(args)} exited "
                         f"{r.returncode}\nstdout:\n{out}\nstderr:\n"
                         f"{r.stderr.decode(errors='replace')}")
    testcase.assertIn("ok 1 ", out)
    testcase.assertNotIn("not ok", out)
    return out


def write_file(directory, name, data):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


class AgainstNginx(harness.IntegrationTest):
    """libhconn and the CLI against nginx's /echo and /dav/."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls)

    def setUp(self):
        self.daemon = self.start_daemon()
        self.tmp = tempfile.mkdtemp(prefix="hconn-dugong-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp]))

    def test_pipelining_1000_requests_of_1_mib_each_way(self):
        # Every request is sent before the first response is read: the
        # library takes in replies while its writes wait, and hconnd
        # pauses its reading, so nothing deadlocks; hconnd's memory stays
        # bounded while a gigabyte goes through each way.
        out = run_check(self, self.daemon, "pipeline", self.nginx.hostport,
                        str(PIPE_COUNT), str(PIPE_SIZE), timeout=280)
        client_kib = int(re.search(r"# client peak RSS (\d+) kiB",
                                   out).group(1))
        print(f"\nclient peak RSS {client_kib} kiB, hconnd peak RSS "
              f"{self.daemon.peak_rss_kib()} kiB", file=sys.stderr)
        if not os.environ.get("HCONN_SANITIZED"):
            self.assertLess(self.daemon.peak_rss_kib(), DAEMON_RSS_LIMIT_KIB)
            # The client holds the responses nobody read yet (the reader
            # starts after the last send, so they must be somewhere), and
            # nothing more: no second copy, no growth beyond them.
            unread_kib = PIPE_COUNT * PIPE_SIZE // 1024
            self.assertLess(client_kib, unread_kib * 5 // 4 + 64 * 1024)

    def test_non_blocking_mode(self):
        run_check(self, self.daemon, "nonblock", self.nginx.hostport)

    def test_poll_get_example_fetches_concurrently(self):
        harness.require_binary(self, POLL_GET, "examples/poll-get")
        r = subprocess.run([POLL_GET, self.nginx.hostport, "/small.txt",
                            "/big.bin", "/missing", "/chunked"],
                           capture_output=True, env=dict(self.daemon.env),
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [ln.split() for ln in r.stdout.decode().splitlines()]
        self.assertEqual([(ln[0], ln[2]) for ln in lines],
                         [("200", "/small.txt"), ("200", "/big.bin"),
                          ("404", "/missing"), ("200", "/chunked")])
        self.assertEqual(lines[0][1], "12")
        self.assertEqual(lines[1][1], str(harness.BIG_SIZE))
        self.assertEqual(lines[3][1], "18")

    def test_send_fd_file_and_pipe(self):
        path = write_file(self.tmp, "body.bin", os.urandom(3 * 1024 * 1024
                                                          + 17))
        run_check(self, self.daemon, "sendfd", self.nginx.hostport, path)

    def test_cli_upload_file_streams_with_content_length(self):
        data = os.urandom(5 * 1024 * 1024 + 3)
        path = write_file(self.tmp, "up.bin", data)
        r = self.run_hconn(self.daemon, "-v", "-T", path,
                           self.nginx.url("/dav/up.bin"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"> PUT /dav/up.bin", r.stderr)
        self.assertIn(f"> Content-Length: {len(data)}".encode(), r.stderr)
        # Over 1 MiB: 100-continue, as curl.
        self.assertIn(b"* sending the body", r.stderr)
        r = self.run_hconn(self.daemon, self.nginx.url("/dav/up.bin"))
        self.assertEqual(hashlib.sha256(r.stdout).digest(),
                         hashlib.sha256(data).digest())

    def test_cli_upload_from_stdin_is_chunked(self):
        data = os.urandom(300 * 1024)
        r = self.run_hconn(self.daemon, "-v", "-T", "-", "-X", "POST",
                           self.nginx.url("/echo"), input=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"> Transfer-Encoding: chunked", r.stderr)
        self.assertEqual(r.stdout, data)

    def test_cli_data_binary_file_is_streamed_verbatim(self):
        data = b"a\r\nb\nc" + os.urandom(70000)
        path = write_file(self.tmp, "d.bin", data)
        r = self.run_hconn(self.daemon, "--data-binary", "@" + path,
                           self.nginx.url("/echo"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data)
        # -d @FILE keeps curl's CR/LF stripping (read into memory).
        r = self.run_hconn(self.daemon, "-d", "@" + path,
                           self.nginx.url("/echo"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data.replace(b"\r", b"").replace(b"\n",
                                                                   b""))
        # Joined with another part it still works, in memory.
        r = self.run_hconn(self.daemon, "--data-binary", "@" + path,
                           "--data-binary", "x=1", self.nginx.url("/echo"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data + b"&x=1")

    def test_cli_missing_upload_file_is_io_error(self):
        r = self.run_hconn(self.daemon, "-T", os.path.join(self.tmp, "none"),
                           self.nginx.url("/dav/x"))
        self.assertEqual(r.returncode, harness.error_codes()["io_error"])
        self.assertIn(b"none", r.stderr)


class AgainstFaultOrigin(harness.IntegrationTest):
    """Exact bytes from the scripted origin: 100-continue outcomes, bodies
    cut short, close-delimited bodies."""

    def setUp(self):
        cut = http_response(200, b"c" * 600, headers=[("Content-Length",
                                                        "1000")],
                            length=False)
        self.origin = self.start_origin({
            "/continue": [("head_only",),
                          ("send", b"HTTP/1.1 100 Continue\r\n\r\n"),
                          ("read_body",),
                          ("send", http_response(201, b"got it"))],
            "/refuse": [("head_only",),
                        ("send", http_response(403, b"no", reason="Nope")),
                        ("sleep", 0.5), ("close",)],
            "/upload-refused": [("head_only",),
                                ("send", http_response(
                                    413, b"too big",
                                    reason="Content Too Large")),
                                ("sleep", 0.5), ("close",)],
            "/deaf": [("head_only",), ("read_body",),
                      ("send", http_response(200, b"heard"))],
            "/ok": [("send", http_response(200, b"ok"))],
            "/cut": [("send", cut), ("close",)],
            "/reset": [("send", cut), ("sleep", 0.05), ("reset",)],
            "/close-delimited": [("send", http_response(200, b"d" * 3000,
                                                        length=False)),
                                 ("close",)],
            "/big-cut": [("send", http_response(
                200, b"", headers=[("Content-Length", "500000")],
                length=False)), ("stream", 200000), ("close",)],
        })
        self.daemon = self.start_daemon()
        self.tmp = tempfile.mkdtemp(prefix="hconn-dugong-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.tmp]))

    def probe_expect(self):
        """Skips when this hconnd answers expect_continue "unsupported"."""
        w = self.wire(self.daemon, timeout=10)
        w.send({"id": 1, "method": "PUT", "url": self.origin.url("/continue"),
                "data": 1, "expect_continue": True}, b"x")
        msg = w.read_message()
        self.skipIfUnsupported(msg)
        self.assertEqual(msg, {"id": 1, "continue": True})
        head, body, last = w.read_response(1)
        self.assertOkResponse(head, last, status=201)
        w.close()
        with self.origin.lock:
            self.origin.requests.clear()

    def test_library_expect_continue(self):
        self.probe_expect()
        run_check(self, self.daemon, "expect", self.origin.hostport)
        bodies = {r.target: r.body for r in self.origin.requests}
        self.assertEqual(bodies["/refuse"], b"")
        self.assertEqual(bodies["/continue"], b"hello")
        self.assertEqual(
            [r.header("Expect") for r in self.origin.requests
             if r.target != "/ok"], ["100-continue"] * 3)

    def test_library_strict_close(self):
        run_check(self, self.daemon, "strict", self.origin.hostport)
        # A close-delimited response's connection is never pooled: every
        # one of the 10 came on a connection of its own.
        delimited = [r for r in self.origin.requests
                     if r.target == "/close-delimited"]
        self.assertEqual(len(delimited), 10)
        self.assertEqual(len({r.conn_index for r in delimited}), 10)

    def test_cli_expect_refused_upload_is_not_sent(self):
        self.probe_expect()
        data = os.urandom(2 * 1024 * 1024)
        path = write_file(self.tmp, "big.bin", data)
        r = self.run_hconn(self.daemon, "-v", "-T", path,
                           self.origin.url("/upload-refused"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"too big")
        self.assertIn(b"final response before the body: not sent", r.stderr)
        self.assertEqual(self.origin.requests[0].body, b"")
        self.assertEqual(self.origin.requests[0].header("Expect"),
                         "100-continue")

    def test_cli_expect_timeout_sends_the_body_anyway(self):
        self.probe_expect()
        path = write_file(self.tmp, "small.bin", b"abc")
        r = self.run_hconn(self.daemon, "-v", "-H", "Expect: 100-continue",
                           "--expect100-timeout", "0.2", "-T", path,
                           self.origin.url("/deaf"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"heard")
        self.assertEqual(self.origin.requests[0].body, b"abc")

    def test_cli_expect_header_removed_turns_it_off(self):
        data = os.urandom(2 * 1024 * 1024)
        path = write_file(self.tmp, "big.bin", data)
        r = self.run_hconn(self.daemon, "-H", "Expect:", "-T", path,
                           self.origin.url("/deaf"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(self.origin.requests[0].header("Expect"))
        self.assertEqual(self.origin.requests[0].body, data)

    def test_cli_body_cut_short_is_flagged(self):
        for path, received in (("/cut", 600), ("/big-cut", 200000)):
            with self.subTest(path=path):
                r = self.run_hconn(self.daemon, self.origin.url(path))
                self.assertEqual(r.returncode,
                                 harness.error_codes()["incomplete_read"],
                                 r.stderr)
                self.assertEqual(len(r.stdout), received)
                self.assertIn(f"hconn: body incomplete after {received} "
                              f"bytes: incomplete_read".encode(), r.stderr)

    def test_cli_close_delimited_body_is_complete(self):
        r = self.run_hconn(self.daemon, self.origin.url("/close-delimited"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"d" * 3000)

    def test_protocol_reports_the_cut(self):
        w = self.wire(self.daemon, timeout=10)
        w.send({"id": 1, "method": "GET", "url": self.origin.url("/cut")})
        head, body, last = w.read_response(1)
        self.assertError(last, "incomplete_read", rid=1)
        self.assertEqual(last.get("received"), 600)
        self.assertEqual(last.get("expected"), 1000)
        self.assertEqual(body, b"c" * 600)


if __name__ == "__main__":
    harness.main()
