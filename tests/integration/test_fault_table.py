#!/usr/bin/env python3
"""The origin-fault table (fault_scenarios.FAULTS), one test method per row:
a fresh fault origin and daemon, the row's request over the protocol, its
outcome checked field by field, then a follow-up request that shows
whether the connection was pooled (`reused`) and that the session goes on.

Rows marked slow (minutes long) run only with HCONN_SLOW_TESTS=1."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fault_scenarios as fs  # noqa: E402

SLOW = bool(os.environ.get("HCONN_SLOW_TESTS"))


class FaultTable(harness.IntegrationTest):
    """Test methods are added below, one per row: test_<row name>."""

    def run_row(self, row):
        origin = self.start_origin({fs.ROW_PATH: list(row.script),
                                    fs.FOLLOW_UP_PATH: fs.FOLLOW_UP})
        daemon = self.start_daemon()
        w = self.wire(daemon, timeout=60 if not row.slow else 900)
        url = origin.url(fs.ROW_PATH)

        for i in range(row.prime):
            head, body, last = w.request(f"prime{i}", "GET", url)
            self.assertOkResponse(head, last)

        req = {"id": "row", "method": row.method, "url": url}
        req.update(dict(row.fields))
        if row.body:
            req["data"] = len(row.body)
        w.send(req, row.body)
        head, body, last = w.read_response("row")
        self.check_outcome(row, origin, head, body, last)

        if row.origin is not None:
            want = [list(c) for c in row.origin]
            self.assertTrue(origin.wait_requests(sum(map(len, want))))
            got = [[r.method for r in c.requests]
                   for c in origin.connections]
            self.assertEqual(got, want, "methods per origin connection")

        # The connection that served the row (its last request for ROW_PATH).
        row_conn = [r.conn_index for r in origin.requests
                    if r.target == fs.ROW_PATH][-1]
        head, body, last = w.request("follow-up", "GET",
                                     origin.url(fs.FOLLOW_UP_PATH))
        self.assertOkResponse(head, last)
        self.assertEqual(body, fs.FOLLOW_UP_BODY)
        if row.reuse is None:
            return
        follow_conn = [r.conn_index for r in origin.requests
                       if r.target == fs.FOLLOW_UP_PATH][-1]
        self.assertIs(head["reused"], row.reuse,
                      f"follow-up head: {head!r}; origin connections: "
                      f"{[c.events for c in origin.connections]!r}")
        if row.reuse:
            self.assertEqual(follow_conn, row_conn,
                             "follow-up went on another connection")
        else:
            self.assertNotEqual(follow_conn, row_conn,
                                "follow-up reused a connection it must not")
            if row.script[-1][0] != "hold":   # a held peer never reads
                self.assertTrue(
                    origin.connections[row_conn].closed.wait(10),
                    "the daemon did not close the connection it dropped")

    def check_outcome(self, row, origin, head, body, last):
        if isinstance(row.expect, fs.Err):
            self.assertError(last, row.expect.error, rid="row")
        problems = row.expect.problems(origin.hostport, head, body, last)
        self.assertEqual(problems, [], f"row {row.name} ({row.doc}): "
                         f"head={head!r} last={last!r}")


def _make(row):
    def test(self):
        if row.slow and not SLOW:
            self.skipTest(f"{row.name}: slow row, set HCONN_SLOW_TESTS=1")
        self.run_row(row)
    test.__doc__ = f"{row.name}: {row.doc}"
    return test


for _row in fs.FAULTS:
    setattr(FaultTable, f"test_{_row.ident}", _make(_row))


class TableIsWellFormed(unittest.TestCase):
    """The table's rows say something checkable."""

    def test_every_row_expects_an_outcome(self):
        for row in fs.FAULTS:
            with self.subTest(row=row.name):
                self.assertIsInstance(row.expect, (fs.Ok, fs.Err))
                self.assertIn(row.reuse, (True, False, None))
                self.assertTrue(row.script and row.doc)
                json.dumps(dict(row.fields))


if __name__ == "__main__":
    harness.main()
