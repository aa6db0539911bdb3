#!/usr/bin/env python3
"""CONNECT tunnels ("proxy"): through a real tinyproxy to the test nginx,
plain and TLS, by the protocol and the hconn command; tunnels pooled like
direct connections and shared by separate processes; refusals (403, 407,
500) as tunnel_failed with the proxy's status and headers; Basic
credentials; a proxy that is down; the daemon's default proxies from its
environment and config; and the CONNECT request as a scripted proxy sees
it."""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SMALL_BODY, big_bytes, header_value, http_response  # noqa: E402


class TunnelThroughTinyproxy(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls, tls=True)
        # A port nothing listens on, that the proxy still allows.
        cls.dead_port = harness.free_port()
        # CONNECT is allowed to nginx's ports and the dead one only.
        cls.proxy = harness.Tinyproxy([cls.nginx.port, cls.nginx.tls_port,
                                       cls.dead_port])
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
        # get_proxy_response_headers(): the proxy's answer to CONNECT.
        self.assertEqual(head["proxy_response"]["status"], 200, head)
        self.assertIsInstance(head["proxy_response"]["headers"], list)
        self.assertEqual(body, SMALL_BODY)
        self.assertIn(f"CONNECT 127.0.0.1:{self.nginx.port} HTTP/1.1",
                      self.proxy.log_text())
        self.assertIn('"GET /small.txt HTTP/1.1" 200',
                      self.nginx.wait_access_log('"GET /small.txt HTTP/1.1" 200'))

    def connects_logged(self):
        return self.proxy.log_text().count(
            f"Request (file descriptor")

    def test_tunnel_is_pooled_and_reused(self):
        before = self.connects_logged()
        head1, body1, end1 = self.proxied(1, "/small.txt")
        self.assertOkResponse(head1, end1)
        head2, body2, end2 = self.proxied(2, "/big.bin")
        self.assertOkResponse(head2, end2)
        self.assertEqual(body2, big_bytes())
        self.assertIs(head2["reused"], True)
        self.assertEqual(header_value(head2, "X-Connection"),
                         header_value(head1, "X-Connection"))
        self.assertEqual(self.connects_logged() - before, 1,
                         "the second request opened another tunnel")

    def test_tunnel_and_direct_connections_are_not_mixed(self):
        head1, _, end1 = self.proxied(1, "/small.txt")
        self.assertOkResponse(head1, end1)
        head2, _, end2 = self.w.request(2, "GET", self.nginx.url("/small.txt"))
        self.assertOkResponse(head2, end2)
        self.assertIs(head2["reused"], False)
        self.assertNotEqual(header_value(head2, "X-Connection"),
                            header_value(head1, "X-Connection"))

    def test_https_through_the_tunnel_verifies_the_origin(self):
        self.w.send({"id": 1, "method": "GET", "host": "127.0.0.1",
                     "port": self.nginx.tls_port, "target": "/small.txt",
                     "tls": {"ca_file": self.nginx.ca_file},
                     "proxy": {"host": "127.0.0.1", "port": self.proxy.port}})
        head, body, end = self.w.read_response(1)
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)
        self.assertIn(f"CONNECT 127.0.0.1:{self.nginx.tls_port} HTTP/1.1",
                      self.proxy.log_text())
        # The origin's certificate is checked inside the tunnel: without
        # the test CA it is refused, as it would be directly.
        self.w.send({"id": 2, "method": "GET", "host": "127.0.0.1",
                     "port": self.nginx.tls_port, "target": "/small.txt",
                     "tls": True,
                     "proxy": {"host": "127.0.0.1", "port": self.proxy.port}})
        head, _, err = self.w.read_response(2)
        self.assertIsNone(head)
        self.assertError(err, "tls_verify_failed", rid=2)

    def test_tls_tunnel_shared_by_two_hconn_processes(self):
        url = self.nginx.tls_url("/small.txt")
        args = ["-i", "-v", "--cacert", self.nginx.ca_file,
                "-x", f"127.0.0.1:{self.proxy.port}", url]
        first = self.run_hconn(self.daemon, *args)
        self.assertEqual(first.returncode, 0, first.stderr)
        second = self.run_hconn(self.daemon, *args)
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertTrue(first.stdout.endswith(SMALL_BODY), first.stdout)
        self.assertIn(b"* new connection", first.stderr)
        self.assertIn(b"* reused pooled connection", second.stderr)
        conn = [re.search(rb"X-Connection: (\d+)", r.stdout).group(1)
                for r in (first, second)]
        self.assertEqual(conn[0], conn[1])
        self.assertIn(f"tunnel through proxy 127.0.0.1:{self.proxy.port}"
                      .encode(), first.stderr)

    def test_stats_name_the_tunnel(self):
        head, _, end = self.proxied(1, "/small.txt")
        self.assertOkResponse(head, end)
        self.w.send({"op": "stats", "id": "s"})
        stats = self.w.read_message()
        key = (f"http://127.0.0.1:{self.nginx.port} via "
               f"127.0.0.1:{self.proxy.port}")
        self.assertEqual(stats["pool"]["origins"][key]["idle"], 1, stats)

    def test_origin_down_behind_the_proxy_is_tunnel_failed(self):
        head, _, err = self.proxied(1, "/", port=self.dead_port)
        self.assertIsNone(head)
        self.assertError(err, "tunnel_failed", rid=1)
        self.assertEqual(err.get("status"), 500, err)
        self.assertEqual(err.get("reason"), "Unable to connect", err)
        self.assertIn(f"proxy 127.0.0.1:{self.proxy.port}", err["message"])

    def test_proxy_down_is_connect_failed_naming_the_proxy(self):
        port = harness.free_port()
        self.w.send({"id": 1, "method": "GET", "host": "127.0.0.1",
                     "port": self.nginx.port, "target": "/",
                     "proxy": {"host": "127.0.0.1", "port": port}})
        head, _, err = self.w.read_response(1)
        self.assertIsNone(head)
        self.assertError(err, "connect_failed", rid=1)
        self.assertIn(f"connect to proxy 127.0.0.1:{port}", err["message"])
        r = self.run_hconn(self.daemon, "-x", f"http://127.0.0.1:{port}",
                           self.nginx.url("/"))
        self.assertEqual(r.returncode, 16, r.stderr)
        self.assertIn(b"hconn: connect_failed: connect to proxy", r.stderr)

    def test_refused_connect_is_tunnel_failed_with_the_proxy_status(self):
        head, body, err = self.proxied(1, "/", port=self.nginx.port + 1
                                       if self.nginx.port < 65535 else 1)
        self.assertIsNone(head)
        self.assertError(err, "tunnel_failed", rid=1)
        self.assertEqual(err.get("status"), 403, err)
        self.assertEqual(err.get("reason"), "Access violation", err)
        self.assertIsInstance(err.get("headers"), list, err)


