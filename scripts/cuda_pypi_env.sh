#!/usr/bin/env bash
# A CUDA 13.0 build environment from PyPI wheels, for building CUDA code (candle-core's `cuda`
# feature: candle-kernels' nvcc build, cudarc's `dynamic-linking`) on a machine with no GPU and
# no CUDA toolkit. The binaries it builds run on any machine with an NVIDIA driver for CUDA 13.0
# or newer and the CUDA 13 runtime libraries (docs/EMBEDDING.md, "What a candle user must
# install").
#
#   source scripts/cuda_pypi_env.sh              # installs once, then exports the environment
#   eval "$(bash scripts/cuda_pypi_env.sh)"      # the same from any shell: prints `export` lines
#   CARGO_TARGET_DIR=target/candle-cuda cargo build --release -p kernelyard-candle --features cuda
#
# What it does (idempotent; concurrent callers wait on a lock):
# - installs nvidia-cuda-{nvcc,crt,runtime,nvrtc,cccl}, nvidia-nvvm, nvidia-cublas and
#   nvidia-curand, pinned to the CUDA 13.0 Update 2 line (the GPU machine's toolkit, 13.0.88:
#   PTX from a newer nvcc does not load on a 13.0 driver), with `pip install --target` into
#   $KERNELYARD_CUDA_PYPI_DIR (default $HOME/.cache/kernelyard-ci/cuda-pypi-13.0). The wheels
#   share one tree, nvidia/cu13/{bin,include,lib,nvvm}: that is the toolkit root (CUDA_HOME);
# - adds the unversioned links a linker needs (libcudart.so, libnvrtc.so, libcublas.so,
#   libcublasLt.so, libcurand.so) and lib64 -> lib (cudaforge, candle-kernels' build helper,
#   takes the libraries from lib64);
# - builds lib/stubs/libcuda.so, a stub of the driver (no wheel carries libcuda): soname
#   libcuda.so.1, one function per driver entry point (the names cuda.h declares, plus those of
#   any cudarc in ~/.cargo/registry), each returning CUDA_ERROR_STUB_LIBRARY (34). A binary
#   linked against it records NEEDED libcuda.so.1 and uses the real driver where it runs. The
#   stub directory is on LIBRARY_PATH only, never on LD_LIBRARY_PATH (put it there by hand to
#   run a CUDA build here: every CUDA call fails with CUDA_ERROR_STUB_LIBRARY, a no-device test).
# Exported: PATH (nvcc), CUDA_HOME, CUDA_PATH (cudarc's link search, cudaforge's toolkit),
# LIBRARY_PATH (lib and lib/stubs), LD_LIBRARY_PATH (lib: so the linker finds the libraries'
# own dependencies), CUDA_COMPUTE_CAP (default 90: H100/H200; there is no nvidia-smi here),
# CUDARC_CUDA_VERSION=13000 (cudarc's bindings, instead of asking nvcc).
# Overrides: KERNELYARD_CUDA_PYPI_DIR, CUDA_COMPUTE_CAP, PIP (default `python3 -m pip`).

# Sourced: no `set -e` (it would outlive this script in the caller's shell); every step below
# checks its own status.
_ky_cuda_pypi_main() {
  local dir=${KERNELYARD_CUDA_PYPI_DIR:-$HOME/.cache/kernelyard-ci/cuda-pypi-13.0}
  local root=$dir/nvidia/cu13
  local pip=${PIP:-python3 -m pip}
  # The CUDA 13.0 Update 2 line (13.0.88 nvcc, as on the GPU machine); cuBLAS 13.1.0.3 and
  # cuRAND 10.4.0.35 are the versions that toolkit ships.
  local wheels="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85
nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 nvidia-nvvm==13.0.88
nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35"
  local stamp=$dir/.kernelyard-wheels
  mkdir -p "$(dirname "$dir")" || return 1
  (
    # One installer at a time; the others wait, then find the stamp.
    flock 9 || exit 1
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wheels" ]; then
      echo "cuda_pypi_env: installing the CUDA 13.0 wheels into $dir (about 1.2 GB)" >&2
      tmp=$dir.tmp.$$
      rm -rf "$tmp"
      # shellcheck disable=SC2086 # $pip and $wheels are word lists
      $pip install --quiet --disable-pip-version-check --no-deps --target "$tmp" $wheels >&2 \
        || { rm -rf "$tmp"; echo "cuda_pypi_env: pip install failed" >&2; exit 1; }
      rm -rf "$dir" && mv "$tmp" "$dir" || exit 1
      printf '%s' "$wheels" >"$stamp"
    fi
    _ky_cuda_pypi_links "$root" || exit 1
    _ky_cuda_pypi_stub "$root" || exit 1
  ) 9>"$dir.lock" || return 1

  # Prepended once (sourcing twice leaves the lists as they were).
  case ":$PATH:" in *":$root/bin:"*) ;; *) export PATH="$root/bin:$PATH" ;; esac
  case ":${LIBRARY_PATH:-}:" in *":$root/lib:$root/lib/stubs:"*) ;; *)
    export LIBRARY_PATH="$root/lib:$root/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}" ;; esac
  case ":${LD_LIBRARY_PATH:-}:" in *":$root/lib:"*) ;; *)
    export LD_LIBRARY_PATH="$root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;; esac
  export CUDA_HOME="$root" CUDA_PATH="$root"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
  export CUDARC_CUDA_VERSION=13000
  local v
  v=$(nvcc --version 2>&1 | grep -o 'release [0-9.]*') || {
    echo "cuda_pypi_env: nvcc from $root/bin does not run" >&2
    return 1
  }
  echo "cuda_pypi_env: nvcc $v, CUDA_HOME=$root, CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP" >&2
}

