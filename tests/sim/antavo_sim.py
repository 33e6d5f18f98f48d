#!/usr/bin/env python3
"""An Antavo Events API simulator for relay's Antavo adapter: the integration tests
point relay-deliver at it and assert on what it accepted.

POST <any prefix>/events takes one event, POST <any prefix>/events/bulk a JSON array
of them (the bulk path is unconfirmed; more than 50 events is logged, not refused).
Each request is checked as Antavo documents it (/work/shared/PLATFORMS.md, section 4):
  - the api_key query parameter equals --api-key;
  - it is signed with Escher, recomputed here from the raw request:
      Authorization: <prefix>-HMAC-SHA256 Credential=<key>/<YYYYMMDD>/<scope>,
                     SignedHeaders=<...;date;host...>, Signature=<hex>
      canonical request = method, path, canonical query (names and values
        percent-encoded but for A-Z a-z 0-9 - _ . ~, sorted), the signed headers
        as name:value (names lower case, values trimmed), an empty line, the
        signed header names joined by ';', hex SHA-256 of the body; joined by \\n
      string to sign = <prefix>-HMAC-SHA256, <YYYYMMDDTHHMMSSZ>,
        <YYYYMMDD>/<scope>, hex SHA-256 of the canonical request; joined by \\n
      signing key = HMAC-SHA256(<prefix><secret>, <YYYYMMDD>), then HMAC over each
        '/'-part of the scope; the signature is the hex HMAC of the string to sign
    with <scope> = --region "/" --scope (default eu/api/antavo_request);
  - the Date header is an HTTP date (or YYYYMMDDTHHMMSSZ) within --window seconds
    (default 900) of now, on the Credential's day;
  - a signature is accepted once: the same signature again is refused.
Any of those failing is a 401 with Antavo's envelope
{"error":{"type":...,"code":401,"message":...}}. Then fault rules, then a fixed-window
rate limit (--rate-limit requests per --rate-window s, default 1500 per 60: 429), then
the body: each event needs a non-empty string customer and action and an object data
(400 BadRequestException otherwise); a checkout whose data.transaction_id was taken is
refused with 400 and message ERR_TX_ALREADY_EXISTS. Accepted: 200 with the event
(bulk: {"events": [...]}).

Control API (like braze_sim.py's):
  GET  /_sim/received   accepted events: [{"at_ms", "path", "event"}] in order
  GET  /_sim/requests   every request: at_ms, path, status, signature ("ok",
                        "missing", "wrong", "stale", "replayed", "bad key"), events,
                        fault, error
  GET  /_sim/stats      {"requests", "accepted_events", "by_status"}
  GET|POST|DELETE /_sim/faults   rules tried in order on each signed request:
        {"status": 503, "times": 2, "match": "<text in body>", "retry_after": 2,
         "delay_ms": 0, "name": "..."}; "times" -1 is forever (default 1)
  POST /_sim/secret     {"secret": "..."}: verify with another secret from now on
  POST /_sim/rate       {"limit": n, "window_s": s}
  POST /_sim/reset      forget requests, events, signatures, transactions and faults
Python 3 standard library only.
"""
import argparse
import datetime
import hashlib
import hmac
import json
import re
import sys
import time
from urllib.parse import parse_qsl, quote

import simlib

