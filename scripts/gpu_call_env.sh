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
