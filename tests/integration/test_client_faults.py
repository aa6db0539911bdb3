#!/usr/bin/env python3
"""Client-side faults: clients of hconnd that misbehave must cost only
themselves. A client that disconnects mid-response gets its upstream
connection closed, never pooled dirty; a client that stops reading stalls
its own stream while others go on and the daemon's memory stays bounded;
a client that sends garbage gets errors and the daemon goes on; 2,000
clients at once all get their answers."""

import contextlib
import fcntl
import json
import os
import random
import resource
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SMALL_BODY, big_bytes, http_response  # noqa: E402

OK_BODY = b"origin ok\n"
OK = [("send", http_response(200, OK_BODY))]
BIG = 8 * 1024 * 1024
H200 = b"HTTP/1.1 200 OK\r\n"


# What assertOriginSawClose reports when a connection outlived its client.
STILL_OPEN = "still open at the origin after the client left"


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled(sample, limit, timeout=15.0):
    """Polls sample() until it is <= limit (closes and frees land a moment
    after the replies that caused them); returns the last sample."""
    deadline = time.monotonic() + timeout
    value = sample()
    while value > limit and time.monotonic() < deadline:
        time.sleep(0.1)
        value = sample()
    return value


class DisconnectMidResponse(harness.IntegrationTest):
    """The origin sends part of a large body and waits (reading); the client
    goes away. The daemon must close that upstream connection: the origin
    sees EOF (or a reset), and the next request opens a new connection."""

    def setUp(self):
        # A request the daemon wrongly keeps waits for the read timeout; a
        # short shutdown_timeout keeps SIGTERM at cleanup from waiting too.
        conf_dir = tempfile.mkdtemp(prefix="hconn-client-faults-")
        self.addCleanup(shutil.rmtree, conf_dir, True)
        conf = os.path.join(conf_dir, "hconnd.json")
        with open(conf, "w") as f:
            json.dump({"shutdown_timeout": 1}, f)
        self.origin = self.start_origin({
            "/big": [("send", H200 + b"Content-Length: %d\r\n\r\n" % BIG),
                     ("stream", 1024 * 1024), ("keep_open",)],
            "/stall": [("keep_open",)],
            "/upload": OK,
            "/ok": OK,
        })
        self.daemon = self.start_daemon("--config", conf)

    def assertOriginSawClose(self, index):
        conn = self.origin.connections[index]
        self.assertTrue(conn.closed.wait(10),
                        f"{STILL_OPEN}: connection {index}: {conn.events!r}")
        last = conn.events[-1]
        self.assertTrue(last in (("eof",), ("reset",)) or (
            last[0] == "exception" and ("BrokenPipe" in last[1]
                                        or "ConnectionReset" in last[1])),
            f"connection {index} ended otherwise: {conn.events!r}")

    def assertNextRequestIsFresh(self, dirty):
        n = len(self.origin.connections)
        with harness.Wire(self.daemon.socket) as w:
            head, body, last = w.request(1, "GET", self.origin.url("/ok"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, OK_BODY)
        self.assertIs(head["reused"], False)
        self.assertEqual(len(self.origin.connections), n + 1)
        self.assertEqual(self.origin.requests[-1].conn_index, n)
        self.assertNotEqual(self.origin.requests[-1].conn_index, dirty)

    def test_disconnect_mid_body_closes_the_upstream_connection(self):
        w = harness.Wire(self.daemon.socket)
        w.send({"id": 1, "method": "GET", "url": self.origin.url("/big")})
        head = w.read_message()
        self.assertEqual(head.get("status"), 200, head)
        self.assertEqual(head["length"], BIG)
        frame = w.read_message()
        self.assertGreater(frame.get("data", 0), 0, frame)
        w.close()
        self.assertOriginSawClose(0)
        self.assertNextRequestIsFresh(0)

    def test_disconnect_before_the_head_closes_the_upstream_connection(self):
        w = harness.Wire(self.daemon.socket)
        w.send({"id": 1, "method": "GET", "url": self.origin.url("/stall")})
        self.assertTrue(self.origin.wait_requests(1))
        w.close()
        self.assertOriginSawClose(0)
        self.assertNextRequestIsFresh(0)

    def test_disconnect_mid_upload_never_completes_the_request(self):
        w = harness.Wire(self.daemon.socket)
        w.send({"id": 1, "method": "PUT", "url": self.origin.url("/upload"),
                "body": "stream"})
        w.send({"id": 1, "data": 5}, b"first")
        self.assertTrue(self.origin.wait_requests(1))
        w.close()
        self.assertOriginSawClose(0)
        req = self.origin.requests[0]
        self.assertFalse(req.complete, "a cut-short upload reached the origin "
                         f"as a complete request: {req!r}")
        self.assertNextRequestIsFresh(0)

    def test_disconnect_inside_an_inline_body_sends_nothing_whole(self):
        w = harness.Wire(self.daemon.socket)
        w.send_raw(json.dumps({"id": 1, "method": "POST",
                               "url": self.origin.url("/upload"),
                               "data": 1000}).encode() + b"\n" + b"x" * 10)
        w.close()
        with harness.Wire(self.daemon.socket) as other:
            head, body, last = other.request(2, "GET", self.origin.url("/ok"))
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], False)
        # A daemon that sends the POST at all sends it before that GET.
        self.origin.wait_for(
            lambda: any(r.method == "POST" for r in self.origin.requests), 2)
        for r in list(self.origin.requests):
            if r.method == "POST":
                self.assertFalse(r.complete, r)
                self.assertOriginSawClose(r.conn_index)

    def test_half_close_inside_an_upload_is_an_error_reply(self):
        # socat's way: the client's input ends but it still reads.
        w = harness.Wire(self.daemon.socket)
        w.send({"id": 1, "method": "PUT", "url": self.origin.url("/upload"),
                "body": "stream"})
        w.send({"id": 1, "data": 5}, b"first")
        self.assertTrue(self.origin.wait_requests(1))
        w.shutdown_write()
        reply = w.read_message()
        self.assertEqual(reply.get("id"), 1, reply)
        self.assertEqual(reply.get("error"), "bad_message", reply)
        self.assertIn("ended inside the request body, after 5 bytes",
                      reply.get("message", ""))
        w.expect_eof()
        w.close()
        self.assertOriginSawClose(0)
        self.assertFalse(self.origin.requests[0].complete)

    def test_repeated_disconnects_never_reuse_a_dirty_connection(self):
        base_fds = fd_count(self.daemon.pid)
        for i in range(10):
            w = harness.Wire(self.daemon.socket)
            w.send({"id": 1, "method": "GET", "url": self.origin.url("/big")})
            self.assertEqual(w.read_message().get("status"), 200)
            w.close()
            self.assertOriginSawClose(i)
        self.assertEqual([[r.target for r in c.requests]
                          for c in self.origin.connections],
                         [["/big"]] * 10)
        # Every session and upstream socket of those clients is gone.
        fds = settled(lambda: fd_count(self.daemon.pid), base_fds)
        self.assertLessEqual(fds, base_fds, "hconnd holds more fds than "
                             "before the clients came and went")


