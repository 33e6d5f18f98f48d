#!/usr/bin/env python3
"""Writes raw Kafka values for the bad-input scenario into directory argv[1],
one file per record (kcat -P sends each file as one message), encoded with
fastavro (not our encoder):
  good-foreign.bin   a valid loyalty event, Confluent-framed, id 1
  not-avro.bin       plain text
  unknown-id.bin     magic 0, schema id 999, then Avro bytes
  wrong-subject.bin  magic 0, the id of out.mparticle's schema (100)
  truncated.bin      a valid record cut short
  empty-body.bin     only the 5-byte header
  too-large.bin      a valid record of about 6 KB (the scenario's limit
                     is 4096 bytes)
The good record's event id is argv[2]."""
import io
import json
import os
import struct
import sys

import fastavro

out, event_id = sys.argv[1], sys.argv[2]
src = os.path.join(os.path.dirname(__file__), "..", "..", "schemas")
schema = fastavro.parse_schema(json.load(open(os.path.join(src, "loyalty.events.avsc"))))
event = {"event_id": event_id, "occurred_at": 1764000000000, "tenant": "acme", "source": "antavo",
         "event_type": "coupon_issued", "identities": {"customer_id": "foreign-1"},
         "data": {"coupon_code": "FOREIGN1", "first_name": "Fay", "points_balance": "7"}}
buf = io.BytesIO()
fastavro.schemaless_writer(buf, schema, event)
body = buf.getvalue()


def framed(sid, b):
    return b"\x00" + struct.pack(">I", sid) + b


big = dict(event, data={"note": "x" * 6000})
buf = io.BytesIO()
fastavro.schemaless_writer(buf, schema, big)
big_body = buf.getvalue()

files = {
    "good-foreign.bin": framed(1, body),
    "not-avro.bin": b"this is not avro at all",
    "unknown-id.bin": framed(999, body),
    "wrong-subject.bin": framed(100, body),
    "truncated.bin": framed(1, body[: len(body) // 2]),
    "empty-body.bin": framed(1, b""),
    "too-large.bin": framed(1, big_body),
}
for name, data in files.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
