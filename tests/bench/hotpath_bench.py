#!/usr/bin/env python3
"""Helpers of tests/bench/hotpath.sh (Python 3.11 with confluent_kafka;
`live` also needs fastavro). Offsets are "P=OFFSET" words, one per
partition.

  hotpath_bench.py ends BOOTSTRAP TOPIC
      TOPIC's high watermarks (the next offset of each partition), as
      P=OFFSET words on one line.
  hotpath_bench.py seed BOOTSTRAP GROUP TOPIC P=OFFSET ...
      Commits those offsets for GROUP without joining it (the group must
      have no members), so that a worker of that group starts there: a
      fresh group that reads only the records after them.
  hotpath_bench.py wait BOOTSTRAP GROUP TOPIC TIMEOUT_S P=OFFSET ...
      Prints "ready", then polls GROUP's committed offsets every 50 ms,
      without joining the group, until every partition's reaches its
      target; prints "last_ns total first_ns" (total: the committed
      offsets' sum; first_ns: when they first moved past where they were
      at the start), exit 0; after TIMEOUT_S exit 1 with what it saw. One long-lived
      client, so that the poll costs the worker next to nothing.
  hotpath_bench.py live BOOTSTRAP TOPIC RATE WARM_S SECONDS PREFIX MANIFEST
                   WARM_TIMES TIMES
      Produces RATE loyalty events a second for WARM_S and then SECONDS
      more, without a pause (events shaped like tests/integration/
      gen_events.py makes, Confluent-framed Avro with the manifest's
      schema id), each produced at its own time on a fixed schedule (not
      in bursts); appends "event_id<TAB>produce_ns" per event (wall clock
      just before produce()) to WARM_TIMES for the first WARM_S, to TIMES
      after. Prints "warm_events events late_ms" (late_ms: how far the
      producer fell behind its schedule at worst). Exit 1 when a record is
      not acknowledged or the schedule slipped by over a second.
  hotpath_bench.py latency PRODUCED RECEIVED
      Latency per event (receive_ns - produce_ns; RECEIVED as the
      simulator's --receive-times writes it, the first arrival of an id
      counting): prints "count p50_ms p99_ms p999_ms max_ms"; exit 1 when
      an event produced never arrived.
  hotpath_bench.py tap BOOTSTRAP TOPICS SECONDS OUT
      Sets the topics (comma-separated) to the broker's append time and
      reads them from their ends for SECONDS, appending
      "topic<TAB>event_id<TAB>timestamp_ms<TAB>receive_ns" per record.
  hotpath_bench.py stages PRODUCED TAPPED RECEIVED
      The latency split by stage (test producer, relay-transform,
      relay-deliver, and a plain reader of out.mparticle for comparison):
      p50, p99 and max of each.
  hotpath_bench.py slow METRICS
      From relay-deliver's /metrics text: its requests and how many took
      over 50, 100 and 250 ms.
"""
import io
import json
import math
import re
import struct
import sys
import time
import uuid


def parse_offsets(words):
    out = {}
    for w in words:
        p, _, o = w.partition("=")
        out[int(p)] = int(o)
    return out


def client(bootstrap, group):
    from confluent_kafka import Consumer
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False})


def ends(bootstrap, topic):
    from confluent_kafka import TopicPartition
    c = client(bootstrap, "relay-bench-ends")
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        words = []
        for p in sorted(parts):
            _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            words.append(f"{p}={high}")
        print(" ".join(words))
        return 0
    finally:
        c.close()


def seed(bootstrap, group, topic, offsets):
    from confluent_kafka import TopicPartition
    c = client(bootstrap, group)
    try:
        tps = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
        got = c.commit(offsets=tps, asynchronous=False)
        bad = [tp for tp in got if tp.error]
        if bad:
            print(f"hotpath_bench: seed {group}: {bad}", file=sys.stderr)
            return 1
        return 0
    finally:
        c.close()


