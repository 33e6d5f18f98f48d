#!/usr/bin/env bash
# Scenario 0005: schemas from a real schema registry, evolving while the
# workers run.
#  - a transform started before the registry is up retries with backoff
#    and starts once it answers (auto-registering its schemas);
#  - relayctl schemas register / check against the registry, and check's
#    exit status for an incompatible local schema;
#  - producers (Confluent's own Python serializer) switch from v1 to v2 of
#    loyalty.events mid-stream: transform and deliver, still on the v1
#    reader schema, deliver every record of both;
#  - an id the registry does not know, and the id of another subject, are
#    dead-lettered with the reason;
#  - SIGHUP with v2 in the schema directory and a mapping naming the new
#    field: from then on the field is mapped, for v2 records, while v1
#    records still arrive;
#  - out.mparticle decodes with Confluent's AvroDeserializer;
#  - the registry goes away: records of known ids keep flowing; records of
#    an id the workers never saw are not their fault, so they are neither
#    dead-lettered nor committed past while it is down (relay-transform's
#    decode says RELAY_RETRY and the pipeline keeps the record, backing
#    off); a reload gives up at once and keeps the running set; once a
#    registry answers again the records are handled: this fresh in-memory
#    one does not know the id, so they are dead-lettered as unknown.
source "$(dirname "$0")/lib.sh"
broker
start_sim

