//! `attention`: batch entries are independent. Queries and keys are uniform in `[-2, 2)` so
//! scores spread over a few units (softmax neither flat nor one-hot); values in `[-1, 1)`.

use kernelyard::ops::attention::{Attention, AttentionArgs};
use kernelyard::ops::Listed;
use kernelyard::{Args, DType, Problem};
use kernelyard_reference::ops::attention::attention;

use crate::cases::Scalars;
use crate::data::{HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, Driver};
use crate::rng::Rng;

/// The `attention` driver.
pub(crate) struct AttentionDriver;

impl Driver for AttentionDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(expect::<Attention>(p)?.batch)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = expect::<Attention>(p)?.clone();
        q.batch = rows;
        Ok(Attention::wrap(q))
    }

    fn generate(
        &self,
        p: &Problem,
        _s: &Scalars,
        rng: &mut Rng,
    ) -> Result<Vec<HostTensor>, String> {
        let p = expect::<Attention>(p)?;
        let q_shape = vec![p.batch, p.seq_q, p.heads_q, p.head_dim];
        let kv_shape = vec![p.batch, p.seq_kv, p.heads_kv, p.head_dim];
        Ok(vec![
            HostTensor::uniform("q", p.dtype, q_shape, Some(0), rng, -2.0, 2.0),
            HostTensor::uniform("k", p.dtype, kv_shape.clone(), Some(0), rng, -2.0, 2.0),
            HostTensor::uniform("v", p.dtype, kv_shape, Some(0), rng, -1.0, 1.0),
        ])
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = expect::<Attention>(p)?;
        let q_shape = vec![p.batch, p.seq_q, p.heads_q, p.head_dim];
        let kv_shape = vec![p.batch, p.seq_kv, p.heads_kv, p.head_dim];
        Ok(vec![
            HostTensor::shape_only("q", p.dtype, q_shape, Some(0)),
            HostTensor::shape_only("k", p.dtype, kv_shape.clone(), Some(0)),
            HostTensor::shape_only("v", p.dtype, kv_shape, Some(0)),
        ])
    }

    fn outputs(&self, p: &Problem, _inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = expect::<Attention>(p)?;
        let mut v = vec![OutputSpec {
            name: "out",
            dtype: p.dtype,
            shape: vec![p.batch, p.seq_q, p.heads_q, p.head_dim],
            batch_axis: Some(0),
            init: Init::Poison,
        }];
        if p.lse {
            v.push(OutputSpec {
                name: "lse",
                dtype: DType::F32,
                shape: vec![p.batch, p.heads_q, p.seq_q],
                batch_axis: Some(0),
                init: Init::Poison,
            });
        }
        Ok(v)
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = expect::<Attention>(&inst.problem)?;
        // The scale the kernel uses: the case's, or AttentionArgs' default 1/sqrt(D) in f32.
        let scale = inst
            .scalars
            .scale
            .unwrap_or(1.0 / (p.head_dim.max(1) as f32).sqrt());
        let (out, lse) = attention(
            p,
            &inst.input("q")?.data,
            &inst.input("k")?.data,
            &inst.input("v")?.data,
            f64::from(scale),
        );
        let mut v = vec![out];
        if p.lse {
            v.push(lse);
        }
        Ok(v)
    }

    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let p = expect::<Attention>(&inst.problem)?;
        let [out, lse] = outputs_mut(outs, ["out", "lse"])?;
        Ok(Args::Attention(AttentionArgs {
            q: input(ins, "q")?,
            k: input(ins, "k")?,
            v: input(ins, "v")?,
            out: required(out, "out")?,
            lse,
            causal: p.causal,
            scale: inst.scalars.scale,
        }))
    }
}
