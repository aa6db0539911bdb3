#!/usr/bin/env python3
"""HTTP/2 to real origins (issue 18): nginx with `listen ... ssl http2`
(X-Connection shows which nginx connection served a request) and nghttpd
(TLS and h2c).

  - version 20 and whole bodies, small and large, uploads both ways;
  - 200 clients at once over ONE connection, every body correct, and the
    stats saying so;
  - GOAWAY mid-load (nginx keepalive_requests) loses nothing and repeats
    nothing: every request reaches nginx exactly once;
  - an HTTP/1.1-only server still works with "auto", fails "2" with
    unknown_protocol; "1.1" forces HTTP/1.1 on an HTTP/2 server;
    "http2": false turns HTTP/2 off; absolute-form targets stay on 1.1;
  - h2c with prior knowledge, per h2c_origins and per request;
  - HTTP/2 inside a CONNECT tunnel (tinyproxy), ALPN in the tunnel's TLS;
  - a server that never sends its SETTINGS fails the request (timeout).
"""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SMALL_BODY, big_bytes, header_value  # noqa: E402


def tls_of(ng):
    with open(ng.ca_file) as f:
        return {"ca_pem": f.read()}


class NginxHttp2(harness.IntegrationTest):
    """nginx offering h2 by ALPN on its TLS listener."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls,
            http2=True, tls_extra="        http2_max_concurrent_streams 256;\n")

    def setUp(self):
        self.tls = tls_of(self.nginx)

    def get(self, w, rid, path, **fields):
        return w.request(rid, "GET", self.nginx.tls_url(path), tls=self.tls,
                         **fields)

    def stats(self, w):
        w.send({"op": "stats", "id": "stats"})
        return w.read_message()

    def test_version_20_and_whole_bodies(self):
        d = self.start_daemon()
        w = self.wire(d)
        head, body, last = self.get(w, 1, "/small.txt")
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 20)
        self.assertEqual(body, SMALL_BODY)
        self.assertEqual(header_value(head, "x-server-protocol"), "HTTP/2.0")
        # Field names as HTTP/2 sends them: lower case, no pseudo-headers.
        for name, _ in head["headers"]:
            self.assertEqual(name, name.lower())
            self.assertFalse(name.startswith(":"), name)
        head, body, last = self.get(w, 2, "/big.bin")
        self.assertOkResponse(head, last)
        self.assertEqual(head.get("length"), len(big_bytes()))
        self.assertEqual(body, big_bytes())
        # HEAD: the length, no body.
        head, body, last = w.request(3, "HEAD",
                                     self.nginx.tls_url("/big.bin"),
                                     tls=self.tls)
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"")
        # Both on one connection, the second reused.
        self.assertTrue(head["reused"])
        st = self.stats(w)
        self.assertEqual(st["pool"]["h2_connections"], 1, st)
        self.assertEqual(st["pool"]["h2_streams"], 0, st)
        origin = [o for k, o in st["pool"]["origins"].items()
                  if str(self.nginx.tls_port) in k]
        self.assertEqual(len(origin), 1, st)
        self.assertEqual((origin[0]["h2"], origin[0]["streams"],
                          origin[0]["idle"]), (1, 0, 1), st)

    def test_uploads_inline_and_streamed(self):
        d = self.start_daemon()
        w = self.wire(d)
        payload = big_bytes()
        head, body, last = w.request(1, "POST", self.nginx.tls_url("/echo"),
                                     payload, data=len(payload), tls=self.tls)
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 20)
        self.assertEqual(body, payload)
        # Streamed, without a length: the daemon frames it (DATA frames).
        w.send({"id": 2, "method": "PUT", "url": self.nginx.tls_url("/echo"),
                "body": "stream", "tls": self.tls})
        for off in range(0, len(payload), 100000):
            chunk = payload[off:off + 100000]
            w.send({"id": 2, "data": len(chunk)}, chunk)
        w.send({"id": 2, "end": True})
        head, body, last = w.read_response(2)
        self.assertOkResponse(head, last)
        self.assertEqual(body, payload)

    def test_200_clients_share_one_connection(self):
        d = self.start_daemon_config(h2_max_concurrent_streams=256,
                                     pool_max_per_origin=4)
        clients = [self.wire(d, timeout=60) for _ in range(200)]
        for i, w in enumerate(clients):
            path = "/big.bin" if i % 10 == 0 else "/small.txt"
            w.send({"id": i, "method": "GET", "tls": self.tls,
                    "url": self.nginx.tls_url(f"{path}?client={i}")})
        conns = set()
        for i, w in enumerate(clients):
            head, body, last = w.read_response(i)
            self.assertOkResponse(head, last)
            self.assertEqual(head["version"], 20)
            self.assertEqual(body, big_bytes() if i % 10 == 0 else SMALL_BODY,
                             f"client {i}")
            conns.add(header_value(head, "x-connection"))
        self.assertEqual(len(conns), 1, f"served over {conns}")
        st = self.stats(clients[0])
        self.assertEqual(st["pool"]["h2_connections"], 1, st)

    def test_goaway_mid_load_loses_and_repeats_nothing(self):
        # nginx says GOAWAY after 30 requests on a connection: of 120
        # requests in flight, those above its last stream id go again on
        # a new connection; none is lost, none reaches nginx twice.
        ng = self.start_nginx(http2=True, keepalive_requests=30)
        d = self.start_daemon()
        tls = tls_of(ng)
        clients = [self.wire(d, timeout=60) for _ in range(12)]
        since = len(ng.access_log_text())
        for c, w in enumerate(clients):
            for i in range(10):
                w.send({"id": i, "method": "GET", "tls": tls,
                        "url": ng.tls_url(f"/small.txt?goaway={c}-{i}")})
        conns = set()
        for c, w in enumerate(clients):
            for i in range(10):
                head, body, last = w.read_response(i)
                self.assertOkResponse(head, last)
                self.assertEqual(body, SMALL_BODY)
                conns.add(header_value(head, "x-connection"))
        self.assertGreater(len(conns), 1, "no GOAWAY came")
        log = ng.access_log_text()[since:]
        for c in range(12):
            for i in range(10):
                self.assertEqual(log.count(f"goaway={c}-{i} "), 1,
                                 f"request {c}-{i} in nginx's log")

    def test_http_1_1_forces_http_1_1(self):
        d = self.start_daemon()
        w = self.wire(d)
        head, body, last = self.get(w, 1, "/small.txt", http_version="1.1")
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 11)
        self.assertEqual(header_value(head, "x-server-protocol"), "HTTP/1.1")
        head, body, last = self.get(w, 2, "/small.txt")
        self.assertEqual(head["version"], 20)
        # Two pool keys: the forced request does not share the h2 one.
        st = self.stats(w)
        self.assertEqual(st["pool"]["open"], 2, st)
        self.assertIn(" http/1.1", " ".join(st["pool"]["origins"]), st)

    def test_http2_off_in_the_config(self):
        d = self.start_daemon_config(http2=False)
        w = self.wire(d)
        head, body, last = self.get(w, 1, "/small.txt")
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 11)
        _, _, last = self.get(w, 2, "/small.txt", http_version="2")
        self.assertEqual(last.get("error"), "unsupported", last)
        self.assertIn("http2: false", last["message"])

    def test_absolute_form_target_keeps_http_1_1(self):
        d = self.start_daemon()
        w = self.wire(d)
        url = f"https://127.0.0.1:{self.nginx.tls_port}/small.txt"
        req = {"method": "GET", "host": "127.0.0.1",
               "port": self.nginx.tls_port, "tls": self.tls, "target": url}
        w.send(dict(req, id=1))
        head, body, last = w.read_response(1)
        self.assertEqual(head["version"], 11, head)
        w.send(dict(req, id=2, http_version="2"))
        _, _, last = w.read_response(2)
        self.assertEqual(last.get("error"), "unsupported", last)

    def test_tunnel_carries_http2(self):
        proxy = harness.Tinyproxy([self.nginx.tls_port])
        self.addCleanup(proxy.stop)
        proxy.start()
        d = self.start_daemon()
        w = self.wire(d)
        head, body, last = self.get(
            w, 1, "/big.bin",
            proxy={"host": "127.0.0.1", "port": proxy.port})
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 20)
        self.assertEqual(body, big_bytes())
        head, body, last = self.get(
            w, 2, "/small.txt",
            proxy={"host": "127.0.0.1", "port": proxy.port})
        self.assertEqual(head["version"], 20)
        self.assertTrue(head["reused"])


class Http1OnlyServer(harness.IntegrationTest):
    """nginx without http2: ALPN answers http/1.1."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls, tls=True)

    def test_auto_speaks_http_1_1_and_2_fails(self):
        d = self.start_daemon()
        w = self.wire(d)
        tls = tls_of(self.nginx)
        url = self.nginx.tls_url("/small.txt")
        for rid in (1, 2):
            head, body, last = w.request(rid, "GET", url, tls=tls)
            self.assertOkResponse(head, last)
            self.assertEqual(head["version"], 11)
            self.assertEqual(body, SMALL_BODY)
        _, _, last = w.request(3, "GET", url, tls=tls, http_version="2")
        # nginx refuses an offer of h2 alone with an alert rather than
        # choosing http/1.1.
        self.assertEqual(last.get("error"), "unknown_protocol", last)
        self.assertIn("ALPN", last["message"])
        # Many at once on an origin that turned out HTTP/1.1: one
        # connection each again, all served.
        clients = [self.wire(d) for _ in range(8)]
        for i, c in enumerate(clients):
            c.send({"id": i, "method": "GET", "url": url, "tls": tls})
        for i, c in enumerate(clients):
            head, body, last = c.read_response(i)
            self.assertOkResponse(head, last)
            self.assertEqual(body, SMALL_BODY)


