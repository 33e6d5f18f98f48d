"""Tests for the mParticle Events API simulator (tests/sim/mparticle_sim.py).

Run from the repository root:
    python3 -m unittest tests/sim/test_mparticle_sim.py -v
Each test class starts its own simulator subprocess on --port 0 and reads the
port from --port-file. Only the standard library (http.client) is used.
"""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "mparticle_sim.py")
sys.path.insert(0, HERE)
from simtest import SimProcess  # noqa: E402
KEY, SECRET = "test-key", "test-secret"


class Sim(SimProcess):
    """A simulator subprocess; `call` sends one request on a fresh connection."""

    def __init__(self, *extra):
        super().__init__(SIM, "--key", KEY, "--secret", SECRET, *extra, prefix="mpsim-")

    def call(self, method, path, body=None, auth=(KEY, SECRET),
             ctype="application/json", headers=None):
        """Return (status, headers dict with lower-case names, body bytes)."""
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        if body is not None and ctype:
            hdrs["Content-Type"] = ctype
        if auth:
            hdrs["Authorization"] = "Basic " + base64.b64encode(
                f"{auth[0]}:{auth[1]}".encode()).decode()
        return self.request(method, path, body, hdrs)

    def control(self, method, path, body=None):
        status, _, data = self.call(method, "/_sim/" + path, body, auth=None)
        assert status == 200, (status, data)
        return json.loads(data)


def batch(**over):
    b = {"environment": "development",
         "user_identities": {"customer_id": "c1", "email": "a@example.com"},
         "user_attributes": {"plan": "pro", "tags": ["a", "b"], "score": 3, "vip": None},
         "events": [{"event_type": "custom_event",
                     "data": {"event_name": "signup", "custom_event_type": "other",
                              "custom_attributes": {"k": "v"}}}]}
    b.update(over)
    return b


class SimTestCase(unittest.TestCase):
    args = ()

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(*cls.args)

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.control("POST", "reset")

    def post(self, path, body, **kw):
        return self.sim.call("POST", path, body, **kw)

    def assert_400(self, path, body, fragment, **kw):
        status, hdrs, data = self.post(path, body, **kw)
        self.assertEqual(status, 400, data)
        err = json.loads(data)["errors"][0]
        self.assertEqual(err["code"], "BAD_REQUEST")
        self.assertIn(fragment, err["message"])
        self.assertEqual(self.sim.control("GET", "received"), [])
        return err["message"]


