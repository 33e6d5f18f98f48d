#!/usr/bin/env python3
"""relayctl dlq list output on stdin → "key<TAB>stage<TAB>error" lines."""
import json
import sys

for line in sys.stdin:
    r = json.loads(line)
    h = r["headers"]
    print("\t".join([r["key"] or "", h["relay.stage"], h["relay.error"]]))
