#!/usr/bin/env bash
# Fault 0105: steady throttling. The platform answers one event's request
# 429 with Retry-After: 15 three times in a row, then 202, while deliver
# runs with deliver.max_attempts=2.
# Promise: Retry-After is honoured in full (up to deliver.retry_after_max_ms,
# default 1 h, not capped at backoff_max_ms), a 429 carrying it does not use
# an attempt, so the event arrives, with gaps of at least 15 s between the
# attempts, and nothing is dead-lettered.
source "$(dirname "$0")/lib.sh"
broker
start_fault_sim
start_transform
mapfile -t RA < <(known_opts relay-deliver deliver.retry_after_max_ms=3600000)
start_deliver -X deliver.max_attempts=2 "${RA[@]}"
gen t 1
ID=$(cat "$WORK/t.ids")
sim_fault "{\"name\":\"throttle\",\"status\":429,\"retry_after\":15,\"match\":\"$ID\",\"times\":3}"
produce_file t
wait_delivered 75 75 || true
check_loss throttle --max-dlq 0 --max-dups 0
sim /_sim/requests > "$WORK/requests.json"
check "three 429s, then the 202, at least 15 s apart" python3 - "$WORK/requests.json" <<'PY'
import json, sys
rs = [r for r in json.load(open(sys.argv[1])) if r["path"].startswith("/v2/")]
seq = [(r["status"], r["at_ms"]) for r in rs]
print("# attempts (status, ms after the first):", [(s, t - seq[0][1]) for s, t in seq])
assert [s for s, _ in seq] == [429, 429, 429, 202], seq
gaps = [b[1] - a[1] for a, b in zip(seq, seq[1:])]
print("# gaps (ms):", gaps)
assert min(gaps) >= 15000, gaps
PY
done_checks
