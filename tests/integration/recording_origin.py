"""recording_origin.py — an HTTP/1.1 origin that records exactly what it
received and answers each request with proof of it.

    with RecordingOrigin() as o:
        ... o.port, o.url("/x"), o.requests, o.connections, o.problems

Every connection gets a thread. Each request is parsed strictly (RFC 9112:
request line `METHOD SP TARGET SP HTTP/1.1`, field lines `name:OWS value
OWS` with token names and no CR, LF or NUL in values, no obs-fold, at most
one framing: Content-Length digits or Transfer-Encoding exactly `chunked`,
never both) and recorded byte for byte: the raw head, the fields in order,
the body bytes. Anything that is not a valid request is a *problem*
(.problems): the connection gets a 400 and is closed, and a test that
expects well-formed upstream traffic fails on it.

Each answer proves what it answers. Its head carries

    X-Echo-Nonce   the request's X-Nonce value ("none" without one,
                   the values joined by "," with several)
    X-Echo-Token   sha256 of the raw head and the body, 32 hex digits
    X-Echo-Method, X-Echo-Target, X-Echo-Body (sha256 of the body, hex),
    X-Echo-Length (body length), X-Echo-Conn (connection index)

and, when it has a body, the body is one JSON object with the same fields
(`nonce`, `token`, `method`, `target`, `body_sha256`, `body_len`, `conn`)
plus `pad`: a string of `pad` bytes derived from the token (pad_bytes),
so a body spliced from two answers cannot pass for one.

How to answer is up to the request's `X-Want` field (comma-separated
words), so a test that drives the origin through a proxy decides it per
request:

    chunked      the body in chunks, with a trailer field
    pad=N        N bytes of padding in the body
    204, 304     that status, no body
    close        `Connection: close`, then close the connection
    slow=MS      wait MS milliseconds before answering
    hold         never answer; wait for the peer to close (recorded)
    stray        after a HEAD, 204 or 304 answer, in the same write,
                 the bytes of a whole second response (nonce
                 "stray-<nonce>"): an origin breaking the protocol; the
                 proxy must never hand them to anyone
    late         (with stray) the stray bytes in a write of their own,
                 30 ms later, when no request came meanwhile
    split        (with stray) the stray bytes in a write of their own at
                 once (see _send_late)
    417          with `Expect: 100-continue`: answer 417 at once, never
                 read the body, close
    no100        with `Expect: 100-continue`: send no 100 Continue (the
                 proxy sends the body after its own timeout)

With `Expect: 100-continue` and no 417/no100, a `100 Continue` goes before
the body is read. HEAD answers carry the Content-Length the GET would
have. A request whose peer closes mid-head or mid-body is recorded with
complete=False (a "cut" request). `Connection: close` in a request is
honoured (answer, then close).

Python 3.11 stdlib only.
"""

import contextlib
import hashlib
import json
import re
import select
import socket
import threading
import time

from harness import LoopbackServer  # noqa: E402

TCHAR = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
MAX_HEAD = 1 << 20
MAX_BODY = 64 << 20


class OriginProblem(Exception):
    """The bytes on a connection are not a valid HTTP/1.1 request."""


class _Closed(Exception):
    """The peer closed (or reset) the connection."""


def pad_bytes(token, n):
    """n bytes of padding derived from token (hex of chained sha256)."""
    out = bytearray()
    h = token.encode()
    while len(out) < n:
        h = hashlib.sha256(h).hexdigest().encode()
        out += h
    return bytes(out[:n])


def header_safe(s):
    """s with every byte outside printable ASCII percent-encoded, so that
    any target or nonce can be echoed in a header field (a target never
    holds such bytes, so the echo of a valid one is the target itself)."""
    out = []
    for b in s.encode("latin-1", "replace"):
        out.append(chr(b) if 0x21 <= b <= 0x7e else "%%%02X" % b)
    return "".join(out)


