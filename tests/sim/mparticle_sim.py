#!/usr/bin/env python3
"""mParticle Events API v2 (server-to-server) simulator for relay integration tests.

It listens on 127.0.0.1 and acts like s2s.mparticle.com/v2: HTTP Basic auth
(key:secret), POST /v2/events (one batch object), POST /v2/bulkevents and
/v2/bulkevents/historical (array of batches). It checks each batch against the
Events API rules relay depends on, and answers 202 (empty body), 400, 401, 403,
411, 413, 429 or 503 the way mParticle does.

Tests start it with `--port 0 --port-file F`, wait for F to appear (or for the
stdout line "mparticle-sim listening on 127.0.0.1:PORT"), point relay at it, and
then use the unauthenticated control API under /_sim/ to inspect what arrived
(/_sim/received, /_sim/requests, /_sim/stats), to inject faults (/_sim/faults),
to fail a share of all requests at random (/_sim/chaos or --chaos) and to clear
state (/_sim/reset). Python 3.11 standard library only.

Faults act like a real platform in trouble: an error status (with Retry-After
on 429, and on 503 when asked), an answer slower than the client's timeout, a
garbage body, a batch silently dropped, or a connection reset without any
answer (SO_LINGER 0, then close: the client sees ECONNRESET).

--received-log FILE appends one line per accepted batch (its
source_request_id, "-" when it has none) before the 202 is sent, flushed at
once, so a test that stops and restarts the simulator still knows every batch
it ever accepted. /_sim/reset does not truncate it.

--receive-times FILE likewise appends "source_request_id<TAB>receive_ns" per
accepted batch, receive_ns being the wall clock (time.time_ns()) when the
request's body had been read, before it was checked: what tests/bench/
hotpath.sh subtracts each event's produce time from to get its latency.
"""
import argparse
import base64
import binascii
import json
import math
import os
import random
import socket
import struct
import sys
import time

import simlib

EVENT_PATHS = ("/v2/events", "/v2/bulkevents", "/v2/bulkevents/historical")
BATCH_KEYS = frozenset((
    "events", "device_info", "user_attributes", "deleted_user_attributes",
    "user_identities", "application_info", "schema_version", "environment",
    "context", "ip", "mpid", "source_request_id", "timestamp_unixtime_ms",
    "consent_state", "integration_attributes"))
IDENTITY_KEYS = frozenset((
    "customer_id", "email", "other", *(f"other_id_{i}" for i in range(2, 11)),
    "mobile_number", "phone_number_2", "phone_number_3", "facebook", "twitter",
    "google", "microsoft", "yahoo", "alias", "facebook_custom_audience_id"))
ENVIRONMENTS = ("development", "production")
EVENT_TYPES = frozenset((
    "session_start", "session_end", "screen_view", "custom_event", "crash_report",
    "opt_out", "first_run", "push_registration", "application_state_transition",
    "push_message", "network_performance", "breadcrumb", "profile",
    "commerce_event", "user_attribute_change", "user_identity_change", "uninstall"))
CUSTOM_EVENT_TYPES = ("navigation", "location", "search", "transaction", "user_content",
                      "user_preference", "social", "other", "media")
MAX_USER_ATTRIBUTES = 100
MAX_ATTRIBUTE_CHARS = 4096
MAX_READ_BYTES = 64 * 1024 * 1024   # larger bodies are not read; the connection is closed
GARBAGE_BODY = b"\x00\xff<html>upstream \x8b\x08 garbage}{\xfe"
RULE_KEYS = {**simlib.RULE_KEYS, "garbage": bool, "partial": bool, "reset": bool}
# What a chaos failure can be: each failing request draws one kind at random.
CHAOS_KINDS = ("429", "500", "503", "slow", "reset")
CHAOS_DEFAULTS = {"rate": 0.3, "seed": 0, "retry_after": 1, "slow_ms": 2000,
                  "kinds": list(CHAOS_KINDS)}


