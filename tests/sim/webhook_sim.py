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
import sys
import time

import simlib


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
    return simlib.parse_rules(obj, check=simlib.need_status_or_delay)


class State(simlib.State):
    """Everything the simulator remembers; guarded by one lock."""

    def __init__(self, key, received_log=None):
        self.received_log = received_log   # outlives reset()
        super().__init__()
        self.key = key

    def clear(self):
        super().clear()
        self.ids = set()
        self.duplicates = 0

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

    def stats(self):
        return {"requests": len(self.requests),
                "accepted_events": len(self.received),
                "duplicates": self.duplicates,
                "by_status": dict(self.by_status)}


class Handler(simlib.Handler):
    server_version = "webhook-sim/1.0"
    fault_rules = staticmethod(parse_rules)
    do_PATCH = simlib.Handler.route

    def api(self, path):
        self.webhook(path)

    def control_more(self, route, body):
        if route == ("POST", "secret"):
            try:
                key = webhook_key(json.loads(body)["secret"])
            except (ValueError, KeyError, TypeError, binascii.Error) as e:
                return self.reply(400, {"error": f"bad secret: {e}"})
            with self.server.state.lock:
                self.server.state.key = key
            return self.reply(200, {"ok": True})
        return False

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
        simlib.pause(rule)
        if "status" in rule:
            return answer(rule["status"], f'injected fault "{entry["fault"]}"',
                          simlib.retry_after(rule))
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

    server = simlib.make_server(args.host, args.port, Handler)
    server.tolerance = args.tolerance
    received_log = open(args.received_log, "a", encoding="utf-8") if args.received_log else None
    server.state = State(key, received_log)
    return simlib.serve(server, args, "webhook-sim", close=(received_log,))


if __name__ == "__main__":
    sys.exit(main())
