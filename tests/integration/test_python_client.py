#!/usr/bin/env python3
"""hconn.client, hconn.urllib and hconn.requests against real peers.

- The examples of the http.client documentation and tutorial (GET with
  headers, the 200/404 branch, reading in chunks and by line, HEAD, POST of
  a form, PUT, chunked uploads from an iterable, set_tunnel through
  tinyproxy, HTTPS with a test CA) through hconn.client against nginx,
  asserting what the documentation says they print.
- The rest of the API: every body type, putrequest/putheader/endheaders/
  send, the response as an io.BufferedIOBase, exceptions and their
  classes, TLS options and SSLContext mapping, pipelining,
  expect_continue, reused, the socket path rule.
- urllib.request with HconnHandler, requests with HconnAdapter (Debian's
  python3-requests and python3-urllib3, run under /usr/bin/python3).
- A program in a network namespace without network (unshare -n), as
  another uid, reaching the origin only through the daemon's socket.
- `meson install` puts the package where the system's Python finds it.

The package comes from HCONN_PYTHONPATH (meson sets it to the source
tree's client-lib/python).
"""

import array
import base64
import contextlib
import http.client
import io
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PYTHONPATH = os.environ.get("HCONN_PYTHONPATH") or os.path.join(
    harness.SOURCE_ROOT, "client-lib", "python")
sys.path.insert(0, PYTHONPATH)
from hconn import client as hclient  # noqa: E402
import hconn.urllib  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"


class PythonClientTest(harness.IntegrationTest):
    """One nginx (with its TLS variants) and one daemon per class."""

    @classmethod
    def setUpClass(cls):
        cls.ng = harness.Nginx(tls_variants=True)
        cls.ng.start()
        cls.d = harness.Hconnd()
        try:
            cls.d.start()
        except BaseException:
            cls.ng.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        cls.ng.stop()

    def setUp(self):
        # hconn.client finds the daemon as libhconn does: $HCONN_SOCKET.
        old = os.environ.get("HCONN_SOCKET")
        os.environ["HCONN_SOCKET"] = self.d.socket

        def restore():
            if old is None:
                os.environ.pop("HCONN_SOCKET", None)
            else:
                os.environ["HCONN_SOCKET"] = old
        self.addCleanup(restore)

    def conn(self, **kw):
        c = hclient.HTTPConnection("127.0.0.1", self.ng.port, **kw)
        self.addCleanup(c.close)
        return c

    def tls_conn(self, variant="good", **kw):
        c = hclient.HTTPSConnection("127.0.0.1", self.ng.tls_ports[variant],
                                    **kw)
        self.addCleanup(c.close)
        return c


