#!/usr/bin/env bash
# Session 17, call 2: the proof of the committed build (.gpu/kernelyard: token_logprobs in one
# launch, the row kernels' L2 prefetch 4 MiB ahead, the FP8 tile 192 wide where 192 divides n).
#   1. verify, every op, fresh seed; the CUDA graph test binary (.gpu/graph-test: token_logprobs'
#      counters across 100 replays); memcheck / racecheck / synccheck over rms_norm and softmax
#      through bench --kernel;
#   2. the row kernels against builds of rows.cuh's KY_ROWS_L2_AHEAD_KB (-kb0: off, -kb2048,
#      -kb8192), two rounds for the committed one and -kb0;
#   3. the FP8 kernel at m = k = 4096, n = 2048 / 3072 / 4096, with cuBLASLt.
# S17B_BUDGET seconds (default 380) is the call's own clock: later steps are skipped past it.
# Files under $OUT: progress.txt, verify.log, rows.jsonl, fp8.jsonl, logs.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
BUDGET=${S17B_BUDGET:-380}
left() { [ $SECONDS -lt $((BUDGET - ${1:-0})) ] || { note "skipped $2 at $SECONDS s (budget $BUDGET)"; return 1; }; }
device_line
W=/tmp/s17b; mkdir -p "$W"
unpack_gpu
K=.gpu/kernelyard
seed=$RANDOM$RANDOM
s=$SECONDS
timeout 240 $K verify --device cuda:0 --seed "$seed" >"$FINAL/verify.log" 2>&1
note "verify (every op) --seed $seed: rc=$?, $((SECONDS - s)) s"
grep -E '^(kernel|cuda|total)' "$FINAL/verify.log" | tail -40 >>"$P"
grep -E '\.\.\. fail' "$FINAL/verify.log" | head -10 >>"$P"
s=$SECONDS
timeout 60 .gpu/graph-test --include-ignored --test-threads 1 --nocapture >"$W/graph.log" 2>&1
note "graph tests: rc=$?, $((SECONDS - s)) s, $(grep -E '^test result' "$W/graph.log" | tail -1)"
grep -E 'us per replay' "$W/graph.log" >>"$P"
for tool in memcheck racecheck synccheck; do
  left 200 "sanitizers" || break
  for spec in rms_norm:rows=300,hidden=4096 softmax:rows=300,cols=8192 log_softmax:rows=70,cols=40000; do
    op=${spec%%:*}
    timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
      $K bench $op --problem "${spec#*:}" --dtype bf16 --device cuda:0 --kernel cuda.$op --iters 1 --warmup 1 >>"$W/san_$tool.log" 2>&1
    note "$tool $op ${spec#*:}: rc=$?"
  done
  note "$tool: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_$tool.log" | sort | uniq -c | tr '\n' ' ')"
done
R="$FINAL/rows.jsonl"; : >"$R"
rows() {
  local label=$1 k=$2 s=$SECONDS
  r() { bench_as "$label" "$k" "$R" "$W/bench.err" "$@"; }
  for sh in rows=16384,hidden=4096 rows=4096,hidden=8192; do r rms_norm --problem $sh --dtype bf16; done
  for sh in rows=16384,cols=4096 rows=4096,cols=8192; do r softmax --problem $sh --dtype bf16; done
  for sh in rows=16384,cols=4096 rows=4096,cols=32768; do r log_softmax --problem $sh --dtype bf16; done
  note "rows $label: $((SECONDS - s)) s"
}
for spec in r1-kb4096:kernelyard r1-kb0:kernelyard-kb0 r1-kb2048:kernelyard-kb2048 r1-kb8192:kernelyard-kb8192 \
  r2-kb0:kernelyard-kb0 r2-kb4096:kernelyard; do
  left 40 "rows $spec" || break
  rows "${spec%%:*}" ".gpu/${spec#*:}"
done
if left 20 "fp8"; then
  : >"$FINAL/fp8.jsonl"
  for n in 2048 3072 4096; do
    for kern in cuda.scaled_gemm.cublaslt cuda.scaled_gemm.batch_invariant.sm90; do
      timeout 30 $K bench scaled_gemm --problem m=4096,n=$n,k=4096 --dtype f8e4m3 --device cuda:0 --kernel $kern --json 2>/dev/null >>"$FINAL/fp8.jsonl"
    done
  done
  note "fp8 done at $SECONDS s"
fi
if [[ $(nvidia-smi --query-gpu=name --format=csv,noheader) == *H200* ]] && left 0 "torch rows"; then
  for op in rms_norm softmax log_softmax; do
    PYTHONUNBUFFERED=1 timeout 40 python3 .gpu/torch_ops.py --op $op >>"$R" 2>>"$W/bench.err"
  done
fi
tar -czf "$FINAL/logs.tgz" -C "$W" . 2>/dev/null
note "end at $SECONDS s"
cat "$P"
