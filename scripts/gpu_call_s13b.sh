#!/usr/bin/env bash
# Session 13, call 2 (ran on an H200, trimmed to fit the last device minutes). Issue 19: the
# 2-CTA cluster variants with the remote arrival at CTA scope (call 1's cluster-scope release
# made them 2.5x slower), at 128 x 192 (c2) and 128 x 128 (n128c2), against 128 x 192 alone
# (.gpu/kernelyard) and cuBLASLt: verify each cluster variant, synccheck / racecheck on c2, one
# round of bench. TORCH=1 adds torch._scaled_mm, VARS more builds, NCU_VARS ncu runs (all
# left out of the run that happened).
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s13b; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
note() { echo "## $1"; echo "## $1" >>"$FINAL/progress.txt"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt" >>"$FINAL/progress.txt"
K=.gpu/kernelyard
BI=cuda.scaled_gemm.batch_invariant.sm90
LT=cuda.scaled_gemm.cublaslt
VARS="${VARS:- -c2 -n128c2}"
{
  seed=$RANDOM$RANDOM
  for v in -c2 -n128c2; do
    s=$SECONDS
    timeout 100 $K$v verify --device cuda:0 --op scaled_gemm --seed "$seed" >"$OUT/verify$v.log" 2>&1
    rc=$?
    note "$v verify --op scaled_gemm --seed $seed: rc=$rc, $((SECONDS - s)) s, $(grep -E "^cuda:0|$BI " "$OUT/verify$v.log" | tail -2 | tr -s ' ' | tr '\n' ' ')"
    grep -E "batch_invariant.sm90" "$OUT/verify$v.log" | grep -E "FAIL|fail" | head -5
    [ $rc = 0 ] || VARS=${VARS/ $v/}
  done
  for tool in synccheck racecheck; do
    s=$SECONDS; rc=0
    for v in -c2; do
      timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
        $K$v bench scaled_gemm --problem m=300,n=392,k=640,scale_a=row,bias=1 --dtype f8e4m3 --device cuda:0 --kernel $BI \
        --iters 1 --warmup 1 >>"$OUT/sanitize_$tool.log" 2>&1 || rc=$?
    done
    note "compute-sanitizer $tool (c2, n128c2): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize_$tool.log" | sort | uniq -c | tr '\n' ' ')"
  done
  cat "$OUT"/sanitize_*.log >"$FINAL/sanitize.log"
  : >"$OUT/fp8.jsonl"
  for round in ${ROUNDS:-1}; do
    [ "${TORCH:-0}" = 1 ] && PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op scaled_gemm >>"$OUT/fp8.jsonl" 2>>"$OUT/bench.err"
    for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096 m=4096,n=14336,k=4096,scale_a=row; do
      tag=; case $s in *row*) tag=row: ;; esac
      timeout 60 $K bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
        --kernel $LT --json 2>>"$OUT/bench.err" | sed "s/\"impl\":\"/\"impl\":\"$tag/" >>"$OUT/fp8.jsonl"
      for v in "" $VARS; do
        timeout 60 "$K$v" bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
          --kernel $BI --json 2>>"$OUT/bench.err" \
          | sed "s/\"impl\":\"$BI\"/\"impl\":\"$tag${v#-}${v:+:}$BI\"/" >>"$OUT/fp8.jsonl"
      done
    done
    note "bench round $round done at $SECONDS s"
  done
  python3 scripts/ratio_table.py "$OUT/fp8.jsonl" --target scaled_gemm:torch._scaled_mm:0.95 >"$OUT/fp8.md" 2>&1
  cp "$OUT/fp8.md" "$OUT/fp8.jsonl" "$FINAL/"
  for v in ${NCU_VARS:-}; do
    [[ " $VARS " == *" $v "* ]] || continue
    s=$SECONDS
    timeout 120 ncu --clock-control none --kernel-name regex:scaled_gemm_sm90 --launch-skip 3 --launch-count 1 \
      --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats \
      $K$v bench scaled_gemm --problem m=4096,n=14336,k=4096 --dtype f8e4m3 --device cuda:0 --kernel $BI --iters 2 --warmup 2 \
      >"$OUT/ncu$v.txt" 2>&1
    note "ncu$v: rc=$?, $((SECONDS - s)) s"
  done
  cat "$OUT"/ncu-*.txt >"$FINAL/ncu.txt" 2>/dev/null
} >"$OUT/console.log" 2>&1
grep -v "^===" "$OUT/console.log" | grep -v "^\[" | head -30
cat "$OUT/fp8.md"
tar czf "$FINAL/all.tgz" -C "$OUT" .
