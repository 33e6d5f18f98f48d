#!/usr/bin/env bash
# relay-ingest on the real broker: webhooks of three sources (a record, the
# CM.com tenant form with an array, an mParticle batch), their error
# answers (token missing, wrong, rotated; malformed JSON; oversize and
# 10 MB bodies; unknown source and event type), the signed click redirect
# (tampered, javascript: target), the read-online and cookie-sync pixels,
# and the broker stopped: 503 with Retry-After, and once it is back the
# same records accepted. Every event id answered 2xx must be on the topic
# (decoded independently with fastavro), and no record may be there that
# was not answered 2xx.
. "$(dirname "$0")/lib.sh"
broker loyalty.events:3 link.clicks:1 cookie.syncs:1

export RELAY_INGEST_TOKENS_ANTAVO="old-tok,new-tok"
export RELAY_INGEST_TOKENS_CMCDP="cm-tok"
export RELAY_INGEST_TOKENS_MPARTICLE="mp-tok"
export RELAY_INGEST_LINK_KEYS="k2:second-secret,k1:first-secret"
export RELAY_INGEST_IP_SALT="it-salt"
start_ingest() {
  rm -f "$WORK/ingest.port"
  "$BIN/relay-ingest" -c deploy/config/ingest.cfg -X kafka.bootstrap.servers="$BS" \
    -X ingest.address=127.0.0.1 -X ingest.port=-1 -X ingest.port_file="$WORK/ingest.port" \
    -X ingest.ack_timeout_ms=3000 -X ingest.sync_tenant=acme \
    -X ingest.trusted_proxies=127.0.0.1 "${ADMIN[@]}" \
    >>"$WORK/access.log" 2>>"$WORK/ingest.log" &
  INGEST_PID=$!
  PIDS+=($INGEST_PID)
  wait_for 20 test -s "$WORK/ingest.port" || fail "relay-ingest did not start"
  URL="http://127.0.0.1:$(cat "$WORK/ingest.port")"
}
start_ingest

# post PATH BODY [curl args...]: prints "STATUS BODY" and keeps the ids
# answered 202 (one per line in $WORK/accepted).
post() {
  local path=$1 body=$2; shift 2
  local out
  out=$(curl -s -w '\n%{http_code}' -X POST "$URL$path" -H 'Content-Type: application/json' \
        --data-binary "$body" "$@")
  local code=${out##*$'\n'} resp=${out%$'\n'*}
  echo "$resp" | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
items = r.get("results", [r])
for it in items:
    if it.get("status", 202) == 202 and "event_id" in it:
        print(it["event_id"])' >> "$WORK/accepted"
  echo "$code $resp"
}
code_of() { echo "${1%% *}"; }
: > "$WORK/accepted"

# ---- webhooks ----
r=$(post /v1/events/antavo/point_add '{"id":"tx-1","customer":"c-1","data":{"points":5}}' -H 'X-Relay-Token: old-tok')
check "antavo: a record with the first token is 202 with an event id" \
  test "$(code_of "$r")" = 202 -a -n "$(echo "$r" | grep -o '"event_id":"[0-9a-f-]*"')"
r=$(post /v1/events/antavo/point_add '{"id":"tx-2","customer":"c-2"}' -H 'X-Relay-Token: new-tok')
check "antavo: the rotated (second) token is accepted too" test "$(code_of "$r")" = 202
r=$(post /v1/events/antavo/point_add '{"id":"tx-3","customer":"c-3"}' -H 'X-Relay-Token: old-tok-x')
check "antavo: a wrong token is 401" test "$(code_of "$r")" = 401
r=$(post /v1/events/antavo/point_add '{"id":"tx-3","customer":"c-3"}')
check "antavo: no token is 401" test "$(code_of "$r")" = 401
r=$(post /v1/events/antavo/point_add '{"id":"tx-3","customer":' -H 'X-Relay-Token: old-tok')
check "malformed JSON is 400 naming line and column" \
  bash -c "[ '$(code_of "$r")' = 400 ] && echo '$r' | grep -q 'line 1, column'"
r=$(post /v1/events/antavo/point_add '{"id":"tx-4"}' -H 'X-Relay-Token: old-tok')
check "a record without its required field is 400 naming it" \
  bash -c "[ '$(code_of "$r")' = 400 ] && echo '$r' | grep -q customer"
python3 -c 'print("{\"customer\":\"c\",\"data\":{\"pad\":\"" + "x" * 2000000 + "\"}}")' > "$WORK/2mb.json"
r=$(post /v1/events/antavo/x "@$WORK/2mb.json" -H 'X-Relay-Token: old-tok')
check "a 2 MB body (limit 1 MiB) is 413" test "$(code_of "$r")" = 413
head -c 10000000 /dev/zero | tr '\0' ' ' > "$WORK/10mb.json"
r=$(post /v1/events/antavo/x "@$WORK/10mb.json" -H 'X-Relay-Token: old-tok' -H 'Transfer-Encoding: chunked')
check "a 10 MB chunked body (no length up front) is 413" test "$(code_of "$r")" = 413
r=$(post /v1/events/nosuch/x '{}' -H 'X-Relay-Token: old-tok')
check "an unknown source is 404" test "$(code_of "$r")" = 404
r=$(post "/v1/events?token=cm-tok" '[{"Email Address":"v1@x.example"}]')
check "/v1/events (two segments) is 404, not the tenant form's tenant v1" test "$(code_of "$r")" = 404
r=$(post /v1/events/mparticle/other '{"events":[]}' -H 'Authorization: Bearer mp-tok')
check "an event type the source does not serve is 404" test "$(code_of "$r")" = 404
check "PUT is 405" test "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$URL/v1/events/antavo/x")" = 405

