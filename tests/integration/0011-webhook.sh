#!/usr/bin/env bash
# Scenario 0011: the generic signed webhook. Outbound records on out.webhook
# go through relay-deliver (deploy/config/deliver-webhook.cfg) to a
# Standard Webhooks receiver (tests/sim/webhook_sim.py) that checks every
# signature, on the real Kafka broker.
#  - every record arrives once, in a body signed over its exact bytes;
#    a request of one record carries its event_id as webhook-id;
#  - a record the receiver refuses (400) is in dlq.webhook with the reason,
#    while the others of its request are delivered;
#  - a request answered 503 twice, then 200, arrives once;
#  - a 429 with Retry-After: 2 is waited out, nothing dead-lettered;
#  - the receiver rotates its secret: relay's is now wrong (401), deliver
#    pauses without dead-lettering anything, and resumes by itself once
#    the new secret is written into RELAY_WEBHOOK_SECRET_FILE.
source "$(dirname "$0")/lib.sh"
broker out.webhook:3 dlq.webhook:1

SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW_SECRET="whsec_$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')"

rm -f "$WORK/sim.port"
python3 "$SRC/tests/sim/webhook_sim.py" --port 0 --port-file "$WORK/sim.port" \
  --secret "$SECRET" --log "$WORK/sim.log" >/dev/null 2>&1 &
PIDS+=($!)
wait_for 10 test -s "$WORK/sim.port" || fail "webhook simulator did not start"
SIM="http://127.0.0.1:$(cat "$WORK/sim.port")"

printf '%s\n' "$SECRET" > "$WORK/secret"
env RELAY_WEBHOOK_SECRET_FILE="$WORK/secret" \
  "$BIN/relay-deliver" -c deploy/config/deliver-webhook.cfg \
  -X kafka.bootstrap.servers="$BS" -X webhook.url="$SIM/hooks/relay" \
  -X deliver.backoff_base_ms=200 -X deliver.backoff_max_ms=2000 \
  -X deliver.http_timeout_ms=3000 -X deliver.batch_wait_ms=100 \
  -X deliver.probe_base_ms=500 -X deliver.probe_max_ms=2000 \
  "${ADMIN[@]}" >>"$WORK/deliver.log" 2>&1 &
DELIVER_PID=$!
PIDS+=($DELIVER_PID)

# Outbound envelopes as relayctl produce takes them (JSON lines), their
# event ids into $2.
gen() { # gen PREFIX COUNT IDFILE > jsonl
  python3 - "$@" <<'PY'
import json, sys, uuid
prefix, n, ids = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], "w")
for i in range(n):
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{i}"))
    ids.write(eid + "\n")
    print(json.dumps({
        "event_id": eid, "occurred_at": 1764064860000 + i, "tenant": "acme",
        "source": "antavo", "connection": "acme-antavo-webhook",
        "destination": "webhook", "environment": "production",
        "identity_type": "customer_id", "identity_value": f"{prefix}-cust-{i % 7}",
        "event_name": "Points Added" if i % 4 else None,
        "event_category": "loyalty" if i % 4 else None,
        "attributes": {"points": i, "ratio": i / 4, "vip": i % 2 == 0,
                       "store": f"S{i % 3}", "none": None},
        "user_attributes": {"tier": "gold"}}))
