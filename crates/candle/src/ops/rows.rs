//! `ky_softmax` and `ky_log_softmax`: over the last dimension of `x [.., cols]` (contiguous,
//! any start offset; the leading dimensions are kernelyard's rows). The result has `x`'s shape
//! and dtype.

use kernelyard::ops::log_softmax::LogSoftmaxArgs;
use kernelyard::ops::softmax::SoftmaxArgs;
use kernelyard::{Args, Policy, TensorView, TensorViewMut};

use crate::error::Error;
use crate::operand::{
    float_dtype, product, require_contiguous, shape_error, Input, OpPlan, OutSpec, ViewSpec,
};
use crate::ops::KyOp;

/// The views of `x [.., cols]` as `[rows, cols]`, for `op`.
fn rows_plan(op: &'static str, x: Input<'_>) -> Result<OpPlan<1>, Error> {
    let dtype = float_dtype(op, "x", x.dtype)?;
    let Some((&cols, lead)) = x.dims().split_last() else {
        return Err(shape_error(
            op,
            "x",
            &x,
            "x needs at least one dimension, [.., cols]",
        ));
    };
    require_contiguous(op, "x", &x, "x [.., cols] must be contiguous")?;
    let view = vec![product(lead), cols];
    Ok(OpPlan {
        inputs: [ViewSpec::contiguous("x", dtype, view.clone())],
        out: OutSpec {
            dtype,
            view,
            shape: x.layout.shape().clone(),
        },
    })
}

/// `softmax` over the last dimension.
pub(crate) struct Softmax<'p>(pub &'p Policy);

impl KyOp<1> for Softmax<'_> {
    const NAME: &'static str = "ky_softmax";

    fn policy(&self) -> &Policy {
        self.0
    }

    fn plan(&self, [x]: [Input<'_>; 1]) -> Result<OpPlan<1>, Error> {
        rows_plan(Self::NAME, x)
    }

    fn args<'a>(
        &self,
        _: &OpPlan<1>,
        [x]: [Result<TensorView<'a>, Error>; 1],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        Ok(Args::Softmax(SoftmaxArgs { x: x?, out }))
    }
}

/// `log_softmax` over the last dimension.
pub(crate) struct LogSoftmax<'p>(pub &'p Policy);

impl KyOp<1> for LogSoftmax<'_> {
    const NAME: &'static str = "ky_log_softmax";

    fn policy(&self) -> &Policy {
        self.0
    }

    fn plan(&self, [x]: [Input<'_>; 1]) -> Result<OpPlan<1>, Error> {
        rows_plan(Self::NAME, x)
    }

    fn args<'a>(
        &self,
        _: &OpPlan<1>,
        [x]: [Result<TensorView<'a>, Error>; 1],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        Ok(Args::LogSoftmax(LogSoftmaxArgs { x: x?, out }))
    }
}
