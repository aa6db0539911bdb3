#!/usr/bin/env python3
"""hconn.client's start-up cost, and the shortcuts that cut it.

A short-lived process doing one request pays for every module hconn.client
imports beyond http.client (which it must import: its exceptions and
HTTPMessage are the drop-in's contract). These tests hold what was cut:

- A fresh process doing one plain and one HTTPS request (nginx, through
  the daemon) imports nothing beyond what `import http.client` imports
  but the package itself and json's C accelerator, and makes none of the
  Hconn...Error classes.
- The error classes made on first use are the same classes however they
  are reached (ERRORS, module attributes, `import *`, pickle, a raised
  error).
- The JSON-lines shortcuts equal json: _dumps is json.dumps(obj,
  separators=(",", ":")) and _loads is json.loads, value for value and
  error for error, on request-like objects and on many thousands of
  mutated reply lines (seeded).

The package comes from HCONN_PYTHONPATH (meson sets it to the source
tree's client-lib/python).
"""

import ast
import json
import os
import random
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_python_client import (  # noqa: E402
    PYTHONPATH, PythonClientTest, hclient)

# One plain and one HTTPS request in a fresh process; prints what it
# imported beyond http.client, and which error classes exist.
ONE_REQUEST = """\
import sys
import http.client
before = set(sys.modules)
sys.path.insert(0, sys.argv[1])
from hconn import client
out = {}
c = client.HTTPConnection("127.0.0.1", int(sys.argv[2]))
c.request("GET", "/small.txt")
r = c.getresponse()
out["plain"] = [r.status, len(r.read())]
c = client.HTTPSConnection("127.0.0.1", int(sys.argv[3]), cafile=sys.argv[4])
c.request("GET", "/small.txt")
r = c.getresponse()
out["https"] = [r.status, len(r.read())]
c.close()
out["imported"] = sorted(set(sys.modules) - before)
out["error_classes"] = sorted(n for n in vars(client)
                              if n.startswith("Hconn") and n != "HconnError")
print(repr(out))
"""

# The error classes in a fresh process, reached every way.
ERROR_CLASSES = """\
import pickle, sys
sys.path.insert(0, sys.argv[1])
from hconn import client
assert "HconnTimeoutError" not in vars(client)
assert "HconnTimeoutError" in dir(client)
cls = client.HconnTimeoutError
assert cls is client.ERRORS["timeout"], "attribute vs ERRORS"
assert issubclass(cls, TimeoutError) and issubclass(cls, client.HconnError)
e = client._exception({"error": "timeout", "message": "m"})
assert type(e) is cls
e2 = pickle.loads(pickle.dumps(e))
assert type(e2) is cls and e2.message == "m"
ns = {}
exec("from hconn.client import *", ns)
missing = [n for n in client.__all__ if n not in ns]
assert not missing, missing
assert ns["HconnDeniedError"] is client.ERRORS["denied"]
assert len(client.ERRORS) == len(client._ERROR_BASES)
for name, c in client.ERRORS.items():
    assert getattr(client, c.__name__) is c and c.error == name
try:
    client.NoSuchThing
except AttributeError as e:
    assert "NoSuchThing" in str(e)
else:
    raise AssertionError("NoSuchThing exists")
print("ok")
"""


class StartUp(PythonClientTest):
    """What a fresh process doing one request imports and builds."""

    def run_python(self, program, *args):
        r = subprocess.run(
            [sys.executable, "-c", program, PYTHONPATH, *args],
            capture_output=True, text=True, timeout=60, cwd="/",
            env=dict(os.environ, HCONN_SOCKET=self.d.socket))
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_one_request_imports_nothing_else(self):
        out = ast.literal_eval(self.run_python(
            ONE_REQUEST, str(self.ng.port), str(self.ng.tls_ports["good"]),
            self.ng.ca_file))
        self.assertEqual(out["plain"], [200, len(harness.SMALL_BODY)])
        self.assertEqual(out["https"], [200, len(harness.SMALL_BODY)])
        # Beyond http.client's modules: the package and json's C
        # accelerator (a Python without _json imports json instead).
        self.assertLessEqual(set(out["imported"]),
                             {"hconn", "hconn.client", "_json"},
                             out["imported"])
        self.assertEqual(out["error_classes"], [])

    def test_error_classes_are_made_once(self):
        self.assertEqual(self.run_python(ERROR_CLASSES), "ok\n")

    def test_an_error_in_a_fresh_process(self):
        # The first error of a process makes the classes it raises.
        program = ("import sys, http.client\n"
                   "sys.path.insert(0, sys.argv[1])\n"
                   "from hconn import client\n"
                   "c = client.HTTPConnection('127.0.0.1', int(sys.argv[2]))\n"
                   "c.request('GET', '/')\n"
                   "try:\n"
                   "    c.getresponse()\n"
                   "except ConnectionRefusedError as e:\n"
                   "    assert type(e) is client.HconnConnectFailedError\n"
                   "    print(e.error)\n")
        self.assertEqual(self.run_python(program, str(harness.free_port())),
                         "connect_failed\n")


