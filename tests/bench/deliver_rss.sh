#!/usr/bin/env bash
# relay-deliver's memory while records keep coming: in steady state, while
# the platform is down, and while it catches up. The issue's bound: at most
# 64 MiB resident, flat.
#
#   RELAY_BUILD_DIR=build bash tests/bench/deliver_rss.sh [--rate R]
#       [--steady S] [--down D] [--recover C] [-X name=value ...]
#   RELAY_BUILD_DIR=build bash tests/bench/deliver_rss.sh --short   # 5 s / 10 s / 5 s
#
# On a fresh broker of its own (tests/kafka/start.sh, any free ports),
# relay-deliver (deploy/config/deliver-mparticle.cfg, only the addresses
# changed, and any -X name=value given here added) delivers out.mparticle to the mParticle simulator
# (tests/sim/mparticle_sim.py, started as tests/integration/lib.sh's
# start_sim does). A paced producer (one `relayctl produce` reading JSON
# lines written R/10 every 100 ms; default R 2,000 records/s, keyed by
# identity_value as relay-transform keys them) runs through
# three phases: steady (default 30 s), down (60 s: the simulator answers
# every request 503, a fault {"status":503,"times":-1}; relay pauses and
# probes, the backlog stays in Kafka), then recover (30 s, the fault
# deleted). relay-deliver's VmRSS is read from /proc every second; per
# phase, min / max / last is printed, then the largest over 64 MiB.
#
# After the producer stops, the script waits (up to 180 s more, sampled as
# the phase "drain") until the group's committed offsets reach every record
# produced, and checks that the simulator accepted at least that many
# batches (one a record) and that dlq.mparticle holds nothing.
#
# Builds nothing. Exits 0 whatever the RSS (a measurement, never an asserted
# figure); 1 when something does not work: a process fails, the backlog does
# not drain, a record is dead-lettered or not delivered.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${RELAY_BUILD_DIR:-build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
BIN=$BUILD_DIR/workers
HELPER=$ROOT/tests/bench/deliver_bench.py
RATE=2000
STEADY=30
DOWN=60
RECOVER=30
EXTRA=()

usage() {
  echo "usage: [RELAY_BUILD_DIR=dir] $0 [--rate R] [--steady S] [--down D] [--recover C] [--short] [-X name=value ...]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --rate) [ $# -ge 2 ] || usage; RATE=$2; shift 2 ;;
    --steady) [ $# -ge 2 ] || usage; STEADY=$2; shift 2 ;;
    --down) [ $# -ge 2 ] || usage; DOWN=$2; shift 2 ;;
    --recover) [ $# -ge 2 ] || usage; RECOVER=$2; shift 2 ;;
    --short) STEADY=5; DOWN=10; RECOVER=5; shift ;;
    -X) [ $# -ge 2 ] || usage; EXTRA+=(-X "$2"); shift 2 ;;
    *) usage ;;
  esac
done
for v in "$RATE" "$STEADY" "$DOWN" "$RECOVER"; do [[ $v =~ ^[1-9][0-9]*$ ]] || usage; done
[ $((RATE % 10)) = 0 ] || { echo "--rate must be a multiple of 10 (R/10 every 100 ms)" >&2; exit 2; }

die() { echo "deliver_rss.sh: $*" >&2; exit 1; }
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

# --- broker, simulator, relay-deliver ---------------------------------------------
OWN_BROKER=${RELAY_KAFKA_DIR:-$BUILD_DIR/kafka}
export RELAY_KAFKA_DIR=$OWN_BROKER
BS=$(RELAY_KAFKA_PORT=${RELAY_KAFKA_PORT:-0} RELAY_KAFKA_CONTROLLER_PORT=${RELAY_KAFKA_CONTROLLER_PORT:-0} \
     "$ROOT/tests/kafka/start.sh" "$OWN_BROKER" 2>"$TMP/broker-start.log" | sed -n 's/^bootstrap=//p')
[ -n "$BS" ] || die "broker did not start (tests/kafka/start.sh)"
TOPIC=out.mparticle
GROUP=relay-deliver-mparticle
"$ROOT/tests/kafka/create-topics.sh" "$BS" "$TOPIC:3" dlq.mparticle:1 \
  >/dev/null 2>"$TMP/topics.log" || die "could not create topics"

KEY=rss-key
SECRET=rss-secret
python3 tests/sim/mparticle_sim.py --port 0 --port-file "$TMP/sim.port" --key $KEY \
  --secret $SECRET --log "$TMP/sim-requests.log" >/dev/null 2>"$TMP/sim.log" &
PIDS+=($!)
wait_for 10 test -s "$TMP/sim.port" || die "simulator did not start"
SIM=http://127.0.0.1:$(cat "$TMP/sim.port")

RELAY_MPARTICLE_API_KEY=$KEY RELAY_MPARTICLE_API_SECRET=$SECRET \
"$BIN/relay-deliver" -c deploy/config/deliver-mparticle.cfg \
  -X kafka.bootstrap.servers="$BS" -X mparticle.url="$SIM/v2" \
  -X admin.address=127.0.0.1 -X admin.port=0 "${EXTRA[@]}" >>"$TMP/deliver.log" 2>&1 &
DPID=$!
PIDS+=($DPID)
wait_for 30 grep -qs 'assigned' "$TMP/deliver.log" || die "relay-deliver took no partitions"

