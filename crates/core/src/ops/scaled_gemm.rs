//! `scaled_gemm`: the FP8 and FP4 GEMM, `out = (scale_a * A) @ (scale_b * B)^T (+ bias)`.
//!
//! A is `[m, k]` and B is `[n, k]`, both FP8 ([`DType::F8E4M3`] or [`DType::F8E5M2`], not
//! necessarily the same) or both FP4 ([`DType::F4E2M1X2`]), row-major: the "TN" layout
//! cuBLASLt's FP8 and FP4 paths take (both operands k-major). FP4 is packed two per byte along
//! k (the first of a pair in the low nibble), so an FP4 A is a `[m, k/2]` view and an FP4 B a
//! `[n, k/2]` view: the problem's `k` counts values and is even. `out` is `[m, n]` in bf16,
//! f16 or f32; the optional `bias [n]` is added to every row. Every tensor is contiguous.
//! Products are accumulated in f32 (or better) and rounded once to `out`'s dtype.
//!
//! # Scales
//! `scale_a` and `scale_b` are dequantisation factors (the real value of an element is its
//! FP8/FP4 value times its scale) whose shape and dtype the call's [`ScaleMode`] fixes:
//!
//! | mode | operands | scale dtype | `scale_a` | `scale_b` | element `(i, l)` of A / `(j, l)` of B uses |
//! |---|---|---|---|---|---|
//! | [`ScaleMode::Tensor`] | FP8 | f32 | `[1]` (or rank 0) | `[1]` (or rank 0) | the one scale |
//! | [`ScaleMode::Row`] | FP8 | f32 | `[m]` | `[n]` | `scale_a[i]` / `scale_b[j]` |
//! | [`ScaleMode::Block`] | FP8 | f32 | `[ceil(k/128), m]` (1x128, m fastest) | `[ceil(n/128), ceil(k/128)]` (128x128) | `scale_a[l/128, i]` / `scale_b[j/128, l/128]` |
//! | [`ScaleMode::Nvfp4`] | FP4 | e4m3 (UE4M3) | `[m, ceil(k/16)]` (1x16) | `[n, ceil(k/16)]` (1x16) | `scale_a[i, l/16]` / `scale_b[j, l/16]` |
//! | [`ScaleMode::Mxfp4`] | FP4 | e8m0 | `[m, ceil(k/32)]` (1x32) | `[n, ceil(k/32)]` (1x32) | `scale_a[i, l/32]` / `scale_b[j, l/32]` |
//!
//! The FP4 modes are the two block-scaled FP4 formats: NVFP4 (NVIDIA: 16-value blocks, an
//! e4m3 scale each) and MXFP4 (OCP Microscaling: 32-value blocks, a power-of-two e8m0 scale
//! each). Their scales are row-major, one row per row of the operand, blocks along k (the
//! last block of a row partial when `k` is not a multiple of the block); a kernel that wants
//! another layout (cuBLASLt's swizzled tiles) rearranges them itself. NVFP4's scales are
//! unsigned in hardware (UE4M3): pass non-negative ones; the reference multiplies by the
//! decoded value, sign included, and the suite generates positive scales only. NVFP4 recipes
//! also carry one f32 per-tensor "global" scale per operand: it is not an argument here.
//! `out` is linear in it, so without a bias a caller multiplies `out` by the product of the
//! two (with a bias, scales the bias by its inverse first); an `alpha` argument is left for
//! when a kernel gains from fusing it.
//!
//! Operands and modes go together: FP8 operands take tensor, row or block scales, FP4
//! operands NVFP4 or MXFP4; FP4 and FP8 operands do not mix. Anything else is a
//! [`ValidationError::UnsupportedOperands`] naming the dtypes and modes ([`check_operands`]).
//!
//! The supported pairs of modes are the diagonal: tensor x tensor (cuBLASLt's per-tensor
//! scaling), row x row (torch's row-wise `_scaled_mm`, cuBLASLt's outer-vector scaling), block x
//! block (DeepSeek-V3's recipe: activations in 1x128 tiles, weights in 128x128 tiles; the last
//! tile of a row or column may be partial, so `k` and `n` need not be multiples of 128), and
//! the FP4 pairs NVFP4 x NVFP4 and MXFP4 x MXFP4. A's block scales are stored with m fastest
//! (`[ceil(k/128), m]` row-major: the "MN-major" layout cuBLASLt's `VEC128_32F` mode, torch's
//! `_scaled_mm` (`scale_a` strides `(1, m)`) and DeepGEMM take, so a GEMM reads one contiguous
//! run of scales per k-block); B's are k-fastest as its rows are. Every other pair is a
//! [`ValidationError::UnsupportedScales`] that names it: a per-tensor scale is a per-row scale
//! repeated, so a caller mixing them passes rows on both sides; block scales on one side only
//! have no kernel anywhere to map to.
//!
//! # Dtypes
//! - A and B: any of the four FP8 pairs, or FP4 x FP4 ([`OPERAND_DTYPES`]). e5m2 x e5m2 is a
//!   well-defined product the reference computes; cuBLASLt refuses it (its FP8 matmuls need an
//!   e4m3 operand), so a cuBLASLt kernel refuses it in its check with a typed reason rather
//!   than the descriptor refusing it here.
//! - Scales: f32 for the FP8 modes, [`DType::F8E4M3`] for NVFP4, [`DType::F8E8M0`] for MXFP4
//!   ([`ScaleMode::scale_dtypes`]).
//! - `out`: bf16, f16 or f32 ([`OUT_DTYPES`]).
//! - `bias`: cuBLASLt's rule for FP8 epilogues ([`bias_dtypes`]): f16 for an f16 `out`, bf16
//!   for a bf16 or f32 `out`.
//!
//! # Alignment
//! The problem's `align` counts A, B, `out` and `bias` (pointers and row strides): A's and B's
//! rows are `k` bytes (FP4: `k/2`), so a kernel that needs 16-byte rows (cuBLASLt's FP8 path
//! needs `k` a multiple of 16, its FP4 path 32) declares `align = 16` and refuses other `k`
//! through it; the operator itself takes any `k` (FP4: any even `k`). The scale tensors do not
//! count: kernels read them one element at a time (or rearrange them first), and their rows
//! (`ceil(k/128)` floats, `ceil(k/16)` bytes) would otherwise make most block-scaled problems
//! unaligned.
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

