#!/usr/bin/env bash
# Session 17, call 1. Issue 17's row kernels on this GPU (an H200 is the question: 63-75 % of
# copy there against 85-92 % on an H100), with cache-hint builds of crates/kernels/kernels/
# port.cuh (scripts/attn90_variants.sh with VARIANT_FILE=that file): .gpu/kernelyard-pf256 /
# -pf128 (`.L2::256B` / `.L2::128B` on the streaming loads), -cs (`.cs` stores), -pf256cs
# (both), -ah512 / -ah1024 / -ah2048 (rows.cuh's KY_ROWS_L2_AHEAD: an L2 prefetch of the row that
# many rows ahead), .gpu/kernelyard the committed source (no hint); all gzipped. Then ncu of rms_norm 16384 x 4096,
# the FP8 tile-width rule over n (scripts/gpu_call_s16e.sh's builds -wide / -narrow), the SSU
# rows with their torch.compile peer (and -ssu8k / -ssu32k: KY_SSU_L2_AHEAD), a second rows
# round, verify of the variant builds.
# S17A_BUDGET seconds (default 540) is the call's own clock: later steps are skipped past it.
# Files under $OUT (8 at most come back): progress.txt, rows.jsonl, ncu_rows.txt, fp8.jsonl,
# ssu.jsonl, verify.log, tl.jsonl, logs.tgz (rows.md, the tl1 verify and sanitizer logs, bench.err).
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
BUDGET=${S17A_BUDGET:-540}
left() { [ $SECONDS -lt $((BUDGET - ${1:-0})) ] || { note "skipped $2 at $SECONDS s (budget $BUDGET)"; return 1; }; }
device_line
W=/tmp/s17a; mkdir -p "$W"
R="$FINAL/rows.jsonl"; : >"$R"
unpack_gpu
# rows LABEL BINARY [short]: the row ops at the suite shapes (short: six of them), every
# tactic, impl relabelled LABEL:...
rows() {
  local label=$1 k=$2 short=${3:-} s=$SECONDS
  r() { bench_as "$label" "$k" "$R" "$W/bench.err" "$@"; }
  if [ -n "$short" ]; then
    r rms_norm --problem rows=16384,hidden=4096 --dtype bf16
    r softmax --problem rows=16384,cols=4096 --dtype bf16
    r softmax --problem rows=4096,cols=8192 --dtype bf16
    r log_softmax --problem rows=4096,cols=32768 --dtype bf16
    r rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
    r silu_mul --problem rows=4096,d=11008 --dtype bf16
  else
    for sh in rows=16384,hidden=4096 rows=4096,hidden=8192; do r rms_norm --problem $sh --dtype bf16; done
    for op in softmax log_softmax; do
      for sh in rows=16384,cols=4096 rows=4096,cols=8192 rows=4096,cols=32768; do r $op --problem $sh --dtype bf16; done
    done
    r rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
    for sh in rows=16384,d=14336 rows=4096,d=11008; do r silu_mul --problem $sh --dtype bf16; done
  fi
  note "rows $label: $((SECONDS - s)) s"
}
rows r1-kernelyard .gpu/kernelyard
for b in pf256 ah1024 ah2048 pf256cs ah512; do
  left 300 "rows $b" || break
  rows "r1-$b" .gpu/kernelyard-$b short
done
s=$SECONDS
for op in rms_norm softmax log_softmax rope silu_mul; do
  PYTHONUNBUFFERED=1 timeout 60 python3 .gpu/torch_ops.py --op $op >>"$R" 2>>"$W/bench.err"
done
note "torch rows: $((SECONDS - s)) s"
if left 60 "verify"; then
  s=$SECONDS
  for spec in "pf256cs:rms_norm softmax log_softmax rope silu_mul token_logprobs" \
    "ah1024:rms_norm softmax log_softmax" "ssu8k:selective_state_update"; do
    b=${spec%%:*}
    for op in ${spec#*:}; do
      timeout 60 .gpu/kernelyard-$b verify --device cuda:0 --op $op >>"$FINAL/verify.log" 2>&1
      note "verify $b --op $op: rc=$?, $(grep -E '^total' "$FINAL/verify.log" | tail -1)"
    done
  done
  note "verify: $((SECONDS - s)) s"
fi
# token_logprobs in one launch (a helper's branch tl-single, staged as .gpu/kernelyard-tl1):
# verify, the sanitizers on the split path, bench against the committed build.
if [ -x .gpu/kernelyard-tl1 ] && left 120 "tl1"; then
  s=$SECONDS
  timeout 90 .gpu/kernelyard-tl1 verify --device cuda:0 --op token_logprobs --seed $RANDOM$RANDOM >"$W/verify_tl1.log" 2>&1
  note "verify tl1 --op token_logprobs: rc=$?, $(grep -E '^total' "$W/verify_tl1.log" | tail -1)"
  grep -E '\.\.\. fail' "$W/verify_tl1.log" | head -5 >>"$P"
  for tool in memcheck racecheck synccheck; do
    timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
      .gpu/kernelyard-tl1 bench token_logprobs --problem tokens=3,vocab=151936,entropy=1 --dtype bf16 --device cuda:0 --kernel cuda.token_logprobs --iters 2 --warmup 1 >"$W/san_tl1_$tool.log" 2>&1
    note "tl1 $tool: rc=$?, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$W/san_tl1_$tool.log" | tr '\n' ' ')"
  done
  T="$FINAL/tl.jsonl"; : >"$T"
  for round in 1 2; do
    for sh in tokens=64,vocab=151936 tokens=1,vocab=151936 tokens=4096,vocab=151936 tokens=64,vocab=151936,entropy=1; do
      for b in kernelyard kernelyard-tl1; do
        timeout 60 .gpu/$b bench token_logprobs --problem $sh --dtype bf16 --device cuda:0 --kernel cuda.token_logprobs --json 2>>"$W/bench.err" \
          | sed "s/\"impl\":\"/\"impl\":\"r$round-${b#kernelyard}:/" >>"$T"
      done
    done
  done
  PYTHONUNBUFFERED=1 timeout 60 python3 .gpu/torch_ops.py --op token_logprobs >>"$T" 2>>"$W/bench.err"
  note "tl1: $((SECONDS - s)) s"
