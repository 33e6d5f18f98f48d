#!/usr/bin/env bash
# Fault 0102: the broker is stopped mid-run and started again on the same
# data and port (tests/kafka/stop.sh, then RELAY_KAFKA_KEEP_DATA=1
# tests/kafka/start.sh). Events are flowing through transform and deliver
# when it goes; more are produced once it is back.
# Promise: nothing lost, nothing dead-lettered, both workers ride it out
# (same pids), duplicates at most what was in flight when it stopped.
source "$(dirname "$0")/lib.sh"
DOWN=${FAULT_BROKER_DOWN_S:-15}
broker
start_fault_sim
start_transform
start_deliver
gen before 10000
gen after 5000

produce_file before
some() { [ "$(delivered_count)" -ge 2000 ]; }
wait_for 60 some || fail "events never started arriving"
# Slow the platform down so records are in flight in every stage when the
# broker goes.
sim_fault '{"name":"slow","delay_ms":300,"times":-1}'
"$SRC/tests/kafka/stop.sh" "$OWN_BROKER" 2>>"$WORK/tools.log" || fail "stop.sh failed"
ok "broker stopped after $(delivered_count) events had arrived; down for ${DOWN} s"
sleep "$DOWN"
alive "$TRANSFORM_PID" && alive "$DELIVER_PID" || fail "a worker exited while the broker was down"
RELAY_KAFKA_KEEP_DATA=1 "$SRC/tests/kafka/start.sh" "$OWN_BROKER" >"$WORK/restart.out" 2>>"$WORK/tools.log" \
  || fail "the broker did not restart"
check "the broker came back on the same address" grep -qxF "bootstrap=$BS" "$WORK/restart.out"
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null
produce_file after

wait_delivered 180 60 || true   # the loss check says what is missing
check_loss broker-restart --max-dlq 0 --max-dups 2000
check "transform and deliver rode it out (same pids)" eval 'alive "$TRANSFORM_PID" && alive "$DELIVER_PID"'
check "transform committed loyalty.events to the end" wait_for 30 committed_to_end relay-transform-loyalty.events loyalty.events
check "deliver committed out.mparticle to the end" wait_for 30 committed_to_end relay-deliver-mparticle out.mparticle
done_checks
