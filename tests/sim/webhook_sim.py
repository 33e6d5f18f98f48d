#!/usr/bin/env python3
"""A Standard Webhooks receiver (standardwebhooks.com) for relay's generic webhook
adapter: the integration tests point relay-deliver at it and assert on what it
accepted.

It takes POST to any path outside /_sim/ and checks what a careful receiver checks:
  - webhook-id, webhook-timestamp and webhook-signature are present, and one of the
    space-separated signatures is "v1," + base64(HMAC-SHA256(key,
    "<id>.<timestamp>.<body>")) over the exact body bytes: else 401;
  - the timestamp is an integer within --tolerance seconds (default 300) of now:
    else 400;
  - the body is {"type":"relay.events","data":[{"event_id": ...}, ...]}: else 400.
The key is --secret: "whsec_<base64>" is decoded after the prefix; any other text is
the key's raw bytes (as relay does). A webhook-id it has already accepted is answered
200 and not recorded again (receivers de-duplicate on webhook-id, as the
specification recommends); the request log says it was a duplicate. Accepted
requests are answered 200 with an empty body.

Tests start it with `--port 0 --port-file F`, wait for F, and use the control API:
  GET  /_sim/received   every accepted event, a JSON list of
                        {"webhook_id", "at_ms", "event"} in the order accepted
  GET  /_sim/requests   every request: at_ms, status, webhook_id, events, fault,
                        signature ("ok", "missing", "wrong"), duplicate, error
  GET  /_sim/stats      {"requests", "accepted_events", "duplicates", "by_status"}
  GET|POST|DELETE /_sim/faults   fault rules, tried in order on each signed request:
        {"status": 503, "times": 2, "match": "<text in the body>", "delay_ms": 0,
         "retry_after": 2, "name": "..."}
        "times" -1 is forever (default 1); a rule with "match" applies only to
        requests whose body holds that text; delay_ms alone delays the answer.
  POST /_sim/secret     {"secret": "..."}: verify with another secret from now on
  POST /_sim/reset      forget requests, events, ids and faults
--received-log FILE appends the event_id of every accepted event, one a line, flushed
before the answer. Python 3 standard library only.
"""
import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_READ_BYTES = 64 * 1024 * 1024
RULE_KEYS = {"status": int, "times": int, "match": str, "retry_after": int,
             "delay_ms": int, "name": str}


def webhook_key(secret):
    """The HMAC key of a secret: whsec_<base64> decoded, anything else as bytes."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    return secret.encode()


def sign(key, msg_id, timestamp, body):
    """The v1 signature of one message, as a sender computes it."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def parse_rules(obj):
    """Validate fault rules from POST /_sim/faults; return them as dicts."""
    rules = obj if isinstance(obj, list) else [obj]
    out = []
    for r in rules:
        if not isinstance(r, dict):
            raise ValueError("each fault rule must be a JSON object")
        for key, val in r.items():
            want = RULE_KEYS.get(key)
            if want is None:
                raise ValueError(f'unknown fault rule key "{key}"')
            if not isinstance(val, want) or isinstance(val, bool):
                raise ValueError(f'fault rule key "{key}" must be {want.__name__}')
        if r.get("times", 1) < -1:
            raise ValueError('"times" must be -1 (forever) or >= 0')
        if "status" in r and not 100 <= r["status"] <= 599:
            raise ValueError('"status" must be an HTTP status code')
        if "status" not in r and "delay_ms" not in r:
            raise ValueError('a fault rule needs "status" or "delay_ms"')
        out.append(dict(r))
    return out


