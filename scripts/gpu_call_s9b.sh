#!/usr/bin/env bash
# Session 9, call 3 (issue 17): the sm90 GEMM in one module per entry point (first-use
# compile time), split-K with at most 8 splits (kernelyard) against 4 (kernelyard-s4) at
# small M, then the GEMM proof (tests incl. gpu + graph, verify, bench vs cuBLASLt and torch,
# memcheck, synccheck). On an H200 also the row kernels.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s9; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
{
  for kern in cuda.gemm.batch_invariant.sm90 cuda.gemm.batch_invariant.sm90.splitk; do
    s=$SECONDS; timeout 120 .gpu/kernelyard bench gemm --problem m=64,n=256,k=64,trans_b=1 --dtype bf16 --device cuda:0 --kernel $kern >/dev/null 2>&1
    echo "first use of $kern NT bf16 (compile + bench): $((SECONDS - s)) s"
    s=$SECONDS; timeout 120 .gpu/kernelyard bench gemm --problem m=64,n=256,k=64,trans_b=1 --dtype bf16 --device cuda:0 --kernel $kern >/dev/null 2>&1
    echo "second use (disk cache): $((SECONDS - s)) s"
  done
  s=$SECONDS; timeout 120 .gpu/kernelyard-s4 bench gemm --problem m=64,n=256,k=64 --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90.splitk >/dev/null 2>&1
  echo "kernelyard-s4 first use of splitk NN: $((SECONDS - s)) s"
} 2>&1 | tee "$OUT/compile_time.txt"
: >"$OUT/ab.jsonl"
for round in 1 2; do
  for s in m=1,n=4096,k=4096 m=128,n=4096,k=4096 m=256,n=4096,k=4096 m=128,n=4096,k=4096,trans_b=1 m=128,n=4096,k=4096,trans_a=1 m=1,n=4096,k=4096,trans_b=1 m=128,n=14336,k=4096 m=128,n=4096,k=14336,trans_b=1; do
    timeout 60 .gpu/kernelyard bench gemm --problem "$s" --dtype bf16 --device cuda:0 --all --json 2>>"$OUT/bench.err" | grep -v "@algo" \
      | sed "s/\"impl\":\"cuda.gemm/\"impl\":\"r$round:cuda.gemm/" >>"$OUT/ab.jsonl"
    timeout 60 .gpu/kernelyard-s4 bench gemm --problem "$s" --dtype bf16 --device cuda:0 --kernel cuda.gemm.batch_invariant.sm90.splitk --json 2>>"$OUT/bench.err" \
      | sed "s/\"impl\":\"cuda.gemm/\"impl\":\"s4-r$round:cuda.gemm/" >>"$OUT/ab.jsonl"
  done
done
python3 scripts/ratio_table.py "$OUT/ab.jsonl" >"$OUT/ab.md" 2>&1
grep -E "sm90|cublaslt " "$OUT/ab.md" | grep -v "not measured" | head -70
timeout 240 bash scripts/gpu_proof.sh gemm_bi >"$OUT/console_gemm_bi.log" 2>&1
start=$SECONDS
bash .gpu/run.sh gpu -- --nocapture >"$OUT/gpu.log" 2>&1; rc1=$?
bash .gpu/run.sh graph -- --nocapture >>"$OUT/gpu.log" 2>&1; rc2=$?
echo "## gpu + graph tests: rc=$rc1/$rc2, $((SECONDS - start)) s, $(grep -c '^test .* ok$' "$OUT/gpu.log") ok, $(grep -c '^test .* FAILED$' "$OUT/gpu.log") FAILED" >"$OUT/console_tests.log"
grep -E '^test .* FAILED$|panicked' "$OUT/gpu.log" | head >>"$OUT/console_tests.log"
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
cat "$OUT/compile_time.txt" "$FINAL/summary.txt"