class DocumentationExamples(PythonClientTest):
    """The http.client documentation's examples, as written there, with
    hconn.client in place of http.client and the test servers in place of
    python.org."""

    def test_get_and_reading_in_chunks_and_the_404_branch(self):
        conn = self.tls_conn(context=ssl.create_default_context(
            cafile=self.ng.ca_file))
        conn.request("GET", "/small.txt")
        r1 = conn.getresponse()
        self.assertEqual((r1.status, r1.reason), (200, "OK"))
        data1 = r1.read()  # This will return entire content.
        self.assertEqual(data1, harness.SMALL_BODY)
        # The following example demonstrates reading data in chunks.
        conn.request("GET", "/big.bin")
        r1 = conn.getresponse()
        chunks = []
        while chunk := r1.read(200):
            chunks.append(chunk)
        self.assertEqual(b"".join(chunks), harness.big_bytes())
        self.assertTrue(all(len(c) == 200 for c in chunks[:-1]))
        # Example of an invalid request
        conn.request("GET", "/parrot.spam")
        r2 = conn.getresponse()
        self.assertEqual((r2.status, r2.reason), (404, "Not Found"))
        data2 = r2.read()
        self.assertIn(b"404 Not Found", data2)
        conn.close()

    def test_get_with_headers(self):
        conn = self.conn()
        conn.request("GET", "/headers", headers={"Accept": "text/plain",
                                                 "X-Custom": "1"})
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("X-Dup"), "a, b")
        self.assertEqual(r.headers.get_all("X-Dup"), ["a", "b"])
        self.assertEqual(r.getheader("X-Request-Method"), "GET")
        self.assertEqual(r.read(), harness.HEADERS_BODY)

    def test_reading_by_line(self):
        conn = self.conn()
        conn.request("GET", "/chunked")
        r = conn.getresponse()
        self.assertEqual(r.readline(), b"line1\n")
        self.assertEqual(list(r), [b"line2\n", b"line3\n"])
        self.assertTrue(r.isclosed())

    def test_head(self):
        conn = self.conn()
        conn.request("HEAD", "/small.txt")
        res = conn.getresponse()
        self.assertEqual((res.status, res.reason), (200, "OK"))
        data = res.read()
        self.assertEqual(len(data), 0)
        self.assertTrue(data == b'')
        self.assertEqual(res.getheader("Content-Length"),
                         str(len(harness.SMALL_BODY)))

    def test_post_of_a_form(self):
        params = urllib.parse.urlencode({'@number': 12524, '@type': 'issue',
                                         '@action': 'show'})
        headers = {"Content-type": "application/x-www-form-urlencoded",
                   "Accept": "text/plain"}
        conn = self.conn()
        conn.request("POST", "/echo", params, headers)
        response = conn.getresponse()
        self.assertEqual((response.status, response.reason), (200, "OK"))
        data = response.read()
        self.assertEqual(data, params.encode())
        conn.close()

    def test_put(self):
        BODY = "***filecontents***"
        conn = self.conn()
        conn.request("PUT", "/dav/file", BODY)
        response = conn.getresponse()
        self.assertEqual((response.status, response.reason),
                         (201, "Created"))
        response.read()
        conn.request("GET", "/dav/file")
        self.assertEqual(conn.getresponse().read(), BODY.encode())

    def test_chunked_upload_from_an_iterable(self):
        def gen():
            yield b"first "
            yield b""
            yield b"second"
        conn = self.conn()
        conn.request("POST", "/echo", body=gen(),
                     headers={"Transfer-Encoding": "chunked"},
                     encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"first second"))
        # Without a header: a file or an iterable goes chunked by itself.
        conn.request("POST", "/echo", body=iter([b"a", b"b"]))
        self.assertEqual(conn.getresponse().read(), b"ab")

    def test_set_tunnel_through_tinyproxy(self):
        with harness.Tinyproxy([self.ng.tls_port]) as proxy:
            ctx = ssl.create_default_context(cafile=self.ng.ca_file)
            conn = hclient.HTTPSConnection("127.0.0.1", proxy.port,
                                           context=ctx)
            self.addCleanup(conn.close)
            conn.set_tunnel("127.0.0.1", self.ng.tls_port)
            conn.request("HEAD", "/small.txt")
            response = conn.getresponse()
            self.assertEqual((response.status, response.reason), (200, "OK"))
            response.read()
            proxy_headers = conn.get_proxy_response_headers()
            self.assertIsInstance(proxy_headers, http.client.HTTPMessage)
            self.assertIn(f"CONNECT 127.0.0.1:{self.ng.tls_port}",
                          proxy.log_text())

    def test_set_tunnel_with_proxy_credentials(self):
        with harness.Tinyproxy([self.ng.tls_port],
                               basic_auth=("user", "secret")) as proxy:
            conn = hclient.HTTPSConnection("127.0.0.1", proxy.port,
                                           cafile=self.ng.ca_file)
            self.addCleanup(conn.close)
            conn.set_tunnel("127.0.0.1", self.ng.tls_port)
            conn.request("GET", "/small.txt")
            # http.client's words for a refused CONNECT, as an OSError.
            with self.assertRaises(OSError) as cm:
                conn.getresponse()
            self.assertEqual(cm.exception.error, "tunnel_failed")
            self.assertEqual(cm.exception.status, 407)
            self.assertTrue(str(cm.exception).startswith(
                "Tunnel connection failed: 407"), str(cm.exception))
            auth = base64.b64encode(b"user:secret").decode()
            conn.set_tunnel("127.0.0.1", self.ng.tls_port,
                            headers={"Proxy-Authorization": f"Basic {auth}"})
            conn.request("GET", "/small.txt")
            r = conn.getresponse()
            self.assertEqual((r.status, r.read()), (200, harness.SMALL_BODY))

    def test_https_with_a_test_ca(self):
        for kw in ({"context": ssl.create_default_context(
                        cafile=self.ng.ca_file)},
                   {"cafile": self.ng.ca_file},
                   {"capath": self.ng.ca_path}):
            with self.subTest(kw=list(kw)):
                conn = self.tls_conn(**kw)
                conn.request("GET", "/small.txt")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.read(), harness.SMALL_BODY)
        conn = self.tls_conn()      # the system store: no test CA
        conn.request("GET", "/small.txt")
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            conn.getresponse()
        self.assertIsInstance(cm.exception, hclient.HconnError)
        self.assertEqual(cm.exception.error, "tls_verify_failed")


