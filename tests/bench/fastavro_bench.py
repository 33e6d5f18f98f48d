#!/usr/bin/env python3
"""The Python reference for avro_bench: fastavro doing the same decode ->
encode of the same framed loyalty record (written by `avro_bench
--frame-out`), so tests/bench/run.sh can print relay's speed as a ratio of
fastavro's measured in the same run on the same machine.

Each round times N iterations of schemaless_reader (from a BytesIO over
the Avro body, after the 5-byte Confluent header) -> schemaless_writer into
a new BytesIO, with the schema parsed once, twice over:

- "fastavro": the schema as it is, so fastavro turns event_id into a
  uuid.UUID and occurred_at into a datetime and back, as a Python worker on
  this schema would;
- "fastavro-raw": the same schema without its logicalType annotations,
  plain strings and longs: the same work relay does, which keeps them raw.

Prints one JSON line per variant and round, the same fields as avro_bench,
and "median" lines when --rounds > 1.
Timings are printed, never judged. Exits 1 when the frame is not in the
Confluent format or does not survive decode -> encode byte for byte.
"""
import argparse
import io
import json
import os
import statistics
import sys
import time

from fastavro import parse_schema, schemaless_reader, schemaless_writer

HEADER_LEN = 5


def without_logical_types(schema):
    """A copy of a schema (as JSON) with every logicalType removed."""
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items()
                if k != "logicalType"}
    if isinstance(schema, list):
        return [without_logical_types(v) for v in schema]
    return schema


def roundtrip(body, schema):
    rec = schemaless_reader(io.BytesIO(body), schema)
    out = io.BytesIO()
    schemaless_writer(out, schema, rec)
    return out.getvalue()


def time_rounds(body, schema, n):
    """(wall seconds, CPU seconds) for n round trips."""
    # Local names: the loop measures fastavro, not global lookups.
    reader, writer, BytesIO = schemaless_reader, schemaless_writer, io.BytesIO
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        rec = reader(BytesIO(body), schema)
        writer(BytesIO(), schema, rec)
    return time.perf_counter() - t0, time.process_time() - c0


def line(bench, round_, n, frame_bytes, seconds, cpu_seconds):
    per_s = n / seconds if seconds > 0 else 0.0
    return json.dumps({
        "bench": bench, "round": round_, "records": n,
        "frame_bytes": frame_bytes, "seconds": round(seconds, 6),
        "cpu_seconds": round(cpu_seconds, 6),
        "records_per_s": round(per_s), "mb_per_s": round(per_s * frame_bytes / 1e6, 2),
        "ns_per_record": round(seconds * 1e9 / n, 1)})


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frame", required=True,
                    help="the framed record avro_bench --frame-out wrote")
    ap.add_argument("--schema",
                    default=os.path.join(here, "..", "..", "schemas", "loyalty.events.avsc"))
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if args.records < 1 or args.rounds < 1:
        ap.error("--records and --rounds must be at least 1")

    with open(args.frame, "rb") as f:
        frame = f.read()
    if len(frame) < HEADER_LEN or frame[0] != 0:
        print(f"fastavro_bench: {args.frame}: not a Confluent-framed record",
              file=sys.stderr)
        return 1
    body = frame[HEADER_LEN:]
    with open(args.schema) as f:
        schema_json = json.load(f)
    variants = {"fastavro": parse_schema(schema_json),
                "fastavro-raw": parse_schema(without_logical_types(schema_json))}

    for name, schema in variants.items():
        try:
            again = roundtrip(body, schema)
        except Exception as e:  # fastavro raises many types on bad data
            print(f"fastavro_bench: {name}: cannot decode the frame: {e!r}",
                  file=sys.stderr)
            return 1
        if again != body:
            print(f"fastavro_bench: {name}: decode -> encode changed the record: "
                  f"{len(body)} body bytes in, {len(again)} out", file=sys.stderr)
            return 1
    print(json.dumps({"bench": "frame", "frame_bytes": len(frame),
                      "roundtrip": "identical"}), flush=True)

    for schema in variants.values():  # warm up
        time_rounds(body, schema, max(1000, args.records // 10))
    times = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, schema in variants.items():
            times[name].append(time_rounds(body, schema, args.records))
            print(line(name, r + 1, args.records, len(frame), *times[name][-1]),
                  flush=True)
    if args.rounds > 1:
        for name, t in times.items():
            print(line(name, "median", args.records, len(frame),
                       statistics.median(x[0] for x in t),
                       statistics.median(x[1] for x in t)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
