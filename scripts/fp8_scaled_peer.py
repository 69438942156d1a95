#!/usr/bin/env python3
"""Peer timings for `scaled_gemm` with per-row and block scales (issue 19): torch._scaled_mm
with row-wise scales (scale_a [m, 1], scale_b [1, n]) and DeepSeek-style block scales (1x128 for
A, stored m fastest; 128x128 for B, k-blocks fastest with their count rounded up to 4, the
layouts torch checks for cuBLASLt on Hopper), e4m3, bf16 out, in torch_ops.py's JSON-lines
format (impl `torch._scaled_mm[row]` / `torch._scaled_mm[block]`, shape [m, n, k]). A recipe
this torch or GPU refuses is reported on stderr and skipped.

    python3 scripts/fp8_scaled_peer.py [--shapes 4096,4096,4096 8192,8192,8192 ...]
"""
import argparse
import json
import sys

import torch

DEV = "cuda"


def median_ms(fn, iters=50, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]


def emit(shape, impl, ms, mode):
    m, n, k = shape
    row = {"peer": "torch", "op": "scaled_gemm", "shape": shape, "dtype": "e4m3", "impl": impl,
           "ms": round(ms, 5), "layout": "nt", "scales": mode,
           "tflops": round(2 * m * n * k / ms / 1e9, 1)}
    print(json.dumps(row), flush=True)


def run(m, n, k):
    a = torch.randn(m, k, device=DEV).to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device=DEV).to(torch.float8_e4m3fn).t()  # [k, n] column-major
    kb = (k + 127) // 128
    recipes = {
        "row": (torch.rand(m, 1, device=DEV) + 0.5, torch.rand(1, n, device=DEV) + 0.5),
        # 1x128: [m, kb] with strides (1, m); 128x128: [round_up(kb, 4), ceil(n/128)] with
        # strides (1, round_up(kb, 4)).
        "block": (
            (torch.rand(kb, m, device=DEV) + 0.5).t(),
            (torch.rand((n + 127) // 128, (kb + 3) // 4 * 4, device=DEV) + 0.5).t(),
        ),
    }
    for mode, (sa, sb) in recipes.items():
        f = lambda: torch._scaled_mm(a, b, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)
        try:
            f()
            torch.cuda.synchronize()
        except Exception as e:  # a recipe this build does not take
            print(f"{mode} {m}x{n}x{k}: {type(e).__name__}: {e}".splitlines()[0], file=sys.stderr)
            continue
        emit([m, n, k], f"torch._scaled_mm[{mode}]", median_ms(f), mode)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shapes", nargs="*",
                   default=["4096,4096,4096", "8192,8192,8192", "4096,14336,4096", "128,4096,4096"])
    args = p.parse_args()
    print(json.dumps({"peer": "torch", "version": torch.__version__,
                      "device": torch.cuda.get_device_name()}), flush=True)
    for s in args.shapes:
        run(*map(int, s.split(",")))


if __name__ == "__main__":
    main()
