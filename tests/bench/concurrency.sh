#!/usr/bin/env bash
# relay-deliver against a platform with a round trip: a sink that answers
# every request 202 after --delay-ms (tests/bench/slow_sink.py), for
# deliver.max_in_flight 1, 4, 16 and 64 and "adaptive". Prints, per run,
# the events/s the sink received against max_in_flight x 100 / RTT (what
# that many requests of 100 records under way at once can carry at most),
# and the ratio; the goal is at least 0.8 until the CPU is the limit.
#
#   RELAY_BUILD_DIR=build bash tests/bench/concurrency.sh [--delay-ms MS] [--rtts K]
#       [--in-flight "1 4 16 64"] [-X key=value ...]
#   RELAY_BUILD_DIR=build bash tests/bench/concurrency.sh --short   # the ctest
#
# Each run has a topic of its own (3 partitions) holding max_in_flight x
# 100 x K records (K round trips' worth, default 20), produced before
# relay-deliver starts (deploy/config/deliver-mparticle.cfg, endpoint at
# the sink). The rate is the sink's: events answered between the first
# request's arrival and the last answer, so start-up and group join are
# not in it; the run ends when the group's committed offsets reach the
# topic's end. The adaptive run reads the 16's topic again, as a new group,
# with deliver.adaptive_max_in_flight 64 (it starts at 1 and grows by one
# request per window of answers). --short: 1, 4, 16 and adaptive, K = 5.
#
# Builds nothing. Exits 0 whatever the ratios (a measurement, never an
# asserted timing); 1 when something does not work (a worker fails, the
# offsets do not reach the end, the sink did not get every record).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${RELAY_BUILD_DIR:-build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
BIN=$BUILD_DIR/workers
HELPER=$ROOT/tests/bench/deliver_bench.py
DELAY_MS=100
RTTS=20
IN_FLIGHT="1 4 16 64"
EXTRA=()   # -X key=value: more settings for every relay-deliver run

usage() {
  echo "usage: [RELAY_BUILD_DIR=dir] $0 [--delay-ms MS] [--rtts K] [--in-flight \"1 4 ...\"] [-X key=value] [--short]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --delay-ms) [ $# -ge 2 ] || usage; DELAY_MS=$2; shift 2 ;;
    --rtts) [ $# -ge 2 ] || usage; RTTS=$2; shift 2 ;;
    --in-flight) [ $# -ge 2 ] || usage; IN_FLIGHT=$2; shift 2 ;;
    --short) RTTS=5; IN_FLIGHT="1 4 16"; shift ;;
    -X) [ $# -ge 2 ] || usage; EXTRA+=(-X "$2"); shift 2 ;;
    *) usage ;;
  esac
done
[[ $DELAY_MS =~ ^[1-9][0-9]*$ && $RTTS =~ ^[1-9][0-9]*$ ]] || usage
for n in $IN_FLIGHT; do [[ $n =~ ^[1-9][0-9]*$ && $n -le 256 ]] || usage; done

die() { echo "concurrency.sh: $*" >&2; exit 1; }
python3 -c 'import confluent_kafka' 2>/dev/null || die "python3 lacks confluent_kafka (scripts/install-deps.sh)"
for b in relay-deliver relayctl; do
  [ -x "$BIN/$b" ] || die "$BIN/$b not found; build first: RELAY_BUILD_DIR=${RELAY_BUILD_DIR:-build} bash scripts/build.sh"
done

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

wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.1
  done
}
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# Always a fresh broker of our own, on any free ports.
OWN_BROKER=${RELAY_KAFKA_DIR:-$BUILD_DIR/kafka}
export RELAY_KAFKA_DIR=$OWN_BROKER
BS=$(RELAY_KAFKA_PORT=${RELAY_KAFKA_PORT:-0} RELAY_KAFKA_CONTROLLER_PORT=${RELAY_KAFKA_CONTROLLER_PORT:-0} \
     "$ROOT/tests/kafka/start.sh" "$OWN_BROKER" 2>"$TMP/broker-start.log" | sed -n 's/^bootstrap=//p')
