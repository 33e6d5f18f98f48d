#!/usr/bin/env bash
# Scenario 0013: CM.com CDP. Outbound records on out.cmcdp go through
# relay-deliver (deploy/config/deliver-cmcdp.cfg) to the Events API
# simulator (tests/sim/cmcdp_sim.py, batch endpoint), on the real broker.
#  - every record arrives exactly once, under the event type its
#    event_name maps to, as the flat Event the adapter builds;
#  - a record the platform refuses (400) is in dlq.cmcdp with the reason,
#    while the others of its request arrive; so is one whose event_name has
#    no event type (refused before sending);
#  - a request answered 503 twice, then 200, arrives once;
#  - a 429 with Retry-After: 2 is waited out, nothing dead-lettered;
#  - the tenant's token is changed: relay's is now wrong (401), deliver
#    pauses without dead-lettering anything, and resumes by itself once
#    the new token is written into RELAY_CMCDP_PRODUCT_TOKEN_FILE.
source "$(dirname "$0")/lib.sh"
broker out.cmcdp:3 dlq.cmcdp:1

TENANT=3f2504e0-4f89-11d3-9a0c-0305e82c3301
PURCHASE=0f8fad5b-d9cb-469f-a165-70867728950e
POINTS=7c9e6679-7425-40de-944b-e07fc1f90ae7
TOKEN=$(python3 -c 'import uuid; print(uuid.uuid4())')
NEW_TOKEN=$(python3 -c 'import uuid; print(uuid.uuid4())')

rm -f "$WORK/sim.port"
python3 "$SRC/tests/sim/cmcdp_sim.py" --port 0 --port-file "$WORK/sim.port" \
  --tenant "$TENANT" --token "$TOKEN" --no-query-token \
  --event-type "Purchase=$PURCHASE:Email Address|ref|Product|Amount|tier|occurred_at" \
  --event-type "Points Added=$POINTS" --log "$WORK/sim.log" >/dev/null 2>&1 &
PIDS+=($!)
wait_for 10 test -s "$WORK/sim.port" || fail "CM.com simulator did not start"
SIM="http://127.0.0.1:$(cat "$WORK/sim.port")"

printf '%s\n' "$TOKEN" > "$WORK/token"
env RELAY_CMCDP_PRODUCT_TOKEN_FILE="$WORK/token" \
  "$BIN/relay-deliver" -c deploy/config/deliver-cmcdp.cfg \
  -X kafka.bootstrap.servers="$BS" -X cmcdp.url="$SIM" \
  -X cmcdp.tenant_id="$TENANT" \
  -X cmcdp.event_types="Purchase=$PURCHASE, Points Added=$POINTS" \
  -X deliver.backoff_base_ms=200 -X deliver.backoff_max_ms=2000 \
  -X deliver.http_timeout_ms=3000 -X deliver.batch_wait_ms=100 \
  -X deliver.probe_base_ms=500 -X deliver.probe_max_ms=2000 \
  "${ADMIN[@]}" >>"$WORK/deliver.log" 2>&1 &
DELIVER_PID=$!
PIDS+=($DELIVER_PID)

# Outbound envelopes as relayctl produce takes them (JSON lines), their
# event ids into $3; each carries its event id as the attribute "ref" (CM
# events have no id of their own) so the simulator's records can be
# matched. Every third is a Purchase for an email identity, the others
# Points Added for a customer_id.
gen() { # gen PREFIX COUNT IDFILE > jsonl
  python3 - "$@" <<'PY'
import json, sys, uuid
prefix, n, ids = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "w")
for i in range(n):
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{i}"))
    ids.write(eid + "\n")
    rec = {"event_id": eid, "occurred_at": 1764064860000 + i, "tenant": "acme",
           "source": "antavo", "connection": "acme-antavo-cmcdp",
           "destination": "cmcdp", "environment": "production",
           "event_category": "loyalty", "user_attributes": {"tier": "gold"}}
    if i % 3 == 0:
        rec.update(identity_type="email", identity_value=f"{prefix}-{i % 7}@example.com",
                   event_name="Purchase",
                   attributes={"ref": eid, "Product": f"P{i}", "Amount": i / 4})
    else:
        rec.update(identity_type="customer_id", identity_value=f"{prefix}-cust-{i % 7}",
                   event_name="Points Added",
                   attributes={"ref": eid, "points": i, "vip": i % 2 == 0,
                               "tier": "silver", "none": None})
    print(json.dumps(rec))
