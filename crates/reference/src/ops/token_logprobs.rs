//! `token_logprobs` oracle and the `reference.token_logprobs` kernel.

use kernelyard_core::ops::token_logprobs::{
    TokenLogprobs, TokenLogprobsArgs, TokenLogprobsProblem,
};
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, gather_indices, scatter};
use crate::ops::meta;

/// The column a target selects: `Some(target)` when it lies in `[0, vocab)`.
fn column(target: i64, vocab: usize) -> Option<usize> {
    usize::try_from(target).ok().filter(|&c| c < vocab)
}

/// Log-probabilities and entropies of each row of dense `[tokens, vocab]` logits, in `f64`.
///
/// Returns `(logprobs [T], entropy [T])`: `logprobs[t] = log_softmax(logits[t] / temperature)
/// [targets[t]]`; `0` where the target is `ignore_index`; NaN where it lies outside
/// `[0, vocab)` and is not `ignore_index`. `entropy[t] = -sum_v p_v ln p_v` of
/// `softmax(logits[t] / temperature)`, for every row, ignored ones included (terms with
/// `p_v = 0`, i.e. `-inf` logits, contribute 0). Rows run in parallel; each row's sums are
/// taken in index order, so the result does not depend on the batch.
pub fn token_logprobs(
    p: &TokenLogprobsProblem,
    logits: &[f64],
    targets: &[i64],
    temperature: f64,
    ignore_index: i64,
) -> (Vec<f64>, Vec<f64>) {
    if p.vocab == 0 {
        let ignored = |t: &i64| if *t == ignore_index { 0.0 } else { f64::NAN };
        return (
            targets.iter().map(ignored).collect(),
            vec![0.0; targets.len()],
        );
    }
    logits
        .par_chunks(p.vocab)
        .zip(targets.par_iter())
        .map(|(row, &target)| {
            let z: Vec<f64> = row.iter().map(|v| v / temperature).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            let mut entropy = 0.0;
            for v in &z {
                let lp = v - lse;
                let prob = lp.exp();
                // `!= 0` rather than `> 0` so that a NaN row gives a NaN entropy.
                if prob != 0.0 {
                    entropy -= prob * lp;
                }
            }
            let logprob = if target == ignore_index {
                0.0
            } else {
                match column(target, p.vocab) {
                    Some(c) => z[c] - lse,
                    None => f64::NAN,
                }
            };
            (logprob, entropy)
        })
        .unzip()
}

/// The first row whose target is out of range and not `ignore_index`, with the target.
pub fn first_out_of_range(
    p: &TokenLogprobsProblem,
    targets: &[i64],
    ignore_index: i64,
) -> Option<(usize, i64)> {
    targets
        .iter()
        .copied()
        .enumerate()
        .find(|&(_, t)| t != ignore_index && column(t, p.vocab).is_none())
}

