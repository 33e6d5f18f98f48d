#!/usr/bin/env bash
# Scenario 0001: Antavo loyalty events travel loyalty.events → transform →
# out.mparticle → deliver → mParticle, on the real Kafka broker.
#  - N events all arrive, each batch exactly as the mapping table says;
#  - an event the platform refuses (400) lands in dlq.mparticle with headers
#    naming the error, status, attempts and original topic/partition/offset,
#    while the others of its request are delivered;
#  - an event answered 503 three times, then 202, arrives exactly once;
#  - a 429 with Retry-After is waited out; a timed-out request is retried;
#    an event answered 503 every time while the platform accepts the others
#    is dead-lettered after 5 attempts;
#  - out.mparticle is valid Avro in the Confluent framing (kcat + fastavro);
#  - offsets are committed up to the end once everything is handled;
#  - relayctl dlq replay sends dead letters back once the platform is fine,
#    counts their delivery reports, and exits 1 naming each record it could
#    not replay (a crafted topic the broker refuses, a non-dead-letter);
#    relay.connection survives a replay;
#  - kill -9 of the deliver worker mid-run, then a restart, loses nothing.
source "$(dirname "$0")/lib.sh"
broker
start_sim

N=60
python3 tests/integration/gen_events.py --count $N --prefix "w1-$$" --ids "$WORK/w1.ids" > "$WORK/w1.jsonl"
BAD=$(sed -n 7p "$WORK/w1.ids")
BUSY=$(sed -n 12p "$WORK/w1.ids")
sim_fault "[{\"name\":\"refuse\",\"status\":400,\"match\":\"$BAD\",\"times\":-1},
            {\"name\":\"busy\",\"status\":503,\"match\":\"$BUSY\",\"times\":3}]"
start_transform
start_deliver
produce loyalty.events < "$WORK/w1.jsonl"

grep -v "$BAD" "$WORK/w1.ids" > "$WORK/w1.good"
all_good_received() { [ "$(count_received "$WORK/w1.good")" -eq $((N - 1)) ]; }
check "all $((N - 1)) deliverable events reached the simulator" wait_for 90 all_good_received

sim /_sim/received > "$WORK/received.json"
check "every batch has the body the mapping table asks for" \
  python3 tests/integration/verify_mparticle.py "$WORK/w1.jsonl" "$WORK/received.json"
check "the refused event was not recorded by the simulator" \
  test "$(received_ids | grep -c "$BAD" || true)" -eq 0
check "no event was delivered twice" test -z "$(received_ids | sort | uniq -d)"
busy_faults() { sim /_sim/requests | python3 -c 'import json,sys; print(sum(r["fault"]=="busy" for r in json.load(sys.stdin)))'; }
check "the 503 event was answered 503 three times" test "$(busy_faults)" -eq 3
check "the 503 event then arrived exactly once" test "$(received_ids | grep -c "$BUSY")" -eq 1

dlq_has_bad() { dlq_list dlq.mparticle > "$WORK/dlq.jsonl"; grep -q "$BAD" "$WORK/dlq.jsonl"; }
check "the refused event is in dlq.mparticle" wait_for 30 dlq_has_bad
check "its DLQ headers name error, status, attempts and origin" python3 - "$WORK/dlq.jsonl" "$BAD" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if sys.argv[2] in l]
assert len(recs) == 1, f"{len(recs)} DLQ records for the event"
h, v = recs[0]["headers"], recs[0]["value"]
assert v["event_id"] == sys.argv[2], v
assert h["relay.stage"] == "deliver", h
assert h["relay.http_status"] == "400", h
assert h["relay.attempts"] == "1", h
assert "HTTP 400" in h["relay.error"] and "refuse" in h["relay.error"], h
assert h["relay.original_topic"] == "out.mparticle", h
assert h["relay.original_partition"].isdigit() and h["relay.original_offset"].isdigit(), h
assert h["relay.worker"] == "deliver-mparticle", h
assert int(h["relay.failed_at"]) > 1700000000000, h
PY

kcat -C -b "$BS" -t out.mparticle -e -q -f '%R%s' > "$WORK/out.raw"
python3 tests/integration/check_avro.py schemas/manifest.cfg out.mparticle-value < "$WORK/out.raw" > "$WORK/out.decoded" \
  || fail "out.mparticle does not decode with fastavro"
decoded_has_all() { python3 - "$WORK/out.decoded" "$WORK/w1.ids" <<'PY'
import json, sys
seen = {json.loads(l)["event_id"]: json.loads(l) for l in open(sys.argv[1])}
ids = [l.strip() for l in open(sys.argv[2]) if l.strip()]
missing = [i for i in ids if i not in seen]
assert not missing, f"{len(missing)} events missing from out.mparticle"
r = seen[ids[1]]
assert r["destination"] == "mparticle" and r["connection"] == "acme-antavo-mparticle", r
assert r["environment"] == "development" and r["identity_type"] in ("customer_id", "email"), r
PY
}
check "out.mparticle is Confluent-framed Avro that fastavro decodes, all $N events" decoded_has_all

