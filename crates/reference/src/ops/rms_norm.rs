//! `rms_norm` oracle and the `reference.rms_norm` kernel.

use kernelyard_core::ops::rms_norm::{RmsNorm, RmsNormArgs, RmsNormProblem};
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, round_to, scatter};
use crate::ops::meta;

/// `rms_norm` of each row of a dense `[rows, hidden]` array, in `f64`.
///
/// Returns `(y, residual_out)`. With a residual, `x' = round_to(p.dtype, x + residual)` is what
/// `residual_out` stores, and `y` is computed from that stored `x'` (so the two outputs agree);
/// without one, `x' = x` and `residual_out` is `None`.
/// `y = x' / sqrt(mean(x'^2) + eps) * weight`. Rows run in parallel; each row's sum is taken
/// in index order, so the result does not depend on the batch.
pub fn rms_norm(
    p: &RmsNormProblem,
    x: &[f64],
    weight: &[f64],
    residual: Option<&[f64]>,
    eps: f64,
) -> (Vec<f64>, Option<Vec<f64>>) {
    let stored: Option<Vec<f64>> = residual.map(|r| {
        x.iter()
            .zip(r)
            .map(|(a, b)| round_to(p.dtype, a + b))
            .collect()
    });
    let xs: &[f64] = stored.as_deref().unwrap_or(x);
    let mut y = vec![0.0; p.rows * p.hidden];
    if p.hidden == 0 {
        return (y, stored);
    }
    y.par_chunks_mut(p.hidden)
        .zip(xs.par_chunks(p.hidden))
        .for_each(|(o, row)| {
            let mean_sq = row.iter().map(|v| v * v).sum::<f64>() / p.hidden as f64;
            let rms = (mean_sq + eps).sqrt();
            for ((o, v), w) in o.iter_mut().zip(row).zip(weight) {
                *o = v / rms * w;
            }
        });
    (y, stored)
}

/// The `reference.rms_norm` kernel.
pub static RMS_NORM: KernelDef<RmsNorm> = KernelDef::<RmsNorm>::new(
    meta::<RmsNorm>(
        "reference.rms_norm",
        module_path!(),
        "RMSNorm over rows in f64, with the fused residual add",
    ),
    launch,
);
crate::register_kernel!(RMS_NORM);

