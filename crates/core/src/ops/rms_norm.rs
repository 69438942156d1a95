//! `rms_norm`: `y = x / sqrt(mean(x^2) + eps) * weight`, row by row, with an optional fused
//! residual add.
//!
//! `x [rows, hidden]`, `weight [hidden]`, `out [rows, hidden]`, one float dtype, contiguous.
//! With a residual, `x' = x + residual` is computed first, rounded to the dtype and written to
//! `residual_out`, and `y` is the norm of that stored `x'` (so `y` and `residual_out` agree).
//! Outputs must not overlap inputs or each other.

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{dim, dtype_in, finite, no_alias, nonzero, same_dtype, Checker, Implied};
use crate::ops::params::{ParamKey, Params};
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// An `rms_norm` problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RmsNormProblem {
    /// Rows.
    pub rows: usize,
    /// Hidden size (the normalised dimension).
    pub hidden: usize,
    /// dtype of every tensor.
    pub dtype: DType,
    /// The fused residual variant: `x + residual` is normalised and written out.
    pub residual: bool,
    /// Least alignment of pointers and row strides, bytes (capped at 16).
    pub align: usize,
}

/// Keys of `--problem` for `rms_norm`.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "rows",
        default: None,
        help: "rows",
    },
    ParamKey {
        key: "hidden",
        default: None,
        help: "hidden size",
    },
    ParamKey {
        key: "residual",
        default: Some("0"),
        help: "fused residual add",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
];

impl RmsNormProblem {
    /// A problem from `--problem` keys.
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(OpKind::RmsNorm);
        r.check_keys()?;
        let mut p = RmsNormProblem {
            rows: r.usize("rows")?,
            hidden: r.usize("hidden")?,
            dtype,
            residual: r.flag("residual")?,
            align: r.usize("align")?,
        };
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// `x`, `weight`, `out` and, with the residual, `residual` and `residual_out`.
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[self.rows, self.hidden])?;
        dtype_in("x", self.dtype, DType::FLOATS)?;
        let (rh, mut t) = ([self.rows, self.hidden], Implied::new());
        t.contiguous("x", self.dtype, &rh)?;
        t.contiguous("weight", self.dtype, &[self.hidden])?;
        t.contiguous("out", self.dtype, &rh)?;
        if self.residual {
            t.contiguous("residual", self.dtype, &rh)?;
            t.contiguous("residual_out", self.dtype, &rh)?;
        }
        Ok(t)
    }

    /// The invariants [`RmsNormArgs::validate`] enforces (see [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }
}

/// Arguments of `rms_norm`.
#[derive(Debug)]
pub struct RmsNormArgs<'a> {
    /// Input `[rows, hidden]`.
    pub x: TensorView<'a>,
    /// Scale `[hidden]`, same dtype.
    pub weight: TensorView<'a>,
    /// Optional residual `[rows, hidden]` added to `x` first; needs `residual_out`.
    pub residual: Option<TensorView<'a>>,
    /// Output `[rows, hidden]`.
    pub out: TensorViewMut<'a>,
    /// Where `x + residual` is written, `[rows, hidden]`; needs `residual`.
    pub residual_out: Option<TensorViewMut<'a>>,
    /// Added to the mean square; finite and non-negative.
    pub eps: f32,
}

impl<'a> RmsNormArgs<'a> {
    /// Plain RMSNorm arguments.
    pub fn new(
        x: TensorView<'a>,
        weight: TensorView<'a>,
        out: TensorViewMut<'a>,
        eps: f32,
    ) -> Self {
        RmsNormArgs {
            x,
            weight,
            residual: None,
            out,
            residual_out: None,
            eps,
        }
    }

    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(RmsNormProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let s = ck.contiguous("x", &self.x, 2, "[rows, hidden]", DType::FLOATS)?;
        let (rows, hidden) = (s[0], s[1]);
        let dtype = self.x.dtype();
        let w = ck.contiguous("weight", &self.weight, 1, "[hidden]", DType::FLOATS)?;
        same_dtype("weight", &self.weight, dtype)?;
        dim(
            "weight",
            "hidden",
            w[0],
            hidden,
            "weight has one entry per column of x",
        )?;
        let o = ck.contiguous("out", &self.out, 2, "[rows, hidden]", DType::FLOATS)?;
        same_dtype("out", &self.out, dtype)?;
        dim("out", "rows", o[0], rows, "out has the shape of x")?;
        dim("out", "hidden", o[1], hidden, "out has the shape of x")?;
        no_alias("out", &self.out, "x", &self.x)?;
        no_alias("out", &self.out, "weight", &self.weight)?;
        match (&self.residual, &self.residual_out) {
            (None, None) => {}
            (Some(res), Some(res_out)) => {
                for (arg, v) in [
                    ("residual", res as &dyn crate::ops::check::ViewMeta),
                    ("residual_out", res_out),
                ] {
                    let rs = ck.contiguous(arg, v, 2, "[rows, hidden]", DType::FLOATS)?;
                    same_dtype(arg, v, dtype)?;
                    dim(arg, "rows", rs[0], rows, "it has the shape of x")?;
                    dim(arg, "hidden", rs[1], hidden, "it has the shape of x")?;
                }
                no_alias("out", &self.out, "residual", res)?;
                no_alias("residual_out", res_out, "x", &self.x)?;
                no_alias("residual_out", res_out, "residual", res)?;
                no_alias("residual_out", res_out, "weight", &self.weight)?;
                no_alias("residual_out", res_out, "out", &self.out)?;
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(ValidationError::Param {
                    param: "residual",
                    value: "one of residual / residual_out".into(),
                    why: "the fused residual variant needs both `residual` and `residual_out`",
                })
            }
        }
        finite("eps", self.eps, false)?;
        if self.eps < 0.0 {
            return Err(ValidationError::Param {
                param: "eps",
                value: self.eps.to_string(),
                why: "must be non-negative",
            });
        }
        let p = RmsNormProblem {
            rows,
            hidden,
            dtype,
            residual: self.residual.is_some(),
            align: ck.align(),
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// The `rms_norm` operator's descriptor.
pub struct RmsNorm;

impl Op for RmsNorm {
    const KIND: OpKind = OpKind::RmsNorm;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[ScalarKey {
        name: "eps",
        default: Some("1e-6"),
        help: "added to the mean square",
    }];
    const EXAMPLE: Example = Example {
        params: "rows=128,hidden=4096",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["rows"];
    const BUCKETED: &'static [&'static str] = &["rows", "hidden"];
    type Problem = RmsNormProblem;
    type Args<'a> = RmsNormArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<RmsNormProblem, Error> {
        RmsNormProblem::from_params(params, dtype)
    }

    fn check_problem(p: &RmsNormProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(args: &RmsNormArgs<'_>) -> Result<(RmsNormProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `2*rows*hidden*elem` bytes (x read, y written); with the residual, `4*` (x and the
    /// residual read, y and residual_out written).
    fn work(p: &RmsNormProblem) -> Work {
        let tensors = if p.residual { 4.0 } else { 2.0 };
        Work::Bytes(tensors * p.rows as f64 * p.hidden as f64 * p.dtype.size() as f64)
    }

    /// `[rows, hidden]`.
    fn shape(p: &RmsNormProblem) -> Vec<usize> {
        vec![p.rows, p.hidden]
    }
}