AUTH_RE = re.compile(r"^([A-Za-z0-9]+)-HMAC-SHA256 Credential=([^/]+)/(\d{8})/(\S+), "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def canonical_query(raw):
    pairs = parse_qsl(raw or "", keep_blank_values=True)
    return "&".join(sorted(quote(k, safe="~") + "=" + quote(v, safe="~")
                           for k, v in pairs))


def escher_signature(secret, prefix, scope, method, path, raw_query, headers,
                     signed, body, when):
    """The hex Escher signature of a request; headers maps lower-case names to
    their values as received, when is the request's datetime (UTC)."""
    canon_headers = "\n".join(f"{h}:{' '.join(headers.get(h, '').split())}"
                              for h in sorted(signed))
    creq = "\n".join([method, path, canonical_query(raw_query), canon_headers, "",
                      ";".join(sorted(signed)), sha256_hex(body)])
    short = when.strftime("%Y%m%d")
    sts = "\n".join([f"{prefix}-HMAC-SHA256", when.strftime("%Y%m%dT%H%M%SZ"),
                     f"{short}/{scope}", sha256_hex(creq.encode())])
    key = hmac.new((prefix + secret).encode(), short.encode(), hashlib.sha256).digest()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def parse_date(text):
    for fmt in ("%a, %d %b %Y %H:%M:%S GMT", "%Y%m%dT%H%M%SZ"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(
                tzinfo=datetime.timezone.utc)
        except ValueError:
            pass
    return None


def error_body(etype, code, message):
    return {"error": {"type": etype, "code": code, "message": message}}


def parse_rules(obj):
    return simlib.parse_rules(obj, check=simlib.need_status_or_delay)


class State(simlib.State):
    """Everything the simulator remembers; guarded by one lock."""

    def __init__(self, args, received_log=None):
        self.api_key, self.secret = args.api_key, args.api_secret
        self.prefix = args.algo_prefix
        self.scope = f"{args.region}/{args.scope}"
        self.window = args.window
        self.rate_limit, self.rate_window = args.rate_limit, args.rate_window
        self.received_log = received_log
        super().__init__()

    def clear(self):
        super().clear()
        self.signatures, self.transactions = set(), set()
        self.window_start, self.window_count = time.monotonic(), 0

    def use_signature(self, sig):
        """True the first time sig is seen."""
        with self.lock:
            if sig in self.signatures:
                return False
            self.signatures.add(sig)
            return True

    def take_rate(self):
        """0 when the request fits the window, else the seconds left of it."""
        with self.lock:
            now = time.monotonic()
            if now - self.window_start >= self.rate_window:
                self.window_start, self.window_count = now, 0
            if self.window_count >= self.rate_limit:
                return max(1, int(self.rate_window - (now - self.window_start) + 0.999))
            self.window_count += 1
            return 0

    def accept(self, path, events):
        """Record events unless a checkout's transaction_id was taken: None, or the
        id refused (nothing is recorded then)."""
        with self.lock:
            txs = [e["data"].get("transaction_id") for e in events
                   if e["action"] == "checkout" and "transaction_id" in e["data"]]
            for tx in txs:
                if tx in self.transactions:
                    return tx
            self.transactions.update(txs)
            at = int(time.time() * 1000)
            self.received.extend({"at_ms": at, "path": path, "event": e} for e in events)
            if self.received_log:
                self.received_log.write("".join(json.dumps(e) + "\n" for e in events))
                self.received_log.flush()
            return None

    def stats(self):
        return {"requests": len(self.requests),
                "accepted_events": len(self.received),
                "by_status": dict(self.by_status)}


class Handler(simlib.Handler):
    server_version = "antavo-sim/1.0"
    fault_rules = staticmethod(parse_rules)
    do_PATCH = simlib.Handler.route

    def read_body(self):
        if self.headers.get("Content-Length") == "":   # taken as none
            return b""
        return super().read_body()

    def api(self, path):
        self.events(path)

    def control_more(self, route, body):
        st = self.server.state
        try:
            doc = json.loads(body or b"null")
            if route == ("POST", "secret"):
                with st.lock:
                    st.secret = str(doc["secret"])
                return self.reply(200, {"ok": True})
            if route == ("POST", "rate"):
                with st.lock:
                    st.rate_limit = int(doc["limit"])
                    st.rate_window = float(doc.get("window_s", st.rate_window))
                return self.reply(200, {"ok": True})
        except (ValueError, KeyError, TypeError) as e:
            return self.reply(400, {"error": f"bad control body: {e}"})
        return False

    # ---- the Events API -------------------------------------------------
    def verify(self, body):
        """(error message, signature state); the message is None when the request
        is authentic."""
        st = self.server.state
        raw_query = self.path.split("?", 1)[1] if "?" in self.path else ""
        keys = [v for k, v in parse_qsl(raw_query, keep_blank_values=True)
                if k == "api_key"]
        with st.lock:
            api_key, secret, prefix, scope = st.api_key, st.secret, st.prefix, st.scope
        if keys != [api_key]:
            return "missing or unknown api_key", "bad key"
        auth = self.headers.get("Authorization")
        date = self.headers.get("Date")
        if not auth or not date:
            return "the request is not signed (Authorization and Date)", "missing"
        m = AUTH_RE.match(auth.strip())
        if not m:
            return "malformed Authorization header", "wrong"
        algo, cred_key, cred_day, cred_scope, signed, sig = m.groups()
        signed = signed.split(";")
        if algo != prefix or cred_key != api_key or cred_scope != scope:
            return "wrong algorithm, credential key or scope", "wrong"
        if "date" not in signed or "host" not in signed:
            return "date and host must be signed", "wrong"
        when = parse_date(date)
        if when is None:
            return f"Date {date!r} is not a date", "wrong"
        if when.strftime("%Y%m%d") != cred_day:
            return "the credential date is not the request's", "wrong"
        headers = {k.lower(): v for k, v in self.headers.items()}
        want = escher_signature(secret, prefix, scope, self.command,
                                self.path.split("?", 1)[0], raw_query, headers,
                                signed, body, when)
        if not hmac.compare_digest(want, sig):
            return "the signatures do not match", "wrong"
        off = abs(time.time() - when.timestamp())
        if off > st.window:
            return f"the request date is {off:.0f} s off (more than {st.window})", \
                "stale"
        if not st.use_signature(sig):
            return "the signature was used already", "replayed"
        return None, "ok"

    def events(self, path):
        st = self.server.state
        body = self.read_body()
        entry = {"path": path, "events": None, "fault": None, "signature": None,
                 "error": None}

        def answer(status, payload=b"", error=None, headers=()):
            entry.update(status=status, error=error)
            st.record(entry)
            self.log_line(f"{self.command} {path} {status} events={entry['events']} "
                          f"sig={entry['signature']}"
                          + (f" fault={entry['fault']}" if entry["fault"] else "")
                          + (f" error={error}" if error else ""))
            self.reply(status, payload, headers)

        def refuse(status, etype, message, headers=()):
            answer(status, error_body(etype, status, message), message, headers)

        bulk = path.endswith("/events/bulk")
        if body is None:
            return refuse(400, "BadRequestException", "bad Content-Length")
        if not bulk and not path.endswith("/events"):
            return refuse(404, "NotFoundException", f"no route {path}")
        if self.command != "POST":
            return refuse(405, "MethodNotAllowedException", "use POST")
        error, entry["signature"] = self.verify(body)
        if error:
            return refuse(401, "AuthenticationException", error)

        rule = st.take_fault(body)
        entry["fault"] = rule.get("name")
        simlib.pause(rule)
        if "status" in rule:
            return refuse(rule["status"], "SimulatedFault",
                          f'injected fault "{entry["fault"]}"', simlib.retry_after(rule))
        wait = st.take_rate()
        if wait:
            return refuse(429, "TooManyRequestsException", "rate limit exceeded",
                          [("Retry-After", wait)])
        try:
            doc = json.loads(body.decode("utf-8"))
            events = doc if bulk else [doc]
            if not isinstance(events, list) or not events:
                raise ValueError("a bulk body must be a non-empty JSON array")
            for e in events:
                if not isinstance(e, dict):
                    raise ValueError("an event must be a JSON object")
                for f in ("customer", "action"):
                    if not isinstance(e.get(f), str) or not e[f]:
                        raise ValueError(f"{f} is required")
                if not isinstance(e.get("data"), dict):
                    raise ValueError("data must be an object")
        except (UnicodeDecodeError, ValueError) as e:
            return refuse(400, "BadRequestException", str(e))
        entry["events"] = len(events)
        if bulk and len(events) > 50:
            self.log_line(f"warning: a bulk request of {len(events)} events (over 50)")
        taken = st.accept(path, events)
        if taken is not None:
            return refuse(400, "BadRequestException", "ERR_TX_ALREADY_EXISTS")
        answer(200, {"events": events} if bulk else events[0])


def main(argv=None):
    ap = argparse.ArgumentParser(description="Antavo Events API simulator for relay tests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--api-secret", required=True)
    ap.add_argument("--region", default="eu")
    ap.add_argument("--scope", default="api/antavo_request")
    ap.add_argument("--algo-prefix", default="ANTAVO")
    ap.add_argument("--window", type=int, default=900,
                    help="seconds a Date may be off (default 900)")
    ap.add_argument("--rate-limit", type=int, default=1500)
    ap.add_argument("--rate-window", type=float, default=60.0)
    ap.add_argument("--log")
    ap.add_argument("--received-log", metavar="FILE",
                    help="append every accepted event, one JSON a line")
    args = ap.parse_args(argv)

    server = simlib.make_server(args.host, args.port, Handler)
    received_log = open(args.received_log, "a", encoding="utf-8") if args.received_log else None
    server.state = State(args, received_log)
    return simlib.serve(server, args, "antavo-sim", close=(received_log,))


if __name__ == "__main__":
    sys.exit(main())
