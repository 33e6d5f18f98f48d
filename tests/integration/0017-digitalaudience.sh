#!/usr/bin/env bash
# Scenario 0017: digitalAudience. Outbound records on out.digitalaudience
# (match.upload: a DMP cookie id paired with a partner DMP's id;
# crm.upload: a CRM record's hashed identifiers) go through relay-deliver
# (deploy/config/deliver-digitalaudience.cfg) to the upload API simulator
# (tests/sim/digitalaudience_sim.py: the API we assume), on the real broker.
#  - every pair arrives exactly once, stored under its client and partner
#    with its seen_at; every CRM record arrives once with its hashes only;
#  - an upload the platform rejects (per item, in a 207) is in
#    dlq.digitalaudience with the reason, while the others of its request
#    are delivered; a CRM record whose email_sha256 holds a clear address
#    is dead-lettered by the adapter and never sent;
#  - a request answered 503 twice, then 200, arrives once; a 429 with
#    Retry-After: 2 is waited out; neither is dead-lettered;
#  - the token is changed at the platform: relay's is refused (401),
#    deliver pauses without dead-lettering anything, and resumes by itself
#    once RELAY_DIGITALAUDIENCE_API_TOKEN_FILE holds the new token;
#  - offsets are committed to the end.
source "$(dirname "$0")/lib.sh"
broker out.digitalaudience:3 dlq.digitalaudience:1

rm -f "$WORK/sim.port"
python3 "$SRC/tests/sim/digitalaudience_sim.py" --port 0 --port-file "$WORK/sim.port" \
  --token it-token --client acme --log "$WORK/sim.log" >/dev/null 2>&1 &
PIDS+=($!)
wait_for 10 test -s "$WORK/sim.port" || fail "simulator did not start"
SIM="http://127.0.0.1:$(cat "$WORK/sim.port")"

echo it-token > "$WORK/token"
RELAY_DIGITALAUDIENCE_API_TOKEN_FILE="$WORK/token" \
"$BIN/relay-deliver" -c deploy/config/deliver-digitalaudience.cfg \
  -X kafka.bootstrap.servers="$BS" -X digitalaudience.url="$SIM" \
  -X digitalaudience.client_id=acme \
  -X deliver.backoff_base_ms=200 -X deliver.backoff_max_ms=2000 \
  -X deliver.http_timeout_ms=3000 -X deliver.batch_wait_ms=100 \
  -X deliver.probe_base_ms=500 -X deliver.probe_max_ms=1000 "${ADMIN[@]}" \
  >>"$WORK/deliver.log" 2>&1 &
DELIVER_PID=$!
PIDS+=($DELIVER_PID)

