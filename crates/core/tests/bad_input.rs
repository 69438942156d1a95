//! Bad input gives a typed error that names the argument, never a panic.
//!
//! Every case starts from a valid call (checked by `baselines_validate`) and changes one thing;
//! the calls are described in `bad_input/specs.rs`, over fake device addresses that validation
//! never dereferences. The fuzz loop in `bad_input/fuzz.rs` mutates the same baselines at
//! random and checks that validation (and every view accessor) always returns.

#[path = "bad_input/fuzz.rs"]
mod fuzz;
#[path = "bad_input/specs.rs"]
mod specs;

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use kernelyard_core::ops::gemm::{Gemm, GemmArgs, GemmProblem};
use kernelyard_core::ops::rope::{RopeArgs, RopeInput};
use kernelyard_core::ops::scaled_gemm::ScaleMode;
use kernelyard_core::{
    Arch, ArchReq, Args, Capabilities, DType, DeviceId, DeviceKind, Error, Kernel, KernelDef,
    KernelMeta, LaunchCtx, OpKind, Params, Policy, Problem, Registry, Runtime, SelectError, Sm,
    TensorView, ValidationError, Version,
};

use specs::{
    attention, gemm, rms_norm, rms_norm_residual, rope, rope_in_place, scaled_gemm,
    scaled_gemm_nvfp4, silu_mul, silu_mul_split, softmax, ssu, ssu_indexed, token_logprobs, with,
    Built, Rows, Spec, GPU, OTHER_GPU, REGION,
};

// ---------------------------------------------------------------------------------------------
// The table.

struct Case {
    name: &'static str,
    /// The operator the case is for (checked against the built arguments).
    op: OpKind,
    build: fn() -> Built,
    expect: fn(&ValidationError) -> bool,
    pattern: &'static str,
    /// The argument (or parameter) the error and its message must name.
    arg: &'static str,
}

macro_rules! case {
    ($op:ident, $name:literal, $arg:literal, $build:expr, $pat:pat $(if $guard:expr)?) => {
        Case {
            name: $name,
            op: OpKind::$op,
            build: $build,
            expect: |e| matches!(e, $pat $(if $guard)?),
            pattern: stringify!($pat $(if $guard)?),
            arg: $arg,
        }
    };
}

