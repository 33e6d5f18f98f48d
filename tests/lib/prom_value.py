#!/usr/bin/env python3
"""Read one number from a Prometheus text exposition on stdin.

    prom_value.py NAME [LABEL=VALUE ...] [--max]

prints the sum (or, with --max, the largest) of the samples named exactly
NAME whose labels include every LABEL=VALUE given; "none" (exit 1) when no
sample matches. The parser follows the text format 0.0.4: comments, label
values with escaped quotes, backslashes and newlines, NaN and +Inf.
"""
import math
import re
import sys

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def labels(text):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError("bad labels: %r" % text)
        out[m.group(1)] = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                 m.group(2))
        pos = m.end()
    return out


def main():
    args = [a for a in sys.argv[1:] if a != "--max"]
    use_max = "--max" in sys.argv[1:]
    if not args:
        sys.exit("usage: prom_value.py NAME [LABEL=VALUE ...] [--max]")
    name, want = args[0], dict(a.split("=", 1) for a in args[1:])
    values = []
    for line in sys.stdin:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            sys.exit("not a sample line: %r" % line)
        if m.group(1) != name:
            continue
        lab = labels(m.group(3) or "")
        if all(lab.get(k) == v for k, v in want.items()):
            values.append(float(m.group(4)))
    if not values:
        print("none")
        sys.exit(1)
    v = max(values) if use_max else math.fsum(values)
    print(int(v) if v == int(v) else v)


if __name__ == "__main__":
    main()
