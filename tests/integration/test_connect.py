#!/usr/bin/env python3
"""Connection establishment: IPv6 origins on ::1, names with AAAA and A
records where one family listens or never answers (Happy Eyeballs, RFC
8305), the shared DNS cache (TTLs, negative answers, coalescing) against
a scripted nameserver, hosts_file reloads, source_address, and error
messages naming what the user typed.

The whole module runs in a network namespace of its own (unshare -n): its
loopback, its test addresses and its nameserver on 127.0.0.1 are the only
places any packet can go. Addresses that never answer are on a veth pair
whose far end drops everything (static neighbours, no address there)."""

import ctypes
import json
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

EXIT = harness.error_codes()
CLONE_NEWNET = 0x40000000
# Addresses on the veth pair that swallow every packet.
SILENT_V6 = "2001:db8:1::5"
SILENT_V4 = "198.19.0.5"
NAMESPACE_ERROR = None


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


def setUpModule():
    """Moves this process (and every peer it starts) into a new network
    namespace with lo up and the silent addresses routed."""
    global NAMESPACE_ERROR
    if os.geteuid() != 0 or shutil.which("ip") is None:
        NAMESPACE_ERROR = "needs root and ip (iproute2) for a namespace"
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        NAMESPACE_ERROR = f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}"
        return
    ip("link", "set", "lo", "up")
    ip("link", "add", "hb0", "type", "veth", "peer", "name", "hb1")
    ip("link", "set", "hb0", "up")
    ip("link", "set", "hb1", "up")
    ip("-6", "addr", "add", "2001:db8:1::2/64", "dev", "hb0", "nodad")
    ip("addr", "add", "198.19.0.2/24", "dev", "hb0")
    # No neighbour discovery: the SYNs leave at once and vanish.
    ip("-6", "neigh", "add", SILENT_V6, "lladdr", "02:00:00:00:00:01",
       "dev", "hb0", "nud", "permanent")
    ip("neigh", "add", SILENT_V4, "lladdr", "02:00:00:00:00:01",
       "dev", "hb0", "nud", "permanent")


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# ---- A scripted nameserver ---------------------------------------------------

