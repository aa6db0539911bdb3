#!/usr/bin/env python3
"""The daemon as a process: its socket file (a live daemon is never
displaced, a stale file is replaced, anything else is refused), the
config file, name resolution through evdns, and the idle timeout."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HCONND, SMALL_BODY  # noqa: E402


def run_hconnd(*args, timeout=10):
    """Runs hconnd expecting it to exit by itself (a refusal)."""
    return subprocess.run([HCONND, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class SocketFile(harness.IntegrationTest):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hconnd-sock-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.dir]))
        self.path = os.path.join(self.dir, "hconnd.sock")

    def hello(self, path):
        w = harness.Wire(path, timeout=5)
        self.addCleanup(w.close)
        w.send({"op": "hello"})
        return w.read_message()

    def test_second_daemon_refuses_a_live_socket(self):
        d = self.start_daemon()
        r = run_hconnd("--socket", d.socket)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"another hconnd is already listening on {d.socket}",
                      r.stderr)
        # The first daemon and its socket are untouched.
        self.assertEqual(self.hello(d.socket)["op"], "hello")

    def test_stale_socket_file_is_replaced(self):
        # A socket file nobody listens on, as a crash leaves behind.
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.path)
        s.close()
        self.assertTrue(os.path.exists(self.path))
        proc = subprocess.Popen([HCONND, "--socket", self.path, "-v"],
                                stdin=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(proc.kill)
        self.assertTrue(harness.wait_for_unix(self.path, 10, proc))
        self.assertEqual(self.hello(self.path)["version"], 1)
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0)
        self.assertIn("removing stale socket", err)
        # A clean stop removes the file it created.
        self.assertFalse(os.path.exists(self.path))

    @staticmethod
    def untraced_leak_check_env():
        """The environment for a daemon run under strace: LeakSanitizer
        cannot run under ptrace, so a sanitizer build skips it there."""
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(
            filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
        return env

    def test_signals_are_handled_once_the_socket_exists(self):
        # strace holds listen() for a while: the socket file exists, so a
        # client (or systemd, or a script) may already send SIGHUP. The
        # daemon must have its handlers by then, else the default action
        # of SIGHUP kills it.
        if shutil.which("strace") is None:
            self.skipTest("strace is not installed")
        proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=listen",
             "-e", "inject=listen:delay_exit=1500000",
             HCONND, "--socket", self.path, "-v"],
            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True, env=self.untraced_leak_check_env())
        self.addCleanup(harness.kill_group, proc)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.path):
            self.assertIsNone(proc.poll(), "hconnd exited before binding")
            self.assertLess(time.monotonic(), deadline, "no socket file")
            time.sleep(0.005)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            daemon_pid = int(f.read().split()[0])
        os.kill(daemon_pid, signal.SIGHUP)
        self.assertTrue(harness.wait_for_unix(self.path, 10, proc))
        self.assertEqual(self.hello(self.path)["version"], 1)
        os.kill(daemon_pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("SIGHUP:", err)

    def test_path_that_is_not_a_socket_is_refused(self):
        with open(self.path, "w") as f:
            f.write("precious\n")
        r = run_hconnd("--socket", self.path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("exists and is not a socket", r.stderr)
        with open(self.path) as f:
            self.assertEqual(f.read(), "precious\n")


class ConfigFile(harness.IntegrationTest):

    def write_config(self, obj):
        fd, path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        self.addCleanup(os.unlink, path)
        return path

    def assertRefused(self, config, *needles):
        r = run_hconnd("--socket", "/nonexistent/never-used.sock",
                       "--config", self.write_config(config))
        self.assertNotEqual(r.returncode, 0)
        for needle in needles:
            self.assertIn(needle, r.stderr)

    def test_unknown_key_is_named(self):
        self.assertRefused({"idle_timout": 5}, 'unknown key "idle_timout"')

    def test_wrong_type_is_named(self):
        self.assertRefused({"idle_timeout": "5"},
                           '"idle_timeout" must be a number')

    def test_out_of_range_is_named(self):
        self.assertRefused({"pool_max_per_origin": 0},
                           '"pool_max_per_origin" must be between')

    def test_invalid_json_names_line_and_column(self):
        self.assertRefused('{"idle_timeout": 5,\n}', ":2:")

    def test_idle_timeout_closes_pooled_connections(self):
        nginx = self.start_nginx()
        d = self.start_daemon("--config",
                              self.write_config({"idle_timeout": 0.3}))
        w = self.wire(d)
        url = nginx.url("/small.txt")
        head, body, last = w.request(1, "GET", url)
        self.assertOkResponse(head, last)
        w.send({"op": "stats"})
        self.assertEqual(w.read_message()["pool"]["idle"], 1)
        time.sleep(1.0)
        w.send({"op": "stats"})
        self.assertEqual(w.read_message()["pool"]["open"], 0)
        head, body, last = w.request(2, "GET", url)
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], False)
        self.assertIn("idle timeout", d.log_text())

    def test_a_parked_tls_connection_serves_again_then_times_out(self):
        # An idle TLS connection is closed by the idle timeout like any
        # other (a timeout is not a wake-up to look for session tickets),
        # and serves a request after lying idle a while before that. It
        # keeps OpenSSL's buffers half a second after parking, then frees
        # them and waits out the rest of the timeout: usable after that,
        # and still closed when the timeout is up.
        nginx = self.start_nginx(tls=True)
        d = self.start_daemon("--config",
                              self.write_config({"idle_timeout": 3}))
        w = self.wire(d)
        url = nginx.tls_url("/small.txt")
        tls = {"ca_file": nginx.ca_file}
        head, _, last = w.request(1, "GET", url, tls=tls)
        self.assertOkResponse(head, last)
        time.sleep(1.2)
        head, body, last = w.request(2, "GET", url, tls=tls)
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], True)
        self.assertEqual(body, harness.SMALL_BODY)
        time.sleep(1.2)   # buffers freed again; the timeout runs on
        w.send({"op": "stats"})
        self.assertEqual(w.read_message()["pool"]["idle"], 1)
        time.sleep(3.0)
        w.send({"op": "stats"})
        self.assertEqual(w.read_message()["pool"]["open"], 0)
        self.assertIn("idle timeout", d.log_text())


class PlainIdleConnections(harness.IntegrationTest):
    """A plain pooled connection goes on being read while it is idle (its
    bufferevent's own reading, upstream_park): whatever wakes it closes it,
    and it serves again with its own timeouts."""

    OK = harness.http_response(200, b"quick\n")

    def setUp(self):
        self.origin = self.start_origin({
            "/quick": [("send", self.OK)],
            "/slow": [("sleep", 1.0), ("send", self.OK)],
            "/then-close": [("send", self.OK), ("sleep", 0.3), ("close",)],
            "/then-bytes": [("send", self.OK), ("sleep", 0.3),
                            ("send", b"HTTP/1.1 200 OK\r\n"), ("keep_open",)],
        })

    def pool(self, w):
        w.send({"op": "stats"})
        return w.read_message()["pool"]

    def wait_pool_empty(self, w, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.pool(w)["open"] != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.pool(w)["open"], 0)

    def test_the_read_timeout_runs_from_the_request(self):
        # read_timeout as long as idle_timeout: the timer the idle watch
        # armed must not be what the next request's response is held to.
        # Idle 1.5 s, then an answer 1 s after the request: in time.
        d = self.start_daemon_config(idle_timeout=2, read_timeout=2)
        w = self.wire(d)
        head, body, last = w.request(1, "GET", self.origin.url("/quick"))
        self.assertOkResponse(head, last)
        time.sleep(1.5)
        head, body, last = w.request(2, "GET", self.origin.url("/slow"))
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], True)
        self.assertEqual(body, b"quick\n")
        self.assertEqual(len(self.origin.connections), 1)

    def serves_again_then_times_out(self, **config):
        d = self.start_daemon_config(**config)
        w = self.wire(d)
        for rid in (1, 2):
            head, _, last = w.request(rid, "GET", self.origin.url("/quick"))
            self.assertOkResponse(head, last)
            self.assertIs(head["reused"], rid == 2)
            time.sleep(1.0)
        self.assertEqual(self.pool(w)["idle"], 1)
        self.wait_pool_empty(w)
        self.assertIn("idle timeout", d.log_text())

    def test_serves_again_then_times_out(self):
        self.serves_again_then_times_out(idle_timeout=1.5)

    def test_serves_again_then_times_out_as_long_as_a_read(self):
        # The idle watch keeps the timer a read left when the two
        # timeouts are the same.
        self.serves_again_then_times_out(idle_timeout=1.5, read_timeout=1.5)

    def closed_while_idle(self, path, why):
        # Whatever wakes an idle connection closes it; the next request
        # gets a new one, and its own answer.
        d = self.start_daemon()
        w = self.wire(d)
        head, _, last = w.request(1, "GET", self.origin.url(path))
        self.assertOkResponse(head, last)
        self.wait_pool_empty(w)
        self.assertIn(why, d.log_text())
        head, body, last = w.request(2, "GET", self.origin.url("/quick"))
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], False)
        self.assertEqual(body, b"quick\n")

    def test_an_origin_closing_it_closes_it(self):
        self.closed_while_idle("/then-close", "closed by the server")

    def test_bytes_while_idle_close_it(self):
        self.closed_while_idle("/then-bytes",
                               "unexpected bytes from the server while idle")


class PlainReadTimeouts(harness.IntegrationTest):
    """A plain connection's read timeout is a deadline that each read
    moves (upstream.c, deadline.c) rather than a timer re-armed per read:
    it must fall due exactly where a re-armed timer would, whichever way
    the deadline moved since its timer was armed."""

    OK = harness.http_response(200, b"quick\n")
    TRICKLE = b"0123456789"

    def setUp(self):
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
        self.origin = self.start_origin({
            "/quick": [("send", self.OK)],
            "/late": [("sleep", 3.0), ("send", self.OK)],
            # A byte every 0.3 s: 3 s in all, twice the read timeout.
            "/trickle": [("send", head), ("drip", self.TRICKLE, 1, 0.3)],
            # Three bytes, then a gap past the read timeout.
            "/gap": [("send", head), ("drip", self.TRICKLE[:3], 1, 0.3),
                     ("sleep", 4.0), ("send", self.TRICKLE[3:])],
        })

    def test_a_short_read_timeout_after_a_long_one(self):
        # The pooled connection's timer was armed for the first request's
        # 30 s (and the idle timeout's): the second request's 0.5 s moves
        # the deadline earlier, which must arm the timer again at once,
        # or the late answer would arrive before it fires.
        d = self.start_daemon_config(read_timeout=30, idle_timeout=30)
        w = self.wire(d)
        head, _, last = w.request(1, "GET", self.origin.url("/quick"))
        self.assertOkResponse(head, last)
        head, _, last = w.request(2, "GET", self.origin.url("/late"),
                                  read_timeout=0.5)
        self.assertIsNone(head)
        self.assertEqual(last["error"], "timeout", last)
        self.assertIn("no response bytes", last["message"])
        self.assertIn("0.5 s", last["message"])
        self.assertEqual(len(self.origin.connections), 1)

    def test_bytes_under_the_read_timeout_keep_it_alive_a_gap_fires(self):
        # Each byte comes well within the 1.5 s read timeout, the whole
        # body takes twice as long: it arrives whole. Then, on the same
        # connection, one gap longer than the timeout ends the response
        # after its head.
        d = self.start_daemon_config(read_timeout=1.5)
        w = self.wire(d)
        head, body, last = w.request(1, "GET", self.origin.url("/trickle"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, self.TRICKLE)
        head, body, last = w.request(2, "GET", self.origin.url("/gap"))
        self.assertEqual(head and head["status"], 200, last)
        self.assertIs(head["reused"], True)
        self.assertEqual(last["error"], "timeout", last)
        self.assertIn("no response bytes", last["message"])
        self.assertEqual(body, self.TRICKLE[:3])
        self.assertEqual(len(self.origin.connections), 1)

    def test_a_read_timeout_shorter_than_idle_does_not_close_it(self):
        # The read timeout ends with the response: an idle connection is
        # held to idle_timeout alone, though the timer left from the
        # request falls due first.
        d = self.start_daemon_config(read_timeout=0.3, idle_timeout=30)
        w = self.wire(d)
        head, _, last = w.request(1, "GET", self.origin.url("/quick"))
        self.assertOkResponse(head, last)
        time.sleep(1.0)
        head, body, last = w.request(2, "GET", self.origin.url("/quick"))
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], True)
        self.assertEqual(body, b"quick\n")
        self.assertNotIn("idle timeout", d.log_text())


class NameResolution(harness.IntegrationTest):

    def test_localhost_resolves_and_connects(self):
        # Through evdns and /etc/hosts; nginx listens on 127.0.0.1 only, so
        # if ::1 comes first the daemon must move on to the next address.
        nginx = self.start_nginx()
        d = self.start_daemon()
        w = self.wire(d)
        head, body, last = w.request(
            1, "GET", f"http://localhost:{nginx.port}/small.txt")
        self.assertOkResponse(head, last)
        self.assertEqual(body, SMALL_BODY)


if __name__ == "__main__":
    harness.main()
