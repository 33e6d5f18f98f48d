#!/usr/bin/env bash
# Scenario 0023: polling sources. relay-poll (deploy/config/poll.cfg) reads
# four sources of the events-API simulator (tests/sim/poll_sim.py) into
# loyalty.events on the real broker: three with cursor pages and the token
# in the query (one simulator), one with numbered pages and a Bearer header
# (another simulator).
#  - a bad source file stops the worker naming file, line and key;
#  - every event of several windows and pages arrives exactly once, as Avro
#    an independent decoder (fastavro) reads, its event id the UUID v5 of
#    the source's id; an event without a type is in dlq.poll with the reason;
#  - kill -9 while a window is in progress (a page slowed down): after the
#    restart no event is missing, and the only duplicates are events of the
#    window that was in progress;
#  - two replicas: each source is asked by exactly one of them (the
#    simulators' request logs, by User-Agent), and every new event arrives
#    once;
#  - a source failing (503 three times, then 429 with Retry-After: 2 twice)
#    is retried, reported (metrics, an error line) and caught up: nothing
#    skipped, nothing twice.
source "$(dirname "$0")/lib.sh"
broker loyalty.events:3 dlq.poll:1

TOKEN=tok-$RANDOM$RANDOM
start_poll_sim() { # start_poll_sim NAME ARGS...: sets the variable NAME to its URL
  local name=$1; shift
  rm -f "$WORK/$name.port"
  python3 "$SRC/tests/sim/poll_sim.py" --port 0 --port-file "$WORK/$name.port" \
    --token "$TOKEN" --log "$WORK/$name.log" "$@" >/dev/null 2>&1 &
  PIDS+=($!)
  wait_for 10 test -s "$WORK/$name.port" || fail "simulator $name did not start"
  printf -v "$name" 'http://127.0.0.1:%s' "$(cat "$WORK/$name.port")"
}
start_poll_sim SIMC --paging cursor --token-in query
start_poll_sim SIMP --paging page --token-in header

NOW=$(date +%s%3N)
mkdir -p "$WORK/sources"
# How the simulator's events map (the JSON mapping an ingest source uses
# too): the sources below differ only in their key.
FIELDS='event_id = "id";
  fields = (
    { to = "occurred_at"; from = "created_at"; type = "iso8601"; required = true; },
    { to = "event_type"; from = "action"; type = "string"; required = true; },
    { to = "identities.customer_id"; from = "customer"; type = "string"; },
    { to = "identities.email"; from = "email"; type = "string"; },
    { to = "data"; from = "data"; type = "flatten"; } );'
for f in a b c; do
  cat > "$WORK/sources/it-$f.cfg" <<EOF
source = { name = "it-$f"; url = "$SIMC/feeds/$f/events"; tenant = "acme";
  platform = "antavo"; interval_ms = 1000; delay_ms = 1000;
  max_window_ms = 60000; start = "$(python3 -c "import datetime; print(datetime.datetime.fromtimestamp(($NOW - 250000) / 1000, datetime.timezone.utc).isoformat())")";
  auth = { in = "query"; name = "api_key"; };
  paging = { kind = "cursor"; size = 10; };
  key = [ "{tenant}/{identities.customer_id}", "{tenant}/{identities.email}" ];
  $FIELDS
};
EOF
done
cat > "$WORK/sources/it-d.cfg" <<EOF
source = { name = "it-d"; url = "$SIMP/feeds/d/events"; tenant = "acme";
  platform = "antavo"; interval_ms = 1000; delay_ms = 1000;
  max_window_ms = 60000; lookback_ms = 250000;
  auth = { in = "header"; name = "Authorization"; prefix = "Bearer "; };
  paging = { kind = "page"; page_param = "page"; size_param = "limit"; size = 10; };
  key = "{tenant}/{identities.customer_id}";
  $FIELDS
};
EOF
export RELAY_POLL_IT_A_TOKEN=$TOKEN RELAY_POLL_IT_B_TOKEN=$TOKEN \
  RELAY_POLL_IT_C_TOKEN=$TOKEN RELAY_POLL_IT_D_TOKEN=$TOKEN

# ---- a bad source file names file, line and key ----
printf 'source = { name = "x"; url = "http://a"; tenant = "t"; platform = "p";\n  paging = { kind = "pages"; }; };\n' > "$WORK/bad.cfg"
set +e
"$BIN/relay-poll" -c deploy/config/poll.cfg -X poll.sources="$WORK/bad.cfg" \
  -X admin.port=0 > "$WORK/bad.out" 2>&1
rc=$?
set -e
check "a bad source stops relay-poll (status $rc)" test "$rc" -ne 0
check "the error names file, line and key" \
  grep -q "bad.cfg:2: key 'source.paging.kind': must be cursor, page or none" "$WORK/bad.out"

