# Helpers of the fault scenarios (sourced, not run), on top of the
# integration scenarios' tests/integration/lib.sh.
#
# Each fault scenario runs on its own fresh broker (RELAY_TEST_BOOTSTRAP is
# ignored: some stop the broker or change its settings), with the simulator
# writing every accepted batch's id to $WORK/received.log, and ends with the
# one shared loss check, tests/fault/check_loss.py.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
unset RELAY_TEST_BOOTSTRAP
RECEIVED=$WORK/received.log
: > "$RECEIVED"

# Drop a pid from PIDS once it is gone, so cleanup never signals a pid that
# the system may have handed to someone else since.
forget_pid() { # forget_pid PID
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# kill -9 one of our workers and reap it.
kill9() { # kill9 PID
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

# The simulator, logging accepted ids to $RECEIVED; sets SIM, SIM_PID, SIM_PORT.
start_fault_sim() { # start_fault_sim [SIM ARGS...]
  start_sim --received-log "$RECEIVED" "$@"
  SIM_PID=${PIDS[-1]}
  SIM_PORT=${SIM##*:}
}
# Stop it (SIGTERM): clients now get "connection refused".
stop_sim() {
  kill "$SIM_PID" 2>/dev/null || true
  wait "$SIM_PID" 2>/dev/null || true
  forget_pid "$SIM_PID"
}
# Start it again on the same port, appending to the same received log.
restart_sim() { # restart_sim [SIM ARGS...]
  local port=$SIM_PORT
  start_fault_sim --port "$port" "$@"
  [ "$SIM_PORT" = "$port" ] || fail "simulator came back on port $SIM_PORT, not $port"
}

# True when the worker binary declares config key $2 (the engine of issue 17
# adds some; today's binaries refuse unknown keys at start).
knows_key() { # knows_key relay-deliver deliver.probe_base_ms
  "$BIN/$1" -h 2>&1 | awk '{print $1}' | grep -qxF "$2"; }
# Print "-X KEY=VALUE" for each pair the binary knows; say which it does not.
known_opts() { # known_opts BINARY KEY=VALUE...
  local bin=$1 kv; shift
  for kv in "$@"; do
    if knows_key "$bin" "${kv%%=*}"; then printf -- '-X\n%s\n' "$kv"
    else echo "# note: $bin has no key ${kv%%=*}; not passed" >&2; fi
  done
}

# Events: gen_events.py with a unique prefix; ids appended to $WORK/produced.ids.
gen() { # gen NAME COUNT → $WORK/NAME.jsonl, $WORK/NAME.ids
  python3 tests/integration/gen_events.py --count "$2" --prefix "$1-$$-$RANDOM" \
    --ids "$WORK/$1.ids" > "$WORK/$1.jsonl"
  cat "$WORK/$1.ids" >> "$WORK/produced.ids"
}
produce_file() { # produce_file NAME (after gen)
  produce loyalty.events < "$WORK/$1.jsonl" || fail "relayctl produce of $1 failed"; }

# How many distinct produced ids the simulator accepted so far.
delivered_count() { sort -u "$RECEIVED" | comm -12 - <(sort -u "$WORK/produced.ids") | wc -l; }
all_delivered() { [ "$(delivered_count)" -ge "$(sort -u "$WORK/produced.ids" | wc -l)" ]; }

# How many distinct produced ids are in the dead-letter topics.
dead_count() {
  { dlq_list dlq.transform; dlq_list dlq.mparticle; } | python3 -c '
import json, sys
ids = {l.strip() for l in open(sys.argv[1]) if l.strip()}
seen = set()
for line in sys.stdin:
    v = json.loads(line).get("value")
    if isinstance(v, dict) and v.get("event_id") in ids:
        seen.add(v["event_id"])
print(len(seen))' "$WORK/produced.ids"; }

# Wait until every produced id was delivered, or until nothing new arrived
# for STALL seconds (or the rest is dead-lettered), or SECS in all.
wait_delivered() { # wait_delivered SECS [STALL]
  local end=$((SECONDS + $1)) stall=${2:-60} last=-1 since=$SECONDS n
  local total; total=$(sort -u "$WORK/produced.ids" | wc -l)
  while [ "$SECONDS" -lt "$end" ]; do
    n=$(delivered_count)
    [ "$n" -ge "$total" ] && return 0
    if [ "$n" -ne "$last" ]; then last=$n since=$SECONDS
    elif [ $((SECONDS - since)) -ge "$stall" ]; then
      echo "# no progress for ${stall}s at $n of $total"; return 1
    elif [ $(((SECONDS - since) % 10)) -eq 9 ] && [ $((n + $(dead_count))) -ge "$total" ]; then
      echo "# $n of $total delivered, the rest dead-lettered"; return 1
    fi
    sleep 1
  done
  echo "# gave up after $1 s at $n of $total"; return 1
}

# The shared loss check over everything produced: check_loss LABEL [ARGS...]
# (ARGS go to check_loss.py: --max-dups N, --max-dlq N, --stubs N, ...).
check_loss() {
  local label=$1; shift
  dlq_list dlq.transform > "$WORK/dlq.transform.jsonl"
  dlq_list dlq.mparticle > "$WORK/dlq.mparticle.jsonl"
  local out rc=0
  out=$(python3 tests/fault/check_loss.py --label "$label" --produced "$WORK/produced.ids" \
        --received "$RECEIVED" --dlq "$WORK/dlq.transform.jsonl" \
        --dlq "$WORK/dlq.mparticle.jsonl" "$@") || rc=$?
  echo "$out" | sed 's/^/# /'
  [ "$rc" -eq 0 ] && ok "$label: nothing lost, duplicates and dead letters within bounds" \
                  || fail "$label: $(echo "$out" | sed -n 2p | sed 's/^ *//')"
}

# Committed offsets of GROUP as "TOPIC PARTITION COMMITTED END" lines.
committed() { "$SRC/tests/kafka/committed-offsets.sh" "$BS" "$1" 2>>"$WORK/tools.log"; }
# Sum of the committed offsets of GROUP on TOPIC (0 without commits).
committed_sum() { committed "$1" | awk -v t="$2" '$1==t {s+=$3} END {print s+0}'; }
committed_to_end() { # GROUP TOPIC
  local out; out=$(committed "$1" | awk -v t="$2" '$1==t')
  [ -n "$out" ] && echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }

# True while PID is alive and still the same process (not a zombie).
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