committed_to_end() { # GROUP TOPIC
  local out; out=$("$SRC/tests/kafka/committed-offsets.sh" "$BS" "$1" | awk -v t="$2" '$1==t')
  [ -n "$out" ] && echo "$out" | awk '$3 != $4 {bad=1} END {exit bad}'; }
check "transform committed loyalty.events to the end" wait_for 30 committed_to_end relay-transform-loyalty.events loyalty.events
check "deliver committed out.mparticle to the end" wait_for 30 committed_to_end relay-deliver-mparticle out.mparticle

# One event at a time, so that each fault meets only its own request.
make_event() { # NAME → writes $WORK/NAME.jsonl with one event, prints its id
  python3 tests/integration/gen_events.py --count 1 --prefix "$1-$$" --ids "$WORK/$1.ids" > "$WORK/$1.jsonl"
  cat "$WORK/$1.ids"; }
received_once() { received_ids | grep -q "$1"; }

R429=$(make_event r429)
sim_fault "{\"name\":\"throttle\",\"status\":429,\"retry_after\":2,\"match\":\"$R429\",\"times\":1}"
produce loyalty.events < "$WORK/r429.jsonl"
check "an event answered 429 is retried and delivered" wait_for 30 received_once "$R429"
retry_gap() { sim /_sim/requests | python3 -c '
import json, sys
rs = json.load(sys.stdin)
i = max(k for k, r in enumerate(rs) if r["fault"] == "throttle")
print(rs[i + 1]["at_ms"] - rs[i]["at_ms"])'; }
gap=$(retry_gap)
check "the retry waited out Retry-After: 2 (${gap} ms; backoff alone would be ~200 ms)" test "$gap" -ge 1900

RTO=$(make_event rto)
sim_fault "{\"name\":\"hang\",\"delay_ms\":4500,\"match\":\"$RTO\",\"times\":1}"
produce loyalty.events < "$WORK/rto.jsonl"
check "an event whose request timed out is retried and delivered" wait_for 40 received_once "$RTO"
check "the deliver log names the timeout" grep -q "Timeout was reached\|timed out" "$WORK/deliver.log"

# A record the platform answers 503 every time while it accepts the
# records around it: its fault, found by splitting, dead-lettered once its
# attempts are used. (Alone, with nothing else accepted, it would look like
# an outage: the platform would be paused and probed, nothing
# dead-lettered; tests/fault/ covers that.) Deliver is stopped while the
# five are written, so that they are one batch when it starts again: with
# one batch in flight it waits deliver.batch_wait_ms for them (with more,
# natural batching sends what the consumer hands over first, and the
# five, of three partitions, can come a few at a time).
kill "$DELIVER_PID"; wait "$DELIVER_PID" 2>/dev/null || true
python3 tests/integration/gen_events.py --count 5 --prefix "p503-$$" --ids "$WORK/p503.ids" > "$WORK/p503.jsonl"
R503=$(sed -n 3p "$WORK/p503.ids")
sim_fault "{\"name\":\"down\",\"status\":503,\"match\":\"$R503\",\"times\":-1}"
produce loyalty.events < "$WORK/p503.jsonl"
check "transform wrote the five to out.mparticle" wait_for 30 committed_to_end relay-transform-loyalty.events loyalty.events
start_deliver -X worker.batches_in_flight=1
grep -v "$R503" "$WORK/p503.ids" > "$WORK/p503.good"
p503_good() { [ "$(count_received "$WORK/p503.good")" -eq 4 ]; }
check "the four others of its batch are delivered" wait_for 60 p503_good
dlq_has_r503() { dlq_list dlq.mparticle | grep "$R503" > "$WORK/r503.dlq"; }
check "the event answered 503 every time is dead-lettered" wait_for 60 dlq_has_r503
check "after 5 attempts, with status and reason in its headers" python3 - "$WORK/r503.dlq" <<'PY'
import json, sys
h = json.loads(open(sys.argv[1]).readline())["headers"]
assert h["relay.attempts"] == "5", h
assert h["relay.http_status"] == "503", h
assert h["relay.error"].startswith("gave up after 5 attempts while mparticle accepted other records: HTTP 503"), h
PY
down_count() { sim /_sim/requests | python3 -c 'import json,sys; print(sum(r["fault"]=="down" for r in json.load(sys.stdin)))'; }
check "the simulator saw at least 5 attempts with it ($(down_count))" test "$(down_count)" -ge 5
curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null

# The platform is healthy again: replay the dead letters.
dlq_list dlq.mparticle > "$WORK/dlq-before-replay.jsonl"
NDLQ=$(wc -l < "$WORK/dlq-before-replay.jsonl")
check "relayctl dlq replay exits 0 when every record is acknowledged" \
  "$BIN/relayctl" -b "$BS" dlq replay dlq.mparticle 2>"$WORK/replay.err"
cat "$WORK/replay.err" >> "$WORK/relayctl.log"
check "its summary counts one delivery report per dead letter ($NDLQ)" \
  grep -qx "relayctl: replayed $NDLQ record(s) from dlq.mparticle, 0 failed" "$WORK/replay.err"
check "after relayctl dlq replay, the refused event arrives" wait_for 30 received_once "$BAD"
check "and so does the one that met five 503s" wait_for 30 received_once "$R503"
replay_marked() { "$BIN/relayctl" -b "$BS" consume out.mparticle 2>/dev/null |
  grep "$BAD" | grep -q '"relay.replayed_from":"dlq.mparticle/0/'; }
check "the replayed record is marked relay.replayed_from on out.mparticle" replay_marked

# A replay that cannot deliver everything says which records failed and
# why, and exits 1 (an operator must not purge them). Crafted dead letters
# on their own topics: one to a writable topic (carrying relay.connection,
# which must survive; relay.error must not), one to a topic name the
# broker refuses, one that is no relay dead letter at all.
"$SRC/tests/kafka/create-topics.sh" "$BS" dlq.replaytest:1 replay.target:1 >/dev/null
printf 'v-ok' | kcat -P -b "$BS" -t dlq.replaytest -k k-ok -H relay.original_topic=replay.target \
  -H relay.connection=c1 -H relay.error=boom -H trace=t1
printf 'v-bad' | kcat -P -b "$BS" -t dlq.replaytest -k k-bad -H 'relay.original_topic=no such topic!' \
  -H relay.error=boom
printf 'v-none' | kcat -P -b "$BS" -t dlq.replaytest -k k-none
set +e
"$BIN/relayctl" -b "$BS" dlq replay dlq.replaytest 2>"$WORK/replay-fail.err"
REPLAY_RC=$?
set -e
cat "$WORK/replay-fail.err" >> "$WORK/relayctl.log"
check "a replay with failures exits 1" test "$REPLAY_RC" -eq 1
check "it names the record refused by the broker, with the reason" \
  grep -q "^relayctl: FAILED dlq.replaytest\[0\]@1 to no such topic!: Broker: Invalid topic" "$WORK/replay-fail.err"
check "it names the record that is no dead letter" \
  grep -q "^relayctl: FAILED dlq.replaytest\[0\]@2: no relay.original_topic header" "$WORK/replay-fail.err"
check "and counts 1 replayed, 2 failed" \
  grep -qx "relayctl: replayed 1 record(s) from dlq.replaytest, 2 failed" "$WORK/replay-fail.err"
kcat -C -b "$BS" -t replay.target -e -q -f '%k %h\n' > "$WORK/replay-target.txt"
check "the replayed record keeps relay.connection and its own headers, not relay.error" \
  grep -qx "k-ok relay.connection=c1,trace=t1,relay.replayed_from=dlq.replaytest/0/0" "$WORK/replay-target.txt"

# Wave 2: kill -9 the deliver worker while requests are in flight.
M=300
python3 tests/integration/gen_events.py --count $M --prefix "w2-$$" --ids "$WORK/w2.ids" > "$WORK/w2.jsonl"
sim_fault '{"name":"slow","delay_ms":300,"times":8}'
kill -9 "$DELIVER_PID"; wait "$DELIVER_PID" 2>/dev/null || true
start_deliver -X mparticle.max_batches_per_request=20
produce loyalty.events < "$WORK/w2.jsonl"
some_w2() { [ "$(count_received "$WORK/w2.ids")" -ge 40 ]; }
wait_for 60 some_w2 || fail "wave 2 never started arriving"
kill -9 "$DELIVER_PID"; wait "$DELIVER_PID" 2>/dev/null || true
before=$(count_received "$WORK/w2.ids")
ok "deliver killed with -9 after $before of $M wave-2 events arrived"
start_deliver -X mparticle.max_batches_per_request=20
all_w2() { [ "$(count_received "$WORK/w2.ids")" -eq $M ]; }
check "after the restart all $M wave-2 events arrived (nothing lost)" wait_for 120 all_w2
dups=$(received_ids | grep -cFf "$WORK/w2.ids" || true)
ok "wave 2: $dups deliveries for $M events ($((dups - M)) redelivered after the kill, at-least-once)"
check "no wave-2 event was dead-lettered" test "$(dlq_list dlq.mparticle | grep -cFf "$WORK/w2.ids" || true)" -eq 0
check "deliver committed out.mparticle to the end after the restart" wait_for 30 committed_to_end relay-deliver-mparticle out.mparticle
done_checks
