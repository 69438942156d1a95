//! `rope`: rotary position embedding over the first `rotary_dim` features of each head.
//!
//! `x [T, heads, head_dim]` (f32/f16/bf16, contiguous), `positions [T]` (i32/i64), `out` of
//! `x`'s shape and dtype. `inv_freq[i] = theta^(-2i / rotary_dim)` for `i < rotary_dim / 2`,
//! angle `= position * inv_freq[i]`. NeoX style rotates the pairs `(j, j + rotary_dim/2)`;
//! GPT-J style rotates the interleaved pairs `(2i, 2i + 1)`:
//! `(a, b) -> (a cos - b sin, b cos + a sin)`. Features at and beyond `rotary_dim` are copied
//! unchanged.
//!
//! In place or not is said by the argument's form, [`RopeInput`], never by two views that
//! happen to share memory: [`RopeInput::InPlace`] holds the one writable view that is read and
//! rotated where it is ([`RopeArgs::in_place`]); [`RopeInput::OutOfPlace`] holds `x` and a
//! separate `out` ([`RopeArgs::new`]), and any overlap of the two (even exactly the same
//! tensor) is a [`ValidationError::Aliasing`]. So safe code can never hold a shared and a
//! mutable view of the same elements through these arguments. Kernels get both addresses from
//! [`RopeInput::ptrs`] (equal in place) and must read an element before they write it; the
//! reference reads the whole tensor into a copy first.

use std::ffi::c_void;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{dim, dtype_in, finite, no_alias, nonzero, same_dtype, Checker, Implied};
use crate::ops::params::{ParamKey, Params};
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// The default base `theta`.
pub const DEFAULT_THETA: f32 = 10000.0;

/// Which features are rotated together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RopeStyle {
    /// Rotate halves: pairs `(j, j + rotary_dim / 2)`.
    Neox,
    /// Interleaved: pairs `(2i, 2i + 1)`.
    Gptj,
}

impl fmt::Display for RopeStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RopeStyle::Neox => "neox",
            RopeStyle::Gptj => "gptj",
        })
    }
}

/// A `rope` problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RopeProblem {
    /// Tokens.
    pub tokens: usize,
    /// Heads.
    pub heads: usize,
    /// Features per head.
    pub head_dim: usize,
    /// Rotated features per head (even, at most `head_dim`).
    pub rotary_dim: usize,
    /// Pairing style.
    pub style: RopeStyle,
    /// dtype of `x` and `out`.
    pub dtype: DType,
    /// dtype of `positions` (i32 or i64).
    pub pos_dtype: DType,
    /// `x` is rotated where it is ([`RopeInput::InPlace`]).
    pub in_place: bool,
    /// Least alignment of pointers and row strides, bytes (capped at 16).
    pub align: usize,
}

/// Keys of `--problem` for `rope`.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "tokens",
        default: None,
        help: "tokens",
    },
    ParamKey {
        key: "heads",
        default: None,
        help: "heads",
    },
    ParamKey {
        key: "head_dim",
        default: None,
        help: "features per head",
    },
    ParamKey {
        key: "rotary_dim",
        default: Some("head_dim"),
        help: "rotated features (even)",
    },
    ParamKey {
        key: "style",
        default: Some("neox"),
        help: "neox or gptj",
    },
    ParamKey {
        key: "pos_dtype",
        default: Some("i64"),
        help: "i32 or i64",
    },
    ParamKey {
        key: "in_place",
        default: Some("0"),
        help: "out is x",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
];

fn check_rotary(rotary_dim: usize, head_dim: usize) -> Result<(), ValidationError> {
    if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) || rotary_dim > head_dim {
        return Err(ValidationError::Relation {
            rule: "0 < rotary_dim <= head_dim and rotary_dim even",
            detail: format!("rotary_dim = {rotary_dim}, head_dim = {head_dim}"),
        });
    }
    Ok(())
}

