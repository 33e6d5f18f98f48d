#!/usr/bin/env python3
"""The engine's hard cases against every platform's simulator (scenario 0018).

    conformance.py --bootstrap BS --src SRC --bin BUILD/workers --work DIR
                   [--only P,P]

For each platform of PLATFORMS (one after the other) it starts the
platform's simulator (tests/sim/<p>_sim.py) and, per case, a relay-deliver
of its own on a fresh topic out.<p>.<case> (created by the wrapper, 3
partitions) and a fresh consumer group, with short timings:

  timeout  the first record is answered after 2 s (delay_ms 2000, once),
           longer than deliver.http_timeout_ms 1000: every record arrives,
           none is dead-lettered, and only that record may arrive twice
           (the simulator may have taken the request the client gave up
           on); it is produced alone, so it is alone in that request;
  order    3 persons x 4 records keyed by person, the first record of
           person 0 answered 503 twice: every record arrives once, each
           person's in the order produced;
  outage   every request answered 503 for ~4 s while records are
           produced, then the fault is cleared: nothing is dead-lettered,
           nothing arrives during the outage, every record arrives once
           after it, and relay_platform_state was 1 during it and 0 after;
  redirect the same with every request answered 302 (an endpoint moved
           or mistyped: a misconfigured platform, not wrong records).

A platform is a row of PLATFORMS: how to start its simulator, the -X
settings and environment of relay-deliver, rec(person, seq) -> (Outbound
envelope, token) and got(/_sim/received) -> tokens in arrival order, a
token being something the platform carries through unchanged that names
the record. A platform whose simulator, adapter or config is not in the
tree yet is skipped with a "skip" line; known failures (KNOWN) are printed
loudly and do not fail the run. Every other failure prints "not ok -
<platform> <case>: ..." and the exit status is 1. Every wait is bounded.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition

A = None            # parsed arguments
RUN = uuid.uuid4().hex[:8]  # tells this run's records from any other's
NS = uuid.UUID("6f1d3a52-0b8e-4c1b-9d0e-0c0ffee00018")
SHORT = {"deliver.http_timeout_ms": 1000, "deliver.backoff_base_ms": 100,
         "deliver.backoff_max_ms": 400, "deliver.probe_base_ms": 200,
         "deliver.probe_max_ms": 800, "deliver.batch_wait_ms": 50}
CASES = ("timeout", "order", "outage", "redirect")
# (platform, case) pairs that fail for a known reason: reported, not failed.
KNOWN = {}


def envelope(p, case, i, j, idtype, idvalue, name, attrs, **more):
    """An Outbound envelope of platform p for person i's record j."""
    rec = {"event_id": str(uuid.uuid5(NS, f"{RUN}/{p}/{case}/{i}/{j}")),
           "occurred_at": 1764064860000 + 10 * i + j, "tenant": "acme",
           "source": "conformance", "connection": f"acme-conformance-{p}",
           "destination": p, "environment": "production",
           "identity_type": idtype, "identity_value": idvalue,
           "event_name": name, "event_category": None,
           "attributes": attrs, "user_attributes": {}}
    rec.update(more)
    return rec


def person(case, i):
    return f"{RUN}-{case}-p{i}"


def ref(case, i, j):
    return f"ref-{RUN}-{case}-{i}-{j}"


# ---- the platforms -------------------------------------------------------
# Each: sim (file), sim_args(work), env, X (settings beside SHORT), rec,
# got, and optionally setup(sim_url) run once the simulator is up, and cfg
# (text of a config when deploy/config/deliver-<p>.cfg is not there yet).

def rec_mparticle(case, i, j):
    r = envelope("mparticle", case, i, j, "customer_id", person(case, i),
                 "Points Added", {"seq": j}, event_category="other")
    return r, r["event_id"]


def rec_braze(case, i, j):
    t = ref(case, i, j)
    return envelope("braze", case, i, j, "external_id", person(case, i),
                    "Coupon Issued", {"ref": t}), t


def rec_webhook(case, i, j):
    r = envelope("webhook", case, i, j, "customer_id", person(case, i),
                 "Points Added", {"seq": j})
    return r, r["event_id"]


