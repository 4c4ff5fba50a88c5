#!/usr/bin/env python3
"""report.json's schema before and after: every key path (array indices collapsed) with its JSON type,
over all reports under each directory; also the top-level key order."""
import json, sys, glob, os
def paths(v, pre, out):
    t = type(v).__name__
    if isinstance(v, dict):
        out.add((pre, "object"))
        for k, x in v.items():
            paths(x, f"{pre}.{k}", out)
    elif isinstance(v, list):
        out.add((pre, "array"))
        for x in v:
            paths(x, f"{pre}[]", out)
    else:
        out.add((pre, "null" if v is None else t))
def schema(d):
    out, orders = set(), set()
    files = glob.glob(os.path.join(d, "**", "report.json"), recursive=True)
    for f in files:
        r = json.load(open(f))
        paths(r, "", out)
        orders.add(tuple(r.keys()))
    return files, out, orders
fa, a, oa = schema(sys.argv[1]); fb, b, ob = schema(sys.argv[2])
# a key seen with null in one and a value in the other is data, not schema: compare names, and types ignoring null
names = lambda s: {p for p, _ in s}
typed = lambda s: {(p, t) for p, t in s if t != "null"}
print(f"{len(fa)} reports before, {len(fb)} after; {len(names(a))} key paths before, {len(names(b))} after")
d1 = names(a) ^ names(b); d2 = typed(a) ^ typed(b)
for p in sorted(names(a) - names(b)): print("only before:", p)
for p in sorted(names(b) - names(a)): print("only after: ", p)
for p in sorted(d2 - {(p, t) for p, t in d2 if p in d1}): print("type differs:", p)
print("top-level key orders before:", len(oa), "after:", len(ob), "same" if oa == ob else "DIFFERENT")
sys.exit(1 if d1 or d2 or oa != ob else 0)
