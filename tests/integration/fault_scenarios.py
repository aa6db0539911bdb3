"""fault_scenarios.py — the origin-fault table: what a scripted origin does
and what a client of hconnd must see, one row per fault.

Each row (a Fault) holds:

  name      a short name; test_fault_table.py makes it a test method
  script    the FaultOrigin steps (harness.FaultOrigin) run for the row's
            request: exact bytes, pauses, drips, resets, half-closes
  expect    Ok(...): a complete response (status, body, head fields), or
            Err(...): an explicit error (name, head or none, the body bytes
            delivered before it, received/expected)
  reuse     whether the upstream connection may serve the next request:
            True: a follow-up GET must come back "reused" on the same
            origin connection; False: it must open a new one, and the daemon
            must have closed the old one; None: not a question for this row
  request   method, inline body and extra request fields (timeout ...)
  prime     requests for the same path sent (and answered) first, so that
            the row's request meets a pooled connection
  origin    when given, the methods each origin connection received, in
            accept order, after the row's request (retries show here)

Data only: the runner is test_fault_table.py, and tests/soak/soak.py
replays the fast rows as its faulty traffic.
"""

import dataclasses

from harness import big_bytes, http_response

H200 = b"HTTP/1.1 200 OK\r\n"
CHUNKED = H200 + b"Transfer-Encoding: chunked\r\n\r\n"

# The follow-up request's path and answer (a plain keep-alive 200).
FOLLOW_UP_PATH = "/ok"
FOLLOW_UP_BODY = b"follow-up ok\n"
FOLLOW_UP = [("send", http_response(200, FOLLOW_UP_BODY))]

# The path every row's script is served on.
ROW_PATH = "/t"


class _Absent:
    """A head or error field that must not be there."""

    def __repr__(self):
        return "ABSENT"


ABSENT = _Absent()
ANY = object()          # a field that is not checked


def _field_problems(msg, key, want, where):
    if want is ANY:
        return []
    if want is ABSENT:
        return [f"{where} has {key}={msg[key]!r}, expected none"] \
            if key in msg else []
    if msg.get(key) != want:
        return [f"{where} {key}={msg.get(key, ABSENT)!r}, expected {want!r}"]
    return []


@dataclasses.dataclass(frozen=True)
class Ok:
    """A complete response: head, data frames, end."""
    status: int
    body: bytes
    length: object = ANY          # the head's "length": int, ABSENT or ANY
    version: int = 11
    trailers: tuple = ()          # (name, value) pairs of the end frame

    def problems(self, origin, head, body, last):
        """What differs between this outcome and the replies (head or
        None, body bytes, end or error); [] when they match."""
        if head is None or "error" in last:
            return [f"expected a complete {self.status}, got {last!r}"]
        out = []
        if head.get("status") != self.status:
            out.append(f"status {head.get('status')}, expected {self.status}")
        if body != self.body:
            out.append(f"body of {len(body)} bytes {body[:40]!r} differs "
                       f"from the expected {len(self.body)} bytes")
        if head.get("version") != self.version:
            out.append(f"version {head.get('version')}, expected "
                       f"{self.version}")
        out += _field_problems(head, "length", self.length, "head")
        if [tuple(t) for t in last.get("trailers", ())] != list(self.trailers):
            out.append(f"trailers {last.get('trailers')!r}, expected "
                       f"{list(self.trailers)!r}")
        return out


@dataclasses.dataclass(frozen=True)
class Err:
    """An explicit error reply. head: None when no head may come first,
    else the status of the head that must come first. body: the exact
    bytes delivered before the error, or ANY, or a PrefixOf. received and
    expected: the error's fields (int, ABSENT or ANY)."""
    error: str
    head: object = None
    body: object = b""
    received: object = ABSENT
    expected: object = ABSENT
    length: object = ANY

    def problems(self, origin, head, body, last):
        """As Ok.problems; origin is the "host:port" the message must name."""
        if last.get("error") != self.error:
            return [f"expected error {self.error}, got {last!r}"]
        out = []
        if not isinstance(last.get("message"), str) or \
                origin not in last["message"]:
            out.append(f"message {last.get('message')!r} does not name "
                       f"the origin {origin}")
        if self.head is None and head is not None:
            out.append(f"a head came before the error: {head!r}")
        elif self.head is not None:
            if head is None:
                out.append(f"no head before the error, expected {self.head}")
            else:
                if head.get("status") != self.head:
                    out.append(f"head status {head.get('status')}, expected "
                               f"{self.head}")
                out += _field_problems(head, "length", self.length, "head")
        if isinstance(self.body, PrefixOf):
            if not self.body.data.startswith(body):
                out.append(f"body {body[:40]!r} is not a prefix of what the "
                           "origin sent")
        elif self.body is not ANY and body != self.body:
            out.append(f"body {body[:40]!r} ({len(body)} bytes), expected "
                       f"{self.body[:40]!r} ({len(self.body)} bytes)")
        out += _field_problems(last, "received", self.received, "error")
        out += _field_problems(last, "expected", self.expected, "error")
        if "received" in last and last["received"] != len(body):
            # An error never under- or over-reports what was delivered.
            out.append(f"received={last['received']} but {len(body)} body "
                       "bytes were delivered")
        return out


