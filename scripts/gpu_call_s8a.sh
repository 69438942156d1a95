#!/usr/bin/env bash
# Session 8, call 1 (issue 17: the sm90 invariant GEMM in every layout and alignment, and its
# split-K for small M): the gemm_bi stage (GEMM GPU tests, verify --op gemm, bench NN/NT/TN
# with the old build's sm90 rows as "old:", torch.matmul and gemm_layouts), a variant build
# with MAX_SPLITS = 8 (.gpu/kernelyard-s8, rows "s8:") against the committed 4 at small M and
# 4096^3, then sanitize_gemm (memcheck, racecheck, synccheck) within the call's time. Every
# log is packed into $OUT/all.tgz.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s8; mkdir -p "$OUT"
timeout 250 bash scripts/gpu_proof.sh gemm_bi >"$OUT/console_gemm_bi.log" 2>&1
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
: >"$OUT/splits.jsonl"
for s in m=1,n=4096,k=4096 m=128,n=4096,k=4096 m=4096,n=4096,k=4096 m=128,n=14336,k=4096; do
  for t in "" ",trans_b=1" ",trans_a=1"; do
    for b in kernelyard kernelyard-s8; do
      timeout 60 .gpu/$b bench gemm --problem "$s$t" --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90 --json 2>>"$OUT/bench.err" \
        | sed "s/\"impl\":\"cuda.gemm/\"impl\":\"$b:cuda.gemm/" >>"$OUT/splits.jsonl"
    done
  done
done
python3 scripts/ratio_table.py "$OUT/splits.jsonl" >"$OUT/splits.md" 2>&1
timeout 280 bash scripts/gpu_proof.sh sanitize_gemm >"$OUT/console_sanitize.log" 2>&1
cp "$OUT/ratios_gemm.md" "$OUT/splits.md" "$FINAL/" 2>/dev/null
grep -hE "^## " "$OUT"/console_*.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
cat "$FINAL/summary.txt"
