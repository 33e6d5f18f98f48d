"""Tests for the Braze /users/track simulator (tests/sim/braze_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_braze_sim.py -v
Each test class starts its own simulator subprocess on --port 0 and reads the
port from --port-file. Only the standard library (http.client) is used.
"""
import http.client
import json
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "braze_sim.py")
sys.path.insert(0, HERE)
from simtest import SimProcess  # noqa: E402

KEY = "test-key"
TIME = "2025-11-25T10:01:00.000Z"


def event(uid, name="Coupon Issued", **extra):
    return {"external_id": uid, "name": name, "time": TIME, "properties": {}, **extra}


def purchase(uid, **extra):
    p = {"external_id": uid, "product_id": "sku-1", "currency": "EUR", "price": 9.5,
         "quantity": 1, "time": TIME, "properties": {}}
    p.update(extra)
    return p


class Sim(SimProcess):
    """A simulator subprocess; `call` sends one request on a fresh connection."""

    def __init__(self, *extra):
        super().__init__(SIM, "--key", KEY, *extra, prefix="brazesim-")

    def call(self, method, path, body=None, key=KEY, ctype="application/json"):
        """(status, headers with lower-case names, parsed JSON body or None)."""
        hdrs = {}
        if body is not None and ctype:
            hdrs["Content-Type"] = ctype
        if key:
            hdrs["Authorization"] = "Bearer " + key
        return self.call_json(method, path, body, hdrs)

    def track(self, body, **kw):
        return self.call("POST", "/users/track", body, **kw)

    def control(self, method, path, body=None):
        status, _, data = self.call(method, "/_sim/" + path, body, key=None)
        assert status == 200, (status, data)
        return data


class SimCase(unittest.TestCase):
    ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.ARGS)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.control("POST", "reset")
        self.sim.control("POST", "key", {"key": KEY})
        self.sim.control("POST", "ratelimit", {"limit": 0, "window_s": 3})
        self.sim.control("DELETE", "faults")