def wait(bootstrap, group, topic, timeout_s, targets):
    from confluent_kafka import TopicPartition
    c = client(bootstrap, group)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(targets)]
        print("ready", flush=True)
        seen, start, first_ns = {}, None, None
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                got = c.committed(tps, timeout=5)
            except Exception as e:  # coordinator busy: try again, bounded by end
                print(f"hotpath_bench: committed(): {e}", file=sys.stderr)
                time.sleep(0.05)
                continue
            now = time.time_ns()
            seen = {tp.partition: tp.offset for tp in got}
            total = sum(o for o in seen.values() if o >= 0)
            if start is None:
                start = total
            elif first_ns is None and total > start:
                first_ns = now
            if all(seen.get(p, -1) >= o for p, o in targets.items()):
                print(now, total, first_ns or now, flush=True)
                return 0
            time.sleep(0.05)
        print(f"hotpath_bench: {group} committed {seen}, waiting for {targets}, "
              f"after {timeout_s} s", file=sys.stderr)
        return 1
    finally:
        c.close()


def without_logical_types(schema):
    """The schema without logicalType annotations: event_id and occurred_at
    stay the plain string and long the events carry."""
    if isinstance(schema, dict):
        return {k: without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [without_logical_types(v) for v in schema]
    return schema


def loyalty_schema(manifest):
    """(schema id, parsed schema) of the newest loyalty.events-value entry."""
    import fastavro
    best = None
    for m in re.finditer(r"\{[^{}]*\}", open(manifest).read()):
        e = m.group(0)
        if '"loyalty.events-value"' not in e:
            continue
        sid = int(re.search(r"\bid\s*=\s*(\d+)", e).group(1))
        ver = int(re.search(r"version\s*=\s*(\d+)", e).group(1))
        path = manifest.rsplit("/", 1)[0] + "/" + re.search(r'file\s*=\s*"([^"]+)"', e).group(1)
        if best is None or ver > best[0]:
            best = (ver, sid, path)
    if best is None:
        sys.exit(f"hotpath_bench: no loyalty.events-value schema in {manifest}")
    schema = fastavro.parse_schema(without_logical_types(json.load(open(best[2]))))
    return best[1], schema


def event(prefix, i):
    """Event i, as tests/integration/gen_events.py makes it."""
    kinds = ["coupon_issued", "checkout", "point_add", "opt_in"]
    kind = kinds[i % len(kinds)]
    data = {"first_name": f"Name{i}", "points_balance": str(i * 10), "tier": "silver"}
    if kind == "coupon_issued":
        data["coupon_code"] = f"C{i:05d}"
    elif kind == "checkout":
        data.update(transaction_id=f"tx-{prefix}-{i}", total=i + 0.5, points=i)
    elif kind == "point_add":
        data.update(points=i, action_reason="test")
    ident = {"customer_id": f"{prefix}-cust-{i % 17}"}
    if i % 5 == 0:
        ident = {"email": f"{prefix}-{i}@example.com"}
    return {"event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{i}")),
            "occurred_at": int(time.time() * 1000), "tenant": "acme", "source": "antavo",
            "event_type": kind, "identities": ident, "data": data}