# The unversioned names the linker looks up (-lcudart -lnvrtc ...), and lib64 -> lib.
_ky_cuda_pypi_links() {
  local lib=$1/lib so target
  [ -e "$1/lib64" ] || ln -s lib "$1/lib64" || return 1
  for so in libcudart.so.13 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
    [ -e "$lib/$so" ] || { echo "cuda_pypi_env: $lib/$so is missing" >&2; return 1; }
    target=$lib/${so%.so.*}.so
    [ -L "$target" ] || ln -sf "$so" "$target" || return 1
  done
}

# lib/stubs/libcuda.so: every driver entry point, returning CUDA_ERROR_STUB_LIBRARY.
_ky_cuda_pypi_stub() {
  local stubs=$1/lib/stubs
  # libcuda.so.1 too: LD_LIBRARY_PATH=$CUDA_HOME/lib/stubs runs a CUDA build here, every CUDA
  # call then failing with CUDA_ERROR_STUB_LIBRARY (the no-device path, without a GPU).
  [ -e "$stubs/libcuda.so.1" ] || [ ! -e "$stubs/libcuda.so" ] || ln -s libcuda.so "$stubs/libcuda.so.1" || return 1
  [ -e "$stubs/libcuda.so" ] && return 0
  mkdir -p "$stubs" || return 1
  local names
  # cuda.h through the preprocessor (its macros map cuFoo to the exported cuFoo_v2, and with
  # per-thread default streams to the _ptsz/_ptds names), plus cudarc's own binding names.
  names=$(
    {
      for d in "" "-DCUDA_API_PER_THREAD_DEFAULT_STREAM"; do
        echo '#include <cuda.h>' | cc -E -P $d -I"$1/include" - 2>/dev/null \
          | grep -oE '\bCUresult +(CUDAAPI +)?cu[A-Za-z0-9_]+ *\(' | grep -oE 'cu[A-Za-z0-9_]+ *\($' | tr -d ' ('
      done
      cat "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/src/driver/sys/mod.rs 2>/dev/null \
        | grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+\(' | sed -E 's/^pub unsafe fn //; s/\($//'
    } | sort -u
  )
  if [ "$(wc -l <<<"$names")" -lt 400 ]; then
    echo "cuda_pypi_env: found only $(wc -l <<<"$names") driver entry points for the stub" >&2
    return 1
  fi
  {
    echo '/* Generated by scripts/cuda_pypi_env.sh: a link-time stub of the CUDA driver. */'
    sed -E 's/.*/int &(void) { return 34; \/* CUDA_ERROR_STUB_LIBRARY *\/ }/' <<<"$names"
  } >"$stubs/libcuda_stub.c"
  cc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so.tmp" "$stubs/libcuda_stub.c" \
    && mv "$stubs/libcuda.so.tmp" "$stubs/libcuda.so" && ln -sf libcuda.so "$stubs/libcuda.so.1" \
    || { echo "cuda_pypi_env: building the libcuda stub failed" >&2; return 1; }
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  _ky_cuda_pypi_main
else
  set -uo pipefail
  _ky_cuda_pypi_main || exit 1
  for v in PATH CUDA_HOME CUDA_PATH LIBRARY_PATH LD_LIBRARY_PATH CUDA_COMPUTE_CAP CUDARC_CUDA_VERSION; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
fi
