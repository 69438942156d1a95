//! `scaled_gemm`: the FP8 GEMM, `out = (scale_a * A) @ (scale_b * B)^T (+ bias)`.
//!
//! A is `[m, k]` and B is `[n, k]`, both FP8 ([`DType::F8E4M3`] or [`DType::F8E5M2`], not
//! necessarily the same), row-major: the "TN" layout cuBLASLt's FP8 path takes (both operands
//! k-major). `out` is `[m, n]` in bf16, f16 or f32; the optional `bias [n]` is added to every
//! row. Every tensor is contiguous. Products are accumulated in f32 (or better) and rounded once
//! to `out`'s dtype.
//!
//! # Scales
//! `scale_a` and `scale_b` are f32 tensors (dequantisation factors: the real value of an
//! element is its FP8 value times its scale) whose shape the call's [`ScaleMode`] fixes:
//!
//! | mode | `scale_a` | `scale_b` | element `(i, l)` of A / `(j, l)` of B uses |
//! |---|---|---|---|
//! | [`ScaleMode::Tensor`] | `[1]` (or rank 0) | `[1]` (or rank 0) | the one scale |
//! | [`ScaleMode::Row`] | `[m]` | `[n]` | `scale_a[i]` / `scale_b[j]` |
//! | [`ScaleMode::Block`] | `[ceil(k/128), m]` (1x128, m fastest) | `[ceil(n/128), ceil(k/128)]` (128x128) | `scale_a[l/128, i]` / `scale_b[j/128, l/128]` |
//!
//! The supported pairs are the diagonal: tensor x tensor (cuBLASLt's per-tensor scaling),
//! row x row (torch's row-wise `_scaled_mm`, cuBLASLt's outer-vector scaling) and block x block
//! (DeepSeek-V3's recipe: activations in 1x128 tiles, weights in 128x128 tiles; the last tile of
//! a row or column may be partial, so `k` and `n` need not be multiples of 128). A's block
//! scales are stored with m fastest (`[ceil(k/128), m]` row-major: the "MN-major" layout
//! cuBLASLt's `VEC128_32F` mode, torch's `_scaled_mm` (`scale_a` strides `(1, m)`) and
//! DeepGEMM take, so a GEMM reads one contiguous run of scales per k-block); B's are k-fastest
//! as its rows are. Every other
//! pair is a [`ValidationError::UnsupportedScales`] that names it: a per-tensor scale is a
//! per-row scale repeated, so a caller mixing them passes rows on both sides; block scales on
//! one side only have no kernel anywhere to map to.
//!
//! # Dtypes
//! - A and B: any of the four FP8 pairs. e5m2 x e5m2 is a well-defined product the reference
//!   computes; cuBLASLt refuses it (its FP8 matmuls need an e4m3 operand), so a cuBLASLt kernel
//!   refuses it in its check with a typed reason rather than the descriptor refusing it here.
//! - `out`: bf16, f16 or f32 ([`OUT_DTYPES`]).
//! - `bias`: cuBLASLt's rule for FP8 epilogues ([`bias_dtypes`]): f16 for an f16 `out`, bf16
//!   for a bf16 or f32 `out`.
//!
//! # Alignment
//! The problem's `align` counts A, B, `out` and `bias` (pointers and row strides): A's and B's
//! rows are `k` bytes, so a kernel that needs 16-byte rows (cuBLASLt's FP8 path needs `k` a
//! multiple of 16) declares `align = 16` and refuses other `k` through it; the operator itself
//! takes any `k`. The scale tensors do not count: kernels read them one f32 at a time, and their
//! rows (`ceil(k/128)` floats) would otherwise make most block-scaled problems unaligned.
//!
//! `out` must not overlap any input.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{dim, dtype_in, no_alias, nonzero, Checker, Implied, ViewMeta};
use crate::ops::params::{ParamKey, Params};
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// The side of a scale block along k (both operands), and along n for B's blocks.
pub const BLOCK: usize = 128;

/// The dtypes `out` may have.
pub const OUT_DTYPES: &[DType] = &[DType::BF16, DType::F16, DType::F32];

/// How a scale tensor maps onto its operand (see the module docs' table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleMode {
    /// One scale for the whole operand: `[1]`.
    Tensor,
    /// One scale per row: `[m]` for A, `[n]` for B.
    Row,
    /// One scale per block: 1x128 for A (`[ceil(k/128), m]`, m fastest), 128x128 for B
    /// (`[ceil(n/128), ceil(k/128)]`).
    Block,
}

impl ScaleMode {
    /// Every mode.
    pub const ALL: [ScaleMode; 3] = [ScaleMode::Tensor, ScaleMode::Row, ScaleMode::Block];

