//! `attention` oracle and the `reference.attention` kernel.
//!
//! Each (batch, query, head) is computed on its own, in parallel: the scaled scores of the keys
//! it sees, a max-subtracted softmax over them, and the weighted sum of values, all in `f64`
//! and in key order, so results are deterministic and batch-invariant.

use kernelyard_core::ops::attention::{Attention, AttentionArgs, AttentionProblem};
use kernelyard_core::tensor::checked_numel;
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, scatter};
use crate::ops::meta;

/// `q` dense `[B, Sq, Hq, D]`; `k`, `v` dense `[B, Skv, Hkv, D]`. Returns
/// `(out [B, Sq, Hq, D], lse [B, Hq, Sq])`.
///
/// Query head `h` uses kv head `h / (Hq / Hkv)`. Causal is bottom-right aligned: query `i` sees
/// keys `j <= i + Skv - Sq`. A query seeing no key gets `out = 0` and `lse = -inf`. `lse` is the
/// natural-log log-sum-exp of the scaled masked scores. Scores and softmax in `f64`.
///
/// Inputs whose lengths do not match `p`, or heads that do not divide, give all-NaN outputs (a
/// caller's bug made visible, never a panic); sizes that overflow `usize` give empty ones.
pub fn attention(
    p: &AttentionProblem,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    scale: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (sq, skv, hq, hkv, d) = (p.seq_q, p.seq_kv, p.heads_q, p.heads_kv, p.head_dim);
    let (Some(q_len), Some(kv_len), Some(rows)) = (
        checked_numel(&[p.batch, sq, hq, d]),
        checked_numel(&[p.batch, skv, hkv, d]),
        checked_numel(&[p.batch, sq, hq]),
    ) else {
        return (Vec::new(), Vec::new());
    };
    if hkv == 0 || hq % hkv != 0 || q.len() != q_len || k.len() != kv_len || v.len() != kv_len {
        return (vec![f64::NAN; q_len], vec![f64::NAN; rows]);
    }
    let group = hq / hkv;
    // Row `r` of `q` and `out` is (batch, query, head) = (r / (Sq Hq), r / Hq % Sq, r % Hq).
    let per_row: Vec<(Vec<f64>, f64)> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let (b, i, h) = (r / (sq * hq), r / hq % sq, r % hq);
            let seen = if p.causal {
                // Keys j <= i + Skv - Sq, i.e. the first i + Skv + 1 - Sq (if positive).
                (i + skv + 1).saturating_sub(sq).min(skv)
            } else {
                skv
            };
            // Start of key `j`'s row for this query's kv head, in `k` and `v`.
            let kv_start = move |j: usize| ((b * skv + j) * hkv + h / group) * d;
            one_query(
                &q[r * d..(r + 1) * d],
                seen,
                move |j| &k[kv_start(j)..kv_start(j) + d],
                move |j| &v[kv_start(j)..kv_start(j) + d],
                scale,
            )
        })
        .collect();
    let mut out = Vec::with_capacity(q_len);
    let mut lse = vec![0.0; rows];
    for (r, (o, l)) in per_row.into_iter().enumerate() {
        out.extend(o);
        let (b, i, h) = (r / (sq * hq), r / hq % sq, r % hq);
        lse[(b * hq + h) * sq + i] = l;
    }
    (out, lse)
}

/// One query over keys `0..seen`: `(softmax(scale * q.k_j) @ v, log-sum-exp)`.
fn one_query<'a>(
    q: &[f64],
    seen: usize,
    key: impl Fn(usize) -> &'a [f64],
    value: impl Fn(usize) -> &'a [f64],
    scale: f64,
) -> (Vec<f64>, f64) {
    let mut out = vec![0.0; q.len()];
    if seen == 0 {
        return (out, f64::NEG_INFINITY);
    }
    let scores: Vec<f64> = (0..seen)
        .map(|j| scale * q.iter().zip(key(j)).fold(0.0, |acc, (x, y)| acc + x * y))
        .collect();
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum = weights.iter().fold(0.0, |acc, w| acc + w);
    for (j, w) in weights.iter().enumerate() {
        let prob = w / sum;
        for (o, x) in out.iter_mut().zip(value(j)) {
            *o += prob * x;
        }
    }
    (out, max + sum.ln())
}

/// The `reference.attention` kernel.
pub static ATTENTION: KernelDef<Attention> = KernelDef::<Attention>::new(
    meta::<Attention>(
        "reference.attention",
        module_path!(),
        "attention forward (GQA, bottom-right causal, lse) in f64",
    ),
    launch,
);
crate::register_kernel!(ATTENTION);

