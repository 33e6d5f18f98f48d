#!/usr/bin/env python3
"""Braze REST API simulator (POST /users/track) for relay's tests.

It listens on 127.0.0.1 and acts like a Braze REST endpoint
(rest.<instance>.braze.com): `Authorization: Bearer <key>` (401 when missing
or wrong), POST /users/track with {"attributes":[...],"events":[...],
"purchases":[...]}, checked as Braze does:

- the body is a JSON object whose only keys are the three arrays, not all
  empty, each at most --max-per-array (75) objects, or with --combined at
  most that many in total (Braze's newer rule): else 400
  {"message":"Max Input Length Exceeded"} or another fatal 400;
- each object has exactly one identifier of external_id, user_alias
  ({alias_name, alias_label}), braze_id, email (in an attributes object an
  "email" beside another identifier is the email attribute, as in Braze);
  events have a non-empty "name" and an ISO-8601 "time"; purchases have
  "product_id", a three-letter "currency", a numeric "price" and a "time";
  "properties", when present, is an object. An object that fails is a
  "minor error": the answer is still 201 {"message":"success",
  "errors":[{"type":"invalid ...","input_array":"events","index":N}]} and
  the request's other objects are processed.

Every answer carries x-ratelimit-limit, x-ratelimit-remaining and
x-ratelimit-reset (epoch seconds; lowercase names, as over HTTP/2, unless
--canonical-headers) from a fixed-window budget of --rate-limit requests per
--rate-window seconds (0: unlimited, reported as 1000000); when the budget is
used up the answer is 429 with Retry-After until the window ends.

Tests start it with `--port 0 --port-file F --key K` and use the control
API under /_sim/ (no auth):
  GET  /_sim/received   one JSON object per accepted Braze object:
                        {"array": "events", "object": {...}, "at_ms": ...}
  GET  /_sim/requests   every /users/track request: status, counts, fault,
                        auth, minor errors, at_ms
  GET  /_sim/stats      counts by status, accepted objects by array
  POST /_sim/faults     a rule or a list of rules (keys below); GET lists
                        them, DELETE clears them
  POST /_sim/ratelimit  {"limit": N, "window_s": S}: a new budget, from now
  POST /_sim/key        {"key": "..."}: the key that is valid from now on
  POST /_sim/reset      forget requests, objects and faults
A fault rule applies to the next `times` requests (-1: every one; default
1) whose body contains `match` (any, when absent): `delay_ms` before
answering; then `status` (an error status, with Retry-After: `retry_after`
on 429 and on 503 when given), or `object_error` (a minor-error type given
to every object whose JSON contains `match`, the others processed), or
`queued` (202 {"message":"queued"}, as during maintenance; the objects are
accepted). Python standard library only.
"""
import argparse
import json
import math
import re
import sys
import time

import simlib

ARRAYS = ("attributes", "events", "purchases")
IDENTIFIERS = ("external_id", "user_alias", "braze_id", "email")
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
                      r"(Z|[+-]\d{2}:?\d{2})$")
RULE_KEYS = {**simlib.RULE_KEYS, "object_error": str, "queued": bool}
UNLIMITED = 1000000


class Fatal(Exception):
    """The whole request is refused (400)."""


def object_problem(array, obj):
    """The minor-error type of one object, or None when Braze takes it."""
    if not isinstance(obj, dict):
        return "invalid object: not a JSON object"
    ids = [k for k in IDENTIFIERS if k in obj]
    if array == "attributes" and "email" in ids and len(ids) > 1:
        ids.remove("email")   # the email attribute of a user named otherwise
    if len(ids) != 1:
        return ("invalid identifier: one of 'external_id', 'user_alias', "
                f"'braze_id' or 'email' is required, got {len(ids)}")
    if ids[0] == "user_alias":
        ua = obj["user_alias"]
        if not (isinstance(ua, dict) and set(ua) == {"alias_name", "alias_label"}
                and all(isinstance(v, str) and v for v in ua.values())):
            return "invalid user_alias: needs a string alias_name and alias_label"
    elif not isinstance(obj[ids[0]], str) or not obj[ids[0]]:
        return f"invalid {ids[0]}: must be a non-empty string"
    if "properties" in obj and not isinstance(obj["properties"], dict):
        return "invalid properties: must be an object"
    if array == "attributes":
        return None
    t = obj.get("time")
    if not isinstance(t, str) or not ISO_TIME.match(t):
        return "invalid time: an ISO-8601 time is required"
    if array == "events":
        if not isinstance(obj.get("name"), str) or not obj["name"]:
            return "invalid name: a non-empty event name is required"
        return None
    if not isinstance(obj.get("product_id"), str) or not obj["product_id"]:
        return "invalid product_id: a non-empty string is required"
    cur = obj.get("currency")
    if not (isinstance(cur, str) and len(cur) == 3 and cur.isalpha()):
        return "invalid currency: a three-letter ISO 4217 code is required"
    price = obj.get("price")
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        return "invalid price: a number is required"
    q = obj.get("quantity", 1)
    if isinstance(q, bool) or not isinstance(q, int) or not 1 <= q <= 100:
        return "invalid quantity: a whole number from 1 to 100"
    return None


