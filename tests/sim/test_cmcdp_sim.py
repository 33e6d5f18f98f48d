"""Tests for the CM.com CDP Events API simulator (tests/sim/cmcdp_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_cmcdp_sim.py -v
Each test class starts its own simulator subprocess on --port 0 and talks to it
over HTTP, as relay does.
"""
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "cmcdp_sim.py")
sys.path.insert(0, HERE)
import cmcdp_sim  # noqa: E402
from simtest import SimProcess  # noqa: E402

TENANT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
TOKEN = "6c4b1e0a-2d3f-4a5b-8c9d-0e1f2a3b4c5d"
PURCHASE = "0f8fad5b-d9cb-469f-a165-70867728950e"
POINTS = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
BATCH = f"/events/v1.0/tenants/{TENANT}/events"


class Sim(SimProcess):
    def __init__(self, *extra):
        super().__init__(
            SIM, "--tenant", TENANT, "--token", TOKEN,
            "--event-type", f"Purchase={PURCHASE}:Email Address|Product|Amount|occurred_at",
            "--event-type", f"Points Added={POINTS}", *extra, prefix="cmcdpsim-")

    def call(self, method, path, body=None, headers=None):
        return self.request(method, path, body, headers)

    def send(self, items, path=BATCH, token=TOKEN, raw=None):
        """POST items (or raw bytes) with the token in the header; (status, body)."""
        hdrs = {"Content-Type": "application/json"}
        if token is not None:
            hdrs["X-CM-PRODUCTTOKEN"] = token
        body = raw if raw is not None else json.dumps(items).encode()
        status, _, data = self.call("POST", path, body, hdrs)
        return status, json.loads(data) if data else None

    def control(self, method, path, body=None):
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        status, _, data = self.call(method, "/_sim/" + path, body)
        assert status == 200, (status, data)
        return json.loads(data)


def purchase(email="ann@example.com", **more):
    return {"EventTypeId": PURCHASE,
            "Event": {"Email Address": email, "Product": "Coffee", "Amount": 1, **more}}


def points(n=5):
    return {"EventTypeId": POINTS, "Event": {"customer_id": "c1", "points": n}}


class SimTestCase(unittest.TestCase):
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.extra)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.control("POST", "reset")


class TestBatch(SimTestCase):
    def test_accepted_with_types(self):
        status, body = self.sim.send([purchase(), points(7)])
        self.assertEqual((status, body), (200, None))
        got = self.sim.control("GET", "received")
        self.assertEqual([(r["event_type"], r["event_type_id"]) for r in got],
                         [("Purchase", PURCHASE), ("Points Added", POINTS)])
        self.assertEqual(got[1]["event"], {"customer_id": "c1", "points": 7})
        req = self.sim.control("GET", "requests")[0]
        self.assertEqual((req["token"], req["token_in"], req["events"], req["types"]),
                         ("ok", "header", 2, ["Points Added", "Purchase"]))

    def test_guid_case_does_not_matter(self):
        item = purchase()
        item["EventTypeId"] = PURCHASE.upper()
        path = BATCH.replace(TENANT, TENANT.upper())
        self.assertEqual(self.sim.send([item], path=path)[0], 200)

    def test_each_send_is_recorded(self):
        """No idempotency key: the same request twice is two events."""
        self.sim.send([purchase()])
        self.sim.send([purchase()])
        self.assertEqual(self.sim.control("GET", "stats")["accepted_events"], 2)


class TestPathAndToken(SimTestCase):
    def test_unknown_tenant(self):
        other = "11111111-2222-3333-4444-555555555555"
        status, body = self.sim.send([purchase()], path=BATCH.replace(TENANT, other))
        self.assertEqual((status, body["message"]), (404, "tenant not found"))

    def test_tenant_not_a_guid(self):
        status, body = self.sim.send([purchase()], path=BATCH.replace(TENANT, "acme"))
        self.assertEqual(status, 400)
        self.assertIn("not a GUID", body["message"])

    def test_other_paths(self):
        self.assertEqual(self.sim.send([purchase()], path="/events/v1.0/events")[0], 404)
        self.assertEqual(self.sim.send([purchase()], path=BATCH + "/x/y")[0], 404)
        status, _, _ = self.sim.call("GET", BATCH, None, {"X-CM-PRODUCTTOKEN": TOKEN})
        self.assertEqual(status, 405)

    def test_token_missing_or_wrong(self):
        self.assertEqual(self.sim.send([purchase()], token=None)[0], 401)
        self.assertEqual(self.sim.send([purchase()], token="nope")[0], 401)
        self.assertEqual([r["token"] for r in self.sim.control("GET", "requests")],
                         ["missing", "wrong"])
        self.assertEqual(self.sim.control("GET", "received"), [])

    def test_token_in_query(self):
        status, _, _ = self.sim.call(
            "POST", f"{BATCH}?producttoken={TOKEN}", json.dumps([purchase()]).encode(),
            {"Content-Type": "application/json"})
        self.assertEqual(status, 200)
        self.assertEqual(self.sim.control("GET", "requests")[0]["token_in"], "query")
        status, _, _ = self.sim.call("POST", f"{BATCH}?producttoken=bad",
                                     json.dumps([purchase()]).encode())
        self.assertEqual(status, 401)

    def test_token_rotated(self):
        self.sim.control("POST", "token", {"token": "new-token"})
        try:
            self.assertEqual(self.sim.send([purchase()])[0], 401)
            self.assertEqual(self.sim.send([purchase()], token="new-token")[0], 200)
        finally:
            self.sim.control("POST", "token", {"token": TOKEN})


