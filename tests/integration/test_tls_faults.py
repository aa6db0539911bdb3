#!/usr/bin/env python3
"""TLS origins that end badly: how a TLS connection's end reaches the
response. OpenSSL reads and writes the socket itself (daemon/tlssock.c),
and a server that closes without close_notify must still be the dirty
shutdown hconnd allows (a read-to-close body ends there; a framed body
cut short is incomplete_read), a reset must stay an error, and a pooled
TLS connection that the server closes while idle must never be leased."""

import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import other_user  # noqa: E402
from harness import LOOPBACK, big_bytes  # noqa: E402

H200 = b"HTTP/1.1 200 OK\r\n"
BODY = big_bytes(40000)
TRICKLE = b"0123456789"
TEN_HEAD = H200 + b"Content-Length: 10\r\n\r\n"

# path: (bytes to send, how the connection ends: "keep", "fin" (TCP close
# without close_notify), "reset" (RST), "fin-later" (kept a moment, then
# closed without close_notify), "records" (kept; the answer goes out as
# TLS records of RECORD bytes, all in one TCP write), "steps" (kept; the
# answer is a list of (seconds to wait, then bytes to send)))
SCENARIOS = {
    "/close-delimited": (H200 + b"Connection: close\r\n\r\n" + BODY, "fin"),
    "/cut": (H200 + b"Content-Length: 100000\r\n\r\n" + BODY[:1000], "fin"),
    "/reset": (H200 + b"Content-Length: 100000\r\n\r\n" + BODY[:1000],
               "reset"),
    "/ok": (H200 + b"Content-Length: 2\r\n\r\nok", "keep"),
    "/ok-then-close": (H200 + b"Content-Length: 2\r\n\r\nok", "fin-later"),
    "/records": (H200 + b"Content-Length: %d\r\n\r\n" % len(BODY[:6000])
                 + BODY[:6000], "records"),
    # A byte every 0.3 s: 3 s in all, twice the tests' read timeout.
    "/trickle": ([(0, TEN_HEAD)] + [(0.3, TRICKLE[i:i + 1])
                                    for i in range(len(TRICKLE))], "steps"),
    # Three bytes, then a gap past the read timeout.
    "/gap": ([(0, TEN_HEAD)] + [(0.3, TRICKLE[i:i + 1]) for i in range(3)]
             + [(4.0, TRICKLE[3:])], "steps"),
    "/late": ([(3.0, H200 + b"Content-Length: 2\r\n\r\nok")], "steps"),
}

# The size of each TLS record of a "records" answer.
RECORD = 100


class TlsFaultOrigin:
    """A TLS origin on 127.0.0.1 that answers each request by SCENARIOS
    (one thread per connection); counts the connections it accepted."""

    def __init__(self, tls_dir):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(tls_dir, "server.crt"),
                                 os.path.join(tls_dir, "server.key"))
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.closed = threading.Event()
        self.stopping = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def url(self, path):
        return f"https://{LOOPBACK}:{self.port}{path}"

    def stop(self):
        self.stopping = True
        self.listener.close()

    def accept_loop(self):
        while not self.stopping:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.serve, args=(raw,),
                             daemon=True).start()

    def serve(self, raw):
        try:
            # raw is detached: s owns the socket from here on.
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                answer, end = SCENARIOS[path]
                if end == "steps":
                    for wait, data in answer:
                        time.sleep(wait)
                        s.sendall(data)
                    continue
                if end == "records":
                    # Corked: every record reaches hconnd's socket at once,
                    # and one read takes them all.
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                    for i in range(0, len(answer), RECORD):
                        s.sendall(answer[i:i + RECORD])
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
                    continue
                s.sendall(answer)
                if end == "keep":
                    continue
                if end == "fin-later":
                    self.closed.wait(0.3)
                if end == "reset":
                    # After the bytes were read: a reset drops unread ones.
                    self.closed.wait(0.2)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                # No close_notify (SSLSocket.shutdown drops the TLS
                # layer first): the TCP connection just ends.
                s.shutdown(socket.SHUT_RDWR)
                self.closed.set()
                return
        except (OSError, ssl.SSLError):
            pass
        finally:
            s.close()