class Bodies(PythonClientTest):

    def echo(self, body, headers={}, **kw):
        conn = self.conn()
        conn.request("POST", "/echo", body, headers, **kw)
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        return r.read()

    def test_every_body_type(self):
        f = tempfile.TemporaryFile()
        self.addCleanup(f.close)
        f.write(b"file body " * 10000)
        f.seek(0)
        cases = [
            (b"bytes", b"bytes"),
            ("caf\xe9", b"caf\xe9"),
            (bytearray(b"bytearray"), b"bytearray"),
            (memoryview(b"memoryview"), b"memoryview"),
            (array.array("B", b"array"), b"array"),
            (io.BytesIO(b"binary file"), b"binary file"),
            (io.StringIO("text file \xe9"), b"text file \xe9"),
            (f, b"file body " * 10000),
            ([b"list ", b"of ", b"bytes"], b"list of bytes"),
        ]
        for body, want in cases:
            with self.subTest(body=type(body).__name__):
                self.assertEqual(self.echo(body), want)

    def test_str_that_is_not_latin_1_is_refused_as_http_client_does(self):
        with self.assertRaises(UnicodeEncodeError) as cm:
            self.echo("snow \u2603")
        self.assertIn("Body", str(cm.exception))

    def test_caller_chunked_bytes_are_refused(self):
        conn = self.conn()
        with self.assertRaises(hclient.HconnUnsupportedError) as cm:
            conn.request("POST", "/echo", b"5\r\nhello\r\n0\r\n\r\n",
                         {"Transfer-Encoding": "chunked"})
        self.assertIn("encode_chunked=True", str(cm.exception))
        self.assertIsInstance(cm.exception, ValueError)

    def test_putrequest_putheader_endheaders_send(self):
        conn = self.conn()
        conn.putrequest("POST", "/echo")
        conn.putheader("Content-Length", 11)
        conn.putheader("Content-Type", "text/plain")
        conn.endheaders(b"hello")
        conn.send(b" wor")
        conn.send(iter([b"ld"]))
        r = conn.getresponse()
        self.assertEqual(r.read(), b"hello world")
        # send() with no open body is CannotSendRequest.
        with self.assertRaises(http.client.CannotSendRequest):
            conn.send(b"x")

    def test_a_body_source_that_fails_never_completes_the_request(self):
        def body():
            yield b"first half "
            raise RuntimeError("the source failed")
        conn = self.conn()
        with self.assertRaises(RuntimeError):
            conn.request("PUT", "/dav/failed", body())
        # The daemon connection was dropped: the origin never got a
        # complete (chunked) body, and nothing was stored.
        conn.request("GET", "/dav/failed")
        r = conn.getresponse()
        self.assertEqual(r.status, 404)
        r.read()
        with self.assertRaises(TypeError):
            conn.request("POST", "/echo", iter([b"bytes", "then str"]))
        conn.request("POST", "/echo", b"the connection goes on")
        self.assertEqual(conn.getresponse().read(), b"the connection goes on")

    def test_short_body_is_the_daemons_body_length_error(self):
        conn = self.conn()
        conn.putrequest("POST", "/echo")
        conn.putheader("Content-Length", 10)
        conn.endheaders(b"short")
        with self.assertRaises(hclient.HconnError) as cm:
            conn.getresponse()
        self.assertEqual(cm.exception.error, "body_length")
        # The connection goes on.
        conn.request("GET", "/small.txt")
        self.assertEqual(conn.getresponse().read(), harness.SMALL_BODY)

    def test_expect_continue(self):
        conn = self.conn()
        conn.request("POST", "/echo", iter([b"after ", b"continue"]),
                     expect_continue=True)
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"after continue"))
        conn.request("POST", "/echo", b"inline", expect_continue=True)
        self.assertEqual(conn.getresponse().read(), b"inline")

    def test_large_streamed_upload(self):
        data = harness.big_bytes(4 * 1024 * 1024)
        conn = self.conn()
        conn.request("PUT", "/dav/large", io.BytesIO(data))
        r = conn.getresponse()
        self.assertEqual(r.status, 201, r.read())
        conn.request("GET", "/dav/large")
        self.assertEqual(conn.getresponse().read(), data)