def outcome(fn, arg):
    """What fn(arg) gives: ("ok", repr of the value) or ("error", the
    exception's type and text)."""
    try:
        return ("ok", repr(fn(arg)))
    except Exception as e:  # noqa: BLE001  compared, not handled
        return ("error", type(e).__name__, str(e))


class JsonLines(unittest.TestCase):
    """_dumps and _loads against json itself."""

    REPLIES = [
        b'{"id":1,"status":200,"reason":"OK","version":11,"headers":'
        b'[["Content-Length","10"],["X-\\u00e9","\xc3\xa9 \\ud83d\\ude00"]],'
        b'"length":10,"reused":false}',
        b'{"id":1,"data":4}',
        b'{"id":1,"end":true,"trailers":[]}',
        b'{"id":2,"error":"timeout","message":"no reply within 1.5s",'
        b'"expected":null,"received":-0.0e+3}',
        b'{"op":"hello","version":1,"server":"hconnd/0.1"}',
        b'  {"a":1}  \t\r',
        b'{"a":1} x',
        b'{"a":NaN,"b":-Infinity,"c":Infinity,"d":1e400}',
        b'{"a":1,"a":2}',
        b'{"a":"\\ud800"}',
        b'{"a":"\xed\xa0\x80"}',
        b'{"a":"\xff"}',
        b'{"a":"tab\there"}',
        b'\xef\xbb\xbf{"a":1}',
        b'{\x00"\x00a\x00"\x00:\x001\x00}\x00',
        '{"a":1}'.encode("utf-16-be"),
        '{"a":1}'.encode("utf-32-le"),
        '{"a":1}'.encode("utf-16"),
        b'{', b'{}', b'{ }', b'["an array"]', b'this is not json', b'',
        b'{"a":' + b'[' * 100 + b']' * 100 + b'}',
        b'{"a":01}', b'{"a":1.}', b'{"a":tru}', b'{"a":"x}', b'{"a":1,}',
        b'{"a"\n:\n1}', b'{"a":1}\x00', b'{"\\u0000":"\\/\\b\\f\\n\\r"}',
    ]

    def test_loads_is_json_loads(self):
        for line in self.REPLIES:
            with self.subTest(line=line):
                self.assertEqual(outcome(hclient._loads, line),
                                 outcome(json.loads, line))

    def test_loads_is_json_loads_on_mutated_lines(self):
        rng = random.Random(19)
        alphabet = b'{}[]",:\\ \t\r\n0123456789.eE+-aefnlrstuINy\x00\x7f\x80' \
            b'\xbf\xc3\xe9\xed\xef\xf0\xff'
        checked = 0
        for _ in range(20000):
            line = bytearray(rng.choice(self.REPLIES))
            for _ in range(rng.randint(1, 4)):
                op = rng.randrange(3)
                pos = rng.randint(0, len(line))
                if op == 0 and line:
                    del line[min(pos, len(line) - 1)]
                elif op == 1:
                    line.insert(pos, rng.choice(alphabet))
                elif line:
                    line[min(pos, len(line) - 1)] = rng.choice(alphabet)
            line = bytes(line)
            a, b = outcome(hclient._loads, line), outcome(json.loads, line)
            if a != b:
                self.fail(f"{line!r}: _loads {a}, json.loads {b}")
            checked += 1
        self.assertEqual(checked, 20000)

    def test_dumps_is_json_dumps(self):
        class Odd:
            pass
        cyclic = {"a": []}
        cyclic["a"].append(cyclic)
        objects = [
            {"id": 1, "method": "GET", "host": "127.0.0.1", "port": 443,
             "tls": {"ca_pem": "-----BEGIN CERTIFICATE-----\nAB/+=\n"},
             "target": "/small?q=1",
             "headers": [["Host", "h"], ["X-\u00e9", "\u20ac \U0001f600"]],
             "skip_host": True, "skip_accept_encoding": True,
             "read_timeout": 0, "timeout": 1.5, "source_address": ["", 0]},
            {"s": "\x00\x1f\"\\\b\f\n\r\t\x7f\udcff\ud800"},
            {"f": [0.1, -0.0, 1e300, 1e-300, float("nan"), float("inf"),
                   -float("inf"), 2 ** 70, -(2 ** 63), True, False, None]},
            {1: "int key", 2.5: "float key", None: "n"},
            {True: "bool key", False: "bool key"},
            {"t": (1, (2, 3)), "n": {"m": {}}},
            {"bad": Odd()},
            {(1, 2): "tuple key"},
            cyclic,
        ]
        for obj in objects:
            with self.subTest(obj=type(obj)):
                self.assertEqual(
                    outcome(hclient._dumps, obj),
                    outcome(lambda o: json.dumps(o, separators=(",", ":")),
                            obj))


if __name__ == "__main__":
    unittest.main()