def rec_cmcdp(case, i, j):
    t = ref(case, i, j)
    return envelope("cmcdp", case, i, j, "customer_id", person(case, i),
                    "Points Added", {"ref": t}), t


def rec_antavo(case, i, j):
    t = ref(case, i, j)
    return envelope("antavo", case, i, j, "customer_id", person(case, i),
                    "point_add", {"ref": t, "points": j + 1}), t


def engage_email(case, i):
    return f"{case}{i}.{RUN}@example.com"


def rec_mappengage(case, i, j):
    email, aud = engage_email(case, i), f"{RUN}-{case}-s{j}"
    r = envelope("mappengage", case, i, j, "email", email, None, {},
                 identities={"email": email},
                 operations=[{"op": "membership.add", "target": aud, "attributes": {}}])
    return r, f"{email}|relay-{aud}"


def rec_eagleeye(case, i, j):
    t, wallet = ref(case, i, j), person(case, i)
    r = envelope("eagleeye", case, i, j, "wallet_id", wallet, None, {},
                 identities={"wallet_id": wallet},
                 operations=[{"op": "reward.issue", "target": "CAMP-1",
                              "attributes": {"ref": t}}])
    return r, t


def rec_digitalaudience(case, i, j):
    t = ref(case, i, j)
    r = envelope("digitalaudience", case, i, j, "dmp_cookie_id", person(case, i),
                 None, {}, identities={"dmp_cookie_id": person(case, i),
                                       "partner_user_id": t},
                 operations=[{"op": "match.upload", "target": "P1", "attributes": {}}])
    return r, t


def got_eagleeye(rs):
    return [(r.get("properties") or {}).get("ref") for r in rs if r.get("kind") == "token"]


def setup_eagleeye(sim):
    wallets = {person(c, i): {} for c in CASES for i in range(5)}
    http("POST", sim + "/_sim/wallets", wallets)


def hits_mappengage(rs, name, match):
    """mappengage_sim.py logs a fault as a bool, not the rule's name: count
    the faulted person's requests instead: 503s, or for the slow answer
    the requests sent again (the one given up on is sent twice)."""
    mine = [r["path"] + "?" + r.get("query", "") for r in rs if match in r.get("query", "")]
    if name == "busy":
        return sum(1 for r in rs if match in r.get("query", "") and r.get("status") == 503)
    return sum(mine.count(q) - 1 for q in set(mine))


def setup_mappengage(sim):
    http("POST", sim + "/_sim/recipients",
         {"emails": [engage_email(c, i) for c in CASES for i in range(5)]})


CM_TENANT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
CM_POINTS = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
WH_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

