#!/usr/bin/env python3
"""Pretty-prints what the demo shows: the simulator's received batches and
answered requests (JSON from its control API on stdin), and dead-letter
records (relayctl dlq list output on stdin)."""
import json
import sys


def received():
    for r in json.load(sys.stdin):
        b = r["batch"]
        ev = (b.get("events") or [{}])[0].get("data", {})
        print(json.dumps({"env": b["environment"], "identity": b["user_identities"],
                          "event": ev.get("event_name"), "type": ev.get("custom_event_type"),
                          "attributes": ev.get("custom_attributes"),
                          "user_attributes": b["user_attributes"]}))


def requests():
    for r in json.load(sys.stdin):
        fault = f" (fault {r['fault']})" if r["fault"] else ""
        if 200 <= r["status"] < 300:
            print(f"{r['path']} -> {r['status']}, {r['batches']} batch(es){fault}")
        else:
            # A refused request has no batch count (the simulator never got
            # as far as taking batches): say why it was refused instead.
            why = r.get("error") or "no reason given"
            print(f"{r['path']} -> {r['status']} (refused): {why}{fault}")


def dlq():
    for line in sys.stdin:
        r = json.loads(line)
        h = r["headers"]
        value = r.get("value") or {}
        what = value.get("event_id") if isinstance(value, dict) else None
        print(f"{h['relay.original_topic']}[{h['relay.original_partition']}]@{h['relay.original_offset']}"
              f" {what or '(undecodable)'} stage={h['relay.stage']} status={h.get('relay.http_status', '-')}"
              f" attempts={h['relay.attempts']}: {h['relay.error']}")


if __name__ == "__main__":
    {"received": received, "requests": requests, "dlq": dlq}[sys.argv[1]]()
