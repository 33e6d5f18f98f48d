#!/usr/bin/env python3
"""The one loss check of every fault scenario.

Every event a scenario produces carries a unique event_id. At the end:

    ids delivered to the simulator  ∪  ids in the dead-letter topics  ==  ids produced

- delivered: the simulator's --received-log (one source_request_id per
  accepted batch, kept across simulator restarts);
- dead-lettered: `relayctl dlq list TOPIC` output (JSON lines, headers and
  the decoded value) of dlq.transform and dlq.mparticle;
- a duplicate is a delivery beyond an id's first, or an id both delivered and
  dead-lettered, or dead-lettered twice; their number must stay within
  --max-dups (the records a crash, timeout or rebalance can have in flight);
- every dead letter names its reason (a non-empty relay.error and
  relay.stage) and its origin (relay.original_topic/partition/offset);
- a stub dead letter (relay.value_omitted, no value) is counted apart and
  must number exactly --stubs; any other dead letter without a known
  event_id is an error;
- --max-dlq bounds the dead letters of produced events, and --allow-dlq
  names the only ids that may be dead-lettered.

Prints one summary line (and the first few ids of each problem); exit 0 when
every check holds, 1 otherwise, 2 on unusable input.
"""
import argparse
import collections
import json
import sys

OMITTED = "relay.value_omitted"   # RELAY_DLQ_H_OMITTED in common/include/relay/dlq.h
ORIGIN = ("relay.original_topic", "relay.original_partition", "relay.original_offset")


def read_ids(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def sample(ids, n=5):
    ids = sorted(ids)
    more = f" (+{len(ids) - n} more)" if len(ids) > n else ""
    return ", ".join(ids[:n]) + more


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--produced", action="append", required=True, metavar="IDFILE",
                    help="ids produced, one a line (repeatable)")
    ap.add_argument("--received", required=True, metavar="LOG",
                    help="the simulator's --received-log")
    ap.add_argument("--dlq", action="append", default=[], metavar="JSONL",
                    help="relayctl dlq list output of one dead-letter topic (repeatable)")
    ap.add_argument("--max-dups", type=int, default=0)
    ap.add_argument("--max-dlq", type=int, default=None,
                    help="most dead letters of produced events (default: any)")
    ap.add_argument("--allow-dlq", metavar="IDFILE",
                    help="the only ids that may be dead-lettered")
    ap.add_argument("--stubs", type=int, default=0,
                    help="stub dead letters (value omitted) expected")
    ap.add_argument("--label", default="", help="prefix of the summary line")
    a = ap.parse_args(argv)

    produced = []
    for path in a.produced:
        produced += read_ids(path)
    want = set(produced)
    problems = []
    if len(want) != len(produced):
        c = collections.Counter(produced)
        problems.append(f"the producer side repeats ids, so the check is void: "
                        f"{sample(i for i, n in c.items() if n > 1)}")

    got = collections.Counter(read_ids(a.received))
    delivered = set(got) & want
    foreign = set(got) - want
    deliveries = sum(got[i] for i in delivered)

    dead = collections.Counter()
    stubs, unnamed, bad_reason = 0, [], []
    for path in a.dlq:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                    h = r["headers"]
                except (ValueError, KeyError, TypeError):
                    print(f"check_loss: {path}:{n}: not a relayctl dlq list line", file=sys.stderr)
                    return 2
                where = f"{path.rsplit('/', 1)[-1]}:{r.get('partition')}/{r.get('offset')}"
                if not (h.get("relay.error") or "").strip() or not h.get("relay.stage") \
                        or not all((h.get(k) or "").strip() for k in ORIGIN):
                    bad_reason.append(where)
                value = r.get("value")
                eid = value.get("event_id") if isinstance(value, dict) else None
                if OMITTED in h:
                    stubs += 1
                elif eid in want:
                    dead[eid] += 1
                else:
                    unnamed.append(f"{where} ({eid or r.get('value_error') or 'no value'})")

    dlq_ids = set(dead)
    lost = want - delivered - dlq_ids
    dups = (deliveries - len(delivered)) + sum(n - 1 for n in dead.values()) \
        + len(delivered & dlq_ids)
    ndead = sum(dead.values())

    if lost:
        problems.append(f"{len(lost)} lost (neither delivered nor dead-lettered): {sample(lost)}")
    if dups > a.max_dups:
        problems.append(f"{dups} duplicates, more than the bound {a.max_dups}")
    if a.max_dlq is not None and ndead > a.max_dlq:
        problems.append(f"{ndead} dead letters, at most {a.max_dlq} allowed: {sample(dlq_ids)}")
    if a.allow_dlq is not None:
        extra = dlq_ids - set(read_ids(a.allow_dlq))
        if extra:
            problems.append(f"{len(extra)} dead-lettered that may not be: {sample(extra)}")
    if stubs != a.stubs:
        problems.append(f"{stubs} stub dead letters ({OMITTED}), expected {a.stubs}")
    if unnamed:
        problems.append(f"{len(unnamed)} dead letters of no produced event: {sample(unnamed, 3)}")
    if bad_reason:
        problems.append(f"{len(bad_reason)} dead letters without relay.error/stage/origin: "
                        f"{sample(bad_reason, 3)}")
    if foreign:
        problems.append(f"{len(foreign)} delivered ids that were never produced: "
                        f"{sample(foreign)}")

    label = f"{a.label}: " if a.label else ""
    print(f"{label}produced {len(want)}, delivered {len(delivered)} ({deliveries} deliveries), "
          f"dead-lettered {ndead} (+{stubs} stubs), lost {len(lost)}, "
          f"duplicates {dups} (bound {a.max_dups})")
    for p in problems:
        print(f"  {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
