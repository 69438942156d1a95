//! `ky_token_logprobs`: `log_softmax(logits / temperature)[target]` per row, as f32.
//!
//! `logits [.., V]` (contiguous, any start offset; the leading dimensions are kernelyard's
//! tokens) and `targets` with one id per row (contiguous, any shape of that many elements),
//! i64, i32 or u32. The result is f32 of `logits`' shape without its last dimension. A target
//! equal to `ignore_index` gives 0; one outside `[0, V)` gives NaN, or with `checked` the
//! call fails naming the row (kernelyard reads the failing row back, which waits for the
//! stream: `checked` is for debugging, not for the hot path).

use candle_core::Shape;
use kernelyard::ops::token_logprobs::{TokenLogprobsArgs, DEFAULT_IGNORE_INDEX};
use kernelyard::{Args, DType, Policy, TensorView, TensorViewMut};

use crate::error::Error;
use crate::operand::{
    float_dtype, index_dtype, product, require_contiguous, shape_error, Input, OpPlan, OutSpec,
    ViewSpec,
};
use crate::ops::KyOp;

/// Options of `ky_token_logprobs`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogprobsOptions {
    /// Softmax temperature, finite and positive (default 1).
    pub temperature: f32,
    /// Targets equal to it give 0 (default -100).
    pub ignore_index: i64,
    /// Fail on a target outside `[0, V)` instead of writing NaN (default off).
    pub checked: bool,
}

impl Default for LogprobsOptions {
    fn default() -> Self {
        LogprobsOptions {
            temperature: 1.0,
            ignore_index: DEFAULT_IGNORE_INDEX,
            checked: false,
        }
    }
}

/// `token_logprobs`.
pub(crate) struct TokenLogprobs<'p> {
    /// The options.
    pub opts: LogprobsOptions,
    /// The policy.
    pub policy: &'p Policy,
}

impl KyOp<2> for TokenLogprobs<'_> {
    const NAME: &'static str = "ky_token_logprobs";

    fn policy(&self) -> &Policy {
        self.policy
    }

    fn plan(&self, [logits, targets]: [Input<'_>; 2]) -> Result<OpPlan<2>, Error> {
        let op = Self::NAME;
        let dtype = float_dtype(op, "logits", logits.dtype)?;
        let target_dtype = index_dtype(op, "targets", targets.dtype)?;
        let Some((&vocab, lead)) = logits.dims().split_last() else {
            return Err(shape_error(op, "logits", &logits, "logits is [.., vocab]"));
        };
        let tokens = product(lead);
        if product(targets.dims()) != tokens {
            return Err(shape_error(
                op,
                "targets",
                &targets,
                format!(
                    "one target per row: {tokens} ids for logits of shape {:?}",
                    logits.dims()
                ),
            ));
        }
        let need = "logits [.., vocab] and targets must be contiguous";
        require_contiguous(op, "logits", &logits, need)?;
        require_contiguous(op, "targets", &targets, need)?;
        Ok(OpPlan {
            inputs: [
                ViewSpec::contiguous("logits", dtype, vec![tokens, vocab]),
                ViewSpec::contiguous("targets", target_dtype, vec![tokens]),
            ],
            out: OutSpec {
                dtype: DType::F32,
                view: vec![tokens],
                shape: Shape::from(lead.to_vec()),
            },
        })
    }

    fn args<'a>(
        &self,
        _: &OpPlan<2>,
        [logits, targets]: [Result<TensorView<'a>, Error>; 2],
        out: TensorViewMut<'a>,
    ) -> Result<Args<'a>, Error> {
        let mut a = TokenLogprobsArgs::new(logits?, targets?, out);
        a.temperature = self.opts.temperature;
        a.ignore_index = self.opts.ignore_index;
        a.checked = self.opts.checked;
        Ok(Args::TokenLogprobs(a))
    }
}
