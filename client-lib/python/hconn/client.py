"""hconn.client — http.client's API over hconnd, the local connection pool.

A drop-in for the standard http.client: HTTPConnection and HTTPSConnection
send each request to hconnd over its Unix socket (the JSON-lines protocol
of proto/PROTOCOL.md) instead of opening a TCP connection, so a program in
a sandbox without network access runs unchanged, and short-lived programs
share the daemon's warm keep-alive and TLS connections.

    from hconn import client as http_client     # instead of http.client
    conn = http_client.HTTPSConnection("example.org")
    conn.request("GET", "/"); print(conn.getresponse().read())

What maps, and how:

- The request head is built here exactly as http.client builds it (Host,
  Accept-Encoding: identity, Content-Length / Transfer-Encoding, the
  caller's headers, in http.client's order) and handed to the daemon
  verbatim (skip_host, skip_accept_encoding); the daemon frames the body.
  Bodies: bytes-like and str (ISO-8859-1) go inline; files (text or
  binary) and iterables are streamed in data frames, chunked upstream
  unless a Content-Length was given — Content-Length is computed as
  http.client computes it. A caller's own Transfer-Encoding needs
  encode_chunked=True (the daemon chunk-encodes the raw bytes); bytes the
  caller chunk-encoded itself cannot be passed through a shared pool
  safely, so that is an HconnUnsupportedError.
- Errors are http.client's own exception classes (IncompleteRead with
  partial and expected, RemoteDisconnected, BadStatusLine, LineTooLong,
  CannotSendRequest, ResponseNotReady, InvalidURL ...) or the exception a
  Python user expects (ssl.SSLCertVerificationError, ConnectionRefusedError,
  socket.gaierror, TimeoutError, PermissionError for a policy refusal):
  each is raised as a subclass that is also an HconnError, carrying the
  protocol's error name (.error), its message and the whole reply.
- TLS material (CA file or directory, client certificate and key) is read
  in this process and sent as content; an ssl.SSLContext is accepted where
  its settings can be mapped (verify_mode, check_hostname, minimum_version,
  the CA certificates it holds) and anything else is an error, never
  dropped. Python cannot read back a client certificate loaded into a
  context with load_cert_chain() nor CA certificates a capath would load
  lazily: pass cert_file / key_file / cafile / capath instead.

Beyond http.client (as libhconn does): pipelining — request() may be
called several times before getresponse(), responses come back in order;
expect_continue=True on request() / endheaders(); response.reused (the
daemon's upstream connection had served an earlier request) and
response.trailers (an HTTPMessage after a chunked body's end).

source_address=(host, port) is sent as the request's source_address:
hconnd binds its connection to it (address literals only).

http_version= (keyword-only, on both connection classes) is the
request's "http_version": None or "auto" (hconnd chooses: over TLS, ALPN
offers h2 and http/1.1; plain text is HTTP/1.1 unless hconnd's config
lists the origin in h2c_origins), "1.1" or "2" (HTTP/2 only; h2c with
prior knowledge for plain text). response.version is 20 for HTTP/2.

Deliberately stricter than http.client: a body cut short is always an
IncompleteRead (http.client's read(amt) returns b"" for a Content-Length
body cut short); hconnd refuses malformed responses that http.client
would guess at (bad_header, bad_content_length, bad_framing ...).
"""

import collections
import errno as _errno
import io
import ipaddress
import os
import re
import select
import socket
import ssl
from collections.abc import Iterable

import http.client as _hc
from http.client import (  # noqa: F401  re-exported
    HTTP_PORT, HTTPS_PORT, responses, HTTPMessage, parse_headers,
    HTTPException, NotConnected, InvalidURL, UnknownProtocol,
    UnknownTransferEncoding, UnimplementedFileMode, IncompleteRead,
    ImproperConnectionState, CannotSendRequest, CannotSendHeader,
    ResponseNotReady, BadStatusLine, LineTooLong, RemoteDisconnected,
    error,
)

__all__ = ["HTTPResponse", "HTTPConnection", "HTTPSConnection",
           "HTTPException", "NotConnected", "UnknownProtocol",
           "UnknownTransferEncoding", "UnimplementedFileMode",
           "IncompleteRead", "InvalidURL", "ImproperConnectionState",
           "CannotSendRequest", "CannotSendHeader", "ResponseNotReady",
           "BadStatusLine", "LineTooLong", "RemoteDisconnected", "error",
           "responses", "HconnError", "ERRORS", "socket_path",
           "HTTP_PORT", "HTTPS_PORT"]

_CS_IDLE = 'Idle'
_CS_REQ_STARTED = 'Request-started'
_CS_REQ_SENT = 'Request-sent'

# http.client's own checks, so the same calls fail the same way.
_METHODS_EXPECTING_BODY = {'PATCH', 'POST', 'PUT'}
_is_legal_header_name = re.compile(rb'[^:\s][^:\r\n]*').fullmatch
_is_illegal_header_value = re.compile(rb'\n(?![ \t])|\r(?![ \t\n])').search
_contains_disallowed_url_pchar_re = re.compile('[\x00-\x20\x7f]')
_contains_disallowed_method_pchar_re = re.compile('[\x00-\x1f]')
# http.client allows folded values (CRLF + space); hconnd takes no CR/LF:
# a fold means one space (RFC 9112 5.2). Compiled on first use (by re's
# cache): few values are folded, and start-up time counts.
_FOLD = rb'\r?\n[ \t]+|\r[ \t]+'

MAX_LINE = 1048576          # protocol line limit, both directions
MAX_TIMEOUT = 86400.0       # protocol limit on "timeout"
_INLINE_MAX = 64 * 1024 * 1024  # the daemon's default inline body limit


# ---- Errors -------------------------------------------------------------------

class HconnError(HTTPException):
    """A failure reported by hconnd (or met on the way to it). .error is
    the protocol's error name (proto/PROTOCOL.md section 7), .message the
    daemon's text, .reply the whole error message (a dict)."""

    error = "bad_message"

    def __init__(self, message="", reply=None, error=None):
        if error is not None:
            self.error = error
        self.message = message
        self.reply = reply if reply is not None else {}
        BaseException.__init__(self, message)

    def __str__(self):
        return self.message

    def __reduce__(self):
        return (self.__class__, (self.message, self.reply, self.error))


class _IncompleteBase(HconnError):
    """Init for the IncompleteRead-based errors: (partial, expected)."""

    def __init__(self, partial=b"", expected=None, message="", reply=None,
                 error=None):
        HconnError.__init__(self, message, reply, error)
        IncompleteRead.__init__(self, partial, expected)

    __str__ = IncompleteRead.__str__

    def __reduce__(self):
        return (self.__class__, (self.partial, self.expected, self.message,
                                 self.reply, self.error))


