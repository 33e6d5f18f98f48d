#!/usr/bin/env bash
# Scenario 0009: a keyed output lands on the partition a Java producer
# would choose for its key, so relay and Java producers agree on where a
# person's records live.
#  - relay-transform turns N events into keyed outputs on an 8-partition
#    out.mparticle through relay's producer (defaults: partitioner
#    murmur2_random); each output is on partition
#    (murmur2(key) & 0x7fffffff) % 8 as computed by kafka-python's
#    DefaultPartitioner murmur2 (the Java client's Utils.murmur2 ported to
#    Python: an implementation relay did not write);
#  - kafka.partitioner still overrides the default: a second run (its own
#    group) with kafka.partitioner=consistent puts each of its outputs on
#    crc32(key) % 8 (Python's zlib), and for these keys the two choices
#    differ, so the check tells them apart.
source "$(dirname "$0")/lib.sh"
python3 -c 'import kafka.partitioner.default' 2>/dev/null ||
  fail "python3 lacks kafka-python (pip install kafka-python)"
broker loyalty.events:1 out.mparticle:8 dlq.mparticle:1 dlq.transform:1

N=40
python3 tests/integration/gen_events.py --count $N --prefix "pt-$$" --ids "$WORK/pt.ids" > "$WORK/pt.jsonl"
produce loyalty.events < "$WORK/pt.jsonl"

# outputs: "partition offset key-as-hex" of every record of out.mparticle.
outputs() {
  python3 - "$BS" > "$WORK/out.tsv" <<'PY'
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "relay-it-0009-read",
              "enable.auto.commit": False, "enable.partition.eof": True})
c.assign([TopicPartition("out.mparticle", p, 0) for p in range(8)])
eof = set()
while len(eof) < 8:
    m = c.poll(5)
    if m is None:
        break
    if m.error():
        eof.add(m.partition())
        continue
    print(m.partition(), m.offset(), (m.key() or b"").hex())
c.close()
PY
}
count_is() { outputs; [ "$(wc -l < "$WORK/out.tsv")" -eq "$1" ]; }

# check_partitions HOW FIRST_RUN_FILE: every record not in FIRST_RUN_FILE
# (all when it is empty) is on the partition HOW (murmur2 or crc32) picks.
check_partitions() {
  python3 - "$1" "$WORK/out.tsv" "$2" <<'PY'
import sys, zlib
from kafka.partitioner.default import murmur2
how, path, before = sys.argv[1], sys.argv[2], sys.argv[3]
seen = set(open(before).read().split("\n")) if before else set()
n = wrong = differ = 0
for line in open(path):
    if line.rstrip("\n") in seen:
        continue
    part, _, key = line.split()
    key = bytes.fromhex(key)
    assert key, "an output without a key: %s" % line
    java = (murmur2(key) & 0x7FFFFFFF) % 8
    crc = (zlib.crc32(key) & 0xFFFFFFFF) % 8
    want = java if how == "murmur2" else crc
    n += 1
    differ += java != crc
    if int(part) != want:
        wrong += 1
        print("key %r on partition %s, %s says %d" % (key, part, how, want), file=sys.stderr)
print("%d outputs, %d on another partition than %s picks, %d whose murmur2 and crc32 partitions differ"
      % (n, wrong, how, differ), file=sys.stderr)
sys.exit(0 if n and not wrong and differ else 1)
PY
}

start_transform
check "all $N outputs are on out.mparticle" wait_for 60 count_is $N
check "each is on the partition of its key by murmur2, as the Java client picks" \
  check_partitions murmur2 ""
cp "$WORK/out.tsv" "$WORK/first.tsv"
kill -TERM "$TRANSFORM_PID"; wait "$TRANSFORM_PID" 2>/dev/null

start_transform -X transform.group_id=relay-it-0009-crc -X kafka.partitioner=consistent
check "a second run with kafka.partitioner=consistent writes $N more" wait_for 60 count_is $((2 * N))
check "each of those is on the partition of its key by crc32: the key overrides the default" \
  check_partitions crc32 "$WORK/first.tsv"
done_checks
