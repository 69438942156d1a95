#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed; rerun after changing a
target's input format). The fuzzer starts from these and adds what it finds to a temporary
corpus (.ci/run), so the committed seeds stay few and readable.

args_validate_run's seeds follow the `arbitrary` crate's encoding of its `Input` (1.x: an enum
variant is a little-endian u32 scaled to the variant count, a Vec element is preceded by a byte
whose low bit says "one more"), so they reach every operator's valid baseline and a few of each
mutation at once."""

import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- parse_select: op \n --problem \n dtype \n policy ----------------------------------------
EXAMPLES = {
    "gemm": ("m=128,n=128,k=128", "bf16"),
    "rms_norm": ("rows=128,hidden=4096", "bf16"),
    "softmax": ("rows=128,cols=4096", "f32"),
    "log_softmax": ("rows=128,cols=4096", "f32"),
    "token_logprobs": ("tokens=128,vocab=32000", "bf16"),
    "rope": ("tokens=128,heads=32,head_dim=128", "bf16"),
    "attention": ("batch=1,seq_q=1024,heads_q=32,heads_kv=8,head_dim=128,causal=1", "bf16"),
    "selective_state_update": ("batch=8,heads=32,head_dim=64,state_dim=128", "bf16"),
    "silu_mul": ("rows=128,d=14336", "bf16"),
    "scaled_gemm": ("m=128,n=128,k=128", "f8e4m3"),
}
for op, (params, dtype) in EXAMPLES.items():
    write("parse_select", f"example_{op}", f"{op}\n{params}\n{dtype}\n")
for name, text in [
    ("gemm_bt_f16_det", "gemm\nbatch=3,m=683,n=1000,k=4096,trans_b=1,broadcast=b\nf16\nd"),
    ("gemm_ta_c_f32_bi", "gemm\nm=4096,n=1536,k=2048,trans_a=1,c_dtype=f32,accumulate=1\nbf16\nb"),
    ("gemm_c_i32", "gemm\nm=4,n=4,k=4,c_dtype=i32\nf32\n"),
    ("gemm_kernel_cublaslt", "gemm\nm=1,n=4096,k=4096,trans_b=1,align=2\nbf16\nkernel:cuda.gemm.cublaslt"),
    ("rope_issue_repro", "rope\ntokens=65535,heads=18446744073709551615,head_dim=256,align=4\nbf16\n"),
    ("rope_gptj_inplace", "rope\ntokens=7,heads=3,head_dim=64,rotary_dim=32,style=gptj,pos_dtype=i64,in_place=1\nf16\n"),
    ("rms_norm_residual_align", "rms_norm\nrows=1,hidden=8192,residual=1,align=2\nf16\nbackend:rocm"),
    ("softmax_huge", "softmax\nrows=18446744073709551615,cols=2\nf32\n"),
    ("token_logprobs_checked", "token_logprobs\ntokens=3,vocab=151936,target_dtype=i32,entropy=1,checked=1\nf32\nbackend:reference"),
    ("attention_gqa_lse", "attention\nbatch=2,seq_q=1,seq_kv=4097,heads_q=64,heads_kv=8,head_dim=64,lse=1\nf16\nd"),
    ("ssu_all", "selective_state_update\nbatch=1,heads=8,head_dim=64,state_dim=16,groups=2,state_dtype=f32,a_per_head=1,dt_bias=1,d=1,z=1,dt_softplus=1\nbf16\n"),
    ("silu_mul_split", "silu_mul\nrows=4294967296,d=4294967296,split=1,align=16\nbf16\n"),
    ("scaled_gemm_block_bias", "scaled_gemm\nm=3,n=130,k=200,scale_a=block,b_dtype=f8e5m2,out_dtype=f32,bias=1\nf8e4m3\n"),
    ("scaled_gemm_mixed_scales", "scaled_gemm\nm=4,n=8,k=16,scale_a=block,scale_b=tensor\nf8e5m2\n"),
    ("scaled_gemm_bf16_a", "scaled_gemm\nm=4,n=8,k=16\nbf16\n"),
    ("bad_key", "softmax\nrows=2,cols=8,bogus=1\nf32\n"),
    ("bad_dtype", "softmax\nrows=2,cols=8\nf8\n"),
]:
    write("parse_select", name, text)

# ---- pins_parse: KERNELYARD_KERNELS values ---------------------------------------------------
for name, text in [
    ("empty", ""),
    ("one_reference", "gemm=reference.gemm"),
    ("cuda_and_rocm", "softmax=cuda.softmax, softmax=rocm.softmax,rms_norm=reference.rms_norm"),
    ("cublaslt", "gemm=cuda.gemm.cublaslt,attention=reference.attention"),
    ("twice", "gemm=reference.gemm,gemm=reference.gemm"),
    ("other_op", "softmax=reference.gemm"),
    ("unknown", "gemm=nope,=,,,"),
    ("no_equals", "reference.gemm"),
    ("spaces", "  rope = rocm.rope ,, silu_mul=cuda.silu_mul  "),
]:
    write("pins_parse", name, text)

# ---- cache_entry: magic, version, key, payload length, payload SHA-256, payload --------------
KEY = bytes([0x5A]) * 32  # the key the target reads under


def entry(payload, key=KEY, version=1):
    return (b"KYKCACHE" + struct.pack("<I", version) + key + struct.pack("<Q", len(payload))
            + hashlib.sha256(payload).digest() + payload)


cubin = b"\x7fELF\x02\x01\x01" + bytes(57)
for name, data in [
    ("valid", entry(cubin)),
    ("valid_empty", entry(b"")),
    ("other_key", entry(cubin, key=bytes([0xA5]) * 32)),
    ("version_2", entry(cubin, version=2)),
    ("truncated", entry(cubin)[:-3]),
    ("extended", entry(cubin) + b"\0"),
    ("short_header", entry(cubin)[:50]),
    ("bare_cubin", cubin),
    # First byte odd: the target encodes the rest as an entry and flips the bit the next two
    # bytes name.
    ("flip_in_payload", b"\x01\x02\xc0" + cubin),
    ("flip_in_length", b"\x01\x01\x60" + b"code"),
]:
    write("cache_entry", name, data)

# ---- args_validate_run: `Input` in arbitrary's encoding --------------------------------------
CALLS = ["Gemm", "GemmBatched", "RmsNorm", "RmsNormResidual", "Softmax", "LogSoftmax",
         "TokenLogprobs", "Rope", "RopeInPlace", "Attention", "Ssu", "SiluMul", "SiluMulSplit",
         "ScaledGemm"]
DTS = ["F32", "F16", "BF16", "I32", "I64", "F8E4M3", "F8E5M2"]
MUTATIONS = ["Dim", "Shape", "Strides", "Stride", "Dtype", "Device", "Misalign", "PlaceIn",
             "Toggle"]


def variant(i, n):
    return struct.pack("<I", (i * (1 << 32) + n - 1) // n)


def size(n, huge=False):
    return variant(1 if huge else 0, 2) + bytes([n])


def stride(v, huge=False):
    return variant(1 if huge else 0, 2) + (bytes([v]) if huge else struct.pack("<b", v))


def mutation(kind, *fields):
    return b"\x01" + variant(MUTATIONS.index(kind), len(MUTATIONS)) + b"".join(fields)


def args_input(call, dims=(3, 4, 5, 2, 4), dtype="F32", second="I64", flags=0, scalars=(None, None),
               mutations=(), tame=True, seed=12345):
    out = variant(CALLS.index(call), len(CALLS)) + bytes(dims)
    out += variant(DTS.index(dtype), len(DTS)) + variant(DTS.index(second), len(DTS))
    out += bytes([flags])
    for s in scalars:
        out += variant(0, 2) if s is None else variant(1, 2) + struct.pack("<f", s)
    out += struct.pack("<q", -100)
    out += b"".join(mutations) + b"\x00"
    out += variant(0 if tame else 1, 2) + struct.pack("<Q", seed)
    return out


for call in CALLS:
    write("args_validate_run", f"{call}_f32", args_input(call))
    write("args_validate_run", f"{call}_bf16_flags", args_input(call, dtype="BF16", flags=0x27))
for name, data in [
    ("gemm_trans_beta_f16", args_input("Gemm", dtype="F16", flags=0x23, scalars=(2.0, 0.5))),
    ("gemm_alias_c_onto_a", args_input("Gemm", mutations=[mutation("PlaceIn", b"\x02", b"\x00", struct.pack("<h", 8))])),
    ("softmax_misaligned", args_input("Softmax", mutations=[mutation("Misalign", b"\x00", b"\x02")])),
    ("softmax_negative_stride", args_input("Softmax", mutations=[mutation("Stride", b"\x00", b"\x00", stride(-5))])),
    ("softmax_huge_rows", args_input("Softmax", mutations=[mutation("Dim", b"\x00", b"\x00", size(8, huge=True))])),
    ("rms_norm_rank_5", args_input("RmsNorm", mutations=[mutation("Shape", b"\x00", *[b"\x01" + size(2)] * 5, b"\x00")])),
    ("rms_norm_toggle_residual", args_input("RmsNorm", mutations=[mutation("Toggle", b"\x00")])),
    ("rope_cuda_device", args_input("Rope", mutations=[mutation("Device", b"\x00", variant(1, 4))])),
    ("rope_out_onto_x", args_input("Rope", mutations=[mutation("PlaceIn", b"\x02", b"\x00", struct.pack("<h", 0))])),
    ("token_logprobs_raw_targets", args_input("TokenLogprobs", flags=0x05, tame=False)),
    ("ssu_state_i32", args_input("Ssu", mutations=[mutation("Dtype", b"\x00", variant(3, len(DTS)))])),
    ("scaled_gemm_e4m3_e5m2_block_bias", args_input("ScaledGemm", dtype="F8E4M3", second="F8E5M2", flags=0x21)),
    ("scaled_gemm_row", args_input("ScaledGemm", dtype="F8E5M2", second="F8E4M3", flags=0x10)),
    ("scaled_gemm_mixed_modes", args_input("ScaledGemm", dtype="F8E4M3", flags=0xA0, dims=(3, 4, 5, 2, 4))),
    # Scale-mode bits 3: FP4 operands, NVFP4 (dims[4] even) or MXFP4 (odd) with a bias.
    ("scaled_gemm_nvfp4", args_input("ScaledGemm", flags=0x30, dims=(3, 4, 5, 2, 4))),
    ("scaled_gemm_mxfp4_bias", args_input("ScaledGemm", flags=0x31, dims=(3, 4, 1, 6, 5))),
    ("softmax_fp8_x", args_input("Softmax", mutations=[mutation("Dtype", b"\x00", variant(5, len(DTS)))])),
    ("attention_zero_seq", args_input("Attention", dims=(1, 0, 3, 2, 8))),
    ("silu_mul_strides", args_input("SiluMul", mutations=[mutation("Strides", b"\x00", b"\x01" + stride(0), b"\x01" + stride(1), b"\x00")])),
]:
    write("args_validate_run", name, data)
