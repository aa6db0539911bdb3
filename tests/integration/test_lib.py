#!/usr/bin/env python3
"""libhconn end to end: the library engineer's lib-check program (C, linked
against libhconn) run against the test nginx through a test hconnd."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class LibCheckAgainstNginx(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        harness.require_binary(cls, harness.LIB_CHECK, "lib-check")
        cls.nginx = harness.start_class_nginx(cls, tls=True)

    def setUp(self):
        self.daemon = self.start_daemon()

    def run_lib_check(self, *args, env=None):
        e = dict(self.daemon.env)
        e.update(env or {})
        return subprocess.run([harness.LIB_CHECK, *args], capture_output=True,
                              env=e, timeout=120, start_new_session=True)

    def test_lib_check_passes(self):
        r = self.run_lib_check(self.nginx.hostport)
        self.assertEqual(r.returncode, 0,
                         f"lib-check {self.nginx.hostport} exited "
                         f"{r.returncode}\nstdout: "
                         f"{r.stdout.decode(errors='replace')}\nstderr: "
                         f"{r.stderr.decode(errors='replace')}")
        # It really went through this daemon to this nginx.
        self.assertIn(" HTTP/1.1\" 200 ",
                      self.nginx.wait_access_log(" HTTP/1.1\" 200 "))

    def test_lib_check_tls_passes(self):
        # HTTPSConnection: the options, verification failures and the
        # insecure opt-out, against nginx's TLS port.
        r = self.run_lib_check("--tls", f"127.0.0.1:{self.nginx.tls_port}",
                               self.nginx.ca_file)
        self.assertEqual(r.returncode, 0,
                         f"lib-check --tls exited {r.returncode}\nstdout: "
                         f"{r.stdout.decode(errors='replace')}\nstderr: "
                         f"{r.stderr.decode(errors='replace')}")
        self.assertIn(b"ok 1 ", r.stdout)
        self.assertNotIn(b"not ok", r.stdout)

    def test_lib_check_fails_without_a_daemon(self):
        # The check program must be able to fail: with HCONN_SOCKET naming
        # no socket, it exits non-zero.
        r = self.run_lib_check(self.nginx.hostport,
                               env={"HCONN_SOCKET": self.daemon.socket + ".x"})
        self.assertNotEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    harness.main()
