#!/usr/bin/env python3
"""TLS origins that end badly: how a TLS connection's end reaches the
response. OpenSSL reads and writes the socket itself (daemon/tlssock.c),
and a server that closes without close_notify must still be the dirty
shutdown hconnd allows (a read-to-close body ends there; a framed body
cut short is incomplete_read), a reset must stay an error, and a pooled
TLS connection that the server closes while idle must never be leased."""

import os
import socket
import ssl
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import LOOPBACK, big_bytes  # noqa: E402

H200 = b"HTTP/1.1 200 OK\r\n"
BODY = big_bytes(40000)

# path: (bytes to send, how the connection ends: "keep", "fin" (TCP close
# without close_notify), "reset" (RST), "fin-later" (kept a moment, then
# closed without close_notify), "records" (kept; the answer goes out as
# TLS records of RECORD bytes, all in one TCP write))
SCENARIOS = {
    "/close-delimited": (H200 + b"Connection: close\r\n\r\n" + BODY, "fin"),
    "/cut": (H200 + b"Content-Length: 100000\r\n\r\n" + BODY[:1000], "fin"),
    "/reset": (H200 + b"Content-Length: 100000\r\n\r\n" + BODY[:1000],
               "reset"),
    "/ok": (H200 + b"Content-Length: 2\r\n\r\nok", "keep"),
    "/ok-then-close": (H200 + b"Content-Length: 2\r\n\r\nok", "fin-later"),
    "/records": (H200 + b"Content-Length: %d\r\n\r\n" % len(BODY[:6000])
                 + BODY[:6000], "records"),
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


class TlsFaults(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="hconn-tlsfaults-")
        cls.tls_dir = harness.make_certificates(
            os.path.join(cls.tmp.name, "tls"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

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


if __name__ == "__main__":
    harness.main()
