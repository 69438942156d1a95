#!/usr/bin/env bash
# Session 8, call 2 (issue 17): the sm90 GEMM in every layout plus the split-K kernel
# (cuda.gemm.batch_invariant.sm90.splitk) and the stream workspace's enqueue lock: the gemm_bi
# stage (GEMM GPU tests with four threads on one stream, verify --op gemm, bench NN/NT/TN with
# the pre-session build's sm90 rows as "old:", torch), the other workspace users (verify
# token_logprobs and attention, the CUDA graph tests), then sanitize_gemm. Logs in $OUT/all.tgz.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s8; mkdir -p "$OUT"
timeout 260 bash scripts/gpu_proof.sh gemm_bi >"$OUT/console_gemm_bi.log" 2>&1
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
{
  for op in token_logprobs attention; do
    timeout 60 .gpu/kernelyard verify --device cuda:0 --op $op 2>/dev/null | tail -12
  done
  timeout 60 .gpu/bin/graph --include-ignored --test-threads 1 2>&1 | tail -8
} >"$OUT/workspace_users.log" 2>&1
grep -E "passed|test result" "$OUT/workspace_users.log" | sed 's/^/## /' >>"$OUT/console_gemm_bi.log"
# Where the split-K kernel's time goes at small M: ncu's duration of each kernel (the GEMM
# and its reduction) against the unsplit kernel's.
for s in m=128,n=4096,k=4096 m=1,n=4096,k=4096; do
  for kern in cuda.gemm.batch_invariant.sm90.splitk cuda.gemm.batch_invariant.sm90; do
    echo "=== $s $kern"
    timeout 60 ncu --clock-control none --metrics gpu__time_duration.sum -k regex:gemm_bi_sm90 -c 6 \
      .gpu/kernelyard bench gemm --problem $s --dtype bf16 --device cuda:0 --kernel $kern 2>&1 \
      | grep -E "gemm_bi_sm90|gpu__time_duration" | tail -6
  done
done >"$OUT/ncu_splitk.log" 2>&1
timeout 200 bash scripts/gpu_proof.sh sanitize_gemm >"$OUT/console_sanitize.log" 2>&1
cp "$OUT/ratios_gemm.md" "$FINAL/" 2>/dev/null
grep -hE "^## " "$OUT"/console_*.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
cat "$FINAL/summary.txt"
