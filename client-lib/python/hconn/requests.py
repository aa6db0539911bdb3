"""hconn.requests — a transport adapter that sends the requests library's
traffic through hconnd.

    import requests
    from hconn.requests import HconnAdapter
    s = requests.Session()
    s.mount("http://", HconnAdapter())
    s.mount("https://", HconnAdapter())
    print(s.get("https://example.org/").text)

verify (True, False, a CA bundle file or a directory), cert (a file, or a
(cert, key) pair), timeout (one number or a (connect, read) pair: hconnd
has one timeout that covers both, so the larger is used), stream and the
proxies requests picks (including from the environment) are honoured; the
daemon makes the connection, the CONNECT tunnel and the TLS handshake.
Errors are requests' own: ConnectionError, ConnectTimeout, ReadTimeout,
SSLError, ProxyError, InvalidURL, InvalidHeader, ChunkedEncodingError.

Needs requests and urllib3 (hconn itself needs only the standard library).
"""

import os
import threading

import requests
import requests.adapters
import requests.exceptions as rex
import urllib3
from urllib3.util import parse_url

try:
    from urllib3 import HTTPHeaderDict
except ImportError:     # urllib3 1.x
    from urllib3._collections import HTTPHeaderDict

from hconn import client as _client

__all__ = ["HconnAdapter", "session"]


def _daemon_timeout(timeout):
    """requests' timeout (number, pair or urllib3 Timeout) as one number
    of seconds, or None."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError(f"Invalid timeout {timeout}. Pass a (connect, "
                             "read) timeout tuple, or a single float to set "
                             "both timeouts to the same value.")
        values = timeout
    elif isinstance(timeout, urllib3.Timeout):
        values = (timeout.connect_timeout, timeout.read_timeout)
    else:
        values = (timeout,)
    values = [v for v in values
              if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return max(values) if values else None


# hconnd error name: the requests exception it becomes.
_EXCEPTIONS = {
    "tls_verify_failed": rex.SSLError,
    "tls_failed": rex.SSLError,
    "tunnel_failed": rex.ProxyError,
    "invalid_url": rex.InvalidURL,
    "invalid_header": rex.InvalidHeader,
}


class HconnAdapter(requests.adapters.BaseAdapter):
    """Sends each request through hconnd; socket_path: the daemon's socket
    (default as hconn.client.socket_path())."""

    # Idle connections to hconnd kept for the next requests (each serves
    # one request at a time; the daemon pools the origin connections).
    max_idle = 8

    def __init__(self, socket_path=None):
        super().__init__()
        self.socket_path = socket_path
        self._tls_cache = {}
        self._idle = []
        self._lock = threading.Lock()

    def _take_channel(self, conn):
        """An idle daemon connection for conn, if one is kept."""
        with self._lock:
            while self._idle:
                chan = self._idle.pop()
                if not chan.closed:
                    chan.wait = conn._local_wait()
                    chan.debuglevel = conn.debuglevel
                    conn._chan = chan
                    return

    def _keep_channel(self, chan):
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(chan)
                return
        chan.close()

    def _tls(self, verify, cert):
        """The tls options for verify and cert, read once per pair."""
        key = (verify, cert if not isinstance(cert, list) else tuple(cert))
        tls = self._tls_cache.get(key)
        if tls is None:
            kw = {}
            if verify is False:
                kw["context"] = _unverified_context()
            elif isinstance(verify, (str, os.PathLike)):
                if not os.path.exists(verify):
                    raise OSError("Could not find a suitable TLS CA "
                                  f"certificate bundle, invalid path: "
                                  f"{verify}")
                kw["capath" if os.path.isdir(verify) else "cafile"] = verify
            if cert:
                if isinstance(cert, (str, os.PathLike)):
                    kw["cert_file"] = cert
                else:
                    kw["cert_file"], kw["key_file"] = cert
            tls = _client._tls_options(**kw)
            self._tls_cache[key] = tls
        return tls

    def send(self, request, stream=False, timeout=None, verify=True,
             cert=None, proxies=None):
        try:
            u = parse_url(request.url)
        except Exception as e:
            raise rex.InvalidURL(e, request=request)
        scheme = (u.scheme or "http").lower()
        if scheme not in ("http", "https"):
            raise rex.InvalidSchema(f"No connection adapters were found for "
                                    f"{request.url!r}", request=request)
        if not u.host:
            raise rex.InvalidURL(f"Invalid URL {request.url!r}: No host "
                                 "supplied", request=request)
        host = u.host.strip("[]")
        port = u.port or (443 if scheme == "https" else 80)
        headers = dict(request.headers)
        target = request.path_url
        conn_host, conn_port = host, port
        proxy = requests.utils.select_proxy(request.url, proxies)
        tunnel = None
        if proxy:
            p = parse_url(requests.utils.prepend_scheme_if_needed(proxy,
                                                                  "http"))
            if (p.scheme or "http").lower() != "http" or not p.host:
                raise rex.InvalidProxyURL(f"Unsupported proxy {proxy!r}: "
                                          "hconnd tunnels through http:// "
                                          "proxies", request=request)
            proxy_headers = requests.adapters.HTTPAdapter.proxy_headers(
                self, proxy)
            conn_host, conn_port = p.host.strip("[]"), p.port or 80
            if scheme == "https":
                tunnel = proxy_headers
            else:               # absolute-form to the proxy
                target = request.url
                headers.update(proxy_headers)
        try:
            t = _daemon_timeout(timeout)
            if scheme == "https":
                conn = _client.HTTPSConnection.__new__(
                    _client.HTTPSConnection)
                _client.HTTPConnection.__init__(
                    conn, conn_host, conn_port,
                    timeout=t, socket_path=self.socket_path)
                conn._tls = self._tls(verify, cert)
            else:
                conn = _client.HTTPConnection(conn_host, conn_port,
                                              timeout=t,
                                              socket_path=self.socket_path)
            if tunnel is not None:
                conn.set_tunnel(host, port, headers=tunnel)
            self._take_channel(conn)
            try:
                conn.request(request.method, target, request.body, headers,
                             encode_chunked="Transfer-Encoding" in headers)
                r = conn.getresponse()
            finally:
                conn.close()        # a response keeps reading until its end
            # The daemon connection is kept after a request whose body went
            # inline (a streamed one may leave replies to frames behind).
            if request.body is None or isinstance(request.body,
                                                  (bytes, str)):
                r._release = self._keep_channel
        except _client.HconnError as e:
            raise self._exception(e, request) from e
        except OSError as e:
            raise rex.ConnectionError(e, request=request) from e

        h = HTTPHeaderDict()
        for name, value in r.getheaders():
            h.add(name, value)
        raw = urllib3.HTTPResponse(
            body=r, headers=h, status=r.status, version=r.version,
            reason=r.reason, preload_content=False, decode_content=False,
            original_response=r, request_method=request.method,
            enforce_content_length=False)
        response = requests.adapters.HTTPAdapter.build_response(
            self, request, raw)
        response.reused = r.reused
        if not stream:
            response.content
        return response

    @staticmethod
    def _exception(e, request):
        cls = _EXCEPTIONS.get(e.error)
        if cls is None and e.error == "timeout":
            cls = rex.ConnectTimeout if "connect" in e.message.lower() \
                else rex.ReadTimeout
        return (cls or rex.ConnectionError)(e, request=request)

    def close(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for chan in idle:
            chan.close()


def _unverified_context():
    import ssl
    return ssl._create_unverified_context()


def session(socket_path=None):
    """A requests.Session whose http and https go through hconnd."""
    s = requests.Session()
    adapter = HconnAdapter(socket_path)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
