#!/usr/bin/env bash
# Fault 0107: deliver with kafka.max.poll.interval.ms=15000 while the
# platform fails every request (503 without Retry-After) for 45 s.
# Promise: waiting out the platform keeps the consumer served: no eviction
# (no max.poll.interval.ms exceeded, no lost partitions, no rebalance), so
# nothing is delivered twice, and nothing is dead-lettered.
source "$(dirname "$0")/lib.sh"
FAILING=${FAULT_MAXPOLL_FAILING_S:-45}
broker
start_fault_sim
start_transform
mapfile -t PROBE < <(known_opts relay-deliver deliver.probe_base_ms=500 deliver.probe_max_ms=5000)
start_deliver -X kafka.max.poll.interval.ms=15000 -X kafka.session.timeout.ms=10000 "${PROBE[@]}"
PID=$DELIVER_PID
gen warm 20; gen e 200
produce_file warm
warm() { [ "$(delivered_count)" -ge 20 ]; }
check "deliver is up and delivering" wait_for 60 warm
sim_fault '{"name":"down","status":503,"times":-1}'
t0=$SECONDS
produce_file e
sleep "$FAILING"
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null
ok "the platform answered 503 for $((SECONDS - t0)) s ($(sim /_sim/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["by_status"].get("503", 0))') requests)"
wait_delivered 60 30 || true
check_loss max-poll --max-dlq 0 --max-dups 0
check "no eviction or lost partitions in deliver's log" \
  eval '! grep -iE "max\.poll|MAX_POLL_EXCEEDED|lost [0-9]* ?partition|partitions? lost|ASSIGN_LOST" "$WORK/deliver.log"'
check "the same deliver process throughout" alive "$PID"
check "deliver committed out.mparticle to the end" wait_for 30 committed_to_end relay-deliver-mparticle out.mparticle
done_checks
