#!/usr/bin/env python3
"""A CM.com CDP Events API (v1.0) simulator for relay's cmcdp adapter: the integration
tests point relay-deliver at it and assert on what it accepted.

Routes (PLATFORMS.md section 5):
  POST /events/v1.0/tenants/{tenantId}/events                 batch: a JSON array of
       {"EventTypeId": "<guid>", "Event": {...flat fields...}}
  POST /events/v1.0/tenants/{tenantId}/events/{eventTypeId}   per type: a JSON array
       of flat event objects
It checks, in this order:
  - the path is one of the above (else 404) and tenantId is a GUID (else 400) and the
    simulator's --tenant (else 404, "tenant not found");
  - the product token, from the X-CM-PRODUCTTOKEN header or, unless --no-query-token,
    the producttoken query parameter: missing 401, not --token 401 (or
    --wrong-token-status);
  - the body: a non-empty JSON array whose items are objects with an EventTypeId that is
    a GUID of an event type given with --event-type, and an Event that is an object of
    scalar values, with only the type's fields when --event-type gave it a field list
    (per-type path: the path's eventTypeId, and the items are the flat events);
    else 400 with {"message": ..., "errors": [{"index": i, "message": ...}]} (the first
    few problems; the body's shape is unconfirmed);
  - faults (below).
A request that passes is answered --success-status (default 200; CM's exact code is
unconfirmed) with an empty body and its events are recorded. CM.com has no idempotency
key, so a request sent twice is recorded twice: that is what tests look for.

--event-type NAME=GUID or NAME=GUID:Field 1|Field 2|... (repeatable) defines the
tenant's event types (the field list, when given, is the type's definition).

Tests start it with `--port 0 --port-file F`, wait for F, and use the control API:
  GET  /_sim/received   every accepted event, a JSON list of {"event_type_id",
                        "event_type" (its name), "at_ms", "event"} in the order accepted
  GET  /_sim/requests   every request: at_ms, path, status, events, types (the event
                        type names of a valid body), token ("ok", "missing", "wrong"),
                        token_in ("header", "query", None), fault, error
  GET  /_sim/stats      {"requests", "accepted_events", "by_status"}
  GET|POST|DELETE /_sim/faults   fault rules, tried in order on each valid request:
        {"status": 503, "times": 2, "match": "<text in the body>", "delay_ms": 0,
         "retry_after": 2, "name": "..."}
        "times" -1 is forever (default 1); a rule with "match" applies only to
        requests whose body holds that text; delay_ms alone delays the answer.
  POST /_sim/token      {"token": "..."}: accept another product token from now on
  POST /_sim/reset      forget requests, events and faults
Python 3 standard library only.
"""
import argparse
import json
import re
import sys
import time
import urllib.parse

import simlib

MAX_ERRORS = 10
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{12}$")
PATH = re.compile(r"^/events/v1\.0/tenants/([^/]+)/events(?:/([^/]+))?$")


def is_guid(s):
    return isinstance(s, str) and GUID.match(s) is not None


def parse_event_type(text):
    """NAME=GUID[:Field|Field...] -> (guid lower-cased, name, fields or None)."""
    name, sep, rest = text.partition("=")
    guid, _, fields = rest.partition(":")
    if not sep or not name.strip() or not is_guid(guid.strip()):
        raise ValueError(f"--event-type {text!r}: want NAME=GUID[:Field|Field...]")
    return (guid.strip().lower(), name.strip(),
            set(f for f in fields.split("|") if f) if fields else None)


def parse_rules(obj):
    """Validate fault rules from POST /_sim/faults; return them as dicts."""
    return simlib.parse_rules(obj, check=simlib.need_status_or_delay)


def check_events(items, types, path_type):
    """(events as (guid, event) pairs, problems as [{"index", "message"}])."""
    if not isinstance(items, list) or not items:
        return [], [{"index": None, "message": "the body must be a non-empty JSON array"}]
    events, problems = [], []
    for i, item in enumerate(items):
        if path_type is not None:
            guid, event = path_type, item
        elif not isinstance(item, dict):
            problems.append({"index": i, "message": "not an object"})
            continue
        else:
            extra = set(item) - {"EventTypeId", "Event"}
            if extra:
                problems.append({"index": i, "message":
                                 f"unknown properties {sorted(extra)}"})
                continue
            guid, event = item.get("EventTypeId"), item.get("Event")
            if not is_guid(guid):
                problems.append({"index": i, "message":
                                 f"EventTypeId {guid!r} is not a GUID"})
                continue
            guid = guid.lower()
            if guid not in types:
                problems.append({"index": i, "message":
                                 f"unknown EventTypeId {guid}"})
                continue
        if not isinstance(event, dict) or not event:
            problems.append({"index": i, "message": "Event must be a non-empty object"})
            continue
        nested = [k for k, v in event.items() if isinstance(v, (dict, list))]
        if nested:
            problems.append({"index": i, "message":
                             f"fields {nested} are not flat values"})
            continue
        fields = types[guid][1]
        unknown = sorted(set(event) - fields) if fields is not None else []
        if unknown:
            problems.append({"index": i, "message":
                             f"fields {unknown} are not in event type "
                             f"{types[guid][0]!r}"})
            continue
        events.append((guid, event))
    return events, problems


