#!/usr/bin/env bash
# Scenario 0014: Antavo. Outbound records on out.antavo go through
# relay-deliver (deploy/config/deliver-antavo.cfg) to the Antavo simulator
# (tests/sim/antavo_sim.py), which checks the api_key and recomputes every
# Escher signature, on the real Kafka broker.
#  - every record arrives once, one event per POST /events, each request
#    signed (a signature is taken only once, so retries are signed afresh);
#  - a record the simulator refuses (400) is in dlq.antavo with Antavo's
#    error message, and only that one;
#  - an event answered 503 twice, then 200, arrives once;
#  - a 429 is waited out, nothing dead-lettered;
#  - Antavo's secret changes: relay's signature is refused (401), deliver
#    pauses without dead-lettering anything, and resumes by itself once
#    the new secret is written into RELAY_ANTAVO_API_SECRET_FILE.
source "$(dirname "$0")/lib.sh"
broker out.antavo:3 dlq.antavo:1

KEY="it-antavo-key"
SECRET="it-antavo-secret-1"
NEW_SECRET="it-antavo-secret-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"

rm -f "$WORK/sim.port"
python3 "$SRC/tests/sim/antavo_sim.py" --port 0 --port-file "$WORK/sim.port" \
  --api-key "$KEY" --api-secret "$SECRET" --log "$WORK/sim.log" >/dev/null 2>&1 &
PIDS+=($!)
wait_for 10 test -s "$WORK/sim.port" || fail "antavo simulator did not start"
SIM="http://127.0.0.1:$(cat "$WORK/sim.port")"

printf '%s\n' "$KEY" > "$WORK/key"
printf '%s\n' "$SECRET" > "$WORK/secret"
env RELAY_ANTAVO_API_KEY_FILE="$WORK/key" RELAY_ANTAVO_API_SECRET_FILE="$WORK/secret" \
  "$BIN/relay-deliver" -c deploy/config/deliver-antavo.cfg \
  -X kafka.bootstrap.servers="$BS" -X antavo.url="$SIM" \
  -X deliver.backoff_base_ms=300 -X deliver.backoff_max_ms=2000 \
  -X deliver.http_timeout_ms=3000 -X deliver.batch_wait_ms=50 \
  -X deliver.probe_base_ms=500 -X deliver.probe_max_ms=2000 \
  "${ADMIN[@]}" >>"$WORK/deliver.log" 2>&1 &
DELIVER_PID=$!
PIDS+=($DELIVER_PID)

# Outbound envelopes as relayctl produce takes them (JSON lines), their
# event ids into $3; every event carries its id as data.ref, so that the
# simulator's faults can match it and what arrived maps back to it.
gen() { # gen PREFIX COUNT IDFILE > jsonl
  python3 - "$@" <<'PY'
import json, sys, uuid
prefix, n, ids = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "w")
for i in range(n):
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{i}"))
    ids.write(eid + "\n")
    checkout = i % 5 == 0
    print(json.dumps({
        "event_id": eid, "occurred_at": 1764064860000 + i, "tenant": "acme",
        "source": "shop", "connection": "acme-shop-antavo",
        "destination": "antavo", "environment": "production",
        "identity_type": "customer_id", "identity_value": f"{prefix}-cust-{i % 7}",
        "event_name": "checkout" if checkout else "point_add",
        "event_category": None,
        "attributes": {"ref": eid, "points": i, "ratio": i / 4, "vip": i % 2 == 0},
        "user_attributes": {"tier": "gold"}}))
