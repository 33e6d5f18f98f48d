#!/usr/bin/env python3
"""A polled source's events API, for relay-poll: the integration tests point
relay-poll at it and assert on what it was asked and what reached Kafka.

It serves events shaped as Antavo's ({"id", "customer", "email", "action",
"created_at" (ISO-8601 UTC with ms), "data": {...}}) from one or more named feeds:

  GET /feeds/{feed}/events?from=<t>&to=<t>[&cursor=C | &page=N][&limit=L]
      the feed's events with from <= created_at < to, in (created_at, id) order,
      a page of at most L (default --page-size) at a time. With --paging cursor
      (default) the answer is {"data": [...], "next_cursor": "<opaque>" | null};
      with --paging page, pages are numbered from 1 and the answer is
      {"data": [...], "page": N} (a page shorter than L is the last).
It checks, in this order:
  - the token: --token-in query (default; the api_key parameter) or header
    (Authorization: Bearer <token>): missing or wrong 401 {"error": ...};
  - the window: from and to present and ISO-8601 (or epoch ms with
    --time-format epoch_ms), from <= to, and to not in the future (events there
    may still be written): else 400 naming the problem;
  - the cursor (it must be one this simulator gave for the same window) or page;
  - faults (below): a rule's "match" is looked for in the request's path and query.

Tests start it with `--port 0 --port-file F`, wait for F, and use the control API:
  POST /_sim/events     {"feed": "f", "events": [...]} or a list of events (feed
                        "main"): added to the feed; an event without created_at gets now
  POST /_sim/generate   {"feed": "f", "count": N, "from_ms": t0, "to_ms": t1,
                        "prefix": "p"}: N events spread evenly over [t0, t1)
  GET  /_sim/requests   every request: at_ms, feed, from, to (ms), cursor, page,
                        limit, status, returned (events), ids (their ids), token
                        ("ok", "missing", "wrong"), user_agent, fault, error
  GET  /_sim/stats      {"requests", "events", "by_status"}
  GET|POST|DELETE /_sim/faults   fault rules, tried in order on each request that
                        passed the checks: {"status": 503, "times": 2, "match": "...",
                        "delay_ms": 0, "retry_after": 2, "name": "..."}
  POST /_sim/token      {"token": "..."}: accept another token from now on
  POST /_sim/reset      forget requests and faults (the events stay)
  POST /_sim/wipe       forget the events too
Python 3 standard library only.
"""
import argparse
import base64
import bisect
import datetime
import json
import threading
import time
import urllib.parse

import simlib


def iso(ms):
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(text, fmt):
    """ms since the epoch, or None."""
    if text is None:
        return None
    try:
        if fmt == "epoch_ms":
            return int(text)
        if fmt == "epoch_s":
            return int(text) * 1000
        d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if d.tzinfo is None:
            d = d.replace(tzinfo=datetime.timezone.utc)
        return round(d.timestamp() * 1000)
    except ValueError:
        return None


class State(simlib.State):
    def __init__(self, token):
        self.feeds = {}   # feed -> sorted list of (created_ms, id, event)
        super().__init__()
        self.token = token

    def reset_events(self):
        with self.lock:
            self.feeds = {}

    def add(self, feed, events):
        now = int(time.time() * 1000)
        with self.lock:
            lst = self.feeds.setdefault(feed, [])
            for e in events:
                e = dict(e)
                if "created_at" not in e:
                    e["created_at"] = iso(now)
                ms = parse_time(e["created_at"], "iso8601")
                bisect.insort(lst, (ms, str(e.get("id", "")), e))
            return len(lst)

    def window(self, feed, start, end):
        with self.lock:
            lst = self.feeds.get(feed, [])
            lo = bisect.bisect_left(lst, (start,))
            hi = bisect.bisect_left(lst, (end,))
            return [e for _, _, e in lst[lo:hi]]

    def stats(self):
        return {"requests": len(self.requests),
                "events": sum(len(v) for v in self.feeds.values()),
                "by_status": dict(self.by_status)}


def parse_rules(obj):
    return simlib.parse_rules(obj, check=simlib.need_status_or_delay)


