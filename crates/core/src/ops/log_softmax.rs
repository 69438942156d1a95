//! `log_softmax`: `y[r, :] = x[r, :] - max - log(sum(exp(x[r, :] - max)))` over the last
//! dimension.
//!
//! Same shapes, dtypes and rules as [`softmax`](crate::ops::softmax).

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::params::{ParamKey, Params};
use crate::ops::softmax::RowsProblem;
use crate::ops::{Example, Op, OpKind, ScalarKey, Work};
use crate::tensor::{TensorView, TensorViewMut};

/// A `log_softmax` problem.
pub type LogSoftmaxProblem = RowsProblem;

/// Keys of `--problem` for `log_softmax` (the same as `softmax`).
pub const PARAMS: &[ParamKey] = crate::ops::softmax::PARAMS;

/// Builds a `log_softmax` problem from `--problem rows=..,cols=..`.
pub fn problem_from_params(params: &Params, dtype: DType) -> Result<LogSoftmaxProblem, Error> {
    RowsProblem::from_params_for(OpKind::LogSoftmax, params, dtype)
}

/// Arguments of `log_softmax`.
#[derive(Debug)]
pub struct LogSoftmaxArgs<'a> {
    /// Input `[rows, cols]`.
    pub x: TensorView<'a>,
    /// Output `[rows, cols]`, same dtype.
    pub out: TensorViewMut<'a>,
}

impl LogSoftmaxArgs<'_> {
    /// Validates the arguments into a problem and their device.
    pub fn validate(&self) -> Result<(LogSoftmaxProblem, DeviceId), ValidationError> {
        RowsProblem::validate_rows(&self.x, &self.out)
    }
}

/// The `log_softmax` operator's descriptor.
pub struct LogSoftmax;

impl Op for LogSoftmax {
    const KIND: OpKind = OpKind::LogSoftmax;
    const PARAMS: &'static [ParamKey] = PARAMS;
    const SCALARS: &'static [ScalarKey] = &[];
    const EXAMPLE: Example = Example {
        params: "rows=128,cols=4096",
        dtype: DType::BF16,
    };
    const BATCH_FIELDS: &'static [&'static str] = &["rows"];
    const BUCKETED: &'static [&'static str] = &["rows", "cols"];
    type Problem = RowsProblem;
    type Args<'a> = LogSoftmaxArgs<'a>;

    fn from_params(params: &Params, dtype: DType) -> Result<RowsProblem, Error> {
        RowsProblem::from_params_for(OpKind::LogSoftmax, params, dtype)
    }

    fn check_problem(p: &RowsProblem) -> Result<(), ValidationError> {
        p.check()
    }

    fn validate(args: &LogSoftmaxArgs<'_>) -> Result<(RowsProblem, DeviceId), ValidationError> {
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
