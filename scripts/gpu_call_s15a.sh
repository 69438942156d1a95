#!/usr/bin/env bash
# Session 15, the one call (about 500 s of device time left). In order of importance, each
# step skipped once the call's own clock passes its budget (S15_BUDGET seconds, default 440):
#   1. Issue 18, the committed build (.gpu/kernelyard): verify --op attention with call s14b's
#      seed (its text log, docs/gpu-runs/2026-12-07-h100-s14b/verify_pp.log, is the reference:
#      the printed rel_l2 / max_abs of each case that passed there must be printed again: the
#      softmax's switch became a plain bool, the PTX should not move), head dim 96's first run
#      on a GPU (suite cases d96_*), its memcheck / racecheck / synccheck.
#   2. Issue 15: with .gpu/kernelyard-ssupk staged (KY_SSU_PACKED=1), verify --op
#      selective_state_update on it, memcheck / racecheck, and one round (SSU_ROUND2=2: two)
#      of the SSU bench shapes (default vs ssupk, interleaved) next to torch.compile.
#   3. One round of the attention bench (eight shapes incl. d96) next to torch SDPA.
#   4. The attention variants -st3 (three stages at D <= 128) and -ffma: verify (fresh seed),
#      st3's racecheck / synccheck, a second bench round with every variant.
#   5. ncu on the committed build at B4 S4096 H32 D128 non-causal.
# Files under $OUT (at most 8): progress.txt, verify_pp.log, sanitize.log, attn.jsonl,
# ssu.jsonl, ncu.txt, all.tgz.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
W=/tmp/s15a; mkdir -p "$W"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
BUDGET=${S15_BUDGET:-440}
P="$FINAL/progress.txt"
note() { echo "## $1" >>"$P"; }
left() { [ $SECONDS -lt $((BUDGET - ${1:-0})) ] || { note "skipped $2 at $SECONDS s (budget $BUDGET)"; return 1; }; }
nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader >>"$P"
K=.gpu/kernelyard
A=cuda.attention.sm90
bin() { [ "$1" = pp ] && echo $K || echo $K-$1; }
san() { # san TOOL LOG BIN KERNEL OP PROBLEM... : compute-sanitizer over bench, one run per problem
  local tool=$1 log=$2 b=$3 kern=$4 op=$5 rc=0 s=$SECONDS; shift 5
  for p in "$@"; do
    timeout 100 compute-sanitizer --tool "$tool" --error-exitcode 9 --print-limit 20 \
      "$b" bench "$op" --problem "$p" --dtype bf16 --device cuda:0 --kernel "$kern" --iters 1 --warmup 1 >>"$log" 2>&1 || rc=$?
  done
  note "$(basename "$b") compute-sanitizer $tool over bench --kernel $kern ($# shapes): rc=$rc, $((SECONDS - s)) s, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log" | sort | uniq -c | tr '\n' ' ')"
}
attn_round() { # attn_round ROUND VARIANTS...
  local round=$1; shift
  PYTHONUNBUFFERED=1 timeout 90 python3 .gpu/torch_ops.py --op attention_hd256 >>"$FINAL/attn.jsonl" 2>>"$W/bench.err"
  PYTHONUNBUFFERED=1 timeout 90 python3 .gpu/torch_ops.py --op attention >>"$FINAL/attn.jsonl" 2>>"$W/bench.err"
  for p in batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=0 \
           batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=256,causal=1 \
           batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=1 \
           batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 \
           batch=1,seq_q=16384,heads_q=32,heads_kv=8,head_dim=128,causal=1 \
           batch=8,seq_q=2048,heads_q=16,heads_kv=16,head_dim=64,causal=1 \
           batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=96,causal=1 \
           batch=2,seq_q=4096,heads_q=16,heads_kv=16,head_dim=96,causal=0; do
    for v in "$@"; do
      timeout 40 $(bin $v) bench attention --problem "$p" --dtype bf16 --device cuda:0 \
        --kernel $A --json 2>>"$W/bench.err" \
        | sed "s/\"impl\":\"$A\"/\"impl\":\"$v-r$round:$A\"/" >>"$FINAL/attn.jsonl"
    done
  done
  note "attention round $round ($*) done at $SECONDS s"
}
: >"$FINAL/attn.jsonl"
{
  # 1. The committed build: the same bits as call s14b, head dim 96.
  s=$SECONDS
  timeout 120 $K verify --device cuda:0 --op attention --seed 158733357 >"$FINAL/verify_pp.log" 2>&1
  note "pp verify --op attention --seed 158733357: rc=$?, $((SECONDS - s)) s, $(grep -E '^total|passed' "$FINAL/verify_pp.log" | tail -2 | tr '\n' ' ')"
  python3 scripts/same_errors.py "$FINAL/verify_pp.log" docs/gpu-runs/2026-12-07-h100-s14b/verify_pp.log \
    cuda.attention.sm90 cuda.attention.decode.mma cuda.attention >>"$P" 2>&1
  for tool in memcheck racecheck synccheck; do
    san $tool "$W/sanitize_d96_$tool.log" $K $A attention \
      batch=2,seq_q=200,seq_kv=333,heads_q=4,heads_kv=2,head_dim=96,causal=1 \
      batch=1,seq_q=129,seq_kv=385,heads_q=2,heads_kv=1,head_dim=96,causal=0
  done
  # 3. Issue 15, the packed-state SSU build.
  if [ -x .gpu/kernelyard-ssupk ] && left 120 "ssu"; then
    s=$SECONDS
    for b in kernelyard kernelyard-ssupk; do
      timeout 60 .gpu/$b verify --device cuda:0 --op selective_state_update >"$W/ssu_verify_$b.log" 2>&1
      note "$b verify --op selective_state_update: rc=$?, $((SECONDS - s)) s, $(grep -E '^total' "$W/ssu_verify_$b.log" | tail -1)"
    done
    for tool in memcheck racecheck; do
      san $tool "$W/sanitize_ssupk_$tool.log" .gpu/kernelyard-ssupk cuda.selective_state_update selective_state_update \
        batch=3,heads=4,head_dim=16,state_dim=128,groups=2,state_dtype=f32 \
        batch=5,heads=4,head_dim=8,state_dim=256,groups=1,state_dtype=bf16,a_per_head=1,state_indices=i32,cache_slots=9
    done
    : >"$FINAL/ssu.jsonl"
    for round in 1 ${SSU_ROUND2:-}; do
      for state in bf16 f32; do
        for sh in batch=64,heads=64,head_dim=64,state_dim=128,groups=8 \
          batch=256,heads=32,head_dim=64,state_dim=128,groups=1 \
          batch=64,heads=80,head_dim=64,state_dim=128,groups=1,a_per_head=1,state_indices=i32,cache_slots=512; do
          for b in kernelyard kernelyard-ssupk; do
            timeout 30 .gpu/$b bench selective_state_update --problem "$sh,state_dtype=$state" --dtype bf16 --device cuda:0 \
              --kernel cuda.selective_state_update --json 2>>"$W/bench.err" \
              | sed "s/\"impl\":\"cuda.sel/\"impl\":\"$b-r$round:cuda.sel/" >>"$FINAL/ssu.jsonl"
          done
        done
      done
    done
    note "ssu bench done at $SECONDS s"
    for state in bf16 f32; do
      left 40 "ssu peer $state" && PYTHONUNBUFFERED=1 timeout 60 python3 scripts/ssu_peer.py peer --state $state >>"$FINAL/ssu.jsonl" 2>>"$W/bench.err"
    done
    [ -n "${SSU_NAMED:-}" ] && PYTHONUNBUFFERED=1 timeout 45 python3 .gpu/torch_ops.py --op selective_state_update >>"$FINAL/ssu.jsonl" 2>>"$W/bench.err"
    note "ssu: $((SECONDS - s)) s"
  fi
  # 2b. One attention round, the committed build.
  left 60 "attention round 1" && attn_round 1 pp
  # 4. The variants.
  if left 90 "variants"; then
    fresh=$RANDOM$RANDOM
    ok="pp"
    for v in st3 ffma; do
      [ -x "$(bin $v)" ] || continue
      s=$SECONDS
      timeout 60 $(bin $v) verify --device cuda:0 --op attention --seed "$fresh" >"$W/verify_$v.log" 2>&1
      rc=$?
      note "$v verify --op attention --seed $fresh: rc=$rc, $((SECONDS - s)) s, $(grep -E '^total' "$W/verify_$v.log" | tail -1)"
      [ $rc = 0 ] && ok="$ok $v"
    done
    case " $ok " in *" st3 "*)
      for tool in racecheck synccheck; do
        san $tool "$W/sanitize_st3_$tool.log" $K-st3 $A attention \
          batch=2,seq_q=200,seq_kv=700,heads_q=4,heads_kv=2,head_dim=64,causal=1 \
          batch=1,seq_q=300,seq_kv=400,heads_q=2,heads_kv=2,head_dim=128,causal=1
      done ;;
    esac
    # shellcheck disable=SC2086
    left 60 "attention round 2" && attn_round 2 $ok
  fi
  # 5. ncu.
  if left 40 "ncu"; then
    s=$SECONDS
    timeout 60 ncu --clock-control none --kernel-name regex:attention_sm90 --launch-skip 2 --launch-count 1 \
      --section SpeedOfLight --section WarpStateStats --section Occupancy \
      $K bench attention --problem batch=4,seq_q=4096,heads_q=32,heads_kv=32,head_dim=128,causal=0 --dtype bf16 --device cuda:0 --kernel $A --iters 1 --warmup 2 \
      >"$FINAL/ncu.txt" 2>&1
    note "ncu: rc=$?, $((SECONDS - s)) s"
  fi
} >"$W/console.log" 2>&1
cat "$W"/sanitize_*.log >"$FINAL/sanitize.log" 2>/dev/null
tar czf "$FINAL/all.tgz" -C "$W" . 2>/dev/null
note "end at $SECONDS s"
cat "$P"
