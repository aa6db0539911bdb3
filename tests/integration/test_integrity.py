#!/usr/bin/env python3
"""Cross-client integrity of the shared pool (issue 13): 32 client
processes as 16 uids send randomised and hostile requests through one
hconnd whose pool holds 4 connections to a recording origin, so requests
of different users share upstream connections; then every byte is
accounted for (integrity.py has the details):

  (a) every request the origin parsed matches one client message byte for
      byte, with the nonce of exactly one message;
  (b) every reply a client got answers its own message;
  (c) no client saw another message's nonce or token, nor an origin's
      stray bytes;
  (d) hostile framing, connection-management headers, CONNECT and
      injection attempts are refused and never reach the origin, while
      consistent framing goes through with the exact body;
  (e) hconnd is alive, its log has no sanitizer report, and nothing is
      left busy once every client has gone.

One run (about 30-60 s; the seed is printed, HCONN_INTEGRITY_SEED replays
another) feeds one test per assertion, so a failure names the property
that broke and shows examples of it by kind. The long mode is
`python3 tests/soak/integrity.py --minutes N`.
"""

import io
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import integrity  # noqa: E402

CLIENTS = 32
UIDS = 16
EPISODES = 20


class Integrity(integrity.Assertions, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        harness.require_binary(cls, harness.HCONND, "hconnd")
        if os.geteuid() != 0:
            raise harness.missing("needs root to run clients as 16 uids")
        out = io.StringIO()
        cls.seed = integrity.seed_from_env()
        try:
            cls.fails, cls.fig = integrity.run(
                seed=cls.seed, clients=CLIENTS, uids=UIDS, episodes=EPISODES,
                out=out)
        finally:
            sys.stdout.write(out.getvalue())
            sys.stdout.flush()

    def test_the_mix_was_mixed(self):
        # The run exercised what it claims to: many users sharing
        # connections, every hostile family, departures.
        f = self.fig
        self.assertEqual(f["clients_uids"], UIDS)
        self.assertGreater(f["messages"], 1500)
        self.assertGreater(f["origin_connections_shared_across_uids"], 0)
        self.assertGreater(f["group:hostile"], 100)
        self.assertGreater(f["group:framing_ok"], 20)
        self.assertGreater(f["group:departure"], 5)
        self.assertGreater(f["group:raw"], 5)
        self.assertGreater(f["garbage"], 10)


if __name__ == "__main__":
    harness.main()
