#!/usr/bin/env bash
# The hot path against its physical ceilings, in one run on a real broker:
# relay-transform against passthrough (librdkafka consume → produce of the
# same bytes) and relay-deliver against post_ceiling (librdkafka consume →
# libcurl POST of the raw bytes, as many records a request as relay-deliver
# sends, to the same sink),
# for 1 and 4 partitions; then, optionally, callgrind's instructions per
# record of both workers and the end-to-end latency of the pipeline.
#
#   RELAY_BUILD_DIR=build bash tests/bench/hotpath.sh [--records N] [--rounds R]
#       [--partitions "1 4"] [--callgrind | --no-callgrind]
#       [--latency-seconds S] [--rate EVENTS_PER_S] [--keep]
#   RELAY_BUILD_DIR=build bash tests/bench/hotpath.sh --short   # the ctest
#
# Defaults: 200000 records, 3 rounds, 1 and 4 partitions, callgrind on
# (5000 and 25000 records), 20 s of latency at 1000 events/s. --short:
# 20000 records, 1 round, 1 partition, no callgrind, 5 s of latency.
#
# Per partition count, on a fresh broker (tests/kafka/start.sh; the topic
# names are fixed, so a new partition count is a new cluster): N loyalty
# events (tests/integration/gen_events.py, relayctl produce: Confluent-framed
# Avro) are on loyalty.events before anything is timed, and one passthrough
# run, not measured, warms the broker up. Each round then runs these four,
# each as a fresh consumer group (in odd rounds in this order, in even
# rounds each relay worker before its ceiling):
#   passthrough    loyalty.events → bench.passthrough, timed from its start
#                  to its exit (it exits once all N are acknowledged and
#                  committed);
#   relay-transform deploy/config/transform-loyalty.cfg, bootstrap and group
#                  changed, timed from its start until its group's committed
#                  offsets reach the end of loyalty.events;
#   post_ceiling   the N records that round's transform wrote to
#                  out.mparticle (its group's offsets seeded where they
#                  begin), POSTed to nginx `return 202;`;
#   relay-deliver  deploy/config/deliver-mparticle.cfg, the same N records
#                  (seeded alike), endpoint at the same sink, timed until its
#                  committed offsets reach their end.
# Nothing is subtracted: start-up and group join are in every figure, the
# ceilings' as much as relay's. CPU is utime + stime of the whole process
# (all threads) and peak RSS its VmHWM: read from /proc/PID just before
# relay is stopped, by the ceilings themselves (getrusage, /proc/self)
# just before they exit.
#
# Callgrind: each worker under valgrind --tool=callgrind over 5000 and
# then 25000 records (its group seeded that many records before the end),
# (Ir(big) - Ir(small)) / (big - small), so that start-up cancels out.
# Latency: the shipped configs (only addresses changed) from loyalty.events
# to the mParticle simulator (tests/sim/mparticle_sim.py --receive-times),
# events produced at --rate a second (encoded beforehand; linger.ms 5);
# latency = receive time - produce time. Split by stage: loyalty.events
# and out.mparticle are switched to the broker's append time and read by
# a plain consumer beside the pipeline, which is also the noise floor of
# reading Kafka on this machine at that moment (its own p99 is printed).
#
# Builds nothing. Exits 0 whatever the numbers (a measurement, never an
# asserted timing); 1 when something does not work: a worker or tool
# fails, a count is not N, the sink answers anything but 202, an event of
# the latency run never arrives.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${RELAY_BUILD_DIR:-build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
BIN=$BUILD_DIR/workers
BENCH=$BUILD_DIR/tests/bench
HELPER=$ROOT/tests/bench/hotpath_bench.py
RECORDS=200000
ROUNDS=3
PARTITIONS="1 4"
CALLGRIND=1
CG_SMALL=5000
CG_BIG=25000
LAT_SECONDS=20
LAT_RATE=1000

