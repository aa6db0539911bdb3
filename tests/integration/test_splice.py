#!/usr/bin/env python3
"""Zero-copy large bodies (issue 19, item 3): the rest of a large
Content-Length body goes from the origin's socket to the client's through
a pipe (splice), in framed and raw mode, with the copying path's
guarantees: exact frame lengths, a body cut short is an incomplete_read
error (framed) or a short read then the end of the connection (raw), a
client that does not read stalls only its own request with bounded
memory, a client that leaves mid-body costs nothing lasting, and replies
to pipelined requests keep their order.

The origin is a scripted one whose body waits, where the test needs it,
for a gate the test opens once the client has the head: the daemon has
then parsed the head with nothing of the body behind it, so the whole
body is what the splice path is offered, whatever the machine's timing.
Which path a body took shows in the daemon's debug log ("spliced")."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import other_user  # noqa: E402
from harness import big_bytes  # noqa: E402

# daemon/splice.h SPLICE_MIN_BYTES: the least a body must still owe.
THRESHOLD = 64 * 1024


def head(length):
    """A keep-alive response head announcing length body bytes."""
    return (f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()


class GatedOrigin(harness.FaultOrigin):
    """A FaultOrigin with one more step, ("wait", event): holds the
    response until the test sets the event (no timing in the test)."""

    def _run(self, s, buf, conn, steps, req):
        while steps and steps[0][0] == "wait":
            steps[0][1].wait(60)
            steps = steps[1:]
        if any(step[0] == "wait" for step in steps):
            i = next(i for i, step in enumerate(steps) if step[0] == "wait")
            return (super()._run(s, buf, conn, steps[:i], req)
                    and self._run(s, buf, conn, steps[i:], req))
        return super()._run(s, buf, conn, steps, req)


class SpliceTest(harness.IntegrationTest):

    def setUp(self):
        self.gates = {}
        self.origin = GatedOrigin()
        self.scenarios = self.origin.scenarios
        self.addCleanup(self.origin.stop)
        self.origin.start()
        self.daemon = self.start_daemon()

    def gate(self, name):
        g = self.gates[name] = threading.Event()
        self.addCleanup(g.set)
        return g

    def body_after_gate(self, path, announced, sent=None, then=("close",)):
        """Path's answer: the head at once, then (once the test opens the
        path's gate) sent body bytes of the announced ones, then `then`."""
        sent = announced if sent is None else sent
        steps = [("send", head(announced)), ("wait", self.gate(path))]
        if sent:
            steps.append(("stream", sent, 1 << 16))
        if then:
            steps.append(then)
        self.scenarios[path] = steps

    def request(self, rid, path, **extra):
        req = dict({"method": "GET", "url": self.origin.url(path)}, **extra)
        if rid is not None:
            req["id"] = rid
        return req

    def spliced(self):
        """The daemon's "spliced" debug lines so far."""
        return [line for line in self.daemon.log_text().splitlines()
                if "body bytes spliced" in line]

    def read_framed(self, w, rid, path):
        """Reads the head, opens path's gate, then the rest."""
        first = w.read_message()
        self.assertEqual(first.get("id"), rid, first)
        self.assertIn("status", first, first)
        self.gates[path].set()
        return (first,) + self.read_rest(w, rid)

    def read_rest(self, w, rid):
        """The data frames after a head, then the end or error."""
        body = bytearray()
        while True:
            msg = w.read_message()
            self.assertIsNotNone(msg, f"EOF inside the response to {rid}")
            self.assertEqual(msg.get("id"), rid, msg)
            if "data" in msg:
                self.assertEqual(set(msg), {"id", "data", "_payload"}, msg)
                body += msg["_payload"]
                continue
            self.assertTrue("end" in msg or "error" in msg, msg)
            return bytes(body), msg

    # Framed mode ----------------------------------------------------------

    def test_framed_download_is_exact(self):
        n = 8 * 1024 * 1024 + 7
        self.body_after_gate("/big", n, then=None)
        w = self.wire(self.daemon)
        w.send(self.request(1, "/big"))
        h, body, last = self.read_framed(w, 1, "/big")
        self.assertOkResponse(h, last)
        self.assertEqual(h["length"], n)
        self.assertEqual(len(body), n)
        self.assertTrue(body == big_bytes(n), "body bytes differ")
        self.assertEqual(len(self.spliced()), 1, self.spliced())
        self.assertIn(f"{n} body bytes spliced", self.spliced()[0])
        # The connection was read exactly to the body's end: it is pooled
        # and serves the next request.
        self.body_after_gate("/again", 100 * 1024, then=None)
        w.send(self.request(2, "/again"))
        h, body, last = self.read_framed(w, 2, "/again")
        self.assertOkResponse(h, last)
        self.assertTrue(body == big_bytes(100 * 1024))
        self.assertEqual(len(self.origin.connections), 1)
        self.assertIs(h.get("reused"), True, h)

    def test_framed_truncation_is_incomplete_read_with_exact_counts(self):
        n, cut = 4 * 1024 * 1024, 1024 * 1024 + 123
        self.body_after_gate("/cut", n, sent=cut)
        w = self.wire(self.daemon)
        w.send(self.request(1, "/cut"))
        h, body, last = self.read_framed(w, 1, "/cut")
        self.assertError(last, "incomplete_read", 1)
        self.assertEqual(last.get("received"), cut, last)
        self.assertEqual(last.get("expected"), n, last)
        self.assertEqual(len(body), cut)
        self.assertTrue(body == big_bytes(cut))
        self.assertIn("cut short", self.spliced()[0])
        # The session goes on.
        w.send({"op": "hello"})
        self.assertIn("version", w.read_message())

    def test_framed_close_right_after_head(self):
        n = 1024 * 1024
        self.body_after_gate("/none", n, sent=0)
        w = self.wire(self.daemon)
        w.send(self.request(1, "/none"))
        h, body, last = self.read_framed(w, 1, "/none")
        self.assertError(last, "incomplete_read", 1)
        self.assertEqual((last.get("received"), last.get("expected")),
                         (0, n), last)
        self.assertEqual(body, b"")

    def test_sizes_around_the_threshold(self):
        sizes = [THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 3 * THRESHOLD]
        for i, n in enumerate(sizes):
            self.body_after_gate(f"/s{i}", n, then=None)
        w = self.wire(self.daemon)
        for i, n in enumerate(sizes):
            before = len(self.spliced())
            w.send(self.request(i, f"/s{i}"))
            h, body, last = self.read_framed(w, i, f"/s{i}")
            self.assertOkResponse(h, last)
            self.assertTrue(body == big_bytes(n), f"body of {n} differs")
            self.assertEqual(len(self.spliced()) - before,
                             0 if n < THRESHOLD else 1,
                             f"size {n}: {self.spliced()}")

    def test_pipelined_behind_a_full_window(self):
        """The second of two pipelined bodies fills its window while the
        first is spliced; once it heads the queue, what its window holds
        goes out before its own bytes are spliced, and all of it does
        (a remainder the session wrote past the window once stayed)."""
        d = self.start_daemon_config(stream_buffer_bytes=64 * 1024)
        a, b = 2 * 1024 * 1024, 1024 * 1024
        self.body_after_gate("/a", a, then=None)
        self.scenarios["/b"] = [("send", head(b)), ("stream", b, 1 << 16)]
        w = self.wire(d)
        for _ in range(3):
            w.send(self.request(1, "/a"))
            w.send(self.request(2, "/b"))
            self.assertTrue(self.origin.wait_for(
                lambda: any(r.target == "/b" for r in self.origin.requests)))
            h1, body1, last1 = self.read_framed(w, 1, "/a")
            self.assertOkResponse(h1, last1)
            self.assertTrue(body1 == big_bytes(a))
            first = w.read_message()
            self.assertIn("status", first)
            body2, last2 = self.read_rest(w, 2)
            self.assertIs(last2.get("end"), True, last2)
            self.assertTrue(body2 == big_bytes(b))
            self.gate("/a")
            self.body_after_gate("/a", a, then=None)
        self.assertIn("body bytes spliced", d.log_text())

    def test_long_ids(self):
        """A frame header is written from a fixed buffer: the longest
        plain id fits it and is spliced; an id whose escapes take it past
        that buffer gets its body copied, with the same bytes."""
        n = 1024 * 1024
        for i, rid in enumerate(("x" * 256, "\x01" * 256)):
            before = len(self.spliced())
            self.body_after_gate(f"/id{i}", n, then=None)
            w = self.wire(self.daemon)
            w.send(self.request(rid, f"/id{i}"))
            h, body, last = self.read_framed(w, rid, f"/id{i}")
            self.assertOkResponse(h, last)
            self.assertTrue(body == big_bytes(n))
            self.assertEqual(len(self.spliced()) - before, 1 - i)

    def test_off_by_environment_copies(self):
        """HCONND_SPLICE=0 (the benchmark's A/B switch) keeps the copying
        path, with the same bytes."""
        d = self.start_daemon(env={"HCONND_SPLICE": "0"})
        n = 2 * 1024 * 1024
        self.body_after_gate("/copy", n, then=None)
        w = self.wire(d)
        w.send(self.request(1, "/copy"))
        h, body, last = self.read_framed(w, 1, "/copy")
        self.assertOkResponse(h, last)
        self.assertTrue(body == big_bytes(n))
        self.assertNotIn("body bytes spliced", d.log_text())

    def test_origin_silent_mid_body_times_out_after_whole_frames(self):
        n, sent = 4 * 1024 * 1024, 1024 * 1024
        self.body_after_gate("/stall", n, sent=sent, then=("hold",))
        w = self.wire(self.daemon)
        w.send(self.request(1, "/stall", read_timeout=0.5))
        h, body, last = self.read_framed(w, 1, "/stall")
        self.assertError(last, "timeout", 1)
        self.assertEqual(len(body), sent)
        self.assertTrue(body == big_bytes(sent))
        self.assertIn("cut short", self.spliced()[0])
        w.send({"op": "hello"})
        self.assertIn("version", w.read_message())

    def test_request_timeout_while_the_client_is_behind(self):
        """request_timeout ends a request whose client stopped reading
        mid-body: the client gets whole frames then the error line, or,
        when a frame was under way, the end of the connection; never a
        line inside a frame's bytes."""
        d = self.start_daemon_config(request_timeout=1.0)
        n = 64 * 1024 * 1024
        self.body_after_gate("/behind", n, then=None)
        w = self.wire(d)
        w.send(self.request(1, "/behind"))
        self.assertIn("status", w.read_message())
        self.gates["/behind"].set()
        self.assertTrue(self.origin.wait_for(
            lambda: "request_timeout" in d.log_text(), 30))
        body = bytearray()
        last = None
        try:
            while True:
                msg = w.read_message()
                if msg is None or "data" not in msg:
                    last = msg
                    break
                body += msg["_payload"]
        except harness.WireError as e:
            self.assertIn("EOF after", str(e))     # cut inside a frame
        self.assertLess(len(body), n)
        self.assertTrue(body == big_bytes(len(body)), "a frame's bytes differ")
        if last is not None:
            self.assertError(last, "timeout", 1)

    def test_uid_over_its_share_copies(self):
        """A uid whose share cannot take a pipe more gets its body through
        the copying path, which keeps within the share by pausing."""
        d = self.start_daemon_config(max_held_bytes_per_uid=64 * 1024,
                                     stream_buffer_bytes=64 * 1024)
        n = 4 * 1024 * 1024
        self.body_after_gate("/share", n, then=None)
        w = self.wire(d)
        w.send(self.request(1, "/share"))
        h, body, last = self.read_framed(w, 1, "/share")
        self.assertOkResponse(h, last)
        self.assertTrue(body == big_bytes(n))
        self.assertNotIn("body bytes spliced", d.log_text())

    # Raw mode -------------------------------------------------------------

    def raw(self, path):
        w = self.wire(self.daemon)
        w.send(self.request(None, path, raw=True))
        first = json.loads(w.read_line())
        self.gates[path].set()
        return first, w.read_all()

    def test_raw_download_is_exact(self):
        n = 6 * 1024 * 1024 + 1
        self.body_after_gate("/raw", n, then=None)
        h, body = self.raw("/raw")
        self.assertEqual(h["status"], 200)
        self.assertEqual(len(body), n)
        self.assertTrue(body == big_bytes(n))
        self.assertEqual(len(self.spliced()), 1)

    def test_raw_truncation_is_short_then_closed(self):
        n, cut = 4 * 1024 * 1024, 2 * 1024 * 1024 + 5
        self.body_after_gate("/rawcut", n, sent=cut)
        h, body = self.raw("/rawcut")
        self.assertEqual(h["length"], n)
        self.assertEqual(len(body), cut)
        self.assertTrue(body == big_bytes(cut))
        self.assertIn("cut short", self.spliced()[0])
        self.assertIn("incomplete_read", self.daemon.log_text())

    # Clients --------------------------------------------------------------

    def pipes_open(self):
        """The distinct pipes the daemon holds open."""
        pipes = set()
        for fd in os.listdir(f"/proc/{self.daemon.pid}/fd"):
            try:
                link = os.readlink(f"/proc/{self.daemon.pid}/fd/{fd}")
            except FileNotFoundError:
                continue        # closed meanwhile
            if link.startswith("pipe:"):
                pipes.add(link)
        return len(pipes)

    def test_slow_client_stalls_only_itself(self):
        big, other = 64 * 1024 * 1024, 8 * 1024 * 1024
        self.body_after_gate("/slow", big, then=None)
        self.body_after_gate("/other", other, then=None)
        pipes0 = self.pipes_open()
        slow = self.wire(self.daemon, timeout=60)
        slow.recv_size = 4096
        slow.send(self.request(1, "/slow"))
        self.assertIn("status", slow.read_message())
        self.gates["/slow"].set()
        first = slow.read_message()           # the first data frame only
        self.assertIn("data", first)
        # Another client's download goes through meanwhile.
        w = self.wire(self.daemon)
        w.send(self.request(2, "/other"))
        h, body, last = self.read_framed(w, 2, "/other")
        self.assertOkResponse(h, last)
        self.assertTrue(body == big_bytes(other))
        # The slow request holds one pipe, and the origin is held back by
        # it: what was sent is bounded by socket buffers and one pipe,
        # far short of the body.
        self.assertEqual(self.pipes_open(), pipes0 + 1)
        # The pipe is charged to the client's uid, as the bytes the
        # copying path would hold.
        w.send({"op": "stats"})
        self.assertGreaterEqual(w.read_message()["held_bytes"], 256 * 1024)
        slow_conn = next(r.conn_index for r in self.origin.requests
                         if r.target == "/slow")
        self.assertLess(self.origin.sent.get(slow_conn, 0), big // 4)
        # Then it reads all, exactly.
        slow.recv_size = 1 << 20
        body, last = self.read_rest(slow, 1)
        self.assertIs(last.get("end"), True, last)
        self.assertEqual(len(first["_payload"]) + len(body), big)
        self.assertTrue(first["_payload"] + body == big_bytes(big))
        self.assertEqual(self.pipes_open(), pipes0)

    def daemon_side_sndbuf(self, w):
        """The send buffer (SO_SNDBUF, as the kernel keeps it) of the
        daemon's end of w's connection, from ss(8): the socket whose peer
        is w's."""
        ino = os.fstat(w.sock.fileno()).st_ino
        out = subprocess.run(["ss", "-xmH"], capture_output=True, text=True,
                             check=True).stdout
        # Netid State Recv-Q Send-Q Local Inode Peer Inode skmem:(...)
        row = re.compile(r"u_str\s+\S+\s+\d+\s+\d+\s+\S+\s+(\d+)\s+\S+\s+"
                         r"(\d+)\s.*\btb(\d+)")
        for line in out.splitlines():
            m = row.match(line)
            if m and int(m.group(2)) == ino:
                return int(m.group(3))
        self.fail(f"no socket with peer {ino} in ss -xm:\n{out[-2000:]}")

    def test_client_socket_widened_while_spliced(self):
        """While a body is spliced, the client's socket holds 16 pipes'
        worth (a Unix socket wakes its writer only when three quarters are
        read: with its default buffer the client ran dry on nearly every
        hand-off of a download), charged to its uid; afterwards it is as
        it was."""
        if shutil.which("ss") is None:
            self.skipTest("needs ss (iproute2)")
        window = 256 * 1024      # stream_buffer_bytes: the pipe
        with open("/proc/sys/net/core/wmem_max") as f:
            wmem_max = int(f.read())
        with open("/proc/sys/net/core/wmem_default") as f:
            usual = int(f.read())
        wide = 2 * min(8 * window, wmem_max)   # the kernel doubles it
        if wide <= usual:
            self.skipTest(f"net.core.wmem_max {wmem_max} leaves no room")
        big = 32 * 1024 * 1024
        self.body_after_gate("/wide", big, then=None)
        self.body_after_gate("/next", 1024 * 1024, then=None)
        self.body_after_gate("/small", 1024, then=None)
        w = self.wire(self.daemon, timeout=60)
        stats = self.wire(self.daemon)
        stats.send({"op": "stats"})
        held0 = stats.read_message()["held_bytes"]
        w.recv_size = 4096
        self.assertEqual(self.daemon_side_sndbuf(w), usual)
        w.send(self.request(1, "/wide"))
        self.assertIn("status", w.read_message())
        self.gates["/wide"].set()
        first = w.read_message()          # w stops reading here
        self.assertIn("data", first)
        # Bytes that came with the head's read are copied first: the pump
        # starts once they are out.
        deadline = time.monotonic() + 30
        while self.daemon_side_sndbuf(w) != wide and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.daemon_side_sndbuf(w), wide)
        stats.send({"op": "stats"})
        self.assertGreaterEqual(stats.read_message()["held_bytes"],
                                held0 + window + wide - usual)
        w.recv_size = 1 << 20
        body, last = self.read_rest(w, 1)
        self.assertIs(last.get("end"), True, last)
        self.assertTrue(first["_payload"] + body == big_bytes(big))
        self.assertEqual(len(self.spliced()), 1, self.spliced())
        # The pump is gone: the socket is back to its usual buffer, and the
        # next body is spliced again.
        self.assertEqual(self.daemon_side_sndbuf(w), usual)
        w.send(self.request(2, "/next"))
        h, body, last = self.read_framed(w, 2, "/next")
        self.assertOkResponse(h, last)
        self.assertTrue(body == big_bytes(1024 * 1024))
        self.assertEqual(len(self.spliced()), 2, self.spliced())
        self.assertEqual(self.daemon_side_sndbuf(w), usual)
        # All read, the client's next message settles what its socket was
        # charged (test_unread_socket_room_stays_charged): all given back.
        w.send(self.request(3, "/small"))
        h, body, last = self.read_framed(w, 3, "/small")
        self.assertOkResponse(h, last)
        stats.send({"op": "stats"})
        self.assertEqual(stats.read_message()["held_bytes"], held0)

    def test_unread_socket_room_stays_charged(self):
        """Bytes the widened socket took and the client has not read stay
        charged to its uid after the pump ends (the kernel holds them for
        it), and are given back once read: a client cannot leave megabytes
        in each of its sockets uncharged."""
        if shutil.which("ss") is None:
            self.skipTest("needs ss (iproute2)")
        window = 256 * 1024
        with open("/proc/sys/net/core/wmem_max") as f:
            wmem_max = int(f.read())
        n = 2 * 1024 * 1024
        if 2 * min(8 * window, wmem_max) < n + (512 << 10):
            self.skipTest(f"net.core.wmem_max {wmem_max} cannot hold {n}")
        self.body_after_gate("/unread", n, then=None)
        self.body_after_gate("/after", 1024, then=None)
        w = self.wire(self.daemon, timeout=60)
        stats = self.wire(self.daemon)
        stats.send({"op": "stats"})
        held0 = stats.read_message()["held_bytes"]
        w.recv_size = 4096
        w.send(self.request(1, "/unread"))
        self.assertIn("status", w.read_message())
        self.gates["/unread"].set()
        first = w.read_message()          # w stops reading here
        self.assertIn("data", first)
        deadline = time.monotonic() + 30
        while not self.spliced() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(self.spliced()), 1, self.daemon.log_text()[-2000:])
        stats.send({"op": "stats"})
        self.assertGreaterEqual(stats.read_message()["held_bytes"],
                                held0 + 1024 * 1024)
        w.recv_size = 1 << 20
        body, last = self.read_rest(w, 1)
        self.assertIs(last.get("end"), True, last)
        self.assertTrue(first["_payload"] + body == big_bytes(n))
        # The next request settles what the client has read since.
        w.send(self.request(2, "/after"))
        h, body, last = self.read_framed(w, 2, "/after")
        self.assertOkResponse(h, last)
        stats.send({"op": "stats"})
        self.assertEqual(stats.read_message()["held_bytes"], held0)

    def test_other_uids_unread_sockets_count_against_its_share(self):
        """A client of another uid that leaves a spliced body unread in its
        widened socket cannot go on widening socket after socket: what the
        socket holds counts against its uid's share, so its next body goes
        through the pipe alone while root's is still widened; once it
        leaves, nothing stays charged."""
        other_user.require(self)
        uid, gid = other_user.ids()
        if shutil.which("ss") is None:
            self.skipTest("needs ss (iproute2)")
        window = 256 * 1024
        with open("/proc/sys/net/core/wmem_max") as f:
            wmem_max = int(f.read())
        with open("/proc/sys/net/core/wmem_default") as f:
            usual = int(f.read())
        wide = 2 * min(8 * window, wmem_max)
        n = 2 * 1024 * 1024
        if wide < n + (512 << 10):
            self.skipTest(f"net.core.wmem_max {wmem_max} cannot hold {n}")
        # A widened pump may cost 17 windows (4.25 MiB): the share takes
        # one, but not one more beside 2 MiB left unread.
        d = self.start_daemon_config(max_held_bytes_per_uid=11 << 19)
        for path in ("/a", "/b", "/root"):
            self.body_after_gate(path, n, then=None)

        def start(w, rid, path):
            w.recv_size = 4096
            w.send(self.request(rid, path))
            self.assertIn("status", w.read_message())
            self.gates[path].set()
            first = w.read_message()      # w stops reading here
            self.assertIn("data", first)
            return first

        def spliced():
            return d.log_text().count(" body bytes spliced")

        def wait(what, cond):
            deadline = time.monotonic() + 30
            while not cond() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertTrue(cond(), what)

        a = other_user.wire_as(self, d, uid, gid, timeout=60)
        first_a = start(a, 1, "/a")
        wait("a's body all in its socket", lambda: spliced() == 1)
        b = other_user.wire_as(self, d, uid, gid, timeout=60)
        first_b = start(b, 2, "/b")
        wait("b's pump running", lambda: any(
            link.startswith("pipe:") for link in self.daemon_pipes(d)))
        self.assertEqual(self.daemon_side_sndbuf(b), usual)
        r = self.wire(d, timeout=60)
        first_r = start(r, 3, "/root")
        # Root's whole body goes into its unread socket (widened); b's,
        # through the pipe alone, waits for b.
        wait("root's body all in its socket", lambda: "/root: 2097152 body "
             "bytes spliced" in d.log_text())
        self.assertNotIn("/b: 2097152 body bytes spliced", d.log_text())
        for w, first, rid in ((a, first_a, 1), (b, first_b, 2),
                              (r, first_r, 3)):
            w.recv_size = 1 << 20
            body, last = self.read_rest(w, rid)
            self.assertIs(last.get("end"), True, last)
            self.assertTrue(first["_payload"] + body == big_bytes(n))
        self.assertEqual(spliced(), 3)
        for w in (a, b, r):
            w.close()
        stats = self.wire(d)

        def held():
            stats.send({"op": "stats"})
            return stats.read_message()["held_bytes"]
        wait("nothing held once the clients left", lambda: held() < 4096)

    def test_share_too_small_for_the_socket_splices_through_the_pipe(self):
        """A uid whose share takes a pipe but not the socket's extra room
        still gets its body spliced, its socket left as it was."""
        if shutil.which("ss") is None:
            self.skipTest("needs ss (iproute2)")
        with open("/proc/sys/net/core/wmem_default") as f:
            usual = int(f.read())
        d = self.start_daemon_config(max_held_bytes_per_uid=1024 * 1024)
        n = 16 * 1024 * 1024
        self.body_after_gate("/narrow", n, then=None)
        w = self.wire(d, timeout=60)
        w.recv_size = 4096
        w.send(self.request(1, "/narrow"))
        self.assertIn("status", w.read_message())
        self.gates["/narrow"].set()
        first = w.read_message()
        self.assertIn("data", first)
        deadline = time.monotonic() + 30
        while "pipe" not in str(self.daemon_pipes(d)) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.daemon_side_sndbuf(w), usual)
        w.recv_size = 1 << 20
        body, last = self.read_rest(w, 1)
        self.assertIs(last.get("end"), True, last)
        self.assertTrue(first["_payload"] + body == big_bytes(n))
        self.assertIn(" body bytes spliced", d.log_text())

    def daemon_pipes(self, d):
        """The pipes daemon d holds open."""
        out = []
        for fd in os.listdir(f"/proc/{d.pid}/fd"):
            with contextlib.suppress(FileNotFoundError):
                link = os.readlink(f"/proc/{d.pid}/fd/{fd}")
                if link.startswith("pipe:"):
                    out.append(link)
        return out

    def test_client_leaving_mid_body(self):
        big = 64 * 1024 * 1024
        self.body_after_gate("/leave", big, then=None)
        pipes0 = self.pipes_open()
        w = harness.Wire(self.daemon.socket)
        w.send(self.request(1, "/leave"))
        self.assertIn("status", w.read_message())
        self.gates["/leave"].set()
        self.assertIn("data", w.read_message())
        w.close()
        # The daemon drops the request and its connection, and its pipe.
        self.assertTrue(self.origin.wait_closed())
        self.assertTrue(self.origin.wait_for(
            lambda: self.pipes_open() == pipes0))
        self.body_after_gate("/after", 1024 * 1024, then=None)
        w = self.wire(self.daemon)
        w.send(self.request(2, "/after"))
        h, body, last = self.read_framed(w, 2, "/after")
        self.assertOkResponse(h, last)
        self.assertTrue(body == big_bytes(1024 * 1024))
        self.assertEqual(self.pipes_open(), pipes0)

    def test_pipelined_replies_keep_order(self):
        """Two large bodies on one client: the second's origin answers
        first, but its bytes wait for the first's end."""
        a, b = 5 * 1024 * 1024, 3 * 1024 * 1024 + 3
        self.body_after_gate("/first", a, then=None)
        self.scenarios["/second"] = [("send", head(b)), ("stream", b, 1 << 16)]
        w = self.wire(self.daemon)
        w.send(self.request(1, "/first"))
        w.send(self.request(2, "/second"))
        self.assertTrue(self.origin.wait_requests(2))
        h1, body1, last1 = self.read_framed(w, 1, "/first")
        h2, body2, last2 = w.read_response(2)
        self.assertOkResponse(h1, last1)
        self.assertOkResponse(h2, last2)
        self.assertTrue(body1 == big_bytes(a))
        self.assertTrue(body2 == big_bytes(b))
        self.assertGreaterEqual(len(self.spliced()), 1, self.spliced())


if __name__ == "__main__":
    harness.main()
