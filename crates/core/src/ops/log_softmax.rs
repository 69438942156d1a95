//! `log_softmax`: `y[r, :] = x[r, :] - max - log(sum(exp(x[r, :] - max)))` over the last
//! dimension.
//!
//! Same shapes, dtypes and rules as [`softmax`](crate::ops::softmax).

use crate::device::DeviceId;
use crate::dtype::DType;
use crate::error::{Error, ValidationError};
use crate::ops::params::{ParamKey, Params};
use crate::ops::softmax::RowsProblem;
use crate::ops::OpKind;
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