def parse_track(body, max_per_array, combined):
    """The three arrays of a /users/track body, or raise Fatal."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Fatal(f"malformed request body: {e}") from None
    if not isinstance(doc, dict):
        raise Fatal("malformed request body: not a JSON object")
    extra = sorted(set(doc) - set(ARRAYS))
    if extra:
        raise Fatal(f"malformed request body: unknown key {extra[0]!r}")
    arrays = {}
    for a in ARRAYS:
        v = doc.get(a, [])
        if not isinstance(v, list):
            raise Fatal(f"malformed request body: '{a}' must be an array")
        if len(v) > max_per_array:
            raise Fatal("Max Input Length Exceeded")
        arrays[a] = v
    total = sum(len(v) for v in arrays.values())
    if not total:
        raise Fatal("no attributes, events or purchases")
    if combined and total > max_per_array:
        raise Fatal("Max Input Length Exceeded")
    return arrays


def check_rule(r):
    if r.get("object_error") and not r.get("match"):
        raise ValueError('an "object_error" rule needs a "match"')
    if sum(bool(r.get(k)) for k in ("status", "object_error", "queued")) > 1:
        raise ValueError('a rule has at most one of "status", "object_error", "queued"')


def parse_rules(obj):
    return simlib.parse_rules(obj, RULE_KEYS, check_rule)


class State(simlib.State):
    """Everything the simulator remembers; guarded by one lock."""

    def __init__(self, key, limit, window_s):
        super().__init__()
        self.key = key
        self.set_ratelimit(limit, window_s)

    def set_ratelimit(self, limit, window_s):
        with self.lock:
            self.limit, self.window_s = limit, window_s
            self.window_end, self.used = time.time() + window_s, 0

    def take_budget(self):
        """(allowed, limit, remaining, end of the window in epoch seconds) for one
        request."""
        with self.lock:
            if self.limit <= 0:
                return True, UNLIMITED, UNLIMITED, time.time()
            now = time.time()
            if now >= self.window_end:
                periods = math.floor((now - self.window_end) / self.window_s) + 1
                self.window_end += periods * self.window_s
                self.used = 0
            ok = self.used < self.limit
            if ok:
                self.used += 1
            return ok, self.limit, self.limit - self.used, self.window_end

    def record(self, entry, accepted=()):
        with self.lock:
            at = self.log_request(entry)
            self.received.extend({"array": a, "object": o, "at_ms": at} for a, o in accepted)

    def stats(self):
        objs = {a: 0 for a in ARRAYS}
        for r in self.received:
            objs[r["array"]] += 1
        return {"requests": len(self.requests), "by_status": dict(self.by_status),
                "accepted": objs}


class Handler(simlib.Handler):
    server_version = "braze-sim/1.0"
    log_replies = json_control = True
    fault_rules = staticmethod(parse_rules)

    def crash_body(self, e):
        return {"message": f"simulator error: {e!r}"}

    def api(self, path):
        if path == "/users/track":
            self.track()
        else:
            self.read_body()
            self.reply(404, {"message": f"no such endpoint {path}"})

    def control_more(self, route, arg):
        st = self.server.state
        if route == ("POST", "ratelimit"):
            if not (isinstance(arg, dict) and isinstance(arg.get("limit"), int)
                    and isinstance(arg.get("window_s", 1), (int, float))
                    and arg.get("window_s", 1) > 0):
                return self.reply(400, {"error": 'want {"limit": N, "window_s": S}'})
            st.set_ratelimit(arg["limit"], arg.get("window_s", st.window_s))
            return self.reply(200, {"ok": True})
        if route == ("POST", "key"):
            if not (isinstance(arg, dict) and isinstance(arg.get("key"), str) and arg["key"]):
                return self.reply(400, {"error": 'want {"key": "..."}'})
            with st.lock:
                st.key = arg["key"]
            return self.reply(200, {"ok": True})
        return False

    # ---- /users/track ---------------------------------------------------
    def ratelimit_headers(self, limit, remaining, reset):
        names = (("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
                 if self.server.canonical_headers else
                 ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"))
        return list(zip(names, (limit, max(0, remaining), math.ceil(reset))))

    def track(self):
        st, srv = self.server.state, self.server
        body = self.read_body()
        entry = {"status": None, "fault": None, "auth": "ok", "counts": None, "errors": []}

        def answer(status, payload, headers=(), accepted=()):
            entry["status"] = status
            st.record(entry, accepted)
            self.reply(status, payload, headers)

        if body is None:
            return answer(400, {"message": "malformed request: bad Content-Length"})
        if self.command != "POST":
            return answer(405, {"message": "use POST"}, [("Allow", "POST")])
        scheme, _, key = self.headers.get("Authorization", "").partition(" ")
        with st.lock:
            valid = st.key
        if scheme.lower() != "bearer" or key.strip() != valid:
            entry["auth"] = "missing" if not key.strip() else "wrong"
            return answer(401, {"message": "Invalid API key: " + ("missing" if not key.strip()
                                                                 else "unknown key")})
        ok, limit, remaining, reset = st.take_budget()
        rl = self.ratelimit_headers(limit, remaining, reset)
        if not ok:
            wait = max(1, math.ceil(reset - time.time()))
            return answer(429, {"message": "API rate limit exceeded"},
                          rl + [("Retry-After", wait)])

        rule = st.take_fault(body)
        entry["fault"] = rule.get("name")
        simlib.pause(rule)
        status = rule.get("status")
        if status is not None:
            hdrs = list(rl) + simlib.retry_after(rule, busy=True)
            return answer(status, {"message": f'injected fault "{entry["fault"]}"'}, hdrs)

        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            return answer(400, {"message": f"Content-Type must be application/json, "
                                           f"got {ctype!r}"}, rl)
        try:
            arrays = parse_track(body, srv.max_per_array, srv.combined)
        except Fatal as e:
            return answer(400, {"message": str(e), "errors": [str(e)]}, rl)
        entry["counts"] = {a: len(v) for a, v in arrays.items()}
        accepted, errors = [], []
        match = rule.get("match")
        for a in ARRAYS:
            for i, obj in enumerate(arrays[a]):
                problem = object_problem(a, obj)
                if problem is None and rule.get("object_error"):
                    text = json.dumps(obj, ensure_ascii=False)
                    if match in text or match in json.dumps(
                            obj, ensure_ascii=False, separators=(",", ":")):
                        problem = rule["object_error"]
                if problem is None:
                    accepted.append((a, obj))
                else:
                    errors.append({"type": problem, "input_array": a, "index": i})
        entry["errors"] = errors
        if rule.get("queued"):
            return answer(202, {"message": "queued"}, rl, accepted)
        payload = {"message": "success"}
        for a in ARRAYS:
            if arrays[a]:
                payload[f"{a}_processed"] = sum(1 for x, _ in accepted if x == a)
        if errors:
            payload["errors"] = errors
        answer(srv.success_status, payload, rl, accepted)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Braze /users/track simulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--key", required=True, help="the valid REST API key")
    ap.add_argument("--port-file")
    ap.add_argument("--max-per-array", type=int, default=75)
    ap.add_argument("--combined", action="store_true",
                    help="at most --max-per-array objects in all three arrays together")
    ap.add_argument("--rate-limit", type=int, default=0,
                    help="requests per window (0 = unlimited)")
    ap.add_argument("--rate-window", type=float, default=3.0, help="seconds")
    ap.add_argument("--success-status", type=int, default=201,
                    help="status of a success (Braze's docs do not pin 200 or 201)")
    ap.add_argument("--canonical-headers", action="store_true",
                    help="send X-RateLimit-* instead of lowercase x-ratelimit-*")
    ap.add_argument("--log", help="append request log here instead of stderr")
    args = ap.parse_args(argv)

    server = simlib.make_server(args.host, args.port, Handler)
    server.max_per_array, server.combined = args.max_per_array, args.combined
    server.success_status = args.success_status
    server.canonical_headers = args.canonical_headers
    server.state = State(args.key, args.rate_limit, args.rate_window)
    return simlib.serve(server, args, "braze-sim")


if __name__ == "__main__":
    sys.exit(main())