class Responses(PythonClientTest):

    def get(self, path="/big.bin", **kw):
        conn = self.conn(**kw)
        conn.request("GET", path)
        return conn, conn.getresponse()

    def test_response_is_a_buffered_io_base(self):
        conn, r = self.get()
        self.assertIsInstance(r, io.BufferedIOBase)
        self.assertIsInstance(r, http.client.HTTPResponse)
        self.assertIsInstance(r.msg, http.client.HTTPMessage)
        self.assertIs(r.msg, r.headers)
        self.assertIs(r.info(), r.headers)
        self.assertEqual(r.getcode(), 200)
        self.assertEqual(r.version, 11)
        self.assertEqual(r.length, harness.BIG_SIZE)
        self.assertIsInstance(r.fileno(), int)
        self.assertFalse(r.closed)
        self.assertFalse(r.isclosed())
        self.assertIsNone(r.getheader("X-None"))
        self.assertEqual(r.getheader("X-None", "dflt"), "dflt")
        data = harness.big_bytes()
        self.assertEqual(r.peek(4)[:4], data[:4])
        self.assertEqual(r.read(10), data[:10])
        self.assertEqual(r.length, harness.BIG_SIZE - 10)
        got = r.read1(100)
        self.assertTrue(0 < len(got) <= 100)
        self.assertEqual(got, data[10:10 + len(got)])
        pos = 10 + len(got)
        buf = bytearray(1000)
        self.assertEqual(r.readinto(buf), 1000)
        self.assertEqual(bytes(buf), data[pos:pos + 1000])
        pos += 1000
        self.assertEqual(r.read(), data[pos:])
        self.assertTrue(r.isclosed())
        self.assertEqual(r.read(), b"")
        self.assertEqual(r.length, 0)

    def test_context_manager_and_close_before_the_end(self):
        conn, r = self.get()
        with r:
            self.assertEqual(len(r.read(100)), 100)
        self.assertTrue(r.closed)
        # The connection goes on with a new request.
        conn.request("GET", "/small.txt")
        with conn.getresponse() as r2:
            self.assertEqual(r2.read(), harness.SMALL_BODY)

    def test_pipelining_and_reused(self):
        conn = self.conn()
        for path in ("/small.txt", "/headers", "/missing", "/small.txt"):
            conn.request("GET", path)
        got = []
        for _ in range(4):
            r = conn.getresponse()
            got.append((r.status, r.read()))
        self.assertEqual([s for s, _ in got], [200, 200, 404, 200])
        self.assertEqual(got[0][1], harness.SMALL_BODY)
        self.assertEqual(got[1][1], harness.HEADERS_BODY)
        conn.request("GET", "/small.txt")
        r = conn.getresponse()
        r.read()
        self.assertTrue(r.reused)
        with self.assertRaises(http.client.ResponseNotReady):
            conn.getresponse()

    def test_reading_the_next_before_the_last_is_done(self):
        conn = self.conn()
        conn.request("GET", "/small.txt")
        conn.request("GET", "/small.txt")
        r1 = conn.getresponse()
        with self.assertRaises(http.client.ResponseNotReady):
            conn.getresponse()
        r1.close()                  # the rest of it is skipped
        self.assertEqual(conn.getresponse().read(), harness.SMALL_BODY)

    def test_state_errors_are_http_clients(self):
        conn = self.conn()
        with self.assertRaises(http.client.ResponseNotReady):
            conn.getresponse()
        with self.assertRaises(http.client.CannotSendHeader):
            conn.putheader("X", "y")
        conn.putrequest("GET", "/")
        with self.assertRaises(http.client.CannotSendRequest):
            conn.putrequest("GET", "/")
        with self.assertRaises(ValueError):
            conn.putheader("Bad:Name", "x")
        with self.assertRaises(ValueError):
            conn.putheader("X", "a\r\nInjected: 1")
        with self.assertRaises(http.client.InvalidURL):
            hclient.HTTPConnection("127.0.0.1:port")
        with self.assertRaises(http.client.InvalidURL):
            self.conn().request("GET", "/a b")
        with self.assertRaises(ValueError):
            self.conn().request("GE\nT", "/")

    def test_connect_debuglevel_and_the_module_names(self):
        conn = self.conn()
        self.assertIsNone(conn.sock)
        conn.connect()
        self.assertIsInstance(conn.sock, socket.socket)
        conn.set_debuglevel(1)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            conn.request("GET", "/small.txt")
            conn.getresponse().read()
        self.assertIn('send: {"id":1,"method":"GET"', out.getvalue())
        self.assertIn("reply: 'HTTP/1.1 200 OK'", out.getvalue())
        self.assertIn("header: Content-Length: 12", out.getvalue())
        self.assertIs(hclient.responses, http.client.responses)
        self.assertEqual((hclient.HTTP_PORT, hclient.HTTPS_PORT), (80, 443))
        for name in ("IncompleteRead", "RemoteDisconnected", "BadStatusLine",
                     "LineTooLong", "CannotSendRequest", "ResponseNotReady",
                     "InvalidURL", "HTTPException", "HTTPMessage"):
            self.assertIs(getattr(hclient, name), getattr(http.client, name))

    def test_source_address_binds_the_daemons_connection(self):
        origin = self.start_origin({None: [("send", harness.http_response(
            200, b"ok"))]})
        port = harness.free_port()
        conn = hclient.HTTPConnection("127.0.0.1", origin.port,
                                      source_address=("127.0.0.1", port))
        self.addCleanup(conn.close)
        conn.request("GET", "/")
        self.assertEqual(conn.getresponse().read(), b"ok")
        self.assertEqual(origin.connections[0].peer, ("127.0.0.1", port))
        with self.assertRaises(hclient.HconnInvalidArgumentError):
            hclient.HTTPConnection("127.0.0.1", source_address=("localhost",
                                                                0))

    def test_framing_headers_the_daemon_refuses(self):
        # A pooled connection cannot be switched, kept alive on the
        # caller's terms or given trailers: ValueError, as http.client
        # raises for a header it cannot send.
        conn = self.conn()
        for headers in ({"Connection": "Upgrade", "Upgrade": "websocket"},
                        {"Keep-Alive": "timeout=5"}, {"TE": "gzip"}):
            with self.subTest(headers=headers):
                conn.request("GET", "/small.txt", headers=headers)
                with self.assertRaises(ValueError) as cm:
                    conn.getresponse()
                self.assertEqual(cm.exception.error, "invalid_header")
        conn.request("GET", "/small.txt", headers={"Connection": "close"})
        self.assertEqual(conn.getresponse().read(), harness.SMALL_BODY)

    def test_close_then_reconnect(self):
        conn = self.conn()
        conn.request("GET", "/small.txt")
        conn.getresponse().read()
        conn.close()
        self.assertIsNone(conn.sock)
        conn.request("GET", "/small.txt")
        self.assertEqual(conn.getresponse().read(), harness.SMALL_BODY)

    def test_response_survives_close_of_its_connection(self):
        conn = self.conn()
        conn.request("GET", "/big.bin")
        r = conn.getresponse()
        conn.close()
        self.assertEqual(r.read(), harness.big_bytes())


class Errors(PythonClientTest):

    def test_connection_refused(self):
        port = harness.free_port()
        conn = hclient.HTTPConnection("127.0.0.1", port)
        conn.request("GET", "/")
        with self.assertRaises(ConnectionRefusedError) as cm:
            conn.getresponse()
        self.assertEqual(cm.exception.error, "connect_failed")
        self.assertIn(str(port), cm.exception.message)

    def test_daemon_unavailable(self):
        conn = hclient.HTTPConnection(
            "127.0.0.1", self.ng.port,
            socket_path=os.path.join(self.d.dir, "absent.sock"))
        with self.assertRaises(ConnectionError) as cm:
            conn.request("GET", "/")
        self.assertEqual(cm.exception.error, "daemon_unavailable")

    def test_every_protocol_error_has_a_class(self):
        names = harness.error_codes()
        for name in names:
            if name == "ok":
                continue
            with self.subTest(name=name):
                cls = hclient.ERRORS[name]
                self.assertTrue(issubclass(cls, hclient.HconnError))
                self.assertTrue(issubclass(cls, http.client.HTTPException))
                e = hclient._exception({"error": name, "message": "m"})
                self.assertIsInstance(e, cls)
                self.assertEqual(e.error, name)
        expect = {
            "incomplete_read": http.client.IncompleteRead,
            "remote_disconnected": http.client.RemoteDisconnected,
            "bad_status_line": http.client.BadStatusLine,
            "line_too_long": http.client.LineTooLong,
            "invalid_url": http.client.InvalidURL,
            "timeout": TimeoutError,
            "dns_failed": socket.gaierror,
            "connect_failed": ConnectionRefusedError,
            "tls_verify_failed": ssl.SSLCertVerificationError,
            "tls_failed": ssl.SSLError,
            "denied": PermissionError,
            "invalid_header": ValueError,
        }
        for name, base in expect.items():
            self.assertTrue(issubclass(hclient.ERRORS[name], base), name)
        e = hclient._exception({"error": "incomplete_read", "message": "m",
                                "received": 3, "expected": 10}, b"abc")
        self.assertEqual((e.partial, e.expected), (b"abc", 7))
        e = hclient._exception({"error": "something_new", "message": "m"})
        self.assertEqual((type(e), e.error), (hclient.HconnError,
                                              "something_new"))


