#!/usr/bin/env python3
"""Egress policy: each outcome of the rules in the config file's "policy"
key (allowed; denied host, port, scheme, proxy, TLS options; a name that
resolves to a refused address class), rules chosen by the client's uid,
and SIGHUP reloads (a bad file keeps the running policy, a good one
replaces it). A denied request must reach no origin: every test checks
the scripted origin's connection count."""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import other_user  # noqa: E402

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
EXIT = harness.error_codes()


class PolicyTest(harness.IntegrationTest):

    def setUp(self):
        self.origin = self.start_origin({None: [("send", OK)]})
        self.dir = tempfile.mkdtemp(prefix="hconn-policy-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        # Names for the resolver, so no DNS query ever leaves the host.
        self.hosts = os.path.join(self.dir, "hosts")
        with open(self.hosts, "w") as f:
            f.write("127.0.0.1 alias.hconn.test\n"
                    "127.0.0.1 allowed.hconn.test\n")

    def config(self, policy, **keys):
        path = os.path.join(self.dir, "hconnd.json")
        obj = {"hosts_file": self.hosts, **keys}
        if policy is not None:
            obj["policy"] = policy
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def daemon(self, policy, **keys):
        return self.start_daemon("--config", self.config(policy, **keys))

    def url(self, host="127.0.0.1", path="/"):
        return f"http://{host}:{self.origin.port}{path}"

    def assertDenied(self, last, *needles):
        self.assertEqual(last.get("error"), "denied", last)
        for needle in needles:
            self.assertIn(needle, last["message"])

    def assertNoUpstream(self):
        self.assertEqual(len(self.origin.connections), 0,
                         "a denied request reached the origin")


class Outcomes(PolicyTest):

    def test_allowed_request_goes_through(self):
        d = self.daemon({"default": {"schemes": ["http"],
                                     "hosts": ["127.0.0.1"],
                                     "ports": [self.origin.port]}})
        head, body, last = self.wire(d).request(1, "GET", self.url())
        self.assertEqual(head["status"], 200, last)
        self.assertEqual(body, b"ok")

    def test_denied_host_names_the_rule(self):
        d = self.daemon({"default": {"hosts": ["*.example.org"]}})
        head, body, last = self.wire(d).request(1, "GET", self.url())
        self.assertIsNone(head)
        self.assertDenied(last, "rule default", 'host "127.0.0.1"')
        self.assertNoUpstream()

    def test_suffix_pattern_matches_subdomains_only(self):
        d = self.daemon({"default": {"hosts": ["*.hconn.test"]}})
        w = self.wire(d)
        head, body, last = w.request(1, "GET", self.url("alias.hconn.test"))
        self.assertEqual(head["status"], 200, last)
        head, body, last = w.request(2, "GET", self.url("hconn.test"))
        self.assertDenied(last, 'host "hconn.test"')

    def test_denied_port(self):
        d = self.daemon({"default": {"ports": ["1-1023"]}})
        head, body, last = self.wire(d).request(1, "GET", self.url())
        self.assertDenied(last, f"port {self.origin.port} is not allowed")
        self.assertNoUpstream()

    def test_denied_scheme(self):
        d = self.daemon({"default": {"schemes": ["http"]}})
        head, body, last = self.wire(d).request(
            1, "GET", f"https://127.0.0.1:{self.origin.port}/")
        self.assertDenied(last, "scheme https")
        self.assertNoUpstream()

    def test_name_resolving_to_loopback_is_refused_on_the_address(self):
        # The name passes the host patterns; its address does not.
        d = self.daemon({"default": {"hosts": ["*.hconn.test"],
                                     "loopback": False}})
        head, body, last = self.wire(d).request(
            1, "GET", self.url("alias.hconn.test"))
        self.assertDenied(last, "rule default", "127.0.0.1", "loopback")
        self.assertNoUpstream()

    def test_loopback_literals_are_refused_in_every_spelling(self):
        d = self.daemon({"default": {"loopback": False}})
        w = self.wire(d)
        # Only names in the hosts files: no query may leave the machine.
        for i, host in enumerate(["127.0.0.1", "127.1.2.3", "localhost",
                                  "ALIAS.hconn.test"], 1):
            head, body, last = w.request(i, "GET", self.url(host))
            self.assertDenied(last, "loopback")
        self.assertNoUpstream()

    def test_insecure_tls_and_client_certs_can_be_refused(self):
        d = self.daemon({"default": {"insecure_tls": False,
                                     "client_certs": False}})
        w = self.wire(d)
        url = f"https://127.0.0.1:{self.origin.port}/"
        head, body, last = w.request(1, "GET", url, tls={"insecure": True})
        self.assertDenied(last, "certificate verification")
        head, body, last = w.request(2, "GET", url, tls={"verify": False})
        self.assertDenied(last, "certificate verification")
        head, body, last = w.request(
            3, "GET", url, tls={"cert_file": "/etc/hostname"})
        self.assertDenied(last, "client certificates")
        self.assertNoUpstream()

    def test_check_hostname_off_can_be_refused(self):
        # Like insecure_tls: a rule may keep clients from skipping the
        # certificate's name check, even with the chain verified.
        d = self.daemon({"default": {"no_check_hostname": False}})
        w = self.wire(d)
        url = f"https://127.0.0.1:{self.origin.port}/"
        head, body, last = w.request(1, "GET", url,
                                     tls={"check_hostname": False})
        self.assertDenied(last, "name check")
        self.assertNoUpstream()

    def test_no_check_hostname_must_be_a_boolean(self):
        path = self.config({"default": {"no_check_hostname": "yes"}})
        r = subprocess.run([harness.HCONND, "--socket",
                            os.path.join(self.dir, "s.sock"),
                            "--config", path],
                           capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no_check_hostname", r.stderr)

    def test_proxy_not_listed_is_denied(self):
        d = self.daemon({"default": {"proxies": ["127.0.0.1:3128"]}})
        head, body, last = self.wire(d).request(
            1, "GET", self.url(), proxy={"host": "127.0.0.1",
                                         "port": self.origin.port})
        self.assertDenied(last, f"proxy 127.0.0.1:{self.origin.port}")
        self.assertNoUpstream()

    def test_daemon_default_proxy_is_allowed(self):
        # The origin plays the proxy: it answers CONNECT with 200 and then
        # the request inside the tunnel with the scenario's response.
        proxy = self.start_origin({None: [
            ("send", b"HTTP/1.1 200 Connection established\r\n\r\n"),
            ("expect_request",), ("send", OK), ("keep_open",)]})
        d = self.daemon({"default": {"proxies": []}},
                        http_proxy=f"http://127.0.0.1:{proxy.port}")
        head, body, last = self.wire(d).request(1, "GET", self.url())
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(len(proxy.connections), 1)
        self.assertNoUpstream()

    def test_denial_counts_in_stats(self):
        d = self.daemon({"default": {"ports": [1]}})
        w = self.wire(d)
        w.request(1, "GET", self.url())
        w.send({"op": "stats"})
        self.assertEqual(w.read_message()["errors"].get("denied"), 1)


class EveryPath(PolicyTest):
    """What lies behind the first hop passes the rule like a direct
    request: the host an absolute-form or CONNECT target names, the origin
    behind a default proxy. Each request runs as another user (nobody),
    and the secret origin receives nothing."""

    def setUp(self):
        super().setUp()
        other_user.require(self)
        self.uid, self.gid = other_user.ids()
        with open(self.hosts, "a") as f:
            f.write("127.0.0.1 proxy.hconn.test\n"
                    "10.9.8.7 intranet.hconn.test\n"
                    "64:ff9b::7f00:1 nat64.hconn.test\n"
                    "2002:7f00:1::1 sixtofour.hconn.test\n"
                    "::ffff:0:127.0.0.1 siit.hconn.test\n")
        # The host the client is allowed to reach, which would forward.
        self.proxy = self.start_origin({None: [
            ("send", b"HTTP/1.1 200 Connection established\r\n\r\n"),
            ("expect_request",), ("send", OK), ("keep_open",)]})

    def as_nobody(self, d):
        return other_user.wire_as(self, d, self.uid, self.gid)

    def secret(self):
        return f"http://127.0.0.1:{self.origin.port}/secret"

    def test_absolute_form_target_needs_the_rule_s_proxies(self):
        d = self.daemon({"default": {"hosts": ["proxy.hconn.test"],
                                     "proxies": []}})
        w = self.as_nobody(d)
        w.send({"id": 1, "method": "GET", "host": "proxy.hconn.test",
                "port": self.proxy.port, "target": self.secret()})
        head, _, last = w.read_response(1)
        self.assertIsNone(head)
        self.assertEqual(last, {
            "id": 1, "error": "denied",
            "message": f"policy rule default: proxy proxy.hconn.test:"
                       f"{self.proxy.port} is not allowed (the absolute-form "
                       f'target "{self.secret()}")'})
        self.assertEqual(len(self.proxy.connections), 0)
        self.assertNoUpstream()

    def test_connect_method_is_refused_before_the_policy(self):
        # Tunnels are the "proxy" field's job, checked as proxies; CONNECT
        # as a method would make the origin a two-way tunnel to anywhere.
        d = self.daemon({"default": {"hosts": ["proxy.hconn.test"],
                                     "proxies": ["proxy.hconn.test:*"]}})
        w = self.as_nobody(d)
        w.send({"id": 1, "method": "CONNECT", "host": "proxy.hconn.test",
                "port": self.proxy.port,
                "target": f"127.0.0.1:{self.origin.port}"})
        _, _, last = w.read_response(1)
        self.assertError(last, "invalid_url", 1)
        self.assertIn("CONNECT", last["message"])
        self.assertEqual(len(self.proxy.connections), 0)
        self.assertNoUpstream()

    def test_absolute_form_target_s_addresses_are_checked(self):
        # The forwarding host itself is allowed (loopback is), the host
        # behind it resolves to a private address, which is not.
        d = self.daemon({"default": {"private": False,
                                     "proxies": ["proxy.hconn.test:*"]}})
        w = self.as_nobody(d)
        target = "http://intranet.hconn.test/"
        w.send({"id": 1, "method": "GET", "host": "proxy.hconn.test",
                "port": self.proxy.port, "target": target})
        _, _, last = w.read_response(1)
        self.assertEqual(last["message"],
                         "intranet.hconn.test: policy rule default: address "
                         "10.9.8.7 is private, which is not allowed (the "
                         "absolute-form target)")
        self.assertEqual(len(self.proxy.connections), 0)

    def test_default_proxy_does_not_skip_the_origin_s_check(self):
        d = self.daemon({"default": {"loopback": False, "proxies": []}},
                        http_proxy=f"http://127.0.0.1:{self.proxy.port}")
        w = self.as_nobody(d)
        for rid, host in enumerate(["127.0.0.1", "localhost",
                                    "alias.hconn.test"], 1):
            head, _, last = w.request(rid, "GET", self.url(host, "/secret"))
            self.assertIsNone(head)
            self.assertEqual(last["error"], "denied", last)
            self.assertRegex(last["message"],
                             rf"^{host}: policy rule default: address "
                             r"(127\.0\.0\.1|::1) is loopback, which is not "
                             r"allowed \(the origin behind the proxy\)$")
        self.assertEqual(len(self.proxy.connections), 0)
        self.assertNoUpstream()

    def test_default_proxy_still_serves_what_the_rule_allows(self):
        # The administrator's proxy on loopback is not the client's to be
        # refused; the origin behind it (loopback here) is allowed.
        d = self.daemon({"default": {"private": False, "proxies": []}},
                        http_proxy=f"http://127.0.0.1:{self.proxy.port}")
        head, body, last = self.as_nobody(d).request(1, "GET", self.url())
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(len(self.proxy.connections), 1)

    def test_ipv6_forms_embedding_ipv4_count_as_the_ipv4_address(self):
        # Through the default proxy, so the daemon checks the names without
        # needing an IPv6 route of its own (none here; nothing is sent).
        d = self.daemon({"default": {"loopback": False,
                                     "link_local": False}},
                        http_proxy=f"http://127.0.0.1:{self.proxy.port}")
        w = self.as_nobody(d)
        for rid, (host, addr) in enumerate([
                ("nat64.hconn.test", "64:ff9b::7f00:1"),
                ("sixtofour.hconn.test", "2002:7f00:1::1"),
                ("siit.hconn.test", "::ffff:0:7f00:1"),
                ("[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe")], 1):
            head, _, last = w.request(rid, "GET", self.url(host))
            name = host.strip("[]")
            what = "link-local" if "a9fe" in addr else "loopback"
            self.assertEqual(last["message"],
                             f"{name}: policy rule default: address {addr} "
                             f"is {what}, which is not allowed (the origin "
                             "behind the proxy)")
        self.assertEqual(len(self.proxy.connections), 0)
        self.assertNoUpstream()


LISTENER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
n = 0
while True:
    c, _ = s.accept()
    n += 1
    with open(sys.argv[1], "w") as f:
        f.write(str(n))
    c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
              b"Connection: close\r\n\r\nok")
    c.close()
"""


class OwnAddresses(PolicyTest):
    """The machine's own addresses count as loopback, as they change. In a
    network namespace of the test's own (only lo, with 198.51.100.7/32 on
    it): hconnd and a listener on 0.0.0.0 run inside it, so no packet
    goes anywhere else."""

    OWN = "198.51.100.7"

    def setUp(self):
        super().setUp()
        other_user.require(self)
        for tool in ("unshare", "nsenter", "ip"):
            if shutil.which(tool) is None:
                raise harness.missing(f"needs {tool}")
        self.uid, self.gid = other_user.ids()
        self.wrapper = os.path.join(self.dir, "hconnd-in-netns")
        with open(self.wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    "exec unshare -n sh -c "
                    "'ip link set lo up && exec \"$0\" \"$@\"' "
                    f"{os.path.abspath(harness.HCONND)} \"$@\"\n")
        os.chmod(self.wrapper, 0o755)

    def netns_daemon(self, policy):
        saved = harness.HCONND
        harness.HCONND = self.wrapper
        try:
            d = self.daemon(policy)
        finally:
            harness.HCONND = saved
        self.netns = f"/proc/{d.pid}/ns/net"
        self.accepted = os.path.join(self.dir, "accepted")
        listener = subprocess.Popen(
            ["nsenter", f"--net={self.netns}", sys.executable, "-c",
             LISTENER, self.accepted], stdout=subprocess.PIPE,
            start_new_session=True)
        self.addCleanup(harness.kill_group, listener)
        self.port = int(listener.stdout.readline())
        return d

    def ip(self, d, *args):
        before = d.log_text().count("addresses of its own")
        subprocess.run(["nsenter", f"--net={self.netns}", "ip", *args],
                       check=True, timeout=10)
        deadline = time.monotonic() + 10
        while d.log_text().count("addresses of its own") == before:
            self.assertLess(time.monotonic(), deadline,
                            "hconnd did not read the addresses again")
            time.sleep(0.02)

    def accepted_count(self):
        try:
            with open(self.accepted) as f:
                return int(f.read())
        except FileNotFoundError:
            return 0

    def test_own_address_is_loopback_and_kept_current(self):
        d = self.netns_daemon({
            "default": {"loopback": False, "private": True},
            "rules": [{"name": "root", "uids": [0], "loopback": True}]})
        # Added after hconnd started: netlink tells it.
        self.ip(d, "addr", "add", f"{self.OWN}/32", "dev", "lo")
        url = f"http://{self.OWN}:{self.port}/"
        w = other_user.wire_as(self, d, self.uid, self.gid)
        head, _, last = w.request(1, "GET", url)
        self.assertIsNone(head)
        self.assertEqual(last["message"],
                         f"{self.OWN}: policy rule default: address "
                         f"{self.OWN} is this machine's own (loopback), "
                         "which is not allowed")
        self.assertEqual(self.accepted_count(), 0)
        # The address does reach the listener: root's rule allows it.
        head, body, last = self.wire(d).request(2, "GET", url)
        self.assertEqual(head and head["status"], 200, last)
        self.assertEqual(self.accepted_count(), 1)
        # Gone from the machine, it is just a documentation address.
        self.ip(d, "addr", "del", f"{self.OWN}/32", "dev", "lo")
        head, _, last = w.request(3, "GET", url)
        self.assertNotIn("own", last.get("message", ""), last)
        self.assertEqual(self.accepted_count(), 1)


class PoolKeys(PolicyTest):
    """Connections are shared only under equal address filters. The pool
    finds the last plain origin by comparing a request's fields rather
    than its key, and the uid's filter is one of them: root (its rule's
    filter, or none) and nobody (a rule that refuses private addresses,
    loopback still allowed) ask for the same URL in turn, each on its
    own client connection, and no upstream connection carries both."""

    def setUp(self):
        super().setUp()
        other_user.require(self)
        self.uid, self.gid = other_user.ids()

    def test_uids_under_different_filters_never_share_a_connection(self):
        d = self.daemon({"rules": [{"name": "nobody", "uids": [self.uid],
                                    "private": False}]})
        users = {"root": self.wire(d),
                 "nobody": other_user.wire_as(self, d, self.uid, self.gid)}
        for rid in range(1, 9):
            who = "root" if rid % 2 else "nobody"
            head, _, last = users[who].request(
                rid, "GET", self.url(path=f"/{who}/{rid}"))
            self.assertEqual(head and head["status"], 200, last)
        conns = {"root": set(), "nobody": set()}
        for r in self.origin.requests:
            conns[r.target.split("/")[1]].add(r.conn_index)
        # Each kept its one connection, in turn, and never the other's.
        self.assertEqual(len(conns["root"]), 1, self.origin.requests)
        self.assertEqual(len(conns["nobody"]), 1, self.origin.requests)
        self.assertFalse(conns["root"] & conns["nobody"])

    def test_scheme_and_proxy_never_take_the_plain_connection(self):
        # The plain connection is idle and last found when the same host,
        # port and protocol come through a proxy (the origin itself,
        # which answers CONNECT), then over TLS: each must open its own.
        d = self.daemon(None)
        w = self.wire(d)
        head, _, last = w.request(1, "GET", self.url(path="/plain"))
        self.assertEqual(head and head["status"], 200, last)
        w.send({"id": 2, "method": "GET", "url": self.url(path="/proxied"),
                "proxy": {"host": "127.0.0.1", "port": self.origin.port}})
        w.read_response(2)
        head, _, last = w.request(3, "GET", self.url(path="/plain"))
        self.assertEqual(head and head["status"], 200, last)
        w.send({"id": 4, "method": "GET", "http_version": "1.1",
                "url": f"https://127.0.0.1:{self.origin.port}/tls",
                "timeout": 1})
        head, _, last = w.read_response(4)
        self.assertIsNone(head, last)
        self.assertIn("error", last)
        by_target = {}
        for r in self.origin.requests:
            by_target.setdefault(r.target, []).append(r)
        self.assertEqual({r.conn_index for r in by_target["/plain"]}, {0},
                         self.origin.requests)
        self.assertNotIn("/tls", by_target)
        self.assertEqual([r.method for r in self.origin.requests
                          if r.conn_index != 0], ["CONNECT", "GET"],
                         self.origin.requests)
        self.assertEqual(len(self.origin.connections), 3)

class ByUid(PolicyTest):
    """Two users, two answers. Tests run as root in CI; the other user is
    nobody, through setpriv."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            raise harness.missing("needs root and setpriv to run as nobody")
        require = harness.require_binary
        require(self, harness.HCONN, "hconn command")
        self.nobody = pwd.getpwnam("nobody")

    def run_as_nobody(self, d, *args):
        os.chmod(d.dir, 0o755)   # the socket's directory, for nobody
        return subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup",
             "--clear-groups", harness.HCONN, *args],
            capture_output=True, env=d.env, timeout=30,
            cwd="/", start_new_session=True)

    def test_rule_for_one_uid_leaves_the_others_on_the_default(self):
        d = self.daemon({"rules": [{"name": "sandboxed",
                                    "uids": [self.nobody.pw_uid],
                                    "hosts": ["*.example.org"]}]})
        r = self.run_as_nobody(d, self.url())
        self.assertEqual(r.returncode, EXIT["denied"], r.stderr)
        self.assertIn(b'rules[0] \\"sandboxed\\"'
                      if b'\\"' in r.stderr else b'rules[0] "sandboxed"',
                      r.stderr)
        self.assertNoUpstream()
        r = self.run_hconn(d, self.url())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"ok")
        self.assertIn(f"uid {self.nobody.pw_uid}", d.log_text())

    def test_rule_by_gid(self):
        # A rule inherits what it does not state: it must state ports.
        d = self.daemon({"default": {"ports": [1]},
                         "rules": [{"gids": [self.nobody.pw_gid],
                                    "ports": ["1-65535"]}]})
        r = self.run_as_nobody(d, self.url())
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_hconn(d, self.url())
        self.assertEqual(r.returncode, EXIT["denied"], r.stderr)


