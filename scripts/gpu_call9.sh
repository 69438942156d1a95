#!/usr/bin/env bash
# Session 7, call 9 (kept for the record; ran on an H200): token_logprobs with 1024-chunk splits (a variant
# build, .gpu/kernelyard-s1k) against the committed 2048, then the decode stage (decode v2 with
# the next step's loads prefetched, `old:` = v1), then the decode sanitizers.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
: >"$OUT/s1k.jsonl"
for s in tokens=1,vocab=151936 tokens=64,vocab=151936 tokens=64,vocab=128256 tokens=4096,vocab=151936 tokens=16384,vocab=32000; do
  for b in kernelyard kernelyard-s1k; do
    .gpu/$b bench token_logprobs --problem $s,entropy=1 --dtype bf16 --device cuda:0 --json 2>/dev/null \
      | sed "s/\"impl\":\"cuda.token_logprobs\"/\"impl\":\"$b:cuda.token_logprobs\"/" >>"$OUT/s1k.jsonl"
  done
done
python3 scripts/ratio_table.py "$OUT/s1k.jsonl" >"$OUT/s1k.md" 2>&1; cat "$OUT/s1k.md"
DECODE_SANITIZE=0 bash scripts/gpu_proof.sh decode
export OUT
source <(sed -n '/^sanitized() {/,/^}/p' scripts/gpu_proof.sh)
note() { echo "## $1"; }
export KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
K=.gpu/kernelyard; export CUDA_PATH=/usr/local/cuda; export PATH=$CUDA_PATH/bin:$PATH
: >"$OUT/decode_sanitize.log"
for tool in ${DECODE_TOOLS:-memcheck racecheck synccheck}; do
  sanitized $tool "$OUT/decode_sanitize.log" "verify --op attention (decode kernels)" --kernel-regex kns=attention_decode -- --op attention
done
