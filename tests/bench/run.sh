#!/usr/bin/env bash
# Avro decode -> encode throughput of a typical loyalty record: relay
# (avro_bench, which also times a memcpy of the same bytes) against Python
# fastavro (fastavro_bench.py) on exactly the same frame, interleaved round
# by round so that a noisy neighbour hurts both alike. Prints every round,
# then the medians and the ratios.
#
#   RELAY_BUILD_DIR=build bash tests/bench/run.sh [--records N] [--rounds R]
#
# Builds nothing: avro_bench must be in $RELAY_BUILD_DIR (default build/,
# relative to the repository root like scripts/build.sh). Exits 0 whatever
# the ratio, since this is a measurement; exits 1 when a program fails or a
# record does not survive decode -> encode byte for byte. PYTHON picks the
# interpreter (default python3), which needs fastavro.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${RELAY_BUILD_DIR:-build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
PYTHON=${PYTHON:-python3}
RECORDS=100000
ROUNDS=5

usage() {
  echo "usage: [RELAY_BUILD_DIR=dir] $0 [--records N] [--rounds R]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case $1 in
    --records) [ $# -ge 2 ] || usage; RECORDS=$2; shift 2 ;;
    --rounds) [ $# -ge 2 ] || usage; ROUNDS=$2; shift 2 ;;
    -h|--help) usage ;;
    *) usage ;;
  esac
done
[[ $RECORDS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] || usage

BENCH=$BUILD_DIR/tests/bench/avro_bench
if [ ! -x "$BENCH" ]; then
  echo "run.sh: $BENCH not found; build first:" \
       "RELAY_BUILD_DIR=${RELAY_BUILD_DIR:-build} bash scripts/build.sh" >&2
  exit 1
fi

# Say which build is measured: a Debug or sanitizer build runs the same
# checks but its numbers say nothing about relay's speed.
cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; }
BUILD_TYPE=$(cache_get CMAKE_BUILD_TYPE)
SANITIZE=$(cache_get RELAY_SANITIZE)
BUILD_DESC="${BUILD_TYPE:-RelWithDebInfo}${SANITIZE:+, sanitize=$SANITIZE}"
case $BUILD_TYPE in
  "" | Release | RelWithDebInfo) [ -z "$SANITIZE" ] ;;
  *) false ;;
esac || BUILD_DESC="$BUILD_DESC (not representative)"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FRAME=$TMP/frame.bin
OUT=$TMP/results.jsonl

# run ROUND NAME CMD...: one program for one round. Its JSON lines go to
# $OUT, each prefixed with the round and a tab; a one-line digest to stdout.
# Exits the script when the program fails.
run() {
  local round=$1 name=$2 rc
  shift 2
  "$@" >"$TMP/round.out" 2>"$TMP/round.err"
  rc=$?
  cat "$TMP/round.err" >&2
  if [ $rc -ne 0 ]; then
    echo "run.sh: $name failed (exit $rc)" >&2
    exit 1
  fi
  sed "s/^/$round\t/" "$TMP/round.out" >>"$OUT"
  sed -n 's/.*"bench": "\([a-z-]*\)", "round": 1,.*"records_per_s": \([0-9]*\),.*/\1 \2/p' \
    "$TMP/round.out" | while read -r bench per_s; do
      printf '  round %d  %-12s %12s records/s\n' "$round" "$bench" "$per_s"
    done
  return 0
}

relay() {
  run "$1" avro_bench "$BENCH" --records "$RECORDS" --rounds 1 \
    --manifest "$ROOT/schemas/manifest.cfg" --frame-out "$FRAME"
}
fastavro() {
  run "$1" fastavro_bench.py "$PYTHON" "$ROOT/tests/bench/fastavro_bench.py" \
    --frame "$FRAME" --schema "$ROOT/schemas/loyalty.events.avsc" \
    --records "$RECORDS" --rounds 1
}

echo "avro decode -> encode, $RECORDS records x $ROUNDS rounds" \
     "($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cpus, build: $BUILD_DESC)"
for ((r = 1; r <= ROUNDS; r++)); do
  # Alternate who goes first; the first round writes the frame.
  if ((r % 2)); then relay $r; fastavro $r; else fastavro $r; relay $r; fi
done

"$PYTHON" - "$OUT" "$ROUNDS" <<'EOF' || exit 1
import json, math, statistics, sys
lines = []
for l in open(sys.argv[1]):
    r, text = l.split("\t", 1)
    d = json.loads(text)
    d["round"] = int(r)
    lines.append(d)
rounds = int(sys.argv[2])
frames = {d["frame_bytes"] for d in lines if d["bench"] == "frame"}
if len(frames) != 1:
    sys.exit("run.sh: the programs saw frames of different sizes: %s" % frames)
frame_bytes = frames.pop()
by, cpu = {}, {}
for d in lines:
    if d["bench"] != "frame":
        by.setdefault(d["bench"], {})[d["round"]] = d["records_per_s"]
        cpu.setdefault(d["bench"], []).append(d["cpu_seconds"] / d["records"])
BENCHES = ("relay", "relay-avro-c", "fastavro", "fastavro-raw", "memcpy")
for b in BENCHES:
    if len(by.get(b, {})) != rounds:
        sys.exit("run.sh: %s reported %d of %d rounds" % (b, len(by.get(b, {})), rounds))

def med(b):
    return statistics.median(by[b].values())

def ratio_text(x):
    # Enough decimals for two significant digits of a small ratio.
    if x >= 1:
        return "%.1f" % x
    return "%.*f" % (max(2, 1 - math.floor(math.log10(x))), x) if x > 0 else "0"

print()
print("medians of %d rounds, %d-byte frame (MB = 10^6 bytes of frame):" % (rounds, frame_bytes))
print("  %-13s %14s %10s %12s" % ("", "records/s", "MB/s", "ns/record"))
for b in BENCHES:
    m = med(b)
    print("  %-13s %14s %10.1f %12.1f" % (b, format(round(m), ","), m * frame_bytes / 1e6, 1e9 / m))
per_round = sorted(by["relay"][r] / by["fastavro"][r] for r in by["relay"])
print()
print("relay/fastavro = %s\u00d7 (target \u2265 5\u00d7; per round %s\u2013%s)" % (
    ratio_text(med("relay") / med("fastavro")), ratio_text(per_round[0]),
    ratio_text(per_round[-1])))
print("relay/fastavro-raw = %s\u00d7 (fastavro without logical types: the same work as relay)" % (
    ratio_text(med("relay") / med("fastavro-raw"))))
print("relay/memcpy = %s" % ratio_text(med("relay") / med("memcpy")))
print("relay/relay-avro-c = %s\u00d7 (the compiled codec against the avro-c path it replaced)" % (
    ratio_text(med("relay") / med("relay-avro-c"))))
# CPU time leaves out the waits for a core on a busy machine.
def cpu_med(b):
    return statistics.median(cpu[b])
print("on CPU time: relay/fastavro = %s\u00d7, relay/fastavro-raw = %s\u00d7 "
      "(relay %s, fastavro %s, fastavro-raw %s ns/record)" % (
    ratio_text(cpu_med("fastavro") / cpu_med("relay")),
    ratio_text(cpu_med("fastavro-raw") / cpu_med("relay")),
    format(round(cpu_med("relay") * 1e9), ","),
    format(round(cpu_med("fastavro") * 1e9), ","),
    format(round(cpu_med("fastavro-raw") * 1e9), ",")))
EOF
