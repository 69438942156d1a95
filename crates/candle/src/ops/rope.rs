//! `ky_rope` and `ky_rope_`: rotary position embedding of `x [B, T, H, D]` or `x [T, H, D]`
//! (contiguous, any start offset: the layout of a projection's output reshaped, before any
//! transpose) at `positions`, one per token (`B * T` values, contiguous: `[B, T]`, `[B * T]`,
//! or `[T]` for a rank-3 `x`), i64, i32 or u32. The tokens are kernelyard's `[tokens, heads,
//! head_dim]`. `ky_rope` returns a new tensor of `x`'s shape and dtype; `ky_rope_` rotates `x`
//! where it is (a candle `InplaceOp2`: candle refuses it if `positions` shares `x`'s storage).

use kernelyard::ops::rope::{RopeArgs, RopeStyle};
use kernelyard::{Args, Policy, TensorView, TensorViewMut};

use crate::error::Error;
use crate::operand::{
    float_dtype, index_dtype, product, require_contiguous, shape_error, Input, OpPlan, OutSpec,
    ViewSpec,
};
use crate::ops::{KyInplace2, KyOp};

/// Options of `ky_rope`: the frequencies' base, the pairing and how many features rotate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeOptions {
    /// Base of the frequencies (`inv_freq[i] = theta^(-2i / rotary_dim)`).
    pub theta: f32,
    /// NeoX (rotate halves: `candle_nn::rotary_emb::rope`, `rope_thd`) or GPT-J (interleaved
    /// pairs: `rope_i`).
    pub style: RopeStyle,
    /// Rotated features per head (even); `None`: all of them.
    pub rotary_dim: Option<usize>,
}

impl RopeOptions {
    /// NeoX style over the whole head with base `theta`.
    pub fn neox(theta: f32) -> Self {
        RopeOptions {
            theta,
            style: RopeStyle::Neox,
            rotary_dim: None,
        }
    }

    /// GPT-J style (interleaved pairs) over the whole head with base `theta`.
    pub fn gptj(theta: f32) -> Self {
        RopeOptions {
            style: RopeStyle::Gptj,
            ..RopeOptions::neox(theta)
        }
    }
}

/// `rope` out of place.
pub(crate) struct Rope<'p> {
    /// The options.
    pub opts: RopeOptions,
    /// The policy.
    pub policy: &'p Policy,
}

/// The views of `x` as `[tokens, heads, head_dim]` and of the positions as `[tokens]`.
fn views(op: &'static str, x: Input<'_>, pos: Input<'_>) -> Result<[ViewSpec; 2], Error> {
    let dtype = float_dtype(op, "x", x.dtype)?;
    let pos_dtype = index_dtype(op, "positions", pos.dtype)?;
    let need_x = "x is [B, T, H, D] or [T, H, D]";
    let (tokens, heads, head_dim) = match *x.dims() {
        [b, t, h, d] => (b * t, h, d),
        [t, h, d] => (t, h, d),
        _ => return Err(shape_error(op, "x", &x, need_x)),
    };
    if product(pos.dims()) != tokens {
        return Err(shape_error(
            op,
            "positions",
            &pos,
            format!(
                "one position per token: {tokens} values for x of shape {:?}",
                x.dims()
            ),
        ));
    }
    let need = "x [B, T, H, D] and positions [B, T] must be contiguous";
    require_contiguous(op, "x", &x, need)?;
    require_contiguous(op, "positions", &pos, need)?;
    Ok([
        ViewSpec::contiguous("x", dtype, vec![tokens, heads, head_dim]),
        ViewSpec::contiguous("positions", pos_dtype, vec![tokens]),
    ])
}

/// The kernelyard arguments for `input` with the options.
fn with_opts<'a>(mut args: RopeArgs<'a>, opts: &RopeOptions) -> Args<'a> {
    if let Some(r) = opts.rotary_dim {
        args.rotary_dim = r;
    }
    args.style = opts.style;
    args.theta = opts.theta;
    Args::Rope(args)
}

impl KyOp<2> for Rope<'_> {
    const NAME: &'static str = "ky_rope";

    fn policy(&self) -> &Policy {
        self.policy
    }

    fn plan(&self, [x, pos]: [Input<'_>; 2]) -> Result<OpPlan<2>, Error> {
        let inputs = views(Self::NAME, x, pos)?;
        let out = OutSpec {
            dtype: inputs[0].dtype,
            view: inputs[0].shape.clone(),
            shape: x.layout.shape().clone(),
        };
        Ok(OpPlan { inputs, out })
    }

    fn args<'a>(
        &self,
        _: &OpPlan<2>,
        [x, pos]: [Result<TensorView<'a>, Error>; 2],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        Ok(with_opts(RopeArgs::new(x?, pos?, out), &self.opts))
    }
}

/// `rope` in place.
pub(crate) struct RopeInPlace<'p> {
    /// The options.
    pub opts: RopeOptions,
    /// The policy.
    pub policy: &'p Policy,
}

impl KyInplace2 for RopeInPlace<'_> {
    const NAME: &'static str = "ky_rope_";

    fn policy(&self) -> &Policy {
        self.policy
    }

    fn plan(&self, [x, pos]: [Input<'_>; 2]) -> Result<[ViewSpec; 2], Error> {
        views(Self::NAME, x, pos)
    }

    fn args<'a>(
        &self,
        x: TensorViewMut<'a>,
        pos: Result<TensorView<'a>, Error>,
    ) -> Result<Args<'a>, Error> {
        Ok(with_opts(RopeArgs::in_place(x, pos?), &self.opts))
    }
}