def tcp_buffer_max():
    """The most a loopback TCP connection can hold in flight: the largest
    receive buffer plus the largest send buffer the kernel may grow."""
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        with open(f"/proc/sys/net/ipv4/{name}") as f:
            total += int(f.read().split()[2])
    return total


class StalledReader(harness.IntegrationTest):
    """A client asks for a large body (64 MiB or more) and stops reading
    after the head. Its stream stalls (the origin's writes block well
    short of the body), other clients of the same origin go on, hconnd's
    memory stays bounded, and when the client reads again it gets every
    byte in order."""

    # What may sit between a stalled reader and the origin: hconnd's
    # stream buffer (256 KiB), its splice pipe, the Unix socket's buffers,
    # and the loopback TCP socket's: the kernel grows a receive buffer up
    # to tcp_rmem's maximum (32 MiB on some machines) while hconnd reads
    # fast, and a send buffer up to tcp_wmem's. The body is twice that,
    # so that stopping well short of it shows backpressure.
    SENT_LIMIT = tcp_buffer_max() + 8 * 1024 * 1024
    TOTAL = max(64 * 1024 * 1024, 2 * SENT_LIMIT)
    MOVED_LIMIT = 1024 * 1024
    RSS_GROWTH_LIMIT_KIB = 16 * 1024

    def test_stalled_stream_is_bounded_and_others_go_on(self):
        origin = self.start_origin({
            "/endless": [("send", H200 + b"Content-Length: %d\r\n\r\n"
                          % self.TOTAL), ("stream", self.TOTAL)],
            "/ok": OK,
        })
        daemon = self.start_daemon()
        base_rss = daemon.rss_kib()
        stalled = self.wire(daemon, timeout=60)
        stalled.recv_size = 4096
        stalled.send({"id": "s", "method": "GET",
                      "url": origin.url("/endless")})
        head = stalled.read_message()
        self.assertEqual(head.get("status"), 200, head)

        # Wait for the origin's writes to block: the count stops growing.
        sent = self.wait_stalled(origin)
        self.assertLess(sent, self.SENT_LIMIT,
                        f"the origin sent {sent} bytes to a client that "
                        "stopped reading: hconnd did not apply backpressure")
        rss = daemon.rss_kib()
        if not os.environ.get("HCONN_SANITIZED"):
            self.assertLess(rss - base_rss, self.RSS_GROWTH_LIMIT_KIB,
                            f"hconnd RSS grew from {base_rss} to {rss} kiB "
                            "behind a stalled reader")

        # Others go on, on other connections to the same origin.
        with harness.Wire(daemon.socket) as other:
            for i in range(20):
                h, body, last = other.request(i, "GET", origin.url("/ok"))
                self.assertOkResponse(h, last)
                self.assertEqual(body, OK_BODY)
        # The kernel may still let a little through a full receive buffer
        # (it collapses queued segments and reopens the window), never the
        # megabytes a stream read on regardless would move.
        moved = origin.sent.get(0) - sent
        self.assertLess(moved, self.MOVED_LIMIT,
                        f"the stalled stream moved {moved} bytes while "
                        "nobody read it")

        # The stalled client reads again and gets all of it, in order.
        stalled.recv_size = 1 << 20
        pattern = big_bytes(2 * (1 << 20) + 251)
        offset = [0]

        def check(piece):
            o = offset[0] % 251
            if piece != pattern[o:o + len(piece)]:
                raise AssertionError(f"body differs near byte {offset[0]}")
            offset[0] += len(piece)
        _, n, last = stalled.read_response_stream("s", check, head=head)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(n, self.TOTAL)

    def wait_stalled(self, origin, timeout=60.0):
        """The origin's byte count once it has not moved for 1.5 s (a
        loaded machine can leave one 0.5 s sample unchanged mid-flow)."""
        deadline = time.monotonic() + timeout
        last, same = -1, 0
        while time.monotonic() < deadline:
            now = origin.sent.get(0, 0)
            same = same + 1 if now == last and now > 0 else 0
            if same == 3:
                return now
            last = now
            time.sleep(0.5)
        self.fail(f"the origin never stalled ({last} bytes sent)")