class TestNoQueryToken(SimTestCase):
    extra = ("--no-query-token", "--wrong-token-status", "403")

    def test_query_refused(self):
        status, _, _ = self.sim.call("POST", f"{BATCH}?producttoken={TOKEN}",
                                     json.dumps([purchase()]).encode())
        self.assertEqual(status, 401)
        self.assertEqual(self.sim.send([purchase()], token="bad")[0], 403)


class TestBodyChecks(SimTestCase):
    def bad(self, items=None, raw=None):
        status, body = self.sim.send(items, raw=raw)
        self.assertEqual(status, 400, body)
        self.assertIsInstance(body["message"], str)
        self.assertEqual(self.sim.control("GET", "received"), [])
        return body

    def test_not_json_or_not_array(self):
        self.assertIn("not JSON", self.bad(raw=b"{nope")["message"])
        self.bad({"EventTypeId": PURCHASE, "Event": {}})
        self.bad([])

    def test_item_shapes(self):
        body = self.bad([purchase(), {"EventTypeId": "nope", "Event": {"a": 1}}])
        self.assertEqual(body["errors"], [{"index": 1, "message":
                                           "EventTypeId 'nope' is not a GUID"}])
        unknown = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        body = self.bad([{"EventTypeId": unknown, "Event": {"a": 1}}])
        self.assertIn("unknown EventTypeId", body["errors"][0]["message"])
        self.bad([{"EventTypeId": PURCHASE}])
        self.bad([{"EventTypeId": PURCHASE, "Event": []}])
        self.bad([{"EventTypeId": PURCHASE, "Event": {"Product": "x"}, "x": 1}])
        self.bad(["just a string"])

    def test_flat_and_defined_fields(self):
        body = self.bad([purchase(Nested={"a": 1})])
        self.assertIn("not flat", body["errors"][0]["message"])
        body = self.bad([purchase(Colour="red")])
        self.assertEqual(body["errors"][0]["message"],
                         "fields ['Colour'] are not in event type 'Purchase'")
        # Points Added has no field list: anything flat goes.
        self.assertEqual(self.sim.send([points()])[0], 200)


class TestPerTypePath(SimTestCase):
    def test_flat_events(self):
        path = f"{BATCH}/{POINTS}"
        self.assertEqual(self.sim.send([{"customer_id": "c2", "points": 1}],
                                       path=path)[0], 200)
        got = self.sim.control("GET", "received")
        self.assertEqual(got[0]["event_type"], "Points Added")
        other = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        self.assertEqual(self.sim.send([{"a": 1}], path=f"{BATCH}/{other}")[0], 404)


class TestFaults(SimTestCase):
    def test_times_and_match(self):
        self.sim.control("POST", "faults", [
            {"name": "busy", "status": 503, "times": 2},
            {"name": "refuse", "status": 400, "match": "bad@example.com", "times": -1}])
        self.assertEqual(self.sim.send([purchase()])[0], 503)
        self.assertEqual(self.sim.send([purchase()])[0], 503)
        self.assertEqual(self.sim.send([purchase()])[0], 200)
        for _ in range(2):
            status, body = self.sim.send([purchase("bad@example.com")])
            self.assertEqual(status, 400)
            self.assertEqual(body["message"], 'injected fault "refuse"')
        self.assertEqual(len(self.sim.control("GET", "received")), 1)
        self.assertEqual(self.sim.control("GET", "stats")["by_status"],
                         {"503": 2, "200": 1, "400": 2})

    def test_retry_after_and_delay(self):
        self.sim.control("POST", "faults",
                         {"status": 429, "retry_after": 3, "delay_ms": 200})
        t0 = time.monotonic()
        status, headers, _ = self.sim.call(
            "POST", BATCH, json.dumps([purchase()]).encode(),
            {"X-CM-PRODUCTTOKEN": TOKEN})
        self.assertGreaterEqual(time.monotonic() - t0, 0.19)
        self.assertEqual((status, headers.get("retry-after")), (429, "3"))

    def test_faults_only_after_auth(self):
        self.sim.control("POST", "faults", {"status": 503, "times": -1})
        self.assertEqual(self.sim.send([purchase()], token="bad")[0], 401)
        self.sim.control("DELETE", "faults")
        self.assertEqual(self.sim.send([purchase()])[0], 200)

    def test_bad_rules(self):
        for rule in ({"status": 99}, {"times": 1}, {"status": 503, "bogus": 1},
                     {"status": "503"}, [1]):
            status, _, _ = self.sim.call("POST", "/_sim/faults", json.dumps(rule).encode())
            self.assertEqual(status, 400, rule)


class TestHelpers(unittest.TestCase):
    def test_parse_event_type(self):
        self.assertEqual(cmcdp_sim.parse_event_type(f"Order Placed={PURCHASE.upper()}"),
                         (PURCHASE, "Order Placed", None))
        self.assertEqual(cmcdp_sim.parse_event_type(f"P={PURCHASE}:A|B C"),
                         (PURCHASE, "P", {"A", "B C"}))
        for bad in ("P", f"={PURCHASE}", "P=nope"):
            with self.assertRaises(ValueError):
                cmcdp_sim.parse_event_type(bad)


if __name__ == "__main__":
    unittest.main()
