//! `rms_norm`: rows are independent; the weight is shared.

use kernelyard::ops::rms_norm::{RmsNorm, RmsNormArgs};
use kernelyard::ops::Listed;
use kernelyard::{Args, Problem};
use kernelyard_reference::ops::rms_norm::rms_norm;

use crate::cases::Scalars;
use crate::data::{nonzero, HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, optional_input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, Driver};
use crate::rng::Rng;

/// The `rms_norm` driver.
pub(crate) struct RmsNormDriver;

impl Driver for RmsNormDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(expect::<RmsNorm>(p)?.rows)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = expect::<RmsNorm>(p)?.clone();
        q.rows = rows;
        Ok(RmsNorm::wrap(q))
    }

    fn generate(
        &self,
        p: &Problem,
        _s: &Scalars,
        rng: &mut Rng,
    ) -> Result<Vec<HostTensor>, String> {
        let p = expect::<RmsNorm>(p)?;
        // Each row has its own magnitude, from 1e-3 (where eps matters) to about 30.
        let mut x = Vec::with_capacity(p.rows * p.hidden);
        for _ in 0..p.rows {
            let scale = 10f64.powf(rng.uniform(-3.0, 1.5));
            for _ in 0..p.hidden {
                x.push(nonzero(rng, p.dtype, -scale, scale));
            }
        }
        let shape = vec![p.rows, p.hidden];
        let mut v = vec![
            HostTensor::of("x", p.dtype, shape.clone(), Some(0), x),
            HostTensor::uniform("weight", p.dtype, vec![p.hidden], None, rng, 0.25, 1.75),
        ];
        if p.residual {
            v.push(HostTensor::uniform(
                "residual",
                p.dtype,
                shape,
                Some(0),
                rng,
                -2.0,
                2.0,
            ));
        }
        Ok(v)
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = expect::<RmsNorm>(p)?;
        let shape = vec![p.rows, p.hidden];
        let mut v = vec![
            HostTensor::shape_only("x", p.dtype, shape.clone(), Some(0)),
            HostTensor::shape_only("weight", p.dtype, vec![p.hidden], None),
        ];
        if p.residual {
            v.push(HostTensor::shape_only("residual", p.dtype, shape, Some(0)));
        }
        Ok(v)
    }

    fn outputs(&self, p: &Problem, _inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = expect::<RmsNorm>(p)?;
        let out = |name| OutputSpec {
            name,
            dtype: p.dtype,
            shape: vec![p.rows, p.hidden],
            batch_axis: Some(0),
            init: Init::Poison,
        };
        let mut v = vec![out("out")];
        if p.residual {
            v.push(out("residual_out"));
        }
        Ok(v)
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = expect::<RmsNorm>(&inst.problem)?;
        let (y, res) = rms_norm(
            p,
            &inst.input("x")?.data,
            &inst.input("weight")?.data,
            inst.optional("residual"),
            f64::from(inst.scalars.eps),
        );
        let mut v = vec![y];
        if p.residual {
            v.push(res.ok_or("the oracle returned no residual_out")?);
        }
        Ok(v)
    }

    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let [out, residual_out] = outputs_mut(outs, ["out", "residual_out"])?;
        Ok(Args::RmsNorm(RmsNormArgs {
            x: input(ins, "x")?,
            weight: input(ins, "weight")?,
            residual: optional_input(ins, "residual")?,
            out: required(out, "out")?,
            residual_out,
            eps: inst.scalars.eps,
        }))
    }
}