# --- the paced producer -----------------------------------------------------------
# R/10 records every 100 ms on a fixed schedule (a late tick is caught up,
# never skipped), unique ids, for the three phases; one relayctl produce
# reads them as they come.
TOTAL_S=$((STEADY + DOWN + RECOVER))
python3 - "$HELPER" "$RATE" "$TOTAL_S" "rss-$$" 2>"$TMP/pacer.log" <<'EOF' |
import contextlib, importlib.util, io, sys, time
spec = importlib.util.spec_from_file_location("deliver_bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
rate, seconds, prefix = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
per_tick, ticks = rate // 10, seconds * 10
start = time.monotonic()
for t in range(ticks):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        bench.records(per_tick, "%s-%d" % (prefix, t))
    sys.stdout.write(buf.getvalue())
    sys.stdout.flush()
    delay = start + (t + 1) / 10 - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print("paced %d records in %.1f s" % (per_tick * ticks, time.monotonic() - start), file=sys.stderr)
EOF
  "$BIN/relayctl" -b "$BS" produce "$TOPIC" -k identity_value >/dev/null 2>"$TMP/relayctl.log" &
PRODUCER=$!
PIDS+=($PRODUCER)

# --- RSS, once a second, by phase --------------------------------------------------
RSS=$TMP/rss
: >"$RSS"
# sample PHASE SECONDS: one VmRSS (kB) a second for SECONDS, "PHASE kB" lines.
sample() {
  local phase=$1 i kb
  for ((i = 0; i < $2; i++)); do
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null) ||
      die "relay-deliver is gone (phase $phase)"
    [ -n "$kb" ] || die "relay-deliver is gone (phase $phase)"
    echo "$phase $kb" >>"$RSS"
    sleep 1
  done
}
echo "relay-deliver RSS: $RATE records/s to the mParticle simulator; steady ${STEADY} s, platform down" \
     "${DOWN} s, recovery ${RECOVER} s ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cpus," \
     "load $(cut -d' ' -f1-3 /proc/loadavg))${EXTRA[*]:+, ${EXTRA[*]}}"
sample steady "$STEADY"
curl -sf -X POST "$SIM/_sim/faults" -d '{"status":503,"times":-1}' >/dev/null ||
  die "could not set the simulator's fault"
sample down "$DOWN"
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null || die "could not clear the simulator's fault"
UP_AT=$SECONDS
sample recover "$RECOVER"
wait "$PRODUCER" || die "the paced producer failed"
PRODUCED=$(sed -n 's/^relayctl: produced \([0-9]*\) record.*/\1/p' "$TMP/relayctl.log")
[ -n "$PRODUCED" ] || die "relayctl printed no count"

# --- drain: every record committed, delivered, none dead-lettered -------------------
python3 "$HELPER" wait "$BS" "$GROUP" "$TOPIC" "$PRODUCED" 180 >"$TMP/wait.out" 2>>"$TMP/wait.log" &
POLLER=$!
PIDS+=($POLLER)
while kill -0 "$POLLER" 2>/dev/null; do sample drain 1; done
wait "$POLLER" || die "the backlog did not drain: committed offsets below $PRODUCED after 180 s"
DRAINED_S=$((SECONDS - UP_AT))
CPU=$(cpu_s "$DPID")
kill -TERM "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null
ACCEPTED=$(curl -sf "$SIM/_sim/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["accepted_batches"])') ||
  die "could not read the simulator's stats"
DLQ=$(python3 - "$BS" <<'EOF'
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "rss-dlq-check"})
md = c.list_topics("dlq.mparticle", timeout=10).topics["dlq.mparticle"]
total = 0
for p in md.partitions:
    lo, hi = c.get_watermark_offsets(TopicPartition("dlq.mparticle", p), timeout=10)
    total += hi
c.close()
print(total)
EOF
) || die "could not read dlq.mparticle's end offsets"
STOPLINE=$(grep -o '"msg":"stopping: [^"]*"' "$TMP/deliver.log" | tail -n 1 | sed 's/"msg":"//; s/"$//')

python3 - "$RSS" "$PRODUCED" "$ACCEPTED" "$DLQ" "$DRAINED_S" "$CPU" "$STOPLINE" <<'EOF' || exit 1
import sys
path, produced, accepted, dlq, drained_s, cpu, stopline = sys.argv[1:]
phases = {}
for line in open(path):
    ph, kb = line.split()
    phases.setdefault(ph, []).append(int(kb))
print()
print("  %-8s %8s %9s %9s %9s" % ("phase", "samples", "min MiB", "max MiB", "last MiB"))
for ph in ("steady", "down", "recover", "drain"):
    v = phases.get(ph)
    if v:
        print("  %-8s %8d %9.1f %9.1f %9.1f" % (ph, len(v), min(v) / 1024, max(v) / 1024, v[-1] / 1024))
peak = max(max(v) for v in phases.values())
steady = max(phases["steady"])
print()
print("max RSS / 64 MiB = %.3f (%.1f MiB; the bound is 1.0)" % (peak / 65536, peak / 1024))
print("max RSS while down or after / max in steady state = %.3f (flat is about 1)"
      % (max(max(phases[p]) for p in phases if p != "steady") / steady))
print("backlog: %s records produced, all committed %s s after the platform came back; "
      "the simulator accepted %s batches; dlq.mparticle holds %s; relay-deliver used %s CPU s"
      % (format(int(produced), ","), drained_s, format(int(accepted), ","), dlq, cpu))
print("relay-deliver: %s" % stopline)
if int(dlq):
    sys.exit("deliver_rss.sh: %s record(s) dead-lettered" % dlq)
if int(accepted) < int(produced):
    sys.exit("deliver_rss.sh: the simulator accepted %s batches of %s records" % (accepted, produced))
EOF
OK=1
