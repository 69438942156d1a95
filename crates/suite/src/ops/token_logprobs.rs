//! `token_logprobs`: tokens (rows of logits) are independent.
//!
//! Targets are uniform in `[0, vocab)`, except a case's `ignore_fraction` of rows (exactly
//! that share, rounded, at random rows) get `ignore_index` and its `out_of_range_fraction` get
//! a target outside `[0, vocab)`: NaN in the unchecked mode, a launch error in the checked one.

use kernelyard::ops::token_logprobs::{TokenLogprobs, TokenLogprobsArgs};
use kernelyard::ops::Listed;
use kernelyard::{Args, Problem};
use kernelyard_reference::ops::token_logprobs::{first_out_of_range, token_logprobs};

use crate::cases::Scalars;
use crate::data::{HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, logit_rows, Driver, ExpectedError};
use crate::rng::Rng;

/// The `token_logprobs` driver.
pub(crate) struct TokenLogprobsDriver;

/// A target outside `[0, vocab)` that is not `ignore_index`.
fn out_of_range(rng: &mut Rng, vocab: usize, ignore_index: i64) -> i64 {
    let t = if rng.below(2) == 0 {
        vocab as i64 + rng.below(1000) as i64
    } else {
        -1 - rng.below(50) as i64
    };
    if t == ignore_index {
        vocab as i64
    } else {
        t
    }
}

impl Driver for TokenLogprobsDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(expect::<TokenLogprobs>(p)?.tokens)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = expect::<TokenLogprobs>(p)?.clone();
        q.tokens = rows;
        Ok(TokenLogprobs::wrap(q))
    }

    fn generate(&self, p: &Problem, s: &Scalars, rng: &mut Rng) -> Result<Vec<HostTensor>, String> {
        let p = expect::<TokenLogprobs>(p)?;
        let logits = logit_rows(rng, p.dtype, p.tokens, p.vocab);
        let n_ignore = (s.ignore_fraction * p.tokens as f64).round() as usize;
        let n_oob = (s.out_of_range_fraction * p.tokens as f64).round() as usize;
        let order = rng.permutation(p.tokens);
        let mut targets = vec![0.0; p.tokens];
        for (rank, &row) in order.iter().enumerate() {
            let t = if rank < n_ignore {
                s.ignore_index
            } else if rank < n_ignore + n_oob {
                out_of_range(rng, p.vocab, s.ignore_index)
            } else {
                // Uniform in [0, vocab), avoiding ignore_index when it lies in range.
                let mut t = rng.below(p.vocab as u64) as i64;
                if t == s.ignore_index && p.vocab > 1 {
                    t = (t + 1) % p.vocab as i64;
                }
                t
            };
            targets[row] = t as f64;
        }
        Ok(vec![
            HostTensor::of("logits", p.dtype, vec![p.tokens, p.vocab], Some(0), logits),
            HostTensor::of("targets", p.target_dtype, vec![p.tokens], Some(0), targets),
        ])
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = expect::<TokenLogprobs>(p)?;
        Ok(vec![
            HostTensor::shape_only("logits", p.dtype, vec![p.tokens, p.vocab], Some(0)),
            HostTensor::shape_only("targets", p.target_dtype, vec![p.tokens], Some(0)),
        ])
    }

    fn outputs(&self, p: &Problem, _inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = expect::<TokenLogprobs>(p)?;
        let out = |name| OutputSpec {
            name,
            dtype: kernelyard::DType::F32,
            shape: vec![p.tokens],
            batch_axis: Some(0),
            init: Init::Poison,
        };
        let mut v = vec![out("out")];
        if p.entropy {
            v.push(out("entropy"));
        }
        Ok(v)
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = expect::<TokenLogprobs>(&inst.problem)?;
        let targets: Vec<i64> = inst
            .input("targets")?
            .data
            .iter()
            .map(|&t| t as i64)
            .collect();
        let (lp, entropy) = token_logprobs(
            p,
            &inst.input("logits")?.data,
            &targets,
            f64::from(inst.scalars.temperature),
            inst.scalars.ignore_index,
        );
        let mut v = vec![lp];
        if p.entropy {
            v.push(entropy);
        }
        Ok(v)
    }

    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let p = expect::<TokenLogprobs>(&inst.problem)?;
        let [out, entropy] = outputs_mut(outs, ["out", "entropy"])?;
        Ok(Args::TokenLogprobs(TokenLogprobsArgs {
            logits: input(ins, "logits")?,
            targets: input(ins, "targets")?,
            out: required(out, "out")?,
            entropy,
            temperature: inst.scalars.temperature,
            ignore_index: inst.scalars.ignore_index,
            checked: p.checked,
        }))
    }

    fn expected_error(&self, inst: &Instance) -> Result<Option<ExpectedError>, String> {
        let p = expect::<TokenLogprobs>(&inst.problem)?;
        if !p.checked {
            return Ok(None);
        }
        let targets: Vec<i64> = inst
            .input("targets")?
            .data
            .iter()
            .map(|&t| t as i64)
            .collect();
        Ok(
            first_out_of_range(p, &targets, inst.scalars.ignore_index).map(|(row, target)| {
                ExpectedError::TargetOutOfRange {
                    row,
                    target,
                    vocab: p.vocab,
                }
            }),
        )
    }
}
