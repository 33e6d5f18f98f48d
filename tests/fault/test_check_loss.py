"""Tests for the shared loss checker (tests/fault/check_loss.py): it must fail
for each way a fault scenario can lose, repeat or misfile an event.
Run from the repository root: python3 -m unittest tests/fault/test_check_loss.py
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_loss  # noqa: E402

ORIGIN = {"relay.original_topic": "out.mparticle", "relay.original_partition": "0",
          "relay.original_offset": "7"}


def dead(eid, **headers):
    h = {"relay.error": "HTTP 400: bad", "relay.stage": "deliver", **ORIGIN, **headers}
    return {"partition": 0, "offset": 1, "key": "k", "headers": h,
            "value": {"event_id": eid} if eid else None}


class CheckLoss(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def file(self, name, lines):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
        return path

    def run_check(self, produced, received, dlq=(), *extra):
        args = ["--produced", self.file("p", produced), "--received", self.file("r", received),
                "--dlq", self.file("d", dlq), *extra]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = check_loss.main(args)
        return rc, out.getvalue()

    def test_all_delivered(self):
        self.assertEqual(self.run_check(["a", "b"], ["b", "a"])[0], 0)

    def test_lost(self):
        rc, out = self.run_check(["a", "b", "c"], ["a"], [dead("b")])
        self.assertEqual(rc, 1)
        self.assertIn("1 lost", out)
        self.assertIn("c", out)

    def test_dead_letter_accounts_unless_bounded(self):
        self.assertEqual(self.run_check(["a", "b"], ["a"], [dead("b")])[0], 0)
        rc, out = self.run_check(["a", "b"], ["a"], [dead("b")], "--max-dlq", "0")
        self.assertEqual(rc, 1)
        self.assertIn("1 dead letters, at most 0", out)
        allow = self.file("allow", ["c"])
        self.assertEqual(self.run_check(["a", "b"], ["a"], [dead("b")], "--allow-dlq", allow)[0], 1)

    def test_duplicates_bounded(self):
        rc, out = self.run_check(["a", "b"], ["a", "a", "b"])
        self.assertEqual(rc, 1)
        self.assertIn("1 duplicates", out)
        self.assertEqual(self.run_check(["a", "b"], ["a", "a", "b"], (), "--max-dups", "1")[0], 0)
        # delivered and dead-lettered counts as twice
        self.assertEqual(self.run_check(["a"], ["a"], [dead("a")])[0], 1)

    def test_dead_letter_needs_reason_and_origin(self):
        rc, out = self.run_check(["a"], [], [dead("a", **{"relay.error": ""})])
        self.assertEqual(rc, 1)
        self.assertIn("without relay.error", out)
        d = dead("a")
        del d["headers"]["relay.original_offset"]
        self.assertEqual(self.run_check(["a"], [], [d])[0], 1)

    def test_stubs_counted_apart(self):
        stub = dead(None, **{"relay.value_omitted": "999700 bytes"})
        self.assertEqual(self.run_check(["a"], ["a"], [stub], "--stubs", "1")[0], 0)
        self.assertEqual(self.run_check(["a"], ["a"], [stub])[0], 1)
        self.assertEqual(self.run_check(["a"], ["a"], [dead(None)], "--stubs", "0")[0], 1)

    def test_foreign_and_repeated_ids(self):
        self.assertEqual(self.run_check(["a"], ["a", "zz"])[0], 1)
        rc, out = self.run_check(["a", "a"], ["a"])
        self.assertEqual(rc, 1)
        self.assertIn("repeats ids", out)


if __name__ == "__main__":
    unittest.main()