r=$(post "/tenant-9/ev-7?token=cm-tok" '[{"Email Address":"a@b.example","Amount":2},{"Product":"tea"},{"Email Address":"c@d.example","Product":"coffee"}]')
check "cmcdp form, token in the query: a mixed array is 207 with a result per record" \
  bash -c "[ '$(code_of "$r")' = 207 ] && echo '$r' | python3 -c '
import json, sys
r = json.loads(sys.stdin.read().split(\" \", 1)[1])[\"results\"]
assert [x[\"status\"] for x in r] == [202, 400, 202], r
assert \"Email Address\" in r[1][\"error\"]'"
r=$(post /tenant-9/ev-7 '[{"Email Address":"e@f.example"}]' -H 'X-CM-PRODUCTTOKEN: cm-tok')
check "cmcdp form, token in X-CM-PRODUCTTOKEN: 202" test "$(code_of "$r")" = 202

r=$(post /v1/events/mparticle/batch '{"mpid":77,"user_identities":{"customer_id":"mp-c","email":"m@p.example"},"events":[
 {"event_type":"custom_event","data":{"event_name":"Signup","timestamp_unixtime_ms":1796634000000,"source_message_id":"0b7c4a1e-3f1d-4c55-9a2e-1f0e8d7c6b5a"}},
 {"event_type":"custom_event","data":{"event_name":"Login","timestamp_unixtime_ms":1796634001000,"custom_attributes":{"plan":"gold"}}}]}' \
  -H 'Authorization: Bearer mp-tok')
check "mparticle batch: 202 for its two events" \
  bash -c "[ '$(code_of "$r")' = 202 ] && [ \$(echo '$r' | grep -o event_id | wc -l) = 2 ]"

# ---- click redirect and pixels ----
LINK=$("$BIN/relayctl" sign-link --tenant acme --message m-1 --url 'https://shop.example/offer?x=1' \
       --link 7 --contact 42 --campaign winter --key-id k1 --base "$URL")
hdr=$(curl -s -D - -o /dev/null -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.7' "$LINK")
check "a signed link (an older key of two) redirects 302 to its target" \
  bash -c "echo '$hdr' | grep -q '^HTTP/1.1 302' && echo '$hdr' | grep -qi '^Location: https://shop.example/offer?x=1'"
check "the redirect sets the DMP cookie Secure, HttpOnly, SameSite=Lax" \
  bash -c "echo '$hdr' | grep -i '^Set-Cookie: relay_dmp=' | grep -q 'Secure; HttpOnly; SameSite=Lax'"
COOKIE=$(echo "$hdr" | sed -n 's/^[Ss]et-[Cc]ookie: relay_dmp=\([^;]*\);.*/\1/p')
hdr2=$(curl -s -D - -o /dev/null -H "Cookie: relay_dmp=$COOKIE" "$LINK")
check "a visitor who has the cookie keeps it (no new Set-Cookie)" \
  bash -c "echo '$hdr2' | grep -q '^HTTP/1.1 302' && ! echo '$hdr2' | grep -qi '^Set-Cookie'"
EVIL=$("$BIN/relayctl" sign-link --tenant acme --message m-1 --url 'https://evil.example/' --key-id k1)
TAMPERED="$(echo "$EVIL" | cut -d. -f1-2).$(echo "${LINK##*/}" | cut -d. -f3)"
hdr=$(curl -s -D - -o /dev/null "$URL/c/$TAMPERED")
check "a link whose target was swapped (signature kept) is 400, no Location" \
  bash -c "echo '$hdr' | grep -q '^HTTP/1.1 400' && ! echo '$hdr' | grep -qi '^Location'"
check "relayctl sign-link refuses a javascript: target" \
  bash -c "! '$BIN/relayctl' sign-link --tenant acme --message m --url 'javascript:alert(1)' 2>/dev/null"
JS=$(python3 tests/integration/ingest_link.py k1 first-secret '{"t":"acme","m":"m-1","u":"javascript:alert(1)"}')
hdr=$(curl -s -D - -o /dev/null "$URL/c/$JS")
check "a correctly signed javascript: target is still 400, no Location" \
  bash -c "echo '$hdr' | grep -q '^HTTP/1.1 400' && ! echo '$hdr' | grep -qi '^Location'"
check "a HEAD on the link (a mail scanner) is answered 302 and recorded as nothing" \
  test "$(curl -s -I -o /dev/null -w '%{http_code}' "$LINK")" = 302
hdr=$(curl -s -D - -o "$WORK/read.gif" "${LINK/\/c\//\/r\/}")
check "read-online answers a 1x1 GIF" \
  bash -c "echo '$hdr' | grep -q '^HTTP/1.1 200' && head -c 6 '$WORK/read.gif' | grep -q GIF89a"
check "the sync pixel answers a GIF" \
  test "$(curl -s -o /dev/null -w '%{http_code} %{content_type}' -H "Cookie: relay_dmp=$COOKIE" \
          "$URL/sync?site=shop&partner=tealium&cookieid=tl-99&gdpr=1&gdpr_consent=CPabc")" = "200 image/gif"
check "a sync with an unreplaced macro is 400" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/sync?partner=tealium&cookieid=%24%7BUID%7D")" = 400
check "a sync with no cookie and no id is answered 200 and not produced" \
  test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/sync?partner=tealium")" = 200

# ---- many at once ----
# 5,000 webhooks due within half a second from up to 256 connections
# (ratepost, the benchmark's load generator, open loop): every one
# answered 2xx, none left waiting. (With libmicrohttpd's epoll one run in
# five stalled here; see start() in workers/ingest/main.c.)
printf '%s' '{"customer":"load-1","data":{"n":1}}' > "$WORK/load.json"
"$BUILD/tests/bench/ratepost" --url "$URL/v1/events/antavo/load" --body "$WORK/load.json" \
  --rate 10000 --seconds 0.5 --connections 256 --header 'X-Relay-Token: old-tok' > "$WORK/load.out" \
  || fail "ratepost: $(cat "$WORK/load.out")"
check "5,000 concurrent webhooks are all answered 2xx" \
  grep -q '"answered":5000,"failed":0,"2xx":5000' "$WORK/load.out"

# ---- the broker stopped ----
ADMIN_URL=$(admin_url ingest.log)
"$SRC/tests/kafka/stop.sh" "$OWN_BROKER" 2>>"$WORK/tools.log"
t0=$SECONDS
: > "$WORK/down.codes"
down=()
for i in 1 2 3; do
  curl -s -m 30 -D "$WORK/down.$i.hdr" -o /dev/null -w '%{http_code}\n' -X POST "$URL/v1/events/antavo/down" \
    -H 'X-Relay-Token: old-tok' --data-binary "{\"id\":\"down-$i\",\"customer\":\"d-$i\"}" >> "$WORK/down.codes" &
  down+=($!)
done
wait "${down[@]}" || true
echo "# the 503s came after $((SECONDS - t0)) s"
check "with the broker stopped, each webhook is 503 (ack timeout 3 s, which librdkafka checks once a second)" \
  test "$(sort -u "$WORK/down.codes")" = 503 -a $((SECONDS - t0)) -le 15
check "... with Retry-After" grep -qi '^Retry-After: 5' "$WORK/down.1.hdr"
check "... and /readyz says why" bash -c "curl -s '$ADMIN_URL/readyz' | grep -q 'did not acknowledge'"
check "/readyz: no broker connection up (the producer's statistics, within 10 s)" \
  wait_for 10 bash -c "curl -s '$ADMIN_URL/readyz' | grep -q 'no connection to a Kafka broker is up'"
RELAY_KAFKA_KEEP_DATA=1 "$SRC/tests/kafka/start.sh" "$OWN_BROKER" >/dev/null 2>>"$WORK/tools.log" \
  || fail "the broker did not come back"
ok_again=0
for i in 1 2 3; do
  for _ in $(seq 1 20); do
    r=$(post /v1/events/antavo/down "{\"id\":\"down-$i\",\"customer\":\"d-$i\"}" -H 'X-Relay-Token: old-tok')
    [ "$(code_of "$r")" = 202 ] && { ok_again=$((ok_again + 1)); break; }
    sleep 1
  done
done
check "once the broker is back the platform's retries are accepted" test "$ok_again" = 3
check "... and /readyz is ready again (within 15 s)" \
  wait_for 15 bash -c "curl -sf '$ADMIN_URL/readyz' | grep -q ready"

# ---- what is on the topics ----
kcat -C -b "$BS" -t loyalty.events -e -q -f '%R%s' > "$WORK/events.raw"
python3 tests/integration/check_avro.py schemas/manifest.cfg loyalty.events-value \
  < "$WORK/events.raw" > "$WORK/events.json" || fail "loyalty.events does not decode with fastavro"
python3 - "$WORK/events.json" "$WORK/accepted" <<'PY' || fail "loyalty.events against the 2xx answers"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
ids = [r["event_id"] for r in recs]
accepted = set(open(sys.argv[2]).read().split())
on_topic = set(ids)
missing = accepted - on_topic
assert not missing, f"answered 202 but not on the topic: {missing}"
# A record on the topic that no 2xx answered may only be one of the
# 503'd records of the outage (its fate was unknown; the retry is the
# same event id).
down_ids = {r["event_id"] for r in recs if r["event_type"] == "down"}
load = [r for r in recs if r["event_type"] == "load"]
assert len(load) >= 5000, f"{len(load)} records of the 5,000 answered 2xx"
extra = on_topic - accepted - down_ids - {r["event_id"] for r in load}
assert not extra, f"on the topic without a 2xx: {extra}"
by = {r["event_id"]: r for r in recs}
first = [r for r in recs if r["source"] == "antavo" and r["identities"].get("customer_id") == "c-1"][0]
assert first["event_type"] == "point_add" and first["data"] == {"points": 5} and first["tenant"] == "acme", first
cm = [r for r in recs if r["source"] == "cmcdp"]
assert sorted(r["identities"]["email"] for r in cm) == ["a@b.example", "c@d.example", "e@f.example"], cm
assert all(r["tenant"] == "tenant-9" and r["event_type"] == "ev-7" for r in cm), cm
mp = sorted((r for r in recs if r["source"] == "mparticle"), key=lambda r: r["occurred_at"])
assert [r["event_type"] for r in mp] == ["Signup", "Login"], mp
assert mp[0]["event_id"] == "0b7c4a1e-3f1d-4c55-9a2e-1f0e8d7c6b5a", mp[0]
assert mp[1]["data"] == {"plan": "gold"} and mp[1]["identities"]["mpid"] == "77", mp[1]
downs = {r["identities"]["customer_id"] for r in recs if r["event_type"] == "down"}
assert downs == {"d-1", "d-2", "d-3"}, downs
print(f"{len(recs)} records, {len(accepted)} accepted ids, all on the topic")
PY
ok "every 2xx is on loyalty.events, nothing is there without one, fields as mapped"
kcat -C -b "$BS" -t link.clicks -e -q -f '%R%s' > "$WORK/clicks.raw"
python3 tests/integration/check_avro.py schemas/manifest.cfg link.clicks-value \
  < "$WORK/clicks.raw" > "$WORK/clicks.json" || fail "link.clicks does not decode"
python3 - "$WORK/clicks.json" "$COOKIE" <<'PY' || fail "link.clicks"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
kinds = sorted(r["kind"] for r in recs)
assert kinds == ["LINK", "LINK", "READ_ONLINE"], kinds
for r in recs:
    assert r["tenant"] == "acme" and r["message_id"] == "m-1" and r["campaign"] == "winter", r
    assert r["url"] == "https://shop.example/offer?x=1", r
    assert r["identities"]["engage_user_id"] == "42", r
    assert r["link_id"] == ("7" if r["kind"] == "LINK" else None), r
assert sum(r["identities"]["dmp_cookie_id"] == sys.argv[2] for r in recs) >= 2
# Behind a trusted proxy (127.0.0.1 here) the visitor is the right-most
# X-Forwarded-For address; without the header, the peer itself.
import hashlib
want = {hashlib.sha256(b"it-salt" + ip.encode()).hexdigest() for ip in ("203.0.113.7", "127.0.0.1")}
got = {r["ip_hash"] for r in recs}
assert got == want, (got, want)
PY
ok "link.clicks: two clicks and a read-online view, from the signed link only; ip_hash of the visitor behind the proxy"
kcat -C -b "$BS" -t cookie.syncs -e -q -f '%R%s' > "$WORK/syncs.raw"
python3 tests/integration/check_avro.py schemas/manifest.cfg cookie.syncs-value \
  < "$WORK/syncs.raw" > "$WORK/syncs.json" || fail "cookie.syncs does not decode"
python3 - "$WORK/syncs.json" "$COOKIE" <<'PY' || fail "cookie.syncs"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 1, recs
r = recs[0]
assert (r["partner"], r["partner_user_id"], r["cookie_id"], r["site"]) == ("tealium", "tl-99", sys.argv[2], "shop"), r
assert r["consent"] == {"gdpr_applies": True, "tcf_string": "CPabc"}, r
PY
ok "cookie.syncs: one pair, the macro and the id-less request not produced"
check "the access log has no token and no cookie value" \
  bash -c "! grep -q -e old-tok -e cm-tok -e mp-tok -e '$COOKIE' -e 'k1\.' '$WORK/access.log' && grep -q '\"status\":413' '$WORK/access.log'"
check "metrics count the records by source and result" \
  test "$(metric "$ADMIN_URL" relay_ingest_records_total source=cmcdp result=rejected)" = 1
kill "$INGEST_PID"; wait "$INGEST_PID" 2>/dev/null || true
done_checks
