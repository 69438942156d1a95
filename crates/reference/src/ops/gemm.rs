//! `gemm` oracle and the `reference.gemm` kernel.
//!
//! The oracle first lays out `op(A)` as row-major `[m, k]` and `op(B)^T` as row-major `[n, k]`
//! (one copy per stored matrix, so a broadcast operand is copied once); every output element is
//! then the dot product of two contiguous rows, summed in `f64` from `l = 0` to `k - 1`. Output
//! rows are computed in parallel and independently, so results are deterministic and
//! batch-invariant.

use kernelyard_core::ops::gemm::{Gemm, GemmArgs, GemmProblem};
use kernelyard_core::tensor::checked_numel;
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, scatter};
use crate::ops::meta;

/// `a`: dense logical A as stored (dims `p.a_dims()`, i.e. `[k, m]` when `trans_a`), either one
/// matrix (broadcast over the batch) or `p.batch` matrices; same for `b` with `p.b_dims()`; `c`:
/// dense `[batch, m, n]`, read only when `p.accumulate`. Returns dense `[batch, m, n]`:
/// `alpha * op(A) @ op(B) + beta * C`, accumulated in `f64`.
///
/// Inputs whose lengths fit none of these shapes give an all-NaN result (a caller's bug made
/// visible, never a panic); a problem whose sizes overflow `usize` gives an empty one.
pub fn gemm(p: &GemmProblem, a: &[f64], b: &[f64], c: &[f64], alpha: f64, beta: f64) -> Vec<f64> {
    let (m, n, k) = (p.m, p.n, p.k);
    let (Some(mk), Some(kn), Some(out_len)) = (
        m.checked_mul(k),
        k.checked_mul(n),
        checked_numel(&[p.batch, m, n]),
    ) else {
        return Vec::new();
    };
    let fits = |len: usize, one: usize| len == one || Some(len) == p.batch.checked_mul(one);
    if !fits(a.len(), mk) || !fits(b.len(), kn) || (p.accumulate && c.len() != out_len) {
        return vec![f64::NAN; out_len];
    }
    if out_len == 0 {
        return Vec::new();
    }
    // Rows of op(A) and columns of op(B), each contiguous, per stored matrix.
    let a_rows = if p.trans_a {
        transpose_each(a, k, m)
    } else {
        a.to_vec()
    };
    let b_cols = if p.trans_b {
        b.to_vec()
    } else {
        transpose_each(b, k, n)
    };
    let mut out = vec![0.0; out_len];
    out.par_chunks_mut(n).enumerate().for_each(|(row, o)| {
        let (batch, i) = (row / m, row % m);
        // One stored matrix is broadcast; otherwise batch `batch` uses matrix `batch`.
        let a_base = if a_rows.len() == mk { 0 } else { batch * mk };
        let b_base = if b_cols.len() == kn { 0 } else { batch * kn };
        let a_row = &a_rows[a_base + i * k..a_base + (i + 1) * k];
        for (j, o) in o.iter_mut().enumerate() {
            let b_col = &b_cols[b_base + j * k..b_base + (j + 1) * k];
            let mut v = alpha * dot(a_row, b_col);
            if p.accumulate {
                v += beta * c[row * n + j];
            }
            *o = v;
        }
    });
    out
}

/// `sum(a[l] * b[l])` in order `l = 0, 1, ...`.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| acc + x * y)
}

/// Transposes each `[rows, cols]` matrix of a dense stack into `[cols, rows]`.
fn transpose_each(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let size = rows * cols;
    if size == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(x.len());
    for mat in x.chunks(size) {
        for c in 0..cols {
            out.extend((0..rows).map(|r| mat[r * cols + c]));
        }
    }
    out
}

/// The `reference.gemm` kernel.
pub static GEMM: KernelDef<Gemm> = KernelDef::<Gemm>::new(
    meta::<Gemm>(
        "reference.gemm",
        module_path!(),
        "batched gemm with transposes and broadcast, accumulated in f64",
    ),
    launch,
);
crate::register_kernel!(GEMM);