class Nghttpd(harness.IntegrationTest):
    """nghttpd: HTTP/2 only, TLS (ALPN h2) or h2c."""

    def test_tls(self):
        h = self.start_nghttpd(tls=True)
        d = self.start_daemon()
        w = self.wire(d)
        with open(h.ca_file) as f:
            tls = {"ca_pem": f.read()}
        head, body, last = w.request(1, "GET", h.url("/big.bin"), tls=tls)
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 20)
        self.assertEqual(body, big_bytes())
        # What nghttpd received: the pseudo-header fields from the URL.
        got = [r for r in h.requests() if r.header(":path") == "/big.bin"]
        self.assertEqual(len(got), 1, h.requests())
        self.assertEqual(got[0].header(":method"), "GET")
        self.assertEqual(got[0].header(":scheme"), "https")
        self.assertEqual(got[0].header(":authority"), h.hostport)
        self.assertIsNone(got[0].header("host"))

    def test_h2c_per_origin_and_per_request(self):
        h = self.start_nghttpd(tls=False)
        d = self.start_daemon_config(h2c_origins=[h.hostport])
        w = self.wire(d)
        head, body, last = w.request(1, "GET", h.url("/small.txt"))
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 20)
        self.assertEqual(body, SMALL_BODY)

        d2 = self.start_daemon()
        w2 = self.wire(d2)
        head, body, last = w2.request(1, "GET", h.url("/small.txt"),
                                      http_version="2")
        self.assertOkResponse(head, last)
        self.assertEqual(head["version"], 20)
        self.assertEqual(body, SMALL_BODY)
        w2.send({"op": "stats", "id": "s"})
        st = w2.read_message()
        self.assertIn(f"http://{h.hostport} h2c", st["pool"]["origins"], st)

    def test_upload_to_nghttpd_echo(self):
        h = self.start_nghttpd(tls=False, args=["--echo-upload"])
        d = self.start_daemon_config(h2c_origins=[h.hostport])
        w = self.wire(d)
        payload = big_bytes()
        head, body, last = w.request(1, "POST", h.url("/echo"), payload,
                                     data=len(payload))
        self.assertOkResponse(head, last)
        self.assertEqual(body, payload)


