#!/usr/bin/env bash
# Scenario 0012: relayctl dlq list | show | replay | purge as an operator
# uses them, on real dead letters.
#  - two events mParticle refuses (400) and two garbage records on
#    out.mparticle land in dlq.mparticle: stage "deliver" at offsets 0-1,
#    stage "decode" at 2-3;
#  - list's filters (--reason, --platform, --from/--to, and on crafted dead
#    letters --connection and --since/--until) select exactly the right
#    records; a bad filter value fails naming the option;
#  - show prints one dead letter in full: headers, the value decoded, or
#    its bytes in hex;
#  - replay --dry-run produces nothing; replay --reason deliver delivers
#    each refused event once (counted at the simulator), and a second run
#    skips both as already replayed (ledger dlq.mparticle.replayed);
#  - purge refuses while the un-replayed decode dead letters are below the
#    cut (naming them), refuses without --yes off a terminal, and with
#    --yes --reason deliver deletes below offset 2 (the low watermark
#    moves); --dry-run deletes nothing.
source "$(dirname "$0")/lib.sh"
broker loyalty.events:3 out.mparticle:3 dlq.mparticle:1 dlq.transform:1 dlq.crafted:1
start_sim

ctl() { "$BIN/relayctl" -b "$BS" "$@"; }
N=10
python3 tests/integration/gen_events.py --count $N --prefix "dt-$$" --ids "$WORK/dt.ids" > "$WORK/dt.jsonl"
BAD1=$(sed -n 3p "$WORK/dt.ids")
BAD2=$(sed -n 8p "$WORK/dt.ids")
sim_fault "[{\"name\":\"refuse1\",\"status\":400,\"match\":\"$BAD1\",\"times\":-1},
            {\"name\":\"refuse2\",\"status\":400,\"match\":\"$BAD2\",\"times\":-1}]"
start_transform
start_deliver
produce loyalty.events < "$WORK/dt.jsonl"

dlq_count_is() { [ "$(dlq_list dlq.mparticle | wc -l)" -eq "$1" ]; }
check "the two refused events are dead-lettered" wait_for 90 dlq_count_is 2
printf 'garbage one' | kcat -P -b "$BS" -t out.mparticle -k g1
printf 'garbage two' | kcat -P -b "$BS" -t out.mparticle -k g2
check "and the two garbage records after them" wait_for 60 dlq_count_is 4

# offsets of `dlq list` output, one line: "0 1"
offsets() { python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["offset"]) for l in sys.stdin))'; }
check "--reason deliver selects offsets 0 and 1" \
  test "$(ctl dlq list dlq.mparticle --reason deliver | offsets)" = "0 1"
ctl dlq list dlq.mparticle --reason deliver > "$WORK/deliver.jsonl"
check "which are the two refused events" grep -q "$BAD1" "$WORK/deliver.jsonl"
check "(both of them)" grep -q "$BAD2" "$WORK/deliver.jsonl"
check "--reason decode selects offsets 2 and 3" \
  test "$(ctl dlq list dlq.mparticle --reason=decode | offsets)" = "2 3"
check "--from 1 --to 2 selects offsets 1 and 2" \
  test "$(ctl dlq list dlq.mparticle --from 1 --to 2 | offsets)" = "1 2"
check "--platform mparticle selects all four" \
  test "$(ctl dlq list dlq.mparticle --platform mparticle | offsets)" = "0 1 2 3"
check "--platform braze selects none" \
  test -z "$(ctl dlq list dlq.mparticle --platform braze | offsets)"
check "-p 0 --reason deliver --from 1 selects offset 1" \
  test "$(ctl dlq list dlq.mparticle -p 0 --reason deliver --from 1 | offsets)" = "1"

# Crafted dead letters: connection and time.
for spec in c1:1700000000000 c2:1700000100000 c1:1700000200000; do
  printf 'v' | kcat -P -b "$BS" -t dlq.crafted -k k -H "relay.connection=${spec%%:*}" \
    -H "relay.failed_at=${spec#*:}" -H relay.stage=map -H relay.original_topic=loyalty.events
