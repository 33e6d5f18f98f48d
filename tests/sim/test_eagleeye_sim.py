"""Tests for the Eagle Eye AIR wallet API simulator (tests/sim/eagleeye_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_eagleeye_sim.py -v
Each test class starts its own simulator subprocess on --port 0 and reads
the port from --port-file. Only the standard library is used.
"""
import hashlib
import http.client
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "eagleeye_sim.py")
sys.path.insert(0, HERE)
import eagleeye_sim  # noqa: E402
from simtest import SimProcess  # noqa: E402

CLIENT, SECRET = "client-1", "s3cret"


class Sim(SimProcess):
    """A simulator subprocess; `call` sends one signed request."""

    def __init__(self, *extra):
        super().__init__(SIM, "--client-id", CLIENT, "--secret", SECRET, *extra,
                         prefix="eesim-")

    def raw(self, method, path, body=b"", headers=None):
        r, data = self.exchange(method, path, body, headers)
        return r.status, (json.loads(data) if data else None), dict(r.getheaders())

    def call(self, method, path, doc, txn=None, client=CLIENT, secret=SECRET):
        body = json.dumps(doc, separators=(",", ":")).encode()
        h = {"Content-Type": "application/json", "X-EES-AUTH-CLIENT-ID": client,
             "X-EES-AUTH-HASH": hashlib.sha256(path.encode() + body + secret.encode())
             .hexdigest()}
        if txn:
            h["X-EES-TRANSACTION-ID"] = txn
        return self.raw(method, path, body, h)

    def ctl(self, method, what, arg=None):
        body = json.dumps(arg).encode() if arg is not None else b""
        return self.raw(method, "/_sim/" + what, body)[1]


def issue(wallet, camp="CAMP-1", ref="r1"):
    return {"resourceType": "CAMPAIGN", "resourceId": camp,
            "consumerIdentifier": {"reference": wallet}, "reference": ref}


class TestHash(unittest.TestCase):
    def test_vector(self):
        # PLATFORMS.md's vector from the api-authentication page.
        self.assertEqual(eagleeye_sim.auth_hash("/wallet/555555", b"", "0987654321"),
                         "76e132ab2154bb7139258b65134ddaf74c12a4242ce136b87a7335292fddc068")


