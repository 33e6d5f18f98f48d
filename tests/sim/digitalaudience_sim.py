#!/usr/bin/env python3
"""digitalAudience upload API simulator for relay's tests.

digitalAudience documents no public upload API that we found, so this
simulates the API relay ASSUMES (common/adapters/digitalaudience.c says the
same): every path and limit below is a flag, as every part of it is a
setting in relay.

  POST /v1/clients/<client>/uploads       (--path-prefix goes before it)
  Authorization: Bearer <token>           (401 when missing or wrong)
  Content-Type: application/json          (else 400)
  {"uploads":[<upload>, ...]}             (a non-empty array; more than
                                           --max-items or a body over
                                           --max-bytes: 413; not that: 400)

An upload is one of
  {"type":"match","partner":P,"dmp_id":D,"partner_id":I,"seen_at":ISO-UTC,
   "upload_id":U?}
  {"type":"crm","record_id":R,"hashes":{"<kind>_sha256":<64 lowercase hex>,
   ...},"upload_id":U?}
and is checked on its own: an unknown type or field, an empty id, a
seen_at that is not ISO-8601 UTC, a partner not in --partner (when given),
no hashes, a hash kind without the _sha256 suffix, or a value that is not
64 lowercase hex characters (a clear e-mail, a 40-character SHA-1) makes
it rejected; the others are stored. The answer is 200 {"accepted":n}, or
with rejections --partial-status (207) {"accepted":n,"rejected":[{"index":
i,"reason":"..."}]}.

Match pairs are stored per client and partner: a pair (dmp_id, partner_id)
sent twice is stored once, with the latest seen_at and how often it came.
CRM records are stored per client by record_id (the last upload wins).
Unknown clients (not in --client, when given) get 404.

Tests start it with `--port 0 --port-file F --token T` and use the control
API under /_sim/ (no auth):
  GET  /_sim/received   one JSON object per accepted upload:
                        {"client", "upload": {...}, "at_ms"}
  GET  /_sim/matches    {client: {partner: [{"dmp_id","partner_id",
                        "seen_at","times"}, ...]}}
  GET  /_sim/crm        {client: {record_id: {"hashes", "times"}}}
  GET  /_sim/requests   every upload request: status, client, uploads,
                        rejected, fault, auth, at_ms
  GET  /_sim/stats      counts by status, accepted and rejected uploads
  POST /_sim/faults     a rule or a list of rules; GET lists, DELETE clears
  POST /_sim/token      {"token": "..."}: the token valid from now on
  POST /_sim/reset      forget requests, uploads, pairs and faults
A fault rule applies to the next `times` requests (-1: every one; default
1) whose body contains `match` (any, when absent): `delay_ms` before
answering; then `status` (with Retry-After: `retry_after` on 429, and on
503 when given), or `reject` (that reason for every upload whose JSON
contains `match`, the others processed). Python standard library only.
"""
import argparse
import json
import re
import sys

import simlib

UPLOAD_PATH = re.compile(r"^/v1/clients/([^/]+)/uploads$")
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MATCH_KEYS = {"type", "partner", "dmp_id", "partner_id", "seen_at", "upload_id"}
CRM_KEYS = {"type", "record_id", "hashes", "upload_id"}
RULE_KEYS = {**simlib.RULE_KEYS, "reject": str}


class Fatal(Exception):
    """The whole request is refused: (status, message)."""


def nonempty(v):
    return isinstance(v, str) and v != ""


