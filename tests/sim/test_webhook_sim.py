"""Tests for the Standard Webhooks receiver (tests/sim/webhook_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_webhook_sim.py -v
Each test class starts its own simulator subprocess on --port 0. The signatures here
are made with hmac and base64 directly, and one is checked against the published
Standard Webhooks example, so the simulator is not only checked against itself.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "webhook_sim.py")
sys.path.insert(0, HERE)
import webhook_sim  # noqa: E402
from simtest import SimProcess  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode(SECRET[6:])


def signature(key, msg_id, ts, body):
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def body_of(*ids):
    return json.dumps({"type": "relay.events",
                       "data": [{"event_id": i, "tenant": "acme"} for i in ids]}).encode()


class Sim(SimProcess):
    def __init__(self, *extra):
        super().__init__(SIM, "--secret", SECRET, *extra, prefix="whsim-")

    def more_args(self):
        self.received_log = os.path.join(self.dir, "received.log")
        return ("--received-log", self.received_log)

    def call(self, method, path, body=None, headers=None):
        return self.request(method, path, body, headers)

    def send(self, body, msg_id="msg_1", ts=None, key=KEY, sig=None, drop=()):
        """POST a signed message; returns (status, headers, body)."""
        ts = str(int(time.time())) if ts is None else str(ts)
        hdrs = {"Content-Type": "application/json", "webhook-id": msg_id,
                "webhook-timestamp": ts,
                "webhook-signature": sig if sig is not None else signature(key, msg_id, ts, body)}
        for h in drop:
            del hdrs[h]
        return self.call("POST", "/hooks/relay", body, hdrs)

    def control(self, method, path, body=None):
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        status, _, data = self.call(method, "/_sim/" + path, body)
        assert status == 200, (status, data)
        return json.loads(data)


class SimTestCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.control("POST", "reset")

    def received_ids(self):
        return [r["event"]["event_id"] for r in self.sim.control("GET", "received")]


class TestSignature(SimTestCase):
    def test_published_example(self):
        """The helper the tests sign with gives the specification's example."""
        self.assertEqual(
            webhook_sim.sign(KEY, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                             b'{"test": 2432232314}'),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        self.assertEqual(webhook_sim.webhook_key("raw-key"), b"raw-key")

    def test_signed_message_accepted(self):
        status, _, data = self.sim.send(body_of("e1", "e2"), "msg_a")
        self.assertEqual((status, data), (200, b""))
        got = self.sim.control("GET", "received")
        self.assertEqual([g["event"]["event_id"] for g in got], ["e1", "e2"])
        self.assertEqual({g["webhook_id"] for g in got}, {"msg_a"})
        self.assertEqual(got[0]["event"], {"event_id": "e1", "tenant": "acme"})
        req = self.sim.control("GET", "requests")
        self.assertEqual(len(req), 1)
        self.assertEqual((req[0]["status"], req[0]["signature"], req[0]["events"]),
                         (200, "ok", 2))

    def test_one_of_several_signatures_suffices(self):
        body = body_of("e1")
        ts = int(time.time())
        good = signature(KEY, "msg_b", ts, body)
        status, _, _ = self.sim.send(body, "msg_b", ts, sig=f"v1,Zm9v {good}")
        self.assertEqual(status, 200)

    def test_missing_headers_401(self):
        for h in ("webhook-id", "webhook-timestamp", "webhook-signature"):
            status, _, data = self.sim.send(body_of("e1"), drop=(h,))
            self.assertEqual(status, 401, h)
            self.assertIn("missing", json.loads(data)["error"])
        self.assertEqual(self.received_ids(), [])
        self.assertEqual({r["signature"] for r in self.sim.control("GET", "requests")},
                         {"missing"})

    def test_wrong_signature_401(self):
        body = body_of("e1")
        cases = {"wrong key": dict(key=b"other"),
                 "not v1": dict(sig="v2," + signature(KEY, "msg_1", int(time.time()),
                                                       body)[3:]),
                 "garbage": dict(sig="v1,!!!")}
        for what, kw in cases.items():
            status, _, _ = self.sim.send(body, **kw)
            self.assertEqual(status, 401, what)
        # A signature over other bytes (one byte of the body changed).
        ts = int(time.time())
        sig = signature(KEY, "msg_1", ts, body)
        status, _, _ = self.sim.send(body.replace(b"e1", b"e2"), ts=ts, sig=sig)
        self.assertEqual(status, 401)
        # The same signature under another id.
        status, _, _ = self.sim.send(body, "msg_2", ts, sig=sig)
        self.assertEqual(status, 401)
        self.assertEqual(self.received_ids(), [])

    def test_stale_timestamp_400(self):
        for off in (-400, 400):
            status, _, data = self.sim.send(body_of("e1"), ts=int(time.time()) + off)
            self.assertEqual(status, 400, off)
            self.assertIn("off", json.loads(data)["error"])
        status, _, _ = self.sim.send(body_of("e1"), ts=int(time.time()) - 200)
        self.assertEqual(status, 200)
        status, _, _ = self.sim.send(body_of("e2"), "msg_x", ts="soon")
        self.assertEqual(status, 400)

    def test_secret_rotation(self):
        self.sim.control("POST", "secret", {"secret": "plain-text-key"})
        try:
            self.assertEqual(self.sim.send(body_of("e1"), "m1")[0], 401)
            self.assertEqual(self.sim.send(body_of("e1"), "m1", key=b"plain-text-key")[0],
                             200)
        finally:
            self.sim.control("POST", "secret", {"secret": SECRET})
        self.assertEqual(self.sim.send(body_of("e2"), "m2")[0], 200)

    def test_bad_body_400(self):
        for body in (b"not json", b'{"type":"other","data":[{"event_id":"x"}]}',
                     b'{"type":"relay.events","data":[]}',
                     b'{"type":"relay.events","data":[{"no_id":1}]}'):
            status, _, _ = self.sim.send(body)
            self.assertEqual(status, 400, body)
        self.assertEqual(self.received_ids(), [])


class TestDuplicates(SimTestCase):
    def test_same_id_recorded_once(self):
        body = body_of("e1", "e2")
        self.assertEqual(self.sim.send(body, "msg_dup")[0], 200)
        time.sleep(1.1)   # a retry: the same id, a new timestamp and signature
        status, _, data = self.sim.send(body, "msg_dup")
        self.assertEqual((status, data), (200, b""))
        self.assertEqual(self.received_ids(), ["e1", "e2"])
        req = self.sim.control("GET", "requests")
        self.assertEqual([r["duplicate"] for r in req], [False, True])
        self.assertEqual(self.sim.control("GET", "stats")["duplicates"], 1)
        with open(self.sim.log) as f:
            self.assertIn("duplicate", f.read())
        with open(self.sim.received_log) as f:   # it outlives resets: other tests' too
            logged = f.read().split()
        self.assertEqual((logged.count("e1"), logged.count("e2")), (1, 1))

    def test_concurrent_duplicates_recorded_once(self):
        body = body_of("c1")
        results = []
        threads = [threading.Thread(target=lambda: results.append(
            self.sim.send(body, "msg_c")[0])) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 8)
        self.assertEqual(self.received_ids(), ["c1"])


class TestFaults(SimTestCase):
    def test_status_times_and_match(self):
        self.sim.control("POST", "faults",
                         [{"name": "bad", "status": 400, "match": '"e-bad"', "times": -1},
                          {"name": "busy", "status": 503, "times": 2}])
        self.assertEqual(self.sim.send(body_of("e-bad"), "m0")[0], 400)
        self.assertEqual(self.sim.send(body_of("e1"), "m1")[0], 503)
        self.assertEqual(self.sim.send(body_of("e1"), "m1")[0], 503)
        self.assertEqual(self.sim.send(body_of("e1"), "m1")[0], 200)
        self.assertEqual(self.sim.send(body_of("e-bad", "e2"), "m2")[0], 400)
        self.assertEqual(self.received_ids(), ["e1"])
        req = self.sim.control("GET", "requests")
        self.assertEqual([r["fault"] for r in req], ["bad", "busy", "busy", None, "bad"])
        self.assertEqual(self.sim.control("GET", "stats")["by_status"],
                         {"400": 2, "503": 2, "200": 1})

    def test_retry_after_and_delay(self):
        self.sim.control("POST", "faults", [{"status": 429, "retry_after": 3},
                                            {"delay_ms": 300}])
        status, hdrs, _ = self.sim.send(body_of("e1"), "m1")
        self.assertEqual((status, hdrs.get("retry-after")), (429, "3"))
        t0 = time.monotonic()
        self.assertEqual(self.sim.send(body_of("e1"), "m1")[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_faults_need_a_valid_signature(self):
        self.sim.control("POST", "faults", {"status": 503, "times": 1})
        self.assertEqual(self.sim.send(body_of("e1"), key=b"wrong")[0], 401)
        self.assertEqual(self.sim.send(body_of("e1"))[0], 503)

    def test_bad_rules_refused(self):
        for rule in ({"status": 99}, {"oops": 1}, {"times": -2, "status": 500},
                     {"status": "500"}, {"name": "nothing"}):
            status, _, _ = self.sim.call("POST", "/_sim/faults", json.dumps(rule).encode())
            self.assertEqual(status, 400, rule)

    def test_concurrent_requests_served_concurrently(self):
        self.sim.control("POST", "faults", {"delay_ms": 500, "times": 4})
        t0 = time.monotonic()
        threads = [threading.Thread(target=self.sim.send, args=(body_of(f"e{i}"), f"m{i}"))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual(sorted(self.received_ids()), ["e0", "e1", "e2", "e3"])


if __name__ == "__main__":
    unittest.main()
