#!/usr/bin/env python3
"""selective_state_update on the GPU: the torch.compile peer with a chosen state dtype, and the
ratio table of the `ssu` stage of scripts/gpu_proof.sh.

  python3 scripts/ssu_peer.py peer --state f32|bf16 [--shapes B,H,P,N,G ...]
      torch.compile of mamba_ssm's decode step (the same function as ../shared/peers/torch_ops.py
      `selective_state_update`, which has a bf16 state only) with bf16 inputs and the given state
      dtype; one JSON line per shape, in torch_ops.py's format plus "state_dtype".
  python3 scripts/ssu_peer.py table BF16_STATE.jsonl F32_STATE.jsonl
      a Markdown table: per shape and state dtype, kernelyard's ms and TB/s, its fraction of the
      copy bandwidth bench measured in the same run, torch.compile's ms, and the speed-up.
Bytes counted for both: the state read and written (2 * B*H*P*N * state size), as the op's
`work` and torch_ops.py count them.
"""
import argparse
import json
import sys

SHAPES = [(64, 64, 64, 128, 8), (256, 32, 64, 128, 1)]


def peer(state, shapes):
    import torch
    import torch.nn.functional as F

    dev = "cuda"
    sdt = {"f32": torch.float32, "bf16": torch.bfloat16}[state]
    print(json.dumps({"peer": "torch", "version": torch.__version__,
                      "device": torch.cuda.get_device_name()}), flush=True)
    for (b, h, p, n, g) in shapes:
        st = torch.randn(b, h, p, n, device=dev, dtype=sdt)
        x = torch.randn(b, h, p, device=dev, dtype=torch.bfloat16)
        dtv = torch.randn(b, h, p, device=dev, dtype=torch.bfloat16)
        A = -torch.rand(h, p, n, device=dev)
        Bm = torch.randn(b, g, n, device=dev, dtype=torch.bfloat16)
        Cm = torch.randn(b, g, n, device=dev, dtype=torch.bfloat16)
        D = torch.randn(h, p, device=dev)
        z = torch.randn_like(x)
        dt_bias = torch.randn(h, p, device=dev)

        def f():
            d_ = F.softplus(dtv.float() + dt_bias)
            Bh = Bm.repeat_interleave(h // g, 1).float()
            Ch = Cm.repeat_interleave(h // g, 1).float()
            dA = torch.exp(A * d_[..., None])
            dB = Bh[:, :, None, :] * d_[..., None]
            new = st.float() * dA + dB * x.float()[..., None]
            st.copy_(new.to(st.dtype))
            out = (new * Ch[:, :, None, :]).sum(-1) + x.float() * D
            return (out * F.silu(z.float())).to(x.dtype)

        fc = torch.compile(f)
        for _ in range(5):
            fc()
        torch.cuda.synchronize()
        times = []
        for _ in range(7):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(20):
                fc()
            e.record()
            torch.cuda.synchronize()
            times.append(s.elapsed_time(e) / 20)
        ms = sorted(times)[len(times) // 2]
        nbytes = 2 * st.numel() * st.element_size()
        print(json.dumps({"peer": "torch", "op": "selective_state_update", "shape": [b, h, p, n, g],
                          "dtype": "bf16", "state_dtype": state, "impl": "torch.compile",
                          "ms": round(ms, 5), "tbps": round(nbytes / ms / 1e9, 3)}), flush=True)


def rows(path):
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return out


def table(paths):
    print("| state | shape (B,H,P,N,G) | kernelyard kernel | ms | TB/s | % of copy | torch.compile ms (20-call loop) | speed-up | torch_ops.py ms | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for state, path in zip(["bf16", "f32"], paths):
        rs = rows(path)
        copy = next((r["copy_tbps"] for r in rs if "copy_tbps" in r), None)
        # This script's peer rows carry "state_dtype"; torch_ops.py's (bf16 state, one call per
        # timing) do not.
        torch_ms = {tuple(r["shape"]): r["ms"] for r in rs
                    if r.get("peer") == "torch" and r.get("op") == "selective_state_update"
                    and "state_dtype" in r}
        ops_ms = {tuple(r["shape"]): r["ms"] for r in rs
                  if r.get("peer") == "torch" and r.get("op") == "selective_state_update"
                  and "state_dtype" not in r}
        for r in rs:
            if r.get("peer") != "kernelyard" or r.get("op") != "selective_state_update":
                continue
            shape = tuple(r["shape"])
            tb = r.get("tbps")
            frac = f"{100 * tb / copy:.1f} %" if tb and copy else "-"
            t = torch_ms.get(shape)
            speed = f"{t / r['ms']:.2f}x" if t else "-"
            o = ops_ms.get(shape)
            ospeed = f"{o / r['ms']:.2f}x" if o else "-"
            print(f"| {state} | {','.join(map(str, shape))} | {r['impl']} | {r['ms']:.4f} | {tb} | {frac} | {t if t else '-'} | {speed} | {o if o else '-'} | {ospeed} |")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("peer")
    p.add_argument("--state", choices=["f32", "bf16"], required=True)
    p.add_argument("--shapes", nargs="*", default=None)
    t = sub.add_parser("table")
    t.add_argument("paths", nargs=2)
    a = ap.parse_args()
    if a.cmd == "peer":
        shapes = [tuple(int(v) for v in s.split(",")) for s in a.shapes] if a.shapes else SHAPES
        peer(a.state, shapes)
        return 0
    return table(a.paths)


if __name__ == "__main__":
    sys.exit(main())
