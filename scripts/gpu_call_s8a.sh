#!/usr/bin/env bash
# Session 8, call 1 (issue 17: the sm90 invariant GEMM in every layout and alignment): the
# gemm_bi stage (GEMM GPU tests, verify --op gemm, bench NN/NT/TN with the old build's sm90
# rows as "old:", torch.matmul and gemm_layouts), then sanitize_gemm (memcheck, racecheck,
# synccheck) within the call's time. Every log is packed into $OUT/all.tgz.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s8; mkdir -p "$OUT"
timeout 250 bash scripts/gpu_proof.sh gemm_bi >"$OUT/console_gemm_bi.log" 2>&1
timeout 290 bash scripts/gpu_proof.sh sanitize_gemm >"$OUT/console_sanitize.log" 2>&1
cp "$OUT/ratios_gemm.md" "$FINAL/" 2>/dev/null
grep -E "^## " "$OUT"/console_*.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
cat "$FINAL/summary.txt"
