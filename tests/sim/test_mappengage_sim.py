"""Tests for the Mapp Engage simulator (tests/sim/mappengage_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_mappengage_sim.py -v
The class starts one simulator subprocess on --port 0 (reset between tests)
and reads the port from --port-file. Only the standard library is used.
"""
import base64
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "mappengage_sim.py")
sys.path.insert(0, HERE)
from simtest import SimProcess  # noqa: E402

DOMAIN = "engage.test.example"
V19 = "/api/rest/v19"


class SimTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = SimProcess(SIM, "--user", "api", "--password", "pw", "--domain", DOMAIN,
                             "--default-group", "1000",
                             "--recipients", "ann@example.com,a+b@example.com",
                             prefix="engagesim-")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.control("POST", "reset")

    def call(self, method, path, body=None, user="api", pw="pw", host=DOMAIN):
        headers = {"Host": host, "Accept": "application/json"}
        if user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(
                f"{user}:{pw}".encode()).decode()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        r, raw = self.sim.exchange(method, path, data, headers)
        return r.status, (json.loads(raw) if raw else None)

    def control(self, method, what, body=None):
        return self.call(method, "/_sim/" + what, body, user=None)

    def subscribe(self, email_enc, gid, mode="OPT_IN"):
        return self.call("POST", f"{V19}/membership/subscribeByEmail?email={email_enc}"
                                 f"&groupId={gid}&subscriptionMode={mode}")

    def test_auth_and_host(self):
        self.assertEqual(self.call("GET", f"{V19}/group/find?name=x", user=None)[0], 401)
        self.assertEqual(self.call("GET", f"{V19}/group/find?name=x", pw="no")[0], 401)
        status, body = self.call("GET", f"{V19}/group/find?name=x", host="other.example")
        self.assertEqual(status, 404)
        self.assertEqual(body["errorCode"], "INVALID_REQUEST")
        self.assertEqual(self.call("GET", f"{V19}/group/find?name=x")[0], 200)
        self.control("POST", "password", {"password": "new"})
        self.assertEqual(self.call("GET", f"{V19}/group/find?name=x")[0], 401)
        self.assertEqual(self.call("GET", f"{V19}/group/find?name=x", pw="new")[0], 200)

    def test_clone_find_and_membership(self):
        status, g = self.call("POST", f"{V19}/group/clone?groupId=1000",
                              {"name": "relay-aud-1", "email": "relay-aud-1@g.example",
                               "includePreparedMessages": False, "includeTestUsers": False})
        self.assertEqual(status, 200)
        gid = g["id"]
        self.assertEqual(self.call("GET", f"{V19}/group/find?name=relay-aud-1"),
                         (200, [{"id": gid, "name": "relay-aud-1", "description": "",
                                 "email": "relay-aud-1@g.example"}]))
        self.assertEqual(self.call("GET", f"{V19}/group/find?name=relay-aud-2"), (200, []))
        status, err = self.call("POST", f"{V19}/group/clone?groupId=1000",
                                {"name": "relay-aud-1", "email": "other@g.example"})
        self.assertEqual((status, err["errorCode"]), (400, "OBJECT_ALREADY_EXISTS"))
        self.assertEqual(self.call("POST", f"{V19}/group/clone?groupId=5",
                                   {"name": "n", "email": "n@g.example"})[0], 400)
        self.assertEqual(self.subscribe("ann%40example.com", gid), (204, None))
        self.assertEqual(self.subscribe("a%2Bb@example.com", gid), (204, None))
        self.assertEqual(self.call("POST", f"{V19}/membership/unsubscribeByEmail?"
                                           f"email=ann@example.com&groupId={gid}"), (204, None))
        got = self.control("GET", "received")[1]
        self.assertEqual([(m["op"], m["email"], m["groupId"]) for m in got["memberships"]],
                         [("add", "ann@example.com", gid), ("add", "a+b@example.com", gid),
                          ("remove", "ann@example.com", gid)])
        self.assertEqual([c["name"] for c in got["groups_created"]], ["relay-aud-1"])

    def test_refusals(self):
        # An unknown recipient, a '+' left raw (a space), '[' raw, a bad mode,
        # an unknown and an archived group, a missing parameter.
        status, err = self.subscribe("nobody@example.com", 1000)
        self.assertEqual((status, err["message"]),
                         (400, "User with email=nobody@example.com does not exist."))
        status, err = self.subscribe("a+b@example.com", 1000)
        self.assertEqual((status, err["message"]),
                         (400, "Parameter 'email' is not a valid email address."))
        self.assertEqual(self.subscribe("a[b@example.com", 1000)[0], 400)
        self.assertEqual(self.subscribe("ann@example.com", 1000, "SOMETIMES")[0], 400)
        self.assertEqual(self.subscribe("ann@example.com", 4242)[0], 400)
        self.control("POST", "groups", [{"id": 1109, "name": "old", "archived": True}])
        status, err = self.subscribe("ann@example.com", 1109)
        self.assertEqual((status, err["message"]), (400, "Group with id=1109 is archived."))
        status, err = self.call("POST", f"{V19}/membership/subscribeByEmail?email=ann@example"
                                        ".com&subscriptionMode=OPT_IN")
        self.assertEqual((status, err["errorCode"]), (400, "MISSING_PARAMETER"))
        self.assertEqual(self.call("POST", f"{V19}/group/addMember")[0], 404)
        self.assertEqual(self.control("GET", "received")[1]["memberships"], [])

    def test_faults(self):
        self.control("POST", "faults", {"status": 503, "times": 2, "match": "subscribeByEmail"})
        self.assertEqual(self.subscribe("ann@example.com", 1000)[0], 503)
        self.assertEqual(self.call("GET", f"{V19}/group/find?name=x")[0], 200)
        self.assertEqual(self.subscribe("ann@example.com", 1000)[0], 503)
        self.assertEqual(self.subscribe("ann@example.com", 1000)[0], 204)
        reqs = self.control("GET", "requests")[1]
        self.assertEqual([r["status"] for r in reqs], [503, 200, 503, 204])
        self.assertEqual(len(self.control("GET", "received")[1]["memberships"]), 1)


if __name__ == "__main__":
    unittest.main()