fn launch(ctx: &LaunchCtx<'_>, a: &mut RmsNormArgs<'_>, p: &RmsNormProblem) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.rms_norm", || {
        let x = gather("x", &a.x)?;
        let weight = gather("weight", &a.weight)?;
        let residual = match &a.residual {
            Some(r) => Some(gather("residual", r)?),
            None => None,
        };
        let (y, stored) = rms_norm(p, &x, &weight, residual.as_deref(), f64::from(a.eps));
        scatter("out", &mut a.out, &y)?;
        if let (Some(view), Some(values)) = (a.residual_out.as_mut(), stored) {
            scatter("residual_out", view, &values)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::half::bf16;
    use kernelyard_core::ops::rms_norm::RmsNormArgs;
    use kernelyard_core::{
        Args, DType, Element, Policy, Runtime, Stream, TensorView, TensorViewMut,
    };

    fn problem(rows: usize, hidden: usize, dtype: DType, residual: bool) -> RmsNormProblem {
        RmsNormProblem {
            rows,
            hidden,
            dtype,
            residual,
            align: 16,
        }
    }

    /// Written independently of the oracle: one row at a time, index loops, and the reciprocal
    /// square root applied as a factor.
    fn naive(rows: usize, hidden: usize, x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(rows * hidden);
        for r in 0..rows {
            let mut ss = 0.0;
            for c in 0..hidden {
                ss += x[r * hidden + c].powi(2);
            }
            let inv = 1.0 / (ss / hidden as f64 + eps).sqrt();
            for c in 0..hidden {
                out.push(x[r * hidden + c] * inv * w[c]);
            }
        }
        out
    }

    fn data(n: usize, salt: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7 + salt * 13) % 23) as f64 * 0.19 - 2.1)
            .collect()
    }

    fn assert_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "element {i}: {x} vs {y}"
            );
        }
    }

    /// Half an ulp of `dtype`, relative.
    fn half_ulp(dtype: DType) -> f64 {
        match dtype {
            DType::F32 => f64::powi(2.0, -24),
            DType::F16 => f64::powi(2.0, -11),
            _ => f64::powi(2.0, -8),
        }
    }

    fn within_rounding(got: f64, want: f64, dtype: DType) -> bool {
        (got - want).abs() <= half_ulp(dtype) * want.abs() + 1e-30
    }

    #[test]
    fn matches_naive() {
        let p = problem(5, 12, DType::F32, false);
        let x = data(60, 1);
        let w = data(12, 2);
        let (y, res) = rms_norm(&p, &x, &w, None, 1e-6);
        assert!(res.is_none());
        assert_close(&y, &naive(5, 12, &x, &w, 1e-6), 1e-13);
    }

    #[test]
    fn constant_rows_normalise_to_weight_times_sign() {
        let p = problem(3, 8, DType::F32, false);
        let mut x = Vec::new();
        for c in [2.5, -0.75, 1e-3] {
            x.extend(std::iter::repeat_n(c, 8));
        }
        let w = data(8, 3);
        let (y, _) = rms_norm(&p, &x, &w, None, 0.0);
        for (r, row) in y.chunks(8).enumerate() {
            let sign = x[r * 8].signum();
            for (v, wc) in row.iter().zip(&w) {
                assert!(
                    (v - sign * wc).abs() < 1e-14,
                    "row {r}: {v} vs {}",
                    sign * wc
                );
            }
        }
    }

    #[test]
    fn residual_equals_plain_norm_of_rounded_sum() {
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            let x: Vec<f64> = data(40, 4).iter().map(|v| round_to(dtype, *v)).collect();
            let res: Vec<f64> = data(40, 5)
                .iter()
                .map(|v| round_to(dtype, v * 1.37))
                .collect();
            let w = data(10, 6);
            let (y, stored) = rms_norm(&problem(4, 10, dtype, true), &x, &w, Some(&res), 1e-5);
            let stored = stored.expect("residual_out is returned with a residual");
            let sum: Vec<f64> = x
                .iter()
                .zip(&res)
                .map(|(a, b)| round_to(dtype, a + b))
                .collect();
            assert_eq!(stored, sum);
            let (plain, _) = rms_norm(&problem(4, 10, dtype, false), &sum, &w, None, 1e-5);
            assert_eq!(y, plain);
        }
    }

    #[test]
    fn eps_shrinks_the_output() {
        let p = problem(1, 4, DType::F32, false);
        let x = [0.1, -0.2, 0.05, 0.3];
        let w = [1.0; 4];
        let (y0, _) = rms_norm(&p, &x, &w, None, 0.0);
        let (y1, _) = rms_norm(&p, &x, &w, None, 0.5);
        let mean_sq = x.iter().map(|v| v * v).sum::<f64>() / 4.0;
        for (a, b) in y0.iter().zip(&y1) {
            assert!(b.abs() < a.abs());
            // The ratio is exactly sqrt(mean / (mean + eps)).
            assert!((b / a - (mean_sq / (mean_sq + 0.5)).sqrt()).abs() < 1e-14);
        }
        // A zero row stays zero (no division by zero) as soon as eps > 0.
        let (z, _) = rms_norm(&p, &[0.0; 4], &w, None, 1e-6);
        assert_eq!(z, vec![0.0; 4]);
    }

    fn launch_matches_oracle<T: Element>(residual: bool) {
        let (rows, hidden) = (6, 33);
        let dtype = T::DTYPE;
        let x: Vec<T> = data(rows * hidden, 7)
            .iter()
            .map(|v| T::from_f64(*v))
            .collect();
        let w: Vec<T> = data(hidden, 8)
            .iter()
            .map(|v| T::from_f64(v * 0.5))
            .collect();
        let res: Vec<T> = data(rows * hidden, 9)
            .iter()
            .map(|v| T::from_f64(-v))
            .collect();
        let mut out = vec![T::from_f64(f64::NAN); rows * hidden];
        let mut res_out = vec![T::from_f64(f64::NAN); rows * hidden];
        let eps = 1e-5f32;
        let rt = Runtime::builder().build().unwrap();
        {
            let mut args = RmsNormArgs::new(
                TensorView::from_slice(&x, &[rows, hidden]).unwrap(),
                TensorView::from_slice(&w, &[hidden]).unwrap(),
                TensorViewMut::from_slice(&mut out, &[rows, hidden]).unwrap(),
                eps,
            );
            if residual {
                args.residual = Some(TensorView::from_slice(&res, &[rows, hidden]).unwrap());
                args.residual_out =
                    Some(TensorViewMut::from_slice(&mut res_out, &[rows, hidden]).unwrap());
            }
            let plan = rt
                .run(&Policy::auto(), &Stream::host(), &mut Args::RmsNorm(args))
                .unwrap();
            assert_eq!(plan.kernel_name(), "reference.rms_norm");
        }
        let wide = |v: &[T]| v.iter().map(|e| e.to_f64()).collect::<Vec<f64>>();
        let res_in = wide(&res);
        let (want, want_res) = rms_norm(
            &problem(rows, hidden, dtype, residual),
            &wide(&x),
            &wide(&w),
            residual.then_some(res_in.as_slice()),
            f64::from(eps),
        );
        for (i, (g, w)) in wide(&out).iter().zip(&want).enumerate() {
            assert!(within_rounding(*g, *w, dtype), "out[{i}] = {g}, oracle {w}");
        }
        match want_res {
            Some(want_res) => {
                // The stored sum is already rounded to the dtype: written exactly.
                assert_eq!(wide(&res_out), want_res);
            }
            None => assert!(wide(&res_out).iter().all(|v| v.is_nan())),
        }
    }

    #[test]
    fn launch_bf16() {
        launch_matches_oracle::<bf16>(false);
        launch_matches_oracle::<bf16>(true);
    }

    #[test]
    fn launch_f32() {
        launch_matches_oracle::<f32>(false);
        launch_matches_oracle::<f32>(true);
    }
}