class Rejected(Exception):
    """The request is rejected with a BAD_REQUEST message; status 413 marks "too large"
    (answered 413 only with --enable-413, else 400)."""
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def validate_batch(batch, idx, max_batch_bytes):
    """Raise Rejected describing the first problem in one batch (413 = oversize)."""
    p = f"batch {idx}:"
    if not isinstance(batch, dict):
        raise Rejected(400, f"{p} must be a JSON object")
    size = len(json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_batch_bytes:
        raise Rejected(413, f"{p} is {size} bytes; a batch may be at most {max_batch_bytes} bytes")
    for key in batch:
        if key not in BATCH_KEYS:
            raise Rejected(400, f'{p} top-level key "{key}" is not allowed')
    if "environment" not in batch:
        raise Rejected(400, f'{p} "environment" is required')
    if batch["environment"] not in ENVIRONMENTS:
        raise Rejected(400, f'{p} "environment" must be "development" or "production", '
                            f'got {json.dumps(batch["environment"])}')
    ids = batch.get("user_identities")
    if ids is not None:
        if not isinstance(ids, dict):
            raise Rejected(400, f"{p} user_identities must be an object")
        for key, val in ids.items():
            if key not in IDENTITY_KEYS:
                raise Rejected(400, f'{p} user_identities key "{key}" is not allowed')
            if not isinstance(val, str):
                raise Rejected(400, f'{p} user_identities "{key}" must be a string')
    attrs = batch.get("user_attributes")
    if attrs is not None:
        if not isinstance(attrs, dict):
            raise Rejected(400, f"{p} user_attributes must be an object")
        if len(attrs) > MAX_USER_ATTRIBUTES:
            raise Rejected(400, f"{p} user_attributes has {len(attrs)} attributes; "
                                f"at most {MAX_USER_ATTRIBUTES} allowed")
        for key, val in attrs.items():
            items = val if isinstance(val, list) else [val]
            if not all(v is None or isinstance(v, (str, int, float, bool)) for v in items) \
                    or (isinstance(val, list) and not all(isinstance(v, str) for v in val)):
                raise Rejected(400, f'{p} user_attributes "{key}" must be a string, number, '
                                    f'bool, null or array of strings')
            for v in items:
                if isinstance(v, str) and len(v) > MAX_ATTRIBUTE_CHARS:
                    raise Rejected(400, f'{p} user_attributes "{key}" value is {len(v)} '
                                        f'characters; at most {MAX_ATTRIBUTE_CHARS} allowed')
    deleted = batch.get("deleted_user_attributes")
    if deleted is not None and not (isinstance(deleted, list)
                                    and all(isinstance(v, str) for v in deleted)):
        raise Rejected(400, f"{p} deleted_user_attributes must be an array of strings")
    events = batch.get("events")
    if events is not None and not isinstance(events, list):
        raise Rejected(400, f"{p} events must be an array")
    for j, ev in enumerate(events or ()):
        validate_event(ev, f"{p} event {j}:")


def validate_event(ev, p):
    if not isinstance(ev, dict):
        raise Rejected(400, f"{p} must be an object")
    if not ev.get("event_type"):
        raise Rejected(400, f'{p} required field "event_type" is missing or empty')
    if not isinstance(ev["event_type"], str) or ev["event_type"] not in EVENT_TYPES:
        raise Rejected(400, f'{p} unknown event_type {json.dumps(ev["event_type"])}')
    data = ev.get("data")
    if not isinstance(data, dict):
        raise Rejected(400, f'{p} required field "data" is missing or not an object')
    if ev["event_type"] != "custom_event":
        return
    name = data.get("event_name")
    if not isinstance(name, str) or not name:
        raise Rejected(400, f'{p} custom_event requires a non-empty string "event_name"')
    if "custom_event_type" not in data:
        raise Rejected(400, f'{p} custom_event requires "custom_event_type"')
    if data["custom_event_type"] not in CUSTOM_EVENT_TYPES:
        raise Rejected(400, f'{p} custom_event_type {json.dumps(data["custom_event_type"])} '
                            f'must be one of {", ".join(CUSTOM_EVENT_TYPES)}')
    if "custom_attributes" in data and not isinstance(data["custom_attributes"], dict):
        raise Rejected(400, f"{p} custom_attributes must be an object")


def check_partial(r):
    if r.get("partial") and not r.get("match"):
        raise ValueError('a "partial" rule needs a non-empty "match"')


def check_reset(r):
    if r.get("reset") and ("status" in r or r.get("garbage") or r.get("partial")):
        raise ValueError('a "reset" rule sends no answer: no "status", "garbage" '
                         'or "partial"')


def parse_rules(obj):
    """Validate fault rules from POST /_sim/faults; return a list of normalized dicts."""
    return simlib.parse_rules(obj, RULE_KEYS, check_reset, check_first=check_partial)


def parse_chaos(obj):
    """Validate a chaos setting from POST /_sim/chaos; return it with defaults filled."""
    if not isinstance(obj, dict):
        raise ValueError("chaos must be a JSON object")
    out = dict(CHAOS_DEFAULTS, kinds=list(CHAOS_KINDS))
    for key, val in obj.items():
        if key not in CHAOS_DEFAULTS:
            raise ValueError(f'unknown chaos key "{key}"')
        if key == "kinds":
            if not (isinstance(val, list) and val and all(k in CHAOS_KINDS for k in val)):
                raise ValueError(f'"kinds" must be a non-empty list of {", ".join(CHAOS_KINDS)}')
        elif key == "rate":
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not 0 <= val <= 1:
                raise ValueError('"rate" must be a number from 0 to 1')
        elif isinstance(val, bool) or not isinstance(val, int) or val < 0:
            raise ValueError(f'"{key}" must be a non-negative integer')
        out[key] = val
    return out


class State(simlib.State):
    """Everything the simulator remembers; guarded by one lock."""
    def __init__(self, rate_limit, received_log=None, receive_times=None):
        self.rate = rate_limit
        self.received_log = received_log   # an open file or None; outlives reset()
        self.receive_times = receive_times  # likewise
        super().__init__()

    def clear(self):
        super().clear()
        self.tokens, self.refilled = float(self.rate), time.monotonic()
        self.saved = 0
        self.chaos, self.chaos_rng, self.chaos_counts = None, None, {}

    def set_chaos(self, conf):
        """Start failing conf["rate"] of the requests (None stops it)."""
        with self.lock:
            self.chaos = conf
            self.chaos_rng = random.Random(conf["seed"]) if conf else None
            self.chaos_counts = {}

    def take_chaos(self):
        """Draw for one request: None (answer normally) or a chaos kind."""
        with self.lock:
            if not self.chaos or self.chaos_rng.random() >= self.chaos["rate"]:
                return None, None
            kind = self.chaos_rng.choice(self.chaos["kinds"])
            self.chaos_counts[kind] = self.chaos_counts.get(kind, 0) + 1
            return kind, dict(self.chaos)

    def chaos_snapshot(self):
        with self.lock:
            if not self.chaos:
                return {"active": False, "counts": dict(self.chaos_counts)}
            return {"active": True, **self.chaos, "counts": dict(self.chaos_counts)}

    def _refill(self):
        t = time.monotonic()
        self.tokens = min(float(self.rate), self.tokens + (t - self.refilled) * self.rate)
        self.refilled = t

    def take_tokens(self, n):
        """Token bucket (rate per second, burst = rate). Return 0 if allowed, else the
        integer seconds to wait. A request needs min(n, rate) tokens; the bucket may go
        into debt so bulk requests larger than the burst are still admitted."""
        if self.rate <= 0:
            return 0
        with self.lock:
            self._refill()
            need = min(n, self.rate)
            if self.tokens < need:
                return max(1, math.ceil((need - self.tokens) / self.rate))
            self.tokens -= n
            return 0

    def percentage_used(self):
        if self.rate <= 0:
            return 0
        with self.lock:
            self._refill()
            return max(0, min(100, round(100 * (self.rate - self.tokens) / self.rate)))

    def record(self, path, status, batches, auth, nbytes, fault, accepted=(), error=None,
               read_ns=None):
        """Remember one request (status None: reset without an answer); read_ns is
        when its body had been read (for --receive-times)."""
        with self.lock:
            at = int(time.time() * 1000)
            self.requests.append({"path": path, "status": status, "batches": batches,
                                  "at_ms": at, "auth": auth, "bytes": nbytes, "fault": fault,
                                  "error": error})
            key = str(status) if status is not None else "reset"
            self.by_status[key] = self.by_status.get(key, 0) + 1
            self.received.extend({"path": path, "batch": b, "at_ms": at} for b in accepted)
            if self.received_log and accepted:
                self.received_log.write("".join(
                    f"{b.get('source_request_id') or '-'}\n" for b in accepted))
                self.received_log.flush()
            if self.receive_times and accepted:
                self.receive_times.write("".join(
                    f"{b.get('source_request_id') or '-'}\t{read_ns or time.time_ns()}\n"
                    for b in accepted))
                self.receive_times.flush()

    def stats(self):
        return {"requests": len(self.requests), "accepted_batches": len(self.received),
                "by_status": dict(self.by_status)}


class Handler(simlib.Handler):
    server_version = "mparticle-sim/1.0"
    fault_rules = staticmethod(parse_rules)
    do_PATCH = simlib.Handler.route

    # ---- plumbing -------------------------------------------------------
    def log_batches(self, status, batches):
        self.log_line(f"{self.command} {self.path} {status} batches={batches}")

    def reply(self, status, body=b"", ctype="application/json", headers=(), batches=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.log_batches(status, batches)   # before answering, so the log is never behind
        self.send_answer(status, body, headers, ctype)

    def crash_body(self, e):
        return self.error_body(f"simulator error: {e!r}", "SIM_ERROR")

    def reset_connection(self):
        """Abort the connection with a TCP RST and no answer, as a dying load
        balancer does: SO_LINGER with a zero timeout, then close."""
        self.log_batches("reset", self.nbatches)
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def drain_chunked(self):
        """Discard a chunked body so the connection stays usable; False if malformed."""
        total = 0
        while total <= MAX_READ_BYTES:
            try:
                size = int(self.rfile.readline(1024).split(b";")[0], 16)
            except ValueError:
                return False
            if size == 0:
                while self.rfile.readline(1024).strip():   # trailers
                    pass
                return True
            total += size
            self.rfile.read(size + 2)
        return False

    def read_body(self):
        """Return (body, problem). body is None when the request has no Content-Length
        (411); problem is (status, message) when Content-Length is unusable."""
        length = self.headers.get("Content-Length")
        if length is None:
            te = self.headers.get("Transfer-Encoding", "").lower()
            if te:   # unsupported: discard a chunked body, else we cannot find its end
                if te != "chunked" or not self.drain_chunked():
                    self.close_connection = True
                return None, None
            return (None if self.command == "POST" else b""), None
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return b"", (400, f"invalid Content-Length {length!r}")
        if n > MAX_READ_BYTES:
            self.close_connection = True
            return b"", (413, f"request body is {n} bytes; "
                              f"at most {self.server.max_request_bytes} allowed")
        return self.rfile.read(n), None

    def api(self, path):
        if path.startswith("/v2/"):
            self.events_api(path)
        else:
            self.read_body()
            self.reply(404, self.error_body("no such path", "NOT_FOUND"))

    # ---- control API ----------------------------------------------------
    def control_body(self):
        return self.read_body()[0] or b""

    def control_more(self, route, body):
        st = self.server.state
        if route == ("GET", "chaos"):
            return self.reply(200, st.chaos_snapshot())
        if route == ("DELETE", "chaos"):
            st.set_chaos(None)
            return self.reply(200, {"ok": True})
        if route == ("POST", "chaos"):
            try:
                conf = parse_chaos(json.loads(body or b"{}"))
            except (ValueError, TypeError) as e:
                return self.reply(400, {"error": str(e)})
            st.set_chaos(conf)
            return self.reply(200, st.chaos_snapshot())
        return False

    # ---- Events API -----------------------------------------------------
    def check_auth(self):
        header = self.headers.get("Authorization", "")
        scheme, _, cred = header.partition(" ")
        if scheme.lower() != "basic" or not cred.strip():
            return "missing"
        try:
            user, sep, pw = base64.b64decode(cred.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "missing"
        ok = sep and user == self.server.key and pw == self.server.secret
        return "ok" if ok else "wrong"

    @staticmethod
    def error_body(message, code="BAD_REQUEST"):
        return {"errors": [{"code": code, "message": message}]}

    def answer(self, status, payload=b"", ctype="application/json", headers=(), accepted=()):
        """Record one /v2/* request (and its accepted batches), then reply."""
        st = self.server.state
        if 200 <= status < 300:
            headers = [*headers, ("X-mp-rate-limit-percentage-used", st.percentage_used())]
        error = None
        if isinstance(payload, dict):   # error_body(): the message, for show.py
            error = (payload.get("errors") or [{}])[0].get("message")
        st.record(self.api_path, status, self.nbatches, self.auth, self.nbytes, self.fault,
                  accepted, error, self.read_ns)
        self.reply(status, payload, ctype, headers, self.nbatches)

    def events_api(self, path):
        st, srv = self.server.state, self.server
        body, problem = self.read_body()
        self.read_ns = time.time_ns()
        self.api_path, self.auth, self.nbatches, self.fault = path, self.check_auth(), None, None
        self.nbytes = len(body or b"")
        if problem:
            if problem[0] == 413:
                self.nbytes = int(self.headers["Content-Length"])
            return self.answer(413 if problem[0] == 413 and srv.enable_413 else 400,
                               self.error_body(problem[1]))
        if body is None:
            return self.answer(411, self.error_body("Content-Length is required",
                                                    "LENGTH_REQUIRED"))
        if path not in EVENT_PATHS:
            return self.answer(404, self.error_body(f"no such endpoint {path}", "NOT_FOUND"))
        if self.command != "POST":
            return self.answer(405, self.error_body("use POST", "METHOD_NOT_ALLOWED"),
                               headers=[("Allow", "POST")])
        if self.auth == "missing":
            return self.answer(401, self.error_body("Basic authentication required",
                                                    "UNAUTHORIZED"))
        if self.auth == "wrong":
            return self.answer(403, self.error_body("invalid API key or secret", "FORBIDDEN"))

        rule = st.take_fault(body)
        if not rule:
            rule = self.chaos_rule()
        self.fault = rule.get("name")
        simlib.pause(rule)
        if rule.get("reset"):
            st.record(self.api_path, None, self.nbatches, self.auth, self.nbytes, self.fault)
            return self.reset_connection()
        status = rule.get("status")
        if status is not None:
            hdrs = []
            if status == 429:
                hdrs = [("Retry-After", rule.get("retry_after", 1)),
                        ("X-mp-rate-limit-exceeded", "account")]
            elif status == 503 and "retry_after" in rule:
                hdrs = [("Retry-After", rule["retry_after"])]
            code = "BAD_REQUEST" if status == 400 else "SIM_FAULT"
            payload = (b"" if status in (204, 304) else
                       self.error_body(f'injected fault "{self.fault}"', code))
            return self.answer(status, payload, headers=hdrs)

        # garbage replaces the answer body (whatever the status); processing is unchanged
        reply_body, ctype = (GARBAGE_BODY, "text/html") if rule.get("garbage") else (b"", "")
        try:
            batches = self.parse_batches(path, body)
        except Rejected as e:
            status = 413 if e.status == 413 and srv.enable_413 else 400
            return self.answer(status, reply_body or self.error_body(str(e)),
                               ctype or "application/json")
        wait = st.take_tokens(len(batches))
        if wait:
            return self.answer(429, self.error_body("rate limit exceeded", "TOO_MANY_REQUESTS"),
                               headers=[("Retry-After", wait),
                                        ("X-mp-rate-limit-exceeded", "account")])
        if rule.get("partial"):   # silently drop batches whose JSON contains the match
            m = rule["match"]
            batches = [b for b in batches
                       if m not in json.dumps(b, ensure_ascii=False)
                       and m not in json.dumps(b, ensure_ascii=False, separators=(",", ":"))]
        if getattr(srv, "save_bodies", None):   # the exact bytes, for tests/bench to replay with wrk
            with st.lock:
                st.saved += 1
                name = os.path.join(srv.save_bodies, f"{st.saved:06d}.json")
            with open(name + ".tmp", "wb") as f:
                f.write(body)
            os.replace(name + ".tmp", name)   # a reader never sees half a body
        self.answer(202, reply_body, ctype, accepted=batches)

    def chaos_rule(self):
        """A fault rule for this request from the chaos draw, or {}. "slow" answers
        503 only after slow_ms (meant to be longer than the client's timeout), so
        the client has given up and nothing was accepted."""
        kind, conf = self.server.state.take_chaos()
        if kind is None:
            return {}
        name = f"chaos-{kind}"
        if kind == "429":
            return {"name": name, "status": 429, "retry_after": conf["retry_after"]}
        if kind == "slow":
            return {"name": name, "status": 503, "delay_ms": conf["slow_ms"]}
        if kind == "reset":
            return {"name": name, "reset": True}
        return {"name": name, "status": int(kind)}

    def parse_batches(self, path, body):
        """Return the list of batches in a valid request, else raise Rejected."""
        srv = self.server
        if len(body) > srv.max_request_bytes:
            raise Rejected(413, f"request body is {len(body)} bytes; "
                                f"at most {srv.max_request_bytes} allowed")
        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            raise Rejected(400, f"Content-Type must be application/json, got {ctype!r}")
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise Rejected(400, f"request body is not valid JSON: {e}") from None
        if path == "/v2/events":
            if not isinstance(doc, dict):
                raise Rejected(400, "/v2/events takes a single batch JSON object")
            batches = [doc]
        else:
            if not isinstance(doc, list):
                raise Rejected(400, f"{path} takes a JSON array of batches")
            if not doc:
                raise Rejected(400, "bulk request has no batches")
            if len(doc) > srv.max_bulk:
                raise Rejected(400, f"bulk request has {len(doc)} batches; "
                                    f"at most {srv.max_bulk} allowed")
            batches = doc
        self.nbatches = len(batches)
        for i, b in enumerate(batches):
            validate_batch(b, i, srv.max_batch_bytes)
        return batches


def main(argv=None):
    ap = argparse.ArgumentParser(description="mParticle Events API v2 simulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to bind (tests keep to loopback; a container needs 0.0.0.0)")
    ap.add_argument("--key", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--max-bulk", type=int, default=100)
    ap.add_argument("--max-request-bytes", type=int, default=256 * 1024)
    ap.add_argument("--max-batch-bytes", type=int, default=128 * 1024)
    ap.add_argument("--enable-413", action="store_true")
    ap.add_argument("--rate-limit", type=float, default=0,
                    help="batches per second token bucket (burst = rate); 0 = off")
    ap.add_argument("--log", help="append request log here instead of stderr")
    ap.add_argument("--save-bodies", metavar="DIR",
                    help="write the body of every accepted events request to DIR/NNNNNN.json")
    ap.add_argument("--received-log", metavar="FILE",
                    help="append the source_request_id of every accepted batch, one a line")
    ap.add_argument("--receive-times", metavar="FILE",
                    help="append source_request_id<TAB>receive_ns (wall clock when the body "
                         "was read) of every accepted batch, one a line")
    ap.add_argument("--chaos", type=float, metavar="RATE",
                    help="fail about RATE (0..1) of the requests: 429 with Retry-After, "
                         "500, 503, slow answers and connection resets")
    ap.add_argument("--seed", type=int, default=0, help="seed of the chaos draws")
    ap.add_argument("--chaos-retry-after", type=int, default=1, metavar="SECONDS")
    ap.add_argument("--chaos-slow-ms", type=int, default=2000, metavar="MS")
    args = ap.parse_args(argv)

    server = simlib.make_server(args.host, args.port, Handler)
    server.key, server.secret = args.key, args.secret
    server.max_bulk, server.enable_413 = args.max_bulk, args.enable_413
    server.max_request_bytes, server.max_batch_bytes = args.max_request_bytes, args.max_batch_bytes
    received_log = open(args.received_log, "a", encoding="utf-8") if args.received_log else None
    receive_times = (open(args.receive_times, "a", encoding="utf-8")
                     if args.receive_times else None)
    server.state = State(args.rate_limit, received_log, receive_times)
    if args.chaos is not None:
        try:
            server.state.set_chaos(parse_chaos({
                "rate": args.chaos, "seed": args.seed,
                "retry_after": args.chaos_retry_after, "slow_ms": args.chaos_slow_ms}))
        except ValueError as e:
            ap.error(f"--chaos: {e}")
    server.save_bodies = args.save_bodies
    return simlib.serve(server, args, "mparticle-sim", close=(received_log, receive_times))


if __name__ == "__main__":
    sys.exit(main())
