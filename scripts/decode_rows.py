#!/usr/bin/env python3
"""Re-key kernelyard's `attention` bench rows of one-query problems as torch_ops.py's
`attention_decode` rows, so scripts/ratio_table.py puts them side by side.

  python3 scripts/decode_rows.py bench.jsonl > decode.jsonl

Ours have shape [B, Sq, Hq, Hkv, D, causal, Skv] and report TFLOP/s; torch_ops.py's
attention_decode rows have shape [B, Skv, Hq, Hkv, D] and TB/s over K and V read once
(2 * B * Skv * Hkv * D * element size bytes). Each of our rows with Sq = 1 and causal = 0 is
printed as such a row (op "attention_decode", tbps and, with the file's copy bandwidth,
copy_fraction); every other line is passed through unchanged.
"""
import json
import sys

SIZES = {"f32": 4, "f16": 2, "bf16": 2}


def main(path):
    copy = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if "op" not in row:
                copy = row.get("copy_tbps", copy)
                print(line)
                continue
            shape = row.get("shape", [])
            if row.get("op") != "attention" or len(shape) != 7 or shape[1] != 1 or shape[5] != 0:
                print(line)
                continue
            b, _, hq, hkv, d, _, skv = shape
            nbytes = 2 * b * skv * hkv * d * SIZES[row["dtype"]]
            out = dict(row, op="attention_decode", shape=[b, skv, hq, hkv, d])
            out.pop("tflops", None)
            out["tbps"] = round(nbytes / (row["ms"] * 1e-3) / 1e12, 3)
            if copy:
                out["copy_fraction"] = round(out["tbps"] / copy, 3)
            print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: decode_rows.py BENCH.jsonl")
    main(sys.argv[1])
