#!/usr/bin/env python3
"""Merge kernelyard's and torch's benchmark JSON lines into a ratio table (markdown).

  kernelyard bench rms_norm --device cuda:0 --problem rows=16384,hidden=4096 --dtype bf16 --json > ours.jsonl
  python3 ../shared/peers/torch_ops.py > torch.jsonl      # in the same run, on the same GPU
  python3 scripts/ratio_table.py ours.jsonl torch.jsonl [--target rms_norm:torch.eager:1.3 ...]

Reads every file given (JSON lines; one file may hold both peers; "-" is stdin). Rows are
{"peer": "kernelyard" | "torch", "op", "shape", "dtype", "impl", "ms", ...}; a line without "op"
is a header ({"peer", "version", "device", ...}) and names the device of the rows after it in
that file. A gemm row's "layout" ("nn", "nt", "tn", "tt": A's then B's, "t" stored transposed)
is part of its key, "nn" when absent (torch_ops.py's `a @ b`), so only like layouts are
compared. When a row appears more than once, the fastest (least ms) is kept.

Prints one markdown table per op, one row per (shape, dtype, our kernel): our ms, our TFLOP/s or
TB/s, our fraction of the device's copy bandwidth (memory-bound ops), and per torch impl
(torch.eager, torch.compile, torch.matmul, torch.sdpa, ...) its ms and the ratio
torch ms / our ms: above 1 we are faster. Only (op, shape, dtype) with a kernelyard row are
shown unless --missing is given.

--target OP:IMPL:RATIO (repeatable) checks that our fastest kernel is at least RATIO times as
fast as torch's IMPL on every (shape, dtype) of OP where both were measured. OP may be "*" (every
op) and IMPL "best" (torch's fastest impl for that shape). A target with nothing to compare
fails: a missing measurement is not a pass.

For gemm, a second table puts each of our other gemm kernels (the batch-invariant ones) next to
`cuda.gemm.cublaslt` timed in the same run on the same device: ms, TFLOP/s, the speed relative
to cuBLASLt (cuBLASLt ms / ours: above 1 ours is faster) and to torch.matmul where torch measured
the same shape and layout.

Exit status: 0 ok, 1 a target failed or had nothing to compare, 2 bad input.
"""
import argparse
import json
import sys
from collections import OrderedDict


def die(msg):
    print(f"ratio_table: {msg}", file=sys.stderr)
    sys.exit(2)


def read_rows(paths):
    """(rows, devices): rows as dicts with their file's device; devices per peer."""
    rows, devices = [], {}
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        device = None
        with f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    die(f"{path}:{n}: not JSON ({e})")
                if not isinstance(obj, dict) or "peer" not in obj:
                    die(f"{path}:{n}: not a benchmark line (no \"peer\")")
                if "op" not in obj:
                    device = obj.get("device", device)
                    label = obj["peer"] + (f" {obj['version']}" if "version" in obj else "")
                    devices.setdefault(obj["peer"], set()).add((device, label))
                    continue
                for key in ("op", "shape", "dtype", "impl", "ms"):
                    if key not in obj:
                        die(f"{path}:{n}: row without \"{key}\"")
                obj.setdefault("device", device)
                rows.append(obj)
    return rows, devices


def key_of(row):
    """(op, shape, dtype, layout); layout is None except for gemm ("nn" when absent).
    scaled_gemm has one layout (A [m,k], B [n,k]: torch_ops.py calls it "nt"), and torch names
    its FP8 dtypes without the "f8" prefix kernelyard uses ("e4m3" is "f8e4m3")."""
    if row["op"] == "gemm":
        layout = row.get("layout") or "nn"
    else:
        layout = None
    dtype = row["dtype"]
    if dtype in ("e4m3", "e5m2"):
        dtype = "f8" + dtype
    return (row["op"], tuple(row["shape"]), dtype, layout)