class ProxyWithBasicAuth(harness.IntegrationTest):
    """tinyproxy with BasicAuth: 407 without credentials, a tunnel with."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls)
        cls.proxy = harness.Tinyproxy([cls.nginx.port],
                                      basic_auth=("user", "s3cret"))
        cls.addClassCleanup(cls.proxy.stop)
        cls.proxy.start()

    def setUp(self):
        self.daemon = self.start_daemon()
        self.w = self.wire(self.daemon)

    def get(self, rid, headers=None):
        proxy = {"host": "127.0.0.1", "port": self.proxy.port}
        if headers:
            proxy["headers"] = headers
        self.w.send({"id": rid, "method": "GET", "host": "127.0.0.1",
                     "port": self.nginx.port, "target": "/small.txt",
                     "proxy": proxy})
        return self.w.read_response(rid)

    def test_no_credentials_is_407_with_proxy_authenticate(self):
        head, _, err = self.get(1)
        self.assertIsNone(head)
        self.assertError(err, "tunnel_failed", rid=1)
        self.assertEqual(err["status"], 407, err)
        self.assertIn(["Proxy-Authenticate", 'Basic realm="Tinyproxy"'],
                      err["headers"])

    def test_credentials_open_the_tunnel(self):
        head, body, end = self.get(1, [["Proxy-Authorization",
                                        "Basic dXNlcjpzM2NyZXQ="]])
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)

    def tunnel_check(self, *args):
        harness.require_binary(self, harness.TUNNEL_CHECK, "tunnel-check")
        return subprocess.run(
            [harness.TUNNEL_CHECK, f"127.0.0.1:{self.proxy.port}",
             f"127.0.0.1:{self.nginx.port}", "/small.txt", *args],
            capture_output=True, env=self.daemon.env, timeout=60,
            start_new_session=True)

    def test_libhconn_set_tunnel_and_proxy_response_headers(self):
        # 407: the refusal's fields, Proxy-Authenticate among them, come
        # from hconn_get_proxy_response_headers().
        r = self.tunnel_check()
        self.assertEqual(r.returncode, 19, r.stdout)
        self.assertIn(b"error tunnel_failed: proxy 127.0.0.1", r.stdout)
        self.assertIn(b'proxy-header Proxy-Authenticate: Basic '
                      b'realm="Tinyproxy"\n', r.stdout)
        r = self.tunnel_check("Basic dXNlcjpzM2NyZXQ=")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(r.stdout.startswith(b"status 200\n"), r.stdout)
        # The 200's own fields (tinyproxy names itself in Proxy-agent).
        self.assertRegex(r.stdout, rb"(?im)^proxy-header proxy-agent: "
                                   rb"tinyproxy/")
        self.assertTrue(r.stdout.endswith(b"body " + SMALL_BODY), r.stdout)

    def test_tunnels_with_other_credentials_are_not_shared(self):
        head1, _, end1 = self.get(1, [["Proxy-Authorization",
                                       "Basic dXNlcjpzM2NyZXQ="]])
        self.assertOkResponse(head1, end1)
        # Same proxy and origin, no credentials: must not ride the
        # authenticated tunnel.
        head2, _, err = self.get(2)
        self.assertIsNone(head2)
        self.assertEqual(err.get("status"), 407, err)

    def test_cli_credentials_in_the_url_and_with_proxy_user(self):
        url = self.nginx.url("/small.txt")
        port = self.proxy.port
        r = self.run_hconn(self.daemon, "-x",
                           f"http://user:s3cret@127.0.0.1:{port}", url)
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        r = self.run_hconn(self.daemon, "-x", f"127.0.0.1:{port}",
                           "-U", "user:s3cret", url)
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        r = self.run_hconn(self.daemon, "-x", f"127.0.0.1:{port}",
                           "--proxy-header",
                           "Proxy-Authorization: Basic dXNlcjpzM2NyZXQ=", url)
        self.assertEqual((r.returncode, r.stdout), (0, SMALL_BODY), r.stderr)
        r = self.run_hconn(self.daemon, "-x", f"127.0.0.1:{port}",
                           "-U", "user:wrong", url)
        self.assertEqual(r.returncode, 19, r.stderr)  # tunnel_failed
        # tinyproxy answers wrong credentials with 401, not 407.
        self.assertRegex(r.stderr, rb"refused CONNECT 127\.0\.0\.1:\d+: 40[17] ")
        self.assertEqual(r.stdout, b"")


class DefaultProxies(harness.IntegrationTest):
    """The daemon's own proxy settings: https_proxy / http_proxy / no_proxy
    in its environment, the same keys in its config file (which win), and
    "proxy": false to go direct anyway."""

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls, tls=True)
        cls.proxy = harness.Tinyproxy([cls.nginx.port, cls.nginx.tls_port])
        cls.addClassCleanup(cls.proxy.stop)
        cls.proxy.start()

    def connects(self):
        return self.proxy.log_text().count("Request (file descriptor")

    def fetch(self, w, rid, url, **fields):
        head, body, end = w.request(rid, "GET", url, **fields)
        self.assertOkResponse(head, end)
        self.assertEqual(body, SMALL_BODY)
        return head

    def test_environment_proxies_and_no_proxy(self):
        d = self.start_daemon(env={
            "https_proxy": f"http://127.0.0.1:{self.proxy.port}",
            "http_proxy": f"http://127.0.0.1:{self.proxy.port}/",
            "no_proxy": "localhost"})
        w = self.wire(d)
        before = self.connects()
        head = self.fetch(w, 1, self.nginx.tls_url("/small.txt"),
                          tls={"ca_file": self.nginx.ca_file})
        self.assertEqual(head["proxy_response"]["status"], 200)
        head = self.fetch(w, 2, self.nginx.url("/small.txt"))
        self.assertIn("proxy_response", head)
        self.assertEqual(self.connects() - before, 2)
        # no_proxy and "proxy": false go direct.
        head = self.fetch(w, 3, f"http://localhost:{self.nginx.port}"
                                "/small.txt")
        self.assertNotIn("proxy_response", head)
        head = self.fetch(w, 4, self.nginx.url("/small.txt"), proxy=False)
        self.assertNotIn("proxy_response", head)
        self.assertEqual(self.connects() - before, 2)
        self.assertIn("default proxies: http 127.0.0.1", d.log_text())

    def test_config_file_wins_over_the_environment(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json",
                                         delete=False) as f:
            json.dump({"http_proxy": f"127.0.0.1:{self.proxy.port}",
                       "https_proxy": ""}, f)
        self.addCleanup(os.unlink, f.name)
        d = self.start_daemon("--config", f.name, env={
            "http_proxy": "http://127.0.0.1:1",
            "https_proxy": "http://127.0.0.1:1"})
        w = self.wire(d)
        head = self.fetch(w, 1, self.nginx.url("/small.txt"))
        self.assertEqual(head["proxy_response"]["status"], 200)
        head = self.fetch(w, 2, self.nginx.tls_url("/small.txt"),
                          tls={"ca_file": self.nginx.ca_file})
        self.assertNotIn("proxy_response", head)

    def test_bad_proxy_setting_stops_the_daemon_at_start(self):
        d = harness.Hconnd(env={"https_proxy": "socks5://127.0.0.1:1"})
        self.addCleanup(d.cleanup)
        with self.assertRaises(RuntimeError):
            d.start()
        self.assertIn("https_proxy", d.log_text())
        self.assertIn("only http:// proxies", d.log_text())


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

    def refused_by(self, script):
        """A GET through a scripted proxy that never opens the tunnel;
        returns its tunnel_failed error."""
        proxy = self.start_origin({None: script})
        self.w.send({"id": 1, "method": "GET", "host": "origin.test",
                     "target": "/",
                     "proxy": {"host": "127.0.0.1", "port": proxy.port}})
        head, _, err = self.w.read_response(1)
        self.assertIsNone(head)
        self.assertError(err, "tunnel_failed", rid=1)
        return err

    def test_malformed_answer_is_tunnel_failed(self):
        err = self.refused_by([("send", b"HTTP/1.1 2OO OK\r\n\r\n"),
                               ("keep_open",)])
        self.assertIn("gave no valid answer to CONNECT origin.test:80",
                      err["message"])
        self.assertNotIn("status", err)

    def test_close_before_answering_is_tunnel_failed(self):
        err = self.refused_by([("close",)])
        self.assertIn("gave no valid answer", err["message"])


if __name__ == "__main__":
    harness.main()
