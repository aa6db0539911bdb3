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
