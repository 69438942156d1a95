//! `log_softmax` oracle and the `reference.log_softmax` kernel.

use kernelyard_core::ops::log_softmax::{LogSoftmax, LogSoftmaxArgs};
use kernelyard_core::ops::softmax::RowsProblem;
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, scatter};
use crate::ops::meta;

/// `log_softmax` of each row of a dense `[rows, cols]` array, in `f64`:
/// `x - max - ln(sum(exp(x - max)))`.
pub fn log_softmax(p: &RowsProblem, x: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; p.rows * p.cols];
    out.par_chunks_mut(p.cols)
        .zip(x.par_chunks(p.cols))
        .for_each(|(o, row)| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            for (o, v) in o.iter_mut().zip(row) {
                *o = v - lse;
            }
        });
    out
}

/// The `reference.log_softmax` kernel.
pub static LOG_SOFTMAX: KernelDef<LogSoftmax> = KernelDef::<LogSoftmax>::new(
    meta::<LogSoftmax>(
        "reference.log_softmax",
        module_path!(),
        "log-softmax over rows in f64",
    ),
    launch,
);
crate::register_kernel!(LOG_SOFTMAX);

fn launch(ctx: &LaunchCtx<'_>, a: &mut LogSoftmaxArgs<'_>, p: &RowsProblem) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.log_softmax", || {
        let y = log_softmax(p, &gather("x", &a.x)?);
        scatter("out", &mut a.out, &y)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::softmax::softmax;
    use kernelyard_core::DType;

    #[test]
    fn equals_log_of_softmax() {
        let p = RowsProblem {
            rows: 4,
            cols: 9,
            dtype: DType::F32,
            align: 16,
        };
        let x: Vec<f64> = (0..36)
            .map(|i| ((i * 13) % 17) as f64 * 0.37 - 3.0)
            .collect();
        let a = log_softmax(&p, &x);
        let b = softmax(&p, &x);
        for (l, s) in a.iter().zip(&b) {
            assert!((l - s.ln()).abs() < 1e-12);
        }
    }
}