    /// The name `--problem scale_a=...` and reports use.
    pub const fn name(self) -> &'static str {
        match self {
            ScaleMode::Tensor => "tensor",
            ScaleMode::Row => "row",
            ScaleMode::Block => "block",
        }
    }

    /// The mode called `name`, if any.
    pub fn from_name(name: &str) -> Option<ScaleMode> {
        ScaleMode::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The shape of `scale_a` for A `[m, k]`.
    pub fn a_shape(self, m: usize, k: usize) -> Vec<usize> {
        match self {
            ScaleMode::Tensor => vec![1],
            ScaleMode::Row => vec![m],
            ScaleMode::Block => vec![k.div_ceil(BLOCK), m],
        }
    }

    /// The shape of `scale_b` for B `[n, k]`.
    pub fn b_shape(self, n: usize, k: usize) -> Vec<usize> {
        match self {
            ScaleMode::Tensor => vec![1],
            ScaleMode::Row => vec![n],
            ScaleMode::Block => vec![n.div_ceil(BLOCK), k.div_ceil(BLOCK)],
        }
    }

    /// The index into `scale_a` (row-major) of A's element `(i, l)` of an `m`-row A.
    pub fn a_index(self, i: usize, l: usize, m: usize) -> usize {
        match self {
            ScaleMode::Tensor => 0,
            ScaleMode::Row => i,
            ScaleMode::Block => (l / BLOCK) * m + i,
        }
    }

    /// The index into `scale_b` (row-major) of B's element `(j, l)` of a `k`-column B.
    pub fn b_index(self, j: usize, l: usize, k: usize) -> usize {
        match self {
            ScaleMode::Tensor => 0,
            ScaleMode::Row => j,
            ScaleMode::Block => (j / BLOCK) * k.div_ceil(BLOCK) + l / BLOCK,
        }
    }

    fn a_layout(self) -> &'static str {
        match self {
            ScaleMode::Tensor => "[1] (per tensor)",
            ScaleMode::Row => "[m] (per row of A)",
            ScaleMode::Block => "[ceil(k/128), m] (1x128 blocks of A, m fastest)",
        }
    }

    fn b_layout(self) -> &'static str {
        match self {
            ScaleMode::Tensor => "[1] (per tensor)",
            ScaleMode::Row => "[n] (per row of B)",
            ScaleMode::Block => "[ceil(n/128), ceil(k/128)] (128x128 blocks of B)",
        }
    }
}

impl fmt::Display for ScaleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fails unless `(a, b)` is a supported pair of scale modes (the diagonal; see the module docs).
pub fn check_scales(a: ScaleMode, b: ScaleMode) -> Result<(), ValidationError> {
    use ScaleMode::{Block, Row, Tensor};
    let why = match (a, b) {
        (Tensor, Tensor) | (Row, Row) | (Block, Block) => return Ok(()),
        (Tensor, Row) | (Row, Tensor) => {
            "per-tensor and per-row scales do not mix: pass per-row scales on both sides (a \
             per-tensor scale is a per-row scale repeated)"
        }
        (Block, _) | (_, Block) => {
            "block scales need block scales on the other side (1x128 for A with 128x128 for B, \
             as DeepSeek-V3-style FP8 uses)"
        }
    };
    Err(ValidationError::UnsupportedScales { a, b, why })
}

/// The dtypes `bias` may have next to an `out` of dtype `out`: cuBLASLt's rule for FP8
/// epilogues, f16 for an f16 `out`, bf16 otherwise.
pub fn bias_dtypes(out: DType) -> &'static [DType] {
    match out {
        DType::F16 => &[DType::F16],
        _ => &[DType::BF16],
    }
}

/// A `scaled_gemm` problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ScaledGemmProblem {
    /// Rows of A and of `out`.
    pub m: usize,
    /// Rows of B, columns of `out`.
    pub n: usize,
    /// The reduction dimension (columns of A and B).
    pub k: usize,
    /// dtype of A (FP8): the primary dtype.
    pub dtype: DType,
    /// dtype of B (FP8).
    pub b_dtype: DType,
    /// dtype of `out` (bf16, f16 or f32).
    pub out_dtype: DType,
    /// How `scale_a` maps onto A.
    pub scale_a: ScaleMode,
    /// How `scale_b` maps onto B.
    pub scale_b: ScaleMode,
    /// A bias `[n]` is added (dtype: [`bias_dtypes`] of `out_dtype`).
    pub bias: bool,
    /// Least alignment of the pointers and row strides of A, B, `out` and `bias`, bytes
    /// (capped at 16); the scales do not count.
    pub align: usize,
}