class TestAcceptAndAuth(SimTestCase):
    def test_single_event_accepted_and_recorded(self):
        status, hdrs, data = self.post("/v2/events", batch(mpid=42))
        self.assertEqual((status, data), (202, b""))
        self.assertEqual(hdrs["content-length"], "0")
        self.assertEqual(hdrs["x-mp-rate-limit-percentage-used"], "0")
        got = self.sim.control("GET", "received")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["path"], "/v2/events")
        self.assertEqual(got[0]["batch"], batch(mpid=42))
        self.assertIsInstance(got[0]["at_ms"], int)
        req = self.sim.control("GET", "requests")
        self.assertEqual(req[0]["status"], 202)
        self.assertEqual(req[0]["batches"], 1)
        self.assertEqual(req[0]["auth"], "ok")
        self.assertIsNone(req[0]["fault"])
        self.assertEqual(req[0]["bytes"], len(json.dumps(batch(mpid=42)).encode()))

    def test_bulk_accepted_in_order(self):
        for path in ("/v2/bulkevents", "/v2/bulkevents/historical"):
            bs = [batch(source_request_id=f"{path}-{i}") for i in range(3)]
            status, _, _ = self.post(path, bs, ctype="application/json; charset=utf-8")
            self.assertEqual(status, 202)
        got = self.sim.control("GET", "received")
        self.assertEqual([g["batch"]["source_request_id"] for g in got],
                         [f"/v2/bulkevents-{i}" for i in range(3)] +
                         [f"/v2/bulkevents/historical-{i}" for i in range(3)])
        self.assertEqual(got[3]["path"], "/v2/bulkevents/historical")
        stats = self.sim.control("GET", "stats")
        self.assertEqual(stats, {"requests": 2, "accepted_batches": 6, "by_status": {"202": 2}})

    def test_100_batches_allowed(self):
        self.assertEqual(self.post("/v2/bulkevents", [batch()] * 100)[0], 202)

    def test_missing_or_non_basic_auth_is_401(self):
        self.assertEqual(self.post("/v2/events", batch(), auth=None)[0], 401)
        status, _, _ = self.post("/v2/events", batch(), auth=None,
                                 headers={"Authorization": "Bearer abc"})
        self.assertEqual(status, 401)
        self.assertEqual([r["auth"] for r in self.sim.control("GET", "requests")],
                         ["missing", "missing"])
        self.assertEqual(self.sim.control("GET", "received"), [])

    def test_wrong_credentials_are_403(self):
        self.assertEqual(self.post("/v2/events", batch(), auth=(KEY, "nope"))[0], 403)
        self.assertEqual(self.post("/v2/events", batch(), auth=("nope", SECRET))[0], 403)
        self.assertEqual([r["auth"] for r in self.sim.control("GET", "requests")],
                         ["wrong", "wrong"])

    def test_keep_alive_and_411(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=10)
        auth = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        hdrs = {"Authorization": auth, "Content-Type": "application/json"}
        conn.request("POST", "/v2/events", json.dumps(batch()), hdrs)
        self.assertEqual(conn.getresponse().read(), b"")
        sock = conn.sock
        try:
            conn.request("POST", "/v2/events", json.dumps(batch()), hdrs)
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (202, b""))
            self.assertIs(conn.sock, sock, "connection was not kept alive")
            conn.request("POST", "/v2/events", iter([json.dumps(batch()).encode()]), hdrs,
                         encode_chunked=True)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 411)
            resp.read()
            conn.request("POST", "/v2/events", json.dumps(batch()), hdrs)
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.read()), (202, b""))
            self.assertIs(conn.sock, sock, "connection was not kept alive after 411")
        finally:
            conn.close()
        with socket.create_connection(("127.0.0.1", self.sim.port), timeout=10) as s:
            s.sendall(b"POST /v2/events HTTP/1.1\r\nHost: x\r\nAuthorization: " +
                      auth.encode() + b"\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 411"))
        self.assertEqual(self.sim.control("GET", "stats")["by_status"], {"202": 3, "411": 2})

    def test_reset_clears_everything(self):
        self.post("/v2/events", batch())
        self.sim.control("POST", "faults", {"status": 503, "times": -1})
        self.sim.control("POST", "reset")
        self.assertEqual(self.sim.control("GET", "received"), [])
        self.assertEqual(self.sim.control("GET", "requests"), [])
        self.assertEqual(self.sim.control("GET", "faults"), [])
        self.assertEqual(self.sim.control("GET", "stats"),
                         {"requests": 0, "accepted_batches": 0, "by_status": {}})
        self.assertEqual(self.post("/v2/events", batch())[0], 202)

    def test_log_has_one_line_per_request(self):
        self.post("/v2/bulkevents", [batch(), batch()])
        with open(self.sim.log) as f:
            self.assertIn("POST /v2/bulkevents 202 batches=2", f.read())


