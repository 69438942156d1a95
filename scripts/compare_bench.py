#!/usr/bin/env python3
"""Compares two kernelyard bench runs (JSON lines from `kernelyard bench --json`) made in the same
device call: e.g. the binary before a refactor (OLD) and after it (NEW). Rows are joined on
(op, shape, dtype, layout, impl); the table gives each side's median ms and NEW/OLD (1.00 = no
change; above 1 is slower). Rows present on one side only are listed as such.

    python3 scripts/compare_bench.py OLD.jsonl NEW.jsonl
"""
import json
import sys


def rows(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("peer") != "kernelyard" or "op" not in r or "ms" not in r:
                continue
            key = (r["op"], tuple(r["shape"]), r["dtype"], r.get("layout") or "", r["impl"])
            out[key] = r["ms"]
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    old, new = rows(sys.argv[1]), rows(sys.argv[2])
    print("| op | shape | dtype | layout | kernel | old ms | new ms | new/old |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for key in sorted(set(old) | set(new)):
        op, shape, dtype, layout, impl = key
        o, n = old.get(key), new.get(key)
        ratio = f"{n / o:.3f}" if o and n else ("new only" if n else "old only")
        if o and n:
            ratios.append(n / o)
        fmt = lambda v: f"{v:.4f}" if v is not None else "-"
        print(f"| {op} | {'x'.join(map(str, shape))} | {dtype} | {layout} | {impl} | {fmt(o)} | {fmt(n)} | {ratio} |")
    if ratios:
        ratios.sort()
        print(f"\n{len(ratios)} rows in both: new/old median {ratios[len(ratios) // 2]:.3f}, "
              f"min {ratios[0]:.3f}, max {ratios[-1]:.3f}")


if __name__ == "__main__":
    main()
