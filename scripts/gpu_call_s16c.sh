#!/usr/bin/env bash
# Session 16, call 3 (the device minutes left): profiles for the next session on the committed
# build. ncu of token_logprobs at 64 x 151936 (the split kernel and the combine: which one the
# 20 us go to), of the FP8 kernel at 4096^3 (128 x 176) and of cuda.attention.sm90 at B4 S4096
# H32 D128 non-causal (FFMA softmax); then a third FP8 bench round for the range.
# Files under $OUT: progress.txt, ncu_tl.txt, ncu_fp8.txt, ncu_attn.txt, bench.jsonl.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
K=.gpu/kernelyard
device_line
s=$SECONDS
timeout 90 ncu --clock-control none --kernel-name regex:token_logprobs --launch-skip 4 --launch-count 2 \
  --section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats \
  $K bench token_logprobs --problem tokens=64,vocab=151936,entropy=1 --dtype bf16 --device cuda:0 --iters 1 --warmup 2 \
  >"$FINAL/ncu_tl.txt" 2>&1
note "ncu token_logprobs: rc=$?, $((SECONDS - s)) s"
s=$SECONDS
timeout 90 ncu --clock-control none --kernel-name regex:scaled_gemm_sm90 --launch-skip 2 --launch-count 1 \
  --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
  $K bench scaled_gemm --problem m=4096,n=4096,k=4096 --dtype f8e4m3 --device cuda:0 --kernel cuda.scaled_gemm.batch_invariant.sm90 --iters 1 --warmup 2 \
  >"$FINAL/ncu_fp8.txt" 2>&1
note "ncu fp8: rc=$?, $((SECONDS - s)) s"
s=$SECONDS
timeout 90 ncu --clock-control none --kernel-name regex:attention_sm90 --launch-skip 2 --launch-count 1 \
  --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis \
  $K bench attention --problem batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 --dtype bf16 --device cuda:0 --kernel cuda.attention.sm90 --iters 1 --warmup 2 \
  >"$FINAL/ncu_attn.txt" 2>&1
note "ncu attention: rc=$?, $((SECONDS - s)) s"
: >"$FINAL/bench.jsonl"
for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096; do
  for kern in cuda.scaled_gemm.cublaslt cuda.scaled_gemm.batch_invariant.sm90; do
    timeout 60 $K bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 --kernel $kern --json 2>/dev/null \
      | sed "s/\"impl\":\"/\"impl\":\"r3:/" >>"$FINAL/bench.jsonl"
  done
done
note "end at $SECONDS s"
cat "$P"