class TestValidation(SimTestCase):
    def test_environment(self):
        self.assert_400("/v2/events", batch(environment="staging"), '"environment" must be')
        b = batch()
        del b["environment"]
        self.assert_400("/v2/events", b, '"environment" is required')

    def test_unknown_top_level_key(self):
        self.assert_400("/v2/events", batch(user_id="x"), 'top-level key "user_id" is not allowed')

    def test_unknown_identity_key_names_batch(self):
        bs = [batch(), batch(), batch(), batch(user_identities={"emial": "a@b.c"})]
        msg = self.assert_400("/v2/bulkevents", bs, 'user_identities key "emial" is not allowed')
        self.assertTrue(msg.startswith("batch 3:"), msg)
        self.assert_400("/v2/events", batch(user_identities={"email": 5}), "must be a string")

    def test_events(self):
        self.assert_400("/v2/events", batch(events=[{"data": {}}]), '"event_type"')
        self.assert_400("/v2/events", batch(events=[{"event_type": "custom_event"}]), '"data"')
        self.assert_400("/v2/events", batch(events=[{"event_type": "click", "data": {}}]),
                        "unknown event_type")
        self.assert_400("/v2/events", batch(events=[{"event_type": ["x"], "data": {}}]),
                        "unknown event_type")
        ev = {"event_type": "custom_event",
              "data": {"event_name": "x", "custom_event_type": "purchase"}}
        self.assert_400("/v2/events", batch(events=[ev]), "custom_event_type")
        ev = {"event_type": "custom_event", "data": {"custom_event_type": "other"}}
        self.assert_400("/v2/events", batch(events=[ev]), "event_name")
        ev = {"event_type": "custom_event",
              "data": {"event_name": "x", "custom_event_type": "other", "custom_attributes": []}}
        self.assert_400("/v2/events", batch(events=[ev]), "custom_attributes")

    def test_too_many_batches(self):
        self.assert_400("/v2/bulkevents", [batch()] * 101, "101 batches")

    def test_user_attributes(self):
        attrs = {f"a{i}": i for i in range(101)}
        self.assert_400("/v2/events", batch(user_attributes=attrs), "101 attributes")
        self.assertEqual(self.post("/v2/events", batch(user_attributes={"v": "x" * 4096}))[0], 202)
        self.sim.control("POST", "reset")
        self.assert_400("/v2/events", batch(user_attributes={"v": "x" * 4097}), "4097 characters")
        self.assert_400("/v2/events", batch(user_attributes={"v": ["x", 1]}), '"v" must be')
        self.assert_400("/v2/events", batch(user_attributes={"v": {"a": 1}}), '"v" must be')

    def test_body_shape_and_content_type(self):
        self.assert_400("/v2/events", batch(), "Content-Type", ctype="text/plain")
        self.assert_400("/v2/events", b"{not json", "not valid JSON")
        self.assert_400("/v2/events", [batch()], "single batch")
        self.assert_400("/v2/bulkevents", batch(), "array")

    def test_oversize_is_400_without_enable_413(self):
        big = "x" * 4000
        fat = batch(user_attributes={f"a{i}": big for i in range(40)})   # ~160 KB batch
        self.assert_400("/v2/events", fat, "a batch may be at most 131072 bytes")
        mid = batch(user_attributes={f"a{i}": big for i in range(25)})   # ~100 KB batch
        self.assert_400("/v2/bulkevents", [mid] * 3, "at most 262144 allowed")


class TestOversize413(SimTestCase):
    args = ("--enable-413", "--max-request-bytes", "3000", "--max-batch-bytes", "1500",
            "--max-bulk", "5")

    def test_413(self):
        b = batch(user_attributes={"v": "x" * 1000})
        self.assertEqual(self.post("/v2/events", b)[0], 202)
        status, _, data = self.post("/v2/events", batch(user_attributes={"v": "x" * 1600}))
        self.assertEqual(status, 413)
        self.assertIn("batch 0:", json.loads(data)["errors"][0]["message"])
        self.assertEqual(self.post("/v2/bulkevents", [b] * 3)[0], 413)
        self.assertEqual(self.post("/v2/bulkevents", [batch()] * 6)[0], 400)   # --max-bulk
        self.assertEqual(len(self.sim.control("GET", "received")), 1)


