#!/usr/bin/env bash
# Scenario 0010: out.braze → deliver → Braze /users/track (the simulator
# tests/sim/braze_sim.py), on the real Kafka broker.
#  - Outbound records of every shape (user attributes only, attributes and
#    an event, an event by email, a purchase, a user_alias) each arrive
#    exactly once as the objects the mapping in common/adapters/braze.c
#    documents;
#  - a record whose object Braze answers as a "minor error" (2xx with
#    errors[]) is in dlq.braze with the reason, while the others of its
#    request are delivered;
#  - a 429 with Retry-After is waited out; a 503 twice, then success,
#    arrives once; neither is dead-lettered;
#  - a key Braze no longer takes (401) pauses delivery, nothing is
#    dead-lettered, and once RELAY_BRAZE_API_KEY_FILE holds the new key
#    (re-read before each probe, no restart) everything arrives;
#  - offsets are committed to the end.
source "$(dirname "$0")/lib.sh"
broker out.braze:3 dlq.braze:1

rm -f "$WORK/sim.port"
python3 "$SRC/tests/sim/braze_sim.py" --port 0 --port-file "$WORK/sim.port" --key it-key \
  --log "$WORK/sim.log" >/dev/null 2>>"$WORK/sim.log" &
PIDS+=($!)
wait_for 10 test -s "$WORK/sim.port" || fail "simulator did not start"
SIM="http://127.0.0.1:$(cat "$WORK/sim.port")"

echo it-key > "$WORK/key"
RELAY_BRAZE_API_KEY_FILE="$WORK/key" \
"$BIN/relay-deliver" -c deploy/config/deliver-braze.cfg \
  -X kafka.bootstrap.servers="$BS" -X braze.url="$SIM" -X braze.alias_label=crm \
  -X deliver.backoff_base_ms=200 -X deliver.backoff_max_ms=2000 \
  -X deliver.http_timeout_ms=3000 -X deliver.batch_wait_ms=100 \
  -X deliver.probe_base_ms=500 -X deliver.probe_max_ms=1000 "${ADMIN[@]}" \
  >>"$WORK/deliver.log" 2>&1 &
DELIVER_PID=$!
PIDS+=($DELIVER_PID)

# gen PREFIX COUNT [BAD]: Outbound records on stdout (JSON lines), the
# objects the mapping promises for them in $WORK/PREFIX.want (one JSON
# {"array", "object"} a line) and their identity values in $WORK/PREFIX.ids.
# BAD=1 makes the first record an event-only one whose identity holds
# "bad": the object a fault refuses.
gen() {
  python3 - "$1" "$2" "${3:-0}" "$WORK" <<'PY'
import datetime, json, sys, uuid
prefix, count, bad, work = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
at = 1764064860123
iso = datetime.datetime.fromtimestamp(at / 1000, datetime.timezone.utc) \
    .strftime("%Y-%m-%dT%H:%M:%S.") + f"{at % 1000:03d}Z"
want, ids = open(f"{work}/{prefix}.want", "w"), open(f"{work}/{prefix}.ids", "w")
for i in range(count):
    kind = "bad" if bad and i == 0 else ("attrs", "event", "email", "purchase", "alias")[i % 5]
    who = f"{prefix}-{'bad-' if kind == 'bad' else ''}{i}"
    rec = {"event_id": str(uuid.uuid4()), "occurred_at": at, "tenant": "acme",
           "source": "antavo", "connection": "acme-antavo-braze", "destination": "braze",
           "environment": "production", "identity_type": "external_id",
           "identity_value": who, "event_name": None, "event_category": None,
           "attributes": {}, "user_attributes": {}}
    ident = {"external_id": who}
    if kind == "attrs":
        rec["user_attributes"] = {"tier": "gold", "n": i, "vip": True}
    elif kind in ("event", "bad"):
        rec.update(event_name="Coupon Issued",
                   attributes={"code": "W10", "points": i, "ratio": 0.5, "none": None})
        if kind == "event":
            rec["user_attributes"] = {"tier": "silver"}
    elif kind == "email":
        who = f"{who}@example.com"
        ident = {"email": who}
        rec.update(identity_type="email", identity_value=who, event_name="Visit",
                   event_category="custom_event", attributes={"page": "/home"})
    elif kind == "purchase":
        rec.update(event_name="Order", event_category="purchase",
                   attributes={"product_id": f"sku-{i}", "currency": "EUR", "price": 12.5,
                               "quantity": 2, "store": "Utrecht"})
    elif kind == "alias":
        ident = {"user_alias": {"alias_name": who, "alias_label": "crm"}}
        rec.update(identity_type="user_alias", event_name="Coupon Issued",
                   user_attributes={"city": "Utrecht"})
    print(json.dumps(rec))
    ids.write(who + "\n")
    if kind == "bad":
        continue
    if rec["user_attributes"]:
        want.write(json.dumps({"array": "attributes",
                               "object": {**ident, **rec["user_attributes"]}}) + "\n")
    if rec["event_category"] == "purchase":
        a = dict(rec["attributes"])
        obj = {**ident, "product_id": a.pop("product_id"), "currency": a.pop("currency"),
               "price": a.pop("price"), "quantity": a.pop("quantity", 1), "time": iso,
               "properties": a}
        want.write(json.dumps({"array": "purchases", "object": obj}) + "\n")
    elif rec["event_name"]:
        obj = {**ident, "name": rec["event_name"], "time": iso,
               "properties": rec["attributes"]}
        want.write(json.dumps({"array": "events", "object": obj}) + "\n")
PY
}
produce_braze() { # produce_braze < jsonl
  "$BIN/relayctl" -b "$BS" produce out.braze -k identity_value 2>>"$WORK/relayctl.log"; }