class RefusedUploads(harness.IntegrationTest):
    """A POST the server refused unprocessed goes again with its body."""

    def test_refused_post_is_sent_again_whole(self):
        import h2_origin as h2
        why = h2.h2_daemon_missing()
        if why:
            self.skipTest(why)

        def refuse_first(origin, conn, st):
            with origin.lock:
                earlier = [s for s in origin.requests
                           if s.path == st.path and s is not st]
            if not earlier:
                origin.send(conn, h2.rst_frame(st.sid,
                                               h2.ERRORS["REFUSED_STREAM"]))
                return False
            return True

        def echo(origin, conn, st):
            body = bytes(st.body)
            origin.send_headers(conn, st.sid, [
                (":status", "200"), ("content-length", str(len(body)))])
            origin.send_data(conn, st, body, end_stream=True)
            return True

        o = h2.start_h2_origin(self, {"/post": [("call", refuse_first),
                                                ("call", echo)]})
        d = self.start_daemon()
        w = self.wire(d)
        payload = b"not idempotent, not processed\n" * 1000
        head, body, last = w.request(1, "POST", o.url("/post"), payload,
                                     data=len(payload), http_version="2")
        self.assertOkResponse(head, last)
        self.assertEqual(body, payload)
        tries = [s for s in o.requests if s.path == "/post"]
        self.assertEqual(len(tries), 2, tries)
        self.assertEqual(bytes(tries[1].body), payload)
        self.assertNotEqual(tries[0].conn_index, tries[1].conn_index)


class SilentServer(harness.IntegrationTest):
    """A plain server that accepts and never says a thing: no SETTINGS."""

    def test_no_settings_times_out(self):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        self.addCleanup(srv.close)
        port = srv.getsockname()[1]
        d = self.start_daemon_config(connect_timeout=1)
        w = self.wire(d)
        _, _, last = w.request(1, "GET", f"http://127.0.0.1:{port}/",
                               http_version="2")
        self.assertEqual(last.get("error"), "timeout", last)
        self.assertIn("SETTINGS", last["message"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