class Denied(harness.IntegrationTest):
    """A policy refusal is a PermissionError; a streamed body stops being
    sent, and the replies its frames drew never reach the next request."""

    def test_denied_upload_then_the_connection_goes_on(self):
        ng = self.start_nginx()
        conf = os.path.join(tempfile.mkdtemp(prefix="hconn-py-policy-"),
                            "hconnd.json")
        self.addCleanup(shutil.rmtree, os.path.dirname(conf), True)
        with open(conf, "w") as f:
            json.dump({"policy": {"default": {"ports": [ng.port]}}}, f)
        d = self.start_daemon("--config", conf)
        conn = hclient.HTTPConnection("127.0.0.1", ng.port + 1,
                                      socket_path=d.socket, timeout=20)
        self.addCleanup(conn.close)
        sent = []

        def body():
            for i in range(256):
                sent.append(i)
                yield b"x" * 65536
        conn.request("POST", "/echo", body())
        with self.assertRaises(PermissionError) as cm:
            conn.getresponse()
        self.assertEqual(cm.exception.error, "denied")
        self.assertIn(f"port {ng.port + 1}", cm.exception.message)
        # The body stopped once the refusal was there (16 MiB were due).
        self.assertLess(len(sent), 256)
        # Whatever the frames already sent drew is skipped: the next
        # requests on the connection get their own answers.
        for _ in range(3):
            conn.request("POST", "/echo", b"again")
            conn.request("GET", "/small.txt")
            for _ in range(2):
                with self.assertRaises(PermissionError) as cm:
                    conn.getresponse()
                self.assertIn(f"port {ng.port + 1}", cm.exception.message)
        ok = hclient.HTTPConnection("127.0.0.1", ng.port,
                                    socket_path=d.socket, timeout=20)
        self.addCleanup(ok.close)
        ok.request("GET", "/small.txt")
        self.assertEqual(ok.getresponse().read(), harness.SMALL_BODY)


class NoTimeout(harness.IntegrationTest):
    """http.client's default timeout is none: a response slower than the
    daemon's read_timeout still comes; an explicit timeout still holds."""

    def test_default_waits_past_the_daemons_read_timeout(self):
        origin = self.start_origin({"/slow": [
            ("sleep", 1.5), ("send", harness.http_response(200, b"late"))]})
        conf = os.path.join(tempfile.mkdtemp(prefix="hconn-py-timeout-"),
                            "hconnd.json")
        self.addCleanup(shutil.rmtree, os.path.dirname(conf), True)
        with open(conf, "w") as f:
            json.dump({"read_timeout": 0.5}, f)
        d = self.start_daemon("--config", conf)
        conn = hclient.HTTPConnection("127.0.0.1", origin.port,
                                      socket_path=d.socket)
        self.addCleanup(conn.close)
        conn.request("GET", "/slow")
        self.assertEqual(conn.getresponse().read(), b"late")
        timed = hclient.HTTPConnection("127.0.0.1", origin.port,
                                       socket_path=d.socket, timeout=0.5)
        self.addCleanup(timed.close)
        timed.request("GET", "/slow")
        with self.assertRaises(TimeoutError):
            timed.getresponse()


class Tls(PythonClientTest):

    def test_client_certificate_read_here(self):
        conn = self.tls_conn("mtls", cafile=self.ng.ca_file,
                             cert_file=self.ng.client_cert_file,
                             key_file=self.ng.client_key_file)
        conn.request("GET", "/small.txt")
        r = conn.getresponse()
        self.assertEqual((r.status, r.getheader("X-Client-Verify")),
                         (200, "SUCCESS"))
        r.read()

    def test_context_settings_that_map(self):
        ctx = ssl._create_unverified_context()
        conn = self.tls_conn("self_signed", context=ctx)
        conn.request("GET", "/small.txt")
        self.assertEqual(conn.getresponse().status, 200)
        ctx = ssl.create_default_context(cafile=self.ng.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        conn = self.tls_conn("tls12", context=ctx)
        conn.request("GET", "/small.txt")
        with self.assertRaises(ssl.SSLError):
            conn.getresponse()
        conn = self.tls_conn("good", context=ctx)
        conn.request("GET", "/small.txt")
        r = conn.getresponse()
        self.assertEqual(r.getheader("X-TLS-Protocol"), "TLSv1.3")

    def test_default_context_sends_no_trust_anchors(self):
        # The system store is the daemon's default: not sent again.
        tls = hclient._context_tls(ssl.create_default_context())
        self.assertNotIn("ca_pem", tls)
        self.assertNotEqual(tls.get("verify"), False)
        tls = hclient._context_tls(ssl.create_default_context(
            cafile=self.ng.ca_file))
        with open(self.ng.ca_file) as f:
            self.assertEqual(ssl.PEM_cert_to_DER_cert(tls["ca_pem"]),
                             ssl.PEM_cert_to_DER_cert(f.read()))

    def test_context_settings_that_do_not_map_are_errors(self):
        def unmappable(change):
            ctx = ssl.create_default_context(cafile=self.ng.ca_file)
            change(ctx)
            with self.assertRaises(hclient.HconnUnsupportedError):
                hclient.HTTPSConnection("127.0.0.1", self.ng.tls_port,
                                        context=ctx)

        def no_hostname(ctx):
            ctx.check_hostname = False
        unmappable(no_hostname)

        def ciphers(ctx):
            ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
        unmappable(ciphers)

        def max_12(ctx):
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        unmappable(max_12)

        with self.assertRaises(hclient.HconnUnsupportedError):
            hclient.HTTPSConnection(
                "127.0.0.1", self.ng.tls_port,
                context=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))

    def test_wrong_host_and_expired(self):
        for variant in ("wrong_host", "expired"):
            with self.subTest(variant=variant):
                conn = self.tls_conn(variant, cafile=self.ng.ca_file)
                conn.request("GET", "/small.txt")
                with self.assertRaises(ssl.SSLCertVerificationError):
                    conn.getresponse()