PY
}
produce() { "$BIN/relayctl" -b "$BS" produce out.cmcdp 2>>"$WORK/relayctl.log"; }
dlq_list() { "$BIN/relayctl" -b "$BS" dlq list dlq.cmcdp 2>>"$WORK/relayctl.log"; }
received_ids() { sim /_sim/received | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    print(r["event"]["ref"])'; }
requests_with() { # requests_with PYTHON-CONDITION-ON-r: how many requests
  sim /_sim/requests | python3 -c "import json,sys; print(sum(1 for r in json.load(sys.stdin) if $1))"; }

# ---- every record once with its type; refused ones dead-lettered; 503 twice ----
N=30
gen c1 $N "$WORK/c1.ids" > "$WORK/c1.jsonl"
BAD=$(sed -n 8p "$WORK/c1.ids")
BUSY=$(sed -n 20p "$WORK/c1.ids")
sim_fault "[{\"name\":\"refuse\",\"status\":400,\"match\":\"$BAD\",\"times\":-1},
            {\"name\":\"busy\",\"status\":503,\"match\":\"$BUSY\",\"times\":2}]"
# One record whose event has no CM.com event type.
python3 -c 'import json, sys
print(json.dumps({"event_id": "no-type-1", "occurred_at": 1764064860000,
  "tenant": "acme", "source": "antavo", "connection": "acme-antavo-cmcdp",
  "destination": "cmcdp", "environment": "production",
  "identity_type": "email", "identity_value": "x@example.com",
  "event_name": "Refund", "event_category": None,
  "attributes": {"ref": "no-type-1"}, "user_attributes": {}}))' >> "$WORK/c1.jsonl"
produce < "$WORK/c1.jsonl"

grep -v "$BAD" "$WORK/c1.ids" > "$WORK/c1.good"
all_good() { [ "$(count_received "$WORK/c1.good")" -eq $((N - 1)) ]; }
check "all $((N - 1)) deliverable records reached the simulator" wait_for 30 all_good
check "no record was recorded twice" test -z "$(received_ids | sort | uniq -d)"
check "the refused record was not recorded" test "$(received_ids | grep -c "$BAD" || true)" -eq 0
check "the record without an event type was never sent" \
  test "$(sim /_sim/requests | grep -c no-type-1 || true)" -eq 0
check "every request carried the token in its header" \
  test "$(requests_with 'r["token"] != "ok" or r["token_in"] != "header"')" -eq 0
check "the refused record's first request held others too" \
  test "$(requests_with '(r["fault"] == "refuse") * (r["events"] or 0) > 1')" -ge 1
check "some request carried both event types" \
  test "$(requests_with 'r["status"] == 200 and len(r["types"] or []) == 2')" -ge 1
check "the 503 was answered twice" test "$(requests_with 'r["fault"] == "busy"')" -eq 2
check "the record answered 503 twice then arrived once" test "$(received_ids | grep -c "$BUSY")" -eq 1
sim /_sim/received > "$WORK/received.json"
check "each event has its type and is the flat Event of its record" \
  python3 - "$WORK/c1.jsonl" "$WORK/received.json" "$PURCHASE" "$POINTS" <<'PY'
import datetime, json, sys
sent = {r["event_id"]: r for r in map(json.loads, open(sys.argv[1]))}
got = json.load(open(sys.argv[2]))
types = {"Purchase": sys.argv[3], "Points Added": sys.argv[4]}
for g in got:
    e = g["event"]
    s = sent[e["ref"]]
    assert g["event_type"] == s["event_name"], (g, s)
    assert g["event_type_id"] == types[s["event_name"]], g
    iso = datetime.datetime.fromtimestamp(s["occurred_at"] / 1000, datetime.timezone.utc)
    id_field = "Email Address" if s["identity_type"] == "email" else s["identity_type"]
    want = {id_field: s["identity_value"], **s["user_attributes"], **s["attributes"],
            "occurred_at": iso.strftime("%Y-%m-%dT%H:%M:%S.") +
                           f"{s['occurred_at'] % 1000:03d}Z"}
    assert e == want, (e, want)
    assert list(e)[0] == id_field and list(e)[-1] == "occurred_at", list(e)
PY

dlq_has_both() { dlq_list > "$WORK/dlq.jsonl"; [ "$(wc -l < "$WORK/dlq.jsonl")" -ge 2 ]; }
check "the refused record and the one without a type are in dlq.cmcdp" wait_for 20 dlq_has_both
check "their headers give the reasons" python3 - "$WORK/dlq.jsonl" "$BAD" <<'PY'
import json, sys
recs = {json.loads(l)["value"]["event_id"]: json.loads(l) for l in open(sys.argv[1])}
assert set(recs) == {sys.argv[2], "no-type-1"}, list(recs)
h = recs[sys.argv[2]]["headers"]
assert h["relay.stage"] == "deliver", h
assert h["relay.http_status"] == "400", h
assert h["relay.error"].startswith("HTTP 400: ") and 'injected fault \\"refuse\\"' in h["relay.error"], h
assert h["relay.original_topic"] == "out.cmcdp", h
assert h["relay.worker"] == "deliver-cmcdp", h
h = recs["no-type-1"]["headers"]
assert h["relay.error"] == "no CM.com event type for event 'Refund' (cmcdp.event_types)", h
PY

# ---- 429 with Retry-After: waited out, nothing dead-lettered ----
gen r429 1 "$WORK/r429.ids" > "$WORK/r429.jsonl"
R429=$(cat "$WORK/r429.ids")
sim_fault "{\"name\":\"throttle\",\"status\":429,\"retry_after\":2,\"match\":\"$R429\",\"times\":1}"
produce < "$WORK/r429.jsonl"
got_r429() { received_ids | grep -q "$R429"; }
check "a record answered 429 is delivered" wait_for 20 got_r429
gap=$(sim /_sim/requests | python3 -c '
import json, sys
rs = json.load(sys.stdin)
i = max(k for k, r in enumerate(rs) if r["fault"] == "throttle")
print(min(r["at_ms"] for r in rs[i + 1:]) - rs[i]["at_ms"])')
check "the next request waited out Retry-After: 2 (${gap} ms)" test "$gap" -ge 1900
check "nothing more was dead-lettered" test "$(dlq_list | wc -l)" -eq 2

# ---- the tenant's token changes: pause, then heal from *_FILE ----
curl -sf -X POST "$SIM/_sim/token" -d "{\"token\":\"$NEW_TOKEN\"}" >/dev/null
M=10
gen rot $M "$WORK/rot.ids" > "$WORK/rot.jsonl"
produce < "$WORK/rot.jsonl"
refused() { [ "$(requests_with 'r["status"] == 401')" -ge 1 ]; }
check "the simulator refused the old token (401)" wait_for 20 refused
sleep 3
check "no record was dead-lettered for the 401s" test "$(dlq_list | wc -l)" -eq 2
check "none of the $M was recorded" test "$(count_received "$WORK/rot.ids")" -eq 0
check "deliver says it is paused, and why" \
  eval 'grep -i "paused\|refused the" "$WORK/deliver.log" | grep -q "401"'
printf '%s\n' "$NEW_TOKEN" > "$WORK/token"
all_rot() { [ "$(count_received "$WORK/rot.ids")" -eq $M ]; }
check "once the new token is in the file, all $M arrive" wait_for 20 all_rot
check "the same deliver process healed (no restart)" kill -0 "$DELIVER_PID"
check "still nothing recorded twice" test -z "$(received_ids | sort | uniq -d)"

committed_to_end() {
  local out; out=$("$SRC/tests/kafka/committed-offsets.sh" "$BS" relay-deliver-cmcdp | awk '$1=="out.cmcdp"')
  [ -n "$out" ] && echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }
check "deliver committed out.cmcdp to the end" wait_for 20 committed_to_end
done_checks