impl RopeProblem {
    /// A problem from `--problem` keys.
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(OpKind::Rope);
        r.check_keys()?;
        let head_dim = r.usize("head_dim")?;
        let rotary_dim = match params.get("rotary_dim") {
            None => head_dim,
            Some(_) => r.usize("rotary_dim")?,
        };
        let style = match r.choice("style", &["neox", "gptj"])? {
            "gptj" => RopeStyle::Gptj,
            _ => RopeStyle::Neox,
        };
        let mut p = RopeProblem {
            tokens: r.usize("tokens")?,
            heads: r.usize("heads")?,
            head_dim,
            rotary_dim,
            style,
            dtype,
            pos_dtype: r.dtype("pos_dtype", DType::I64)?,
            in_place: r.flag("in_place")?,
            align: r.usize("align")?,
        };
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// `x [tokens, heads, head_dim]`, out of place `out` of its shape, and `positions
    /// [tokens]`.
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[self.tokens, self.heads, self.head_dim])?;
        check_rotary(self.rotary_dim, self.head_dim)?;
        dtype_in("x", self.dtype, DType::FLOATS)?;
        dtype_in("positions", self.pos_dtype, DType::INDICES)?;
        let mut t = Implied::new();
        let x = [self.tokens, self.heads, self.head_dim];
        t.contiguous("x", self.dtype, &x)?;
        if !self.in_place {
            t.contiguous("out", self.dtype, &x)?;
        }
        t.contiguous("positions", self.pos_dtype, &[self.tokens])?;
        Ok(t)
    }

    /// The invariants [`RopeArgs::validate`] enforces (see [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }
}

/// The tensor `rope` reads and the tensor it writes: one tensor in place, or two apart.
#[derive(Debug)]
pub enum RopeInput<'a> {
    /// `x [T, heads, head_dim]`, rotated where it is: read and written through this one view.
    InPlace(TensorViewMut<'a>),
    /// `x` is read and `out` written; they must not overlap.
    OutOfPlace {
        /// Input `[T, heads, head_dim]`.
        x: TensorView<'a>,
        /// Output, `x`'s shape and dtype.
        out: TensorViewMut<'a>,
    },
}

impl<'a> RopeInput<'a> {
    /// True for [`RopeInput::InPlace`].
    pub fn is_in_place(&self) -> bool {
        matches!(self, RopeInput::InPlace(_))
    }

    /// The tensor read. In place it is borrowed from the one writable view, so no `&mut`
    /// access to it can be made while it lives.
    pub fn x(&self) -> TensorView<'_> {
        match self {
            RopeInput::InPlace(v) => v.as_view(),
            RopeInput::OutOfPlace { x, .. } => *x,
        }
    }

    /// The tensor written (in place, the same view as [`RopeInput::x`]).
    pub fn out(&self) -> &TensorViewMut<'a> {
        match self {
            RopeInput::InPlace(v) | RopeInput::OutOfPlace { out: v, .. } => v,
        }
    }

    /// The tensor written, writable.
    pub fn out_mut(&mut self) -> &mut TensorViewMut<'a> {
        match self {
            RopeInput::InPlace(v) | RopeInput::OutOfPlace { out: v, .. } => v,
        }
    }

    /// The addresses a kernel reads `x` from and writes `out` to, equal in place. Raw pointers
    /// make no claim of exclusivity; a kernel that receives equal ones must read each element
    /// before it writes it.
    pub fn ptrs(&mut self) -> (*const c_void, *mut c_void) {
        match self {
            RopeInput::InPlace(v) => {
                let p = v.as_mut_ptr();
                (p.cast_const(), p)
            }
            RopeInput::OutOfPlace { x, out } => (x.as_ptr(), out.as_mut_ptr()),
        }
    }
}

/// Arguments of `rope`.
#[derive(Debug)]
pub struct RopeArgs<'a> {
    /// The tensor read and the tensor written (one tensor in place).
    pub input: RopeInput<'a>,
    /// Positions `[T]`, i32 or i64.
    pub positions: TensorView<'a>,
    /// Rotated features per head.
    pub rotary_dim: usize,
    /// Pairing style.
    pub style: RopeStyle,
    /// Base of the frequencies (default 10000); finite and greater than zero.
    pub theta: f32,
}