fn launch(
    ctx: &LaunchCtx<'_>,
    a: &mut AttentionArgs<'_>,
    p: &AttentionProblem,
) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.attention", || {
        let scale = f64::from(a.effective_scale());
        let (out, lse) = attention(
            p,
            &gather("q", &a.q)?,
            &gather("k", &a.k)?,
            &gather("v", &a.v)?,
            scale,
        );
        scatter("out", &mut a.out, &out)?;
        if let Some(l) = &mut a.lse {
            scatter("lse", l, &lse)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::round_to;
    use kernelyard_core::half::bf16;
    use kernelyard_core::ops::attention::AttentionArgs;
    use kernelyard_core::{
        Args, DType, Element, Policy, Runtime, Stream, TensorView, TensorViewMut,
    };

    fn problem(
        batch: usize,
        (seq_q, seq_kv): (usize, usize),
        (heads_q, heads_kv): (usize, usize),
        head_dim: usize,
        causal: bool,
    ) -> AttentionProblem {
        AttentionProblem {
            batch,
            seq_q,
            seq_kv,
            heads_q,
            heads_kv,
            head_dim,
            dtype: DType::F32,
            causal,
            lse: true,
            align: 16,
        }
    }

    /// Small, varied values in [-1, 1].
    fn data(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 11 + seed * 5) % 17) as f64 / 8.0 - 1.0)
            .collect()
    }

    fn sizes(p: &AttentionProblem) -> (usize, usize) {
        let q = p.batch * p.seq_q * p.heads_q * p.head_dim;
        (q, p.batch * p.seq_kv * p.heads_kv * p.head_dim)
    }

    fn close(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()))
    }

    /// An independent oracle: explicit index loops, a full masked score matrix per (batch,
    /// head), and softmax without max subtraction (fine for the small test values).
    fn naive(
        p: &AttentionProblem,
        q: &[f64],
        k: &[f64],
        v: &[f64],
        s: f64,
    ) -> (Vec<f64>, Vec<f64>) {
        let (sq, skv, hq, hkv, d) = (p.seq_q, p.seq_kv, p.heads_q, p.heads_kv, p.head_dim);
        let mut out = vec![0.0; p.batch * sq * hq * d];
        let mut lse = vec![0.0; p.batch * hq * sq];
        for b in 0..p.batch {
            for h in 0..hq {
                let kh = h * hkv / hq;
                for i in 0..sq {
                    let mut e = vec![0.0; skv];
                    for (j, e) in e.iter_mut().enumerate() {
                        if p.causal && j as i64 > i as i64 + skv as i64 - sq as i64 {
                            continue;
                        }
                        let mut dot = 0.0;
                        for x in 0..d {
                            dot += q[((b * sq + i) * hq + h) * d + x]
                                * k[((b * skv + j) * hkv + kh) * d + x];
                        }
                        *e = (s * dot).exp();
                    }
                    let total: f64 = e.iter().sum();
                    lse[(b * hq + h) * sq + i] = total.ln();
                    for x in 0..d {
                        let mut acc = 0.0;
                        for (j, e) in e.iter().enumerate() {
                            acc += e * v[((b * skv + j) * hkv + kh) * d + x];
                        }
                        out[((b * sq + i) * hq + h) * d + x] =
                            if total > 0.0 { acc / total } else { 0.0 };
                    }
                }
            }
        }
        (out, lse)
    }

    #[test]
    fn matches_naive() {
        for causal in [false, true] {
            for (sq, skv) in [(5, 5), (3, 7), (6, 4)] {
                let p = problem(2, (sq, skv), (4, 2), 3, causal);
                let (ql, kvl) = sizes(&p);
                let (q, k, v) = (data(ql, 1), data(kvl, 2), data(kvl, 3));
                let (out, lse) = attention(&p, &q, &k, &v, 0.7);
                let (want_out, want_lse) = naive(&p, &q, &k, &v, 0.7);
                for (g, w) in out.iter().zip(&want_out).chain(lse.iter().zip(&want_lse)) {
                    assert!(close(*g, *w), "causal {causal}, ({sq}, {skv}): {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn one_key_returns_its_value() {
        let p = problem(2, (4, 1), (2, 1), 3, false);
        let (ql, kvl) = sizes(&p);
        let (q, k, v) = (data(ql, 4), data(kvl, 5), data(kvl, 6));
        let (out, lse) = attention(&p, &q, &k, &v, 0.5);
        for (r, row) in out.chunks(3).enumerate() {
            let b = r / (4 * 2);
            assert_eq!(row, &v[b * 3..b * 3 + 3], "row {r}");
        }
        // With one key, lse is that key's scaled score.
        for b in 0..2 {
            for h in 0..2 {
                for i in 0..4 {
                    let qr = &q[((b * 4 + i) * 2 + h) * 3..][..3];
                    let score: f64 = qr
                        .iter()
                        .zip(&k[b * 3..b * 3 + 3])
                        .map(|(x, y)| x * y)
                        .sum();
                    assert!(close(lse[(b * 2 + h) * 4 + i], 0.5 * score));
                }
            }
        }
    }

    #[test]
    fn uniform_scores_average_the_values() {
        let p = problem(1, (3, 4), (2, 2), 2, false);
        let (ql, kvl) = sizes(&p);
        let (k, v) = (data(kvl, 7), data(kvl, 8));
        let (out, lse) = attention(&p, &vec![0.0; ql], &k, &v, 1.0);
        for i in 0..3 {
            for h in 0..2 {
                for x in 0..2 {
                    let mean = (0..4).map(|j| v[(j * 2 + h) * 2 + x]).sum::<f64>() / 4.0;
                    assert!(close(out[(i * 2 + h) * 2 + x], mean));
                }
            }
        }
        assert!(lse.iter().all(|&l| close(l, 4f64.ln())));
    }

    #[test]
    fn causal_square_first_query_sees_only_the_first_key() {
        let p = problem(1, (4, 4), (1, 1), 3, true);
        let (ql, kvl) = sizes(&p);
        let (q, k, v) = (data(ql, 9), data(kvl, 10), data(kvl, 11));
        let (out, _) = attention(&p, &q, &k, &v, 0.9);
        assert_eq!(&out[..3], &v[..3]);
        // The last query sees every key, as without the mask.
        let open = problem(1, (4, 4), (1, 1), 3, false);
        let (all, _) = attention(&open, &q, &k, &v, 0.9);
        assert_eq!(&out[9..], &all[9..]);
    }

    #[test]
    fn causal_fully_masked_queries_give_zero_and_minus_infinity() {
        // Sq = 5, Skv = 3: query i sees keys j <= i - 2, so queries 0 and 1 see none.
        let p = problem(1, (5, 3), (2, 1), 2, true);
        let (ql, kvl) = sizes(&p);
        let (q, k, v) = (data(ql, 12), data(kvl, 13), data(kvl, 14));
        let (out, lse) = attention(&p, &q, &k, &v, 1.0);
        for h in 0..2 {
            for i in 0..2 {
                assert_eq!(&out[(i * 2 + h) * 2..][..2], &[0.0, 0.0]);
                assert_eq!(lse[h * 5 + i], f64::NEG_INFINITY);
            }
            // Query 2 sees key 0 only.
            assert_eq!(&out[(2 * 2 + h) * 2..][..2], &v[..2]);
            assert!(lse[h * 5 + 2].is_finite());
        }
    }

    #[test]
    fn gqa_equals_mha_with_repeated_kv_heads() {
        let (b, sq, skv, hq, hkv, d) = (2, 3, 5, 6, 2, 4);
        let p = problem(b, (sq, skv), (hq, hkv), d, true);
        let (ql, kvl) = sizes(&p);
        let (q, k, v) = (data(ql, 15), data(kvl, 16), data(kvl, 17));
        // Query head h uses kv head h / 3: repeat each kv head 3 times.
        let repeat = |x: &[f64]| -> Vec<f64> {
            let mut out = Vec::new();
            for token in x.chunks(hkv * d) {
                for h in 0..hq {
                    out.extend_from_slice(&token[(h / (hq / hkv)) * d..][..d]);
                }
            }
            out
        };
        let mha = problem(b, (sq, skv), (hq, hq), d, true);
        assert_eq!(
            attention(&p, &q, &k, &v, 0.4),
            attention(&mha, &q, &repeat(&k), &repeat(&v), 0.4)
        );
    }

    #[test]
    fn lse_is_log_sum_exp_of_scaled_scores() {
        let p = problem(1, (2, 3), (1, 1), 2, false);
        let q = [0.5, -1.0, 2.0, 0.25];
        let k = [1.0, 0.0, 0.0, 1.0, -1.0, 1.0];
        let v = [0.0; 6];
        let (_, lse) = attention(&p, &q, &k, &v, 0.3);
        for i in 0..2 {
            let total: f64 = (0..3)
                .map(|j| (0.3 * (q[2 * i] * k[2 * j] + q[2 * i + 1] * k[2 * j + 1])).exp())
                .sum();
            assert!(close(lse[i], total.ln()), "{} vs {}", lse[i], total.ln());
        }
    }

    #[test]
    fn rows_do_not_depend_on_the_batch() {
        let p = problem(3, (4, 6), (4, 2), 5, true);
        let (ql, kvl) = sizes(&p);
        let (q, k, v) = (data(ql, 18), data(kvl, 19), data(kvl, 20));
        let (out, lse) = attention(&p, &q, &k, &v, 0.35);
        let one = problem(1, (4, 6), (4, 2), 5, true);
        let (q1, kv1) = (ql / 3, kvl / 3);
        let (o1, l1) = attention(&one, &q[2 * q1..], &k[2 * kv1..], &v[2 * kv1..], 0.35);
        assert_eq!(&out[2 * q1..], &o1[..]);
        assert_eq!(&lse[2 * 16..], &l1[..]);
    }

    #[test]
    fn inconsistent_inputs_give_nan_not_a_panic() {
        let p = problem(1, (2, 2), (3, 2), 2, false);
        let (out, lse) = attention(&p, &[0.0; 12], &[0.0; 8], &[0.0; 8], 1.0);
        assert_eq!((out.len(), lse.len()), (12, 6));
        assert!(out.iter().chain(&lse).all(|x| x.is_nan()));
        let p = problem(1, (2, 2), (2, 2), 2, false);
        let (out, _) = attention(&p, &[0.0; 7], &[0.0; 8], &[0.0; 8], 1.0);
        assert!(out.iter().all(|x| x.is_nan()));
    }

    fn cast<T: Element>(x: &[f64]) -> Vec<T> {
        x.iter().map(|&v| T::from_f64(v)).collect()
    }

    fn widen<T: Element>(x: &[T]) -> Vec<f64> {
        x.iter().map(|v| v.to_f64()).collect()
    }

    /// Runs `reference.attention` through the runtime (GQA, causal with Sq > Skv so some
    /// queries are fully masked), with NaN-poisoned outputs.
    fn through_runtime<T: Element>(scale: Option<f32>, with_lse: bool) {
        crate::link();
        let (b, sq, skv, hq, hkv, d) = (2, 5, 4, 4, 2, 8);
        let q: Vec<T> = cast(&data(b * sq * hq * d, 21));
        let k: Vec<T> = cast(&data(b * skv * hkv * d, 22));
        let v: Vec<T> = cast(&data(b * skv * hkv * d, 23));
        let mut out: Vec<T> = cast(&vec![f64::NAN; b * sq * hq * d]);
        let mut lse = vec![f32::NAN; b * hq * sq];
        let rt = Runtime::builder().build().unwrap();
        let args = AttentionArgs {
            lse: if with_lse {
                Some(TensorViewMut::from_slice(&mut lse, &[b, hq, sq]).unwrap())
            } else {
                None
            },
            causal: true,
            scale,
            ..AttentionArgs::new(
                TensorView::from_slice(&q, &[b, sq, hq, d]).unwrap(),
                TensorView::from_slice(&k, &[b, skv, hkv, d]).unwrap(),
                TensorView::from_slice(&v, &[b, skv, hkv, d]).unwrap(),
                TensorViewMut::from_slice(&mut out, &[b, sq, hq, d]).unwrap(),
            )
        };
        let s = f64::from(args.effective_scale());
        let mut args = Args::Attention(args);
        let plan = rt.run(&Policy::auto(), &Stream::host(), &mut args).unwrap();
        assert_eq!(plan.kernel_name(), "reference.attention");
        let p = problem(b, (sq, skv), (hq, hkv), d, true);
        let (want_out, want_lse) = attention(&p, &widen(&q), &widen(&k), &widen(&v), s);
        for (i, (g, w)) in out.iter().zip(&want_out).enumerate() {
            // The kernel rounds the f64 result once to the output dtype.
            assert_eq!(g.to_f64(), round_to(T::DTYPE, *w), "out element {i}");
        }
        for (i, (g, w)) in lse.iter().zip(&want_lse).enumerate() {
            if with_lse {
                assert_eq!(f64::from(*g), round_to(DType::F32, *w), "lse element {i}");
            } else {
                assert!(
                    g.is_nan(),
                    "lse element {i} written without being requested"
                );
            }
        }
    }

    #[test]
    fn kernel_through_runtime_f32() {
        through_runtime::<f32>(None, true);
        through_runtime::<f32>(Some(0.3), false);
    }

    #[test]
    fn kernel_through_runtime_bf16() {
        through_runtime::<bf16>(None, true);
        through_runtime::<bf16>(Some(0.3), true);
    }
}
