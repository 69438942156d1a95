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
rm -f .gpu/bin/compile_matrix .gpu/bin/select .gpu/bin/soundness
for t in crates/cli/tests/*.rs; do
  rm -f ".gpu/bin/$(basename "$t" .rs)"
done
# The GPU test binaries gpu_proof.sh relies on (its gemm_bi stage runs the gemm_* ones by name).
for t in gpu gemm_batch_invariance gemm_bi_selection; do
  [ -x ".gpu/bin/$t" ] || { echo "gpu_pack: .gpu/bin/$t was not built" >&2; exit 1; }
done
cp target/release/kernelyard .gpu/kernelyard
strip .gpu/kernelyard 2>/dev/null || true
cp "$shared/peers/torch_ops.py" .gpu/
du -sh .gpu | awk '{print "gpu_pack: staged " $1 " in .gpu/"}'
ls .gpu/bin

# ---- BEGIN candle stage (owner: scripts/cuda_pypi_env.sh; docs/GPU.md "Building candle with
# CUDA here (no toolkit)") ---------------------------------------------------------------------
# With KERNELYARD_PACK_CANDLE=1: kernelyard-candle built with `--features cuda` (candle-core's
# CUDA backend: nvcc and the CUDA libraries from PyPI, a libcuda stub) in its own target dir
# (target/candle-cuda, so target/ stays unlocked), its test binaries staged in .gpu/candle/ and
# its examples in .gpu/candle/examples/, packed as .gpu/candle.tar.xz; `bash scripts/gpu_proof.sh
# candle` unpacks and runs them there.
# A cold build compiles candle-kernels (nvcc, sm_$CUDA_COMPUTE_CAP, default 90): see docs/GPU.md
# for the time. Self-contained: this part alone is
#   sed -n '/^# ---- BEGIN candle/,/^# ---- END candle/p' scripts/gpu_pack.sh | KERNELYARD_PACK_CANDLE=1 bash
if [ "${KERNELYARD_PACK_CANDLE:-0}" = 1 ]; then
  (
    set -euo pipefail
    cd "$(git rev-parse --show-toplevel)"
    # shellcheck source=scripts/cuda_pypi_env.sh
    source scripts/cuda_pypi_env.sh
    export CARGO_TARGET_DIR=${KERNELYARD_CANDLE_TARGET:-$PWD/target/candle-cuda}
    pkg=${KERNELYARD_CANDLE_PKG:-kernelyard-candle}
    rm -rf .gpu/candle && mkdir -p .gpu/candle/examples
    # json_exes KIND: the executables of `compiler-artifact` messages, `test` for test harnesses
    # (profile.test), `example` for examples.
    json_exes() {
      python3 -c '
import sys, json
kind = sys.argv[1]
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"): continue
    if (m.get("profile", {}).get("test") if kind == "test" else "example" in m["target"]["kind"]):
        print(m["executable"])' "$1"
    }
    stage() { # stage DIR EXE...: copy each without cargo's hash suffix, stripped
      local dir=$1 exe name; shift
      for exe in "$@"; do
        name=$(basename "$exe"); [ "$dir" = .gpu/candle ] && name=${name%-*}
        cp "$exe" "$dir/$name"
        strip "$dir/$name" 2>/dev/null || true
      done
    }
    start=$SECONDS
    json=.gpu/candle/cargo.json # compiler errors are rendered on stderr
    cargo test --release -p "$pkg" --features cuda --no-run --message-format=json-render-diagnostics >"$json"
    mapfile -t tests < <(json_exes test <"$json")
    cargo build --release -p "$pkg" --features cuda --examples --message-format=json-render-diagnostics >"$json"
    mapfile -t examples < <(json_exes example <"$json")
    rm -f "$json"
    [ ${#tests[@]} -gt 0 ] || { echo "gpu_pack: no $pkg test binaries were built" >&2; exit 1; }
    stage .gpu/candle "${tests[@]}"
    [ ${#examples[@]} -eq 0 ] || stage .gpu/candle/examples "${examples[@]}"
    # Each binary carries candle-kernels' PTX and ~33 MB of SASS (.nv_fatbin), ~39 MB stripped:
    # too much for the device call's carry (64 MiB in all). One xz stream with a dictionary
    # larger than a binary stores the shared part once (~5 MB for all); gpu_proof.sh unpacks it.
    echo "gpu_pack: candle stage ($pkg --features cuda, $((SECONDS - start)) s): $(du -sh .gpu/candle | cut -f1):" \
      "$(cd .gpu/candle && ls -p | grep -v / | tr '\n' ' ')examples: $(ls .gpu/candle/examples | tr '\n' ' ')"
    tar -cf - -C .gpu candle | xz -T1 --lzma2=preset=6,dict=64MiB >.gpu/candle.tar.xz
    rm -rf .gpu/candle
    echo "gpu_pack: .gpu/candle.tar.xz $(du -sh .gpu/candle.tar.xz | cut -f1); .gpu/ $(du -sh .gpu | cut -f1)"
  )
fi
# ---- END candle stage ---------------------------------------------------------------------------
