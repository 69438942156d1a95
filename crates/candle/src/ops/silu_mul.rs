//! `ky_silu_mul` and `ky_silu_mul_split`: `silu(gate) * up`.
//!
//! Fused: `x [.., 2*d]` (contiguous, any start offset), gate the first `d` columns of each row
//! and up the last `d` (the output of one gate-and-up projection), result `[.., d]`. Split:
//! `gate [.., d]` and `up [.., d]`, both contiguous, result `[.., d]`. The leading dimensions
//! are kernelyard's rows; the result has the input's dtype.

use candle_core::Shape;
use kernelyard::ops::silu_mul::{SiluMulArgs, SiluMulInput};
use kernelyard::{Args, Policy, TensorView, TensorViewMut};

use crate::error::Error;
use crate::operand::{
    float_dtype, product, require_contiguous, shape_error, Input, OpPlan, OutSpec, ViewSpec,
};
use crate::ops::KyOp;

/// `[.., d]` from `dims` with the last dimension replaced.
fn with_last(dims: &[usize], last: usize) -> Shape {
    let mut v = dims.to_vec();
    if let Some(l) = v.last_mut() {
        *l = last;
    }
    Shape::from(v)
}

/// The fused form: `x [.., 2*d]`.
pub(crate) struct SiluMulFused<'p>(pub &'p Policy);

impl KyOp<1> for SiluMulFused<'_> {
    const NAME: &'static str = "ky_silu_mul";

    fn policy(&self) -> &Policy {
        self.0
    }

    fn plan(&self, [x]: [Input<'_>; 1]) -> Result<OpPlan<1>, Error> {
        let op = Self::NAME;
        let dtype = float_dtype(op, "x", x.dtype)?;
        let Some((&two_d, lead)) = x.dims().split_last() else {
            return Err(shape_error(
                op,
                "x",
                &x,
                "x needs at least one dimension, [.., 2*d]",
            ));
        };
        if two_d % 2 != 0 {
            return Err(shape_error(
                op,
                "x",
                &x,
                "the last dimension is 2*d (gate then up): it must be even",
            ));
        }
        require_contiguous(op, "x", &x, "x [.., 2*d] must be contiguous")?;
        let rows = product(lead);
        let d = two_d / 2;
        Ok(OpPlan {
            inputs: [ViewSpec::contiguous("x", dtype, vec![rows, two_d])],
            out: OutSpec {
                dtype,
                view: vec![rows, d],
                shape: with_last(x.dims(), d),
            },
        })
    }

    fn args<'a>(
        &self,
        _: &OpPlan<1>,
        [x]: [Result<TensorView<'a>, Error>; 1],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        Ok(Args::SiluMul(SiluMulArgs {
            input: SiluMulInput::Fused(x?),
            out,
        }))
    }
}

/// The split form: `gate [.., d]` and `up [.., d]`.
pub(crate) struct SiluMulSplit<'p>(pub &'p Policy);

impl KyOp<2> for SiluMulSplit<'_> {
    const NAME: &'static str = "ky_silu_mul_split";

    fn policy(&self) -> &Policy {
        self.0
    }

    fn plan(&self, [gate, up]: [Input<'_>; 2]) -> Result<OpPlan<2>, Error> {
        let op = Self::NAME;
        let dtype = float_dtype(op, "gate", gate.dtype)?;
        let up_dtype = float_dtype(op, "up", up.dtype)?;
        let Some((&d, lead)) = gate.dims().split_last() else {
            return Err(shape_error(
                op,
                "gate",
                &gate,
                "gate needs at least one dimension, [.., d]",
            ));
        };
        if up.dims() != gate.dims() {
            return Err(shape_error(
                op,
                "up",
                &up,
                format!("up must have gate's shape {:?}", gate.dims()),
            ));
        }
        let need = "gate and up [.., d] must be contiguous";
        require_contiguous(op, "gate", &gate, need)?;
        require_contiguous(op, "up", &up, need)?;
        let view = vec![product(lead), d];
        Ok(OpPlan {
            inputs: [
                ViewSpec::contiguous("gate", dtype, view.clone()),
                ViewSpec::contiguous("up", up_dtype, view.clone()),
            ],
            out: OutSpec {
                dtype,
                view,
                shape: gate.layout.shape().clone(),
            },
        })
    }

    fn args<'a>(
        &self,
        _: &OpPlan<2>,
        [gate, up]: [Result<TensorView<'a>, Error>; 2],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        Ok(Args::SiluMul(SiluMulArgs {
            input: SiluMulInput::Split {
                gate: gate?,
                up: up?,
            },
            out,
        }))
    }
}