class TestFaults(SimTestCase):
    def test_status_with_times_and_match(self):
        faults = self.sim.control("POST", "faults",
                                  {"status": 503, "times": 2, "match": "victim", "name": "boom"})
        self.assertEqual(faults[0]["remaining"], 2)
        self.assertEqual(self.post("/v2/events", batch())[0], 202)
        victim = batch(source_request_id="victim")
        self.assertEqual(self.post("/v2/events", victim)[0], 503)
        status, hdrs, _ = self.post("/v2/events", victim)
        self.assertEqual(status, 503)
        self.assertNotIn("retry-after", hdrs)
        self.assertEqual(self.post("/v2/events", victim)[0], 202)
        self.assertEqual(self.sim.control("GET", "faults")[0]["remaining"], 0)
        self.assertEqual([r["fault"] for r in self.sim.control("GET", "requests")],
                         [None, "boom", "boom", None])
        self.assertEqual(len(self.sim.control("GET", "received")), 2)

    def test_400_and_503_retry_after_and_forever(self):
        self.sim.control("POST", "faults", [{"status": 400, "name": "bad"},
                                            {"status": 503, "retry_after": 3, "times": -1}])
        status, _, data = self.post("/v2/events", batch())
        self.assertEqual(status, 400)
        self.assertIn('"bad"', json.loads(data)["errors"][0]["message"])
        for _ in range(3):
            status, hdrs, _ = self.post("/v2/events", batch())
            self.assertEqual((status, hdrs.get("retry-after")), (503, "3"))
        self.sim.call("DELETE", "/_sim/faults", auth=None)
        self.assertEqual(self.post("/v2/events", batch())[0], 202)

    def test_429_retry_after(self):
        self.sim.control("POST", "faults", {"status": 429, "retry_after": 7})
        status, hdrs, _ = self.post("/v2/bulkevents", [batch()])
        self.assertEqual(status, 429)
        self.assertEqual(hdrs["retry-after"], "7")
        self.assertEqual(hdrs["x-mp-rate-limit-exceeded"], "account")
        self.assertEqual(self.sim.control("GET", "received"), [])
        self.assertEqual(self.post("/v2/bulkevents", [batch()])[0], 202)

    def test_faults_are_not_applied_before_auth(self):
        self.sim.control("POST", "faults", {"status": 500})
        self.assertEqual(self.post("/v2/events", batch(), auth=None)[0], 401)
        self.assertEqual(self.post("/v2/events", batch())[0], 500)

    def test_delay(self):
        self.sim.control("POST", "faults", {"delay_ms": 400})
        t0 = time.monotonic()
        status, _, _ = self.post("/v2/events", batch())
        self.assertGreaterEqual(time.monotonic() - t0, 0.38)
        self.assertEqual(status, 202)
        self.assertEqual(len(self.sim.control("GET", "received")), 1)

    def test_garbage(self):
        self.sim.control("POST", "faults", {"garbage": True, "name": "junk"})
        status, hdrs, data = self.post("/v2/events", batch())
        self.assertEqual(status, 202)
        self.assertNotEqual(hdrs["content-type"], "application/json")
        self.assertEqual(int(hdrs["content-length"]), len(data))
        with self.assertRaises(ValueError):
            json.loads(data)
        self.assertEqual(len(self.sim.control("GET", "received")), 1)
        self.assertEqual(self.sim.control("GET", "requests")[0]["fault"], "junk")

    def test_partial(self):
        self.sim.control("POST", "faults", {"partial": True, "match": "drop-me"})
        bs = [batch(source_request_id="keep-1"), batch(source_request_id="drop-me"),
              batch(source_request_id="keep-2")]
        self.assertEqual(self.post("/v2/bulkevents", bs)[0], 202)
        got = self.sim.control("GET", "received")
        self.assertEqual([g["batch"]["source_request_id"] for g in got], ["keep-1", "keep-2"])

    def test_reset_sends_no_answer(self):
        self.sim.control("POST", "faults", {"reset": True, "name": "rst", "times": 1})
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            self.post("/v2/events", batch(source_request_id="r1"))
        self.assertEqual(self.post("/v2/events", batch())[0], 202)
        reqs = self.sim.control("GET", "requests")
        self.assertEqual([(r["status"], r["fault"]) for r in reqs], [(None, "rst"), (202, None)])
        self.assertEqual(len(self.sim.control("GET", "received")), 1)
        self.assertEqual(self.sim.control("GET", "stats")["by_status"], {"reset": 1, "202": 1})

    def test_reset_is_a_tcp_rst(self):
        self.sim.control("POST", "faults", {"reset": True})
        body = json.dumps(batch()).encode()
        auth = base64.b64encode(f"{KEY}:{SECRET}".encode())
        with socket.create_connection(("127.0.0.1", self.sim.port), timeout=10) as s:
            s.sendall(b"POST /v2/events HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + auth +
                      b"\r\nContent-Type: application/json\r\nContent-Length: " +
                      str(len(body)).encode() + b"\r\n\r\n" + body)
            with self.assertRaises(ConnectionResetError):   # not a clean EOF (b"")
                s.recv(4096)

    def test_bad_rules_rejected(self):
        for rule in ({"partial": True}, {"status": "500"}, {"bogus": 1}, {"times": -2},
                     {"reset": True, "status": 500}, {"reset": 1}):
            status, _, _ = self.sim.call("POST", "/_sim/faults", rule, auth=None)
            self.assertEqual(status, 400, rule)
        self.assertEqual(self.sim.control("GET", "faults"), [])


