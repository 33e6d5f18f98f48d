#!/usr/bin/env bash
# Fault 0104: a 2-minute platform outage. The simulator answers 503 (no
# Retry-After) for FAULT_OUTAGE_503_S (60) seconds, then is stopped, so
# deliver meets "connection refused" for FAULT_OUTAGE_DOWN_S (60) seconds,
# then comes back on the same port. Events keep being produced throughout.
# Promise: nothing dead-lettered (an outage is not the records' fault),
# everything arrives afterwards, the same deliver process rides it out, and
# its memory stays bounded while it waits (VmRSS sampled every second:
# max <= 2 x first + 20 MB).
source "$(dirname "$0")/lib.sh"
T503=${FAULT_OUTAGE_503_S:-60}
TDOWN=${FAULT_OUTAGE_DOWN_S:-60}
broker
start_fault_sim
start_transform
# Probe often, so the end of the outage is seen within seconds.
mapfile -t PROBE < <(known_opts relay-deliver deliver.probe_base_ms=500 deliver.probe_max_ms=5000)
start_deliver "${PROBE[@]}"
PID=$DELIVER_PID

# VmRSS of deliver, in kB, once a second while it lives (bounded loop).
( for _ in $(seq 600); do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status" 2>/dev/null) || break
    [ -n "$rss" ] || break
    echo "$rss"; sleep 1
  done > "$WORK/rss.samples" ) &
RSS_PID=$!
PIDS+=($RSS_PID)

gen before 1000; gen d503 3000; gen refused 3000
produce_file before
first() { [ "$(delivered_count)" -ge 1000 ]; }
check "the first 1000 events arrived before the outage" wait_for 60 first

sim_fault '{"name":"outage","status":503,"times":-1}'
t0=$SECONDS
produce_file d503
sleep "$T503"
ok "the platform answered 503 for $((SECONDS - t0)) s"
stop_sim
t1=$SECONDS
produce_file refused
sleep "$TDOWN"
alive "$PID" || fail "deliver exited during the outage"
ok "the platform refused connections for $((SECONDS - t1)) s"
restart_sim
wait_delivered 180 60 || true
check_loss outage --max-dlq 0 --max-dups 0
check "the same deliver process rode out the outage" alive "$PID"
check "deliver committed out.mparticle to the end" wait_for 30 committed_to_end relay-deliver-mparticle out.mparticle

kill "$RSS_PID" 2>/dev/null || true; wait "$RSS_PID" 2>/dev/null || true; forget_pid "$RSS_PID"
read -r n first min max < <(awk 'NR==1 {f=$1; mn=$1; mx=$1} {if ($1<mn) mn=$1; if ($1>mx) mx=$1}
                                 END {print NR, f, mn, mx}' "$WORK/rss.samples")
ok "deliver VmRSS over $n samples: first $first kB, min $min kB, max $max kB"
check "its memory stayed bounded (max $max kB <= 2 x $first + 20480 kB)" \
  test "$n" -ge $((T503 + TDOWN)) -a "$max" -le $((2 * first + 20480))
done_checks
