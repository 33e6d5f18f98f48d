#!/usr/bin/env python3
"""Checks the Grafana dashboard deploy/grafana/dashboards/relay.json.

Static (--metrics, no Prometheus needed): panel ids are unique, every panel
has a query, and every metric name a query uses is one the workers expose.
The exposed names come from --metrics, given once or more: a file or URL of
Prometheus text exposition (a live worker's /metrics), or a list of "name
type" lines such as tests/deploy/metrics.txt. A histogram stands for its
_bucket/_sum/_count series; `up` (made by Prometheus) is always known.
--rules FILE also checks the expressions of a Prometheus rules file.

Live (--prometheus URL): every panel's query is evaluated through the
Prometheus HTTP API (/api/v1/query, an instant query at the current time)
and must return at least one series with a number that is not NaN. Run it
while the workers are scraped and have done some work (records in and out,
HTTP requests, a retry and a dead letter); --allow-empty ID lets a panel
show no data (e.g. one whose events the run does not cause).

Examples:
  check_dashboard.py --metrics tests/deploy/metrics.txt \\
      --rules deploy/prometheus/alerts.yml deploy/grafana/dashboards/relay.json
  check_dashboard.py --metrics http://127.0.0.1:9400/metrics \\
      --metrics http://127.0.0.1:9401/metrics deploy/grafana/dashboards/relay.json
  check_dashboard.py --prometheus http://127.0.0.1:9090 deploy/grafana/dashboards/relay.json

Prints one "ok - ..." / "not ok - ..." line per check; exits 1 if any failed.
"""
import argparse
import json
import math
import re
import sys
import urllib.parse
import urllib.request

TYPES = {"counter", "gauge", "histogram", "summary", "untyped", "info", "stateset",
         "gaugehistogram", "unknown"}
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"),
            "gaugehistogram": ("_bucket", "_gsum", "_gcount")}
BUILTIN = {"up"}
KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring",
            "group_left", "group_right", "offset", "inf", "nan", "atan2"}

failed = 0


def report(good, what):
    global failed
    print(("ok - " if good else "not ok - ") + what)
    if not good:
        failed += 1


def read_text(src):
    if re.match(r"https?://", src):
        with urllib.request.urlopen(src, timeout=10) as r:
            return r.read().decode()
    with open(src) as f:
        return f.read()


def exposed_names(text):
    """Metric names in exposition text or in "name type" lines."""
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#":
            if len(parts) >= 4 and parts[1] == "TYPE":
                names.add(parts[2])
                names.update(parts[2] + s for s in SUFFIXES.get(parts[3], ()))
            continue
        name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line)
        if not name:
            continue
        names.add(name.group(0))
        if len(parts) == 2 and parts[1] in TYPES:
            names.update(name.group(0) + s for s in SUFFIXES.get(parts[1], ()))
    return names


def substitute(expr, rate_interval):
    """Grafana's interval variables, as a live instant query needs them."""
    for var in ("$__rate_interval", "$__interval", "${__rate_interval}", "${__interval}"):
        expr = expr.replace(var, rate_interval)
    return expr


