#!/usr/bin/env python3
"""The hconn command's curl habits: a URL without a scheme, -L redirects
(every hop a request through hconnd and its policy), the progress meter
under a pseudo-terminal, the --stats summary, and an upload that stops once
the server has answered or the daemon refused it."""

import json
import os
import pty
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SMALL_BODY, big_bytes  # noqa: E402

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def redirect(location, status=302):
    return [("send", b"HTTP/1.1 %d Redirect\r\nLocation: %s\r\n"
                     b"Content-Length: 0\r\n\r\n" % (status, location.encode()))]


class CliTest(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        harness.require_binary(cls, harness.HCONN, "hconn command")
        cls.nginx = harness.start_class_nginx(cls)

    def daemon(self, **keys):
        return self.start_daemon_config(**keys)

    def hconn(self, d, *args, **kw):
        return self.run_hconn(d, *args, **kw)

    def run_on_pty(self, d, args, stdout_pty=False):
        """Runs hconn with stderr (and with stdout_pty, stdout) on a
        pseudo-terminal; returns (exit status, terminal output, stdout)."""
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [harness.HCONN, *args], env=d.env, stdin=subprocess.DEVNULL,
            stdout=slave if stdout_pty else subprocess.PIPE, stderr=slave,
            start_new_session=True)
        os.close(slave)
        out_box = []
        reader = None
        if not stdout_pty:
            reader = threading.Thread(
                target=lambda: out_box.append(proc.stdout.read()),
                daemon=True)
            reader.start()
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        status = proc.wait(timeout=60)
        if reader:
            reader.join(timeout=30)
            proc.stdout.close()
        return status, b"".join(chunks), out_box[0] if out_box else b""


