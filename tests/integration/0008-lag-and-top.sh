#!/usr/bin/env bash
# Scenario 0008: relayctl lag and top, as an operator reads them.
#  - N records produced to loyalty.events, no consumer: `relayctl lag`
#    shows lag N in all and, per partition with records, lag_s at least the
#    time waited since the produce (and not absurdly more); the group has
#    no commit, so it counts from the low watermark;
#  - a consumer of the group (kcat -G) commits to the end: lag 0 and
#    lag_s 0 everywhere, and the committed column matches the broker's own
#    account (tests/kafka/committed-offsets.sh); a transactional topic
#    read to its end keeps 1 record of lag (the marker) but 0 s;
#  - lag --watch without a terminal prints one timestamped block per
#    refresh, -n bounds it, SIGINT ends it with status 0;
#  - relayctl top -n 4 -i 1 GROUP:TOPIC:DLQ, records produced while it
#    runs: the group, each partition and a rate in > 0 and a DLQ rate > 0;
#  - top -m against a fixed exposition served by python's http.server: the
#    worker's name, paused, platform state and breaker parsed from it
#    (escaped quotes, NaN and comments included); a URL nothing listens on
#    and one answering 404 are "down".
source "$(dirname "$0")/lib.sh"
broker
ctl() { "$BIN/relayctl" -b "$BS" "$@"; }
# Keyed by event, so the records spread over the partitions.
produce_keyed() { ctl produce loyalty.events -k event_id < "$1" 2>>"$WORK/relayctl.log"; }
G=lag-it

N=12
python3 tests/integration/gen_events.py --count $N --prefix "lag-$$" > "$WORK/lag.jsonl"
produce_keyed "$WORK/lag.jsonl"
WAIT=3
sleep $WAIT

ctl lag $G loyalty.events > "$WORK/lag1.out" 2>>"$WORK/relayctl.log"
cat "$WORK/lag1.out"
# lag_table FILE: "partition committed end lag lag_s" per partition row.
lag_table() { awk '$1 == "loyalty.events" && $2 ~ /^[0-9]+$/ { print $2, $3, $4, $5, $6 }' "$1"; }
check "relayctl lag: one row per partition (3)" test "$(lag_table "$WORK/lag1.out" | wc -l)" -eq 3
check "relayctl lag: lag $N in all, before any commit" \
  grep -qE "^total lag $N, max lag_s [0-9]+\.[0-9]$" "$WORK/lag1.out"
check "relayctl lag: each row's lag is its end minus its low watermark (no commit)" \
  test "$(lag_table "$WORK/lag1.out" | awk '{ s += $4; if ($2 >= 0) bad++ } END { print s, bad + 0 }')" = "$N 0"
