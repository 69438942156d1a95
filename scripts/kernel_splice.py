"""The header splicing of crates/kernels/src/source.rs, for the quick-check scripts
(nvrtc_check.py, hiprtc_check.py): each line that is exactly `#include "name.cuh"` (a header of
crates/kernels/kernels/) becomes the header, recursively, each header once per source.

Kernel sources live in two folders: the shared ones (both GPU backends) and the headers in
crates/kernels/kernels/, the CUDA-only ones in crates/cuda/kernels/. `resolve` finds a source
given as a path, or by its file name in either folder (`softmax.cu`, `kernels/attention.cu`)."""
import os, re

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
# The folder of the shared headers and sources, then the CUDA-only sources.
KERNEL_DIRS = [os.path.join(ROOT, "crates", "kernels", "kernels"), os.path.join(ROOT, "crates", "cuda", "kernels")]
HEADERS_DIR = KERNEL_DIRS[0]
HEADERS = {
    h: open(os.path.join(HEADERS_DIR, h)).read() for h in sorted(os.listdir(HEADERS_DIR)) if h.endswith(".cuh")
}


def resolve(path):
    """`path` if it exists, else the source of that file name in one of KERNEL_DIRS; exits with
    the folders searched when there is none."""
    if os.path.exists(path):
        return path
    for d in KERNEL_DIRS:
        candidate = os.path.join(d, os.path.basename(path))
        if os.path.exists(candidate):
            return os.path.relpath(candidate)
    raise SystemExit(f"{path}: no such file, nor {os.path.basename(path)} in " + " or ".join(
        os.path.relpath(d) for d in KERNEL_DIRS))


def splice(text, seen=None):
    seen = set() if seen is None else seen
    out = []
    for line in text.split("\n"):
        m = re.fullmatch(r'\s*#include\s+"([^"]+)"\s*', line)
        if m and m.group(1) in HEADERS:
            name = m.group(1)
            if name not in seen:
                seen.add(name)
                out.append(splice(HEADERS[name], seen))
            continue
        out.append(line)
    return "\n".join(out)