class FakeDaemon(unittest.TestCase):
    """hconn.client against a scripted daemon: what it does with replies
    that break the protocol, a daemon that goes away and one that stays
    silent."""

    def serve(self, replies, hold=False):
        """A Unix socket that reads one request line (kept in
        self.received) and answers with replies (bytes), then closes (or
        holds the connection open)."""
        import threading
        self.received = []
        d = tempfile.mkdtemp(prefix="hconn-fake-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "fake.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        self.addCleanup(srv.close)
        done = threading.Event()
        self.addCleanup(done.set)

        def run():
            c, _ = srv.accept()
            with c:
                buf = b""
                while b"\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                self.received.append(buf)
                c.sendall(replies)
                if hold:
                    done.wait(30)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.addCleanup(t.join, 5)
        return path

    def get(self, path, **kw):
        conn = hclient.HTTPConnection("127.0.0.1", 8, socket_path=path, **kw)
        self.addCleanup(conn.close)
        conn.request("GET", "/")
        return conn

    HEAD = (b'{"id":1,"status":200,"reason":"OK","version":11,'
            b'"headers":[["Content-Length","10"]],"length":10,'
            b'"reused":false}\n')

    def test_daemon_gone_before_the_head(self):
        conn = self.get(self.serve(b""))
        with self.assertRaises(ConnectionResetError) as cm:
            conn.getresponse()
        self.assertEqual(cm.exception.error, "connection_closed")

    def test_daemon_gone_in_the_body(self):
        conn = self.get(self.serve(self.HEAD + b'{"id":1,"data":4}\nabcd'))
        r = conn.getresponse()
        with self.assertRaises(ConnectionResetError):
            r.read()
        self.assertEqual(r.read(), b"")

    def test_not_json_and_bad_frames(self):
        for replies in (b"this is not json\n",
                        b'["an array"]\n',
                        self.HEAD + b'{"id":1,"data":-1}\n',
                        self.HEAD + b'{"id":7,"data":1}\nx',
                        b'{"id":1,"data":3}\nabc'):
            with self.subTest(replies=replies[-30:]):
                conn = self.get(self.serve(replies))
                with self.assertRaises(hclient.HconnBadMessageError):
                    r = conn.getresponse()
                    r.read()

    def test_folded_header_value_is_one_space(self):
        # http.client takes CRLF + blanks in a value (obsolete folding);
        # the daemon takes no CR/LF: each fold goes as one space.
        conn = hclient.HTTPConnection("127.0.0.1", 8,
                                      socket_path=self.serve(b""))
        self.addCleanup(conn.close)
        conn.putrequest("GET", "/")
        conn.putheader("X-Folded", "a\r\n  b\n\tc\r d")
        conn.putheader("X-Plain", "e", "f")
        conn.endheaders()
        with self.assertRaises(ConnectionResetError):
            conn.getresponse()
        headers = json.loads(self.received[0].split(b"\n")[0])["headers"]
        self.assertIn(["X-Folded", "a b c d"], headers)
        self.assertIn(["X-Plain", "e f"], headers)

    def test_silent_daemon_is_a_local_timeout(self):
        # The request's timeout goes to the daemon; the local wait is
        # twice that plus a second, so the daemon's own error comes first.
        conn = self.get(self.serve(b"", hold=True), timeout=0.1)
        with self.assertRaises(TimeoutError) as cm:
            conn.getresponse()
        self.assertEqual(cm.exception.error, "timeout")
        self.assertIn("1.2s", cm.exception.message)


class SocketPath(unittest.TestCase):

    def test_the_rule_of_libhconn(self):
        env = dict(os.environ)
        self.addCleanup(lambda: (os.environ.clear(), os.environ.update(env)))
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        os.environ.pop("HCONN_SOCKET", None)
        os.environ["XDG_RUNTIME_DIR"] = d
        self.assertEqual(hclient.socket_path(), hclient.DEFAULT_SOCKET)
        open(os.path.join(d, "hconnd.sock"), "w").close()
        self.assertEqual(hclient.socket_path(),
                         os.path.join(d, "hconnd.sock"))
        os.environ["HCONN_SOCKET"] = "/x/env.sock"
        self.assertEqual(hclient.socket_path(), "/x/env.sock")
        self.assertEqual(hclient.socket_path("/x/arg.sock"), "/x/arg.sock")


class Urllib(PythonClientTest):

    def test_build_opener(self):
        opener = urllib.request.build_opener(hconn.urllib.HconnHandler())
        self.assertFalse(any(type(h) in (urllib.request.HTTPHandler,
                                         urllib.request.HTTPSHandler)
                             for h in opener.handlers))
        with opener.open(self.ng.url("/small.txt")) as r:
            self.assertEqual((r.status, r.read()), (200, harness.SMALL_BODY))
            self.assertEqual(r.url, self.ng.url("/small.txt"))
        with self.assertRaises(urllib.error.HTTPError) as cm:
            opener.open(self.ng.url("/missing"))
        self.assertEqual(cm.exception.code, 404)
        cm.exception.close()
        req = urllib.request.Request(self.ng.url("/echo"), data=b"posted")
        self.assertEqual(opener.open(req).read(), b"posted")
        req = urllib.request.Request(self.ng.url("/echo"),
                                     data=iter([b"it", b"er"]),
                                     headers={"Transfer-Encoding":
                                              "chunked"})
        self.assertEqual(opener.open(req).read(), b"iter")

    def test_https_and_errors(self):
        ctx = ssl.create_default_context(cafile=self.ng.ca_file)
        opener = urllib.request.build_opener(
            hconn.urllib.HconnHandler(context=ctx))
        self.assertEqual(opener.open(self.ng.tls_url("/small.txt")).read(),
                         harness.SMALL_BODY)
        opener = urllib.request.build_opener(hconn.urllib.HconnHandler())
        with self.assertRaises(urllib.error.URLError) as cm:
            opener.open(self.ng.tls_url("/small.txt"))
        self.assertIsInstance(cm.exception.reason,
                              ssl.SSLCertVerificationError)

    def test_https_proxy_from_proxy_handler(self):
        with harness.Tinyproxy([self.ng.tls_port]) as proxy:
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler(
                    {"https": f"http://127.0.0.1:{proxy.port}"}),
                hconn.urllib.HconnHandler(cafile=self.ng.ca_file))
            self.assertEqual(
                opener.open(self.ng.tls_url("/small.txt")).read(),
                harness.SMALL_BODY)
            self.assertIn("CONNECT", proxy.log_text())


