#!/usr/bin/env bash
# The relay demo, self-contained: relay-devkafka (librdkafka's mock cluster,
# no JVM) as the broker, the mParticle simulator as the platform, one
# transform and one deliver worker, and the sample loyalty events in
# deploy/demo/loyalty-events.jsonl. The simulator is told to refuse one
# event (400, dead-lettered) and to answer 503 twice to another (retried);
# one event lacks the coupon code its template needs (dlq.transform); one
# event type is dropped by the mapping table. Prints what mParticle received,
# both dead-letter queues, replays the refused event once mParticle takes it
# again, prints the consumer lag, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${RELAY_BUILD_DIR:-build}/workers
WORK=$(mktemp -d /tmp/relay-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_file() { for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "demo: $1 never appeared" >&2; exit 1; }
say() { printf '\n== %s\n' "$*"; }

say "starting relay-devkafka (embedded mock Kafka) and the mParticle simulator"
"$BIN/relay-devkafka" -f "$WORK/bootstrap" >/dev/null 2>"$WORK/devkafka.log" & pids+=($!)
python3 tests/sim/mparticle_sim.py --port 0 --port-file "$WORK/sim.port" \
  --key demo-key --secret demo-secret >/dev/null 2>"$WORK/sim.log" & pids+=($!)
wait_file "$WORK/bootstrap"; wait_file "$WORK/sim.port"
BS=$(cat "$WORK/bootstrap"); SIM=http://127.0.0.1:$(cat "$WORK/sim.port")
echo "kafka: $BS   mparticle simulator: $SIM"

curl -sf -X POST "$SIM/_sim/faults" -d '[
  {"name":"refuse-cust-1004","status":400,"match":"cust-1004","times":-1},
  {"name":"busy-twice","status":503,"match":"cust-1005","times":2}]' >/dev/null

say "starting relay-transform and relay-deliver (mParticle)"
"$BIN/relay-transform" -c deploy/config/transform-loyalty.cfg \
  -X kafka.bootstrap.servers="$BS" -X admin.address=127.0.0.1 -X admin.port=-1 \
  2>"$WORK/transform.log" & pids+=($!)
RELAY_MPARTICLE_API_KEY=demo-key RELAY_MPARTICLE_API_SECRET=demo-secret \
"$BIN/relay-deliver" -c deploy/config/deliver-mparticle.cfg \
  -X kafka.bootstrap.servers="$BS" -X mparticle.url="$SIM/v2" \
  -X deliver.backoff_base_ms=300 -X admin.address=127.0.0.1 -X admin.port=-1 \
  2>"$WORK/deliver.log" & pids+=($!)

say "producing $(wc -l < deploy/demo/loyalty-events.jsonl) sample loyalty events to loyalty.events"
"$BIN/relayctl" -b "$BS" produce loyalty.events < deploy/demo/loyalty-events.jsonl

# 8 events: 5 delivered, 1 dropped by the table, 1 to dlq.transform,
# 1 to dlq.mparticle; wait until the simulator has the 5 (bounded).
for _ in $(seq 1 60); do
  n=$(curl -sf "$SIM/_sim/received" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
  [ "$n" -ge 5 ] && break; sleep 0.5
done
sleep 2

say "what mParticle received ($n batches)"
curl -sf "$SIM/_sim/received" | python3 scripts/show.py received
say "requests the simulator answered"
curl -sf "$SIM/_sim/requests" | python3 scripts/show.py requests
say "dlq.transform (records that could not be mapped)"
"$BIN/relayctl" -b "$BS" dlq list dlq.transform | python3 scripts/show.py dlq
say "dlq.mparticle (records mParticle refused)"
"$BIN/relayctl" -b "$BS" dlq list dlq.mparticle | python3 scripts/show.py dlq
say "mParticle takes cust-1004 again: relayctl dlq replay dlq.mparticle"
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null
"$BIN/relayctl" -b "$BS" dlq replay dlq.mparticle
for _ in $(seq 1 60); do
  curl -sf "$SIM/_sim/received" | grep -q cust-1004 && break; sleep 0.5
done
curl -sf "$SIM/_sim/received" | python3 scripts/show.py received | grep cust-1004 ||
  echo "(the replayed event has not arrived yet)"
sleep 1
say "consumer lag"
"$BIN/relayctl" -b "$BS" lag relay-transform-loyalty.events loyalty.events
"$BIN/relayctl" -b "$BS" lag relay-deliver-mparticle out.mparticle
admin_port() { grep -o 'serving /metrics[^"]* on [0-9.]*:[0-9]*' "$WORK/$1.log" | tail -1 | sed 's/.*://'; }
say "what an operator opens first: relayctl top (one refresh)"
"$BIN/relayctl" -b "$BS" top -n 1 -i 1 \
  -m "http://127.0.0.1:$(admin_port transform)/metrics" -m "http://127.0.0.1:$(admin_port deliver)/metrics" \
  relay-transform-loyalty.events:loyalty.events:dlq.transform \
  relay-deliver-mparticle:out.mparticle:dlq.mparticle
say "and each worker's /readyz and the key lines of its /metrics"
for w in transform deliver; do
  port=$(admin_port $w)
  [ -n "$port" ] || { echo "($w serves no admin endpoint)"; continue; }
  echo "relay-$w on 127.0.0.1:$port: /readyz says $(curl -s "http://127.0.0.1:$port/readyz" | head -1)"
  curl -sf "http://127.0.0.1:$port/metrics" |
    grep -E '^relay_(records_(in|out|failed)_total|dead_letters_total|delivered_total|consumer_lag(_seconds)?|http_requests_total|platform_state|delivery_retries_total)[{ ]' |
    sed 's/^/  /'
done
say "worker logs (warnings and errors)"
grep -h '"level":"\(warning\|error\)"' "$WORK/transform.log" "$WORK/deliver.log" | grep -v CONFWARN | cut -c1-240 || true
