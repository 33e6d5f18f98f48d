#!/usr/bin/env python3
"""Helpers of tests/bench/deliver.sh (Python 3.11; `wait` needs confluent_kafka).

  deliver_bench.py records N PREFIX
      N relay.out.Outbound records for mParticle as JSON lines (what
      `relayctl produce out.mparticle` reads): a loyalty purchase shaped like
      tests/schemas/samples/outbound.jsonl, with a unique event_id each.
  deliver_bench.py wait BOOTSTRAP GROUP TOPIC N TIMEOUT_S
      Polls GROUP's committed offsets on TOPIC every 50 ms without joining
      the group; prints "first_ns LAST_ns total" when their sum reaches N
      (first_ns: the first time any offset was committed), exit 0; exit 1
      with what it saw after TIMEOUT_S. One long-lived client, so the poll
      costs next to nothing while relay-deliver is timed (a JVM per poll, as
      tests/kafka/committed-offsets.sh starts, would take a core from it).
  deliver_bench.py sink-log ACCESS_LOG FROM_LINE
      Summarises the sink's access log from line FROM_LINE on (lines of
      "$content_length $status"): "requests mean_body_bytes non_202".
  deliver_bench.py wrk-lua
      Prints the wrk script that posts $BENCH_BODY with relay's headers and
      reports one JSON line at the end.
"""
import json
import sys
import time
import uuid

WRK_LUA = r'''
-- Posts the request body relay-deliver sent (captured by the simulator) with
-- the headers relay sends; one JSON line at the end.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_AUTH")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, ' ..
    '"socket_errors": %d, "latency_p50_us": %d, "latency_p99_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
'''


def records(n, prefix):
    base_ms = 1764064920000
    out = sys.stdout
    for i in range(n):
        r = {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}/{i}")),
            "occurred_at": base_ms + i * 1000,
            "tenant": "acme", "source": "antavo",
            "connection": "acme-antavo-mparticle", "destination": "mparticle",
            "environment": "production",
            "identity_type": "customer_id", "identity_value": f"cust-{i % 20000}",
            "event_name": "Purchase", "event_category": "transaction",
            "attributes": {"transaction_id": f"tx-{prefix}-{i}", "total": 59.9,
                           "points_earned": 60, "first_purchase": i % 7 == 0,
                           "coupon": None, "store": "Kraków 12"},
            "user_attributes": {"$firstname": "Ann", "loyalty_tier": "gold",
                                "loyalty_points": 1260 + i % 500, "vip": False,
                                "score": 0.75},
        }
        out.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")


def wait(bootstrap, group, topic, n, timeout_s):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        # Ready: the caller starts the worker only after this line.
        print("ready", flush=True)
        first_ns, total = None, 0
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                got = c.committed(tps, timeout=5)
            except Exception as e:  # coordinator busy: try again, bounded by end
                print(f"deliver_bench: committed(): {e}", file=sys.stderr)
                time.sleep(0.05)
                continue
            now = time.time_ns()
            total = sum(tp.offset for tp in got if tp.offset >= 0)
            if total > 0 and first_ns is None:
                first_ns = now
            if total >= n:
                print(first_ns, now, total, flush=True)
                return 0
            time.sleep(0.05)
        print(f"deliver_bench: committed {total} of {n} after {timeout_s} s", file=sys.stderr)
        return 1
    finally:
        c.close()


def sink_log(path, from_line):
    reqs = nbytes = bad = 0
    with open(path, encoding="ascii") as f:
        for i, line in enumerate(f, 1):
            if i < from_line:
                continue
            length, status = line.split()
            reqs += 1
            nbytes += int(length) if length.isdigit() else 0
            bad += status != "202"
    print(reqs, round(nbytes / reqs) if reqs else 0, bad)
    return 0


def main(argv):
    if len(argv) == 3 and argv[0] == "records":
        return records(int(argv[1]), argv[2]) or 0
    if len(argv) == 6 and argv[0] == "wait":
        return wait(argv[1], argv[2], argv[3], int(argv[4]), float(argv[5]))
    if len(argv) == 3 and argv[0] == "sink-log":
        return sink_log(argv[1], int(argv[2]))
    if argv == ["wrk-lua"]:
        sys.stdout.write(WRK_LUA)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