REQUESTS_PROGRAM = r"""
import json, os, sys
import requests
sys.path.insert(0, os.environ["HCONN_PYTHONPATH"])
from hconn.requests import HconnAdapter
http_url, https_url, mtls_url, ca, cert, key = sys.argv[1:7]
s = requests.Session()
s.mount("http://", HconnAdapter())
s.mount("https://", HconnAdapter())
out = {}
r = s.get(http_url + "/headers", headers={"X-Test": "1"})
out["get"] = [r.status_code, r.text, r.headers["X-Dup"], r.reused]
adapter = s.get_adapter(http_url)
chan = adapter._idle[0] if adapter._idle else None
r = s.get(http_url + "/small.txt")
out["kept"] = [len(adapter._idle), chan is not None and
               adapter._idle[0] is chan, r.reused]
r = s.post(http_url + "/echo", data={"a": "1", "b": "two"})
out["form"] = [r.status_code, r.text]
r = s.post(http_url + "/echo", data=(b"x%d" % i for i in range(3)))
out["chunked"] = [r.status_code, r.text]
r = s.post(http_url + "/echo", json={"k": [1, 2]})
out["json"] = r.json()
r = s.get(http_url + "/chunked", stream=True)
out["lines"] = [l.decode() for l in r.iter_lines()]
r = s.get(http_url + "/missing")
out["404"] = r.status_code
r = s.get(https_url + "/small.txt", verify=ca)
out["https"] = [r.status_code, r.text]
r = s.get(mtls_url + "/small.txt", verify=ca, cert=(cert, key))
out["mtls"] = [r.status_code, r.headers.get("X-Client-Verify")]
def error(f):
    try:
        f()
    except requests.RequestException as e:
        return type(e).__name__
out["ssl_error"] = error(lambda: s.get(https_url + "/small.txt"))
out["refused"] = error(lambda: s.get("http://127.0.0.1:%s/" % sys.argv[7]))
print(json.dumps(out))
"""


class Requests(PythonClientTest):
    """The requests adapter with Debian's python3-requests, under
    /usr/bin/python3 (the package itself needs no requests)."""

    def test_requests_adapter(self):
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            raise harness.missing("needs Debian's /usr/bin/python3")
        check = subprocess.run([SYSTEM_PYTHON, "-c", "import requests"],
                               capture_output=True)
        if check.returncode != 0:
            raise harness.missing("python3-requests is not installed "
                                  "(.ci/packages)")
        ng = self.ng
        env = dict(self.d.env, HCONN_PYTHONPATH=PYTHONPATH)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                  "all_proxy", "ALL_PROXY"):
            env.pop(k, None)
        r = subprocess.run(
            [SYSTEM_PYTHON, "-c", REQUESTS_PROGRAM, ng.url(""),
             ng.tls_url(""), ng.tls_url("", variant="mtls"), ng.ca_file,
             ng.client_cert_file, ng.client_key_file,
             str(harness.free_port())],
            capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["get"], [200, "headers\n", "a, b", False])
        # One daemon connection served both requests; the origin
        # connection was the daemon's pooled one.
        self.assertEqual(out["kept"], [1, True, True])
        self.assertEqual(out["form"], [200, "a=1&b=two"])
        self.assertEqual(out["chunked"], [200, "x0x1x2"])
        self.assertEqual(out["json"], {"k": [1, 2]})
        self.assertEqual(out["lines"], ["line1", "line2", "line3"])
        self.assertEqual(out["404"], 404)
        self.assertEqual(out["https"], [200, "hello world\n"])
        self.assertEqual(out["mtls"], [200, "SUCCESS"])
        self.assertEqual(out["ssl_error"], "SSLError")
        self.assertEqual(out["refused"], "ConnectionError")