class GarbageFromClients(harness.IntegrationTest):
    """Garbage gets one bad_message per non-blank line, in order, and the
    session goes on; other clients never notice."""

    def setUp(self):
        self.origin = self.start_origin({"/ok": OK})
        self.daemon = self.start_daemon()

    def assertWorks(self, w, rid="after"):
        head, body, last = w.request(rid, "GET", self.origin.url("/ok"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, OK_BODY)

    def read_errors(self, w, n):
        for i in range(n):
            msg = w.read_message()
            self.assertIsNotNone(msg, f"EOF after {i} of {n} errors")
            self.assertError(msg, "bad_message")
            self.assertNotIn("id", msg, msg)

    def test_random_bytes(self):
        rng = random.Random(7)
        lines = []
        for _ in range(500):
            n = rng.randrange(1, 200)
            line = bytes(rng.randrange(256) for _ in range(n))
            lines.append(line.replace(b"\n", b" "))
        # Blank lines (spaces, tabs, CR only) are ignored, not errors.
        errors = sum(1 for line in lines if line.strip(b" \t\r"))
        w = self.wire(self.daemon)
        bystander = self.wire(self.daemon)
        w.send_raw(b"\n".join(lines) + b"\n")
        self.assertWorks(bystander, "bystander")
        self.read_errors(w, errors)
        self.assertWorks(w)
        self.assertEqual([r.target for r in self.origin.requests],
                         ["/ok", "/ok"])

    def test_http_request_instead_of_json(self):
        w = self.wire(self.daemon)
        w.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.read_errors(w, 2)
        self.assertWorks(w)

    def test_endless_line_is_discarded_and_the_client_can_leave(self):
        w = self.wire(self.daemon)
        junk = bytes(random.Random(3).randrange(1, 256) for _ in range(4096))
        junk = junk.replace(b"\n", b"x")
        for _ in range(3 * 256):       # 3 MiB without a newline
            w.send_raw(junk)
        w.send_raw(b"\n")
        self.read_errors(w, 1)
        self.assertWorks(w)
        w.send_raw(junk)                # a partial line, then goodbye
        w.close()
        with harness.Wire(self.daemon.socket) as other:
            self.assertWorks(other)



class TwoThousandClients(harness.IntegrationTest):
    """2,000 Unix-socket clients connected at once, each with one request
    to nginx (GETs, and POSTs to /echo whose bodies name the client), driven
    from one process with selectors: every one gets its own answer."""

    CLIENTS = 2000

    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = cls.CLIENTS + 256
        if soft < need:
            if hard != resource.RLIM_INFINITY and hard < need:
                raise harness.missing(
                    f"RLIMIT_NOFILE hard limit {hard} < {need} fds needed")
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        cls.nginx = harness.start_class_nginx(cls)

    def test_2000_concurrent_clients(self):
        # Start hconnd as systemd would by default (LimitNOFILE=1024:hard):
        # it must raise its own soft limit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))
        # Every client here is root's: lift the per-uid share of the
        # client slots (a quarter of max_clients by default).
        config = os.path.join(self.nginx.dir, "hconnd-2000.json")
        with open(config, "w") as f:
            f.write('{"max_clients_per_uid": 0}')
        try:
            daemon = self.start_daemon("--config", config, verbosity=0)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        limit = self.daemon_fd_limit(daemon.pid)
        self.assertGreater(limit, self.CLIENTS + 16,
                           f"hconnd started with a soft limit of 1024 open "
                           f"files keeps {limit}: it must raise it to the "
                           "hard limit")
        base_fds = fd_count(daemon.pid)
        sel = selectors.DefaultSelector()
        clients = []
        try:
            for i in range(self.CLIENTS):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                clients.append(s)
                s.settimeout(30)
                s.connect(daemon.socket)
            self.assertTrue(harness.wait_for_unix(daemon.socket))
            for i, s in enumerate(clients):
                if i % 2:
                    body = b"client %d\n" % i
                    req = {"id": i, "method": "POST",
                           "url": self.nginx.url("/echo"), "data": len(body)}
                else:
                    body = b""
                    req = {"id": i, "method": "GET",
                           "url": self.nginx.url("/small.txt")}
                s.sendall(json.dumps(req).encode() + b"\n" + body)
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, _Reader(i))
            done = {}
            deadline = time.monotonic() + 300
            while len(done) < self.CLIENTS and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1.0):
                    reader = key.data
                    try:
                        chunk = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        reader.eof = True
                    reader.feed(chunk)
                    if reader.finished:
                        done[reader.rid] = reader
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
        finally:
            sel.close()
            for s in clients:
                s.close()
        self.assertEqual(len(done), self.CLIENTS,
                         f"{self.CLIENTS - len(done)} clients got no complete "
                         "answer")
        for i in range(self.CLIENTS):
            r = done[i]
            want = b"client %d\n" % i if i % 2 else SMALL_BODY
            self.assertIsNone(r.error, f"client {i}: {r.error!r}")
            self.assertEqual(r.head["status"], 200, f"client {i}: {r.head!r}")
            self.assertEqual(bytes(r.body), want, f"client {i}")
        self.assertTrue(daemon.alive())
        # All 2,000 sessions are closed: back to the listener plus at most
        # the idle pool (pool_max_per_origin).
        fds = settled(lambda: fd_count(daemon.pid), base_fds + 16)
        self.assertLessEqual(fds, base_fds + 16)

    @staticmethod
    def daemon_fd_limit(pid):
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
        raise AssertionError("no Max open files in /proc/PID/limits")


