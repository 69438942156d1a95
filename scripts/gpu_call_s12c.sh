#!/usr/bin/env bash
# Session 12, call 2 (short: the device budget had about 5 minutes left). What ran:
# - issue 19: v2 with the consumer warpgroups taking turns to issue (.gpu/kernelyard; named
#   barriers): verify with a fresh seed (oracle, determinism, batch invariance); synccheck and
#   racecheck on the invariant kernel alone through `bench --kernel` (verify also runs
#   cuBLASLt, whose FP8 kernel crashed racecheck in call 1); the FP4 kernel's scale-tiling
#   kernel against its CPU index math (a lib test); which block-scaled problems cuBLASLt has
#   an algorithm for (bias, f32 out, odd m); bench at three shapes against call 1's build
#   (.gpu/kernelyard-unordered), cuBLASLt and torch._scaled_mm, one round, and per-row scales;
# - issue 18 (a helper's branch, built as .gpu/kernelyard-hd256): head dim 256 in
#   cuda.attention: verify --op attention, racecheck / synccheck through `bench --kernel`.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s12c; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
note() { echo "## $1"; echo "## $1" >>"$FINAL/progress.txt"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader >"$OUT/device.txt"
K=.gpu/kernelyard
BI=cuda.scaled_gemm.batch_invariant.sm90
LT=cuda.scaled_gemm.cublaslt
{
  seed=$RANDOM$RANDOM
  s=$SECONDS
  timeout 200 $K verify --device cuda:0 --op scaled_gemm --seed "$seed" >"$OUT/verify.log" 2>&1
  note "verify --op scaled_gemm --seed $seed: rc=$?, $((SECONDS - s)) s, $(grep -E 'passed|failed' "$OUT/verify.log" | tail -1)"
  grep -E "^cuda:0|^total" "$OUT/verify.log"
  cp "$OUT/verify.log" "$FINAL/"
  # The FP4 kernel's scale-tiling kernel (plain CUDA; the FP4 matmul itself needs sm_100).
  if [ -x .gpu/bin/cuda_lib ]; then
    timeout 120 .gpu/bin/cuda_lib --ignored --exact \
      ops::scaled_gemm_fp4::tests::the_tiling_kernel_matches_tiled_offset_on_a_device >"$OUT/fp4_tiling.log" 2>&1
    note "fp4 tiling kernel test: rc=$?, $(grep -E '^test result' "$OUT/fp4_tiling.log")"
  fi
  # The sanitizers on the invariant kernel alone: bench runs only it (one warm-up, one timed
  # iteration) on shapes covering per-tensor and per-row scales, every out dtype, biases, a
  # partial last row and column tile and several tiles per block.
  for tool in synccheck racecheck; do
    s=$SECONDS; rc=0
    for p in m=257,n=264,k=1024,scale_a=row,out_dtype=f32; do
      timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
        $K bench scaled_gemm --problem "$p" --dtype f8e4m3 --device cuda:0 --kernel $BI \
        --iters 1 --warmup 1 >>"$OUT/sanitize_$tool.log" 2>&1 || rc=$?
    done
    note "compute-sanitizer $tool over bench --kernel $BI (2 shapes): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize_$tool.log" | sort | uniq -c | tr '\n' ' ')"
  done
  cat "$OUT"/sanitize_*.log >"$FINAL/sanitize.log"
  # Issue 18 (a helper's branch, hd256 at 095a589, built as .gpu/kernelyard-hd256): head dim
  # 256 in cuda.attention: verify --op attention (every attention kernel and case), then
  # racecheck / synccheck / memcheck on cuda.attention alone through bench at two D = 256 shapes.
  if [ -x .gpu/kernelyard-hd256 ]; then
    s=$SECONDS
    timeout 100 .gpu/kernelyard-hd256 verify --device cuda:0 --op attention --seed "$seed" >"$OUT/attention.log" 2>&1
    note "hd256 verify --op attention: rc=$?, $((SECONDS - s)) s, $(grep -E 'passed|failed' "$OUT/attention.log" | tail -1)"
    grep -E "^cuda:0|^total|FAIL" "$OUT/attention.log" | head -20
    cp "$OUT/attention.log" "$FINAL/"
    for tool in racecheck synccheck; do
      s=$SECONDS; rc=0
      for p in batch=2,seq_q=65,seq_kv=200,heads_q=8,heads_kv=2,head_dim=256,causal=1; do
        timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
          .gpu/kernelyard-hd256 bench attention --problem "$p" --dtype bf16 --device cuda:0 \
          --kernel cuda.attention --iters 1 --warmup 1 >>"$OUT/attention_$tool.log" 2>&1 || rc=$?
      done
      note "hd256 compute-sanitizer $tool over bench --kernel cuda.attention (2 shapes): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/attention_$tool.log" | sort | uniq -c | tr '\n' ' ')"
    done
    cat "$OUT"/attention_*check.log >"$FINAL/attention_sanitize.log"
  fi
  # Which block-scaled problems cuBLASLt takes (one timed iteration each; the error says why not).
  for p in m=64,n=512,k=1024,bias=1 m=64,n=512,k=1024,out_dtype=f32 m=37,n=512,k=1024; do
    r=$(timeout 60 $K bench scaled_gemm --problem "$p,scale_a=block" --dtype f8e4m3 --device cuda:0 \
      --kernel $LT --iters 1 --warmup 0 --json 2>&1 | tail -1)
    note "cuBLASLt block $p: ${r:0:300}"
  done
  : >"$OUT/fp8.jsonl"
  for round in ${ROUNDS:-1}; do
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op scaled_gemm >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
    for s in ${SHAPES:-m=4096,n=4096,k=4096 m=4096,n=14336,k=4096 m=128,n=4096,k=4096}; do
      timeout 60 $K bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
        --kernel $LT --json >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
      for v in "" -unordered; do
        [ -x "$K$v" ] || continue
        timeout 60 "$K$v" bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
          --kernel $BI --json 2>>"$OUT/bench.err" \
          | sed "s/\"impl\":\"$BI\"/\"impl\":\"${v#-}${v:+:}$BI\"/" >>"$OUT/fp8.jsonl"
      done
    done
  done
  # Per-row scales (the epilogue reads them through __ldg now): cuBLASLt and both builds.
  for s in m=4096,n=14336,k=4096; do
    timeout 60 $K bench scaled_gemm --problem "$s,scale_a=row" --dtype f8e4m3 --device cuda:0 \
      --kernel $LT --json 2>>"$OUT/bench.err" | sed 's/"impl":"/"impl":"row:/' >>"$OUT/fp8.jsonl"
    for v in "" -unordered; do
      timeout 60 "$K$v" bench scaled_gemm --problem "$s,scale_a=row" --dtype f8e4m3 --device cuda:0 \
        --kernel $BI --json 2>>"$OUT/bench.err" \
        | sed "s/\"impl\":\"$BI\"/\"impl\":\"row:${v#-}${v:+:}$BI\"/" >>"$OUT/fp8.jsonl"
    done
  done
  python3 scripts/ratio_table.py "$OUT/fp8.jsonl" --target scaled_gemm:torch._scaled_mm:0.95 >"$OUT/fp8.md" 2>&1
  note "fp8 ratio table: rc=$?"
  cp "$OUT/fp8.md" "$FINAL/"
} >"$OUT/console.log" 2>&1
grep -v "^===" "$OUT/console.log" | head -60
cat "$OUT/fp8.md"
cat "$OUT/device.txt" >>"$FINAL/progress.txt"
grep -hE "^## " "$OUT"/console.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