def cursor_for(start, end, offset):
    raw = json.dumps([start, end, offset]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_read(text, start, end):
    """The offset a cursor names for this window, or None."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        s, e, off = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if (s, e) != (start, end) or not isinstance(off, int) or off < 0:
        return None
    return off


class Handler(simlib.Handler):
    server_version = "poll-sim/1.0"
    fault_rules = staticmethod(parse_rules)
    json_control = True

    def control_more(self, route, arg):
        st = self.server.state
        if route == ("POST", "events"):
            if isinstance(arg, list):
                arg = {"feed": "main", "events": arg}
            if not isinstance(arg, dict) or not isinstance(arg.get("events"), list):
                return self.reply(400, {"error": "want {feed, events: [...]}"})
            n = st.add(arg.get("feed", "main"), arg["events"])
            return self.reply(200, {"ok": True, "events": n})
        if route == ("POST", "generate"):
            feed, n = arg.get("feed", "main"), int(arg["count"])
            t0, t1, prefix = int(arg["from_ms"]), int(arg["to_ms"]), arg.get("prefix", feed)
            evs = []
            for i in range(n):
                ms = t0 + (t1 - t0) * i // max(n, 1)
                evs.append({"id": f"{prefix}-{i:06d}", "customer": f"{prefix}-c{i % 13}",
                            "email": f"{prefix}{i % 13}@example.com",
                            "action": ("point_add", "checkout", "opt_in")[i % 3],
                            "created_at": iso(ms),
                            "data": {"points": i, "tier": "gold", "order": {"total": i / 4},
                                     "items": [{"sku": f"s{i}"}]}})
            return self.reply(200, {"ok": True, "events": st.add(feed, evs)})
        if route == ("POST", "token"):
            with st.lock:
                st.token = arg["token"]
            return self.reply(200, {"ok": True})
        if route == ("POST", "wipe"):
            st.reset_events()
            st.reset()
            return self.reply(200, {"ok": True})
        return False

    def api(self, path):
        st, a = self.server.state, self.server.args
        parts = path.strip("/").split("/")
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        entry = {"path": path, "feed": None, "from": None, "to": None,
                 "cursor": q.get("cursor"), "page": q.get("page"),
                 "limit": q.get("limit"), "returned": 0, "ids": [],
                 "token": "ok", "user_agent": self.headers.get("User-Agent"),
                 "fault": None, "error": None}

        def answer(status, body, headers=()):
            entry["status"] = status
            if status >= 400 and isinstance(body, dict):
                entry["error"] = body.get("error")
            st.record(entry)
            self.reply(status, body, headers)

        if self.command != "GET" or len(parts) != 3 or parts[0] != "feeds" \
                or parts[2] != "events":
            return answer(404, {"error": "not found"})
        entry["feed"] = parts[1]
        if a.token_in == "query":
            got = q.get("api_key")
        else:
            h = self.headers.get("Authorization")
            got = h[len("Bearer "):] if h and h.startswith("Bearer ") else None
        with st.lock:
            token = st.token
        if got is None:
            entry["token"] = "missing"
            return answer(401, {"error": "authentication required"})
        if got != token:
            entry["token"] = "wrong"
            return answer(401, {"error": "invalid token"})
        start = parse_time(q.get("from"), a.time_format)
        end = parse_time(q.get("to"), a.time_format)
        entry["from"], entry["to"] = start, end
        if start is None or end is None:
            return answer(400, {"error": "from and to must be times"})
        if start > end:
            return answer(400, {"error": "from is after to"})
        if end > time.time() * 1000:
            return answer(400, {"error": "to is in the future"})
        try:
            limit = int(q.get("limit", a.page_size))
        except ValueError:
            return answer(400, {"error": "limit must be a number"})
        if not 1 <= limit <= a.max_limit:
            return answer(400, {"error": f"limit must be 1..{a.max_limit}"})
        if a.paging == "cursor":
            off = 0
            if "cursor" in q:
                off = cursor_read(q["cursor"], start, end)
                if off is None:
                    return answer(400, {"error": "bad cursor"})
        else:
            try:
                page = int(q.get("page", "1"))
            except ValueError:
                page = 0
            if page < 1:
                return answer(400, {"error": "page must be 1 or more"})
            off = (page - 1) * limit
        rule = st.take_fault(self.path)
        if rule:
            entry["fault"] = rule.get("name")
            simlib.pause(rule)
            if "status" in rule:
                return answer(rule["status"], {"error": f'injected fault "{rule.get("name")}"'},
                              simlib.retry_after(rule, busy=True))
        events = st.window(entry["feed"], start, end)
        chunk = events[off:off + limit]
        entry["returned"] = len(chunk)
        entry["ids"] = [e.get("id") for e in chunk]
        if a.paging == "cursor":
            more = off + limit < len(events)
            body = {"data": chunk,
                    "next_cursor": cursor_for(start, end, off + limit) if more else None}
        else:
            body = {"data": chunk, "page": off // limit + 1}
        answer(200, body)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--token", required=True)
    ap.add_argument("--token-in", choices=("query", "header"), default="query")
    ap.add_argument("--paging", choices=("cursor", "page"), default="cursor")
    ap.add_argument("--time-format", choices=("iso8601", "epoch_s", "epoch_ms"),
                    default="iso8601")
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--max-limit", type=int, default=1000)
    args = ap.parse_args(argv)
    server = simlib.make_server(args.host, args.port, Handler)
    server.state = State(args.token)
    server.args = args
    return simlib.serve(server, args, "poll-sim")


if __name__ == "__main__":
    raise SystemExit(main())
