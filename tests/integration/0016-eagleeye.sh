#!/usr/bin/env bash
# Scenario 0016: out.eagleeye → deliver → Eagle Eye AIR wallet API (the
# simulator tests/sim/eagleeye_sim.py, which checks X-EES-AUTH-CLIENT-ID
# and X-EES-AUTH-HASH on every call), on the real Kafka broker.
#  - envelope v2 records with reward.issue (target the campaign) and
#    points.earn (target the account, attributes.points) each arrive once:
#    one token per issuance, each earn once;
#  - an unknown wallet (404 WALLET_NOT_FOUND) dead-letters only its record;
#  - a call the simulator applied but whose answer was lost (503 after
#    issuing) is retried with the same X-EES-TRANSACTION-ID and does not
#    issue twice;
#  - a 429 with Retry-After is waited out;
#  - a client secret AIR no longer takes (401) pauses delivery, nothing is
#    dead-lettered, and RELAY_EAGLEEYE_CLIENT_SECRET_FILE's new secret
#    resumes the same process.
source "$(dirname "$0")/lib.sh"
broker out.eagleeye:3 dlq.eagleeye:1

rm -f "$WORK/sim.port"
python3 "$SRC/tests/sim/eagleeye_sim.py" --port 0 --port-file "$WORK/sim.port" \
  --client-id relay-it --secret s1 --campaigns CAMP-1,CAMP-2 \
  --log "$WORK/sim.log" >/dev/null 2>>"$WORK/sim.log" &
