"""The header splicing of crates/kernels/src/source.rs, for the quick-check scripts
(nvrtc_check.py, hiprtc_check.py): each line that is exactly `#include "name.cuh"` (a header of
kernels/) becomes the header, recursively, each header once per source."""
import os, re

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernels")
HEADERS = {h: open(os.path.join(KERNELS, h)).read() for h in os.listdir(KERNELS) if h.endswith(".cuh")}


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
