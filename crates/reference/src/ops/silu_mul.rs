//! `silu_mul` oracle and the `reference.silu_mul` kernel.

use kernelyard_core::ops::silu_mul::{SiluMul, SiluMulArgs, SiluMulInput, SiluMulProblem};
use kernelyard_core::{Error, KernelDef, LaunchCtx};
use rayon::prelude::*;

use crate::host::{gather, scatter};
use crate::ops::meta;

/// `out[r, j] = silu(gate[r, j]) * up[r, j]` over dense `[rows, d]` arrays, in `f64`, with
/// `silu(g) = g / (1 + exp(-g))`.
///
/// For a very negative `g`, `exp(-g)` overflows to infinity and `silu(g)` is `-0.0` (no NaN);
/// for a very positive one it is `g`.
pub fn silu_mul(p: &SiluMulProblem, gate: &[f64], up: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; p.rows * p.d];
    if p.d == 0 {
        return out;
    }
    out.par_chunks_mut(p.d)
        .zip(gate.par_chunks(p.d).zip(up.par_chunks(p.d)))
        .for_each(|(o, (g, u))| {
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o = g / (1.0 + (-g).exp()) * u;
            }
        });
    out
}

/// Splits a dense fused `[rows, 2*d]` array into its gate (`[:, :d]`) and up (`[:, d:]`)
/// halves, each dense `[rows, d]`.
fn split_fused(p: &SiluMulProblem, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut gate = Vec::with_capacity(p.rows * p.d);
    let mut up = Vec::with_capacity(p.rows * p.d);
    if p.d == 0 {
        return (gate, up);
    }
    for row in x.chunks(2 * p.d) {
        let (g, u) = row.split_at(p.d.min(row.len()));
        gate.extend_from_slice(g);
        up.extend_from_slice(u);
    }
    (gate, up)
}

/// The `reference.silu_mul` kernel.
pub static SILU_MUL: KernelDef<SiluMul> = KernelDef::<SiluMul>::new(
    meta::<SiluMul>(
        "reference.silu_mul",
        module_path!(),
        "SwiGLU silu(gate) * up in f64, fused or split input",
    ),
    launch,
);
crate::register_kernel!(SILU_MUL);