def metric_names(expr):
    """The metric names a PromQL expression selects (not functions, labels,
    keywords or numbers)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\$\{?\w+\}?", "", s)          # template variables
    s = re.sub(r"\{[^}]*\}", " ", s)            # label matchers
    s = re.sub(r"\[[^\]]*\]", " ", s)           # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-z]+", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        if m.start() and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue                            # 1e3, 0x1f
        if s[m.end():].lstrip().startswith("("):
            continue                            # function or aggregation
        if m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def panels_of(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])          # panels inside a collapsed row


def queries(dash):
    for p in panels_of(dash):
        for t in p.get("targets", []):
            yield p, t.get("refId", "?"), t.get("expr", "")


def check_static(dash, known, rules):
    ids = [p.get("id") for p in panels_of(dash)]
    dup = sorted({i for i in ids if ids.count(i) > 1}, key=str)
    report(not dup and None not in ids,
           f"panel ids unique ({len(ids)} panels)" if not dup and None not in ids
           else f"panel ids unique: duplicated {dup}" + (", a panel has no id" if None in ids else ""))
    empty = [p.get("id") for p in panels_of(dash)
             if p.get("type") != "row" and not any(t.get("expr") for t in p.get("targets", []))]
    report(not empty, "every panel has a query" + (f": panels {empty} have none" if empty else ""))
    exprs = [(f"panel {p.get('id')} {p.get('title')!r} {ref}", e) for p, ref, e in queries(dash)]
    for path in rules or []:
        import yaml
        with open(path) as f:
            doc = yaml.safe_load(f)
        for g in doc.get("groups", []):
            for r in g.get("rules", []):
                exprs.append((f"{path} {r.get('alert') or r.get('record')}", str(r["expr"])))
    for where, expr in exprs:
        unknown = sorted(metric_names(expr) - known - BUILTIN)
        report(not unknown, f"{where}: metrics exposed"
               + (f": unknown {', '.join(unknown)}" if unknown else ""))


def check_live(dash, prometheus, rate_interval, allow_empty):
    base = prometheus.rstrip("/")
    try:
        with urllib.request.urlopen(base + "/api/v1/status/buildinfo", timeout=10) as r:
            version = json.load(r)["data"]["version"]
    except Exception as e:
        report(False, f"Prometheus at {base} answers: {e}")
        return
    report(True, f"Prometheus {version} at {base} answers")
    for p, ref, expr in queries(dash):
        where = f"panel {p.get('id')} {p.get('title')!r} {ref}"
        q = substitute(expr, rate_interval)
        url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            with urllib.request.urlopen(url, timeout=15) as r:
                ans = json.load(r)
        except Exception as e:                  # HTTP 400 for a bad query, refused ...
            body = e.read().decode(errors="replace")[:300] if hasattr(e, "read") else ""
            report(False, f"{where}: query failed: {e} {body}".rstrip())
            continue
        data = ans.get("data", {})
        result = data.get("result", [])
        if data.get("resultType") == "scalar":
            result = [{"value": result}]
        values = [float(s["value"][1]) for s in result if "value" in s]
        numbers = [v for v in values if not math.isnan(v)]
        if numbers:
            report(True, f"{where}: {len(numbers)} series")
        elif p.get("id") in allow_empty:
            report(True, f"{where}: no data (allowed) # {q}")
        else:
            why = "only NaN" if values else "no data"
            report(False, f"{where}: {why} for {q}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for the modes.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dashboard", help="Grafana dashboard JSON")
    ap.add_argument("--metrics", action="append", metavar="FILE|URL",
                    help="exposed metric names: a /metrics URL or file, or a 'name type' list "
                         "(repeat for several workers); turns on the static check")
    ap.add_argument("--rules", action="append", metavar="FILE",
                    help="also check the metric names of this Prometheus rules file")
    ap.add_argument("--prometheus", metavar="URL",
                    help="evaluate every panel query at this Prometheus (e.g. http://127.0.0.1:9090)")
    ap.add_argument("--rate-interval", default="1m",
                    help="what $__rate_interval becomes in live queries (default 1m: "
                         "needs a scrape interval of 30 s or less)")
    ap.add_argument("--allow-empty", action="append", type=int, default=[], metavar="ID",
                    help="panel id whose queries may return no data in the live check")
    a = ap.parse_args()
    if not a.metrics and not a.prometheus:
        ap.error("give --metrics (static check), --prometheus (live check), or both")
    with open(a.dashboard) as f:
        dash = json.load(f)
    if a.metrics:
        known = set()
        for src in a.metrics:
            known |= exposed_names(read_text(src))
        check_static(dash, known, a.rules)
    if a.prometheus:
        check_live(dash, a.prometheus, a.rate_interval, set(a.allow_empty))
    print(f"check_dashboard: {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
