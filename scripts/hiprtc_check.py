#!/usr/bin/env python3
"""Compile kernel sources with hiprtc (no AMD GPU needed) for a quick check while editing.

  python3 scripts/hiprtc_check.py crates/kernels/kernels/rms_norm.cu [--arch gfx908 --arch gfx1030 ...]

A source is a path, or a file name looked up in crates/kernels/kernels/ (the sources both
backends compile; crates/cuda/kernels/ holds the CUDA-only ones).
Needs Debian's libamdhip64-dev (ROCm 5.2: hiprtc lives in libamdhip64.so) or ROCm 6+
(libhiprtc.so). Splices crates/kernels/kernels/*.cuh in place of their `#include "name.cuh"`
lines (as the Rust pipeline does, recursively), compiles a code object for each arch with the
options of crates/rocm/src/module.rs, prints the log and the kernels found (`<name>.kd` symbols).
Exits 1 on any error. The authoritative check is the Rust test `compile_matrix` in crates/rocm.
"""
import ctypes, os, re, sys, argparse

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("files", nargs="+", help="a .cu path, or a file name in crates/kernels/kernels/")
ap.add_argument("--arch", action="append")
ap.add_argument("--opt", action="append", default=[], help="extra option, e.g. -DKY_X=1")
ap.add_argument("--out", help="write the code object of the last arch here")
a = ap.parse_args()
archs = a.arch or ["gfx908", "gfx90a", "gfx1030"]
lib = None
for name in ["libhiprtc.so", "libhiprtc.so.7", "libhiprtc.so.6", "libamdhip64.so", "libamdhip64.so.5"]:
    try:
        lib = ctypes.CDLL(name)
        lib.hiprtcCreateProgram
        break
    except (OSError, AttributeError):
        lib = None
if lib is None:
    sys.exit("no hiprtc found: apt-get install libamdhip64-dev (ROCm 5.2) or install ROCm 6+")
lib.hiprtcGetErrorString.restype = ctypes.c_char_p
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernel_splice import resolve, splice  # noqa: E402

ok = True
for f in map(resolve, a.files):
    src = open(f).read()
    src = splice(src)
    for arch in archs:
        prog = ctypes.c_void_p()
        rc = lib.hiprtcCreateProgram(ctypes.byref(prog), src.encode(), os.path.basename(f).encode(), 0, None, None)
        assert rc == 0, rc
        opts = [f"--offload-arch={arch}".encode(), b"-std=c++17", b"-O3"] + [o.encode() for o in a.opt]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.hiprtcCompileProgram(prog, len(opts), arr)
        n = ctypes.c_size_t(); lib.hiprtcGetProgramLogSize(prog, ctypes.byref(n))
        log = ctypes.create_string_buffer(n.value + 1); lib.hiprtcGetProgramLog(prog, log)
        logs = log.value.decode(errors="replace").strip()
        if rc != 0:
            ok = False
            print(f"FAIL {f} {arch}: {lib.hiprtcGetErrorString(rc).decode()}\n{logs}")
            continue
        lib.hiprtcGetCodeSize(prog, ctypes.byref(n)); code = ctypes.create_string_buffer(n.value); lib.hiprtcGetCode(prog, code)
        kernels = sorted(set(m.decode() for m in re.findall(rb"([A-Za-z_][A-Za-z0-9_]*)\.kd\x00", code.raw)))
        print(f"ok   {f} {arch}: {len(code.raw)} bytes, {len(kernels)} kernels {kernels}" + (f"\n{logs}" if logs and 'warning' in logs else ""))
        if a.out and arch == archs[-1]:
            open(a.out, "wb").write(code.raw)
sys.exit(0 if ok else 1)
