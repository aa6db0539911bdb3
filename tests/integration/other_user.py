"""Clients of hconnd that run as another user: the daemon takes a client's
uid and gid from the socket (SO_PEERCRED, fixed at connect), so a child
process switches to the user, connects, and hands the connected socket
back over SCM_RIGHTS. The test then drives it as any harness.Wire."""

import os
import pwd
import shutil
import socket

import harness


def require(testcase):
    """Skips unless the tests run as root (they must switch users)."""
    if os.geteuid() != 0:
        testcase.skipTest("needs root to connect as another user")


def ids(name="nobody"):
    """(uid, gid) of a user that is not root."""
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def wire_as(testcase, daemon, uid, gid, timeout=20.0):
    """A harness.Wire connected to daemon's socket with the credentials
    uid/gid (no supplementary groups); closed at the test's cleanup."""
    os.chmod(daemon.dir, 0o755)  # the socket's directory, for the user
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            parent.close()
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(daemon.socket)
            socket.send_fds(child, [b"s"], [s.fileno()])
            code = 0
        finally:
            os._exit(code)
    child.close()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        testcase.fail(f"could not connect as uid {uid} (status {status})")
    _, fds, _, _ = socket.recv_fds(parent, 1, 1)
    parent.close()
    w = harness.Wire(timeout=timeout)
    w.sock = socket.socket(fileno=fds[0])
    w.sock.settimeout(timeout)
    testcase.addCleanup(w.close)
    return w


def setpriv():
    """The setpriv command line prefix that runs a command as nobody."""
    if shutil.which("setpriv") is None:
        return None
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
