#!/usr/bin/env bash
# Session 11, call 1. (1) Issue 19: `cuda.scaled_gemm.cublaslt` on the GPU: verify (suite vs the
# reference), memcheck over it, bench at torch_ops.py's four shapes, two interleaved rounds with
# torch._scaled_mm. (2) Issue 15: the SSU prefetch A/B of scripts/gpu_call_s9c.sh (kernelyard:
# default; kernelyard-pf6 / -pf5: KY_SSU_PREFETCH=1 at 6 / 5 blocks per SM), without its
# sanitizer runs (those follow only if prefetch wins).
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s11; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
source <(sed -n '/^sanitized() {/,/^}/p' scripts/gpu_proof.sh)
note() { echo "## $1"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader >"$OUT/device.txt"
K=.gpu/kernelyard
{
  s=$SECONDS
  timeout 150 $K verify --device cuda:0 --op scaled_gemm >"$OUT/fp8_verify.log" 2>&1
  note "verify --op scaled_gemm: rc=$?, $((SECONDS - s)) s, $(grep -E 'passed|failed' "$OUT/fp8_verify.log" | tail -1)"
  $K explain scaled_gemm --device cuda:0 --problem m=4096,n=4096,k=4096 --dtype f8e4m3 >"$OUT/fp8_explain.txt" 2>&1
  : >"$OUT/fp8.jsonl"
  for round in 1 2; do
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op scaled_gemm >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
    for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096; do
      timeout 60 $K bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
        --kernel cuda.scaled_gemm.cublaslt --json >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
    done
  done
  python3 scripts/ratio_table.py "$OUT/fp8.jsonl" --target scaled_gemm:torch._scaled_mm:0.95 >"$OUT/fp8.md" 2>&1
  note "fp8 ratio table: rc=$?"
  sanitized memcheck "$OUT/fp8_memcheck.log" "verify --op scaled_gemm" -- --op scaled_gemm
} >"$OUT/console_fp8.log" 2>&1
cat "$OUT/fp8.md"
# SSU
for b in kernelyard kernelyard-pf6 kernelyard-pf5; do
  s=$SECONDS
  timeout 120 .gpu/$b verify --device cuda:0 --op selective_state_update >"$OUT/ssu_verify_$b.log" 2>&1
  echo "## $b verify --op selective_state_update: rc=$?, $((SECONDS - s)) s, $(grep -E 'total' "$OUT/ssu_verify_$b.log" | tail -1)"
done >"$OUT/console_ssu.log"
: >"$OUT/ssu_ab.jsonl"
for round in 1 2; do
  for state in bf16 f32; do
    for s in batch=64,heads=64,head_dim=64,state_dim=128,groups=8 \
      batch=256,heads=32,head_dim=64,state_dim=128,groups=1 \
      batch=64,heads=80,head_dim=64,state_dim=128,groups=1,a_per_head=1,state_indices=i32,cache_slots=512; do
      for b in kernelyard kernelyard-pf6 kernelyard-pf5; do
        timeout 60 .gpu/$b bench selective_state_update --problem "$s,state_dtype=$state" --dtype bf16 --device cuda:0 \
          --kernel cuda.selective_state_update --json 2>>"$OUT/bench.err" \
          | sed "s/\"impl\":\"cuda.sel/\"impl\":\"$b-r$round:cuda.sel/" >>"$OUT/ssu_ab.jsonl"
      done
    done
  done
done
for state in bf16 f32; do
  PYTHONUNBUFFERED=1 timeout 120 python3 scripts/ssu_peer.py peer --state $state >>"$OUT/ssu_ab.jsonl" 2>>"$OUT/bench.err"
done
PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op selective_state_update >>"$OUT/ssu_ab.jsonl" 2>>"$OUT/bench.err"
python3 scripts/ratio_table.py "$OUT/ssu_ab.jsonl" >"$OUT/ssu_ab.md" 2>&1
grep -E "selective|torch" "$OUT/ssu_ab.md" | grep -v "not measured" | head -60
cp "$OUT/fp8.md" "$OUT/ssu_ab.md" "$OUT/device.txt" "$FINAL/" 2>/dev/null
grep -hE "^## " "$OUT"/console_*.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
cat "$FINAL/summary.txt"