gen() { # gen URL FEED COUNT FROM_MS TO_MS PREFIX
  curl -sf -X POST "$1/_sim/generate" -d "{\"feed\":\"$2\",\"count\":$3,\"from_ms\":$4,\"to_ms\":$5,\"prefix\":\"$6\"}" >/dev/null; }
# The event ids relay-poll makes of the generator's events <prefix>-<6
# digits>, 60 a prefix: the UUID v5 of each source id.
want_ids() { # want_ids PREFIX...
  python3 - "$@" <<'PY'
import sys, uuid
for p in sys.argv[1:]:
    for i in range(60):
        print(uuid.uuid5(uuid.NAMESPACE_URL, f"relay-poll:acme/antavo/{p}-{i:06d}"))
PY
}
gen_phase() { # gen_phase PHASE FROM_MS TO_MS: 60 events a feed, their ids in $WORK/PHASE.ids
  for f in a b c; do gen "$SIMC" $f 60 "$2" "$3" "$1$f"; done
  gen "$SIMP" d 60 "$2" "$3" "$1d"
  want_ids "$1a" "$1b" "$1c" "$1d" > "$WORK/$1.ids"
}
gen_phase p1 $((NOW - 240000)) $((NOW - 5000))
# One event without a type: dead-lettered, not produced.
curl -sf -X POST "$SIMC/_sim/events" -d "{\"feed\":\"c\",\"events\":[{\"id\":\"untyped-1\",\"customer\":\"u\",\"created_at\":\"$(python3 -c "import datetime; print(datetime.datetime.fromtimestamp(($NOW - 100000) / 1000, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.000Z'))")\",\"data\":{}}]}" >/dev/null

start_poll() { # start_poll NAME
  "$BIN/relay-poll" -c deploy/config/poll.cfg -X poll.sources="$WORK/sources" \
    -X kafka.bootstrap.servers="$BS" -X poll.instance="$1" \
    -X poll.checkpoint_partitions=12 -X poll.backoff_base_ms=300 \
    -X poll.backoff_max_ms=3000 -X poll.max_attempts=3 \
    -X poll.http_timeout_ms=8000 -X kafka.session.timeout.ms=6000 \
    "${ADMIN[@]}" >>"$WORK/$1.log" 2>&1 &
  eval "${1^^}_PID=$!"
  PIDS+=($!)
}

# The event ids on loyalty.events (fastavro), one a line, with repeats.
topic_ids() {
  kcat -b "$BS" -C -t loyalty.events -e -q -f '%R%s' 2>/dev/null |
    python3 tests/integration/check_avro.py schemas/manifest.cfg loyalty.events-value |
    python3 -c 'import json, sys
for l in sys.stdin: print(json.loads(l)["event_id"])'; }
have_all() { # have_all IDFILE: every id of the file is on the topic
  [ "$(topic_ids | sort -u | comm -12 - <(sort -u "$1") | wc -l)" -eq "$(sort -u "$1" | wc -l)" ]; }
dups_of() { # dups_of IDFILE: ids of the file on the topic more than once
  topic_ids | sort | uniq -d | comm -12 - <(sort -u "$1"); }

# ---- every event of several windows and pages, exactly once ----
start_poll r1
check "all 240 events arrived" wait_for 60 have_all "$WORK/p1.ids"
check "none twice" test -z "$(topic_ids | sort | uniq -d)"
check "nothing else on the topic" test "$(topic_ids | wc -l)" -eq 240
kcat -b "$BS" -C -t loyalty.events -e -q -f '%R%s' 2>/dev/null |
  python3 tests/integration/check_avro.py schemas/manifest.cfg loyalty.events-value > "$WORK/p1.jsonl"
check "each record is keyed <tenant>/<customer>" test "$(kcat -b "$BS" -C -t loyalty.events -e -q -f '%k\n' 2>/dev/null | grep -c '^acme/p1')" -eq 240
check "each record is the mapped event (fastavro)" python3 - "$WORK/p1.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    assert r["tenant"] == "acme" and r["source"] == "antavo", r
    assert r["event_type"] in ("point_add", "checkout", "opt_in"), r
    assert r["identities"]["customer_id"].startswith("p1"), r
    d = r["data"]
    assert d["tier"] == "gold" and isinstance(d["points"], int), r
    assert d["order.total"] == d["points"] / 4 and d["items.0.sku"] == f"s{d['points']}", r
PY
pages() { curl -sf "$1/_sim/requests" | python3 -c "
import json, sys
rs = [r for r in json.load(sys.stdin) if r['status'] == 200]
wins = {(r['feed'], r['from'], r['to']) for r in rs}
print(len(wins), max(sum(1 for r in rs if (r['feed'], r['from'], r['to']) == w) for w in wins))"; }
read -r wins maxpages <<<"$(pages "$SIMC")"
check "cursor sources: several windows ($wins) and pages (up to $maxpages a window)" \
  test "$wins" -ge 12 -a "$maxpages" -ge 2
read -r wins maxpages <<<"$(pages "$SIMP")"
check "numbered pages: several windows ($wins) and pages (up to $maxpages a window)" \
  test "$wins" -ge 4 -a "$maxpages" -ge 2
check "every request carried the token (query and header)" test "$(
  for u in "$SIMC" "$SIMP"; do curl -sf "$u/_sim/requests"; echo; done |
  python3 -c 'import json, sys
print(sum(r["token"] != "ok" for l in sys.stdin if l.strip() for r in json.loads(l)))')" -eq 0
check "windows tile the time line: each starts where the last ended" python3 - <<PY
import json, urllib.request
for url in ("$SIMC", "$SIMP"):
    rs = json.load(urllib.request.urlopen(url + "/_sim/requests"))
    by = {}
    for r in rs:
        if r["status"] == 200 and (r["cursor"] is None) and r["page"] in (None, "1"):
            by.setdefault(r["feed"], []).append((r["from"], r["to"]))
    for feed, ws in by.items():
        ws = sorted(set(ws))
        for (f0, t0), (f1, t1) in zip(ws, ws[1:]):
            assert t0 == f1, (feed, t0, f1)
PY
dlq_has() { kcat -b "$BS" -C -t dlq.poll -e -q -f '%h %s\n' 2>/dev/null | grep -q untyped-1; }
check "the event without a type is in dlq.poll" wait_for 10 dlq_has
check "with its reason and source" eval 'kcat -b "$BS" -C -t dlq.poll -e -q -f "%h\n" | grep -q "relay.error=required field .action. (to event_type) is missing.*relay.source=it-c"'

# ---- kill -9 in the middle of a window: no gap, duplicates only of it ----
T0=$(date +%s%3N)
gen_phase p2 $((T0 + 500)) $((T0 + 3500))
# The slow request is a second page (it carries a cursor): its window's
# first page is produced when r1 is killed.
curl -sf -X POST "$SIMC/_sim/faults" -d '{"name":"slow","match":"cursor=","delay_ms":4000,"times":1}' >/dev/null
slow_taken() { curl -sf "$SIMC/_sim/faults" | python3 -c 'import json, sys
print(all(r["remaining"] == 0 for r in json.load(sys.stdin) if r["name"] == "slow"))' | grep -q True; }
check "a second page is being answered slowly" wait_for 30 slow_taken
sleep 1
kill -9 "$R1_PID"
killed_at=$(wc -l < "$WORK/r1.log")
sleep 4
start_poll r1
check "after the restart all 240 new events arrived (no gap)" wait_for 60 have_all "$WORK/p2.ids"
check "and all the first 240 are still there once" test -z "$(dups_of "$WORK/p1.ids")"
read -r slow_feed slow_from slow_to <<<"$(curl -sf "$SIMC/_sim/requests" | python3 -c 'import json, sys
r = [r for r in json.load(sys.stdin) if r["fault"] == "slow"][0]
print(r["feed"], r["from"], r["to"])')"
before=$(head -n "$killed_at" "$WORK/r1.log" | grep -c "source it-$slow_feed: window $slow_from\.\..* done" || true)
after=$(tail -n +"$((killed_at + 1))" "$WORK/r1.log" | grep -c "source it-$slow_feed: window $slow_from\.\..* done" || true)
check "r1 was killed before that window was done; restarted, it read from its start" \
  test "$before" -eq 0 -a "$after" -eq 1
dups_of "$WORK/p2.ids" > "$WORK/p2.dups"
ndup=$(wc -l < "$WORK/p2.dups")
check "the duplicates ($ndup) are events of the window in progress [$slow_from, $slow_to) of it-$slow_feed" \
  python3 - "$WORK/p2.dups" "$slow_feed" "$slow_from" "$slow_to" "$SIMC" <<'PY'
import json, sys, urllib.request, uuid
dups = set(open(sys.argv[1]).read().split())
feed, lo, hi = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rs = json.load(urllib.request.urlopen(sys.argv[5] + "/_sim/requests"))
# every event of that feed the simulator gave out for that window
inwin = {str(uuid.uuid5(uuid.NAMESPACE_URL, f"relay-poll:acme/antavo/{i}"))
         for r in rs if r["feed"] == feed and r["from"] == lo and r["to"] == hi
         for i in r["ids"]}
assert dups <= inwin, (len(dups - inwin), sorted(dups - inwin)[:3])
PY

# ---- two replicas: each source polled by exactly one ----
start_poll r2
joined() { grep -q 'assigned' "$WORK/r2.log"; }
check "r2 joined the group" wait_for 40 joined
sleep 8 # the rebalance settled: no window in flight of a handed-back source
for u in "$SIMC" "$SIMP"; do curl -sf -X POST "$u/_sim/reset" >/dev/null; done
T1=$(date +%s%3N)
gen_phase p3 $((T1 + 500)) $((T1 + 4500))
check "with two replicas all 240 new events arrived" wait_for 60 have_all "$WORK/p3.ids"
check "none of them twice" test -z "$(dups_of "$WORK/p3.ids")"
for u in "$SIMC" "$SIMP"; do curl -sf "$u/_sim/requests"; echo; done > "$WORK/p3.requests"
check "each source was asked by exactly one replica" python3 - "$WORK/p3.requests" <<'PY'
import json, sys
by = {}
for l in open(sys.argv[1]):
    if l.strip():
        for r in json.loads(l):
            by.setdefault(r["feed"], set()).add(r["user_agent"])
print({f: sorted(u) for f, u in by.items()})
assert set(by) == {"a", "b", "c", "d"}, by
assert all(len(u) == 1 for u in by.values()), by
PY
owners=$(python3 -c 'import json, sys
u = set()
for l in open(sys.argv[1]):
    if l.strip(): u |= {r["user_agent"] for r in json.loads(l)}
print(len(u))' "$WORK/p3.requests")
echo "# sources shared by $owners replica(s): the sources' names hash to the partitions each holds"

# ---- a source failing for a while: retried, reported, caught up ----
curl -sf -X POST "$SIMC/_sim/faults" -d '[
  {"name":"down","match":"/feeds/b/","status":503,"times":3},
  {"name":"busy","match":"/feeds/b/","status":429,"retry_after":2,"times":2}]' >/dev/null
T2=$(date +%s%3N)
gen_phase p4 $((T2 + 500)) $((T2 + 3500))
check "after 503s and 429s every new event arrived" wait_for 90 have_all "$WORK/p4.ids"
check "none of them twice" test -z "$(dups_of "$WORK/p4.ids")"
check "all five faults were answered" test "$(curl -sf "$SIMC/_sim/requests" |
  python3 -c 'import json, sys; print(sum(r["fault"] in ("down", "busy") for r in json.load(sys.stdin)))')" -eq 5
gap=$(curl -sf "$SIMC/_sim/requests" | python3 -c 'import json, sys
rs = [r for r in json.load(sys.stdin) if r["feed"] == "b"]
i = max(k for k, r in enumerate(rs) if r["fault"] == "busy")
print(rs[i + 1]["at_ms"] - rs[i]["at_ms"])')
check "Retry-After: 2 was waited out (${gap} ms)" test "$gap" -ge 1900
owner=$(python3 -c 'import json, sys
for l in open(sys.argv[1]):
    if l.strip():
        for r in json.loads(l):
            if r["feed"] == "b": print(r["user_agent"].split("(")[1].rstrip(")") + ".log"); sys.exit()' "$WORK/p3.requests")
owner=$WORK/$owner
check "the failing window was logged as failed, retried, not skipped" \
  grep -q 'source it-b: window .* failed 3 times (last: HTTP 503.*retried, not skipped' "$owner"
URL=$(admin_url "$(basename "$owner")")
check "metrics: failed and throttled requests, a failed window" test \
  "$(metric "$URL" relay_poll_requests_total source=it-b outcome=failed)" = 3 -a \
  "$(metric "$URL" relay_poll_requests_total source=it-b outcome=throttled)" = 2 -a \
  "$(metric "$URL" relay_poll_windows_failed_total source=it-b)" = 1
check "metrics: it-b is no longer failing" test "$(metric "$URL" relay_poll_source_failing source=it-b)" = 0
lag=$(metric "$URL" relay_poll_checkpoint_lag_seconds source=it-b)
check "metrics: checkpoint lag is small again ($lag s)" python3 -c "import sys; sys.exit(not float('$lag') < 10)"
polled=$(metric "$URL" relay_poll_records_polled_total source=it-b)
check "metrics: records polled counted ($polled)" test "${polled%.*}" -ge 60
kill "$R1_PID" "$R2_PID"
wait "$R1_PID" "$R2_PID" 2>/dev/null || true
check "both replicas stopped cleanly on SIGTERM" eval '! grep -q "left unfinished" "$WORK/r2.log"'
done_checks