class TestSim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--campaigns", "CAMP-1,CAMP-2")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.ctl("POST", "reset")
        self.sim.ctl("POST", "wallets", {"W1": {"A1": 100}, "W2": {"A2": 0}})

    def test_auth(self):
        s, b, _ = self.sim.call("POST", "/2.0/token/create", issue("W1"), client="other")
        self.assertEqual((s, b["errorCode"]), (401, "AUTH_CLIENT_ID"))
        s, b, _ = self.sim.call("POST", "/2.0/token/create", issue("W1"), secret="wrong")
        self.assertEqual((s, b["errorCode"]), (401, "AUTH_HASH"))
        # The query is part of what is hashed, exactly as received.
        body = json.dumps(issue("W1")).encode()
        h = eagleeye_sim.auth_hash("/2.0/token/create", body, SECRET)
        s, _, _ = self.sim.raw("POST", "/2.0/token/create?x=1", body,
                               {"Content-Type": "application/json",
                                "X-EES-AUTH-CLIENT-ID": CLIENT, "X-EES-AUTH-HASH": h})
        self.assertEqual(s, 401)
        self.assertEqual(self.sim.ctl("GET", "received"), [])

    def test_issue_and_idempotency(self):
        s, b, _ = self.sim.call("POST", "/2.0/token/create", issue("W1"), txn="t1")
        self.assertEqual(s, 201)
        s2, b2, _ = self.sim.call("POST", "/2.0/token/create", issue("W1"), txn="t1")
        self.assertEqual((s2, b2), (s, b))
        got = self.sim.ctl("GET", "received")
        self.assertEqual(len(got), 1)
        self.assertEqual((got[0]["wallet"], got[0]["campaign"], got[0]["txn"]),
                         ("W1", "CAMP-1", "t1"))
        reqs = self.sim.ctl("GET", "requests")
        self.assertEqual([r["duplicate"] for r in reqs], [False, True])

    def test_not_found(self):
        s, b, _ = self.sim.call("POST", "/2.0/token/create", issue("NOPE"))
        self.assertEqual((s, b["errorCode"]), (404, "WALLET_NOT_FOUND"))
        s, b, _ = self.sim.call("POST", "/2.0/token/create", issue("W1", camp="X"))
        self.assertEqual((s, b["errorCode"]), (404, "CAMPAIGN_NOT_FOUND"))
        s, b, _ = self.sim.call("PATCH", "/2.0/wallet/W1/account/NOPE/earn", {"points": 1})
        self.assertEqual((s, b["errorCode"]), (404, "ACCOUNT_NOT_FOUND"))
        s, b, _ = self.sim.call("POST", "/2.0/no/such/path", {})
        self.assertEqual((s, b["errorCode"]), (404, "NOT_FOUND"))

    def test_points(self):
        s, b, _ = self.sim.call("PATCH", "/2.0/wallet/W1/account/A1/earn",
                                {"points": 50, "reference": "r"}, txn="e1")
        self.assertEqual((s, b["balances"]["current"]), (200, 150))
        s, b, _ = self.sim.call("PATCH", "/2.0/wallet/W1/account/A1/earn",
                                {"points": 50, "reference": "r"}, txn="e1")
        self.assertEqual((s, b["balances"]["current"]), (200, 150))
        s, b, _ = self.sim.call("PATCH", "/2.0/wallet/W1/account/A1/debit", {"points": 151})
        self.assertEqual((s, b["errorCode"]), (400, "INSUFFICIENT_BALANCE"))
        s, b, _ = self.sim.call("PATCH", "/2.0/wallet/W1/account/A1/debit", {"points": 150})
        self.assertEqual((s, b["balances"]["current"]), (200, 0))
        s, b, _ = self.sim.call("PATCH", "/2.0/wallet/W1/account/A1/debit", {"points": 0})
        self.assertEqual(s, 400)
        self.assertEqual([r["kind"] for r in self.sim.ctl("GET", "received")],
                         ["earn", "debit"])
        self.assertEqual(self.sim.ctl("GET", "wallets")["W1"]["A1"], 0)

    def test_faults(self):
        self.sim.ctl("POST", "faults", [{"name": "lost", "status": 503, "after_apply": True,
                                         "match": "W2"},
                                        {"name": "slow", "status": 429, "retry_after": 2,
                                         "match": "CAMP-2"}])
        s, _, _ = self.sim.call("POST", "/2.0/token/create", issue("W2"), txn="t9")
        self.assertEqual(s, 503)
        s, _, _ = self.sim.call("POST", "/2.0/token/create", issue("W2"), txn="t9")
        self.assertEqual(s, 201)
        self.assertEqual(len(self.sim.ctl("GET", "received")), 1)
        s, _, h = self.sim.call("POST", "/2.0/token/create", issue("W1", camp="CAMP-2"))
        self.assertEqual((s, h.get("Retry-After")), (429, "2"))
        self.assertEqual(len(self.sim.ctl("GET", "received")), 1)
        s, b = self.sim.raw("POST", "/_sim/faults", b'{"bogus":1}')[:2]
        self.assertEqual(s, 400)

    def test_secret_rotation_and_chunked(self):
        self.sim.ctl("POST", "secret", {"secret": "new"})
        try:
            s, _, _ = self.sim.call("POST", "/2.0/token/create", issue("W1"))
            self.assertEqual(s, 401)
            s, _, _ = self.sim.call("POST", "/2.0/token/create", issue("W1"), secret="new")
            self.assertEqual(s, 201)
        finally:
            self.sim.ctl("POST", "secret", {"secret": SECRET})
        c = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=10)
        c.request("POST", "/2.0/token/create", body=iter([b"{}"]),
                  headers={"Content-Type": "application/json",
                           "X-EES-AUTH-CLIENT-ID": CLIENT}, encode_chunked=True)
        self.assertEqual(c.getresponse().status, 400)
        c.close()


class TestDuplicate409(unittest.TestCase):
    def test_409(self):
        sim = Sim("--duplicate", "409")
        try:
            sim.ctl("POST", "wallets", {"W1": {}})
            self.assertEqual(sim.call("POST", "/2.0/token/create", issue("W1"), txn="a")[0], 201)
            s, b, _ = sim.call("POST", "/2.0/token/create", issue("W1"), txn="a")
            self.assertEqual((s, b["errorCode"]), (409, "ALREADY_PROCESSED"))
            self.assertEqual(len(sim.ctl("GET", "received")), 1)
        finally:
            sim.stop()


if __name__ == "__main__":
    unittest.main()
