#!/usr/bin/env bash
# Session 8, call 4: is the unsplit sm90 kernel's slowdown (4-27 % against the session's
# starting build, calls 2 and 3) the epilogue's runtime pairs flag (two fully unrolled store
# variants, 1028 STG against 516)? kernelyard-e always stores pairs as words (a timing-only
# build). sm90 kernel only, old vs v3 vs e, two rounds, and ncu durations at 128x4096x4096.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
: >"$FINAL/ab2.jsonl"
for round in 1 2; do
  for s in m=128,n=4096,k=4096 m=4096,n=4096,k=4096; do
    for b in kernelyard-old kernelyard kernelyard-e; do
      timeout 30 .gpu/$b bench gemm --problem "$s" --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90 --json 2>/dev/null \
        | sed "s/\"impl\":\"cuda.gemm/\"impl\":\"$b$round:cuda.gemm/" >>"$FINAL/ab2.jsonl"
    done
  done
done
python3 scripts/ratio_table.py "$FINAL/ab2.jsonl" 2>&1 | grep -E "sm90" | head -12
for b in kernelyard-old kernelyard kernelyard-e; do
  echo "=== $b"
  timeout 40 ncu --clock-control none --metrics gpu__time_duration.sum -k regex:gemm_bi_sm90 -c 2 \
    .gpu/$b bench gemm --problem m=128,n=4096,k=4096 --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90 2>&1 \
    | grep -E "gpu__time_duration" | tail -2
done
