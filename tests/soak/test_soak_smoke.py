#!/usr/bin/env python3
"""The soak (soak.py) in small: 5,000 mixed healthy and faulty requests
from 2 client processes, then no healthy error, every fault with its
row's outcome, hconnd's fds back to the baseline and RSS within slack.
The full 200,000-request soak is `python3 tests/soak/soak.py` (README,
"Soak"); it is not part of the test suite."""

import io
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
import soak  # noqa: E402


class SoakSmoke(unittest.TestCase):

    def test_5000_mixed_requests_leave_nothing_behind(self):
        harness.require_binary(self, harness.HCONND, "hconnd")
        out = io.StringIO()
        f = soak.run(requests=5000, workers=2, out=out)
        sys.stdout.write(out.getvalue())
        self.assertEqual(f["failures"], [], out.getvalue())
        # The mix really was mixed.
        self.assertGreater(f["healthy"], 4000)
        self.assertGreater(f["faulty"], 200)
        self.assertGreater(len(f["fault_rows"]), 20)
        self.assertGreater(sum(f["client_faults"].values()), 5)
        self.assertTrue(f["passed"])


if __name__ == "__main__":
    harness.main()