def live(bootstrap, topic, rate, warm_s, seconds, prefix, manifest, warm_path, times_path):
    import fastavro
    from confluent_kafka import Producer
    sid, schema = loyalty_schema(manifest)
    header = struct.pack(">bI", 0, sid)
    failed = []
    # linger.ms 5, the Java producer's default since Kafka 4.0 (KIP-1030),
    # as a service upstream of relay would send: with linger.ms 0 this
    # producer alone made the broker answer a produce request per event
    # and took more than a core of the two with it. Its batching is in the
    # figures (an event waits up to 5 ms here before it is sent).
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                  "linger.ms": 5})
    nwarm, n = int(rate * warm_s), int(rate * seconds)
    # Encoded before the clock starts: the Python encoder is the test's
    # cost, not the pipeline's, and it shares the two cores with it.
    values = []
    for i in range(nwarm + n):
        ev = event(prefix, i)
        buf = io.BytesIO()
        buf.write(header)
        fastavro.schemaless_writer(buf, schema, ev)
        values.append((ev["event_id"], buf.getvalue()))
    late_max = 0.0
    with open(warm_path, "a", encoding="ascii") as warm, \
         open(times_path, "a", encoding="ascii") as measured:
        start = time.monotonic() + 0.2
        for i, (eid, value) in enumerate(values):
            times = warm if i < nwarm else measured
            due = start + i / rate
            while True:
                left = due - time.monotonic()
                if left <= 0:
                    break
                p.poll(min(left, 0.01))
            late_max = max(late_max, -left)
            times.write(f"{eid}\t{time.time_ns()}\n")
            p.produce(topic, value=value,
                      on_delivery=lambda err, msg: err and failed.append(err))
            p.poll(0)
    left = p.flush(30)
    if left or failed:
        print(f"hotpath_bench: {left} record(s) unacknowledged, {len(failed)} failed: "
              f"{failed[:3]}", file=sys.stderr)
        return 1
    if late_max > 1.0:
        print(f"hotpath_bench: the producer fell {late_max:.1f} s behind its schedule",
              file=sys.stderr)
        return 1
    print(nwarm, n, "%.1f" % (late_max * 1e3), flush=True)
    return 0


def zigzag(buf, pos):
    """One Avro long at pos: (value, next pos)."""
    shift = acc = 0
    while True:
        b = buf[pos]
        pos += 1
        acc |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (acc >> 1) ^ -(acc & 1), pos


