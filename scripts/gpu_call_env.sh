# Sourced by the device-call scripts (scripts/gpu_call_s16*.sh) after `set -uo pipefail`: the
# GPU machine's CUDA toolkit and an NVRTC cache for the CLI, the call's output folder FINAL ($OUT,
# what comes back), its progress file P, `note` (one "## " line into P) and `device_line` (the
# GPU's name, compute capability, driver and clock into P).
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
export CUDA_PATH=/usr/local/cuda LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-} KERNELYARD_CACHE_DIR=/tmp/kernelyard-cache
export PATH=$CUDA_PATH/bin:$PATH
P="$FINAL/progress.txt"
note() { echo "## $1" >>"$P"; }
device_line() {
  nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader >>"$P"
}
# The call's binaries travel gzipped (the 64 MiB carry): .gpu/NAME.gz -> .gpu/NAME.
unpack_gpu() {
  local z
  for z in .gpu/*.gz; do [ -e "$z" ] || continue; gunzip -kf "$z" && chmod +x "${z%.gz}"; done
}
# bench_as LABEL BINARY OUT ERR OP ARGS...: every kernel (--all) of `BINARY bench OP ARGS` on
# cuda:0, its JSON lines appended to OUT with each impl relabelled LABEL:impl, stderr to ERR.
bench_as() {
  local label=$1 k=$2 out=$3 err=$4
  shift 4
  timeout 60 "$k" bench "$@" --device cuda:0 --all --json 2>>"$err" | sed "s/\"impl\":\"/\"impl\":\"$label:/" >>"$out"
}
