#!/usr/bin/env python3
"""Compares the evidence texts of two matrix runs (their prove.json and the reports they name),
expectation by expectation: the texts with every number masked ("503×20 at 4.1 s" -> "503×# at #
s" keeps status codes: 3-digit numbers from 100 to 599 directly before × or inside a status list
are kept) must be equal. Two runs of the same code differ in what they measured, so run it on two
runs of the old code too: the changes counted there are the noise to compare with.
Usage: scripts/compare-evidence.py BEFORE/prove.json AFTER/prove.json"""
import json, re, sys

def mask(text):
    # Keep status codes (a 1xx-5xx number followed by ×, " (ingress)", " without" or " at "), and
    # request ids as one token; mask every other number.
    text = re.sub(r"bo-[0-9a-f]{8}-\d+-\d+", "bo-ID", text)
    out, last = [], 0
    for m in re.finditer(r"\d+(?:\.\d+)?", text):
        n, after = m.group(), text[m.end():m.end() + 10]
        keep = re.fullmatch(r"[1-5]\d\d", n) and (after.startswith("×") or after.startswith(" (ingress)") or after.startswith(" without") or after.startswith(" at "))
        out.append(text[last:m.start()] + (n if keep else "#"))
        last = m.end()
    return "".join(out) + text[last:]

def texts(p):
    out = {}
    for row in json.load(open(p)):
        try:
            rep = json.load(open(row["report"] + "/report.json"))
        except (OSError, TypeError, ValueError):
            continue
        for e in rep.get("expectations", []):
            out[(row["scenario"], tuple(row["bugs"]), e["id"])] = (e["passed"], mask(e["evidence"]))
    return out

a, b = texts(sys.argv[1]), texts(sys.argv[2])
same = sum(1 for k in a if k in b and a[k] == b[k])
diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
for k in diff:
    print(f"DIFFERENT {k}:\n  before {a.get(k)}\n  after  {b.get(k)}")
print(f"{len(a)} expectations before, {len(b)} after: {same} with the same masked evidence, {len(diff)} different")
