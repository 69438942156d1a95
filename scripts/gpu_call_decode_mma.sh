#!/usr/bin/env bash
# Issue 18: the first GPU run of `cuda.attention.decode.mma` (the tensor-core decode kernel).
# Run from the repository root on the GPU machine, with the CLI built from branch `decode` at
# .gpu/kernelyard-decode (optional chunk variants: .gpu/kernelyard-decode-c256, -c1024; optional
# main's build as .gpu/kernelyard-old) and ../shared/peers/torch_ops.py or .gpu/torch_ops.py.
#   1. verify --op attention (every attention kernel, the new one included) -> verify.log
#   2. compute-sanitizer memcheck / racecheck / synccheck, the new kernel's entry points alone
#      instrumented (--kernel-regex kns=attention_decode_mma), over `bench --kernel` at a
#      16-row causal shape and a one-query GQA shape (each tool once per shape)   -> sanitize.log
#   3. bench at torch_ops.py's decode shapes: every kernel (--all), the variants, torch SDPA,
#      and the ratio table                                        -> decode.jsonl, decode_ratios.md
# TOOLS="memcheck" or SANITIZE=0 shorten step 2; STEPS="3" runs only the bench.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
export LD_LIBRARY_PATH=$CUDA_PATH/lib64:${LD_LIBRARY_PATH:-}
export KERNELYARD_CACHE_DIR=${KERNELYARD_CACHE_DIR:-/tmp/kernelyard-cache}
export PATH=$CUDA_PATH/bin:$PATH
K=${K:-.gpu/kernelyard-decode}
NAME=cuda.attention.decode.mma
STEPS=${STEPS:-1 2 3}
SHAPES="batch=64,seq_q=1,seq_kv=4096,heads_q=32,heads_kv=8,head_dim=128,causal=0
batch=8,seq_q=1,seq_kv=32768,heads_q=32,heads_kv=8,head_dim=128,causal=0
batch=1,seq_q=1,seq_kv=131072,heads_q=32,heads_kv=8,head_dim=128,causal=0"
TORCH=.gpu/torch_ops.py; [ -f "$TORCH" ] || TORCH=../shared/peers/torch_ops.py
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv | tee "$OUT/device.txt"

for step in $STEPS; do
  case $step in
  1)
    $K verify --device cuda:0 --op attention >"$OUT/verify.log" 2>&1
    echo "## verify --op attention: rc=$? $(grep -E 'passed|failed' "$OUT/verify.log" | tail -1)"
    grep -E "$NAME +[0-9]|$NAME .*FAIL|^FAIL" "$OUT/verify.log" | head -20
    ;;
  2)
    [ "${SANITIZE:-1}" = 1 ] || continue
    : >"$OUT/sanitize.log"
    for tool in ${TOOLS:-memcheck racecheck synccheck}; do
      for s in batch=2,seq_q=2,seq_kv=1500,heads_q=16,heads_kv=2,head_dim=128,causal=1,lse=1 \
        batch=3,seq_q=1,seq_kv=3000,heads_q=8,heads_kv=2,head_dim=64,lse=1 \
        batch=2,seq_q=1,seq_kv=700,heads_q=4,heads_kv=2,head_dim=256; do
        echo "=== $tool bench attention --problem $s" >>"$OUT/sanitize.log"
        timeout 170 compute-sanitizer --tool $tool --kernel-regex kns=attention_decode_mma \
          --error-exitcode 9 --print-limit 20 \
          $K bench attention --problem $s --dtype bf16 --kernel $NAME --device cuda:0 \
          --iters 1 --warmup 0 >>"$OUT/sanitize.log" 2>&1
        echo "## $tool $s: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize.log" | tail -1)"
      done
    done
    ;;
  3)
    : >"$OUT/decode.jsonl"
    for s in $SHAPES; do
      $K bench attention --problem $s --dtype bf16 --device cuda:0 --all --json \
        >>"$OUT/decode.jsonl" 2>>"$OUT/bench.err"
      for v in c256 c1024; do
        [ -x .gpu/kernelyard-decode-$v ] || continue
        .gpu/kernelyard-decode-$v bench attention --problem $s --dtype bf16 --device cuda:0 \
          --kernel $NAME --json 2>>"$OUT/bench.err" | grep '"op"' \
          | sed "s/\"impl\":\"$NAME\"/\"impl\":\"$v:$NAME\"/" >>"$OUT/decode.jsonl"
      done
      if [ -x .gpu/kernelyard-old ]; then
        .gpu/kernelyard-old bench attention --problem $s --dtype bf16 --device cuda:0 \
          --kernel cuda.attention.decode --json 2>>"$OUT/bench.err" | grep '"op"' \
          | sed 's/"impl":"cuda.attention.decode"/"impl":"old:cuda.attention.decode"/' >>"$OUT/decode.jsonl"
      fi
    done
    PYTHONUNBUFFERED=1 python3 "$TORCH" --op attention_decode >>"$OUT/decode.jsonl" 2>>"$OUT/bench.err"
    python3 scripts/decode_rows.py "$OUT/decode.jsonl" >"$OUT/decode_rekeyed.jsonl"
    python3 scripts/ratio_table.py "$OUT/decode_rekeyed.jsonl" >"$OUT/decode_ratios.md" 2>&1
    rm -f "$OUT/decode_rekeyed.jsonl"
    cat "$OUT/decode_ratios.md"
    ;;
  esac
done
