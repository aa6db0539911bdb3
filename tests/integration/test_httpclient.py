#!/usr/bin/env python3
"""libhconn as http.client's mirror: the httpclient-check program (C,
linked against libhconn) against nginx and a scripted fault origin through
a test hconnd, plus what only the origin can see (the request as it
arrived) and Python's own http.HTTPStatus to compare the tables with."""

import ast
import http
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CHECK = os.environ.get("HCONN_HTTPCLIENT_CHECK") or os.path.join(
    harness.BUILD_ROOT, "client-lib", "httpclient-check")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SCENARIOS = {
    None: [("send", OK)],
    "/pieces": [("send", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                         b"\r\n\r\n3\r\nabc\r\n"),
                ("sleep", 0.5),
                ("send", b"4\r\ndefg\r\n0\r\n\r\n")],
    "/truncated": [("send", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                            + b"x" * 500),
                   ("close",)],
    "/slow": [("sleep", 1.0), ("send", OK)],
    "/413": [("head_only",),
             ("send", b"HTTP/1.1 413 Content Too Large\r\n"
                      b"Content-Length: 0\r\nConnection: close\r\n\r\n"),
             ("keep_open",)],
}


class HttpClientCheck(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        harness.require_binary(cls, CHECK, "httpclient-check")
        cls.nginx = harness.start_class_nginx(cls)

    def daemon(self, **keys):
        return self.start_daemon_config(**keys)

    def run_check(self, d, *args):
        r = subprocess.run([CHECK, *args], capture_output=True, env=d.env,
                           timeout=120, start_new_session=True)
        return r

    def assertPasses(self, r, what):
        self.assertEqual(r.returncode, 0,
                         f"httpclient-check {what} exited {r.returncode}\n"
                         f"stdout: {r.stdout.decode(errors='replace')}\n"
                         f"stderr: {r.stderr.decode(errors='replace')[-3000:]}")
        self.assertIn(b"ok 1 ", r.stdout)
        self.assertNotIn(b"not ok", r.stdout)

    def test_against_nginx(self):
        d = self.daemon()
        self.assertPasses(self.run_check(d, "--nginx", self.nginx.hostport),
                          "--nginx")

    def test_against_the_fault_origin(self):
        origin = self.start_origin(SCENARIOS)
        d = self.daemon(read_timeout=0.3)
        self.assertPasses(self.run_check(d, "--fault", origin.hostport),
                          "--fault")
        # What the origin received: "" went as "/", and putheaderv's
        # values as one field joined with ", ".
        posts = [q for q in origin.requests if q.method == "POST"]
        self.assertEqual([q.target for q in posts], ["/"])
        listed = [q for q in origin.requests if q.header("X-List")]
        self.assertEqual(len(listed), 1, origin.requests)
        self.assertEqual(listed[0].header("X-List"), "a, b c, d")
        self.assertEqual(listed[0].header("X-Empty"), "")
        # The 413'd upload: the origin saw its head, not 256 MiB.
        put = [q for q in origin.requests if q.method == "PUT"]
        self.assertEqual(len(put), 1)

    def test_the_check_program_can_fail(self):
        # Without a daemon every check that needs one fails.
        d = self.daemon()
        env = dict(d.env, HCONN_SOCKET=d.socket + ".none")
        r = subprocess.run([CHECK, "--nginx", self.nginx.hostport],
                           capture_output=True, env=env, timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"not ok", r.stdout)

    def test_status_table_matches_http_HTTPStatus(self):
        r = subprocess.run([CHECK, "--status-table"], capture_output=True,
                           text=True, timeout=30, check=True)
        ours = {}
        for line in r.stdout.splitlines():
            code, phrase, description = line.split("|", 2)
            ours[int(code)] = (phrase, description)
        # Python 3.13 renamed these (RFC 9110); this build follows it.
        renamed = {413: ("Content Too Large", "Content is too large"),
                   414: ("URI Too Long", "URI is too long"),
                   416: ("Range Not Satisfiable",
                         "Cannot satisfy request range"),
                   422: ("Unprocessable Content", "")}
        with open(os.path.join(harness.SOURCE_ROOT, "client-lib",
                               "hconn.h")) as f:
            header = f.read()
        for s in http.HTTPStatus:
            with self.subTest(status=s.value):
                self.assertIn(s.value, ours)
                self.assertEqual(ours[s.value],
                                 renamed.get(s.value,
                                             (s.phrase, s.description)))
                self.assertRegex(
                    header, rf"\bHCONN_STATUS_{s.name} = {s.value},")
        self.assertEqual(set(ours), {s.value for s in http.HTTPStatus})

    def test_debuglevel_prints_what_http_client_prints(self):
        origin = self.start_origin({None: [("send", OK)]})
        d = self.daemon()
        r = self.run_check(d, "--debug", origin.hostport)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 0, err)
        self.assertTrue(origin.wait_requests(1))
        sent = [ast.literal_eval(line[len("send: "):])
                for line in err.splitlines() if line.startswith("send: ")]
        self.assertEqual(len(sent), 1, err)
        head, _, body = sent[0].partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        q = origin.requests[0]
        # The head as the origin got it: request line, fields in order.
        self.assertEqual(lines[0], f"{q.method} {q.target} HTTP/1.1")
        self.assertEqual([tuple(f.split(": ", 1)) for f in lines[1:]],
                         [tuple(h) for h in q.headers])
        self.assertIn(("X-Test", "it's"), [tuple(h) for h in q.headers])
        self.assertEqual(body, b"x=1")
        self.assertEqual(q.body, b"x=1")
        self.assertIn("reply: 'HTTP/1.1 200 OK\\r\\n'", err.splitlines())
        self.assertIn("header: Content-Length: 2", err.splitlines())
        # No protocol JSON at level 1.
        self.assertNotRegex(err, r'\{"id"')