# protocol name: the Python classes a user catches, besides HconnError.
_ERROR_BASES = {
    "invalid_url": (InvalidURL,),
    "bad_status_line": (BadStatusLine,),
    "unknown_protocol": (UnknownProtocol,),
    "line_too_long": (LineTooLong,),
    "too_many_headers": (),
    "bad_header": (),
    "bad_content_length": (),
    "bad_framing": (),
    "unknown_transfer_encoding": (UnknownTransferEncoding,),
    "bad_chunk": (IncompleteRead,),
    "remote_disconnected": (RemoteDisconnected,),
    "incomplete_read": (IncompleteRead,),
    "connection_closed": (ConnectionResetError,),
    "timeout": (TimeoutError,),
    "dns_failed": (socket.gaierror,),
    "connect_failed": (ConnectionRefusedError,),
    "tls_verify_failed": (ssl.SSLCertVerificationError,),
    "tls_failed": (ssl.SSLError,),
    "tunnel_failed": (OSError,),
    "invalid_header": (ValueError,),
    "denied": (PermissionError,),
    "bad_message": (),
    "limit_exceeded": (),
    "shutting_down": (ConnectionAbortedError,),
    "daemon_unavailable": (ConnectionError,),
    "not_connected": (NotConnected,),
    "cannot_send_request": (CannotSendRequest,),
    "response_not_ready": (ResponseNotReady,),
    "http_error": (),
    "io_error": (OSError,),
    "no_memory": (),
    "invalid_argument": (ValueError,),
    "unsupported": (ValueError,),
    "body_length": (ValueError,),
    "would_block": (BlockingIOError,),
    "stream_reset": (ConnectionResetError,),
    "protocol_error": (ConnectionError,),
}

# "invalid_url" -> "HconnInvalidUrlError" (the names are lower-case words).
_ERROR_CLASS_NAMES = {"Hconn" + _name.title().replace("_", "") + "Error":
                      _name for _name in _ERROR_BASES}
__all__ += _ERROR_CLASS_NAMES
_errors = None


def _error_classes():
    """ERRORS, the classes made on first use: creating them all takes
    about a millisecond, a share of a short-lived process's start that a
    request that succeeds never needs. They become module attributes
    then, made once, so every lookup gives the same class."""
    global _errors
    if _errors is None:
        table = {}
        for cls_name, name in _ERROR_CLASS_NAMES.items():
            bases = _ERROR_BASES[name]
            root = _IncompleteBase if IncompleteRead in bases else HconnError
            table[name] = type(cls_name, (root,) + bases,
                               {"error": name, "__module__": __name__,
                                "__doc__": f"hconnd's {name!r} error."})
        globals().update({cls.__name__: cls for cls in table.values()},
                         ERRORS=table)
        _errors = table
    return _errors


def __getattr__(attr):
    """The module's attributes made on first use (PEP 562): ERRORS and
    its Hconn...Error classes, DEFAULT_SOCKET."""
    if attr == "ERRORS" or attr in _ERROR_CLASS_NAMES:
        _error_classes()
        return globals()[attr]
    if attr == "DEFAULT_SOCKET":
        return _default_socket()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def __dir__():
    return sorted({*globals(), "ERRORS", "DEFAULT_SOCKET",
                   *_ERROR_CLASS_NAMES})


def _exception(reply, partial=b""):
    """The exception for an error reply; partial: the body bytes the
    failing read had collected (IncompleteRead.partial)."""
    name = reply.get("error")
    message = reply.get("message")
    if not isinstance(message, str) or not message:
        message = str(name)
    cls = _error_classes().get(name)
    if cls is None:     # a name this version does not know: still an error
        return HconnError(message, reply, error=str(name))
    if name == "incomplete_read":
        exp, got = reply.get("expected"), reply.get("received")
        left = exp - got if isinstance(exp, int) and isinstance(got, int) \
            else None
        return cls(partial, left, message, reply)
    if name == "bad_chunk":
        return cls(partial, None, message, reply)
    if name == "tunnel_failed" and isinstance(reply.get("status"), int):
        # http.client's words, with the daemon's text after them.
        message = (f"Tunnel connection failed: {reply['status']} "
                   f"{str(reply.get('reason', '')).strip()} ({message})")
    e = cls(message, reply)
    if name == "connect_failed" and "refused" in message.lower():
        e.errno = _errno.ECONNREFUSED
    elif name == "dns_failed":
        e.errno = socket.EAI_NONAME
    elif name == "timeout":
        e.errno = _errno.ETIMEDOUT
    elif name == "denied":
        e.errno = _errno.EACCES
    if name == "tunnel_failed":
        e.status = reply.get("status")
        e.reason = reply.get("reason")
        e.headers = _message(reply.get("headers") or [])
    return e


def _local_error(name, message):
    return _exception({"error": name, "message": message})


# ---- JSON lines ---------------------------------------------------------------

# The json package is not imported for the common message: its modules
# take about 3 ms to import (they compile their regular expressions), a
# noticeable share of a short-lived process that does one request. Its C
# accelerator, _json, does the work json.dumps and json.loads hand to it;
# anything the fast paths below do not cover goes to json itself, so the
# result, and every error, is json's.
try:
    from _json import make_encoder as _c_make_encoder, \
        encode_basestring_ascii as _c_encode_ascii, \
        make_scanner as _c_make_scanner
except ImportError:     # a Python without the accelerator: json does all
    _c_make_encoder = _c_make_scanner = None


def _json_default(o):
    """json.JSONEncoder.default: what has no JSON form is a TypeError."""
    raise TypeError(f'Object of type {o.__class__.__name__} '
                    f'is not JSON serializable')


def _dumps(obj):
    """json.dumps(obj, separators=(",", ":")) for a dict: the call its
    JSONEncoder makes (ensure_ascii, check_circular, allow_nan)."""
    if _c_make_encoder is None:
        import json
        return json.dumps(obj, separators=(",", ":"))
    return "".join(_c_make_encoder({}, _json_default, _c_encode_ascii, None,
                                   ":", ",", False, False, True)(obj, 0))


class _JSONContext:
    """The settings json.loads's default decoder gives its scanner."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


_scan_once = _c_make_scanner(_JSONContext) if _c_make_scanner else None


def _loads(line):
    """json.loads(line) for bytes. A line that opens an object with a
    second byte other than NUL is UTF-8 to json.detect_encoding, and then
    json.loads is exactly: decode with surrogatepass, scan one value at
    0, allow only JSON whitespace after it. Whatever else, and any
    failure, is left to json.loads, which raises its own error."""
    if _scan_once is not None and line[:1] == b"{" and line[1:2] != b"\0":
        try:
            s = line.decode("utf-8", "surrogatepass")
            obj, end = _scan_once(s, 0)
            if end == len(s) or not s[end:].strip(" \t\n\r"):
                return obj
        except Exception:   # json.loads says what was wrong
            pass
    import json
    return json.loads(line)


# ---- The daemon's socket ------------------------------------------------------

def socket_path(path=None):
    """The socket to use, as libhconn chooses it: path when given, else
    $HCONN_SOCKET, else $XDG_RUNTIME_DIR/hconnd.sock when it exists (a
    user daemon), else the system daemon's socket."""
    if path:
        return os.fspath(path)
    env = os.environ.get("HCONN_SOCKET")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        p = os.path.join(xdg, "hconnd.sock")
        if os.path.exists(p):
            return p
    return _default_socket()