def upload_problem(up, partners):
    """Why one upload is rejected, or None when it is taken."""
    if not isinstance(up, dict):
        return "not a JSON object"
    kind = up.get("type")
    if kind == "match":
        extra = sorted(set(up) - MATCH_KEYS)
        if extra:
            return f"unexpected field {extra[0]!r} in a match upload"
        for k in ("partner", "dmp_id", "partner_id"):
            if not nonempty(up.get(k)):
                return f"{k} must be a non-empty string"
        if partners and up["partner"] not in partners:
            return f"unknown partner {up['partner']!r}"
        if not isinstance(up.get("seen_at"), str) or not ISO_UTC.match(up["seen_at"]):
            return "seen_at must be an ISO-8601 UTC time (…Z)"
    elif kind == "crm":
        extra = sorted(set(up) - CRM_KEYS)
        if extra:
            return f"unexpected field {extra[0]!r} in a crm upload"
        if not nonempty(up.get("record_id")):
            return "record_id must be a non-empty string"
        hashes = up.get("hashes")
        if not isinstance(hashes, dict) or not hashes:
            return "hashes must be a non-empty object"
        for k, v in hashes.items():
            if not k.endswith("_sha256"):
                return f"hash kind {k!r} does not end in _sha256"
            if not isinstance(v, str) or not SHA256_HEX.match(v):
                n = len(v) if isinstance(v, str) else 0
                return f"{k} is not a SHA-256 in lowercase hex (64 characters, got {n})"
    else:
        return f"unknown upload type {kind!r}"
    if "upload_id" in up and not nonempty(up["upload_id"]):
        return "upload_id must be a non-empty string"
    return None


