#!/usr/bin/env python3
"""Compares two prove.json files row by row: (scenario, bugs) -> (verdict, expected, failed, ok)."""
import json, sys
def rows(p):
    out = {}
    for r in json.load(open(p)):
        key = (r["scenario"], tuple(r["bugs"]))
        out[key] = (r["verdict"], tuple(sorted(r["expected"])), tuple(sorted(r["failed"])), r["ok"])
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
diff = 0
for k in sorted(set(a) | set(b)):
    if a.get(k) != b.get(k):
        diff += 1
        print(f"DIFFERENT {k}: before {a.get(k)} after {b.get(k)}")
print(f"{len(a)} rows before, {len(b)} after, {diff} different")
sys.exit(1 if diff else 0)