class State(simlib.State):
    """Everything the simulator remembers; guarded by one lock."""

    def __init__(self, token):
        super().__init__()
        self.token = token

    def accept(self, events, types):
        with self.lock:
            at = int(time.time() * 1000)
            self.received.extend({"event_type_id": g, "event_type": types[g][0],
                                  "at_ms": at, "event": e} for g, e in events)

    def stats(self):
        return {"requests": len(self.requests),
                "accepted_events": len(self.received),
                "by_status": dict(self.by_status)}


class Handler(simlib.Handler):
    server_version = "cmcdp-sim/1.0"
    fault_rules = staticmethod(parse_rules)
    do_PATCH = simlib.Handler.route

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_sim/"):
            self.control(url.path)
        else:
            self.events(url)

    def control_more(self, route, body):
        st = self.server.state
        if route == ("POST", "token"):
            try:
                token = json.loads(body)["token"]
                if not isinstance(token, str) or not token:
                    raise ValueError("token must be a non-empty string")
            except (ValueError, KeyError, TypeError) as e:
                return self.reply(400, {"error": f"bad token: {e}"})
            with st.lock:
                st.token = token
            return self.reply(200, {"ok": True})
        return False

    # ---- the Events API -------------------------------------------------
    def token(self, query):
        """(token given, where it came from)."""
        tok = self.headers.get("X-CM-PRODUCTTOKEN")
        if tok is not None:
            return tok, "header"
        if self.server.query_token:
            vals = urllib.parse.parse_qs(query, keep_blank_values=True).get("producttoken")
            if vals:
                return vals[0], "query"
        return None, None

    def events(self, url):
        st, srv = self.server.state, self.server
        body = self.read_body()
        entry = {"path": url.path, "events": None, "types": None, "token": None,
                 "token_in": None, "fault": None, "error": None}

        def answer(status, error=None, headers=(), problems=None):
            entry.update(status=status, error=error)
            st.record(entry)
            self.log_line(f"{self.command} {url.path} {status} events={entry['events']}"
                          f" token={entry['token']}"
                          + (f" fault={entry['fault']}" if entry["fault"] else "")
                          + (f" error={error}" if error else ""))
            payload = b""
            if error:
                payload = {"message": error}
                if problems is not None:
                    payload["errors"] = problems
            self.reply(status, payload, headers)

        if body is None:
            return answer(400, "bad Content-Length")
        m = PATH.match(url.path)
        if not m:
            return answer(404, f"no route {url.path}")
        if self.command != "POST":
            return answer(405, "use POST", [("Allow", "POST")])
        tenant, path_type = m.group(1), m.group(2)
        if not is_guid(tenant):
            return answer(400, f"tenantId {tenant!r} is not a GUID")
        if tenant.lower() != srv.tenant:
            return answer(404, "tenant not found")
        if path_type is not None:
            if not is_guid(path_type):
                return answer(400, f"eventTypeId {path_type!r} is not a GUID")
            path_type = path_type.lower()
            if path_type not in srv.types:
                return answer(404, "event type not found")
        tok, entry["token_in"] = self.token(url.query)
        with st.lock:
            want = st.token
        if tok is None:
            entry["token"] = "missing"
            return answer(401, "no product token")
        if tok != want:
            entry["token"] = "wrong"
            return answer(srv.wrong_token_status, "product token refused")
        entry["token"] = "ok"
        try:
            items = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return answer(400, f"the body is not JSON: {e}")
        events, problems = check_events(items, srv.types, path_type)
        if problems:
            return answer(400, f"{len(problems)} invalid event(s)",
                          problems=problems[:MAX_ERRORS])
        entry["events"] = len(events)
        entry["types"] = sorted({srv.types[g][0] for g, _ in events})

        rule = st.take_fault(body)
        entry["fault"] = rule.get("name")
        simlib.pause(rule)
        if "status" in rule:
            return answer(rule["status"], f'injected fault "{entry["fault"]}"',
                          simlib.retry_after(rule))
        st.accept(events, srv.types)
        answer(srv.success_status)


def main(argv=None):
    ap = argparse.ArgumentParser(description="CM.com CDP Events API simulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--tenant", required=True, help="the tenant's GUID")
    ap.add_argument("--token", required=True, help="the tenant's product token")
    ap.add_argument("--event-type", action="append", default=[], metavar="SPEC",
                    help="NAME=GUID[:Field|Field...], repeatable")
    ap.add_argument("--no-query-token", action="store_true",
                    help="take the token only from the X-CM-PRODUCTTOKEN header")
    ap.add_argument("--wrong-token-status", type=int, default=401, choices=(401, 403))
    ap.add_argument("--success-status", type=int, default=200)
    ap.add_argument("--log", help="append the request log here instead of stderr")
    args = ap.parse_args(argv)
    if not is_guid(args.tenant):
        ap.error(f"--tenant {args.tenant!r} is not a GUID")
    types = {}
    for spec in args.event_type:
        try:
            guid, name, fields = parse_event_type(spec)
        except ValueError as e:
            ap.error(str(e))
        types[guid] = (name, fields)
    if not 200 <= args.success_status < 300:
        ap.error("--success-status must be a 2xx")

    server = simlib.make_server(args.host, args.port, Handler)
    server.tenant = args.tenant.lower()
    server.types = types
    server.query_token = not args.no_query_token
    server.wrong_token_status = args.wrong_token_status
    server.success_status = args.success_status
    server.state = State(args.token)
    return simlib.serve(server, args, "cmcdp-sim")


if __name__ == "__main__":
    sys.exit(main())
