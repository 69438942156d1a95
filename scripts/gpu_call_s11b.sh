#!/usr/bin/env bash
# Session 11, call 2. Issue 19: `cuda.scaled_gemm.batch_invariant.sm90` (the sm90 GEMM's FP8
# instantiation) and `cuda.scaled_gemm.cublaslt` on the GPU: verify (oracle, determinism, batch
# invariance of the invariant kernel) with a fresh seed, memcheck / racecheck / synccheck
# over verify, and the bench at torch_ops.py's four shapes: both kernels and torch._scaled_mm,
# two interleaved rounds.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s11b; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
source <(sed -n '/^sanitized() {/,/^}/p' scripts/gpu_proof.sh)
note() { echo "## $1"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader >"$OUT/device.txt"
K=.gpu/kernelyard
{
  for seed in $RANDOM$RANDOM; do
    s=$SECONDS
    timeout 150 $K verify --device cuda:0 --op scaled_gemm --seed "$seed" >"$OUT/fp8_verify_$seed.log" 2>&1
    note "verify --op scaled_gemm --seed $seed: rc=$?, $((SECONDS - s)) s, $(grep -E 'passed|failed' "$OUT/fp8_verify_$seed.log" | tail -1)"
    grep -E "^cuda:0|^total" "$OUT/fp8_verify_$seed.log"
    cp "$OUT/fp8_verify_$seed.log" "$FINAL/"
  done
  : >"$OUT/fp8.jsonl"
  for round in 1 2; do
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op scaled_gemm >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
    for s in ${SHAPES:-m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096 m=1,n=4096,k=4096}; do
      for kern in cuda.scaled_gemm.cublaslt cuda.scaled_gemm.batch_invariant.sm90; do
        timeout 90 $K bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
          --kernel $kern --json >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
      done
    done
  done
  python3 scripts/ratio_table.py "$OUT/fp8.jsonl" --target scaled_gemm:torch._scaled_mm:0.95 >"$OUT/fp8.md" 2>&1
  note "fp8 ratio table: rc=$?"
  cp "$OUT/fp8.md" "$OUT/fp8.jsonl" "$FINAL/"
  for tool in ${TOOLS:-memcheck racecheck synccheck}; do
    sanitized $tool "$OUT/fp8_$tool.log" "verify --op scaled_gemm" -- --op scaled_gemm
    grep -hE "^## " "$OUT"/console_fp8.log >"$FINAL/summary.txt" 2>/dev/null
  done
} >"$OUT/console_fp8.log" 2>&1
cat "$OUT/console_fp8.log" | grep -v "^===" | head -40
cat "$OUT/fp8.md"
cp "$OUT/fp8.md" "$OUT/device.txt" "$FINAL/" 2>/dev/null
grep -hE "^## " "$OUT"/console_*.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