// One line per field keeps the table readable; rustfmt would spread each case over ten lines.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use ValidationError as V;
    vec![
        // gemm
        case!(Gemm, "gemm k mismatch", "b",
            || with(gemm(), |g| g.b.shape = vec![15, 32]),
            V::Dim { arg: "b", dim: "k", expected: 16, got: 15, .. }),
        case!(Gemm, "gemm c rows mismatch", "c",
            || with(gemm(), |g| g.c.shape = vec![9, 32]),
            V::Dim { arg: "c", dim: "m", expected: 8, got: 9, .. }),
        case!(Gemm, "gemm transposed a changes k", "b",
            || with(gemm(), |g| g.trans_a = true),
            V::Dim { arg: "b", dim: "k", expected: 8, got: 16, .. }),
        case!(Gemm, "gemm batch mismatch", "a",
            || with(gemm(), |g| { g.a.shape = vec![2, 8, 16]; g.c.shape = vec![3, 8, 32]; }),
            V::Dim { arg: "a", dim: "batch", expected: 3, got: 2, .. }),
        case!(Gemm, "gemm b dtype differs from a", "b",
            || with(gemm(), |g| g.b.dtype = DType::F16),
            V::DtypeMismatch { arg: "b", expected: DType::F32, got: DType::F16 }),
        case!(Gemm, "gemm integer a", "a",
            || with(gemm(), |g| g.a.dtype = DType::I32),
            V::DtypeNotAllowed { arg: "a", got: DType::I32, .. }),
        case!(Gemm, "gemm f32 inputs with bf16 c", "c",
            || with(gemm(), |g| g.c.dtype = DType::BF16),
            V::DtypeNotAllowed { arg: "c", got: DType::BF16, .. }),
        case!(Gemm, "gemm b on another gpu", "b",
            || with(gemm(), |g| g.b.device = OTHER_GPU),
            V::DeviceMismatch { arg: "b", first: "a", expected: GPU, got: OTHER_GPU }),
        case!(Gemm, "gemm c on the host", "c",
            || with(gemm(), |g| g.c.device = DeviceId::CPU),
            V::DeviceMismatch { arg: "c", first: "a", got: DeviceId::CPU, .. }),
        case!(Gemm, "gemm odd address for f32", "a",
            || with(gemm(), |g| g.a.addr += 1),
            V::Misaligned { arg: "a", align: 4, .. }),
        case!(Gemm, "gemm 2-byte aligned f32", "b",
            || with(gemm(), |g| g.b.addr += 2),
            V::Misaligned { arg: "b", align: 4, .. }),
        case!(Gemm, "gemm zero-sized m", "a",
            || with(gemm(), |g| g.a.shape = vec![0, 16]),
            V::ZeroSized { arg: "a", .. }),
        case!(Gemm, "gemm element count overflows", "a",
            || with(gemm(), |g| g.a.shape = vec![usize::MAX / 2, 16]),
            V::Overflow { arg: "a", .. }),
        case!(Gemm, "gemm row stride overflows the byte span", "a",
            || with(gemm(), |g| g.a.strides = Some(vec![isize::MAX / 2, 1])),
            V::Overflow { arg: "a", .. }),
        case!(Gemm, "gemm dimension above isize::MAX", "b",
            || with(gemm(), |g| g.b.shape = vec![isize::MAX as usize + 1, 32]),
            V::Overflow { arg: "b", .. }),
        case!(Gemm, "gemm inner stride not 1", "a",
            || with(gemm(), |g| g.a.strides = Some(vec![32, 2])),
            V::Strides { arg: "a", .. }),
        case!(Gemm, "gemm row stride below column count", "b",
            || with(gemm(), |g| g.b.strides = Some(vec![16, 1])),
            V::Strides { arg: "b", .. }),
        case!(Gemm, "gemm negative stride", "a",
            || with(gemm(), |g| g.a.strides = Some(vec![-16, 1])),
            V::Strides { arg: "a", .. }),
        case!(Gemm, "gemm overlapping c batches", "c",
            || with(gemm(), |g| { g.c.shape = vec![2, 8, 32]; g.c.strides = Some(vec![16, 32, 1]); }),
            V::Strides { arg: "c", .. }),
        case!(Gemm, "gemm c aliases a", "c",
            || with(gemm(), |g| g.c.addr = g.a.addr),
            V::Aliasing { output: "c", input: "a", .. }),
        case!(Gemm, "gemm c overlaps the end of b", "c",
            || with(gemm(), |g| g.c.addr = g.b.addr + 16 * 32 * 4 - 4),
            V::Aliasing { output: "c", input: "b", .. }),
        case!(Gemm, "gemm rank 4 a", "a",
            || with(gemm(), |g| g.a.shape = vec![1, 1, 8, 16]),
            V::Rank { arg: "a", expected: 2, .. }),
        case!(Gemm, "gemm rank 1 c", "c",
            || with(gemm(), |g| g.c.shape = vec![256]),
            V::Rank { arg: "c", .. }),
        case!(Gemm, "gemm NaN alpha", "alpha",
            || with(gemm(), |g| g.alpha = f32::NAN),
            V::Param { param: "alpha", why: "must be finite", .. }),
        case!(Gemm, "gemm infinite beta", "beta",
            || with(gemm(), |g| g.beta = f32::INFINITY),
            V::Param { param: "beta", why: "must be finite", .. }),
        case!(Gemm, "gemm null a", "a",
            || with(gemm(), |g| g.a.addr = 0),
            V::NullPointer { arg: "a" }),
        // rms_norm
        case!(RmsNorm, "rms_norm weight length", "weight",
            || with(rms_norm(), |r| r.weight.shape = vec![63]),
            V::Dim { arg: "weight", dim: "hidden", expected: 64, got: 63, .. }),
        case!(RmsNorm, "rms_norm out shape", "out",
            || with(rms_norm(), |r| r.out.shape = vec![4, 32]),
            V::Dim { arg: "out", dim: "hidden", .. }),
        case!(RmsNorm, "rms_norm f32 weight with bf16 x", "weight",
            || with(rms_norm(), |r| r.weight.dtype = DType::F32),
            V::DtypeMismatch { arg: "weight", expected: DType::BF16, got: DType::F32 }),
        case!(RmsNorm, "rms_norm integer x", "x",
            || with(rms_norm(), |r| r.x.dtype = DType::I64),
            V::DtypeNotAllowed { arg: "x", got: DType::I64, .. }),
        case!(RmsNorm, "rms_norm out on another gpu", "out",
            || with(rms_norm(), |r| r.out.device = OTHER_GPU),
            V::DeviceMismatch { arg: "out", first: "x", .. }),
        case!(RmsNorm, "rms_norm odd address for bf16", "x",
            || with(rms_norm(), |r| r.x.addr += 1),
            V::Misaligned { arg: "x", align: 2, .. }),
        case!(RmsNorm, "rms_norm zero hidden", "x",
            || with(rms_norm(), |r| r.x.shape = vec![4, 0]),
            V::ZeroSized { arg: "x", .. }),
        case!(RmsNorm, "rms_norm transposed x", "x",
            || with(rms_norm(), |r| r.x.strides = Some(vec![1, 4])),
            V::Strides { arg: "x", .. }),
        case!(RmsNorm, "rms_norm out is x", "out",
            || with(rms_norm(), |r| r.out.addr = r.x.addr),
            V::Aliasing { output: "out", input: "x", .. }),
        case!(RmsNorm, "rms_norm out overlaps half of x", "out",
            || with(rms_norm(), |r| r.out.addr = r.x.addr + 2 * 64 * 2),
            V::Aliasing { output: "out", input: "x", .. }),
        case!(RmsNorm, "rms_norm negative eps", "eps",
            || with(rms_norm(), |r| r.eps = -1e-6),
            V::Param { param: "eps", why: "must be non-negative", .. }),
        case!(RmsNorm, "rms_norm NaN eps", "eps",
            || with(rms_norm(), |r| r.eps = f32::NAN),
            V::Param { param: "eps", why: "must be finite", .. }),
        case!(RmsNorm, "rms_norm residual without residual_out", "residual",
            || with(rms_norm_residual(), |r| r.residual_out = None),
            V::Param { param: "residual", .. }),
        case!(RmsNorm, "rms_norm residual_out without residual", "residual_out",
            || with(rms_norm_residual(), |r| r.residual = None),
            V::Param { param: "residual", .. }),
        case!(RmsNorm, "rms_norm residual shape", "residual",
            || with(rms_norm_residual(), |r| r.residual.as_mut().unwrap().shape = vec![4, 32]),
            V::Dim { arg: "residual", dim: "hidden", .. }),
        case!(RmsNorm, "rms_norm residual_out is x", "residual_out",
            || with(rms_norm_residual(), |r| r.residual_out.as_mut().unwrap().addr = r.x.addr),
            V::Aliasing { output: "residual_out", input: "x", .. }),
        case!(RmsNorm, "rms_norm residual_out is out", "residual_out",
            || with(rms_norm_residual(), |r| r.residual_out.as_mut().unwrap().addr = r.out.addr),
            V::Aliasing { output: "residual_out", input: "out", .. }),
        case!(RmsNorm, "rms_norm rank 1 x", "x",
            || with(rms_norm(), |r| r.x.shape = vec![256]),
            V::Rank { arg: "x", expected: 2, .. }),
        case!(RmsNorm, "rms_norm null weight", "weight",
            || with(rms_norm(), |r| r.weight.addr = 0),
            V::NullPointer { arg: "weight" }),
        // softmax / log_softmax
        case!(Softmax, "softmax transposed x", "x",
            || with(softmax(), |s| {
                s.x.shape = vec![128, 8];
                s.x.strides = Some(vec![1, 128]);
                s.out.shape = vec![128, 8];
            }),
            V::Strides { arg: "x", .. }),
        case!(Softmax, "softmax padded rows", "out",
            || with(softmax(), |s| s.out.strides = Some(vec![256, 1])),
            V::Strides { arg: "out", .. }),
        case!(Softmax, "softmax out columns", "out",
            || with(softmax(), |s| s.out.shape = vec![8, 127]),
            V::Dim { arg: "out", dim: "cols", expected: 128, got: 127, .. }),
        case!(Softmax, "softmax f16 out for f32 x", "out",
            || with(softmax(), |s| s.out.dtype = DType::F16),
            V::DtypeMismatch { arg: "out", expected: DType::F32, got: DType::F16 }),
        case!(Softmax, "softmax out on the host", "out",
            || with(softmax(), |s| s.out.device = DeviceId::CPU),
            V::DeviceMismatch { arg: "out", first: "x", .. }),
        case!(Softmax, "softmax odd address", "out",
            || with(softmax(), |s| s.out.addr += 1),
            V::Misaligned { arg: "out", align: 4, .. }),
        case!(Softmax, "softmax zero rows", "x",
            || with(softmax(), |s| s.x.shape = vec![0, 128]),
            V::ZeroSized { arg: "x", .. }),
        case!(Softmax, "softmax huge shape", "x",
            || with(softmax(), |s| s.x.shape = vec![1 << 40, 1 << 30]),
            V::Overflow { arg: "x", .. }),
        case!(Softmax, "softmax in place", "out",
            || with(softmax(), |s| s.out.addr = s.x.addr),
            V::Aliasing { output: "out", input: "x", .. }),
        case!(Softmax, "softmax rank 3", "x",
            || with(softmax(), |s| s.x.shape = vec![8, 128, 1]),
            V::Rank { arg: "x", expected: 2, .. }),
        case!(Softmax, "softmax null out", "out",
            || with(softmax(), |s| s.out.addr = 0),
            V::NullPointer { arg: "out" }),
        case!(LogSoftmax, "log_softmax transposed x", "x",
            || with(Rows { log: true, ..softmax() }, |s| s.x.strides = Some(vec![1, 8])),
            V::Strides { arg: "x", .. }),
        // token_logprobs
        case!(TokenLogprobs, "token_logprobs zero temperature", "temperature",
            || with(token_logprobs(), |t| t.temperature = 0.0),
            V::Param { param: "temperature", why: "must be greater than zero", .. }),
        case!(TokenLogprobs, "token_logprobs negative temperature", "temperature",
            || with(token_logprobs(), |t| t.temperature = -0.5),
            V::Param { param: "temperature", why: "must be greater than zero", .. }),
        case!(TokenLogprobs, "token_logprobs NaN temperature", "temperature",
            || with(token_logprobs(), |t| t.temperature = f32::NAN),
            V::Param { param: "temperature", why: "must be finite", .. }),
        case!(TokenLogprobs, "token_logprobs targets length", "targets",
            || with(token_logprobs(), |t| t.targets.shape = vec![15]),
            V::Dim { arg: "targets", dim: "tokens", expected: 16, got: 15, .. }),
        case!(TokenLogprobs, "token_logprobs float targets", "targets",
            || with(token_logprobs(), |t| t.targets.dtype = DType::F32),
            V::DtypeNotAllowed { arg: "targets", got: DType::F32, .. }),
        case!(TokenLogprobs, "token_logprobs bf16 out", "out",
            || with(token_logprobs(), |t| t.out.dtype = DType::BF16),
            V::DtypeNotAllowed { arg: "out", got: DType::BF16, .. }),
        case!(TokenLogprobs, "token_logprobs entropy length", "entropy",
            || with(token_logprobs(), |t| t.entropy.as_mut().unwrap().shape = vec![17]),
            V::Dim { arg: "entropy", dim: "tokens", .. }),
        case!(TokenLogprobs, "token_logprobs entropy is out", "entropy",
            || with(token_logprobs(), |t| t.entropy.as_mut().unwrap().addr = t.out.addr),
            V::Aliasing { output: "entropy", input: "out", .. }),
        case!(TokenLogprobs, "token_logprobs out inside targets", "out",
            || with(token_logprobs(), |t| t.out.addr = t.targets.addr + 8),
            V::Aliasing { output: "out", input: "targets", .. }),
        case!(TokenLogprobs, "token_logprobs targets on the host", "targets",
            || with(token_logprobs(), |t| t.targets.device = DeviceId::CPU),
            V::DeviceMismatch { arg: "targets", first: "logits", .. }),
        case!(TokenLogprobs, "token_logprobs i64 targets at 4 bytes", "targets",
            || with(token_logprobs(), |t| t.targets.addr += 4),
            V::Misaligned { arg: "targets", align: 8, .. }),
        case!(TokenLogprobs, "token_logprobs rank 3 logits", "logits",
            || with(token_logprobs(), |t| t.logits.shape = vec![2, 8, 1000]),
            V::Rank { arg: "logits", expected: 2, .. }),
        case!(TokenLogprobs, "token_logprobs null logits", "logits",
            || with(token_logprobs(), |t| t.logits.addr = 0),
            V::NullPointer { arg: "logits" }),
        // rope
        case!(Rope, "rope odd rotary_dim", "rotary_dim",
            || with(rope(), |r| r.rotary_dim = 63),
            V::Relation { rule, .. } if rule.contains("rotary_dim even")),
        case!(Rope, "rope rotary_dim above head_dim", "rotary_dim",
            || with(rope(), |r| r.rotary_dim = 128),
            V::Relation { rule, .. } if rule.contains("rotary_dim <= head_dim")),
        case!(Rope, "rope zero rotary_dim", "rotary_dim",
            || with(rope(), |r| r.rotary_dim = 0),
            V::Relation { .. }),
        case!(Rope, "rope zero theta", "theta",
            || with(rope(), |r| r.theta = 0.0),
            V::Param { param: "theta", .. }),
        case!(Rope, "rope positions length", "positions",
            || with(rope(), |r| r.positions.shape = vec![5]),
            V::Dim { arg: "positions", dim: "tokens", .. }),
        case!(Rope, "rope float positions", "positions",
            || with(rope(), |r| r.positions.dtype = DType::F16),
            V::DtypeNotAllowed { arg: "positions", .. }),
        case!(Rope, "rope out overlaps x partially", "out",
            || with(rope(), |r| r.out.addr = r.x.addr + 64 * 2),
            V::Aliasing { output: "out", input: "x", allowed } if allowed.contains("RopeInput::InPlace")),
        case!(Rope, "rope out of place with out exactly x", "out",
            || with(rope(), |r| r.out.addr = r.x.addr),
            V::Aliasing { output: "out", input: "x", allowed } if allowed.contains("RopeInput::InPlace")),
        case!(Rope, "rope in place over the positions", "x",
            || with(rope_in_place(), |r| r.positions.addr = r.x.addr),
            V::Aliasing { output: "x", input: "positions", .. }),
        case!(Rope, "rope in place rank 2 x", "x",
            || with(rope_in_place(), |r| r.x.shape = vec![4, 512]),
            V::Rank { arg: "x", expected: 3, .. }),
        case!(Rope, "rope out one element after x", "out",
            || with(rope(), |r| r.out.addr = r.x.addr + 2),
            V::Aliasing { output: "out", input: "x", .. }),
        case!(Rope, "rope f32 out for f16 x", "out",
            || with(rope(), |r| r.out.dtype = DType::F32),
            V::DtypeMismatch { arg: "out", expected: DType::F16, got: DType::F32 }),
        case!(Rope, "rope out heads", "out",
            || with(rope(), |r| r.out.shape = vec![4, 4, 64]),
            V::Dim { arg: "out", dim: "heads", .. }),
        case!(Rope, "rope rank 2 x", "x",
            || with(rope(), |r| r.x.shape = vec![4, 512]),
            V::Rank { arg: "x", expected: 3, .. }),
        case!(Rope, "rope positions on another gpu", "positions",
            || with(rope(), |r| r.positions.device = OTHER_GPU),
            V::DeviceMismatch { arg: "positions", first: "x", .. }),
        // attention
        case!(Attention, "attention heads not divisible (GQA)", "heads_kv",
            || with(attention(), |a| { a.k.shape = vec![2, 32, 3, 64]; a.v.shape = vec![2, 32, 3, 64]; }),
            V::Relation { rule: "heads_q % heads_kv == 0", .. }),
        case!(Attention, "attention v length", "v",
            || with(attention(), |a| a.v.shape = vec![2, 31, 2, 64]),
            V::Dim { arg: "v", dim: "seq_kv", expected: 32, got: 31, .. }),
        case!(Attention, "attention k head_dim", "k",
            || with(attention(), |a| a.k.shape = vec![2, 32, 2, 32]),
            V::Dim { arg: "k", dim: "head_dim", .. }),
        case!(Attention, "attention k batch", "k",
            || with(attention(), |a| a.k.shape = vec![1, 32, 2, 64]),
            V::Dim { arg: "k", dim: "batch", .. }),
        case!(Attention, "attention f16 v", "v",
            || with(attention(), |a| a.v.dtype = DType::F16),
            V::DtypeMismatch { arg: "v", expected: DType::BF16, got: DType::F16 }),
        case!(Attention, "attention v on another gpu", "v",
            || with(attention(), |a| a.v.device = OTHER_GPU),
            V::DeviceMismatch { arg: "v", first: "q", .. }),
        case!(Attention, "attention out aliases k", "out",
            || with(attention(), |a| a.out.addr = a.k.addr),
            V::Aliasing { output: "out", input: "k", .. }),
        case!(Attention, "attention lse is out", "lse",
            || with(attention(), |a| a.lse.as_mut().unwrap().addr = a.out.addr),
            V::Aliasing { output: "lse", input: "out", .. }),
        case!(Attention, "attention lse layout", "lse",
            || with(attention(), |a| a.lse.as_mut().unwrap().shape = vec![2, 16, 8]),
            V::Dim { arg: "lse", dim: "heads_q", .. }),
        case!(Attention, "attention bf16 lse", "lse",
            || with(attention(), |a| a.lse.as_mut().unwrap().dtype = DType::BF16),
            V::DtypeNotAllowed { arg: "lse", .. }),
        case!(Attention, "attention NaN scale", "scale",
            || with(attention(), |a| a.scale = f32::NAN),
            V::Param { param: "scale", .. }),
        case!(Attention, "attention rank 3 q", "q",
            || with(attention(), |a| a.q.shape = vec![32, 8, 64]),
            V::Rank { arg: "q", expected: 4, .. }),
        case!(Attention, "attention heads-major q", "q",
            || with(attention(), |a| a.q.strides = Some(vec![8192, 64, 1024, 1])),
            V::Strides { arg: "q", .. }),
        case!(Attention, "attention zero seq_kv", "k",
            || with(attention(), |a| a.k.shape = vec![2, 0, 2, 64]),
            V::ZeroSized { arg: "k", .. }),
        case!(Attention, "attention huge q", "q",
            || with(attention(), |a| a.q.shape = vec![1 << 20, 1 << 20, 1 << 20, 64]),
            V::Overflow { arg: "q", .. }),
        case!(Attention, "attention odd address for bf16", "k",
            || with(attention(), |a| a.k.addr += 1),
            V::Misaligned { arg: "k", align: 2, .. }),
        case!(Attention, "attention null v", "v",
            || with(attention(), |a| a.v.addr = 0),
            V::NullPointer { arg: "v" }),
        // selective_state_update
        case!(SelectiveStateUpdate, "ssu heads not divisible by groups", "groups",
            || with(ssu(), |s| { s.bm.shape = vec![2, 3, 8]; s.cm.shape = vec![2, 3, 8]; }),
            V::Relation { rule: "heads % groups == 0", .. }),
        case!(SelectiveStateUpdate, "ssu per-head A of wrong length", "a",
            || with(ssu(), |s| s.a.shape = vec![5]),
            V::Dim { arg: "a", dim: "heads", expected: 4, got: 5, .. }),
        case!(SelectiveStateUpdate, "ssu bf16 A", "a",
            || with(ssu(), |s| s.a.dtype = DType::BF16),
            V::DtypeNotAllowed { arg: "a", .. }),
        case!(SelectiveStateUpdate, "ssu dt_bias shape", "dt_bias",
            || with(ssu(), |s| s.dt_bias.as_mut().unwrap().shape = vec![4, 15]),
            V::Dim { arg: "dt_bias", dim: "head_dim", .. }),
        case!(SelectiveStateUpdate, "ssu cm differs from bm", "cm",
            || with(ssu(), |s| s.cm.shape = vec![2, 1, 4]),
            V::Dim { arg: "cm", dim: "state_dim", .. }),
        case!(SelectiveStateUpdate, "ssu f16 z with bf16 x", "z",
            || with(ssu(), |s| s.z.as_mut().unwrap().dtype = DType::F16),
            V::DtypeMismatch { arg: "z", .. }),
        case!(SelectiveStateUpdate, "ssu out is the state", "out",
            || with(ssu(), |s| s.out.addr = s.state.addr),
            V::Aliasing { output: "out", input: "state", .. }),
        case!(SelectiveStateUpdate, "ssu state overlaps x", "state",
            || with(ssu(), |s| s.state.addr = s.x.addr - 64),
            V::Aliasing { output: "state", input: "x", .. }),
        case!(SelectiveStateUpdate, "ssu x on another gpu", "x",
            || with(ssu(), |s| s.x.device = OTHER_GPU),
            V::DeviceMismatch { arg: "x", first: "state", .. }),
        case!(SelectiveStateUpdate, "ssu x head_dim", "x",
            || with(ssu(), |s| s.x.shape = vec![2, 4, 15]),
            V::Dim { arg: "x", dim: "head_dim", .. }),
        case!(SelectiveStateUpdate, "ssu rank 3 state", "state",
            || with(ssu(), |s| s.state.shape = vec![2, 4, 16]),
            V::Rank { arg: "state", expected: 4, .. }),
        case!(SelectiveStateUpdate, "ssu integer state", "state",
            || with(ssu(), |s| s.state.dtype = DType::I32),
            V::DtypeNotAllowed { arg: "state", .. }),
        case!(SelectiveStateUpdate, "ssu zero state_dim", "state",
            || with(ssu(), |s| s.state.shape = vec![2, 4, 16, 0]),
            V::ZeroSized { arg: "state", .. }),
        case!(SelectiveStateUpdate, "ssu null out", "out",
            || with(ssu(), |s| s.out.addr = 0),
            V::NullPointer { arg: "out" }),
        case!(SelectiveStateUpdate, "ssu state rows differ from the batch without indices", "state",
            || with(ssu(), |s| s.state.shape = vec![3, 4, 16, 8]),
            V::Dim { arg: "state", dim: "batch", expected: 2, got: 3, .. }),
        case!(SelectiveStateUpdate, "ssu state_indices of the wrong length", "state_indices",
            || with(ssu_indexed(), |s| s.state_indices.as_mut().unwrap().shape = vec![3]),
            V::Dim { arg: "state_indices", dim: "batch", expected: 2, got: 3, .. }),
        case!(SelectiveStateUpdate, "ssu f32 state_indices", "state_indices",
            || with(ssu_indexed(), |s| s.state_indices.as_mut().unwrap().dtype = DType::F32),
            V::DtypeNotAllowed { arg: "state_indices", .. }),
        case!(SelectiveStateUpdate, "ssu state_indices on another gpu", "state_indices",
            || with(ssu_indexed(), |s| s.state_indices.as_mut().unwrap().device = OTHER_GPU),
            V::DeviceMismatch { arg: "state_indices", first: "state", .. }),
        case!(SelectiveStateUpdate, "ssu out overlaps state_indices", "out",
            || with(ssu_indexed(), |s| s.out.addr = s.state_indices.as_ref().unwrap().addr),
            V::Aliasing { output: "out", input: "state_indices", .. }),
        // silu_mul, fused
        case!(SiluMul, "silu_mul odd fused width", "x",
            || with(silu_mul(), |s| s.x.shape = vec![4, 255]),
            V::Param { param: "x", why, .. } if why.contains("even")),
        case!(SiluMul, "silu_mul out rows", "out",
            || with(silu_mul(), |s| s.out.shape = vec![5, 128]),
            V::Dim { arg: "out", dim: "rows", expected: 4, got: 5, .. }),
        case!(SiluMul, "silu_mul out as wide as the fused x", "out",
            || with(silu_mul(), |s| s.out.shape = vec![4, 256]),
            V::Dim { arg: "out", dim: "d", expected: 128, got: 256, .. }),
        case!(SiluMul, "silu_mul out aliases x", "out",
            || with(silu_mul(), |s| s.out.addr = s.x.addr),
            V::Aliasing { output: "out", input: "x", .. }),
        case!(SiluMul, "silu_mul out overlaps the up half of x", "out",
            || with(silu_mul(), |s| s.out.addr = s.x.addr + 128 * 2),
            V::Aliasing { output: "out", input: "x", .. }),
        case!(SiluMul, "silu_mul f16 out for bf16 x", "out",
            || with(silu_mul(), |s| s.out.dtype = DType::F16),
            V::DtypeMismatch { arg: "out", expected: DType::BF16, got: DType::F16 }),
        case!(SiluMul, "silu_mul integer x", "x",
            || with(silu_mul(), |s| s.x.dtype = DType::I32),
            V::DtypeNotAllowed { arg: "x", got: DType::I32, .. }),
        case!(SiluMul, "silu_mul zero rows", "x",
            || with(silu_mul(), |s| s.x.shape = vec![0, 256]),
            V::ZeroSized { arg: "x", .. }),
        case!(SiluMul, "silu_mul zero width", "x",
            || with(silu_mul(), |s| s.x.shape = vec![4, 0]),
            V::ZeroSized { arg: "x", .. }),
        case!(SiluMul, "silu_mul zero-sized out", "out",
            || with(silu_mul(), |s| s.out.shape = vec![0, 128]),
            V::ZeroSized { arg: "out", .. }),
        case!(SiluMul, "silu_mul padded x rows", "x",
            || with(silu_mul(), |s| s.x.strides = Some(vec![512, 1])),
            V::Strides { arg: "x", .. }),
        case!(SiluMul, "silu_mul out on another gpu", "out",
            || with(silu_mul(), |s| s.out.device = OTHER_GPU),
            V::DeviceMismatch { arg: "out", first: "x", .. }),
        case!(SiluMul, "silu_mul rank 3 x", "x",
            || with(silu_mul(), |s| s.x.shape = vec![4, 2, 128]),
            V::Rank { arg: "x", expected: 2, .. }),
        case!(SiluMul, "silu_mul odd address for bf16", "x",
            || with(silu_mul(), |s| s.x.addr += 1),
            V::Misaligned { arg: "x", align: 2, .. }),
        case!(SiluMul, "silu_mul null out", "out",
            || with(silu_mul(), |s| s.out.addr = 0),
            V::NullPointer { arg: "out" }),
        // silu_mul, split (`x` is the gate)
        case!(SiluMul, "silu_mul up columns", "up",
            || with(silu_mul_split(), |s| s.up.as_mut().unwrap().shape = vec![4, 127]),
            V::Dim { arg: "up", dim: "d", expected: 128, got: 127, .. }),
        case!(SiluMul, "silu_mul up rows", "up",
            || with(silu_mul_split(), |s| s.up.as_mut().unwrap().shape = vec![3, 128]),
            V::Dim { arg: "up", dim: "rows", expected: 4, got: 3, .. }),
        case!(SiluMul, "silu_mul f16 up with bf16 gate", "up",
            || with(silu_mul_split(), |s| s.up.as_mut().unwrap().dtype = DType::F16),
            V::DtypeMismatch { arg: "up", expected: DType::BF16, got: DType::F16 }),
        case!(SiluMul, "silu_mul f32 out with bf16 gate", "out",
            || with(silu_mul_split(), |s| s.out.dtype = DType::F32),
            V::DtypeMismatch { arg: "out", expected: DType::BF16, got: DType::F32 }),
        case!(SiluMul, "silu_mul out aliases gate", "out",
            || with(silu_mul_split(), |s| s.out.addr = s.x.addr),
            V::Aliasing { output: "out", input: "gate", .. }),
        case!(SiluMul, "silu_mul out aliases up", "out",
            || with(silu_mul_split(), |s| s.out.addr = s.up.as_ref().unwrap().addr + 64),
            V::Aliasing { output: "out", input: "up", .. }),
        case!(SiluMul, "silu_mul zero-sized gate", "gate",
            || with(silu_mul_split(), |s| s.x.shape = vec![4, 0]),
            V::ZeroSized { arg: "gate", .. }),
        case!(SiluMul, "silu_mul up on another gpu", "up",
            || with(silu_mul_split(), |s| s.up.as_mut().unwrap().device = OTHER_GPU),
            V::DeviceMismatch { arg: "up", first: "gate", .. }),
        // scaled_gemm (block scales, bf16 bias and out)
        case!(ScaledGemm, "scaled_gemm block scales for A, per-tensor for B", "scale_a",
            || with(scaled_gemm(), |s| s.modes.1 = ScaleMode::Tensor),
            V::UnsupportedScales { a: ScaleMode::Block, b: ScaleMode::Tensor, .. }),
        case!(ScaledGemm, "scaled_gemm fp4 a with fp8 b", "b",
            || with(scaled_gemm_nvfp4(), |s| {
                s.b.dtype = DType::F8E4M3;
                s.b.shape = vec![128, 256];
            }),
            V::UnsupportedOperands { a: DType::F4E2M1X2, b: DType::F8E4M3, .. }),
        case!(ScaledGemm, "scaled_gemm fp4 with per-tensor scales", "scale_a",
            || with(scaled_gemm_nvfp4(), |s| {
                s.modes = (ScaleMode::Tensor, ScaleMode::Tensor);
                for scale in [&mut s.scale_a, &mut s.scale_b] {
                    (scale.dtype, scale.shape) = (DType::F32, vec![1]);
                }
            }),
            V::UnsupportedOperands { scale_a: ScaleMode::Tensor, .. }),
        case!(ScaledGemm, "scaled_gemm nvfp4 f32 scale_a", "scale_a",
            || with(scaled_gemm_nvfp4(), |s| s.scale_a.dtype = DType::F32),
            V::DtypeNotAllowed { arg: "scale_a", got: DType::F32, .. }),
        case!(ScaledGemm, "scaled_gemm nvfp4 scale_b counted in bytes", "scale_b",
            || with(scaled_gemm_nvfp4(), |s| s.scale_b.shape = vec![128, 8]),
            V::Dim { arg: "scale_b", expected: 16, got: 8, .. }),
        case!(ScaledGemm, "scaled_gemm per-tensor A with per-row B", "scale_b",
            || with(scaled_gemm(), |s| s.modes = (ScaleMode::Tensor, ScaleMode::Row)),
            V::UnsupportedScales { a: ScaleMode::Tensor, b: ScaleMode::Row, .. }),
        case!(ScaledGemm, "scaled_gemm scale_a one k-block short", "scale_a",
            || with(scaled_gemm(), |s| s.scale_a.shape = vec![1, 4]),
            V::Dim { arg: "scale_a", expected: 2, got: 1, .. }),
        case!(ScaledGemm, "scaled_gemm f16 scale_b", "scale_b",
            || with(scaled_gemm(), |s| s.scale_b.dtype = DType::F16),
            V::DtypeNotAllowed { arg: "scale_b", got: DType::F16, .. }),
        case!(ScaledGemm, "scaled_gemm bf16 a", "a",
            || with(scaled_gemm(), |s| s.a.dtype = DType::BF16),
            V::DtypeNotAllowed { arg: "a", got: DType::BF16, .. }),
        case!(ScaledGemm, "scaled_gemm fp8 out", "out",
            || with(scaled_gemm(), |s| s.out.dtype = DType::F8E5M2),
            V::DtypeNotAllowed { arg: "out", got: DType::F8E5M2, .. }),
        case!(ScaledGemm, "scaled_gemm f32 bias next to a bf16 out", "bias",
            || with(scaled_gemm(), |s| s.bias.as_mut().unwrap().dtype = DType::F32),
            V::DtypeNotAllowed { arg: "bias", got: DType::F32, .. }),
        case!(ScaledGemm, "scaled_gemm b with another k", "b",
            || with(scaled_gemm(), |s| s.b.shape = vec![128, 128]),
            V::Dim { arg: "b", dim: "k", expected: 256, got: 128, .. }),
        case!(ScaledGemm, "scaled_gemm bias length", "bias",
            || with(scaled_gemm(), |s| s.bias.as_mut().unwrap().shape = vec![4]),
            V::Dim { arg: "bias", expected: 128, got: 4, .. }),
        case!(ScaledGemm, "scaled_gemm out aliases scale_a", "out",
            || with(scaled_gemm(), |s| s.out.addr = s.scale_a.addr),
            V::Aliasing { output: "out", input: "scale_a", .. }),
        case!(ScaledGemm, "scaled_gemm b on another gpu", "b",
            || with(scaled_gemm(), |s| s.b.device = OTHER_GPU),
            V::DeviceMismatch { arg: "b", first: "a", .. }),
        case!(ScaledGemm, "scaled_gemm zero rows", "a",
            || with(scaled_gemm(), |s| s.a.shape = vec![0, 256]),
            V::ZeroSized { arg: "a", .. }),
        case!(ScaledGemm, "scaled_gemm null scale_b", "scale_b",
            || with(scaled_gemm(), |s| s.scale_b.addr = 0),
            V::NullPointer { arg: "scale_b" }),
        case!(ScaledGemm, "scaled_gemm odd address for a bf16 out", "out",
            || with(scaled_gemm(), |s| s.out.addr += 1),
            V::Misaligned { arg: "out", align: 2, .. }),
    ]
}

