#!/usr/bin/env python3
"""TLS files a client names (ca_file, ca_path, cert_file, key_file) are
opened with the client's own rights, on every request: another user's
0600 CA file or client key gets the same error as a file that does not
exist, even while a pooled connection made with it sits idle, or after
the daemon has cached what the file gave; an edited CA file takes effect
on the next request (rewritten in place, same size, same second; replaced
by rename; made unreadable); a FIFO
does not block the daemon; the policy key tls_files refuses path fields
for clients other than root. Each refusal reaches no origin."""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import other_user  # noqa: E402

LOOPBACK = harness.LOOPBACK


class TlsFilesAsTheClient(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        cls.nginx = harness.start_class_nginx(cls, tls_variants=True)

    def setUp(self):
        other_user.require(self)
        self.uid, self.gid = other_user.ids()
        self.dir = tempfile.mkdtemp(prefix="hconn-tlsfiles-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        # Root's own copies, readable by root only.
        self.secret_ca = self.copy(self.nginx.ca_file, "root-ca.crt", 0o600)
        self.secret_key = self.copy(self.nginx.client_key_file,
                                    "root-client.key", 0o600)
        self.public_ca = self.copy(self.nginx.ca_file, "ca.crt", 0o644)
        self.public_cert = self.copy(self.nginx.client_cert_file,
                                     "client.crt", 0o644)
        self.rid = 0

    def copy(self, src, name, mode):
        path = os.path.join(self.dir, name)
        shutil.copyfile(src, path)
        os.chmod(path, mode)
        return path

    def daemon(self, policy=None):
        if policy is None:
            return self.start_daemon()
        path = os.path.join(self.dir, "hconnd.json")
        with open(path, "w") as f:
            import json
            json.dump({"policy": policy}, f)
        return self.start_daemon("--config", path)

    def get(self, w, tls, port=None, tag="root"):
        """GET with a target naming the test and tag, so the origin's log
        shows which requests arrived."""
        self.rid += 1
        w.send({"id": self.rid, "method": "GET", "host": LOOPBACK,
                "port": port or self.nginx.tls_port,
                "target": f"/small.txt?{self.id()}-{tag}", "tls": tls})
        return w.read_response(self.rid)

    def requests_seen(self, tag="user"):
        """Requests with tag that reached the origin."""
        return self.nginx.access_log_text().count(f"{self.id()}-{tag}")

    def cannot_open(self, field, path):
        return (f'tls.{field} "{path}": cannot open it as uid {self.uid} '
                "(no such file, or not readable by that uid)")

    def test_root_only_ca_file_is_refused_even_with_a_pooled_connection(self):
        d = self.daemon()
        head, _, last = self.get(self.wire(d), {"ca_file": self.secret_ca})
        self.assertOkResponse(head, last)   # root may, and pools it
        w = other_user.wire_as(self, d, self.uid, self.gid)
        head, _, err = self.get(w, {"ca_file": self.secret_ca}, tag="user")
        self.assertIsNone(head)
        self.assertEqual(err["error"], "tls_failed", err)
        self.assertEqual(err["message"],
                         self.cannot_open("ca_file", self.secret_ca))
        self.assertEqual(self.requests_seen(), 0)
        # The same bytes, from a file the user can read, share the pooled
        # connection: the key names the material, not the path.
        head, _, last = self.get(w, {"ca_file": self.public_ca})
        self.assertOkResponse(head, last)
        self.assertIs(head["reused"], True)

    def test_missing_and_unreadable_files_give_the_same_answer(self):
        d = self.daemon()
        w = other_user.wire_as(self, d, self.uid, self.gid)
        missing = os.path.join(self.dir, "no-such.crt")
        _, _, a = self.get(w, {"ca_file": missing}, tag="user")
        _, _, b = self.get(w, {"ca_file": self.secret_ca}, tag="user")
        self.assertEqual(a["error"], b["error"])
        self.assertEqual(a["message"].replace(missing, "X"),
                         b["message"].replace(self.secret_ca, "X"))
        hidden = os.path.join(self.dir, "private")
        os.mkdir(hidden, 0o700)
        _, _, c = self.get(w, {"ca_path": hidden}, tag="user")
        self.assertEqual(c["message"], self.cannot_open("ca_path", hidden))
        self.assertEqual(self.requests_seen(), 0)

    def test_root_only_client_key_gets_no_response_from_the_mtls_origin(self):
        d = self.daemon()
        tls = {"ca_file": self.public_ca, "cert_file": self.public_cert,
               "key_file": self.secret_key}
        port = self.nginx.mtls_tls_port
        head, _, last = self.get(self.wire(d), tls, port)
        self.assertOkResponse(head, last)
        self.assertEqual(harness.header_value(head, "X-Client-Verify"),
                         "SUCCESS")
        w = other_user.wire_as(self, d, self.uid, self.gid)
        head, _, err = self.get(w, tls, port, tag="user")
        self.assertIsNone(head)
        self.assertEqual(err["message"],
                         self.cannot_open("key_file", self.secret_key))
        self.assertEqual(self.requests_seen(), 0)

    def test_uids_under_different_filters_never_share_a_tls_connection(self):
        """The pool finds the last https origin by comparing a request's
        TLS settings and address filter rather than writing its key:
        root and a user, under rules that filter addresses alike but are
        not the same rule, ask in turn for the same origin with the same
        CA bytes, each from its own file, and no connection carries both;
        each keeps its own."""
        d = self.daemon({"rules": [{"name": "user", "uids": [self.uid],
                                    "private": False},
                                   {"name": "root", "uids": [0],
                                    "private": False}]})
        users = {"root": (self.wire(d), self.secret_ca),
                 "user": (other_user.wire_as(self, d, self.uid, self.gid),
                          self.public_ca)}
        conns = {"root": set(), "user": set()}
        for i in range(8):
            who = "root" if i % 2 == 0 else "user"
            w, ca = users[who]
            head, _, last = self.get(w, {"ca_file": ca}, tag=who)
            self.assertOkResponse(head, last)
            self.assertIs(head["reused"], i >= 2, (who, i))
            conns[who].add(harness.header_value(head, "X-Connection"))
        self.assertEqual(len(conns["root"]), 1, conns)
        self.assertEqual(len(conns["user"]), 1, conns)
        self.assertFalse(conns["root"] & conns["user"], conns)

    def same_size_pems(self):
        """The test CA and the other CA as PEM of one length (OpenSSL skips
        text outside the BEGIN/END lines, so the shorter is padded)."""
        other = os.path.join(os.path.dirname(self.nginx.ca_file),
                             "other-ca.crt")
        with open(self.nginx.ca_file, "rb") as f:
            good = f.read()
        with open(other, "rb") as f:
            wrong = f.read()
        n = max(len(good), len(wrong))
        return good + b"\n" * (n - len(good)), wrong + b"\n" * (n - len(wrong))

    def rewrite_in_place(self, path, data):
        """Overwrites path's bytes without truncating or replacing it."""
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)

    def assert_verify_fails(self, w, tls, tag="root"):
        head, _, err = self.get(w, tls, tag=tag)
        self.assertIsNone(head)
        self.assertEqual(err["error"], "tls_verify_failed", err)

    def cache_a_ca_file(self, name, settle=False):
        """A daemon, root's wire, a CA file that served three requests (so
        the daemon cached it) and same-size PEM of the right and the
        wrong CA. settle: the file is quiet long enough first for the
        entry to be trusted without reading."""
        d = self.daemon()
        w = self.wire(d)
        good, wrong = self.same_size_pems()
        ca = os.path.join(self.dir, name)
        with open(ca, "wb") as f:
            f.write(good)
        os.chmod(ca, 0o644)
        if settle:
            old = os.stat(ca).st_mtime - 10
            os.utime(ca, (old, old))
            time.sleep(3)   # the change time, which utime set, grows old
        tls = {"ca_file": ca}
        for _ in range(3):
            head, _, last = self.get(w, tls)
            self.assertOkResponse(head, last)
        return w, ca, tls, good, wrong

    def test_an_edited_ca_file_takes_effect_on_the_next_request(self):
        w, ca, tls, good, wrong = self.cache_a_ca_file("edited.crt")
        # Same size, same inode, within the same second (a coarse clock
        # may give it the same times): the other CA must take over.
        self.rewrite_in_place(ca, wrong)
        self.assert_verify_fails(w, tls)
        self.rewrite_in_place(ca, good)
        head, _, last = self.get(w, tls)
        self.assertOkResponse(head, last)
        # Replaced by rename: a new inode under the same path.
        tmp = ca + ".new"
        with open(tmp, "wb") as f:
            f.write(wrong)
        os.chmod(tmp, 0o644)
        os.rename(tmp, ca)
        self.assert_verify_fails(w, tls)

    def test_a_settled_cached_ca_file_still_sees_an_edit(self):
        # Once a file has been quiet for a while its entry is trusted
        # without reading; an in-place rewrite of the same size must still
        # be seen at once.
        w, ca, tls, good, wrong = self.cache_a_ca_file("settled.crt", True)
        old = os.stat(ca).st_mtime
        self.rewrite_in_place(ca, wrong)
        os.utime(ca, (old, old))   # the same mtime: only ctime tells
        self.assert_verify_fails(w, tls)

    def test_a_cached_file_made_unreadable_is_refused_at_once(self):
        d = self.daemon()
        ca = self.copy(self.nginx.ca_file, "shared.crt", 0o644)
        w = other_user.wire_as(self, d, self.uid, self.gid)
        for _ in range(2):
            head, _, last = self.get(w, {"ca_file": ca})
            self.assertOkResponse(head, last)
        # Root reads it too: its entry serves root only while the user,
        # who can no longer open it, is refused.
        os.chmod(ca, 0o600)
        head, _, last = self.get(self.wire(d), {"ca_file": ca})
        self.assertOkResponse(head, last)
        head, _, err = self.get(w, {"ca_file": ca}, tag="user")
        self.assertIsNone(head)
        self.assertEqual(err["message"], self.cannot_open("ca_file", ca))
        self.assertEqual(self.requests_seen(), 0)

    def test_a_root_only_file_cached_by_root_never_reaches_the_user(self):
        # Settled in the cache under root's reads, the file still opens as
        # the user on each request, and the user cannot open it.
        d = self.daemon()
        root = self.wire(d)
        old = os.stat(self.secret_ca).st_mtime - 10
        os.utime(self.secret_ca, (old, old))
        time.sleep(3)
        for _ in range(3):
            head, _, last = self.get(root, {"ca_file": self.secret_ca})
            self.assertOkResponse(head, last)
        w = other_user.wire_as(self, d, self.uid, self.gid)
        for _ in range(2):
            head, _, err = self.get(w, {"ca_file": self.secret_ca},
                                    tag="user")
            self.assertIsNone(head)
            self.assertEqual(err["message"],
                             self.cannot_open("ca_file", self.secret_ca))
        self.assertEqual(self.requests_seen(), 0)

    def test_a_fifo_does_not_block_the_daemon(self):
        d = self.daemon()
        fifo = os.path.join(self.dir, "ca.fifo")
        os.mkfifo(fifo, 0o666)
        w = other_user.wire_as(self, d, self.uid, self.gid)
        head, _, err = self.get(w, {"ca_file": fifo}, tag="user")
        self.assertIsNone(head)
        self.assertEqual(err["error"], "tls_failed", err)
        self.assertEqual(err["message"],
                         f'tls.ca_file "{fifo}": not a regular file')
        # And the daemon still answers everyone.
        head, _, last = self.get(self.wire(d), {"ca_file": self.public_ca})
        self.assertOkResponse(head, last)

    def test_an_oversized_file_is_limit_exceeded(self):
        d = self.daemon()
        big = os.path.join(self.dir, "big.crt")
        with open(big, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\n" + "A" * (600 * 1024))
        os.chmod(big, 0o644)
        w = other_user.wire_as(self, d, self.uid, self.gid)
        _, _, err = self.get(w, {"ca_file": big}, tag="user")
        self.assertEqual(err["error"], "limit_exceeded", err)
        self.assertIn("more than 524288 bytes", err["message"])

    def test_policy_tls_files_refuses_paths_to_users_not_root(self):
        d = self.daemon({"default": {"tls_files": False}})
        w = other_user.wire_as(self, d, self.uid, self.gid)
        _, _, err = self.get(w, {"ca_file": self.public_ca}, tag="user")
        self.assertEqual(err["error"], "denied", err)
        self.assertIn("policy rule default: TLS files (ca_file, ca_path, "
                      "cert_file, key_file) are not allowed", err["message"])
        # Inline material is still fine, and root keeps its paths.
        with open(self.public_ca) as f:
            pem = f.read()
        head, _, last = self.get(w, {"ca_pem": pem})
        self.assertOkResponse(head, last)
        head, _, last = self.get(self.wire(d), {"ca_file": self.public_ca})
        self.assertOkResponse(head, last)

    def test_hconn_command_reads_the_files_itself_and_sends_them(self):
        harness.require_binary(self, harness.HCONN, "hconn command")
        prefix = other_user.setpriv()
        if prefix is None:
            self.skipTest("needs setpriv")
        d = self.daemon({"default": {"tls_files": False}})
        os.chmod(d.dir, 0o755)
        url = self.nginx.tls_url("/small.txt")
        r = subprocess.run([*prefix, os.path.abspath(harness.HCONN), "--cacert",
                            self.public_ca, url], capture_output=True,
                           env=d.env, timeout=30, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.SMALL_BODY)
        r = subprocess.run([*prefix, os.path.abspath(harness.HCONN), "--cacert",
                            self.secret_ca, url], capture_output=True,
                           env=d.env, timeout=30, cwd="/")
        self.assertEqual(r.returncode, harness.error_codes()["io_error"],
                         r.stderr)
        self.assertIn(f"cannot read {self.secret_ca}: Permission denied",
                      r.stderr.decode())

    def test_a_daemon_that_cannot_take_the_uid_refuses_paths(self):
        # hconnd run as nobody, as a per-user daemon would: its own user's
        # clients name files, any other's get denied (never the daemon's
        # own rights), and inline material works for everyone.
        prefix = other_user.setpriv()
        if prefix is None:
            self.skipTest("needs setpriv")
        wrapper = os.path.join(self.dir, "hconnd-as-nobody")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    'chmod 777 "$(dirname "$2")"\n'
                    f"exec {' '.join(prefix)} "
                    f"{os.path.abspath(harness.HCONND)} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        saved = harness.HCONND
        harness.HCONND = wrapper
        try:
            d = self.daemon()
        finally:
            harness.HCONND = saved
        root = self.wire(d)
        _, _, err = self.get(root, {"ca_file": self.public_ca}, tag="user")
        self.assertEqual(err, {
            "id": self.rid, "error": "denied",
            "message": "tls: hconnd cannot open files with the rights of "
                       "uid 0"})
        with open(self.public_ca) as f:
            head, _, last = self.get(root, {"ca_pem": f.read()})
        self.assertOkResponse(head, last)
        w = other_user.wire_as(self, d, self.uid, self.gid)
        head, _, last = self.get(w, {"ca_file": self.public_ca})
        self.assertOkResponse(head, last)
        self.assertEqual(self.requests_seen(), 0)


if __name__ == "__main__":
    harness.main()
