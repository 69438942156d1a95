#!/usr/bin/env bash
# Issue 17's row-op round, sourced or run by the session call scripts on the GPU machine:
# `bash scripts/gpu_rows.sh DIR KERNELYARD` benches rms_norm, softmax, log_softmax, rope and
# silu_mul at the suite shapes (every kernel: --all; copy bandwidth in the JSON) next to
# torch_ops.py, into DIR/rows.jsonl, and writes DIR/rows.md (scripts/ratio_table.py).
set -uo pipefail
dir=$1 K=$2
: >"$dir/rows.jsonl"
r() { timeout 60 "$K" bench "$@" --device cuda:0 --all --json >>"$dir/rows.jsonl" 2>>"$dir/bench.err"; }
for sh in rows=16384,hidden=4096 rows=4096,hidden=8192; do r rms_norm --problem $sh --dtype bf16; done
for op in softmax log_softmax; do
  for sh in rows=16384,cols=4096 rows=4096,cols=32768 rows=4096,cols=8192; do r $op --problem $sh --dtype bf16; done
done
r rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
for sh in rows=16384,d=14336 rows=4096,d=11008; do r silu_mul --problem $sh --dtype bf16; done
for op in rms_norm softmax log_softmax rope silu_mul; do
  PYTHONUNBUFFERED=1 timeout 60 python3 .gpu/torch_ops.py --op $op >>"$dir/rows.jsonl" 2>>"$dir/bench.err"
done
python3 scripts/ratio_table.py "$dir/rows.jsonl" >"$dir/rows.md" 2>&1
