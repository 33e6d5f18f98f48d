#!/usr/bin/env bash
# Scenario 0006: a record that one connection cannot map while another
# can is dead-lettered for that connection only, and its replay re-applies
# only that connection.
#  - two connections on loyalty.events: acme-antavo-mparticle (the working
#    example) and acme-strict, which requires data.campaign on coupon events;
#  - coupon events reach out.mparticle through the first and land in
#    dlq.transform once each, naming acme-strict (relay.connection); the
#    other events go out through both;
#  - acme-strict is fixed and reloaded (SIGHUP), dlq.transform is replayed:
#    every coupon event now goes out once for acme-strict, and none a second
#    time for acme-antavo-mparticle (checked on out.mparticle, whose records
#    name their connection), and nothing is dead-lettered again.
source "$(dirname "$0")/lib.sh"
broker
start_sim

mkdir -p "$WORK/conns"
cp deploy/config/connections/acme-antavo-mparticle.cfg "$WORK/conns/a.cfg"
python3 - "$WORK/conns/a.cfg" "$WORK/conns/b.cfg" <<'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace('id = "acme-antavo-mparticle";', 'id = "acme-strict";')
s = s.replace('{ name = "channel"; value = "loyalty"; }',
              '{ name = "channel"; value = "loyalty"; },\n'
              '        { name = "campaign"; from = "campaign"; required = true; }')
assert 'acme-strict' in s and 'campaign' in s
open(sys.argv[2], "w").write(s)
PY
start_transform -X transform.connections="$WORK/conns"
start_deliver

N=8
python3 tests/integration/gen_events.py --count $N --prefix "rc-$$" --ids "$WORK/rc.ids" > "$WORK/rc.jsonl"
NCOUPON=$(grep -c '"coupon_issued"' "$WORK/rc.jsonl")
produce loyalty.events < "$WORK/rc.jsonl"

# (event_id, connection) of every record on out.mparticle, one a line.
out_pairs() {
  kcat -C -b "$BS" -t out.mparticle -e -q -f '%R%s' > "$WORK/out.raw" 2>/dev/null
  python3 tests/integration/check_avro.py schemas/manifest.cfg out.mparticle-value \
    < "$WORK/out.raw" | python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l); print(r["event_id"], r["connection"])' > "$WORK/out.pairs"; }
outputs_are() { out_pairs; [ "$(wc -l < "$WORK/out.pairs")" -eq "$1" ]; }
strict_dead() { dlq_list dlq.transform > "$WORK/dlq.jsonl"; [ "$(grep -c '"relay.connection":"acme-strict"' "$WORK/dlq.jsonl")" -eq "$NCOUPON" ]; }
check "each of the $NCOUPON coupon events is dead-lettered once, naming acme-strict" wait_for 60 strict_dead
check "and nothing else is in dlq.transform" test "$(wc -l < "$WORK/dlq.jsonl")" -eq "$NCOUPON"
check "the dead letters say which field is missing" grep -q 'campaign' "$WORK/dlq.jsonl"
check "out.mparticle has $N outputs of the first connection and $((N - NCOUPON)) of the strict one" \
  wait_for 60 outputs_are $((2 * N - NCOUPON))

sed -i 's/{ name = "campaign"; from = "campaign"; required = true; }/{ name = "campaign"; from = "campaign"; default = "none"; }/' "$WORK/conns/b.cfg"
kill -HUP "$TRANSFORM_PID"
reloaded() { [ "$(grep -c '"reloaded: 2 connection(s)"' "$WORK/transform.log")" -ge 1 ]; }
check "the fixed connection is reloaded" wait_for 30 reloaded
check "relayctl dlq replay exits 0" "$BIN/relayctl" -b "$BS" dlq replay dlq.transform 2>"$WORK/replay.err"
check "its summary counts the $NCOUPON dead letters" \
  grep -qx "relayctl: replayed $NCOUPON record(s) from dlq.transform, 0 failed" "$WORK/replay.err"
check "after the replay every event went out once per connection" wait_for 60 outputs_are $((2 * N))
check "no (event, connection) pair went out twice: the first connection got no duplicate" \
  test -z "$(sort "$WORK/out.pairs" | uniq -d)"
check "nothing was dead-lettered again" test "$(dlq_list dlq.transform | wc -l)" -eq "$NCOUPON"
done_checks
