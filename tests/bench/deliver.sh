#!/usr/bin/env bash
# relay-deliver throughput to a sink that answers 202 at once, against wrk
# posting the same request bodies to the same sink in the same run.
#
#   RELAY_BUILD_DIR=build bash tests/bench/deliver.sh [--records N] [--wrk-seconds S]
#       [--partitions "1 4"]
#   RELAY_BUILD_DIR=build bash tests/bench/deliver.sh --short   # 5000 records, 2 s of wrk, 1 partition
#
# The sink is Debian's nginx with `return 202;` on a free loopback port, run
# in the foreground as the current user from a temporary directory (no
# daemon, no system service). The body wrk posts is one relay-deliver really
# sent: 100 records delivered first to the mParticle simulator, which saves
# the bytes of each request (--save-bodies).
#
# The relay side: N records are produced to out.mparticle on a real broker
# (tests/kafka/start.sh, or RELAY_TEST_BOOTSTRAP) before relay-deliver
# starts; it is timed from its start until its group's committed offsets add
# up to N. Nothing is subtracted (start-up, group join and the last commit
# are in the figure); the time to the first commit is printed beside it.
#
# The cost of metrics: relay-deliver runs twice over the same records (two
# groups), with the admin endpoint off and then on and scraped every
# second; then relay-transform does the same with as many loyalty events.
# Both ratios (on/off, events/s) are printed; the goal is above 0.97.
#
# Against the ceiling (issue 20): for each partition count P (1 and 4; the
# short mode 1), a topic bench.pP holds the same N records; relay-deliver
# with the shipped deliver.max_in_flight K (read from
# deploy/config/deliver-mparticle.cfg), post_ceiling (tests/bench/
# post_ceiling.c: the same records' raw bytes, as many a request as
# relay-deliver sends (88 with the shipped 4 in flight), K requests in
# flight on kept-alive connections) and wrk with K connections posting the
# captured body each run once; printed: events/s of each, relay/ceiling and
# relay/wrk, and the CPU seconds of relay-deliver and post_ceiling. The goal
# is relay/ceiling >= 0.7.
#
# Builds nothing. Exits 0 whatever the ratio (a measurement, never an
# asserted timing); 1 when something does not work: a worker or tool fails,
# the sink answers anything but 202, or the committed offsets are not N.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${RELAY_BUILD_DIR:-build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
BIN=$BUILD_DIR/workers
HELPER=$ROOT/tests/bench/deliver_bench.py
RECORDS=50000
WRK_SECONDS=10
PARTITIONS="1 4"

usage() {
  echo "usage: [RELAY_BUILD_DIR=dir] $0 [--records N] [--wrk-seconds S] [--partitions \"1 4\"] [--short]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --records) [ $# -ge 2 ] || usage; RECORDS=$2; shift 2 ;;
    --wrk-seconds) [ $# -ge 2 ] || usage; WRK_SECONDS=$2; shift 2 ;;
    --partitions) [ $# -ge 2 ] || usage; PARTITIONS=$2; shift 2 ;;
    --short) RECORDS=5000; WRK_SECONDS=2; PARTITIONS=1; shift ;;
    *) usage ;;
  esac
done
[[ $RECORDS =~ ^[1-9][0-9]*$ && $WRK_SECONDS =~ ^[1-9][0-9]*$ ]] || usage
for p in $PARTITIONS; do [[ $p =~ ^[1-9][0-9]?$ ]] || usage; done