class Request:
    """One request as the origin parsed it."""

    def __init__(self, conn, index, method, target, version, headers, raw_head):
        self.conn = conn              # OriginConn.index
        self.index = index            # position on its connection
        self.method = method          # str (latin-1 of the bytes)
        self.target = target
        self.version = version
        self.headers = headers        # [(name, value)] str, as received
        self.raw_head = raw_head      # bytes, request line to empty line
        self.body = b""
        self.complete = False         # head and body fully received
        self.token = None
        self.answered = False         # the answer was written in full
        self.rejected = False         # answered 417, body never read
        self.stray_late = None        # stray bytes sent after its answer in
                                      # a write of their own (_send_late)
        self.stray_time = None        # when those were sent
        self.held = False             # X-Want: hold
        self.released = None          # hold: monotonic time the peer closed
        self.time = time.monotonic()

    def values(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name):
        v = self.values(name)
        return v[0] if v else None

    @property
    def nonces(self):
        return self.values("X-Nonce")

    @property
    def wants(self):
        words = []
        for v in self.values("X-Want"):
            words += [w.strip() for w in v.split(",") if w.strip()]
        return words

    def __repr__(self):
        return (f"<{self.method} {self.target} conn#{self.conn}.{self.index} "
                f"nonce={','.join(self.nonces) or '-'} "
                f"{len(self.body)} body bytes"
                f"{'' if self.complete else ' CUT'}>")


class OriginConn:
    """One accepted connection."""

    def __init__(self, index, peer):
        self.index = index
        self.peer = peer
        self.requests = []
        self.events = []      # ("eof",), ("problem", text), ("write_failed",)
        self.closed = threading.Event()
        self.stray_sent = False
        self.stray_late = None    # stray bytes in a write of their own:
                                  # "clean" or "ambiguous" (_send_late)