mkdir -p "$WORK/schemas" "$WORK/connections" "$WORK/bad" "$WORK/frames-known" "$WORK/frames-new"
cp schemas/*.avsc schemas/manifest.cfg "$WORK/schemas/"
cp schemas/*.avsc schemas/manifest.cfg "$WORK/bad/"
cp deploy/config/connections/acme-antavo-mparticle.cfg "$WORK/connections/"
V1=schemas/loyalty.events.avsc
V2=tests/integration/schemas/loyalty.events.v2.avsc
CF="python3 tests/integration/cf_avro.py"

REG_PORT=$(free_port)
REG=$(registry_url "$REG_PORT")
REGX=(-X schema_registry.url="$REG" -X schemas.manifest="$WORK/schemas/manifest.cfg")

# 1. The registry is not up yet: the transform waits for it.
start_transform "${REGX[@]}" -X transform.connections="$WORK/connections"
retrying() { grep -q "schema registry unavailable" "$WORK/transform.log"; }
check "transform retries while the registry is down" wait_for 20 retrying
check "and keeps running" kill -0 "$TRANSFORM_PID"
start_registry "$REG_PORT"
started() { grep -q '"consuming loyalty.events' "$WORK/transform.log"; }
check "transform starts once the registry answers" wait_for 60 started
start_deliver "${REGX[@]}"

# 2. relayctl against the registry.
ctl() { "$BIN/relayctl" -b "$BS" -r "$REG" "$@"; }
check "relayctl schemas register" ctl -s "$WORK/schemas/manifest.cfg" schemas register >"$WORK/register.out"
check "registers loyalty.events-value under BACKWARD" grep -q '^loyalty.events-value: id [0-9]*, version 1 (BACKWARD)$' "$WORK/register.out"
check "relayctl schemas check: all compatible" ctl -s "$WORK/schemas/manifest.cfg" schemas check >"$WORK/check.out"
check "and says so per subject" grep -q '^loyalty.events-value: compatible (BACKWARD)$' "$WORK/check.out"
python3 - "$WORK/bad/loyalty.events.avsc" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s["fields"].append({"name": "channel", "type": "string"})  # required, no default
json.dump(s, open(sys.argv[1], "w"))
EOF
rc=0; ctl -s "$WORK/bad/manifest.cfg" schemas check loyalty.events-value >"$WORK/bad.out" 2>&1 || rc=$?
check "an incompatible local schema fails the check (exit 1)" test "$rc" -eq 1
check "naming the subject" grep -q '^loyalty.events-value: INCOMPATIBLE (BACKWARD)' "$WORK/bad.out"

# 3. Producers switch from v1 to v2 while transform reads with v1.
gen() { python3 tests/integration/gen_events.py --count "$1" --prefix "$2" --ids "$WORK/$2.ids" "${@:3}" > "$WORK/$2.jsonl"; }
gen 40 a; gen 40 b --store; gen 40 c --store; gen 20 d
id_v1=$($CF produce "$BS" "$REG" loyalty.events "$V1" < "$WORK/a.jsonl")
id_v2=$($CF produce "$BS" "$REG" loyalty.events "$V2" < "$WORK/b.jsonl")
check "v2 got its own schema id ($id_v1 → $id_v2)" test "$id_v1" != "$id_v2"
all_in() { [ "$(count_received "$WORK/$1.ids")" -eq "$(wc -l < "$WORK/$1.ids")" ]; }
check "every v1 record before the switch arrives" wait_for 60 all_in a
check "every v2 record, read with the v1 schema, arrives" wait_for 60 all_in b

# 4. The mapping names the new field: reload with v2 as the local schema.
cp "$V2" "$WORK/schemas/loyalty.events.avsc"
sed -i 's|{ name = "transaction_id"; from = "transaction_id"; required = true; },|&\n        { name = "store_id"; from = "store.id"; },|' \
  "$WORK/connections/acme-antavo-mparticle.cfg"
grep -q 'store.id' "$WORK/connections/acme-antavo-mparticle.cfg" || fail "mapping edit did not apply"
kill -HUP "$TRANSFORM_PID"
reloaded() { grep -q '"reloaded: 1 connection' "$WORK/transform.log"; }
check "SIGHUP reloads schemas and connections" wait_for 30 reloaded
$CF produce "$BS" "$REG" loyalty.events "$V2" < "$WORK/c.jsonl" >/dev/null
$CF produce "$BS" "$REG" loyalty.events "$V1" < "$WORK/d.jsonl" >/dev/null
check "every v2 record after the reload arrives" wait_for 60 all_in c
check "every v1 record after the reload arrives" wait_for 60 all_in d

sim /_sim/received > "$WORK/received.json"
store_ids() { # store_ids PREFIX: "event_id store_id|-" of its checkouts
  python3 - "$WORK/$1.jsonl" "$WORK/received.json" <<'EOF'
import json, sys
events = {e["event_id"]: e for e in map(json.loads, open(sys.argv[1]))}
for b in json.load(open(sys.argv[2])):
    batch = b["batch"]
    e = events.get(batch["source_request_id"])
    if e and e["event_type"] == "checkout":
        attrs = batch["events"][0]["data"]["custom_attributes"]
        want = (e.get("store") or {}).get("id", "-")
        print(e["event_id"], attrs.get("store_id", "-"), want)
EOF
}
mapped_as_expected() { # PREFIX MODE: MODE new = store_id as in the record, old = never
  local n=0 bad=0
  while read -r _ got want; do
    n=$((n + 1))
    if [ "$2" = new ] && [ "$got" != "$want" ]; then bad=$((bad + 1)); fi
    if [ "$2" = old ] && [ "$got" != "-" ]; then bad=$((bad + 1)); fi
  done < <(store_ids "$1")
  [ "$n" -gt 0 ] && [ "$bad" -eq 0 ]
}
check "before the reload, store.id is not mapped" mapped_as_expected b old
check "after the reload, v2 checkouts carry store_id" mapped_as_expected c new
check "and some of them really had a store" grep -q '"store_id": "S' "$WORK/received.json"
check "v1 checkouts after the reload have none" mapped_as_expected d old
check "nothing went to dlq.transform" test "$(dlq_list dlq.transform | wc -l)" -eq 0

# Bad ids with a registry: one it does not know, one of another subject.
python3 tests/integration/make_bad_records.py "$WORK" "$(python3 -c 'import uuid; print(uuid.uuid4())')"
out_id=$(curl -sf "$REG/subjects/out.mparticle-value/versions/latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
python3 -c 'import struct, sys; b = open(sys.argv[1], "rb").read()[5:]; open(sys.argv[2], "wb").write(b"\0" + struct.pack(">I", int(sys.argv[3])) + b)' \
  "$WORK/wrong-subject.bin" "$WORK/registry-other-subject.bin" "$out_id"
kcat -P -b "$BS" -t loyalty.events -k reg-unknown "$WORK/unknown-id.bin"
kcat -P -b "$BS" -t loyalty.events -k reg-other "$WORK/registry-other-subject.bin"
dlq_has() { dlq_list dlq.transform | python3 tests/integration/dlq_tsv.py | awk -F'\t' -v k="$1" '$1==k' | grep -qF "$2"; }
check "an id the registry does not know → dlq.transform" wait_for 30 dlq_has reg-unknown "unknown schema id 999 (the registry has no such id)"
check "the registry's id of another subject → dlq.transform" wait_for 30 dlq_has reg-other "schema id $out_id does not belong to subject 'loyalty.events-value'"

# 5. An independent decoder reads out.mparticle via the registry.
$CF consume "$BS" "$REG" out.mparticle 140 > "$WORK/out.decoded"
one_id() { python3 -c 'import json,sys; print(" ".join(sorted({str(json.loads(l)["schema_id"]) for l in open(sys.argv[1])})))' "$WORK/out.decoded"; }
check "AvroDeserializer decodes all 140 out.mparticle records, written with id $out_id" test "$(one_id)" = "$out_id"
# relayctl reads loyalty.events through the registry: v1 and v2 records.
ctl consume loyalty.events > "$WORK/in.decoded" 2>>"$WORK/relayctl.log"
with_store() { python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if "store" in json.loads(l).get("value", {})))' "$WORK/in.decoded"; }
check "relayctl -r decodes all 140 input records" test "$(grep -c '"value":{' "$WORK/in.decoded")" -eq 140
check "each with its writer's fields: 80 with store, via id $id_v2" test "$(with_store)" -eq 80

# 6. The registry goes away.
gen 20 e --store; gen 5 f --store
python3 - "$V2" "$WORK/v3.avsc" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
json.dump(s, open(sys.argv[2], "w"))
EOF
$CF frame "$REG" loyalty.events "$V2" "$WORK/frames-known" < "$WORK/e.jsonl" >/dev/null
id_v3=$($CF frame "$REG" loyalty.events "$WORK/v3.avsc" "$WORK/frames-new" < "$WORK/f.jsonl" | sort -u)
stop_registry
TGROUP=relay-transform-loyalty.events
committed_to_end() { # GROUP TOPIC
  local out; out=$("$SRC/tests/kafka/committed-offsets.sh" "$BS" "$1" | awk -v t="$2" '$1==t')
  [ -n "$out" ] && echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }
committed() { # PARTITION: "COMMITTED LOG_END" of the transform on loyalty.events
  "$SRC/tests/kafka/committed-offsets.sh" "$BS" "$TGROUP" | awk -v p="$1" '$1=="loyalty.events" && $2==p {print $3, $4}'; }
kcat -P -b "$BS" -t loyalty.events "$WORK"/frames-known/*.bin
check "with the registry down, records of known ids still arrive" wait_for 60 all_in e
check "and the transform commits them" wait_for 30 committed_to_end "$TGROUP" loyalty.events
read -r p0 _ < <(committed 0) || true
check "partition 0 has a committed offset ($p0)" test -n "$p0"
# All five on one partition, so "not committed past" is one offset.
kcat -P -b "$BS" -t loyalty.events -p 0 "$WORK"/frames-new/*.bin
in_log() { read -r _ end < <(committed 0) || true; [ "${end:-x}" = $((p0 + 5)) ]; }
check "the 5 records of the new id ($id_v3) are in partition 0" wait_for 10 in_log
new_dead() { dlq_list dlq.transform | grep -cE "schema id $id_v3([^0-9]|\$)" || true; }
held=1
for _ in $(seq 15); do # 15 s of outage, looked at every second
  read -r c _ < <(committed 0) || true
  if [ "${c:-x}" != "$p0" ] || [ "$(new_dead)" -ne 0 ]; then held=0; break; fi
  sleep 1
done
check "while the registry is down they are not dead-lettered and the commit stays at $p0" test "$held" -eq 1
check "transform keeps running meanwhile" kill -0 "$TRANSFORM_PID"
kill -HUP "$TRANSFORM_PID"
reload_failed() { grep -q '"reload failed, keeping the running set: subject .loyalty.events-value.: registry POST' "$WORK/transform.log"; }
check "a reload while the registry is down gives up at once, keeping the running set" wait_for 20 reload_failed
read -r c _ < <(committed 0) || true
check "still nothing dead-lettered or committed past after the reload" test "${c:-x}" = "$p0" -a "$(new_dead)" -eq 0

# A registry again (fresh and empty: it does not know $id_v3).
start_registry "$REG_PORT"
unknown_dead() { [ "$(dlq_list dlq.transform | grep -c "unknown schema id $id_v3 (the registry has no such id)")" -eq 5 ]; }
check "once it answers, the 5 records are handled: dead-lettered as unknown to it" wait_for 90 unknown_dead
check "none of them was dead-lettered as 'registry unavailable'" test "$(dlq_list dlq.transform | grep -c "schema registry unavailable" || true)" -eq 0
check "and the transform commits past them" wait_for 30 committed_to_end "$TGROUP" loyalty.events
check "transform is still running" kill -0 "$TRANSFORM_PID"
check "deliver is still running" kill -0 "$DELIVER_PID"

kill -TERM "$TRANSFORM_PID" "$DELIVER_PID"
rc=0; wait "$TRANSFORM_PID" || rc=$?
check "transform exits 0 on SIGTERM" test "$rc" -eq 0
rc=0; wait "$DELIVER_PID" || rc=$?
check "deliver exits 0 on SIGTERM" test "$rc" -eq 0
done_checks