fi
if left 80 "ssu"; then
  s=$SECONDS
  J="$FINAL/ssu.jsonl"; : >"$J"
  for state in bf16 f32; do
    for sh in batch=64,heads=64,head_dim=64,state_dim=128,groups=8 batch=256,heads=32,head_dim=64,state_dim=128,groups=1; do
      for b in kernelyard ssu8k ssu32k; do
        k=.gpu/kernelyard-$b; [ $b = kernelyard ] && k=.gpu/kernelyard
        timeout 60 $k bench selective_state_update --problem "$sh,state_dtype=$state" --dtype bf16 --device cuda:0 --all --json 2>>"$W/bench.err" \
          | sed "s/\"impl\":\"/\"impl\":\"$b:/" >>"$J"
      done
    done
    PYTHONUNBUFFERED=1 timeout 60 python3 scripts/ssu_peer.py peer --state $state >>"$J" 2>>"$W/bench.err"
  done
  note "ssu: $((SECONDS - s)) s"
fi
if left 80 "fp8 width rule"; then
  s=$SECONDS
  BI=cuda.scaled_gemm.batch_invariant.sm90
  : >"$FINAL/fp8.jsonl"
  timeout 60 .gpu/kernelyard-wide verify --device cuda:0 --op scaled_gemm >"$W/verify_wide.log" 2>&1
  note "wide verify --op scaled_gemm: rc=$?, $(grep -E "^cuda:0 $BI |^total" "$W/verify_wide.log" | tr -s ' ' | tr '\n' ' ')"
  for n in 2048 3072 4096 5120 6144 8192 14336; do
    sh=m=4096,n=$n,k=4096
    timeout 30 .gpu/kernelyard bench scaled_gemm --problem $sh --dtype f8e4m3 --device cuda:0 --kernel cuda.scaled_gemm.cublaslt --json 2>/dev/null >>"$FINAL/fp8.jsonl"
    for b in kernelyard-wide kernelyard-narrow; do
      timeout 30 .gpu/$b bench scaled_gemm --problem $sh --dtype f8e4m3 --device cuda:0 --kernel $BI --json 2>/dev/null \
        | sed "s/\"impl\":\"$BI\"/\"impl\":\"${b#kernelyard-}:$BI\"/" >>"$FINAL/fp8.jsonl"
    done
  done
  note "fp8 width rule: $((SECONDS - s)) s"
fi
if left 70 "ncu"; then
  s=$SECONDS
  for b in kernelyard kernelyard-ah1024; do
    for t in "" "@t128"; do
      timeout 60 ncu --clock-control none --kernel-name regex:rms_norm --launch-skip 3 --launch-count 1 \
        --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats \
        .gpu/$b bench rms_norm --problem rows=16384,hidden=4096 --dtype bf16 --device cuda:0 --kernel "cuda.rms_norm$t" --iters 1 --warmup 2 \
        >>"$FINAL/ncu_rows.txt" 2>&1
    done
  done
  note "ncu rows: $((SECONDS - s)) s"
fi
for b in ah1024 kernelyard pf256 ah2048; do
  left 60 "rows round 2 $b" || break
  k=.gpu/kernelyard-$b; [ $b = kernelyard ] && k=.gpu/kernelyard
  rows "r2-$b" "$k" short
done
for b in cs pf128; do
  left 40 "rows $b" || break
  rows "r1-$b" .gpu/kernelyard-$b short
done
python3 scripts/ratio_table.py "$R" >"$W/rows.md" 2>&1
tar -czf "$FINAL/logs.tgz" -C "$W" . 2>/dev/null
note "end at $SECONDS s"
cat "$P"
