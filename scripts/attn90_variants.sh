#!/usr/bin/env bash
# Builds the CLI once per build-time variant of cuda.attention.sm90 into .gpu/ (the `#define`
# lines of crates/cuda/kernels/attention_sm90.cu; the Rust launch reads the tile lines from
# the same text, so each build is self-consistent). Arguments: NAME:DEFINE=VALUE[,DEFINE=VALUE]
# ..., each built as .gpu/kernelyard-NAME; the source as committed is .gpu/kernelyard.
#   bash scripts/attn90_variants.sh base:ATTN90_OVERLAP=0,ATTN90_PINGPONG=0 \
#       t1:ATTN90_KN128=176,ATTN90_KN256=80
# VARIANT_FILE=crates/cuda/kernels/gemm_bi_sm90.cu varies another kernel's `#define` lines the
# same way (`KY_SM90_FP8_BN`: the FP8 GEMM's host reads it from the text too).
# FEATURES="crate/feature ..." builds every binary with those cargo features (the fifteenth
# session's head-dim-96 gate was one; it is gone). The file must be committed
# (it is restored with `git checkout`). Timed by
# scripts/gpu_call_s14a.sh / s14b.sh (VARIANTS="...").
set -euo pipefail
cd "$(dirname "$0")/.."
F=${VARIANT_FILE:-crates/cuda/kernels/attention_sm90.cu}
git diff --quiet -- "$F" || { echo "commit $F first" >&2; exit 1; }
mkdir -p .gpu
feat=()
[ -n "${FEATURES:-}" ] && feat=(-p kernelyard-cuda --features "$FEATURES")
build() { cargo build --release -p kernelyard-cli "${feat[@]}" 2>&1 | tail -1; cp target/release/kernelyard ".gpu/$1"; strip ".gpu/$1"; }
trap 'git checkout -- "$F"' EXIT
build kernelyard
for spec in "$@"; do
  name=${spec%%:*}
  IFS=, read -ra defs <<<"${spec#*:}"
  git checkout -- "$F"
  for d in "${defs[@]}"; do
    k=${d%%=*} v=${d#*=}
    sed -i "s/^#define $k [0-9]*\$/#define $k $v/" "$F"
    grep -q "^#define $k $v\$" "$F" || { echo "no line #define $k" >&2; exit 1; }
  done
  build "kernelyard-$name"
done
git checkout -- "$F"
cargo build --release -p kernelyard-cli 2>&1 | tail -1
