#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (run once; the files are
committed): valid records of each topic encoded with fastavro in the
Confluent framing, a few broken ones, and mParticle answer bodies."""
import io
import json
import os
import struct

import fastavro

here = os.path.dirname(os.path.abspath(__file__))
schemas = os.path.join(here, "..", "..", "schemas")


def framed(sid, schema_file, rec):
    schema = fastavro.parse_schema(json.load(open(os.path.join(schemas, schema_file))))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, rec)
    return b"\x00" + struct.pack(">I", sid) + buf.getvalue()


def write(sub, name, data):
    os.makedirs(os.path.join(here, "corpus", sub), exist_ok=True)
    with open(os.path.join(here, "corpus", sub, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


events = [
    ("coupon", {"event_type": "coupon_issued", "identities": {"customer_id": "c-1"},
                "data": {"coupon_code": "W10", "first_name": "Ann", "points_balance": "120"}}),
    ("checkout", {"event_type": "checkout", "identities": {"email": "a@b.io"},
                  "data": {"transaction_id": "t1", "total": 9.5, "points": 3, "vip": True, "x": None}}),
    ("points", {"event_type": "point_add", "identities": {"customer_id": "c-2", "email": "z@y"},
                "data": {"points": -4, "action_reason": "r"}}),
    ("dropped", {"event_type": "profile_view", "identities": {}, "data": {}}),
]
for name, e in events:
    rec = {"event_id": "6f1c2a10-0001-4000-8000-000000000001", "occurred_at": 1764064800000,
           "tenant": "acme", "source": "antavo", **e}
    write("loyalty", name + ".bin", framed(1, "loyalty.events.avsc", rec))
write("loyalty", "not-avro.bin", b"hello")
write("loyalty", "wrong-subject.bin", b"\x00\x00\x00\x00\x64\x02a")
# The bad inputs of the integration scenarios (0002): truncated, unknown
# id, header only, a record far larger than the others.
good = framed(1, "loyalty.events.avsc", {"event_id": "e", "occurred_at": 1, "tenant": "acme",
                                         "source": "antavo", **events[0][1]})
write("loyalty", "truncated.bin", good[: len(good) // 2])
write("loyalty", "unknown-id.bin", b"\x00\x00\x00\x03\xe7" + good[5:])
write("loyalty", "empty-body.bin", good[:5])
write("loyalty", "large.bin", framed(1, "loyalty.events.avsc", {
    "event_id": "e", "occurred_at": 1, "tenant": "acme", "source": "antavo", "event_type": "x",
    "identities": {}, "data": {"note": "x" * 6000}}))

out = {"event_id": "e1", "occurred_at": 1, "tenant": "acme", "source": "antavo", "connection": "c",
       "destination": "mparticle", "environment": "development", "identity_type": "customer_id",
       "identity_value": "c-\"1\n", "event_name": "Coupon Issued", "event_category": "other",
       "attributes": {"a": "x", "n": 5, "d": 0.25, "b": False, "z": None},
       "user_attributes": {"$firstname": "Ann"}}
write("outbound", "event.bin", framed(100, "outbound.avsc", out))
write("outbound", "profile.bin", framed(100, "outbound.avsc", {**out, "event_name": None, "event_category": None}))

write("answer", "empty.txt", "")
write("answer", "errors.json", '{"errors":[{"code":"BAD_REQUEST","message":"Required event field \\"event_type\\" is missing or empty."}]}')
write("answer", "odd.json", '{"errors":[1,{"message":7}],"x":[[[]]]}')
write("answer", "html.txt", "<html><body>502 Bad Gateway</body></html>")
