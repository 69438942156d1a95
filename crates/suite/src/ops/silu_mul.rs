//! `silu_mul`: rows are independent (axis 0 of `x`, `gate`, `up` and `out`).
//!
//! Every input is uniform in `[-8, 8)`, never zero: silu bends between about -5 and 5, is
//! nearly `0` below and nearly the identity above, so the range covers the curve and both
//! tails (`exp(-g)` up to `e^8`), with products up to 64 in magnitude. The fused input `x` is
//! `[rows, 2*d]` (gate then up in each row); the oracle gets its two halves as dense arrays.

use kernelyard::ops::silu_mul::{SiluMul, SiluMulArgs, SiluMulInput, SiluMulProblem};
use kernelyard::ops::Listed;
use kernelyard::{Args, Problem};
use kernelyard_reference::ops::silu_mul::silu_mul;

use crate::cases::Scalars;
use crate::data::{HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, Driver};
use crate::rng::Rng;

/// The range of every input value.
const RANGE: (f64, f64) = (-8.0, 8.0);

/// The `silu_mul` driver.
pub(crate) struct SiluMulDriver;

/// The gate and up halves of a dense fused `[rows, 2*d]` array, each dense `[rows, d]`.
fn halves(p: &SiluMulProblem, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>), String> {
    if x.len() != p.rows * 2 * p.d {
        return Err(format!(
            "harness bug: x has {} values for [{}, 2 * {}]",
            x.len(),
            p.rows,
            p.d
        ));
    }
    let mut gate = Vec::with_capacity(p.rows * p.d);
    let mut up = Vec::with_capacity(p.rows * p.d);
    for row in x.chunks(2 * p.d) {
        let (g, u) = row.split_at(p.d);
        gate.extend_from_slice(g);
        up.extend_from_slice(u);
    }
    Ok((gate, up))
}

impl Driver for SiluMulDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(expect::<SiluMul>(p)?.rows)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = expect::<SiluMul>(p)?.clone();
        q.rows = rows;
        Ok(SiluMul::wrap(q))
    }

    fn generate(
        &self,
        p: &Problem,
        _s: &Scalars,
        rng: &mut Rng,
    ) -> Result<Vec<HostTensor>, String> {
        let p = expect::<SiluMul>(p)?;
        let (lo, hi) = RANGE;
        Ok(if p.split {
            let shape = vec![p.rows, p.d];
            vec![
                HostTensor::uniform("gate", p.dtype, shape.clone(), Some(0), rng, lo, hi),
                HostTensor::uniform("up", p.dtype, shape, Some(0), rng, lo, hi),
            ]
        } else {
            let shape = vec![p.rows, 2 * p.d];
            vec![HostTensor::uniform(
                "x",
                p.dtype,
                shape,
                Some(0),
                rng,
                lo,
                hi,
            )]
        })
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = expect::<SiluMul>(p)?;
        Ok(if p.split {
            let shape = vec![p.rows, p.d];
            vec![
                HostTensor::shape_only("gate", p.dtype, shape.clone(), Some(0)),
                HostTensor::shape_only("up", p.dtype, shape, Some(0)),
            ]
        } else {
            let two_d =
                p.d.checked_mul(2)
                    .ok_or_else(|| format!("the elements of `x` [rows, 2 * d] with d = {}", p.d))?;
            vec![HostTensor::shape_only(
                "x",
                p.dtype,
                vec![p.rows, two_d],
                Some(0),
            )]
        })
    }

    fn outputs(&self, p: &Problem, _inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = expect::<SiluMul>(p)?;
        Ok(vec![OutputSpec {
            name: "out",
            dtype: p.dtype,
            shape: vec![p.rows, p.d],
            batch_axis: Some(0),
            init: Init::Poison,
        }])
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = expect::<SiluMul>(&inst.problem)?;
        let out = if p.split {
            silu_mul(p, &inst.input("gate")?.data, &inst.input("up")?.data)
        } else {
            let (gate, up) = halves(p, &inst.input("x")?.data)?;
            silu_mul(p, &gate, &up)
        };
        Ok(vec![out])
    }

    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let p = expect::<SiluMul>(&inst.problem)?;
        let [out] = outputs_mut(outs, ["out"])?;
        let input = if p.split {
            SiluMulInput::Split {
                gate: input(ins, "gate")?,
                up: input(ins, "up")?,
            }
        } else {
            SiluMulInput::Fused(input(ins, "x")?)
        };
        Ok(Args::SiluMul(SiluMulArgs {
            input,
            out: required(out, "out")?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernelyard::DType;

    #[test]
    fn halves_take_gate_then_up_per_row() {
        let p = SiluMulProblem {
            rows: 2,
            d: 2,
            dtype: DType::F32,
            split: false,
            align: 16,
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let (gate, up) = halves(&p, &x).unwrap();
        assert_eq!(gate, vec![1.0, 2.0, 5.0, 6.0]);
        assert_eq!(up, vec![3.0, 4.0, 7.0, 8.0]);
        assert!(halves(&p, &x[..6]).is_err());
    }
}
