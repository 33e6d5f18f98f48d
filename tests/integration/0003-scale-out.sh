#!/usr/bin/env bash
# Scenario 0003: workers scale by partitions in one consumer group. While
# events flow, a second deliver worker joins the group (scale out), and
# later the first one is stopped with SIGTERM (scale in), as KEDA would do.
#
# Asserted on data, not on log wording. Each worker delivers to its own
# simulator, so what each one sent is known: the new worker delivering
# while the first still runs shows the group handed it partitions; the
# first worker's exit code shows a clean stop; the union of both
# simulators' ids equals the ids produced (none lost); and both groups'
# committed offsets reach the end of every partition. A rebalance may
# redeliver records that were in flight when partitions moved, so
# duplicates are counted and bounded by one batch (100), not required to
# be zero.
source "$(dirname "$0")/lib.sh"
broker
start_sim
SIM1=$SIM

N=400
IN_FLIGHT=100 # one deliver batch: mparticle.max_batches_per_request
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

# ids_at URL: the event ids the simulator at URL accepted, one per line
# (with repeats). all_ids: both simulators'.
ids_at() { curl -sf "$1/_sim/received" | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    print(r["batch"]["source_request_id"])'; }
all_ids() { ids_at "$SIM1"; [ -z "${SIM2:-}" ] || ids_at "$SIM2"; }
count_at() { ids_at "$1" | sort -u | comm -12 - <(sort -u "$WORK/s.ids") | wc -l; }
count_all() { all_ids | sort -u | comm -12 - <(sort -u "$WORK/s.ids") | wc -l; }

some() { [ "$(count_all)" -ge "$1" ]; }
wait_for 60 some 60 || fail "events never started arriving"

# The second worker, with a simulator of its own.
python3 "$SRC/tests/sim/mparticle_sim.py" --port 0 --port-file "$WORK/sim2.port" \
  --key it-key --secret it-secret >/dev/null 2>"$WORK/sim2.log" &
PIDS+=($!)
wait_for 10 test -s "$WORK/sim2.port" || fail "second simulator did not start"
SIM2="http://127.0.0.1:$(cat "$WORK/sim2.port")"
SIM=$SIM2 DELIVER_LOG=deliver2 start_deliver "${DELIVER_ARGS[@]}"
SECOND=$DELIVER_PID
ok "a second deliver worker joined after $(count_all) of $N events"
second_delivers() { [ "$(count_at "$SIM2")" -gt 0 ]; }
check "the group rebalanced: the new worker delivered events while the first still ran" \
  wait_for 60 second_delivers
kill -0 "$FIRST" 2>/dev/null || fail "the first worker exited on its own"

wait_for 60 some 250 || fail "events stopped arriving after the scale-out"
kill -TERM "$FIRST"
check "the first worker stopped cleanly on SIGTERM (exit 0)" wait "$FIRST"
ok "the first deliver worker left; by then it had delivered $(count_at "$SIM1")" \
   "distinct events and the second $(count_at "$SIM2")"

all() { [ "$(count_all)" -eq $N ]; }
check "none lost: every one of the $N ids produced was delivered" wait_for 120 all
check "nothing delivered that was not produced" \
  test -z "$(all_ids | sort -u | comm -23 - <(sort -u "$WORK/s.ids"))"

# committed_to_end GROUP TOPIC PARTITIONS: a commit at the log end offset
# for each of the topic's partitions.
committed_to_end() {
  local out; out=$("$SRC/tests/kafka/committed-offsets.sh" "$BS" "$1" | awk -v t="$2" '$1==t')
  [ "$(echo "$out" | awk 'NF' | wc -l)" -eq "$3" ] &&
    echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }
check "transform committed every partition of loyalty.events to its end" \
  wait_for 30 committed_to_end relay-transform-loyalty.events loyalty.events 3
check "deliver committed every partition of out.mparticle to its end (the second worker alone)" \
  wait_for 30 committed_to_end relay-deliver-mparticle out.mparticle 3

DELIVERED=$(all_ids | grep -cFxf "$WORK/s.ids" || true)
DUPLICATES=$((DELIVERED - N))
ok "$DUPLICATES duplicate(s) across the rebalances ($DELIVERED deliveries of $N events)"
check "duplicates at most the records in flight ($DUPLICATES <= $IN_FLIGHT)" \
  test "$DUPLICATES" -le "$IN_FLIGHT"
done_checks
