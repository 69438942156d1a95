#!/usr/bin/env bash
# Eighteenth session, call 2 (short: little device time was left): the committed build's rows
# timed one launch a run (the default, as torch_ops.py) and 20 back-to-back launches a run
# (`bench --launches 20`), to separate each kernel's own time from the per-launch latency.
# Stage: `cargo build --release -p kernelyard-cli`, copy target/release/kernelyard to .gpu/,
# strip and gzip it; `run` with carry [".gpu"]. Files under $OUT: launches.jsonl, err.txt.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
device_line
unpack_gpu
K=.gpu/kernelyard
R="$FINAL/launches.jsonl"; : >"$R"
for L in 1 20; do
  r() {
    timeout 40 $K bench "$@" --device cuda:0 --launches $L --json 2>>"$FINAL/err.txt" \
      | sed "s/\"impl\":\"/\"impl\":\"L$L:/" >>"$R"
  }
  r token_logprobs --problem tokens=64,vocab=151936,entropy=1 --dtype bf16
  r token_logprobs --problem tokens=4096,vocab=151936,entropy=1 --dtype bf16
  r rms_norm --problem rows=4096,hidden=8192 --dtype bf16
  r rms_norm --problem rows=16384,hidden=4096 --dtype bf16
  r softmax --problem rows=4096,cols=8192 --dtype bf16
  r log_softmax --problem rows=4096,cols=8192 --dtype bf16
  r rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
  r silu_mul --problem rows=4096,d=11008 --dtype bf16
  r selective_state_update --problem batch=64,heads=64,head_dim=64,state_dim=128,groups=8,state_dtype=bf16 --dtype bf16
  r selective_state_update --problem batch=256,heads=32,head_dim=64,state_dim=128,groups=1,state_dtype=f32 --dtype bf16
  note "launches $L: $SECONDS s"
done
cat "$P"
