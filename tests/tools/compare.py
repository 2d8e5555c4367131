#!/usr/bin/env python3
"""Compare cxpulse replay output with expected rows (latest revision per row).

Usage: compare.py ACTUAL.jsonl EXPECTED.jsonl
Counts, numerators, windows (and revisions, when both sides have them)
must match exactly; value and means within
1e-9 relative; quantiles within 1% relative error. Exit 1 on any difference.
"""
import json, sys

def load(path):
    rows = {}
    for line in open(path):
        if not line.strip():
            continue
        r = json.loads(line)
        key = (r["kpi"], r["window"], r["window_start"], r["window_end"],
               tuple(sorted(r["group"].items())))
        prev = rows.get(key)
        if prev is None or r.get("revision", 0) >= prev.get("revision", 0):
            rows[key] = r
    return rows

def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-12

def main():
    actual, expected = load(sys.argv[1]), load(sys.argv[2])
    bad = 0
    for k in sorted(set(actual) | set(expected)):
        a, e = actual.get(k), expected.get(k)
        if a is None or e is None:
            bad += 1
            print("MISSING" if a is None else "EXTRA", k, e or a)
            continue
        problems = []
        if a["count"] != e["count"]:
            problems.append("count")
        if "revision" in a and "revision" in e and a["revision"] != e["revision"]:
            problems.append("revision")
        if a.get("numerator") != e.get("numerator"):
            problems.append("numerator")
        if not close(a["value"], e["value"], 1e-9):
            problems.append("value")
        if ("quantiles" in a) != ("quantiles" in e):
            problems.append("quantiles presence")
        elif "quantiles" in e:
            for q in ("p50", "p90", "p99"):
                if not close(a["quantiles"][q], e["quantiles"][q], 0.01):
                    problems.append(q)
        if problems:
            bad += 1
            print("DIFF", problems, k, "\n  actual  ", a, "\n  expected", e)
    print(f"{len(expected)} expected rows, {len(actual)} actual rows, {bad} differences")
    sys.exit(1 if bad else 0)

main()
