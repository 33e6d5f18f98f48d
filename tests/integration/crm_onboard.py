#!/usr/bin/env python3
"""The independent side of scenario 0022 (relayctl onboard): the dirty CSV,
what every row of it must become, computed here from the crm.records docs
with Python's csv and hashlib (none of relay's C code), and crm.records read
back with confluent-kafka and decoded with fastavro.

  crm_onboard.py make OUT.csv
      the dirty export: a UTF-8 BOM, CRLF, quoted fields with commas,
      doubled quotes and a line end, e-mails in mixed case with spaces,
      phones in several formats, invalid and duplicate rows
  crm_onboard.py edit IN.csv OUT.csv
      the next day's export: c2's e-mail and c3's phone changed, c7 gone
  crm_onboard.py read BOOTSTRAP MANIFEST OUT.jsonl
      every record of crm.records as {key, partition, offset, value}
  crm_onboard.py verify CSV RECORDS.jsonl REJECTS.csv [--partial]
      each record's hashes, ids, attributes and source_row against this
      file's own computation (and, unless --partial, a record for every
      row that must have one); the rejects file's lines and reasons; prints
      "produced=N rejected=N duplicates=N" as expected from the CSV
"""
import csv
import hashlib
import io
import json
import re
import struct
import sys

HEADER = ["Customer ID", "E-mail", "Mobile", "Street", "Zip", "City",
          "Country", "Customer since", "LTV", "Currency", "Newsletter",
          "Interests", "First name", "Notes"]

ROWS = [
    ["c1", "  John.Doe@Example.COM ", "06-12345678", "Main  Street 1",
     "1234 AB", "Amsterdam", "NL", "2020-02-29", "1234.5", "eur", "yes",
     "ski; running ;", "John", "plain"],
    ["c2", "ANN@EXAMPLE.org", "+31 (0)6 1111 2222", "Keizersgracht 12, 3hg",
     "1015 CS", "AMSTERDAM", "nl", "", "", "", "no", "", "Ann",
     'she said "hi"'],
    ["c3", "\tbob@example.com", "0031 6 2222 3333", "Oudegracht 5",
     "3511 AB", "Utrecht", "", "2019-12-31", "0.99", "EUR", "", "books",
     "Bob", "two\nlines"],
    ["c4", "", "(020) 555-1234", "Dam 1", "1012JS", "  Amsterdam  ", "",
     "", "", "", "", "", "Dirk", ""],
    ["c5", "not-an-email", "+31 6 3333 4444", "", "", "", "", "", "", "",
     "1", "", "Eve", ""],
    ["c6", "", "", "", "", "", "", "", "", "", "", "", "Fay", ""],
    ["c9", "x@example.com", "0612345678"],  # ragged
    ["", "nobody@example.com", "", "", "", "", "", "", "", "", "", "", "",
     ""],
    ["c8", "c8@example.com", "", "", "", "", "", "31-02-2020", "", "", "",
     "", "Gus", ""],
    ["c1", "john.doe@example.com", "", "", "", "", "", "", "", "", "", "",
     "John", "again"],
    ["c7", "Mixed.Case@Example.CO.UK", "+44 20 7946 0958", "", "", "", "",
     "", "", "", "", "", "Hal", ""],
    ["c10", "\u00c9MILE@exemple.fr", "06 9999 8888", "Rue de la Paix 2",
     "75002", "PARIS", "FR", "", "", "", "", "", "\u00c9mile", ""],
]

SECRETS = ["John", "Ann", "Bob", "Dirk", "Eve", "Fay", "Gus", "Hal",
           "doe@example", "ann@example", "bob@example", "mixed.case",
           "612345678", "611112222", "Keizersgracht", "Oudegracht"]