class State:
    """Everything the simulator remembers; guarded by one lock."""

    def __init__(self, key, received_log=None):
        self.lock = threading.Lock()
        self.key = key
        self.received_log = received_log   # outlives reset()
        self.rule_seq = 0
        self.reset()

    def reset(self):
        with self.lock:
            self.received, self.requests, self.faults = [], [], []
            self.ids = set()
            self.by_status = {}
            self.duplicates = 0

    def add_faults(self, rules):
        with self.lock:
            for r in rules:
                self.rule_seq += 1
                r.setdefault("name", f"rule{self.rule_seq}")
                r["remaining"] = r.pop("times", 1)
                self.faults.append(r)

    def take_fault(self, body):
        """A copy of the first rule that applies (counting it down), or {}."""
        with self.lock:
            for r in self.faults:
                if r["remaining"] == 0:
                    continue
                if "match" in r and r["match"].encode() not in body:
                    continue
                if r["remaining"] > 0:
                    r["remaining"] -= 1
                return dict(r)
        return {}

    def accept(self, msg_id, events):
        """Record the events of msg_id unless it was accepted before: True when new.
        Check and record are one step, so that two concurrent deliveries of one
        message record it once."""
        with self.lock:
            if msg_id in self.ids:
                self.duplicates += 1
                return False
            self.ids.add(msg_id)
            at = int(time.time() * 1000)
            self.received.extend({"webhook_id": msg_id, "at_ms": at, "event": e}
                                 for e in events)
            if self.received_log:
                self.received_log.write("".join(f"{e.get('event_id')}\n" for e in events))
                self.received_log.flush()
            return True

    def record(self, entry):
        with self.lock:
            entry["at_ms"] = int(time.time() * 1000)
            self.requests.append(entry)
            key = str(entry["status"])
            self.by_status[key] = self.by_status.get(key, 0) + 1

    def snapshot(self, what):
        with self.lock:
            if what == "stats":
                return {"requests": len(self.requests),
                        "accepted_events": len(self.received),
                        "duplicates": self.duplicates,
                        "by_status": dict(self.by_status)}
            if what == "faults":
                return [dict(r) for r in self.faults]
            return [dict(r) for r in getattr(self, what)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "webhook-sim/1.0"
    sys_version = ""

    def log_message(self, fmt, *args):   # the default access log is not wanted
        pass

    def log_line(self, text):
        with self.server.state.lock:
            self.server.log_file.write(text + "\n")
            self.server.log_file.flush()

    def reply(self, status, body=b"", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, val in headers:
            self.send_header(name, str(val))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        length = self.headers.get("Content-Length")
        try:
            n = int(length) if length is not None else 0
            if n < 0 or n > MAX_READ_BYTES:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return None
        return self.rfile.read(n)

    def route(self):
        try:
            path = self.path.split("?", 1)[0]
            if path.startswith("/_sim/"):
                self.control(path)
            else:
                self.webhook(path)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = route

    # ---- control API ----------------------------------------------------
    def control(self, path):
        st = self.server.state
        body = self.read_body() or b""
        route = (self.command, path)
        if route in {("GET", "/_sim/received"), ("GET", "/_sim/requests"),
                     ("GET", "/_sim/stats"), ("GET", "/_sim/faults")}:
            return self.reply(200, st.snapshot(path[len("/_sim/"):]))
        if route == ("POST", "/_sim/reset"):
            st.reset()
            return self.reply(200, {"ok": True})
        if route == ("DELETE", "/_sim/faults"):
            with st.lock:
                st.faults.clear()
            return self.reply(200, {"ok": True})
        if route == ("POST", "/_sim/faults"):
            try:
                rules = parse_rules(json.loads(body or b"null"))
            except (ValueError, TypeError) as e:
                return self.reply(400, {"error": str(e)})
            st.add_faults(rules)
            return self.reply(200, st.snapshot("faults"))
        if route == ("POST", "/_sim/secret"):
            try:
                key = webhook_key(json.loads(body)["secret"])
            except (ValueError, KeyError, TypeError, binascii.Error) as e:
                return self.reply(400, {"error": f"bad secret: {e}"})
            with st.lock:
                st.key = key
            return self.reply(200, {"ok": True})
        self.reply(404, {"error": f"no control route {self.command} {path}"})

    # ---- the webhook endpoint -------------------------------------------
    def verify(self, body):
        """(status, error, signature state) of the Standard Webhooks checks; status
        None when they pass."""
        msg_id = self.headers.get("webhook-id")
        ts = self.headers.get("webhook-timestamp")
        sigs = self.headers.get("webhook-signature")
        if not msg_id or not ts or not sigs:
            return 401, "missing webhook-id, webhook-timestamp or webhook-signature", \
                "missing"
        try:
            t = int(ts)
        except ValueError:
            return 400, f"webhook-timestamp {ts!r} is not an integer", "missing"
        with self.server.state.lock:
            key = self.server.state.key
        want = sign(key, msg_id, ts, body)
        if not any(hmac.compare_digest(s.encode(), want.encode()) for s in sigs.split()):
            return 401, "no valid signature in webhook-signature", "wrong"
        off = abs(time.time() - t)
        if off > self.server.tolerance:
            return 400, f"webhook-timestamp is {off:.0f} s off (more than " \
                        f"{self.server.tolerance} s)", "ok"
        return None, None, "ok"

    def webhook(self, path):
        st = self.server.state
        body = self.read_body()
        entry = {"path": path, "webhook_id": self.headers.get("webhook-id"),
                 "timestamp": self.headers.get("webhook-timestamp"), "events": None,
                 "fault": None, "signature": None, "duplicate": False, "error": None}

        def answer(status, error=None, headers=()):
            entry.update(status=status, error=error)
            st.record(entry)
            self.log_line(f"{self.command} {path} {status} id={entry['webhook_id']} "
                          f"events={entry['events']}"
                          + (f" fault={entry['fault']}" if entry["fault"] else "")
                          + (" duplicate" if entry["duplicate"] else "")
                          + (f" error={error}" if error else ""))
            payload = {"error": error} if error else b""
            self.reply(status, payload, headers)

        if body is None:
            return answer(400, "bad Content-Length")
        if self.command != "POST":
            return answer(405, "use POST", [("Allow", "POST")])
        status, error, entry["signature"] = self.verify(body)
        if status:
            return answer(status, error)
        try:
            doc = json.loads(body.decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("type") != "relay.events":
                raise ValueError('not {"type":"relay.events", ...}')
            events = doc.get("data")
            if not isinstance(events, list) or not events or not all(
                    isinstance(e, dict) and isinstance(e.get("event_id"), str)
                    for e in events):
                raise ValueError('"data" must be a non-empty list of events with an '
                                 'event_id')
        except (UnicodeDecodeError, ValueError) as e:
            return answer(400, f"bad body: {e}")
        entry["events"] = len(events)

        rule = st.take_fault(body)
        entry["fault"] = rule.get("name")
        if rule.get("delay_ms"):
            time.sleep(rule["delay_ms"] / 1000.0)
        if "status" in rule:
            headers = [("Retry-After", rule["retry_after"])] if "retry_after" in rule else []
            return answer(rule["status"], f'injected fault "{entry["fault"]}"', headers)
        if not st.accept(entry["webhook_id"], events):
            entry["duplicate"] = True
        answer(200)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Standard Webhooks receiver for relay tests")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--secret", required=True,
                    help="whsec_<base64 key>, or any other text used as the raw key")
    ap.add_argument("--tolerance", type=int, default=300,
                    help="seconds a webhook-timestamp may be off (default 300)")
    ap.add_argument("--log", help="append the request log here instead of stderr")
    ap.add_argument("--received-log", metavar="FILE",
                    help="append the event_id of every accepted event, one a line")
    args = ap.parse_args(argv)
    try:
        key = webhook_key(args.secret)
    except binascii.Error as e:
        ap.error(f"--secret: whsec_ with a key that is not base64: {e}")

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.tolerance = args.tolerance
    received_log = open(args.received_log, "a", encoding="utf-8") if args.received_log else None
    server.state = State(key, received_log)
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
    print(f"webhook-sim listening on {args.host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        if args.log:
            server.log_file.close()
        if received_log:
            received_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
