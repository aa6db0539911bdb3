"""hconn.urllib — a urllib.request handler that sends http and https
through hconnd.

    import urllib.request
    from hconn.urllib import HconnHandler
    opener = urllib.request.build_opener(HconnHandler())
    print(opener.open("https://example.org/").read())

HconnHandler takes the place of both HTTPHandler and HTTPSHandler in
build_opener() (it is a subclass of both), so every other handler
(redirects, cookies, authentication, ProxyHandler) works as usual: a proxy
from the environment becomes a CONNECT tunnel (https) or an absolute-form
request to the proxy (http), both made by the daemon. install_opener()
makes urlopen() use it.
"""

import urllib.error
import urllib.request

from hconn import client as _client

__all__ = ["HconnHandler", "build_opener", "install"]


# hconnd errors that urllib would meet while connecting.
_CONNECT_ERRORS = frozenset((
    "dns_failed", "connect_failed", "tls_verify_failed", "tls_failed",
    "timeout", "denied", "tunnel_failed", "daemon_unavailable",
    "shutting_down"))


class HconnHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """http_open and https_open through hconnd. context, check_hostname:
    as for HTTPSHandler; cafile, capath, cert_file, key_file: read in this
    process and sent to the daemon; socket_path: the daemon's socket."""

    def __init__(self, debuglevel=None, context=None, check_hostname=None,
                 *, cafile=None, capath=None, cert_file=None, key_file=None,
                 socket_path=None):
        urllib.request.AbstractHTTPHandler.__init__(
            self, 0 if debuglevel is None else debuglevel)
        self._context = context
        self._check_hostname = check_hostname
        self._tls = dict(cafile=cafile, capath=capath, cert_file=cert_file,
                         key_file=key_file)
        self._socket_path = socket_path
        self._tls_options = None

    def http_open(self, req):
        return self._open(_client.HTTPConnection, req, {})

    def https_open(self, req):
        if self._tls_options is None:   # read the files once, here
            self._tls_options = _client._tls_options(
                self._context, self._check_hostname, **self._tls)
        return self._open(_client.HTTPSConnection, req,
                          {"_tls": self._tls_options})

    http_request = urllib.request.AbstractHTTPHandler.do_request_
    https_request = urllib.request.AbstractHTTPHandler.do_request_

    def _open(self, conn_class, req, extra):
        """AbstractHTTPHandler.do_open, without handing a TCP socket
        around: the response keeps the daemon connection until its end."""
        host = req.host
        if not host:
            raise urllib.error.URLError('no host given')
        h = conn_class.__new__(conn_class)
        _client.HTTPConnection.__init__(h, host, timeout=req.timeout,
                                        socket_path=self._socket_path)
        for k, v in extra.items():
            setattr(h, k, v)
        h.set_debuglevel(self._debuglevel)

        headers = dict(req.unredirected_hdrs)
        headers.update({k: v for k, v in req.headers.items()
                        if k not in headers})
        # urllib sends "Connection: close" to end each TCP connection; here
        # the daemon owns the origin connections and keeps them pooled, so
        # no such header is added.
        headers = {name.title(): val for name, val in headers.items()}

        if req._tunnel_host:
            tunnel_headers = {}
            proxy_auth_hdr = "Proxy-Authorization"
            if proxy_auth_hdr in headers:
                tunnel_headers[proxy_auth_hdr] = headers[proxy_auth_hdr]
                del headers[proxy_auth_hdr]
            h.set_tunnel(req._tunnel_host, headers=tunnel_headers)

        try:
            try:
                h.request(req.get_method(), req.selector, req.data, headers,
                          encode_chunked=req.has_header('Transfer-encoding'))
            except OSError as err:
                raise urllib.error.URLError(err)
            r = h.getresponse()
        except _client.HconnError as err:
            h.close()
            # What urllib meets while connecting (in request() over TCP)
            # is a URLError; errors of the response itself pass as they are.
            if err.error in _CONNECT_ERRORS:
                raise urllib.error.URLError(err)
            raise
        except BaseException:
            h.close()
            raise
        h.close()       # the response reads on until its end
        r.url = req.get_full_url()
        r.msg = r.reason
        return r


def build_opener(*handlers, **kw):
    """urllib.request.build_opener with an HconnHandler(**kw) added."""
    return urllib.request.build_opener(HconnHandler(**kw), *handlers)


def install(**kw):
    """Makes urllib.request.urlopen() go through hconnd."""
    urllib.request.install_opener(build_opener(**kw))