PIDS+=($!)
wait_for 10 test -s "$WORK/sim.port" || fail "simulator did not start"
SIM="http://127.0.0.1:$(cat "$WORK/sim.port")"
WALLETS=$(python3 -c '
import json
w = {f"W{i}": {"PTS": 0} for i in range(20)}
w.update({k: {"PTS": 0} for k in ("W-LOST", "W-SLOW", "W-K1", "W-K2", "W-K3")})
print(json.dumps(w))')
curl -sf -X POST "$SIM/_sim/wallets" -d "$WALLETS" >/dev/null || fail "wallets"

echo s1 > "$WORK/secret"
RELAY_EAGLEEYE_CLIENT_SECRET_FILE="$WORK/secret" \
"$BIN/relay-deliver" -c deploy/config/deliver-eagleeye.cfg \
  -X kafka.bootstrap.servers="$BS" -X eagleeye.url="$SIM" -X eagleeye.client_id=relay-it \
  -X deliver.backoff_base_ms=200 -X deliver.backoff_max_ms=1000 \
  -X deliver.http_timeout_ms=3000 -X deliver.batch_wait_ms=50 \
  -X deliver.probe_base_ms=500 -X deliver.probe_max_ms=1000 "${ADMIN[@]}" \
  >>"$WORK/deliver.log" 2>&1 &
DELIVER_PID=$!
PIDS+=($DELIVER_PID)

# rec WALLET OP TARGET [POINTS]: one v2 envelope, JSON on one line.
rec() {
  python3 -c '
import json, sys, uuid
wallet, op, target = sys.argv[1:4]
attrs = {"points": int(sys.argv[4])} if len(sys.argv) > 4 else {"channel": "app"}
print(json.dumps({"event_id": str(uuid.uuid4()), "occurred_at": 1764064860123,
  "tenant": "acme", "source": "antavo", "connection": "acme-antavo-eagleeye",
  "destination": "eagleeye", "environment": "production",
  "identity_type": "customer_id", "identity_value": "cust-" + wallet,
  "event_name": None, "event_category": None, "attributes": {}, "user_attributes": {},
  "identities": {"customer_id": "cust-" + wallet, "wallet_id": wallet},
  "operations": [{"op": op, "target": target, "attributes": attrs}]}))' "$@"; }
produce_ee() { "$BIN/relayctl" -b "$BS" produce out.eagleeye -k identity_value 2>>"$WORK/relayctl.log"; }
# applied: "kind wallet target" lines of what the simulator applied
applied() { curl -sf "$SIM/_sim/received" | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    print(r["kind"], r["wallet"], r.get("campaign") or r.get("account"))' | sort; }
count_of() { applied | grep -c "$1" || true; }
dlq_count() { dlq_list dlq.eagleeye | wc -l; }
requests_with() { curl -sf "$SIM/_sim/requests" | python3 -c "
import json, sys
print(sum(1 for r in json.load(sys.stdin) if $1))"; }

# 1. 20 issuances, 5 earns, one unknown wallet.
{
  for i in $(seq 0 19); do rec "W$i" reward.issue CAMP-1; done
  for i in $(seq 0 4); do rec "W$i" points.earn PTS 10; done
  rec W-GHOST reward.issue CAMP-1
} > "$WORK/a.jsonl"
produce_ee < "$WORK/a.jsonl"
python3 -c '
lines = [f"token W{i} CAMP-1" for i in range(20)] + [f"earn W{i} PTS" for i in range(5)]
print("\n".join(sorted(lines)))' > "$WORK/want"
all_a() { [ "$(applied | wc -l)" -ge 25 ]; }
check "the 20 issuances and 5 earns arrived" wait_for 30 all_a
check "each once" diff <(applied) "$WORK/want"
balances() { curl -sf "$SIM/_sim/wallets" | python3 -c '
import json, sys
w = json.load(sys.stdin)
print(" ".join(str(w[f"W{i}"]["PTS"]) for i in range(6)))'; }
check "the earns moved the balances ($(balances))" test "$(balances)" = "10 10 10 10 10 0"
check "every call was authenticated (no 401)" test "$(requests_with 'r["status"] == 401')" -eq 0
dlq_has_ghost() { dlq_list dlq.eagleeye > "$WORK/dlq.jsonl"; grep -q W-GHOST "$WORK/dlq.jsonl"; }
check "the unknown wallet's record is in dlq.eagleeye" wait_for 20 dlq_has_ghost
check "with AIR's reason" python3 - "$WORK/dlq.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if "W-GHOST" in l]
assert len(recs) == 1, f"{len(recs)} dead letters for it"
h = recs[0]["headers"]
assert "WALLET_NOT_FOUND" in h["relay.error"] and h["relay.http_status"] == "404", h
PY
check "only it was dead-lettered" test "$(dlq_count)" -eq 1

# 2. The answer is lost after the token was issued (503): the retry
# carries the same transaction id and issues nothing more.
curl -sf -X POST "$SIM/_sim/faults" -d '[{"name":"lost","status":503,"after_apply":true,"match":"W-LOST"},
  {"name":"throttle","status":429,"retry_after":2,"match":"W-SLOW"}]' >/dev/null
{ rec W-LOST reward.issue CAMP-2; rec W-SLOW reward.issue CAMP-2; } | produce_ee
both() { [ "$(requests_with 'r["duplicate"]')" -ge 1 ] && [ "$(count_of 'W-SLOW')" -ge 1 ]; }
check "the lost answer was retried and the throttled call went through" wait_for 30 both
check "W-LOST got exactly one token" test "$(count_of 'token W-LOST CAMP-2')" -eq 1
check "its retry had the same transaction id and was answered as done" python3 - "$SIM" <<'PY'
import json, sys, urllib.request
rs = [r for r in json.load(urllib.request.urlopen(sys.argv[1] + "/_sim/requests"))
      if r["fault"] == "lost" or r["duplicate"]]
assert len(rs) == 2 and rs[0]["txn"] == rs[1]["txn"] and rs[0]["status"] == 503 \
    and rs[1]["status"] == 201 and rs[1]["duplicate"], rs
PY
check "W-SLOW got exactly one token" test "$(count_of 'token W-SLOW CAMP-2')" -eq 1
retry_gap() { curl -sf "$SIM/_sim/requests" | python3 -c '
import json, sys
rs = json.load(sys.stdin)
i = max(k for k, r in enumerate(rs) if r["fault"] == "throttle")
nxt = [r for r in rs[i + 1:] if r["txn"] == rs[i]["txn"]]
print(nxt[0]["at_ms"] - rs[i]["at_ms"] if nxt else -1)'; }
gap=$(retry_gap)
check "the 429's Retry-After: 2 was waited out (${gap} ms)" test "$gap" -ge 1900
check "neither was dead-lettered" test "$(dlq_count)" -eq 1

# 3. The client secret is rotated at AIR: 401s pause delivery, nothing is
# dead-lettered; the new one in the file resumes it without a restart.
curl -sf -X POST "$SIM/_sim/secret" -d '{"secret":"s2"}' >/dev/null
{ for k in 1 2 3; do rec "W-K$k" reward.issue CAMP-1; done; } | produce_ee
refused() { [ "$(requests_with 'r["status"] == 401')" -ge 1 ]; }
check "AIR refused the old secret (401)" wait_for 20 refused
sleep 2
check "nothing of them arrived" test "$(count_of 'W-K')" -eq 0
check "nothing was dead-lettered for the 401" test "$(dlq_count)" -eq 1
check "deliver is paused, saying why" eval 'grep "refused the connection" "$WORK/deliver.log" | grep -q 401'
echo s2 > "$WORK/secret"
healed() { [ "$(count_of 'token W-K')" -eq 3 ]; }
check "with the new secret in RELAY_EAGLEEYE_CLIENT_SECRET_FILE all three arrived" wait_for 30 healed
check "each once" test "$(applied | grep -c 'W-K')" -eq 3
check "the same deliver process healed (no restart)" kill -0 "$DELIVER_PID"
check "still only the unknown wallet in dlq.eagleeye" test "$(dlq_count)" -eq 1
done_checks
