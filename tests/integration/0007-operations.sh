#!/usr/bin/env bash
# Scenario 0007: what an operator watches, on a real run.
#  - readiness: deliver is not ready before it has partitions (its topic
#    does not exist yet), ready once assigned, not ready while the platform
#    refuses the key or the circuit is open (each answer says why), ready
#    again after; /healthz answers ok throughout;
#  - every worker's /metrics passes `promtool check metrics`, and counts
#    what happened: records in and out, dead letters by stage, deliveries,
#    retries by status;
#  - lag: with the platform down, N new events raise deliver's
#    relay_consumer_lag to N and relay_consumer_lag_seconds to about the
#    time since they were produced; back up, both return to 0;
#  - the log level changes at run time (PUT /loglevel);
#  - with deploy/grafana's dashboard, Debian's Prometheus scrapes both
#    workers and every panel's query returns data.
source "$(dirname "$0")/lib.sh"
TOOLS=${RELAY_TOOLS_DIR:-$SRC/build/tools}   # scripts/install-deploy-tools.sh
PROMTOOL=${RELAY_PROMTOOL:-$TOOLS/prometheus/usr/bin/promtool}
PROMETHEUS=${RELAY_PROMETHEUS:-$TOOLS/prometheus/usr/bin/prometheus}
[ -x "$PROMTOOL" ] || fail "no promtool at $PROMTOOL (scripts/install-deps.sh fetches it)"

# out.mparticle comes later: deliver starts with nothing to consume.
broker loyalty.events:3 dlq.mparticle:1 dlq.transform:1
start_sim
FAST=(-X kafka.statistics.interval.ms=1000 -X kafka.topic.metadata.refresh.interval.ms=1000)
start_deliver "${FAST[@]}" -X deliver.probe_base_ms=500 -X deliver.probe_max_ms=1000
D=$(admin_url deliver.log)
code() { curl -s -o "$WORK/body" -w '%{http_code}' "$1"; }
check "deliver is alive (/healthz 200) before it has partitions" test "$(code "$D/healthz")" = 200
check "and not ready (/readyz 503)" test "$(code "$D/readyz")" = 503
check "saying it has no partitions" grep -q "no partitions" "$WORK/body"
"$SRC/tests/kafka/create-topics.sh" "$BS" out.mparticle:3 >/dev/null
start_transform "${FAST[@]}"
T=$(admin_url transform.log)
ready() { [ "$(code "$1/readyz")" = 200 ]; }
check "deliver is ready once out.mparticle exists and it has its partitions" wait_for 60 ready "$D"
check "transform is ready" wait_for 30 ready "$T"

# relay-ingest and relay-poll as well: the dashboard and the alert rules
# name their metrics. Ingest's webhooks are loyalty events like the rest;
# poll reads a feed of the events-API simulator that stays empty, so it
# polls (windows, requests, checkpoints) and adds no event to the counts.
export RELAY_INGEST_TOKENS_ANTAVO=ops-tok RELAY_INGEST_TOKENS_CMCDP=ops-tok \
  RELAY_INGEST_TOKENS_MPARTICLE=ops-tok RELAY_POLL_ACME_ANTAVO_TOKEN=ops-tok
"$BIN/relay-ingest" -c deploy/config/ingest.cfg -X kafka.bootstrap.servers="$BS" \
  -X ingest.address=127.0.0.1 -X ingest.port=-1 -X ingest.port_file="$WORK/ingest.port" \
  "${FAST[@]}" "${ADMIN[@]}" >/dev/null 2>>"$WORK/ingest.log" &
PIDS+=($!)
I=$(admin_url ingest.log)
wait_for 20 test -s "$WORK/ingest.port" || fail "relay-ingest did not start"
INGEST="http://127.0.0.1:$(cat "$WORK/ingest.port")"
webhooks() { # webhooks N: N Antavo webhooks, each answered 202
  for i in $(seq 1 "$1"); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$INGEST/v1/events/antavo/point_add" \
         -H 'X-Relay-Token: ops-tok' -d "{\"customer\":\"ops-$i\"}")" = 202 ] || return 1
  done
}
python3 "$SRC/tests/sim/poll_sim.py" --port 0 --port-file "$WORK/poll_sim.port" --token ops-tok \
  --paging cursor --token-in query >/dev/null 2>&1 &
PIDS+=($!)
wait_for 10 test -s "$WORK/poll_sim.port" || fail "the poll simulator did not start"
mkdir -p "$WORK/sources"
sed -e "s|http://poll-sim:8080|http://127.0.0.1:$(cat "$WORK/poll_sim.port")|" \
    -e 's/interval_ms = 10000;/interval_ms = 1000;/' -e 's/delay_ms = 10000;/delay_ms = 1000;/' \
  deploy/demo/sources/acme-antavo.cfg > "$WORK/sources/acme-antavo.cfg"
"$BIN/relay-poll" -c deploy/config/poll.cfg -X kafka.bootstrap.servers="$BS" \
  -X poll.sources="$WORK/sources" "${FAST[@]}" "${ADMIN[@]}" >>"$WORK/poll.log" 2>&1 &
