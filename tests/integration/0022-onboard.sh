#!/usr/bin/env bash
# Scenario 0022: relayctl onboard, a CRM export to crm.records, on the real
# broker, checked by an independent reader (crm_onboard.py: Python's csv and
# hashlib, confluent-kafka and fastavro; none of relay's C code):
#  - a dirty CSV (a BOM, CRLF, quoted fields with commas, doubled quotes and
#    a line end, e-mails in mixed case with spaces, phones in five formats,
#    invalid, ragged and duplicate rows) through a column spec: every
#    record's e-mail, phone and address hash equals the one computed in
#    Python from the same CSV, keyed acme/<customer id>, with the row's
#    line; no clear e-mail, phone, street or dropped name is in the topic;
#  - the rejects file names each rejected row's line and reason, and the
#    summary's counts are the ones Python expects;
#  - a re-run makes the same event ids;
#  - --delta after two rows changed and one removed sends exactly those
#    two (new event ids), counts four unchanged and one gone;
#  - an unreachable broker: exit 1 naming it, the state untouched;
#  - the progress bar only on a terminal.
source "$(dirname "$0")/lib.sh"
broker crm.records:3

PY="python3 $SRC/tests/integration/crm_onboard.py"
ctl() { "$BIN/relayctl" -b "$BS" "$@"; }
cat > "$WORK/spec.cfg" <<'EOF'
columns = { customer_id = "Customer ID"; email = "E-mail"; phone = "Mobile";
            street = "Street"; postcode = "Zip"; city = "City";
            country = "Country"; customer_since = "Customer since";
            lifetime_value = "LTV"; currency = "Currency"; };
consent = { email_marketing = "Newsletter"; };
attributes = ( { column = "Interests"; type = "list"; separator = ";"; },
               { column = "First name"; type = "drop"; } );
EOF
$PY make "$WORK/crm.csv"
STATE="$WORK/state"
mkdir -p "$STATE"
ONBOARD=(onboard --tenant acme --file "$WORK/crm.csv" --map "$WORK/spec.cfg"
         --default-country NL --state "$STATE")

check "onboard exits 0" ctl "${ONBOARD[@]}" 2>"$WORK/run1.err"
cat "$WORK/run1.err"
$PY read "$BS" schemas/manifest.cfg "$WORK/run1.jsonl"
check "every hash, key, row and attribute is what Python computes" \
  $PY verify "$WORK/crm.csv" "$WORK/run1.jsonl" "$WORK/crm.csv.rejects.csv"
read -r P R D < <($PY verify "$WORK/crm.csv" "$WORK/run1.jsonl" "$WORK/crm.csv.rejects.csv" |
                  sed 's/[a-z]*=//g')
check "the topic holds $P records" test "$(wc -l < "$WORK/run1.jsonl")" -eq "$P"
check "the summary: 12 rows read, $P produced, $R rejected, $D duplicates" \
  grep -q "onboard crm.csv: 12 rows read, $P produced, $R rejected, $D duplicates" "$WORK/run1.err"
check "the summary counts each reason" \
  grep -q "rejected: 1 no identity, 1 wrong number of fields, 1 no customer id, 1 bad customer_since" "$WORK/run1.err"
check "and the row sent without its invalid e-mail" \
  grep -q "sent without an invalid identity: 1 rows (e-mail 1, phone 0, address 0)" "$WORK/run1.err"
check "the rejects file has the row sent without its e-mail (line 7)" \
  grep -q '^7,sent without e-mail,' "$WORK/crm.csv.rejects.csv"
check "and the duplicate names the line that was sent" \
  grep -q '^12,duplicate,the same record id as line 2' "$WORK/crm.csv.rejects.csv"
kcat -C -b "$BS" -t crm.records -e -q -f '%k %s\n' > "$WORK/raw.bin" 2>/dev/null
leaks=$($PY secrets | while read -r s; do grep -c -a -- "$s" "$WORK/raw.bin" || true; done |
        awk '{n += $1} END {print n}')
check "no clear e-mail, phone, street or dropped name is in the topic" test "$leaks" -eq 0
check "no progress bar when stderr is not a terminal" \
  eval '! grep -q $'"'"'\e\[K'"'"' "$WORK/run1.err"'