class TestTrack(SimCase):
    def test_success_records_each_object_with_its_array(self):
        body = {"attributes": [{"external_id": "u1", "tier": "gold"}],
                "events": [event("u1")], "purchases": [purchase("u1")]}
        status, hdrs, data = self.sim.track(body)
        self.assertEqual(status, 201)
        self.assertEqual(data, {"message": "success", "attributes_processed": 1,
                                "events_processed": 1, "purchases_processed": 1})
        got = self.sim.control("GET", "received")
        self.assertEqual([(r["array"], r["object"]) for r in got],
                         [("attributes", body["attributes"][0]),
                          ("events", body["events"][0]),
                          ("purchases", body["purchases"][0])])

    def test_auth(self):
        status, _, data = self.sim.track({"events": [event("u1")]}, key=None)
        self.assertEqual(status, 401)
        status, _, data = self.sim.track({"events": [event("u1")]}, key="nope")
        self.assertEqual(status, 401)
        self.assertIn("Invalid API key", data["message"])
        self.assertEqual(self.sim.control("GET", "received"), [])
        # A new key: the old one is refused from then on.
        self.sim.control("POST", "key", {"key": "rotated"})
        self.assertEqual(self.sim.track({"events": [event("u1")]})[0], 401)
        self.assertEqual(self.sim.track({"events": [event("u1")]}, key="rotated")[0], 201)

    def test_fatal_400s(self):
        for body, want in (
                (b"{not json", "malformed"),
                ([], "not a JSON object"),
                ({"events": {}}, "'events' must be an array"),
                ({"users": []}, "unknown key"),
                ({}, "no attributes, events or purchases"),
                ({"events": [event(f"u{i}") for i in range(76)]},
                 "Max Input Length Exceeded")):
            status, _, data = self.sim.track(body)
            self.assertEqual(status, 400, body)
            self.assertIn(want, data["message"])
        self.assertEqual(self.sim.track({"events": [event("u")]}, ctype="text/plain")[0], 400)
        # 75 of each kind in one request is fine (225 objects).
        status, _, data = self.sim.track({
            "attributes": [{"external_id": f"u{i}", "a": i} for i in range(75)],
            "events": [event(f"u{i}") for i in range(75)],
            "purchases": [purchase(f"u{i}") for i in range(75)]})
        self.assertEqual((status, data.get("errors")), (201, None))
        self.assertEqual(self.sim.control("GET", "stats")["accepted"],
                         {"attributes": 75, "events": 75, "purchases": 75})

    def test_minor_errors_name_array_and_index(self):
        body = {"attributes": [{"external_id": "a", "x": 1},
                               {"x": 2},                                   # no identifier
                               {"external_id": "b", "email": "b@x.io"}],   # email attribute
                "events": [event("c"), {"external_id": "d", "time": TIME},  # no name
                           {"external_id": "e", "braze_id": "f", "name": "n", "time": TIME},
                           event("g", time="yesterday"),
                           {"user_alias": {"alias_name": "h", "alias_label": "crm"},
                            "name": "n", "time": TIME}],
                "purchases": [purchase("i", currency="EURO"), purchase("j", price="9"),
                              {k: v for k, v in purchase("k").items() if k != "product_id"},
                              purchase("l")]}
        status, _, data = self.sim.track(body)
        self.assertEqual(status, 201)
        self.assertEqual(data["message"], "success")
        where = [(e["input_array"], e["index"]) for e in data["errors"]]
        self.assertEqual(where, [("attributes", 1), ("events", 1), ("events", 2),
                                 ("events", 3), ("purchases", 0), ("purchases", 1),
                                 ("purchases", 2)])
        self.assertTrue(all(e["type"].startswith("invalid") for e in data["errors"]))
        self.assertEqual(data["events_processed"], 2)
        got = [(r["array"], r["object"].get("external_id")
                or r["object"]["user_alias"]["alias_name"])
               for r in self.sim.control("GET", "received")]
        self.assertEqual(got, [("attributes", "a"), ("attributes", "b"), ("events", "c"),
                               ("events", "h"), ("purchases", "l")])

    def test_combined_rule_is_off_by_default(self):
        body = {"attributes": [{"external_id": f"u{i}", "a": 1} for i in range(50)],
                "events": [event(f"u{i}") for i in range(50)]}
        self.assertEqual(self.sim.track(body)[0], 201)

    def test_ratelimit_headers_lowercase(self):
        self.sim.control("POST", "ratelimit", {"limit": 2, "window_s": 2})
        raw = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=10)
        raw.request("POST", "/users/track", json.dumps({"events": [event("u")]}),
                    {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
        resp = raw.getresponse()
        resp.read()
        names = [k for k, _ in resp.getheaders()]
        raw.close()
        self.assertIn("x-ratelimit-remaining", names)   # as sent, lower case
        self.assertEqual(resp.getheader("x-ratelimit-limit"), "2")
        self.assertEqual(resp.getheader("x-ratelimit-remaining"), "1")
        reset = int(resp.getheader("x-ratelimit-reset"))
        self.assertTrue(time.time() < reset <= time.time() + 3, reset)
        self.assertEqual(self.sim.track({"events": [event("u")]})[0], 201)
        status, hdrs, data = self.sim.track({"events": [event("u")]})
        self.assertEqual(status, 429)
        self.assertEqual(hdrs["x-ratelimit-remaining"], "0")
        self.assertTrue(1 <= int(hdrs["retry-after"]) <= 2, hdrs)
        time.sleep(int(hdrs["retry-after"]) + 0.1)
        self.assertEqual(self.sim.track({"events": [event("u")]})[0], 201)
        self.sim.control("POST", "ratelimit", {"limit": 0, "window_s": 3})


class TestFaults(SimCase):
    def test_status_times_and_match(self):
        self.sim.control("POST", "faults", [
            {"name": "busy", "status": 503, "times": 2, "match": "u-busy"},
            {"name": "slow-down", "status": 429, "retry_after": 3, "match": "u-429"}])
        for _ in range(2):
            self.assertEqual(self.sim.track({"events": [event("u-busy")]})[0], 503)
        self.assertEqual(self.sim.track({"events": [event("u-busy")]})[0], 201)
        self.assertEqual(self.sim.track({"events": [event("u-other")]})[0], 201)
        status, hdrs, _ = self.sim.track({"events": [event("u-429")]})
        self.assertEqual((status, hdrs["retry-after"]), (429, "3"))
        reqs = self.sim.control("GET", "requests")
        self.assertEqual([r["fault"] for r in reqs], ["busy", "busy", None, None, "slow-down"])
        self.assertEqual([r["object"]["external_id"]
                          for r in self.sim.control("GET", "received")],
                         ["u-busy", "u-other"])

    def test_object_error_refuses_matching_objects_only(self):
        self.sim.control("POST", "faults", {"name": "minor", "object_error": "invalid test",
                                            "match": "u-bad"})
        body = {"attributes": [{"external_id": "u-ok", "a": 1}, {"external_id": "u-bad"}],
                "events": [event("u-ok"), event("u-bad")]}
        status, _, data = self.sim.track(body)
        self.assertEqual(status, 201)
        self.assertEqual(data["errors"], [
            {"type": "invalid test", "input_array": "attributes", "index": 1},
            {"type": "invalid test", "input_array": "events", "index": 1}])
        self.assertEqual(len(self.sim.control("GET", "received")), 2)
        # times defaults to 1: the next request is processed in full.
        self.assertNotIn("errors", self.sim.track(body)[2])

    def test_queued_and_delay_and_bad_rules(self):
        self.sim.control("POST", "faults", {"queued": True, "delay_ms": 300})
        t0 = time.monotonic()
        status, _, data = self.sim.track({"events": [event("u")]})
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        self.assertEqual((status, data), (202, {"message": "queued"}))
        self.assertEqual(len(self.sim.control("GET", "received")), 1)
        for bad in ({"bogus": 1}, {"object_error": "x"}, {"status": 700},
                    {"status": 500, "queued": True}, {"times": -2}):
            self.assertEqual(self.sim.call("POST", "/_sim/faults", bad, key=None)[0], 400, bad)

    def test_concurrent_requests_are_served(self):
        self.sim.control("POST", "faults", {"delay_ms": 1000, "times": -1})
        results = []

        def one(i):
            results.append(self.sim.track({"events": [event(f"u{i}")]})[0])
        t0 = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [201] * 4)
        self.assertLess(time.monotonic() - t0, 3.0)   # not 4 s one after the other
        self.sim.control("DELETE", "faults")


class TestCombined(SimCase):
    ARGS = ("--combined", "--canonical-headers", "--success-status", "200")

    def test_combined_total_and_options(self):
        body = {"attributes": [{"external_id": f"u{i}", "a": 1} for i in range(40)],
                "events": [event(f"u{i}") for i in range(40)]}
        status, _, data = self.sim.track(body)
        self.assertEqual((status, data["message"]), (400, "Max Input Length Exceeded"))
        status, hdrs, _ = self.sim.track({"events": [event("u")]})
        self.assertEqual(status, 200)
        raw = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=10)
        raw.request("POST", "/users/track", json.dumps({"events": [event("u")]}),
                    {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
        resp = raw.getresponse()
        resp.read()
        self.assertIn("X-RateLimit-Limit", [k for k, _ in resp.getheaders()])
        raw.close()


if __name__ == "__main__":
    unittest.main()