def outcome(sim, sid):
    """One request's result: its status, or "reset" when the connection was reset."""
    try:
        status, hdrs, _ = sim.call("POST", "/v2/events", batch(source_request_id=sid))
    except (ConnectionResetError, http.client.RemoteDisconnected):
        return "reset", {}
    return status, hdrs


class TestChaos(SimTestCase):
    def test_rate_mix_and_stop(self):
        conf = self.sim.control("POST", "chaos",
                                {"rate": 0.3, "seed": 7, "retry_after": 2, "slow_ms": 150})
        self.assertTrue(conf["active"])
        self.assertEqual((conf["rate"], conf["seed"]), (0.3, 7))
        results = [outcome(self.sim, f"c{i}") for i in range(300)]
        statuses = [r[0] for r in results]
        failed = [s for s in statuses if s != 202]
        self.assertTrue(60 <= len(failed) <= 120, f"{len(failed)} of 300 failed")
        self.assertEqual(set(failed), {429, 500, 503, "reset"})
        for status, hdrs in results:
            if status == 429:
                self.assertEqual(hdrs["retry-after"], "2")
        reqs = self.sim.control("GET", "requests")
        self.assertEqual({r["fault"] for r in reqs} - {None},
                         {"chaos-429", "chaos-500", "chaos-503", "chaos-slow", "chaos-reset"})
        counts = self.sim.control("GET", "chaos")["counts"]
        self.assertEqual(sum(counts.values()), len(failed))
        self.assertGreater(counts["slow"], 0)
        self.assertEqual(len(self.sim.control("GET", "received")), statuses.count(202))
        self.sim.call("DELETE", "/_sim/chaos", auth=None)
        self.assertFalse(self.sim.control("GET", "chaos")["active"])
        self.assertEqual({outcome(self.sim, f"d{i}")[0] for i in range(30)}, {202})

    def test_slow_is_slower_than_slow_ms_and_not_accepted(self):
        self.sim.control("POST", "chaos", {"rate": 1, "kinds": ["slow"], "slow_ms": 300})
        t0 = time.monotonic()
        self.assertEqual(outcome(self.sim, "s")[0], 503)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        self.assertEqual(self.sim.control("GET", "received"), [])

    def test_same_seed_same_draws(self):
        runs = []
        for _ in range(2):
            self.sim.control("POST", "chaos", {"rate": 0.5, "seed": 42, "kinds": ["500", "503"]})
            runs.append([outcome(self.sim, "x")[0] for _ in range(40)])
        self.assertEqual(runs[0], runs[1])

    def test_rules_win_and_reset_stops_chaos(self):
        self.sim.control("POST", "chaos", {"rate": 1, "kinds": ["500"]})
        self.sim.control("POST", "faults", {"status": 400, "name": "first"})
        self.assertEqual(outcome(self.sim, "a")[0], 400)
        self.assertEqual(outcome(self.sim, "b")[0], 500)
        self.sim.control("POST", "reset")
        self.assertEqual(outcome(self.sim, "c")[0], 202)

    def test_bad_chaos_rejected(self):
        for conf in ({"rate": 2}, {"rate": "0.3"}, {"kinds": ["404"]}, {"kinds": []},
                     {"bogus": 1}, {"seed": -1}, [0.3]):
            status, _, _ = self.sim.call("POST", "/_sim/chaos", conf, auth=None)
            self.assertEqual(status, 400, conf)
        self.assertFalse(self.sim.control("GET", "chaos")["active"])


