#!/usr/bin/env bash
# Session 16, call 5 (the last device minutes): the FP8 kernel's tile-width rule. Builds of the
# committed source with `NARROW_MAX_N` (crates/cuda/src/ops/scaled_gemm_sm90.rs) changed:
# .gpu/kernelyard-wide (0: 128 x 192 always), -narrow (128 x 176 always), .gpu/kernelyard
# (176 up to n = 4096). verify --op scaled_gemm on -wide (the 192-wide modules at the suite's
# small n, after this session's macro change), then one bench round at m = k = 4096 over n.
# Files under $OUT: progress.txt, bench.jsonl, verify_wide.log.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
device_line
BI=cuda.scaled_gemm.batch_invariant.sm90
timeout 60 .gpu/kernelyard-wide verify --device cuda:0 --op scaled_gemm >"$FINAL/verify_wide.log" 2>&1
note "wide verify --op scaled_gemm: rc=$?, $(grep -E "^cuda:0 $BI |^total" "$FINAL/verify_wide.log" | tr -s ' ' | tr '\n' ' ')"
: >"$FINAL/bench.jsonl"
for n in 2048 3072 4096 5120 6144 8192 14336; do
  s=m=4096,n=$n,k=4096
  timeout 30 .gpu/kernelyard bench scaled_gemm --problem $s --dtype f8e4m3 --device cuda:0 --kernel cuda.scaled_gemm.cublaslt --json 2>/dev/null >>"$FINAL/bench.jsonl"
  for b in kernelyard-wide kernelyard-narrow; do
    timeout 30 .gpu/$b bench scaled_gemm --problem $s --dtype f8e4m3 --device cuda:0 --kernel $BI --json 2>/dev/null \
      | sed "s/\"impl\":\"$BI\"/\"impl\":\"${b#kernelyard-}:$BI\"/" >>"$FINAL/bench.jsonl"
  done
done
note "end at $SECONDS s"
cat "$P"
