#!/usr/bin/env bash
# Issue 18: cuda.attention's head-dim-256 tilings side by side (docs/NOTES.md, "Issue 18").
#
#   bash scripts/hd256_variants.sh build   # here: .gpu/kernelyard-hd256-v<N>, one CLI per tiling
#   bash scripts/hd256_variants.sh run     # on the GPU machine (carry .gpu): verify + bench each
#
# A tiling is chosen when the module is built, by the one line `#define ATTN_D256 <N>` in
# crates/cuda/kernels/attention.cu (0: 4 warps x 16 rows, 32-key tiles, 97 KiB, the default;
# 1: 8 warps, 32-key tiles, 130 KiB; 2: 4 warps, 64-key tiles, 161 KiB; 3: 8 warps, 64-key
# tiles, 194 KiB). kernelyard-cuda reads that line when it compiles (`D256_TILING`), so `build`
# only edits it, builds the CLI, copies it, and puts the line back. VARIANTS (default "0 1 2
# 3") picks which. The NVRTC disk cache is keyed by the source text: builds never share a cubin.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
variants=${VARIANTS:-0 1 2 3}
case "${1:-}" in
  build)
    cu=crates/cuda/kernels/attention.cu
    [ "$(grep -cE '^#define ATTN_D256 [0-9]+$' "$cu")" = 1 ] ||
      { echo "hd256_variants: $cu has not exactly one '#define ATTN_D256 <N>' line" >&2; exit 1; }
    orig=$(grep -E '^#define ATTN_D256 [0-9]+$' "$cu")
    trap 'sed -i "s/^#define ATTN_D256 [0-9]*$/$orig/" "$cu"' EXIT
    mkdir -p .gpu
    for v in $variants; do
      sed -i "s/^#define ATTN_D256 [0-9]*$/#define ATTN_D256 $v/" "$cu"
      cargo build --release -q -p kernelyard-cli
      cp target/release/kernelyard ".gpu/kernelyard-hd256-v$v"
      strip ".gpu/kernelyard-hd256-v$v" 2>/dev/null || true
      echo "hd256_variants: .gpu/kernelyard-hd256-v$v (ATTN_D256 = $v)"
    done
    ;;
  run)
    # Per build: the suite's attention cases (d256_* included: oracle, determinism, batch
    # invariance), then B2 S4096 H16 D256 bf16, non-causal and causal, 3 rounds interleaved
    # across builds (two runs of one kernel have differed by up to 25 %: docs/TUNING.md).
    OUT=${OUT:-/tmp/out}
    mkdir -p "$OUT"
    export KERNELYARD_CACHE_DIR=${KERNELYARD_CACHE_DIR:-/tmp/kernelyard-cache}
    for v in $variants; do
      K=.gpu/kernelyard-hd256-v$v
      rc=0
      timeout 300 $K verify --device cuda:0 --op attention >"$OUT/hd256_v$v.verify.log" 2>&1 || rc=$?
      echo "v$v verify: rc=$rc $(grep -E 'passed|failed' "$OUT/hd256_v$v.verify.log" | tail -1)"
      grep -E "cuda\.attention (f16|bf16) d256_" "$OUT/hd256_v$v.verify.log" | grep -v -i pass || true
    done
    for round in 1 2 3; do
      for c in 0 1; do
        for v in $variants; do
          r=$(timeout 60 .gpu/kernelyard-hd256-v$v bench attention \
            --problem "batch=2,seq_q=4096,seq_kv=4096,heads_q=16,heads_kv=16,head_dim=256,causal=$c" \
            --dtype bf16 --device cuda:0 --kernel cuda.attention --json 2>&1 | tail -1) || true
          echo "round $round causal=$c v$v: $r" | tee -a "$OUT/hd256_variants.log"
        done
      done
    done
    ;;
  *)
    echo "usage: bash scripts/hd256_variants.sh build|run" >&2
    exit 2
    ;;
esac