class Examples(harness.IntegrationTest):
    """examples/get.c is what the README and libhconn(3) show, it runs, and
    the README's advice for a non-system prefix works."""

    GET_C = os.path.join(harness.SOURCE_ROOT, "client-lib", "examples",
                         "get.c")

    def read(self, *parts):
        with open(os.path.join(harness.SOURCE_ROOT, *parts)) as f:
            return f.read()

    def test_readme_and_man_page_show_examples_get_c(self):
        src = self.read("client-lib", "examples", "get.c")
        readme = self.read("README.md")
        m = re.search(r"`client-lib/examples/get.c`[^\n]*\n\n```c\n(.*?)```",
                      readme, re.S)
        self.assertIsNotNone(m, "no get.c block in README.md")
        self.assertEqual(m.group(1), src)
        page = self.read("man", "libhconn.3")
        m = re.search(r"\.SH EXAMPLES.*?\.EX\n(.*?)\.EE", page, re.S)
        roff = m.group(1)
        text = re.sub(r"^\\&", "", roff, flags=re.M)
        text = text.replace("\\-", "-").replace("\\e", "\\")
        self.assertEqual(text, src)

    def built(self, name):
        path = os.path.join(harness.BUILD_ROOT, "client-lib", name)
        harness.require_binary(self, path, name)
        return path

    def test_get_example_runs(self):
        ng = harness.Nginx()
        self.addCleanup(ng.stop)
        ng.start()
        d = self.start_daemon()
        r = subprocess.run([self.built("get"), ng.hostport],
                           capture_output=True, text=True, env=d.env,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^\d{3} [A-Za-z ]+\n\d+ bytes\n$")

    def test_a_program_built_as_the_readme_says_runs_from_a_prefix(self):
        meson, cc = shutil.which("meson"), shutil.which("cc")
        pkg_config = shutil.which("pkg-config")
        if not (meson and cc and pkg_config):
            raise harness.missing("meson, cc and pkg-config are needed")
        destdir = tempfile.mkdtemp(prefix="hconn-prefix-")
        self.addCleanup(shutil.rmtree, destdir, True)
        r = subprocess.run([meson, "install", "-C", harness.BUILD_ROOT,
                            "--no-rebuild", "--quiet", "--destdir", destdir],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        pcs = [os.path.join(root, f) for root, _, files in os.walk(destdir)
               for f in files if f == "hconn.pc"]
        self.assertEqual(len(pcs), 1, pcs)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]),
                   PKG_CONFIG_SYSROOT_DIR=destdir)

        def pc(*args):
            return subprocess.run([pkg_config, *args, "hconn"], env=env,
                                  capture_output=True, text=True,
                                  check=True).stdout.split()

        # As the README says: -Wl,-rpath,$(pkg-config --variable=libdir
        # hconn) (pkg-config puts the sysroot, destdir, in front).
        libdir = pc("--variable=libdir")[0]
        self.assertTrue(libdir.startswith(destdir), libdir)
        ng = harness.Nginx()
        self.addCleanup(ng.stop)
        ng.start()
        d = self.start_daemon()
        runs = {}
        # A sanitized build installs an instrumented library: the program
        # then needs the sanitizer runtime linked first.
        sanitize = (["-fsanitize=address,undefined"]
                    if os.environ.get("HCONN_SANITIZED") else [])
        for name, extra in (("plain", []),
                            ("rpath", [f"-Wl,-rpath,{libdir}"])):
            out = os.path.join(destdir, f"get-{name}")
            r = subprocess.run([cc, *sanitize, self.GET_C, "-o", out,
                                *pc("--cflags", "--libs"), *extra],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            # Nothing may point the loader at the build tree (meson test
            # sets LD_LIBRARY_PATH for its own binaries).
            run_env = {k: v for k, v in d.env.items()
                       if k != "LD_LIBRARY_PATH"}
            runs[name] = subprocess.run([out, ng.hostport],
                                        capture_output=True, text=True,
                                        env=run_env, timeout=60)
        # Without the rpath the loader cannot find the library (the
        # problem the README explains); with it the program runs.
        self.assertNotEqual(runs["plain"].returncode, 0)
        self.assertIn("libhconn.so.0", runs["plain"].stderr)
        self.assertEqual(runs["rpath"].returncode, 0, runs["rpath"].stderr)
        self.assertRegex(runs["rpath"].stdout, r"^\d{3} ")


if __name__ == "__main__":
    harness.main()
