#!/usr/bin/env bash
# Scenario 0004: answers that are about the request rather than a record.
#  - The platform's request limit is lower than relay's setting: it answers
#    413 to large requests, and deliver halves them until they fit, so every
#    event still arrives, once, and nothing is dead-lettered.
#  - A 202 with a garbage body counts as delivered, with a warning in the
#    log (mParticle's 202 carries no body, so nothing is lost by ignoring it).
source "$(dirname "$0")/lib.sh"
broker
start_sim --enable-413 --max-request-bytes 4000
start_transform
start_deliver

N=40
python3 tests/integration/gen_events.py --count $N --prefix "o-$$" --ids "$WORK/o.ids" > "$WORK/o.jsonl"
produce loyalty.events < "$WORK/o.jsonl"
all() { [ "$(count_received "$WORK/o.ids")" -eq $N ]; }
check "all $N events arrived through a platform that refuses requests over 4000 bytes" wait_for 60 all
statuses() { sim /_sim/requests | python3 -c '
import json, sys
rs = json.load(sys.stdin)
print(sum(r["status"] == 413 for r in rs), sum(r["status"] == 202 for r in rs))'; }
read -r n413 n202 < <(statuses)
check "the simulator answered 413 ($n413 times) before the halves fitted ($n202 accepted)" test "$n413" -ge 1
check "none arrived twice" test -z "$(received_ids | sort | uniq -d)"
check "nothing was dead-lettered" test -z "$(dlq_list dlq.mparticle)"

GARBLED=$(python3 tests/integration/gen_events.py --count 1 --prefix "g-$$" --ids "$WORK/g.ids" | tee "$WORK/g.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["event_id"])')
sim_fault "{\"name\":\"garble\",\"garbage\":true,\"match\":\"$GARBLED\",\"times\":1}"
produce loyalty.events < "$WORK/g.jsonl"
garbled_once() { [ "$(received_ids | grep -c "$GARBLED")" -eq 1 ]; }
check "an event answered 202 with a garbage body is delivered once" wait_for 30 garbled_once
check "and the deliver log says the body was unparseable" wait_for 10 grep -q "unparseable body" "$WORK/deliver.log"
done_checks