class RecordingOrigin(LoopbackServer):
    """The origin; see the module docstring."""

    name = "recording-origin"
    backlog = 256
    connection = OriginConn

    def __init__(self, timeout=120.0):
        super().__init__()
        self.timeout = timeout        # per recv, a safety net only
        self.problems = []            # (conn index, text, bytes excerpt)
        self.tokens = {}              # token -> Request
        self.held = []                # every X-Want: hold request

    def wait_for(self, predicate, timeout):
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def take(self):
        """Hands over the records so far and forgets them: (requests,
        problems). Connections keep only their figures, so a long run
        holds one round of bodies at a time."""
        with self.cond:
            reqs, probs = self.requests, self.problems
            self.requests, self.problems = [], []
            self.tokens = {}
            for c in self.connections:
                c.requests = []
        return reqs, probs

    def unreleased(self):
        """Held requests (X-Want: hold) whose peer has not closed yet."""
        with self.cond:
            return [r for r in self.held if r.released is None]

    def open_connections(self):
        with self.lock:
            return [c for c in self.connections if not c.closed.is_set()]

    # Serving ------------------------------------------------------------
    def _event(self, conn, *event):
        with self.cond:
            conn.events.append(event)
            self.cond.notify_all()

    def _serve(self, s, conn):
        buf = bytearray()
        s.settimeout(1.0)
        try:
            while not self.stopping.is_set():
                if not self._serve_one(s, conn, buf):
                    return
        except _Closed:
            self._event(conn, "eof")
        except OriginProblem as e:
            excerpt = bytes(buf[:120])
            with self.cond:
                self.problems.append((conn.index, str(e), excerpt))
                conn.events.append(("problem", str(e)))
                self.cond.notify_all()
            with contextlib.suppress(OSError):
                s.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
                          b"Content-Length: 0\r\n\r\n")
        except OSError as e:
            self._event(conn, "write_failed", repr(e))
        finally:
            with self.cond:
                self.sockets.discard(s)
                self.cond.notify_all()
            with contextlib.suppress(OSError):
                s.close()
            conn.closed.set()
            with self.cond:
                self.cond.notify_all()

    def _recv(self, s, buf):
        waited = 0.0
        while True:
            try:
                chunk = s.recv(65536)
                break
            except socket.timeout:
                waited += 1.0
                if self.stopping.is_set() or waited >= self.timeout:
                    raise _Closed()
            except ConnectionResetError:
                raise _Closed() from None
        if not chunk:
            raise _Closed()
        buf += chunk

    def _serve_one(self, s, conn, buf):
        """Reads, records and answers one request; False when the
        connection is done."""
        req = self._read_head(s, conn, buf)
        wants = req.wants
        expect = (req.header("Expect") or "").lower() == "100-continue"
        has_body = (req.header("Content-Length") not in (None, "0") or
                    req.header("Transfer-Encoding") is not None)
        if expect and has_body:
            if "417" in wants:
                self._finish(req, b"")   # recorded with no body: never read
                req.complete = False
                req.rejected = True
                self._answer(s, conn, req, status=417, close=True)
                return False
            if "no100" not in wants:
                s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._read_body(s, req, buf)
        if "hold" in wants:
            with self.cond:
                req.held = True
                self.held.append(req)
            self._hold(s, req, buf)
            return False
        close = (req.header("Connection") or "").lower() == "close" or \
            "close" in wants or req.method == "CONNECT"
        return self._answer(s, conn, req, close=close)

    def _send_late(self, s, conn, req, tail, delay):
        """Sends stray bytes after the answer, in a write of their own
        (delay seconds later, if no request came meanwhile), and records
        whether the proxy had them before it could send anything more: on
        loopback a write lands in the peer's socket before send() returns,
        so when no request is pending right after it, any later request on
        this connection was written with the stray bytes already there
        ("clean"); otherwise the proxy may have written its next request
        first and could not know ("ambiguous"). Without a delay (X-Want:
        split) the bytes land while the proxy is still finishing the
        answer: whether it could have seen them before writing its next
        request is a race it cannot always win ("race")."""
        if delay:
            time.sleep(delay)
            r, _, _ = select.select([s], [], [], 0)
            if r:
                conn.stray_sent = False
                return
        s.sendall(tail)
        sent = time.monotonic()
        r, _, _ = select.select([s], [], [], 0)
        with self.cond:
            conn.stray_late = req.stray_late = \
                "ambiguous" if r else "clean" if delay else "race"
            req.stray_time = sent
            self.cond.notify_all()

    def _hold(self, s, req, buf):
        """Never answers; returns when the peer closes (or at stop)."""
        try:
            while not self.stopping.is_set():
                try:
                    self._recv(s, buf)
                except _Closed:
                    break
        finally:
            with self.cond:
                req.released = time.monotonic()
                self.cond.notify_all()

    # Parsing ------------------------------------------------------------
    def _read_head(self, s, conn, buf):
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(buf) > MAX_HEAD:
                raise OriginProblem("request head over 1 MiB")
            # A bare LF ending the head must not pass for a CRLF one.
            if b"\n\n" in buf:
                raise OriginProblem("bare LF ends the request head")
            try:
                self._recv(s, buf)
            except _Closed:
                if buf:
                    self._event(conn, "cut_head", bytes(buf[:200]))
                raise
        raw = bytes(buf[:i + 4])
        lines = raw[:-4].split(b"\r\n")
        for line in lines:
            if b"\n" in line or b"\r" in line or b"\0" in line:
                raise OriginProblem(f"bare CR/LF or NUL in head line {line[:80]!r}")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise OriginProblem(f"bad request line {lines[0][:100]!r}")
        method, target, version = parts
        if not TCHAR.match(method):
            raise OriginProblem(f"bad method {method[:60]!r}")
        if not target or any(b <= 0x20 or b == 0x7f for b in target):
            raise OriginProblem(f"bad target {target[:60]!r}")
        if version != b"HTTP/1.1":
            raise OriginProblem(f"bad version {version[:20]!r}")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not TCHAR.match(name):
                raise OriginProblem(f"bad field line {line[:80]!r}")
            headers.append((name.decode("latin-1"),
                            value.strip(b" \t").decode("latin-1")))
        del buf[:i + 4]
        with self.cond:
            req = Request(conn.index, len(conn.requests),
                          method.decode("latin-1"), target.decode("latin-1"),
                          version.decode(), headers, raw)
            conn.requests.append(req)
            self.requests.append(req)
            self.cond.notify_all()
        return req

    def _read_body(self, s, req, buf):
        cls = req.values("Content-Length")
        tes = req.values("Transfer-Encoding")
        if cls and tes:
            raise OriginProblem("both Content-Length and Transfer-Encoding")
        if len(tes) > 1 or (tes and tes[0].lower() != "chunked"):
            raise OriginProblem(f"Transfer-Encoding {tes!r}")
        if len(cls) > 1:
            raise OriginProblem(f"several Content-Length fields {cls!r}")
        try:
            if tes:
                body = self._read_chunked(s, buf)
            elif cls:
                if not cls[0].isdigit() or len(cls[0]) > 12:
                    raise OriginProblem(f"Content-Length {cls[0]!r}")
                n = int(cls[0])
                if n > MAX_BODY:
                    raise OriginProblem(f"Content-Length {n} too large")
                while len(buf) < n:
                    self._recv(s, buf)
                body = bytes(buf[:n])
                del buf[:n]
            else:
                body = b""
        except _Closed:
            self._finish(req, None)
            raise
        self._finish(req, body)

    def _finish(self, req, body):
        h = hashlib.sha256(req.raw_head)
        h.update(body or b"")
        with self.cond:
            if body is not None:
                req.body = body
                req.complete = True
            req.token = h.hexdigest()[:32]
            if body is not None:
                self.tokens[req.token] = req
            self.cond.notify_all()

    def _read_line(self, s, buf, limit=4096):
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                line = bytes(buf[:i])
                del buf[:i + 2]
                if b"\n" in line or b"\r" in line:
                    raise OriginProblem(f"bare CR/LF in chunked line {line[:60]!r}")
                return line
            if len(buf) > limit:
                raise OriginProblem(f"chunk line too long {bytes(buf[:60])!r}")
            self._recv(s, buf)

    def _read_chunked(self, s, buf):
        body = bytearray()
        while True:
            line = self._read_line(s, buf)
            size_text = line.split(b";")[0]
            if not size_text or not re.fullmatch(rb"[0-9a-fA-F]{1,15}",
                                                 size_text):
                raise OriginProblem(f"bad chunk size line {line[:60]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self._read_line(s, buf):
                    pass   # trailer fields
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise OriginProblem("chunked body too large")
            while len(buf) < size + 2:
                self._recv(s, buf)
            if buf[size:size + 2] != b"\r\n":
                raise OriginProblem("chunk data not followed by CRLF")
            body += buf[:size]
            del buf[:size + 2]

    # Answering ----------------------------------------------------------
    def echo(self, req):
        """The answer's proof fields, as (name, value) pairs."""
        nonces = req.nonces
        return [
            ("X-Echo-Nonce", header_safe(",".join(nonces)) if nonces else "none"),
            ("X-Echo-Token", req.token),
            ("X-Echo-Method", header_safe(req.method)),
            ("X-Echo-Target", header_safe(req.target)),
            ("X-Echo-Body", hashlib.sha256(req.body).hexdigest()),
            ("X-Echo-Length", str(len(req.body))),
            ("X-Echo-Conn", str(req.conn)),
        ]

    def echo_body(self, req, pad):
        echo = dict(self.echo(req))
        return json.dumps({
            "nonce": echo["X-Echo-Nonce"], "token": req.token,
            "method": echo["X-Echo-Method"], "target": echo["X-Echo-Target"],
            "body_sha256": echo["X-Echo-Body"], "body_len": len(req.body),
            "conn": req.conn, "pad": pad_bytes(req.token, pad).decode(),
        }, separators=(",", ":")).encode() + b"\n"

    def _answer(self, s, conn, req, status=None, close=False):
        wants = req.wants
        pad = 0
        slow = 0
        for w in wants:
            if w.startswith("pad="):
                pad = int(w[4:])
            elif w.startswith("slow="):
                slow = int(w[5:])
        if status is None:
            status = 204 if "204" in wants else 304 if "304" in wants else \
                405 if req.method == "CONNECT" else 200
        reasons = {200: "OK", 204: "No Content", 304: "Not Modified",
                   405: "Method Not Allowed", 417: "Expectation Failed"}
        head = [f"HTTP/1.1 {status} {reasons[status]}"]
        head += [f"{n}: {v}" for n, v in self.echo(req)]
        if close:
            head.append("Connection: close")
        body = b""
        bodiless = status in (204, 304) or req.method == "HEAD"
        tail = b""
        if status in (204, 304):
            pass
        elif "chunked" in wants and req.method != "HEAD":
            head.append("Transfer-Encoding: chunked")
            head.append("Trailer: X-Echo-Trailer")
            whole = self.echo_body(req, pad)
            pieces = []
            step = max(1, len(whole) // 3)
            for i in range(0, len(whole), step):
                part = whole[i:i + step]
                pieces.append(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            body = b"".join(pieces) + \
                f"0\r\nX-Echo-Trailer: {req.token}\r\n\r\n".encode()
        else:
            whole = self.echo_body(req, pad)
            head.append(f"Content-Length: {len(whole)}")
            if req.method != "HEAD":
                body = whole
        if bodiless and "stray" in wants:
            nonce = "stray-" + (header_safe(",".join(req.nonces)) or "none")
            sb = json.dumps({"nonce": nonce, "token": "stray"}).encode()
            tail = (f"HTTP/1.1 200 OK\r\nX-Echo-Nonce: {nonce}\r\n"
                    f"X-Echo-Token: stray\r\nContent-Length: {len(sb)}\r\n"
                    f"\r\n").encode() + sb
            conn.stray_sent = True
        if slow:
            time.sleep(slow / 1000.0)
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        late = "late" in wants or "split" in wants
        s.sendall(data if late else data + tail)
        if late and tail:
            self._send_late(s, conn, req, tail, 0.03 if "late" in wants else 0)
        with self.cond:
            req.answered = True
            self.cond.notify_all()
        if close:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_WR)
            return False
        return True