PLATFORMS = {
    "mparticle": dict(
        sim_args=["--key", "it-key", "--secret", "it-secret"],
        env={"RELAY_MPARTICLE_API_KEY": "it-key", "RELAY_MPARTICLE_API_SECRET": "it-secret"},
        X=lambda s: {"mparticle.url": s + "/v2"},
        rec=rec_mparticle, got=lambda rs: [r["batch"].get("source_request_id") for r in rs]),
    "braze": dict(
        sim_args=["--key", "it-key"], env={"RELAY_BRAZE_API_KEY": "it-key"},
        X=lambda s: {"braze.url": s},
        rec=rec_braze,
        got=lambda rs: [(r["object"].get("properties") or {}).get("ref") for r in rs]),
    "webhook": dict(
        sim_args=["--secret", WH_SECRET], env={"RELAY_WEBHOOK_SECRET": WH_SECRET},
        X=lambda s: {"webhook.url": s + "/hooks/relay"},
        rec=rec_webhook, got=lambda rs: [r["event"]["event_id"] for r in rs]),
    "cmcdp": dict(
        sim_args=["--tenant", CM_TENANT, "--token", "it-token", "--no-query-token",
                  "--event-type", f"Points Added={CM_POINTS}"],
        env={"RELAY_CMCDP_PRODUCT_TOKEN": "it-token"},
        X=lambda s: {"cmcdp.url": s, "cmcdp.tenant_id": CM_TENANT,
                     "cmcdp.event_types": f"Points Added={CM_POINTS}"},
        rec=rec_cmcdp, got=lambda rs: [r["event"].get("ref") for r in rs]),
    "antavo": dict(
        sim_args=["--api-key", "it-antavo-key", "--api-secret", "it-antavo-secret"],
        env={"RELAY_ANTAVO_API_KEY": "it-antavo-key",
             "RELAY_ANTAVO_API_SECRET": "it-antavo-secret"},
        X=lambda s: {"antavo.url": s},
        rec=rec_antavo, got=lambda rs: [r["event"]["data"].get("ref") for r in rs]),
    "mappengage": dict(
        sim_args=["--user", "relay-api", "--password", "pw1", "--domain",
                  "engage.it.example", "--default-group", "1000"],
        env={"RELAY_MAPPENGAGE_PASSWORD": "pw1"},
        X=lambda s: {"mappengage.url": s + "/api/rest/v19",
                     "mappengage.host": "engage.it.example"},
        setup=setup_mappengage, rec=rec_mappengage, hits=hits_mappengage,
        match=lambda t: t.split("|")[0],  # the email: faults match the query
        got=lambda rs: [f'{m["email"]}|{m["group"]}' for m in rs["memberships"]
                        if m["op"] == "add"]),
    "eagleeye": dict(
        sim_args=["--client-id", "it-client", "--secret", "it-ee-secret"],
        env={"RELAY_EAGLEEYE_CLIENT_SECRET": "it-ee-secret"},
        X=lambda s: {"eagleeye.url": s, "eagleeye.client_id": "it-client"},
        setup=setup_eagleeye, rec=rec_eagleeye, got=got_eagleeye),
    "digitalaudience": dict(
        sim_args=["--token", "it-da-token", "--client", "acme", "--partner", "P1"],
        env={"RELAY_DIGITALAUDIENCE_API_TOKEN": "it-da-token"},
        X=lambda s: {"digitalaudience.url": s, "digitalaudience.client_id": "acme"},
        rec=rec_digitalaudience,
        got=lambda rs: [r["upload"].get("partner_id") for r in rs
                        if r["upload"].get("type") == "match"]),
}

# A config for a platform whose deploy/config/deliver-<p>.cfg has not
# landed yet: the engine's defaults and the platform's section from -X.
FALLBACK_CFG = """log = { level = "info"; };
schemas = { manifest = "schemas/manifest.cfg"; };
deliver = { platform = "%s"; max_attempts = 5; breaker_failures = 3;
            max_outage_ms = 0; max_in_flight = "4"; };
kafka = { bootstrap_servers = "127.0.0.1:9092"; auto_offset_reset = "earliest"; };
"""


# ---- plumbing ------------------------------------------------------------

class CaseFailed(Exception):
    pass


