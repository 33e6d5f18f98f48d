#!/usr/bin/env bash
# Scenario 0015: out.mappengage → deliver → Mapp Engage membership (the
# simulator tests/sim/mappengage_sim.py), on the real Kafka broker.
#  - envelope v2 records with membership.add / membership.remove of DMP
#    audiences arrive: the group of each new audience is cloned from the
#    default group once (found by name after that), every member added or
#    removed once, by subscribeByEmail / unsubscribeByEmail;
#  - a recipient Engage does not know (400) dead-letters only its record;
#  - a 503 twice, then success, arrives once, not dead-lettered;
#  - a password Engage no longer takes (401) pauses delivery, nothing is
#    dead-lettered, and RELAY_MAPPENGAGE_PASSWORD_FILE's new password
#    resumes the same process.
source "$(dirname "$0")/lib.sh"
broker out.mappengage:3 dlq.mappengage:1

RCPT=$(python3 -c 'print(",".join([f"p{i}@example.com" for i in range(20)] + ["x+tag@example.com"]))')
rm -f "$WORK/sim.port"
python3 "$SRC/tests/sim/mappengage_sim.py" --port 0 --port-file "$WORK/sim.port" \
  --user relay-api --password pw1 --domain engage.it.example --default-group 1000 \
  --recipients "$RCPT" --log "$WORK/sim.log" >/dev/null 2>>"$WORK/sim.log" &
PIDS+=($!)
wait_for 10 test -s "$WORK/sim.port" || fail "simulator did not start"
SIM="http://127.0.0.1:$(cat "$WORK/sim.port")"

echo pw1 > "$WORK/password"
RELAY_MAPPENGAGE_PASSWORD_FILE="$WORK/password" \
"$BIN/relay-deliver" -c deploy/config/deliver-mappengage.cfg \
  -X kafka.bootstrap.servers="$BS" -X mappengage.url="$SIM/api/rest/v19" \
  -X mappengage.host=engage.it.example \
  -X deliver.backoff_base_ms=200 -X deliver.backoff_max_ms=1000 \
  -X deliver.http_timeout_ms=3000 -X deliver.batch_wait_ms=100 \
  -X deliver.probe_base_ms=500 -X deliver.probe_max_ms=1000 "${ADMIN[@]}" \
  >>"$WORK/deliver.log" 2>&1 &
DELIVER_PID=$!
PIDS+=($DELIVER_PID)

