#!/usr/bin/env python3
"""Shell mode: the README's socat one-liner, verbatim, and the hello op
through socat."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SMALL_BODY, big_bytes  # noqa: E402

# The one-liner as the README and DESIGN.md give it; URL and SOCK vary.
ONE_LINER = ("printf '%s\\n' '{\"method\":\"GET\",\"url\":\"'\"$URL\"'\","
             "\"raw\":true}' | socat - UNIX-CONNECT:$SOCK | tail -n +2")

# PROTOCOL.md's HTTPS example: the shell reads the CA file, jq sends it
# inline as ca_pem.
PEM_LINER = ("jq -cn --rawfile ca \"$CA\" --arg url \"$URL\" "
             "'{method: \"GET\", url: $url, tls: {ca_pem: $ca}, raw: true}' |"
             " socat - UNIX-CONNECT:\"$SOCK\" | tail -n +2")


def parse_stream(data):
    """Splits daemon output into its messages and the concatenated data
    frame payloads; fails on a framing error."""
    msgs, body, pos = [], bytearray(), 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        msg = json.loads(data[pos:nl])
        pos = nl + 1
        if "data" in msg and "status" not in msg:
            body += data[pos:pos + msg["data"]]
            if len(data) < pos + msg["data"]:
                raise AssertionError(f"payload cut short in {data!r}")
            pos += msg["data"]
        msgs.append(msg)
    return msgs, bytes(body)


class SocatOneLiner(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        if shutil.which("socat") is None:
            raise harness.missing(
                "socat not installed (Debian: apt-get install socat)")
        cls.nginx = harness.start_class_nginx(cls)

    def setUp(self):
        self.daemon = self.start_daemon()

    def sh(self, script, **env):
        return subprocess.run(
            ["sh", "-c", script], capture_output=True, timeout=30,
            env=dict(self.daemon.env, SOCK=self.daemon.socket, **env),
            start_new_session=True)

    def test_readme_one_liner_prints_exactly_the_body(self):
        r = self.sh(ONE_LINER, URL=self.nginx.url("/small.txt"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, SMALL_BODY)

    def test_protocol_md_one_liner_literal_text(self):
        # The text of proto/PROTOCOL.md section 10, as a user pastes it,
        # with only the port and path changed.
        line = ("printf '%s\\n' '{\"method\":\"GET\",\"url\":\"http://127.0.0.1:"
                + str(self.nginx.port) + "/small.txt\",\"raw\":true}' |\n"
                "  socat - UNIX-CONNECT:\"$HCONN_SOCKET\" | tail -n +2\n")
        r = self.sh(line)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, SMALL_BODY)

    def test_raw_mode_first_line_is_the_json_head(self):
        r = self.sh(ONE_LINER.replace(" | tail -n +2", ""),
                    URL=self.nginx.url("/small.txt"))
        self.assertEqual(r.returncode, 0, r.stderr)
        line, nl, body = r.stdout.partition(b"\n")
        self.assertEqual(nl, b"\n")
        head = json.loads(line)
        self.assertEqual(head["status"], 200, head)
        self.assertEqual(head["length"], len(SMALL_BODY), head)
        self.assertEqual(body, SMALL_BODY)

    def test_raw_mode_binary_body_is_exact(self):
        r = self.sh(ONE_LINER, URL=self.nginx.url("/big.bin"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout), len(big_bytes()))
        self.assertEqual(hashlib.sha256(r.stdout).hexdigest(),
                         hashlib.sha256(big_bytes()).hexdigest())

    def test_raw_mode_chunked_body_is_decoded(self):
        r = self.sh(ONE_LINER, URL=self.nginx.url("/chunked"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, harness.CHUNKED_BODY)

    def test_protocol_md_post_example(self):
        # POST 5 bytes; socat half-closes after its input and the daemon
        # still answers, then closes (no -t wait needed for a fast origin).
        r = self.sh("printf '{\"id\":1,\"method\":\"POST\",\"url\":\"'\"$URL\"'\","
                    "\"data\":5}\\nhello' | socat -t5 - UNIX-CONNECT:\"$HCONN_SOCKET\"",
                    URL=self.nginx.url("/echo"))
        self.assertEqual(r.returncode, 0, r.stderr)
        msgs, body = parse_stream(r.stdout)
        head = msgs[0]
        self.assertEqual((head["id"], head["status"]), (1, 200), head)
        self.assertNotIn("length", head)    # the echo module answers chunked
        self.assertEqual(body, b"hello")
        self.assertEqual(msgs[-1], {"id": 1, "end": True, "trailers": []})
        self.assertTrue(all(set(m) == {"id", "data"} for m in msgs[1:-1]),
                        msgs)

    def test_hello_op_through_socat(self):
        r = self.sh("printf '%s\\n' '{\"op\":\"hello\"}' | "
                    "socat - UNIX-CONNECT:$SOCK")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.split(b"\n")
        self.assertEqual(lines[-1], b"", r.stdout)
        self.assertEqual(len(lines), 2, f"expected one reply line: {r.stdout!r}")
        msg = json.loads(lines[0])
        self.assertIsInstance(msg, dict)
        self.assertNotIn("error", msg, msg)
        self.assertEqual(msg.get("op"), "hello", msg)
        self.assertEqual(msg.get("version"), 1, msg)
        self.assertNotIn("id", msg)



class SocatWithInlinePem(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        for tool in ("socat", "jq"):
            if shutil.which(tool) is None:
                raise harness.missing(f"{tool} not installed")
        cls.nginx = harness.start_class_nginx(cls, tls=True)

    def test_protocol_md_https_example_sends_the_ca_inline(self):
        d = self.start_daemon()
        r = subprocess.run(
            ["sh", "-c", PEM_LINER], capture_output=True, timeout=30,
            env=dict(d.env, SOCK=d.socket, CA=self.nginx.ca_file,
                     URL=self.nginx.tls_url("/small.txt")),
            start_new_session=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, SMALL_BODY)


if __name__ == "__main__":
    harness.main()
