//! `ky_rms_norm`: `x [.., hidden]` (contiguous, any start offset) and `weight [hidden]` of the
//! same float dtype; the leading dimensions are the rows of kernelyard's `rms_norm`
//! (`x [rows, hidden]`). The result has `x`'s shape and dtype.

use kernelyard::ops::rms_norm::RmsNormArgs;
use kernelyard::{Args, Policy, TensorView, TensorViewMut};

use crate::error::Error;
use crate::operand::{
    float_dtype, product, require_contiguous, shape_error, Input, OpPlan, OutSpec, ViewSpec,
};
use crate::ops::KyOp;

/// `rms_norm` with `eps`.
pub(crate) struct RmsNorm<'p> {
    /// Added to the mean square.
    pub eps: f32,
    /// The policy.
    pub policy: &'p Policy,
}

impl KyOp<2> for RmsNorm<'_> {
    const NAME: &'static str = "ky_rms_norm";

    fn policy(&self) -> &Policy {
        self.policy
    }

    fn plan(&self, [x, w]: [Input<'_>; 2]) -> Result<OpPlan<2>, Error> {
        let op = Self::NAME;
        let dtype = float_dtype(op, "x", x.dtype)?;
        let wdtype = float_dtype(op, "weight", w.dtype)?;
        let Some((&hidden, lead)) = x.dims().split_last() else {
            return Err(shape_error(
                op,
                "x",
                &x,
                "x needs at least one dimension, [.., hidden]",
            ));
        };
        if w.dims().len() != 1 {
            return Err(shape_error(op, "weight", &w, "weight is [hidden]"));
        }
        let need = "x [.., hidden] and weight [hidden] must be contiguous";
        require_contiguous(op, "x", &x, need)?;
        require_contiguous(op, "weight", &w, need)?;
        let rows = product(lead);
        Ok(OpPlan {
            inputs: [
                ViewSpec::contiguous("x", dtype, vec![rows, hidden]),
                ViewSpec::contiguous("weight", wdtype, w.dims().to_vec()),
            ],
            out: OutSpec {
                dtype,
                view: vec![rows, hidden],
                shape: x.layout.shape().clone(),
            },
        })
    }

    fn args<'a>(
        &self,
        _: &OpPlan<2>,
        [x, w]: [Result<TensorView<'a>, Error>; 2],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        Ok(Args::RmsNorm(RmsNormArgs::new(x?, w?, out, self.eps)))
    }
}