PY
}
RELAYCTL=${RELAYCTL:-$BIN/relayctl}
produce() { "$RELAYCTL" -b "$BS" produce out.antavo 2>>"$WORK/relayctl.log"; }
dlq_list() { "$RELAYCTL" -b "$BS" dlq list dlq.antavo 2>>"$WORK/relayctl.log"; }
sim() { curl -sf "$SIM$1"; }
sim_fault() { curl -sf -X POST "$SIM/_sim/faults" -d "$1" >/dev/null; }
received_ids() { sim /_sim/received | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    print(r["event"]["data"]["ref"])'; }
count_received() { received_ids | sort -u | comm -12 - <(sort -u "$1") | wc -l; }
requests_with() { # requests_with PYTHON-CONDITION-ON-r: how many requests
  sim /_sim/requests | python3 -c "import json,sys; print(sum(1 for r in json.load(sys.stdin) if $1))"; }

# ---- every record once, signed; a refused one dead-lettered; 503 twice ----
N=30
gen a1 $N "$WORK/a1.ids" > "$WORK/a1.jsonl"
BAD=$(sed -n 7p "$WORK/a1.ids")
BUSY=$(sed -n 23p "$WORK/a1.ids")
sim_fault "[{\"name\":\"refuse\",\"status\":400,\"match\":\"$BAD\",\"times\":-1},
            {\"name\":\"busy\",\"status\":503,\"match\":\"$BUSY\",\"times\":2}]"
produce < "$WORK/a1.jsonl"

grep -v "$BAD" "$WORK/a1.ids" > "$WORK/a1.good"
all_good() { [ "$(count_received "$WORK/a1.good")" -eq $((N - 1)) ]; }
check "all $((N - 1)) deliverable records reached the simulator" wait_for 30 all_good
check "no record arrived twice" test -z "$(received_ids | sort | uniq -d)"
check "the refused record was not recorded" test "$(received_ids | grep -c "$BAD" || true)" -eq 0
check "every request carried a valid signature ($(requests_with 'r["signature"] != "ok"') did not)" \
  test "$(requests_with 'r["signature"] != "ok"')" -eq 0
check "one event per request, to /events" \
  test "$(requests_with 'r["path"] != "/events" or (r["events"] or 1) != 1')" -eq 0
check "the 503 was answered twice" test "$(requests_with 'r["fault"] == "busy"')" -eq 2
check "the record answered 503 twice then arrived once" test "$(received_ids | grep -c "$BUSY")" -eq 1
sim /_sim/received > "$WORK/received.json"
check "each event is {customer, action, data}, checkouts with their transaction_id" \
  python3 - "$WORK/a1.jsonl" "$WORK/received.json" <<'PY'
import json, sys
sent = {r["event_id"]: r for r in map(json.loads, open(sys.argv[1]))}
for g in json.load(open(sys.argv[2])):
    e = g["event"]
    s = sent[e["data"]["ref"]]
    data = dict(s["attributes"], tier="gold")
    if s["event_name"] == "checkout":
        data["transaction_id"] = s["event_id"]
    want = {"customer": s["identity_value"], "action": s["event_name"], "data": data}
    assert e == want, (e, want)
PY

dlq_has_bad() { dlq_list > "$WORK/dlq.jsonl"; grep -q "$BAD" "$WORK/dlq.jsonl"; }
check "the refused record is in dlq.antavo" wait_for 20 dlq_has_bad
check "only it, with Antavo's status and message" python3 - "$WORK/dlq.jsonl" "$BAD" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 1, f"{len(recs)} dead letters, want 1"
h, v = recs[0]["headers"], recs[0]["value"]
assert v["event_id"] == sys.argv[2], v
assert h["relay.http_status"] == "400", h
assert h["relay.error"] == 'HTTP 400: injected fault "refuse"', h
assert h["relay.original_topic"] == "out.antavo", h
assert h["relay.worker"] == "deliver-antavo", h
PY

# ---- 429: waited out, nothing dead-lettered ----
gen r429 1 "$WORK/r429.ids" > "$WORK/r429.jsonl"
R429=$(cat "$WORK/r429.ids")
sim_fault "{\"name\":\"throttle\",\"status\":429,\"retry_after\":2,\"match\":\"$R429\",\"times\":1}"
produce < "$WORK/r429.jsonl"
got_r429() { received_ids | grep -q "$R429"; }
check "a record answered 429 is delivered" wait_for 20 got_r429
check "it was throttled once first" test "$(requests_with 'r["fault"] == "throttle"')" -eq 1
check "nothing more was dead-lettered" test "$(dlq_list | wc -l)" -eq 1

# ---- Antavo's secret changes: pause, then heal from *_FILE ----
curl -sf -X POST "$SIM/_sim/secret" -d "{\"secret\":\"$NEW_SECRET\"}" >/dev/null
M=8
gen rot $M "$WORK/rot.ids" > "$WORK/rot.jsonl"
produce < "$WORK/rot.jsonl"
refused() { [ "$(requests_with 'r["status"] == 401')" -ge 1 ]; }
check "the simulator refused the old secret's signature (401)" wait_for 20 refused
sleep 3
check "no record was dead-lettered for the 401s" test "$(dlq_list | wc -l)" -eq 1
check "none of the $M was recorded" test "$(count_received "$WORK/rot.ids")" -eq 0
check "deliver says it is paused, and why" \
  eval 'grep -i "paused\|refused the" "$WORK/deliver.log" | grep -q "401"'
printf '%s\n' "$NEW_SECRET" > "$WORK/secret"
all_rot() { [ "$(count_received "$WORK/rot.ids")" -eq $M ]; }
check "once the new secret is in the file, all $M arrive" wait_for 20 all_rot
check "the same deliver process healed (no restart)" kill -0 "$DELIVER_PID"
check "still nothing recorded twice" test -z "$(received_ids | sort | uniq -d)"
check "no signature was refused as a replay" test "$(requests_with 'r["signature"] == "replayed"')" -eq 0

committed_to_end() {
  local out; out=$("$SRC/tests/kafka/committed-offsets.sh" "$BS" relay-deliver-antavo | awk '$1=="out.antavo"')
  [ -n "$out" ] && echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }
check "deliver committed out.antavo to the end" wait_for 20 committed_to_end
done_checks
