#!/usr/bin/env bash
# Session 13, call 1. Issue 19: the FP8 invariant kernel with a 128 x 192 tile and batched
# epilogue loads (.gpu/kernelyard), the same with 2-CTA clusters sharing B by TMA multicast
# (.gpu/kernelyard-c2), at 128 x 128 (.gpu/kernelyard-n128)
# and the landed v2 (.gpu/kernelyard-v2): verify (fresh seed), the three sanitizers on the
# kernel alone through `bench --kernel`, bench at the issue's shapes with per-tensor and
# per-row scales against cuBLASLt and torch._scaled_mm, ncu on the new kernel and v2.
# Issue 17 (if the device is an H200): one round of the row ops against torch.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s13a; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
note() { echo "## $1"; echo "## $1" >>"$FINAL/progress.txt"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt" >>"$FINAL/progress.txt"
K=.gpu/kernelyard
BI=cuda.scaled_gemm.batch_invariant.sm90
LT=cuda.scaled_gemm.cublaslt
{
  # Compile every variant's modules first (NVRTC cache), so benches time kernels only.
  C2=-c2
  for v in "" -c2 -n128 -v2; do
    timeout 120 $K$v bench scaled_gemm --problem m=256,n=384,k=256 --dtype f8e4m3 --device cuda:0 --kernel $BI --iters 1 --warmup 1 >/dev/null 2>&1
  done
  seed=$RANDOM$RANDOM
  s=$SECONDS
  timeout 200 $K verify --device cuda:0 --op scaled_gemm --seed "$seed" >"$OUT/verify.log" 2>&1
  note "verify --op scaled_gemm --seed $seed: rc=$?, $((SECONDS - s)) s, $(grep -E 'passed|failed' "$OUT/verify.log" | tail -1)"
  grep -E "batch_invariant.sm90" "$OUT/verify.log" | grep -vE "PASS|SKIP" | head -20
  cp "$OUT/verify.log" "$FINAL/"
  # The cluster variant: its own verify (a hang or failure drops it from the benches).
  s=$SECONDS
  timeout 150 $K-c2 verify --device cuda:0 --op scaled_gemm --seed "$seed" >"$OUT/verify_c2.log" 2>&1
  rc=$?
  note "c2 verify --op scaled_gemm --seed $seed: rc=$rc, $((SECONDS - s)) s, $(grep -E 'passed|failed' "$OUT/verify_c2.log" | tail -1)"
  grep -E "batch_invariant.sm90" "$OUT/verify_c2.log" | grep -vE "PASS|SKIP" | head -10
  [ $rc = 0 ] || C2=
  cp "$OUT/verify_c2.log" "$FINAL/"
  for tool in memcheck synccheck racecheck; do
    s=$SECONDS; rc=0
    for p in m=257,n=264,k=1024,scale_a=row,out_dtype=f32 m=200,n=200,k=384,scale_a=row,bias=1,out_dtype=f16 ${C2:+c2}; do
      KK=$K; [ "$p" = c2 ] && { KK=$K-c2; p=m=300,n=392,k=640,scale_a=row,bias=1; }
      timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
        $KK bench scaled_gemm --problem "$p" --dtype f8e4m3 --device cuda:0 --kernel $BI \
        --iters 1 --warmup 1 >>"$OUT/sanitize_$tool.log" 2>&1 || rc=$?
    done
    note "compute-sanitizer $tool over bench --kernel $BI (2-3 shapes): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize_$tool.log" | sort | uniq -c | tr '\n' ' ')"
  done
  cat "$OUT"/sanitize_*.log >"$FINAL/sanitize.log"
  : >"$OUT/fp8.jsonl"
  for round in ${ROUNDS:-1 2}; do
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op scaled_gemm >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
    for sc in "" ,scale_a=row; do
      for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096; do
        [ -n "$sc" ] && [ "$s" = m=8192,n=8192,k=8192 ] && continue
        tag=${sc:+row:}
        timeout 60 $K bench scaled_gemm --problem "$s$sc" --dtype f8e4m3 --device cuda:0 \
          --kernel $LT --json 2>>"$OUT/bench.err" | sed "s/\"impl\":\"/\"impl\":\"$tag/" >>"$OUT/fp8.jsonl"
        for v in "" $C2 -n128 -v2; do
          timeout 60 "$K$v" bench scaled_gemm --problem "$s$sc" --dtype f8e4m3 --device cuda:0 \
            --kernel $BI --json 2>>"$OUT/bench.err" \
            | sed "s/\"impl\":\"$BI\"/\"impl\":\"$tag${v#-}${v:+:}$BI\"/" >>"$OUT/fp8.jsonl"
        done
      done
    done
    note "bench round $round done at $SECONDS s"
  done
  python3 scripts/ratio_table.py "$OUT/fp8.jsonl" --target scaled_gemm:torch._scaled_mm:0.95 >"$OUT/fp8.md" 2>&1
  note "fp8 ratio table: rc=$?"
  cp "$OUT/fp8.md" "$OUT/fp8.jsonl" "$FINAL/"
  # ncu: the new kernel and v2 at 4096 x 14336 x 4096 (one launch each, after warm-up).
  for v in "" $C2 -v2; do
    s=$SECONDS
    timeout 150 ncu --clock-control none --kernel-name regex:scaled_gemm_sm90 --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy \
      $K$v bench scaled_gemm --problem m=4096,n=14336,k=4096 --dtype f8e4m3 --device cuda:0 --kernel $BI --iters 2 --warmup 2 \
      >"$OUT/ncu${v:--n192}.txt" 2>&1
    note "ncu$v: rc=$?, $((SECONDS - s)) s"
  done
  cat "$OUT"/ncu-*.txt >"$FINAL/ncu.txt"
  # Issue 18: the head-dim-256 tilings (ATTN_D256 0..3; .gpu/kernelyard is 0), bench only,
  # one round, against torch SDPA.
  s=$SECONDS
  : >"$OUT/hd256.jsonl"
  PYTHONUNBUFFERED=1 timeout 90 python3 .gpu/torch_ops.py --op attention_hd256 >>"$OUT/hd256.jsonl" 2>>"$OUT/bench.err"
  for c in 0 1; do
    for v in 0 1 2 3; do
      KK=.gpu/kernelyard-hd256-v$v; [ $v = 0 ] && KK=$K
      timeout 60 $KK bench attention --problem "batch=2,seq_q=4096,seq_kv=4096,heads_q=16,heads_kv=16,head_dim=256,causal=$c" \
        --dtype bf16 --device cuda:0 --kernel cuda.attention --json 2>>"$OUT/bench.err" \
        | sed "s/\"impl\":\"cuda.attention\"/\"impl\":\"v$v:cuda.attention\"/" >>"$OUT/hd256.jsonl"
    done
  done
  python3 scripts/ratio_table.py "$OUT/hd256.jsonl" >"$OUT/hd256.md" 2>&1
  note "hd256: $((SECONDS - s)) s"
  cp "$OUT/hd256.md" "$OUT/hd256.jsonl" "$FINAL/"
  # Issue 17: the row ops on an H200 (one round), against torch (copy bandwidth included).
  if grep -q H200 "$OUT/device.txt"; then
    s=$SECONDS
    : >"$OUT/rows.jsonl"
    r() { timeout 60 $K bench "$@" --device cuda:0 --all --json >>"$OUT/rows.jsonl" 2>>"$OUT/bench.err"; }
    for sh in rows=16384,hidden=4096 rows=4096,hidden=8192; do r rms_norm --problem $sh --dtype bf16; done
    for op in softmax log_softmax; do
      for sh in rows=16384,cols=4096 rows=4096,cols=32768 rows=4096,cols=8192; do r $op --problem $sh --dtype bf16; done
    done
    r rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
    for sh in rows=16384,d=14336 rows=4096,d=11008; do r silu_mul --problem $sh --dtype bf16; done
    for op in rms_norm softmax log_softmax rope silu_mul; do
      PYTHONUNBUFFERED=1 timeout 60 python3 .gpu/torch_ops.py --op $op >>"$OUT/rows.jsonl" 2>>"$OUT/bench.err"
    done
    python3 scripts/ratio_table.py "$OUT/rows.jsonl" >"$OUT/rows.md" 2>&1
    note "rows: $((SECONDS - s)) s"
    cp "$OUT/rows.md" "$FINAL/"
  fi
} >"$OUT/console.log" 2>&1
grep -v "^===" "$OUT/console.log" | head -40
cat "$OUT/fp8.md"
grep -hE "^## " "$OUT"/console.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
