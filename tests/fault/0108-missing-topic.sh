#!/usr/bin/env bash
# Fault 0108: the output topic is missing and the broker does not create
# topics (RELAY_KAFKA_AUTO_CREATE=false; out.mparticle is not created).
# Promise: a permanent produce error that is the setup's fault pauses the
# work: the transform says so in its log (naming out.mparticle), stores and
# commits nothing past the records it could not write, dead-letters none of
# them and does not exit or crash-loop (same pid); once the topic is created
# everything arrives.
source "$(dirname "$0")/lib.sh"
WAIT=${FAULT_MISSING_WAIT_S:-45}
RELAY_KAFKA_AUTO_CREATE=false broker loyalty.events:3 dlq.transform:1 dlq.mparticle:1
start_fault_sim
start_transform
PID=$TRANSFORM_PID
gen e 50
produce_file e
sleep "$WAIT"
check "the transform is still the same process after ${WAIT} s (pid $PID)" alive "$PID"
check "its log names the missing out.mparticle" \
  eval 'grep -F "out.mparticle" "$WORK/transform.log" | grep -qiE "unknown|missing|exist|paus"'
check "it committed nothing on loyalty.events (sum $(committed_sum relay-transform-loyalty.events loyalty.events))" \
  test "$(committed_sum relay-transform-loyalty.events loyalty.events)" -eq 0
dlq_list dlq.transform > "$WORK/dlq-early.jsonl"
check "and dead-lettered none of the events ($(wc -l < "$WORK/dlq-early.jsonl") in dlq.transform)" \
  test ! -s "$WORK/dlq-early.jsonl"

"$SRC/tests/kafka/create-topics.sh" "$BS" out.mparticle:3 >/dev/null || fail "could not create out.mparticle"
ok "out.mparticle created"
start_deliver
wait_delivered 90 45 || true
check_loss missing-topic --max-dlq 0 --max-dups 0
check "the transform healed without a restart (pid $PID)" alive "$PID"
check "transform committed loyalty.events to the end" wait_for 30 committed_to_end relay-transform-loyalty.events loyalty.events
done_checks