def tap(bootstrap, topics, seconds, out_path):
    """Set the topics' timestamps to the broker's append time, then read
    them from their ends for seconds: per record its topic, event_id (the
    first field of both loyalty.events and relay.out.Outbound), that
    timestamp and when this consumer got it."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_END
    from confluent_kafka.admin import (AdminClient, ConfigResource, ConfigEntry,
                                       AlterConfigOpType)
    topics = topics.split(",")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = [ConfigResource("topic", t, incremental_configs=[ConfigEntry(
        "message.timestamp.type", "LogAppendTime",
        incremental_operation=AlterConfigOpType.SET)]) for t in topics]
    for f in admin.incremental_alter_configs(res).values():
        f.result(timeout=10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "relay-bench-tap",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    try:
        md = c.list_topics(timeout=10).topics
        c.assign([TopicPartition(t, p, OFFSET_END) for t in topics for p in md[t].partitions])
        print("ready", flush=True)
        end = time.monotonic() + seconds
        with open(out_path, "w", encoding="ascii", buffering=1) as out:  # killed when done
            while time.monotonic() < end:
                m = c.poll(0.1)
                if m is None or m.error():
                    continue
                now = time.time_ns()
                v = m.value()
                n, pos = zigzag(v, 5)
                out.write("%s\t%s\t%d\t%d\n" % (m.topic(), v[pos:pos + n].decode("ascii"),
                                                   m.timestamp()[1], now))
        return 0
    finally:
        c.close()


def read_times(path):
    """"event_id<TAB>ns" lines (the producer's and the simulator's files):
    {event_id: ns}, the first line of an id counting."""
    times = {}
    for line in open(path, encoding="utf-8"):
        eid, ns = line.rstrip("\n").split("\t")
        times.setdefault(eid, int(ns))
    return times


def stages(produced_path, tapped_path, received_path):
    """The latency split by stage, from the broker's append times of
    loyalty.events (in) and out.mparticle (out): p50, p99 and max in ms."""
    produced = read_times(produced_path)
    tapped = {}
    for line in open(tapped_path, encoding="ascii"):
        topic, eid, ts, ns = line.split("\t")
        tapped.setdefault((topic == "loyalty.events", eid), (int(ts) * 1_000_000, int(ns)))
    received = read_times(received_path)
    ids = [e for e in produced if (1, e) in tapped and (0, e) in tapped and e in received]
    if not ids:
        print("hotpath_bench: no event seen at every stage", file=sys.stderr)
        return 1

    def pcts(what, xs):
        xs = sorted(xs)
        print("%-44s p50 %6.1f  p99 %6.1f  max %6.1f" % (
            what, xs[len(xs) // 2], xs[min(len(xs) - 1, int(0.99 * len(xs)))], xs[-1]))
    pcts("test producer -> loyalty.events (append)",
         ((tapped[1, e][0] - produced[e]) / 1e6 for e in ids))
    pcts("loyalty.events -> out.mparticle (transform)",
         ((tapped[0, e][0] - tapped[1, e][0]) / 1e6 for e in ids))
    pcts("out.mparticle -> simulator (deliver)",
         ((received[e] - tapped[0, e][0]) / 1e6 for e in ids))
    pcts("out.mparticle -> a reader beside deliver",
         ((tapped[0, e][1] - tapped[0, e][0]) / 1e6 for e in ids))
    print("(%d of %d events seen at every stage; append times are whole ms)" % (
        len(ids), len(produced)))
    return 0


def slow(metrics_path):
    """From relay-deliver's /metrics: its requests, and how many took more
    than 50, 100 and 250 ms (relay_http_request_duration_seconds)."""
    le = {}
    for line in open(metrics_path, encoding="utf-8"):
        m = re.match(r'relay_http_request_duration_seconds_bucket\{.*le="([^"]+)"\} (\d+)', line)
        if m:
            le[m.group(1)] = le.get(m.group(1), 0) + int(m.group(2))
    if "+Inf" not in le:
        print("hotpath_bench: no request-duration histogram in " + metrics_path, file=sys.stderr)
        return 1
    n = le["+Inf"]
    print("deliver: %d requests, %d over 50 ms, %d over 100 ms, %d over 250 ms" % (
        n, n - le.get("0.05", n), n - le.get("0.1", n), n - le.get("0.25", n)))
    return 0


def latency(produced_path, received_path):
    produced = read_times(produced_path)
    received = {e: ns for e, ns in read_times(received_path).items() if e in produced}
    missing = len(produced) - len(received)
    if missing or not produced:
        print(f"hotpath_bench: {missing} of {len(produced)} events never arrived",
              file=sys.stderr)
        return 1
    lat = sorted((received[e] - produced[e]) / 1e6 for e in produced)

    def pct(q):  # nearest rank: the smallest value with q of them at or below it
        return lat[min(len(lat), max(1, math.ceil(q * len(lat) - 1e-9))) - 1]
    print(len(lat), "%.1f %.1f %.1f %.1f" % (pct(0.50), pct(0.99), pct(0.999), lat[-1]))
    return 0


def main(argv):
    if len(argv) == 3 and argv[0] == "ends":
        return ends(argv[1], argv[2])
    if len(argv) >= 5 and argv[0] == "seed":
        return seed(argv[1], argv[2], argv[3], parse_offsets(argv[4:]))
    if len(argv) >= 6 and argv[0] == "wait":
        return wait(argv[1], argv[2], argv[3], float(argv[4]), parse_offsets(argv[5:]))
    if len(argv) == 10 and argv[0] == "live":
        return live(argv[1], argv[2], float(argv[3]), float(argv[4]), float(argv[5]),
                    argv[6], argv[7], argv[8], argv[9])
    if len(argv) == 5 and argv[0] == "tap":
        return tap(argv[1], argv[2], float(argv[3]), argv[4])
    if len(argv) == 2 and argv[0] == "slow":
        return slow(argv[1])
    if len(argv) == 4 and argv[0] == "stages":
        return stages(argv[1], argv[2], argv[3])
    if len(argv) == 3 and argv[0] == "latency":
        return latency(argv[1], argv[2])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
