//! `softmax`: `y[r, :] = exp(x[r, :] - max) / sum(exp(x[r, :] - max))` over the last dimension.
//!
//! `x` and `y` are `[rows, cols]`, contiguous, of one float dtype; math in f32 (or better).
//! `y` must not overlap `x`.

use serde::{Deserialize, Serialize};

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::check::{dim, dtype_in, no_alias, nonzero, same_dtype, Checker, Implied};
use crate::ops::params::{ParamKey, Params};
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// The shape of a row-wise problem: `[rows, cols]` of one float dtype.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RowsProblem {
    /// Rows (independent reductions).
    pub rows: usize,
    /// Columns (the reduced dimension).
    pub cols: usize,
    /// dtype of input and output.
    pub dtype: DType,
    /// Least alignment of pointers and row strides, bytes (capped at 16).
    pub align: usize,
}

/// A `softmax` problem.
pub type SoftmaxProblem = RowsProblem;

/// Keys of `--problem` for row-wise operators.
pub const PARAMS: &[ParamKey] = &[
    ParamKey {
        key: "rows",
        default: None,
        help: "rows",
    },
    ParamKey {
        key: "cols",
        default: None,
        help: "columns (the reduced dimension)",
    },
    ParamKey {
        key: "align",
        default: Some("16"),
        help: "pointer alignment in bytes",
    },
];

impl RowsProblem {
    /// A problem from `--problem rows=..,cols=..`.
    pub fn from_params_for(op: OpKind, params: &Params, dtype: DType) -> Result<Self, Error> {
        let r = params.reader(op);
        r.check_keys()?;
        let mut p = RowsProblem {
            rows: r.usize("rows")?,
            cols: r.usize("cols")?,
            dtype,
            align: r.usize("align")?,
        };
        p.align = p.implied()?.align_param(p.align)?;
        p.check()?;
        Ok(p)
    }

    /// A problem from `--problem rows=..,cols=..` (for `softmax`).
    pub fn from_params(params: &Params, dtype: DType) -> Result<Self, Error> {
        Self::from_params_for(OpKind::Softmax, params, dtype)
    }

    /// `x` and `out`, `[rows, cols]` of one float dtype.
    fn implied(&self) -> Result<Implied, ValidationError> {
        nonzero(&[self.rows, self.cols])?;
        dtype_in("x", self.dtype, DType::FLOATS)?;
        let mut t = Implied::new();
        t.contiguous("x", self.dtype, &[self.rows, self.cols])?;
        t.contiguous("out", self.dtype, &[self.rows, self.cols])?;
        Ok(t)
    }

    /// The invariants [`RowsProblem::validate_rows`] enforces (see
    /// [`Op::check_problem`]).
    pub fn check(&self) -> Result<(), ValidationError> {
        self.implied()?.check_align(self.align)
    }

    /// Validates `x [rows, cols]` and `y` of the same shape and dtype.
    pub fn validate_rows(
        x: &TensorView<'_>,
        y: &TensorViewMut<'_>,
    ) -> Result<(RowsProblem, DeviceId), ValidationError> {
        let mut ck = Checker::new();
        let s = ck.contiguous("x", x, 2, "[rows, cols]", DType::FLOATS)?;
        let (rows, cols) = (s[0], s[1]);
        let ys = ck.contiguous("out", y, 2, "[rows, cols]", DType::FLOATS)?;
        same_dtype("out", y, x.dtype())?;
        dim("out", "rows", ys[0], rows, "out must have the shape of x")?;
        dim("out", "cols", ys[1], cols, "out must have the shape of x")?;
        no_alias("out", y, "x", x)?;
        let p = RowsProblem {
            rows,
            cols,
            dtype: x.dtype(),
            align: ck.align(),
        };
        p.check()?;
        Ok((p, ck.device()))
    }
}

/// Arguments of `softmax`.
#[derive(Debug)]
pub struct SoftmaxArgs<'a> {
    /// Input `[rows, cols]`.
    pub x: TensorView<'a>,
    /// Output `[rows, cols]`, same dtype.
    pub out: TensorViewMut<'a>,
}

impl SoftmaxArgs<'_> {
    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(SoftmaxProblem, DeviceId), ValidationError> {
        RowsProblem::validate_rows(&self.x, &self.out)
    }
}

/// The `softmax` operator's descriptor.
pub struct Softmax;

impl Op for Softmax {
    const KIND: OpKind = OpKind::Softmax;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[];
    const EXAMPLE: Example = Example {
        params: "rows=128,cols=4096",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["rows"];
    const BUCKETED: &'static [&'static str] = &["rows", "cols"];
    type Problem = RowsProblem;
    type Args<'a> = SoftmaxArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<RowsProblem, Error> {
        RowsProblem::from_params_for(OpKind::Softmax, params, dtype)
    }

    fn check_problem(p: &RowsProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(args: &SoftmaxArgs<'_>) -> Result<(RowsProblem, DeviceId), ValidationError> {
        args.validate()
    }

    /// `2*rows*cols*elem` bytes (x read, y written).
    fn work(p: &RowsProblem) -> Work {
        crate::ops::softmax::rows_work(p)
    }

    /// `[rows, cols]`.
    fn shape(p: &RowsProblem) -> Vec<usize> {
        vec![p.rows, p.cols]
    }
}

/// The work of a row-wise problem: `2*rows*cols*elem` bytes (x read, y written).
pub(crate) fn rows_work(p: &RowsProblem) -> Work {
    Work::Bytes(2.0 * p.rows as f64 * p.cols as f64 * p.dtype.size() as f64)
}
