#!/usr/bin/env bash
# Scenario 0002: bad input gets a clear error and never stops a worker.
#  - records on loyalty.events that are not Avro, carry an unknown schema
#    id, a schema id of another subject, are truncated or larger than the
#    configured limit go to dlq.transform with the reason, and are counted;
#    a record written by another Avro implementation (fastavro) after them
#    is still delivered;
#  - a record that cannot be mapped (template field missing) goes to
#    dlq.transform naming the connection, event and field;
#  - garbage on out.mparticle goes to dlq.mparticle at stage "decode";
#  - a config file with a typo, a secret in a config file, or a missing
#    secret stop a worker at start with an error naming file, line and key.
source "$(dirname "$0")/lib.sh"
broker
start_sim
start_transform -X transform.max_record_bytes=4096
start_deliver

FOREIGN=$(python3 -c 'import uuid; print(uuid.uuid4())')
python3 tests/integration/make_bad_records.py "$WORK" "$FOREIGN"
UNMAPPABLE=$(python3 -c 'import uuid; print(uuid.uuid4())')
for f in not-avro unknown-id wrong-subject truncated empty-body too-large; do
  kcat -P -b "$BS" -t loyalty.events -k "bad-$f" "$WORK/$f.bin"
done
printf '{"event_id":"%s","occurred_at":1764000000000,"tenant":"acme","source":"antavo","event_type":"coupon_issued","identities":{"customer_id":"nocode-1"},"data":{}}\n' "$UNMAPPABLE" \
  | produce loyalty.events
kcat -P -b "$BS" -t loyalty.events -k foreign "$WORK/good-foreign.bin"
printf 'garbage on the outbound topic' | kcat -P -b "$BS" -t out.mparticle -k $'bad-out\xff'  # key not UTF-8

foreign_delivered() { received_ids | grep -q "$FOREIGN"; }
check "a fastavro-written event after the bad ones is delivered" wait_for 60 foreign_delivered
check "the transform worker is still running" kill -0 "$TRANSFORM_PID"
check "the deliver worker is still running" kill -0 "$DELIVER_PID"

dlq_reasons() { dlq_list "$1" | python3 tests/integration/dlq_tsv.py; } # TOPIC
has_reason() { # TOPIC KEY STAGE TEXT
  dlq_reasons "$1" | awk -F'\t' -v k="$2" -v s="$3" '$1==k && $2==s' | grep -qF "$4"; }
all_bad_dead() { has_reason dlq.transform bad-empty-body decode "invalid Avro data"; }
wait_for 30 all_bad_dead || true
check "not Avro → dlq.transform: wrong magic byte" has_reason dlq.transform bad-not-avro decode "wrong magic byte 0x74"
check "unknown schema id → dlq.transform" has_reason dlq.transform bad-unknown-id decode "unknown schema id 999"
check "schema id of another subject → dlq.transform" has_reason dlq.transform bad-wrong-subject decode "schema id 100 does not belong to subject 'loyalty.events-value'"
check "truncated record → dlq.transform" has_reason dlq.transform bad-truncated decode "invalid Avro data"
check "header without body → dlq.transform" has_reason dlq.transform bad-empty-body decode "invalid Avro data"
check "record over transform.max_record_bytes → dlq.transform" has_reason dlq.transform bad-too-large decode "exceeds the limit of 4096"
unmappable_dead() { dlq_list dlq.transform | grep "$UNMAPPABLE" | grep -q "the template names field data.coupon_code, which the record lacks"; }
check "unmappable record → dlq.transform naming connection, event and field" wait_for 30 unmappable_dead
out_dead() { has_reason dlq.mparticle $'bad-out\xef\xbf\xbd' decode "wrong magic byte"; }
check "garbage on out.mparticle → dlq.mparticle at stage decode (dlq list shows its non-UTF-8 key with U+FFFD)" wait_for 30 out_dead
check "the unmappable event never reached the simulator" test "$(received_ids | grep -c "$UNMAPPABLE" || true)" -eq 0
kill -TERM "$TRANSFORM_PID"
rc=0; wait "$TRANSFORM_PID" || rc=$?
check "transform stops cleanly on SIGTERM" test "$rc" -eq 0
check "and counts 6 undecodable and 1 unmappable record" \
  grep -qF "6 undecodable, 1 unmappable" "$WORK/transform.log"

# Config errors stop a worker at start, naming file, line and key.
cp deploy/config/transform-loyalty.cfg "$WORK/typo.cfg"
sed -i 's/batch_size = /batch_sise = /' "$WORK/typo.cfg"
line=$(grep -n batch_sise "$WORK/typo.cfg" | cut -d: -f1)
rc=0; "$BIN/relay-transform" -c "$WORK/typo.cfg" 2>"$WORK/typo.err" >/dev/null || rc=$?
check "a typo in a config key exits with status 2" test "$rc" -eq 2
check "and names file, line and key, with a suggestion" \
  grep -qF "typo.cfg:$line: unknown key 'transform.batch_sise' (did you mean 'transform.batch_size'?)" "$WORK/typo.err"

printf 'mparticle = { api_secret = "oops"; };\n' >> "$WORK/secret.cfg"
rc=0; "$BIN/relay-deliver" -c "$WORK/secret.cfg" -X admin.port=0 -X deliver.platform=mparticle 2>"$WORK/secret.err" >/dev/null || rc=$?
check "a secret in a config file is refused" \
  grep -qF "secret.cfg:1: key 'mparticle.api_secret' is a secret and must come from the environment" "$WORK/secret.err"
rc=0; env -u RELAY_MPARTICLE_API_KEY -u RELAY_MPARTICLE_API_SECRET "$BIN/relay-deliver" \
  -c deploy/config/deliver-mparticle.cfg -X admin.port=0 -X kafka.bootstrap.servers="$BS" 2>"$WORK/nosecret.err" >/dev/null || rc=$?
check "a missing API key stops deliver with a clear error" \
  grep -qF "missing required key 'mparticle.api_key' (input feed API key): set RELAY_MPARTICLE_API_KEY or RELAY_MPARTICLE_API_KEY_FILE" "$WORK/nosecret.err"
check "and a non-zero status" test "$rc" -ne 0
rc=0; "$BIN/relay-transform" -c deploy/config/transform-loyalty.cfg -X admin.port=0 -X kafka.no.such.property=1 2>"$WORK/kprop.err" >/dev/null || rc=$?
check "an unknown librdkafka property is named with its origin" grep -qF -- "-X: kafka key 'no.such.property'" "$WORK/kprop.err"
done_checks