# rec EMAIL OP AUDIENCE: one v2 envelope, JSON on one line.
rec() {
  python3 -c '
import json, sys, uuid
email, op, aud = sys.argv[1:4]
print(json.dumps({"event_id": str(uuid.uuid4()), "occurred_at": 1764064860123,
  "tenant": "acme", "source": "dmp", "connection": "acme-dmp-engage",
  "destination": "mappengage", "environment": "production", "identity_type": "email",
  "identity_value": email, "event_name": None, "event_category": None,
  "attributes": {}, "user_attributes": {}, "identities": {"email": email},
  "operations": [{"op": op, "target": aud, "attributes": {}}]}))' "$@"; }
produce_engage() { "$BIN/relayctl" -b "$BS" produce out.mappengage -k identity_value 2>>"$WORK/relayctl.log"; }
received() { curl -sf "$SIM/_sim/received"; }
# memberships PY-FILTER: "op email group" lines of the changes matching it
changes() { received | python3 -c '
import json, sys
for m in json.load(sys.stdin)["memberships"]:
    print(m["op"], m["email"], m["group"])' | sort; }
dlq_count() { dlq_list dlq.mappengage | wc -l; }
requests_with() { curl -sf "$SIM/_sim/requests" | python3 -c "
import json, sys
print(sum(1 for r in json.load(sys.stdin) if $1))"; }

# 1. Three new audiences, 15 adds, then 3 removes after their adds; one
# unknown recipient.
{
  for i in $(seq 0 14); do rec "p$i@example.com" membership.add "aud-$((i % 3 + 1))"; done
  rec "x+tag@example.com" membership.add "aud-1"
  rec "ghost@example.com" membership.add "aud-2"
} > "$WORK/a.jsonl"
produce_engage < "$WORK/a.jsonl"
{ for i in 0 1 2; do rec "p$i@example.com" membership.remove "aud-$((i + 1))"; done; } > "$WORK/r.jsonl"
python3 - "$WORK" > "$WORK/want" <<'PY'
import sys
lines = [f"add p{i}@example.com relay-aud-{i % 3 + 1}" for i in range(15)]
lines.append("add x+tag@example.com relay-aud-1")
print("\n".join(sorted(lines)))
PY
adds_arrived() { [ "$(changes | grep -c '^add')" -ge 16 ]; }
check "the 16 adds of known recipients arrived" wait_for 30 adds_arrived
check "each once, to its audience's group (+ kept in the email)" \
  diff <(changes | grep '^add') "$WORK/want"
produce_engage < "$WORK/r.jsonl"
removes_arrived() { [ "$(changes | grep -c '^remove')" -ge 3 ]; }
check "the 3 removes arrived" wait_for 20 removes_arrived
check "each once" diff <(changes | grep '^remove') \
  <(printf 'remove p0@example.com relay-aud-1\nremove p1@example.com relay-aud-2\nremove p2@example.com relay-aud-3\n')
created() { received | python3 -c '
import json, sys
print(" ".join(sorted(g["name"] + ":" + str(g["cloned_from"]) for g in json.load(sys.stdin)["groups_created"])))'; }
check "one group cloned per audience from the default group ($(created))" \
  test "$(created)" = "relay-aud-1:1000 relay-aud-2:1000 relay-aud-3:1000"
check "no clone was refused as a duplicate" test "$(requests_with 'r["path"].endswith("/group/clone") and r["status"] != 200')" -eq 0
dlq_has_ghost() { dlq_list dlq.mappengage > "$WORK/dlq.jsonl"; grep -q ghost "$WORK/dlq.jsonl"; }
check "the unknown recipient's record is in dlq.mappengage" wait_for 20 dlq_has_ghost
check "with Engage's reason" python3 - "$WORK/dlq.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if "ghost" in l]
assert len(recs) == 1, f"{len(recs)} dead letters for it"
assert "User with email=ghost@example.com does not exist" in recs[0]["headers"]["relay.error"], recs[0]["headers"]
PY
check "only it was dead-lettered" test "$(dlq_count)" -eq 1

# 2. A 503 twice, then success: arrives once, not dead-lettered.
curl -sf -X POST "$SIM/_sim/faults" -d '{"name":"busy","status":503,"match":"p15@","times":2}' >/dev/null
rec "p15@example.com" membership.add aud-1 | produce_engage
p15() { [ "$(changes | grep -c '^add p15@example.com relay-aud-1$')" -eq 1 ]; }
check "the record answered 503 twice arrived once" wait_for 20 p15
check "the 503 was answered twice" test "$(requests_with 'r["fault"] and r["status"] == 503')" -eq 2
check "it was not dead-lettered" test "$(dlq_count)" -eq 1

# 3. The password is changed at Engage: 401s pause delivery, nothing is
# dead-lettered; the new one in the file resumes it without a restart.
curl -sf -X POST "$SIM/_sim/password" -d '{"password":"pw2"}' >/dev/null
{ for i in 16 17 18; do rec "p$i@example.com" membership.add aud-4; done; } | produce_engage
refused() { [ "$(requests_with 'r["status"] == 401')" -ge 1 ]; }
check "Engage refused the old password (401)" wait_for 20 refused
sleep 2
check "nothing of them arrived" test "$(changes | grep -c 'relay-aud-4')" -eq 0
check "nothing was dead-lettered for the 401" test "$(dlq_count)" -eq 1
echo pw2 > "$WORK/password"
healed() { [ "$(changes | grep -c '^add p1[678]@example.com relay-aud-4$')" -eq 3 ]; }
check "with the new password in RELAY_MAPPENGAGE_PASSWORD_FILE all three arrived" wait_for 30 healed
check "aud-4's group was cloned once" test "$(created | tr ' ' '\n' | grep -c relay-aud-4)" -eq 1
check "the same deliver process healed (no restart)" kill -0 "$DELIVER_PID"
check "still only the unknown recipient in dlq.mappengage" test "$(dlq_count)" -eq 1
done_checks