class ScriptedDns:
    """A UDP nameserver on 127.0.0.1 answering from records:
    {name: {"A": [addr], "AAAA": [addr], "ttl": seconds}}; other names get
    NXDOMAIN. delay: seconds before each answer, or {"A": s, "AAAA": s}
    per type. counts[(name, "A")] is how many queries arrived for it,
    answered[(name, "A")] how many answers went out."""

    TYPES = {1: "A", 28: "AAAA"}

    def __init__(self, records, delay=0.0):
        self.records = {k.lower(): v for k, v in records.items()}
        self.delay = delay
        self.counts = {}
        self.answered = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def count(self, name, qtype):
        with self.lock:
            return self.counts.get((name, qtype), 0)

    def answers(self, name, qtype):
        with self.lock:
            return self.answered.get((name, qtype), 0)

    def stop(self):
        self.stopping = True
        self.sock.close()

    def _serve(self):
        while not self.stopping:
            try:
                query, peer = self.sock.recvfrom(2048)
            except OSError:
                return
            answer = self._answer(query)
            if answer is None:
                continue
            reply, key = answer
            delay = self.delay
            if isinstance(delay, dict):
                delay = delay.get(key[1], 0.0)
            if delay:
                t = threading.Timer(delay, self._send, (reply, peer, key))
                t.daemon = True
                t.start()
            else:
                self._send(reply, peer, key)

    def _send(self, reply, peer, key):
        with self.lock:
            self.answered[key] = self.answered.get(key, 0) + 1
        try:
            self.sock.sendto(reply, peer)
        except OSError:
            pass

    def _answer(self, query):
        if len(query) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", query[:6])
        pos, labels = 12, []
        while pos < len(query) and query[pos] != 0:
            n = query[pos]
            labels.append(query[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        pos += 1
        qtype, qclass = struct.unpack("!HH", query[pos:pos + 4])
        question = query[12:pos + 4]
        name = ".".join(labels).lower()
        kind = self.TYPES.get(qtype, str(qtype))
        with self.lock:
            self.counts[(name, kind)] = self.counts.get((name, kind), 0) + 1
        rec = self.records.get(name)
        answers = b""
        count = 0
        rcode = 3 if rec is None else 0
        if rec is not None:
            family = socket.AF_INET if kind == "A" else socket.AF_INET6
            for addr in rec.get(kind, []):
                raw = socket.inet_pton(family, addr)
                answers += struct.pack("!HHHIH", 0xC00C, qtype, 1,
                                       rec.get("ttl", 60), len(raw)) + raw
                count += 1
        head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0)
        return head + question + answers, (name, kind)


class Ipv6Peer:
    """A listener on [::1] that reads request heads and answers them: a
    CONNECT with 200 (then the tunnelled request), anything else with
    200 "ok". heads lists every head received, in order."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self):
        self.heads = []
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.bind(("::1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.sock.close()

    def _read_head(self, conn, buf):
        while b"\r\n\r\n" not in buf:
            data = conn.recv(4096)
            if not data:
                return None, b""
            buf += data
        head, rest = buf.split(b"\r\n\r\n", 1)
        self.heads.append(head.decode("latin-1"))
        return head, rest

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                rest = b""
                while True:
                    head, rest = self._read_head(conn, rest)
                    if head is None:
                        break
                    if head.startswith(b"CONNECT "):
                        conn.sendall(b"HTTP/1.1 200 Connection established"
                                     b"\r\n\r\n")
                    else:
                        conn.sendall(self.OK)


# ---- Tests ---------------------------------------------------------------------

class ConnectTest(harness.IntegrationTest):

    def setUp(self):
        if NAMESPACE_ERROR is not None:
            raise harness.missing(NAMESPACE_ERROR)
        self.dir = tempfile.mkdtemp(prefix="hconn-connect-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.hosts = os.path.join(self.dir, "hosts")
        self.write_hosts("")

    def write_hosts(self, text):
        with open(self.hosts + ".new", "w") as f:
            f.write(text)
        os.rename(self.hosts + ".new", self.hosts)

    def dns(self, records, delay=0.0):
        server = ScriptedDns(records, delay)
        self.addCleanup(server.stop)
        return server

    def daemon(self, dns=None, **keys):
        """hconnd with hosts_file, and resolv_conf pointing at dns (or at
        no nameserver at all)."""
        resolv = os.path.join(self.dir, "resolv.conf")
        with open(resolv, "w") as f:
            if dns is not None:
                f.write(f"nameserver 127.0.0.1:{dns.port}\n"
                        "options timeout:2 attempts:1\n")
        self.config_path = os.path.join(self.dir, "hconnd.json")
        with open(self.config_path, "w") as f:
            json.dump({"hosts_file": self.hosts, "resolv_conf": resolv,
                       **keys}, f)
        return self.start_daemon("--config", self.config_path)

    def stats(self, d):
        w = self.wire(d)
        w.send({"op": "stats"})
        return w.read_message()

    def get(self, d, url, **fields):
        return self.wire(d).request(1, "GET", url, **fields)


class Ipv6(ConnectTest):

    def setUp(self):
        super().setUp()
        if not have_ipv6_loopback():
            raise harness.missing("no ::1 in this namespace (IPv6 disabled)")

    def test_ipv6_literal_url_reaches_an_origin_on_ipv6_loopback(self):
        # Regression: the literal went to the resolver, which answered
        # dns_failed; curl gets its 200 on the same machine.
        ng = self.start_nginx(listen=("::1",))
        d = self.daemon()
        r = self.run_hconn(d, f"http://[::1]:{ng.port}/small.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.SMALL_BODY)
        self.assertIn(f"connected to [::1]:{ng.port}\n", d.log_text())
        st = self.stats(d)
        self.assertEqual(st["dns"]["queries"], 0, st)

    def test_ipv6_host_field_and_host_header_in_brackets(self):
        ng = self.start_nginx(listen=("::1",))
        d = self.daemon()
        w = self.wire(d)
        w.send({"id": 1, "method": "GET", "host": "::1", "port": ng.port,
                "target": "/small.txt"})
        head, body, last = w.read_response(1)
        self.assertOkResponse(head, last)
        self.assertEqual(body, harness.SMALL_BODY)
        head, body, last = w.request(2, "GET",
                                     f"http://[0:0::1]:{ng.port}/headers")
        self.assertOkResponse(head, last)

    def ipv6_peer(self):
        peer = Ipv6Peer()
        self.addCleanup(peer.stop)
        return peer

    def test_host_header_carries_the_ipv6_literal_in_brackets(self):
        peer = self.ipv6_peer()
        d = self.daemon()
        head, body, last = self.get(d, f"http://[::1]:{peer.port}/x")
        self.assertOkResponse(head, last)
        self.assertIn(f"\r\nHost: [::1]:{peer.port}", peer.heads[0])
        # The pool's label names the origin as a URL, literal in brackets.
        self.assertIn(f"http://[::1]:{peer.port}",
                      self.stats(d)["pool"]["origins"])

    def test_tunnel_through_an_ipv6_proxy_to_an_ipv6_origin(self):
        proxy = self.ipv6_peer()
        d = self.daemon()
        head, body, last = self.get(d, "http://[::1]:9/x",
                                    proxy={"host": "::1", "port": proxy.port})
        self.assertOkResponse(head, last)
        self.assertEqual(body, b"ok")
        self.assertTrue(proxy.heads[0].startswith("CONNECT [::1]:9 HTTP/1.1"),
                        proxy.heads)
        self.assertIn("\r\nHost: [::1]:9", proxy.heads[1])
        self.assertIn(f"via [::1]:{proxy.port}", self.stats_origins(d))

    def stats_origins(self, d):
        return " ".join(self.stats(d)["pool"]["origins"])

    def test_https_to_ipv6_literal_verifies_the_ip_san(self):
        ng = self.start_nginx(tls=True, listen=("::1",))
        d = self.daemon()
        head, body, last = self.get(
            d, f"https://[::1]:{ng.tls_port}/small.txt",
            tls={"ca_file": ng.ca_file})
        self.assertOkResponse(head, last)
        self.assertEqual(body, harness.SMALL_BODY)
        self.assertTrue(any(o.startswith(f"https://[::1]:{ng.tls_port} ")
                            for o in self.stats(d)["pool"]["origins"]),
                        self.stats(d)["pool"]["origins"])

    def test_policy_ipv6_host_pattern_matches_any_spelling(self):
        ng = self.start_nginx(listen=("::1",))
        d = self.daemon(policy={"default": {"hosts": ["[::1]"]}})
        head, body, last = self.get(d, f"http://[0:0:0::1]:{ng.port}/small.txt")
        self.assertOkResponse(head, last)
        head, body, last = self.get(d, f"http://127.0.0.1:{ng.port}/small.txt")
        self.assertEqual(last.get("error"), "denied", last)

    def test_dual_stack_name_where_only_ipv4_listens(self):
        ng = self.start_nginx()   # 127.0.0.1 only: ::1 refuses
        self.write_hosts("::1 dual.hconn.test\n127.0.0.1 dual.hconn.test\n")
        d = self.daemon()
        r = self.run_hconn(d, f"http://dual.hconn.test:{ng.port}/small.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.SMALL_BODY)
        log = d.log_text()
        # IPv6 first, refused, then IPv4 at once.
        self.assertLess(log.index(f"trying [::1]:{ng.port}"),
                        log.index(f"trying 127.0.0.1:{ng.port}"))

    def test_dual_stack_name_where_only_ipv6_listens(self):
        ng = self.start_nginx(listen=("::1",))
        self.write_hosts("127.0.0.1 dual.hconn.test\n::1 dual.hconn.test\n")
        d = self.daemon()
        r = self.run_hconn(d, f"http://dual.hconn.test:{ng.port}/small.txt")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(f"trying 127.0.0.1:{ng.port}", d.log_text())

    def test_both_families_refusing_names_the_host_and_each_address(self):
        port = harness.free_port()
        self.write_hosts("::1 dual.hconn.test\n127.0.0.1 dual.hconn.test\n")
        d = self.daemon()
        head, body, last = self.get(d, f"http://dual.hconn.test:{port}/")
        self.assertEqual(last.get("error"), "connect_failed", last)
        msg = last["message"]
        self.assertIn(f"dual.hconn.test:{port}", msg)
        self.assertIn(f"[::1]:{port}: Connection refused", msg)
        self.assertIn(f"127.0.0.1:{port}: Connection refused", msg)

    def test_silent_ipv6_falls_back_to_ipv4_after_the_attempt_delay(self):
        ng = self.start_nginx()
        self.write_hosts(f"{SILENT_V6} slow6.hconn.test\n"
                         "127.0.0.1 slow6.hconn.test\n")
        d = self.daemon(connect_attempt_delay=0.4)
        start = time.monotonic()
        head, body, last = self.get(
            d, f"http://slow6.hconn.test:{ng.port}/small.txt")
        elapsed = time.monotonic() - start
        self.assertOkResponse(head, last)
        self.assertEqual(body, harness.SMALL_BODY)
        # The IPv4 attempt waited for the delay (a lower bound only).
        self.assertGreaterEqual(elapsed, 0.35)
        log = d.log_text()
        self.assertIn(f"trying [{SILENT_V6}]:{ng.port} (attempt 1)", log)
        self.assertIn(f"trying 127.0.0.1:{ng.port} (attempt 2)", log)
        self.assertIn(f"127.0.0.1:{ng.port} won after 2 attempts", log)

    def test_silent_ipv4_is_never_needed_when_ipv6_answers(self):
        ng = self.start_nginx(listen=("::1",))
        self.write_hosts(f"{SILENT_V4} slow4.hconn.test\n"
                         "::1 slow4.hconn.test\n")
        d = self.daemon(connect_attempt_delay=2)
        head, body, last = self.get(
            d, f"http://slow4.hconn.test:{ng.port}/small.txt")
        self.assertOkResponse(head, last)
        self.assertIn(f"[::1]:{ng.port} won after 1 attempts", d.log_text())

    def test_every_address_silent_times_out_naming_them(self):
        self.write_hosts(f"{SILENT_V6} dead.hconn.test\n"
                         f"{SILENT_V4} dead.hconn.test\n")
        d = self.daemon(connect_attempt_delay=0.1)
        head, body, last = self.get(d, "http://dead.hconn.test:81/",
                                    timeout=0.8)
        self.assertEqual(last.get("error"), "timeout", last)
        self.assertIn("connect to dead.hconn.test:81 timed out", last["message"])
        self.assertIn(f"[{SILENT_V6}]:81", last["message"])
        self.assertIn(f"{SILENT_V4}:81", last["message"])

    def test_policy_checks_each_address_before_it_is_tried(self):
        # The name's loopback address is refused; the other is tried.
        ng = self.start_nginx()
        self.write_hosts(f"127.0.0.1 mixed.hconn.test\n"
                         f"{SILENT_V6} mixed.hconn.test\n")
        d = self.daemon(policy={"default": {"loopback": False}})
        head, body, last = self.get(d, f"http://mixed.hconn.test:{ng.port}/",
                                    timeout=0.6)
        self.assertEqual(last.get("error"), "timeout", last)
        log = d.log_text()
        self.assertIn("address 127.0.0.1 is loopback", log)
        self.assertNotIn(f"trying 127.0.0.1:{ng.port}", log)
        self.assertEqual(ng.access_log_text(), "")


class Dns(ConnectTest):
    """The origin closes after each response, so every request needs a
    new connection and so a lookup."""

    def setUp(self):
        super().setUp()
        self.origin = self.start_origin({None: [
            ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                     b"Connection: close\r\n\r\nok"), ("close",)]})

    def url(self, host):
        return f"http://{host}:{self.origin.port}/"

    def test_negative_answer_is_plain_and_cached(self):
        dns = self.dns({})
        d = self.daemon(dns)
        r = self.run_hconn(d, "http://nowhere.hconn.test:8080/")
        self.assertEqual(r.returncode, EXIT["dns_failed"], r.stderr)
        self.assertIn(b'cannot resolve "nowhere.hconn.test": no such name',
                      r.stderr)
        head, body, last = self.get(d, "http://nowhere.hconn.test:8080/")
        self.assertEqual(last.get("error"), "dns_failed", last)
        self.assertEqual(dns.count("nowhere.hconn.test", "A"), 1)
        st = self.stats(d)["dns"]
        self.assertEqual(st["negative"], 1, st)

    def test_ttl_expiry_asks_again(self):
        dns = self.dns({"ttl.hconn.test": {"A": ["127.0.0.1"], "ttl": 1}})
        d = self.daemon(dns)
        url = self.url("ttl.hconn.test")
        for _ in range(2):
            head, body, last = self.get(d, url)
            self.assertOkResponse(head, last)
        self.assertEqual(dns.count("ttl.hconn.test", "A"), 1)
        st = self.stats(d)["dns"]
        self.assertEqual((st["cache_misses"], st["cache_hits"]), (1, 1), st)
        time.sleep(1.3)
        head, body, last = self.get(d, url)
        self.assertOkResponse(head, last)
        self.assertEqual(dns.count("ttl.hconn.test", "A"), 2)
        self.assertEqual(dns.count("ttl.hconn.test", "AAAA"), 2)

    def test_ttl_ceiling_bounds_a_long_ttl(self):
        dns = self.dns({"long.hconn.test": {"A": ["127.0.0.1"],
                                            "ttl": 86400}})
        d = self.daemon(dns, dns_ttl_max=1)
        url = self.url("long.hconn.test")
        self.assertOkResponse(*self.get(d, url)[::2])
        time.sleep(1.3)
        self.assertOkResponse(*self.get(d, url)[::2])
        self.assertEqual(dns.count("long.hconn.test", "A"), 2)

    def test_ttl_floor_keeps_a_zero_ttl_answer(self):
        dns = self.dns({"zero.hconn.test": {"A": ["127.0.0.1"], "ttl": 0}})
        d = self.daemon(dns, dns_ttl_min=30)
        for _ in range(3):
            head, body, last = self.get(d, self.url("zero.hconn.test"))
            self.assertOkResponse(head, last)
        self.assertEqual(dns.count("zero.hconn.test", "A"), 1)
        self.assertEqual(self.stats(d)["dns"]["cache_hits"], 2)

    def test_ttl_floor_above_the_ceiling_is_refused(self):
        with open(os.path.join(self.dir, "bad.json"), "w") as f:
            json.dump({"dns_ttl_min": 10, "dns_ttl_max": 5}, f)
        r = subprocess.run([harness.HCONND, "--socket",
                            os.path.join(self.dir, "s.sock"), "--config",
                            os.path.join(self.dir, "bad.json")],
                           capture_output=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b'"dns_ttl_min" (10) is above "dns_ttl_max" (5)',
                      r.stderr)

    def test_concurrent_lookups_of_one_name_share_one_query(self):
        dns = self.dns({"many.hconn.test": {"A": ["127.0.0.1"],
                                            "ttl": 60}}, delay=0.5)
        d = self.daemon(dns)
        clients = [self.wire(d) for _ in range(8)]
        for i, w in enumerate(clients):
            w.send({"id": i, "method": "GET",
                    "url": self.url("many.hconn.test")})
        for i, w in enumerate(clients):
            head, body, last = w.read_response(i)
            self.assertOkResponse(head, last)
        self.assertEqual(dns.count("many.hconn.test", "A"), 1)
        self.assertEqual(dns.count("many.hconn.test", "AAAA"), 1)
        st = self.stats(d)["dns"]
        self.assertEqual(st["cache_misses"], 1, st)
        self.assertEqual(st["coalesced"] + st["cache_hits"], 7, st)
        self.assertGreaterEqual(st["coalesced"], 1, st)

    def test_a_answer_is_used_without_waiting_for_a_slow_aaaa(self):
        # RFC 8305 §3: the A answer goes after the resolution delay; the
        # AAAA answer, five seconds late, is not waited for.
        dns = self.dns({"lazy6.hconn.test": {"A": ["127.0.0.1"],
                                             "AAAA": [SILENT_V6]}},
                       delay={"AAAA": 5.0})
        d = self.daemon(dns)
        head, body, last = self.get(d, self.url("lazy6.hconn.test"))
        self.assertOkResponse(head, last)
        self.assertEqual(dns.answers("lazy6.hconn.test", "AAAA"), 0,
                         "the request waited for the AAAA answer")
        self.assertIn("resolved lazy6.hconn.test: 1 IPv4 addresses; not "
                      "waiting for the other family", d.log_text())

    def test_aaaa_answer_is_used_without_waiting_for_a_slow_a(self):
        if not have_ipv6_loopback():
            raise harness.missing("no ::1 in this namespace")
        ng = self.start_nginx(listen=("::1",))
        dns = self.dns({"lazy4.hconn.test": {"A": [SILENT_V4],
                                             "AAAA": ["::1"]}},
                       delay={"A": 5.0})
        d = self.daemon(dns)
        head, body, last = self.get(
            d, f"http://lazy4.hconn.test:{ng.port}/small.txt")
        self.assertOkResponse(head, last)
        self.assertEqual(dns.answers("lazy4.hconn.test", "A"), 0,
                         "the request waited for the A answer")

    def test_refused_ipv6_waits_for_the_a_answer_still_coming(self):
        # ::1 refuses at once; the race must not fail while A is due.
        if not have_ipv6_loopback():
            raise harness.missing("no ::1 in this namespace")
        dns = self.dns({"late4.hconn.test": {"A": ["127.0.0.1"],
                                             "AAAA": ["::1"]}},
                       delay={"A": 0.5})
        d = self.daemon(dns)
        head, body, last = self.get(d, self.url("late4.hconn.test"))
        self.assertOkResponse(head, last)
        log = d.log_text()
        self.assertIn(f"[::1]:{self.origin.port} failed: Connection refused",
                      log)
        self.assertIn(f"127.0.0.1:{self.origin.port} won after 2 attempts",
                      log)

    def test_dns_answer_with_aaaa_and_a_races_both(self):
        ng = self.start_nginx()
        dns = self.dns({"both.hconn.test": {"A": ["127.0.0.1"],
                                            "AAAA": [SILENT_V6]}})
        d = self.daemon(dns, connect_attempt_delay=0.3)
        head, body, last = self.get(
            d, f"http://both.hconn.test:{ng.port}/small.txt")
        self.assertOkResponse(head, last)
        log = d.log_text()
        self.assertIn(f"trying [{SILENT_V6}]:{ng.port} (attempt 1)", log)
        self.assertIn(f"127.0.0.1:{ng.port} won after 2 attempts", log)

    def test_resolv_conf_is_read_again_on_sighup(self):
        first = self.dns({})
        second = self.dns({"moved.hconn.test": {"A": ["127.0.0.1"]}})
        d = self.daemon(first)
        head, body, last = self.get(d, self.url("moved.hconn.test"))
        self.assertEqual(last.get("error"), "dns_failed", last)
        with open(os.path.join(self.dir, "resolv.conf"), "w") as f:
            f.write(f"nameserver 127.0.0.1:{second.port}\n")
        self.assertIn("SIGHUP: reloaded", d.sighup())
        # The reload empties the cache: the negative answer is gone.
        head, body, last = self.get(d, self.url("moved.hconn.test"))
        self.assertOkResponse(head, last)
        self.assertEqual(first.count("moved.hconn.test", "A"), 1)
        self.assertEqual(second.count("moved.hconn.test", "A"), 1)

    def test_hosts_file_is_read_again_on_sighup(self):
        ng = self.start_nginx()
        d = self.daemon()
        url = f"http://later.hconn.test:{ng.port}/small.txt"
        head, body, last = self.get(d, url)
        self.assertEqual(last.get("error"), "dns_failed", last)
        self.assertIn("no nameserver is configured", last["message"])
        self.write_hosts("127.0.0.1 later.hconn.test\n")
        self.assertIn("SIGHUP: reloaded", d.sighup())
        head, body, last = self.get(d, url)
        self.assertOkResponse(head, last)


class SourceAddress(ConnectTest):

    def setUp(self):
        super().setUp()
        self.origin = self.start_origin(
            {None: [("send", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]})

    def test_request_field_binds_address_and_port(self):
        d = self.daemon()
        port = harness.free_port()
        head, body, last = self.get(d, self.origin.url("/"),
                                    source_address=["127.0.0.1", port])
        self.assertOkResponse(head, last)
        self.assertEqual(self.origin.connections[0].peer, ("127.0.0.1", port))

    def test_cli_interface_and_local_port(self):
        d = self.daemon()
        port = harness.free_port()
        r = self.run_hconn(d, "--interface", "127.0.0.1", "--local-port",
                           str(port), self.origin.url("/"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.origin.connections[0].peer, ("127.0.0.1", port))

    def test_source_address_is_part_of_the_pool_key(self):
        d = self.daemon()
        w = self.wire(d)
        for i, src in enumerate((["127.0.0.1", 0], ["127.0.0.1", 0],
                                 ["127.0.0.2", 0])):
            head, body, last = w.request(i + 1, "GET", self.origin.url("/"),
                                         source_address=src)
            self.assertOkResponse(head, last)
        peers = [c.peer[0] for c in self.origin.connections]
        self.assertEqual(peers, ["127.0.0.1", "127.0.0.2"])

    def test_source_of_the_other_family_is_a_plain_error(self):
        d = self.daemon()
        head, body, last = self.get(d, self.origin.url("/"),
                                    source_address=["::1", 0])
        self.assertEqual(last.get("error"), "connect_failed", last)
        self.assertIn("not of the source address's family", last["message"])
        self.assertEqual(len(self.origin.connections), 0)

    def test_cli_interface_takes_addresses_only(self):
        d = self.daemon()
        r = self.run_hconn(d, "--interface", "eth0", self.origin.url("/"))
        self.assertEqual(r.returncode, EXIT["invalid_argument"], r.stderr)
        self.assertIn(b'"eth0" is not an IPv4 or IPv6 address', r.stderr)
        self.assertEqual(len(self.origin.connections), 0)

    def test_a_name_is_not_a_source_address(self):
        d = self.daemon()
        head, body, last = self.get(d, self.origin.url("/"),
                                    source_address=["localhost", 0])
        self.assertEqual(last.get("error"), "bad_message", last)
        self.assertIn("source_address", last["message"])

    def test_policy_key_refuses_it(self):
        d = self.daemon(policy={"default": {"source_address": False}})
        head, body, last = self.get(d, self.origin.url("/"),
                                    source_address=["127.0.0.1", 0])
        self.assertEqual(last.get("error"), "denied", last)
        self.assertIn("choosing the source address is not allowed",
                      last["message"])
        self.assertEqual(len(self.origin.connections), 0)

    def test_privileged_source_port_is_for_root_only(self):
        if shutil.which("setpriv") is None:
            raise harness.missing("needs setpriv to run as nobody")
        harness.require_binary(self, harness.HCONN, "hconn command")
        d = self.daemon()
        os.chmod(d.dir, 0o755)
        r = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             harness.HCONN, "--local-port", "999", self.origin.url("/")],
            capture_output=True, env=d.env, timeout=30, cwd="/",
            start_new_session=True)
        self.assertEqual(r.returncode, EXIT["denied"], r.stderr)
        self.assertIn(b"source port 999 is privileged", r.stderr)
        self.assertEqual(len(self.origin.connections), 0)


class Messages(ConnectTest):

    def test_tls_failure_names_the_host_typed_and_the_address(self):
        ng = self.start_nginx(tls=True)
        self.write_hosts("127.0.0.1 named.hconn.test\n")
        d = self.daemon()
        head, body, last = self.get(
            d, f"https://named.hconn.test:{ng.tls_port}/small.txt")
        self.assertEqual(last.get("error"), "tls_verify_failed", last)
        self.assertIn(f"certificate of named.hconn.test:{ng.tls_port} "
                      f"(127.0.0.1:{ng.tls_port}) not accepted",
                      last["message"])


if __name__ == "__main__":
    harness.main()
