//! `ky_attention`: `softmax(scale * q k^T + mask) v` per batch entry and head.
//!
//! Layout `[B, S, H, D]` (or `[S, H, D]` for one sequence), as `candle-flash-attn` takes it:
//! `q [B, Sq, Hq, D]`, `k, v [B, Skv, Hkv, D]`, each contiguous (any start offset): a
//! projection's output reshaped, before the transpose to `[B, H, S, D]` that candle's own
//! attention needs. `Hq % Hkv == 0` (GQA/MQA); causal masking is bottom-right aligned (query
//! `i` sees keys `j <= i + Skv - Sq`); `scale` defaults to `1 / sqrt(D)`. The result has `q`'s
//! shape and dtype. A `[B, H, S, D]` tensor transposed from `[B, S, H, D]` is not contiguous
//! and is refused (kernelyard takes no strided attention operands).

use kernelyard::ops::attention::AttentionArgs;
use kernelyard::{Args, Policy, TensorView, TensorViewMut};

use crate::error::Error;
use crate::operand::{
    float_dtype, require_contiguous, shape_error, Input, OpPlan, OutSpec, ViewSpec,
};
use crate::ops::KyOp;

/// Options of `ky_attention`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AttentionOptions {
    /// Bottom-right aligned causal mask.
    pub causal: bool,
    /// Score scale; `None`: `1 / sqrt(head_dim)`.
    pub scale: Option<f32>,
}

impl AttentionOptions {
    /// Causal attention with the default scale.
    pub fn causal() -> Self {
        AttentionOptions {
            causal: true,
            scale: None,
        }
    }

    /// Full (non-causal) attention with the default scale.
    pub fn full() -> Self {
        AttentionOptions::default()
    }

    /// The same options with score scale `scale`.
    pub fn with_scale(mut self, scale: f32) -> Self {
        self.scale = Some(scale);
        self
    }
}

/// `attention`.
pub(crate) struct Attention<'p> {
    /// The options.
    pub opts: AttentionOptions,
    /// The policy.
    pub policy: &'p Policy,
}

/// `[B, S, H, D]` of a rank-4 or rank-3 (`B = 1`) operand.
fn bshd(op: &'static str, arg: &'static str, x: &Input<'_>) -> Result<Vec<usize>, Error> {
    match *x.dims() {
        [b, s, h, d] => Ok(vec![b, s, h, d]),
        [s, h, d] => Ok(vec![1, s, h, d]),
        _ => Err(shape_error(
            op,
            arg,
            x,
            "attention operands are [B, S, H, D] or [S, H, D]",
        )),
    }
}

impl KyOp<3> for Attention<'_> {
    const NAME: &'static str = "ky_attention";

    fn policy(&self) -> &Policy {
        self.policy
    }

    fn plan(&self, [q, k, v]: [Input<'_>; 3]) -> Result<OpPlan<3>, Error> {
        let op = Self::NAME;
        let need = "q, k and v [B, S, H, D] must be contiguous (reshape the projection's \
                    output; do not transpose to [B, H, S, D])";
        let spec = |arg: &'static str, x: &Input<'_>| -> Result<ViewSpec, Error> {
            let dtype = float_dtype(op, arg, x.dtype)?;
            if x.dims().len() != q.dims().len() {
                return Err(shape_error(op, arg, x, "q, k and v have the same rank"));
            }
            let dims = bshd(op, arg, x)?;
            require_contiguous(op, arg, x, need)?;
            Ok(ViewSpec::contiguous(arg, dtype, dims))
        };
        let (qs, ks, vs) = (spec("q", &q)?, spec("k", &k)?, spec("v", &v)?);
        let out = OutSpec {
            dtype: qs.dtype,
            view: qs.shape.clone(),
            shape: q.layout.shape().clone(),
        };
        Ok(OpPlan {
            inputs: [qs, ks, vs],
            out,
        })
    }

    fn args<'a>(
        &self,
        _: &OpPlan<3>,
        [q, k, v]: [Result<TensorView<'a>, Error>; 3],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        let mut a = AttentionArgs::new(q?, k?, v?, out);
        a.causal = self.opts.causal;
        a.scale = self.opts.scale;
        Ok(Args::Attention(a))
    }
}
