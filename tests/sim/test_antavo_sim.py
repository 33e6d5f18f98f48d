"""Tests for the Antavo simulator (tests/sim/antavo_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_antavo_sim.py -v
Requests here are signed by a signer of this file's own (hmac, hashlib), and the
simulator's verifier is checked against the literal vector that
tests/unit/test_antavo.c holds for relay's signer, so neither side is only checked
against itself.
"""
import datetime
import hashlib
import hmac
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "antavo_sim.py")
sys.path.insert(0, HERE)
import antavo_sim  # noqa: E402
from simtest import SimProcess  # noqa: E402

KEY, SECRET = "relay-test-key", "relay-test-secret"
VECTOR_SIG = "481cb7aa294efe51b18c997261142102ae6897e457d24c010ad5e5d2938b0263"
VECTOR_BODY = b'{"customer":"cust-1","action":"point_add","data":{"points":5}}'


def sign(method, path, query, host, body, when, secret=SECRET):
    """(Date, Authorization) for a request, Escher with Antavo's defaults."""
    date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    day = when.strftime("%Y%m%d")
    scope = "eu/api/antavo_request"
    creq = (f"{method}\n{path}\n{query}\ndate:{date}\nhost:{host}\n\ndate;host\n"
            + hashlib.sha256(body).hexdigest())
    sts = (f"ANTAVO-HMAC-SHA256\n{when.strftime('%Y%m%dT%H%M%SZ')}\n{day}/{scope}\n"
           + hashlib.sha256(creq.encode()).hexdigest())
    k = hmac.new(("ANTAVO" + secret).encode(), day.encode(), hashlib.sha256).digest()
    for part in ("eu", "api", "antavo_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    return date, (f"ANTAVO-HMAC-SHA256 Credential={KEY}/{day}/{scope}, "
                  f"SignedHeaders=date;host, Signature={sig}")


class VectorTest(unittest.TestCase):
    def test_fixed_vector(self):
        when = datetime.datetime(2025, 11, 25, 10, 1, 0, tzinfo=datetime.timezone.utc)
        headers = {"date": "Tue, 25 Nov 2025 10:01:00 GMT",
                   "host": "api.demo.antavo.com"}
        got = antavo_sim.escher_signature(SECRET, "ANTAVO", "eu/api/antavo_request",
                                          "POST", "/events", "api_key=" + KEY, headers,
                                          ["date", "host"], VECTOR_BODY, when)
        self.assertEqual(got, VECTOR_SIG)
        self.assertTrue(sign("POST", "/events", "api_key=" + KEY, "api.demo.antavo.com",
                             VECTOR_BODY, when)[1].endswith(VECTOR_SIG))


class Sim(SimProcess):
    def __init__(self, *extra):
        super().__init__(SIM, "--api-key", KEY, "--api-secret", SECRET, *extra,
                         prefix="avsim-")
        self.host = f"127.0.0.1:{self.port}"

    def call(self, method, path, body=None, headers=None):
        resp, data = self.exchange(method, path, body, headers)
        return resp.status, (json.loads(data) if data else None), resp

    def post(self, event, path="/events", key=KEY, secret=SECRET, when=None,
             raw=None):
        body = raw if raw is not None else json.dumps(event).encode()
        when = when or datetime.datetime.now(datetime.timezone.utc)
        query = f"api_key={key}"
        date, auth = sign("POST", path, query, self.host, body, when, secret)
        return self.call("POST", f"{path}?{query}", body,
                         {"Host": self.host, "Date": date, "Authorization": auth,
                          "Content-Type": "application/json"})


def event(customer="c1", action="point_add", **data):
    return {"customer": customer, "action": action, "data": data}