usage() {
  echo "usage: [RELAY_BUILD_DIR=dir] $0 [--records N] [--rounds R] [--partitions \"1 4\"]" \
       "[--callgrind|--no-callgrind] [--latency-seconds S] [--rate R] [--keep] [--short]" >&2
  exit 2
}
CG_ASKED=""
KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --records) [ $# -ge 2 ] || usage; RECORDS=$2; shift 2 ;;
    --rounds) [ $# -ge 2 ] || usage; ROUNDS=$2; shift 2 ;;
    --partitions) [ $# -ge 2 ] || usage; PARTITIONS=$2; shift 2 ;;
    --callgrind) CG_ASKED=1; shift ;;
    --no-callgrind) CG_ASKED=0; shift ;;
    --latency-seconds) [ $# -ge 2 ] || usage; LAT_SECONDS=$2; shift 2 ;;
    --rate) [ $# -ge 2 ] || usage; LAT_RATE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --short) RECORDS=20000; ROUNDS=1; PARTITIONS=1; CALLGRIND=0; LAT_SECONDS=5; shift ;;
    *) usage ;;
  esac
done
[ -n "$CG_ASKED" ] && CALLGRIND=$CG_ASKED
# Callgrind seeds one partition's offsets, so it runs on the 1-partition
# cluster; without one it is left out unless --callgrind asked for it.
[[ " $PARTITIONS " == *" 1 "* || $CG_ASKED == 1 ]] || CALLGRIND=0
[[ $RECORDS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ && $LAT_SECONDS =~ ^[0-9]+$ &&
   $LAT_RATE =~ ^[1-9][0-9]*$ && $PARTITIONS =~ ^[1-9][0-9]*( [1-9][0-9]*)*$ ]] || usage

die() { echo "hotpath.sh: $*" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx not found (scripts/install-deps.sh installs it)"
python3 -c 'import confluent_kafka, fastavro' 2>/dev/null ||
  die "python3 lacks confluent_kafka or fastavro (scripts/install-deps.sh)"
for b in "$BIN/relay-transform" "$BIN/relay-deliver" "$BIN/relayctl" "$BENCH/passthrough" \
         "$BENCH/post_ceiling"; do
  [ -x "$b" ] || die "$b not found; build first: RELAY_BUILD_DIR=${RELAY_BUILD_DIR:-build} bash scripts/build.sh"
done
if [ "$CALLGRIND" = 1 ]; then
  if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    die "valgrind (callgrind_annotate) not found; --no-callgrind runs without it"
  fi
  [ "$RECORDS" -ge "$CG_BIG" ] || die "--callgrind needs --records of at least $CG_BIG"
  [[ " $PARTITIONS " == *" 1 "* ]] || die "--callgrind needs 1 among --partitions"
fi

cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; }
BUILD_TYPE=$(cache_get CMAKE_BUILD_TYPE)
SANITIZE=$(cache_get RELAY_SANITIZE)
BUILD_DESC="${BUILD_TYPE:-RelWithDebInfo}${SANITIZE:+, sanitize=$SANITIZE}"
case $BUILD_TYPE in
  "" | Release | RelWithDebInfo) [ -z "$SANITIZE" ] ;;
  *) false ;;
esac || BUILD_DESC="$BUILD_DESC (not representative)"

