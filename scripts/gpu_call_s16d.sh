#!/usr/bin/env bash
# Session 16, call 4 (the last device minutes): token_logprobs' combine with its split states
# loaded eight at a time (.gpu/kernelyard) against call 2's build (.gpu/kernelyard-c2): the
# same bits (verify, one seed, both builds), memcheck / racecheck, two interleaved bench rounds.
# Files under $OUT: progress.txt, bench.jsonl, all.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
W=/tmp/s16d; mkdir -p "$W"
device_line
seed=$RANDOM$RANDOM
for b in kernelyard kernelyard-c2; do
  timeout 60 .gpu/$b verify --device cuda:0 --op token_logprobs --seed "$seed" >"$W/verify_$b.log" 2>&1
  note "$b verify --op token_logprobs --seed $seed: rc=$?, $(grep -E '^total' "$W/verify_$b.log" | tail -1)"
done
python3 scripts/same_errors.py "$W/verify_kernelyard.log" "$W/verify_kernelyard-c2.log" cuda.token_logprobs >>"$P" 2>&1
for tool in memcheck racecheck; do
  timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 .gpu/kernelyard bench token_logprobs \
    --problem tokens=3,vocab=262144,entropy=1 --dtype f32 --device cuda:0 --kernel cuda.token_logprobs --iters 1 --warmup 1 >"$W/san_$tool.log" 2>&1
  note "compute-sanitizer $tool (token_logprobs f32 262144: 32 splits, four batches): rc=$?, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_$tool.log" | tr '\n' ' ')"
done
: >"$FINAL/bench.jsonl"
for round in 1 2; do
  for sh in tokens=1,vocab=151936 tokens=64,vocab=151936 tokens=64,vocab=128256 tokens=4096,vocab=151936; do
    for b in kernelyard kernelyard-c2; do
      timeout 30 .gpu/$b bench token_logprobs --problem $sh,entropy=1 --dtype bf16 --device cuda:0 --json 2>>"$W/bench.err" \
        | sed "s/\"impl\":\"cuda.token_logprobs\"/\"impl\":\"r$round:$b:cuda.token_logprobs\"/" >>"$FINAL/bench.jsonl"
    done
  done
done
note "end at $SECONDS s"
tar czf "$FINAL/all.tgz" -C "$W" . 2>/dev/null
cat "$P"
