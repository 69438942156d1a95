#!/usr/bin/env bash
# Session 9, call 2 (issue 17): v4 stores a C whose pairs are not word-aligned through a
# loop that is not unrolled (`epilogue_unpaired`), after call 1 showed the always-paired
# build (kernelyard-e) as fast as the session-8 starting build (kernelyard-old) where v3 was
# 4-27 % slower. Timing first (sm90 kernel only, old vs v3 vs v4, twice; ncu at
# 128x4096x4096), then the GEMM proof (tests, verify, bench with cuBLASLt and torch,
# memcheck and synccheck). On an H200 also the row kernels (issue 17's H200 target).
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s9; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
# Warm each binary's kernel cache first (the sm90 source takes 25-35 s to compile).
for b in kernelyard-old kernelyard-v3 kernelyard; do
  s=$SECONDS; timeout 120 .gpu/$b bench gemm --problem m=64,n=256,k=64 --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90 >/dev/null 2>&1
  echo "$b first use (compile + bench): $((SECONDS - s)) s"
done | tee "$OUT/compile_time.txt"
: >"$OUT/ab.jsonl"
for round in 1 2; do
  for s in m=128,n=4096,k=4096 m=1,n=4096,k=4096 m=4096,n=4096,k=4096 m=4096,n=4096,k=4096,trans_b=1 m=4096,n=14336,k=4096; do
    for b in kernelyard-old kernelyard-v3 kernelyard; do
      timeout 60 .gpu/$b bench gemm --problem "$s" --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90 --json 2>>"$OUT/bench.err" \
        | sed "s/\"impl\":\"cuda.gemm/\"impl\":\"$b$round:cuda.gemm/" >>"$OUT/ab.jsonl"
    done
  done
done
python3 scripts/ratio_table.py "$OUT/ab.jsonl" >"$OUT/ab.md" 2>&1
for b in kernelyard-old kernelyard-v3 kernelyard; do
  echo "=== $b"
  timeout 60 ncu --clock-control none --metrics gpu__time_duration.sum -k regex:gemm_bi_sm90 -c 4 \
    .gpu/$b bench gemm --problem m=128,n=4096,k=4096 --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90 2>&1 \
    | grep -E "gpu__time_duration" | tail -4
done >"$OUT/ncu_ab.log" 2>&1
cat "$OUT/ab.md" "$OUT/ncu_ab.log" | grep -E "sm90|gpu__time|===" | head -60
rm -f .gpu/kernelyard-old   # gemm_bench_old would otherwise repeat it
timeout 260 bash scripts/gpu_proof.sh gemm_bi >"$OUT/console_gemm_bi.log" 2>&1
export OUT
source <(sed -n '/^sanitized() {/,/^}/p' scripts/gpu_proof.sh)
note() { echo "## $1"; }
K=.gpu/kernelyard
for tool in memcheck synccheck; do
  : >"$OUT/${tool}_gemm.log"
  sanitized $tool "$OUT/${tool}_gemm.log" "verify --op gemm" -- --op gemm
done >"$OUT/console_sanitize.log" 2>&1
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  ROWS_SANITIZE=0 ROWS_REPEATS=1 timeout 200 bash scripts/gpu_proof.sh rows >"$OUT/console_rows.log" 2>&1
fi
cp "$OUT/ratios_gemm.md" "$OUT/ab.md" "$FINAL/" 2>/dev/null
cp "$OUT/rows_ratios.md" "$FINAL/" 2>/dev/null
grep -hE "^## " "$OUT"/console_*.log >"$FINAL/summary.txt"
tar czf "$FINAL/all.tgz" -C "$OUT" .
cat "$FINAL/summary.txt"