def write(path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8"))


def sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def email(s):
    e = s.strip().lower()
    if not e:
        return None
    local, _, dom = e.partition("@")
    if e.count("@") != 1 or not local or "." not in dom or " " in e:
        return None
    return e


def phone(s):
    """E.164 with NL (calling code 31, trunk prefix 0) as the default."""
    s = s.strip()
    if not s:
        return None
    compact = re.sub(r"[\s\-./()]", "", s)
    if s.startswith("+") or compact.startswith("00"):
        s = s.replace("(0)", "")
    digits = re.sub(r"[\s\-./()]", "", s)
    if digits.startswith("+"):
        n = digits[1:]
    elif digits.startswith("00"):
        n = digits[2:]
    else:
        n = "31" + (digits[1:] if digits.startswith("0") else digits)
    if not n.isdigit() or not 8 <= len(n) <= 15 or n[0] == "0":
        return None
    return "+" + n


def address(street, pc, city, country):
    if not (street.strip() and pc.strip() and city.strip()):
        return None
    return "|".join([" ".join(street.split()).lower(),
                     "".join(pc.split()).lower(),
                     " ".join(city.split()).lower(),
                     (country.strip() or "NL").lower()])


def expect(path):
    """customer id -> expected record fields, and the rejects by line."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        r = csv.reader(f)
        header = next(r)
        want, rejects, dups = {}, {}, 0
        start = r.line_num + 1
        for row in r:
            line, start = start, r.line_num + 1
            if len(row) != len(header):
                rejects[line] = "wrong number of fields"
                continue
            d = dict(zip(header, row))
            cid = d["Customer ID"].strip()
            if not cid:
                rejects[line] = "no customer id"
                continue
            ids = {"customer_id": cid}
            for k, v in (("email_sha256", email(d["E-mail"])),
                         ("mobile_sha256", phone(d["Mobile"])),
                         ("address_sha256", address(d["Street"], d["Zip"],
                                                    d["City"], d["Country"]))):
                ids[k] = sha(v) if v else None
            if not any(ids[k] for k in ("email_sha256", "mobile_sha256",
                                        "address_sha256")):
                rejects[line] = "no identity"
                continue
            since = d["Customer since"]
            if since and not re.fullmatch(r"\d{4}-\d\d-\d\d", since):
                rejects[line] = "bad customer_since"
                continue
            if cid in want:
                rejects[line] = "duplicate"
                dups += 1
                continue
            interests = [i.strip() for i in d["Interests"].split(";")
                         if i.strip()]
            want[cid] = {"identities": ids, "source_row": line,
                         "interests": interests or None,
                         "notes": d["Notes"].strip() or None}
    return want, rejects, dups


def read(bootstrap, manifest, out):
    import fastavro
    from confluent_kafka import Consumer, TopicPartition
    text = open(manifest).read()
    m = re.search(r'id\s*=\s*(\d+);[^}]*subject\s*=\s*"crm.records-value";'
                  r'[^}]*file\s*=\s*"([^"]+)"', text)
    schema_id = int(m.group(1))
    schema = fastavro.parse_schema(json.load(open(
        manifest.rsplit("/", 1)[0] + "/" + m.group(2))))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crm-check",
                  "enable.auto.commit": False})
    md = c.list_topics("crm.records", timeout=10).topics["crm.records"]
    with open(out, "w") as f:
        for p in sorted(md.partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition("crm.records", p),
                                             timeout=10)
            if hi <= lo:
                continue
            c.assign([TopicPartition("crm.records", p, lo)])
            got = 0
            while got < hi - lo:
                msg = c.poll(10)
                if msg is None:
                    sys.exit(f"crm.records[{p}]: timed out")
                if msg.error():
                    continue
                v = msg.value()
                assert v[0] == 0, "not Confluent framing"
                assert struct.unpack(">I", v[1:5])[0] == schema_id
                buf = io.BytesIO(v[5:])
                rec = fastavro.schemaless_reader(buf, schema)
                assert buf.tell() == len(v) - 5, "trailing bytes"
                f.write(json.dumps({"key": msg.key().decode(), "partition": p,
                                    "offset": msg.offset(), "value": rec},
                                   default=str) + "\n")
                got += 1
    c.close()


def verify(path, records, rejects_file, partial=False):
    want, rejects, dups = expect(path)
    recs = [json.loads(l) for l in open(records)]
    failed = 0

    def bad(what):
        nonlocal failed
        failed += 1
        print("MISMATCH " + what)

    seen = {}
    for r in recs:
        v = r["value"]
        cid = v["identities"]["customer_id"]
        seen.setdefault(cid, []).append(v)
        w = want.get(cid)
        if w is None:
            bad(f"record for {cid!r}, which must not be produced")
            continue
        for k, h in w["identities"].items():
            if v["identities"][k] != h:
                bad(f"{cid}.{k}: {v['identities'][k]} != {h}")
        if r["key"] != "acme/" + cid:
            bad(f"{cid}: key {r['key']}")
        if v["source_row"] != w["source_row"]:
            bad(f"{cid}: source_row {v['source_row']} != {w['source_row']}")
        if v["tenant"] != "acme" or v["source"] != "crm":
            bad(f"{cid}: tenant/source {v['tenant']}/{v['source']}")
        if v["attributes"].get("interests") != w["interests"]:
            bad(f"{cid}: interests {v['attributes'].get('interests')}")
        if v["attributes"].get("notes") != w["notes"]:
            bad(f"{cid}: notes {v['attributes'].get('notes')!r}")
        if "first_name" in v["attributes"]:
            bad(f"{cid}: the dropped column was sent")
    for cid in want:
        if cid not in seen and not partial:
            bad(f"no record for {cid}")
    # The rejects file: every expected reject by its line and reason.
    with open(rejects_file, encoding="utf-8", newline="") as f:
        got = {}
        for row in csv.DictReader(f):
            if not row["reason"].startswith("sent without"):
                got[int(row["line"])] = row["reason"]
    if got != rejects:
        bad(f"rejects {got} != {rejects}")
    print(f"produced={len(want)} rejected={len(rejects) - dups} "
          f"duplicates={dups}")
    return 1 if failed else 0


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        write(sys.argv[2], HEADER, ROWS)
    elif cmd == "edit":
        with open(sys.argv[2], encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        out = []
        for row in rows[1:]:
            if row[0] == "c2":
                row[1] = "ann.new@example.org"
            if row[0] == "c3":
                row[2] = "06 7777 6666"
            if row[0] != "c7":
                out.append(row)
        write(sys.argv[3], rows[0], out)
    elif cmd == "read":
        read(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "verify":
        sys.exit(verify(sys.argv[2], sys.argv[3], sys.argv[4],
                        "--partial" in sys.argv[5:]))
    elif cmd == "secrets":
        print("\n".join(SECRETS))


if __name__ == "__main__":
    main()