/// The `reference.token_logprobs` kernel.
pub static TOKEN_LOGPROBS: KernelDef<TokenLogprobs> = KernelDef::<TokenLogprobs>::new(
    meta::<TokenLogprobs>(
        "reference.token_logprobs",
        module_path!(),
        "target log-probabilities and entropies under softmax(logits / T) in f64",
    ),
    launch,
);
crate::register_kernel!(TOKEN_LOGPROBS);

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut TokenLogprobsArgs<'_>,
    p: &TokenLogprobsProblem,
) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.token_logprobs", || {
        let targets = gather_indices("targets", &a.targets)?;
        if a.checked {
            // Nothing is written when the launch fails.
            if let Some((row, target)) = first_out_of_range(p, &targets, a.ignore_index) {
                return Err(Error::TargetOutOfRange {
                    row,
                    target,
                    vocab: p.vocab,
                });
            }
        }
        let logits = gather("logits", &a.logits)?;
        let (logprobs, entropy) = token_logprobs(
            p,
            &logits,
            &targets,
            f64::from(a.temperature),
            a.ignore_index,
        );
        scatter("out", &mut a.out, &logprobs)?;
        if let Some(view) = a.entropy.as_mut() {
            scatter("entropy", view, &entropy)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::log_softmax::log_softmax;
    use crate::ops::softmax::softmax;
    use kernelyard_core::half::bf16;
    use kernelyard_core::ops::softmax::RowsProblem;
    use kernelyard_core::ops::token_logprobs::{TokenLogprobsArgs, DEFAULT_IGNORE_INDEX};
    use kernelyard_core::{
        Args, DType, Element, Policy, Runtime, Stream, TensorView, TensorViewMut,
    };

    const IGNORE: i64 = DEFAULT_IGNORE_INDEX;

    fn problem(tokens: usize, vocab: usize) -> TokenLogprobsProblem {
        TokenLogprobsProblem {
            tokens,
            vocab,
            dtype: DType::F32,
            target_dtype: DType::I64,
            entropy: true,
            checked: false,
            align: 16,
        }
    }

    fn rows(rows: usize, cols: usize) -> RowsProblem {
        RowsProblem {
            rows,
            cols,
            dtype: DType::F32,
            align: 16,
        }
    }

    fn data(n: usize, salt: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 11 + salt * 5) % 29) as f64 * 0.31 - 4.0)
            .collect()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn equals_gathered_log_softmax() {
        let (t, v) = (6, 13);
        let logits = data(t * v, 1);
        let targets: Vec<i64> = (0..t as i64).map(|i| (i * 5) % v as i64).collect();
        let (lp, _) = token_logprobs(&problem(t, v), &logits, &targets, 1.0, IGNORE);
        let ls = log_softmax(&rows(t, v), &logits);
        for (r, (&got, &target)) in lp.iter().zip(&targets).enumerate() {
            let want = ls[r * v + target as usize];
            assert!(close(got, want, 1e-13), "row {r}: {got} vs {want}");
        }
    }

    #[test]
    fn temperature_scales_the_logits() {
        let (t, v) = (3, 7);
        let logits = data(t * v, 2);
        let targets = [0i64, 3, 6];
        let temp = 0.7;
        let scaled: Vec<f64> = logits.iter().map(|x| x / temp).collect();
        let (a, ea) = token_logprobs(&problem(t, v), &logits, &targets, temp, IGNORE);
        let (b, eb) = token_logprobs(&problem(t, v), &scaled, &targets, 1.0, IGNORE);
        for i in 0..t {
            assert!(close(a[i], b[i], 1e-13));
            assert!(close(ea[i], eb[i], 1e-13));
        }
        // A higher temperature flattens the distribution: the entropy grows.
        let (_, hot) = token_logprobs(&problem(t, v), &logits, &targets, 3.0, IGNORE);
        for i in 0..t {
            assert!(hot[i] > ea[i]);
        }
    }

    #[test]
    fn ignore_index_gives_zero_and_out_of_range_gives_nan() {
        let (t, v) = (5, 4);
        let logits = data(t * v, 3);
        let targets = [IGNORE, 4, -1, 2, IGNORE];
        let p = problem(t, v);
        let (lp, ent) = token_logprobs(&p, &logits, &targets, 1.0, IGNORE);
        assert_eq!(lp[0], 0.0);
        assert_eq!(lp[4], 0.0);
        assert!(lp[1].is_nan());
        assert!(lp[2].is_nan());
        assert!(lp[3].is_finite() && lp[3] < 0.0);
        // The entropy is computed for every row, ignored ones included.
        assert!(ent.iter().all(|e| e.is_finite() && *e > 0.0));
        assert_eq!(first_out_of_range(&p, &targets, IGNORE), Some((1, 4)));
        assert_eq!(first_out_of_range(&p, &[0, 3, IGNORE], IGNORE), None);
        // An in-range ignore_index wins over the column it names.
        let (lp, _) = token_logprobs(&p, &logits, &[2; 5], 1.0, 2);
        assert_eq!(lp, vec![0.0; 5]);
    }

    #[test]
    fn entropy_matches_naive_and_bounds() {
        let (t, v) = (4, 9);
        let logits = data(t * v, 4);
        let (_, ent) = token_logprobs(&problem(t, v), &logits, &[0; 4], 1.0, IGNORE);
        let probs = softmax(&rows(t, v), &logits);
        for (r, e) in ent.iter().enumerate() {
            let want: f64 = -probs[r * v..(r + 1) * v]
                .iter()
                .map(|q| q * q.ln())
                .sum::<f64>();
            assert!(close(*e, want, 1e-12), "row {r}: {e} vs {want}");
        }
        // A uniform row has the largest entropy, ln(V).
        let (_, uniform) = token_logprobs(&problem(1, v), &[1.5; 9], &[0], 1.0, IGNORE);
        assert!(close(uniform[0], (v as f64).ln(), 1e-14));
        // A one-hot-ish row has an entropy near 0; a -inf logit contributes nothing.
        let mut peaked = vec![-60.0; v];
        peaked[3] = 60.0;
        peaked[5] = f64::NEG_INFINITY;
        let (lp, e) = token_logprobs(&problem(1, v), &peaked, &[3], 1.0, IGNORE);
        assert!(e[0] >= 0.0 && e[0] < 1e-40, "entropy {}", e[0]);
        assert!(lp[0].abs() < 1e-40);
    }

    fn launch_matches_oracle<T: Element>() {
        let (t, v) = (7, 50);
        let logits: Vec<T> = data(t * v, 5).iter().map(|x| T::from_f64(*x)).collect();
        let targets: Vec<i32> = vec![0, 49, -100, 17, 3, 50, 25];
        let mut out = vec![f32::NAN; t];
        let mut entropy = vec![f32::NAN; t];
        let rt = Runtime::builder().build().unwrap();
        {
            let mut args = TokenLogprobsArgs::new(
                TensorView::from_slice(&logits, &[t, v]).unwrap(),
                TensorView::from_slice(&targets, &[t]).unwrap(),
                TensorViewMut::from_slice(&mut out, &[t]).unwrap(),
            );
            args.entropy = Some(TensorViewMut::from_slice(&mut entropy, &[t]).unwrap());
            args.temperature = 0.8;
            let plan = rt
                .run(
                    &Policy::auto(),
                    &Stream::host(),
                    &mut Args::TokenLogprobs(args),
                )
                .unwrap();
            assert_eq!(plan.kernel_name(), "reference.token_logprobs");
        }
        let wide: Vec<f64> = logits.iter().map(|x| x.to_f64()).collect();
        let tg: Vec<i64> = targets.iter().map(|&x| i64::from(x)).collect();
        let (want, want_e) = token_logprobs(&problem(t, v), &wide, &tg, 0.8f32.into(), IGNORE);
        for i in 0..t {
            // Outputs are f32: rounded once from the f64 oracle.
            assert_eq!(out[i].to_bits(), (want[i] as f32).to_bits(), "out[{i}]");
            assert_eq!(entropy[i], want_e[i] as f32, "entropy[{i}]");
        }
        assert_eq!(out[2], 0.0);
        assert!(out[5].is_nan());
    }

    #[test]
    fn launch_bf16() {
        launch_matches_oracle::<bf16>();
    }

    #[test]
    fn launch_f32() {
        launch_matches_oracle::<f32>();
    }

    #[test]
    fn checked_mode_reports_the_first_bad_row_and_writes_nothing() {
        let (t, v) = (4, 8);
        let logits = vec![0.5f32; t * v];
        let targets: Vec<i64> = vec![1, IGNORE, 8, -3];
        let mut out = vec![7.0f32; t];
        let rt = Runtime::builder().build().unwrap();
        let mut args = TokenLogprobsArgs::new(
            TensorView::from_slice(&logits, &[t, v]).unwrap(),
            TensorView::from_slice(&targets, &[t]).unwrap(),
            TensorViewMut::from_slice(&mut out, &[t]).unwrap(),
        );
        args.checked = true;
        let err = rt
            .run(
                &Policy::auto(),
                &Stream::host(),
                &mut Args::TokenLogprobs(args),
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::TargetOutOfRange {
                    row: 2,
                    target: 8,
                    vocab: 8
                }
            ),
            "{err}"
        );
        assert_eq!(out, vec![7.0; t]);
    }
}