plausible_ages() { lag_table "$WORK/lag1.out" | awk -v w=$WAIT '
  $4 > 0 { n++; if ($5 == "-" || $5 < w || $5 >= w + 30) bad++ }
  $4 == 0 && $5 != "0.0" { bad++ }
  END { exit !(n > 0 && bad == 0) }'; }
check "relayctl lag: lag_s of each partition with records is >= ${WAIT} s and < $((WAIT + 30)) s" plausible_ages

kcat -b "$BS" -G $G -X auto.offset.reset=earliest -e loyalty.events > /dev/null 2>>"$WORK/kcat.log"
ctl lag $G loyalty.events > "$WORK/lag2.out" 2>>"$WORK/relayctl.log"
cat "$WORK/lag2.out"
check "after the group committed: total lag 0, max lag_s 0.0" grep -qx "total lag 0, max lag_s 0.0" "$WORK/lag2.out"
check "after the group committed: every partition at lag 0, lag_s 0.0" \
  test "$(lag_table "$WORK/lag2.out" | awk '$4 == 0 && $5 == "0.0"' | wc -l)" -eq 3
tests/kafka/committed-offsets.sh "$BS" $G | awk '{ print $2, $3, $4 }' > "$WORK/broker.offsets"
check "the committed offsets are the broker's own" \
  diff <(lag_table "$WORK/lag2.out" | awk '$2 >= 0 { print $1, $2, $3 }') "$WORK/broker.offsets"
check "the group committed on more than one partition" test "$(wc -l < "$WORK/broker.offsets")" -ge 2
# A transactional topic read to its end: the group's commit stops at the
# transaction's marker, so 1 record of lag is left, and nothing to wait for.
tests/kafka/create-topics.sh "$BS" lag.tx:1 >/dev/null
python3 - "$BS" 2>>"$WORK/tx.log" <<'PY'
import sys
from confluent_kafka import Consumer, Producer
bs = sys.argv[1]
p = Producer({"bootstrap.servers": bs, "transactional.id": "lag-it-tx"})
p.init_transactions()
p.begin_transaction()
for i in range(3):
    p.produce("lag.tx", b"v%d" % i)
p.commit_transaction()
c = Consumer({"bootstrap.servers": bs, "group.id": "lag-tx", "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe(["lag.tx"])
got = []
while len(got) < 3:
    m = c.poll(10)
    assert m is not None, "no record in 10 s"
    if not m.error():
        got.append(m)
c.commit(got[-1], asynchronous=False)
c.close()
PY
ctl lag lag-tx lag.tx > "$WORK/lag-tx.out" 2>>"$WORK/relayctl.log"
cat "$WORK/lag-tx.out"
check "a transactional topic read to its end: lag 1 (its marker), lag_s 0.0" \
  grep -qE '^lag.tx +0 +3 +4 +1 +0\.0$' "$WORK/lag-tx.out"
check "relayctl lag on a topic that does not exist exits 1" \
  test "$(ctl lag $G no.such.topic >/dev/null 2>&1; echo $?)" -eq 1

ctl lag --watch 0.5 -n 2 $G loyalty.events > "$WORK/watch.out" 2>>"$WORK/relayctl.log"
check "lag --watch -n 2 (no terminal): two blocks, each opened by a timestamp line" \
  test "$(grep -cE '^relayctl lag lag-it loyalty.events  [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z  every 0.5 s$' "$WORK/watch.out")" -eq 2
check "lag --watch -n 2: two tables" test "$(grep -c '^total lag 0' "$WORK/watch.out")" -eq 2
# Not through ctl(): $! must be relayctl itself, not a subshell that
# ignores SIGINT as background jobs do.
"$BIN/relayctl" -b "$BS" lag --watch 0.3 $G loyalty.events > "$WORK/watch-int.out" 2>>"$WORK/relayctl.log" &
WPID=$!
PIDS+=($WPID)
wait_for 15 grep -q '^total lag' "$WORK/watch-int.out" || fail "lag --watch printed nothing"
kill -INT $WPID
# gone PID: exited (a zombie until waited for counts as gone).
gone() { ! ps -o stat= -p "$1" | grep -qv Z; }
wait_for 10 gone $WPID || fail "lag --watch still runs 10 s after SIGINT"
WRC=0; wait $WPID || WRC=$?
check "lag --watch ends on SIGINT with status 0" test "$WRC" -eq 0

# top while records arrive on the topic and its dead-letter topic.
M=30
python3 tests/integration/gen_events.py --count $M --prefix "top-$$" > "$WORK/top.jsonl"
"$BIN/relayctl" -b "$BS" top -n 4 -i 1 $G:loyalty.events:dlq.transform > "$WORK/top.out" 2>>"$WORK/relayctl.log" &
TPID=$!
PIDS+=($TPID)
# After the first block, three intervals are left for the records to land.
wait_for 20 grep -q '^relayctl top  ' "$WORK/top.out" || fail "top printed no block"
produce_keyed "$WORK/top.jsonl"
seq 5 | kcat -P -b "$BS" -t dlq.transform 2>>"$WORK/kcat.log"
TRC=0; wait $TPID || TRC=$?
cat "$WORK/top.out"
check "top -n 4 exits 0" test "$TRC" -eq 0
check "top: four blocks" test "$(grep -c '^relayctl top  ' "$WORK/top.out")" -eq 4
check "top: the group and its topic" grep -q "^group $G  topic loyalty.events  in " "$WORK/top.out"
check "top: every block has the 3 partition rows" \
  test "$(grep -cE '^  loyalty.events +[0-2] ' "$WORK/top.out")" -eq 12
# some_rate_above_0 PATTERN: a block's rate after PATTERN is above 0.
some_rate_above_0() { grep -oE "$1 [0-9.]+/s" "$WORK/top.out" | awk '{ sub("/s", "", $NF); if ($NF > 0) n++ } END { exit !n }'; }
check "top: a block shows records/s in > 0 while records arrive" some_rate_above_0 "topic loyalty.events  in"
check "top: a block shows dead letters/s > 0 on dlq.transform" some_rate_above_0 "dlq dlq.transform"
check "top: the dead-letter topic's total" grep -q "dlq dlq.transform .* (5 in all)" "$WORK/top.out"
check "top: the lag of the records it saw arrive" grep -q "^  total lag $M, max lag_s " "$WORK/top.out"

# A worker's /metrics as a fixed file.
mkdir -p "$WORK/www"
cat > "$WORK/www/metrics" <<'EOF'
# HELP relay_build_info Which worker "this" is.
# TYPE relay_build_info gauge
relay_build_info{worker="deliver-mparticle",version="0.1.0"} 1
# TYPE relay_records_in_total counter
relay_records_in_total{topic="out.mparticle"} 1234
relay_records_out_total{topic="dlq.mparticle"} 7
relay_records_out_total{topic="other"} 3
relay_consumer_lag_seconds{group="g",topic="out.mparticle",partition="0"} NaN
relay_batch_records_bucket{le="+Inf"} 52
relay_paused 1
relay_ready 0
relay_platform_state{platform="mparticle"} 1
relay_breaker_open{platform="mparticle"} 1
relay_platform_state{platform="br\"aze",} 0
relay_breaker_open{platform="br\"aze"} 0
EOF
HPORT=$(free_port)
python3 -m http.server "$HPORT" --bind 127.0.0.1 --directory "$WORK/www" >>"$WORK/http.log" 2>&1 &
PIDS+=($!)
wait_for 10 curl -sf "http://127.0.0.1:$HPORT/metrics" -o /dev/null || fail "the metrics file server did not start"
DEAD=$(free_port)
UP="http://127.0.0.1:$HPORT/metrics"
ctl top -n 1 -i 0.5 -m "$UP" -m "http://127.0.0.1:$DEAD/metrics" -m "http://127.0.0.1:$HPORT/nope" \
  $G:loyalty.events > "$WORK/top-m.out" 2>>"$WORK/relayctl.log"
cat "$WORK/top-m.out"
check "top -m: the worker, up, paused, not ready, its in and out counters" \
  grep -qF "  $UP  deliver-mparticle  up  paused yes  ready no  in 1234 (0.0/s)  out 10 (0.0/s)" "$WORK/top-m.out"
check "top -m: its platform's circuit and breaker are open" \
  grep -qx "    platform mparticle: down (circuit open), breaker open" "$WORK/top-m.out"
check "top -m: a platform name with an escaped quote, ok, breaker closed" \
  grep -qx '    platform br"aze: ok, breaker closed' "$WORK/top-m.out"
check "top -m: a URL nothing listens on is down" \
  grep -qE "^  http://127.0.0.1:$DEAD/metrics  down \(.+\)$" "$WORK/top-m.out"
check "top -m: a URL answering 404 is down" \
  grep -qx "  http://127.0.0.1:$HPORT/nope  down (HTTP 404)" "$WORK/top-m.out"
done_checks
