#!/usr/bin/env python3
"""integrity.py — the cross-client integrity check of hconnd's shared pool.

Many client processes, each running as its own uid, send randomised and
hostile requests through one hconnd to one RecordingOrigin
(recording_origin.py) whose pool is kept small, so that requests of
different users share upstream connections. Afterwards every byte is
accounted for:

  (a) every request the origin parsed matches one client message byte for
      byte in what the client controls (method, target, its header fields
      in order, the exact body) and carries the nonce of exactly one
      client message, which was sent once; the origin met nothing it could
      not parse (no request made of bytes from two messages);
  (b) every reply a client got answers its own message: the echoed nonce,
      method, target and body hash are its own and the echoed token is
      the one the origin issued for that very request;
  (c) no client ever saw another message's nonce or token, nor bytes an
      origin left on a connection (stray responses) that the daemon had
      before it wrote the next request there (bytes written right after
      an answer race that request: the replies after them on that
      connection are counted, not judged; see STRAY_GRACE);
  (d) hostile messages the daemon must refuse got an error reply and the
      origin received nothing carrying their nonce; messages whose framing
      is consistent went through with the exact body;
  (e) hconnd is alive at the end, its log has no sanitizer report, and its
      stats show no busy, connecting or waiting upstream connection once
      every client has gone; held requests of departed clients were
      released.

Used by test_integrity.py (a short run in the test suite) and by
tests/soak/integrity.py (the long mode, minutes). With front=True
(test_http2_hostile.py) the clients' requests go over HTTPS to nginx with
HTTP/2 on its TLS listener, which hands them to the recording origin as
they came (harness.NGINX_PROXY_LOCATIONS), so hconnd speaks HTTP/2 and the
users share its connection to nginx; the comparisons then allow what
HTTP/2 itself changes (field names in lower case, Cookie fields joined)
and the kinds that HTTP/2 or nginx cannot carry as sent are left out
(FRONT_EXCLUDED). The run is
deterministic in what it sends: the seed (printed; HCONN_INTEGRITY_SEED
overrides it) fixes every client's plan; only the interleaving differs
between runs.

A client process is this file run as `integrity.py --client ...`: it
rebuilds its own plan from the seed, runs it against the daemon and writes
what it saw as JSON to stdout, which the parent then checks.
"""

import argparse
import collections
import copy
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from recording_origin import RecordingOrigin, pad_bytes  # noqa: E402

DEFAULT_SEED = 13013
UID_BASE = 61001
NONCE_RE = re.compile(rb"(?:stray-|smuggled-)?n-\d{3}-\d{5}-[0-9a-f]{8}")
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Undefined|Memory|Thread)"
                          r"Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")
CLIENT_TIMEOUT = 30.0      # per read: a silent daemon fails the episode
# Every request but a held one carries "timeout": a daemon that forwards a
# body the origin then waits for (a wrong Content-Length, raw mode today)
# fails that request after this long instead of stalling the run; the
# origin itself answers at once.
REQUEST_TIMEOUT = 10
PAD_BIG = 3 * 1024 * 1024  # the answer a departing client leaves mid-way

# Kinds an HTTP/2 front cannot carry as the client sent them: request
# targets other than origin-form, methods HTTP/2 or nginx refuse, stray
# origin bytes (nginx ends that upstream connection), and 417 answers
# (nginx answers Expect itself).
FRONT_EXCLUDED = {"-options_star", "-absolute_form", "-odd_method",
                  "-stray_head", "-stray_204", "-expect_417", "-reuse417"}

# Framing / connection-management fields: compared by their effect (the
# body the origin reads), or allowed to be dropped by the daemon.
FRAMING = {"content-length", "transfer-encoding"}
DROPPABLE = {"connection", "te", "expect"}


# ---- Plans ------------------------------------------------------------------
#
# An item is one client message (a request, or a garbage line) with what
# the client sent and what it must get. expect:
#   pass    a reply that answers it; the origin gets it exactly
#   refuse  an error reply (error: the name, when pinned); nothing with its
#           nonce reaches the origin
#   either  one of the two above (choices the issue leaves to the daemon)
#   error   an error reply; the origin never gets it complete
#   cut     the client leaves while it is under way: no reply expected; if
#           the origin got it complete, it got it exactly


