#!/usr/bin/env bash
# Stages everything scripts/gpu_proof.sh needs in .gpu/ (git-ignored): release test binaries
# (via ../shared/device/pack.sh), the CLI as .gpu/kernelyard, and torch_ops.py.
# Then: device `run` with carry [".gpu"] and `bash scripts/gpu_proof.sh`.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
shared=${KERNELYARD_SHARED:-$root/../shared}
cargo build --release -q -p kernelyard-cli
"$shared/device/pack.sh" >/dev/null
# Not GPU tests: the CUDA compile matrix runs in CI (NVRTC only); the CLI tests (`cli`,
# `errors`) need the build tree's binary path; `select` is a criterion benchmark; `soundness`
# (trybuild compile-fail tests) needs cargo.
rm -f .gpu/bin/compile_matrix .gpu/bin/cli .gpu/bin/errors .gpu/bin/select .gpu/bin/soundness
# The GPU test binaries gpu_proof.sh relies on (its gemm_bi stage runs the gemm_* ones by name).
for t in gpu gemm_batch_invariance gemm_bi_selection; do
  [ -x ".gpu/bin/$t" ] || { echo "gpu_pack: .gpu/bin/$t was not built" >&2; exit 1; }
done
cp target/release/kernelyard .gpu/kernelyard
strip .gpu/kernelyard 2>/dev/null || true
cp "$shared/peers/torch_ops.py" .gpu/
du -sh .gpu | awk '{print "gpu_pack: staged " $1 " in .gpu/"}'
ls .gpu/bin