class Reload(PolicyTest):

    def reload(self, d, path, text):
        with open(path, "w") as f:
            f.write(text)
        before = d.log_text().count("SIGHUP:")
        os.kill(d.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while d.log_text().count("SIGHUP:") == before:
            self.assertLess(time.monotonic(), deadline, "no reload logged")
            time.sleep(0.05)
        return d.log_text().splitlines()[-1]

    def test_bad_file_keeps_the_policy_good_file_replaces_it(self):
        path = self.config({"default": {"ports": [self.origin.port]}})
        d = self.start_daemon("--config", path)
        w = self.wire(d)
        head, body, last = w.request(1, "GET", self.url())
        self.assertEqual(head["status"], 200, last)

        bad = {"hosts_file": self.hosts,
               "policy": {"default": {"ports": [1]},
                          "rules": [{"uids": [0], "ports": [80, "x"]}]}}
        line = self.reload(d, path, json.dumps(bad))
        self.assertIn(path, line)
        self.assertIn("policy.rules[0].ports[1]", line)
        self.assertIn("keeping the running configuration", line)
        head, body, last = w.request(2, "GET", self.url())
        self.assertEqual(head and head["status"], 200, last)

        line = self.reload(d, path, '{"policy": {"default": {"ports": [1]}}')
        self.assertIn(":1:", line)   # JSON errors name line and column
        head, body, last = w.request(3, "GET", self.url())
        self.assertEqual(head and head["status"], 200, last)

        good = {"hosts_file": self.hosts,
                "policy": {"default": {"ports": [1]}}}
        line = self.reload(d, path, json.dumps(good))
        self.assertIn("reloaded", line)
        head, body, last = w.request(4, "GET", self.url())
        self.assertDenied(last, "port")
        self.assertEqual(len(self.origin.connections), 1)

    def test_reload_changes_limits_too(self):
        path = self.config(None)
        d = self.start_daemon("--config", path)
        self.reload(d, path, json.dumps({"max_inline_body_bytes": 4}))
        w = self.wire(d)
        head, body, last = w.request(1, "POST", self.url(), b"12345",
                                     data=5)
        self.assertEqual(last.get("error"), "limit_exceeded", last)


class Startup(PolicyTest):

    def test_bad_policy_refuses_to_start_naming_the_rule(self):
        path = self.config({"rules": [{"name": "x", "uids": [1],
                                       "colour": "red"}]})
        r = subprocess.run([harness.HCONND, "--socket",
                            os.path.join(self.dir, "s.sock"),
                            "--config", path],
                           capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(path, r.stderr)
        self.assertIn('policy.rules[0]: unknown key "colour"', r.stderr)

    def test_rule_without_uids_or_gids_is_refused(self):
        path = self.config({"rules": [{"ports": [80]}]})
        r = subprocess.run([harness.HCONND, "--socket",
                            os.path.join(self.dir, "s.sock"),
                            "--config", path],
                           capture_output=True, text=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('policy.rules[0]: a rule needs "uids" or "gids"',
                      r.stderr)


if __name__ == "__main__":
    harness.main()