class Plan:
    """Builds the messages of one client from its own random generator."""

    def __init__(self, seed, client, port, kinds=None, tls=None):
        self.rng = random.Random(f"{seed}/{client}")
        self.client = client
        self.port = port
        self.tls = tls          # the "tls" of every request: https
        self.seq = 0
        self.kinds = kinds

    def nonce(self):
        self.seq += 1
        return f"n-{self.client:03d}-{self.seq:05d}-{self.rng.getrandbits(32):08x}"

    # Pieces -------------------------------------------------------------
    def body(self, big=False):
        r = self.rng
        n = r.choice([0, 1, 2, r.randint(3, 200), r.randint(200, 6000)])
        if big or r.random() < 0.05:
            n = r.randint(20000, 150000)
        kind = r.random()
        if kind < 0.3:
            data = r.randbytes(n)
        elif kind < 0.6:
            data = (b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n" * (n // 40 + 1))[:n]
        else:
            data = bytes(r.choice(b"abcdefghij\r\n\t ") for _ in range(n))
        return data

    def path(self):
        r = self.rng
        p = "/" + "/".join(r.choice(["a", "b", "c%20d", "~u", "x.y", "%0d%0a",
                                     "q", "echo", "idx.html"])
                           for _ in range(r.randint(0, 3)))
        if r.random() < 0.5:
            p += "?" + "&".join(f"k{i}={r.randint(0, 999)}"
                                for i in range(r.randint(1, 3)))
        return p

    def headers(self):
        r = self.rng
        out = []
        for _ in range(r.choice([0, 0, 1, 2, 4])):
            name = r.choice(["Accept", "X-Custom", "Authorization", "Cookie",
                             "User-Agent", "X-Dup", "X-Dup", "x-lower",
                             "X-!#$%&'*+-.^_`|~"])
            value = r.choice(["text/html", "Bearer secret-" + str(r.randint(0, 9999)),
                              "a=b; c=d", "tab\tinside", "ümlaut-utf8", "",
                              "v" * r.randint(1, 300), "x,y,,z"])
            out.append([name, value])
        return out

    def base(self, method="GET", want=(), target_form="url"):
        """A request message and its item; the body is added by callers."""
        r = self.rng
        nonce = self.nonce()
        path = self.path()
        msg = {"method": method}
        scheme = "https" if self.tls else "http"
        if self.tls:
            msg["tls"] = self.tls
        if target_form == "url":
            frag = "#frag" if r.random() < 0.1 else ""
            msg["url"] = f"{scheme}://127.0.0.1:{self.port}{path}{frag}"
            target = path if path.startswith("/") else "/"
        else:
            msg["host"] = "127.0.0.1"
            msg["port"] = self.port
            if target_form == "absolute":
                target = f"{scheme}://127.0.0.1:{self.port}{path}"
            elif target_form == "star":
                target = "*"
            else:
                target = path
            msg["target"] = target
        hdrs = [["X-Nonce", nonce]]
        extra = self.headers()
        pos = r.randint(0, len(extra))
        hdrs = extra[:pos] + hdrs + extra[pos:]
        want = list(want)
        if r.random() < 0.15:
            want.append("chunked")
        if r.random() < 0.1:
            want.append(f"pad={r.choice([10, 5000, 70000, 300000])}")
        if r.random() < 0.05:
            want.append(f"slow={r.randint(10, 300)}")
        if want:
            hdrs.append(["X-Want", ",".join(want)])
        status = 204 if "204" in want else 304 if "304" in want else 200
        if r.random() < 0.05:
            msg["skip_accept_encoding"] = True
        if "hold" not in want:
            msg["timeout"] = REQUEST_TIMEOUT
        msg["headers"] = hdrs
        return {"kind": None, "nonce": nonce, "msg": msg, "target": target,
                "body": None, "mode": "none", "frames": [], "expect": "pass",
                "error": None, "status": status, "unique_id": False}

    def with_inline(self, item, body=None):
        item["body"] = self.body() if body is None else body
        item["mode"] = "inline"
        return item

    def with_stream(self, item, body=None, length=False):
        r = self.rng
        item["body"] = self.body() if body is None else body
        item["mode"] = "stream"
        item["msg"]["body"] = "stream"
        if length:
            item["msg"]["length"] = len(item["body"])
        n = len(item["body"])
        cuts = sorted(r.randint(0, n) for _ in range(r.randint(0, 4)))
        sizes, last = [], 0
        for c in cuts + [n]:
            sizes.append(c - last)
            last = c
        item["frames"] = sizes
        return item

    def hdr(self, item, name, value, where="end"):
        if where == "start":
            item["msg"]["headers"].insert(0, [name, value])
        else:
            item["msg"]["headers"].append([name, value])
        return item

    # Benign kinds -------------------------------------------------------
    def k_get(self):
        return self.base("GET", target_form=self.rng.choice(
            ["url", "url", "origin"]))

    def k_head(self):
        it = self.base("HEAD")
        return it

    def k_delete(self):
        return self.base("DELETE")

    def k_odd_method(self):
        m = self.rng.choice(["PROPFIND", "M-SEARCH", "PURGE", "X!#$%&'*+.^_`|~",
                             "get", "Patch", "QUERY"])
        it = self.base(m)
        if self.rng.random() < 0.5:
            self.with_inline(it)
        return it

    def k_options_star(self):
        return self.base("OPTIONS", target_form="star")

    def k_absolute_form(self):
        return self.base(self.rng.choice(["GET", "POST"]),
                         target_form="absolute")

    def k_post_inline(self):
        return self.with_inline(self.base(self.rng.choice(["POST", "PUT", "PATCH"])))

    def k_big_inline(self):
        # Megabytes held whole while the pool is busy, then pumped out
        # (the evbuffer_peek overrun of issue 13).
        n = self.rng.randint(1 << 20, 5 << 19)
        return self.with_inline(self.base(self.rng.choice(["PUT", "POST"])),
                                body=self.rng.randbytes(n))

    def k_post_empty(self):
        return self.base(self.rng.choice(["POST", "PUT"]))

    def k_stream(self):
        return self.with_stream(self.base(self.rng.choice(["POST", "PUT"])),
                                length=self.rng.random() < 0.5)

    def k_expect_inline(self):
        it = self.with_inline(self.base("PUT", want=self.rng.choice(
            [[], [], ["no100"]])))
        it["msg"]["expect_continue"] = True
        return it

    def k_expect_stream(self):
        it = self.with_stream(self.base("POST"),
                              length=self.rng.random() < 0.5)
        it["msg"]["expect_continue"] = True
        return it

    def k_expect_417(self):
        it = self.with_stream(self.base("PUT", want=["417"]))
        it["msg"]["expect_continue"] = True
        it["status"] = 417
        it["unique_id"] = True
        return it

    def k_status_204(self):
        return self.base("GET", want=["204"])

    def k_status_304(self):
        return self.base("GET", want=["304"])

    def k_conn_close(self):
        return self.hdr(self.base("GET"), "Connection", "close")

    def k_conn_keepalive(self):
        return self.hdr(self.base("GET"), "Connection", "keep-alive")

    def k_te_trailers(self):
        return self.hdr(self.base("GET"), "TE", "trailers")

    def k_client_host(self):
        return self.hdr(self.base("GET"), "Host", "virtual.example", "start")

    # Consistent framing: must go through, body exact --------------------
    def k_cl_equal(self):
        it = self.with_inline(self.base("POST"))
        return self.hdr(it, self.rng.choice(["Content-Length", "content-length"]),
                        str(len(it["body"])))

    def k_cl0_bodiless(self):
        return self.hdr(self.base(self.rng.choice(["GET", "POST"])),
                        "Content-Length", "0")

    def k_te_chunked_inline(self):
        # Pre-chunked-looking bytes are data: the daemon chunk-encodes them.
        body = (b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nX-Nonce: smuggled-"
                + self.nonce().encode() + b"\r\nX-Ignore: ")
        it = self.with_inline(self.base("POST"), body=body)
        return self.hdr(it, "Transfer-Encoding", "chunked")

    def k_te_chunked_stream(self):
        it = self.with_stream(self.base("PUT"))
        return self.hdr(it, "Transfer-Encoding", "chunked")

    # Origins that break the protocol ------------------------------------
    def late(self):
        # Mostly judged modes; "split" races the daemon (see _send_late).
        return ["stray"] + self.rng.choice([[], [], ["late"], ["late"], ["split"]])

    def k_stray_head(self):
        return self.base("HEAD", want=self.late())

    def k_stray_204(self):
        return self.base("GET", want=[self.rng.choice(["204", "304"])] + self.late())

    # Hostile: refused ---------------------------------------------------
    def smuggle(self):
        return (b"GET /smuggled HTTP/1.1\r\nX-Nonce: smuggled-"
                + self.nonce().encode() + b"\r\nX-Ignore: ")

    def refused(self, it, error):
        it["expect"] = "refuse"
        it["error"] = error
        it["unique_id"] = True
        return it

    def k_cl0_smuggle(self):
        it = self.with_inline(self.base("GET"), body=self.smuggle())
        return self.refused(self.hdr(it, "Content-Length", "0"), "invalid_header")

    def k_cl_larger(self):
        it = self.with_inline(self.base("POST"))
        return self.refused(self.hdr(it, "Content-Length",
                                     str(len(it["body"]) + self.rng.randint(1, 500))),
                            "invalid_header")

    def k_cl_smaller(self):
        it = self.with_inline(self.base("POST"), body=self.body() + self.smuggle())
        return self.refused(self.hdr(it, "Content-Length",
                                     str(self.rng.randint(0, len(it["body"]) - 1))),
                            "invalid_header")

    def k_te_gzip(self):
        it = self.with_inline(self.base("POST"))
        return self.refused(self.hdr(it, "Transfer-Encoding",
                                     self.rng.choice(["gzip", "gzip, chunked",
                                                      "identity", "chunked, chunked"])),
                            "invalid_header")

    def k_te_bodiless(self):
        return self.refused(self.hdr(self.base("GET"), "Transfer-Encoding",
                                     "chunked"), "invalid_header")

    def k_cl_bodiless(self):
        return self.refused(self.hdr(self.base("GET"), "Content-Length",
                                     str(self.rng.randint(1, 40))), "invalid_header")

    def k_stream_len_te(self):
        it = self.with_stream(self.base("PUT"), length=True)
        it = self.hdr(it, "Transfer-Encoding", "chunked")
        it["expect"] = "either"
        it["unique_id"] = True
        return it

    def k_stream_cl_match(self):
        it = self.with_stream(self.base("PUT"))
        it = self.hdr(it, "Content-Length", str(len(it["body"])))
        it["expect"] = "either"
        it["unique_id"] = True
        return it

    def k_stream_cl_wrong(self):
        it = self.with_stream(self.base("PUT"), body=self.body() + self.smuggle())
        it = self.hdr(it, "Content-Length",
                      str(max(0, len(it["body"]) - self.rng.randint(1, 30))))
        it["expect"] = "error"
        it["unique_id"] = True
        return it

    def k_hop_by_hop(self):
        name, value = self.rng.choice([
            ("Connection", "upgrade"), ("Connection", "close, X-Nonce"),
            ("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket"),
            ("TE", "gzip"), ("TE", "chunked"), ("Keep-Alive", "timeout=600"),
            ("Proxy-Connection", "keep-alive"), ("Trailer", "X-Nonce")])
        it = self.base("GET")
        if self.rng.random() < 0.3:
            self.with_inline(it)
        it = self.refused(self.hdr(it, name, value), "invalid_header")
        it["kind_detail"] = name
        return it

    def k_expect_header(self):
        it = self.with_inline(self.base("POST"))
        it = self.hdr(it, "Expect", "100-continue")
        it["expect"] = "either"
        it["unique_id"] = True
        return it

    def k_dup_host(self):
        it = self.hdr(self.base("GET"), "Host", "a.example", "start")
        it = self.hdr(it, "Host", "b.example")
        it["expect"] = "either"
        return it

    def k_connect_method(self):
        it = self.base("CONNECT", target_form="origin")
        it["msg"]["target"] = it["target"] = f"127.0.0.1:{self.port}"
        return self.refused(it, "invalid_url")

    def k_injection(self):
        r = self.rng
        it = self.base("GET")
        n = it["nonce"]
        choice = r.randrange(9)
        if choice == 0:
            it["msg"]["method"] = f"GET /x HTTP/1.1\r\nX-Nonce: smuggled-{n}\r\n\r\nGET"
            err = "invalid_url"
        elif choice == 1:
            it["msg"]["method"] = "GET /"
            err = "invalid_url"
        elif choice == 2:
            self.hdr(it, "X-Inject", f"a\r\nX-Nonce: smuggled-{n}")
            err = "invalid_header"
        elif choice == 3:
            self.hdr(it, "X-Inject", "a\nb")
            err = "invalid_header"
        elif choice == 4:
            self.hdr(it, "X-Inject", "a\0b")
            err = "invalid_header"
        elif choice == 5:
            self.hdr(it, r.choice(["X Bad", "X:Bad", "X\r\nBad", "", "X\0"]), "v")
            err = "invalid_header"
        elif choice == 6:
            it["msg"]["url"] += f"\r\nX-Nonce: smuggled-{n}"
            err = "invalid_url"
        elif choice == 7:
            it["msg"]["url"] = f"http://127.0.0.1:{self.port}/a b"
            err = "invalid_url"
        else:
            it["msg"].pop("url")
            it["msg"].update(host="127.0.0.1", port=self.port,
                             target=r.choice(["/a\r\nb", "/a b", "/\x7f", "a\tb"]))
            err = "invalid_url"
        it = self.refused(it, err)
        if choice == 4:
            it["error"] = None  # invalid_header or bad_message: not pinned
        return it

    def garbage(self):
        r = self.rng
        c = r.randrange(6)
        if c == 0:
            return {"kind": "garbage", "bytes": b"this is not json\n", "reply_id": None}
        if c == 1:
            return {"kind": "garbage", "bytes": b"[1,2,3]\n", "reply_id": None}
        if c == 2:
            gid = f"g-{self.nonce()}"
            line = json.dumps({"id": gid, "method": "GET",
                               "url": f"http://127.0.0.1:{self.port}/",
                               "colour": "red",
                               "headers": [["X-Nonce", "never-" + gid]]})
            return {"kind": "garbage", "bytes": line.encode() + b"\n", "reply_id": gid}
        if c == 3:
            gid = f"ghost-{self.nonce()}"
            return {"kind": "garbage", "reply_id": gid,
                    "bytes": json.dumps({"id": gid, "data": 5}).encode() + b"\nGET /"}
        if c == 4:
            gid = f"ghost-{self.nonce()}"
            return {"kind": "garbage", "reply_id": gid,
                    "bytes": json.dumps({"id": gid, "end": True}).encode() + b"\n"}
        return {"kind": "garbage", "bytes": b'{"op":"stats","id":"s"}\n',
                "reply_id": "s", "op": True}

    # The mix ------------------------------------------------------------
    KINDS = [
        # (name, weight, group)
        ("get", 14, "benign"), ("head", 4, "benign"), ("delete", 2, "benign"),
        ("odd_method", 3, "benign"), ("options_star", 2, "benign"),
        ("absolute_form", 2, "benign"), ("post_inline", 10, "benign"),
        ("post_empty", 2, "benign"), ("stream", 7, "benign"),
        ("big_inline", 1, "benign"),
        ("expect_inline", 2, "benign"), ("expect_stream", 3, "benign"),
        ("expect_417", 1, "benign"),
        ("status_204", 2, "benign"), ("status_304", 1, "benign"),
        ("conn_close", 2, "benign"), ("conn_keepalive", 1, "benign"),
        ("te_trailers", 1, "benign"), ("client_host", 1, "benign"),
        ("cl_equal", 2, "framing_ok"), ("cl0_bodiless", 1, "framing_ok"),
        ("te_chunked_inline", 2, "framing_ok"), ("te_chunked_stream", 1, "framing_ok"),
        ("stray_head", 1, "stray"), ("stray_204", 1, "stray"),
        ("cl0_smuggle", 2, "hostile"), ("cl_larger", 2, "hostile"),
        ("cl_smaller", 2, "hostile"), ("te_gzip", 1, "hostile"),
        ("te_bodiless", 1, "hostile"), ("cl_bodiless", 1, "hostile"),
        ("stream_len_te", 1, "hostile"), ("stream_cl_match", 1, "hostile"),
        ("stream_cl_wrong", 1, "hostile"), ("hop_by_hop", 4, "hostile"),
        ("expect_header", 1, "hostile"), ("dup_host", 1, "hostile"),
        ("connect_method", 2, "hostile"), ("injection", 4, "hostile"),
    ]

    def allowed(self, name, group):
        """Whether kind name of group is in the run: --kinds lists kinds
        and groups to run ("-name" leaves one out)."""
        if self.kinds is None:
            return True
        if name in self.kinds or group in self.kinds:
            return f"-{name}" not in self.kinds
        if f"-{name}" in self.kinds or f"-{group}" in self.kinds:
            return False
        return all(k.startswith("-") for k in self.kinds)

    def item(self):
        kinds = [(n, w) for n, w, g in self.KINDS if self.allowed(n, g)]
        if not kinds:
            kinds = [("get", 1)]
        names, weights = zip(*kinds)
        name = self.rng.choices(names, weights)[0]
        it = getattr(self, "k_" + name)()
        it["kind"] = name
        it["group"] = next(g for n, w, g in self.KINDS if n == name)
        return it

    def episode(self):
        """One episode: a pipelined batch on the client's session, or a
        scenario on a connection of its own."""
        r = self.rng
        x = r.random()
        special = [("raw", 0.06, "raw"), ("continue_wait", 0.05, "benign"),
                   ("reuse417", 0.02, "ids"), ("cut_inline", 0.02, "departure"),
                   ("cut_stream", 0.02, "departure"),
                   ("cut_response", 0.015, "departure"),
                   ("cut_hold", 0.008, "departure"),
                   ("halfclose", 0.03, "departure")]
        for name, p, group in special:
            if x < p and self.allowed(name, group):
                return getattr(self, "e_" + name)()
            x -= p
        return self.e_batch()

    def e_batch(self):
        r = self.rng
        items = []
        for _ in range(r.choice([1, 1, 2, 3, 4, 6, 8])):
            if r.random() < 0.06 and self.allowed("garbage", "hostile"):
                items.append(self.garbage())
            else:
                items.append(self.item())
        self.assign_ids(items)
        return {"type": "batch", "items": items, "split": r.random() < 0.15,
                "blank_lines": r.random() < 0.1}

    def assign_ids(self, items):
        """Ids from a small pool, so they repeat within and across batches
        (those the reply order cannot tell apart stay unique)."""
        r = self.rng
        for it in items:
            if it["kind"] == "garbage":
                continue
            if it["unique_id"] or r.random() < 0.2:
                it["id"] = f"u-{it['nonce']}"
            else:
                it["id"] = r.choice([1, 2, 3, "a", "b", 0])
        # Streamed bodies with one id go one after the other (the protocol:
        # frames address the oldest open stream with that id).

    def e_halfclose(self):
        ep = self.e_batch()
        ep["type"] = "halfclose"
        return ep

    def e_raw(self):
        """A raw request: a benign one, with or without a body, or now and
        then a hostile one without a streamed body."""
        r = self.rng
        it = self.item() if r.random() < 0.3 else None
        if it is not None and (it["mode"] == "stream" or it["kind"] in (
                "expect_417", "stray_head", "stray_204")):
            it = None
        if it is None:
            it = self.k_get()
            it["kind"], it["group"] = "get", "benign"
        c = r.random() if it["kind"] == "get" else 1.0
        if c < 0.35:
            self.with_inline(it, body=self.body() or b"hello")
            it["msg"]["method"] = "POST"
            it["kind"] = "raw_inline"
        elif c < 0.55:
            self.with_stream(it, body=self.body() or b"hello",
                             length=r.random() < 0.5)
            it["msg"]["method"] = "PUT"
            it["kind"] = "raw_stream"
        else:
            it["kind"] = "raw_" + it["kind"]
        it["msg"]["raw"] = True
        it["id"] = f"u-{it['nonce']}"
        it["group"] = "raw"
        return {"type": "raw", "items": [it]}

    def e_continue_wait(self):
        it = self.with_stream(self.base("POST"), body=self.body() or b"x",
                              length=self.rng.random() < 0.5)
        it["msg"]["expect_continue"] = True
        it["kind"], it["group"] = "expect_stream_wait", "benign"
        it["id"] = self.rng.choice([1, "c"])
        return {"type": "continue_wait", "items": [it]}

    def e_reuse417(self):
        a = self.k_expect_417()
        a["kind"], a["group"] = "reuse417_a", "ids"
        b = self.with_stream(self.base("PUT"), body=self.body() or b"bbbb",
                             length=self.rng.random() < 0.5)
        b["kind"], b["group"] = "reuse417_b", "ids"
        a["id"] = b["id"] = 5
        return {"type": "reuse417", "items": [a, b]}

    def cut(self, it, kind):
        it["kind"], it["group"], it["expect"] = kind, "departure", "cut"
        it["id"] = f"u-{it['nonce']}"
        return it

    def e_cut_inline(self):
        it = self.with_inline(self.base("POST"), body=self.body(big=True))
        return {"type": "cut_inline", "items": [self.cut(it, "cut_inline")]}

    def e_cut_stream(self):
        it = self.with_stream(self.base("PUT"), body=self.body(big=True),
                              length=self.rng.random() < 0.5)
        return {"type": "cut_stream", "items": [self.cut(it, "cut_stream")]}

    def e_cut_response(self):
        it = self.base("GET", want=[f"pad={PAD_BIG}"])
        return {"type": "cut_response", "items": [self.cut(it, "cut_response")]}

    def e_cut_hold(self):
        """A client that leaves while the origin is silent: a raw one (the
        daemon reads nothing more from it), or one with more requests
        pipelined behind the held one."""
        r = self.rng
        it = self.base("GET", want=["hold"])
        kind = r.choice(["cut_hold", "cut_hold_raw", "cut_hold_pipelined"])
        if kind == "cut_hold_raw":
            it["msg"]["raw"] = True
        items = [self.cut(it, kind)]
        if kind == "cut_hold_pipelined":
            for _ in range(r.randint(1, 3)):
                items.append(self.cut(self.k_get(), kind + "_behind"))
        return {"type": "cut_hold", "items": items}


def client_plan(seed, client, port, episodes, kinds=None, tls=None):
    p = Plan(seed, client, port, kinds, tls)
    return [p.episode() for _ in range(episodes)]


# ---- The client process -----------------------------------------------------

class Client:
    """Runs one client's plan against the daemon and records what it saw."""

    def __init__(self, sock_path, plan, seed, client):
        self.path = sock_path
        self.plan = plan
        self.rng = random.Random(f"{seed}/{client}/timing")
        self.session = None
        self.results = {}       # nonce -> record
        self.episode_errors = []
        self.garbage = []       # (bytes excerpt, reply)

    def wire(self):
        w = harness.Wire(timeout=CLIENT_TIMEOUT)
        w.connect(self.path)
        return w

    def run(self):
        for i, ep in enumerate(self.plan):
            try:
                getattr(self, "ep_" + ep["type"])(ep)
            except Exception as e:  # recorded: the parent judges it
                self.episode_errors.append(
                    {"episode": i, "type": ep["type"], "error": repr(e)[:500],
                     "nonces": [it.get("nonce") for it in ep["items"]]})
                if self.session is not None:
                    self.session.close()
                    self.session = None
        if self.session is not None:
            self.session.close()
        return {"results": self.results, "episode_errors": self.episode_errors,
                "garbage": self.garbage}

    # Encoding -----------------------------------------------------------
    @staticmethod
    def head_line(it):
        msg = {"id": it["id"], **it["msg"]}
        if it["mode"] == "inline":
            msg["data"] = len(it["body"])
        return json.dumps(msg, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def frames(it):
        out, pos = [], 0
        for n in it["frames"]:
            out.append(json.dumps({"id": it["id"], "data": n}).encode() + b"\n"
                       + it["body"][pos:pos + n])
            pos += n
        return out

    @staticmethod
    def end(it):
        return json.dumps({"id": it["id"], "end": True}).encode() + b"\n"

    def batch_bytes(self, ep):
        """Every message of a batch: heads (and inline bodies), then the
        streamed bodies interleaved (one id's streams in order), then their
        ends after their frames."""
        out = []
        streams = collections.OrderedDict()
        for it in ep["items"]:
            if it["kind"] == "garbage":
                out.append(it["bytes"])
                continue
            out.append(self.head_line(it) + (it["body"] if it["mode"] == "inline" else b""))
            if ep.get("blank_lines") and self.rng.random() < 0.3:
                out.append(b"\r\n \t\n")
            if it["mode"] == "stream":
                streams.setdefault(json.dumps(it["id"]), []).append(
                    collections.deque(self.frames(it) + [self.end(it)]))
        while streams:
            key = self.rng.choice(list(streams))
            queue = streams[key][0]
            out.append(queue.popleft())
            if not queue:
                streams[key].pop(0)
                if not streams[key]:
                    del streams[key]
        data = b"".join(out)
        if ep.get("split"):
            pieces, i = [], 0
            while i < len(data):
                n = self.rng.randint(1, 64)
                pieces.append(data[i:i + n])
                i += n
            return pieces
        return [data]

    # Reading ------------------------------------------------------------
    def record(self, it):
        rec = {"kind": it["kind"], "id": it["id"], "outcome": None,
               "continues": 0, "seen": [], "skipped": 0}
        self.results[it["nonce"]] = rec
        return rec

    def scan(self, rec, data):
        for m in NONCE_RE.findall(data):
            s = m.decode()
            if s not in rec["seen"]:
                rec["seen"].append(s)

    def read_msg(self, w, rec):
        msg = w.read_message()
        if msg is None:
            return None
        payload = msg.pop("_payload", b"")
        if rec is not None:
            self.scan(rec, json.dumps(msg).encode())
            self.scan(rec, payload)
        msg["_payload"] = payload
        return msg

    def read_reply(self, w, it, tolerant):
        """Reads the replies to request it: [continue] head data* end, or
        an error. Skips bad_message errors about frames of streams the
        daemon already ended (ids in tolerant)."""
        rec = self.record(it)
        body = bytearray()
        head = None
        while True:
            msg = self.read_msg(w, rec)
            if msg is None:
                rec["outcome"] = "eof"
                rec["eof_after"] = "head" if head else "nothing"
                raise harness.WireError(f"EOF while reading id {it['id']!r}")
            if msg.get("error") == "bad_message" and \
                    json.dumps(msg.get("id")) in tolerant and head is None:
                rec["skipped"] += 1
                continue
            if msg.get("id") != it["id"]:
                rec["outcome"] = "wrong_id"
                rec["wrong"] = _brief(msg)
                raise harness.WireError(f"reply for id {msg.get('id')!r} while "
                                        f"reading id {it['id']!r}: {_brief(msg)}")
            if "error" in msg:
                rec["outcome"] = "error"
                rec["error"] = msg["error"]
                rec["message"] = str(msg.get("message"))[:300]
                rec["after_head"] = head is not None
                if it["mode"] == "stream":
                    tolerant.add(json.dumps(it["id"]))
                return rec
            if "status" in msg:
                if head is not None:
                    rec["outcome"] = "second_head"
                    raise harness.WireError(f"second head for {it['id']!r}")
                head = msg
                continue
            if "continue" in msg:
                rec["continues"] += 1
                if head is not None:
                    rec["continue_after_head"] = True
                continue
            if "data" in msg and head is not None:
                body += msg["_payload"]
                continue
            if msg.get("end") is True and head is not None:
                self.fill(rec, head, bytes(body), msg.get("trailers"))
                return rec
            rec["outcome"] = "bad_frame"
            rec["wrong"] = _brief(msg)
            raise harness.WireError(f"unexpected reply {_brief(msg)}")

    def fill(self, rec, head, body, trailers):
        rec["outcome"] = "response"
        rec["status"] = head.get("status")
        rec["length"] = head.get("length")
        rec["reused"] = head.get("reused")
        rec["headers"] = head.get("headers")
        rec["trailers"] = trailers
        rec["body_len"] = len(body)
        rec["echo"] = None
        if body:
            try:
                echo = json.loads(body)
                pad = echo.pop("pad", "")
                echo["pad_ok"] = pad.encode() == pad_bytes(str(echo.get("token")), len(pad))
                echo["pad_len"] = len(pad)
                rec["echo"] = echo
            except (ValueError, AttributeError):
                rec["body_excerpt"] = body[:200].decode("latin-1")

    def read_garbage_reply(self, w, it, tolerant):
        msg = self.read_msg(w, None)
        entry = {"bytes": it["bytes"][:80].decode("latin-1"), "expect_id": it["reply_id"]}
        if msg is None:
            entry["reply"] = None
        else:
            msg.pop("_payload", None)
            entry["reply"] = msg
        self.garbage.append(entry)
        if msg is None:
            raise harness.WireError("EOF after a garbage line")

    def send_all(self, w, pieces):
        def go():
            try:
                for p in pieces:
                    w.sock.sendall(p)
            except OSError:
                pass
        t = threading.Thread(target=go, daemon=True)
        t.start()
        return t

    # Episodes -----------------------------------------------------------
    def ep_batch(self, ep, w=None, halfclose=False):
        own = w is not None
        if w is None:
            if self.session is None:
                self.session = self.wire()
            w = self.session
        t = self.send_all(w, self.batch_bytes(ep))
        if halfclose:
            t.join(CLIENT_TIMEOUT)
            w.shutdown_write()
        tolerant = set()
        for it in ep["items"]:
            if it["kind"] == "garbage":
                self.read_garbage_reply(w, it, tolerant)
            else:
                self.read_reply(w, it, tolerant)
        t.join(CLIENT_TIMEOUT)
        if own:
            w.close()

    def ep_halfclose(self, ep):
        w = self.wire()
        try:
            self.ep_batch(ep, w, halfclose=True)
        finally:
            w.close()

    def ep_raw(self, ep):
        it = ep["items"][0]
        rec = self.record(it)
        w = self.wire()
        try:
            out = self.head_line(it)
            if it["mode"] == "inline":
                out += it["body"]
            elif it["mode"] == "stream":
                out += b"".join(self.frames(it)) + self.end(it)
            w.send_raw(out)
            while True:
                line = w.read_line()
                if line is None:
                    rec["outcome"] = "eof"
                    return
                self.scan(rec, line)
                msg = json.loads(line)
                if "continue" not in msg:
                    break
                rec["continues"] += 1   # PROTOCOL.md 5.4: never in raw mode
            if "error" in msg:
                rec["outcome"] = "error"
                rec["error"] = msg["error"]
                rec["message"] = str(msg.get("message"))[:300]
                return
            body = w.read_all()
            self.scan(rec, body)
            self.fill(rec, msg, body, None)
        finally:
            w.close()

    def ep_continue_wait(self, ep):
        it = ep["items"][0]
        w = self.wire()
        try:
            w.send_raw(self.head_line(it))
            msg = self.read_msg(w, None)
            if msg is not None and msg.get("continue") is True:
                w.send_raw(b"".join(self.frames(it)) + self.end(it))
                self.read_reply(w, it, set())
                self.results[it["nonce"]]["continues"] += 1
            else:
                rec = self.record(it)
                rec["outcome"] = "no_continue"
                rec["wrong"] = _brief(msg) if msg else None
        finally:
            w.close()

    def ep_reuse417(self, ep):
        a, b = ep["items"]
        w = self.wire()
        try:
            w.send_raw(self.head_line(a) + self.head_line(b))
            self.read_reply(w, a, set())
            # PROTOCOL.md 5.4: after a final answer, just the end frame.
            w.send_raw(self.end(a) + b"".join(self.frames(b)) + self.end(b))
            self.read_reply(w, b, set())
        finally:
            w.close()

    def ep_cut_inline(self, ep):
        it = ep["items"][0]
        self.record(it)["outcome"] = "cut"
        w = self.wire()
        data = self.head_line(it) + it["body"]
        w.send_raw(data[:len(data) - self.rng.randint(1, len(it["body"]) or 1)])
        w.close()

    def ep_cut_stream(self, ep):
        it = ep["items"][0]
        self.record(it)["outcome"] = "cut"
        w = self.wire()
        frames = self.frames(it)
        w.send_raw(self.head_line(it) + b"".join(frames[:len(frames) // 2])
                   + json.dumps({"id": it["id"], "data": 1000}).encode()
                   + b"\n" + b"x" * 10)
        time.sleep(0.2)   # lets the head reach the origin first
        w.close()

    def ep_cut_response(self, ep):
        it = ep["items"][0]
        rec = self.record(it)
        rec["outcome"] = "cut"
        w = self.wire()
        w.send_raw(self.head_line(it))
        msg = self.read_msg(w, rec)
        if msg is not None and "status" in msg:
            self.read_msg(w, rec)   # one data frame, then leave
        w.close()

    def ep_cut_hold(self, ep):
        w = self.wire()
        for it in ep["items"]:
            self.record(it)["outcome"] = "cut"
        w.send_raw(b"".join(self.head_line(it) for it in ep["items"]))
        time.sleep(0.5)   # lets the request reach the origin first
        w.close()


def _brief(msg):
    m = dict(msg)
    if "_payload" in m:
        m["_payload"] = f"<{len(m['_payload'])} bytes>"
    return repr(m)[:300]


def client_main(args):
    kinds = set(args.kinds.split(",")) if args.kinds else None
    tls = None
    if args.tls_ca:
        with open(args.tls_ca) as f:
            tls = {"ca_pem": f.read()}
    plan = client_plan(args.seed, args.client, args.port, args.episodes, kinds,
                       tls)
    c = Client(args.socket, plan, args.seed, args.client)
    result = c.run()
    result["uid"] = os.getuid()
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


# ---- Expectations -----------------------------------------------------------

def expected_origin_headers(it, port):
    """The header fields the origin must receive for item it, without the
    framing fields: Host and Accept-Encoding as http.client adds them,
    the client's fields in order, Expect when the daemon adds it."""
    msg = it["msg"]
    given = [(n, v) for n, v in msg["headers"]]
    names = {n.lower() for n, v in given}
    out = []
    if not msg.get("skip_host") and "host" not in names:
        out.append(("Host", f"127.0.0.1:{port}"))
    if not msg.get("skip_accept_encoding") and "accept-encoding" not in names:
        out.append(("Accept-Encoding", "identity"))
    out += [(n, v.encode().decode("latin-1")) for n, v in given
            if n.lower() not in FRAMING]
    if msg.get("expect_continue") and it["mode"] != "none" and "expect" not in names:
        out.append(("Expect", "100-continue"))
    return out


def _h2_fields(fields):
    """Header fields as HTTP/2 carries them: names in lower case, Cookie
    fields joined into one with "; " at the end (RFC 9113 8.2.3 lets
    either side split and join them)."""
    out = [(n.lower(), v) for n, v in fields if n.lower() != "cookie"]
    # Host becomes :authority, which the front puts back first.
    out = [f for f in out if f[0] == "host"] + \
        [f for f in out if f[0] != "host"]
    cookies = [v for n, v in fields if n.lower() == "cookie"]
    if cookies:
        # nginx drops what follows the last separator when it is empty.
        out.append(("cookie", "; ".join(cookies).rstrip("; ")))
    return out


def front_refuses(it):
    """Whether nginx, the HTTP/2 front, answers it with a 400 itself: it
    takes a second Authorization field as an attack (nginx 1.22's
    unique header lines)."""
    names = [str(h[0]).lower() for h in it["msg"].get("headers") or []]
    return names.count("authorization") > 1


def compare_request(it, req, port, h2=False):
    """Differences between client message it and origin request req (what
    the client controls), as a list of strings. h2: the request came
    through an HTTP/2 front (see _h2_fields)."""
    diffs = []
    if req.method != it["msg"]["method"]:
        diffs.append(f"method {req.method!r} != {it['msg']['method']!r}")
    if req.target != it["target"]:
        diffs.append(f"target {req.target!r} != {it['target']!r}")
    want = expected_origin_headers(it, port)
    got = [(n, v) for n, v in req.headers if n.lower() not in FRAMING]
    got_names = {n.lower() for n, v in got}
    want = [(n, v) for n, v in want
            if n.lower() not in DROPPABLE or n.lower() in got_names]
    if h2:
        got, want = _h2_fields(got), _h2_fields(want)
    if got != want:
        diffs.append(f"header fields {got!r} != {want!r}")
    if req.complete:
        body = it["body"] or b""
        if req.body != body:
            diffs.append(f"body {len(req.body)} bytes sha256 "
                         f"{hashlib.sha256(req.body).hexdigest()[:12]} != "
                         f"{len(body)} bytes sha256 "
                         f"{hashlib.sha256(body).hexdigest()[:12]} "
                         f"(got {req.body[:60]!r})")
    if req.values("Content-Length") and req.values("Transfer-Encoding"):
        diffs.append("both Content-Length and Transfer-Encoding")
    return diffs


# ---- The run ----------------------------------------------------------------

class Failures:
    """Failures by assertion, each with a few examples."""

    LABELS = {
        "a": "(a) origin requests match one client message byte for byte",
        "b": "(b) every reply answers its own message",
        "c": "(c) no client sees another's nonce/token or stray bytes",
        "d": "(d) hostile messages refused and never sent; consistent "
             "framing goes through",
        "e": "(e) hconnd alive, no sanitizer report, nothing left busy",
    }

    def __init__(self):
        self.items = collections.defaultdict(list)

    def add(self, letter, kind, text):
        self.items[letter].append((kind, text))

    def count(self, letter=None):
        if letter is None:
            return sum(len(v) for v in self.items.values())
        return len(self.items.get(letter, []))

    def report(self, letter=None, examples=4):
        out = []
        for l in sorted(self.items) if letter is None else [letter]:
            fails = self.items.get(l, [])
            if not fails:
                continue
            by_kind = collections.Counter(k for k, t in fails)
            out.append(f"{self.LABELS[l]}: {len(fails)} failures, by kind: "
                       + ", ".join(f"{k} {n}" for k, n in by_kind.most_common()))
            shown = collections.Counter()
            for k, t in fails:
                if shown[k] < examples:
                    shown[k] += 1
                    out.append(f"    [{k}] {t[:700]}")
        return "\n".join(out)


class Assertions:
    """One unittest test per assertion (a)-(e) over a run: a TestCase
    mixing this in sets cls.seed and cls.fails (run's Failures) in its
    setUpClass, so a failure names the property that broke and shows
    examples of it by kind."""

    def check(self, letter):
        n = self.fails.count(letter)
        self.assertEqual(n, 0, f"seed {self.seed} "
                         f"(HCONN_INTEGRITY_SEED={self.seed} replays it):\n"
                         + self.fails.report(letter, examples=3))

    def test_a_origin_requests_match_client_messages(self):
        self.check("a")

    def test_b_replies_answer_their_own_message(self):
        self.check("b")

    def test_c_no_client_sees_another_clients_bytes(self):
        self.check("c")

    def test_d_hostile_refused_consistent_framing_passes(self):
        self.check("d")

    def test_e_daemon_alive_clean_and_idle(self):
        self.check("e")


def write_config(directory, **keys):
    path = os.path.join(directory, "hconnd.json")
    with open(path, "w") as f:
        json.dump(keys, f)
    return path


def stats(sock_path):
    """The daemon's stats reply; None when it cannot be had."""
    try:
        with harness.Wire(sock_path, timeout=20) as w:
            w.send({"op": "stats"})
            return w.read_message()
    except (OSError, harness.WireError):
        return None


def busy_origins(st):
    out = {}
    for label, o in (st.get("pool", {}).get("origins") or {}).items():
        n = {k: o.get(k, 0) for k in ("busy", "connecting", "waiting")}
        if any(n.values()):
            out[label] = n
    return out


def _world_runnable(path):
    """Whether any uid may run path (every directory on the way searchable
    by others, the file readable and executable by others)."""
    path = os.path.realpath(path)
    try:
        if os.stat(path).st_mode & 0o005 != 0o005:
            return False
        d = os.path.dirname(path)
        while True:
            if not os.stat(d).st_mode & 0o001:
                return False
            if d == "/":
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


def client_python():
    """A python3 the client uids can run: this one, else the system's."""
    if os.geteuid() != 0 or _world_runnable(sys.executable):
        return sys.executable
    for p in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if _world_runnable(p):
            return p
    raise harness.missing(f"no python3 that other uids can run "
                          f"({sys.executable} is private)")


def spawn_clients(d, port, seed, nclients, nuids, episodes, kinds, out_dir,
                  tls_ca=None):
    """Starts the client processes (client k as uid UID_BASE + k % nuids
    when running as root); returns [(proc, uid, out path)]."""
    procs = []
    as_root = os.geteuid() == 0
    for k in range(nclients):
        uid = UID_BASE + k % nuids if as_root else os.getuid()
        path = os.path.join(out_dir, f"client-{k}.json")
        out = open(path, "wb")
        err = open(path + ".err", "wb")
        args = [client_python(), os.path.abspath(__file__), "--client",
                "--socket", d.socket, "--port", str(port),
                "--seed", str(seed), "--client-index", str(k),
                "--episodes", str(episodes)]
        if kinds:
            args += ["--kinds=" + ",".join(sorted(kinds))]
        if tls_ca:
            args += ["--tls-ca", tls_ca]
        kw = {}
        if as_root:
            kw = dict(user=uid, group=uid, extra_groups=[])
        try:
            p = subprocess.Popen(args, stdout=out, stderr=err, cwd="/",
                                 stdin=subprocess.DEVNULL,
                                 env={"PATH": os.environ.get("PATH", ""),
                                      "PYTHONDONTWRITEBYTECODE": "1",
                                      "HCONN_INTEGRITY_CLIENT": "1"},
                                 start_new_session=True, **kw)
        finally:
            out.close()
            err.close()
        procs.append((p, uid, path))
    return procs


SETTLE = 20   # seconds the pool gets to settle once every client has gone
STRAY_GRACE = 1.0   # seconds stray bytes may precede a request on their
                    # connection before the daemon should have seen them


def settle(d, origin):
    """Waits (at most SETTLE s) until nothing is busy in the pool and every
    held request of a departed client has been released."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline and d.alive():
        st = stats(d.socket)
        if st is not None and not busy_origins(st) and not origin.unreleased():
            return
        time.sleep(0.2)


def run_round(fails, fig, d, port, seed, clients, uids, episodes, kinds, tmp,
              tls_ca=None):
    """One round of client processes; returns ({nonce: (episode, item,
    uid, client)}, {nonce: what the client saw})."""
    items, results = {}, {}
    procs = spawn_clients(d, port, seed, clients, uids, episodes, kinds, tmp,
                          tls_ca)
    tls = None
    if tls_ca:
        with open(tls_ca) as f:
            tls = {"ca_pem": f.read()}
    for k, (p, uid, path) in enumerate(procs):
        for ep in client_plan(seed, k, port, episodes, kinds, tls):
            for it in ep["items"]:
                if it["kind"] != "garbage":
                    items[it["nonce"]] = (ep, it, uid, k)
    for k, (p, uid, path) in enumerate(procs):
        try:
            p.wait(timeout=600)
        except subprocess.TimeoutExpired:
            harness.kill_group(p)
            fails.add("e", "client", f"client {k} did not finish in 600 s")
        try:
            with open(path, "rb") as f:
                res = json.loads(f.read() or b"null")
        except ValueError:
            res = None
        if p.returncode != 0 or res is None:
            with open(path + ".err", errors="replace") as f:
                err = f.read()
            fails.add("e", "client", f"client {k} (uid {uid}) exited "
                      f"{p.returncode}: {harness.tail(err, 15)}")
            continue
        results.update(res["results"])
        for e in res["episode_errors"]:
            fig[f"episode_error:{e['type']}"] += 1
            ep_kinds = [items[n][1]["kind"] if n in items else "garbage"
                        for n in e["nonces"] if n]
            expected = any(items[n][1]["expect"] in ("pass", "either")
                           for n in e["nonces"] if n in items)
            if expected or not e["type"].startswith("cut_"):
                fails.add("b", e["type"], f"client {k} uid {uid} episode "
                          f"{e['episode']} ({','.join(ep_kinds)}) broke: "
                          f"{e['error']}")
        for g in res["garbage"]:
            check_garbage(fails, fig, g)
    return items, results


def run(seed=DEFAULT_SEED, clients=32, uids=16, episodes=12, kinds=None,
        out=sys.stdout, pool_max=4, minutes=None, front=False):
    """One run; returns (Failures, figures). With minutes, repeats rounds
    of clients against the same daemon and origin until the time is up.
    front: through nginx as an HTTP/2 TLS front (see the module's doc)."""
    if os.environ.get("HCONN_INTEGRITY_CLIENT"):
        raise RuntimeError("a client process must not start a run")
    harness.require_binary(None, harness.HCONND, "hconnd")
    fails = Failures()
    fig = collections.Counter()
    tmp = tempfile.mkdtemp(prefix="hconn-integrity-")
    os.chmod(tmp, 0o755)
    origin = RecordingOrigin()
    origin.start()
    conf = write_config(tmp, pool_max_per_origin=pool_max,
                        max_clients_per_uid=0)
    d = harness.Hconnd("--config", conf)
    log_text = ""
    ng = None
    port, tls_ca = origin.port, None
    nonce_uids = {}
    if front:
        kinds = set(kinds or ()) | FRONT_EXCLUDED
    try:
        if front:
            ng = harness.Nginx(http2=True, proxy_to=origin.port)
            ng.start()
            port = ng.tls_port
            tls_ca = os.path.join(tmp, "front-ca.crt")
            shutil.copyfile(ng.ca_file, tls_ca)
            os.chmod(tls_ca, 0o644)
        d.start()
        os.chmod(d.dir, 0o755)   # the socket's directory, for the clients
        out.write(f"integrity: seed {seed} (HCONN_INTEGRITY_SEED), "
                  f"{clients} clients as {uids} uids, {episodes} episodes "
                  f"each, pool_max_per_origin {pool_max}"
                  + (f", kinds {','.join(sorted(kinds))}" if kinds else "")
                  + "\n")
        out.flush()
        deadline = time.monotonic() + minutes * 60 if minutes else None
        rounds = 0
        conn_uids = collections.defaultdict(set)
        t0 = time.monotonic()
        while True:
            round_seed = seed + 1000003 * rounds
            items, results = run_round(fails, fig, d, port, round_seed,
                                       clients, uids, episodes, kinds, tmp,
                                       tls_ca)
            nonce_uids.update((n, v[2]) for n, v in items.items())
            rounds += 1
            last = deadline is None or time.monotonic() >= deadline
            if last:
                settle(d, origin)
            # Each round is checked on its own and its records dropped, so
            # a long run holds one round's bodies at a time.
            reqs, problems = origin.take()
            check_origin(fails, fig, port, reqs, problems, items,
                         conn_uids, h2=front)
            check_clients(fails, fig, reqs, items, results, front)
            if last:
                break
            out.write(f"  round {rounds}: {fig['messages']} messages, "
                      f"{fails.count()} failures\n")
            out.flush()
        fig["seconds"] = round(time.monotonic() - t0)
        fig["rounds"] = rounds
        fig["origin_connections"] = len(conn_uids)
        fig["origin_connections_shared_across_uids"] = sum(
            1 for v in conn_uids.values() if len(v) > 1)
        fig["max_uids_on_one_connection"] = max(
            (len(v) for v in conn_uids.values()), default=0)
        fig["stray_answers_sent"] = sum(1 for c in origin.connections
                                        if c.stray_sent)
        if ng is not None:
            front_figures(fig, ng.front_log_text(), nonce_uids)

        st = stats(d.socket) if d.alive() else None
        if not d.alive():
            rc = d.proc.poll()
            fails.add("e", "daemon", f"hconnd died: exit status {rc}"
                      + (f" ({signal.Signals(-rc).name})" if rc and rc < 0 else "")
                      + "; log tail:\n" + harness.tail(d.log_text(), 12))
        elif st is None or busy_origins(st):
            fails.add("e", "stats", f"{SETTLE} s after every client left, the "
                      f"pool still has {busy_origins(st) if st else 'no stats'}")
        for r in origin.unreleased():
            fails.add("e", "cut_hold", f"{r!r}: its client left, the daemon "
                      f"still holds its upstream connection ({SETTLE} s later)")
        fig["daemon_requests"] = st.get("requests", 0) if st else 0
    finally:
        try:
            if d.proc is not None and d.alive():
                d.stop(timeout=15)
        except AssertionError as e:
            fails.add("e", "daemon", str(e)[:600])
        log_text = d.log_text()
        d.cleanup()
        if ng is not None:
            ng.stop()
        origin.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    m = SANITIZER_RE.search(log_text)
    if m:
        i = m.start()
        fails.add("e", "sanitizer", log_text[max(0, i - 200):i + 1500])
    print_figures(out, fig, fails, seed)
    return fails, fig


def front_figures(fig, log, nonce_uids):
    """Figures of the HTTP/2 front from its log ("$connection $nonce
    $protocol" lines): requests over HTTP/2, hconnd's connections to it,
    how many of them carried requests of more than one uid."""
    conn_uids = collections.defaultdict(set)
    for line in log.splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        conn, nonce, proto = parts
        fig["front_requests"] += 1
        if proto == "HTTP/2.0":
            fig["front_http2_requests"] += 1
        if nonce in nonce_uids:
            conn_uids[conn].add(nonce_uids[nonce])
    fig["front_connections"] = len(conn_uids)
    fig["front_connections_shared_across_uids"] = sum(
        1 for v in conn_uids.values() if len(v) > 1)
    fig["max_uids_on_one_front_connection"] = max(
        (len(v) for v in conn_uids.values()), default=0)


def check_garbage(fails, fig, g):
    fig["garbage"] += 1
    r = g["reply"]
    if r is None or r.get("error") != "bad_message":
        if g.get("expect_id") == "s" and r and r.get("op") == "stats":
            return
        fails.add("d", "garbage", f"{g['bytes']!r} got {r!r} (want bad_message)")
    elif g["expect_id"] is not None and r.get("id") not in (None, g["expect_id"]):
        fails.add("b", "garbage", f"{g['bytes']!r}: error for id {r.get('id')!r}")


def check_origin(fails, fig, port, reqs, problems, all_items, conn_uids,
                 h2=False):
    """(a) and the origin half of (d), for one round's origin records."""
    copies = collections.Counter()
    for p in problems:
        fails.add("a", "origin_parse", f"connection {p[0]}: {p[1]} "
                  f"(next bytes {p[2]!r})")
    for req in reqs:
        fig["origin_requests"] += 1
        nonces = req.nonces
        if len(nonces) != 1:
            fails.add("a", "no_nonce", f"{req!r}: {len(nonces)} nonces "
                      f"{nonces!r} (bytes of no single client message; "
                      f"head {req.raw_head[:300]!r})")
            continue
        nonce = nonces[0]
        entry = all_items.get(nonce)
        if entry is None:
            kind = "smuggled" if nonce.startswith("smuggled-") else "unknown"
            fails.add("a", kind, f"{req!r}: nonce {nonce!r} was never sent as a "
                      f"request (head {req.raw_head[:300]!r})")
            continue
        ep, it, uid, k = entry
        conn_uids[req.conn].add(uid)
        if req.complete:
            copies[nonce] += 1
        if it["expect"] == "refuse":
            fails.add("d", it["kind"], f"{it.get('kind_detail', '')} refused "
                      f"message reached the origin: {req!r} head "
                      f"{req.raw_head[:300]!r}")
            continue
        if it["expect"] == "error" and req.complete:
            # A streamed body longer than the client's Content-Length: the
            # declared bytes may have gone before the excess came; never a
            # byte more (the excess carries a smuggled request).
            body = it["body"]
            if req.body != body[:len(req.body)] or \
                    len(req.body) != int(req.header("Content-Length") or -1):
                fails.add("d", it["kind"], f"wrong framing reached the origin: "
                          f"{req!r} body {req.body[:80]!r}")
                continue
            req = _with_body(req, body)
        diffs = compare_request(it, req, port, h2)
        if diffs:
            fails.add("a", it["kind"], f"{req!r} differs from client {k}'s "
                      f"message (uid {uid}): " + "; ".join(diffs))
    for nonce, n in copies.items():
        if n > 1:
            it = all_items[nonce][1]
            fails.add("a", it["kind"], f"nonce {nonce} reached the origin "
                      f"complete {n} times")


def _with_body(req, body):
    """A copy of origin request req whose body reads as body (for a
    comparison of everything but the body)."""
    r = copy.copy(req)
    r.body = body
    return r


def check_clients(fails, fig, reqs, all_items, results, front=False):
    """(b), (c) and the client half of (d), for one round. front: through
    the HTTP/2 front, whose own refusals (front_refuses) are counted, not
    judged."""
    by_nonce = collections.defaultdict(list)
    tokens = {}
    by_conn = collections.defaultdict(list)
    for req in reqs:
        for n in req.nonces:
            by_nonce[n].append(req)
        if req.token:
            tokens[req.token] = req
        by_conn[req.conn].append(req)
    fig["clients_uids"] = max(fig["clients_uids"],
                              len({v[2] for v in all_items.values()}))
    # Stray bytes the daemon could not have seen before it wrote the next
    # request on that connection (recording_origin._send_late): the
    # replies after them are not judged, unless that request came a whole
    # STRAY_GRACE later (then the bytes sat on the pooled connection).
    tainted = set()
    for conn_reqs in by_conn.values():
        taint_from = None
        for i, r in enumerate(conn_reqs):
            if taint_from is not None:
                tainted.update(r.nonces)
                continue
            if r.stray_late:
                fig[f"late_stray_{r.stray_late}"] += 1
            if r.stray_late in ("ambiguous", "race") and i + 1 < len(conn_reqs) \
                    and conn_reqs[i + 1].time - r.stray_time < STRAY_GRACE:
                taint_from = i + 1
    for nonce, (ep, it, uid, k) in all_items.items():
        rec = results.get(nonce)
        kind = it["kind"]
        fig["messages"] += 1
        fig[f"group:{it['group']}"] += 1
        if it["group"] in ("hostile", "framing_ok", "stray", "departure", "ids"):
            fig[f"kind:{kind}" + (f":{it['kind_detail']}" if it.get("kind_detail") else "")] += 1
        if rec is None:
            # Never read: its episode broke earlier (reported there).
            fig["unread"] += 1
            continue
        origin_reqs = by_nonce.get(nonce, [])
        if nonce in tainted:
            fig["judged_out_after_ambiguous_stray"] += 1
            if any(s.startswith("stray-") for s in rec.get("seen", [])):
                fig["stray_delivered_in_race"] += 1
            continue
        seen = [s for s in rec.get("seen", []) if s != nonce]
        for s in seen:
            bare = s.split("-", 1)[1] if s.startswith(("stray-", "smuggled-")) else s
            owner = all_items.get(bare)
            who = f"client {owner[3]} uid {owner[2]}" if owner else "nobody"
            what = ("an origin's stray bytes after the answer to"
                    if s.startswith("stray-") else
                    "a request smuggled in the body of" if s.startswith("smuggled-")
                    else "the nonce of")
            fails.add("c", kind, f"client {k} (uid {uid}) reply to {nonce} "
                      f"carries {what} {bare} ({who})")
        out = rec.get("outcome")
        exp = it["expect"]
        if exp == "cut":
            fig["departures"] += 1
            continue
        if out == "error":
            fig[f"error:{rec['error']}"] += 1
        if exp == "refuse":
            if out != "error":
                fails.add("d", kind, f"{it.get('kind_detail', '')} client {k} "
                          f"message {nonce} must be refused; got {out} "
                          f"{_rec_brief(rec)}")
            elif it["error"] and rec["error"] != it["error"]:
                fails.add("d", kind, f"refused with {rec['error']} "
                          f"({rec['message']}), want {it['error']}")
            continue
        if exp == "error":
            if out != "error":
                fails.add("d", kind, f"message {nonce} with a wrong body length "
                          f"got {out} {_rec_brief(rec)}")
            continue
        if exp == "either" and out == "error":
            if any(r.complete for r in origin_reqs):
                fails.add("d", kind, f"refused ({rec['error']}) yet the origin "
                          "got it")
            continue
        if front and front_refuses(it) and not origin_reqs and (
                (out == "response" and rec.get("status") == 400 and
                 _header(rec, "X-Echo-Nonce") is None) or
                (out == "no_continue" and
                 "'status': 400" in (rec.get("wrong") or ""))):
            fig["refused_by_the_front"] += 1
            continue
        # pass (or either, answered)
        if out != "response":
            fails.add("b" if it["group"] != "framing_ok" else "d", kind,
                      f"client {k} uid {uid} message {nonce} ({it['msg']['method']} "
                      f"{it['target']}) got {out}: {_rec_brief(rec)}")
            continue
        check_answer(fails, fig, tokens, it, rec, k, uid, nonce)


def _rec_brief(rec):
    keep = {k: v for k, v in rec.items() if k in ("error", "message", "status",
                                                   "wrong", "eof_after")}
    if rec.get("headers"):
        keep["echo_nonce"] = _header(rec, "X-Echo-Nonce")
    return repr(keep)[:400]


def _header(rec, name):
    for n, v in rec.get("headers") or []:
        if n.lower() == name.lower():
            return v
    return None


def check_answer(fails, fig, tokens, it, rec, k, uid, nonce):
    kind = it["kind"]
    who = f"client {k} uid {uid} {it['msg']['method']} {nonce}"
    echo_nonce = _header(rec, "X-Echo-Nonce")
    token = _header(rec, "X-Echo-Token")
    if echo_nonce != nonce:
        fails.add("b", kind, f"{who}: reply echoes nonce {echo_nonce!r} "
                  f"(status {rec.get('status')}, token {token}): it answers "
                  f"another message")
        return
    req = tokens.get(token)
    if req is None or nonce not in req.nonces:
        fails.add("b", kind, f"{who}: token {token!r} is not the one the origin "
                  f"issued for this message ({req!r})")
        return
    if _header(rec, "X-Echo-Method") != it["msg"]["method"] or \
            _header(rec, "X-Echo-Target") != it["target"]:
        fails.add("b", kind, f"{who}: reply echoes {_header(rec, 'X-Echo-Method')} "
                  f"{_header(rec, 'X-Echo-Target')}, sent {it['target']}")
    body = it["body"] or b""
    if not req.rejected and _header(rec, "X-Echo-Body") != hashlib.sha256(body).hexdigest():
        fails.add("a", kind, f"{who}: the origin got a body of "
                  f"{_header(rec, 'X-Echo-Length')} bytes, sent {len(body)}")
    status = it["status"]
    if rec.get("status") != status:
        fails.add("b", kind, f"{who}: status {rec.get('status')}, want {status}")
    bodiless = it["msg"]["method"] == "HEAD" or status in (204, 304)
    if bodiless:
        if rec.get("body_len") or rec.get("length") not in (0, None):
            fails.add("b", kind, f"{who}: bodiless answer with "
                      f"{rec.get('body_len')} body bytes, length {rec.get('length')}")
    else:
        echo = rec.get("echo")
        if not echo or echo.get("nonce") != nonce or echo.get("token") != token \
                or not echo.get("pad_ok"):
            fails.add("b", kind, f"{who}: body does not answer it: "
                      f"{echo or rec.get('body_excerpt')!r}")
    # A client "Expect: 100-continue" on a body is taken as
    # expect_continue (PROTOCOL.md 3.1).
    asks = any(isinstance(h, list) and len(h) == 2
               and str(h[0]).lower() == "expect"
               and str(h[1]).lower() == "100-continue"
               for h in it["msg"].get("headers") or [])
    ec = (it["msg"].get("expect_continue") or asks) and it["mode"] != "none"
    if rec.get("continues", 0) > 1:
        fails.add("b", kind, f"{who}: {rec['continues']} continue replies")
    if rec.get("continues") and it["msg"].get("raw"):
        fails.add("b", kind, f"{who}: continue reply in raw mode")
    elif rec.get("continues") and not ec:
        fails.add("b", kind, f"{who}: continue reply without expect_continue")
    fig["answered"] += 1
    if rec.get("reused"):
        fig["answered_on_reused_connection"] += 1


def print_figures(out, fig, fails, seed):
    out.write("integrity figures:\n")
    out.write(f"  seed {seed}; {fig['rounds']} round(s), {fig['seconds']} s\n")
    out.write(f"  client messages {fig['messages']} (+{fig['garbage']} garbage "
              f"lines), answered {fig['answered']} "
              f"({fig['answered_on_reused_connection']} on reused connections), "
              f"origin requests {fig['origin_requests']}, daemon requests "
              f"{fig['daemon_requests']}\n")
    out.write(f"  uids {fig['clients_uids']}; origin connections "
              f"{fig['origin_connections']}, shared across uids "
              f"{fig['origin_connections_shared_across_uids']} (up to "
              f"{fig['max_uids_on_one_connection']} uids on one); stray "
              f"answers sent {fig['stray_answers_sent']} (in a write of their "
              f"own: {fig['late_stray_clean']} while idle, "
              f"{fig['late_stray_ambiguous']} ambiguous, "
              f"{fig['late_stray_race']} racing the next request; "
              f"{fig['judged_out_after_ambiguous_stray']} replies not judged, "
              f"{fig['stray_delivered_in_race']} of them got stray bytes)\n")
    if fig["front_requests"]:
        out.write(f"  HTTP/2 front: {fig['front_requests']} requests "
                  f"({fig['front_http2_requests']} over HTTP/2) on "
                  f"{fig['front_connections']} hconnd connections, "
                  f"{fig['front_connections_shared_across_uids']} shared "
                  f"across uids (up to "
                  f"{fig['max_uids_on_one_front_connection']} uids on one)\n")
    groups = sorted((k[6:], v) for k, v in fig.items() if k.startswith("group:"))
    out.write("  by group: " + ", ".join(f"{k} {v}" for k, v in groups) + "\n")
    kinds = sorted((k[5:], v) for k, v in fig.items() if k.startswith("kind:"))
    out.write("  hostile and special cases by kind: "
              + ", ".join(f"{k} {v}" for k, v in kinds) + "\n")
    errs = sorted((k[6:], v) for k, v in fig.items() if k.startswith("error:"))
    out.write("  error replies: " + ", ".join(f"{k} {v}" for k, v in errs) + "\n")
    eps = sorted((k[14:], v) for k, v in fig.items() if k.startswith("episode_error:"))
    if eps:
        out.write("  broken episodes: " + ", ".join(f"{k} {v}" for k, v in eps) + "\n")
    if fails.count():
        out.write(f"FAILURES ({fails.count()}), seed {seed}:\n" + fails.report() + "\n")
    else:
        out.write("no failures\n")
    out.flush()


def seed_from_env():
    s = os.environ.get("HCONN_INTEGRITY_SEED")
    return int(s) if s else DEFAULT_SEED


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--client", dest="client_mode", action="store_true",
                    help=argparse.SUPPRESS)
    ap.add_argument("--socket", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tls-ca", help=argparse.SUPPRESS)
    ap.add_argument("--client-index", dest="client", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=seed_from_env(),
                    help=f"fixes every client's plan (default "
                    f"$HCONN_INTEGRITY_SEED, else {DEFAULT_SEED})")
    ap.add_argument("--clients", type=int, default=32,
                    help="client processes per round (default 32)")
    ap.add_argument("--uids", type=int, default=16,
                    help="distinct uids among them, from 61001 (default 16)")
    ap.add_argument("--episodes", type=int, default=12,
                    help="batches or scenarios per client and round "
                    "(default 12)")
    ap.add_argument("--kinds", default=None,
                    help="comma-separated kinds or groups to run; "
                    "-KIND leaves one out (benign,-big_inline)")
    ap.add_argument("--http2-front", action="store_true",
                    help="through nginx as an HTTP/2 TLS front, so hconnd "
                    "speaks HTTP/2 (default: straight to the origin)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="repeat rounds until this many minutes have passed "
                    "(default: one round)")
    args = ap.parse_args(argv)
    if args.client_mode:
        return client_main(args)
    kinds = set(args.kinds.split(",")) if args.kinds else None
    fails, fig = run(args.seed, args.clients, args.uids, args.episodes, kinds,
                     minutes=args.minutes, front=args.http2_front)
    return 1 if fails.count() else 0


if __name__ == "__main__":
    sys.exit(main())