SANDBOX_PROGRAM = r"""
import os, socket, sys
sys.path.insert(0, sys.argv[1])
port = int(sys.argv[2])
# No network here: the origin on the host's loopback is out of reach.
s = socket.socket()
try:
    s.settimeout(2)
    s.connect(("127.0.0.1", port))
    print("direct: connected")
except OSError as e:
    print("direct:", type(e).__name__)
from hconn import client
c = client.HTTPConnection("127.0.0.1", port)
c.request("GET", "/small.txt")
r = c.getresponse()
print("hconn:", r.status, r.read().decode().strip(), os.getuid())
"""


class Sandbox(PythonClientTest):
    """The package in a network namespace with no network, as nobody; the
    daemon outside. The program reaches the origin only through the
    socket."""

    def test_no_network_but_the_socket(self):
        for tool in ("unshare", "setpriv"):
            if shutil.which(tool) is None:
                raise harness.missing(f"needs {tool} (util-linux)")
        if os.geteuid() != 0:
            raise harness.missing("needs root for unshare -n")
        nobody = pwd.getpwnam("nobody")
        # The package and the socket where nobody can reach them.
        os.chmod(self.d.dir, 0o755)
        pkg = tempfile.mkdtemp(prefix="hconn-py-")
        self.addCleanup(shutil.rmtree, pkg, True)
        shutil.copytree(os.path.join(PYTHONPATH, "hconn"),
                        os.path.join(pkg, "hconn"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        os.chmod(pkg, 0o755)
        r = subprocess.run(
            ["unshare", "-n", "setpriv", "--reuid=nobody", "--regid=nogroup",
             "--clear-groups", SYSTEM_PYTHON if os.access(SYSTEM_PYTHON,
                                                          os.X_OK)
             else sys.executable, "-c", SANDBOX_PROGRAM, pkg,
             str(self.ng.port)],
            capture_output=True, text=True, timeout=60, cwd="/",
            env={"HCONN_SOCKET": self.d.socket, "PATH": "/usr/bin:/bin",
                 "PYTHONDONTWRITEBYTECODE": "1"})
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertNotEqual(lines[0], "direct: connected", r.stdout)
        self.assertEqual(lines[1],
                         f"hconn: 200 hello world {nobody.pw_uid}",
                         r.stdout)
        self.assertIn(f"uid {nobody.pw_uid}", self.d.log_text())


class Install(unittest.TestCase):
    """`meson install` puts the package where the system's Python finds
    it, with the build's default socket."""

    def test_meson_install(self):
        meson = shutil.which("meson")
        info = os.path.join(harness.BUILD_ROOT, "meson-info",
                            "intro-installed.json")
        if meson is None or not os.path.exists(info):
            raise harness.missing("needs meson and a configured build dir")
        with open(info) as f:
            installed = json.load(f)
        targets = [p for p in installed.values()
                   if "/hconn/" in p and p.endswith(".py")]
        names = sorted(os.path.basename(p) for p in targets)
        self.assertEqual(names, ["__init__.py", "_build.py", "client.py",
                                 "requests.py", "urllib.py"])
        site = os.path.dirname(os.path.dirname(targets[0]))
        # The directory is on the system Python's path (for its prefix).
        if os.access(SYSTEM_PYTHON, os.X_OK) and \
                site.startswith(("/usr/local/lib/python3", "/usr/lib/python3")):
            r = subprocess.run([SYSTEM_PYTHON, "-c",
                                "import sys; print('\\n'.join(sys.path))"],
                               capture_output=True, text=True)
            self.assertIn(site, r.stdout.splitlines())
        dest = tempfile.mkdtemp(prefix="hconn-py-destdir-")
        self.addCleanup(shutil.rmtree, dest, True)
        r = subprocess.run([meson, "install", "-C", harness.BUILD_ROOT,
                            "--no-rebuild", "--quiet", "--destdir", dest],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        root = os.path.join(dest, site.lstrip("/"))
        # Byte-compiled, naming the installed path: a user who may not
        # write there does not compile the package at every start.
        pyc = os.path.join(root, "hconn", "__pycache__",
                           f"client.{sys.implementation.cache_tag}.pyc")
        if os.access(SYSTEM_PYTHON, os.X_OK):
            r = subprocess.run([SYSTEM_PYTHON, "-c",
                                "import sys; print(sys.implementation"
                                ".cache_tag)"], capture_output=True,
                               text=True)
            pyc = os.path.join(root, "hconn", "__pycache__",
                               f"client.{r.stdout.strip()}.pyc")
        self.assertTrue(os.path.exists(pyc), pyc)
        r = subprocess.run(
            [SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK)
             else sys.executable, "-c",
             "import hconn.client as c, hconn.urllib; "
             "print(c.__file__); print(c.DEFAULT_SOCKET)"],
            capture_output=True, text=True, cwd="/",
            env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"})
        self.assertEqual(r.returncode, 0, r.stderr)
        file, default = r.stdout.split()
        self.assertTrue(file.startswith(root), file)
        with open(os.path.join(harness.BUILD_ROOT, "meson-info",
                               "intro-buildoptions.json")) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
        self.assertEqual(default, opts["default_socket"])


if __name__ == "__main__":
    harness.main()