fn launch(ctx: &LaunchCtx<'_>, g: &mut GemmArgs<'_>, p: &GemmProblem) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.gemm", || {
        let a = gather("a", &g.a)?;
        let b = gather("b", &g.b)?;
        // With beta == 0, C is write-only: it may hold NaN, so it is not even gathered.
        let c = if p.accumulate {
            gather("c", &g.c.as_view())?
        } else {
            Vec::new()
        };
        let y = gemm(p, &a, &b, &c, f64::from(g.alpha), f64::from(g.beta));
        scatter("c", &mut g.c, &y)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::round_to;
    use kernelyard_core::half::bf16;
    use kernelyard_core::ops::gemm::GemmArgs;
    use kernelyard_core::{
        Args, DType, DeviceId, Element, Policy, Runtime, Stream, TensorView, TensorViewMut,
    };

    fn problem(batch: usize, m: usize, n: usize, k: usize, ta: bool, tb: bool) -> GemmProblem {
        GemmProblem {
            batch,
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            dtype: DType::F32,
            c_dtype: DType::F32,
            lda: if ta { m } else { k },
            ldb: if tb { k } else { n },
            ldc: n,
            batch_stride_a: m * k,
            batch_stride_b: k * n,
            batch_stride_c: m * n,
            accumulate: false,
            align: 16,
        }
    }

    /// Small, varied, exactly representable values (multiples of 1/8 in [-1.5, 1.25]).
    fn data(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 7 + seed * 13) % 23) as f64 / 8.0 - 1.5)
            .collect()
    }

    /// An independent oracle: explicit loops reading the stored layouts directly.
    fn naive(p: &GemmProblem, a: &[f64], b: &[f64], c: &[f64], alpha: f64, beta: f64) -> Vec<f64> {
        let (m, n, k) = (p.m, p.n, p.k);
        let mut out = vec![0.0; p.batch * m * n];
        for bt in 0..p.batch {
            let ao = if a.len() == m * k { 0 } else { bt * m * k };
            let bo = if b.len() == k * n { 0 } else { bt * k * n };
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0.0;
                    for l in 0..k {
                        let x = if p.trans_a {
                            a[ao + l * m + i]
                        } else {
                            a[ao + i * k + l]
                        };
                        let y = if p.trans_b {
                            b[bo + j * k + l]
                        } else {
                            b[bo + l * n + j]
                        };
                        s += x * y;
                    }
                    let idx = (bt * m + i) * n + j;
                    out[idx] = alpha * s + if p.accumulate { beta * c[idx] } else { 0.0 };
                }
            }
        }
        out
    }

    fn identity(n: usize) -> Vec<f64> {
        (0..n * n)
            .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
            .collect()
    }

    /// `x` (`[rows, cols]` per matrix) stored transposed, by explicit index loops.
    fn stored_transposed(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        for base in (0..x.len()).step_by(rows * cols) {
            for r in 0..rows {
                for c in 0..cols {
                    out[base + c * rows + r] = x[base + r * cols + c];
                }
            }
        }
        out
    }

    #[test]
    fn hand_computed_2x2() {
        let p = problem(1, 2, 2, 2, false, false);
        let y = gemm(
            &p,
            &[1.0, 2.0, 3.0, 4.0],
            &[5.0, 6.0, 7.0, 8.0],
            &[],
            1.0,
            0.0,
        );
        assert_eq!(y, vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn identity_returns_the_other_operand() {
        let (m, n, k) = (5, 3, 4);
        let a = data(m * k, 1);
        let b = data(k * n, 2);
        assert_eq!(
            gemm(
                &problem(1, m, k, k, false, false),
                &a,
                &identity(k),
                &[],
                1.0,
                0.0
            ),
            a
        );
        assert_eq!(
            gemm(
                &problem(1, k, n, k, false, false),
                &identity(k),
                &b,
                &[],
                1.0,
                0.0
            ),
            b
        );
    }

    #[test]
    fn matches_naive_for_every_transpose() {
        let (batch, m, n, k) = (2, 5, 3, 7);
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let p = problem(batch, m, n, k, ta, tb);
            let a = data(batch * m * k, 3);
            let b = data(batch * k * n, 4);
            let got = gemm(&p, &a, &b, &[], 1.0, 0.0);
            let want = naive(&p, &a, &b, &[], 1.0, 0.0);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12, "trans ({ta}, {tb}): {g} vs {w}");
            }
        }
    }

    #[test]
    fn transposes_agree_with_explicitly_transposed_inputs() {
        let (batch, m, n, k) = (3, 4, 6, 5);
        let a = data(batch * m * k, 5);
        let b = data(batch * k * n, 6);
        let plain = gemm(
            &problem(batch, m, n, k, false, false),
            &a,
            &b,
            &[],
            1.0,
            0.0,
        );
        let at = stored_transposed(&a, m, k);
        let bt = stored_transposed(&b, k, n);
        for (ta, tb) in [(true, false), (false, true), (true, true)] {
            let a_in = if ta { &at } else { &a };
            let b_in = if tb { &bt } else { &b };
            let y = gemm(&problem(batch, m, n, k, ta, tb), a_in, b_in, &[], 1.0, 0.0);
            // Same products summed in the same order: bitwise equal.
            assert_eq!(y, plain, "trans ({ta}, {tb})");
        }
    }

    #[test]
    fn broadcast_operand_equals_repeated_operand() {
        let (batch, m, n, k) = (3, 4, 2, 5);
        let p = problem(batch, m, n, k, false, true);
        let a_one = data(m * k, 7);
        let b_one = data(k * n, 8);
        let a_all = data(batch * m * k, 9);
        let b_all = data(batch * k * n, 10);
        let a_rep: Vec<f64> = a_one.iter().copied().cycle().take(batch * m * k).collect();
        let b_rep: Vec<f64> = b_one.iter().copied().cycle().take(batch * k * n).collect();
        assert_eq!(
            gemm(&p, &a_one, &b_all, &[], 1.0, 0.0),
            gemm(&p, &a_rep, &b_all, &[], 1.0, 0.0)
        );
        assert_eq!(
            gemm(&p, &a_all, &b_one, &[], 1.0, 0.0),
            gemm(&p, &a_all, &b_rep, &[], 1.0, 0.0)
        );
        assert_eq!(
            gemm(&p, &a_one, &b_one, &[], 1.0, 0.0),
            naive(&p, &a_one, &b_one, &[], 1.0, 0.0)
        );
    }

    #[test]
    fn rows_do_not_depend_on_the_batch() {
        let (batch, m, n, k) = (4, 3, 5, 6);
        let a = data(batch * m * k, 11);
        let b = data(batch * k * n, 12);
        let all = gemm(
            &problem(batch, m, n, k, false, false),
            &a,
            &b,
            &[],
            1.0,
            0.0,
        );
        let last = batch - 1;
        let one = gemm(
            &problem(1, m, n, k, false, false),
            &a[last * m * k..],
            &b[last * k * n..],
            &[],
            1.0,
            0.0,
        );
        assert_eq!(&all[last * m * n..], &one[..]);
    }

    #[test]
    fn alpha_and_beta() {
        let (batch, m, n, k) = (2, 3, 4, 5);
        let mut p = problem(batch, m, n, k, true, false);
        p.accumulate = true;
        let a = data(batch * m * k, 13);
        let b = data(batch * k * n, 14);
        let c = data(batch * m * n, 15);
        let got = gemm(&p, &a, &b, &c, -0.75, 2.5);
        let want = naive(&p, &a, &b, &c, -0.75, 2.5);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{g} vs {w}");
        }
        // alpha = 0 leaves beta * C.
        let scaled = gemm(&p, &a, &b, &c, 0.0, 2.5);
        let want: Vec<f64> = c.iter().map(|x| 2.5 * x).collect();
        assert_eq!(scaled, want);
    }

    #[test]
    fn beta_zero_ignores_nan_in_c() {
        let p = problem(1, 2, 3, 4, false, false);
        let a = data(8, 16);
        let b = data(12, 17);
        let nan_c = vec![f64::NAN; 6];
        let y = gemm(&p, &a, &b, &nan_c, 1.0, 0.0);
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!(y, gemm(&p, &a, &b, &[], 1.0, 0.0));
    }

    #[test]
    fn inconsistent_lengths_give_nan_not_a_panic() {
        let p = problem(2, 2, 2, 2, false, false);
        let y = gemm(&p, &[1.0; 3], &[1.0; 4], &[], 1.0, 0.0);
        assert_eq!(y.len(), 8);
        assert!(y.iter().all(|v| v.is_nan()));
        let mut p = p;
        p.accumulate = true;
        assert!(gemm(&p, &[1.0; 4], &[1.0; 4], &[], 1.0, 1.0)
            .iter()
            .all(|v| v.is_nan()));
    }

    fn cast<T: Element>(x: &[f64]) -> Vec<T> {
        x.iter().map(|&v| T::from_f64(v)).collect()
    }

    fn widen<T: Element>(x: &[T]) -> Vec<f64> {
        x.iter().map(|v| v.to_f64()).collect()
    }

    /// Runs `reference.gemm` through the runtime: A `[batch, k, m]` used transposed, B `[k, n]`
    /// broadcast, C `[batch, m, n]` of dtype `U` (NaN-poisoned when `beta == 0`).
    fn through_runtime<T: Element, U: Element>(beta: f32) {
        crate::link();
        let (batch, m, n, k) = (3, 4, 5, 6);
        let alpha = 1.5f32;
        let a: Vec<T> = cast(&data(batch * m * k, 18));
        let b: Vec<T> = cast(&data(k * n, 19));
        let mut c: Vec<U> = if beta == 0.0 {
            cast(&vec![f64::NAN; batch * m * n])
        } else {
            cast(&data(batch * m * n, 20))
        };
        let mut p = problem(batch, m, n, k, true, false);
        p.accumulate = beta != 0.0;
        let c_in = if p.accumulate { widen(&c) } else { Vec::new() };
        let want = gemm(&p, &widen(&a), &widen(&b), &c_in, alpha.into(), beta.into());
        let rt = Runtime::builder().build().unwrap();
        let mut args = Args::Gemm(GemmArgs {
            a: TensorView::from_slice(&a, &[batch, k, m]).unwrap(),
            b: TensorView::from_slice(&b, &[k, n]).unwrap(),
            c: TensorViewMut::from_slice(&mut c, &[batch, m, n]).unwrap(),
            trans_a: true,
            trans_b: false,
            alpha,
            beta,
        });
        let plan = rt.run(&Policy::auto(), &Stream::host(), &mut args).unwrap();
        assert_eq!(plan.kernel_name(), "reference.gemm");
        for (i, (g, w)) in c.iter().zip(&want).enumerate() {
            // The kernel rounds the f64 result once to C's dtype.
            assert_eq!(g.to_f64(), round_to(U::DTYPE, *w), "element {i}");
        }
    }

    #[test]
    fn kernel_through_runtime_f32() {
        through_runtime::<f32, f32>(0.0);
        through_runtime::<f32, f32>(-0.5);
    }

    #[test]
    fn kernel_through_runtime_bf16() {
        through_runtime::<bf16, bf16>(0.0);
        through_runtime::<bf16, bf16>(0.25);
        through_runtime::<bf16, f32>(0.0);
        through_runtime::<bf16, f32>(0.25);
    }

    #[test]
    fn kernel_strided_rows() {
        crate::link();
        let (m, n, k) = (3, 4, 5);
        let (lda, ldc) = (k + 3, n + 2);
        const PAD: f32 = 7777.0;
        let a_dense = data(m * k, 21);
        let b_dense = data(k * n, 22);
        let c_dense = data(m * n, 23);
        let mut a_buf = vec![PAD; m * lda];
        let mut c_buf = vec![PAD; m * ldc];
        for i in 0..m {
            for l in 0..k {
                a_buf[i * lda + l] = a_dense[i * k + l] as f32;
            }
            for j in 0..n {
                c_buf[i * ldc + j] = c_dense[i * n + j] as f32;
            }
        }
        let b: Vec<f32> = cast(&b_dense);
        let mut p = problem(1, m, n, k, false, false);
        p.accumulate = true;
        let want = gemm(&p, &a_dense, &b_dense, &c_dense, 2.0, 0.5);
        let rt = Runtime::builder().build().unwrap();
        // SAFETY: both views address rows `0..m` of `lda`/`ldc` elements inside their buffers,
        // which outlive the views; nothing else touches the buffers during the call.
        let (a_view, c_view) = unsafe {
            (
                TensorView::from_raw_parts(
                    a_buf.as_ptr().cast(),
                    DType::F32,
                    &[m, k],
                    Some(&[lda as isize, 1]),
                    DeviceId::CPU,
                )
                .unwrap(),
                TensorViewMut::from_raw_parts(
                    c_buf.as_mut_ptr().cast(),
                    DType::F32,
                    &[m, n],
                    Some(&[ldc as isize, 1]),
                    DeviceId::CPU,
                )
                .unwrap(),
            )
        };
        let mut args = Args::Gemm(GemmArgs {
            alpha: 2.0,
            beta: 0.5,
            ..GemmArgs::new(a_view, TensorView::from_slice(&b, &[k, n]).unwrap(), c_view)
        });
        let plan = rt.run(&Policy::auto(), &Stream::host(), &mut args).unwrap();
        assert_eq!(plan.kernel_name(), "reference.gemm");
        for i in 0..m {
            for j in 0..ldc {
                let got = c_buf[i * ldc + j];
                if j < n {
                    assert_eq!(got as f64, round_to(DType::F32, want[i * n + j]));
                } else {
                    assert_eq!(got, PAD, "padding at row {i}, column {j} was written");
                }
            }
        }
    }
}