def _default_socket():
    """The build's default socket (hconn/_build.py, written by the build
    and installed with the package; the source tree has none), imported
    only when no path nor $HCONN_SOCKET names one."""
    global DEFAULT_SOCKET
    try:
        return DEFAULT_SOCKET
    except NameError:
        pass
    try:
        from hconn._build import DEFAULT_SOCKET as path
    except ImportError:     # the source tree: the build's default
        path = "/run/hconnd/hconnd.sock"
    DEFAULT_SOCKET = path
    return path


class _Channel:
    """One Unix-socket connection to hconnd: sends lines and payloads,
    receives into one buffer and cuts it into messages.

    The socket stays blocking; waits with a local timeout go through poll.
    A send that would block reads whatever the daemon sends meanwhile into
    the buffer, so a large body can never deadlock against responses."""

    RECV = 262144

    def __init__(self, path, wait):
        self.path = path
        self.wait = wait            # seconds or None: the local wait
        self.buf = bytearray()
        self.pos = 0
        self.closed = False
        self.debuglevel = 0
        self.next_id = 1
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # A new socket is blocking unless socket.setdefaulttimeout()
            # says otherwise: no ioctl when nothing is to change.
            if wait is not None or s.gettimeout() is not None:
                s.settimeout(wait)
            s.connect(path)
            if wait is not None:
                s.settimeout(None)
        except OSError as e:
            s.close()
            raise _local_error(
                "daemon_unavailable",
                f"cannot connect to hconnd at {path}: "
                f"{e.strerror or e}") from e
        self.sock = s
        self.poller = select.poll()
        self.poller.register(s.fileno(), select.POLLIN)

    def fileno(self):
        return self.sock.fileno() if not self.closed else -1

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()

    def broken(self, name, message):
        """Closes the channel and returns the exception to raise."""
        self.close()
        return _local_error(name, message)

    # Sending --------------------------------------------------------------
    def send(self, *parts):
        """Sends the parts (bytes-like) in order; reads replies into the
        buffer while the socket is full."""
        if self.closed:
            raise _local_error("not_connected", "not connected to hconnd")
        if len(parts) > 1 and sum(len(p) for p in parts) < 65536:
            parts = (b"".join(parts),)
        for p in parts:
            view = memoryview(p).cast("B")
            while view:
                try:
                    n = self.sock.send(view, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    self._wait_writable()
                    continue
                except InterruptedError:
                    continue
                except OSError as e:
                    raise self.broken("connection_closed",
                                      f"hconnd at {self.path}: send failed: "
                                      f"{e.strerror or e}") from e
                view = view[n:]

    def _wait_writable(self):
        p = select.poll()
        p.register(self.sock.fileno(), select.POLLIN | select.POLLOUT)
        ms = None if self.wait is None else int(self.wait * 1000)
        ready = p.poll(ms)
        if not ready:
            raise self.broken("timeout", f"hconnd at {self.path} took no "
                              f"data for {self.wait:g}s")
        ev = ready[0][1]
        if ev & select.POLLIN:
            self._recv(dontwait=True)

    def send_message(self, obj, payload=None):
        line = _dumps(obj).encode() + b"\n"
        if self.debuglevel > 0:
            print("send:", line[:-1].decode())
        if payload is not None and len(payload):
            self.send(line, payload)
        else:
            self.send(line)

    # Receiving ------------------------------------------------------------
    def _recv(self, dontwait=False):
        """Reads once into the buffer; 0 at EOF."""
        if self.pos == len(self.buf):
            self.buf.clear()
            self.pos = 0
        elif self.pos > 1 << 20:
            del self.buf[:self.pos]
            self.pos = 0
        if self.wait is not None and not dontwait:
            while True:
                try:
                    ready = self.poller.poll(int(self.wait * 1000))
                    break
                except InterruptedError:
                    continue
            if not ready:
                raise self.broken("timeout", f"no reply from hconnd at "
                                  f"{self.path} within {self.wait:g}s")
        try:
            data = self.sock.recv(self.RECV,
                                  socket.MSG_DONTWAIT if dontwait else 0)
        except BlockingIOError:
            return -1
        except InterruptedError:
            return -1
        except OSError as e:
            raise self.broken("connection_closed",
                              f"hconnd at {self.path}: {e.strerror or e}"
                              ) from e
        self.buf += data
        return len(data)

    def fill(self):
        """Reads at least one more byte; EOF is an error."""
        while True:
            n = self._recv()
            if n > 0:
                return
            if n == 0:
                raise self.broken("connection_closed",
                                  f"hconnd at {self.path} closed the "
                                  "connection")

    def read_message(self):
        """The next message as a dict (a data frame's payload stays in the
        buffer for the caller)."""
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i < 0:
                if len(self.buf) - self.pos > MAX_LINE:
                    raise self.broken("bad_message", "hconnd sent a line "
                                      "over 1 MiB")
                self.fill()
                continue
            line = bytes(self.buf[self.pos:i])
            self.pos = i + 1
            if not line.strip():
                continue
            try:
                msg = _loads(line)
            except ValueError as e:
                raise self.broken("bad_message", f"hconnd sent a line that "
                                  f"is not JSON ({e})") from None
            if not isinstance(msg, dict):
                raise self.broken("bad_message",
                                  "hconnd sent a message that is not an "
                                  "object")
            if self.debuglevel > 0 and "data" not in msg:
                print("reply:", line.decode("utf-8", "replace"))
            return msg

    def skip(self, n):
        """Discards n payload bytes."""
        while n:
            avail = len(self.buf) - self.pos
            if not avail:
                self.fill()
                continue
            k = min(avail, n)
            self.pos += k
            n -= k

    def peek_reply_id(self):
        """Without waiting: the id of a complete reply line already sent by
        the daemon (reading what is there), else None."""
        if self.pos == len(self.buf):
            ready = self.poller.poll(0)
            if not ready or self._recv(dontwait=True) <= 0:
                return None
        i = self.buf.find(b"\n", self.pos)
        if i < 0:
            return None
        try:
            msg = _loads(bytes(self.buf[self.pos:i]))
        except ValueError:
            return None
        if isinstance(msg, dict) and ("error" in msg or "status" in msg):
            return msg.get("id")
        return None


def _data_length(msg, chan):
    n = msg.get("data")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise chan.broken("bad_message", f"bad data length in {msg!r}")
    return n


# ---- Headers --------------------------------------------------------------------

def _as_http_text(s):
    """A string from the daemon as http.client shows header bytes: each
    byte as ISO-8859-1 (the daemon passes valid UTF-8 through as text)."""
    if s.isascii():
        return s
    return s.encode("utf-8", "surrogateescape").decode("latin-1")


def _message(pairs):
    """An http.client.HTTPMessage of [name, value] pairs."""
    msg = HTTPMessage()
    for pair in pairs:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            msg[_as_http_text(str(pair[0]))] = _as_http_text(str(pair[1]))
    return msg


def _wire_text(b, what):
    """Header bytes as the protocol's JSON string: the daemon writes the
    string's UTF-8, so only bytes that are valid UTF-8 can be sent."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise _local_error(
            "invalid_header",
            f"{what} {b!r} is not UTF-8: hconnd sends header text as UTF-8 "
            "and cannot send other bytes") from None


def _encode(data, name='data'):
    """Call data.encode("latin-1") but show a better error message."""
    try:
        return data.encode("latin-1")
    except UnicodeEncodeError as err:
        raise UnicodeEncodeError(
            err.encoding, err.object, err.start, err.end,
            "%s (%.20r) is not valid Latin-1. Use %s.encode('utf-8') "
            "if you want to send it encoded in UTF-8." %
            (name.title(), data[err.start:err.end], name)) from None


# ---- TLS options ---------------------------------------------------------------

# Compiled on first use (by re's cache), as only a capath or an SSLContext
# needs it: a process's start does not pay for it.
_PEM_CERT = r"-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----"
_system_ders_cache = None


def _read_file(path):
    """A file's bytes, with an open, reads to the end and a close: open()
    would add an fstat, an lseek and a terminal ioctl."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts = []
        while True:
            part = os.read(fd, 65536)  # below malloc's mmap threshold
            if not part:
                return b"".join(parts)
            parts.append(part)
    finally:
        os.close(fd)


def _read_text(path, what):
    try:
        return _read_file(path).decode("ascii")
    except UnicodeDecodeError:
        raise _local_error("invalid_argument",
                           f"{what} {path}: not a PEM file") from None
    except OSError as e:
        raise _local_error("io_error",
                           f"cannot read {what} {path}: {e.strerror or e}"
                           ) from e


def _read_ca_dir(path):
    """Every certificate in a CA directory (a capath), as one PEM text."""
    seen, out = set(), []
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise _local_error("io_error", f"cannot read CA directory {path}: "
                           f"{e.strerror or e}") from e
    for name in names:
        p = os.path.join(path, name)
        if not os.path.isfile(p):
            continue
        try:
            with open(p, "rb") as f:
                text = f.read().decode("ascii", "replace")
        except OSError:
            continue
        for pem in re.findall(_PEM_CERT, text):
            if pem not in seen:
                seen.add(pem)
                out.append(pem + "\n")
    if not out:
        raise _local_error("invalid_argument",
                           f"CA directory {path} holds no certificate")
    return "".join(out)


def _system_ders():
    """The DER certificates of the system's default CA file (what
    create_default_context() loads), read once."""
    global _system_ders_cache
    if _system_ders_cache is None:
        ders = set()
        cafile = ssl.get_default_verify_paths().cafile
        if cafile:
            try:
                with open(cafile, encoding="ascii", errors="replace") as f:
                    for pem in re.findall(_PEM_CERT, f.read()):
                        ders.add(ssl.PEM_cert_to_DER_cert(pem))
            except (OSError, ValueError):
                pass
        _system_ders_cache = ders
    return _system_ders_cache


_default_ciphers_cache = None


def _allowed_verify_flags():
    """The verify_flags hconnd's verification matches (computed when an
    SSLContext is mapped: enum arithmetic is slow for a module's start)."""
    return (ssl.VERIFY_DEFAULT | ssl.VERIFY_X509_TRUSTED_FIRST
            | getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
            | getattr(ssl, "VERIFY_X509_STRICT", 0))


def _unsupported(what):
    return _local_error("unsupported",
                        f"cannot honour the SSLContext's {what} through "
                        "hconnd")


def _context_tls(ctx):
    """The protocol's tls options for what an SSLContext asks; an
    HconnUnsupportedError for any setting that cannot be mapped."""
    global _default_ciphers_cache
    if not isinstance(ctx, ssl.SSLContext):
        raise TypeError(f"context must be an ssl.SSLContext, not {ctx!r}")
    if ctx.protocol == ssl.PROTOCOL_TLS_SERVER:
        raise _unsupported("protocol (a server context)")
    out = {}
    verify = ctx.verify_mode != ssl.CERT_NONE
    if ctx.verify_mode == ssl.CERT_OPTIONAL:
        raise _unsupported("verify_mode CERT_OPTIONAL (hconnd verifies or "
                           "does not)")
    if verify and not ctx.check_hostname:
        raise _unsupported("check_hostname=False with verification on "
                           "(hconnd verifies the chain and the name "
                           "together)")
    if not verify:
        out["verify"] = False
    mv = ctx.minimum_version
    if mv == ssl.TLSVersion.TLSv1_3 or ctx.options & ssl.OP_NO_TLSv1_2:
        out["min_version"] = "1.3"
    elif mv == ssl.TLSVersion.TLSv1_2:
        out["min_version"] = "1.2"
    # Lower minimums: hconnd's own minimum (1.2 or above) is stricter.
    if ctx.maximum_version not in (ssl.TLSVersion.MAXIMUM_SUPPORTED,
                                   ssl.TLSVersion.TLSv1_3) \
            or ctx.options & ssl.OP_NO_TLSv1_3:
        raise _unsupported("maximum TLS version")
    if ctx.verify_flags & ~_allowed_verify_flags():
        raise _unsupported(f"verify_flags {ctx.verify_flags!r}")
    if getattr(ctx, "keylog_filename", None):
        raise _unsupported("keylog_filename")
    if _default_ciphers_cache is None:
        _default_ciphers_cache = {c["name"] for c in ssl.SSLContext(
            ssl.PROTOCOL_TLS_CLIENT).get_ciphers()}
    if {c["name"] for c in ctx.get_ciphers()} != _default_ciphers_cache:
        raise _unsupported("ciphers (set_ciphers)")
    if verify:
        ders = ctx.get_ca_certs(binary_form=True)
        if not ders:
            raise _unsupported(
                "trust anchors: it holds no CA certificate Python can read "
                "back (a capath loads them lazily); pass cafile= or capath= "
                "to HTTPSConnection")
        system = _system_ders()
        if not (len(ders) == len(system) and set(ders) == system):
            out["ca_pem"] = "".join(ssl.DER_cert_to_PEM_cert(d)
                                    for d in ders)
    return out


def _tls_options(context=None, check_hostname=None, cafile=None,
                 capath=None, cert_file=None, key_file=None,
                 server_name=None):
    """The "tls" object of every request of an HTTPSConnection."""
    if context is None and check_hostname is None:
        if ssl._create_default_https_context is ssl.create_default_context:
            out = {}
        else:       # a program that swapped in another default context
            out = _context_tls(ssl._create_default_https_context())
    else:
        if context is None:
            context = ssl._create_default_https_context()
        if check_hostname is not None:
            context.check_hostname = check_hostname
        out = _context_tls(context)
    if cafile is not None or capath is not None:
        pems = []
        if cafile is not None:
            pems.append(_read_text(cafile, "CA file"))
        if capath is not None:
            pems.append(_read_ca_dir(capath))
        out["ca_pem"] = "".join(pems)
    if cert_file is not None:
        cert = _read_text(cert_file, "client certificate")
        out["cert_pem"] = cert
        if key_file is not None:    # else the key is in the cert file
            out["key_pem"] = _read_text(key_file, "client key")
    elif key_file is not None:
        raise _local_error("invalid_argument", "key_file without cert_file")
    if server_name is not None:
        out["server_name"] = server_name
    return out


# ---- The response ------------------------------------------------------------------

class HTTPResponse(_hc.HTTPResponse):
    """A response read from hconnd: http.client.HTTPResponse's interface
    (an io.BufferedIOBase), plus .reused and .trailers."""

    def __init__(self, chan, rid, head, method, conn=None, debuglevel=0):
        io.BufferedIOBase.__init__(self)
        self._chan = chan
        self._rid = rid
        self._conn = conn
        self._owns = False          # close the channel when done
        self._release = None        # or hand it to this, when done
        self._eof = False           # isclosed(): the body is over
        self._left = 0              # payload bytes left in the data frame
        self.debuglevel = debuglevel
        self._method = method
        self.url = None
        self.code = self.status = head.get("status")    # as begin() sets
        self.reason = head.get("reason") or ""
        self.version = head.get("version", 11)
        self.headers = self.msg = _message(head.get("headers") or [])
        length = head.get("length")
        self.length = length if isinstance(length, int) else None
        self.reused = bool(head.get("reused"))
        self.trailers = None
        self.proxy_response = head.get("proxy_response")
        tr_enc = self.headers.get("transfer-encoding")
        self.chunked = bool(tr_enc and tr_enc.lower() == "chunked")
        self.chunk_left = None
        if self.version == 20:
            # HTTP/2 has no Connection: close nor a body ended by closing:
            # http.client's rules (written for 1.0 and 1.1) would drop the
            # channel to hconnd after every response.
            self.will_close = False
        else:
            self.will_close = self._check_close()
        if not self.will_close and not self.chunked and \
                self.length is None and self.version != 20:
            self.will_close = True
        if debuglevel > 0:
            print("reply:", repr(f"HTTP/{self.version / 10:.1f} "
                                 f"{self.status} {self.reason}"))
            for hdr, val in self.headers.items():
                print("header:", hdr + ":", val)

    # The body ----------------------------------------------------------------
    def _next_frame(self):
        """Reads the next message of this response: a data frame (its
        payload stays buffered), the end, or an error (raised)."""
        chan = self._chan
        try:
            msg = chan.read_message()
        except HconnError:      # the daemon connection is gone
            self._eof = True
            raise
        if msg.get("id") != self._rid:
            raise chan.broken("bad_message",
                              f"hconnd sent {msg!r} inside the response to "
                              f"request {self._rid}")
        if "error" in msg:
            self._finish()
            raise _exception(msg)   # the caller sets .partial
        if "data" in msg and "status" not in msg:
            self._left = _data_length(msg, chan)
            return
        if msg.get("end") is True:
            self.trailers = _message(msg.get("trailers") or [])
            self._finish()
            return
        raise chan.broken("bad_message",
                          f"unexpected message in a response: {msg!r}")

    def _finish(self):
        self._eof = True
        self._left = 0
        if self._owns:
            # A channel at a message boundary may serve other requests
            # (hconn.requests keeps such channels); else it is closed.
            release, self._release = self._release, None
            chan = self._chan
            if release is not None and not chan.closed \
                    and chan.pos == len(chan.buf):
                release(chan)
            else:
                chan.close()

    def _avail(self):
        """Body bytes buffered and ready (> 0), reading frames as needed;
        0 at the end of the body."""
        while True:
            if self._eof:
                return 0
            if self._left:
                chan = self._chan
                n = len(chan.buf) - chan.pos
                if not n:
                    try:
                        chan.fill()
                    except HconnError:
                        self._eof = True
                        raise
                    n = len(chan.buf) - chan.pos
                return min(n, self._left)
            self._next_frame()

    def _take(self, n):
        chan = self._chan
        data = bytes(chan.buf[chan.pos:chan.pos + n])
        self._consumed(n)
        return data

    def _consumed(self, n):
        self._chan.pos += n
        self._left -= n
        if self.length is not None:
            self.length -= n
            if self.length <= 0 and not self._left:
                # The end frame follows at once: take it now, as
                # http.client closes once length bytes are read.
                self._next_frame()

    def read(self, amt=None):
        if self._eof:
            return b""
        if amt is not None and amt >= 0:
            buf = bytearray(amt)
            n = self.readinto(buf)
            del buf[n:]
            return bytes(buf)
        parts = []
        try:
            while True:
                n = self._avail()
                if not n:
                    break
                parts.append(self._take(n))
        except IncompleteRead as e:
            e.partial = b"".join(parts)
            e.args = (e.partial,)
            raise
        return b"".join(parts)

    def readinto(self, b):
        if self._eof:
            return 0
        view = memoryview(b).cast("B")
        got = 0
        try:
            while got < len(view):
                n = self._avail()
                if not n:
                    break
                n = min(n, len(view) - got)
                chan = self._chan
                view[got:got + n] = chan.buf[chan.pos:chan.pos + n]
                got += n
                self._consumed(n)
        except IncompleteRead as e:
            e.partial = bytes(view[:got])
            e.args = (e.partial,)
            raise
        return got

    def read1(self, n=-1):
        if self._eof or n == 0:
            return b""
        avail = self._avail()
        if n is not None and n >= 0:
            avail = min(avail, n)
        return self._take(avail) if avail else b""

    def peek(self, n=-1):
        if self._eof:
            return b""
        avail = self._avail()
        chan = self._chan
        return bytes(chan.buf[chan.pos:chan.pos + avail])

    def readline(self, limit=-1):
        if self._eof or limit == 0:
            return b""
        if limit is None:
            limit = -1
        parts = []
        got = 0
        try:
            while limit < 0 or got < limit:
                avail = self._avail()
                if not avail:
                    break
                if limit >= 0:
                    avail = min(avail, limit - got)
                chan = self._chan
                i = chan.buf.find(b"\n", chan.pos, chan.pos + avail)
                if i >= 0:
                    parts.append(self._take(i + 1 - chan.pos))
                    break
                parts.append(self._take(avail))
                got += avail
        except IncompleteRead as e:
            e.partial = b"".join(parts)
            e.args = (e.partial,)
            raise
        return b"".join(parts)

    def readlines(self, hint=-1):
        return io.BufferedIOBase.readlines(self, hint)

    def __iter__(self):
        return io.BufferedIOBase.__iter__(self)

    # State ---------------------------------------------------------------------
    def isclosed(self):
        """True once the whole body was read (or the response closed), as
        http.client."""
        return self._eof

    def fileno(self):
        return self._chan.fileno()

    def flush(self):
        io.BufferedIOBase.flush(self)

    def readable(self):
        return True

    def close(self):
        try:
            io.BufferedIOBase.close(self)
        finally:
            if not self._eof:
                self._abandon()

    def _abandon(self):
        """Closed before its end: skip the rest when pipelined responses
        follow on the channel, else drop the channel (the daemon then ends
        the request; the connection reconnects for the next one)."""
        self._eof = True
        conn = self._conn
        chan = self._chan
        if chan.closed:
            return
        if conn is not None and conn._chan is chan and conn._pending \
                and not self._owns:
            try:
                self._eof = False
                while self._avail():
                    n = min(self._left, len(chan.buf) - chan.pos)
                    self._consumed(n)
            except (HconnError, OSError):
                pass
            self._eof = True
            return
        chan.close()

    def get_proxy_response_headers(self):
        p = self.proxy_response
        return _message(p.get("headers") or []) if p else None

    def __repr__(self):
        return (f"<hconn.client.HTTPResponse {self.status} {self.reason!r} "
                f"reused={self.reused}>")


class _Request:
    """A request sent to the daemon whose response is not yet taken."""
    __slots__ = ("id", "method", "first", "body_open", "length", "sent",
                 "stopped")

    def __init__(self, rid, method):
        self.id = rid
        self.method = method
        self.first = None       # a reply read early (expect_continue)
        self.body_open = False  # streamed body not yet ended
        self.length = None      # declared streamed length
        self.sent = 0
        self.stopped = False    # the daemon answered: body frames dropped


# ---- Connections ---------------------------------------------------------------------

class HTTPConnection:
    """http.client.HTTPConnection through hconnd. socket_path: the daemon's
    socket (default: socket_path())."""

    _http_vsn = 11
    _http_vsn_str = 'HTTP/1.1'
    response_class = HTTPResponse
    default_port = HTTP_PORT
    auto_open = 1
    debuglevel = 0
    _tls = None

    @staticmethod
    def _is_textIO(stream):
        return isinstance(stream, io.TextIOBase)

    @staticmethod
    def _get_content_length(body, method):
        """Content-Length as http.client computes it (None: unknown, the
        body goes chunked)."""
        if body is None:
            if method.upper() in _METHODS_EXPECTING_BODY:
                return 0
            return None
        if hasattr(body, 'read'):
            return None
        try:
            return memoryview(body).nbytes
        except TypeError:
            pass
        if isinstance(body, str):
            return len(body)
        return None

    def __init__(self, host, port=None, timeout=socket._GLOBAL_DEFAULT_TIMEOUT,
                 source_address=None, blocksize=8192, *, socket_path=None,
                 http_version=None):
        self._source = _source_field(source_address)
        self.http_version = _http_version_field(http_version)
        self.timeout = timeout
        self.source_address = source_address
        self.blocksize = blocksize
        self.socket_path = socket_path
        self._chan = None
        self._response = None
        self._state = _CS_IDLE
        self._method = None
        self._tunnel_host = None
        self._tunnel_port = None
        self._tunnel_headers = {}
        self._pending = collections.deque()
        self._building = None       # [obj, headers] between putrequest ...
        self._open = None           # the _Request whose body send() feeds
        (self.host, self.port) = self._get_hostport(host, port)
        self._validate_host(self.host)

    # http.client's helpers -----------------------------------------------------
    def _get_hostport(self, host, port):
        if port is None:
            i = host.rfind(':')
            j = host.rfind(']')         # ipv6 addresses have [...]
            if i > j:
                try:
                    port = int(host[i + 1:])
                except ValueError:
                    if host[i + 1:] == "":
                        port = self.default_port
                    else:
                        raise InvalidURL("nonnumeric port: '%s'"
                                         % host[i + 1:])
                host = host[:i]
            else:
                port = self.default_port
            if host and host[0] == '[' and host[-1] == ']':
                host = host[1:-1]
        return (host, port)

    def _validate_method(self, method):
        match = _contains_disallowed_method_pchar_re.search(method)
        if match:
            raise ValueError(
                f"method can't contain control characters. {method!r} "
                f"(found at least {match.group()!r})")

    def _validate_path(self, url):
        match = _contains_disallowed_url_pchar_re.search(url)
        if match:
            raise InvalidURL(f"URL can't contain control characters. {url!r} "
                             f"(found at least {match.group()!r})")

    def _validate_host(self, host):
        match = _contains_disallowed_url_pchar_re.search(host)
        if match:
            raise InvalidURL(f"URL can't contain control characters. {host!r} "
                             f"(found at least {match.group()!r})")

    def set_debuglevel(self, level):
        self.debuglevel = level
        if self._chan is not None:
            self._chan.debuglevel = level

    def set_tunnel(self, host, port=None, headers=None):
        """Tunnel through the HTTP proxy this connection was made for:
        every request is sent with CONNECT host:port by hconnd."""
        if self._chan is not None and self._pending:
            raise RuntimeError("Can't set up tunnel for established "
                               "connection")
        self._tunnel_host, self._tunnel_port = self._get_hostport(host, port)
        self._tunnel_headers = dict(headers) if headers else {}
        self._proxy_response = None

    def get_proxy_response_headers(self):
        """The proxy's answer to CONNECT (an HTTPMessage), once a response
        came through the tunnel; None otherwise."""
        p = getattr(self, "_proxy_response", None)
        return _message(p.get("headers") or []) if p else None

    @property
    def sock(self):
        """The socket to hconnd (None when not connected)."""
        c = self._chan
        return None if c is None or c.closed else c.sock

    @sock.setter
    def sock(self, value):
        if value is None:
            self.close()

    def _local_wait(self):
        t = self._daemon_timeout()
        return None if t is None else t * 2 + 1

    def _daemon_timeout(self):
        t = self.timeout
        if t is socket._GLOBAL_DEFAULT_TIMEOUT:
            t = socket.getdefaulttimeout()
        if t is None or t <= 0:
            return None
        return min(float(t), MAX_TIMEOUT)

    def connect(self):
        """Connects to hconnd (the origin is reached per request)."""
        if self._chan is not None and not self._chan.closed:
            return
        self._chan = _Channel(socket_path(self.socket_path),
                              self._local_wait())
        self._chan.debuglevel = self.debuglevel
        self._pending.clear()

    def close(self):
        """Closes the connection to hconnd; a response still being read
        keeps it until its end. The next request reconnects."""
        self._state = _CS_IDLE
        self._building = None
        self._open = None
        self._pending.clear()
        chan, self._chan = self._chan, None
        response, self._response = self._response, None
        if response is not None and not response._eof \
                and response._chan is chan:
            response._owns = True      # the response finishes it
            response._conn = None
        elif chan is not None:
            chan.close()

    def _state_name(self):
        if self._state == _CS_REQ_STARTED:
            return _CS_REQ_STARTED
        return _CS_REQ_SENT if self._pending else _CS_IDLE

    # Building a request ----------------------------------------------------------
    def putrequest(self, method, url, skip_host=False,
                   skip_accept_encoding=False):
        if self._response and self._response.isclosed():
            self._response = None
        if self._state == _CS_REQ_STARTED:
            raise CannotSendRequest(self._state)
        if self._open is not None:
            raise CannotSendRequest(
                f"{_CS_REQ_SENT}: the body of the previous request is still "
                "open (send() the rest of its Content-Length)")
        self._validate_method(method)
        self._method = method
        url = url or '/'
        self._validate_path(url)
        ('%s %s %s' % (method, url, self._http_vsn_str)).encode('ascii')
        self._state = _CS_REQ_STARTED
        headers = []
        self._building = (method, url, headers)
        if not skip_host:
            netloc = ''
            if url.startswith('http'):
                from urllib.parse import urlsplit
                nil, netloc, nil, nil, nil = urlsplit(url)
            if netloc:
                try:
                    netloc_enc = netloc.encode("ascii")
                except UnicodeEncodeError:
                    netloc_enc = netloc.encode("idna")
                self.putheader('Host', netloc_enc)
            else:
                if self._tunnel_host:
                    host, port = self._tunnel_host, self._tunnel_port
                else:
                    host, port = self.host, self.port
                try:
                    host_enc = host.encode("ascii")
                except UnicodeEncodeError:
                    host_enc = host.encode("idna")
                if ':' in host:
                    host_enc = b'[' + host_enc + b']'
                if port == self.default_port:
                    self.putheader('Host', host_enc)
                else:
                    self.putheader('Host', "%s:%s"
                                   % (host_enc.decode("ascii"), port))
        if not skip_accept_encoding:
            self.putheader('Accept-Encoding', 'identity')

    def putheader(self, header, *values):
        if self._state != _CS_REQ_STARTED:
            raise CannotSendHeader()
        if hasattr(header, 'encode'):
            header = header.encode('ascii')
        if not _is_legal_header_name(header):
            raise ValueError('Invalid header name %r' % (header,))
        values = list(values)
        for i, one_value in enumerate(values):
            if hasattr(one_value, 'encode'):
                values[i] = one_value.encode('latin-1')
            elif isinstance(one_value, int):
                values[i] = str(one_value).encode('ascii')
            if _is_illegal_header_value(values[i]):
                raise ValueError('Invalid header value %r' % (values[i],))
        value = b' '.join(values)
        if b'\r' in value or b'\n' in value:
            value = re.sub(_FOLD, b' ', value)
        self._building[2].append([header.decode('latin-1'),
                                  _wire_text(value, f"header {header!r}")])

    def endheaders(self, message_body=None, *, encode_chunked=False,
                   expect_continue=False):
        if self._state != _CS_REQ_STARTED:
            raise CannotSendHeader()
        method, url, headers = self._building
        self._building = None
        self._state = _CS_IDLE
        self._send_request_head(method, url, headers, message_body,
                                encode_chunked, expect_continue)

    def request(self, method, url, body=None, headers={}, *,
                encode_chunked=False, expect_continue=False):
        """http.client's request(); expect_continue=True sends Expect:
        100-continue and holds a streamed body until the origin agrees."""
        header_names = frozenset(k.lower() for k in headers)
        skips = {}
        if 'host' in header_names:
            skips['skip_host'] = 1
        if 'accept-encoding' in header_names:
            skips['skip_accept_encoding'] = 1
        self.putrequest(method, url, **skips)
        try:
            if 'content-length' not in header_names:
                if 'transfer-encoding' not in header_names:
                    encode_chunked = False
                    content_length = self._get_content_length(body, method)
                    if content_length is None:
                        if body is not None:
                            if self.debuglevel > 0:
                                print('Unable to determine size of %r'
                                      % body)
                            encode_chunked = True
                            self.putheader('Transfer-Encoding', 'chunked')
                    else:
                        self.putheader('Content-Length', str(content_length))
            else:
                encode_chunked = False
            for hdr, value in headers.items():
                self.putheader(hdr, value)
            if isinstance(body, str):
                body = _encode(body, 'body')
        except BaseException:
            self._state = _CS_IDLE
            self._building = None
            raise
        self.endheaders(body, encode_chunked=encode_chunked,
                        expect_continue=expect_continue)

    def _send_request_head(self, method, url, headers, body, encode_chunked,
                           expect_continue):
        names = {n.lower(): v for n, v in headers}
        obj = {"method": method}
        if self._tunnel_host:
            obj["host"], obj["port"] = self._tunnel_host, self._tunnel_port
            proxy = {"host": self.host, "port": self.port}
            if self._tunnel_headers:
                proxy["headers"] = [
                    [str(k), _wire_text(_encode(str(v), 'header')
                                        if not isinstance(v, bytes) else v,
                                        f"tunnel header {k!r}")]
                    for k, v in self._tunnel_headers.items()]
            obj["proxy"] = proxy
        else:
            obj["host"], obj["port"] = self.host, self.port
        if self._tls is not None:
            obj["tls"] = self._tls
        obj["target"] = url
        obj["headers"] = headers
        obj["skip_host"] = True
        obj["skip_accept_encoding"] = True
        t = self._daemon_timeout()
        if t is not None:
            obj["timeout"] = t
        else:
            # http.client's default: reads wait for ever (within the
            # daemon's max_read_timeout, when it sets one).
            obj["read_timeout"] = 0
        if self._source is not None:
            obj["source_address"] = self._source
        if self.http_version is not None:
            obj["http_version"] = self.http_version
        if expect_continue:
            obj["expect_continue"] = True

        # The body: inline bytes, or a stream of data frames.
        inline = None
        stream = None
        length = None
        if "transfer-encoding" in names:
            if not encode_chunked:
                raise _local_error(
                    "unsupported",
                    "a caller's Transfer-Encoding header needs "
                    "encode_chunked=True: hconnd chunk-encodes the raw body "
                    "itself and cannot pass bytes the caller encoded through "
                    "a shared connection")
            stream = () if body is None else body
        elif "content-length" in names:
            cl = names["content-length"].strip()
            if not cl.isdigit() or not cl.isascii():
                raise _local_error("invalid_header",
                                   f"Content-Length {cl!r} is not a number")
            length = int(cl)
            if body is not None and _is_bytes_like(body) \
                    and memoryview(body).nbytes == length \
                    and length <= _INLINE_MAX:
                inline = body
            else:
                stream = () if body is None else body
        elif body is not None:
            if _is_bytes_like(body) and memoryview(body).nbytes <= _INLINE_MAX:
                inline = body
            else:
                stream = body
        if inline is not None:
            inline = memoryview(inline).cast("B")
            obj["data"] = len(inline)
        elif stream is not None:
            obj["body"] = "stream"
            if length is not None:
                obj["length"] = length

        if self._chan is None or self._chan.closed:
            if self._chan is not None and self._pending:
                self._pending.clear()
            if self.auto_open:
                self.connect()
            else:
                raise NotConnected()
        chan = self._chan
        rid = chan.next_id
        chan.next_id += 1
        obj = {"id": rid, **obj}
        req = _Request(rid, method)
        self._pending.append(req)
        try:
            chan.send_message(obj, inline)
            if stream is not None:
                req.body_open = True
                req.length = length
                if expect_continue and len(self._pending) == 1 and \
                        (self._response is None or self._response._eof):
                    self._await_continue(req)
                self._open = req
                self._send_body(req, stream)
                if length is None or req.sent >= length:
                    self._end_body(req)
        except BaseException:
            self._abort_body(req)
            raise

    def _abort_body(self, req):
        """After a failure while req's body was being sent (the body's
        source raised, or the daemon went away): the daemon connection is
        closed, so the origin sees the request cut off, never complete."""
        chan = self._chan
        if req.body_open and chan is not None and not chan.closed:
            chan.close()
        if chan is None or chan.closed:
            self._pending.clear()
            self._open = None
            if self._response is not None and self._response._chan is chan:
                self._response = None   # its rest went with the channel

    def _await_continue(self, req):
        """expect_continue with a streamed body: the daemon's continue, or
        the final answer (kept for getresponse; the body is not sent)."""
        chan = self._chan
        while True:
            msg = chan.read_message()
            if msg.get("id") != req.id:
                raise chan.broken("bad_message", f"hconnd sent {msg!r} "
                                  f"while request {req.id} waited for "
                                  "100-continue")
            if msg.get("continue") is True:
                return
            req.first = msg
            req.stopped = True
            return

    def _send_body(self, req, body):
        """Sends body (bytes-like, file or iterable) as data frames."""
        for chunk in self._body_chunks(body):
            if req.stopped:
                return
            self._send_frame(req, chunk)

    def _body_chunks(self, data):
        if hasattr(data, "read"):
            encode = self._is_textIO(data)
            if encode and self.debuglevel > 0:
                print("encoding file using iso-8859-1")
            while True:
                datablock = data.read(self.blocksize)
                if not datablock:
                    break
                if encode:
                    datablock = datablock.encode("iso-8859-1")
                yield datablock
            return
        if _is_bytes_like(data):
            yield data
            return
        if isinstance(data, str):
            yield _encode(data)
            return
        if isinstance(data, Iterable) or hasattr(data, "__iter__"):
            for chunk in data:
                if isinstance(chunk, str):
                    raise TypeError("a bytes-like object is required, not "
                                    "'str'")
                if not chunk:
                    if self.debuglevel > 0:
                        print('Zero length chunk ignored')
                    continue
                yield chunk
            return
        raise TypeError("data should be a bytes-like object or an iterable, "
                        "got %r" % type(data))

    def _send_frame(self, req, chunk):
        chan = self._chan
        view = memoryview(chunk).cast("B")
        if not len(view):
            return
        # When this request is the only one outstanding, an answer that
        # arrives while the body goes (a refusal, an early 413) stops it.
        if len(self._pending) == 1 and self._pending[0] is req \
                and (self._response is None or self._response._eof) \
                and chan.peek_reply_id() == req.id:
            req.stopped = True
            return
        chan.send_message({"id": req.id, "data": len(view)}, view)
        req.sent += len(view)
        if req.length is not None and req.sent >= req.length:
            self._end_body(req)

    def _end_body(self, req):
        """The end frame of req's streamed body, also after an error: the
        stream stays open under its id until then (PROTOCOL.md 3.4)."""
        if not req.body_open:
            return
        req.body_open = False
        if self._open is req:
            self._open = None
        self._chan.send_message({"id": req.id, "end": True})

    def send(self, data):
        """Sends more of the open request body (after endheaders with a
        Content-Length or encode_chunked=True): bytes, a file or an
        iterable."""
        req = self._open
        if req is None or not req.body_open:
            raise CannotSendRequest(
                "no request body is open: give Content-Length or "
                "Transfer-Encoding before endheaders() to send() a body")
        if self.debuglevel > 0:
            print("send:", repr(data))
        try:
            self._send_body(req, data)
            if req.length is not None and req.sent >= req.length:
                self._end_body(req)
        except BaseException:
            self._abort_body(req)
            raise

    # Responses ---------------------------------------------------------------------
    def getresponse(self):
        if self._response and self._response.isclosed():
            self._response = None
        if self._state == _CS_REQ_STARTED or not self._pending \
                or self._response:
            raise ResponseNotReady(self._state_name())
        req = self._pending[0]
        chan = self._chan
        try:
            # A body still open ends here; one shorter than its declared
            # length draws the daemon's body_length error.
            self._end_body(req)
            self._pending.popleft()
            msg = req.first or self._read_reply(req)
            while msg.get("continue") is True:
                msg = self._read_reply(req)
        except BaseException:
            if chan.closed:
                self._pending.clear()
                self._open = None
            raise
        if "error" in msg:
            raise _exception(msg)
        if "proxy_response" in msg:
            self._proxy_response = msg["proxy_response"]
        response = self.response_class(chan, req.id, msg, req.method, self,
                                       self.debuglevel)
        if response.will_close and not self._pending:
            # As http.client passes the socket to such a response: it reads
            # on; the next request opens a new connection to hconnd.
            response._owns = True
            response._conn = None
            self._chan = None
            if response._eof:
                chan.close()
        elif not response._eof:
            self._response = response
        return response

    def _read_reply(self, req):
        """The next reply about req, skipping stray replies about earlier
        requests (frames that crossed an early answer)."""
        chan = self._chan
        while True:
            msg = chan.read_message()
            rid = msg.get("id")
            if rid == req.id or ("error" in msg and rid is None):
                if "data" in msg and "status" not in msg \
                        and "error" not in msg:
                    raise chan.broken("bad_message",
                                      f"data before the head of request "
                                      f"{req.id}")
                return msg
            if isinstance(rid, int) and rid < req.id:
                if "data" in msg and "error" not in msg:
                    chan.skip(_data_length(msg, chan))
                continue
            raise chan.broken("bad_message", f"hconnd answered {msg!r} while "
                              f"request {req.id} was expected")


def _http_version_field(http_version):
    """The request's "http_version" for the http_version= keyword (None:
    the field is left out, which means "auto"); ValueError for a value
    the protocol does not have."""
    if http_version is None or http_version == "auto":
        return None
    if http_version in ("1.1", "2"):
        return http_version
    raise ValueError(f"http_version must be None, \"auto\", \"1.1\" or "
                     f"\"2\", not {http_version!r}")


def _source_field(source_address):
    """http.client's source_address (host, port) as the request field
    [host, port] hconnd binds its connections to; None for none. The host
    must be an address literal (the daemon resolves no names for it)."""
    if source_address is None:
        return None
    try:
        host, port = source_address
    except (TypeError, ValueError):
        raise TypeError("source_address must be a (host, port) tuple, not "
                        f"{source_address!r}") from None
    host = host or ""
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise _local_error(
                "invalid_argument",
                f"source_address {host!r} is not an IPv4 or IPv6 address "
                "(hconnd binds to addresses, not names)") from None
    if not isinstance(port, int) or isinstance(port, bool) \
            or not 0 <= port <= 65535:
        raise _local_error("invalid_argument", f"source port {port!r} is not "
                           "a port from 0 to 65535")
    if not host and not port:
        return None
    return [host, port]


def _is_bytes_like(obj):
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return True
    if hasattr(obj, "read") or isinstance(obj, str):
        return False
    try:
        memoryview(obj)
        return True
    except TypeError:
        return False


class HTTPSConnection(HTTPConnection):
    """http.client.HTTPSConnection through hconnd: TLS is done by the
    daemon, with the options of context (mapped, see _context_tls), or
    cafile / capath / cert_file / key_file read here and sent as
    content."""

    default_port = HTTPS_PORT

    def __init__(self, host, port=None, key_file=None, cert_file=None,
                 timeout=socket._GLOBAL_DEFAULT_TIMEOUT,
                 source_address=None, *, context=None, check_hostname=None,
                 blocksize=8192, cafile=None, capath=None, server_name=None,
                 socket_path=None, http_version=None):
        super().__init__(host, port, timeout, source_address,
                         blocksize=blocksize, socket_path=socket_path,
                         http_version=http_version)
        self.key_file = key_file
        self.cert_file = cert_file
        self._context = context
        self._tls = _tls_options(context, check_hostname, cafile, capath,
                                 cert_file, key_file, server_name)
