//! `rope`: rotary position embedding over the first `rotary_dim` features of each head.
//!
//! `x [T, heads, head_dim]` (f32/f16/bf16, contiguous), `positions [T]` (i32/i64), `out` of
//! `x`'s shape and dtype. `inv_freq[i] = theta^(-2i / rotary_dim)` for `i < rotary_dim / 2`,
//! angle `= position * inv_freq[i]`. NeoX style rotates the pairs `(j, j + rotary_dim/2)`;
//! GPT-J style rotates the interleaved pairs `(2i, 2i + 1)`:
//! `(a, b) -> (a cos - b sin, b cos + a sin)`. Features at and beyond `rotary_dim` are copied
//! unchanged. `out` may be exactly `x` (in place, see [`RopeArgs::in_place`]); any other
//! overlap is an error.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{dim, finite, no_alias, same_dtype, same_tensor, Checker, MAX_ALIGN};
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
    /// `out` is `x`.
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
    if rotary_dim == 0 || rotary_dim % 2 != 0 || rotary_dim > head_dim {
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
        let p = RopeProblem {
            tokens: r.usize("tokens")?,
            heads: r.usize("heads")?,
            head_dim,
            rotary_dim,
            style,
            dtype,
            pos_dtype: r.dtype("pos_dtype", DType::I64)?,
            in_place: r.flag("in_place")?,
            align: r.usize("align")?.min(MAX_ALIGN),
        };
        if [p.tokens, p.heads, p.head_dim].contains(&0) {
            return Err(ValidationError::ZeroSized {
                arg: "problem",
                shape: vec![p.tokens, p.heads, p.head_dim],
            }
            .into());
        }
        check_rotary(rotary_dim, head_dim)?;
        for (arg, got, allowed) in [
            ("x", dtype, DType::FLOATS),
            ("positions", p.pos_dtype, DType::INDICES),
        ] {
            if !allowed.contains(&got) {
                return Err(ValidationError::DtypeNotAllowed { arg, got, allowed }.into());
            }
        }
        Ok(p)
    }
}

/// Arguments of `rope`.
#[derive(Debug)]
pub struct RopeArgs<'a> {
    /// Input `[T, heads, head_dim]`.
    pub x: TensorView<'a>,
    /// Positions `[T]`, i32 or i64.
    pub positions: TensorView<'a>,
    /// Output, `x`'s shape and dtype; may be exactly `x`.
    pub out: TensorViewMut<'a>,
    /// Rotated features per head.
    pub rotary_dim: usize,
    /// Pairing style.
    pub style: RopeStyle,
    /// Base of the frequencies (default 10000); finite and greater than zero.
    pub theta: f32,
}

impl<'a> RopeArgs<'a> {
    /// Out-of-place arguments, full rotary dim, NeoX style, theta 10000.
    pub fn new(x: TensorView<'a>, positions: TensorView<'a>, out: TensorViewMut<'a>) -> Self {
        let rotary_dim = x.shape().last().copied().unwrap_or(0);
        RopeArgs {
            x,
            positions,
            out,
            rotary_dim,
            style: RopeStyle::Neox,
            theta: DEFAULT_THETA,
        }
    }

    /// In-place arguments: `x` is rotated where it is.
    pub fn in_place(x: TensorViewMut<'a>, positions: TensorView<'a>) -> Self {
        // SAFETY: the alias reads exactly the memory `x` borrows for `'a`. Kernels read it only
        // through raw pointers or after checking `RopeProblem::in_place`, never as a slice
        // alongside a mutable slice of `out`.
        let alias = unsafe { x.aliasing_view() };
        RopeArgs::new(alias, positions, x)
    }

    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(RopeProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let s = ck.contiguous("x", &self.x, 3, "[tokens, heads, head_dim]", DType::FLOATS)?;
        let (tokens, heads, head_dim) = (s[0], s[1], s[2]);
        let p = ck.contiguous("positions", &self.positions, 1, "[tokens]", DType::INDICES)?;
        dim(
            "positions",
            "tokens",
            p[0],
            tokens,
            "one position per token",
        )?;
        let o = ck.contiguous(
            "out",
            &self.out,
            3,
            "[tokens, heads, head_dim]",
            DType::FLOATS,
        )?;
        same_dtype("out", &self.out, self.x.dtype())?;
        for (i, name) in ["tokens", "heads", "head_dim"].into_iter().enumerate() {
            dim("out", name, o[i], s[i], "out has the shape of x")?;
        }
        let in_place = same_tensor(&self.out, &self.x);
        if !in_place {
            no_alias("out", &self.out, "x", &self.x).map_err(|_| ValidationError::Aliasing {
                output: "out",
                input: "x",
                allowed: "rope runs in place only when out is exactly x (same pointer, shape and strides)",
            })?;
        }
        no_alias("out", &self.out, "positions", &self.positions)?;
        check_rotary(self.rotary_dim, head_dim)?;
        finite("theta", self.theta, true)?;
        Ok((
            RopeProblem {
                tokens,
                heads,
                head_dim,
                rotary_dim: self.rotary_dim,
                style: self.style,
                dtype: self.x.dtype(),
                pos_dtype: self.positions.dtype(),
                in_place,
                align: ck.align(),
            },
            ck.device(),
        ))
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
    type Problem = RopeProblem;
    type Args<'a> = RopeArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<RopeProblem, Error> {
        RopeProblem::from_params(params, dtype)
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
