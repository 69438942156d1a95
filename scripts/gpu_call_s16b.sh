#!/usr/bin/env bash
# Session 16, call 2: the proof of what call 1 (scripts/gpu_call_s16a.sh) decided, on the
# committed build (.gpu/kernelyard): attention sm90 with ATTN90_FFMA on and head dim 96 offered,
# the FP8 kernel's 128 x 176 tile for n <= 4096, token_logprobs' split kernel batched at 5
# CTAs/SM (.gpu/kernelyard-tlb1: one step at a time, 4 CTAs/SM, as before; -tlb2: two steps).
#   1. verify, the whole suite, fresh seed (the final correctness run);
#   2. memcheck / racecheck / synccheck through bench --kernel on the changed kernels;
#   3. bench, two interleaved rounds, each with its peer: attention (8 shapes) and SDPA,
#      scaled_gemm (5 shapes) with cuBLASLt and torch._scaled_mm, token_logprobs (3 builds)
#      with torch.
# S16B_BUDGET seconds (default 480) is the call's own clock: later steps are skipped past it.
# Files under $OUT: progress.txt, verify.log, sanitize.log, bench.jsonl, all.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
W=/tmp/s16b; mkdir -p "$W"
BUDGET=${S16B_BUDGET:-480}
left() { [ $SECONDS -lt $((BUDGET - ${1:-0})) ] || { note "skipped $2 at $SECONDS s (budget $BUDGET)"; return 1; }; }
device_line
K=.gpu/kernelyard
B="$FINAL/bench.jsonl"
: >"$B"
san() { # san TOOL KERNEL OP DTYPE PROBLEM...
  local tool=$1 kern=$2 op=$3 dt=$4 rc=0 s=$SECONDS log="$W/sanitize_${2}_$1.log"; shift 4
  for p in "$@"; do
    timeout 100 compute-sanitizer --tool "$tool" --error-exitcode 9 --print-limit 20 \
      $K bench "$op" --problem "$p" --dtype "$dt" --device cuda:0 --kernel "$kern" --iters 1 --warmup 1 >>"$log" 2>&1 || rc=$?
  done
  note "compute-sanitizer $tool over bench --kernel $kern ($# shapes): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | sort | uniq -c | tr '\n' ' ')"
}
{
  seed=$RANDOM$RANDOM
  s=$SECONDS
  timeout 300 $K verify --device cuda:0 --seed "$seed" >"$FINAL/verify.log" 2>&1
  note "verify (every op) --seed $seed: rc=$?, $((SECONDS - s)) s"
  grep -E '^(kernel|cuda|total)' "$FINAL/verify.log" | tail -40 >>"$P"
  grep -E '\.\.\. fail' "$FINAL/verify.log" | head -10 >>"$P"
  A=cuda.attention.sm90
  for tool in memcheck racecheck synccheck; do
    left 60 "sanitizers" || break
    san $tool $A attention bf16 \
      batch=2,seq_q=200,seq_kv=333,heads_q=4,heads_kv=2,head_dim=128,causal=1 \
      batch=1,seq_q=129,seq_kv=385,heads_q=2,heads_kv=1,head_dim=64,causal=0 \
      batch=1,seq_q=200,seq_kv=300,heads_q=4,heads_kv=2,head_dim=256,causal=1 \
      batch=2,seq_q=200,seq_kv=333,heads_q=4,heads_kv=2,head_dim=96,causal=1
    san $tool cuda.scaled_gemm.batch_invariant.sm90 scaled_gemm f8e4m3 m=300,n=392,k=640,scale_a=row,bias=1
    san $tool cuda.token_logprobs token_logprobs bf16 tokens=3,vocab=151936,entropy=1
  done
  for round in 1 2; do
    left 90 "bench round $round" || break
    PYTHONUNBUFFERED=1 timeout 90 python3 .gpu/torch_ops.py --op attention_hd256 >>"$B" 2>>"$W/bench.err"
    PYTHONUNBUFFERED=1 timeout 90 python3 .gpu/torch_ops.py --op attention >>"$B" 2>>"$W/bench.err"
    for p in batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=0 \
             batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=1 \
             batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=1 \
             batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 \
             batch=1,seq_q=16384,heads_q=32,heads_kv=8,head_dim=128,causal=1 \
             batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1 \
             batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=96,causal=1 \
             batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=96,causal=0; do
      timeout 40 $K bench attention --problem "$p" --dtype bf16 --device cuda:0 --kernel $A --json 2>>"$W/bench.err" \
        | sed "s/\"impl\":\"/\"impl\":\"r$round:/" >>"$B"
    done
    note "attention round $round done at $SECONDS s"
    PYTHONUNBUFFERED=1 timeout 100 python3 .gpu/torch_ops.py --op scaled_gemm >>"$B" 2>>"$W/bench.err"
    for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096 m=4096,n=14336,k=4096,scale_a=row; do
      tag=; case $s in *row*) tag=row: ;; esac
      for kern in cuda.scaled_gemm.cublaslt cuda.scaled_gemm.batch_invariant.sm90; do
        timeout 60 $K bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 --kernel $kern --json 2>>"$W/bench.err" \
          | sed "s/\"impl\":\"/\"impl\":\"r$round:$tag/" >>"$B"
      done
    done
    note "scaled_gemm round $round done at $SECONDS s"
    PYTHONUNBUFFERED=1 timeout 60 python3 .gpu/torch_ops.py --op token_logprobs >>"$B" 2>>"$W/bench.err"
    for sh in tokens=1,vocab=151936 tokens=64,vocab=151936 tokens=64,vocab=128256 tokens=4096,vocab=151936 tokens=16384,vocab=32000; do
      for b in kernelyard kernelyard-tlb1 kernelyard-tlb2; do
        timeout 30 .gpu/$b bench token_logprobs --problem $sh,entropy=1 --dtype bf16 --device cuda:0 --json 2>>"$W/bench.err" \
          | sed "s/\"impl\":\"cuda.token_logprobs\"/\"impl\":\"r$round:$b:cuda.token_logprobs\"/" >>"$B"
      done
    done
    note "token_logprobs round $round done at $SECONDS s"
  done
} >"$W/console.log" 2>&1
cat "$W"/sanitize_*.log >"$FINAL/sanitize.log" 2>/dev/null
tar czf "$FINAL/all.tgz" -C "$W" . 2>/dev/null
note "end at $SECONDS s"
cat "$P"
