#!/usr/bin/env python3
"""hconnd under a service manager: socket activation (the daemon starts
on the first connection and serves the socket it was handed, never
touching the file), readiness and stop notification over $NOTIFY_SOCKET,
the generated units (systemd-analyze verify, and an exposure level of 2.0
or lower from systemd-analyze security), and `meson install` putting
every promised file in place."""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BUILD_ROOT, HCONND, SMALL_BODY, SOURCE_ROOT  # noqa: E402

SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
MESON = shutil.which("meson")

MAX_EXPOSURE = 2.0


def require_tool(path, name, package):
    if path is None:
        raise harness.missing(f"{name} not found (Debian package {package})")


def wait_until(predicate, timeout=20.0):
    """Polls predicate until it holds; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def exe_of(pid):
    """The program pid runs now, resolved ("" once it is gone)."""
    try:
        return os.path.realpath(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


class Notifications:
    """A datagram socket standing in for the service manager's notify
    socket: at a path, or abstract ("@name"). Records each message with
    the sender's pid, which the kernel attaches (SO_PASSCRED), as systemd
    reads it to check NotifyAccess=main."""

    def __init__(self, testcase, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        testcase.addCleanup(self.sock.close)
        if abstract:
            name = f"hconn-test-notify-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            d = tempfile.mkdtemp(prefix="hconnd-notify-")
            testcase.addCleanup(shutil.rmtree, d, True)
            self.env_value = os.path.join(d, "notify")
            self.sock.bind(self.env_value)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(20)

    def receive(self):
        """(fields dict, sender pid) of the next message."""
        try:
            data, anc, _, _ = self.sock.recvmsg(
                4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except socket.timeout:
            raise AssertionError("no notification from hconnd within "
                                 "20 s") from None
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", cdata[:struct.calcsize("3i")])[0]
        fields = {}
        for line in data.decode().split("\n"):
            key, sep, value = line.partition("=")
            if not sep:
                raise AssertionError(f"not a VAR=value line: {data!r}")
            fields[key] = value
        return fields, pid


class Activation(harness.IntegrationTest):
    """systemd-socket-activate holds the socket and execs hconnd in its
    place on the first connection, with LISTEN_PID/LISTEN_FDS set."""

    def setUp(self):
        require_tool(SOCKET_ACTIVATE, "systemd-socket-activate", "systemd")
        harness.require_binary(self, HCONND, "hconnd")
        self.dir = tempfile.mkdtemp(prefix="hconnd-activate-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "hconnd.sock")
        self.log_path = os.path.join(self.dir, "activate.log")

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def activate(self, *options):
        """Starts systemd-socket-activate with hconnd behind it; returns the
        process once it listens."""
        with open(self.log_path, "wb") as log:
            proc = subprocess.Popen(
                [SOCKET_ACTIVATE, *options, "-l", self.path,
                 "--fdname=hconnd", HCONND, "-vv"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        self.addCleanup(harness.kill_group, proc)
        self.addCleanup(self.print_log_on_failure)
        # The file appears at bind(); connections are refused until its
        # listen(), after which it says so.
        wait_until(lambda: "Listening on" in self.log_text() or
                   proc.poll() is not None)
        self.assertTrue(os.path.exists(self.path) and proc.poll() is None,
                        f"systemd-socket-activate did not make {self.path}:"
                        f"\n{self.log_text()}")
        return proc

    def print_log_on_failure(self):
        if self._failed():
            sys.stderr.write(f"\n---- {self.log_path} ----\n"
                             f"{harness.tail(self.log_text())}\n")

    def test_starts_on_first_connect_and_serves_the_passed_socket(self):
        ng = self.start_nginx()
        proc = self.activate()
        before = os.stat(self.path)
        # Nobody connected yet: the socket is held, hconnd is not running.
        self.assertNotEqual(exe_of(proc.pid), os.path.realpath(HCONND))
        self.assertNotIn("hconnd: ", self.log_text())

        # The first connection waits in the backlog while hconnd starts,
        # and is then served.
        w = harness.Wire(self.path, timeout=20)
        self.addCleanup(w.close)
        head, body, last = w.request(1, "GET", ng.url("/small.txt"))
        self.assertOkResponse(head, last)
        self.assertEqual(body, SMALL_BODY)
        self.assertEqual(exe_of(proc.pid), os.path.realpath(HCONND),
                         "hconnd should run in place of "
                         "systemd-socket-activate (same pid)")
        self.assertIn(f"listening on {self.path} (socket activation)",
                      self.log_text())

        # Another client on the same socket; the first one's connection
        # is pooled by now.
        w.close()
        w2 = harness.Wire(self.path, timeout=20)
        self.addCleanup(w2.close)
        head, body, last = w2.request(2, "GET", ng.url("/small.txt"))
        self.assertOkResponse(head, last)
        self.assertTrue(head["reused"], f"head: {head!r}")
        w2.close()

        # The file is the one systemd-socket-activate made: not replaced
        # at start, not removed at stop.
        after = os.stat(self.path)
        self.assertEqual((before.st_dev, before.st_ino),
                         (after.st_dev, after.st_ino))
        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=20), 0, self.log_text())
        self.assertIn("stopped", self.log_text())
        after = os.stat(self.path)
        self.assertEqual((before.st_dev, before.st_ino),
                         (after.st_dev, after.st_ino))

    def test_refuses_a_datagram_socket(self):
        proc = self.activate("--datagram")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.sendto(b"x", self.path)
        self.assertEqual(proc.wait(timeout=20), 1, self.log_text())
        self.assertIn("socket activation: fd 3 is not an AF_UNIX stream "
                      "socket", self.log_text())
        self.assertTrue(os.path.exists(self.path))


class ActivationVariables(harness.IntegrationTest):
    """LISTEN_PID / LISTEN_FDS that do not hand hconnd a socket."""

    def setUp(self):
        harness.require_binary(self, HCONND, "hconnd")
        self.dir = tempfile.mkdtemp(prefix="hconnd-activate-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "hconnd.sock")

    def test_variables_for_another_process_are_ignored(self):
        # LISTEN_PID names someone else (the process that exec'd us, say):
        # hconnd binds its own socket as usual.
        d = self.start_daemon(env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
        w = self.wire(d)
        w.send({"op": "hello"})
        self.assertEqual(w.read_message()["version"], 1)
        self.assertIn(f"listening on {d.socket}\n", d.log_text())

    def test_malformed_variables_are_an_error(self):
        r = subprocess.run(
            [HCONND, "--socket", self.path],
            env=dict(os.environ, LISTEN_PID="12x", LISTEN_FDS="1"),
            capture_output=True, text=True, timeout=20,
            stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("LISTEN_PID=12x is not a pid", r.stderr)
        self.assertFalse(os.path.exists(self.path))


class Readiness(harness.IntegrationTest):
    """READY=1 with STATUS= once clients are accepted, STOPPING=1 when
    SIGTERM begins the graceful stop."""

    def run_daemon(self, notify, *args):
        harness.require_binary(self, HCONND, "hconnd")
        d = tempfile.mkdtemp(prefix="hconnd-ready-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "hconnd.sock")
        log_path = os.path.join(d, "hconnd.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [HCONND, "--socket", path, "-v", *args],
                env=dict(os.environ, NOTIFY_SOCKET=notify.env_value),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        self.addCleanup(harness.kill_group, proc)
        return proc, path, log_path

    def check_ready_then_stopping(self, notify):
        proc, path, log_path = self.run_daemon(notify)

        fields, pid = notify.receive()
        self.assertEqual(fields.get("READY"), "1", fields)
        self.assertEqual(fields.get("STATUS"), f"listening on {path}")
        self.assertEqual(pid, proc.pid, "sent by hconnd's main process")
        # Ready means ready: a client is served right away, no retry.
        w = harness.Wire(path, timeout=20)
        self.addCleanup(w.close)
        w.send({"op": "hello"})
        self.assertEqual(w.read_message()["version"], 1)
        w.close()

        os.kill(proc.pid, signal.SIGTERM)
        fields, pid = notify.receive()
        self.assertEqual(fields.get("STOPPING"), "1", fields)
        self.assertIn("STATUS", fields)
        self.assertEqual(pid, proc.pid)
        with open(log_path) as log:
            self.assertEqual(proc.wait(timeout=20), 0, log.read())

    def test_ready_and_stopping_on_a_socket_path(self):
        self.check_ready_then_stopping(Notifications(self))

    def test_ready_and_stopping_on_an_abstract_socket(self):
        self.check_ready_then_stopping(Notifications(self, abstract=True))

    def test_reload_is_announced(self):
        notify = Notifications(self)
        d = tempfile.mkdtemp(prefix="hconnd-ready-")
        self.addCleanup(shutil.rmtree, d, True)
        config = os.path.join(d, "hconnd.json")
        with open(config, "w") as f:
            f.write("{}\n")
        proc, _, log_path = self.run_daemon(notify, "--config", config)
        self.assertEqual(notify.receive()[0].get("READY"), "1")

        os.kill(proc.pid, signal.SIGHUP)
        fields, pid = notify.receive()
        self.assertEqual(fields.get("RELOADING"), "1", fields)
        self.assertRegex(fields.get("MONOTONIC_USEC", ""), r"^[0-9]+$")
        self.assertEqual(pid, proc.pid)
        fields, _ = notify.receive()
        self.assertEqual(fields.get("READY"), "1", fields)
        self.assertEqual(fields.get("STATUS"), f"reloaded {config}")

        # A bad file: refused, and still READY=1 (the old settings serve).
        with open(config, "w") as f:
            f.write('{"no_such_key": 1}\n')
        os.kill(proc.pid, signal.SIGHUP)
        self.assertEqual(notify.receive()[0].get("RELOADING"), "1")
        fields, _ = notify.receive()
        self.assertEqual(fields.get("READY"), "1", fields)
        self.assertIn("reload refused", fields.get("STATUS", ""))
        self.assertIn("no_such_key", fields.get("STATUS", ""))

        os.kill(proc.pid, signal.SIGTERM)
        self.assertEqual(notify.receive()[0].get("STOPPING"), "1")
        with open(log_path) as log:
            self.assertEqual(proc.wait(timeout=20), 0, log.read())

    def test_no_ready_when_it_cannot_listen(self):
        # A daemon that cannot listen never says READY=1: it exits 1, so
        # the service manager sees a failed start.
        notify = Notifications(self)
        d = tempfile.mkdtemp(prefix="hconnd-ready-")
        self.addCleanup(shutil.rmtree, d, True)
        blocker = os.path.join(d, "not-a-socket")
        with open(blocker, "w"):
            pass
        r = subprocess.run(
            [HCONND, "--socket", blocker],
            env=dict(os.environ, NOTIFY_SOCKET=notify.env_value),
            capture_output=True, text=True, timeout=20,
            stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 1, r.stderr)
        notify.sock.settimeout(0)
        with self.assertRaises(BlockingIOError):
            notify.sock.recv(4096)


class Units(harness.IntegrationTest):
    """The units generated into the build dir, checked by systemd's own
    tools on copies whose ExecStart is the built hconnd (verify wants the
    binary to exist; the install path may not)."""

    def setUp(self):
        require_tool(SYSTEMD_ANALYZE, "systemd-analyze", "systemd")
        # verify checks each Documentation= page with man(1).
        require_tool(shutil.which("man"), "man", "man-db")
        harness.require_binary(self, HCONND, "hconnd")
        self.dir = tempfile.mkdtemp(prefix="hconnd-units-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        for unit in ("hconnd.service", "hconnd.socket"):
            src = os.path.join(BUILD_ROOT, "systemd", unit)
            if not os.path.exists(src):
                raise harness.missing(f"{src} not generated")
            with open(src) as f:
                text = f.read()
            text = re.sub(r"^ExecStart=\S+", f"ExecStart={HCONND}", text,
                          flags=re.M)
            with open(os.path.join(self.dir, unit), "w") as f:
                f.write(text)
        # Documentation= pages are looked up with man(1): give it ours.
        self.manpath = os.path.join(self.dir, "man")
        for page in ("hconnd.8", "hconnd.json.5", "hconn.1", "libhconn.3"):
            section = os.path.join(self.manpath, "man" + page[-1])
            os.makedirs(section, exist_ok=True)
            shutil.copy(os.path.join(SOURCE_ROOT, "man", page), section)

    def analyze(self, *args):
        return subprocess.run(
            [SYSTEMD_ANALYZE, *args], capture_output=True, text=True,
            timeout=120, cwd=self.dir,
            env=dict(os.environ, MANPATH=self.manpath, SYSTEMD_PAGER="",
                     SYSTEMD_COLORS="0"))

    def test_verify(self):
        r = self.analyze("verify", "./hconnd.socket", "./hconnd.service")
        ours = [line for line in (r.stdout + r.stderr).splitlines()
                if "hconnd" in line]
        self.assertEqual(ours, [], r.stdout + r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_security_exposure_level(self):
        r = self.analyze("security", "--offline=true", "--no-pager",
                         "./hconnd.service")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"Overall exposure level for hconnd\.service: "
                      r"(\d+\.\d+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE,
                             harness.tail(r.stdout, 80))

    def test_socket_unit_restricts_the_socket_to_a_group(self):
        with open(os.path.join(self.dir, "hconnd.socket")) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^SocketMode=0660$")
        self.assertRegex(text, r"(?m)^SocketGroup=hconn$")
        # The group exists once the sysusers.d snippet ran.
        with open(os.path.join(SOURCE_ROOT, "systemd",
                               "hconnd.sysusers.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^g hconn ")


class Install(harness.IntegrationTest):
    """`meson install --destdir` puts every promised file in place, and
    the installed header, library and pkg-config file build a client."""

    def setUp(self):
        require_tool(MESON, "meson", "meson")
        info = os.path.join(BUILD_ROOT, "meson-info",
                            "intro-buildoptions.json")
        if not os.path.exists(info):
            raise harness.missing(f"{BUILD_ROOT} is not a meson build dir")
        with open(info) as f:
            self.options = {o["name"]: o["value"] for o in json.load(f)}
        self.destdir = tempfile.mkdtemp(prefix="hconn-destdir-")
        self.addCleanup(shutil.rmtree, self.destdir, True)

    def installed(self, *parts):
        """The destdir path of an install path made of parts (relative
        parts are under the prefix)."""
        path = os.path.join(self.options["prefix"], *parts)
        return os.path.join(self.destdir, path.lstrip("/"))

    def test_meson_install_installs_every_promised_file(self):
        r = subprocess.run(
            [MESON, "install", "-C", BUILD_ROOT, "--no-rebuild", "--quiet",
             "--destdir", self.destdir],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        o = self.options
        unit_dir = o.get("systemd_unit_dir") or os.path.join(
            o["prefix"], "lib", "systemd", "system")
        libdir, mandir = o["libdir"], o["mandir"]
        expected = {
            "hconnd": self.installed(o["sbindir"], "hconnd"),
            "hconn": self.installed(o["bindir"], "hconn"),
            "shared library": self.installed(libdir, "libhconn.so.0.0.0"),
            "soname link": self.installed(libdir, "libhconn.so.0"),
            "dev link": self.installed(libdir, "libhconn.so"),
            "static library": self.installed(libdir, "libhconn.a"),
            "hconn.h": self.installed(o["includedir"], "hconn.h"),
            "hconn_error.h": self.installed(o["includedir"],
                                            "hconn_error.h"),
            "hconn.pc": self.installed(libdir, "pkgconfig", "hconn.pc"),
            "service unit": self.installed(unit_dir, "hconnd.service"),
            "socket unit": self.installed(unit_dir, "hconnd.socket"),
            "sysusers.d": self.installed("lib", "sysusers.d", "hconnd.conf"),
            "hconnd(8)": self.installed(mandir, "man8", "hconnd.8"),
            "hconn(1)": self.installed(mandir, "man1", "hconn.1"),
            "libhconn(3)": self.installed(mandir, "man3", "libhconn.3"),
            "hconnd.json(5)": self.installed(mandir, "man5", "hconnd.json.5"),
            "example config": self.installed(o["datadir"], "doc", "hconn",
                                             "hconnd.json.example"),
        }
        absent = {k: v for k, v in expected.items()
                  if not os.path.lexists(v)}
        self.assertEqual(absent, {}, "not installed; the tree has:\n" +
                         "\n".join(self.tree()))
        for name in ("hconnd", "hconn"):
            self.assertTrue(os.access(expected[name], os.X_OK), name)

        # The units name the installed daemon and the configured socket.
        with open(expected["service unit"]) as f:
            service = f.read()
        sbin = os.path.join(o["prefix"], o["sbindir"], "hconnd")
        self.assertRegex(service, rf"(?m)^ExecStart={re.escape(sbin)}\b")
        self.assertNotRegex(service, r"@[a-z_]+@", "unsubstituted")
        with open(expected["socket unit"]) as f:
            self.assertRegex(f.read(), r"(?m)^ListenStream=" +
                             re.escape(o["default_socket"]) + "$")

        self.build_client_against_install(expected)

    def build_client_against_install(self, expected):
        """Compiles and links the README's example with the installed
        hconn.pc, header and library only."""
        pkg_config = shutil.which("pkg-config")
        cc = shutil.which("cc")
        if pkg_config is None or cc is None:
            raise harness.missing("pkg-config and cc are needed to build "
                                  "against the installed library")
        env = dict(os.environ,
                   PKG_CONFIG_PATH=os.path.dirname(expected["hconn.pc"]),
                   PKG_CONFIG_SYSROOT_DIR=self.destdir)
        flags = subprocess.run(
            [pkg_config, "--cflags", "--libs", "hconn"],
            capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(flags.returncode, 0, flags.stderr)
        self.assertIn(self.destdir, flags.stdout)
        out = os.path.join(self.destdir, "get")
        r = subprocess.run(
            [cc, "-std=c11", "-Wall", "-Werror",
             os.path.join(SOURCE_ROOT, "client-lib", "examples", "get.c"),
             "-o", out, *flags.stdout.split()],
            capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(os.access(out, os.X_OK))

    def tree(self):
        for root, _, files in os.walk(self.destdir):
            for name in files:
                yield os.path.relpath(os.path.join(root, name), self.destdir)


if __name__ == "__main__":
    harness.main()