impl<'a> RopeArgs<'a> {
    /// Arguments for `input`, full rotary dim (the last dimension of `x`), NeoX style, theta
    /// 10000.
    pub fn with_input(input: RopeInput<'a>, positions: TensorView<'a>) -> Self {
        let rotary_dim = input.out().shape().last().copied().unwrap_or(0);
        RopeArgs {
            input,
            positions,
            rotary_dim,
            style: RopeStyle::Neox,
            theta: DEFAULT_THETA,
        }
    }

    /// Out-of-place arguments ([`RopeInput::OutOfPlace`]): `out` must not overlap `x`.
    pub fn new(x: TensorView<'a>, positions: TensorView<'a>, out: TensorViewMut<'a>) -> Self {
        RopeArgs::with_input(RopeInput::OutOfPlace { x, out }, positions)
    }

    /// In-place arguments ([`RopeInput::InPlace`]): `x` is rotated where it is.
    pub fn in_place(x: TensorViewMut<'a>, positions: TensorView<'a>) -> Self {
        RopeArgs::with_input(RopeInput::InPlace(x), positions)
    }

    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(RopeProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let layout = "[tokens, heads, head_dim]";
        let (x, out) = match &self.input {
            RopeInput::InPlace(x) => (x.as_view(), None),
            RopeInput::OutOfPlace { x, out } => (*x, Some(out)),
        };
        let s = ck.contiguous("x", &x, 3, layout, DType::FLOATS)?;
        let (tokens, heads, head_dim) = (s[0], s[1], s[2]);
        let p = ck.contiguous("positions", &self.positions, 1, "[tokens]", DType::INDICES)?;
        dim(
            "positions",
            "tokens",
            p[0],
            tokens,
            "one position per token",
        )?;
        match out {
            // In place, the tensor written is `x`: only the positions may not overlap it.
            None => no_alias("x", &x, "positions", &self.positions)?,
            Some(out) => {
                let o = ck.contiguous("out", out, 3, layout, DType::FLOATS)?;
                same_dtype("out", out, x.dtype())?;
                for (i, name) in ["tokens", "heads", "head_dim"].into_iter().enumerate() {
                    dim("out", name, o[i], s[i], "out has the shape of x")?;
                }
                no_alias("out", out, "x", &x).map_err(|_| ValidationError::Aliasing {
                    output: "out",
                    input: "x",
                    allowed: "out of place, out must not overlap x; to rotate x where it is, \
                              pass one view as RopeInput::InPlace (RopeArgs::in_place)",
                })?;
                no_alias("out", out, "positions", &self.positions)?;
            }
        }
        check_rotary(self.rotary_dim, head_dim)?;
        finite("theta", self.theta, true)?;
        let p = RopeProblem {
            tokens,
            heads,
            head_dim,
            rotary_dim: self.rotary_dim,
            style: self.style,
            dtype: x.dtype(),
            pos_dtype: self.positions.dtype(),
            in_place: self.input.is_in_place(),
            align: ck.align(),
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// The `rope` operator's descriptor.
pub struct Rope;

impl Op for Rope {
    const KIND: OpKind = OpKind::Rope;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[ScalarKey {
        name: "theta",
        default: Some("10000"),
        help: "base of the frequencies",
    }];
    const EXAMPLE: Example = Example {
        params: "tokens=128,heads=32,head_dim=128",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["tokens"];
    const BUCKETED: &'static [&'static str] = &["tokens", "heads"];
    type Problem = RopeProblem;
    type Args<'a> = RopeArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<RopeProblem, Error> {
        RopeProblem::from_params(params, dtype)
    }

    fn check_problem(p: &RopeProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(args: &RopeArgs<'_>) -> Result<(RopeProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `2*tokens*heads*head_dim*elem` bytes (x read, out written).
    fn work(p: &RopeProblem) -> Work {
        Work::Bytes(
            2.0 * p.tokens as f64 * p.heads as f64 * p.head_dim as f64 * p.dtype.size() as f64,
        )
    }

    /// `[tokens, heads, head_dim]`.
    fn shape(p: &RopeProblem) -> Vec<usize> {
        vec![p.tokens, p.heads, p.head_dim]
    }
}
