#!/usr/bin/env bash
# The GPU proof for the CUDA backend, in one device call (see docs/GPU.md):
#   here:   bash scripts/gpu_pack.sh      (stages .gpu/: test binaries, the CLI, torch_ops.py)
#   there:  bash scripts/gpu_proof.sh [tests] [verify] [bench] [sanitize]   (default: all four)
# Logs go to $OUT (at most 8 files come back); a summary is printed last.
set -uo pipefail
OUT=${OUT:-/tmp/kernelyard-gpu-proof}
mkdir -p "$OUT"
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
export LD_LIBRARY_PATH=$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}
export KERNELYARD_CACHE_DIR=${KERNELYARD_CACHE_DIR:-/tmp/kernelyard-cache}
export PATH=$CUDA_PATH/bin:$PATH
K=.gpu/kernelyard
stages=${*:-tests verify bench sanitize}
summary=()
note() { summary+=("$1"); echo "## $1"; }

{ date -u; nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv; nvcc --version 2>/dev/null | tail -2; } >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

for stage in $stages; do
  case $stage in
  tests)
    start=$SECONDS
    bash .gpu/run.sh -- --nocapture >"$OUT/tests.log" 2>&1
    rc=$?
    note "tests (every test binary, ignored GPU tests included): rc=$rc, $((SECONDS - start)) s, $(grep -c '^test .* ok$' "$OUT/tests.log") ok, $(grep -c '^test .* FAILED$' "$OUT/tests.log") FAILED"
    grep -E '^test .* FAILED$|panicked' "$OUT/tests.log" | head -20
    ;;
  verify)
    start=$SECONDS
    $K verify --device cuda:0 >"$OUT/verify.log" 2>&1
    rc=$?
    note "verify --device cuda:0: rc=$rc, $((SECONDS - start)) s: $(grep -E 'passed|failed' "$OUT/verify.log" | tail -3 | tr '\n' ' ')"
    grep -E 'FAIL' "$OUT/verify.log" | head -20
    ;;
  sanitize)
    for tool in memcheck racecheck; do
      start=$SECONDS
      timeout 170 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
        $K verify --device cuda:0 >"$OUT/$tool.log" 2>&1
      rc=$?
      note "compute-sanitizer $tool over verify: rc=$rc, $((SECONDS - start)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/$tool.log" | tail -1)"
    done
    ;;
  bench)
    start=$SECONDS
    : >"$OUT/bench.jsonl"
    b() { $K bench "$@" --device cuda:0 --all --json >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || echo "bench $* failed" >&2; }
    for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096 m=1,n=4096,k=4096; do
      b gemm --problem $s --dtype bf16
    done
    for s in rows=16384,hidden=4096 rows=4096,hidden=8192; do b rms_norm --problem $s --dtype bf16; done
    for op in softmax log_softmax; do
      for s in rows=16384,cols=4096 rows=4096,cols=32768; do b $op --problem $s --dtype bf16; done
    done
    for s in tokens=4096,vocab=151936 tokens=16384,vocab=32000; do b token_logprobs --problem $s --dtype bf16; done
    b rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
    PYTHONUNBUFFERED=1 python3 .gpu/torch_ops.py >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err"
    python3 scripts/ratio_table.py "$OUT/bench.jsonl" >"$OUT/ratios.md" 2>&1
    note "bench: $((SECONDS - start)) s, $(grep -c kernelyard "$OUT/bench.jsonl") kernelyard rows"
    cat "$OUT/ratios.md"
    ;;
  esac
done
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
