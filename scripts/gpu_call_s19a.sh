#!/usr/bin/env bash
# Nineteenth session, call 1 (meant for an H200: issue 17's row targets are H200 numbers and
# no session since the sixteenth got one). Stage (about 2 minutes; the committed build as
# .gpu/kernelyard, and the prefetch-distance builds step 2 times on an H200):
#   VARIANT_FILE=crates/kernels/kernels/rows.cuh bash scripts/attn90_variants.sh \
#     kb0:KY_ROWS_L2_AHEAD_KB=0 kb8192:KY_ROWS_L2_AHEAD_KB=8192 kb12288:KY_ROWS_L2_AHEAD_KB=12288
#   cp ../shared/peers/torch_ops.py .gpu/ && (cd .gpu && gzip -6 -f kernelyard kernelyard-kb*)
# then `run` with carry [".gpu"]. Steps (S19A_BUDGET seconds, default 540, the call's own clock):
#   1. one launch against 20 back-to-back launches a run (`bench --launches`) at the issue shapes
#      (what was gpu_call_s18b.sh): the kernels' own time apart from the per-launch latency,
#      and two tiny problems (the host's cost per launch);
#   2. the row ops at the suite shapes, every tactic; on an H200 also the prefetch-distance
#      builds .gpu/kernelyard-kb0 / -kb8192 / -kb12288 (4 MiB is committed);
#   3. the final-ratio rows of issues 17-19: the bf16 GEMM (NN, NT, TN; small M on the split
#      kernel) with cuBLASLt, scaled_gemm with cuBLASLt, attention (prefill and decode) with
#      SDPA (torch's GEMM rows are left out: the targets are against cuBLASLt);
#   4. the row ops again (round 2), torch's rows while time is left (torch.compile is slow to
#      start: about 120 s for the six ops); ncu of rms_norm 4096 x 8192 and 16384 x 4096.
# Files under $OUT: progress.txt, launches.jsonl, rows.jsonl, ncu.txt, ratios.jsonl, logs.tgz.
set -uo pipefail
source "$(dirname "$0")/gpu_call_env.sh"
BUDGET=${S19A_BUDGET:-540}
left() { [ $SECONDS -lt $((BUDGET - ${1:-0})) ] || { note "skipped $2 at $SECONDS s (budget $BUDGET)"; return 1; }; }
device_line
W=/tmp/s19a; mkdir -p "$W"
unpack_gpu
K=.gpu/kernelyard
L1="$FINAL/launches.jsonl"; : >"$L1"
for L in 1 20; do
  s=$SECONDS
  l() {
    timeout 40 $K bench "$@" --device cuda:0 --launches $L --json 2>>"$W/bench.err" \
      | sed "s/\"impl\":\"/\"impl\":\"L$L:/" >>"$L1"
  }
  l token_logprobs --problem tokens=64,vocab=151936,entropy=1 --dtype bf16
  l token_logprobs --problem tokens=4096,vocab=151936,entropy=1 --dtype bf16
  l rms_norm --problem rows=4096,hidden=8192 --dtype bf16
  l rms_norm --problem rows=16384,hidden=4096 --dtype bf16
  l softmax --problem rows=4096,cols=8192 --dtype bf16
  l log_softmax --problem rows=4096,cols=8192 --dtype bf16
  l rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
  l silu_mul --problem rows=4096,d=11008 --dtype bf16
  l selective_state_update --problem batch=64,heads=64,head_dim=64,state_dim=128,groups=8,state_dtype=bf16 --dtype bf16
  l selective_state_update --problem batch=256,heads=32,head_dim=64,state_dim=128,groups=1,state_dtype=f32 --dtype bf16
  # tiny problems: with 20 launches a run the time per launch is the host's cost of a launch
  # (plan.launch, the driver call) where that exceeds the GPU's
  l token_logprobs --problem tokens=1,vocab=1024,entropy=1 --dtype bf16
  l rms_norm --problem rows=1,hidden=128 --dtype bf16
  note "launches $L: $((SECONDS - s)) s"