@dataclasses.dataclass(frozen=True)
class PrefixOf:
    """Body bytes that must be a prefix of data (timing decides how much of
    it arrives before a reset)."""
    data: bytes


@dataclasses.dataclass(frozen=True)
class Fault:
    name: str
    script: tuple
    expect: object
    reuse: object
    doc: str
    method: str = "GET"
    body: bytes = b""
    fields: tuple = ()            # (key, value) pairs added to the request
    prime: int = 0
    origin: object = None         # ((method, ...), ...) per connection
    slow: bool = False            # minutes long: run with HCONN_SLOW_TESTS=1

    @property
    def ident(self):
        return self.name.replace("-", "_")


def _headers(n, extra=b"Content-Length: 0\r\n"):
    """A 200 head with n header fields in all (the last one is extra)."""
    return (H200 + b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(n - 1))
            + extra + b"\r\n")


def _long_header(line_bytes):
    """A 200 head with one header line of line_bytes bytes, CRLF included
    (hconnd's limit, as http.client's, is 65536)."""
    prefix = b"X-Long: "
    value = b"a" * (line_bytes - len(prefix) - 2)
    return H200 + prefix + value + b"\r\nContent-Length: 2\r\n\r\nok"


DRIP_SHORT = big_bytes(256)
DRIP_64K = big_bytes(64 * 1024)
EARLY_BODY = 8 * 1024 * 1024     # more than loopback buffers hold unread
OK_BODY = b"fresh\n"

