#!/usr/bin/env bash
# Session 12, call 3 (the last device minutes): head dim 256 in cuda.attention against torch
# SDPA (`torch_ops.py --op attention_hd256`: B2 S4096 H16 D256, causal and not; with
# cuda.attention on D = 128 at the same sizes for scale), and which m cuBLASLt's block-scaled
# FP8 matmul takes (call 2: m = 64 and 128 ran, 37 had no algorithm).
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
K=.gpu/kernelyard
{
  for m in 1 4 8 16 32 36 40 48 96; do
    r=$(timeout 30 $K bench scaled_gemm --problem "m=$m,n=512,k=1024,scale_a=block" --dtype f8e4m3 --device cuda:0 \
      --kernel cuda.scaled_gemm.cublaslt --iters 1 --warmup 0 --json 2>&1 | tail -1)
    echo "## cuBLASLt block m=$m: ${r:0:160}"
  done
  PYTHONUNBUFFERED=1 timeout 60 python3 .gpu/torch_ops.py --op attention_hd256
  for c in 0 1; do
    for d in 256 128; do
      timeout 40 .gpu/kernelyard-hd256 bench attention --problem "batch=2,seq_q=4096,heads_q=16,head_dim=$d,causal=$c" \
        --dtype bf16 --device cuda:0 --kernel cuda.attention --json 2>/dev/null | tail -1
    done
  done
} >"$FINAL/call3.log" 2>&1
cat "$FINAL/call3.log"