done
R="$FINAL/rows.jsonl"; : >"$R"
rows() {
  local label=$1 k=${2:-$K} s=$SECONDS
  r() { bench_as "$label" "$k" "$R" "$W/bench.err" "$@"; }
  for sh in rows=16384,hidden=4096 rows=4096,hidden=8192; do r rms_norm --problem $sh --dtype bf16; done
  for op in softmax log_softmax; do
    for sh in rows=16384,cols=4096 rows=4096,cols=8192 rows=4096,cols=32768; do r $op --problem $sh --dtype bf16; done
  done
  r rope --problem tokens=16384,heads=32,head_dim=128 --dtype bf16
  for sh in rows=16384,d=14336 rows=4096,d=11008; do r silu_mul --problem $sh --dtype bf16; done
  for t in 64 4096; do r token_logprobs --problem tokens=$t,vocab=151936,entropy=1 --dtype bf16; done
  r token_logprobs --problem tokens=1,vocab=1024,entropy=1 --dtype bf16
  r rms_norm --problem rows=1,hidden=128 --dtype bf16
  note "rows $label: $((SECONDS - s)) s"
}
left 150 "rows r1" && rows r1
# On an H200 (more bytes in flight needed than on an H100): the prefetch distance builds.
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  for v in kb0 kb8192 kb12288; do left 300 "rows $v" && rows $v .gpu/kernelyard-$v; done
fi
B="$FINAL/ratios.jsonl"; : >"$B"
if left 200 "gemm"; then
  s=$SECONDS
  for sh in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096; do
    for lay in "" ,trans_b=1 ,trans_a=1; do
      for kern in cuda.gemm.cublaslt cuda.gemm.batch_invariant.sm90; do
        timeout 60 $K bench gemm --problem "$sh$lay" --dtype bf16 --device cuda:0 --kernel $kern --json 2>>"$W/bench.err" >>"$B"
      done
    done
  done
  for sh in m=128,n=4096,k=4096 m=1,n=4096,k=4096; do
    for lay in "" ,trans_b=1 ,trans_a=1; do
      for kern in cuda.gemm.cublaslt cuda.gemm.batch_invariant.sm90.splitk; do
        timeout 60 $K bench gemm --problem "$sh$lay" --dtype bf16 --device cuda:0 --kernel $kern --json 2>>"$W/bench.err" >>"$B"
      done
    done
  done
  note "gemm: $((SECONDS - s)) s"
fi
if left 150 "scaled_gemm"; then
  s=$SECONDS
  for sh in m=4096,n=4096,k=4096 m=8192,n=8192,k=8192 m=4096,n=14336,k=4096 m=128,n=4096,k=4096; do
    for kern in cuda.scaled_gemm.cublaslt cuda.scaled_gemm.batch_invariant.sm90; do
      timeout 60 $K bench scaled_gemm --problem "$sh" --dtype f8e4m3 --device cuda:0 --kernel $kern --json 2>>"$W/bench.err" >>"$B"
    done
  done
  note "scaled_gemm: $((SECONDS - s)) s"
fi
if left 110 "attention"; then
  s=$SECONDS
  for sh in batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=1 \
    batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 \
    batch=1,seq_q=16384,heads_q=32,heads_kv=8,head_dim=128,causal=1 \
    batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1 \
    batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=1 \
    batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=0; do
    timeout 60 $K bench attention --problem "$sh" --dtype bf16 --device cuda:0 --kernel cuda.attention.sm90 --json 2>>"$W/bench.err" >>"$B"
  done
  for sh in batch=64,seq_q=1,seq_kv=4096 batch=8,seq_q=1,seq_kv=32768 batch=1,seq_q=1,seq_kv=131072; do
    timeout 60 $K bench attention --problem "$sh,heads_q=32,heads_kv=8,head_dim=128,causal=0" --dtype bf16 --device cuda:0 \
      --kernel cuda.attention.decode.mma --json 2>>"$W/bench.err" >>"$B"
  done
  for op in attention attention_hd256 attention_decode; do
    PYTHONUNBUFFERED=1 timeout 90 python3 .gpu/torch_ops.py --op $op >>"$B" 2>>"$W/bench.err"
  done
  note "attention: $((SECONDS - s)) s"
fi
left 100 "rows r2" && rows r2
for op in rms_norm softmax log_softmax rope silu_mul token_logprobs; do
  left 60 "torch $op" || break
  PYTHONUNBUFFERED=1 timeout 40 python3 .gpu/torch_ops.py --op $op >>"$R" 2>>"$W/bench.err"
done
note "torch rows done at $SECONDS s"
if left 70 "ncu"; then
  s=$SECONDS
  sec="--section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats --section LaunchStats"
  for sh in rows=4096,hidden=8192 rows=16384,hidden=4096; do
    # shellcheck disable=SC2086
    timeout 60 ncu --clock-control none --kernel-name regex:rms_norm --launch-skip 2 --launch-count 1 $sec \
      $K bench rms_norm --problem $sh --dtype bf16 --device cuda:0 --kernel cuda.rms_norm --iters 1 --warmup 2 \
      >>"$FINAL/ncu.txt" 2>&1
  done
  note "ncu: $((SECONDS - s)) s"
fi
python3 scripts/ratio_table.py "$L1" >"$W/launches.md" 2>&1
python3 scripts/ratio_table.py "$R" >"$W/rows.md" 2>&1
python3 scripts/ratio_table.py "$B" >"$W/ratios.md" 2>&1
cp "$W/bench.err" "$W/bench.err.txt" 2>/dev/null
tar -czf "$FINAL/logs.tgz" -C "$W" . 2>/dev/null
note "end at $SECONDS s"
cat "$P"
