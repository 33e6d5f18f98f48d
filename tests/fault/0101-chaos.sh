#!/usr/bin/env bash
# Fault 0101: chaos. 100,000 events (24 waves) through one transform and
# three deliver workers (one per partition of out.mparticle) while the
# simulator fails about 30% of the requests (429 with Retry-After: 1, 500,
# 503, answers slower than the client's 1 s timeout, connection resets) and
# 24 kill -9s, spread over the transform and the deliver workers, each
# followed by a restart.
# Promise: nothing lost, nothing dead-lettered (the platform never refused a
# record as its own fault), duplicates at most the records in flight at the
# kills.
# Knobs: FAULT_CHAOS_EVENTS (100000), FAULT_CHAOS_KILLS (24),
# FAULT_CHAOS_RATE (0.3), FAULT_CHAOS_SEED (17).
source "$(dirname "$0")/lib.sh"
N=${FAULT_CHAOS_EVENTS:-100000}
KILLS=${FAULT_CHAOS_KILLS:-24}
broker
start_fault_sim --chaos "${FAULT_CHAOS_RATE:-0.3}" --seed "${FAULT_CHAOS_SEED:-17}" \
  --chaos-retry-after 1 --chaos-slow-ms 1500

# A killed member leaves its group only when its session times out: 6 s (the
# broker's minimum) instead of 45 s, so each group recovers between kills.
KOPTS=(-X kafka.session.timeout.ms=6000 -X kafka.heartbeat.interval.ms=1000)
DOPTS=("${KOPTS[@]}" -X deliver.http_timeout_ms=1000 -X deliver.backoff_base_ms=50
       -X deliver.backoff_max_ms=500)
mapfile -t PROBE < <(known_opts relay-deliver deliver.probe_base_ms=500 deliver.probe_max_ms=2000)
DOPTS+=("${PROBE[@]}")
TOPTS=("${KOPTS[@]}" -X transform.batch_size=200)
declare -A WPID
start_worker() { # start_worker t|d1|d2|d3
  case $1 in
    t)  start_transform "${TOPTS[@]}"; WPID[t]=$TRANSFORM_PID ;;
    d*) DELIVER_LOG=deliver-$1 start_deliver "${DOPTS[@]}"; WPID[$1]=$DELIVER_PID ;;
  esac
}
for w in t d1 d2 d3; do start_worker $w; done

PER=$(( (N + KILLS - 1) / KILLS ))   # one wave per kill
for i in $(seq "$KILLS"); do gen "w$i" $PER; done
N=$((PER * KILLS))
t0=$SECONDS

# Each round: produce a wave, let it get going for 0.3-2.0 s (so the kill
# lands while its records are in flight in transform or deliver), kill -9
# one worker, restart it, rest to ~5 s a round. Targets cycle t, d1, t, d2,
# t, d3, so both kinds get half the kills and each group has ~10 s between
# kills.
RANDOM=${FAULT_CHAOS_SEED:-17}
targets=(t d1 t d2 t d3)
kills=0
for round in $(seq "$KILLS"); do
  produce_file "w$round"
  lag=$((3 + RANDOM % 18))
  sleep "$((lag / 10)).$((lag % 10))"
  w=${targets[$((kills % 6))]}
  alive "${WPID[$w]}" || fail "worker $w (pid ${WPID[$w]}) died by itself"
  kill9 "${WPID[$w]}"; kills=$((kills + 1))
  sleep 0.5
  start_worker "$w"
  sleep "$(( (45 - lag) / 10 )).$(( (45 - lag) % 10 ))"
done
ok "produced $N events in $KILLS waves and made $kills kill -9s (restarted) in $((SECONDS - t0)) s"

wait_delivered 420 30 || true   # the loss check below says what is missing
echo "# chaos draws: $(sim /_sim/chaos | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"])')"
echo "# simulator: $(sim /_sim/stats)"
# In flight at a kill: a deliver worker's request (100 records) and what it
# had delivered but not committed; a transform's batch (200 records) and its
# uncommitted outputs. 500 per kill bounds both.
check_loss chaos --max-dlq 0 --max-dups $((KILLS * 500))
for w in t d1 d2 d3; do alive "${WPID[$w]}" || fail "worker $w is not running at the end"; done
ok "all four workers still running after the kills (total $((SECONDS - t0)) s)"
done_checks