die() { echo "deliver.sh: $*" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx not found (scripts/install-deps.sh installs it)"
command -v wrk >/dev/null || die "wrk not found (scripts/install-deps.sh installs it)"
python3 -c 'import confluent_kafka' 2>/dev/null || die "python3 lacks confluent_kafka (scripts/install-deps.sh)"
for b in workers/relay-deliver workers/relayctl tests/bench/post_ceiling; do
  [ -x "$BUILD_DIR/$b" ] || die "$BUILD_DIR/$b not found; build first: RELAY_BUILD_DIR=${RELAY_BUILD_DIR:-build} bash scripts/build.sh"
done
# The shipped requests in flight: what relay-deliver runs with, and what
# post_ceiling and wrk get.
IN_FLIGHT=$(sed -n 's/^[[:space:]]*max_in_flight[[:space:]]*=[[:space:]]*"\{0,1\}\([0-9a-z]*\)"\{0,1\};.*/\1/p' \
  "$ROOT/deploy/config/deliver-mparticle.cfg" | head -n 1)
[[ $IN_FLIGHT =~ ^[1-9][0-9]*$ ]] ||
  die "deploy/config/deliver-mparticle.cfg: deliver.max_in_flight is '$IN_FLIGHT', not a number of requests"
# And records a request as relay-deliver makes them, for post_ceiling's
# requests of the same size: its default batch is 100 records (mParticle's
# limit) a request in flight less an eighth, packed by person into one
# request per slot (common/deliver/deliver.c, build()).
PER_REQUEST=100
if [ "$IN_FLIGHT" -gt 1 ]; then
  PER_REQUEST=$(( (100 * IN_FLIGHT - 100 * IN_FLIGHT / 8 + IN_FLIGHT - 1) / IN_FLIGHT ))
fi

cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; }
BUILD_TYPE=$(cache_get CMAKE_BUILD_TYPE)
SANITIZE=$(cache_get RELAY_SANITIZE)
BUILD_DESC="${BUILD_TYPE:-RelWithDebInfo}${SANITIZE:+, sanitize=$SANITIZE}"
case $BUILD_TYPE in
  "" | Release | RelWithDebInfo) [ -z "$SANITIZE" ] ;;
  *) false ;;
esac || BUILD_DESC="$BUILD_DESC (not representative)"