def http(method, url, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw.strip() else None


def wait_until(secs, fn, step=0.1):
    """fn() until truthy, at most secs seconds; its last value."""
    end = time.monotonic() + secs
    while True:
        v = fn()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


class Platform:
    def __init__(self, name, row):
        self.name, self.row = name, row
        self.sim_proc = self.sim = None
        self.procs = []

    def missing(self):
        for f in (f"tests/sim/{self.name}_sim.py", f"common/adapters/{self.name}.c"):
            if not os.path.exists(os.path.join(A.src, f)):
                return f
        return None

    def start_sim(self):
        port_file = os.path.join(A.work, f"{self.name}-sim.port")
        log = os.path.join(A.work, f"{self.name}-sim.log")
        self.sim_proc = subprocess.Popen(
            [sys.executable, os.path.join(A.src, "tests/sim", f"{self.name}_sim.py"),
             "--port", "0", "--port-file", port_file, "--log", log, *self.row["sim_args"]],
            stdout=subprocess.DEVNULL, stderr=open(log, "a"))
        ok = wait_until(10, lambda: os.path.exists(port_file) and open(port_file).read().strip())
        if not ok:
            raise CaseFailed("the simulator did not start (see %s)" % log)
        self.sim = "http://127.0.0.1:%s" % open(port_file).read().strip()
        if "setup" in self.row:
            self.row["setup"](self.sim)

    def config(self):
        path = os.path.join(A.src, "deploy/config", f"deliver-{self.name}.cfg")
        if os.path.exists(path):
            return path
        path = os.path.join(A.work, f"deliver-{self.name}.cfg")
        with open(path, "w") as f:
            f.write(FALLBACK_CFG % self.name)
        print(f"# {self.name}: no deploy/config/deliver-{self.name}.cfg yet, using {path}")
        return path

    def start_deliver(self, case):
        log = os.path.join(A.work, f"{self.name}-{case}-deliver.log")
        X = {"kafka.bootstrap.servers": A.bootstrap, "deliver.topic": f"out.{self.name}.{case}",
             "deliver.dlq_topic": f"dlq.{self.name}",
             "deliver.group_id": f"conformance-{self.name}-{case}-{RUN}",
             "admin.address": "127.0.0.1", "admin.port": -1,
             **SHORT, **self.row["X"](self.sim)}
        argv = [os.path.join(A.bin, "relay-deliver"), "-c", self.config()]
        for k, v in X.items():
            argv += ["-X", f"{k}={v}"]
        proc = subprocess.Popen(argv, cwd=A.src, env={**os.environ, **self.row["env"]},
                                stdout=open(log, "a"), stderr=subprocess.STDOUT)
        self.procs.append(proc)

        def port():
            if proc.poll() is not None:
                return "exited"
            m = re.findall(r'serving /metrics[^"]* on [0-9.]*:([0-9]+)', open(log).read())
            return m[-1] if m else None
        p = wait_until(20, port)
        if p in (None, "exited"):
            tail = open(log).read()[-1500:]
            raise CaseFailed(f"relay-deliver {'exited' if p else 'has no admin endpoint'}: {tail}")
        return proc, f"http://127.0.0.1:{p}", log

    def stop(self, proc):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for p in self.procs:
            self.stop(p)
        if self.sim_proc:
            self.sim_proc.terminate()
            try:
                self.sim_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.sim_proc.kill()

    # -- simulator and Kafka views --
    def fault(self, rule):
        http("POST", self.sim + "/_sim/faults", rule)

    def clear_faults(self):
        http("DELETE", self.sim + "/_sim/faults")

    def tokens(self):
        return self.row["got"](http("GET", self.sim + "/_sim/received"))

    def fault_hits(self, name, match):
        """How often the fault rule NAME (matching MATCH) was applied."""
        rs = http("GET", self.sim + "/_sim/requests")
        if "hits" in self.row:
            return self.row["hits"](rs, name, match)
        return sum(1 for r in rs if r.get("fault") == name)

    def produce(self, case, recs):
        lines = "".join(json.dumps(r) + "\n" for r in recs)
        p = subprocess.run([os.path.join(A.bin, "relayctl"), "-b", A.bootstrap, "produce",
                            f"out.{self.name}.{case}", "-k", "identity_value",
                            "-S", f"out.{self.name}-value"],
                           input=lines.encode(), capture_output=True, timeout=30)
        if p.returncode != 0:
            raise CaseFailed(f"relayctl produce failed: {p.stderr.decode()[-500:]}")

    def dlq_end(self):
        """dlq.<p>'s end offset; retried for 15 s (a topic just created may
        not have its leader in this client's metadata yet)."""
        c = Consumer({"bootstrap.servers": A.bootstrap, "group.id": f"conformance-peek-{RUN}"})
        end = time.monotonic() + 15
        try:
            while True:
                try:
                    return c.get_watermark_offsets(TopicPartition(f"dlq.{self.name}", 0),
                                                   timeout=5)[1]
                except KafkaException as e:
                    if time.monotonic() > end:
                        raise CaseFailed(f"end offset of dlq.{self.name}: {e}")
                    time.sleep(0.5)
        finally:
            c.close()


def metric_state(admin, platform):
    try:
        with urllib.request.urlopen(admin + "/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("relay_platform_state") and f'platform="{platform}"' in line:
            return float(line.split()[-1])
    return None


# ---- the cases -----------------------------------------------------------

class Case:
    """The records of one case: token -> (person, seq), in produce order."""

    def __init__(self, pf, case, persons, seqs):
        self.pf, self.case = pf, case
        self.recs, self.of = {}, {}
        for j in range(seqs):
            for i in range(persons):
                r, t = pf.row["rec"](case, i, j)
                self.recs[(i, j)] = r
                self.of[t] = (i, j)

    def token(self, i, j):
        return next(t for t, ij in self.of.items() if ij == (i, j))

    def arrived(self):
        """(person, seq) of this case's records, in arrival order."""
        return [self.of[t] for t in self.pf.tokens() if t in self.of]

    def all_arrived(self):
        a = self.arrived()
        return set(a) == set(self.of.values()) and a

    def check_order(self, a):
        for i in {i for i, _ in self.of.values()}:
            seqs = [j for p, j in a if p == i]
            firsts = [j for k, j in enumerate(seqs) if j not in seqs[:k]]
            if firsts != sorted(firsts):
                raise CaseFailed(f"person {i}'s records arrived in the order {seqs}")

    def check_once(self, a, may_repeat=()):
        counts = {ij: a.count(ij) for ij in self.of.values()}
        missing = [ij for ij, n in counts.items() if n == 0]
        if missing:
            raise CaseFailed(f"never arrived: {missing} (arrived: {a})")
        extra = {ij: n for ij, n in counts.items()
                 if n > (2 if ij in may_repeat else 1)}
        if extra:
            raise CaseFailed(f"arrived more often than allowed (may repeat once: "
                             f"{list(may_repeat)}): {extra}")


def case_timeout(pf, admin):
    c = Case(pf, "timeout", 3, 2)
    first = pf.row.get("match", lambda t: t)(c.token(0, 0))
    pf.fault({"name": "slow", "delay_ms": 2000, "times": 1, "match": first})
    t0 = time.monotonic()
    pf.produce("timeout", [c.recs[(0, 0)]])
    # Alone on its topic, so alone in the request the client gives up on.
    if not wait_until(15, lambda: (0, 0) in c.arrived()):
        raise CaseFailed("the record answered after the timeout never arrived")
    took = time.monotonic() - t0
    pf.produce("timeout", [r for ij, r in c.recs.items() if ij != (0, 0)])
    a = wait_until(15, c.all_arrived)
    if not a:
        raise CaseFailed(f"not every record arrived: {c.arrived()}")
    time.sleep(0.5)
    a = c.arrived()
    c.check_once(a, may_repeat=[(0, 0)])
    c.check_order(a)
    # The simulator logs the slow answer when it is given, 2 s after the
    # request came: the client gave up on it at 1 s and may be done sooner.
    wait_until(5, lambda: pf.fault_hits("slow", first) >= 1)
    hits = pf.fault_hits("slow", first)
    if hits != 1:
        raise CaseFailed(f"the slow answer was given {hits} times, want 1")
    if took < 0.9:
        raise CaseFailed(f"the slow record arrived after {took:.2f} s: the timeout did not happen")
    return f"slow record arrived {a.count((0, 0))}x after {took:.1f} s, the other 5 once"


def case_order(pf, admin):
    c = Case(pf, "order", 3, 4)
    busy = pf.row.get("match", lambda t: t)(c.token(0, 0))
    pf.fault({"name": "busy", "status": 503, "times": 2, "match": busy})
    pf.produce("order", list(c.recs.values()))
    a = wait_until(20, c.all_arrived)
    if not a:
        raise CaseFailed(f"not every record arrived: {c.arrived()}")
    time.sleep(0.5)
    a = c.arrived()
    c.check_once(a)
    c.check_order(a)
    hits = pf.fault_hits("busy", busy)
    if hits != 2:
        raise CaseFailed(f"the 503 was answered {hits} times, want 2")
    return "12 records once each, every person's in order, after two 503s"


def case_outage(pf, admin, case="outage", status=503):
    c = Case(pf, case, 2, 3)
    pf.fault({"name": "down", "status": status, "times": -1})
    t0 = time.monotonic()
    recs = list(c.recs.values())
    pf.produce(case, recs[:3])
    opened = wait_until(8, lambda: metric_state(admin, pf.name) == 1)
    pf.produce(case, recs[3:])
    time.sleep(max(0, 4 - (time.monotonic() - t0)))
    during = c.arrived()
    pf.clear_faults()
    if not opened:
        raise CaseFailed(f"relay_platform_state never 1 during the outage "
                         f"(now {metric_state(admin, pf.name)})")
    if during:
        raise CaseFailed(f"records arrived while every request was answered {status}: {during}")
    a = wait_until(20, c.all_arrived)
    if not a:
        raise CaseFailed(f"after the outage not every record arrived: {c.arrived()}")
    time.sleep(0.5)
    a = c.arrived()
    c.check_once(a)
    c.check_order(a)
    if not wait_until(10, lambda: metric_state(admin, pf.name) == 0):
        raise CaseFailed(f"relay_platform_state not back to 0 "
                         f"(is {metric_state(admin, pf.name)})")
    return f"state 1 during the outage, 0 after; 6 records once each after {time.monotonic() - t0:.1f} s"


def case_redirect(pf, admin):
    return case_outage(pf, admin, "redirect", 302)


CASE_FUNCS = {"timeout": case_timeout, "order": case_order, "outage": case_outage,
              "redirect": case_redirect}


def run_platform(name, row, results):
    pf = Platform(name, row)
    miss = pf.missing()
    if miss:
        print(f"skip - {name}: {miss} is not there yet")
        results.append((name, "*", "skip"))
        return
    try:
        try:
            pf.start_sim()
        except (CaseFailed, OSError) as e:
            for case in CASES:
                report(results, name, case, False, f"simulator: {e}")
            return
        for case in CASES:
            t0 = time.monotonic()
            proc = None
            try:
                dlq0 = pf.dlq_end()
                proc, admin, log = pf.start_deliver(case)
                detail = CASE_FUNCS[case](pf, admin)
                dlq1 = pf.dlq_end()
                if dlq1 != dlq0:
                    raise CaseFailed(f"{dlq1 - dlq0} record(s) dead-lettered in dlq.{name}")
                if proc.poll() is not None:
                    raise CaseFailed(f"relay-deliver exited ({proc.returncode})")
                report(results, name, case, True, f"{detail} ({time.monotonic() - t0:.1f} s)")
            except (CaseFailed, KafkaException, OSError, ValueError, KeyError, TypeError) as e:
                report(results, name, case, False, f"{type(e).__name__ if not isinstance(e, CaseFailed) else ''}{e}")
                if proc is not None:
                    show_log(os.path.join(A.work, f"{name}-{case}-deliver.log"))
            finally:
                if proc is not None:
                    pf.stop(proc)
                try:
                    pf.clear_faults()
                except OSError:
                    pass
    finally:
        pf.stop_all()


def show_log(path, n=25):
    try:
        lines = open(path).read().splitlines()[-n:]
    except OSError:
        return
    print(f"#   ----- {os.path.basename(path)} (last {len(lines)} lines)")
    for line in lines:
        print("#   " + line[:300])


def report(results, platform, case, passed, detail):
    if passed:
        print(f"ok - {platform} {case}: {detail}")
        results.append((platform, case, "ok"))
    elif (platform, case) in KNOWN:
        print(f"!!!! KNOWN FAILURE - {platform} {case}: {detail}")
        print(f"!!!!   {KNOWN[(platform, case)]}")
        results.append((platform, case, "known"))
    else:
        print(f"not ok - {platform} {case}: {detail}")
        results.append((platform, case, "FAIL"))
    sys.stdout.flush()


def main():
    global A
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--only", default="", help="comma-separated platforms")
    A = ap.parse_args()
    only = [p for p in A.only.split(",") if p]
    results, t0 = [], time.monotonic()
    for name, row in PLATFORMS.items():
        if not only or name in only:
            run_platform(name, row, results)
    failed = [r for r in results if r[2] == "FAIL"]
    print(f"# {sum(r[2] == 'ok' for r in results)} ok, {len(failed)} failed, "
          f"{sum(r[2] == 'known' for r in results)} known failures, "
          f"{sum(r[2] == 'skip' for r in results)} platforms skipped, "
          f"{time.monotonic() - t0:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