class TestChaosFromCommandLine(SimTestCase):
    args = ("--chaos", "1", "--seed", "3", "--chaos-retry-after", "4")

    def setUp(self):   # no reset: it would stop the chaos the command line set
        pass

    def test_cli_chaos(self):
        conf = self.sim.control("GET", "chaos")
        self.assertEqual((conf["active"], conf["rate"], conf["seed"], conf["retry_after"]),
                         (True, 1, 3, 4))
        self.assertNotIn(202, {outcome(self.sim, "x")[0] for _ in range(10)})


class TestReceivedLog(unittest.TestCase):
    def test_survives_a_restart(self):
        d = tempfile.mkdtemp(prefix="mpsim-rl-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "received.log")
        sim = Sim("--received-log", path)
        try:
            sim.control("POST", "faults", {"status": 503, "match": "refused"})
            self.assertEqual(sim.call("POST", "/v2/bulkevents",
                                      [batch(source_request_id="a"), batch()])[0], 202)
            self.assertEqual(sim.call("POST", "/v2/events",
                                      batch(source_request_id="refused"))[0], 503)
            sim.control("POST", "reset")   # the log is not the in-memory state
        finally:
            self.assertEqual(sim.stop(), 0)
        sim = Sim("--received-log", path)
        try:
            self.assertEqual(sim.call("POST", "/v2/events", batch(source_request_id="b"))[0], 202)
            with open(path) as f:
                self.assertEqual(f.read(), "a\n-\nb\n")
        finally:
            sim.stop()

    def test_receive_times(self):
        d = tempfile.mkdtemp(prefix="mpsim-rt-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "times.tsv")
        sim = Sim("--receive-times", path)
        try:
            sim.control("POST", "faults", {"status": 503, "match": "refused"})
            before = time.time_ns()
            self.assertEqual(sim.call("POST", "/v2/bulkevents",
                                      [batch(source_request_id="a"), batch()])[0], 202)
            self.assertEqual(sim.call("POST", "/v2/events",
                                      batch(source_request_id="refused"))[0], 503)
            self.assertEqual(sim.call("POST", "/v2/events", batch(source_request_id="b"))[0], 202)
            after = time.time_ns()
        finally:
            self.assertEqual(sim.stop(), 0)
        with open(path) as f:
            rows = [line.rstrip("\n").split("\t") for line in f]
        self.assertEqual([r[0] for r in rows], ["a", "-", "b"])   # accepted batches only
        times = [int(r[1]) for r in rows]
        self.assertEqual(times[0], times[1])   # one request, one receive time
        self.assertTrue(before <= times[0] <= times[2] <= after, (before, times, after))

    def test_same_port_after_restart(self):
        first = Sim()
        port = first.port
        first.call("POST", "/v2/events", batch())   # a connection in TIME_WAIT
        first.stop()
        proc = subprocess.Popen([sys.executable, SIM, "--port", str(port), "--key", KEY,
                                 "--secret", SECRET], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(proc.stdout.readline(),
                             f"mparticle-sim listening on 127.0.0.1:{port}\n")
        finally:
            proc.terminate()
            proc.wait(timeout=5)
            proc.stdout.close()


class TestRateLimit(SimTestCase):
    args = ("--rate-limit", "5")

    def test_rate_limit_429(self):
        status, hdrs, _ = self.post("/v2/bulkevents", [batch()] * 5)
        self.assertEqual(status, 202)
        self.assertEqual(hdrs["x-mp-rate-limit-percentage-used"], "100")
        status, hdrs, _ = self.post("/v2/bulkevents", [batch()] * 5)
        self.assertEqual(status, 429)
        self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
        self.assertEqual(hdrs["x-mp-rate-limit-exceeded"], "account")
        self.assertEqual(len(self.sim.control("GET", "received")), 5)
        time.sleep(0.5)
        self.assertEqual(self.post("/v2/events", batch())[0], 202)


class TestProcess(unittest.TestCase):
    def test_stdout_line_and_clean_signal_exit(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            sim = Sim()
            line = sim.proc.stdout.readline()
            self.assertEqual(line, f"mparticle-sim listening on 127.0.0.1:{sim.port}\n")
            self.assertEqual(sim.stop(sig), 0)


if __name__ == "__main__":
    unittest.main()
