#!/usr/bin/env python3
"""Compares two `kernelyard verify` progress logs (stderr) case by case: for each kernel named,
how many cases that passed in BEFORE print the same outcome and errors (the two digits the log
shows) in NOW, the cases NOW has that BEFORE had not, and NOW's failures. Used by the device
calls to show that a change kept a kernel's bits (scripts/gpu_call_s16a.sh, s16d.sh).

    python3 scripts/same_errors.py NOW.log BEFORE.log KERNEL [KERNEL ...]
"""
import re
import sys

PAT = re.compile(r"\] (\S+) (\S+) (\S+) on cuda:0 \.\.\. (\w+)(?: \((rel_l2 [^)]*)\))?")


def load(path):
    """(kernel, dtype, case) -> (outcome, errors) for every case line of a log."""
    out = {}
    with open(path, errors="replace") as f:
        for line in f:
            m = PAT.search(line)
            if m:
                out[m.group(1, 2, 3)] = m.group(4, 5)
    return out


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    now, before = load(sys.argv[1]), load(sys.argv[2])
    for kern in sys.argv[3:]:
        passed = [k for k in before if k[0] == kern and before[k][0] == "pass"]
        same = sum(1 for k in passed if now.get(k) == before[k])
        print(f"## {kern}: {same} of {len(passed)} cases passing before print the same "
              "outcome and errors now")
        differ = [k for k in passed if now.get(k) != before[k]]
        if differ:
            print(f"## {kern} differing: {differ[:8]}")
        new = sorted(k for k in now if k[0] == kern and k not in before)
        if new:
            print(f"## {kern} new cases: "
                  + ", ".join(f"{k[2]}/{k[1]}={now[k][0]} ({now[k][1]})" for k in new))
    print(f"## failures now: {[k for k, v in now.items() if v[0] == 'fail']}")


if __name__ == "__main__":
    main()