check "the state holds the $P record ids sent" \
  test "$(tail -n +2 "$STATE/acme.crm.state" | wc -l)" -eq "$P"

# A re-run of the same file: the same event ids.
ids() { python3 -c '
import json, sys
for l in open(sys.argv[1]):
    v = json.loads(l)["value"]
    print(v["identities"]["customer_id"], v["event_id"])' "$1" | sort; }
check "a re-run exits 0" ctl "${ONBOARD[@]}" 2>"$WORK/run2.err"
$PY read "$BS" schemas/manifest.cfg "$WORK/run2.jsonl"
check "and makes the same event id for every row" \
  test "$(ids "$WORK/run2.jsonl" | uniq | wc -l)" -eq "$P"
check "(twice as many records, each id twice)" \
  test "$(ids "$WORK/run2.jsonl" | wc -l)" -eq $((2 * P))

# The next day's export: c2's e-mail and c3's phone changed, c7 gone.
$PY edit "$WORK/crm.csv" "$WORK/crm2.csv"
check "--delta exits 0" ctl onboard --tenant acme --file "$WORK/crm2.csv" \
  --map "$WORK/spec.cfg" --default-country NL --state "$STATE" --delta 2>"$WORK/run3.err"
cat "$WORK/run3.err"
$PY read "$BS" schemas/manifest.cfg "$WORK/run3.jsonl"
python3 -c '
import json, sys
old = {json.loads(l)["value"]["event_id"] for l in open(sys.argv[1])}
for l in open(sys.argv[2]):
    if json.loads(l)["value"]["event_id"] not in old:
        print(l, end="")' "$WORK/run2.jsonl" "$WORK/run3.jsonl" > "$WORK/run3.new.jsonl"
new=$(ids "$WORK/run3.new.jsonl" | cut -d" " -f1 | tr '\n' ' ' | sed 's/ $//')
check "--delta sent exactly the two changed rows, with new event ids (got: $new)" test "$new" = "c2 c3"
check "and nothing else" test "$(wc -l < "$WORK/run3.jsonl")" -eq $((2 * P + 2))
check "the summary: 2 produced, 4 unchanged, 1 gone" \
  grep -q "11 rows read, 2 produced, 4 rejected, 1 duplicates, 4 unchanged, 1 gone" "$WORK/run3.err"
check "the two records' hashes are Python's for the edited rows" \
  $PY verify "$WORK/crm2.csv" "$WORK/run3.new.jsonl" "$WORK/crm2.csv.rejects.csv" --partial
check "a --delta run with nothing changed sends nothing" \
  ctl onboard --tenant acme --file "$WORK/crm2.csv" --map "$WORK/spec.cfg" \
  --default-country NL --state "$STATE" --delta 2>"$WORK/run4.err"
check "(0 produced, 6 unchanged, 0 gone)" \
  grep -q "0 produced, 4 rejected, 1 duplicates, 6 unchanged, 0 gone" "$WORK/run4.err"

# An unreachable broker: exit 1 naming it, nothing acknowledged, the state
# as it was.
cp "$STATE/acme.crm.state" "$WORK/state.before"
set +e
"$BIN/relayctl" -b 127.0.0.1:1 onboard --tenant acme --file "$WORK/crm2.csv" \
  --map "$WORK/spec.cfg" --default-country NL --state "$STATE" 2>"$WORK/down.err"
DOWN_RC=$?
set -e
cat "$WORK/down.err"
check "an unreachable broker: exit 1" test "$DOWN_RC" -eq 1
check "naming the broker and that nothing was sent" \
  grep -q "Kafka at 127.0.0.1:1 did not answer.*nothing was sent" "$WORK/down.err"
check "the state is untouched" cmp -s "$STATE/acme.crm.state" "$WORK/state.before"

# A terminal gets the progress bar (script(1) gives relayctl a pty).
if command -v script >/dev/null; then
  script -qec "$BIN/relayctl -b $BS onboard --tenant acme --file $WORK/crm.csv \
    --map $WORK/spec.cfg --default-country NL --dry-run" "$WORK/tty.out" >/dev/null
  check "on a terminal the progress bar is drawn" grep -q 'reading \[' "$WORK/tty.out"
fi
done_checks