PIDS+=($!)
P=$(admin_url poll.log)
check "relay-ingest is ready" wait_for 30 ready "$I"
check "relay-poll is ready" wait_for 60 ready "$P"
check "three webhooks are answered 202" webhooks 3

# Traffic: good events, one the mapping refuses, one the platform refuses,
# one it fails twice (retries).
N=200
python3 tests/integration/gen_events.py --count $N --prefix "ops-$$" --ids "$WORK/ops.ids" > "$WORK/ops.jsonl"
REFUSE=$(sed -n 8p "$WORK/ops.ids"); BUSY=$(sed -n 12p "$WORK/ops.ids")
sim_fault '{"name":"refuse-one","status":400,"match":"'"$REFUSE"'","times":-1}'
sim_fault '{"name":"busy-one","status":503,"match":"'"$BUSY"'","times":2}'
produce loyalty.events < "$WORK/ops.jsonl"
printf 'garbage' | kcat -P -b "$BS" -t loyalty.events 2>>"$WORK/kcat.log" ||
  fail "kcat could not produce the garbage record"
delivered() { [ "$(metric "$D" relay_delivered_total)" -ge $((N - 1)) ]; }
check "deliver delivered the $((N - 1)) good events" wait_for 60 delivered

# The counts settle when the last dead letters are acknowledged: wait for
# them before reading the rest.
at_least() { local v; v=$(metric "$@" | tail -1); [ "$v" != none ] && [ "${v%.*}" -ge "$WANT" ]; }
WANT=1 wait_for 30 at_least "$T" relay_dead_letters_total topic=dlq.transform reason=decode ||
  fail "transform never counted the garbage record's dead letter"
WANT=1 wait_for 30 at_least "$D" relay_dead_letters_total topic=dlq.mparticle reason=deliver ||
  fail "deliver never counted the refused record's dead letter"
for w in transform deliver ingest poll; do
  case $w in transform) u=$T ;; deliver) u=$D ;; ingest) u=$I ;; poll) u=$P ;; esac
  curl -sf "$u/metrics" > "$WORK/$w.prom"
  check "$w's /metrics passes promtool check metrics" \
    bash -c "'$PROMTOOL' check metrics < '$WORK/$w.prom' > '$WORK/$w.promtool' 2>&1"
done
check "transform counted the $N events in (relay_records_in_total)" \
  test "$(metric "$T" relay_records_in_total topic=loyalty.events)" -ge "$N"
check "transform counted its outputs (relay_records_out_total{topic=out.mparticle})" \
  test "$(metric "$T" relay_records_out_total topic=out.mparticle)" -ge $((N - 5))
check "transform counted the garbage record's dead letter (stage decode)" \
  test "$(metric "$T" relay_dead_letters_total topic=dlq.transform reason=decode)" -ge 1
check "deliver counted the refused record's dead letter (stage deliver)" \
  test "$(metric "$D" relay_dead_letters_total topic=dlq.mparticle reason=deliver)" = 1
check "deliver counted the 503 retries (relay_delivery_retries_total{status=503})" \
  test "$(metric "$D" relay_delivery_retries_total status=503)" -ge 2
check "and request latencies (relay_http_request_duration_seconds_count)" \
  test "$(metric "$D" relay_http_request_duration_seconds_count)" -ge 2
check "every metric the dashboard and the alert rules name is in the live exposition" \
  python3 tests/deploy/check_dashboard.py deploy/grafana/dashboards/relay.json \
    --metrics "$WORK/transform.prom" --metrics "$WORK/deliver.prom" \
    --metrics "$WORK/ingest.prom" --metrics "$WORK/poll.prom" --rules deploy/prometheus/alerts.yml
check "tests/deploy/metrics.txt (the offline check's list) names exactly the metrics exposed" \
  python3 - "$WORK/transform.prom" "$WORK/deliver.prom" "$WORK/ingest.prom" "$WORK/poll.prom" \
    tests/deploy/metrics.txt <<'PY'
import sys
live = set()
for f in sys.argv[1:5]:
    live |= {l.split()[2] for l in open(f) if l.startswith("# TYPE ")}
listed = {l.split()[0] for l in open(sys.argv[5]) if l.strip() and not l.startswith("#")}
if live != listed:
    sys.exit("exposed, not listed: %s; listed, not exposed: %s"
             % (sorted(live - listed), sorted(listed - live)))
PY
check "relay_build_info names the worker" \
  test "$(metric "$D" relay_build_info worker=deliver-mparticle)" = 1
check "process metrics are there (RSS)" test "$(metric "$D" process_resident_memory_bytes)" != none

