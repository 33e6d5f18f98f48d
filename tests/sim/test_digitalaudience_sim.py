"""Tests for the digitalAudience upload API simulator
(tests/sim/digitalaudience_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_digitalaudience_sim.py -v
The test class starts its own simulator subprocess on --port 0 and reads
the port from --port-file. Only the standard library (http.client) is used.
"""
import hashlib
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "digitalaudience_sim.py")
sys.path.insert(0, HERE)
from simtest import SimProcess  # noqa: E402

TOKEN = "test-token"
PATH = "/v1/clients/acme/uploads"
H_EMAIL = hashlib.sha256(b"ann@example.com").hexdigest()
H_MOBILE = hashlib.sha256(b"+31612345678").hexdigest()


def match(dmp="ck-1", pid="tl-1", partner="tealium", seen="2025-11-25T10:01:00.123Z", **kw):
    return {"type": "match", "partner": partner, "dmp_id": dmp, "partner_id": pid,
            "seen_at": seen, **kw}


def crm(rid="crm-1", **hashes):
    return {"type": "crm", "record_id": rid,
            "hashes": hashes or {"email_sha256": H_EMAIL}}


class Sim(SimProcess):
    """A simulator subprocess; `call` sends one request on a fresh connection."""

    def __init__(self, *extra):
        super().__init__(SIM, "--token", TOKEN, *extra, prefix="dasim-")

    def call(self, method, path, body=None, token=TOKEN, ctype="application/json"):
        """(status, headers with lower-case names, parsed JSON body or None)."""
        hdrs = {}
        if body is not None and ctype:
            hdrs["Content-Type"] = ctype
        if token:
            hdrs["Authorization"] = "Bearer " + token
        return self.call_json(method, path, body, hdrs)

    def upload(self, uploads, path=PATH, **kw):
        return self.call("POST", path, {"uploads": uploads}, **kw)

    def control(self, method, path, body=None):
        status, _, data = self.call(method, "/_sim/" + path, body, token=None)
        assert status == 200, (status, data)
        return data