class DeparturesAmongQueuedReplies(harness.IntegrationTest):
    """Many clients each wait for a reply; every answer arrives at once
    and half the clients leave at that moment. hconnd runs the flushes of
    a loop turn as one batch: a session that leaves after asking for its
    flush, but before the batch reaches it, must be dropped from the
    batch, and the clients that stayed must each get their own answer,
    whole, and go on.

    Which sessions are caught between asking and the batch depends on how
    libevent splits the wake-up into loop turns: an upstream's read
    callback is deferred, so a reply is queued in the same turn as its
    client's end of input is read only when that callback was held over
    from the turn before (libevent runs at most 32 deferred callbacks a
    turn), ahead of the next turn's reads. At 96 clients runs caught 3
    to 33 sessions that way (48 clients: 0 to 9), each one a
    use-after-free under ASan if session_free left it on the list."""

    CLIENTS = 96
    ROUNDS = 4

    @staticmethod
    def wait_answers_delivered(origin, nbytes, timeout=20.0):
        """Waits until the origin has written nbytes of answers and the
        kernel has acknowledged every byte of them: they are in hconnd's
        sockets, ready for its next wake-up."""
        if not origin.wait_for(lambda: sum(origin.sent.values()) >= nbytes,
                               timeout):
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with origin.lock:
                socks = list(origin.sockets)
            unacked = 0
            for s in socks:
                with contextlib.suppress(OSError):
                    unacked += struct.unpack("i", fcntl.ioctl(
                        s.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
            if unacked == 0:
                return True
            time.sleep(0.002)
        return False

    def test_clients_leaving_while_replies_are_queued(self):
        # Each round's answers wait at the origin for that round's gate.
        gates = [threading.Event() for _ in range(self.ROUNDS)]
        answers = {(rnd, i): http_response(
            200, b"answer to /%d/%d\n" % (rnd, i))
            for rnd in range(self.ROUNDS) for i in range(self.CLIENTS)}
        origin = self.start_origin({
            f"/{rnd}/{i}": [("wait", gates[rnd]), ("send", answer)]
            for (rnd, i), answer in answers.items()})
        # Registered after the origin, so run before its stop: a failed
        # round must not leave origin threads waiting on a gate (stop
        # would give each of them 5 s).
        self.addCleanup(lambda: [g.set() for g in gates])
        daemon = self.start_daemon_config(max_clients_per_uid=0,
                                          pool_max_per_origin=self.CLIENTS)
        answered = 0
        for rnd in range(self.ROUNDS):
            clients = [self.wire(daemon) for _ in range(self.CLIENTS)]
            for i, w in enumerate(clients):
                w.send({"id": i, "method": "GET",
                        "url": origin.url(f"/{rnd}/{i}")})
            self.assertTrue(
                origin.wait_requests(self.CLIENTS * (rnd + 1), timeout=20),
                f"round {rnd}: the origin never saw every request")
            answered += sum(len(answers[rnd, i])
                            for i in range(self.CLIENTS))
            # Stopped, hconnd finds the answers and the departures
            # ready together on its next wake-up, answers first.
            os.kill(daemon.pid, signal.SIGSTOP)
            try:
                self.assertTrue(harness.wait_stopped(daemon.pid),
                                f"round {rnd}: SIGSTOP did not stop hconnd")
                gates[rnd].set()
                self.assertTrue(
                    self.wait_answers_delivered(origin, answered),
                    f"round {rnd}: the answers never reached hconnd")
                for w in clients[1::2]:
                    w.close()
            finally:
                os.kill(daemon.pid, signal.SIGCONT)
            for i, w in enumerate(clients[0::2]):
                rid = 2 * i
                head, body, last = w.read_response(rid)
                self.assertEqual(head["status"], 200, f"round {rnd}")
                self.assertEqual(body, b"answer to /%d/%d\n" % (rnd, rid))
                self.assertIs(last.get("end"), True, f"round {rnd}: {last}")
                w.send({"id": "after", "op": "stats"})
                self.assertEqual(w.read_message().get("id"), "after")
                w.close()
            self.assertTrue(daemon.alive(), f"round {rnd}")
            self.assertEqual(origin.errors, [])


class ReplyQueuedWhilePipelinedRequestIsRead(harness.IntegrationTest):
    """A reply and the client's next pipelined request reach hconnd in the
    same wake-up: the reply is queued and flushed while the session reads
    what its client sent, the next request cut at every kind of place
    (none of it, a byte, half, all but the newline, all of it with half of
    the one after). Each reply comes whole and in order, and the cut
    request is served once its rest arrives."""

    def test_pipelined_request_cut_anywhere(self):
        for cut in ("none", "one", "half", "no-newline", "whole+half"):
            with self.subTest(cut=cut):
                self.run_cut(cut)

    def run_cut(self, cut):
        gate = threading.Event()
        first = http_response(200, b"first\n" * 500)
        origin = self.start_origin({
            "/1": [("wait", gate), ("send", first)],
            "/2": [("send", http_response(200, b"second\n" * 500))],
            "/3": [("send", http_response(200, b"third\n"))]})
        self.addCleanup(gate.set)
        daemon = self.start_daemon()
        w = self.wire(daemon)

        def req(rid):
            return json.dumps({"id": rid, "method": "GET",
                               "url": origin.url(f"/{rid}")},
                              separators=(",", ":")).encode() + b"\n"

        w.send_raw(req(1))
        self.assertTrue(origin.wait_requests(1))
        second, third = req(2), req(3)
        early = {"none": b"", "one": second[:1],
                 "half": second[:len(second) // 2],
                 "no-newline": second[:-1],
                 "whole+half": second + third[:len(third) // 2]}[cut]
        # Stopped, hconnd finds the answer and the client's bytes ready
        # together on its next wake-up.
        os.kill(daemon.pid, signal.SIGSTOP)
        try:
            self.assertTrue(harness.wait_stopped(daemon.pid))
            gate.set()
            self.assertTrue(DeparturesAmongQueuedReplies
                            .wait_answers_delivered(origin, len(first)))
            if early:
                w.send_raw(early)
        finally:
            os.kill(daemon.pid, signal.SIGCONT)
        head, body, last = w.read_response(1)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(body, b"first\n" * 500)
        w.send_raw((second + third)[len(early):])
        head, body, last = w.read_response(2)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(body, b"second\n" * 500)
        head, body, last = w.read_response(3)
        self.assertEqual(body, b"third\n")
        self.assertTrue(daemon.alive())
        self.assertEqual(origin.errors, [])


class _Reader:
    """Incremental parser of one request's replies (head, data, end or
    error) from a non-blocking socket."""

    def __init__(self, rid):
        self.rid = rid
        self.buf = bytearray()
        self.head = None
        self.body = bytearray()
        self.error = None
        self.finished = False
        self.eof = False
        self.want = None          # payload bytes still due

    def feed(self, chunk):
        self.buf += chunk
        while not self.finished:
            if self.want is not None:
                take = min(self.want, len(self.buf))
                self.body += self.buf[:take]
                del self.buf[:take]
                self.want -= take
                if self.want:
                    break
                self.want = None
                continue
            i = self.buf.find(b"\n")
            if i < 0:
                break
            msg = json.loads(bytes(self.buf[:i]))
            del self.buf[:i + 1]
            if msg.get("id") != self.rid:
                self.fail(f"reply for id {msg.get('id')!r}: {msg!r}")
            elif "error" in msg:
                self.fail(msg)
            elif "status" in msg:
                self.head = msg
            elif "data" in msg:
                self.want = msg["data"]
            elif msg.get("end") is True:
                self.finished = True
        if self.eof and not self.finished:
            self.fail(f"EOF after {len(self.body)} body bytes")

    def fail(self, error):
        self.error = error
        self.finished = True


if __name__ == "__main__":
    harness.main()