class SimTest(unittest.TestCase):
    def setUp(self):
        self.sim = Sim("--rate-limit", "1000")

    def tearDown(self):
        self.sim.stop()

    def received(self):
        return self.sim.call("GET", "/_sim/received")[1]

    def test_accepts_a_signed_event(self):
        st, body, _ = self.sim.post(event(points=5))
        self.assertEqual(st, 200)
        self.assertEqual(body, event(points=5))
        self.assertEqual([r["event"] for r in self.received()], [event(points=5)])
        reqs = self.sim.call("GET", "/_sim/requests")[1]
        self.assertEqual(reqs[0]["signature"], "ok")

    def test_refuses_bad_credentials(self):
        cases = [({"secret": "wrong"}, "wrong"), ({"key": "other"}, "bad key"),
                 ({"when": datetime.datetime.now(datetime.timezone.utc)
                   - datetime.timedelta(minutes=16)}, "stale")]
        for kw, state in cases:
            st, body, _ = self.sim.post(event(), **kw)
            self.assertEqual(st, 401, kw)
            self.assertEqual(body["error"]["code"], 401)
            self.assertIn("type", body["error"])
            self.assertEqual(self.sim.call("GET", "/_sim/requests")[1][-1]["signature"],
                             state)
        # 14 minutes off is within the window.
        st, _, _ = self.sim.post(event(), when=datetime.datetime.now(
            datetime.timezone.utc) - datetime.timedelta(minutes=14))
        self.assertEqual(st, 200)
        # Unsigned.
        st, body, _ = self.sim.call("POST", f"/events?api_key={KEY}", b"{}",
                                    {"Host": self.sim.host})
        self.assertEqual(st, 401)
        self.assertEqual(len(self.received()), 1)

    def test_a_signature_is_taken_once(self):
        body = json.dumps(event()).encode()
        date, auth = sign("POST", "/events", f"api_key={KEY}", self.sim.host, body,
                          datetime.datetime.now(datetime.timezone.utc))
        hdrs = {"Host": self.sim.host, "Date": date, "Authorization": auth}
        self.assertEqual(self.sim.call("POST", f"/events?api_key={KEY}", body, hdrs)[0],
                         200)
        st, b, _ = self.sim.call("POST", f"/events?api_key={KEY}", body, hdrs)
        self.assertEqual(st, 401)
        self.assertIn("used already", b["error"]["message"])
        # A body other than the one signed does not verify.
        st, _, _ = self.sim.call("POST", f"/events?api_key={KEY}", body + b" ", hdrs)
        self.assertEqual(st, 401)

    def test_validates_the_body(self):
        for bad in ({"action": "x", "data": {}}, {"customer": "c", "data": {}},
                    {"customer": "c", "action": "x", "data": []},
                    {"customer": "c", "action": "x"}):
            st, body, _ = self.sim.post(bad)
            self.assertEqual(st, 400, bad)
            self.assertEqual(body["error"]["type"], "BadRequestException")
        self.assertEqual(self.sim.post(None, raw=b"not json")[0], 400)
        self.assertEqual(self.received(), [])

    def test_duplicate_checkout(self):
        self.assertEqual(self.sim.post(event(action="checkout", transaction_id="T1"))[0],
                         200)
        st, body, _ = self.sim.post(event(action="checkout", transaction_id="T1",
                                          again=True))
        self.assertEqual(st, 400)
        self.assertEqual(body["error"]["message"], "ERR_TX_ALREADY_EXISTS")
        self.assertEqual(self.sim.post(event(action="checkout", transaction_id="T2"))[0],
                         200)
        self.assertEqual(len(self.received()), 2)

    def test_bulk(self):
        st, body, _ = self.sim.post([event("a"), event("b")], path="/events/bulk")
        self.assertEqual(st, 200)
        self.assertEqual(len(body["events"]), 2)
        self.assertEqual(self.sim.post({"x": 1}, path="/events/bulk")[0], 400)
        self.assertEqual([r["event"]["customer"] for r in self.received()], ["a", "b"])

    def test_faults_and_rate_limit(self):
        self.sim.call("POST", "/_sim/faults",
                      json.dumps({"status": 503, "times": 2, "match": "busy"}))
        self.assertEqual(self.sim.post(event(note="busy", n=1))[0], 503)
        self.assertEqual(self.sim.post(event(note="busy", n=2))[0], 503)
        self.assertEqual(self.sim.post(event(note="busy", n=3))[0], 200)
        self.assertEqual(self.sim.call("POST", "/_sim/faults", b"{}")[0], 400)
        self.sim.call("POST", "/_sim/rate", json.dumps({"limit": 2, "window_s": 60}))
        self.sim.call("POST", "/_sim/reset", b"")
        self.sim.call("POST", "/_sim/rate", json.dumps({"limit": 2, "window_s": 60}))
        codes = [self.sim.post(event(n=i))[0] for i in range(3)]
        self.assertEqual(codes, [200, 200, 429])
        st, body, resp = self.sim.post(event(n=4))
        self.assertEqual(st, 429)
        self.assertGreaterEqual(int(resp.getheader("Retry-After")), 1)
        self.sim.call("POST", "/_sim/secret", json.dumps({"secret": "new"}))
        self.sim.call("POST", "/_sim/rate", json.dumps({"limit": 100}))
        self.assertEqual(self.sim.post(event(n=5))[0], 401)
        self.assertEqual(self.sim.post(event(n=6), secret="new")[0], 200)


if __name__ == "__main__":
    unittest.main()