# received_of PREFIX: what the simulator accepted for the records of PREFIX,
# checked against $WORK/PREFIX.want: prints "ok", or what is missing/extra.
received_of() {
  curl -sf "$SIM/_sim/received" | python3 -c '
import collections, json, sys
prefix, want_file = sys.argv[1], sys.argv[2]
def who(o):
    ua = o.get("user_alias")
    return ua["alias_name"] if ua else o.get("external_id") or o.get("email") or ""
key = lambda r: json.dumps([r["array"], r["object"]], sort_keys=True)
got = collections.Counter(key(r) for r in json.load(sys.stdin)
                          if who(r["object"]).startswith(prefix + "-"))
want = collections.Counter(key(json.loads(l)) for l in open(want_file))
missing, extra = want - got, got - want
print("ok" if not missing and not extra else
      f"missing {len(missing)}: {list(missing)[:2]} extra {sum(extra.values())}: {list(extra)[:2]}")
' "$1" "$WORK/$1.want"; }
all_received() { [ "$(received_of "$1")" = ok ]; }
dlq_count() { dlq_list dlq.braze | wc -l; }
requests_with() { # requests_with PY-EXPR (over r): how many requests match
  curl -sf "$SIM/_sim/requests" | python3 -c "
import json, sys
print(sum(1 for r in json.load(sys.stdin) if $1))"; }
committed_to_end() {
  local out; out=$("$SRC/tests/kafka/committed-offsets.sh" "$BS" relay-deliver-braze | awk '$1=="out.braze"')
  [ -n "$out" ] && echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }

# 1. Every shape, one record's object refused as a minor error.
N=30
gen "a$$" $N 1 > "$WORK/a.jsonl"
BAD=$(head -1 "$WORK/a$$.ids")
sim_fault "{\"name\":\"minor\",\"object_error\":\"invalid test object\",\"match\":\"$BAD\",\"times\":-1}"
produce_braze < "$WORK/a.jsonl"
check "all $((N - 1)) deliverable records arrived" wait_for 30 all_received "a$$"
check "each as exactly the objects the mapping documents, once ($(received_of "a$$"))" \
  test "$(received_of "a$$")" = ok
dlq_has_bad() { dlq_list dlq.braze > "$WORK/dlq.jsonl"; grep -q "$BAD" "$WORK/dlq.jsonl"; }
check "the record Braze refused as a minor error is in dlq.braze" wait_for 20 dlq_has_bad
check "with the reason in its headers" python3 - "$WORK/dlq.jsonl" "$BAD" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if sys.argv[2] in l]
assert len(recs) == 1, f"{len(recs)} dead letters for it"
h = recs[0]["headers"]
assert "Braze refused events[" in h["relay.error"] and "invalid test object" in h["relay.error"], h
assert h["relay.original_topic"] == "out.braze", h
PY
check "and the others of its request were delivered (it was not alone in its request)" \
  test "$(requests_with 'r["errors"] and sum(r["counts"].values()) > 1')" -ge 1
check "only it was dead-lettered" test "$(dlq_count)" -eq 1

# 2. A 429 with Retry-After: 2 is waited out; a 503 twice, then success.
gen "t$$" 2 > "$WORK/t.jsonl"
R429=$(sed -n 1p "$WORK/t$$.ids")
R503=$(sed -n 2p "$WORK/t$$.ids")
sim_fault "[{\"name\":\"throttle\",\"status\":429,\"retry_after\":2,\"match\":\"$R429\",\"times\":1},
            {\"name\":\"busy\",\"status\":503,\"match\":\"$R503\",\"times\":2}]"
produce_braze < "$WORK/t.jsonl"
check "the records answered 429 and 503 arrived, once each" wait_for 30 all_received "t$$"
retry_gap() { curl -sf "$SIM/_sim/requests" | python3 -c '
import json, sys
rs = json.load(sys.stdin)
i = max(k for k, r in enumerate(rs) if r["fault"] == "throttle")
print(rs[i + 1]["at_ms"] - rs[i]["at_ms"] if i + 1 < len(rs) else -1)'; }
gap=$(retry_gap)
check "the next request waited out Retry-After: 2 (${gap} ms)" test "$gap" -ge 1900
check "the 503 was answered twice" test "$(requests_with 'r["fault"] == "busy"')" -eq 2
check "neither was dead-lettered" test "$(dlq_count)" -eq 1

# 3. The key is rotated at Braze: 401s pause delivery, nothing is
# dead-lettered; the new key in the file resumes it without a restart.
curl -sf -X POST "$SIM/_sim/key" -d '{"key":"rotated-key"}' >/dev/null
gen "k$$" 5 > "$WORK/k.jsonl"
produce_braze < "$WORK/k.jsonl"
refused() { [ "$(requests_with 'r["status"] == 401')" -ge 1 ]; }
check "Braze refused the old key (401)" wait_for 20 refused
sleep 3
nothing_of_k() { received_of "k$$" | grep -q "^missing $(wc -l < "$WORK/k$$.want"):.* extra 0:"; }
check "nothing arrived with the old key" nothing_of_k
check "nothing was dead-lettered for the 401 ($(dlq_count) in dlq.braze)" test "$(dlq_count)" -eq 1
check "deliver is paused, saying why" eval 'grep "refused the connection" "$WORK/deliver.log" | grep -q 401'
echo rotated-key > "$WORK/key"
check "with the new key in RELAY_BRAZE_API_KEY_FILE every record arrived once" \
  wait_for 30 all_received "k$$"
check "the same deliver process healed (no restart)" kill -0 "$DELIVER_PID"
check "still only the refused record in dlq.braze" test "$(dlq_count)" -eq 1
check "deliver committed out.braze to the end" wait_for 20 committed_to_end
done_checks