def shape_label(key):
    """The shape cell: `[m,n,k]`, with the gemm layout after it."""
    label = str(list(key[1])).replace(" ", "")
    return f"{label} {key[3]}" if key[3] else label


def fastest(rows):
    """{(op, shape, dtype): {impl: row}} keeping the least ms per impl."""
    out = OrderedDict()
    for r in rows:
        per = out.setdefault(key_of(r), OrderedDict())
        if r["impl"] not in per or r["ms"] < per[r["impl"]]["ms"]:
            per[r["impl"]] = r
    return out


def fmt_ms(ms):
    return f"{ms:.4f}" if ms < 10 else f"{ms:.2f}"


def ratio(torch_ms, our_ms):
    return torch_ms / our_ms if our_ms > 0 else float("inf")


def throughput(row):
    if "tflops" in row:
        return f"{row['tflops']:.1f} TFLOP/s"
    if "tbps" in row:
        return f"{row['tbps']:.3f} TB/s"
    return ""


def tables(ours, torch, show_missing):
    keys = list(ours) + [k for k in torch if k not in ours and show_missing]
    ops = OrderedDict()
    for k in keys:
        ops.setdefault(k[0], []).append(k)
    lines = []
    for op, op_keys in ops.items():
        impls = []
        for k in op_keys:
            for impl in torch.get(k, {}):
                if impl not in impls:
                    impls.append(impl)
        head = ["shape", "dtype", "kernelyard", "ms", "throughput", "% copy"]
        for impl in impls:
            head += [f"{impl} ms", f"{impl} / ours"]
        lines.append(f"### {op}")
        lines.append("")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")
        for k in op_keys:
            dtype = k[2]
            our_rows = list(ours.get(k, {}).values()) or [None]
            for r in our_rows:
                cells = [shape_label(k), dtype]
                if r is None:
                    cells += ["(not measured)", "", "", ""]
                else:
                    frac = r.get("copy_fraction")
                    cells += [r["impl"], fmt_ms(r["ms"]), throughput(r),
                              f"{100 * frac:.1f}%" if frac is not None else ""]
                for impl in impls:
                    t = torch.get(k, {}).get(impl)
                    if t is None:
                        cells += ["", ""]
                    elif r is None:
                        cells += [fmt_ms(t["ms"]), ""]
                    else:
                        cells += [fmt_ms(t["ms"]), f"{ratio(t['ms'], r['ms']):.2f}x"]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


BASELINE = "cuda.gemm.cublaslt"


def tflops_of(row):
    """TFLOP/s of a row: its own, or 2*m*n*k(*batch) / ms for a gemm row without one."""
    if "tflops" in row:
        return row["tflops"]
    m, n, k, *batch = row["shape"]
    return 2 * m * n * k * (batch[0] if batch else 1) / row["ms"] / 1e9