PY
}
RELAYCTL=${RELAYCTL:-$BIN/relayctl}
produce() { "$RELAYCTL" -b "$BS" produce out.webhook 2>>"$WORK/relayctl.log"; }
dlq_list() { "$RELAYCTL" -b "$BS" dlq list dlq.webhook 2>>"$WORK/relayctl.log"; }
sim() { curl -sf "$SIM$1"; }
sim_fault() { curl -sf -X POST "$SIM/_sim/faults" -d "$1" >/dev/null; }
received_ids() { sim /_sim/received | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    print(r["event"]["event_id"])'; }
count_received() { received_ids | sort -u | comm -12 - <(sort -u "$1") | wc -l; }
requests_with() { # requests_with PYTHON-CONDITION-ON-r: how many requests
  sim /_sim/requests | python3 -c "import json,sys; print(sum(1 for r in json.load(sys.stdin) if $1))"; }

# ---- every record once, signed; a refused one dead-lettered; 503 twice ----
N=40
gen w1 $N "$WORK/w1.ids" > "$WORK/w1.jsonl"
BAD=$(sed -n 7p "$WORK/w1.ids")
BUSY=$(sed -n 23p "$WORK/w1.ids")
sim_fault "[{\"name\":\"refuse\",\"status\":400,\"match\":\"$BAD\",\"times\":-1},
            {\"name\":\"busy\",\"status\":503,\"match\":\"$BUSY\",\"times\":2}]"
produce < "$WORK/w1.jsonl"

grep -v "$BAD" "$WORK/w1.ids" > "$WORK/w1.good"
all_good() { [ "$(count_received "$WORK/w1.good")" -eq $((N - 1)) ]; }
check "all $((N - 1)) deliverable records reached the receiver" wait_for 30 all_good
check "no record was recorded twice" test -z "$(received_ids | sort | uniq -d)"
check "the refused record was not recorded" test "$(received_ids | grep -c "$BAD" || true)" -eq 0
check "every request carried a valid signature ($(requests_with 'r["signature"] != "ok"') did not)" \
  test "$(requests_with 'r["signature"] != "ok"')" -eq 0
check "the refused record's first request held others too" \
  test "$(requests_with '(r["fault"] == "refuse") * (r["events"] or 0) > 1')" -ge 1
check "the 503 was answered twice" test "$(requests_with 'r["fault"] == "busy"')" -eq 2
check "the record answered 503 twice then arrived once" test "$(received_ids | grep -c "$BUSY")" -eq 1
same_id_on_retry() { # the 503s and the accepted send of BUSY's request: one webhook-id
  [ "$( { sim /_sim/requests | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if r["fault"] == "busy": print(r["webhook_id"])'
          sim /_sim/received | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    if r["event"]["event_id"] == sys.argv[1]: print(r["webhook_id"])' "$BUSY"; } | sort -u | wc -l)" -eq 1 ]; }
check "its retries carried the same webhook-id as the send that was accepted" same_id_on_retry
sim /_sim/received > "$WORK/received.json"
sim /_sim/requests > "$WORK/requests.json"
check "bodies are the envelope; a lone record's webhook-id is its event_id" \
  python3 - "$WORK/w1.jsonl" "$WORK/received.json" "$WORK/requests.json" <<'PY'
import datetime, json, sys
sent = {r["event_id"]: r for r in map(json.loads, open(sys.argv[1]))}
got = json.load(open(sys.argv[2]))
for g in got:
    e, s = g["event"], sent[g["event"]["event_id"]]
    iso = datetime.datetime.fromtimestamp(s["occurred_at"] / 1000, datetime.timezone.utc)
    want = {"event_id": s["event_id"],
            "occurred_at": iso.strftime("%Y-%m-%dT%H:%M:%S.") + f"{s['occurred_at'] % 1000:03d}Z",
            "tenant": "acme", "source": "antavo", "connection": "acme-antavo-webhook",
            "environment": "production",
            "identity": {"type": "customer_id", "value": s["identity_value"]},
            "event_name": s["event_name"], "event_category": s["event_category"],
            "attributes": s["attributes"], "user_attributes": {"tier": "gold"}}
    assert e == want, (e, want)
by_id = {}
for g in got:
    by_id.setdefault(g["webhook_id"], []).append(g["event"]["event_id"])
for wid, evs in by_id.items():
    if len(evs) == 1:
        assert wid == evs[0], (wid, evs)
    else:
        assert wid.startswith("msg_") and len(wid) == 36, wid
PY

dlq_has_bad() { dlq_list > "$WORK/dlq.jsonl"; grep -q "$BAD" "$WORK/dlq.jsonl"; }
check "the refused record is in dlq.webhook" wait_for 20 dlq_has_bad
check "its headers give the receiver's reason and status" python3 - "$WORK/dlq.jsonl" "$BAD" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 1, f"{len(recs)} dead letters, want 1"
h, v = recs[0]["headers"], recs[0]["value"]
assert v["event_id"] == sys.argv[2], v
assert h["relay.stage"] == "deliver", h
assert h["relay.http_status"] == "400", h
assert h["relay.error"].startswith("HTTP 400: ") and 'injected fault \\"refuse\\"' in h["relay.error"], h
assert h["relay.original_topic"] == "out.webhook", h
assert h["relay.worker"] == "deliver-webhook", h
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
check "nothing more was dead-lettered" test "$(dlq_list | wc -l)" -eq 1

# ---- the receiver rotates its secret: pause, then heal from *_FILE ----
curl -sf -X POST "$SIM/_sim/secret" -d "{\"secret\":\"$NEW_SECRET\"}" >/dev/null
M=10
gen rot $M "$WORK/rot.ids" > "$WORK/rot.jsonl"
produce < "$WORK/rot.jsonl"
refused() { [ "$(requests_with 'r["status"] == 401')" -ge 1 ]; }
check "the receiver refused the old signature (401)" wait_for 20 refused
sleep 4
check "no record was dead-lettered for the 401s" test "$(dlq_list | wc -l)" -eq 1
check "none of the $M was recorded" test "$(count_received "$WORK/rot.ids")" -eq 0
check "deliver says it is paused, and why" \
  eval 'grep -i "paused\|refused the" "$WORK/deliver.log" | grep -q "401"'
n401=$(requests_with 'r["status"] == 401')
ok "the receiver saw $n401 request(s) with the old secret (probes)"
printf '%s\n' "$NEW_SECRET" > "$WORK/secret"
all_rot() { [ "$(count_received "$WORK/rot.ids")" -eq $M ]; }
check "once the new secret is in the file, all $M arrive" wait_for 20 all_rot
check "the same deliver process healed (no restart)" kill -0 "$DELIVER_PID"
check "still nothing recorded twice" test -z "$(received_ids | sort | uniq -d)"

committed_to_end() {
  local out; out=$("$SRC/tests/kafka/committed-offsets.sh" "$BS" relay-deliver-webhook | awk '$1=="out.webhook"')
  [ -n "$out" ] && echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }
check "deliver committed out.webhook to the end" wait_for 20 committed_to_end
done_checks
