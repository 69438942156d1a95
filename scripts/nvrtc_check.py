#!/usr/bin/env python3
"""Compile kernel sources with libnvrtc (no GPU, no toolkit needed) for a quick check while editing.

  LD_LIBRARY_PATH=/path/to/nvidia/cu13/lib python3 scripts/nvrtc_check.py crates/kernels/kernels/rms_norm.cu [--arch sm_90a ...]

A source is a path, or a file name looked up in crates/kernels/kernels/ (shared sources) and
crates/cuda/kernels/ (CUDA-only sources): `scripts/nvrtc_check.py rms_norm.cu attention.cu`.
Splices each crates/kernels/kernels/*.cuh in place of its `#include "name.cuh"` line (as the Rust
pipeline does), compiles to PTX for each arch, prints the log and the `.entry` names. Exits 1 on
any error.
The authoritative check is the Rust test `compile_matrix` in crates/cuda (run by CI).
"""
import ctypes, os, re, sys, argparse

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("files", nargs="+", help="a .cu path, or a file name in crates/kernels/kernels/ or crates/cuda/kernels/")
ap.add_argument("--arch", action="append")
ap.add_argument("--ptx", action="store_true", help="print the PTX of the last arch")
ap.add_argument("--ptx-dir", help="write each PTX to DIR/<source stem>.<arch>.ptx (to diff two trees)")
a = ap.parse_args()
archs = a.arch or ["sm_75", "sm_80", "sm_86", "sm_89", "sm_90a", "sm_100a", "sm_120"]
lib = ctypes.CDLL("libnvrtc.so.13")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_splice import resolve, splice  # noqa: E402

ok = True
for f in map(resolve, a.files):
    src = open(f).read()
    src = splice(src)
    for arch in archs:
        prog = ctypes.c_void_p()
        assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), os.path.basename(f).encode(), 0, None, None) == 0
        opts = [f"--gpu-architecture={arch}".encode(), b"-std=c++17"]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        n = ctypes.c_size_t(); lib.nvrtcGetProgramLogSize(prog, ctypes.byref(n))
        log = ctypes.create_string_buffer(n.value); lib.nvrtcGetProgramLog(prog, log)
        if rc != 0:
            ok = False
            print(f"FAIL {f} {arch}:\n{log.value.decode()}")
            continue
        lib.nvrtcGetPTXSize(prog, ctypes.byref(n)); ptx = ctypes.create_string_buffer(n.value); lib.nvrtcGetPTX(prog, ptx)
        entries = re.findall(r"\.entry\s+(\w+)", ptx.value.decode())
        warn = log.value.decode().strip()
        print(f"ok   {f} {arch}: {len(entries)} entries {entries}" + (f"\n{warn}" if warn else ""))
        if a.ptx_dir:
            os.makedirs(a.ptx_dir, exist_ok=True)
            stem = os.path.splitext(os.path.basename(f))[0]
            open(os.path.join(a.ptx_dir, f"{stem}.{arch}.ptx"), "wb").write(ptx.value)
        if a.ptx and arch == archs[-1]:
            print(ptx.value.decode())
sys.exit(0 if ok else 1)
