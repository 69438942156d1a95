//! `rope`: tokens are independent. Positions are uniform in `[0, 4096)`. In place, the output
//! buffer starts as `x` and is the only buffer the kernel sees for it.

use kernelyard::ops::rope::{Rope, RopeArgs};
use kernelyard::ops::Listed;
use kernelyard::{Args, Problem};
use kernelyard_reference::ops::rope::rope;

use crate::cases::Scalars;
use crate::data::{HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, Driver};
use crate::rng::Rng;

/// Positions are drawn from `[0, MAX_POSITION)`.
const MAX_POSITION: u64 = 4096;

/// The `rope` driver.
pub(crate) struct RopeDriver;

impl Driver for RopeDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(expect::<Rope>(p)?.tokens)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = expect::<Rope>(p)?.clone();
        q.tokens = rows;
        Ok(Rope::wrap(q))
    }

    fn generate(
        &self,
        p: &Problem,
        _s: &Scalars,
        rng: &mut Rng,
    ) -> Result<Vec<HostTensor>, String> {
        let p = expect::<Rope>(p)?;
        let x = HostTensor::uniform(
            "x",
            p.dtype,
            vec![p.tokens, p.heads, p.head_dim],
            Some(0),
            rng,
            -1.0,
            1.0,
        );
        let positions = (0..p.tokens)
            .map(|_| rng.below(MAX_POSITION) as f64)
            .collect();
        Ok(vec![
            x,
            HostTensor::of("positions", p.pos_dtype, vec![p.tokens], Some(0), positions),
        ])
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = expect::<Rope>(p)?;
        Ok(vec![
            HostTensor::shape_only("x", p.dtype, vec![p.tokens, p.heads, p.head_dim], Some(0)),
            HostTensor::shape_only("positions", p.pos_dtype, vec![p.tokens], Some(0)),
        ])
    }

    fn outputs(&self, p: &Problem, inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = expect::<Rope>(p)?;
        Ok(vec![OutputSpec {
            name: "out",
            dtype: p.dtype,
            shape: vec![p.tokens, p.heads, p.head_dim],
            batch_axis: Some(0),
            init: if p.in_place {
                Init::FromInput(Instance::input_index(inputs, "x")?)
            } else {
                Init::Poison
            },
        }])
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = expect::<Rope>(&inst.problem)?;
        let positions: Vec<i64> = inst
            .input("positions")?
            .data
            .iter()
            .map(|&t| t as i64)
            .collect();
        Ok(vec![rope(
            p,
            &inst.input("x")?.data,
            &positions,
            f64::from(inst.scalars.theta),
        )])
    }

    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let p = expect::<Rope>(&inst.problem)?;
        let [out] = outputs_mut(outs, ["out"])?;
        let out = required(out, "out")?;
        let positions = input(ins, "positions")?;
        let mut args = if p.in_place {
            RopeArgs::in_place(out, positions)
        } else {
            RopeArgs::new(input(ins, "x")?, positions, out)
        };
        args.rotary_dim = p.rotary_dim;
        args.style = p.style;
        args.theta = inst.scalars.theta;
        Ok(Args::Rope(args))
    }
}
