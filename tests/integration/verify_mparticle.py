#!/usr/bin/env python3
"""Checks every batch the mParticle simulator received (JSON of
/_sim/received in argv[2]) against the loyalty events that were produced
(JSON lines in argv[1]) and the mapping of
deploy/config/connections/acme-antavo-mparticle.cfg: environment, identity
choice, event association, templates, typed attributes and field sync.
Batches of events not in the input file are ignored. Exits 1 naming the
first difference; prints how many batches it checked."""
import json
import sys

events = {}
for line in open(sys.argv[1]):
    if line.strip():
        e = json.loads(line)
        events[e["event_id"]] = e
received = json.load(open(sys.argv[2]))

NAMES = {"coupon_issued": ("Coupon Issued", "other"), "checkout": ("Purchase", "transaction"),
         "point_add": ("Points Changed", "other"), "point_spend": ("Points Changed", "other"),
         "opt_in": ("Loyalty Opt-in", "user_preference")}


def expected(e):
    d = e["data"]
    ids = e["identities"]
    ident = {"customer_id": ids["customer_id"]} if "customer_id" in ids else {"email": ids["email"]}
    name, kind = NAMES[e["event_type"]]
    attrs = {}
    if e["event_type"] == "coupon_issued":
        attrs = {"description": f"Coupon {d['coupon_code']} issued", "coupon_code": d["coupon_code"],
                 "channel": "loyalty"}
    elif e["event_type"] == "checkout":
        attrs = {"transaction_id": d["transaction_id"], "total": d["total"],
                 "points_earned": d.get("points", 0)}
    elif e["event_type"] in ("point_add", "point_spend"):
        attrs = {"points": d["points"], "reason": d.get("action_reason", "unspecified")}
    uattrs = {}
    for src, dst in (("first_name", "$firstname"), ("last_name", "$lastname"), ("city", "$city"),
                     ("tier", "loyalty_tier")):
        if src in d:
            uattrs[dst] = d[src]
    if "points_balance" in d:
        uattrs["loyalty_points"] = int(d["points_balance"])
    return {"schema_version": 2, "environment": "development", "source_request_id": e["event_id"],
            "timestamp_unixtime_ms": e["occurred_at"], "user_identities": ident,
            "user_attributes": uattrs,
            "events": [{"event_type": "custom_event", "data": {
                "event_name": name, "custom_event_type": kind, "source_message_id": e["event_id"],
                "timestamp_unixtime_ms": e["occurred_at"], "custom_attributes": attrs}}]}


checked = 0
for r in received:
    b = r["batch"]
    e = events.get(b.get("source_request_id"))
    if e is None:
        continue
    want = expected(e)
    if b != want:
        sys.exit(f"batch for {e['event_id']} ({e['event_type']}) differs:\n got  {json.dumps(b, sort_keys=True)}\n"
                 f" want {json.dumps(want, sort_keys=True)}")
    if r["path"] != "/v2/bulkevents":
        sys.exit(f"batch for {e['event_id']} went to {r['path']}")
    checked += 1
print(f"{checked} batches match their events")