def parse_uploads(body, max_items, max_bytes):
    if len(body) > max_bytes:
        raise Fatal(413, f"request body of {len(body)} bytes exceeds {max_bytes}")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Fatal(400, f"malformed request body: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"uploads"}:
        raise Fatal(400, 'the body must be {"uploads":[...]}')
    ups = doc["uploads"]
    if not isinstance(ups, list) or not ups:
        raise Fatal(400, "uploads must be a non-empty array")
    if len(ups) > max_items:
        raise Fatal(413, f"{len(ups)} uploads exceed {max_items} per request")
    return ups


def check_rule(r):
    if r.get("reject") and not r.get("match"):
        raise ValueError('a "reject" rule needs a "match"')
    if "status" in r and r.get("reject"):
        raise ValueError('a rule has at most one of "status", "reject"')


def parse_rules(obj):
    return simlib.parse_rules(obj, RULE_KEYS, check_rule)


class State(simlib.State):
    """Everything the simulator remembers; guarded by one lock."""

    def __init__(self, token):
        super().__init__()
        self.token = token

    def clear(self):
        super().clear()
        self.matches, self.crm = {}, {}
        self.rejected = 0

    def record(self, entry, client=None, accepted=()):
        with self.lock:
            at = self.log_request(entry)
            self.rejected += len(entry.get("rejected") or ())
            for up in accepted:
                self.received.append({"client": client, "upload": up, "at_ms": at})
                if up["type"] == "match":
                    pairs = self.matches.setdefault(client, {}).setdefault(up["partner"], {})
                    k = (up["dmp_id"], up["partner_id"])
                    p = pairs.setdefault(k, {"dmp_id": k[0], "partner_id": k[1],
                                             "seen_at": up["seen_at"], "times": 0})
                    p["times"] += 1
                    p["seen_at"] = max(p["seen_at"], up["seen_at"])
                else:
                    c = self.crm.setdefault(client, {})
                    times = c.get(up["record_id"], {}).get("times", 0)
                    c[up["record_id"]] = {"hashes": up["hashes"], "times": times + 1}

    def stats(self):
        return {"requests": len(self.requests), "by_status": dict(self.by_status),
                "accepted": len(self.received), "rejected": self.rejected}

    def snapshot(self, what):
        with self.lock:
            if what == "matches":
                return {c: {p: list(pairs.values()) for p, pairs in by_p.items()}
                        for c, by_p in self.matches.items()}
            if what == "crm":
                return json.loads(json.dumps(self.crm))
        return super().snapshot(what)


class Handler(simlib.Handler):
    server_version = "digitalaudience-sim/1.0"
    log_replies = json_control = True
    snapshots = simlib.Handler.snapshots + ("matches", "crm")
    fault_rules = staticmethod(parse_rules)

    def crash_body(self, e):
        return {"message": f"simulator error: {e!r}"}

    def api(self, path):
        prefix = self.server.path_prefix
        m = UPLOAD_PATH.match(path[len(prefix):]) if path.startswith(prefix) else None
        if m:
            self.upload(m.group(1))
        else:
            self.read_body()
            self.reply(404, {"message": f"no such endpoint {path}"})

    def control_more(self, route, arg):
        if route == ("POST", "token"):
            if not (isinstance(arg, dict) and nonempty(arg.get("token"))):
                return self.reply(400, {"error": 'want {"token": "..."}'})
            with self.server.state.lock:
                self.server.state.token = arg["token"]
            return self.reply(200, {"ok": True})
        return False

    # ---- uploads --------------------------------------------------------
    def upload(self, client):
        st, srv = self.server.state, self.server
        body = self.read_body()
        entry = {"status": None, "client": client, "fault": None, "auth": "ok",
                 "uploads": None, "rejected": []}

        def answer(status, payload, headers=(), accepted=()):
            entry["status"] = status
            st.record(entry, client, accepted)
            self.reply(status, payload, headers)

        if body is None:
            return answer(400, {"message": "malformed request: bad Content-Length"})
        if self.command != "POST":
            return answer(405, {"message": "use POST"}, [("Allow", "POST")])
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        with st.lock:
            valid = st.token
        if scheme.lower() != "bearer" or token.strip() != valid:
            entry["auth"] = "missing" if not token.strip() else "wrong"
            return answer(401, {"message": "invalid or missing API token"})
        if srv.clients and client not in srv.clients:
            return answer(404, {"message": f"unknown client {client!r}"})

        rule = st.take_fault(body)
        entry["fault"] = rule.get("name")
        simlib.pause(rule)
        status = rule.get("status")
        if status is not None:
            return answer(status, {"message": f'injected fault "{entry["fault"]}"'},
                          simlib.retry_after(rule, busy=True))

        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            return answer(400, {"message": f"Content-Type must be application/json, "
                                           f"got {ctype!r}"})
        try:
            ups = parse_uploads(body, srv.max_items, srv.max_bytes)
        except Fatal as e:
            return answer(e.args[0], {"message": e.args[1]})
        entry["uploads"] = len(ups)
        accepted, rejected = [], []
        for i, up in enumerate(ups):
            problem = upload_problem(up, srv.partners)
            if problem is None and rule.get("reject"):
                text = json.dumps(up, ensure_ascii=False)
                compact = json.dumps(up, ensure_ascii=False, separators=(",", ":"))
                if rule["match"] in text or rule["match"] in compact:
                    problem = rule["reject"]
            if problem is None:
                accepted.append(up)
            else:
                rejected.append({"index": i, "reason": problem})
        entry["rejected"] = rejected
        payload = {"accepted": len(accepted)}
        if rejected:
            payload["rejected"] = rejected
        answer(srv.partial_status if rejected else 200, payload, (), accepted)


def main(argv=None):
    ap = argparse.ArgumentParser(description="digitalAudience upload API simulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--token", required=True, help="the valid API token")
    ap.add_argument("--port-file")
    ap.add_argument("--client", action="append", default=[],
                    help="a known client id (repeatable; none: any)")
    ap.add_argument("--partner", action="append", default=[],
                    help="a known partner DMP (repeatable; none: any)")
    ap.add_argument("--path-prefix", default="", help="before /v1/clients/...")
    ap.add_argument("--max-items", type=int, default=1000)
    ap.add_argument("--max-bytes", type=int, default=4 * 1024 * 1024)
    ap.add_argument("--partial-status", type=int, default=207,
                    help="status of an answer with rejected uploads (200 or 207)")
    ap.add_argument("--log", help="append request log here instead of stderr")
    args = ap.parse_args(argv)

    server = simlib.make_server(args.host, args.port, Handler)
    server.clients, server.partners = set(args.client), set(args.partner)
    server.path_prefix = args.path_prefix.rstrip("/")
    server.max_items, server.max_bytes = args.max_items, args.max_bytes
    server.partial_status = args.partial_status
    server.state = State(args.token)
    return simlib.serve(server, args, "digitalaudience-sim")


if __name__ == "__main__":
    sys.exit(main())