def gemm_vs_baseline(ours, torch):
    """Lines of the gemm table: each of our gemm kernels but BASELINE against BASELINE (same
    run, same device) and torch.matmul (same shape, dtype and layout); empty when no such
    kernel was measured."""
    keys = [k for k in ours if k[0] == "gemm" and any(i != BASELINE for i in ours[k])]
    if not keys:
        return []
    head = ["shape", "dtype", "kernel", "ms", "TFLOP/s", "cuBLASLt ms", "cuBLASLt TFLOP/s",
            "speed vs cuBLASLt", "torch.matmul ms", "speed vs torch.matmul"]
    lines = [f"### gemm: ours vs {BASELINE} (same run) and torch.matmul", "",
             "speed = their ms / our ms: above 1 ours is faster", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for k in keys:
        base = ours[k].get(BASELINE)
        t = torch.get(k, {}).get("torch.matmul")
        for impl, r in ours[k].items():
            if impl == BASELINE:
                continue
            cells = [shape_label(k), k[2], impl, fmt_ms(r["ms"]), f"{tflops_of(r):.1f}"]
            if base is None:
                cells += ["(not measured)", "", ""]
            elif base["device"] != r["device"]:
                cells += [fmt_ms(base["ms"]), f"{tflops_of(base):.1f}",
                          f"(other device: {base['device']})"]
            else:
                cells += [fmt_ms(base["ms"]), f"{tflops_of(base):.1f}",
                          f"{ratio(base['ms'], r['ms']):.2f}x"]
            if t is None:
                cells += ["", ""]
            else:
                cells += [fmt_ms(t["ms"]), f"{ratio(t['ms'], r['ms']):.2f}x"]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def parse_target(spec):
    parts = spec.split(":")
    if len(parts) != 3:
        die(f"--target `{spec}` is not OP:IMPL:RATIO (e.g. rms_norm:torch.eager:1.3)")
    op, impl, r = parts
    try:
        r = float(r)
    except ValueError:
        die(f"--target `{spec}`: `{r}` is not a number")
    return op, impl, r


def check_targets(targets, ours, torch):
    """Lines describing each check, and whether all passed."""
    lines, ok = [], True
    for op, impl, want in targets:
        checked = 0
        for k, per in ours.items():
            if op not in ("*", k[0]) or k not in torch:
                continue
            best_ours = min(per.values(), key=lambda r: r["ms"])
            if impl == "best":
                t = min(torch[k].values(), key=lambda r: r["ms"])
            else:
                t = torch[k].get(impl)
            if t is None:
                continue
            checked += 1
            got = ratio(t["ms"], best_ours["ms"])
            passed = got >= want
            ok &= passed
            lines.append(
                f"- {'PASS' if passed else 'FAIL'} {k[0]} {shape_label(k)} {k[2]}: "
                f"{best_ours['impl']} {fmt_ms(best_ours['ms'])} ms vs {t['impl']} "
                f"{fmt_ms(t['ms'])} ms = {got:.2f}x (target {want:g}x)")
        if checked == 0:
            ok = False
            lines.append(f"- FAIL {op}:{impl}:{want:g}: nothing to compare (no shape has both "
                         f"a kernelyard row and a torch `{impl}` row)")
    return lines, ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", help="JSON-lines files ('-' for stdin)")
    ap.add_argument("--target", action="append", default=[], metavar="OP:IMPL:RATIO",
                    help="require torch IMPL ms / our ms >= RATIO on every shape of OP")
    ap.add_argument("--missing", action="store_true",
                    help="also list (op, shape, dtype) that only torch measured")
    args = ap.parse_args()
    targets = [parse_target(t) for t in args.target]
    rows, devices = read_rows(args.files)
    ours = fastest(r for r in rows if r["peer"] == "kernelyard")
    torch = fastest(r for r in rows if r["peer"] == "torch")
    if not ours and not args.missing:
        die("no kernelyard rows in the input (run `kernelyard bench ... --json`)")

    out = []
    for peer, seen in sorted(devices.items()):
        for device, label in sorted(seen, key=str):
            out.append(f"- {label}: {device}")
    our_devices = {r["device"] for r in rows if r["peer"] == "kernelyard"}
    torch_devices = {r["device"] for r in rows if r["peer"] == "torch"}
    if our_devices and torch_devices and our_devices != torch_devices:
        warning = (f"ratios compare different devices (kernelyard: {', '.join(map(str, sorted(our_devices, key=str)))}; "
                   f"torch: {', '.join(map(str, sorted(torch_devices, key=str)))}): "
                   "quote ratios only from one run on one GPU")
        out.append(f"- **warning**: {warning}")
        print(f"ratio_table: warning: {warning}", file=sys.stderr)
    out.append("- ratio = torch ms / kernelyard ms: above 1 kernelyard is faster")
    out.append("")
    out += tables(ours, torch, args.missing)
    out += gemm_vs_baseline(ours, torch)
    ok = True
    if targets:
        lines, ok = check_targets(targets, ours, torch)
        out += ["### targets", ""] + lines + [""]
    sys.stdout.write("\n".join(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