TMP=$(mktemp -d /tmp/relay-bench.XXXXXX)
PIDS=()
OWN_BROKER=""
OK=0
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$OWN_BROKER" ]; then "$ROOT/tests/kafka/stop.sh" "$OWN_BROKER" >/dev/null 2>&1 || true; fi
  if [ "$OK" = 1 ]; then
    rm -rf "$TMP"
  else
    for f in "$TMP"/*.log; do
      [ -s "$f" ] || continue
      echo "----- $(basename "$f") (last 20 lines)" >&2; tail -n 20 "$f" | cut -c1-300 >&2
    done
    echo "(work files kept in $TMP)" >&2
  fi
}
trap cleanup EXIT
cd "$ROOT"

# Poll a command until it succeeds; bounded by seconds.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.1
  done
}
now_ns() { date +%s%N; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# CPU seconds (user + system) a live process has used.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

KEY=bench-key
SECRET=bench-secret
# deliver KAFKA_TOPIC GROUP URL LOG [-X ...]: relay-deliver in the background; sets DPID.
deliver() {
  local topic=$1 group=$2 url=$3 log=$4; shift 4
  RELAY_MPARTICLE_API_KEY=$KEY RELAY_MPARTICLE_API_SECRET=$SECRET \
  "$BIN/relay-deliver" -c deploy/config/deliver-mparticle.cfg \
    -X kafka.bootstrap.servers="$BS" -X deliver.topic="$topic" \
    -X deliver.group_id="$group" -X mparticle.url="$url" \
    -X admin.address=127.0.0.1 -X admin.port=-1 "$@" >>"$TMP/$log" 2>&1 &
  DPID=$!
  PIDS+=($DPID)
}
stop_pid() { kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }

# --- broker and records ---------------------------------------------------------
# Always a fresh broker of our own: empty topics, so the committed offsets
# count exactly this run's records.
OWN_BROKER=${RELAY_KAFKA_DIR:-$BUILD_DIR/kafka}
export RELAY_KAFKA_DIR=$OWN_BROKER
# Any free ports: other brokers on the machine may hold the default ones.
BS=$(RELAY_KAFKA_PORT=${RELAY_KAFKA_PORT:-0} RELAY_KAFKA_CONTROLLER_PORT=${RELAY_KAFKA_CONTROLLER_PORT:-0} \
     "$ROOT/tests/kafka/start.sh" "$OWN_BROKER" 2>"$TMP/broker-start.log" | sed -n 's/^bootstrap=//p')
[ -n "$BS" ] || die "broker did not start (tests/kafka/start.sh)"
TOPIC=out.mparticle
GROUP=relay-deliver-mparticle
"$ROOT/tests/kafka/create-topics.sh" "$BS" "$TOPIC:3" dlq.mparticle:1 \
  >/dev/null 2>"$TMP/topics.log" || die "could not create topics"
python3 "$HELPER" records "$RECORDS" bench-$$ >"$TMP/records.jsonl"
t=$(now_ns)
"$BIN/relayctl" -b "$BS" produce "$TOPIC" <"$TMP/records.jsonl" 2>>"$TMP/relayctl.log" \
  || die "relayctl produce failed"
PRODUCE_MS=$(( ($(now_ns) - t) / 1000000 ))
# The same records once more per partition count, for the ceiling runs,
# keyed by the person (identity_value) as relay-transform keys out.<platform>:
# relay-deliver keeps a person's records in one lane, so records without a
# key all fall in one lane, one request at a time, whatever max_in_flight.
for p in $PARTITIONS; do
  "$ROOT/tests/kafka/create-topics.sh" "$BS" "bench.p$p:$p" >/dev/null 2>>"$TMP/topics.log" \
    || die "could not create bench.p$p"
  "$BIN/relayctl" -b "$BS" produce "bench.p$p" -S out.mparticle-value -k identity_value <"$TMP/records.jsonl" \
    2>>"$TMP/relayctl.log" || die "relayctl produce to bench.p$p failed"
done

# --- 1. the request body: what relay-deliver sends for 100 records -------------
# A relay-deliver of another group takes the first records to the
# simulator, which saves each request's bytes; it is stopped once one
# request of 100 batches is saved.
mkdir -p "$TMP/bodies"
python3 tests/sim/mparticle_sim.py --port 0 --port-file "$TMP/sim.port" --key $KEY \
  --secret $SECRET --save-bodies "$TMP/bodies" >/dev/null 2>"$TMP/sim.log" &
SIM_PID=$!
PIDS+=($SIM_PID)
wait_for 10 test -s "$TMP/sim.port" || die "simulator did not start"
SIM=http://127.0.0.1:$(cat "$TMP/sim.port")
BODY=$TMP/body.json
full_body() {
  python3 -c '
import json, os, sys
d = sys.argv[1]
for name in sorted(n for n in os.listdir(d) if n.endswith(".json")):
    raw = open(os.path.join(d, name), "rb").read()
    if len(json.loads(raw)) == 100:
        open(sys.argv[2], "wb").write(raw)
        sys.exit(0)
sys.exit(1)' "$TMP/bodies" "$BODY"
}
# One request at a time: a batch of 100, one request of 100 (wrk's body).
deliver "$TOPIC" relay-bench-capture "$SIM/v2" capture.log -X deliver.max_in_flight=1
wait_for 60 full_body || die "relay-deliver sent the simulator no request of 100 batches"
stop_pid "$DPID"
stop_pid "$SIM_PID"
BODY_BYTES=$(wc -c <"$BODY")

# --- 2. the sink ----------------------------------------------------------------
PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
# One process in the foreground, as whoever runs the benchmark.
daemon off;
master_process off;
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx.log warn;
events { worker_connections 256; }
http {
  log_format sink '\$content_length \$status';
  access_log $TMP/nginx/access.log sink;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_max_body_size 16m;
  server {
    listen 127.0.0.1:$PORT;
    location / { return 202; }
  }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e stderr 2>>"$TMP/nginx.log" &
PIDS+=($!)
up() { curl -s -o /dev/null -w '%{http_code}' -X POST -d '[]' "http://127.0.0.1:$PORT/v2/bulkevents" | grep -q 202; }
wait_for 10 up || die "nginx did not answer on 127.0.0.1:$PORT"
SINK=http://127.0.0.1:$PORT
log_lines() { wc -l <"$TMP/nginx/access.log"; }

# --- 3. wrk ---------------------------------------------------------------------
python3 "$HELPER" wrk-lua >"$TMP/post.lua"
export BENCH_BODY=$BODY
BENCH_AUTH=$(printf '%s:%s' $KEY $SECRET | base64 -w0)
export BENCH_AUTH
# run_wrk NAME CONNECTIONS: one wrk run; appends "NAME requests/s events/s
# requests non_202+socket_errors mean_request_bytes" to $TMP/results.
run_wrk() {
  local name=$1 conns=$2 from
  from=$(($(log_lines) + 1))
  wrk -t1 -c"$conns" -d"${WRK_SECONDS}s" -s "$TMP/post.lua" "$SINK/v2/bulkevents" \
    >"$TMP/wrk-$name.out" 2>>"$TMP/wrk.log" || die "wrk failed"
  read -r _ mean bad < <(python3 "$HELPER" sink-log "$TMP/nginx/access.log" "$from")
  python3 - "$name" "$mean" "$bad" "$TMP/wrk-$name.out" >>"$TMP/results" <<'EOF' || die "wrk printed no summary"
import json, sys
d = json.loads([l for l in open(sys.argv[4]) if l.startswith("{")][-1])
rps = d["requests"] / (d["duration_us"] / 1e6)
print(sys.argv[1], "%.1f" % rps, "%.0f" % (rps * 100), d["requests"],
      d["non_2xx"] + d["socket_errors"] + int(sys.argv[3]), sys.argv[2])
EOF
}

# --- 4. relay-deliver -------------------------------------------------------------
# scrape_every_second LOG: GET /metrics of the worker logging to LOG once a
# second (as Prometheus would) in the background, up to 10 min; prints the
# scraper's pid.
scrape_every_second() {
  ( for _ in $(seq 1 600); do
      port=$(grep -o 'serving /metrics[^"]* on [0-9.]*:[0-9]*' "$1" 2>/dev/null |
             tail -1 | sed 's/.*://')
      [ -n "$port" ] && curl -s -o /dev/null "http://127.0.0.1:$port/metrics"
      sleep 1
    done ) >/dev/null 2>&1 &
  echo $!
}

# run_relay NAME GROUP [-X ...]: one relay-deliver run over the N records
# (of $RUN_TOPIC, default $TOPIC) as GROUP; appends "NAME requests/s
# events/s requests non_202 mean_bytes seconds first_commit_s cpu_s"; with the admin endpoint on (the default), /metrics is scraped every
# second during the run, as Prometheus would.
run_relay() {
  local name=$1 group=$2 from poller t0 first last total cpu scraper=""
  shift 2
  python3 "$HELPER" wait "$BS" "$group" "${RUN_TOPIC:-$TOPIC}" "$RECORDS" $((120 + RECORDS / 500)) \
    >"$TMP/wait.out" 2>>"$TMP/wait.log" &
  poller=$!
  PIDS+=($poller)
  wait_for 30 grep -qs ready "$TMP/wait.out" || die "the offset poller did not start"
  from=$(($(log_lines) + 1))
  t0=$(now_ns)
  deliver "${RUN_TOPIC:-$TOPIC}" "$group" "$SINK/v2" "$name.log" "$@"
  [[ " $* " == *" admin.port=0 "* ]] || scraper=$(scrape_every_second "$TMP/$name.log")
  wait "$poller" || die "relay-deliver did not commit $RECORDS records in time"
  cpu=$(cpu_s "$DPID")
  [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null; }
  stop_pid "$DPID"
  read -r first last total < <(tail -n 1 "$TMP/wait.out")
  read -r reqs mean bad < <(python3 "$HELPER" sink-log "$TMP/nginx/access.log" "$from")
  python3 - "$name" "$t0" "$first" "$last" "$RECORDS" "$reqs" "$bad" "$mean" "$cpu" >>"$TMP/results" <<'EOF'
import sys
name, t0, first, last, n, reqs, bad, mean, cpu = sys.argv[1:]
secs = (int(last) - int(t0)) / 1e9
print(name, "%.1f" % (int(reqs) / secs), "%.0f" % (int(n) / secs), reqs, bad, mean,
      "%.2f" % secs, "%.2f" % ((int(first) - int(t0)) / 1e9), cpu)
EOF
}

# run_ceiling NAME TOPIC: post_ceiling over TOPIC's N records with
# $IN_FLIGHT requests in flight; appends a row like run_relay's (its own
# figures: from its start to its commit's answer, CPU of the process).
run_ceiling() {
  local name=$1 topic=$2 from
  from=$(($(log_lines) + 1))
  "$BUILD_DIR/tests/bench/post_ceiling" --bootstrap "$BS" --topic "$topic" \
    --group "bench-ceiling-$name" --records "$RECORDS" --url "$SINK/v2/bulkevents" \
    --userpwd "$KEY:$SECRET" --per-request "$PER_REQUEST" --in-flight "$IN_FLIGHT" \
    --timeout $((120 + RECORDS / 500)) >"$TMP/$name.json" 2>>"$TMP/post_ceiling.log" \
    || die "post_ceiling failed (see post_ceiling.log)"
  read -r reqs mean bad < <(python3 "$HELPER" sink-log "$TMP/nginx/access.log" "$from")
  python3 - "$name" "$TMP/$name.json" "$reqs" "$bad" "$mean" >>"$TMP/results" <<'EOF' || die "post_ceiling printed no figures"
import json, sys
name, path, reqs, bad, mean = sys.argv[1:]
d = json.loads(open(path).read().strip().splitlines()[-1])
secs = d["wall_s"]
print(name, "%.1f" % (int(reqs) / secs), "%.0f" % d["records_per_s"], reqs, bad, mean,
      "%.2f" % secs, "%.2f" % d["first_record_s"], "%.2f" % d["cpu_s"])
EOF
}

echo "relay-deliver -> nginx 'return 202' vs wrk, $RECORDS records, wrk ${WRK_SECONDS} s a run" \
     "($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), build: $BUILD_DESC)"
echo "request body: POST /v2/bulkevents, 100 batches, $BODY_BYTES bytes (captured from relay-deliver)"
echo "produced $RECORDS records to $TOPIC (3 partitions) in $PRODUCE_MS ms, before relay-deliver started"
run_wrk "wrk-c1-before" 1
# The cost of metrics: the same records twice, as two groups, with the
# admin endpoint off (no metrics collected, nothing scraped) and on; off
# first, so that the run measured for relay/wrk reads a warm topic too.
# Three rounds, each off then on (runs of a second or two are noisy); the
# ratio printed is the median round's.
for r in 1 2 3; do
  run_relay "relay-no-metrics-$r" "$GROUP-no-metrics-$r" -X admin.port=0
  if [ $r = 1 ]; then run_relay relay-deliver "$GROUP"
  else run_relay "relay-deliver-$r" "$GROUP-$r"; fi
done
run_wrk "wrk-c1-after" 1
run_wrk "wrk-c4" 4
# Against the ceiling: per partition count, post_ceiling, relay-deliver and
# wrk with as many requests in flight as relay-deliver ships with.
for p in $PARTITIONS; do
  run_ceiling "ceiling-p$p" "bench.p$p"
  RUN_TOPIC=bench.p$p run_relay "relay-p$p" "$GROUP-p$p"
  run_wrk "wrk-k-p$p" "$IN_FLIGHT"
done

# --- 5. the cost of metrics in relay-transform -----------------------------------
# The same number of loyalty events through relay-transform twice, as two
# groups: admin endpoint off, then on and scraped every second. (After the
# delivery runs: its outputs land in out.mparticle.)
"$ROOT/tests/kafka/create-topics.sh" "$BS" loyalty.events:3 dlq.transform:1 \
  >/dev/null 2>>"$TMP/topics.log" || die "could not create the transform's topics"
python3 tests/integration/gen_events.py --count "$RECORDS" --prefix "tb-$$" \
  --ids "$TMP/tb.ids" >"$TMP/loyalty.jsonl"
"$BIN/relayctl" -b "$BS" produce loyalty.events <"$TMP/loyalty.jsonl" 2>>"$TMP/relayctl.log" \
  || die "relayctl produce of loyalty events failed"
# run_transform NAME GROUP [-X ...]: appends "NAME events/s seconds cpu_s".
run_transform() {
  local name=$1 group=$2 poller t0 first last total cpu scraper="" tpid
  shift 2
  python3 "$HELPER" wait "$BS" "$group" loyalty.events "$RECORDS" $((120 + RECORDS / 500)) \
    >"$TMP/twait.out" 2>>"$TMP/wait.log" &
  poller=$!
  PIDS+=($poller)
  wait_for 30 grep -qs ready "$TMP/twait.out" || die "the offset poller did not start"
  t0=$(now_ns)
  "$BIN/relay-transform" -c deploy/config/transform-loyalty.cfg \
    -X kafka.bootstrap.servers="$BS" -X transform.group_id="$group" \
    -X admin.address=127.0.0.1 -X admin.port=-1 "$@" >>"$TMP/$name.log" 2>&1 &
  tpid=$!
  PIDS+=($tpid)
  [[ " $* " == *" admin.port=0 "* ]] || scraper=$(scrape_every_second "$TMP/$name.log")
  wait "$poller" || die "relay-transform did not commit $RECORDS records in time"
  cpu=$(cpu_s "$tpid")
  [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null; }
  stop_pid "$tpid"
  read -r first last total < <(tail -n 1 "$TMP/twait.out")
  python3 -c 'import sys; t0, last, n = map(int, sys.argv[2:5]); s = (last - t0) / 1e9
print(sys.argv[1], "%.0f" % (n / s), "%.2f" % s, sys.argv[5])' \
    "$name" "$t0" "$last" "$RECORDS" "$cpu" >>"$TMP/tresults"
}
for r in 1 2 3; do
  run_transform "transform-no-metrics-$r" "relay-bench-transform-off-$r" -X admin.port=0
  run_transform "transform-$r" "relay-bench-transform-on-$r"
done

# The committed offsets, read again by the project's independent tool.
COMMITTED=$("$ROOT/tests/kafka/committed-offsets.sh" "$BS" "$GROUP" 2>>"$TMP/offsets.log" \
  | awk -v t="$TOPIC" '$1 == t { s += $3 } END { print s + 0 }')

python3 - "$TMP/results" "$RECORDS" "$COMMITTED" "$TMP/tresults" "$IN_FLIGHT" "$PARTITIONS" <<'EOF' || exit 1
import sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows[f[0]] = f[1:]
n, committed = int(sys.argv[2]), int(sys.argv[3])
print()
print("  %-15s %10s %12s %9s %13s %8s" % ("", "events/s", "requests/s", "requests",
                                        "body bytes", "non-202"))
for name in ("relay-deliver", "relay-no-metrics-1", "wrk-c1-before", "wrk-c1-after", "wrk-c4"):
    rps, eps, reqs, bad, mean = rows[name][:5]
    print("  %-15s %10s %12s %9s %13s %8s" % (name, format(int(eps), ","), rps, reqs, mean, bad))
r = rows["relay-deliver"]
relay_eps, relay_reqs = int(r[1]), int(r[2])
wrk1 = (int(rows["wrk-c1-before"][1]) + int(rows["wrk-c1-after"][1])) / 2
wrk4 = int(rows["wrk-c4"][1])
print()
print("relay/wrk = %.3f (events/s; wrk with 1 connection, mean of the runs before and after)"
      % (relay_eps / wrk1))
print("relay/wrk-c4 = %.3f" % (relay_eps / wrk4))
def on_off(on, off):
    ratios = sorted(on[k] / off[k] for k in on)
    return ratios[len(ratios) // 2], ratios
on = {1: relay_eps}
on.update({k: int(rows["relay-deliver-%d" % k][1]) for k in (2, 3)})
off = {k: int(rows["relay-no-metrics-%d" % k][1]) for k in (1, 2, 3)}
mid, all_r = on_off(on, off)
cpu_on = {1: float(r[7])}
cpu_on.update({k: float(rows["relay-deliver-%d" % k][7]) for k in (2, 3)})
cpu_off = {k: float(rows["relay-no-metrics-%d" % k][7]) for k in (1, 2, 3)}
cmid, _ = on_off(cpu_off, cpu_on)
print("relay-deliver metrics on/off = %.3f (events/s with /metrics scraped every second over "
      "the admin endpoint off, median of 3 rounds: %s; CPU seconds off/on %.3f; the goal is "
      "above 0.97)" % (mid, " ".join("%.3f" % x for x in all_r), cmid))
print("relay-deliver: %s records in %s s from its start to all committed (first commit after %s s), "
      "%.1f batches/request, %s CPU s" % (format(n, ","), r[5], r[6], n / relay_reqs, r[7]))
print("committed offsets (tests/kafka/committed-offsets.sh): %d of %d" % (committed, n))
bad = sum(int(v[3]) for v in rows.values())
t = {l.split()[0]: l.split()[1:] for l in open(sys.argv[4])}
mid, all_r = on_off({k: int(t["transform-%d" % k][0]) for k in (1, 2, 3)},
                    {k: int(t["transform-no-metrics-%d" % k][0]) for k in (1, 2, 3)})
cmid, _ = on_off({k: float(t["transform-no-metrics-%d" % k][2]) for k in (1, 2, 3)},
                 {k: float(t["transform-%d" % k][2]) for k in (1, 2, 3)})
print("relay-transform metrics on/off = %.3f (events/s, median of 3 rounds: %s; CPU seconds "
      "off/on %.3f; with metrics %s events/s and %s CPU s in round 1, without %s and %s)"
      % (mid, " ".join("%.3f" % x for x in all_r), cmid, format(int(t["transform-1"][0]), ","),
         t["transform-1"][2], format(int(t["transform-no-metrics-1"][0]), ","),
         t["transform-no-metrics-1"][2]))
k = int(sys.argv[5])
print()
print("against the ceiling, %s records, %d requests in flight (deploy/config/deliver-mparticle.cfg; "
      "post_ceiling --in-flight %d, wrk -c %d):" % (format(n, ","), k, k, k))
print("  %-10s %-14s %10s %12s %8s %8s %8s" % ("partitions", "", "events/s", "requests/s",
                                            "seconds", "first s", "CPU s"))
for p in sys.argv[6].split():
    for name, label in (("ceiling-p" + p, "post_ceiling"), ("relay-p" + p, "relay-deliver"),
                        ("wrk-k-p" + p, "wrk -c %d" % k)):
        v = rows[name]
        secs, first, cpu = (v[5], v[6], v[7]) if len(v) > 7 else ("", "", "")
        print("  %-10s %-14s %10s %12s %8s %8s %8s" % (p, label, format(int(v[1]), ","), v[0],
                                                    secs, first, cpu))
for p in sys.argv[6].split():
    relay, ceil, wrk = (rows[x + p] for x in ("relay-p", "ceiling-p", "wrk-k-p"))
    print("%s partition(s): relay/ceiling = %.3f (goal >= 0.7), relay/wrk-c%d = %.3f, "
          "ceiling/wrk-c%d = %.3f; CPU s relay %s, ceiling %s (%.1f and %.1f us/record)"
          % (p, int(relay[1]) / int(ceil[1]), k, int(relay[1]) / int(wrk[1]), k,
             int(ceil[1]) / int(wrk[1]), relay[7], ceil[7], float(relay[7]) / n * 1e6,
             float(ceil[7]) / n * 1e6))
if bad:
    sys.exit("deliver.sh: %d answers were not 202 (or were socket errors)" % bad)
if committed != n:
    sys.exit("deliver.sh: committed offsets add up to %d, not %d" % (committed, n))
EOF
OK=1
