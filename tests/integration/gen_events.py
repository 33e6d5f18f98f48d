#!/usr/bin/env python3
"""Writes N Antavo loyalty events (relay's loyalty.events JSON) to stdout and
their event ids to --ids. Ids are <prefix-derived uuid>, so scenarios can
tell their events apart on a shared broker."""
import argparse
import json
import uuid

ap = argparse.ArgumentParser()
ap.add_argument("--count", type=int, required=True)
ap.add_argument("--prefix", required=True)
ap.add_argument("--ids")
ap.add_argument("--tenant", default="acme")
ap.add_argument("--store", action="store_true",
                help="add version 2's store field (every 3rd event has none)")
args = ap.parse_args()

kinds = ["coupon_issued", "checkout", "point_add", "opt_in"]
ids = []
for i in range(args.count):
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{args.prefix}-{i}"))
    ids.append(eid)
    kind = kinds[i % len(kinds)]
    data = {"first_name": f"Name{i}", "points_balance": str(i * 10), "tier": "silver"}
    if kind == "coupon_issued":
        data["coupon_code"] = f"C{i:05d}"
    elif kind == "checkout":
        data.update(transaction_id=f"tx-{args.prefix}-{i}", total=i + 0.5, points=i)
    elif kind == "point_add":
        data.update(points=i, action_reason="test")
    ident = {"customer_id": f"{args.prefix}-cust-{i % 17}"}
    if i % 5 == 0:
        ident = {"email": f"{args.prefix}-{i}@example.com"}
    event = {"event_id": eid, "occurred_at": 1764000000000 + i,
             "tenant": args.tenant, "source": "antavo", "event_type": kind,
             "identities": ident, "data": data}
    if args.store:
        event["store"] = None if i % 3 == 2 else {"id": f"S{i % 7}", "country": "DE"}
    print(json.dumps(event))
if args.ids:
    with open(args.ids, "w") as f:
        f.write("\n".join(ids) + "\n")