done
check "--connection c1 selects offsets 0 and 2" \
  test "$(ctl dlq list dlq.crafted --connection c1 | offsets)" = "0 2"
check "--since 2023-11-14T22:15:00Z (ISO-8601) selects offsets 1 and 2" \
  test "$(ctl dlq list dlq.crafted --since 2023-11-14T22:15:00Z | offsets)" = "1 2"
check "--until 1700000100000 (Unix ms) selects offsets 0 and 1" \
  test "$(ctl dlq list dlq.crafted --until 1700000100000 | offsets)" = "0 1"

set +e
ctl dlq list dlq.mparticle --since yesterday 2>"$WORK/bad.err"; BAD_RC=$?
ctl dlq replay dlq.mparticle --reason typo 2>"$WORK/bad2.err"; BAD2_RC=$?
ctl dlq purge dlq.mparticle --to x 2>"$WORK/bad3.err"; BAD3_RC=$?
set -e
check "a bad --since fails (exit 2) naming the option and value" \
  eval '[ $BAD_RC -eq 2 ] && grep -q "^relayctl: --since '"'"'yesterday'"'"'" "$WORK/bad.err"'
check "a bad --reason fails naming the option and the classes" \
  eval '[ $BAD2_RC -eq 2 ] && grep -q "^relayctl: --reason '"'"'typo'"'"': expected a stage: decode, map" "$WORK/bad2.err"'
check "a bad --to fails naming the option" \
  eval '[ $BAD3_RC -eq 2 ] && grep -q "^relayctl: --to '"'"'x'"'"'" "$WORK/bad3.err"'

ctl dlq show dlq.mparticle -p 0 -o 1 > "$WORK/show1.txt"
check "show prints the record's place" grep -qx "offset:    1" "$WORK/show1.txt"
check "its headers one per line" grep -qx "  relay.stage: deliver" "$WORK/show1.txt"
check "and its value decoded by its schema id" \
  eval 'grep -q "schema id" "$WORK/show1.txt" && grep -q "\"event_id\": \"$(ctl dlq list dlq.mparticle --from 1 --to 1 | python3 -c "import json,sys; print(json.loads(sys.stdin.readline())[\"value\"][\"event_id\"])")\"" "$WORK/show1.txt"'
ctl dlq show dlq.mparticle -p 0 -o 3 > "$WORK/show3.txt"
check "an undecodable value is shown in hex" \
  eval 'grep -q "not decodable" "$WORK/show3.txt" && grep -q "67 61 72 62 61 67 65 20 74 77 6f" "$WORK/show3.txt"'
check "show of an offset past the end fails" eval '! ctl dlq show dlq.mparticle -p 0 -o 99 2>/dev/null'

curl -sf -X DELETE "$SIM/_sim/faults" >/dev/null
out_count() { ctl consume out.mparticle 2>/dev/null | wc -l; }
OUT0=$(out_count)
ctl dlq replay dlq.mparticle --reason deliver --dry-run > "$WORK/dry.out" 2>"$WORK/dry.err"
check "replay --dry-run lists the two it would replay" \
  test "$(grep -c '^would replay dlq.mparticle\[0\]@[01] to out.mparticle$' "$WORK/dry.out")" -eq 2
check "and its summary says so" \
  grep -q "^relayctl: dry run: would replay 2 record(s) from dlq.mparticle, 0 already replayed, 2 filtered out" "$WORK/dry.err"
check "a dry run produces nothing" test "$(out_count)" -eq "$OUT0"
# (relayctl consume asks as a consumer, which creates no topic; kcat -L would.)
check "not even the ledger" eval 'ctl consume dlq.mparticle.replayed 2>&1 | grep -q "topic dlq.mparticle.replayed does not exist"'

check "replay --reason deliver exits 0" ctl dlq replay dlq.mparticle --reason deliver 2>"$WORK/r1.err"
cat "$WORK/r1.err" >> "$WORK/relayctl.log"
check "its summary: 2 replayed, 2 filtered out" \
  grep -qx "relayctl: replayed 2 record(s) from dlq.mparticle, 0 failed, 2 filtered out" "$WORK/r1.err"
