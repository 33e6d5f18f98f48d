"""Tests for the polled events-API simulator (tests/sim/poll_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_poll_sim.py -v
Each test class starts its own simulator subprocess on --port 0 and talks to it
over HTTP, as relay-poll does.
"""
import json
import os
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "poll_sim.py")
sys.path.insert(0, HERE)
import poll_sim  # noqa: E402
from simtest import SimProcess  # noqa: E402

TOKEN = "tok-1"
T0 = 1764064800000  # 2025-11-25T10:00:00Z


class Sim(SimProcess):
    def __init__(self, *extra):
        super().__init__(SIM, "--token", TOKEN, *extra, prefix="pollsim-")

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        status, _, out = self.request(method, "/_sim/" + path, data)
        assert status == 200, (status, out)
        return json.loads(out)

    def get(self, feed="f", headers=None, **params):
        q = urllib.parse.urlencode(params)
        status, hdrs, out = self.request("GET", f"/feeds/{feed}/events?{q}", None,
                                         headers or {})
        return status, json.loads(out) if out else None, hdrs


class SimTestCase(unittest.TestCase):
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.extra)
        cls.sim.control("POST", "generate", {"feed": "f", "count": 25, "from_ms": T0,
                                             "to_ms": T0 + 25000, "prefix": "e"})

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.control("POST", "reset")

    def window(self, lo=T0, hi=T0 + 25000):
        return {"from": poll_sim.iso(lo), "to": poll_sim.iso(hi)}


class TestCursor(SimTestCase):
    def test_pages_follow_the_cursor_exactly_once(self):
        ids, cursor = [], None
        for _ in range(10):
            params = dict(self.window(), limit=10, api_key=TOKEN)
            if cursor:
                params["cursor"] = cursor
            status, body, _ = self.sim.get(**params)
            self.assertEqual(status, 200)
            ids += [e["id"] for e in body["data"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        self.assertEqual(ids, [f"e-{i:06d}" for i in range(25)])
        reqs = self.sim.control("GET", "requests")
        self.assertEqual([r["returned"] for r in reqs], [10, 10, 5])

    def test_window_is_half_open(self):
        status, body, _ = self.sim.get(**self.window(T0 + 1000, T0 + 3000), api_key=TOKEN)
        self.assertEqual([e["id"] for e in body["data"]], ["e-000001", "e-000002"])

    def test_token_checked(self):
        self.assertEqual(self.sim.get(**self.window())[0], 401)
        self.assertEqual(self.sim.get(**self.window(), api_key="nope")[0], 401)
        tokens = [r["token"] for r in self.sim.control("GET", "requests")]
        self.assertEqual(tokens, ["missing", "wrong"])

    def test_bad_windows_and_cursors(self):
        future = int(time.time() * 1000) + 60000
        for params, why in [({"from": "x", "to": "y"}, "times"),
                            (self.window(T0 + 5, T0), "after"),
                            (self.window(T0, future), "future"),
                            (dict(self.window(), cursor="zzz"), "bad cursor")]:
            status, body, _ = self.sim.get(**params, api_key=TOKEN)
            self.assertEqual(status, 400)
            self.assertIn(why, body["error"])

    def test_faults_with_retry_after(self):
        self.sim.control("POST", "faults", [{"status": 429, "retry_after": 3, "match": "/feeds/f/"},
                                            {"status": 503, "match": "/feeds/g/"}])
        status, _, hdrs = self.sim.get(**self.window(), api_key=TOKEN)
        self.assertEqual(status, 429)
        self.assertEqual(hdrs["retry-after"], "3")
        self.assertEqual(self.sim.get(**self.window(), api_key=TOKEN)[0], 200)
        self.assertEqual(self.sim.get("g", **self.window(), api_key=TOKEN)[0], 503)


class TestPages(SimTestCase):
    extra = ("--paging", "page", "--token-in", "header")

    def test_numbered_pages_and_bearer(self):
        auth = {"Authorization": "Bearer " + TOKEN}
        ids = []
        for page in (1, 2, 3):
            status, body, _ = self.sim.get(headers=auth, **self.window(), page=page, limit=10)
            self.assertEqual(status, 200)
            self.assertEqual(body["page"], page)
            ids += [e["id"] for e in body["data"]]
        self.assertEqual(len(ids), 25)
        self.assertEqual(len(set(ids)), 25)
        self.assertEqual(self.sim.get(**self.window(), api_key=TOKEN)[0], 401)


if __name__ == "__main__":
    unittest.main()