/// The block of [`ScaleMode::Nvfp4`] along k: 16 values share an e4m3 scale.
pub const NVFP4_BLOCK: usize = 16;

/// The block of [`ScaleMode::Mxfp4`] along k: 32 values share an e8m0 scale.
pub const MXFP4_BLOCK: usize = 32;

/// The dtypes A and B may have: FP8 (e4m3, e5m2) or packed FP4 (e2m1 pairs); FP4 and FP8 do
/// not mix ([`check_operands`]).
pub const OPERAND_DTYPES: &[DType] = &[DType::F8E4M3, DType::F8E5M2, DType::F4E2M1X2];

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
    /// NVFP4 (FP4 operands): one e4m3 scale per 16 values of a row (`[m, ceil(k/16)]`,
    /// `[n, ceil(k/16)]`).
    Nvfp4,
    /// MXFP4 (FP4 operands): one e8m0 scale per 32 values of a row (`[m, ceil(k/32)]`,
    /// `[n, ceil(k/32)]`).
    Mxfp4,
}

impl ScaleMode {
    /// Every mode.
    pub const ALL: [ScaleMode; 5] = [
        ScaleMode::Tensor,
        ScaleMode::Row,
        ScaleMode::Block,
        ScaleMode::Nvfp4,
        ScaleMode::Mxfp4,
    ];