received_once() { [ "$(received_ids | grep -c "$1")" -eq 1 ]; }
check "the first refused event reaches the simulator" wait_for 60 received_once "$BAD1"
check "and the second" wait_for 60 received_once "$BAD2"
ledger_keys() { kcat -C -b "$BS" -t dlq.mparticle.replayed -e -q -f '%k\n' | sort | tr '\n' ' '; }
check "the ledger dlq.mparticle.replayed holds the two, keyed partition/offset" \
  test "$(ledger_keys)" = "0/0 0/1 "

ledger_policy() { python3 - "$BS" <<'PY'
import sys
from kafka.admin import KafkaAdminClient, ConfigResource, ConfigResourceType
a = KafkaAdminClient(bootstrap_servers=sys.argv[1])
r = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "dlq.mparticle.replayed")])
import re
m = re.search(r"cleanup\.policy.{0,60}?\b(compact|delete)\b", str(r))
print(m.group(1) if m else str(r))
PY
}
POLICY=$(ledger_policy 2>&1 | tail -c 600)
check "the ledger is a compacted topic (cleanup.policy: $POLICY)" test "$POLICY" = compact

check "the same replay again exits 0" ctl dlq replay dlq.mparticle --reason deliver 2>"$WORK/r2.err"
cat "$WORK/r2.err" >> "$WORK/relayctl.log"
check "and skips both as already replayed" \
  grep -qx "relayctl: replayed 0 record(s) from dlq.mparticle, 0 failed, 2 already replayed, 2 filtered out" "$WORK/r2.err"
check "replaying the range --from 0 --to 1 skips them too" \
  eval 'ctl dlq replay dlq.mparticle --from 0 --to 1 2>&1 | grep -qx "relayctl: replayed 0 record(s) from dlq.mparticle, 0 failed, 2 already replayed, 2 filtered out"'
sleep 5 # time for a duplicate, were there one, to reach the simulator
check "each refused event was delivered exactly once" \
  eval 'received_once "$BAD1" && received_once "$BAD2"'

LOW() { kcat -Q -b "$BS" -t "dlq.mparticle:0:-2" 2>/dev/null | awk '{print $NF}'; }
first_offset() { ctl dlq list dlq.mparticle | offsets | awk '{print $1}'; }
set +e
ctl dlq purge dlq.mparticle --yes 2>"$WORK/p1.err"; P1=$?
ctl dlq purge dlq.mparticle --reason deliver < /dev/null 2>"$WORK/p2.err"; P2=$?
set -e
cat "$WORK"/p[12].err >> "$WORK/relayctl.log"
check "purge of everything refuses: 2 decode dead letters were never replayed" \
  eval '[ $P1 -eq 1 ] && grep -q "refusing: 2 dead letter(s) of dlq.mparticle below the purge point were never replayed (per dlq.mparticle.replayed), the first dlq.mparticle\[0\]@2" "$WORK/p1.err"'
check "purge without --yes off a terminal refuses" \
  eval '[ $P2 -eq 1 ] && grep -q "stdin is not a terminal" "$WORK/p2.err"'
check "nothing was deleted" test "$(first_offset)" = 0
check "purge --dry-run --force says what it would delete" \
  eval 'ctl dlq purge dlq.mparticle --force --dry-run 2>/dev/null | grep -qx "would purge dlq.mparticle: partition 0 below offset 4 (4 record(s))"'
check "and deletes nothing" test "$(first_offset)" = 0
check "purge --reason deliver --yes exits 0" \
  ctl dlq purge dlq.mparticle --reason deliver --yes 2>"$WORK/p3.err"
cat "$WORK/p3.err" >> "$WORK/relayctl.log"
check "its summary names the partition and the new start" \
  grep -qx "relayctl: purged dlq.mparticle: partition 0: 2 record(s), now from offset 2" "$WORK/p3.err"
check "the low watermark moved to 2" test "$(first_offset)" = 2
check "the decode dead letters are still there" \
  test "$(ctl dlq list dlq.mparticle --reason decode | offsets)" = "2 3"
done_checks
