#!/usr/bin/env bash
# Fault 0101: chaos. 100,000 events through one transform and two deliver
# workers while the simulator fails about 30% of the requests (429 with
# Retry-After: 1, 500, 503, answers slower than the client's 1 s timeout,
# connection resets) and 24 kill -9s, spread over the transform and both
# deliver workers, each followed by a restart.
# Promise: nothing lost, nothing dead-lettered (the platform never refused a
# record as its own fault), duplicates at most the records in flight at the
# kills.
# Knobs: FAULT_CHAOS_EVENTS (100000), FAULT_CHAOS_KILLS (24),
# FAULT_CHAOS_RATE (0.3), FAULT_CHAOS_SEED (17).
source "$(dirname "$0")/lib.sh"
N=${FAULT_CHAOS_EVENTS:-100000}
KILLS=${FAULT_CHAOS_KILLS:-24}
WAVES=10
broker
start_fault_sim --chaos "${FAULT_CHAOS_RATE:-0.3}" --seed "${FAULT_CHAOS_SEED:-17}" \
  --chaos-retry-after 1 --chaos-slow-ms 1500

# A killed member leaves its group only when its session times out: 6 s (the
# broker's minimum) instead of 45 s, so each group recovers between kills.
KOPTS=(-X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=1000)
DOPTS=("${KOPTS[@]}" -X deliver.http_timeout_ms=1000 -X deliver.backoff_base_ms=50
       -X deliver.backoff_max_ms=500)
TOPTS=("${KOPTS[@]}" -X transform.batch_size=200)
declare -A WPID
start_worker() { # start_worker t|d1|d2
  case $1 in
    t)  start_transform "${TOPTS[@]}"; WPID[t]=$TRANSFORM_PID ;;
    d*) DELIVER_LOG=deliver-$1 start_deliver "${DOPTS[@]}"; WPID[$1]=$DELIVER_PID ;;
  esac
}
for w in t d1 d2; do start_worker $w; done

for i in $(seq $WAVES); do gen "w$i" $((N / WAVES)); done
t0=$SECONDS

# Producer and killer interleaved: a wave every few seconds, a kill every
# ~5 s; targets cycle t, d1, t, d2 so both kinds get half the kills and each
# group has ~10 s between its kills.
targets=(t d1 t d2)
wave=0 kills=0
while [ $kills -lt "$KILLS" ] || [ $wave -lt $WAVES ]; do
  if [ $wave -lt $WAVES ] && [ $((kills % 2)) -eq 0 ]; then
    wave=$((wave + 1)); produce_file "w$wave"
  fi
  sleep 4.5
  if [ $kills -lt "$KILLS" ]; then
    w=${targets[$((kills % 4))]}
    if ! alive "${WPID[$w]}"; then fail "worker $w (pid ${WPID[$w]}) died by itself"; fi
    kill9 "${WPID[$w]}"; kills=$((kills + 1))
    sleep 0.5
    start_worker "$w"
  fi
done
ok "produced $N events in $WAVES waves and made $kills kill -9s (restarted) in $((SECONDS - t0)) s"

wait_delivered 240 30 || true   # the loss check below says what is missing
echo "# chaos draws: $(sim /_sim/chaos | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"])')"
echo "# simulator: $(sim /_sim/stats)"
# In flight at a kill: a deliver worker's request (100 records) and what it
# had delivered but not committed; a transform's batch (200 records) and its
# uncommitted outputs. 500 per kill bounds both.
check_loss chaos --max-dlq 0 --max-dups $((KILLS * 500))
for w in t d1 d2; do alive "${WPID[$w]}" || fail "worker $w is not running at the end"; done
ok "all three workers still running after the kills (total $((SECONDS - t0)) s)"
done_checks
