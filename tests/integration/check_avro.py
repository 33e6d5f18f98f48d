#!/usr/bin/env python3
"""Independent check of relay's wire format: reads a topic's raw values as
kcat writes them with -f '%R%s' (4-byte big-endian length, then the bytes),
checks the Confluent framing (magic 0, 4-byte big-endian schema id) and
decodes the Avro body with fastavro against the schema file that the
manifest names for that id. Prints one JSON object per record, and exits 1
on the first record that does not decode."""
import io
import json
import re
import struct
import sys

import fastavro

manifest, expect_subject = sys.argv[1], sys.argv[2]
text = open(manifest).read()
schemas = {}
for m in re.finditer(r"\{[^{}]*\}", text):
    entry = m.group(0)
    sid = re.search(r"id\s*=\s*(\d+)", entry)
    f = re.search(r'file\s*=\s*"([^"]+)"', entry)
    if sid and f and expect_subject in entry:
        path = manifest.rsplit("/", 1)[0] + "/" + f.group(1)
        schemas[int(sid.group(1))] = fastavro.parse_schema(json.load(open(path)))

data = sys.stdin.buffer.read()
pos = n = 0
while pos < len(data):
    (length,) = struct.unpack(">I", data[pos:pos + 4])
    value = data[pos + 4:pos + 4 + length]
    pos += 4 + length
    if len(value) < 5 or value[0] != 0:
        sys.exit(f"record {n}: not Confluent framing (first byte {value[:1]!r})")
    (sid,) = struct.unpack(">I", value[1:5])
    if sid not in schemas:
        sys.exit(f"record {n}: schema id {sid} is not a {expect_subject} schema")
    buf = io.BytesIO(value[5:])
    rec = fastavro.schemaless_reader(buf, schemas[sid])
    if buf.tell() != len(value) - 5:
        sys.exit(f"record {n}: {len(value) - 5 - buf.tell()} trailing bytes")
    print(json.dumps(rec, default=str))
    n += 1
