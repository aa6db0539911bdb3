#!/usr/bin/env python3
"""integrity.py (long mode) — the cross-client integrity check of the test
suite (tests/integration/test_integrity.py), for minutes instead of one
round:

    python3 tests/soak/integrity.py [--minutes 5] [--seed N] [--clients 32]
                                    [--uids 16] [--episodes 12]
                                    [--kinds hostile,benign,...] [--http2-front]

Runs as root (client processes become uids 61001 ...; as another user all
clients share its uid). One hconnd and one recording origin live for the
whole run; rounds of client processes follow each other until the time is
up, round r using seed N + 1000003·r, so any round replays alone. Every
round is checked the same way as in the suite: origin requests match
client messages byte for byte, replies answer their own message, no
client sees another's bytes, hostile messages are refused, and at the end
hconnd is alive, clean (no sanitizer report) and idle. Prints the
figures; exit status 0 when nothing failed, 1 otherwise. HCONN_BUILD_ROOT
picks the build (build-sanitize for ASan).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import integrity  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a.startswith("--minutes") for a in argv):
        argv = ["--minutes", "5"] + argv
    sys.exit(integrity.main(argv))
