#!/usr/bin/env bash
# Scenario 0003: workers scale by partitions in one consumer group. While
# events flow, a second deliver worker joins the group (scale out), and
# later the first one is stopped with SIGTERM (scale in), as KEDA would do.
# Each rebalance hands partitions over only after the records in hand are
# finished and committed, so every event arrives, and arrives once.
source "$(dirname "$0")/lib.sh"
broker
start_sim

N=400
python3 tests/integration/gen_events.py --count $N --prefix "s-$$" --ids "$WORK/s.ids" > "$WORK/s.jsonl"
# Events trickle in, and each deliver worker holds a partial batch for up
# to a second, so a rebalance almost always finds records in hand.
DELIVER_ARGS=(-X deliver.batch_wait_ms=1000)
start_transform
start_deliver "${DELIVER_ARGS[@]}"
FIRST=$DELIVER_PID
split -l 10 "$WORK/s.jsonl" "$WORK/chunk."
( for f in "$WORK"/chunk.*; do produce loyalty.events < "$f"; sleep 0.1; done ) &
PIDS+=($!)

some() { [ "$(count_received "$WORK/s.ids")" -ge "$1" ]; }
wait_for 60 some 60 || fail "events never started arriving"
DELIVER_LOG=deliver2 start_deliver "${DELIVER_ARGS[@]}"
SECOND=$DELIVER_PID
ok "a second deliver worker joined after $(count_received "$WORK/s.ids") of $N events"
second_has_work() { grep -q 'assigned [1-9][0-9]* partition' "$WORK/deliver2.log"; }
check "the group rebalanced and the new worker got partitions" wait_for 60 second_has_work
check "the first worker handed partitions back after finishing its batch" \
  grep -q 'handing back 3 partition' "$WORK/deliver.log"

wait_for 60 some 250 || fail "events stopped arriving after the scale-out"
kill -TERM "$FIRST"
check "the first worker stopped cleanly on SIGTERM" wait "$FIRST"
ok "the first deliver worker left after $(count_received "$WORK/s.ids") of $N events"

all() { [ "$(count_received "$WORK/s.ids")" -eq $N ]; }
check "all $N events arrived" wait_for 120 all
check "none arrived twice: partitions changed hands only after commits" \
  test -z "$(received_ids | sort | uniq -d)"
check "the worker still running took over every partition" \
  grep -q 'assigned 3 partition' "$WORK/deliver2.log"
done_checks
