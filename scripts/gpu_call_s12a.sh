#!/usr/bin/env bash
# Session 12, call 1. Issue 19 on the GPU:
# - the promoted invariant FP8 kernel (v2: 128 x 128 tile, each 128-k stage's tensor-core sum
#   added in f32) with every out dtype: verify with a fresh seed (oracle, determinism, batch
#   invariance), and the same with builds promoting every 64 k (.gpu/kernelyard-p2) and every
#   32 k (.gpu/kernelyard-p1), for their precision (the verify log's rel_l2 / max_abs);
# - cuBLASLt's per-row (outer-vector) and block scales (new; the suite's lt_* cases);
# - memcheck / racecheck / synccheck over verify with the invariant kernel instrumented;
# - bench at torch_ops.py's shapes plus M = 1: cuBLASLt, v2 and its variants, torch._scaled_mm
#   (per tensor), two interleaved rounds; cuBLASLt with row and block scales against
#   torch._scaled_mm's row-wise and block-wise recipes (scripts/fp8_scaled_peer.py).
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s12a; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
source <(sed -n '/^sanitized() {/,/^}/p' scripts/gpu_proof.sh)
note() { echo "## $1"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader >"$OUT/device.txt"
K=.gpu/kernelyard
BI=cuda.scaled_gemm.batch_invariant.sm90
LT=cuda.scaled_gemm.cublaslt
{
  seed=$RANDOM$RANDOM
  for v in "" -p2 -p1; do
    [ -x "$K$v" ] || continue
    s=$SECONDS
    timeout 200 "$K$v" verify --device cuda:0 --op scaled_gemm --seed "$seed" >"$OUT/verify$v.log" 2>&1
    note "verify$v --op scaled_gemm --seed $seed: rc=$?, $((SECONDS - s)) s, $(grep -E 'passed|failed' "$OUT/verify$v.log" | tail -1)"
    grep -E "^cuda:0|^total" "$OUT/verify$v.log"
  done
  cat "$OUT"/verify*.log >"$FINAL/verify_all.log"
  : >"$OUT/fp8.jsonl"
  for round in 1 2; do
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op scaled_gemm >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
    for s in ${SHAPES:-m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096 m=1,n=4096,k=4096}; do
      timeout 60 $K bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
        --kernel $LT --json >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
      for v in "" -p2 -p1; do
        [ -x "$K$v" ] || continue
        timeout 60 "$K$v" bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
          --kernel $BI --json 2>>"$OUT/bench.err" \
          | sed "s/\"impl\":\"$BI\"/\"impl\":\"${v#-}${v:+:}$BI\"/" >>"$OUT/fp8.jsonl"
      done
    done
  done
  python3 scripts/ratio_table.py "$OUT/fp8.jsonl" --target scaled_gemm:torch._scaled_mm:0.95 >"$OUT/fp8.md" 2>&1
  note "fp8 ratio table: rc=$?"
  cp "$OUT/fp8.md" "$OUT/fp8.jsonl" "$FINAL/"
  : >"$OUT/fp8_scales.jsonl"
  PYTHONUNBUFFERED=1 timeout 120 python3 scripts/fp8_scaled_peer.py >>"$OUT/fp8_scales.jsonl" 2>>"$OUT/bench.err"
  for mode in row block; do
    for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096; do
      timeout 60 $K bench scaled_gemm --problem "$s,scale_a=$mode" --dtype f8e4m3 --device cuda:0 \
        --kernel $LT --json >>"$OUT/fp8_scales.jsonl" 2>>"$OUT/bench.err"
      [ $mode = row ] && timeout 60 $K bench scaled_gemm --problem "$s,scale_a=$mode" --dtype f8e4m3 \
        --device cuda:0 --kernel $BI --json >>"$OUT/fp8_scales.jsonl" 2>>"$OUT/bench.err"
    done
  done
  note "fp8 scale modes: $(grep -c tflops "$OUT/fp8_scales.jsonl") rows"
  cp "$OUT/fp8_scales.jsonl" "$OUT/bench.err" "$FINAL/"
  for tool in ${TOOLS:-memcheck racecheck synccheck}; do
    sanitized $tool "$OUT/fp8_$tool.log" "verify --op scaled_gemm (invariant kernel)" \
      --kernel-regex kns=scaled_gemm_sm90 -- --op scaled_gemm
  done
} >"$OUT/console.log" 2>&1
grep -v "^===" "$OUT/console.log" | head -60
cat "$OUT/fp8.md"
cp "$OUT/device.txt" "$FINAL/" 2>/dev/null
grep -hE "^## " "$OUT"/console.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