# Lag: the platform goes down; N2 events wait.
N2=300
zero_lag() { [ "$(metric "$D" relay_consumer_lag)" = 0 ]; }
check "deliver's lag is 0 after the traffic" wait_for 30 zero_lag
sim_fault '{"name":"down","status":503,"times":-1}'
python3 tests/integration/gen_events.py --count $N2 --prefix "lag-$$" --ids "$WORK/lag.ids" > "$WORK/lag.jsonl"
produce loyalty.events < "$WORK/lag.jsonl"
t_produced=$SECONDS
lag_n() { [ "$(metric "$D" relay_consumer_lag)" = "$N2" ]; }
wait_for 60 lag_n || echo "# relay_consumer_lag is $(metric "$D" relay_consumer_lag); per partition: $(curl -sf "$D/metrics" | grep '^relay_consumer_lag{' | tr '\n' ' ')"
check "with the platform down, relay_consumer_lag rises to the $N2 waiting events" lag_n
notready() { [ "$(code "$D/readyz")" = 503 ] && grep -q "circuit open" "$WORK/body"; }
check "deliver is not ready, saying the circuit is open" wait_for 30 notready
check "relay_breaker_open is 1" test "$(metric "$D" relay_breaker_open)" = 1
sleep 4
age=$(metric "$D" relay_consumer_lag_seconds --max)
waited=$((SECONDS - t_produced))
check "relay_consumer_lag_seconds ($age) is about the time since they were produced (${waited} s)" \
  python3 -c "import sys; a = float('$age'); sys.exit(not ($waited - 4 <= a <= $waited + 10))"
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null
check "back up, the lag returns to 0" wait_for 60 zero_lag
zero_age() { [ "$(metric "$D" relay_consumer_lag_seconds --max)" = 0 ]; }
check "and so does the lag in seconds" wait_for 30 zero_age
check "deliver is ready again" wait_for 30 ready "$D"
check "relay_breaker_open is 0" test "$(metric "$D" relay_breaker_open)" = 0

# A wrong key: not ready, saying so; ready again once the key is right.
sim_fault '{"name":"bad-key","status":403,"times":-1}'
python3 tests/integration/gen_events.py --count 5 --prefix "key-$$" --ids "$WORK/key.ids" > "$WORK/key.jsonl"
produce loyalty.events < "$WORK/key.jsonl"
refused() { [ "$(code "$D/readyz")" = 503 ] && grep -q "refused the credentials" "$WORK/body"; }
check "with the key refused, deliver is not ready and says why" wait_for 30 refused
check "relay_platform_state is 2 (credentials refused)" test "$(metric "$D" relay_platform_state)" = 2
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null
check "ready again once the platform takes the key" wait_for 30 ready "$D"
check "/healthz stayed ok" test "$(code "$D/healthz")" = 200

# The log level at run time.
check "PUT /loglevel debug is taken" test "$(curl -sf -X PUT --data debug "$D/loglevel")" = debug
check "GET /loglevel says debug" test "$(curl -sf "$D/loglevel")" = debug
check "a bad level is refused with 400" test "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data loud "$D/loglevel")" = 400
python3 tests/integration/gen_events.py --count 3 --prefix "dbg-$$" --ids "$WORK/dbg.ids" > "$WORK/dbg.jsonl"
produce loyalty.events < "$WORK/dbg.jsonl"
check "debug lines appear in the log (the requests of 3 new events)" \
  wait_for 30 grep -q '"level":"debug"' "$WORK/deliver.log"
curl -sf -X PUT --data info "$D/loglevel" >/dev/null

# The dashboard, against a live Prometheus scraping both workers.
if [ -x "$PROMETHEUS" ] && [ -f deploy/grafana/dashboards/relay.json ]; then
  PPORT=$(free_port)
  cat > "$WORK/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: relay
    static_configs:
      - targets: ["${T#http://}", "${D#http://}", "${I#http://}", "${P#http://}"]
EOF
  "$PROMETHEUS" --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$PPORT" >"$WORK/prometheus.log" 2>&1 &
  PIDS+=($!)
  # Both targets up (sum 2), not only the first one scraped: traffic sent
  # before a target's first scrape is in its first sample, where rate()
  # cannot see it (the request-latency panel came out NaN so).
  scraped() { curl -sf "http://127.0.0.1:$PPORT/api/v1/query?query=sum(up)" | grep -q '"value":\[[0-9.]*,"4"\]'; }
  check "Prometheus scrapes the four workers" wait_for 60 scraped
  sleep 2
  # rate() needs a few samples and some traffic inside the window.
  python3 tests/integration/gen_events.py --count 50 --prefix "dash-$$" --ids "$WORK/dash.ids" > "$WORK/dash.jsonl"
  produce loyalty.events < "$WORK/dash.jsonl"
  webhooks 10 || fail "webhooks for the dashboard were not answered 202"
  sleep 8
  check "every panel of deploy/grafana/dashboards/relay.json returns data" \
    python3 tests/deploy/check_dashboard.py deploy/grafana/dashboards/relay.json \
      --prometheus "http://127.0.0.1:$PPORT"
else
  fail "no Prometheus at $PROMETHEUS or no dashboard: the dashboard check cannot run"
fi
done_checks
