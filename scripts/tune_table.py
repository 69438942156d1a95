#!/usr/bin/env python3
"""The table of a `kernelyard tune --json` sweep (scripts/gpu_proof.sh stage `tune`).

  python3 scripts/tune_table.py tune.jsonl

Per problem: the untuned choice (what selection picks without a tuning cache) and its ms, the
tuned choice and its ms, the gain (untuned ms / tuned ms), the tuning time, and how many
candidates were verified or rejected (with each rejection's reason below the table).
"""
import json
import sys


def main(path):
    rows, rejected = [], []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            ms = {}
            for m in r.get("measurements", []):
                c = m["candidate"]
                label = c["kernel"] + (f"@{c['tactic']}" if c.get("tactic") else "")
                ms[label] = m.get("ms")
                if m.get("rejected"):
                    rejected.append((r["key"], label, m["rejected"]))
            ok = sum(1 for m in r.get("measurements", []) if m.get("verified"))
            bad = sum(1 for m in r.get("measurements", []) if not m.get("verified"))
            u, t = r.get("untuned"), r.get("choice")
            um, tm = ms.get(u), ms.get(t)
            gain = f"{um / tm:.2f}x" if um and tm else "-"
            fmt = lambda v: f"{v:.4f}" if v else "-"
            rows.append(f"| {r['key']} | {u} | {fmt(um)} | {t} | {fmt(tm)} | {gain} | {r['seconds']:.1f} | {ok} / {bad} |")
    print("| key | untuned choice | ms | tuned choice | ms | gain | tuning s | verified / rejected |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if rejected:
        print("\nRejected candidates:")
        for key, label, why in rejected:
            print(f"- {key}: {label}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