    /// The name `--problem scale_a=...` and reports use.
    pub const fn name(self) -> &'static str {
        match self {
            ScaleMode::Tensor => "tensor",
            ScaleMode::Row => "row",
            ScaleMode::Block => "block",
            ScaleMode::Nvfp4 => "nvfp4",
            ScaleMode::Mxfp4 => "mxfp4",
        }
    }

    /// True for the modes of FP4 operands (NVFP4, MXFP4).
    pub const fn is_fp4(self) -> bool {
        matches!(self, ScaleMode::Nvfp4 | ScaleMode::Mxfp4)
    }

    /// The dtype the scale tensors of this mode have (one entry): f32, e4m3 for NVFP4, e8m0 for
    /// MXFP4.
    pub const fn scale_dtypes(self) -> &'static [DType] {
        match self {
            ScaleMode::Tensor | ScaleMode::Row | ScaleMode::Block => &[DType::F32],
            ScaleMode::Nvfp4 => &[DType::F8E4M3],
            ScaleMode::Mxfp4 => &[DType::F8E8M0],
        }
    }

    /// The values per scale along k of the FP4 modes (16, 32); `None` for the others.
    pub const fn fp4_block(self) -> Option<usize> {
        match self {
            ScaleMode::Nvfp4 => Some(NVFP4_BLOCK),
            ScaleMode::Mxfp4 => Some(MXFP4_BLOCK),
            ScaleMode::Tensor | ScaleMode::Row | ScaleMode::Block => None,
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
            ScaleMode::Nvfp4 => vec![m, k.div_ceil(NVFP4_BLOCK)],
            ScaleMode::Mxfp4 => vec![m, k.div_ceil(MXFP4_BLOCK)],
        }
    }

    /// The shape of `scale_b` for B `[n, k]`.
    pub fn b_shape(self, n: usize, k: usize) -> Vec<usize> {
        match self {
            ScaleMode::Tensor => vec![1],
            ScaleMode::Row => vec![n],
            ScaleMode::Block => vec![n.div_ceil(BLOCK), k.div_ceil(BLOCK)],
            ScaleMode::Nvfp4 => vec![n, k.div_ceil(NVFP4_BLOCK)],
            ScaleMode::Mxfp4 => vec![n, k.div_ceil(MXFP4_BLOCK)],
        }
    }

    /// The index into `scale_a` (row-major) of A's element `(i, l)` of an `m`-row,
    /// `k`-column A.
    pub fn a_index(self, i: usize, l: usize, m: usize, k: usize) -> usize {
        match self {
            ScaleMode::Tensor => 0,
            ScaleMode::Row => i,
            ScaleMode::Block => (l / BLOCK) * m + i,
            ScaleMode::Nvfp4 => i * k.div_ceil(NVFP4_BLOCK) + l / NVFP4_BLOCK,
            ScaleMode::Mxfp4 => i * k.div_ceil(MXFP4_BLOCK) + l / MXFP4_BLOCK,
        }
    }

    /// The index into `scale_b` (row-major) of B's element `(j, l)` of a `k`-column B.
    pub fn b_index(self, j: usize, l: usize, k: usize) -> usize {
        match self {
            ScaleMode::Tensor => 0,
            ScaleMode::Row => j,
            ScaleMode::Block => (j / BLOCK) * k.div_ceil(BLOCK) + l / BLOCK,
            ScaleMode::Nvfp4 => j * k.div_ceil(NVFP4_BLOCK) + l / NVFP4_BLOCK,
            ScaleMode::Mxfp4 => j * k.div_ceil(MXFP4_BLOCK) + l / MXFP4_BLOCK,
        }
    }

    fn a_layout(self) -> &'static str {
        match self {
            ScaleMode::Tensor => "[1] (per tensor)",
            ScaleMode::Row => "[m] (per row of A)",
            ScaleMode::Block => "[ceil(k/128), m] (1x128 blocks of A, m fastest)",
            ScaleMode::Nvfp4 => "[m, ceil(k/16)] (NVFP4: 1x16 blocks of A, e4m3)",
            ScaleMode::Mxfp4 => "[m, ceil(k/32)] (MXFP4: 1x32 blocks of A, e8m0)",
        }
    }

    fn b_layout(self) -> &'static str {
        match self {
            ScaleMode::Tensor => "[1] (per tensor)",
            ScaleMode::Row => "[n] (per row of B)",
            ScaleMode::Block => "[ceil(n/128), ceil(k/128)] (128x128 blocks of B)",
            ScaleMode::Nvfp4 => "[n, ceil(k/16)] (NVFP4: 1x16 blocks of B, e4m3)",
            ScaleMode::Mxfp4 => "[n, ceil(k/32)] (MXFP4: 1x32 blocks of B, e8m0)",
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
    use ScaleMode::{Block, Mxfp4, Nvfp4, Row, Tensor};
    let why = match (a, b) {
        (Tensor, Tensor) | (Row, Row) | (Block, Block) | (Nvfp4, Nvfp4) | (Mxfp4, Mxfp4) => {
            return Ok(())
        }
        (Nvfp4 | Mxfp4, _) | (_, Nvfp4 | Mxfp4) => {
            "FP4 block scales need the same format on the other side: nvfp4 with nvfp4 (1x16, \
             e4m3) or mxfp4 with mxfp4 (1x32, e8m0)"
        }
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

/// Fails unless A's and B's dtypes go together and with the scale modes (a supported pair,
/// [`check_scales`]): FP8 with FP8 under tensor, row or block scales; FP4 with FP4 under NVFP4
/// or MXFP4 scales. Dtypes outside [`OPERAND_DTYPES`] are left to the dtype checks.
pub fn check_operands(
    a: DType,
    b: DType,
    scale_a: ScaleMode,
    scale_b: ScaleMode,
) -> Result<(), ValidationError> {
    let why = if a.is_fp4() != b.is_fp4() && (a.is_fp8() || b.is_fp8()) {
        "FP4 and FP8 operands do not mix: quantise both to FP4 (nvfp4 or mxfp4 scales) or both \
         to FP8"
    } else if (a.is_fp4() || b.is_fp4()) && !scale_a.is_fp4() {
        "FP4 operands take FP4 block scales: scale_a=nvfp4 (1x16 blocks, e4m3 scales) or \
         scale_a=mxfp4 (1x32 blocks, e8m0 scales), the same on B"
    } else if (a.is_fp8() || b.is_fp8()) && scale_a.is_fp4() {
        "nvfp4 and mxfp4 scales are for FP4 operands (f4e2m1x2); FP8 operands take tensor, row \
         or block scales"
    } else {
        return Ok(());
    };
    Err(ValidationError::UnsupportedOperands {
        a,
        b,
        scale_a,
        scale_b,
        why,
    })
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
    /// The reduction dimension: values per row of A and B (FP4: twice the bytes per row).
    pub k: usize,
    /// dtype of A (FP8 or FP4): the primary dtype.
    pub dtype: DType,
    /// dtype of B (FP8 with FP8, FP4 with FP4).
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
        help: "dtype of B: same (A's), f8e4m3 or f8e5m2 (f4e2m1x2 goes with f4e2m1x2 only)",
    },
    ParamKey {
        key: "out_dtype",
        default: Some("bf16"),
        help: "dtype of out: bf16, f16 or f32",
    },
    ParamKey {
        key: "scale_a",
        default: Some("tensor"),
        help: "how scale_a maps onto A: tensor, row or block (1x128) for FP8; nvfp4 (1x16, \
               e4m3) or mxfp4 (1x32, e8m0) for FP4",
    },
    ParamKey {
        key: "scale_b",
        default: Some("same"),
        help: "same (scale_a's), tensor, row, block (128x128), nvfp4 or mxfp4: how scale_b \
               maps onto B",
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
        let modes = ["tensor", "row", "block", "nvfp4", "mxfp4"];
        let mode = |name| ScaleMode::from_name(name).unwrap_or(ScaleMode::Tensor);
        let scale_a = mode(r.choice("scale_a", &modes)?);
        let b_modes = ["same", "tensor", "row", "block", "nvfp4", "mxfp4"];
        let scale_b = match r.choice("scale_b", &b_modes)? {
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

    /// `a [m, k]`, `b [n, k]` (FP4: `k/2` bytes a row), `out [m, n]` and `bias [n]` (counted
    /// in `align`), then the two scale tensors (not counted).
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[self.m, self.n, self.k])?;
        dtype_in("a", self.dtype, OPERAND_DTYPES)?;
        dtype_in("b", self.b_dtype, OPERAND_DTYPES)?;
        dtype_in("out", self.out_dtype, OUT_DTYPES)?;
        check_scales(self.scale_a, self.scale_b)?;
        check_operands(self.dtype, self.b_dtype, self.scale_a, self.scale_b)?;
        let lanes = self.dtype.lanes();
        if !self.k.is_multiple_of(lanes) {
            return Err(ValidationError::Relation {
                rule: "k even for FP4 operands (two values per byte)",
                detail: format!("k = {}", self.k),
            });
        }
        let mut t = Implied::new();
        t.contiguous("a", self.dtype, &[self.m, self.k / lanes])?;
        t.contiguous("b", self.b_dtype, &[self.n, self.k / lanes])?;
        t.contiguous("out", self.out_dtype, &[self.m, self.n])?;
        if self.bias {
            t.contiguous("bias", bias_dtypes(self.out_dtype)[0], &[self.n])?;
        }
        let (sa, sb) = (
            self.scale_a.scale_dtypes()[0],
            self.scale_b.scale_dtypes()[0],
        );
        t.contiguous_uncounted("scale_a", sa, &self.scale_a_shape())?;
        t.contiguous_uncounted("scale_b", sb, &self.scale_b_shape())?;
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
    /// A `[m, k]`: FP8, or FP4 as a `[m, k/2]` view of pairs.
    pub a: TensorView<'a>,
    /// B `[n, k]` (used transposed): FP8, or FP4 as a `[n, k/2]` view of pairs.
    pub b: TensorView<'a>,
    /// A's scales, of the shape and dtype [`ScaledGemmArgs::scale_a_mode`] gives.
    pub scale_a: TensorView<'a>,
    /// B's scales, of the shape and dtype [`ScaledGemmArgs::scale_b_mode`] gives.
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

/// Checks a scale tensor against the shape and dtype its mode gives (a per-tensor scale may
/// also be a rank-0 tensor).
fn scale(
    ck: &mut Checker,
    arg: &'static str,
    v: &dyn ViewMeta,
    want: &[usize],
    mode: ScaleMode,
    layout: &'static str,
) -> Result<(), ValidationError> {
    let rank = if want == [1] && v.shape().is_empty() {
        0
    } else {
        want.len()
    };
    let got = ck.contiguous(arg, v, rank, layout, mode.scale_dtypes())?;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let name = ["rows", "cols"].get(i).copied().unwrap_or("dim");
        dim(arg, name, g, w, layout)?;
    }
    Ok(())
}

impl ScaledGemmArgs<'_> {
    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(ScaledGemmProblem, DeviceId), ValidationError> {
        let (sa, sb) = (self.scale_a_mode, self.scale_b_mode);
        check_scales(sa, sb)?;
        let mut ck = Checker::new();
        let a = ck.contiguous("a", &self.a, 2, "[m, k]", OPERAND_DTYPES)?;
        let b = ck.contiguous("b", &self.b, 2, "[n, k]", OPERAND_DTYPES)?;
        check_operands(self.a.dtype(), self.b.dtype(), sa, sb)?;
        // An FP4 row of k values is k/2 bytes (pairs); the problem counts values.
        let lanes = self.a.dtype().lanes();
        let k = a[1]
            .checked_mul(lanes)
            .ok_or_else(|| ValidationError::Overflow {
                arg: "a",
                what: "k (two values per byte of an FP4 row)".to_owned(),
            })?;
        let (m, n) = (a[0], b[0]);
        let rule = if lanes == 2 {
            "B is [n, k/2] pairs: the k/2 columns of A"
        } else {
            "B is [n, k]: k columns, as A"
        };
        dim("b", "k", b[1], a[1], rule)?;
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
        scale(
            &mut ck,
            "scale_a",
            &self.scale_a,
            &sa.a_shape(m, k),
            sa,
            sa.a_layout(),
        )?;
        scale(
            &mut ck,
            "scale_b",
            &self.scale_b,
            &sb.b_shape(n, k),
            sb,
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

    /// The scale mode: `tensor`, `row`, `block`, `nvfp4` or `mxfp4` (the supported pairs use
    /// one mode on both sides).
    fn layout(p: &ScaledGemmProblem) -> Option<&'static str> {
        Some(p.scale_a.name())
    }
}