/// Keys of `--problem` for `scaled_gemm`.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "m",
        default: None,
        help: "rows of A and out",
    },
    ParamKey {
        key: "n",
        default: None,
        help: "rows of B, columns of out",
    },
    ParamKey {
        key: "k",
        default: None,
        help: "reduction length",
    },
    ParamKey {
        key: "b_dtype",
        default: Some("same"),
        help: "dtype of B: same (A's), f8e4m3 or f8e5m2",
    },
    ParamKey {
        key: "out_dtype",
        default: Some("bf16"),
        help: "dtype of out: bf16, f16 or f32",
    },
    ParamKey {
        key: "scale_a",
        default: Some("tensor"),
        help: "tensor, row or block (1x128): how scale_a maps onto A",
    },
    ParamKey {
        key: "scale_b",
        default: Some("same"),
        help: "same (scale_a's), tensor, row or block (128x128): how scale_b maps onto B",
    },
    ParamKey {
        key: "bias",
        default: Some("0"),
        help: "add a bias [n] (f16 for an f16 out, bf16 otherwise)",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
];

impl ScaledGemmProblem {
    /// A problem from `--problem` keys, with the invariants [`ScaledGemmArgs::validate`]
    /// enforces ([`ScaledGemmProblem::check`]).
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(OpKind::ScaledGemm);
        r.check_keys()?;
        let modes = ["tensor", "row", "block"];
        let mode = |name| ScaleMode::from_name(name).unwrap_or(ScaleMode::Tensor);
        let scale_a = mode(r.choice("scale_a", &modes)?);
        let scale_b = match r.choice("scale_b", &["same", "tensor", "row", "block"])? {
            "same" => scale_a,
            other => mode(other),
        };
        let mut p = ScaledGemmProblem {
            m: r.usize("m")?,
            n: r.usize("n")?,
            k: r.usize("k")?,
            dtype,
            b_dtype: r.dtype("b_dtype", dtype)?,
            out_dtype: r.dtype("out_dtype", DType::BF16)?,
            scale_a,
            scale_b,
            bias: r.flag("bias")?,
            align: r.usize("align")?,
        };
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// The shape of `scale_a`.
    pub fn scale_a_shape(&self) -> Vec<usize> {
        self.scale_a.a_shape(self.m, self.k)
    }

    /// The shape of `scale_b`.
    pub fn scale_b_shape(&self) -> Vec<usize> {
        self.scale_b.b_shape(self.n, self.k)
    }

    /// `a [m, k]`, `b [n, k]`, `out [m, n]` and `bias [n]` (counted in `align`), then the two
    /// scale tensors (not counted).
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[self.m, self.n, self.k])?;
        dtype_in("a", self.dtype, DType::FP8)?;
        dtype_in("b", self.b_dtype, DType::FP8)?;
        dtype_in("out", self.out_dtype, OUT_DTYPES)?;
        check_scales(self.scale_a, self.scale_b)?;
        let mut t = Implied::new();
        t.contiguous("a", self.dtype, &[self.m, self.k])?;
        t.contiguous("b", self.b_dtype, &[self.n, self.k])?;
        t.contiguous("out", self.out_dtype, &[self.m, self.n])?;
        if self.bias {
            t.contiguous("bias", bias_dtypes(self.out_dtype)[0], &[self.n])?;
        }
        t.contiguous_uncounted("scale_a", DType::F32, &self.scale_a_shape())?;
        t.contiguous_uncounted("scale_b", DType::F32, &self.scale_b_shape())?;
        Ok(t)
    }

    /// The invariants [`ScaledGemmArgs::validate`] enforces (see [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }
}

/// Arguments of `scaled_gemm`.
#[derive(Debug)]
pub struct ScaledGemmArgs<'a> {
    /// A `[m, k]`, FP8.
    pub a: TensorView<'a>,
    /// B `[n, k]`, FP8 (used transposed).
    pub b: TensorView<'a>,
    /// A's scales, f32, of the shape [`ScaledGemmArgs::scale_a_mode`] gives.
    pub scale_a: TensorView<'a>,
    /// B's scales, f32, of the shape [`ScaledGemmArgs::scale_b_mode`] gives.
    pub scale_b: TensorView<'a>,
    /// How `scale_a` maps onto A.
    pub scale_a_mode: ScaleMode,
    /// How `scale_b` maps onto B.
    pub scale_b_mode: ScaleMode,
    /// Optional bias `[n]` ([`bias_dtypes`] of `out`'s dtype), added to every row.
    pub bias: Option<TensorView<'a>>,
    /// Output `[m, n]`: bf16, f16 or f32; written.
    pub out: TensorViewMut<'a>,
}