class TestUploads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--client", "acme", "--client", "beta", "--max-items", "5",
                      "--max-bytes", "4096")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.control("POST", "reset")
        self.sim.control("POST", "token", {"token": TOKEN})
        self.sim.control("DELETE", "faults")

    def test_mixed_request_is_stored(self):
        ups = [match(upload_id="u1"), crm("crm-1", email_sha256=H_EMAIL, mobile_sha256=H_MOBILE),
               match("ck-2", "rl-2", "relay42")]
        status, _, data = self.sim.upload(ups)
        self.assertEqual((status, data), (200, {"accepted": 3}))
        got = self.sim.control("GET", "received")
        self.assertEqual([r["upload"] for r in got], ups)
        self.assertEqual({r["client"] for r in got}, {"acme"})
        m = self.sim.control("GET", "matches")
        self.assertEqual(sorted(m["acme"]), ["relay42", "tealium"])
        self.assertEqual(m["acme"]["tealium"], [{"dmp_id": "ck-1", "partner_id": "tl-1",
                                                 "seen_at": "2025-11-25T10:01:00.123Z",
                                                 "times": 1}])
        self.assertEqual(self.sim.control("GET", "crm")["acme"]["crm-1"]["hashes"],
                         {"email_sha256": H_EMAIL, "mobile_sha256": H_MOBILE})

    def test_pair_twice_stored_once_with_latest_seen_at(self):
        self.sim.upload([match(seen="2025-11-25T10:01:00.123Z")])
        self.sim.upload([match(seen="2025-11-26T08:00:00.000Z"),
                         match(seen="2025-11-24T08:00:00.000Z")])
        pairs = self.sim.control("GET", "matches")["acme"]["tealium"]
        self.assertEqual(pairs, [{"dmp_id": "ck-1", "partner_id": "tl-1",
                                  "seen_at": "2025-11-26T08:00:00.000Z", "times": 3}])
        # Per client and partner: the same pair elsewhere is another entry.
        self.sim.upload([match()], path="/v1/clients/beta/uploads")
        self.sim.upload([match(partner="piano")])
        m = self.sim.control("GET", "matches")
        self.assertEqual(len(m["beta"]["tealium"]), 1)
        self.assertEqual(len(m["acme"]["piano"]), 1)

    def test_bad_uploads_rejected_one_by_one(self):
        ups = [match(),
               crm("c1", email_sha256="ann@example.com"),
               crm("c2", email_sha256=hashlib.sha1(b"x").hexdigest()),
               crm("c3", email_sha256=H_EMAIL.upper()),
               crm("c4", email=H_EMAIL)]
        status, _, data = self.sim.upload(ups)
        self.assertEqual(status, 207)
        self.assertEqual(data["accepted"], 1)
        self.assertEqual([r["index"] for r in data["rejected"]], [1, 2, 3, 4])
        self.assertIn("not a SHA-256 in lowercase hex", data["rejected"][0]["reason"])
        self.assertIn("got 40", data["rejected"][1]["reason"])
        self.assertIn("does not end in _sha256", data["rejected"][3]["reason"])
        self.assertEqual([r["upload"] for r in self.sim.control("GET", "received")], [ups[0]])
        self.assertEqual(self.sim.control("GET", "crm"), {})
        more = [match(seen="2025-11-25 10:01"), match(dmp=""), {"type": "x"},
                crm("c5", email_sha256=H_EMAIL, email="ann@example.com"),
                {**crm("c6"), "email": "ann@example.com"}]
        status, _, data = self.sim.upload(more)
        self.assertEqual(status, 207)
        self.assertEqual([r["index"] for r in data["rejected"]], [0, 1, 2, 3, 4])
        self.assertIn("unexpected field 'email'", data["rejected"][4]["reason"])
        self.assertEqual(self.sim.control("GET", "stats")["rejected"], 9)

    def test_auth_and_client(self):
        self.assertEqual(self.sim.upload([match()], token=None)[0], 401)
        self.assertEqual(self.sim.upload([match()], token="nope")[0], 401)
        self.sim.control("POST", "token", {"token": "rotated"})
        self.assertEqual(self.sim.upload([match()])[0], 401)
        self.assertEqual(self.sim.upload([match()], token="rotated")[0], 200)
        status, _, data = self.sim.upload([match()], path="/v1/clients/other/uploads",
                                          token="rotated")
        self.assertEqual(status, 404)
        self.assertIn("unknown client", data["message"])
        self.assertEqual(self.sim.call("POST", "/v2/x", {"uploads": []})[0], 404)
        reqs = self.sim.control("GET", "requests")
        self.assertEqual([r["auth"] for r in reqs[:3]], ["missing", "wrong", "wrong"])

    def test_whole_request_refused(self):
        self.assertEqual(self.sim.upload([])[0], 400)
        self.assertEqual(self.sim.call("POST", PATH, {"pairs": []})[0], 400)
        self.assertEqual(self.sim.call("POST", PATH, b"{", ctype="application/json")[0], 400)
        self.assertEqual(self.sim.call("POST", PATH, {"uploads": [match()]},
                                       ctype="text/plain")[0], 400)
        status, _, data = self.sim.upload([match(dmp=f"ck-{i}") for i in range(6)])
        self.assertEqual(status, 413)
        self.assertIn("exceed 5", data["message"])
        self.assertEqual(self.sim.upload([match(dmp="x" * 5000)])[0], 413)
        self.assertEqual(self.sim.control("GET", "received"), [])

    def test_faults(self):
        self.sim.control("POST", "faults", [
            {"name": "busy", "status": 503, "match": "ck-503", "times": 2},
            {"name": "slow", "status": 429, "retry_after": 2, "match": "ck-429"},
            {"name": "bad", "reject": "refused by test", "match": "ck-bad", "times": -1}])
        for _ in range(2):
            self.assertEqual(self.sim.upload([match("ck-503")])[0], 503)
        self.assertEqual(self.sim.upload([match("ck-503")])[0], 200)
        status, hdrs, _ = self.sim.upload([match("ck-429")])
        self.assertEqual((status, hdrs.get("retry-after")), (429, "2"))
        self.assertEqual(self.sim.upload([match("ck-429")])[0], 200)
        status, _, data = self.sim.upload([match("ck-ok"), match("ck-bad")])
        self.assertEqual(status, 207)
        self.assertEqual(data["rejected"], [{"index": 1, "reason": "refused by test"}])
        got = [r["upload"]["dmp_id"] for r in self.sim.control("GET", "received")]
        self.assertEqual(got, ["ck-503", "ck-429", "ck-ok"])
        self.assertEqual(self.sim.control("GET", "stats")["by_status"],
                         {"503": 2, "200": 2, "429": 1, "207": 1})
        status, _, data = self.sim.call("POST", "/_sim/faults", {"bogus": 1}, token=None)
        self.assertEqual(status, 400)
        self.assertIn("unknown fault rule key", data["error"])


class TestOptions(unittest.TestCase):
    def test_partners_prefix_and_partial_status(self):
        sim = Sim("--partner", "tealium", "--path-prefix", "/api", "--partial-status", "200")
        try:
            self.assertEqual(sim.upload([match()])[0], 404)
            status, _, data = sim.upload([match(), match(partner="nobody")],
                                         path="/api" + PATH)
            self.assertEqual(status, 200)
            self.assertEqual(data["rejected"][0]["index"], 1)
            self.assertIn("unknown partner", data["rejected"][0]["reason"])
        finally:
            self.assertEqual(sim.stop(), 0)


if __name__ == "__main__":
    unittest.main()
