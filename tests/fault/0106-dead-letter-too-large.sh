#!/usr/bin/env bash
# Fault 0106: a record the broker accepts but whose dead letter is too large.
# A 1,000,150-byte value that is not Avro goes to loyalty.events partition 0
# (kcat with message.max.bytes raised; the broker takes up to 1,048,588),
# between ordinary events. The transform must dead-letter it (it is over
# transform.max_record_bytes, 989,760 by default), but the value alone is
# over the producer's message.max.bytes (1,000,000). (A 999,700-byte record,
# the issue's first case, now fits its dead letter whole: the default
# limit keeps 10 KiB for the headers.)
# Promise: a stub dead letter is written instead (every relay.* header, the
# original topic/partition/offset, relay.value_omitted, an empty value); the
# transform stays up (same pid, no crash loop) and the partition moves on:
# the events after it arrive and its offset is committed past it.
source "$(dirname "$0")/lib.sh"
broker
start_fault_sim
start_transform
PID=$TRANSFORM_PID
start_deliver
gen before 30; gen after 30
produce_file before
python3 -c 'import sys; sys.stdout.buffer.write(b"not avro " + b"x" * (1000150 - 9))' > "$WORK/big.bin"
kcat -P -b "$BS" -t loyalty.events -p 0 -X message.max.bytes=2000000 -k big-record \
  "$WORK/big.bin" 2>>"$WORK/tools.log" || fail "kcat could not produce the 1,000,150-byte record"
BIG_OFFSET=$(kcat -C -b "$BS" -t loyalty.events -p 0 -e -q -f '%o %k\n' 2>/dev/null | awk '$2=="big-record" {print $1}')
[ -n "$BIG_OFFSET" ] || fail "the big record is not on loyalty.events/0"
ok "a 1,000,150-byte non-Avro record is on loyalty.events/0 at offset $BIG_OFFSET"
produce_file after

stub_there() {
  dlq_list dlq.transform > "$WORK/dlq.transform.now"
  grep -q '"relay.value_omitted"' "$WORK/dlq.transform.now"; }
check "a stub dead letter reached dlq.transform" wait_for 40 stub_there
check "it carries the reason, the relay.* headers and the origin, without the value" \
  python3 - "$WORK/dlq.transform.now" "$BIG_OFFSET" <<'PY'
import json, sys
stubs = [json.loads(l) for l in open(sys.argv[1]) if '"relay.value_omitted"' in l]
assert len(stubs) == 1, f"{len(stubs)} stubs"
r = stubs[0]
h = r["headers"]
print("# stub headers:", json.dumps(h)[:400])
assert h["relay.original_topic"] == "loyalty.events", h
assert h["relay.original_partition"] == "0", h
assert h["relay.original_offset"] == sys.argv[2], h
for k in ("relay.error", "relay.stage", "relay.failed_at", "relay.worker", "relay.value_omitted"):
    assert (h.get(k) or "").strip(), f"{k} missing or empty: {h}"
assert r.get("value") in (None, "") or "value_error" in r, r.get("value")
assert r["key"] == "big-record", r["key"]
PY
sizes=$(kcat -C -b "$BS" -t dlq.transform -e -q -f '%S\n' 2>/dev/null | sort -n | tail -1)
check "no dead letter carries the big value (largest value: ${sizes:-none} bytes)" test "${sizes:--1}" -le 0
wait_delivered 60 30 || true
check_loss too-large --max-dlq 0 --max-dups 0 --stubs 1
check "the transform stayed up: same pid $PID, never restarted" alive "$PID"
check "its log names the cause" grep -qiE "too large|MSG_SIZE_TOO_LARGE|message.max.bytes" "$WORK/transform.log"
past() { committed relay-transform-loyalty.events | awk -v o="$BIG_OFFSET" '$1=="loyalty.events" && $2==0 && $3 > o {f=1} END {exit !f}'; }
check "its committed offset on loyalty.events/0 moved past the big record" wait_for 30 past
done_checks