impl<'a> ScaledGemmArgs<'a> {
    /// `out = (scale_a * A) @ (scale_b * B)^T` with one scale mode for both sides and no bias.
    pub fn new(
        a: TensorView<'a>,
        b: TensorView<'a>,
        scale_a: TensorView<'a>,
        scale_b: TensorView<'a>,
        mode: ScaleMode,
        out: TensorViewMut<'a>,
    ) -> Self {
        ScaledGemmArgs {
            a,
            b,
            scale_a,
            scale_b,
            scale_a_mode: mode,
            scale_b_mode: mode,
            bias: None,
            out,
        }
    }
}

/// Checks a scale tensor against the shape its mode gives (a per-tensor scale may also be a
/// rank-0 tensor).
fn scale(
    ck: &mut Checker,
    arg: &'static str,
    v: &dyn ViewMeta,
    want: &[usize],
    layout: &'static str,
) -> Result<(), ValidationError> {
    let rank = if want == [1] && v.shape().is_empty() {
        0
    } else {
        want.len()
    };
    let got = ck.contiguous(arg, v, rank, layout, &[DType::F32])?;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let name = ["rows", "cols"].get(i).copied().unwrap_or("dim");
        dim(arg, name, g, w, layout)?;
    }
    Ok(())
}

impl ScaledGemmArgs<'_> {
    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(ScaledGemmProblem, DeviceId), ValidationError> {
        check_scales(self.scale_a_mode, self.scale_b_mode)?;
        let mut ck = Checker::new();
        let a = ck.contiguous("a", &self.a, 2, "[m, k]", DType::FP8)?;
        let b = ck.contiguous("b", &self.b, 2, "[n, k]", DType::FP8)?;
        let (m, k, n) = (a[0], a[1], b[0]);
        dim("b", "k", b[1], k, "B is [n, k]: k columns, as A")?;
        let out_dtype = self.out.dtype();
        let o = ck.contiguous("out", &self.out, 2, "[m, n]", OUT_DTYPES)?;
        dim("out", "m", o[0], m, "out has the rows of A")?;
        dim("out", "n", o[1], n, "out has one column per row of B")?;
        if let Some(bias) = &self.bias {
            let s = ck.contiguous("bias", bias, 1, "[n]", bias_dtypes(out_dtype))?;
            dim("bias", "n", s[0], n, "bias has one entry per column of out")?;
        }
        // The problem's alignment is that of A, B, out and bias: kernels read scales one f32
        // at a time (module docs).
        let align = ck.align();
        let sa = self.scale_a_mode;
        let sb = self.scale_b_mode;
        scale(
            &mut ck,
            "scale_a",
            &self.scale_a,
            &sa.a_shape(m, k),
            sa.a_layout(),
        )?;
        scale(
            &mut ck,
            "scale_b",
            &self.scale_b,
            &sb.b_shape(n, k),
            sb.b_layout(),
        )?;
        let inputs: [(&'static str, Option<&dyn ViewMeta>); 5] = [
            ("a", Some(&self.a)),
            ("b", Some(&self.b)),
            ("scale_a", Some(&self.scale_a)),
            ("scale_b", Some(&self.scale_b)),
            ("bias", self.bias.as_ref().map(|x| x as &dyn ViewMeta)),
        ];
        for (name, input) in inputs {
            if let Some(input) = input {
                no_alias("out", &self.out, name, input)?;
            }
        }
        let p = ScaledGemmProblem {
            m,
            n,
            k,
            dtype: self.a.dtype(),
            b_dtype: self.b.dtype(),
            out_dtype,
            scale_a: sa,
            scale_b: sb,
            bias: self.bias.is_some(),
            align,
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// The `scaled_gemm` operator's descriptor.
pub struct ScaledGemm;

impl Op for ScaledGemm {
    const KIND: OpKind = OpKind::ScaledGemm;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[];
    const EXAMPLE: Example = Example {
        params: "m=128,n=128,k=128",
        dtype: DType::F8E4M3,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["m"];
    const BUCKETED: &'static [&'static str] = &["m", "n", "k"];
    type Problem = ScaledGemmProblem;
    type Args<'a> = ScaledGemmArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<ScaledGemmProblem, Error> {
        ScaledGemmProblem::from_params(params, dtype)
    }

    fn check_problem(p: &ScaledGemmProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(
        args: &ScaledGemmArgs<'_>,
    ) -> Result<(ScaledGemmProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `2*m*n*k` FLOPs (scales and bias are not counted).
    fn work(p: &ScaledGemmProblem) -> Work {
        Work::Flops(2.0 * p.m as f64 * p.n as f64 * p.k as f64)
    }

    /// `[m, n, k]`.
    fn shape(p: &ScaledGemmProblem) -> Vec<usize> {
        vec![p.m, p.n, p.k]
    }

    /// The scale mode: `tensor`, `row` or `block` (the supported pairs use one mode on both
    /// sides).
    fn layout(p: &ScaledGemmProblem) -> Option<&'static str> {
        Some(p.scale_a.name())
    }
}
