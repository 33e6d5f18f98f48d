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
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARRAYS = ("attributes", "events", "purchases")
IDENTIFIERS = ("external_id", "user_alias", "braze_id", "email")
ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
                      r"(Z|[+-]\d{2}:?\d{2})$")
RULE_KEYS = {"status": int, "times": int, "match": str, "retry_after": int,
             "delay_ms": int, "object_error": str, "queued": bool, "name": str}
MAX_READ_BYTES = 64 * 1024 * 1024
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


def parse_rules(obj):
    rules = obj if isinstance(obj, list) else [obj]
    out = []
    for r in rules:
        if not isinstance(r, dict):
            raise ValueError("each fault rule must be a JSON object")
        for key, val in r.items():
            want = RULE_KEYS.get(key)
            if want is None:
                raise ValueError(f'unknown fault rule key "{key}"')
            if not isinstance(val, want) or (want is int and isinstance(val, bool)):
                raise ValueError(f'fault rule key "{key}" must be {want.__name__}')
        if r.get("times", 1) < -1:
            raise ValueError('"times" must be -1 (forever) or >= 0')
        if "status" in r and not 100 <= r["status"] <= 599:
            raise ValueError('"status" must be an HTTP status code')
        if r.get("object_error") and not r.get("match"):
            raise ValueError('an "object_error" rule needs a "match"')
        if sum(bool(r.get(k)) for k in ("status", "object_error", "queued")) > 1:
            raise ValueError('a rule has at most one of "status", "object_error", "queued"')
        out.append(dict(r))
    return out


class State:
    """Everything the simulator remembers; guarded by one lock."""

    def __init__(self, key, limit, window_s):
        self.lock = threading.Lock()
        self.key = key
        self.rule_seq = 0
        self.set_ratelimit(limit, window_s)
        self.reset()

    def reset(self):
        with self.lock:
            self.received, self.requests, self.faults = [], [], []
            self.by_status = {}

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

    def add_faults(self, rules):
        with self.lock:
            for r in rules:
                self.rule_seq += 1
                r.setdefault("name", f"rule{self.rule_seq}")
                r["remaining"] = r.pop("times", 1)
                self.faults.append(r)

    def take_fault(self, body):
        with self.lock:
            for r in self.faults:
                if r["remaining"] == 0:
                    continue
                if "match" in r and r["match"].encode() not in body:
                    continue
                if r["remaining"] > 0:
                    r["remaining"] -= 1
                return dict(r)
        return None

    def record(self, entry, accepted=()):
        with self.lock:
            at = int(time.time() * 1000)
            entry["at_ms"] = at
            self.requests.append(entry)
            key = str(entry["status"])
            self.by_status[key] = self.by_status.get(key, 0) + 1
            self.received.extend({"array": a, "object": o, "at_ms": at} for a, o in accepted)

    def snapshot(self, what):
        with self.lock:
            if what == "stats":
                objs = {a: 0 for a in ARRAYS}
                for r in self.received:
                    objs[r["array"]] += 1
                return {"requests": len(self.requests), "by_status": dict(self.by_status),
                        "accepted": objs}
            if what == "faults":
                return [dict(r) for r in self.faults]
            return list(getattr(self, what))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "braze-sim/1.0"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=None, headers=()):
        data = json.dumps(body).encode() if body is not None else b""
        with self.server.state.lock:
            self.server.log_file.write(f"{self.command} {self.path} {status}\n")
            self.server.log_file.flush()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, val in headers:
            self.send_header(name, str(val))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = self.headers.get("Content-Length")
        try:
            n = int(length) if length is not None else 0
        except ValueError:
            n = -1
        if n < 0 or n > MAX_READ_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(n)

    def route(self):
        path = self.path.split("?", 1)[0]
        try:
            if path.startswith("/_sim/"):
                self.control(path)
            elif path == "/users/track":
                self.track()
            else:
                self.read_body()
                self.reply(404, {"message": f"no such endpoint {path}"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:   # a simulator bug must not leave the client hanging
            self.close_connection = True
            self.reply(500, {"message": f"simulator error: {e!r}"})
            raise

    do_GET = do_POST = do_PUT = do_DELETE = route

    # ---- control API ----------------------------------------------------
    def control(self, path):
        st = self.server.state
        body = self.read_body() or b""
        route = (self.command, path[len("/_sim/"):])
        try:
            arg = json.loads(body) if body else None
        except ValueError as e:
            return self.reply(400, {"error": f"not JSON: {e}"})
        if route in {("GET", "received"), ("GET", "requests"), ("GET", "stats"),
                     ("GET", "faults")}:
            return self.reply(200, st.snapshot(route[1]))
        if route == ("POST", "reset"):
            st.reset()
            return self.reply(200, {"ok": True})
        if route == ("DELETE", "faults"):
            with st.lock:
                st.faults.clear()
            return self.reply(200, {"ok": True})
        if route == ("POST", "faults"):
            try:
                rules = parse_rules(arg)
            except (ValueError, TypeError) as e:
                return self.reply(400, {"error": str(e)})
            st.add_faults(rules)
            return self.reply(200, st.snapshot("faults"))
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
        self.reply(404, {"error": f"no control route {self.command} {path}"})

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

        rule = st.take_fault(body) or {}
        entry["fault"] = rule.get("name")
        if rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000.0)
        status = rule.get("status")
        if status is not None:
            hdrs = list(rl)
            if status == 429 or (status == 503 and "retry_after" in rule):
                hdrs.append(("Retry-After", rule.get("retry_after", 1)))
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

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.max_per_array, server.combined = args.max_per_array, args.combined
    server.success_status = args.success_status
    server.canonical_headers = args.canonical_headers
    server.state = State(args.key, args.rate_limit, args.rate_window)
    server.log_file = open(args.log, "a", encoding="utf-8") if args.log else sys.stderr
    port = server.server_address[1]

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"braze-sim listening on {args.host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        if args.log:
            server.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