# gen PREFIX COUNT [BAD] > jsonl: version 2 envelopes as relayctl produce
# takes them; every fourth a crm.upload (email and mobile hashed, and the
# clear email beside them, which must never be sent), the others
# match.upload pairs of the eight partner DMPs in turn. The uploads they
# must give go into $WORK/PREFIX.want (one JSON upload a line, by
# upload_id). BAD=1: the last record is a crm.upload whose email_sha256
# holds the clear address (no want line).
gen() {
  python3 - "$1" "$2" "${3:-0}" "$WORK" <<'PY'
import datetime, hashlib, json, sys, uuid
prefix, n, bad, work = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
partners = ["tealium", "relay42", "squeezely", "weborama", "mediarithmics",
            "snowplow", "piano", "permutive"]
want = open(f"{work}/{prefix}.want", "w")
pairs = 0
for i in range(n):
    eid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{i}"))
    at = 1764064860000 + i * 1001
    iso = datetime.datetime.fromtimestamp(at / 1000, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%S.") + f"{at % 1000:03d}Z"
    rec = {"event_id": eid, "occurred_at": at, "tenant": "acme", "source": "dmp",
           "connection": "acme-dmp-digitalaudience", "destination": "digitalaudience",
           "environment": "production", "event_name": None, "event_category": None,
           "attributes": {}, "user_attributes": {}}
    email = f"{prefix}-{i}@example.com"
    if bad and i == n - 1:
        rec.update(identity_type="customer_id", identity_value=f"{prefix}-crm-{i}",
                   identities={"customer_id": f"{prefix}-crm-{i}", "email_sha256": email},
                   operations=[{"op": "crm.upload", "target": f"{prefix}-crm-{i}",
                                "attributes": {}}])
        print(json.dumps(rec))
        continue
    if i % 4 == 3:
        h = {"email_sha256": hashlib.sha256(email.encode()).hexdigest(),
             "mobile_sha256": hashlib.sha256(f"+3161234{i:04d}".encode()).hexdigest()}
        rec.update(identity_type="customer_id", identity_value=f"{prefix}-crm-{i}",
                   identities={"customer_id": f"{prefix}-crm-{i}", "email": email, **h},
                   operations=[{"op": "crm.upload", "target": f"{prefix}-crm-{i}",
                                "attributes": {}}])
        up = {"type": "crm", "record_id": f"{prefix}-crm-{i}", "hashes": h}
    else:
        p = partners[pairs % len(partners)]
        pairs += 1
        ids = {"dmp_cookie_id": f"{prefix}-ck-{i}", "partner_user_id": f"{p}-{prefix}-{i}"}
        rec.update(identity_type="dmp_cookie_id", identity_value=ids["dmp_cookie_id"],
                   identities=ids,
                   operations=[{"op": "match.upload", "target": p, "attributes": {}}])
        up = {"type": "match", "partner": p, "dmp_id": ids["dmp_cookie_id"],
              "partner_id": ids["partner_user_id"], "seen_at": iso}
    up["upload_id"] = eid
    print(json.dumps(rec))
    want.write(json.dumps(up) + "\n")
PY
}
produce_da() { "$BIN/relayctl" -b "$BS" produce out.digitalaudience -k identity_value \
  2>>"$WORK/relayctl.log"; }
dlq() { dlq_list dlq.digitalaudience; }
dlq_count() { dlq | wc -l; }
requests_with() { # requests_with PY-EXPR (over r): how many requests match
  sim /_sim/requests | python3 -c "
import json, sys
print(sum(1 for r in json.load(sys.stdin) if $1))"; }
# received_of PREFIX [EXCEPT-ID]: "ok" when the simulator holds exactly the
# uploads of $WORK/PREFIX.want (less EXCEPT-ID), each once; else what is
# missing or extra.
received_of() {
  sim /_sim/received | python3 -c '
import collections, json, sys
prefix, want_file, skip = sys.argv[1], sys.argv[2], sys.argv[3:]
want = [json.loads(l) for l in open(want_file)]
ids = {u["upload_id"] for u in want}
key = lambda u: json.dumps(u, sort_keys=True)
got = collections.Counter(key(r["upload"]) for r in json.load(sys.stdin)
                          if r["upload"].get("upload_id") in ids)
w = collections.Counter(key(u) for u in want if u["upload_id"] not in skip)
missing, extra = w - got, got - w
print("ok" if not missing and not extra else
      f"missing {sum(missing.values())}: {list(missing)[:1]} extra {sum(extra.values())}: {list(extra)[:1]}")
' "$1" "$WORK/$1.want" "${@:2}"; }
all_received() { [ "$(received_of "$@")" = ok ]; }
committed_to_end() {
  local out; out=$("$SRC/tests/kafka/committed-offsets.sh" "$BS" relay-deliver-digitalaudience |
    awk '$1=="out.digitalaudience"')
  [ -n "$out" ] && echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }

# 1. Pairs and CRM records; one pair rejected by the platform, one CRM
# record with a clear e-mail under email_sha256.
N=40
gen "a$$" $N 1 > "$WORK/a.jsonl"
REJ=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[5])["upload_id"])' \
  "$WORK/a$$.want")
sim_fault "{\"name\":\"reject\",\"reject\":\"partner id unknown to the DMP\",\"match\":\"$REJ\",\"times\":-1}"
produce_da < "$WORK/a.jsonl"
check "all $((N - 2)) deliverable uploads arrived" wait_for 30 all_received "a$$" "$REJ"
check "each exactly as the adapter documents it, once ($(received_of "a$$" "$REJ"))" \
  test "$(received_of "a$$" "$REJ")" = ok
sim /_sim/matches > "$WORK/matches.json"
check "every pair is stored once under client acme and its partner, with its seen_at" \
  python3 - "$WORK/a$$.want" "$WORK/matches.json" "$REJ" <<'PY'
import json, sys
want = [json.loads(l) for l in open(sys.argv[1])]
m = json.load(open(sys.argv[2]))["acme"]
stored = {(p, e["dmp_id"], e["partner_id"]): e for p, es in m.items() for e in es}
pairs = [u for u in want if u["type"] == "match" and u["upload_id"] != sys.argv[3]]
assert len(pairs) >= 25 and len({u["partner"] for u in pairs}) == 8, len(pairs)
for u in pairs:
    e = stored[(u["partner"], u["dmp_id"], u["partner_id"])]
    assert e["times"] == 1 and e["seen_at"] == u["seen_at"], (u, e)
assert len(stored) == len(pairs), (len(stored), len(pairs))
PY
check "no clear e-mail address reached the platform" \
  eval '! sim /_sim/received | grep -q "@example.com"'
dlq > "$WORK/dlq.jsonl"
check "the rejected pair and the unhashed CRM record are in dlq.digitalaudience" \
  test "$(wc -l < "$WORK/dlq.jsonl")" -eq 2
check "each with its reason" python3 - "$WORK/dlq.jsonl" "$REJ" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
rej = [r for r in recs if sys.argv[2] in json.dumps(r)]
assert len(rej) == 1, f"{len(rej)} dead letters for the rejected pair"
h = rej[0]["headers"]
assert "digitalAudience rejected uploads[" in h["relay.error"], h
assert "partner id unknown to the DMP" in h["relay.error"], h
assert h["relay.original_topic"] == "out.digitalaudience", h
other = [r for r in recs if r is not rej[0]][0]["headers"]["relay.error"]
assert "email_sha256 is not a SHA-256" in other and "never leave the client" in other, other
assert "@" not in other, other
PY
check "the rejected pair's request held others, which were delivered" \
  test "$(requests_with 'r["rejected"] and r["uploads"] > 1')" -ge 1

# 2. A 503 twice, then success; a 429 with Retry-After: 2 waited out.
gen "t$$" 2 > "$WORK/t.jsonl"
R503=$(sed -n 1p "$WORK/t$$.want" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dmp_id"])')
R429=$(sed -n 2p "$WORK/t$$.want" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dmp_id"])')
sim_fault "[{\"name\":\"busy\",\"status\":503,\"match\":\"\\\"$R503\\\"\",\"times\":2},
            {\"name\":\"throttle\",\"status\":429,\"retry_after\":2,\"match\":\"\\\"$R429\\\"\",\"times\":1}]"
produce_da < "$WORK/t.jsonl"
check "the pairs answered 503 and 429 arrived, once each" wait_for 30 all_received "t$$"
check "the 503 was answered twice" test "$(requests_with 'r["fault"] == "busy"')" -eq 2
retry_gap() { sim /_sim/requests | python3 -c '
import json, sys
rs = json.load(sys.stdin)
i = max(k for k, r in enumerate(rs) if r["fault"] == "throttle")
print(rs[i + 1]["at_ms"] - rs[i]["at_ms"] if i + 1 < len(rs) else -1)'; }
gap=$(retry_gap)
check "the next request waited out Retry-After: 2 (${gap} ms)" test "$gap" -ge 1900
check "neither was dead-lettered" test "$(dlq_count)" -eq 2

# 3. The token is changed at the platform: 401s pause delivery, nothing
# is dead-lettered; the new token in the file resumes it without a restart.
curl -sf -X POST "$SIM/_sim/token" -d '{"token":"rotated-token"}' >/dev/null
gen "k$$" 6 > "$WORK/k.jsonl"
produce_da < "$WORK/k.jsonl"
refused() { [ "$(requests_with 'r["status"] == 401')" -ge 1 ]; }
check "the platform refused the old token (401)" wait_for 20 refused
sleep 2
check "nothing arrived with the old token" \
  eval 'received_of "k$$" | grep -q "^missing $(wc -l < "$WORK/k$$.want"): .* extra 0:"'
check "nothing was dead-lettered for the 401" test "$(dlq_count)" -eq 2
check "deliver is paused, saying why" eval 'grep "refused the connection" "$WORK/deliver.log" | grep -q 401'
echo rotated-token > "$WORK/token"
check "with the new token in RELAY_DIGITALAUDIENCE_API_TOKEN_FILE every upload arrived once" \
  wait_for 30 all_received "k$$"
check "the same deliver process healed (no restart)" kill -0 "$DELIVER_PID"
check "still only the two refused records in dlq.digitalaudience" test "$(dlq_count)" -eq 2
check "deliver committed out.digitalaudience to the end" wait_for 20 committed_to_end
done_checks
