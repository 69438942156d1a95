//! `gemm`: rows of M are the independent rows (of every batch matrix).

use kernelyard::ops::gemm::{Gemm, GemmArgs, GemmProblem};
use kernelyard::ops::Listed;
use kernelyard::{Args, Problem};
use kernelyard_reference::ops::gemm::gemm;

use crate::cases::Scalars;
use crate::data::{HostTensor, Init, Instance, OutputSpec};
use crate::exec::{input, outputs_mut, required, DeviceTensor};
use crate::ops::{expect, Driver};
use crate::rng::Rng;

/// The `gemm` driver.
pub(crate) struct GemmDriver;

/// Stored shape of A: `[batch, ..a_dims]` when batched and not broadcast.
fn a_shape(p: &GemmProblem) -> Vec<usize> {
    let [r, c] = p.a_dims();
    if p.batch > 1 && p.batch_stride_a != 0 {
        vec![p.batch, r, c]
    } else {
        vec![r, c]
    }
}

/// Stored shape of B: `[batch, ..b_dims]` when batched and not broadcast.
fn b_shape(p: &GemmProblem) -> Vec<usize> {
    let [r, c] = p.b_dims();
    if p.batch > 1 && p.batch_stride_b != 0 {
        vec![p.batch, r, c]
    } else {
        vec![r, c]
    }
}

/// Shape of C: `[batch, m, n]` when batched.
fn c_shape(p: &GemmProblem) -> Vec<usize> {
    if p.batch > 1 {
        vec![p.batch, p.m, p.n]
    } else {
        vec![p.m, p.n]
    }
}

/// The axis of M in A's stored shape.
fn a_m_axis(p: &GemmProblem) -> usize {
    let rank = a_shape(p).len();
    if p.trans_a {
        rank - 1
    } else {
        rank - 2
    }
}

impl Driver for GemmDriver {
    fn rows(&self, p: &Problem) -> Result<usize, String> {
        Ok(expect::<Gemm>(p)?.m)
    }

    fn with_rows(&self, p: &Problem, rows: usize) -> Result<Problem, String> {
        let mut q = expect::<Gemm>(p)?.clone();
        q.m = rows;
        if q.trans_a {
            q.lda = rows;
        }
        if q.batch > 1 {
            if q.batch_stride_a != 0 {
                q.batch_stride_a = rows * q.k;
            }
            q.batch_stride_c = rows * q.n;
        }
        Ok(Gemm::wrap(q))
    }

    fn generate(
        &self,
        p: &Problem,
        _s: &Scalars,
        rng: &mut Rng,
    ) -> Result<Vec<HostTensor>, String> {
        let p = expect::<Gemm>(p)?;
        let mut v = vec![
            HostTensor::uniform("a", p.dtype, a_shape(p), Some(a_m_axis(p)), rng, -1.0, 1.0),
            HostTensor::uniform("b", p.dtype, b_shape(p), None, rng, -1.0, 1.0),
        ];
        if p.accumulate {
            let c = c_shape(p);
            let axis = c.len() - 2;
            v.push(HostTensor::uniform(
                "c",
                p.c_dtype,
                c,
                Some(axis),
                rng,
                -1.0,
                1.0,
            ));
        }
        Ok(v)
    }

    fn input_shapes(&self, p: &Problem) -> Result<Vec<HostTensor>, String> {
        let p = expect::<Gemm>(p)?;
        let mut v = vec![
            HostTensor::shape_only("a", p.dtype, a_shape(p), Some(a_m_axis(p))),
            HostTensor::shape_only("b", p.dtype, b_shape(p), None),
        ];
        if p.accumulate {
            let c = c_shape(p);
            let axis = c.len() - 2;
            v.push(HostTensor::shape_only("c", p.c_dtype, c, Some(axis)));
        }
        Ok(v)
    }

    fn outputs(&self, p: &Problem, inputs: &[HostTensor]) -> Result<Vec<OutputSpec>, String> {
        let p = expect::<Gemm>(p)?;
        let shape = c_shape(p);
        let init = if p.accumulate {
            Init::FromInput(Instance::input_index(inputs, "c")?)
        } else {
            Init::Poison
        };
        Ok(vec![OutputSpec {
            name: "c",
            dtype: p.c_dtype,
            batch_axis: Some(shape.len() - 2),
            shape,
            init,
        }])
    }

    fn oracle(&self, inst: &Instance) -> Result<Vec<Vec<f64>>, String> {
        let p = expect::<Gemm>(&inst.problem)?;
        let c = inst.optional("c").unwrap_or(&[]);
        let s = &inst.scalars;
        Ok(vec![gemm(
            p,
            &inst.input("a")?.data,
            &inst.input("b")?.data,
            c,
            f64::from(s.alpha),
            f64::from(s.beta),
        )])
    }

    fn args<'a>(
        &self,
        inst: &Instance,
        ins: &'a [DeviceTensor],
        outs: &'a mut [DeviceTensor],
    ) -> Result<Args<'a>, String> {
        let p = expect::<Gemm>(&inst.problem)?;
        // When accumulating, C's output buffer starts from the input `c` (see `outputs`).
        let [c] = outputs_mut(outs, ["c"])?;
        Ok(Args::Gemm(GemmArgs {
            a: input(ins, "a")?,
            b: input(ins, "b")?,
            c: required(c, "c")?,
            trans_a: p.trans_a,
            trans_b: p.trans_b,
            alpha: inst.scalars.alpha,
            beta: inst.scalars.beta,
        }))
    }
}
