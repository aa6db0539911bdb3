#!/usr/bin/env python3
"""CONNECT tunnels ("proxy"): through a real tinyproxy to the test nginx,
tunnels pooled like direct connections, refusals as tunnel_failed with the
proxy's status, and the CONNECT request as a scripted proxy sees it."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SMALL_BODY, big_bytes, header_value, http_response  # noqa: E402


class TunnelThroughTinyproxy(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.Nginx()
        cls.addClassCleanup(cls.nginx.stop)
        cls.nginx.start()
        # CONNECT is allowed to nginx's port only.
        cls.proxy = harness.Tinyproxy([cls.nginx.port])
        cls.addClassCleanup(cls.proxy.stop)
        cls.proxy.start()

    def setUp(self):
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)

    def proxied(self, rid, path, port=None):
        self.w.send({"id": rid, "method": "GET", "host": "127.0.0.1",
                     "port": port or self.nginx.port, "target": path,
                     "proxy": {"host": "127.0.0.1", "port": self.proxy.port}})
        head, body, last = self.w.read_response(rid)
        self.skipIfUnsupported(last)
        return head, body, last

    def test_get_through_the_tunnel(self):
        head, body, end = self.proxied(1, "/small.txt")
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)
        self.assertIn(f"CONNECT 127.0.0.1:{self.nginx.port} HTTP/1.1",
                      self.proxy.log_text())
        self.assertIn('"GET /small.txt HTTP/1.1" 200',
                      self.nginx.wait_access_log('"GET /small.txt HTTP/1.1" 200'))

    def test_tunnel_is_pooled_and_reused(self):
        head1, body1, end1 = self.proxied(1, "/small.txt")
        self.assertOkResponse(head1, end1)
        head2, body2, end2 = self.proxied(2, "/big.bin")
        self.assertOkResponse(head2, end2)
        self.assertEqual(body2, big_bytes())
        self.assertIs(head2["reused"], True)
        self.assertEqual(header_value(head2, "X-Connection"),
                         header_value(head1, "X-Connection"))
        self.assertEqual(self.proxy.log_text().count("CONNECT 127.0.0.1:"), 1)

    def test_tunnel_and_direct_connections_are_not_mixed(self):
        head1, _, end1 = self.proxied(1, "/small.txt")
        self.assertOkResponse(head1, end1)
        head2, _, end2 = self.w.request(2, "GET", self.nginx.url("/small.txt"))
        self.assertOkResponse(head2, end2)
        self.assertIs(head2["reused"], False)
        self.assertNotEqual(header_value(head2, "X-Connection"),
                            header_value(head1, "X-Connection"))

    def test_refused_connect_is_tunnel_failed_with_the_proxy_status(self):
        head, body, err = self.proxied(1, "/", port=self.nginx.port + 1
                                       if self.nginx.port < 65535 else 1)
        self.assertIsNone(head)
        self.assertError(err, "tunnel_failed", rid=1)
        self.assertEqual(err.get("status"), 403, err)
        self.assertEqual(err.get("reason"), "Access violation", err)
        self.assertIsInstance(err.get("headers"), list, err)


class ConnectAsTheProxySeesIt(harness.IntegrationTest):
    """A scripted proxy: the fault origin answers the CONNECT, then serves
    the tunnelled request itself on the same TCP connection."""

    def setUp(self):
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)

    def test_connect_request_head_and_proxy_headers(self):
        proxy = self.start_origin({None: [
            ("send", b"HTTP/1.1 200 Connection established\r\n\r\n"),
            ("expect_request",),
            ("send", http_response(200, b"tunnelled"))]})
        self.w.send({"id": 1, "method": "GET", "host": "origin.test",
                     "port": 8080, "target": "/x",
                     "proxy": {"host": "127.0.0.1", "port": proxy.port,
                               "headers": [["Proxy-Authorization",
                                            "Basic dTpw"]]}})
        head, body, last = self.w.read_response(1)
        self.skipIfUnsupported(last)
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"tunnelled")
        connect, get = proxy.requests
        self.assertEqual((connect.method, connect.target),
                         ("CONNECT", "origin.test:8080"))
        self.assertEqual(connect.header("Host"), "origin.test:8080")
        self.assertEqual(connect.header("Proxy-Authorization"), "Basic dTpw")
        self.assertEqual((get.method, get.target), ("GET", "/x"))
        self.assertEqual(get.header("Host"), "origin.test:8080")
        self.assertIsNone(get.header("Proxy-Authorization"))

    def test_407_is_tunnel_failed_with_status_and_headers(self):
        proxy = self.start_origin({None: [
            ("send", http_response(407, b"auth", reason="Proxy Authentication "
                                   "Required", headers=[
                                       ("Proxy-Authenticate",
                                        'Basic realm="t"')])),
            ("close",)]})
        self.w.send({"id": 1, "method": "GET", "host": "origin.test",
                     "port": 80, "target": "/",
                     "proxy": {"host": "127.0.0.1", "port": proxy.port}})
        head, body, err = self.w.read_response(1)
        self.skipIfUnsupported(err)
        self.assertIsNone(head)
        self.assertError(err, "tunnel_failed", rid=1)
        self.assertEqual(err.get("status"), 407, err)
        self.assertEqual(err.get("reason"), "Proxy Authentication Required")
        self.assertIn(["Proxy-Authenticate", 'Basic realm="t"'],
                      err.get("headers"))
        self.assertEqual(len(proxy.requests), 1, "request sent after a 407")


if __name__ == "__main__":
    harness.main()
