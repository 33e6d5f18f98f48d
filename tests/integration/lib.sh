# Shared helpers of the integration scenarios (sourced, not run).
#
# Each scenario starts its own real Kafka broker with tests/kafka/start.sh
# (fresh, empty topics: scenarios cannot see each other's records) and
# stops it at exit; RELAY_TEST_BOOTSTRAP names an already running broker
# to use instead. Workers, simulators and their logs live in a temporary directory
# that is removed at exit (kept, and the logs printed, when a check fails).
set -euo pipefail

SRC=${RELAY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD=${RELAY_BUILD_DIR:-$SRC/build}
BIN=$BUILD/workers
cd "$SRC"
WORK=$(mktemp -d /tmp/relay-it.XXXXXX)
PIDS=()
OWN_BROKER=""
OWN_REGISTRY=""
FAILED=0
CHECKS=0
# Workers built with sanitizers write their reports here; any report fails
# the scenario (checked after the workers have exited).
export ASAN_OPTIONS="log_path=$WORK/asan:detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="log_path=$WORK/ubsan:print_stacktrace=1:halt_on_error=1"

cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for f in "$WORK"/asan.* "$WORK"/ubsan.*; do
    [ -f "$f" ] || continue
    echo "not ok - sanitizer report $(basename "$f"):"; head -n 60 "$f"
    FAILED=$((FAILED + 1)); rc=1
  done
  if [ -n "$OWN_BROKER" ]; then "$SRC/tests/kafka/stop.sh" "$OWN_BROKER" || true; fi
  if [ -n "$OWN_REGISTRY" ]; then "$SRC/tests/registry/stop.sh" "$OWN_REGISTRY" >/dev/null 2>&1 || true; fi
  if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    for f in "$WORK"/*.log; do
      [ -f "$f" ] || continue
      echo "----- $(basename "$f") (last 40 lines)"; tail -n 40 "$f" | cut -c1-400
    done
    echo "(work files kept in $WORK)"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT

ok()   { CHECKS=$((CHECKS + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "not ok - $*"; exit 1; }
check() { # check "description" command...
  local what=$1; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
done_checks() { echo "$CHECKS passed, $FAILED failed"; }

# Poll a command until it succeeds; bounded by seconds.
wait_for() { # wait_for SECONDS command...
  local secs=$1; shift
  local end=$((SECONDS + secs))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.25
  done
}

# Start the broker (unless RELAY_TEST_BOOTSTRAP names one) and create the
# topics: TOPIC:PARTITIONS arguments, default the four of the pipeline.
broker() { # broker [TOPIC:N ...]
  local topics=("$@")
  [ ${#topics[@]} -gt 0 ] || topics=(loyalty.events:3 out.mparticle:3 dlq.mparticle:1 dlq.transform:1)
  if [ -z "${RELAY_TEST_BOOTSTRAP:-}" ]; then
    OWN_BROKER="${RELAY_KAFKA_DIR:-$BUILD/kafka}"
    RELAY_TEST_BOOTSTRAP=$("$SRC/tests/kafka/start.sh" "$OWN_BROKER" | sed -n 's/^bootstrap=//p')
  fi
  BS=$RELAY_TEST_BOOTSTRAP
  "$SRC/tests/kafka/create-topics.sh" "$BS" "${topics[@]}" >/dev/null
}

# A free TCP port on loopback.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Start a real schema registry (tests/registry/start.sh, fresh and empty)
# on port $1 (default: any free one); sets REG (its Confluent API URL).
start_registry() {
  OWN_REGISTRY="${RELAY_REGISTRY_DIR:-$BUILD/registry}"
  REG=$(RELAY_REGISTRY_PORT=${1:-0} "$SRC/tests/registry/start.sh" "$OWN_REGISTRY" \
        2>>"$WORK/registry-start.log" | sed -n 's/^url=//p')
  [ -n "$REG" ] || fail "schema registry did not start (see registry-start.log)"
}
# The URL the registry of tests/registry/start.sh has on port $1.
registry_url() { echo "http://127.0.0.1:$1/apis/ccompat/v7"; }
stop_registry() { "$SRC/tests/registry/stop.sh" "$OWN_REGISTRY" >/dev/null 2>&1; }

# Start the mParticle simulator; sets SIM (base URL).
start_sim() {
  rm -f "$WORK/sim.port"
  python3 "$SRC/tests/sim/mparticle_sim.py" --port 0 --port-file "$WORK/sim.port" \
    --key it-key --secret it-secret "$@" >/dev/null 2>"$WORK/sim.log" &
  PIDS+=($!)
  wait_for 10 test -s "$WORK/sim.port" || fail "simulator did not start"
  SIM="http://127.0.0.1:$(cat "$WORK/sim.port")"
}

# Workers serve their admin endpoint on a free loopback port (admin_url
# finds it in the log); a test may pass -X admin.port=N to choose.
ADMIN=(-X admin.address=127.0.0.1 -X admin.port=-1)

start_transform() {
  "$BIN/relay-transform" -c deploy/config/transform-loyalty.cfg \
    -X kafka.bootstrap.servers="$BS" -X transform.batch_wait_ms=50 "${ADMIN[@]}" "$@" \
    >>"$WORK/transform.log" 2>&1 &
  TRANSFORM_PID=$!
  PIDS+=($TRANSFORM_PID)
}

# DELIVER_ENV (word-split NAME=VALUE pairs) replaces the secret's variable,
# e.g. DELIVER_ENV="RELAY_MPARTICLE_API_SECRET_FILE=$WORK/secret".
start_deliver() {
  # shellcheck disable=SC2086
  env RELAY_MPARTICLE_API_KEY=it-key ${DELIVER_ENV:-RELAY_MPARTICLE_API_SECRET=it-secret} \
  "$BIN/relay-deliver" -c deploy/config/deliver-mparticle.cfg \
    -X kafka.bootstrap.servers="$BS" -X mparticle.url="$SIM/v2" \
    -X deliver.backoff_base_ms=200 -X deliver.backoff_max_ms=2000 \
    -X deliver.http_timeout_ms=3000 "${ADMIN[@]}" "$@" >>"$WORK/${DELIVER_LOG:-deliver}.log" 2>&1 &
  DELIVER_PID=$!
  PIDS+=($DELIVER_PID)
}

# admin_url LOG: the admin endpoint of the worker logging to $WORK/LOG (its
# latest start), e.g. admin_url deliver.log → http://127.0.0.1:40123; waits
# up to 20 s for the line.
admin_url() {
  local port=""
  for _ in $(seq 1 100); do
    port=$(grep -o 'serving /metrics[^"]* on [0-9.]*:[0-9]*' "$WORK/$1" 2>/dev/null |
           tail -1 | sed 's/.*://') || true
    [ -n "$port" ] && break
    sleep 0.2
  done
  [ -n "$port" ] || fail "no admin endpoint in $1"
  echo "http://127.0.0.1:$port"
}

# metric URL NAME [LABEL=VALUE ...] [--max]: a number from the worker's
# /metrics at URL (the sum of the matching samples), "none" when absent.
metric() { curl -sf "$1/metrics" | python3 "$SRC/tests/lib/prom_value.py" "${@:2}" || true; }

sim() { curl -sf "$SIM$1"; }
sim_fault() { curl -sf -X POST "$SIM/_sim/faults" -d "$1" >/dev/null; }

# The event ids the simulator accepted, one per line (with repeats).
received_ids() { sim /_sim/received | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    print(r["batch"]["source_request_id"])'; }

# How many of the ids in file $1 the simulator accepted at least once.
count_received() { # count_received IDFILE
  received_ids | sort -u | comm -12 - <(sort -u "$1") | wc -l; }

produce() { # produce TOPIC < jsonl
  "$BIN/relayctl" -b "$BS" produce "$1" 2>>"$WORK/relayctl.log"; }

dlq_list() { "$BIN/relayctl" -b "$BS" dlq list "$1" 2>>"$WORK/relayctl.log"; }