/// True if `msg` contains `word` as a whole identifier (not inside a longer one).
fn names(msg: &str, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    msg.match_indices(word).any(|(i, _)| {
        let before = msg[..i].chars().next_back();
        let after = msg[i + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[test]
fn bad_arguments_give_typed_errors_naming_the_argument() {
    let cases = cases();
    let mut failures = Vec::new();
    let mut ops = BTreeSet::new();
    for c in &cases {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let args = (c.build)()?;
            ops.insert(args.op());
            if args.op() != c.op {
                return Ok(Some(args.op()));
            }
            args.validate().map(|_| None)
        }));
        match outcome {
            Err(_) => failures.push(format!("{}: panicked", c.name)),
            Ok(Ok(Some(op))) => failures.push(format!("{}: built {op} arguments", c.name)),
            Ok(Ok(None)) => failures.push(format!("{}: validated, expected {}", c.name, c.pattern)),
            Ok(Err(e)) => {
                if !(c.expect)(&e) {
                    failures.push(format!("{}: got {e:?}, expected {}", c.name, c.pattern));
                }
                let msg = e.to_string();
                if !names(&msg, c.arg) {
                    failures.push(format!(
                        "{}: message does not name `{}`: {msg}",
                        c.name, c.arg
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    for op in OpKind::ALL {
        assert!(ops.contains(&op), "no case covers {op}");
    }
}

/// The baselines are valid, so each case above fails for the one thing it changes.
#[test]
fn baselines_validate() {
    let specs: Vec<Box<dyn Spec>> = vec![
        Box::new(gemm()),
        Box::new(rms_norm()),
        Box::new(rms_norm_residual()),
        Box::new(softmax()),
        Box::new(Rows {
            log: true,
            ..softmax()
        }),
        Box::new(token_logprobs()),
        Box::new(rope()),
        Box::new(rope_in_place()),
        Box::new(attention()),
        Box::new(ssu()),
        Box::new(silu_mul()),
        Box::new(silu_mul_split()),
        Box::new(scaled_gemm()),
    ];
    let mut ops = BTreeSet::new();
    for spec in &specs {
        let args = spec.args().expect("baseline views build");
        let (problem, device) = args
            .validate()
            .unwrap_or_else(|e| panic!("baseline {spec:?} is invalid: {e}"));
        assert_eq!(device, GPU);
        assert_eq!(problem.op(), args.op());
        assert_eq!(problem.align(), 16, "{spec:?}");
        ops.insert(problem.op());
    }
    assert_eq!(
        ops.len(),
        OpKind::ALL.len(),
        "a baseline per operator: {ops:?}"
    );
    match gemm().args().unwrap().validate().unwrap().0 {
        Problem::Gemm(p) => {
            assert_eq!((p.batch, p.m, p.n, p.k), (1, 8, 32, 16));
            assert_eq!((p.lda, p.ldb, p.ldc), (16, 32, 32));
            assert!(!p.accumulate);
        }
        other => panic!("gemm baseline gave {other:?}"),
    }
}

#[test]
fn attention_alignment_ignores_the_lse_rows() {
    // Sq = 17: lse rows are 68 bytes and q/k/v/out rows 128 bytes. Kernels write lse one f32 at
    // a time, so only q, k, v and out count: the problem stays 16-byte aligned.
    let odd = with(attention(), |a| {
        a.q.shape = vec![2, 17, 8, 64];
        a.out.shape = vec![2, 17, 8, 64];
        a.lse.as_mut().unwrap().shape = vec![2, 8, 17];
    });
    let (p, _) = odd.unwrap().validate().expect("valid attention");
    assert_eq!(p.align(), 16, "{p:?}");
    // A misaligned q still lowers it.
    let (p, _) = with(attention(), |a| a.q.addr += 4)
        .unwrap()
        .validate()
        .expect("4-byte aligned q is valid");
    assert_eq!(p.align(), 4, "{p:?}");
}

#[test]
fn valid_variants_validate() {
    // Rope in place is one view, read and written.
    let (p, _) = rope_in_place()
        .args()
        .unwrap()
        .validate()
        .expect("in-place rope validates");
    assert!(matches!(p, Problem::Rope(ref r) if r.in_place), "{p:?}");
    // The in-place constructor makes that form, with the full rotary dim.
    let x = rope().x.view_mut().unwrap();
    let positions = rope().positions.view().unwrap();
    let args = RopeArgs::in_place(x, positions);
    assert!(matches!(args.input, RopeInput::InPlace(_)));
    let (p, _) = Args::Rope(args)
        .validate()
        .expect("in-place rope validates");
    assert!(matches!(p, Problem::Rope(ref r) if r.in_place && r.rotary_dim == 64));
    // Out of place is not in place.
    let (p, _) = rope().args().unwrap().validate().unwrap();
    assert!(matches!(p, Problem::Rope(ref r) if !r.in_place));
    // A 4-byte aligned f32 pointer is valid and lowers the problem's alignment.
    let (p, _) = with(gemm(), |g| g.a.addr += 4).unwrap().validate().unwrap();
    assert_eq!(p.align(), 4);
    // A padded row stride is valid for gemm and is recorded.
    let (p, _) = with(gemm(), |g| g.a.strides = Some(vec![24, 1]))
        .unwrap()
        .validate()
        .unwrap();
    assert!(matches!(p, Problem::Gemm(ref g) if g.lda == 24 && g.align == 16));
    // A size-1 dimension may have any stride (frameworks give odd ones): no effect on layout.
    let (p, _) = with(gemm(), |g| {
        g.a.shape = vec![1, 16];
        g.a.strides = Some(vec![isize::MAX, 1]);
        g.c.shape = vec![1, 32];
    })
    .unwrap()
    .validate()
    .expect("a size-1 row's stride is never used");
    assert!(matches!(p, Problem::Gemm(ref g) if g.m == 1 && g.lda == 16 && g.align == 16));
    // Per-head A and no optional SSU inputs.
    let (p, _) = with(ssu(), |s| {
        s.a.shape = vec![4];
        s.dt_bias = None;
        s.d = None;
        s.z = None;
    })
    .unwrap()
    .validate()
    .unwrap();
    assert!(matches!(p, Problem::SelectiveStateUpdate(ref s) if s.a_per_head && !s.z));
    // silu_mul: fused and split are both valid, and say which they are.
    let (p, _) = silu_mul().args().unwrap().validate().unwrap();
    assert!(matches!(p, Problem::SiluMul(ref s) if !s.split && s.rows == 4 && s.d == 128));
    let (p, _) = silu_mul_split().args().unwrap().validate().unwrap();
    assert!(matches!(p, Problem::SiluMul(ref s) if s.split && s.rows == 4 && s.d == 128));
    // A zero eps is allowed.
    assert!(with(rms_norm(), |r| r.eps = 0.0)
        .unwrap()
        .validate()
        .is_ok());
}

#[test]
fn view_construction_errors() {
    // One stride per dimension.
    // SAFETY: never dereferenced (see `T::view`).
    let r = unsafe {
        TensorView::from_raw_parts(
            REGION as *const c_void,
            DType::F32,
            &[2, 3],
            Some(&[3]),
            GPU,
        )
    };
    assert!(matches!(r, Err(ValidationError::Strides { .. })), "{r:?}");
    // Host slices: length must match, and the view can only be read as its own dtype.
    let data = [0.0f32; 6];
    assert!(matches!(
        TensorView::from_slice(&data, &[4, 2]),
        Err(ValidationError::Length {
            len: 6,
            expected: 8,
            ..
        })
    ));
    assert!(matches!(
        TensorView::from_slice(&data, &[usize::MAX, 2]),
        Err(ValidationError::Overflow { .. })
    ));
    let v = TensorView::from_slice(&data, &[2, 3]).unwrap();
    let e = v.as_slice::<i32>("logits").unwrap_err();
    assert!(matches!(
        e,
        ValidationError::NotHostSlice { arg: "logits", .. }
    ));
    assert!(names(&e.to_string(), "logits"));
    // A device view is not a host slice.
    let e = rope()
        .x
        .view()
        .unwrap()
        .as_slice::<kernelyard_core::half::f16>("x")
        .unwrap_err();
    assert!(matches!(
        e,
        ValidationError::NotHostSlice { device: GPU, .. }
    ));
    // More dimensions than kernelyard supports (found before the view has an argument name).
    let r = with(gemm(), |g| g.a.shape = vec![1; 7]);
    assert!(
        matches!(r, Err(ValidationError::RankTooHigh { got: 7, max: 6 })),
        "{r:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Names and parameters.

#[test]
fn unknown_names_are_typed_errors() {
    let e = "tpu:0".parse::<DeviceId>().unwrap_err();
    assert!(matches!(e, Error::InvalidDevice { ref input, .. } if input == "tpu:0"));
    assert!(e.to_string().contains("tpu:0") && e.to_string().contains("cuda:0"));
    for bad in ["cuda:-1", "cuda:", "cpu:1", "rocm:x", ""] {
        assert!(
            matches!(bad.parse::<DeviceId>(), Err(Error::InvalidDevice { .. })),
            "{bad}"
        );
    }

    let e = "gemmm".parse::<OpKind>().unwrap_err();
    assert!(matches!(e, Error::UnknownOp { ref name } if name == "gemmm"));
    let msg = e.to_string();
    assert!(
        msg.contains("gemmm") && names(&msg, "gemm") && names(&msg, "rms_norm"),
        "{msg}"
    );

    let e = "f8".parse::<DType>().unwrap_err();
    assert!(matches!(e, Error::UnknownDType { ref name } if name == "f8"));
    assert!(e.to_string().contains("f8") && e.to_string().contains("bf16"));

    let e = "sm_90".parse::<kernelyard_core::Gfx>().unwrap_err();
    assert!(matches!(e, Error::InvalidArch { .. }));
}

fn param_error(op: OpKind, spec: &str) -> (String, String) {
    let params = match Params::parse(op, spec) {
        Ok(p) => p,
        Err(Error::Param { what, keys, .. }) => return (what, keys),
        Err(e) => panic!("{op} `{spec}`: unexpected {e:?}"),
    };
    match Problem::from_params(op, &params, DType::BF16) {
        Err(Error::Param {
            op: got,
            what,
            keys,
        }) => {
            assert_eq!(got, op);
            (what, keys)
        }
        other => panic!("{op} `{spec}`: expected a parameter error, got {other:?}"),
    }
}

#[test]
fn problem_parameters_are_checked() {
    let table: &[(OpKind, &str, &str)] = &[
        (OpKind::Gemm, "m=1,m=2,n=2,k=3", "key `m` is given twice"),
        (OpKind::Gemm, "m=1,n,k=3", "`n` is not `key=value`"),
        (OpKind::Gemm, "m=1,n=2,k=3,q=4", "unknown key `q`"),
        (OpKind::Gemm, "m=1,n=2", "missing key `k`"),
        (
            OpKind::Gemm,
            "m=x,n=2,k=3",
            "`m=x` is not a non-negative integer",
        ),
        (
            OpKind::Gemm,
            "m=-1,n=2,k=3",
            "`m=-1` is not a non-negative integer",
        ),
        (
            OpKind::Gemm,
            "m=1,n=2,k=3,trans_a=2",
            "`trans_a=2` is not 0 or 1",
        ),
        (
            OpKind::Gemm,
            "m=1,n=2,k=3,c_dtype=f8",
            "`c_dtype=f8` is not a dtype",
        ),
        (
            OpKind::Rope,
            "tokens=1,heads=1,head_dim=8,style=llama",
            "`style=llama` is not one of neox, gptj",
        ),
        (
            OpKind::Attention,
            "seq_q=4,head_dim=64",
            "missing key `heads_q`",
        ),
        (
            OpKind::RmsNorm,
            "rows=4,hidden=64,residual=maybe",
            "`residual=maybe` is not 0 or 1",
        ),
    ];
    for &(op, spec, want) in table {
        let (what, keys) = param_error(op, spec);
        assert!(
            what.contains(want),
            "{op} `{spec}`: `{what}` lacks `{want}`"
        );
        // The error lists the operator's keys, so the fix is in the message.
        assert!(
            op.params().iter().all(|k| keys.contains(k.key)),
            "{op}: keys `{keys}`"
        );
    }
    // Values that parse but describe an invalid problem are validation errors.
    let p = |op, s| Problem::from_params(op, &Params::parse(op, s).unwrap(), DType::BF16);
    assert!(matches!(
        p(OpKind::Gemm, "m=0,n=2,k=3"),
        Err(Error::Validation(ValidationError::ZeroSized {
            arg: "problem",
            ..
        }))
    ));
    assert!(matches!(
        p(
            OpKind::Attention,
            "seq_q=4,heads_q=8,heads_kv=3,head_dim=64"
        ),
        Err(Error::Validation(ValidationError::Relation { .. }))
    ));
    assert!(matches!(
        p(OpKind::Rope, "tokens=4,heads=2,head_dim=64,rotary_dim=65"),
        Err(Error::Validation(ValidationError::Relation { .. }))
    ));
    assert!(matches!(
        p(OpKind::TokenLogprobs, "tokens=4,vocab=10,target_dtype=f32"),
        Err(Error::Validation(ValidationError::DtypeNotAllowed {
            arg: "targets",
            ..
        }))
    ));
    assert!(matches!(
        Problem::from_params(
            OpKind::Softmax,
            &Params::parse(OpKind::Softmax, "rows=1,cols=2").unwrap(),
            DType::I64
        ),
        Err(Error::Validation(ValidationError::DtypeNotAllowed {
            arg: "x",
            ..
        }))
    ));
    // An empty spec is no pairs (then the required keys are missing).
    assert_eq!(
        Params::parse(OpKind::Gemm, " , ").unwrap(),
        Params::default()
    );
}

// ---------------------------------------------------------------------------------------------
// An unknown kernel name, through a runtime with one fake kernel on a simulated device.

static NOOP_GEMM: KernelDef<Gemm> = KernelDef::<Gemm>::new(
    KernelMeta::new::<Gemm>(
        "fake.gemm",
        "fake",
        DeviceKind::Cuda,
        ArchReq::Any,
        module_path!(),
        "does nothing",
    )
    .priority(0),
    noop,
);

fn noop(_: &LaunchCtx<'_>, _: &mut GemmArgs<'_>, _: &GemmProblem) -> Result<(), Error> {
    Ok(())
}

#[test]
fn unknown_kernel_lists_the_known_ones() {
    let registry: &'static Registry = Box::leak(Box::new(
        Registry::from_kernels([&NOOP_GEMM as &dyn Kernel]).unwrap(),
    ));
    let rt = Runtime::builder()
        .registry(registry)
        .pins("")
        .no_probe()
        .simulated_device(Capabilities {
            device: GPU,
            name: "simulated sm_90".into(),
            arch: Arch::Cuda { sm: Sm::new(9, 0) },
            multiprocessors: 132,
            shared_mem_per_block: 48 * 1024,
            shared_mem_per_block_optin: 227 * 1024,
            memory_bytes: 80 << 30,
            driver_version: Some(Version::new(12, 4, 0)),
            compiler_version: Some(Version::new(12, 4, 0)),
            features: BTreeSet::new(),
        })
        .build()
        .unwrap();
    let problem = Problem::from_params(
        OpKind::Gemm,
        &Params::parse(OpKind::Gemm, "m=8,n=32,k=16").unwrap(),
        DType::F32,
    )
    .unwrap();
    let e = rt
        .select(GPU, &problem, &Policy::kernel("nope"))
        .unwrap_err();
    match &e {
        SelectError::UnknownKernel { name, op, known } => {
            assert_eq!(name, "nope");
            assert_eq!(*op, OpKind::Gemm);
            assert_eq!(known, &["fake.gemm"]);
        }
        other => panic!("expected UnknownKernel, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("`nope`") && msg.contains("fake.gemm"), "{msg}");
    // The same name is fine.
    assert_eq!(
        rt.select(GPU, &problem, &Policy::kernel("fake.gemm"))
            .unwrap()
            .kernel_name(),
        "fake.gemm"
    );
}
