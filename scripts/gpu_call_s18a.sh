#!/usr/bin/env bash
# Written in session 17 for the next session's first call, best on an H200 (the issue 17 row
# targets are H200 numbers; every call of sessions 16 and 17 got an H100). Stage:
#   VARIANT_FILE=crates/kernels/kernels/rows.cuh bash scripts/attn90_variants.sh \
#     kb0:KY_ROWS_L2_AHEAD_KB=0 kb8192:KY_ROWS_L2_AHEAD_KB=8192 kb16384:KY_ROWS_L2_AHEAD_KB=16384
#   cp ../shared/peers/torch_ops.py .gpu/ && (cd .gpu && gzip -6 -f kernelyard kernelyard-kb*)
# then `run` with carry [".gpu"]. Steps (S18A_BUDGET seconds, default 500, the call's own clock):
#   1. the row ops at the suite shapes, every tactic, with the prefetch distances (the committed
#      4 MiB, off, 8 and 16 MiB), two rounds for the committed build and -kb0, and torch;
#   2. ncu of rms_norm 16384 x 4096 (committed, -kb0) and of token_logprobs 64 x 151936 (one
#      launch): DRAM throughput and stall reasons;
#   3. the final-ratio rows of issues 17-19 on this GPU: scaled_gemm (4 shapes) with cuBLASLt and
#      torch._scaled_mm, attention (the four suite shapes and head dim 256) with SDPA,
#      token_logprobs with torch.
# Files under $OUT: progress.txt, rows.jsonl, ncu.txt, ratios.jsonl, logs.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
BUDGET=${S18A_BUDGET:-560}
left() { [ $SECONDS -lt $((BUDGET - ${1:-0})) ] || { note "skipped $2 at $SECONDS s (budget $BUDGET)"; return 1; }; }
device_line
W=/tmp/s18a; mkdir -p "$W"
unpack_gpu
K=.gpu/kernelyard
R="$FINAL/rows.jsonl"; : >"$R"
rows() {
  local label=$1 k=$2 s=$SECONDS
  r() { bench_as "$label" "$k" "$R" "$W/bench.err" "$@"; }
  for sh in rows=16384,hidden=4096 rows=4096,hidden=8192; do r rms_norm --problem $sh --dtype bf16; done
  for op in softmax log_softmax; do
    for sh in rows=16384,cols=4096 rows=4096,cols=8192 rows=4096,cols=32768; do r $op --problem $sh --dtype bf16; done
  done
  r rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
  for sh in rows=16384,d=14336 rows=4096,d=11008; do r silu_mul --problem $sh --dtype bf16; done
  if [ "$k" = "$K" ]; then
    for t in 64 4096; do r token_logprobs --problem tokens=$t,vocab=151936,entropy=1 --dtype bf16; done
    # the per-launch floor of this timing method (event, launch, event): tiny problems
    r token_logprobs --problem tokens=1,vocab=1024,entropy=1 --dtype bf16
    r rms_norm --problem rows=1,hidden=128 --dtype bf16
  fi
  note "rows $label: $((SECONDS - s)) s"
}
# The session's run also had two steps for the removed bulk-copy kernels (token_logprobs'
# split path and cuda.selective_state_update.sm90: verify, sanitizers, bench against the
# committed build, from a `.gpu/kernelyard-bulk` built at commit 6775f88); commit 7d4367c has
# this script with them.
for spec in r1-kb4096:kernelyard r1-kb0:kernelyard-kb0 r1-kb8192:kernelyard-kb8192 r1-kb16384:kernelyard-kb16384 \
  r2-kb0:kernelyard-kb0 r2-kb4096:kernelyard; do
  left 120 "rows $spec" || break
  rows "${spec%%:*}" ".gpu/${spec#*:}"
done
s=$SECONDS
for op in rms_norm softmax log_softmax rope silu_mul token_logprobs; do
  PYTHONUNBUFFERED=1 timeout 60 python3 .gpu/torch_ops.py --op $op >>"$R" 2>>"$W/bench.err"
done
note "torch rows: $((SECONDS - s)) s"
if left 60 "ncu"; then
  s=$SECONDS
  sec="--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats"
  for b in kernelyard kernelyard-kb0; do
    # shellcheck disable=SC2086
    timeout 60 ncu --clock-control none --kernel-name regex:rms_norm --launch-skip 2 --launch-count 1 $sec \
      .gpu/$b bench rms_norm --problem rows=16384,hidden=4096 --dtype bf16 --device cuda:0 --kernel cuda.rms_norm --iters 1 --warmup 2 \
      >>"$FINAL/ncu.txt" 2>&1
  done
  for b in $K; do
  # shellcheck disable=SC2086
  timeout 60 ncu --clock-control none --kernel-name regex:token_logprobs --launch-skip 2 --launch-count 1 $sec \
    $b bench token_logprobs --problem tokens=64,vocab=151936,entropy=1 --dtype bf16 --device cuda:0 --iters 1 --warmup 2 \
    >>"$FINAL/ncu.txt" 2>&1
  done
  note "ncu: $((SECONDS - s)) s"
fi
B="$FINAL/ratios.jsonl"; : >"$B"
if left 120 "scaled_gemm"; then
  s=$SECONDS
  for sh in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096; do
    for kern in cuda.scaled_gemm.cublaslt cuda.scaled_gemm.batch_invariant.sm90; do
      timeout 60 $K bench scaled_gemm --problem "$sh" --dtype f8e4m3 --device cuda:0 --kernel $kern --json 2>>"$W/bench.err" >>"$B"
    done
  done
  PYTHONUNBUFFERED=1 timeout 90 python3 .gpu/torch_ops.py --op scaled_gemm >>"$B" 2>>"$W/bench.err"
  note "scaled_gemm: $((SECONDS - s)) s"
fi
if left 90 "attention"; then
  s=$SECONDS
  for sh in batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=1 \
    batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 \
    batch=1,seq_q=16384,heads_q=32,heads_kv=8,head_dim=128,causal=1 \
    batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1 \
    batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=1 \
    batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=0; do
    timeout 60 $K bench attention --problem "$sh" --dtype bf16 --device cuda:0 --kernel cuda.attention.sm90 --json 2>>"$W/bench.err" >>"$B"
  done
  for op in attention attention_hd256; do
    PYTHONUNBUFFERED=1 timeout 90 python3 .gpu/torch_ops.py --op $op >>"$B" 2>>"$W/bench.err"
  done
  note "attention: $((SECONDS - s)) s"
fi
python3 scripts/ratio_table.py "$R" >"$W/rows.md" 2>&1
python3 scripts/ratio_table.py "$B" >"$W/ratios.md" 2>&1
tar -czf "$FINAL/logs.tgz" -C "$W" . 2>/dev/null
note "end at $SECONDS s"
cat "$P"