fn launch(ctx: &LaunchCtx<'_>, a: &mut SiluMulArgs<'_>, p: &SiluMulProblem) -> Result<(), Error> {
    crate::ops::with_tactic(ctx, "reference.silu_mul", || {
        let (gate, up) = match &a.input {
            SiluMulInput::Fused(x) => split_fused(p, &gather("x", x)?),
            SiluMulInput::Split { gate, up } => (gather("gate", gate)?, gather("up", up)?),
        };
        let y = silu_mul(p, &gate, &up);
        scatter("out", &mut a.out, &y)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard_core::half::{bf16, f16};
    use kernelyard_core::{
        Args, DType, Element, Policy, Runtime, Stream, TensorView, TensorViewMut,
    };

    fn problem(rows: usize, d: usize, dtype: DType, split: bool) -> SiluMulProblem {
        SiluMulProblem {
            rows,
            d,
            dtype,
            split,
            align: 16,
        }
    }

    fn data(n: usize, salt: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7 + salt * 13) % 29) as f64 * 0.37 - 5.2)
            .collect()
    }

    #[test]
    fn known_values() {
        let p = problem(1, 6, DType::F32, true);
        let gate = [0.0, 1000.0, -1000.0, 40.0, -40.0, 1.0];
        let up = [3.0, 1.0, 1.0, 2.0, 2.0, 1.0];
        let y = silu_mul(&p, &gate, &up);
        assert_eq!(y[0], 0.0, "silu(0) = 0");
        assert_eq!(y[1], 1000.0, "silu(large) = large");
        assert!(
            y[2].abs() < 1e-300 && !y[2].is_nan(),
            "silu(-large) -> 0: {}",
            y[2]
        );
        assert!((y[3] - 80.0).abs() < 1e-12, "silu(40) * 2 = {}", y[3]);
        assert!(
            y[4].abs() < 1e-15 && y[4] <= 0.0,
            "silu(-40) * 2 = {}",
            y[4]
        );
        // silu(1) = 1 / (1 + e^-1) = sigmoid(1).
        assert!((y[5] - 0.731_058_578_630_004_9).abs() < 1e-15, "{}", y[5]);
    }

    #[test]
    fn matches_gate_times_sigmoid_times_up() {
        let (rows, d) = (3, 17);
        let p = problem(rows, d, DType::F32, true);
        let gate = data(rows * d, 1);
        let up = data(rows * d, 2);
        let y = silu_mul(&p, &gate, &up);
        for (i, ((y, g), u)) in y.iter().zip(&gate).zip(&up).enumerate() {
            let sigmoid = 1.0 / (1.0 + (-g).exp());
            let want = g * sigmoid * u;
            assert!(
                (y - want).abs() <= 1e-14 * (1.0 + want.abs()),
                "[{i}]: {y} vs {want}"
            );
        }
    }

    #[test]
    fn split_fused_takes_gate_then_up_per_row() {
        let p = problem(2, 3, DType::F32, false);
        let x = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
        ];
        let (gate, up) = split_fused(&p, &x);
        assert_eq!(gate, vec![1.0, 2.0, 3.0, 7.0, 8.0, 9.0]);
        assert_eq!(up, vec![4.0, 5.0, 6.0, 10.0, 11.0, 12.0]);
    }

    /// Runs `reference.silu_mul` through the runtime on a fused and on a split input holding
    /// the same values; both must equal the oracle rounded once to `T`.
    fn fused_and_split_agree<T: Element>() {
        let (rows, d) = (5, 24);
        let dtype = T::DTYPE;
        let gate: Vec<T> = data(rows * d, 3).iter().map(|v| T::from_f64(*v)).collect();
        let up: Vec<T> = data(rows * d, 4).iter().map(|v| T::from_f64(*v)).collect();
        let fused: Vec<T> = gate
            .chunks(d)
            .zip(up.chunks(d))
            .flat_map(|(g, u)| g.iter().chain(u).copied())
            .collect();
        let rt = Runtime::builder().build().unwrap();
        let run = |input: SiluMulInput<'_>| -> Vec<f64> {
            let mut out = vec![T::from_f64(f64::NAN); rows * d];
            let args = SiluMulArgs {
                input,
                out: TensorViewMut::from_slice(&mut out, &[rows, d]).unwrap(),
            };
            let plan = rt
                .run(&Policy::auto(), &Stream::host(), &mut Args::SiluMul(args))
                .unwrap();
            assert_eq!(plan.kernel_name(), "reference.silu_mul");
            out.iter().map(|e| e.to_f64()).collect()
        };
        let from_fused = run(SiluMulInput::Fused(
            TensorView::from_slice(&fused, &[rows, 2 * d]).unwrap(),
        ));
        let from_split = run(SiluMulInput::Split {
            gate: TensorView::from_slice(&gate, &[rows, d]).unwrap(),
            up: TensorView::from_slice(&up, &[rows, d]).unwrap(),
        });
        assert_eq!(from_fused, from_split, "{dtype}: fused and split differ");
        let wide = |v: &[T]| v.iter().map(|e| e.to_f64()).collect::<Vec<f64>>();
        let want: Vec<f64> = silu_mul(&problem(rows, d, dtype, true), &wide(&gate), &wide(&up))
            .into_iter()
            .map(|v| T::from_f64(v).to_f64())
            .collect();
        assert_eq!(from_split, want, "{dtype}: not the oracle rounded once");
    }

    #[test]
    fn fused_equals_split_f32() {
        fused_and_split_agree::<f32>();
    }

    #[test]
    fn fused_equals_split_f16() {
        fused_and_split_agree::<f16>();
    }

    #[test]
    fn fused_equals_split_bf16() {
        fused_and_split_agree::<bf16>();
    }
}
