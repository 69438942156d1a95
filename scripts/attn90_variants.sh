#!/usr/bin/env bash
# Builds the CLI once per schedule of cuda.attention.sm90 (crates/cuda/kernels/attention_sm90.cu:
# the `#define ATTN90_OVERLAP` and `#define ATTN90_PINGPONG` lines) into .gpu/:
#   .gpu/kernelyard      the source as committed
#   .gpu/kernelyard-ov   ATTN90_OVERLAP 1 (FA3's intra-warpgroup overlap)
#   .gpu/kernelyard-pp   ATTN90_OVERLAP 1 and ATTN90_PINGPONG 1 (named-barrier turns)
# The file must be committed (it is restored with `git checkout`). Timed by
# scripts/gpu_call_s14a.sh (VARIANTS="base ov pp").
set -euo pipefail
cd "$(dirname "$0")/.."
F=crates/cuda/kernels/attention_sm90.cu
git diff --quiet -- "$F" || { echo "commit $F first" >&2; exit 1; }
mkdir -p .gpu
set_define() { sed -i "s/^#define $1 [01]\$/#define $1 $2/" "$F"; grep -q "^#define $1 $2\$" "$F"; }
build() { cargo build --release -p kernelyard-cli 2>&1 | tail -1; cp target/release/kernelyard ".gpu/$1"; strip ".gpu/$1"; }
trap 'git checkout -- "$F"' EXIT
build kernelyard
set_define ATTN90_OVERLAP 1; set_define ATTN90_PINGPONG 0; build kernelyard-ov
set_define ATTN90_PINGPONG 1; build kernelyard-pp
git checkout -- "$F"
cargo build --release -p kernelyard-cli 2>&1 | tail -1