class TlsOriginTest(harness.IntegrationTest):
    """Tests against a TlsFaultOrigin, with the certificates it uses."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hconn-tlsfaults-")
        cls.tls_dir = harness.make_certificates(
            os.path.join(cls.tmp.name, "tls"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()


class TlsFaults(TlsOriginTest):

    def setUp(self):
        self.origin = TlsFaultOrigin(self.tls_dir)
        self.addCleanup(self.origin.stop)
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)
        self.rid = 0

    def get(self, path):
        self.rid += 1
        return self.w.request(
            self.rid, "GET", self.origin.url(path),
            tls={"ca_file": os.path.join(self.tls_dir, "ca.crt")})

    def test_read_to_close_body_ends_at_a_close_without_close_notify(self):
        head, body, last = self.get("/close-delimited")
        self.assertOkResponse(head, last)
        self.assertTrue(body == BODY, f"{len(body)} bytes, not {len(BODY)}")

    def test_framed_body_cut_by_a_close_is_incomplete_read(self):
        head, body, last = self.get("/cut")
        self.assertIsNotNone(head)
        self.assertEqual(head["length"], 100000)
        self.assertError(last, "incomplete_read", rid=self.rid)
        self.assertLess(len(body), 100000)

    def test_reset_inside_the_body_is_an_explicit_error(self):
        head, body, last = self.get("/reset")
        self.assertIsNotNone(head)
        self.assertIn(last.get("error"),
                      ("incomplete_read", "connection_closed"), last)
        self.assertLess(len(body), 100000)

    def test_connection_the_server_closed_while_idle_is_not_leased(self):
        head, body, last = self.get("/ok-then-close")
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"ok")
        self.assertTrue(self.origin.closed.wait(10))
        head, body, last = self.get("/ok")
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"ok")
        self.assertIs(head["reused"], False)
        self.assertEqual(self.origin.accepted, 2)

    def test_records_read_at_once_all_reach_the_response(self):
        # OpenSSL reads ahead: one read of the socket takes all 61
        # records, and the filter stops asking for more only once
        # OpenSSL holds none (tlssock.c); stopping after the first would
        # leave the rest unread until the read timeout.
        for i in range(2):
            self.rid += 1
            head, body, last = self.w.request(
                self.rid, "GET", self.origin.url("/records"),
                tls={"ca_file": os.path.join(self.tls_dir, "ca.crt")},
                read_timeout=10)
            self.assertOkResponse(head, last)
            self.assertTrue(body == BODY[:6000],
                            f"{len(body)} bytes, not 6000")
            self.assertIs(head["reused"], i > 0)

    def test_pooled_connection_carries_many_requests(self):
        for i in range(20):
            head, body, last = self.get("/ok")
            self.assertOkResponse(head, last)
            self.assertEqual(body, b"ok")
            self.assertIs(head["reused"], i > 0)
        self.assertEqual(self.origin.accepted, 1)


class TlsTimeouts(TlsOriginTest):
    """A TLS connection's read timeout is the deadline each read moves, as
    a plain one's (upstream.c, deadline.c), not the OpenSSL filter's timer
    re-armed per record: it must fall due exactly where that timer would,
    whichever way the deadline moved since its timer was armed. Its idle
    timeout runs from its last park, after the hold of OpenSSL's
    buffers."""

    def setUp(self):
        self.origin = TlsFaultOrigin(self.tls_dir)
        self.addCleanup(self.origin.stop)
        self.rid = 0

    def daemon_with(self, **config):
        self.daemon = self.start_daemon_config(**config)
        self.w = self.wire(self.daemon)

    def get(self, path, **keys):
        self.rid += 1
        return self.w.request(
            self.rid, "GET", self.origin.url(path),
            tls={"ca_file": os.path.join(self.tls_dir, "ca.crt")}, **keys)

    def test_records_under_the_read_timeout_keep_it_alive_a_gap_fires(self):
        # Each record comes well within the 1.5 s read timeout, the whole
        # body takes twice as long: it arrives whole. Then, on the same
        # connection, one gap longer than the timeout ends the response
        # after its head.
        self.daemon_with(read_timeout=1.5)
        head, body, last = self.get("/trickle")
        self.assertOkResponse(head, last)
        self.assertEqual(body, TRICKLE)
        head, body, last = self.get("/gap")
        self.assertEqual(head and head["status"], 200, last)
        self.assertIs(head["reused"], True)
        self.assertEqual(last["error"], "timeout", last)
        self.assertIn("no response bytes", last["message"])
        self.assertEqual(body, TRICKLE[:3])
        self.assertEqual(self.origin.accepted, 1)

    def test_another_users_read_timeout_stays_with_its_request(self):
        # A client of another uid leaves the shared TLS connection after a
        # request with a 0.2 s read timeout. Root's next response on that
        # connection sends a byte every 0.3 s under the daemon's 1.5 s: a
        # deadline left from the other request would cut it.
        other_user.require(self)
        uid, gid = other_user.ids()
        self.daemon_with(read_timeout=1.5, idle_timeout=30)
        public = tempfile.mkdtemp(prefix="hconn-tlspub-")
        self.addCleanup(shutil.rmtree, public, True)
        os.chmod(public, 0o755)
        ca = os.path.join(public, "ca.crt")
        shutil.copyfile(os.path.join(self.tls_dir, "ca.crt"), ca)
        os.chmod(ca, 0o644)
        w = other_user.wire_as(self, self.daemon, uid, gid)
        head, _, last = w.request(1, "GET", self.origin.url("/ok"),
                                  tls={"ca_file": ca}, read_timeout=0.2)
        self.assertOkResponse(head, last)
        w.close()
        head, body, last = self.get("/trickle")
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], True)
        self.assertEqual(body, TRICKLE)
        self.assertEqual(self.origin.accepted, 1)

    def test_a_short_read_timeout_after_a_long_one(self):
        # The pooled connection's timer was armed for the first request's
        # 30 s: the second request's 0.5 s moves the deadline earlier,
        # which must arm the timer again at once.
        self.daemon_with(read_timeout=30, idle_timeout=30)
        head, _, last = self.get("/ok")
        self.assertOkResponse(head, last)
        head, _, last = self.get("/late", read_timeout=0.5)
        self.assertIsNone(head)
        self.assertEqual(last["error"], "timeout", last)
        self.assertIn("no response bytes", last["message"])
        self.assertIn("0.5 s", last["message"])
        self.assertEqual(self.origin.accepted, 1)

    def test_a_read_timeout_shorter_than_idle_does_not_close_it(self):
        # The read timeout ends with the response: an idle connection is
        # held to idle_timeout alone, though the timer left from the
        # request falls due first.
        self.daemon_with(read_timeout=0.3, idle_timeout=30)
        head, _, last = self.get("/ok")
        self.assertOkResponse(head, last)
        time.sleep(1.0)
        head, body, last = self.get("/ok")
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], True)
        self.assertEqual(body, b"ok")
        self.assertNotIn("idle timeout", self.daemon.log_text())
        self.assertEqual(self.origin.accepted, 1)

    def idle(self):
        self.w.send({"op": "stats"})
        pool = self.w.read_message()["pool"]
        return pool["idle"], pool["open"]

    def test_the_idle_timeout_runs_from_the_last_park(self):
        # Leased again every 0.3 s, within the half second OpenSSL's
        # buffers are held: the timer armed at the first park falls due
        # before the connection was idle for 1 s, and must only move on.
        self.daemon_with(idle_timeout=1.0)
        for i in range(6):
            head, body, last = self.get("/ok")
            self.assertOkResponse(head, last)
            self.assertIs(head["reused"], i > 0)
            time.sleep(0.3)
        self.assertEqual(self.idle(), (1, 1))
        time.sleep(1.5)
        self.assertEqual(self.idle(), (0, 0))
        self.assertIn("idle timeout", self.daemon.log_text())
        self.assertEqual(self.origin.accepted, 1)

    def test_an_idle_timeout_shorter_than_the_buffer_hold(self):
        # 0.3 s: no hold, the connection is closed when it is up.
        self.daemon_with(idle_timeout=0.3)
        head, body, last = self.get("/ok")
        self.assertOkResponse(head, last)
        self.assertEqual(self.idle(), (1, 1))
        time.sleep(1.0)
        self.assertEqual(self.idle(), (0, 0))
        self.assertIn("idle timeout", self.daemon.log_text())
        head, body, last = self.get("/ok")
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], False)


if __name__ == "__main__":
    harness.main()
