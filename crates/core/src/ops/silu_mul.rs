//! `silu_mul`: the SwiGLU activation of Llama-style MLPs, `out[r, j] = silu(gate[r, j]) *
//! up[r, j]` with `silu(g) = g / (1 + exp(-g))`.
//!
//! Two input forms: fused, `x [rows, 2*d]` with `gate = x[:, :d]` and `up = x[:, d:]` (the
//! output of one up-projection GEMM); or split, `gate [rows, d]` and `up [rows, d]` as two
//! tensors. `out` is `[rows, d]`. Every tensor is contiguous and of one float dtype; math is in
//! f32 (or better), rounded once to the dtype. `out` must not overlap an input.
//!
//! The problem's `align` also counts the byte offset of `up` inside a fused row (`d * size`),
//! since kernels address the second half of the row as a pointer of its own.

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{dim, dtype_in, no_alias, nonzero, same_dtype, Checker, Implied};
use crate::ops::params::{ParamKey, Params};
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// A `silu_mul` problem.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SiluMulProblem {
    /// Rows (tokens).
    pub rows: usize,
    /// Columns of the output (the MLP's intermediate size); the fused input has `2 * d`.
    pub d: usize,
    /// dtype of every tensor.
    pub dtype: DType,
    /// Gate and up are two tensors (`false`: one fused `[rows, 2*d]` tensor).
    pub split: bool,
    /// Least alignment of pointers, row strides and the fused `up` offset, bytes (capped at 16).
    pub align: usize,
}

/// Keys of `--problem` for `silu_mul`.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "rows",
        default: None,
        help: "rows (tokens)",
    },
    ParamKey {
        key: "d",
        default: None,
        help: "output columns (the input has 2*d)",
    },
    ParamKey {
        key: "split",
        default: Some("0"),
        help: "gate and up as two [rows, d] tensors",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
];

impl SiluMulProblem {
    /// A problem from `--problem` keys, with the invariants [`SiluMulArgs::validate`] enforces
    /// ([`SiluMulProblem::check`]).
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(OpKind::SiluMul);
        r.check_keys()?;
        let mut p = SiluMulProblem {
            rows: r.usize("rows")?,
            d: r.usize("d")?,
            dtype,
            split: r.flag("split")?,
            align: r.usize("align")?,
        };
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// The fused `x [rows, 2*d]` (with `up` at the byte offset `d * size`) or `gate` and `up
    /// [rows, d]`, then `out [rows, d]`.
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[self.rows, self.d])?;
        dtype_in("x", self.dtype, DType::FLOATS)?;
        let mut t = Implied::new();
        if self.split {
            t.contiguous("gate", self.dtype, &[self.rows, self.d])?;
            t.contiguous("up", self.dtype, &[self.rows, self.d])?;
        } else {
            let fused = self
                .d
                .checked_mul(2)
                .ok_or_else(|| ValidationError::Overflow {
                    arg: "x",
                    what: format!("the fused row length 2 * {}", self.d),
                })?;
            t.contiguous("x", self.dtype, &[self.rows, fused])?;
            t.offset(self.d, self.dtype.size());
        }
        t.contiguous("out", self.dtype, &[self.rows, self.d])?;
        Ok(t)
    }

    /// The invariants [`SiluMulArgs::validate`] enforces (see [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }
}

/// The input of `silu_mul`: one fused tensor or gate and up apart.
#[derive(Debug)]
pub enum SiluMulInput<'a> {
    /// `x [rows, 2*d]`: gate is `x[:, :d]`, up is `x[:, d:]`.
    Fused(TensorView<'a>),
    /// `gate [rows, d]` and `up [rows, d]`.
    Split {
        /// The gate (the silu argument).
        gate: TensorView<'a>,
        /// The up projection (the multiplier).
        up: TensorView<'a>,
    },
}

/// Arguments of `silu_mul`.
#[derive(Debug)]
pub struct SiluMulArgs<'a> {
    /// The input.
    pub input: SiluMulInput<'a>,
    /// Output `[rows, d]`, same dtype.
    pub out: TensorViewMut<'a>,
}

impl SiluMulArgs<'_> {
    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(SiluMulProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let (rows, d, dtype, split) = match &self.input {
            SiluMulInput::Fused(x) => {
                let s = ck.contiguous("x", x, 2, "[rows, 2*d]", DType::FLOATS)?;
                if s[1] % 2 != 0 {
                    return Err(ValidationError::Param {
                        param: "x",
                        value: format!("{:?}", s),
                        why: "the fused input's last dimension is 2*d (gate then up): it must be even",
                    });
                }
                let d = s[1] / 2;
                ck.offset(d * x.dtype().size());
                (s[0], d, x.dtype(), false)
            }
            SiluMulInput::Split { gate, up } => {
                let g = ck.contiguous("gate", gate, 2, "[rows, d]", DType::FLOATS)?;
                let u = ck.contiguous("up", up, 2, "[rows, d]", DType::FLOATS)?;
                same_dtype("up", up, gate.dtype())?;
                dim("up", "rows", u[0], g[0], "up has the shape of gate")?;
                dim("up", "d", u[1], g[1], "up has the shape of gate")?;
                (g[0], g[1], gate.dtype(), true)
            }
        };
        let o = ck.contiguous("out", &self.out, 2, "[rows, d]", DType::FLOATS)?;
        same_dtype("out", &self.out, dtype)?;
        dim("out", "rows", o[0], rows, "out has one row per input row")?;
        dim(
            "out",
            "d",
            o[1],
            d,
            "out has d columns (half the fused input's)",
        )?;
        match &self.input {
            SiluMulInput::Fused(x) => no_alias("out", &self.out, "x", x)?,
            SiluMulInput::Split { gate, up } => {
                no_alias("out", &self.out, "gate", gate)?;
                no_alias("out", &self.out, "up", up)?;
            }
        }
        let p = SiluMulProblem {
            rows,
            d,
            dtype,
            split,
            align: ck.align(),
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// The `silu_mul` operator's descriptor.
pub struct SiluMul;

impl Op for SiluMul {
    const KIND: OpKind = OpKind::SiluMul;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[];
    const EXAMPLE: Example = Example {
        params: "rows=128,d=14336",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["rows"];
    const BUCKETED: &'static [&'static str] = &["rows", "d"];
    type Problem = SiluMulProblem;
    type Args<'a> = SiluMulArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<SiluMulProblem, Error> {
        SiluMulProblem::from_params(params, dtype)
    }

    fn check_problem(p: &SiluMulProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(args: &SiluMulArgs<'_>) -> Result<(SiluMulProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `3*rows*d*elem` bytes (gate and up read, out written).
    fn work(p: &SiluMulProblem) -> Work {
        Work::Bytes(3.0 * p.rows as f64 * p.d as f64 * p.dtype.size() as f64)
    }

    /// `[rows, d]`.
    fn shape(p: &SiluMulProblem) -> Vec<usize> {
        vec![p.rows, p.d]
    }

    /// `split` for gate and up as two tensors (the torch peer times the fused form only, so a
    /// split row never joins its rows); `None` for the fused form.
    fn layout(p: &SiluMulProblem) -> Option<&'static str> {
        p.split.then_some("split")
    }
}
