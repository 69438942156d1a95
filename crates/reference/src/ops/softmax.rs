//! `softmax` oracle and the `reference.softmax` kernel.

use kernelyard_core::ops::softmax::{RowsProblem, Softmax, SoftmaxArgs};
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, scatter};
use crate::ops::meta;

/// `softmax` of each row of a dense `[rows, cols]` array, in `f64`.
pub fn softmax(p: &RowsProblem, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; p.rows * p.cols];
    out.par_chunks_mut(p.cols)
        .zip(x.par_chunks(p.cols))
        .for_each(|(o, row)| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
            for (o, v) in o.iter_mut().zip(row) {
                *o = (v - max).exp() / sum;
            }
        });
    out
}

/// The `reference.softmax` kernel.
pub static SOFTMAX: KernelDef<Softmax> = KernelDef::<Softmax>::new(
    meta::<Softmax>(
        "reference.softmax",
        module_path!(),
        "softmax over rows in f64",
    ),
    launch,
);
crate::register_kernel!(SOFTMAX);

fn launch(ctx: &LaunchCtx<'_>, a: &mut SoftmaxArgs<'_>, p: &RowsProblem) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.softmax", || {
        let y = softmax(p, &gather("x", &a.x)?);
        scatter("out", &mut a.out, &y)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::DType;

    #[test]
    fn rows_sum_to_one_and_shift_invariant() {
        let p = RowsProblem {
            rows: 3,
            cols: 5,
            dtype: DType::F32,
            align: 16,
        };
        let x: Vec<f64> = (0..15).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
        let y = softmax(&p, &x);
        for row in y.chunks(5) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let shifted: Vec<f64> = x.iter().map(|v| v + 100.0).collect();
        let y2 = softmax(&p, &shifted);
        for (a, b) in y.iter().zip(&y2) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn large_values_do_not_overflow() {
        let p = RowsProblem {
            rows: 1,
            cols: 2,
            dtype: DType::F32,
            align: 16,
        };
        let y = softmax(&p, &[1000.0, 1000.0]);
        assert_eq!(y, vec![0.5, 0.5]);
    }
}
