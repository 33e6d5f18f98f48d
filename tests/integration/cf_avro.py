#!/usr/bin/env python3
"""Confluent's own Python client (confluent-kafka, its AvroSerializer and
schema-registry client) as the independent producer and decoder of the
registry scenarios.

  cf_avro.py produce BOOTSTRAP REGISTRY TOPIC SCHEMA.avsc < events.jsonl
      registers SCHEMA under <TOPIC>-value (the serializer's default,
      auto.register.schemas) and produces each JSON line, keyed by the
      event id; prints the schema id it wrote with
  cf_avro.py frame REGISTRY TOPIC SCHEMA.avsc OUTDIR < events.jsonl
      serializes without producing: one file per record (OUTDIR/N.bin),
      for kcat -P to send later
  cf_avro.py consume BOOTSTRAP REGISTRY TOPIC COUNT
      reads COUNT records from the start of TOPIC and prints each value
      decoded by AvroDeserializer (schemas fetched from the registry by
      the id in the frame) as one JSON line with its schema id; exits 1 if
      fewer arrive within 60 s
"""
import json
import os
import struct
import sys
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext


def serializer(registry, schema_file):
    client = SchemaRegistryClient({"url": registry})
    with open(schema_file) as f:
        return AvroSerializer(client, f.read())


def frame_id(b):
    return struct.unpack(">I", b[1:5])[0]


def produce(bootstrap, registry, topic, schema_file):
    ser = serializer(registry, schema_file)
    ctx = SerializationContext(topic, MessageField.VALUE)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failed, ids = [], set()
    for line in sys.stdin:
        ev = json.loads(line)
        value = ser(ev, ctx)
        ids.add(frame_id(value))
        p.produce(topic, key=ev["event_id"].encode(), value=value,
                  on_delivery=lambda err, msg: err and failed.append(err))
        p.poll(0)
    if p.flush(30) or failed:
        sys.exit(f"cf_avro: {len(failed)} record(s) not acknowledged: {failed[:3]}")
    print(" ".join(str(i) for i in sorted(ids)))


def frame(registry, topic, schema_file, outdir):
    ser = serializer(registry, schema_file)
    ctx = SerializationContext(topic, MessageField.VALUE)
    for n, line in enumerate(sys.stdin):
        value = ser(json.loads(line), ctx)
        with open(os.path.join(outdir, f"{n}.bin"), "wb") as f:
            f.write(value)
        print(frame_id(value))


def consume(bootstrap, registry, topic, count):
    de = AvroDeserializer(SchemaRegistryClient({"url": registry}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"cf-check-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, end = 0, time.time() + 60
    while got < count and time.time() < end:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        v = de(m.value(), ctx)
        print(json.dumps({"schema_id": frame_id(m.value()), "value": v},
                         default=str, sort_keys=True))
        got += 1
    c.close()
    if got < count:
        sys.exit(f"cf_avro: {got} of {count} records arrived on {topic}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "produce":
        produce(*args)
    elif cmd == "frame":
        frame(*args)
    elif cmd == "consume":
        consume(args[0], args[1], args[2], int(args[3]))
    else:
        sys.exit(__doc__)
