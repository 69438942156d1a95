#!/usr/bin/env bash
# Session 16, call 1. Issue 19 first (new builds, short), then session 15's call
# (scripts/gpu_call_s15a.sh: head dim 96's proof, the attention variants, ncu) with what is left
# of the call's clock (S16_BUDGET seconds in all, default 540).
#   FP8: the invariant kernel's tile width as build-time variants of KY_SM90_FP8_BN
#   (.gpu/kernelyard-n176, -n160; .gpu/kernelyard is 192): verify --op scaled_gemm with a fresh
#   seed on each, racecheck / synccheck on n176 through bench --kernel, two interleaved bench
#   rounds at the issue's shapes next to cuBLASLt (torch._scaled_mm once).
#   token_logprobs (issue 17): the split kernel with its loads batched (KY_TL_SPLIT_BATCH 4,
#   .gpu/kernelyard) against one step at a time (.gpu/kernelyard-tlb1, as before): verify with
#   one seed on both (the same bits: every case prints the same errors), memcheck / racecheck
#   on the split path, two interleaved bench rounds next to torch.
# Files under $OUT (at most 8): s15a's (progress.txt, verify_pp.log, sanitize.log, attn.jsonl,
# ncu.txt, all.tgz) plus bench16.jsonl (FP8 and token_logprobs rows) and s16.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
W=/tmp/s16a; mkdir -p "$W"
BUDGET=${S16_BUDGET:-540}
K=.gpu/kernelyard
BI=cuda.scaled_gemm.batch_invariant.sm90
LT=cuda.scaled_gemm.cublaslt
VARS="-n176 -n160"
{
  seed=$RANDOM$RANDOM
  ok=""
  for v in $VARS; do
    s=$SECONDS
    timeout 100 $K$v verify --device cuda:0 --op scaled_gemm --seed "$seed" >"$W/verify$v.log" 2>&1
    rc=$?
    note "$v verify --op scaled_gemm --seed $seed: rc=$rc, $((SECONDS - s)) s, $(grep -E '^total' "$W/verify$v.log" | tail -1)"
    grep -E "batch_invariant.sm90" "$W/verify$v.log" | grep -iE "fail" | head -5 >>"$P"
    [ $rc = 0 ] && ok="$ok $v"
  done
  for tool in racecheck synccheck; do
    s=$SECONDS; rc=0
    timeout 100 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
      $K-n176 bench scaled_gemm --problem m=300,n=392,k=640,scale_a=row,bias=1 --dtype f8e4m3 --device cuda:0 --kernel $BI \
      --iters 1 --warmup 1 >>"$W/sanitize_fp8_$tool.log" 2>&1 || rc=$?
    note "compute-sanitizer $tool (n176): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/sanitize_fp8_$tool.log" | sort | uniq -c | tr '\n' ' ')"
  done
  B16="$FINAL/bench16.jsonl"
  : >"$B16"
  # token_logprobs: the same bits, then the sanitizers and the bench.
  tseed=$RANDOM$RANDOM
  for b in kernelyard kernelyard-tlb1; do
    s=$SECONDS
    timeout 90 .gpu/$b verify --device cuda:0 --op token_logprobs --seed "$tseed" >"$W/verify_tl_$b.log" 2>&1
    note "$b verify --op token_logprobs --seed $tseed: rc=$?, $((SECONDS - s)) s, $(grep -E '^total' "$W/verify_tl_$b.log" | tail -1)"
  done
  python3 scripts/same_errors.py "$W/verify_tl_kernelyard.log" "$W/verify_tl_kernelyard-tlb1.log" cuda.token_logprobs >>"$P" 2>&1
  for tool in memcheck racecheck; do
    s=$SECONDS; rc=0
    for pr in tokens=3,vocab=151936,entropy=1 tokens=2,vocab=40001,entropy=1; do
      timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
        .gpu/kernelyard bench token_logprobs --problem $pr --dtype bf16 --device cuda:0 --kernel cuda.token_logprobs \
        --iters 1 --warmup 1 >>"$W/sanitize_tl_$tool.log" 2>&1 || rc=$?
    done
    note "compute-sanitizer $tool (token_logprobs split): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/sanitize_tl_$tool.log" | sort | uniq -c | tr '\n' ' ')"
  done
  PYTHONUNBUFFERED=1 timeout 60 python3 .gpu/torch_ops.py --op token_logprobs >>"$B16" 2>>"$W/bench.err"
  for round in 1 2; do
    for sh in tokens=1,vocab=151936 tokens=64,vocab=151936 tokens=64,vocab=128256 tokens=4096,vocab=151936 tokens=16384,vocab=32000; do
      for b in kernelyard kernelyard-tlb1; do
        timeout 30 .gpu/$b bench token_logprobs --problem $sh,entropy=1 --dtype bf16 --device cuda:0 --json 2>>"$W/bench.err" \
          | sed "s/\"impl\":\"cuda.token_logprobs\"/\"impl\":\"r$round:$b:cuda.token_logprobs\"/" >>"$B16"
      done
    done
  done
  note "token_logprobs done at $SECONDS s"
  PYTHONUNBUFFERED=1 timeout 100 python3 .gpu/torch_ops.py --op scaled_gemm >>"$B16" 2>>"$W/bench.err"
  for round in 1 2; do
    for s in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096 m=4096,n=14336,k=4096,scale_a=row; do
      tag=; case $s in *row*) tag=row: ;; esac
      timeout 60 $K bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
        --kernel $LT --json 2>>"$W/bench.err" | sed "s/\"impl\":\"/\"impl\":\"r$round:$tag/" >>"$B16"
      for v in "" $ok; do
        timeout 60 "$K$v" bench scaled_gemm --problem "$s" --dtype f8e4m3 --device cuda:0 \
          --kernel $BI --json 2>>"$W/bench.err" \
          | sed "s/\"impl\":\"$BI\"/\"impl\":\"r$round:$tag${v#-}${v:+:}$BI\"/" >>"$B16"
      done
    done
    note "fp8 bench round $round done at $SECONDS s"
    [ $SECONDS -lt $((BUDGET / 3)) ] || break
  done
} >"$W/console.log" 2>&1
cat "$W"/sanitize_*.log >"$W/sanitize16.txt" 2>/dev/null
tar czf "$FINAL/s16.tgz" -C "$W" . 2>/dev/null
left=$((BUDGET - SECONDS))
note "fp8 part: $SECONDS s; s15a gets $left s"
S15_BUDGET=$left OUT="$FINAL" bash scripts/gpu_call_s15a.sh >/dev/null 2>&1
cat "$P"