class SchemeAndRedirects(CliTest):

    def setUp(self):
        self.d = self.daemon()

    def test_url_without_scheme_is_http(self):
        r = self.hconn(self.d, f"{self.nginx.hostport}/small.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, SMALL_BODY)

    def test_redirect_not_followed_without_L(self):
        r = self.hconn(self.d, "-i", self.nginx.url("/redirect/301"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(b"HTTP/1.1 301 "), r.stdout)

    def test_L_follows_301_302_and_a_relative_location(self):
        for path in ("/redirect/301", "/redirect/302", "/redirect/twice",
                     "/redirect/relative"):
            with self.subTest(path=path):
                r = self.hconn(self.d, "-L", self.nginx.url(path))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, SMALL_BODY)

    def test_iL_prints_every_head(self):
        r = self.hconn(self.d, "-iL", self.nginx.url("/redirect/twice"))
        self.assertEqual(r.returncode, 0, r.stderr)
        heads = [line for line in r.stdout.split(b"\r\n")
                 if line.startswith(b"HTTP/1.1 ")]
        self.assertEqual([h.split()[1] for h in heads],
                         [b"302", b"301", b"200"])
        self.assertTrue(r.stdout.endswith(SMALL_BODY))

    def test_303_and_post_after_301_become_get(self):
        for path in ("/redirect/303", "/redirect/301", "/redirect/302"):
            with self.subTest(path=path):
                r = self.hconn(self.d, "-L", "-v", "-d", "abc",
                               self.nginx.url(path))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, SMALL_BODY)
                self.assertIn(b"> GET /small.txt HTTP/1.1", r.stderr)
                self.assertIn(b"< X-Request-Method: GET", r.stderr)

    def test_307_and_308_keep_the_method_and_body(self):
        for path in ("/redirect/307", "/redirect/308"):
            with self.subTest(path=path):
                r = self.hconn(self.d, "-L", "-d", "abc",
                               self.nginx.url(path))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, b"abc")

    def test_max_redirs(self):
        r = self.hconn(self.d, "-L", "--max-redirs", "3",
                       self.nginx.url("/redirect/loop"))
        self.assertEqual(r.returncode, 23, r.stderr)
        self.assertIn(b"maximum (3) redirects followed", r.stderr)
        log = self.nginx.wait_access_log("/redirect/loop")
        self.assertEqual(log.count("GET /redirect/loop "), 4, log)
        r = self.hconn(self.d, "-L", "--max-redirs", "0",
                       self.nginx.url("/redirect/301"))
        self.assertEqual(r.returncode, 23, r.stderr)

    def test_credentials_stay_with_their_origin(self):
        other = self.start_origin({None: [("send", OK)]})
        first = self.start_origin({
            "/away": redirect(other.url("/landing")),
            "/same": redirect("/landing"),
            None: [("send", OK)],
        })
        fields = ["-H", "Authorization: Bearer secret", "-H", "Cookie: a=b",
                  "-H", "X-Keep: yes"]
        r = self.hconn(self.d, "-L", *fields, first.url("/away"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"ok")
        self.assertTrue(other.wait_requests(1))
        q = other.requests[0]
        self.assertEqual(q.target, "/landing")
        self.assertIsNone(q.header("Authorization"))
        self.assertIsNone(q.header("Cookie"))
        self.assertEqual(q.header("X-Keep"), "yes")
        r = self.hconn(self.d, "-L", *fields, first.url("/same"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(first.wait_requests(3))
        q = first.requests[2]
        self.assertEqual(q.target, "/landing")
        self.assertEqual(q.header("Authorization"), "Bearer secret")
        self.assertEqual(q.header("Cookie"), "a=b")

    def test_every_hop_goes_through_the_policy(self):
        denied = self.start_origin({None: [("send", OK)]})
        first = self.start_origin({None: redirect(denied.url("/x"))})
        d = self.daemon(policy={"default": {"ports": [first.port]}})
        r = self.hconn(d, "-L", first.url("/"))
        self.assertEqual(r.returncode, 21, r.stderr)
        self.assertIn(b"denied", r.stderr)
        self.assertEqual(len(denied.connections), 0)
        self.assertEqual(len(first.requests), 1)

    def test_redirect_to_another_scheme_is_refused(self):
        first = self.start_origin({None: redirect("ftp://127.0.0.1/x")})
        r = self.hconn(self.d, "-L", first.url("/"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"only http:// and https://", r.stderr)


class ProgressMeter(CliTest):

    def setUp(self):
        self.d = self.daemon()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.out = os.path.join(tmp.name, "out.bin")

    def test_download_meter_on_a_terminal_with_o(self):
        status, term, _ = self.run_on_pty(
            self.d, ["-o", self.out, self.nginx.url("/big.bin")])
        self.assertEqual(status, 0, term)
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), big_bytes())
        self.assertIn(b"download", term)
        self.assertIn(b"100.0%", term)
        self.assertIn(b"1.0 MiB of 1.0 MiB", term)
        self.assertTrue(term.rstrip().endswith(b"left"), term)

    def test_meter_when_stdout_is_not_a_terminal(self):
        status, term, out = self.run_on_pty(self.d,
                                            [self.nginx.url("/big.bin")])
        self.assertEqual(status, 0, term)
        self.assertEqual(out, big_bytes())
        self.assertIn(b"100.0%", term)

    def test_no_meter_when_the_body_goes_to_the_terminal(self):
        status, term, _ = self.run_on_pty(
            self.d, [self.nginx.url("/small.txt")], stdout_pty=True)
        self.assertEqual(status, 0, term)
        self.assertNotIn(b"%", term)
        self.assertIn(SMALL_BODY.rstrip(), term)

    def test_s_silences_it(self):
        status, term, _ = self.run_on_pty(
            self.d, ["-s", "-o", self.out, self.nginx.url("/big.bin")])
        self.assertEqual(status, 0, term)
        self.assertEqual(term, b"")

    def test_no_meter_when_stderr_is_not_a_terminal(self):
        r = self.hconn(self.d, "-o", self.out, self.nginx.url("/big.bin"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"")

    def test_progress_bar(self):
        status, term, _ = self.run_on_pty(
            self.d, ["-#", "-o", self.out, self.nginx.url("/big.bin")])
        self.assertEqual(status, 0, term)
        self.assertIn(b"##########", term)
        self.assertIn(b"100.0%", term)
        self.assertNotIn(b"download", term)

    def test_upload_meter(self):
        src = self.out + ".src"
        with open(src, "wb") as f:
            f.write(big_bytes())
        self.addCleanup(os.unlink, src)
        status, term, _ = self.run_on_pty(
            self.d, ["-o", self.out, "-T", src,
                     self.nginx.url("/dav/progress.bin")])
        self.assertEqual(status, 0, term)
        self.assertIn(b"upload", term)
        self.assertIn(b"100.0%", term)
        self.assertIn(b"1.0 MiB of 1.0 MiB", term)


class StatsAndUploads(CliTest):

    def test_stats_summary_on_a_terminal_json_otherwise(self):
        d = self.daemon()
        self.assertEqual(self.hconn(d, self.nginx.url("/small.txt"))
                         .returncode, 0)
        status, term, _ = self.run_on_pty(d, ["--stats"], stdout_pty=True)
        self.assertEqual(status, 0, term)
        text = term.decode()
        self.assertRegex(text, r"requests: +\d+, \d+ responses")
        self.assertIn(f"http://127.0.0.1:{self.nginx.port}", text)
        self.assertNotIn('"op"', text)
        r = self.hconn(d, "--stats")
        self.assertEqual(json.loads(r.stdout)["op"], "stats")
        status, term, _ = self.run_on_pty(d, ["--stats", "--json"],
                                          stdout_pty=True)
        self.assertEqual(json.loads(term.strip())["op"], "stats")

    def feed(self, d, args, total=256 * 1024 * 1024):
        """Runs hconn with args, its stdin a pipe fed zeros until hconn
        stops reading or total bytes went; returns (result, bytes fed)."""
        proc = subprocess.Popen([harness.HCONN, *args], env=d.env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                start_new_session=True)
        fed = [0]

        def writer():
            piece = bytes(64 * 1024)
            try:
                while fed[0] < total:
                    proc.stdin.write(piece)
                    fed[0] += len(piece)
                proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        err_box = []
        reader = threading.Thread(
            target=lambda: err_box.append(proc.stderr.read()), daemon=True)
        reader.start()
        out = proc.stdout.read()
        proc.wait(timeout=120)
        reader.join(timeout=30)
        t.join(timeout=30)
        for f in (proc.stdin, proc.stdout, proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        err = err_box[0] if err_box else b""
        return proc.returncode, out, err, fed[0], total

    def test_upload_stops_at_an_early_413(self):
        origin = self.start_origin({None: [
            ("head_only",),
            ("send", b"HTTP/1.1 413 Content Too Large\r\n"
                     b"Content-Length: 8\r\nConnection: close\r\n\r\ntoo big\n"),
            ("keep_open",)]})
        d = self.daemon()
        status, out, err, fed, total = self.feed(
            d, ["-H", "Expect:", "--data-binary", "@-", origin.url("/up")])
        self.assertEqual(status, 0, err)
        self.assertEqual(out, b"too big\n")
        self.assertIn(b"upload stopped", err)
        self.assertIn(b"413", err)
        self.assertLess(fed, total // 4,
                        "the upload went on after the 413")

    def test_upload_stops_when_the_policy_denies_it(self):
        origin = self.start_origin({None: [("send", OK)]})
        d = self.daemon(policy={"default": {"ports": [1]}})
        status, out, err, fed, total = self.feed(
            d, ["-H", "Expect:", "--data-binary", "@-", origin.url("/up")])
        self.assertEqual(status, 21, err)
        self.assertIn(b"denied", err)
        self.assertLess(fed, total // 4,
                        "the upload went on after the refusal")
        self.assertEqual(len(origin.connections), 0)


if __name__ == "__main__":
    harness.main()