TMP=$(mktemp -d /tmp/relay-hotpath.XXXXXX)
PIDS=()
OWN_BROKER=""
OK=0
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$OWN_BROKER" ]; then "$ROOT/tests/kafka/stop.sh" "$OWN_BROKER" >/dev/null 2>&1 || true; fi
  if [ "$OK" = 1 ] && [ "$KEEP" = 1 ]; then
    echo "(work files kept in $TMP, as --keep asks)" >&2
  elif [ "$OK" = 1 ]; then
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
cd "$ROOT" || exit 1

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
# CPU seconds (user + system, all threads) and peak RSS (kB) of a live process.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
hwm_kb() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }
# stop_pid PID NAME: SIGTERM, and the worker must exit 0 (a clean stop)
# within 60 s (under valgrind too); otherwise it is killed and the run fails.
stop_pid() {
  local rc killer
  kill -TERM "$1" 2>/dev/null
  # (kill -0 cannot tell: an exited child stays a zombie until waited for.)
  ( trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    sleep 60 & nap=$!; wait "$nap"; kill -KILL "$1" 2>/dev/null ) &
  killer=$!
  wait "$1" 2>/dev/null
  rc=$?
  kill "$killer" 2>/dev/null; wait "$killer" 2>/dev/null
  [ "$rc" != 137 ] || die "$2 did not stop within 60 s of SIGTERM (see $2.log)"
  [ "$rc" = 0 ] || die "$2 exited $rc when stopped (see $2.log)"
}
# Every helper and ceiling has its own deadline; timeout(1) is the backstop
# should a client call hang past it.
helper() { timeout 900 python3 "$HELPER" "$@" 2>>"$TMP/helper.log"; }
# ends_of NAME TOPIC: sets the array NAME to TOPIC's high watermarks (P=OFFSET).
ends_of() {
  local words
  words=$(helper ends "$BS" "$2") || die "could not read the ends of $2"
  [ -n "$words" ] || die "$2 has no partitions"
  read -ra "$1" <<<"$words"
}
# The sum of P=OFFSET words.
offsets_sum() { local s=0 w; for w in "$@"; do s=$((s + ${w#*=})); done; echo $s; }
# Offsets K records before the end of a one-partition topic's ends ("0=E").
before_end() { echo "0=$(( ${1#0=} - $2 ))"; }

# post_ceiling gets as many requests in flight as relay-deliver ships with.
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
KEY=bench-key
SECRET=bench-secret
ADMIN=(-X admin.address=127.0.0.1 -X admin.port=-1)
# transform GROUP LOG [CMD-PREFIX...]: relay-transform in the background, sets WPID.
transform() {
  local group=$1 log=$2; shift 2
  "$@" "$BIN/relay-transform" -c deploy/config/transform-loyalty.cfg \
    -X kafka.bootstrap.servers="$BS" -X transform.group_id="$group" "${ADMIN[@]}" \
    >>"$TMP/$log" 2>&1 &
  WPID=$!
  PIDS+=("$WPID")
}
# deliver GROUP URL LOG [CMD-PREFIX...]: relay-deliver in the background, sets WPID.
deliver() {
  local group=$1 url=$2 log=$3; shift 3
  RELAY_MPARTICLE_API_KEY=$KEY RELAY_MPARTICLE_API_SECRET=$SECRET \
  "$@" "$BIN/relay-deliver" -c deploy/config/deliver-mparticle.cfg \
    -X kafka.bootstrap.servers="$BS" -X deliver.group_id="$group" -X mparticle.url="$url" \
    "${ADMIN[@]}" >>"$TMP/$log" 2>&1 &
  WPID=$!
  PIDS+=("$WPID")
}
# start_wait GROUP TOPIC TIMEOUT TARGET...: the offset poller in the
# background (sets POLLER; its output in $TMP/wait.out), started and ready.
start_wait() {
  local group=$1 topic=$2 timeout=$3; shift 3
  rm -f "$TMP/wait.out"
  helper wait "$BS" "$group" "$topic" "$timeout" "$@" >"$TMP/wait.out" &
  POLLER=$!
  PIDS+=("$POLLER")
  wait_for 30 grep -qs ready "$TMP/wait.out" || die "the offset poller did not start"
}
# until_committed NAME: waits for the poller while the worker $WPID lives;
# fails when the worker exits first or the poller gives up.
until_committed() {
  while kill -0 "$POLLER" 2>/dev/null; do
    kill -0 "$WPID" 2>/dev/null || die "$1 exited before committing its records (see $1.log)"
    sleep 0.02
  done
  wait "$POLLER" || die "$1 did not commit its records in time (see helper.log)"
}
timeout_for() { echo $((120 + $1 / 500)); }

# --- the sink: nginx answering 202, as in deliver.sh -------------------------------
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
# sink_check FROM NAME: the sink's answers since line FROM; prints the
# number of requests; dies on any answer but 202.
sink_check() {
  local reqs bad
  read -r reqs bad < <(awk -v from="$1" 'NR >= from { n++; if ($2 != "202") b++ }
                                         END { print n + 0, b + 0 }' "$TMP/nginx/access.log")
  [ "$bad" = 0 ] || die "$2: the sink answered $bad of $reqs requests with something but 202"
  echo "$reqs"
}

# --- the broker -----------------------------------------------------------------
OWN_BROKER=${RELAY_KAFKA_DIR:-$BUILD_DIR/kafka}
export RELAY_KAFKA_DIR=$OWN_BROKER
# fresh_broker P: a new, empty cluster with the pipeline's topics in P partitions.
fresh_broker() {
  BS=$(RELAY_KAFKA_PORT=${RELAY_KAFKA_PORT:-0} RELAY_KAFKA_CONTROLLER_PORT=${RELAY_KAFKA_CONTROLLER_PORT:-0} \
       "$ROOT/tests/kafka/start.sh" "$OWN_BROKER" 2>>"$TMP/broker-start.log" | sed -n 's/^bootstrap=//p')
  [ -n "$BS" ] || die "broker did not start (tests/kafka/start.sh)"
  "$ROOT/tests/kafka/create-topics.sh" "$BS" "loyalty.events:$1" "out.mparticle:$1" \
    "bench.passthrough:$1" dlq.transform:1 dlq.mparticle:1 >/dev/null 2>>"$TMP/topics.log" \
    || die "could not create topics"
}

# "P NAME ROUND WALL_S CPU_S HWM_KB FIRST_S [REQUESTS]"; FIRST_S: a ceiling's
# first record, relay's first commit.
RESULTS=$TMP/results
# --- one round: the four runs ----------------------------------------------------
# Each run_* P R appends its line to $RESULTS. E0 and E1 are out.mparticle's
# ends before and after the round's relay-transform: the records that
# post_ceiling and relay-deliver read.
run_passthrough() {
  local p=$1 r=$2 t0 t1
  # passthrough: loyalty.events from the beginning, to a scratch topic.
  t0=$(now_ns)
  timeout 900 "$BENCH/passthrough" --bootstrap "$BS" --topic loyalty.events --out-topic bench.passthrough \
    --group "hp-pass-$p-$r" --records "$RECORDS" --timeout "$(timeout_for "$RECORDS")" \
    >"$TMP/pass.json" 2>>"$TMP/passthrough.log" || die "passthrough failed (see passthrough.log)"
  t1=$(now_ns)
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(sys.argv[2], "passthrough", sys.argv[3], (int(sys.argv[5]) - int(sys.argv[4])) / 1e9,
      d["cpu_s"], d["vm_hwm_kb"], d["first_record_s"])' "$TMP/pass.json" "$p" "$r" "$t0" "$t1" >>"$RESULTS" ||
    die "passthrough printed no figures"
}
run_transform() {
  local p=$1 r=$2 t0 last first n cpu hwm
  # relay-transform, a fresh group, until its offsets reach the end.
  ends_of E0 out.mparticle
  start_wait "hp-transform-$p-$r" loyalty.events "$(timeout_for "$RECORDS")" "${LOYALTY_ENDS[@]}"
  t0=$(now_ns)
  transform "hp-transform-$p-$r" transform.log
  until_committed relay-transform
  read -r last _ first < <(tail -n 1 "$TMP/wait.out")
  cpu=$(cpu_s "$WPID"); hwm=$(hwm_kb "$WPID")
  stop_pid "$WPID" transform
  echo "$p relay-transform $r $(( last - t0 ))e-9 $cpu $hwm $(( first - t0 ))e-9" >>"$RESULTS"
  ends_of E1 out.mparticle
  n=$(( $(offsets_sum "${E1[@]}") - $(offsets_sum "${E0[@]}") ))
  [ "$n" = "$RECORDS" ] || die "relay-transform wrote $n records to out.mparticle, not $RECORDS"
}
run_post() {
  local p=$1 r=$2 t0 t1 from reqs
  # post_ceiling over those N records: its group starts where they do.
  helper seed "$BS" "hp-post-$p-$r" out.mparticle "${E0[@]}" || die "could not seed hp-post-$p-$r"
  from=$(( $(log_lines) + 1 ))
  t0=$(now_ns)
  timeout 900 "$BENCH/post_ceiling" --bootstrap "$BS" --topic out.mparticle --group "hp-post-$p-$r" \
    --records "$RECORDS" --url "$SINK/v2/bulkevents" --userpwd "$KEY:$SECRET" \
    --in-flight "$IN_FLIGHT" --per-request "$PER_REQUEST" \
    --timeout "$(timeout_for "$RECORDS")" >"$TMP/post.json" 2>>"$TMP/post_ceiling.log" ||
    die "post_ceiling failed (see post_ceiling.log)"
  t1=$(now_ns)
  reqs=$(sink_check "$from" post_ceiling) || exit 1
  [ "$reqs" = $(( (RECORDS + PER_REQUEST - 1) / PER_REQUEST )) ] ||
    die "post_ceiling made $reqs requests for $RECORDS records, not $(( (RECORDS + PER_REQUEST - 1) / PER_REQUEST ))"
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(sys.argv[2], "post_ceiling", sys.argv[3], (int(sys.argv[5]) - int(sys.argv[4])) / 1e9,
      d["cpu_s"], d["vm_hwm_kb"], d["first_record_s"], d["requests"])' "$TMP/post.json" "$p" "$r" "$t0" "$t1" \
    >>"$RESULTS" || die "post_ceiling printed no figures"
}
run_deliver() {
  local p=$1 r=$2 t0 last first from reqs cpu hwm
  # relay-deliver over the same records, seeded alike.
  helper seed "$BS" "hp-deliver-$p-$r" out.mparticle "${E0[@]}" || die "could not seed hp-deliver-$p-$r"
  start_wait "hp-deliver-$p-$r" out.mparticle "$(timeout_for "$RECORDS")" "${E1[@]}"
  from=$(( $(log_lines) + 1 ))
  t0=$(now_ns)
  deliver "hp-deliver-$p-$r" "$SINK/v2" deliver.log
  until_committed relay-deliver
  read -r last _ first < <(tail -n 1 "$TMP/wait.out")
  cpu=$(cpu_s "$WPID"); hwm=$(hwm_kb "$WPID")
  stop_pid "$WPID" deliver
  reqs=$(sink_check "$from" relay-deliver) || exit 1
  echo "$p relay-deliver $r $(( last - t0 ))e-9 $cpu $hwm $(( first - t0 ))e-9 $reqs" >>"$RESULTS"
}
# round P R: the four runs, who goes first alternating round by round (a
# ceiling first in odd rounds, relay first in even ones), so that a broker
# or page cache that warms up, or a neighbour's burst, favours neither.
round() {
  if (($2 % 2)); then
    run_passthrough "$1" "$2"; run_transform "$1" "$2"; run_post "$1" "$2"; run_deliver "$1" "$2"
  else
    run_transform "$1" "$2"; run_passthrough "$1" "$2"; run_deliver "$1" "$2"; run_post "$1" "$2"
  fi
}

# --- callgrind: instructions per record ------------------------------------------
CGRESULTS=$TMP/callgrind   # "WORKER RECORDS IR SECONDS"
# callgrind_run WORKER K: the worker under callgrind over the last K records
# of its input topic (one partition), stopped once they are committed.
callgrind_run() {
  local worker=$1 k=$2 topic ends group out t0 ir
  if [ "$worker" = transform ]; then topic=loyalty.events; else topic=out.mparticle; fi
  ends_of ends "$topic"
  group="hp-cg-$worker-$k"
  helper seed "$BS" "$group" "$topic" "$(before_end "${ends[0]}" "$k")" || die "could not seed $group"
  start_wait "$group" "$topic" 600 "${ends[@]}"
  out=$TMP/cg-$worker-$k.out
  t0=$SECONDS
  if [ "$worker" = transform ]; then
    transform "$group" "cg-$worker.log" valgrind --tool=callgrind --callgrind-out-file="$out"
  else
    deliver "$group" "$SINK/v2" "cg-$worker.log" valgrind --tool=callgrind --callgrind-out-file="$out"
  fi
  until_committed "cg-$worker"
  stop_pid "$WPID" "cg-$worker"
  ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
  [[ $ir =~ ^[0-9]+$ ]] || die "no instruction total in $out"
  echo "$worker $k $ir $((SECONDS - t0))" >>"$CGRESULTS"
}

echo "relay hot path against its ceilings, $RECORDS records x $ROUNDS rounds, partitions: $PARTITIONS" \
     "($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "build: $BUILD_DESC, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
FIRST=1
d=() e=() E0=() E1=()
for P in $PARTITIONS; do
  fresh_broker "$P"
  python3 tests/integration/gen_events.py --count "$RECORDS" --prefix "hp-$$-$P" \
    >"$TMP/loyalty.jsonl" || die "gen_events.py failed"
  t=$(now_ns)
  "$BIN/relayctl" -b "$BS" produce loyalty.events <"$TMP/loyalty.jsonl" 2>>"$TMP/relayctl.log" \
    || die "relayctl produce failed"
  ends_of LOYALTY_ENDS loyalty.events
  [ "$(offsets_sum "${LOYALTY_ENDS[@]}")" = "$RECORDS" ] ||
    die "loyalty.events holds $(offsets_sum "${LOYALTY_ENDS[@]}") records, not $RECORDS"
  echo "partitions $P: produced $RECORDS loyalty events in $(( ($(now_ns) - t) / 1000000 )) ms" \
       "(${LOYALTY_ENDS[*]})"
  # One passthrough not measured: a broker just started runs its first
  # fetches and produces cold (the JVM compiles as it goes), which would
  # handicap whichever program ran first.
  timeout 900 "$BENCH/passthrough" --bootstrap "$BS" --topic loyalty.events --out-topic bench.passthrough \
    --group "hp-warm-$P" --records "$RECORDS" --timeout "$(timeout_for "$RECORDS")" \
    >/dev/null 2>>"$TMP/passthrough.log" || die "passthrough (warm-up) failed (see passthrough.log)"
  for ((r = 1; r <= ROUNDS; r++)); do
    round "$P" "$r"
    awk -v p="$P" -v r="$r" -v n="$RECORDS" '$1 == p && $3 == r {
      printf "  round %d  %-16s %9.0f records/s\n", r, $2, n / $4 }' "$RESULTS"
  done
  ends_of d dlq.transform
  [ "$(offsets_sum "${d[@]}")" = 0 ] || die "relay-transform dead-lettered $(offsets_sum "${d[@]}") records"
  ends_of d dlq.mparticle
  [ "$(offsets_sum "${d[@]}")" = 0 ] || die "relay-deliver dead-lettered $(offsets_sum "${d[@]}") records"

  if [ "$CALLGRIND" = 1 ] && [ "$P" = 1 ]; then
    for w in transform deliver; do
      for k in "$CG_SMALL" "$CG_BIG"; do
        callgrind_run "$w" "$k"
        echo "  callgrind relay-$w over $k records: $(awk -v w="$w" -v k="$k" \
          '$1 == w && $2 == k { print $3 " instructions in " $4 " s" }' "$CGRESULTS")"
      done
    done
  fi

  # --- latency: the shipped configs, only addresses changed -----------------------
  if [ "$FIRST" = 1 ] && [ "$LAT_SECONDS" -gt 0 ]; then
    # Their default groups start at the end of what is already there.
    ends_of e loyalty.events
    helper seed "$BS" relay-transform-loyalty.events loyalty.events "${e[@]}" || die "could not seed"
    ends_of e out.mparticle
    helper seed "$BS" relay-deliver-mparticle out.mparticle "${e[@]}" || die "could not seed"
    python3 tests/sim/mparticle_sim.py --port 0 --port-file "$TMP/sim.port" --key $KEY \
      --secret $SECRET --receive-times "$TMP/received.tsv" >/dev/null 2>"$TMP/sim.log" &
    SIM_PID=$!
    PIDS+=("$SIM_PID")
    wait_for 10 test -s "$TMP/sim.port" || die "simulator did not start"
    "$BIN/relay-transform" -c deploy/config/transform-loyalty.cfg -X kafka.bootstrap.servers="$BS" \
      "${ADMIN[@]}" >>"$TMP/lat-transform.log" 2>&1 &
    LT_PID=$!
    PIDS+=("$LT_PID")
    RELAY_MPARTICLE_API_KEY=$KEY RELAY_MPARTICLE_API_SECRET=$SECRET \
    "$BIN/relay-deliver" -c deploy/config/deliver-mparticle.cfg -X kafka.bootstrap.servers="$BS" \
      -X mparticle.url="http://127.0.0.1:$(cat "$TMP/sim.port")/v2" "${ADMIN[@]}" \
      >>"$TMP/lat-deliver.log" 2>&1 &
    LD_PID=$!
    PIDS+=("$LD_PID")
    ready() { # ready LOG: the worker logging to LOG answers /readyz with 200
      local port
      port=$(grep -o 'serving /metrics[^"]* on [0-9.]*:[0-9]*' "$TMP/$1" 2>/dev/null |
             tail -1 | sed 's/.*://')
      [ -n "$port" ] && curl -sf -o /dev/null "http://127.0.0.1:$port/readyz"
    }
    wait_for 60 ready lat-transform.log || die "relay-transform (latency) never became ready"
    wait_for 60 ready lat-deliver.log || die "relay-deliver (latency) never became ready"
    # all_arrived PRODUCED: every event id of PRODUCED is in received.tsv.
    all_arrived() {
      [ "$(cut -f1 "$TMP/received.tsv" 2>/dev/null | sort -u | comm -12 - <(cut -f1 "$1" | sort -u) |
           wc -l)" -eq "$(wc -l <"$1")" ]
    }
    # Two seconds of events first, then the measured ones without a pause:
    # the first record a librdkafka 2.0 producer sends after it starts
    # (the workers' and the test producer's) waits about a second for the
    # client's broker thread to wake, which is start-up, not latency; the
    # warm-up's slowest event is printed as the cold start.
    : >"$TMP/warm.tsv"
    : >"$TMP/produced.tsv"
    # The split by stage: both topics stamped by the broker, read beside the pipeline.
    helper tap "$BS" loyalty.events,out.mparticle "$((LAT_SECONDS + 15))" "$TMP/tapped.tsv" >"$TMP/tap.out" &
    TAP_PID=$!
    PIDS+=("$TAP_PID")
    wait_for 20 grep -q ready "$TMP/tap.out" || die "the out.mparticle reader did not start"
    read -r _ lat_n lat_late < <(helper live "$BS" loyalty.events "$LAT_RATE" 2 "$LAT_SECONDS" \
      "hp-lat-$$" schemas/manifest.cfg "$TMP/warm.tsv" "$TMP/produced.tsv") ||
      die "the latency producer failed (see helper.log)"
    wait_for 60 all_arrived "$TMP/produced.tsv" || true   # judged below, naming what is missing
    read -r _ _ _ _ cold < <(helper latency "$TMP/warm.tsv" "$TMP/received.tsv") ||
      die "latency: not every warm-up event arrived (see helper.log)"
    kill -0 "$LT_PID" 2>/dev/null || die "relay-transform (latency) died (see lat-transform.log)"
    kill -0 "$LD_PID" 2>/dev/null || die "relay-deliver (latency) died (see lat-deliver.log)"
    read -r lcount p50 p99 p999 lmax < <(helper latency "$TMP/produced.tsv" "$TMP/received.tsv") ||
      die "latency: not every event arrived (see helper.log)"
    [ "$lcount" = "$lat_n" ] || die "latency: $lcount events measured, $lat_n produced"
    kill "$TAP_PID" 2>/dev/null; wait "$TAP_PID" 2>/dev/null
    helper stages "$TMP/produced.tsv" "$TMP/tapped.tsv" "$TMP/received.tsv" >"$TMP/stages" ||
      die "latency: the split by stage failed (see helper.log)"
    sed 's/^/  /' "$TMP/stages"
    # The workers' metrics at the end (kept with --keep); how many of
    # deliver's requests were slow, from its request-duration histogram.
    for w in transform deliver; do
      port=$(grep -o 'serving /metrics[^"]* on [0-9.]*:[0-9]*' "$TMP/lat-$w.log" | tail -1 | sed 's/.*://')
      curl -sf "http://127.0.0.1:$port/metrics" >"$TMP/lat-$w.metrics" || true
    done
    helper slow "$TMP/lat-deliver.metrics" | sed 's/^/  /'
    stop_pid "$LD_PID" lat-deliver
    stop_pid "$LT_PID" lat-transform
    kill "$SIM_PID" 2>/dev/null; wait "$SIM_PID" 2>/dev/null
    echo "latency $P $lcount $LAT_RATE $LAT_SECONDS $p50 $p99 $p999 $lmax $lat_late $cold" >"$TMP/latency"
    echo "  latency over $lcount events at $LAT_RATE/s: p50 $p50 ms, p99 $p99 ms, p999 $p999 ms"
  fi
  FIRST=0
done

python3 - "$RESULTS" "$RECORDS" "$ROUNDS" "$CGRESULTS" "$TMP/latency" <<'EOF' || exit 1
import os, statistics, sys
res, n, rounds, cgpath, latpath = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = {}
for line in open(res):
    f = line.split()
    rows.setdefault((int(f[0]), f[1]), []).append(
        {"round": int(f[2]), "wall": float(f[3]), "cpu": float(f[4]), "hwm": int(f[5]),
         "first": float(f[6]), "requests": int(f[7]) if len(f) > 7 else 0})
def med(p, name, key):
    return statistics.median(r[key] for r in rows[(p, name)])
print()
print("medians of %d round(s), %s records a run (records/s from start to all committed;"
      " CPU of the whole process; RSS = VmHWM):" % (rounds, format(n, ",")))
print("  %-3s %-16s %11s %14s %9s %8s %9s %9s" % ("P", "", "records/s", "CPU us/record",
                                                 "RSS MB", "wall s", "first s", "requests"))
for p in sorted({k[0] for k in rows}):
    for name in ("passthrough", "relay-transform", "post_ceiling", "relay-deliver"):
        print("  %-3d %-16s %11s %14.2f %9.1f %8.2f %9.2f %9s" % (
            p, name, format(round(n / med(p, name, "wall")), ","),
            med(p, name, "cpu") * 1e6 / n, med(p, name, "hwm") / 1024, med(p, name, "wall"),
            med(p, name, "first"), round(med(p, name, "requests")) or "-"))
print("  (first s: a ceiling's first record, relay's first commit, from the start)")
print()
for p in sorted({k[0] for k in rows}):
    for relay, ceil in (("relay-transform", "passthrough"), ("relay-deliver", "post_ceiling")):
        per = sorted(c["wall"] / r["wall"] for r, c in zip(
            sorted(rows[(p, relay)], key=lambda x: x["round"]),
            sorted(rows[(p, ceil)], key=lambda x: x["round"])))
        ratio = med(p, ceil, "wall") / med(p, relay, "wall")
        cpu = med(p, ceil, "cpu") / med(p, relay, "cpu")
        print("%d partition(s): %s/%s = %.3f (records/s; per round %.3f-%.3f); on CPU time %.3f"
              % (p, relay, ceil, ratio, per[0], per[-1], cpu))
if os.path.exists(cgpath):
    cg = {}
    for line in open(cgpath):
        w, k, ir, secs = line.split()
        cg.setdefault(w, {})[int(k)] = (int(ir), int(secs))
    print()
    for w, by in cg.items():
        (small, (ir_s, t_s)), (big, (ir_b, t_b)) = sorted(by.items())
        print("callgrind relay-%s: %s instructions/record ((Ir(%d) - Ir(%d)) / %d; %s and %s"
              " in all; %d s and %d s under valgrind)" % (
                  w, format(round((ir_b - ir_s) / (big - small)), ","), big, small,
                  big - small, format(ir_b, ","), format(ir_s, ","), t_b, t_s))
if os.path.exists(latpath):
    _, p, count, rate, secs, p50, p99, p999, mx, late, cold = open(latpath).read().split()
    print()
    print("latency loyalty.events -> mParticle simulator (shipped configs, %s partition(s)),"
          " %s events at %s/s for %s s: p50 %s ms, p99 %s ms, p999 %s ms, max %s ms"
          " (producer at most %s ms behind its schedule; cold start, the warm-up second's"
          " slowest event: %s ms)" % (p, count, rate, secs, p50, p99, p999, mx, late, cold))
EOF
OK=1