FAULTS = (
    # ---- Controls: the reuse check itself ---------------------------------
    Fault("keep-alive-ok", (("send", http_response(200, OK_BODY)),),
          Ok(200, OK_BODY, length=len(OK_BODY)), True,
          "a plain keep-alive response: the connection goes back to the "
          "pool"),
    Fault("connection-close-honoured",
          (("send", http_response(200, OK_BODY,
                                  headers=[("Connection", "close")])),),
          Ok(200, OK_BODY, length=len(OK_BODY)), False,
          "Connection: close with a length; the origin would go on, but the "
          "daemon must not reuse the connection"),

    # ---- Heads cut short --------------------------------------------------
    Fault("close-before-status-line", (("close",),),
          Err("remote_disconnected"), False,
          "the origin closes without sending a byte"),
    Fault("close-inside-head",
          (("send", H200 + b"Content-Length: 5\r\n"), ("close",)),
          Err("remote_disconnected"), False,
          "the origin closes in the middle of the head"),
    Fault("reset-before-status-line", (("reset",),),
          Err("remote_disconnected"), False,
          "the origin resets the connection without a byte of answer"),

    # ---- Bodies cut short -------------------------------------------------
    Fault("truncated-content-length",
          (("send", H200 + b"Content-Length: 100\r\n\r\n" + b"x" * 40),
           ("close",)),
          Err("incomplete_read", head=200, body=b"x" * 40, received=40,
              expected=100, length=100), False,
          "40 of 100 announced bytes, then FIN"),
    Fault("truncated-chunked",
          (("send", CHUNKED + b"5\r\nhello\r\n5\r\nwo"), ("close",)),
          Err("incomplete_read", head=200, body=b"hellowo", received=7,
              expected=ABSENT, length=ABSENT), False,
          "FIN inside the second chunk: what arrived is delivered, then the "
          "error (no expected length for chunked)"),
    Fault("truncated-chunked-before-last-chunk",
          (("send", CHUNKED + b"5\r\nhello\r\n"), ("close",)),
          Err("incomplete_read", head=200, body=b"hello", received=5,
              expected=ABSENT, length=ABSENT), False,
          "whole chunks but no last chunk before FIN"),
    Fault("truncated-trailers",
          (("send", CHUNKED + b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n"),
           ("close",)),
          Err("incomplete_read", head=200, body=b"hello", received=5,
              expected=ABSENT, length=ABSENT), False,
          "FIN inside the trailer section"),
    Fault("reset-mid-body",
          (("send", H200 + b"Content-Length: 100000\r\n\r\n" + b"r" * 1000),
           ("sleep", 0.2), ("reset",)),
          Err("incomplete_read", head=200, body=PrefixOf(b"r" * 1000),
              received=ANY, expected=100000, length=100000), False,
          "RST after 1000 of 100000 bytes: incomplete_read with what was "
          "delivered (received counts exactly the bytes delivered)"),
    Fault("half-close-mid-body",
          (("send", H200 + b"Content-Length: 10\r\n\r\n12345"),
           ("half_close",), ("keep_open",)),
          Err("incomplete_read", head=200, body=b"12345", received=5,
              expected=10, length=10), False,
          "the origin half-closes (FIN) after 5 of 10 bytes and keeps "
          "reading: the daemon must not wait for more"),

    # ---- Bad status lines and heads ---------------------------------------
    Fault("garbage-status-line", (("send", b"HELLO THERE\r\n\r\n"),),
          Err("bad_status_line"), False,
          "not an HTTP status line; the origin keeps the connection open"),
    Fault("binary-garbage", (("send", bytes(range(256)) * 4),),
          Err("bad_status_line"), False,
          "binary bytes where the status line should be"),
    Fault("http2-status-line",
          (("send", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),),
          Err("unknown_protocol"), False,
          "a version this client does not speak"),
    Fault("header-line-at-limit", (("send", _long_header(65536)),),
          Ok(200, b"ok", length=2), True,
          "a 65536-byte header line (CRLF included) is within the limit"),
    Fault("header-line-over-limit", (("send", _long_header(65537)),),
          Err("line_too_long"), False,
          "a 65537-byte header line is over it"),
    Fault("100-headers", (("send", _headers(100, b"Content-Length: 2\r\n")
                           + b"ok"),),
          Ok(200, b"ok", length=2), True,
          "100 header fields (Content-Length included) are allowed"),
    Fault("101-headers", (("send", _headers(101)),),
          Err("too_many_headers"), False,
          "101 header fields are one too many"),
    Fault("header-without-colon",
          (("send", H200 + b"No colon here\r\nContent-Length: 0\r\n\r\n"),),
          Err("bad_header"), False,
          "a header line that is not a field"),

    # ---- Framing -----------------------------------------------------------
    Fault("conflicting-content-length",
          (("send", H200 + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
                    b"hello!"),),
          Err("bad_content_length"), False,
          "two different Content-Length values"),
    Fault("non-numeric-content-length",
          (("send", H200 + b"Content-Length: 5x\r\n\r\nhello"),),
          Err("bad_content_length"), False,
          "a Content-Length that is not a number"),
    Fault("content-length-with-chunked",
          (("send", H200 + b"Content-Length: 5\r\nTransfer-Encoding: chunked"
                    b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),),
          Err("bad_framing"), False,
          "Content-Length and Transfer-Encoding together (request "
          "smuggling's favourite)"),
    Fault("unknown-transfer-encoding",
          (("send", H200 + b"Transfer-Encoding: gzip\r\n\r\nhello"),),
          Err("unknown_transfer_encoding"), False,
          "a transfer coding other than chunked"),
    Fault("bad-chunk-size",
          (("send", CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n"),),
          Err("bad_chunk", head=200, length=ABSENT), False,
          "a chunk size that is not hex"),
    Fault("negative-chunk-size",
          (("send", CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n"),),
          Err("bad_chunk", head=200, length=ABSENT), False,
          "a chunk size with a sign"),
    Fault("overflowing-chunk-size-17-digits",
          (("send", CHUNKED + b"10000000000000000\r\nhello\r\n"),),
          Err("bad_chunk", head=200, length=ABSENT), False,
          "a chunk size of 17 hex digits (2^64) cannot be represented"),
    Fault("overflowing-chunk-size-2-64-minus-1",
          (("send", CHUNKED + b"ffffffffffffffff\r\nhello\r\n"),),
          Err("bad_chunk", head=200, length=ABSENT), False,
          "a chunk size of 2^64-1: 16 digits, but too large"),
    Fault("chunk-data-without-crlf",
          (("send", CHUNKED + b"5\r\nhelloXX0\r\n\r\n"),),
          Err("bad_chunk", head=200, body=b"hello", length=ABSENT), False,
          "chunk data not followed by CRLF"),

    # ---- Trailing bytes ----------------------------------------------------
    Fault("trailing-garbage-after-length",
          (("send", http_response(200, b"ok") + b"STRAY"),),
          Ok(200, b"ok", length=2), False,
          "bytes after a complete keep-alive response: the response is "
          "good, the connection is not reused"),
    Fault("trailing-garbage-after-chunked",
          (("send", CHUNKED + b"2\r\nok\r\n0\r\n\r\nSTRAY"),),
          Ok(200, b"ok", length=ABSENT), False,
          "bytes after the last chunk of a keep-alive response"),

    # ---- Stalls and slow origins --------------------------------------------
    Fault("stall-before-head", (("keep_open",),),
          Err("timeout"), False,
          "no answer within the request's 0.5 s read timeout",
          fields=(("timeout", 0.5),)),
    Fault("stall-in-body",
          (("send", H200 + b"Content-Length: 10\r\n\r\n12345"),
           ("keep_open",)),
          Err("timeout", head=200, body=b"12345", length=10), False,
          "the body stops after 5 of 10 bytes, past the 0.5 s read timeout",
          fields=(("timeout", 0.5),)),
    Fault("drip-1-byte-per-10ms",
          (("drip", H200 + b"Content-Length: 256\r\n\r\n" + DRIP_SHORT, 1,
            0.01),),
          Ok(200, DRIP_SHORT, length=256), True,
          "head and 256-byte body at 1 byte per 10 ms: the read timeout "
          "(2 s) is per wait, not for the whole response",
          fields=(("timeout", 2),)),
    Fault("drip-64k-1-byte-per-10ms",
          (("drip", H200 + b"Content-Length: 65536\r\n\r\n" + DRIP_64K, 1,
            0.01),),
          Ok(200, DRIP_64K, length=65536), True,
          "a 64 KiB body at 1 byte per 10 ms (about 11 minutes)",
          fields=(("timeout", 5),), slow=True),

    # ---- Early answers -----------------------------------------------------
    Fault("answer-before-request-body",
          (("head_only",),
           ("send", http_response(413, b"too large\n",
                                  reason="Payload Too Large")),
           ("hold",)),
          Ok(413, b"too large\n", length=10), False,
          "the origin answers a POST of 8 MiB without reading its body, and "
          "never reads it: the answer arrives whole, the half-sent "
          "connection is dropped",
          method="POST", body=big_bytes(EARLY_BODY)),

    # ---- Pooled connections that die ----------------------------------------
    Fault("idle-close-before-reuse-get",
          (("send", http_response(200, OK_BODY)), ("expect_request",),
           ("close",)),
          Ok(200, OK_BODY, length=len(OK_BODY)), None,
          "the pooled connection is closed as the next GET goes out: the "
          "GET is retried once, transparently, on a new connection",
          prime=1, origin=(("GET", "GET"), ("GET",))),
    Fault("idle-close-before-reuse-post",
          (("send", http_response(200, OK_BODY)), ("expect_request",),
           ("close",)),
          Err("remote_disconnected"), None,
          "the same for a POST: never sent twice, remote_disconnected",
          method="POST", body=b"once only", prime=1,
          origin=(("GET", "POST"),)),

    # ---- Unusual but valid -------------------------------------------------
    Fault("read-to-close",
          (("send", H200 + b"Connection: close\r\n\r\nuntil the end\n"),
           ("close",)),
          Ok(200, b"until the end\n", length=ABSENT), False,
          "no length: the body ends at FIN"),
    Fault("http10-read-to-close",
          (("send", b"HTTP/1.0 200 OK\r\n\r\nold style\n"), ("close",)),
          Ok(200, b"old style\n", length=ABSENT, version=10), False,
          "HTTP/1.0 without keep-alive"),
    Fault("http10-keep-alive",
          (("send", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                    b"Content-Length: 2\r\n\r\nok"),),
          Ok(200, b"ok", length=2, version=10), True,
          "HTTP/1.0 with Connection: keep-alive and a length is reusable"),
    Fault("no-content-204", (("send", b"HTTP/1.1 204 No Content\r\n\r\n"),),
          Ok(204, b"", length=0), False,
          "204 has no body; not kept: a body sent anyway would be read as "
          "the next response"),
    Fault("not-modified-with-length",
          (("send", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n"
                    b"\r\n"),),
          Ok(304, b"", length=0), False,
          "304's Content-Length describes the resource, not a body; not "
          "kept, as 204"),
    Fault("head-with-length",
          (("send", H200 + b"Content-Length: 1000\r\n\r\n"),),
          Ok(200, b"", length=0), False,
          "a HEAD response has no body whatever its Content-Length; not "
          "kept, as 204",
          method="HEAD"),
    Fault("interim-103",
          (("send", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                    + http_response(200, OK_BODY)),),
          Ok(200, OK_BODY, length=len(OK_BODY)), True,
          "an interim 1xx head is not the response"),
    Fault("chunked-with-extensions-and-trailers",
          (("send", CHUNKED + b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n"
                    b"X-Checksum: 42\r\n\r\n"),),
          Ok(200, b"abcde", length=ABSENT, trailers=(("X-Checksum", "42"),)),
          True,
          "chunk extensions are skipped, trailers come in the end frame"),
)

BY_NAME = {f.name: f for f in FAULTS}
assert len(BY_NAME) == len(FAULTS), "fault names must be unique"