[ -n "$BS" ] || die "broker did not start (tests/kafka/start.sh)"

python3 tests/bench/slow_sink.py --port-file "$TMP/sink.port" --delay-ms "$DELAY_MS" \
  --log "$TMP/sink.requests" 2>"$TMP/sink.log" &
PIDS+=($!)
wait_for 10 test -s "$TMP/sink.port" || die "the sink did not start"
SINK=http://127.0.0.1:$(cat "$TMP/sink.port")
touch "$TMP/sink.requests"

echo "relay-deliver -> a sink answering 202 after $DELAY_MS ms, $RTTS round trips of records a run" \
     "($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '  %-13s %9s %11s %11s %7s %9s %7s\n' max_in_flight records events/s "bound" ratio requests "CPU s"

# run NAME TOPIC RECORDS BOUND_EVENTS_PER_S [-X ...]: one relay-deliver over
# TOPIC as a new group until its offsets reach RECORDS; prints a row.
run() {
  local name=$1 topic=$2 n=$3 bound=$4 from poller pid cpu
  shift 4
  from=$(($(wc -l <"$TMP/sink.requests") + 1))
  python3 "$HELPER" wait "$BS" "bench-$name" "$topic" "$n" $((120 + n / 200)) \
    >"$TMP/wait-$name.out" 2>>"$TMP/wait.log" &
  poller=$!
  PIDS+=($poller)
  wait_for 30 grep -qs ready "$TMP/wait-$name.out" || die "the offset poller did not start"
  RELAY_MPARTICLE_API_KEY=bench-key RELAY_MPARTICLE_API_SECRET=bench-secret \
  "$BIN/relay-deliver" -c deploy/config/deliver-mparticle.cfg \
    -X kafka.bootstrap.servers="$BS" -X deliver.topic="$topic" \
    -X deliver.group_id="bench-$name" -X mparticle.url="$SINK/v2" \
    -X admin.port=0 "$@" >>"$TMP/deliver-$name.log" 2>&1 &
  pid=$!
  PIDS+=($pid)
  wait "$poller" || die "relay-deliver ($name) did not commit $n records in time"
  cpu=$(cpu_s "$pid")
  kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  python3 - "$TMP/sink.requests" "$from" "$name" "$n" "$bound" "$cpu" <<'EOF' || exit 1
import sys
path, start, name, n, bound, cpu = sys.argv[1:]
rows = [l.split() for i, l in enumerate(open(path), 1) if i >= int(start)]
events = sum(int(r[2]) for r in rows)
if events < int(n):
    sys.exit("concurrency.sh: the sink got %d events of %s (%s)" % (events, n, name))
secs = (max(int(r[1]) for r in rows) - min(int(r[0]) for r in rows)) / 1e9
eps = events / secs
print("  %-13s %9s %11s %11s %7.3f %9d %7s" % (
    name, format(int(n), ","), format(int(eps), ","), format(int(bound), ","),
    eps / float(bound), len(rows), cpu))
EOF
}

for n in $IN_FLIGHT; do
  records=$((n * 100 * RTTS))
  "$ROOT/tests/kafka/create-topics.sh" "$BS" "bench.c$n:3" >/dev/null 2>>"$TMP/topics.log" \
    || die "could not create bench.c$n"
  python3 "$HELPER" records "$records" "c$n-$$" >"$TMP/records.jsonl"
  "$BIN/relayctl" -b "$BS" produce "bench.c$n" -S out.mparticle-value -k identity_value <"$TMP/records.jsonl" 2>>"$TMP/relayctl.log" \
    || die "relayctl produce failed"
  run "$n" "bench.c$n" "$records" $((n * 100 * 1000 / DELAY_MS)) -X deliver.max_in_flight="$n" "${EXTRA[@]}"
done
# Adaptive, over the largest fixed run's records, against the bound of 64.
last=${IN_FLIGHT##* }
run adaptive "bench.c$last" $((last * 100 * RTTS)) $((64 * 100 * 1000 / DELAY_MS)) \
  -X deliver.max_in_flight=adaptive -X deliver.adaptive_max_in_flight=64 "${EXTRA[@]}"
OK=1
