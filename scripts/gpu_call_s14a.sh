#!/usr/bin/env bash
# Session 14, call 1. Issue 18: head dim 256 in cuda.attention.sm90 and three schedules of the
# kernel (.gpu/kernelyard: one tile at a time; -ov: ATTN90_OVERLAP 1, FA3's intra-warpgroup
# overlap; -pp: overlap + ATTN90_PINGPONG 1, named-barrier turns). Per build: verify --op
# attention (fresh seed: oracle, determinism, batch invariance), racecheck / synccheck (and
# memcheck on the default) on cuda.attention.sm90 alone through `bench --kernel` at D = 256 and
# 128; then two interleaved rounds of the suite's four shapes and attention_hd256 against
# torch SDPA. Issue 17 (if the device is an H200): one round of the row ops against torch.
# Decode (a helper's build, if present as .gpu/kernelyard-decode): its own commands in
# .gpu/decode.sh.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export OUT=/tmp/s14a; mkdir -p "$OUT"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
note() { echo "## $1"; echo "## $1" >>"$FINAL/progress.txt"; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/device.txt" >>"$FINAL/progress.txt"
K=.gpu/kernelyard
A=cuda.attention.sm90
VARIANTS=${VARIANTS:-"base ov pp"}
bin() { [ "$1" = base ] && echo $K || echo $K-$1; }
{
  seed=$RANDOM$RANDOM
  for v in $VARIANTS; do
    s=$SECONDS
    timeout 150 $(bin $v) verify --device cuda:0 --op attention --seed "$seed" >"$OUT/verify_$v.log" 2>&1
    rc=$?
    note "$v verify --op attention --seed $seed: rc=$rc, $((SECONDS - s)) s, $(grep -E '^total' "$OUT/verify_$v.log" | tail -1)"
    grep -E "^cuda.attention" "$OUT/verify_$v.log" | head -8
    grep -E "FAIL" "$OUT/verify_$v.log" | head -10
    [ $rc = 0 ] || VARIANTS=$(echo " $VARIANTS " | sed "s/ $v / /")
  done
  cat "$OUT"/verify_*.log >"$FINAL/verify.log"
  for v in base ov pp; do
    tools="racecheck synccheck"; [ $v = base ] && tools="memcheck racecheck synccheck"
    for tool in $tools; do
      s=$SECONDS; rc=0
      for p in batch=2,seq_q=200,seq_kv=300,heads_q=4,heads_kv=2,head_dim=256,causal=1 batch=1,seq_q=129,seq_kv=385,heads_q=2,heads_kv=1,head_dim=256,causal=0 batch=1,seq_q=300,seq_kv=300,heads_q=2,heads_kv=2,head_dim=128,causal=1; do
        timeout 150 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 20 \
          $(bin $v) bench attention --problem "$p" --dtype bf16 --device cuda:0 \
          --kernel $A --iters 1 --warmup 1 >>"$OUT/sanitize_${v}_$tool.log" 2>&1 || rc=$?
      done
      note "$v compute-sanitizer $tool over bench --kernel $A (3 shapes): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize_${v}_$tool.log" | sort | uniq -c | tr '\n' ' ')"
    done
  done
  cat "$OUT"/sanitize_*.log >"$FINAL/sanitize.log"
  : >"$OUT/attn.jsonl"
  for round in 1 2; do
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op attention_hd256 >>"$OUT/attn.jsonl" 2>>"$OUT/bench.err"
    PYTHONUNBUFFERED=1 timeout 120 python3 .gpu/torch_ops.py --op attention >>"$OUT/attn.jsonl" 2>>"$OUT/bench.err"
    for p in batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=0 \
             batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=1 \
             batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=1 \
             batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 \
             batch=1,seq_q=16384,heads_q=32,heads_kv=8,head_dim=128,causal=1 \
             batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1; do
      for v in $VARIANTS; do
        timeout 60 $(bin $v) bench attention --problem "$p" --dtype bf16 --device cuda:0 \
          --kernel $A --json 2>>"$OUT/bench.err" \
          | sed "s/\"impl\":\"$A\"/\"impl\":\"$v:$A\"/" >>"$OUT/attn.jsonl"
      done
      [ $round = 1 ] && case $p in *head_dim=256*)
        timeout 60 $K bench attention --problem "$p" --dtype bf16 --device cuda:0 \
          --kernel cuda.attention --json 2>>"$OUT/bench.err" >>"$OUT/attn.jsonl";;
      esac
    done
    note "attention round $round done at $SECONDS s"
  done
  python3 scripts/ratio_table.py "$OUT/attn.jsonl" >"$OUT/attn.md" 2>&1
  note "attention ratio table: rc=$?"
  cp "$OUT/attn.md" "$OUT/attn.jsonl" "$FINAL/"
  if [ -x .gpu/kernelyard-decode ] && [ -f .gpu/decode.sh ]; then
    s=$SECONDS
    timeout 240 bash .gpu/decode.sh >"$OUT/decode.log" 2>&1
    note "decode: rc=$?, $((SECONDS - s)) s"
    cp "$OUT/decode.log" "$FINAL/"
  fi
  # Issue 17: the row ops on an H200 (one round), against torch (copy bandwidth included).
  if grep -q H200 "$OUT/device.txt" && [ -z "${NO_ROWS:-}" ]; then
    s=$SECONDS
    bash scripts/gpu_rows.sh "$OUT" $K
    note "rows: $((SECONDS - s)) s"
    cp "$OUT/rows.md" "$FINAL/"
  fi
} >"$OUT/console.log" 2>&1
grep -v "^===" "$OUT/console.log" | head -60
cat "$OUT/attn.md"
tar czf "$FINAL/all.tgz" -C "$OUT" .
