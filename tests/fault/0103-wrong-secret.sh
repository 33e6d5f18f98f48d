#!/usr/bin/env bash
# Fault 0103: deliver starts with RELAY_MPARTICLE_API_SECRET_FILE naming a
# file with a wrong secret; the platform answers 403 to everything.
# Promise: a refused key is the setup's fault, not the records': 0 dead
# letters, deliver's committed offsets do not move, its log says it is
# paused and why; once the right secret is written into the file (re-read
# before each probe, no restart) every event arrives.
source "$(dirname "$0")/lib.sh"
broker
start_fault_sim
echo "not-the-secret" > "$WORK/secret"
mapfile -t PROBE < <(known_opts relay-deliver deliver.probe_base_ms=500 deliver.probe_max_ms=2000)
DELIVER_ENV="RELAY_MPARTICLE_API_SECRET_FILE=$WORK/secret" start_deliver "${PROBE[@]}"
PID=$DELIVER_PID
start_transform

N=40
gen e $N
produce_file e
refused() { [ "$(sim /_sim/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["by_status"].get("403", 0))')" -ge 1 ]; }
check "the platform refused the key (403)" wait_for 60 refused
on_topic() { committed_to_end relay-transform-loyalty.events loyalty.events; }
check "all $N events reached out.mparticle" wait_for 30 on_topic
sleep 10   # ten seconds of a refused key
dlq_list dlq.mparticle > "$WORK/dlq-early.jsonl"
check "no record was dead-lettered for the platform's 403 ($(wc -l < "$WORK/dlq-early.jsonl") in dlq.mparticle)" \
  test ! -s "$WORK/dlq-early.jsonl"
check "deliver committed nothing on out.mparticle (sum of its offsets: $(committed_sum relay-deliver-mparticle out.mparticle))" \
  test "$(committed_sum relay-deliver-mparticle out.mparticle)" -eq 0
check "deliver is still running" alive "$PID"
check "its log says it is paused" grep -qi "paused" "$WORK/deliver.log"
check "and why (403 / forbidden / auth)" eval 'grep -i "paused" "$WORK/deliver.log" | grep -qiE "403|forbidden|auth"'
n403=$(sim /_sim/requests | python3 -c 'import json,sys; print(sum(r["status"] == 403 for r in json.load(sys.stdin)))')
ok "the platform saw $n403 requests with the wrong secret in ~10 s (probes)"

echo "it-secret" > "$WORK/secret"
wait_delivered 60 30 || true
check_loss wrong-secret --max-dlq 0 --max-dups 0
check "the same deliver process healed (no restart)" alive "$PID"
check "deliver committed out.mparticle to the end" wait_for 30 committed_to_end relay-deliver-mparticle out.mparticle
done_checks
